//! # abm-connect — the CRM connectors
//!
//! A connector pulls a CRM's records (companies, engagements, deals), hands them to
//! [`abm_app::App::import_records`] as [`abm_app::records::RecordBatch`]es (the same validation
//! and rejections as a file import), runs the engine, and writes the results back through the
//! store's durable outbox ([`abm_store::outbox`]): every write is stored with an idempotency key
//! before it is sent, and a write whose outcome is unknown is checked before it is repeated.
//!
//! - [`http`]: the HTTP client every connector uses: the CRM's rate-limit headers, 429, 5xx,
//!   timeouts and dropped connections, 401/403 (see [`http::Failure`]).
//! - [`backoff`]: exponential backoff with full jitter.
//! - [`enrich`]: enrichment providers (a file keyed by domain, a JSON API) behind a TTL cache,
//!   filling missing account fields.
//! - [`hubspot`]: HubSpot CRM v3: pull, write-back, delivery of the outbox.
//! - [`news`]: RSS/Atom news → triggers (matching by domain and name, keyword rules).
//! - [`salesforce`]: Salesforce REST: SOQL pull, sObject Collections write-back.

pub mod backoff;
pub mod enrich;
pub mod http;
pub mod hubspot;
pub mod news;
pub mod salesforce;

use abm_app::AppError;
use abm_store::outbox::{OutboxItem, OutboxMark, OutboxStatus};
use abm_store::StoreError;

/// After a write request failed transiently (5xx, timeout, dropped connection): its outbox
/// items are marked `unknown` when the request may have been applied (checked on the CRM before
/// it is sent again), else `failed`; `todo` is updated to match for the retry.
pub(crate) fn mark_transient(
    app: &abm_app::App,
    todo: &mut [OutboxItem],
    reason: &str,
    maybe_applied: bool,
) -> Result<(), ConnectError> {
    let ids: Vec<i64> = todo.iter().map(|i| i.id).collect();
    let mark = if maybe_applied {
        OutboxMark::Unknown { reason }
    } else {
        OutboxMark::Failed { reason }
    };
    app.store()?.outbox_mark(&ids, mark)?;
    if !maybe_applied {
        for i in todo.iter_mut() {
            i.status = OutboxStatus::Failed;
        }
    }
    Ok(())
}

/// Why a sync stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// 401/403: never retried.
    #[error(
        "{crm} refused the credentials ({status}): {message}; check the token and the app's scopes"
    )]
    Unauthorized {
        crm: &'static str,
        status: u16,
        message: String,
    },
    /// The CRM's daily request allowance is spent: nothing more is sent today.
    #[error("{crm}'s daily API limit is reached ({message}); unsent writes stay in the outbox: run the sync again tomorrow")]
    DailyLimit { crm: &'static str, message: String },
    /// A read failed after every retry (5xx, timeouts, dropped connections).
    #[error("{crm} is unavailable for {what} after {attempts} attempts: {reason}")]
    Unavailable {
        crm: &'static str,
        what: String,
        attempts: u32,
        reason: String,
    },
    /// The CRM answered a read with an error.
    #[error("{crm} answered {what} with {status}: {message}")]
    Api {
        crm: &'static str,
        what: String,
        status: u16,
        message: String,
    },
    /// An answer that is not what the CRM documents.
    #[error("unexpected answer from {crm} to {what}: {reason}")]
    Protocol {
        crm: &'static str,
        what: String,
        reason: String,
    },
    #[error(transparent)]
    App(#[from] AppError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
    /// A connector the caller asked for is not set up.
    #[error("{what} is not configured: {how}")]
    NotConfigured {
        what: &'static str,
        how: &'static str,
    },
}
