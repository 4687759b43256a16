//! The whole reasoning for one account as a typed value: what `abm explain` prints, what
//! `--json` writes and what an API or an agent reads. Built here from an [`Assessment`] and
//! the account's facts (pure, no I/O); the readers (files in `abm-io`, the database in
//! `abm-store`) add what only they know (an event's file and line, the account's stored
//! state). [`Explanation::to_text`] renders the text `abm explain` prints.
//!
//! Every kind is an enum with a stable snake_case code; texts that are already sentences
//! (a criterion's test, a decision row, a conflict, the next action) are kept as the engine
//! words them, beside their codes.

use crate::account::AccountRef;
use crate::assess::{self, Assessment, Conflict, Facts};
use crate::engagement::{DealOutcome, DealStatus, LevelBasis, Verdict};
use crate::model::{Cluster, EngagementLevel, Tier};
use crate::movement::{Decision, Movement, ProposalAction, ProposalKind};
use crate::rules::{Code, Rules, TriggerCond};
use crate::scoring::{format_score, CriterionStatus, ScoringModel, Source};
use crate::time::Instant;
use serde::Serialize;
use std::fmt::Write;

/// How many events the text lists per group of ignored events (newest first), and how many
/// groups of rejected event rows; counted events are all listed, first. JSON lists them all.
pub const MAX_IGNORED_LISTED: usize = 10;

/// What `abm explain` says about an account id: its reasoning, or why its row was rejected.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Explained {
    Assessed(Box<Explanation>),
    /// The account's row was rejected (files only): it is in no output.
    Rejected(RejectedAccount),
}

impl Explained {
    pub fn to_text(&self) -> String {
        match self {
            Explained::Assessed(e) => e.to_text(),
            Explained::Rejected(r) => r.to_text(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectedAccount {
    pub account_id: String,
    pub rows: Vec<RejectedRow>,
}

/// One rejected input row: where, which column, why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectedRow {
    pub file: String,
    pub line: u64,
    pub column: String,
    pub reason: String,
}

impl RejectedAccount {
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "Account {} was rejected: its row is not in the assignments (see rejected_rows.csv).\n",
            self.account_id
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "  {} line {}, column {}: {}",
                r.file, r.line, r.column, r.reason
            );
        }
        s
    }
}

/// Where the facts were read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Input files (`abm explain ID DIR`): stateless, as `abm segment`.
    Files,
    /// The database (`abm explain ID --database URL`): as the next `abm run` would.
    Database,
}

/// A place in an input file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileLine {
    pub file: String,
    pub line: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub account_id: String,
    /// Empty when the input has none.
    pub name: String,
    pub origin: Origin,
    /// The account's row (files only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<FileLine>,
    pub as_of: Instant,
    pub config_hash: String,
    pub score: ScoreExplanation,
    pub engagement: EngagementExplanation,
    pub deals: Vec<DealExplanation>,
    pub triggers: TriggersExplanation,
    pub decision: DecisionExplanation,
    /// The cluster: the entry rules' (files), the effective one a run would record (database).
    pub cluster: Cluster,
    pub program: String,
    /// `customer` with a deal won by as_of (and `[customers] mode = "expansion"`).
    pub customer_status: CustomerStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<CustomerExplanation>,
    /// Future Pipeline only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub micro_segment: Option<String>,
    pub next_action: String,
    /// The output row's short rationale (`cluster_assignments.csv`, the run's snapshot).
    pub rationale: String,
    pub conflicts: Vec<ConflictExplanation>,
    /// `[checkpoints] conflict_clusters`: where a conflict needs a reviewer.
    pub conflict_clusters: Vec<Cluster>,
    /// The account's state in the database (database only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored: Option<StoredState>,
    /// Which fields enrichment filled, from which source, fetched when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enrichment: Option<crate::enrichment::EnrichedBy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueSource {
    /// `icp_score` / `icp_tier` from the input.
    Input,
    /// From the criteria / the thresholds.
    Computed,
}

