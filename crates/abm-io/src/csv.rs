//! An RFC 4180 record scanner over byte buffers, built for the bulk path: records without quotes
//! (nearly all of them) are split with `memchr` and never copied; quoted records are unescaped
//! into a scratch buffer.

use memchr::{memchr, memrchr};

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

    /// The fields as byte ranges into [`Self::bytes`].
    pub fn ranges(&self) -> &'a [(u32, u32)] {
        self.ranges
    }

    /// The bytes the field ranges point into.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
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
        printable(String::from_utf8_lossy(r).into_owned())
    }
}

/// `text` with each NUL byte shown as `␀` (U+2400), for rejected rows' `record`: the row
/// was rejected for holding one, and no output should carry it on.
pub fn printable(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{2400}")
    } else {
        text
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
        self.ranges.clear();
        match split_plain(buf, pos, &mut self.ranges) {
            Plain::Quoted => {}
            Plain::Line { end, next } => {
                let newlines = (next > end) as u64;
                let mut content = &buf[pos..end];
                if let Some(b'\r') = content.last() {
                    content = &content[..content.len() - 1];
                    if let Some(last) = self.ranges.last_mut() {
                        last.1 = last.1.min(content.len() as u32);
                    }
                }
                if content.is_empty() {
                    return Scan::Record {
                        end: next,
                        newlines,
                    };
                }
                let rec = Record {
                    line,
                    bytes: content,
                    ranges: &self.ranges,
                    raw: &buf[pos..next],
                };
                f(&rec);
                return Scan::Record {
                    end: next,
                    newlines,
                };
            }
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

enum Plain {
    /// A record without quotes: content ends at `end` (exclusive, before `\n`), next starts at
    /// `next`.
    Line { end: usize, next: usize },
    /// The record has a quote: take the slow path.
    Quoted,
}

/// One pass over a record without quotes: field ranges (relative to `pos`) into `ranges`.
#[inline]
fn split_plain(buf: &[u8], pos: usize, ranges: &mut Vec<(u32, u32)>) -> Plain {
    crate::mem::prefetch(buf.as_ptr().wrapping_add(pos + crate::mem::PREFETCH_AHEAD));
    let mut field_start = pos;
    let mut i = pos;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of the x86_64 baseline; loads stay within `buf` (i + 16 ≤ len).
        unsafe {
            let comma = _mm_set1_epi8(b',' as i8);
            let nl = _mm_set1_epi8(b'\n' as i8);
            let quote = _mm_set1_epi8(b'"' as i8);
            while i + 16 <= buf.len() {
                let v = _mm_loadu_si128(buf.as_ptr().add(i) as *const __m128i);
                let mc = _mm_movemask_epi8(_mm_cmpeq_epi8(v, comma)) as u32;
                let mn = _mm_movemask_epi8(_mm_cmpeq_epi8(v, nl)) as u32;
                let mq = _mm_movemask_epi8(_mm_cmpeq_epi8(v, quote)) as u32;
                let stop = mn | mq;
                let mut m = if stop != 0 {
                    mc & ((1u32 << stop.trailing_zeros()) - 1)
                } else {
                    mc
                };
                while m != 0 {
                    let at = i + m.trailing_zeros() as usize;
                    ranges.push(((field_start - pos) as u32, (at - pos) as u32));
                    field_start = at + 1;
                    m &= m - 1;
                }
                if stop != 0 {
                    let k = stop.trailing_zeros();
                    if mq & (1 << k) != 0 {
                        return Plain::Quoted;
                    }
                    let end = i + k as usize;
                    ranges.push(((field_start - pos) as u32, (end - pos) as u32));
                    return Plain::Line { end, next: end + 1 };
                }
                i += 16;
            }
        }
    }
    while i < buf.len() {
        match buf[i] {
            b',' => {
                ranges.push(((field_start - pos) as u32, (i - pos) as u32));
                field_start = i + 1;
            }
            b'"' => return Plain::Quoted,
            b'\n' => {
                ranges.push(((field_start - pos) as u32, (i - pos) as u32));
                return Plain::Line {
                    end: i,
                    next: i + 1,
                };
            }
            _ => {}
        }
        i += 1;
    }
    ranges.push(((field_start - pos) as u32, (i - pos) as u32));
    Plain::Line {
        end: buf.len(),
        next: buf.len(),
    }
}

/// Call `f` for every non-blank record of `buf` (whole records only). `first_line` is the line
/// number of `buf[0]`. Returns the number of line breaks seen and, if the buffer ends inside a
/// quoted field, the line where that record starts.
pub fn for_each_record(
    buf: &[u8],
    first_line: u64,
    f: impl FnMut(&Record<'_>),
) -> (u64, Option<u64>) {
    let (lines, bad) = scan_records(buf, first_line, f);
    (lines, bad.map(|(line, _)| line))
}

/// [`for_each_record`], reporting an unterminated record as its line and its byte offset in
/// `buf` (the record and everything after it were swallowed by the open quote).
pub fn scan_records(
    buf: &[u8],
    first_line: u64,
    mut f: impl FnMut(&Record<'_>),
) -> (u64, Option<(u64, usize)>) {
    let mut sc = Scanner::default();
    let mut pos = 0;
    let mut line = first_line;
    while pos < buf.len() {
        match sc.scan(buf, pos, line, &mut f) {
            Scan::Record { end, newlines } => {
                line += newlines;
                pos = end;
            }
            Scan::Unterminated => return (line - first_line, Some((line, pos))),
        }
    }
    (line - first_line, None)
}

/// Physical lines in `rest` (a last line without a line break counts).
pub fn physical_lines(rest: &[u8]) -> u64 {
    let n = memchr::memchr_iter(b'\n', rest).count() as u64;
    n + (!rest.is_empty() && rest.last() != Some(&b'\n')) as u64
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
    fn long_and_short_lines_split_alike() {
        // Lines longer and shorter than the 16-byte SIMD stride, fields at every offset.
        let mut text = String::new();
        let mut want = vec![];
        for n in 0..40 {
            let fields: Vec<String> = (0..5).map(|k| "x".repeat((n * 7 + k * 3) % 23)).collect();
            text.push_str(&fields.join(","));
            text.push_str(if n % 3 == 0 { "\r\n" } else { "\n" });
            if fields.iter().any(|f| !f.is_empty()) {
                want.push(fields);
            }
        }
        text.push_str("last,line");
        want.push(vec!["last".into(), "line".into()]);
        let got: Vec<Vec<String>> = collect(text.as_bytes()).into_iter().map(|r| r.1).collect();
        assert_eq!(got, want);
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
