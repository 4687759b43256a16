//! Does the cluster model tell the truth? Accounts assessed as of a date `at` (clusters and
//! tiers from what was known then), then, for each horizon, the share that opened a deal and
//! the share that won one in `(at, at + horizon]`, with Wilson intervals and the lift over the
//! base rate of all accounts assessed; compared with the playbook's claims.

use crate::stats::{self, Z95};
use abm_core::{Cluster, Deal, DealOutcome, Instant, Tier};
use serde::Serialize;

/// What one account did after `at` within `horizon_days`: (opened a deal, won a deal).
pub fn outcome(deals: &[Deal], at: Instant, horizon_days: u32) -> (bool, bool) {
    let end = at.plus_days(horizon_days);
    let opened = deals
        .iter()
        .any(|d| d.created_at > at && d.created_at <= end);
    let won = deals
        .iter()
        .any(|d| d.outcome == DealOutcome::Won && d.closed_at.is_some_and(|c| c > at && c <= end));
    (opened, won)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub accounts: u64,
    pub opened: u64,
    pub won: u64,
}

impl Counts {
    pub fn add(&mut self, (opened, won): (bool, bool)) {
        self.accounts += 1;
        self.opened += opened as u64;
        self.won += won as u64;
    }

    pub fn merge(&mut self, o: &Counts) {
        self.accounts += o.accounts;
        self.opened += o.opened;
        self.won += o.won;
    }
}

/// The counts of one (date, horizon): all accounts, per cluster, per tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BacktestAcc {
    pub all: Counts,
    pub by_cluster: [Counts; Cluster::COUNT],
    pub by_tier: [Counts; 5],
}

impl BacktestAcc {
    pub fn add(&mut self, cluster: Cluster, tier: Tier, o: (bool, bool)) {
        self.all.add(o);
        self.by_cluster[cluster.index()].add(o);
        self.by_tier[tier.index()].add(o);
    }

    pub fn merge(&mut self, o: &BacktestAcc) {
        self.all.merge(&o.all);
        for (a, b) in self.by_cluster.iter_mut().zip(&o.by_cluster) {
            a.merge(b);
        }
        for (a, b) in self.by_tier.iter_mut().zip(&o.by_tier) {
            a.merge(b);
        }
    }
}

/// A rate with its interval and its lift over the base rate (the lift's interval is the rate's
/// divided by the base rate).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Rate {
    pub count: u64,
    pub rate: Option<f64>,
    pub ci: Option<[f64; 2]>,
    pub lift: Option<f64>,
    pub lift_ci: Option<[f64; 2]>,
}

