//! Segments over the stored history (issue 16): the `[[segments]]` definitions stored and
//! versioned with each run (migration 0010: a definition is stored once per distinct content;
//! a changed one is the segment's next version; each run names the versions it was made
//! with), each account's segments under a run's definitions, and what `abm analyze` reads
//! from the store: the assessments as a run left them, the deals, the engagement of the
//! accounts that won, the movements between clusters.

use crate::db::{Conn, ConnExt, RowExt, TxMode, Value};
use crate::run::{load_accounts, load_deals, StoredAccounts};
use crate::scope::Scope;
use crate::{Store, StoreError, Tx};
use abm_core::segments::{SegmentDef, SegmentSet};
use abm_core::{AccountIdx, Cluster, Deal, Instant, Tier};
use abm_io::load::ByAccount;
use serde::Serialize;

/// A segment definition a run was made with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentRef {
    pub name: String,
    pub version: i64,
}

/// One stored version of a segment's definition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentVersion {
    pub name: String,
    pub version: i64,
    pub fingerprint: String,
    pub definition: SegmentDef,
    /// The first run made with it.
    pub first_run: i64,
    /// The latest run made with it, and how many were.
    pub last_run: i64,
    pub runs: i64,
}

/// Record the run's `[[segments]]`: each definition's version (a new one when its content
/// was never stored under its name).
pub(crate) fn record(
    conn: &mut dyn Conn,
    run: i64,
    defs: &[SegmentDef],
) -> Result<Vec<SegmentRef>, StoreError> {
    let mut out = Vec::with_capacity(defs.len());
    for (position, d) in defs.iter().enumerate() {
        let fp = d.fingerprint();
        let found = conn.query_one(
            "SELECT id, version FROM segment_versions WHERE name = ? AND fingerprint = ?",
            &[Value::Text(&d.name), Value::Text(&fp)],
            |r| Ok((r.i(0)?, r.i(1)?)),
        )?;
        let (id, version) = match found {
            Some(v) => v,
            None => {
                let version = conn.scalar(
                    "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM segment_versions
                     WHERE name = ?",
                    &[Value::Text(&d.name)],
                )? + 1;
                let text = toml::to_string(d)
                    .map_err(|e| StoreError::Corrupt(format!("segment {:?}: {e}", d.name)))?;
                let id = conn
                    .query_one(
                        "INSERT INTO segment_versions (name, version, fingerprint, definition,
                            first_run)
                         VALUES (?, ?, ?, ?, ?) RETURNING id",
                        &[
                            Value::Text(&d.name),
                            Value::Int(version),
                            Value::Text(&fp),
                            Value::Text(&text),
                            Value::Int(run),
                        ],
                        |r| r.i(0),
                    )?
                    .ok_or_else(|| StoreError::Corrupt("INSERT … RETURNING gave no row".into()))?;
                (id, version)
            }
        };
        conn.execute(
            "INSERT INTO run_segments (run, position, segment_version) VALUES (?, ?, ?)",
            &[Value::Int(run), Value::Int(position as i64), Value::Int(id)],
        )?;
        out.push(SegmentRef {
            name: d.name.clone(),
            version,
        });
    }
    Ok(out)
}

fn definition(name: &str, text: &str) -> Result<SegmentDef, StoreError> {
    toml::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("segment_versions.definition of {name:?}: {e}")))
}

/// The definitions a run was made with, in their config order, with their versions.
pub(crate) fn of_run(conn: &mut dyn Conn, run: i64) -> Result<Vec<(SegmentDef, i64)>, StoreError> {
    let rows = conn.query_all(
        "SELECT v.name, v.definition, v.version FROM run_segments r
         JOIN segment_versions v ON v.id = r.segment_version
         WHERE r.run = ? ORDER BY r.position",
        &[Value::Int(run)],
        |r| Ok((r.string(0)?, r.string(1)?, r.i(2)?)),
    )?;
    rows.into_iter()
        .map(|(name, text, v)| Ok((definition(&name, &text)?, v)))
        .collect()
}

/// Each account's segments (`a;b`, empty for none) under `defs`, by account index.
pub fn labels(accounts: &StoredAccounts, defs: &[SegmentDef]) -> Vec<String> {
    let table = &accounts.table;
    let mut set = SegmentSet::new(defs, table.schema());
    let mut label = String::new();
    (0..table.len() as AccountIdx)
        .map(|i| {
            set.label_into(&table.get(i), &mut label);
            label.clone()
        })
        .collect()
}

/// An account's assessment as a run left it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAssessment {
    pub cluster: Cluster,
    pub tier: Tier,
    pub score: f64,
    pub micro_segment: String,
}

/// A recorded run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunAt {
    pub run: i64,
    pub as_of: Instant,
}

/// An engagement event as the buying pattern reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTouch {
    pub account: AccountIdx,
    pub at: Instant,
    pub kind: String,
    pub contact: String,
}

impl Store {
    /// Every stored version of every segment, by name then version.
    pub fn segment_versions(&mut self) -> Result<Vec<SegmentVersion>, StoreError> {
        let mut tx = Tx::begin(self.conn(), TxMode::Read)?;
        let rows = tx.query_all(
            "SELECT v.name, v.version, v.fingerprint, v.definition, v.first_run,
                CAST(COALESCE(MAX(r.run), v.first_run) AS BIGINT), CAST(COUNT(r.run) AS BIGINT)
             FROM segment_versions v LEFT JOIN run_segments r ON r.segment_version = v.id
             GROUP BY v.id, v.name, v.version, v.fingerprint, v.definition, v.first_run
             ORDER BY v.name, v.version",
            &[],
            |r| {
                Ok((
                    r.string(0)?,
                    r.i(1)?,
                    r.string(2)?,
                    r.string(3)?,
                    r.i(4)?,
                    r.i(5)?,
                    r.i(6)?,
                ))
            },
        )?;
        tx.commit()?;
        rows.into_iter()
            .map(
                |(name, version, fingerprint, text, first_run, last_run, runs)| {
                    Ok(SegmentVersion {
                        definition: definition(&name, &text)?,
                        name,
                        version,
                        fingerprint,
                        first_run,
                        last_run,
                        runs,
                    })
                },
            )
            .collect()
    }

