//! The dashboard over plain HTTP (in-process, no browser), on SQLite and PostgreSQL: sign-in
//! cookies and their flags, CSRF on every POST, a viewer's 403s, a reviewer's bulk decision
//! changing the account's cluster at once, sign-out, the CSV download (every row, formula cells
//! neutralised), a run started by an admin and its transition matrix.

use abm_app::access::Role;
use abm_app::{App, StoreSettings};
use abm_core::Config;
use abm_io::sample::{write_sample, SampleSpec, SAMPLE_AS_OF};
use abm_store::ImportInputs;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

struct World {
    app: App,
    router: axum::Router,
    rt: tokio::runtime::Runtime,
    admin: String,
    reviewer: String,
    viewer: String,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    fn location(&self) -> &str {
        self.headers
            .get("location")
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    /// The CSRF token of the first form on the page.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no CSRF field in {}", self.body));
        let rest = &self.body[at + 19..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

fn world(url: &str) -> World {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_sample(
        &data,
        &SampleSpec {
            accounts: 300,
            ..SampleSpec::default()
        },
    )
    .unwrap();
    // An account whose name a spreadsheet would run as a formula.
    let accounts = data.join("accounts.csv");
    let mut text = std::fs::read_to_string(&accounts).unwrap();
    text.push_str("ACC-EVIL,=1+2,evil.example,Software,120,5000000,US,2001,,\n");
    std::fs::write(&accounts, text).unwrap();
    let app = App::open(&StoreSettings::new(url), Config::default()).unwrap();
    let inputs = ImportInputs {
        accounts: Some(accounts.into()),
        engagement: Some(data.join("engagement.csv").into()),
        triggers: Some(data.join("triggers.csv").into()),
        deals: Some(data.join("deals.csv").into()),
        more_engagement: Vec::new(),
    };
    app.import(&inputs, &app.load_options(), &mut |_| Ok(()))
        .unwrap();
    // Two runs: the second sees the events of the weeks between (promotions wait for review).
    let end = abm_core::Instant::parse(SAMPLE_AS_OF).unwrap();
    for as_of in [abm_core::Instant(end.0 - 45 * 86_400 * 1_000_000), end] {
        app.run(Some(as_of), Some(2), abm_app::RunObserver::default())
            .unwrap();
    }
    let admin = app.token_create("root", Role::Admin).unwrap();
    let reviewer = app.token_create("rita", Role::Reviewer).unwrap();
    let viewer = app.token_create("vic", Role::Viewer).unwrap();
    World {
        router: abm_server::router(app.clone()),
        rt: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
        app,
        admin,
        reviewer,
        viewer,
        _dir: dir,
    }
}

impl World {
    fn call(&self, method: &str, uri: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> Answer {
        self.call_with(method, uri, cookie, form, &[])
    }

    fn call_with(
        &self,
        method: &str,
        uri: &str,
        cookie: Option<&str>,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in form {
            ser.append_pair(k, v);
        }
        let body = ser.finish();
        if !form.is_empty() {
            req = req.header("content-type", "application/x-www-form-urlencoded");
        }
        self.rt.block_on(async {
            let res = self
                .router
                .clone()
                .oneshot(req.body(Body::from(body)).unwrap())
                .await
                .unwrap();
            let status = res.status();
            let headers = res.headers().clone();
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            Answer {
                status,
                headers,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            }
        })
    }

    /// Sign in with `token`: the session cookie (`name=value`).
    fn sign_in(&self, token: &str) -> String {
        let form = self.call("GET", "/signin", None, &[]);
        assert_eq!(form.status, StatusCode::OK);
        let pre = form.set_cookies()[0].split(';').next().unwrap().to_string();
        let csrf = form.csrf();
        let a = self.call(
            "POST",
            "/signin",
            Some(&pre),
            &[("csrf", &csrf), ("token", token)],
        );
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        let session = a
            .set_cookies()
            .into_iter()
            .find(|c| c.starts_with("abm_session="))
            .expect("a session cookie");
        session.split(';').next().unwrap().to_string()
    }
}

fn on_sqlite(f: fn(&str)) {
    let dir = tempfile::tempdir().unwrap();
    f(&dir.path().join("abm.db").display().to_string());
}

fn on_postgres(name: &str, f: fn(&str)) {
    abm_store::testing::in_pg_schema(&format!("dash_{name}"), f);
}

/// Sign-in: the cookies' flags, a wrong CSRF token or token refused, sign-out ends the session,
/// a revoked token ends its sessions.
fn sessions(url: &str) {
    let w = world(url);
    let a = w.call("GET", "/", None, &[]);
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.location(), "/signin");
    let form = w.call("GET", "/signin", None, &[]);
    let pre = &form.set_cookies()[0];
    assert!(pre.starts_with("abm_signin="), "{pre}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(pre.contains(flag), "{pre}");
    }
    assert!(!pre.contains("Secure"), "plain HTTP: no Secure flag");
    let pre = pre.split(';').next().unwrap();
    let csrf = form.csrf();
    assert_eq!(pre, format!("abm_signin={csrf}"));
    // A forged sign-in (no or another CSRF token) is refused before the token is looked at.
    for (cookie, token) in [(None, csrf.as_str()), (Some(pre), "nope")] {
        let a = w.call(
            "POST",
            "/signin",
            cookie,
            &[("csrf", token), ("token", &w.viewer)],
        );
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        assert!(a.set_cookies().is_empty());
    }
    let a = w.call(
        "POST",
        "/signin",
        Some(pre),
        &[("csrf", &csrf), ("token", "abm_wrong")],
    );
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.body.contains("unknown or revoked"));
    // Behind TLS the cookies are Secure.
    let a = w.call_with(
        "POST",
        "/signin",
        Some(pre),
        &[("csrf", &csrf), ("token", &w.viewer)],
        &[("x-forwarded-proto", "https")],
    );
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    let session = a
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("abm_session="))
        .unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(session.contains(flag), "{session}");
    }
    // Signed in: the overview, with the security headers.
    let cookie = w.sign_in(&w.viewer);
    let page = w.call("GET", "/", Some(&cookie), &[]);
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<h1>Overview</h1>"), "{}", page.body);
    assert!(page.body.contains("vic · viewer"));
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    // Sign-out needs the CSRF token too, then the session is gone.
    let a = w.call("POST", "/signout", Some(&cookie), &[]);
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = w.call("POST", "/signout", Some(&cookie), &[("csrf", &page.csrf())]);
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert!(a.set_cookies()[0].contains("Max-Age=0"));
    assert_eq!(
        w.call("GET", "/", Some(&cookie), &[]).status,
        StatusCode::SEE_OTHER
    );
    // Revoking the token ends its sessions at once.
    let cookie = w.sign_in(&w.viewer);
    assert_eq!(
        w.call("GET", "/runs", Some(&cookie), &[]).status,
        StatusCode::OK
    );
    w.app.token_revoke("vic").unwrap();
    assert_eq!(
        w.call("GET", "/runs", Some(&cookie), &[]).status,
        StatusCode::SEE_OTHER
    );
    // The assets need no session and hold no data.
    let css = w.call("GET", "/assets/dashboard.css", None, &[]);
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(css.headers["content-type"], "text/css");
    assert_eq!(
        w.call("GET", "/assets/other", None, &[]).status,
        StatusCode::NOT_FOUND
    );
}

