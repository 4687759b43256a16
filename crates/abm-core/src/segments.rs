//! `[[segments]]` and `[analytics]` in `abm.toml`: segments as data (a name, a description and
//! criteria over account fields, with the ICP criteria's operators) and the settings of
//! `abm analyze` (CLV, margin, prioritization thresholds). Pure data and the account test.

use crate::account::AccountRef;
use crate::config::{invalid, ConfigError, Criterion, IcpConfig};
use crate::scoring::ScoringModel;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

/// One user-defined segment: an account is in it when every criterion holds (a criterion holds
/// when it would earn points: `in`/`equals`/`contains` match, the number is in the `range` or in
/// one of the `bands`). No criteria: every account. `points` may be left out (they mean
/// nothing here).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SegmentDef {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, deserialize_with = "segment_criteria")]
    pub criteria: Vec<Criterion>,
}

impl SegmentDef {
    /// Each criterion's test in words (`industry in [software]`, `employees ≥ 200`); points,
    /// which mean nothing here, are left out.
    pub fn describe(&self) -> Vec<String> {
        self.criteria
            .iter()
            .map(|c| {
                let t = ScoringModel::test_text(c);
                match c {
                    // Bands: "employees bands [≥ 200: 1]" → "employees in bands [≥ 200]".
                    Criterion::Bands { field, bands } => {
                        let b: Vec<String> = bands
                            .iter()
                            .map(|b| match (b.min, b.max) {
                                (Some(lo), Some(hi)) => format!("{lo}–{hi}"),
                                (Some(lo), None) => format!("≥ {lo}"),
                                (None, Some(hi)) => format!("≤ {hi}"),
                                (None, None) => "any".into(),
                            })
                            .collect();
                        format!("{field} in one of [{}]", b.join(", "))
                    }
                    _ => t,
                }
            })
            .collect()
    }
}

