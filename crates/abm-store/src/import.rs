//! `abm import`: accounts upserted by `account_id`, events and triggers appended idempotently
//! (event identity = `event_id` when given, else a hash of the content; triggers by content
//! hash), deals upserted by `deal_id`. All in one transaction; rows that fail validation are
//! kept as [`Rejection`]s and never abort the others (unless `--strict`).

use crate::db::{Backend, Batch, Conn, ConnExt, RowExt, TxMode, Value};
use crate::{ident, meta, set_meta, StoreError, Tx};
use abm_core::engagement::StageEntry;
use abm_core::{Instant, Rules};
use abm_io::csv::Record;
use abm_io::load::{
    duplicate_deal, field, parse_deal, parse_event, parse_trigger, reject, scan_handoff, scan_seq,
    AccountLayout, EventCols, IdIndex, LoadOptions, Rejects,
};
use abm_io::source::{InputSource, Source};
use abm_io::FileKind;
use serde::Serialize;
use std::collections::HashSet;
use std::hash::BuildHasherDefault;

/// Rows per bulk statement.
const BATCH_ROWS: usize = 2000;
/// Rows per `COPY` into a staging table.
const STAGE_ROWS: usize = 50_000;
/// Hashes a key that is already a hash (16 bytes of SHA-256): its low 64 bits.
#[derive(Default)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

/// The fewest staged rows merged by rebuilding the target's unique index (tests lower it).
static REBUILD_MIN_ROWS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(50_000);

/// The fewest rows a PostgreSQL import stages into one table before it merges them by
/// rebuilding the table's unique index (default 50,000; `ABM_IMPORT_REBUILD_MIN_ROWS`, for
/// tests of that path on small data).
pub fn set_rebuild_min_rows(rows: u64) {
    REBUILD_MIN_ROWS.store(rows, std::sync::atomic::Ordering::Relaxed);
}

/// The inputs of one import: files, or records already in memory ([`InputSource::Memory`]:
/// an API batch, a CRM page), validated and rejected row by row the same way.
#[derive(Debug, Clone, Default)]
pub struct ImportInputs {
    /// `None`: no accounts this time (events only, deals only, …): accounts are the
    /// store's, and rows naming an account not imported yet wait for it.
    pub accounts: Option<InputSource>,
    pub engagement: Option<InputSource>,
    /// More engagement inputs, each with its own mapping (`[columns.files.STEM]`).
    pub more_engagement: Vec<InputSource>,
    pub triggers: Option<InputSource>,
    pub deals: Option<InputSource>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub import_id: i64,
    pub accounts_read: u64,
    /// New or changed accounts.
    pub accounts_changed: u64,
    pub events_read: u64,
    /// Events not already stored.
    pub events_added: u64,
    pub triggers_read: u64,
    pub triggers_added: u64,
    pub deals_read: u64,
    pub deals_changed: u64,
    /// Rows of this import that name an account not imported yet: kept, waiting for it
    /// (per file kind; accepted rows, like the `*_added` ones).
    pub events_waiting: u64,
    pub triggers_waiting: u64,
    pub deals_waiting: u64,
    /// Waiting rows new to the database (a row already waiting is not added twice).
    pub waiting_added: u64,
    /// Waiting rows (of any import) whose account arrived: moved in by this import.
    pub waiting_resolved: u64,
    pub rejected: u64,
    /// `meta.data_version` after the import (unchanged when nothing was new).
    pub data_version: i64,
    #[serde(skip)]
    pub rejects: Rejects,
}

impl ImportReport {
    pub fn changed_anything(&self) -> bool {
        self.accounts_changed
            + self.events_added
            + self.triggers_added
            + self.deals_changed
            + self.waiting_added
            > 0
    }
}

/// The index a row of an import resolves its account in: the stored accounts, or, when the
/// row names an account not stored yet, a stand-in index holding that id (the row is checked
/// as if its account were there and kept waiting until it is). The flag says it waits.
fn account_index<'a>(
    index: &'a IdIndex,
    unknown: &'a mut IdIndex,
    key: &[u8],
) -> (&'a IdIndex, bool) {
    if key.is_empty() || index.get_listed(key).is_some() {
        return (index, false);
    }
    let _ = unknown.insert(key, 0);
    (unknown, true)
}

fn nonempty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// Collects rows and flushes them in bulk; a database error stops the scan and is kept.
///
/// On PostgreSQL the rows are staged: each flush is one `COPY … FROM STDIN (FORMAT binary)` into
/// a temporary table, and [`Sink::finish`] merges it into the target with one set-based
/// `INSERT … SELECT … {suffix}` (the same conflict rule, so the same idempotency and counts).
/// Within one file the first of two rows with the same key wins, as with row-by-row inserts: the
/// merge reads the staging table in the order it was written (a temporary table, written by
/// one COPY after another, is scanned in insertion order; PostgreSQL never scans it in
/// parallel). On SQLite the rows go straight into the target through one prepared statement.
struct Sink {
    table: &'static str,
    cols: &'static str,
    suffix: &'static str,
    /// The staging table, once created, and the rows copied into it.
    stage: Option<String>,
    staged_rows: u64,
    /// A first load (see [`Sink::prepare`]): the constraint to build again at the end.
    rebuild: Option<String>,
    /// The key of an upsert whose rows the caller has made distinct (see
    /// [`Sink::distinct_rows`]).
    distinct_key: Option<&'static str>,
    /// `events` on SQLite: the bound its identity index is split at ([`IdentitySplit`]).
    split: Option<IdentitySplit>,
    /// The rows collected and not written yet (lent to the thread that reads the input:
    /// [`Sink::lend_rows`]).
    rows: SinkRows,
    affected: u64,
    error: Option<StoreError>,
}

/// The rows a [`Sink`] collects before it writes them: built by whichever thread reads the
/// input (the one holding the transaction, or the reader of [`scan_handoff`]).
struct SinkRows {
    ncols: usize,
    /// The most rows, then bytes, a batch collects before it is written.
    limit: (usize, usize),
    /// A first load: the low 64 bits of the keys written so far.
    seen: Option<HashSet<u64, BuildHasherDefault<KeyHasher>>>,
    /// First load: rows whose key's low 64 bits were seen already — a repeat of a written row,
    /// or (about once in 10^5 loads of 20M rows) another key sharing them. They go in after
    /// the unique index is built, with the sink's `DO NOTHING`: a repeat adds nothing, a
    /// distinct key is stored (after the others, so with a later row id).
    held: Batch,
    /// Whether the last row asked for ([`SinkRows::row`]) was held.
    last_held: bool,
    batch: Batch,
}

impl SinkRows {
    /// The batch a row with this key (the row's first column) is to be written to: the
    /// batch — but in a first load, the first row of a key's low 64 bits goes there and later
    /// ones are held for the end (see `held`). Memory: 8 bytes (plus the set's slack) a row.
    fn row(&mut self, key: &[u8; 16]) -> &mut Batch {
        let repeat = match &mut self.seen {
            Some(seen) => !seen.insert(u128::from_le_bytes(*key) as u64),
            None => false,
        };
        self.last_held = repeat;
        if repeat {
            &mut self.held
        } else {
            &mut self.batch
        }
    }

    /// The batch when it is full (to be written), leaving an empty one.
    fn take_full(&mut self) -> Option<Batch> {
        let (rows, bytes) = self.limit;
        (self.batch.rows() >= rows || self.batch.weight() > bytes)
            .then(|| std::mem::replace(&mut self.batch, Batch::new(self.ncols)))
    }
}

