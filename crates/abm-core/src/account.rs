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

/// All accounts of one input, in input order. `AccountIdx` is the position.
#[derive(Debug, Clone)]
pub struct AccountTable {
    schema: AccountSchema,
    text: String,
    /// `ends[i * ncols + c]` = end offset (in `text`) of column c of account i.
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
            text: String::new(),
            ends: Vec::new(),
            starts: Vec::new(),
            typed: Vec::new(),
            lines: Vec::new(),
        }
    }

    pub fn schema(&self) -> &AccountSchema {
        &self.schema
    }

    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    pub fn reserve(&mut self, accounts: usize, text_bytes: usize) {
        self.starts.reserve(accounts);
        self.typed.reserve(accounts);
        self.lines.reserve(accounts);
        self.ends.reserve(accounts * self.schema.len());
        self.text.reserve(text_bytes);
    }

    /// Append one account; `values` are in schema order (missing trailing values are empty).
    pub fn push<'a>(
        &mut self,
        values: impl IntoIterator<Item = &'a str>,
        firmo: &Firmographics,
        line: u64,
    ) -> AccountIdx {
        let idx = self.starts.len() as AccountIdx;
        let start = self.text.len() as u64;
        self.starts.push(start);
        let mut n = 0;
        for v in values.into_iter().take(self.schema.len()) {
            self.text.push_str(v);
            self.ends.push((self.text.len() as u64 - start) as u32);
            n += 1;
        }
        for _ in n..self.schema.len() {
            self.ends.push((self.text.len() as u64 - start) as u32);
        }
        self.typed.push(Packed::pack(firmo));
        self.lines.push(line);
        idx
    }

    /// Append every account of `other` (same schema), in order.
    pub fn append(&mut self, other: &AccountTable) {
        debug_assert_eq!(self.schema, other.schema);
        let base = self.text.len() as u64;
        self.text.push_str(&other.text);
        self.ends.extend_from_slice(&other.ends);
        self.starts.extend(other.starts.iter().map(|s| s + base));
        self.typed.extend_from_slice(&other.typed);
        self.lines.extend_from_slice(&other.lines);
    }

    /// Add `delta` to every line number (blocks parsed in parallel are numbered from 0).
    pub fn shift_lines(&mut self, delta: u64) {
        for l in &mut self.lines {
            *l += delta;
        }
    }

    pub fn get(&self, idx: AccountIdx) -> AccountRef<'_> {
        AccountRef { table: self, idx }
    }

    pub fn iter(&self) -> impl Iterator<Item = AccountRef<'_>> {
        (0..self.len() as AccountIdx).map(|i| self.get(i))
    }

    pub fn text_bytes(&self) -> usize {
        self.text.len()
    }
}

/// A borrowed view of one account.
#[derive(Clone, Copy)]
pub struct AccountRef<'a> {
    table: &'a AccountTable,
    idx: AccountIdx,
}

impl<'a> AccountRef<'a> {
    pub fn idx(&self) -> AccountIdx {
        self.idx
    }

    /// Value of column `col` (schema index); empty when absent.
    pub fn value(&self, col: usize) -> &'a str {
        let t = self.table;
        let n = t.schema.len();
        let i = self.idx as usize;
        let start = t.starts[i] as usize;
        let end = start + t.ends[i * n + col] as usize;
        let begin = if col == 0 {
            start
        } else {
            start + t.ends[i * n + col - 1] as usize
        };
        &t.text[begin..end]
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
        self.table.typed[self.idx as usize].unpack()
    }

    pub fn line(&self) -> u64 {
        self.table.lines[self.idx as usize]
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
}
