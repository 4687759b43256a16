//! Loading the four inputs into the core's records. Every bad row becomes a [`Rejection`] with
//! file, line, column and reason; the other rows go on.

use crate::chunk::{par_blocks_input, DEFAULT_BLOCK};
use crate::columns::{FileKind, Preset, Projection};
use crate::csv::Record;
use crate::source::{
    for_each_in_block, plain_json_fields, Format, JsonRecords, Source, MAX_FAST_COLS,
};
use crate::IngestError;
use abm_core::account::{AccountIdx, AccountSchema, AccountTable, Firmographics};
use abm_core::engagement::{
    contact_hash, Deal, DealOutcome, EngagementState, Signal, Trigger, Verdict,
};
use abm_core::rules::{Code, Rules};
use abm_core::{Config, Instant, Tier};
use serde::Serialize;
use std::hash::BuildHasher;
use std::path::Path;

/// A row that failed validation: kept, with where and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejection {
    pub file: String,
    pub line: u64,
    pub column: String,
    pub reason: String,
    /// The row as it was in the file.
    pub record: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: column `{}`: {}",
            self.file, self.line, self.column, self.reason
        )
    }
}

#[derive(Debug, Default, Clone)]
pub struct Rejects {
    pub rows: Vec<Rejection>,
}

impl Rejects {
    pub fn len(&self) -> usize {
        self.rows.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
    /// With `--strict`, the first bad row of a file is an error.
    fn check_strict(&self, strict: bool, since: usize) -> Result<(), IngestError> {
        if strict {
            if let Some(r) = self.rows[since..].iter().min_by_key(|r| r.line) {
                return Err(IngestError::Strict {
                    file: r.file.clone(),
                    line: r.line,
                    column: r.column.clone(),
                    reason: r.reason.clone(),
                });
            }
        }
        Ok(())
    }
}

/// Progress callback: (what, bytes done, bytes total).
pub type Progress<'a> = &'a (dyn Fn(&str, u64, u64) + Sync);

pub fn no_progress(_: &str, _: u64, _: u64) {}

#[derive(Clone, Copy)]
pub struct LoadOptions<'a> {
    pub config: &'a Config,
    pub preset: Option<Preset>,
    pub threads: usize,
    pub strict: bool,
    pub progress: Progress<'a>,
}

impl<'a> LoadOptions<'a> {
    pub fn new(config: &'a Config) -> LoadOptions<'a> {
        LoadOptions {
            config,
            preset: None,
            threads: crate::chunk::default_threads(),
            strict: false,
            progress: &no_progress,
        }
    }

    pub fn open(&self, path: &Path, kind: FileKind) -> Result<Source, IngestError> {
        Source::open(path, kind, kind.mapping(&self.config.columns), self.preset)
    }
}

fn reject(src: &str, rec: &Record<'_>, column: &str, reason: impl Into<String>) -> Rejection {
    Rejection {
        file: src.to_string(),
        line: rec.line,
        column: column.to_string(),
        reason: reason.into(),
        record: rec.raw_text(),
    }
}

/// Check the field count, then run `f`. Used by every loader.
fn fields_ok(src: &Source, rec: &Record<'_>) -> Result<(), Rejection> {
    if src.format == Format::Csv && rec.len() != src.header.len() {
        return Err(reject(
            &src.name,
            rec,
            "*",
            format!(
                "the row has {} fields, the header has {}",
                rec.len(),
                src.header.len()
            ),
        ));
    }
    Ok(())
}

/// The rejection for a JSON Lines row that does not parse.
fn json_rejection(src: &Source, line: u64, col: usize, msg: String, raw: &[u8]) -> Rejection {
    Rejection {
        file: src.name.clone(),
        line,
        column: format!("char {col}"),
        reason: format!("invalid JSON: {msg}"),
        record: String::from_utf8_lossy(raw).into_owned(),
    }
}

/// The rejection for a block that ends inside a quoted field.
fn unterminated_rejection(src: &Source, line: u64) -> Rejection {
    Rejection {
        file: src.name.clone(),
        line,
        column: "*".into(),
        reason: "a quoted field is never closed (unterminated quote)".into(),
        record: String::new(),
    }
}

/// Run one block through `visit`; rejections carry block-relative lines (fixed up later).
fn process_block<S>(
    src: &Source,
    json: &mut Option<JsonRecords>,
    state: &mut S,
    block: &[u8],
    visit: &(impl Fn(&mut S, &Source, &Record<'_>) -> Result<(), Rejection> + ?Sized),
) -> (u64, (u64, Vec<Rejection>)) {
    let mut rows = 0u64;
    let bad = std::cell::RefCell::new(Vec::new());
    let (lines, unterminated) = for_each_in_block(
        src.format,
        json,
        block,
        0,
        |rec| {
            rows += 1;
            if let Err(r) = fields_ok(src, rec).and_then(|_| visit(state, src, rec)) {
                bad.borrow_mut().push(r);
            }
        },
        |line, col, msg, raw| {
            bad.borrow_mut()
                .push(json_rejection(src, line, col, msg, raw))
        },
    );
    let mut bad = bad.into_inner();
    if let Some(line) = unterminated {
        bad.push(unterminated_rejection(src, line));
    }
    (lines, (rows, bad))
}

/// Sum the blocks' row counts and move their rejections (numbered from each block's start) to
/// absolute lines, in file order.
fn absorb_blocks(
    blocks: Vec<crate::chunk::Block<(u64, Vec<Rejection>)>>,
    first_line: u64,
    rejects: &mut Rejects,
) -> u64 {
    let mut rows = 0;
    let mut line = first_line;
    for b in blocks {
        let (n, bad) = b.value;
        rows += n;
        rejects.rows.extend(bad.into_iter().map(|mut r| {
            r.line += line;
            r
        }));
        line += b.lines;
    }
    rows
}

/// Visit every record of `src` on `threads` workers, each with its own state.
/// Returns the worker states and the row count; rejections go to `rejects` in file order.
pub fn scan<S: Send>(
    mut src: Source,
    opts: &LoadOptions<'_>,
    threads: usize,
    init: impl Fn() -> S + Sync,
    visit: impl Fn(&mut S, &Source, &Record<'_>) -> Result<(), Rejection> + Sync,
    rejects: &mut Rejects,
) -> Result<(Vec<S>, u64), IngestError> {
    let since = rejects.rows.len();
    let input = src.take_input();
    let label = format!("reading {}", src.name);
    let src = &src;
    let (states, blocks) = par_blocks_input(
        input,
        threads,
        DEFAULT_BLOCK,
        src.format == Format::Csv,
        || {
            (
                init(),
                (src.format == Format::Jsonl).then(|| JsonRecords::new(&src.header)),
            )
        },
        |(state, json), block, _| process_block(src, json, state, block, &visit),
        &|done| (opts.progress)(&label, done, src.size),
    )
    .map_err(|e| IngestError::Io {
        path: src.name.clone(),
        source: e,
    })?;
    let rows = absorb_blocks(blocks, src.first_line, rejects);
    rejects.check_strict(opts.strict, since)?;
    Ok((states.into_iter().map(|(s, _)| s).collect(), rows))
}

/// Visit every record of `src` in order on the calling thread (e.g. inside a database
/// transaction). Rejections go to `rejects`.
pub fn scan_seq(
    mut src: Source,
    opts: &LoadOptions<'_>,
    mut visit: impl FnMut(&Source, &Record<'_>) -> Result<(), Rejection>,
    rejects: &mut Rejects,
) -> Result<u64, IngestError> {
    let since = rejects.rows.len();
    let reader = std::mem::replace(&mut src.reader, Box::new(std::io::empty()));
    let label = format!("reading {}", src.name);
    let mut blocks =
        crate::chunk::BlockReader::new(reader, DEFAULT_BLOCK, src.format == Format::Csv);
    let mut json = (src.format == Format::Jsonl).then(|| JsonRecords::new(&src.header));
    let mut buf = Vec::new();
    let mut line = src.first_line;
    let mut rows = 0;
    let io = |e| IngestError::Io {
        path: src.name.clone(),
        source: e,
    };
    while blocks.next_block(&mut buf).map_err(io)? {
        (opts.progress)(&label, blocks.total, src.size);
        let cell = std::cell::RefCell::new(&mut visit);
        let f = |_: &mut (), s: &Source, r: &Record<'_>| (cell.borrow_mut())(s, r);
        let (lines, (n, bad)) = process_block(&src, &mut json, &mut (), &buf, &f);
        rows += n;
        for mut r in bad {
            r.line += line;
            rejects.rows.push(r);
        }
        line += lines;
    }
    rejects.check_strict(opts.strict, since)?;
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// Field helpers

fn text<'a>(
    src: &Source,
    rec: &Record<'a>,
    col: Option<usize>,
    name: &str,
) -> Result<&'a str, Rejection> {
    match col {
        None => Ok(""),
        Some(c) => rec
            .str(c)
            .map_err(|_| reject(&src.name, rec, name, "not valid UTF-8")),
    }
}

/// [`text`] when the caller has already checked that the record's bytes are UTF-8.
#[inline]
fn text_v<'a>(
    src: &Source,
    rec: &Record<'a>,
    col: Option<usize>,
    name: &str,
    valid_utf8: bool,
) -> Result<&'a str, Rejection> {
    if !valid_utf8 {
        return text(src, rec, col, name);
    }
    let b = col.map(|c| rec.get(c).trim_ascii()).unwrap_or(b"");
    // SAFETY: the caller checked that the whole block is UTF-8, and fields are cut (and
    // trimmed) only at ASCII bytes, which never fall inside a multi-byte character.
    Ok(unsafe { std::str::from_utf8_unchecked(b) })
}

fn number(
    src: &Source,
    rec: &Record<'_>,
    col: Option<usize>,
    name: &str,
) -> Result<Option<f64>, Rejection> {
    number_v(src, rec, col, name, false)
}

fn number_v(
    src: &Source,
    rec: &Record<'_>,
    col: Option<usize>,
    name: &str,
    valid_utf8: bool,
) -> Result<Option<f64>, Rejection> {
    let t = text_v(src, rec, col, name, valid_utf8)?;
    if t.is_empty() {
        return Ok(None);
    }
    parse_number(t)
        .map(Some)
        .ok_or_else(|| reject(&src.name, rec, name, format!("not a number: {t:?}")))
}

/// A finite number; plain integers (the usual case) exactly, without the general float parser.
#[inline]
fn parse_number(t: &str) -> Option<f64> {
    if !t.is_empty() && t.len() <= 15 && t.bytes().all(|b| b.is_ascii_digit()) {
        return Some(t.bytes().fold(0u64, |n, b| n * 10 + (b - b'0') as u64) as f64);
    }
    t.parse::<f64>().ok().filter(|v| v.is_finite())
}

fn instant(
    src: &Source,
    rec: &Record<'_>,
    col: Option<usize>,
    name: &str,
    required: bool,
) -> Result<Option<Instant>, Rejection> {
    let raw = col.map(|c| rec.get(c).trim_ascii()).unwrap_or(b"");
    if raw.is_empty() {
        return if required {
            Err(reject(&src.name, rec, name, format!("missing {name}")))
        } else {
            Ok(None)
        };
    }
    abm_core::time::parse_bytes(raw).map(Some).ok_or_else(|| {
        reject(
            &src.name,
            rec,
            name,
            format!(
                "not a date or timestamp: {:?} (expected YYYY-MM-DD or RFC 3339)",
                String::from_utf8_lossy(raw)
            ),
        )
    })
}

// ---------------------------------------------------------------------------------------------
// Accounts

/// account_id → index: open addressing with linear probing; each 32-byte slot holds the full
/// hash, the index and (for ids up to 16 bytes) the id itself, so a lookup usually touches one
/// cache line. Longer ids live in an arena.
pub struct IdIndex {
    slots: Vec<Slot>,
    arena: Vec<u8>,
    len: usize,
    hasher: foldhash::fast::FixedState,
}

#[derive(Clone, Copy)]
#[repr(C, align(32))]
struct Slot {
    hash: u64,
    idx: u32,
    /// id length + 1; 0 = empty.
    len: u32,
    /// The id when ≤ 16 bytes, else its arena offset in the first 8 bytes.
    key: [u8; 16],
}

const EMPTY: Slot = Slot {
    hash: 0,
    idx: 0,
    len: 0,
    key: [0; 16],
};
const INLINE: usize = 16;

impl Default for IdIndex {
    fn default() -> Self {
        IdIndex::with_capacity(0)
    }
}

impl IdIndex {
    pub fn with_capacity(n: usize) -> IdIndex {
        let cap = (n.max(8) * 2).next_power_of_two();
        IdIndex {
            slots: crate::mem::huge_vec(cap, EMPTY),
            arena: Vec::new(),
            len: 0,
            hasher: foldhash::fast::FixedState::with_seed(0x5eed_ab11),
        }
    }

    #[inline]
    pub fn hash(&self, id: &[u8]) -> u64 {
        self.hasher.hash_one(id)
    }

    #[inline]
    fn key_eq(&self, s: &Slot, id: &[u8]) -> bool {
        if s.len as usize != id.len() + 1 {
            return false;
        }
        if id.len() <= INLINE {
            &s.key[..id.len()] == id
        } else {
            let off = u64::from_le_bytes(s.key[..8].try_into().expect("8 bytes")) as usize;
            &self.arena[off..off + id.len()] == id
        }
    }

    /// Hint the CPU to fetch the slot for `hash` (used by the batched bulk fold).
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        let i = hash as usize & (self.slots.len() - 1);
        prefetch(&self.slots[i] as *const Slot as *const u8);
    }

    #[inline]
    pub fn get_hashed(&self, hash: u64, id: &[u8]) -> Option<AccountIdx> {
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let s = &self.slots[i];
            if s.len == 0 {
                return None;
            }
            if s.hash == hash && self.key_eq(s, id) {
                return Some(s.idx);
            }
            i = (i + 1) & mask;
        }
    }

