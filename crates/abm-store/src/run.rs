//! `abm run --as-of T`: evaluate every stored account against its previous *effective* state
//! (SPEC §4.5) and record the result, all in one transaction:
//!
//! 1. load accounts, engagement (folded with `EngagementState::observe`), triggers in their
//!    window, deals, each account's prior state, pending and rejected proposals;
//! 2. per account (on every core): `abm_core::assess` then `abm_core::movement::decide`;
//! 3. write the snapshot rows, movements, checkpoint changes (open / keep / close per
//!    `ProposalAction`, conflicts not duplicated while pending, one capacity item per run), and
//!    the new per-account state.
//!
//! Nothing here decides a cluster: the rules are `abm-core`'s.

use crate::db::{Batch, Conn, ConnExt, RowExt, TxMode, Value};
use crate::query::parse_code;
use crate::scope::Scope;
use crate::scope::{select_scope, Marks, Others};
use crate::{meta, set_meta, StoreError, Tx};
use abm_core::account::{AccountSchema, AccountTable, Firmographics};
use abm_core::assess::{assess, Facts};
use abm_core::engagement::{Deal, DealOutcome, EngagementState, Signal, Trigger, Verdict};
use abm_core::horizon::Horizon;
use abm_core::movement::{
    apply_approval, decide, CheckpointKind, CheckpointStatus, Decision, Evidence, EvidenceKind,
    PriorState, Proposal, ProposalAction, ProposalKind,
};
use abm_core::summary::{capacity_status, CapacityStatus, ClusterCounts};
use abm_core::{AccountIdx, Cluster, Instant, Rules, ScoringModel, Tier};
use abm_io::load::ByAccount;
use abm_io::segment::RowScratch;
use serde::Serialize;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

const BLOCK: usize = 4096;
const FLUSH_ROWS: usize = 1000;

pub struct RunOptions<'a> {
    pub as_of: Instant,
    pub threads: usize,
    /// Assess every account, even when only some changed or are due (`abm run --full`).
    pub full: bool,
    /// One-line status messages (stderr in the CLI).
    pub log: &'a (dyn Fn(&str) + Sync),
    /// (what, done, total).
    pub progress: &'a (dyn Fn(&str, u64, u64) + Sync),
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: i64,
    pub as_of: Instant,
    pub config_hash: String,
    pub accounts: u64,
    /// Accounts this run assessed: all of them in a full run; else those with new or
    /// changed rows, a decision or re-evaluation since the previous run, or a due instant.
    pub assessed: u64,
    /// Every account was assessed (the first run, a config change, `--full`).
    pub full: bool,
    pub counts: ClusterCounts,
    pub capacity: CapacityStatus,
    pub promotions: u64,
    pub demotions: u64,
    pub proposals_opened: u64,
    pub checkpoints_opened: u64,
    pub checkpoints_closed: u64,
    pub events_read: u64,
    pub events_after_as_of: u64,
    /// Events whose type the current config does not know (ignored).
    pub events_unknown_type: u64,
    /// Snapshot rows written: one per account whose assessment changed since its latest row
    /// (a row holds until the account's next one).
    pub snapshot_rows: u64,
    /// What the `[review]` policy did to unreviewed items, with ages (empty when it is off).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub review_policy: Vec<String>,
    /// Fields of ICP criteria that no stored account column provides.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub criteria_without_data: Vec<String>,
    /// Why the outcome is degenerate, in words.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The `[[segments]]` definitions the run was made with, by stored version.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<crate::segments::SegmentRef>,
}

/// `[review]`: unreviewed items past their age (days of as_of since the run that opened them)
/// are auto-approved (demotions), expired or listed as escalated, inside the run's transaction
/// and before the accounts' states are read (so the run sees the decisions).
fn apply_review_policy(
    conn: &mut dyn Conn,
    rules: &Rules,
    run_id: i64,
) -> Result<Vec<String>, StoreError> {
    let p = &rules.config.review;
    if p.is_default() {
        return Ok(Vec::new());
    }
    let as_of = rules.as_of;
    let pending = conn.query_all(
        "SELECT id, kind, as_of FROM checkpoints WHERE status = 'pending' ORDER BY id",
        &[],
        |r| {
            Ok((
                r.i(0)?,
                parse_code(CheckpointKind::parse, "checkpoints", "kind", r.s(1)?)?,
                Instant(r.i(2)?),
            ))
        },
    )?;
    let age = |t: Instant| as_of.days_since(t).max(0) as u32;
    let mut lines = Vec::new();
    let mut left = Vec::new();
    let n = p.auto_approve_demotions_after_days;
    let mut approved = (0u32, 0u32);
    for (id, kind, at) in pending {
        let a = age(at);
        if n > 0 && a >= n && kind == CheckpointKind::DemotionFromActiveFocus {
            let by = format!("policy: auto_approve_demotions_after_days = {n}");
            match crate::review::decide_in(conn, id, true, &by, Some("unreviewed"), false) {
                Ok(_) => {
                    approved.0 += 1;
                    approved.1 = approved.1.max(a);
                    continue;
                }
                // Stale (the account moved on): left to the run, which closes it.
                Err(StoreError::Stale { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        left.push((id, a));
    }
    if approved.0 > 0 {
        lines.push(format!(
            "{} unreviewed demotion(s) approved after {n}+ days (oldest {} days)",
            approved.0, approved.1
        ));
    }
    let m = p.expire_after_days;
    if m > 0 {
        let now = crate::wall_clock().to_string();
        let reason = format!("expired: unreviewed for {m}+ days (review.expire_after_days)");
        let (mut k, mut oldest) = (0u32, 0u32);
        for (id, a) in left.iter().filter(|(_, a)| *a >= m) {
            conn.execute(
                "UPDATE account_state SET due_at = NULL
                 WHERE account = (SELECT account FROM checkpoints WHERE id = ?)",
                &[Value::Int(*id)],
            )?;
            conn.execute(
                "UPDATE checkpoints SET status = 'closed', reviewer = 'policy', reason = ?,
                    decided_at = ?, decided_run = ? WHERE id = ? AND status = 'pending'",
                &[
                    Value::Text(&reason),
                    Value::Text(&now),
                    Value::Int(run_id),
                    Value::Int(*id),
                ],
            )?;
            conn.execute(
                "INSERT INTO decisions (checkpoint, action, actor, comment, decided_at, run)
                 VALUES (?, 'close', 'policy', ?, ?, ?)",
                &[
                    Value::Int(*id),
                    Value::Text(&reason),
                    Value::Text(&now),
                    Value::Int(run_id),
                ],
            )?;
            k += 1;
            oldest = oldest.max(*a);
        }
        left.retain(|(_, a)| *a < m);
        if k > 0 {
            lines.push(format!(
                "{k} unreviewed item(s) expired after {m}+ days (oldest {oldest} days)"
            ));
        }
    }
    let e = p.escalate_after_days;
    if e > 0 {
        let old: Vec<u32> = left.iter().map(|x| x.1).filter(|a| *a >= e).collect();
        if !old.is_empty() {
            lines.push(format!(
                "{} item(s) escalated: pending {e}+ days (oldest {} days)",
                old.len(),
                old.iter().max().unwrap()
            ));
        }
    }
    Ok(lines)
}

/// Make the next run assess `account` (a decision or a re-evaluation changed its state).
pub(crate) fn assess_at_next_run(conn: &mut dyn Conn, account: i64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE account_state SET due_at = NULL WHERE account = ?",
        &[Value::Int(account)],
    )?;
    Ok(())
}

#[derive(Debug, Clone)]
// One per command: the size of the report does not matter.
#[allow(clippy::large_enum_variant)]
pub enum RunOutcome {
    Done(RunReport),
    /// Same as_of, data, config and review state as run `run`: nothing recorded.
    Unchanged {
        run: i64,
        as_of: Instant,
    },
}

/// What one worker computed for one account.
pub(crate) struct Computed {
    pub(crate) idx: AccountIdx,
    pub(crate) d: Decision,
    tier: Tier,
    score: f64,
    level: &'static str,
    has_triggers: bool,
    /// The evidence JSON (checkpoints and movements keep it as it is; a row codes it when it
    /// is written, [`crate::compact`]: most accounts' rows are not).
    evidence: String,
    promotion_triggers: String,
    micro_segment: String,
    next_action: String,
    /// The rationale (coded when a row is written).
    rationale: String,
    /// (code, description) of each conflict that needs a reviewer.
    conflicts: Vec<(String, String)>,
    /// A customer's program (else the cluster's).
    customer_program: bool,
    /// The score came from the criteria (not the input).
    score_computed: bool,
    /// With a proposal pending after this run: the row this run gives the account once it is
    /// approved, and once it is rejected (`proposal_rows`), with the state each starts from.
    decided: Vec<Hypothesis>,
    /// Hash of the snapshot row's content but its checkpoint column (computed on the workers).
    content: [u8; 16],
    /// A re-evaluation's current row when it differs from this outcome's: the state after it,
    /// and what the next run computes from that state ([`compute_current`]).
    shown: Option<Box<(PriorState, Computed)>>,
    /// A run's row that will be written, prepared on the worker ([`compute`]).
    coded: Option<Box<Coded>>,
}

/// What the writer thread would otherwise compute for a snapshot row it writes — the review
/// items' column, the row's hash and its texts coded for storage ([`crate::compact`]) — done
/// on the worker that computed the row when the row is new (its hash differs from the stored
/// one): at 1M accounts a first run's writer thread spent 9% of its time there, and the writer
/// is the run's one busy thread. Pure functions of the loaded data and the row, so equal to
/// what the writer would compute.
pub(crate) struct Coded {
    checkpoint: String,
    hash: [u8; 16],
    texts: RowTexts<'static>,
    /// The `texts` ids of the row's rule, micro-segment and next action, when they were stored
    /// before the run began ([`Coded::resolve`]; the writer interns the others).
    ids: [Option<i64>; 3],
}

impl Coded {
    /// Looks the interned texts of `c`'s prepared row up among those stored when the run
    /// began.
    fn resolve(c: &mut Computed, known: &TextIds) {
        let id = |s: &str| known.get(s).copied();
        let ids = [id(&c.d.rule), id(&c.micro_segment), id(&c.next_action)];
        if let Some(k) = c.coded.as_mut() {
            k.ids = ids;
        }
    }
}

/// A row's texts as stored: coded ([`crate::compact`]).
struct RowTexts<'a> {
    evidence: Cow<'a, str>,
    promotion_triggers: Cow<'a, str>,
    program: Cow<'a, str>,
    rationale: Cow<'a, str>,
}

impl<'a> RowTexts<'a> {
    fn of(rules: &'a Rules, c: &'a Computed) -> RowTexts<'a> {
        use crate::compact::encode;
        RowTexts {
            evidence: encode(&c.evidence),
            promotion_triggers: encode(&c.promotion_triggers),
            program: encode(if c.customer_program {
                &rules.config.customers.program
            } else {
                rules.config.programs.of(c.d.cluster)
            }),
            rationale: encode(&c.rationale),
        }
    }

    fn owned(self) -> RowTexts<'static> {
        RowTexts {
            evidence: Cow::Owned(self.evidence.into_owned()),
            promotion_triggers: Cow::Owned(self.promotion_triggers.into_owned()),
            program: Cow::Owned(self.program.into_owned()),
            rationale: Cow::Owned(self.rationale.into_owned()),
        }
    }
}

