//! The output formats of SPEC §4.7, written atomically (temp file + rename): a failed run
//! leaves the previous outputs in place.

use crate::load::Rejection;
use abm_core::summary::{CapacityStatus, ClusterCounts};
use serde::Serialize;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

pub const ASSIGNMENT_COLUMNS: &[&str] = &[
    "account_id",
    "name",
    "icp_score",
    "tier",
    "engagement_level",
    "has_triggers",
    "cluster",
    "previous_cluster",
    "movement",
    "promotion_triggers",
    "program_type",
    "micro_segment",
    "next_action",
    "checkpoint",
    "rationale",
];

/// serde's rendering of `icp_score`: what [`json_number`] writes.
fn score_as_number<S: serde::Serializer>(v: &&str, s: S) -> Result<S::Ok, S::Error> {
    let mut out = Vec::new();
    json_number(&mut out, v);
    let value: serde_json::Value =
        serde_json::from_slice(&out).map_err(serde::ser::Error::custom)?;
    serde::Serialize::serialize(&value, s)
}

/// One row of `cluster_assignments.{csv,jsonl}`, in SPEC §4.7's value formats.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AssignmentRow<'a> {
    pub account_id: &'a str,
    pub name: &'a str,
    /// `85`, `72.5`; a JSON number in JSON Lines.
    #[serde(serialize_with = "score_as_number")]
    pub icp_score: &'a str,
    pub tier: &'a str,
    pub engagement_level: &'a str,
    pub has_triggers: bool,
    pub cluster: &'a str,
    /// Empty in stateless output.
    pub previous_cluster: &'a str,
    /// Empty in stateless output.
    pub movement: &'a str,
    /// `type@RFC3339;…`, newest first.
    pub promotion_triggers: &'a str,
    pub program_type: &'a str,
    pub micro_segment: &'a str,
    pub next_action: &'a str,
    /// Checkpoint kind(s) open for this account, `;`-separated.
    pub checkpoint: &'a str,
    pub rationale: &'a str,
}

/// Whether any byte needs escaping: `"`/`\\`/control for JSON (`csv = false`), or
/// `,`/`"`/CR/LF for CSV (which then quotes the field).
#[inline]
fn needs_escape(b: &[u8], csv: bool) -> bool {
    let (c, j) = needs_escape_both(b);
    if csv {
        c
    } else {
        j
    }
}

/// [`needs_escape`] for CSV and for JSON at once: `(csv, json)`.
#[inline]
fn needs_escape_both(b: &[u8]) -> (bool, bool) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        /// (CSV, JSON) bit masks of one group of 16 bytes.
        #[inline(always)]
        fn masks(v: __m128i) -> (u32, u32) {
            // SAFETY: SSE2 is baseline on x86_64; register operations only.
            unsafe {
                let (c, quote) = sse2::csv_special(v);
                let eq = |c: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8));
                // Control bytes (unsigned v < 0x20) via a signed compare on flipped sign bits.
                let sign = _mm_set1_epi8(i8::MIN);
                let low = _mm_cmplt_epi8(
                    _mm_xor_si128(v, sign),
                    _mm_xor_si128(_mm_set1_epi8(0x20), sign),
                );
                let j = _mm_or_si128(_mm_or_si128(eq(b'\\'), quote), low);
                (_mm_movemask_epi8(c) as u32, _mm_movemask_epi8(j) as u32)
            }
        }
        let (csv, json) = sse2::scan(b, masks);
        (csv != 0, json != 0)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let csv = b.iter().any(|&c| matches!(c, b',' | b'"' | b'\n' | b'\r'));
        let json = b.iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\');
        (csv, json)
    }
}

