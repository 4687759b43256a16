//! A run's transition matrix against the previous run: how many accounts went from each
//! cluster to each cluster (the dashboard's runs page, issue 18).
//!
//! Exact over the change-only history (`history`): an account's cluster at run N is its
//! snapshot row with the greatest run ≤ N. Only the accounts with a row written by run N (the
//! primary-key range of run N) can have moved since the previous run P; they are counted from their rows, each probed for its row at P by index. Every
//! other account kept its row, so it sits on the diagonal: the run's own counts per cluster
//! minus the changed accounts' counts. No scan of the whole history.

use crate::db::{ConnExt, RowExt, TxMode, Value};
use crate::{StoreError, Tx};
use abm_core::Cluster;
use serde::Serialize;

/// One cell: `accounts` went from `from` (`None`: the account had no row at the previous run,
/// new or first run) to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct TransitionCell {
    pub from: Option<Cluster>,
    pub to: Cluster,
    pub accounts: i64,
}

/// A run's transitions: every non-empty cell, ordered by (from, to).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transitions {
    pub run: i64,
    /// The run compared against (`None` for the first run).
    pub previous: Option<i64>,
    pub cells: Vec<TransitionCell>,
}

impl Transitions {
    /// The count of one cell (0 when empty).
    pub fn count(&self, from: Option<Cluster>, to: Cluster) -> i64 {
        self.cells
            .iter()
            .find(|c| c.from == from && c.to == to)
            .map_or(0, |c| c.accounts)
    }
}

/// The snapshot rows `c` run n wrote (the accounts whose row changed since the run before it,
/// p: no run lies between them), each with its row `p` holding at run p (absent: the account
/// had none). [`CHANGED_FROM`] takes p; [`CHANGED_WHERE`] takes n.
pub(crate) const CHANGED_FROM: &str = "snapshots c
     LEFT JOIN snapshots p ON p.account = c.account AND p.run = (
         SELECT MAX(x.run) FROM snapshots x WHERE x.account = c.account AND x.run <= ?)";
pub(crate) const CHANGED_WHERE: &str = "c.run = ?";

fn cluster(v: &str) -> Result<Cluster, StoreError> {
    Cluster::parse(v).ok_or_else(|| {
        StoreError::Corrupt(format!("snapshots.cluster holds an unknown cluster {v:?}"))
    })
}

/// The run before `run` (`None` for the first).
pub(crate) fn previous_run(tx: &mut Tx<'_>, run: i64) -> Result<Option<i64>, StoreError> {
    Ok(tx
        .query_one(
            "SELECT MAX(id) FROM runs WHERE id < ?",
            &[Value::Int(run)],
            |r| r.int(0),
        )?
        .flatten())
}

impl crate::Store {
    /// Run `run`'s transition matrix against the run before it (`StoreError::NoRun` when it
    /// does not exist).
    pub fn transitions(&mut self, run: i64) -> Result<Transitions, StoreError> {
        let mut tx = Tx::begin(self.conn(), TxMode::Read)?;
        let totals = tx
            .query_one(
                // The customer track has no column: the accounts the four do not hold.
                "SELECT cluster_icp, future_pipeline, active_focus, monitor_only,
                    accounts - cluster_icp - future_pipeline - active_focus - monitor_only FROM runs
                 WHERE id = ?",
                &[Value::Int(run)],
                |r| Ok([r.i(0)?, r.i(1)?, r.i(2)?, r.i(3)?, r.i(4)?]),
            )?
            .ok_or(StoreError::UnknownRun(run))?;
        let previous = previous_run(&mut tx, run)?;
        let p = previous.unwrap_or(-1);
        let changed = tx.query_all(
            &format!(
                "SELECT p.cluster, c.cluster, CAST(COUNT(*) AS BIGINT)
                 FROM {CHANGED_FROM} WHERE {CHANGED_WHERE} GROUP BY p.cluster, c.cluster"
            ),
            &[Value::Int(p), Value::Int(run)],
            |r| {
                Ok(TransitionCell {
                    from: r.opt_string(0)?.as_deref().map(cluster).transpose()?,
                    to: cluster(&r.string(1)?)?,
                    accounts: r.i(2)?,
                })
            },
        )?;
        tx.commit()?;
        let mut cells: Vec<TransitionCell> = Vec::new();
        let order = Cluster::ALL;
        for (c, total) in order.into_iter().zip(totals) {
            let moved_in: i64 = changed
                .iter()
                .filter(|x| x.to == c)
                .map(|x| x.accounts)
                .sum();
            let kept = total - moved_in;
            let own = changed
                .iter()
                .find(|x| x.from == Some(c) && x.to == c)
                .map_or(0, |x| x.accounts);
            if kept + own > 0 {
                cells.push(TransitionCell {
                    from: Some(c),
                    to: c,
                    accounts: kept + own,
                });
            }
        }
        cells.extend(changed.into_iter().filter(|x| x.from != Some(x.to)));
        cells.sort();
        Ok(Transitions {
            run,
            previous,
            cells,
        })
    }
}
