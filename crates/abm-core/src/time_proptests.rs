//! Property tests of the timestamp parsers against `chrono` as the oracle, and of the
//! remembering parser against the plain one.

use crate::time::{
    civil_from_days, parse_bytes, Generic, Instant, TimestampParser, MICROS_PER_DAY,
};
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Zone {
    Naive,
    Z,
    Offset(bool, u32, u32),
}

fn stamp() -> impl Strategy<Value = (String, bool)> {
    (
        1900i32..2100,
        1u32..=13,
        1u32..=31,
        0u32..=24,
        0u32..=59,
        0u32..=59,
        prop::option::of("[0-9]{1,6}"),
        prop_oneof![
            Just(Zone::Naive),
            Just(Zone::Z),
            (
                any::<bool>(),
                0u32..=14,
                prop_oneof![Just(0u32), Just(30), Just(45)]
            )
                .prop_map(|(p, h, m)| Zone::Offset(p, h, m)),
        ],
        any::<bool>(),
    )
        .prop_map(|(y, mo, d, h, mi, s, frac, zone, date_only)| {
            if date_only {
                return (format!("{y:04}-{mo:02}-{d:02}"), true);
            }
            let mut t = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
            if let Some(f) = frac {
                t.push('.');
                t.push_str(&f);
            }
            match zone {
                Zone::Naive => {}
                Zone::Z => t.push('Z'),
                Zone::Offset(plus, oh, om) => {
                    t.push_str(&format!("{}{oh:02}:{om:02}", if plus { '+' } else { '-' }))
                }
            }
            (t, false)
        })
}

/// What chrono makes of the same text, in microseconds since the epoch (UTC; naive = UTC).
fn oracle(t: &str, date_only: bool) -> Option<i64> {
    if date_only {
        return NaiveDate::parse_from_str(t, "%Y-%m-%d")
            .ok()
            .map(|d| d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_micros());
    }
    if t.ends_with('Z') || t[19..].contains(['+', '-']) {
        return DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|d| d.timestamp_micros());
    }
    NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|d| d.and_utc().timestamp_micros())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The hand-written RFC 3339 text equals the formatter's for every instant of years 0 to
    /// 9999 (whole seconds and every fraction length), and declines the others.
    #[test]
    fn fast_instant_text_equals_the_formatters(
        micros in -62_200_000_000_000_000i64..253_500_000_000_000_000,
        trim in 0u32..7,
    ) {
        let t = Instant(micros - micros.rem_euclid(10i64.pow(trim)));
        let mut buf = [0u8; 27];
        let want = Generic(t).to_string();
        let (year, _, _) = civil_from_days(t.0.div_euclid(MICROS_PER_DAY));
        match t.rfc3339_into(&mut buf) {
            Some(got) => prop_assert_eq!(got, want.as_str()),
            None => prop_assert!(!(0..=9999).contains(&year), "{}", want),
        }
        prop_assert_eq!(serde_json::to_string(&t).unwrap(), format!("{:?}", t.to_string()));
    }

    /// Valid and invalid dates, times, fractions and zones: accepted exactly when chrono
    /// accepts them, at the same instant.
    #[test]
    fn timestamps_agree_with_chrono((t, date_only) in stamp()) {
        let ours = parse_bytes(t.as_bytes()).map(|i| i.0);
        prop_assert_eq!(ours, oracle(&t, date_only), "{}", t);
    }

    /// The remembering parser gives what the plain one gives, whatever came before, for
    /// valid stamps and for every one-byte change of them.
    #[test]
    fn the_remembering_parser_agrees(
        stamps in proptest::collection::vec(stamp(), 1..40),
        edits in proptest::collection::vec((0usize..20, any::<u8>()), 0..40),
    ) {
        let mut p = TimestampParser::default();
        let mut inputs: Vec<Vec<u8>> = stamps.iter().map(|(t, _)| t.as_bytes().to_vec()).collect();
        for (k, (pos, byte)) in edits.iter().enumerate() {
            let mut b = inputs[k % inputs.len()].clone();
            if *pos < b.len() {
                b[*pos] = *byte;
            }
            inputs.push(b);
        }
        for b in inputs.iter().chain(inputs.iter()) {
            prop_assert_eq!(p.parse(b), parse_bytes(b), "{:?}", String::from_utf8_lossy(b));
        }
    }
}

#[test]
fn instants_are_microseconds_since_the_epoch() {
    assert_eq!(
        parse_bytes(b"1970-01-02T00:00:01Z"),
        Some(Instant(86_401_000_000))
    );
}