/// How a CSV value must be written: `(quoted, with quotes to double)`.
#[inline(always)]
fn csv_needs(b: &[u8]) -> (bool, bool) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        /// (special, quote) bit masks of one group of 16 bytes.
        #[inline(always)]
        fn masks(v: __m128i) -> (u32, u32) {
            // SAFETY: SSE2 is baseline on x86_64; register operations only.
            unsafe {
                let (special, quote) = sse2::csv_special(v);
                (
                    _mm_movemask_epi8(special) as u32,
                    _mm_movemask_epi8(quote) as u32,
                )
            }
        }
        let (special, quote) = sse2::scan(b, masks);
        (special != 0, quote != 0)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let quote = b.contains(&b'"');
        (
            quote || b.iter().any(|&c| matches!(c, b',' | b'\n' | b'\r')),
            quote,
        )
    }
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::*;

    /// The lanes of `v` that make a CSV value need quotes (`,`, `"`, `\n`, `\r`), and its
    /// quotes.
    #[inline(always)]
    pub(super) fn csv_special(v: __m128i) -> (__m128i, __m128i) {
        // SAFETY: SSE2 is baseline on x86_64; register operations only.
        unsafe {
            let eq = |c: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8));
            let quote = eq(b'"');
            let special = _mm_or_si128(
                _mm_or_si128(eq(b','), quote),
                _mm_or_si128(eq(b'\n'), eq(b'\r')),
            );
            (special, quote)
        }
    }

    /// Two bit masks over all of `b`, 16 bytes at a time, OR-ed together; a last partial
    /// group (most values are short) is read as one vector of the value's own bytes, so no
    /// value takes a byte loop.
    #[inline(always)]
    pub(super) fn scan(b: &[u8], masks: impl Fn(__m128i) -> (u32, u32)) -> (u32, u32) {
        let (mut x, mut y) = (0u32, 0u32);
        let mut groups = b.chunks_exact(16);
        for g in groups.by_ref() {
            // SAFETY: `g` is 16 readable bytes.
            let (c, j) = masks(unsafe { _mm_loadu_si128(g.as_ptr() as *const __m128i) });
            x |= c;
            y |= j;
        }
        let rest = groups.remainder();
        if !rest.is_empty() {
            let n = b.len();
            // Every lane holds a byte of the value (some twice), so no lane needs masking: a
            // long value's last 16 bytes; a short one's head and tail words, put in registers
            // (a copy to the stack read back as a vector would stall store forwarding).
            let v = if n >= 16 {
                // SAFETY: `b[n - 16..]` is 16 readable bytes.
                unsafe { _mm_loadu_si128(b[n - 16..].as_ptr() as *const __m128i) }
            } else {
                let word = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8"));
                let half = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4"));
                // SAFETY: SSE2 is baseline on x86_64; register operations only.
                unsafe {
                    match n {
                        8.. => _mm_set_epi64x(word(n - 8) as i64, word(0) as i64),
                        4.. => {
                            _mm_set1_epi64x((half(0) as u64 | (half(n - 4) as u64) << 32) as i64)
                        }
                        _ => _mm_set1_epi32(
                            (b[0] as u32
                                | (b[n / 2] as u32) << 8
                                | ((b[n - 1] as u32) * 0x101_0000))
                                as i32,
                        ),
                    }
                }
            };
            let (c, j) = masks(v);
            x |= c;
            y |= j;
        }
        (x, y)
    }
}

/// `out.extend_from_slice(b)` with [`put`]'s word moves.
#[inline(always)]
fn push_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.reserve(b.len());
    // SAFETY: `b.len()` bytes past the length are reserved; `b` is borrowed while `out` is
    // borrowed mutably, so they cannot overlap; `set_len` covers exactly the bytes written.
    unsafe {
        put(out.as_mut_ptr().add(out.len()), b);
        out.set_len(out.len() + b.len());
    }
}

/// Append `b` at `dst` with a few word moves (no `memcpy` call for the short values of an
/// assignment row).
///
/// # Safety
/// `dst` must be valid for writing `b.len()` bytes and must not overlap `b`.
#[inline(always)]
unsafe fn put(dst: *mut u8, b: &[u8]) {
    let n = b.len();
    let src = b.as_ptr();
    // SAFETY (for every arm): reads stay inside `b`, writes inside `dst[..n]` (the caller's
    // promise); overlapping word moves cover every byte.
    unsafe {
        match n {
            0 => {}
            1..=3 => {
                *dst = *src;
                *dst.add(n / 2) = *src.add(n / 2);
                *dst.add(n - 1) = *src.add(n - 1);
            }
            4..=7 => two_words::<u32>(src, dst, n),
            8..=16 => two_words::<u64>(src, dst, n),
            17..=32 => two_words::<u128>(src, dst, n),
            _ => std::ptr::copy_nonoverlapping(src, dst, n),
        }
    }
}

/// `n` bytes from `src` to `dst` as two overlapping moves of a `W`-byte word.
///
/// # Safety
/// `size_of::<W>() <= n <= 2 * size_of::<W>()`; `src` readable and `dst` writable for `n`
/// bytes, not overlapping.
#[inline(always)]
unsafe fn two_words<W: Copy>(src: *const u8, dst: *mut u8, n: usize) {
    let w = std::mem::size_of::<W>();
    // SAFETY: both words lie within the `n` bytes (the caller's promise).
    unsafe {
        let (a, z) = (
            (src as *const W).read_unaligned(),
            (src.add(n - w) as *const W).read_unaligned(),
        );
        (dst as *mut W).write_unaligned(a);
        (dst.add(n - w) as *mut W).write_unaligned(z);
    }
}

