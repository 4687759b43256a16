//! `abm.toml`: every rule a user might change. Defaults are exactly SPEC.md's.
//!
//! The config is plain data (serde). [`crate::rules::Rules::compile`] validates it and turns it
//! into the fast runtime form; a bad value is a [`ConfigError`] naming the key.

use crate::model::{Cluster, Tier};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("invalid config: {0}")]
    Parse(#[source] toml::de::Error),
    #[error("invalid config: `{key}`: {message}")]
    Invalid { key: String, message: String },
}

pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub icp: IcpConfig,
    pub engagement: EngagementConfig,
    pub triggers: TriggerConfig,
    /// Entry rules, first match wins (SPEC §4.4).
    pub decision_table: Vec<DecisionRow>,
    pub movement: MovementConfig,
    pub checkpoints: CheckpointConfig,
    pub programs: Programs,
    pub next_actions: NextActions,
    pub micro_segment: MicroSegmentConfig,
    /// industry (lower case) → vertical, for Future Pipeline micro-segments.
    pub verticals: BTreeMap<String, String>,
    pub capacity: CapacityConfig,
    /// Column mappings: canonical name → header in the user's file, per input file.
    pub columns: ColumnMappings,
    /// Accounts with a won deal by as_of (SPEC §4.6, customers).
    #[serde(skip_serializing_if = "CustomerConfig::is_default")]
    pub customers: CustomerConfig,
    /// What happens to checkpoints nobody reviews (all off by default).
    #[serde(skip_serializing_if = "ReviewPolicy::is_default")]
    pub review: ReviewPolicy,
    /// How real export files are read: date formats, deal stages (see [`crate::inputs`]).
    pub inputs: crate::inputs::InputsConfig,
    /// Value maps: per field, a label in the file → the value the config uses.
    pub values: crate::inputs::ValueMaps,
    /// User-defined segments for `abm analyze` (built-ins by cluster, tier and micro-segment
    /// always exist).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<crate::segments::SegmentDef>,
    /// `abm analyze`: CLV, margin and the prioritization thresholds.
    #[serde(skip_serializing_if = "crate::segments::AnalyticsConfig::is_default")]
    pub analytics: crate::segments::AnalyticsConfig,
    /// Where `abm enrich` and the `enrich_company` tool get firmographics (off by default).
    #[serde(skip_serializing_if = "crate::enrichment::EnrichConfig::is_default")]
    pub enrich: crate::enrichment::EnrichConfig,
    /// How the server fetches the news feeds a caller names (`fetch_company_news`).
    #[serde(skip_serializing_if = "NewsConfig::is_default")]
    pub news: NewsConfig,
}

/// `[news]`: fetching feed URLs given by a server's caller (the MCP tool `fetch_company_news`).
/// Only http(s), and never a host that resolves to a loopback, private, link-local,
/// unique-local, multicast or unspecified address unless it is allowed here.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct NewsConfig {
    /// Hosts fetched even when they resolve to an internal address: a name (`feeds.corp`), a
    /// suffix (`*.corp.example`) or an IP address (`127.0.0.1`, `::1`).
    pub allow_hosts: Vec<String>,
    /// Redirects followed (each one checked like the first URL).
    pub max_redirects: u32,
    /// A feed larger than this many bytes is refused.
    pub max_bytes: u64,
    /// Time limit for one feed, redirects included.
    pub timeout_ms: u64,
}

impl Default for NewsConfig {
    fn default() -> Self {
        NewsConfig {
            allow_hosts: Vec::new(),
            max_redirects: 5,
            max_bytes: 10 * 1024 * 1024,
            timeout_ms: 30_000,
        }
    }
}

impl NewsConfig {
    pub fn is_default(&self) -> bool {
        *self == NewsConfig::default()
    }
}

/// `[review]`: a policy for unreviewed checkpoints, applied by `abm run` with ages in days of
/// as_of (from the run that opened the item to this run). 0 = off.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ReviewPolicy {
    /// Close a pending item this many days old, with the reason.
    pub expire_after_days: u32,
    /// List pending items this many days old as escalated in the run's summary.
    pub escalate_after_days: u32,
    /// Approve a pending demotion proposal this many days old (reviewer `policy`).
    pub auto_approve_demotions_after_days: u32,
}

impl ReviewPolicy {
    pub fn is_default(&self) -> bool {
        *self == ReviewPolicy::default()
    }
}

/// `[customers]`: an account with a won deal by as_of is a customer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CustomerConfig {
    /// `expansion` (default): a customer stays in its prospect cluster with the expansion
    /// program and expansion/renewal next actions; `track`: a customer leaves the prospect
    /// clusters for the `customer` track (same program and next actions); `off`: customers are
    /// read as prospects.
    pub mode: CustomerMode,
    /// The program of a customer, whatever its cluster.
    pub program: String,
    /// The first half of a customer's next action (won deals and renewal follow).
    pub next_action: String,
    /// Renewal is due this many days after the last won deal (0: no renewal date).
    pub renewal_days: u32,
    /// The products a customer could buy, for its whitespace (products not yet bought);
    /// empty: every product named on a deal of the input.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub products: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CustomerMode {
    #[default]
    Expansion,
    Off,
    /// A customer is in [`Cluster::Customer`], beside the decision table.
    Track,
}