/// This run's outcome for an account under a review decision not taken yet.
struct Hypothesis {
    outcome: &'static str,
    prior: PriorState,
    c: Computed,
}

pub(crate) struct Loaded {
    pub(crate) table: AccountTable,
    /// accounts.id of each AccountIdx.
    pub(crate) ids: Vec<i64>,
    pub(crate) priors: Vec<Option<PriorState>>,
    pending_proposal: Vec<Option<i64>>,
    /// as_of of the run that opened each pending proposal (an approval takes effect then).
    pending_as_of: Vec<Instant>,
    /// An account's engagement folded with the floor an approval of its pending demotion would
    /// set (that proposal's as_of): what the next run reads once it is approved.
    alt_states: HashMap<usize, EngagementState>,
    pending_conflict: Vec<Option<i64>>,
    /// Signatures of conflicts a reviewer already decided: not re-opened on the same evidence.
    decided_conflicts: HashMap<usize, Vec<String>>,
    states: Vec<EngagementState>,
    signals: ByAccount<Signal>,
    triggers: ByAccount<Trigger>,
    deals: ByAccount<Deal>,
    /// The product catalog customers' whitespace is measured against.
    products: Vec<String>,
    events_read: u64,
    events_after: u64,
    events_unknown: u64,
    /// Per account: the run and content hash of its latest snapshot row (`account_state`).
    pub(crate) snapshot_of: Vec<Option<(i64, Option<[u8; 16]>)>>,
    /// Per account: the due instant and computed score `account_state` holds.
    pub(crate) stored_due: Vec<(Option<i64>, Option<f64>)>,
    /// Per account: the earliest instant a rule reading its events, triggers or deals could
    /// change its assessment (the entry and floor of its state are added when it is decided).
    due: Vec<Instant>,
    horizon: Horizon,
    /// The events read beyond the packs, for the packs (`packs::write`, by a writing caller).
    pub(crate) pack_delta: crate::packs::Delta,
}

/// The columns [`push_account`] reads, in its order.
pub(crate) const ACCOUNT_COLUMNS: &str =
    "id, account_id, fields, employees, annual_revenue, icp_score, icp_tier, founded_year";

/// The account schema of the stored accounts (`account_columns`, without the id).
pub(crate) fn account_schema(conn: &mut dyn Conn) -> Result<AccountSchema, StoreError> {
    let mut names = conn.query_all(
        "SELECT name FROM account_columns ORDER BY position",
        &[],
        |r| r.string(0),
    )?;
    names.retain(|n| n != "account_id");
    Ok(AccountSchema::new(names))
}

/// One `accounts` row (selected as [`ACCOUNT_COLUMNS`]) pushed onto `table`, whose schema's
/// columns are `cols`: its `accounts.id` and its index in the table.
pub(crate) fn push_account(
    table: &mut AccountTable,
    cols: &[String],
    vals: &mut Vec<String>,
    r: &dyn crate::db::Row,
) -> Result<(i64, AccountIdx), StoreError> {
    let raw = RawAccount::of(r)?;
    let id = raw.id;
    Ok((id, push_raw(table, cols, vals, &raw, r.s(1)?, r.s(2)?)?))
}

/// An `accounts` row as read, its texts (account id, fields) kept elsewhere.
struct RawAccount {
    id: i64,
    f: Firmographics,
}

impl RawAccount {
    fn of(r: &dyn crate::db::Row) -> Result<RawAccount, StoreError> {
        Ok(RawAccount {
            id: r.i(0)?,
            f: Firmographics {
                employees: r.real(3)?,
                annual_revenue: r.real(4)?,
                icp_score: r.real(5)?,
                icp_tier: r.text(6)?.and_then(Tier::parse),
                founded_year: r.int(7)?.map(|v| v as i32),
            },
        })
    }
}

/// `raw` with its account id and fields JSON pushed onto `table`.
fn push_raw(
    table: &mut AccountTable,
    cols: &[String],
    vals: &mut Vec<String>,
    raw: &RawAccount,
    account_id: &str,
    fields: &str,
) -> Result<AccountIdx, StoreError> {
    let id = raw.id;
    vals.resize(cols.len(), String::new());
    for v in vals.iter_mut() {
        v.clear();
    }
    vals[0].push_str(account_id);
    fields_into(fields, &cols[1..], &mut vals[1..])
        .map_err(|e| StoreError::Corrupt(format!("accounts.fields of id {id}: {e}")))?;
    Ok(table.push(vals.iter().map(String::as_str), &raw.f, id as u64))
}

/// Accounts rows read, waiting to be parsed: each one's columns and the ranges of its account
/// id and fields in `text`.
#[derive(Default)]
struct AccountBlock {
    rows: Vec<(RawAccount, std::ops::Range<usize>, std::ops::Range<usize>)>,
    text: String,
}

impl AccountBlock {
    const ROWS: usize = 4096;

    fn take(&mut self, r: &dyn crate::db::Row) -> Result<(), StoreError> {
        let raw = RawAccount::of(r)?;
        let start = self.text.len();
        self.text.push_str(r.s(1)?);
        let mid = self.text.len();
        self.text.push_str(r.s(2)?);
        self.rows.push((raw, start..mid, mid..self.text.len()));
        Ok(())
    }
}

impl crate::beside::Block for AccountBlock {
    fn full(&self) -> bool {
        self.rows.len() >= Self::ROWS
    }

    fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn clear(&mut self) {
        self.rows.clear();
        self.text.clear();
    }
}

/// From this many accounts on, a load parses the accounts' rows (their fields' JSON: about half
/// of loading them) on a helper thread while this one reads the next rows.
const PARSE_BESIDE_FROM: usize = 4096;

/// Parse `accounts.fields` (a JSON object of strings) into `vals`, each value at its column's
/// position in `cols` (a column it lacks stays empty; keys that name no column are skipped; of
/// repeated keys the last wins). No map is built: at 1M accounts a `HashMap` per row was a fifth
/// of a full run. The objects are written in column order, so a key is looked for first where
/// the previous key's column was followed.
fn fields_into(json: &str, cols: &[String], vals: &mut [String]) -> Result<(), serde_json::Error> {
    use serde::de::{DeserializeSeed, MapAccess, Visitor};
    use std::borrow::Cow;

    /// A string, borrowed from the input when it has no escapes.
    struct Text<'de>(Cow<'de, str>);
    impl<'de> serde::Deserialize<'de> for Text<'de> {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Text<'de>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a string")
                }
                fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                    Ok(Text(Cow::Borrowed(v)))
                }
                fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                    Ok(Text(Cow::Owned(v.to_string())))
                }
                fn visit_string<E>(self, v: String) -> Result<Text<'de>, E> {
                    Ok(Text(Cow::Owned(v)))
                }
            }
            d.deserialize_str(V)
        }
    }

    struct Fields<'a> {
        cols: &'a [String],
        vals: &'a mut [String],
    }
    impl<'de> Visitor<'de> for Fields<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object of strings")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
            let mut next = 0usize;
            while let Some(Text(key)) = m.next_key::<Text<'de>>()? {
                let Text(value) = m.next_value::<Text<'de>>()?;
                let at = if self.cols.get(next).is_some_and(|c| *c == key) {
                    Some(next)
                } else {
                    self.cols.iter().position(|c| *c == key)
                };
                if let Some(k) = at {
                    let slot = &mut self.vals[k];
                    slot.clear();
                    slot.push_str(&value);
                    next = k + 1;
                }
            }
            Ok(())
        }
    }
    impl<'de> DeserializeSeed<'de> for Fields<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }

    let mut de = serde_json::Deserializer::from_str(json);
    Fields { cols, vals }.deserialize(&mut de)?;
    de.end()
}

pub(crate) fn cluster(table: &str, column: &str, s: &str) -> Result<Cluster, StoreError> {
    crate::query::parse_code(Cluster::parse, table, column, s)
}

/// `accounts.id` → the account's index in the loaded table.
enum IdMap {
    /// Every account: indexed by id.
    Dense(Vec<u32>),
    /// A few accounts.
    Sparse(HashMap<i64, u32>),
}

impl IdMap {
    fn get(&self, id: i64) -> Option<AccountIdx> {
        match self {
            IdMap::Dense(map) => map
                .get(usize::try_from(id).ok()?)
                .copied()
                .filter(|&i| i != u32::MAX),
            IdMap::Sparse(map) => map.get(&id).copied(),
        }
    }

    fn set(&mut self, id: i64, idx: AccountIdx) {
        match self {
            IdMap::Dense(map) => map[id as usize] = idx,
            IdMap::Sparse(map) => {
                map.insert(id, idx);
            }
        }
    }
}

/// The stored accounts as a table (in `accounts.id` order), with each one's `accounts.id`.
pub struct StoredAccounts {
    pub table: AccountTable,
    /// `accounts.id` per account index.
    pub ids: Vec<i64>,
    id_map: IdMap,
}

impl StoredAccounts {
    /// The index of the account whose `accounts.id` is `id`.
    pub fn idx_of(&self, id: i64) -> Option<AccountIdx> {
        self.id_map.get(id)
    }
}

