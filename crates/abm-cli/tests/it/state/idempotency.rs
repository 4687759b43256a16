//! The same import twice adds nothing; the same run twice records nothing; runs move forward;
//! two runs at once serialize.

use super::*;
use crate::both_backends;

fn same_import_twice(db: Db) {
    let w = World::new(db);
    w.accounts("t0", &[("A1", "A"), ("A2", "B")]);
    w.file(
        "t0",
        "engagement.csv",
        "account_id,occurred_at,type,contact_id,event_id,detail\n",
        &[
            "A1,2026-10-01,demo,c1,,",
            // The same event written differently (timestamp form): one identity.
            "A1,2026-10-01T00:00:00Z,demo,c1,,",
            "A2,2026-10-02,email_reply,c2,E-1,",
            // Same event_id, different content: the id wins.
            "A2,2026-10-03,email_reply,c2,E-1,",
            "A9,2026-10-01,demo,c1,,",
            "A1,2026-10-01,teleport,c1,,",
        ],
    );
    w.file(
        "t0",
        "triggers.csv",
        "account_id,occurred_at,type,source,headline\n",
        &["A1,2026-09-01,funding_round,news,Series C"],
    );
    w.file(
        "t0",
        "deals.csv",
        "deal_id,account_id,stage,amount,created_at,closed_at,last_stage_change_at,outcome\n",
        &["D1,A1,proposal,1000,2026-09-01,,,open"],
    );
    let first = w.import_json("t0");
    assert_eq!(
        (
            first["events_read"].as_i64(),
            first["events_added"].as_i64()
        ),
        (Some(6), Some(2))
    );
    // A9 is not imported yet: its event waits for it (issue 14), it is not rejected.
    assert_eq!(first["rejected"], 1);
    assert_eq!(first["waiting_added"], 1);
    let (_, rej) = read_csv(&w.dir.path().join("rejected_rows.csv"));
    assert_eq!(rej.len(), 1);
    assert_eq!((rej[0][1].as_str(), rej[0][2].as_str()), ("7", "type"));
    assert!(w.fails(&["summary"]).contains("no run yet"));
    let second = w.import("t0");
    assert!(second.contains("nothing new"), "{second}");
    let second = w.import_json("t0");
    for k in [
        "accounts_changed",
        "events_added",
        "triggers_added",
        "deals_changed",
    ] {
        assert_eq!(second[k], 0, "{k}: {second}");
    }
    assert_eq!(second["data_version"], first["data_version"]);
    // A changed deal is an update, a new event an append.
    w.file(
        "t0",
        "deals.csv",
        "deal_id,account_id,stage,amount,created_at,closed_at,last_stage_change_at,outcome\n",
        &["D1,A1,negotiation,1000,2026-09-01,,2026-10-05,open"],
    );
    let third = w.import_json("t0");
    assert_eq!(
        (
            third["deals_changed"].as_i64(),
            third["events_added"].as_i64()
        ),
        (Some(1), Some(0))
    );
    w.run("2026-11-01");
    let s = w.json(&["summary"]);
    assert_eq!(s["stored"]["events"], 2);
    assert_eq!(s["stored"]["triggers"], 1);
    assert_eq!(s["stored"]["deals"], 1);
    assert_eq!(s["imports"], 4);
    // --strict: the first bad row fails the import, and nothing of it is kept.
    w.accounts("t1", &[("A3", "A")]);
    w.events("t1", &["A3,2026-10-01,demo,c1", "A3,not-a-date,demo,c1"]);
    let err = w.fails(&["import", "t1", "--strict"]);
    assert!(err.contains("engagement.csv:3"), "{err}");
    assert!(w.fails(&["history", "A3"]).contains("no account"));
}

