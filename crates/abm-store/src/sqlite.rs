//! SQLite backend (rusqlite, bundled): one file, WAL, `BEGIN IMMEDIATE` for writers with a busy
//! timeout so a second writer waits instead of failing at once.

use crate::db::{Backend, Batch, Conn, Row, TxMode, Value};
use crate::StoreError;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params_from_iter, Connection, ErrorCode};
use std::path::Path;
use std::time::Duration;

pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_init",
        include_str!("../migrations/sqlite/0001_init.sql"),
    ),
    (
        "0002_waiting",
        include_str!("../migrations/sqlite/0002_waiting.sql"),
    ),
    (
        "0003_stable_signatures",
        include_str!("../migrations/sqlite/0003_stable_signatures.sql"),
    ),
    (
        "0004_change_history",
        include_str!("../migrations/sqlite/0004_change_history.sql"),
    ),
    (
        "0005_api_tokens",
        include_str!("../migrations/sqlite/0005_api_tokens.sql"),
    ),
    (
        "0006_outbox",
        include_str!("../migrations/sqlite/0006_outbox.sql"),
    ),
    (
        "0007_account_lookup",
        include_str!("../migrations/sqlite/0007_account_lookup.sql"),
    ),
    (
        "0008_change_driven_runs",
        include_str!("../migrations/sqlite/0008_change_driven_runs.sql"),
    ),
    (
        "0009_stage_history",
        include_str!("../migrations/sqlite/0009_stage_history.sql"),
    ),
    (
        "0010_segment_versions",
        include_str!("../migrations/sqlite/0010_segment_versions.sql"),
    ),
    (
        "0011_run_transitions",
        include_str!("../migrations/sqlite/0011_run_transitions.sql"),
    ),
    (
        "0012_event_packs",
        include_str!("../migrations/sqlite/0012_event_packs.sql"),
    ),
    (
        "0013_due_index",
        include_str!("../migrations/sqlite/0013_due_index.sql"),
    ),
    (
        "0014_state_list_columns",
        include_str!("../migrations/sqlite/0014_state_list_columns.sql"),
    ),
    (
        "0015_partial_account_index",
        include_str!("../migrations/sqlite/0015_partial_account_index.sql"),
    ),
];

/// The page cache of every connection (`PRAGMA cache_size`: negative is KiB), 128 MiB.
pub(crate) const CACHE_SIZE: i64 = -131072;

pub struct Sqlite {
    conn: Connection,
    lock_timeout: Duration,
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Value::Null => ValueRef::Null,
            Value::Int(v) => ValueRef::Integer(v),
            Value::Real(v) => ValueRef::Real(v),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl Sqlite {
    pub fn open(path: &Path, lock_timeout: Duration) -> Result<Sqlite, StoreError> {
        let conn = Connection::open(path).map_err(|e| StoreError::Open {
            url: path.display().to_string(),
            reason: e.to_string(),
        })?;
        conn.busy_timeout(lock_timeout).map_err(sql_err)?;
        // Every statement shape the store uses stays prepared (rusqlite keeps 16 by default: a
        // re-evaluation alone uses more, and evicting them re-parses each call).
        conn.set_prepared_statement_cache_capacity(256);
        // WAL: readers never block the writer; a killed writer leaves its frames uncommitted.
        // synchronous=NORMAL is safe against process crashes (a power loss may drop the last
        // committed transaction, never corrupt the file).
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA journal_size_limit = 67108864;
             PRAGMA temp_store = MEMORY;",
        )
        .map_err(sql_err)?;
        conn.execute_batch(&format!("PRAGMA cache_size = {CACHE_SIZE}"))
            .map_err(sql_err)?;
        // The query planner stability guarantee: a statement's plan does not depend on the
        // values bound to it. Without it SQLite re-prepares a cached statement on every call
        // whose bound value could change its plan (the account search's LIKE patterns; with
        // STAT4 statistics, ranges too): the statement cache is then no cache at all.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )
        .map_err(sql_err)?;
        Ok(Sqlite { conn, lock_timeout })
    }

    /// `PRAGMA integrity_check` (tests and `abm doctor`-style checks).
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        self.conn
            .query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
            .map_err(sql_err)
    }

    fn busy(&self, e: rusqlite::Error) -> StoreError {
        if let rusqlite::Error::SqliteFailure(f, _) = &e {
            if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) {
                return StoreError::Busy {
                    waited: self.lock_timeout,
                };
            }
        }
        sql_err(e)
    }
}

pub(crate) fn sql_err(e: rusqlite::Error) -> StoreError {
    StoreError::Sqlite(e)
}

struct SqliteRow<'a, 'b>(&'a rusqlite::Row<'b>);

impl Row for SqliteRow<'_, '_> {
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        match self.0.get_ref(i).map_err(sql_err)? {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(v) => Ok(Some(v)),
            ValueRef::Real(v) => Ok(Some(v as i64)),
            other => Err(StoreError::Corrupt(format!(
                "column {i}: expected an integer, found {:?}",
                other.data_type()
            ))),
        }
    }
    fn real(&self, i: usize) -> Result<Option<f64>, StoreError> {
        match self.0.get_ref(i).map_err(sql_err)? {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(v) => Ok(Some(v as f64)),
            ValueRef::Real(v) => Ok(Some(v)),
            other => Err(StoreError::Corrupt(format!(
                "column {i}: expected a number, found {:?}",
                other.data_type()
            ))),
        }
    }
    fn text(&self, i: usize) -> Result<Option<&str>, StoreError> {
        match self.0.get_ref(i).map_err(sql_err)? {
            ValueRef::Null => Ok(None),
            ValueRef::Text(b) => std::str::from_utf8(b)
                .map(Some)
                .map_err(|_| StoreError::Corrupt(format!("column {i}: not UTF-8"))),
            other => Err(StoreError::Corrupt(format!(
                "column {i}: expected text, found {:?}",
                other.data_type()
            ))),
        }
    }
    fn blob(&self, i: usize) -> Result<Option<&[u8]>, StoreError> {
        match self.0.get_ref(i).map_err(sql_err)? {
            ValueRef::Null => Ok(None),
            ValueRef::Blob(b) | ValueRef::Text(b) => Ok(Some(b)),
            other => Err(StoreError::Corrupt(format!(
                "column {i}: expected a blob, found {:?}",
                other.data_type()
            ))),
        }
    }
}

