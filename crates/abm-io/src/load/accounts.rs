//! Accounts: the file's layout, the parallel load, the id index.

use super::*;

pub struct Accounts {
    pub table: AccountTable,
    pub index: IdIndex,
    pub rows: u64,
}

/// One block of a mapped accounts file as the text its accounts point into
/// ([`AccountTable::push_shared`]); it keeps the map alive.
#[derive(Debug)]
pub(crate) struct BlockText {
    map: std::sync::Arc<crate::mem::MappedFile>,
    range: std::ops::Range<usize>,
}

impl BlockText {
    /// `block` (a slice of `map` that has been checked to be UTF-8) as shared text; `None`
    /// when it is not a slice of the map.
    fn of(
        map: &std::sync::Arc<crate::mem::MappedFile>,
        block: &[u8],
    ) -> Option<std::sync::Arc<dyn abm_core::account::SharedText>> {
        let at = (block.as_ptr() as usize).wrapping_sub(map.bytes().as_ptr() as usize);
        let inside = at
            .checked_add(block.len())
            .is_some_and(|end| end <= map.bytes().len());
        inside.then(|| {
            std::sync::Arc::new(BlockText {
                map: map.clone(),
                range: at..at + block.len(),
            }) as std::sync::Arc<dyn abm_core::account::SharedText>
        })
    }
}

impl abm_core::account::SharedText for BlockText {
    fn text(&self) -> &str {
        // SAFETY: made only for blocks checked to be UTF-8 (`BlockText::of`'s caller), of a
        // read-only map that lives as long as `self`.
        unsafe { std::str::from_utf8_unchecked(&self.map.bytes()[self.range.clone()]) }
    }
}

/// The largest head count accepted (`employees`: a whole number from 0).
pub const MAX_EMPLOYEES: f64 = 1e8;
/// The founding years accepted.
pub const FOUNDED_YEARS: std::ops::RangeInclusive<i32> = 1600..=2100;

/// How an accounts source maps onto the account table.
pub struct AccountLayout {
    pub schema: AccountSchema,
    /// Source column of each schema column.
    pub cols: Vec<Option<usize>>,
    employees: Option<usize>,
    annual_revenue: Option<usize>,
    icp_score: Option<usize>,
    icp_tier: Option<usize>,
    founded_year: Option<usize>,
    /// The schema is the source's columns in order (schema column i is source column i).
    pub(crate) identity: bool,
}

impl AccountLayout {
    /// The standard columns the source has, then its custom fields.
    pub fn of(src: &Source) -> AccountLayout {
        let p: &Projection = &src.projection;
        let canon = FileKind::Accounts.canonical();
        let mut names = vec![];
        let mut cols = vec![];
        for (slot, name) in canon.iter().enumerate() {
            if p.slots[slot].is_some() || *name == "account_id" {
                names.push(name.to_string());
                cols.push(p.slots[slot]);
            }
        }
        for (c, name) in &p.extras {
            if !names.contains(name) {
                names.push(name.clone());
                cols.push(Some(*c));
            }
        }
        let slot = |n: &str| p.slots[canon.iter().position(|c| *c == n).expect("canonical")];
        let identity =
            cols.len() == src.header.len() && cols.iter().enumerate().all(|(i, c)| *c == Some(i));
        AccountLayout {
            identity,
            schema: AccountSchema::new(names),
            cols,
            employees: slot("employees"),
            annual_revenue: slot("annual_revenue"),
            icp_score: slot("icp_score"),
            icp_tier: slot("icp_tier"),
            founded_year: slot("founded_year"),
        }
    }

