//! Opening an input file: format (CSV or JSON Lines, by extension), header, projection, and a
//! reader positioned at the first data record.

use crate::columns::{project, FileKind, Preset, Projection};
use crate::csv::{scan_records, Record};
use crate::IngestError;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    pub fn of(path: &Path) -> Format {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
        {
            Some(e) if e == "jsonl" || e == "ndjson" || e == "json" => Format::Jsonl,
            _ => Format::Csv,
        }
    }
}

/// An opened input file.
pub struct Source {
    pub path: PathBuf,
    /// The path as shown in messages and rejected rows.
    pub name: String,
    pub format: Format,
    pub kind: FileKind,
    pub header: Vec<String>,
    pub projection: Projection,
    /// Line number of the first byte `reader` yields.
    pub first_line: u64,
    pub size: u64,
    /// Byte offset of the first record in the file (after a BOM and the CSV header).
    pub data_offset: u64,
    pub reader: Box<dyn Read + Send + Sync>,
    /// The file's lines end with a bare CR (classic Mac): it was read whole and its line
    /// ends turned into LF, so `reader` yields that text and the file is never mapped.
    pub cr_line_ends: bool,
    /// Its records come from memory ([`InputSource::Memory`]): streamed, never mapped.
    pub in_memory: bool,
    /// How to read it (mapped or streamed, blocks read or scanned in the map).
    pub tuning: crate::Tuning,
    /// How this file's values are read beyond the canonical forms (date formats, event-type
    /// synonyms, deal stages): set from the config by `LoadOptions::open`.
    pub inputs: std::sync::Arc<crate::values::InputRules>,
}

/// Where an input's records come from: a file, or bytes already in memory (an API batch, a
/// CRM page) read exactly as a file of that format would be, with the same validation and the
/// same rejections. The name is what messages and rejected rows call it.
#[derive(Debug, Clone)]
pub enum InputSource {
    File(PathBuf),
    Memory {
        name: String,
        format: Format,
        bytes: std::sync::Arc<[u8]>,
    },
}

impl InputSource {
    /// JSON Lines bytes in memory.
    pub fn jsonl(name: impl Into<String>, bytes: Vec<u8>) -> InputSource {
        InputSource::Memory {
            name: name.into(),
            format: Format::Jsonl,
            bytes: bytes.into(),
        }
    }

    /// CSV bytes in memory.
    pub fn csv(name: impl Into<String>, bytes: Vec<u8>) -> InputSource {
        InputSource::Memory {
            name: name.into(),
            format: Format::Csv,
            bytes: bytes.into(),
        }
    }

    /// The name shown in messages and rejected rows (a file's path as given).
    pub fn name(&self) -> String {
        match self {
            InputSource::File(p) => p.display().to_string(),
            InputSource::Memory { name, .. } => name.clone(),
        }
    }

    /// The key of `[columns.files.KEY]`: a file's stem, or a memory input's name.
    pub fn stem(&self) -> String {
        match self {
            InputSource::File(p) => p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            InputSource::Memory { name, .. } => name.clone(),
        }
    }

    /// The file, when it is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            InputSource::File(p) => Some(p),
            InputSource::Memory { .. } => None,
        }
    }
}

impl From<PathBuf> for InputSource {
    fn from(p: PathBuf) -> InputSource {
        InputSource::File(p)
    }
}

impl From<&Path> for InputSource {
    fn from(p: &Path) -> InputSource {
        InputSource::File(p.to_path_buf())
    }
}

impl Source {
    pub fn open(
        path: &Path,
        kind: FileKind,
        mapping: &BTreeMap<String, crate::columns::ColumnSource>,
        preset: Option<Preset>,
    ) -> Result<Source, IngestError> {
        let name = path.display().to_string();
        let io_err = |e| IngestError::Io {
            path: name.clone(),
            source: e,
        };
        let file = File::open(path).map_err(io_err)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut src = Source::from_reader(
            name,
            Format::of(path),
            Box::new(file),
            size,
            kind,
            mapping,
            preset,
        )?;
        src.path = path.to_path_buf();
        src.in_memory = false;
        Ok(src)
    }

