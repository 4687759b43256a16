//! One account's story: score by criterion, tier, engagement with its events on a timeline,
//! triggers, deals, the decision-table row that matched and why, the next action, movements,
//! checkpoints and snapshots over time, and the full explanation.

use super::charts::{self, Dot};
use super::layout::{self, Nav};
use super::review::decision_form;
use super::{failed, html, Me, S};
use crate::routes::blocking;
use abm_app::access::Role;
use abm_app::views::{Explanation, History};
use abm_core::explanation::{EventVerdict, RowOutcome};
use abm_core::movement::CheckpointStatus;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};

/// Snake-case words of a serde enum (`not_matched` → `not matched`).
fn words<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s.replace('_', " "),
        _ => String::new(),
    }
}

pub(crate) async fn page(State(s): State<S>, me: Me, Path(id): Path<String>) -> Response {
    let got = blocking(&s, move |app| {
        let h = app.history(&id)?;
        let ex = match app.latest_as_of()? {
            Some(as_of) => Some(app.explain(&id, as_of)?),
            None => None,
        };
        Ok((h, ex))
    })
    .await;
    let (h, ex) = match got {
        Ok(v) => v,
        Err(p) => return failed(p),
    };
    let title = format!("{} ({})", h.name, h.account_id);
    html(
        StatusCode::OK,
        layout::page(&me, Nav::Accounts, &title, body(&me, &h, ex.as_ref())),
    )
}

fn body(me: &Me, h: &History, ex: Option<&Explanation>) -> Markup {
    let pending: Vec<_> = h
        .checkpoints
        .iter()
        .filter(|c| c.status == CheckpointStatus::Pending)
        .collect();
    let here = format!("/accounts/{}", super::accounts::path_segment(&h.account_id));
    html! {
        section.cards aria-label="Now" {
            div.card { h2 { "Cluster now" } p.big { @if let Some(st) = &h.state { (layout::cluster(st.cluster)) } @else { "—" } } }
            @if let Some(ex) = ex {
                div.card { h2 { "ICP score" } p.big { (abm_core::scoring::format_score(ex.score.score)) " / " (abm_core::scoring::format_score(ex.score.possible)) } p { "tier " strong { (ex.score.tier.as_str()) } } }
                div.card { h2 { "Engagement" } p.big { (ex.engagement.level.as_str()) } p { (ex.engagement.window_days) "-day window" } }
                @if let Some(row) = ex.decision.rows.iter().find(|r| r.outcome == RowOutcome::Matched) {
                    div.card { h2 { "Decision table says" } p.big { (layout::cluster(row.cluster)) } p { "row " (row.row) ": " (row.description) } }
                }
            }
        }
        @if !pending.is_empty() {
            section.pending aria-labelledby="open-h" {
                h2 id="open-h" { "Waiting for a reviewer" }
                @for c in &pending {
                    div.checkpoint {
                        p { strong { (words(&c.kind)) } " #" (c.id) ": "
                            @if let Some(f) = c.from { (layout::cluster(f)) } " → "
                            @if let Some(t) = c.to { (layout::cluster(t)) }
                            @if let Some(r) = &c.rule { " — " (r) } }
                        ul { @for e in &c.evidence { li { (e.detail) @if let Some(at) = e.at { " (" (layout::date(at)) ")" } } } }
                        @if me.may(Role::Reviewer) { (decision_form(me, c.id, &here)) }
                    }
                }
                @if !me.may(Role::Reviewer) {
                    p.muted { "You are signed in as a viewer: a reviewer decides these." }
                }
            }
        }
        @if let Some(ex) = ex {
            section aria-labelledby="next-h" {
                h2 id="next-h" { "Next action" }
                p.next { (ex.next_action) }
                p { (ex.rationale) }
            }
            (score(ex))
            (engagement(ex))
            (triggers_and_deals(ex))
            (decision(ex))
        }
        (history(h))
        @if let Some(ex) = ex {
            section aria-labelledby="full-h" {
                h2 id="full-h" { "The full explanation" }
                details { summary { "Show it as abm explain prints it" } pre { (ex.to_text()) } }
            }
        }
    }
}

