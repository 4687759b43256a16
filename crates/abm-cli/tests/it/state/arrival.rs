//! Files that arrive over time (issue 14): an import takes any subset of the files, and rows
//! for an account not imported yet wait for it instead of being rejected.

use super::*;
use crate::both_backends;

fn events_before_their_account_lose_nothing(db: Db) {
    let w = World::new(db);
    // Month 1: events, a trigger and a deal, no accounts at all.
    w.events(
        "m1",
        &[
            "A1,2026-08-05,demo,c1",
            "A2,2026-08-10,email_reply,c2",
            "A1,2026-08-11,Meeting,c3",
        ],
    );
    w.file(
        "m1",
        "triggers.csv",
        "account_id,occurred_at,type,source,headline\n",
        &["A1,2026-08-20,funding_round,news,Series B"],
    );
    w.file(
        "m1",
        "deals.csv",
        "deal_id,account_id,stage,amount,created_at,outcome\n",
        &["D1,A2,proposal,\"12,000\",2026-09-10,open"],
    );
    let m1 = w.import_json("m1");
    assert_eq!(m1["rejected"], 0, "{m1}");
    assert_eq!(m1["waiting_added"], 5, "{m1}");
    assert_eq!(m1["events_added"], 0, "{m1}");
    let s = w.json(&["status"]);
    assert_eq!(
        (
            s["events"].as_i64(),
            s["triggers"].as_i64(),
            s["deals"].as_i64()
        ),
        (Some(3), Some(1), Some(1)),
        "{s}"
    );
    assert_eq!(
        s["accounts"],
        serde_json::json!([["A1", 3], ["A2", 2]]),
        "{s}"
    );
    let text = String::from_utf8_lossy(&run_ok(w.abm().arg("status")).stdout).into_owned();
    assert!(
        text.contains("A1: 3 rows") && text.contains("2 accounts"),
        "{text}"
    );

    // Month 2: A1 arrives with one more event of its own.
    w.accounts("m2", &[("A1", "A")]);
    w.events("m2", &["A1,2026-09-03,meeting,c2"]);
    let m2 = w.import_json("m2");
    assert_eq!(m2["waiting_resolved"], 3, "{m2}");
    assert_eq!(m2["events_added"], 3, "{m2}");
    assert_eq!(m2["triggers_added"], 1, "{m2}");
    let s = w.json(&["status"]);
    assert_eq!(s["accounts"], serde_json::json!([["A2", 2]]), "{s}");

    // Month 3: only accounts; A2 arrives, nothing waits any more.
    w.accounts("m3", &[("A2", "B")]);
    let m3 = w.import_json("m3");
    assert_eq!(m3["waiting_resolved"], 2, "{m3}");
    assert_eq!(m3["deals_changed"], 1, "{m3}");
    let s = w.json(&["status"]);
    assert_eq!(s["distinct_accounts"], 0, "{s}");
    // Month 1 again: nothing new, and the deal that waited is unchanged.
    let again = w.import_json("m1");
    assert_eq!(again["events_added"], 0, "{again}");
    assert_eq!(again["deals_changed"], 0, "{again}");
    assert_eq!(again["waiting_added"], 0, "{again}");

    // Every row counts: 4 events, 1 trigger, 1 deal stored; the run sees them.
    w.run("2026-09-30");
    let sum = w.json(&["summary"]);
    assert_eq!(sum["stored"]["events"], 4, "{sum}");
    assert_eq!(sum["stored"]["triggers"], 1, "{sum}");
    assert_eq!(sum["stored"]["deals"], 1, "{sum}");
    assert_eq!(w.latest("A1")["engagement_level"], "high");
    assert_eq!(w.latest("A1")["has_triggers"], true);
    assert_eq!(
        w.latest("A2")["engagement_level"],
        "high",
        "the open deal counts"
    );
}

both_backends! {
    events_before_their_account => events_before_their_account_lose_nothing;
}