    /// Parse one account row into `values` (schema order) and its firmographics.
    pub fn parse<'a>(
        &self,
        src: &Source,
        rec: &Record<'a>,
        values: &mut Vec<&'a str>,
    ) -> Result<Firmographics, Rejection> {
        self.parse_v(src, rec, values, false)
    }

    /// The usual row read at once: when the schema is the source's columns in order and no
    /// field has spaces to trim, with an account id and plain numbers, tier and year, `Some`
    /// with the firmographics — what [`Self::parse_v`] gives — and, when the fields are their
    /// line's pieces between single commas (a CSV line without quotes), the line's value text
    /// for [`AccountTable::push_joined`]. `None` for any other row (the general path reads it
    /// and words any rejection). `valid_utf8`: the record's bytes are known to be UTF-8.
    #[inline]
    pub fn parse_plain<'a>(
        &self,
        rec: &Record<'a>,
        valid_utf8: bool,
    ) -> Option<(Firmographics, Option<&'a str>)> {
        let r = rec.ranges();
        let b = rec.bytes();
        if !valid_utf8 || !self.identity || r.len() != self.cols.len() || r.is_empty() {
            return None;
        }
        let (first, last) = (r[0].0, r[r.len() - 1].1);
        let mut ok = r[0].1 > first; // an account id
        let mut joined = true;
        let mut prev = first.wrapping_sub(1);
        for &(s, e) in r {
            joined &= s == prev.wrapping_add(1);
            if e > s {
                ok &= (b[s as usize] > b' ') & (b[e as usize - 1] > b' ');
            }
            prev = e;
        }
        if !ok {
            return None;
        }
        let field = |c: Option<usize>| match c {
            Some(c) => &b[r[c].0 as usize..r[c].1 as usize],
            None => &b""[..],
        };
        let digits = |f: &[u8], most: usize| {
            (f.len() <= most && f.iter().all(u8::is_ascii_digit))
                .then(|| f.iter().fold(0u64, |n, d| n * 10 + (d - b'0') as u64))
        };
        // Empty: no value; plain digits (as `parse_number` reads them): the value.
        let number = |c: Option<usize>| {
            let f = field(c);
            match f.is_empty() {
                true => Some(None),
                false => digits(f, 15).map(|v| Some(v as f64)),
            }
        };
        let employees = number(self.employees)?;
        if employees.is_some_and(|e| e > MAX_EMPLOYEES) {
            return None;
        }
        let annual_revenue = number(self.annual_revenue)?;
        let icp_score = number(self.icp_score)?;
        if icp_score.is_some_and(|s| s > 100.0) {
            return None;
        }
        let tier = field(self.icp_tier);
        let icp_tier = match tier.is_empty() {
            true => None,
            false => Some(Tier::parse(std::str::from_utf8(tier).ok()?)?),
        };
        let year = field(self.founded_year);
        let founded_year = match year.is_empty() {
            true => None,
            false => Some(digits(year, 9)? as i32),
        };
        if founded_year.is_some_and(|y| !FOUNDED_YEARS.contains(&y)) {
            return None;
        }
        // SAFETY: the record's bytes are UTF-8 (the caller's promise); the range starts and
        // ends at field boundaries, which are ASCII bytes.
        let joined = joined
            .then(|| unsafe { std::str::from_utf8_unchecked(&b[first as usize..last as usize]) });
        Some((
            Firmographics {
                employees,
                annual_revenue,
                icp_score,
                icp_tier,
                founded_year,
            },
            joined,
        ))
    }

    /// [`Self::parse`]; `valid_utf8`: the record's bytes are known to be UTF-8.
    pub fn parse_v<'a>(
        &self,
        src: &Source,
        rec: &Record<'a>,
        values: &mut Vec<&'a str>,
        valid_utf8: bool,
    ) -> Result<Firmographics, Rejection> {
        let v = valid_utf8;
        values.clear();
        for (i, c) in self.cols.iter().enumerate() {
            values.push(text_v(src, rec, *c, &self.schema.columns()[i], v)?);
        }
        if values[0].is_empty() {
            return Err(reject(&src.name, rec, "account_id", "missing account_id"));
        }
        let employees = number_v(src, rec, self.employees, "employees", v)?;
        if let Some(e) = employees {
            if !((0.0..=MAX_EMPLOYEES).contains(&e) && e.fract() == 0.0) {
                return Err(reject(
                    &src.name,
                    rec,
                    "employees",
                    format!("employees {e} is not a whole number from 0 to {MAX_EMPLOYEES}"),
                ));
            }
        }
        let annual_revenue = number_v(src, rec, self.annual_revenue, "annual_revenue", v)?;
        if let Some(r) = annual_revenue {
            if r < 0.0 {
                return Err(reject(
                    &src.name,
                    rec,
                    "annual_revenue",
                    format!("annual_revenue {r} is negative"),
                ));
            }
        }
        let icp_score = number_v(src, rec, self.icp_score, "icp_score", v)?;
        if let Some(s) = icp_score {
            if !(0.0..=100.0).contains(&s) {
                return Err(reject(
                    &src.name,
                    rec,
                    "icp_score",
                    format!("icp_score {s} is outside 0–100"),
                ));
            }
        }
        let tier_text = text_v(src, rec, self.icp_tier, "icp_tier", v)?;
        let icp_tier = if tier_text.is_empty() {
            None
        } else {
            Some(Tier::parse(tier_text).ok_or_else(|| {
                reject(
                    &src.name,
                    rec,
                    "icp_tier",
                    format!("not a tier (A–E): {tier_text:?}"),
                )
            })?)
        };
        let fy = text_v(src, rec, self.founded_year, "founded_year", v)?;
        let founded_year = if fy.is_empty() {
            None
        } else {
            let y = fy.parse::<i32>().map_err(|_| {
                reject(
                    &src.name,
                    rec,
                    "founded_year",
                    format!("not a year: {fy:?}"),
                )
            })?;
            if !FOUNDED_YEARS.contains(&y) {
                return Err(reject(
                    &src.name,
                    rec,
                    "founded_year",
                    format!(
                        "founded_year {y} is outside {}–{}",
                        FOUNDED_YEARS.start(),
                        FOUNDED_YEARS.end()
                    ),
                ));
            }
            Some(y)
        };
        Ok(Firmographics {
            employees,
            annual_revenue,
            icp_score,
            icp_tier,
            founded_year,
        })
    }
}

