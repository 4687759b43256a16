//! Live ingest: one batch of records of one kind (an API body, an MCP tool call) imported in
//! one transaction, answered with how many items were new, already stored, or rejected.

use crate::records::{RecordBatch, RecordKind, RejectedItem};
use crate::{App, AppError, Result, API_VERSION};
use serde::Serialize;

/// The most items one [`App::ingest`] call takes.
pub const MAX_BATCH: usize = 10_000;

/// What [`App::ingest`] did. `accepted + duplicate + rejected` is the number of items.
#[derive(Debug, Clone, Serialize)]
pub struct Ingested {
    pub api_version: u32,
    pub kind: RecordKind,
    pub items: usize,
    /// Items new to the store (for accounts and deals: new or changed), including rows kept
    /// waiting for an account not imported yet.
    pub accepted: usize,
    /// Valid items the store already held (a re-sent batch is all duplicates).
    pub duplicate: usize,
    pub rejected: usize,
    /// Every rejected item with its index, field and reason.
    pub rejected_items: Vec<RejectedItem>,
    /// `meta.data_version` after the import.
    pub data_version: i64,
    // TODO(one-account run): each touched account's new cluster and any new checkpoint, once
    // the store re-evaluates the accounts an import touches.
}

impl App {
    /// Import one batch of at most [`MAX_BATCH`] items of `kind` in one transaction, through
    /// the same validation as a file: a bad item is rejected by index and never drops the
    /// good ones; a re-sent item adds nothing (an event's `event_id`, else its content).
    pub fn ingest(&self, kind: RecordKind, items: Vec<serde_json::Value>) -> Result<Ingested> {
        if items.len() > MAX_BATCH {
            return Err(AppError::TooManyItems {
                items: items.len(),
                max: MAX_BATCH,
            });
        }
        let n = items.len();
        let batch = RecordBatch::new(kind, format!("api:{}", kind.as_str()), items);
        let done = self.import_records(std::slice::from_ref(&batch))?;
        let r = &done.report;
        let new = match kind {
            RecordKind::Accounts => r.accounts_changed,
            RecordKind::Engagement => r.events_added,
            RecordKind::Triggers => r.triggers_added,
            RecordKind::Deals => r.deals_changed,
        } + r.waiting_added;
        let rejected = done.rejected_items.len();
        let accepted = (new as usize).min(n - rejected);
        Ok(Ingested {
            api_version: API_VERSION,
            kind,
            items: n,
            accepted,
            duplicate: n - rejected - accepted,
            rejected,
            rejected_items: done.rejected_items,
            data_version: r.data_version,
        })
    }
}
