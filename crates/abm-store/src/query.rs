//! The read side: the review queue, summaries, movements, an account's history, and the rows of
//! the latest snapshot for `abm export`. Each call reads one consistent view.
//!
//! The views are typed: every kind, status, cluster, movement and tier is an enum with a stable
//! snake_case code (serialized as the text the store keeps), every instant an
//! [`abm_core::Instant`] (serialized as RFC 3339 text). Stored text becomes a code in one place,
//! [`parse_code`]: a value this abm does not know is [`StoreError::Corrupt`] naming the table,
//! the column and the value. The JSON shapes are documented in docs/json.md and pinned by the
//! snapshot tests in tests/views.rs.
//!
//! **Current state.** Export, summary and history show the latest run *with the review decisions
//! taken since*: a decided proposal's row (`current_rows`, which abm-core computed in the run,
//! see `run`) replaces the run's snapshot row of that account; snapshot rows are never rewritten.

use crate::db::{Conn, ConnExt, Row, RowExt, TxMode, Value};
use crate::{meta, StoreError, Tx};
use abm_core::movement::{
    CheckpointKind, CheckpointStatus, DecisionAction, EvidenceKind, Movement,
};
use abm_core::summary::{capacity_status, CapacityStatus, ClusterCounts};
use abm_core::{Cluster, EngagementLevel, Instant, Tier};
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|_| serde_json::Value::String(s.to_string()))
}

/// One piece of evidence as a view shows it: when, in words, and what kind (its fields in this
/// order, as the store has always printed them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct EvidenceItem {
    pub at: Option<Instant>,
    pub detail: String,
    pub kind: EvidenceKind,
}

/// A stored evidence list (JSON) → items, or [`StoreError::Corrupt`] naming where it is.
fn evidence(table: &str, v: &str) -> Result<Vec<EvidenceItem>, StoreError> {
    serde_json::from_str(v).map_err(|e| {
        StoreError::Corrupt(format!(
            "{table}.evidence holds {v:?}, which is not an evidence list ({e})"
        ))
    })
}

/// Stored text → a code, or [`StoreError::Corrupt`] naming `table.column` and the value.
pub(crate) fn parse_code<T>(
    parse: impl Fn(&str) -> Option<T>,
    table: &str,
    column: &str,
    value: &str,
) -> Result<T, StoreError> {
    parse(value).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "{table}.{column} holds {value:?}, which is not a code this abm knows"
        ))
    })
}

fn cluster(table: &str, column: &str, v: &str) -> Result<Cluster, StoreError> {
    parse_code(Cluster::parse, table, column, v)
}

fn opt_cluster(table: &str, column: &str, v: Option<&str>) -> Result<Option<Cluster>, StoreError> {
    v.map(|v| cluster(table, column, v)).transpose()
}

/// A wall-clock time kept as RFC 3339 text.
fn wall(table: &str, column: &str, v: &str) -> Result<Instant, StoreError> {
    parse_code(|s| Instant::parse(s).ok(), table, column, v)
}

fn opt_wall(table: &str, column: &str, v: Option<&str>) -> Result<Option<Instant>, StoreError> {
    v.map(|v| wall(table, column, v)).transpose()
}

fn tier(table: &str, v: &str) -> Result<Tier, StoreError> {
    parse_code(Tier::parse, table, "tier", v)
}

fn level(table: &str, v: &str) -> Result<EngagementLevel, StoreError> {
    parse_code(EngagementLevel::parse, table, "engagement", v)
}

fn movement(table: &str, column: &str, v: &str) -> Result<Movement, StoreError> {
    parse_code(Movement::parse, table, column, v)
}

/// The checkpoint kinds a row has open, in order. Serialized as the text the row keeps:
/// the codes joined by `;` (`promotion_to_active_focus;conflict`), empty for none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointKinds(pub Vec<CheckpointKind>);