/// The stored accounts of `scope`: every one (`NoAccounts` when there is none), or those of
/// the ids still stored.
pub(crate) fn load_accounts(
    conn: &mut dyn Conn,
    log: &dyn Fn(&str),
    scope: Scope<'_>,
) -> Result<StoredAccounts, StoreError> {
    let schema = account_schema(conn)?;
    let (n, mut id_map) = match scope {
        Scope::All => {
            let n = conn.scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM accounts", &[])? as usize;
            if n == 0 {
                return Err(StoreError::NoAccounts);
            }
            let max_id = conn.scalar("SELECT CAST(MAX(id) AS BIGINT) FROM accounts", &[])?;
            (n, IdMap::Dense(vec![u32::MAX; max_id as usize + 1]))
        }
        Scope::Ids(ids) => (ids.len(), IdMap::Sparse(HashMap::with_capacity(ids.len()))),
    };
    let mut table = AccountTable::new(schema.clone());
    table.reserve(n, n * 64);
    let mut ids = Vec::with_capacity(n);
    let cols = schema.columns().to_vec();
    let mut vals: Vec<String> = Vec::new();
    if matches!(scope, Scope::All) {
        log(&format!("loading {n} accounts"));
    }
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE {{scope}} ORDER BY id");
    let mut push = |block: &AccountBlock| -> Result<(), StoreError> {
        for (raw, account_id, fields) in &block.rows {
            let t = &block.text;
            let idx = push_raw(
                &mut table,
                &cols,
                &mut vals,
                raw,
                &t[account_id.clone()],
                &t[fields.clone()],
            )?;
            id_map.set(raw.id, idx);
            ids.push(raw.id);
        }
        Ok(())
    };
    if n < crate::beside::beside_from(PARSE_BESIDE_FROM) {
        use crate::beside::Block;
        let mut block = AccountBlock::default();
        scope.each(conn, &sql, "id", &[], &mut |r| {
            block.clear();
            block.take(r)?;
            push(&block)
        })?;
    } else {
        crate::beside::read_beside(&mut push, |filler| {
            scope.each(conn, &sql, "id", &[], &mut |r| {
                filler.block().take(r)?;
                filler.hand_over_if_full()
            })
        })?;
    }
    Ok(StoredAccounts { table, ids, id_map })
}

/// The stored deals of `accounts` (read over `scope`), by account then deal id; `seen` is
/// shown each one.
pub(crate) fn load_deals(
    conn: &mut dyn Conn,
    accounts: &StoredAccounts,
    scope: Scope<'_>,
    seen: &mut dyn FnMut(&Deal),
) -> Result<ByAccount<Deal>, StoreError> {
    let mut deals = Vec::new();
    scope.each(
        conn,
        "SELECT account, deal_id, stage, amount, created_at, closed_at, last_stage_change_at, outcome,
                product, stage_history
         FROM deals WHERE {scope}",
        "account",
        &[],
        &mut |r| {
            let Some(i) = accounts.idx_of(r.i(0)?) else {
                return Ok(());
            };
            let deal = Deal {
                account: i,
                deal_id: r.string(1)?,
                stage: r.string(2)?,
                amount: r.real(3)?,
                created_at: Instant(r.i(4)?),
                closed_at: r.int(5)?.map(Instant),
                last_stage_change_at: r.int(6)?.map(Instant),
                outcome: DealOutcome::parse(r.s(7)?)
                    .ok_or_else(|| StoreError::Corrupt("deal outcome".into()))?,
                product: r
                    .opt_string(8)?
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty()),
                history: stage_history(r.opt_string(9)?)?,
            };
            seen(&deal);
            deals.push(deal);
            Ok(())
        },
    )?;
    deals.sort_by(|a, b| a.account.cmp(&b.account).then(a.deal_id.cmp(&b.deal_id)));
    Ok(ByAccount::new(deals, accounts.table.len(), |d| d.account))
}

/// The products a customer's whitespace is measured against as of `rules.as_of`: the
/// configured list, else every product on a stored deal created by then — over all stored
/// deals, whatever a load's scope (a run that scales with change assesses everyone when it
/// changes: [`catalog_mark`]).
pub(crate) fn product_catalog(
    conn: &mut dyn Conn,
    rules: &Rules,
) -> Result<Vec<String>, StoreError> {
    product_catalog_with(conn, rules, None)
}

/// [`product_catalog`], or — given `dates`, every product on a stored deal with its first
/// deal's creation (see [`deal_product_dates`]) — the same catalog without reading the deals.
pub(crate) fn product_catalog_with(
    conn: &mut dyn Conn,
    rules: &Rules,
    dates: Option<&[(String, Instant)]>,
) -> Result<Vec<String>, StoreError> {
    if let Some(dates) = dates {
        return Ok(abm_core::assess::product_catalog(
            &rules.config.customers.products,
            rules.as_of,
            dates.iter().map(|(p, at)| (p.as_str(), *at)),
        ));
    }
    let mut named: Vec<(String, Instant)> = Vec::new();
    if rules.config.customers.products.is_empty() {
        conn.query_each(
            "SELECT product, MIN(created_at) FROM deals
             WHERE product IS NOT NULL AND created_at <= ? GROUP BY product",
            &[Value::Int(rules.as_of.0)],
            &mut |r| {
                named.push((r.string(0)?, Instant(r.i(1)?)));
                Ok(())
            },
        )?;
    }
    Ok(abm_core::assess::product_catalog(
        &rules.config.customers.products,
        rules.as_of,
        named.iter().map(|(p, at)| (p.as_str(), *at)),
    ))
}

/// Every product named on a stored deal with its first deal's creation, whatever the as_of
/// (the catalog as of `t` is those created by `t`: [`product_catalog_with`]).
pub(crate) fn deal_product_dates(
    conn: &mut dyn Conn,
) -> Result<Vec<(String, Instant)>, StoreError> {
    conn.query_all(
        "SELECT product, MIN(created_at) FROM deals WHERE product IS NOT NULL GROUP BY product",
        &[],
        |r| Ok((r.string(0)?, Instant(r.i(1)?))),
    )
}

/// A catalog as a non-negative `meta` value: a run assesses every account when it differs
/// from the previous run's (each customer's whitespace depends on it).
pub(crate) fn catalog_mark(catalog: &[String]) -> i64 {
    let parts: Vec<&[u8]> = catalog.iter().map(|p| p.as_bytes()).collect();
    let id = crate::ident(&parts);
    i64::from_le_bytes(id[..8].try_into().expect("8 bytes")) & i64::MAX
}

pub(crate) fn load(
    conn: &mut dyn Conn,
    rules: &Rules,
    opts: &RunOptions<'_>,
    scope: Scope<'_>,
) -> Result<Loaded, StoreError> {
    load_with(conn, rules, opts, scope, None)
}

