//! Issue 12 #3: proposal and conflict signatures are built from codes, ids and instants, never
//! from wording. A rejected proposal stays rejected when the words around its evidence change
//! (and across the migration that converts the signatures older versions stored); a genuinely
//! new piece of evidence (a new date) opens a new proposal.

use super::*;
use crate::both_backends;

/// Accounts with A1's input score (tier A either way).
fn accounts_scored(w: &World, set: &str, score: u32) {
    w.file(
        set,
        "accounts.csv",
        ACCOUNTS_HEADER,
        &[&format!("A1,A1 Corp,software,500,{score},A")],
    );
}

/// A1 promoted to Active Focus on a meeting, proposal rejected. Returns the rejected item.
fn rejected_promotion(w: &World) -> Value {
    accounts_scored(w, "t0", 90);
    w.import("t0");
    w.run("2026-01-01");
    accounts_scored(w, "t1", 90);
    w.events("t1", &["A1,2026-01-20T10:00:00Z,meeting,c7"]);
    w.import("t1");
    w.run("2026-02-01");
    let q = w.pending();
    assert_eq!(q.len(), 1, "{q:?}");
    let out = w.reject(q[0]["id"].as_i64().unwrap());
    assert_eq!(out["checkpoint"]["status"], "rejected");
    out["checkpoint"].clone()
}

fn new_meeting(w: &World, set: &str) {
    accounts_scored(w, set, 91);
    w.events(set, &["A1,2026-02-10T09:00:00Z,meeting,c8"]);
    w.import(set);
}

fn rewording_does_not_reopen(db: Db) {
    let w = World::new(db);
    let rejected = rejected_promotion(&w);
    // The evidence's words change ("A (score 90)" → "A (score 91)"), the evidence does not:
    // still tier A, the same meeting at the same instant.
    accounts_scored(&w, "t2", 91);
    w.import("t2");
    w.run("2026-02-05");
    assert!(w.pending().is_empty(), "re-opened on the same evidence");
    let all = w.json(&["review", "list", "--all"]);
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
    let s = w.latest("A1");
    assert!(s["evidence"].to_string().contains("score 91"), "{s}");
    assert_eq!(s["cluster"], "cluster_icp");
    assert!(rejected["evidence"].to_string().contains("score 90"));
    // A new meeting on a new date is new evidence: a new proposal.
    new_meeting(&w, "t3");
    w.run("2026-02-15");
    let q = w.pending();
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0]["kind"], "promotion_to_active_focus");
}

/// The signature abm wrote before stable codes: the rule's text, then each evidence as
/// `kind:detail@at`, sorted, joined by `;`.
fn old_signature(c: &Value) -> String {
    let mut keys: Vec<String> = c["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let (k, d) = (e["kind"].as_str().unwrap(), e["detail"].as_str().unwrap());
            match e["at"].as_str() {
                Some(at) => format!("{k}:{d}@{at}"),
                None => format!("{k}:{d}"),
            }
        })
        .collect();
    keys.sort();
    format!("{}|{}", c["rule"].as_str().unwrap(), keys.join(";"))
}

fn set_old_signature(w: &World, c: &Value) {
    let sig = old_signature(c).replace('\'', "''");
    assert!(sig.starts_with("promotion: entry rule "), "{sig}");
    w.sql(&format!(
        "UPDATE checkpoints SET signature = '{sig}' WHERE id = {}",
        c["id"]
    ));
}

/// A database written by the previous schema (signatures in words) opened by this abm: the
/// migration rebuilds the signature and the rejected proposal stays rejected. Without the
/// conversion (the control), the same stored text re-opens it: the test can tell.
fn migration_keeps_rejections(db: Db) {
    let w = World::new(db);
    let rejected = rejected_promotion(&w);
    set_old_signature(&w, &rejected);
    // Back to before 0003, as an older abm left it (later migrations are independent of it
    // and stay applied: the runner applies every listed migration not recorded yet).
    w.sql(
        "DELETE FROM schema_migrations WHERE version = 3;
         DROP TABLE proposal_rows; DROP TABLE current_rows;",
    );
    // Any command migrates on open.
    let s = w.json(&["summary"]);
    assert_eq!(
        s["queue"]["rejected"]["promotion_to_active_focus"], 1,
        "{s}"
    );
    accounts_scored(&w, "t2", 91);
    w.import("t2");
    w.run("2026-02-05");
    assert!(w.pending().is_empty(), "the migrated rejection holds");
    new_meeting(&w, "t3");
    w.run("2026-02-15");
    assert_eq!(w.pending().len(), 1, "new evidence still opens a proposal");
}

fn control_old_text_without_migration_reopens(db: Db) {
    let w = World::new(db);
    let rejected = rejected_promotion(&w);
    set_old_signature(&w, &rejected);
    accounts_scored(&w, "t2", 91);
    w.import("t2");
    w.run("2026-02-05");
    assert_eq!(
        w.pending().len(),
        1,
        "an unconverted old signature does not match today's"
    );
}

/// A stored signature that no abm wrote cannot be converted: opening says which checkpoint.
fn migration_refuses_unknown_text(db: Db) {
    let w = World::new(db);
    let rejected = rejected_promotion(&w);
    w.sql(&format!(
        "UPDATE checkpoints SET rule = 'made up' WHERE id = {};
         DELETE FROM schema_migrations WHERE version = 3;
         DROP TABLE proposal_rows; DROP TABLE current_rows;",
        rejected["id"]
    ));
    let err = w.fails(&["summary"]);
    assert!(
        err.contains(&format!("checkpoint {}", rejected["id"])) && err.contains("made up"),
        "{err}"
    );
}

both_backends! {
    a_reworded_evidence_does_not_reopen_a_rejection => rewording_does_not_reopen;
    the_migration_keeps_rejected_proposals_rejected => migration_keeps_rejections;
    an_unconverted_old_signature_would_reopen => control_old_text_without_migration_reopens;
    the_migration_names_a_signature_it_cannot_convert => migration_refuses_unknown_text;
}
