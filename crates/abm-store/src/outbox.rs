//! The durable outbox of CRM writes (the playbook's "campaign state file") and the watermarks
//! of incremental pulls.
//!
//! Every write to a CRM is stored here with an idempotency key *before* it is sent. Its life:
//! `pending` → `sending` (an attempt is in flight: marked, and committed, before the request
//! leaves) → `sent`; or `failed` (a transient error outlived this sync's retries: the next sync
//! retries it) or `dead` (the CRM refused it, e.g. a 400 with its message, or too many
//! attempts: only `abm outbox retry` revives it). An item found in `sending` when a sync starts
//! had an attempt whose outcome is unknown (timeout after send, dropped connection, killed
//! process): the connector checks the CRM before it sends it again, so it is never applied
//! twice. Enqueueing the same key again adds nothing.

use crate::db::{Batch, ConnExt, RowExt, TxMode, Value};
use crate::{wall_clock, Store, StoreError, Tx};
use serde::Serialize;

/// Where an outbox item is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    Pending,
    /// An attempt was sent (or was about to be) and its outcome is not known.
    Sending,
    Sent,
    Failed,
    Dead,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Sending => "sending",
            OutboxStatus::Sent => "sent",
            OutboxStatus::Failed => "failed",
            OutboxStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<OutboxStatus> {
        Some(match s {
            "pending" => OutboxStatus::Pending,
            "sending" => OutboxStatus::Sending,
            "sent" => OutboxStatus::Sent,
            "failed" => OutboxStatus::Failed,
            "dead" => OutboxStatus::Dead,
            _ => return None,
        })
    }
}

/// A write to enqueue.
#[derive(Debug, Clone, Copy)]
pub struct NewOutboxItem<'a> {
    /// The idempotency key (unique over every CRM), e.g. `hubspot:note:movement:42`.
    pub key: &'a str,
    /// `hubspot`, `salesforce`.
    pub crm: &'a str,
    /// What the write is (`company_update`, `note`); the connector's vocabulary.
    pub kind: &'a str,
    /// The CRM object it writes to (a company id).
    pub target: &'a str,
    /// The write itself (JSON), as the connector will send it.
    pub payload: &'a str,
}

/// A stored outbox item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxItem {
    pub id: i64,
    pub key: String,
    pub crm: String,
    pub kind: String,
    pub target: String,
    pub payload: String,
    pub status: OutboxStatus,
    pub attempts: i64,
    /// Why the last attempt failed (the CRM's message when it gave one).
    pub reason: Option<String>,
    /// The id the CRM gave the object written (a note's id).
    pub remote_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// The counts of one CRM's items by status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutboxCounts {
    pub pending: u64,
    pub sending: u64,
    pub sent: u64,
    pub failed: u64,
    pub dead: u64,
}