    #[inline]
    pub fn get(&self, id: &[u8]) -> Option<AccountIdx> {
        self.get_hashed(self.hash(id), id)
    }

    /// Lookup of an id given zero-padded to 32 bytes: ids of up to 16 bytes compare as one
    /// 128-bit word against the slot's inline key.
    #[inline]
    pub fn get_padded(&self, hash: u64, padded: &[u8; 32], len: usize) -> Option<AccountIdx> {
        if len > INLINE {
            return self.get_hashed(hash, &padded[..len]);
        }
        let want = u128::from_ne_bytes(padded[..16].try_into().expect("16 bytes"));
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let s = &self.slots[i];
            if s.len == 0 {
                return None;
            }
            if s.hash == hash && s.len as usize == len + 1 && u128::from_ne_bytes(s.key) == want {
                return Some(s.idx);
            }
            i = (i + 1) & mask;
        }
    }

    /// Insert; `Err(existing)` when the id is already there.
    pub fn insert(&mut self, id: &[u8], idx: AccountIdx) -> Result<(), AccountIdx> {
        self.insert_hashed(self.hash(id), id, idx)
    }

    /// [`Self::insert`] with `hash == self.hash(id)` already computed.
    pub fn insert_hashed(
        &mut self,
        hash: u64,
        id: &[u8],
        idx: AccountIdx,
    ) -> Result<(), AccountIdx> {
        debug_assert_eq!(hash, self.hash(id));
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let s = &self.slots[i];
            if s.len == 0 {
                break;
            }
            if s.hash == hash && self.key_eq(s, id) {
                return Err(s.idx);
            }
            i = (i + 1) & mask;
        }
        let mut key = [0u8; 16];
        if id.len() <= INLINE {
            key[..id.len()].copy_from_slice(id);
        } else {
            key[..8].copy_from_slice(&(self.arena.len() as u64).to_le_bytes());
            self.arena.extend_from_slice(id);
        }
        self.slots[i] = Slot {
            hash,
            idx,
            len: id.len() as u32 + 1,
            key,
        };
        self.len += 1;
        Ok(())
    }

    fn grow(&mut self) {
        let cap = (self.slots.len() * 2).max(16);
        let old = std::mem::replace(&mut self.slots, crate::mem::huge_vec(cap, EMPTY));
        let mask = self.slots.len() - 1;
        for s in old.into_iter().filter(|s| s.len != 0) {
            let mut i = s.hash as usize & mask;
            while self.slots[i].len != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = s;
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[inline(always)]
pub fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

pub struct Accounts {
    pub table: AccountTable,
    pub index: IdIndex,
    pub rows: u64,
}

/// How an accounts source maps onto the account table.
pub struct AccountLayout {
    pub schema: AccountSchema,
    /// Source column of each schema column.
    pub cols: Vec<Option<usize>>,
    employees: Option<usize>,
    annual_revenue: Option<usize>,
    icp_score: Option<usize>,
    icp_tier: Option<usize>,
    founded_year: Option<usize>,
}

impl AccountLayout {
    /// The standard columns the source has, then its custom fields.
    pub fn of(src: &Source) -> AccountLayout {
        let p: &Projection = &src.projection;
        let canon = FileKind::Accounts.canonical();
        let mut names = vec![];
        let mut cols = vec![];
        for (slot, name) in canon.iter().enumerate() {
            if p.slots[slot].is_some() || *name == "account_id" {
                names.push(name.to_string());
                cols.push(p.slots[slot]);
            }
        }
        for (c, name) in &p.extras {
            if !names.contains(name) {
                names.push(name.clone());
                cols.push(Some(*c));
            }
        }
        let slot = |n: &str| p.slots[canon.iter().position(|c| *c == n).expect("canonical")];
        AccountLayout {
            schema: AccountSchema::new(names),
            cols,
            employees: slot("employees"),
            annual_revenue: slot("annual_revenue"),
            icp_score: slot("icp_score"),
            icp_tier: slot("icp_tier"),
            founded_year: slot("founded_year"),
        }
    }

    /// Parse one account row into `values` (schema order) and its firmographics.
    pub fn parse<'a>(
        &self,
        src: &Source,
        rec: &Record<'a>,
        values: &mut Vec<&'a str>,
    ) -> Result<Firmographics, Rejection> {
        self.parse_v(src, rec, values, false)
    }

    /// [`Self::parse`]; `valid_utf8`: the record's bytes are known to be UTF-8.
    pub fn parse_v<'a>(
        &self,
        src: &Source,
        rec: &Record<'a>,
        values: &mut Vec<&'a str>,
        valid_utf8: bool,
    ) -> Result<Firmographics, Rejection> {
        let v = valid_utf8;
        values.clear();
        for (i, c) in self.cols.iter().enumerate() {
            values.push(text_v(src, rec, *c, &self.schema.columns()[i], v)?);
        }
        if values[0].is_empty() {
            return Err(reject(&src.name, rec, "account_id", "missing account_id"));
        }
        let employees = number_v(src, rec, self.employees, "employees", v)?;
        let annual_revenue = number_v(src, rec, self.annual_revenue, "annual_revenue", v)?;
        let icp_score = number_v(src, rec, self.icp_score, "icp_score", v)?;
        if let Some(s) = icp_score {
            if !(0.0..=100.0).contains(&s) {
                return Err(reject(
                    &src.name,
                    rec,
                    "icp_score",
                    format!("icp_score {s} is outside 0–100"),
                ));
            }
        }
        let tier_text = text_v(src, rec, self.icp_tier, "icp_tier", v)?;
        let icp_tier = if tier_text.is_empty() {
            None
        } else {
            Some(Tier::parse(tier_text).ok_or_else(|| {
                reject(
                    &src.name,
                    rec,
                    "icp_tier",
                    format!("not a tier (A–E): {tier_text:?}"),
                )
            })?)
        };
        let fy = text_v(src, rec, self.founded_year, "founded_year", v)?;
        let founded_year = if fy.is_empty() {
            None
        } else {
            Some(fy.parse::<i32>().map_err(|_| {
                reject(
                    &src.name,
                    rec,
                    "founded_year",
                    format!("not a year: {fy:?}"),
                )
            })?)
        };
        Ok(Firmographics {
            employees,
            annual_revenue,
            icp_score,
            icp_tier,
            founded_year,
        })
    }
}

