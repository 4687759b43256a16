//! Movement over time (SPEC §4.5): given an account's previous *effective* state and this run's
//! assessment, decide the new effective cluster, the movement, the rule, the evidence, and what
//! happens to review proposals. Pure: the store persists what this returns.
//!
//! Order: demotion rules of the effective cluster first (whatever the entry rules say); if none
//! fires, the entry rules give a candidate: higher → promotion (proposed where the config says
//! so), lower → held (hysteresis).

use crate::assess::{Assessment, Facts};
use crate::engagement::LevelBasis;
use crate::model::Cluster;
use crate::rules::Rules;
use crate::time::Instant;
use serde::{Deserialize, Serialize};

/// What the store remembers of an account between runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriorState {
    /// The effective cluster.
    pub cluster: Cluster,
    /// `as_of` of the run in which the account entered `cluster`.
    pub entered_at: Instant,
    /// `as_of` of the account's last demotion (`Instant::MIN` if none): evidence never reaches
    /// back past it.
    pub floor: Instant,
    /// The open proposal, if any.
    pub pending: Option<Proposal>,
    /// Signatures of this account's rejected proposals: the same evidence never re-opens one.
    pub rejected: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalKind {
    PromotionToActiveFocus,
    DemotionFromActiveFocus,
    /// A promotion into another cluster the config says needs approval.
    Promotion,
    /// A demotion out of another cluster the config says needs approval.
    Demotion,
}

impl ProposalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProposalKind::PromotionToActiveFocus => "promotion_to_active_focus",
            ProposalKind::DemotionFromActiveFocus => "demotion_from_active_focus",
            ProposalKind::Promotion => "promotion",
            ProposalKind::Demotion => "demotion",
        }
    }

    pub fn parse(s: &str) -> Option<ProposalKind> {
        [
            ProposalKind::PromotionToActiveFocus,
            ProposalKind::DemotionFromActiveFocus,
            ProposalKind::Promotion,
            ProposalKind::Demotion,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// What a review-queue item is about: a stable code (`capacity`, `conflict`, or a proposal's
/// kind). Ordered by code, so maps keyed by it list in the code's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointKind {
    /// Active Focus over its max (one per run).
    Capacity,
    /// Signals disagree for an account in (or entering) a conflict cluster.
    Conflict,
    PromotionToActiveFocus,
    DemotionFromActiveFocus,
    Promotion,
    Demotion,
}

impl CheckpointKind {
    pub const ALL: [CheckpointKind; 6] = [
        CheckpointKind::Capacity,
        CheckpointKind::Conflict,
        CheckpointKind::PromotionToActiveFocus,
        CheckpointKind::DemotionFromActiveFocus,
        CheckpointKind::Promotion,
        CheckpointKind::Demotion,
    ];

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

    pub fn parse(s: &str) -> Option<CheckpointKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The proposal kind, for a proposed move.
    pub fn proposal(self) -> Option<ProposalKind> {
        match self {
            CheckpointKind::PromotionToActiveFocus => Some(ProposalKind::PromotionToActiveFocus),
            CheckpointKind::DemotionFromActiveFocus => Some(ProposalKind::DemotionFromActiveFocus),
            CheckpointKind::Promotion => Some(ProposalKind::Promotion),
            CheckpointKind::Demotion => Some(ProposalKind::Demotion),
            CheckpointKind::Capacity | CheckpointKind::Conflict => None,
        }
    }
}

impl From<ProposalKind> for CheckpointKind {
    fn from(k: ProposalKind) -> CheckpointKind {
        match k {
            ProposalKind::PromotionToActiveFocus => CheckpointKind::PromotionToActiveFocus,
            ProposalKind::DemotionFromActiveFocus => CheckpointKind::DemotionFromActiveFocus,
            ProposalKind::Promotion => CheckpointKind::Promotion,
            ProposalKind::Demotion => CheckpointKind::Demotion,
        }
    }
}

/// Where a review-queue item stands (SPEC §4.5): a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointStatus {
    Pending,
    Approved,
    Rejected,
    /// Closed without a reviewer: the account moved on, superseded, resolved, or expired by
    /// the `[review]` policy.
    Closed,
}

impl CheckpointStatus {
    pub const ALL: [CheckpointStatus; 4] = [
        CheckpointStatus::Pending,
        CheckpointStatus::Approved,
        CheckpointStatus::Rejected,
        CheckpointStatus::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointStatus::Pending => "pending",
            CheckpointStatus::Approved => "approved",
            CheckpointStatus::Rejected => "rejected",
            CheckpointStatus::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<CheckpointStatus> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One entry of the decisions audit trail: a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionAction {
    Approve,
    Reject,
    /// Closed by a run or the review policy.
    Close,
}

impl DecisionAction {
    pub const ALL: [DecisionAction; 3] = [
        DecisionAction::Approve,
        DecisionAction::Reject,
        DecisionAction::Close,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DecisionAction::Approve => "approve",
            DecisionAction::Reject => "reject",
            DecisionAction::Close => "close",
        }
    }

    pub fn parse(s: &str) -> Option<DecisionAction> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

macro_rules! by_code {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        /// Ordered by code (as text), so maps keyed by it read as they did with text keys.
        impl Ord for $t {
            fn cmp(&self, o: &Self) -> std::cmp::Ordering {
                self.as_str().cmp(o.as_str())
            }
        }
        impl PartialOrd for $t {
            fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(o))
            }
        }
    )*};
}
by_code!(CheckpointKind, CheckpointStatus, DecisionAction);

impl std::fmt::Display for Movement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A move waiting for a reviewer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub kind: ProposalKind,
    pub from: Cluster,
    pub to: Cluster,
    pub rule: String,
    /// Identifies the evidence: a rejected proposal is not re-opened with the same signature.
    pub signature: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Movement {
    /// First evaluation: the entry rules apply directly.
    Baseline,
    Unchanged,
    Promotion,
    Demotion,
    /// A proposal is open (or still pending); the effective cluster has not changed.
    ProposedPromotion,
    ProposedDemotion,
    /// The candidate is lower but no demotion rule fired.
    Held,
}

impl Movement {
    pub fn as_str(self) -> &'static str {
        match self {
            Movement::Baseline => "baseline",
            Movement::Unchanged => "unchanged",
            Movement::Promotion => "promotion",
            Movement::Demotion => "demotion",
            Movement::ProposedPromotion => "proposed_promotion",
            Movement::ProposedDemotion => "proposed_demotion",
            Movement::Held => "held",
        }
    }

    pub fn parse(s: &str) -> Option<Movement> {
        [
            Movement::Baseline,
            Movement::Unchanged,
            Movement::Promotion,
            Movement::Demotion,
            Movement::ProposedPromotion,
            Movement::ProposedDemotion,
            Movement::Held,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }

    /// A change of effective cluster.
    pub fn is_move(self) -> bool {
        matches!(self, Movement::Promotion | Movement::Demotion)
    }
}

