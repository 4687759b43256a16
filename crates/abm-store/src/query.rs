//! The read side: the review queue, summaries, movements, an account's history, and the rows of
//! the latest snapshot for `abm export`. Each call reads one consistent view.

use crate::db::{Conn, ConnExt, Row, RowExt, TxMode, Value};
use crate::{meta, StoreError, Tx};
use abm_core::Instant;
use serde::Serialize;
use std::collections::BTreeMap;

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|_| serde_json::Value::String(s.to_string()))
}

fn at_text(v: Option<i64>) -> Option<String> {
    v.map(|t| Instant(t).to_string())
}

/// One review-queue item (SPEC §4.5's fields first).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CheckpointView {
    pub id: i64,
    pub kind: String,
    pub account_id: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub evidence: serde_json::Value,
    pub status: String,
    pub reviewer: Option<String>,
    pub comment: Option<String>,
    pub created_at: String,
    pub decided_at: Option<String>,
    /// The run that opened it, and that run's as_of.
    pub run: i64,
    pub as_of: String,
    pub rule: Option<String>,
    /// Why it was closed.
    pub reason: Option<String>,
}

const CHECKPOINT_COLS: &str =
    "c.id, c.kind, a.account_id, c.from_cluster, c.to_cluster, c.evidence,
    c.status, c.reviewer, c.comment, c.created_at, c.decided_at, c.run, c.as_of, c.rule, c.reason
    FROM checkpoints c LEFT JOIN accounts a ON a.id = c.account";

fn checkpoint_row(r: &dyn Row) -> Result<CheckpointView, StoreError> {
    Ok(CheckpointView {
        id: r.i(0)?,
        kind: r.string(1)?,
        account_id: r.opt_string(2)?,
        from: r.opt_string(3)?,
        to: r.opt_string(4)?,
        evidence: json(r.s(5)?),
        status: r.string(6)?,
        reviewer: r.opt_string(7)?,
        comment: r.opt_string(8)?,
        created_at: r.string(9)?,
        decided_at: r.opt_string(10)?,
        run: r.i(11)?,
        as_of: Instant(r.i(12)?).to_string(),
        rule: r.opt_string(13)?,
        reason: r.opt_string(14)?,
    })
}

pub(crate) fn checkpoint_view(conn: &mut dyn Conn, id: i64) -> Result<CheckpointView, StoreError> {
    conn.query_one(
        &format!("SELECT {CHECKPOINT_COLS} WHERE c.id = ?"),
        &[Value::Int(id)],
        checkpoint_row,
    )?
    .ok_or(StoreError::NoCheckpoint(id))
}

