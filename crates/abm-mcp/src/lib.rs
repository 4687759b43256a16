//! `abm mcp`: the engine's tools for AI agents over the Model Context Protocol (stdio), with
//! the official Rust SDK (`rmcp`). Each tool calls one `abm_app::App` method on the blocking
//! pool and answers its JSON; a failure is a tool error the agent reads, never a crash.
//!
//! Tools: `search_accounts`, `explain_account`, `cluster_summary`, `list_checkpoints`,
//! `resolve_checkpoint`, `ingest_events`. (`score_account` and `assign_cluster` on facts
//! passed in, `/mcp` over HTTP and the connector tools are not here yet.)

use abm_app::accounts::CheckpointStatus;
use abm_app::records::RecordKind;
use abm_app::views::{AccountFilter, Cursor};
use abm_app::App;
use abm_core::{Cluster, EngagementLevel, Tier};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Content, ServerCapabilities, ServerInfo};
use rmcp::{tool, tool_handler, tool_router, ErrorData, ServerHandler, ServiceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The MCP server: the app, and the name decisions are recorded under.
#[derive(Clone)]
pub struct AbmTools {
    app: App,
    reviewer: String,
    tool_router: ToolRouter<Self>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SearchParams {
    /// Current cluster: cluster_icp, future_pipeline, active_focus or monitor_only.
    pub cluster: Option<String>,
    /// ICP tier A–E (latest run).
    pub tier: Option<String>,
    /// Engagement level: none, low, medium or high (latest run).
    pub engagement: Option<String>,
    /// Micro-segment as written (latest run).
    pub micro_segment: Option<String>,
    /// Text in the account id or the name (case-insensitive).
    pub q: Option<String>,
    /// Page size, 1–1000 (default 20).
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous answer.
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AccountParams {
    /// The account's id (`account_id`).
    pub account_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CheckpointListParams {
    /// pending (default), approved, rejected, closed or all.
    pub status: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ResolveParams {
    /// The checkpoint's id (from list_checkpoints).
    pub id: i64,
    /// approve or reject.
    pub decision: String,
    /// Why (kept with the decision).
    pub comment: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct IngestParams {
    /// Engagement events: objects with account_id, occurred_at (RFC 3339 or YYYY-MM-DD),
    /// type (e.g. meeting, email_reply, webinar), and optionally contact_id, event_id, detail.
    /// At most 10,000. Re-sending an event adds nothing.
    pub events: Vec<serde_json::Value>,
}

fn bad(msg: String) -> CallToolResult {
    CallToolResult::error(vec![Content::text(msg)])
}

fn answer<T: Serialize>(r: abm_app::Result<T>) -> CallToolResult {
    match r {
        Ok(v) => CallToolResult::success(vec![Content::text(
            serde_json::to_string_pretty(&v).unwrap_or_default(),
        )]),
        Err(e) => bad(e.to_string()),
    }
}

fn opt<T>(
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
    async fn call<T: Serialize + Send + 'static>(
        &self,
        f: impl FnOnce(&App) -> abm_app::Result<T> + Send + 'static,
    ) -> Result<CallToolResult, ErrorData> {
        let app = self.app.clone();
        match tokio::task::spawn_blocking(move || f(&app)).await {
            Ok(r) => Ok(answer(r)),
            Err(e) => Err(ErrorData::internal_error(e.to_string(), None)),
        }
    }
}

#[tool_router]
impl AbmTools {
    pub fn new(app: App, reviewer: String) -> AbmTools {
        AbmTools {
            app,
            reviewer,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "Search the accounts by current cluster, tier, engagement level, micro-segment or text in the id or name. Answers a page {run, items[{account_id, name, cluster, tier, icp_score, engagement_level, micro_segment, next_action}], next_cursor}; pass next_cursor back as cursor for the next page."
    )]
    async fn search_accounts(
        &self,
        Parameters(p): Parameters<SearchParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let filter = (|| -> Result<AccountFilter, String> {
            Ok(AccountFilter {
                cluster: opt(p.cluster, "cluster", Cluster::parse)?,
                tier: opt(p.tier, "tier", Tier::parse)?,
                engagement: opt(p.engagement, "engagement", EngagementLevel::parse)?,
                micro_segment: p.micro_segment.filter(|s| !s.is_empty()),
                q: p.q.filter(|s| !s.is_empty()),
                limit: p.limit.unwrap_or(20).clamp(1, abm_store::listing::MAX_PAGE),
                cursor: opt(p.cursor, "cursor", Cursor::parse)?,
                ..AccountFilter::default()
            })
        })();
        match filter {
            Ok(f) => self.call(move |app| app.list_accounts(&f)).await,
            Err(e) => Ok(bad(e)),
        }
    }

    #[tool(
        description = "One account now: its fields, current cluster and since when, the latest run's assessment (tier, ICP score, engagement, rule, rationale, next action, evidence) and its open review checkpoints."
    )]
    async fn explain_account(
        &self,
        Parameters(p): Parameters<AccountParams>,
    ) -> Result<CallToolResult, ErrorData> {
        self.call(move |app| app.account(&p.account_id)).await
    }

    #[tool(
        description = "Counts of the latest run per cluster against capacity, promotions and demotions, and the review queue by kind."
    )]
    async fn cluster_summary(&self) -> Result<CallToolResult, ErrorData> {
        self.call(|app| app.summary()).await
    }

    #[tool(
        description = "The review checkpoints (proposed promotions/demotions, conflicts, capacity) with their evidence; status pending (default), approved, rejected, closed or all."
    )]
    async fn list_checkpoints(
        &self,
        Parameters(p): Parameters<CheckpointListParams>,
    ) -> Result<CallToolResult, ErrorData> {
        match opt(p.status, "status", CheckpointStatus::parse) {
            Ok(s) => {
                let s = s.unwrap_or(CheckpointStatus::Pending);
                self.call(move |app| app.checkpoints(s)).await
            }
            Err(e) => Ok(bad(e)),
        }
    }

    #[tool(
        description = "Approve or reject a pending checkpoint, with a comment. Approving a proposed move changes the account's current cluster at once; the decision is recorded under this server's reviewer name."
    )]
    async fn resolve_checkpoint(
        &self,
        Parameters(p): Parameters<ResolveParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let approve = match p.decision.as_str() {
            "approve" => true,
            "reject" => false,
            d => return Ok(bad(format!("decision {d:?}: approve or reject"))),
        };
        let reviewer = self.reviewer.clone();
        self.call(move |app| app.decide(p.id, approve, &reviewer, p.comment.as_deref()))
            .await
    }

    #[tool(
        description = "Store engagement events (idempotent: an event_id, else the content, identifies an event). Answers accepted, duplicate and rejected counts and each rejected item's index, field and reason; a bad event never drops the good ones."
    )]
    async fn ingest_events(
        &self,
        Parameters(p): Parameters<IngestParams>,
    ) -> Result<CallToolResult, ErrorData> {
        self.call(move |app| app.ingest(RecordKind::Engagement, p.events))
            .await
    }
}

#[tool_handler]
impl ServerHandler for AbmTools {
    fn get_info(&self) -> ServerInfo {
        ServerInfo {
            instructions: Some(
                "The Cluster ABM engine: search accounts, explain one, see the cluster summary, review checkpoints, post engagement events.".into(),
            ),
            capabilities: ServerCapabilities::builder().enable_tools().build(),
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
pub fn serve_stdio(app: App, reviewer: String) -> Result<(), McpError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // The store's last handle is dropped outside the runtime (see abm-server).
    let keep = app.clone();
    let r = rt.block_on(async move {
        let service = AbmTools::new(app, reviewer)
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