/// Load accounts: blocks are parsed on all workers into partial tables, then merged in file
/// order on this thread (where duplicates are detected and the id index is built).
pub fn load_accounts(
    path: &Path,
    opts: &LoadOptions<'_>,
    rejects: &mut Rejects,
) -> Result<Accounts, IngestError> {
    let mut src = opts.open(path, FileKind::Accounts)?;
    let since = rejects.rows.len();
    let layout = AccountLayout::of(&src);
    let input = src.take_input();
    let label = format!("reading {}", src.name);
    let src = &src;
    let (_, blocks) = par_blocks_input(
        input,
        opts.threads,
        DEFAULT_BLOCK,
        src.format == Format::Csv,
        || (src.format == Format::Jsonl).then(|| JsonRecords::new(&src.header)),
        |json, block, _| {
            let mut part = AccountTable::new(layout.schema.clone());
            let mut rows = 0u64;
            let mut vals: Vec<&str> = Vec::with_capacity(layout.cols.len());
            // One UTF-8 check for the whole block instead of one per field.
            let valid_utf8 = src.format == Format::Csv
                && (block.is_ascii() || std::str::from_utf8(block).is_ok());
            let bad = std::cell::RefCell::new(Vec::new());
            let (lines, unterminated) = for_each_in_block(
                src.format,
                json,
                block,
                0,
                |rec| {
                    rows += 1;
                    let mut v = std::mem::take(&mut vals);
                    match fields_ok(src, rec)
                        .and_then(|_| layout.parse_v(src, rec, &mut v, valid_utf8))
                    {
                        Ok(firmo) => {
                            part.push(v.iter().copied(), &firmo, rec.line);
                        }
                        Err(r) => bad.borrow_mut().push(r),
                    }
                    v.clear();
                    // Reuse the allocation (its borrowed contents are gone).
                    vals = v.into_iter().map(|_| "").collect();
                },
                |line, col, msg, raw| {
                    bad.borrow_mut()
                        .push(json_rejection(src, line, col, msg, raw))
                },
            );
            let mut bad = bad.into_inner();
            if let Some(line) = unterminated {
                bad.push(unterminated_rejection(src, line));
            }
            (lines, (part, rows, bad))
        },
        &|done| (opts.progress)(&label, done, src.size),
    )
    .map_err(|e| IngestError::Io {
        path: src.name.clone(),
        source: e,
    })?;
    // Number every block's lines from the file's start.
    let mut blocks = blocks;
    let mut line = src.first_line;
    for b in blocks.iter_mut() {
        b.value.0.shift_lines(line);
        for r in b.value.2.iter_mut() {
            r.line += line;
        }
        line += b.lines;
    }
    let rows: u64 = blocks.iter().map(|b| b.value.1).sum();
    if let Some((table, index)) = merge_unique(&layout.schema, &blocks) {
        for b in blocks {
            let mut bad = b.value.2;
            bad.sort_by_key(|r| r.line);
            rejects.rows.extend(bad);
        }
        rejects.check_strict(opts.strict, since)?;
        return Ok(Accounts { table, index, rows });
    }
    // Duplicates: merge in file order on this thread; the first occurrence wins.
    let total: usize = blocks.iter().map(|b| b.value.0.len()).sum();
    let text: usize = blocks.iter().map(|b| b.value.0.text_bytes()).sum();
    let mut table = AccountTable::new(layout.schema.clone());
    table.reserve(total, text);
    let mut index = IdIndex::with_capacity(total);
    let mut keep = Vec::new();
    for b in blocks {
        let (part, _, mut bad) = b.value;
        keep.clear();
        let mut hashes = [0u64; 64];
        for (k, a) in part.iter().enumerate() {
            if k % 64 == 0 {
                prefetch_ids(&index, &part, k, &mut hashes);
            }
            let idx = (table.len() + keep.len()) as AccountIdx;
            match index.insert_hashed(hashes[k % 64], a.id().as_bytes(), idx) {
                Ok(()) => keep.push(a.idx()),
                Err(first) => {
                    let first_line = if (first as usize) < table.len() {
                        table.get(first).line()
                    } else {
                        part.get(keep[first as usize - table.len()]).line()
                    };
                    let mut record = Vec::new();
                    crate::output::csv_line(&mut record, (0..a.schema().len()).map(|c| a.value(c)));
                    bad.push(Rejection {
                        file: src.name.clone(),
                        line: a.line(),
                        column: "account_id".into(),
                        reason: format!(
                            "duplicate account_id {:?} (first at line {first_line})",
                            a.id()
                        ),
                        record: String::from_utf8_lossy(&record).trim_end().to_string(),
                    });
                }
            }
        }
        if keep.len() == part.len() {
            table.append(&part);
        } else {
            for &k in &keep {
                let a = part.get(k);
                table.push(
                    (0..a.schema().len()).map(|c| a.value(c)),
                    &a.firmographics(),
                    a.line(),
                );
            }
        }
        bad.sort_by_key(|r| r.line);
        rejects.rows.extend(bad);
    }
    rejects.check_strict(opts.strict, since)?;
    Ok(Accounts { table, index, rows })
}