/// Every page renders for each role; a viewer sees no write control and every POST of theirs
/// is a 403; a POST without the session's CSRF token is a 403 whoever sends it.
fn roles_and_csrf(url: &str) {
    let w = world(url);
    let pending = w
        .app
        .checkpoints(abm_app::accounts::CheckpointStatus::Pending)
        .unwrap();
    let cp = pending
        .iter()
        .find(|c| c.account_id.is_some())
        .expect("the sample has a pending checkpoint");
    let account = cp.account_id.clone().unwrap();
    let viewer = w.sign_in(&w.viewer);
    for page in [
        "/".to_string(),
        "/accounts".to_string(),
        "/accounts?tier=A&engagement=high".to_string(),
        format!("/accounts/{account}"),
        "/review".to_string(),
        "/runs".to_string(),
        "/runs/1".to_string(),
    ] {
        let a = w.call("GET", &page, Some(&viewer), &[]);
        assert_eq!(a.status, StatusCode::OK, "{page}: {}", a.body);
        assert!(
            !a.body.contains("value=\"approve\""),
            "{page}: no approve button for a viewer"
        );
        assert!(!a.body.contains("Start a run"), "{page}");
    }
    let a = w.call("GET", "/accounts?tier=Z", Some(&viewer), &[]);
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        w.call("GET", "/accounts/NO-SUCH", Some(&viewer), &[])
            .status,
        StatusCode::NOT_FOUND
    );
    let csrf = w.call("GET", "/review", Some(&viewer), &[]).csrf();
    let id = cp.id.to_string();
    let decide = [
        ("csrf", csrf.as_str()),
        ("id", id.as_str()),
        ("action", "approve"),
        ("comment", "forged"),
    ];
    let a = w.call("POST", "/review", Some(&viewer), &decide);
    assert_eq!(a.status, StatusCode::FORBIDDEN, "a viewer cannot decide");
    let a = w.call("POST", "/runs", Some(&viewer), &[("csrf", &csrf)]);
    assert_eq!(
        a.status,
        StatusCode::FORBIDDEN,
        "a viewer cannot start a run"
    );
    // A reviewer's forms, forged: no session, no token, another session's token.
    let reviewer = w.sign_in(&w.reviewer);
    let page = w.call("GET", &format!("/accounts/{account}"), Some(&reviewer), &[]);
    assert!(
        page.body.contains("value=\"approve\""),
        "a reviewer can decide"
    );
    let good = page.csrf();
    assert_ne!(good, csrf, "each session has its own CSRF token");
    for (cookie, token) in [
        (None, good.as_str()),
        (Some(&reviewer), ""),
        (Some(&reviewer), csrf.as_str()),
    ] {
        let a = w.call(
            "POST",
            "/review",
            cookie.map(String::as_str),
            &[("csrf", token), ("id", &id), ("action", "approve")],
        );
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{cookie:?} {token:?}");
    }
    let after = w
        .app
        .checkpoints(abm_app::accounts::CheckpointStatus::Pending)
        .unwrap();
    assert_eq!(after.len(), pending.len(), "nothing was decided");
    assert!(w.app.runs(10).unwrap().len() == 2, "no run was started");
}

