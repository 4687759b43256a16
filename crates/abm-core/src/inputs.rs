//! How real export files are read: date formats per file or column, how a deal's outcome
//! follows from its stage, and the value maps (`[values]`) that turn a CRM's labels into the
//! config's vocabulary. Plain data; `abm-io` applies it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `[inputs]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct InputsConfig {
    /// Use the built-in value maps (HubSpot and Salesforce industry labels, country names and
    /// codes, CRM activity types) under the ones in `[values]`.
    pub builtin_values: bool,
    /// A date format (strftime: `%m/%d/%Y`, `%d-%m-%Y`, `%Y%m%d`, …) per file (`engagement`,
    /// `triggers`, `deals`) or per column (`deals.closed_at`). It is tried when a value is not
    /// an ISO date or RFC 3339 timestamp (those are always accepted).
    pub date_formats: BTreeMap<String, String>,
    /// How a deal's outcome follows from its stage when the file has no `outcome` column.
    pub deals: DealStages,
}

impl Default for InputsConfig {
    fn default() -> Self {
        InputsConfig {
            builtin_values: true,
            date_formats: BTreeMap::new(),
            deals: DealStages::default(),
        }
    }
}

/// `[inputs.deals]`: stages (case-insensitive) that mean won or lost; every other stage is
/// open. `is_closed`/`is_won` columns (Salesforce) win over the stage when present.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DealStages {
    pub won_stages: Vec<String>,
    pub lost_stages: Vec<String>,
    /// Per pipeline (the deal's `pipeline` column): its own won and lost stages.
    pub pipelines: BTreeMap<String, PipelineStages>,
}

impl Default for DealStages {
    fn default() -> Self {
        DealStages {
            won_stages: vec!["closedwon".into(), "Closed Won".into(), "won".into()],
            lost_stages: vec!["closedlost".into(), "Closed Lost".into(), "lost".into()],
            pipelines: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineStages {
    pub won_stages: Vec<String>,
    pub lost_stages: Vec<String>,
}

/// `[values.FIELD]`: a label in the file (case-insensitive) → the value the config uses.
/// `FIELD` is an account field (`industry`, `country`, any custom field) or `event_types`
/// (a type in the file → a type of the engagement vocabulary, or `ignore` to accept and skip
/// the row).
pub type ValueMaps = BTreeMap<String, BTreeMap<String, String>>;

/// Where a canonical column's values come from: a column of the file, or one value for every
/// row (`type = { value = "order" }`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum ColumnSource {
    Column(String),
    Constant { value: String },
}

impl ColumnSource {
    pub fn column(&self) -> Option<&str> {
        match self {
            ColumnSource::Column(c) => Some(c),
            ColumnSource::Constant { .. } => None,
        }
    }
}

impl From<&str> for ColumnSource {
    fn from(s: &str) -> Self {
        ColumnSource::Column(s.to_string())
    }
}

impl From<String> for ColumnSource {
    fn from(s: String) -> Self {
        ColumnSource::Column(s)
    }
}
