//! Lists for the API: the accounts with filters and keyset paging, and the runs.
//!
//! The account list reads each account's current cluster (`account_state`, so an approval
//! shows at once) and its latest snapshot. Pages follow the account's row id, so a page never
//! repeats or skips an account however the data changes between pages (a new account comes
//! after the ones already listed).

use crate::db::{ConnExt, Row, RowExt, TxMode, Value};
use crate::{StoreError, Tx};
use abm_core::{Cluster, EngagementLevel, Instant, Tier};
use serde::Serialize;

/// The largest page [`crate::Store::list_accounts`] returns.
pub const MAX_PAGE: usize = 1000;

/// Which accounts to list (every filter given must hold), and where to start.
#[derive(Debug, Clone, Default)]
pub struct AccountFilter {
    /// The current (effective) cluster.
    pub cluster: Option<Cluster>,
    /// The latest run's tier.
    pub tier: Option<Tier>,
    /// The latest run's engagement level.
    pub engagement: Option<EngagementLevel>,
    /// The latest run's micro-segment, as written.
    pub micro_segment: Option<String>,
    /// The latest assessment's candidate cluster (where the rules would put it; differs from
    /// `cluster` while a proposal waits for a reviewer).
    pub candidate: Option<Cluster>,
    /// Accounts that went from one cluster to another at a run (a cell of its transition
    /// matrix).
    pub moved: Option<Moved>,
    /// Text in the account id or the name (case-insensitive for ASCII).
    pub q: Option<String>,
    /// At most this many (1 ..= [`MAX_PAGE`]).
    pub limit: usize,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<Cursor>,
}

/// A cell of a run's transition matrix: the accounts whose cluster was `from` at the run
/// before `run` (`None`: no row then) and `to` at `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    pub run: i64,
    pub from: Option<Cluster>,
    pub to: Cluster,
}

/// Where a page starts: after the account with this row id. Opaque to callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(i64);

impl Cursor {
    pub fn parse(s: &str) -> Option<Cursor> {
        s.strip_prefix('a')?.parse().ok().map(Cursor)
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a{}", self.0)
    }
}

/// One account in a list.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AccountListItem {
    pub account_id: String,
    pub name: String,
    /// The current cluster (`None` before the first run).
    pub cluster: Option<String>,
    pub tier: Option<String>,
    pub icp_score: Option<String>,
    pub engagement_level: Option<String>,
    pub micro_segment: Option<String>,
    pub next_action: Option<String>,
}

/// One page of accounts.
#[derive(Debug, Clone, Serialize)]
pub struct AccountPage {
    /// The run whose snapshot the tier, score and engagement come from.
    pub run: Option<i64>,
    pub items: Vec<AccountListItem>,
    /// Pass as `cursor` for the next page; `None` on the last one.
    pub next_cursor: Option<String>,
}

/// One recorded run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunListItem {
    pub run: i64,
    pub as_of: String,
    pub started_at: String,
    pub config_hash: String,
    pub accounts: i64,
    pub cluster_icp: i64,
    pub future_pipeline: i64,
    pub active_focus: i64,
    pub monitor_only: i64,
    /// The customer track (`[customers] mode = "track"`); absent when 0.
    #[serde(skip_serializing_if = "is_zero", default)]
    pub customer: i64,
    pub promotions: i64,
    pub demotions: i64,
    pub checkpoints_opened: i64,
    pub checkpoints_closed: i64,
}

