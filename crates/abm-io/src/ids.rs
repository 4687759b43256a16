//! `account_id` → account index, the lookup every engagement event, trigger and deal makes.
//!
//! Two representations behind one [`IdIndex`]:
//! - **dense**: when every account id is one common prefix followed by a decimal number (the
//!   usual CRM form: `A00000042`, `ACC-7`, HubSpot's numeric ids) and the numbers are not too
//!   sparse, an id resolves by parsing its number and reading one `u32` from an array. The
//!   accepted text is exact (the prefix, then either exactly the width every id has, leading
//!   zeros included, or a canonical number without leading zeros), so a string maps to a slot
//!   only if it is that one id: no hashing, no key comparison, ~4 bytes per number in range
//!   instead of a hash table's 64 per account.
//! - **hashed**: open addressing with linear probing; each 32-byte slot holds the full hash,
//!   the index and (for ids up to 16 bytes) the id itself, so a lookup usually touches one
//!   cache line. Longer ids live in an arena.

use crate::mem::prefetch;
use abm_core::account::AccountIdx;
use std::hash::BuildHasher;

/// account_id → index (dense or hashed, see the module docs).
pub struct IdIndex {
    repr: Repr,
}

enum Repr {
    Hashed(HashedIds),
    Dense(DenseIds),
}

impl Default for IdIndex {
    fn default() -> Self {
        IdIndex::with_capacity(0)
    }
}

impl IdIndex {
    /// An empty hashed index for about `n` ids.
    pub fn with_capacity(n: usize) -> IdIndex {
        IdIndex {
            repr: Repr::Hashed(HashedIds::with_capacity(n)),
        }
    }

    /// A dense index of the ids of `parts` parts, in order (the `i`-th id overall gets index
    /// `i`), when they all have the dense form, no id repeats and the numbers span at most about
    /// four times their count. `ids(p)` gives part `p`'s ids; it is called on `threads` threads
    /// for a check pass, then (unless the ids are consecutive numbers in order) once more per
    /// part for the fill.
    pub fn dense<'a, I, F>(parts: usize, threads: usize, ids: F) -> Option<IdIndex>
    where
        I: Iterator<Item = &'a [u8]>,
        F: Fn(usize) -> I + Sync,
    {
        DenseIds::build(parts, threads, ids).map(|d| IdIndex {
            repr: Repr::Dense(d),
        })
    }

    /// The dense representation, if this index has it (the bulk fold has a path for each).
    #[inline]
    pub fn as_dense(&self) -> Option<&DenseIds> {
        match &self.repr {
            Repr::Dense(d) => Some(d),
            Repr::Hashed(_) => None,
        }
    }

    /// The hash [`Self::get_hashed`] and [`Self::prefetch`] take (0 for a dense index, which
    /// does not hash).
    #[inline]
    pub fn hash(&self, id: &[u8]) -> u64 {
        match &self.repr {
            Repr::Hashed(h) => h.hash(id),
            Repr::Dense(_) => 0,
        }
    }

