//! Accounts, stored compactly: one text arena for every field value of every account, plus the
//! typed firmographics the rules read. A million accounts cost ~120 bytes each, with no
//! allocation per account.

use crate::model::Tier;

/// Canonical account columns (SPEC §3). Any other column is kept as a custom field.
pub const ACCOUNT_ID: &str = "account_id";
pub const STANDARD_COLUMNS: &[&str] = &[
    "account_id",
    "name",
    "domain",
    "industry",
    "employees",
    "annual_revenue",
    "country",
    "icp_score",
    "icp_tier",
    "founded_year",
    "tech_stack",
    "challenge",
];
/// Columns an accounts file must have (after presets and mappings).
pub const REQUIRED_COLUMNS: &[&str] = &["account_id"];

/// The columns of an account table, in order. Column 0 is always `account_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSchema {
    columns: Vec<String>,
    /// Positions of the columns the engine reads for every account (no name lookups per row).
    name: Option<usize>,
    industry: Option<usize>,
    challenge: Option<usize>,
}

impl AccountSchema {
    /// `columns` must start with `account_id`; duplicates are dropped.
    pub fn new(columns: impl IntoIterator<Item = String>) -> AccountSchema {
        let mut out = vec![ACCOUNT_ID.to_string()];
        for c in columns {
            if !out.contains(&c) {
                out.push(c);
            }
        }
        let pos = |n: &str| out.iter().position(|c| c == n);
        AccountSchema {
            name: pos("name"),
            industry: pos("industry"),
            challenge: pos("challenge"),
            columns: out,
        }
    }

    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    pub fn len(&self) -> usize {
        self.columns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }
}

/// Typed values parsed (and validated) at ingest.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Firmographics {
    pub employees: Option<f64>,
    pub annual_revenue: Option<f64>,
    pub icp_score: Option<f64>,
    pub icp_tier: Option<Tier>,
    pub founded_year: Option<i32>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Packed {
    employees: f64,
    annual_revenue: f64,
    icp_score: f32,
    founded_year: i32,
    /// 0 = none, 1..=5 = A..E
    tier: u8,
}

impl Packed {
    fn pack(f: &Firmographics) -> Packed {
        Packed {
            employees: f.employees.unwrap_or(f64::NAN),
            annual_revenue: f.annual_revenue.unwrap_or(f64::NAN),
            icp_score: f.icp_score.map(|v| v as f32).unwrap_or(f32::NAN),
            founded_year: f.founded_year.unwrap_or(i32::MIN),
            tier: f.icp_tier.map(|t| t as u8 + 1).unwrap_or(0),
        }
    }
    fn unpack(&self) -> Firmographics {
        let opt = |v: f64| (!v.is_nan()).then_some(v);
        Firmographics {
            employees: opt(self.employees),
            annual_revenue: opt(self.annual_revenue),
            icp_score: (!self.icp_score.is_nan()).then_some(self.icp_score as f64),
            founded_year: (self.founded_year != i32::MIN).then_some(self.founded_year),
            icp_tier: (self.tier > 0).then(|| Tier::ALL[self.tier as usize - 1]),
        }
    }
}

/// The byte between two values of an account in a part's text.
const SEPARATOR: char = ',';

/// Text an account table can point into instead of copying it: one block of an input (a
/// memory-mapped file, say), kept by its owner for as long as the table holds it.
pub trait SharedText: Send + Sync + std::fmt::Debug {
    fn text(&self) -> &str;
}

/// A start offset into the part's shared text (else into its own).
const SHARED: u64 = 1 << 63;

/// All accounts of one input, in input order. `AccountIdx` is the position. Stored as parts
/// (one per block of input parsed in parallel) that are moved, never copied, into the table.
#[derive(Debug, Clone)]
pub struct AccountTable {
    schema: AccountSchema,
    parts: Vec<Part>,
    /// Index of the first account of each part.
    firsts: Vec<AccountIdx>,
    len: usize,
}

