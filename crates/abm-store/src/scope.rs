//! Which accounts a run reads: all of them, or some by id (`Scope`, the `IN` lists it reads
//! them with), and — for runs that scale with change — the marks a run leaves (`Marks`) and
//! the accounts the next run must assess (`select_scope`).

use crate::db::{Backend, Batch, Conn, ConnExt, RowExt, Value};
use crate::run::cluster;
use crate::{meta, set_meta, StoreError};
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
    conn.batch_execute(
        "CREATE TEMP TABLE IF NOT EXISTS abm_scope (id INTEGER PRIMARY KEY);
         CREATE TEMP TABLE IF NOT EXISTS abm_scope_rows (rid INTEGER PRIMARY KEY);
         DELETE FROM temp.abm_scope; DELETE FROM temp.abm_scope_rows;",
    )?;
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
    conn.batch_execute("DELETE FROM temp.abm_scope; DELETE FROM temp.abm_scope_rows;")?;
    result
}

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

/// The accounts (`accounts.id`, ascending) a run that scales with change assesses — those
/// with rows added or changed since the previous run's `marks` (a greater id, a later import;
/// a deal that moved away marks its old account through a trigger), and those whose state
/// says to (`due_at` NULL: a decision, a re-evaluation, a state the previous run changed; or
/// due by `as_of`) — and the cluster and computed score of every other one.
#[allow(clippy::type_complexity)]
pub(crate) fn select_scope(
    conn: &mut dyn Conn,
    marks: &Marks,
    as_of: Instant,
) -> Result<(Vec<i64>, Vec<(Cluster, Option<f64>)>), StoreError> {
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
    let others = others
        .into_iter()
        .filter(|(a, ..)| ids.binary_search(a).is_err())
        .map(|(_, c, s)| (c, s))
        .collect();
    Ok((ids, others))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

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
