//! Per-account event packs (migration 0012, issue 15): an account's stored events — exactly the
//! columns a run and `explain` read from `events` (`occurred_at`, `type`, `contact_id`), in id
//! order — encoded in one blob (`event_packs.data`), so a run decodes one row per account
//! instead of reading and decoding its events row by row.
//!
//! **Format.** A sequence of events, each three LEB128 varints (or more, for a new text):
//! the time as the zigzag delta from the previous event's (the first from 0), shifted left by
//! one with the low bit 0 when the delta is whole seconds (then stored in seconds) and 1 when it
//! is in microseconds (`1` alone: the delta follows as a plain 64-bit varint, for |delta| ≥
//! 2^62); then the type and the contact, each a reference into the pack's own
//! dictionary of distinct texts (one per column): `k > 0` is the (k-1)-th text already seen,
//! `0` a new text, followed by its length and its UTF-8 bytes. Deltas use wrapping arithmetic,
//! so every `i64` instant round-trips. A pack is appendable: [`PackWriter::resume`] reads one
//! back into a writer. Bytes that do not decode (truncated, a reference out of range, invalid
//! UTF-8, a count that does not match) are a [`StoreError::Corrupt`], never a panic.
//!
//! **Invariants.** `event_packs(account, upto, events, data)`: a pack holds exactly its
//! account's events with `id <= upto`, in id order; every event with `id <= meta.packs_upto` is
//! in its account's pack. So an account's events are its pack followed by its `events` rows with
//! `id > max(packs_upto, upto)`, read by id ([`read_events`], [`account_events`]). Events are
//! never updated or deleted (`prune` deletes snapshot rows only; an import appends), so a pack
//! only ever grows: a full run, or a read by id range once the tail is long enough
//! ([`fold_from`]), folds the newer events into the packs in its own transaction and advances
//! `packs_upto` (it read every newer event); any other read folds only the accounts with 32 newer
//! events of their own or more, each pack alone (`packs_upto` stays). The first
//! load into an empty `events` table builds every pack ([`rebuild_all`]); any other import
//! leaves them, and a later run folds the tail.

use std::cell::Cell;
use std::collections::HashMap;

use crate::db::{Backend, Batch, Conn, ConnExt, RowExt, Value};
use crate::scope::Scope;
use crate::{meta, set_meta, StoreError};

const SECOND: i64 = 1_000_000;

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("event_packs.data: {what}"))
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

#[inline]
fn get_varint(data: &[u8], pos: &mut usize) -> Result<u64, StoreError> {
    let mut v = 0u64;
    let mut shift = 0u32;
    loop {
        let Some(&b) = data.get(*pos) else {
            return Err(corrupt("truncated"));
        };
        *pos += 1;
        if shift == 63 && b > 1 {
            return Err(corrupt("a varint overflows 64 bits"));
        }
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(v);
        }
        shift += 7;
        if shift > 63 {
            return Err(corrupt("a varint overflows 64 bits"));
        }
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// One dictionary entry of a [`PackWriter`]: the offset of the text's bytes in the pack, and
/// its length with [`CONTACT`] set for a contact (clear for a type): both dictionaries in one
/// vector, one allocation per writer (a first load holds a million writers at once).
type Entry = (u32, u32);
const CONTACT: u32 = 1 << 31;

/// Read one text reference at `pos`, adding a new text to `dict`.
#[inline]
fn get_text<'a>(
    data: &'a [u8],
    pos: &mut usize,
    dict: &mut Vec<&'a str>,
) -> Result<&'a str, StoreError> {
    let k = get_varint(data, pos)?;
    if k == 0 {
        let len = get_varint(data, pos)?;
        let off = *pos;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| l.checked_add(off))
            .filter(|&e| e <= data.len())
            .ok_or_else(|| corrupt("a text runs past the end"))?;
        let s = std::str::from_utf8(&data[off..end]).map_err(|_| corrupt("a text is not UTF-8"))?;
        *pos = end;
        dict.push(s);
        Ok(s)
    } else {
        usize::try_from(k - 1)
            .ok()
            .and_then(|k| dict.get(k))
            .copied()
            .ok_or_else(|| corrupt("a text reference out of range"))
    }
}

type Walked<'a> = (Vec<&'a str>, Vec<&'a str>, i64, u64);

/// Walk a pack: `f(at, type, contact)` for each event in order. Returns the writer state
/// (dictionaries, last instant, count).
fn walk<'a, F>(data: &'a [u8], mut f: F) -> Result<Walked<'a>, StoreError>
where
    F: FnMut(i64, &'a str, &'a str) -> Result<(), StoreError>,
{
    if data.len() > u32::MAX as usize {
        return Err(corrupt("a pack over 4 GiB"));
    }
    let (mut types, mut contacts) = (Vec::new(), Vec::new());
    let (mut pos, mut last, mut count) = (0usize, 0i64, 0u64);
    while pos < data.len() {
        let t = get_varint(data, &mut pos)?;
        let delta = if t == 1 {
            get_varint(data, &mut pos)? as i64
        } else if t & 1 == 0 {
            unzigzag(t >> 1).wrapping_mul(SECOND)
        } else {
            unzigzag(t >> 1)
        };
        last = last.wrapping_add(delta);
        let ty = get_text(data, &mut pos, &mut types)?;
        let contact = get_text(data, &mut pos, &mut contacts)?;
        f(last, ty, contact)?;
        count += 1;
    }
    Ok((types, contacts, last, count))
}