impl Default for CustomerConfig {
    fn default() -> Self {
        CustomerConfig {
            mode: CustomerMode::Expansion,
            program: "expansion".into(),
            next_action: "Account management: expand and renew".into(),
            renewal_days: 365,
            products: Vec::new(),
        }
    }
}

impl CustomerConfig {
    pub fn is_default(&self) -> bool {
        *self == CustomerConfig::default()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IcpConfig {
    /// What a criterion earns when its field is present in the input but empty for one
    /// account: `neutral` (default: left out of that account's points possible) or `zero`.
    /// A criterion whose field no input provides is left out for every account either way.
    #[serde(skip_serializing_if = "MissingRule::is_default")]
    pub missing: MissingRule,
    pub tiers: TierThresholds,
    pub criteria: Vec<Criterion>,
}

/// `[icp] missing`: how an empty field scores (SPEC §4.1).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MissingRule {
    /// Left out of the account's points possible (the score is over what is known).
    #[default]
    Neutral,
    /// Earns 0 of its points.
    Zero,
}

impl MissingRule {
    pub fn is_default(&self) -> bool {
        *self == MissingRule::default()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TierThresholds {
    pub a: f64,
    pub b: f64,
    pub c: f64,
    pub d: f64,
}

impl Default for TierThresholds {
    fn default() -> Self {
        TierThresholds {
            a: 80.0,
            b: 65.0,
            c: 50.0,
            d: 35.0,
        }
    }
}

impl TierThresholds {
    pub fn tier_of(&self, score: f64) -> Tier {
        if score >= self.a {
            Tier::A
        } else if score >= self.b {
            Tier::B
        } else if score >= self.c {
            Tier::C
        } else if score >= self.d {
            Tier::D
        } else {
            Tier::E
        }
    }
}

/// One ICP criterion. `field` is a canonical account column (`industry`, `employees`,
/// `annual_revenue`, `country`, `tech_stack`, `founded_year`, …) or any custom column.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Criterion {
    /// The field (case-insensitive) is one of `values` and earns `points`; or, graded, one of
    /// the keys of `points = { paid_search = 10, organic = 8 }` and earns that value's points
    /// (then without `values`).
    In {
        field: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        values: Vec<String>,
        points: Points,
    },
    /// The field equals `value` (case-insensitive).
    Equals {
        field: String,
        value: String,
        points: f64,
    },
    /// The numeric field is within `[min, max]` (either bound optional, both inclusive).
    Range {
        field: String,
        min: Option<f64>,
        max: Option<f64>,
        points: f64,
    },
    /// Numeric bands; the first band that contains the value earns its points. Possible points
    /// are the largest band's.
    Bands { field: String, bands: Vec<Band> },
    /// A `;`-separated list field (e.g. `tech_stack`) contains any of `values`.
    Contains {
        field: String,
        values: Vec<String>,
        points: f64,
    },
}

/// An `in` criterion's points: one number for every listed value, or points per value
/// (graded; matched case-insensitively, the criterion's possible points are the largest).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Points {
    Flat(f64),
    PerValue(BTreeMap<String, f64>),
}

impl Points {
    /// The most an account can earn.
    pub fn max(&self) -> f64 {
        match self {
            Points::Flat(p) => *p,
            Points::PerValue(m) => m.values().copied().fold(0.0, f64::max),
        }
    }
}

impl From<f64> for Points {
    fn from(p: f64) -> Points {
        Points::Flat(p)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Band {
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub points: f64,
}

impl Criterion {
    pub fn field(&self) -> &str {
        match self {
            Criterion::In { field, .. }
            | Criterion::Equals { field, .. }
            | Criterion::Range { field, .. }
            | Criterion::Bands { field, .. }
            | Criterion::Contains { field, .. } => field,
        }
    }

    pub fn possible(&self) -> f64 {
        match self {
            Criterion::In { points, .. } => points.max(),
            Criterion::Equals { points, .. }
            | Criterion::Range { points, .. }
            | Criterion::Contains { points, .. } => *points,
            Criterion::Bands { bands, .. } => bands.iter().map(|b| b.points).fold(0.0, f64::max),
        }
    }
}

fn strings(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

/// The default ICP (a B2B software seller): its core industries earn all of the industry's
/// points, adjacent ones two thirds, reachable ones a third, any other none.
pub const DEFAULT_CORE_INDUSTRIES: &[&str] = &[
    "software",
    "fintech",
    "cybersecurity",
    "banking",
    "insurance",
    "healthcare",
    "health care",
    "technology",
    "financials",
    "finance",
];
pub const DEFAULT_ADJACENT_INDUSTRIES: &[&str] = &[
    "telecom",
    "telecommunications",
    "biotech",
    "medical",
    "consulting",
    "business services",
    "professional services",
];
pub const DEFAULT_REACHABLE_INDUSTRIES: &[&str] = &[
    "manufacturing",
    "industrials",
    "logistics",
    "transportation",
    "media",
    "education",
    "energy",
    "retail",
    "retailing",
];
/// The default's core markets earn all of the country's points, secondary ones about half.
pub const DEFAULT_CORE_COUNTRIES: &[&str] = &[
    "US",
    "United States",
    "GB",
    "United Kingdom",
    "DE",
    "Germany",
    "FR",
    "France",
    "NL",
    "Netherlands",
    "SE",
    "Sweden",
    "CA",
    "Canada",
    "AU",
    "Australia",
];
pub const DEFAULT_SECONDARY_COUNTRIES: &[&str] = &[
    "IE",
    "Ireland",
    "DK",
    "Denmark",
    "NO",
    "Norway",
    "FI",
    "Finland",
    "CH",
    "Switzerland",
    "BE",
    "Belgium",
    "AT",
    "Austria",
    "ES",
    "Spain",
    "IT",
    "Italy",
    "NZ",
    "New Zealand",
    "SG",
    "Singapore",
    "JP",
    "Japan",
];

/// Points per value: every value of each group earns the group's points.
fn graded(groups: &[(&[&str], f64)]) -> Points {
    Points::PerValue(
        groups
            .iter()
            .flat_map(|(values, p)| values.iter().map(move |v| (v.to_string(), *p)))
            .collect(),
    )
}

impl Default for IcpConfig {
    fn default() -> Self {
        IcpConfig {
            missing: MissingRule::default(),
            tiers: TierThresholds::default(),
            criteria: vec![
                // Graded (SPEC §4.1: "categorical criteria may give points per value"), so that
                // a file with only industry and country still spreads over the five tiers.
                Criterion::In {
                    field: "industry".into(),
                    values: Vec::new(),
                    points: graded(&[
                        (DEFAULT_CORE_INDUSTRIES, 30.0),
                        (DEFAULT_ADJACENT_INDUSTRIES, 20.0),
                        (DEFAULT_REACHABLE_INDUSTRIES, 10.0),
                    ]),
                },
                Criterion::Bands {
                    field: "employees".into(),
                    bands: vec![
                        Band {
                            min: Some(200.0),
                            max: Some(5000.0),
                            points: 25.0,
                        },
                        Band {
                            min: Some(50.0),
                            max: Some(199.0),
                            points: 15.0,
                        },
                        Band {
                            min: Some(5001.0),
                            max: None,
                            points: 15.0,
                        },
                    ],
                },
                Criterion::Bands {
                    field: "annual_revenue".into(),
                    bands: vec![
                        Band {
                            min: Some(20e6),
                            max: Some(1e9),
                            points: 20.0,
                        },
                        Band {
                            min: Some(5e6),
                            max: Some(20e6),
                            points: 10.0,
                        },
                        Band {
                            min: Some(1e9),
                            max: None,
                            points: 10.0,
                        },
                    ],
                },
                Criterion::In {
                    field: "country".into(),
                    values: Vec::new(),
                    points: graded(&[
                        (DEFAULT_CORE_COUNTRIES, 15.0),
                        (DEFAULT_SECONDARY_COUNTRIES, 8.0),
                    ]),
                },
                Criterion::Contains {
                    field: "tech_stack".into(),
                    values: strings(&["salesforce", "hubspot", "snowflake", "aws"]),
                    points: 10.0,
                },
            ],
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EngagementConfig {
    /// Look-back window for engagement events and demotion signals, in days (inclusive).
    pub window_days: u32,
    pub high: Vec<String>,
    pub medium: Vec<String>,
    pub low: Vec<String>,
    /// Not engagement: feed the demotion rules.
    pub demotion_signals: Vec<String>,
    /// Event types that count only within a shorter window (days).
    pub short_windows: BTreeMap<String, u32>,
    /// Distinct engaged contacts that make engagement High / Medium.
    pub high_contacts: u32,
    pub medium_contacts: u32,
    /// An active open deal (not stalled) makes engagement High.
    pub open_deal_is_high: bool,
    /// An open deal with no stage change for this many days is stalled.
    pub stalled_after_days: u32,
}

impl Default for EngagementConfig {
    fn default() -> Self {
        EngagementConfig {
            window_days: 90,
            high: strings(&[
                "demo",
                "meeting",
                "challenge_validated",
                "budget_expressed",
                "timeline_expressed",
            ]),
            medium: strings(&[
                "content_download",
                "webinar_attended",
                "email_reply",
                "outreach_response",
                "linkedin_connection_accepted",
                "intent_page_visit",
                "event_attended",
            ]),
            low: strings(&["website_visit", "ad_click", "email_open"]),
            demotion_signals: strings(&["champion_left", "budget_cycle_missed", "no_priority"]),
            short_windows: BTreeMap::from([("website_visit".to_string(), 30)]),
            high_contacts: 3,
            medium_contacts: 2,
            open_deal_is_high: true,
            stalled_after_days: 45,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TriggerConfig {
    pub window_days: u32,
    pub types: Vec<String>,
}

impl Default for TriggerConfig {
    fn default() -> Self {
        TriggerConfig {
            window_days: 90,
            types: strings(&[
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
            ]),
        }
    }
}

/// One row of the decision table. `engagement = ["any"]` and `triggers = "any"` match anything.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DecisionRow {
    pub tiers: Vec<String>,
    pub engagement: Vec<String>,
    /// `"yes"`, `"no"` or `"any"`.
    pub triggers: String,
    pub cluster: Cluster,
}

pub fn default_decision_table() -> Vec<DecisionRow> {
    let row = |tiers: &[&str], eng: &[&str], trig: &str, cluster| DecisionRow {
        tiers: strings(tiers),
        engagement: strings(eng),
        triggers: trig.into(),
        cluster,
    };
    vec![
        row(&["D", "E"], &["any"], "any", Cluster::MonitorOnly),
        row(&["A", "B"], &["high"], "any", Cluster::ActiveFocus),
        row(&["A", "B"], &["medium"], "yes", Cluster::ActiveFocus),
        row(&["A", "B"], &["medium"], "no", Cluster::FuturePipeline),
        row(&["C"], &["high", "medium"], "any", Cluster::FuturePipeline),
        row(
            &["A", "B", "C"],
            &["low", "none"],
            "yes",
            Cluster::FuturePipeline,
        ),
        row(
            &["A", "B", "C"],
            &["low", "none"],
            "no",
            Cluster::ClusterIcp,
        ),
    ]
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MovementConfig {
    /// Active Focus → Future Pipeline after this many days without Medium+ engagement.
    pub af_inactivity_days: u32,
    /// Future Pipeline → Cluster ICP after this many days without any engagement.
    pub fp_inactivity_days: u32,
    /// Demotion signals that demote Active Focus → Future Pipeline.
    pub af_demotion_signals: Vec<String>,
    /// Demotion signals that demote Future Pipeline → Cluster ICP.
    pub fp_demotion_signals: Vec<String>,
    /// A stalled open deal demotes Active Focus → Future Pipeline.
    pub demote_af_on_stalled_deal: bool,
    /// Promotions into these clusters are proposed and wait for a reviewer.
    pub approve_promotion_to: Vec<Cluster>,
    /// Demotions out of these clusters are proposed and wait for a reviewer.
    pub approve_demotion_from: Vec<Cluster>,
}

impl Default for MovementConfig {
    fn default() -> Self {
        MovementConfig {
            af_inactivity_days: 90,
            fp_inactivity_days: 180,
            af_demotion_signals: strings(&["champion_left", "budget_cycle_missed"]),
            fp_demotion_signals: strings(&["no_priority"]),
            demote_af_on_stalled_deal: true,
            approve_promotion_to: vec![Cluster::ActiveFocus],
            approve_demotion_from: vec![Cluster::ActiveFocus],
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointConfig {
    /// Open a `conflict` checkpoint when the input `icp_tier` is this many tiers or more away
    /// from the tier computed from the score.
    pub conflict_tier_distance: u32,
    /// Tier D/E with High engagement or an open deal is a conflict.
    pub conflict_low_tier_high_engagement: bool,
    /// A demotion signal and a promotion signal in the same window is a conflict.
    pub conflict_mixed_signals: bool,
    /// Conflicts open a checkpoint only for accounts in (or entering) these clusters; tier D/E
    /// with High engagement is never a checkpoint but a "re-score this account" suggestion in
    /// the next action.
    #[serde(skip_serializing_if = "is_default_conflict_clusters")]
    pub conflict_clusters: Vec<Cluster>,
}

fn default_conflict_clusters() -> Vec<Cluster> {
    vec![Cluster::ActiveFocus]
}

fn is_default_conflict_clusters(v: &Vec<Cluster>) -> bool {
    *v == default_conflict_clusters()
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            conflict_tier_distance: 2,
            conflict_low_tier_high_engagement: true,
            conflict_mixed_signals: true,
            conflict_clusters: default_conflict_clusters(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Programs {
    pub cluster_icp: String,
    pub future_pipeline: String,
    pub active_focus: String,
    pub monitor_only: String,
}

impl Default for Programs {
    fn default() -> Self {
        Programs {
            cluster_icp: "automated_demand_gen".into(),
            future_pipeline: "sdr_marketing_nurture".into(),
            active_focus: "one_to_one_abm".into(),
            monitor_only: "monitor".into(),
        }
    }
}

impl Programs {
    pub fn of(&self, c: Cluster) -> &str {
        match c {
            Cluster::ClusterIcp => &self.cluster_icp,
            Cluster::FuturePipeline => &self.future_pipeline,
            Cluster::ActiveFocus => &self.active_focus,
            Cluster::MonitorOnly => &self.monitor_only,
            // A customer's program is `[customers] program` (`Assessment::program`).
            Cluster::Customer => "expansion",
        }
    }
}

/// The first half of each cluster's next action; the engine appends what is missing for the
/// next promotion, computed from the decision table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NextActions {
    pub cluster_icp: String,
    pub future_pipeline: String,
    pub active_focus: String,
    pub monitor_only: String,
}

impl Default for NextActions {
    fn default() -> Self {
        NextActions {
            cluster_icp: "Marketing: automated demand gen".into(),
            future_pipeline: "SDR: validate the challenge".into(),
            active_focus: "Sales: 1-to-1 briefing and business case".into(),
            monitor_only: "Monitor only".into(),
        }
    }
}

impl NextActions {
    pub fn of(&self, c: Cluster) -> &str {
        match c {
            Cluster::ClusterIcp => &self.cluster_icp,
            Cluster::FuturePipeline => &self.future_pipeline,
            Cluster::ActiveFocus => &self.active_focus,
            Cluster::MonitorOnly => &self.monitor_only,
            // A customer's next action starts with `[customers] next_action`.
            Cluster::Customer => "Account management: expand and renew",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MicroSegmentConfig {
    /// trigger type → challenge, when the account has no `challenge` field.
    pub challenge_from_triggers: BTreeMap<String, String>,
    /// keyword in an `intent_surge` headline → challenge.
    pub challenge_from_intent_topics: BTreeMap<String, String>,
    /// Triggers that put the account in the `transformation` stage (checked first).
    pub transformation_triggers: Vec<String>,
    /// Triggers that put the account in the `growth` stage.
    pub growth_triggers: Vec<String>,
    /// Founded this many years before `as_of` or fewer → `growth`.
    pub growth_max_age_years: u32,
    /// This many employees or fewer → `growth` (scaling); else `established`.
    pub growth_max_employees: f64,
}

impl Default for MicroSegmentConfig {
    fn default() -> Self {
        let map = |xs: &[(&str, &str)]| {
            xs.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        MicroSegmentConfig {
            challenge_from_triggers: map(&[
                ("funding_round", "growth"),
                ("expansion", "growth"),
                ("layoffs", "cost_reduction"),
                ("regulatory_change", "risk"),
                ("tech_change", "digital_transformation"),
            ]),
            challenge_from_intent_topics: map(&[
                ("cost", "cost_reduction"),
                ("efficiency", "cost_reduction"),
                ("growth", "growth"),
                ("compliance", "risk"),
                ("security", "risk"),
                ("cloud", "digital_transformation"),
                ("automation", "digital_transformation"),
            ]),
            transformation_triggers: strings(&[
                "merger_acquisition",
                "leadership_change",
                "tech_change",
                "layoffs",
            ]),
            growth_triggers: strings(&["funding_round", "expansion", "hiring_surge"]),
            growth_max_age_years: 10,
            growth_max_employees: 200.0,
        }
    }
}

pub fn default_verticals() -> BTreeMap<String, String> {
    [
        ("software", "technology"),
        ("technology", "technology"),
        ("cybersecurity", "technology"),
        ("telecom", "technology"),
        ("telecommunications", "technology"),
        ("fintech", "financial_services"),
        ("banking", "financial_services"),
        ("insurance", "financial_services"),
        ("finance", "financial_services"),
        ("financials", "financial_services"),
        ("healthcare", "healthcare"),
        ("health care", "healthcare"),
        ("biotech", "healthcare"),
        ("medical", "healthcare"),
        ("manufacturing", "industrial"),
        ("automotive", "industrial"),
        ("logistics", "industrial"),
        ("transportation", "industrial"),
        ("industrials", "industrial"),
        ("energy", "energy"),
        ("retail", "consumer"),
        ("retailing", "consumer"),
        ("hospitality", "consumer"),
        ("media", "media"),
        ("entertainment", "media"),
        ("education", "public_sector"),
        ("government", "public_sector"),
        ("real_estate", "real_estate"),
        ("agriculture", "agriculture"),
        ("consulting", "professional_services"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CapacityConfig {
    pub cluster_icp: CapacityRange,
    pub future_pipeline: CapacityRange,
    pub active_focus: CapacityRange,
    /// The customer track (`[customers] mode = "track"`): optional, no warning when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<CapacityRange>,
}

/// A recommended cluster size: an absolute range (`min`, `max`) or a share of the accounts
/// (`min_share`, `max_share`, 0–1, rounded to whole accounts), each bound either way.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct CapacityRange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u64>,
    /// Above `max` is a warning; for Active Focus it also opens a `capacity` checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_share: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_share: Option<f64>,
}

impl CapacityRange {
    pub fn new(min: u64, max: u64) -> CapacityRange {
        CapacityRange {
            min: Some(min),
            max: Some(max),
            ..Default::default()
        }
    }

    /// (min, max) for a run over `accounts` accounts: shares rounded to whole accounts; a
    /// bound not given is 0 (min) or unbounded (max).
    pub fn bounds(&self, accounts: u64) -> (u64, u64) {
        let of = |s: f64| (s * accounts as f64).round() as u64;
        let min = self.min_share.map(of).or(self.min).unwrap_or(0);
        let max = self.max_share.map(of).or(self.max).unwrap_or(u64::MAX);
        (min, max)
    }

    /// `100–500`, `1–5% (3–15)` for a share.
    pub fn describe(&self, accounts: u64) -> String {
        let (lo, hi) = self.bounds(accounts);
        let hi_text = if hi == u64::MAX {
            "∞".to_string()
        } else {
            hi.to_string()
        };
        if self.min_share.is_some() || self.max_share.is_some() {
            let pct = |v: Option<f64>, abs: Option<u64>, d: &str| match (v, abs) {
                (Some(s), _) => format!("{}%", crate::scoring::format_score(s * 100.0)),
                (None, Some(a)) => a.to_string(),
                (None, None) => d.to_string(),
            };
            format!(
                "{}–{} of accounts ({lo}–{hi_text})",
                pct(self.min_share, self.min, "0"),
                pct(self.max_share, self.max, "∞")
            )
        } else {
            format!("{lo}–{hi_text}")
        }
    }
}

impl Default for CapacityConfig {
    fn default() -> Self {
        CapacityConfig {
            cluster_icp: CapacityRange::new(100, 500),
            future_pipeline: CapacityRange::new(50, 100),
            active_focus: CapacityRange::new(10, 30),
            customer: None,
        }
    }
}

impl CapacityConfig {
    pub fn of(&self, c: Cluster) -> Option<&CapacityRange> {
        match c {
            Cluster::ClusterIcp => Some(&self.cluster_icp),
            Cluster::FuturePipeline => Some(&self.future_pipeline),
            Cluster::ActiveFocus => Some(&self.active_focus),
            Cluster::MonitorOnly => None,
            Cluster::Customer => self.customer.as_ref(),
        }
    }
}

/// canonical column name → the header of that column in the user's file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ColumnMappings {
    pub accounts: BTreeMap<String, crate::inputs::ColumnSource>,
    pub engagement: BTreeMap<String, crate::inputs::ColumnSource>,
    pub triggers: BTreeMap<String, crate::inputs::ColumnSource>,
    pub deals: BTreeMap<String, crate::inputs::ColumnSource>,
    /// Per file, by its stem (`[columns.files.orders]` for `orders.csv`): a mapping that
    /// replaces its kind's mapping for that file (several engagement files, each its own).
    pub files: BTreeMap<String, BTreeMap<String, crate::inputs::ColumnSource>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            icp: IcpConfig::default(),
            engagement: EngagementConfig::default(),
            triggers: TriggerConfig::default(),
            decision_table: default_decision_table(),
            movement: MovementConfig::default(),
            checkpoints: CheckpointConfig::default(),
            programs: Programs::default(),
            next_actions: NextActions::default(),
            micro_segment: MicroSegmentConfig::default(),
            verticals: default_verticals(),
            capacity: CapacityConfig::default(),
            columns: ColumnMappings::default(),
            customers: CustomerConfig::default(),
            review: ReviewPolicy::default(),
            inputs: Default::default(),
            values: Default::default(),
            segments: Vec::new(),
            analytics: Default::default(),
            enrich: Default::default(),
            news: Default::default(),
        }
    }
}

impl Config {
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        // A criterion is a tagged enum, whose errors serde words without the key ("invalid
        // type: string, expected f64" at `[[icp.criteria]]`): name the key path instead.
        let cfg: Config = toml::from_str(text)
            .map_err(|e| criteria_error(text).unwrap_or(ConfigError::Parse(e)))?;
        crate::rules::Rules::compile(&cfg, crate::time::Instant(0))?;
        crate::segments::validate(&cfg.segments, &cfg.analytics)?;
        Ok(cfg)
    }

    /// What is accepted but probably not meant, one sentence each, for the front end to show.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.icp.criteria.is_empty() {
            w.push(
                "`icp.criteria` is empty: every account without an input icp_score scores 0 \
                 (tier E)"
                    .to_string(),
            );
        } else if self.icp.criteria.iter().all(|c| c.possible() == 0.0) {
            w.push(
                "`icp.criteria` award no points: every account without an input icp_score \
                 scores 0 (tier E)"
                    .to_string(),
            );
        }
        w
    }

    /// A stable hash of the effective configuration (reported in summaries).
    pub fn hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let text = toml::to_string(self).expect("config serializes");
        let digest = Sha256::digest(text.as_bytes());
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The first criterion of `text` whose keys or value types are wrong, as an error naming
/// its key path (`icp.criteria[2].points`); `None` when the criteria look right (the error is
/// elsewhere).
fn criteria_error(text: &str) -> Option<ConfigError> {
    use toml::Value;
    #[derive(Clone, Copy)]
    enum Ty {
        Str,
        Strs,
        Num,
        OptNum,
        Bands,
        OptStrs,
        /// A number, or a table of numbers (points per value).
        Graded,
    }
    fn check(key: &str, v: &Value, ty: Ty) -> Option<ConfigError> {
        let ok = match ty {
            Ty::Str => v.is_str(),
            Ty::Strs | Ty::OptStrs => v.as_array().is_some_and(|a| a.iter().all(Value::is_str)),
            Ty::Graded => {
                v.is_integer()
                    || v.is_float()
                    || v.as_table()
                        .is_some_and(|t| t.values().all(|x| x.is_integer() || x.is_float()))
            }
            Ty::Num | Ty::OptNum => v.is_integer() || v.is_float(),
            Ty::Bands => {
                let Some(bands) = v.as_array() else {
                    return Some(invalid(key, "expected an array of bands"));
                };
                let fields = [
                    ("min", Ty::OptNum),
                    ("max", Ty::OptNum),
                    ("points", Ty::Num),
                ];
                for (j, b) in bands.iter().enumerate() {
                    let bkey = format!("{key}[{j}]");
                    let Some(t) = b.as_table() else {
                        return Some(invalid(bkey, "expected a table { min, max, points }"));
                    };
                    if let Some(e) = check_table(&bkey, t, &fields) {
                        return Some(e);
                    }
                }
                true
            }
        };
        let want = match ty {
            Ty::Str => "a string",
            Ty::Strs | Ty::OptStrs => "an array of strings",
            Ty::Graded => "a number or a table of value = points",
            Ty::Num | Ty::OptNum => "a number",
            Ty::Bands => "an array of bands",
        };
        (!ok).then(|| invalid(key, format!("expected {want}, found {}", v.type_str())))
    }
    fn check_table(key: &str, t: &toml::Table, fields: &[(&str, Ty)]) -> Option<ConfigError> {
        for (k, v) in t {
            if k == "kind" {
                continue;
            }
            let Some(&(_, ty)) = fields.iter().find(|(f, _)| f == k) else {
                let known: Vec<&str> = fields.iter().map(|(f, _)| *f).collect();
                return Some(invalid(
                    format!("{key}.{k}"),
                    format!("unknown key (expected {})", known.join(", ")),
                ));
            };
            if let Some(e) = check(&format!("{key}.{k}"), v, ty) {
                return Some(e);
            }
        }
        fields
            .iter()
            .find(|(f, ty)| !matches!(ty, Ty::OptNum | Ty::OptStrs) && !t.contains_key(*f))
            .map(|(f, _)| invalid(format!("{key}.{f}"), "missing"))
    }
    let root: toml::Table = text.parse().ok()?;
    let criteria = root.get("icp")?.get("criteria")?;
    let Some(list) = criteria.as_array() else {
        return Some(invalid(
            "icp.criteria",
            "expected an array of tables ([[icp.criteria]])",
        ));
    };
    const KINDS: &str = "in, equals, range, bands, contains";
    for (i, c) in list.iter().enumerate() {
        let key = format!("icp.criteria[{i}]");
        let Some(t) = c.as_table() else {
            return Some(invalid(key, "expected a table"));
        };
        let kind = match t.get("kind") {
            None => return Some(invalid(format!("{key}.kind"), format!("missing ({KINDS})"))),
            Some(Value::String(s)) => s.as_str(),
            Some(v) => {
                return Some(invalid(
                    format!("{key}.kind"),
                    format!("expected a string ({KINDS}), found {}", v.type_str()),
                ))
            }
        };
        let fields: &[(&str, Ty)] = match kind {
            "in" => &[
                ("field", Ty::Str),
                ("values", Ty::OptStrs),
                ("points", Ty::Graded),
            ],
            "contains" => &[
                ("field", Ty::Str),
                ("values", Ty::Strs),
                ("points", Ty::Num),
            ],
            "equals" => &[("field", Ty::Str), ("value", Ty::Str), ("points", Ty::Num)],
            "range" => &[
                ("field", Ty::Str),
                ("min", Ty::OptNum),
                ("max", Ty::OptNum),
                ("points", Ty::Num),
            ],
            "bands" => &[("field", Ty::Str), ("bands", Ty::Bands)],
            other => {
                return Some(invalid(
                    format!("{key}.kind"),
                    format!("unknown kind {other:?} ({KINDS})"),
                ))
            }
        };
        if let Some(e) = check_table(&key, t, fields) {
            return Some(e);
        }
    }
    None
}

pub fn parse_tier_list(key: &str, xs: &[String]) -> Result<Vec<Tier>, ConfigError> {
    xs.iter()
        .map(|s| Tier::parse(s).ok_or_else(|| invalid(key, format!("unknown tier {s:?} (A–E)"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::from_toml(text).unwrap_err().to_string()
    }

    const TWO: &str = "[[icp.criteria]]\nkind = \"in\"\nfield = \"industry\"\nvalues = [\"software\"]\npoints = 10\n\
                       [[icp.criteria]]\nkind = \"equals\"\nfield = \"country\"\nvalue = \"US\"\npoints = 5\n";

    /// Issue 11 #14: errors inside a criterion name its key path.
    #[test]
    fn criterion_errors_name_the_key_path() {
        let e = err(&format!(
            "{TWO}[[icp.criteria]]\nkind = \"range\"\nfield = \"employees\"\nmin = 1\npoints = \"x\"\n"
        ));
        assert!(
            e.contains("`icp.criteria[2].points`") && e.contains("expected a number, found string"),
            "{e}"
        );
        let e = err(&format!("{TWO}[[icp.criteria]]\nkind = \"bands\"\nfield = \"employees\"\nbands = [{{ min = 1, points = \"high\" }}]\n"));
        assert!(e.contains("`icp.criteria[2].bands[0].points`"), "{e}");
        let e = err(&format!(
            "{TWO}[[icp.criteria]]\nkind = \"in\"\nfield = \"x\"\nvalue = [\"a\"]\npoints = 1\n"
        ));
        assert!(
            e.contains("`icp.criteria[2].value`") && e.contains("unknown key"),
            "{e}"
        );
        let e = err(&format!(
            "{TWO}[[icp.criteria]]\nkind = \"within\"\nfield = \"x\"\n"
        ));
        assert!(
            e.contains("`icp.criteria[2].kind`") && e.contains("\"within\""),
            "{e}"
        );
        let e = err(&format!(
            "{TWO}[[icp.criteria]]\nkind = \"in\"\nfield = \"x\"\nvalues = [\"a\"]\n"
        ));
        assert!(e.contains("`icp.criteria[2].points`: missing"), "{e}");
        // Errors elsewhere keep TOML's own message.
        let e = err(&format!("{TWO}[engagement]\nwindow_days = \"x\"\n"));
        assert!(e.contains("window_days"), "{e}");
    }

    /// Issue 11 #14: bands with min > max and ranges without bounds are refused.
    #[test]
    fn impossible_ranges_and_bands_are_refused() {
        let e = err(&format!(
            "{TWO}[[icp.criteria]]\nkind = \"bands\"\nfield = \"employees\"\nbands = [{{ min = 1, max = 10, points = 5 }}, {{ min = 500, max = 100, points = 10 }}]\n"
        ));
        assert!(
            e.contains("`icp.criteria[2].bands[1].min`: 500 is greater than max 100"),
            "{e}"
        );
        let e = err(&format!(
            "{TWO}[[icp.criteria]]\nkind = \"range\"\nfield = \"employees\"\npoints = 5\n"
        ));
        assert!(
            e.contains("`icp.criteria[2]`: a range needs `min`, `max` or both"),
            "{e}"
        );
        let e = err(&format!("{TWO}[[icp.criteria]]\nkind = \"range\"\nfield = \"employees\"\nmin = 9\nmax = 1\npoints = 5\n"));
        assert!(e.contains("`icp.criteria[2].min`"), "{e}");
        let e = err(&format!(
            "{TWO}[[icp.criteria]]\nkind = \"bands\"\nfield = \"employees\"\nbands = []\n"
        ));
        assert!(e.contains("`icp.criteria[2].bands`: no bands"), "{e}");
        // Still fine: a band or a range open on one side.
        Config::from_toml(&format!(
            "{TWO}[[icp.criteria]]\nkind = \"range\"\nfield = \"employees\"\nmax = 10\npoints = 5\n"
        ))
        .unwrap();
    }

    /// Issue 11 #14: no criteria (or no points) is accepted — an input icp_score may carry the
    /// fit — with a warning for the front end to show.
    #[test]
    fn empty_criteria_warn() {
        assert!(Config::default().warnings().is_empty());
        let c = Config::from_toml("[icp]\ncriteria = []\n").unwrap();
        let w = c.warnings();
        assert!(
            w.len() == 1 && w[0].contains("`icp.criteria` is empty"),
            "{w:?}"
        );
        let c = Config::from_toml(
            "[[icp.criteria]]\nkind = \"in\"\nfield = \"industry\"\nvalues = [\"x\"]\npoints = 0\n",
        )
        .unwrap();
        assert!(c.warnings()[0].contains("award no points"));
    }
}
