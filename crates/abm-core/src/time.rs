//! Instants as microseconds since the Unix epoch, UTC.
//!
//! Accepted input forms (SPEC §3): RFC 3339 (`2026-10-09T21:19:22Z`, `…+02:00`, fractional
//! seconds), naive timestamps (`2026-10-09T21:19:22` or with a space, read as UTC) and bare dates
//! (`2026-10-09`, midnight UTC). Parsing is allocation-free: it is on the bulk hot path.

use std::fmt;

/// Microseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(pub i64);

pub const MICROS_PER_SEC: i64 = 1_000_000;
pub const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SEC;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a date or timestamp (expected YYYY-MM-DD, YYYY-MM-DDTHH:MM:SS[.f][Z|±HH:MM]): {0:?}")]
pub struct TimeError(pub String);

impl Instant {
    pub const MIN: Instant = Instant(i64::MIN);
    pub const MAX: Instant = Instant(i64::MAX);

    pub fn parse(s: &str) -> Result<Instant, TimeError> {
        parse_bytes(s.trim().as_bytes()).ok_or_else(|| TimeError(s.to_string()))
    }

    /// `self - days`, saturating.
    pub fn minus_days(self, days: u32) -> Instant {
        Instant(self.0.saturating_sub(days as i64 * MICROS_PER_DAY))
    }

    pub fn plus_days(self, days: u32) -> Instant {
        Instant(self.0.saturating_add(days as i64 * MICROS_PER_DAY))
    }

    /// Whole days from `earlier` to `self` (floor), for messages.
    pub fn days_since(self, earlier: Instant) -> i64 {
        (self.0 - earlier.0).div_euclid(MICROS_PER_DAY)
    }

    /// RFC 3339 in UTC: `2026-10-09T21:19:22Z`, with microseconds only when non-zero.
    pub fn to_rfc3339(self) -> String {
        self.to_string()
    }

    /// The calendar date part, `YYYY-MM-DD`.
    pub fn date_string(self) -> String {
        let days = self.0.div_euclid(MICROS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        format!("{y:04}-{m:02}-{d:02}")
    }

    /// Displays as `YYYY-MM-DD` without allocating.
    pub fn date(self) -> DateOnly {
        DateOnly(self)
    }

    pub fn year(self) -> i64 {
        civil_from_days(self.0.div_euclid(MICROS_PER_DAY)).0
    }
}

/// Append `v` in decimal, at least `width` digits (zero-padded), without the formatting
/// machinery (the bulk path renders millions of these).
#[inline]
pub fn push_padded(s: &mut String, v: i64, width: usize) {
    if (0..10).contains(&v) && width <= 1 {
        // The usual count or rule number: one digit.
        s.push((b'0' + v as u8) as char);
        return;
    }
    if v < 0 {
        s.push('-');
    }
    let mut v = v.unsigned_abs();
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let start = i.min(buf.len() - width.min(buf.len()));
    s.push_str(std::str::from_utf8(&buf[start..]).expect("ASCII digits"));
}

impl Instant {
    /// Append `YYYY-MM-DD` (what `self.date()` displays).
    pub fn push_date(self, s: &mut String) {
        let (y, m, d) = civil_from_days(self.0.div_euclid(MICROS_PER_DAY));
        if (0..10_000).contains(&y) {
            // The usual four-digit year: ten bytes at once.
            let digit = |v: i64| b'0' + v as u8;
            let b = [
                digit(y / 1000),
                digit(y / 100 % 10),
                digit(y / 10 % 10),
                digit(y % 10),
                b'-',
                digit(m / 10),
                digit(m % 10),
                b'-',
                digit(d / 10),
                digit(d % 10),
            ];
            s.push_str(std::str::from_utf8(&b).expect("ASCII"));
            return;
        }
        push_padded(s, y, 4);
        s.push('-');
        push_padded(s, m, 2);
        s.push('-');
        push_padded(s, d, 2);
    }

