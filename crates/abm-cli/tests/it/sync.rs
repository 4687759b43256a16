//! `abm sync hubspot` and `abm outbox` against a fake HubSpot on 127.0.0.1.

#[path = "../../../abm-connect/tests/support/fake_enrich.rs"]
mod fake_enrich;
#[path = "../../../abm-connect/tests/support/fake_hubspot.rs"]
pub(crate) mod fake_hubspot;
#[path = "../../../abm-connect/tests/support/fake_salesforce.rs"]
mod fake_salesforce;

use crate::{abm, run_ok};
use fake_hubspot::{FakeHubSpot, Faults};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const T0: i64 = 1_767_225_600_000;

fn sync(fake: &FakeHubSpot, db: &Path, as_of: &str) -> std::process::Command {
    let mut c = abm();
    c.env("HUBSPOT_TOKEN", &fake.token)
        .args(["sync", "hubspot", "--base-url", &fake.url, "--as-of", as_of])
        .args([
            "--timeout-ms",
            "500",
            "--retry-base-ms",
            "2",
            "--max-attempts",
            "12",
        ])
        .arg("--database")
        .arg(db);
    c
}

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn sync_hubspot_imports_runs_and_writes_back() {
    let fake = FakeHubSpot::start(20, Duration::from_millis(500), 11);
    fake.add_companies(501, 30, T0);
    for c in 501..511u64 {
        fake.add_object(
            "meetings",
            &[("hs_timestamp", "2026-02-20T10:00:00.000Z")],
            &[c],
            &[c * 10],
        );
    }
    fake.add_object(
        "deals",
        &[
            ("dealstage", "closedwon"),
            ("createdate", "2026-01-10T00:00:00.000Z"),
            ("closedate", "2026-02-10T00:00:00.000Z"),
            ("hs_is_closed", "true"),
            ("amount", "1000"),
        ],
        &[520],
        &[],
    );
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("abm.db");
    // A dry run stores and sends nothing.
    let out = run_ok(sync(&fake, &db, "2026-03-01").arg("--dry-run"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("pulled 30 companies, 10 engagements, 1 deals (dry run"),
        "{text}"
    );
    assert!(fake.state.lock().unwrap().updates_applied.is_empty());
    let out = run_ok(sync(&fake, &db, "2026-03-01").arg("--json"));
    let r = json_of(&out);
    assert_eq!(r["companies"], 30);
    assert_eq!(r["updates_enqueued"], 30);
    assert_eq!(r["delivery"]["sent"], 30);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains(&fake.token), "the token is never printed");
    {
        let s = fake.state.lock().unwrap();
        assert!(s
            .companies
            .values()
            .all(|c| c.props.contains_key("abm_cluster")));
        assert_eq!(s.violations, 0);
    }
    let list = json_of(&run_ok(
        abm()
            .args(["outbox", "list", "--json", "--status", "sent", "--database"])
            .arg(&db),
    ));
    assert_eq!(list.as_array().unwrap().len(), 30);
    assert_eq!(list[0]["kind"], "company_update");
}

#[test]
fn a_bad_token_stops_at_once_with_a_clear_error() {
    let fake = FakeHubSpot::start(100, Duration::from_secs(1), 12);
    fake.add_companies(1, 3, T0);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("abm.db");
    let out = abm()
        .env("HUBSPOT_TOKEN", "pat-na1-wrong-secret")
        .args(["sync", "hubspot", "--base-url", &fake.url, "--database"])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("401") && err.contains("scopes"), "{err}");
    assert!(!err.contains("wrong-secret"), "{err}");
    assert_eq!(fake.state.lock().unwrap().requests, 1);
    let out = abm()
        .env_remove("HUBSPOT_TOKEN")
        .args(["sync", "hubspot", "--base-url", &fake.url, "--database"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("HUBSPOT_TOKEN is not set"));
}