    /// The segment definitions run `run` was made with, with their versions.
    pub fn run_segments(&mut self, run: i64) -> Result<Vec<(SegmentDef, i64)>, StoreError> {
        let mut tx = Tx::begin(self.conn(), TxMode::Read)?;
        let v = of_run(&mut *tx, run)?;
        tx.commit()?;
        Ok(v)
    }

    /// The recorded runs, oldest first.
    pub fn runs_at(&mut self) -> Result<Vec<RunAt>, StoreError> {
        self.conn()
            .query_all("SELECT id, as_of FROM runs ORDER BY id", &[], |r| {
                Ok(RunAt {
                    run: r.i(0)?,
                    as_of: Instant(r.i(1)?),
                })
            })
    }

    /// Every stored account and its deals, in one read transaction.
    pub fn accounts_and_deals(&mut self) -> Result<(StoredAccounts, ByAccount<Deal>), StoreError> {
        let mut tx = Tx::begin(self.conn(), TxMode::Read)?;
        let accounts = load_accounts(&mut *tx, &|_: &str| {}, Scope::All)?;
        let deals = load_deals(&mut *tx, &accounts, Scope::All, &mut |_| {})?;
        tx.commit()?;
        Ok((accounts, deals))
    }

    /// Each account's assessment as it held at run `run` (its latest row at or before it);
    /// `None` for an account without one (imported later, or its history pruned).
    pub fn assessments_at(
        &mut self,
        run: i64,
        accounts: &StoredAccounts,
    ) -> Result<Vec<Option<StoredAssessment>>, StoreError> {
        let mut out = vec![None; accounts.table.len()];
        let mut tx = Tx::begin(self.conn(), TxMode::Read)?;
        tx.query_each(
            "SELECT s.account, s.cluster, s.tier, s.score, t.text FROM snapshots s
             JOIN (SELECT account, MAX(run) AS run FROM snapshots WHERE run <= ?
                   GROUP BY account) m ON m.account = s.account AND m.run = s.run
             JOIN texts t ON t.id = s.micro_segment",
            &[Value::Int(run)],
            &mut |r| {
                let Some(i) = accounts.idx_of(r.i(0)?) else {
                    return Ok(());
                };
                out[i as usize] = Some(StoredAssessment {
                    cluster: crate::run::cluster("snapshots", "cluster", r.s(1)?)?,
                    tier: crate::query::parse_code(Tier::parse, "snapshots", "tier", r.s(2)?)?,
                    score: r.real(3)?.unwrap_or(0.0),
                    micro_segment: r.string(4)?,
                });
                Ok(())
            },
        )?;
        tx.commit()?;
        Ok(out)
    }

    /// The engagement events of the accounts with a deal won between `from` and `to` (both
    /// included), up to `to`; `None` when no event is stored at all.
    pub fn touches_of_winners(
        &mut self,
        from: Instant,
        to: Instant,
        accounts: &StoredAccounts,
    ) -> Result<Option<Vec<StoredTouch>>, StoreError> {
        let mut out = Vec::new();
        let mut tx = Tx::begin(self.conn(), TxMode::Read)?;
        let any = tx.scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM (SELECT 1 AS x FROM events LIMIT 1) e",
            &[],
        )?;
        if any == 0 {
            tx.commit()?;
            return Ok(None);
        }
        // Each winner's events from its pack and its newer rows (the index by account holds
        // only those: migration 0015), in id order.
        let winners = tx.query_all(
            "SELECT DISTINCT account FROM deals
             WHERE outcome = 'won' AND closed_at >= ? AND closed_at <= ? ORDER BY account",
            &[Value::Int(from.0), Value::Int(to.0)],
            |r| r.i(0),
        )?;
        let from = crate::packs::events_account_from(&mut *tx)?;
        for account in winners {
            let Some(i) = accounts.idx_of(account) else {
                continue;
            };
            crate::packs::account_events(&mut *tx, from, account, &mut |at, kind, contact| {
                if at <= to.0 {
                    out.push(StoredTouch {
                        account: i,
                        at: Instant(at),
                        kind: kind.to_string(),
                        contact: contact.to_string(),
                    });
                }
                Ok(())
            })?;
        }
        tx.commit()?;
        Ok(Some(out))
    }

    /// Movements between clusters that took effect between `from` and `to` (both included):
    /// (from, to, count).
    pub fn movement_counts(
        &mut self,
        from: Instant,
        to: Instant,
    ) -> Result<Vec<(Cluster, Cluster, u64)>, StoreError> {
        let rows = self.conn().query_all(
            "SELECT from_cluster, to_cluster, CAST(COUNT(*) AS BIGINT) FROM movements
             WHERE as_of >= ? AND as_of <= ? GROUP BY from_cluster, to_cluster",
            &[Value::Int(from.0), Value::Int(to.0)],
            |r| Ok((r.string(0)?, r.string(1)?, r.i(2)?)),
        )?;
        rows.into_iter()
            .map(|(f, t, n)| {
                Ok((
                    crate::run::cluster("movements", "from_cluster", &f)?,
                    crate::run::cluster("movements", "to_cluster", &t)?,
                    n as u64,
                ))
            })
            .collect()
    }
}