/// A JSON string literal (RFC 8259 escaping).
pub fn json_str(out: &mut Vec<u8>, s: &str) {
    json_str_known(out, s, needs_escape(s.as_bytes(), false));
}

/// [`json_str`] when whether `s` needs escaping is already known.
#[inline]
fn json_str_known(out: &mut Vec<u8>, s: &str, escape: bool) {
    out.push(b'"');
    let b = s.as_bytes();
    if !escape {
        push_bytes(out, b);
    } else {
        for &c in b {
            match c {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                c if c < 0x20 => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[(c >> 4) as usize]);
                    out.push(HEX[(c & 15) as usize]);
                }
                c => out.push(c),
            }
        }
    }
    out.push(b'"');
}

/// Whether `--csv-raw` (`ABM_CSV_RAW=1`) turned the neutralising of formula cells off.
static CSV_RAW: AtomicBool = AtomicBool::new(false);

/// Write CSV output cells exactly as they are (`raw = true`), or neutralise the ones a
/// spreadsheet would evaluate (the default; see [`formula_cell`]). For machine consumers.
pub fn set_csv_raw(raw: bool) {
    CSV_RAW.store(raw, Ordering::Relaxed);
}

/// Whether a spreadsheet would read the cell `b` as a formula (OWASP's CSV-injection rule: it
/// starts with `=`, `+`, `-`, `@`, a tab or a CR) and it must be written with a leading `'`
/// (`=HYPERLINK(…)` → `'=HYPERLINK(…)`). Only the first byte is looked at, so an ordinary
/// cell costs one compare. Output CSV only: inputs, samples and JSON Lines stay exact.
#[inline(always)]
fn formula_cell(b: &[u8]) -> bool {
    const LEADS: u128 = 1 << b'=' | 1 << b'+' | 1 << b'-' | 1 << b'@' | 1 << b'\t' | 1 << b'\r';
    match b.first() {
        Some(&c) if c <= b'@' => LEADS >> c & 1 != 0 && !CSV_RAW.load(Ordering::Relaxed),
        _ => false,
    }
}

fn csv_field(out: &mut Vec<u8>, s: &str) {
    csv_field_known(out, s, needs_escape(s.as_bytes(), true), false);
}

/// An output cell: [`csv_field`], a formula neutralised ([`formula_cell`]).
fn csv_cell(out: &mut Vec<u8>, s: &str) {
    csv_field_known(
        out,
        s,
        needs_escape(s.as_bytes(), true),
        formula_cell(s.as_bytes()),
    );
}

/// [`csv_field`] when whether `s` needs quoting is already known; `lead` writes a `'` before
/// the value (inside the quotes).
#[inline]
fn csv_field_known(out: &mut Vec<u8>, s: &str, quote: bool, lead: bool) {
    if quote {
        // Quoted: copy the runs between quotes whole, doubling each quote.
        out.push(b'"');
        if lead {
            out.push(b'\'');
        }
        let b = s.as_bytes();
        let mut from = 0;
        for q in memchr::memchr_iter(b'"', b) {
            out.extend_from_slice(&b[from..=q]);
            out.push(b'"');
            from = q + 1;
        }
        out.extend_from_slice(&b[from..]);
        out.push(b'"');
    } else {
        if lead {
            out.push(b'\'');
        }
        push_bytes(out, s.as_bytes());
    }
}

/// Append a CSV line (RFC 4180 quoting).
pub fn csv_line<'s>(out: &mut Vec<u8>, fields: impl IntoIterator<Item = &'s str>) {
    line_of(out, fields, csv_field)
}

/// [`csv_line`] for output files a person may open in a spreadsheet: formula cells
/// neutralised ([`formula_cell`]).
pub fn csv_output_line<'s>(out: &mut Vec<u8>, fields: impl IntoIterator<Item = &'s str>) {
    line_of(out, fields, csv_cell)
}

fn line_of<'s>(
    out: &mut Vec<u8>,
    fields: impl IntoIterator<Item = &'s str>,
    cell: fn(&mut Vec<u8>, &str),
) {
    for (i, f) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        cell(out, f);
    }
    out.push(b'\n');
}

/// The columns of an assignment row whose text may come from the data (bit per column):
/// all but `icp_score` (a number abm formats: `-5` stays a number) and `has_triggers`.
const TEXT_COLUMNS: u32 = !(1 << 2 | 1 << HAS_TRIGGERS as u32);

