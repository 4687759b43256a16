//! An RFC 4180 record scanner over byte buffers, built for the bulk path: records without quotes
//! (nearly all of them) are split with `memchr` and never copied; quoted records are unescaped
//! into a scratch buffer.

use memchr::{memchr, memchr_iter, memrchr};

/// One record: field values as byte ranges into `bytes`.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Physical line where the record starts (1-based).
    pub line: u64,
    bytes: &'a [u8],
    ranges: &'a [(u32, u32)],
    /// The record's original text (for rejected rows).
    pub raw: &'a [u8],
}

impl<'a> Record<'a> {
    pub fn new(line: u64, bytes: &'a [u8], ranges: &'a [(u32, u32)], raw: &'a [u8]) -> Self {
        Record {
            line,
            bytes,
            ranges,
            raw,
        }
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Field `i`; empty when absent.
    #[inline]
    pub fn get(&self, i: usize) -> &'a [u8] {
        match self.ranges.get(i) {
            Some(&(s, e)) => &self.bytes[s as usize..e as usize],
            None => b"",
        }
    }

    /// Field `i` as text, trimmed of ASCII spaces; `Err` when it is not valid UTF-8.
    #[inline]
    pub fn str(&self, i: usize) -> Result<&'a str, std::str::Utf8Error> {
        std::str::from_utf8(self.get(i).trim_ascii())
    }

    pub fn raw_text(&self) -> String {
        let r = self.raw;
        let r = r.strip_suffix(b"\n").unwrap_or(r);
        let r = r.strip_suffix(b"\r").unwrap_or(r);
        String::from_utf8_lossy(r).into_owned()
    }
}

/// Reusable buffers for scanning records.
#[derive(Default)]
pub struct Scanner {
    ranges: Vec<(u32, u32)>,
    scratch: Vec<u8>,
}

/// Outcome of scanning one record.
pub enum Scan {
    Record {
        end: usize,
        newlines: u64,
    },
    /// A quoted field never closes before the end of the buffer.
    Unterminated,
}

