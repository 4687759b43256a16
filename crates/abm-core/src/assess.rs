//! One account's stateless assessment (SPEC §4.2–§4.4, §4.6): tier, engagement level, triggers,
//! the decision-table row, conflicts, program, next action, micro-segment and the rationale.

use crate::account::AccountRef;
use crate::engagement::{Deal, DealStatus, EngagementState, LevelBasis, Signal, Trigger};
use crate::model::{Cluster, EngagementLevel, Tier};
use crate::rules::{Code, Rules};
use crate::scoring::{score_account, ScoreResult, ScoringModel, Source};
use crate::time::Instant;
use std::fmt::Write;

/// Everything known about one account's activity, gathered by the ingest path.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub engagement: &'a EngagementState,
    /// The account's triggers (any order, any date: filtered here).
    pub triggers: &'a [Trigger],
    pub deals: &'a [Deal],
    /// The account's demotion-signal events (any date: filtered here).
    pub signals: &'a [Signal],
    /// Evidence before this instant is ignored (the account's last demotion).
    pub floor: Instant,
    /// What could be sold: `[customers] products`, else every product named on a deal of the
    /// input ([`product_catalog`]). A customer's whitespace is what it has not bought yet.
    pub products: &'a [String],
}

/// A reason to ask a human (SPEC §4.5, `conflict`).
#[derive(Debug, Clone, PartialEq)]
pub enum Conflict {
    LowTierHighEngagement { tier: Tier, open_deal: bool },
    MixedSignals { signal: Code, signal_at: Instant },
    TierMismatch { input: Tier, computed: Tier },
}

impl Conflict {
    /// The conflict's identity in codes, ids and instants (never wording):
    /// `low_tier_high_engagement:D:open_deal`, `mixed_signals:champion_left@MICROS`,
    /// `tier_mismatch:A:C`. A decided conflict's signature is built from these.
    pub fn code(&self, rules: &Rules) -> String {
        match self {
            Conflict::LowTierHighEngagement { tier, open_deal } => format!(
                "low_tier_high_engagement:{tier}:{}",
                if *open_deal { "open_deal" } else { "high" }
            ),
            Conflict::MixedSignals { signal, signal_at } => {
                format!(
                    "mixed_signals:{}@{}",
                    rules.event_name(*signal),
                    signal_at.0
                )
            }
            Conflict::TierMismatch { input, computed } => {
                format!("tier_mismatch:{input}:{computed}")
            }
        }
    }

    /// A conflict checkpoint's signature: its conflicts' codes, sorted, joined by `;`.
    pub fn signature(codes: &[String]) -> String {
        let mut v: Vec<&str> = codes.iter().map(String::as_str).collect();
        v.sort_unstable();
        v.join(";")
    }

    pub fn describe(&self, rules: &Rules) -> String {
        match self {
            Conflict::LowTierHighEngagement { tier, open_deal } => format!(
                "tier {tier} with {}",
                if *open_deal {
                    "an active open deal"
                } else {
                    "High engagement"
                }
            ),
            Conflict::MixedSignals { signal, signal_at } => format!(
                "demotion signal {}@{} alongside promotion signals in the same window",
                rules.event_name(*signal),
                signal_at
            ),
            Conflict::TierMismatch { input, computed } => {
                format!("input icp_tier {input} but the score gives tier {computed}")
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Assessment {
    pub score: ScoreResult,
    pub level: EngagementLevel,
    pub basis: LevelBasis,
    pub engaged_contacts: u32,
    pub counted_events: u32,
    /// Triggers in the window, newest first (ties by type name).
    pub triggers: Vec<(Code, Instant)>,
    /// Demotion signals in the engagement window, newest first.
    pub signals: Vec<(Code, Instant)>,
    /// Indexes into `Facts::deals`.
    pub active_deals: Vec<usize>,
    pub stalled_deals: Vec<usize>,
    /// 1-based decision-table row; 0 for a customer in the customer track (`[customers]
    /// mode = "track"`), which bypasses the decision table.
    pub rule: u8,
    /// What the entry rules say ([`Cluster::Customer`] for a customer in the track).
    pub cluster: Cluster,
    pub conflicts: Vec<Conflict>,
    /// Won deals by as_of (`None`: a prospect, or `[customers] mode = "off"`).
    pub customer: Option<CustomerFacts>,
    /// A customer's whitespace: the catalog's products none of its won deals carries (empty
    /// for a prospect or when deals name no product).
    pub whitespace: Vec<String>,
}

/// What makes an account a customer: its deals won by as_of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CustomerFacts {
    pub won: u32,
    /// The latest close of a won deal (its creation when the close date is missing).
    pub last_won: Instant,
    /// Deals lost by as_of.
    pub lost: u32,
}

impl Assessment {
    pub fn has_triggers(&self) -> bool {
        !self.triggers.is_empty()
    }

    /// The conflicts that need a reviewer (a `conflict` checkpoint) for an account whose
    /// effective cluster is `cluster` and whose entry rules say `self.cluster`: only for
    /// accounts in or entering `checkpoints.conflict_clusters`, never tier D/E with High
    /// engagement (that one is a re-score suggestion, [`Self::rescore`]), and never a demotion
    /// signal that a demotion rule of the cluster acts on ([`Self::demotion_rule_acts`]).
    pub fn blocking_conflicts<'a>(
        &'a self,
        rules: &'a Rules,
        cluster: Cluster,
    ) -> impl Iterator<Item = &'a Conflict> + 'a {
        let cl = &rules.config.checkpoints.conflict_clusters;
        let raised = cl.contains(&cluster) || cl.contains(&self.cluster);
        self.conflicts.iter().filter(move |c| {
            raised
                && !matches!(c, Conflict::LowTierHighEngagement { .. })
                && !Self::demotion_rule_acts(c, rules, cluster)
        })
    }

    /// A demotion signal beside promotion signals, when the account's cluster `cluster` has a
    /// demotion rule on that signal (`movement.af_demotion_signals` for Active Focus,
    /// `fp_demotion_signals` for Future Pipeline): that rule already moves the account, or
    /// proposes the move to a reviewer, so the conflict is no second checkpoint.
    pub fn demotion_rule_acts(c: &Conflict, rules: &Rules, cluster: Cluster) -> bool {
        let Conflict::MixedSignals { signal, .. } = c else {
            return false;
        };
        let m = &rules.config.movement;
        let on = match cluster {
            Cluster::ActiveFocus => &m.af_demotion_signals,
            Cluster::FuturePipeline => &m.fp_demotion_signals,
            _ => return false,
        };
        let name = rules.event_name(*signal);
        on.iter().any(|s| s.eq_ignore_ascii_case(name))
    }

    /// Tier D/E with High engagement or an active open deal: the fit may be wrong.
    pub fn rescore(&self) -> Option<&Conflict> {
        self.conflicts
            .iter()
            .find(|c| matches!(c, Conflict::LowTierHighEngagement { .. }))
    }

    /// The program: the customers' program for a customer, else the cluster's.
    pub fn program<'r>(&self, rules: &'r Rules, cluster: Cluster) -> &'r str {
        match self.customer {
            Some(_) => &rules.config.customers.program,
            None => rules.config.programs.of(cluster),
        }
    }
}