/// Position of `has_triggers`, the one value that is a JSON boolean, not a string.
const HAS_TRIGGERS: usize = 5;

/// Position of `icp_score`, a JSON number (issue 14), `null` when empty.
const ICP_SCORE: usize = 2;

/// `v` as a JSON number when it is one abm wrote (digits, one `.`, a leading `-`), `null`
/// when empty, else (never for abm's own scores) as a string.
#[inline]
fn json_number(out: &mut Vec<u8>, v: &str) {
    let b = v.as_bytes();
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    let plain = !digits.is_empty()
        && digits[0].is_ascii_digit()
        && digits[digits.len() - 1].is_ascii_digit()
        && digits.iter().all(|c| c.is_ascii_digit() || *c == b'.')
        && digits.iter().filter(|c| **c == b'.').count() <= 1
        && !(digits.len() > 1 && digits[0] == b'0' && digits[1].is_ascii_digit());
    if b.is_empty() {
        out.extend_from_slice(b"null");
    } else if plain {
        out.extend_from_slice(b);
    } else {
        json_str(out, v);
    }
}

/// Each JSON key with its surrounding punctuation, so a field is one copy plus its value.
const JSON_KEYS: [&[u8]; 15] = [
    b"{\"account_id\":",
    b",\"name\":",
    b",\"icp_score\":",
    b",\"tier\":",
    b",\"engagement_level\":",
    b",\"has_triggers\":",
    b",\"cluster\":",
    b",\"previous_cluster\":",
    b",\"movement\":",
    b",\"promotion_triggers\":",
    b",\"program_type\":",
    b",\"micro_segment\":",
    b",\"next_action\":",
    b",\"checkpoint\":",
    b",\"rationale\":",
];

impl AssignmentRow<'_> {
    pub fn write_csv(&self, out: &mut Vec<u8>) {
        let values = self.values();
        // Room for every value quoted with every byte doubled and a formula's `'`, commas
        // and the line end.
        let room: usize = values.iter().map(|v| 2 * v.len() + 4).sum();
        out.reserve(room);
        let start = out.len();
        // SAFETY: `room` bytes from `start` are allocated (reserved above) and each value
        // writes at most `2 * len + 4` of them (with its comma); `set_len` covers only bytes
        // written. Values are `&str` borrowed from elsewhere: no overlap with `out`.
        unsafe {
            let base = out.as_mut_ptr().add(start);
            let mut at = 0usize;
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    *base.add(at) = b',';
                    at += 1;
                }
                let b = v.as_bytes();
                let lead = TEXT_COLUMNS >> i & 1 != 0 && formula_cell(b);
                match csv_needs(b) {
                    (false, _) => {
                        if lead {
                            *base.add(at) = b'\'';
                            at += 1;
                        }
                        put(base.add(at), b);
                        at += b.len();
                    }
                    (true, false) => {
                        *base.add(at) = b'"';
                        at += 1;
                        if lead {
                            *base.add(at) = b'\'';
                            at += 1;
                        }
                        put(base.add(at), b);
                        *base.add(at + b.len()) = b'"';
                        at += b.len() + 1;
                    }
                    (true, true) => {
                        *base.add(at) = b'"';
                        at += 1;
                        if lead {
                            *base.add(at) = b'\'';
                            at += 1;
                        }
                        for &c in b {
                            *base.add(at) = c;
                            at += 1;
                            if c == b'"' {
                                *base.add(at) = b'"';
                                at += 1;
                            }
                        }
                        *base.add(at) = b'"';
                        at += 1;
                    }
                }
            }
            *base.add(at) = b'\n';
            out.set_len(start + at + 1);
        }
    }

    /// [`Self::write_csv`] and [`Self::write_jsonl`] in one pass over the values (each value
    /// is scanned once for what either format must escape).
    pub fn write_both(&self, csv: &mut Vec<u8>, json: &mut Vec<u8>) {
        let values = self.values();
        let bytes: usize = values.iter().map(|v| v.len()).sum();
        csv.reserve(2 * bytes + 3 * values.len());
        json.reserve(bytes + 256);
        for (i, (k, v)) in JSON_KEYS.iter().zip(values).enumerate() {
            if i > 0 {
                csv.push(b',');
            }
            push_bytes(json, k);
            if i == HAS_TRIGGERS {
                push_bytes(csv, v.as_bytes());
                push_bytes(json, v.as_bytes());
                continue;
            }
            if i == ICP_SCORE {
                let (c, _) = needs_escape_both(v.as_bytes());
                csv_field_known(csv, v, c, false);
                json_number(json, v);
                continue;
            }
            let (c, j) = needs_escape_both(v.as_bytes());
            let lead = TEXT_COLUMNS >> i & 1 != 0 && formula_cell(v.as_bytes());
            csv_field_known(csv, v, c, lead);
            json_str_known(json, v, j);
        }
        csv.push(b'\n');
        json.extend_from_slice(b"}\n");
    }

    /// The values in column order (`has_triggers` as `true`/`false`).
    fn values(&self) -> [&str; 15] {
        [
            self.account_id,
            self.name,
            self.icp_score,
            self.tier,
            self.engagement_level,
            if self.has_triggers { "true" } else { "false" },
            self.cluster,
            self.previous_cluster,
            self.movement,
            self.promotion_triggers,
            self.program_type,
            self.micro_segment,
            self.next_action,
            self.checkpoint,
            self.rationale,
        ]
    }

    pub fn write_jsonl(&self, out: &mut Vec<u8>) {
        for (i, (k, v)) in JSON_KEYS.iter().zip(self.values()).enumerate() {
            out.extend_from_slice(k);
            if i == HAS_TRIGGERS {
                out.extend_from_slice(v.as_bytes()); // a JSON boolean
            } else if i == ICP_SCORE {
                json_number(out, v);
            } else {
                json_str(out, v);
            }
        }
        out.extend_from_slice(b"}\n");
    }
}