fn score(ex: &Explanation) -> Markup {
    let s = &ex.score;
    html! {
        section aria-labelledby="score-h" {
            h2 id="score-h" { "Score: each criterion's points" }
            table {
                caption { "ICP score " (abm_core::scoring::format_score(s.score)) " of "
                    (abm_core::scoring::format_score(s.possible)) " possible → tier " (s.tier.as_str())
                    " (A ≥ " (s.thresholds.a) ", B ≥ " (s.thresholds.b) ", C ≥ " (s.thresholds.c) ", D ≥ " (s.thresholds.d) ")" }
                thead { tr { th scope="col" { "Field" } th scope="col" { "Test" } th scope="col" { "Value" }
                    th scope="col" { "Points" } th scope="col" { "Status" } } }
                tbody { @for c in &s.criteria {
                    tr { th scope="row" { (c.field) } td { (c.test) } td { (c.value.as_deref().unwrap_or("—")) }
                         td.n { (abm_core::scoring::format_score(c.earned)) " / " (abm_core::scoring::format_score(c.possible)) }
                         td { (words(&c.status)) } }
                } }
            }
            @if !s.criteria_without_data.is_empty() {
                p.muted { "Left out (no input has the field): " (s.criteria_without_data.join(", ")) }
            }
        }
    }
}

