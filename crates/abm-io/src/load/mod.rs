//! Loading the four inputs into the core's records. Every bad row becomes a [`Rejection`] with
//! file, line, column and reason; the other rows go on.

use crate::chunk::{par_blocks_input, Cuts, DEFAULT_BLOCK};
use crate::columns::{FileKind, Preset, Projection};
use crate::csv::Record;
pub use crate::fold::{fold_engagement, parse_event, EngagementFold, EventCols, EventRow};
pub use crate::ids::IdIndex;
use crate::source::{for_each_in_block, Format, InputSource, JsonRecords, Source};
use crate::IngestError;
use abm_core::account::{AccountIdx, AccountSchema, AccountTable, Firmographics};
use abm_core::engagement::{Deal, StageEntry, Trigger};
use abm_core::rules::Rules;
use abm_core::{Config, Instant, Tier};
use serde::Serialize;
use std::path::Path;

mod accounts;
mod signals;

pub use accounts::*;
pub use signals::*;

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
    /// The config's rules, already compiled (any as_of): a caller importing many small
    /// batches (a server) passes them so an import does not compile the config again.
    pub rules: Option<&'a abm_core::Rules>,
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
            rules: None,
        }
    }

    pub fn open(&self, path: &Path, kind: FileKind) -> Result<Source, IngestError> {
        self.open_input(&crate::source::InputSource::File(path.to_path_buf()), kind)
    }

    /// Open a file or in-memory input with the config's mapping for it (`[columns.files.STEM]`
    /// by the file's stem or the memory input's name, else the kind's mapping).
    pub fn open_input(
        &self,
        input: &crate::source::InputSource,
        kind: FileKind,
    ) -> Result<Source, IngestError> {
        let stem = input.stem();
        let mapping = match self.config.columns.files.get(&stem) {
            Some(m) => m,
            None => kind.mapping(&self.config.columns),
        };
        let mut src = Source::open_input(input, kind, mapping, self.preset)?;
        src.inputs = std::sync::Arc::new(crate::values::InputRules::of(self.config, kind, &stem));
        src.tuning = self.tuning;
        Ok(src)
    }
}

/// A rejection of `rec` in the input named `src`, at `column`.
pub fn reject(src: &str, rec: &Record<'_>, column: &str, reason: impl Into<String>) -> Rejection {
    Rejection {
        file: src.to_string(),
        line: rec.line,
        column: column.to_string(),
        reason: reason.into(),
        record: rec.raw_text(),
    }
}

/// The text of column `col` of `rec` (`""` when the input has no such column), or a rejection
/// naming `name` when it is not valid UTF-8.
pub fn field<'a>(
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

/// Blocks visited ahead of the calling thread by [`scan_handoff`]: enough to keep the helper
/// busy while the caller takes one, few enough to bound the memory held.
const HANDOFF_AHEAD: usize = 2;

