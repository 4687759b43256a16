//! The JSON Lines template reader on arbitrary lines: whatever it accepts, `serde_json` reads
//! as an object whose values, in the header's order, are exactly the slices it returned.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The fold checks each block's UTF-8 once before it offers lines to the template (the
    // template's precondition; found by this target: it passes invalid bytes through).
    if std::str::from_utf8(data).is_err() {
        return;
    }
    let header = ["account_id", "occurred_at", "type", "contact_id"].map(String::from);
    let Some(values) = abm_io::fuzzing::json_template_fields(&header, data) else {
        return;
    };
    let obj: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(data).expect("an accepted line is JSON");
    assert_eq!(obj.len(), header.len());
    for (k, v) in header.iter().zip(values) {
        assert_eq!(obj[k].as_str().expect("a string").as_bytes(), v);
    }
});
