//! Cluster counts against capacity (SPEC §4.5, §4.7).

use crate::config::CapacityConfig;
use crate::model::Cluster;
use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClusterCounts {
    pub cluster_icp: u64,
    pub future_pipeline: u64,
    pub active_focus: u64,
    pub monitor_only: u64,
}

impl ClusterCounts {
    pub fn add(&mut self, c: Cluster) {
        *self.get_mut(c) += 1;
    }

    pub fn get(&self, c: Cluster) -> u64 {
        match c {
            Cluster::ClusterIcp => self.cluster_icp,
            Cluster::FuturePipeline => self.future_pipeline,
            Cluster::ActiveFocus => self.active_focus,
            Cluster::MonitorOnly => self.monitor_only,
        }
    }

    fn get_mut(&mut self, c: Cluster) -> &mut u64 {
        match c {
            Cluster::ClusterIcp => &mut self.cluster_icp,
            Cluster::FuturePipeline => &mut self.future_pipeline,
            Cluster::ActiveFocus => &mut self.active_focus,
            Cluster::MonitorOnly => &mut self.monitor_only,
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

/// Capacity status of one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CapacityStatus {
    /// `ok` or `over` (Active Focus above its max: a `capacity` checkpoint).
    pub active_focus: &'static str,
    pub active_focus_max: u64,
    /// Human-readable warnings for every count outside its range.
    pub warnings: Vec<String>,
}

pub fn capacity_status(counts: &ClusterCounts, cap: &CapacityConfig) -> CapacityStatus {
    let mut warnings = Vec::new();
    for c in [
        Cluster::ClusterIcp,
        Cluster::FuturePipeline,
        Cluster::ActiveFocus,
    ] {
        let r = cap.of(c).expect("clustered");
        let n = counts.get(c);
        if n < r.min {
            warnings.push(format!(
                "{} has {n} accounts, below the recommended {}–{}",
                c.label(),
                r.min,
                r.max
            ));
        } else if n > r.max {
            warnings.push(format!(
                "{} has {n} accounts, above the recommended {}–{}",
                c.label(),
                r.min,
                r.max
            ));
        }
    }
    CapacityStatus {
        active_focus: if counts.active_focus > cap.active_focus.max {
            "over"
        } else {
            "ok"
        },
        active_focus_max: cap.active_focus.max,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(s.active_focus, "over");
        assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
        assert!(s.warnings[0].contains("Future Pipeline has 0"));
        assert!(s.warnings[1].contains("Active Focus has 31"));
        c.active_focus = 30;
        assert_eq!(capacity_status(&c, &cap).active_focus, "ok");
    }
}