fn engagement(ex: &Explanation) -> Markup {
    let e = &ex.engagement;
    let dot = |ev: &abm_core::explanation::EventExplanation| Dot {
        at: ev.at,
        kind: ev.event_type.clone(),
        class: match ev.verdict {
            EventVerdict::Counted => "counted",
            EventVerdict::DemotionSignalInWindow | EventVerdict::DemotionSignalOutsideWindow => {
                "signal"
            }
            _ => "ignored",
        },
        label: format!(
            "{} {} {}: {}",
            ev.at,
            ev.event_type,
            ev.contact,
            ev.verdict.describe()
        ),
    };
    let dots: Vec<Dot> = e
        .counted
        .iter()
        .chain(e.not_counted.iter().flat_map(|g| g.events.iter()))
        .map(dot)
        .collect();
    html! {
        section aria-labelledby="eng-h" {
            h2 id="eng-h" { "Engagement: " (e.level.as_str()) }
            p { (e.counted_events) " of " (e.events_read) " events count; "
                (e.engaged_contacts) " engaged contacts (" (e.high_contacts) " high, " (e.medium_contacts) " medium); window "
                (layout::date(e.from)) " to " (layout::date(ex.as_of)) "." }
            @if dots.is_empty() { p { "No events." } } @else {
                (charts::timeline(&dots, e.from, ex.as_of))
                p.legend { span.key.counted { "●" } " counted  " span.key.ignored { "○" } " not counted  " span.key.signal { "◆" } " demotion signal" }
                details {
                    summary { "Events as a table (" (dots.len()) ")" }
                    table {
                        thead { tr { th scope="col" { "When" } th scope="col" { "Type" } th scope="col" { "Contact" } th scope="col" { "Verdict" } } }
                        tbody {
                            @for ev in e.counted.iter().chain(e.not_counted.iter().flat_map(|g| g.events.iter())) {
                                tr { td { (layout::when(ev.at)) } td { (ev.event_type) } td { (ev.contact) }
                                     td { (ev.verdict.describe()) @if let Some(l) = ev.level { " (" (l.as_str()) ")" } } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn triggers_and_deals(ex: &Explanation) -> Markup {
    let t = &ex.triggers;
    html! {
        section aria-labelledby="trg-h" {
            h2 id="trg-h" { "Triggers (" (t.counted) " in the " (t.window_days) "-day window)" }
            @if t.items.is_empty() { p { "None." } } @else {
                table {
                    thead { tr { th scope="col" { "When" } th scope="col" { "Type" } th scope="col" { "Headline" } th scope="col" { "Status" } } }
                    tbody { @for i in &t.items {
                        tr { td { (layout::date(i.at)) } td { (i.trigger_type) } td { (i.headline) } td { (words(&i.status)) } }
                    } }
                }
            }
        }
        section aria-labelledby="deal-h" {
            h2 id="deal-h" { "Deals" }
            @if ex.deals.is_empty() { p { "None." } } @else {
                table {
                    thead { tr { th scope="col" { "Deal" } th scope="col" { "Stage" } th scope="col" { "Outcome" }
                        th scope="col" { "Amount" } th scope="col" { "Created" } th scope="col" { "Status" } } }
                    tbody { @for d in &ex.deals {
                        tr { td { (d.deal_id) } td { (d.stage) } td { (d.outcome.as_str()) }
                             td.n { @if let Some(a) = d.amount { (layout::num(a.round() as i64)) } }
                             td { (layout::date(d.created_at)) }
                             td { (words(&d.status)) @if let Some(n) = d.stalled_days { " (" (n) " days without a stage change)" } } }
                    } }
                }
            }
        }
    }
}

fn decision(ex: &Explanation) -> Markup {
    html! {
        section aria-labelledby="dec-h" {
            h2 id="dec-h" { "The decision table: row " (ex.decision.rule) " matched" }
            table {
                thead { tr { th scope="col" { "Row" } th scope="col" { "When" } th scope="col" { "Cluster" } th scope="col" { "Outcome" } } }
                tbody { @for r in &ex.decision.rows {
                    tr class=[(r.outcome == RowOutcome::Matched).then_some("matched")] {
                        td { (r.row) } td { (r.description) } td { (layout::cluster(r.cluster)) }
                        td { (words(&r.outcome))
                            @if !r.mismatches.is_empty() { ": "
                                (r.mismatches.iter().map(|m| match m {
                                    abm_core::explanation::Mismatch::Tier { tier } => format!("tier is {}", tier.as_str()),
                                    abm_core::explanation::Mismatch::Engagement { level } => format!("engagement is {}", level.as_str()),
                                    abm_core::explanation::Mismatch::NoTriggers => "no triggers".to_string(),
                                    abm_core::explanation::Mismatch::HasTriggers => "has triggers".to_string(),
                                }).collect::<Vec<_>>().join(", ")) } }
                    }
                } }
            }
            @if !ex.conflicts.is_empty() {
                h3 { "Conflicts" }
                ul { @for c in &ex.conflicts { li { (c.description) " (" (words(&c.handling)) ")" } } }
            }
        }
    }
}

fn history(h: &History) -> Markup {
    let mut snaps: Vec<_> = h.snapshots.iter().collect();
    snaps.sort_by_key(|s| std::cmp::Reverse(s.run));
    html! {
        section aria-labelledby="mov-h" {
            h2 id="mov-h" { "Movements" }
            @if h.movements.is_empty() { p { "None yet." } } @else {
                table {
                    thead { tr { th scope="col" { "As of" } th scope="col" { "Run" } th scope="col" { "From" } th scope="col" { "To" } th scope="col" { "Rule" } th scope="col" { "Approved by" } } }
                    tbody { @for m in h.movements.iter().rev() {
                        tr { td { (layout::date(m.as_of)) } td { a href={ "/runs/" (m.run) } { "#" (m.run) } }
                             td { (layout::cluster(m.from)) } td { (layout::cluster(m.to)) } td { (m.rule) }
                             td { (m.approved_by.as_deref().unwrap_or("—")) } }
                    } }
                }
            }
        }
        section aria-labelledby="cp-h" {
            h2 id="cp-h" { "Checkpoints" }
            @if h.checkpoints.is_empty() { p { "None." } } @else {
                table {
                    thead { tr { th scope="col" { "#" } th scope="col" { "Kind" } th scope="col" { "Opened" } th scope="col" { "Status" } th scope="col" { "By" } th scope="col" { "When" } th scope="col" { "Why" } } }
                    tbody { @for c in h.checkpoints.iter().rev() {
                        tr { td { (c.id) } td { (words(&c.kind)) } td { (layout::date(c.as_of)) }
                             td { (c.status.as_str()) } td { (c.reviewer.as_deref().unwrap_or("—")) }
                             td { @if let Some(d) = c.decided_at { (layout::when(d)) } }
                             td { (c.comment.as_deref().or(c.reason.as_deref()).unwrap_or("")) } }
                    } }
                }
            }
        }
        section aria-labelledby="snap-h" {
            h2 id="snap-h" { "Over time (a row per change)" }
            table {
                thead { tr { th scope="col" { "Run" } th scope="col" { "As of" } th scope="col" { "Cluster" } th scope="col" { "Candidate" }
                    th scope="col" { "Tier" } th scope="col" { "Score" } th scope="col" { "Engagement" } th scope="col" { "Movement" } } }
                tbody { @for s in snaps {
                    tr { td { a href={ "/runs/" (s.run) } { "#" (s.run) } } td { (layout::date(s.as_of)) }
                         td { (layout::cluster(s.cluster)) } td { (layout::cluster(s.candidate)) }
                         td { (s.tier.as_str()) } td.n { (s.icp_score) } td { (s.engagement_level.as_str()) }
                         td { (s.movement.as_str()) } }
                } }
            }
        }
    }
}