    /// Hint the CPU to fetch the slot for `hash` (used by the batched bulk paths).
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        if let Repr::Hashed(h) = &self.repr {
            h.prefetch(hash)
        }
    }

    /// [`Self::get`], or, for a cell that lists several ids separated by `;` (a CRM export's
    /// association column, e.g. HubSpot's "Associated Company IDs"), the first listed id that
    /// is a known account. Only asked when the plain lookup failed (no cost on the bulk path).
    pub fn get_listed(&self, id: &[u8]) -> Option<AccountIdx> {
        self.get(id).or_else(|| {
            if !id.contains(&b';') {
                return None;
            }
            id.split(|&b| b == b';')
                .map(<[u8]>::trim_ascii)
                .filter(|p| !p.is_empty())
                .find_map(|p| self.get(p))
        })
    }

    /// [`Self::get`] with `hash == self.hash(id)` already computed.
    #[inline]
    pub fn get_hashed(&self, hash: u64, id: &[u8]) -> Option<AccountIdx> {
        match &self.repr {
            Repr::Hashed(h) => h.get_hashed(hash, id),
            Repr::Dense(d) => d.get(id),
        }
    }

    #[inline]
    pub fn get(&self, id: &[u8]) -> Option<AccountIdx> {
        self.get_hashed(self.hash(id), id)
    }

    /// Insert; `Err(existing)` when the id is already there. A dense index becomes a hashed
    /// one first (inserts are for the incremental users: imports, the ordered account merge).
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
        if let Repr::Dense(d) = &self.repr {
            let mut h = HashedIds::with_capacity(d.len + 1);
            for key in 0..d.span {
                if let Some(i) = d.at(key) {
                    let id = d.id_of(key);
                    let _ = h.insert_hashed(h.hash(&id), &id, i);
                }
            }
            self.repr = Repr::Hashed(h);
            let Repr::Hashed(h) = &mut self.repr else {
                unreachable!()
            };
            return h.insert_hashed(h.hash(id), id, idx);
        }
        let Repr::Hashed(h) = &mut self.repr else {
            unreachable!()
        };
        h.insert_hashed(hash, id, idx)
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Hashed(h) => h.len,
            Repr::Dense(d) => d.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// ---------------------------------------------------------------------------------------------
// Dense

const NONE: AccountIdx = AccountIdx::MAX;
/// Digits that always fit a `u64`.
const MAX_DIGITS: usize = 19;

/// Ids of the form `prefix` + decimal number, as an array indexed by the number.
pub struct DenseIds {
    prefix: Box<[u8]>,
    /// `Some(w)`: every id has exactly `w` digits (leading zeros are part of the id);
    /// `None`: canonical numbers (no leading zero, except `0` itself), of any length.
    width: Option<usize>,
    min: u64,
    /// Numbers in range: `min..min + span`.
    span: usize,
    /// The account of each slot (empty when `identity`: slot k is account k).
    slots: Vec<AccountIdx>,
    /// One bit per slot, set when an account holds it: small enough to stay in cache, so the
    /// bulk fold checks an id at once and reads `slots` only for the events that need the index.
    /// Empty when `full`.
    held: Vec<u64>,
    /// Every slot is held (the ids are consecutive numbers): no bitmap read at all.
    full: bool,
    /// Moreover slot k holds account k (the ids come in number order): no array read either.
    identity: bool,
    len: usize,
}

/// The number after `prefix` in `id`, if `id` is `prefix` + 1..=19 ASCII digits.
#[inline]
fn digits_after(prefix: &[u8], id: &[u8]) -> Option<u64> {
    let rest = id.strip_prefix(prefix)?;
    if rest.is_empty() || rest.len() > MAX_DIGITS {
        return None;
    }
    let mut v = 0u64;
    for &b in rest {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + d as u64;
    }
    Some(v)
}

/// Eight ASCII digits as a number, in a few word operations (`None` if any is not a digit).
#[inline]
fn eight_digits(b: &[u8; 8]) -> Option<u64> {
    let d = u64::from_le_bytes(*b) ^ 0x3030_3030_3030_3030;
    if (d | d.wrapping_add(0x7676_7676_7676_7676)) & 0x8080_8080_8080_8080 != 0 {
        return None;
    }
    // The first digit is the lowest byte: combine neighbours, pairs, then quads.
    let d = (d.wrapping_mul(10) + (d >> 8)) & 0x00ff_00ff_00ff_00ff;
    let d = (d.wrapping_mul(100) + (d >> 16)) & 0x0000_ffff_0000_ffff;
    Some((d.wrapping_mul(10_000) + (d >> 32)) & 0xffff_ffff)
}

/// What the check pass learns of a run of ids (one part, or several in order).
#[derive(Clone)]
struct Summary {
    /// The first id's text before its trailing digits (`None`: no id yet).
    prefix: Option<Vec<u8>>,
    first_len: usize,
    /// Every id has `first_len` bytes; every number is canonical (no leading zero).
    same_len: bool,
    canonical: bool,
    min: u64,
    max: u64,
    first: u64,
    last: u64,
    n: usize,
    /// Each number is the previous one plus one.
    consecutive: bool,
}