    /// Append the RFC 3339 text that `Display` writes.
    pub fn push_rfc3339(self, s: &mut String) {
        let rem = self.0.rem_euclid(MICROS_PER_DAY);
        self.push_date(s);
        let secs = rem / MICROS_PER_SEC;
        for (sep, v) in [
            ('T', secs / 3600),
            (':', (secs / 60) % 60),
            (':', secs % 60),
        ] {
            s.push(sep);
            push_padded(s, v, 2);
        }
        let micros = rem % MICROS_PER_SEC;
        if micros != 0 {
            let mut frac = String::with_capacity(6);
            push_padded(&mut frac, micros, 6);
            s.push('.');
            s.push_str(frac.trim_end_matches('0'));
        }
        s.push('Z');
    }
}

/// The date part of an instant, for `write!` (see [`Instant::date`]).
pub struct DateOnly(Instant);

impl fmt::Display for DateOnly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = civil_from_days(self.0 .0.div_euclid(MICROS_PER_DAY));
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl Instant {
    /// RFC 3339 text (as `Display` writes it) into `buf`, for years 0 to 9999; `None` outside
    /// them. No formatter machinery: an explanation serializes dozens of instants.
    pub fn rfc3339_into(self, buf: &mut [u8; 27]) -> Option<&str> {
        let days = self.0.div_euclid(MICROS_PER_DAY);
        let rem = self.0.rem_euclid(MICROS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        if !(0..=9999).contains(&y) {
            return None;
        }
        let secs = rem / MICROS_PER_SEC;
        let mut micros = rem % MICROS_PER_SEC;
        let two = |b: &mut [u8], v: i64| {
            b[0] = b'0' + (v / 10) as u8;
            b[1] = b'0' + (v % 10) as u8;
        };
        two(&mut buf[0..2], y / 100);
        two(&mut buf[2..4], y % 100);
        buf[4] = b'-';
        two(&mut buf[5..7], m);
        buf[7] = b'-';
        two(&mut buf[8..10], d);
        buf[10] = b'T';
        two(&mut buf[11..13], secs / 3600);
        buf[13] = b':';
        two(&mut buf[14..16], (secs / 60) % 60);
        buf[16] = b':';
        two(&mut buf[17..19], secs % 60);
        let mut len = 19;
        if micros != 0 {
            buf[19] = b'.';
            let mut digits = 6;
            while micros % 10 == 0 {
                micros /= 10;
                digits -= 1;
            }
            for i in (0..digits).rev() {
                buf[20 + i] = b'0' + (micros % 10) as u8;
                micros /= 10;
            }
            len = 20 + digits;
        }
        buf[len] = b'Z';
        std::str::from_utf8(&buf[..=len]).ok()
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 27];
        match self.rfc3339_into(&mut buf) {
            Some(s) => f.write_str(s),
            None => Generic(*self).fmt(f),
        }
    }
}

/// An instant's text by the formatter (any year): what `rfc3339_into` must equal.
pub(crate) struct Generic(pub(crate) Instant);

impl fmt::Display for Generic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Generic(t) = self;
        let days = t.0.div_euclid(MICROS_PER_DAY);
        let rem = t.0.rem_euclid(MICROS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        let secs = rem / MICROS_PER_SEC;
        let micros = rem % MICROS_PER_SEC;
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            secs / 3600,
            (secs / 60) % 60,
            secs % 60
        )?;
        if micros != 0 {
            let mut frac = format!("{micros:06}");
            while frac.ends_with('0') {
                frac.pop();
            }
            write!(f, ".{frac}")?;
        }
        f.write_str("Z")
    }
}

