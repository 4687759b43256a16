//! What a rule change would do: two assessments of the same account (old and new config) and
//! why they differ, and the transition matrices over all accounts. Pure: callers assess.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::assess::Assessment;
use crate::config::Config;
use crate::scoring::format_score;
use crate::summary::{capacity_status, CapacityStatus, ClusterCounts};
use crate::{Cluster, Tier};

/// One account whose cluster or tier would change.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AccountChange {
    pub account_id: String,
    pub from: Cluster,
    pub to: Cluster,
    pub tier_from: Tier,
    pub tier_to: Tier,
    pub score_from: f64,
    pub score_to: f64,
    /// The criteria and rules that made the difference, in words.
    pub because: String,
    /// Stateful preview only: the move would wait for a reviewer (a proposal opens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needs_review: Option<bool>,
    /// Short keys of the reasons (for the summary): `criterion:industry`, `tier thresholds`, …
    #[serde(skip)]
    pub reasons: Vec<String>,
}

impl AccountChange {
    /// One account's change from `old` to `new` (its assessments under the two configs), moving
    /// `from` → `to` (the assessments' clusters, or on the store the effective cluster and the
    /// next run's), with `because` from [`because`].
    pub fn new(
        account_id: &str,
        (old, new): (&Assessment, &Assessment),
        (from, to): (Cluster, Cluster),
        (because, reasons): (String, Vec<String>),
        needs_review: Option<bool>,
    ) -> AccountChange {
        let round1 = |v: f64| (v * 10.0).round() / 10.0;
        AccountChange {
            account_id: account_id.to_string(),
            from,
            to,
            tier_from: old.score.tier,
            tier_to: new.score.tier,
            score_from: round1(old.score.score),
            score_to: round1(new.score.score),
            because,
            needs_review,
            reasons,
        }
    }
}

/// Capacity status of each cluster before and after.
#[derive(Debug, Clone, Serialize)]
pub struct CapacityChange {
    pub before: CapacityStatus,
    pub after: CapacityStatus,
    pub counts_before: ClusterCounts,
    pub counts_after: ClusterCounts,
}

/// The whole comparison (`whatif.json`).
#[derive(Debug, Clone, Serialize)]
pub struct WhatIf {
    pub as_of: String,
    pub accounts_compared: u64,
    /// from → to → accounts, over all accounts (the diagonal included).
    pub matrix: BTreeMap<String, BTreeMap<String, u64>>,
    pub tier_matrix: BTreeMap<String, BTreeMap<String, u64>>,
    /// Accounts whose cluster changes.
    pub changed: u64,
    /// Accounts whose tier changes.
    pub tier_changed: u64,
    pub capacity: CapacityChange,
    /// The changes in words, one line each.
    pub summary: Vec<String>,
    /// Every account whose cluster or tier changes, in account order.
    pub accounts: Vec<AccountChange>,
}

/// Accumulates the comparison account by account (mergeable across threads).
#[derive(Debug, Default, Clone)]
pub struct Tally {
    matrix: [[u64; Cluster::COUNT]; Cluster::COUNT],
    tiers: [[u64; 5]; 5],
    pub changes: Vec<AccountChange>,
}

fn add_n(counts: &mut ClusterCounts, c: Cluster, n: u64) {
    match c {
        Cluster::ClusterIcp => counts.cluster_icp += n,
        Cluster::FuturePipeline => counts.future_pipeline += n,
        Cluster::ActiveFocus => counts.active_focus += n,
        Cluster::MonitorOnly => counts.monitor_only += n,
        Cluster::Customer => counts.customer += n,
    }
}

fn cluster_index(c: Cluster) -> usize {
    Cluster::ALL
        .iter()
        .position(|x| *x == c)
        .expect("a cluster")
}

impl Tally {
    /// Count one account; keep it when its cluster or tier changes.
    pub fn add(
        &mut self,
        (from, to): (Cluster, Cluster),
        (tier_from, tier_to): (Tier, Tier),
        change: impl FnOnce() -> AccountChange,
    ) {
        self.matrix[cluster_index(from)][cluster_index(to)] += 1;
        self.tiers[tier_from as usize][tier_to as usize] += 1;
        if from != to || tier_from != tier_to {
            self.changes.push(change());
        }
    }

    pub fn merge(&mut self, other: Tally) {
        for i in 0..Cluster::COUNT {
            for j in 0..Cluster::COUNT {
                self.matrix[i][j] += other.matrix[i][j];
            }
        }
        for i in 0..5 {
            for j in 0..5 {
                self.tiers[i][j] += other.tiers[i][j];
            }
        }
        self.changes.extend(other.changes);
    }