impl CheckpointKinds {
    pub fn parse(table: &str, v: &str) -> Result<CheckpointKinds, StoreError> {
        v.split(';')
            .filter(|k| !k.is_empty())
            .map(|k| parse_code(CheckpointKind::parse, table, "checkpoint", k))
            .collect::<Result<_, _>>()
            .map(CheckpointKinds)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Display for CheckpointKinds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, k) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            f.write_str(k.as_str())?;
        }
        Ok(())
    }
}

impl Serialize for CheckpointKinds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One review-queue item (SPEC §4.5's fields first).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CheckpointView {
    pub id: i64,
    pub kind: CheckpointKind,
    pub account_id: Option<String>,
    pub from: Option<Cluster>,
    pub to: Option<Cluster>,
    pub evidence: Vec<EvidenceItem>,
    pub status: CheckpointStatus,
    pub reviewer: Option<String>,
    pub comment: Option<String>,
    pub created_at: Instant,
    pub decided_at: Option<Instant>,
    /// The run that opened it, and that run's as_of.
    pub run: i64,
    pub as_of: Instant,
    pub rule: Option<String>,
    /// Why it was closed.
    pub reason: Option<String>,
}

pub(crate) const CHECKPOINT_COLS: &str =
    "c.id, c.kind, a.account_id, c.from_cluster, c.to_cluster, c.evidence,
    c.status, c.reviewer, c.comment, c.created_at, c.decided_at, c.run, c.as_of, c.rule, c.reason
    FROM checkpoints c LEFT JOIN accounts a ON a.id = c.account";

