//! The account views the API and the MCP tools serve: a filtered, paged list; one account's
//! current state; the runs; the review queue by status.

use crate::{views, App, Result, API_VERSION};
use abm_store::listing::{AccountFilter, AccountPage, RunListItem};
use serde::Serialize;

/// One account now: its fields, current state, latest snapshot and open checkpoints.
#[derive(Debug, Clone, Serialize)]
pub struct AccountDetail {
    pub api_version: u32,
    pub account_id: String,
    pub name: String,
    pub fields: serde_json::Value,
    /// The current (effective) cluster; `None` before the first run.
    pub state: Option<views::AccountState>,
    /// The latest run's assessment of it (tier, score, engagement, rule, next action, …).
    pub latest: Option<views::SnapshotView>,
    /// Its pending checkpoints.
    pub open_checkpoints: Vec<views::CheckpointView>,
    /// The structured explanation as of the latest run (criteria with their points, signals,
    /// the decision-table row, next action; docs/explain.md); `null` before the first run.
    pub explanation: Option<abm_core::explanation::Explanation>,
}

/// Which checkpoints to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointStatus {
    Pending,
    Approved,
    Rejected,
    Closed,
    All,
}

impl CheckpointStatus {
    pub fn parse(s: &str) -> Option<CheckpointStatus> {
        Some(match s {
            "pending" => CheckpointStatus::Pending,
            "approved" => CheckpointStatus::Approved,
            "rejected" => CheckpointStatus::Rejected,
            "closed" => CheckpointStatus::Closed,
            "all" => CheckpointStatus::All,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            CheckpointStatus::Pending => "pending",
            CheckpointStatus::Approved => "approved",
            CheckpointStatus::Rejected => "rejected",
            CheckpointStatus::Closed => "closed",
            CheckpointStatus::All => "all",
        }
    }
}

/// What a metrics scrape reads: the queue and the latest run.
#[derive(Debug, Clone, Serialize)]
pub struct QueueStatus {
    pub pending_checkpoints: i64,
    pub latest_run: Option<i64>,
    /// The latest run's as_of, in seconds since the epoch.
    pub latest_run_as_of: Option<f64>,
}

impl App {
    /// A page of accounts matching `filter` (keyset paging: pass `next_cursor` back).
    pub fn list_accounts(&self, filter: &AccountFilter) -> Result<AccountPage> {
        Ok(self.store()?.list_accounts(filter)?)
    }

    /// One account now (`StoreError::NoAccount` when unknown).
    pub fn account(&self, account_id: &str) -> Result<AccountDetail> {
        let h = self.history(account_id)?;
        Ok(AccountDetail {
            api_version: API_VERSION,
            account_id: h.account_id,
            name: h.name,
            fields: h.fields,
            state: h.state,
            latest: h.snapshots.into_iter().max_by_key(|s| s.run),
            open_checkpoints: h
                .checkpoints
                .into_iter()
                .filter(|c| c.status == abm_core::movement::CheckpointStatus::Pending)
                .collect(),
            explanation: match self.latest_as_of()? {
                Some(as_of) => Some(self.explain(account_id, as_of)?),
                None => None,
            },
        })
    }

    /// The latest `limit` runs, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunListItem>> {
        Ok(self.store()?.list_runs(limit)?)
    }

    /// The review queue's items with `status`.
    pub fn checkpoints(&self, status: CheckpointStatus) -> Result<Vec<views::CheckpointView>> {
        let all = self.review_list(status != CheckpointStatus::Pending)?;
        Ok(match status {
            CheckpointStatus::All | CheckpointStatus::Pending => all,
            s => all
                .into_iter()
                .filter(|c| c.status.as_str() == s.as_str())
                .collect(),
        })
    }

    /// Pending checkpoints and the latest run.
    pub fn queue_status(&self) -> Result<QueueStatus> {
        let (pending, run) = self.store()?.queue_status()?;
        Ok(QueueStatus {
            pending_checkpoints: pending,
            latest_run: run.map(|r| r.0),
            latest_run_as_of: run.map(|r| r.1 .0 as f64 / 1e6),
        })
    }
}
