//! Which accounts a run reads: all of them, or some by id (`Scope`, the `IN` lists it reads
//! them with), and — for runs that scale with change — the marks a run leaves (`Marks`) and
//! the accounts the next run must assess (`select_scope`).

use crate::db::{Backend, Batch, Conn, ConnExt, RowExt, Value};
use crate::run::cluster;
use crate::{meta, set_meta, StoreError};
use abm_core::summary::ClusterCounts;
use abm_core::{Cluster, Instant};

/// Which accounts a load reads: every stored one (a run), or some by `accounts.id`, each
/// account's rows read by index (a re-evaluation, `Store::reevaluate`).
#[derive(Clone, Copy)]
pub(crate) enum Scope<'a> {
    All,
    /// `accounts.id`s, ascending.
    Ids(&'a [i64]),
}

/// From this many ids on, SQLite reads a scope in one sorted pass per table
/// ([`sorted_each`]) rather than in `IN (…)` lists.
const SORTED_FROM: usize = 4096;

/// The lengths of the `IN (…)` lists a scoped query uses (a chunk is padded with its last id),
/// so each shape is prepared once.
const IN_SIZES: [usize; 4] = [1, 8, 64, 512];

impl Scope<'_> {
    /// Stream `sql`, whose `{scope}` stands for a condition on `column`, over the scope: once
    /// for all accounts, else once per chunk of ids (`params` first, then the chunk's ids).
    pub(crate) fn each(
        &self,
        conn: &mut dyn Conn,
        sql: &str,
        column: &str,
        params: &[Value<'_>],
        f: &mut dyn FnMut(&dyn crate::db::Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let Scope::Ids(ids) = self else {
            return conn.query_each(&sql.replace("{scope}", "1 = 1"), params, f);
        };
        if ids.len() >= SORTED_FROM && conn.backend() == Backend::Sqlite {
            return sorted_each(conn, ids, sql, column, params, f);
        }
        let ids: Vec<Value<'_>> = ids.iter().map(|&id| Value::Int(id)).collect();
        for (q, p) in in_chunks(sql, column, params, &ids) {
            conn.query_each(&q, &p, f)?;
        }
        Ok(())
    }
}

/// [`Scope::each`] over many ids on SQLite: the ids into a temporary table, the rowids of the
/// scope's rows in the queried table into another (from the table's index on `column`, read in
/// id order: the index alone), then the rows themselves by ascending rowid — one forward pass
/// over the table's pages, where `IN` lists fetch each account's rows wherever they lie.
fn sorted_each(
    conn: &mut dyn Conn,
    ids: &[i64],
    sql: &str,
    column: &str,
    params: &[Value<'_>],
    f: &mut dyn FnMut(&dyn crate::db::Row) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    // The one table the query reads (each scoped query reads one).
    let table = sql
        .split_once(" FROM ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .ok_or_else(|| StoreError::Corrupt(format!("a scoped query without a table: {sql}")))?;
    // One statement at a time, each prepared once per connection (a batch is parsed again
    // on every call: a server's one-account re-evaluations run this for every query).
    for sql in [
        "CREATE TEMP TABLE IF NOT EXISTS abm_scope (id INTEGER PRIMARY KEY)",
        "CREATE TEMP TABLE IF NOT EXISTS abm_scope_rows (rid INTEGER PRIMARY KEY)",
        CLEAR_SCOPE,
        CLEAR_SCOPE_ROWS,
    ] {
        conn.execute(sql, &[])?;
    }
    let mut batch = Batch::new(1);
    for &id in ids {
        batch.int(id);
    }
    conn.insert_batch("temp.abm_scope (id)", &batch, "")?;
    let q = sql.replace("{scope}", "rowid IN (SELECT rid FROM temp.abm_scope_rows)");
    let result = conn
        .execute(
            &format!(
                "INSERT INTO temp.abm_scope_rows (rid) SELECT t.rowid FROM temp.abm_scope s
                 CROSS JOIN {table} t ON t.{column} = s.id"
            ),
            &[],
        )
        .and_then(|_| conn.query_each(&q, params, f));
    conn.execute(CLEAR_SCOPE, &[])?;
    conn.execute(CLEAR_SCOPE_ROWS, &[])?;
    result
}

const CLEAR_SCOPE: &str = "DELETE FROM temp.abm_scope";
const CLEAR_SCOPE_ROWS: &str = "DELETE FROM temp.abm_scope_rows";

/// `sql` with its `{scope}` replaced by `column IN (…)` for each chunk of `values`, with its
/// parameters (`params`, then the chunk's values, padded with its last one to one of
/// [`IN_SIZES`]).
pub(crate) fn in_chunks<'v>(
    sql: &str,
    column: &str,
    params: &[Value<'v>],
    values: &[Value<'v>],
) -> Vec<(String, Vec<Value<'v>>)> {
    let max = IN_SIZES[IN_SIZES.len() - 1];
    values
        .chunks(max)
        .map(|chunk| {
            let size = IN_SIZES
                .iter()
                .copied()
                .find(|&s| s >= chunk.len())
                .unwrap_or(max);
            let marks = vec!["?"; size].join(", ");
            let q = sql.replace("{scope}", &format!("{column} IN ({marks})"));
            let mut p = params.to_vec();
            p.extend((0..size).map(|k| chunk[k.min(chunk.len() - 1)]));
            (q, p)
        })
        .collect()
}

/// How far a run read the stored rows: the greatest ids and import, and how many account
/// columns there were (`meta`, `run_mark_*`; -1 before the first run that kept them).
#[derive(Clone, Copy)]
pub(crate) struct Marks {
    events: i64,
    triggers: i64,
    deals: i64,
    import: i64,
    pub(crate) columns: i64,
}

const MARKS: [&str; 5] = [
    "run_mark_events",
    "run_mark_triggers",
    "run_mark_deals",
    "run_mark_import",
    "run_mark_columns",
];

impl Marks {
    pub(crate) fn current(conn: &mut dyn Conn) -> Result<Marks, StoreError> {
        let mut max = |sql: &str| conn.scalar(sql, &[]);
        Ok(Marks {
            events: max("SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM events")?,
            triggers: max("SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM triggers")?,
            deals: max("SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM deals")?,
            import: max("SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM imports")?,
            columns: max("SELECT CAST(COUNT(*) AS BIGINT) FROM account_columns")?,
        })
    }

    /// The marks the latest run left (`None` when unknown).
    pub(crate) fn of_latest_run(conn: &mut dyn Conn) -> Result<Option<Marks>, StoreError> {
        let mut v = [0i64; 5];
        for (k, key) in MARKS.iter().enumerate() {
            v[k] = meta(conn, key)?;
        }
        Ok(v.iter().all(|&x| x >= 0).then_some(Marks {
            events: v[0],
            triggers: v[1],
            deals: v[2],
            import: v[3],
            columns: v[4],
        }))
    }

    pub(crate) fn record(&self, conn: &mut dyn Conn) -> Result<(), StoreError> {
        let v = [
            self.events,
            self.triggers,
            self.deals,
            self.import,
            self.columns,
        ];
        for (key, value) in MARKS.iter().zip(v) {
            set_meta(conn, key, value)?;
        }
        Ok(())
    }
}

/// The accounts a run that scales with change does not assess, as they count: how many per
/// cluster, and the greatest computed score among them (what the run's counts and notes add).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Others {
    pub(crate) counts: ClusterCounts,
    pub(crate) len: usize,
    pub(crate) max_score: Option<f64>,
}

impl Others {
    fn add(&mut self, c: Cluster, n: u64, score: Option<f64>) {
        for _ in 0..n {
            self.counts.add(c);
        }
        self.len += n as usize;
        self.max_score = max(self.max_score, score);
    }
}

fn max(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// The accounts with rows added or changed since the previous run's `marks` (a greater id, a
/// later import; a deal that moved away marks its old account through a trigger), ascending.
fn changed_since(conn: &mut dyn Conn, marks: &Marks) -> Result<Vec<i64>, StoreError> {
    let mut ids: Vec<i64> = Vec::new();
    for (sql, mark) in [
        ("SELECT id FROM accounts WHERE import_id > ?", marks.import),
        ("SELECT account FROM events WHERE id > ?", marks.events),
        ("SELECT account FROM triggers WHERE id > ?", marks.triggers),
        ("SELECT account FROM deals WHERE id > ?", marks.deals),
        (
            "SELECT account FROM deals WHERE import_id > ?",
            marks.import,
        ),
    ] {
        conn.query_each(sql, &[Value::Int(mark)], &mut |r| {
            ids.push(r.i(0)?);
            Ok(())
        })?;
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// One pass over `account_state` without a sort (a `GROUP BY cluster` sorted the 1M states by
/// their text: 9% of a daily run at 1M): per cluster, in [`Cluster::ALL`]'s order, the states
/// due after the instant; then the states whose cluster is none of them (a corrupt row); then
/// the greatest score among the states due after it. One parameter per cluster, then one (the
/// instant each time: PostgreSQL's placeholders are numbered in order).
static OTHERS_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let mut cols: Vec<String> = Cluster::ALL
        .iter()
        .map(|c| {
            format!(
                "CAST(COALESCE(SUM(CASE WHEN cluster = '{}' AND due_at > ? THEN 1 ELSE 0 END), 0) AS BIGINT)",
                c.as_str()
            )
        })
        .collect();
    let names: Vec<String> = Cluster::ALL
        .iter()
        .map(|c| format!("'{}'", c.as_str()))
        .collect();
    cols.push(format!(
        "CAST(COALESCE(SUM(CASE WHEN cluster NOT IN ({}) THEN 1 ELSE 0 END), 0) AS BIGINT)",
        names.join(", ")
    ));
    cols.push("MAX(CASE WHEN due_at > ? THEN score END)".into());
    format!("SELECT {} FROM account_state", cols.join(", "))
});

/// The accounts (`accounts.id`, ascending) a run that scales with change assesses — those
/// with rows added or changed since the previous run's `marks`, and those whose state says to
/// (`due_at` NULL: a decision, a re-evaluation, a state the previous run changed; or due by
/// `as_of`: both read by the `account_state_due` index, migration 0013) — and how every other
/// one counts: one aggregate over the states due later, less the changed accounts among them
/// (read by key).
pub(crate) fn select_scope(
    conn: &mut dyn Conn,
    marks: &Marks,
    as_of: Instant,
) -> Result<(Vec<i64>, Others), StoreError> {
    let changed = changed_since(conn, marks)?;
    let mut ids = changed.clone();
    for (sql, params) in [
        (
            "SELECT account FROM account_state WHERE due_at IS NULL",
            &[][..],
        ),
        (
            "SELECT account FROM account_state WHERE due_at <= ?",
            &[Value::Int(as_of.0)][..],
        ),
    ] {
        conn.query_each(sql, params, &mut |r| {
            ids.push(r.i(0)?);
            Ok(())
        })?;
    }
    ids.sort_unstable();
    ids.dedup();
    // Every state due later, counted where it lies (a full pass over `account_state` in the
    // database: most states are due later, so no index helps), …
    let mut others = Others::default();
    let later = Value::Int(as_of.0);
    let params = [later; Cluster::ALL.len() + 1];
    conn.query_each(&OTHERS_SQL, &params, &mut |r| {
        if r.i(Cluster::ALL.len())? > 0 {
            return Err(StoreError::Corrupt(
                "account_state.cluster: a value that names no cluster".into(),
            ));
        }
        let best = r.real(Cluster::ALL.len() + 1)?;
        for (k, c) in Cluster::ALL.into_iter().enumerate() {
            others.add(c, r.i(k)?.max(0) as u64, None);
        }
        others.max_score = best;
        Ok(())
    })?;
    // … less the changed accounts among them, which the run assesses.
    let mut taken: Vec<(i64, Option<f64>)> = Vec::new();
    Scope::Ids(&changed).each(
        conn,
        "SELECT account, cluster, score FROM account_state WHERE due_at > ? AND {scope}",
        "account",
        &[later],
        &mut |r| {
            let c = cluster("account_state", "cluster", r.s(1)?)?;
            others.counts.sub(c);
            others.len -= 1;
            taken.push((r.i(0)?, r.real(2)?));
            Ok(())
        },
    )?;
    // The greatest score again when it may have been one of theirs: the best states due later
    // until one that is not taken.
    if let Some(best) = others.max_score {
        if taken.iter().any(|(_, s)| s.is_some_and(|s| s >= best)) {
            taken.sort_unstable_by_key(|t| t.0);
            let mut found = None;
            conn.query_each(
                "SELECT account, score FROM account_state WHERE due_at > ? AND score IS NOT NULL
                 ORDER BY score DESC LIMIT ?",
                &[later, Value::Int(taken.len() as i64 + 1)],
                &mut |r| {
                    let a = r.i(0)?;
                    if found.is_none() && taken.binary_search_by_key(&a, |t| t.0).is_err() {
                        found = r.real(1)?;
                    }
                    Ok(())
                },
            )?;
            others.max_score = found;
        }
    }
    Ok((ids, others))
}

/// [`select_scope`] as it was before migration 0013, every state walked in Rust: the tests'
/// oracle.
#[cfg(test)]
pub(crate) fn select_scope_walked(
    conn: &mut dyn Conn,
    marks: &Marks,
    as_of: Instant,
) -> Result<(Vec<i64>, Others), StoreError> {
    let mut ids = changed_since(conn, marks)?;
    let mut others = Vec::new();
    conn.query_each(
        "SELECT account, cluster, due_at, score FROM account_state",
        &[],
        &mut |r| {
            let account = r.i(0)?;
            match r.int(2)? {
                Some(due) if due > as_of.0 => others.push((
                    account,
                    cluster("account_state", "cluster", r.s(1)?)?,
                    r.real(3)?,
                )),
                _ => ids.push(account),
            }
            Ok(())
        },
    )?;
    ids.sort_unstable();
    ids.dedup();
    let mut o = Others::default();
    for (a, c, s) in others {
        if ids.binary_search(&a).is_err() {
            o.add(c, 1, s);
        }
    }
    Ok((ids, o))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    /// The indexed selection and its aggregate equal the walk over every state (both
    /// backends): states with no due instant, due before, at and after as_of, scores and none,
    /// changed accounts among every kind — the best score among them too — and enough of them
    /// for SQLite's sorted pass.
    fn indexed_selection_equals_the_walk(url: &str) {
        let mut store = Store::open(url).unwrap();
        let conn = store.conn();
        let n = 12_000i64;
        let as_of = 1_000_000i64;
        let mut states = Batch::new(6);
        let mut events = Batch::new(7);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
        let mut event_id = 0i64;
        for a in 1..=n {
            let c = Cluster::ALL[next(5) as usize].as_str();
            let due = match next(6) {
                0 => None,
                1 => Some(as_of - 1 - next(1000) as i64),
                2 => Some(as_of),
                _ => Some(as_of + 1 + next(1000) as i64),
            };
            // The best score on an account due later that gets new events.
            let score = if a == 77 {
                Some(1000.0)
            } else if next(4) == 0 {
                None
            } else {
                Some(next(10_000) as f64 / 100.0)
            };
            states
                .int(a)
                .text(c)
                .int(0)
                .opt_int(due)
                .opt_real(score)
                .int(1);
            let k = if a == 77 { 2 } else { next(3) };
            for _ in 0..k {
                event_id += 1;
                events
                    .int(event_id)
                    .blob(&event_id.to_le_bytes())
                    .int(a)
                    .int(0)
                    .text("t")
                    .text("c")
                    .int(1);
            }
        }
        conn.insert_batch(
            "account_state (account, cluster, entered_at, due_at, score, updated_run)",
            &states,
            "",
        )
        .unwrap();
        conn.insert_batch(
            "events (id, ident, account, occurred_at, type, contact_id, import_id)",
            &events,
            "",
        )
        .unwrap();
        conn.execute(
            "UPDATE account_state SET due_at = ? WHERE account = 77",
            &[Value::Int(as_of + 5)],
        )
        .unwrap();
        for (events_mark, at) in [
            (event_id, as_of),
            (event_id / 2, as_of),
            (0, as_of),
            (event_id - 3, as_of - 500),
            (event_id / 3, as_of + 2000),
        ] {
            let marks = Marks {
                events: events_mark,
                triggers: 0,
                deals: 0,
                import: 1,
                columns: 0,
            };
            let want = select_scope_walked(conn, &marks, Instant(at)).unwrap();
            let got = select_scope(conn, &marks, Instant(at)).unwrap();
            assert_eq!(got, want, "events after {events_mark}, as of {at}");
            assert!(got.1.len > 0 || at > as_of + 1000);
        }
    }

    #[test]
    fn indexed_selection_equals_the_walk_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        indexed_selection_equals_the_walk(&dir.path().join("s.db").display().to_string());
    }

    #[test]
    #[ignore = "needs PostgreSQL: set ABM_TEST_PG_URL (run by .ci/run)"]
    fn indexed_selection_equals_the_walk_on_postgres() {
        crate::testing::in_pg_schema("scope_select", indexed_selection_equals_the_walk);
    }

    /// The sorted pass reads the same rows as the `IN` lists (a table with an index on its
    /// account column, rows of each account scattered over the table).
    #[test]
    fn a_sorted_pass_reads_the_rows_in_lists_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db").display().to_string()).unwrap();
        let conn = store.conn();
        conn.batch_execute(
            "CREATE TABLE ev (id INTEGER PRIMARY KEY, account INTEGER NOT NULL, at INTEGER);
             CREATE INDEX ev_account ON ev (account);",
        )
        .unwrap();
        let mut b = Batch::new(3);
        for k in 0..30_000i64 {
            b.int(k + 1).int((k * 7_919) % 9_000).int(k % 13);
        }
        conn.insert_batch("ev (id, account, at)", &b, "").unwrap();
        // Every other account, and some that have no rows.
        let ids: Vec<i64> = (0..12_000).step_by(2).collect();
        assert!(ids.len() >= SORTED_FROM);
        let sql = "SELECT id, account, at FROM ev WHERE at >= ? AND {scope}";
        let read = |conn: &mut dyn Conn, sorted: bool| {
            let mut rows = Vec::new();
            let mut f = |r: &dyn crate::db::Row| {
                rows.push((r.i(0)?, r.i(1)?, r.i(2)?));
                Ok(())
            };
            let params = [Value::Int(3)];
            if sorted {
                Scope::Ids(&ids)
                    .each(conn, sql, "account", &params, &mut f)
                    .unwrap();
            } else {
                let values: Vec<Value<'_>> = ids.iter().map(|&id| Value::Int(id)).collect();
                for (q, p) in in_chunks(sql, "account", &params, &values) {
                    conn.query_each(&q, &p, &mut f).unwrap();
                }
            }
            rows.sort_unstable();
            rows
        };
        let want = read(conn, false);
        assert!(want.len() > 10_000);
        assert_eq!(read(conn, true), want);
        // Twice on the same connection (the temporary tables are emptied after each pass).
        assert_eq!(read(conn, true), want);
    }
}