/// A reviewer approves a checkpoint with a comment from the account page: the account's cluster
/// changes at once, the queue shrinks, the decision names the token; several at once from the
/// queue.
fn review(url: &str) {
    let w = world(url);
    let pending = w
        .app
        .checkpoints(abm_app::accounts::CheckpointStatus::Pending)
        .unwrap();
    let mut items = pending
        .iter()
        .filter(|c| c.account_id.is_some() && c.to.is_some() && c.from != c.to);
    let cp = items.next().expect("a pending move").clone();
    let account = cp.account_id.clone().unwrap();
    let before = w.app.account(&account).unwrap().state.unwrap().cluster;
    let reviewer = w.sign_in(&w.reviewer);
    let here = format!("/accounts/{account}");
    let csrf = w.call("GET", &here, Some(&reviewer), &[]).csrf();
    let id = cp.id.to_string();
    let a = w.call(
        "POST",
        "/review",
        Some(&reviewer),
        &[
            ("csrf", &csrf),
            ("next", &here),
            ("id", &id),
            ("action", "approve"),
            ("comment", "met the CFO"),
        ],
    );
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.location(), here);
    let now = w.app.account(&account).unwrap().state.unwrap().cluster;
    assert_eq!(Some(now), cp.to, "the cluster changed at once");
    assert_ne!(now, before);
    let decided = w
        .app
        .checkpoints(abm_app::accounts::CheckpointStatus::Approved)
        .unwrap();
    let d = decided.iter().find(|c| c.id == cp.id).unwrap();
    assert_eq!(d.reviewer.as_deref(), Some("rita"));
    assert_eq!(d.comment.as_deref(), Some("met the CFO"));
    let queue = w.call("GET", "/review", Some(&reviewer), &[]);
    assert!(queue.body.contains("met the CFO"), "decided items say why");
    assert!(!queue
        .body
        .contains(&format!("name=\"id\" value=\"{}\"", cp.id)));
    // Two at once, rejected; a third that is no longer pending is reported, not lost.
    let rest: Vec<String> = items.take(2).map(|c| c.id.to_string()).collect();
    assert_eq!(rest.len(), 2, "the story has three pending moves");
    {
        let csrf = queue.csrf();
        let a = w.call(
            "POST",
            "/review",
            Some(&reviewer),
            &[
                ("csrf", &csrf),
                ("id", &rest[0]),
                ("id", &rest[1]),
                ("id", &id),
                ("action", "reject"),
                ("comment", "later"),
            ],
        );
        assert_eq!(
            a.status,
            StatusCode::CONFLICT,
            "one of three was not pending"
        );
        assert!(a.body.contains("2 decided"), "{}", a.body);
        let rejected = w
            .app
            .checkpoints(abm_app::accounts::CheckpointStatus::Rejected)
            .unwrap();
        for r in &rest {
            assert!(rejected.iter().any(|c| c.id.to_string() == *r));
        }
    }
}

