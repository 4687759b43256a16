//! Regressions from the fault/bad-input probe (issue 11).

use crate::state::{Db, World, ACCOUNTS_HEADER};
use crate::{abm, run_ok};
use std::process::Stdio;

/// A SQLite world with one account whose name holds terminal escapes, a run and a pending
/// promotion (A1 had a meeting).
fn world_with_queue() -> World {
    let w = World::new(Db::sqlite());
    w.file(
        "t0",
        "accounts.csv",
        ACCOUNTS_HEADER,
        &[
            "A1,\x1b[2JEvil\x1b]0;owned\x07 Corp,software,500,90,A",
            "A2,A2 Corp,software,500,70,B",
        ],
    );
    w.events("t0", &["A2,2025-12-20,email_reply,c1"]);
    w.import("t0");
    w.run("2026-01-01");
    w.file(
        "t1",
        "accounts.csv",
        ACCOUNTS_HEADER,
        &[
            "A1,\x1b[2JEvil\x1b]0;owned\x07 Corp,software,500,90,A",
            "A2,A2 Corp,software,500,70,B",
        ],
    );
    w.events("t1", &["A1,2026-01-20T10:00:00Z,meeting,c7"]);
    w.import("t1");
    w.run("2026-02-01");
    w
}

/// Issue 11 #8: `abm … | head -1` — stdout closed before abm writes — is success, silently.
#[test]
fn closed_stdout_is_success_without_a_word() {
    let w = world_with_queue();
    for args in [
        &["review", "list", "--all"][..],
        &["review", "list", "--json"],
        &["summary"],
        &["summary", "--json"],
        &["movements"],
        &["history", "A1"],
        &["history", "A1", "--json"],
    ] {
        let mut child = w
            .abm()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader is gone before abm prints
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {:?}, stderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // segment and explain too.
    let d = tempfile::tempdir().unwrap();
    let data = crate::sample_data(d.path(), 300);
    let out_dir = d.path().join("out");
    for args in [
        vec![
            "segment",
            data.to_str().unwrap(),
            "--as-of",
            "2026-11-01",
            "--out",
            out_dir.to_str().unwrap(),
        ],
        vec![
            "explain",
            "ACC-0001",
            data.to_str().unwrap(),
            "--as-of",
            "2026-11-01",
        ],
    ] {
        let mut child = abm()
            .args(&args)
            .arg("--quiet")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Issue 11 #15: control characters from data are shown escaped in human-readable output;
/// `--json` stays valid JSON holding the exact text.
#[test]
fn terminal_escapes_from_data_are_escaped() {
    let w = world_with_queue();
    let id = w.pending()[0]["id"].as_i64().unwrap();
    run_ok(w.abm().args([
        "review",
        "reject",
        &id.to_string(),
        "--comment",
        "\x1b[2Jgone\u{9b}31m",
    ]));
    for args in [
        &["history", "A1"][..],
        &["review", "list", "--all"],
        &["movements"],
        &["summary"],
    ] {
        let o = run_ok(w.abm().args(args));
        let s = String::from_utf8(o.stdout).unwrap();
        assert!(
            !s.contains('\x1b') && !s.contains('\x07') && !s.contains('\u{9b}'),
            "{args:?}: {s:?}"
        );
        if args[0] == "history" {
            assert!(s.contains("\\x1b[2JEvil\\x1b]0;owned\\x07 Corp"), "{s}");
        }
        if args[0] == "review" {
            assert!(s.contains("\\x1b[2Jgone\\u{9b}31m"), "{s}");
        }
    }
    let h = w.history("A1");
    assert_eq!(h["name"], "\x1b[2JEvil\x1b]0;owned\x07 Corp");

    // explain, on the stateless path.
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("accounts.csv"),
        format!("{ACCOUNTS_HEADER}X1,\x1b[2JEvil\x1b]0;t\x07,software,500,90,A\n"),
    )
    .unwrap();
    let o = run_ok(
        abm()
            .args(["explain", "X1"])
            .arg(d.path())
            .args(["--as-of", "2026-11-01"]),
    );
    let s = String::from_utf8(o.stdout).unwrap();
    assert!(!s.contains('\x1b') && !s.contains('\x07'), "{s:?}");
    assert!(s.contains("\\x1b[2JEvil\\x1b]0;t\\x07"), "{s}");
}

/// Issue 11 #4: when the rejected rows cannot be written, the import is rolled back (the
/// database unchanged) and the exit is non-zero with a message naming the file.
#[test]
fn import_rolls_back_when_the_rejected_rows_cannot_be_written() {
    let w = World::new(Db::sqlite());
    w.accounts("t0", &[("A1", "A"), ("A2", "B")]);
    w.events(
        "t0",
        &[
            "A1,2026-01-20T10:00:00Z,meeting,c7",
            "A2,not a date,meeting,c1",
        ],
    );
    // A path whose parent is a regular file: not writable, even for root.
    std::fs::write(w.dir.path().join("plain"), "x").unwrap();
    let err = w.fails(&["import", "t0", "--rejected", "plain/rejected.csv"]);
    assert!(
        err.contains("cannot write the rejected rows to plain/rejected.csv")
            && err.contains("nothing was imported"),
        "{err}"
    );
    // Nothing was stored: the same import now adds everything.
    let r = w.import_json("t0");
    assert_eq!(r["accounts_changed"], 2, "{r}");
    assert_eq!(r["events_added"], 1, "{r}");
    assert_eq!(r["rejected"], 1, "{r}");
    let rejected = std::fs::read_to_string(w.dir.path().join("rejected_rows.csv")).unwrap();
    assert!(rejected.contains("not a date"), "{rejected}");
}

/// Issue 11 #7: an output path that is one of the inputs is refused before anything is
/// written.
#[test]
fn an_input_is_never_an_output() {
    let w = World::new(Db::sqlite());
    w.accounts("t0", &[("A1", "A")]);
    w.events("t0", &["A1,2026-01-20T10:00:00Z,meeting,c7"]);
    let engagement = w.dir.path().join("t0/engagement.csv");
    let before = std::fs::read(&engagement).unwrap();
    // Another spelling of the same file, as the probe did.
    let err = w.fails(&["import", "t0", "--rejected", "./t0/../t0/engagement.csv"]);
    assert!(
        err.contains("refusing to write ./t0/../t0/engagement.csv: that file is")
            && err.contains("t0/engagement.csv, which this command reads"),
        "{err}"
    );
    assert_eq!(std::fs::read(&engagement).unwrap(), before);
    assert!(
        !w.dir.path().join("abm.db").exists()
            && !w.dir.path().join("t0/.engagement.csv.tmp").exists()
    );
    let r = w.import_json("t0");
    assert_eq!(r["events_added"], 1, "{r}");
    // Nor the SQLite database.
    let db = w.db.url();
    let err = w.fails(&["import", "t0", "--rejected", &db]);
    assert!(err.contains("which this command reads"), "{err}");
    let r = w.import_json("t0");
    assert_eq!(r["events_read"], 1, "the database is intact: {r}");
    assert_eq!(r["events_added"], 0, "the database is intact: {r}");

    // segment: an input inside --out under an output's name.
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("cluster_summary.json"),
        format!("{ACCOUNTS_HEADER}A1,A1 Corp,software,500,90,A\n"),
    )
    .unwrap();
    let o = abm()
        .args(["segment", "--accounts"])
        .arg(d.path().join("cluster_summary.json"))
        .args(["--as-of", "2026-11-01", "--quiet", "--out"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("which this command reads"), "{err}");
    assert!(!d.path().join("cluster_assignments.csv").exists());
}

/// Issue 11 #13: a PostgreSQL connection error says why (the server's message), with the
/// password still masked.
#[test]
#[ignore = "needs PostgreSQL: set ABM_TEST_PG_URL (run by .ci/run)"]
fn postgres_connection_errors_show_the_servers_reason() {
    let Ok(admin) = std::env::var("ABM_TEST_PG_URL") else {
        crate::skip_or_fail(
            "postgres_connection_errors_show_the_servers_reason",
            "ABM_TEST_PG_URL is not set",
        );
        return;
    };
    // postgres://user[:pw]@host[:port]/db[?…] → the same server, a database that does not exist.
    let (base, query) = admin.split_once('?').unwrap_or((&admin, ""));
    let (scheme, rest) = base.split_once("://").unwrap();
    let (auth, host_db) = rest.rsplit_once('@').unwrap();
    let user = auth.split(':').next().unwrap();
    let host = host_db.split('/').next().unwrap();
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    let url = format!("{scheme}://{user}:s3cret-pw@{host}/abm_no_such_database_11{query}");
    let d = tempfile::tempdir().unwrap();
    let o = abm()
        .current_dir(d.path())
        .args(["summary", "--database", &url])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("database \"abm_no_such_database_11\" does not exist"),
        "{err}"
    );
    assert!(!err.contains("s3cret-pw") && err.contains(":***@"), "{err}");
}

/// Issue 11 #6: formula cells are neutralised in `segment`'s and `export`'s CSV and the
/// rejected rows' record; JSON Lines stay exact; `--csv-raw` / `ABM_CSV_RAW=1` opt out.
#[test]
fn csv_outputs_neutralise_formulas() {
    let w = World::new(Db::sqlite());
    w.file(
        "t0",
        "accounts.csv",
        ACCOUNTS_HEADER,
        &[
            "A1,=cmd|' /C calc'!A0,software,500,90,A",
            "A2,\"+SUM(1,2)\",software,500,70,B",
            "@A3,@SUM(1),software,many,70,B",
            "A4,-2+3,software,500,70,B",
        ],
    );
    let data = w.dir.path().join("t0");
    let seg = |out: &str, raw: Option<&str>| {
        let mut c = abm();
        c.arg("segment")
            .arg(&data)
            .args(["--as-of", "2026-11-01", "--quiet", "--out"])
            .arg(w.dir.path().join(out));
        match raw {
            Some("flag") => {
                c.arg("--csv-raw");
            }
            Some(v) => {
                c.env("ABM_CSV_RAW", v);
            }
            None => {}
        }
        run_ok(&mut c);
        let read = |f: &str| std::fs::read_to_string(w.dir.path().join(out).join(f)).unwrap();
        (
            read("cluster_assignments.csv"),
            read("cluster_assignments.jsonl"),
            read("rejected_rows.csv"),
        )
    };
    let (csv, jsonl, rejected) = seg("o1", None);
    assert!(csv.contains("\nA1,'=cmd|' /C calc'!A0,90,"), "{csv}");
    assert!(csv.contains("\nA2,\"'+SUM(1,2)\",70,"), "{csv}");
    assert!(csv.contains("\nA4,'-2+3,70,"), "{csv}");
    assert!(jsonl.contains("\"name\":\"=cmd|' /C calc'!A0\""), "{jsonl}");
    assert!(jsonl.contains("\"name\":\"+SUM(1,2)\""), "{jsonl}");
    assert!(
        rejected.contains(",\"'@A3,@SUM(1),software,many,70,B\"\n"),
        "{rejected}"
    );
    for raw in [Some("flag"), Some("1")] {
        let (csv, jsonl2, rejected) = seg("o2", raw);
        assert!(csv.contains("\nA1,=cmd|' /C calc'!A0,90,"), "{csv}");
        assert!(csv.contains("\nA2,\"+SUM(1,2)\",70,"), "{csv}");
        assert_eq!(jsonl2, jsonl);
        assert!(
            rejected.contains(",\"@A3,@SUM(1),software,many,70,B\"\n"),
            "{rejected}"
        );
    }

    // export writes what segment writes.
    w.import("t0");
    w.run("2026-11-01");
    run_ok(w.abm().args(["export", "--out", "e"]));
    let exported = std::fs::read_to_string(w.dir.path().join("e/cluster_assignments.csv")).unwrap();
    assert!(
        exported.contains("\nA1,'=cmd|' /C calc'!A0,90,"),
        "{exported}"
    );
}
