//! The domain's vocabulary: tiers, engagement levels, clusters, event kinds.

use serde::{Deserialize, Serialize};
use std::fmt;

/// ICP tier, A (best fit) to E.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Tier {
    A,
    B,
    C,
    D,
    E,
}

impl Tier {
    pub const ALL: [Tier; 5] = [Tier::A, Tier::B, Tier::C, Tier::D, Tier::E];

    pub fn parse(s: &str) -> Option<Tier> {
        match s.trim() {
            "A" | "a" => Some(Tier::A),
            "B" | "b" => Some(Tier::B),
            "C" | "c" => Some(Tier::C),
            "D" | "d" => Some(Tier::D),
            "E" | "e" => Some(Tier::E),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        ["A", "B", "C", "D", "E"][self as usize]
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// Distance in tiers (A..E).
    pub fn distance(self, other: Tier) -> usize {
        (self as usize).abs_diff(other as usize)
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Engagement level (SPEC §4.2). Ordered: None < Low < Medium < High.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum EngagementLevel {
    #[default]
    None = 0,
    Low = 1,
    Medium = 2,
    High = 3,
}

impl EngagementLevel {
    pub const ALL: [EngagementLevel; 4] = [
        EngagementLevel::None,
        EngagementLevel::Low,
        EngagementLevel::Medium,
        EngagementLevel::High,
    ];

    pub fn as_str(self) -> &'static str {
        ["none", "low", "medium", "high"][self as usize]
    }

    pub fn from_u8(v: u8) -> EngagementLevel {
        Self::ALL[(v as usize).min(3)]
    }

    pub fn parse(s: &str) -> Option<EngagementLevel> {
        Self::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

impl fmt::Display for EngagementLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The four clusters of the playbook, and the `customer` track (`[customers] mode = "track"`:
/// an account with a deal won by as_of leaves the prospect clusters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cluster {
    ClusterIcp,
    FuturePipeline,
    ActiveFocus,
    MonitorOnly,
    Customer,
}

impl Cluster {
    /// Every cluster, the customer track last (its index is 4).
    pub const ALL: [Cluster; 5] = [
        Cluster::ClusterIcp,
        Cluster::FuturePipeline,
        Cluster::ActiveFocus,
        Cluster::MonitorOnly,
        Cluster::Customer,
    ];

    /// The playbook's four clusters (what the decision table can give).
    pub const PROSPECT: [Cluster; 4] = [
        Cluster::ClusterIcp,
        Cluster::FuturePipeline,
        Cluster::ActiveFocus,
        Cluster::MonitorOnly,
    ];

    /// How many clusters there are (the size of per-cluster arrays).
    pub const COUNT: usize = 5;

    pub fn as_str(self) -> &'static str {
        match self {
            Cluster::ClusterIcp => "cluster_icp",
            Cluster::FuturePipeline => "future_pipeline",
            Cluster::ActiveFocus => "active_focus",
            Cluster::MonitorOnly => "monitor_only",
            Cluster::Customer => "customer",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Cluster::ClusterIcp => "Cluster ICP",
            Cluster::FuturePipeline => "Future Pipeline",
            Cluster::ActiveFocus => "Active Focus",
            Cluster::MonitorOnly => "Monitor Only",
            Cluster::Customer => "Customer",
        }
    }

    pub fn parse(s: &str) -> Option<Cluster> {
        Self::ALL.into_iter().find(|c| c.as_str() == s.trim())
    }

    /// Position in the promotion order `cluster_icp < future_pipeline < active_focus`;
    /// Monitor Only and the customer track sit outside it (SPEC §4.5).
    pub fn rank(self) -> Option<u8> {
        match self {
            Cluster::ClusterIcp => Some(0),
            Cluster::FuturePipeline => Some(1),
            Cluster::ActiveFocus => Some(2),
            Cluster::MonitorOnly | Cluster::Customer => None,
        }
    }

    /// The clusters to list for a set of counts: the four always, the customer track only
    /// when it holds accounts (a run without the track reads as before it existed).
    pub fn listed(customers: u64) -> &'static [Cluster] {
        if customers > 0 {
            &Self::ALL
        } else {
            &Self::PROSPECT
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an engagement event type means, from the config's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventClass {
    /// Counts toward the engagement level at this level.
    Engagement(EngagementLevel),
    /// `champion_left`, `budget_cycle_missed`, `no_priority`: not engagement; feeds demotion rules.
    DemotionSignal,
}