impl Sink {
    /// `into` is `table (col, …)`.
    fn new(into: &'static str, ncols: usize, suffix: &'static str) -> Sink {
        let (table, cols) = into
            .split_once('(')
            .map(|(t, c)| (t.trim(), c.trim().trim_end_matches(')')))
            .expect("a sink names `table (col, …)`");
        Sink {
            table,
            cols,
            suffix,
            stage: None,
            staged_rows: 0,
            rebuild: None,
            distinct_key: None,
            split: None,
            rows: SinkRows {
                ncols,
                limit: (BATCH_ROWS, 8 << 20),
                seen: None,
                held: Batch::new(ncols),
                last_held: false,
                batch: Batch::new(ncols),
            },
            affected: 0,
            error: None,
        }
    }

    fn staged(conn: &dyn Conn) -> bool {
        conn.backend() == Backend::Postgres
    }

    /// A `DO NOTHING` sink into an empty table is a first load: the table's unique index is
    /// dropped, rows are copied straight into it, keeping the first of each key (the keys
    /// written are remembered here: 16 bytes a row), and the index is built again from sorted
    /// keys at the end — load speed, same rows and counts as row-by-row inserts. (PostgreSQL:
    /// the `UNIQUE` constraint `{table}_{key}_key`; SQLite: the index `{table}_{key}`.)
    ///
    /// Only for a file (`bulk`): an in-memory batch is small, and dropping and creating an
    /// index changes the schema, which expires every statement the connection has prepared
    /// (a server's next requests would prepare them all again).
    fn prepare(&mut self, conn: &mut dyn Conn, bulk: bool) -> Result<(), StoreError> {
        if Self::staged(conn) {
            self.rows.limit.0 = STAGE_ROWS;
        }
        if !bulk {
            return Ok(());
        }
        let table = self.table;
        let empty = |conn: &mut dyn Conn| -> Result<bool, StoreError> {
            Ok(conn.scalar(
                &format!("SELECT CAST(COUNT(*) AS BIGINT) FROM (SELECT 1 FROM {table} LIMIT 1) x"),
                &[],
            )? == 0)
        };
        if let (Some(key), true) = (self.distinct_key, Self::staged(conn)) {
            // An upsert of distinct keys into an empty table inserts every row as it comes:
            // copied straight in, the unique constraint built again at the end (PostgreSQL;
            // SQLite's inline `UNIQUE` cannot be dropped, and its inserts are direct anyway).
            if empty(conn)? {
                let c = format!("{table}_{key}_key");
                conn.batch_execute(&format!("ALTER TABLE {table} DROP CONSTRAINT {c}"))?;
                self.rebuild = Some(format!(
                    "SET LOCAL maintenance_work_mem = '512MB';
                     ALTER TABLE {table} ADD CONSTRAINT {c} UNIQUE ({key})"
                ));
            }
            return Ok(());
        }
        let Some(key) = self.do_nothing_key() else {
            return Ok(());
        };
        if empty(conn)? {
            let (drop, add) = if Self::staged(conn) {
                let c = format!("{table}_{key}_key");
                (
                    format!("ALTER TABLE {table} DROP CONSTRAINT {c}"),
                    format!(
                        "SET LOCAL maintenance_work_mem = '512MB';
                         ALTER TABLE {table} ADD CONSTRAINT {c} UNIQUE ({key})"
                    ),
                )
            } else {
                (
                    format!("DROP INDEX {table}_{key}"),
                    format!("CREATE UNIQUE INDEX {table}_{key} ON {table} ({key})"),
                )
            };
            // The index by account (migration 0007) too: maintained row by row it is a random
            // insert per row (the files are in no account order); built once from sorted keys
            // at the end, it costs a sort.
            // For events, over the rows above the load's only (migration 0015: a read by
            // account takes the packed events from the packs this load writes): the bound
            // is filled in at the end ([`Sink::finish`]).
            // SQLite: the identity index split at the same bound (see [`IdentitySplit`]), and
            // the index by account covering what a read of an account's newer events takes
            // (`packs::newer_events_of_account`): a read by index alone, no lookup of each row
            // in the 20M-row table (a server's re-evaluation of a batch's accounts).
            let add = match (self.table, Self::staged(conn)) {
                ("events", false) => IdentitySplit::create(),
                _ => add,
            };
            let by_account = crate::packs::events_account_columns(conn.backend());
            let (drop, add) = match self.table {
                "events" => (
                    format!(
                        "{drop}; DROP INDEX IF EXISTS {}; DROP INDEX {table}_account",
                        IdentitySplit::INDEX
                    ),
                    format!(
                        "{add}; CREATE INDEX {table}_account ON {table} ({by_account}) WHERE id > {TAIL_FROM}"
                    ),
                ),
                "triggers" => (
                    format!("{drop}; DROP INDEX {table}_account"),
                    format!("{add}; CREATE INDEX {table}_account ON {table} (account)"),
                ),
                _ => (drop, add),
            };
            conn.batch_execute(&drop)?;
            self.rows.seen = Some(HashSet::default());
            self.rebuild = Some(add);
        }
        Ok(())
    }

    /// The rows this sink is given have distinct values of `key` (the caller rejects
    /// repeats), so a load into an empty table may skip the upsert: see [`Sink::prepare`].
    fn distinct_rows(mut self, key: &'static str) -> Sink {
        self.distinct_key = Some(key);
        self
    }

    /// A first load: room for about `rows` keys at once (a set grown by doubling holds the old
    /// table and the new one for a moment: +50% of the peak at 20M keys).
    fn expect_rows(&mut self, rows: u64) {
        if let Some(seen) = &mut self.rows.seen {
            seen.reserve(usize::try_from(rows).unwrap_or(0));
        }
    }

    /// A first load (its unique index dropped until the end).
    fn direct(&self) -> bool {
        self.rebuild.is_some()
    }

    /// See [`SinkRows::row`].
    fn row(&mut self, key: &[u8; 16]) -> &mut Batch {
        self.rows.row(key)
    }

    /// The rows, to be built on another thread while this one writes the batches it hands
    /// back ([`Sink::write`]); [`Sink::finish`] takes them back.
    fn lend_rows(&mut self) -> SinkRows {
        let empty = SinkRows {
            ncols: self.rows.ncols,
            limit: self.rows.limit,
            seen: None,
            held: Batch::new(0),
            last_held: false,
            batch: Batch::new(0),
        };
        std::mem::replace(&mut self.rows, empty)
    }

    fn maybe_flush(&mut self, conn: &mut dyn Conn) {
        if let Some(batch) = self.rows.take_full() {
            self.write(conn, batch);
        }
    }

    /// Writes a batch of this sink's rows (after an error: drops it).
    fn write(&mut self, conn: &mut dyn Conn, batch: Batch) {
        if self.error.is_some() || batch.is_empty() {
            return;
        }
        let done = if self.direct() {
            conn.copy_in(&format!("{} ({})", self.table, self.cols), &batch)
                .map(|n| self.affected += n)
        } else if Self::staged(conn) {
            self.copy_to_stage(conn, &batch)
        } else {
            self.insert(conn, &batch).map(|n| self.affected += n)
        };
        if let Err(e) = done {
            self.error = Some(e);
        }
    }

    /// `INSERT … {suffix}` of `batch`, row by row (SQLite); once the target's identity index
    /// is split ([`IdentitySplit`]), without the rows whose key is stored below the bound and
    /// with the conflict rule of the index above it.
    fn insert(&self, conn: &mut dyn Conn, batch: &Batch) -> Result<u64, StoreError> {
        let into = format!("{} ({})", self.table, self.cols);
        let Some(split) = self.split else {
            return conn.insert_batch(&into, batch, self.suffix);
        };
        let stored = split.stored_below(conn, batch)?;
        let kept;
        let rows = if stored.iter().any(|&s| s) {
            kept = batch.retain(|r| !stored[r]);
            &kept
        } else {
            batch
        };
        conn.insert_batch(&into, rows, &split.conflict())
    }

