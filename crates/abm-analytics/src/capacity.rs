//! Forecast capacity guidance (issue 16, item 9): accounts per cluster against the
//! `[capacity]` ranges now and, at the movement rates observed between recorded runs, at the
//! end of the horizon (the next quarter by default). A projection without recorded movements is
//! `null`, never "no change".

use abm_core::config::CapacityConfig;
use abm_core::{Cluster, Instant};
use serde::Serialize;

/// Days per month on average (365.25 / 12).
const DAYS_PER_MONTH: f64 = 30.4375;

/// Movements observed between recorded runs: per cluster (by [`Cluster::index`]) how many
/// accounts came in and went out over `days`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flows {
    pub from: String,
    pub to: String,
    pub days: f64,
    pub movements: u64,
    #[serde(skip)]
    pub inflow: [u64; Cluster::COUNT],
    #[serde(skip)]
    pub outflow: [u64; Cluster::COUNT],
}

impl Flows {
    pub fn new(from: Instant, to: Instant) -> Flows {
        Flows {
            from: from.to_rfc3339(),
            to: to.to_rfc3339(),
            days: ((to.0 - from.0) as f64 / abm_core::time::MICROS_PER_DAY as f64).max(1.0),
            movements: 0,
            inflow: [0; Cluster::COUNT],
            outflow: [0; Cluster::COUNT],
        }
    }