    /// An input from [`InputSource`]: a file opened, or bytes in memory read as one.
    pub fn open_input(
        input: &InputSource,
        kind: FileKind,
        mapping: &BTreeMap<String, crate::columns::ColumnSource>,
        preset: Option<Preset>,
    ) -> Result<Source, IngestError> {
        match input {
            InputSource::File(p) => Source::open(p, kind, mapping, preset),
            InputSource::Memory {
                name,
                format,
                bytes,
            } => {
                let size = bytes.len() as u64;
                let reader = Box::new(Cursor::new(ArcBytes(bytes.clone())));
                Source::from_reader(name.clone(), *format, reader, size, kind, mapping, preset)
            }
        }
    }

    fn from_reader(
        name: String,
        format: Format,
        mut file: Box<dyn Read + Send + Sync>,
        size: u64,
        kind: FileKind,
        mapping: &BTreeMap<String, crate::columns::ColumnSource>,
        preset: Option<Preset>,
    ) -> Result<Source, IngestError> {
        let io_err = |e| IngestError::Io {
            path: name.clone(),
            source: e,
        };
        let mut head = vec![0u8; 256 << 10];
        let mut n = 0;
        while n < head.len() {
            let k = file.read(&mut head[n..]).map_err(io_err)?;
            if k == 0 {
                break;
            }
            n += k;
        }
        head.truncate(n);
        let mut start = 0;
        if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
            start = 3;
        }
        // Lines that end with a bare CR: the whole file is read and its line ends made LF
        // (as RFC 4180 readers take CRLF), so every path sees ordinary lines.
        let cr_line_ends = first_line_end_is_bare_cr(&head[start..]);
        if cr_line_ends {
            file.read_to_end(&mut head).map_err(io_err)?;
            head = cr_to_lf(&head);
        }
        // A NUL in the first line (the header) means binary data or UTF-16; a NUL further on
        // is a bad value in one row, which is rejected with the others.
        let first = &head[start..];
        let first = &first[..memchr::memchr(b'\n', first).unwrap_or(first.len())];
        if first.contains(&0) {
            return Err(IngestError::NotText {
                file: name,
                reason:
                    "its first line contains NUL bytes (binary data or UTF-16? re-save it as UTF-8)"
                        .into(),
            });
        }
        let (header, consumed, first_line) = match format {
            Format::Csv => csv_header(&name, &head[start..])?,
            Format::Jsonl => (jsonl_header(&name, &head[start..])?, 0, 1),
        };
        let projection = project(&name, &header, kind, mapping, preset)?;
        let rest = head.split_off(start + consumed);
        let reader: Box<dyn Read + Send + Sync> = Box::new(Cursor::new(rest).chain(file));
        Ok(Source {
            path: PathBuf::new(),
            name,
            format,
            kind,
            header,
            projection,
            first_line,
            size,
            data_offset: (start + consumed) as u64,
            reader,
            cr_line_ends,
            in_memory: true,
            tuning: crate::Tuning::default(),
            inputs: Default::default(),
        })
    }

    /// The records to scan: the file mapped when possible (`size` still as opened), else the
    /// stream. Leaves an empty reader behind.
    pub fn take_input(&mut self) -> crate::chunk::Input {
        let reader = std::mem::replace(&mut self.reader, Box::new(std::io::empty()));
        if self.cr_line_ends || self.in_memory {
            return crate::chunk::Input::Stream(reader);
        }
        let tuning = self.tuning;
        let mapped = File::open(&self.path)
            .ok()
            .filter(|_| tuning.mmap)
            .and_then(|f| {
                // With the file kept, line-cut blocks are read with `pread`; without, scanned
                // in the map.
                crate::mem::MappedFile::open(&f).map(|m| match tuning.read_blocks {
                    true => m.with_file(f),
                    false => m,
                })
            })
            .filter(|m| m.bytes().len() as u64 == self.size && self.data_offset <= self.size);
        match mapped {
            Some(map) => crate::chunk::Input::Mapped {
                map: std::sync::Arc::new(map),
                start: self.data_offset as usize,
                keep: false,
            },
            None => crate::chunk::Input::Stream(reader),
        }
    }
}

