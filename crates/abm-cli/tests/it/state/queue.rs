//! Issue 13, "the queue floods or freezes": `review list` filters, pages and sorts;
//! `review approve|reject --where` previews then decides a set, one decision per item; a
//! decision needs a reviewer's name.

use super::*;
use crate::both_backends;

fn queue(db: Db) {
    let w = World::new(db);
    w.accounts(
        "t0",
        &[
            ("A1", "A"),
            ("A2", "A"),
            ("A3", "B"),
            ("A4", "B"),
            ("A5", "C"),
        ],
    );
    w.import("t0");
    w.run("2026-01-01");
    w.accounts(
        "t1",
        &[
            ("A1", "A"),
            ("A2", "A"),
            ("A3", "B"),
            ("A4", "B"),
            ("A5", "C"),
        ],
    );
    w.events(
        "t1",
        &[
            "A1,2026-01-20,meeting,c1",
            "A2,2026-01-20,meeting,c2",
            "A3,2026-01-20,demo,c3",
            "A4,2026-01-20,demo,c4",
        ],
    );
    w.import("t1");
    w.run("2026-02-01");
    assert_eq!(w.pending().len(), 4);
    // Filters, paging, sorting.
    let ids = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["review", "list"];
        a.extend_from_slice(args);
        w.json(&a)
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["account_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&["--tier", "B"]), ["A3", "A4"]);
    assert_eq!(ids(&["--account", "A2"]), ["A2"]);
    assert_eq!(ids(&["--kind", "conflict"]), Vec::<String>::new());
    assert_eq!(ids(&["--limit", "2"]), ["A1", "A2"]);
    assert_eq!(ids(&["--limit", "2", "--offset", "2"]), ["A3", "A4"]);
    assert_eq!(
        ids(&["--sort", "account", "--cluster", "cluster_icp"]).len(),
        4
    );
    assert_eq!(ids(&["--older-than", "1"]).len(), 0);
    let o = run_ok(w.abm().args(["review", "list", "--limit", "1"]));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("1–1 of 4 (of 4 pending); --offset 1 for the next page"),
        "{text}"
    );

    // A bulk decision previews first: nothing decided.
    let o = run_ok(w.abm().args([
        "review",
        "approve",
        "--where",
        "tier=B kind=promotion_to_active_focus",
    ]));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("2 pending checkpoint(s) match"), "{text}");
    assert!(text.contains("Nothing decided: add --yes"), "{text}");
    assert_eq!(w.pending().len(), 4);
    // Then decides the set, one recorded decision per item.
    let r = w.json(&[
        "review",
        "approve",
        "--where",
        "tier=B kind=promotion_to_active_focus",
        "--yes",
        "--by",
        "ana",
    ]);
    assert_eq!(r["decided"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(w.pending().len(), 2);
    for id in ["A3", "A4"] {
        let h = w.history(id);
        let cps = h["checkpoints"].as_array().unwrap();
        assert!(
            cps.iter()
                .any(|c| c["status"] == "approved" && c["reviewer"] == "ana"),
            "{h}"
        );
    }
    w.run("2026-02-02");
    assert_eq!(w.latest("A3")["cluster"], "active_focus");
    let r = w.json(&[
        "review",
        "reject",
        "--where",
        "account=A1",
        "--yes",
        "--by",
        "bo",
    ]);
    assert_eq!(r["decided"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(w.pending().len(), 1);

    // No reviewer name: refused, nothing decided.
    let o = w
        .abm()
        .env_remove("USER")
        .env_remove("USERNAME")
        .env_remove("ABM_REVIEWER")
        .args(["review", "approve", "--where", "account=A2", "--yes"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("who is deciding? give --by NAME"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(w.pending().len(), 1);
    // ABM_REVIEWER names the reviewer.
    let r = w
        .abm()
        .env_remove("USER")
        .env("ABM_REVIEWER", "cy")
        .args([
            "review",
            "approve",
            "--where",
            "account=A2",
            "--yes",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(r.status.success());
    let h = w.history("A2");
    assert!(h["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["reviewer"] == "cy"));
}

both_backends! {
    review_list_filters_pages_and_bulk_decisions => queue;
}

/// Issue 13: "when nobody reviews, Active Focus stays frozen at its first run while the queue
/// grows". `[review]` auto-approves old demotions, expires or escalates old items, with ages.
fn policy(db: Db) {
    let w = World::new(db);
    std::fs::write(
        w.dir.path().join("abm.toml"),
        "[checkpoints]\nconflict_mixed_signals = false\n\n\
         [review]\nauto_approve_demotions_after_days = 30\nescalate_after_days = 10\nexpire_after_days = 60\n",
    )
    .unwrap();
    w.accounts("t0", &[("A1", "A"), ("A2", "B")]);
    w.events(
        "t0",
        &["A1,2026-01-20,meeting,c1", "A2,2025-12-01,email_reply,c2"],
    );
    w.import("t0");
    w.run("2026-02-01");
    assert_eq!(w.latest("A1")["cluster"], "active_focus");
    // A1's champion leaves: a demotion proposal nobody reviews. A2 gets a meeting: a
    // promotion proposal nobody reviews.
    w.accounts("t1", &[("A1", "A"), ("A2", "B")]);
    w.events(
        "t1",
        &["A1,2026-02-05,champion_left,c1", "A2,2026-02-05,meeting,c2"],
    );
    w.import("t1");
    w.run("2026-02-10");
    assert_eq!(w.pending().len(), 2);
    let o = run_ok(w.abm().args(["run", "--as-of", "2026-02-25"]));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("review policy: 2 item(s) escalated: pending 10+ days (oldest 15 days)"),
        "{text}"
    );
    let r = w.run("2026-03-15");
    assert_eq!(
        r["review_policy"][0],
        "1 unreviewed demotion(s) approved after 30+ days (oldest 33 days)"
    );
    assert_eq!(w.latest("A1")["cluster"], "future_pipeline");
    let h = w.history("A1");
    assert!(h["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["status"] == "approved"
            && c["reviewer"] == "policy: auto_approve_demotions_after_days = 30"));
    let r = w.run("2026-04-15");
    assert_eq!(
        r["review_policy"][0],
        "1 unreviewed item(s) expired after 60+ days (oldest 64 days)"
    );
    assert!(w.pending().iter().all(|c| c["account_id"] != "A2"));
}

both_backends! {
    review_policy_for_unreviewed_items => policy;
}

/// Issue 13: "a tier-A account with a demo (rule 2 already met, awaiting approval) is told
/// 'for Active Focus: a trigger'; after an approved demotion the rationale names rule 7 while
/// the cluster is Future Pipeline and engagement shows none despite a demo 17 days earlier".
fn explanations_follow_the_effective_cluster(db: Db) {
    let w = World::new(db);
    w.accounts("t0", &[("A1", "A")]);
    w.events("t0", &["A1,2026-01-05,email_reply,c1"]);
    w.import("t0");
    w.run("2026-01-10");
    assert_eq!(w.latest("A1")["cluster"], "future_pipeline");
    w.accounts("t1", &[("A1", "A")]);
    w.events("t1", &["A1,2026-01-20,demo,c1"]);
    w.import("t1");
    w.run("2026-02-01");
    let s = w.latest("A1");
    assert_eq!(s["cluster"], "future_pipeline");
    let na = s["next_action"].as_str().unwrap();
    assert!(
        na.contains("for Active Focus: rule 2 is met, the promotion waits for a reviewer"),
        "{s}"
    );
    assert!(
        s["rationale"].as_str().unwrap().ends_with(
            "; rule 2 gives active_focus: a promotion that needs a reviewer; effective future_pipeline"
        ),
        "{s}"
    );
    let id = w.pending()[0]["id"].as_i64().unwrap();
    w.approve(id);
    // The champion leaves: the demotion is proposed and approved.
    w.accounts("t2", &[("A1", "A")]);
    w.events("t2", &["A1,2026-02-10,champion_left,c1"]);
    w.import("t2");
    w.run("2026-02-15");
    let id = w
        .pending()
        .iter()
        .find(|c| c["kind"] == "demotion_from_active_focus")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    w.approve(id);
    w.run("2026-02-20");
    let s = w.latest("A1");
    assert_eq!(s["cluster"], "future_pipeline");
    let r = s["rationale"].as_str().unwrap();
    assert!(
        r.ends_with(
            "; rule 7 gives cluster_icp; effective future_pipeline: no demotion rule fired; \
             evidence counted after the demotion of 2026-02-15"
        ),
        "{s}"
    );
}

both_backends! {
    explanations_follow_the_effective_cluster_in_runs => explanations_follow_the_effective_cluster;
}

/// Issue 13, "checkpoints only where a decision is needed": an Active Focus account with a
/// demotion signal its cluster's demotion rules act on gets one checkpoint — the demotion
/// proposal — not a conflict beside it; a signal no Active Focus rule acts on is a conflict.
fn one_checkpoint_per_decision(db: Db) {
    let w = World::new(db);
    w.accounts("t0", &[("A1", "A"), ("A2", "A")]);
    w.events(
        "t0",
        &[
            "A1,2026-01-20,meeting,c1",
            "A1,2026-01-25,champion_left,c1",
            "A2,2026-01-20,meeting,c2",
            "A2,2026-01-25,no_priority,c2",
        ],
    );
    w.import("t0");
    // The baseline: both enter Active Focus; only A2's signal is a conflict.
    let r = w.run("2026-02-01");
    assert_eq!(w.latest("A1")["cluster"], "active_focus");
    let kinds = |w: &World| -> Vec<(String, String)> {
        w.pending()
            .iter()
            .filter(|c| c["kind"] != "capacity")
            .map(|c| {
                (
                    c["account_id"].as_str().unwrap().to_string(),
                    c["kind"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(kinds(&w), [pair("A2", "conflict")], "{r}");
    // The next run: A1's champion_left demotes (proposed): one checkpoint for A1, and A2's
    // conflict is not duplicated.
    w.run("2026-02-02");
    assert_eq!(
        kinds(&w),
        [
            pair("A2", "conflict"),
            pair("A1", "demotion_from_active_focus")
        ]
    );
}

both_backends! {
    a_demotion_rule_signal_is_one_checkpoint_not_two => one_checkpoint_per_decision;
}

/// Issue 13, "customers" on the database: a run and `explain` name a customer's whitespace
/// (products not yet bought) as `segment` does.
fn whitespace(db: Db) {
    let w = World::new(db);
    w.accounts("t0", &[("K1", "B"), ("K2", "B")]);
    w.file(
        "t0",
        "deals.csv",
        "deal_id,account_id,stage,amount,created_at,closed_at,last_stage_change_at,outcome,product\n",
        &[
            "W1,K1,closed_won,5000,2018-01-10,2018-02-01,2018-02-01,won,Core",
            "W2,K2,closed_won,5000,2018-01-10,2018-02-01,2018-02-01,won,Analytics",
            "W3,K2,closed_lost,5000,2018-01-10,2018-02-01,2018-02-01,lost,Support",
        ],
    );
    w.import("t0");
    w.run("2018-03-01");
    let na = w.latest("K1")["next_action"].as_str().unwrap().to_string();
    assert!(na.ends_with("; not yet bought: Analytics, Support"), "{na}");
    let e = w.json(&["explain", "K2"]);
    assert_eq!(
        e["customer"]["not_yet_bought"],
        serde_json::json!(["Core", "Support"]),
        "{e}"
    );
}

both_backends! {
    a_run_names_a_customers_whitespace => whitespace;
}
