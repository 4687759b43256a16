//! The review queue's decisions. Approving a proposal applies it with
//! `abm_core::movement::apply_approval` *as of the run that proposed it* (SPEC §4.5: the result
//! depends on data, config and as_of, never on when the reviewer clicked) and records the
//! movement; rejecting keeps the old cluster, and the proposal's signature stops the same
//! evidence from re-opening it. Capacity and conflict items are acknowledged (approve) or
//! dismissed (reject). Every decision is kept in `decisions`.
//!
//! A decided proposal shows at once in the current state: the row the latest run computed for
//! the account under this outcome (`proposal_rows`, abm-core's decision with the proposal
//! approved or rejected) becomes its current row (`current_rows`) in the same transaction, so
//! export, summary and history show it, and the next run, computing the same, agrees.

use crate::db::{ConnExt, RowExt, TxMode, Value};
use crate::query::{checkpoint_view, parse_code, CheckpointView};
use crate::{meta, set_meta, StoreError, Tx};
use abm_core::movement::{
    apply_approval, CheckpointKind, CheckpointStatus, PriorState, Proposal, ProposalKind,
};
use abm_core::{Cluster, Instant};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct DecisionOutcome {
    pub checkpoint: CheckpointView,
    /// The account's effective cluster after the decision (proposals only).
    pub effective_cluster: Option<Cluster>,
    /// Whether export, summary and history show the decision now (a proposal pending in the
    /// latest run); otherwise the next `abm run` does.
    #[serde(skip)]
    pub shown_now: bool,
}

fn cluster(column: &str, s: Option<&str>) -> Result<Cluster, StoreError> {
    parse_code(Cluster::parse, "checkpoints", column, s.unwrap_or_default())
}

/// The columns `proposal_rows` and `current_rows` share with `snapshots`.
pub(crate) const ROW_COLS: &str = "candidate, cluster, previous, movement, rule, evidence, tier,
    score, engagement, has_triggers, promotion_triggers, program, micro_segment, next_action,
    checkpoint, rationale";

pub(crate) fn decide(
    conn: &mut dyn crate::db::Conn,
    id: i64,
    approve: bool,
    by: &str,
    comment: Option<&str>,
) -> Result<DecisionOutcome, StoreError> {
    let mut tx = Tx::begin(conn, TxMode::Write)?;
    let out = decide_in(&mut *tx, id, approve, by, comment, true)?;
    tx.commit()?;
    Ok(out)
}