/// A sync killed (SIGKILL) while it delivers notes resumes from the outbox: every movement's
/// note and every company update is applied exactly once.
#[test]
fn a_killed_sync_resumes_from_the_outbox_without_loss_or_duplicates() {
    let fake = FakeHubSpot::start(10_000, Duration::from_secs(1), 13);
    let n = 1500u64;
    fake.add_companies(1, n, T0);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("abm.db");
    run_ok(&mut sync(&fake, &db, "2026-03-01"));
    // Meetings move accounts: the next sync has a note per movement and updates to send.
    for c in 1..=n {
        fake.add_object(
            "meetings",
            &[("hs_timestamp", "2026-03-20T10:00:00.000Z")],
            &[c],
            &[c * 10],
        );
    }
    fake.state.lock().unwrap().updates_applied.clear();
    fake.set_faults(Faults {
        p5xx: 0.05,
        p429: 0.02,
        pdrop: 0.02,
        ..Faults::default()
    });
    let mut child = sync(&fake, &db, "2026-04-01")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        let notes = fake.state.lock().unwrap().notes_created.len();
        if notes >= 200 {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the sync ended ({status}) before it could be killed");
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no notes arrive"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let at_kill = fake.state.lock().unwrap().notes_created.len();
    // Right after a crash HubSpot's search does not show the newest notes yet: the resumed
    // sync must find them all the same.
    fake.state.lock().unwrap().search_lag = 100_000;
    assert!((at_kill as u64) < n, "killed mid-delivery: {at_kill}");
    let out = run_ok(sync(&fake, &db, "2026-04-01").arg("--json"));
    let r = json_of(&out);
    assert_eq!(
        r["notes_enqueued"], 0,
        "the killed sync had enqueued them all"
    );
    eprintln!(
        "killed after {at_kill} notes; the resumed sync sent {} and found {} already applied",
        r["delivery"]["sent"], r["delivery"]["confirmed"]
    );
    let moves = json_of(&run_ok(
        abm().args(["movements", "--json", "--database"]).arg(&db),
    ));
    let moves = moves.as_array().unwrap();
    assert!(moves.len() as u64 > n / 4, "{} movements", moves.len());
    for m in moves {
        let token = format!(
            "abmnote{}m{}",
            m["account_id"].as_str().unwrap(),
            m["id"].as_i64().unwrap()
        );
        assert_eq!(fake.notes_with(&token), 1, "{token}");
    }
    let s = fake.state.lock().unwrap();
    assert_eq!(s.notes_created.len(), moves.len());
    assert!(
        s.updates_applied.values().all(|c| *c == 1),
        "each update once"
    );
    assert!(!s.updates_applied.is_empty());
    drop(s);
    let list = json_of(&run_ok(
        abm()
            .args([
                "outbox",
                "list",
                "--json",
                "--limit",
                "100000",
                "--database",
            ])
            .arg(&db),
    ));
    let not_sent: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] != "sent")
        .collect();
    assert!(not_sent.is_empty(), "{not_sent:?}");
}