fn like_pattern(q: &str) -> String {
    let mut p = String::with_capacity(q.len() + 2);
    p.push('%');
    for c in q.to_ascii_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// The columns [`item`] reads, and the joins that give them (to an `accounts a`).
const ITEM_COLS: &str = "SELECT a.id, a.account_id, a.name, st.cluster, s.tier, s.score,
    s.engagement, tm.text, tn.text";
const ITEM_JOINS: &str = "LEFT JOIN account_state st ON st.account = a.id
    LEFT JOIN snapshots s ON s.run = st.snapshot_run AND s.account = a.id
    LEFT JOIN texts tm ON tm.id = s.micro_segment
    LEFT JOIN texts tn ON tn.id = s.next_action";

fn item(r: &dyn Row) -> Result<(i64, AccountListItem), StoreError> {
    Ok((
        r.i(0)?,
        AccountListItem {
            account_id: r.string(1)?,
            name: r.string(2)?,
            cluster: r.opt_string(3)?,
            tier: r.opt_string(4)?,
            icp_score: r.real(5)?.map(abm_core::scoring::format_score),
            engagement_level: r.opt_string(6)?,
            micro_segment: r.opt_string(7)?,
            next_action: r.opt_string(8)?,
        },
    ))
}

impl crate::Store {
    /// A page of accounts matching `f`, in a stable order, with the cursor of the next page.
    pub fn list_accounts(&mut self, f: &AccountFilter) -> Result<AccountPage, StoreError> {
        let limit = f.limit.clamp(1, MAX_PAGE);
        let mut tx = Tx::begin(self.conn(), TxMode::Read)?;
        let run = tx.query_one("SELECT id FROM runs ORDER BY id DESC LIMIT 1", &[], |r| {
            r.i(0)
        })?;
        // Tier, score, engagement, micro-segment and candidate come from each account's latest
        // snapshot row (history grows with change: the row of its `snapshot_run`, not
        // necessarily the latest run's); the filters read their copy on the state row
        // (migration 0014), so the accounts a filtered page skips cost no snapshot lookup.
        // Pages follow the account's row id; a transition filter off the diagonal walks the
        // rows its run wrote instead (few, in account order).
        let moved_off = f.moved.filter(|m| m.from != Some(m.to));
        let previous = match f.moved {
            Some(m) => crate::transitions::previous_run(&mut *tx, m.run)?.unwrap_or(-1),
            None => -1,
        };
        let (source, key) = match moved_off {
            Some(_) => (
                format!(
                    "{} JOIN accounts a ON a.id = c.account",
                    crate::transitions::CHANGED_FROM
                ),
                "c.account",
            ),
            None => ("accounts a".to_string(), "a.id"),
        };
        let mut sql = format!("{ITEM_COLS} FROM {source} {ITEM_JOINS} WHERE {key} > ?");
        let mut params = Vec::with_capacity(16);
        if moved_off.is_some() {
            params.push(Value::Int(previous));
        }
        params.push(Value::Int(f.cursor.map_or(i64::MIN, |c| c.0)));
        if let Some(m) = moved_off {
            // Off the diagonal: only the rows the run wrote (few, in account order).
            sql.push_str(" AND ");
            sql.push_str(crate::transitions::CHANGED_WHERE);
            sql.push_str(" AND c.cluster = ?");
            params.extend([Value::Int(m.run), Value::Text(m.to.as_str())]);
            match m.from {
                Some(from) => {
                    sql.push_str(" AND p.cluster = ?");
                    params.push(Value::Text(from.as_str()));
                }
                None => sql.push_str(" AND p.account IS NULL"),
            }
        }
        let pattern = f.q.as_deref().map(like_pattern);
        if let (Some(m), None) = (f.moved, moved_off) {
            // On the diagonal: the account's row at the run and at the one before both say
            // `to` (dense among the accounts, so the walk along their ids stops soon).
            let at = "(SELECT x.cluster FROM snapshots x WHERE x.account = a.id AND x.run <= ?
                       ORDER BY x.run DESC LIMIT 1)";
            sql.push_str(&format!(" AND {at} = ? AND {at} = ?"));
            params.extend([
                Value::Int(m.run),
                Value::Text(m.to.as_str()),
                Value::Int(previous),
                Value::Text(m.to.as_str()),
            ]);
        }
        if let Some(c) = f.cluster {
            sql.push_str(" AND st.cluster = ?");
            params.push(Value::Text(c.as_str()));
        }
        if let Some(c) = f.candidate {
            sql.push_str(" AND st.candidate = ?");
            params.push(Value::Text(c.as_str()));
        }
        if let Some(t) = f.tier {
            sql.push_str(" AND st.tier = ?");
            params.push(Value::Text(t.as_str()));
        }
        if let Some(e) = f.engagement {
            sql.push_str(" AND st.engagement = ?");
            params.push(Value::Text(e.as_str()));
        }
        if let Some(m) = &f.micro_segment {
            sql.push_str(" AND st.micro_segment = (SELECT id FROM texts WHERE text = ?)");
            params.push(Value::Text(m));
        }
        if let Some(p) = &pattern {
            sql.push_str(
                " AND (LOWER(a.account_id) LIKE ? ESCAPE '\\' OR LOWER(a.name) LIKE ? ESCAPE '\\')",
            );
            params.push(Value::Text(p));
            params.push(Value::Text(p));
        }
        // One more than asked: whether a next page exists.
        sql.push_str(&format!(" ORDER BY {key} LIMIT ?"));
        params.push(Value::Int(limit as i64 + 1));
        let mut rows = tx.query_all(&sql, &params, item)?;
        tx.commit()?;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|(id, _)| Cursor(*id).to_string())
        } else {
            None
        };
        Ok(AccountPage {
            run,
            items: rows.into_iter().map(|(_, i)| i).collect(),
            next_cursor,
        })
    }

    /// The list items of the accounts `ids` (unknown ids are left out), in no set order.
    pub fn accounts_by_id(&mut self, ids: &[&str]) -> Result<Vec<AccountListItem>, StoreError> {
        let mut tx = Tx::begin(self.conn(), TxMode::Read)?;
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let params: Vec<Value<'_>> = chunk.iter().map(|i| Value::Text(i)).collect();
            out.extend(
                tx.query_all(
                    &format!(
                        "{ITEM_COLS} FROM accounts a {ITEM_JOINS} WHERE a.account_id IN ({marks})"
                    ),
                    &params,
                    item,
                )?
                .into_iter()
                .map(|(_, i)| i),
            );
        }
        tx.commit()?;
        Ok(out)
    }

    /// The oldest `limit` pending checkpoints (by index), and how many are pending.
    pub fn pending_page(
        &mut self,
        limit: usize,
    ) -> Result<(Vec<crate::query::CheckpointView>, i64), StoreError> {
        use crate::query::{checkpoint_row, CHECKPOINT_COLS};
        let mut tx = Tx::begin(self.conn(), TxMode::Read)?;
        let items = tx.query_all(
            // The ids first (from the status index alone), then their rows: sorting every
            // pending row whole to keep the first few cost 4× more at 1M accounts.
            &format!(
                "SELECT {CHECKPOINT_COLS} WHERE c.id IN (
                     SELECT id FROM checkpoints WHERE status = 'pending' ORDER BY id LIMIT ?)
                 ORDER BY c.id"
            ),
            &[Value::Int(limit.clamp(1, MAX_PAGE) as i64)],
            checkpoint_row,
        )?;
        let count = tx.scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM checkpoints WHERE status = 'pending'",
            &[],
        )?;
        tx.commit()?;
        Ok((items, count))
    }

    /// The latest `limit` review decisions (approved or rejected checkpoints), newest first,
    /// read along the decisions' audit trail.
    pub fn recent_decisions(
        &mut self,
        limit: usize,
    ) -> Result<Vec<crate::query::CheckpointView>, StoreError> {
        use crate::query::{checkpoint_row, CHECKPOINT_COLS};
        let mut tx = Tx::begin(self.conn(), TxMode::Read)?;
        let items = tx.query_all(
            &format!(
                "SELECT {CHECKPOINT_COLS} JOIN decisions d ON d.checkpoint = c.id
                 WHERE d.action IN ('approve', 'reject') ORDER BY d.id DESC LIMIT ?"
            ),
            &[Value::Int(limit.clamp(1, MAX_PAGE) as i64)],
            checkpoint_row,
        )?;
        tx.commit()?;
        Ok(items)
    }

    /// The latest `limit` runs, newest first.
    pub fn list_runs(&mut self, limit: usize) -> Result<Vec<RunListItem>, StoreError> {
        let mut tx = Tx::begin(self.conn(), TxMode::Read)?;
        let v = tx.query_all(
            "SELECT id, as_of, started_at, config_hash, accounts, cluster_icp, future_pipeline,
                active_focus, monitor_only, promotions, demotions, checkpoints_opened,
                checkpoints_closed, accounts - cluster_icp - future_pipeline - active_focus - monitor_only
             FROM runs ORDER BY id DESC LIMIT ?",
            &[Value::Int(limit.clamp(1, MAX_PAGE) as i64)],
            |r| {
                Ok(RunListItem {
                    run: r.i(0)?,
                    as_of: Instant(r.i(1)?).to_string(),
                    started_at: r.string(2)?,
                    config_hash: r.string(3)?,
                    accounts: r.i(4)?,
                    cluster_icp: r.i(5)?,
                    future_pipeline: r.i(6)?,
                    active_focus: r.i(7)?,
                    monitor_only: r.i(8)?,
                    promotions: r.i(9)?,
                    demotions: r.i(10)?,
                    checkpoints_opened: r.i(11)?,
                    checkpoints_closed: r.i(12)?,
                    customer: r.i(13)?,
                })
            },
        )?;
        tx.commit()?;
        Ok(v)
    }

    /// Pending checkpoints, and the latest run with its as_of.
    pub fn queue_status(&mut self) -> Result<(i64, Option<(i64, Instant)>), StoreError> {
        let mut tx = Tx::begin(self.conn(), TxMode::Read)?;
        let pending = tx.scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM checkpoints WHERE status = 'pending'",
            &[],
        )?;
        let run = tx.query_one(
            "SELECT id, as_of FROM runs ORDER BY id DESC LIMIT 1",
            &[],
            |r| Ok((r.i(0)?, Instant(r.i(1)?))),
        )?;
        tx.commit()?;
        Ok((pending, run))
    }
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_patterns_escape() {
        let c = Cursor(42);
        assert_eq!(Cursor::parse(&c.to_string()), Some(c));
        assert_eq!(Cursor::parse("42"), None);
        assert_eq!(Cursor::parse("ax"), None);
        assert_eq!(like_pattern("A_b%"), "%a\\_b\\%%");
    }
}
