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
    /// The accounts of the valid items re-assessed at once (`App::reevaluate`): each one's
    /// new cluster and any checkpoint opened. `null` when nothing new was stored or before
    /// the first run (the first `abm run` assesses everything).
    pub reevaluated: Option<crate::views::Reevaluation>,
}

impl App {
    /// Import one batch of at most [`MAX_BATCH`] items of `kind` in one transaction, through
    /// the same validation as a file: a bad item is rejected by index and never drops the
    /// good ones; a re-sent item adds nothing (an event's `event_id`, else its content).
    ///
    /// When something new was stored, the accounts the valid items name are re-assessed at
    /// once as of `as_of` (default: now, or the latest run's as_of when later) and recorded
    /// under the latest run (`App::reevaluate`), in a transaction of their own right after
    /// the import's (a crash between the two leaves the data stored; the next run assesses it).
    pub fn ingest(
        &self,
        kind: RecordKind,
        items: Vec<serde_json::Value>,
        as_of: Option<abm_core::Instant>,
    ) -> Result<Ingested> {
        if items.len() > MAX_BATCH {
            return Err(AppError::TooManyItems {
                items: items.len(),
                max: MAX_BATCH,
            });
        }
        // An as_of the re-evaluation would refuse is refused before anything is stored.
        if let (Some(as_of), Some(latest)) = (as_of, self.latest_as_of()?) {
            if as_of < latest {
                return Err(AppError::Store(abm_store::StoreError::AsOfBeforeLatest {
                    as_of,
                    latest,
                    run: self.summary()?.run,
                }));
            }
        }
        let n = items.len();
        let batch = RecordBatch::new(kind, format!("api:{}", kind.as_str()), items);
        let done = self.import_records(std::slice::from_ref(&batch))?;
        let items = batch.items;
        let r = &done.report;
        let new = match kind {
            RecordKind::Accounts => r.accounts_changed,
            RecordKind::Engagement => r.events_added,
            RecordKind::Triggers => r.triggers_added,
            RecordKind::Deals => r.deals_changed,
        } + r.waiting_added;
        let rejected = done.rejected_items.len();
        let accepted = (new as usize).min(n - rejected);
        let reevaluated = if accepted > 0 && self.latest_as_of()?.is_some() {
            let bad: std::collections::HashSet<usize> =
                done.rejected_items.iter().map(|r| r.index).collect();
            let touched: Vec<String> = items
                .iter()
                .enumerate()
                .filter(|(i, _)| !bad.contains(i))
                .filter_map(|(_, item)| account_of(item))
                .collect();
            Some(self.reevaluate(&touched, as_of)?)
        } else {
            None
        };
        Ok(Ingested {
            api_version: API_VERSION,
            kind,
            items: n,
            accepted,
            duplicate: n - rejected - accepted,
            rejected,
            rejected_items: done.rejected_items,
            data_version: r.data_version,
            reevaluated,
        })
    }
}

/// The account an item names (`account_id`, text or number, trimmed as the loader reads it).
fn account_of(item: &serde_json::Value) -> Option<String> {
    match item.get("account_id")? {
        serde_json::Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