impl Summary {
    const EMPTY: Summary = Summary {
        prefix: None,
        first_len: 0,
        same_len: true,
        canonical: true,
        min: u64::MAX,
        max: 0,
        first: 0,
        last: 0,
        n: 0,
        consecutive: true,
    };

    /// Add `id`; `None` when it is not of the dense form (with this run's prefix).
    #[inline]
    fn add(&mut self, id: &[u8]) -> Option<()> {
        let prefix = match &self.prefix {
            Some(p) => p.as_slice(),
            None => {
                let run = id.iter().rev().take_while(|b| b.is_ascii_digit()).count();
                if run == 0 {
                    return None;
                }
                self.first_len = id.len();
                self.prefix.insert(id[..id.len() - run].to_vec())
            }
        };
        let v = digits_after(prefix, id)?;
        let digits = id.len() - prefix.len();
        self.same_len &= id.len() == self.first_len;
        self.canonical &= digits == 1 || id[prefix.len()] != b'0';
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        if self.n == 0 {
            self.first = v;
        } else {
            self.consecutive &= self.last.checked_add(1) == Some(v);
        }
        self.last = v;
        self.n += 1;
        Some(())
    }

    /// `self` followed by `next`; `None` when their prefixes differ.
    fn then(self, next: Summary) -> Option<Summary> {
        if next.n == 0 {
            return Some(self);
        }
        if self.n == 0 {
            return Some(next);
        }
        if self.prefix != next.prefix {
            return None;
        }
        Some(Summary {
            prefix: self.prefix,
            first_len: self.first_len,
            same_len: self.same_len && next.same_len && self.first_len == next.first_len,
            canonical: self.canonical && next.canonical,
            min: self.min.min(next.min),
            max: self.max.max(next.max),
            first: self.first,
            last: next.last,
            n: self.n + next.n,
            consecutive: self.consecutive
                && next.consecutive
                && self.last.checked_add(1) == Some(next.first),
        })
    }
}

impl DenseIds {
    fn build<'a, I, F>(parts: usize, threads: usize, ids: F) -> Option<DenseIds>
    where
        I: Iterator<Item = &'a [u8]>,
        F: Fn(usize) -> I + Sync,
    {
        // The check pass, on contiguous runs of parts at once.
        let per = parts.div_ceil(threads.max(1)).max(1);
        let summarize = |range: std::ops::Range<usize>| {
            let mut s = Summary::EMPTY;
            for p in range {
                for id in ids(p) {
                    s.add(id)?;
                }
            }
            Some(s)
        };
        let runs: Vec<Option<Summary>> = std::thread::scope(|sc| {
            let handles: Vec<_> = (0..parts)
                .step_by(per)
                .skip(1)
                .map(|lo| {
                    let summarize = &summarize;
                    sc.spawn(move || summarize(lo..(lo + per).min(parts)))
                })
                .collect();
            let mut runs = vec![summarize(0..per.min(parts))];
            runs.extend(handles.into_iter().map(|h| h.join().expect("no panic")));
            runs
        });
        let mut all = Summary::EMPTY;
        for r in runs {
            all = all.then(r?)?;
        }
        if all.n == 0 {
            return None;
        }
        let prefix = all.prefix.expect("some id");
        let width = match (all.same_len, all.canonical) {
            (true, _) => Some(all.first_len - prefix.len()),
            (false, true) => None,
            (false, false) => return None,
        };
        let (n, min) = (all.n, all.min);
        let span = all.max - min + 1;
        if span > (n as u64).saturating_mul(4).saturating_add(1024) || span >= NONE as u64 {
            return None;
        }
        let span = span as usize;
        // Consecutive numbers in order: slot k is account k, no array (nor repeat) possible.
        let identity = all.consecutive && n == span;
        let (mut slots, mut held) = (Vec::new(), Vec::new());
        if !identity {
            slots = crate::mem::huge_vec(span, NONE);
            held = vec![0u64; span.div_ceil(64)];
            let mut i = 0usize;
            for p in 0..parts {
                for id in ids(p) {
                    let k = (digits_after(&prefix, id).expect("checked") - min) as usize;
                    if slots[k] != NONE {
                        return None; // a repeated id: the ordered merge reports it
                    }
                    slots[k] = i as AccountIdx;
                    held[k / 64] |= 1 << (k % 64);
                    i += 1;
                }
            }
        }
        Some(DenseIds {
            prefix: prefix.into(),
            width,
            min,
            span,
            slots,
            held,
            full: n == span,
            identity,
            len: n,
        })
    }

