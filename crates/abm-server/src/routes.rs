//! The routes: role checks, request parsing, one `App` call each, and the OpenAPI document.

use crate::problem::Problem;
use crate::Shared;
use abm_app::access::{Caller, Role};
use abm_app::accounts::CheckpointStatus;
use abm_app::ingest::MAX_BATCH;
use abm_app::records::{RecordKind, RejectedItem};
use abm_app::views::{AccountFilter, Cursor};
use abm_app::App;
use abm_core::{Cluster, EngagementLevel, Instant, Tier};
use abm_store::RunOutcome;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

type S = Arc<Shared>;
type ApiResult<T> = Result<T, Problem>;

/// The largest request body (a 10,000-item batch of wide records fits).
const MAX_BODY: usize = 64 << 20;

pub(crate) fn router(shared: S, connectors: abm_mcp::Connectors) -> Router {
    let need = |role: Role| from_fn_with_state((shared.clone(), role), require_role);
    Router::new()
        .route("/healthz", get(healthz))
        .route(
            "/openapi.json",
            get(openapi).route_layer(need(Role::Viewer)),
        )
        .route("/metrics", get(metrics).route_layer(need(Role::Viewer)))
        .route(
            "/api/accounts",
            get(list_accounts)
                .route_layer(need(Role::Viewer))
                .merge(put(put_accounts).route_layer(need(Role::Admin))),
        )
        .route(
            "/api/accounts/{id}",
            get(account).route_layer(need(Role::Viewer)),
        )
        .route(
            "/api/accounts/{id}/history",
            get(history).route_layer(need(Role::Viewer)),
        )
        .route("/api/summary", get(summary).route_layer(need(Role::Viewer)))
        .route(
            "/api/movements",
            get(movements).route_layer(need(Role::Viewer)),
        )
        .route(
            "/api/runs",
            get(runs)
                .route_layer(need(Role::Viewer))
                .merge(post(start_run).route_layer(need(Role::Admin))),
        )
        .route(
            "/api/checkpoints",
            get(checkpoints).route_layer(need(Role::Viewer)),
        )
        .route(
            "/api/checkpoints/{id}/approve",
            post(approve).route_layer(need(Role::Reviewer)),
        )
        .route(
            "/api/checkpoints/{id}/reject",
            post(reject).route_layer(need(Role::Reviewer)),
        )
        .route(
            "/api/events",
            post(post_events).route_layer(need(Role::Admin)),
        )
        .route(
            "/api/triggers",
            post(post_triggers).route_layer(need(Role::Admin)),
        )
        .route(
            "/api/deals",
            post(post_deals).route_layer(need(Role::Admin)),
        )
        .route(
            "/mcp",
            // A service, not method routes: `layer` (a `route_layer` would have nothing to wrap).
            axum::routing::any_service(abm_mcp::http_service(shared.app.clone(), connectors))
                .layer(axum::middleware::map_request(limit_body))
                .layer(need(Role::Viewer)),
        )
        .merge(crate::dashboard::router())
        .fallback(|| async { Problem::not_found("no such route (see /openapi.json)") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(from_fn_with_state(shared.clone(), log_request))
        .with_state(shared)
}

/// One line per request (method, path, status, latency) and the metrics. Never the headers:
/// tokens are not logged.
async fn log_request(State(s): State<S>, req: Request, next: Next) -> Response {
    let start = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "(unmatched)".to_string());
    let res = next.run(req).await;
    let latency = start.elapsed();
    let status = res.status().as_u16();
    s.metrics.record(method.as_str(), &route, status, latency);
    tracing::info!(
        method = %method,
        path = %path,
        status,
        latency_ms = latency.as_secs_f64() * 1e3,
        "request"
    );
    res
}

/// A body read by the service itself (not by an extractor, which `DefaultBodyLimit` bounds)
/// fails past [`MAX_BODY`].
async fn limit_body(req: Request) -> Request {
    let (parts, body) = req.into_parts();
    Request::from_parts(
        parts,
        axum::body::Body::new(http_body_util::Limited::new(body, MAX_BODY)),
    )
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// 401 without a live token, 403 when its role is below `min`; else the caller goes into the
/// request's extensions.
async fn require_role(State((s, min)): State<(S, Role)>, mut req: Request, next: Next) -> Response {
    let Some(token) = bearer(req.headers()).map(str::to_string) else {
        return refuse(
            &req,
            Problem::unauthorized("send Authorization: Bearer TOKEN (see `abm token create`)"),
        );
    };
    // A token found live before, with nothing committed since, needs no store call.
    let known = s.app.known_caller(&token);
    let found = match known {
        Some(c) => Ok(Some(c)),
        None => blocking(&s, move |app| app.authenticate(&token)).await,
    };
    let caller = match found {
        Ok(Some(c)) => c,
        Ok(None) => return refuse(&req, Problem::unauthorized("unknown or revoked token")),
        Err(p) => return refuse(&req, p),
    };
    if caller.role < min {
        let p = Problem::forbidden(format!(
            "this needs the {min} role; token {:?} has the {} role",
            caller.name, caller.role
        ));
        return refuse(&req, p);
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// A refusal before the request's body was read. The server then closes the connection rather
/// than read a body nobody wants (hyper gives up on an unread body that has not fully arrived), so
/// such an answer says `Connection: close`: without it a keep-alive client may send its next
/// request down a connection that is going away and see it dropped with no answer.
fn refuse(req: &Request, p: Problem) -> Response {
    let mut r = p.into_response();
    if may_have_body(req.headers()) {
        r.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    r
}

fn may_have_body(h: &axum::http::HeaderMap) -> bool {
    use axum::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
    h.contains_key(TRANSFER_ENCODING)
        || h.get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// Run `f` on the blocking pool (the store is synchronous).
pub(crate) async fn blocking<T: Send + 'static>(
    s: &S,
    f: impl FnOnce(&App) -> abm_app::Result<T> + Send + 'static,
) -> ApiResult<T> {
    let app = s.app.clone();
    tokio::task::spawn_blocking(move || f(&app))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "handler panicked");
            Problem::internal("the request failed; see the server log")
        })?
        .map_err(Problem::from)
}

fn json<T: Serialize>(status: StatusCode, v: &T) -> Response {
    (status, Json(v)).into_response()
}

#[derive(Serialize, ToSchema)]
struct Health {
    status: String,
    api_version: u32,
}

/// Liveness (no token needed).
#[utoipa::path(get, path = "/healthz", security(()), responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        api_version: abm_app::API_VERSION,
    })
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "OpenAPI 3.1 document")))]
async fn openapi() -> Response {
    json(StatusCode::OK, &ApiDoc::openapi())
}

