//! # abm-core — the pure domain core of the Cluster ABM engine
//!
//! No I/O happens here: no files, no network, no clock. Every function takes an `as_of` and
//! returns the same answer for the same inputs.
//!
//! # Layout
//! - [`time`]: instants, the accepted date forms.
//! - [`model`]: tiers, engagement levels, clusters.
//! - [`config`]: `abm.toml` as data, with SPEC.md's defaults.
//! - [`config_diff`]: the rule changes between two configs, in words.
//! - [`rules`]: the config compiled for one `as_of` (vocabularies, windows, decision table).
//! - [`account`]: the compact account table.
//! - [`scoring`]: ICP score and tier with a per-criterion explanation.
//! - [`engagement`]: the per-account accumulator, deals, triggers, demotion signals.
//! - [`assess`]: one account's stateless assessment, next action, micro-segment, rationale.
//! - [`explanation`]: the whole reasoning for one account as a typed value, and its text.
//! - [`movement`]: stateful runs: promotions, demotions with hysteresis, proposals.
//! - [`summary`]: counts against capacity.
//! - [`whatif`]: two assessments of one account compared (what a rule change would do).

pub mod account;
pub mod assess;
pub mod config;
pub mod config_diff;
pub mod engagement;
pub mod enrichment;
pub mod explanation;
pub mod horizon;
pub mod inputs;
pub mod model;
pub mod movement;
pub mod rules;
pub mod scoring;
pub mod segments;
pub mod summary;
pub mod time;
#[cfg(test)]
mod time_proptests;
pub mod whatif;

pub use account::{AccountIdx, AccountRef, AccountSchema, AccountTable, Firmographics};
pub use assess::{assess, Assessment, Conflict, Facts};
pub use config::{Config, ConfigError};
pub use engagement::{Deal, DealOutcome, DealStatus, EngagementState, Signal, Trigger, Verdict};
pub use model::{Cluster, EngagementLevel, Tier};
pub use rules::{DecisionTable, Rules};
pub use scoring::{score_account, ScoreResult, ScoringModel};
pub use time::Instant;
