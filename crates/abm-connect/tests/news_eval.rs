//! Matching and classification measured on real headlines (tests/data/news: each headline's
//! source cited in the `source` column and in its README). Prints precision and recall,
//! overall and per trigger type; fails when one falls below its floor (set a little under
//! what was measured, so that a regression fails and a small improvement does not need a
//! change here).

use abm_connect::news::{Matcher, Rules};
use std::collections::{BTreeMap, BTreeSet};

fn data(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/news")
            .join(name),
    )
    .unwrap()
}

/// The trigger types of the default rules, and `none` (names a company, no trigger).
const TYPES: [&str; 9] = [
    "funding_round",
    "leadership_change",
    "merger_acquisition",
    "expansion",
    "hiring_surge",
    "product_launch",
    "layoffs",
    "regulatory_change",
    "none",
];

/// Per type: (predicted and right, predicted, labelled).
type Counts = BTreeMap<&'static str, (usize, usize, usize)>;

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
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
    let known: BTreeSet<&str> = accounts.iter().map(|(i, _)| i.as_str()).collect();
    let matcher = Matcher::new(accounts.iter().map(|(i, n)| (i.as_str(), n.as_str(), None)));
    let rules = Rules::default();
    let text = data("labelled.tsv");
    let (mut tp, mut fp, mut fneg) = (0usize, 0usize, 0usize);
    // Classification over the headlines that name a company: correct / wrong / none.
    let (mut c_ok, mut c_wrong, mut c_none, mut labelled) = (0usize, 0usize, 0usize, 0usize);
    let mut per: Counts = TYPES.iter().map(|t| (*t, (0, 0, 0))).collect();
    let mut headlines = BTreeSet::new();
    let mut misses = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 4, "{line}");
        assert!(headlines.insert(f[0]), "twice: {}", f[0]);
        assert!(
            f[3].starts_with("http://") || f[3].starts_with("https://"),
            "no source: {line}"
        );
        let want = TYPES
            .iter()
            .copied()
            .find(|t| *t == f[2])
            .unwrap_or_else(|| panic!("type {:?}: {line}", f[2]));
        let gold: BTreeSet<&str> = f[1].split(';').filter(|s| !s.is_empty()).collect();
        for g in &gold {
            assert!(known.contains(g), "{g} is not in accounts.tsv: {line}");
        }
        let got: BTreeSet<&str> = matcher.find(f[0]).into_iter().collect();
        tp += gold.intersection(&got).count();
        fp += got.difference(&gold).count();
        fneg += gold.difference(&got).count();
        if gold != got {
            misses.push(format!("match {:?} → {:?}: {}", gold, got, f[0]));
        }
        if !gold.is_empty() {
            labelled += 1;
            let said = rules.classify(f[0]).unwrap_or("none");
            let said = TYPES.iter().copied().find(|t| *t == said).unwrap_or("none");
            per.get_mut(want).unwrap().2 += 1;
            per.get_mut(said).unwrap().1 += 1;
            if said == want {
                per.get_mut(want).unwrap().0 += 1;
                c_ok += 1;
            } else if said == "none" {
                c_none += 1;
                misses.push(format!("class {want} → none: {}", f[0]));
            } else {
                c_wrong += 1;
                misses.push(format!("class {want} → {said}: {}", f[0]));
            }
        }
    }
    let all = text.lines().count() - 1;
    assert!(all >= 200, "the labelled set has {all} headlines");
    let p = ratio(tp, tp + fp);
    let r = ratio(tp, tp + fneg);
    // Precision over the answers given (a right "none" counts as right); recall over all.
    let cp = ratio(c_ok, c_ok + c_wrong);
    let cr = ratio(c_ok, labelled);
    for m in &misses {
        eprintln!("  {m}");
    }
    eprintln!(
        "news eval ({labelled} headlines naming a company, {all} in all): matching precision {p:.2} recall {r:.2} \
         (tp {tp}, fp {fp}, fn {fneg}); classification precision {cp:.2} recall {cr:.2} \
         ({c_ok} right, {c_wrong} wrong, {c_none} unclassified)"
    );
    eprintln!("  type                 labelled  said  right  precision  recall");
    for (t, (right, said, gold)) in &per {
        eprintln!(
            "  {t:<20} {gold:>8}  {said:>4}  {right:>5}  {:>9.2}  {:>6.2}",
            ratio(*right, *said),
            ratio(*right, *gold)
        );
    }

    // Floors: a little under what was measured (tests/data/news/README.md has the figures:
    // matching 0.91 / 0.79, classification 0.85 / 0.70).
    let floor = |what: &str, got: f64, min: f64| {
        assert!(got >= min, "{what} fell to {got:.2} (floor {min:.2})");
    };
    floor("matching precision", p, 0.88);
    floor("matching recall", r, 0.75);
    floor("classification precision", cp, 0.81);
    floor("classification recall", cr, 0.66);
    // Per type: (precision floor, recall floor), measured minus about 0.05.
    let floors: BTreeMap<&str, (f64, f64)> = [
        ("funding_round", (0.90, 0.68)),
        ("leadership_change", (0.60, 0.60)),
        ("merger_acquisition", (0.85, 0.78)),
        ("expansion", (0.50, 0.45)),
        ("hiring_surge", (0.60, 0.40)),
        ("product_launch", (0.50, 0.55)),
        ("layoffs", (0.95, 0.65)),
        ("regulatory_change", (0.85, 0.55)),
        ("none", (0.40, 0.75)),
    ]
    .into_iter()
    .collect();
    for (t, (right, said, gold)) in &per {
        let (pf, rf) = floors[t];
        floor(&format!("{t} precision"), ratio(*right, *said), pf);
        floor(&format!("{t} recall"), ratio(*right, *gold), rf);
    }
}
