//! `abm serve` and `abm token` as a user runs them: the binary on a real listener (loopback,
//! port 0), on both backends; the first admin token printed once; roles; SIGTERM stops it
//! cleanly; secrets never reach the log.

use super::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::Duration;

struct Server {
    child: Child,
    addr: String,
    stderr: std::sync::mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Server {
    fn start(url: &str) -> (Server, String) {
        let (server, token) = Server::launch(url, true);
        (server, token.unwrap())
    }

    /// Start `abm serve`; with `first_token`, read the admin token it prints.
    fn launch(url: &str, first_token: bool) -> (Server, Option<String>) {
        let mut child = abm()
            .args(["serve", "--listen", "127.0.0.1:0", "--db", url])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let token = first_token.then(|| {
            let mut first = String::new();
            let mut token = String::new();
            stdout.read_line(&mut first).unwrap();
            stdout.read_line(&mut token).unwrap();
            assert!(first.contains("shown once"), "{first}");
            let token = token.trim().to_string();
            assert!(token.starts_with("abm_"), "{token}");
            token
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut log = Vec::new();
        let addr = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("abm serve says where it listens");
            log.push(line.clone());
            if let Some(rest) = line.split("on http://").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        assert!(addr.starts_with("127.0.0.1:"), "{addr}");
        // Keep stdout open (and drained) for the server's lifetime.
        std::thread::spawn(move || for _ in stdout.lines() {});
        (
            Server {
                child,
                addr,
                stderr: rx,
                log,
            },
            token,
        )
    }

    fn call(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
        call(&self.addr, method, path, token, body).expect("an HTTP answer")
    }

    /// SIGTERM; the process must exit 0 within 20 s. The whole log.
    fn stop(mut self) -> Vec<String> {
        let pid = self.child.id().to_string();
        run_ok(std::process::Command::new("kill").args(["-TERM", &pid]));
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "abm serve did not stop"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "{status:?}");
        while let Ok(l) = self.stderr.recv_timeout(Duration::from_secs(2)) {
            self.log.push(l);
        }
        self.log
    }
}

/// One request, `Connection: close`; status and body (`None` when the connection broke).
fn call(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Option<(u16, Value)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let v = serde_json::from_str(body).unwrap_or(Value::String(body.to_string()));
    Some((status, v))
}

/// The head of the answer to a keep-alive `POST /api/events` whose body has not been sent.
fn refused_head(addr: &str, token: Option<&str>) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "POST /api/events HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: 40\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "an answer");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

fn token_create(url: &str, role: &str, name: &str) -> String {
    let out = run_ok(abm().args([
        "token", "create", "--role", role, "--name", name, "--db", url,
    ]));
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines().last().unwrap().to_string()
}

fn serve_story(db: &Db) {
    let url = db.url();
    let dir = tempfile::tempdir().unwrap();
    let data = sample_data(dir.path(), 120);
    run_ok(
        abm()
            .arg("import")
            .arg(&data)
            .args(["--database", &url])
            .current_dir(dir.path()),
    );
    let (server, admin) = Server::start(&url);
    let viewer = token_create(&url, "viewer", "vic");
    assert!(viewer.starts_with("abm_") && viewer != admin);

    assert_eq!(server.call("GET", "/healthz", None, "").0, 200);
    let (st, body) = server.call("GET", "/api/summary", None, "");
    assert_eq!(st, 401);
    assert_eq!(body["status"], 401);
    let event = r#"[{"account_id":"ACC-0001","occurred_at":"2026-01-03T10:00:00Z","type":"meeting","contact_id":"k","event_id":"bin-1"}]"#;
    assert_eq!(
        server.call("POST", "/api/events", Some(&viewer), event).0,
        403
    );
    assert_eq!(server.call("POST", "/api/runs", Some(&viewer), "").0, 403);
    // Refused before its body arrived: the answer says the connection closes, so a keep-alive
    // client does not send its next request down it (seen as "server disconnected").
    for token in [None, Some("abm_nope"), Some(viewer.as_str())] {
        let head = refused_head(&server.addr, token);
        assert!(
            head.starts_with("HTTP/1.1 401") || head.starts_with("HTTP/1.1 403"),
            "{head}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("\r\nconnection: close\r\n"),
            "{head}"
        );
    }
    let (st, body) = server.call("POST", "/api/events", Some(&admin), event);
    assert_eq!((st, body["accepted"].as_u64()), (200, Some(1)), "{body}");
    let (st, body) = server.call("POST", "/api/events", Some(&admin), event);
    assert_eq!((st, body["duplicate"].as_u64()), (200, Some(1)), "{body}");
    let run = format!(r#"{{"as_of":"{}"}}"#, abm_io::sample::SAMPLE_AS_OF);
    let (st, body) = server.call("POST", "/api/runs", Some(&admin), &run);
    assert_eq!(st, 201, "{body}");
    let (st, body) = server.call("GET", "/api/accounts/ACC-0001", Some(&viewer), "");
    assert_eq!(st, 200, "{body}");
    assert!(body["state"]["cluster"].is_string(), "{body}");
    // Live ingest after a run: the touched account is re-assessed at once, and reads so.
    let live = format!(
        r#"[{{"account_id":"ACC-0001","occurred_at":"{}","type":"demo","contact_id":"live","event_id":"bin-live"}}]"#,
        abm_io::sample::SAMPLE_AS_OF
    );
    let (st, body) = server.call(
        "POST",
        &format!("/api/events?as_of={}", abm_io::sample::SAMPLE_AS_OF),
        Some(&admin),
        &live,
    );
    assert_eq!(st, 200, "{body}");
    let re = &body["reevaluated"]["accounts"][0];
    assert_eq!(re["account_id"], "ACC-0001", "{body}");
    assert_eq!(re["recorded"], true, "{body}");
    let (_, now) = server.call("GET", "/api/accounts/ACC-0001", Some(&viewer), "");
    assert_eq!(now["state"]["cluster"], re["cluster"], "{now}");
    let (st, page) = server.call("GET", "/api/accounts?limit=100", Some(&viewer), "");
    assert_eq!(st, 200);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let (_, rest) = server.call(
        "GET",
        &format!("/api/accounts?limit=100&cursor={cursor}"),
        Some(&viewer),
        "",
    );
    assert_eq!(
        page["items"].as_array().unwrap().len() + rest["items"].as_array().unwrap().len(),
        120
    );

    // Revoked by the CLI while the server runs: refused at once.
    run_ok(abm().args(["token", "revoke", "vic", "--db", &url]));
    assert_eq!(server.call("GET", "/api/summary", Some(&viewer), "").0, 401);
    let list = run_ok(abm().args(["token", "list", "--json", "--db", &url]));
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    let listed = list.to_string();
    assert!(
        !listed.contains(&admin) && !listed.contains(&viewer),
        "no secrets listed"
    );

    let log = server.stop().join("\n");
    assert!(
        log.contains("method=POST path=/api/runs status=201"),
        "{log}"
    );
    assert!(log.contains("stopped"), "{log}");
    assert!(
        !log.contains(&admin) && !log.contains(&viewer),
        "no secrets in the log"
    );

    // A second start: tokens exist, so none is created (and none printed).
    let out = abm()
        .args([
            "token", "create", "--role", "admin", "--name", "vic", "--db", &url,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "the name is free again once revoked");
    let dup = abm()
        .args([
            "token", "create", "--role", "admin", "--name", "vic", "--db", &url,
        ])
        .output()
        .unwrap();
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already named"));
}

/// kill -9 while a 10,000-event batch is being stored: after a restart the same batch is either
/// all new or all stored already (one transaction), and a second retry adds nothing.
fn kill_during_batch(db: &Db) {
    let url = db.url();
    let dir = tempfile::tempdir().unwrap();
    let data = sample_data(dir.path(), 50);
    run_ok(
        abm()
            .arg("import")
            .arg(&data)
            .args(["--database", &url])
            .current_dir(dir.path()),
    );
    let (mut server, admin) = Server::start(&url);
    let batch: Vec<Value> = (0..10_000)
        .map(|i| {
            serde_json::json!({"account_id": format!("ACC-{:04}", 1 + i % 50),
                "occurred_at": "2026-01-06T10:00:00Z", "type": "meeting",
                "contact_id": format!("k{}", i % 9), "event_id": format!("kill-{i}")})
        })
        .collect();
    let body = Value::Array(batch).to_string();
    let (addr, b, t) = (server.addr.clone(), body.clone(), admin.clone());
    let poster = std::thread::spawn(move || call(&addr, "POST", "/api/events", Some(&t), &b));
    std::thread::sleep(Duration::from_millis(60));
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    let answered = poster.join().unwrap();
    let (server, _) = Server::launch(&url, false);
    let (st, retry) = server.call("POST", "/api/events", Some(&admin), &body);
    assert_eq!(st, 200, "{retry}");
    let (accepted, duplicate) = (
        retry["accepted"].as_u64().unwrap(),
        retry["duplicate"].as_u64().unwrap(),
    );
    assert_eq!(accepted + duplicate, 10_000, "{retry}");
    assert!(
        accepted == 10_000 || duplicate == 10_000,
        "all or nothing, not {accepted} new and {duplicate} stored (first answer: {answered:?})"
    );
    let (_, again) = server.call("POST", "/api/events", Some(&admin), &body);
    assert_eq!(again["duplicate"], 10_000, "{again}");
    server.stop();
}

#[test]
fn kill_during_batch_on_sqlite() {
    kill_during_batch(&Db::sqlite());
}

#[test]
#[ignore = "needs PostgreSQL: set ABM_TEST_PG_URL (run by .ci/run)"]
fn kill_during_batch_on_postgres() {
    if let Some(db) = Db::postgres("killbatch") {
        kill_during_batch(&db);
    }
}

#[test]
fn serve_on_sqlite() {
    serve_story(&Db::sqlite());
}

#[test]
#[ignore = "needs PostgreSQL: set ABM_TEST_PG_URL (run by .ci/run)"]
fn serve_on_postgres() {
    if let Some(db) = Db::postgres("serve") {
        serve_story(&db);
    }
}