/// The account's won and lost deals by `as_of`; `None` when none was won (or customers are
/// off).
pub fn customer_facts(rules: &Rules, deals: &[Deal]) -> Option<CustomerFacts> {
    use crate::config::CustomerMode;
    use crate::engagement::DealOutcome;
    if rules.config.customers.mode == CustomerMode::Off {
        return None;
    }
    let mut c = CustomerFacts {
        won: 0,
        last_won: Instant::MIN,
        lost: 0,
    };
    for d in deals.iter().filter(|d| d.created_at <= rules.as_of) {
        match d.outcome_at(rules.as_of) {
            DealOutcome::Won => {
                c.won += 1;
                let closed = d.closed_at_by(rules.as_of).unwrap_or(d.created_at);
                c.last_won = c.last_won.max(closed);
            }
            DealOutcome::Lost => c.lost += 1,
            DealOutcome::Open => {}
        }
    }
    (c.won > 0).then_some(c)
}

/// The products a whitespace is measured against: `configured` when not empty, else every
/// product named on a deal created by `as_of` (nothing later is known then), each once
/// (compared case-insensitively, the first spelling kept), sorted. `named` gives each deal's
/// (product, created_at).
pub fn product_catalog<'d>(
    configured: &[String],
    as_of: Instant,
    named: impl IntoIterator<Item = (&'d str, Instant)>,
) -> Vec<String> {
    let mut seen = std::collections::BTreeMap::new();
    let mut add = |p: &str| {
        let p = p.trim();
        if !p.is_empty() {
            seen.entry(p.to_lowercase())
                .or_insert_with(|| p.to_string());
        }
    };
    if configured.is_empty() {
        for (p, _) in named.into_iter().filter(|(_, created)| *created <= as_of) {
            add(p);
        }
    } else {
        configured.iter().for_each(|p| add(p));
    }
    seen.into_values().collect()
}

/// (product, created_at) of each deal that names a product, for [`product_catalog`].
pub fn deal_products(deals: &[Deal]) -> impl Iterator<Item = (&str, Instant)> {
    deals
        .iter()
        .filter_map(|d| Some((d.product.as_deref()?, d.created_at)))
}

/// The catalog's products that no deal won by `as_of` carries.
pub fn whitespace(as_of: Instant, catalog: &[String], deals: &[Deal]) -> Vec<String> {
    let bought: Vec<String> = deals
        .iter()
        .filter(|d| d.won_by(as_of))
        .filter_map(|d| d.product.as_deref())
        .map(|p| p.trim().to_lowercase())
        .collect();
    catalog
        .iter()
        .filter(|p| !bought.contains(&p.to_lowercase()))
        .cloned()
        .collect()
}