pub(crate) fn checkpoint_row(r: &dyn Row) -> Result<CheckpointView, StoreError> {
    const T: &str = "checkpoints";
    Ok(CheckpointView {
        id: r.i(0)?,
        kind: parse_code(CheckpointKind::parse, T, "kind", r.s(1)?)?,
        account_id: r.opt_string(2)?,
        from: opt_cluster(T, "from_cluster", r.text(3)?)?,
        to: opt_cluster(T, "to_cluster", r.text(4)?)?,
        evidence: evidence(T, r.s(5)?)?,
        status: parse_code(CheckpointStatus::parse, T, "status", r.s(6)?)?,
        reviewer: r.opt_string(7)?,
        comment: r.opt_string(8)?,
        created_at: wall(T, "created_at", r.s(9)?)?,
        decided_at: opt_wall(T, "decided_at", r.text(10)?)?,
        run: r.i(11)?,
        as_of: Instant(r.i(12)?),
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

/// Counts of the latest run, with the review decisions since, and the queue (`abm summary`).
#[derive(Debug, Clone, Serialize)]
pub struct StoreSummary {
    pub run: i64,
    pub as_of: Instant,
    pub started_at: Instant,
    pub config_hash: String,
    pub accounts: i64,
    /// Accounts per current cluster: the run's, with the decided proposals since applied.
    pub cluster_icp_count: i64,
    pub future_pipeline_count: i64,
    pub active_focus_count: i64,
    pub monitor_only_count: i64,
    /// The customer track (`[customers] mode = "track"`); absent when 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub customer_count: i64,
    /// Capacity against the current counts.
    pub capacity: CapacityStatus,
    pub promotions: i64,
    pub demotions: i64,
    pub proposals_opened: i64,
    pub checkpoints_opened: i64,
    pub checkpoints_closed: i64,
    pub events_after_as_of: i64,
    /// status → kind → count, over the whole queue.
    pub queue: BTreeMap<CheckpointStatus, BTreeMap<CheckpointKind, i64>>,
    /// Pending checkpoints per kind.
    pub pending: BTreeMap<CheckpointKind, i64>,
    /// Review decisions taken since this run.
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
    pub as_of: Instant,
    pub run: i64,
    pub from: Cluster,
    pub to: Cluster,
    /// `promotion` or `demotion`.
    pub direction: Movement,
    pub rule: String,
    pub evidence: Vec<EvidenceItem>,
    /// The approved checkpoint, when the move needed a reviewer.
    pub checkpoint: Option<i64>,
    pub approved_by: Option<String>,
    pub created_at: Instant,
}

const MOVEMENT_COLS: &str = "m.id, a.account_id, m.as_of, m.run, m.from_cluster, m.to_cluster,
    m.direction, m.rule, m.evidence, m.checkpoint, c.reviewer, m.created_at
    FROM movements m JOIN accounts a ON a.id = m.account LEFT JOIN checkpoints c ON c.id = m.checkpoint";

fn movement_row(r: &dyn Row) -> Result<MovementView, StoreError> {
    const T: &str = "movements";
    Ok(MovementView {
        id: r.i(0)?,
        account_id: r.string(1)?,
        as_of: Instant(r.i(2)?),
        run: r.i(3)?,
        from: cluster(T, "from_cluster", r.s(4)?)?,
        to: cluster(T, "to_cluster", r.s(5)?)?,
        direction: movement(T, "direction", r.s(6)?)?,
        rule: r.string(7)?,
        evidence: evidence(T, r.s(8)?)?,
        checkpoint: r.int(9)?,
        approved_by: r.opt_string(10)?,
        created_at: wall(T, "created_at", r.s(11)?)?,
    })
}

/// One account in one run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SnapshotView {
    pub run: i64,
    pub as_of: Instant,
    pub candidate: Cluster,
    pub cluster: Cluster,
    pub previous: Option<Cluster>,
    pub movement: Movement,
    pub rule: String,
    pub evidence: Vec<EvidenceItem>,
    pub tier: Tier,
    pub icp_score: String,
    pub engagement_level: EngagementLevel,
    pub has_triggers: bool,
    pub promotion_triggers: String,
    pub program_type: String,
    pub micro_segment: String,
    pub next_action: String,
    pub checkpoint: CheckpointKinds,
    pub rationale: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DecisionView {
    pub checkpoint: i64,
    pub action: DecisionAction,
    pub actor: String,
    pub comment: Option<String>,
    pub decided_at: Instant,
}

/// An account's effective state: its current cluster, review decisions included.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AccountState {
    pub cluster: Cluster,
    pub entered_at: Instant,
    pub floor: Option<Instant>,
}

/// Everything the store knows about one account (`abm history`).
#[derive(Debug, Clone, Serialize)]
pub struct History {
    pub account_id: String,
    pub name: String,
    pub fields: serde_json::Value,
    /// The current state (a review decision shows here at once).
    pub state: Option<AccountState>,
    pub snapshots: Vec<SnapshotView>,
    pub movements: Vec<MovementView>,
    pub checkpoints: Vec<CheckpointView>,
    pub decisions: Vec<DecisionView>,
}

/// One account's current row in the `segment` output's terms: the latest run's snapshot row,
/// or the row a review decision since made current.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ExportRow {
    pub account_id: String,
    pub name: String,
    pub icp_score: String,
    pub tier: Tier,
    pub engagement_level: EngagementLevel,
    pub has_triggers: bool,
    pub cluster: Cluster,
    pub previous_cluster: Option<Cluster>,
    pub movement: Movement,
    pub promotion_triggers: String,
    pub program_type: String,
    pub micro_segment: String,
    pub next_action: String,
    pub checkpoint: CheckpointKinds,
    pub rationale: String,
    /// The `[[segments]]` the account is in (`a;b`, empty for none) under the definitions the
    /// run recorded; absent when the run recorded none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
}

/// The run an export comes from, with the counts of the current state.
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
    /// The customer track; absent when 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub customer: i64,
    pub events_after_as_of: i64,
    /// Checkpoint kinds open in the rows (capacity: this run's, 0/1): kind → count.
    pub checkpoints: BTreeMap<CheckpointKind, u64>,
    /// Capacity against the current counts.
    pub capacity: CapacityStatus,
    pub decisions_since_run: i64,
    /// Rejected rows of every import (read in the same transaction as the rows).
    pub rejected_rows: i64,
    /// Rows stored by kind (accounts, events, triggers, deals), as `summary` reports them.
    pub stored: BTreeMap<String, i64>,
    /// The run's criteria over fields no input has (left out of the points possible).
    pub criteria_without_data: Vec<String>,
    /// The run's notes on degenerate outcomes (e.g. every account in one cluster, and why).
    pub notes: Vec<String>,
}

