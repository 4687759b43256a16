//! Matching and classification measured on real headlines (tests/data/news: sources cited in
//! its README). Prints precision and recall; fails if they fall below what they are today.

use abm_connect::news::{Matcher, Rules};
use std::collections::BTreeSet;

fn data(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/news")
            .join(name),
    )
    .unwrap()
}

#[test]
fn matching_and_classification_on_real_headlines() {
    let accounts: Vec<(String, String)> = data("accounts.tsv")
        .lines()
        .skip(1)
        .map(|l| {
            let (id, name) = l.split_once('\t').unwrap();
            (id.to_string(), name.to_string())
        })
        .collect();
    let matcher = Matcher::new(accounts.iter().map(|(i, n)| (i.as_str(), n.as_str(), None)));
    let rules = Rules::default();
    let (mut tp, mut fp, mut fneg) = (0usize, 0usize, 0usize);
    // Classification over the headlines that name a company: correct / wrong / none.
    let (mut c_ok, mut c_wrong, mut c_none, mut labelled) = (0usize, 0usize, 0usize, 0usize);
    let mut misses = Vec::new();
    for line in data("labelled.tsv").lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 4, "{line}");
        let gold: BTreeSet<&str> = f[1].split(';').filter(|s| !s.is_empty()).collect();
        let got: BTreeSet<&str> = matcher.find(f[0]).into_iter().collect();
        tp += gold.intersection(&got).count();
        fp += got.difference(&gold).count();
        fneg += gold.difference(&got).count();
        if gold != got {
            misses.push(format!("match {:?} → {:?}: {}", gold, got, f[0]));
        }
        if !gold.is_empty() {
            labelled += 1;
            match rules.classify(f[0]) {
                // "none": the headline names a company but is no trigger.
                None if f[2] == "none" => c_ok += 1,
                Some(t) if t == f[2] => c_ok += 1,
                Some(t) => {
                    c_wrong += 1;
                    misses.push(format!("class {} → {t}: {}", f[2], f[0]));
                }
                None => {
                    c_none += 1;
                    misses.push(format!("class {} → none: {}", f[2], f[0]));
                }
            }
        }
    }
    let p = tp as f64 / (tp + fp).max(1) as f64;
    let r = tp as f64 / (tp + fneg).max(1) as f64;
    // Precision over the answers given (a right "none" counts as right).
    let cp = c_ok as f64 / (c_ok + c_wrong).max(1) as f64;
    let cr = c_ok as f64 / labelled.max(1) as f64;
    for m in &misses {
        eprintln!("  {m}");
    }
    eprintln!(
        "news eval ({labelled} headlines naming a company, {} in all): matching precision {p:.2} recall {r:.2} \
         (tp {tp}, fp {fp}, fn {fneg}); classification precision {cp:.2} recall {cr:.2} \
         ({c_ok} right, {c_wrong} wrong, {c_none} unclassified)",
        data("labelled.tsv").lines().count() - 1
    );
    assert!(
        p >= 0.85 && r >= 0.6,
        "matching fell: precision {p:.2} recall {r:.2}"
    );
    assert!(
        cp >= 0.85 && cr >= 0.6,
        "classification fell: precision {cp:.2} recall {cr:.2}"
    );
}
