//! The output formats of SPEC §4.7, written atomically (temp file + rename): a failed run
//! leaves the previous outputs in place.

use crate::load::Rejection;
use abm_core::summary::{CapacityStatus, ClusterCounts};
use serde::Serialize;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

mod escape;
mod files;

pub use escape::*;
pub use files::*;

pub const ASSIGNMENT_COLUMNS: &[&str] = &[
    "account_id",
    "name",
    "icp_score",
    "tier",
    "engagement_level",
    "has_triggers",
    "cluster",
    "previous_cluster",
    "movement",
    "promotion_triggers",
    "program_type",
    "micro_segment",
    "next_action",
    "checkpoint",
    "rationale",
];

/// serde's rendering of `icp_score`: what [`json_number`] writes.
fn score_as_number<S: serde::Serializer>(v: &&str, s: S) -> Result<S::Ok, S::Error> {
    let mut out = Vec::new();
    json_number(&mut out, v);
    let value: serde_json::Value =
        serde_json::from_slice(&out).map_err(serde::ser::Error::custom)?;
    serde::Serialize::serialize(&value, s)
}

/// One row of `cluster_assignments.{csv,jsonl}`, in SPEC §4.7's value formats.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AssignmentRow<'a> {
    pub account_id: &'a str,
    pub name: &'a str,
    /// `85`, `72.5`; a JSON number in JSON Lines.
    #[serde(serialize_with = "score_as_number")]
    pub icp_score: &'a str,
    pub tier: &'a str,
    pub engagement_level: &'a str,
    pub has_triggers: bool,
    pub cluster: &'a str,
    /// Empty in stateless output.
    pub previous_cluster: &'a str,
    /// Empty in stateless output.
    pub movement: &'a str,
    /// `type@RFC3339;…`, newest first.
    pub promotion_triggers: &'a str,
    pub program_type: &'a str,
    pub micro_segment: &'a str,
    pub next_action: &'a str,
    /// Checkpoint kind(s) open for this account, `;`-separated.
    pub checkpoint: &'a str,
    pub rationale: &'a str,
    /// With the segment column (`--segment-column`, `[analytics] segment_column`): the
    /// `[[segments]]` the account is in, `;`-separated (empty for none), after `rationale`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<&'a str>,
}
/// all but `icp_score` (a number abm formats: `-5` stays a number) and `has_triggers`.
/// The columns of an assignment row whose text may come from the data (bit per column):
const TEXT_COLUMNS: u32 = !(1 << 2 | 1 << HAS_TRIGGERS as u32);

/// Position of `has_triggers`, the one value that is a JSON boolean, not a string.
const HAS_TRIGGERS: usize = 5;

/// Position of `icp_score`, a JSON number (issue 14), `null` when empty.
const ICP_SCORE: usize = 2;

/// `v` as a JSON number when it is one abm wrote (digits, one `.`, a leading `-`), `null`
/// when empty, else (never for abm's own scores) as a string.
#[inline]
fn json_number(out: &mut Vec<u8>, v: &str) {
    let b = v.as_bytes();
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    let plain = !digits.is_empty()
        && digits[0].is_ascii_digit()
        && digits[digits.len() - 1].is_ascii_digit()
        && digits.iter().all(|c| c.is_ascii_digit() || *c == b'.')
        && digits.iter().filter(|c| **c == b'.').count() <= 1
        && !(digits.len() > 1 && digits[0] == b'0' && digits[1].is_ascii_digit());
    if b.is_empty() {
        out.extend_from_slice(b"null");
    } else if plain {
        out.extend_from_slice(b);
    } else {
        json_str(out, v);
    }
}

/// Each JSON key with its surrounding punctuation, so a field is one copy plus its value.
const JSON_KEYS: [&[u8]; 15] = [
    b"{\"account_id\":",
    b",\"name\":",
    b",\"icp_score\":",
    b",\"tier\":",
    b",\"engagement_level\":",
    b",\"has_triggers\":",
    b",\"cluster\":",
    b",\"previous_cluster\":",
    b",\"movement\":",
    b",\"promotion_triggers\":",
    b",\"program_type\":",
    b",\"micro_segment\":",
    b",\"next_action\":",
    b",\"checkpoint\":",
    b",\"rationale\":",
];

