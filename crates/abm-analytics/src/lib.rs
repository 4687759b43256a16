//! Segment analytics: the pure maths of `abm analyze`, `abm backtest` and `abm icp learn`
//! over abm-core's types. No I/O, no clock: the caller loads the data, assesses the accounts
//! and hands over deals, clusters and tiers.
//!
//! - [`stats`]: Wilson intervals, medians, ratios;
//! - [`perf`]: one account's deals in a period, summed per group into the output ROW;
//! - [`analysis`]: CLV/CAC, recommendations, whitespace, forecast, `analytics.json`;
//! - [`fold`]: the accounts summed into their groups (clusters, tiers, segments), in parallel;
//! - [`capacity`]: accounts per cluster against capacity, now and at the observed movement
//!   rates over the next quarter;
//! - [`migration`]: from → to matrices between two runs and cohorts followed over runs;
//! - [`crosssell`]: products held together, and who holds one without the other;
//! - [`backtest`]: did the clusters and tiers of a date predict the deals after it;
//! - [`learn`]: ICP discovery from outcomes before a date, checked on those after it.

pub mod analysis;
pub mod backtest;
pub mod capacity;
pub mod crosssell;
pub mod fold;
pub mod learn;
pub mod migration;
pub mod perf;
pub mod report;
pub mod stats;

pub use analysis::{analyze, Analytics, Group, GroupKind, Spend};
pub use perf::{AccountDeals, GroupAcc, Period, Row, Touch};