/// Counts of the latest run and the queue (`abm summary`).
#[derive(Debug, Clone, Serialize)]
pub struct StoreSummary {
    pub run: i64,
    pub as_of: String,
    pub started_at: String,
    pub config_hash: String,
    pub accounts: i64,
    pub cluster_icp_count: i64,
    pub future_pipeline_count: i64,
    pub active_focus_count: i64,
    pub monitor_only_count: i64,
    pub capacity: serde_json::Value,
    pub promotions: i64,
    pub demotions: i64,
    pub proposals_opened: i64,
    pub checkpoints_opened: i64,
    pub checkpoints_closed: i64,
    pub events_after_as_of: i64,
    /// status → kind → count, over the whole queue.
    pub queue: BTreeMap<String, BTreeMap<String, i64>>,
    /// Pending checkpoints per kind.
    pub pending: BTreeMap<String, i64>,
    /// Review decisions taken since this run (a new `abm run` reflects them).
    pub decisions_since_run: i64,
    pub runs: i64,
    pub imports: i64,
    pub rejected_rows: i64,
    pub stored: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MovementView {
    pub id: i64,
    pub account_id: String,
    pub as_of: String,
    pub run: i64,
    pub from: String,
    pub to: String,
    pub direction: String,
    pub rule: String,
    pub evidence: serde_json::Value,
    /// The approved checkpoint, when the move needed a reviewer.
    pub checkpoint: Option<i64>,
    pub approved_by: Option<String>,
    pub created_at: String,
}

const MOVEMENT_COLS: &str = "m.id, a.account_id, m.as_of, m.run, m.from_cluster, m.to_cluster,
    m.direction, m.rule, m.evidence, m.checkpoint, c.reviewer, m.created_at
    FROM movements m JOIN accounts a ON a.id = m.account LEFT JOIN checkpoints c ON c.id = m.checkpoint";

fn movement_row(r: &dyn Row) -> Result<MovementView, StoreError> {
    Ok(MovementView {
        id: r.i(0)?,
        account_id: r.string(1)?,
        as_of: Instant(r.i(2)?).to_string(),
        run: r.i(3)?,
        from: r.string(4)?,
        to: r.string(5)?,
        direction: r.string(6)?,
        rule: r.string(7)?,
        evidence: json(r.s(8)?),
        checkpoint: r.int(9)?,
        approved_by: r.opt_string(10)?,
        created_at: r.string(11)?,
    })
}

/// One account in one run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SnapshotView {
    pub run: i64,
    pub as_of: String,
    pub candidate: String,
    pub cluster: String,
    pub previous: Option<String>,
    pub movement: String,
    pub rule: String,
    pub evidence: serde_json::Value,
    pub tier: String,
    pub icp_score: String,
    pub engagement_level: String,
    pub has_triggers: bool,
    pub promotion_triggers: String,
    pub program_type: String,
    pub micro_segment: String,
    pub next_action: String,
    pub checkpoint: String,
    pub rationale: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DecisionView {
    pub checkpoint: i64,
    pub action: String,
    pub actor: String,
    pub comment: Option<String>,
    pub decided_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AccountState {
    pub cluster: String,
    pub entered_at: String,
    pub floor: Option<String>,
}

/// Everything the store knows about one account (`abm history`).
#[derive(Debug, Clone, Serialize)]
pub struct History {
    pub account_id: String,
    pub name: String,
    pub fields: serde_json::Value,
    pub state: Option<AccountState>,
    pub snapshots: Vec<SnapshotView>,
    pub movements: Vec<MovementView>,
    pub checkpoints: Vec<CheckpointView>,
    pub decisions: Vec<DecisionView>,
}

/// One row of the latest snapshot in the `segment` output's terms.
#[derive(Debug, Clone)]
pub struct ExportRow {
    pub account_id: String,
    pub name: String,
    pub icp_score: String,
    pub tier: String,
    pub engagement_level: String,
    pub has_triggers: bool,
    pub cluster: String,
    pub previous_cluster: String,
    pub movement: String,
    pub promotion_triggers: String,
    pub program_type: String,
    pub micro_segment: String,
    pub next_action: String,
    pub checkpoint: String,
    pub rationale: String,
}

/// The run an export comes from.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub run: i64,
    pub as_of: Instant,
    pub config_hash: String,
    pub accounts: i64,
    pub cluster_icp: i64,
    pub future_pipeline: i64,
    pub active_focus: i64,
    pub monitor_only: i64,
    pub events_after_as_of: i64,
    /// Checkpoint kinds this run opened or kept open: kind → count of accounts (capacity: 0/1).
    pub checkpoints: BTreeMap<String, u64>,
    pub decisions_since_run: i64,
}

fn latest_run(conn: &mut dyn Conn) -> Result<Option<i64>, StoreError> {
    conn.query_one("SELECT id FROM runs ORDER BY id DESC LIMIT 1", &[], |r| {
        r.i(0)
    })
}

fn score_text(v: f64) -> String {
    abm_core::scoring::format_score(v)
}

impl crate::Store {
    /// The review queue: pending items, or all with `all`.
    pub fn review_list(&mut self, all: bool) -> Result<Vec<CheckpointView>, StoreError> {
        let mut tx = Tx::begin(self.conn(), TxMode::Read)?;
        let sql = if all {
            format!("SELECT {CHECKPOINT_COLS} ORDER BY c.id")
        } else {
            format!("SELECT {CHECKPOINT_COLS} WHERE c.status = 'pending' ORDER BY c.id")
        };
        let v = tx.query_all(&sql, &[], checkpoint_row)?;
        tx.commit()?;
        Ok(v)
    }

