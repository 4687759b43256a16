//! History that grows with change (issue 15): a snapshot row holds from its run until the
//! account's next row, so the assessment of an account at run N is its row with the greatest
//! run ≤ N (`snapshots_account` index: one probe). `abm prune --before DATE` drops the rows no
//! run from DATE on needs; movements, checkpoints, decisions and runs are kept.

use crate::db::{ConnExt, RowExt, TxMode, Value};
use crate::{StoreError, Tx};
use abm_core::Instant;
use serde::Serialize;

/// What `abm prune` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    pub before: Instant,
    /// The last run with an `as_of` before `before`: every account keeps the row that held at
    /// it. `None`: no run is that old, nothing was dropped.
    pub last_run_before: Option<i64>,
    /// Snapshot rows dropped (each superseded by a later row of its account at or before
    /// `last_run_before`).
    pub snapshot_rows_dropped: u64,
    /// Snapshot rows left.
    pub snapshot_rows_kept: u64,
}

/// One account's assessment as it held at a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssessmentAt {
    /// The run whose row holds (the latest at or before the run asked for).
    pub since_run: i64,
    pub cluster: String,
    pub candidate: String,
    pub movement: String,
}

impl crate::Store {
    /// Drop the snapshot rows that no run at or after `before` needs: for each account, every
    /// row older than the one that held at the last run before `before`. Movements, checkpoints,
    /// decisions and runs stay. One transaction. (SQLite reuses the freed pages; the file
    /// shrinks only with `VACUUM`.)
    pub fn prune(&mut self, before: Instant) -> Result<PruneReport, StoreError> {
        let mut tx = Tx::begin(self.conn(), TxMode::Write)?;
        let last = tx
            .query_one(
                "SELECT MAX(id) FROM runs WHERE as_of < ?",
                &[Value::Int(before.0)],
                |r| r.int(0),
            )?
            .flatten();
        let mut rep = PruneReport {
            before,
            last_run_before: last,
            ..Default::default()
        };
        if let Some(last) = last {
            rep.snapshot_rows_dropped = tx.execute(
                "DELETE FROM snapshots WHERE run < (
                    SELECT MAX(s.run) FROM snapshots s
                    WHERE s.account = snapshots.account AND s.run <= ?)",
                &[Value::Int(last)],
            )?;
        }
        rep.snapshot_rows_kept =
            tx.scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM snapshots", &[])? as u64;
        tx.commit()?;
        Ok(rep)
    }

    /// The assessment of `account_id` as it held at run `run`: `None` when the account had no
    /// row yet then (not imported, or its older history pruned).
    pub fn assessment_at(
        &mut self,
        account_id: &str,
        run: i64,
    ) -> Result<Option<AssessmentAt>, StoreError> {
        let mut tx = Tx::begin(self.conn(), TxMode::Read)?;
        let id = tx
            .query_one(
                "SELECT id FROM accounts WHERE account_id = ?",
                &[Value::Text(account_id)],
                |r| r.i(0),
            )?
            .ok_or_else(|| StoreError::NoAccount(account_id.to_string()))?;
        let at = tx.query_one(
            "SELECT run, cluster, candidate, movement FROM snapshots
             WHERE account = ? AND run <= ? ORDER BY run DESC LIMIT 1",
            &[Value::Int(id), Value::Int(run)],
            |r| {
                Ok(AssessmentAt {
                    since_run: r.i(0)?,
                    cluster: r.string(1)?,
                    candidate: r.string(2)?,
                    movement: r.string(3)?,
                })
            },
        )?;
        tx.commit()?;
        Ok(at)
    }
}