impl AssignmentRow<'_> {
    pub fn write_csv(&self, out: &mut Vec<u8>) {
        let values = self.values();
        let values = values.iter().copied().chain(self.segment);
        // Room for every value quoted with every byte doubled and a formula's `'`, commas
        // and the line end.
        let room: usize = values.clone().map(|v| 2 * v.len() + 4).sum();
        out.reserve(room);
        let start = out.len();
        // SAFETY: `room` bytes from `start` are allocated (reserved above) and each value
        // writes at most `2 * len + 4` of them (with its comma); `set_len` covers only bytes
        // written. Values are `&str` borrowed from elsewhere: no overlap with `out`.
        unsafe {
            let base = out.as_mut_ptr().add(start);
            let mut at = 0usize;
            for (i, v) in values.enumerate() {
                if i > 0 {
                    *base.add(at) = b',';
                    at += 1;
                }
                let b = v.as_bytes();
                let lead = TEXT_COLUMNS >> i & 1 != 0 && formula_cell(b);
                match csv_needs(b) {
                    (false, _) => {
                        if lead {
                            *base.add(at) = b'\'';
                            at += 1;
                        }
                        put(base.add(at), b);
                        at += b.len();
                    }
                    (true, false) => {
                        *base.add(at) = b'"';
                        at += 1;
                        if lead {
                            *base.add(at) = b'\'';
                            at += 1;
                        }
                        put(base.add(at), b);
                        *base.add(at + b.len()) = b'"';
                        at += b.len() + 1;
                    }
                    (true, true) => {
                        *base.add(at) = b'"';
                        at += 1;
                        if lead {
                            *base.add(at) = b'\'';
                            at += 1;
                        }
                        for &c in b {
                            *base.add(at) = c;
                            at += 1;
                            if c == b'"' {
                                *base.add(at) = b'"';
                                at += 1;
                            }
                        }
                        *base.add(at) = b'"';
                        at += 1;
                    }
                }
            }
            *base.add(at) = b'\n';
            out.set_len(start + at + 1);
        }
    }

    /// [`Self::write_csv`] and [`Self::write_jsonl`] in one pass over the values (each value
    /// is scanned once for what either format must escape).
    pub fn write_both(&self, csv: &mut Vec<u8>, json: &mut Vec<u8>) {
        let values = self.values();
        let bytes: usize = values.iter().map(|v| v.len()).sum();
        csv.reserve(2 * bytes + 3 * values.len());
        json.reserve(bytes + 256);
        for (i, (k, v)) in JSON_KEYS.iter().zip(values).enumerate() {
            if i > 0 {
                csv.push(b',');
            }
            push_bytes(json, k);
            if i == HAS_TRIGGERS {
                push_bytes(csv, v.as_bytes());
                push_bytes(json, v.as_bytes());
                continue;
            }
            if i == ICP_SCORE {
                let (c, _) = needs_escape_both(v.as_bytes());
                csv_field_known(csv, v, c, false);
                json_number(json, v);
                continue;
            }
            let (c, j) = needs_escape_both(v.as_bytes());
            let lead = TEXT_COLUMNS >> i & 1 != 0 && formula_cell(v.as_bytes());
            csv_field_known(csv, v, c, lead);
            json_str_known(json, v, j);
        }
        if let Some(v) = self.segment {
            csv.push(b',');
            push_bytes(json, SEGMENT_KEY);
            let (c, j) = needs_escape_both(v.as_bytes());
            csv_field_known(csv, v, c, formula_cell(v.as_bytes()));
            json_str_known(json, v, j);
        }
        csv.push(b'\n');
        json.extend_from_slice(b"}\n");
    }

    /// The values in column order (`has_triggers` as `true`/`false`).
    fn values(&self) -> [&str; 15] {
        [
            self.account_id,
            self.name,
            self.icp_score,
            self.tier,
            self.engagement_level,
            if self.has_triggers { "true" } else { "false" },
            self.cluster,
            self.previous_cluster,
            self.movement,
            self.promotion_triggers,
            self.program_type,
            self.micro_segment,
            self.next_action,
            self.checkpoint,
            self.rationale,
        ]
    }

    pub fn write_jsonl(&self, out: &mut Vec<u8>) {
        for (i, (k, v)) in JSON_KEYS.iter().zip(self.values()).enumerate() {
            out.extend_from_slice(k);
            if i == HAS_TRIGGERS {
                out.extend_from_slice(v.as_bytes()); // a JSON boolean
            } else if i == ICP_SCORE {
                json_number(out, v);
            } else {
                json_str(out, v);
            }
        }
        if let Some(v) = self.segment {
            out.extend_from_slice(SEGMENT_KEY);
            json_str(out, v);
        }
        out.extend_from_slice(b"}\n");
    }
}

/// The segment column's JSON key, after `rationale`.
const SEGMENT_KEY: &[u8] = b",\"segment\":";

