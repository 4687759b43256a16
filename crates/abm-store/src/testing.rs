//! Test support, for this crate's tests and those of the crates above it (no test code of its
//! own runs in production: nothing here is called outside tests).

/// Run `f` with a store URL inside a PostgreSQL schema of its own (`t_{name}_{pid}`) on the
/// server of `ABM_TEST_PG_URL`, dropped afterwards whether `f` returns or panics (the panic
/// then goes on). Panics, naming the URL, when the variable is unset or the server does not
/// answer: callers are `#[ignore = "needs PostgreSQL …"]` tests.
pub fn in_pg_schema<R>(name: &str, f: impl FnOnce(&str) -> R) -> R {
    let admin = std::env::var("ABM_TEST_PG_URL").expect("ABM_TEST_PG_URL is not set");
    let schema = format!("t_{name}_{}", std::process::id()).to_lowercase();
    let mut c = ::postgres::Client::connect(&admin, ::postgres::NoTls)
        .unwrap_or_else(|e| panic!("ABM_TEST_PG_URL={admin}: {e}"));
    c.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    ))
    .unwrap();
    let sep = if admin.contains('?') { '&' } else { '?' };
    let url = format!("{admin}{sep}options=-csearch_path%3D{schema}");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&url)));
    let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
    match result {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e),
    }
}

/// One slice of a dated timeline, as a CSV file's bytes: `header`, then the lines of `rows`
/// (each with its instant) dated after `after` and up to `upto` — for tests that import a
/// timeline a piece at a time with a run after each piece.
pub fn csv_slice(
    header: &str,
    rows: &[(abm_core::Instant, String)],
    after: abm_core::Instant,
    upto: abm_core::Instant,
) -> Vec<u8> {
    let mut slice = format!("{header}\n");
    for (at, l) in rows {
        if *at > after && *at <= upto {
            slice.push_str(l);
            slice.push('\n');
        }
    }
    slice.into_bytes()
}

/// The latest run's export, each row as its JSON (for comparing two stores row by row).
pub fn export_json(store: &mut crate::Store) -> Vec<String> {
    let mut rows = Vec::new();
    store
        .export(&mut |r| {
            rows.push(serde_json::to_string(r).expect("an export row serializes"));
            Ok(())
        })
        .expect("the store exports");
    rows
}

/// On this thread, fold the events newer than the packs into them from `fold_from` ids of tail
/// on, read a scoped run's tail by id range from `by_range_from` accounts on, and fold one
/// account's newer events (its pack alone) from `account_from` of them on (`None`: the
/// defaults). Results never depend on it; it picks the code path (`packs.rs`).
pub fn set_pack_policy(
    fold_from: Option<i64>,
    by_range_from: Option<usize>,
    account_from: Option<u64>,
) {
    crate::packs::set_fold_policy(fold_from, by_range_from, account_from);
}

/// On this thread, parse the accounts' rows and decode the packs a load reads on helper
/// threads from `from` accounts read on (`None`: the defaults, 4096). Results never depend on
/// it.
pub fn set_load_helpers_from(from: Option<usize>) {
    crate::beside::set_beside_from(from);
}

/// How many packs cover events past `packs_upto` (written by a read that folded one account's
/// tail alone).
pub fn packs_past_floor(store: &mut crate::Store) -> i64 {
    use crate::db::ConnExt;
    let conn = store.conn();
    let floor = crate::meta(conn, "packs_upto").unwrap();
    conn.scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM event_packs WHERE upto > ?",
        &[crate::db::Value::Int(floor)],
    )
    .unwrap()
}

/// How many first loads on this thread built their packs from the rows as they were written
/// (rather than reading the table back): tells a test which path it exercised.
pub fn streamed_pack_builds() -> u64 {
    crate::packs::streamed_builds()
}

/// How many SQLite transactions on this thread ran in rollback-journal mode (a first load of
/// files with no other connection open: see `journal`).
pub fn journaled_loads() -> u64 {
    crate::journal::journaled()
}

/// The partial `events_account` index (migration 0015): its bound (`meta`), its definition as
/// the database keeps it, and — on SQLite — the plan of an account's newer events under that
/// bound.
pub fn events_account_index(store: &mut crate::Store) -> (i64, String, Option<String>) {
    use crate::db::{Backend, ConnExt, RowExt};
    let conn = store.conn();
    let from = crate::packs::events_account_from(conn).unwrap();
    let sqlite = conn.backend() == Backend::Sqlite;
    let def = conn
        .query_one(
            if sqlite {
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'events_account'"
            } else {
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'events_account'
                 AND schemaname = current_schema()"
            },
            &[],
            |r| r.string(0),
        )
        .unwrap()
        .unwrap_or_default();
    let plan = sqlite.then(|| {
        let mut plan = Vec::new();
        conn.query_each(
            &format!(
                "EXPLAIN QUERY PLAN {}",
                crate::packs::newer_events_of_account(from)
            ),
            &[crate::db::Value::Int(1), crate::db::Value::Int(0)],
            &mut |r| {
                plan.push(r.string(3)?);
                Ok(())
            },
        )
        .unwrap();
        plan.join("; ")
    });
    (from, def, plan)
}