fn rate(k: u64, n: u64, base: Option<f64>) -> Rate {
    let r = stats::rate(k, n);
    let ci = stats::wilson(k, n, Z95);
    let b = base.filter(|b| *b > 0.0);
    Rate {
        count: k,
        rate: r,
        ci,
        lift: r.zip(b).map(|(r, b)| r / b),
        lift_ci: ci.zip(b).map(|([lo, hi], b)| [lo / b, hi / b]),
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RateRow {
    pub key: String,
    pub accounts: u64,
    pub opened: Rate,
    pub won: Rate,
}

/// A claim of the playbook and whether the data bears it out (`None`: cannot tell).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Check {
    pub claim: String,
    pub holds: Option<bool>,
    pub evidence: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BacktestResult {
    pub at: String,
    pub horizon_days: u32,
    pub base: RateRow,
    pub by_cluster: Vec<RateRow>,
    pub by_tier: Vec<RateRow>,
    pub checks: Vec<Check>,
}

fn row(key: &str, c: &Counts, base: &Counts) -> RateRow {
    RateRow {
        key: key.into(),
        accounts: c.accounts,
        opened: rate(
            c.opened,
            c.accounts,
            stats::rate(base.opened, base.accounts),
        ),
        won: rate(c.won, c.accounts, stats::rate(base.won, base.accounts)),
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{:.1}%", v * 100.0))
}

/// Rates, lifts and the playbook's checks of one (date, horizon).
pub fn result(at: Instant, horizon_days: u32, acc: &BacktestAcc) -> BacktestResult {
    let base = row("all", &acc.all, &acc.all);
    // The customer track's row only when it holds accounts.
    let customers = acc.by_cluster[Cluster::Customer.index()].accounts;
    let by_cluster: Vec<RateRow> = Cluster::listed(customers)
        .iter()
        .map(|c| row(c.as_str(), &acc.by_cluster[c.index()], &acc.all))
        .collect();
    let by_tier: Vec<RateRow> = Tier::ALL
        .iter()
        .map(|t| row(t.as_str(), &acc.by_tier[t.index()], &acc.all))
        .collect();
    let of = |c: Cluster| &by_cluster[Cluster::ALL.iter().position(|x| *x == c).expect("cluster")];
    let below = |c: Cluster, limit: f64| {
        let r = of(c);
        Check {
            claim: format!(
                "{} opens deals at under {:.0}% within {horizon_days} days",
                c.label(),
                limit * 100.0
            ),
            holds: r.opened.rate.map(|v| v < limit),
            evidence: format!(
                "{} of {} ({}, 95% interval {})",
                r.opened.count,
                r.accounts,
                pct(r.opened.rate),
                r.opened.ci.map_or("–".into(), |[a, b]| format!(
                    "{}–{}",
                    pct(Some(a)),
                    pct(Some(b))
                ))
            ),
        }
    };
    let af = of(Cluster::ActiveFocus);
    let best_other = by_cluster
        .iter()
        .filter(|r| r.key != Cluster::ActiveFocus.as_str() && r.key != Cluster::Customer.as_str())
        .filter_map(|r| r.opened.rate)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    let af_check = Check {
        claim: format!(
            "Active Focus opens deals at the highest rate, above the base rate, within {horizon_days} days"
        ),
        holds: af
            .opened
            .lift_ci
            .map(|[lo, _]| lo > 1.0 && af.opened.rate >= best_other),
        evidence: format!(
            "lift {} (95% interval {})",
            af.opened.lift.map_or("–".into(), |l| format!("{l:.2}×")),
            af.opened
                .lift_ci
                .map_or("–".into(), |[a, b]| format!("{a:.2}–{b:.2}×"))
        ),
    };
    let a = &by_tier[0];
    let tier_check = Check {
        claim: format!("tier A opens deals above the base rate within {horizon_days} days"),
        holds: a.opened.lift_ci.map(|[lo, _]| lo > 1.0),
        evidence: format!(
            "lift {} (95% interval {}), {} accounts",
            a.opened.lift.map_or("–".into(), |l| format!("{l:.2}×")),
            a.opened
                .lift_ci
                .map_or("–".into(), |[a, b]| format!("{a:.2}–{b:.2}×")),
            a.accounts
        ),
    };
    BacktestResult {
        at: at.to_rfc3339(),
        horizon_days,
        checks: vec![
            below(Cluster::ClusterIcp, 0.05),
            below(Cluster::FuturePipeline, 0.30),
            af_check,
            tier_check,
        ],
        base,
        by_cluster,
        by_tier,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perf::tests::{day, deal};
    use DealOutcome::*;

    #[test]
    fn outcomes_count_only_inside_the_horizon() {
        let at = day("2026-01-01");
        let deals = [
            deal(Open, "2025-12-01", None, None), // before: no
            deal(Won, "2025-12-15", Some("2026-01-20"), Some(1.0)), // won inside
            deal(Open, "2026-04-15", None, None), // opened after 90 days
        ];
        assert_eq!(outcome(&deals, at, 90), (false, true));
        assert_eq!(outcome(&deals, at, 120), (true, true));
        assert_eq!(outcome(&deals, at, 10), (false, false));
        // The date itself is not after it.
        assert_eq!(
            outcome(&[deal(Open, "2026-01-01", None, None)], at, 90),
            (false, false)
        );
    }

    #[test]
    fn rates_lifts_and_checks() {
        let mut acc = BacktestAcc::default();
        // 100 accounts: Active Focus 10 (8 open a deal), Cluster ICP 90 (2 open).
        for i in 0..10 {
            acc.add(Cluster::ActiveFocus, Tier::A, (i < 8, i < 2));
        }
        for i in 0..90 {
            acc.add(Cluster::ClusterIcp, Tier::C, (i < 2, false));
        }
        let r = result(day("2026-01-01"), 90, &acc);
        assert_eq!(r.base.opened.rate, Some(0.10));
        let af = &r.by_cluster[2];
        assert_eq!(af.key, "active_focus");
        assert_eq!(af.opened.rate, Some(0.8));
        assert!((af.opened.lift.unwrap() - 8.0).abs() < 1e-12);
        let [lo, hi] = af.opened.lift_ci.unwrap();
        let [clo, chi] = af.opened.ci.unwrap();
        assert!((lo - clo / 0.1).abs() < 1e-12 && (hi - chi / 0.1).abs() < 1e-12);
        assert_eq!(r.checks[0].holds, Some(true), "{:?}", r.checks[0]); // ICP 2.2% < 5%
        assert_eq!(r.checks[1].holds, None); // no Future Pipeline account
        assert_eq!(r.checks[2].holds, Some(true));
        assert_eq!(r.checks[3].holds, Some(true));
        assert_eq!(r.by_tier[4].opened.rate, None);
        // Merging halves equals one pass.
        let mut a = BacktestAcc::default();
        let mut b = BacktestAcc::default();
        a.add(Cluster::MonitorOnly, Tier::E, (true, false));
        b.add(Cluster::MonitorOnly, Tier::E, (false, true));
        a.merge(&b);
        assert_eq!(
            a.all,
            Counts {
                accounts: 2,
                opened: 1,
                won: 1
            }
        );
    }
}