/// [`load`], with the deals' product dates when the caller has them ([`product_catalog_with`]).
pub(crate) fn load_with(
    conn: &mut dyn Conn,
    rules: &Rules,
    opts: &RunOptions<'_>,
    scope: Scope<'_>,
    product_dates: Option<&[(String, Instant)]>,
) -> Result<Loaded, StoreError> {
    let accounts = load_accounts(conn, opts.log, scope)?;
    // A scope may name ids no longer stored: only those found are loaded.
    let n = accounts.table.len();
    let id_map = &accounts.id_map;

    let mut priors: Vec<Option<PriorState>> = vec![None; n];
    let mut snapshot_of = vec![None; n];
    let mut stored_due = vec![(None, None); n];
    scope.each(
        conn,
        "SELECT account, cluster, entered_at, floor, snapshot_run, snapshot_hash, due_at, score
         FROM account_state WHERE {scope}",
        "account",
        &[],
        &mut |r| {
            if let Some(i) = id_map.get(r.i(0)?) {
                stored_due[i as usize] = (r.int(6)?, r.real(7)?);
                if let Some(run) = r.int(4)? {
                    let hash = r.blob(5)?.and_then(|b| <[u8; 16]>::try_from(b).ok());
                    snapshot_of[i as usize] = Some((run, hash));
                }
                priors[i as usize] = Some(PriorState {
                    cluster: cluster("account_state", "cluster", r.s(1)?)?,
                    entered_at: Instant(r.i(2)?),
                    floor: r.int(3)?.map(Instant).unwrap_or(Instant::MIN),
                    pending: None,
                    rejected: Vec::new(),
                });
            }
            Ok(())
        },
    )?;
    let mut pending_proposal = vec![None; n];
    let mut pending_as_of = vec![Instant::MIN; n];
    let mut pending_conflict = vec![None; n];
    let mut decided_conflicts: HashMap<usize, Vec<String>> = HashMap::new();
    scope.each(
        conn,
        // An item the review policy expired (closed, reviewer `policy`) is not re-opened on
        // the same evidence either: it counts as rejected.
        "SELECT id, account, kind, from_cluster, to_cluster, rule, signature,
            CASE WHEN status = 'closed' THEN 'rejected' ELSE status END, as_of
         FROM checkpoints WHERE account IS NOT NULL AND (status IN ('pending', 'rejected', 'approved')
            OR (status = 'closed' AND reviewer = 'policy')) AND {scope}",
        "account",
        &[],
        &mut |r| {
            let Some(i) = id_map.get(r.i(1)?) else {
                return Ok(());
            };
            let i = i as usize;
            let kind = parse_code(CheckpointKind::parse, "checkpoints", "kind", r.s(2)?)?;
            let status = parse_code(CheckpointStatus::parse, "checkpoints", "status", r.s(7)?)?;
            let pending = status == CheckpointStatus::Pending;
            if kind == CheckpointKind::Conflict {
                if pending {
                    pending_conflict[i] = Some(r.i(0)?);
                } else {
                    decided_conflicts
                        .entry(i)
                        .or_default()
                        .push(r.opt_string(6)?.unwrap_or_default());
                }
                return Ok(());
            }
            if status == CheckpointStatus::Approved {
                return Ok(());
            }
            let Some(kind) = kind.proposal() else {
                return Ok(());
            };
            let Some(prior) = priors[i].as_mut() else {
                return Ok(());
            };
            let signature = r.opt_string(6)?.unwrap_or_default();
            if pending {
                prior.pending = Some(Proposal {
                    kind,
                    from: cluster("checkpoints", "from_cluster", r.text(3)?.unwrap_or(""))?,
                    to: cluster("checkpoints", "to_cluster", r.text(4)?.unwrap_or(""))?,
                    rule: r.opt_string(5)?.unwrap_or_default(),
                    signature,
                });
                pending_proposal[i] = Some(r.i(0)?);
                pending_as_of[i] = Instant(r.i(8)?);
            } else {
                prior.rejected.push(signature);
            }
            Ok(())
        },
    )?;

    // Engagement: every stored event up to as_of, folded per account (the fold ignores what
    // falls outside each window and before each account's floor, exactly as `segment` does).
    (opts.log)("folding engagement events");
    let floors: Vec<Instant> = priors
        .iter()
        .map(|p| p.as_ref().map(|p| p.floor).unwrap_or(Instant::MIN))
        .collect();
    let mut states = vec![EngagementState::default(); n];
    // Pending demotions: the floor their approval would set (their run's as_of), when later
    // than the account's own (one compare per event; empty in most runs).
    let alt_floors: HashMap<usize, Instant> = priors
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let p = p.as_ref()?;
            let demotion = matches!(
                p.pending.as_ref()?.kind,
                ProposalKind::DemotionFromActiveFocus | ProposalKind::Demotion
            );
            (demotion && pending_as_of[i] > p.floor).then_some((i, pending_as_of[i]))
        })
        .collect();
    let mut alt_states: HashMap<usize, EngagementState> = HashMap::new();
    let mut signals = Vec::new();
    let horizon = Horizon::new(rules);
    let mut due = vec![horizon.start(); n];
    let (mut read, mut after, mut unknown) = (0u64, 0u64, 0u64);
    // Each account's pack, then its events newer than the packs (`packs.rs`).
    let ids_of_idx = &accounts.ids;
    let pack_delta = crate::packs::read_events(
        conn,
        scope,
        ids_of_idx,
        &|id| id_map.get(id),
        &mut |i, at, ty, contact| {
            read += 1;
            if read % 1_000_000 == 0 {
                (opts.progress)("folding events", read, 0);
            }
            let at = Instant(at);
            let Some(code) = rules.events.lookup(ty.as_bytes()) else {
                unknown += 1;
                return Ok(());
            };
            // An event at or before the floor never counts again (a move of the floor changes
            // the state, and a changed state is assessed at the next run).
            if at > floors[i as usize] {
                let d = &mut due[i as usize];
                *d = (*d).min(horizon.event(code, at));
            }
            let contact = contact.as_bytes();
            if !alt_floors.is_empty() {
                if let Some(f) = alt_floors.get(&(i as usize)) {
                    alt_states
                        .entry(i as usize)
                        .or_default()
                        .observe(rules, code, at, contact, *f);
                }
            }
            match states[i as usize].observe(rules, code, at, contact, floors[i as usize]) {
                Verdict::Signal { .. } => signals.push(Signal {
                    account: i,
                    code,
                    at,
                }),
                Verdict::AfterAsOf => after += 1,
                _ => {}
            }
            Ok(())
        },
    )?;
    signals.sort_by_key(|s| (s.account, s.at, s.code));
    // The inactivity clocks run from the latest event and the latest Medium+ event.
    for (d, st) in due.iter_mut().zip(&states) {
        *d = (*d).min(horizon.clocks(st.last_any(), st.last_medium_plus()));
    }

    let mut triggers = Vec::new();
    scope.each(
        conn,
        // Those after as_of only say when they start to count.
        "SELECT account, occurred_at, type, headline FROM triggers
         WHERE occurred_at >= ? AND {scope}",
        "account",
        &[Value::Int(rules.trigger_from.0)],
        &mut |r| {
            let Some(i) = id_map.get(r.i(0)?) else {
                return Ok(());
            };
            if let Some(code) = rules.triggers.lookup(r.s(2)?.as_bytes()) {
                let at = Instant(r.i(1)?);
                let d = &mut due[i as usize];
                *d = (*d).min(horizon.trigger(at));
                if at <= rules.as_of {
                    triggers.push(Trigger {
                        account: i,
                        code,
                        at,
                        headline: r.opt_string(3)?.unwrap_or_default(),
                    });
                }
            }
            Ok(())
        },
    )?;
    triggers.sort_by(|a, b| {
        a.account
            .cmp(&b.account)
            .then(b.at.cmp(&a.at))
            .then(a.code.cmp(&b.code))
    });

    let deals = load_deals(conn, &accounts, scope, &mut |d| {
        let due = &mut due[d.account as usize];
        let changes = [Some(d.created_at), d.last_stage_change_at]
            .into_iter()
            .flatten()
            .chain(d.history.iter().map(|e| e.at));
        for at in changes {
            *due = (*due).min(horizon.deal_change(at));
        }
        if let Some(at) = d.closed_at {
            *due = (*due).min(horizon.deal_closed(at));
        }
    })?;
    let products = product_catalog_with(conn, rules, product_dates)?;
    let StoredAccounts { table, ids, .. } = accounts;

    Ok(Loaded {
        products,
        table,
        ids,
        priors,
        pending_proposal,
        pending_as_of,
        alt_states,
        pending_conflict,
        decided_conflicts,
        states,
        signals: ByAccount::new(signals, n, |s| s.account),
        triggers: ByAccount::new(triggers, n, |t| t.account),
        deals,
        events_read: read,
        events_after: after,
        events_unknown: unknown,
        snapshot_of,
        stored_due,
        due,
        horizon,
        pack_delta,
    })
}

pub(crate) fn compute(
    rules: &Rules,
    model: &ScoringModel,
    l: &Loaded,
    idx: AccountIdx,
    text: &mut RowScratch,
) -> Computed {
    let prior = l.priors[idx as usize].as_ref();
    let facts = facts_of(l, idx);
    let mut c = compute_with(rules, model, l, idx, prior, &facts, text);
    // A proposal pending after this run: what this run gives the account once it is decided,
    // exactly as the next run will see it (abm-core decides; the store keeps both answers).
    let pending = match &c.d.proposal {
        ProposalAction::Open(p) => Some((p.clone(), rules.as_of)),
        ProposalAction::KeepPending => prior
            .and_then(|p| p.pending.clone())
            .map(|p| (p, l.pending_as_of[idx as usize])),
        _ => None,
    };
    if let (Some((p, proposed_at)), Some(prior)) = (pending, prior) {
        // The state after this run (a proposal leaves it as it was), with `p` pending.
        let after = PriorState {
            cluster: c.d.cluster,
            entered_at: c.d.entered_at,
            floor: c.d.floor,
            pending: Some(p.clone()),
            rejected: prior.rejected.clone(),
        };
        let mut approved = after.clone();
        apply_approval(&mut approved, &p, proposed_at);
        let empty = EngagementState::default();
        let facts_a = facts_from(rules, l, idx, &facts, approved.floor, &empty);
        let a = compute_with(rules, model, l, idx, Some(&approved), &facts_a, text);
        let mut rejected = after;
        rejected.pending = None;
        rejected.rejected.push(p.signature.clone());
        let r = compute_with(rules, model, l, idx, Some(&rejected), &facts, text);
        c.decided = vec![
            Hypothesis {
                outcome: "approved",
                prior: approved,
                c: a,
            },
            Hypothesis {
                outcome: "rejected",
                prior: rejected,
                c: r,
            },
        ];
    }
    let i = idx as usize;
    let checkpoint = checkpoint_kinds(l, i, prior, &c);
    let hash = crate::ident(&[&c.content, checkpoint.as_bytes()]);
    if l.snapshot_of[i].is_none_or(|(_, h)| h != Some(hash)) {
        let texts = RowTexts::of(rules, &c).owned();
        c.coded = Some(Box::new(Coded {
            checkpoint,
            hash,
            texts,
            ids: [None; 3],
        }));
    }
    c
}

/// `facts` as a state with floor `floor` reads them: the same, or — after a demotion — those
/// folded from that floor (nothing up to as_of counts after a demotion as of now).
fn facts_from<'a>(
    rules: &Rules,
    l: &'a Loaded,
    idx: AccountIdx,
    facts: &Facts<'a>,
    floor: Instant,
    empty: &'a EngagementState,
) -> Facts<'a> {
    let engagement = if floor == facts.floor {
        facts.engagement
    } else if floor >= rules.as_of {
        empty
    } else {
        l.alt_states.get(&(idx as usize)).unwrap_or(empty)
    };
    Facts {
        engagement,
        floor,
        ..*facts
    }
}

/// [`compute`] for a re-evaluation between runs: when the outcome changes the account's state
/// or review items, its current row is the one the next run computes from the new state at the
/// same as_of (a move shows as done, not as happening), as a decision's row is.
pub(crate) fn compute_current(
    rules: &Rules,
    model: &ScoringModel,
    l: &Loaded,
    idx: AccountIdx,
    text: &mut RowScratch,
) -> Computed {
    let mut c = compute(rules, model, l, idx, text);
    let Some(prior) = l.priors[idx as usize].as_ref() else {
        return c;
    };
    let d = &c.d;
    let moved =
        prior.cluster != d.cluster || prior.entered_at != d.entered_at || prior.floor != d.floor;
    let pending = match &d.proposal {
        ProposalAction::None | ProposalAction::KeepPending if !moved => return c,
        ProposalAction::Open(p) => Some(p.clone()),
        ProposalAction::KeepPending => prior.pending.clone(),
        ProposalAction::None | ProposalAction::Close(_) => None,
    };
    let after = PriorState {
        cluster: d.cluster,
        entered_at: d.entered_at,
        floor: d.floor,
        pending,
        rejected: prior.rejected.clone(),
    };
    let empty = EngagementState::default();
    let facts = facts_from(rules, l, idx, &facts_of(l, idx), after.floor, &empty);
    let shown = compute_with(rules, model, l, idx, Some(&after), &facts, text);
    c.shown = Some(Box::new((after, shown)));
    c
}