/// [`decide`] inside the caller's transaction (`abm run`'s review policy, with `show` false:
/// the run itself computes every account's row next).
pub(crate) fn decide_in(
    tx: &mut dyn crate::db::Conn,
    id: i64,
    approve: bool,
    by: &str,
    comment: Option<&str>,
    show: bool,
) -> Result<DecisionOutcome, StoreError> {
    type Head = (
        String,
        Option<i64>,
        i64,
        Instant,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
        String,
        Option<String>,
    );
    let head: Option<Head> = tx.query_one(
        "SELECT kind, account, run, as_of, from_cluster, to_cluster, rule, signature, evidence,
                status, reviewer
         FROM checkpoints WHERE id = ?",
        &[Value::Int(id)],
        |r| {
            Ok((
                r.string(0)?,
                r.int(1)?,
                r.i(2)?,
                Instant(r.i(3)?),
                r.opt_string(4)?,
                r.opt_string(5)?,
                r.opt_string(6)?,
                r.opt_string(7)?,
                r.string(8)?,
                r.string(9)?,
                r.opt_string(10)?,
            ))
        },
    )?;
    let Some((kind, account, run, as_of, from, to, rule, signature, evidence, status, reviewer)) =
        head
    else {
        return Err(StoreError::NoCheckpoint(id));
    };
    let kind = parse_code(CheckpointKind::parse, "checkpoints", "kind", &kind)?;
    let status = parse_code(CheckpointStatus::parse, "checkpoints", "status", &status)?;
    if status != CheckpointStatus::Pending {
        return Err(StoreError::NotPending {
            id,
            status: status.to_string(),
            by: reviewer,
        });
    }
    let now = crate::wall_clock().to_string();
    let mut effective = None;
    let mut shown_now = false;
    if let Some(account) = account {
        // A decision changes what the next run starts from: it assesses the account.
        crate::run::assess_at_next_run(tx, account)?;
    }
    if let (Some(kind), Some(account)) = (kind.proposal(), account) {
        let state = tx.query_one(
            "SELECT s.cluster, s.entered_at, s.floor, a.account_id
             FROM account_state s JOIN accounts a ON a.id = s.account WHERE s.account = ?",
            &[Value::Int(account)],
            |r| {
                Ok((
                    parse_code(Cluster::parse, "account_state", "cluster", r.s(0)?)?,
                    Instant(r.i(1)?),
                    r.int(2)?.map(Instant).unwrap_or(Instant::MIN),
                    r.string(3)?,
                ))
            },
        )?;
        let Some((now_cluster, entered_at, floor, account_id)) = state else {
            return Err(StoreError::Corrupt(format!(
                "no state for the account of checkpoint {id}"
            )));
        };
        let p = Proposal {
            kind,
            from: cluster("from_cluster", from.as_deref())?,
            to: cluster("to_cluster", to.as_deref())?,
            rule: rule.clone().unwrap_or_default(),
            signature: signature.unwrap_or_default(),
        };
        if now_cluster != p.from {
            return Err(StoreError::Stale {
                id,
                account: account_id,
                now: now_cluster.to_string(),
                from: p.from.to_string(),
            });
        }
        let mut state = PriorState {
            cluster: now_cluster,
            entered_at,
            floor,
            pending: Some(p.clone()),
            rejected: Vec::new(),
        };
        if approve {
            apply_approval(&mut state, &p, as_of);
            tx.execute(
                "UPDATE account_state SET cluster = ?, entered_at = ?, floor = ?, updated_run = ?
                 WHERE account = ?",
                &[
                    Value::Text(state.cluster.as_str()),
                    Value::Int(state.entered_at.0),
                    Value::opt_int((state.floor != Instant::MIN).then_some(state.floor.0)),
                    Value::Int(run),
                    Value::Int(account),
                ],
            )?;
            let direction = match kind {
                ProposalKind::PromotionToActiveFocus | ProposalKind::Promotion => "promotion",
                _ => "demotion",
            };
            let rule_text = format!("{} (approved by {by})", rule.unwrap_or_default());
            tx.execute(
                "INSERT INTO movements (run, account, as_of, from_cluster, to_cluster, direction,
                    rule, evidence, checkpoint, created_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                &[
                    Value::Int(run),
                    Value::Int(account),
                    Value::Int(as_of.0),
                    Value::Text(p.from.as_str()),
                    Value::Text(p.to.as_str()),
                    Value::Text(direction),
                    Value::Text(&rule_text),
                    Value::Text(&evidence),
                    Value::Int(id),
                    Value::Text(&now),
                ],
            )?;
        }
        effective = Some(state.cluster);
        if show {
            // The latest run's row for this outcome becomes the account's current row.
            tx.execute(
                "DELETE FROM current_rows WHERE account = ?",
                &[Value::Int(account)],
            )?;
            let n = tx.execute(
                &format!(
                    "INSERT INTO current_rows (account, run, decided, {ROW_COLS})
                     SELECT account, run, ?, {ROW_COLS} FROM proposal_rows
                     WHERE account = ? AND outcome = ?
                       AND run = (SELECT MAX(id) FROM runs)"
                ),
                &[
                    Value::Int(id),
                    Value::Int(account),
                    Value::Text(if approve { "approved" } else { "rejected" }),
                ],
            )?;
            shown_now = n > 0;
        }
    }
    let new_status = if approve { "approved" } else { "rejected" };
    tx.execute(
        "UPDATE checkpoints SET status = ?, reviewer = ?, comment = ?, decided_at = ? WHERE id = ?",
        &[
            Value::Text(new_status),
            Value::Text(by),
            Value::opt_text(comment),
            Value::Text(&now),
            Value::Int(id),
        ],
    )?;
    tx.execute(
        "INSERT INTO decisions (checkpoint, action, actor, comment, decided_at, run)
         VALUES (?, ?, ?, ?, ?, NULL)",
        &[
            Value::Int(id),
            Value::Text(if approve { "approve" } else { "reject" }),
            Value::Text(by),
            Value::opt_text(comment),
            Value::Text(&now),
        ],
    )?;
    let sv = meta(&mut *tx, "state_version")?;
    set_meta(&mut *tx, "state_version", sv + 1)?;
    let view = checkpoint_view(&mut *tx, id)?;
    Ok(DecisionOutcome {
        checkpoint: view,
        effective_cluster: effective,
        shown_now,
    })
}

impl crate::Store {
    /// Approve a pending checkpoint.
    pub fn approve(
        &mut self,
        id: i64,
        by: &str,
        comment: Option<&str>,
    ) -> Result<DecisionOutcome, StoreError> {
        decide(self.conn(), id, true, by, comment)
    }

    /// Reject a pending checkpoint.
    pub fn reject(
        &mut self,
        id: i64,
        by: &str,
        comment: Option<&str>,
    ) -> Result<DecisionOutcome, StoreError> {
        decide(self.conn(), id, false, by, comment)
    }
}