/// What a piece of evidence is: a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    Tier,
    Event,
    Contacts,
    Deal,
    Trigger,
    Signal,
    Inactivity,
    Capacity,
    Conflict,
}

impl EvidenceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceKind::Tier => "tier",
            EvidenceKind::Event => "event",
            EvidenceKind::Contacts => "contacts",
            EvidenceKind::Deal => "deal",
            EvidenceKind::Trigger => "trigger",
            EvidenceKind::Signal => "signal",
            EvidenceKind::Inactivity => "inactivity",
            EvidenceKind::Capacity => "capacity",
            EvidenceKind::Conflict => "conflict",
        }
    }
}

impl std::fmt::Display for EvidenceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One piece of evidence: what, and when. `detail` is for people; `code` is its identity (a
/// tier letter, an event/trigger/signal type, a deal id, a contact count, a conflict code) and,
/// with `kind` and `at`, all that a signature is built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub kind: EvidenceKind,
    pub detail: String,
    pub at: Option<Instant>,
    /// Not serialized (the evidence's JSON keeps its shape); the signature carries it.
    #[serde(skip)]
    pub code: String,
}

impl Evidence {
    pub fn new(
        kind: EvidenceKind,
        code: impl Into<String>,
        detail: impl Into<String>,
        at: Option<Instant>,
    ) -> Evidence {
        Evidence {
            kind,
            detail: detail.into(),
            at,
            code: code.into(),
        }
    }

    /// `kind:code@micros` (or `kind:code` without an instant): codes, ids and instants only.
    pub fn key(&self) -> String {
        match self.at {
            Some(t) => format!("{}:{}@{}", self.kind, self.code, t.0),
            None => format!("{}:{}", self.kind, self.code),
        }
    }
}

/// Which movement rule fired: a stable code (its wording is [`RuleCode::name`] and the rule
/// text around it, which may change without changing the identity).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleCode {
    /// Promotion by the decision table's row N (1-based).
    EntryRule(u8),
    /// Tier fell to D/E: Monitor Only.
    TierDrop,
    /// Active Focus: an open deal with no stage change for `stalled_after_days`.
    DealStalled,
    /// A demotion signal event of this type.
    Signal(String),
    /// Active Focus: no Medium+ engagement for `af_inactivity_days`.
    AfInactivity,
    /// Future Pipeline: no engagement for `fp_inactivity_days`.
    FpInactivity,
    /// The customer track: a deal won by as_of (`[customers] mode = "track"`).
    CustomerWon,
    /// Out of the customer track: no deal won by as_of any more (an earlier as_of, corrected
    /// deals, or the mode switched off the track).
    CustomerLeft,
}

impl RuleCode {
    /// The code in text: `entry_rule:3`, `tier_drop`, `deal_stalled`, `signal:champion_left`,
    /// `af_inactivity`, `fp_inactivity`.
    pub fn code(&self) -> String {
        match self {
            RuleCode::EntryRule(n) => format!("entry_rule:{n}"),
            RuleCode::Signal(t) => format!("signal:{t}"),
            other => other.name().to_string(),
        }
    }

    /// The name the rule texts use (`demotion: deal_stalled`, `demotion: champion_left`).
    pub fn name(&self) -> &str {
        match self {
            RuleCode::EntryRule(_) => "entry_rule",
            RuleCode::TierDrop => "tier_drop",
            RuleCode::DealStalled => "deal_stalled",
            RuleCode::Signal(t) => t,
            RuleCode::AfInactivity => "af_inactivity",
            RuleCode::FpInactivity => "fp_inactivity",
            RuleCode::CustomerWon => "customer_won",
            RuleCode::CustomerLeft => "customer_left",
        }
    }
}

/// A proposal's identity: `promotion|demotion`, the rule's code and the evidence keys (sorted),
/// e.g. `promotion:entry_rule:3|event:meeting@1792454400000000;tier:A`. Never wording: a
/// rejected proposal stays rejected when a message changes, and a new piece of evidence (another
/// event, another date) makes a new signature.
pub fn signature(promotion: bool, rule: &RuleCode, evidence: &[Evidence]) -> String {
    let mut keys: Vec<String> = evidence.iter().map(|e| e.key()).collect();
    keys.sort();
    format!(
        "{}:{}|{}",
        if promotion { "promotion" } else { "demotion" },
        rule.code(),
        keys.join(";")
    )
}

/// Signatures as abm wrote them before stable codes (schema ≤ 2: the rule's text plus the
/// evidence's wording), rebuilt in today's form from what a checkpoint row kept: its rule text and
/// its evidence (whose `detail` wording these functions know; `code` is filled in from it).
/// `None` when a text is not one the old code wrote.
pub mod legacy {
    use super::{signature, Evidence, EvidenceKind, RuleCode};
    use crate::time::Instant;

    fn evidence_code(e: &Evidence) -> Option<String> {
        let d = e.detail.as_str();
        Some(match e.kind {
            EvidenceKind::Tier => {
                let d = d.strip_prefix("tier fell to ").unwrap_or(d);
                let (tier, _) = d.split_once(" (score ")?;
                crate::Tier::parse(tier)?.as_str().to_string()
            }
            EvidenceKind::Event => d.rsplit_once(" (")?.0.to_string(),
            EvidenceKind::Contacts => {
                let (n, rest) = d.split_once(' ')?;
                n.parse::<u32>().ok()?;
                rest.starts_with("engaged contacts")
                    .then(|| n.to_string())?
            }
            EvidenceKind::Deal => {
                let id_stage = match d.strip_prefix("open deal ") {
                    Some(rest) => rest,
                    None => {
                        d.strip_prefix("deal ")?
                            .rsplit_once(") stalled: no stage change since ")?
                            .0
                    }
                };
                id_stage.rsplit_once(" (")?.0.to_string()
            }
            EvidenceKind::Trigger | EvidenceKind::Signal => d.to_string(),
            EvidenceKind::Inactivity => String::new(),
            EvidenceKind::Capacity | EvidenceKind::Conflict => return None,
        })
    }

    /// A proposal's signature from its stored rule text (`promotion: entry rule 3: …`,
    /// `demotion: deal_stalled`, `demotion: champion_left`) and evidence.
    pub fn proposal_signature(rule: &str, evidence: &[Evidence]) -> Option<String> {
        let (promotion, code) = if let Some(rest) = rule.strip_prefix("promotion: entry rule ") {
            let (n, _) = rest.split_once(':')?;
            (true, RuleCode::EntryRule(n.parse().ok()?))
        } else {
            let name = rule.strip_prefix("demotion: ")?;
            let code = match name {
                "tier_drop" => RuleCode::TierDrop,
                "deal_stalled" => RuleCode::DealStalled,
                "af_inactivity" => RuleCode::AfInactivity,
                "fp_inactivity" => RuleCode::FpInactivity,
                "" => return None,
                other => RuleCode::Signal(other.to_string()),
            };
            (false, code)
        };
        let mut ev = evidence.to_vec();
        for e in &mut ev {
            e.code = evidence_code(e)?;
        }
        Some(signature(promotion, &code, &ev))
    }

