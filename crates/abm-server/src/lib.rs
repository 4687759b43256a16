//! `abm serve`: the JSON API over [`abm_app::App`], and the team's dashboard at `/` (HTML
//! pages signed in with the same tokens: see `dashboard`).
//!
//! Handlers parse the request, check the caller's role, call one `App` method on the blocking
//! pool (the store is synchronous) and serialize its answer; they decide nothing themselves.
//! Every route but `/healthz` needs `Authorization: Bearer TOKEN` (no or an unknown token →
//! 401; a role too low → 403). Errors are RFC 9457 problem details. `/openapi.json` is
//! generated from the handlers' annotations. `/mcp` serves the MCP tools (`abm-mcp`) over
//! the streamable HTTP transport behind the same tokens: any token reaches it, and each tool
//! checks the caller's role (put into the request by the token check).

mod dashboard;
mod metrics;
mod problem;
mod routes;

pub use problem::Problem;
pub use routes::ApiDoc;

use abm_app::App;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// The name of the token `abm serve` creates when the store has none.
pub const FIRST_TOKEN_NAME: &str = "admin";

/// What one server shares between its handlers.
pub struct Shared {
    pub(crate) app: App,
    pub(crate) metrics: metrics::Metrics,
    /// Held while a run started through the API is in progress (a second one is a 409).
    pub(crate) run_lock: tokio::sync::Mutex<()>,
    /// The dashboard's signed-in browsers.
    pub(crate) sessions: dashboard::session::Sessions,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the server stopped: {0}")]
    Io(#[from] std::io::Error),
}

/// The API's routes over `app`, no connector set up for the MCP tools (in-process tests).
pub fn router(app: App) -> axum::Router {
    router_with(app, abm_mcp::Connectors::none())
}

/// The API's routes over `app`, with the MCP tools' connectors.
pub fn router_with(app: App, connectors: abm_mcp::Connectors) -> axum::Router {
    routes::router(
        Arc::new(Shared {
            app,
            metrics: metrics::Metrics::default(),
            run_lock: tokio::sync::Mutex::new(()),
            sessions: Default::default(),
        }),
        connectors,
    )
}

/// Bind `addr` (a `host:port`; port 0 picks one).
pub async fn bind(addr: &str) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: addr.to_string(),
            source,
        })
}

/// Answer requests on `listener` until `shutdown` completes; requests in flight then finish.
///
/// Keep a clone of `app` outside the runtime and drop it after the runtime: on PostgreSQL the
/// store's connections own a runtime of their own, which must not be dropped from async code.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: App,
    connectors: abm_mcp::Connectors,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    axum::serve(
        listener,
        router_with(app, connectors).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing the requests in flight");
}

/// One log line per request on stderr (`RUST_LOG`-style level from `ABM_LOG`, default info).
pub fn init_logging() {
    let level = match std::env::var("ABM_LOG").as_deref() {
        Ok("debug") => tracing::Level::DEBUG,
        Ok("warn") => tracing::Level::WARN,
        Ok("error") => tracing::Level::ERROR,
        _ => tracing::Level::INFO,
    };
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // The MCP SDK logs every message it answers at info: kept to its warnings (an answer
    // carries account data, which does not belong in a log).
    let targets = tracing_subscriber::filter::Targets::new()
        .with_default(level)
        .with_target("rmcp", tracing::Level::WARN);
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .finish()
        .with(targets)
        .try_init();
}

/// Whether `addr` binds only the loopback interface.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// The runtime `abm serve` runs on (so the binary needs no tokio of its own).
pub type Runtime = tokio::runtime::Runtime;

/// The most store calls in flight at once for a store at `url` (the blocking pool's size); keep
/// as many idle connections in the store's pool.
///
/// SQLite: twice the cores, at least 4 and at most 32. Its store calls are CPU-bound, so more
/// of them than the cores can run only spreads the requests over more connections, each with a
/// page cache of its own to fill (up to 128 MiB each): at 1M accounts on 2 cores, 16
/// connections cost 207 µs of server CPU per by-id request and 2.2 GB of memory, 4 cost
/// 141–171 µs and 0.58 GB (bench/README.md). PostgreSQL: 16 (a call waits on round trips to the
/// server, which does the work: 4 connections gave 488 by-id requests/s where 16 gave 741).
pub fn store_calls(url: &str) -> usize {
    if let abm_store::Location::Postgres(_) = abm_store::Location::parse(url) {
        return 16;
    }
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .saturating_mul(2)
        .clamp(4, 32)
}

/// A multi-threaded runtime with a blocking pool of `store_calls` threads for the store calls.
pub fn runtime(store_calls: usize) -> std::io::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(store_calls)
        .build()
}

/// The OpenAPI 3.1 document `/openapi.json` serves.
pub fn openapi_document() -> serde_json::Value {
    use utoipa::OpenApi;
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
}