type AccountBlock = crate::chunk::Block<(AccountTable, u64, Vec<Rejection>)>;

/// Hash the ids of rows `k..k + 64` of `part` into `hashes` and prefetch their index slots, so
/// the inserts that follow hit the cache.
fn prefetch_ids(index: &IdIndex, part: &AccountTable, k: usize, hashes: &mut [u64; 64]) {
    for (j, h) in hashes
        .iter_mut()
        .enumerate()
        .take(part.len().saturating_sub(k))
    {
        *h = index.hash(part.get((k + j) as AccountIdx).id().as_bytes());
        index.prefetch(*h);
    }
}

/// The usual case, no duplicate ids: the id index is built on one thread while the partial
/// tables are concatenated on this one. `None` at the first duplicate (the caller then merges
/// in order, rejecting the later occurrences).
fn merge_unique(
    schema: &AccountSchema,
    blocks: &[AccountBlock],
) -> Option<(AccountTable, IdIndex)> {
    let total: usize = blocks.iter().map(|b| b.value.0.len()).sum();
    let text: usize = blocks.iter().map(|b| b.value.0.text_bytes()).sum();
    std::thread::scope(|s| {
        let index_job = s.spawn(|| {
            let mut index = IdIndex::with_capacity(total);
            let mut next: AccountIdx = 0;
            let mut hashes = [0u64; 64];
            for b in blocks {
                let part = &b.value.0;
                for k in 0..part.len() {
                    if k % 64 == 0 {
                        prefetch_ids(&index, part, k, &mut hashes);
                    }
                    let id = part.get(k as AccountIdx).id().as_bytes();
                    index.insert_hashed(hashes[k % 64], id, next).ok()?;
                    next += 1;
                }
            }
            Some(index)
        });
        let mut table = AccountTable::new(schema.clone());
        table.reserve(total, text);
        for b in blocks {
            table.append(&b.value.0);
        }
        let index = index_job.join().expect("index builder panicked")?;
        Some((table, index))
    })
}

// ---------------------------------------------------------------------------------------------
// Engagement

/// Resolved columns of an engagement file.
#[derive(Clone, Copy)]
pub struct EventCols {
    pub account_id: usize,
    pub occurred_at: usize,
    pub type_: usize,
    pub contact_id: Option<usize>,
    pub event_id: Option<usize>,
    pub detail: Option<usize>,
}

impl EventCols {
    pub fn of(p: &Projection) -> EventCols {
        EventCols {
            account_id: p.slots[0].expect("required"),
            occurred_at: p.slots[1].expect("required"),
            type_: p.slots[2].expect("required"),
            contact_id: p.slots[3],
            event_id: p.slots[4],
            detail: p.slots[5],
        }
    }
}

/// One valid engagement row.
pub struct EventRow<'a> {
    pub account: AccountIdx,
    pub code: Code,
    pub at: Instant,
    pub contact: &'a [u8],
}

/// Validate one engagement record: account_id, occurred_at, type, known account.
#[inline]
pub fn parse_event<'a>(
    src: &Source,
    rec: &Record<'a>,
    c: &EventCols,
    rules: &Rules,
    index: &IdIndex,
) -> Result<EventRow<'a>, Rejection> {
    let id = rec.get(c.account_id).trim_ascii();
    if id.is_empty() {
        return Err(reject(&src.name, rec, "account_id", "missing account_id"));
    }
    let at = instant(src, rec, Some(c.occurred_at), "occurred_at", true)?.expect("required");
    let ty = rec.get(c.type_).trim_ascii();
    let code = rules.events.lookup(ty).ok_or_else(|| {
        reject(
            &src.name,
            rec,
            "type",
            format!(
                "unknown event type {:?} (add it to engagement.high/medium/low/demotion_signals in abm.toml)",
                String::from_utf8_lossy(ty)
            ),
        )
    })?;
    let account = index.get(id).ok_or_else(|| {
        reject(
            &src.name,
            rec,
            "account_id",
            format!(
                "unknown account {:?} (not in the accounts file)",
                String::from_utf8_lossy(id)
            ),
        )
    })?;
    let contact = c.contact_id.map(|i| rec.get(i).trim_ascii()).unwrap_or(b"");
    Ok(EventRow {
        account,
        code,
        at,
        contact,
    })
}

/// The engagement file folded into per-account state.
pub struct EngagementFold {
    pub states: Vec<EngagementState>,
    /// Demotion-signal events, any date (the assessment filters by window and floor).
    pub signals: Vec<Signal>,
    pub rows: u64,
    pub after_as_of: u64,
}

struct FoldWorker {
    states: Vec<EngagementState>,
    signals: Vec<Signal>,
    after_as_of: u64,
    json: Option<JsonRecords>,
    /// The lookup pipeline: being filled, index slots prefetched, states prefetched.
    batch: Vec<Pending>,
    looked: Vec<Pending>,
    ready: Vec<Ready>,
    lean: LeanSink,
    /// Records that need the generic scanner (quotes, odd field counts).
    scanner: crate::csv::Scanner,
}

/// A parsed event waiting for its account lookup (batched so lookups overlap in memory).
#[derive(Clone, Copy)]
struct Pending {
    hash: u64,
    at: Instant,
    contact: u64,
    line: u64,
    raw: (u32, u32),
    code: Code,
    id_len: u8,
    id: [u8; MAX_BATCHED_ID],
}

/// A looked-up event whose state line is being prefetched.
#[derive(Clone, Copy)]
struct Ready {
    at: Instant,
    contact: u64,
    idx: AccountIdx,
    code: Code,
}

const MAX_BATCHED_ID: usize = 32;
const BATCH: usize = 64;

struct FoldCtx<'a> {
    src: &'a Source,
    cols: EventCols,
    rules: &'a Rules,
    index: &'a IdIndex,
    floors: Option<&'a [Instant]>,
    /// Only events that can change what is read afterwards touch the per-account state:
    /// with no floors and no inactivity clocks (the stateless `segment`), an event after
    /// `as_of` is only counted, a demotion signal only listed, and an engagement event older
    /// than its type's window changes nothing.
    lean: bool,
}

/// Where the lean fold puts the effect of events that skip the state.
#[derive(Default)]
struct LeanSink {
    signals: Vec<Signal>,
    after_as_of: u64,
}

/// Whether the event needs the account's state; if not, its whole effect goes to `sink`.
#[inline]
fn settle_lean(
    sink: &mut LeanSink,
    rules: &Rules,
    idx: AccountIdx,
    code: Code,
    at: Instant,
) -> bool {
    if at > rules.as_of {
        sink.after_as_of += 1;
        return false;
    }
    match rules.event_class[code as usize] {
        abm_core::model::EventClass::DemotionSignal => {
            sink.signals.push(Signal {
                account: idx,
                code,
                at,
            });
            false
        }
        abm_core::model::EventClass::Engagement(_) => at >= rules.event_from[code as usize],
    }
}

impl FoldWorker {
    #[inline]
    fn apply(&mut self, ctx: &FoldCtx<'_>, idx: AccountIdx, code: Code, at: Instant, contact: u64) {
        let floor = ctx.floors.map(|f| f[idx as usize]).unwrap_or(Instant::MIN);
        match self.states[idx as usize].observe_hashed(ctx.rules, code, at, contact, floor) {
            Verdict::Signal { .. } => self.signals.push(Signal {
                account: idx,
                code,
                at,
            }),
            Verdict::AfterAsOf => self.after_as_of += 1,
            _ => {}
        }
    }

