//! The thin, dialect-neutral layer the store's logic is written against: values, rows, batches
//! and a connection trait with one implementation per backend.
//!
//! SQL is written once with `?` placeholders in the common subset of SQLite and PostgreSQL
//! (`ON CONFLICT … DO UPDATE/NOTHING`, `RETURNING`, `IS DISTINCT FROM`, `CAST(… AS BIGINT)`);
//! the PostgreSQL adapter rewrites `?` to `$n`. Bulk writes go through [`Batch`]: a prepared
//! statement per row inside the transaction on SQLite, multi-row `VALUES` on PostgreSQL.

use crate::StoreError;

/// A parameter value, borrowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

impl<'a> Value<'a> {
    pub fn opt_text(v: Option<&'a str>) -> Value<'a> {
        v.map(Value::Text).unwrap_or(Value::Null)
    }
    pub fn opt_int(v: Option<i64>) -> Value<'a> {
        v.map(Value::Int).unwrap_or(Value::Null)
    }
    pub fn opt_real(v: Option<f64>) -> Value<'a> {
        v.map(Value::Real).unwrap_or(Value::Null)
    }
}

/// One result row. Column access by position; `None` is SQL NULL.
pub trait Row {
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError>;
    fn real(&self, i: usize) -> Result<Option<f64>, StoreError>;
    fn text(&self, i: usize) -> Result<Option<&str>, StoreError>;
    fn blob(&self, i: usize) -> Result<Option<&[u8]>, StoreError>;
}

/// Convenience accessors for NOT NULL columns.
pub trait RowExt: Row {
    fn i(&self, i: usize) -> Result<i64, StoreError> {
        self.int(i)?
            .ok_or_else(|| StoreError::Corrupt(format!("column {i} is NULL")))
    }
    fn s(&self, i: usize) -> Result<&str, StoreError> {
        self.text(i)?
            .ok_or_else(|| StoreError::Corrupt(format!("column {i} is NULL")))
    }
    fn string(&self, i: usize) -> Result<String, StoreError> {
        Ok(self.s(i)?.to_string())
    }
    fn opt_string(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.text(i)?.map(str::to_string))
    }
}

impl<R: Row + ?Sized> RowExt for R {}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(u32, u32),
    Blob(u32, u32),
}

/// Rows of values for one bulk statement, with their text in one arena (no allocation per row).
#[derive(Debug, Clone)]
pub struct Batch {
    ncols: usize,
    cells: Vec<Cell>,
    text: String,
    bytes: Vec<u8>,
}

impl Batch {
    pub fn new(ncols: usize) -> Batch {
        Batch {
            ncols,
            cells: Vec::new(),
            text: String::new(),
            bytes: Vec::new(),
        }
    }

    pub fn ncols(&self) -> usize {
        self.ncols
    }

    /// Complete rows.
    pub fn rows(&self) -> usize {
        self.cells.len() / self.ncols
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Bytes held (to flush by size as well as by rows).
    pub fn weight(&self) -> usize {
        self.text.len() + self.bytes.len() + self.cells.len() * 16
    }

    pub fn clear(&mut self) {
        self.cells.clear();
        self.text.clear();
        self.bytes.clear();
    }

    pub fn null(&mut self) -> &mut Self {
        self.cells.push(Cell::Null);
        self
    }
    pub fn int(&mut self, v: i64) -> &mut Self {
        self.cells.push(Cell::Int(v));
        self
    }
    pub fn real(&mut self, v: f64) -> &mut Self {
        self.cells.push(Cell::Real(v));
        self
    }
    pub fn text(&mut self, s: &str) -> &mut Self {
        let start = self.text.len() as u32;
        self.text.push_str(s);
        self.cells.push(Cell::Text(start, self.text.len() as u32));
        self
    }
    pub fn blob(&mut self, b: &[u8]) -> &mut Self {
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(b);
        self.cells.push(Cell::Blob(start, self.bytes.len() as u32));
        self
    }
    pub fn opt_text(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => self.text(s),
            None => self.null(),
        }
    }
    pub fn opt_int(&mut self, v: Option<i64>) -> &mut Self {
        match v {
            Some(v) => self.int(v),
            None => self.null(),
        }
    }
    pub fn opt_real(&mut self, v: Option<f64>) -> &mut Self {
        match v {
            Some(v) => self.real(v),
            None => self.null(),
        }
    }

    fn value(&self, c: Cell) -> Value<'_> {
        match c {
            Cell::Null => Value::Null,
            Cell::Int(v) => Value::Int(v),
            Cell::Real(v) => Value::Real(v),
            Cell::Text(s, e) => Value::Text(&self.text[s as usize..e as usize]),
            Cell::Blob(s, e) => Value::Blob(&self.bytes[s as usize..e as usize]),
        }
    }

    /// The value at (`row`, `col`).
    pub fn get(&self, row: usize, col: usize) -> Value<'_> {
        self.value(self.cells[row * self.ncols + col])
    }

    /// Appends one value (of the row being built).
    pub fn push(&mut self, v: Value<'_>) -> &mut Self {
        match v {
            Value::Null => self.null(),
            Value::Int(v) => self.int(v),
            Value::Real(v) => self.real(v),
            Value::Text(s) => self.text(s),
            Value::Blob(b) => self.blob(b),
        }
    }

    /// The rows `keep` says yes to, in order.
    pub fn retain(&self, mut keep: impl FnMut(usize) -> bool) -> Batch {
        let mut out = Batch::new(self.ncols);
        for r in 0..self.rows() {
            if keep(r) {
                for c in 0..self.ncols {
                    out.push(self.get(r, c));
                }
            }
        }
        out
    }

    /// Values of rows `from..to`, row-major.
    pub fn values(&self, from: usize, to: usize) -> Vec<Value<'_>> {
        self.cells[from * self.ncols..to * self.ncols]
            .iter()
            .map(|&c| self.value(c))
            .collect()
    }
}

