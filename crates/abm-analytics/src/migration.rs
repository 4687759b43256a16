//! Migration between two recorded runs (issue 16, item 4): the from → to matrix of every
//! account by segment, cluster and tier, with counts and shares of the `from` row; and the
//! lifecycle of cohorts (the accounts of one segment at the first run) followed run by run.
//! Pure: the store says where each account was at each run.

use serde::Serialize;
use std::collections::BTreeMap;

/// The label of an account that had no assessment at a run (imported later, or its history
/// pruned).
pub const NOT_ASSESSED: &str = "(not assessed)";

/// Where one account stood at one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub cluster: String,
    pub tier: String,
    /// The `[[segments]]` it was in (`a;b`), [`abm_core::segments::NO_SEGMENT`] for none.
    pub segment: String,
    /// A customer then (a deal won by the run's as_of).
    pub customer: bool,
}

/// A recorded run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRef {
    pub run: i64,
    pub as_of: String,
    /// The `[[segments]]` definitions it recorded: (name, version).
    pub segments: Vec<SegmentVersionRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentVersionRef {
    pub name: String,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    pub from: String,
    pub to: String,
    pub count: u64,
    /// Of the accounts in `from` at the first run, the share in `to` at the second.
    pub share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Matrix {
    pub accounts: u64,
    /// Accounts whose label differs between the runs.
    pub moved: u64,
    pub moved_share: Option<f64>,
    pub cells: Vec<Cell>,
}

/// The matrix of `pairs` (from, to), one per account.
pub fn matrix<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Matrix {
    let mut cells: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let mut rows: BTreeMap<&str, u64> = BTreeMap::new();
    let (mut accounts, mut moved) = (0u64, 0u64);
    for (f, t) in pairs {
        accounts += 1;
        moved += (f != t) as u64;
        *cells.entry((f, t)).or_default() += 1;
        *rows.entry(f).or_default() += 1;
    }
    Matrix {
        accounts,
        moved,
        moved_share: crate::stats::rate(moved, accounts),
        cells: cells
            .into_iter()
            .map(|((f, t), count)| Cell {
                from: f.to_string(),
                to: t.to_string(),
                count,
                share: crate::stats::round6(count as f64 / rows[f] as f64),
            })
            .collect(),
    }
}

/// One cohort at one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CohortAt {
    pub run: i64,
    pub as_of: String,
    pub by_cluster: BTreeMap<String, u64>,
    pub by_segment: BTreeMap<String, u64>,
    pub customers: u64,
    pub customer_share: Option<f64>,
}

/// The accounts in one segment at the first run, followed over the runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cohort {
    pub segment: String,
    pub accounts: u64,
    pub runs: Vec<CohortAt>,
}

/// `places[r][i]`: account `i` at run `runs[r]`; cohorts are formed at `runs[0]`.
pub fn lifecycle(runs: &[RunRef], places: &[Vec<Option<Place>>]) -> Vec<Cohort> {
    let Some(first) = places.first() else {
        return Vec::new();
    };
    let mut members: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, p) in first.iter().enumerate() {
        if let Some(p) = p {
            members.entry(p.segment.as_str()).or_default().push(i);
        }
    }
    members
        .into_iter()
        .map(|(segment, accounts)| Cohort {
            segment: segment.to_string(),
            accounts: accounts.len() as u64,
            runs: runs
                .iter()
                .zip(places)
                .map(|(r, at)| {
                    let mut c = CohortAt {
                        run: r.run,
                        as_of: r.as_of.clone(),
                        by_cluster: BTreeMap::new(),
                        by_segment: BTreeMap::new(),
                        customers: 0,
                        customer_share: None,
                    };
                    for &i in &accounts {
                        let (cluster, seg, customer) = match &at[i] {
                            Some(p) => (p.cluster.as_str(), p.segment.as_str(), p.customer),
                            None => (NOT_ASSESSED, NOT_ASSESSED, false),
                        };
                        *c.by_cluster.entry(cluster.to_string()).or_default() += 1;
                        *c.by_segment.entry(seg.to_string()).or_default() += 1;
                        c.customers += customer as u64;
                    }
                    c.customer_share = crate::stats::rate(c.customers, accounts.len() as u64);
                    c
                })
                .collect(),
        })
        .collect()
}