/// A state change of items.
#[derive(Debug, Clone, Copy)]
pub enum OutboxMark<'a> {
    /// An attempt is about to be sent: `sending`, attempts + 1.
    Sending,
    /// Delivered (with the CRM's id of what was created, if any).
    Sent { remote_id: Option<&'a str> },
    /// The attempt's outcome is unknown (timeout after send, dropped connection): stays
    /// `sending` with the reason; it is checked before it is sent again.
    Unknown { reason: &'a str },
    /// Not applied, worth retrying later.
    Failed { reason: &'a str },
    /// Refused by the CRM or out of attempts: only `abm outbox retry` revives it.
    Dead { reason: &'a str },
}

const COLS: &str = "id, key, crm, kind, target, payload, status, attempts, reason, remote_id, created_at, updated_at";

fn item(r: &dyn crate::db::Row) -> Result<OutboxItem, StoreError> {
    let status = r.s(6)?;
    Ok(OutboxItem {
        id: r.i(0)?,
        key: r.string(1)?,
        crm: r.string(2)?,
        kind: r.string(3)?,
        target: r.string(4)?,
        payload: r.string(5)?,
        status: OutboxStatus::parse(status)
            .ok_or_else(|| StoreError::Corrupt(format!("outbox status {status:?}")))?,
        attempts: r.i(7)?,
        reason: r.opt_string(8)?,
        remote_id: r.opt_string(9)?,
        created_at: r.string(10)?,
        updated_at: r.string(11)?,
    })
}

fn id_list(n: usize) -> String {
    vec!["?"; n].join(",")
}

/// Rows per statement when ids are listed (well under both backends' parameter limits).
const IDS_PER_STATEMENT: usize = 500;

impl Store {
    /// Store writes before they are sent (one transaction); a key already there is left as it
    /// is. Returns how many were new.
    pub fn outbox_enqueue(&mut self, items: &[NewOutboxItem<'_>]) -> Result<u64, StoreError> {
        let now = wall_clock().to_string();
        let mut tx = Tx::begin(self.conn(), TxMode::Write)?;
        let mut added = 0;
        for chunk in items.chunks(500) {
            let mut b = Batch::new(9);
            for it in chunk {
                b.text(it.key)
                    .text(it.crm)
                    .text(it.kind)
                    .text(it.target)
                    .text(it.payload)
                    .text("pending")
                    .int(0)
                    .text(&now)
                    .text(&now);
            }
            added += tx.insert_batch(
                "outbox (key, crm, kind, target, payload, status, attempts, created_at, updated_at)",
                &b,
                "ON CONFLICT (key) DO NOTHING",
            )?;
        }
        tx.commit()?;
        Ok(added)
    }

    /// Items of `crm` and `kind` still to deliver (`pending`, `sending`, `failed`), oldest
    /// first, at most `limit`, with an id above `after` (paging).
    pub fn outbox_due(
        &mut self,
        crm: &str,
        kind: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        self.conn().query_all(
            &format!(
                "SELECT {COLS} FROM outbox WHERE crm = ? AND kind = ? AND id > ?
                 AND status IN ('pending', 'sending', 'failed') ORDER BY id LIMIT ?"
            ),
            &[
                Value::Text(crm),
                Value::Text(kind),
                Value::Int(after),
                Value::Int(limit as i64),
            ],
            item,
        )
    }

    /// Record a state change of `ids` (committed before this returns).
    pub fn outbox_mark(&mut self, ids: &[i64], mark: OutboxMark<'_>) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let now = wall_clock().to_string();
        let mut tx = Tx::begin(self.conn(), TxMode::Write)?;
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let (set, extra): (&str, Option<Value<'_>>) = match mark {
                OutboxMark::Sending => ("status = 'sending', attempts = attempts + 1", None),
                OutboxMark::Sent { remote_id } => (
                    "status = 'sent', reason = NULL, remote_id = COALESCE(?, remote_id)",
                    Some(Value::opt_text(remote_id)),
                ),
                OutboxMark::Unknown { reason } => {
                    ("status = 'sending', reason = ?", Some(Value::Text(reason)))
                }
                OutboxMark::Failed { reason } => {
                    ("status = 'failed', reason = ?", Some(Value::Text(reason)))
                }
                OutboxMark::Dead { reason } => {
                    ("status = 'dead', reason = ?", Some(Value::Text(reason)))
                }
            };
            let mut params = Vec::with_capacity(chunk.len() + 2);
            params.extend(extra);
            params.push(Value::Text(&now));
            params.extend(chunk.iter().map(|&i| Value::Int(i)));
            tx.execute(
                &format!(
                    "UPDATE outbox SET {set}, updated_at = ? WHERE id IN ({})",
                    id_list(chunk.len())
                ),
                &params,
            )?;
        }
        tx.commit()
    }

    /// Record deliveries, each with the id the CRM gave what it created (one transaction).
    pub fn outbox_mark_sent(&mut self, sent: &[(i64, Option<&str>)]) -> Result<(), StoreError> {
        if sent.is_empty() {
            return Ok(());
        }
        let now = wall_clock().to_string();
        let mut tx = Tx::begin(self.conn(), TxMode::Write)?;
        for (id, remote) in sent {
            tx.execute(
                "UPDATE outbox SET status = 'sent', reason = NULL, remote_id = COALESCE(?, remote_id), updated_at = ? WHERE id = ?",
                &[Value::opt_text(*remote), Value::Text(&now), Value::Int(*id)],
            )?;
        }
        tx.commit()
    }

    /// Items by status (all with `None`), oldest first, at most `limit`.
    pub fn outbox_list(
        &mut self,
        status: Option<OutboxStatus>,
        limit: usize,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        match status {
            Some(s) => self.conn().query_all(
                &format!("SELECT {COLS} FROM outbox WHERE status = ? ORDER BY id LIMIT ?"),
                &[Value::Text(s.as_str()), Value::Int(limit as i64)],
                item,
            ),
            None => self.conn().query_all(
                &format!("SELECT {COLS} FROM outbox ORDER BY id LIMIT ?"),
                &[Value::Int(limit as i64)],
                item,
            ),
        }
    }

    /// One item by its key.
    pub fn outbox_get(&mut self, key: &str) -> Result<Option<OutboxItem>, StoreError> {
        self.conn().query_one(
            &format!("SELECT {COLS} FROM outbox WHERE key = ?"),
            &[Value::Text(key)],
            item,
        )
    }

    /// The payload of the latest item of each target of `crm`'s `kind` (what was last
    /// enqueued for each object).
    pub fn outbox_latest_payloads(
        &mut self,
        crm: &str,
        kind: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.conn().query_all(
            "SELECT o.target, o.payload FROM outbox o
             JOIN (SELECT target, MAX(id) AS id FROM outbox WHERE crm = ? AND kind = ? GROUP BY target) l
               ON l.id = o.id",
            &[Value::Text(crm), Value::Text(kind)],
            |r| Ok((r.string(0)?, r.string(1)?)),
        )
    }

    /// Counts by status for `crm`.
    pub fn outbox_counts(&mut self, crm: &str) -> Result<OutboxCounts, StoreError> {
        let rows = self.conn().query_all(
            "SELECT status, CAST(COUNT(*) AS BIGINT) FROM outbox WHERE crm = ? GROUP BY status",
            &[Value::Text(crm)],
            |r| Ok((r.string(0)?, r.i(1)? as u64)),
        )?;
        let mut c = OutboxCounts::default();
        for (s, n) in rows {
            match OutboxStatus::parse(&s) {
                Some(OutboxStatus::Pending) => c.pending = n,
                Some(OutboxStatus::Sending) => c.sending = n,
                Some(OutboxStatus::Sent) => c.sent = n,
                Some(OutboxStatus::Failed) => c.failed = n,
                Some(OutboxStatus::Dead) => c.dead = n,
                None => return Err(StoreError::Corrupt(format!("outbox status {s:?}"))),
            }
        }
        Ok(c)
    }

    /// `failed` and `dead` items (those of `ids`, or all of them) back to `pending`, attempts
    /// from 0: the next sync sends them. Returns how many.
    pub fn outbox_retry(&mut self, ids: Option<&[i64]>) -> Result<u64, StoreError> {
        self.outbox_update_where(
            "status = 'pending', attempts = 0",
            "status IN ('failed', 'dead')",
            ids,
        )
    }

    /// Delete items that were not delivered (`pending`, `failed`, `dead`; an item whose
    /// outcome is unknown or that was sent is kept). Returns how many.
    pub fn outbox_drop(&mut self, ids: Option<&[i64]>) -> Result<u64, StoreError> {
        let mut tx = Tx::begin(self.conn(), TxMode::Write)?;
        let cond = "status IN ('pending', 'failed', 'dead')";
        let n = match ids {
            None => tx.execute(&format!("DELETE FROM outbox WHERE {cond}"), &[])?,
            Some(ids) => {
                let mut n = 0;
                for chunk in ids.chunks(IDS_PER_STATEMENT) {
                    let params: Vec<_> = chunk.iter().map(|&i| Value::Int(i)).collect();
                    n += tx.execute(
                        &format!(
                            "DELETE FROM outbox WHERE {cond} AND id IN ({})",
                            id_list(chunk.len())
                        ),
                        &params,
                    )?;
                }
                n
            }
        };
        tx.commit()?;
        Ok(n)
    }

    fn outbox_update_where(
        &mut self,
        set: &str,
        cond: &str,
        ids: Option<&[i64]>,
    ) -> Result<u64, StoreError> {
        let now = wall_clock().to_string();
        let mut tx = Tx::begin(self.conn(), TxMode::Write)?;
        let n = match ids {
            None => tx.execute(
                &format!("UPDATE outbox SET {set}, updated_at = ? WHERE {cond}"),
                &[Value::Text(&now)],
            )?,
            Some(ids) => {
                let mut n = 0;
                for chunk in ids.chunks(IDS_PER_STATEMENT) {
                    let mut params = vec![Value::Text(&now)];
                    params.extend(chunk.iter().map(|&i| Value::Int(i)));
                    n += tx.execute(
                        &format!(
                            "UPDATE outbox SET {set}, updated_at = ? WHERE {cond} AND id IN ({})",
                            id_list(chunk.len())
                        ),
                        &params,
                    )?;
                }
                n
            }
        };
        tx.commit()?;
        Ok(n)
    }

    /// The watermark of `crm`'s `object` pull (what the next incremental pull starts from).
    pub fn watermark(&mut self, crm: &str, object: &str) -> Result<Option<String>, StoreError> {
        self.conn().query_one(
            "SELECT value FROM sync_watermarks WHERE crm = ? AND object = ?",
            &[Value::Text(crm), Value::Text(object)],
            |r| r.string(0),
        )
    }

    pub fn set_watermark(
        &mut self,
        crm: &str,
        object: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        let now = wall_clock().to_string();
        let mut tx = Tx::begin(self.conn(), TxMode::Write)?;
        tx.execute(
            "INSERT INTO sync_watermarks (crm, object, value, updated_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (crm, object) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            &[
                Value::Text(crm),
                Value::Text(object),
                Value::Text(value),
                Value::Text(&now),
            ],
        )?;
        tx.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_sqlite(f: fn(&mut Store)) {
        let dir = tempfile::tempdir().unwrap();
        f(&mut Store::open(dir.path().join("o.db").to_str().unwrap()).unwrap());
    }

    fn on_postgres(name: &str, f: fn(&mut Store)) {
        crate::testing::in_pg_schema(&format!("outbox_{name}"), |url| {
            f(&mut Store::open(url).unwrap())
        });
    }

    fn new<'a>(key: &'a str, target: &'a str) -> NewOutboxItem<'a> {
        NewOutboxItem {
            key,
            crm: "hubspot",
            kind: "note",
            target,
            payload: "{\"body\":\"x\"}",
        }
    }

    #[test]
    fn outbox_life_on_sqlite() {
        on_sqlite(outbox_life);
    }

    #[test]
    #[ignore = "needs PostgreSQL: set ABM_TEST_PG_URL (run by .ci/run)"]
    fn outbox_life_on_postgres() {
        on_postgres("life", outbox_life);
    }

    #[test]
    fn watermarks_on_sqlite() {
        on_sqlite(watermarks);
    }

    #[test]
    #[ignore = "needs PostgreSQL: set ABM_TEST_PG_URL (run by .ci/run)"]
    fn watermarks_on_postgres() {
        on_postgres("wm", watermarks);
    }

    /// An item goes from pending to sent, a key is enqueued once, retry and drop touch only
    /// what was not delivered.
    fn outbox_life(s: &mut Store) {
        {
            assert_eq!(
                s.outbox_enqueue(&[new("k1", "1"), new("k2", "2")]).unwrap(),
                2
            );
            assert_eq!(
                s.outbox_enqueue(&[new("k1", "1"), new("k3", "3")]).unwrap(),
                1
            );
            let due = s.outbox_due("hubspot", "note", 0, 10).unwrap();
            assert_eq!(
                due.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(),
                ["k1", "k2", "k3"]
            );
            let ids: Vec<i64> = due.iter().map(|i| i.id).collect();
            s.outbox_mark(&ids[..2], OutboxMark::Sending).unwrap();
            s.outbox_mark(
                &ids[..1],
                OutboxMark::Sent {
                    remote_id: Some("n9"),
                },
            )
            .unwrap();
            s.outbox_mark(&ids[1..2], OutboxMark::Unknown { reason: "timeout" })
                .unwrap();
            s.outbox_mark(&ids[2..], OutboxMark::Dead { reason: "400: bad" })
                .unwrap();
            s.outbox_mark_sent(&[(ids[0], None)]).unwrap();
            let k1 = s.outbox_get("k1").unwrap().unwrap();
            assert_eq!(
                (k1.status, k1.attempts, k1.remote_id.as_deref()),
                (OutboxStatus::Sent, 1, Some("n9"))
            );
            let k2 = s.outbox_get("k2").unwrap().unwrap();
            assert_eq!(
                (k2.status, k2.reason.as_deref()),
                (OutboxStatus::Sending, Some("timeout"))
            );
            // Due: the unknown one (to be checked), not the sent or dead ones.
            let due: Vec<String> = s
                .outbox_due("hubspot", "note", 0, 10)
                .unwrap()
                .into_iter()
                .map(|i| i.key)
                .collect();
            assert_eq!(due, ["k2"]);
            let c = s.outbox_counts("hubspot").unwrap();
            assert_eq!((c.sent, c.sending, c.dead, c.pending), (1, 1, 1, 0));
            // Retry revives the dead one; drop never deletes a sent or unknown one.
            assert_eq!(s.outbox_retry(None).unwrap(), 1);
            assert_eq!(
                s.outbox_get("k3").unwrap().unwrap().status,
                OutboxStatus::Pending
            );
            assert_eq!(s.outbox_drop(Some(&ids)).unwrap(), 1);
            assert!(s.outbox_get("k3").unwrap().is_none());
            assert!(s.outbox_get("k1").unwrap().is_some());
            assert_eq!(s.outbox_list(None, 10).unwrap().len(), 2);
            s.outbox_enqueue(&[NewOutboxItem {
                payload: "{\"body\":\"y\"}",
                ..new("k4", "1")
            }])
            .unwrap();
            let mut latest = s.outbox_latest_payloads("hubspot", "note").unwrap();
            latest.sort();
            assert_eq!(
                latest,
                [
                    ("1".to_string(), "{\"body\":\"y\"}".to_string()),
                    ("2".to_string(), "{\"body\":\"x\"}".to_string())
                ]
            );
            assert_eq!(
                s.outbox_list(Some(OutboxStatus::Sent), 10).unwrap()[0].key,
                "k1"
            );
        }
    }

    /// Watermarks are kept per CRM and object.
    fn watermarks(s: &mut Store) {
        {
            assert_eq!(s.watermark("hubspot", "companies").unwrap(), None);
            s.set_watermark("hubspot", "companies", "2026-01-01T00:00:00Z")
                .unwrap();
            s.set_watermark("hubspot", "companies", "2026-02-01T00:00:00Z")
                .unwrap();
            s.set_watermark("hubspot", "deals", "x").unwrap();
            assert_eq!(
                s.watermark("hubspot", "companies").unwrap().as_deref(),
                Some("2026-02-01T00:00:00Z")
            );
        }
    }
}