    fn copy_to_stage(&mut self, conn: &mut dyn Conn, batch: &Batch) -> Result<(), StoreError> {
        let stage = match &self.stage {
            Some(s) => s.clone(),
            None => {
                let stage = format!("abm_stage_{}", self.table);
                conn.batch_execute(&format!(
                    "CREATE TEMPORARY TABLE {stage} ON COMMIT DROP AS
                     SELECT {} FROM {} WITH NO DATA",
                    self.cols, self.table
                ))?;
                self.stage = Some(stage.clone());
                stage
            }
        };
        self.staged_rows += conn.copy_in(&format!("{stage} ({})", self.cols), batch)?;
        Ok(())
    }

    /// The key of an `ON CONFLICT (key) DO NOTHING` sink.
    fn do_nothing_key(&self) -> Option<&'static str> {
        self.suffix
            .strip_prefix("ON CONFLICT (")?
            .strip_suffix(") DO NOTHING")
    }

    /// Whether merging the staged rows is cheaper by rebuilding the target's unique index
    /// than by inserting into it row by row: a bulk load (at least [`REBUILD_MIN_ROWS`] rows and
    /// a quarter of the rows the target has, by the planner's estimate, or counted when the
    /// table was never analyzed).
    fn rebuild_pays(&self, conn: &mut dyn Conn) -> Result<bool, StoreError> {
        let min = REBUILD_MIN_ROWS.load(std::sync::atomic::Ordering::Relaxed);
        if self.staged_rows < min {
            return Ok(false);
        }
        let table = self.table;
        let estimate = conn.scalar(
            "SELECT CAST(reltuples AS BIGINT) FROM pg_class
             WHERE oid = CAST(CAST(? AS TEXT) AS regclass)",
            &[Value::Text(table)],
        )?;
        let target = if estimate >= 0 {
            estimate as u64
        } else {
            // Never analyzed: counted (this is a load of at least REBUILD_MIN_ROWS rows).
            conn.scalar(
                &format!("SELECT CAST(COUNT(*) AS BIGINT) FROM {table}"),
                &[],
            )? as u64
        };
        Ok(self.staged_rows.saturating_mul(4) >= target)
    }

    /// The bulk merge of a `DO NOTHING` sink: the target's unique index is dropped, the staged
    /// rows not already stored go in (the first of each key in the order they were staged:
    /// `ctid` order of a temporary table only ever appended to), and the index is built again
    /// from sorted keys — which fails, rolling the import back, rather than ever keep a
    /// duplicate.
    fn merge_rebuilding(
        &self,
        conn: &mut dyn Conn,
        stage: &str,
        key: &str,
    ) -> Result<u64, StoreError> {
        let (table, cols) = (self.table, self.cols);
        let constraint = format!("{table}_{key}_key");
        conn.batch_execute(&format!(
            "ALTER TABLE {table} DROP CONSTRAINT {constraint}; SET LOCAL work_mem = '256MB'"
        ))?;
        let n = conn.execute(
            &format!(
                "INSERT INTO {table} ({cols})
                 SELECT DISTINCT ON (s.{key}) {s_cols} FROM {stage} s
                 WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE t.{key} = s.{key})
                 ORDER BY s.{key}, s.ctid",
                s_cols = cols
                    .split(',')
                    .map(|c| format!("s.{}", c.trim()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            &[],
        )?;
        conn.batch_execute(&format!(
            "SET LOCAL maintenance_work_mem = '512MB';
             ALTER TABLE {table} ADD CONSTRAINT {constraint} UNIQUE ({key})"
        ))?;
        Ok(n)
    }

    /// Writes what is left and ends the load (`rows`: the rows lent out, if they were).
    fn finish(mut self, conn: &mut dyn Conn, rows: Option<SinkRows>) -> Result<u64, StoreError> {
        if let Some(rows) = rows {
            self.rows = rows;
        }
        let last = std::mem::replace(&mut self.rows.batch, Batch::new(0));
        self.write(conn, last);
        if let Some(e) = self.error {
            return Err(e);
        }
        if let Some(mut add_index) = self.rebuild.take() {
            self.rows.seen = None;
            if add_index.contains(TAIL_FROM) {
                // The events of a first load are all packed by the end of its import (every
                // event with an id up to `packs_upto` is), so the index by account need only
                // hold the ones after them.
                let from = conn.scalar(
                    &format!(
                        "SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM {}",
                        self.table
                    ),
                    &[],
                )?;
                add_index = add_index.replace(TAIL_FROM, &from.to_string());
                set_meta(conn, "events_account_from", from)?;
            }
            build_indexes(conn, &add_index)?;
            if add_index.contains(IdentitySplit::INDEX) {
                self.split = Some(IdentitySplit::read(conn)?);
            }
            if !self.rows.held.is_empty() {
                let held = std::mem::replace(&mut self.rows.held, Batch::new(0));
                self.affected += self.insert(conn, &held)?;
            }
            return Ok(self.affected);
        }
        if let Some(stage) = &self.stage {
            if let Some(key) = self.do_nothing_key() {
                if self.rebuild_pays(conn)? {
                    self.affected += self.merge_rebuilding(conn, stage, key)?;
                    conn.batch_execute(&format!("DROP TABLE {stage}"))?;
                    return Ok(self.affected);
                }
            }
            self.affected += conn.execute(
                &format!(
                    "INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage} WHERE true {suffix}",
                    table = self.table,
                    cols = self.cols,
                    suffix = self.suffix
                ),
                &[],
            )?;
            conn.batch_execute(&format!("DROP TABLE {stage}"))?;
        }
        Ok(self.affected)
    }
}

/// Where a first load's partial indexes on `events` take their bound (the greatest event id
/// it loaded), filled in when they are built: `events_account`, and on SQLite the two halves of
/// the identity index ([`IdentitySplit`]).
pub(crate) const TAIL_FROM: &str = "{events_account_from}";

/// SQLite, `events` after a first load: the identity index is split at the load's bound N
/// (`meta.events_account_from`, as `events_account`): `events_ident` holds the keys of the
/// events up to N and never changes again (ids only grow); `events_ident_tail`, unique too,
/// the keys of the later ones. An insert first drops the rows whose key is stored up to N (a
/// read of the unchanging index) and lets `ON CONFLICT (ident) WHERE id > N` catch repeats
/// among the later ones: the same rows kept and counts as with one unique index, but a new
/// event dirties a page of a small, hot index instead of a random one of a 20M-key index (a
/// server's 1,000-event batch: 1,000 random pages; bench/README.md). A database loaded before
/// keeps its one index over every key: its `WHERE id > N` conflict target is that index, and
/// the probe below N reads it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IdentitySplit {
    bound: i64,
}

impl IdentitySplit {
    /// The index over the keys above the bound.
    pub(crate) const INDEX: &'static str = "events_ident_tail";
    /// A first load's identity indexes ([`TAIL_FROM`] filled in at the end).
    pub(crate) fn create() -> String {
        format!(
            "CREATE UNIQUE INDEX events_ident ON events (ident) WHERE id <= {TAIL_FROM};
             CREATE UNIQUE INDEX {} ON events (ident) WHERE id > {TAIL_FROM}",
            Self::INDEX
        )
    }

    /// The split of the store `conn` opens (SQLite; `None` on PostgreSQL).
    pub(crate) fn of(conn: &mut dyn Conn) -> Result<Option<IdentitySplit>, StoreError> {
        if conn.backend() != Backend::Sqlite {
            return Ok(None);
        }
        Self::read(conn).map(Some)
    }

    fn read(conn: &mut dyn Conn) -> Result<IdentitySplit, StoreError> {
        Ok(IdentitySplit {
            bound: crate::packs::events_account_from(conn)?,
        })
    }

    /// The conflict rule of an insert into `events`.
    pub(crate) fn conflict(&self) -> String {
        format!("ON CONFLICT (ident) WHERE id > {} DO NOTHING", self.bound)
    }

    /// A condition on `{alias}.ident` that holds when no event up to the bound has that key
    /// (`TRUE` when the bound is 0).
    pub(crate) fn not_stored_below(&self, alias: &str) -> String {
        if self.bound == 0 {
            return "true".into();
        }
        format!(
            "NOT EXISTS (SELECT 1 FROM events e WHERE e.ident = {alias}.ident AND e.id <= {})",
            self.bound
        )
    }