fn compute_with(
    rules: &Rules,
    model: &ScoringModel,
    l: &Loaded,
    idx: AccountIdx,
    prior: Option<&PriorState>,
    facts: &Facts<'_>,
    text: &mut RowScratch,
) -> Computed {
    let account = l.table.get(idx);
    let a = assess(rules, model, &account, facts, false);
    let d = decide(rules, prior, &a, facts);
    // The same row texts as `abm segment`, for the effective cluster.
    text.fill(rules, &account, &a, d.cluster, facts, "");
    let evidence = serde_json::to_string(&d.evidence).expect("evidence serializes");
    let program = program_of(rules, a.customer.is_some(), d.cluster);
    let has_triggers = a.has_triggers();
    let content = crate::ident(&[
        d.candidate.as_str().as_bytes(),
        d.cluster.as_str().as_bytes(),
        d.previous.map(|c| c.as_str()).unwrap_or("\u{0}").as_bytes(),
        d.movement.as_str().as_bytes(),
        d.rule.as_bytes(),
        evidence.as_bytes(),
        a.score.tier.as_str().as_bytes(),
        &a.score.score.to_bits().to_le_bytes(),
        a.level.as_str().as_bytes(),
        &[has_triggers as u8],
        text.promotion_triggers.as_bytes(),
        program.as_bytes(),
        text.micro_segment.as_bytes(),
        text.next_action.as_bytes(),
        text.rationale.as_bytes(),
    ]);
    Computed {
        idx,
        tier: a.score.tier,
        score: a.score.score,
        level: a.level.as_str(),
        has_triggers,
        evidence,
        promotion_triggers: text.promotion_triggers.clone(),
        micro_segment: text.micro_segment.clone(),
        next_action: text.next_action.clone(),
        rationale: text.rationale.clone(),
        // Only for an account in (effective) or entering (candidate) a cluster whose
        // conflicts need a reviewer.
        conflicts: a
            .blocking_conflicts(rules, d.cluster)
            .map(|c| (c.code(rules), c.describe(rules)))
            .collect(),
        customer_program: a.customer.is_some(),
        score_computed: a.score.score_source == abm_core::scoring::Source::Computed,
        decided: Vec::new(),
        content,
        shown: None,
        coded: None,
        d,
    }
}

/// A stored `deals.stage_history` ([`abm_core::engagement::StageEntry::encode`]).
pub(crate) fn stage_history(
    text: Option<String>,
) -> Result<Vec<abm_core::engagement::StageEntry>, StoreError> {
    match text.filter(|t| !t.is_empty()) {
        None => Ok(Vec::new()),
        Some(t) => abm_core::engagement::StageEntry::decode(&t).ok_or_else(|| {
            StoreError::Corrupt(format!("deals.stage_history: not a stage history: {t:?}"))
        }),
    }
}

/// The program of a snapshot row: a customer's, else its cluster's.
fn program_of(rules: &Rules, customer: bool, cluster: Cluster) -> &str {
    if customer {
        &rules.config.customers.program
    } else {
        rules.config.programs.of(cluster)
    }
}

/// FNV-1a: the interned texts' keys are a few dozen short strings looked up three times per
/// row written (SipHash was 2% of a first run's writer thread at 1M accounts).
#[derive(Default)]
pub(crate) struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Interned texts' ids by text.
type TextIds = HashMap<String, i64, std::hash::BuildHasherDefault<Fnv>>;

/// Interned texts (`texts` table): all read up front (a run), or each looked up when first
/// needed (a re-evaluation of a few accounts).
pub(crate) struct Texts {
    known: TextIds,
    /// Every stored text is in `known`.
    complete: bool,
    /// The texts interned since [`Texts::take_fresh`] last ran (a run passes them on to its
    /// workers).
    fresh: Vec<(String, i64)>,
}

impl Texts {
    fn load(conn: &mut dyn Conn) -> Result<Texts, StoreError> {
        let mut m = HashMap::default();
        conn.query_each("SELECT id, text FROM texts", &[], &mut |r| {
            m.insert(r.string(1)?, r.i(0)?);
            Ok(())
        })?;
        Ok(Texts {
            known: m,
            complete: true,
            fresh: Vec::new(),
        })
    }

    pub(crate) fn lazy() -> Texts {
        Texts {
            known: HashMap::default(),
            complete: false,
            fresh: Vec::new(),
        }
    }

    fn id(&mut self, conn: &mut dyn Conn, s: &str) -> Result<i64, StoreError> {
        if let Some(&id) = self.known.get(s) {
            return Ok(id);
        }
        if !self.complete {
            let found = conn.query_one(
                "SELECT id FROM texts WHERE text = ?",
                &[Value::Text(s)],
                |r| r.i(0),
            )?;
            if let Some(id) = found {
                self.known.insert(s.to_string(), id);
                return Ok(id);
            }
        }
        let id = conn
            .query_one(
                "INSERT INTO texts (text) VALUES (?) RETURNING id",
                &[Value::Text(s)],
                |r| r.i(0),
            )?
            .ok_or_else(|| StoreError::Corrupt("INSERT … RETURNING gave no row".into()))?;
        self.known.insert(s.to_string(), id);
        self.fresh.push((s.to_string(), id));
        Ok(id)
    }

    /// The texts interned since the last call.
    fn take_fresh(&mut self) -> Vec<(String, i64)> {
        std::mem::take(&mut self.fresh)
    }
}

/// Where [`write_one`] records an account's outcome.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record {
    /// A run: a snapshot row when the account's row changed.
    Run,
    /// A re-evaluation between runs (`Store::reevaluate`): under the latest run, as a review
    /// decision is — the account's current row (`current_rows`, `decided` 0) over that run's,
    /// its state, a movement, checkpoints opened or closed.
    Current,
}

/// The run's writes, batched.
pub(crate) struct Writer {
    record: Record,
    run: i64,
    as_of: Instant,
    now: String,
    actor: String,
    snapshots: Batch,
    /// `current_rows` (a re-evaluation).
    current: Batch,
    proposal_rows: Batch,
    movements: Batch,
    checkpoints: Batch,
    decisions: Batch,
    states: Batch,
    closed: u64,
    pub(crate) opened: u64,
    /// Snapshot rows written (accounts whose assessment changed).
    snapshot_rows: u64,
    /// The run's transition matrix, counted as its rows are written.
    transitions: crate::transitions::Counter,
}

const SNAPSHOTS: &str =
    "snapshots (run, account, candidate, cluster, previous, movement, rule, evidence, tier,
    score, engagement, has_triggers, promotion_triggers, program, micro_segment, next_action,
    checkpoint, rationale)";
const CURRENT_ROWS: &str =
    "current_rows (account, run, decided, candidate, cluster, previous, movement, rule, evidence,
    tier, score, engagement, has_triggers, promotion_triggers, program, micro_segment,
    next_action, checkpoint, rationale)";
const PROPOSAL_ROWS: &str =
    "proposal_rows (run, account, outcome, candidate, cluster, previous, movement, rule, evidence,
    tier, score, engagement, has_triggers, promotion_triggers, program, micro_segment,
    next_action, checkpoint, rationale)";
const MOVEMENTS: &str = "movements (run, account, as_of, from_cluster, to_cluster, direction, rule,
    evidence, checkpoint, created_at)";
const CHECKPOINTS: &str =
    "checkpoints (kind, account, run, as_of, from_cluster, to_cluster, rule, signature,
    evidence, status, created_at)";
const DECISIONS: &str = "decisions (checkpoint, action, actor, comment, decided_at, run)";
// The last four repeat the snapshot row of `snapshot_run` for the account list's filters
// (migration 0014): written with a new snapshot row, NULL (kept as they are) otherwise.
const STATES: &str = "account_state (account, cluster, entered_at, floor, updated_run,
    snapshot_run, snapshot_hash, due_at, score, tier, engagement, candidate, micro_segment)";
const STATES_UPSERT: &str = "ON CONFLICT (account) DO UPDATE SET cluster = excluded.cluster,
    entered_at = excluded.entered_at, floor = excluded.floor, updated_run = excluded.updated_run,
    snapshot_run = excluded.snapshot_run, snapshot_hash = excluded.snapshot_hash,
    due_at = excluded.due_at, score = excluded.score,
    tier = COALESCE(excluded.tier, account_state.tier),
    engagement = COALESCE(excluded.engagement, account_state.engagement),
    candidate = COALESCE(excluded.candidate, account_state.candidate),
    micro_segment = COALESCE(excluded.micro_segment, account_state.micro_segment)";

impl Writer {
    pub(crate) fn new(
        record: Record,
        run: i64,
        as_of: Instant,
        now: String,
        actor: String,
    ) -> Writer {
        Writer {
            record,
            run,
            as_of,
            now,
            actor,
            snapshots: Batch::new(18),
            current: Batch::new(19),
            proposal_rows: Batch::new(19),
            movements: Batch::new(10),
            checkpoints: Batch::new(11),
            decisions: Batch::new(6),
            states: Batch::new(13),
            closed: 0,
            opened: 0,
            snapshot_rows: 0,
            transitions: Default::default(),
        }
    }

    pub(crate) fn flush(&mut self, conn: &mut dyn Conn, force: bool) -> Result<(), StoreError> {
        for (into, b, suffix) in [
            (SNAPSHOTS, &mut self.snapshots, ""),
            (CURRENT_ROWS, &mut self.current, ""),
            (PROPOSAL_ROWS, &mut self.proposal_rows, ""),
            (MOVEMENTS, &mut self.movements, ""),
            (CHECKPOINTS, &mut self.checkpoints, ""),
            (DECISIONS, &mut self.decisions, ""),
            (STATES, &mut self.states, STATES_UPSERT),
        ] {
            if !b.is_empty() && (force || b.rows() >= FLUSH_ROWS || b.weight() > 8 << 20) {
                conn.insert_batch(into, b, suffix)?;
                b.clear();
            }
        }
        Ok(())
    }

