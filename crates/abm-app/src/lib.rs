//! The application layer: the use cases every front end calls — the `abm` command, the HTTP
//! API, the MCP tools, the CRM connectors and the analytics — over one shared store.
//!
//! - **Records in.** [`App::import`] takes files or in-memory [`records::RecordBatch`]es
//!   (API bodies, CRM pages) through the same parsers, validation and per-row rejections.
//! - **Typed views out.** Every answer is a serde value (the store's read models, re-exported
//!   in [`views`]); front ends render them as text or JSON and decide nothing themselves.
//! - **Shareable.** An [`App`] is `Send + Sync` (a pool of store connections behind an `Arc`):
//!   readers run beside one writer; clone it into every handler.
//!
//! Where things go: an HTTP handler or an MCP tool calls an `App` method and serializes the
//! answer; a CRM connector builds a [`records::RecordBatch`] and calls [`App::import_records`];
//! an analytics computation reads views from here and does its maths in pure code.

pub mod access;
pub mod accounts;
pub mod analytics;
pub mod facts;
pub mod ingest;
pub mod records;

use abm_core::{Config, Instant, Rules};
use abm_io::load::{LoadOptions, Rejects};
use abm_store::import::BeforeCommit;
use abm_store::{ImportInputs, ImportReport, RunOptions, RunOutcome, StoreError, StorePool};
use records::{RecordBatch, RecordKind, RejectedItem};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// The version of the JSON shapes this crate's values serialize to (the wire format of the
/// HTTP API and the MCP tools). Raised when a field changes meaning or disappears; adding a
/// field does not raise it.
pub const API_VERSION: u32 = 1;

/// The read models front ends render (typed, serde-ready).
pub mod views {
    pub use abm_core::explanation::{Explained, Explanation};
    pub use abm_store::import::Waiting;
    pub use abm_store::listing::{
        AccountFilter, AccountListItem, AccountPage, Cursor, Moved, RunListItem,
    };
    pub use abm_store::query::{
        AccountState, CheckpointView, DecisionView, ExportRow, History, MovementView, RunInfo,
        SnapshotView, StoreSummary,
    };
    pub use abm_store::reevaluate::{NewCheckpoint, Reassessed, Reevaluation};
    pub use abm_store::review::DecisionOutcome;
    pub use abm_store::transitions::{TransitionCell, Transitions};
    pub use abm_store::{ImportReport, RunReport};
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ingest(#[from] abm_io::IngestError),
    #[error(transparent)]
    Config(#[from] abm_core::config::ConfigError),
    #[error("{0}")]
    Invalid(String),
    #[error("{items} items in one batch; at most {max}")]
    TooManyItems { items: usize, max: usize },
    #[error("writing the answer: {0}")]
    Write(#[from] std::io::Error),
}

pub type Result<T, E = AppError> = std::result::Result<T, E>;

/// How to reach the store.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// A SQLite file path or a `postgres://` URL.
    pub url: String,
    /// How long a writer waits for another writer before [`StoreError::Busy`].
    pub lock_timeout: Duration,
    /// Create (and migrate) the database when it does not exist yet.
    pub create: bool,
    /// Idle connections kept for reuse.
    pub pool_size: usize,
}

impl StoreSettings {
    pub fn new(url: impl Into<String>) -> StoreSettings {
        StoreSettings {
            url: url.into(),
            lock_timeout: abm_store::DEFAULT_LOCK_TIMEOUT,
            create: true,
            pool_size: 4,
        }
    }
}

/// The engine over one store and one config. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct App {
    pool: Arc<StorePool>,
    config: Arc<Config>,
    location: abm_store::Location,
    /// The rules of the latest as_of asked for (the one-account calls and explanations of a
    /// server ask for the same as_of again and again: compiled once).
    rules: Arc<std::sync::Mutex<Option<Arc<Rules>>>>,
}

/// What [`App::import_records`] did: the import's counts, and every item not imported with
/// its batch, index, field and reason.
#[derive(Debug, Clone, Serialize)]
pub struct RecordsImported {
    pub api_version: u32,
    #[serde(flatten)]
    pub report: ImportReport,
    pub rejected_items: Vec<RejectedItem>,
}

/// A run's progress and status messages.
#[derive(Clone, Copy)]
pub struct RunObserver<'a> {
    pub log: &'a (dyn Fn(&str) + Sync),
    pub progress: &'a (dyn Fn(&str, u64, u64) + Sync),
}

impl Default for RunObserver<'_> {
    fn default() -> Self {
        RunObserver {
            log: &|_| {},
            progress: &|_, _, _| {},
        }
    }
}

impl App {
    /// Open (with `settings.create`, create and migrate) the store.
    pub fn open(settings: &StoreSettings, config: Config) -> Result<App> {
        let pool = StorePool::open_with(
            &settings.url,
            settings.lock_timeout,
            settings.create,
            settings.pool_size,
        )?;
        Ok(App {
            pool,
            config: Arc::new(config),
            location: abm_store::Location::parse(&settings.url),
            rules: Arc::default(),
        })
    }

