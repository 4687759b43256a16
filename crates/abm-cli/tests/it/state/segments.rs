//! Segments over the stored history (issue 16) on both backends: definitions stored and
//! versioned with each run, the segment column of `abm export`, and `abm analyze` on the
//! database — migration matrices between runs by segment, cluster and tier (cross-checked with
//! SQL over the stored snapshots), cohorts over the runs, the capacity projection from the
//! recorded movements, and the buying pattern from the stored events.

use super::*;

const ACCOUNTS: &str = "account_id,name,industry,employees,icp_score,icp_tier\n\
    A1,Alpha,software,1000,90,A\n\
    A2,Beta,software,350,90,A\n\
    A3,Gamma,retail,800,70,B\n\
    A4,Delta,retail,100,40,D\n\
    A5,Epsilon,software,50,10,E\n";

/// `big` (employees ≥ `min`) and `software`.
fn config(min: u32) -> String {
    format!(
        "[[segments]]\nname = \"big\"\ndescription = \"large companies\"\n\
         [[segments.criteria]]\nkind = \"range\"\nfield = \"employees\"\nmin = {min}\n\
         [[segments]]\nname = \"software\"\n[[segments.criteria]]\nkind = \"in\"\n\
         field = \"industry\"\nvalues = [\"software\"]\n"
    )
}

fn world(db: Db) -> World {
    let w = World::new(db);
    w.file("in", "accounts.csv", "", &[ACCOUNTS]);
    w.file(
        "in",
        "deals.csv",
        "deal_id,account_id,stage,amount,created_at,closed_at,last_stage_change_at,outcome\n",
        &[
            // A1 won in February after two contacts and two meetings (one before the window).
            "D1,A1,closed won,1000,2026-01-20,2026-02-10,2026-02-10,won",
            // A3 lost in February; A2 open in "proposal" since 2026-02-01.
            "D2,A3,closed lost,500,2026-01-05,2026-02-20,2026-02-20,lost",
            "D3,A2,proposal,700,2026-01-25,,2026-02-01,open",
        ],
    );
    w.events(
        "in",
        &[
            "A1,2025-09-01T10:00:00Z,meeting,c0",
            "A1,2026-01-10T10:00:00Z,meeting,c1",
            "A1,2026-02-01T10:00:00Z,demo,c2",
            "A1,2026-02-05T10:00:00Z,meeting,c1",
            "A1,2026-02-15T10:00:00Z,meeting,c3",
            "A2,2026-02-20T10:00:00Z,demo,c9",
            "A2,2026-02-21T10:00:00Z,meeting,c9",
            "A3,2026-01-20T10:00:00Z,website_visit,c4",
        ],
    );
    w.import("in");
    w
}

fn set_config(w: &World, min: u32) {
    std::fs::write(w.dir.path().join("abm.toml"), config(min)).unwrap();
}

