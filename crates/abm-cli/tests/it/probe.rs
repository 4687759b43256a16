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
