//! # abm-store — the engine's memory: imports, runs, snapshots, movements, the review queue
//!
//! One [`Store`] over two real backends, chosen by the URL: SQLite (a file path, the default
//! `./abm.db`) and PostgreSQL (`postgres://…`). The store persists what `abm-core` decides; it
//! never decides a cluster itself (`abm_core::movement::decide` does, per account).
//!
//! # Invariants
//! - **One transaction per command that writes.** An import, a run, a review decision: each is
//!   one transaction, opened first and committed last. A killed process leaves the database
//!   exactly as it was before the command (SQLite WAL / PostgreSQL MVCC do the rest).
//! - **One writer at a time.** SQLite `BEGIN IMMEDIATE` with a busy timeout; PostgreSQL
//!   `pg_advisory_xact_lock` with `lock_timeout`. A second writer waits, then fails with
//!   [`StoreError::Busy`].
//! - **Migrations are append-only.** Each backend has its own numbered SQL files under
//!   `migrations/`; they run on open, and their checksums are recorded: an edited migration is
//!   an error ([`StoreError::MigrationEdited`]), never a silent drift.
//! - **No round trip per row on bulk paths.** Rows go through [`db::Batch`].
//! - **Runs move forward.** A run's `as_of` is never before the latest run's; re-running the
//!   same `as_of` with the same data, config and review state records nothing.
//!
//! # Layout
//! - [`db`]: values, rows, batches, the `Conn` trait; [`sqlite`], [`postgres`]: the backends.
//! - `migrate`: the migration runner.
//! - [`import`]: `abm import` (accounts upserted, events/triggers appended idempotently, deals
//!   upserted, rejected rows kept).
//! - [`run`]: `abm run` (assess + decide every account, snapshot, movements, checkpoints).
//! - [`review`]: approve / reject.
//! - [`query`]: the read side: review list, summary, movements, history, export rows.
//! - [`account`]: one stored account explained (`abm explain ID` on the database).
//! - [`outbox`]: the durable outbox of CRM writes and the watermarks of incremental pulls.
//! - [`listing`]: the account list with filters and keyset paging, the list of runs.
//! - [`tokens`]: the API's bearer tokens (hashed, with a role, revocable).
//! - [`transitions`]: a run's from → to cluster counts against the previous run.

pub mod account;
mod beside;
mod compact;
pub mod db;
pub mod directory;
pub mod history;
pub mod import;
mod journal;
pub mod listing;
mod migrate;
pub mod outbox;
pub mod packs;
pub mod pool;
pub mod postgres;
pub mod query;
pub mod reevaluate;
pub mod review;
pub mod run;
mod scope;
pub mod segments;
pub mod sqlite;
pub mod testing;
pub mod tls;
pub mod tokens;
pub mod transitions;

use abm_core::Instant;
use db::{Backend, Conn, TxMode};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use import::{ImportInputs, ImportReport};
pub use pool::{PooledStore, StorePool};
pub use run::{RunOptions, RunOutcome, RunReport};

/// The default database when neither `--database` nor `ABM_DATABASE_URL` says otherwise.
pub const DEFAULT_DATABASE: &str = "./abm.db";

/// How long a writer waits for another one before failing.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(600);