/// (from, to) → count of a matrix.
fn cells(m: &Value) -> Vec<(String, String, u64)> {
    m["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["from"].as_str().unwrap().to_string(),
                c["to"].as_str().unwrap().to_string(),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn t(a: &str, b: &str, n: u64) -> (String, String, u64) {
    (a.to_string(), b.to_string(), n)
}

both_backends! {
    segment_versions_export_and_analyze => |db| {
        let w = world(db);
        set_config(&w, 500);
        let r1 = w.run("2026-01-31");
        assert_eq!(
            r1["segments"],
            serde_json::json!([{"name": "big", "version": 1}, {"name": "software", "version": 1}])
        );
        // The definition of `big` changes: version 2; `software` stays at 1.
        set_config(&w, 300);
        let r2 = w.run("2026-02-28");
        assert_eq!(
            r2["segments"],
            serde_json::json!([{"name": "big", "version": 2}, {"name": "software", "version": 1}])
        );
        // A later run with the same definitions: the same versions.
        assert_eq!(w.run("2026-03-01")["segments"][0]["version"], 2);

        let list = String::from_utf8(run_ok(w.abm().args(["segments", "list"])).stdout).unwrap();
        assert!(list.contains("big") && list.contains("[version 2 of 2]"), "{list}");
        let show =
            String::from_utf8(run_ok(w.abm().args(["segments", "show", "big"])).stdout).unwrap();
        assert!(show.contains("In the config (version 2)"), "{show}");
        assert!(show.contains("version 1 (") && show.contains("runs 1–1 (1 run)"), "{show}");
        assert!(show.contains("version 2 (") && show.contains("runs 2–3 (2 runs)"), "{show}");
        assert!(show.contains("employees ≥ 500") && show.contains("employees ≥ 300"), "{show}");

        // The export's segment column, under the latest run's definitions.
        let out = w.dir.path().join("out");
        run_ok(w.abm().args(["export", "--segment-column", "--out"]).arg(&out));
        let csv = std::fs::read_to_string(out.join("cluster_assignments.csv")).unwrap();
        assert!(csv.lines().next().unwrap().ends_with(",rationale,segment"), "{csv}");
        let jsonl = std::fs::read_to_string(out.join("cluster_assignments.jsonl")).unwrap();
        for (id, want) in [
            ("A1", "big;software"),
            ("A2", "big;software"),
            ("A3", "big"),
            ("A4", ""),
            ("A5", "software"),
        ] {
            assert_eq!(export_row(&jsonl, id)["segment"], want, "{id}");
        }
        // Without the option: no column.
        let [csv, ..] = w.export("plain");
        assert!(csv.lines().next().unwrap().ends_with(",rationale"), "{csv}");

        // abm analyze on the database: runs 1 → 3 by default over January–March.
        let a = w.json(&[
            "analyze", "--from", "2026-01-01", "--to", "2026-03-01", "--out", "analytics",
        ]);
        let seg = |k: &str| {
            a["segments"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["key"] == k)
                .unwrap_or_else(|| panic!("no segment {k}"))
                .clone()
        };
        assert_eq!(seg("big")["version"], 2);
        assert_eq!(seg("big")["accounts"], 3);
        assert_eq!((seg("big")["won"].as_u64(), seg("big")["lost"].as_u64()), (Some(1), Some(1)));
        assert!(seg("tier:A").get("version").is_none());
        let m = &a["migration"];
        assert_eq!((m["from"]["run"].as_i64(), m["to"]["run"].as_i64()), (Some(1), Some(3)));
        assert_eq!(m["from"]["segments"][0], serde_json::json!({"name": "big", "version": 1}));
        assert_eq!(m["to"]["segments"][0], serde_json::json!({"name": "big", "version": 2}));
        // By segment: A2 (350 employees) joined `big` under version 2.
        assert_eq!(
            cells(&m["by_segment"]),
            [
                t("(none)", "(none)", 1),
                t("big", "big", 1),
                t("big;software", "big;software", 1),
                t("software", "big;software", 1),
                t("software", "software", 1),
            ]
        );
        assert_eq!(m["by_segment"]["moved"], 1);
        // By cluster and tier: cross-checked with SQL over the stored snapshots.
        let by_cluster = cells(&m["by_cluster"]);
        assert_eq!(by_cluster, w.matrix_sql("cluster", 1, 3));
        assert_eq!(cells(&m["by_tier"]), w.matrix_sql("tier", 1, 3));
        let moved: u64 = by_cluster.iter().filter(|(f, t, _)| f != t).map(|c| c.2).sum();
        assert_eq!(m["by_cluster"]["moved"], moved);
        // Lifecycle: the `software` cohort of run 1 (A2, A5) over runs 1, 2, 3.
        let cohort = m["lifecycle"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["segment"] == "software")
            .unwrap();
        assert_eq!(cohort["accounts"], 2);
        let runs = cohort["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 3);
        assert_eq!(runs[2]["by_segment"]["big;software"], 1);
        assert_eq!(runs[2]["by_segment"]["software"], 1);
        // The cohort of A1: a customer from its February win on.
        let a1 = m["lifecycle"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["segment"] == "big;software")
            .unwrap();
        let customers: Vec<u64> = a1["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["customers"].as_u64().unwrap())
            .collect();
        assert_eq!(customers, [0, 1, 1]);

        // Capacity: the movements recorded after run 1 up to run 3.
        let cap = &a["forecast"]["capacity"];
        let moves = w.json(&["movements"]);
        let after_first = moves
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["as_of"].as_str().unwrap() > "2026-01-31T00:00:00Z")
            .count();
        assert_eq!(cap["observed"]["movements"], after_first as u64);
        assert_eq!(cap["clusters"].as_array().unwrap().len(), 3);
        for c in cap["clusters"].as_array().unwrap() {
            assert!(c["projected"].is_number(), "{c}");
        }

        // Buying pattern: D1 (created 2026-01-20, won 2026-02-10): from 90 days before its
        // creation to the win, contacts c1, c2 and two meetings (c0's is too early; c3's after
        // the win; the demo is not a meeting by default).
        let bp = &a["total"]["buying_pattern"];
        assert_eq!(bp["wins"], 1);
        assert_eq!(bp["median_engaged_contacts"], 2.0);
        assert_eq!(bp["median_meetings"], 2.0);
        // D3 open in "proposal" since 2026-02-01: 28 days at the end of 2026-03-01.
        assert_eq!(bp["stage_days"], serde_json::json!([{"stage": "proposal", "open_deals": 1, "median_days": 28.0}]));

        // --runs picks the pair; the report names it.
        let a = w.json(&[
            "analyze", "--from", "2026-01-01", "--to", "2026-03-01", "--runs", "2,3", "--out",
            "analytics2",
        ]);
        assert_eq!(a["migration"]["by_segment"]["moved"], 0);
        let md = std::fs::read_to_string(w.dir.path().join("analytics2/report.md")).unwrap();
        assert!(md.contains("## Migration from run 2"), "{md}");
        let html = std::fs::read_to_string(w.dir.path().join("analytics2/report.html")).unwrap();
        assert!(html.contains("Migration by segment: run 2 → run 3"), "{html}");
        let err = w.fails(&["analyze", "--from", "2026-01-01", "--to", "2026-03-01", "--runs", "2,9"]);
        assert!(err.contains("no run 9"), "{err}");
    };
}

impl World {
    /// The from → to matrix of snapshot column `col` between two runs, by SQL over the stored
    /// rows (each account's latest row at or before each run).
    fn matrix_sql(&self, col: &str, a: i64, b: i64) -> Vec<(String, String, u64)> {
        let at = |run: i64| {
            format!(
                "(SELECT s.account, s.{col} AS v FROM snapshots s WHERE s.run = \
                 (SELECT MAX(run) FROM snapshots x WHERE x.account = s.account AND x.run <= {run}))"
            )
        };
        let sql = format!(
            "SELECT x.v, y.v, COUNT(*) FROM {} x JOIN {} y ON x.account = y.account \
             GROUP BY x.v, y.v ORDER BY x.v, y.v",
            at(a),
            at(b)
        );
        let mut rows: Vec<(String, String, u64)> = match &self.db {
            Db::Sqlite(d) => {
                let c = rusqlite::Connection::open(d.path().join("abm.db")).unwrap();
                let mut st = c.prepare(&sql).unwrap();
                st.query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)? as u64,
                    ))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect()
            }
            Db::Postgres { admin, schema, .. } => {
                let mut c = postgres::Client::connect(admin, postgres::NoTls).unwrap();
                c.batch_execute(&format!("SET search_path TO {schema}"))
                    .unwrap();
                c.query(&sql, &[])
                    .unwrap()
                    .iter()
                    .map(|r| {
                        (
                            r.get::<_, String>(0),
                            r.get::<_, String>(1),
                            r.get::<_, i64>(2) as u64,
                        )
                    })
                    .collect()
            }
        };
        // Byte order, as analytics.json lists them (PostgreSQL's collation may differ).
        rows.sort();
        rows
    }
}

