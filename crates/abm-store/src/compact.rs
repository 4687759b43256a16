//! Phrase codes for the long, repetitive texts of a run's rows (issue 15: history that grows
//! less per row). The evidence JSON, the rationale, the program and the promotion triggers that
//! `snapshots`, `proposal_rows` and `current_rows` keep are made of a few phrases that `abm-core` writes again and again
//! (`[{"kind":"tier","detail":"`, `; no triggers; rule `, the default event types, …): stored,
//! each such phrase is one byte (or two), behind a leading [`MARK`] byte.
//!
//! The format, all ASCII control bytes (so the stored text stays UTF-8, and never holds the NUL
//! byte PostgreSQL refuses in text):
//! - `\x01` first: the text is coded; any other text is stored as it is (rows written before
//!   this format, and texts that coding would not make shorter) and read as it is;
//! - in a coded text, `\x01 X` is the byte `X` itself (a byte `\x01`–`\x1f` of the plain text),
//!   `\x02`–`\x1e` is one of the first [`SHORT`] phrases, `\x1f Y` (`Y` from `\x20`) one of the
//!   others, and every other byte is itself.
//!
//! The dictionary is fixed: a phrase is never removed or moved (stored rows name it by its
//! place), new phrases may only be appended. Hashes (the rows' content hash, signatures) are
//! computed over the plain texts, never over the coded ones.

use std::borrow::Cow;
use std::sync::OnceLock;

/// The first byte of a coded text; inside one, the escape of a literal byte `\x01`–`\x1f`.
const MARK: u8 = 0x01;
/// First one-byte code.
const FIRST: u8 = 0x02;
/// The two-byte codes' first byte.
const LONG: u8 = 0x1f;
/// The second byte of a two-byte code starts here.
const LONG_BASE: u8 = 0x20;
/// Phrases with a one-byte code (`\x02`–`\x1e`).
const SHORT: usize = (LONG - FIRST) as usize;

/// The phrases, most frequent first. Append only (see the module's note).
const PHRASES: &[&str] = &[
    // One-byte codes (29).
    "[{\"kind\":\"tier\",\"detail\":\"",
    ")\",\"at\":null}",
    ",{\"kind\":\"event\",\"detail\":\"",
    " (low)\",\"at\":\"20",
    " (medium)\",\"at\":\"20",
    " (high)\",\"at\":\"20",
    "\"}]",
    "\"},",
    "; no triggers; rule ",
    "tier ",
    " (score); ",
    " (input); ",
    " (score ",
    "website_visit",
    "email_open",
    "ad_click",
    " events, ",
    " contacts",
    "low via ",
    "medium via ",
    "high via ",
    "; rule ",
    " 20",
    ",{\"kind\":\"trigger\",\"detail\":\"",
    "\",\"at\":\"20",
    " trigger (",
    " triggers (",
    " (score, missing ",
    "none",
    // Two-byte codes.
    "content_download",
    "webinar_attended",
    "email_reply",
    "outreach_response",
    "linkedin_connection_accepted",
    "intent_page_visit",
    "event_attended",
    "meeting",
    "demo",
    "challenge_validated",
    "budget_expressed",
    "timeline_expressed",
    "champion_left",
    "budget_cycle_missed",
    "no_priority",
    "funding_round",
    "leadership_change",
    "merger_acquisition",
    "expansion",
    "hiring_surge",
    "product_launch",
    "regulatory_change",
    "intent_surge",
    "layoffs",
    "tech_change",
    ",{\"kind\":\"contacts\",\"detail\":\"",
    " engaged contacts (",
    " engaged contacts",
    ",{\"kind\":\"deal\",\"detail\":\"open deal ",
    " via open deal ",
    "[{\"kind\":\"deal\",\"detail\":\"deal ",
    " won 20",
    "[{\"kind\":\"tier\",\"detail\":\"tier fell to ",
    "{\"kind\":\"signal\",\"detail\":\"",
    "[{\"kind\":\"inactivity\",\"detail\":\"no Medium+ engagement since 20",
    "[{\"kind\":\"inactivity\",\"detail\":\"no engagement since 20",
    " (input, missing ",
    " event, ",
    " contact",
    "; evidence counted after the demotion of 20",
    ": a promotion that needs a reviewer; effective ",
    "; effective ",
    ": no demotion rule fired",
    " gives ",
    "; customer track (no decision-table row)",
    "; customer (",
    " won, last 20",
    " lost)",
    "cluster_icp",
    "future_pipeline",
    "active_focus",
    "monitor_only",
    "industry",
    "employees",
    "annual_revenue",
    "country",
    "tech_stack",
    ")\",\"at\":\"20",
    "T00:00:00Z",
    "; 1 trigger (",
    "automated_demand_gen",
    "sdr_marketing_nurture",
    "one_to_one_abm",
    "monitor",
    "@20",
];