pub fn assess(
    rules: &Rules,
    model: &ScoringModel,
    account: &AccountRef<'_>,
    facts: &Facts<'_>,
    detailed: bool,
) -> Assessment {
    let score = score_account(model, account, detailed);
    let st = facts.engagement;

    let mut triggers: Vec<(Code, Instant)> = facts
        .triggers
        .iter()
        .filter(|t| t.counts(rules, facts.floor))
        .map(|t| (t.code, t.at))
        .collect();
    triggers.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then_with(|| rules.trigger_name(a.0).cmp(rules.trigger_name(b.0)))
    });
    let mut signals: Vec<(Code, Instant)> = facts
        .signals
        .iter()
        .filter(|s| s.at >= rules.engagement_from && s.at <= rules.as_of && s.at > facts.floor)
        .map(|s| (s.code, s.at))
        .collect();
    signals.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));

    let mut active_deals = Vec::new();
    let mut stalled_deals = Vec::new();
    for (i, d) in facts.deals.iter().enumerate() {
        match d.status(rules, facts.floor) {
            DealStatus::Active => active_deals.push(i),
            DealStatus::Stalled => stalled_deals.push(i),
            _ => {}
        }
    }

    // The level: the strongest of the best event, an active deal, the engaged contacts.
    let contacts = st.engaged_contacts();
    let mut level = st.best_level();
    let mut basis = if level > EngagementLevel::None {
        LevelBasis::Event {
            code: st.best_code,
            at: st.best_at(),
        }
    } else {
        LevelBasis::Nothing
    };
    if rules.config.engagement.open_deal_is_high
        && !active_deals.is_empty()
        && level < EngagementLevel::High
    {
        level = EngagementLevel::High;
        basis = LevelBasis::OpenDeal(active_deals[0]);
    }
    let by_contacts = if contacts >= rules.high_contacts {
        EngagementLevel::High
    } else if contacts >= rules.medium_contacts {
        EngagementLevel::Medium
    } else {
        EngagementLevel::None
    };
    if by_contacts > level {
        level = by_contacts;
        basis = LevelBasis::Contacts(contacts);
    }

    let (mut rule, mut cluster) = rules
        .decision
        .decide(score.tier, level, !triggers.is_empty());

    let cp = &rules.config.checkpoints;
    let mut conflicts = Vec::new();
    if cp.conflict_low_tier_high_engagement
        && matches!(score.tier, Tier::D | Tier::E)
        && (level == EngagementLevel::High || !active_deals.is_empty())
    {
        conflicts.push(Conflict::LowTierHighEngagement {
            tier: score.tier,
            open_deal: !active_deals.is_empty(),
        });
    }
    if cp.conflict_mixed_signals
        && !signals.is_empty()
        && (level >= EngagementLevel::Medium || !triggers.is_empty())
    {
        conflicts.push(Conflict::MixedSignals {
            signal: signals[0].0,
            signal_at: signals[0].1,
        });
    }
    if score.tier_source == Source::Input
        && score.tier.distance(score.tier_from_score) >= cp.conflict_tier_distance as usize
        && (score.score_source == Source::Input || !model.is_empty())
    {
        conflicts.push(Conflict::TierMismatch {
            input: score.tier,
            computed: score.tier_from_score,
        });
    }

    let customer = customer_facts(rules, facts.deals);
    if customer.is_some() && rules.config.customers.mode == crate::config::CustomerMode::Track {
        // The customer track: a won deal by as_of, whatever the decision table says.
        (rule, cluster) = (0, Cluster::Customer);
    }
    let whitespace = match customer {
        Some(_) => whitespace(rules.as_of, facts.products, facts.deals),
        None => Vec::new(),
    };
    Assessment {
        score,
        level,
        basis,
        engaged_contacts: contacts,
        counted_events: st.counted,
        triggers,
        signals,
        active_deals,
        stalled_deals,
        rule,
        cluster,
        conflicts,
        customer,
        whitespace,
    }
}

/// The next promotion the decision table allows from here, and what it takes:
/// `for Future Pipeline: a trigger, medium engagement (e.g. content_download) or 2 engaged
/// contacts (has 0)`.
fn missing_for_next(rules: &Rules, a: &Assessment, cluster: Cluster) -> Option<String> {
    let rank = cluster.rank()?;
    let tier = a.score.tier;
    let trig = a.has_triggers();
    let target = |lvl: EngagementLevel, t: bool| rules.decision.decide(tier, lvl, t).1;
    let higher = |c: Cluster| c.rank().is_some_and(|r| r > rank);
    let mut options: Vec<(Cluster, String)> = Vec::new();
    if !trig && higher(target(a.level, true)) {
        options.push((target(a.level, true), "a trigger".into()));
    }
    if let Some(lvl) = EngagementLevel::ALL
        .into_iter()
        .filter(|l| *l > a.level)
        .find(|l| higher(target(*l, trig)))
    {
        let example = rules.types_of(lvl).into_iter().next().unwrap_or("");
        options.push((
            target(lvl, trig),
            format!("{lvl} engagement (e.g. {example})"),
        ));
        let contacts = match lvl {
            EngagementLevel::High => Some(rules.high_contacts),
            EngagementLevel::Medium => Some(rules.medium_contacts),
            _ => None,
        };
        if let Some(n) = contacts {
            options.push((
                target(lvl, trig),
                format!("{n} engaged contacts (has {})", a.engaged_contacts),
            ));
        }
    }
    let to = options.iter().map(|o| o.0).min_by_key(|c| c.rank())?;
    let what: Vec<&str> = options
        .iter()
        .filter(|o| o.0 == to)
        .map(|o| o.1.as_str())
        .collect();
    let list = match what.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => what.concat(),
    };
    Some(format!("for {}: {list}", to.label()))
}