    /// One pipeline step, when a batch is full: fold the states looked up one step ago (their
    /// lines were prefetched then), look up the ids queued one step ago (their index slots were
    /// prefetched then) and prefetch the states that will change, and prefetch the index slots of
    /// the batch just filled. Every access to the big random-access tables thus has a whole
    /// batch of parsing between its prefetch and its use.
    fn step(&mut self, ctx: &FoldCtx<'_>, block: &[u8], bad: &mut Vec<Rejection>) {
        let mut ready = std::mem::take(&mut self.ready);
        for p in &ready {
            self.apply(ctx, p.idx, p.code, p.at, p.contact);
        }
        ready.clear();
        for p in &self.looked {
            match ctx.index.get_padded(p.hash, &p.id, p.id_len as usize) {
                Some(idx) => {
                    if ctx.lean && !settle_lean(&mut self.lean, ctx.rules, idx, p.code, p.at) {
                        continue;
                    }
                    prefetch(&self.states[idx as usize] as *const EngagementState as *const u8);
                    ready.push(Ready {
                        at: p.at,
                        contact: p.contact,
                        idx,
                        code: p.code,
                    });
                }
                None => {
                    let raw = &block[p.raw.0 as usize..(p.raw.0 + p.raw.1) as usize];
                    let rec = Record::new(p.line, raw, &[], raw);
                    bad.push(unknown_account(ctx.src, &rec, &p.id[..p.id_len as usize]));
                }
            }
        }
        self.ready = ready;
        self.looked.clear();
        std::mem::swap(&mut self.looked, &mut self.batch);
    }

    /// Drain the pipeline (at the end of a block: rejections point into it).
    fn flush(&mut self, ctx: &FoldCtx<'_>, block: &[u8], bad: &mut Vec<Rejection>) {
        for _ in 0..3 {
            self.step(ctx, block, bad);
        }
    }

    /// Queue one valid event for the batched lookup (or look it up now when its id is long).
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn queue(
        &mut self,
        ctx: &FoldCtx<'_>,
        block: &[u8],
        id: &[u8],
        at: Instant,
        code: Code,
        contact: u64,
        line: u64,
        raw: (usize, usize),
        bad: &mut Vec<Rejection>,
    ) -> Result<(), Rejection> {
        let hash = ctx.index.hash(id);
        if id.len() > MAX_BATCHED_ID || raw.0 + raw.1 > block.len() || raw.1 > u32::MAX as usize {
            let idx = ctx.index.get_hashed(hash, id).ok_or_else(|| {
                let r = &block[raw.0.min(block.len())..(raw.0 + raw.1).min(block.len())];
                unknown_account(ctx.src, &Record::new(line, r, &[], r), id)
            })?;
            if !ctx.lean || settle_lean(&mut self.lean, ctx.rules, idx, code, at) {
                self.apply(ctx, idx, code, at, contact);
            }
            return Ok(());
        }
        // Prefetched now, used one batch later: the misses overlap with parsing.
        ctx.index.prefetch(hash);
        let mut buf = [0u8; MAX_BATCHED_ID];
        buf[..id.len()].copy_from_slice(id);
        self.batch.push(Pending {
            hash,
            at,
            contact,
            line,
            raw: (raw.0 as u32, raw.1 as u32),
            code,
            id_len: id.len() as u8,
            id: buf,
        });
        if self.batch.len() == BATCH {
            self.step(ctx, block, bad);
        }
        Ok(())
    }

    /// The generic path: one scanned record (CSV with quotes, JSON Lines, odd rows).
    fn event(
        &mut self,
        ctx: &FoldCtx<'_>,
        block: &[u8],
        rec: &Record<'_>,
        bad: &mut Vec<Rejection>,
    ) -> Result<(), Rejection> {
        fields_ok(ctx.src, rec)?;
        let c = &ctx.cols;
        let id = rec.get(c.account_id).trim_ascii();
        if id.is_empty() {
            return Err(reject(
                &ctx.src.name,
                rec,
                "account_id",
                "missing account_id",
            ));
        }
        let at =
            instant(ctx.src, rec, Some(c.occurred_at), "occurred_at", true)?.expect("required");
        let code = event_code(ctx.src, rec, c, ctx.rules)?;
        let contact = c
            .contact_id
            .map(|i| rec.get(i).trim_ascii())
            .filter(|c| !c.is_empty())
            .map(contact_hash)
            .unwrap_or(0);
        let raw_off = (rec.raw.as_ptr() as usize).wrapping_sub(block.as_ptr() as usize);
        self.queue(
            ctx,
            block,
            id,
            at,
            code,
            contact,
            rec.line,
            (raw_off, rec.raw.len()),
            bad,
        )
    }

    /// Queue the event whose fields are at `bounds` (byte ranges into `block`, in header
    /// order) when every field is valid; `false` (nothing done) sends the row to the generic
    /// path, which words the rejection.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn fast_event(
        &mut self,
        ctx: &FoldCtx<'_>,
        block: &[u8],
        bounds: &[(u32, u32); MAX_FAST_COLS],
        line: u64,
        raw: (usize, usize),
        bad: &mut Vec<Rejection>,
    ) -> bool {
        let c = ctx.cols;
        let field = |i: usize| {
            let (s, e) = bounds[i];
            block[s as usize..e as usize].trim_ascii()
        };
        let id = field(c.account_id);
        let at = abm_core::time::parse_bytes(field(c.occurred_at));
        let code = ctx.rules.events.lookup(field(c.type_));
        let (false, Some(at), Some(code)) = (id.is_empty(), at, code) else {
            return false;
        };
        let contact = match c.contact_id.map(field) {
            Some(v) if !v.is_empty() => contact_hash(v),
            _ => 0,
        };
        if let Err(r) = self.queue(ctx, block, id, at, code, contact, line, raw, bad) {
            bad.push(r);
        }
        true
    }

    /// Fold one JSON Lines block. A flat object whose values are all plain strings (no
    /// escapes) or `null` is read in place; any other line goes through `serde_json`
    /// ([`JsonRecords`]) and [`Self::event`], as before.
    fn jsonl_block(&mut self, ctx: &FoldCtx<'_>, block: &[u8]) -> (u64, (u64, Vec<Rejection>)) {
        let mut bad = Vec::new();
        let mut json = self.json.take().expect("JSON recordizer");
        let mut bounds = [(0u32, 0u32); MAX_FAST_COLS];
        // serde_json rejects invalid UTF-8; one check per block lets the fast path skip it.
        let valid_utf8 = (block.is_ascii() || std::str::from_utf8(block).is_ok())
            && block.len() <= u32::MAX as usize;
        let header = &ctx.src.header;
        let (mut pos, mut line, mut rows) = (0usize, 0u64, 0u64);
        while pos < block.len() {
            let (end, next) = match memchr::memchr(b'\n', &block[pos..]) {
                Some(i) => (pos + i, pos + i + 1),
                None => (block.len(), block.len()),
            };
            let l = &block[pos..end];
            if !l.trim_ascii().is_empty() {
                let fast = valid_utf8
                    && plain_json_fields(l, pos, header, &mut bounds)
                    && self.fast_event(ctx, block, &bounds, line, (pos, end - pos), &mut bad);
                if fast {
                    rows += 1;
                } else {
                    match json.parse(line, l) {
                        Ok(rec) => {
                            rows += 1;
                            if let Err(r) = self.event(ctx, block, &rec, &mut bad) {
                                bad.push(r);
                            }
                        }
                        Err((col, msg)) => {
                            bad.push(json_rejection(ctx.src, line, col, msg, l));
                        }
                    }
                }
            }
            line += (next > end) as u64;
            pos = next;
        }
        self.json = Some(json);
        self.flush(ctx, block, &mut bad);
        bad.sort_by_key(|r| r.line);
        (line, (rows, bad))
    }

    /// Fold one CSV block. Plain rows (no quotes, the header's field count, every field
    /// valid) are split once with SSE2 and never become a [`Record`]; any other row goes
    /// through the generic scanner and [`Self::event`], which rejects it with the usual reason.
    fn csv_block(&mut self, ctx: &FoldCtx<'_>, block: &[u8]) -> (u64, (u64, Vec<Rejection>)) {
        let mut bad = Vec::new();
        let ncols = ctx.src.header.len();
        let mut bounds = [(0u32, 0u32); MAX_FAST_COLS];
        let mut scanner = std::mem::take(&mut self.scanner);
        let (mut pos, mut line, mut rows) = (0usize, 0u64, 0u64);
        let mut unterminated = None;
        while pos < block.len() {
            if let Some((end, next)) = plain_fields(block, pos, ncols, &mut bounds) {
                if end == pos || (end == pos + 1 && block[pos] == b'\r') {
                    line += (next > end) as u64; // blank line
                    pos = next;
                    continue;
                }
                if self.fast_event(ctx, block, &bounds, line, (pos, next - pos), &mut bad) {
                    rows += 1;
                    line += (next > end) as u64;
                    pos = next;
                    continue;
                }
            }
            // The generic path, for this record only.
            let scanned = scanner.scan(block, pos, line, |rec| {
                rows += 1;
                if let Err(r) = self.event(ctx, block, rec, &mut bad) {
                    bad.push(r);
                }
            });
            match scanned {
                crate::csv::Scan::Record { end, newlines } => {
                    line += newlines;
                    pos = end;
                }
                crate::csv::Scan::Unterminated => {
                    unterminated = Some(line);
                    break;
                }
            }
        }
        self.scanner = scanner;
        self.flush(ctx, block, &mut bad);
        if let Some(line) = unterminated {
            bad.push(unterminated_rejection(ctx.src, line));
        }
        bad.sort_by_key(|r| r.line);
        (line, (rows, bad))
    }
}