/// The first line break of `head` is a CR not followed by LF.
fn first_line_end_is_bare_cr(head: &[u8]) -> bool {
    match memchr::memchr2(b'\r', b'\n', head) {
        Some(i) => head[i] == b'\r' && i + 1 < head.len() && head[i + 1] != b'\n',
        None => false,
    }
}

/// Shared bytes as a `Cursor` buffer.
struct ArcBytes(std::sync::Arc<[u8]>);

impl AsRef<[u8]> for ArcBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Every CR not followed by LF made LF (CRLF is left as it is).
fn cr_to_lf(text: &[u8]) -> Vec<u8> {
    let mut out = text.to_vec();
    for i in memchr::memchr_iter(b'\r', text) {
        if text.get(i + 1) != Some(&b'\n') {
            out[i] = b'\n';
        }
    }
    out
}

fn csv_header(name: &str, head: &[u8]) -> Result<(Vec<String>, usize, u64), IngestError> {
    let no_header = || IngestError::NoHeader {
        file: name.to_string(),
    };
    // The header is the first non-blank record; it must end within the first block.
    let mut sc = crate::csv::Scanner::default();
    let mut pos = 0;
    let mut line = 1u64;
    while pos < head.len() {
        let mut header: Option<Result<Vec<String>, IngestError>> = None;
        match sc.scan(head, pos, line, |r: &Record<'_>| {
            header = Some(
                (0..r.len())
                    .map(|i| {
                        std::str::from_utf8(r.get(i))
                            .map(|s| s.trim().to_string())
                            .map_err(|_| IngestError::NotText {
                                file: name.to_string(),
                                reason: format!(
                                    "its header (line {}) is not valid UTF-8: re-save it as UTF-8",
                                    r.line
                                ),
                            })
                    })
                    .collect(),
            );
        }) {
            crate::csv::Scan::Record { end, newlines } => {
                pos = end;
                line += newlines;
                if let Some(h) = header {
                    let h = h?;
                    if h.iter().all(|c| c.is_empty()) {
                        return Err(no_header());
                    }
                    return Ok((h, pos, line));
                }
            }
            crate::csv::Scan::Unterminated => {
                return Err(IngestError::NotText {
                    file: name.to_string(),
                    reason: "its header has an unterminated quote".into(),
                })
            }
        }
    }
    Err(no_header())
}

fn jsonl_header(name: &str, head: &[u8]) -> Result<Vec<String>, IngestError> {
    for (i, line) in head.split(|&b| b == b'\n').enumerate() {
        if line.trim_ascii().is_empty() {
            continue;
        }
        struct Keys;
        impl<'de> Visitor<'de> for Keys {
            type Value = Vec<String>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Vec<String>, A::Error> {
                let mut keys = vec![];
                while let Some(k) = m.next_key::<String>()? {
                    m.next_value::<IgnoredAny>()?;
                    keys.push(k);
                }
                Ok(keys)
            }
        }
        let mut de = serde_json::Deserializer::from_slice(line);
        return de.deserialize_map(Keys).map_err(|e| IngestError::Json {
            file: name.to_string(),
            line: i as u64 + 1,
            column: e.column(),
            message: e.to_string(),
        });
    }
    Err(IngestError::NoHeader {
        file: name.to_string(),
    })
}

/// Turns JSON Lines objects into [`Record`]s whose fields follow the header's key order, so the
/// same projection serves CSV and JSON Lines.
/// Rows with more columns than this always take the generic parsers.
pub const MAX_FAST_COLS: usize = 32;