fn same_run_twice(db: Db) {
    let w = World::new(db);
    w.accounts("t0", &[("A1", "A"), ("A2", "D")]);
    w.events("t0", &["A1,2026-10-20,meeting,c1", "A2,2026-10-20,demo,c1"]);
    w.import("t0");
    let r1 = w.run("2026-11-01");
    let q1 = w.json(&["review", "list", "--all"]);
    let o = run_ok(w.abm().args(["run", "--as-of", "2026-11-01"]));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("Nothing changed since run 1"), "{text}");
    let r2 = w.run("2026-11-01");
    assert_eq!(r2["unchanged"], true);
    assert_eq!(r2["run"], r1["run_id"]);
    assert_eq!(w.json(&["review", "list", "--all"]), q1);
    assert_eq!(w.json(&["summary"])["runs"], 1);
    // New data at the same as_of is a new run; an earlier as_of is refused.
    w.accounts("t1", &[("A1", "A"), ("A2", "D")]);
    w.events("t1", &["A1,2026-10-25,demo,c2"]);
    w.import("t1");
    assert_eq!(w.run("2026-11-01")["run_id"], 2);
    let err = w.fails(&["run", "--as-of", "2026-10-01"]);
    assert!(err.contains("before the latest run"), "{err}");
    // A config change at the same as_of is a new run too.
    std::fs::write(
        w.dir.path().join("abm.toml"),
        "[capacity.active_focus]\nmin = 0\nmax = 0\n",
    )
    .unwrap();
    assert_eq!(w.run("2026-11-01")["run_id"], 3);
}

/// Two runs at once: the second waits for the first, then finds nothing changed.
fn concurrent_runs(db: Db) {
    let w = World::new(db);
    let data = w.dir.path().join("data");
    run_ok(
        abm()
            .args([
                "sample",
                "--accounts",
                "3000",
                "--events-per-account",
                "3",
                "--out",
            ])
            .arg(&data),
    );
    w.import("data");
    let spawn = || {
        w.abm()
            .args(["run", "--json", "--as-of", "2026-11-01"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    let mut done = 0;
    let mut unchanged = 0;
    for o in &outs {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        if v["unchanged"] == true {
            unchanged += 1;
        } else {
            done += 1;
        }
    }
    assert_eq!((done, unchanged), (1, 1));
    let s = w.json(&["summary"]);
    assert_eq!(s["runs"], 1);
    assert_eq!(s["accounts"], 3000);
}

/// JSON Lines inputs and a CRM preset go through the same importer.
fn jsonl_and_preset(db: Db) {
    let w = World::new(db);
    w.file(
        "t0",
        "accounts.csv",
        "Record ID,Company name,Industry,Number of Employees,icp_tier,icp_score\n",
        &["H1,Hub One,software,300,A,90", "H2,Hub Two,retail,20,C,55"],
    );
    w.file(
        "t0",
        "engagement.jsonl",
        "",
        &[
            r#"{"account_id":"H1","occurred_at":"2026-10-20T09:00:00Z","type":"demo","contact_id":"c1","event_id":"ev-1"}"#,
            r#"{"account_id":"H2","occurred_at":"2026-10-21","type":"email_reply","event_id":"ev-2"}"#,
        ],
    );
    let o = run_ok(
        w.abm()
            .args(["import", "t0", "--json", "--preset", "hubspot"]),
    );
    let rep: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (
            rep["accounts_changed"].as_i64(),
            rep["events_added"].as_i64()
        ),
        (Some(2), Some(2))
    );
    let o = run_ok(
        w.abm()
            .args(["import", "t0", "--json", "--preset", "hubspot"]),
    );
    let rep: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (
            rep["accounts_changed"].as_i64(),
            rep["events_added"].as_i64()
        ),
        (Some(0), Some(0))
    );
    w.run("2026-11-01");
    let s = w.latest("H1");
    assert_eq!(cm(&s), pair("active_focus", "baseline"));
    assert_eq!(w.history("H1")["name"], "Hub One");
    assert_eq!(w.latest("H2")["cluster"], "future_pipeline");
}

/// A writer that cannot get the lock in time fails with a clear message and changes nothing.
#[test]
fn a_blocked_writer_fails_clearly() {
    let w = World::new(Db::sqlite());
    w.accounts("t0", &[("A1", "A")]);
    w.import("t0");
    let Db::Sqlite(dir) = &w.db else {
        unreachable!()
    };
    let holder = rusqlite::Connection::open(dir.path().join("abm.db")).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let o = w
        .abm()
        .env("ABM_LOCK_TIMEOUT", "1")
        .args(["run", "--as-of", "2026-11-01"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("another abm process is writing"), "{err}");
    // Readers are not blocked by a writer.
    assert!(w.fails(&["summary"]).contains("no run yet"));
    holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(w.run("2026-11-01")["run_id"], 1);
}

both_backends! {
    the_same_import_twice_adds_nothing => same_import_twice;
    the_same_run_twice_records_nothing => same_run_twice;
    two_runs_at_once_serialize => concurrent_runs;
    jsonl_and_presets_import_idempotently => jsonl_and_preset;
}
