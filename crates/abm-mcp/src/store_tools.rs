//! The tools over the store: search, explain, summary, the review queue, event ingest.

use crate::{bad, opt, AbmTools};
use abm_app::access::Role;
use abm_app::accounts::CheckpointStatus;
use abm_app::records::RecordKind;
use abm_app::views::{AccountFilter, Cursor};
use abm_core::{Cluster, EngagementLevel, Tier};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Extensions};
use rmcp::{tool, tool_router, ErrorData};
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SearchParams {
    /// Current cluster: cluster_icp, future_pipeline, active_focus, monitor_only or customer
    /// (the customer track).
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
    /// Re-assess the touched accounts as of this instant (RFC 3339 or YYYY-MM-DD; not before
    /// the latest run's). Default: now, or the latest run's as_of when later.
    #[serde(default)]
    pub as_of: Option<String>,
}

#[tool_router(router = store_router, vis = "pub(crate)")]
impl AbmTools {
    #[tool(
        description = "Search the stored accounts by current cluster, tier, engagement level, micro-segment or text in the id or name. Answers a page {run, items[{account_id, name, cluster, tier, icp_score, engagement_level, micro_segment, next_action}], next_cursor}; pass next_cursor back as cursor for the next page. Role: viewer."
    )]
    async fn search_accounts(
        &self,
        ext: Extensions,
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
            Ok(f) => {
                self.call_as(&ext, Role::Viewer, move |app, _, _| app.list_accounts(&f))
                    .await
            }
            Err(e) => Ok(bad(e)),
        }
    }

    #[tool(
        description = "One stored account now: its fields, current cluster and since when, the latest run's assessment (tier, ICP score, engagement, rule, rationale, next action, evidence) and its open review checkpoints. Role: viewer."
    )]
    async fn explain_account(
        &self,
        ext: Extensions,
        Parameters(p): Parameters<AccountParams>,
    ) -> Result<CallToolResult, ErrorData> {
        self.call_as(&ext, Role::Viewer, move |app, _, _| {
            app.account(&p.account_id)
        })
        .await
    }

    #[tool(
        description = "Counts of the latest run per cluster against capacity, promotions and demotions, and the review queue by kind. Role: viewer."
    )]
    async fn cluster_summary(&self, ext: Extensions) -> Result<CallToolResult, ErrorData> {
        self.call_as(&ext, Role::Viewer, |app, _, _| app.summary())
            .await
    }

    #[tool(
        description = "The review checkpoints (proposed promotions/demotions, conflicts, capacity) with their evidence; status pending (default), approved, rejected, closed or all. Role: viewer."
    )]
    async fn list_checkpoints(
        &self,
        ext: Extensions,
        Parameters(p): Parameters<CheckpointListParams>,
    ) -> Result<CallToolResult, ErrorData> {
        match opt(p.status, "status", CheckpointStatus::parse) {
            Ok(s) => {
                let s = s.unwrap_or(CheckpointStatus::Pending);
                self.call_as(&ext, Role::Viewer, move |app, _, _| app.checkpoints(s))
                    .await
            }
            Err(e) => Ok(bad(e)),
        }
    }

    #[tool(
        description = "Approve or reject a pending checkpoint, with a comment. Approving a proposed move changes the account's current cluster at once; the decision is recorded under the caller's name (the token's name over HTTP). Role: reviewer."
    )]
    async fn resolve_checkpoint(
        &self,
        ext: Extensions,
        Parameters(p): Parameters<ResolveParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let approve = match p.decision.as_str() {
            "approve" => true,
            "reject" => false,
            d => return Ok(bad(format!("decision {d:?}: approve or reject"))),
        };
        self.call_as(&ext, Role::Reviewer, move |app, _, who| {
            app.decide(p.id, approve, &who.name, p.comment.as_deref())
        })
        .await
    }

    #[tool(
        description = "Store engagement events (idempotent: an event_id, else the content, identifies an event) and re-assess their accounts at once. Answers accepted, duplicate and rejected counts, each rejected item's index, field and reason (a bad event never drops the good ones), and under `reevaluated` each touched account's new cluster, movement and any review checkpoint opened. Role: admin."
    )]
    async fn ingest_events(
        &self,
        ext: Extensions,
        Parameters(p): Parameters<IngestParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let as_of = match p.as_of.as_deref().map(abm_core::Instant::parse) {
            None => None,
            Some(Ok(t)) => Some(t),
            Some(Err(e)) => return Ok(crate::bad(format!("as_of: {e}"))),
        };
        self.call_as(&ext, Role::Admin, move |app, _, _| {
            app.ingest(RecordKind::Engagement, p.events, as_of)
        })
        .await
    }
}