    /// The slot of `id`: `Some` exactly when `id` has this index's form and its number is in
    /// range (whether an account holds the slot is [`Self::at`]'s answer).
    #[inline(always)]
    pub fn key(&self, id: &[u8]) -> Option<usize> {
        let p = self.prefix.len();
        let digits = id.len().checked_sub(p)?;
        match self.width {
            Some(w) if digits != w => return None,
            None if digits > 1 && id[p] == b'0' => return None,
            _ => {}
        }
        // The prefix is short (usually a letter or two): a byte loop beats a memcmp call.
        if !id[..p].iter().zip(self.prefix.iter()).all(|(a, b)| a == b) {
            return None;
        }
        let v = match digits {
            8 => eight_digits(id[p..].try_into().expect("8 bytes"))?,
            1..=MAX_DIGITS => digits_after(&[], &id[p..])?,
            _ => return None,
        };
        let k = v.checked_sub(self.min)?;
        (k < self.span as u64).then_some(k as usize)
    }

    #[inline]
    pub fn prefetch(&self, key: usize) {
        if let Some(slot) = self.slots.get(key) {
            prefetch(slot as *const AccountIdx as *const u8);
        }
    }

    /// Whether an account holds slot `key` (from [`Self::key`]), from the bitmap.
    #[inline]
    pub fn holds(&self, key: usize) -> bool {
        self.full || self.held[key / 64] >> (key % 64) & 1 != 0
    }

    /// The account in slot `key` when it is known without reading the array (ids that are
    /// consecutive numbers in file order).
    #[inline]
    pub fn at_once(&self, key: usize) -> Option<AccountIdx> {
        self.identity.then_some(key as AccountIdx)
    }

    /// The account in slot `key` (from [`Self::key`]).
    #[inline]
    pub fn at(&self, key: usize) -> Option<AccountIdx> {
        if self.identity {
            return Some(key as AccountIdx);
        }
        let i = self.slots[key];
        (i != NONE).then_some(i)
    }

    #[inline]
    pub fn get(&self, id: &[u8]) -> Option<AccountIdx> {
        let k = self.key(id)?;
        self.at_once(k).or_else(|| self.at(k))
    }

    /// The accounts in the bytewise order of their ids, when the slots give it: every id has
    /// the same width, so slot order is byte order (`None` for canonical numbers of varying
    /// length, where `A10` sorts before `A9`).
    pub fn byte_order(&self) -> Option<Vec<AccountIdx>> {
        self.width?;
        Some(match self.identity {
            true => (0..self.len as AccountIdx).collect(),
            false => self.slots.iter().copied().filter(|&i| i != NONE).collect(),
        })
    }

    /// The id whose number is in slot `key`.
    fn id_of(&self, key: usize) -> Vec<u8> {
        let n = (self.min + key as u64).to_string();
        let mut id = self.prefix.to_vec();
        if let Some(w) = self.width {
            id.resize(id.len() + w.saturating_sub(n.len()), b'0');
        }
        id.extend_from_slice(n.as_bytes());
        id
    }
}

// ---------------------------------------------------------------------------------------------
// Hashed

/// The hashed representation (see the module docs).
struct HashedIds {
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

impl HashedIds {
    fn with_capacity(n: usize) -> HashedIds {
        let cap = (n.max(8) * 2).next_power_of_two();
        HashedIds {
            slots: crate::mem::huge_vec(cap, EMPTY),
            arena: Vec::new(),
            len: 0,
            hasher: foldhash::fast::FixedState::with_seed(0x5eed_ab11),
        }
    }

