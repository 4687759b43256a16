//! Cluster counts against capacity (SPEC §4.5, §4.7).

use crate::config::CapacityConfig;
use crate::model::Cluster;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClusterCounts {
    pub cluster_icp: u64,
    pub future_pipeline: u64,
    pub active_focus: u64,
    pub monitor_only: u64,
    /// The customer track (`[customers] mode = "track"`); left out of the JSON when 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub customer: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ClusterCounts {
    pub fn add(&mut self, c: Cluster) {
        *self.get_mut(c) += 1;
    }

    /// One account fewer in `c` (saturating).
    pub fn sub(&mut self, c: Cluster) {
        let n = self.get_mut(c);
        *n = n.saturating_sub(1);
    }

    pub fn get(&self, c: Cluster) -> u64 {
        match c {
            Cluster::ClusterIcp => self.cluster_icp,
            Cluster::FuturePipeline => self.future_pipeline,
            Cluster::ActiveFocus => self.active_focus,
            Cluster::MonitorOnly => self.monitor_only,
            Cluster::Customer => self.customer,
        }
    }

    fn get_mut(&mut self, c: Cluster) -> &mut u64 {
        match c {
            Cluster::ClusterIcp => &mut self.cluster_icp,
            Cluster::FuturePipeline => &mut self.future_pipeline,
            Cluster::ActiveFocus => &mut self.active_focus,
            Cluster::MonitorOnly => &mut self.monitor_only,
            Cluster::Customer => &mut self.customer,
        }
    }

    pub fn merge(&mut self, o: &ClusterCounts) {
        for c in Cluster::ALL {
            *self.get_mut(c) += o.get(c);
        }
    }

    pub fn total(&self) -> u64 {
        Cluster::ALL.iter().map(|c| self.get(*c)).sum()
    }
}

/// Where a cluster's count stands against its capacity: a stable code (`under`, `ok`, `over`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapacityLevel {
    Under,
    Ok,
    Over,
}

impl CapacityLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            CapacityLevel::Under => "under",
            CapacityLevel::Ok => "ok",
            CapacityLevel::Over => "over",
        }
    }
}

impl std::fmt::Display for CapacityLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Capacity status of one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapacityStatus {
    /// `ok` or `over` (Active Focus above its max: a `capacity` checkpoint).
    pub active_focus: CapacityLevel,
    pub active_focus_max: u64,
    /// Human-readable warnings for every count outside its range.
    pub warnings: Vec<String>,
}

pub fn capacity_status(counts: &ClusterCounts, cap: &CapacityConfig) -> CapacityStatus {
    let mut warnings = Vec::new();
    let total = counts.total();
    for c in [
        Cluster::ClusterIcp,
        Cluster::FuturePipeline,
        Cluster::ActiveFocus,
        Cluster::Customer,
    ] {
        // The customer track has a capacity only when one is configured.
        let Some(r) = cap.of(c) else { continue };
        let n = counts.get(c);
        let (min, max) = r.bounds(total);
        if n < min {
            warnings.push(format!(
                "{} has {n} accounts, below the recommended {}",
                c.label(),
                r.describe(total)
            ));
        } else if n > max {
            warnings.push(format!(
                "{} has {n} accounts, above the recommended {}",
                c.label(),
                r.describe(total)
            ));
        }
    }
    let af_max = cap.active_focus.bounds(total).1;
    CapacityStatus {
        active_focus: if counts.active_focus > af_max {
            CapacityLevel::Over
        } else {
            CapacityLevel::Ok
        },
        active_focus_max: af_max,
        warnings,
    }
}