impl SegmentDef {
    /// The identity of the definition (name, description, criteria): a changed definition
    /// has another fingerprint, and is stored as a new version of the segment.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let text = toml::to_string(self).expect("a segment serializes");
        Sha256::digest(text.as_bytes())[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The label of an account in no `[[segments]]` where a label is needed (migration matrices).
pub const NO_SEGMENT: &str = "(none)";

/// Every `[[segments]]` compiled against the accounts' schema: which segments an account is
/// in, as indexes or as the label outputs show (the names in definition order, `;`-separated).
pub struct SegmentSet {
    names: Vec<String>,
    matchers: Vec<SegmentMatcher>,
}

impl SegmentSet {
    pub fn new(defs: &[SegmentDef], schema: &crate::account::AccountSchema) -> SegmentSet {
        SegmentSet {
            names: defs.iter().map(|d| d.name.clone()).collect(),
            matchers: defs
                .iter()
                .map(|d| SegmentMatcher::new(d, schema))
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Call `f` with the index of every segment the account is in.
    pub fn each_match(&mut self, account: &AccountRef<'_>, mut f: impl FnMut(usize)) {
        for (i, m) in self.matchers.iter_mut().enumerate() {
            if m.matches(account) {
                f(i);
            }
        }
    }

    /// The account's segments into `out` (cleared first): `a;b`, empty when in none.
    pub fn label_into(&mut self, account: &AccountRef<'_>, out: &mut String) {
        out.clear();
        let names = &self.names;
        for (i, m) in self.matchers.iter_mut().enumerate() {
            if m.matches(account) {
                if !out.is_empty() {
                    out.push(';');
                }
                out.push_str(&names[i]);
            }
        }
    }
}

/// Criteria as the ICP's, with `points` optional (1 when left out).
fn segment_criteria<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Criterion>, D::Error> {
    use serde::de::Error;
    let raw: Vec<toml::Value> = Vec::deserialize(d)?;
    raw.into_iter()
        .map(|mut v| {
            if let Some(t) = v.as_table_mut() {
                let kind = t.get("kind").and_then(|k| k.as_str()).unwrap_or("");
                if kind == "bands" {
                    if let Some(bands) = t.get_mut("bands").and_then(|b| b.as_array_mut()) {
                        for b in bands.iter_mut().filter_map(|b| b.as_table_mut()) {
                            b.entry("points").or_insert(toml::Value::Integer(1));
                        }
                    }
                } else {
                    t.entry("points").or_insert(toml::Value::Integer(1));
                }
            }
            v.try_into::<Criterion>().map_err(D::Error::custom)
        })
        .collect()
}

/// `[analytics]`: how `abm analyze` values customers and ranks segments.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyticsConfig {
    /// `observed`: won revenue per customer (all wins by the period's end) × margin;
    /// `annual`: average annual won revenue per customer × margin ÷ `churn_rate`.
    pub clv: ClvMode,
    /// Gross margin (0–1) applied to revenue for CLV and payback.
    pub margin: f64,
    /// Margin per segment key (a `[[segments]]` name, a cluster or a tier), over `margin`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub margin_by_segment: BTreeMap<String, f64>,
    /// Annual churn rate (0–1], needed by `clv = "annual"` (else CLV is null).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub churn_rate: Option<f64>,
    pub prioritize: PrioritizeConfig,
    /// Add a `segment` column (the `[[segments]]` an account is in, `;`-separated) to
    /// cluster_assignments.csv/.jsonl of `abm segment` and `abm export` (also `--segment-column`).
    pub segment_column: bool,
    /// Buying pattern: the engagement counted before a win runs from this many days before the
    /// deal was created to its close.
    pub buying_window_days: u32,
    /// Buying pattern: the event types that count as meetings.
    pub meeting_types: Vec<String>,
    /// Forecast capacity guidance: how far ahead clusters are projected at the observed
    /// movement rates (91 days: the next quarter).
    pub capacity_horizon_days: u32,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClvMode {
    #[default]
    Observed,
    Annual,
}

/// `[analytics.prioritize]`: the thresholds of grow / maintain / enter / exit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PrioritizeConfig {
    /// Fewer closed deals than this in the period: the win rate is not trusted for a verdict.
    pub min_closed_deals: u64,
    /// Exit when the win rate's upper 95% bound is below this.
    pub exit_win_rate: f64,
    /// Exit when LTV:CAC is known and below this.
    pub exit_ltv_cac: f64,
    /// Enter when fewer than this share of the segment's accounts are customers.
    pub enter_penetration: f64,
    /// Grow when the win rate's lower 95% bound is at least this many times the win rate of
    /// all accounts …
    pub grow_win_rate_ratio: f64,
    /// … and won revenue grew over the previous period of the same length (or LTV:CAC ≥ this).
    pub grow_ltv_cac: f64,
}

impl Default for PrioritizeConfig {
    fn default() -> Self {
        PrioritizeConfig {
            min_closed_deals: 10,
            exit_win_rate: 0.10,
            exit_ltv_cac: 1.0,
            enter_penetration: 0.10,
            grow_win_rate_ratio: 1.0,
            grow_ltv_cac: 3.0,
        }
    }
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        AnalyticsConfig {
            clv: ClvMode::Observed,
            margin: 1.0,
            margin_by_segment: BTreeMap::new(),
            churn_rate: None,
            prioritize: PrioritizeConfig::default(),
            segment_column: false,
            buying_window_days: 90,
            meeting_types: vec!["meeting".into()],
            capacity_horizon_days: 91,
        }
    }
}

impl AnalyticsConfig {
    pub fn is_default(&self) -> bool {
        *self == AnalyticsConfig::default()
    }

    /// The margin of one segment key.
    pub fn margin_of(&self, key: &str) -> f64 {
        self.margin_by_segment
            .get(key)
            .copied()
            .unwrap_or(self.margin)
    }
}

/// Check `[[segments]]` and `[analytics]`; errors name the key.
pub fn validate(segments: &[SegmentDef], a: &AnalyticsConfig) -> Result<(), ConfigError> {
    let mut seen = std::collections::BTreeSet::new();
    for (i, s) in segments.iter().enumerate() {
        let name = s.name.trim();
        if name.is_empty() {
            return Err(invalid(format!("segments[{i}].name"), "empty name"));
        }
        if !seen.insert(name.to_string()) {
            return Err(invalid(
                format!("segments[{i}].name"),
                format!("{name:?} is defined twice"),
            ));
        }
        for (j, c) in s.criteria.iter().enumerate() {
            if c.field().trim().is_empty() {
                return Err(invalid(
                    format!("segments[{i}].criteria[{j}].field"),
                    "empty field",
                ));
            }
            if let Criterion::Range {
                min: None,
                max: None,
                ..
            } = c
            {
                return Err(invalid(
                    format!("segments[{i}].criteria[{j}]"),
                    "a range needs `min`, `max` or both",
                ));
            }
        }
    }
    let share = |key: &str, v: f64, zero_ok: bool| {
        let ok = v.is_finite() && v <= 1.0 && if zero_ok { v >= 0.0 } else { v > 0.0 };
        if ok {
            Ok(())
        } else {
            Err(invalid(key, format!("{v} is not a share between 0 and 1")))
        }
    };
    share("analytics.margin", a.margin, true)?;
    for (k, v) in &a.margin_by_segment {
        share(&format!("analytics.margin_by_segment.{k}"), *v, true)?;
    }
    if let Some(c) = a.churn_rate {
        share("analytics.churn_rate", c, false)?;
    }
    if a.capacity_horizon_days == 0 {
        return Err(invalid(
            "analytics.capacity_horizon_days",
            "must be at least 1",
        ));
    }
    if let Some(i) = a.meeting_types.iter().position(|t| t.trim().is_empty()) {
        return Err(invalid(
            format!("analytics.meeting_types[{i}]"),
            "empty type",
        ));
    }
    let p = &a.prioritize;
    share("analytics.prioritize.exit_win_rate", p.exit_win_rate, true)?;
    share(
        "analytics.prioritize.enter_penetration",
        p.enter_penetration,
        true,
    )?;
    for (k, v) in [
        ("exit_ltv_cac", p.exit_ltv_cac),
        ("grow_win_rate_ratio", p.grow_win_rate_ratio),
        ("grow_ltv_cac", p.grow_ltv_cac),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(invalid(
                format!("analytics.prioritize.{k}"),
                "must be zero or more",
            ));
        }
    }
    Ok(())
}

/// A segment's criteria compiled against the accounts' schema.
pub struct SegmentMatcher {
    model: ScoringModel,
    /// A criterion over a field the accounts lack: no account matches.
    impossible: bool,
    scratch: Vec<f64>,
}

impl SegmentMatcher {
    pub fn new(def: &SegmentDef, schema: &crate::account::AccountSchema) -> SegmentMatcher {
        let icp = IcpConfig {
            criteria: def.criteria.clone(),
            ..IcpConfig::default()
        };
        let model = ScoringModel::new(&icp, schema);
        SegmentMatcher {
            impossible: !model.without_data().is_empty(),
            model,
            scratch: Vec::new(),
        }
    }