    #[inline]
    fn hash(&self, id: &[u8]) -> u64 {
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
    fn prefetch(&self, hash: u64) {
        let i = hash as usize & (self.slots.len() - 1);
        prefetch(&self.slots[i] as *const Slot as *const u8);
    }

    #[inline]
    fn get_hashed(&self, hash: u64, id: &[u8]) -> Option<AccountIdx> {
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

    fn insert_hashed(&mut self, hash: u64, id: &[u8], idx: AccountIdx) -> Result<(), AccountIdx> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dense(ids: &[&str]) -> Option<IdIndex> {
        // As one part, and as one part per id on two threads: the same index.
        let one = IdIndex::dense(1, 1, |_| ids.iter().map(|s| s.as_bytes()));
        let many = IdIndex::dense(ids.len(), 2, |p| ids[p..p + 1].iter().map(|s| s.as_bytes()));
        assert_eq!(one.is_some(), many.is_some(), "{ids:?}");
        if let (Some(a), Some(b)) = (&one, &many) {
            let (a, b) = (a.as_dense().unwrap(), b.as_dense().unwrap());
            assert_eq!(
                (a.span, a.min, a.width, a.identity, a.full, &a.slots, &a.held, &a.prefix),
                (b.span, b.min, b.width, b.identity, b.full, &b.slots, &b.held, &b.prefix)
            );
        }
        one
    }

    /// A cell listing several ids resolves to the first known one, in both representations.
    #[test]
    fn listed_ids_resolve_to_the_first_known() {
        let ids = ["501", "502", "503"];
        let d = dense(&ids).expect("dense form");
        let mut h = IdIndex::with_capacity(3);
        for (i, id) in ids.iter().enumerate() {
            h.insert(id.as_bytes(), i as AccountIdx).unwrap();
        }
        for idx in [&d, &h] {
            assert_eq!(idx.get_listed(b"502"), Some(1));
            assert_eq!(idx.get_listed(b"999; 503;501"), Some(2));
            assert_eq!(idx.get_listed(b"998;999"), None);
            assert_eq!(idx.get_listed(b";;"), None);
            assert_eq!(idx.get_listed(b"5x1"), None);
        }
    }

    /// Every id resolves to its position, in both representations, and nothing else does.
    fn check_both(ids: &[&str], strangers: &[&str]) {
        let d = dense(ids).expect("dense form");
        let mut h = IdIndex::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            h.insert(id.as_bytes(), i as AccountIdx).unwrap();
        }
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(d.get(id.as_bytes()), Some(i as AccountIdx), "{id}");
            let dense = d.as_dense().unwrap();
            let k = dense.key(id.as_bytes()).unwrap();
            assert!(dense.holds(k));
            assert!(dense.at_once(k).is_none_or(|j| j == i as AccountIdx));
            assert_eq!(h.get(id.as_bytes()), Some(i as AccountIdx), "{id}");
        }
        for s in strangers {
            assert_eq!(d.get(s.as_bytes()), None, "{s:?}");
            let dense = d.as_dense().unwrap();
            assert!(
                dense.key(s.as_bytes()).is_none_or(|k| !dense.holds(k)),
                "{s:?}"
            );
            assert_eq!(h.get(s.as_bytes()), None, "{s:?}");
        }
        assert_eq!(d.len(), ids.len());
    }

    #[test]
    fn consecutive_ids_in_order_resolve_without_the_array() {
        let d = dense(&["A07", "A08", "A09"]).unwrap();
        let d = d.as_dense().unwrap();
        assert_eq!(d.at_once(d.key(b"A08").unwrap()), Some(1));
        let d = dense(&["A08", "A07", "A09"]).unwrap();
        assert_eq!(
            d.as_dense().unwrap().at_once(0),
            None,
            "not in number order"
        );
        let d = dense(&["A07", "A09"]).unwrap();
        assert_eq!(d.as_dense().unwrap().at_once(0), None, "not consecutive");
    }