/// An import or a run that writes at least this many rows refreshes PostgreSQL's statistics of
/// the tables it wrote ([`Store::analyze`]).
pub const ANALYZE_FROM_ROWS: u64 = 10_000;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("cannot open database {url}: {reason}")]
    Open { url: String, reason: String },
    #[error("no database at {path}: run `abm import DIR` first (or pass --database)")]
    Missing { path: PathBuf },
    #[error("another abm process is writing to the database (waited {}s for it to finish)", .waited.as_secs())]
    Busy { waited: Duration },
    #[error("SQLite: {0}")]
    Sqlite(#[source] rusqlite::Error),
    #[error("PostgreSQL: {}", postgres::reason(.0))]
    Postgres(#[source] ::postgres::Error),
    #[error("migration {version} ({name}) was changed after it was applied to this database; migrations must never be edited")]
    MigrationEdited { version: i64, name: String },
    #[error("the database schema is at version {found}, newer than this abm knows ({known}): upgrade abm")]
    SchemaTooNew { found: i64, known: i64 },
    #[error(transparent)]
    Ingest(#[from] abm_io::IngestError),
    #[error(transparent)]
    Config(#[from] abm_core::ConfigError),
    #[error("no accounts in the database: run `abm import DIR` first")]
    NoAccounts,
    #[error("no run yet: `abm run` first (or `abm whatif DIR` on files)")]
    NoRuns,
    #[error("as_of {as_of} is before the latest run's as_of {latest} (run {run}): runs move forward in time")]
    AsOfBeforeLatest {
        as_of: Instant,
        latest: Instant,
        run: i64,
    },
    #[error("no checkpoint {0} (see `abm review list --all`)")]
    NoCheckpoint(i64),
    #[error("checkpoint {id} is {status}{}, not pending: only pending items can be approved or rejected", .by.as_ref().map(|b| format!(" (by {b})")).unwrap_or_default())]
    NotPending {
        id: i64,
        status: String,
        by: Option<String>,
    },
    #[error(
        "checkpoint {id} is stale: account {account} is now {now}, the proposal was from {from}"
    )]
    Stale {
        id: i64,
        account: String,
        now: String,
        from: String,
    },
    #[error("no account {0:?} in the database")]
    NoAccount(String),
    /// Not imported yet, but rows naming it wait for it (issue 13: `explain` on a waiting
    /// account says so and why).
    #[error(
        "no account {account:?} in the database yet: {events} event(s), {triggers} trigger(s) and \
         {deals} deal(s) imported before it wait for it and move in when an import brings the \
         account (see `abm status`)"
    )]
    AccountWaiting {
        account: String,
        events: i64,
        triggers: i64,
        deals: i64,
    },
    #[error("no run yet: run `abm run` first")]
    NoRun,
    #[error("no run {0} (see the list of runs)")]
    UnknownRun(i64),
    #[error("a live API token is already named {0:?} (revoke it first, or pick another name)")]
    TokenExists(String),
    #[error("token name {0:?}: use 1 to 100 letters, digits, '-', '_', '.' or '@'")]
    TokenName(String),
    #[error("no live API token named {0:?} (see `abm token list`)")]
    NoToken(String),
    #[error("database content is not what this abm expects: {0}")]
    Corrupt(String),
    /// A step the caller asked for before the commit failed (e.g. writing the rejected rows):
    /// the transaction was rolled back.
    #[error("{what}: {source}; nothing was imported")]
    BeforeCommit {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db` (for messages and logs).
pub fn redact(url: &str) -> String {
    if let Some(rest) = url.split_once("://") {
        let (scheme, rest) = rest;
        if let Some((auth, host)) = rest.split_once('@') {
            if let Some((user, _)) = auth.split_once(':') {
                return format!("{scheme}://{user}:***@{host}");
            }
        }
        return url.to_string();
    }
    // key=value form
    url.split_whitespace()
        .map(|kv| {
            if kv.starts_with("password=") {
                "password=***".to_string()
            } else {
                kv.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where a database URL points.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(String),
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(p) => write!(f, "Sqlite({})", p.display()),
            Location::Postgres(u) => write!(f, "Postgres({})", redact(u)),
        }
    }
}

impl Location {
    /// `postgres://…` / `postgresql://…` → PostgreSQL; `sqlite://PATH`, `sqlite:PATH` or a plain
    /// path → SQLite.
    pub fn parse(url: &str) -> Location {
        let u = url.trim();
        if u.starts_with("postgres://") || u.starts_with("postgresql://") {
            return Location::Postgres(u.to_string());
        }
        let path = u
            .strip_prefix("sqlite://")
            .or_else(|| u.strip_prefix("sqlite:"))
            .unwrap_or(u);
        Location::Sqlite(PathBuf::from(path))
    }

    pub fn display(&self) -> String {
        match self {
            Location::Sqlite(p) => p.display().to_string(),
            Location::Postgres(u) => redact(u),
        }
    }
}

/// The store: one connection, migrated on open.
pub struct Store {
    conn: Box<dyn Conn>,
    location: Location,
    /// The deals' products with their first creation, as of the deals' mark it was read at
    /// (`reevaluate`: the catalog without a `GROUP BY` over every deal per call).
    pub(crate) catalog: reevaluate::Catalog,
    /// The scoring model of the last explanation, with the config hash and account columns it
    /// was built for (an explanation per request need not build it again).
    pub(crate) scoring: account::ScoringCache,
}