/// Visit every record of `src` in order on a helper thread, and hand what the visitor emits
/// (into the `Vec` it is given) to `take` on the calling thread, in the order emitted.
///
/// For a caller whose own work on the records must stay on its thread (writes in a database
/// transaction): reading, parsing and whatever else the visitor does for a block overlap the
/// caller's work on the items of earlier blocks, on two cores instead of one. The visitor sees
/// exactly the records, line numbers and rejections [`scan_seq`] would show it; rejections go
/// to `rejects` in file order. Items are handed over a block at a time, once its visit ends.
pub fn scan_handoff<T: Send>(
    mut src: Source,
    opts: &LoadOptions<'_>,
    mut visit: impl FnMut(&Source, &Record<'_>, &mut Vec<T>) -> Result<(), Rejection> + Send,
    mut take: impl FnMut(T),
    rejects: &mut Rejects,
) -> Result<u64, IngestError> {
    let since = rejects.rows.len();
    let reader = std::mem::replace(&mut src.reader, Box::new(std::io::empty()));
    let label = format!("reading {}", src.name);
    let src = &src;
    /// One visited block: its items, rows and rejections.
    type Visited<T> = (Vec<T>, u64, Vec<Rejection>);
    let (send, receive) = std::sync::mpsc::sync_channel::<Visited<T>>(HANDOFF_AHEAD);
    let (read, rows) = std::thread::scope(|scope| {
        let helper = scope.spawn(move || -> std::io::Result<()> {
            let mut blocks =
                crate::chunk::BlockReader::new(reader, opts.block_size, src.format == Format::Csv);
            let mut json = (src.format == Format::Jsonl).then(|| JsonRecords::new(&src.header));
            let mut buf = Vec::new();
            let mut line = src.first_line;
            while blocks.next_block(&mut buf)? {
                (opts.progress)(&label, blocks.total, src.size);
                let items = std::cell::RefCell::new(Vec::new());
                let cell = std::cell::RefCell::new(&mut visit);
                let f = |_: &mut (), s: &Source, r: &Record<'_>| {
                    (cell.borrow_mut())(s, r, &mut items.borrow_mut())
                };
                let (lines, (n, bad)) = process_block(src, &mut json, &mut (), &buf, line, &f);
                line += lines;
                if send.send((items.into_inner(), n, bad)).is_err() {
                    // The caller stopped taking (a panic): nothing more to do.
                    break;
                }
            }
            Ok(())
        });
        let mut rows = 0;
        for (items, n, bad) in receive {
            items.into_iter().for_each(&mut take);
            rows += n;
            rejects.rows.extend(bad);
        }
        let read = helper
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (read, rows)
    });
    read.map_err(|e| IngestError::Io {
        path: src.name.clone(),
        source: e,
    })?;
    rejects.check_strict(opts.strict, since)?;
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// Field helpers

pub(crate) fn text<'a>(
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
pub(crate) fn text_v<'a>(
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

pub(crate) fn number(
    src: &Source,
    rec: &Record<'_>,
    col: Option<usize>,
    name: &str,
) -> Result<Option<f64>, Rejection> {
    number_v(src, rec, col, name, false)
}

pub(crate) fn number_v(
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
pub(crate) fn parse_number(t: &str) -> Option<f64> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `scan_handoff` visits the records `scan_seq` visits, in the same order and with the
    /// same lines, rejects the same rows the same way, and hands every item emitted over in
    /// order — over many blocks (a tiny block size), a quoted field spanning a line break,
    /// rows with too few fields and rows the visitor rejects.
    #[test]
    fn a_handoff_scan_sees_what_a_sequential_scan_sees() {
        let mut text = String::from("account_id,occurred_at,type,contact_id\n");
        for i in 0..400 {
            match i % 37 {
                5 => text += &format!("A{i},2026-01-01,\"multi\nline\",c{i}\n"),
                11 => text += &format!("A{i},short\n"),
                _ => text += &format!("A{i},2026-01-01,meeting,c{i}\n"),
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("engagement.csv");
        std::fs::write(&path, &text).unwrap();
        let cfg = Config::default();
        let mut opts = LoadOptions::new(&cfg);
        opts.block_size = 64;
        // The visitor: rejects every 13th row (by its id), else emits (line, id).
        let visit = |src: &Source, rec: &Record<'_>| -> Result<Option<(u64, String)>, Rejection> {
            let id = String::from_utf8_lossy(rec.get(0)).into_owned();
            let n: u32 = id[1..].parse().unwrap();
            if n.is_multiple_of(13) {
                return Err(reject(&src.name, rec, "account_id", "a multiple of 13"));
            }
            Ok(Some((rec.line, id)))
        };
        let summary = |r: &Rejects| -> Vec<(u64, String, String)> {
            r.rows
                .iter()
                .map(|r| (r.line, r.column.clone(), r.reason.clone()))
                .collect()
        };

        let (mut seq_items, mut seq_rejects) = (Vec::new(), Rejects::default());
        let src = opts.open(&path, FileKind::Engagement).unwrap();
        let seq_rows = scan_seq(
            src,
            &opts,
            |src, rec| {
                seq_items.extend(visit(src, rec)?);
                Ok(())
            },
            &mut seq_rejects,
        )
        .unwrap();

        let (mut items, mut rejects) = (Vec::new(), Rejects::default());
        let src = opts.open(&path, FileKind::Engagement).unwrap();
        let rows = scan_handoff(
            src,
            &opts,
            |src, rec, out| {
                out.extend(visit(src, rec)?);
                Ok(())
            },
            |item| items.push(item),
            &mut rejects,
        )
        .unwrap();

        assert_eq!(rows, seq_rows);
        assert_eq!(rows, 400);
        assert_eq!(items, seq_items);
        assert_eq!(summary(&rejects), summary(&seq_rejects));
        // Some of each: rows emitted, rows the visitor rejected, rows too short.
        assert!(items.len() > 300, "{}", items.len());
        assert!(rejects.rows.iter().any(|r| r.reason == "a multiple of 13"));
        assert!(rejects.rows.iter().any(|r| r.reason != "a multiple of 13"));
        // Lines are physical: the row after a quoted line break is two lines on.
        let after = items.iter().find(|(_, id)| id == "A6").unwrap();
        assert_eq!(after.0, 9, "header, A0..A4, A5 on lines 7-8, then A6");
    }

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
            let accounts = load_accounts(
                &crate::source::InputSource::File(p.to_path_buf()),
                &opts,
                &mut rejects,
            )
            .unwrap();
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
            let accounts = load_accounts(
                &crate::source::InputSource::File(p.to_path_buf()),
                &small,
                &mut rejects,
            )
            .unwrap();
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
        let accounts = load_accounts(
            &crate::source::InputSource::File(p.to_path_buf()),
            &opts,
            &mut rejects,
        )
        .unwrap();
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
        let accounts = load_accounts(
            &crate::source::InputSource::File(acc.to_path_buf()),
            &opts,
            &mut rejects,
        )
        .unwrap();
        let (d, rows) = load_deals(
            &crate::source::InputSource::File(deals.to_path_buf()),
            &accounts,
            &opts,
            &mut rejects,
        )
        .unwrap();
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