/// Prometheus text: requests and latencies per route, the review queue, the latest run.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn metrics(State(s): State<S>) -> Response {
    let queue = blocking(&s, |app| app.queue_status()).await.ok();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(queue.as_ref()),
    )
        .into_response()
}

/// A cluster's code, for the OpenAPI document (`abm_core::Cluster` in text).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
enum ClusterCode {
    ClusterIcp,
    FuturePipeline,
    ActiveFocus,
    MonitorOnly,
    /// The customer track (`[customers] mode = "track"`).
    Customer,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AccountQuery {
    /// Current cluster: cluster_icp, future_pipeline, active_focus, monitor_only, customer (the
    /// customer track, `[customers] mode = "track"`).
    #[param(inline, value_type = Option<ClusterCode>)]
    cluster: Option<String>,
    /// Tier A–E (latest run).
    tier: Option<String>,
    /// Engagement level: none, low, medium, high (latest run).
    engagement: Option<String>,
    /// Micro-segment, as written (latest run).
    micro_segment: Option<String>,
    /// Text in the account id or name (case-insensitive).
    q: Option<String>,
    /// Page size, 1–1000 (default 50).
    limit: Option<String>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
}

fn parse_opt<T>(
    v: &Option<String>,
    what: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> ApiResult<Option<T>> {
    match v.as_deref().filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => parse(s)
            .map(Some)
            .ok_or_else(|| Problem::bad_request(format!("{what} {s:?} is not valid"))),
    }
}

/// Accounts with filters, in a stable order; pass `next_cursor` back as `cursor`.
#[utoipa::path(get, path = "/api/accounts", params(AccountQuery),
    responses((status = 200, description = "A page: {run, items, next_cursor}", body = serde_json::Value),
              (status = 400, body = Problem), (status = 401, body = Problem)))]