/// The assignments' CSV header, with the segment column last when asked.
pub fn csv_header(segment_column: bool) -> Vec<u8> {
    let mut v = Vec::new();
    let extra = segment_column.then_some("segment");
    csv_line(&mut v, ASSIGNMENT_COLUMNS.iter().copied().chain(extra));
    v
}

/// `cluster_summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub as_of: String,
    pub config_hash: String,
    pub accounts: u64,
    pub cluster_icp_count: u64,
    pub future_pipeline_count: u64,
    pub active_focus_count: u64,
    pub monitor_only_count: u64,
    /// The customer track (`[customers] mode = "track"`); absent when 0.
    #[serde(skip_serializing_if = "is_zero", default)]
    pub customer_count: u64,
    pub capacity: CapacityStatus,
    /// Checkpoint kind → count (`capacity`, `conflict`, …).
    pub checkpoints: std::collections::BTreeMap<String, u64>,
    pub rejected_rows: u64,
    /// Rows read per input file kind.
    pub rows_read: std::collections::BTreeMap<String, u64>,
    /// Engagement events dated after `as_of` (ignored, not errors).
    pub events_after_as_of: u64,
    /// Fields of ICP criteria that no input provides: left out of the points possible for
    /// every account (absent when every criterion has data).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub criteria_without_data: Vec<String>,
    /// Why the outcome is degenerate, in words (e.g. every account in Monitor Only).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub notes: Vec<String>,
}