pub fn csv_header() -> Vec<u8> {
    let mut v = Vec::new();
    csv_line(&mut v, ASSIGNMENT_COLUMNS.iter().copied());
    v
}

/// `cluster_summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub as_of: String,
    pub config_hash: String,
    pub accounts: u64,
    pub cluster_icp_count: u64,
    pub future_pipeline_count: u64,
    pub active_focus_count: u64,
    pub monitor_only_count: u64,
    pub capacity: CapacityStatus,
    /// Checkpoint kind → count (`capacity`, `conflict`, …).
    pub checkpoints: std::collections::BTreeMap<String, u64>,
    pub rejected_rows: u64,
    /// Rows read per input file kind.
    pub rows_read: std::collections::BTreeMap<String, u64>,
    /// Engagement events dated after `as_of` (ignored, not errors).
    pub events_after_as_of: u64,
    /// Fields of ICP criteria that no input provides: left out of the points possible for
    /// every account (absent when every criterion has data).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub criteria_without_data: Vec<String>,
    /// Why the outcome is degenerate, in words (e.g. every account in Monitor Only).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub notes: Vec<String>,
}

impl Summary {
    pub fn counts(&self) -> ClusterCounts {
        ClusterCounts {
            cluster_icp: self.cluster_icp_count,
            future_pipeline: self.future_pipeline_count,
            active_focus: self.active_focus_count,
            monitor_only: self.monitor_only_count,
        }
    }
}

/// A single file written to a temporary name beside it and renamed into place on `commit`
/// (for sets of files, see [`crate::outset::OutputSet`]). The temporary file is created fresh,
/// never through a symlink; the rename replaces whatever `path` was (a symlink there is
/// replaced, its target never written).
pub struct AtomicFile {
    tmp: PathBuf,
    path: PathBuf,
    pub out: OutFile,
    committed: bool,
}

/// Where an output's bytes go: a buffered file, or direct I/O for bulk outputs.
pub enum OutFile {
    Buffered(BufWriter<File>),
    Direct(Box<crate::direct::DirectWriter>),
}

impl OutFile {
    /// Write out everything buffered.
    pub fn finish(&mut self) -> io::Result<()> {
        match self {
            OutFile::Buffered(w) => w.flush(),
            OutFile::Direct(w) => w.finish(),
        }
    }
}

impl Write for OutFile {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            OutFile::Buffered(w) => w.write(buf),
            OutFile::Direct(w) => w.write(buf),
        }
    }

    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            OutFile::Buffered(w) => w.write_all(buf),
            OutFile::Direct(w) => w.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            OutFile::Buffered(w) => w.flush(),
            OutFile::Direct(w) => w.flush(),
        }
    }
}

impl AtomicFile {
    /// Begin writing `path`. `inputs` are files the caller reads: replacing one of them (the
    /// same device and inode as `path`) is refused before anything is written.
    pub fn create(path: &Path) -> io::Result<AtomicFile> {
        Self::create_checked(path, &[])
    }