/// Split the plain (quote-free) CSV line at `pos` into exactly `ncols` fields, as byte ranges
/// into `buf` (a trailing `\r` is not part of the last field). Returns `(end, next)`: where the
/// line's content ends (its `\n` or the buffer's end) and where the next line starts; `None`
/// when the line has a quote or another field count, so the generic scanner must take it.
#[inline]
fn plain_fields(
    buf: &[u8],
    pos: usize,
    ncols: usize,
    bounds: &mut [(u32, u32); MAX_FAST_COLS],
) -> Option<(usize, usize)> {
    if ncols > MAX_FAST_COLS || buf.len() > u32::MAX as usize {
        return None;
    }
    let mut n = 0usize;
    let mut start = pos;
    let mut i = pos;
    let end;
    loop {
        #[cfg(target_arch = "x86_64")]
        if i + 16 <= buf.len() {
            use std::arch::x86_64::*;
            // SAFETY: 16 bytes from `i` are in bounds (checked above); SSE2 is baseline on
            // x86_64.
            let (mc, stop) = unsafe {
                let v = _mm_loadu_si128(buf.as_ptr().add(i) as *const __m128i);
                let mc = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b',' as i8))) as u32;
                let mn = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\n' as i8))) as u32;
                let mq = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8))) as u32;
                (mc, mn | mq)
            };
            let mut m = if stop != 0 {
                mc & ((1u32 << stop.trailing_zeros()) - 1)
            } else {
                mc
            };
            while m != 0 {
                let at = i + m.trailing_zeros() as usize;
                if n + 1 >= ncols {
                    return None;
                }
                bounds[n] = (start as u32, at as u32);
                n += 1;
                start = at + 1;
                m &= m - 1;
            }
            if stop != 0 {
                let at = i + stop.trailing_zeros() as usize;
                if buf[at] == b'"' {
                    return None;
                }
                end = at;
                break;
            }
            i += 16;
            continue;
        }
        if i >= buf.len() {
            end = buf.len();
            break;
        }
        match buf[i] {
            b',' => {
                if n + 1 >= ncols {
                    return None;
                }
                bounds[n] = (start as u32, i as u32);
                n += 1;
                start = i + 1;
            }
            b'"' => return None,
            b'\n' => {
                end = i;
                break;
            }
            _ => {}
        }
        i += 1;
    }
    let next = if end < buf.len() { end + 1 } else { end };
    let content_end = if end > start && buf[end - 1] == b'\r' {
        end - 1
    } else {
        end
    };
    if n + 1 != ncols {
        // A blank line is reported as such (no fields needed).
        return (end == pos || (end == pos + 1 && buf[pos] == b'\r')).then_some((end, next));
    }
    bounds[n] = (start as u32, content_end as u32);
    Some((end, next))
}

fn unknown_account(src: &Source, rec: &Record<'_>, id: &[u8]) -> Rejection {
    reject(
        &src.name,
        rec,
        "account_id",
        format!(
            "unknown account {:?} (not in the accounts file)",
            String::from_utf8_lossy(id)
        ),
    )
}

fn event_code(
    src: &Source,
    rec: &Record<'_>,
    c: &EventCols,
    rules: &Rules,
) -> Result<Code, Rejection> {
    let ty = rec.get(c.type_).trim_ascii();
    rules.events.lookup(ty).ok_or_else(|| {
        reject(
            &src.name,
            rec,
            "type",
            format!(
                "unknown event type {:?} (add it to engagement.high/medium/low/demotion_signals in abm.toml)",
                String::from_utf8_lossy(ty)
            ),
        )
    })
}

/// Fold every engagement event into per-account state on all workers. `floors` (per account,
/// from the store) hides evidence from before each account's last demotion. `clocks`: keep the
/// inactivity clocks (`last_any`, `last_medium_plus`), which only movement rules over a prior
/// cluster read; without them (and without floors) events that cannot change the outcome skip
/// the state entirely.
pub fn fold_engagement(
    path: &Path,
    accounts: &Accounts,
    rules: &Rules,
    floors: Option<&[Instant]>,
    clocks: bool,
    opts: &LoadOptions<'_>,
    rejects: &mut Rejects,
) -> Result<EngagementFold, IngestError> {
    let mut src = opts.open(path, FileKind::Engagement)?;
    let since = rejects.rows.len();
    let input = src.take_input();
    let ctx = FoldCtx {
        src: &src,
        cols: EventCols::of(&src.projection),
        rules,
        index: &accounts.index,
        floors,
        lean: floors.is_none() && !clocks,
    };
    let n = accounts.table.len();
    let label = format!("reading {}", src.name);
    let new_worker = || FoldWorker {
        states: crate::mem::huge_vec(n, EngagementState::default()),
        signals: Vec::new(),
        after_as_of: 0,
        json: (src.format == Format::Jsonl).then(|| JsonRecords::new(&src.header)),
        batch: Vec::with_capacity(BATCH),
        looked: Vec::with_capacity(BATCH),
        ready: Vec::with_capacity(BATCH),
        lean: LeanSink::default(),
        scanner: Default::default(),
    };
    let (workers, blocks) = par_blocks_input(
        input,
        opts.threads,
        DEFAULT_BLOCK,
        src.format == Format::Csv,
        new_worker,
        |w: &mut FoldWorker, block, _| match src.format {
            Format::Csv => w.csv_block(&ctx, block),
            Format::Jsonl => w.jsonl_block(&ctx, block),
        },
        &|done| (opts.progress)(&label, done, src.size),
    )
    .map_err(|e| IngestError::Io {
        path: src.name.clone(),
        source: e,
    })?;
    let rows = absorb_blocks(blocks, src.first_line, rejects);
    rejects.check_strict(opts.strict, since)?;
    let mut it = workers.into_iter();
    let mut first = it.next().unwrap_or_else(new_worker);
    for w in it {
        for (a, b) in first.states.iter_mut().zip(&w.states) {
            if b.counted > 0 || b.last_any != Instant::MIN {
                a.merge(b, rules);
            }
        }
        first.signals.extend(w.signals);
        first.after_as_of += w.after_as_of;
        first.signals.extend(w.lean.signals);
        first.after_as_of += w.lean.after_as_of;
    }
    first.signals.append(&mut first.lean.signals);
    first.after_as_of += first.lean.after_as_of;
    first.signals.sort_by_key(|s| (s.account, s.at, s.code));
    Ok(EngagementFold {
        states: first.states,
        signals: first.signals,
        rows,
        after_as_of: first.after_as_of,
    })
}