pub struct JsonRecords {
    header: Vec<String>,
    keys: foldhash::HashMap<String, usize>,
    ncols: usize,
    scratch: Vec<u8>,
    ranges: Vec<(u32, u32)>,
    /// Header columns given a value in the record being parsed.
    seen: Vec<bool>,
    /// The key whose value failed to parse, for the rejection's column.
    failed_key: Option<String>,
}

/// A JSON scalar as text (strings as is, numbers and booleans in their JSON form, null empty).
struct Sink<'a>(&'a mut Vec<u8>);

impl<'de> Visitor<'de> for Sink<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, number, boolean or null")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.extend_from_slice(v.as_bytes());
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.0.extend_from_slice(v.to_string().as_bytes());
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.0.extend_from_slice(v.to_string().as_bytes());
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.0.extend_from_slice(v.to_string().as_bytes());
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.0.extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut s: A) -> Result<(), A::Error> {
        // Arrays (e.g. tech_stack) become `;`-separated lists.
        let mut first = true;
        while let Some(v) = s.next_element::<serde_json::Value>()? {
            if !first {
                self.0.push(b';');
            }
            first = false;
            match v {
                serde_json::Value::String(s) => self.0.extend_from_slice(s.as_bytes()),
                other => self.0.extend_from_slice(other.to_string().as_bytes()),
            }
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Sink<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

impl JsonRecords {
    pub fn new(header: &[String]) -> JsonRecords {
        JsonRecords {
            header: header.to_vec(),
            keys: header
                .iter()
                .enumerate()
                .map(|(i, k)| (k.clone(), i))
                .collect(),
            ncols: header.len(),
            scratch: Vec::new(),
            ranges: Vec::new(),
            seen: vec![false; header.len()],
            failed_key: None,
        }
    }

    /// Parse one line; `Err((column, message))` when it is not a JSON object, repeats a key
    /// or a value is not a scalar (column: the key when one is to blame, else `*`).
    pub fn parse<'s>(
        &'s mut self,
        line_no: u64,
        line: &'s [u8],
    ) -> Result<Record<'s>, (String, String)> {
        self.scratch.clear();
        self.ranges.clear();
        self.ranges.resize(self.ncols, (0, 0));
        self.seen.clear();
        self.seen.resize(self.ncols, false);
        self.failed_key = None;
        struct Obj<'a>(&'a mut JsonRecords);
        impl<'de> Visitor<'de> for Obj<'_> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
                while let Some(k) = m.next_key::<Key<'de>>()? {
                    let blame = |e: A::Error, rec: &mut JsonRecords| {
                        rec.failed_key = Some(k.0.to_string());
                        e
                    };
                    match self.0.keys.get(k.0.as_ref()) {
                        Some(&i) => {
                            if self.0.seen[i] {
                                self.0.failed_key = Some(k.0.to_string());
                                return Err(de::Error::custom(format_args!(
                                    "duplicate key {:?} (each key at most once per record)",
                                    k.0
                                )));
                            }
                            self.0.seen[i] = true;
                            let s = self.0.scratch.len() as u32;
                            if let Err(e) = m.next_value_seed(Sink(&mut self.0.scratch)) {
                                return Err(blame(e, self.0));
                            }
                            self.0.ranges[i] = (s, self.0.scratch.len() as u32);
                        }
                        None => {
                            if let Err(e) = m.next_value::<IgnoredAny>() {
                                return Err(blame(e, self.0));
                            }
                        }
                    }
                }
                Ok(())
            }
        }
        let mut de = serde_json::Deserializer::from_slice(line);
        if let Err(e) = de.deserialize_map(Obj(self)).and_then(|_| de.end()) {
            let column = self.failed_key.take().unwrap_or_else(|| "*".into());
            return Err((column, e.to_string()));
        }
        Ok(Record::new(line_no, &self.scratch, &self.ranges, line))
    }
}

