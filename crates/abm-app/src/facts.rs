//! Stateless assessment of facts passed in (the MCP tools `score_account` and
//! `assign_cluster`): one account's firmographics, and optionally its events, triggers and
//! deals, read through the same parsers and validation as a file import (in memory, nothing
//! stored), assessed by `abm-core` as `abm segment` assesses a row. The config is the app's.

use crate::records::{RecordBatch, RecordKind, RejectedItem};
use crate::{App, AppError, Result, API_VERSION};
use abm_core::explanation::{CriterionExplanation, Explained, Explanation};
use abm_core::{Cluster, EngagementLevel, Instant, Tier};
use abm_io::load::Rejects;
use abm_io::segment::Inputs;
use serde::Serialize;
use serde_json::{Map, Value};

/// The id given to facts without an `account_id`.
pub const FACTS_ACCOUNT_ID: &str = "account";

/// One account's facts. Events, triggers and deals without an `account_id` belong to the
/// account.
#[derive(Debug, Clone, Default)]
pub struct AccountFacts {
    /// The account's fields (canonical names: name, domain, industry, employees,
    /// annual_revenue, country, founded_year, or names the config maps); `account_id` is
    /// optional.
    pub account: Map<String, Value>,
    pub events: Vec<Value>,
    pub triggers: Vec<Value>,
    pub deals: Vec<Value>,
    /// Default: now.
    pub as_of: Option<Instant>,
}

/// `score_account`'s answer: the ICP score, the tier and each criterion.
#[derive(Debug, Clone, Serialize)]
pub struct Scored {
    pub api_version: u32,
    pub account_id: String,
    pub as_of: Instant,
    pub icp_score: f64,
    /// The points the criteria with data could give (the score is out of this).
    pub possible: f64,
    pub tier: Tier,
    pub criteria: Vec<CriterionExplanation>,
    /// Criteria left out: no field of theirs was given.
    pub criteria_without_data: Vec<String>,
    /// Fields given but empty.
    pub missing: Vec<String>,
    /// Fields or items not read, and why (the account still scored on the rest).
    pub rejected_items: Vec<RejectedItem>,
}

/// `assign_cluster`'s answer: the cluster, why, and what to do next, with the whole reasoning.
#[derive(Debug, Clone, Serialize)]
pub struct Assigned {
    pub api_version: u32,
    pub account_id: String,
    pub as_of: Instant,
    pub cluster: Cluster,
    pub program: String,
    pub tier: Tier,
    pub icp_score: f64,
    pub engagement_level: EngagementLevel,
    /// The decision table's row that matched, 1-based.
    pub rule: u8,
    pub rationale: String,
    pub next_action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub micro_segment: Option<String>,
    /// Items not read, and why (the account was assessed on the rest).
    pub rejected_items: Vec<RejectedItem>,
    pub explanation: Explanation,
}

impl App {
    /// Score firmographics against the ICP (nothing stored).
    pub fn score_facts(&self, facts: AccountFacts) -> Result<Scored> {
        let (e, rejected_items) = self.assess_facts(facts)?;
        let s = e.score;
        Ok(Scored {
            api_version: API_VERSION,
            account_id: e.account_id,
            as_of: e.as_of,
            icp_score: s.score,
            possible: s.possible,
            tier: s.tier,
            criteria: s.criteria,
            criteria_without_data: s.criteria_without_data,
            missing: s.missing,
            rejected_items,
        })
    }

    /// Assess an account's facts as `abm segment` would (nothing stored): cluster, rationale,
    /// next action and the whole explanation.
    pub fn assign_facts(&self, facts: AccountFacts) -> Result<Assigned> {
        let (e, rejected_items) = self.assess_facts(facts)?;
        Ok(Assigned {
            api_version: API_VERSION,
            account_id: e.account_id.clone(),
            as_of: e.as_of,
            cluster: e.cluster,
            program: e.program.clone(),
            tier: e.score.tier,
            icp_score: e.score.score,
            engagement_level: e.engagement.level,
            rule: e.decision.rule,
            rationale: e.rationale.clone(),
            next_action: e.next_action.clone(),
            micro_segment: e.micro_segment.clone(),
            rejected_items,
            explanation: e,
        })
    }