/// Why a run's outcome is degenerate (every account in one cluster), in words, for the
/// summary: e.g. "every account is in Monitor Only: no score above 45; criteria without data:
/// employees, annual_revenue". `max_score` is the highest score computed from the criteria
/// (`None` when every score came from the input). Empty when nothing needs saying.
pub fn outcome_notes(
    counts: &ClusterCounts,
    max_score: Option<f64>,
    without_data: &[String],
) -> Vec<String> {
    let mut notes = Vec::new();
    let total = counts.total();
    if total == 0 {
        return notes;
    }
    if let Some(c) = Cluster::ALL.into_iter().find(|c| counts.get(*c) == total) {
        let mut why = Vec::new();
        if c == Cluster::MonitorOnly {
            if let Some(m) = max_score {
                why.push(format!(
                    "no score above {}",
                    crate::scoring::format_score(m)
                ));
            }
        }
        if !without_data.is_empty() {
            why.push(format!(
                "criteria without data: {}",
                without_data.join(", ")
            ));
        }
        let who = if total == 1 {
            "the only account is"
        } else {
            "every account is"
        };
        if why.is_empty() {
            notes.push(format!("{who} in {}", c.label()));
        } else {
            notes.push(format!("{who} in {}: {}", c.label(), why.join("; ")));
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CapacityRange;

    #[test]
    fn degenerate_outcomes_are_explained() {
        let mut c = ClusterCounts::default();
        for _ in 0..3 {
            c.add(Cluster::MonitorOnly);
        }
        let nd = vec!["employees".to_string(), "annual_revenue".to_string()];
        assert_eq!(
            outcome_notes(&c, Some(45.0), &nd),
            vec![
                "every account is in Monitor Only: no score above 45; criteria without data: \
                 employees, annual_revenue"
            ]
        );
        c.add(Cluster::ClusterIcp);
        assert!(outcome_notes(&c, Some(90.0), &nd).is_empty());
    }

    #[test]
    fn over_and_under() {
        let cap = CapacityConfig::default();
        let mut c = ClusterCounts::default();
        for _ in 0..31 {
            c.add(Cluster::ActiveFocus);
        }
        for _ in 0..200 {
            c.add(Cluster::ClusterIcp);
        }
        let s = capacity_status(&c, &cap);
        assert_eq!(s.active_focus, CapacityLevel::Over);
        assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
        assert!(s.warnings[0].contains("Future Pipeline has 0"));
        assert!(s.warnings[1].contains("Active Focus has 31"));
        c.active_focus = 30;
        assert_eq!(capacity_status(&c, &cap).active_focus, CapacityLevel::Ok);
    }

    /// The customer track: no capacity, no warning; a configured one warns like the others.
    #[test]
    fn customer_capacity_is_optional() {
        let mut cap = CapacityConfig::default();
        let mut c = ClusterCounts {
            cluster_icp: 200,
            future_pipeline: 60,
            active_focus: 20,
            monitor_only: 0,
            customer: 500,
        };
        assert!(capacity_status(&c, &cap).warnings.is_empty());
        assert_eq!(c.total(), 780);
        assert_eq!(
            serde_json::to_value(&c).unwrap()["customer"],
            serde_json::json!(500)
        );
        cap.customer = Some(CapacityRange::new(0, 300));
        assert_eq!(
            capacity_status(&c, &cap).warnings,
            vec!["Customer has 500 accounts, above the recommended 0–300"]
        );
        // Without customers the counts' JSON is as before the track existed.
        c.customer = 0;
        assert!(serde_json::to_value(&c).unwrap().get("customer").is_none());
    }

    /// Issue 13: "capacity ranges are absolute, so a 99-account book warns on every run".
    #[test]
    fn capacity_as_a_share_of_accounts() {
        let cap: CapacityConfig = toml::from_str(
            "[cluster_icp]\nmin_share = 0.2\nmax_share = 0.6\n\
             [future_pipeline]\nmin_share = 0.1\nmax_share = 0.4\n\
             [active_focus]\nmin_share = 0.05\nmax_share = 0.2\n",
        )
        .unwrap();
        let mut c = ClusterCounts::default();
        for (cl, n) in [
            (Cluster::ClusterIcp, 40),
            (Cluster::FuturePipeline, 25),
            (Cluster::ActiveFocus, 14),
            (Cluster::MonitorOnly, 20),
        ] {
            for _ in 0..n {
                c.add(cl);
            }
        }
        let s = capacity_status(&c, &cap);
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        assert_eq!(
            (s.active_focus, s.active_focus_max),
            (CapacityLevel::Ok, 20)
        );
        c.active_focus += 10;
        let s = capacity_status(&c, &cap);
        assert_eq!(s.active_focus, CapacityLevel::Over);
        assert_eq!(
            s.warnings,
            vec!["Active Focus has 24 accounts, above the recommended 5%–20% of accounts (5–22)"]
        );
        // The default stays absolute.
        let d = CapacityConfig::default();
        assert_eq!(d.active_focus.bounds(99), (10, 30));
        assert_eq!(d.active_focus.describe(99), "10–30");
    }
}