/// Read a flat JSON object line whose values are all strings without escapes or control
/// characters, or `null`, into byte ranges per header column (`base` is the line's offset in
/// the block; absent keys stay empty, unknown keys are skipped). `false` for anything else —
/// other value types, escapes, a repeated key, trailing text — so `serde_json` decides.
pub(crate) fn plain_json_fields(
    l: &[u8],
    base: usize,
    header: &[String],
    bounds: &mut [(u32, u32); MAX_FAST_COLS],
) -> bool {
    if header.len() > MAX_FAST_COLS || header.len() > 64 {
        return false;
    }
    bounds[..header.len()].fill((0, 0));
    let ws = |i: &mut usize| {
        while *i < l.len() && matches!(l[*i], b' ' | b'\t' | b'\r') {
            *i += 1;
        }
    };
    // The closing quote of the string opened at `open`, if it has no escape or control byte.
    let string_end = |open: usize| -> Option<usize> {
        let q = open + 1 + special_byte(&l[open + 1..])?;
        (l[q] == b'"').then_some(q)
    };
    let mut seen = 0u64;
    let mut expect = 0; // keys usually come in the header's order
    let mut i = 0;
    ws(&mut i);
    if l.get(i) != Some(&b'{') {
        return false;
    }
    i += 1;
    ws(&mut i);
    if l.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            if l.get(i) != Some(&b'"') {
                return false;
            }
            let Some(key_end) = string_end(i) else {
                return false;
            };
            let key = &l[i + 1..key_end];
            i = key_end + 1;
            ws(&mut i);
            if l.get(i) != Some(&b':') {
                return false;
            }
            i += 1;
            ws(&mut i);
            let value = match l.get(i) {
                Some(b'"') => {
                    let Some(e) = string_end(i) else {
                        return false;
                    };
                    let v = (i + 1, e);
                    i = e + 1;
                    v
                }
                Some(b'n') if l[i..].starts_with(b"null") => {
                    i += 4;
                    (i, i)
                }
                // Tokens that serde_json would render back as the same text: true, false and
                // integers in canonical form (no leading zero, no exponent or fraction).
                Some(b't') if l[i..].starts_with(b"true") => {
                    i += 4;
                    (i - 4, i)
                }
                Some(b'f') if l[i..].starts_with(b"false") => {
                    i += 5;
                    (i - 5, i)
                }
                Some(&c) if c == b'-' || c.is_ascii_digit() => {
                    let start = i;
                    i += (c == b'-') as usize;
                    let digits = i;
                    while i < l.len() && l[i].is_ascii_digit() {
                        i += 1;
                    }
                    let n = i - digits;
                    let canonical =
                        (1..=18).contains(&n) && (l[digits] != b'0' || (n == 1 && digits == start)); // not 007, -0
                    if !canonical || matches!(l.get(i), Some(b'.' | b'e' | b'E')) {
                        return false;
                    }
                    (start, i)
                }
                _ => return false,
            };
            let col = match header.get(expect) {
                Some(h) if h.as_bytes() == key => Some(expect),
                _ => header.iter().position(|h| h.as_bytes() == key),
            };
            if let Some(c) = col {
                expect = c + 1;
                if seen & (1 << c) != 0 {
                    return false;
                }
                seen |= 1 << c;
                bounds[c] = ((base + value.0) as u32, (base + value.1) as u32);
            }
            ws(&mut i);
            match l.get(i) {
                Some(b',') => {
                    i += 1;
                    ws(&mut i);
                }
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return false,
            }
        }
    }
    ws(&mut i);
    i == l.len()
}

/// The usual JSON Lines record as a template: every header key once, in the header's order,
/// each with a string value, no whitespace — `{"k0":"v0","k1":"v1",…}`. Such a line is read
/// by comparing the text between values with the template's literals, where
/// [`plain_json_fields`] reads keys and looks them up; any other line is left to it.
pub(crate) struct JsonTemplate {
    /// The text before each value: `{"k0":"`, then `","k1":"`, …
    before: Vec<Vec<u8>>,
}

