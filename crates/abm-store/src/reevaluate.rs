//! One account, now: re-assess a few stored accounts from their own rows (each read by index:
//! `accounts`, `account_state`, `checkpoints`, `events`, `triggers`, `deals`) exactly as a run
//! does, and record the outcome **under the latest run, as a review decision is recorded**:
//!
//! - the account's row becomes its current row (`current_rows`, `decided` 0), shown over the
//!   latest run's row by export, summary, history and the API until the next run;
//! - its state (`account_state`: cluster, entered_at, floor) is updated, a move is a
//!   `movements` row (run: the latest run; as_of: the re-evaluation's), a proposal or conflict
//!   opened or closed is a `checkpoints` row under the latest run, with the rows an approval or
//!   a rejection would give (`proposal_rows`), so that a decision shows at once as well;
//! - no snapshot row (the runs' record is immutable); `state_version` is bumped, so the next
//!   run, which computes every re-evaluated account again from the same data and state, is
//!   recorded even at the same as_of.
//!
//! The as_of is never before the latest run's. An account without a state yet (imported after
//! the latest run) is assessed but not recorded: it joins at the next run. One short write
//! transaction.

use crate::db::{Conn, ConnExt, RowExt, TxMode, Value};
use crate::run::{
    compute_current, deal_product_dates, load_with, write_one, Record, RunOptions, Texts, Writer,
};
use crate::scope::{in_chunks, Scope};
use crate::{meta, set_meta, StoreError, Tx};
use abm_core::movement::{CheckpointKind, Movement};
use abm_core::{AccountIdx, Cluster, Instant, Rules};
use abm_io::segment::RowScratch;
use serde::Serialize;
use std::collections::HashMap;

/// What [`crate::Store::reevaluate`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Reevaluation {
    /// The run the outcomes are recorded under (the latest).
    pub run: i64,
    pub as_of: Instant,
    /// One per stored account asked for, in `account_id` order.
    pub accounts: Vec<Reassessed>,
    /// Ids asked for that name no stored account.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<String>,
}

/// One account's new outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Reassessed {
    pub account_id: String,
    /// The effective cluster now.
    pub cluster: Cluster,
    /// The effective cluster before (none for an account no run has assessed yet).
    pub previous: Option<Cluster>,
    /// Where the rules alone would put it (a move waiting for a reviewer stays here).
    pub candidate: Cluster,
    pub movement: Movement,
    /// False for an account no run has assessed yet: nothing is recorded for it until the
    /// next run.
    pub recorded: bool,
    /// Review items this re-evaluation opened for the account.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checkpoints: Vec<NewCheckpoint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NewCheckpoint {
    pub id: i64,
    pub kind: CheckpointKind,
    pub from: Option<Cluster>,
    pub to: Option<Cluster>,
}

impl crate::Store {
    /// Re-assess the stored accounts `account_ids` as of `rules.as_of` (not before the latest
    /// run's) from their stored data, and record the outcome under the latest run (see the
    /// module). One write transaction.
    pub fn reevaluate(
        &mut self,
        rules: &Rules,
        account_ids: &[String],
    ) -> Result<Reevaluation, StoreError> {
        // Kept only once the transaction it was read in commits.
        let mut catalog = self.catalog.take();
        let crate::Store { conn, scoring, .. } = self;
        let mut tx = Tx::begin(conn.as_mut(), TxMode::Write)?;
        let r = reevaluate(&mut *tx, rules, account_ids, &mut catalog, scoring)?;
        tx.commit()?;
        self.catalog = catalog;
        Ok(r)
    }
}

/// What the deals' product catalog depends on: the greatest deal row id and the latest import
/// that changed a deal (deals are only ever inserted or upserted by an import, which sets
/// their `import_id`; never deleted). Two index lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DealsMark(i64, i64);

const DEALS_MAX_ID: &str = "SELECT MAX(id) FROM deals";
const DEALS_MAX_IMPORT: &str = "SELECT MAX(import_id) FROM deals";

impl DealsMark {
    fn current(conn: &mut dyn Conn) -> Result<DealsMark, StoreError> {
        // Bare `MAX(column)`: what SQLite answers from the index alone.
        let mut max = |sql: &str| -> Result<i64, StoreError> {
            Ok(conn
                .query_one(sql, &[], |r| r.int(0))?
                .flatten()
                .unwrap_or(0))
        };
        Ok(DealsMark(max(DEALS_MAX_ID)?, max(DEALS_MAX_IMPORT)?))
    }
}

/// Every product named on a stored deal with its first deal's creation, as of a deals' mark
/// (kept on a store's connection).
pub(crate) type Catalog = Option<(DealsMark, Vec<(String, Instant)>)>;

/// The deals' product dates (`run::deal_product_dates`): `cache` when the deals' mark is the
/// one it was read at, else read again into it. Call inside the transaction that uses them.
pub(crate) fn product_dates<'c>(
    conn: &mut dyn Conn,
    cache: &'c mut Catalog,
) -> Result<&'c [(String, Instant)], StoreError> {
    let mark = DealsMark::current(conn)?;
    if cache.as_ref().is_none_or(|(m, _)| *m != mark) {
        *cache = Some((mark, deal_product_dates(conn)?));
    }
    Ok(cache.as_ref().map_or(&[], |(_, d)| d.as_slice()))
}