impl Summary {
    pub fn counts(&self) -> ClusterCounts {
        ClusterCounts {
            cluster_icp: self.cluster_icp_count,
            future_pipeline: self.future_pipeline_count,
            active_focus: self.active_focus_count,
            monitor_only: self.monitor_only_count,
            customer: self.customer_count,
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting_and_json_lines() {
        let row = AssignmentRow {
            account_id: "A1",
            name: "Acme, \"Inc\"",
            icp_score: "85",
            tier: "A",
            engagement_level: "high",
            has_triggers: true,
            cluster: "active_focus",
            previous_cluster: "",
            movement: "",
            promotion_triggers: "funding_round@2026-10-01T00:00:00Z",
            program_type: "one_to_one_abm",
            micro_segment: "",
            next_action: "x",
            checkpoint: "",
            rationale: "line1\nline2",
            segment: None,
        };
        let mut v = Vec::new();
        row.write_csv(&mut v);
        let s = String::from_utf8(v).unwrap();
        assert!(s.starts_with("A1,\"Acme, \"\"Inc\"\"\",85,A,high,true,active_focus,,,"));
        assert!(s.ends_with(",x,,\"line1\nline2\"\n"));
        let mut v = Vec::new();
        row.write_jsonl(&mut v);
        let j: serde_json::Value = serde_json::from_slice(&v).unwrap();
        assert_eq!(j["has_triggers"], true);
        assert_eq!(j["name"], "Acme, \"Inc\"");
        assert_eq!(j["rationale"], "line1\nline2");
        assert_eq!(
            serde_json::to_value(&row).unwrap(),
            j,
            "same as serde's rendering"
        );
        // Both formats in one pass equal each written alone, for every kind of value.
        let texts = [
            "",
            "plain",
            "a,b",
            "q\"uote",
            "cr\rlf\n",
            "tab\tctl\u{1}",
            "back\\slash",
            "a long value without anything special in it at all",
            "a long value, with a comma and a \"quote\" and a \\ backslash\n",
            "é ü ß long enough to take the vector loop of the scan",
        ];
        for (i, t) in texts.iter().enumerate() {
            let u = texts[(i * 7 + 3) % texts.len()];
            let r = AssignmentRow {
                name: t,
                rationale: u,
                next_action: t,
                micro_segment: u,
                has_triggers: i % 2 == 0,
                // The segment column, when asked, after `rationale`.
                segment: (i % 3 == 0).then_some(u),
                ..row
            };
            let (mut c1, mut j1, mut c2, mut j2) = (vec![], vec![], vec![], vec![]);
            r.write_csv(&mut c1);
            r.write_jsonl(&mut j1);
            r.write_both(&mut c2, &mut j2);
            assert_eq!(String::from_utf8_lossy(&c2), String::from_utf8_lossy(&c1));
            assert_eq!(String::from_utf8_lossy(&j2), String::from_utf8_lossy(&j1));
            let v: serde_json::Value = serde_json::from_slice(&j1).unwrap();
            assert_eq!(v.get("segment").and_then(|s| s.as_str()), r.segment);
            assert_eq!(
                v.as_object().unwrap().len(),
                15 + r.segment.is_some() as usize
            );
            let mut fields = 0;
            crate::csv::for_each_record(&c1, 1, |rec| fields = rec.len());
            assert_eq!(fields, 15 + r.segment.is_some() as usize);
        }
        let mut v = Vec::new();
        json_str(&mut v, "tab\there \u{1} back\\slash é");
        assert_eq!(
            serde_json::from_slice::<String>(&v).unwrap(),
            "tab\there \u{1} back\\slash é"
        );
    }

    #[test]
    fn escape_detection_matches_the_scalar_rule() {
        for s in [
            "plain text that is longer than sixteen bytes",
            "a,b",
            "x\"y",
            "tab\there",
            "line\nbreak",
            "0123456789abcdef,",
            "0123456789abcdef\u{1f}",
            "é ü ß ok but long enough to vectorize",
        ] {
            let csv = s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'));
            let json = s.bytes().any(|c| c < 0x20 || c == b'"' || c == b'\\');
            assert_eq!(needs_escape(s.as_bytes(), false), json, "{s:?}");
            assert_eq!(needs_escape(s.as_bytes(), true), csv, "{s:?}");
        }
        // Every length (full groups and padded tails), with a byte that matters at each position.
        for len in 0..=33 {
            let plain = vec![b'x'; len];
            assert_eq!(needs_escape_both(&plain), (false, false), "{len}");
            for pos in 0..len {
                for (v, want) in [
                    (b',', (true, false)),
                    (b'\\', (false, true)),
                    (0u8, (false, true)),
                    (b'"', (true, true)),
                    (b'\n', (true, true)),
                ] {
                    let mut b = plain.clone();
                    b[pos] = v;
                    assert_eq!(needs_escape_both(&b), want, "{len} {pos} {v}");
                }
            }
        }
        // Every byte value at every position of short values (read as head and tail words).
        for len in 1..=17 {
            for pos in 0..len {
                for v in 0..=255u8 {
                    let mut b = b"abcdefghijklmnopq"[..len].to_vec();
                    b[pos] = v;
                    let csv = matches!(v, b',' | b'"' | b'\n' | b'\r');
                    let json = v < 0x20 || v == b'"' || v == b'\\';
                    assert_eq!(needs_escape_both(&b), (csv, json), "{len} {pos} {v}");
                }
            }
        }
        // Every byte value at every position of a string long enough for the vector loop.
        for pos in 0..40 {
            for v in 0..=255u8 {
                let mut b = b"abcdefghijklmnopqrstuvwxyz0123456789ABCD".to_vec();
                b[pos] = v;
                let csv = matches!(v, b',' | b'"' | b'\n' | b'\r');
                let json = v < 0x20 || v == b'"' || v == b'\\';
                assert_eq!(needs_escape(&b, true), csv, "{pos} {v}");
                assert_eq!(needs_escape(&b, false), json, "{pos} {v}");
            }
        }
    }

    #[test]
    fn atomic_file_keeps_previous_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        std::fs::write(&p, "old").unwrap();
        {
            let mut f = AtomicFile::create(&p).unwrap();
            f.out.write_all(b"new").unwrap();
        }
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old");
        let mut f = AtomicFile::create(&p).unwrap();
        f.out.write_all(b"new").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert!(!dir.path().join("x.csv.tmp").exists());
    }

    /// Neither a symlink planted at the temporary name nor one at the output's name is
    /// written through; an output that is an input is refused.
    #[cfg(unix)]
    #[test]
    fn atomic_file_never_writes_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let precious = dir.path().join("precious.txt");
        std::fs::write(&precious, "keep me").unwrap();
        let p = dir.path().join("rejected_rows.csv");
        std::os::unix::fs::symlink(&precious, dir.path().join("rejected_rows.csv.tmp")).unwrap();
        std::os::unix::fs::symlink(&precious, &p).unwrap();
        write_rejected(&p, &[], &[]).unwrap();
        assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
        assert!(std::fs::symlink_metadata(&p).unwrap().is_file());
        assert!(std::fs::read_to_string(&p)
            .unwrap()
            .starts_with("file,line"));

        let input = dir.path().join("engagement.csv");
        std::fs::write(&input, "an input").unwrap();
        let e = write_rejected(&input, &[], &[&precious, &input]).unwrap_err();
        assert!(e.to_string().contains("which this command reads"), "{e}");
        assert_eq!(std::fs::read_to_string(&input).unwrap(), "an input");
    }