    /// This config's rules as of `as_of`: compiled once, then re-dated (`Rules::at`) when
    /// another as_of is asked for (a server's "as of now" changes on every request).
    pub(crate) fn rules_at(&self, as_of: Instant) -> Result<Arc<Rules>> {
        let mut kept = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        let r = match kept.as_ref() {
            Some(r) if r.as_of == as_of => return Ok(r.clone()),
            Some(r) => Arc::new(r.at(as_of)),
            None => Arc::new(Rules::compile(&self.config, as_of)?),
        };
        *kept = Some(r.clone());
        Ok(r)
    }

    /// The compiled rules at whatever as_of was asked for last (for work that reads only the
    /// config's vocabularies, such as an import).
    fn any_rules(&self) -> Result<Arc<Rules>> {
        let kept = self.rules.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match kept {
            Some(r) => Ok(r),
            None => self.rules_at(abm_store::wall_clock()),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Where the store is (for messages; a URL's password is never part of it).
    pub fn location(&self) -> &abm_store::Location {
        &self.location
    }

    /// A connection of the pool, for what this layer does not cover yet.
    pub fn store(&self) -> Result<abm_store::PooledStore> {
        Ok(self.pool.get()?)
    }

    /// Load options for this config (callers set progress, threads, tuning, preset on it).
    pub fn load_options(&self) -> LoadOptions<'_> {
        LoadOptions::new(&self.config)
    }

    /// Import files or in-memory inputs in one transaction. `before_commit` gets the
    /// rejected rows once every row is written and before the commit (an error from it rolls
    /// the import back: rejected rows are never lost).
    pub fn import(
        &self,
        inputs: &ImportInputs,
        opts: &LoadOptions<'_>,
        before_commit: BeforeCommit<'_>,
    ) -> Result<ImportReport> {
        // A file import may run a first load outside WAL mode, which needs the database's only
        // connection: the pool's checkpointer closes its own meanwhile.
        let _paused = inputs.has_files().then(|| self.pool.pause_checkpoints());
        Ok(self.pool.get()?.import_with(inputs, opts, before_commit)?)
    }

    /// Import batches of records (at most one per kind; more engagement batches are allowed)
    /// in one transaction, with the same validation as files. Rejections come back by batch
    /// and index; nothing is written to disk.
    pub fn import_records(&self, batches: &[RecordBatch]) -> Result<RecordsImported> {
        let mut inputs = ImportInputs::default();
        let mut rejected_items = Vec::new();
        let mut names: Vec<(String, RecordKind)> = Vec::new();
        for b in batches {
            let (input, rejected) = b.to_input();
            rejected_items.extend(rejected);
            if b.has_no_objects() {
                continue;
            }
            if names.iter().any(|(n, _)| *n == b.name) {
                return Err(AppError::Invalid(format!(
                    "two batches are named {:?}: give each its own name",
                    b.name
                )));
            }
            names.push((b.name.clone(), b.kind));
            let slot = match b.kind {
                RecordKind::Accounts => &mut inputs.accounts,
                RecordKind::Triggers => &mut inputs.triggers,
                RecordKind::Deals => &mut inputs.deals,
                RecordKind::Engagement => {
                    if inputs.engagement.is_some() {
                        inputs.more_engagement.push(input);
                        continue;
                    }
                    &mut inputs.engagement
                }
            };
            if slot.is_some() {
                return Err(AppError::Invalid(format!(
                    "more than one {} batch in one import",
                    b.kind.as_str()
                )));
            }
            *slot = Some(input);
        }
        let rules = self.any_rules()?;
        let mut opts = LoadOptions::new(&self.config);
        // In-memory batches are small: one thread, no blocks to cut.
        opts.threads = 1;
        opts.rules = Some(&rules);
        let report = self.pool.get()?.import(&inputs, &opts)?;
        for r in &report.rejects.rows {
            let kind = names
                .iter()
                .find(|(n, _)| *n == r.file)
                .map(|(_, k)| *k)
                .unwrap_or(RecordKind::Accounts);
            rejected_items.push(RejectedItem {
                kind,
                index: (r.line.max(1) - 1) as usize,
                field: r.column.clone(),
                reason: r.reason.clone(),
            });
        }
        rejected_items.sort_by_key(|x| (x.kind as u8, x.index));
        Ok(RecordsImported {
            api_version: API_VERSION,
            report,
            rejected_items,
        })
    }

    /// Evaluate every stored account as of `as_of` (default: the wall clock) and record the
    /// run. One transaction; a second writer waits, then fails with `Busy`.
    ///
    /// Only the accounts with new data, a decision or a due instant are assessed (all of them
    /// after a config change); see [`App::run_full`].
    pub fn run(
        &self,
        as_of: Option<Instant>,
        threads: Option<usize>,
        observe: RunObserver<'_>,
    ) -> Result<RunOutcome> {
        self.run_with(as_of, threads, false, observe)
    }

    /// [`App::run`] assessing every account (`abm run --full`): the same outcome, the long way.
    pub fn run_full(
        &self,
        as_of: Option<Instant>,
        threads: Option<usize>,
        observe: RunObserver<'_>,
    ) -> Result<RunOutcome> {
        self.run_with(as_of, threads, true, observe)
    }

    fn run_with(
        &self,
        as_of: Option<Instant>,
        threads: Option<usize>,
        full: bool,
        observe: RunObserver<'_>,
    ) -> Result<RunOutcome> {
        let rules = Rules::compile(&self.config, as_of.unwrap_or_else(abm_store::wall_clock))?;
        let opts = RunOptions {
            as_of: rules.as_of,
            full,
            threads: threads.unwrap_or_else(abm_io::default_threads).max(1),
            log: observe.log,
            progress: observe.progress,
        };
        Ok(self.pool.get()?.run(&rules, &opts)?)
    }

    /// Re-assess the given stored accounts from their stored data as of `as_of` (default:
    /// the wall clock, or the latest run's as_of when that is later) and record the outcome
    /// under the latest run, as a review decision is (`abm_store::reevaluate`): current row,
    /// state, movement, checkpoints. One short transaction; reads by index only.
    pub fn reevaluate(
        &self,
        account_ids: &[String],
        as_of: Option<Instant>,
    ) -> Result<views::Reevaluation> {
        let mut store = self.pool.get()?;
        let as_of = match as_of {
            Some(t) => t,
            None => {
                let now = abm_store::wall_clock();
                store.latest_as_of()?.map_or(now, |latest| latest.max(now))
            }
        };
        let rules = self.rules_at(as_of)?;
        Ok(store.reevaluate(&rules, account_ids)?)
    }

    /// The next run's decisions under `new` against those under this config, nothing
    /// recorded (`abm whatif` on the store). `as_of` defaults to the latest run's.
    pub fn preview(
        &self,
        new: &Config,
        as_of: Option<Instant>,
        threads: Option<usize>,
        observe: RunObserver<'_>,
    ) -> Result<abm_core::whatif::WhatIf> {
        let mut store = self.pool.get()?;
        let as_of = match as_of {
            Some(t) => t,
            None => store.summary()?.as_of,
        };
        let old = Rules::compile(&self.config, as_of)?;
        let new = Rules::compile(new, as_of)?;
        let opts = RunOptions {
            as_of,
            full: false,
            threads: threads.unwrap_or_else(abm_io::default_threads).max(1),
            log: observe.log,
            progress: observe.progress,
        };
        Ok(store.preview(&old, &new, &opts)?)
    }

    /// The as_of of the latest run (`None` before the first).
    pub fn latest_as_of(&self) -> Result<Option<Instant>> {
        Ok(self.pool.get()?.latest_as_of()?)
    }

    /// The whole reasoning for one stored account as of `as_of`: what a run then would compute
    /// and decide for it from its current state, with that state (`abm explain ID` on the
    /// database). Read by index; nothing is written.
    pub fn explain(
        &self,
        account_id: &str,
        as_of: Instant,
    ) -> Result<abm_core::explanation::Explanation> {
        let rules = self.rules_at(as_of)?;
        Ok(self.pool.get()?.explain(account_id, &rules)?)
    }

    /// Counts of the latest run, capacity and the review queue.
    pub fn summary(&self) -> Result<views::StoreSummary> {
        Ok(self.pool.get()?.summary()?)
    }

    /// Promotions and demotions, oldest first.
    pub fn movements(&self, since: Option<Instant>) -> Result<Vec<views::MovementView>> {
        Ok(self.pool.get()?.movements(since)?)
    }

    /// One account's snapshots, movements, checkpoints and decisions.
    pub fn history(&self, account_id: &str) -> Result<views::History> {
        Ok(self.pool.get()?.history(account_id)?)
    }

    /// Rows waiting for an account not imported yet.
    pub fn waiting(&self, limit: usize) -> Result<views::Waiting> {
        Ok(self.pool.get()?.waiting(limit)?)
    }

    /// The review queue (pending items, or all with `all`).
    pub fn review_list(&self, all: bool) -> Result<Vec<views::CheckpointView>> {
        Ok(self.pool.get()?.review_list(all)?)
    }

    /// Approve (`true`) or reject a pending checkpoint, recorded with the reviewer's name.
    pub fn decide(
        &self,
        id: i64,
        approve: bool,
        reviewer: &str,
        comment: Option<&str>,
    ) -> Result<views::DecisionOutcome> {
        let mut store = self.pool.get()?;
        Ok(if approve {
            store.approve(id, reviewer, comment)?
        } else {
            store.reject(id, reviewer, comment)?
        })
    }

    /// Stream the latest run's rows, `account_id` order, to `f`.
    pub fn export(
        &self,
        f: &mut dyn FnMut(&views::ExportRow) -> Result<(), StoreError>,
    ) -> Result<views::RunInfo> {
        Ok(self.pool.get()?.export(f)?)
    }
}

/// The rejected rows of an import, for callers that write them out.
pub type Rejected = Rejects;

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn app_is_shareable() {
        assert_send_sync::<App>();
    }
}