/// (imports, rejected rows of every import, rows stored by kind) — what `summary` and `export`
/// report beside the run.
fn stored_counts(tx: &mut dyn Conn) -> Result<(i64, i64, BTreeMap<String, i64>), StoreError> {
    let mut imports = 0;
    let mut rejected = 0;
    let mut stored = BTreeMap::new();
    tx.query_each(
        "SELECT CAST(COUNT(*) AS BIGINT), CAST(COALESCE(SUM(rejected), 0) AS BIGINT),
            CAST(COALESCE(SUM(events_added), 0) AS BIGINT),
            CAST(COALESCE(SUM(triggers_added), 0) AS BIGINT)
         FROM imports",
        &[],
        &mut |r| {
            imports = r.i(0)?;
            rejected = r.i(1)?;
            stored.insert("events".to_string(), r.i(2)?);
            stored.insert("triggers".to_string(), r.i(3)?);
            Ok(())
        },
    )?;
    let accounts = tx.scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM accounts", &[])?;
    let deals = tx.scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM deals", &[])?;
    stored.insert("accounts".to_string(), accounts);
    stored.insert("deals".to_string(), deals);
    Ok((imports, rejected, stored))
}

fn latest_run(conn: &mut dyn Conn) -> Result<Option<i64>, StoreError> {
    conn.query_one("SELECT id FROM runs ORDER BY id DESC LIMIT 1", &[], |r| {
        r.i(0)
    })
}

fn score_text(v: f64) -> String {
    abm_core::scoring::format_score(v)
}

/// A run's counts and capacity as the current state has them: the run's own, with every row a
/// review decision made current since moved from its snapshot cluster to its current one, and
/// capacity re-checked against them with the run's capacity settings.
struct Current {
    counts: ClusterCounts,
    capacity: CapacityStatus,
}

fn current(
    conn: &mut dyn Conn,
    run: i64,
    mut counts: ClusterCounts,
    summary: &str,
) -> Result<Current, StoreError> {
    let summary: serde_json::Value = serde_json::from_str(summary)
        .map_err(|e| StoreError::Corrupt(format!("runs.summary of run {run}: {e}")))?;
    let mut capacity: CapacityStatus = serde_json::from_value(summary["capacity"].clone())
        .map_err(|e| StoreError::Corrupt(format!("runs.summary.capacity of run {run}: {e}")))?;
    let mut moved = false;
    conn.query_each(
        // The account's row as of the run: with change-only history, its latest row (which
        // an earlier run may have written).
        "SELECT s.cluster, cr.cluster FROM current_rows cr
         JOIN account_state st ON st.account = cr.account
         JOIN snapshots s ON s.run = st.snapshot_run AND s.account = cr.account
         WHERE cr.run = ?",
        &[Value::Int(run)],
        &mut |r| {
            let from = cluster("snapshots", "cluster", r.s(0)?)?;
            let to = cluster("current_rows", "cluster", r.s(1)?)?;
            if from != to {
                counts.sub(from);
                counts.add(to);
                moved = true;
            }
            Ok(())
        },
    )?;
    if moved {
        if let Some(cap) = summary.get("capacity_config") {
            let cap = serde_json::from_value(cap.clone()).map_err(|e| {
                StoreError::Corrupt(format!("runs.summary.capacity_config of run {run}: {e}"))
            })?;
            capacity = capacity_status(&counts, &cap);
        }
    }
    Ok(Current { counts, capacity })
}

/// A snapshot column as the current state has it: the current row's when a decision made one
/// (`overlay`), else the snapshot's.
fn cur(col: &str, overlay: bool) -> String {
    if overlay {
        format!("CASE WHEN cr.account IS NULL THEN s.{col} ELSE cr.{col} END")
    } else {
        format!("s.{col}")
    }
}

