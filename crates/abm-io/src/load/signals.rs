//! Triggers and deals: parsed, checked and grouped by account.

use super::*;

/// Parse one trigger record.
pub fn parse_trigger(
    src: &Source,
    rec: &Record<'_>,
    rules: &Rules,
    index: &IdIndex,
) -> Result<Trigger, Rejection> {
    let t = checked_trigger(src, rec, rules, index)?;
    Ok(Trigger {
        account: t.account,
        code: t.code,
        at: t.at,
        headline: t.headline.to_string(),
    })
}

/// A valid trigger record, its headline still in the record (only the triggers kept need
/// their own copy).
pub struct CheckedTrigger<'a> {
    pub account: AccountIdx,
    pub code: abm_core::rules::Code,
    pub at: Instant,
    pub headline: &'a str,
}

/// Validate one trigger record (what [`parse_trigger`] checks, in the same order).
pub fn checked_trigger<'a>(
    src: &Source,
    rec: &Record<'a>,
    rules: &Rules,
    index: &IdIndex,
) -> Result<CheckedTrigger<'a>, Rejection> {
    let p = &src.projection;
    let id = text(src, rec, p.slots[0], "account_id")?;
    if id.is_empty() {
        return Err(reject(&src.name, rec, "account_id", "missing account_id"));
    }
    let at = instant(src, rec, p.slots[1], "occurred_at", true)?.expect("required");
    let ty = match &p.constants[2] {
        Some(c) => c.as_str(),
        None => text(src, rec, p.slots[2], "type")?,
    };
    let code = crate::values::lookup_ci(&rules.triggers, ty).ok_or_else(|| {
        reject(
            &src.name,
            rec,
            "type",
            format!("unknown trigger type {ty:?} (add it to triggers.types in abm.toml)"),
        )
    })?;
    number(src, rec, p.slots[5], "strength")?;
    let account = index.get_listed(id.as_bytes()).ok_or_else(|| {
        reject(
            &src.name,
            rec,
            "account_id",
            format!("unknown account {id:?} (not in the accounts file)"),
        )
    })?;
    Ok(CheckedTrigger {
        account,
        code,
        at,
        headline: text(src, rec, p.slots[4], "headline")?,
    })
}

/// Parse one deal record.
pub fn parse_deal(src: &Source, rec: &Record<'_>, index: &IdIndex) -> Result<Deal, Rejection> {
    let p = &src.projection;
    let deal_id = text(src, rec, p.slots[0], "deal_id")?;
    if deal_id.is_empty() {
        return Err(reject(&src.name, rec, "deal_id", "missing deal_id"));
    }
    let id = text(src, rec, p.slots[1], "account_id")?;
    if id.is_empty() {
        return Err(reject(&src.name, rec, "account_id", "missing account_id"));
    }
    let stage = text(src, rec, p.slots[2], "stage")?;
    let amount = number(src, rec, p.slots[3], "amount")?;
    if let Some(a) = amount {
        if a < 0.0 {
            return Err(reject(
                &src.name,
                rec,
                "amount",
                format!("amount {a} is negative"),
            ));
        }
    }
    let created_at = instant(src, rec, p.slots[4], "created_at", true)?.expect("required");
    let closed_at = instant(src, rec, p.slots[5], "closed_at", false)?;
    let last_stage_change_at = instant(src, rec, p.slots[6], "last_stage_change_at", false)?;
    let value = |slot: usize, name: &str| -> Result<Option<&str>, Rejection> {
        match (&p.constants[slot], p.slots[slot]) {
            (Some(c), _) => Ok(Some(c.as_str())),
            (None, Some(c)) => text(src, rec, Some(c), name).map(Some),
            (None, None) => Ok(None),
        }
    };
    let stage = value(2, "stage")?.unwrap_or(stage);
    let outcome = src
        .inputs
        .deal_outcome(
            value(7, "outcome")?,
            value(11, "is_closed")?,
            value(12, "is_won")?,
            stage,
            value(10, "pipeline")?.unwrap_or(""),
        )
        .map_err(|why| {
            let col = match why.split_once(':') {
                Some((c, _)) if c.starts_with("is_") => c.to_string(),
                _ => "outcome".to_string(),
            };
            reject(&src.name, rec, &col, why)
        })?;
    let account = index.get_listed(id.as_bytes()).ok_or_else(|| {
        reject(
            &src.name,
            rec,
            "account_id",
            format!("unknown account {id:?} (not in the accounts file)"),
        )
    })?;
    let product = value(8, "product")?
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from);
    let history = match value(13, "stage_history")? {
        Some(h) if !h.trim().is_empty() => {
            stage_history(src, rec, h, value(10, "pipeline")?.unwrap_or(""))?
        }
        _ => Vec::new(),
    };
    Ok(Deal {
        product,
        history,
        account,
        deal_id: deal_id.to_string(),
        stage: stage.to_string(),
        amount,
        created_at,
        closed_at,
        last_stage_change_at,
        outcome,
    })
}