// ---------------------------------------------------------------------------------------------
// Triggers and deals

/// Parse one trigger record.
pub fn parse_trigger(
    src: &Source,
    rec: &Record<'_>,
    rules: &Rules,
    index: &IdIndex,
) -> Result<Trigger, Rejection> {
    let p = &src.projection;
    let id = text(src, rec, p.slots[0], "account_id")?;
    if id.is_empty() {
        return Err(reject(&src.name, rec, "account_id", "missing account_id"));
    }
    let at = instant(src, rec, p.slots[1], "occurred_at", true)?.expect("required");
    let ty = text(src, rec, p.slots[2], "type")?;
    let code = rules.triggers.lookup(ty.as_bytes()).ok_or_else(|| {
        reject(
            &src.name,
            rec,
            "type",
            format!("unknown trigger type {ty:?} (add it to triggers.types in abm.toml)"),
        )
    })?;
    number(src, rec, p.slots[5], "strength")?;
    let account = index.get(id.as_bytes()).ok_or_else(|| {
        reject(
            &src.name,
            rec,
            "account_id",
            format!("unknown account {id:?} (not in the accounts file)"),
        )
    })?;
    Ok(Trigger {
        account,
        code,
        at,
        headline: text(src, rec, p.slots[4], "headline")?.to_string(),
    })
}

/// Parse one deal record.
pub fn parse_deal(src: &Source, rec: &Record<'_>, index: &IdIndex) -> Result<Deal, Rejection> {
    let p = &src.projection;
    let deal_id = text(src, rec, p.slots[0], "deal_id")?;
    if deal_id.is_empty() {
        return Err(reject(&src.name, rec, "deal_id", "missing deal_id"));
    }
    let id = text(src, rec, p.slots[1], "account_id")?;
    if id.is_empty() {
        return Err(reject(&src.name, rec, "account_id", "missing account_id"));
    }
    let stage = text(src, rec, p.slots[2], "stage")?;
    let amount = number(src, rec, p.slots[3], "amount")?;
    let created_at = instant(src, rec, p.slots[4], "created_at", true)?.expect("required");
    let closed_at = instant(src, rec, p.slots[5], "closed_at", false)?;
    let last_stage_change_at = instant(src, rec, p.slots[6], "last_stage_change_at", false)?;
    let o = text(src, rec, p.slots[7], "outcome")?;
    let outcome = DealOutcome::parse(o).ok_or_else(|| {
        reject(
            &src.name,
            rec,
            "outcome",
            format!("outcome must be open, won or lost, not {o:?}"),
        )
    })?;
    let account = index.get(id.as_bytes()).ok_or_else(|| {
        reject(
            &src.name,
            rec,
            "account_id",
            format!("unknown account {id:?} (not in the accounts file)"),
        )
    })?;
    Ok(Deal {
        account,
        deal_id: deal_id.to_string(),
        stage: stage.to_string(),
        amount,
        created_at,
        closed_at,
        last_stage_change_at,
        outcome,
    })
}

/// Load triggers. With `window_only`, only those that can count for this `as_of` are kept.
pub fn load_triggers(
    path: &Path,
    accounts: &Accounts,
    rules: &Rules,
    window_only: bool,
    opts: &LoadOptions<'_>,
    rejects: &mut Rejects,
) -> Result<(Vec<Trigger>, u64), IngestError> {
    let src = opts.open(path, FileKind::Triggers)?;
    let (parts, rows) = scan(
        src,
        opts,
        opts.threads,
        Vec::new,
        |out: &mut Vec<Trigger>, src, rec| {
            let t = parse_trigger(src, rec, rules, &accounts.index)?;
            if !window_only || (t.at >= rules.trigger_from && t.at <= rules.as_of) {
                out.push(t);
            }
            Ok(())
        },
        rejects,
    )?;
    let mut all: Vec<Trigger> = parts.into_iter().flatten().collect();
    all.sort_by(|a, b| {
        a.account
            .cmp(&b.account)
            .then(b.at.cmp(&a.at))
            .then(a.code.cmp(&b.code))
    });
    Ok((all, rows))
}

pub fn load_deals(
    path: &Path,
    accounts: &Accounts,
    opts: &LoadOptions<'_>,
    rejects: &mut Rejects,
) -> Result<(Vec<Deal>, u64), IngestError> {
    let src = opts.open(path, FileKind::Deals)?;
    let mut all = Vec::new();
    let rows = scan_seq(
        src,
        opts,
        |src, rec| {
            all.push(parse_deal(src, rec, &accounts.index)?);
            Ok(())
        },
        rejects,
    )?;
    all.sort_by(|a, b| a.account.cmp(&b.account).then(a.deal_id.cmp(&b.deal_id)));
    Ok((all, rows))
}

/// Items sorted by account, with each account's range.
pub struct ByAccount<T> {
    pub items: Vec<T>,
    starts: Vec<u32>,
}

impl<T> ByAccount<T> {
    /// `items` must be sorted by `key`.
    pub fn new(items: Vec<T>, n_accounts: usize, key: impl Fn(&T) -> AccountIdx) -> ByAccount<T> {
        let mut starts = vec![0u32; n_accounts + 1];
        for it in &items {
            starts[key(it) as usize + 1] += 1;
        }
        for i in 0..n_accounts {
            starts[i + 1] += starts[i];
        }
        ByAccount { items, starts }
    }

