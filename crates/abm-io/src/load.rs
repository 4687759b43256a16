//! Loading the four inputs into the core's records. Every bad row becomes a [`Rejection`] with
//! file, line, column and reason; the other rows go on.

use crate::chunk::{par_blocks_input, Cuts, DEFAULT_BLOCK};
use crate::columns::{FileKind, Preset, Projection};
use crate::csv::Record;
pub use crate::fold::{fold_engagement, parse_event, EngagementFold, EventCols, EventRow};
pub use crate::ids::IdIndex;
use crate::source::{for_each_in_block, Format, JsonRecords, Source};
use crate::IngestError;
use abm_core::account::{AccountIdx, AccountSchema, AccountTable, Firmographics};
use abm_core::engagement::{Deal, Trigger};
use abm_core::rules::Rules;
use abm_core::{Config, Instant, Tier};
use serde::Serialize;
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
    pub(crate) fn check_strict(&self, strict: bool, since: usize) -> Result<(), IngestError> {
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
    /// Bytes per block of parallel work (tests make it small to get many blocks).
    pub block_size: usize,
    /// How inputs are read (mapping, blocks) and outputs written.
    pub tuning: crate::Tuning,
}

impl<'a> LoadOptions<'a> {
    pub fn new(config: &'a Config) -> LoadOptions<'a> {
        LoadOptions {
            config,
            preset: None,
            threads: crate::chunk::default_threads(),
            strict: false,
            progress: &no_progress,
            block_size: DEFAULT_BLOCK,
            tuning: crate::Tuning::default(),
        }
    }

    pub fn open(&self, path: &Path, kind: FileKind) -> Result<Source, IngestError> {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mapping = match self.config.columns.files.get(&stem) {
            Some(m) => m,
            None => kind.mapping(&self.config.columns),
        };
        let mut src = Source::open(path, kind, mapping, self.preset)?;
        src.inputs = std::sync::Arc::new(crate::values::InputRules::of(self.config, kind, &stem));
        src.tuning = self.tuning;
        Ok(src)
    }
}

pub(crate) fn reject(
    src: &str,
    rec: &Record<'_>,
    column: &str,
    reason: impl Into<String>,
) -> Rejection {
    Rejection {
        file: src.to_string(),
        line: rec.line,
        column: column.to_string(),
        reason: reason.into(),
        record: rec.raw_text(),
    }
}

/// Check the field count and that no value holds a NUL byte (no backend stores one: the
/// same rule for `segment` and every database). Used by every loader's general path.
pub(crate) fn fields_ok(src: &Source, rec: &Record<'_>) -> Result<(), Rejection> {
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
    // One look at the record's text first: a NUL is there as a byte (CSV) or as the escape
    // `\u0000` (JSON); only then are the values searched, to name the column.
    let raw = rec.raw;
    let maybe = memchr::memchr(0, raw).is_some()
        || (src.format == Format::Jsonl
            && memchr::memchr(b'\\', raw).is_some()
            && memchr::memmem::find(raw, b"\\u0000").is_some());
    if !maybe {
        return Ok(());
    }
    if let Some(i) = (0..rec.len()).find(|&i| memchr::memchr(0, rec.get(i)).is_some()) {
        let column = src.header.get(i).map(String::as_str).unwrap_or("*");
        return Err(reject(
            &src.name,
            rec,
            column,
            "the value contains a NUL byte (\\u0000), which no output or database can hold",
        ));
    }
    Ok(())
}

/// The rejection for a JSON Lines row that does not parse.
pub(crate) fn json_rejection(
    src: &Source,
    line: u64,
    column: String,
    msg: String,
    raw: &[u8],
) -> Rejection {
    Rejection {
        file: src.name.clone(),
        line,
        column,
        reason: format!("invalid JSON: {msg}"),
        record: crate::csv::printable(String::from_utf8_lossy(raw).into_owned()),
    }
}

/// The rejection for a block that ends inside a quoted field: `rest` is the text from the
/// record's start to the end of the file, all swallowed by the open quote (one record).
pub(crate) fn unterminated_rejection(src: &Source, line: u64, rest: &[u8]) -> Rejection {
    let lines = crate::csv::physical_lines(rest);
    let first = &rest[..memchr::memchr(b'\n', rest).unwrap_or(rest.len())];
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    let mut record =
        crate::csv::printable(String::from_utf8_lossy(&first[..first.len().min(512)]).into_owned());
    if first.len() > 512 || lines > 1 {
        record.push_str(" …");
    }
    Rejection {
        file: src.name.clone(),
        line,
        column: "*".into(),
        reason: format!(
            "a quoted field opened in this record is never closed (unterminated quote): \
             its {lines} line(s), from this line to the end of the file, were read as one \
             record and rejected"
        ),
        record,
    }
}

/// Run one block through `visit`, numbering its lines from `first_line` (0 when the block's
/// place is not known yet: the lines are fixed up later). Every record counts as read, the
/// ones that do not parse too.
fn process_block<S>(
    src: &Source,
    json: &mut Option<JsonRecords>,
    state: &mut S,
    block: &[u8],
    first_line: u64,
    visit: &(impl Fn(&mut S, &Source, &Record<'_>) -> Result<(), Rejection> + ?Sized),
) -> (u64, (u64, Vec<Rejection>)) {
    let rows = std::cell::Cell::new(0u64);
    let bad = std::cell::RefCell::new(Vec::new());
    let (lines, unterminated) = for_each_in_block(
        src.format,
        json,
        block,
        first_line,
        |rec| {
            rows.set(rows.get() + 1);
            if let Err(r) = fields_ok(src, rec).and_then(|_| visit(state, src, rec)) {
                bad.borrow_mut().push(r);
            }
        },
        |line, col, msg, raw| {
            rows.set(rows.get() + 1);
            bad.borrow_mut()
                .push(json_rejection(src, line, col, msg, raw))
        },
    );
    let mut bad = bad.into_inner();
    if let Some((line, at)) = unterminated {
        rows.set(rows.get() + 1);
        bad.push(unterminated_rejection(src, line, &block[at..]));
    }
    (lines, (rows.get(), bad))
}

/// Sum the blocks' row counts and move their rejections (numbered from each block's start) to
/// absolute lines, in file order.
pub(crate) fn absorb_blocks(
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
    let mut input = src.take_input();
    let label = format!("reading {}", src.name);
    let src = &src;
    let (states, blocks) = par_blocks_input(
        &mut input,
        threads,
        opts.block_size,
        Cuts::exact(src.format == Format::Csv),
        || {
            (
                init(),
                (src.format == Format::Jsonl).then(|| JsonRecords::new(&src.header)),
            )
        },
        |(state, json), block, _| process_block(src, json, state, block, 0, &visit),
        |_| {},
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
        crate::chunk::BlockReader::new(reader, opts.block_size, src.format == Format::Csv);
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
        // Numbered from the block's place in the file: the visitor sees physical lines.
        let (lines, (n, bad)) = process_block(&src, &mut json, &mut (), &buf, line, &f);
        rows += n;
        rejects.rows.extend(bad);
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
    match parse_number(t) {
        Some(v) => Ok(Some(v)),
        None => crate::values::lenient_number(t)
            .map(Some)
            .map_err(|why| reject(&src.name, rec, name, why)),
    }
}

/// A finite number; plain integers (the usual case) exactly, without the general float parser.
#[inline]
fn parse_number(t: &str) -> Option<f64> {
    if !t.is_empty() && t.len() <= 15 && t.bytes().all(|b| b.is_ascii_digit()) {
        return Some(t.bytes().fold(0u64, |n, b| n * 10 + (b - b'0') as u64) as f64);
    }
    t.parse::<f64>().ok().filter(|v| v.is_finite())
}

pub(crate) fn instant(
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
    if let Some(at) = abm_core::time::parse_bytes(raw) {
        return Ok(Some(at));
    }
    let format = src
        .kind
        .canonical()
        .iter()
        .position(|c| *c == name)
        .and_then(|i| src.inputs.date_formats.get(i)?.as_deref());
    std::str::from_utf8(raw)
        .ok()
        .and_then(|t| crate::values::parse_date(t, format))
        .map(Some)
        .ok_or_else(|| {
            let expected = match format {
                Some(f) => format!("expected {f}, YYYY-MM-DD or RFC 3339"),
                None => "expected YYYY-MM-DD or RFC 3339, or set inputs.date_formats in abm.toml"
                    .to_string(),
            };
            reject(
                &src.name,
                rec,
                name,
                format!(
                    "not a date or timestamp: {:?} ({expected})",
                    String::from_utf8_lossy(raw)
                ),
            )
        })
}

// ---------------------------------------------------------------------------------------------
// Accounts

pub struct Accounts {
    pub table: AccountTable,
    pub index: IdIndex,
    pub rows: u64,
}

/// One block of a mapped accounts file as the text its accounts point into
/// ([`AccountTable::push_shared`]); it keeps the map alive.
#[derive(Debug)]
struct BlockText {
    map: std::sync::Arc<crate::mem::MappedFile>,
    range: std::ops::Range<usize>,
}

impl BlockText {
    /// `block` (a slice of `map` that has been checked to be UTF-8) as shared text; `None`
    /// when it is not a slice of the map.
    fn of(
        map: &std::sync::Arc<crate::mem::MappedFile>,
        block: &[u8],
    ) -> Option<std::sync::Arc<dyn abm_core::account::SharedText>> {
        let at = (block.as_ptr() as usize).wrapping_sub(map.bytes().as_ptr() as usize);
        let inside = at
            .checked_add(block.len())
            .is_some_and(|end| end <= map.bytes().len());
        inside.then(|| {
            std::sync::Arc::new(BlockText {
                map: map.clone(),
                range: at..at + block.len(),
            }) as std::sync::Arc<dyn abm_core::account::SharedText>
        })
    }
}

impl abm_core::account::SharedText for BlockText {
    fn text(&self) -> &str {
        // SAFETY: made only for blocks checked to be UTF-8 (`BlockText::of`'s caller), of a
        // read-only map that lives as long as `self`.
        unsafe { std::str::from_utf8_unchecked(&self.map.bytes()[self.range.clone()]) }
    }
}

/// The largest head count accepted (`employees`: a whole number from 0).
pub const MAX_EMPLOYEES: f64 = 1e8;
/// The founding years accepted.
pub const FOUNDED_YEARS: std::ops::RangeInclusive<i32> = 1600..=2100;

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
    /// The schema is the source's columns in order (schema column i is source column i).
    identity: bool,
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
        let identity =
            cols.len() == src.header.len() && cols.iter().enumerate().all(|(i, c)| *c == Some(i));
        AccountLayout {
            identity,
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

    /// The usual row read at once: when the schema is the source's columns in order and no
    /// field has spaces to trim, with an account id and plain numbers, tier and year, `Some`
    /// with the firmographics — what [`Self::parse_v`] gives — and, when the fields are their
    /// line's pieces between single commas (a CSV line without quotes), the line's value text
    /// for [`AccountTable::push_joined`]. `None` for any other row (the general path reads it
    /// and words any rejection). `valid_utf8`: the record's bytes are known to be UTF-8.
    #[inline]
    pub fn parse_plain<'a>(
        &self,
        rec: &Record<'a>,
        valid_utf8: bool,
    ) -> Option<(Firmographics, Option<&'a str>)> {
        let r = rec.ranges();
        let b = rec.bytes();
        if !valid_utf8 || !self.identity || r.len() != self.cols.len() || r.is_empty() {
            return None;
        }
        let (first, last) = (r[0].0, r[r.len() - 1].1);
        let mut ok = r[0].1 > first; // an account id
        let mut joined = true;
        let mut prev = first.wrapping_sub(1);
        for &(s, e) in r {
            joined &= s == prev.wrapping_add(1);
            if e > s {
                ok &= (b[s as usize] > b' ') & (b[e as usize - 1] > b' ');
            }
            prev = e;
        }
        if !ok {
            return None;
        }
        let field = |c: Option<usize>| match c {
            Some(c) => &b[r[c].0 as usize..r[c].1 as usize],
            None => &b""[..],
        };
        let digits = |f: &[u8], most: usize| {
            (f.len() <= most && f.iter().all(u8::is_ascii_digit))
                .then(|| f.iter().fold(0u64, |n, d| n * 10 + (d - b'0') as u64))
        };
        // Empty: no value; plain digits (as `parse_number` reads them): the value.
        let number = |c: Option<usize>| {
            let f = field(c);
            match f.is_empty() {
                true => Some(None),
                false => digits(f, 15).map(|v| Some(v as f64)),
            }
        };
        let employees = number(self.employees)?;
        if employees.is_some_and(|e| e > MAX_EMPLOYEES) {
            return None;
        }
        let annual_revenue = number(self.annual_revenue)?;
        let icp_score = number(self.icp_score)?;
        if icp_score.is_some_and(|s| s > 100.0) {
            return None;
        }
        let tier = field(self.icp_tier);
        let icp_tier = match tier.is_empty() {
            true => None,
            false => Some(Tier::parse(std::str::from_utf8(tier).ok()?)?),
        };
        let year = field(self.founded_year);
        let founded_year = match year.is_empty() {
            true => None,
            false => Some(digits(year, 9)? as i32),
        };
        if founded_year.is_some_and(|y| !FOUNDED_YEARS.contains(&y)) {
            return None;
        }
        // SAFETY: the record's bytes are UTF-8 (the caller's promise); the range starts and
        // ends at field boundaries, which are ASCII bytes.
        let joined = joined
            .then(|| unsafe { std::str::from_utf8_unchecked(&b[first as usize..last as usize]) });
        Some((
            Firmographics {
                employees,
                annual_revenue,
                icp_score,
                icp_tier,
                founded_year,
            },
            joined,
        ))
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
        if let Some(e) = employees {
            if !((0.0..=MAX_EMPLOYEES).contains(&e) && e.fract() == 0.0) {
                return Err(reject(
                    &src.name,
                    rec,
                    "employees",
                    format!("employees {e} is not a whole number from 0 to {MAX_EMPLOYEES}"),
                ));
            }
        }
        let annual_revenue = number_v(src, rec, self.annual_revenue, "annual_revenue", v)?;
        if let Some(r) = annual_revenue {
            if r < 0.0 {
                return Err(reject(
                    &src.name,
                    rec,
                    "annual_revenue",
                    format!("annual_revenue {r} is negative"),
                ));
            }
        }
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
            let y = fy.parse::<i32>().map_err(|_| {
                reject(
                    &src.name,
                    rec,
                    "founded_year",
                    format!("not a year: {fy:?}"),
                )
            })?;
            if !FOUNDED_YEARS.contains(&y) {
                return Err(reject(
                    &src.name,
                    rec,
                    "founded_year",
                    format!(
                        "founded_year {y} is outside {}–{}",
                        FOUNDED_YEARS.start(),
                        FOUNDED_YEARS.end()
                    ),
                ));
            }
            Some(y)
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
    let mut input = src.take_input();
    // A mapped file stays mapped for as long as the table: plain rows point into it instead
    // of copying their values (fresh memory is the dear part of loading; see BlockText).
    let map = match &mut input {
        crate::chunk::Input::Mapped { map, keep, .. } => {
            *keep = true;
            Some(map.clone())
        }
        crate::chunk::Input::Stream(_) => None,
    };
    let label = format!("reading {}", src.name);
    let src = &src;
    let (_, blocks) = par_blocks_input(
        &mut input,
        opts.threads,
        opts.block_size,
        Cuts::exact(src.format == Format::Csv),
        || (src.format == Format::Jsonl).then(|| JsonRecords::new(&src.header)),
        |json, block, _| {
            let mut part = AccountTable::new(layout.schema.clone());
            // Room reserved once for as many rows as the block can hold (a CSV row kept has a
            // byte per header field at least; a JSON row, a line) and for its bytes of values,
            // so the part is never copied as it grows: untouched capacity costs no memory.
            let most = match src.format {
                Format::Csv => block.len() / src.header.len().max(1) + 1,
                Format::Jsonl => memchr::memchr_iter(b'\n', block).count() + 1,
            };
            part.reserve(most, block.len());
            let rows = std::cell::Cell::new(0u64);
            let mut vals: Vec<&str> = Vec::with_capacity(layout.cols.len());
            // One UTF-8 check for the whole block instead of one per field. Then every record
            // is UTF-8: a CSV record's bytes are the block or the scanner's copy of a quoted
            // record's fields (pieces of the block cut at ASCII bytes); a JSON record's, the
            // block (lines read in place) or serde_json's rendering of its values (strings it
            // has checked, numbers and literals in ASCII).
            let valid_utf8 = block.is_ascii() || std::str::from_utf8(block).is_ok();
            // A block with a NUL byte takes the general path, which rejects the row.
            let plain = valid_utf8 && memchr::memchr(0, block).is_none();
            let shared = map
                .as_ref()
                .filter(|_| valid_utf8)
                .and_then(|m| BlockText::of(m, block));
            let bad = std::cell::RefCell::new(Vec::new());
            let (lines, unterminated) = for_each_in_block(
                src.format,
                json,
                block,
                0,
                |rec| {
                    rows.set(rows.get() + 1);
                    // Values outside the block (a JSON record serde_json read) are checked
                    // for a NUL here; the block's own bytes were checked above.
                    let at = (rec.bytes().as_ptr() as usize).wrapping_sub(block.as_ptr() as usize);
                    let plain =
                        plain && (at <= block.len() || memchr::memchr(0, rec.bytes()).is_none());
                    match layout.parse_plain(rec, plain) {
                        Some((firmo, Some(joined))) => {
                            let first = rec.ranges()[0].0;
                            let ends = rec.ranges().iter().map(|&(_, e)| e - first);
                            let at =
                                (joined.as_ptr() as usize).wrapping_sub(block.as_ptr() as usize);
                            match &shared {
                                Some(text)
                                    if at
                                        .checked_add(joined.len())
                                        .is_some_and(|end| end <= block.len()) =>
                                {
                                    part.push_shared(text, at, ends, &firmo, rec.line)
                                }
                                _ => part.push_joined(joined, ends, &firmo, rec.line),
                            };
                            return;
                        }
                        Some((firmo, None)) => {
                            let b = rec.bytes();
                            // SAFETY: the record's bytes are UTF-8 (`valid_utf8`) and fields
                            // are cut at ASCII bytes.
                            let values = rec.ranges().iter().map(|&(s, e)| unsafe {
                                std::str::from_utf8_unchecked(&b[s as usize..e as usize])
                            });
                            part.push(values, &firmo, rec.line);
                            return;
                        }
                        None => {}
                    }
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
                    rows.set(rows.get() + 1);
                    bad.borrow_mut()
                        .push(json_rejection(src, line, col, msg, raw))
                },
            );
            let mut bad = bad.into_inner();
            if let Some((line, at)) = unterminated {
                rows.set(rows.get() + 1);
                bad.push(unterminated_rejection(src, line, &block[at..]));
            }
            (lines, (part, rows.get(), bad))
        },
        |_| {},
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
    if let Some(index) = unique_index(&blocks, opts.threads) {
        let mut table = AccountTable::new(layout.schema.clone());
        for b in blocks {
            let (part, _, mut bad) = b.value;
            table.append(part);
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
            table.append(part);
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

/// The usual case, no duplicate ids: the id index of the parsed blocks, in order (dense when
/// the ids allow). `None` at the first duplicate (the caller then merges in order, rejecting
/// the later occurrences).
fn unique_index(blocks: &[AccountBlock], threads: usize) -> Option<IdIndex> {
    let ids = |p: usize| blocks[p].value.0.iter().map(|a| a.id().as_bytes());
    if let Some(dense) = IdIndex::dense(blocks.len(), threads, ids) {
        return Some(dense);
    }
    let total: usize = blocks.iter().map(|b| b.value.0.len()).sum();
    let mut index = IdIndex::with_capacity(total);
    let mut next: AccountIdx = 0;
    let mut hashes = [0u64; 64];
    for b in blocks {
        let part = &b.value.0;
        for (k, a) in part.iter().enumerate() {
            if k % 64 == 0 {
                prefetch_ids(&index, part, k, &mut hashes);
            }
            index
                .insert_hashed(hashes[k % 64], a.id().as_bytes(), next)
                .ok()?;
            next += 1;
        }
    }
    Some(index)
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
    let t = checked_trigger(src, rec, rules, index)?;
    Ok(Trigger {
        account: t.account,
        code: t.code,
        at: t.at,
        headline: t.headline.to_string(),
    })
}

/// A valid trigger record, its headline still in the record (only the triggers kept need
/// their own copy).
pub struct CheckedTrigger<'a> {
    pub account: AccountIdx,
    pub code: abm_core::rules::Code,
    pub at: Instant,
    pub headline: &'a str,
}

/// Validate one trigger record (what [`parse_trigger`] checks, in the same order).
pub fn checked_trigger<'a>(
    src: &Source,
    rec: &Record<'a>,
    rules: &Rules,
    index: &IdIndex,
) -> Result<CheckedTrigger<'a>, Rejection> {
    let p = &src.projection;
    let id = text(src, rec, p.slots[0], "account_id")?;
    if id.is_empty() {
        return Err(reject(&src.name, rec, "account_id", "missing account_id"));
    }
    let at = instant(src, rec, p.slots[1], "occurred_at", true)?.expect("required");
    let ty = match &p.constants[2] {
        Some(c) => c.as_str(),
        None => text(src, rec, p.slots[2], "type")?,
    };
    let code = crate::values::lookup_ci(&rules.triggers, ty).ok_or_else(|| {
        reject(
            &src.name,
            rec,
            "type",
            format!("unknown trigger type {ty:?} (add it to triggers.types in abm.toml)"),
        )
    })?;
    number(src, rec, p.slots[5], "strength")?;
    let account = index.get_listed(id.as_bytes()).ok_or_else(|| {
        reject(
            &src.name,
            rec,
            "account_id",
            format!("unknown account {id:?} (not in the accounts file)"),
        )
    })?;
    Ok(CheckedTrigger {
        account,
        code,
        at,
        headline: text(src, rec, p.slots[4], "headline")?,
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
    if let Some(a) = amount {
        if a < 0.0 {
            return Err(reject(
                &src.name,
                rec,
                "amount",
                format!("amount {a} is negative"),
            ));
        }
    }
    let created_at = instant(src, rec, p.slots[4], "created_at", true)?.expect("required");
    let closed_at = instant(src, rec, p.slots[5], "closed_at", false)?;
    let last_stage_change_at = instant(src, rec, p.slots[6], "last_stage_change_at", false)?;
    let value = |slot: usize, name: &str| -> Result<Option<&str>, Rejection> {
        match (&p.constants[slot], p.slots[slot]) {
            (Some(c), _) => Ok(Some(c.as_str())),
            (None, Some(c)) => text(src, rec, Some(c), name).map(Some),
            (None, None) => Ok(None),
        }
    };
    let stage = value(2, "stage")?.unwrap_or(stage);
    let outcome = src
        .inputs
        .deal_outcome(
            value(7, "outcome")?,
            value(11, "is_closed")?,
            value(12, "is_won")?,
            stage,
            value(10, "pipeline")?.unwrap_or(""),
        )
        .map_err(|why| {
            let col = match why.split_once(':') {
                Some((c, _)) if c.starts_with("is_") => c.to_string(),
                _ => "outcome".to_string(),
            };
            reject(&src.name, rec, &col, why)
        })?;
    let account = index.get_listed(id.as_bytes()).ok_or_else(|| {
        reject(
            &src.name,
            rec,
            "account_id",
            format!("unknown account {id:?} (not in the accounts file)"),
        )
    })?;
    let product = value(8, "product")?
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from);
    Ok(Deal {
        product,
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

/// The rejection of a `deal_id` seen before in the same file (at physical line `first`): the
/// first occurrence wins, in `segment` and `import` alike.
pub fn duplicate_deal(src: &Source, rec: &Record<'_>, deal_id: &str, first: u32) -> Rejection {
    reject(
        &src.name,
        rec,
        "deal_id",
        format!("duplicate deal_id {deal_id:?} (first at line {first})"),
    )
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
            let t = checked_trigger(src, rec, rules, &accounts.index)?;
            if !window_only || (t.at >= rules.trigger_from && t.at <= rules.as_of) {
                out.push(Trigger {
                    account: t.account,
                    code: t.code,
                    at: t.at,
                    headline: t.headline.to_string(),
                });
            }
            Ok(())
        },
        rejects,
    )?;
    let all: Vec<Trigger> = parts.into_iter().flatten().collect();
    // Newest first per account; ties keep file order.
    let all = sorted_by(all, |a, b| {
        (a.account, std::cmp::Reverse(a.at), a.code).cmp(&(
            b.account,
            std::cmp::Reverse(b.at),
            b.code,
        ))
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
    // deal_id → line of its first occurrence (a plain hash map: the id index's huge-page
    // tables cost more to grow than this small file's deals are worth).
    let mut seen: foldhash::HashMap<String, u32> = Default::default();
    let rows = scan_seq(
        src,
        opts,
        |src, rec| {
            let d = parse_deal(src, rec, &accounts.index)?;
            match seen.entry(d.deal_id.clone()) {
                std::collections::hash_map::Entry::Occupied(e) => {
                    return Err(duplicate_deal(src, rec, &d.deal_id, *e.get()));
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(rec.line as u32);
                }
            }
            all.push(d);
            Ok(())
        },
        rejects,
    )?;
    let all = sorted_by(all, |a, b| {
        (a.account, &a.deal_id).cmp(&(b.account, &b.deal_id))
    });
    Ok((all, rows))
}

/// `items` stably sorted by `cmp`: positions are sorted (ties by position), then the items
/// moved once into place, instead of moving whole items at every step of the sort.
fn sorted_by<T>(items: Vec<T>, cmp: impl Fn(&T, &T) -> std::cmp::Ordering) -> Vec<T> {
    let mut order: Vec<u32> = (0..items.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| cmp(&items[a as usize], &items[b as usize]).then(a.cmp(&b)));
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    order
        .into_iter()
        .map(|i| slots[i as usize].take().expect("each position once"))
        .collect()
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

    #[test]
    fn sorted_by_is_a_stable_sort() {
        let items: Vec<(u8, u32)> = (0..500u32).map(|i| ((i * 7 % 13) as u8, i)).collect();
        let mut want = items.clone();
        want.sort_by_key(|x| x.0);
        assert_eq!(sorted_by(items, |a, b| a.0.cmp(&b.0)), want);
    }

    /// What a test load gives: (values by column, firmographics, line) per account, and
    /// (line, column, reason) per rejection.
    type Loaded = (
        Vec<(Vec<(String, String)>, Firmographics, u64)>,
        Vec<(u64, String, String)>,
    );

    /// The plain-row fast path (`AccountLayout::parse_plain`, taken when the file's columns
    /// are in the standard order) reads every account, and rejects every row, exactly as the
    /// general path does (taken for the same rows with the columns in another order).
    #[test]
    fn plain_account_rows_read_as_the_general_path_reads_them() {
        // account_id … founded_year
        let header = &abm_core::account::STANDARD_COLUMNS[..10];
        assert_eq!(header[9], "founded_year");
        let rows: Vec<Vec<&str>> = [
            "A1|Acme|acme.example|software|250|1000000|US|88|A|1999",
            "A2|Acme, Inc.|acme.example|software|250|1000000|US|88|A|",
            "A3| Spaced |x.example|retail|10|5|GB|50||0123",
            "A4|Beta|||||||| ",
            "A5|Gamma|g.example|retail|1.5|1e6|DE|100|B|+1999",
            "A6|Delta|d.example|retail|12|34|FR|101|C|",
            "A7|Eps|e.example|retail|-3|34|FR|50|z|",
            "|NoId|n.example|retail|1|2|US|3|D|",
            "A9|Zeta|z.example|retail|1234567890123456|5|US|0|E|",
            "A10|Ünïcode|u.example|retail|7|8|SE|9|b|1900",
            "A12|Tab\there|t.example|retail|1|2|US|3|D|19x9",
            "A13|Trail |t.example|retail|1|2|US|3|D|1234567890",
            "A14|Quote \"q\"|q.example|retail|1|2|US|3|D|2001",
            "A15|Big|b.example|retail|999999999999999|2|US|99.5|D|2001",
            "A16|Nope|n.example|retail|x|2|US|3|D|2001",
            // The ranges' edges: employees 0..=10^8, founded_year 1600..=2100.
            "A17|Edge|e.example|retail|100000000|0|US|3|D|1600",
            "A18|Over|o.example|retail|100000001|0|US|3|D|2100",
            "A19|Old|o.example|retail|0|0|US|3|D|1599",
        ]
        .iter()
        .map(|r| r.split('|').collect())
        .collect();
        let csv_field = |f: &str| match f.contains([',', '"']) {
            true => format!("\"{}\"", f.replace('"', "\"\"")),
            false => f.to_string(),
        };
        // Standard order, and the same columns rotated (founded_year first).
        let render = |rotate: bool| {
            let line = |fields: Vec<String>| {
                let mut f = fields;
                if rotate {
                    f.rotate_right(1);
                }
                f.join(",")
            };
            let mut text = line(header.iter().map(|h| h.to_string()).collect()) + "\n";
            for r in &rows {
                text += &(line(r.iter().map(|f| csv_field(f)).collect()) + "\n");
            }
            text += "A99,Short,s.example\n";
            text
        };
        // The same rows as JSON Lines (keys in the header's order, or rotated).
        let render_json = |rotate: bool| {
            let mut text = String::new();
            for r in &rows {
                let mut pairs: Vec<String> = header
                    .iter()
                    .zip(r)
                    .map(|(h, v)| format!("{}:{}", serde_json::json!(h), serde_json::json!(v)))
                    .collect();
                if rotate {
                    pairs.rotate_right(1);
                }
                text += &format!("{{{}}}\n", pairs.join(","));
            }
            text += "{\"account_id\":\"A99\",\"employees\":\"x\"}\n";
            text
        };
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::default();
        let opts = LoadOptions::new(&cfg);
        let load = |rotate: bool, json: bool| {
            let ext = if json { "jsonl" } else { "csv" };
            let p = dir.path().join(format!("accounts-{rotate}.{ext}"));
            let text = if json {
                render_json(rotate)
            } else {
                render(rotate)
            };
            std::fs::write(&p, text).unwrap();
            let src = opts.open(&p, FileKind::Accounts).unwrap();
            assert_eq!(AccountLayout::of(&src).identity, !rotate);
            let mut rejects = Rejects::default();
            let accounts = load_accounts(&p, &opts, &mut rejects).unwrap();
            let read: Vec<_> = accounts
                .table
                .iter()
                .map(|a| {
                    let mut values: Vec<(String, String)> = header
                        .iter()
                        .map(|h| (h.to_string(), a.field(h).unwrap_or("?").to_string()))
                        .collect();
                    values.sort();
                    (values, a.firmographics(), a.line())
                })
                .collect();
            let rejected: Vec<_> = rejects
                .rows
                .iter()
                .map(|r| (r.line, r.column.clone(), r.reason.clone()))
                .collect();
            (read, rejected)
        };
        let (plain, general) = (load(false, false), load(true, false));
        // Many small blocks: many parts, each pointing into its own block of the map.
        let mut small = LoadOptions::new(&cfg);
        small.block_size = 100;
        {
            let p = dir.path().join("accounts-small-blocks.csv");
            std::fs::write(&p, render(false)).unwrap();
            let mut rejects = Rejects::default();
            let accounts = load_accounts(&p, &small, &mut rejects).unwrap();
            let ids: Vec<_> = accounts
                .table
                .iter()
                .map(|a| (a.id().to_string(), a.name().to_string(), a.line()))
                .collect();
            let want: Vec<_> = plain
                .0
                .iter()
                .map(|(v, _, l)| {
                    let get = |k: &str| v.iter().find(|(h, _)| h == k).unwrap().1.clone();
                    (get("account_id"), get("name"), *l)
                })
                .collect();
            assert_eq!(ids, want);
        }
        assert_eq!(plain.0.len(), 6, "accounts read: {:?}", plain.0);
        assert_eq!(plain.1.len(), 13, "rows rejected: {:?}", plain.1);
        let columns: Vec<&str> = plain.1.iter().map(|r| r.1.as_str()).collect();
        assert_eq!(
            columns,
            [
                "founded_year", // 0123
                "employees",    // 1.5
                "icp_score",
                "employees", // -3
                "account_id",
                "employees", // 10^15 + …
                "founded_year",
                "founded_year", // 1234567890
                "employees",    // 999999999999999
                "employees",
                "employees", // 10^8 + 1
                "founded_year",
                "*"
            ]
        );
        assert_eq!(plain, general);
        // JSON Lines: the same accounts (lines are numbered alike: no header line, one more
        // line before the CSV rows). Keys in order take the template; rotated, the key reader.
        let (json, rotated) = (load(false, true), load(true, true));
        assert_eq!(json, rotated);
        let shift = |(read, rejected): &Loaded| {
            let read: Vec<_> = read
                .iter()
                .map(|(v, f, l)| (v.clone(), *f, l + 1))
                .collect();
            let rejected: Vec<_> = rejected
                .iter()
                .map(|(l, c, _)| (l + 1, c.clone()))
                .collect();
            (read, rejected)
        };
        let csv_rejected: Vec<_> = plain.1.iter().map(|(l, c, _)| (*l, c.clone())).collect();
        assert_eq!(shift(&json).0, plain.0);
        // (the last rejection differs on purpose: a short CSV row, a bad JSON number)
        assert_eq!(shift(&json).1[..12], csv_rejected[..12]);
        assert_eq!(shift(&json).1[12], (20, "employees".to_string()));
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

    /// (accounts read, rejections as (line, column, reason)) for `text` as accounts file `name`.
    fn accounts_of(
        name: &str,
        text: &[u8],
        block: usize,
    ) -> (Accounts, Vec<(u64, String, String)>) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        let cfg = Config::default();
        let mut opts = LoadOptions::new(&cfg);
        opts.block_size = block;
        let mut rejects = Rejects::default();
        let accounts = load_accounts(&p, &opts, &mut rejects).unwrap();
        let bad = rejects
            .rows
            .iter()
            .map(|r| (r.line, r.column.clone(), r.reason.clone()))
            .collect();
        (accounts, bad)
    }

    fn ids(a: &Accounts) -> Vec<(String, u64)> {
        a.table
            .iter()
            .map(|a| (a.id().to_string(), a.line()))
            .collect()
    }

    /// Issue 11 #3: a file whose lines end with a bare CR (classic Mac) reads as LF lines.
    #[test]
    fn bare_cr_line_ends_are_line_ends() {
        let want = vec![("A1".to_string(), 2), ("A2".to_string(), 4)];
        for block in [DEFAULT_BLOCK, 16] {
            let (a, bad) = accounts_of(
                "accounts.csv",
                b"account_id,name,industry\rA1,X,software\r\r\"A2\",\"Y\ry\",software\r",
                block,
            );
            assert_eq!(ids(&a), want);
            assert_eq!(a.table.get(1).name(), "Y\ny");
            assert!(bad.is_empty(), "{bad:?}");
            assert_eq!(a.rows, 2);
            let (a, bad) = accounts_of(
                "accounts.jsonl",
                b"{\"account_id\":\"A1\"}\r\r{\"account_id\":\"A2\"}\r",
                block,
            );
            assert_eq!(ids(&a), vec![("A1".into(), 1), ("A2".into(), 3)]);
            assert!(bad.is_empty(), "{bad:?}");
        }
        // CRLF stays as it was: no extra blank lines.
        let (a, _) = accounts_of("accounts.csv", b"account_id\r\nA1\r\nA2\r\n", DEFAULT_BLOCK);
        assert_eq!(ids(&a), vec![("A1".into(), 2), ("A2".into(), 3)]);
    }

    /// Issue 11 #9: every physical record is counted as read, those that do not parse too;
    /// an unterminated quote is one record that says where it started and what it swallowed.
    #[test]
    fn unparsable_records_count_as_read() {
        let (a, bad) = accounts_of(
            "accounts.csv",
            b"account_id,name\nA1,x\nA2,\"open\nA3,y\nA4,z\n",
            DEFAULT_BLOCK,
        );
        assert_eq!(ids(&a), vec![("A1".into(), 2)]);
        assert_eq!(a.rows, 2);
        assert_eq!(bad.len(), 1);
        assert_eq!((bad[0].0, bad[0].1.as_str()), (3, "*"));
        assert!(bad[0].2.contains("its 3 line(s)"), "{}", bad[0].2);
        let (a, bad) = accounts_of(
            "accounts.jsonl",
            b"{\"account_id\":\"A1\"}\n{\"account_id\":\n{\"account_id\":\"A3\",\"name\":{\"x\":1}}\n",
            DEFAULT_BLOCK,
        );
        assert_eq!(a.rows, 3);
        assert_eq!(a.rows as usize, a.table.len() + bad.len());
    }

    /// Issue 11 #5 and the JSON rejections: a NUL byte (raw in CSV, `\u0000` in JSON) rejects
    /// its row naming the column; a repeated key and a value of the wrong kind name the key.
    #[test]
    fn nul_bytes_duplicate_keys_and_wrong_kinds_are_rejected_by_column() {
        let (a, bad) = accounts_of(
            "accounts.csv",
            b"account_id,name,industry\nA1,X\0Y,software\nA2,\"q\0\",software\nA3,Z,software\n",
            DEFAULT_BLOCK,
        );
        assert_eq!(ids(&a), vec![("A3".into(), 4)]);
        let cols: Vec<_> = bad.iter().map(|b| (b.0, b.1.as_str())).collect();
        assert_eq!(cols, [(2, "name"), (3, "name")]);
        assert!(bad[0].2.contains("NUL"));
        assert!(!bad[0].2.contains('\0'));
        let (a, bad) = accounts_of(
            "accounts.jsonl",
            concat!(
                "{\"account_id\":\"A1\",\"name\":\"x\",\"industry\":\"s\"}\n",
                "{\"account_id\":\"A2\",\"name\":\"x\\u0000\"}\n",
                "{\"account_id\":\"A3\",\"name\":\"x\",\"name\":\"y\"}\n",
                "{\"account_id\":\"A4\",\"industry\":[1,{\"a\":2}]}\n",
                "{\"account_id\":\"A5\",\"name\":{\"a\":2}}\n",
                "{\"account_id\":\"A6\"\n",
                "{\"account_id\":\"A7\",\"name\":\"x\\u0000\",\"industry\":\"s\"}\n",
            )
            .as_bytes(),
            DEFAULT_BLOCK,
        );
        assert_eq!(ids(&a), vec![("A1".into(), 1), ("A4".into(), 4)]);
        let cols: Vec<_> = bad.iter().map(|b| (b.0, b.1.as_str())).collect();
        assert_eq!(
            cols,
            [(2, "name"), (3, "name"), (5, "name"), (6, "*"), (7, "name")]
        );
        assert!(bad[1].2.contains("duplicate key \"name\""), "{}", bad[1].2);
        assert_eq!(a.rows, 7);
    }

    /// Issue 11 #10, #11: out-of-range amounts and repeated deal ids are rejected; the
    /// repeat names the physical line of the first.
    #[test]
    fn deals_out_of_range_and_repeated_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let acc = dir.path().join("accounts.csv");
        std::fs::write(&acc, "account_id\nA1\n").unwrap();
        let deals = dir.path().join("deals.csv");
        std::fs::write(
            &deals,
            "deal_id,account_id,stage,amount,created_at,outcome\n\
             D1,A1,s,10,2026-01-01,open\n\
             D2,A1,s,-10,2026-01-01,open\n\
             D1,A1,s,5,2026-01-01,won\n",
        )
        .unwrap();
        let cfg = Config::default();
        let mut opts = LoadOptions::new(&cfg);
        opts.block_size = 40;
        let mut rejects = Rejects::default();
        let accounts = load_accounts(&acc, &opts, &mut rejects).unwrap();
        let (d, rows) = load_deals(&deals, &accounts, &opts, &mut rejects).unwrap();
        assert_eq!((d.len(), rows), (1, 3));
        assert_eq!(d[0].amount, Some(10.0));
        let got: Vec<_> = rejects
            .rows
            .iter()
            .map(|r| (r.line, r.column.as_str(), r.reason.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (3, "amount", "amount -10 is negative"),
                (4, "deal_id", "duplicate deal_id \"D1\" (first at line 2)")
            ]
        );
    }
}
