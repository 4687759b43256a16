//! The review queue: pending checkpoints with their evidence and each account's context;
//! approve or reject several at once with a comment (reviewer, recorded under the token's
//! name); the decided items with who, when and why.

use super::layout::{self, num, Nav};
use super::{failed, html, local_path, see_other, Form, Me, S};
use crate::routes::blocking;
use abm_app::access::Role;
use abm_app::views::{AccountListItem, CheckpointView};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use std::collections::HashMap;

/// Pending items shown at once (the count says how many wait).
const SHOWN: usize = 200;
/// Decided items shown.
const DECIDED: usize = 50;

/// The approve/reject controls for checkpoint `id`, going back to `next` afterwards.
pub(crate) fn decision_form(me: &Me, id: i64, next: &str) -> Markup {
    html! {
        form.decide method="post" action="/review" {
            (layout::csrf(me))
            input type="hidden" name="next" value=(next);
            input type="hidden" name="id" value=(id);
            (decision_controls(&format!("c-{id}")))
        }
    }
}

fn decision_controls(comment_id: &str) -> Markup {
    html! {
        div.field.wide {
            label for=(comment_id) { "Comment (recorded with the decision)" }
            textarea id=(comment_id) name="comment" rows="2" {}
        }
        div.actions {
            button.approve type="submit" name="action" value="approve" { "Approve" }
            button.reject type="submit" name="action" value="reject" { "Reject" }
        }
    }
}

struct Loaded {
    pending: Vec<CheckpointView>,
    /// How many are pending (more than shown at 1M accounts).
    waiting: i64,
    decided: Vec<CheckpointView>,
    context: HashMap<String, AccountListItem>,
}

async fn load(s: &S) -> Result<Loaded, crate::Problem> {
    blocking(s, |app| {
        let (pending, waiting) = app.pending_page(SHOWN)?;
        let ids: Vec<&str> = pending
            .iter()
            .filter_map(|c| c.account_id.as_deref())
            .collect();
        let context = app
            .accounts_by_id(&ids)?
            .into_iter()
            .map(|a| (a.account_id.clone(), a))
            .collect();
        Ok(Loaded {
            decided: app.recent_decisions(DECIDED)?,
            pending,
            waiting,
            context,
        })
    })
    .await
}

pub(crate) async fn page(State(s): State<S>, me: Me) -> Response {
    match load(&s).await {
        Ok(l) => html(
            StatusCode::OK,
            layout::page(&me, Nav::Review, "Review queue", body(&me, &l, &[])),
        ),
        Err(p) => failed(p),
    }
}

/// One decision's result, for the page after the form.
struct Outcome {
    id: i64,
    error: Option<String>,
}

pub(crate) async fn decide(State(s): State<S>, me: Me, raw: Bytes) -> Response {
    let form = Form::parse(&raw);
    if let Some(r) = me.refusal(&form, Role::Reviewer) {
        return r;
    }
    let approve = match form.get("action") {
        Some("approve") => true,
        Some("reject") => false,
        _ => return failed(crate::Problem::bad_request("choose approve or reject")),
    };
    let ids: Vec<i64> = form.all("id").filter_map(|v| v.parse().ok()).collect();
    if ids.is_empty() {
        return failed(crate::Problem::bad_request(
            "select at least one checkpoint",
        ));
    }
    let comment = form.get("comment").map(str::to_string);
    let reviewer = me.caller.name.clone();
    let outcomes = blocking(&s, move |app| {
        Ok(ids
            .into_iter()
            .map(|id| Outcome {
                id,
                error: app
                    .decide(id, approve, &reviewer, comment.as_deref())
                    .err()
                    .map(|e| e.to_string()),
            })
            .collect::<Vec<_>>())
    })
    .await;
    let outcomes = match outcomes {
        Ok(o) => o,
        Err(p) => return failed(p),
    };
    let all_ok = outcomes.iter().all(|o| o.error.is_none());
    if all_ok {
        if let Some(next) = local_path(form.get("next")) {
            return see_other(next);
        }
    }
    match load(&s).await {
        Ok(l) => html(
            if all_ok {
                StatusCode::OK
            } else {
                StatusCode::CONFLICT
            },
            layout::page(&me, Nav::Review, "Review queue", body(&me, &l, &outcomes)),
        ),
        Err(p) => failed(p),
    }
}

