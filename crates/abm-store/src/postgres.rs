//! PostgreSQL backend (sync `postgres` crate, no TLS): writers serialize on one
//! `pg_advisory_xact_lock`; bulk rows go as multi-row `VALUES` statements of up to 1,000 rows.

use crate::db::{numbered_placeholders, values_list, Backend, Batch, Conn, Row, TxMode, Value};
use crate::StoreError;
use bytes::BytesMut;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use postgres::{Client, NoTls, Statement};
use std::collections::HashMap;
use std::error::Error;
use std::io::Write;
use std::time::Duration;

pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_init",
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        "0002_waiting",
        include_str!("../migrations/postgres/0002_waiting.sql"),
    ),
    (
        "0003_stable_signatures",
        include_str!("../migrations/postgres/0003_stable_signatures.sql"),
    ),
    (
        "0004_change_history",
        include_str!("../migrations/postgres/0004_change_history.sql"),
    ),
    (
        "0005_api_tokens",
        include_str!("../migrations/postgres/0005_api_tokens.sql"),
    ),
    (
        "0006_outbox",
        include_str!("../migrations/postgres/0006_outbox.sql"),
    ),
    (
        "0007_account_lookup",
        include_str!("../migrations/postgres/0007_account_lookup.sql"),
    ),
    (
        "0008_change_driven_runs",
        include_str!("../migrations/postgres/0008_change_driven_runs.sql"),
    ),
    (
        "0009_stage_history",
        include_str!("../migrations/postgres/0009_stage_history.sql"),
    ),
    (
        "0010_segment_versions",
        include_str!("../migrations/postgres/0010_segment_versions.sql"),
    ),
    (
        "0011_run_transitions",
        include_str!("../migrations/postgres/0011_run_transitions.sql"),
    ),
    (
        "0012_event_packs",
        include_str!("../migrations/postgres/0012_event_packs.sql"),
    ),
    (
        "0013_due_index",
        include_str!("../migrations/postgres/0013_due_index.sql"),
    ),
    (
        "0014_state_list_columns",
        include_str!("../migrations/postgres/0014_state_list_columns.sql"),
    ),
    (
        "0015_partial_account_index",
        include_str!("../migrations/postgres/0015_partial_account_index.sql"),
    ),
];

/// The key of the advisory lock every writer takes (any constant: "abm" in ASCII).
const WRITER_LOCK: i64 = 0x0061_626d;

pub struct Postgres {
    client: Client,
    stmts: HashMap<String, Statement>,
    lock_timeout: Duration,
}

type BoxErr = Box<dyn Error + Sync + Send>;

impl ToSql for Value<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxErr> {
        match *self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(v)?.to_sql(ty, out),
                Type::FLOAT8 => (v as f64).to_sql(ty, out),
                Type::BOOL => (v != 0).to_sql(ty, out),
                _ => v.to_string().as_str().to_sql(ty, out),
            },
            Value::Real(v) => match *ty {
                Type::FLOAT4 => (v as f32).to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Value::Text(s) => s.to_sql(ty, out),
            Value::Blob(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// Any integer column.
struct AnyInt(i64);

impl<'a> FromSql<'a> for AnyInt {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<AnyInt, BoxErr> {
        Ok(AnyInt(match *ty {
            Type::INT2 => i16::from_sql(ty, raw)? as i64,
            Type::INT4 => i32::from_sql(ty, raw)? as i64,
            Type::FLOAT8 => f64::from_sql(ty, raw)? as i64,
            Type::BOOL => bool::from_sql(ty, raw)? as i64,
            _ => i64::from_sql(ty, raw)?,
        }))
    }
    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT2 | Type::INT4 | Type::INT8 | Type::FLOAT8 | Type::BOOL
        )
    }
}

struct AnyReal(f64);

impl<'a> FromSql<'a> for AnyReal {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<AnyReal, BoxErr> {
        Ok(AnyReal(match *ty {
            Type::INT2 => i16::from_sql(ty, raw)? as f64,
            Type::INT4 => i32::from_sql(ty, raw)? as f64,
            Type::INT8 => i64::from_sql(ty, raw)? as f64,
            Type::FLOAT4 => f32::from_sql(ty, raw)? as f64,
            _ => f64::from_sql(ty, raw)?,
        }))
    }
    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT2 | Type::INT4 | Type::INT8 | Type::FLOAT4 | Type::FLOAT8
        )
    }
}