/// Decode a pack: `f(occurred_at, type, contact_id)` for each event, in id order. Returns how
/// many there were.
pub fn decode<'a, F>(data: &'a [u8], f: F) -> Result<u64, StoreError>
where
    F: FnMut(i64, &'a str, &'a str) -> Result<(), StoreError>,
{
    walk(data, f).map(|w| w.3)
}

/// Builds a pack event by event (in id order).
#[derive(Default, Debug, Clone)]
pub struct PackWriter {
    buf: Vec<u8>,
    dict: Vec<Entry>,
    last: i64,
    count: u64,
}

impl PackWriter {
    pub fn new() -> PackWriter {
        PackWriter::default()
    }

    /// A writer that appends to an existing pack.
    pub fn resume(data: &[u8]) -> Result<PackWriter, StoreError> {
        let (types, contacts, last, count) = walk(data, |_, _, _| Ok(()))?;
        let base = data.as_ptr() as usize;
        let entry =
            |s: &&str, tag: u32| ((s.as_ptr() as usize - base) as u32, s.len() as u32 | tag);
        // The writer looks a text up among the entries of its kind, in order: the two kinds'
        // relative order does not matter.
        let dict = (types.iter().map(|s| entry(s, 0)))
            .chain(contacts.iter().map(|s| entry(s, CONTACT)))
            .collect();
        Ok(PackWriter {
            buf: data.to_vec(),
            dict,
            last,
            count,
        })
    }

    pub fn push(&mut self, at: i64, ty: &str, contact: &str) {
        // Grown by an eighth rather than doubled: a first load holds every pack in memory.
        if self.buf.capacity() - self.buf.len() < 32 {
            self.buf.reserve_exact(self.buf.len() / 8 + 32);
        }
        let delta = at.wrapping_sub(self.last);
        if delta % SECOND == 0 {
            put_varint(&mut self.buf, zigzag(delta / SECOND) << 1);
        } else if zigzag(delta) < 1 << 63 {
            // Never 1: the delta is not 0.
            put_varint(&mut self.buf, (zigzag(delta) << 1) | 1);
        } else {
            put_varint(&mut self.buf, 1);
            put_varint(&mut self.buf, delta as u64);
        }
        self.last = at;
        Self::text(&mut self.buf, &mut self.dict, 0, ty);
        Self::text(&mut self.buf, &mut self.dict, CONTACT, contact);
        self.count += 1;
    }