// Every phrase has a code: the one-byte codes and 95 two-byte ones.
const _: () = assert!(PHRASES.len() <= SHORT + (0x7f - LONG_BASE) as usize);

/// Phrase indices by first byte, longest first.
fn by_first() -> &'static [Vec<u8>; 128] {
    static T: OnceLock<[Vec<u8>; 128]> = OnceLock::new();
    T.get_or_init(|| {
        let mut t: [Vec<u8>; 128] = std::array::from_fn(|_| Vec::new());
        for (i, p) in PHRASES.iter().enumerate() {
            debug_assert!(p.is_ascii() && p.len() > 2);
            t[p.as_bytes()[0] as usize].push(i as u8);
        }
        for v in t.iter_mut() {
            v.sort_by_key(|&i| std::cmp::Reverse(PHRASES[i as usize].len()));
        }
        t
    })
}

/// `s` as it is stored: coded when that makes it shorter (or when it starts with [`MARK`]).
pub(crate) fn encode(s: &str) -> Cow<'_, str> {
    let b = s.as_bytes();
    let table = by_first();
    let mut out: Vec<u8> = Vec::with_capacity(b.len() / 2 + 8);
    out.push(MARK);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c < 0x80 {
            let rest = &b[i..];
            if let Some(&p) = table[c as usize]
                .iter()
                .find(|&&p| rest.starts_with(PHRASES[p as usize].as_bytes()))
            {
                let p = p as usize;
                if p < SHORT {
                    out.push(FIRST + p as u8);
                } else {
                    out.push(LONG);
                    out.push(LONG_BASE + (p - SHORT) as u8);
                }
                i += PHRASES[p].len();
                continue;
            }
            if (MARK..=LONG).contains(&c) {
                out.push(MARK);
            }
        }
        out.push(c);
        i += 1;
    }
    if out.len() >= b.len() && b.first() != Some(&MARK) {
        return Cow::Borrowed(s);
    }
    // Only ASCII was replaced, by ASCII, at character boundaries.
    Cow::Owned(String::from_utf8(out).expect("coding keeps UTF-8"))
}

/// A stored text as it was written ([`encode`]'s inverse); `Err` names what is wrong with a
/// coded text that cannot be read.
pub(crate) fn decode(s: &str) -> Result<Cow<'_, str>, String> {
    let b = s.as_bytes();
    if b.first() != Some(&MARK) {
        return Ok(Cow::Borrowed(s));
    }
    let mut out: Vec<u8> = Vec::with_capacity(b.len() * 3);
    let mut i = 1;
    while i < b.len() {
        let c = b[i];
        i += 1;
        match c {
            MARK => {
                let &x = b.get(i).ok_or("an escape at the end")?;
                out.push(x);
                i += 1;
            }
            LONG => {
                let &x = b.get(i).ok_or("a two-byte code cut short")?;
                let p = (x as usize)
                    .checked_sub(LONG_BASE as usize)
                    .map(|k| k + SHORT)
                    .filter(|&p| p < PHRASES.len())
                    .ok_or_else(|| format!("an unknown code \\x1f{x:#04x}"))?;
                out.extend_from_slice(PHRASES[p].as_bytes());
                i += 1;
            }
            FIRST..=0x1e => out.extend_from_slice(PHRASES[(c - FIRST) as usize].as_bytes()),
            _ => out.push(c),
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| "not UTF-8 once decoded".to_string())
}