/// Next actions depend on a handful of small facts; the bulk path renders each combination
/// once. Accounts whose text names missing fields (Monitor Only with gaps) bypass the cache.
#[derive(Default)]
pub struct NextActionCache {
    /// Indexed by the key of [`Self::write`] (14 bits), filled as keys are met.
    texts: Vec<Option<String>>,
}

impl NextActionCache {
    pub fn write(&mut self, s: &mut String, rules: &Rules, a: &Assessment, cluster: Cluster) {
        if (cluster == Cluster::MonitorOnly && !a.score.missing.is_empty())
            || a.customer.is_some()
            || cluster == Cluster::Customer
        {
            return write_next_action(s, rules, a, cluster);
        }
        let key = (cluster as u32)
            | (a.score.tier as u32) << 2
            | (a.level as u32) << 5
            | (a.has_triggers() as u32) << 7
            | a.engaged_contacts.min(15) << 8
            | (!a.active_deals.is_empty() as u32) << 12
            | (!a.stalled_deals.is_empty() as u32) << 13;
        if self.texts.is_empty() {
            self.texts = vec![None; 1 << 14];
        }
        let text = self.texts[key as usize].get_or_insert_with(|| next_action(rules, a, cluster));
        s.push_str(text);
    }
}

/// A concrete next step: the cluster's action plus what is missing for the next promotion.
pub fn next_action(rules: &Rules, a: &Assessment, cluster: Cluster) -> String {
    let mut s = String::new();
    write_next_action(&mut s, rules, a, cluster);
    s
}

/// [`next_action`] appended to `s` (the bulk path reuses one buffer).
pub fn write_next_action(s: &mut String, rules: &Rules, a: &Assessment, cluster: Cluster) {
    if let Some(c) = &a.customer {
        let cc = &rules.config.customers;
        s.push_str(&cc.next_action);
        let _ = write!(
            s,
            "; customer: {} won deal{} (last {})",
            c.won,
            if c.won == 1 { "" } else { "s" },
            c.last_won.date_string()
        );
        if cc.renewal_days > 0 {
            let due = c.last_won.plus_days(cc.renewal_days);
            if due < rules.as_of {
                let _ = write!(s, "; renewal was due {}: confirm it", due.date_string());
            } else {
                let _ = write!(s, "; renewal due {}", due.date_string());
            }
        }
        if !a.whitespace.is_empty() {
            let _ = write!(s, "; not yet bought: {}", capped_list(&a.whitespace, 5));
        }
        if cluster == Cluster::ActiveFocus && !a.active_deals.is_empty() {
            s.push_str("; advance the open expansion deal");
        } else if a.level >= EngagementLevel::Medium {
            s.push_str("; engaged now: propose an expansion");
        }
        return;
    }
    s.push_str(rules.config.next_actions.of(cluster));
    match cluster {
        Cluster::MonitorOnly => {
            let _ = write!(s, "; tier {} is below the ICP cut", a.score.tier);
            if !a.score.missing.is_empty() {
                let _ = write!(s, ": enrich {} and re-score", a.score.missing.join(", "));
            }
            if let Some(c) = a.rescore() {
                let _ = write!(s, "; re-score this account: {}", c.describe(rules));
            }
        }
        Cluster::ActiveFocus => {
            if !a.active_deals.is_empty() {
                let _ = write!(s, "; advance the open deal");
            } else if !a.stalled_deals.is_empty() {
                let _ = write!(s, "; a deal is stalled: re-engage the champion");
            }
            if a.engaged_contacts < rules.high_contacts {
                let _ = write!(
                    s,
                    "; multi-thread: {} engaged contact{}, aim for {}+",
                    a.engaged_contacts,
                    if a.engaged_contacts == 1 { "" } else { "s" },
                    rules.high_contacts
                );
            }
        }
        _ if a.cluster.rank() > cluster.rank() && cluster.rank().is_some() => {
            // The entry rules already give a higher cluster: what is missing is a reviewer.
            let _ = write!(
                s,
                "; for {}: rule {} is met, the promotion waits for a reviewer (approving moves it there)",
                a.cluster.label(),
                a.rule
            );
        }
        _ => match missing_for_next(rules, a, cluster) {
            Some(m) => {
                let _ = write!(s, "; {m}");
            }
            None => {
                let _ = write!(
                    s,
                    "; tier {} caps this account at {}: improve ICP fit to go further",
                    a.score.tier,
                    cluster.label()
                );
            }
        },
    }
}

