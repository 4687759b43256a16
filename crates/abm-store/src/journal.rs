//! Bulk writes outside WAL (SQLite). In WAL mode every page a transaction writes is written
//! twice: as a frame into the log, then copied into the database file by a checkpoint (at the
//! latest when the last connection closes). A rollback journal holds only the original content
//! of the pages a transaction changes, and pages appended past the file's original end — nearly
//! all of a first load — have none: they are written once.
//!
//! [`leave_wal`] switches a connection's database to rollback-journal mode (`TRUNCATE`, with
//! `synchronous = FULL`: the journal is synced before the file is changed), which SQLite allows
//! only to the database's only connection and outside a transaction; [`back_to_wal`] restores
//! WAL, `synchronous = NORMAL` and the page cache. **Invariant:** callers call [`back_to_wal`]
//! after the transaction whatever its outcome; a process killed meanwhile leaves a hot journal,
//! which the next connection to open the file rolls back (the previous state), then it opens
//! in WAL again (`Sqlite::open`). Where another connection is open (a server's pool), the
//! switch fails and the work stays in WAL.

use crate::db::{Backend, Conn, RowExt};
use crate::StoreError;
use std::cell::Cell;

thread_local! {
    /// Transactions on this thread that ran in rollback-journal mode (tests).
    static JOURNALED: Cell<u64> = const { Cell::new(0) };
}

pub(crate) fn journaled() -> u64 {
    JOURNALED.with(Cell::get)
}

/// Leave WAL for a bulk write, with a page cache of `cache_kib` meanwhile (`None`: as it is).
/// Returns whether the mode changed (never on PostgreSQL).
pub(crate) fn leave_wal(conn: &mut dyn Conn, cache_kib: Option<i64>) -> bool {
    if conn.backend() != Backend::Sqlite {
        return false;
    }
    let mut mode = String::new();
    let switched = conn
        .query_each("PRAGMA journal_mode = TRUNCATE", &[], &mut |r| {
            mode = r.string(0)?;
            Ok(())
        })
        .is_ok()
        && mode.eq_ignore_ascii_case("truncate");
    if !switched {
        return false;
    }
    let mut set = "PRAGMA synchronous = FULL".to_string();
    if let Some(kib) = cache_kib {
        set.push_str(&format!("; PRAGMA cache_size = -{kib}"));
    }
    if conn.batch_execute(&set).is_err() {
        let _ = back_to_wal(conn);
        return false;
    }
    JOURNALED.with(|n| n.set(n.get() + 1));
    true
}

/// Back to the connection's usual settings (`Sqlite::open`) after [`leave_wal`].
pub(crate) fn back_to_wal(conn: &mut dyn Conn) -> Result<(), StoreError> {
    conn.batch_execute(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = {}",
        crate::sqlite::CACHE_SIZE
    ))
}