/// Which database a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// How a transaction is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxMode {
    /// Writers: SQLite `BEGIN IMMEDIATE` (waits up to the busy timeout for another writer);
    /// PostgreSQL `BEGIN` + `pg_advisory_xact_lock` (waits up to `lock_timeout`).
    Write,
    /// A consistent read-only view.
    Read,
}

/// One open connection. Object-safe so the logic holds `&mut dyn Conn`.
pub trait Conn: Send {
    fn backend(&self) -> Backend;
    fn begin(&mut self, mode: TxMode) -> Result<(), StoreError>;
    fn commit(&mut self) -> Result<(), StoreError>;
    fn rollback(&mut self) -> Result<(), StoreError>;
    /// Several `;`-separated statements without parameters (migrations).
    fn batch_execute(&mut self, sql: &str) -> Result<(), StoreError>;
    /// Rows affected.
    fn execute(&mut self, sql: &str, params: &[Value<'_>]) -> Result<u64, StoreError>;
    /// Stream the rows of a query to `f`.
    fn query_each(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        f: &mut dyn FnMut(&dyn Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
    /// `INSERT INTO {into} VALUES (…), … {suffix}` for every row of `batch`; rows affected.
    /// `into` is `table (col, …)`; `suffix` e.g. `ON CONFLICT (ident) DO NOTHING`.
    fn insert_batch(&mut self, into: &str, batch: &Batch, suffix: &str) -> Result<u64, StoreError>;
    /// Append every row of `batch` to `into` (`table (col, …)`) the fastest way the backend
    /// loads rows, with no conflict handling (staging tables): PostgreSQL
    /// `COPY … FROM STDIN (FORMAT binary)`, SQLite the prepared insert. Rows written.
    fn copy_in(&mut self, into: &str, batch: &Batch) -> Result<u64, StoreError>;
    /// A collation clause that orders text by bytes (`account_id` order of the outputs).
    fn bytewise(&self) -> &'static str;
}

/// Query helpers on top of [`Conn`].
pub trait ConnExt: Conn {
    fn query_one<T>(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        f: impl Fn(&dyn Row) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let mut out = None;
        self.query_each(sql, params, &mut |r| {
            if out.is_none() {
                out = Some(f(r)?);
            }
            Ok(())
        })?;
        Ok(out)
    }

    fn query_all<T>(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        f: impl Fn(&dyn Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        self.query_each(sql, params, &mut |r| {
            out.push(f(r)?);
            Ok(())
        })?;
        Ok(out)
    }

    fn scalar(&mut self, sql: &str, params: &[Value<'_>]) -> Result<i64, StoreError> {
        Ok(self
            .query_one(sql, params, |r| r.int(0))?
            .flatten()
            .unwrap_or(0))
    }
}

impl<C: Conn + ?Sized> ConnExt for C {}

/// Rewrite `?` placeholders to PostgreSQL's `$1, $2, …` (the store's SQL has no `?` in literals).
pub fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(ch);
        }
    }
    out
}

/// The `VALUES` list of a multi-row insert: `(?,?),(?,?)`.
pub fn values_list(ncols: usize, rows: usize) -> String {
    let one = format!("({})", vec!["?"; ncols].join(","));
    vec![one; rows].join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered() {
        assert_eq!(
            numbered_placeholders("INSERT INTO t (a, b) VALUES (?,?),(?,?)"),
            "INSERT INTO t (a, b) VALUES ($1,$2),($3,$4)"
        );
        assert_eq!(values_list(2, 2), "(?,?),(?,?)");
    }

    #[test]
    fn retain_copies_the_rows_kept_with_every_kind_of_value() {
        let mut b = Batch::new(3);
        b.int(1).text("a").null();
        b.int(2).opt_text(Some("bé")).blob(&[1, 2]);
        b.real(0.5).text("").blob(&[]);
        let kept = b.retain(|r| r != 1);
        assert_eq!(kept.rows(), 2);
        assert_eq!(
            kept.values(0, 2),
            vec![
                Value::Int(1),
                Value::Text("a"),
                Value::Null,
                Value::Real(0.5),
                Value::Text(""),
                Value::Blob(&[])
            ]
        );
        assert_eq!(b.retain(|_| true).values(0, 3), b.values(0, 3));
        assert!(b.retain(|_| false).is_empty());
    }

    #[test]
    fn batch_keeps_rows_in_one_arena() {
        let mut b = Batch::new(3);
        b.int(1).text("a").null();
        b.int(2).opt_text(Some("bé")).blob(&[1, 2]);
        assert_eq!(b.rows(), 2);
        assert_eq!(
            b.values(1, 2),
            vec![Value::Int(2), Value::Text("bé"), Value::Blob(&[1, 2])]
        );
        b.clear();
        assert!(b.is_empty());
    }
}