impl Scanner {
    /// Scan the record starting at `pos` in `buf`; call `f` with it unless it is blank.
    /// Returns where the next record starts and how many line breaks the record spans.
    #[inline]
    pub fn scan<'b, F>(&'b mut self, buf: &'b [u8], pos: usize, line: u64, f: F) -> Scan
    where
        F: FnOnce(&Record<'b>),
    {
        let rest = &buf[pos..];
        let nl = memchr(b'\n', rest);
        let line_end = nl.unwrap_or(rest.len());
        let mut content = &rest[..line_end];
        let next = pos + nl.map(|i| i + 1).unwrap_or(rest.len());
        if memchr(b'"', content).is_none() {
            if let Some(b'\r') = content.last() {
                content = &content[..content.len() - 1];
            }
            if content.is_empty() {
                return Scan::Record {
                    end: next,
                    newlines: nl.is_some() as u64,
                };
            }
            self.ranges.clear();
            let mut start = 0u32;
            for i in memchr_iter(b',', content) {
                self.ranges.push((start, i as u32));
                start = i as u32 + 1;
            }
            self.ranges.push((start, content.len() as u32));
            let rec = Record {
                line,
                bytes: content,
                ranges: &self.ranges,
                raw: &buf[pos..next],
            };
            f(&rec);
            return Scan::Record {
                end: next,
                newlines: nl.is_some() as u64,
            };
        }
        self.scan_quoted(buf, pos, line, f)
    }

    #[cold]
    fn scan_quoted<'b, F>(&'b mut self, buf: &'b [u8], pos: usize, line: u64, f: F) -> Scan
    where
        F: FnOnce(&Record<'b>),
    {
        self.ranges.clear();
        self.scratch.clear();
        let mut i = pos;
        let mut newlines = 0u64;
        let mut field_start = 0u32;
        let mut in_quotes = false;
        let mut at_field_start = true;
        loop {
            if i >= buf.len() {
                if in_quotes {
                    return Scan::Unterminated;
                }
                break;
            }
            let b = buf[i];
            if in_quotes {
                if b == b'"' {
                    if buf.get(i + 1) == Some(&b'"') {
                        self.scratch.push(b'"');
                        i += 2;
                        continue;
                    }
                    in_quotes = false;
                    i += 1;
                    continue;
                }
                if b == b'\n' {
                    newlines += 1;
                }
                self.scratch.push(b);
                i += 1;
                continue;
            }
            match b {
                b'"' if at_field_start => {
                    in_quotes = true;
                    at_field_start = false;
                    i += 1;
                }
                b',' => {
                    self.ranges.push((field_start, self.scratch.len() as u32));
                    field_start = self.scratch.len() as u32;
                    at_field_start = true;
                    i += 1;
                }
                b'\n' => {
                    newlines += 1;
                    i += 1;
                    break;
                }
                b'\r' if buf.get(i + 1) == Some(&b'\n') || i + 1 == buf.len() => {
                    i += 1;
                }
                _ => {
                    // A stray quote inside an unquoted field is kept literally (lenient).
                    self.scratch.push(b);
                    at_field_start = false;
                    i += 1;
                }
            }
        }
        self.ranges.push((field_start, self.scratch.len() as u32));
        let rec = Record {
            line,
            bytes: &self.scratch,
            ranges: &self.ranges,
            raw: &buf[pos..i],
        };
        f(&rec);
        Scan::Record { end: i, newlines }
    }
}

/// Call `f` for every non-blank record of `buf` (whole records only). `first_line` is the line
/// number of `buf[0]`. Returns the number of line breaks seen and, if the buffer ends inside a
/// quoted field, the line where that record starts.
pub fn for_each_record(
    buf: &[u8],
    first_line: u64,
    mut f: impl FnMut(&Record<'_>),
) -> (u64, Option<u64>) {
    let mut sc = Scanner::default();
    let mut pos = 0;
    let mut line = first_line;
    while pos < buf.len() {
        match sc.scan(buf, pos, line, &mut f) {
            Scan::Record { end, newlines } => {
                line += newlines;
                pos = end;
            }
            Scan::Unterminated => return (line - first_line, Some(line)),
        }
    }
    (line - first_line, None)
}

/// Where to cut `buf` so that the first part holds only whole records: just after the last line
/// break that is outside quotes. `None` when there is no such break.
pub fn split_point(buf: &[u8], quote_aware: bool) -> Option<usize> {
    if !quote_aware || memchr(b'"', buf).is_none() {
        return memrchr(b'\n', buf).map(|i| i + 1);
    }
    let mut in_quotes = false;
    let mut last = None;
    for i in memchr::memchr2_iter(b'"', b'\n', buf) {
        if buf[i] == b'"' {
            in_quotes = !in_quotes;
        } else if !in_quotes {
            last = Some(i + 1);
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(buf: &[u8]) -> Vec<(u64, Vec<String>)> {
        let mut out = vec![];
        for_each_record(buf, 1, |r| {
            out.push((
                r.line,
                (0..r.len())
                    .map(|i| String::from_utf8(r.get(i).to_vec()).unwrap())
                    .collect(),
            ))
        });
        out
    }

    #[test]
    fn plain_and_crlf() {
        let got = collect(b"a,b,c\r\n1,,3\r\n\r\nx,y,z");
        assert_eq!(
            got,
            vec![
                (1, vec!["a".into(), "b".into(), "c".into()]),
                (2, vec!["1".into(), "".into(), "3".into()]),
                (4, vec!["x".into(), "y".into(), "z".into()]),
            ]
        );
    }

    #[test]
    fn quoted_fields_with_commas_quotes_and_newlines() {
        let got = collect(b"id,text\n1,\"a, \"\"b\"\"\nc\"\r\n2,plain\n3,\"\"\n");
        assert_eq!(got[1].1, vec!["1", "a, \"b\"\nc"]);
        assert_eq!(got[2], (4, vec!["2".into(), "plain".into()]));
        assert_eq!(got[3].1, vec!["3", ""]);
    }

    #[test]
    fn unterminated_quote_is_reported() {
        let (_, bad) = for_each_record(b"a\n\"oops\nmore", 1, |_| {});
        assert_eq!(bad, Some(2));
    }

    #[test]
    fn split_points_respect_quotes() {
        assert_eq!(split_point(b"a\nb\nc", true), Some(4));
        assert_eq!(split_point(b"a\n\"b\nc", true), Some(2));
        assert_eq!(split_point(b"abc", true), None);
        assert_eq!(split_point(b"a\n\"b\nc\"\nd", true), Some(8));
    }
}
