//! A run's transition matrix against the previous run: how many accounts went from each
//! cluster to each cluster (the dashboard's runs page, issue 18).
//!
//! Counted by the run that writes it ([`Counter`], [`record`]) and stored with the run
//! (`run_transitions`, migration 0011), so a page reads a handful of rows. The run knows, for
//! every account it writes a snapshot row for, the account's previous row's cluster: its state's
//! cluster when nothing outside a run touched the state since that row (a due instant is set),
//! else looked up by the row's key (a decision or re-evaluation since); an account the run
//! writes no row for kept its row, so it sits on the diagonal. The runs recorded before the
//! migration are counted by it from the history ([`record_recorded_runs`]).
//!
//! The count from the history ([`Store::transitions_recomputed`], the test oracle): an
//! account's cluster at run N is its snapshot row with the greatest run ≤ N. Only the accounts
//! with a row written by run N (the primary-key range of run N) can have moved since the
//! previous run P; they are counted from their rows, each probed for its row at P by index.
//! Every other account kept its row, so it sits on the diagonal: the run's own counts per
//! cluster minus the changed accounts' counts.

use crate::db::{Conn, ConnExt, RowExt, TxMode, Value};
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
pub(crate) fn previous_run(conn: &mut dyn Conn, run: i64) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .query_one(
            "SELECT MAX(id) FROM runs WHERE id < ?",
            &[Value::Int(run)],
            |r| r.int(0),
        )?
        .flatten())
}

/// The run's accounts per cluster (`runs`), `StoreError::UnknownRun` when it does not exist.
fn run_totals(conn: &mut dyn Conn, run: i64) -> Result<Vec<(Cluster, i64)>, StoreError> {
    let totals = conn
        .query_one(
            // The customer track has no column: the accounts the four do not hold.
            "SELECT cluster_icp, future_pipeline, active_focus, monitor_only,
                accounts - cluster_icp - future_pipeline - active_focus - monitor_only FROM runs
             WHERE id = ?",
            &[Value::Int(run)],
            |r| Ok([r.i(0)?, r.i(1)?, r.i(2)?, r.i(3)?, r.i(4)?]),
        )?
        .ok_or(StoreError::UnknownRun(run))?;
    Ok(Cluster::ALL.into_iter().zip(totals).collect())
}