    /// For each row of `batch` (its key, a blob, first), whether an event up to the bound has
    /// that key (the bound a literal: the planner uses a partial index only for a query that
    /// implies its condition).
    fn stored_below(&self, conn: &mut dyn Conn, batch: &Batch) -> Result<Vec<bool>, StoreError> {
        let mut stored = vec![false; batch.rows()];
        if self.bound == 0 {
            return Ok(stored);
        }
        let sql = format!(
            "SELECT 1 FROM events WHERE ident = ? AND id <= {}",
            self.bound
        );
        for (r, s) in stored.iter_mut().enumerate() {
            *s = conn
                .query_one(&sql, &[batch.get(r, 0)], |_| Ok(()))?
                .is_some();
        }
        Ok(stored)
    }
}

/// The page cache while [`build_indexes`] runs (KiB, as `PRAGMA cache_size` takes it negated).
/// It also sizes the sorter's in-memory runs, which SQLite sorts as linked lists: runs that fit
/// the CPU's caches sort faster than fewer, larger ones, more runs to merge included. At 1M
/// accounts (20M events, `sqlite3` alternating settings on one file) `events_ident` 15.3 → 12.0
/// s and `events_account` 12.7 → 7.7 s going from 16 MiB to 2 MiB; 64 and 256 MiB slower still.
const INDEX_BUILD_CACHE_KIB: i64 = 2048;

/// Builds a first load's indexes (`sql`). On SQLite the sorter may use a helper thread for
/// the build and a small page cache (the sort spills to temporary files, not to memory: see
/// `import`; [`INDEX_BUILD_CACHE_KIB`]); the connection's cache size is restored afterwards.
pub(crate) fn build_indexes(conn: &mut dyn Conn, sql: &str) -> Result<(), StoreError> {
    if conn.backend() != Backend::Sqlite {
        return conn.batch_execute(sql);
    }
    // The cache as it was (a first load outside WAL runs with a smaller one: `journal`).
    let cache = conn.scalar("PRAGMA cache_size", &[])?;
    conn.batch_execute(&format!(
        "PRAGMA threads = 2; PRAGMA cache_size = -{INDEX_BUILD_CACHE_KIB}"
    ))?;
    let built = conn.batch_execute(sql);
    let restored = conn.batch_execute(&format!("PRAGMA threads = 0; PRAGMA cache_size = {cache}"));
    built.and(restored)
}

/// A JSON object of `(column, value)` pairs in column order.
fn fields_json(names: &[String], values: &[&str]) -> String {
    struct Obj<'a>(&'a [String], &'a [&'a str]);
    impl Serialize for Obj<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map(self.0.iter().zip(self.1.iter()))
        }
    }
    serde_json::to_string(&Obj(names, values)).expect("strings serialize")
}

/// What runs after every row is written and before the commit; an error rolls the import back.
pub type BeforeCommit<'a> = &'a mut dyn FnMut(&Rejects) -> Result<(), StoreError>;

impl ImportInputs {
    /// Whether any input is a file (a bulk load) rather than an in-memory batch.
    pub fn has_files(&self) -> bool {
        [
            &self.accounts,
            &self.engagement,
            &self.triggers,
            &self.deals,
        ]
        .into_iter()
        .flatten()
        .chain(&self.more_engagement)
        .any(bulk)
    }
}

/// Whether an input is a file (a bulk load) rather than an in-memory batch.
fn bulk(input: &InputSource) -> bool {
    matches!(input, InputSource::File(_))
}

pub(crate) fn import(
    conn: &mut dyn Conn,
    inputs: &ImportInputs,
    opts: &LoadOptions<'_>,
    before_commit: BeforeCommit<'_>,
) -> Result<ImportReport, StoreError> {
    // SQLite: a bulk load sorts millions of keys to build its indexes; with temporary storage
    // in memory (the connection's default, right for queries) that sort is held in RAM. During
    // an import it spills to temporary files instead (best effort: the setting can only change
    // outside a transaction). Only for files: changing the setting drops the connection's
    // temporary tables and expires every prepared statement, which would cost a server's
    // small in-memory batches more than the whole import.
    let files = inputs.has_files();
    let sqlite = files && conn.backend() == Backend::Sqlite;
    let mut journal = false;
    if sqlite {
        let _ = conn.batch_execute("PRAGMA temp_store = FILE");
        journal = first_load_journal(conn);
    }
    let done = import_in_tx(conn, inputs, opts, before_commit);
    if sqlite {
        let _ = conn.batch_execute("PRAGMA temp_store = MEMORY");
    }
    if journal {
        // Back to WAL whatever happened: a failed import was rolled back from the journal.
        let back = crate::journal::back_to_wal(conn);
        if let (Ok(_), Err(e)) = (&done, back) {
            return Err(e);
        }
    }
    done
}

/// SQLite, a load of files into a database with no events yet: the transaction runs in
/// rollback-journal mode instead of WAL (`journal`): at 1M accounts 3 GB written once instead
/// of twice (into the log, then by the checkpoint when the connection closes: a sixth of the
/// import's time). A smaller page cache meanwhile: the load appends (written once, never read
/// back) and builds its indexes from sorted keys (see `build_indexes`).
fn first_load_journal(conn: &mut dyn Conn) -> bool {
    let empty = conn
        .scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM (SELECT 1 AS x FROM events LIMIT 1) e",
            &[],
        )
        .is_ok_and(|n| n == 0);
    empty && crate::journal::leave_wal(conn, Some(32 << 10))
}

