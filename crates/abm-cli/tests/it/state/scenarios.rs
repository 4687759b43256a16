//! SPEC §4.5 on a timeline: each rule asserted through the real binary on both backends.

use super::*;
use crate::both_backends;

/// t0 baseline (no checkpoint) → t1 a meeting: promotion to Active Focus proposed, not applied,
/// not duplicated by a later run → approved: effective as of the proposing run.
fn promotion_proposed_then_approved(db: Db) {
    let w = World::new(db);
    w.accounts("t0", &[("A1", "A"), ("A2", "B")]);
    w.events("t0", &["A2,2025-12-20,email_reply,c1"]);
    w.import("t0");
    let r = w.run("2026-01-01");
    assert_eq!(r["counts"]["cluster_icp"], 1);
    assert_eq!(r["counts"]["future_pipeline"], 1);
    assert_eq!(
        r["proposals_opened"], 0,
        "a baseline opens no per-account checkpoint"
    );
    assert_eq!(cm(&w.latest("A1")), pair("cluster_icp", "baseline"));
    assert!(w.pending().is_empty());

    w.accounts("t1", &[("A1", "A"), ("A2", "B")]);
    w.events("t1", &["A1,2026-01-20T10:00:00Z,meeting,c7"]);
    w.import("t1");
    let r = w.run("2026-02-01");
    assert_eq!(r["proposals_opened"], 1);
    let s = w.latest("A1");
    assert_eq!(cm(&s), pair("cluster_icp", "proposed_promotion"));
    assert_eq!(s["candidate"], "active_focus");
    assert_eq!(s["checkpoint"], "promotion_to_active_focus");
    let q = w.pending();
    assert_eq!(q.len(), 1, "{q:?}");
    let cp = &q[0];
    for k in [
        "id",
        "kind",
        "account_id",
        "from",
        "to",
        "evidence",
        "status",
        "reviewer",
        "comment",
        "created_at",
        "decided_at",
    ] {
        assert!(cp.get(k).is_some(), "review list --json lacks {k}: {cp}");
    }
    assert_eq!(cp["kind"], "promotion_to_active_focus");
    assert_eq!(
        (cp["from"].as_str(), cp["to"].as_str()),
        (Some("cluster_icp"), Some("active_focus"))
    );
    assert!(cp["evidence"].to_string().contains("meeting"), "{cp}");
    let id = cp["id"].as_i64().unwrap();

    // A later run keeps the one pending proposal.
    w.run("2026-02-05");
    assert_eq!(w.pending().len(), 1);
    assert_eq!(
        cm(&w.latest("A1")),
        pair("cluster_icp", "proposed_promotion")
    );

    let out = w.approve(id);
    assert_eq!(out["checkpoint"]["status"], "approved");
    assert_eq!(out["checkpoint"]["reviewer"], "tester");
    assert_eq!(out["checkpoint"]["comment"], "looks right");
    assert_eq!(out["effective_cluster"], "active_focus");
    let h = w.history("A1");
    assert_eq!(h["state"]["cluster"], "active_focus");
    assert_eq!(
        h["state"]["entered_at"], "2026-02-01T00:00:00Z",
        "effective as of the proposing run"
    );
    let ms = w.json(&["movements"]);
    let m = ms
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["account_id"] == "A1")
        .unwrap();
    assert_eq!(
        (m["from"].as_str(), m["to"].as_str()),
        (Some("cluster_icp"), Some("active_focus"))
    );
    assert_eq!(m["as_of"], "2026-02-01T00:00:00Z");
    assert_eq!(m["approved_by"], "tester");
    assert!(m["evidence"].to_string().contains("meeting"));
    assert!(h["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["action"] == "approve" && d["actor"] == "tester"));

    let err = w.fails(&["review", "approve", &id.to_string()]);
    assert!(err.contains("not pending"), "{err}");
    let err = w.fails(&["review", "reject", "999"]);
    assert!(err.contains("no checkpoint 999"), "{err}");

    // The next run (even at the same as_of) reflects the decision.
    w.run("2026-02-05");
    assert_eq!(cm(&w.latest("A1")), pair("active_focus", "unchanged"));
    assert!(w.pending().is_empty());
    let since = w.json(&["movements", "--since", "2026-02-02"]);
    assert!(since.as_array().unwrap().is_empty(), "{since}");
}

/// Active Focus with silence: no demotion before 90 days without Medium+ engagement, a
/// proposed demotion after; rejected, it is not re-opened while the evidence stays the same.
fn af_silence_threshold(db: Db) {
    let w = World::new(db);
    w.accounts("t0", &[("A1", "A")]);
    w.events("t0", &["A1,2026-01-01,demo,c1"]);
    w.import("t0");
    w.run("2026-01-02");
    assert_eq!(cm(&w.latest("A1")), pair("active_focus", "baseline"));
    // Entered 2026-01-02: the clock runs from the later of the demo and the entry.
    // 2026-04-01: the demo (2026-01-01) is still inside the 90-day window, nothing fires.
    w.run("2026-04-01");
    assert_eq!(cm(&w.latest("A1")), pair("active_focus", "unchanged"));
    assert!(w.pending().is_empty());
    w.run("2026-04-02");
    let s = w.latest("A1");
    assert_eq!(cm(&s), pair("active_focus", "proposed_demotion"));
    assert!(s["rule"].as_str().unwrap().contains("af_inactivity"), "{s}");
    let q = w.pending();
    assert_eq!(q[0]["kind"], "demotion_from_active_focus");
    assert_eq!(q[0]["to"], "future_pipeline");
    let id = q[0]["id"].as_i64().unwrap();
    let out = w.reject(id);
    assert_eq!(out["checkpoint"]["status"], "rejected");
    assert_eq!(out["effective_cluster"], "active_focus");
    w.run("2026-04-20");
    assert!(
        w.pending().is_empty(),
        "same evidence must not re-open a rejected proposal"
    );
    assert_eq!(w.latest("A1")["cluster"], "active_focus");
}

/// Future Pipeline on a trigger alone: held until 180 days after entry, then demoted at once.
fn fp_inactivity(db: Db) {
    let w = World::new(db);
    w.accounts("t0", &[("A1", "A")]);
    w.file(
        "t0",
        "triggers.csv",
        "account_id,occurred_at,type,source,headline\n",
        &["A1,2026-01-10,funding_round,news,Series B"],
    );
    w.import("t0");
    w.run("2026-01-15");
    assert_eq!(cm(&w.latest("A1")), pair("future_pipeline", "baseline"));
    w.run("2026-07-13");
    assert_eq!(cm(&w.latest("A1")), pair("future_pipeline", "held"));
    let r = w.run("2026-07-14");
    assert_eq!(r["demotions"], 1);
    let s = w.latest("A1");
    assert_eq!(cm(&s), pair("cluster_icp", "demotion"));
    assert_eq!(s["rule"], "demotion: fp_inactivity");
    let m = w.json(&["movements"]);
    assert_eq!(m[0]["direction"], "demotion");
    assert_eq!(m[0]["as_of"], "2026-07-14T00:00:00Z");
    assert!(
        m[0]["evidence"]
            .to_string()
            .contains("no engagement since 2026-01-15"),
        "{m}"
    );
}

/// A stalled deal demotes Active Focus even while a recent meeting keeps engagement High;
/// after the approved demotion the old meeting does not re-promote.
fn stalled_deal(db: Db) {
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
    assert_eq!(cm(&w.latest("A1")), pair("active_focus", "baseline"));
    w.events("t1", &["A1,2026-10-30,meeting,c2"]);
    w.accounts("t1", &[("A1", "A")]);
    w.import("t1");
    w.run("2026-11-01");
    let s = w.latest("A1");
    assert_eq!(cm(&s), pair("active_focus", "proposed_demotion"));
    assert_eq!(s["engagement_level"], "high");
    assert!(s["rule"].as_str().unwrap().contains("deal_stalled"));
    let id = w.pending()[0]["id"].as_i64().unwrap();
    w.approve(id);
    let h = w.history("A1");
    assert_eq!(h["state"]["cluster"], "future_pipeline");
    assert_eq!(h["state"]["floor"], "2026-11-01T00:00:00Z");
    w.run("2026-11-02");
    let s = w.latest("A1");
    assert_eq!(s["cluster"], "future_pipeline");
    assert_ne!(s["movement"], "proposed_promotion", "{s}");
    assert!(w.pending().is_empty());
}

/// `champion_left` proposes the demotion from Active Focus.
fn champion_left(db: Db) {
    let w = World::new(db);
    w.accounts("t0", &[("A1", "A")]);
    w.events("t0", &["A1,2026-10-01,demo,c1"]);
    w.import("t0");
    w.run("2026-10-02");
    w.accounts("t1", &[("A1", "A")]);
    w.events("t1", &["A1,2026-10-10,champion_left,c1"]);
    w.import("t1");
    w.run("2026-10-11");
    let s = w.latest("A1");
    assert_eq!(cm(&s), pair("active_focus", "proposed_demotion"));
    assert_eq!(s["rule"], "demotion: champion_left");
    let q = w.pending();
    let p = q
        .iter()
        .find(|c| c["kind"] == "demotion_from_active_focus")
        .unwrap();
    assert!(p["evidence"].to_string().contains("champion_left"));
    w.approve(p["id"].as_i64().unwrap());
    w.run("2026-10-12");
    assert_eq!(w.latest("A1")["cluster"], "future_pipeline");
}

/// `no_priority` demotes Future Pipeline to Cluster ICP at once.
fn no_priority(db: Db) {
    let w = World::new(db);
    w.accounts("t0", &[("A1", "A")]);
    w.events("t0", &["A1,2026-10-01,email_reply,c1"]);
    w.import("t0");
    w.run("2026-10-02");
    assert_eq!(w.latest("A1")["cluster"], "future_pipeline");
    w.accounts("t1", &[("A1", "A")]);
    w.events("t1", &["A1,2026-10-20,no_priority,c1"]);
    w.import("t1");
    w.run("2026-11-01");
    let s = w.latest("A1");
    assert_eq!(cm(&s), pair("cluster_icp", "demotion"));
    assert_eq!(s["rule"], "demotion: no_priority");
}

/// Tier falls to D: Monitor Only at once, and the pending proposal is closed with a reason.
fn tier_drop(db: Db) {
    let w = World::new(db);
    w.accounts("t0", &[("A1", "A")]);
    w.import("t0");
    w.run("2026-01-01");
    w.accounts("t1", &[("A1", "A")]);
    w.events("t1", &["A1,2026-01-20,meeting,c1"]);
    w.import("t1");
    w.run("2026-02-01");
    let id = w.pending()[0]["id"].as_i64().unwrap();
    w.accounts("t2", &[("A1", "D")]);
    w.import("t2");
    let r = w.run("2026-02-02");
    assert_eq!(r["checkpoints_closed"], 1);
    let s = w.latest("A1");
    assert_eq!(cm(&s), pair("monitor_only", "demotion"));
    assert_eq!(s["rule"], "demotion: tier_drop");
    let all = w.json(&["review", "list", "--all"]);
    let cp = all
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap();
    assert_eq!(cp["status"], "closed");
    assert!(cp["reason"].as_str().unwrap().contains("moved on"), "{cp}");
    assert!(w
        .pending()
        .iter()
        .all(|c| c["kind"] != "promotion_to_active_focus"));
    let err = w.fails(&["review", "approve", &id.to_string()]);
    assert!(err.contains("closed"), "{err}");
    // Tier D with High engagement is no checkpoint (issue 13: such conflicts stayed pending for
    // years on the most active buyers) but a re-score suggestion in the next action.
    let conflicts = |w: &World| {
        w.pending()
            .iter()
            .filter(|c| c["kind"] == "conflict")
            .count()
    };
    assert_eq!(conflicts(&w), 0);
    let s = w.latest("A1");
    assert_eq!(s["checkpoint"], "");
    assert!(
        s["next_action"]
            .as_str()
            .unwrap()
            .contains("re-score this account: tier D with High engagement"),
        "{s}"
    );
}

/// A conflict on an Active Focus account (a demotion signal no Active Focus rule acts on,
/// beside a meeting) is asked once, not per run; approved, it is not asked again on the same
/// evidence. (A signal an Active Focus demotion rule acts on, such as budget_cycle_missed, is
/// that rule's demotion proposal instead: `queue::one_checkpoint_per_decision`.)
fn af_conflict_once_then_resolved(db: Db) {
    let w = World::new(db);
    w.accounts("t0", &[("A1", "A"), ("A2", "A")]);
    w.events(
        "t0",
        &[
            "A1,2026-01-20,meeting,c1",
            "A1,2026-01-21,no_priority,c1",
            "A2,2026-01-20,meeting,c2",
            "A2,2026-01-21,no_priority,c2",
        ],
    );
    w.import("t0");
    w.run("2026-02-01");
    assert_eq!(w.latest("A1")["cluster"], "active_focus");
    let conflicts = |w: &World| {
        w.pending()
            .iter()
            .filter(|c| c["kind"] == "conflict")
            .count()
    };
    assert_eq!(conflicts(&w), 2);
    w.run("2026-02-03");
    assert_eq!(conflicts(&w), 2);
    assert_eq!(w.latest("A1")["checkpoint"], "conflict");
    // Approving a conflict says what it does (issue 13: "approving a conflict prints nothing
    // about what it does"); the same disagreement is not asked again.
    let id = w
        .pending()
        .iter()
        .find(|c| c["kind"] == "conflict" && c["account_id"] == "A1")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let o = run_ok(w.abm().args(["review", "approve", &id.to_string()]));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(
            "acknowledged: the account keeps its cluster; the same disagreement is not asked again"
        ),
        "{text}"
    );
    w.run("2026-02-04");
    assert_eq!(conflicts(&w), 1);
    // The signal leaves the window: A2's conflict is resolved, closed with the reason.
    w.run("2026-06-01");
    assert_eq!(conflicts(&w), 0);
    let all = w.json(&["review", "list", "--all", "--kind", "conflict"]);
    let status = |id: &str| {
        all.as_array()
            .unwrap()
            .iter()
            .find(|c| c["account_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(status("A1")["status"], "approved");
    let c = status("A2");
    assert_eq!(c["status"], "closed");
    assert!(
        c["reason"].as_str().unwrap().contains("no longer conflict"),
        "{c}"
    );
}

/// Active Focus over capacity: one capacity item per run, the previous one closed.
fn capacity_one_per_run(db: Db) {
    let w = World::new(db);
    std::fs::write(
        w.dir.path().join("abm.toml"),
        "[capacity.active_focus]\nmin = 0\nmax = 1\n",
    )
    .unwrap();
    w.accounts("t0", &[("A1", "A"), ("A2", "A")]);
    w.events("t0", &["A1,2026-01-01,demo,c1", "A2,2026-01-01,demo,c2"]);
    w.import("t0");
    let r = w.run("2026-01-02");
    assert_eq!(r["capacity"]["active_focus"], "over");
    let cap = |w: &World| -> Vec<Value> {
        w.json(&["review", "list", "--all"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["kind"] == "capacity")
            .cloned()
            .collect()
    };
    assert_eq!(cap(&w).len(), 1);
    assert!(cap(&w)[0]["evidence"]
        .to_string()
        .contains("Active Focus has 2 accounts"));
    w.run("2026-01-03");
    let c = cap(&w);
    assert_eq!(c.len(), 2);
    assert_eq!(c[0]["status"], "closed");
    assert_eq!(c[1]["status"], "pending");
    let s = w.json(&["summary"]);
    assert_eq!(s["pending"]["capacity"], 1);
    assert_eq!(s["active_focus_count"], 2);
}

/// Export writes the latest run in the `segment` format; history tells the whole story.
fn export_and_history(db: Db) {
    let w = World::new(db);
    w.accounts("t0", &[("B2", "B"), ("A1", "A"), ("C3", "C")]);
    w.events(
        "t0",
        &["A1,2026-01-01,demo,c1", "C3,2026-01-01,email_reply,c2"],
    );
    w.import("t0");
    w.run("2026-01-02");
    let out = w.dir.path().join("out");
    run_ok(w.abm().args(["export", "--out"]).arg(&out));
    let (h, rows) = read_csv(&out.join("cluster_assignments.csv"));
    assert_eq!(h[0], "account_id");
    assert_eq!(h.len(), 15);
    let ids: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids, ["A1", "B2", "C3"], "ordered by account_id");
    assert_eq!(rows[0][6], "active_focus");
    assert_eq!(rows[0][8], "baseline");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("cluster_summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["active_focus_count"], 1);
    assert_eq!(summary["as_of"], "2026-01-02T00:00:00Z");
    let jsonl = std::fs::read_to_string(out.join("cluster_assignments.jsonl")).unwrap();
    assert_eq!(jsonl.lines().count(), 3);
    // Same data, same as_of: `segment` agrees on every column but the movement.
    let seg = w.dir.path().join("seg");
    run_ok(
        w.abm()
            .args(["segment", "t0", "--as-of", "2026-01-02", "--out"])
            .arg(&seg),
    );
    let (_, seg_rows) = read_csv(&seg.join("cluster_assignments.csv"));
    for (a, b) in rows.iter().zip(&seg_rows) {
        for (i, col) in h.iter().enumerate() {
            if col != "movement" {
                assert_eq!(a[i], b[i], "{col} of {}", a[0]);
            }
        }
    }
    let text = String::from_utf8(run_ok(w.abm().args(["history", "A1"])).stdout).unwrap();
    assert!(text.contains("A1 — A1 Corp"), "{text}");
    assert!(
        text.contains("effective cluster: active_focus since 2026-01-02"),
        "{text}"
    );
    assert!(text.contains("demo"), "{text}");
    let err = w.fails(&["history", "ZZ"]);
    assert!(err.contains("no account \"ZZ\""), "{err}");
    let text = String::from_utf8(run_ok(w.abm().args(["summary"])).stdout).unwrap();
    assert!(text.contains("Latest run 1 as of 2026-01-02"), "{text}");
}

both_backends! {
    promotion_proposed_then_approved_on_a_timeline => promotion_proposed_then_approved;
    af_silence_demotes_only_after_the_threshold => af_silence_threshold;
    fp_inactivity_demotes_180_days_after_entry => fp_inactivity;
    stalled_deal_proposes_demotion_despite_high_engagement => stalled_deal;
    champion_left_proposes_demotion => champion_left;
    no_priority_demotes_future_pipeline => no_priority;
    tier_drop_is_immediate_and_closes_the_pending_proposal => tier_drop;
    af_conflict_is_asked_once_then_closed => af_conflict_once_then_resolved;
    capacity_checkpoint_once_per_run => capacity_one_per_run;
    export_matches_segment_and_history_tells_the_story => export_and_history;
}
