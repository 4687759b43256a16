//! The page shell (navigation, sign-out, skip link) and small shared pieces.

use super::Me;
use abm_core::{Cluster, Instant};
use axum::http::StatusCode;
use maud::{html, Markup, DOCTYPE};

/// Which navigation entry a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Overview,
    Accounts,
    Review,
    Runs,
    Analytics,
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · abm" }
            link rel="stylesheet" href="/assets/dashboard.css";
            script src="/assets/dashboard.js" defer {}
        }
    }
}

/// A signed-in page.
pub(crate) fn page(me: &Me, nav: Nav, title: &str, body: Markup) -> Markup {
    let entry = |n: Nav, href: &str, label: &str| {
        html! {
            li { a href=(href) aria-current=[(n == nav).then_some("page")] { (label) } }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    nav aria-label="Main" {
                        span.brand { "abm" }
                        ul {
                            (entry(Nav::Overview, "/", "Overview"))
                            (entry(Nav::Accounts, "/accounts", "Accounts"))
                            (entry(Nav::Review, "/review", "Review queue"))
                            (entry(Nav::Runs, "/runs", "Runs"))
                            (entry(Nav::Analytics, "/analytics", "Analytics"))
                        }
                    }
                    form.signout method="post" action="/signout" {
                        span.who { (me.caller.name) " · " (me.caller.role) }
                        (csrf(me))
                        button type="submit" { "Sign out" }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The hidden CSRF field every form carries.
pub(crate) fn csrf(me: &Me) -> Markup {
    html! { input type="hidden" name="csrf" value=(me.csrf); }
}

/// A page outside a session (errors).
pub(crate) fn bare(title: &str, detail: &str, status: StatusCode) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                main.narrow id="main" {
                    h1 { (title) }
                    p role="alert" { (detail) }
                    p { "(HTTP " (status.as_u16()) ") " a href="/" { "Back to the dashboard" } }
                }
            }
        }
    }
}

pub(crate) fn signin(csrf: &str, error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Sign in"))
            body {
                main.narrow id="main" {
                    h1 { "Sign in to abm" }
                    @if let Some(e) = error { p.error role="alert" { (e) } }
                    form method="post" action="/signin" {
                        input type="hidden" name="csrf" value=(csrf);
                        label for="token" { "API token" }
                        input id="token" name="token" type="password" autocomplete="off" required
                            autofocus aria-describedby="token-help";
                        p id="token-help" .help {
                            "A token from " code { "abm token create --role viewer|reviewer|admin --name NAME" }
                            " (abm serve prints the first admin token when it starts on a new database)."
                        }
                        button type="submit" { "Sign in" }
                    }
                }
            }
        }
    }
}

/// A cluster as a coloured label (colour never the only cue: the name is written).
pub(crate) fn cluster(c: Cluster) -> Markup {
    html! { span class={ "badge c-" (c.as_str()) } { (c.label()) } }
}

/// A cluster code from a listing (text) as a label.
pub(crate) fn cluster_code(code: Option<&str>) -> Markup {
    match code.and_then(Cluster::parse) {
        Some(c) => cluster(c),
        None => html! { span.muted { "—" } },
    }
}

/// An instant as its date (the full instant in the title).
pub(crate) fn date(t: Instant) -> Markup {
    let full = t.to_string();
    let day = full.get(..10).unwrap_or(&full).to_string();
    html! { time datetime=(full) title=(full) { (day) } }
}

/// An instant as date and minute.
pub(crate) fn when(t: Instant) -> Markup {
    let full = t.to_string();
    let short = full.get(..16).unwrap_or(&full).replace('T', " ");
    html! { time datetime=(full) { (short) } }
}

/// `n` with thousands separators.
pub(crate) fn num(n: i64) -> String {
    let s = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A query string from pairs (values percent-encoded; empty values left out).
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.is_empty() {
            ser.append_pair(k, v);
        }
    }
    let q = ser.finish();
    if q.is_empty() {
        q
    } else {
        format!("?{q}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_queries() {
        assert_eq!(num(0), "0");
        assert_eq!(num(1234567), "1,234,567");
        assert_eq!(num(-1000), "-1,000");
        assert_eq!(query(&[("a", "x y"), ("b", "")]), "?a=x+y");
        assert_eq!(query(&[("b", "")]), "");
    }
}
