//! Analytics: a period's segment performance from the store (`abm analyze` on the database:
//! segments, clusters and tiers with win rates, revenue, CLV, the migration between runs, the
//! forecast), shown as the very report `abm analyze` writes (`abm_analytics::report::html`).
//! The form is a dashboard page; the report is a page of its own (inline SVG and styles, no
//! script) with a Content-Security-Policy that allows its inline styles and nothing else.

use super::layout::{self, Nav};
use super::{failed, html, Form, Me, S};
use crate::routes::blocking;
use abm_analytics::perf::Period;
use abm_app::analytics::StoredAnalysis;
use abm_core::Instant;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

/// The default period: this many days up to the latest run's as_of.
const DEFAULT_DAYS: i64 = 90;
const MICROS_PER_DAY: i64 = 86_400_000_000;

pub(crate) async fn page(State(s): State<S>, me: Me, RawQuery(q): RawQuery) -> Response {
    let form = Form::parse(q.as_deref().unwrap_or("").as_bytes());
    let latest = match blocking(&s, |app| app.latest_as_of()).await {
        Ok(t) => t,
        Err(p) => return failed(p),
    };
    let (Some(from), Some(to)) = (form.get("from"), form.get("to")) else {
        return html(
            StatusCode::OK,
            layout::page(&me, Nav::Analytics, "Analytics", body(latest, None)),
        );
    };
    let parsed = Instant::parse(from)
        .map_err(|e| format!("from: {e}"))
        .and_then(|f| Ok((f, Instant::parse(to).map_err(|e| format!("to: {e}"))?)))
        .and_then(|(f, t)| {
            if f <= t {
                Ok((f, t))
            } else {
                Err(format!("from ({from}) is after to ({to})"))
            }
        });
    let (from, to) = match parsed {
        Ok(p) => p,
        Err(e) => {
            return html(
                StatusCode::BAD_REQUEST,
                layout::page(&me, Nav::Analytics, "Analytics", body(latest, Some(&e))),
            )
        }
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let req = StoredAnalysis {
        period: Period::of_days(from, to, None),
        spend: None,
        runs: None,
        threads,
    };
    match blocking(&s, move |app| app.analyze(&req)).await {
        Ok(a) => report(abm_analytics::report::html(&a)),
        Err(p) => failed(p),
    }
}

/// The report as its own document: its inline styles are allowed, nothing else is.
fn report(doc: String) -> Response {
    let mut res = (StatusCode::OK, doc).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
             form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn body(latest: Option<Instant>, error: Option<&str>) -> Markup {
    let to = latest.map(|t| t.date_string());
    let from = latest.map(|t| Instant(t.0 - DEFAULT_DAYS * MICROS_PER_DAY).date_string());
    html! {
        @if let Some(e) = error { p.error role="alert" { (e) } }
        @if latest.is_none() {
            p { "No run yet: the analytics read the clusters a run recorded. Start one under Runs." }
        } @else {
            p {
                "Segment performance for a period, as " code { "abm analyze --from … --to …" }
                " gives it on this database: accounts, customers, won and lost deals, win rates \
                 with their 95% intervals, revenue, CLV, the migration between runs, the \
                 forecast and the capacity guidance. Deals count when they closed in the period \
                 (both days included); clusters and tiers are those of the run holding at its end."
            }
            form.filters method="get" action="/analytics" aria-labelledby="period-h" {
                h2 id="period-h" { "Period" }
                label for="from" { "From" }
                input id="from" name="from" type="date" required value=[from];
                label for="to" { "To" }
                input id="to" name="to" type="date" required value=[to];
                button type="submit" { "Open the report" }
            }
        }
    }
}
