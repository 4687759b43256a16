//! The customer track (`[customers] mode = "track"`, issue 13 item 3): a customer — a deal won
//! by as_of — is in the fifth cluster `customer`, in the stateless `abm segment` and in stateful
//! runs on both backends (the move recorded with the won deal as evidence, no reviewer), and
//! everything that counts clusters counts it: summaries, exports, `abm analyze`.

use super::*;

const TRACK: &str = "[customers]\nmode = \"track\"\n";

const DEALS_HEADER: &str =
    "deal_id,account_id,stage,amount,created_at,closed_at,last_stage_change_at,outcome\n";

/// A1 (tier A, a meeting) wins D1 on 2026-02-10; A3 (tier D) won D2 on 2026-01-15; A2 (tier B)
/// has an open deal; A4 (tier C) nothing.
fn inputs(w: &World, set: &str) {
    w.accounts(set, &[("A1", "A"), ("A2", "B"), ("A3", "D"), ("A4", "C")]);
    w.file(
        set,
        "deals.csv",
        DEALS_HEADER,
        &[
            "D1,A1,closed won,1000,2026-01-20,2026-02-10,2026-02-10,won",
            "D2,A3,closed won,300,2026-01-02,2026-01-15,2026-01-15,won",
            "D3,A2,proposal,700,2026-01-25,,2026-01-28,open",
        ],
    );
    w.events(set, &["A1,2026-01-25T10:00:00Z,meeting,c1"]);
}

fn clusters(csv: &str) -> Vec<(String, String)> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let (id, cl) = (col("account_id"), col("cluster"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[id].to_string(), f[cl].to_string())
        })
        .collect()
}

/// `abm segment` with mode = "track", as of two dates: a deal won after as_of was open then.
#[test]
fn segment_puts_customers_in_the_track_as_of_the_date() {
    let w = World::new(Db::sqlite());
    inputs(&w, "in");
    std::fs::write(w.dir.path().join("abm.toml"), TRACK).unwrap();
    let run = |as_of: &str, out: &str| {
        run_ok(
            w.abm()
                .args(["segment", "in", "--as-of", as_of, "--out", out]),
        );
        let dir = w.dir.path().join(out);
        (
            std::fs::read_to_string(dir.join("cluster_assignments.csv")).unwrap(),
            serde_json::from_str::<Value>(
                &std::fs::read_to_string(dir.join("cluster_summary.json")).unwrap(),
            )
            .unwrap(),
            std::fs::read_to_string(dir.join("cluster_assignments.jsonl")).unwrap(),
        )
    };
    let (csv, summary, _) = run("2026-02-01", "feb");
    assert_eq!(
        clusters(&csv),
        [
            pair("A1", "active_focus"),
            pair("A2", "active_focus"),
            pair("A3", "customer"),
            pair("A4", "cluster_icp"),
        ]
    );
    assert_eq!(summary["customer_count"], 1);
    let (csv, summary, jsonl) = run("2026-03-01", "mar");
    assert_eq!(clusters(&csv)[0], pair("A1", "customer"));
    assert_eq!(summary["customer_count"], 2);
    assert_eq!(summary["accounts"], 4);
    let a1 = export_row(&jsonl, "A1");
    assert_eq!(a1["program_type"], "expansion");
    let next = a1["next_action"].as_str().unwrap();
    assert!(
        next.starts_with("Account management: expand and renew; customer: 1 won deal (last 2026-02-10); renewal due 2027-02-10"),
        "{next}"
    );
    let why = a1["rationale"].as_str().unwrap();
    assert!(
        why.contains("; customer track (no decision-table row); customer (1 won, last 2026-02-10)"),
        "{why}"
    );
    // The summary's table lists the track; explain says the decision table is bypassed.
    let o = run_ok(
        w.abm()
            .args(["explain", "A1", "--as-of", "2026-03-01"])
            .arg("in"),
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("Decision table: bypassed"), "{text}");
    assert!(text.contains("is in the customer track"), "{text}");
}

/// Without the track (the default `expansion`) nothing names the fifth cluster.
#[test]
fn expansion_mode_has_no_customer_cluster() {
    let w = World::new(Db::sqlite());
    inputs(&w, "in");
    run_ok(
        w.abm()
            .args(["segment", "in", "--as-of", "2026-03-01", "--out", "out"]),
    );
    let dir = w.dir.path().join("out");
    let csv = std::fs::read_to_string(dir.join("cluster_assignments.csv")).unwrap();
    assert!(!csv.contains(",customer,"), "{csv}");
    let summary = std::fs::read_to_string(dir.join("cluster_summary.json")).unwrap();
    assert!(!summary.contains("customer_count"), "{summary}");
}

both_backends! {
    stateful_runs_move_customers_into_the_track => |db| {
        let w = World::new(db);
        std::fs::write(w.dir.path().join("abm.toml"), TRACK).unwrap();
        inputs(&w, "in");
        w.import("in");
        let r1 = w.run("2026-02-01");
        assert_eq!(r1["counts"]["customer"], 1);
        assert_eq!(cm(&w.latest("A3")), pair("customer", "baseline"));
        assert_eq!(cm(&w.latest("A1")), pair("active_focus", "baseline"));

        let r2 = w.run("2026-03-01");
        assert_eq!(r2["counts"]["customer"], 2);
        assert_eq!(r2["counts"]["active_focus"], 1);
        // The move into the track: a promotion with the won deal as evidence, no reviewer.
        let s = w.latest("A1");
        assert_eq!(cm(&s), pair("customer", "promotion"));
        assert_eq!(s["previous"], "active_focus");
        let ev = s["evidence"].to_string();
        assert!(ev.contains("deal D1 won 2026-02-10"), "{ev}");
        assert!(
            w.pending().iter().all(|c| c["account_id"] != "A1"),
            "{:?}",
            w.pending()
        );
        let moves = w.json(&["movements"]);
        assert!(
            moves.as_array().unwrap().iter().any(|m| m["account_id"] == "A1"
                && m["to"] == "customer"),
            "{moves}"
        );

        // Counts: summary, export, runs listing.
        let sum = w.json(&["summary"]);
        assert_eq!(sum["customer_count"], 2);
        let text = String::from_utf8(run_ok(w.abm().arg("summary")).stdout).unwrap();
        assert!(text.contains("Customer"), "{text}");
        let [csv, jsonl, summary] = w.export("out");
        assert_eq!(clusters(&csv)[0], pair("A1", "customer"));
        assert_eq!(export_row(&jsonl, "A3")["program_type"], "expansion");
        let summary: Value = serde_json::from_str(&summary).unwrap();
        assert_eq!(summary["customer_count"], 2);

        // abm analyze on the store: a by_cluster row and the migration matrix name the track.
        let a = w.json(&[
            "analyze", "--from", "2026-01-01", "--to", "2026-03-01", "--out", "analytics",
        ]);
        let row = a["by_cluster"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == "customer")
            .unwrap_or_else(|| panic!("no customer row in {}", a["by_cluster"]))
            .clone();
        assert_eq!(row["accounts"], 2);
        let cells = &a["migration"]["by_cluster"]["cells"];
        assert!(
            cells.as_array().unwrap().iter().any(|c| c["from"] == "active_focus"
                && c["to"] == "customer"
                && c["count"] == 1),
            "{cells}"
        );
    };
}