    /// [`Self::create`], refusing when `path` is one of `inputs`.
    pub fn create_checked(path: &Path, inputs: &[&Path]) -> io::Result<AtomicFile> {
        refuse_input(path, inputs)?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        // A leftover (or a planted symlink) goes; the new file is created exclusively.
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o644)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
        }
        let f = opts.open(&tmp)?;
        Ok(AtomicFile {
            out: OutFile::Buffered(BufWriter::with_capacity(1 << 20, f)),
            tmp,
            path: path.to_path_buf(),
            committed: false,
        })
    }

    pub fn commit(mut self) -> io::Result<()> {
        self.out.finish()?;
        std::fs::rename(&self.tmp, &self.path)?;
        self.committed = true;
        Ok(())
    }
}

/// An error when `path` names the same file (device and inode) as one of `inputs`.
pub fn refuse_input(path: &Path, inputs: &[&Path]) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(out) = std::fs::metadata(path) else {
            return Ok(());
        };
        for input in inputs {
            if let Ok(m) = std::fs::metadata(input) {
                if (m.dev(), m.ino()) == (out.dev(), out.ino()) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "refusing to write {}: that file is {}, which this command reads \
                             (choose another output path)",
                            path.display(),
                            input.display()
                        ),
                    ));
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, inputs);
    Ok(())
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // If not committed, the temp file is removed; the previous output stays.
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

pub fn write_summary(path: &Path, s: &Summary) -> io::Result<()> {
    let mut f = AtomicFile::create(path)?;
    write_summary_to(&mut f.out, s)?;
    f.commit()
}

/// `cluster_summary.json`'s bytes.
pub fn write_summary_to(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, s)?;
    w.write_all(b"\n")
}

/// `rejected_rows.csv` at `path`, refused when `path` is one of `inputs`.
pub fn write_rejected(path: &Path, rows: &[Rejection], inputs: &[&Path]) -> io::Result<()> {
    let mut f = AtomicFile::create_checked(path, inputs)?;
    write_rejected_to(&mut f.out, rows)?;
    f.commit()
}

