//! One stored account explained (`abm explain ID` on the database): its row, events, triggers
//! and deals read by index (cheap at a million accounts), assessed and decided by `abm-core`
//! exactly as `abm run` does for it — the account's current state is the prior, evidence
//! before its last demotion does not count — plus its stored state: the current cluster, the
//! latest run's row and its open checkpoints. One read transaction; nothing is written.

use crate::db::{Conn, ConnExt, RowExt, TxMode, Value};
use crate::run::{account_schema, cluster, push_account, ACCOUNT_COLUMNS};
use crate::{StoreError, Tx};
use abm_core::assess::{assess, Facts};
use abm_core::engagement::{Deal, DealOutcome, EngagementState, Signal, Trigger, Verdict};
use abm_core::explanation::{
    CheckpointKind, CurrentState, Explanation, LastRun, NextRun, ObservedEvent, OpenCheckpoint,
    RunSnapshot, StoredState,
};
use abm_core::movement::{decide, Movement, PriorState, Proposal, ProposalKind};
use abm_core::{AccountTable, Instant, Rules, ScoringModel, Tier};

impl crate::Store {
    /// The as_of of the latest run (`None` before the first).
    pub fn latest_as_of(&mut self) -> Result<Option<Instant>, StoreError> {
        latest_as_of(self.conn())
    }

    /// The whole reasoning for one stored account as of `rules.as_of`: what a run then would
    /// compute and decide for it from its current state, and that state.
    pub fn explain(&mut self, account_id: &str, rules: &Rules) -> Result<Explanation, StoreError> {
        let (mut tx, catalog, scoring) = self.read_with_caches()?;
        explain(&mut *tx, account_id, rules, catalog, scoring)
    }

    /// A read transaction, and beside it the connection's caches an explanation uses.
    pub(crate) fn read_with_caches(
        &mut self,
    ) -> Result<(Tx<'_>, &mut crate::reevaluate::Catalog, &mut ScoringCache), StoreError> {
        let crate::Store {
            conn,
            catalog,
            scoring,
            ..
        } = self;
        Ok((Tx::begin(conn.as_mut(), TxMode::Read)?, catalog, scoring))
    }
}

// Every query reads one account's rows by an index (tested below on SQLite's plans).
const ACCOUNT: &str = "FROM accounts WHERE account_id = ?";
const STATE: &str =
    "SELECT cluster, entered_at, floor, updated_run FROM account_state WHERE account = ?";
const CHECKPOINTS: &str = "SELECT id, kind, from_cluster, to_cluster, rule, signature,
        CASE WHEN status = 'closed' THEN 'rejected' ELSE status END, as_of, run
     FROM checkpoints WHERE account = ? AND (status IN ('pending', 'rejected')
        OR (status = 'closed' AND reviewer = 'policy'))
     ORDER BY id";
const TRIGGERS: &str =
    "SELECT occurred_at, type, headline FROM triggers WHERE account = ? ORDER BY id";
const DEALS: &str =
    "SELECT deal_id, stage, amount, created_at, closed_at, last_stage_change_at, outcome, product,
        stage_history
     FROM deals WHERE account = ? ORDER BY deal_id";
const LATEST_RUN: &str = "SELECT id, as_of FROM runs ORDER BY id DESC LIMIT 1";
const SNAPSHOT: &str =
    "SELECT s.cluster, s.candidate, s.movement, s.tier, s.score, na.text, s.rationale
     FROM snapshots s JOIN texts na ON na.id = s.next_action
     WHERE s.account = ? AND s.run = (
         SELECT MAX(run) FROM snapshots WHERE account = ? AND run <= ?)";

/// The scoring model last built on a connection, with the config hash and account columns it
/// was built for.
pub(crate) type ScoringCache = Option<(String, Vec<String>, std::sync::Arc<ScoringModel>)>;

/// The scoring model of `rules` over `schema`: the cached one when it was built for the same
/// config and columns, else a new one (kept).
pub(crate) fn scoring_model(
    cache: &mut ScoringCache,
    rules: &Rules,
    schema: &abm_core::AccountSchema,
) -> std::sync::Arc<ScoringModel> {
    match cache {
        Some((hash, names, m)) if hash == rules.config_hash() && names == schema.columns() => {
            m.clone()
        }
        _ => {
            let m = std::sync::Arc::new(ScoringModel::new(&rules.config.icp, schema));
            *cache = Some((
                rules.config_hash().to_string(),
                schema.columns().to_vec(),
                m.clone(),
            ));
            m
        }
    }
}

/// Why an account is not in the database: not known at all, or rows wait for it.
fn not_stored(conn: &mut dyn Conn, account_id: &str) -> Result<StoreError, StoreError> {
    let mut n = [0i64; 3];
    for (i, table) in ["waiting_events", "waiting_triggers", "waiting_deals"]
        .iter()
        .enumerate()
    {
        n[i] = conn.scalar(
            &format!("SELECT CAST(COUNT(*) AS BIGINT) FROM {table} WHERE account_id = ?"),
            &[Value::Text(account_id)],
        )?;
    }
    Ok(if n.iter().all(|c| *c == 0) {
        StoreError::NoAccount(account_id.to_string())
    } else {
        StoreError::AccountWaiting {
            account: account_id.to_string(),
            events: n[0],
            triggers: n[1],
            deals: n[2],
        }
    })
}