async fn list_accounts(State(s): State<S>, Query(q): Query<AccountQuery>) -> ApiResult<Response> {
    let filter = AccountFilter {
        cluster: parse_opt(&q.cluster, "cluster", Cluster::parse)?,
        tier: parse_opt(&q.tier, "tier", Tier::parse)?,
        engagement: parse_opt(&q.engagement, "engagement", EngagementLevel::parse)?,
        micro_segment: q.micro_segment.filter(|m| !m.is_empty()),
        q: q.q.filter(|m| !m.is_empty()),
        limit: parse_opt(&q.limit, "limit", |l| {
            l.parse::<usize>()
                .ok()
                .filter(|n| (1..=abm_store::listing::MAX_PAGE).contains(n))
        })?
        .unwrap_or(50),
        cursor: parse_opt(&q.cursor, "cursor", Cursor::parse)?,
        ..AccountFilter::default()
    };
    let page = blocking(&s, move |app| app.list_accounts(&filter)).await?;
    Ok(json(StatusCode::OK, &page))
}

/// One account now: fields, current cluster, latest assessment, open checkpoints.
#[utoipa::path(get, path = "/api/accounts/{id}", params(("id" = String, Path, description = "account_id")),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem)))]
async fn account(State(s): State<S>, Path(id): Path<String>) -> ApiResult<Response> {
    let v = blocking(&s, move |app| app.account(&id)).await?;
    Ok(json(StatusCode::OK, &v))
}

/// Every snapshot, movement, checkpoint and decision of one account.
#[utoipa::path(get, path = "/api/accounts/{id}/history", params(("id" = String, Path, description = "account_id")),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem)))]
async fn history(State(s): State<S>, Path(id): Path<String>) -> ApiResult<Response> {
    let v = blocking(&s, move |app| app.history(&id)).await?;
    Ok(json(StatusCode::OK, &v))
}

/// Counts of the latest run, capacity and the review queue.
#[utoipa::path(get, path = "/api/summary",
    responses((status = 200, body = serde_json::Value), (status = 404, description = "no run yet", body = Problem)))]
async fn summary(State(s): State<S>) -> ApiResult<Response> {
    let v = blocking(&s, |app| app.summary()).await?;
    Ok(json(StatusCode::OK, &v))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SinceQuery {
    /// Only movements as of this instant or later (RFC 3339 or YYYY-MM-DD).
    since: Option<String>,
}

/// Promotions and demotions, oldest first.
#[utoipa::path(get, path = "/api/movements", params(SinceQuery),
    responses((status = 200, body = serde_json::Value), (status = 400, body = Problem)))]
async fn movements(State(s): State<S>, Query(q): Query<SinceQuery>) -> ApiResult<Response> {
    let since = parse_opt(&q.since, "since", |t| Instant::parse(t).ok())?;
    let v = blocking(&s, move |app| app.movements(since)).await?;
    Ok(json(StatusCode::OK, &v))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LimitQuery {
    /// At most this many (1–1000, default 100).
    limit: Option<String>,
}

/// The recorded runs, newest first.
#[utoipa::path(get, path = "/api/runs", params(LimitQuery), responses((status = 200, body = serde_json::Value)))]
async fn runs(State(s): State<S>, Query(q): Query<LimitQuery>) -> ApiResult<Response> {
    let limit = parse_opt(&q.limit, "limit", |l| {
        l.parse::<usize>()
            .ok()
            .filter(|n| (1..=abm_store::listing::MAX_PAGE).contains(n))
    })?
    .unwrap_or(100);
    let v = blocking(&s, move |app| app.runs(limit)).await?;
    Ok(json(StatusCode::OK, &v))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
struct RunRequest {
    /// Evaluate as of this instant (RFC 3339 or YYYY-MM-DD; default: now).
    as_of: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct RunAnswer {
    /// `done` (a run was recorded) or `unchanged` (nothing changed since run `run`).
    status: String,
    run: i64,
    as_of: String,
    /// The run's report (when done).
    #[schema(value_type = Option<Object>)]
    report: Option<serde_json::Value>,
}

fn body_or_default<T: for<'de> Deserialize<'de> + Default>(body: &[u8]) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| Problem::bad_request(format!("request body: {e}")))
}

/// Evaluate every account and record the run (admin). A run already in progress → 409.
#[utoipa::path(post, path = "/api/runs", request_body(content = RunRequest, description = "optional"),
    responses((status = 201, body = RunAnswer), (status = 200, description = "nothing changed", body = RunAnswer),
              (status = 403, body = Problem), (status = 409, body = Problem)))]