    /// A conflict's code from its old description (`Conflict::describe`'s wording).
    fn conflict_code(d: &str) -> Option<String> {
        if let Some(rest) = d.strip_prefix("demotion signal ") {
            let (sig, _) = rest.split_once(" alongside promotion signals")?;
            let (name, at) = sig.rsplit_once('@')?;
            return Some(format!(
                "mixed_signals:{name}@{}",
                Instant::parse(at).ok()?.0
            ));
        }
        if let Some(rest) = d.strip_prefix("input icp_tier ") {
            let (input, computed) = rest.split_once(" but the score gives tier ")?;
            let (i, c) = (crate::Tier::parse(input)?, crate::Tier::parse(computed)?);
            return Some(format!("tier_mismatch:{i}:{c}"));
        }
        let rest = d.strip_prefix("tier ")?;
        let (tier, what) = rest.split_once(" with ")?;
        let what = match what {
            "an active open deal" => "open_deal",
            "High engagement" => "high",
            _ => return None,
        };
        Some(format!(
            "low_tier_high_engagement:{}:{what}",
            crate::Tier::parse(tier)?
        ))
    }

    /// A conflict checkpoint's signature from its stored evidence (one `conflict` item per
    /// conflict, described in words).
    pub fn conflict_signature(evidence: &[Evidence]) -> Option<String> {
        let codes = evidence
            .iter()
            .map(|e| conflict_code(&e.detail))
            .collect::<Option<Vec<String>>>()?;
        Some(crate::assess::Conflict::signature(&codes))
    }
}

/// What to do with the review queue for this account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProposalAction {
    None,
    /// Open this proposal (closing any other pending one with `close_reason`).
    Open(Proposal),
    /// The pending proposal still stands: do not duplicate it.
    KeepPending,
    /// Close the pending proposal with this reason.
    Close(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What the entry rules say.
    pub candidate: Cluster,
    /// The effective cluster after this run.
    pub cluster: Cluster,
    pub previous: Option<Cluster>,
    pub entered_at: Instant,
    pub floor: Instant,
    pub movement: Movement,
    pub rule: String,
    pub evidence: Vec<Evidence>,
    pub proposal: ProposalAction,
    /// When opening a proposal while another is pending: why the old one closes.
    pub close_reason: Option<String>,
}

fn needs_approval(rules: &Rules, from: Cluster, to: Cluster, promotion: bool) -> bool {
    let m = &rules.config.movement;
    if promotion {
        m.approve_promotion_to.contains(&to)
    } else {
        m.approve_demotion_from.contains(&from)
    }
}

fn kind_of(from: Cluster, to: Cluster, promotion: bool) -> ProposalKind {
    match (promotion, from, to) {
        (true, _, Cluster::ActiveFocus) => ProposalKind::PromotionToActiveFocus,
        (false, Cluster::ActiveFocus, _) => ProposalKind::DemotionFromActiveFocus,
        (true, ..) => ProposalKind::Promotion,
        (false, ..) => ProposalKind::Demotion,
    }
}

/// The evidence behind the entry-rule candidate.
pub fn entry_evidence(rules: &Rules, a: &Assessment, facts: &Facts<'_>) -> Vec<Evidence> {
    let mut ev = vec![Evidence::new(
        EvidenceKind::Tier,
        a.score.tier.as_str(),
        format!("{} (score {})", a.score.tier, a.score.score_text()),
        None,
    )];
    match &a.basis {
        LevelBasis::Event { code, at } => ev.push(Evidence::new(
            EvidenceKind::Event,
            rules.event_name(*code),
            format!("{} ({})", rules.event_name(*code), a.level),
            Some(*at),
        )),
        LevelBasis::Contacts(n) => ev.push(Evidence::new(
            EvidenceKind::Contacts,
            n.to_string(),
            format!("{n} engaged contacts ({})", a.level),
            None,
        )),
        LevelBasis::OpenDeal(i) => {
            let d = &facts.deals[*i];
            ev.push(Evidence::new(
                EvidenceKind::Deal,
                d.deal_id.as_str(),
                format!("open deal {} ({})", d.deal_id, d.stage_at(rules.as_of)),
                Some(d.last_change_at(rules.as_of)),
            ))
        }
        LevelBasis::Nothing => {}
    }
    for (c, at) in &a.triggers {
        let name = rules.trigger_name(*c);
        ev.push(Evidence::new(EvidenceKind::Trigger, name, name, Some(*at)));
    }
    ev
}

/// The evidence of a customer in the track: its deals won by as_of, newest first (5 at most).
pub fn customer_evidence(rules: &Rules, facts: &Facts<'_>) -> Vec<Evidence> {
    let as_of = rules.as_of;
    let mut won: Vec<(Instant, &str)> = facts
        .deals
        .iter()
        .filter(|d| d.created_at <= as_of && d.won_by(as_of))
        .map(|d| {
            (
                d.closed_at_by(as_of).unwrap_or(d.created_at),
                d.deal_id.as_str(),
            )
        })
        .collect();
    won.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    won.into_iter()
        .take(5)
        .map(|(at, id)| {
            Evidence::new(
                EvidenceKind::Deal,
                id,
                format!("deal {id} won {}", at.date_string()),
                Some(at),
            )
        })
        .collect()
}

/// The customer track's rule text.
pub const CUSTOMER_RULE: &str = "customer: a deal won by as_of (the decision table is bypassed)";

fn signal_evidence(rules: &Rules, code: crate::rules::Code, at: Instant) -> Evidence {
    let name = rules.event_name(code);
    Evidence::new(EvidenceKind::Signal, name, name, Some(at))
}