/// What went wrong, in the server's words when it answered (`postgres::Error` alone says
/// only "db error"), else the error with its causes ("error connecting to server: Connection
/// refused"). The server's messages never hold the password.
pub(crate) fn reason(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        );
        if let Some(d) = db.detail() {
            s.push_str(&format!("; {d}"));
        }
        if let Some(h) = db.hint() {
            s.push_str(&format!("; hint: {h}"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let c_text = c.to_string();
        if !s.contains(&c_text) {
            s.push_str(&format!(": {c_text}"));
        }
        cause = c.source();
    }
    s
}

fn pg_err(e: postgres::Error) -> StoreError {
    StoreError::Postgres(e)
}

impl Postgres {
    pub fn open(url: &str, lock_timeout: Duration) -> Result<Postgres, StoreError> {
        let (driver_url, mode, root) = crate::tls::split_url(url)?;
        let opened = match mode {
            crate::tls::SslMode::Disable => Client::connect(&driver_url, NoTls),
            _ => {
                let config =
                    crate::tls::client_config(mode, root.as_deref()).map_err(|reason| {
                        StoreError::Open {
                            url: crate::redact(url),
                            reason,
                        }
                    })?;
                Client::connect(
                    &driver_url,
                    tokio_postgres_rustls::MakeRustlsConnect::new(config),
                )
            }
        };
        let mut client = opened.map_err(|e| StoreError::Open {
            url: crate::redact(url),
            reason: reason(&e),
        })?;
        // No JIT compilation: the store's statements read a few rows by index, but a prepared
        // statement's generic plan can be costed high enough (an estimate, not what it reads)
        // to be compiled at every execution: 20–30 ms for one account's newer events at 1M
        // accounts where the read itself takes well under 1 ms. (A server without JIT, before
        // PostgreSQL 11, refuses the setting: nothing to turn off then.)
        let _ = client.batch_execute("SET jit = off");
        Ok(Postgres {
            client,
            stmts: HashMap::new(),
            lock_timeout,
        })
    }

    fn stmt(&mut self, sql: &str) -> Result<Statement, StoreError> {
        if let Some(s) = self.stmts.get(sql) {
            return Ok(s.clone());
        }
        let s = self
            .client
            .prepare(&numbered_placeholders(sql))
            .map_err(pg_err)?;
        self.stmts.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    fn busy(&self, e: postgres::Error) -> StoreError {
        if e.code() == Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
            return StoreError::Busy {
                waited: self.lock_timeout,
            };
        }
        pg_err(e)
    }
}

struct PgRow<'a>(&'a postgres::Row);

impl Row for PgRow<'_> {
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        Ok(self
            .0
            .try_get::<_, Option<AnyInt>>(i)
            .map_err(pg_err)?
            .map(|v| v.0))
    }
    fn real(&self, i: usize) -> Result<Option<f64>, StoreError> {
        Ok(self
            .0
            .try_get::<_, Option<AnyReal>>(i)
            .map_err(pg_err)?
            .map(|v| v.0))
    }
    fn text(&self, i: usize) -> Result<Option<&str>, StoreError> {
        self.0.try_get::<_, Option<&str>>(i).map_err(pg_err)
    }
    fn blob(&self, i: usize) -> Result<Option<&[u8]>, StoreError> {
        self.0.try_get::<_, Option<&[u8]>>(i).map_err(pg_err)
    }
}

impl Conn for Postgres {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn begin(&mut self, mode: TxMode) -> Result<(), StoreError> {
        match mode {
            TxMode::Write => {
                let ms = self.lock_timeout.as_millis().max(1);
                self.client.batch_execute("BEGIN").map_err(pg_err)?;
                self.client
                    .batch_execute(&format!(
                        "SET LOCAL lock_timeout = '{ms}ms'; SELECT pg_advisory_xact_lock({WRITER_LOCK});"
                    ))
                    .map_err(|e| {
                        let err = self.busy(e);
                        let _ = self.client.batch_execute("ROLLBACK");
                        err
                    })
            }
            TxMode::Read => self
                .client
                .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .map_err(pg_err),
        }
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.client.batch_execute("COMMIT").map_err(pg_err)
    }

    fn rollback(&mut self) -> Result<(), StoreError> {
        self.client.batch_execute("ROLLBACK").map_err(pg_err)
    }