fn reevaluate(
    conn: &mut dyn Conn,
    rules: &Rules,
    account_ids: &[String],
    catalog: &mut Catalog,
    scoring: &mut crate::account::ScoringCache,
) -> Result<Reevaluation, StoreError> {
    let (run, latest) = conn
        .query_one(
            "SELECT id, as_of FROM runs ORDER BY id DESC LIMIT 1",
            &[],
            |r| Ok((r.i(0)?, Instant(r.i(1)?))),
        )?
        .ok_or(StoreError::NoRuns)?;
    if rules.as_of < latest {
        return Err(StoreError::AsOfBeforeLatest {
            as_of: rules.as_of,
            latest,
            run,
        });
    }
    let mut wanted: Vec<&str> = account_ids.iter().map(String::as_str).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let texts: Vec<Value<'_>> = wanted.iter().map(|s| Value::Text(s)).collect();
    let mut found: Vec<i64> = Vec::with_capacity(wanted.len());
    for (q, p) in in_chunks(
        "SELECT id FROM accounts WHERE {scope}",
        "account_id",
        &[],
        &texts,
    ) {
        conn.query_each(&q, &p, &mut |r| {
            found.push(r.i(0)?);
            Ok(())
        })?;
    }
    found.sort_unstable();
    found.dedup();
    let opts = RunOptions {
        as_of: rules.as_of,
        full: false,
        threads: 1,
        log: &|_| {},
        progress: &|_, _, _| {},
    };
    // The product catalog (customers' whitespace) from the deals' product dates, read again
    // only when a deal changed.
    let dates = if rules.config.customers.products.is_empty() {
        Some(product_dates(conn, catalog)?)
    } else {
        None
    };
    let mut loaded = load_with(conn, rules, &opts, Scope::Ids(&found), dates)?;
    // Their newer events into their packs (in this transaction) if the read chose to fold (a read
    // by account never does: `packs::fold_from`).
    crate::packs::write(conn, std::mem::take(&mut loaded.pack_delta))?;
    let ids: Vec<Value<'_>> = found.iter().map(|&id| Value::Int(id)).collect();
    // The rows of the previous outcome these accounts replace (only the latest run's exist).
    for table in ["current_rows", "proposal_rows"] {
        for (q, p) in in_chunks(
            &format!("DELETE FROM {table} WHERE {{scope}}"),
            "account",
            &[],
            &ids,
        ) {
            conn.execute(&q, &p)?;
        }
    }
    let first_new = conn.scalar(
        "SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM checkpoints",
        &[],
    )?;
    let now = crate::wall_clock().to_string();
    let mut w = Writer::new(
        Record::Current,
        run,
        rules.as_of,
        now,
        format!("re-evaluation as of {}", rules.as_of),
    );
    let mut texts = Texts::lazy();
    let model = crate::account::scoring_model(scoring, rules, loaded.table.schema());
    let mut scratch = RowScratch::default();
    let mut accounts = Vec::with_capacity(loaded.ids.len());
    for i in 0..loaded.ids.len() {
        let c = compute_current(rules, &model, &loaded, i as AccountIdx, &mut scratch);
        let recorded = loaded.priors[i].is_some();
        if recorded {
            write_one(conn, &mut w, &mut texts, &loaded, rules, &c)?;
        }
        accounts.push(Reassessed {
            account_id: loaded.table.get(i as AccountIdx).id().to_string(),
            cluster: c.d.cluster,
            previous: c.d.previous,
            candidate: c.d.candidate,
            movement: c.d.movement,
            recorded,
            checkpoints: Vec::new(),
        });
    }
    w.flush(conn, true)?;
    if w.opened > 0 {
        let at: HashMap<i64, usize> = loaded
            .ids
            .iter()
            .enumerate()
            .map(|(i, &id)| (id, i))
            .collect();
        conn.query_each(
            "SELECT id, account, kind, from_cluster, to_cluster FROM checkpoints
             WHERE id > ? AND account IS NOT NULL ORDER BY id",
            &[Value::Int(first_new)],
            &mut |r| {
                let Some(&i) = at.get(&r.i(1)?) else {
                    return Ok(());
                };
                let cl = |k: usize| r.text(k).map(|t| t.and_then(Cluster::parse));
                accounts[i].checkpoints.push(NewCheckpoint {
                    id: r.i(0)?,
                    kind: crate::query::parse_code(
                        CheckpointKind::parse,
                        "checkpoints",
                        "kind",
                        r.s(2)?,
                    )?,
                    from: cl(3)?,
                    to: cl(4)?,
                });
                Ok(())
            },
        )?;
    }
    if accounts.iter().any(|a| a.recorded) {
        let sv = meta(conn, "state_version")?;
        set_meta(conn, "state_version", sv + 1)?;
    }
    accounts.sort_by(|a, b| a.account_id.cmp(&b.account_id));
    let known: std::collections::HashSet<&str> =
        accounts.iter().map(|a| a.account_id.as_str()).collect();
    let unknown = wanted
        .iter()
        .filter(|id| !known.contains(**id))
        .map(|s| s.to_string())
        .collect();
    Ok(Reevaluation {
        run,
        as_of: rules.as_of,
        accounts,
        unknown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The catalog's mark costs two index lookups, never a scan of the deals (SQLite's plans).
    #[test]
    fn the_deals_mark_reads_by_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = crate::Store::open(dir.path().join("a.db").to_str().unwrap()).unwrap();
        for sql in [DEALS_MAX_ID, DEALS_MAX_IMPORT] {
            let mut plan = Vec::new();
            store
                .conn()
                .query_each(&format!("EXPLAIN QUERY PLAN {sql}"), &[], &mut |r| {
                    plan.push(r.string(3)?);
                    Ok(())
                })
                .unwrap();
            assert!(
                plan.iter().all(|s| s.starts_with("SEARCH")),
                "{sql}\n  plan: {plan:?}"
            );
        }
    }
}
