//! A store a server can share: [`StorePool`] is `Send + Sync` and hands out [`Store`]s (one
//! connection each), so readers run side by side while a writer works. SQLite in WAL mode lets
//! readers see the last committed state while one writer holds its lock; PostgreSQL runs them
//! as separate sessions. Writers still take turns (`BEGIN IMMEDIATE` / the advisory lock), as
//! with separate processes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::db::ConnExt;
use crate::tokens::Caller;
use crate::{Store, StoreError, DEFAULT_LOCK_TIMEOUT};

/// A pool of connections to one store; clone the `Arc` to share it across threads.
pub struct StorePool {
    url: String,
    lock_timeout: Duration,
    /// Idle connections, at most `max_idle` kept.
    idle: Mutex<Vec<Store>>,
    max_idle: usize,
    /// SQLite: the WAL checkpointer thread, stopped and joined when the pool is dropped.
    checkpointer: Mutex<Option<Checkpointer>>,
    /// Tokens found live, answered again without a store call while nothing was committed
    /// since (SQLite; see [`StorePool::known_caller`]).
    callers: Mutex<CallerMemo>,
}

/// SQLite: a connection that only reads `PRAGMA data_version` (it changes for a connection
/// when any other connection, in this process or another, commits), and the callers of the
/// tokens found live, by the SHA-256 of their secret, at the version read before each check.
#[derive(Default)]
struct CallerMemo {
    version_conn: Option<Store>,
    callers: std::collections::HashMap<[u8; 32], (i64, Caller)>,
}

impl CallerMemo {
    /// The store's data version as this memo's connection sees it (opened if need be).
    fn version(&mut self, url: &str, lock_timeout: Duration) -> Result<i64, StoreError> {
        let conn = match &mut self.version_conn {
            Some(c) => c,
            None => self
                .version_conn
                .insert(Store::open_with(url, lock_timeout, false)?),
        };
        conn.conn().scalar("PRAGMA data_version", &[])
    }
}

/// The pool's WAL checkpointer thread and the channel that stops or pauses it.
struct Checkpointer {
    stop: std::sync::mpsc::Sender<Tick>,
    thread: std::thread::JoinHandle<()>,
}

/// What the checkpointer is told.
enum Tick {
    Stop,
    /// Close the connection (then say so on the channel given) until [`Tick::Resume`].
    Pause(std::sync::mpsc::Sender<()>),
    Resume,
}

/// While held, the pool's checkpointer has closed its connection (see
/// [`StorePool::pause_checkpoints`]); dropping it lets the checkpointer reopen one.
pub struct CheckpointPause<'a> {
    pool: &'a StorePool,
}

impl Drop for CheckpointPause<'_> {
    fn drop(&mut self) {
        if let Some(c) = self
            .pool
            .checkpointer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            let _ = c.stop.send(Tick::Resume);
        }
    }
}

/// A connection checked out of a [`StorePool`]; it goes back when dropped.
pub struct PooledStore {
    store: Option<Store>,
    pool: Arc<StorePool>,
}

impl StorePool {
    /// Open the store (creating and migrating it as [`Store::open`] does) and keep up to
    /// `max_idle` idle connections for reuse.
    pub fn open(url: &str, max_idle: usize) -> Result<Arc<StorePool>, StoreError> {
        StorePool::open_with(url, DEFAULT_LOCK_TIMEOUT, true, max_idle)
    }

    /// [`Self::open`] with a writer's lock timeout; `create: false` refuses a database that
    /// does not exist yet (for commands that only read or review).
    pub fn open_with(
        url: &str,
        lock_timeout: Duration,
        create: bool,
        max_idle: usize,
    ) -> Result<Arc<StorePool>, StoreError> {
        let mut first = Store::open_with(url, lock_timeout, create)?;
        let sqlite = first.backend() == crate::db::Backend::Sqlite;
        if sqlite {
            no_autocheckpoint(&mut first)?;
        }
        let pool = Arc::new(StorePool {
            url: url.to_string(),
            lock_timeout,
            idle: Mutex::new(vec![first]),
            max_idle: max_idle.max(1),
            checkpointer: Mutex::new(None),
            callers: Mutex::default(),
        });
        if sqlite {
            let store = Store::open_with(url, lock_timeout, false)?;
            let (stop, stopped) = std::sync::mpsc::channel();
            let reopen = (url.to_string(), lock_timeout);
            let thread = std::thread::Builder::new()
                .name("abm-wal-checkpoint".into())
                .spawn(move || checkpoints(store, reopen, stopped))
                .map_err(|e| StoreError::Corrupt(format!("starting the WAL checkpointer: {e}")))?;
            *pool.checkpointer.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(Checkpointer { stop, thread });
        }
        Ok(pool)
    }

