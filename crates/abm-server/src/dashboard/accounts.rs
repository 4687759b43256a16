//! The accounts table: filters, keyset pages (the store listing `GET /api/accounts` uses), a
//! transition-matrix cell as a filter, and "download this view as CSV" (streamed).

use super::layout::{self, Nav};
use super::{failed, html, Form, Me, S};
use crate::routes::blocking;
use crate::Problem;
use abm_app::views::{AccountFilter, AccountPage, Cursor, Moved};
use abm_core::{Cluster, EngagementLevel, Tier};
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

/// Rows per page.
const PAGE: usize = 50;

/// The filters of a view, as the query string carries them.
pub(crate) struct View {
    form: Form,
    pub(crate) filter: AccountFilter,
}

fn parse<T>(form: &Form, name: &str, p: impl Fn(&str) -> Option<T>) -> Result<Option<T>, Problem> {
    match form.get(name) {
        None => Ok(None),
        Some(v) => p(v)
            .map(Some)
            .ok_or_else(|| Problem::bad_request(format!("{name} {v:?} is not valid"))),
    }
}

impl View {
    pub(crate) fn parse(query: Option<&str>) -> Result<View, Problem> {
        let form = Form::parse(query.unwrap_or("").as_bytes());
        let moved = match parse(&form, "run", |v| v.parse::<i64>().ok())? {
            None => None,
            Some(run) => Some(Moved {
                run,
                from: match form.get("from") {
                    None | Some("new") => None,
                    Some(_) => parse(&form, "from", Cluster::parse)?,
                },
                to: parse(&form, "to", Cluster::parse)?
                    .ok_or_else(|| Problem::bad_request("a run filter needs `to`"))?,
            }),
        };
        let filter = AccountFilter {
            cluster: parse(&form, "cluster", Cluster::parse)?,
            candidate: parse(&form, "candidate", Cluster::parse)?,
            tier: parse(&form, "tier", Tier::parse)?,
            engagement: parse(&form, "engagement", EngagementLevel::parse)?,
            micro_segment: form.get("micro_segment").map(str::to_string),
            q: form.get("q").map(str::to_string),
            limit: PAGE,
            cursor: parse(&form, "cursor", Cursor::parse)?,
            moved,
        };
        Ok(View { form, filter })
    }

    /// This view's query string with `cursor` replaced (or dropped).
    fn with_cursor(&self, cursor: Option<&str>) -> String {
        let mut pairs: Vec<(&str, &str)> = self
            .form
            .0
            .iter()
            .filter(|(k, _)| k != "cursor")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if let Some(c) = cursor {
            pairs.push(("cursor", c));
        }
        layout::query(&pairs)
    }

    fn value(&self, name: &str) -> &str {
        self.form.get(name).unwrap_or("")
    }
}

pub(crate) async fn page(State(s): State<S>, me: Me, RawQuery(q): RawQuery) -> Response {
    let view = match View::parse(q.as_deref()) {
        Ok(v) => v,
        Err(p) => return failed(p),
    };
    let filter = view.filter.clone();
    let page = match blocking(&s, move |app| app.list_accounts(&filter)).await {
        Ok(p) => p,
        Err(p) => return failed(p),
    };
    html(
        StatusCode::OK,
        layout::page(&me, Nav::Accounts, "Accounts", table(&view, &page)),
    )
}

fn select<T: Copy>(
    id: &str,
    label: &str,
    all: &[T],
    code: impl Fn(T) -> &'static str,
    text: impl Fn(T) -> String,
    current: &str,
) -> Markup {
    html! {
        div.field {
            label for=(id) { (label) }
            select id=(id) name=(id) {
                option value="" { "any" }
                @for v in all {
                    option value=(code(*v)) selected[code(*v) == current] { (text(*v)) }
                }
            }
        }
    }
}

