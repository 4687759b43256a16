//! Runs: the list, starting one (admin; one at a time), and a run's transition matrix
//! against the previous run, each cell a link to its accounts.

use super::layout::{self, num, Nav};
use super::{failed, html, see_other, Form, Me, S};
use crate::routes::blocking;
use crate::Problem;
use abm_app::access::Role;
use abm_app::views::{RunListItem, Transitions};
use abm_core::{Cluster, Instant};
use abm_store::RunOutcome;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};

/// Runs listed.
const LISTED: usize = 100;
/// Run `run`'s matrix (stored with the run: a few rows read).
async fn transitions(s: &S, run: i64) -> Result<Transitions, Problem> {
    blocking(s, move |app| app.transitions(run)).await
}

pub(crate) async fn page(State(s): State<S>, me: Me) -> Response {
    list(&s, &me, StatusCode::OK, None).await
}

async fn list(s: &S, me: &Me, status: StatusCode, notice: Option<&str>) -> Response {
    match blocking(s, |app| app.runs(LISTED)).await {
        Ok(runs) => html(
            status,
            layout::page(me, Nav::Runs, "Runs", body(me, &runs, notice)),
        ),
        Err(p) => failed(p),
    }
}

fn body(me: &Me, runs: &[RunListItem], notice: Option<&str>) -> Markup {
    // A Customer column only when a listed run holds customers (`[customers] mode = "track"`).
    let track = runs.iter().any(|r| r.customer > 0);
    html! {
        @if let Some(n) = notice { p.error role="alert" { (n) } }
        @if me.may(Role::Admin) {
            form.filters method="post" action="/runs" aria-labelledby="start-h" {
                h2 id="start-h" { "Start a run" }
                (layout::csrf(me))
                div.field {
                    label for="as_of" { "As of (empty: now)" }
                    input id="as_of" name="as_of" type="date";
                }
                div.actions { button type="submit" { "Start a run" } }
            }
        }
        @if runs.is_empty() { p { "No run yet." } } @else {
            div.scroll {
                table {
                    caption { "The latest " (runs.len()) " runs, newest first" }
                    thead { tr {
                        th scope="col" { "Run" } th scope="col" { "As of" } th scope="col" { "Started" }
                        th scope="col" { "Accounts" } th scope="col" { "Cluster ICP" } th scope="col" { "Future Pipeline" }
                        th scope="col" { "Active Focus" } th scope="col" { "Monitor Only" }
                        @if track { th scope="col" { "Customer" } }
                        th scope="col" { "Promotions" } th scope="col" { "Demotions" } th scope="col" { "Checkpoints opened" }
                    } }
                    tbody { @for r in runs {
                        tr {
                            th scope="row" { a href={ "/runs/" (r.run) } { "#" (r.run) } }
                            td { (r.as_of.get(..10).unwrap_or(&r.as_of)) }
                            td { (r.started_at.get(..16).unwrap_or(&r.started_at).replace('T', " ")) }
                            td.n { (num(r.accounts)) } td.n { (num(r.cluster_icp)) } td.n { (num(r.future_pipeline)) }
                            td.n { (num(r.active_focus)) } td.n { (num(r.monitor_only)) }
                            @if track { td.n { (num(r.customer)) } }
                            td.n { (num(r.promotions)) } td.n { (num(r.demotions)) } td.n { (num(r.checkpoints_opened)) }
                        }
                    } }
                }
            }
        }
    }
}

pub(crate) async fn start(State(s): State<S>, me: Me, body: Bytes) -> Response {
    let form = Form::parse(&body);
    if let Some(r) = me.refusal(&form, Role::Admin) {
        return r;
    }
    let as_of = match form.get("as_of") {
        None => None,
        Some(t) => match Instant::parse(t) {
            Ok(t) => Some(t),
            Err(e) => return failed(Problem::bad_request(format!("as_of {t:?}: {e}"))),
        },
    };
    // The API's lock: one run at a time from this server.
    let Ok(guard) = s.run_lock.try_lock() else {
        return list(
            &s,
            &me,
            StatusCode::CONFLICT,
            Some("A run is already in progress: wait for it to finish."),
        )
        .await;
    };
    let outcome = blocking(&s, move |app| {
        app.run(as_of, None, abm_app::RunObserver::default())
    })
    .await;
    drop(guard);
    match outcome {
        Ok(RunOutcome::Done(r)) => see_other(&format!("/runs/{}", r.run_id)),
        Ok(RunOutcome::Unchanged { run, .. }) => see_other(&format!("/runs/{run}?unchanged=1")),
        Err(p) if p.status == 409 => list(&s, &me, StatusCode::CONFLICT, Some(&p.detail)).await,
        Err(p) => failed(p),
    }
}

pub(crate) async fn matrix(State(s): State<S>, me: Me, Path(id): Path<String>) -> Response {
    let Ok(run) = id.parse::<i64>() else {
        return failed(Problem::not_found(format!("no run {id:?}")));
    };
    match transitions(&s, run).await {
        Ok(t) => html(
            StatusCode::OK,
            layout::page(
                &me,
                Nav::Runs,
                &format!("Run #{run}: transitions"),
                table(&t),
            ),
        ),
        Err(p) => failed(p),
    }
}

fn table(t: &Transitions) -> Markup {
    let mut froms: Vec<Option<Cluster>> = Vec::new();
    if t.cells.iter().any(|c| c.from.is_none()) {
        froms.push(None);
    }
    // The customer track's row and column only when an account is in it.
    let track = t
        .cells
        .iter()
        .any(|c| c.to == Cluster::Customer || c.from == Some(Cluster::Customer));
    let listed = Cluster::listed(track as u64);
    froms.extend(listed.iter().copied().map(Some));
    let link = |from: Option<Cluster>, to: Cluster| {
        format!(
            "/accounts{}",
            layout::query(&[
                ("run", &t.run.to_string()),
                ("from", from.map_or("new", Cluster::as_str)),
                ("to", to.as_str()),
            ])
        )
    };
    html! {
        p { @match t.previous {
            Some(p) => { "Each account's cluster at run " a href={ "/runs/" (p) } { "#" (p) } " (rows) against run #" (t.run) " (columns). Click a count for its accounts." }
            None => { "The first run: every account is new." }
        } }
        div.scroll {
            table.matrix {
                caption { "From (rows) → to (columns), accounts" }
                thead { tr {
                    td {}
                    @for to in listed { th scope="col" { (to.label()) } }
                } }
                tbody { @for from in &froms {
                    tr {
                        th scope="row" { @match from { Some(c) => { (c.label()) } None => { "(new)" } } }
                        @for &to in listed {
                            @let n = t.count(*from, to);
                            td.n.moved[*from != Some(to) && n > 0] {
                                @if n > 0 { a href=(link(*from, to)) { (num(n)) } } @else { span.muted { "0" } }
                            }
                        }
                    }
                } }
            }
        }
    }
}
