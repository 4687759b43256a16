//! The timestamp parsers on arbitrary bytes: never panic, and the remembering parser (fast
//! path, table of checked dates) always gives what the plain parser gives.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut p = abm_core::time::TimestampParser::default();
    for chunk in data.split(|&b| b == b'\n') {
        let plain = abm_core::time::parse_bytes(chunk);
        assert_eq!(p.parse(chunk), plain);
        assert_eq!(p.parse(chunk), plain, "the second time, from the table");
    }
});