/// One account's snapshot rows (`?`: its row id) with their runs, to be ordered by `s.run`.
/// They are read from the account's `snapshots_account` entries, so the work grows with its own
/// history, not with the runs: walking the runs and probing each one's `(run, account)` key
/// (which the `CROSS JOIN` used to fix) cost a probe per run for the latest row of an account
/// unchanged since the first run — 365 probes per account detail after a year of daily runs.
/// `CROSS JOIN` keeps SQLite's planner from starting at `runs`.
pub(crate) const SNAPSHOTS_OF_ACCOUNT: &str =
    "SELECT r.id, r.as_of, s.candidate, s.cluster, s.previous, s.movement, rt.text,
        s.evidence, s.tier, s.score, s.engagement, s.has_triggers, s.promotion_triggers,
        s.program, ms.text, na.text, s.checkpoint, s.rationale
     FROM snapshots s
     CROSS JOIN runs r
     JOIN texts rt ON rt.id = s.rule
     JOIN texts ms ON ms.id = s.micro_segment
     JOIN texts na ON na.id = s.next_action
     WHERE r.id = s.run AND s.account = ?";

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
        let (mut s, counts, summary) = tx
            .query_one(
                "SELECT id, as_of, started_at, config_hash, accounts, cluster_icp, future_pipeline,
                    active_focus, monitor_only, summary, promotions, demotions, proposals_opened,
                    checkpoints_opened, checkpoints_closed, events_after_as_of, state_version,
                    accounts - cluster_icp - future_pipeline - active_focus - monitor_only
                 FROM runs WHERE id = ?",
                &[Value::Int(run)],
                |r| {
                    let counts = ClusterCounts {
                        cluster_icp: r.i(5)? as u64,
                        future_pipeline: r.i(6)? as u64,
                        active_focus: r.i(7)? as u64,
                        monitor_only: r.i(8)? as u64,
                        customer: r.i(17)?.max(0) as u64,
                    };
                    let s = StoreSummary {
                        run: r.i(0)?,
                        as_of: Instant(r.i(1)?),
                        started_at: wall("runs", "started_at", r.s(2)?)?,
                        config_hash: r.string(3)?,
                        accounts: r.i(4)?,
                        cluster_icp_count: 0,
                        future_pipeline_count: 0,
                        active_focus_count: 0,
                        monitor_only_count: 0,
                        customer_count: 0,
                        capacity: abm_core::summary::CapacityStatus {
                            active_focus: abm_core::summary::CapacityLevel::Ok,
                            active_focus_max: 0,
                            warnings: Vec::new(),
                        },
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
                    };
                    Ok((s, counts, r.string(9)?))
                },
            )?
            .ok_or(StoreError::NoRun)?;
        let now = current(&mut *tx, run, counts, &summary)?;
        s.cluster_icp_count = now.counts.cluster_icp as i64;
        s.future_pipeline_count = now.counts.future_pipeline as i64;
        s.active_focus_count = now.counts.active_focus as i64;
        s.monitor_only_count = now.counts.monitor_only as i64;
        s.customer_count = now.counts.customer as i64;
        s.capacity = now.capacity;
        tx.query_each(
            "SELECT status, kind, CAST(COUNT(*) AS BIGINT) FROM checkpoints GROUP BY status, kind",
            &[],
            &mut |r| {
                let status = parse_code(CheckpointStatus::parse, "checkpoints", "status", r.s(0)?)?;
                let kind = parse_code(CheckpointKind::parse, "checkpoints", "kind", r.s(1)?)?;
                let n = r.i(2)?;
                if status == CheckpointStatus::Pending {
                    s.pending.insert(kind, n);
                }
                s.queue.entry(status).or_default().insert(kind, n);
                Ok(())
            },
        )?;
        s.runs = tx.scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM runs", &[])?;
        (s.imports, s.rejected_rows, s.stored) = stored_counts(&mut *tx)?;
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

    /// Every snapshot, movement, checkpoint and decision of one account.
    pub fn history(&mut self, account_id: &str) -> Result<History, StoreError> {
        self.history_of(account_id, false)
    }

    /// One account now, for a by-id read: [`Store::history`] with only its latest snapshot
    /// row and its pending checkpoints (no movements, no decisions). The same rows and types,
    /// read by index with `LIMIT 1`, so its cost does not grow with the number of runs.
    pub fn account_now(&mut self, account_id: &str) -> Result<History, StoreError> {
        self.history_of(account_id, true)
    }

    fn history_of(&mut self, account_id: &str, now: bool) -> Result<History, StoreError> {
        let mut tx = Tx::begin(self.conn(), TxMode::Read)?;
        let h = history_in(&mut *tx, account_id, now)?;
        tx.commit()?;
        Ok(h)
    }

    /// [`Store::account_now`] and [`Store::explain`] as of the latest run (its as_of handed to
    /// `rules_at` for the rules), read in one transaction: one snapshot of the store, so a run
    /// or an ingest committing meanwhile is in both or in neither. `None` for the explanation
    /// before the first run.
    pub fn account_detail<E: From<StoreError>>(
        &mut self,
        account_id: &str,
        rules_at: impl FnOnce(Instant) -> Result<std::sync::Arc<abm_core::rules::Rules>, E>,
    ) -> Result<(History, Option<abm_core::explanation::Explanation>), E> {
        let (mut tx, catalog, scoring) = self.read_with_caches()?;
        let now = history_in(&mut *tx, account_id, true)?;
        let explanation = match crate::account::latest_as_of(&mut *tx)? {
            Some(as_of) => {
                let rules = rules_at(as_of)?;
                Some(crate::account::explain(
                    &mut *tx, account_id, &rules, catalog, scoring,
                )?)
            }
            None => None,
        };
        tx.commit()?;
        Ok((now, explanation))
    }
}