/// [`decode`] of `table.column`, an error naming them.
pub(crate) fn read(table: &str, column: &str, s: &str) -> Result<String, crate::StoreError> {
    decode(s)
        .map(Cow::into_owned)
        .map_err(|e| crate::StoreError::Corrupt(format!("{table}.{column} holds {s:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round(s: &str) {
        let e = encode(s);
        assert_eq!(decode(&e).unwrap(), s, "{e:?}");
        assert!(e.len() <= s.len() + 1 + s.len(), "{e:?}");
    }

    #[test]
    fn typical_rows_shrink_and_come_back() {
        let ev = r#"[{"kind":"tier","detail":"B (score 62.5)","at":null},{"kind":"event","detail":"website_visit (low)","at":"2026-10-12T10:11:12Z"},{"kind":"trigger","detail":"funding_round","at":"2026-09-01T00:00:00Z"}]"#;
        let why = "tier B (score); medium via webinar_attended 2026-10-12; 4 events, 2 contacts; 1 trigger (funding_round 2026-09-01); rule 5";
        for s in [ev, why] {
            round(s);
            let e = encode(s);
            assert!(e.len() * 2 < s.len(), "{} → {}: {e:?}", s.len(), e.len());
        }
    }

    #[test]
    fn edge_cases() {
        for s in [
            "",
            "\u{1}",
            "\u{1}\u{1}",
            "\u{1f}",
            "\u{1f} ",
            "tier ",
            "\u{1}tier ",
            "\t\n\r\u{2}",
            "é tier ü 20 \u{7f}",
            "\u{0}tier\u{0}",
            "20",
            "x",
        ] {
            round(s);
        }
        // Old rows (no mark) read as they are.
        assert_eq!(decode("tier A (input)").unwrap(), "tier A (input)");
        assert!(decode("\u{1}\u{1}").is_err());
        assert!(decode("\u{1}\u{1f}").is_err());
        assert!(decode("\u{1}\u{1f}\u{7e}").is_err());
    }

    #[test]
    fn every_phrase_is_its_own_code() {
        for (i, p) in PHRASES.iter().enumerate() {
            assert!(p.is_ascii() && !p.is_empty(), "{i}");
            assert!(!p.bytes().any(|b| b < 0x20), "{i}");
            round(p);
            let e = encode(p);
            assert_eq!(e.len(), if i < SHORT { 2 } else { 3 }, "{i} {p:?}");
        }
        let mut seen = std::collections::HashSet::new();
        assert!(PHRASES.iter().all(|p| seen.insert(p)), "a phrase twice");
    }

    /// Rows written before the codes (plain texts) read as the coded rows do: a small story's
    /// history and export, then the same after every coded text of every row is rewritten
    /// plain, as an older abm left it.
    fn old_rows_read_as_coded_ones(url: &str) {
        use crate::db::{ConnExt, RowExt, Value};
        use crate::{ImportInputs, RunOptions, Store};
        use abm_core::{Config, Instant, Rules};
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| -> abm_io::source::InputSource {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p.into()
        };
        let config = Config::default();
        let mut store = Store::open(url).unwrap();
        let inputs = ImportInputs {
            accounts: Some(write(
                "accounts.csv",
                "account_id,name,industry,employees,icp_score,icp_tier\n\
                 A1,A1 Corp,software,500,90,A\nB2,B2 Corp,software,500,70,B\n\
                 C3,C3 Corp,,500,55,C\nD4,D4 Corp,software,500,40,D\n",
            )),
            engagement: Some(write(
                "engagement.csv",
                "account_id,occurred_at,type,contact_id\nA1,2026-01-20T10:00:00Z,meeting,c7\n\
                 B2,2026-01-02,email_reply,c1\nB2,2026-01-03,website_visit,c2\n\
                 D4,2026-01-25,demo,c9\n",
            )),
            more_engagement: Vec::new(),
            triggers: Some(write(
                "triggers.csv",
                "account_id,occurred_at,type,source,headline\nC3,2026-01-15,funding_round,news,B\n",
            )),
            deals: None,
        };
        store
            .import(&inputs, &abm_io::load::LoadOptions::new(&config))
            .unwrap();
        let as_of = Instant::parse("2026-02-01").unwrap();
        let rules = Rules::compile(&config, as_of).unwrap();
        let opts = RunOptions {
            as_of,
            full: false,
            threads: 1,
            log: &|_| {},
            progress: &|_, _, _| {},
        };
        store.run(&rules, &opts).unwrap();
        let views = |store: &mut Store| {
            let mut rows = crate::testing::export_json(store);
            for id in ["A1", "B2", "C3", "D4"] {
                rows.push(serde_json::to_string(&store.history(id).unwrap()).unwrap());
            }
            rows
        };
        let coded = views(&mut store);
        assert!(coded.iter().any(|r| r.contains("meeting")), "{coded:?}");
        let conn = store.conn();
        const COLS: [&str; 4] = ["evidence", "rationale", "program", "promotion_triggers"];
        let rows = conn
            .query_all(
                &format!("SELECT run, account, {} FROM snapshots", COLS.join(", ")),
                &[],
                |r| {
                    Ok((
                        r.i(0)?,
                        r.i(1)?,
                        (2..6).map(|k| r.string(k)).collect::<Result<Vec<_>, _>>()?,
                    ))
                },
            )
            .unwrap();
        assert!(rows.iter().all(|(_, _, v)| v[0].starts_with(MARK as char)));
        for (run, account, v) in rows {
            for (col, text) in COLS.iter().zip(&v) {
                let plain = decode(text).unwrap();
                assert!(plain.len() >= text.len(), "{col}: {plain:?} vs {text:?}");
                conn.execute(
                    &format!("UPDATE snapshots SET {col} = ? WHERE run = ? AND account = ?"),
                    &[Value::Text(&plain), Value::Int(run), Value::Int(account)],
                )
                .unwrap();
            }
        }
        assert_eq!(views(&mut store), coded);
    }

    #[test]
    fn old_rows_read_as_coded_ones_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        old_rows_read_as_coded_ones(&dir.path().join("abm.db").display().to_string());
    }

    #[test]
    #[ignore = "needs PostgreSQL: set ABM_TEST_PG_URL (run by .ci/run)"]
    fn old_rows_read_as_coded_ones_on_postgres() {
        crate::testing::in_pg_schema("compact_old", old_rows_read_as_coded_ones);
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(s in ".*") {
            let e = encode(&s);
            prop_assert_eq!(decode(&e).unwrap(), s.as_str());
        }

        #[test]
        fn decode_inverts_encode_with_codes_and_phrases(
            parts in proptest::collection::vec(
                prop_oneof![
                    (0u8..0x80).prop_map(|b| (b as char).to_string()),
                    (0..PHRASES.len()).prop_map(|i| PHRASES[i].to_string()),
                    proptest::collection::vec(0u8..0x20, 0..3)
                        .prop_map(|v| v.into_iter().map(char::from).collect::<String>()),
                    any::<char>().prop_map(|c| c.to_string()),
                ],
                0..40,
            )
        ) {
            let s: String = parts.concat();
            let e = encode(&s);
            prop_assert_eq!(decode(&e).unwrap(), s.as_str());
        }
    }
}