/// Accounts stored contiguously: one text arena and per-account arrays. An account's values
/// are in the arena in column order with one separator byte between them (so a plain CSV
/// line goes in with one copy: [`AccountTable::push_joined`]).
#[derive(Debug, Clone, Default)]
struct Part {
    text: String,
    /// The text of accounts pushed with [`AccountTable::push_shared`] (their start has
    /// `SHARED` set): laid out as in `text`, but not copied.
    shared: Option<std::sync::Arc<dyn SharedText>>,
    /// `ends[i * ncols + c]` = end offset (from the account's start) of column c of account i;
    /// column c > 0 begins one byte after column c - 1 ends.
    ends: Vec<u32>,
    starts: Vec<u64>,
    typed: Vec<Packed>,
    /// Input line of each account (for messages).
    lines: Vec<u64>,
}

pub type AccountIdx = u32;

impl AccountTable {
    pub fn new(schema: AccountSchema) -> AccountTable {
        AccountTable {
            schema,
            parts: Vec::new(),
            firsts: Vec::new(),
            len: 0,
        }
    }

    pub fn schema(&self) -> &AccountSchema {
        &self.schema
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn last_part(&mut self) -> &mut Part {
        if self.parts.is_empty() {
            self.parts.push(Part::default());
            self.firsts.push(self.len as AccountIdx);
        }
        self.parts.last_mut().expect("one part")
    }

    /// Room for `accounts` more accounts holding `text_bytes` of values.
    pub fn reserve(&mut self, accounts: usize, text_bytes: usize) {
        let ncols = self.schema.len();
        let p = self.last_part();
        p.starts.reserve(accounts);
        p.typed.reserve(accounts);
        p.lines.reserve(accounts);
        p.ends.reserve(accounts * ncols);
        p.text.reserve(text_bytes);
    }

    /// Append one account; `values` are in schema order (missing trailing values are empty).
    pub fn push<'a>(
        &mut self,
        values: impl IntoIterator<Item = &'a str>,
        firmo: &Firmographics,
        line: u64,
    ) -> AccountIdx {
        let idx = self.len as AccountIdx;
        let ncols = self.schema.len();
        let p = self.last_part();
        let start = p.text.len() as u64;
        p.starts.push(start);
        let mut n = 0;
        for v in values.into_iter().take(ncols) {
            if n > 0 {
                p.text.push(SEPARATOR);
            }
            p.text.push_str(v);
            p.ends.push((p.text.len() as u64 - start) as u32);
            n += 1;
        }
        for c in n..ncols {
            if c > 0 {
                p.text.push(SEPARATOR);
            }
            p.ends.push((p.text.len() as u64 - start) as u32);
        }
        p.typed.push(Packed::pack(firmo));
        p.lines.push(line);
        self.len += 1;
        idx
    }

    /// Append one account whose `ncols` values are the pieces of `joined` between single
    /// separator bytes: value c ends at `ends[c]` and value c + 1 begins one byte later (as
    /// in a CSV line with no quotes). The same account as [`Self::push`] with the pieces,
    /// for one copy.
    pub fn push_joined(
        &mut self,
        joined: &str,
        ends: impl IntoIterator<Item = u32>,
        firmo: &Firmographics,
        line: u64,
    ) -> AccountIdx {
        let idx = self.len as AccountIdx;
        let ncols = self.schema.len();
        let p = self.last_part();
        let start = p.text.len();
        p.starts.push(start as u64);
        p.text.push_str(joined);
        p.push_rest(ncols, ends, firmo, line);
        debug_assert_eq!(p.ends.last().map(|&e| e as usize), Some(joined.len()));
        self.len += 1;
        idx
    }

    /// [`Self::push_joined`] for a `joined` text that is `shared.text()[offset..offset + len]`:
    /// the account points into `shared` instead of copying it (a part holds one shared text;
    /// a different one starts a new part).
    pub fn push_shared(
        &mut self,
        shared: &std::sync::Arc<dyn SharedText>,
        offset: usize,
        ends: impl IntoIterator<Item = u32>,
        firmo: &Firmographics,
        line: u64,
    ) -> AccountIdx {
        let idx = self.len as AccountIdx;
        let ncols = self.schema.len();
        let same = |p: &Part| match &p.shared {
            Some(s) => std::sync::Arc::ptr_eq(s, shared),
            None => true,
        };
        if !self.parts.last().is_none_or(same) {
            self.parts.push(Part::default());
            self.firsts.push(self.len as AccountIdx);
        }
        let p = self.last_part();
        p.shared.get_or_insert_with(|| shared.clone());
        p.starts.push(offset as u64 | SHARED);
        p.push_rest(ncols, ends, firmo, line);
        self.len += 1;
        idx
    }

