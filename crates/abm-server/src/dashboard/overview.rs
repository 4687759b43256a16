//! The overview: clusters against capacity, movements per run, the review queue, the last
//! run and its warnings.

use super::charts::{self, RunMoves, Stage};
use super::layout::{self, num, Nav};
use super::{failed, html, Me, S};
use crate::routes::blocking;
use abm_app::views::{RunListItem, StoreSummary};
use abm_core::Cluster;
use abm_store::StoreError;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};

/// Runs shown on the movements chart.
const CHART_RUNS: usize = 30;

pub(crate) async fn page(State(s): State<S>, me: Me) -> Response {
    let capacity = s.app.config().capacity.clone();
    let got = blocking(&s, |app| {
        let summary = match app.summary() {
            Ok(v) => Some(v),
            Err(abm_app::AppError::Store(
                StoreError::NoRun | StoreError::NoRuns | StoreError::NoAccounts,
            )) => None,
            Err(e) => return Err(e),
        };
        Ok((summary, app.runs(CHART_RUNS)?))
    })
    .await;
    let (summary, runs) = match got {
        Ok(v) => v,
        Err(p) => return failed(p),
    };
    let body = match summary {
        None => html! {
            p { "No run yet. Import data and start a run (" code { "abm import DIR" } ", "
                code { "abm run" } ", or " a href="/runs" { "Runs" } " as an admin)." }
        },
        Some(sum) => overview(&sum, &runs, &capacity),
    };
    html(
        StatusCode::OK,
        layout::page(&me, Nav::Overview, "Overview", body),
    )
}

fn overview(
    sum: &StoreSummary,
    runs: &[RunListItem],
    capacity: &abm_core::config::CapacityConfig,
) -> Markup {
    let total = sum.accounts.max(0) as u64;
    let count = |c: Cluster| match c {
        Cluster::ClusterIcp => sum.cluster_icp_count,
        Cluster::FuturePipeline => sum.future_pipeline_count,
        Cluster::ActiveFocus => sum.active_focus_count,
        Cluster::MonitorOnly => sum.monitor_only_count,
        Cluster::Customer => sum.customer_count,
    };
    // The customer track is the funnel's last stage when it holds accounts (its capacity is
    // optional: no range, no status, when `[capacity.customer]` is unset).
    let stages: Vec<Stage> = [
        Cluster::ClusterIcp,
        Cluster::FuturePipeline,
        Cluster::ActiveFocus,
        Cluster::Customer,
    ]
    .into_iter()
    .filter(|c| *c != Cluster::Customer || sum.customer_count > 0)
    .map(|c| {
        let range = capacity.of(c).map(|range| {
            let (min, max) = range.bounds(total);
            let max = if max == u64::MAX { total.max(min) } else { max };
            (min as i64, max as i64)
        });
        Stage {
            cluster: c,
            count: count(c),
            range,
        }
    })
    .collect();
    let pending: i64 = sum.pending.values().sum();
    let moves: Vec<RunMoves> = runs
        .iter()
        .rev()
        .map(|r| RunMoves {
            run: r.run,
            as_of: r.as_of.get(..10).unwrap_or(&r.as_of).to_string(),
            promotions: r.promotions,
            demotions: r.demotions,
        })
        .collect();
    let mut warnings: Vec<String> = sum.capacity.warnings.clone();
    if sum.events_after_as_of > 0 {
        warnings.push(format!(
            "{} stored events are dated after this run's as_of and were not counted: start a run to count them",
            num(sum.events_after_as_of)
        ));
    }
    html! {
        section.cards aria-label="Key figures" {
            div.card { h2 { "Accounts" } p.big { (num(sum.accounts)) } }
            div.card {
                h2 { "Pending review" }
                p.big { a href="/review" { (num(pending)) } }
            }
            div.card {
                h2 { "Last run" }
                p.big { a href={ "/runs/" (sum.run) } { "#" (sum.run) } }
                p { "as of " (layout::date(sum.as_of)) ", started " (layout::when(sum.started_at)) }
                @if sum.decisions_since_run > 0 {
                    p.small { (num(sum.decisions_since_run)) " review decisions since (shown in the counts)" }
                }
            }
            div.card {
                h2 { "Moves in the last run" }
                p.big { (num(sum.promotions)) " ↑ " (num(sum.demotions)) " ↓" }
            }
        }
        section aria-labelledby="warn-h" {
            h2 id="warn-h" { "Warnings" }
            @if warnings.is_empty() {
                p.ok-note { "None: every cluster is within its range." }
            } @else {
                ul.warnings { @for w in &warnings { li { (w) } } }
            }
        }
        section aria-labelledby="funnel-h" {
            h2 id="funnel-h" { "Clusters against capacity" }
            (charts::funnel(&stages))
            table {
                caption { "Counts, recommended ranges and status" }
                thead { tr { th scope="col" { "Cluster" } th scope="col" { "Accounts" }
                    th scope="col" { "Recommended" } th scope="col" { "Status" } } }
                tbody {
                    @for st in &stages {
                        tr {
                            th scope="row" { a href={ "/accounts?cluster=" (st.cluster.as_str()) } { (st.cluster.label()) } }
                            td.n { (num(st.count)) }
                            td { @if let Some((a, b)) = st.range { (num(a)) "–" (num(b)) } @else { "—" } }
                            td { span class={ "status " (st.status()) } { (st.status()) } }
                        }
                    }
                    tr {
                        th scope="row" { a href="/accounts?cluster=monitor_only" { "Monitor Only" } }
                        td.n { (num(sum.monitor_only_count)) }
                        td { "—" }
                        td { }
                    }
                }
            }
        }
        section aria-labelledby="moves-h" {
            h2 id="moves-h" { "Movements per run" }
            @if moves.is_empty() { p { "No runs yet." } } @else {
                (charts::movements(&moves))
                details {
                    summary { "The same as a table" }
                    table {
                        thead { tr { th scope="col" { "Run" } th scope="col" { "as of" }
                            th scope="col" { "Promotions" } th scope="col" { "Demotions" } } }
                        tbody { @for m in moves.iter().rev() {
                            tr { td { a href={ "/runs/" (m.run) } { "#" (m.run) } } td { (m.as_of) }
                                 td.n { (num(m.promotions)) } td.n { (num(m.demotions)) } }
                        } }
                    }
                }
            }
        }
    }
}