/// `migration` of analytics.json.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Migration {
    pub from: RunRef,
    pub to: RunRef,
    pub by_segment: Matrix,
    pub by_cluster: Matrix,
    pub by_tier: Matrix,
    /// Cohorts by segment at `from`, followed over every recorded run from `from` to `to`.
    pub lifecycle: Vec<Cohort>,
    pub notes: Vec<String>,
}

/// The matrices between the first and the last of `runs`, and the cohorts over all of them.
pub fn migration(runs: &[RunRef], places: &[Vec<Option<Place>>], notes: Vec<String>) -> Migration {
    let (a, b) = (&places[0], &places[places.len() - 1]);
    let pick = |f: fn(&Place) -> &str| {
        matrix(a.iter().zip(b).map(move |(x, y)| {
            (
                x.as_ref().map_or(NOT_ASSESSED, f),
                y.as_ref().map_or(NOT_ASSESSED, f),
            )
        }))
    };
    Migration {
        from: runs[0].clone(),
        to: runs[runs.len() - 1].clone(),
        by_segment: pick(|p| &p.segment),
        by_cluster: pick(|p| &p.cluster),
        by_tier: pick(|p| &p.tier),
        lifecycle: lifecycle(runs, places),
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(cluster: &str, segment: &str, customer: bool) -> Option<Place> {
        Some(Place {
            cluster: cluster.into(),
            tier: "A".into(),
            segment: segment.into(),
            customer,
        })
    }

    fn run(id: i64) -> RunRef {
        RunRef {
            run: id,
            as_of: format!("2026-0{id}-01T00:00:00Z"),
            segments: vec![],
        }
    }

    #[test]
    fn the_matrix_counts_and_shares_each_from_row() {
        let m = matrix([("a", "a"), ("a", "b"), ("a", "b"), ("b", "b")]);
        assert_eq!((m.accounts, m.moved), (4, 2));
        assert_eq!(m.moved_share, Some(0.5));
        let cell = |f: &str, t: &str| m.cells.iter().find(|c| c.from == f && c.to == t).cloned();
        assert_eq!(cell("a", "b").unwrap().count, 2);
        assert!((cell("a", "b").unwrap().share - 2.0 / 3.0).abs() < 1e-6);
        assert_eq!(cell("b", "b").unwrap().share, 1.0);
        assert!(cell("b", "a").is_none());
        let sum: u64 = m.cells.iter().map(|c| c.count).sum();
        assert_eq!(sum, m.accounts);
        assert_eq!(matrix(std::iter::empty()).moved_share, None);
    }

    #[test]
    fn cohorts_are_followed_over_the_runs() {
        let runs = [run(1), run(2), run(3)];
        let places = vec![
            vec![
                place("future_pipeline", "s", false),
                place("monitor_only", "t", false),
                None,
            ],
            vec![
                place("active_focus", "s", false),
                place("monitor_only", "s", false),
                place("cluster_icp", "s", false),
            ],
            vec![
                place("active_focus", "s", true),
                place("future_pipeline", "s", false),
                place("cluster_icp", "t", false),
            ],
        ];
        let m = migration(&runs, &places, vec![]);
        // By segment from run 1 to 3: s → s, t → s, (not assessed) → t.
        let cells: Vec<(&str, &str, u64)> = m
            .by_segment
            .cells
            .iter()
            .map(|c| (c.from.as_str(), c.to.as_str(), c.count))
            .collect();
        assert_eq!(
            cells,
            [(NOT_ASSESSED, "t", 1), ("s", "s", 1), ("t", "s", 1)]
        );
        assert_eq!(m.by_cluster.moved, 3);
        // Cohorts at run 1: s (account 0) and t (account 1); account 2 was not assessed.
        assert_eq!(m.lifecycle.len(), 2);
        let s = &m.lifecycle[0];
        assert_eq!((s.segment.as_str(), s.accounts), ("s", 1));
        assert_eq!(s.runs[2].customers, 1);
        assert_eq!(s.runs[2].customer_share, Some(1.0));
        assert_eq!(s.runs[1].by_cluster["active_focus"], 1);
        let t = &m.lifecycle[1];
        assert_eq!(t.runs[1].by_segment["s"], 1);
        assert_eq!(t.runs[2].by_cluster["future_pipeline"], 1);
    }
}