    /// `count` accounts moved from `from` to `to`.
    pub fn add(&mut self, from: Cluster, to: Cluster, count: u64) {
        if from == to {
            return;
        }
        self.movements += count;
        self.outflow[from.index()] += count;
        self.inflow[to.index()] += count;
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityGuidance {
    pub horizon_days: u32,
    /// The movements the rates come from; `null` without recorded runs (on files).
    pub observed: Option<Flows>,
    pub clusters: Vec<ClusterCapacity>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterCapacity {
    pub cluster: String,
    pub accounts: u64,
    pub min: u64,
    /// `null`: no maximum.
    pub max: Option<u64>,
    pub inflow_per_month: Option<f64>,
    pub outflow_per_month: Option<f64>,
    /// Accounts at the end of the horizon at the observed net rate.
    pub projected: Option<f64>,
    /// `under`, `within` or `over` the range now …
    pub status: &'static str,
    /// … and at the end of the horizon.
    pub projected_status: Option<&'static str>,
    pub advice: String,
}

fn status(n: f64, min: u64, max: Option<u64>) -> &'static str {
    if n < min as f64 {
        "under"
    } else if max.is_some_and(|m| n > m as f64) {
        "over"
    } else {
        "within"
    }
}

/// Accounts per cluster (by [`Cluster::index`]) from `by_cluster` rows.
pub fn cluster_counts(by_cluster: &[crate::perf::Row]) -> [u64; Cluster::COUNT] {
    let mut counts = [0u64; Cluster::COUNT];
    for r in by_cluster {
        if let Some(c) = Cluster::parse(&r.key) {
            counts[c.index()] = r.accounts;
        }
    }
    counts
}

/// The guidance for the clustered accounts: `counts` per cluster (by [`Cluster::index`]).
pub fn guidance(
    counts: [u64; Cluster::COUNT],
    cap: &CapacityConfig,
    flows: Option<Flows>,
    horizon_days: u32,
) -> CapacityGuidance {
    let total: u64 = counts.iter().sum();
    let clusters = [
        Cluster::ClusterIcp,
        Cluster::FuturePipeline,
        Cluster::ActiveFocus,
        Cluster::Customer,
    ]
    .into_iter()
    // The customer track only with a configured capacity.
    .filter(|c| cap.of(*c).is_some())
    .map(|c| {
        let (min, max) = cap.of(c).expect("clustered").bounds(total);
        let max = (max != u64::MAX).then_some(max);
        let n = counts[c.index()];
        let per_month = |v: u64, f: &Flows| crate::stats::round6(v as f64 / f.days * DAYS_PER_MONTH);
        let inflow = flows.as_ref().map(|f| per_month(f.inflow[c.index()], f));
        let outflow = flows.as_ref().map(|f| per_month(f.outflow[c.index()], f));
        let projected = flows.as_ref().map(|f| {
            let net = f.inflow[c.index()] as f64 - f.outflow[c.index()] as f64;
            crate::stats::round6((n as f64 + net / f.days * horizon_days as f64).max(0.0))
        });
        let now = status(n as f64, min, max);
        let then = projected.map(|p| status(p, min, max));
        let range = match max {
            Some(m) => format!("{min}–{m}"),
            None => format!("≥ {min}"),
        };
        let label = c.label();
        let advice = match (now, projected, then) {
            ("over", _, _) => format!(
                "{label} holds {n} accounts, over its range {range} now: move the weakest out or raise the max"
            ),
            ("under", _, _) => format!(
                "{label} holds {n} accounts, under its range {range} now: feed it from the clusters below"
            ),
            (_, Some(p), Some("over")) => format!(
                "{label} holds {n} accounts now; at the observed rates it reaches about {p:.0} in {horizon_days} days, over its range {range}: plan the room or tighten entry"
            ),
            (_, Some(p), Some("under")) => format!(
                "{label} holds {n} accounts now; at the observed rates it falls to about {p:.0} in {horizon_days} days, under its range {range}: feed it"
            ),
            (_, Some(p), _) => format!(
                "{label} holds {n} accounts, within {range}; about {p:.0} in {horizon_days} days at the observed rates"
            ),
            _ => format!(
                "{label} holds {n} accounts, within {range}; the projection needs movement rates from recorded runs (`abm analyze` on the store)"
            ),
        };
        ClusterCapacity {
            cluster: c.as_str().to_string(),
            accounts: n,
            min,
            max,
            inflow_per_month: inflow,
            outflow_per_month: outflow,
            projected,
            status: now,
            projected_status: then,
            advice,
        }
    })
    .collect();
    CapacityGuidance {
        horizon_days,
        observed: flows,
        clusters,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abm_core::config::{CapacityConfig, CapacityRange};

    fn cap() -> CapacityConfig {
        CapacityConfig {
            cluster_icp: CapacityRange::new(0, 1000),
            future_pipeline: CapacityRange::new(10, 100),
            active_focus: CapacityRange::new(0, 20),
            customer: None,
        }
    }

    #[test]
    fn projections_follow_the_observed_net_rates() {
        let day = |s: &str| Instant::parse(s).unwrap();
        // 30 days: 12 promoted from Future Pipeline to Active Focus, 3 demoted back.
        let mut f = Flows::new(day("2026-01-01"), day("2026-01-31"));
        f.add(Cluster::FuturePipeline, Cluster::ActiveFocus, 12);
        f.add(Cluster::ActiveFocus, Cluster::FuturePipeline, 3);
        f.add(Cluster::ActiveFocus, Cluster::ActiveFocus, 99);
        assert_eq!(f.movements, 15);
        let g = guidance([100, 50, 15, 0, 0], &cap(), Some(f), 90);
        let af = &g.clusters[2];
        // 15 + (12 − 3) / 30 × 90 = 42 > 20.
        assert_eq!(af.projected, Some(42.0));
        assert_eq!((af.status, af.projected_status), ("within", Some("over")));
        assert!(af.advice.contains("about 42 in 90 days"), "{}", af.advice);
        assert!((af.inflow_per_month.unwrap() - 12.0 / 30.0 * DAYS_PER_MONTH).abs() < 1e-6);
        let fp = &g.clusters[1];
        assert_eq!(fp.projected, Some(23.0));
        assert_eq!(fp.projected_status, Some("within"));
        // Never below zero.
        let mut f = Flows::new(day("2026-01-01"), day("2026-01-02"));
        f.add(Cluster::ActiveFocus, Cluster::MonitorOnly, 10);
        let g = guidance([0, 0, 15, 0, 0], &cap(), Some(f), 90);
        assert_eq!(g.clusters[2].projected, Some(0.0));
    }

    #[test]
    fn without_recorded_runs_the_projection_is_null() {
        let g = guidance([100, 5, 30, 0, 0], &cap(), None, 91);
        assert!(g.observed.is_none());
        let fp = &g.clusters[1];
        assert_eq!(
            (fp.status, fp.projected, fp.projected_status),
            ("under", None, None)
        );
        assert_eq!(g.clusters[2].status, "over");
        assert!(g.clusters[0].advice.contains("needs movement rates"));
        let json = serde_json::to_value(&g).unwrap();
        assert!(json["clusters"][0]["projected"].is_null());
        assert!(json["observed"].is_null());
    }
}