/// Serialized as RFC 3339 text; `Instant::MIN` ("never") as `null`-like text `"never"`.
impl serde::Serialize for Instant {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if *self == Instant::MIN {
            s.serialize_str("never")
        } else {
            let mut buf = [0u8; 27];
            match self.rfc3339_into(&mut buf) {
                Some(text) => s.serialize_str(text),
                None => s.collect_str(self),
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for Instant {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if s == "never" {
            return Ok(Instant::MIN);
        }
        Instant::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for Instant {
    type Err = TimeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Instant::parse(s)
    }
}

#[inline]
fn digits2(b: &[u8], i: usize) -> Option<i64> {
    let (a, c) = (
        b.get(i)?.wrapping_sub(b'0'),
        b.get(i + 1)?.wrapping_sub(b'0'),
    );
    if a < 10 && c < 10 {
        Some((a * 10 + c) as i64)
    } else {
        None
    }
}

/// Parse without allocation; `None` when the text is not one of the accepted forms.
#[inline]
pub fn parse_bytes(b: &[u8]) -> Option<Instant> {
    if let Some(t) = parse_plain_timestamp(b) {
        return Some(t);
    }
    parse_general(b)
}

/// The common exact form `YYYY-MM-DDTHH:MM:SS` (optionally `Z`): fixed positions, no bounds
/// checks per digit. `None` means "not this form" (the general parser decides), so it agrees
/// with [`parse_general`] on every input it accepts.
#[inline(always)]
fn parse_plain_timestamp(b: &[u8]) -> Option<Instant> {
    plain_parts(b).map(|(days, secs)| Instant(days * MICROS_PER_DAY + secs * MICROS_PER_SEC))
}

/// The plain form's three little-endian words: `YYYY-MM-`, `DDTHH:MM` (for `DD` and the `T`)
/// and, overlapping, `HH:MM:SS`; `None` when the length is not the form's.
#[inline(always)]
fn plain_words(b: &[u8]) -> Option<(u64, u64, u64)> {
    if b.len() != 19 && !(b.len() == 20 && b[19] | 0x20 == b'z') {
        return None;
    }
    let word = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    Some((word(0), word(8), word(11)))
}

/// [`parse_plain_timestamp`] as (days since the epoch, seconds into the day).
#[inline(always)]
fn plain_parts(b: &[u8]) -> Option<(i64, i64)> {
    let (lo, mid, hi) = plain_words(b)?;
    // A byte is a digit exactly when it XOR '0' is at most 9; separators are masked out of
    // that check and compared on their own.
    const LO_SEP: u64 = 0xff00_00ff_0000_0000; // bytes 4 and 7: '-'
    let t = (mid >> 16) as u8;
    let dl = (lo ^ ZEROS) & !LO_SEP;
    let dd = (mid ^ ZEROS) & 0xffff;
    let byte = |w: u64, i: u32| ((w >> (8 * i)) & 0xff) as i64;
    let pl = digit_pairs(dl);
    let y = byte(pl, 0) * 100 + byte(pl, 2);
    let mo = byte(pl, 5);
    let day = byte(digit_pairs(dd), 0);
    let (time_ok, secs) = time_of_day(hi);
    // Days in the month from the month-start table (years outside it: the rule).
    let m = (y - TABLE_FROM) * 12 + mo - 1;
    let in_table = (0..(TABLE_YEARS * 12) as i64).contains(&m);
    let days_in = if in_table {
        (MONTH_START[m as usize + 1] - MONTH_START[m as usize]) as i64
    } else if (1..=12).contains(&mo) {
        days_in_month(y, mo)
    } else {
        0
    };
    // One branch for every check (all pass on valid input).
    let ok = (lo & LO_SEP == 0x2d00_002d_0000_0000)
        & (t | 0x20 == b't' || t == b' ')
        & (not_digits(dl) | not_digits(dd) == 0)
        & (1..=12).contains(&mo)
        & (1..=days_in).contains(&day)
        & time_ok;
    if !ok {
        return None;
    }
    let days = match in_table {
        true => MONTH_START[m as usize] as i64 + day - 1,
        false => days_from_civil(y, mo, day),
    };
    Some((days, secs))
}

const ZEROS: u64 = 0x3030_3030_3030_3030;

/// The high bit of each byte of `d` (bytes XOR '0') that is not a digit.
#[inline(always)]
fn not_digits(d: u64) -> u64 {
    (d | d.wrapping_add(0x7676_7676_7676_7676)) & 0x8080_8080_8080_8080
}

/// Neighbouring digits as numbers: byte k becomes 10·digit(k) + digit(k + 1).
#[inline(always)]
fn digit_pairs(d: u64) -> u64 {
    d.wrapping_mul(10).wrapping_add(d >> 8)
}

/// [`parse_bytes`] for a stream of timestamps, remembering the dates it has checked: the
/// plain form's date part (`YYYY-MM-DDT`, the bulk of the parse) is looked up in a small
/// direct-mapped table of dates seen, so a timestamp whose date came before costs only the
/// time-of-day checks. Every answer is [`parse_bytes`]'s: the table holds only dates that the
/// full parser accepted, and anything unusual takes the full parser.
#[derive(Clone)]
pub struct TimestampParser {
    /// (the first eight bytes, the next three, days since the epoch); all zero when empty
    /// (a valid date's first word is never zero).
    dates: Box<[(u64, u32, i32); Self::SLOTS]>,
}

impl Default for TimestampParser {
    fn default() -> Self {
        TimestampParser {
            dates: Box::new([(0, 0, 0); Self::SLOTS]),
        }
    }
}

impl TimestampParser {
    /// Ten times a year of dates, so few dates of a year share a slot (64 KiB; the slots in
    /// use are one cache line each, ~25 KiB for a year).
    const SLOTS: usize = 4096;

    #[inline(always)]
    pub fn parse(&mut self, b: &[u8]) -> Option<Instant> {
        let Some((lo, mid, hi)) = plain_words(b) else {
            return parse_general(b);
        };
        let dd_t = (mid & 0xff_ffff) as u32;
        let slot = ((lo.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ dd_t as u64)
            .wrapping_mul(0xbf58_476d_1ce4_e5b9)
            >> (64 - Self::SLOTS.trailing_zeros())) as usize;
        let (key_lo, key_dd, days) = self.dates[slot];
        if key_lo == lo && key_dd == dd_t {
            if let (true, secs) = time_of_day(hi) {
                return Some(Instant(
                    days as i64 * MICROS_PER_DAY + secs * MICROS_PER_SEC,
                ));
            }
        }
        // Not remembered (or an invalid time): the full parse, remembering a plain form's date.
        let Some((days, secs)) = plain_parts(b) else {
            return parse_general(b);
        };
        if let Ok(d) = i32::try_from(days) {
            self.dates[slot] = (lo, dd_t, d);
        }
        Some(Instant(days * MICROS_PER_DAY + secs * MICROS_PER_SEC))
    }
}

/// Seconds into the day of `HH:MM:SS` read as one little-endian word, and whether it is
/// valid as the plain form checks it (digits, colons, hours to 23, minutes to 59, seconds to
/// 60). No branch: callers fold the flag into their own.
#[inline(always)]
fn time_of_day(hi: u64) -> (bool, i64) {
    const HI_SEP: u64 = 0x0000_ff00_00ff_0000; // bytes 2 and 5: ':'
    let dh = (hi ^ ZEROS) & !HI_SEP;
    let ph = digit_pairs(dh);
    let (h, mi, sec) = (ph & 0xff, (ph >> 24) & 0xff, (ph >> 48) & 0xff);
    let ok = (hi & HI_SEP == 0x0000_3a00_003a_0000)
        & (not_digits(dh) == 0)
        & (h <= 23)
        & (mi <= 59)
        & (sec <= 60);
    (ok, (h * 3600 + mi * 60 + sec) as i64)
}

#[inline]
fn parse_general(b: &[u8]) -> Option<Instant> {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y = digits2(b, 0)? * 100 + digits2(b, 2)?;
    let mo = digits2(b, 5)?;
    let d = digits2(b, 8)?;
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    let mut t = days_fast(y, mo, d) * MICROS_PER_DAY;
    if b.len() == 10 {
        return Some(Instant(t));
    }
    if !(b[10] == b'T' || b[10] == b't' || b[10] == b' ') || b.len() < 16 || b[13] != b':' {
        return None;
    }
    let h = digits2(b, 11)?;
    let mi = digits2(b, 14)?;
    let mut i = 16;
    let mut s = 0;
    if b.get(16) == Some(&b':') {
        s = digits2(b, 17)?;
        i = 19;
    }
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    t += (h * 3600 + mi * 60 + s) * MICROS_PER_SEC;
    if b.get(i) == Some(&b'.') || b.get(i) == Some(&b',') {
        i += 1;
        let start = i;
        let mut micros = 0i64;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 6 {
                micros = micros * 10 + (b[i] - b'0') as i64;
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..6 {
            micros *= 10;
        }
        t += micros;
    }
    match b.get(i) {
        None => {}
        Some(b'Z') | Some(b'z') if i + 1 == b.len() => {}
        Some(&sign @ (b'+' | b'-')) => {
            let oh = digits2(b, i + 1)?;
            let (om, end) = if b.get(i + 3) == Some(&b':') {
                (digits2(b, i + 4)?, i + 6)
            } else if b.len() == i + 3 {
                (0, i + 3)
            } else {
                (digits2(b, i + 3)?, i + 5)
            };
            if end != b.len() || oh > 23 || om > 59 {
                return None;
            }
            let off = (oh * 3600 + om * 60) * MICROS_PER_SEC;
            // local = UTC + offset  =>  UTC = local - offset
            t = if sign == b'+' { t - off } else { t + off };
        }
        _ => return None,
    }
    Some(Instant(t))
}

const TABLE_FROM: i64 = 1900;
const TABLE_YEARS: usize = 300;

/// Days since the epoch of the first of each month, 1900–2199, and of 2200-01 (computed at
/// compile time).
static MONTH_START: [i32; TABLE_YEARS * 12 + 1] = {
    let mut t = [0i32; TABLE_YEARS * 12 + 1];
    let mut i = 0;
    while i <= TABLE_YEARS * 12 {
        t[i] = days_from_civil(TABLE_FROM + (i / 12) as i64, (i % 12) as i64 + 1, 1) as i32;
        i += 1;
    }
    t
};

#[inline]
fn days_fast(y: i64, m: i64, d: i64) -> i64 {
    let i = (y - TABLE_FROM) * 12 + m - 1;
    if (0..(TABLE_YEARS * 12) as i64).contains(&i) {
        MONTH_START[i as usize] as i64 + d - 1
    } else {
        days_from_civil(y, m, d)
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub const fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y / 400 } else { (y - 399) / 400 };
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Instant {
        Instant::parse(s).unwrap()
    }

    #[test]
    fn the_plain_fast_path_agrees_with_the_general_parser() {
        let mut cases: Vec<String> = vec![
            "2026-02-29T00:00:00".into(), // not a leap year
            "2024-02-29T23:59:60Z".into(),
            "2026-13-01T00:00:00".into(),
            "2026-00-01T00:00:00".into(),
            "2026-04-31T00:00:00".into(),
            "2026-04-30T24:00:00".into(),
            "2026-04-30T23:60:00".into(),
            "2026-04-30T23:59:61".into(),
            "2026-04-30t23:59:59z".into(),
            "2026-04-30 23:59:59".into(),
            "2026-04-30X23:59:59".into(),
            "2026-04-30T23:59:5a".into(),
            "2026/04/30T23:59:59".into(),
            "2026-04-30T23-59-59".into(),
            "1899-12-31T12:00:00".into(),
            "2200-01-01T12:00:00".into(),
            "0001-01-01T00:00:00".into(),
            "2026-04-30T23:59:59Q".into(),
        ];
        // A deterministic sweep over all months, day edges and times.
        let mut x: u64 = 7;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let r = |m: u64| (x >> (m % 40)) % m;
            cases.push(format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}",
                1890 + r(330),
                r(14),
                r(33),
                r(26),
                r(62),
                r(62),
                ["", "Z", "z", "+01:00"][r(4) as usize]
            ));
        }
        for c in &cases {
            assert_eq!(
                parse_bytes(c.as_bytes()),
                parse_general(c.as_bytes()),
                "{c}"
            );
        }
        // Every byte of the fixed form replaced by every byte value: the word-wise checks of
        // the fast form agree with the general parser.
        for base in [
            "2026-10-09T21:19:22",
            "2024-02-29T23:59:59Z",
            "1999-12-31 00:00:00",
        ] {
            for i in 0..base.len() {
                for v in 0..=255u8 {
                    let mut c = base.as_bytes().to_vec();
                    c[i] = v;
                    assert_eq!(parse_bytes(&c), parse_general(&c), "{c:?}");
                }
            }
        }
        assert!(parse_plain_timestamp(b"2026-10-09T21:19:22").is_some());
    }

    /// The date-remembering parser answers as `parse_bytes` does, on first sight of a date
    /// and after it (valid and invalid times after a remembered date, leap seconds at a day's
    /// end, every byte of the form replaced, dates that collide in its table).
    #[test]
    fn the_remembering_parser_agrees_with_parse_bytes() {
        let mut cases: Vec<Vec<u8>> = vec![];
        let mut x: u64 = 11;
        for _ in 0..30_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let r = |m: u64| (x >> (m % 40)) % m;
            cases.push(
                format!(
                    "{:04}-{:02}-{:02}{}{:02}:{:02}:{:02}{}",
                    2020 + r(8),
                    r(14),
                    r(33),
                    ["T", "t", " ", "X"][r(4) as usize],
                    r(26),
                    r(62),
                    r(62),
                    ["", "Z", "z", "+01:00", "Q"][r(5) as usize]
                )
                .into_bytes(),
            );
        }
        for base in [
            "2026-10-09T21:19:22",
            "2024-02-29T23:59:60Z",
            "1999-12-31 00:00:00",
        ] {
            for i in 0..base.len() {
                for v in 0..=255u8 {
                    let mut c = base.as_bytes().to_vec();
                    c[i] = v;
                    cases.push(c);
                    cases.push(base.as_bytes().to_vec());
                }
            }
        }
        cases.push(b"2026-10-09".to_vec());
        cases.push(b"".to_vec());
        let mut parser = TimestampParser::default();
        for round in 0..2 {
            for c in &cases {
                assert_eq!(
                    parser.parse(c),
                    parse_bytes(c),
                    "round {round}: {:?}",
                    String::from_utf8_lossy(c)
                );
            }
        }
        assert!(parser.dates.iter().filter(|d| d.0 != 0).count() > 100);
    }