/// Load accounts: blocks are parsed on all workers into partial tables, then merged in file
/// order on this thread (where duplicates are detected and the id index is built).
pub fn load_accounts(
    input: &InputSource,
    opts: &LoadOptions<'_>,
    rejects: &mut Rejects,
) -> Result<Accounts, IngestError> {
    let mut src = opts.open_input(input, FileKind::Accounts)?;
    let since = rejects.rows.len();
    let layout = AccountLayout::of(&src);
    let mut input = src.take_input();
    // A mapped file stays mapped for as long as the table: plain rows point into it instead
    // of copying their values (fresh memory is the dear part of loading; see BlockText).
    let map = match &mut input {
        crate::chunk::Input::Mapped { map, keep, .. } => {
            *keep = true;
            Some(map.clone())
        }
        crate::chunk::Input::Stream(_) => None,
    };
    let label = format!("reading {}", src.name);
    let src = &src;
    let (_, blocks) = par_blocks_input(
        &mut input,
        opts.threads,
        opts.block_size,
        Cuts::exact(src.format == Format::Csv),
        || (src.format == Format::Jsonl).then(|| JsonRecords::new(&src.header)),
        |json, block, _| {
            let mut part = AccountTable::new(layout.schema.clone());
            // Room reserved once for as many rows as the block can hold (a CSV row kept has a
            // byte per header field at least; a JSON row, a line) and for its bytes of values,
            // so the part is never copied as it grows: untouched capacity costs no memory.
            let most = match src.format {
                Format::Csv => block.len() / src.header.len().max(1) + 1,
                Format::Jsonl => memchr::memchr_iter(b'\n', block).count() + 1,
            };
            part.reserve(most, block.len());
            let rows = std::cell::Cell::new(0u64);
            let mut vals: Vec<&str> = Vec::with_capacity(layout.cols.len());
            // One UTF-8 check for the whole block instead of one per field. Then every record
            // is UTF-8: a CSV record's bytes are the block or the scanner's copy of a quoted
            // record's fields (pieces of the block cut at ASCII bytes); a JSON record's, the
            // block (lines read in place) or serde_json's rendering of its values (strings it
            // has checked, numbers and literals in ASCII).
            let valid_utf8 = block.is_ascii() || std::str::from_utf8(block).is_ok();
            // A block with a NUL byte takes the general path, which rejects the row.
            let plain = valid_utf8 && memchr::memchr(0, block).is_none();
            let shared = map
                .as_ref()
                .filter(|_| valid_utf8)
                .and_then(|m| BlockText::of(m, block));
            let bad = std::cell::RefCell::new(Vec::new());
            let (lines, unterminated) = for_each_in_block(
                src.format,
                json,
                block,
                0,
                |rec| {
                    rows.set(rows.get() + 1);
                    // Values outside the block (a JSON record serde_json read) are checked
                    // for a NUL here; the block's own bytes were checked above.
                    let at = (rec.bytes().as_ptr() as usize).wrapping_sub(block.as_ptr() as usize);
                    let plain =
                        plain && (at <= block.len() || memchr::memchr(0, rec.bytes()).is_none());
                    match layout.parse_plain(rec, plain) {
                        Some((firmo, Some(joined))) => {
                            let first = rec.ranges()[0].0;
                            let ends = rec.ranges().iter().map(|&(_, e)| e - first);
                            let at =
                                (joined.as_ptr() as usize).wrapping_sub(block.as_ptr() as usize);
                            match &shared {
                                Some(text)
                                    if at
                                        .checked_add(joined.len())
                                        .is_some_and(|end| end <= block.len()) =>
                                {
                                    part.push_shared(text, at, ends, &firmo, rec.line)
                                }
                                _ => part.push_joined(joined, ends, &firmo, rec.line),
                            };
                            return;
                        }
                        Some((firmo, None)) => {
                            let b = rec.bytes();
                            // SAFETY: the record's bytes are UTF-8 (`valid_utf8`) and fields
                            // are cut at ASCII bytes.
                            let values = rec.ranges().iter().map(|&(s, e)| unsafe {
                                std::str::from_utf8_unchecked(&b[s as usize..e as usize])
                            });
                            part.push(values, &firmo, rec.line);
                            return;
                        }
                        None => {}
                    }
                    let mut v = std::mem::take(&mut vals);
                    match fields_ok(src, rec)
                        .and_then(|_| layout.parse_v(src, rec, &mut v, valid_utf8))
                    {
                        Ok(firmo) => {
                            part.push(v.iter().copied(), &firmo, rec.line);
                        }
                        Err(r) => bad.borrow_mut().push(r),
                    }
                    v.clear();
                    // Reuse the allocation (its borrowed contents are gone).
                    vals = v.into_iter().map(|_| "").collect();
                },
                |line, col, msg, raw| {
                    rows.set(rows.get() + 1);
                    bad.borrow_mut()
                        .push(json_rejection(src, line, col, msg, raw))
                },
            );
            let mut bad = bad.into_inner();
            if let Some((line, at)) = unterminated {
                rows.set(rows.get() + 1);
                bad.push(unterminated_rejection(src, line, &block[at..]));
            }
            (lines, (part, rows.get(), bad))
        },
        |_| {},
        &|done| (opts.progress)(&label, done, src.size),
    )
    .map_err(|e| IngestError::Io {
        path: src.name.clone(),
        source: e,
    })?;
    // Number every block's lines from the file's start.
    let mut blocks = blocks;
    let mut line = src.first_line;
    for b in blocks.iter_mut() {
        b.value.0.shift_lines(line);
        for r in b.value.2.iter_mut() {
            r.line += line;
        }
        line += b.lines;
    }
    let rows: u64 = blocks.iter().map(|b| b.value.1).sum();
    if let Some(index) = unique_index(&blocks, opts.threads) {
        let mut table = AccountTable::new(layout.schema.clone());
        for b in blocks {
            let (part, _, mut bad) = b.value;
            table.append(part);
            bad.sort_by_key(|r| r.line);
            rejects.rows.extend(bad);
        }
        rejects.check_strict(opts.strict, since)?;
        return Ok(Accounts { table, index, rows });
    }
    // Duplicates: merge in file order on this thread; the first occurrence wins.
    let total: usize = blocks.iter().map(|b| b.value.0.len()).sum();
    let text: usize = blocks.iter().map(|b| b.value.0.text_bytes()).sum();
    let mut table = AccountTable::new(layout.schema.clone());
    table.reserve(total, text);
    let mut index = IdIndex::with_capacity(total);
    let mut keep = Vec::new();
    for b in blocks {
        let (part, _, mut bad) = b.value;
        keep.clear();
        let mut hashes = [0u64; 64];
        for (k, a) in part.iter().enumerate() {
            if k % 64 == 0 {
                prefetch_ids(&index, &part, k, &mut hashes);
            }
            let idx = (table.len() + keep.len()) as AccountIdx;
            match index.insert_hashed(hashes[k % 64], a.id().as_bytes(), idx) {
                Ok(()) => keep.push(a.idx()),
                Err(first) => {
                    let first_line = if (first as usize) < table.len() {
                        table.get(first).line()
                    } else {
                        part.get(keep[first as usize - table.len()]).line()
                    };
                    let mut record = Vec::new();
                    crate::output::csv_line(&mut record, (0..a.schema().len()).map(|c| a.value(c)));
                    bad.push(Rejection {
                        file: src.name.clone(),
                        line: a.line(),
                        column: "account_id".into(),
                        reason: format!(
                            "duplicate account_id {:?} (first at line {first_line})",
                            a.id()
                        ),
                        record: String::from_utf8_lossy(&record).trim_end().to_string(),
                    });
                }
            }
        }
        if keep.len() == part.len() {
            table.append(part);
        } else {
            for &k in &keep {
                let a = part.get(k);
                table.push(
                    (0..a.schema().len()).map(|c| a.value(c)),
                    &a.firmographics(),
                    a.line(),
                );
            }
        }
        bad.sort_by_key(|r| r.line);
        rejects.rows.extend(bad);
    }
    rejects.check_strict(opts.strict, since)?;
    Ok(Accounts { table, index, rows })
}