fn import_in_tx(
    conn: &mut dyn Conn,
    inputs: &ImportInputs,
    opts: &LoadOptions<'_>,
    before_commit: BeforeCommit<'_>,
) -> Result<ImportReport, StoreError> {
    // Only the vocabularies' names are used here: any as_of will do.
    let compiled;
    let rules = match opts.rules {
        Some(r) => r,
        None => {
            compiled = Rules::compile(opts.config, Instant(0))?;
            &compiled
        }
    };
    let mut tx = Tx::begin(conn, TxMode::Write)?;
    let now = crate::wall_clock().to_string();
    let sources = serde_json::json!({
        "accounts": inputs.accounts.as_ref().map(InputSource::name),
        "engagement": inputs.engagement.as_ref().map(InputSource::name),
        "more_engagement": inputs.more_engagement.iter().map(InputSource::name).collect::<Vec<_>>(),
        "triggers": inputs.triggers.as_ref().map(InputSource::name),
        "deals": inputs.deals.as_ref().map(InputSource::name),
    })
    .to_string();
    let import_id = tx
        .query_one(
            "INSERT INTO imports (created_at, sources, accounts_read, accounts_changed, events_read,
                events_added, triggers_read, triggers_added, deals_read, deals_changed, rejected,
                data_version)
             VALUES (?, ?, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) RETURNING id",
            &[Value::Text(&now), Value::Text(&sources)],
            |r| r.i(0),
        )?
        .ok_or_else(|| StoreError::Corrupt("INSERT … RETURNING gave no row".into()))?;
    let mut rep = ImportReport {
        import_id,
        ..Default::default()
    };
    // A first load of events builds every account's event pack at the end (`packs.rs`); any
    // other import leaves the packs, and the next run folds the newer events into them.
    let first_events = tx.scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM (SELECT 1 AS x FROM events LIMIT 1) e",
        &[],
    )? == 0;
    let mut rejects = Rejects::default();

    // Accounts.
    if let Some(input) = &inputs.accounts {
        import_accounts(&mut *tx, input, opts, import_id, &mut rep, &mut rejects)?;
    }

    // account_id → accounts.id, for the other files (looked up as named for in-memory inputs).
    let lazy = inputs
        .engagement
        .iter()
        .chain(&inputs.more_engagement)
        .chain(&inputs.triggers)
        .chain(&inputs.deals)
        .all(|i| matches!(i, InputSource::Memory { .. }));
    let index = std::cell::RefCell::new(Accounts::new(&mut *tx, lazy)?);
    let cx = Rows {
        opts,
        rules,
        index: &index,
        import_id,
    };
    // A first load builds the packs from the rows as they are written (checked below).
    let mut packs = None;
    for input in inputs.engagement.iter().chain(&inputs.more_engagement) {
        let stream = first_events && rep.events_added == 0 && packs.is_none();
        import_events(
            &mut *tx,
            input,
            &cx,
            &mut rep,
            &mut rejects,
            stream.then_some(&mut packs),
        )?;
    }
    if let Some(input) = &inputs.triggers {
        import_triggers(&mut *tx, input, &cx, &mut rep, &mut rejects)?;
    }
    if let Some(input) = &inputs.deals {
        import_deals(&mut *tx, input, &cx, &mut rep, &mut rejects)?;
    }

    // Waiting rows whose account is here now count from this import on.
    resolve_waiting(&mut *tx, &mut rep)?;
    if first_events && rep.events_added > 0 {
        match packs {
            // Every event added is a row the builder was given, in order (none came from
            // another input, a held repeat's distinct key or a waiting row).
            Some(p) if p.rows() == rep.events_added => p.write(&mut *tx)?,
            _ => crate::packs::rebuild_all(&mut *tx)?,
        };
    }

    rep.rejected = rejects.len() as u64;
    rep.data_version = meta(&mut *tx, "data_version")?;
    if rep.changed_anything() {
        rep.data_version += 1;
        set_meta(&mut *tx, "data_version", rep.data_version)?;
    }
    let counts = [
        rep.accounts_read,
        rep.accounts_changed,
        rep.events_read,
        rep.events_added,
        rep.triggers_read,
        rep.triggers_added,
        rep.deals_read,
        rep.deals_changed,
        rep.rejected,
    ];
    let mut params: Vec<Value<'_>> = counts.iter().map(|&c| Value::Int(c as i64)).collect();
    params.push(Value::Int(rep.data_version));
    params.push(Value::Int(import_id));
    tx.execute(
        "UPDATE imports SET accounts_read = ?, accounts_changed = ?, events_read = ?,
            events_added = ?, triggers_read = ?, triggers_added = ?, deals_read = ?,
            deals_changed = ?, rejected = ?, data_version = ?
         WHERE id = ?",
        &params,
    )?;
    // The rejected rows must not be lost with the rows committed (issue 11 #4): the caller
    // writes them here, and a failure leaves the database as it was.
    before_commit(&rejects)?;
    tx.commit()?;
    rep.rejects = rejects;
    Ok(rep)
}

/// The accounts of an import: upserted by `account_id` (a row changes only when its content
/// does); new columns join `account_columns`.
fn import_accounts(
    tx: &mut dyn Conn,
    input: &InputSource,
    opts: &LoadOptions<'_>,
    import_id: i64,
    rep: &mut ImportReport,
    rejects: &mut Rejects,
) -> Result<(), StoreError> {
    let src = opts.open_input(input, FileKind::Accounts)?;
    let layout = AccountLayout::of(&src);
    let names: Vec<String> = layout.schema.columns().to_vec();
    let known = tx.query_all("SELECT name FROM account_columns", &[], |r| r.string(0))?;
    let mut next_pos = tx.scalar(
        "SELECT CAST(COALESCE(MAX(position), 0) AS BIGINT) FROM account_columns",
        &[],
    )?;
    for n in &names {
        if !known.contains(n) {
            next_pos += 1;
            tx.execute(
                "INSERT INTO account_columns (position, name) VALUES (?, ?)",
                &[Value::Int(next_pos), Value::Text(n)],
            )?;
        }
    }
    let name_col = layout.schema.index_of("name");
    let mut sink = Sink::new(
        "accounts (account_id, name, fields, employees, annual_revenue, icp_score, icp_tier,
        founded_year, row_hash, import_id)",
        10,
        "ON CONFLICT (account_id) DO UPDATE SET name = excluded.name, fields = excluded.fields,
        employees = excluded.employees, annual_revenue = excluded.annual_revenue,
        icp_score = excluded.icp_score, icp_tier = excluded.icp_tier,
        founded_year = excluded.founded_year, row_hash = excluded.row_hash,
        import_id = excluded.import_id
     WHERE accounts.row_hash IS DISTINCT FROM excluded.row_hash",
    )
    .distinct_rows("account_id");
    sink.prepare(&mut *tx, bulk(input))?;
    let mut seen = IdIndex::default();
    // Read, parsed and hashed on a helper thread while this one writes (`scan_handoff`).
    let mut rows = sink.lend_rows();
    rep.accounts_read = scan_handoff(
        src,
        opts,
        |src, rec, out| {
            let mut vals: Vec<&str> = Vec::with_capacity(names.len());
            let f = layout.parse(src, rec, &mut vals)?;
            if let Err(first) = seen.insert(vals[0].as_bytes(), rec.line as u32) {
                return Err(reject(
                    &src.name,
                    rec,
                    "account_id",
                    format!("duplicate account_id {:?} (first at line {first})", vals[0]),
                ));
            }
            let fields = fields_json(&names, &vals);
            let hash = ident(&[fields.as_bytes()]);
            rows.batch
                .text(vals[0])
                .text(name_col.map(|c| vals[c]).unwrap_or(""))
                .text(&fields)
                .opt_real(f.employees)
                .opt_real(f.annual_revenue)
                .opt_real(f.icp_score)
                .opt_text(f.icp_tier.map(|t| t.as_str()))
                .opt_int(f.founded_year.map(|y| y as i64))
                .blob(&hash)
                .int(import_id);
            out.extend(rows.take_full());
            Ok(())
        },
        |batch| sink.write(&mut *tx, batch),
        rejects,
    )?;
    drop(seen);
    rep.accounts_changed = sink.finish(&mut *tx, Some(rows))?;
    Ok(())
}

/// `account_id` → `accounts.id` of every stored account, for the other inputs.
fn stored_accounts(tx: &mut dyn Conn) -> Result<IdIndex, StoreError> {
    let mut index = IdIndex::default();
    tx.query_each("SELECT id, account_id FROM accounts", &[], &mut |r| {
        let id = r.i(0)?;
        let key = r.s(1)?;
        let _ = index.insert(key.as_bytes(), row_id(id)?);
        Ok(())
    })?;
    Ok(index)
}

fn row_id(id: i64) -> Result<u32, StoreError> {
    u32::try_from(id).map_err(|_| StoreError::Corrupt(format!("account row id {id} exceeds u32")))
}

/// `account_id` → `accounts.id` for the rows of one import: every stored account read up front
/// (files), or — for in-memory batches (an API body, a CRM page: a few thousand rows against
/// up to millions of stored accounts) — each id looked up by the unique index the first time a
/// row names it, in the import's transaction (so accounts imported just before are found).
/// The same answers either way.
struct Accounts {
    index: IdIndex,
    lazy: bool,
    /// Ids looked up and not stored (lazy only).
    absent: HashSet<Vec<u8>>,
    /// A failed lookup: the scan goes on, the import fails with it.
    error: Option<StoreError>,
}

impl Accounts {
    fn new(tx: &mut dyn Conn, lazy: bool) -> Result<Accounts, StoreError> {
        Ok(Accounts {
            index: if lazy {
                IdIndex::default()
            } else {
                stored_accounts(tx)?
            },
            lazy,
            absent: HashSet::new(),
            error: None,
        })
    }