#[test]
fn outbox_retry_and_drop_touch_only_undelivered_items() {
    let fake = FakeHubSpot::start(1000, Duration::from_secs(1), 14);
    fake.add_companies(1, 4, T0);
    fake.state.lock().unwrap().refuse_update.insert(2);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("abm.db");
    let out = run_ok(&mut sync(&fake, &db, "2026-03-01"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("1 refused") && text.contains("1 dead"),
        "{text}"
    );
    let dead = json_of(&run_ok(
        abm()
            .args(["outbox", "list", "--status", "dead", "--json", "--database"])
            .arg(&db),
    ));
    let id = dead[0]["id"].as_i64().unwrap();
    assert!(dead[0]["reason"]
        .as_str()
        .unwrap()
        .contains("OBJECT_NOT_FOUND"));
    // Fixed on HubSpot's side: retry, and the next sync delivers it.
    fake.state.lock().unwrap().refuse_update.clear();
    run_ok(
        abm()
            .args(["outbox", "retry", &id.to_string(), "--database"])
            .arg(&db),
    );
    let r = json_of(&run_ok(
        sync(&fake, &db, "2026-03-01").args(["--deliver-only", "--json"]),
    ));
    assert_eq!(r["delivery"]["sent"], 1);
    assert_eq!(fake.state.lock().unwrap().updates_applied[&2], 1);
    // Drop never deletes a delivered item.
    let out = run_ok(
        abm()
            .args(["outbox", "drop", "--all", "--database"])
            .arg(&db),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 undelivered"));
}

#[test]
fn sync_salesforce_pulls_and_writes_back() {
    use fake_salesforce::{account_id, FakeSalesforce};
    let fake = FakeSalesforce::start(31);
    for i in 1..=60u64 {
        fake.add(
            "Account",
            serde_json::json!({"Id": account_id(i), "Name": format!("A{i}"), "Industry": "Technology",
                "NumberOfEmployees": 500, "LastModifiedDate": "2026-01-01T00:00:00.000+0000"}),
        );
    }
    fake.add(
        "Event",
        serde_json::json!({"Id": "00U000000000000001", "AccountId": account_id(1), "WhoId": "003000000000000001",
            "ActivityDateTime": "2026-02-20T10:00:00.000+0000", "Type": "Meeting"}),
    );
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("abm.db");
    let out = run_ok(
        abm()
            .env("SF_INSTANCE_URL", &fake.url)
            .env("SF_ACCESS_TOKEN", &fake.token)
            .args([
                "sync",
                "salesforce",
                "--as-of",
                "2026-03-01",
                "--json",
                "--database",
            ])
            .arg(&db),
    );
    let r = json_of(&out);
    assert_eq!(
        (r["accounts"].as_u64(), r["activities"].as_u64()),
        (Some(60), Some(1))
    );
    assert_eq!(r["delivery"]["sent"], 60);
    assert!(fake.account(&account_id(1))["ABM_Cluster__c"].is_string());
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&fake.token));
    let out = abm()
        .env_remove("SF_INSTANCE_URL")
        .env("SF_ACCESS_TOKEN", "x")
        .args(["sync", "salesforce", "--database"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("SF_INSTANCE_URL is not set"));
}

#[test]
fn news_fetch_turns_matching_headlines_into_triggers_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    crate::write(
        &data,
        "accounts.csv",
        "account_id,name,domain,industry\nA1,\"Acme, Inc.\",acme.com,Software\nA2,Société Générale S.A.,,Banking\nA3,Quiet Co,quiet.example,Retail\n",
    );
    let db = dir.path().join("abm.db");
    run_ok(abm().arg("import").arg(&data).arg("--database").arg(&db));
    let feed = crate::write(
        dir.path(),
        "feed.xml",
        r#"<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>
<item><title>ACME raises $40M Series C</title><link>https://w.example/1</link><guid>1</guid><pubDate>Mon, 02 Mar 2026 08:00:00 GMT</pubDate></item>
<item><title>Societe Generale names new CEO</title><link>https://w.example/2</link><guid>2</guid><pubDate>Tue, 03 Mar 2026 08:00:00 GMT</pubDate></item>
<item><title>Acme raises $40M Series C</title><link>https://w.example/1</link><guid>1</guid><pubDate>Mon, 02 Mar 2026 08:00:00 GMT</pubDate></item>
<item><title>Markets close higher</title><guid>3</guid><pubDate>Tue, 03 Mar 2026 08:00:00 GMT</pubDate></item>
</channel></rss>"#,
    );
    let fetch = || {
        let mut c = abm();
        c.args(["news", "fetch"])
            .arg(&feed)
            .arg(dir.path().join("missing.xml"))
            .args(["--json", "--database"])
            .arg(&db);
        c
    };
    let r = json_of(&run_ok(&mut fetch()));
    assert_eq!(
        (
            r["items"].as_u64(),
            r["duplicates"].as_u64(),
            r["matched"].as_u64()
        ),
        (Some(4), Some(1), Some(2))
    );
    assert_eq!(r["imported"]["triggers_added"], 2);
    assert_eq!(r["feeds_failed"].as_array().unwrap().len(), 1);
    assert_eq!(r["triggers"][0]["account_id"], "A1");
    assert_eq!(r["triggers"][0]["type"], "funding_round");
    assert_eq!(r["triggers"][1]["account_id"], "A2");
    assert_eq!(r["triggers"][1]["type"], "leadership_change");
    // Fetched again: nothing new.
    let r = json_of(&run_ok(&mut fetch()));
    assert_eq!(r["imported"]["triggers_added"], 0);
}

#[test]
fn enrich_fills_missing_fields_by_domain_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    crate::write(
        &data,
        "accounts.csv",
        "account_id,name,domain,industry,employees\nA1,Acme,acme.com,,\nA2,Beta,https://www.beta.io/,Retail,40\nA3,Gamma,,,\n",
    );
    let db = dir.path().join("abm.db");
    run_ok(abm().arg("import").arg(&data).arg("--database").arg(&db));
    let file = crate::write(
        dir.path(),
        "firmographics.csv",
        "domain,industry,employees,country\nACME.com,Software,1200,Germany\nbeta.io,Banking,999,France\n",
    );
    let r = json_of(&run_ok(
        abm()
            .arg("enrich")
            .arg(&file)
            .args(["--json", "--database"])
            .arg(&db),
    ));
    assert_eq!(
        (
            r["looked_up"].as_u64(),
            r["found"].as_u64(),
            r["enriched"].as_u64()
        ),
        (Some(2), Some(2), Some(2))
    );
    assert_eq!(r["fields_filled"]["industry"], 1);
    assert_eq!(r["fields_filled"]["country"], 2);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let fields = |id: &str| -> Value {
        let t: String = conn
            .query_row(
                "SELECT fields FROM accounts WHERE account_id = ?",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        serde_json::from_str(&t).unwrap()
    };
    let a1 = fields("A1");
    assert_eq!(
        (a1["industry"].as_str(), a1["employees"].as_str()),
        (Some("Software"), Some("1200"))
    );
    assert!(
        a1["enriched_by"].as_str().unwrap().contains("industry"),
        "{a1}"
    );
    let a2 = fields("A2");
    assert_eq!(
        (
            a2["industry"].as_str(),
            a2["employees"].as_str(),
            a2["country"].as_str()
        ),
        (Some("Retail"), Some("40"), Some("France")),
        "never overwritten"
    );
    // Again: nothing left to fill.
    let r = json_of(&run_ok(
        abm()
            .arg("enrich")
            .arg(&file)
            .args(["--json", "--database"])
            .arg(&db),
    ));
    assert_eq!(r["enriched"], 0);
}

