//! The engine's tools for AI agents over the Model Context Protocol, with the official Rust
//! SDK (`rmcp`): on stdio (`abm mcp`) and on streamable HTTP (`/mcp` of `abm serve`, behind the
//! API's bearer tokens). Each tool calls `abm_app::App` (or `abm-connect` for the connector
//! tools) on the blocking pool and answers JSON; a failure is a tool error the agent reads,
//! never a crash.
//!
//! Tools, by the role they need over HTTP (on stdio the local user may do everything, and
//! decisions are recorded under `--reviewer`):
//! - viewer: `search_accounts`, `explain_account`, `cluster_summary`, `list_checkpoints`
//!   ([`store_tools`]); `score_account`, `assign_cluster` ([`assess_tools`], stateless, on facts
//!   passed in); `enrich_company`, `fetch_company_news`, `hubspot_search_companies`
//!   ([`connector_tools`], reads from the outside world; nothing stored);
//! - reviewer: `resolve_checkpoint` (recorded under the token's name);
//! - admin: `ingest_events`, `hubspot_add_note` (a write to the CRM).

pub mod assess_tools;
pub mod connector_tools;
pub mod store_tools;

use abm_app::access::{Caller, Role};
use abm_app::App;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{CallToolResult, Content, Extensions, ServerCapabilities, ServerInfo};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{tool_handler, ErrorData, ServerHandler, ServiceExt};
use serde::Serialize;
use std::sync::Arc;

pub use connector_tools::{Connectors, HubSpotAccess};

/// Who may call the tools.
#[derive(Debug, Clone)]
pub enum Access {
    /// stdio: the local user, who may do everything; decisions are recorded under this name.
    Local { reviewer: String },
    /// HTTP: each request's caller, as the server's bearer-token check put it into the
    /// request's extensions ([`Caller`]). A request without one is refused.
    Bearer,
}

/// The MCP server: the app, who may call, and the connectors' settings.
#[derive(Clone)]
pub struct AbmTools {
    app: App,
    access: Access,
    connectors: Arc<Connectors>,
    tool_router: ToolRouter<Self>,
}

pub(crate) fn bad(msg: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![Content::text(msg.into())])
}

pub(crate) fn json_answer<T: Serialize>(v: &T) -> CallToolResult {
    CallToolResult::success(vec![Content::text(
        serde_json::to_string_pretty(v).unwrap_or_default(),
    )])
}

fn answer<T: Serialize, E: std::fmt::Display>(r: Result<T, E>) -> CallToolResult {
    match r {
        Ok(v) => json_answer(&v),
        Err(e) => bad(e.to_string()),
    }
}

pub(crate) fn opt<T>(
    v: Option<String>,
    what: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, String> {
    match v.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => parse(&s)
            .map(Some)
            .ok_or(format!("{what} {s:?} is not valid")),
    }
}

impl AbmTools {
    pub fn new(app: App, access: Access, connectors: Connectors) -> AbmTools {
        AbmTools {
            app,
            access,
            connectors: Arc::new(connectors),
            tool_router: all_tools(),
        }
    }

    /// The caller of this tool call when its role is at least `min`; else the tool error to
    /// answer (over HTTP: the token's role is too low, or no token was checked).
    pub(crate) fn caller(&self, ext: &Extensions, min: Role) -> Result<Caller, CallToolResult> {
        let caller = match &self.access {
            Access::Local { reviewer } => Caller {
                name: reviewer.clone(),
                role: Role::Admin,
            },
            Access::Bearer => ext
                .get::<http::request::Parts>()
                .and_then(|p| p.extensions.get::<Caller>())
                .cloned()
                .ok_or_else(|| bad("no authenticated caller: send Authorization: Bearer TOKEN"))?,
        };
        if caller.role < min {
            return Err(bad(format!(
                "this tool needs the {min} role; token {:?} has the {} role",
                caller.name, caller.role
            )));
        }
        Ok(caller)
    }

    /// Run `f` on the blocking pool (the store and the connectors' clients are synchronous).
    pub(crate) async fn call<T, E>(
        &self,
        f: impl FnOnce(&App, &Connectors) -> Result<T, E> + Send + 'static,
    ) -> Result<CallToolResult, ErrorData>
    where
        T: Serialize + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let app = self.app.clone();
        let connectors = self.connectors.clone();
        match tokio::task::spawn_blocking(move || f(&app, &connectors)).await {
            Ok(r) => Ok(answer(r)),
            Err(e) => Err(ErrorData::internal_error(e.to_string(), None)),
        }
    }

    /// [`Self::call`] after checking the caller's role.
    pub(crate) async fn call_as<T, E>(
        &self,
        ext: &Extensions,
        min: Role,
        f: impl FnOnce(&App, &Connectors, Caller) -> Result<T, E> + Send + 'static,
    ) -> Result<CallToolResult, ErrorData>
    where
        T: Serialize + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        match self.caller(ext, min) {
            Ok(c) => self.call(move |app, conn| f(app, conn, c)).await,
            Err(refused) => Ok(refused),
        }
    }
}