    /// Make `key`'s answer known to [`Accounts::index`].
    fn resolve(&mut self, tx: &mut dyn Conn, key: &[u8]) {
        if !self.lazy
            || key.is_empty()
            || self.error.is_some()
            || self.index.get_listed(key).is_some()
            || self.absent.contains(key)
        {
            return;
        }
        let Ok(text) = std::str::from_utf8(key) else {
            self.absent.insert(key.to_vec());
            return;
        };
        match tx
            .query_one(
                "SELECT id FROM accounts WHERE account_id = ?",
                &[Value::Text(text)],
                |r| r.i(0),
            )
            .and_then(|id| id.map(row_id).transpose())
        {
            Ok(Some(id)) => {
                let _ = self.index.insert(key, id);
            }
            Ok(None) => {
                self.absent.insert(key.to_vec());
            }
            Err(e) => self.error = Some(e),
        }
    }

    fn check(&mut self) -> Result<(), StoreError> {
        self.error.take().map_or(Ok(()), Err)
    }
}

/// What the events, triggers and deals of one import share: how to read them, the rules, the
/// stored accounts they resolve against, and the import they belong to.
#[derive(Clone, Copy)]
struct Rows<'a, 'o> {
    opts: &'a LoadOptions<'o>,
    rules: &'a Rules,
    index: &'a std::cell::RefCell<Accounts>,
    import_id: i64,
}

/// One engagement input: events appended by identity (`event_id`, else the content); rows
/// naming an account not stored yet wait for it.
fn import_events(
    tx: &mut dyn Conn,
    input: &InputSource,
    cx: &Rows<'_, '_>,
    rep: &mut ImportReport,
    rejects: &mut Rejects,
    packs: Option<&mut Option<crate::packs::PackBuild>>,
) -> Result<(), StoreError> {
    let Rows {
        opts,
        rules,
        index,
        import_id,
    } = *cx;
    let src = opts.open_input(input, FileKind::Engagement)?;
    let cols = EventCols::of(&src.projection);
    let mut sink = Sink::new(
        "events (ident, account, occurred_at, type, contact_id, event_id, detail, import_id)",
        8,
        "ON CONFLICT (ident) DO NOTHING",
    );
    let mut micros = String::new();
    let mut wait = Sink::new(
        "waiting_events (ident, account_id, occurred_at, type, contact_id, event_id, detail,
            import_id)",
        8,
        "ON CONFLICT (ident) DO NOTHING",
    );
    sink.prepare(&mut *tx, bulk(input))?;
    wait.prepare(&mut *tx, bulk(input))?;
    if !sink.direct() {
        sink.split = IdentitySplit::of(&mut *tx)?;
    }
    if let InputSource::File(path) = input {
        // An event row takes 48 bytes or more (an id, an instant, a type and a contact).
        sink.expect_rows(std::fs::metadata(path).map_or(0, |m| m.len() / 48));
    }
    // A first load into the empty table: its rows get ids in the order written.
    let mut stream = match packs {
        Some(p) if sink.direct() => Some(p.insert(crate::packs::PackBuild::start(&mut *tx)?)),
        _ => None,
    };
    let mut unknown = IdIndex::default();
    let mut n_wait = 0u64;
    let (mut rows, mut waiting_rows) = (sink.lend_rows(), wait.lend_rows());
    // One record: checked, given its identity, added to the rows to write; full batches go
    // out to be written.
    let mut visit = |src: &Source, rec: &Record<'_>, stored: &IdIndex, out: &mut Vec<Full>| {
        let key = rec.get(cols.account_id).trim_ascii();
        let (idx, waiting) = account_index(stored, &mut unknown, key);
        let Some(ev) = parse_event(src, rec, &cols, rules, idx)? else {
            return Ok(());
        };
        n_wait += waiting as u64;
        let contact = std::str::from_utf8(ev.contact)
            .map_err(|_| reject(&src.name, rec, "contact_id", "not valid UTF-8"))?;
        let event_id = field(src, rec, cols.event_id, "event_id")?;
        let detail = field(src, rec, cols.detail, "detail")?;
        let ty = rules.event_name(ev.code);
        let account_id = rec.get(cols.account_id).trim_ascii();
        let id = if event_id.is_empty() {
            micros.clear();
            micros.push_str(&ev.at.0.to_string());
            ident(&[
                b"content",
                account_id,
                micros.as_bytes(),
                ty.as_bytes(),
                contact.as_bytes(),
                detail.as_bytes(),
            ])
        } else {
            ident(&[b"event_id", event_id.as_bytes()])
        };
        // The columns after the account's, alike in both tables.
        let rest = |b: &mut Batch| {
            b.int(ev.at.0)
                .text(ty)
                .text(contact)
                .opt_text(nonempty(event_id))
                .opt_text(nonempty(detail))
                .int(import_id);
        };
        if waiting {
            rest(
                waiting_rows
                    .row(&id)
                    .blob(&id)
                    .text(std::str::from_utf8(account_id).unwrap_or_default()),
            );
            out.extend(waiting_rows.take_full().map(Full::Waiting));
            return Ok(());
        }
        rest(rows.row(&id).blob(&id).int(ev.account as i64));
        if let (Some(p), false) = (stream.as_mut(), rows.last_held) {
            p.push(ev.account as i64, ev.at.0, ty, contact);
        }
        out.extend(rows.take_full().map(Full::Events));
        Ok(())
    };
    let mut write = |full: Full, tx: &mut dyn Conn| match full {
        Full::Events(b) => sink.write(tx, b),
        Full::Waiting(b) => wait.write(tx, b),
    };
    let read = if index.borrow().lazy {
        // An in-memory batch: accounts looked up in the transaction as rows name them.
        let mut out = Vec::new();
        scan_seq(
            src,
            opts,
            |src, rec| {
                let key = rec.get(cols.account_id).trim_ascii();
                index.borrow_mut().resolve(&mut *tx, key);
                visit(src, rec, &index.borrow().index, &mut out)?;
                for full in out.drain(..) {
                    write(full, &mut *tx);
                }
                Ok(())
            },
            rejects,
        )?
    } else {
        // Files: every account known up front; the records are read, checked and hashed on
        // a helper thread while this one writes.
        let stored = index.borrow();
        let stored = &stored.index;
        scan_handoff(
            src,
            opts,
            |src, rec, out| visit(src, rec, stored, out),
            |full| write(full, &mut *tx),
            rejects,
        )?
    };
    rep.events_read += read;
    index.borrow_mut().check()?;
    rep.events_added += sink.finish(&mut *tx, Some(rows))?;
    rep.waiting_added += wait.finish(&mut *tx, Some(waiting_rows))?;
    rep.events_waiting += n_wait;
    Ok(())
}

/// A full batch of one import's rows, to be written.
enum Full {
    Events(Batch),
    Waiting(Batch),
}