impl Conn for Sqlite {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn begin(&mut self, mode: TxMode) -> Result<(), StoreError> {
        let sql = match mode {
            TxMode::Write => "BEGIN IMMEDIATE",
            TxMode::Read => "BEGIN DEFERRED",
        };
        self.conn.execute_batch(sql).map_err(|e| self.busy(e))
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch("COMMIT").map_err(|e| self.busy(e))
    }

    fn rollback(&mut self) -> Result<(), StoreError> {
        if self.conn.is_autocommit() {
            return Ok(());
        }
        self.conn.execute_batch("ROLLBACK").map_err(sql_err)
    }

    fn batch_execute(&mut self, sql: &str) -> Result<(), StoreError> {
        self.conn.execute_batch(sql).map_err(|e| self.busy(e))
    }

    fn execute(&mut self, sql: &str, params: &[Value<'_>]) -> Result<u64, StoreError> {
        let mut st = self.conn.prepare_cached(sql).map_err(sql_err)?;
        let n = st
            .execute(params_from_iter(params.iter()))
            .map_err(sql_err)?;
        Ok(n as u64)
    }

    fn query_each(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        f: &mut dyn FnMut(&dyn Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut st = self.conn.prepare_cached(sql).map_err(sql_err)?;
        let mut rows = st.query(params_from_iter(params.iter())).map_err(sql_err)?;
        while let Some(r) = rows.next().map_err(sql_err)? {
            f(&SqliteRow(r))?;
        }
        Ok(())
    }

    fn insert_batch(&mut self, into: &str, batch: &Batch, suffix: &str) -> Result<u64, StoreError> {
        if batch.is_empty() {
            return Ok(0);
        }
        let sql = format!(
            "INSERT INTO {into} VALUES ({}) {suffix}",
            vec!["?"; batch.ncols()].join(",")
        );
        let mut st = self.conn.prepare_cached(&sql).map_err(sql_err)?;
        let mut n = 0;
        for r in 0..batch.rows() {
            for c in 0..batch.ncols() {
                st.raw_bind_parameter(c + 1, batch.get(r, c))
                    .map_err(sql_err)?;
            }
            n += st.raw_execute().map_err(sql_err)? as u64;
        }
        Ok(n)
    }

    fn copy_in(&mut self, into: &str, batch: &Batch) -> Result<u64, StoreError> {
        self.insert_batch(into, batch, "")
    }

    fn bytewise(&self) -> &'static str {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::ConnExt;
    use rusqlite::StatementStatus;

    /// How often SQLite re-prepared the cached statement `sql` after running it with each of
    /// `params` in turn.
    fn reprepares(conn: &mut Sqlite, sql: &str, params: &[Vec<Value<'_>>]) -> i32 {
        for p in params {
            conn.query_each(sql, p, &mut |_| Ok(())).unwrap();
        }
        let st = conn.conn.prepare_cached(sql).unwrap();
        st.get_status(StatementStatus::RePrepare)
    }

    #[test]
    fn cached_statements_are_not_prepared_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Sqlite::open(&dir.path().join("t.db"), Duration::from_secs(1)).unwrap();
        crate::migrate::migrate(&mut conn, MIGRATIONS).unwrap();
        for i in 0..200 {
            conn.execute(
                "INSERT INTO accounts (account_id, name, fields, row_hash, import_id) VALUES (?, ?, '{}', x'00', 1)",
                &[Value::Text(&format!("ACC-{i}")), Value::Text(&format!("Name {i}"))],
            )
            .unwrap();
        }
        // The search filter of the account list: a LIKE on a bound pattern, which SQLite
        // re-plans for every new pattern unless the planner's stability guarantee is on.
        let search = "SELECT id FROM accounts a WHERE LOWER(a.account_id) LIKE ? ESCAPE '\\'
                      OR LOWER(a.name) LIKE ? ESCAPE '\\' ORDER BY id LIMIT 50";
        let patterns = ["acc-1%", "%name 2%", "acc-3%", "x%"];
        let params: Vec<Vec<Value<'_>>> = patterns
            .iter()
            .map(|p| vec![Value::Text(p), Value::Text(p)])
            .collect();
        assert_eq!(reprepares(&mut conn, search, &params), 0);
        let by_id = "SELECT id, name FROM accounts WHERE account_id = ?";
        let ids = ["ACC-1", "ACC-77", "ACC-150"];
        let params: Vec<Vec<Value<'_>>> = ids.iter().map(|i| vec![Value::Text(i)]).collect();
        assert_eq!(reprepares(&mut conn, by_id, &params), 0);
        assert_eq!(
            conn.scalar("SELECT COUNT(*) FROM accounts", &[]).unwrap(),
            200
        );
    }
}
