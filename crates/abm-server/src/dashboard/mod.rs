//! The team's dashboard (issue 18), served by `abm serve` at `/`: server-rendered HTML
//! (`maud`, checked at compile time), inline SVG charts drawn here, a few lines of progressive
//! JavaScript served from this binary. Same process, tokens and roles as the JSON API: a
//! token signs a browser in (see `session`), a viewer sees no write control and any POST of
//! theirs is a 403, and every form carries the session's CSRF token (a POST without it: 403).
//! Handlers call `abm_app::App` only, on the blocking pool.

mod account;
mod accounts;
mod analytics;
mod charts;
mod layout;
mod overview;
mod review;
mod runs;
pub(crate) mod session;

use crate::routes::blocking;
use crate::Shared;
use abm_app::access::{Caller, Role};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

type S = Arc<Shared>;

pub(crate) fn router() -> Router<S> {
    Router::new()
        .route("/", get(overview::page))
        .route("/signin", get(signin_form).post(signin))
        .route("/signout", axum::routing::post(signout))
        .route("/accounts", get(accounts::page))
        .route("/accounts.csv", get(accounts::csv))
        .route("/accounts/{id}", get(account::page))
        .route("/review", get(review::page).post(review::decide))
        .route("/runs", get(runs::page).post(runs::start))
        .route("/runs/{id}", get(runs::matrix))
        .route("/analytics", get(analytics::page))
        .route("/assets/{name}", get(asset))
}

/// The signed-in caller of a dashboard request. Without a live session: a GET is sent to the
/// sign-in page, anything else is a 403.
pub(crate) struct Me {
    pub(crate) caller: Caller,
    pub(crate) csrf: String,
}

impl FromRequestParts<S> for Me {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &S) -> Result<Me, Response> {
        let refuse = |parts: &Parts| {
            if parts.method == Method::GET || parts.method == Method::HEAD {
                see_other("/signin")
            } else {
                forbidden("sign in first (your session ended, or this form is not ours)")
            }
        };
        let Some(live) =
            session::cookie(&parts.headers, session::COOKIE).and_then(|id| s.sessions.get(id))
        else {
            return Err(refuse(&*parts));
        };
        let token = live.token.clone();
        match blocking(s, move |app| app.authenticate(&token)).await {
            Ok(Some(caller)) => Ok(Me {
                caller,
                csrf: live.csrf,
            }),
            Ok(None) => Err(refuse(&*parts)),
            Err(p) => Err(p.into_response()),
        }
    }
}

impl Me {
    /// A 403 unless `form` carries this session's CSRF token and the caller has `min`.
    pub(crate) fn refusal(&self, form: &Form, min: Role) -> Option<Response> {
        if !session::same(form.get("csrf").unwrap_or(""), &self.csrf) {
            return Some(forbidden(
                "this form's CSRF token is missing or wrong: reload the page and try again",
            ));
        }
        if self.caller.role < min {
            return Some(forbidden(&format!(
                "this needs the {min} role; you are signed in as {} ({})",
                self.caller.name, self.caller.role
            )));
        }
        None
    }

    pub(crate) fn may(&self, role: Role) -> bool {
        self.caller.role >= role
    }
}

/// A urlencoded form body or query, fields in order (a name may repeat).
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    pub(crate) fn parse(body: &[u8]) -> Form {
        Form(form_urlencoded::parse(body).into_owned().collect())
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An HTML page with the dashboard's security headers.
pub(crate) fn html(status: StatusCode, body: maud::Markup) -> Response {
    let mut res = (status, body.into_string()).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(h);
    res
}

fn secure_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

pub(crate) fn see_other(to: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

pub(crate) fn forbidden(why: &str) -> Response {
    html(
        StatusCode::FORBIDDEN,
        layout::bare("Not allowed", why, StatusCode::FORBIDDEN),
    )
}

/// An error page for a failed `App` call.
pub(crate) fn failed(p: crate::Problem) -> Response {
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    html(status, layout::bare(&p.title, &p.detail, status))
}

/// A local path to go back to after a form (never another site).
pub(crate) fn local_path(p: Option<&str>) -> Option<&str> {
    p.filter(|p| p.starts_with('/') && !p.starts_with("//") && !p.contains('\\'))
}

async fn signin_form(headers: HeaderMap) -> Response {
    let csrf = session::random_token();
    let mut res = html(StatusCode::OK, layout::signin(&csrf, None));
    let cookie = session::set_cookie(
        session::SIGNIN_COOKIE,
        &csrf,
        session::behind_tls(&headers),
        Some(3600),
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

async fn signin(State(s): State<S>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let form = Form::parse(&body);
    let pre = session::cookie(&headers, session::SIGNIN_COOKIE).unwrap_or("");
    if pre.is_empty() || !session::same(form.get("csrf").unwrap_or(""), pre) {
        return forbidden("the sign-in form's CSRF token is missing or wrong: reload the page");
    }
    let token = form.get("token").unwrap_or("").trim().to_string();
    let check = token.clone();
    match blocking(&s, move |app| app.authenticate(&check)).await {
        Ok(Some(caller)) => {
            let id = s.sessions.create(token);
            tracing::info!(name = %caller.name, role = %caller.role, "dashboard sign-in");
            let mut res = see_other("/");
            let secure = session::behind_tls(&headers);
            for c in [
                session::set_cookie(session::COOKIE, &id, secure, None),
                session::set_cookie(session::SIGNIN_COOKIE, "", secure, Some(0)),
            ] {
                if let Ok(v) = HeaderValue::from_str(&c) {
                    res.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            res
        }
        Ok(None) => html(
            StatusCode::UNAUTHORIZED,
            layout::signin(pre, Some("That token is unknown or revoked.")),
        ),
        Err(p) => failed(p),
    }
}

async fn signout(
    State(s): State<S>,
    me: Me,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = me.refusal(&Form::parse(&body), Role::Viewer) {
        return r;
    }
    if let Some(id) = session::cookie(&headers, session::COOKIE) {
        s.sessions.remove(id);
    }
    let mut res = see_other("/signin");
    let c = session::set_cookie(session::COOKIE, "", session::behind_tls(&headers), Some(0));
    if let Ok(v) = HeaderValue::from_str(&c) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

/// The stylesheet and the script (static, no data: served without a session so the sign-in
/// page is styled).
async fn asset(Path(name): Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "dashboard.css" => (include_str!("assets/dashboard.css"), "text/css"),
        "dashboard.js" => (include_str!("assets/dashboard.js"), "text/javascript"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    res
}