/// The whole matrix from the cells of the accounts whose row the run wrote (`changed`) and the
/// run's accounts per cluster: every other account kept its row, on the diagonal.
fn assemble(totals: &[(Cluster, i64)], changed: Vec<TransitionCell>) -> Vec<TransitionCell> {
    let mut cells: Vec<TransitionCell> = Vec::new();
    for &(c, total) in totals {
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
    cells
}

/// The matrix counted from the snapshot history (the oracle; the migration's count of the
/// runs recorded before it).
fn recompute(conn: &mut dyn Conn, run: i64) -> Result<Transitions, StoreError> {
    let totals = run_totals(conn, run)?;
    let previous = previous_run(conn, run)?;
    let p = previous.unwrap_or(-1);
    let changed = conn.query_all(
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
    Ok(Transitions {
        run,
        previous,
        cells: assemble(&totals, changed),
    })
}

fn store_cells(conn: &mut dyn Conn, run: i64, cells: &[TransitionCell]) -> Result<(), StoreError> {
    for c in cells {
        conn.execute(
            "INSERT INTO run_transitions (run, from_cluster, to_cluster, accounts)
             VALUES (?, ?, ?, ?)",
            &[
                Value::Int(run),
                Value::opt_text(c.from.map(|f| f.as_str())),
                Value::Text(c.to.as_str()),
                Value::Int(c.accounts),
            ],
        )?;
    }
    Ok(())
}

/// Migration 0011's step: count and store the matrix of every run recorded before it.
pub(crate) fn record_recorded_runs(conn: &mut dyn Conn) -> Result<(), StoreError> {
    let runs = conn.query_all("SELECT id FROM runs ORDER BY id", &[], |r| r.i(0))?;
    for run in runs {
        let t = recompute(conn, run)?;
        store_cells(conn, run, &t.cells)?;
    }
    Ok(())
}

/// Where an account's previous cluster comes from.
enum Prev {
    /// Known: its state's cluster, or `None` (no row before).
    Known(Option<Cluster>),
    /// Its row of run `.0` says (looked up by key when the run records its matrix).
    Row(i64, i64),
}

/// The cells of the accounts a run writes a snapshot row for, counted as it writes them.
#[derive(Default)]
pub(crate) struct Counter {
    known: std::collections::BTreeMap<(Option<Cluster>, Cluster), i64>,
    /// (run of the account's previous row, account, its new cluster).
    lookup: Vec<(i64, i64, Cluster)>,
}

impl Counter {
    /// Account `i` of `l` gets a new snapshot row in cluster `to`.
    pub(crate) fn add(&mut self, l: &crate::run::Loaded, i: usize, to: Cluster) {
        let from = match (l.snapshot_of[i], l.priors[i].as_ref()) {
            (None, _) => Prev::Known(None),
            // A due instant is only kept by a run that left the state as its row says; a
            // decision or a re-evaluation since (which may change the state's cluster and
            // writes no snapshot row) clears it.
            (Some(_), Some(p)) if l.stored_due[i].0.is_some() => Prev::Known(Some(p.cluster)),
            (Some((run, _)), _) => Prev::Row(run, l.ids[i]),
        };
        match from {
            Prev::Known(f) => *self.known.entry((f, to)).or_default() += 1,
            Prev::Row(run, account) => self.lookup.push((run, account, to)),
        }
    }
}

/// Store run `run`'s matrix: the cells `counter` counted (the previous rows it could not know
/// looked up now) and the diagonal of every account the run wrote no row for (`totals`: the
/// run's accounts per cluster). Returns how many previous rows were looked up.
pub(crate) fn record(
    conn: &mut dyn Conn,
    run: i64,
    totals: &abm_core::summary::ClusterCounts,
    counter: Counter,
) -> Result<usize, StoreError> {
    let Counter {
        mut known,
        mut lookup,
    } = counter;
    lookup.sort_unstable();
    let looked_up = lookup.len();
    for group in lookup.chunk_by(|a, b| a.0 == b.0) {
        let prev = group[0].0;
        let ids: Vec<Value<'_>> = group.iter().map(|g| Value::Int(g.1)).collect();
        let mut found: std::collections::HashMap<i64, Cluster> = Default::default();
        for (q, params) in crate::scope::in_chunks(
            "SELECT account, cluster FROM snapshots WHERE run = ? AND {scope}",
            "account",
            &[Value::Int(prev)],
            &ids,
        ) {
            conn.query_each(&q, &params, &mut |r| {
                found.insert(r.i(0)?, cluster(r.s(1)?)?);
                Ok(())
            })?;
        }
        for &(_, account, to) in group {
            let from = found.get(&account).copied();
            *known.entry((from, to)).or_default() += 1;
        }
    }
    let changed = known
        .into_iter()
        .map(|((from, to), accounts)| TransitionCell { from, to, accounts })
        .collect();
    let totals: Vec<(Cluster, i64)> = Cluster::ALL
        .into_iter()
        .map(|c| (c, totals.get(c) as i64))
        .collect();
    store_cells(conn, run, &assemble(&totals, changed))?;
    Ok(looked_up)
}

impl crate::Store {
    /// Run `run`'s transition matrix against the run before it, as the run stored it
    /// (`StoreError::UnknownRun` when it does not exist).
    pub fn transitions(&mut self, run: i64) -> Result<Transitions, StoreError> {
        let mut tx = Tx::begin(self.conn(), TxMode::Read)?;
        let totals = run_totals(&mut *tx, run)?;
        let previous = previous_run(&mut *tx, run)?;
        let mut cells = tx.query_all(
            "SELECT from_cluster, to_cluster, accounts FROM run_transitions WHERE run = ?",
            &[Value::Int(run)],
            |r| {
                Ok(TransitionCell {
                    from: r.opt_string(0)?.as_deref().map(cluster).transpose()?,
                    to: cluster(&r.string(1)?)?,
                    accounts: r.i(2)?,
                })
            },
        )?;
        if cells.is_empty() && totals.iter().any(|t| t.1 > 0) {
            // Not stored (every run is, by itself or by migration 0011): counted now.
            let t = recompute(&mut *tx, run)?;
            tx.commit()?;
            return Ok(t);
        }
        tx.commit()?;
        cells.sort();
        Ok(Transitions {
            run,
            previous,
            cells,
        })
    }

    /// Run `run`'s matrix counted afresh from the snapshot history (what the run stores; the
    /// test oracle of [`Self::transitions`]).
    pub fn transitions_recomputed(&mut self, run: i64) -> Result<Transitions, StoreError> {
        let mut tx = Tx::begin(self.conn(), TxMode::Read)?;
        let t = recompute(&mut *tx, run)?;
        tx.commit()?;
        Ok(t)
    }
}