pub(crate) type AccountBlock = crate::chunk::Block<(AccountTable, u64, Vec<Rejection>)>;

/// Hash the ids of rows `k..k + 64` of `part` into `hashes` and prefetch their index slots, so
/// the inserts that follow hit the cache.
pub(crate) fn prefetch_ids(index: &IdIndex, part: &AccountTable, k: usize, hashes: &mut [u64; 64]) {
    for (j, h) in hashes
        .iter_mut()
        .enumerate()
        .take(part.len().saturating_sub(k))
    {
        *h = index.hash(part.get((k + j) as AccountIdx).id().as_bytes());
        index.prefetch(*h);
    }
}

/// The usual case, no duplicate ids: the id index of the parsed blocks, in order (dense when
/// the ids allow). `None` at the first duplicate (the caller then merges in order, rejecting
/// the later occurrences).
pub(crate) fn unique_index(blocks: &[AccountBlock], threads: usize) -> Option<IdIndex> {
    let ids = |p: usize| blocks[p].value.0.iter().map(|a| a.id().as_bytes());
    if let Some(dense) = IdIndex::dense(blocks.len(), threads, ids) {
        return Some(dense);
    }
    let total: usize = blocks.iter().map(|b| b.value.0.len()).sum();
    let mut index = IdIndex::with_capacity(total);
    let mut next: AccountIdx = 0;
    let mut hashes = [0u64; 64];
    for b in blocks {
        let part = &b.value.0;
        for (k, a) in part.iter().enumerate() {
            if k % 64 == 0 {
                prefetch_ids(&index, part, k, &mut hashes);
            }
            index
                .insert_hashed(hashes[k % 64], a.id().as_bytes(), next)
                .ok()?;
            next += 1;
        }
    }
    Some(index)
}

// ---------------------------------------------------------------------------------------------
// Triggers and deals