    /// Close a pending checkpoint with a reason, and keep the decision.
    fn close(&mut self, conn: &mut dyn Conn, id: i64, reason: &str) -> Result<(), StoreError> {
        let n = conn.execute(
            "UPDATE checkpoints SET status = 'closed', reason = ?, decided_at = ?, decided_run = ?
             WHERE id = ? AND status = 'pending'",
            &[
                Value::Text(reason),
                Value::Text(&self.now),
                Value::Int(self.run),
                Value::Int(id),
            ],
        )?;
        if n > 0 {
            self.closed += 1;
            self.decisions
                .int(id)
                .text("close")
                .text(&self.actor)
                .text(reason)
                .text(&self.now)
                .int(self.run);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn open(
        &mut self,
        kind: CheckpointKind,
        account: Option<i64>,
        from: Option<Cluster>,
        to: Option<Cluster>,
        rule: Option<&str>,
        signature: Option<&str>,
        evidence: &str,
    ) {
        self.opened += 1;
        self.checkpoints
            .text(kind.as_str())
            .opt_int(account)
            .int(self.run)
            .int(self.as_of.0)
            .opt_text(from.map(|c| c.as_str()))
            .opt_text(to.map(|c| c.as_str()))
            .opt_text(rule)
            .opt_text(signature)
            .text(evidence)
            .text("pending")
            .text(&self.now);
    }
}

fn evidence_json(items: &[Evidence]) -> String {
    serde_json::to_string(items).expect("evidence serializes")
}

pub(crate) fn run(
    conn: &mut dyn Conn,
    rules: &Rules,
    opts: &RunOptions<'_>,
) -> Result<RunOutcome, StoreError> {
    let as_of = rules.as_of;
    let config_hash = rules.config_hash().to_string();
    let mut tx = Tx::begin(conn, TxMode::Write)?;
    let data_version = meta(&mut *tx, "data_version")?;
    let state_version = meta(&mut *tx, "state_version")?;
    let latest = tx.query_one(
        "SELECT id, as_of, config_hash, data_version, state_version FROM runs ORDER BY id DESC LIMIT 1",
        &[],
        |r| Ok((r.i(0)?, Instant(r.i(1)?), r.string(2)?, r.i(3)?, r.i(4)?)),
    )?;
    if let Some((id, latest_as_of, hash, dv, sv)) = &latest {
        if *latest_as_of > as_of {
            return Err(StoreError::AsOfBeforeLatest {
                as_of,
                latest: *latest_as_of,
                run: *id,
            });
        }
        if *latest_as_of == as_of
            && *hash == config_hash
            && *dv == data_version
            && *sv == state_version
        {
            return Ok(RunOutcome::Unchanged { run: *id, as_of });
        }
    }
    let now = crate::wall_clock().to_string();
    let run_id = tx
        .query_one(
            "INSERT INTO runs (as_of, started_at, config_hash, data_version, state_version, accounts,
                cluster_icp, future_pipeline, active_focus, monitor_only, promotions, demotions,
                proposals_opened, checkpoints_opened, checkpoints_closed, events_read,
                events_after_as_of, summary)
             VALUES (?, ?, ?, ?, ?, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '{}') RETURNING id",
            &[
                Value::Int(as_of.0),
                Value::Text(&now),
                Value::Text(&config_hash),
                Value::Int(data_version),
                Value::Int(state_version),
            ],
            |r| r.i(0),
        )?
        .ok_or_else(|| StoreError::Corrupt("INSERT … RETURNING gave no row".into()))?;
    (opts.log)(&format!("run {run_id} as of {as_of}: transaction open"));
    let segments = crate::segments::record(&mut *tx, run_id, &rules.config.segments)?;

    // The current rows and the decided-proposal rows belong to the latest run: this run
    // computes every account afresh (review decisions included).
    tx.execute("DELETE FROM current_rows", &[])?;
    tx.execute("DELETE FROM proposal_rows", &[])?;
    let review_policy = apply_review_policy(&mut *tx, rules, run_id)?;
    // Runs that scale with change: unless something changed for all of them, only the
    // accounts with new rows, a decision or re-evaluation, or a due instant are assessed; the
    // others keep their state and rows, and count as they stand.
    let marks = Marks::current(&mut *tx)?;
    let previous = Marks::of_latest_run(&mut *tx)?;
    let catalog = catalog_mark(&product_catalog(&mut *tx, rules)?);
    let mut full = opts.full
        || latest.as_ref().is_none_or(|l| l.2 != config_hash)
        || previous.is_none_or(|p| p.columns != marks.columns)
        || crate::meta(&mut *tx, "run_mark_catalog")? != catalog;
    let (scope, others) = match (full, previous) {
        (false, Some(previous)) => {
            let (ids, others) = select_scope(&mut *tx, &previous, as_of)?;
            // Reading many accounts' rows by index costs more than reading the tables once
            // (and assessing everyone gives the same outcome).
            if ids.len() >= 20_000 && ids.len() > (ids.len() + others.len) / 4 {
                full = true;
                (None, Others::default())
            } else {
                (Some(ids), others)
            }
        }
        _ => (None, Others::default()),
    };
    let mut loaded = load(
        &mut *tx,
        rules,
        opts,
        scope.as_deref().map_or(Scope::All, Scope::Ids),
    )?;
    // The accounts' newer events into their packs (in this transaction: a killed run leaves
    // them as they were).
    let packed = crate::packs::write(&mut *tx, std::mem::take(&mut loaded.pack_delta))?;
    (opts.log)(&format!("run {run_id}: {packed} event packs written"));
    let n = loaded.table.len();
    (opts.log)(&format!(
        "run {run_id}: {n} accounts assessed{}, {} events ({} after as_of)",
        if full {
            String::new()
        } else {
            format!(" ({} unchanged)", others.len)
        },
        loaded.events_read,
        loaded.events_after
    ));
    let mut texts = Texts::load(&mut *tx)?;
    let pending_capacity = tx.query_all(
        "SELECT id FROM checkpoints WHERE kind = 'capacity' AND status = 'pending'",
        &[],
        |r| r.i(0),
    )?;

    let model = ScoringModel::new(&rules.config.icp, loaded.table.schema());
    let mut max_score = f64::NEG_INFINITY;
    let mut w = Writer::new(
        Record::Run,
        run_id,
        as_of,
        now.clone(),
        format!("abm run {run_id}"),
    );
    let mut counts = ClusterCounts::default();
    let (mut promotions, mut demotions, mut proposals) = (0u64, 0u64, 0u64);

    let deferred = match scope {
        None => defer_indexes(&mut *tx)?,
        Some(_) => None,
    };
    // Compute on every core, write on this thread, in accounts.id order.
    let n_blocks = n.div_ceil(BLOCK);
    let next = AtomicUsize::new(0);
    let threads = opts.threads.max(1);
    let (sender, rx) = mpsc::sync_channel::<(usize, Vec<Computed>)>(threads * 2);
    // The blocks written go back to the workers to be freed: the writer is the run's one busy
    // thread, and a worker frees what it allocated faster than another thread can.
    let (spent_tx, spent_rx) = mpsc::channel::<Vec<Computed>>();
    let spent_rx = std::sync::Mutex::new(spent_rx);
    // The texts stored, for the workers to look the rows' ids up in: those stored when the
    // run began, and those the writer interns as it goes (a first run starts with none, and
    // its writer would otherwise look up three texts for every row it writes).
    let known = &std::sync::RwLock::new(texts.known.clone());
    let write_result: Result<(), StoreError> = std::thread::scope(|s| {
        for _ in 0..threads {
            let sender = sender.clone();
            let (next, loaded, model, spent_rx) = (&next, &loaded, &model, &spent_rx);
            s.spawn(move || {
                let mut text = RowScratch::default();
                loop {
                    if let Ok(spent) = spent_rx.try_lock() {
                        while let Ok(block) = spent.try_recv() {
                            drop(block);
                        }
                    }
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    if b >= n_blocks {
                        break;
                    }
                    let mut out: Vec<Computed> = (b * BLOCK..((b + 1) * BLOCK).min(n))
                        .map(|i| compute(rules, model, loaded, i as AccountIdx, &mut text))
                        .collect();
                    {
                        let known = known.read().unwrap_or_else(|e| e.into_inner());
                        for c in &mut out {
                            Coded::resolve(c, &known);
                        }
                    }
                    if sender.send((b, out)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        let mut logged = false;
        let mut waiting: HashMap<usize, Vec<Computed>> = HashMap::new();
        let mut want = 0;
        let mut result = Ok(());
        for (b, out) in rx {
            if result.is_err() {
                continue; // drain so the workers finish
            }
            waiting.insert(b, out);
            while let Some(block) = waiting.remove(&want) {
                for c in &block {
                    if let Err(e) = write_one(&mut *tx, &mut w, &mut texts, &loaded, rules, c) {
                        result = Err(e);
                        break;
                    }
                    counts.add(c.d.cluster);
                    if c.score_computed {
                        max_score = max_score.max(c.score);
                    }
                    match c.d.movement {
                        abm_core::movement::Movement::Promotion => promotions += 1,
                        abm_core::movement::Movement::Demotion => demotions += 1,
                        _ => {}
                    }
                    if matches!(c.d.proposal, ProposalAction::Open(_)) {
                        proposals += 1;
                    }
                }
                let _ = spent_tx.send(block);
                let fresh = texts.take_fresh();
                if !fresh.is_empty() {
                    known
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend(fresh);
                }
                if result.is_ok() {
                    result = w.flush(&mut *tx, false);
                }
                if !logged {
                    (opts.log)(&format!("run {run_id}: writing snapshot"));
                    logged = true;
                }
                want += 1;
                (opts.progress)("writing snapshot", (want * BLOCK).min(n) as u64, n as u64);
            }
        }
        result
    });
    write_result?;
    if let Some(sql) = deferred {
        crate::import::build_indexes(&mut *tx, &sql)?;
        (opts.log)(&format!("run {run_id}: state and history indexes built"));
    }
    for c in Cluster::ALL {
        for _ in 0..others.counts.get(c) {
            counts.add(c);
        }
    }
    if let Some(score) = others.max_score {
        max_score = max_score.max(score);
    }
    marks.record(&mut *tx)?;
    crate::set_meta(&mut *tx, "run_mark_catalog", catalog)?;

    // One capacity checkpoint per run while Active Focus is over its max.
    let capacity = capacity_status(&counts, &rules.config.capacity);
    let max = capacity.active_focus_max;
    if counts.active_focus > max {
        for id in &pending_capacity {
            w.close(
                &mut *tx,
                *id,
                &format!("superseded by run {run_id}'s capacity check"),
            )?;
        }
        let ev = vec![Evidence::new(
            EvidenceKind::Capacity,
            "active_focus",
            format!(
                "Active Focus has {} accounts, over the max of {max}",
                counts.active_focus
            ),
            Some(as_of),
        )];
        w.open(
            CheckpointKind::Capacity,
            None,
            None,
            None,
            None,
            None,
            &evidence_json(&ev),
        );
    } else {
        for id in &pending_capacity {
            w.close(
                &mut *tx,
                *id,
                &format!(
                    "Active Focus back within capacity ({} ≤ {max}) at run {run_id}",
                    counts.active_focus
                ),
            )?;
        }
    }
    w.flush(&mut *tx, true)?;
    let counted = std::mem::take(&mut w.transitions);
    let looked_up = crate::transitions::record(&mut *tx, run_id, &counts, counted)?;
    (opts.log)(&format!(
        "run {run_id}: transition matrix recorded ({looked_up} previous rows read)"
    ));

    let new_state_version = state_version + 1;
    set_meta(&mut *tx, "state_version", new_state_version)?;
    let without = model.without_data();
    let notes = abm_core::summary::outcome_notes(
        &counts,
        max_score.is_finite().then_some(max_score),
        &without,
    );
    // The capacity settings too, so that summary and export re-check capacity against the
    // current counts after a review decision.
    let mut summary = serde_json::json!({
        "capacity": capacity,
        "capacity_config": &rules.config.capacity,
        // With the criteria without data, what the outcome notes need to be said again
        // against the current counts after a review decision.
        "max_score": max_score.is_finite().then_some(max_score),
    });
    for (k, v) in [
        ("review_policy", &review_policy),
        ("criteria_without_data", &without),
        ("notes", &notes),
    ] {
        if !v.is_empty() {
            summary[k] = serde_json::json!(v);
        }
    }
    let summary = summary.to_string();
    let total = n + others.len;
    let report = RunReport {
        run_id,
        as_of,
        config_hash,
        accounts: total as u64,
        assessed: n as u64,
        full,
        counts: counts.clone(),
        capacity,
        promotions,
        demotions,
        proposals_opened: proposals,
        checkpoints_opened: w.opened,
        checkpoints_closed: w.closed,
        events_read: loaded.events_read,
        events_after_as_of: loaded.events_after,
        events_unknown_type: loaded.events_unknown,
        snapshot_rows: w.snapshot_rows,
        review_policy,
        criteria_without_data: without,
        notes,
        segments,
    };
    let ints = [
        new_state_version,
        total as i64,
        counts.cluster_icp as i64,
        counts.future_pipeline as i64,
        counts.active_focus as i64,
        counts.monitor_only as i64,
        promotions as i64,
        demotions as i64,
        proposals as i64,
        w.opened as i64,
        w.closed as i64,
        loaded.events_read as i64,
        loaded.events_after as i64,
    ];
    let mut params: Vec<Value<'_>> = ints.iter().map(|&v| Value::Int(v)).collect();
    params.push(Value::Text(&summary));
    params.push(Value::Int(run_id));
    tx.execute(
        "UPDATE runs SET state_version = ?, accounts = ?, cluster_icp = ?, future_pipeline = ?,
            active_focus = ?, monitor_only = ?, promotions = ?, demotions = ?,
            proposals_opened = ?, checkpoints_opened = ?, checkpoints_closed = ?,
            events_read = ?, events_after_as_of = ?, summary = ?
         WHERE id = ?",
        &params,
    )?;
    (opts.log)(&format!("run {run_id}: committing"));
    tx.commit()?;
    Ok(RunOutcome::Done(report))
}

/// The secondary indexes of the state and the history: a first run builds them after its rows
/// ([`defer_indexes`]).
const DEFERRED_INDEXES: [&str; 2] = ["account_state_due", "snapshots_account"];

/// On SQLite, when neither `account_state` nor `snapshots` holds a row (a database's first run,
/// which writes both for every account): drops [`DEFERRED_INDEXES`] and returns the statements
/// that create them again, for the run to build them from sorted keys after its rows instead of
/// inserting into them row by row at random places (1M accounts: ≈ 1.5 s of a 12 s first run
/// against ≈ 0.9 s to build both). In the run's transaction, so a failed or killed run leaves
/// them as they were. PostgreSQL keeps them (dropping one locks the table against readers).
fn defer_indexes(conn: &mut dyn Conn) -> Result<Option<String>, StoreError> {
    if conn.backend() != crate::db::Backend::Sqlite {
        return Ok(None);
    }
    for table in ["account_state", "snapshots"] {
        let sql = format!("SELECT CAST(COUNT(*) AS BIGINT) FROM (SELECT 1 FROM {table} LIMIT 1) x");
        if conn.scalar(&sql, &[])? > 0 {
            return Ok(None);
        }
    }
    let mut create = Vec::new();
    for name in DEFERRED_INDEXES {
        let sql = conn.query_one(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?",
            &[Value::Text(name)],
            |r| r.string(0),
        )?;
        let Some(sql) = sql else {
            return Err(StoreError::Corrupt(format!("index {name} is missing")));
        };
        conn.batch_execute(&format!("DROP INDEX {name}"))?;
        create.push(sql);
    }
    Ok(Some(create.join(";\n")))
}

/// The checkpoint kinds an account's row lists: the proposal pending after the run and a
/// conflict a reviewer has not decided (the same for the run's row and a decided-proposal row).
fn checkpoint_kinds(l: &Loaded, i: usize, prior: Option<&PriorState>, c: &Computed) -> String {
    let mut kinds: Vec<&str> = Vec::new();
    match &c.d.proposal {
        ProposalAction::KeepPending => {
            if let Some(p) = prior.and_then(|p| p.pending.as_ref()) {
                kinds.push(p.kind.as_str());
            }
        }
        ProposalAction::Open(p) => kinds.push(p.kind.as_str()),
        ProposalAction::None | ProposalAction::Close(_) => {}
    }
    if !c.conflicts.is_empty() && (l.pending_conflict[i].is_some() || !conflict_decided(l, i, c)) {
        kinds.push("conflict");
    }
    kinds.join(";")
}

fn conflict_signature(c: &Computed) -> String {
    let codes: Vec<String> = c.conflicts.iter().map(|(code, _)| code.clone()).collect();
    abm_core::Conflict::signature(&codes)
}

/// A reviewer already decided this account's conflicts on the same evidence.
fn conflict_decided(l: &Loaded, i: usize, c: &Computed) -> bool {
    l.decided_conflicts
        .get(&i)
        .is_some_and(|s| s.contains(&conflict_signature(c)))
}

/// The snapshot-shaped values of one computed row, after its key columns.
fn push_row(
    b: &mut Batch,
    conn: &mut dyn Conn,
    texts: &mut Texts,
    rules: &Rules,
    c: &Computed,
    checkpoint: &str,
) -> Result<(), StoreError> {
    let d = &c.d;
    let ids = c.coded.as_ref().map_or([None; 3], |k| k.ids);
    let mut id = |i: usize, s: &str| match ids[i] {
        Some(id) => Ok(id),
        None => texts.id(conn, s),
    };
    let rule = id(0, &d.rule)?;
    let micro = id(1, &c.micro_segment)?;
    let next = id(2, &c.next_action)?;
    let made;
    let k = match &c.coded {
        Some(k) => &k.texts,
        None => {
            made = RowTexts::of(rules, c);
            &made
        }
    };
    b.text(d.candidate.as_str())
        .text(d.cluster.as_str())
        .opt_text(d.previous.map(|c| c.as_str()))
        .text(d.movement.as_str())
        .int(rule)
        .text(&k.evidence)
        .text(c.tier.as_str())
        .real(c.score)
        .text(c.level)
        .int(c.has_triggers as i64)
        .text(&k.promotion_triggers)
        .text(&k.program)
        .int(micro)
        .int(next)
        .text(checkpoint)
        .text(&k.rationale);
    Ok(())
}

pub(crate) fn write_one(
    conn: &mut dyn Conn,
    w: &mut Writer,
    texts: &mut Texts,
    l: &Loaded,
    rules: &Rules,
    c: &Computed,
) -> Result<(), StoreError> {
    let i = c.idx as usize;
    let account = l.ids[i];
    let d = &c.d;
    let prior = l.priors[i].as_ref();
    let checkpoint = match &c.coded {
        Some(k) => k.checkpoint.clone(),
        None => checkpoint_kinds(l, i, prior, c),
    };

    match &d.proposal {
        ProposalAction::None | ProposalAction::KeepPending => {}
        ProposalAction::Close(reason) => {
            if let Some(id) = l.pending_proposal[i] {
                w.close(conn, id, reason)?;
            }
        }
        ProposalAction::Open(p) => {
            if let Some(id) = l.pending_proposal[i] {
                let why = d
                    .close_reason
                    .as_deref()
                    .unwrap_or("superseded by a new proposal");
                w.close(conn, id, why)?;
            }
            w.open(
                p.kind.into(),
                Some(account),
                Some(p.from),
                Some(p.to),
                Some(&p.rule),
                Some(&p.signature),
                &c.evidence,
            );
        }
    }
    let conflict_opened =
        !c.conflicts.is_empty() && l.pending_conflict[i].is_none() && !conflict_decided(l, i, c);
    let conflict_closed = c.conflicts.is_empty() && l.pending_conflict[i].is_some();
    if !c.conflicts.is_empty() {
        if conflict_opened {
            let ev: Vec<Evidence> = c
                .conflicts
                .iter()
                .map(|(code, text)| Evidence::new(EvidenceKind::Conflict, code, text, None))
                .collect();
            w.open(
                CheckpointKind::Conflict,
                Some(account),
                Some(d.cluster),
                None,
                Some("signals disagree"),
                Some(&conflict_signature(c)),
                &evidence_json(&ev),
            );
        }
    } else if let Some(id) = l.pending_conflict[i] {
        w.close(conn, id, "resolved: the signals no longer conflict")?;
    }

    if d.movement.is_move() {
        let from = d.previous.expect("a move has a previous cluster");
        w.movements
            .int(w.run)
            .int(account)
            .int(w.as_of.0)
            .text(from.as_str())
            .text(d.cluster.as_str())
            .text(if d.movement == abm_core::movement::Movement::Promotion {
                "promotion"
            } else {
                "demotion"
            })
            .text(&d.rule)
            .text(&c.evidence)
            .null()
            .text(&w.now);
    }

    // History grows with change: a snapshot row holds from its run until the account's next
    // one, so it is written only when the row would differ from the latest stored one. A
    // re-evaluation writes no snapshot row (the runs' record is immutable): the account's row
    // becomes its current row.
    let hash = match &c.coded {
        Some(k) => k.hash,
        None => crate::ident(&[&c.content, checkpoint.as_bytes()]),
    };
    let stored = l.snapshot_of[i];
    let new_snapshot = w.record == Record::Run && stored.is_none_or(|(_, h)| h != Some(hash));
    let (snapshot_run, snapshot_hash) = match (new_snapshot, stored) {
        (true, _) => (Some(w.run), Some(hash)),
        (false, Some((run, h))) => (Some(run), h),
        (false, None) => (None, None),
    };
    let prior = l.priors[i].as_ref();
    let moved = prior.is_none_or(|p| {
        p.cluster != d.cluster || p.entered_at != d.entered_at || p.floor != d.floor
    });
    // Runs that scale with change: an account whose state and review items this outcome
    // leaves as they were keeps its assessment until its due instant (as long as its data and
    // decisions stay as they are); any other is assessed again at the next run.
    let settled = w.record == Record::Run
        && !moved
        && matches!(d.proposal, ProposalAction::None)
        && l.pending_proposal[i].is_none()
        && !conflict_opened
        && !conflict_closed;
    let due = prior.filter(|_| settled).map(|p| {
        let h = &l.horizon;
        l.due[i]
            .min(h.entered(p.entered_at))
            .min(h.entered(p.floor))
            .0
    });
    let score = c.score_computed.then_some(c.score);
    if new_snapshot || moved || w.record == Record::Current || (due, score) != l.stored_due[i] {
        w.states
            .int(account)
            .text(d.cluster.as_str())
            .int(d.entered_at.0)
            .opt_int((d.floor != Instant::MIN).then_some(d.floor.0))
            .int(w.run)
            .opt_int(snapshot_run);
        match snapshot_hash {
            Some(h) => w.states.blob(&h),
            None => w.states.null(),
        };
        w.states.opt_int(due).opt_real(score);
        if new_snapshot {
            let micro = match c.coded.as_ref().and_then(|k| k.ids[1]) {
                Some(id) => id,
                None => texts.id(conn, &c.micro_segment)?,
            };
            w.states
                .text(c.tier.as_str())
                .text(c.level)
                .text(d.candidate.as_str())
                .int(micro);
        } else {
            w.states.null().null().null().null();
        }
    }
    // The rows a decision would make current are kept for the latest run whether or not its
    // own row changed (they replace the account's row as of this run).
    for h in &c.decided {
        let checkpoint = checkpoint_kinds(l, i, Some(&h.prior), &h.c);
        w.proposal_rows.int(w.run).int(account).text(h.outcome);
        push_row(&mut w.proposal_rows, conn, texts, rules, &h.c, &checkpoint)?;
    }
    if w.record == Record::Current {
        let (row, checkpoint) = match &c.shown {
            Some(s) => (&s.1, checkpoint_kinds(l, i, Some(&s.0), &s.1)),
            None => (c, checkpoint),
        };
        w.current.int(account).int(w.run).int(0);
        return push_row(&mut w.current, conn, texts, rules, row, &checkpoint);
    }
    if !new_snapshot {
        return Ok(());
    }
    w.snapshot_rows += 1;
    w.transitions.add(l, i, d.cluster);

    w.snapshots.int(w.run).int(account);
    push_row(&mut w.snapshots, conn, texts, rules, c, &checkpoint)?;
    Ok(())
}

impl crate::Store {
    /// Evaluate every account as of `rules.as_of` and record the run (one transaction; then,
    /// when due, the indexes over newer events built again further on: `packs::advance_bound`).
    pub fn run(&mut self, rules: &Rules, opts: &RunOptions<'_>) -> Result<RunOutcome, StoreError> {
        let outcome = run(self.conn(), rules, opts)?;
        if let RunOutcome::Done(r) = &outcome {
            let moved = crate::packs::advance_bound(self.conn())?;
            if let Some(bound) = moved {
                (opts.log)(&format!(
                    "run {}: the indexes over newer events rebuilt after event {bound}",
                    r.run_id
                ));
            }
            if r.snapshot_rows >= crate::ANALYZE_FROM_ROWS {
                self.analyze(&["account_state", "snapshots", "event_packs"]);
            }
        }
        Ok(outcome)
    }
}

fn facts_of(l: &Loaded, idx: AccountIdx) -> Facts<'_> {
    let prior = l.priors[idx as usize].as_ref();
    Facts {
        engagement: &l.states[idx as usize],
        triggers: l.triggers.of(idx),
        deals: l.deals.of(idx),
        signals: l.signals.of(idx),
        floor: prior.map(|p| p.floor).unwrap_or(Instant::MIN),
        products: &l.products,
    }
}

/// Where the next run would put one account under a config: the effective cluster, or the
/// cluster a proposal would move it to (then `needs_review`).
fn next_cluster(d: &Decision) -> (Cluster, bool) {
    match &d.proposal {
        ProposalAction::Open(p) => (p.to, true),
        ProposalAction::KeepPending => (d.candidate, d.candidate != d.cluster),
        _ => (d.cluster, false),
    }
}

/// `abm whatif --config-new` on the store: every stored account from its current effective
/// cluster (latest run, review decisions included) to where the next run under `new` would
/// put it, with whether that move would wait for a reviewer; `because` compares the account
/// under `old` and `new` (and says when the current rules would move it too). Read-only: one
/// consistent read transaction, nothing recorded.
pub(crate) fn preview(
    conn: &mut dyn Conn,
    old: &Rules,
    new: &Rules,
    opts: &RunOptions<'_>,
) -> Result<abm_core::whatif::WhatIf, StoreError> {
    use abm_core::whatif::{because, AccountChange, Tally};
    let mut tx = Tx::begin(conn, TxMode::Read)?;
    let runs = tx.scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM runs", &[])?;
    if runs == 0 {
        return Err(StoreError::NoRuns);
    }
    let same = old.config.engagement == new.config.engagement
        && old.config.triggers == new.config.triggers;
    let first = load(&mut *tx, old, opts, Scope::All)?;
    let second = if same {
        None
    } else {
        Some(load(&mut *tx, new, opts, Scope::All)?)
    };
    drop(tx);
    let l_new = second.as_ref().unwrap_or(&first);
    let old_model = ScoringModel::new(&old.config.icp, first.table.schema());
    let new_model = ScoringModel::new(&new.config.icp, first.table.schema());
    let n = first.table.len();
    let next = AtomicUsize::new(0);
    let tally = std::thread::scope(|s| {
        let workers: Vec<_> = (0..opts.threads.max(1))
            .map(|_| {
                let (next, first, old_model, new_model) = (&next, &first, &old_model, &new_model);
                s.spawn(move || {
                    let mut tally = Tally::default();
                    let (mut pa, mut pb) = (Vec::new(), Vec::new());
                    loop {
                        let b = next.fetch_add(1, Ordering::Relaxed);
                        if b * BLOCK >= n {
                            break;
                        }
                        for i in b * BLOCK..((b + 1) * BLOCK).min(n) {
                            let idx = i as AccountIdx;
                            let account = first.table.get(idx);
                            let prior = first.priors[i].as_ref();
                            let (fa, fb) = (facts_of(first, idx), facts_of(l_new, idx));
                            let a = assess(old, old_model, &account, &fa, false);
                            let bb = assess(new, new_model, &account, &fb, false);
                            let (to, needs_review) = next_cluster(&decide(new, prior, &bb, &fb));
                            let from = prior.map(|p| p.cluster).unwrap_or(a.cluster);
                            tally.add((from, to), (a.score.tier, bb.score.tier), || {
                                // Each criterion's points, for the accounts that change.
                                old_model.points_into(&account, &mut pa);
                                new_model.points_into(&account, &mut pb);
                                let (mut text, reasons) =
                                    because((&old.config, &new.config), (&a, &bb), (&pa, &pb));
                                let (with_old, _) = next_cluster(&decide(old, prior, &a, &fa));
                                if with_old != from {
                                    text.push_str(&format!(
                                        "; the current rules would also move it to {}",
                                        with_old.label()
                                    ));
                                }
                                AccountChange::new(
                                    account.id(),
                                    (&a, &bb),
                                    (from, to),
                                    (text, reasons),
                                    Some(needs_review),
                                )
                            });
                        }
                    }
                    tally
                })
            })
            .collect();
        let mut all = Tally::default();
        for w in workers {
            all.merge(w.join().expect("preview worker panicked"));
        }
        all
    });
    Ok(tally.finish(&old.config, &new.config, new.as_of.to_string()))
}

impl crate::Store {
    /// What the next run under `new` would do to every stored account (nothing is recorded).
    pub fn preview(
        &mut self,
        old: &Rules,
        new: &Rules,
        opts: &RunOptions<'_>,
    ) -> Result<abm_core::whatif::WhatIf, StoreError> {
        preview(self.conn(), old, new, opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What `fields_into` replaced: a map of the object, then each column's value.
    fn by_map(json: &str, cols: &[String]) -> Vec<String> {
        let mut m: HashMap<String, String> = serde_json::from_str(json).unwrap();
        cols.iter()
            .map(|c| m.remove(c).unwrap_or_default())
            .collect()
    }

    fn filled(json: &str, cols: &[String]) -> Result<Vec<String>, serde_json::Error> {
        let mut vals = vec!["stale".to_string(); cols.len()];
        for v in vals.iter_mut() {
            v.clear();
        }
        fields_into(json, cols, &mut vals).map(|()| vals)
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn fields_land_on_their_columns() {
        let cols = strings(&["industry", "country", "tech_stack"]);
        // In order, out of order, missing, unknown, escaped, repeated (the last wins).
        for json in [
            r#"{"industry":"Software","country":"DE","tech_stack":"aws"}"#,
            r#"{"tech_stack":"aws","industry":"Software","country":"DE"}"#,
            r#"{"country":"D\u00e9","extra":"x","industry":"So\"ft\\ware"}"#,
            r#"{"industry":"a","industry":"b"}"#,
            r#"{}"#,
        ] {
            assert_eq!(filled(json, &cols).unwrap(), by_map(json, &cols), "{json}");
        }
        assert_eq!(
            filled(r#"{"country":"D\u00e9"}"#, &cols).unwrap(),
            strings(&["", "Dé", ""])
        );
        // Not an object of strings, or trailing bytes: errors, as the map's parse was.
        for bad in [
            r#"{"industry":1}"#,
            r#"["a"]"#,
            r#"{"a":"b"} x"#,
            r#"{"a":"b""#,
        ] {
            assert!(filled(bad, &cols).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn fields_equal_the_map_parse(
            pairs in prop::collection::vec(("[a-d]{1,2}", "\\PC{0,5}"), 0..8),
            cols in prop::collection::vec("[a-d]{1,2}", 1..6),
        ) {
            // An object in the pairs' order, repeated keys included.
            let body: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}:{}", serde_json::to_string(k).unwrap(),
                                      serde_json::to_string(v).unwrap()))
                .collect();
            let json = format!("{{{}}}", body.join(","));
            // Column names are unique (the account schema's).
            let mut seen = std::collections::HashSet::new();
            let cols: Vec<String> = cols.into_iter().filter(|c| seen.insert(c.clone())).collect();
            prop_assert_eq!(filled(&json, &cols).unwrap(), by_map(&json, &cols));
        }
    }
}