/// A deal's `stage_history`: `stage@date` entries separated by `;` (`discovery@2026-03-01;
/// proposal@2026-03-20;closed_lost@2026-04-10`), dates as the file's other dates, each stage's
/// outcome as `[inputs.deals]` tells it from the stage; sorted oldest first.
fn stage_history(
    src: &Source,
    rec: &Record<'_>,
    text: &str,
    pipeline: &str,
) -> Result<Vec<StageEntry>, Rejection> {
    let bad = |why: String| reject(&src.name, rec, "stage_history", why);
    let format = src.inputs.date_formats.get(13).and_then(|f| f.as_deref());
    let mut out = Vec::new();
    for (n, item) in text.split(';').map(str::trim).enumerate() {
        if item.is_empty() {
            continue;
        }
        let Some((stage, date)) = item.rsplit_once('@') else {
            return Err(bad(format!("entry {}: {item:?} is not stage@date", n + 1)));
        };
        let (stage, date) = (stage.trim(), date.trim());
        if stage.is_empty() {
            return Err(bad(format!("entry {}: {item:?} has no stage", n + 1)));
        }
        let at = abm_core::time::parse_bytes(date.as_bytes())
            .or_else(|| crate::values::parse_date(date, format))
            .ok_or_else(|| {
                bad(format!(
                    "entry {}: not a date or timestamp: {date:?} (expected YYYY-MM-DD or RFC 3339)",
                    n + 1
                ))
            })?;
        let outcome = src
            .inputs
            .deal_outcome(None, None, None, stage, pipeline)
            .map_err(|why| bad(format!("entry {}: {why}", n + 1)))?;
        out.push(StageEntry {
            stage: stage.to_string(),
            at,
            outcome,
        });
    }
    out.sort_by_key(|e| e.at);
    Ok(out)
}

/// The rejection of a `deal_id` seen before in the same file (at physical line `first`): the
/// first occurrence wins, in `segment` and `import` alike.
pub fn duplicate_deal(src: &Source, rec: &Record<'_>, deal_id: &str, first: u32) -> Rejection {
    reject(
        &src.name,
        rec,
        "deal_id",
        format!("duplicate deal_id {deal_id:?} (first at line {first})"),
    )
}

/// Load triggers. With `window_only`, only those that can count for this `as_of` are kept.
pub fn load_triggers(
    input: &InputSource,
    accounts: &Accounts,
    rules: &Rules,
    window_only: bool,
    opts: &LoadOptions<'_>,
    rejects: &mut Rejects,
) -> Result<(Vec<Trigger>, u64), IngestError> {
    let src = opts.open_input(input, FileKind::Triggers)?;
    let (parts, rows) = scan(
        src,
        opts,
        opts.threads,
        Vec::new,
        |out: &mut Vec<Trigger>, src, rec| {
            let t = checked_trigger(src, rec, rules, &accounts.index)?;
            if !window_only || (t.at >= rules.trigger_from && t.at <= rules.as_of) {
                out.push(Trigger {
                    account: t.account,
                    code: t.code,
                    at: t.at,
                    headline: t.headline.to_string(),
                });
            }
            Ok(())
        },
        rejects,
    )?;
    let all: Vec<Trigger> = parts.into_iter().flatten().collect();
    // Newest first per account; ties keep file order.
    let all = sorted_by(all, |a, b| {
        (a.account, std::cmp::Reverse(a.at), a.code).cmp(&(
            b.account,
            std::cmp::Reverse(b.at),
            b.code,
        ))
    });
    Ok((all, rows))
}

pub fn load_deals(
    input: &InputSource,
    accounts: &Accounts,
    opts: &LoadOptions<'_>,
    rejects: &mut Rejects,
) -> Result<(Vec<Deal>, u64), IngestError> {
    let src = opts.open_input(input, FileKind::Deals)?;
    let mut all = Vec::new();
    // deal_id → line of its first occurrence (a plain hash map: the id index's huge-page
    // tables cost more to grow than this small file's deals are worth).
    let mut seen: foldhash::HashMap<String, u32> = Default::default();
    let rows = scan_seq(
        src,
        opts,
        |src, rec| {
            let d = parse_deal(src, rec, &accounts.index)?;
            match seen.entry(d.deal_id.clone()) {
                std::collections::hash_map::Entry::Occupied(e) => {
                    return Err(duplicate_deal(src, rec, &d.deal_id, *e.get()));
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(rec.line as u32);
                }
            }
            all.push(d);
            Ok(())
        },
        rejects,
    )?;
    let all = sorted_by(all, |a, b| {
        (a.account, &a.deal_id).cmp(&(b.account, &b.deal_id))
    });
    Ok((all, rows))
}

/// `items` stably sorted by `cmp`: positions are sorted (ties by position), then the items
/// moved once into place, instead of moving whole items at every step of the sort.
pub(crate) fn sorted_by<T>(items: Vec<T>, cmp: impl Fn(&T, &T) -> std::cmp::Ordering) -> Vec<T> {
    let mut order: Vec<u32> = (0..items.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| cmp(&items[a as usize], &items[b as usize]).then(a.cmp(&b)));
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    order
        .into_iter()
        .map(|i| slots[i as usize].take().expect("each position once"))
        .collect()
}

/// Items sorted by account, with each account's range.
pub struct ByAccount<T> {
    pub items: Vec<T>,
    starts: Vec<u32>,
}

impl<T> ByAccount<T> {
    /// `items` must be sorted by `key`.
    pub fn new(items: Vec<T>, n_accounts: usize, key: impl Fn(&T) -> AccountIdx) -> ByAccount<T> {
        let mut starts = vec![0u32; n_accounts + 1];
        for it in &items {
            starts[key(it) as usize + 1] += 1;
        }
        for i in 0..n_accounts {
            starts[i + 1] += starts[i];
        }
        ByAccount { items, starts }
    }

    pub fn of(&self, a: AccountIdx) -> &[T] {
        &self.items[self.starts[a as usize] as usize..self.starts[a as usize + 1] as usize]
    }
}
