//! Issue 12 #4: a review decision shows at once in the account's current state (export,
//! summary, history), as of the run that proposed it; snapshots stay immutable and the next run
//! agrees with what was shown (the whole export is unchanged by it).

use super::*;
use crate::both_backends;

/// A1 (tier A) at baseline in Cluster ICP, then a meeting: promotion to Active Focus proposed
/// by the run as of 2026-02-01. Returns the proposal's id.
fn proposed_promotion(w: &World) -> i64 {
    w.accounts("t0", &[("A1", "A"), ("B2", "B")]);
    w.events("t0", &["B2,2025-12-20,email_reply,c1"]);
    w.import("t0");
    w.run("2026-01-01");
    w.accounts("t1", &[("A1", "A"), ("B2", "B")]);
    w.events("t1", &["A1,2026-01-20T10:00:00Z,meeting,c7"]);
    w.import("t1");
    w.run("2026-02-01");
    let q = w.pending();
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0]["kind"], "promotion_to_active_focus");
    q[0]["id"].as_i64().unwrap()
}

fn approval_shows_at_once(db: Db) {
    let w = World::new(db);
    let id = proposed_promotion(&w);
    let before = w.export("before");
    let row = export_row(&before[1], "A1");
    assert_eq!(
        (
            row["cluster"].as_str().unwrap(),
            row["movement"].as_str().unwrap()
        ),
        ("cluster_icp", "proposed_promotion")
    );
    assert_eq!(w.json(&["summary"])["active_focus_count"], 0);
    let snapshots = w.history("A1")["snapshots"].clone();
    let moves = w.json(&["movements"]).as_array().unwrap().len();

    let out = w.approve(id);
    assert_eq!(out["effective_cluster"], "active_focus");
    // At once: export, summary and history.
    let shown = w.export("shown");
    let row = export_row(&shown[1], "A1");
    assert_eq!(row["cluster"], "active_focus", "{row}");
    assert_eq!(row["program_type"], "one_to_one_abm", "{row}");
    assert_eq!(row["checkpoint"], "", "the proposal is decided: {row}");
    assert_eq!(
        export_row(&shown[1], "B2"),
        export_row(&before[1], "B2"),
        "other accounts untouched"
    );
    let summary: Value = serde_json::from_str(&shown[2]).unwrap();
    assert_eq!(summary["active_focus_count"], 1, "{summary}");
    assert_eq!(summary["cluster_icp_count"], 0, "{summary}");
    let s = w.json(&["summary"]);
    assert_eq!(
        (&s["active_focus_count"], &s["cluster_icp_count"]),
        (&Value::from(1), &Value::from(0)),
        "{s}"
    );
    let h = w.history("A1");
    assert_eq!(h["state"]["cluster"], "active_focus");
    assert_eq!(h["state"]["entered_at"], "2026-02-01T00:00:00Z");
    assert_eq!(h["snapshots"], snapshots, "snapshots are immutable");
    let text = String::from_utf8(run_ok(w.abm().args(["summary"])).stdout).unwrap();
    assert!(text.contains("Active Focus             1"), "{text}");

    // The next run, same data and as_of, agrees byte for byte and moves nothing.
    w.run("2026-02-01");
    assert_eq!(w.export("after"), shown);
    assert_eq!(
        w.json(&["movements"]).as_array().unwrap().len(),
        moves + 1,
        "the approval's movement only"
    );
    assert_eq!(cm(&w.latest("A1")), pair("active_focus", "unchanged"));
}

fn rejection_shows_at_once(db: Db) {
    let w = World::new(db);
    let id = proposed_promotion(&w);
    w.reject(id);
    let shown = w.export("shown");
    let row = export_row(&shown[1], "A1");
    assert_eq!(
        (
            row["cluster"].as_str().unwrap(),
            row["movement"].as_str().unwrap(),
            row["checkpoint"].as_str().unwrap()
        ),
        ("cluster_icp", "unchanged", ""),
        "{row}"
    );
    assert_eq!(w.json(&["summary"])["active_focus_count"], 0);
    assert_eq!(w.history("A1")["state"]["cluster"], "cluster_icp");
    w.run("2026-02-01");
    assert_eq!(w.export("after"), shown);
    assert!(w.pending().is_empty());
}

/// A demotion proposed at one run, kept pending by a later one, approved after it: the account
/// is demoted as of the proposing run (its evidence floor is that run's as_of), so only what
/// happened after it counts — here a Low email open — and the current row says so.
fn kept_pending_demotion_approved(db: Db) {
    let w = World::new(db);
    w.accounts("t0", &[("A1", "A")]);
    w.events("t0", &["A1,2026-01-01,demo,c1"]);
    w.import("t0");
    w.run("2026-01-02");
    w.run("2026-04-02");
    let q = w.pending();
    assert_eq!(q[0]["kind"], "demotion_from_active_focus", "{q:?}");
    let id = q[0]["id"].as_i64().unwrap();
    w.accounts("t1", &[("A1", "A")]);
    w.events("t1", &["A1,2026-04-05,email_open,c1"]);
    w.import("t1");
    w.run("2026-04-10");
    assert_eq!(w.pending().len(), 1, "kept pending");
    w.approve(id);
    let shown = w.export("shown");
    let row = export_row(&shown[1], "A1");
    assert_eq!(
        (
            row["cluster"].as_str().unwrap(),
            row["engagement_level"].as_str().unwrap(),
            row["checkpoint"].as_str().unwrap()
        ),
        ("future_pipeline", "low", ""),
        "{row}"
    );
    assert_eq!(w.history("A1")["state"]["floor"], "2026-04-02T00:00:00Z");
    w.run("2026-04-10");
    assert_eq!(w.export("after"), shown);
}

/// Decided the same run it was proposed: the floor is that run's as_of, so nothing up to it
/// counts any more.
fn demotion_approved_in_its_run(db: Db) {
    let w = World::new(db);
    w.accounts("t0", &[("A1", "A")]);
    w.events("t0", &["A1,2026-09-01,meeting,c1"]);
    w.file(
        "t0",
        "deals.csv",
        "deal_id,account_id,stage,amount,created_at,closed_at,last_stage_change_at,outcome\n",
        &["D1,A1,proposal,50000,2026-08-01,,2026-09-01,open"],
    );
    w.import("t0");
    w.run("2026-09-02");
    w.accounts("t1", &[("A1", "A")]);
    w.events("t1", &["A1,2026-10-30,meeting,c2"]);
    w.import("t1");
    w.run("2026-11-01");
    let id = w.pending()[0]["id"].as_i64().unwrap();
    w.approve(id);
    let shown = w.export("shown");
    let row = export_row(&shown[1], "A1");
    assert_eq!(
        (
            row["cluster"].as_str().unwrap(),
            row["engagement_level"].as_str().unwrap()
        ),
        ("future_pipeline", "none"),
        "{row}"
    );
    w.run("2026-11-01");
    assert_eq!(w.export("after"), shown);
}

both_backends! {
    an_approval_shows_at_once_and_the_next_run_agrees => approval_shows_at_once;
    a_rejection_shows_at_once_and_the_next_run_agrees => rejection_shows_at_once;
    a_kept_pending_demotion_approved_counts_from_its_run => kept_pending_demotion_approved;
    a_demotion_approved_in_its_run_counts_nothing_before_it => demotion_approved_in_its_run;
}