/// `rejected_rows.csv`'s bytes.
pub fn write_rejected_to(w: &mut impl Write, rows: &[Rejection]) -> io::Result<()> {
    let mut buf = Vec::new();
    csv_line(&mut buf, ["file", "line", "column", "reason", "record"]);
    for r in rows {
        let line = r.line.to_string();
        csv_output_line(
            &mut buf,
            [
                r.file.as_str(),
                line.as_str(),
                r.column.as_str(),
                r.reason.as_str(),
                r.record.as_str(),
            ],
        );
    }
    w.write_all(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting_and_json_lines() {
        let row = AssignmentRow {
            account_id: "A1",
            name: "Acme, \"Inc\"",
            icp_score: "85",
            tier: "A",
            engagement_level: "high",
            has_triggers: true,
            cluster: "active_focus",
            previous_cluster: "",
            movement: "",
            promotion_triggers: "funding_round@2026-10-01T00:00:00Z",
            program_type: "one_to_one_abm",
            micro_segment: "",
            next_action: "x",
            checkpoint: "",
            rationale: "line1\nline2",
        };
        let mut v = Vec::new();
        row.write_csv(&mut v);
        let s = String::from_utf8(v).unwrap();
        assert!(s.starts_with("A1,\"Acme, \"\"Inc\"\"\",85,A,high,true,active_focus,,,"));
        assert!(s.ends_with(",x,,\"line1\nline2\"\n"));
        let mut v = Vec::new();
        row.write_jsonl(&mut v);
        let j: serde_json::Value = serde_json::from_slice(&v).unwrap();
        assert_eq!(j["has_triggers"], true);
        assert_eq!(j["name"], "Acme, \"Inc\"");
        assert_eq!(j["rationale"], "line1\nline2");
        assert_eq!(
            serde_json::to_value(&row).unwrap(),
            j,
            "same as serde's rendering"
        );
        // Both formats in one pass equal each written alone, for every kind of value.
        let texts = [
            "",
            "plain",
            "a,b",
            "q\"uote",
            "cr\rlf\n",
            "tab\tctl\u{1}",
            "back\\slash",
            "a long value without anything special in it at all",
            "a long value, with a comma and a \"quote\" and a \\ backslash\n",
            "é ü ß long enough to take the vector loop of the scan",
        ];
        for (i, t) in texts.iter().enumerate() {
            let u = texts[(i * 7 + 3) % texts.len()];
            let r = AssignmentRow {
                name: t,
                rationale: u,
                next_action: t,
                micro_segment: u,
                has_triggers: i % 2 == 0,
                ..row
            };
            let (mut c1, mut j1, mut c2, mut j2) = (vec![], vec![], vec![], vec![]);
            r.write_csv(&mut c1);
            r.write_jsonl(&mut j1);
            r.write_both(&mut c2, &mut j2);
            assert_eq!(
                String::from_utf8(c2).unwrap(),
                String::from_utf8(c1).unwrap()
            );
            assert_eq!(
                String::from_utf8(j2).unwrap(),
                String::from_utf8(j1).unwrap()
            );
        }
        let mut v = Vec::new();
        json_str(&mut v, "tab\there \u{1} back\\slash é");
        assert_eq!(
            serde_json::from_slice::<String>(&v).unwrap(),
            "tab\there \u{1} back\\slash é"
        );
    }

    #[test]
    fn escape_detection_matches_the_scalar_rule() {
        for s in [
            "plain text that is longer than sixteen bytes",
            "a,b",
            "x\"y",
            "tab\there",
            "line\nbreak",
            "0123456789abcdef,",
            "0123456789abcdef\u{1f}",
            "é ü ß ok but long enough to vectorize",
        ] {
            let csv = s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'));
            let json = s.bytes().any(|c| c < 0x20 || c == b'"' || c == b'\\');
            assert_eq!(needs_escape(s.as_bytes(), false), json, "{s:?}");
            assert_eq!(needs_escape(s.as_bytes(), true), csv, "{s:?}");
        }
        // Every length (full groups and padded tails), with a byte that matters at each position.
        for len in 0..=33 {
            let plain = vec![b'x'; len];
            assert_eq!(needs_escape_both(&plain), (false, false), "{len}");
            for pos in 0..len {
                for (v, want) in [
                    (b',', (true, false)),
                    (b'\\', (false, true)),
                    (0u8, (false, true)),
                    (b'"', (true, true)),
                    (b'\n', (true, true)),
                ] {
                    let mut b = plain.clone();
                    b[pos] = v;
                    assert_eq!(needs_escape_both(&b), want, "{len} {pos} {v}");
                }
            }
        }
        // Every byte value at every position of short values (read as head and tail words).
        for len in 1..=17 {
            for pos in 0..len {
                for v in 0..=255u8 {
                    let mut b = b"abcdefghijklmnopq"[..len].to_vec();
                    b[pos] = v;
                    let csv = matches!(v, b',' | b'"' | b'\n' | b'\r');
                    let json = v < 0x20 || v == b'"' || v == b'\\';
                    assert_eq!(needs_escape_both(&b), (csv, json), "{len} {pos} {v}");
                }
            }
        }
        // Every byte value at every position of a string long enough for the vector loop.
        for pos in 0..40 {
            for v in 0..=255u8 {
                let mut b = b"abcdefghijklmnopqrstuvwxyz0123456789ABCD".to_vec();
                b[pos] = v;
                let csv = matches!(v, b',' | b'"' | b'\n' | b'\r');
                let json = v < 0x20 || v == b'"' || v == b'\\';
                assert_eq!(needs_escape(&b, true), csv, "{pos} {v}");
                assert_eq!(needs_escape(&b, false), json, "{pos} {v}");
            }
        }
    }

    #[test]
    fn atomic_file_keeps_previous_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        std::fs::write(&p, "old").unwrap();
        {
            let mut f = AtomicFile::create(&p).unwrap();
            f.out.write_all(b"new").unwrap();
        }
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old");
        let mut f = AtomicFile::create(&p).unwrap();
        f.out.write_all(b"new").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert!(!dir.path().join("x.csv.tmp").exists());
    }

    /// Neither a symlink planted at the temporary name nor one at the output's name is
    /// written through; an output that is an input is refused.
    #[cfg(unix)]
    #[test]
    fn atomic_file_never_writes_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let precious = dir.path().join("precious.txt");
        std::fs::write(&precious, "keep me").unwrap();
        let p = dir.path().join("rejected_rows.csv");
        std::os::unix::fs::symlink(&precious, dir.path().join("rejected_rows.csv.tmp")).unwrap();
        std::os::unix::fs::symlink(&precious, &p).unwrap();
        write_rejected(&p, &[], &[]).unwrap();
        assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
        assert!(std::fs::symlink_metadata(&p).unwrap().is_file());
        assert!(std::fs::read_to_string(&p)
            .unwrap()
            .starts_with("file,line"));

        let input = dir.path().join("engagement.csv");
        std::fs::write(&input, "an input").unwrap();
        let e = write_rejected(&input, &[], &[&precious, &input]).unwrap_err();
        assert!(e.to_string().contains("which this command reads"), "{e}");
        assert_eq!(std::fs::read_to_string(&input).unwrap(), "an input");
    }

    /// The row writer gives what the RFC 4180 field writer gives, for values of every length
    /// class of its word moves and every quoting case.
    #[test]
    fn csv_rows_equal_the_field_writer() {
        let mut texts: Vec<String> = vec![
            "".into(),
            "\"".into(),
            "\"\"".into(),
            ",".into(),
            "\r".into(),
            "é".into(),
            "ü,ß".into(),
            "=cmd|' /C calc'!A0".into(),
            "+SUM(1,2)".into(),
            "-".into(),
            "-5".into(),
            "@SUM(1)".into(),
            "\t=1+1".into(),
            "\r=1".into(),
            "=\"a\"".into(),
            "=HYPERLINK(\"http://x\",\"y\")".into(),
            "'=already".into(),
            "a=b".into(),
        ];
        for n in 1..70 {
            let plain: String = (0..n).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            texts.push(plain.clone());
            let mut comma = plain.clone().into_bytes();
            comma[n / 2] = b',';
            texts.push(String::from_utf8(comma).unwrap());
            let mut quote = plain.into_bytes();
            quote[n - 1] = b'"';
            texts.push(String::from_utf8(quote).unwrap());
        }
        for (i, t) in texts.iter().enumerate() {
            let at = |k: usize| texts[(i * 31 + k * 17) % texts.len()].as_str();
            let row = AssignmentRow {
                account_id: t,
                name: at(1),
                icp_score: at(2),
                tier: at(3),
                engagement_level: at(4),
                has_triggers: i % 2 == 0,
                cluster: at(5),
                previous_cluster: at(6),
                movement: at(7),
                promotion_triggers: at(8),
                program_type: at(9),
                micro_segment: at(10),
                next_action: at(11),
                checkpoint: at(12),
                rationale: at(13),
            };
            let mut got = b"prefix".to_vec();
            row.write_csv(&mut got);
            let mut want = b"prefix".to_vec();
            csv_row_by_fields(&mut want, &row);
            assert!(got == want, "{:?}", String::from_utf8_lossy(&got));
            let (mut csv, mut json) = (b"prefix".to_vec(), Vec::new());
            row.write_both(&mut csv, &mut json);
            assert!(csv == want, "{:?}", String::from_utf8_lossy(&csv));
        }
    }

    /// An assignment row written field by field: [`csv_cell`] for the text columns,
    /// [`csv_field`] for the number and the boolean.
    fn csv_row_by_fields(out: &mut Vec<u8>, row: &AssignmentRow<'_>) {
        for (i, v) in row.values().iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            if TEXT_COLUMNS >> i & 1 != 0 {
                csv_cell(out, v);
            } else {
                csv_field(out, v);
            }
        }
        out.push(b'\n');
    }

    /// Issue 11 #6: cells a spreadsheet would evaluate get a leading `'` in CSV outputs
    /// (assignments and the rejected rows' record); JSON Lines keep the exact text.
    #[test]
    fn formula_cells_are_neutralised_in_csv_only() {
        let row = AssignmentRow {
            account_id: "@A1",
            name: "=cmd|' /C calc'!A0",
            icp_score: "-5",
            tier: "A",
            engagement_level: "high",
            has_triggers: false,
            cluster: "active_focus",
            previous_cluster: "",
            movement: "",
            promotion_triggers: "",
            program_type: "",
            micro_segment: "+SUM(1,2)",
            next_action: "\t=1+1",
            checkpoint: "-",
            rationale: "=HYPERLINK(\"http://x\",\"y\")",
        };
        let mut csv = Vec::new();
        row.write_csv(&mut csv);
        assert_eq!(
            String::from_utf8(csv).unwrap(),
            "'@A1,'=cmd|' /C calc'!A0,-5,A,high,false,active_focus,,,,,\"'+SUM(1,2)\",'\t=1+1,'-,\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"\n"
        );
        let mut json = Vec::new();
        row.write_jsonl(&mut json);
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["name"], "=cmd|' /C calc'!A0");
        assert_eq!(v["icp_score"], -5, "a number, not a string");
        assert_eq!(v["next_action"], "\t=1+1");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rejected_rows.csv");
        let rej = Rejection {
            file: "accounts.csv".into(),
            line: 2,
            column: "employees".into(),
            reason: "not a number".into(),
            record: "=1+1,x".into(),
        };
        write_rejected(&path, &[rej], &[]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with(",\"'=1+1,x\"\n"), "{text}");
        // Inputs and samples are written exactly.
        let mut line = Vec::new();
        csv_line(&mut line, ["=1+1", "-5"]);
        assert_eq!(line, b"=1+1,-5\n");
    }
}