    /// The report; `old` and `new` give the capacity ranges.
    pub fn finish(self, old: &Config, new: &Config, as_of: String) -> WhatIf {
        let mut matrix = BTreeMap::new();
        let (mut before, mut after) = (ClusterCounts::default(), ClusterCounts::default());
        let mut total = 0;
        let mut changed = 0;
        // The customer track's row and column only when an account is in it, before or after.
        let c = Cluster::Customer.index();
        let customers: u64 = (0..Cluster::COUNT)
            .map(|k| self.matrix[c][k] + self.matrix[k][c])
            .sum();
        let listed = Cluster::listed(customers);
        for (i, from) in listed.iter().enumerate() {
            let row: BTreeMap<String, u64> = listed
                .iter()
                .enumerate()
                .map(|(j, to)| (to.as_str().to_string(), self.matrix[i][j]))
                .collect();
            for (j, to) in listed.iter().enumerate() {
                let n = self.matrix[i][j];
                add_n(&mut before, *from, n);
                add_n(&mut after, *to, n);
                total += n;
                if i != j {
                    changed += n;
                }
            }
            matrix.insert(from.as_str().to_string(), row);
        }
        let mut tier_matrix = BTreeMap::new();
        let mut tier_changed = 0;
        for (i, from) in Tier::ALL.iter().enumerate() {
            let row = Tier::ALL
                .iter()
                .enumerate()
                .map(|(j, to)| {
                    if i != j {
                        tier_changed += self.tiers[i][j];
                    }
                    (to.as_str().to_string(), self.tiers[i][j])
                })
                .collect();
            tier_matrix.insert(from.as_str().to_string(), row);
        }
        let mut accounts = self.changes;
        accounts.sort_by(|a, b| a.account_id.cmp(&b.account_id));
        let summary = summary_lines(&self.matrix, &accounts);
        WhatIf {
            as_of,
            accounts_compared: total,
            matrix,
            tier_matrix,
            changed,
            tier_changed,
            capacity: CapacityChange {
                before: capacity_status(&before, &old.capacity),
                after: capacity_status(&after, &new.capacity),
                counts_before: before,
                counts_after: after,
            },
            summary,
            accounts,
        }
    }
}

/// "+42 to Active Focus (30 from Future Pipeline, 12 from Cluster ICP), mostly because …".
fn summary_lines(
    m: &[[u64; Cluster::COUNT]; Cluster::COUNT],
    changes: &[AccountChange],
) -> Vec<String> {
    let mut lines = Vec::new();
    for (j, to) in Cluster::ALL.iter().enumerate() {
        let inflow: Vec<(Cluster, u64)> = Cluster::ALL
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != j && m[*i][j] > 0)
            .map(|(i, from)| (*from, m[i][j]))
            .collect();
        let gained: u64 = inflow.iter().map(|x| x.1).sum();
        if gained == 0 {
            continue;
        }
        let from_text: Vec<String> = inflow
            .iter()
            .map(|(c, n)| format!("{n} from {}", c.label()))
            .collect();
        // The most frequent reasons of the accounts that moved here.
        let mut reasons: BTreeMap<&str, u64> = BTreeMap::new();
        for c in changes.iter().filter(|c| c.to == *to && c.from != *to) {
            for r in &c.reasons {
                *reasons.entry(r.as_str()).or_default() += 1;
            }
        }
        let mut top: Vec<(&str, u64)> = reasons.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let why: Vec<String> = top
            .iter()
            .take(3)
            .map(|(r, n)| format!("{r} ({n})"))
            .collect();
        lines.push(format!(
            "+{gained} to {} ({}){}",
            to.label(),
            from_text.join(", "),
            if why.is_empty() {
                String::new()
            } else {
                format!(", because of: {}", why.join(", "))
            }
        ));
    }
    for (i, from) in Cluster::ALL.iter().enumerate() {
        let lost: u64 = (0..Cluster::COUNT)
            .filter(|j| *j != i)
            .map(|j| m[i][j])
            .sum();
        if lost > 0 {
            lines.push(format!("-{lost} from {}", from.label()));
        }
    }
    if lines.is_empty() {
        lines.push("No account changes cluster.".into());
    }
    lines
}

/// (earned, possible) per field, from each criterion's points in the config's order.
fn per_field<'c>(cfg: &'c Config, points: &[f64]) -> BTreeMap<&'c str, (f64, f64)> {
    let mut m: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for (c, p) in cfg.icp.criteria.iter().zip(points) {
        let e = m.entry(c.field()).or_default();
        e.0 += p;
        e.1 += c.possible();
    }
    m
}

