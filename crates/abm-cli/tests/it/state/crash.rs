//! kill -9 in the middle of a large `abm run`: the database opens, passes an integrity check,
//! and holds exactly the previous snapshot and review queue. The same in the middle of a first
//! import (the one that drops the identity indexes and builds them again) and of a database's
//! first run (on SQLite it drops the state's and the history's secondary indexes and builds
//! them after its rows).

use super::*;
use crate::both_backends;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;

fn crash_mid_run(db: Db) {
    killed_run(db, false, "2026-11-02", None);
}

/// The same in a run that scales with change: after two runs every account is settled; new
/// events for a fifth of the accounts, and the next run assesses those (read by index) and the
/// few due, killed while it writes.
fn crash_mid_incremental_run(db: Db) {
    killed_run(db, true, "2026-11-03", Some("unchanged)"));
}

/// A world with a large sample (200,000 accounts, one event each) imported from its `data`.
fn large_sample(db: Db) -> (World, std::path::PathBuf) {
    let w = World::new(db);
    let data = w.dir.path().join("data");
    run_ok(
        abm()
            .args([
                "sample",
                "--accounts",
                "200000",
                "--events-per-account",
                "1",
                "--out",
            ])
            .arg(&data),
    );
    w.import("data");
    (w, data)
}

/// Start `abm run --as-of AS_OF` (not --quiet: it logs its phases on stderr) and kill -9 it
/// once it writes its snapshot; the lines it logged.
fn kill_while_writing(w: &World, as_of: &str) -> Vec<String> {
    let mut child = abm()
        .current_dir(w.dir.path())
        .env("ABM_DATABASE_URL", w.db.url())
        .args(["run", "--as-of", as_of])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    loop {
        let line = lines.next().expect("the run ended before writing").unwrap();
        seen.push(line.clone());
        if line.contains("writing snapshot") {
            break;
        }
    }
    kill_9(
        child,
        &format!("the run finished before it could be killed: {seen:?}"),
    );
    seen
}

/// SIGKILL `child`, which must still have been running (`late`: what it means if not).
fn kill_9(mut child: std::process::Child, late: &str) {
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "{late}");
}

/// `abm run --as-of AS_OF` to its end: what it logged on stderr.
fn logged_run(w: &World, as_of: &str) -> String {
    let out = abm()
        .current_dir(w.dir.path())
        .env("ABM_DATABASE_URL", w.db.url())
        .args(["run", "--as-of", as_of])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    log
}

/// Import a large sample, run as of 2026-11-01 (with `touch`: then as of 2026-11-02, and import
/// a meeting on 2026-11-02 for every fifth account), and kill -9 the run as of `kill_at` once
/// it writes (its log naming `expect` first, when given).
fn killed_run(db: Db, touch: bool, kill_at: &str, expect: Option<&str>) {
    let (w, data) = large_sample(db);
    w.run("2026-11-01");
    if touch {
        w.run("2026-11-02");
        let accounts = std::fs::read_to_string(data.join("accounts.csv")).unwrap();
        let rows: Vec<String> = accounts
            .lines()
            .skip(1)
            .step_by(5)
            .map(|line| {
                let id = line.split(',').next().unwrap();
                format!("{id},2026-11-02T09:00:00Z,meeting,{id}-new")
            })
            .collect();
        let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
        w.events("daily", &rows);
        w.import("daily");
    }
    let runs = w.json(&["summary"])["runs"].as_i64().unwrap();
    let before = (
        w.json(&["summary"]),
        w.json(&["review", "list", "--all"]),
        w.json(&["movements"]),
    );
    let first_id = std::fs::read_to_string(data.join("accounts.csv"))
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    let hist = w.history(&first_id);
    let packs = abm_store::Store::open(&w.db.url())
        .unwrap()
        .pack_stats()
        .unwrap();

    let seen = kill_while_writing(&w, kill_at);
    assert!(
        seen.iter().any(|l| l.contains("transaction open")),
        "{seen:?}"
    );
    if let Some(expect) = expect {
        assert!(seen.iter().any(|l| l.contains(expect)), "{seen:?}");
    }

    if let Db::Sqlite(dir) = &w.db {
        let ok = abm_store::sqlite_integrity_check(&dir.path().join("abm.db")).unwrap();
        assert_eq!(ok, "ok");
    }
    let after = (
        w.json(&["summary"]),
        w.json(&["review", "list", "--all"]),
        w.json(&["movements"]),
    );
    assert_eq!(after, before, "the killed run left traces");
    assert_eq!(w.history(&first_id), hist);
    assert_eq!(after.0["runs"], runs);
    // The event packs too (a run rewrites them in its transaction).
    {
        let mut store = abm_store::Store::open(&w.db.url()).unwrap();
        assert_eq!(
            store.pack_stats().unwrap(),
            packs,
            "the killed run left packs"
        );
        store.check_packs().unwrap();
    }
    // The database is usable: the same run now completes. (PostgreSQL identities are not
    // transactional, so the killed run may have used up an id.)
    assert!(w.run(kill_at)["run_id"].as_i64().unwrap() > runs);
    assert_eq!(w.json(&["summary"])["runs"], runs + 1);
}