    fn batch_execute(&mut self, sql: &str) -> Result<(), StoreError> {
        self.client.batch_execute(sql).map_err(pg_err)
    }

    fn execute(&mut self, sql: &str, params: &[Value<'_>]) -> Result<u64, StoreError> {
        let st = self.stmt(sql)?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|v| v as _).collect();
        self.client.execute(&st, &refs).map_err(pg_err)
    }

    fn query_each(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        f: &mut dyn FnMut(&dyn Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let st = self.stmt(sql)?;
        let mut rows = self.client.query_raw(&st, params.iter()).map_err(pg_err)?;
        while let Some(r) = rows.next().map_err(pg_err)? {
            f(&PgRow(&r))?;
        }
        Ok(())
    }

    fn insert_batch(&mut self, into: &str, batch: &Batch, suffix: &str) -> Result<u64, StoreError> {
        let per = (60_000 / batch.ncols()).clamp(1, 1000);
        let mut n = 0;
        let mut from = 0;
        while from < batch.rows() {
            let to = (from + per).min(batch.rows());
            let sql = format!(
                "INSERT INTO {into} VALUES {} {suffix}",
                values_list(batch.ncols(), to - from)
            );
            let vals = batch.values(from, to);
            let refs: Vec<&(dyn ToSql + Sync)> = vals.iter().map(|v| v as _).collect();
            n += if to - from == per {
                // Full chunks reuse one prepared statement; the last, shorter one is one-off.
                let st = self.stmt(&sql)?;
                self.client.execute(&st, &refs)
            } else {
                self.client
                    .execute(numbered_placeholders(&sql).as_str(), &refs)
            }
            .map_err(pg_err)?;
            from = to;
        }
        Ok(n)
    }

    fn copy_in(&mut self, into: &str, batch: &Batch) -> Result<u64, StoreError> {
        if batch.is_empty() {
            return Ok(0);
        }
        let (table, cols) = into
            .split_once('(')
            .and_then(|(t, c)| Some((t.trim(), c.trim().strip_suffix(')')?)))
            .ok_or_else(|| StoreError::Corrupt(format!("copy_in target {into:?}")))?;
        // The columns' types, as the server has them (a prepared statement is never run).
        let types: Vec<Type> = self
            .stmt(&format!("SELECT {cols} FROM {table}"))?
            .columns()
            .iter()
            .map(|c| c.type_().clone())
            .collect();
        if types.len() != batch.ncols() {
            return Err(StoreError::Corrupt(format!(
                "copy_in into {table}: {} columns for {} values",
                types.len(),
                batch.ncols()
            )));
        }
        let mut writer = self
            .client
            .copy_in(&format!("COPY {table} ({cols}) FROM STDIN (FORMAT binary)"))
            .map_err(pg_err)?;
        // The binary COPY format: signature, flags, header extension; per row the field
        // count, then per field its length (-1: NULL) and its bytes in the type's binary form.
        let mut buf = BytesMut::with_capacity(1 << 20);
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0i32.to_be_bytes());
        buf.extend_from_slice(&0i32.to_be_bytes());
        let ncols = i16::try_from(batch.ncols())
            .map_err(|_| StoreError::Corrupt(format!("copy_in into {table}: too many columns")))?;
        let io = |e: std::io::Error| StoreError::Corrupt(format!("COPY into {table}: {e}"));
        for r in 0..batch.rows() {
            buf.extend_from_slice(&ncols.to_be_bytes());
            for (c, ty) in types.iter().enumerate() {
                let at = buf.len();
                buf.extend_from_slice(&[0; 4]);
                let len = match batch
                    .get(r, c)
                    .to_sql(ty, &mut buf)
                    .map_err(|e| StoreError::Corrupt(format!("COPY into {table}: {e}")))?
                {
                    IsNull::Yes => -1,
                    IsNull::No => i32::try_from(buf.len() - at - 4).map_err(|_| {
                        StoreError::Corrupt(format!("COPY into {table}: value over 2 GiB"))
                    })?,
                };
                buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
            }
            if buf.len() >= 1 << 20 {
                writer.write_all(&buf).map_err(io)?;
                buf.clear();
            }
        }
        buf.extend_from_slice(&(-1i16).to_be_bytes());
        writer.write_all(&buf).map_err(io)?;
        writer.finish().map_err(pg_err)
    }

    fn bytewise(&self) -> &'static str {
        " COLLATE \"C\""
    }
}