/// The triggers: appended by content; rows naming an account not stored yet wait for it.
fn import_triggers(
    tx: &mut dyn Conn,
    input: &InputSource,
    cx: &Rows<'_, '_>,
    rep: &mut ImportReport,
    rejects: &mut Rejects,
) -> Result<(), StoreError> {
    let Rows {
        opts,
        rules,
        index,
        import_id,
    } = *cx;
    let src = opts.open_input(input, FileKind::Triggers)?;
    let mut sink = Sink::new(
        "triggers (ident, account, occurred_at, type, source, headline, strength, import_id)",
        8,
        "ON CONFLICT (ident) DO NOTHING",
    );
    let mut wait = Sink::new(
        "waiting_triggers (ident, account_id, occurred_at, type, source, headline, strength,
            import_id)",
        8,
        "ON CONFLICT (ident) DO NOTHING",
    );
    sink.prepare(&mut *tx, bulk(input))?;
    wait.prepare(&mut *tx, bulk(input))?;
    let mut unknown = IdIndex::default();
    let mut n_wait = 0u64;
    rep.triggers_read = scan_seq(
        src,
        opts,
        |src, rec| {
            let p = &src.projection;
            let account_id = field(src, rec, p.slots[0], "account_id")?;
            index.borrow_mut().resolve(&mut *tx, account_id.as_bytes());
            let accounts = index.borrow();
            let (idx, waiting) =
                account_index(&accounts.index, &mut unknown, account_id.as_bytes());
            let t = parse_trigger(src, rec, rules, idx)?;
            let source = field(src, rec, p.slots[3], "source")?;
            let strength = field(src, rec, p.slots[5], "strength")?;
            n_wait += waiting as u64;
            let ty = rules.trigger_name(t.code);
            let at = t.at.0.to_string();
            let id = ident(&[
                b"trigger",
                account_id.as_bytes(),
                at.as_bytes(),
                ty.as_bytes(),
                source.as_bytes(),
                t.headline.as_bytes(),
                strength.as_bytes(),
            ]);
            let sink = if waiting { &mut wait } else { &mut sink };
            let b = sink.row(&id).blob(&id);
            let b = if waiting {
                b.text(account_id)
            } else {
                b.int(t.account as i64)
            };
            b.int(t.at.0)
                .text(ty)
                .opt_text(nonempty(source))
                .opt_text(nonempty(&t.headline))
                .opt_real(strength.parse::<f64>().ok())
                .int(import_id);
            sink.maybe_flush(&mut *tx);
            Ok(())
        },
        rejects,
    )?;
    index.borrow_mut().check()?;
    rep.triggers_added = sink.finish(&mut *tx, None)?;
    rep.waiting_added += wait.finish(&mut *tx, None)?;
    rep.triggers_waiting = n_wait;
    Ok(())
}

/// The deals: upserted by `deal_id` (a repeated id in one input is rejected); rows naming an
/// account not stored yet wait for it.
fn import_deals(
    tx: &mut dyn Conn,
    input: &InputSource,
    cx: &Rows<'_, '_>,
    rep: &mut ImportReport,
    rejects: &mut Rejects,
) -> Result<(), StoreError> {
    let Rows {
        opts,
        index,
        import_id,
        ..
    } = *cx;
    let src = opts.open_input(input, FileKind::Deals)?;
    let mut sink = Sink::new(
        "deals (deal_id, account, stage, amount, created_at, closed_at, last_stage_change_at,
            outcome, product, owner, stage_history, row_hash, import_id)",
        13,
        "ON CONFLICT (deal_id) DO UPDATE SET account = excluded.account,
            stage = excluded.stage, amount = excluded.amount,
            created_at = excluded.created_at, closed_at = excluded.closed_at,
            last_stage_change_at = excluded.last_stage_change_at,
            outcome = excluded.outcome, product = excluded.product, owner = excluded.owner,
            stage_history = excluded.stage_history,
            row_hash = excluded.row_hash, import_id = excluded.import_id
         WHERE deals.row_hash IS DISTINCT FROM excluded.row_hash",
    );
    let mut wait = Sink::new(
        "waiting_deals (deal_id, account_id, stage, amount, created_at, closed_at,
            last_stage_change_at, outcome, product, owner, stage_history, row_hash, import_id)",
        13,
        "ON CONFLICT (deal_id) DO UPDATE SET account_id = excluded.account_id,
            stage = excluded.stage, amount = excluded.amount,
            created_at = excluded.created_at, closed_at = excluded.closed_at,
            last_stage_change_at = excluded.last_stage_change_at,
            outcome = excluded.outcome, product = excluded.product, owner = excluded.owner,
            stage_history = excluded.stage_history,
            row_hash = excluded.row_hash, import_id = excluded.import_id",
    );
    let mut unknown = IdIndex::default();
    let mut n_wait = 0u64;
    let mut seen = IdIndex::default();
    rep.deals_read = scan_seq(
        src,
        opts,
        |src, rec| {
            let account_id = field(src, rec, src.projection.slots[1], "account_id")?;
            index.borrow_mut().resolve(&mut *tx, account_id.as_bytes());
            let accounts = index.borrow();
            let (idx, waiting) =
                account_index(&accounts.index, &mut unknown, account_id.as_bytes());
            let d = parse_deal(src, rec, idx)?;
            if let Err(first) = seen.insert(d.deal_id.as_bytes(), rec.line as u32) {
                // The rule `segment` applies: the first occurrence wins.
                return Err(duplicate_deal(src, rec, &d.deal_id, first));
            }
            let p = &src.projection;
            let product = field(src, rec, p.slots[8], "product")?;
            let owner = field(src, rec, p.slots[9], "owner")?;
            n_wait += waiting as u64;
            let t = |i: Option<Instant>| i.map(|v| v.0.to_string()).unwrap_or_default();
            let history = (!d.history.is_empty()).then(|| StageEntry::encode(&d.history));
            // The account as the file names it: the same hash whether the deal waits for
            // its account or not, so a waiting deal that moved in is unchanged on re-import.
            let amount = d.amount.map(|a| a.to_string()).unwrap_or_default();
            let (created, closed, changed) = (
                t(Some(d.created_at)),
                t(d.closed_at),
                t(d.last_stage_change_at),
            );
            let mut parts: Vec<&[u8]> = vec![
                d.deal_id.as_bytes(),
                account_id.as_bytes(),
                d.stage.as_bytes(),
                amount.as_bytes(),
                created.as_bytes(),
                closed.as_bytes(),
                changed.as_bytes(),
                d.outcome.as_str().as_bytes(),
                product.as_bytes(),
                owner.as_bytes(),
            ];
            // A deal without a history hashes as before the column existed.
            if let Some(h) = &history {
                parts.push(h.as_bytes());
            }
            let hash = ident(&parts);
            let sink = if waiting { &mut wait } else { &mut sink };
            let b = sink.rows.batch.text(&d.deal_id);
            let b = if waiting {
                b.text(account_id)
            } else {
                b.int(d.account as i64)
            };
            b.text(&d.stage)
                .opt_real(d.amount)
                .int(d.created_at.0)
                .opt_int(d.closed_at.map(|v| v.0))
                .opt_int(d.last_stage_change_at.map(|v| v.0))
                .text(d.outcome.as_str())
                .opt_text(nonempty(product))
                .opt_text(nonempty(owner))
                .opt_text(history.as_deref())
                .blob(&hash)
                .int(import_id);
            sink.maybe_flush(&mut *tx);
            Ok(())
        },
        rejects,
    )?;
    index.borrow_mut().check()?;
    rep.deals_changed = sink.finish(&mut *tx, None)?;
    rep.waiting_added += wait.finish(&mut *tx, None)?;
    rep.deals_waiting = n_wait;
    Ok(())
}

/// Move waiting rows whose account exists into events, triggers and deals.
fn resolve_waiting(tx: &mut dyn Conn, rep: &mut ImportReport) -> Result<(), StoreError> {
    // Events: on SQLite, by the identity index's split.
    let (events_filter, events_conflict) = match IdentitySplit::of(&mut *tx)? {
        Some(split) => (split.not_stored_below("w"), split.conflict()),
        None => (
            "true".to_string(),
            "ON CONFLICT (ident) DO NOTHING".to_string(),
        ),
    };
    let moves: [(&str, &str, &str, &str, &str); 3] = [
        (
            "waiting_events",
            "events (ident, account, occurred_at, type, contact_id, event_id, detail, import_id)",
            "w.ident, a.id, w.occurred_at, w.type, w.contact_id, w.event_id, w.detail, w.import_id",
            &events_filter,
            &events_conflict,
        ),
        (
            "waiting_triggers",
            "triggers (ident, account, occurred_at, type, source, headline, strength, import_id)",
            "w.ident, a.id, w.occurred_at, w.type, w.source, w.headline, w.strength, w.import_id",
            "true",
            "ON CONFLICT (ident) DO NOTHING",
        ),
        (
            "waiting_deals",
            "deals (deal_id, account, stage, amount, created_at, closed_at, last_stage_change_at,
                outcome, product, owner, stage_history, row_hash, import_id)",
            "w.deal_id, a.id, w.stage, w.amount, w.created_at, w.closed_at,
                w.last_stage_change_at, w.outcome, w.product, w.owner, w.stage_history,
                w.row_hash, w.import_id",
            "true",
            "ON CONFLICT (deal_id) DO NOTHING",
        ),
    ];
    for (i, (from, into, cols, filter, conflict)) in moves.into_iter().enumerate() {
        let arrived = tx.scalar(
            &format!(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM {from} w
                 JOIN accounts a ON a.account_id = w.account_id"
            ),
            &[],
        )?;
        if arrived == 0 {
            continue;
        }
        let moved = tx.execute(
            &format!(
                "INSERT INTO {into} SELECT {cols} FROM {from} w
                 JOIN accounts a ON a.account_id = w.account_id WHERE {filter} {conflict}"
            ),
            &[],
        )?;
        tx.execute(
            &format!("DELETE FROM {from} WHERE account_id IN (SELECT account_id FROM accounts)"),
            &[],
        )?;
        rep.waiting_resolved += arrived as u64;
        match i {
            0 => rep.events_added += moved,
            1 => rep.triggers_added += moved,
            _ => rep.deals_changed += moved,
        }
    }
    Ok(())
}