    /// A reference to `s` among the texts of kind `tag` (0: types, [`CONTACT`]), or `s` itself.
    fn text(buf: &mut Vec<u8>, dict: &mut Vec<Entry>, tag: u32, s: &str) {
        let mut k = 0u64;
        for &(off, len) in dict.iter() {
            if len & CONTACT != tag {
                continue;
            }
            k += 1;
            let len = len & !CONTACT;
            if len as usize == s.len() && &buf[off as usize..(off + len) as usize] == s.as_bytes() {
                return put_varint(buf, k);
            }
        }
        buf.push(0);
        put_varint(buf, s.len() as u64);
        dict.push((buf.len() as u32, s.len() as u32 | tag));
        buf.extend_from_slice(s.as_bytes());
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// What a load read beyond the packs: the newer events of each account it read them for, to be
/// folded into the packs by [`write`] (in the loading transaction) when `fold`, and whether every
/// event newer than `packs_upto` was read (then `packs_upto` advances to `upto`).
#[derive(Default)]
pub(crate) struct Delta {
    /// (accounts.id, whether it has a pack, its newer events).
    writers: Vec<(i64, bool, PackWriter)>,
    /// The newer events of accounts the load did not assess (a folding read by id range takes
    /// them too, so the tail it folds is the whole tail): per account, their ids and events.
    others: HashMap<i64, (Vec<i64>, PackWriter)>,
    /// The greatest `events.id` when read.
    upto: i64,
    complete: bool,
    /// Whether [`write`] folds this delta into the packs (see [`fold_from`]).
    fold: bool,
}

/// When the events newer than the packs (the tail) are folded into them. A fold rewrites each
/// touched account's pack a little longer, and a longer row in a full page splits it: on a
/// database whose packs were just built, folding a 1% daily tail (10,000 packs at 1M accounts)
/// grew the file by 15 MB, more than the tail itself. The tail costs nothing to leave where it
/// is: a read by account takes its rows by the `events_account` index whatever the tail's size,
/// and only a read by id range (a full run, a scoped run of [`TAIL_BY_RANGE_FROM`] accounts or
/// more) reads the whole of it. So a full run always folds (it reads everything anyway), a read
/// by range folds once the tail spans [`fold_from`] ids (1/32 of the packed ones, at least
/// 65,536: at 1M accounts with 20M events, about every three days of 1% changes), and a read by
/// account never does (a live ingest's one-account call writes no pack, but for an account
/// whose own newer events reach [`ACCOUNT_FOLD_FROM`]).
pub(crate) fn fold_from(floor: i64) -> i64 {
    POLICY
        .with(|p| p.get().0)
        .unwrap_or_else(|| (floor / 32).max(65_536))
}

/// From how many accounts on a scoped read takes the tail by id range.
fn by_range_from() -> usize {
    POLICY.with(|p| p.get().1).unwrap_or(TAIL_BY_RANGE_FROM)
}

/// From how many newer events on a read that does not fold the tail still folds one account's
/// (that account's pack alone, `packs_upto` unchanged): a hot account fed by a live ingest
/// would otherwise be read row by row — each row an index entry and a table seek — on every
/// request until the next fold. Rewriting a pack once per 32 of its events, not once per
/// batch, keeps the page splits the tail avoids rare.
const ACCOUNT_FOLD_FROM: u64 = 32;

fn account_fold_from() -> u64 {
    POLICY.with(|p| p.get().2).unwrap_or(ACCOUNT_FOLD_FROM)
}

thread_local! {
    /// Tests' overrides of [`fold_from`] and [`TAIL_BY_RANGE_FROM`] (per thread: a test's store
    /// calls run on its own thread).
    static POLICY: Cell<(Option<i64>, Option<usize>, Option<u64>)> =
        const { Cell::new((None, None, None)) };
}

thread_local! {
    /// First loads on this thread whose packs were built from the rows as written (tests).
    static STREAMED: Cell<u64> = const { Cell::new(0) };
}

pub(crate) fn streamed_builds() -> u64 {
    STREAMED.with(Cell::get)
}

/// Tests: on this thread, fold a tail read by range from `fold_from` ids on, read by range
/// from `by_range_from` accounts on, and fold one account's newer events from `account_from` of
/// them on (`None`: the defaults). Any policy gives the same events; it only chooses how they
/// are read and when packs are rewritten.
pub(crate) fn set_fold_policy(
    fold_from: Option<i64>,
    by_range_from: Option<usize>,
    account_from: Option<u64>,
) {
    POLICY.with(|p| p.set((fold_from, by_range_from, account_from)));
}

/// Receives `(position, occurred_at, type, contact_id)` for each event read (on a helper thread
/// while the packs of many accounts are read: [`DECODE_BESIDE_FROM`]).
pub(crate) type EventSink<'a> =
    dyn FnMut(u32, i64, &str, &str) -> Result<(), StoreError> + Send + 'a;

/// From this many accounts read on, a helper thread decodes the packs and feeds their events to
/// the sink while this one reads the next packs from the database: at 1M accounts the two
/// halves of the work (SQLite's reads; decoding and folding 20M events) are about equal, and
/// the load had the other core idle. A few accounts' packs are decoded in turn (a thread
/// would cost more than it saves).
const DECODE_BESIDE_FROM: usize = 4096;

/// Packs read, waiting to be decoded: each one's position, account, event count and bytes.
#[derive(Default)]
struct PackBlock {
    packs: Vec<(u32, i64, u64, std::ops::Range<usize>)>,
    data: Vec<u8>,
}

impl crate::beside::Block for PackBlock {
    fn full(&self) -> bool {
        self.data.len() >= Self::BYTES || self.packs.len() >= Self::PACKS
    }

    fn is_empty(&self) -> bool {
        self.packs.is_empty()
    }

    fn clear(&mut self) {
        self.packs.clear();
        self.data.clear();
    }
}

impl PackBlock {
    /// Hand the block over once it holds this many bytes or packs.
    const BYTES: usize = 1 << 20;
    const PACKS: usize = 4096;

    /// Feed the block's events to `f`, pack by pack.
    fn decode_into(&self, f: &mut EventSink<'_>) -> Result<(), StoreError> {
        for (i, account, events, range) in &self.packs {
            let n = decode(&self.data[range.clone()], |at, ty, contact| {
                f(*i, at, ty, contact)
            })?;
            if n != *events {
                return Err(corrupt(&format!(
                    "the pack of account {account} holds {n} events, not {events}"
                )));
            }
        }
        Ok(())
    }
}

/// From this many accounts on, a scoped read takes every event newer than `packs_upto` (by id
/// range) and keeps those of its accounts, rather than the events of each account by index.
const TAIL_BY_RANGE_FROM: usize = 4096;

/// Every stored event of the accounts in `scope` (`idx_of`: `accounts.id` → position in `ids`,
/// `None` for an account not loaded): `f(position, occurred_at, type, contact_id)`, each
/// account's in id order (packs first, then the newer rows).
pub(crate) fn read_events(
    conn: &mut dyn Conn,
    scope: Scope<'_>,
    ids: &[i64],
    idx_of: &dyn Fn(i64) -> Option<u32>,
    f: &mut EventSink<'_>,
) -> Result<Delta, StoreError> {
    let floor = meta(conn, "packs_upto")?;
    let upto = conn.scalar(
        "SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM events",
        &[],
    )?;
    // Per position: the pack's upto (-1: no pack).
    let mut packed = vec![-1i64; ids.len()];
    let packs_sql = "SELECT account, upto, events, data FROM event_packs WHERE {scope}";
    // One pack's row into `block`.
    let mut take = |block: &mut PackBlock, r: &dyn crate::db::Row| -> Result<bool, StoreError> {
        let Some(i) = idx_of(r.i(0)?) else {
            return Ok(false);
        };
        packed[i as usize] = r.i(1)?;
        let data = r.blob(3)?.unwrap_or_default();
        let start = block.data.len();
        block.data.extend_from_slice(data);
        let range = start..block.data.len();
        block.packs.push((i, r.i(0)?, r.i(2)? as u64, range));
        Ok(true)
    };
    if ids.len() >= crate::beside::beside_from(DECODE_BESIDE_FROM) {
        crate::beside::read_beside(&mut |b: &PackBlock| b.decode_into(f), |filler| {
            scope.each(conn, packs_sql, "account", &[], &mut |r| {
                if take(filler.block(), r)? {
                    filler.hand_over_if_full()?;
                }
                Ok(())
            })
        })?;
    } else {
        use crate::beside::Block;
        let mut block = PackBlock::default();
        scope.each(conn, packs_sql, "account", &[], &mut |r| {
            if take(&mut block, r)? {
                block.decode_into(f)?;
                block.clear();
            }
            Ok(())
        })?;
    }
    let by_range = match scope {
        Scope::All => true,
        Scope::Ids(s) => s.len() >= by_range_from(),
    };
    // A read by range that folds takes the other accounts' newer events too.
    let fold = match scope {
        Scope::All => true,
        Scope::Ids(_) => by_range && upto - floor >= fold_from(floor),
    };
    let mut writers: HashMap<u32, PackWriter> = HashMap::new();
    let mut others: HashMap<i64, (Vec<i64>, PackWriter)> = HashMap::new();
    let mut outside = false;
    // By account: the literal bound of the partial index (see `newer_events_of_account`); by
    // range, the range alone (a second lower bound could become the one the scan starts at).
    let sql = if by_range {
        "SELECT id, account, occurred_at, type, contact_id FROM events
         WHERE id > ? AND {scope} ORDER BY id"
            .to_string()
    } else {
        format!(
            "SELECT id, account, occurred_at, type, contact_id FROM events
             WHERE id > ? AND id > {} AND {{scope}} ORDER BY id",
            events_account_from(conn)?
        )
    };
    let sql = sql.as_str();
    let mut row = |r: &dyn crate::db::Row| {
        let Some(i) = idx_of(r.i(1)?) else {
            if fold {
                let o = others.entry(r.i(1)?).or_default();
                o.0.push(r.i(0)?);
                o.1.push(r.i(2)?, r.s(3)?, r.s(4)?);
            } else {
                outside = true;
            }
            return Ok(());
        };
        if r.i(0)? <= packed[i as usize] {
            return Ok(());
        }
        let (at, ty, contact) = (r.i(2)?, r.s(3)?, r.s(4)?);
        f(i, at, ty, contact)?;
        writers.entry(i).or_default().push(at, ty, contact);
        Ok(())
    };
    if by_range {
        Scope::All.each(conn, sql, "account", &[Value::Int(floor)], &mut row)?;
    } else {
        scope.each(conn, sql, "account", &[Value::Int(floor)], &mut row)?;
    }
    // Only a read by range folds (`fold_from`), and only it can know that it read every newer
    // event.
    let complete = by_range && !outside;
    let mut writers: Vec<(i64, bool, PackWriter)> = writers
        .into_iter()
        .map(|(i, w)| (ids[i as usize], packed[i as usize] >= 0, w))
        .collect();
    writers.sort_unstable_by_key(|w| w.0);
    Ok(Delta {
        writers,
        others,
        upto,
        complete,
        fold,
    })
}

/// Upsert packs (`account`, `events`, `data`), all covering events up to `upto`.
fn upsert(
    conn: &mut dyn Conn,
    upto: i64,
    packs: impl Iterator<Item = (i64, u64, Vec<u8>)>,
) -> Result<u64, StoreError> {
    let mut batch = Batch::new(4);
    let mut n = 0u64;
    let suffix = "ON CONFLICT (account) DO UPDATE SET upto = excluded.upto,
        events = excluded.events, data = excluded.data";
    for (account, count, data) in packs {
        batch.int(account).int(upto).int(count as i64).blob(&data);
        n += 1;
        if batch.rows() >= 1000 || batch.weight() >= 8 << 20 {
            conn.insert_batch("event_packs (account, upto, events, data)", &batch, suffix)?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        conn.insert_batch("event_packs (account, upto, events, data)", &batch, suffix)?;
    }
    Ok(n)
}

/// Fold what a load read beyond the packs into them (inside the loading transaction) when the
/// load chose to ([`fold_from`]), and advance `packs_upto` when it read every newer event.
/// Returns the packs written.
pub(crate) fn write(conn: &mut dyn Conn, delta: Delta) -> Result<u64, StoreError> {
    let Delta {
        writers,
        others,
        upto,
        complete,
        fold,
    } = delta;
    // Without a fold of the tail, only the accounts with a long tail of their own, each pack
    // covering every event of its account up to `upto` (it read them all: by range, or by
    // account from its pack's `upto` on); `packs_upto` stays.
    let writers: Vec<(i64, bool, PackWriter)> = if fold {
        writers
    } else {
        let from = account_fold_from();
        writers
            .into_iter()
            .filter(|w| w.2.count() >= from)
            .collect()
    };
    if !fold && writers.is_empty() {
        return Ok(0);
    }
    // The stored packs these events extend: those of the loaded accounts that have one, and any
    // of the others' (whose `upto` may lie inside the tail: a pack written by an earlier fold).
    let mut with_pack: Vec<i64> = writers.iter().filter(|w| w.1).map(|w| w.0).collect();
    with_pack.extend(others.keys().copied());
    let mut old = stored_packs(conn, with_pack)?;
    let mut merged = Vec::with_capacity(writers.len() + others.len());
    for (account, _, w) in writers {
        merged.push(merge(old.remove(&account), account, 0, w)?);
    }
    let mut others: Vec<(i64, (Vec<i64>, PackWriter))> = others.into_iter().collect();
    others.sort_unstable_by_key(|o| o.0);
    for (account, (event_ids, w)) in others {
        // Events a pack already holds (its `upto` past the floor) are not added twice.
        let stored = old.remove(&account);
        let covered = stored.as_ref().map_or(0, |(u, _)| *u);
        let skip = event_ids.partition_point(|&id| id <= covered);
        if skip < event_ids.len() {
            merged.push(merge(stored, account, skip, w)?);
        }
    }
    merged.sort_unstable_by_key(|m| m.0);
    let n = upsert(conn, upto, merged.into_iter())?;
    if fold && complete && upto > meta(conn, "packs_upto")? {
        set_meta(conn, "packs_upto", upto)?;
    }
    Ok(n)
}

/// The stored packs of `accounts`: account → (upto, data).
fn stored_packs(
    conn: &mut dyn Conn,
    mut accounts: Vec<i64>,
) -> Result<HashMap<i64, (i64, Vec<u8>)>, StoreError> {
    accounts.sort_unstable();
    let mut old = HashMap::with_capacity(accounts.len());
    if !accounts.is_empty() {
        Scope::Ids(&accounts).each(
            conn,
            "SELECT account, upto, data FROM event_packs WHERE {scope}",
            "account",
            &[],
            &mut |r| {
                old.insert(r.i(0)?, (r.i(1)?, r.blob(2)?.unwrap_or_default().to_vec()));
                Ok(())
            },
        )?;
    }
    Ok(old)
}

/// `w`'s events after the first `skip`, appended to the account's `stored` pack (if any): the
/// row to upsert.
fn merge(
    stored: Option<(i64, Vec<u8>)>,
    account: i64,
    skip: usize,
    w: PackWriter,
) -> Result<(i64, u64, Vec<u8>), StoreError> {
    let mut m = match stored {
        Some((_, data)) => PackWriter::resume(&data)?,
        None if skip == 0 => return Ok((account, w.count(), w.into_bytes())),
        None => PackWriter::new(),
    };
    let mut k = 0usize;
    decode(w.bytes(), |at, ty, contact| {
        if k >= skip {
            m.push(at, ty, contact);
        }
        k += 1;
        Ok(())
    })?;
    Ok((account, m.count(), m.into_bytes()))
}

/// Build every pack from `events` (the first load into an empty table; also a repair): the
/// packs are replaced and `packs_upto` is the greatest event id.
pub(crate) fn rebuild_all(conn: &mut dyn Conn) -> Result<u64, StoreError> {
    let mut writers = account_writers(conn)?;
    // SQLite reads its table in rowid (id) order; PostgreSQL is told to.
    let sql = match conn.backend() {
        Backend::Sqlite => "SELECT account, occurred_at, type, contact_id FROM events",
        Backend::Postgres => {
            "SELECT account, occurred_at, type, contact_id FROM events ORDER BY id"
        }
    };
    conn.query_each(sql, &[], &mut |r| {
        let account = r.i(0)?;
        let w = usize::try_from(account)
            .ok()
            .and_then(|a| writers.get_mut(a))
            .ok_or_else(|| {
                StoreError::Corrupt(format!("events.account: {account} is no stored account"))
            })?;
        w.push(r.i(1)?, r.s(2)?, r.s(3)?);
        Ok(())
    })?;
    write_all(conn, writers)
}

/// One empty writer per stored account, indexed by `accounts.id` (dense: an integer primary
/// key).
fn account_writers(conn: &mut dyn Conn) -> Result<Vec<PackWriter>, StoreError> {
    let max_account = conn.scalar(
        "SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM accounts",
        &[],
    )?;
    let mut writers = Vec::new();
    writers.resize_with(
        usize::try_from(max_account.max(0)).unwrap_or(0) + 1,
        PackWriter::new,
    );
    Ok(writers)
}

/// Replaces every pack with `writers` (indexed by `accounts.id`), which hold every stored
/// event, and sets `packs_upto` to the greatest event id.
fn write_all(conn: &mut dyn Conn, writers: Vec<PackWriter>) -> Result<u64, StoreError> {
    conn.execute("DELETE FROM event_packs", &[])?;
    let upto = conn.scalar(
        "SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM events",
        &[],
    )?;
    // The table is empty now: the packs go in by `COPY` (PostgreSQL; plain inserts on SQLite),
    // with no conflict to look for — at 1M accounts an upsert of multi-row `VALUES` took 13 s
    // of a PostgreSQL first load, the copy 2 s.
    let mut batch = Batch::new(4);
    let mut n = 0u64;
    for (account, w) in writers.into_iter().enumerate() {
        if w.count() == 0 {
            continue;
        }
        let count = w.count() as i64;
        batch
            .int(account as i64)
            .int(upto)
            .int(count)
            .blob(&w.into_bytes());
        n += 1;
        if batch.rows() >= 20_000 || batch.weight() >= 16 << 20 {
            conn.copy_in("event_packs (account, upto, events, data)", &batch)?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        conn.copy_in("event_packs (account, upto, events, data)", &batch)?;
    }
    set_meta(conn, "packs_upto", upto)?;
    Ok(n)
}

/// A first load's packs, built on a helper thread from the rows as the load writes them, so
/// that the load does not read its 20M rows back ([`rebuild_all`]) once they are written: the
/// loading thread hands over the rows in order, in blocks, and the helper (otherwise idle
/// core) encodes them. Exact only when the rows pushed are exactly the rows the `events` table
/// holds, in id order — the importer checks that ([`PackBuild::rows`] against the events it
/// added) and otherwise rebuilds from the table.
pub(crate) struct PackBuild {
    send: Option<std::sync::mpsc::SyncSender<Block>>,
    block: Block,
    rows: u64,
    thread: Option<std::thread::JoinHandle<Result<Vec<PackWriter>, StoreError>>>,
}

/// Rows on their way to the helper: per row its account, time, and the ends of its type and
/// contact in `texts`.
#[derive(Default)]
struct Block {
    accounts: Vec<i64>,
    ats: Vec<i64>,
    ends: Vec<(u32, u32)>,
    texts: String,
}

const BLOCK_ROWS: usize = 8192;

impl PackBuild {
    /// For the accounts stored now (the load's accounts are written before its events).
    pub(crate) fn start(conn: &mut dyn Conn) -> Result<PackBuild, StoreError> {
        let mut writers = account_writers(conn)?;
        let (send, receive) = std::sync::mpsc::sync_channel::<Block>(8);
        let thread = std::thread::Builder::new()
            .name("abm-packs".into())
            .spawn(move || {
                for b in receive {
                    let mut start = 0usize;
                    for (i, &account) in b.accounts.iter().enumerate() {
                        let a = usize::try_from(account).map_err(|_| {
                            StoreError::Corrupt(format!("events.account: {account}"))
                        })?;
                        if a >= writers.len() {
                            writers.resize_with(a + 1, PackWriter::new);
                        }
                        let (ty, end) = b.ends[i];
                        let (ty, end) = (ty as usize, end as usize);
                        writers[a].push(b.ats[i], &b.texts[start..ty], &b.texts[ty..end]);
                        start = end;
                    }
                }
                Ok(writers)
            })
            .map_err(|e| StoreError::Corrupt(format!("starting the pack builder: {e}")))?;
        Ok(PackBuild {
            send: Some(send),
            block: Block::default(),
            rows: 0,
            thread: Some(thread),
        })
    }

    /// The next row written to `events` (in id order).
    pub(crate) fn push(&mut self, account: i64, at: i64, ty: &str, contact: &str) {
        let b = &mut self.block;
        b.accounts.push(account);
        b.ats.push(at);
        b.texts.push_str(ty);
        let t = b.texts.len() as u32;
        b.texts.push_str(contact);
        b.ends.push((t, b.texts.len() as u32));
        self.rows += 1;
        if b.accounts.len() >= BLOCK_ROWS || b.texts.len() >= 1 << 20 {
            self.send_block();
        }
    }

    fn send_block(&mut self) {
        let block = std::mem::take(&mut self.block);
        // A helper that stopped (an error) is seen by `finish`.
        if let Some(s) = &self.send {
            let _ = s.send(block);
        }
    }

    /// The rows pushed.
    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes the packs built (every pack replaced; `packs_upto` = the greatest event id).
    pub(crate) fn write(mut self, conn: &mut dyn Conn) -> Result<u64, StoreError> {
        self.send_block();
        self.send = None;
        let writers = self
            .thread
            .take()
            .expect("joined once")
            .join()
            .map_err(|_| StoreError::Corrupt("the pack builder panicked".into()))??;
        STREAMED.with(|n| n.set(n.get() + 1));
        write_all(conn, writers)
    }
}

impl Drop for PackBuild {
    fn drop(&mut self) {
        // Unused (the load failed or fell back to a rebuild): stop the helper.
        self.send = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(crate) const PACK_OF_ACCOUNT: &str =
    "SELECT upto, events, data FROM event_packs WHERE account = ?";
/// One account's events newer than its pack (`?`: the pack's `upto`), by the partial
/// `events_account` index over the ids above `from` ([`events_account_from`]): the literal
/// bound lets a planner use it, and changes nothing else (every event at or below it is in its
/// account's pack).
pub(crate) fn newer_events_of_account(from: i64) -> String {
    format!(
        "SELECT occurred_at, type, contact_id FROM events
         WHERE account = ? AND id > ? AND id > {from} ORDER BY id"
    )
}

/// The bound of the partial `events_account` index (migration 0015): it holds the events with
/// a greater id. Never above `packs_upto`, so every event at or below it is packed and a read
/// of an account's newer events may state `id > bound` without losing one.
pub(crate) fn events_account_from(conn: &mut dyn Conn) -> Result<i64, StoreError> {
    meta(conn, "events_account_from")
}

/// The columns of `events_account` (over the events after the bound): on SQLite it covers a
/// read of an account's newer events ([`newer_events_of_account`]: the rows come from the
/// index, not from a lookup of each in the table); PostgreSQL's reads fetch them from the heap.
pub(crate) fn events_account_columns(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "account, id, occurred_at, type, contact_id",
        Backend::Postgres => "account",
    }
}

/// The bound moves up once the events after it reach this share of those up to it (a quarter).
const BOUND_MOVES_AT: i64 = 4;

/// After a run committed (`Store::run`): once the events between the partial indexes' bound
/// ([`events_account_from`]) and `packs_upto` reach a quarter of those up to the bound, the
/// indexes over the events after it are built again at `packs_upto` — `events_account`, and on
/// SQLite the identity index's two halves (`import::IdentitySplit`) — so that they stay small
/// however many days of events follow a first load (at 1M accounts and 1% of them a day: about
/// once a month; 14.8 s at 25M events). In a transaction of its own: a killed rebuild leaves
/// them and their bound as they were, and readers (WAL) keep the old ones until it commits. The
/// sorts spill to temporary files, as an import's do (with the connection's temporary storage
/// in memory the rebuild took 53 s; the setting changes only outside a transaction). SQLite
/// only: on PostgreSQL dropping an index locks the table against readers until the commit, so
/// its `events_account` keeps the first load's bound. Databases whose first load set no bound
/// (0) keep their whole indexes. The new bound, if it moved.
pub(crate) fn advance_bound(conn: &mut dyn Conn) -> Result<Option<i64>, StoreError> {
    if !bound_move_due(conn)? {
        return Ok(None);
    }
    let _ = conn.batch_execute("PRAGMA temp_store = FILE");
    let moved = crate::Tx::begin(conn, crate::db::TxMode::Write).and_then(|mut tx| {
        // Checked again under the write lock.
        if !bound_move_due(&mut *tx)? {
            return Ok(None);
        }
        let upto = meta(&mut *tx, "packs_upto")?;
        rebuild_tail_indexes(&mut *tx, upto)?;
        tx.commit()?;
        Ok(Some(upto))
    });
    let _ = conn.batch_execute("PRAGMA temp_store = MEMORY");
    moved
}

/// Whether [`advance_bound`] would move the bound now.
pub(crate) fn bound_move_due(conn: &mut dyn Conn) -> Result<bool, StoreError> {
    if conn.backend() != Backend::Sqlite {
        return Ok(false);
    }
    let bound = events_account_from(conn)?;
    let upto = meta(conn, "packs_upto")?;
    Ok(bound > 0 && upto - bound >= (bound / BOUND_MOVES_AT).max(1))
}

/// `events_account` (and on SQLite, when split, the identity index's halves) built again
/// over the events after `bound`, which becomes `meta.events_account_from`.
fn rebuild_tail_indexes(conn: &mut dyn Conn, bound: i64) -> Result<(), StoreError> {
    let backend = conn.backend();
    let split = backend == Backend::Sqlite
        && conn.scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM sqlite_master
             WHERE type = 'index' AND name = ?",
            &[Value::Text(crate::import::IdentitySplit::INDEX)],
        )? > 0;
    let mut sql = format!(
        "DROP INDEX events_account; CREATE INDEX events_account ON events ({}) WHERE id > {bound}",
        events_account_columns(backend)
    );
    if split {
        sql = format!(
            "DROP INDEX events_ident; DROP INDEX {}; {sql}; {}",
            crate::import::IdentitySplit::INDEX,
            crate::import::IdentitySplit::create()
                .replace(crate::import::TAIL_FROM, &bound.to_string())
        );
    }
    crate::import::build_indexes(conn, &sql)?;
    set_meta(conn, "events_account_from", bound)
}

/// One account's events in id order (`explain`): its pack, then its newer rows (`from`: the
/// index's bound, [`events_account_from`], read once by a caller that reads many accounts).
pub(crate) fn account_events(
    conn: &mut dyn Conn,
    from: i64,
    account: i64,
    f: &mut dyn FnMut(i64, &str, &str) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut upto = 0i64;
    conn.query_each(PACK_OF_ACCOUNT, &[Value::Int(account)], &mut |r| {
        upto = r.i(0)?;
        let n = decode(r.blob(2)?.unwrap_or_default(), &mut *f)?;
        if n != r.i(1)? as u64 {
            return Err(corrupt(&format!(
                "the pack of account {account} holds {n} events, not {}",
                r.i(1)?
            )));
        }
        Ok(())
    })?;
    conn.query_each(
        &newer_events_of_account(from),
        &[Value::Int(account), Value::Int(upto)],
        &mut |r| f(r.i(0)?, r.s(1)?, r.s(2)?),
    )
}

/// Every account's events as the packs and newer rows give them, and as `events` alone does
/// (tests: the packs are exact).
pub(crate) fn check_exact(conn: &mut dyn Conn) -> Result<(), StoreError> {
    type Events = Vec<(i64, String, String)>;
    let mut want: HashMap<i64, Events> = HashMap::new();
    conn.query_each(
        "SELECT account, occurred_at, type, contact_id FROM events ORDER BY id",
        &[],
        &mut |r| {
            want.entry(r.i(0)?)
                .or_default()
                .push((r.i(1)?, r.string(2)?, r.string(3)?));
            Ok(())
        },
    )?;
    let floor = meta(conn, "packs_upto")?;
    let packs = conn.query_all("SELECT account, upto FROM event_packs", &[], |r| {
        Ok((r.i(0)?, r.i(1)?))
    })?;
    let accounts = conn.query_all("SELECT id FROM accounts ORDER BY id", &[], |r| r.i(0))?;
    let from = events_account_from(conn)?;
    for account in accounts {
        let mut got: Events = Vec::new();
        account_events(conn, from, account, &mut |at, ty, c| {
            got.push((at, ty.to_string(), c.to_string()));
            Ok(())
        })?;
        let w = want.remove(&account).unwrap_or_default();
        if got != w {
            return Err(StoreError::Corrupt(format!(
                "account {account}: packs and newer rows give {got:?}, events hold {w:?}"
            )));
        }
    }
    // Every event up to packs_upto is packed.
    for (account, upto) in packs {
        if upto < floor {
            let n = conn.scalar(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM events WHERE account = ? AND id > ? AND id <= ?",
                &[Value::Int(account), Value::Int(upto), Value::Int(floor)],
            )?;
            if n > 0 {
                return Err(StoreError::Corrupt(format!(
                    "account {account}: {n} events at or below packs_upto are not packed"
                )));
            }
        }
    }
    let unpacked = conn.scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM events e WHERE e.id <= ? AND NOT EXISTS
            (SELECT 1 FROM event_packs p WHERE p.account = e.account AND p.upto >= e.id)",
        &[Value::Int(floor)],
    )?;
    if unpacked > 0 {
        return Err(StoreError::Corrupt(format!(
            "{unpacked} events at or below packs_upto are in no pack"
        )));
    }
    Ok(())
}

impl crate::Store {
    /// Check that every account's event pack and newer rows give exactly its `events` rows, in
    /// id order, and that every event up to `packs_upto` is packed (`StoreError::Corrupt`
    /// naming the first difference otherwise). Reads every event: for tests and repairs.
    pub fn check_packs(&mut self) -> Result<(), StoreError> {
        let mut tx = crate::Tx::begin(self.conn(), crate::db::TxMode::Read)?;
        check_exact(&mut *tx)?;
        tx.commit()
    }

    /// Rebuild every event pack from `events` (a repair; the first load does it by itself).
    pub fn rebuild_packs(&mut self) -> Result<u64, StoreError> {
        let mut tx = crate::Tx::begin(self.conn(), crate::db::TxMode::Write)?;
        let n = rebuild_all(&mut *tx)?;
        tx.commit()?;
        Ok(n)
    }

    /// `packs_upto`, the number of packs stored and the greatest event id.
    pub fn pack_stats(&mut self) -> Result<(i64, i64, i64), StoreError> {
        let upto = meta(self.conn(), "packs_upto")?;
        let n = self
            .conn()
            .scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM event_packs", &[])?;
        let max = self.conn().scalar(
            "SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM events",
            &[],
        )?;
        Ok((upto, n, max))
    }

    /// Drop every event pack (`packs_upto` 0): the next run reads every event from `events`
    /// and packs them again (tests compare runs over packs and over rows alone). The indexes
    /// over newer events then cover every event (their bound 0: it may not exceed
    /// `packs_upto`).
    pub fn drop_packs(&mut self) -> Result<(), StoreError> {
        let mut tx = crate::Tx::begin(self.conn(), crate::db::TxMode::Write)?;
        tx.execute("DELETE FROM event_packs", &[])?;
        set_meta(&mut *tx, "packs_upto", 0)?;
        if events_account_from(&mut *tx)? > 0 {
            rebuild_tail_indexes(&mut *tx, 0)?;
        }
        tx.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(events: &[(i64, String, String)]) -> Vec<u8> {
        let mut w = PackWriter::new();
        for (at, ty, c) in events {
            w.push(*at, ty, c);
        }
        w.into_bytes()
    }

    fn decoded(data: &[u8]) -> Result<Vec<(i64, String, String)>, StoreError> {
        let mut out = Vec::new();
        decode(data, |at, ty, c| {
            out.push((at, ty.to_string(), c.to_string()));
            Ok(())
        })?;
        Ok(out)
    }

    fn event() -> impl Strategy<Value = (i64, String, String)> {
        (
            prop_oneof![
                any::<i64>(),
                (0i64..4_000_000_000).prop_map(|s| s * SECOND),
                1_600_000_000_000_000i64..1_800_000_000_000_000,
            ],
            prop_oneof!["[a-z_]{0,12}", "\\PC{0,4}"],
            prop_oneof!["c[0-9]{1,2}", "\\PC{0,6}", Just(String::new())],
        )
    }

    /// Folding another account's tail events skips those its pack already holds (a pack written
    /// past the floor), and a pack-less account gets the rest alone.
    #[test]
    fn merge_skips_what_the_pack_holds() {
        let ev = |k: i64| (k * SECOND, format!("t{}", k % 2), format!("c{k}"));
        let stored = encode(&[ev(1), ev(2), ev(3)]);
        let mut tail = PackWriter::new();
        for k in 2..=5 {
            let (at, ty, c) = ev(k);
            tail.push(at, &ty, &c);
        }
        // Tail ids 12..=15 hold events 2..=5; the pack covers up to id 13 (events 1..=3).
        let skip = [12i64, 13, 14, 15].partition_point(|&id| id <= 13);
        let (_, n, data) = merge(Some((13, stored)), 7, skip, tail.clone()).unwrap();
        assert_eq!(n, 5);
        assert_eq!(decoded(&data).unwrap(), (1..=5).map(ev).collect::<Vec<_>>());
        let (_, n, data) = merge(None, 7, 1, tail).unwrap();
        assert_eq!(n, 3);
        assert_eq!(decoded(&data).unwrap(), (3..=5).map(ev).collect::<Vec<_>>());
    }

    proptest! {
        #[test]
        fn round_trip(events in prop::collection::vec(event(), 0..60), split in 0usize..60) {
            let data = encode(&events);
            prop_assert_eq!(decoded(&data).unwrap(), events.clone());
            // Appending to a resumed pack gives the pack of the whole sequence.
            let k = split.min(events.len());
            let mut w = PackWriter::resume(&encode(&events[..k])).unwrap();
            for (at, ty, c) in &events[k..] {
                w.push(*at, ty, c);
            }
            prop_assert_eq!(w.count(), events.len() as u64);
            prop_assert_eq!(w.into_bytes(), data);
        }

        #[test]
        fn garbage_is_an_error_never_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decoded(&bytes);
            let _ = PackWriter::resume(&bytes);
        }

        #[test]
        fn truncated_packs_are_errors(events in prop::collection::vec(event(), 1..30), cut in 0usize..1000) {
            let data = encode(&events);
            let cut = cut % data.len();
            // A strict prefix either fails or decodes to fewer events (a cut between events).
            match decoded(&data[..cut]) {
                Ok(got) => prop_assert!(got.len() < events.len()),
                Err(e) => prop_assert!(matches!(e, StoreError::Corrupt(_))),
            }
        }
    }

    #[test]
    fn typed_errors() {
        for bad in [
            &[0x80u8][..],              // truncated varint
            &[1, 5][..],                // reference out of range
            &[1, 0, 9, b'a'][..],       // text past the end
            &[1, 0, 1, 0xff, 0, 0][..], // not UTF-8
            &[0xff; 11][..],            // varint overflow
        ] {
            assert!(
                matches!(decoded(bad), Err(StoreError::Corrupt(_))),
                "{bad:?}"
            );
        }
    }
}
