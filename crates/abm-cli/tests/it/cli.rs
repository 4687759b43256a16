use super::*;

#[test]
fn demo_runs_on_the_bundled_sample() {
    let d = tempfile::tempdir().unwrap();
    let o = run_ok(abm().current_dir(d.path()).arg("demo"));
    let s = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "Sample: 300 accounts",
        "Cluster summary as of 2026-11-01T00:00:00Z",
        "Active Focus —",
        "Future Pipeline —",
        "abm explain",
    ] {
        assert!(s.contains(needle), "missing {needle:?} in:\n{s}");
    }
    assert!(d.path().join("abm-demo/cluster_assignments.csv").is_file());
    // The demo database: several runs, movements and checkpoints waiting for a reviewer, and
    // how to open the dashboard on it.
    assert!(s.contains("Demo database: abm-demo/abm.db (3 runs,"), "{s}");
    assert!(s.contains("abm serve --db abm-demo/abm.db"), "{s}");
    let db = d.path().join("abm-demo/abm.db");
    let summary: serde_json::Value =
        serde_json::from_slice(&run_ok(abm().args(["summary", "--json", "--db"]).arg(&db)).stdout)
            .unwrap();
    assert_eq!(summary["runs"], 3, "{summary}");
    let pending: i64 = summary["pending"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_i64().unwrap())
        .sum();
    assert!(pending > 0, "checkpoints wait for a reviewer: {summary}");
    let moves: serde_json::Value = serde_json::from_slice(
        &run_ok(abm().args(["movements", "--json", "--db"]).arg(&db)).stdout,
    )
    .unwrap();
    assert!(moves.as_array().is_some_and(|m| !m.is_empty()), "{moves}");
    // Run again: the demo database is rebuilt, not added to.
    run_ok(abm().current_dir(d.path()).arg("demo"));
    let again: serde_json::Value =
        serde_json::from_slice(&run_ok(abm().args(["summary", "--json", "--db"]).arg(&db)).stdout)
            .unwrap();
    assert_eq!(again["runs"], 3);
}

#[test]
fn init_writes_a_config_that_loads_and_refuses_to_overwrite() {
    let d = tempfile::tempdir().unwrap();
    run_ok(abm().current_dir(d.path()).arg("init"));
    let text = std::fs::read_to_string(d.path().join("abm.toml")).unwrap();
    assert!(text.contains("# Entry rules, first match wins"));
    assert!(!abm()
        .current_dir(d.path())
        .arg("init")
        .status()
        .unwrap()
        .success());
    // The written config is picked up from the current directory; an edit changes the result.
    sample_data(d.path(), 200);
    run_ok(abm().current_dir(d.path()).args([
        "segment",
        "data",
        "--as-of",
        "2026-11-01",
        "--out",
        "o1",
    ]));
    std::fs::write(
        d.path().join("abm.toml"),
        text.replace("a = 80.0", "a = 101.0")
            .replace("b = 65.0", "b = 101.0"),
    )
    .unwrap();
    run_ok(abm().current_dir(d.path()).args([
        "segment",
        "data",
        "--as-of",
        "2026-11-01",
        "--out",
        "o2",
    ]));
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("o2/cluster_summary.json")).unwrap())
            .unwrap();
    assert_eq!(s["active_focus_count"], 0, "no tier A/B accounts left");
}

#[test]
fn invalid_config_names_the_key() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write(
        d.path(),
        "bad.toml",
        "[engagement]\nwindow_days = \"ninety\"\n",
    );
    let o = abm()
        .arg("--config")
        .arg(&cfg)
        .args(["segment", "."])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("window_days"),
        "{err}"
    );
    let cfg = write(d.path(), "bad2.toml", "[[decision_table]]\ntiers=[\"A\"]\nengagement=[\"any\"]\ntriggers=\"maybe\"\ncluster=\"active_focus\"\n");
    let o = abm()
        .arg("--config")
        .arg(&cfg)
        .args(["segment", "."])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("decision_table[0].triggers"), "{err}");
}

#[test]
fn piping_into_head_is_not_an_error() {
    let d = tempfile::tempdir().unwrap();
    let data = sample_data(d.path(), 300);
    let mut child = abm()
        .args(["explain", "ACC-0001"])
        .arg(&data)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn readme_commands_match_the_cli() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let help = String::from_utf8(run_ok(abm().arg("--help")).stdout).unwrap();
    for cmd in ["init", "demo", "segment", "explain", "sample"] {
        assert!(help.contains(cmd), "--help lacks {cmd}");
        assert!(
            readme.contains(&format!("abm {cmd}")) || readme.contains(&format!("-- {cmd}")),
            "README lacks `abm {cmd}`"
        );
    }
    assert!(readme.contains("cargo run --release -- demo"));
}
