//! Issue 12: `abm explain ID` on the database. The stored account is assessed and decided as
//! `abm run` does: for sample accounts its score, tier, cluster, rationale and next action
//! are the file-based explanation's and the run's snapshot's; it shows the account's state,
//! the latest run and its open checkpoints; events carry no file or line.

use super::*;
use crate::both_backends;

fn score_text(v: &Value) -> String {
    let x = v.as_f64().unwrap();
    let r = (x * 10.0).round() / 10.0;
    if r.fract() == 0.0 {
        format!("{}", r as i64)
    } else {
        format!("{r:.1}")
    }
}

fn agrees_with_files_and_the_run(db: Db) {
    let w = World::new(db);
    sample_data(w.dir.path(), 300);
    w.import("data");
    w.run("2026-11-01");
    let mut checked = 0;
    let mut clusters = std::collections::BTreeSet::new();
    for n in (1..=300).step_by(9).chain([2, 3, 5, 8]) {
        let id = format!("ACC-{n:04}");
        let stored = w.json(&["explain", &id]);
        let files = w.json(&["explain", &id, "data", "--as-of", "2026-11-01"]);
        let snap = w.latest(&id);
        assert_eq!(stored["outcome"], "assessed", "{id}");
        assert_eq!(stored["origin"], "database", "{id}");
        assert_eq!(files["origin"], "files", "{id}");
        assert_eq!(stored["as_of"], "2026-11-01T00:00:00Z", "{id}");
        for key in [
            "cluster",
            "rationale",
            "next_action",
            "program",
            "micro_segment",
        ] {
            assert_eq!(stored[key], files[key], "{id} {key}");
        }
        for key in ["score", "tier"] {
            assert_eq!(stored["score"][key], files["score"][key], "{id} {key}");
        }
        assert_eq!(stored["engagement"]["level"], files["engagement"]["level"]);
        assert_eq!(
            stored["engagement"]["events_read"],
            files["engagement"]["events_read"]
        );
        assert_eq!(stored["decision"], files["decision"], "{id}");
        assert_eq!(stored["triggers"], files["triggers"], "{id}");
        assert_eq!(stored["deals"], files["deals"], "{id}");
        // The run's snapshot.
        assert_eq!(stored["cluster"], snap["cluster"], "{id}");
        assert_eq!(stored["score"]["tier"], snap["tier"], "{id}");
        assert_eq!(
            score_text(&stored["score"]["score"]),
            snap["icp_score"],
            "{id}"
        );
        assert_eq!(stored["rationale"], snap["rationale"], "{id}");
        assert_eq!(stored["next_action"], snap["next_action"], "{id}");
        // Its stored state.
        let st = &stored["stored"];
        assert_eq!(st["current"]["cluster"], snap["cluster"], "{id}");
        assert_eq!(st["last_run"]["run"], 1);
        assert_eq!(st["last_run"]["snapshot"]["cluster"], snap["cluster"]);
        assert_eq!(st["last_run"]["snapshot"]["rationale"], snap["rationale"]);
        // The next run at the same as_of changes nothing, except that the demotion rules of
        // Active Focus (not applied to a first evaluation) may propose a demotion (a deal
        // stalled before the baseline, champion_left).
        let next = st["next_run"]["movement"].as_str().unwrap();
        assert!(
            next == "unchanged"
                || (next == "proposed_demotion" && snap["cluster"] == "active_focus"),
            "{id}: {next} from {}",
            snap["cluster"]
        );
        // From the database no event has a file or a line.
        let events = stored["engagement"]["counted"].as_array().unwrap();
        assert!(events.iter().all(|e| e.get("source").is_none()), "{id}");
        assert!(stored.get("source").is_none());
        clusters.insert(stored["cluster"].as_str().unwrap().to_string());
        checked += 1;
    }
    assert!(checked > 30, "{checked}");
    assert!(clusters.len() >= 3, "{clusters:?}");

    // The text: the same reasoning, the database's state instead of file lines.
    let o = run_ok(w.abm().args(["explain", "ACC-0001"]));
    let text = String::from_utf8(o.stdout).unwrap();
    for want in [
        "Account ACC-0001 — Cyberdyne Foods (in the database)",
        "as_of 2026-11-01T00:00:00Z",
        "stored, ",
        "Decision table (first match wins):",
        "In the database",
        "latest run 1 as of 2026-11-01T00:00:00Z",
        "open checkpoints: none",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }
    assert!(!text.contains("    line "), "{text}");
    // An account the database does not have.
    let err = w.fails(&["explain", "NOPE"]);
    assert!(err.contains("no account \"NOPE\""), "{err}");
}