/// A demotion rule that fired: (target, rule, evidence).
fn demotion(
    rules: &Rules,
    prior: &PriorState,
    a: &Assessment,
    facts: &Facts<'_>,
) -> Option<(Cluster, RuleCode, Vec<Evidence>)> {
    let as_of = rules.as_of;
    let m = &rules.config.movement;
    if prior.cluster != Cluster::MonitorOnly && a.cluster == Cluster::MonitorOnly {
        return Some((
            Cluster::MonitorOnly,
            RuleCode::TierDrop,
            vec![Evidence::new(
                EvidenceKind::Tier,
                a.score.tier.as_str(),
                format!(
                    "tier fell to {} (score {})",
                    a.score.tier,
                    a.score.score_text()
                ),
                None,
            )],
        ));
    }
    match prior.cluster {
        Cluster::ActiveFocus => {
            if m.demote_af_on_stalled_deal {
                let days = rules.config.engagement.stalled_after_days;
                let stalled: Vec<Evidence> = a
                    .stalled_deals
                    .iter()
                    .map(|&i| &facts.deals[i])
                    .filter(|d| d.last_change_at(as_of).plus_days(days) > prior.floor)
                    .map(|d| {
                        Evidence::new(
                            EvidenceKind::Deal,
                            d.deal_id.as_str(),
                            format!(
                                "deal {} ({}) stalled: no stage change since {}",
                                d.deal_id,
                                d.stage_at(as_of),
                                d.last_change_at(as_of).date_string()
                            ),
                            Some(d.last_change_at(as_of)),
                        )
                    })
                    .collect();
                if !stalled.is_empty() {
                    return Some((Cluster::FuturePipeline, RuleCode::DealStalled, stalled));
                }
            }
            let sig: Vec<Evidence> = a
                .signals
                .iter()
                .filter(|(c, _)| rules.af_signal[*c as usize])
                .map(|(c, at)| signal_evidence(rules, *c, *at))
                .collect();
            if let Some(first) = sig.first() {
                let rule = RuleCode::Signal(first.code.clone());
                return Some((Cluster::FuturePipeline, rule, sig));
            }
            let last = facts.engagement.last_medium_plus().max(prior.entered_at);
            if last <= as_of.minus_days(m.af_inactivity_days) {
                return Some((
                    Cluster::FuturePipeline,
                    RuleCode::AfInactivity,
                    vec![Evidence::new(
                        EvidenceKind::Inactivity,
                        "",
                        // Stable across runs (no running day count): the evidence, and so
                        // the signature a rejection remembers, is the date of the last event.
                        format!(
                            "no Medium+ engagement since {} ({}+ days)",
                            last.date_string(),
                            m.af_inactivity_days
                        ),
                        Some(last),
                    )],
                ));
            }
        }
        Cluster::FuturePipeline => {
            let sig: Vec<Evidence> = a
                .signals
                .iter()
                .filter(|(c, _)| rules.fp_signal[*c as usize])
                .map(|(c, at)| signal_evidence(rules, *c, *at))
                .collect();
            if let Some(first) = sig.first() {
                let rule = RuleCode::Signal(first.code.clone());
                return Some((Cluster::ClusterIcp, rule, sig));
            }
            let last = facts.engagement.last_any().max(prior.entered_at);
            if last <= as_of.minus_days(m.fp_inactivity_days) {
                return Some((
                    Cluster::ClusterIcp,
                    RuleCode::FpInactivity,
                    vec![Evidence::new(
                        EvidenceKind::Inactivity,
                        "",
                        format!(
                            "no engagement since {} ({}+ days)",
                            last.date_string(),
                            m.fp_inactivity_days
                        ),
                        Some(last),
                    )],
                ));
            }
        }
        Cluster::ClusterIcp | Cluster::MonitorOnly | Cluster::Customer => {}
    }
    None
}

/// Decide this run's outcome for one account. `facts.floor` must be `prior.floor`.
pub fn decide(
    rules: &Rules,
    prior: Option<&PriorState>,
    a: &Assessment,
    facts: &Facts<'_>,
) -> Decision {
    let as_of = rules.as_of;
    let track = a.cluster == Cluster::Customer;
    let entry_rule = if track {
        CUSTOMER_RULE.to_string()
    } else {
        format!(
            "entry rule {}: {}",
            a.rule,
            rules.decision.rows[a.rule as usize - 1].describe()
        )
    };
    let evidence = || {
        if track {
            customer_evidence(rules, facts)
        } else {
            entry_evidence(rules, a, facts)
        }
    };
    let Some(prior) = prior else {
        return Decision {
            candidate: a.cluster,
            cluster: a.cluster,
            previous: None,
            entered_at: as_of,
            floor: Instant::MIN,
            movement: Movement::Baseline,
            rule: entry_rule,
            evidence: evidence(),
            proposal: ProposalAction::None,
            close_reason: None,
        };
    };
    let stay = |movement: Movement, rule: String, evidence: Vec<Evidence>, proposal| Decision {
        candidate: a.cluster,
        cluster: prior.cluster,
        previous: Some(prior.cluster),
        entered_at: prior.entered_at,
        floor: prior.floor,
        movement,
        rule,
        evidence,
        proposal,
        close_reason: None,
    };
    let close_pending = |why: String| match &prior.pending {
        Some(_) => ProposalAction::Close(why),
        None => ProposalAction::None,
    };

    // A move to `to`, applied or proposed.
    let mv = |to: Cluster,
              promotion: bool,
              code: RuleCode,
              rule: String,
              evidence: Vec<Evidence>|
     -> Decision {
        if needs_approval(rules, prior.cluster, to, promotion) {
            let kind = kind_of(prior.cluster, to, promotion);
            let movement = if promotion {
                Movement::ProposedPromotion
            } else {
                Movement::ProposedDemotion
            };
            if let Some(p) = &prior.pending {
                if p.kind == kind && p.to == to {
                    return stay(
                        movement,
                        format!("{rule} (pending review)"),
                        evidence,
                        ProposalAction::KeepPending,
                    );
                }
            }
            let sig = signature(promotion, &code, &evidence);
            if prior.rejected.contains(&sig) {
                return stay(
                    if promotion {
                        Movement::Unchanged
                    } else {
                        Movement::Held
                    },
                    format!("{rule} (rejected earlier on the same evidence)"),
                    evidence,
                    close_pending("account moved on: a different move applies now".into()),
                );
            }
            let mut d = stay(
                movement,
                rule.clone(),
                evidence,
                ProposalAction::Open(Proposal {
                    kind,
                    from: prior.cluster,
                    to,
                    rule,
                    signature: sig,
                }),
            );
            if prior.pending.is_some() {
                d.close_reason = Some("superseded by a new proposal".into());
            }
            return d;
        }
        Decision {
            candidate: a.cluster,
            cluster: to,
            previous: Some(prior.cluster),
            entered_at: as_of,
            floor: if promotion { prior.floor } else { as_of },
            movement: if promotion {
                Movement::Promotion
            } else {
                Movement::Demotion
            },
            rule,
            evidence,
            proposal: close_pending(format!("account moved on: now {to}")),
            close_reason: None,
        }
    };

    // The customer track (`[customers] mode = "track"`): a won deal moves the account in (a
    // promotion, applied at once unless `approve_promotion_to` names `customer`); without a
    // deal won by as_of it leaves at once, back to what the entry rules say.
    if track {
        if prior.cluster == Cluster::Customer {
            let why = "account moved on: candidate is now customer".to_string();
            return stay(
                Movement::Unchanged,
                entry_rule,
                evidence(),
                close_pending(why),
            );
        }
        return mv(
            Cluster::Customer,
            true,
            RuleCode::CustomerWon,
            format!("promotion: {entry_rule}"),
            evidence(),
        );
    }
    if prior.cluster == Cluster::Customer {
        return Decision {
            candidate: a.cluster,
            cluster: a.cluster,
            previous: Some(prior.cluster),
            entered_at: as_of,
            floor: prior.floor,
            movement: Movement::Demotion,
            rule: format!(
                "demotion: {}: no deal won by as_of",
                RuleCode::CustomerLeft.name()
            ),
            evidence: vec![Evidence::new(
                EvidenceKind::Deal,
                "",
                "no deal won by as_of: out of the customer track",
                None,
            )],
            proposal: close_pending(format!("account moved on: now {}", a.cluster)),
            close_reason: None,
        };
    }

    if let Some((to, rule, evidence)) = demotion(rules, prior, a, facts) {
        let immediate = to == Cluster::MonitorOnly;
        if immediate {
            return Decision {
                candidate: a.cluster,
                cluster: to,
                previous: Some(prior.cluster),
                entered_at: as_of,
                floor: as_of,
                movement: Movement::Demotion,
                rule: format!("demotion: {}", rule.name()),
                evidence,
                proposal: close_pending("account moved on: now monitor_only".into()),
                close_reason: None,
            };
        }
        let text = format!("demotion: {}", rule.name());
        return mv(to, false, rule, text, evidence);
    }

    let rank = |c: Cluster| c.rank().map(|r| r as i32).unwrap_or(-1);
    let (cand, prev) = (rank(a.cluster), rank(prior.cluster));
    if cand > prev {
        return mv(
            a.cluster,
            true,
            RuleCode::EntryRule(a.rule),
            format!("promotion: {entry_rule}"),
            entry_evidence(rules, a, facts),
        );
    }
    let why = format!("account moved on: candidate is now {}", a.cluster);
    if cand == prev {
        return stay(
            Movement::Unchanged,
            entry_rule,
            entry_evidence(rules, a, facts),
            close_pending(why),
        );
    }
    stay(
        Movement::Held,
        format!(
            "hysteresis: candidate {} ({entry_rule}) is below {}, no demotion rule fired",
            a.cluster, prior.cluster
        ),
        entry_evidence(rules, a, facts),
        close_pending(why),
    )
}