    pub fn summary(&mut self) -> Result<StoreSummary, StoreError> {
        let mut tx = Tx::begin(self.conn(), TxMode::Read)?;
        let run = latest_run(&mut *tx)?.ok_or(StoreError::NoRun)?;
        let state_version = meta(&mut *tx, "state_version")?;
        let mut s = tx
            .query_one(
                "SELECT id, as_of, started_at, config_hash, accounts, cluster_icp, future_pipeline,
                    active_focus, monitor_only, summary, promotions, demotions, proposals_opened,
                    checkpoints_opened, checkpoints_closed, events_after_as_of, state_version
                 FROM runs WHERE id = ?",
                &[Value::Int(run)],
                |r| {
                    let summary = json(r.s(9)?);
                    Ok(StoreSummary {
                        run: r.i(0)?,
                        as_of: Instant(r.i(1)?).to_string(),
                        started_at: r.string(2)?,
                        config_hash: r.string(3)?,
                        accounts: r.i(4)?,
                        cluster_icp_count: r.i(5)?,
                        future_pipeline_count: r.i(6)?,
                        active_focus_count: r.i(7)?,
                        monitor_only_count: r.i(8)?,
                        capacity: summary.get("capacity").cloned().unwrap_or_default(),
                        promotions: r.i(10)?,
                        demotions: r.i(11)?,
                        proposals_opened: r.i(12)?,
                        checkpoints_opened: r.i(13)?,
                        checkpoints_closed: r.i(14)?,
                        events_after_as_of: r.i(15)?,
                        queue: BTreeMap::new(),
                        pending: BTreeMap::new(),
                        decisions_since_run: state_version - r.i(16)?,
                        runs: 0,
                        imports: 0,
                        rejected_rows: 0,
                        stored: BTreeMap::new(),
                    })
                },
            )?
            .ok_or(StoreError::NoRun)?;
        tx.query_each(
            "SELECT status, kind, CAST(COUNT(*) AS BIGINT) FROM checkpoints GROUP BY status, kind",
            &[],
            &mut |r| {
                let (status, kind, n) = (r.string(0)?, r.string(1)?, r.i(2)?);
                if status == "pending" {
                    s.pending.insert(kind.clone(), n);
                }
                s.queue.entry(status).or_default().insert(kind, n);
                Ok(())
            },
        )?;
        s.runs = tx.scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM runs", &[])?;
        tx.query_each(
            "SELECT CAST(COUNT(*) AS BIGINT), CAST(COALESCE(SUM(rejected), 0) AS BIGINT),
                CAST(COALESCE(SUM(events_added), 0) AS BIGINT),
                CAST(COALESCE(SUM(triggers_added), 0) AS BIGINT)
             FROM imports",
            &[],
            &mut |r| {
                s.imports = r.i(0)?;
                s.rejected_rows = r.i(1)?;
                s.stored.insert("events".into(), r.i(2)?);
                s.stored.insert("triggers".into(), r.i(3)?);
                Ok(())
            },
        )?;
        let accounts = tx.scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM accounts", &[])?;
        let deals = tx.scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM deals", &[])?;
        s.stored.insert("accounts".into(), accounts);
        s.stored.insert("deals".into(), deals);
        tx.commit()?;
        Ok(s)
    }

