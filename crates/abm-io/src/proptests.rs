//! Property tests of the hand-written readers against well-kept crates as oracles: the CSV
//! scanner against `csv`, the JSON Lines template reader against `serde_json`.

use proptest::prelude::*;

/// A field over an alphabet that exercises quoting: separators, quotes, line breaks, spaces,
/// multi-byte text.
fn field() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("a"),
            Just("B"),
            Just("7"),
            Just(","),
            Just("\""),
            Just("\n"),
            Just("\r\n"),
            Just(" "),
            Just("é"),
            Just("\t"),
            Just(";"),
        ],
        0..8,
    )
    .prop_map(|parts| parts.concat())
}

fn quote(f: &str, always: bool) -> String {
    if always || f.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_string()
    }
}

/// Records as RFC 4180 text (LF or CRLF line ends, some fields quoted without need).
fn csv_text() -> impl Strategy<Value = (Vec<Vec<String>>, String)> {
    (
        1usize..5,
        proptest::collection::vec(
            (
                proptest::collection::vec((field(), any::<bool>()), 5),
                any::<bool>(),
            ),
            1..20,
        ),
        any::<bool>(),
    )
        .prop_map(|(width, rows, crlf)| {
            let mut text = String::new();
            let mut records = Vec::new();
            for (fields, last_newline) in rows {
                let fields: Vec<(String, bool)> = fields.into_iter().take(width).collect();
                let rec: Vec<String> = fields.iter().map(|(f, _)| f.clone()).collect();
                // A record whose only field is empty is a blank line: both readers skip it.
                let blank = rec.len() == 1 && rec[0].is_empty();
                let line: Vec<String> = fields.iter().map(|(f, q)| quote(f, *q || blank)).collect();
                text.push_str(&line.join(","));
                text.push_str(if crlf { "\r\n" } else { "\n" });
                let _ = last_newline;
                records.push(rec);
            }
            (records, text)
        })
}

fn abm_records(text: &[u8]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let (_, unterminated) = crate::csv::for_each_record(text, 1, |r| {
        out.push(
            (0..r.len())
                .map(|i| String::from_utf8(r.get(i).to_vec()).unwrap())
                .collect(),
        )
    });
    assert_eq!(unterminated, None);
    out
}

fn oracle_records(text: &[u8]) -> Vec<Vec<String>> {
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text);
    rd.records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The scanner reads back exactly the fields that were written, as `csv` does.
    #[test]
    fn csv_scanner_agrees_with_the_csv_crate((records, text) in csv_text()) {
        let ours = abm_records(text.as_bytes());
        let theirs = oracle_records(text.as_bytes());
        prop_assert_eq!(&ours, &theirs, "text: {:?}", text);
        prop_assert_eq!(&ours, &records);
    }

    /// Without a trailing line break the last record is still read whole.
    #[test]
    fn csv_last_record_without_a_line_break((_, text) in csv_text()) {
        let cut = text.trim_end_matches(['\r', '\n']);
        prop_assert_eq!(abm_records(cut.as_bytes()), oracle_records(cut.as_bytes()));
    }

    /// Any line the template reader accepts gives exactly the string values `serde_json`
    /// reads from it; plain lines (values with no escapes or control bytes) are accepted.
    #[test]
    fn json_template_agrees_with_serde_json(
        keys in proptest::collection::vec("[a-z_]{1,12}", 1..8),
        values in proptest::collection::vec(prop_oneof![
            "[ -~]{0,20}",
            "[a-zé€ ]{0,12}",
            Just(String::from("quote\"inside")),
            Just(String::from("back\\slash")),
            Just(String::from("tab\there")),
        ], 8),
    ) {
        let mut keys = keys;
        keys.dedup();
        let mut seen = std::collections::BTreeSet::new();
        keys.retain(|k| seen.insert(k.clone()));
        let values: Vec<String> = values.into_iter().take(keys.len()).collect();
        prop_assume!(values.len() == keys.len());
        let header: Vec<String> = keys.clone();
        let t = crate::source::JsonTemplate::new(&header).expect("plain keys");
        let obj: serde_json::Map<String, serde_json::Value> = keys
            .iter()
            .zip(&values)
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        // serde_json keeps insertion order only with preserve_order; write the line by hand.
        let mut line = String::from("{");
        for (i, (k, v)) in keys.iter().zip(&values).enumerate() {
            if i > 0 {
                line.push(',');
            }
            line.push_str(&serde_json::to_string(k).unwrap());
            line.push(':');
            line.push_str(&serde_json::to_string(v).unwrap());
        }
        line.push('}');
        let parsed: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&line).unwrap();
        prop_assert_eq!(&parsed, &obj);
        let mut bounds = [(0u32, 0u32); crate::source::MAX_FAST_COLS];
        let ok = t.fields(line.as_bytes(), 0, &mut bounds);
        let plain = values
            .iter()
            .all(|v| !v.bytes().any(|c| c == b'"' || c == b'\\' || c < 0x20));
        prop_assert_eq!(ok, plain, "line {}", line);
        if ok {
            for (k, (s, e)) in keys.iter().zip(bounds) {
                let got = &line.as_bytes()[s as usize..e as usize];
                prop_assert_eq!(got, parsed[k].as_str().unwrap().as_bytes());
            }
        }
    }
}