/// `a, b, c (+2 more)`: at most `max` items named.
pub fn capped_list(items: &[String], max: usize) -> String {
    let mut s = items[..items.len().min(max)].join(", ");
    if items.len() > max {
        let _ = write!(s, " (+{} more)", items.len() - max);
    }
    s
}

/// `challenge/vertical/stage` for Future Pipeline accounts (SPEC §4.6).
pub fn micro_segment(
    rules: &Rules,
    account: &AccountRef<'_>,
    a: &Assessment,
    facts: &Facts<'_>,
) -> String {
    let mut s = String::new();
    write_micro_segment(&mut s, rules, account, a, facts);
    s
}

/// `s` as a slug: lowercased, runs of other than letters and digits as one `_`, trimmed.
fn slug(s: &str) -> String {
    let s = s.trim();
    // Already a slug (the usual case): no lowercasing, splitting or joining.
    let plain = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if s.bytes().all(|b| plain(b) || b == b'_')
        && s.bytes().next().is_none_or(plain)
        && s.bytes().next_back().is_none_or(plain)
        && !s.contains("__")
    {
        return s.to_string();
    }
    slug_slow(s)
}

fn slug_slow(s: &str) -> String {
    s.trim()
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

/// [`micro_segment`] appended to `out`.
pub fn write_micro_segment(
    out: &mut String,
    rules: &Rules,
    account: &AccountRef<'_>,
    a: &Assessment,
    facts: &Facts<'_>,
) {
    let ms = &rules.config.micro_segment;
    let mut challenge = slug(account.challenge());
    if challenge.is_empty() {
        for (code, _) in &a.triggers {
            if let Some(c) = ms.challenge_from_triggers.get(rules.trigger_name(*code)) {
                challenge = c.clone();
                break;
            }
        }
    }
    if challenge.is_empty() {
        'outer: for (code, at) in &a.triggers {
            if rules.trigger_name(*code) != "intent_surge" {
                continue;
            }
            for t in facts
                .triggers
                .iter()
                .filter(|t| t.code == *code && t.at == *at)
            {
                let h = t.headline.to_lowercase();
                if let Some((_, c)) = ms
                    .challenge_from_intent_topics
                    .iter()
                    .find(|(k, _)| h.contains(k.as_str()))
                {
                    challenge = c.clone();
                    break 'outer;
                }
            }
        }
    }
    if challenge.is_empty() {
        challenge = "unknown".into();
    }
    let industry = account.field("industry").unwrap_or("").trim();
    let lowered;
    let industry = if industry
        .bytes()
        .any(|b| b.is_ascii_uppercase() || !b.is_ascii())
    {
        lowered = industry.to_lowercase();
        lowered.as_str()
    } else {
        industry
    };
    let vertical = if industry.is_empty() {
        "unknown"
    } else {
        rules
            .config
            .verticals
            .get(industry)
            .map_or("other", |v| v.as_str())
    };
    let has = |list: &[String]| {
        a.triggers
            .iter()
            .any(|(c, _)| list.iter().any(|n| n == rules.trigger_name(*c)))
    };
    let f = account.firmographics();
    let young = f
        .founded_year
        .is_some_and(|y| rules.as_of.year() - (y as i64) <= ms.growth_max_age_years as i64);
    let small = f.employees.is_some_and(|e| e <= ms.growth_max_employees);
    let stage = if has(&ms.transformation_triggers) {
        "transformation"
    } else if has(&ms.growth_triggers) || young || small {
        "growth"
    } else if f.founded_year.is_none() && f.employees.is_none() {
        "unknown"
    } else {
        "established"
    };
    for part in [&challenge, "/", vertical, "/", stage] {
        out.push_str(part);
    }
}

/// Short rationale for the output row.
pub fn rationale(rules: &Rules, a: &Assessment, facts: &Facts<'_>) -> String {
    let mut s = String::new();
    write_rationale(&mut s, rules, a, facts);
    s
}