/// Apply an approved proposal to the state: it takes effect as of the run that proposed it.
pub fn apply_approval(state: &mut PriorState, p: &Proposal, proposed_as_of: Instant) {
    let demotion = matches!(
        p.kind,
        ProposalKind::DemotionFromActiveFocus | ProposalKind::Demotion
    );
    state.cluster = p.to;
    state.entered_at = proposed_as_of;
    if demotion {
        state.floor = proposed_as_of;
    }
    state.pending = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{AccountSchema, AccountTable, Firmographics};
    use crate::assess::assess;
    use crate::config::Config;
    use crate::engagement::{Deal, DealOutcome, EngagementState, Signal, Trigger, Verdict};
    use crate::model::Tier;
    use crate::scoring::ScoringModel;

    fn t(s: &str) -> Instant {
        Instant::parse(s).unwrap()
    }

    struct Case {
        tier: Tier,
        events: Vec<(&'static str, &'static str, &'static str)>,
        triggers: Vec<(&'static str, &'static str)>,
        deals: Vec<(&'static str, Option<&'static str>)>,
        /// Won deals: (created_at, closed_at).
        won: Vec<(&'static str, &'static str)>,
    }

    fn case(tier: Tier) -> Case {
        Case {
            tier,
            events: vec![],
            triggers: vec![],
            deals: vec![],
            won: vec![],
        }
    }

    fn run(c: &Case, as_of: &str, prior: Option<&PriorState>) -> Decision {
        run_with(&Config::default(), c, as_of, prior).1
    }

    /// The assessment and the decision under `cfg`.
    fn run_with(
        cfg: &Config,
        c: &Case,
        as_of: &str,
        prior: Option<&PriorState>,
    ) -> (crate::assess::Assessment, Decision) {
        let rules = Rules::compile(cfg, t(as_of)).unwrap();
        let mut table = AccountTable::new(AccountSchema::new(["name".to_string()]));
        table.push(
            ["A1", "Acme"],
            &Firmographics {
                icp_tier: Some(c.tier),
                icp_score: Some(50.0),
                ..Default::default()
            },
            2,
        );
        let model = ScoringModel::new(&rules.config.icp, table.schema());
        let floor = prior.map(|p| p.floor).unwrap_or(Instant::MIN);
        let mut st = EngagementState::default();
        let mut signals = vec![];
        for (ty, at, ct) in &c.events {
            let code = rules.events.lookup(ty.as_bytes()).unwrap();
            if let Verdict::Signal { .. } = st.observe(&rules, code, t(at), ct.as_bytes(), floor) {
                signals.push(Signal {
                    account: 0,
                    code,
                    at: t(at),
                });
            }
        }
        let triggers: Vec<Trigger> = c
            .triggers
            .iter()
            .map(|(ty, at)| Trigger {
                account: 0,
                code: rules.triggers.lookup(ty.as_bytes()).unwrap(),
                at: t(at),
                headline: String::new(),
            })
            .collect();
        let deals: Vec<Deal> = c
            .deals
            .iter()
            .enumerate()
            .map(|(i, (created, changed))| Deal {
                product: None,
                history: Vec::new(),
                account: 0,
                deal_id: format!("D{i}"),
                stage: "proposal".into(),
                amount: None,
                created_at: t(created),
                closed_at: None,
                last_stage_change_at: changed.map(t),
                outcome: DealOutcome::Open,
            })
            .chain(c.won.iter().enumerate().map(|(i, (created, closed))| Deal {
                product: None,
                history: Vec::new(),
                account: 0,
                deal_id: format!("W{i}"),
                stage: "closed won".into(),
                amount: None,
                created_at: t(created),
                closed_at: Some(t(closed)),
                last_stage_change_at: Some(t(closed)),
                outcome: DealOutcome::Won,
            }))
            .collect();
        let facts = Facts {
            engagement: &st,
            triggers: &triggers,
            deals: &deals,
            signals: &signals,
            floor,
            products: &[],
        };
        let a = assess(&rules, &model, &table.get(0), &facts, false);
        let d = decide(&rules, prior, &a, &facts);
        (a, d)
    }

    fn track() -> Config {
        let mut cfg = Config::default();
        cfg.customers.mode = crate::config::CustomerMode::Track;
        cfg
    }

    /// `[customers] mode = "track"`: a deal won by as_of puts the account in the customer
    /// track whatever the decision table says (rule 0); in `expansion` mode the same account
    /// stays in its prospect cluster.
    #[test]
    fn a_won_deal_puts_the_account_in_the_customer_track() {
        let mut c = case(Tier::A);
        c.events.push(("meeting", "2026-10-20", "c1"));
        c.won.push(("2026-06-01", "2026-09-15"));
        let (a, d) = run_with(&track(), &c, "2026-11-01", None);
        assert_eq!((a.rule, a.cluster), (0, Cluster::Customer));
        assert_eq!(
            (d.movement, d.cluster),
            (Movement::Baseline, Cluster::Customer)
        );
        assert_eq!(d.rule, CUSTOMER_RULE);
        assert_eq!(d.evidence.len(), 1);
        assert_eq!(d.evidence[0].kind, EvidenceKind::Deal);
        assert_eq!(d.evidence[0].code, "W0");
        assert_eq!(d.evidence[0].detail, "deal W0 won 2026-09-15");
        // A customer's next action and rationale still say expansion and renewal.
        let (a2, _) = run_with(&Config::default(), &c, "2026-11-01", None);
        assert_eq!((a2.rule, a2.cluster), (2, Cluster::ActiveFocus));
        assert!(a2.customer.is_some());
        // Tier E does not matter to the track.
        let mut e = case(Tier::E);
        e.won.push(("2026-06-01", "2026-09-15"));
        assert_eq!(
            run_with(&track(), &e, "2026-11-01", None).0.cluster,
            Cluster::Customer
        );
    }

    /// As of the date: a deal won after as_of was open then, so the account is a prospect in
    /// a replay of that date; the run after the win moves it into the track (a promotion, no
    /// reviewer by default, the won deal as evidence); a replay of an earlier date takes it
    /// out again (the entry rules' cluster, evidence windows not restarted).
    #[test]
    fn customer_track_follows_the_as_of_date() {
        let mut c = case(Tier::B);
        c.won.push(("2026-06-01", "2026-09-15"));
        let (a0, d0) = run_with(&track(), &c, "2026-09-01", None);
        assert!(a0.customer.is_none());
        assert_eq!((a0.rule, d0.cluster), (7, Cluster::ClusterIcp));
        let s0 = state(&d0, None);
        let (_, d1) = run_with(&track(), &c, "2026-10-01", Some(&s0));
        assert_eq!(
            (d1.movement, d1.previous, d1.cluster),
            (
                Movement::Promotion,
                Some(Cluster::ClusterIcp),
                Cluster::Customer
            )
        );
        assert!(matches!(d1.proposal, ProposalAction::None));
        assert_eq!(d1.rule, format!("promotion: {CUSTOMER_RULE}"));
        assert_eq!(d1.evidence[0].code, "W0");
        let s1 = state(&d1, Some(&s0));
        let (_, d2) = run_with(&track(), &c, "2026-10-15", Some(&s1));
        assert_eq!(
            (d2.movement, d2.cluster),
            (Movement::Unchanged, Cluster::Customer)
        );
        let (_, d3) = run_with(&track(), &c, "2026-09-10", Some(&s1));
        assert_eq!(
            (d3.movement, d3.previous, d3.cluster),
            (
                Movement::Demotion,
                Some(Cluster::Customer),
                Cluster::ClusterIcp
            )
        );
        assert_eq!(d3.floor, s1.floor);
        assert!(d3.rule.contains("customer_left"), "{}", d3.rule);
        // Switching the mode back to expansion takes customers out of the track too.
        let (_, d4) = run_with(&Config::default(), &c, "2026-10-15", Some(&s1));
        assert_eq!(
            (d4.movement, d4.cluster),
            (Movement::Demotion, Cluster::ClusterIcp)
        );
    }

    /// `approve_promotion_to = ["customer"]`: the move into the track waits for a reviewer.
    #[test]
    fn entering_the_customer_track_can_need_a_reviewer() {
        let mut cfg = track();
        cfg.movement.approve_promotion_to.push(Cluster::Customer);
        let mut c = case(Tier::B);
        c.won.push(("2026-06-01", "2026-09-15"));
        let (_, d0) = run_with(&cfg, &c, "2026-09-01", None);
        let s0 = state(&d0, None);
        let (a1, d1) = run_with(&cfg, &c, "2026-10-01", Some(&s0));
        assert_eq!(
            (d1.movement, d1.cluster),
            (Movement::ProposedPromotion, Cluster::ClusterIcp)
        );
        let ProposalAction::Open(p) = &d1.proposal else {
            panic!("{:?}", d1.proposal)
        };
        assert_eq!((p.kind, p.to), (ProposalKind::Promotion, Cluster::Customer));
        let mut r = String::new();
        let rules = Rules::compile(&cfg, t("2026-10-01")).unwrap();
        let deals = [];
        let st = EngagementState::default();
        let facts = Facts {
            engagement: &st,
            triggers: &[],
            deals: &deals,
            signals: &[],
            floor: Instant::MIN,
            products: &[],
        };
        crate::assess::write_effective_rationale(&mut r, &rules, &a1, &facts, d1.cluster);
        assert!(
            r.ends_with(
                "; a won deal gives customer: a move that needs a reviewer; effective cluster_icp"
            ),
            "{r}"
        );
    }

    fn state(d: &Decision, prior: Option<&PriorState>) -> PriorState {
        let mut s = PriorState {
            cluster: d.cluster,
            entered_at: d.entered_at,
            floor: d.floor,
            pending: prior.and_then(|p| p.pending.clone()),
            rejected: prior.map(|p| p.rejected.clone()).unwrap_or_default(),
        };
        match &d.proposal {
            ProposalAction::Open(p) => s.pending = Some(p.clone()),
            ProposalAction::Close(_) => s.pending = None,
            _ => {}
        }
        s
    }

    #[test]
    fn baseline_applies_entry_rules_directly_even_active_focus() {
        let mut c = case(Tier::A);
        c.events.push(("demo", "2026-10-20", ""));
        let d = run(&c, "2026-11-01", None);
        assert_eq!(
            (d.movement, d.cluster),
            (Movement::Baseline, Cluster::ActiveFocus)
        );
        assert_eq!(d.proposal, ProposalAction::None);
    }

    #[test]
    fn promotion_to_active_focus_is_proposed_then_approved_as_of_its_run() {
        let mut c = case(Tier::A);
        let d0 = run(&c, "2026-10-01", None);
        assert_eq!(d0.cluster, Cluster::ClusterIcp);
        let s0 = state(&d0, None);
        c.events.push(("meeting", "2026-10-20", ""));
        let d1 = run(&c, "2026-11-01", Some(&s0));
        assert_eq!(d1.movement, Movement::ProposedPromotion);
        assert_eq!(
            d1.cluster,
            Cluster::ClusterIcp,
            "not applied until approved"
        );
        let ProposalAction::Open(p) = &d1.proposal else {
            panic!("{:?}", d1.proposal)
        };
        assert_eq!(p.kind, ProposalKind::PromotionToActiveFocus);
        let mut s1 = state(&d1, Some(&s0));
        // A later run does not duplicate it.
        let d2 = run(&c, "2026-11-02", Some(&s1));
        assert_eq!(d2.proposal, ProposalAction::KeepPending);
        apply_approval(&mut s1, p, t("2026-11-01"));
        assert_eq!(
            (s1.cluster, s1.entered_at),
            (Cluster::ActiveFocus, t("2026-11-01"))
        );
        let d3 = run(&c, "2026-11-03", Some(&s1));
        assert_eq!(
            (d3.movement, d3.cluster),
            (Movement::Unchanged, Cluster::ActiveFocus)
        );
    }

    #[test]
    fn rejected_proposal_is_not_reopened_on_the_same_evidence() {
        let mut c = case(Tier::A);
        let s0 = state(&run(&c, "2026-10-01", None), None);
        c.events.push(("meeting", "2026-10-20", ""));
        let d1 = run(&c, "2026-11-01", Some(&s0));
        let ProposalAction::Open(p) = d1.proposal.clone() else {
            panic!()
        };
        let mut s1 = state(&d1, Some(&s0));
        s1.pending = None;
        s1.rejected.push(p.signature.clone());
        let d2 = run(&c, "2026-11-02", Some(&s1));
        assert_eq!(d2.proposal, ProposalAction::None);
        assert_eq!(d2.cluster, Cluster::ClusterIcp);
        // New evidence opens a new one.
        c.events.push(("demo", "2026-11-02", ""));
        let d3 = run(&c, "2026-11-03", Some(&s1));
        assert!(
            matches!(d3.proposal, ProposalAction::Open(_)),
            "{:?}",
            d3.proposal
        );
    }

    #[test]
    fn promotion_to_future_pipeline_applies_at_once() {
        let mut c = case(Tier::B);
        let s0 = state(&run(&c, "2026-10-01", None), None);
        c.triggers.push(("funding_round", "2026-10-15"));
        let d = run(&c, "2026-11-01", Some(&s0));
        assert_eq!(
            (d.movement, d.cluster),
            (Movement::Promotion, Cluster::FuturePipeline)
        );
        assert_eq!(d.entered_at, t("2026-11-01"));
        assert!(d.rule.starts_with("promotion: entry rule 6"), "{}", d.rule);
        assert_eq!(
            d.evidence
                .iter()
                .filter(|e| e.kind == EvidenceKind::Trigger)
                .count(),
            1
        );
    }

    #[test]
    fn fp_inactivity_runs_from_the_later_of_last_event_and_entry() {
        let mut c = case(Tier::A);
        c.triggers.push(("funding_round", "2026-01-10"));
        let s0 = state(&run(&c, "2026-01-15", None), None);
        assert_eq!(s0.cluster, Cluster::FuturePipeline);
        // Trigger now outside its window: candidate cluster_icp, but hysteresis holds.
        let d = run(&c, "2026-07-13", Some(&s0));
        assert_eq!(
            (d.movement, d.cluster),
            (Movement::Held, Cluster::FuturePipeline)
        );
        // 180 days after entry (2026-01-15 + 180 = 2026-07-14): demoted.
        let d = run(&c, "2026-07-14", Some(&s0));
        assert_eq!(
            (d.movement, d.cluster),
            (Movement::Demotion, Cluster::ClusterIcp)
        );
        assert_eq!(d.rule, "demotion: fp_inactivity");
        assert_eq!(d.floor, t("2026-07-14"));
        // An email open in between resets the clock.
        c.events.push(("email_open", "2026-03-01", ""));
        let d = run(&c, "2026-07-14", Some(&s0));
        assert_eq!(d.cluster, Cluster::FuturePipeline);
    }

    #[test]
    fn no_priority_demotes_future_pipeline() {
        let mut c = case(Tier::A);
        c.events.push(("email_reply", "2026-10-01", ""));
        let s0 = state(&run(&c, "2026-10-02", None), None);
        assert_eq!(s0.cluster, Cluster::FuturePipeline);
        c.events.push(("no_priority", "2026-10-20", ""));
        let d = run(&c, "2026-11-01", Some(&s0));
        assert_eq!(
            (d.movement, d.cluster),
            (Movement::Demotion, Cluster::ClusterIcp)
        );
        assert_eq!(d.rule, "demotion: no_priority");
    }

    #[test]
    fn stalled_deal_demotion_is_proposed_even_with_high_engagement() {
        let mut c = case(Tier::A);
        c.deals.push(("2026-08-01", Some("2026-09-01")));
        c.events.push(("meeting", "2026-09-01", ""));
        let s0 = state(&run(&c, "2026-09-02", None), None);
        assert_eq!(s0.cluster, Cluster::ActiveFocus);
        c.events.push(("meeting", "2026-10-30", ""));
        let d = run(&c, "2026-11-01", Some(&s0));
        assert_eq!(d.movement, Movement::ProposedDemotion);
        assert_eq!(d.cluster, Cluster::ActiveFocus);
        assert!(d.rule.contains("deal_stalled"));
        let ProposalAction::Open(p) = &d.proposal else {
            panic!()
        };
        assert_eq!(p.kind, ProposalKind::DemotionFromActiveFocus);
        let mut s1 = state(&d, Some(&s0));
        apply_approval(&mut s1, p, t("2026-11-01"));
        assert_eq!(
            (s1.cluster, s1.floor),
            (Cluster::FuturePipeline, t("2026-11-01"))
        );
        // The old meeting must not re-promote; the floor hides it.
        let d = run(&c, "2026-11-02", Some(&s1));
        assert_eq!(d.cluster, Cluster::FuturePipeline);
        assert_ne!(d.movement, Movement::ProposedPromotion, "{d:?}");
    }

    #[test]
    fn champion_left_and_af_inactivity() {
        let mut c = case(Tier::A);
        c.events.push(("demo", "2026-06-01", ""));
        let s0 = state(&run(&c, "2026-06-02", None), None);
        assert_eq!(s0.cluster, Cluster::ActiveFocus);
        // 89 days after entry: the demo (2026-06-01) is still in its window, nothing fires.
        let d = run(&c, "2026-08-30", Some(&s0));
        assert_eq!(d.movement, Movement::Unchanged, "{d:?}");
        // 90 days after entry (2026-06-02 + 90 = 2026-08-31): proposed.
        let d = run(&c, "2026-08-31", Some(&s0));
        assert_eq!(d.movement, Movement::ProposedDemotion);
        assert!(d.rule.contains("af_inactivity"));
        let mut c = case(Tier::A);
        c.events.push(("demo", "2026-10-01", ""));
        let s0 = state(&run(&c, "2026-10-02", None), None);
        c.events.push(("champion_left", "2026-10-10", ""));
        let d = run(&c, "2026-10-11", Some(&s0));
        assert_eq!(d.movement, Movement::ProposedDemotion);
        assert_eq!(d.rule, "demotion: champion_left");
    }

    #[test]
    fn rejected_inactivity_demotion_is_not_reopened_as_days_pass() {
        let mut c = case(Tier::A);
        c.events.push(("demo", "2026-06-01", ""));
        let s0 = state(&run(&c, "2026-06-02", None), None);
        let d = run(&c, "2026-08-31", Some(&s0));
        let ProposalAction::Open(p) = d.proposal.clone() else {
            panic!("{d:?}")
        };
        let mut s1 = state(&d, Some(&s0));
        s1.pending = None;
        s1.rejected.push(p.signature.clone());
        // Later runs see the same evidence (no new event): the rejection holds.
        for as_of in ["2026-09-01", "2026-10-15"] {
            let d = run(&c, as_of, Some(&s1));
            assert_eq!(d.proposal, ProposalAction::None, "{as_of}: {d:?}");
            assert_eq!(d.cluster, Cluster::ActiveFocus);
        }
        // A new Medium+ event, then silence again: new evidence, a new proposal.
        c.events.push(("email_reply", "2026-09-10", ""));
        let d = run(&c, "2026-12-10", Some(&s1));
        assert!(matches!(d.proposal, ProposalAction::Open(_)), "{d:?}");
    }

    #[test]
    fn tier_drop_is_immediate_and_closes_pending() {
        let mut c = case(Tier::A);
        c.events.push(("demo", "2026-10-01", ""));
        let mut s0 = state(&run(&c, "2026-10-02", None), None);
        s0.pending = Some(Proposal {
            kind: ProposalKind::DemotionFromActiveFocus,
            from: Cluster::ActiveFocus,
            to: Cluster::FuturePipeline,
            rule: "x".into(),
            signature: "x".into(),
        });
        c.tier = Tier::D;
        let d = run(&c, "2026-10-03", Some(&s0));
        assert_eq!(
            (d.movement, d.cluster),
            (Movement::Demotion, Cluster::MonitorOnly)
        );
        assert!(matches!(d.proposal, ProposalAction::Close(_)));
        // Tier rises again: the entry rules take it out of Monitor Only (evidence after floor).
        let s1 = state(&d, Some(&s0));
        c.tier = Tier::B;
        let d = run(&c, "2026-10-04", Some(&s1));
        assert_eq!(
            (d.movement, d.cluster),
            (Movement::Promotion, Cluster::ClusterIcp)
        );
    }

    #[test]
    fn pending_promotion_closed_when_candidate_falls() {
        let mut c = case(Tier::A);
        let s0 = state(&run(&c, "2026-10-01", None), None);
        c.events.push(("meeting", "2026-10-20", ""));
        let d1 = run(&c, "2026-11-01", Some(&s0));
        let s1 = state(&d1, Some(&s0));
        assert!(s1.pending.is_some());
        // Months later the meeting is out of the window: candidate is cluster_icp again.
        let d2 = run(&c, "2027-02-01", Some(&s1));
        assert_eq!(d2.movement, Movement::Unchanged);
        assert!(matches!(d2.proposal, ProposalAction::Close(ref r) if r.contains("moved on")));
    }

    /// The migration's conversion (stored rule text + evidence JSON → signature) gives exactly
    /// what `decide` signs today, for every kind of demotion and promotion evidence.
    #[test]
    fn legacy_conversion_gives_todays_signatures() {
        let from_json = |d: &Decision| -> Vec<Evidence> {
            serde_json::from_str(&serde_json::to_string(&d.evidence).unwrap()).unwrap()
        };
        let mut seen = Vec::new();
        let mut check = |d: &Decision| {
            let ProposalAction::Open(p) = &d.proposal else {
                panic!("{d:?}")
            };
            let ev = from_json(d);
            assert!(
                ev.iter().all(|e| e.code.is_empty()),
                "codes are not serialized"
            );
            assert_eq!(
                legacy::proposal_signature(&p.rule, &ev).as_deref(),
                Some(p.signature.as_str()),
                "{d:?}"
            );
            assert!(!p.signature.contains(' '), "no wording: {}", p.signature);
            seen.push(p.signature.clone());
        };
        // Promotion to Active Focus on an event and a trigger.
        let mut c = case(Tier::A);
        c.triggers.push(("funding_round", "2026-10-15"));
        let s0 = state(&run(&c, "2026-10-01", None), None);
        c.events.push(("meeting", "2026-10-20", ""));
        check(&run(&c, "2026-11-01", Some(&s0)));
        // On an open deal.
        let mut c = case(Tier::A);
        let s0 = state(&run(&c, "2026-10-01", None), None);
        c.deals.push(("2026-10-20", Some("2026-10-25")));
        check(&run(&c, "2026-11-01", Some(&s0)));
        // Stalled deal, demotion signal, inactivity.
        let mut c = case(Tier::A);
        c.deals.push(("2026-08-01", Some("2026-09-01")));
        c.events.push(("meeting", "2026-09-01", ""));
        let s0 = state(&run(&c, "2026-09-02", None), None);
        check(&run(&c, "2026-11-01", Some(&s0)));
        let mut c = case(Tier::A);
        c.events.push(("demo", "2026-10-01", ""));
        let s0 = state(&run(&c, "2026-10-02", None), None);
        c.events.push(("champion_left", "2026-10-10", ""));
        check(&run(&c, "2026-10-11", Some(&s0)));
        let mut c = case(Tier::A);
        c.events.push(("demo", "2026-06-01", ""));
        let s0 = state(&run(&c, "2026-06-02", None), None);
        check(&run(&c, "2026-08-31", Some(&s0)));
        assert_eq!(seen.len(), 5);
        assert!(seen[0].starts_with("promotion:entry_rule:"), "{}", seen[0]);
        assert!(seen[0].contains(";trigger:funding_round@"), "{}", seen[0]);
        assert!(
            seen[2].starts_with("demotion:deal_stalled|deal:D0@"),
            "{}",
            seen[2]
        );
        assert!(
            seen[3].starts_with("demotion:signal:champion_left|"),
            "{}",
            seen[3]
        );
        assert!(
            seen[4].starts_with("demotion:af_inactivity|inactivity:@"),
            "{}",
            seen[4]
        );
        // Not a text the old code wrote.
        assert_eq!(legacy::proposal_signature("reworded", &[]), None);
    }

    #[test]
    fn conflict_signatures_are_codes_and_convert_from_their_old_wording() {
        use crate::assess::Conflict;
        let rules = Rules::compile(&Config::default(), t("2026-11-01")).unwrap();
        let signal = rules.events.lookup(b"champion_left").unwrap();
        let conflicts = [
            Conflict::TierMismatch {
                input: Tier::A,
                computed: Tier::C,
            },
            Conflict::MixedSignals {
                signal,
                signal_at: t("2026-10-10T08:00:00Z"),
            },
            Conflict::LowTierHighEngagement {
                tier: Tier::D,
                open_deal: true,
            },
        ];
        let codes: Vec<String> = conflicts.iter().map(|c| c.code(&rules)).collect();
        assert_eq!(
            codes,
            [
                "tier_mismatch:A:C".to_string(),
                format!(
                    "mixed_signals:champion_left@{}",
                    t("2026-10-10T08:00:00Z").0
                ),
                "low_tier_high_engagement:D:open_deal".to_string(),
            ]
        );
        let ev: Vec<Evidence> = conflicts
            .iter()
            .map(|c| Evidence::new(EvidenceKind::Conflict, "", c.describe(&rules), None))
            .collect();
        assert_eq!(
            legacy::conflict_signature(&ev),
            Some(Conflict::signature(&codes))
        );
    }
}