    /// Every criterion holds for the account (a missing value does not hold).
    pub fn matches(&mut self, account: &AccountRef<'_>) -> bool {
        if self.impossible {
            return false;
        }
        self.model.points_into(account, &mut self.scratch);
        self.scratch.iter().all(|p| *p > 0.0)
    }

    /// Fields the criteria name that the accounts do not have.
    pub fn without_data(&self) -> Vec<String> {
        self.model.without_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{AccountSchema, AccountTable};
    use crate::config::Config;

    fn cfg(text: &str) -> Result<Config, String> {
        Config::from_toml(text).map_err(|e| e.to_string())
    }

    #[test]
    fn segments_parse_without_points_and_keep_the_hash_when_absent() {
        let c = cfg("[[segments]]\nname = \"us_tech\"\ndescription = \"US software\"\n\
                     [[segments.criteria]]\nkind = \"in\"\nfield = \"industry\"\nvalues = [\"software\"]\n\
                     [[segments.criteria]]\nkind = \"bands\"\nfield = \"employees\"\nbands = [{ min = 200 }]\n")
        .unwrap();
        assert_eq!(c.segments.len(), 1);
        assert_eq!(c.segments[0].criteria.len(), 2);
        assert_eq!(
            c.segments[0].describe(),
            ["industry in [software]", "employees in one of [≥ 200]"]
        );
        assert_eq!(Config::default().hash(), cfg("").unwrap().hash());
        assert!(!toml::to_string(&Config::default())
            .unwrap()
            .contains("analytics"));
    }

    #[test]
    fn bad_segments_and_analytics_are_refused_by_key() {
        let e = cfg("[[segments]]\nname = \"a\"\n[[segments]]\nname = \"a\"\n").unwrap_err();
        assert!(
            e.contains("`segments[1].name`") && e.contains("twice"),
            "{e}"
        );
        let e = cfg("[[segments]]\nname = \" \"\n").unwrap_err();
        assert!(e.contains("`segments[0].name`"), "{e}");
        let e = cfg("[analytics]\nmargin = 1.5\n").unwrap_err();
        assert!(e.contains("`analytics.margin`"), "{e}");
        let e = cfg("[analytics]\nchurn_rate = 0\n").unwrap_err();
        assert!(e.contains("`analytics.churn_rate`"), "{e}");
        let e = cfg("[[segments]]\nname = \"x\"\n[[segments.criteria]]\nkind = \"range\"\nfield = \"employees\"\n")
            .unwrap_err();
        assert!(e.contains("`segments[0].criteria[0]`"), "{e}");
        cfg("[analytics]\nclv = \"annual\"\nchurn_rate = 0.2\nmargin = 0.7\n[analytics.margin_by_segment]\nA = 0.5\n")
            .unwrap();
    }

    #[test]
    fn an_account_is_in_a_segment_when_every_criterion_holds() {
        let schema = AccountSchema::new(
            ["account_id", "name", "industry", "employees", "country"].map(String::from),
        );
        let mut t = AccountTable::new(schema.clone());
        for row in [
            ["a1", "A", "Software", "500", "US"],
            ["a2", "B", "software", "50", "US"],
            ["a3", "C", "retail", "500", "US"],
            ["a4", "D", "software", "", "US"],
        ] {
            let f = crate::account::Firmographics {
                employees: row[3].parse().ok(),
                ..Default::default()
            };
            t.push(row, &f, 1);
        }
        let c = cfg("[[segments]]\nname = \"s\"\n[[segments.criteria]]\nkind = \"in\"\nfield = \"industry\"\nvalues = [\"software\"]\n\
                     [[segments.criteria]]\nkind = \"range\"\nfield = \"employees\"\nmin = 200\n")
        .unwrap();
        let mut m = SegmentMatcher::new(&c.segments[0], &schema);
        let got: Vec<bool> = (0..4).map(|i| m.matches(&t.get(i))).collect();
        assert_eq!(got, [true, false, false, false]);
        // No criteria: every account; a field nobody has: none.
        let all = SegmentDef {
            name: "all".into(),
            description: String::new(),
            criteria: vec![],
        };
        assert!(SegmentMatcher::new(&all, &schema).matches(&t.get(2)));
        // The set: every segment the account is in, in definition order.
        let two = cfg("[[segments]]\nname = \"big\"\n[[segments.criteria]]\nkind = \"range\"\nfield = \"employees\"\nmin = 200\n\
                       [[segments]]\nname = \"soft\"\n[[segments.criteria]]\nkind = \"in\"\nfield = \"industry\"\nvalues = [\"software\"]\n")
        .unwrap();
        let mut set = SegmentSet::new(&two.segments, &schema);
        let mut label = String::new();
        let labels: Vec<String> = (0..4)
            .map(|i| {
                set.label_into(&t.get(i), &mut label);
                label.clone()
            })
            .collect();
        assert_eq!(labels, ["big;soft", "soft", "big", "soft"]);
        // A changed definition has another fingerprint; the same one the same.
        let mut changed = two.segments[0].clone();
        assert_eq!(changed.fingerprint(), two.segments[0].fingerprint());
        changed.description = "over 200".into();
        assert_ne!(changed.fingerprint(), two.segments[0].fingerprint());
        let c = cfg("[[segments]]\nname = \"s\"\n[[segments.criteria]]\nkind = \"equals\"\nfield = \"region\"\nvalue = \"emea\"\n").unwrap();
        let mut m = SegmentMatcher::new(&c.segments[0], &schema);
        assert!(!m.matches(&t.get(0)));
        assert_eq!(m.without_data(), vec!["region".to_string()]);
    }
}
