//! Opening an input file: format (CSV or JSON Lines, by extension), header, projection, and a
//! reader positioned at the first data record.

use crate::columns::{project, FileKind, Preset, Projection};
use crate::csv::{for_each_record, Record};
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
}

impl Source {
    pub fn open(
        path: &Path,
        kind: FileKind,
        mapping: &BTreeMap<String, String>,
        preset: Option<Preset>,
    ) -> Result<Source, IngestError> {
        let name = path.display().to_string();
        let io_err = |e| IngestError::Io {
            path: name.clone(),
            source: e,
        };
        let mut file = File::open(path).map_err(io_err)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
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
        if head[start..].contains(&0) {
            return Err(IngestError::NotText {
                file: name,
                reason: "it contains NUL bytes (binary data?)".into(),
            });
        }
        let format = Format::of(path);
        let (header, consumed, first_line) = match format {
            Format::Csv => csv_header(&name, &head[start..])?,
            Format::Jsonl => (jsonl_header(&name, &head[start..])?, 0, 1),
        };
        let projection = project(&name, &header, kind, mapping, preset)?;
        let rest = head.split_off(start + consumed);
        let reader: Box<dyn Read + Send + Sync> = Box::new(Cursor::new(rest).chain(file));
        Ok(Source {
            path: path.to_path_buf(),
            name,
            format,
            kind,
            header,
            projection,
            first_line,
            size,
            data_offset: (start + consumed) as u64,
            reader,
        })
    }

    /// The records to scan: the file mapped when possible (`size` still as opened), else the
    /// stream. Leaves an empty reader behind.
    pub fn take_input(&mut self) -> crate::chunk::Input {
        let reader = std::mem::replace(&mut self.reader, Box::new(std::io::empty()));
        let mapped = File::open(&self.path)
            .ok()
            .and_then(|f| crate::mem::MappedFile::open(&f))
            .filter(|m| m.bytes().len() as u64 == self.size && self.data_offset <= self.size);
        match mapped {
            Some(map) => crate::chunk::Input::Mapped {
                map,
                start: self.data_offset as usize,
            },
            None => crate::chunk::Input::Stream(reader),
        }
    }
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
pub struct JsonRecords {
    keys: foldhash::HashMap<String, usize>,
    ncols: usize,
    scratch: Vec<u8>,
    ranges: Vec<(u32, u32)>,
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
            keys: header
                .iter()
                .enumerate()
                .map(|(i, k)| (k.clone(), i))
                .collect(),
            ncols: header.len(),
            scratch: Vec::new(),
            ranges: Vec::new(),
        }
    }

    /// Parse one line; `Err((column, message))` when it is not a JSON object.
    pub fn parse<'s>(
        &'s mut self,
        line_no: u64,
        line: &'s [u8],
    ) -> Result<Record<'s>, (usize, String)> {
        self.scratch.clear();
        self.ranges.clear();
        self.ranges.resize(self.ncols, (0, 0));
        struct Obj<'a>(&'a mut JsonRecords);
        impl<'de> Visitor<'de> for Obj<'_> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
                while let Some(k) = m.next_key::<Key<'de>>()? {
                    match self.0.keys.get(k.0.as_ref()) {
                        Some(&i) => {
                            let s = self.0.scratch.len() as u32;
                            m.next_value_seed(Sink(&mut self.0.scratch))?;
                            self.0.ranges[i] = (s, self.0.scratch.len() as u32);
                        }
                        None => {
                            m.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(())
            }
        }
        let mut de = serde_json::Deserializer::from_slice(line);
        de.deserialize_map(Obj(self))
            .and_then(|_| de.end())
            .map_err(|e| (e.column(), e.to_string()))?;
        Ok(Record::new(line_no, &self.scratch, &self.ranges, line))
    }
}

/// Call `f` for every record of a block in either format. JSON lines that do not parse are
/// passed to `bad` with (line, column, message, raw).
pub fn for_each_in_block(
    format: Format,
    json: &mut Option<JsonRecords>,
    block: &[u8],
    first_line: u64,
    mut f: impl FnMut(&Record<'_>),
    mut bad: impl FnMut(u64, usize, String, &[u8]),
) -> (u64, Option<u64>) {
    match format {
        Format::Csv => for_each_record(block, first_line, f),
        Format::Jsonl => {
            let json = json.as_mut().expect("json recordizer");
            let mut line = first_line;
            let mut rest = block;
            while !rest.is_empty() {
                let nl = memchr::memchr(b'\n', rest);
                let (l, next) = match nl {
                    Some(i) => (&rest[..i], &rest[i + 1..]),
                    None => (rest, &rest[rest.len()..]),
                };
                if !l.trim_ascii().is_empty() {
                    match json.parse(line, l) {
                        Ok(r) => f(&r),
                        Err((col, msg)) => bad(line, col, msg, l),
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
}