    pub fn of(&self, a: AccountIdx) -> &[T] {
        &self.items[self.starts[a as usize] as usize..self.starts[a as usize + 1] as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csv::for_each_record;

    const LONG: &str = "ACCOUNT-WITH-A-VERY-LONG-IDENTIFIER-0001";

    fn accounts_file(dir: &Path) -> std::path::PathBuf {
        let p = dir.join("accounts.csv");
        let mut s = String::from("account_id,name,icp_tier\n");
        for i in 1..=6 {
            s.push_str(&format!("A{i},Company {i},B\n"));
        }
        s.push_str(&format!("{LONG},Long,A\n"));
        std::fs::write(&p, s).unwrap();
        p
    }

    /// Rows that each exercise one branch of the plain-row fast path or its fallback.
    fn engagement_text() -> String {
        let mut s = String::from("account_id,occurred_at,type,contact_id\n");
        let rows = [
            "A1,2026-10-20T10:00:00,demo,c1",
            "A1,2026-10-21T10:00:00Z,meeting,c2",
            "A1,2026-10-22,email_open,",
            " A2 , 2026-10-20T10:00:00 , website_visit , c9 ",
            "\"A2\",2026-10-25T08:00:00,\"content_download\",\"c,8\"",
            "A2,2026-10-26T08:00:00,webinar_attended,\"multi",
            "line contact\"",
            "",
            "A3,2026-12-01T00:00:00,demo,c1",
            "A3,2026-01-01T00:00:00,demo,c1",
            "A3,2026-06-01T00:00:00,website_visit,c1",
            "A3,2026-10-30T00:00:00,champion_left,c1",
            "A3,2025-10-30T00:00:00,no_priority,",
            "A4,2026-10-20T10:00:00,demo",
            "A4,2026-10-20T10:00:00,demo,c1,extra",
            "A4,2026-13-20T10:00:00,demo,c1",
            "A4,2026-10-20T10:00:00,dance,c1",
            ",2026-10-20T10:00:00,demo,c1",
            "ZZ,2026-10-20T10:00:00,demo,c1",
            &format!("{LONG},2026-10-28T10:00:00,budget_expressed,c5"),
            "NOT-A-KNOWN-ACCOUNT-WITH-A-VERY-LONG-IDENTIFIER,2026-10-28T10:00:00,demo,c5",
            "A5,2026-10-28T10:00:00+02:00,email_reply,c1\r",
            "\r",
            "A6,2026-10-29T10:00:00.5,ad_click,c3",
        ];
        for r in rows {
            s.push_str(r);
            s.push('\n');
        }
        s.push_str("A6,2026-10-30T10:00:00,ad_click,c4"); // no final newline
        s
    }

    /// States, signals, events after as_of, rejections as (line, column).
    type Folded = (Vec<EngagementState>, Vec<Signal>, u64, Vec<(u64, String)>);

    /// The reference: every record through the generic scanner and the detailed `observe`.
    fn reference(src: &Source, text: &[u8], accounts: &Accounts, rules: &Rules) -> Folded {
        let cols = EventCols::of(&src.projection);
        let mut states = vec![EngagementState::default(); accounts.table.len()];
        let (mut signals, mut after, mut bad) = (Vec::new(), 0, Vec::new());
        let body = &text[src.data_offset as usize..];
        for_each_record(body, src.first_line, |rec| {
            let ev = fields_ok(src, rec)
                .and_then(|_| parse_event(src, rec, &cols, rules, &accounts.index));
            match ev {
                Ok(e) => {
                    let st = &mut states[e.account as usize];
                    match st.observe(rules, e.code, e.at, e.contact, Instant::MIN) {
                        Verdict::Signal { .. } => signals.push(Signal {
                            account: e.account,
                            code: e.code,
                            at: e.at,
                        }),
                        Verdict::AfterAsOf => after += 1,
                        _ => {}
                    }
                }
                Err(r) => bad.push((r.line, r.column)),
            }
        });
        signals.sort_by_key(|s| (s.account, s.at, s.code));
        (states, signals, after, bad)
    }

    #[test]
    fn fast_jsonl_fold_matches_serde_json_row_for_row() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::default();
        let rules = Rules::compile(&cfg, Instant::parse("2026-11-01T00:00:00Z").unwrap()).unwrap();
        let acc_path = accounts_file(dir.path());
        let eng = dir.path().join("engagement.jsonl");
        let text = [
            r#"{"account_id":"A1","occurred_at":"2026-10-20T10:00:00","type":"demo","contact_id":"c1"}"#,
            r#"{"account_id":"A1","occurred_at":"2026-10-21T10:00:00Z","type":"meeting","contact_id":null}"#,
            r#"{ "type": "email_open", "account_id": "A2", "occurred_at": "2026-10-22" }"#,
            r#"{"account_id":"A2","occurred_at":"2026-10-25T08:00:00","type":"content_download"}"#,
            r#"{"account_id":"A3","occurred_at":"2026-12-01T00:00:00","type":"demo","contact_id":7}"#,
            r#"{"account_id":"A3","occurred_at":"2026-10-30T00:00:00","type":"champion_left"}"#,
            r#"{"account_id":"A4","occurred_at":"2026-13-20T10:00:00","type":"demo"}"#,
            r#"{"account_id":"A4","occurred_at":"2026-10-20T10:00:00","type":"dance"}"#,
            r#"{"account_id":"ZZ","occurred_at":"2026-10-20T10:00:00","type":"demo"}"#,
            r#"{"account_id":"A5","occurred_at":"2026-10-20T10:00:00","type":"demo""#,
            "",
            r#"{"account_id":"A6","occurred_at":"2026-10-29T10:00:00.5","type":"ad_click","contact_id":"c3","x":{"y":1}}"#,
            r#"{"account_id":"A6","occurred_at":"2026-10-30T10:00:00","type":"ad_click","contact_id":"c4"}"#,
        ]
        .join("\n");
        std::fs::write(&eng, &text).unwrap();
        let mut opts = LoadOptions::new(&cfg);
        opts.threads = 2;
        let mut rejects = Rejects::default();
        let accounts = load_accounts(&acc_path, &opts, &mut rejects).unwrap();
        let src = opts.open(&eng, FileKind::Engagement).unwrap();
        // The reference: serde_json for every line, then the detailed `observe`.
        let cols = EventCols::of(&src.projection);
        let mut json = JsonRecords::new(&src.header);
        let mut want = vec![EngagementState::default(); accounts.table.len()];
        let (mut want_bad, mut want_signals) = (Vec::new(), Vec::new());
        for (i, l) in text.split('\n').enumerate() {
            let line = src.first_line + i as u64;
            if l.trim().is_empty() {
                continue;
            }
            let ev = match json.parse(line, l.as_bytes()) {
                Ok(rec) => parse_event(&src, &rec, &cols, &rules, &accounts.index)
                    .map(|e| (e.account, e.code, e.at, e.contact.to_vec()))
                    .map_err(|r| (r.line, r.column)),
                Err((col, _)) => Err((line, format!("char {col}"))),
            };
            match ev {
                Ok((a, code, at, contact)) => {
                    let v = want[a as usize].observe(&rules, code, at, &contact, Instant::MIN);
                    if let Verdict::Signal { .. } = v {
                        want_signals.push(Signal {
                            account: a,
                            code,
                            at,
                        });
                    }
                }
                Err(b) => want_bad.push(b),
            }
        }
        let mut rejects = Rejects::default();
        let f = fold_engagement(&eng, &accounts, &rules, None, true, &opts, &mut rejects).unwrap();
        let got_bad: Vec<(u64, String)> = rejects
            .rows
            .iter()
            .map(|r| (r.line, r.column.clone()))
            .collect();
        assert_eq!(got_bad, want_bad);
        assert_eq!(want_bad.len(), 4, "{want_bad:?}");
        assert_eq!(f.signals, want_signals);
        assert_eq!(f.after_as_of, 1);
        assert_eq!(f.states, want);
    }

    #[test]
    fn number_fast_path_agrees_with_the_float_parser() {
        for t in [
            "0",
            "007",
            "42",
            "999999999999999",
            "1000000000000000",
            "12345678901234567890",
            "-5",
            "+5",
            "1.5",
            "1e3",
            "inf",
            "NaN",
            " 1",
            "1_000",
            "",
            "abc",
        ] {
            assert_eq!(
                parse_number(t),
                t.parse::<f64>().ok().filter(|v| v.is_finite()),
                "{t:?}"
            );
        }
    }

    #[test]
    fn fast_csv_fold_matches_the_generic_path_row_for_row() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::default();
        let rules = Rules::compile(&cfg, Instant::parse("2026-11-01T00:00:00Z").unwrap()).unwrap();
        let acc_path = accounts_file(dir.path());
        let eng = dir.path().join("engagement.csv");
        let text = engagement_text();
        std::fs::write(&eng, &text).unwrap();
        for (threads, mmap) in [(1, true), (2, true), (1, false)] {
            // SAFETY-free toggle: the env var only selects mmap vs stream for this process's
            // tests, and both must give the same answer.
            if mmap {
                std::env::remove_var("ABM_NO_MMAP");
            } else {
                std::env::set_var("ABM_NO_MMAP", "1");
            }
            let mut opts = LoadOptions::new(&cfg);
            opts.threads = threads;
            let mut rejects = Rejects::default();
            let accounts = load_accounts(&acc_path, &opts, &mut rejects).unwrap();
            assert!(rejects.is_empty());
            let src = opts.open(&eng, FileKind::Engagement).unwrap();
            let (want, want_signals, want_after, want_bad) =
                reference(&src, text.as_bytes(), &accounts, &rules);
            for clocks in [true, false] {
                let mut rejects = Rejects::default();
                let f = fold_engagement(&eng, &accounts, &rules, None, clocks, &opts, &mut rejects)
                    .unwrap();
                let got_bad: Vec<(u64, String)> = rejects
                    .rows
                    .iter()
                    .map(|r| (r.line, r.column.clone()))
                    .collect();
                assert_eq!(got_bad, want_bad, "threads {threads} clocks {clocks}");
                assert_eq!(f.signals, want_signals);
                assert_eq!(f.after_as_of, want_after);
                for (i, (g, w)) in f.states.iter().zip(&want).enumerate() {
                    if clocks {
                        assert_eq!(g, w, "account {i}");
                    } else {
                        // The lean fold keeps everything but the inactivity clocks.
                        let mut w = *w;
                        w.last_any = g.last_any;
                        w.last_medium_plus = g.last_medium_plus;
                        assert_eq!(g, &w, "account {i}");
                    }
                }
            }
            // Every kind of row was seen: counted events, a signal, late events, rejections.
            assert!(want.iter().any(|s| s.counted > 0));
            assert_eq!(want_signals.len(), 2);
            assert_eq!(want_after, 1);
            assert_eq!(want_bad.len(), 7, "{want_bad:?}");
        }
        std::env::remove_var("ABM_NO_MMAP");
    }
}
