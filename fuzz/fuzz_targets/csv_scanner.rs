//! The CSV scanner on arbitrary bytes: never panics, every field lies inside its record, and
//! every byte is either in a record or reported as an unterminated one.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut records = 0u64;
    let (lines, unterminated) = abm_io::csv::for_each_record(data, 1, |r| {
        records += 1;
        let bytes = r.bytes();
        for &(s, e) in r.ranges() {
            assert!(s <= e && (e as usize) <= bytes.len());
        }
        let _ = r.raw_text();
    });
    assert!(records <= lines + 1);
    if let Some(line) = unterminated {
        assert!(line >= 1 && line <= lines + 1);
    }
});