    fn assess_facts(&self, facts: AccountFacts) -> Result<(Explanation, Vec<RejectedItem>)> {
        let mut account = facts.account;
        let id = match account.get("account_id") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            None | Some(Value::Null) => FACTS_ACCOUNT_ID.to_string(),
            Some(Value::String(_)) => FACTS_ACCOUNT_ID.to_string(),
            Some(other) => other.to_string(),
        };
        account.insert("account_id".into(), Value::String(id.clone()));
        let own = |items: Vec<Value>| -> Vec<Value> {
            items
                .into_iter()
                .map(|mut v| {
                    if let Some(o) = v.as_object_mut() {
                        o.entry("account_id")
                            .or_insert_with(|| Value::String(id.clone()));
                    }
                    v
                })
                .collect()
        };
        let batches = [
            RecordBatch::new(
                RecordKind::Accounts,
                "facts:account",
                vec![Value::Object(account)],
            ),
            RecordBatch::new(RecordKind::Engagement, "facts:events", own(facts.events)),
            RecordBatch::new(RecordKind::Triggers, "facts:triggers", own(facts.triggers)),
            RecordBatch::new(RecordKind::Deals, "facts:deals", own(facts.deals)),
        ];
        let mut rejected = Vec::new();
        let mut input = |b: &RecordBatch| {
            let (i, r) = b.to_input();
            rejected.extend(r);
            (!b.has_no_objects()).then_some(i)
        };
        let accounts = input(&batches[0]).expect("one account object");
        let inputs = Inputs {
            accounts,
            engagement: input(&batches[1]),
            more_engagement: Vec::new(),
            triggers: input(&batches[2]),
            deals: input(&batches[3]),
        };
        let rules = self.rules_at(facts.as_of.unwrap_or_else(abm_store::wall_clock))?;
        let mut opts = self.load_options();
        opts.threads = 1;
        let (explained, rejects) = abm_io::explain::explain_inputs(&id, &inputs, &rules, &opts)?;
        rejected.extend(RejectedItem::of_rejects(&rejects, &batches));
        rejected.sort_by_key(|x| (x.kind as u8, x.index));
        match explained {
            Explained::Assessed(e) => Ok((*e, rejected)),
            Explained::Rejected(r) => Err(AppError::Invalid(format!(
                "the account was not read: {}",
                r.rows
                    .iter()
                    .map(|x| format!("{}: {}", x.column, x.reason))
                    .collect::<Vec<_>>()
                    .join("; ")
            ))),
        }
    }
}

impl RejectedItem {
    /// The rows a load of `batches` rejected, named by batch kind and index.
    pub fn of_rejects(rejects: &Rejects, batches: &[RecordBatch]) -> Vec<RejectedItem> {
        rejects
            .rows
            .iter()
            .map(|r| RejectedItem {
                kind: batches
                    .iter()
                    .find(|b| b.name == r.file)
                    .map_or(RecordKind::Accounts, |b| b.kind),
                index: (r.line.max(1) - 1) as usize,
                field: r.column.clone(),
                reason: r.reason.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn app(dir: &std::path::Path) -> App {
        let url = dir.join("abm.db").display().to_string();
        App::open(&crate::StoreSettings::new(url), abm_core::Config::default()).unwrap()
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_fit_scores_higher_than_a_misfit_criterion_by_criterion() {
        let d = tempfile::tempdir().unwrap();
        let app = app(d.path());
        let as_of = Some(Instant::parse("2026-06-01").unwrap());
        let fit = app
            .score_facts(AccountFacts {
                account: obj(
                    json!({"name": "Fit", "industry": "software", "employees": "800",
                    "annual_revenue": "120000000", "country": "US"}),
                ),
                as_of,
                ..Default::default()
            })
            .unwrap();
        let misfit = app
            .score_facts(AccountFacts {
                account: obj(
                    json!({"name": "Misfit", "industry": "agriculture", "employees": "3",
                    "country": "US"}),
                ),
                as_of,
                ..Default::default()
            })
            .unwrap();
        assert!(fit.icp_score > misfit.icp_score, "{fit:?} vs {misfit:?}");
        assert!(
            fit.tier < misfit.tier,
            "{:?} vs {:?}",
            fit.tier,
            misfit.tier
        );
        assert_eq!(fit.account_id, FACTS_ACCOUNT_ID);
        assert!(!fit.criteria.is_empty());
        let earned: f64 = fit.criteria.iter().map(|c| c.earned).sum();
        assert!((earned - fit.icp_score).abs() < 1e-6 || fit.possible > 0.0);
    }

    #[test]
    fn engagement_moves_the_cluster_and_bad_items_are_named_by_index() {
        let d = tempfile::tempdir().unwrap();
        let app = app(d.path());
        let as_of = Some(Instant::parse("2026-06-01").unwrap());
        let firmo = obj(
            json!({"account_id": "X1", "name": "Fit", "industry": "software",
            "employees": "800", "annual_revenue": "120000000", "country": "US"}),
        );
        let quiet = app
            .assign_facts(AccountFacts {
                account: firmo.clone(),
                as_of,
                ..Default::default()
            })
            .unwrap();
        let events: Vec<Value> = (0..6)
            .map(|i| {
                json!({"occurred_at": format!("2026-05-{:02}", 10 + i), "type": "meeting",
                    "contact_id": format!("c{}", i % 3)})
            })
            .chain([
                json!({"occurred_at": "someday", "type": "meeting"}),
                json!(7),
            ])
            .collect();
        let busy = app
            .assign_facts(AccountFacts {
                account: firmo,
                events,
                as_of,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(busy.account_id, "X1");
        assert!(
            busy.engagement_level > quiet.engagement_level,
            "{:?} vs {:?}",
            busy.engagement_level,
            quiet.engagement_level
        );
        assert_ne!(busy.cluster, quiet.cluster, "{busy:?}");
        assert!(!busy.next_action.is_empty() && !busy.rationale.is_empty());
        let bad: Vec<(usize, &str)> = busy
            .rejected_items
            .iter()
            .map(|r| (r.index, r.field.as_str()))
            .collect();
        assert_eq!(
            bad,
            [(6, "occurred_at"), (7, "")],
            "{:?}",
            busy.rejected_items
        );
    }
}