/// The indexes of a SQLite database, by name, with the statements that made them.
fn sqlite_indexes(path: &std::path::Path) -> Vec<(String, String)> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut st = c
        .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A database's first run, killed while it writes: no run, no state, every index as it was;
/// then the run completes, with the indexes it dropped built again.
fn crash_mid_first_run(db: Db) {
    let (w, _) = large_sample(db);
    let sqlite = match &w.db {
        Db::Sqlite(dir) => Some(dir.path().join("abm.db")),
        _ => None,
    };
    let indexes = sqlite.as_deref().map(sqlite_indexes);
    if let Some(ix) = &indexes {
        for name in ["account_state_due", "snapshots_account"] {
            assert!(ix.iter().any(|(n, _)| n == name), "{name} in {ix:?}");
        }
    }
    kill_while_writing(&w, "2026-11-01");
    if let Some(path) = &sqlite {
        assert_eq!(abm_store::sqlite_integrity_check(path).unwrap(), "ok");
        assert_eq!(
            Some(sqlite_indexes(path)),
            indexes,
            "the killed run left its indexes dropped"
        );
    }
    {
        let mut store = abm_store::Store::open(&w.db.url()).unwrap();
        assert_eq!(
            store.latest_as_of().unwrap(),
            None,
            "the killed run left a run"
        );
    }
    // The run completes; it logs the indexes it built after its rows (SQLite).
    let log = logged_run(&w, "2026-11-01");
    assert_eq!(
        log.contains("state and history indexes built"),
        sqlite.is_some(),
        "{log}"
    );
    if let Some(path) = &sqlite {
        assert_eq!(abm_store::sqlite_integrity_check(path).unwrap(), "ok");
        assert_eq!(Some(sqlite_indexes(path)), indexes);
    }
    // The next run finds state and history, and keeps its indexes as they are.
    let log = logged_run(&w, "2026-11-02");
    assert!(!log.contains("indexes built"), "{log}");
}

/// A first import drops the unique identity indexes and builds them at the end (issue 15), and
/// on SQLite runs outside WAL (a rollback journal); killed half-way, it leaves nothing, and the
/// indexes are there again: the next import adds every row, the one after it none.
fn crash_mid_first_import(db: Db) {
    let w = World::new(db);
    let data = w.dir.path().join("data");
    run_ok(
        abm()
            .args([
                "sample",
                "--accounts",
                "50000",
                "--events-per-account",
                "10",
                "--out",
            ])
            .arg(&data),
    );
    // On PostgreSQL the import is killed while it copies events (seen from the server); on
    // SQLite after a while.
    let app = format!("abm_kill_{}", std::process::id());
    let url = match &w.db {
        Db::Postgres { url, .. } => format!("{url}&application_name={app}"),
        Db::Sqlite(_) => w.db.url(),
    };
    let child = w
        .abm()
        .env("ABM_DATABASE_URL", &url)
        .args(["import", "data"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    match &w.db {
        Db::Postgres { admin, .. } => {
            let mut c = postgres::Client::connect(admin, postgres::NoTls).unwrap();
            let start = std::time::Instant::now();
            while c
                .query_one(
                    "SELECT COUNT(*) FROM pg_stat_activity
                     WHERE application_name = $1 AND query LIKE 'COPY events%'",
                    &[&app],
                )
                .unwrap()
                .get::<_, i64>(0)
                == 0
            {
                assert!(start.elapsed().as_secs() < 120, "the import never copied");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        Db::Sqlite(_) => std::thread::sleep(std::time::Duration::from_millis(1500)),
    }
    kill_9(child, "the import finished before it could be killed");
    assert!(!w.dir.path().join("rejected_rows.csv").exists());
    if let Db::Sqlite(dir) = &w.db {
        let path = dir.path().join("abm.db");
        // A first load of files runs outside WAL: killed, it leaves a hot rollback journal,
        // which the next connection to open the file rolls back.
        let journal = dir.path().join("abm.db-journal");
        assert!(
            journal.metadata().is_ok_and(|m| m.len() > 0),
            "the killed first load left no rollback journal"
        );
        let ok = abm_store::sqlite_integrity_check(&path).unwrap();
        assert_eq!(ok, "ok");
    }
    let first = w.import_json("data");
    if let Db::Sqlite(dir) = &w.db {
        let c = rusqlite::Connection::open(dir.path().join("abm.db")).unwrap();
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal", "back in WAL after a first load");
    }
    // (PostgreSQL identities are not transactional: the killed import used up an id.)
    if let Db::Sqlite(_) = &w.db {
        assert_eq!(
            first["import_id"], 1,
            "the killed import left a trace: {first}"
        );
    }
    assert_eq!(first["data_version"], 1, "{first}");
    assert!(first["events_added"].as_u64().unwrap() > 400_000, "{first}");
    let again = w.import_json("data");
    for k in [
        "accounts_changed",
        "events_added",
        "triggers_added",
        "deals_changed",
    ] {
        assert_eq!(again[k], 0, "{k}: {again}");
    }
}

both_backends! {
    kill_9_mid_run_leaves_the_previous_snapshot => crash_mid_run;
    kill_9_mid_incremental_run_leaves_the_previous_state => crash_mid_incremental_run;
    kill_9_mid_first_import_leaves_nothing => crash_mid_first_import;
    kill_9_mid_first_run_leaves_the_indexes => crash_mid_first_run;
}