    /// Movements with `as_of >= since`, oldest first.
    pub fn movements(&mut self, since: Option<Instant>) -> Result<Vec<MovementView>, StoreError> {
        let mut tx = Tx::begin(self.conn(), TxMode::Read)?;
        let order = tx.bytewise();
        let v = tx.query_all(
            &format!(
                "SELECT {MOVEMENT_COLS} WHERE m.as_of >= ? ORDER BY m.as_of, a.account_id{order}, m.id"
            ),
            &[Value::Int(since.unwrap_or(Instant::MIN).0)],
            movement_row,
        )?;
        tx.commit()?;
        Ok(v)
    }

    /// Every snapshot, movement, checkpoint and decision of one account. (The snapshot query
    /// walks the runs and probes the `(run, account)` key of each: `CROSS JOIN` fixes that
    /// order on SQLite, whose planner would otherwise scan every snapshot row.)
    pub fn history(&mut self, account_id: &str) -> Result<History, StoreError> {
        let mut tx = Tx::begin(self.conn(), TxMode::Read)?;
        let (id, name, fields) = tx
            .query_one(
                "SELECT id, name, fields FROM accounts WHERE account_id = ?",
                &[Value::Text(account_id)],
                |r| Ok((r.i(0)?, r.string(1)?, json(r.s(2)?))),
            )?
            .ok_or_else(|| StoreError::NoAccount(account_id.to_string()))?;
        let state = tx.query_one(
            "SELECT cluster, entered_at, floor FROM account_state WHERE account = ?",
            &[Value::Int(id)],
            |r| {
                Ok(AccountState {
                    cluster: r.string(0)?,
                    entered_at: Instant(r.i(1)?).to_string(),
                    floor: at_text(r.int(2)?),
                })
            },
        )?;
        let snapshots = tx.query_all(
            "SELECT r.id, r.as_of, s.candidate, s.cluster, s.previous, s.movement, rt.text,
                s.evidence, s.tier, s.score, s.engagement, s.has_triggers, s.promotion_triggers,
                s.program, ms.text, na.text, s.checkpoint, s.rationale
             FROM runs r
             CROSS JOIN snapshots s
             JOIN texts rt ON rt.id = s.rule
             JOIN texts ms ON ms.id = s.micro_segment
             JOIN texts na ON na.id = s.next_action
             WHERE s.run = r.id AND s.account = ?
             ORDER BY r.id",
            &[Value::Int(id)],
            |r| {
                Ok(SnapshotView {
                    run: r.i(0)?,
                    as_of: Instant(r.i(1)?).to_string(),
                    candidate: r.string(2)?,
                    cluster: r.string(3)?,
                    previous: r.opt_string(4)?,
                    movement: r.string(5)?,
                    rule: r.string(6)?,
                    evidence: json(r.s(7)?),
                    tier: r.string(8)?,
                    icp_score: score_text(r.real(9)?.unwrap_or(0.0)),
                    engagement_level: r.string(10)?,
                    has_triggers: r.i(11)? != 0,
                    promotion_triggers: r.string(12)?,
                    program_type: r.string(13)?,
                    micro_segment: r.string(14)?,
                    next_action: r.string(15)?,
                    checkpoint: r.string(16)?,
                    rationale: r.string(17)?,
                })
            },
        )?;
        let movements = tx.query_all(
            &format!("SELECT {MOVEMENT_COLS} WHERE m.account = ? ORDER BY m.as_of, m.id"),
            &[Value::Int(id)],
            movement_row,
        )?;
        let checkpoints = tx.query_all(
            &format!("SELECT {CHECKPOINT_COLS} WHERE c.account = ? ORDER BY c.id"),
            &[Value::Int(id)],
            checkpoint_row,
        )?;
        let decisions = tx.query_all(
            "SELECT d.checkpoint, d.action, d.actor, d.comment, d.decided_at
             FROM decisions d JOIN checkpoints c ON c.id = d.checkpoint
             WHERE c.account = ? ORDER BY d.id",
            &[Value::Int(id)],
            |r| {
                Ok(DecisionView {
                    checkpoint: r.i(0)?,
                    action: r.string(1)?,
                    actor: r.string(2)?,
                    comment: r.opt_string(3)?,
                    decided_at: r.string(4)?,
                })
            },
        )?;
        tx.commit()?;
        Ok(History {
            account_id: account_id.to_string(),
            name,
            fields,
            state,
            snapshots,
            movements,
            checkpoints,
            decisions,
        })
    }

