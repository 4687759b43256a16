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

#[cfg(test)]
mod tests {
    use crate::db::{Conn, ConnExt, RowExt};
    use std::time::Duration;

    /// A database of schema 2 (a snapshot row per account per run) converted by migration
    /// 0004: rows equal to their account's previous row are dropped, each account's state
    /// points at its latest row, and the assessment at every run reads as before.
    fn converts(url: &str, mut old: Box<dyn Conn>, list: &[(&str, &str)]) {
        crate::migrate::migrate(&mut *old, &list[..2]).unwrap();
        let row = |run: i64, account: i64, cluster: &str, movement: &str| {
            format!(
                "INSERT INTO snapshots VALUES ({run}, {account}, 'monitor_only', '{cluster}', NULL,
                 '{movement}', 1, '[]', 'A', 90.0, 'low', 0, '', 'p', 1, 1, '', 'why');"
            )
        };
        let mut sql = String::new();
        for (id, as_of) in [(1, 100), (2, 200), (3, 300)] {
            sql.push_str(&format!(
                "INSERT INTO runs VALUES ({id}, {as_of}, 't', 'h', 1, {id}, 2, 0, 0, 0, 2, 0, 0,
                 0, 0, 0, 0, 0, '{{}}');"
            ));
        }
        for (run, cluster, movement) in [
            (1, "monitor_only", "new"),
            (2, "monitor_only", "stay"),
            (3, "monitor_only", "stay"),
        ] {
            sql.push_str(&row(run, 1, cluster, movement));
        }
        for run in 1..=3 {
            sql.push_str(&row(run, 2, "cluster_icp", "stay"));
        }
        sql.push_str(
            "INSERT INTO events (ident, account, occurred_at, type, contact_id, import_id)
             VALUES ('e1', 1, 50, 'demo', 'c', 1);
             INSERT INTO account_state VALUES (1, 'monitor_only', 100, NULL, 3);
             INSERT INTO account_state VALUES (2, 'cluster_icp', 100, NULL, 3);",
        );
        old.batch_execute(&sql).unwrap();
        drop(old);
        let mut store = crate::Store::open(url).unwrap();
        let conn = store.conn();
        let rows = conn
            .query_all(
                "SELECT run, account, movement FROM snapshots ORDER BY account, run",
                &[],
                |r| Ok((r.i(0)?, r.i(1)?, r.string(2)?)),
            )
            .unwrap();
        assert_eq!(
            rows,
            vec![
                (1, 1, "new".to_string()),
                (2, 1, "stay".to_string()),
                (1, 2, "stay".to_string())
            ]
        );
        let states = conn
            .query_all(
                "SELECT account, snapshot_run FROM account_state ORDER BY account",
                &[],
                |r| Ok((r.i(0)?, r.i(1)?)),
            )
            .unwrap();
        assert_eq!(states, vec![(1, 2), (2, 1)]);
        let events = conn
            .query_all("SELECT account, type FROM events", &[], |r| {
                Ok((r.i(0)?, r.string(1)?))
            })
            .unwrap();
        assert_eq!(events, vec![(1, "demo".to_string())]);
        conn.execute(
            "INSERT INTO accounts (id, account_id, name, fields, row_hash, import_id)
             VALUES (1, 'A1', 'A1', '{}', ?, 1)",
            &[crate::db::Value::Blob(b"x")],
        )
        .unwrap();
        let at = |store: &mut crate::Store, run| {
            store
                .assessment_at("A1", run)
                .unwrap()
                .map(|a| (a.since_run, a.movement))
        };
        assert_eq!(at(&mut store, 1), Some((1, "new".to_string())));
        assert_eq!(at(&mut store, 3), Some((2, "stay".to_string())));
        assert_eq!(at(&mut store, 0), None);
        // Prune before run 3's as_of: what held at run 2 stays, run 1's row of account 1 goes.
        let p = store.prune(abm_core::Instant(300)).unwrap();
        assert_eq!(
            (
                p.last_run_before,
                p.snapshot_rows_dropped,
                p.snapshot_rows_kept
            ),
            (Some(2), 1, 2)
        );
        assert_eq!(at(&mut store, 1), None, "pruned");
        assert_eq!(at(&mut store, 2), Some((2, "stay".to_string())));
        let p = store.prune(abm_core::Instant(50)).unwrap();
        assert_eq!((p.last_run_before, p.snapshot_rows_dropped), (None, 0));
    }

    #[test]
    fn migration_0004_converts_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abm.db");
        let old = crate::sqlite::Sqlite::open(&path, Duration::from_secs(5)).unwrap();
        converts(
            &path.display().to_string(),
            Box::new(old),
            crate::sqlite::MIGRATIONS,
        );
    }

    #[test]
    #[ignore = "needs PostgreSQL: set ABM_TEST_PG_URL (run by .ci/run)"]
    fn migration_0004_converts_postgres() {
        crate::testing::in_pg_schema("hist", |url| {
            let old = crate::postgres::Postgres::open(url, Duration::from_secs(5)).unwrap();
            converts(url, Box::new(old), crate::postgres::MIGRATIONS);
        });
    }
}