    /// Append every account of `other` (same schema), in order, by moving its storage.
    pub fn append(&mut self, other: AccountTable) {
        debug_assert_eq!(self.schema, other.schema);
        for (p, first) in other.parts.into_iter().zip(other.firsts) {
            if p.starts.is_empty() {
                continue;
            }
            self.firsts.push(self.len as AccountIdx + first);
            self.parts.push(p);
        }
        self.len += other.len;
    }

    /// Add `delta` to every line number (blocks parsed in parallel are numbered from 0).
    pub fn shift_lines(&mut self, delta: u64) {
        for p in &mut self.parts {
            for l in &mut p.lines {
                *l += delta;
            }
        }
    }

    #[inline]
    pub fn get(&self, idx: AccountIdx) -> AccountRef<'_> {
        let k = match self.firsts.len() {
            1 => 0,
            _ => self.firsts.partition_point(|&f| f <= idx) - 1,
        };
        let part = &self.parts[k];
        let local = (idx - self.firsts[k]) as usize;
        AccountRef {
            table: self,
            part,
            local,
            idx,
            text: part.text_of(local),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = AccountRef<'_>> {
        self.parts
            .iter()
            .zip(&self.firsts)
            .flat_map(move |(part, &first)| {
                (0..part.starts.len()).map(move |local| AccountRef {
                    table: self,
                    part,
                    local,
                    idx: first + local as AccountIdx,
                    text: part.text_of(local),
                })
            })
    }

    /// Bytes of values the table holds itself (accounts pushed with
    /// [`Self::push_shared`] point into text held elsewhere and count nothing).
    pub fn text_bytes(&self) -> usize {
        self.parts.iter().map(|p| p.text.len()).sum()
    }
}

impl Part {
    /// An account's ends, firmographics and line, after its start.
    fn push_rest(
        &mut self,
        ncols: usize,
        ends: impl IntoIterator<Item = u32>,
        firmo: &Firmographics,
        line: u64,
    ) {
        let before = self.ends.len();
        self.ends.extend(ends.into_iter().take(ncols));
        debug_assert_eq!(self.ends.len() - before, ncols, "one end per column");
        self.typed.push(Packed::pack(firmo));
        self.lines.push(line);
    }

    /// The text account `local`'s values are in.
    #[inline]
    fn text_of(&self, local: usize) -> &str {
        match (self.starts[local] & SHARED != 0, &self.shared) {
            (true, Some(shared)) => shared.text(),
            _ => &self.text,
        }
    }
}

/// A borrowed view of one account.
#[derive(Clone, Copy)]
pub struct AccountRef<'a> {
    table: &'a AccountTable,
    part: &'a Part,
    local: usize,
    idx: AccountIdx,
    /// The text this account's values are in (the part's own or its shared text).
    text: &'a str,
}

impl<'a> AccountRef<'a> {
    pub fn idx(&self) -> AccountIdx {
        self.idx
    }

