//! Escaping for CSV and JSON output: the SIMD scan for bytes that need it, formula cells,
//! the line writers.

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether any byte needs escaping: `"`/`\\`/control for JSON (`csv = false`), or
/// `,`/`"`/CR/LF for CSV (which then quotes the field).
#[inline]
pub(crate) fn needs_escape(b: &[u8], csv: bool) -> bool {
    let (c, j) = needs_escape_both(b);
    if csv {
        c
    } else {
        j
    }
}

/// [`needs_escape`] for CSV and for JSON at once: `(csv, json)`.
#[inline]
pub(crate) fn needs_escape_both(b: &[u8]) -> (bool, bool) {
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
pub(crate) fn csv_needs(b: &[u8]) -> (bool, bool) {
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
pub(crate) mod sse2 {
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
pub(crate) fn push_bytes(out: &mut Vec<u8>, b: &[u8]) {
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
pub(crate) unsafe fn put(dst: *mut u8, b: &[u8]) {
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
pub(crate) fn json_str_known(out: &mut Vec<u8>, s: &str, escape: bool) {
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
pub(crate) static CSV_RAW: AtomicBool = AtomicBool::new(false);

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
pub(crate) fn formula_cell(b: &[u8]) -> bool {
    const LEADS: u128 = 1 << b'=' | 1 << b'+' | 1 << b'-' | 1 << b'@' | 1 << b'\t' | 1 << b'\r';
    match b.first() {
        Some(&c) if c <= b'@' => LEADS >> c & 1 != 0 && !CSV_RAW.load(Ordering::Relaxed),
        _ => false,
    }
}

pub(crate) fn csv_field(out: &mut Vec<u8>, s: &str) {
    csv_field_known(out, s, needs_escape(s.as_bytes(), true), false);
}

/// An output cell: [`csv_field`], a formula neutralised ([`formula_cell`]).
pub(crate) fn csv_cell(out: &mut Vec<u8>, s: &str) {
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
pub(crate) fn csv_field_known(out: &mut Vec<u8>, s: &str, quote: bool, lead: bool) {
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

pub(crate) fn line_of<'s>(
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
