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
//! - [`safe_fetch`]: fetching a URL a server's caller named (news feeds) without SSRF: http(s)
//!   only, every resolved address checked and pinned, redirects re-checked, size and time capped.
//! - [`salesforce`]: Salesforce REST: SOQL pull, sObject Collections write-back.

pub mod backoff;
pub mod enrich;
pub mod http;
pub mod hubspot;
pub mod news;
pub mod safe_fetch;
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

/// A CRM's batch write of outbox items (HubSpot's company updates, Salesforce's sObject
/// Collections), delivered by [`deliver_batch`].
pub(crate) trait BatchWriter {
    fn client(&mut self) -> &mut http::Client;
    /// Of `items` (whose earlier attempt's outcome is unknown), those the CRM already shows.
    fn applied(&mut self, items: &[&OutboxItem]) -> Result<Vec<i64>, ConnectError>;
    /// Send `items` in one request.
    fn send(&mut self, items: &[OutboxItem]) -> Result<http::Reply, http::Failure>;
    /// Record what the CRM answered (any status but 401/403/429/5xx).
    fn answered(
        &mut self,
        app: &abm_app::App,
        items: Vec<OutboxItem>,
        reply: http::Reply,
        d: &mut hubspot::Delivery,
    ) -> Result<(), ConnectError>;
    /// Items out of attempts for this sync.
    fn give_up(
        &mut self,
        app: &abm_app::App,
        items: &[OutboxItem],
        d: &mut hubspot::Delivery,
    ) -> Result<(), ConnectError>;
    /// A failure that stops the sync (401/403, the daily limit), as its error.
    fn stop(&self, f: http::Failure, attempts: u32) -> ConnectError;
}

/// One batch of outbox items, retried within this sync: items whose earlier outcome is
/// unknown are checked on the CRM first (those applied are recorded as sent, never sent
/// again); the rest are marked `sending` (committed) before the request leaves; a transient
/// failure marks them unknown or failed and retries with backoff, up to the client's
/// attempts; a failure that stops the sync leaves them failed.
pub(crate) fn deliver_batch(
    w: &mut impl BatchWriter,
    app: &abm_app::App,
    mut todo: Vec<OutboxItem>,
    d: &mut hubspot::Delivery,
) -> Result<(), ConnectError> {
    let mut attempt = 0u32;
    while !todo.is_empty() {
        let unknown: Vec<&OutboxItem> = todo
            .iter()
            .filter(|i| i.status == OutboxStatus::Sending)
            .collect();
        if !unknown.is_empty() {
            let applied = w.applied(&unknown)?;
            if !applied.is_empty() {
                app.store()?
                    .outbox_mark(&applied, OutboxMark::Sent { remote_id: None })?;
                d.confirmed += applied.len() as u64;
                todo.retain(|i| !applied.contains(&i.id));
                if todo.is_empty() {
                    break;
                }
            }
        }
        let ids: Vec<i64> = todo.iter().map(|i| i.id).collect();
        app.store()?.outbox_mark(&ids, OutboxMark::Sending)?;
        for i in todo.iter_mut() {
            i.status = OutboxStatus::Sending;
            i.attempts += 1;
        }
        match w.send(&todo) {
            Ok(reply) => return w.answered(app, todo, reply, d),
            Err(http::Failure::Transient {
                reason,
                maybe_applied,
            }) => {
                mark_transient(app, &mut todo, &reason, maybe_applied)?;
                attempt += 1;
                if attempt >= w.client().settings().max_attempts {
                    return w.give_up(app, &todo, d);
                }
                let wait = w.client().backoff_wait(attempt - 1);
                std::thread::sleep(wait);
            }
            Err(f) => {
                // Not applied (401/403 and the daily limit are answered before anything
                // changes).
                app.store()?.outbox_mark(
                    &ids,
                    OutboxMark::Failed {
                        reason: &format!("{f:?}"),
                    },
                )?;
                return Err(w.stop(f, attempt + 1));
            }
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
    /// A URL named by a caller that is not fetched (scheme, an internal address, too many
    /// redirects, too large): see [`safe_fetch`].
    #[error("refused to fetch {url}: {reason}")]
    Refused { url: String, reason: String },
    /// A connector the caller asked for is not set up.
    #[error("{what} is not configured: {how}")]
    NotConfigured {
        what: &'static str,
        how: &'static str,
    },
}