    /// Value of column `col` (schema index); empty when absent.
    #[inline]
    pub fn value(&self, col: usize) -> &'a str {
        let p = self.part;
        let n = self.table.schema.len();
        let i = self.local;
        let text = self.text;
        let start = (p.starts[i] & !SHARED) as usize;
        let end = start + p.ends[i * n + col] as usize;
        let begin = if col == 0 {
            start
        } else {
            start + p.ends[i * n + col - 1] as usize + SEPARATOR.len_utf8()
        };
        &text[begin..end]
    }

    /// Value of a named column; `None` when the schema has no such column.
    pub fn field(&self, name: &str) -> Option<&'a str> {
        self.table.schema.index_of(name).map(|c| self.value(c))
    }

    pub fn id(&self) -> &'a str {
        self.value(0)
    }

    pub fn name(&self) -> &'a str {
        self.table.schema.name.map(|c| self.value(c)).unwrap_or("")
    }

    pub fn industry(&self) -> &'a str {
        self.table
            .schema
            .industry
            .map(|c| self.value(c))
            .unwrap_or("")
    }

    pub fn challenge(&self) -> &'a str {
        self.table
            .schema
            .challenge
            .map(|c| self.value(c))
            .unwrap_or("")
    }

    pub fn firmographics(&self) -> Firmographics {
        self.part.typed[self.local].unpack()
    }

    pub fn line(&self) -> u64 {
        self.part.lines[self.local]
    }

    pub fn schema(&self) -> &'a AccountSchema {
        &self.table.schema
    }
}