/// Why `old` and `new` (the same account under the old and the new config) differ: every
/// criterion whose points differ, the tier thresholds, the engagement level, the triggers, the
/// decision-table row. `points` are each criterion's points under the old and the new config
/// ([`crate::ScoringModel::points_into`]). Returns (text, reason keys).
pub fn because(
    (old_cfg, new_cfg): (&Config, &Config),
    (old, new): (&Assessment, &Assessment),
    (old_points, new_points): (&[f64], &[f64]),
) -> (String, Vec<String>) {
    let mut parts = Vec::new();
    let mut keys = Vec::new();
    if old.score.score != new.score.score {
        let (o, n) = (
            per_field(old_cfg, old_points),
            per_field(new_cfg, new_points),
        );
        let fields: std::collections::BTreeSet<&str> = o.keys().chain(n.keys()).copied().collect();
        for f in fields {
            let (oe, op) = o.get(f).copied().unwrap_or((0.0, 0.0));
            let (ne, np) = n.get(f).copied().unwrap_or((0.0, 0.0));
            if oe != ne || op != np {
                let what = match (o.contains_key(f), n.contains_key(f)) {
                    (true, false) => format!("criterion on {f} removed ({} pts)", format_score(oe)),
                    (false, true) => format!("criterion on {f} added ({} pts)", format_score(ne)),
                    _ if oe != ne => format!("{f} {} → {} pts", format_score(oe), format_score(ne)),
                    _ => format!("{f} worth {} → {} pts", format_score(op), format_score(np)),
                };
                parts.push(what);
                keys.push(format!("criterion {f}"));
            }
        }
        parts.push(format!(
            "score {} → {}",
            format_score(old.score.score),
            format_score(new.score.score)
        ));
    }
    if old.score.tier != new.score.tier {
        let (ot, nt) = (&old_cfg.icp.tiers, &new_cfg.icp.tiers);
        let moved: Vec<String> = [
            ("A", ot.a, nt.a),
            ("B", ot.b, nt.b),
            ("C", ot.c, nt.c),
            ("D", ot.d, nt.d),
        ]
        .iter()
        .filter(|(_, a, b)| a != b)
        .map(|(t, a, b)| format!("{t} ≥ {} → {}", format_score(*a), format_score(*b)))
        .collect();
        if !moved.is_empty() && old.score.score == new.score.score {
            parts.push(format!("tier thresholds {}", moved.join(", ")));
            keys.push("tier thresholds".into());
        }
        parts.push(format!(
            "tier {} → {}",
            old.score.tier.as_str(),
            new.score.tier.as_str()
        ));
    }
    if old.level != new.level {
        parts.push(format!(
            "engagement {} → {}",
            old.level.as_str(),
            new.level.as_str()
        ));
        keys.push("engagement rules".into());
    }
    if old.has_triggers() != new.has_triggers() {
        let yn = |b: bool| if b { "yes" } else { "no" };
        parts.push(format!(
            "triggers in window {} → {}",
            yn(old.has_triggers()),
            yn(new.has_triggers())
        ));
        keys.push("trigger rules".into());
    }
    if (old.rule == 0) != (new.rule == 0) {
        // One config puts the customer in the customer track, the other does not.
        let row = |a: &Assessment| match a.rule {
            0 => "the customer track".to_string(),
            n => format!("decision row {n}"),
        };
        parts.push(format!("{} → {} ([customers] mode)", row(old), row(new)));
        keys.push("customers mode".into());
    } else if old.rule != new.rule || old.cluster != new.cluster {
        let same_inputs = old.score.tier == new.score.tier
            && old.level == new.level
            && old.has_triggers() == new.has_triggers();
        parts.push(format!(
            "decision row {} → {}{}",
            old.rule,
            new.rule,
            if same_inputs {
                " (the decision table changed)"
            } else {
                ""
            }
        ));
        if same_inputs {
            keys.push("decision table".into());
        }
    }
    if parts.is_empty() {
        parts.push("no difference".into());
    }
    (parts.join("; "), keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{AccountSchema, AccountTable, Firmographics};
    use crate::assess::{assess, Facts};
    use crate::config::Criterion;
    use crate::engagement::EngagementState;
    use crate::{Instant, Rules, ScoringModel};

    fn assess_with(cfg: &Config, row: [&str; 3]) -> (Assessment, Vec<f64>) {
        let schema = AccountSchema::new(
            [
                "industry",
                "country",
                "employees",
                "annual_revenue",
                "tech_stack",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        let mut t = AccountTable::new(schema);
        let f = Firmographics {
            employees: Some(1000.0),
            annual_revenue: Some(50e6),
            ..Default::default()
        };
        t.push([row[0], row[1], row[2], "1000", "50000000", "dbt"], &f, 2);
        let as_of = Instant::parse("2026-11-01").unwrap();
        let rules = Rules::compile(cfg, as_of).unwrap();
        let model = ScoringModel::new(&cfg.icp, t.schema());
        let st = EngagementState::default();
        let facts = Facts {
            engagement: &st,
            triggers: &[],
            deals: &[],
            signals: &[],
            floor: Instant::MIN,
            products: &[],
        };
        let mut points = Vec::new();
        model.points_into(&t.get(0), &mut points);
        (assess(&rules, &model, &t.get(0), &facts, false), points)
    }

    fn why(
        old: &Config,
        new: &Config,
        a: &(Assessment, Vec<f64>),
        b: &(Assessment, Vec<f64>),
    ) -> (String, Vec<String>) {
        because((old, new), (&a.0, &b.0), (&a.1, &b.1))
    }

    #[test]
    fn because_names_the_criterion_that_changed() {
        let old = Config::default();
        let mut new = old.clone();
        if let Criterion::In {
            points: crate::config::Points::PerValue(m),
            ..
        } = &mut new.icp.criteria[0]
        {
            m.insert("software".into(), 5.0);
        }
        let a = assess_with(&old, ["A1", "software", "US"]);
        let b = assess_with(&new, ["A1", "software", "US"]);
        let (text, keys) = why(&old, &new, &a, &b);
        assert!(text.contains("industry 30 → 5 pts"), "{text}");
        assert!(
            text.contains("industry worth") || text.contains("score"),
            "{text}"
        );
        assert_eq!(keys, vec!["criterion industry"]);
    }

    #[test]
    fn because_names_tier_thresholds_and_the_decision_table() {
        let old = Config::default();
        let mut new = old.clone();
        new.icp.tiers.a = 101.0;
        let a = assess_with(&old, ["A1", "software", "US"]);
        let b = assess_with(&new, ["A1", "software", "US"]);
        let (text, keys) = why(&old, &new, &a, &b);
        assert!(text.contains("tier thresholds A ≥ 80 → 101"), "{text}");
        assert!(text.contains("tier A → B"), "{text}");
        assert_eq!(keys, vec!["tier thresholds"]);

        let mut new = old.clone();
        new.decision_table
            .retain(|r| r.cluster != Cluster::ClusterIcp);
        new.decision_table.push(crate::config::DecisionRow {
            tiers: vec!["A".into(), "B".into(), "C".into()],
            engagement: vec!["low".into(), "none".into()],
            triggers: "no".into(),
            cluster: Cluster::MonitorOnly,
        });
        let b = assess_with(&new, ["A1", "software", "US"]);
        let (text, keys) = why(&old, &new, &a, &b);
        assert!(text.contains("the decision table changed"), "{text}");
        assert_eq!(keys, vec!["decision table"]);
    }

    #[test]
    fn tally_counts_every_account_and_keeps_changes() {
        let mut t = Tally::default();
        let ch = |id: &str, from, to, tf, tt| AccountChange {
            account_id: id.into(),
            from,
            to,
            tier_from: tf,
            tier_to: tt,
            score_from: 0.0,
            score_to: 0.0,
            because: String::new(),
            needs_review: None,
            reasons: vec!["criterion industry".into()],
        };
        t.add(
            (Cluster::ActiveFocus, Cluster::ActiveFocus),
            (Tier::A, Tier::A),
            || {
                ch(
                    "a",
                    Cluster::ActiveFocus,
                    Cluster::ActiveFocus,
                    Tier::A,
                    Tier::A,
                )
            },
        );
        let mut u = Tally::default();
        u.add(
            (Cluster::FuturePipeline, Cluster::ActiveFocus),
            (Tier::B, Tier::A),
            || {
                ch(
                    "c",
                    Cluster::FuturePipeline,
                    Cluster::ActiveFocus,
                    Tier::B,
                    Tier::A,
                )
            },
        );
        u.add(
            (Cluster::ClusterIcp, Cluster::ClusterIcp),
            (Tier::B, Tier::C),
            || {
                ch(
                    "b",
                    Cluster::ClusterIcp,
                    Cluster::ClusterIcp,
                    Tier::B,
                    Tier::C,
                )
            },
        );
        t.merge(u);
        let w = t.finish(&Config::default(), &Config::default(), "x".into());
        assert_eq!(w.accounts_compared, 3);
        assert_eq!(w.changed, 1);
        assert_eq!(w.tier_changed, 2);
        assert_eq!(w.matrix["future_pipeline"]["active_focus"], 1);
        assert_eq!(w.tier_matrix["B"]["C"], 1);
        let ids: Vec<_> = w.accounts.iter().map(|a| a.account_id.as_str()).collect();
        assert_eq!(ids, ["b", "c"]);
        assert_eq!(w.capacity.counts_after.active_focus, 2);
        assert!(w.summary[0].starts_with("+1 to Active Focus (1 from Future Pipeline)"));
        assert!(
            w.summary[0].contains("criterion industry (1)"),
            "{:?}",
            w.summary
        );
    }
}