#[tool_handler]
impl ServerHandler for AbmTools {
    fn get_info(&self) -> ServerInfo {
        ServerInfo {
            instructions: Some(
                "The Cluster ABM engine: score an ICP fit and assign a cluster from facts you pass in; search the stored accounts, explain one, see the cluster summary, review checkpoints, post engagement events; enrich a company, read its news, search and annotate HubSpot companies.".into(),
            ),
            capabilities: ServerCapabilities::builder().enable_tools().build(),
            server_info: rmcp::model::Implementation {
                name: "abm".into(),
                title: Some("Cluster ABM engine".into()),
                version: env!("CARGO_PKG_VERSION").into(),
                ..Default::default()
            },
            ..Default::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum McpError {
    #[error("cannot start the MCP runtime: {0}")]
    Runtime(#[from] std::io::Error),
    #[error("MCP session: {0}")]
    Session(String),
}

/// Serve the tools on stdin/stdout until the client closes the session.
pub fn serve_stdio(app: App, reviewer: String, connectors: Connectors) -> Result<(), McpError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // The store's last handle is dropped outside the runtime (see abm-server).
    let keep = app.clone();
    let r = rt.block_on(async move {
        let service = AbmTools::new(app, Access::Local { reviewer }, connectors)
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| McpError::Session(e.to_string()))?;
        service
            .waiting()
            .await
            .map_err(|e| McpError::Session(e.to_string()))?;
        Ok(())
    });
    drop(rt);
    drop(keep);
    r
}

/// The streamable HTTP transport's service (a tower service for an HTTP router), stateless:
/// every POST carries one JSON-RPC message and gets its answer as `application/json`, so no
/// session is held between requests and nothing keeps a connection open at shutdown. The
/// router in front must authenticate each request and put its [`Caller`] into the request's
/// extensions.
pub fn http_service(
    app: App,
    connectors: Connectors,
) -> StreamableHttpService<AbmTools, NeverSessionManager> {
    let tools = AbmTools::new(app, Access::Bearer, connectors);
    StreamableHttpService::new(
        move || Ok(tools.clone()),
        Arc::new(NeverSessionManager::default()),
        StreamableHttpServerConfig {
            stateful_mode: false,
            json_response: true,
            sse_keep_alive: None,
            ..Default::default()
        },
    )
}

/// Every tool.
fn all_tools() -> ToolRouter<AbmTools> {
    AbmTools::store_router() + AbmTools::assess_router() + AbmTools::connector_router()
}

/// docs/mcp.md: every tool with its description and input schema, as the server lists them.
pub fn tools_reference() -> String {
    let mut tools = all_tools().list_all();
    tools.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = String::from(
        "# MCP tools\n\n\
         Generated from the code (`cargo test -p abm-mcp`; `ABM_UPDATE_DOCS=1` rewrites it): every tool\n\
         `abm mcp` (stdio) and `/mcp` of `abm serve` (streamable HTTP) list, with its description\n\
         (which says its role over HTTP) and its input schema. Answers are JSON text in the\n\
         tool result's first content item; a failure is a tool error (`isError`) whose text\n\
         says why. See the README's \"MCP tools for AI agents\".\n\n\
         Network access: `fetch_company_news` fetches the feed URLs a caller passes under the\n\
         `[news]` policy of the server's abm.toml — `http`/`https` only; a host resolving to a\n\
         loopback, private, shared, link-local, unique-local, multicast, unspecified or reserved\n\
         address is refused (every resolved address is checked and the connection goes to the\n\
         checked ones) unless `[news] allow_hosts` names it; each redirect is checked the same\n\
         way (at most `max_redirects`); size (`max_bytes`) and time (`timeout_ms`) are capped.\n\
         A refusal is the tool's error (`refused to fetch URL: …`), or one entry of\n\
         `feeds_failed` when another feed could be read.\n",
    );
    for t in tools {
        let schema = serde_json::to_string_pretty(&*t.input_schema).unwrap_or_default();
        out.push_str(&format!(
            "\n## `{}`\n\n{}\n\n```json\n{}\n```\n",
            t.name,
            t.description.as_deref().unwrap_or(""),
            schema
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_mcp_md_is_the_tool_list() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/mcp.md");
        let want = tools_reference();
        if std::env::var_os("ABM_UPDATE_DOCS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "docs/mcp.md is not the tools' list: ABM_UPDATE_DOCS=1 cargo test -p abm-mcp rewrites it"
        );
        for name in [
            "score_account",
            "assign_cluster",
            "enrich_company",
            "fetch_company_news",
            "hubspot_search_companies",
            "hubspot_add_note",
            "resolve_checkpoint",
        ] {
            assert!(want.contains(&format!("## `{name}`")), "{name}");
        }
    }
}