/// [`Store::history`] (`now`: [`Store::account_now`]) inside the caller's transaction.
fn history_in(tx: &mut dyn Conn, account_id: &str, now: bool) -> Result<History, StoreError> {
    let (order, pending) = if now {
        ("ORDER BY s.run DESC LIMIT 1", " AND c.status = 'pending'")
    } else {
        ("ORDER BY s.run", "")
    };
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
                cluster: cluster("account_state", "cluster", r.s(0)?)?,
                entered_at: Instant(r.i(1)?),
                floor: r.int(2)?.map(Instant),
            })
        },
    )?;
    let snapshots = tx.query_all(
        &format!("{SNAPSHOTS_OF_ACCOUNT} {order}"),
        &[Value::Int(id)],
        |r| {
            const T: &str = "snapshots";
            Ok(SnapshotView {
                run: r.i(0)?,
                as_of: Instant(r.i(1)?),
                candidate: cluster(T, "candidate", r.s(2)?)?,
                cluster: cluster(T, "cluster", r.s(3)?)?,
                previous: opt_cluster(T, "previous", r.text(4)?)?,
                movement: movement(T, "movement", r.s(5)?)?,
                rule: r.string(6)?,
                evidence: evidence(T, &crate::compact::read(T, "evidence", r.s(7)?)?)?,
                tier: tier(T, r.s(8)?)?,
                icp_score: score_text(r.real(9)?.unwrap_or(0.0)),
                engagement_level: level(T, r.s(10)?)?,
                has_triggers: r.i(11)? != 0,
                promotion_triggers: crate::compact::read(T, "promotion_triggers", r.s(12)?)?,
                program_type: crate::compact::read(T, "program", r.s(13)?)?,
                micro_segment: r.string(14)?,
                next_action: r.string(15)?,
                checkpoint: CheckpointKinds::parse(T, r.s(16)?)?,
                rationale: crate::compact::read(T, "rationale", r.s(17)?)?,
            })
        },
    )?;
    let movements = if now {
        Vec::new()
    } else {
        tx.query_all(
            &format!("SELECT {MOVEMENT_COLS} WHERE m.account = ? ORDER BY m.as_of, m.id"),
            &[Value::Int(id)],
            movement_row,
        )?
    };
    let checkpoints = tx.query_all(
        &format!("SELECT {CHECKPOINT_COLS} WHERE c.account = ?{pending} ORDER BY c.id"),
        &[Value::Int(id)],
        checkpoint_row,
    )?;
    let decisions = if now {
        Vec::new()
    } else {
        tx.query_all(
            "SELECT d.checkpoint, d.action, d.actor, d.comment, d.decided_at
             FROM decisions d JOIN checkpoints c ON c.id = d.checkpoint
             WHERE c.account = ? ORDER BY d.id",
            &[Value::Int(id)],
            |r| {
                Ok(DecisionView {
                    checkpoint: r.i(0)?,
                    action: parse_code(DecisionAction::parse, "decisions", "action", r.s(1)?)?,
                    actor: r.string(2)?,
                    comment: r.opt_string(3)?,
                    decided_at: wall("decisions", "decided_at", r.s(4)?)?,
                })
            },
        )?
    };
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