impl JsonTemplate {
    /// `None` when a key would need escaping in JSON or there are too many columns.
    pub(crate) fn new(header: &[String]) -> Option<JsonTemplate> {
        if header.is_empty()
            || header.len() > MAX_FAST_COLS
            || header
                .iter()
                .any(|h| h.bytes().any(|c| c == b'"' || c == b'\\' || c < 0x20))
        {
            return None;
        }
        let before = header
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let mut t = match i {
                    0 => b"{\"".to_vec(),
                    _ => b"\",\"".to_vec(),
                };
                t.extend_from_slice(h.as_bytes());
                t.extend_from_slice(b"\":\"");
                t
            })
            .collect();
        Some(JsonTemplate { before })
    }

    /// [`plain_json_fields`] for a line that follows the template; `false` (bounds
    /// unspecified) for any other line.
    #[inline]
    pub(crate) fn fields(
        &self,
        l: &[u8],
        base: usize,
        bounds: &mut [(u32, u32); MAX_FAST_COLS],
    ) -> bool {
        let mut i = 0;
        for (lit, b) in self.before.iter().zip(bounds.iter_mut()) {
            if !starts_with_at(l, i, lit) {
                return false;
            }
            i += lit.len();
            let Some(k) = special_byte(&l[i..]) else {
                return false;
            };
            let e = i + k;
            if l[e] != b'"' {
                return false;
            }
            *b = ((base + i) as u32, (base + e) as u32);
            i = e;
        }
        l.len() == i + 2 && l[i + 1] == b'}'
    }
}

/// `l[i..].starts_with(lit)` with word compares (the literals are short: a key and its
/// punctuation).
#[inline(always)]
fn starts_with_at(l: &[u8], i: usize, lit: &[u8]) -> bool {
    let n = lit.len();
    if i + n > l.len() {
        return false;
    }
    let s = &l[i..i + n];
    if n < 8 {
        return s == lit;
    }
    let word = |b: &[u8], k: usize| u64::from_le_bytes(b[k..k + 8].try_into().expect("8 bytes"));
    let mut k = 0;
    while k + 8 < n {
        if word(s, k) != word(lit, k) {
            return false;
        }
        k += 8;
    }
    word(s, n - 8) == word(lit, n - 8)
}

/// The first `"`, `\\` or control byte (< 0x20) of `b`, 16 bytes at a time.
#[inline]
fn special_byte(b: &[u8]) -> Option<usize> {
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    let mut i = 0;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is baseline on x86_64; every load reads 16 bytes within `b`.
        unsafe {
            let quote = _mm_set1_epi8(b'"' as i8);
            let backslash = _mm_set1_epi8(b'\\' as i8);
            let sign = _mm_set1_epi8(i8::MIN);
            let ctl = _mm_set1_epi8((0x20u8 ^ 0x80) as i8);
            while i + 16 <= b.len() {
                let v = _mm_loadu_si128(b.as_ptr().add(i) as *const __m128i);
                let low = _mm_cmplt_epi8(_mm_xor_si128(v, sign), ctl);
                let hit = _mm_or_si128(
                    _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                    low,
                );
                let m = _mm_movemask_epi8(hit);
                if m != 0 {
                    return Some(i + m.trailing_zeros() as usize);
                }
                i += 16;
            }
        }
    }
    b[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|k| i + k)
}

