//! Records in: what an API, an MCP tool or a CRM connector hands over, imported through the
//! same parsers, validation and per-row rejections as a file.
//!
//! A batch is a list of JSON values of one kind (accounts, engagement, triggers, deals), with
//! the canonical field names (see docs/inputs.md) or names the config maps. Each object is
//! read as one JSON Lines record: item `i` is line `i + 1` of an in-memory input named after
//! the batch, so a rejection names the item by its index. An item that is not a JSON object is
//! rejected here, by index, without touching the others.

use abm_io::source::InputSource;
use abm_io::FileKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which kind of records a batch holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Accounts,
    Engagement,
    Triggers,
    Deals,
}

impl RecordKind {
    pub fn file_kind(self) -> FileKind {
        match self {
            RecordKind::Accounts => FileKind::Accounts,
            RecordKind::Engagement => FileKind::Engagement,
            RecordKind::Triggers => FileKind::Triggers,
            RecordKind::Deals => FileKind::Deals,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Accounts => "accounts",
            RecordKind::Engagement => "engagement",
            RecordKind::Triggers => "triggers",
            RecordKind::Deals => "deals",
        }
    }
}

/// An account: its id, its name and any other fields (firmographics, custom fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountRecord {
    pub account_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Every other field by its name (`industry`, `employees`, `country`, custom fields).
    #[serde(flatten)]
    pub fields: BTreeMap<String, serde_json::Value>,
}

/// One engagement event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub account_id: String,
    /// RFC 3339 or any date form the config accepts.
    pub occurred_at: String,
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    /// The source's id for the event: re-sending it adds nothing (without one, the content
    /// identifies it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One buyer signal (funding, leadership change, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerRecord {
    pub account_id: String,
    pub occurred_at: String,
    #[serde(rename = "type")]
    pub trigger_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strength: Option<f64>,
}

/// One deal (opportunity).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DealRecord {
    pub deal_id: String,
    pub account_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_stage_change_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// `stage@date` entries separated by `;`, oldest first (docs/inputs.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_history: Option<String>,
}

/// Records of one kind, as JSON values (typed records convert with [`RecordBatch::of`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordBatch {
    pub kind: RecordKind,
    /// What rejections call this batch (`api:engagement`, `hubspot:companies`, …); also the
    /// key of a `[columns.files.NAME]` mapping for it.
    pub name: String,
    pub items: Vec<serde_json::Value>,
}

/// An item of a batch that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedItem {
    /// Which batch.
    pub kind: RecordKind,
    /// Position in the batch, from 0.
    pub index: usize,
    /// The field at fault (canonical name), or empty when the whole item is.
    pub field: String,
    pub reason: String,
}

impl RecordBatch {
    pub fn new(kind: RecordKind, name: impl Into<String>, items: Vec<serde_json::Value>) -> Self {
        RecordBatch {
            kind,
            name: name.into(),
            items,
        }
    }

    /// A batch of typed records.
    pub fn of<T: Serialize>(
        kind: RecordKind,
        name: impl Into<String>,
        records: &[T],
    ) -> RecordBatch {
        let items = records
            .iter()
            .map(|r| serde_json::to_value(r).expect("records serialize"))
            .collect();
        RecordBatch::new(kind, name, items)
    }

    /// The batch as an in-memory JSON Lines input: every object written with the union of
    /// the batch's keys (first seen first; absent ones `null`, which reads as empty), so the
    /// header the reader takes from the first line names every field; an item that is not an
    /// object becomes a blank line (its line number stays its index + 1) and is rejected here.
    pub fn to_input(&self) -> (InputSource, Vec<RejectedItem>) {
        let mut keys: Vec<&str> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for item in &self.items {
            if let Some(o) = item.as_object() {
                for k in o.keys() {
                    if seen.insert(k.as_str()) {
                        keys.push(k);
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(self.items.len() * 128);
        let mut rejected = Vec::new();
        for (index, item) in self.items.iter().enumerate() {
            match item.as_object() {
                Some(o) => {
                    let ordered: serde_json::Map<String, serde_json::Value> = keys
                        .iter()
                        .map(|k| {
                            (
                                (*k).to_string(),
                                o.get(*k).cloned().unwrap_or(serde_json::Value::Null),
                            )
                        })
                        .collect();
                    // serde_json's map keeps insertion order only with `preserve_order`;
                    // write the object by hand in `keys` order instead.
                    out.push(b'{');
                    for (i, k) in keys.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        serde_json::to_writer(&mut out, k).expect("string");
                        out.push(b':');
                        serde_json::to_writer(&mut out, &ordered[*k]).expect("value");
                    }
                    out.push(b'}');
                }
                None => rejected.push(RejectedItem {
                    kind: self.kind,
                    index,
                    field: String::new(),
                    reason: format!("not a JSON object ({})", json_type(item)),
                }),
            }
            out.push(b'\n');
        }
        (InputSource::jsonl(self.name.clone(), out), rejected)
    }

    /// Whether no item is an object (nothing for the reader to take).
    pub fn has_no_objects(&self) -> bool {
        !self.items.iter().any(|v| v.is_object())
    }
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(b: &RecordBatch) -> (String, Vec<RejectedItem>) {
        let (input, rej) = b.to_input();
        match input {
            InputSource::Memory { bytes, .. } => (String::from_utf8(bytes.to_vec()).unwrap(), rej),
            InputSource::File(_) => unreachable!(),
        }
    }

    #[test]
    fn every_line_has_every_key_in_first_seen_order() {
        let b = RecordBatch::new(
            RecordKind::Engagement,
            "api:engagement",
            vec![
                json!({"account_id": "A1", "type": "meeting"}),
                json!({"occurred_at": "2026-01-02", "account_id": "A2", "type": "email"}),
            ],
        );
        let (t, rej) = text(&b);
        assert!(rej.is_empty());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            r#"{"account_id":"A1","type":"meeting","occurred_at":null}"#
        );
        assert_eq!(
            lines[1],
            r#"{"account_id":"A2","type":"email","occurred_at":"2026-01-02"}"#
        );
    }

    #[test]
    fn a_non_object_is_rejected_by_index_and_keeps_its_line() {
        let b = RecordBatch::new(
            RecordKind::Triggers,
            "api:triggers",
            vec![
                json!({"account_id": "A1"}),
                json!(5),
                json!({"account_id": "A3"}),
            ],
        );
        let (t, rej) = text(&b);
        assert_eq!(t.lines().count(), 3);
        assert_eq!(t.lines().nth(1), Some(""));
        assert_eq!(
            rej,
            vec![RejectedItem {
                kind: RecordKind::Triggers,
                index: 1,
                field: String::new(),
                reason: "not a JSON object (a number)".into()
            }]
        );
    }

    #[test]
    fn typed_records_use_the_canonical_names() {
        let b = RecordBatch::of(
            RecordKind::Engagement,
            "x",
            &[EventRecord {
                account_id: "A1".into(),
                occurred_at: "2026-01-02T10:00:00Z".into(),
                event_type: "meeting".into(),
                contact_id: Some("c1".into()),
                event_id: None,
                detail: None,
            }],
        );
        let (t, _) = text(&b);
        assert_eq!(
            t.trim_end(),
            r#"{"account_id":"A1","contact_id":"c1","occurred_at":"2026-01-02T10:00:00Z","type":"meeting"}"#
        );
    }
}
