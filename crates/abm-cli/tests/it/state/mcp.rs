//! abm's MCP tools driven by the official Python MCP client (`mcp` from PyPI, installed by
//! `.ci/run`) on both transports — `abm mcp` (stdio) and `/mcp` of `abm serve` (streamable
//! HTTP, bearer tokens and roles) — on both backends, with a fake HubSpot and a file
//! enrichment provider behind the connector tools.

use super::*;
use crate::sync::fake_hubspot;
use std::time::Duration;

fn mcp_story(db: &Db, transport: &str) {
    let url = db.url();
    let dir = tempfile::tempdir().unwrap();
    let data = sample_data(dir.path(), 300);
    run_ok(
        abm()
            .arg("import")
            .arg(&data)
            .args(["--database", &url])
            .current_dir(dir.path()),
    );
    run_ok(abm().args([
        "run",
        "--as-of",
        abm_io::sample::SAMPLE_AS_OF,
        "--database",
        &url,
    ]));
    let later = abm_core::Instant(
        abm_core::Instant::parse(abm_io::sample::SAMPLE_AS_OF)
            .unwrap()
            .0
            + 120 * 86_400_000_000,
    )
    .to_string();
    run_ok(abm().args(["run", "--as-of", &later, "--database", &url]));
    let firmo = crate::write(
        dir.path(),
        "firmographics.csv",
        "domain,industry,employees\nenrich-me.example,Software,1200\n",
    );
    let config = crate::write(
        dir.path(),
        "abm.toml",
        &format!(
            // The feed server below is on 127.0.0.1: fetched only because it is allowed.
            "[enrich]\nprovider = \"file\"\nfile = {:?}\ncache = {:?}\n\n[news]\nallow_hosts = [\"127.0.0.1\"]\n",
            firmo.display().to_string(),
            dir.path().join("cache.jsonl").display().to_string()
        ),
    );
    let feed = serve_feed(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Wire</title>\
         <item><guid>n1</guid><title>Company 5001 raises $40M Series B</title>\
         <pubDate>Mon, 04 May 2026 10:00:00 GMT</pubDate></item>\
         <item><guid>n2</guid><title>Weather is fine</title>\
         <pubDate>Mon, 04 May 2026 11:00:00 GMT</pubDate></item></channel></rss>",
    );
    let hubspot = fake_hubspot::FakeHubSpot::start(100, Duration::from_secs(10), 7);
    hubspot.add_companies(5000, 3, 1_700_000_000_000);

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/state/mcp_client.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_abm"))
        .arg(&url)
        .arg(&config)
        .arg(transport)
        .env_remove("ABM_REVIEWER")
        .env_remove("ABM_CONFIG")
        .env("HUBSPOT_TOKEN", &hubspot.token)
        .env("ABM_HUBSPOT_URL", &hubspot.url)
        .env("ABM_TEST_FEED_URL", &feed)
        .output();
    let what = format!("abm's MCP tools over {transport} with the Python client");
    match out {
        Err(e) => crate::skip_or_fail(&what, &format!("no python3: {e}")),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            if !o.status.success()
                && (err.contains("No module named 'mcp'")
                    || err.contains("No module named 'httpx2'"))
            {
                crate::skip_or_fail(&what, "python3 lacks the mcp package");
                return;
            }
            assert!(o.status.success(), "the MCP client failed:\n{err}");
            assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "ok");
            // The note asked for twice was posted once.
            let s = hubspot.state.lock().unwrap();
            assert_eq!(s.notes_created.len(), 1, "{:?}", s.notes_created);
            assert_eq!(s.violations, 0);
        }
    }
}

/// An RSS feed on 127.0.0.1: its URL.
fn serve_feed(rss: &'static str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/feed.xml", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut conn in listener.incoming().map_while(Result::ok) {
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{rss}",
                rss.len()
            );
        }
    });
    url
}

#[test]
#[ignore = "needs python3 with the mcp package (run by .ci/run)"]
fn mcp_stdio_on_sqlite() {
    mcp_story(&Db::sqlite(), "stdio");
}

#[test]
#[ignore = "needs python3 with the mcp package (run by .ci/run)"]
fn mcp_http_on_sqlite() {
    mcp_story(&Db::sqlite(), "http");
}

#[test]
#[ignore = "needs PostgreSQL and python3 with the mcp package (run by .ci/run)"]
fn mcp_stdio_on_postgres() {
    if let Some(db) = Db::postgres("mcp_stdio") {
        mcp_story(&db, "stdio");
    }
}

#[test]
#[ignore = "needs PostgreSQL and python3 with the mcp package (run by .ci/run)"]
fn mcp_http_on_postgres() {
    if let Some(db) = Db::postgres("mcp_http") {
        mcp_story(&db, "http");
    }
}