fn plural(n: u32) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// [`rationale`] appended to `s`: `tier A (input); high via meeting 2026-10-12; 4 events,
/// 2 contacts; 1 trigger (funding_round 2026-10-20); rule 2`.
pub fn write_rationale(s: &mut String, rules: &Rules, a: &Assessment, facts: &Facts<'_>) {
    use crate::time::push_padded;
    let sc = &a.score;
    s.push_str("tier ");
    s.push_str(sc.tier.as_str());
    s.push_str(if sc.tier_source == Source::Input {
        " (input"
    } else {
        " (score"
    });
    if !sc.missing.is_empty() {
        s.push_str(", missing ");
        for (i, m) in sc.missing.iter().enumerate() {
            if i > 0 {
                s.push('+');
            }
            s.push_str(m);
        }
    }
    s.push_str("); ");
    s.push_str(a.level.as_str());
    match &a.basis {
        LevelBasis::Event { code, at } => {
            s.push_str(" via ");
            s.push_str(rules.event_name(*code));
            s.push(' ');
            at.push_date(s);
        }
        LevelBasis::Contacts(n) => {
            s.push_str(" via ");
            push_padded(s, *n as i64, 1);
            s.push_str(" engaged contacts");
        }
        LevelBasis::OpenDeal(i) => {
            let d = &facts.deals[*i];
            let _ = write!(
                s,
                " via open deal {} ({})",
                d.deal_id,
                d.stage_at(rules.as_of)
            );
        }
        LevelBasis::Nothing => {}
    }
    if a.counted_events > 0 {
        s.push_str("; ");
        push_padded(s, a.counted_events as i64, 1);
        s.push_str(" event");
        s.push_str(plural(a.counted_events));
        s.push_str(", ");
        push_padded(s, a.engaged_contacts as i64, 1);
        s.push_str(" contact");
        s.push_str(plural(a.engaged_contacts));
    }
    match a.triggers.first() {
        Some((c, at)) => {
            let n = a.triggers.len() as u32;
            s.push_str("; ");
            push_padded(s, n as i64, 1);
            s.push_str(" trigger");
            s.push_str(plural(n));
            s.push_str(" (");
            s.push_str(rules.trigger_name(*c));
            s.push(' ');
            at.push_date(s);
            s.push(')');
        }
        None => s.push_str("; no triggers"),
    }
    if a.rule == 0 {
        s.push_str("; customer track (no decision-table row)");
    } else {
        s.push_str("; rule ");
        push_padded(s, a.rule as i64, 1);
    }
    if let Some(c) = &a.customer {
        s.push_str("; customer (");
        push_padded(s, c.won as i64, 1);
        s.push_str(" won, last ");
        c.last_won.push_date(s);
        if c.lost > 0 {
            s.push_str("; ");
            push_padded(s, c.lost as i64, 1);
            s.push_str(" lost");
        }
        s.push(')');
    }
}

/// [`write_rationale`] for an account whose effective cluster is `cluster` (a stateful run):
/// when it differs from the entry rules' and when the evidence windows restart after a
/// demotion (`facts.floor`), both are said. The output row's and the run snapshot's rationale.
pub fn write_effective_rationale(
    s: &mut String,
    rules: &Rules,
    a: &Assessment,
    facts: &Facts<'_>,
    cluster: Cluster,
) {
    write_rationale(s, rules, a, facts);
    if cluster != a.cluster {
        if a.cluster == Cluster::Customer {
            let _ = write!(
                s,
                "; a won deal gives customer: a move that needs a reviewer; effective {cluster}"
            );
        } else if a.cluster.rank() > cluster.rank() && cluster.rank().is_some() {
            let _ = write!(
                s,
                "; rule {} gives {}: a promotion that needs a reviewer; effective {}",
                a.rule, a.cluster, cluster
            );
        } else {
            let _ = write!(
                s,
                "; rule {} gives {}; effective {}: no demotion rule fired",
                a.rule, a.cluster, cluster
            );
        }
    }
    if facts.floor != Instant::MIN {
        s.push_str("; evidence counted after the demotion of ");
        facts.floor.push_date(s);
    }
}

/// `type@timestamp;…`, newest first.
pub fn promotion_triggers(rules: &Rules, a: &Assessment) -> String {
    let mut s = String::new();
    write_promotion_triggers(&mut s, rules, a);
    s
}