impl Store {
    /// Open (creating a SQLite file if needed) and migrate.
    pub fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_with(url, DEFAULT_LOCK_TIMEOUT, true)
    }

    /// Open an existing store: a missing SQLite file is [`StoreError::Missing`] rather than a
    /// new empty database (for the read-only commands).
    pub fn open_existing(url: &str) -> Result<Store, StoreError> {
        Store::open_with(url, DEFAULT_LOCK_TIMEOUT, false)
    }

    pub fn open_with(url: &str, lock_timeout: Duration, create: bool) -> Result<Store, StoreError> {
        let location = Location::parse(url);
        let mut conn: Box<dyn Conn> = match &location {
            Location::Sqlite(path) => {
                if !create && !path.exists() {
                    return Err(StoreError::Missing { path: path.clone() });
                }
                Box::new(sqlite::Sqlite::open(path, lock_timeout)?)
            }
            Location::Postgres(u) => Box::new(postgres::Postgres::open(u, lock_timeout)?),
        };
        let list = match conn.backend() {
            Backend::Sqlite => sqlite::MIGRATIONS,
            Backend::Postgres => postgres::MIGRATIONS,
        };
        migrate::migrate(conn.as_mut(), list)?;
        Ok(Store {
            conn,
            location,
            catalog: None,
            scoring: None,
        })
    }

    /// PostgreSQL: refresh the planner's statistics of `tables` after a change of many rows
    /// (an import or a run that wrote at least [`ANALYZE_FROM_ROWS`]), after its commit.
    /// Autovacuum does it too, but later (or never, where it is turned off): until then the
    /// planner costs the new rows blind, and a filtered account list scanned every state (6 s
    /// per page at 1M accounts) instead of walking them in order. Sampled, so about a second at
    /// 1M accounts; a failure only costs plans, so it is not an error. SQLite plans without
    /// statistics (none are gathered): nothing to do.
    pub(crate) fn analyze(&mut self, tables: &[&str]) {
        if self.backend() == Backend::Postgres {
            let _ = self
                .conn()
                .batch_execute(&format!("ANALYZE {}", tables.join(", ")));
        }
    }

    pub fn backend(&self) -> Backend {
        self.conn.backend()
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    pub(crate) fn conn(&mut self) -> &mut dyn Conn {
        self.conn.as_mut()
    }

    /// The applied schema version.
    pub fn schema_version(&mut self) -> Result<i64, StoreError> {
        use db::ConnExt;
        self.conn.scalar(
            "SELECT CAST(MAX(version) AS BIGINT) FROM schema_migrations",
            &[],
        )
    }
}

/// A transaction that rolls back unless committed.
pub(crate) struct Tx<'a> {
    conn: &'a mut dyn Conn,
    open: bool,
}

impl<'a> Tx<'a> {
    pub(crate) fn begin(conn: &'a mut dyn Conn, mode: TxMode) -> Result<Tx<'a>, StoreError> {
        conn.begin(mode)?;
        Ok(Tx { conn, open: true })
    }

    pub(crate) fn commit(mut self) -> Result<(), StoreError> {
        self.open = false;
        self.conn.commit()
    }
}

impl<'a> std::ops::Deref for Tx<'a> {
    type Target = dyn Conn + 'a;
    fn deref(&self) -> &Self::Target {
        &*self.conn
    }
}

impl std::ops::DerefMut for Tx<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut *self.conn
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.rollback();
        }
    }
}

/// Wall-clock now (for created_at / decided_at; never used in a decision).
pub fn wall_clock() -> Instant {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Instant(d.as_micros() as i64)
}

/// `PRAGMA integrity_check` on a SQLite file ("ok" when sound).
pub fn sqlite_integrity_check(path: &Path) -> Result<String, StoreError> {
    sqlite::Sqlite::open(path, Duration::from_secs(5))?.integrity_check()
}

pub(crate) fn meta(conn: &mut dyn Conn, key: &str) -> Result<i64, StoreError> {
    use db::ConnExt;
    conn.scalar(
        "SELECT value FROM meta WHERE key = ?",
        &[db::Value::Text(key)],
    )
}

pub(crate) fn set_meta(conn: &mut dyn Conn, key: &str, value: i64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE meta SET value = ? WHERE key = ?",
        &[db::Value::Int(value), db::Value::Text(key)],
    )?;
    Ok(())
}

/// Hash `parts` (separated by NUL) to the 16-byte identity used for idempotent appends.
pub(crate) fn ident(parts: &[&[u8]]) -> [u8; 16] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update([0u8]);
        }
        h.update(p);
    }
    let d = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_the_backend_and_hide_passwords() {
        assert_eq!(
            Location::parse("./abm.db"),
            Location::Sqlite("./abm.db".into())
        );
        assert_eq!(
            Location::parse("sqlite:///tmp/x.db"),
            Location::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(
            Location::parse("sqlite:x.db"),
            Location::Sqlite("x.db".into())
        );
        assert!(matches!(
            Location::parse("postgresql://h/db"),
            Location::Postgres(_)
        ));
        assert_eq!(
            redact("postgres://bob:s3cret@db:5432/abm"),
            "postgres://bob:***@db:5432/abm"
        );
        assert_eq!(redact("postgres://bob@db/abm"), "postgres://bob@db/abm");
        assert_eq!(
            redact("host=db password=x user=y"),
            "host=db password=*** user=y"
        );
        let dbg = format!("{:?}", Location::parse("postgres://bob:s3cret@db/abm"));
        assert!(!dbg.contains("s3cret"), "{dbg}");
    }
}