    #[test]
    fn fixed_width_ids_with_leading_zeros() {
        check_both(
            &["A00000003", "A00000001", "A00000002", "A00000010"],
            &[
                "A0000001",
                "A000000001",
                "A00000004",
                "a00000001",
                "B00000001",
                "A0000000x",
                "A00000000",
                "A99999999",
                "",
                "A",
                "00000001",
                "A00000001 ",
            ],
        );
    }

    #[test]
    fn canonical_numbers_of_any_length() {
        check_both(
            &["7", "12", "1000", "0", "999"],
            &[
                "07",
                "012",
                "00",
                "-1",
                "+7",
                "1 2",
                "13",
                "10000",
                "99999999999999999999",
            ],
        );
        check_both(
            &["ACC-5", "ACC-17", "ACC-123"],
            &["ACC-05", "ACC-017", "ACC5", "ACC-"],
        );
    }

    #[test]
    fn eight_digit_words_read_like_the_digit_loop() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut b = *format!("{:08}", x % 100_000_000)
                .as_bytes()
                .first_chunk::<8>()
                .unwrap();
            if x.is_multiple_of(3) {
                b[(x >> 40) as usize % 8] = (x >> 48) as u8; // any byte, digit or not
            }
            assert_eq!(eight_digits(&b), digits_after(&[], &b), "{b:?}");
        }
        assert_eq!(eight_digits(b"00000000"), Some(0));
        assert_eq!(eight_digits(b"99999999"), Some(99_999_999));
        assert_eq!(eight_digits(b"12345678"), Some(12_345_678));
    }

    #[test]
    fn other_forms_stay_hashed() {
        assert!(dense(&["A1", "B2"]).is_none(), "two prefixes");
        assert!(
            dense(&["A1", "A02"]).is_none(),
            "mixed widths with a leading zero"
        );
        assert!(dense(&["A1", "A1"]).is_none(), "a repeated id");
        assert!(dense(&["A1", "A99999999"]).is_none(), "too sparse");
        assert!(dense(&["ABC", "ABD"]).is_none(), "no number");
        assert!(
            dense(&["A12345678901234567890"]).is_none(),
            "more than 19 digits"
        );
        assert!(dense(&[]).is_none());
        // Sparse but within 4x the count (+1024) is dense.
        assert!(dense(&["A1", "A1000"]).is_some());
    }

    #[test]
    fn inserting_into_a_dense_index_keeps_every_id() {
        let mut d = dense(&["A001", "A002", "A007"]).unwrap();
        assert!(d.as_dense().is_some());
        assert_eq!(d.insert(b"A002", 9), Err(1));
        assert_eq!(d.insert(b"custom", 3), Ok(()));
        assert!(d.as_dense().is_none());
        for (id, i) in [("A001", 0), ("A002", 1), ("A007", 2), ("custom", 3)] {
            assert_eq!(d.get(id.as_bytes()), Some(i), "{id}");
        }
        assert_eq!(d.get(b"A1"), None);
        assert_eq!(d.len(), 4);
    }

    #[test]
    fn byte_order_is_the_sorted_order_of_the_ids() {
        let sorted = |ids: &[&str]| {
            let mut o: Vec<AccountIdx> = (0..ids.len() as AccountIdx).collect();
            o.sort_by_key(|&i| ids[i as usize]);
            o
        };
        for ids in [
            &["A07", "A08", "A09", "A10"][..],
            &["A10", "A07", "A09"],
            &["X-0003", "X-0001", "X-0009", "X-0002"],
        ] {
            let d = dense(ids).unwrap();
            assert_eq!(
                d.as_dense().unwrap().byte_order(),
                Some(sorted(ids)),
                "{ids:?}"
            );
        }
        // Canonical numbers of varying width: byte order is not number order.
        let d = dense(&["A9", "A10", "A11"]).unwrap();
        assert_eq!(d.as_dense().unwrap().byte_order(), None);
    }
}