async fn start_run(State(s): State<S>, body: Bytes) -> ApiResult<Response> {
    let req: RunRequest = body_or_default(&body)?;
    let as_of = parse_opt(&req.as_of, "as_of", |t| Instant::parse(t).ok())?;
    let Ok(guard) = s.run_lock.try_lock() else {
        return Err(Problem::conflict("a run is already in progress"));
    };
    let outcome = blocking(&s, move |app| {
        app.run(as_of, None, abm_app::RunObserver::default())
    })
    .await;
    drop(guard);
    Ok(match outcome? {
        RunOutcome::Done(report) => json(
            StatusCode::CREATED,
            &RunAnswer {
                status: "done".into(),
                run: report.run_id,
                as_of: report.as_of.to_string(),
                report: Some(serde_json::to_value(&report).unwrap_or_default()),
            },
        ),
        RunOutcome::Unchanged { run, as_of } => json(
            StatusCode::OK,
            &RunAnswer {
                status: "unchanged".into(),
                run,
                as_of: as_of.to_string(),
                report: None,
            },
        ),
    })
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct StatusQuery {
    /// pending (default), approved, rejected, closed or all.
    status: Option<String>,
}

/// The review queue.
#[utoipa::path(get, path = "/api/checkpoints", params(StatusQuery),
    responses((status = 200, body = serde_json::Value), (status = 400, body = Problem)))]
async fn checkpoints(State(s): State<S>, Query(q): Query<StatusQuery>) -> ApiResult<Response> {
    let status = parse_opt(&q.status, "status", CheckpointStatus::parse)?
        .unwrap_or(CheckpointStatus::Pending);
    let v = blocking(&s, move |app| app.checkpoints(status)).await?;
    Ok(json(StatusCode::OK, &v))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
struct DecisionRequest {
    comment: Option<String>,
}

async fn decide(
    s: S,
    caller: Caller,
    id: String,
    body: Bytes,
    approve: bool,
) -> ApiResult<Response> {
    let id: i64 = id
        .parse()
        .map_err(|_| Problem::bad_request(format!("checkpoint id {id:?} is not a number")))?;
    let req: DecisionRequest = body_or_default(&body)?;
    let v = blocking(&s, move |app| {
        app.decide(id, approve, &caller.name, req.comment.as_deref())
    })
    .await?;
    Ok(json(StatusCode::OK, &v))
}

/// Approve a pending checkpoint (reviewer; recorded with the token's name). The account's
/// current cluster changes at once.
#[utoipa::path(post, path = "/api/checkpoints/{id}/approve", params(("id" = i64, Path)),
    request_body(content = DecisionRequest, description = "optional"),
    responses((status = 200, body = serde_json::Value), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, description = "not pending, or stale", body = Problem)))]
async fn approve(
    State(s): State<S>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    decide(s, caller, id, body, true).await
}

/// Reject a pending checkpoint (reviewer): the account keeps its cluster.
#[utoipa::path(post, path = "/api/checkpoints/{id}/reject", params(("id" = i64, Path)),
    request_body(content = DecisionRequest, description = "optional"),
    responses((status = 200, body = serde_json::Value), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn reject(
    State(s): State<S>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    decide(s, caller, id, body, false).await
}

/// The items of a JSON array or NDJSON body; a line that is not JSON becomes a `null` item
/// (rejected by index) and its parse error.
/// A body's items, and the index and parse error of each line that was not JSON.
type Items = (Vec<serde_json::Value>, Vec<(usize, String)>);

fn parse_items(body: &[u8]) -> ApiResult<Items> {
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = start else {
        return Err(Problem::bad_request(
            "empty body: send a JSON array or JSON Lines (one object per line)",
        ));
    };
    let too_many = |n: usize| {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-many-items",
            format!("{n} items in one batch; at most {MAX_BATCH}"),
        )
    };
    if body[start] == b'[' {
        let items: Vec<serde_json::Value> = serde_json::from_slice(body)
            .map_err(|e| Problem::bad_request(format!("request body: {e}")))?;
        if items.len() > MAX_BATCH {
            return Err(too_many(items.len()));
        }
        return Ok((items, Vec::new()));
    }
    let lines: Vec<&[u8]> = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .collect();
    if lines.len() > MAX_BATCH {
        return Err(too_many(lines.len()));
    }
    let mut bad = Vec::new();
    let items = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_slice(l).unwrap_or_else(|e| {
                bad.push((i, format!("not JSON: {e}")));
                serde_json::Value::Null
            })
        })
        .collect();
    Ok((items, bad))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct IngestQuery {
    /// The instant the touched accounts are re-assessed as of (RFC 3339 or YYYY-MM-DD; not
    /// before the latest run's). Default: now, or the latest run's as_of when that is later.
    as_of: Option<String>,
}

