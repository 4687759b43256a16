//! The account views the API and the MCP tools serve: a filtered, paged list; one account's
//! current state; the runs; the review queue by status.

use crate::{views, App, Result, API_VERSION};
use abm_store::listing::{AccountFilter, AccountPage, RunListItem, MAX_PAGE};
use abm_store::transitions::Transitions;
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

/// The columns of [`App::accounts_csv`].
pub const ACCOUNTS_CSV_HEADER: [&str; 8] = [
    "account_id",
    "name",
    "cluster",
    "tier",
    "icp_score",
    "engagement_level",
    "micro_segment",
    "next_action",
];

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
        // One connection for the three reads (a by-id request is mostly overhead otherwise).
        // One read transaction too: the state and the explanation from the same snapshot.
        let mut store = self.store()?;
        let (h, explanation) = store.account_detail(account_id, |as_of| self.rules_at(as_of))?;
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
            explanation,
        })
    }

    /// Every account matching `filter` (its cursor and limit ignored) as CSV, header first,
    /// handed to `out` a page at a time (so a download of a million rows never holds them
    /// all). Cells a spreadsheet would evaluate are neutralised as in every abm CSV. Returns
    /// the rows written; an error from `out` (the client went away) stops it.
    pub fn accounts_csv(
        &self,
        filter: &AccountFilter,
        out: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<u64> {
        use abm_io::output::csv_output_line;
        let mut buf = Vec::with_capacity(1 << 16);
        csv_output_line(&mut buf, ACCOUNTS_CSV_HEADER);
        let mut f = filter.clone();
        f.limit = MAX_PAGE;
        f.cursor = None;
        let mut rows = 0u64;
        loop {
            let page = self.list_accounts(&f)?;
            for i in &page.items {
                fn o(v: &Option<String>) -> &str {
                    v.as_deref().unwrap_or("")
                }
                csv_output_line(
                    &mut buf,
                    [
                        i.account_id.as_str(),
                        i.name.as_str(),
                        o(&i.cluster),
                        o(&i.tier),
                        o(&i.icp_score),
                        o(&i.engagement_level),
                        o(&i.micro_segment),
                        o(&i.next_action),
                    ],
                );
                rows += 1;
            }
            out(&buf)?;
            buf.clear();
            match page
                .next_cursor
                .as_deref()
                .and_then(abm_store::listing::Cursor::parse)
            {
                Some(c) => f.cursor = Some(c),
                None => return Ok(rows),
            }
        }
    }

    /// Run `run`'s transition matrix against the run before it: from → to cluster counts,
    /// exact, from the change-only snapshot history (`AppError::Store(UnknownRun)` when no
    /// such run).
    pub fn transitions(&self, run: i64) -> Result<Transitions> {
        Ok(self.store()?.transitions(run)?)
    }

    /// The list items (cluster, tier, score, engagement, next action) of the accounts `ids`.
    pub fn accounts_by_id(&self, ids: &[&str]) -> Result<Vec<abm_store::listing::AccountListItem>> {
        Ok(self.store()?.accounts_by_id(ids)?)
    }

    /// The oldest `limit` pending checkpoints and how many are pending (the dashboard's queue:
    /// never every item at once).
    pub fn pending_page(&self, limit: usize) -> Result<(Vec<views::CheckpointView>, i64)> {
        Ok(self.store()?.pending_page(limit)?)
    }

    /// The latest `limit` approvals and rejections, newest first.
    pub fn recent_decisions(&self, limit: usize) -> Result<Vec<views::CheckpointView>> {
        Ok(self.store()?.recent_decisions(limit)?)
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
