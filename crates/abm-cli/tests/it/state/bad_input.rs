//! Issue 11: bad inputs get one rule on every path — `segment`, and `import` into SQLite and
//! PostgreSQL: the same rows rejected, with file, physical line, column and reason, and every
//! record counted as read.

use super::*;
use crate::both_backends;

/// (line, column, reason) of each rejected row of `file` in the rejected-rows CSV at `path`.
fn rejected(path: &Path, file: &str) -> Vec<(u64, String, String)> {
    if !path.exists() {
        return vec![];
    }
    let (header, rows) = read_csv(path);
    assert_eq!(header[..4], ["file", "line", "column", "reason"]);
    rows.into_iter()
        .filter(|r| r[0].ends_with(file))
        .map(|r| (r[1].parse().unwrap(), r[2].clone(), r[3].clone()))
        .collect()
}

fn bad_inputs(db: Db) {
    let w = World::new(db);
    w.accounts("t0", &[("A1", "A"), ("A2", "B")]);
    // A NUL escaped in a JSON value (PostgreSQL cannot store it: the whole import used to
    // abort), a repeated key, and a good event.
    w.file(
        "t0",
        "engagement.jsonl",
        "",
        &[
            r#"{"account_id":"A1","occurred_at":"2026-10-20","type":"demo","contact_id":"c\u0000"}"#,
            r#"{"account_id":"A1","occurred_at":"2026-10-21","type":"demo","type":"meeting"}"#,
            r#"{"account_id":"A2","occurred_at":"2026-10-22","type":"demo"}"#,
        ],
    );
    // A repeated deal_id (its first occurrence is on physical line 3, after a blank line) and
    // a negative amount.
    w.file(
        "t0",
        "deals.csv",
        "deal_id,account_id,stage,amount,created_at,outcome\n\n",
        &[
            "D1,A1,s,10,2026-09-01,open",
            "D2,A1,s,-10,2026-09-01,open",
            "D1,A2,s,5,2026-09-01,won",
        ],
    );
    let want_eng = vec![(1, "contact_id".to_string()), (2, "type".to_string())];
    let want_deals = vec![
        (
            4,
            "amount".to_string(),
            "amount -10 is negative".to_string(),
        ),
        (
            5,
            "deal_id".to_string(),
            "duplicate deal_id \"D1\" (first at line 3)".to_string(),
        ),
    ];

    let o = run_ok(
        w.abm()
            .args(["import", "t0", "--json", "--rejected", "rej.csv"]),
    );
    let rep: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (
            rep["events_read"].as_u64(),
            rep["events_added"].as_u64(),
            rep["deals_read"].as_u64(),
            rep["deals_changed"].as_u64(),
            rep["rejected"].as_u64()
        ),
        (Some(3), Some(1), Some(3), Some(1), Some(4))
    );
    let rej = w.dir.path().join("rej.csv");
    let eng: Vec<_> = rejected(&rej, "engagement.jsonl")
        .into_iter()
        .map(|(l, c, _)| (l, c))
        .collect();
    assert_eq!(eng, want_eng);
    assert_eq!(rejected(&rej, "deals.csv"), want_deals);

    // `segment` rejects the same rows.
    run_ok(
        w.abm()
            .args(["segment", "t0", "--as-of", "2026-11-01", "--out", "out"]),
    );
    let rej = w.dir.path().join("out/rejected_rows.csv");
    let eng: Vec<_> = rejected(&rej, "engagement.jsonl")
        .into_iter()
        .map(|(l, c, _)| (l, c))
        .collect();
    assert_eq!(eng, want_eng);
    assert_eq!(rejected(&rej, "deals.csv"), want_deals);
    let s: Value = serde_json::from_slice(
        &std::fs::read(w.dir.path().join("out/cluster_summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(s["rows_read"]["engagement"], 3);
    assert_eq!(s["rows_read"]["deals"], 3);
    assert_eq!(s["rejected_rows"], 4);
}

/// Issue 11 #3: CR-only line ends read as lines on every path (they used to read 0 rows).
fn cr_line_ends(db: Db) {
    let w = World::new(db);
    let d = w.dir.path().join("t0");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("accounts.csv"),
        "account_id,name,industry\rA1,X,software\rA2,Y,software\r",
    )
    .unwrap();
    std::fs::write(
        d.join("engagement.csv"),
        "account_id,occurred_at,type\rA1,2026-10-20,demo\r\rA2,2026-10-21,meeting\r",
    )
    .unwrap();
    let rep = w.import_json("t0");
    assert_eq!(
        (
            rep["accounts_read"].as_u64(),
            rep["events_read"].as_u64(),
            rep["rejected"].as_u64()
        ),
        (Some(2), Some(2), Some(0))
    );
    run_ok(
        w.abm()
            .args(["segment", "t0", "--as-of", "2026-11-01", "--out", "out"]),
    );
    let s: Value = serde_json::from_slice(
        &std::fs::read(w.dir.path().join("out/cluster_summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (
            s["accounts"].as_u64(),
            s["rows_read"]["engagement"].as_u64()
        ),
        (Some(2), Some(2))
    );
    // explain numbers events with their physical lines (it said "line 0" for line 2).
    let o = run_ok(
        w.abm()
            .args(["explain", "A2", "t0", "--as-of", "2026-11-01"]),
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("line 4 ") && l.contains("meeting")),
        "{text}"
    );
}

both_backends! {
    bad_rows_are_rejected_alike_on_every_path => bad_inputs;
    cr_line_ends_read_as_lines => cr_line_ends;
}