/// `abm analyze` on the database equals `abm analyze` on the files it was imported from (which
/// the DuckDB peer checks figure by figure): the same ROWs, segments and buying pattern, when
/// the run's as_of is the period's.
fn store_analyze_equals_file_analyze(db: Db) {
    let w = World::new(db);
    let data = sample_data(w.dir.path(), 800);
    std::fs::write(
        w.dir.path().join("abm.toml"),
        "[[segments]]\nname = \"seg\"\n[[segments.criteria]]\nkind = \"in\"\nfield = \"industry\"\n\
         values = [\"software\", \"fintech\", \"insurance\"]\n",
    )
    .unwrap();
    run_ok(w.abm().arg("import").arg(&data));
    w.run("2026-09-30T23:59:59.999999Z");
    let period = ["--from", "2026-01-01", "--to", "2026-09-30"];
    let files = w.json(
        &[
            &["analyze", data.to_str().unwrap()][..],
            &period,
            &["--out", "f"],
        ]
        .concat(),
    );
    let store = w.json(&[&["analyze"][..], &period, &["--out", "s"]].concat());
    for k in ["total", "by_tier", "by_cluster", "whitespace", "cross_sell"] {
        assert_eq!(files[k], store[k], "{k}");
    }
    let strip = |v: &Value| {
        let mut v = v.clone();
        for s in v.as_array_mut().unwrap() {
            s.as_object_mut().unwrap().remove("version");
        }
        v
    };
    assert_eq!(strip(&files["segments"]), strip(&store["segments"]));
    assert!(store["total"]["buying_pattern"]["wins"].as_u64().unwrap() > 0);
    assert!(files["migration"].is_null() && store["migration"].is_null());
}

both_backends! {
    store_analyze_equals_files => store_analyze_equals_file_analyze;
}