    /// The row writer gives what the RFC 4180 field writer gives, for values of every length
    /// class of its word moves and every quoting case.
    #[test]
    fn csv_rows_equal_the_field_writer() {
        let mut texts: Vec<String> = vec![
            "".into(),
            "\"".into(),
            "\"\"".into(),
            ",".into(),
            "\r".into(),
            "é".into(),
            "ü,ß".into(),
            "=cmd|' /C calc'!A0".into(),
            "+SUM(1,2)".into(),
            "-".into(),
            "-5".into(),
            "@SUM(1)".into(),
            "\t=1+1".into(),
            "\r=1".into(),
            "=\"a\"".into(),
            "=HYPERLINK(\"http://x\",\"y\")".into(),
            "'=already".into(),
            "a=b".into(),
        ];
        for n in 1..70 {
            let plain: String = (0..n).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            texts.push(plain.clone());
            let mut comma = plain.clone().into_bytes();
            comma[n / 2] = b',';
            texts.push(String::from_utf8(comma).unwrap());
            let mut quote = plain.into_bytes();
            quote[n - 1] = b'"';
            texts.push(String::from_utf8(quote).unwrap());
        }
        for (i, t) in texts.iter().enumerate() {
            let at = |k: usize| texts[(i * 31 + k * 17) % texts.len()].as_str();
            let row = AssignmentRow {
                account_id: t,
                name: at(1),
                icp_score: at(2),
                tier: at(3),
                engagement_level: at(4),
                has_triggers: i % 2 == 0,
                cluster: at(5),
                previous_cluster: at(6),
                movement: at(7),
                promotion_triggers: at(8),
                program_type: at(9),
                micro_segment: at(10),
                next_action: at(11),
                checkpoint: at(12),
                rationale: at(13),
                segment: None,
            };
            let mut got = b"prefix".to_vec();
            row.write_csv(&mut got);
            let mut want = b"prefix".to_vec();
            csv_row_by_fields(&mut want, &row);
            assert!(got == want, "{:?}", String::from_utf8_lossy(&got));
            let (mut csv, mut json) = (b"prefix".to_vec(), Vec::new());
            row.write_both(&mut csv, &mut json);
            assert!(csv == want, "{:?}", String::from_utf8_lossy(&csv));
        }
    }

    /// An assignment row written field by field: [`csv_cell`] for the text columns,
    /// [`csv_field`] for the number and the boolean.
    fn csv_row_by_fields(out: &mut Vec<u8>, row: &AssignmentRow<'_>) {
        for (i, v) in row.values().iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            if TEXT_COLUMNS >> i & 1 != 0 {
                csv_cell(out, v);
            } else {
                csv_field(out, v);
            }
        }
        out.push(b'\n');
    }

    /// Issue 11 #6: cells a spreadsheet would evaluate get a leading `'` in CSV outputs
    /// (assignments and the rejected rows' record); JSON Lines keep the exact text.
    #[test]
    fn formula_cells_are_neutralised_in_csv_only() {
        let row = AssignmentRow {
            account_id: "@A1",
            name: "=cmd|' /C calc'!A0",
            icp_score: "-5",
            tier: "A",
            engagement_level: "high",
            has_triggers: false,
            cluster: "active_focus",
            previous_cluster: "",
            movement: "",
            promotion_triggers: "",
            program_type: "",
            micro_segment: "+SUM(1,2)",
            next_action: "\t=1+1",
            checkpoint: "-",
            rationale: "=HYPERLINK(\"http://x\",\"y\")",
            segment: None,
        };
        let mut csv = Vec::new();
        row.write_csv(&mut csv);
        assert_eq!(
            String::from_utf8(csv).unwrap(),
            "'@A1,'=cmd|' /C calc'!A0,-5,A,high,false,active_focus,,,,,\"'+SUM(1,2)\",'\t=1+1,'-,\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"\n"
        );
        let mut json = Vec::new();
        row.write_jsonl(&mut json);
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["name"], "=cmd|' /C calc'!A0");
        assert_eq!(v["icp_score"], -5, "a number, not a string");
        assert_eq!(v["next_action"], "\t=1+1");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rejected_rows.csv");
        let rej = Rejection {
            file: "accounts.csv".into(),
            line: 2,
            column: "employees".into(),
            reason: "not a number".into(),
            record: "=1+1,x".into(),
        };
        write_rejected(&path, &[rej], &[]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with(",\"'=1+1,x\"\n"), "{text}");
        // Inputs and samples are written exactly.
        let mut line = Vec::new();
        csv_line(&mut line, ["=1+1", "-5"]);
        assert_eq!(line, b"=1+1,-5\n");
    }
}