fn table(view: &View, page: &AccountPage) -> Markup {
    let clusters = Cluster::ALL;
    let moved = view.filter.moved;
    html! {
        form.filters method="get" action="/accounts" role="search" aria-label="Filter accounts" {
            (select("cluster", "Cluster", &clusters, Cluster::as_str, |c| c.label().to_string(), view.value("cluster")))
            (select("candidate", "Candidate cluster", &clusters, Cluster::as_str, |c| c.label().to_string(), view.value("candidate")))
            (select("tier", "Tier", &Tier::ALL, Tier::as_str, |t| t.as_str().to_string(), view.value("tier")))
            (select("engagement", "Engagement", &EngagementLevel::ALL, EngagementLevel::as_str, |e| e.as_str().to_string(), view.value("engagement")))
            div.field {
                label for="micro_segment" { "Micro-segment" }
                input id="micro_segment" name="micro_segment" type="text" value=(view.value("micro_segment"));
            }
            div.field {
                label for="q" { "Search id or name" }
                input id="q" name="q" type="search" value=(view.value("q"));
            }
            @if let Some(m) = moved {
                input type="hidden" name="run" value=(m.run);
                input type="hidden" name="from" value=(m.from.map_or("new", Cluster::as_str));
                input type="hidden" name="to" value=(m.to.as_str());
            }
            div.actions {
                button type="submit" { "Apply filters" }
                a href="/accounts" { "Clear" }
            }
        }
        @if let Some(m) = moved {
            p.note {
                "Accounts that went from "
                @match m.from { Some(c) => { (layout::cluster(c)) } None => { "(no row: new)" } }
                " to " (layout::cluster(m.to)) " at run "
                a href={ "/runs/" (m.run) } { "#" (m.run) } "."
            }
        }
        p.toolbar {
            a.button href={ "/accounts.csv" (view.with_cursor(None)) } download="accounts.csv" {
                "Download this view as CSV"
            }
            span.muted { " Click a column heading to sort this page." }
        }
        @if page.items.is_empty() {
            p role="status" { "No account matches these filters." }
        } @else {
            div.scroll {
                table.sortable id="accounts" {
                    caption { "Accounts" @if let Some(r) = page.run { " (tier, score and engagement as of run #" (r) ")" } }
                    thead { tr {
                        th scope="col" { "Account" }
                        th scope="col" { "Name" }
                        th scope="col" { "Cluster" }
                        th scope="col" { "Tier" }
                        th scope="col" data-type="number" { "Score" }
                        th scope="col" { "Engagement" }
                        th scope="col" { "Micro-segment" }
                        th scope="col" { "Next action" }
                    } }
                    tbody {
                        @for a in &page.items {
                            tr {
                                td { a href={ "/accounts/" (path_segment(&a.account_id)) } { (a.account_id) } }
                                td { (a.name) }
                                td { (layout::cluster_code(a.cluster.as_deref())) }
                                td { (a.tier.as_deref().unwrap_or("—")) }
                                td.n { (a.icp_score.as_deref().unwrap_or("—")) }
                                td { (a.engagement_level.as_deref().unwrap_or("—")) }
                                td { (a.micro_segment.as_deref().unwrap_or("")) }
                                td.small { (a.next_action.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if view.filter.cursor.is_some() {
                a href={ "/accounts" (view.with_cursor(None)) } { "First page" }
            }
            @if let Some(next) = &page.next_cursor {
                a rel="next" href={ "/accounts" (view.with_cursor(Some(next))) } { "Next page →" }
            }
        }
    }
}

/// An account id as one path segment.
pub(crate) fn path_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The whole view (every page) as CSV, streamed as the store pages through it.
pub(crate) async fn csv(State(s): State<S>, _me: Me, RawQuery(q): RawQuery) -> Response {
    let view = match View::parse(q.as_deref()) {
        Ok(v) => v,
        Err(p) => return failed(p),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let app = s.app.clone();
    let filter = view.filter;
    let _producer = tokio::task::spawn_blocking(move || {
        let r = app.accounts_csv(&filter, &mut |chunk| {
            tx.blocking_send(Bytes::copy_from_slice(chunk))
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        });
        match r {
            Ok(_) | Err(abm_app::AppError::Write(_)) => {}
            Err(e) => tracing::error!(error = %e, "the CSV download stopped"),
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    });
    let mut res = Body::from_stream(stream).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"accounts.csv\""),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
