//! The stateless tools: `score_account` and `assign_cluster` on facts passed in, through
//! `abm_app::App::score_facts` / `assign_facts` (abm-core's scoring and decision table under
//! the server's config; nothing is stored).

use crate::{bad, AbmTools};
use abm_app::access::Role;
use abm_app::facts::AccountFacts;
use abm_core::Instant;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Extensions};
use rmcp::{tool, tool_router, ErrorData};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ScoreParams {
    /// The company's firmographics, by canonical field name: name, domain, industry,
    /// employees, annual_revenue (a number), country, founded_year, and any custom field the
    /// ICP criteria read (e.g. tech_stack as a ;-separated list). Missing fields are left out
    /// of the points possible (or earn 0, per `[icp] missing`).
    pub firmographics: Map<String, Value>,
    /// The date to score as of (RFC 3339 or YYYY-MM-DD; default now).
    pub as_of: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AssignParams {
    /// The account's fields, as in score_account's firmographics (account_id optional).
    pub firmographics: Map<String, Value>,
    /// Engagement events: {occurred_at (RFC 3339 or YYYY-MM-DD), type (meeting, demo,
    /// email_reply, webinar, content_download, …), contact_id, event_id?}.
    #[serde(default)]
    pub events: Vec<Value>,
    /// Buyer signals: {occurred_at, type (funding_round, leadership_change, expansion,
    /// hiring_surge, …), headline?, source?}.
    #[serde(default)]
    pub triggers: Vec<Value>,
    /// Deals: {deal_id, stage, amount?, created_at, closed_at?, last_stage_change_at?,
    /// outcome? (open, won, lost)}.
    #[serde(default)]
    pub deals: Vec<Value>,
    /// The date to assess as of (RFC 3339 or YYYY-MM-DD; default now). Nothing dated after
    /// it counts.
    pub as_of: Option<String>,
}

fn as_of(v: Option<String>) -> Result<Option<Instant>, CallToolResult> {
    match v.filter(|s| !s.trim().is_empty()) {
        None => Ok(None),
        Some(s) => Instant::parse(s.trim())
            .map(Some)
            .map_err(|e| bad(format!("as_of {s:?}: {e}"))),
    }
}

#[tool_router(router = assess_router, vis = "pub(crate)")]
impl AbmTools {
    #[tool(
        description = "Score a company's ICP fit from firmographics passed in (stateless; nothing is stored): {icp_score, possible, tier A–E, criteria[{field, test, value, earned, points, possible, status}], criteria_without_data, missing, rejected_items}. Uses the server's abm.toml. Role: viewer."
    )]
    async fn score_account(
        &self,
        ext: Extensions,
        Parameters(p): Parameters<ScoreParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let as_of = match as_of(p.as_of) {
            Ok(t) => t,
            Err(e) => return Ok(e),
        };
        let facts = AccountFacts {
            account: p.firmographics,
            as_of,
            ..Default::default()
        };
        self.call_as(&ext, Role::Viewer, move |app, _, _| app.score_facts(facts))
            .await
    }

    #[tool(
        description = "Assign an account to a cluster from its facts passed in (firmographics, engagement events, triggers, deals, as_of; stateless, nothing is stored), as `abm segment` would: {cluster (cluster_icp, future_pipeline, active_focus, monitor_only; customer in the customer track), program, tier, icp_score, engagement_level, rule, rationale, next_action, micro_segment, rejected_items (index, field, reason), explanation (the whole reasoning)}. Uses the server's abm.toml. Role: viewer."
    )]
    async fn assign_cluster(
        &self,
        ext: Extensions,
        Parameters(p): Parameters<AssignParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let as_of = match as_of(p.as_of) {
            Ok(t) => t,
            Err(e) => return Ok(e),
        };
        let facts = AccountFacts {
            account: p.firmographics,
            events: p.events,
            triggers: p.triggers,
            deals: p.deals,
            as_of,
        };
        self.call_as(&ext, Role::Viewer, move |app, _, _| app.assign_facts(facts))
            .await
    }
}