impl std::fmt::Debug for AccountRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for (c, name) in self.table.schema.columns().iter().enumerate() {
            m.entry(name, &self.value(c));
        }
        m.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_and_read_back() {
        let schema = AccountSchema::new(["name".to_string(), "industry".to_string()]);
        let mut t = AccountTable::new(schema);
        let f = Firmographics {
            employees: Some(250.0),
            icp_tier: Some(Tier::B),
            ..Default::default()
        };
        t.push(["A1", "Acme", "software"], &f, 2);
        t.push(["A2", "", "retail"], &Firmographics::default(), 3);
        t.push(["A3"], &Firmographics::default(), 4);
        assert_eq!(t.len(), 3);
        let a = t.get(0);
        assert_eq!(
            (a.id(), a.name(), a.field("industry")),
            ("A1", "Acme", Some("software"))
        );
        assert_eq!(a.firmographics(), f);
        assert_eq!(t.get(1).name(), "");
        assert_eq!(t.get(1).field("industry"), Some("retail"));
        assert_eq!(t.get(2).field("industry"), Some(""));
        assert_eq!(t.get(2).field("nope"), None);
        assert_eq!(t.get(2).line(), 4);
        assert_eq!(t.get(1).firmographics(), Firmographics::default());
    }

    #[test]
    fn appended_parts_read_as_one_table() {
        let schema = AccountSchema::new(["name".to_string()]);
        let mut whole = AccountTable::new(schema.clone());
        let mut table = AccountTable::new(schema.clone());
        for part in 0..4 {
            let mut p = AccountTable::new(schema.clone());
            p.reserve(3, 30);
            for i in 0..part {
                let (id, name) = (format!("P{part}-{i}"), format!("Name {part} {i}"));
                let f = Firmographics {
                    employees: Some(i as f64),
                    ..Default::default()
                };
                p.push([id.as_str(), name.as_str()], &f, 10 * part + i);
                whole.push([id.as_str(), name.as_str()], &f, 10 * part + i);
            }
            table.append(p); // the first part is empty
        }
        table.push(["last", "Last"], &Firmographics::default(), 99);
        whole.push(["last", "Last"], &Firmographics::default(), 99);
        assert_eq!(table.len(), 7);
        assert_eq!(table.text_bytes(), whole.text_bytes());
        let all: Vec<_> = table
            .iter()
            .map(|a| (a.idx(), a.id(), a.name(), a.line()))
            .collect();
        let want: Vec<_> = (0..7)
            .map(|i| whole.get(i))
            .map(|a| (a.idx(), a.id(), a.name(), a.line()))
            .collect();
        assert_eq!(all, want);
        for i in 0..7 {
            let (a, b) = (table.get(i), whole.get(i));
            assert_eq!((a.id(), a.firmographics()), (b.id(), b.firmographics()));
        }
        table.shift_lines(1000);
        assert_eq!(table.get(6).line(), 1099);
        assert_eq!(table.get(0).line(), 1010);
    }

    /// Both tables hold the same accounts: every value, line and firmographics.
    fn assert_same_accounts(a: &AccountTable, b: &AccountTable) {
        assert_eq!(a.len(), b.len());
        for i in 0..a.len() as AccountIdx {
            let (x, y) = (a.get(i), b.get(i));
            for c in 0..a.schema().len() {
                assert_eq!(x.value(c), y.value(c), "account {i} column {c}");
            }
            assert_eq!((x.line(), x.firmographics()), (y.line(), y.firmographics()));
        }
    }

    /// An account pushed as one joined line reads back as the same account pushed value by
    /// value, whatever the values (empty ones, commas inside a value pushed whole, non-ASCII).
    #[test]
    fn joined_and_separate_pushes_agree() {
        let schema = AccountSchema::new(["name".to_string(), "industry".to_string()]);
        let rows: [[&str; 3]; 5] = [
            ["A1", "Acme", "software"],
            ["A2", "", "retail"],
            ["A3", "Zürich AG", ""],
            ["", "", ""],
            ["A5", "x", "y"],
        ];
        let mut separate = AccountTable::new(schema.clone());
        let mut joined = AccountTable::new(schema);
        separate.push(
            ["A0", "Acme, Inc.", "software"],
            &Firmographics::default(),
            1,
        );
        joined.push(
            ["A0", "Acme, Inc.", "software"],
            &Firmographics::default(),
            1,
        );
        for (i, r) in rows.iter().enumerate() {
            let f = Firmographics {
                employees: Some(i as f64),
                ..Default::default()
            };
            separate.push(r.iter().copied(), &f, i as u64 + 2);
            let line = r.join(",");
            let mut end = 0u32;
            let ends: Vec<u32> = r
                .iter()
                .enumerate()
                .map(|(c, v)| {
                    end += v.len() as u32 + (c > 0) as u32;
                    end
                })
                .collect();
            joined.push_joined(&line, ends, &f, i as u64 + 2);
        }
        assert_eq!(separate.text_bytes(), joined.text_bytes());
        assert_same_accounts(&separate, &joined);
        assert_eq!(joined.get(0).name(), "Acme, Inc.");
        assert_eq!(joined.get(3).field("industry"), Some(""));
    }

    /// Accounts that point into a shared text read back as the same accounts copied.
    #[test]
    fn shared_and_copied_accounts_agree() {
        #[derive(Debug)]
        struct Block(String);
        impl SharedText for Block {
            fn text(&self) -> &str {
                &self.0
            }
        }
        let schema = AccountSchema::new(["name".to_string(), "industry".to_string()]);
        let lines = ["A1,Acme,software", "A2,,retail", "A3,Zürich AG,"];
        let block: std::sync::Arc<dyn SharedText> =
            std::sync::Arc::new(Block(format!("junk\n{}\n", lines.join("\n"))));
        let other: std::sync::Arc<dyn SharedText> = std::sync::Arc::new(Block("A9,Nine,x".into()));
        let (mut shared, mut copied) =
            (AccountTable::new(schema.clone()), AccountTable::new(schema));
        let mut offset = "junk\n".len();
        for (i, l) in lines.iter().enumerate() {
            let mut end = 0u32;
            let ends: Vec<u32> = l
                .split(',')
                .enumerate()
                .map(|(c, v)| {
                    end += v.len() as u32 + (c > 0) as u32;
                    end
                })
                .collect();
            let f = Firmographics {
                employees: Some(i as f64),
                ..Default::default()
            };
            shared.push_shared(&block, offset, ends.clone(), &f, i as u64);
            copied.push_joined(l, ends, &f, i as u64);
            offset += l.len() + 1;
            if i == 1 {
                // One account copied in between: the part keeps both kinds.
                shared.push(["B1", "Beta", "b"], &f, 10);
                copied.push(["B1", "Beta", "b"], &f, 10);
            }
        }
        shared.push_shared(&other, 0, [2, 7, 9], &Firmographics::default(), 11);
        copied.push_joined("A9,Nine,x", [2, 7, 9], &Firmographics::default(), 11);
        assert_same_accounts(&shared, &copied);
        assert_eq!(shared.get(2).name(), "Beta");
        assert_eq!(shared.get(3).name(), "Zürich AG");
    }
}