impl From<Source> for ValueSource {
    fn from(s: Source) -> ValueSource {
        match s {
            Source::Input => ValueSource::Input,
            Source::Computed => ValueSource::Computed,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreExplanation {
    pub score: f64,
    pub score_source: ValueSource,
    /// This account's points possible (the criteria it is scored on).
    pub possible: f64,
    pub tier: Tier,
    pub tier_source: ValueSource,
    /// The tier the score gives, whatever the input says.
    pub tier_from_score: Tier,
    /// `[icp.tiers]`: the lowest score of tiers A, B, C, D.
    pub thresholds: TierThresholds,
    pub criteria: Vec<CriterionExplanation>,
    /// Criteria whose field no input has (left out of every account's points possible).
    pub criteria_without_data: Vec<String>,
    /// Fields this account leaves empty (enrichment can fill them).
    pub missing: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TierThresholds {
    pub a: f64,
    pub b: f64,
    pub c: f64,
    pub d: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CriterionState {
    Scored,
    /// Empty for this account, `[icp] missing = "zero"`: earns 0.
    MissingZero,
    /// Empty for this account, `missing = "neutral"`: left out of its points possible.
    MissingNeutral,
    /// No input has the field: left out for every account.
    NoData,
}

impl From<CriterionStatus> for CriterionState {
    fn from(s: CriterionStatus) -> CriterionState {
        match s {
            CriterionStatus::Scored => CriterionState::Scored,
            CriterionStatus::MissingZero => CriterionState::MissingZero,
            CriterionStatus::MissingNeutral => CriterionState::MissingNeutral,
            CriterionStatus::NoData => CriterionState::NoData,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CriterionExplanation {
    pub field: String,
    /// What the criterion tests, e.g. `industry in [software, fintech]`.
    pub test: String,
    /// The account's value (absent when missing).
    pub value: Option<String>,
    pub earned: f64,
    /// The criterion's own points (its largest band's for bands).
    pub points: f64,
    /// What it adds to this account's points possible (0 when left out).
    pub possible: f64,
    pub status: CriterionState,
    /// The value was filled by enrichment (see the explanation's `enrichment`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enriched: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngagementExplanation {
    pub level: EngagementLevel,
    pub basis: LevelBasisExplanation,
    pub window_days: u32,
    /// First day of the window (inclusive; it ends at as_of).
    pub from: Instant,
    pub engaged_contacts: u32,
    pub medium_contacts: u32,
    pub high_contacts: u32,
    pub stalled_after_days: u32,
    /// Events of the account that count (the listed ones with verdict `counted`).
    pub counted_events: usize,
    /// Every event of the account that was read.
    pub events_read: usize,
    /// The engagement files read (files only; with several, each event names its file).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// Event rows of this account rejected on input, grouped by reason (files only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<RejectedEvents>,
    /// Stored events whose type the config does not know (database only; not read).
    #[serde(skip_serializing_if = "is_zero")]
    pub unknown_type: u64,
    /// The counted events, newest first.
    pub counted: Vec<EventExplanation>,
    /// The events that do not count, grouped by why (in order of each group's newest event).
    pub not_counted: Vec<EventGroup>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LevelBasisExplanation {
    /// The strongest counted event.
    Event {
        event_type: String,
        at: Instant,
    },
    /// Distinct engaged contacts.
    Contacts {
        count: u32,
    },
    /// An active open deal.
    OpenDeal {
        deal_id: String,
    },
    Nothing,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectedEvents {
    /// `column: reason`.
    pub reason: String,
    pub rows: usize,
}

/// What happened to one engagement event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventVerdict {
    Counted,
    AfterAsOf,
    BeforeFloor,
    OutsideWindow,
    DemotionSignalInWindow,
    DemotionSignalOutsideWindow,
}

impl EventVerdict {
    pub fn of(v: Verdict) -> (EventVerdict, Option<EngagementLevel>) {
        match v {
            Verdict::Counted(l) => (EventVerdict::Counted, Some(l)),
            Verdict::AfterAsOf => (EventVerdict::AfterAsOf, None),
            Verdict::BeforeFloor => (EventVerdict::BeforeFloor, None),
            Verdict::OutsideWindow => (EventVerdict::OutsideWindow, None),
            Verdict::Signal { in_window: true } => (EventVerdict::DemotionSignalInWindow, None),
            Verdict::Signal { in_window: false } => {
                (EventVerdict::DemotionSignalOutsideWindow, None)
            }
        }
    }

    /// In words (`after as_of, ignored`).
    pub fn describe(self) -> &'static str {
        match self {
            EventVerdict::Counted => "counted",
            EventVerdict::AfterAsOf => "after as_of, ignored",
            EventVerdict::BeforeFloor => "before the last demotion, ignored",
            EventVerdict::OutsideWindow => "outside its window",
            EventVerdict::DemotionSignalInWindow => "demotion signal in window",
            EventVerdict::DemotionSignalOutsideWindow => "demotion signal outside window",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventExplanation {
    pub at: Instant,
    pub event_type: String,
    /// Empty when the event names no contact.
    pub contact: String,
    pub verdict: EventVerdict,
    /// The level it counts at (counted events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<EngagementLevel>,
    /// Where it is (files only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<FileLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventGroup {
    pub verdict: EventVerdict,
    pub events: Vec<EventExplanation>,
}

/// An event of the account as its reader saw it, before it is explained.
#[derive(Debug, Clone)]
pub struct ObservedEvent {
    pub at: Instant,
    pub code: Code,
    pub contact: String,
    pub verdict: Verdict,
    pub source: Option<FileLine>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DealState {
    /// Open, stage changed recently: High engagement.
    Active,
    /// Open, no stage change for `stalled_after_days`.
    Stalled,
    /// Created after as_of: ignored.
    NotYetCreated,
    Closed,
    /// Active but from before the account's last demotion.
    BeforeFloor,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DealExplanation {
    pub deal_id: String,
    /// The stage as of as_of.
    pub stage: String,
    /// The outcome as of as_of.
    pub outcome: DealOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<f64>,
    pub created_at: Instant,
    /// The last stage change known by as_of (else creation).
    pub last_change_at: Instant,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<Instant>,
    pub status: DealState,
    /// Days since the last stage change (stalled deals).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stalled_days: Option<i64>,
    /// The outcome it reached after as_of (it was open then).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome_after_as_of: Option<DealOutcome>,
    /// A stage change after as_of, not read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage_change_after_as_of: Option<Instant>,
    /// The stage, last change and outcome at as_of come from the deal's stage history.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub from_history: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TriggersExplanation {
    /// Triggers that count (in the window, by as_of).
    pub counted: usize,
    pub window_days: u32,
    pub from: Instant,
    /// Every trigger of the account, newest first.
    pub items: Vec<TriggerExplanation>,
    /// Demotion signals in the engagement window, newest first.
    pub demotion_signals: Vec<SignalExplanation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerState {
    Counted,
    AfterAsOf,
    OutsideWindow,
    /// Before the account's last demotion (database only).
    BeforeFloor,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TriggerExplanation {
    pub at: Instant,
    pub trigger_type: String,
    pub headline: String,
    pub status: TriggerState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignalExplanation {
    pub at: Instant,
    pub event_type: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionExplanation {
    /// The matched row, 1-based; 0: a customer in the customer track (`[customers] mode =
    /// "track"`), which bypasses the table (every row is then `not_reached`).
    pub rule: u8,
    pub rows: Vec<DecisionRowExplanation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowOutcome {
    Matched,
    /// An earlier row: `mismatches` says why not.
    NotMatched,
    /// After the matched row (first match wins).
    NotReached,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mismatch {
    Tier { tier: Tier },
    Engagement { level: EngagementLevel },
    NoTriggers,
    HasTriggers,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionRowExplanation {
    pub row: u8,
    pub description: String,
    pub cluster: Cluster,
    pub outcome: RowOutcome,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mismatches: Vec<Mismatch>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomerStatus {
    Prospect,
    Customer,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomerExplanation {
    pub won: u32,
    pub last_won: Instant,
    pub lost: u32,
    /// `[customers] program`.
    pub program: String,
    /// Whitespace: the catalog's products none of its won deals carries (empty when deals
    /// name no product).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_yet_bought: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    LowTierHighEngagement,
    MixedSignals,
    TierMismatch,
}

/// What the engine does with a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictHandling {
    /// A `conflict` checkpoint: a reviewer decides.
    Checkpoint,
    /// Tier D/E with High engagement: a re-score suggestion in the next action.
    RescoreSuggestion,
    /// The account is not in or entering a `conflict_clusters` cluster.
    NoCheckpoint,
    /// A demotion signal that a demotion rule of the account's cluster acts on: that rule
    /// moves the account (or proposes the move) on a stateful run.
    DemotionRule,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConflictExplanation {
    pub kind: ConflictKind,
    pub handling: ConflictHandling,
    pub description: String,
}

/// The account in the database: its state, the latest run, what a run at as_of would do and
/// its open checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredState {
    /// The account's effective state (absent before its first run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<CurrentState>,
    /// The latest run (absent before the first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run: Option<LastRun>,
    /// What a run at as_of would decide for the account from its current state.
    pub next_run: NextRun,
    pub open_checkpoints: Vec<OpenCheckpoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurrentState {
    pub cluster: Cluster,
    pub entered_at: Instant,
    /// The as_of of its last demotion: evidence before it does not count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floor: Option<Instant>,
    /// The run that last set it.
    pub run: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastRun {
    pub run: i64,
    pub as_of: Instant,
    /// The account's row in that run (absent when the run did not evaluate it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<RunSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSnapshot {
    pub cluster: Cluster,
    pub candidate: Cluster,
    pub movement: Movement,
    pub tier: Tier,
    pub score: f64,
    pub next_action: String,
    pub rationale: String,
}

impl NextRun {
    /// What a run's decision says.
    pub fn of(d: &Decision) -> NextRun {
        NextRun {
            candidate: d.candidate,
            cluster: d.cluster,
            movement: d.movement,
            rule: d.rule.clone(),
            proposal: match &d.proposal {
                ProposalAction::Open(p) => Some(ProposalExplanation {
                    kind: p.kind,
                    from: p.from,
                    to: p.to,
                }),
                _ => None,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NextRun {
    /// What the entry rules say.
    pub candidate: Cluster,
    /// The effective cluster it would record.
    pub cluster: Cluster,
    pub movement: Movement,
    /// The movement rule, in words (empty when nothing moves).
    pub rule: String,
    /// A new proposal it would open for a reviewer (a pending one is in `open_checkpoints`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proposal: Option<ProposalExplanation>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProposalExplanation {
    pub kind: ProposalKind,
    pub from: Cluster,
    pub to: Cluster,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointKind {
    Capacity,
    Conflict,
    PromotionToActiveFocus,
    DemotionFromActiveFocus,
    Promotion,
    Demotion,
}

impl CheckpointKind {
    pub fn parse(s: &str) -> Option<CheckpointKind> {
        Some(match s {
            "capacity" => CheckpointKind::Capacity,
            "conflict" => CheckpointKind::Conflict,
            "promotion_to_active_focus" => CheckpointKind::PromotionToActiveFocus,
            "demotion_from_active_focus" => CheckpointKind::DemotionFromActiveFocus,
            "promotion" => CheckpointKind::Promotion,
            "demotion" => CheckpointKind::Demotion,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointKind::Capacity => "capacity",
            CheckpointKind::Conflict => "conflict",
            CheckpointKind::PromotionToActiveFocus => "promotion_to_active_focus",
            CheckpointKind::DemotionFromActiveFocus => "demotion_from_active_focus",
            CheckpointKind::Promotion => "promotion",
            CheckpointKind::Demotion => "demotion",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenCheckpoint {
    pub id: i64,
    pub kind: CheckpointKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Cluster>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Cluster>,
    /// The as_of of the run that opened it.
    pub as_of: Instant,
    pub run: i64,
}

impl Explanation {
    /// The explanation of one assessed account. `cluster` is the effective cluster (the entry
    /// rules' own, `a.cluster`, when stateless); `events` are the account's events as read,
    /// in the order to list them (newest first). The reader fills in `source` and
    /// `engagement.files`/`rejected`/`unknown_type`; the database adds its state with
    /// [`Explanation::with_stored`].
    pub fn new(
        rules: &Rules,
        model: &ScoringModel,
        account: &AccountRef<'_>,
        facts: &Facts<'_>,
        a: &Assessment,
        cluster: Cluster,
        events: Vec<ObservedEvent>,
    ) -> Explanation {
        let sc = &a.score;
        let t = &rules.config.icp.tiers;
        let enrichment = account
            .field(crate::enrichment::ENRICHED_BY)
            .and_then(crate::enrichment::EnrichedBy::parse);
        let score = ScoreExplanation {
            score: sc.score,
            score_source: sc.score_source.into(),
            possible: sc.criteria.iter().map(|c| c.possible).sum(),
            tier: sc.tier,
            tier_source: sc.tier_source.into(),
            tier_from_score: sc.tier_from_score,
            thresholds: TierThresholds {
                a: t.a,
                b: t.b,
                c: t.c,
                d: t.d,
            },
            criteria: sc
                .criteria
                .iter()
                .map(|c| CriterionExplanation {
                    field: c.field.clone(),
                    test: c.test.clone(),
                    value: c.value.clone(),
                    earned: c.earned,
                    points: c.points,
                    possible: c.possible,
                    status: c.status.into(),
                    enriched: enrichment
                        .as_ref()
                        .is_some_and(|m| m.fields.contains(&c.field)),
                })
                .collect(),
            criteria_without_data: model.without_data(),
            missing: sc.missing.clone(),
        };

        let explain_event = |ev: ObservedEvent| {
            let (verdict, level) = EventVerdict::of(ev.verdict);
            EventExplanation {
                at: ev.at,
                event_type: rules.event_name(ev.code).to_string(),
                contact: ev.contact,
                verdict,
                level,
                source: ev.source,
            }
        };
        let events_read = events.len();
        let mut counted = Vec::new();
        let mut not_counted: Vec<EventGroup> = Vec::new();
        for ev in events.into_iter().map(explain_event) {
            if ev.verdict == EventVerdict::Counted {
                counted.push(ev);
                continue;
            }
            match not_counted.iter_mut().find(|g| g.verdict == ev.verdict) {
                Some(g) => g.events.push(ev),
                None => not_counted.push(EventGroup {
                    verdict: ev.verdict,
                    events: vec![ev],
                }),
            }
        }
        let e = &rules.config.engagement;
        let engagement = EngagementExplanation {
            level: a.level,
            basis: match &a.basis {
                LevelBasis::Event { code, at } => LevelBasisExplanation::Event {
                    event_type: rules.event_name(*code).to_string(),
                    at: *at,
                },
                LevelBasis::Contacts(n) => LevelBasisExplanation::Contacts { count: *n },
                LevelBasis::OpenDeal(i) => LevelBasisExplanation::OpenDeal {
                    deal_id: facts.deals[*i].deal_id.clone(),
                },
                LevelBasis::Nothing => LevelBasisExplanation::Nothing,
            },
            window_days: e.window_days,
            from: rules.engagement_from,
            engaged_contacts: a.engaged_contacts,
            medium_contacts: e.medium_contacts,
            high_contacts: e.high_contacts,
            stalled_after_days: e.stalled_after_days,
            counted_events: counted.len(),
            events_read,
            files: Vec::new(),
            rejected: Vec::new(),
            unknown_type: 0,
            counted,
            not_counted,
        };

        let as_of = rules.as_of;
        let deals = facts
            .deals
            .iter()
            .map(|d| {
                let status = match d.status(rules, facts.floor) {
                    DealStatus::Active => DealState::Active,
                    DealStatus::Stalled => DealState::Stalled,
                    DealStatus::NotYetCreated => DealState::NotYetCreated,
                    DealStatus::Closed => DealState::Closed,
                    DealStatus::BeforeFloor => DealState::BeforeFloor,
                };
                let known = d.created_at <= as_of;
                // What the export says in the end: the history's last entry, else the row.
                let (final_outcome, final_close, later_change) = match d.history.last() {
                    Some(last) => (
                        last.outcome,
                        (last.outcome != DealOutcome::Open)
                            .then_some(last.at)
                            .or(d.closed_at),
                        d.history.iter().find(|e| e.at > as_of).map(|e| e.at),
                    ),
                    None => (d.outcome, d.closed_at, d.last_stage_change_at),
                };
                DealExplanation {
                    deal_id: d.deal_id.clone(),
                    stage: d.stage_at(as_of).to_string(),
                    outcome: d.outcome_at(as_of),
                    amount: d.amount,
                    created_at: d.created_at,
                    last_change_at: d.last_change_at(as_of),
                    closed_at: d.closed_at_by(as_of).or(final_close),
                    status,
                    stalled_days: (status == DealState::Stalled)
                        .then(|| as_of.days_since(d.last_change_at(as_of))),
                    outcome_after_as_of: (known && d.outcome_at(as_of) != final_outcome)
                        .then_some(final_outcome),
                    stage_change_after_as_of: later_change.filter(|t| known && *t > as_of),
                    from_history: d.entry_at(as_of).is_some(),
                }
            })
            .collect();

        let mut all: Vec<_> = facts.triggers.iter().collect();
        all.sort_by_key(|t| std::cmp::Reverse(t.at));
        let triggers = TriggersExplanation {
            counted: a.triggers.len(),
            window_days: rules.config.triggers.window_days,
            from: rules.trigger_from,
            items: all
                .into_iter()
                .map(|t| TriggerExplanation {
                    at: t.at,
                    trigger_type: rules.trigger_name(t.code).to_string(),
                    headline: t.headline.clone(),
                    status: if t.at > as_of {
                        TriggerState::AfterAsOf
                    } else if t.counts(rules, facts.floor) {
                        TriggerState::Counted
                    } else if t.counts(rules, Instant::MIN) {
                        TriggerState::BeforeFloor
                    } else {
                        TriggerState::OutsideWindow
                    },
                })
                .collect(),
            demotion_signals: a
                .signals
                .iter()
                .map(|(c, at)| SignalExplanation {
                    at: *at,
                    event_type: rules.event_name(*c).to_string(),
                })
                .collect(),
        };

        let decision = DecisionExplanation {
            rule: a.rule,
            rows: rules
                .decision
                .rows
                .iter()
                .enumerate()
                .map(|(i, row)| {
                    let n = i as u8 + 1;
                    let mut mismatches = Vec::new();
                    let outcome = if n == a.rule {
                        RowOutcome::Matched
                    } else if n < a.rule {
                        if !row.tiers.contains(&sc.tier) {
                            mismatches.push(Mismatch::Tier { tier: sc.tier });
                        }
                        if !row.levels.contains(&a.level) {
                            mismatches.push(Mismatch::Engagement { level: a.level });
                        }
                        match (row.triggers, a.has_triggers()) {
                            (TriggerCond::Yes, false) => mismatches.push(Mismatch::NoTriggers),
                            (TriggerCond::No, true) => mismatches.push(Mismatch::HasTriggers),
                            _ => {}
                        }
                        RowOutcome::NotMatched
                    } else {
                        RowOutcome::NotReached
                    };
                    DecisionRowExplanation {
                        row: n,
                        description: row.describe(),
                        cluster: row.cluster,
                        outcome,
                        mismatches,
                    }
                })
                .collect(),
        };

        let blocking: Vec<&Conflict> = a.blocking_conflicts(rules, cluster).collect();
        let conflicts = a
            .conflicts
            .iter()
            .map(|c| ConflictExplanation {
                kind: match c {
                    Conflict::LowTierHighEngagement { .. } => ConflictKind::LowTierHighEngagement,
                    Conflict::MixedSignals { .. } => ConflictKind::MixedSignals,
                    Conflict::TierMismatch { .. } => ConflictKind::TierMismatch,
                },
                handling: if blocking.contains(&c) {
                    ConflictHandling::Checkpoint
                } else if a.rescore() == Some(c) {
                    ConflictHandling::RescoreSuggestion
                } else if Assessment::demotion_rule_acts(c, rules, cluster) {
                    ConflictHandling::DemotionRule
                } else {
                    ConflictHandling::NoCheckpoint
                },
                description: c.describe(rules),
            })
            .collect();

        let mut rationale = String::new();
        assess::write_effective_rationale(&mut rationale, rules, a, facts, cluster);
        Explanation {
            account_id: account.id().to_string(),
            name: account.name().to_string(),
            origin: Origin::Files,
            source: None,
            as_of,
            config_hash: rules.config_hash().to_string(),
            score,
            engagement,
            deals,
            triggers,
            decision,
            cluster,
            program: a.program(rules, cluster).to_string(),
            customer_status: match a.customer {
                Some(_) => CustomerStatus::Customer,
                None => CustomerStatus::Prospect,
            },
            customer: a.customer.map(|c| CustomerExplanation {
                won: c.won,
                last_won: c.last_won,
                lost: c.lost,
                program: rules.config.customers.program.clone(),
                not_yet_bought: a.whitespace.clone(),
            }),
            micro_segment: (cluster == Cluster::FuturePipeline)
                .then(|| assess::micro_segment(rules, account, a, facts)),
            next_action: assess::next_action(rules, a, cluster),
            rationale,
            conflicts,
            conflict_clusters: rules.config.checkpoints.conflict_clusters.clone(),
            stored: None,
            enrichment,
        }
    }

    /// The account as the database holds it: `origin` becomes `database`.
    pub fn with_stored(mut self, stored: StoredState) -> Explanation {
        self.origin = Origin::Database;
        self.stored = Some(stored);
        self
    }

    /// The text `abm explain` prints.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = self.write_text(&mut s);
        s
    }

    fn write_text(&self, s: &mut String) -> std::fmt::Result {
        let name = if self.name.is_empty() {
            "(no name)"
        } else {
            self.name.as_str()
        };
        match &self.source {
            Some(src) => writeln!(
                s,
                "Account {} — {} ({} line {})",
                self.account_id, name, src.file, src.line
            )?,
            None => writeln!(
                s,
                "Account {} — {} (in the database)",
                self.account_id, name
            )?,
        }
        writeln!(s, "as_of {} · config {}\n", self.as_of, self.config_hash)?;
        self.write_score(s)?;
        self.write_engagement(s)?;
        self.write_triggers(s)?;
        self.write_decision(s)
    }

    fn write_score(&self, s: &mut String) -> std::fmt::Result {
        let sc = &self.score;
        let tier_why = if sc.tier_source == ValueSource::Input {
            format!(
                "icp_tier from the input; the score gives {}",
                sc.tier_from_score
            )
        } else {
            let t = &sc.thresholds;
            format!(
                "A ≥ {}, B ≥ {}, C ≥ {}, D ≥ {}, else E",
                format_score(t.a),
                format_score(t.b),
                format_score(t.c),
                format_score(t.d)
            )
        };
        writeln!(
            s,
            "ICP score {} ({}) → tier {} ({})",
            format_score(sc.score),
            if sc.score_source == ValueSource::Input {
                "icp_score from the input"
            } else {
                "computed from the criteria"
            },
            sc.tier,
            tier_why
        )?;
        writeln!(
            s,
            "  criteria{}:",
            if sc.score_source == ValueSource::Input {
                " (for reference: the input score is used)"
            } else {
                ""
            }
        )?;
        for c in &sc.criteria {
            let (earned, value) = match c.status {
                CriterionState::Scored => {
                    (format_score(c.earned), c.value.clone().unwrap_or_default())
                }
                CriterionState::MissingZero => (
                    "0".to_string(),
                    "(missing: earns 0, icp.missing = \"zero\")".to_string(),
                ),
                CriterionState::MissingNeutral => (
                    "–".to_string(),
                    "(missing: left out of this account's points possible)".to_string(),
                ),
                CriterionState::NoData => (
                    "–".to_string(),
                    "(no data: no input has this field; left out for every account)".to_string(),
                ),
            };
            writeln!(
                s,
                "    {:>5}/{:<5} {} = {}   ({}){}",
                earned,
                format_score(c.points),
                c.field,
                value,
                c.test,
                if c.enriched { "  [enriched]" } else { "" }
            )?;
        }
        if let Some(m) = &self.enrichment {
            writeln!(
                s,
                "  enriched by {}{}: {}",
                m.source,
                m.fetched_at
                    .map(|t| format!(", fetched {t}"))
                    .unwrap_or_default(),
                m.fields.join(", ")
            )?;
        }
        if !sc.criteria_without_data.is_empty() {
            writeln!(
                s,
                "  criteria without data (no input has the field; left out of the points possible \
                 for every account): {}",
                sc.criteria_without_data.join(", ")
            )?;
        }
        if !sc.missing.is_empty() {
            writeln!(
                s,
                "  missing for this account (enrich to improve the score): {}",
                sc.missing.join(", ")
            )?;
        }
        Ok(())
    }

    fn write_engagement(&self, s: &mut String) -> std::fmt::Result {
        let e = &self.engagement;
        writeln!(
            s,
            "\nEngagement: {} (window {} days: {} .. {}, both inclusive)",
            e.level, e.window_days, e.from, self.as_of
        )?;
        let basis = match &e.basis {
            LevelBasisExplanation::Event { event_type, at } => {
                format!("{} event {} at {}", e.level, event_type, at)
            }
            LevelBasisExplanation::Contacts { count } => {
                format!("{count} distinct engaged contacts")
            }
            LevelBasisExplanation::OpenDeal { deal_id } => format!("active open deal {deal_id}"),
            LevelBasisExplanation::Nothing => "no counted engagement".into(),
        };
        writeln!(s, "  because: {basis}")?;
        writeln!(
            s,
            "  engaged contacts: {} (Medium at {}, High at {})",
            e.engaged_contacts, e.medium_contacts, e.high_contacts
        )?;
        let stored = self.origin == Origin::Database;
        writeln!(
            s,
            "  events: {} {}, {} counted",
            e.events_read,
            if stored { "stored" } else { "in the file" },
            e.counted_events
        )?;
        if e.unknown_type > 0 {
            writeln!(
                s,
                "  not read: {} stored event(s) of a type the config does not know",
                e.unknown_type
            )?;
        }
        for r in e.rejected.iter().take(MAX_IGNORED_LISTED) {
            writeln!(
                s,
                "  rejected (not read): {} event row(s), {}",
                r.rows, r.reason
            )?;
        }
        let several = e.files.len() > 1;
        let row = |s: &mut String, ev: &EventExplanation| {
            let verdict = match (ev.verdict, ev.level) {
                (EventVerdict::Counted, Some(l)) => format!("counted ({l})"),
                (v, _) => v.describe().to_string(),
            };
            let contact = if ev.contact.is_empty() {
                "-"
            } else {
                ev.contact.as_str()
            };
            match &ev.source {
                Some(src) => {
                    let line = match several {
                        true => format!("{}:{}", file_name(&src.file), src.line),
                        false => src.line.to_string(),
                    };
                    writeln!(
                        s,
                        "    line {:<9} {}  {:<28} {:<16} {}",
                        line, ev.at, ev.event_type, contact, verdict
                    )
                }
                None => writeln!(
                    s,
                    "    {}  {:<28} {:<16} {}",
                    ev.at, ev.event_type, contact, verdict
                ),
            }
        };
        for ev in &e.counted {
            row(s, ev)?;
        }
        for g in &e.not_counted {
            writeln!(
                s,
                "  not counted: {} {}",
                g.events.len(),
                g.verdict.describe()
            )?;
            for ev in g.events.iter().take(MAX_IGNORED_LISTED) {
                row(s, ev)?;
            }
            if g.events.len() > MAX_IGNORED_LISTED {
                writeln!(
                    s,
                    "    … {} more not listed",
                    g.events.len() - MAX_IGNORED_LISTED
                )?;
            }
        }
        if self.deals.is_empty() {
            return writeln!(s, "  deals: none");
        }
        writeln!(s, "  deals:")?;
        for d in &self.deals {
            let status = match d.status {
                DealState::Active => "active (High engagement)".to_string(),
                DealState::Stalled => format!(
                    "stalled: no stage change for {} days (≥ {})",
                    d.stalled_days.unwrap_or_default(),
                    e.stalled_after_days
                ),
                DealState::NotYetCreated => "created after as_of, ignored".into(),
                DealState::Closed => match d.closed_at {
                    Some(c) => format!("{} {}", d.outcome.as_str(), c.date_string()),
                    None => d.outcome.as_str().to_string(),
                },
                DealState::BeforeFloor => "before the last demotion".into(),
            };
            let mut later = String::new();
            if let Some(o) = d.outcome_after_as_of {
                write!(
                    later,
                    "; {} {} after as_of (open then)",
                    o.as_str(),
                    d.closed_at.map(|c| c.date_string()).unwrap_or_default()
                )?;
            }
            if let Some(t) = d.stage_change_after_as_of {
                write!(
                    later,
                    "; stage change {} after as_of, not read",
                    t.date_string()
                )?;
            }
            if d.from_history {
                later.push_str(" (stage history)");
            }
            writeln!(
                s,
                "    {} {} {} created {} last change {} → {}{}",
                d.deal_id,
                d.stage,
                d.outcome.as_str(),
                d.created_at.date_string(),
                d.last_change_at.date_string(),
                status,
                later
            )?;
        }
        Ok(())
    }

    fn write_triggers(&self, s: &mut String) -> std::fmt::Result {
        let t = &self.triggers;
        writeln!(
            s,
            "\nTriggers: {} in the {}-day window ({} .. {})",
            t.counted, t.window_days, t.from, self.as_of
        )?;
        for x in &t.items {
            writeln!(
                s,
                "    {}  {:<20} {:<50} {}",
                x.at,
                x.trigger_type,
                x.headline,
                match x.status {
                    TriggerState::AfterAsOf => "after as_of, ignored",
                    TriggerState::Counted => "counted",
                    TriggerState::OutsideWindow => "outside the window",
                    TriggerState::BeforeFloor => "before the last demotion, ignored",
                }
            )?;
        }
        if !t.demotion_signals.is_empty() {
            writeln!(s, "  demotion signals in the window:")?;
            for x in &t.demotion_signals {
                writeln!(s, "    {}  {}", x.at, x.event_type)?;
            }
        }
        Ok(())
    }

    fn write_decision(&self, s: &mut String) -> std::fmt::Result {
        if self.decision.rule == 0 {
            writeln!(
                s,
                "\nDecision table: bypassed: a customer (a deal won by as_of) is in the customer \
                 track ([customers] mode = \"track\")"
            )?;
        } else {
            writeln!(s, "\nDecision table (first match wins):")?;
        }
        for r in self
            .decision
            .rows
            .iter()
            .filter(|_| self.decision.rule != 0)
        {
            let why = match r.outcome {
                RowOutcome::Matched => "← matched".to_string(),
                RowOutcome::NotMatched => {
                    let no: Vec<String> = r
                        .mismatches
                        .iter()
                        .map(|m| match m {
                            Mismatch::Tier { tier } => format!("tier {tier}"),
                            Mismatch::Engagement { level } => format!("engagement {level}"),
                            Mismatch::NoTriggers => "no triggers".into(),
                            Mismatch::HasTriggers => "has triggers".into(),
                        })
                        .collect();
                    format!("no: {}", no.join(", "))
                }
                RowOutcome::NotReached => String::new(),
            };
            writeln!(s, "  {}. {:<70} {why}", r.row, r.description)?;
        }
        writeln!(s, "\nCluster: {} · program {}", self.cluster, self.program)?;
        if let Some(c) = &self.customer {
            let place = if self.cluster == Cluster::Customer {
                "is in the customer track".to_string()
            } else {
                format!("stays in {}", self.cluster)
            };
            writeln!(
                s,
                "Customer: {} won deal(s) by as_of (last {}), {} lost; {place} with the {} program",
                c.won,
                c.last_won.date_string(),
                c.lost,
                c.program
            )?;
            if !c.not_yet_bought.is_empty() {
                writeln!(
                    s,
                    "Whitespace (products not yet bought): {}",
                    c.not_yet_bought.join(", ")
                )?;
            }
        }
        if let Some(m) = &self.micro_segment {
            writeln!(s, "Micro-segment: {m}")?;
        }
        writeln!(s, "Next action: {}", self.next_action)?;
        if !self
            .conflicts
            .iter()
            .any(|c| c.handling == ConflictHandling::Checkpoint)
        {
            writeln!(s, "Checkpoint: none")?;
        }
        for c in &self.conflicts {
            match c.handling {
                ConflictHandling::Checkpoint => {
                    writeln!(s, "Checkpoint: conflict — {}", c.description)?
                }
                ConflictHandling::RescoreSuggestion => writeln!(
                    s,
                    "Suggestion (no checkpoint): re-score this account — {}",
                    c.description
                )?,
                ConflictHandling::DemotionRule => writeln!(
                    s,
                    "Signals disagree (no checkpoint: a demotion rule of {} acts on this \
                     signal; a stateful run moves the account or proposes the move): {}",
                    self.cluster, c.description
                )?,
                ConflictHandling::NoCheckpoint => writeln!(
                    s,
                    "Signals disagree (no checkpoint: conflicts are raised for accounts in or \
                     entering {}): {}",
                    self.conflict_clusters
                        .iter()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    c.description
                )?,
            }
        }
        match &self.stored {
            None => writeln!(
                s,
                "Movement: none in a stateless segment (see `abm run` and `abm history {}`)",
                self.account_id
            ),
            Some(st) => self.write_stored(s, st),
        }
    }

    fn write_stored(&self, s: &mut String, st: &StoredState) -> std::fmt::Result {
        writeln!(s, "\nIn the database")?;
        match &st.current {
            Some(c) => {
                write!(
                    s,
                    "  state: {} since {} (set by run {})",
                    c.cluster,
                    c.entered_at.date_string(),
                    c.run
                )?;
                if let Some(f) = c.floor {
                    write!(
                        s,
                        "; evidence counts after the demotion of {}",
                        f.date_string()
                    )?;
                }
                writeln!(s)?;
            }
            None => writeln!(s, "  state: none yet (no run has evaluated this account)")?,
        }
        match &st.last_run {
            Some(r) => match &r.snapshot {
                Some(x) => writeln!(
                    s,
                    "  latest run {} as of {}: {} ({}), tier {}, score {}",
                    r.run,
                    r.as_of,
                    x.cluster,
                    x.movement.as_str(),
                    x.tier,
                    format_score(x.score)
                )?,
                None => writeln!(
                    s,
                    "  latest run {} as of {}: the account was not in it",
                    r.run, r.as_of
                )?,
            },
            None => writeln!(s, "  latest run: none yet")?,
        }
        let n = &st.next_run;
        write!(
            s,
            "  a run as of {}: {} → {}",
            self.as_of,
            n.movement.as_str(),
            n.cluster
        )?;
        if n.candidate != n.cluster {
            write!(s, " (the entry rules give {})", n.candidate)?;
        }
        if !n.rule.is_empty() {
            write!(s, "; {}", n.rule)?;
        }
        if let Some(p) = &n.proposal {
            write!(
                s,
                "; opens a {} checkpoint {} → {}",
                p.kind.as_str(),
                p.from,
                p.to
            )?;
        }
        writeln!(s)?;
        if st.open_checkpoints.is_empty() {
            writeln!(s, "  open checkpoints: none")?;
        }
        for c in &st.open_checkpoints {
            write!(s, "  open checkpoint {}: {}", c.id, c.kind.as_str())?;
            if let (Some(f), Some(t)) = (c.from, c.to) {
                write!(s, " {f} → {t}")?;
            }
            writeln!(
                s,
                " (run {} as of {}; `abm review approve|reject {}`)",
                c.run,
                c.as_of.date_string(),
                c.id
            )?;
        }
        writeln!(
            s,
            "Movement: see `abm history {}` for every snapshot and move",
            self.account_id
        )
    }
}

/// The last part of a path (`data/engagement.csv` → `engagement.csv`), as text.
fn file_name(path: &str) -> String {
    std::path::Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