impl crate::Store {
    /// Stream the current rows (the latest run's snapshot rows, each replaced by the row a review
    /// decision since made current) in `account_id` order (bytewise) to `f`.
    pub fn export(
        &mut self,
        f: &mut dyn FnMut(&ExportRow) -> Result<(), StoreError>,
    ) -> Result<RunInfo, StoreError> {
        let mut tx = Tx::begin(self.conn(), TxMode::Read)?;
        let run = latest_run(&mut *tx)?.ok_or(StoreError::NoRun)?;
        let state_version = meta(&mut *tx, "state_version")?;
        let (mut info, counts, summary) = tx
            .query_one(
                "SELECT id, as_of, config_hash, accounts, cluster_icp, future_pipeline, active_focus,
                    monitor_only, events_after_as_of, state_version, summary,
                    accounts - cluster_icp - future_pipeline - active_focus - monitor_only
                 FROM runs WHERE id = ?",
                &[Value::Int(run)],
                |r| {
                    let counts = ClusterCounts {
                        cluster_icp: r.i(4)? as u64,
                        future_pipeline: r.i(5)? as u64,
                        active_focus: r.i(6)? as u64,
                        monitor_only: r.i(7)? as u64,
                        customer: r.i(11)?.max(0) as u64,
                    };
                    let info = RunInfo {
                        run: r.i(0)?,
                        as_of: Instant(r.i(1)?),
                        config_hash: r.string(2)?,
                        accounts: r.i(3)?,
                        cluster_icp: 0,
                        future_pipeline: 0,
                        active_focus: 0,
                        monitor_only: 0,
                        customer: 0,
                        events_after_as_of: r.i(8)?,
                        checkpoints: BTreeMap::new(),
                        capacity: abm_core::summary::CapacityStatus {
                            active_focus: abm_core::summary::CapacityLevel::Ok,
                            active_focus_max: 0,
                            warnings: Vec::new(),
                        },
                        decisions_since_run: state_version - r.i(9)?,
                        rejected_rows: 0,
                        stored: BTreeMap::new(),
                        criteria_without_data: Vec::new(),
                        notes: Vec::new(),
                    };
                    Ok((info, counts, r.string(10)?))
                },
            )?
            .ok_or(StoreError::NoRun)?;
        let now = current(&mut *tx, run, counts.clone(), &summary)?;
        info.cluster_icp = now.counts.cluster_icp as i64;
        info.future_pipeline = now.counts.future_pipeline as i64;
        info.active_focus = now.counts.active_focus as i64;
        info.monitor_only = now.counts.monitor_only as i64;
        info.customer = now.counts.customer as i64;
        info.capacity = now.capacity;
        let capacity = tx.scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM checkpoints WHERE run = ? AND kind = 'capacity'",
            &[Value::Int(run)],
        )?;
        info.checkpoints
            .insert(CheckpointKind::Capacity, capacity as u64);
        (_, info.rejected_rows, info.stored) = stored_counts(&mut *tx)?;
        let texts = |key: &str| -> Vec<String> {
            serde_json::from_str::<serde_json::Value>(&summary)
                .ok()
                .and_then(|v| serde_json::from_value(v[key].clone()).ok())
                .unwrap_or_default()
        };
        info.criteria_without_data = texts("criteria_without_data");
        // The notes are about the counts: the run's, or, when a decision changed them since,
        // said again against the current ones.
        info.notes = if now.counts == counts {
            texts("notes")
        } else {
            let max_score = serde_json::from_str::<serde_json::Value>(&summary)
                .ok()
                .and_then(|v| v["max_score"].as_f64());
            abm_core::summary::outcome_notes(&now.counts, max_score, &info.criteria_without_data)
        };
        let order = tx.bytewise();
        // Without a decision since the run (the usual case), the snapshot rows as they are.
        let overlay = tx.scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM current_rows WHERE run = ?",
            &[Value::Int(run)],
        )? > 0;
        let cur = |col: &str| cur(col, overlay);
        // A decision's row replaces the account's row as of the latest run (which, with
        // change-only history, may have been written by an earlier run).
        let join = if overlay {
            format!("LEFT JOIN current_rows cr ON cr.account = s.account AND cr.run = {run}")
        } else {
            String::new()
        };
        let mut checkpoints: BTreeMap<CheckpointKind, u64> = BTreeMap::new();
        // Each account's segments under the definitions the run recorded (none: no column).
        let defs: Vec<_> = crate::segments::of_run(&mut *tx, run)?
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        let segments = if defs.is_empty() {
            None
        } else {
            let accounts =
                crate::run::load_accounts(&mut *tx, &|_: &str| {}, crate::scope::Scope::All)?;
            let labels = crate::segments::labels(&accounts, &defs);
            Some((accounts, labels))
        };
        let segment_of = |id: i64| -> Option<String> {
            let (accounts, labels) = segments.as_ref()?;
            Some(
                accounts
                    .idx_of(id)
                    .map(|i| labels[i as usize].clone())
                    .unwrap_or_default(),
            )
        };
        tx.query_each(
            &format!(
                "SELECT a.account_id, a.name, {score}, {tier}, {engagement}, {has_triggers},
                    {cluster}, {previous}, {movement}, {promotion_triggers}, {program}, ms.text,
                    na.text, {checkpoint}, {rationale}, a.id
                 FROM account_state st
                 JOIN snapshots s ON s.run = st.snapshot_run AND s.account = st.account
                 JOIN accounts a ON a.id = s.account
                 {join}
                 JOIN texts ms ON ms.id = {micro_segment}
                 JOIN texts na ON na.id = {next_action}
                 ORDER BY a.account_id{order}",
                score = cur("score"),
                tier = cur("tier"),
                engagement = cur("engagement"),
                has_triggers = cur("has_triggers"),
                cluster = cur("cluster"),
                previous = cur("previous"),
                movement = cur("movement"),
                promotion_triggers = cur("promotion_triggers"),
                program = cur("program"),
                checkpoint = cur("checkpoint"),
                rationale = cur("rationale"),
                micro_segment = cur("micro_segment"),
                next_action = cur("next_action"),
            ),
            // Each account's latest row: a row holds until the account's next one.
            &[],
            &mut |r| {
                const T: &str = "snapshots";
                let row = ExportRow {
                    account_id: r.string(0)?,
                    name: r.string(1)?,
                    icp_score: score_text(r.real(2)?.unwrap_or(0.0)),
                    tier: tier(T, r.s(3)?)?,
                    engagement_level: level(T, r.s(4)?)?,
                    has_triggers: r.i(5)? != 0,
                    cluster: cluster(T, "cluster", r.s(6)?)?,
                    previous_cluster: opt_cluster(T, "previous", r.text(7)?)?,
                    movement: movement(T, "movement", r.s(8)?)?,
                    promotion_triggers: crate::compact::read(T, "promotion_triggers", r.s(9)?)?,
                    program_type: crate::compact::read(T, "program", r.s(10)?)?,
                    micro_segment: r.string(11)?,
                    next_action: r.string(12)?,
                    checkpoint: CheckpointKinds::parse(T, r.s(13)?)?,
                    rationale: crate::compact::read(T, "rationale", r.s(14)?)?,
                    segment: segment_of(r.i(15)?),
                };
                for k in &row.checkpoint.0 {
                    *checkpoints.entry(*k).or_default() += 1;
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

fn is_zero(n: &i64) -> bool {
    *n == 0
}