/// The latest run's as_of, if any run was made.
pub(crate) fn latest_as_of(conn: &mut dyn Conn) -> Result<Option<Instant>, StoreError> {
    conn.query_one(
        "SELECT as_of FROM runs ORDER BY id DESC LIMIT 1",
        &[],
        |r| Ok(Instant(r.i(0)?)),
    )
}

pub(crate) fn explain(
    conn: &mut dyn Conn,
    account_id: &str,
    rules: &Rules,
    catalog: &mut crate::reevaluate::Catalog,
    scoring: &mut ScoringCache,
) -> Result<Explanation, StoreError> {
    let schema = account_schema(conn)?;
    let cols = schema.columns().to_vec();
    let mut table = AccountTable::new(schema);
    let mut vals = Vec::new();
    let mut id = None;
    conn.query_each(
        &format!("SELECT {ACCOUNT_COLUMNS} {ACCOUNT}"),
        &[Value::Text(account_id)],
        &mut |r| {
            id = Some(push_account(&mut table, &cols, &mut vals, r)?);
            Ok(())
        },
    )?;
    let Some((id, idx)) = id else {
        return Err(not_stored(conn, account_id)?);
    };
    let key = [Value::Int(id)];

    // The prior state, as `run::load` builds it: the account's state, its pending proposal
    // and the signatures of its rejected ones (an item the review policy expired counts as
    // rejected).
    let state = conn.query_one(STATE, &key, |r| {
        Ok(CurrentState {
            cluster: cluster("account_state", "cluster", r.s(0)?)?,
            entered_at: Instant(r.i(1)?),
            floor: r.int(2)?.map(Instant),
            run: r.i(3)?,
        })
    })?;
    let mut prior = state.as_ref().map(|s| PriorState {
        cluster: s.cluster,
        entered_at: s.entered_at,
        floor: s.floor.unwrap_or(Instant::MIN),
        pending: None,
        rejected: Vec::new(),
    });
    let mut open_checkpoints = Vec::new();
    conn.query_each(CHECKPOINTS, &key, &mut |r| {
        let kind = r.s(1)?;
        let pending = r.s(6)? == "pending";
        let opt_cluster = |i: usize| r.text(i).map(|t| t.and_then(abm_core::Cluster::parse));
        if pending {
            open_checkpoints.push(OpenCheckpoint {
                id: r.i(0)?,
                kind: CheckpointKind::parse(kind).ok_or_else(|| {
                    StoreError::Corrupt(format!("unknown checkpoint kind {kind:?}"))
                })?,
                from: opt_cluster(2)?,
                to: opt_cluster(3)?,
                as_of: Instant(r.i(7)?),
                run: r.i(8)?,
            });
        }
        let (Some(kind), Some(prior)) = (ProposalKind::parse(kind), prior.as_mut()) else {
            return Ok(());
        };
        let signature = r.opt_string(5)?.unwrap_or_default();
        if pending {
            prior.pending = Some(Proposal {
                kind,
                from: cluster("checkpoints", "from_cluster", r.text(2)?.unwrap_or(""))?,
                to: cluster("checkpoints", "to_cluster", r.text(3)?.unwrap_or(""))?,
                rule: r.opt_string(4)?.unwrap_or_default(),
                signature,
            });
        } else {
            prior.rejected.push(signature);
        }
        Ok(())
    })?;
    let floor = prior.as_ref().map_or(Instant::MIN, |p| p.floor);

    // Its events, folded in the order they were stored (as a run folds them).
    let mut st = EngagementState::default();
    let mut events = Vec::new();
    let mut signals = Vec::new();
    let mut unknown = 0u64;
    let from = crate::packs::events_account_from(conn)?;
    crate::packs::account_events(conn, from, id, &mut |at, ty, contact| {
        let at = Instant(at);
        let Some(code) = rules.events.lookup(ty.as_bytes()) else {
            unknown += 1;
            return Ok(());
        };
        let verdict = st.observe(rules, code, at, contact.as_bytes(), floor);
        if let Verdict::Signal { .. } = verdict {
            signals.push(Signal {
                account: idx,
                code,
                at,
            });
        }
        events.push(ObservedEvent {
            at,
            code,
            contact: contact.to_string(),
            verdict,
            source: None,
        });
        Ok(())
    })?;
    // Newest first; the order stored breaks ties.
    events.sort_by_key(|e| std::cmp::Reverse(e.at));
    signals.sort_by_key(|s| (s.at, s.code));

    let mut triggers = Vec::new();
    conn.query_each(TRIGGERS, &key, &mut |r| {
        // A type the config does not know is not read (as in a run).
        if let Some(code) = rules.triggers.lookup(r.s(1)?.as_bytes()) {
            triggers.push(Trigger {
                account: idx,
                code,
                at: Instant(r.i(0)?),
                headline: r.opt_string(2)?.unwrap_or_default(),
            });
        }
        Ok(())
    })?;
    triggers.sort_by(|a, b| b.at.cmp(&a.at).then(a.code.cmp(&b.code)));

    let deals = conn.query_all(DEALS, &key, |r| {
        Ok(Deal {
            account: idx,
            deal_id: r.string(0)?,
            stage: r.string(1)?,
            amount: r.real(2)?,
            created_at: Instant(r.i(3)?),
            closed_at: r.int(4)?.map(Instant),
            last_stage_change_at: r.int(5)?.map(Instant),
            outcome: DealOutcome::parse(r.s(6)?)
                .ok_or_else(|| StoreError::Corrupt("deal outcome".into()))?,
            product: r.opt_string(7)?.filter(|p| !p.is_empty()),
            history: crate::run::stage_history(r.opt_string(8)?)?,
        })
    })?;

    // The latest run and the account's row that held at it (history grows with change: the
    // account's latest row at or before that run).
    let last_run = match conn.query_one(LATEST_RUN, &[], |r| Ok((r.i(0)?, Instant(r.i(1)?))))? {
        None => None,
        Some((run, as_of)) => Some(LastRun {
            run,
            as_of,
            snapshot: conn.query_one(
                SNAPSHOT,
                &[Value::Int(id), Value::Int(id), Value::Int(run)],
                |r| {
                    let movement = r.s(2)?;
                    let tier = r.s(3)?;
                    Ok(RunSnapshot {
                        cluster: cluster("snapshots", "cluster", r.s(0)?)?,
                        candidate: cluster("snapshots", "candidate", r.s(1)?)?,
                        movement: Movement::parse(movement).ok_or_else(|| {
                            StoreError::Corrupt(format!("unknown movement {movement:?}"))
                        })?,
                        tier: Tier::parse(tier)
                            .ok_or_else(|| StoreError::Corrupt(format!("unknown tier {tier:?}")))?,
                        score: r.real(4)?.unwrap_or(0.0),
                        next_action: r.string(5)?,
                        rationale: crate::compact::read("snapshots", "rationale", r.s(6)?)?,
                    })
                },
            )?,
        }),
    };

    // Every product on a stored deal with its first creation: kept on the connection and read
    // again only when a deal changed (`reevaluate::product_dates`).
    let named: &[(String, Instant)] = if rules.config.customers.products.is_empty() {
        crate::reevaluate::product_dates(conn, catalog)?
    } else {
        &[]
    };
    let products = abm_core::assess::product_catalog(
        &rules.config.customers.products,
        rules.as_of,
        named.iter().map(|(p, t)| (p.as_str(), *t)),
    );

    let account = table.get(idx);
    let model = scoring_model(scoring, rules, table.schema());
    let facts = Facts {
        engagement: &st,
        triggers: &triggers,
        deals: &deals,
        signals: &signals,
        floor,
        products: &products,
    };
    let a = assess(rules, &model, &account, &facts, true);
    let d = decide(rules, prior.as_ref(), &a, &facts);
    let mut e = Explanation::new(rules, &model, &account, &facts, &a, d.cluster, events);
    e.engagement.unknown_type = unknown;
    Ok(e.with_stored(StoredState {
        current: state,
        last_run,
        next_run: NextRun::of(&d),
        open_checkpoints,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Explaining one account (and its detail and history) reads only its rows: every query is
    /// a search by an index, never a scan of a table that grows with the data or the runs
    /// (SQLite's query plans).
    #[test]
    fn every_query_reads_by_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = crate::Store::open(dir.path().join("a.db").to_str().unwrap()).unwrap();
        let account = format!("SELECT {ACCOUNT_COLUMNS} {ACCOUNT}");
        for sql in [
            account.as_str(),
            STATE,
            CHECKPOINTS,
            crate::packs::PACK_OF_ACCOUNT,
            &crate::packs::newer_events_of_account(0),
            &crate::packs::newer_events_of_account(1_000),
            TRIGGERS,
            DEALS,
            LATEST_RUN,
            SNAPSHOT,
            &format!(
                "{} ORDER BY s.run DESC LIMIT 1",
                crate::query::SNAPSHOTS_OF_ACCOUNT
            ),
            &format!("{} ORDER BY s.run", crate::query::SNAPSHOTS_OF_ACCOUNT),
        ] {
            let mut plan = Vec::new();
            let n = sql.matches('?').count();
            let params = vec![Value::Int(1); n];
            store
                .conn()
                .query_each(&format!("EXPLAIN QUERY PLAN {sql}"), &params, &mut |r| {
                    plan.push(r.string(3)?);
                    Ok(())
                })
                .unwrap();
            for step in &plan {
                let ok = step.starts_with("SEARCH")
                    || step == "SCAN runs"
                    || step.starts_with("SCALAR SUBQUERY")
                    || step.starts_with("USE TEMP B-TREE");
                assert!(ok, "{sql}\n  plan: {plan:?}");
            }
            assert!(!plan.is_empty(), "{sql}");
        }
    }
}