/// Call `f` for every record of a block in either format. JSON lines that do not parse are
/// passed to `bad` with (line, column, message, raw). Returns the lines of the block and, when
/// it ends inside a quoted CSV field, that record's line and offset.
pub fn for_each_in_block(
    format: Format,
    json: &mut Option<JsonRecords>,
    block: &[u8],
    first_line: u64,
    mut f: impl FnMut(&Record<'_>),
    mut bad: impl FnMut(u64, String, String, &[u8]),
) -> (u64, Option<(u64, usize)>) {
    match format {
        Format::Csv => scan_records(block, first_line, f),
        Format::Jsonl => {
            let json = json.as_mut().expect("json recordizer");
            // Flat objects of plain values are read in place (see `plain_json_fields`); the
            // one UTF-8 check per block stands in for serde_json's.
            let ncols = json.header.len();
            let fast = ncols <= MAX_FAST_COLS
                && block.len() <= u32::MAX as usize
                && (block.is_ascii() || std::str::from_utf8(block).is_ok());
            let mut bounds = [(0u32, 0u32); MAX_FAST_COLS];
            let template = JsonTemplate::new(&json.header);
            let mut line = first_line;
            let mut rest = block;
            while !rest.is_empty() {
                let nl = memchr::memchr(b'\n', rest);
                let (l, next) = match nl {
                    Some(i) => (&rest[..i], &rest[i + 1..]),
                    None => (rest, &rest[rest.len()..]),
                };
                if !l.trim_ascii().is_empty() {
                    let base = l.as_ptr() as usize - block.as_ptr() as usize;
                    let plain = fast
                        && (template
                            .as_ref()
                            .is_some_and(|t| t.fields(l, base, &mut bounds))
                            || plain_json_fields(l, base, &json.header, &mut bounds));
                    if plain {
                        f(&Record::new(line, block, &bounds[..ncols], l));
                    } else {
                        match json.parse(line, l) {
                            Ok(r) => f(&r),
                            Err((col, msg)) => bad(line, col, msg, l),
                        }
                    }
                }
                if nl.is_some() {
                    line += 1;
                }
                rest = next;
            }
            (line - first_line, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_json_lines_read_in_place_match_serde_json() {
        let header: Vec<String> = ["account_id", "type", "n", "flag"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let lines = [
            r#"{"account_id":"A1","type":"demo","n":"12","flag":null}"#,
            r#"{ "account_id" : "A1" , "type": "demo" }  "#,
            r#"{"type":"demo","account_id":"A2"}"#,
            r#"{"account_id":"A1","extra":"x","n":42}"#,
            r#"{"account_id":"A1","n":-7,"flag":true}"#,
            r#"{"account_id":"A1","n":0,"flag":false}"#,
            r#"{"account_id":"A1","n":-0}"#,
            r#"{"account_id":"A1","n":007}"#,
            r#"{"account_id":"A1","n":1.50}"#,
            r#"{"account_id":"A1","n":1e3}"#,
            r#"{"account_id":"A1","n":12345678901234567890}"#,
            r#"{"account_id":"A"1"}"#,
            r#"{"account_id":"A\u00e91"}"#,
            r#"{"account_id":"Aé1","type":"démo"}"#,
            r#"{"account_id":"A1","x":{"deep":[1,2]}}"#,
            r#"{"account_id":"A1","type":["a","b"]}"#,
            r#"{"account_id":"A1","account_id":"A2"}"#,
            r#"{"account_id":"A1"} trailing"#,
            r#"{"account_id":"A1""#,
            r#"{"account_id":"A1",}"#,
            r#"{}"#,
            r#"[1,2]"#,
            r#""just a string""#,
            "{\"account_id\":\"tab\there\"}",
            r#"{"account_id":nul}"#,
            r#"{"account_id":"A1","n":-}"#,
        ];
        let mut serde = JsonRecords::new(&header);
        let mut bounds = [(0u32, 0u32); MAX_FAST_COLS];
        let mut fast_taken = 0;
        for l in lines {
            let b = l.as_bytes();
            let fast = plain_json_fields(b, 0, &header, &mut bounds).then(|| {
                (0..header.len())
                    .map(|c| b[bounds[c].0 as usize..bounds[c].1 as usize].to_vec())
                    .collect::<Vec<_>>()
            });
            let slow = serde.parse(1, b).ok().map(|r| {
                (0..header.len())
                    .map(|c| r.get(c).to_vec())
                    .collect::<Vec<_>>()
            });
            if let Some(fast) = fast {
                fast_taken += 1;
                assert_eq!(Some(fast), slow, "{l}");
            }
        }
        assert_eq!(fast_taken, 8, "the plain forms take the fast path");
    }

    #[test]
    fn json_records_follow_header_order() {
        let header: Vec<String> = ["account_id", "type", "n"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut j = JsonRecords::new(&header);
        let r = j
            .parse(
                3,
                br#"{"type":"demo","x":{"deep":[1,2]},"account_id":"A\"1","n":12.5}"#,
            )
            .unwrap();
        assert_eq!(r.get(0), b"A\"1");
        assert_eq!(r.get(1), b"demo");
        assert_eq!(r.get(2), b"12.5");
        assert_eq!(r.line, 3);
        let r = j
            .parse(4, br#"{"account_id":null,"type":["a","b"]}"#)
            .unwrap();
        assert_eq!(
            (r.get(0), r.get(1), r.get(2)),
            (&b""[..], &b"a;b"[..], &b""[..])
        );
        assert!(j.parse(5, b"{not json").is_err());
        assert!(j.parse(5, b"[1,2]").is_err());
    }

    /// A line the JSON template reads gives the bounds the key reader gives; lines off the
    /// template (other order, spaces, escapes, other value kinds, missing or extra keys,
    /// trailing bytes) are left to the key reader.
    #[test]
    fn json_template_agrees_with_the_key_reader() {
        let header: Vec<String> = ["account_id", "occurred_at", "type", "contact_id"]
            .map(String::from)
            .to_vec();
        let t = JsonTemplate::new(&header).unwrap();
        let cases: [(&str, bool); 14] = [
            (
                r#"{"account_id":"A1","occurred_at":"2026-01-01T00:00:00","type":"demo","contact_id":"C1"}"#,
                true,
            ),
            (
                r#"{"account_id":"","occurred_at":"","type":"","contact_id":""}"#,
                true,
            ),
            (
                r#"{"account_id":"A very long account identifier beyond sixteen bytes","occurred_at":"x","type":"y","contact_id":"z"}"#,
                true,
            ),
            (
                r#"{"occurred_at":"2026","account_id":"A1","type":"demo","contact_id":"C1"}"#,
                false,
            ),
            (
                r#"{"account_id": "A1","occurred_at":"2026","type":"demo","contact_id":"C1"}"#,
                false,
            ),
            (
                r#"{"account_id":"A\"1","occurred_at":"2026","type":"demo","contact_id":"C1"}"#,
                false,
            ),
            (
                r#"{"account_id":"A1","occurred_at":"2026","type":"demo","contact_id":null}"#,
                false,
            ),
            (
                r#"{"account_id":"A1","occurred_at":"2026","type":"demo"}"#,
                false,
            ),
            (
                r#"{"account_id":"A1","occurred_at":"2026","type":"demo","contact_id":"C1","x":"y"}"#,
                false,
            ),
            (
                r#"{"account_id":"A1","occurred_at":"2026","type":"demo","contact_id":"C1"} "#,
                false,
            ),
            (
                r#"{"account_id":"A1","occurred_at":"2026","type":"demo","contact_id":"C1"}x"#,
                false,
            ),
            (
                r#"{"account_id":"A1","occurred_at":"2026","type":"demo","contact_id":"C1""#,
                false,
            ),
            (
                r#"{"account_id":"A1","occurred_at":"2026","typ":"demo","contact_id":"C1"}"#,
                false,
            ),
            ("", false),
        ];
        for (line, fits) in cases {
            let (mut a, mut b) = ([(0u32, 0u32); MAX_FAST_COLS], [(0u32, 0u32); MAX_FAST_COLS]);
            assert_eq!(t.fields(line.as_bytes(), 7, &mut a), fits, "{line}");
            if fits {
                assert!(
                    plain_json_fields(line.as_bytes(), 7, &header, &mut b),
                    "{line}"
                );
                assert_eq!(a[..4], b[..4], "{line}");
            }
        }
        assert!(JsonTemplate::new(&["a\"b".to_string()]).is_none());
    }
}
