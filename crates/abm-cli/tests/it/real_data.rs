//! Real public data from `../shared/data`, mapped through a config. Ignored by default (the
//! data is not in the repository); `.ci/run` runs them.

use super::*;

#[test]
#[ignore = "needs ../shared/data (run by .ci/run)"]
fn fortune_1000_scores_into_tiers_with_explanations() {
    let shared = shared().expect("../shared/data is absent");
    let file = shared.join("data/fortune-1000/Fortune_1000.csv");
    let d = tempfile::tempdir().unwrap();
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fortune-1000.toml");
    let out = d.path().join("out");
    run_ok(
        abm()
            .arg("--config")
            .arg(&cfg)
            .arg("segment")
            .arg("--accounts")
            .arg(&file)
            .args(["--as-of", "2026-11-01", "--out"])
            .arg(&out),
    );
    let (h, rows) = read_csv(&out.join("cluster_assignments.csv"));
    assert_eq!(rows.len(), 1000, "every company scored, none rejected");
    let tier = h.iter().position(|c| c == "tier").unwrap();
    let mut per_tier = std::collections::BTreeMap::new();
    for r in &rows {
        *per_tier.entry(r[tier].clone()).or_insert(0) += 1;
    }
    assert!(per_tier.len() >= 4, "a spread of tiers: {per_tier:?}");
    let walmart = rows.iter().find(|r| r[0] == "Walmart").unwrap();
    let rationale = &walmart[h.iter().position(|c| c == "rationale").unwrap()];
    assert!(
        rationale.contains("(score"),
        "tier computed from the score: {rationale}"
    );
    let o = run_ok(
        abm()
            .arg("--config")
            .arg(&cfg)
            .args(["explain", "Apple"])
            .arg("--accounts")
            .arg(&file)
            .args(["--as-of", "2026-11-01"]),
    );
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("industry = Technology") && s.contains("computed from the criteria"),
        "{s}"
    );
}

#[test]
#[ignore = "needs ../shared/data (run by .ci/run)"]
fn maven_crm_accounts_score_with_a_mapping() {
    let shared = shared().expect("../shared/data is absent");
    let file = shared.join("data/maven-crm/accounts.csv");
    let d = tempfile::tempdir().unwrap();
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/maven-crm.toml");
    let out = d.path().join("out");
    run_ok(
        abm()
            .arg("--config")
            .arg(&cfg)
            .arg("segment")
            .arg("--accounts")
            .arg(&file)
            .args(["--as-of", "2026-11-01", "--out"])
            .arg(&out),
    );
    let (h, rows) = read_csv(&out.join("cluster_assignments.csv"));
    assert_eq!(rows.len(), 85);
    let tier = h.iter().position(|c| c == "tier").unwrap();
    let tiers: std::collections::BTreeSet<_> = rows.iter().map(|r| r[tier].clone()).collect();
    assert!(tiers.len() >= 3, "{tiers:?}");
    let o = run_ok(
        abm()
            .arg("--config")
            .arg(&cfg)
            .args(["explain", "Acme Corporation"])
            .arg("--accounts")
            .arg(&file)
            .args(["--as-of", "2026-11-01"]),
    );
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("industry = technolgy"),
        "the data's own typo is shown: {s}"
    );
}