    #[test]
    fn forms_agree() {
        assert_eq!(p("2026-11-01"), p("2026-11-01T00:00:00"));
        assert_eq!(p("2026-11-01"), p("2026-11-01T00:00:00Z"));
        assert_eq!(p("2026-11-01 00:00:00"), p("2026-11-01T00:00:00+00:00"));
        assert_eq!(p("2026-11-01T02:00:00+02:00"), p("2026-11-01T00:00:00Z"));
        assert_eq!(p("2026-10-31T19:00:00-05:00"), p("2026-11-01T00:00:00Z"));
        assert_eq!(p("2026-11-01T05:30:00+0530"), p("2026-11-01"));
        assert_eq!(p("2026-11-01T00:00"), p("2026-11-01"));
    }

    #[test]
    fn epoch_and_display() {
        assert_eq!(p("1970-01-01").0, 0);
        assert_eq!(p("2026-10-09T21:19:22").to_string(), "2026-10-09T21:19:22Z");
        assert_eq!(
            p("2026-10-09T21:19:22.5Z").to_string(),
            "2026-10-09T21:19:22.5Z"
        );
        assert_eq!(
            p("2026-10-09T21:19:22.123456789Z").0 % MICROS_PER_SEC,
            123_456
        );
        assert_eq!(
            p("1969-12-31T23:59:59Z").to_string(),
            "1969-12-31T23:59:59Z"
        );
        assert_eq!(p("2024-02-29").date_string(), "2024-02-29");
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "2026-13-01",
            "2026-02-30",
            "2025-02-29",
            "2026/11/01",
            "yesterday",
            "2026-11-01T25:00:00",
            "2026-11-01T10:00:00+2",
            "2026-11-01T10:00:00Zjunk",
            "2026-11-01x",
            "2026-11-01T10:00:00.",
        ] {
            assert!(Instant::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn civil_roundtrip() {
        for z in (-800_000..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }

    #[test]
    fn month_table_agrees_with_the_algorithm() {
        for y in [1899, 1900, 1970, 2024, 2026, 2199, 2200, 2400] {
            for m in 1..=12 {
                for d in [1, 28] {
                    assert_eq!(days_fast(y, m, d), days_from_civil(y, m, d), "{y}-{m}-{d}");
                }
            }
        }
    }

    #[test]
    fn day_arithmetic() {
        let t = p("2026-11-01");
        assert_eq!(t.minus_days(90), p("2026-08-03"));
        assert_eq!(t.days_since(p("2026-10-01T12:00:00")), 30);
    }

    #[test]
    fn pushed_texts_equal_display() {
        let mut s = String::new();
        for text in [
            "2026-11-01T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59.5Z",
            "0001-02-03T04:05:06.000007Z",
            "9999-12-31T23:59:59.123456Z",
            "2024-02-29T12:34:56Z",
        ] {
            let t = Instant::parse(text).unwrap();
            s.clear();
            t.push_rfc3339(&mut s);
            assert_eq!(s, t.to_string());
            s.clear();
            t.push_date(&mut s);
            assert_eq!(s, t.date().to_string());
        }
        for (v, w, want) in [
            (0, 1, "0"),
            (9, 1, "9"),
            (3, 0, "3"),
            (10, 1, "10"),
            (7, 2, "07"),
            (123, 2, "123"),
            (-5, 2, "-05"),
            (42, 0, "42"),
        ] {
            s.clear();
            push_padded(&mut s, v, w);
            assert_eq!(s, want);
        }
        s.clear();
        push_padded(&mut s, i64::MIN, 1);
        assert_eq!(s, i64::MIN.to_string());
    }
}