async fn ingest(s: S, kind: RecordKind, q: IngestQuery, body: Bytes) -> ApiResult<Response> {
    let as_of = parse_opt(&q.as_of, "as_of", |t| Instant::parse(t).ok())?;
    let (items, bad) = parse_items(&body)?;
    let mut v = blocking(&s, move |app| app.ingest(kind, items, as_of)).await?;
    for (index, reason) in bad {
        if let Some(r) = v
            .rejected_items
            .iter_mut()
            .find(|r: &&mut RejectedItem| r.index == index)
        {
            r.reason = reason;
        }
    }
    Ok(json(StatusCode::OK, &v))
}

/// Post engagement events (admin): a JSON array or NDJSON, at most 10,000 items (else 413).
/// Idempotent: an event's `event_id`, else its content, identifies it.
#[utoipa::path(post, path = "/api/events", params(IngestQuery),
    request_body(content = serde_json::Value, description = "JSON array or NDJSON of events {account_id, occurred_at, type, contact_id?, event_id?, detail?}",
        content_type = "application/json"),
    responses((status = 200, description = "{accepted, duplicate, rejected, rejected_items[{index, field, reason}], reevaluated: {run, as_of, accounts[{account_id, cluster, previous, candidate, movement, recorded, checkpoints[{id, kind, from, to}]}]} | null}", body = serde_json::Value),
              (status = 400, body = Problem), (status = 403, body = Problem), (status = 413, body = Problem)))]
async fn post_events(
    State(s): State<S>,
    Query(q): Query<IngestQuery>,
    body: Bytes,
) -> ApiResult<Response> {
    ingest(s, RecordKind::Engagement, q, body).await
}

/// Post buyer signals (admin): a JSON array or NDJSON, at most 10,000 items.
#[utoipa::path(post, path = "/api/triggers", params(IngestQuery),
    request_body(content = serde_json::Value, description = "JSON array or NDJSON of triggers {account_id, occurred_at, type, source?, headline?, strength?}",
        content_type = "application/json"),
    responses((status = 200, body = serde_json::Value), (status = 400, body = Problem),
              (status = 403, body = Problem), (status = 413, body = Problem)))]
async fn post_triggers(
    State(s): State<S>,
    Query(q): Query<IngestQuery>,
    body: Bytes,
) -> ApiResult<Response> {
    ingest(s, RecordKind::Triggers, q, body).await
}

/// Post deals (admin): a JSON array or NDJSON, at most 10,000 items; upserted by `deal_id`.
#[utoipa::path(post, path = "/api/deals", params(IngestQuery),
    request_body(content = serde_json::Value, description = "JSON array or NDJSON of deals {deal_id, account_id, stage?, amount?, created_at?, closed_at?, …}",
        content_type = "application/json"),
    responses((status = 200, body = serde_json::Value), (status = 400, body = Problem),
              (status = 403, body = Problem), (status = 413, body = Problem)))]
async fn post_deals(
    State(s): State<S>,
    Query(q): Query<IngestQuery>,
    body: Bytes,
) -> ApiResult<Response> {
    ingest(s, RecordKind::Deals, q, body).await
}

/// Create or update accounts (admin): a JSON array or NDJSON, at most 10,000 items; upserted
/// by `account_id`.
#[utoipa::path(put, path = "/api/accounts", params(IngestQuery),
    request_body(content = serde_json::Value, description = "JSON array or NDJSON of accounts {account_id, name?, industry?, employees?, …}",
        content_type = "application/json"),
    responses((status = 200, body = serde_json::Value), (status = 400, body = Problem),
              (status = 403, body = Problem), (status = 413, body = Problem)))]
async fn put_accounts(
    State(s): State<S>,
    Query(q): Query<IngestQuery>,
    body: Bytes,
) -> ApiResult<Response> {
    ingest(s, RecordKind::Accounts, q, body).await
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from `abm token create --role viewer|reviewer|admin --name NAME`",
                    ))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI 3.1 document of this API.
#[derive(OpenApi)]
#[openapi(
    info(title = "abm", description = "The Cluster ABM engine's JSON API. Roles: viewer (reads), reviewer (+ approve/reject), admin (+ runs and ingest)."),
    paths(healthz, openapi, metrics, list_accounts, account, history, summary, movements, runs,
          start_run, checkpoints, approve, reject, post_events, post_triggers, post_deals, put_accounts),
    components(schemas(Problem, RunRequest, RunAnswer, DecisionRequest, Health)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;