fn item(c: &CheckpointView, ctx: Option<&AccountListItem>) -> Markup {
    html! {
        div.cp-kind { strong { (c.kind.as_str().replace('_', " ")) } " #" (c.id) }
        div {
            @if let Some(a) = &c.account_id {
                a href={ "/accounts/" (super::accounts::path_segment(a)) } { (a) }
                @if let Some(x) = ctx { " " (x.name) }
            } @else { "(all accounts)" }
        }
        div {
            @if let Some(f) = c.from { (layout::cluster(f)) } " → " @if let Some(t) = c.to { (layout::cluster(t)) }
            @if let Some(r) = &c.rule { div.small { (r) } }
        }
        @if let Some(x) = ctx {
            div.small { "now " (layout::cluster_code(x.cluster.as_deref())) " · tier " (x.tier.as_deref().unwrap_or("—"))
                " · score " (x.icp_score.as_deref().unwrap_or("—")) " · engagement " (x.engagement_level.as_deref().unwrap_or("—")) }
        }
        ul.evidence { @for e in &c.evidence { li { (e.detail) @if let Some(at) = e.at { " (" (layout::date(at)) ")" } } } }
        div.small { "opened by run #" (c.run) " as of " (layout::date(c.as_of)) }
    }
}

fn body(me: &Me, l: &Loaded, outcomes: &[Outcome]) -> Markup {
    let can = me.may(Role::Reviewer);
    html! {
        @if !outcomes.is_empty() {
            div.notice role="status" {
                p { (outcomes.iter().filter(|o| o.error.is_none()).count()) " decided." }
                ul { @for o in outcomes { @if let Some(e) = &o.error { li.error { "#" (o.id) ": " (e) } } } }
            }
        }
        section aria-labelledby="pending-h" {
            h2 id="pending-h" { (num(l.waiting)) " pending" @if l.waiting > l.pending.len() as i64 { " (the oldest " (l.pending.len()) " shown)" } }
            @if l.pending.is_empty() { p { "Nothing waits for a decision." } } @else if can {
                form.queue method="post" action="/review" {
                    (layout::csrf(me))
                    p { label { input type="checkbox" data-select-all="id"; " Select all shown" } }
                    ol.items {
                        @for c in l.pending.iter() {
                            li.item {
                                input type="checkbox" name="id" value=(c.id) id={ "cp-" (c.id) };
                                label.sr-only for={ "cp-" (c.id) } { "Select checkpoint #" (c.id) }
                                div { (item(c, c.account_id.as_ref().and_then(|a| l.context.get(a)))) }
                            }
                        }
                    }
                    (decision_controls("c-bulk"))
                }
            } @else {
                p.muted { "You are signed in as a viewer: you can read the queue; a reviewer decides." }
                ol.items {
                    @for c in l.pending.iter() {
                        li.item { div { (item(c, c.account_id.as_ref().and_then(|a| l.context.get(a)))) } }
                    }
                }
            }
        }
        section aria-labelledby="decided-h" {
            h2 id="decided-h" { "Decided (latest " (DECIDED) ")" }
            @if l.decided.is_empty() { p { "No decisions yet." } } @else {
                table {
                    thead { tr { th scope="col" { "#" } th scope="col" { "Account" } th scope="col" { "Kind" }
                        th scope="col" { "Decision" } th scope="col" { "Who" } th scope="col" { "When" } th scope="col" { "Why" } } }
                    tbody { @for c in &l.decided {
                        tr { td { (c.id) }
                             td { @if let Some(a) = &c.account_id { a href={ "/accounts/" (super::accounts::path_segment(a)) } { (a) } } }
                             td { (c.kind.as_str().replace('_', " ")) }
                             td { (c.status.as_str()) }
                             td { (c.reviewer.as_deref().unwrap_or("—")) }
                             td { @if let Some(d) = c.decided_at { (layout::when(d)) } }
                             td { (c.comment.as_deref().or(c.reason.as_deref()).unwrap_or("")) } }
                    } }
                }
            }
        }
    }
}