/// The CSV download holds every row of the view (not one page), neutralises formula cells,
/// and an admin's run shows its transition matrix, each cell linking to its accounts.
fn csv_and_runs(url: &str) {
    let w = world(url);
    let admin = w.sign_in(&w.admin);
    let csv = w.call("GET", "/accounts.csv", Some(&admin), &[]);
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(
        lines[0],
        "account_id,name,cluster,tier,icp_score,engagement_level,micro_segment,next_action"
    );
    assert_eq!(lines.len(), 1 + 301, "every account, beyond one page");
    assert!(
        lines.iter().any(|l| l.starts_with("ACC-EVIL,'=1+2,")),
        "a formula cell is neutralised"
    );
    let page = w.call("GET", "/accounts", Some(&admin), &[]);
    assert!(
        page.body.contains("rel=\"next\""),
        "the first page links the next"
    );
    let tier_a = w.call("GET", "/accounts.csv?tier=A", Some(&admin), &[]);
    let listed = w
        .app
        .list_accounts(&abm_app::views::AccountFilter {
            tier: Some(abm_core::Tier::A),
            limit: 1000,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(tier_a.body.lines().count(), 1 + listed.items.len());
    // A second run, started from the dashboard, and its matrix.
    let csrf = w.call("GET", "/runs", Some(&admin), &[]).csrf();
    let a = w.call(
        "POST",
        "/runs",
        Some(&admin),
        &[("csrf", &csrf), ("as_of", "2026-12-15")],
    );
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.location(), "/runs/3");
    let m = w.call("GET", "/runs/3", Some(&admin), &[]);
    assert_eq!(m.status, StatusCode::OK);
    let t = w.app.transitions(3).unwrap();
    assert_eq!(t.previous, Some(2));
    let total: i64 = t.cells.iter().map(|c| c.accounts).sum();
    assert_eq!(total, 301);
    let cell = t.cells[0];
    let link = format!(
        "/accounts?run=3&amp;from={}&amp;to={}",
        cell.from.map_or("new", |c| c.as_str()),
        cell.to.as_str()
    );
    assert!(m.body.contains(&link), "{link} in {}", m.body);
    let cell_page = w.call("GET", &link.replace("&amp;", "&"), Some(&admin), &[]);
    assert_eq!(cell_page.status, StatusCode::OK);
    assert_eq!(
        w.call("GET", "/runs/99", Some(&admin), &[]).status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        w.call("POST", "/runs", Some(&admin), &[("csrf", "x")])
            .status,
        StatusCode::FORBIDDEN
    );
    // Analytics: the period form, then `abm analyze`'s report on this database.
    let viewer = w.sign_in(&w.viewer);
    let form = w.call("GET", "/analytics", Some(&viewer), &[]);
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("name=\"from\""), "{}", form.body);
    let r = w.call(
        "GET",
        "/analytics?from=2026-01-01&to=2026-12-31",
        Some(&viewer),
        &[],
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("<svg"), "the report draws its charts");
    assert!(r.body.contains("Cluster ICP"), "by cluster");
    let csp = r.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("style-src 'unsafe-inline'") && !csp.contains("script-src"));
    let bad = w.call(
        "GET",
        "/analytics?from=2026-13-01&to=2026-12-31",
        Some(&viewer),
        &[],
    );
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("from:"), "{}", bad.body);
    let anonymous = w.call("GET", "/analytics?from=2026-01-01&to=2026-12-31", None, &[]);
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
}

#[test]
fn sessions_on_sqlite() {
    on_sqlite(sessions);
}

#[test]
fn roles_and_csrf_on_sqlite() {
    on_sqlite(roles_and_csrf);
}

#[test]
fn review_on_sqlite() {
    on_sqlite(review);
}

#[test]
fn csv_and_runs_on_sqlite() {
    on_sqlite(csv_and_runs);
}

#[test]
#[ignore = "needs PostgreSQL: set ABM_TEST_PG_URL (run by .ci/run)"]
fn sessions_on_postgres() {
    on_postgres("sessions", sessions);
}

#[test]
#[ignore = "needs PostgreSQL: set ABM_TEST_PG_URL (run by .ci/run)"]
fn roles_and_csrf_on_postgres() {
    on_postgres("roles", roles_and_csrf);
}

#[test]
#[ignore = "needs PostgreSQL: set ABM_TEST_PG_URL (run by .ci/run)"]
fn review_on_postgres() {
    on_postgres("review", review);
}

#[test]
#[ignore = "needs PostgreSQL: set ABM_TEST_PG_URL (run by .ci/run)"]
fn csv_and_runs_on_postgres() {
    on_postgres("csv", csv_and_runs);
}