fn shows_state_and_open_checkpoints(db: Db) {
    let w = World::new(db);
    w.accounts("t0", &[("A1", "A"), ("A2", "C")]);
    w.import("t0");
    // Before any run: explained as of --as-of, no state yet.
    let before = w.json(&["explain", "A1", "--as-of", "2026-01-01"]);
    assert!(before["stored"].get("current").is_none(), "{before}");
    assert!(before["stored"].get("last_run").is_none(), "{before}");
    assert_eq!(before["stored"]["next_run"]["movement"], "baseline");
    w.run("2026-01-01");
    w.events(
        "t1",
        &["A1,2026-01-20,meeting,c1", "A2,2026-01-20,meeting,c2"],
    );
    w.import("t1");
    w.run("2026-02-01");
    let pending = w.pending();
    let cp = pending
        .iter()
        .find(|c| c["account_id"] == "A1")
        .expect("A1's promotion waits for a reviewer");

    // Effective Cluster ICP, the rules say Active Focus: the proposal is open.
    let e = w.json(&["explain", "A1"]);
    let snap = w.latest("A1");
    assert_eq!(e["cluster"], "cluster_icp");
    assert_eq!(e["cluster"], snap["cluster"]);
    assert_eq!(e["rationale"], snap["rationale"]);
    assert_eq!(e["next_action"], snap["next_action"]);
    assert!(
        e["rationale"]
            .as_str()
            .unwrap()
            .contains("a promotion that needs a reviewer"),
        "{e}"
    );
    let st = &e["stored"];
    assert_eq!(st["current"]["cluster"], "cluster_icp");
    assert_eq!(st["last_run"]["run"], 2);
    assert_eq!(st["last_run"]["snapshot"]["movement"], "proposed_promotion");
    assert_eq!(st["next_run"]["candidate"], "active_focus");
    assert_eq!(st["next_run"]["movement"], "proposed_promotion");
    // Still pending: not opened again.
    assert!(st["next_run"].get("proposal").is_none(), "{st}");
    let open = st["open_checkpoints"].as_array().unwrap();
    assert_eq!(open.len(), 1, "{st}");
    assert_eq!(open[0]["id"], cp["id"]);
    assert_eq!(open[0]["kind"], "promotion_to_active_focus");
    assert_eq!(open[0]["from"], "cluster_icp");
    assert_eq!(open[0]["to"], "active_focus");
    let text = String::from_utf8(run_ok(w.abm().args(["explain", "A1"])).stdout).unwrap();
    assert!(
        text.contains(&format!(
            "open checkpoint {}: promotion_to_active_focus cluster_icp → active_focus",
            cp["id"]
        )),
        "{text}"
    );

    // Approved: the state shows it at once, and nothing is left open.
    w.approve(cp["id"].as_i64().unwrap());
    let e = w.json(&["explain", "A1"]);
    assert_eq!(e["cluster"], "active_focus", "{e}");
    assert_eq!(e["stored"]["current"]["cluster"], "active_focus");
    assert_eq!(e["stored"]["next_run"]["movement"], "unchanged");
    assert_eq!(e["stored"]["open_checkpoints"], serde_json::json!([]));

    // A later as_of: what a run then would do (the meeting has left the window).
    let later = w.json(&["explain", "A1", "--as-of", "2026-09-01"]);
    assert_eq!(later["as_of"], "2026-09-01T00:00:00Z");
    assert_eq!(later["engagement"]["counted_events"], 0, "{later}");
}

/// Issue 13: "`explain` on a rejected or waiting account says so and why" — rows imported
/// before their account wait for it; `explain` names them instead of "no account".
fn says_what_waits(db: Db) {
    let w = World::new(db);
    w.accounts("t0", &[("A1", "A")]);
    w.import("t0");
    w.events("t1", &["W9,2026-01-20,meeting,c1", "W9,2026-01-21,demo,c1"]);
    w.import("t1");
    let err = w.fails(&["explain", "W9"]);
    assert!(
        err.contains(
            "no account \"W9\" in the database yet: 2 event(s), 0 trigger(s) and 0 deal(s) \
             imported before it wait for it"
        ),
        "{err}"
    );
    let err = w.fails(&["explain", "NOPE"]);
    assert!(err.contains("no account \"NOPE\" in the database"), "{err}");
    assert!(!err.contains("wait"), "{err}");
}

both_backends! {
    stored_explanation_agrees_with_files_and_the_run => agrees_with_files_and_the_run;
    stored_explanation_shows_state_and_open_checkpoints => shows_state_and_open_checkpoints;
    explain_on_a_waiting_account_says_what_waits => says_what_waits;
}