    /// A connection: an idle one, or a new one (migrations already ran: opening is cheap).
    pub fn get(self: &Arc<Self>) -> Result<PooledStore, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let store = match idle {
            Some(s) => s,
            None => {
                let mut s = Store::open_with(&self.url, self.lock_timeout, false)?;
                if s.backend() == crate::db::Backend::Sqlite {
                    no_autocheckpoint(&mut s)?;
                }
                s
            }
        };
        Ok(PooledStore {
            store: Some(store),
            pool: Arc::clone(self),
        })
    }

    /// SQLite: the checkpointer closes its connection until the returned guard is dropped (it
    /// waits for the close), so that a command holding the pool's only other connection may
    /// leave WAL mode for a while (a first load: see `import`). PostgreSQL: nothing to pause.
    pub fn pause_checkpoints(&self) -> CheckpointPause<'_> {
        // The memo's connection too (it opens again when a token is next checked).
        self.callers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .version_conn = None;
        if let Some(c) = self
            .checkpointer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            let (ack, acked) = std::sync::mpsc::channel();
            if c.stop.send(Tick::Pause(ack)).is_ok() {
                let _ = acked.recv_timeout(Duration::from_secs(10));
            }
        }
        CheckpointPause { pool: self }
    }

    fn sqlite(&self) -> bool {
        !matches!(
            crate::Location::parse(&self.url),
            crate::Location::Postgres(_)
        )
    }

    /// The caller of `secret` when [`StorePool::authenticate`] found it live and nothing was
    /// committed to the store since (no token revoked, by this process or another): a request's
    /// token check without a store call but one `PRAGMA data_version` (SQLite). `None` means
    /// "check it": always on PostgreSQL, and after any commit.
    pub fn known_caller(&self, secret: &str) -> Option<Caller> {
        if !self.sqlite() {
            return None;
        }
        let mut memo = self.callers.lock().unwrap_or_else(|e| e.into_inner());
        let (seen, caller) = memo.callers.get(&crate::tokens::digest(secret))?.clone();
        let now = memo.version(&self.url, self.lock_timeout).ok()?;
        (now == seen).then_some(caller)
    }

    /// The live token `secret` presents, if any, checked in the store; on SQLite its caller is
    /// remembered for [`StorePool::known_caller`] with the data version read before the check
    /// (a commit in between makes the memo stale, never wrong).
    pub fn authenticate(self: &Arc<Self>, secret: &str) -> Result<Option<Caller>, StoreError> {
        let version = if self.sqlite() {
            let mut memo = self.callers.lock().unwrap_or_else(|e| e.into_inner());
            memo.version(&self.url, self.lock_timeout).ok()
        } else {
            None
        };
        let caller = self.get()?.token_authenticate(secret)?;
        if let (Some(v), Some(c)) = (version, &caller) {
            let mut memo = self.callers.lock().unwrap_or_else(|e| e.into_inner());
            // Only the callers of the current version are worth keeping.
            memo.callers.retain(|_, (seen, _)| *seen == v);
            memo.callers
                .insert(crate::tokens::digest(secret), (v, c.clone()));
        }
        Ok(caller)
    }

    /// Idle connections held now.
    pub fn idle(&self) -> usize {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// SQLite: a pooled connection never checkpoints the WAL on commit (the commit that crosses
/// SQLite's 1,000-page mark would copy the pages into the database and sync it: tens of ms for
/// one unlucky request); the pool's checkpointer thread does it instead.
fn no_autocheckpoint(s: &mut Store) -> Result<(), StoreError> {
    s.conn()
        .query_each("PRAGMA wal_autocheckpoint = 0", &[], &mut |_| Ok(()))
}

/// The pool's WAL checkpointer (SQLite): a passive checkpoint every 100 ms on a connection of
/// its own — it copies committed pages back into the database without blocking readers or the
/// writer — until the pool is dropped (`stopped` then says so, or hangs up).
fn checkpoints(
    store: Store,
    (url, lock_timeout): (String, Duration),
    stopped: std::sync::mpsc::Receiver<Tick>,
) {
    use std::sync::mpsc::RecvTimeoutError;
    let mut store = Some(store);
    loop {
        match stopped.recv_timeout(Duration::from_millis(100)) {
            Err(RecvTimeoutError::Timeout) => {
                // A busy or failed checkpoint is tried again at the next tick.
                if let Some(s) = store.as_mut() {
                    let _ = s
                        .conn()
                        .query_each("PRAGMA wal_checkpoint(PASSIVE)", &[], &mut |_| Ok(()));
                }
            }
            Ok(Tick::Pause(ack)) => {
                store = None;
                let _ = ack.send(());
            }
            // A failed reopen is tried again at the next resume; until then, no checkpoints
            // (the last connection to close still moves the WAL into the file).
            Ok(Tick::Resume) => {
                if store.is_none() {
                    store = Store::open_with(&url, lock_timeout, false).ok();
                }
            }
            Ok(Tick::Stop) | Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    // The store closes here, after every idle connection (`StorePool`'s drop): the last
    // connection to close copies the WAL into the database and removes it, so a finished
    // command leaves one self-contained database file.
}

impl Drop for StorePool {
    fn drop(&mut self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.callers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .version_conn = None;
        if let Some(c) = self
            .checkpointer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = c.stop.send(Tick::Stop);
            let _ = c.thread.join();
        }
    }
}

impl std::ops::Deref for PooledStore {
    type Target = Store;
    fn deref(&self) -> &Store {
        self.store.as_ref().expect("checked out")
    }
}

impl std::ops::DerefMut for PooledStore {
    fn deref_mut(&mut self) -> &mut Store {
        self.store.as_mut().expect("checked out")
    }
}

impl Drop for PooledStore {
    fn drop(&mut self) {
        if let Some(s) = self.store.take() {
            let mut idle = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < self.pool.max_idle {
                idle.push(s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{ConnExt, RowExt};

    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}

    #[test]
    fn the_pool_is_shareable_and_a_store_crosses_threads() {
        assert_send_sync::<StorePool>();
        assert_send_sync::<Arc<StorePool>>();
        assert_send::<Store>();
        assert_send::<PooledStore>();
    }

    /// A token found live is known again without a store call until anything is committed —
    /// a revoke through another connection (as `abm token revoke` in another process) included.
    #[test]
    fn a_live_token_is_known_until_the_next_commit() {
        use crate::tokens::Role;
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("abm.db").display().to_string();
        let pool = StorePool::open(&url, 2).unwrap();
        let secret = pool
            .get()
            .unwrap()
            .token_create("ann", Role::Viewer)
            .unwrap();
        assert_eq!(pool.known_caller(&secret), None, "not checked yet");
        let ann = pool.authenticate(&secret).unwrap().unwrap();
        assert_eq!(ann.role, Role::Viewer);
        assert_eq!(pool.known_caller(&secret), Some(ann.clone()));
        assert_eq!(pool.known_caller("abm_not-a-token"), None);
        assert_eq!(pool.authenticate("abm_not-a-token").unwrap(), None);

        let mut other = Store::open(&url).unwrap();
        other.token_create("bob", Role::Admin).unwrap();
        assert_eq!(
            pool.known_caller(&secret),
            None,
            "a commit since: check again"
        );
        assert_eq!(pool.authenticate(&secret).unwrap(), Some(ann.clone()));
        assert_eq!(pool.known_caller(&secret), Some(ann));

        other.token_revoke("ann").unwrap();
        assert_eq!(
            pool.known_caller(&secret),
            None,
            "revoked elsewhere: refused at once"
        );
        assert_eq!(pool.authenticate(&secret).unwrap(), None);
        assert_eq!(pool.known_caller(&secret), None);
    }

    #[test]
    fn connections_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("abm.db").display().to_string();
        let pool = StorePool::open(&url, 2).unwrap();
        {
            let (mut a, mut b, mut c) = (
                pool.get().unwrap(),
                pool.get().unwrap(),
                pool.get().unwrap(),
            );
            for s in [&mut a, &mut b, &mut c] {
                assert!(s.schema_version().unwrap() >= 1);
            }
        }
        assert_eq!(pool.idle(), 2, "at most max_idle kept");
    }

    /// A command that used the pool leaves one self-contained database file: dropping the pool
    /// stops the checkpointer and closes every connection, and the last close moves the WAL
    /// into the database (a copy of `abm.db` alone holds everything committed).
    #[test]
    fn dropping_the_pool_leaves_no_wal_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abm.db");
        let url = path.display().to_string();
        let pool = StorePool::open(&url, 2).unwrap();
        {
            let mut s = pool.get().unwrap();
            s.conn()
                .query_each(
                    "CREATE TABLE t AS SELECT 'x' AS v FROM accounts WHERE 0",
                    &[],
                    &mut |_| Ok(()),
                )
                .unwrap();
        }
        let wal = dir.path().join("abm.db-wal");
        assert!(wal.exists(), "the pool writes through the WAL");
        drop(pool);
        assert!(
            !wal.exists(),
            "the WAL is checkpointed and removed when the pool is dropped"
        );
        let copy = dir.path().join("copy.db");
        std::fs::copy(&path, &copy).unwrap();
        let mut store =
            Store::open_with(&copy.display().to_string(), DEFAULT_LOCK_TIMEOUT, false).unwrap();
        let n = store
            .conn()
            .query_one(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 't'",
                &[],
                |r| r.i(0),
            )
            .unwrap();
        assert_eq!(n, Some(1), "the copy of the file alone holds the table");
    }
}