/// `abm enrich` with the HTTP provider `[enrich]` configures: fields filled from the API's
/// answer (mapped by JSON pointers), answers cached (a second enrichment makes no request),
/// and `abm explain` naming what enrichment filled, its source and when.
#[test]
fn enrich_over_http_is_cached_and_shown_in_the_explanation() {
    let fake = fake_enrich::FakeEnrich::start(vec![(
        "acme.com",
        serde_json::json!({"industry": "software", "size": {"employees": 900}}),
    )]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    crate::write(
        &data,
        "accounts.csv",
        "account_id,name,domain,industry,employees,country\nA1,Acme,acme.com,,,US\nA2,Nobody,nobody.example,,,US\n",
    );
    let db = dir.path().join("abm.db");
    run_ok(abm().arg("import").arg(&data).arg("--database").arg(&db));
    let config = crate::write(
        dir.path(),
        "abm.toml",
        &format!(
            "[enrich]\nprovider = \"http\"\nbase_url = {:?}\ntoken_env = \"TEST_ENRICH_TOKEN\"\n\
             cache = {:?}\n[enrich.fields]\nindustry = \"/company/industry\"\n\
             employees = \"/company/size/employees\"\n",
            fake.url,
            dir.path().join("cache.jsonl").display().to_string()
        ),
    );
    let enrich = || {
        json_of(&run_ok(
            abm()
                .arg("--config")
                .arg(&config)
                .args(["enrich", "--json", "--database"])
                .arg(&db)
                .env("TEST_ENRICH_TOKEN", &fake.token),
        ))
    };
    let r = enrich();
    assert_eq!(
        (
            r["looked_up"].as_u64(),
            r["found"].as_u64(),
            r["enriched"].as_u64()
        ),
        (Some(2), Some(1), Some(1)),
        "{r}"
    );
    let asked = fake.total_requests();
    assert_eq!(asked, 2);
    let r = enrich();
    assert_eq!(r["cached"].as_u64(), Some(1), "{r}");
    assert_eq!(
        fake.total_requests(),
        asked,
        "cached answers make no request"
    );
    run_ok(
        abm()
            .arg("--config")
            .arg(&config)
            .args(["run", "--as-of", "2026-06-01", "--database"])
            .arg(&db),
    );
    let out = run_ok(
        abm()
            .arg("--config")
            .arg(&config)
            .args(["explain", "A1", "--as-of", "2026-06-01", "--database"])
            .arg(&db),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("industry = software") && text.contains("[enriched]"),
        "{text}"
    );
    assert!(text.contains("enriched by http 127.0.0.1:"), "{text}");
    assert!(text.contains("fetched "), "{text}");
    let out = run_ok(
        abm()
            .arg("--config")
            .arg(&config)
            .args([
                "explain",
                "A1",
                "--json",
                "--as-of",
                "2026-06-01",
                "--database",
            ])
            .arg(&db),
    );
    let e = json_of(&out);
    assert_eq!(
        e["enrichment"]["fields"],
        serde_json::json!(["employees", "industry"]),
        "{e}"
    );
    // Without the cache and with a wrong token: refused at once, with a clear error.
    std::fs::remove_file(dir.path().join("cache.jsonl")).unwrap();
    let out = abm()
        .arg("--config")
        .arg(&config)
        .args(["enrich", "--dry-run", "--database"])
        .arg(&db)
        .env("TEST_ENRICH_TOKEN", "wrong")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("refused the credentials (401)"),
        "{err}"
    );
    assert!(!err.contains(&fake.token));
    assert_eq!(fake.total_requests(), asked + 1, "a 401 is never retried");
}