/// [`promotion_triggers`] appended to `s`.
pub fn write_promotion_triggers(s: &mut String, rules: &Rules, a: &Assessment) {
    for (i, (c, at)) in a.triggers.iter().enumerate() {
        if i > 0 {
            s.push(';');
        }
        s.push_str(rules.trigger_name(*c));
        s.push('@');
        at.push_rfc3339(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{AccountSchema, AccountTable, Firmographics};
    use crate::config::Config;
    use crate::engagement::DealOutcome;

    const AS_OF: &str = "2026-11-01T00:00:00Z";

    fn t(s: &str) -> Instant {
        Instant::parse(s).unwrap()
    }

    struct World {
        rules: Rules,
        table: AccountTable,
        model: ScoringModel,
    }

    fn world(tier: Tier) -> World {
        let schema = AccountSchema::new(
            ["name", "industry", "challenge"]
                .iter()
                .map(|s| s.to_string()),
        );
        let mut table = AccountTable::new(schema);
        let f = Firmographics {
            icp_tier: Some(tier),
            icp_score: Some(match tier {
                Tier::A => 90.0,
                Tier::B => 70.0,
                Tier::C => 55.0,
                Tier::D => 40.0,
                Tier::E => 10.0,
            }),
            employees: Some(1000.0),
            founded_year: Some(1990),
            ..Default::default()
        };
        table.push(["A1", "Acme", "software", ""], &f, 2);
        let rules = Rules::compile(&Config::default(), t(AS_OF)).unwrap();
        let model = ScoringModel::new(&rules.config.icp, table.schema());
        World {
            rules,
            table,
            model,
        }
    }

    struct Activity {
        events: Vec<(&'static str, &'static str, &'static str)>,
        triggers: Vec<(&'static str, &'static str)>,
        deals: Vec<Deal>,
    }

    fn run(w: &World, act: &Activity) -> Assessment {
        let mut st = EngagementState::default();
        let mut signals = Vec::new();
        for (ty, at, c) in &act.events {
            let code = w.rules.events.lookup(ty.as_bytes()).unwrap();
            if let crate::engagement::Verdict::Signal { .. } =
                st.observe(&w.rules, code, t(at), c.as_bytes(), Instant::MIN)
            {
                signals.push(Signal {
                    account: 0,
                    code,
                    at: t(at),
                });
            }
        }
        let triggers: Vec<Trigger> = act
            .triggers
            .iter()
            .map(|(ty, at)| Trigger {
                account: 0,
                code: w.rules.triggers.lookup(ty.as_bytes()).unwrap(),
                at: t(at),
                headline: String::new(),
            })
            .collect();
        let facts = Facts {
            engagement: &st,
            triggers: &triggers,
            deals: &act.deals,
            signals: &signals,
            floor: Instant::MIN,
            products: &[],
        };
        assess(&w.rules, &w.model, &w.table.get(0), &facts, false)
    }

    fn quiet() -> Activity {
        Activity {
            events: vec![],
            triggers: vec![],
            deals: vec![],
        }
    }

    fn open_deal(created: &str) -> Deal {
        Deal {
            product: None,
            history: Vec::new(),
            account: 0,
            deal_id: "D1".into(),
            stage: "proposal".into(),
            amount: Some(1000.0),
            created_at: t(created),
            closed_at: None,
            last_stage_change_at: None,
            outcome: DealOutcome::Open,
        }
    }

    #[test]
    fn rule_1_low_tiers_are_monitor_only_whatever_happens() {
        for tier in [Tier::D, Tier::E] {
            let w = world(tier);
            let mut act = quiet();
            act.events.push(("demo", "2026-10-20", "c1"));
            act.triggers.push(("funding_round", "2026-10-20"));
            let a = run(&w, &act);
            assert_eq!((a.rule, a.cluster), (1, Cluster::MonitorOnly));
            assert!(matches!(
                a.conflicts[0],
                Conflict::LowTierHighEngagement { .. }
            ));
            assert_eq!(
                (run(&w, &quiet()).rule, run(&w, &quiet()).cluster),
                (1, Cluster::MonitorOnly)
            );
        }
    }

    #[test]
    fn rule_2_high_engagement_on_a_b() {
        for tier in [Tier::A, Tier::B] {
            let w = world(tier);
            let mut act = quiet();
            act.events.push(("meeting", "2026-10-20", ""));
            let a = run(&w, &act);
            assert_eq!(
                (a.level, a.rule, a.cluster),
                (EngagementLevel::High, 2, Cluster::ActiveFocus)
            );
        }
    }

    #[test]
    fn rule_2_via_open_deal_and_via_three_contacts() {
        let w = world(Tier::A);
        let mut act = quiet();
        act.deals.push(open_deal("2026-10-01"));
        let a = run(&w, &act);
        assert_eq!(
            (a.level, a.cluster),
            (EngagementLevel::High, Cluster::ActiveFocus)
        );
        assert_eq!(a.basis, LevelBasis::OpenDeal(0));
        // A deal created after as_of is not engagement.
        let mut act = quiet();
        act.deals.push(open_deal("2026-11-02"));
        assert_eq!(run(&w, &act).level, EngagementLevel::None);
        // A stalled deal is not engagement.
        let mut act = quiet();
        act.deals.push(open_deal("2026-09-01"));
        let a = run(&w, &act);
        assert_eq!((a.level, a.stalled_deals.len()), (EngagementLevel::None, 1));
        // Three distinct contacts on low events → High.
        let mut act = quiet();
        for c in ["c1", "c2", "c3"] {
            act.events.push(("email_open", "2026-10-20", c));
        }
        let a = run(&w, &act);
        assert_eq!(
            (a.level, a.basis.clone()),
            (EngagementLevel::High, LevelBasis::Contacts(3))
        );
        // Two → Medium.
        act.events.pop();
        assert_eq!(run(&w, &act).level, EngagementLevel::Medium);
    }

    #[test]
    fn rules_3_and_4_medium_with_and_without_triggers() {
        for tier in [Tier::A, Tier::B] {
            let w = world(tier);
            let mut act = quiet();
            act.events.push(("webinar_attended", "2026-10-20", ""));
            let a = run(&w, &act);
            assert_eq!((a.rule, a.cluster), (4, Cluster::FuturePipeline));
            act.triggers.push(("funding_round", "2026-10-25"));
            let a = run(&w, &act);
            assert_eq!((a.rule, a.cluster), (3, Cluster::ActiveFocus));
        }
    }

    #[test]
    fn rule_5_tier_c_engaged() {
        let w = world(Tier::C);
        for ty in ["demo", "email_reply"] {
            let mut act = quiet();
            act.events.push((ty, "2026-10-20", ""));
            let a = run(&w, &act);
            assert_eq!((a.rule, a.cluster), (5, Cluster::FuturePipeline));
        }
    }

    #[test]
    fn rules_6_and_7_low_or_none() {
        for tier in [Tier::A, Tier::B, Tier::C] {
            let w = world(tier);
            let a = run(&w, &quiet());
            assert_eq!((a.rule, a.cluster), (7, Cluster::ClusterIcp));
            let mut act = quiet();
            act.events.push(("website_visit", "2026-10-20", ""));
            let a = run(&w, &act);
            assert_eq!(
                (a.level, a.rule, a.cluster),
                (EngagementLevel::Low, 7, Cluster::ClusterIcp)
            );
            act.triggers.push(("expansion", "2026-08-03"));
            let a = run(&w, &act);
            assert_eq!((a.rule, a.cluster), (6, Cluster::FuturePipeline));
            let mut act = quiet();
            act.triggers.push(("layoffs", "2026-10-01"));
            assert_eq!(run(&w, &act).rule, 6);
        }
    }

    #[test]
    fn trigger_window_is_inclusive_and_newest_first() {
        let w = world(Tier::A);
        let mut act = quiet();
        act.triggers.push(("expansion", "2026-08-02T23:59:59Z"));
        act.triggers.push(("layoffs", "2026-11-01T00:00:01Z"));
        assert!(!run(&w, &act).has_triggers());
        act.triggers.push(("tech_change", "2026-08-03"));
        act.triggers.push(("funding_round", "2026-11-01"));
        act.triggers.push(("expansion", "2026-11-01"));
        let a = run(&w, &act);
        assert_eq!(
            promotion_triggers(&w.rules, &a),
            "expansion@2026-11-01T00:00:00Z;funding_round@2026-11-01T00:00:00Z;tech_change@2026-08-03T00:00:00Z"
        );
    }

    #[test]
    fn conflicts() {
        let w = world(Tier::A);
        let mut act = quiet();
        act.events.push(("champion_left", "2026-10-01", "c1"));
        assert!(run(&w, &act).conflicts.is_empty());
        act.events.push(("email_reply", "2026-10-02", "c2"));
        let a = run(&w, &act);
        assert!(matches!(a.conflicts[..], [Conflict::MixedSignals { .. }]));
        // input tier A with score 40 (tier D): three tiers apart.
        let mut w = world(Tier::A);
        let f = Firmographics {
            icp_tier: Some(Tier::A),
            icp_score: Some(40.0),
            ..Default::default()
        };
        w.table.push(["A2", "X", "", ""], &f, 3);
        let st = EngagementState::default();
        let facts = Facts {
            engagement: &st,
            triggers: &[],
            deals: &[],
            signals: &[],
            floor: Instant::MIN,
            products: &[],
        };
        let a = assess(&w.rules, &w.model, &w.table.get(1), &facts, false);
        assert_eq!(
            a.conflicts,
            vec![Conflict::TierMismatch {
                input: Tier::A,
                computed: Tier::D
            }]
        );
    }

    #[test]
    fn next_actions_name_what_is_missing() {
        let w = world(Tier::A);
        let mut act = quiet();
        act.events.push(("email_reply", "2026-10-02", "c1"));
        let a = run(&w, &act);
        let na = next_action(&w.rules, &a, a.cluster);
        assert!(na.starts_with("SDR:"), "{na}");
        assert_eq!(
            na,
            "SDR: validate the challenge; for Active Focus: a trigger, high engagement (e.g. demo) \
             or 3 engaged contacts (has 1)"
        );
        let a = run(&w, &quiet());
        let na = next_action(&w.rules, &a, a.cluster);
        assert!(
            na.contains("for Future Pipeline: a trigger, medium engagement"),
            "{na}"
        );
        let w = world(Tier::C);
        let mut act = quiet();
        act.events.push(("demo", "2026-10-02", "c1"));
        let a = run(&w, &act);
        let na = next_action(&w.rules, &a, a.cluster);
        assert!(na.contains("tier C caps"), "{na}");
    }

    #[test]
    fn micro_segments() {
        let w = world(Tier::A);
        let mut act = quiet();
        act.triggers.push(("layoffs", "2026-10-01"));
        let a = run(&w, &act);
        let st = EngagementState::default();
        let facts = Facts {
            engagement: &st,
            triggers: &[],
            deals: &[],
            signals: &[],
            floor: Instant::MIN,
            products: &[],
        };
        assert_eq!(
            micro_segment(&w.rules, &w.table.get(0), &a, &facts),
            "cost_reduction/technology/transformation"
        );
        let a = run(&w, &quiet());
        assert_eq!(
            micro_segment(&w.rules, &w.table.get(0), &a, &facts),
            "unknown/technology/established"
        );
    }

    #[test]
    fn slugs_take_the_short_path_only_when_it_gives_the_same() {
        for s in [
            "",
            " ",
            "cost_reduction",
            "cost__reduction",
            "_cost",
            "cost_",
            "Cost Reduction",
            "  cost reduction ",
            "ÉCO-système",
            "a1_b2",
            "UPPER",
            "x",
            "_",
            "tab\there",
        ] {
            assert_eq!(slug(s), slug_slow(s), "{s:?}");
        }
    }
}
