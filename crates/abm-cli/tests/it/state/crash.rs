//! kill -9 in the middle of a large `abm run`: the database opens, passes an integrity check,
//! and holds exactly the previous snapshot and review queue.

use super::*;
use crate::both_backends;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;

fn crash_mid_run(db: Db) {
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
    w.run("2026-11-01");
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

    // Not --quiet: the run logs its phases on stderr.
    let mut child = abm()
        .current_dir(w.dir.path())
        .env("ABM_DATABASE_URL", w.db.url())
        .args(["run", "--as-of", "2026-11-02"])
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
    assert!(
        seen.iter().any(|l| l.contains("transaction open")),
        "{seen:?}"
    );
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "the run finished before it could be killed: {seen:?}"
    );

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
    assert_eq!(after.0["runs"], 1);
    // The database is usable: the same run now completes. (PostgreSQL identities are not
    // transactional, so the killed run may have used up an id.)
    assert!(w.run("2026-11-02")["run_id"].as_i64().unwrap() >= 2);
    assert_eq!(w.json(&["summary"])["runs"], 2);
}

both_backends! {
    kill_9_mid_run_leaves_the_previous_snapshot => crash_mid_run;
}