/// Rows waiting for their account: how many of each kind, and the account ids waited for.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Waiting {
    pub events: u64,
    pub triggers: u64,
    pub deals: u64,
    /// Account ids waited for (sorted, at most `limit`), with how many rows wait for each.
    pub accounts: Vec<(String, u64)>,
    /// Distinct account ids waited for.
    pub distinct_accounts: u64,
}

impl crate::Store {
    /// The rows waiting for an account not imported yet.
    pub fn waiting(&mut self, limit: usize) -> Result<Waiting, StoreError> {
        let conn = self.conn();
        let mut w = Waiting::default();
        for (table, n) in [
            ("waiting_events", &mut w.events),
            ("waiting_triggers", &mut w.triggers),
            ("waiting_deals", &mut w.deals),
        ] {
            *n = conn.scalar(
                &format!("SELECT CAST(COUNT(*) AS BIGINT) FROM {table}"),
                &[],
            )? as u64;
        }
        let all = "SELECT account_id FROM waiting_events UNION ALL
                   SELECT account_id FROM waiting_triggers UNION ALL
                   SELECT account_id FROM waiting_deals";
        w.distinct_accounts = conn.scalar(
            &format!("SELECT CAST(COUNT(DISTINCT account_id) AS BIGINT) FROM ({all}) x"),
            &[],
        )? as u64;
        w.accounts = conn.query_all(
            &format!(
                "SELECT account_id, CAST(COUNT(*) AS BIGINT) FROM ({all}) x
                 GROUP BY account_id ORDER BY account_id LIMIT {limit}"
            ),
            &[],
            |r| Ok((r.string(0)?, r.i(1)? as u64)),
        )?;
        Ok(w)
    }

    /// Import the given files in one transaction.
    pub fn import(
        &mut self,
        inputs: &ImportInputs,
        opts: &LoadOptions<'_>,
    ) -> Result<ImportReport, StoreError> {
        self.import_with(inputs, opts, &mut |_| Ok(()))
    }

    /// [`Self::import`], calling `before_commit` with the rejected rows once every row is
    /// written and before the commit: an error from it rolls the whole import back.
    pub fn import_with(
        &mut self,
        inputs: &ImportInputs,
        opts: &LoadOptions<'_>,
        before_commit: BeforeCommit<'_>,
    ) -> Result<ImportReport, StoreError> {
        let report = import(self.conn(), inputs, opts, before_commit)?;
        let rows = report.accounts_changed
            + report.events_added
            + report.triggers_added
            + report.deals_changed
            + report.waiting_added;
        if rows >= crate::ANALYZE_FROM_ROWS {
            self.analyze(&[
                "accounts",
                "events",
                "triggers",
                "deals",
                "waiting_events",
                "waiting_triggers",
                "waiting_deals",
            ]);
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::{Sqlite, MIGRATIONS};
    use std::time::Duration;

    /// An import of in-memory batches (a server's) leaves the connection's temporary tables
    /// and prepared statements alone: switching `temp_store` (done for file imports, whose
    /// index builds sort millions of keys) would drop the one and expire the other.
    #[test]
    fn an_in_memory_import_keeps_the_connections_temporary_tables() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Sqlite::open(&dir.path().join("t.db"), Duration::from_secs(1)).unwrap();
        crate::migrate::migrate(&mut conn, MIGRATIONS).unwrap();
        conn.batch_execute("CREATE TEMP TABLE kept (x INTEGER); INSERT INTO kept VALUES (7)")
            .unwrap();
        let config = abm_core::Config::default();
        let opts = LoadOptions::new(&config);
        let schema = |conn: &mut Sqlite| conn.scalar("PRAGMA schema_version", &[]).unwrap();
        let before = schema(&mut conn);
        for n in 0..2 {
            // Into empty tables (events, and waiting_events for B, not imported): a file
            // import would take the first-load path and drop their indexes.
            let inputs = ImportInputs {
                accounts: Some(InputSource::csv(
                    "accounts.csv",
                    format!("account_id,name\nA{n},Acme {n}\n").into_bytes(),
                )),
                engagement: Some(InputSource::csv(
                    "engagement.csv",
                    format!(
                        "account_id,occurred_at,type,contact_id\n\
                         A{n},2026-10-01,meeting,c1\nB{n},2026-10-01,meeting,c1\n"
                    )
                    .into_bytes(),
                )),
                ..ImportInputs::default()
            };
            let report = import(&mut conn, &inputs, &opts, &mut |_| Ok(())).unwrap();
            assert_eq!(report.accounts_changed, 1);
            assert_eq!(report.events_added, 1);
            assert_eq!(report.waiting_added, 1);
            assert_eq!(
                conn.scalar("SELECT x FROM kept", &[]).unwrap(),
                7,
                "import {n}"
            );
            assert_eq!(schema(&mut conn), before, "import {n} changed no index");
        }
    }

    /// A first load remembers 64 bits of each key: a second key sharing them is still stored,
    /// and a repeat of a key is still dropped (the first row of a key wins).
    #[test]
    fn first_load_tells_a_repeat_from_a_key_sharing_its_low_bits() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Sqlite::open(&dir.path().join("t.db"), Duration::from_secs(1)).unwrap();
        crate::migrate::migrate(&mut conn, MIGRATIONS).unwrap();
        let mut sink = Sink::new(
            "triggers (ident, account, occurred_at, type, source, headline, strength, import_id)",
            8,
            "ON CONFLICT (ident) DO NOTHING",
        );
        sink.prepare(&mut conn, true).unwrap();
        assert!(sink.direct(), "an empty table is a first load");
        let a = [1u8; 16];
        let mut b = a; // same low 64 bits (little-endian: the first 8 bytes), other high bits
        b[15] = 2;
        let c = [3u8; 16];
        for (key, headline) in [(a, "a first"), (b, "b"), (a, "a again"), (c, "c")] {
            sink.row(&key)
                .blob(&key)
                .int(1)
                .int(0)
                .text("funding_round")
                .null()
                .text(headline)
                .null()
                .int(1);
        }
        assert_eq!(
            sink.rows.held.rows(),
            2,
            "b and the repeat of a wait for the index"
        );
        assert_eq!(sink.finish(&mut conn, None).unwrap(), 3);
        let rows = conn
            .query_all("SELECT headline FROM triggers ORDER BY id", &[], |r| {
                r.string(0)
            })
            .unwrap();
        assert_eq!(rows, ["a first", "c", "b"]);
        // The unique index is back.
        assert!(conn
            .execute(
                "INSERT INTO triggers (ident, account, occurred_at, type, headline, import_id)
                 VALUES (?, 1, 0, 'x', 'dup', 1)",
                &[Value::Blob(&c)],
            )
            .is_err());
    }
}