    /// Stream the latest snapshot's rows in `account_id` order (bytewise) to `f`.
    pub fn export(
        &mut self,
        f: &mut dyn FnMut(&ExportRow) -> Result<(), StoreError>,
    ) -> Result<RunInfo, StoreError> {
        let mut tx = Tx::begin(self.conn(), TxMode::Read)?;
        let run = latest_run(&mut *tx)?.ok_or(StoreError::NoRun)?;
        let state_version = meta(&mut *tx, "state_version")?;
        let mut info = tx
            .query_one(
                "SELECT id, as_of, config_hash, accounts, cluster_icp, future_pipeline, active_focus,
                    monitor_only, events_after_as_of, state_version
                 FROM runs WHERE id = ?",
                &[Value::Int(run)],
                |r| {
                    Ok(RunInfo {
                        run: r.i(0)?,
                        as_of: Instant(r.i(1)?),
                        config_hash: r.string(2)?,
                        accounts: r.i(3)?,
                        cluster_icp: r.i(4)?,
                        future_pipeline: r.i(5)?,
                        active_focus: r.i(6)?,
                        monitor_only: r.i(7)?,
                        events_after_as_of: r.i(8)?,
                        checkpoints: BTreeMap::new(),
                        decisions_since_run: state_version - r.i(9)?,
                    })
                },
            )?
            .ok_or(StoreError::NoRun)?;
        let capacity = tx.scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM checkpoints WHERE run = ? AND kind = 'capacity'",
            &[Value::Int(run)],
        )?;
        info.checkpoints.insert("capacity".into(), capacity as u64);
        let order = tx.bytewise();
        let mut checkpoints: BTreeMap<String, u64> = BTreeMap::new();
        tx.query_each(
            &format!(
                "SELECT a.account_id, a.name, s.score, s.tier, s.engagement, s.has_triggers,
                    s.cluster, s.previous, s.movement, s.promotion_triggers, s.program, ms.text,
                    na.text, s.checkpoint, s.rationale
                 FROM account_state st
                 JOIN snapshots s ON s.run = st.snapshot_run AND s.account = st.account
                 JOIN accounts a ON a.id = s.account
                 JOIN texts ms ON ms.id = s.micro_segment
                 JOIN texts na ON na.id = s.next_action
                 ORDER BY a.account_id{order}"
            ),
            // Each account's latest row: a row holds until the account's next one.
            &[],
            &mut |r| {
                let row = ExportRow {
                    account_id: r.string(0)?,
                    name: r.string(1)?,
                    icp_score: score_text(r.real(2)?.unwrap_or(0.0)),
                    tier: r.string(3)?,
                    engagement_level: r.string(4)?,
                    has_triggers: r.i(5)? != 0,
                    cluster: r.string(6)?,
                    previous_cluster: r.opt_string(7)?.unwrap_or_default(),
                    movement: r.string(8)?,
                    promotion_triggers: r.string(9)?,
                    program_type: r.string(10)?,
                    micro_segment: r.string(11)?,
                    next_action: r.string(12)?,
                    checkpoint: r.string(13)?,
                    rationale: r.string(14)?,
                };
                for k in row.checkpoint.split(';').filter(|k| !k.is_empty()) {
                    *checkpoints.entry(k.to_string()).or_default() += 1;
                }
                f(&row)
            },
        )?;
        tx.commit()?;
        for (k, v) in checkpoints {
            info.checkpoints.insert(k, v);
        }
        Ok(info)
    }
}
