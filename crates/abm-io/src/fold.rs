//! The engagement fold of the bulk path: every event of the engagement file folded into
//! per-account state on all workers (see ARCHITECTURE.md, "The bulk path"). Plain CSV rows and
//! flat JSON Lines objects take a fast path; everything else the generic scanners, which also
//! word the rejections. Lookups are software-pipelined; the stateless `segment` folds lean.

use crate::chunk::{par_blocks_input, Block, Cuts};
use crate::columns::{FileKind, Projection};
use crate::csv::Record;
use crate::load::{
    absorb_blocks, fields_ok, instant, json_rejection, reject, unterminated_rejection, Accounts,
    IdIndex, LoadOptions, Rejection, Rejects,
};
use crate::mem::{prefetch, PREFETCH_AHEAD};
use crate::source::{plain_json_fields, Format, JsonRecords, JsonTemplate, Source, MAX_FAST_COLS};
use crate::IngestError;
use abm_core::account::AccountIdx;
use abm_core::engagement::{contact_hash, EngagementState, Signal, Verdict};
use abm_core::rules::{Code, Rules};
use abm_core::Instant;
use std::sync::atomic::Ordering;

/// Resolved columns of an engagement file.
#[derive(Clone, Copy)]
pub struct EventCols {
    pub account_id: usize,
    pub occurred_at: usize,
    /// The type column; `None` when every row has the type `type_const`.
    pub type_: Option<usize>,
    pub contact_id: Option<usize>,
    pub event_id: Option<usize>,
    pub detail: Option<usize>,
}

impl EventCols {
    pub fn of(p: &Projection) -> EventCols {
        EventCols {
            account_id: p.slots[0].expect("required"),
            occurred_at: p.slots[1].expect("required"),
            type_: p.slots[2],
            contact_id: p.slots[3],
            event_id: p.slots[4],
            detail: p.slots[5],
        }
    }
}

/// One valid engagement row.
pub struct EventRow<'a> {
    pub account: AccountIdx,
    pub code: Code,
    pub at: Instant,
    pub contact: &'a [u8],
}

/// An engagement record's fields, checked but not yet resolved to an account.
struct CheckedEvent<'a> {
    id: &'a [u8],
    at: Instant,
    /// `None`: a type mapped to `ignore` (accepted, counts for nothing).
    code: Option<Code>,
    contact: &'a [u8],
}

/// Check account_id (present), occurred_at and type; the rejection names the first bad field.
fn check_event<'a>(
    src: &Source,
    rec: &Record<'a>,
    c: &EventCols,
    rules: &Rules,
) -> Result<CheckedEvent<'a>, Rejection> {
    let id = rec.get(c.account_id).trim_ascii();
    if id.is_empty() {
        return Err(reject(&src.name, rec, "account_id", "missing account_id"));
    }
    let at = instant(src, rec, Some(c.occurred_at), "occurred_at", true)?.expect("required");
    let ty = match (c.type_, &src.projection.constants[2]) {
        (Some(i), _) => rec.get(i).trim_ascii(),
        (None, Some(t)) => t.as_bytes(),
        (None, None) => b"",
    };
    let code = src.inputs.event_code(rules, ty).map_err(|_| {
        reject(
            &src.name,
            rec,
            "type",
            format!(
                "unknown event type {:?} (add it to engagement.high/medium/low/demotion_signals, or map it in [values.event_types], in abm.toml)",
                String::from_utf8_lossy(ty)
            ),
        )
    })?;
    let contact = c.contact_id.map(|i| rec.get(i).trim_ascii()).unwrap_or(b"");
    Ok(CheckedEvent {
        id,
        at,
        code,
        contact,
    })
}

/// Validate one engagement record: account_id, occurred_at, type, known account. `Ok(None)`:
/// a valid row of a type mapped to `ignore` (`[values.event_types]`), which counts for nothing.
#[inline]
pub fn parse_event<'a>(
    src: &Source,
    rec: &Record<'a>,
    c: &EventCols,
    rules: &Rules,
    index: &IdIndex,
) -> Result<Option<EventRow<'a>>, Rejection> {
    let e = check_event(src, rec, c, rules)?;
    let account = index
        .get_listed(e.id)
        .ok_or_else(|| unknown_account(src, rec, e.id))?;
    Ok(e.code.map(|code| EventRow {
        account,
        code,
        at: e.at,
        contact: e.contact,
    }))
}

/// The engagement file folded into per-account state.
pub struct EngagementFold {
    pub states: crate::mem::ZeroedArray<EngagementState>,
    /// Demotion-signal events, any date (the assessment filters by window and floor).
    pub signals: Vec<Signal>,
    pub rows: u64,
    pub after_as_of: u64,
}

/// Where a worker's events for one other worker go, and the batch being filled.
type Outbox = (std::sync::mpsc::Sender<Vec<Ready>>, Vec<Ready>);

/// One fold worker. Workers share one state array, each owning a contiguous range of
/// accounts: an event for an account another worker owns is sent to it in batches, so no
/// state is written by two threads and no per-worker copies need merging.
struct FoldWorker<'s> {
    /// The states of accounts `lo..lo + states.len()`.
    states: &'s mut [EngagementState],
    lo: AccountIdx,
    /// Accounts per owner (owner of `idx` = `idx / span`).
    span: AccountIdx,
    /// Per owner: where its batches go and the batch being filled (`None` for this worker).
    outbox: Vec<Option<Outbox>>,
    inbox: std::sync::mpsc::Receiver<Vec<Ready>>,
    signals: Vec<Signal>,
    after_as_of: u64,
    json: Option<JsonRecords>,
    /// The lookup pipeline: being filled, index slots prefetched, states prefetched.
    batch: Vec<Pending>,
    looked: Vec<Pending>,
    ready: Vec<Ready>,
    /// Events whose account was known without the lookup pipeline ([`Self::known`]), their
    /// states being prefetched: folded when the next such batch is full.
    direct: Vec<Ready>,
    direct_prev: Vec<Ready>,
    lean: LeanSink,
    /// Records that need the generic scanner (quotes, odd field counts).
    scanner: crate::csv::Scanner,
    /// A CSV block so far held a quote (see [`Cuts::Trusting`]).
    saw_quote: bool,
    /// The fast path's timestamp parser (it remembers the dates it has seen).
    timestamps: abm_core::time::TimestampParser,
}

/// A parsed event waiting for its account lookup (batched so lookups overlap in memory).
/// Its id and contact stay in the block: only events that change a state hash their contact.
#[derive(Clone, Copy)]
struct Pending {
    /// The id's hash (hashed index) or its slot (dense index).
    key: u64,
    at: Instant,
    /// The contact's hash when it is not in the block (generic path), else 0.
    contact_hash: u64,
    line: u64,
    raw: (u32, u32),
    id: (u32, u32),
    contact: (u32, u32),
    code: Code,
}

/// A looked-up event whose state line is being prefetched (or that goes to its owner).
#[derive(Clone, Copy)]
struct Ready {
    at: Instant,
    contact: u64,
    idx: AccountIdx,
    code: Code,
}

const BATCH: usize = 64;

struct FoldCtx<'a> {
    src: &'a Source,
    cols: EventCols,
    rules: &'a Rules,
    index: &'a IdIndex,
    floors: Option<&'a [Instant]>,
    /// Only events that can change what is read afterwards touch the per-account state:
    /// with no floors and no inactivity clocks (the stateless `segment`), an event after
    /// `as_of` is only counted, a demotion signal only listed, and an engagement event older
    /// than its type's window changes nothing.
    lean: bool,
}

/// Where the lean fold puts the effect of events that skip the state.
#[derive(Default)]
struct LeanSink {
    signals: Vec<Signal>,
    after_as_of: u64,
}

/// What a lean fold does with a valid event.
#[derive(Clone, Copy)]
enum LeanFate {
    /// After `as_of`: only counted.
    AfterAsOf,
    /// An engagement event older than its type's window: nothing.
    OutsideWindow,
    /// A demotion signal: listed (with its account).
    Signal,
    /// Folded into the account's state.
    State,
}

#[inline]
fn lean_fate(rules: &Rules, code: Code, at: Instant) -> LeanFate {
    if at > rules.as_of {
        return LeanFate::AfterAsOf;
    }
    match rules.event_class[code as usize] {
        abm_core::model::EventClass::DemotionSignal => LeanFate::Signal,
        abm_core::model::EventClass::Engagement(_) if at >= rules.event_from[code as usize] => {
            LeanFate::State
        }
        abm_core::model::EventClass::Engagement(_) => LeanFate::OutsideWindow,
    }
}

/// Whether the event needs the account's state; if not, its whole effect goes to `sink`.
#[inline]
fn settle_lean(
    sink: &mut LeanSink,
    rules: &Rules,
    idx: AccountIdx,
    code: Code,
    at: Instant,
) -> bool {
    match lean_fate(rules, code, at) {
        LeanFate::AfterAsOf => sink.after_as_of += 1,
        LeanFate::OutsideWindow => {}
        LeanFate::Signal => sink.signals.push(Signal {
            account: idx,
            code,
            at,
        }),
        LeanFate::State => return true,
    }
    false
}

/// Events per batch sent to another worker.
const SEND_BATCH: usize = 1024;

impl FoldWorker<'_> {
    #[inline]
    fn owns(&self, idx: AccountIdx) -> bool {
        idx.wrapping_sub(self.lo) < self.states.len() as AccountIdx
    }

    #[inline]
    fn state_ptr(&self, idx: AccountIdx) -> *const u8 {
        &self.states[(idx - self.lo) as usize] as *const EngagementState as *const u8
    }

    /// Queue an event for another worker's account.
    #[inline]
    fn send(&mut self, r: Ready) {
        let (tx, batch) = self.outbox[(r.idx / self.span) as usize]
            .as_mut()
            .expect("another worker owns it");
        batch.push(r);
        if batch.len() == SEND_BATCH {
            let full = std::mem::replace(batch, Vec::with_capacity(SEND_BATCH));
            // The receiver outlives every sender (it drains until all have hung up).
            let _ = tx.send(full);
        }
    }

    /// Fold batches other workers sent, prefetching a batch's states before folding it.
    fn fold_received(&mut self, ctx: &FoldCtx<'_>, batch: Vec<Ready>) {
        for r in &batch {
            prefetch(self.state_ptr(r.idx));
        }
        for r in &batch {
            self.apply(ctx, r.idx, r.code, r.at, r.contact);
        }
    }

    /// Fold whatever has arrived, without waiting.
    fn drain_inbox(&mut self, ctx: &FoldCtx<'_>) {
        while let Ok(b) = self.inbox.try_recv() {
            self.fold_received(ctx, b);
        }
    }

    /// After the last block: send what is left, hang up, and fold what the others send until
    /// they have all hung up.
    fn finish(&mut self, ctx: &FoldCtx<'_>) {
        for (tx, batch) in self.outbox.drain(..).flatten() {
            if !batch.is_empty() {
                let _ = tx.send(batch);
            }
        }
        while let Ok(b) = self.inbox.recv() {
            self.fold_received(ctx, b);
        }
    }

    /// An event whose account is known without the lookup pipeline: settled (lean), or queued
    /// for its state (prefetched now, folded a batch later), or sent to the worker owning it.
    #[inline(always)]
    fn known(
        &mut self,
        ctx: &FoldCtx<'_>,
        idx: AccountIdx,
        code: Code,
        at: Instant,
        contact: &[u8],
    ) {
        if ctx.lean && !settle_lean(&mut self.lean, ctx.rules, idx, code, at) {
            return;
        }
        let contact = if contact.is_empty() {
            0
        } else {
            contact_hash(contact)
        };
        let r = Ready {
            at,
            contact,
            idx,
            code,
        };
        if !self.owns(idx) {
            return self.send(r);
        }
        prefetch(self.state_ptr(idx));
        self.direct.push(r);
        if self.direct.len() == BATCH {
            self.step_direct(ctx);
        }
    }

    #[inline]
    fn apply(&mut self, ctx: &FoldCtx<'_>, idx: AccountIdx, code: Code, at: Instant, contact: u64) {
        let floor = ctx.floors.map(|f| f[idx as usize]).unwrap_or(Instant::MIN);
        let lo = self.lo;
        match self.states[(idx - lo) as usize].observe_hashed(ctx.rules, code, at, contact, floor) {
            Verdict::Signal { .. } => self.signals.push(Signal {
                account: idx,
                code,
                at,
            }),
            Verdict::AfterAsOf => self.after_as_of += 1,
            _ => {}
        }
    }

    /// One pipeline step, when a batch is full: fold the states looked up one step ago (their
    /// lines were prefetched then), look up the ids queued one step ago (their index slots were
    /// prefetched then) and prefetch the states that will change, and prefetch the index slots of
    /// the batch just filled. Every access to the big random-access tables thus has a whole
    /// batch of parsing between its prefetch and its use.
    fn step(&mut self, ctx: &FoldCtx<'_>, block: &[u8], bad: &mut Vec<Rejection>) {
        let mut ready = std::mem::take(&mut self.ready);
        for p in &ready {
            self.apply(ctx, p.idx, p.code, p.at, p.contact);
        }
        ready.clear();
        let looked = std::mem::take(&mut self.looked);
        match ctx.index.as_dense() {
            Some(d) => {
                for p in &looked {
                    self.resolve(ctx, block, p, d.at(p.key as usize), &mut ready, bad);
                }
            }
            None => {
                for p in &looked {
                    let id = &block[p.id.0 as usize..(p.id.0 + p.id.1) as usize];
                    let found = ctx.index.get_hashed(p.key, id);
                    self.resolve(ctx, block, p, found, &mut ready, bad);
                }
            }
        }
        self.ready = ready;
        self.looked = looked;
        self.looked.clear();
        std::mem::swap(&mut self.looked, &mut self.batch);
    }

    /// Fold the direct batch queued one step ago (its states were prefetched then).
    fn step_direct(&mut self, ctx: &FoldCtx<'_>) {
        let prev = std::mem::take(&mut self.direct_prev);
        for p in &prev {
            self.apply(ctx, p.idx, p.code, p.at, p.contact);
        }
        self.direct_prev = std::mem::replace(&mut self.direct, prev);
        self.direct.clear();
    }

    /// A looked-up event: rejected (unknown account), settled without the state (lean), or
    /// queued for the fold with its state prefetched.
    #[inline]
    fn resolve(
        &mut self,
        ctx: &FoldCtx<'_>,
        block: &[u8],
        p: &Pending,
        found: Option<AccountIdx>,
        ready: &mut Vec<Ready>,
        bad: &mut Vec<Rejection>,
    ) {
        let id = &block[p.id.0 as usize..(p.id.0 + p.id.1) as usize];
        let Some(idx) = found.or_else(|| ctx.index.get_listed(id)) else {
            let raw = &block[p.raw.0 as usize..(p.raw.0 + p.raw.1) as usize];
            bad.push(unknown_account(
                ctx.src,
                &Record::new(p.line, raw, &[], raw),
                id,
            ));
            return;
        };
        if ctx.lean && !settle_lean(&mut self.lean, ctx.rules, idx, p.code, p.at) {
            return;
        }
        let contact = match p.contact.1 {
            0 => p.contact_hash,
            n => contact_hash(&block[p.contact.0 as usize..(p.contact.0 + n) as usize]),
        };
        let r = Ready {
            at: p.at,
            contact,
            idx,
            code: p.code,
        };
        if self.owns(idx) {
            prefetch(self.state_ptr(idx));
            ready.push(r);
        } else {
            self.send(r);
        }
    }

    /// Drain the pipeline (at the end of a block: rejections point into it).
    fn flush(&mut self, ctx: &FoldCtx<'_>, block: &[u8], bad: &mut Vec<Rejection>) {
        for _ in 0..3 {
            self.step(ctx, block, bad);
        }
        for _ in 0..2 {
            self.step_direct(ctx);
        }
    }

    /// Queue one valid event for the batched lookup; an id or contact that is not a slice of
    /// `block` (an unescaped quoted field) is looked up or hashed now.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn queue(
        &mut self,
        ctx: &FoldCtx<'_>,
        block: &[u8],
        id: &[u8],
        at: Instant,
        code: Code,
        contact: &[u8],
        line: u64,
        raw: (usize, usize),
        bad: &mut Vec<Rejection>,
    ) -> Result<(), Rejection> {
        let raw_in = raw.0 + raw.1 <= block.len() && block.len() <= u32::MAX as usize;
        let unknown = || {
            let r = &block[raw.0.min(block.len())..(raw.0 + raw.1).min(block.len())];
            unknown_account(ctx.src, &Record::new(line, r, &[], r), id)
        };
        let (Some(id_at), true) = (span_in(block, id), raw_in) else {
            let idx = ctx.index.get_listed(id).ok_or_else(unknown)?;
            self.known(ctx, idx, code, at, contact);
            return Ok(());
        };
        // Prefetched now, used one batch later: the misses overlap with parsing.
        let key = match ctx.index.as_dense() {
            Some(d) => {
                let Some(k) = d.key(id).filter(|&k| d.holds(k)) else {
                    // Not one plain id: a list of them, or unknown.
                    let idx = ctx.index.get_listed(id).ok_or_else(unknown)?;
                    self.known(ctx, idx, code, at, contact);
                    return Ok(());
                };
                // A lean fold settles most events here, the account's existence known from
                // the bitmap: after as_of, outside the type's window (a signal needs its index).
                if ctx.lean {
                    match lean_fate(ctx.rules, code, at) {
                        LeanFate::AfterAsOf => {
                            self.lean.after_as_of += 1;
                            return Ok(());
                        }
                        LeanFate::OutsideWindow => return Ok(()),
                        LeanFate::Signal | LeanFate::State => {}
                    }
                }
                if let Some(idx) = d.at_once(k) {
                    // Known without a lookup: straight to the state stage.
                    self.known(ctx, idx, code, at, contact);
                    return Ok(());
                }
                d.prefetch(k);
                k as u64
            }
            None => {
                let h = ctx.index.hash(id);
                ctx.index.prefetch(h);
                h
            }
        };
        let (contact_at, contact_hash) = match span_in(block, contact) {
            Some(c) => (c, 0),
            None if contact.is_empty() => ((0, 0), 0),
            None => ((0, 0), contact_hash(contact)),
        };
        self.batch.push(Pending {
            key,
            at,
            contact_hash,
            line,
            raw: (raw.0 as u32, raw.1 as u32),
            id: id_at,
            contact: contact_at,
            code,
        });
        if self.batch.len() == BATCH {
            self.step(ctx, block, bad);
        }
        Ok(())
    }

    /// The generic path: one scanned record (CSV with quotes, JSON Lines, odd rows).
    fn event(
        &mut self,
        ctx: &FoldCtx<'_>,
        block: &[u8],
        rec: &Record<'_>,
        bad: &mut Vec<Rejection>,
    ) -> Result<(), Rejection> {
        fields_ok(ctx.src, rec)?;
        let e = check_event(ctx.src, rec, &ctx.cols, ctx.rules)?;
        let Some(code) = e.code else {
            // Accepted, counts for nothing; its account must still be known.
            return match ctx.index.get_listed(e.id) {
                Some(_) => Ok(()),
                None => Err(unknown_account(ctx.src, rec, e.id)),
            };
        };
        let raw_off = (rec.raw.as_ptr() as usize).wrapping_sub(block.as_ptr() as usize);
        self.queue(
            ctx,
            block,
            e.id,
            e.at,
            code,
            e.contact,
            rec.line,
            (raw_off, rec.raw.len()),
            bad,
        )
    }

    /// Queue the event whose fields are at `bounds` (byte ranges into `block`, in header
    /// order) when every field is valid; `false` (nothing done) sends the row to the generic
    /// path, which words the rejection.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn fast_event(
        &mut self,
        ctx: &FoldCtx<'_>,
        block: &[u8],
        bounds: &[(u32, u32); MAX_FAST_COLS],
        line: u64,
        raw: (usize, usize),
        bad: &mut Vec<Rejection>,
    ) -> bool {
        let c = ctx.cols;
        let field = |i: usize| {
            let (s, e) = bounds[i];
            debug_assert!(s <= e && e as usize <= block.len());
            // SAFETY: the splitters (`Seps::plain_fields`, `plain_json_fields`, `JsonTemplate`)
            // give ranges within the block, start before end.
            let f = unsafe { block.get_unchecked(s as usize..e as usize) };
            // Whitespace is at most b' ': one compare per end for the usual untrimmed field.
            match (f.first(), f.last()) {
                (Some(&a), Some(&z)) if a > b' ' && z > b' ' => f,
                _ => f.trim_ascii(),
            }
        };
        let id = field(c.account_id);
        let at = self.timestamps.parse(field(c.occurred_at));
        let code = match c.type_ {
            Some(t) => ctx.rules.events.lookup(field(t)),
            None => None,
        };
        let (false, Some(at), Some(code)) = (id.is_empty(), at, code) else {
            return false;
        };
        let contact = c.contact_id.map(field).unwrap_or(b"");
        if let Err(r) = self.queue(ctx, block, id, at, code, contact, line, raw, bad) {
            bad.push(r);
        }
        true
    }

    /// Fold one JSON Lines block. A flat object whose values are all plain strings (no
    /// escapes) or `null` is read in place; any other line goes through `serde_json`
    /// ([`JsonRecords`]) and [`Self::event`], as before.
    fn jsonl_block(&mut self, ctx: &FoldCtx<'_>, block: &[u8]) -> (u64, (u64, Vec<Rejection>)) {
        self.drain_inbox(ctx);
        let mut bad = Vec::new();
        let mut json = self.json.take().expect("JSON recordizer");
        let mut bounds = [(0u32, 0u32); MAX_FAST_COLS];
        // serde_json rejects invalid UTF-8; one check per block lets the fast path skip it.
        let valid_utf8 = (block.is_ascii() || std::str::from_utf8(block).is_ok())
            && block.len() <= u32::MAX as usize;
        let header = &ctx.src.header;
        let template = JsonTemplate::new(header);
        let (mut pos, mut line, mut rows) = (0usize, 0u64, 0u64);
        while pos < block.len() {
            prefetch(block.as_ptr().wrapping_add(pos + PREFETCH_AHEAD));
            let (end, next) = match memchr::memchr(b'\n', &block[pos..]) {
                Some(i) => (pos + i, pos + i + 1),
                None => (block.len(), block.len()),
            };
            let l = &block[pos..end];
            if !l.trim_ascii().is_empty() {
                let fast = valid_utf8
                    && (template
                        .as_ref()
                        .is_some_and(|t| t.fields(l, pos, &mut bounds))
                        || plain_json_fields(l, pos, header, &mut bounds))
                    && self.fast_event(ctx, block, &bounds, line, (pos, end - pos), &mut bad);
                if fast {
                    rows += 1;
                } else {
                    match json.parse(line, l) {
                        Ok(rec) => {
                            rows += 1;
                            if let Err(r) = self.event(ctx, block, &rec, &mut bad) {
                                bad.push(r);
                            }
                        }
                        Err((col, msg)) => {
                            rows += 1;
                            bad.push(json_rejection(ctx.src, line, col, msg, l));
                        }
                    }
                }
            }
            line += (next > end) as u64;
            pos = next;
        }
        self.json = Some(json);
        self.flush(ctx, block, &mut bad);
        bad.sort_by_key(|r| r.line);
        (line, (rows, bad))
    }

    /// Fold one CSV block. Plain rows (no quotes, the header's field count, every field
    /// valid) are split once with SSE2 and never become a [`Record`]; any other row goes
    /// through the generic scanner and [`Self::event`], which rejects it with the usual reason.
    fn csv_block(&mut self, ctx: &FoldCtx<'_>, block: &[u8]) -> (u64, (u64, Vec<Rejection>)) {
        self.drain_inbox(ctx);
        let mut bad = Vec::new();
        let ncols = ctx.src.header.len();
        let mut bounds = [(0u32, 0u32); MAX_FAST_COLS];
        let mut scanner = std::mem::take(&mut self.scanner);
        let (mut pos, mut line, mut rows) = (0usize, 0u64, 0u64);
        let mut unterminated = None;
        let mut seps = Seps::at(block, 0);
        // A block with a NUL byte goes through the generic path, which rejects its rows (one
        // memchr per block costs less than a fifth compare in every separator window).
        let plain = memchr::memchr(0, block).is_none();
        while pos < block.len() {
            let fast = if plain {
                seps.plain_fields(block, pos, ncols, &mut bounds)
            } else {
                None
            };
            if let Some((end, next)) = fast {
                if end == pos || (end == pos + 1 && block[pos] == b'\r') {
                    line += (next > end) as u64; // blank line
                    pos = next;
                    continue;
                }
                if self.fast_event(ctx, block, &bounds, line, (pos, next - pos), &mut bad) {
                    rows += 1;
                    line += (next > end) as u64;
                    pos = next;
                    continue;
                }
            }
            // The generic path, for this record only.
            let scanned = scanner.scan(block, pos, line, |rec| {
                rows += 1;
                if let Err(r) = self.event(ctx, block, rec, &mut bad) {
                    bad.push(r);
                }
            });
            match scanned {
                crate::csv::Scan::Record { end, newlines } => {
                    // Every byte outside this path is in a plain (quote-free) line.
                    self.saw_quote |= memchr::memchr(b'"', &block[pos..end]).is_some();
                    line += newlines;
                    pos = end;
                    seps = Seps::at(block, pos);
                }
                crate::csv::Scan::Unterminated => {
                    self.saw_quote = true;
                    rows += 1;
                    unterminated = Some((line, pos));
                    break;
                }
            }
        }
        self.scanner = scanner;
        self.flush(ctx, block, &mut bad);
        if let Some((line, at)) = unterminated {
            bad.push(unterminated_rejection(ctx.src, line, &block[at..]));
        }
        bad.sort_by_key(|r| r.line);
        (line, (rows, bad))
    }
}

/// The separators of a CSV block (`,`, `\n`, `"`), found 64 bytes at a time as a bit mask and
/// handed out in order: a line's fields are cut with one trailing-zero count per separator.
struct Seps {
    /// Start of the 64-byte window `mask` describes.
    base: usize,
    /// Separators in the window not yet handed out.
    mask: u64,
}

impl Seps {
    /// Positioned at `pos` (separators before it are skipped).
    fn at(buf: &[u8], pos: usize) -> Seps {
        let base = pos & !63;
        let mask = Self::window(buf, base) & (!0u64 << (pos - base));
        Seps { base, mask }
    }

    /// Bit i set when `buf[base + i]` is a separator.
    #[inline]
    fn window(buf: &[u8], base: usize) -> u64 {
        #[cfg(target_arch = "x86_64")]
        if base + 64 <= buf.len() {
            use std::arch::x86_64::*;
            // SAFETY: 64 bytes from `base` are in bounds (checked); SSE2 is baseline on x86_64.
            unsafe {
                let (c, n, q) = (
                    _mm_set1_epi8(b',' as i8),
                    _mm_set1_epi8(b'\n' as i8),
                    _mm_set1_epi8(b'"' as i8),
                );
                let mut m = 0u64;
                for k in 0..4 {
                    let v = _mm_loadu_si128(buf.as_ptr().add(base + 16 * k) as *const __m128i);
                    let hit = _mm_or_si128(
                        _mm_or_si128(_mm_cmpeq_epi8(v, c), _mm_cmpeq_epi8(v, n)),
                        _mm_cmpeq_epi8(v, q),
                    );
                    m |= (_mm_movemask_epi8(hit) as u32 as u64) << (16 * k);
                }
                return m;
            }
        }
        let end = (base + 64).min(buf.len());
        let mut m = 0u64;
        for (i, &b) in buf[base.min(end)..end].iter().enumerate() {
            m |= (matches!(b, b',' | b'\n' | b'"') as u64) << i;
        }
        m
    }

    /// The next separator's position, if any.
    #[inline]
    fn next(&mut self, buf: &[u8]) -> Option<usize> {
        while self.mask == 0 {
            self.base += 64;
            if self.base >= buf.len() {
                return None;
            }
            prefetch(buf.as_ptr().wrapping_add(self.base + PREFETCH_AHEAD));
            self.mask = Self::window(buf, self.base);
        }
        let i = self.base + self.mask.trailing_zeros() as usize;
        self.mask &= self.mask - 1;
        Some(i)
    }

    /// Split the plain (quote-free) CSV line at `pos` (where `self` is positioned) into
    /// exactly `ncols` fields, as byte ranges into `buf` (a trailing `\r` is not part of the
    /// last field). Returns `(end, next)`: where the line's content ends (its `\n` or the
    /// buffer's end) and where the next line starts; `None` when the line has a quote or
    /// another field count, so the generic scanner must take it (the caller then positions
    /// `self` again).
    #[inline]
    fn plain_fields(
        &mut self,
        buf: &[u8],
        pos: usize,
        ncols: usize,
        bounds: &mut [(u32, u32); MAX_FAST_COLS],
    ) -> Option<(usize, usize)> {
        if ncols > MAX_FAST_COLS || buf.len() > u32::MAX as usize {
            return None;
        }
        let (mut n, mut start) = (0usize, pos);
        let end = loop {
            let Some(i) = self.next(buf) else {
                break buf.len();
            };
            debug_assert!(i < buf.len());
            // SAFETY: `next` yields positions of mask bits, set only for bytes of `buf`.
            match unsafe { *buf.get_unchecked(i) } {
                b',' => {
                    if n + 1 >= ncols {
                        return None;
                    }
                    bounds[n] = (start as u32, i as u32);
                    n += 1;
                    start = i + 1;
                }
                b'\n' => break i,
                _ => return None, // a quote
            }
        };
        let next = if end < buf.len() { end + 1 } else { end };
        let content_end = if end > start && buf[end - 1] == b'\r' {
            end - 1
        } else {
            end
        };
        if n + 1 != ncols {
            // A blank line is reported as such (no fields needed).
            return (end == pos || (end == pos + 1 && buf[pos] == b'\r')).then_some((end, next));
        }
        bounds[n] = (start as u32, content_end as u32);
        Some((end, next))
    }
}

/// `s` as `(offset, len)` in `block`, when it is a non-empty slice of it.
#[inline]
fn span_in(block: &[u8], s: &[u8]) -> Option<(u32, u32)> {
    let off = (s.as_ptr() as usize).wrapping_sub(block.as_ptr() as usize);
    (!s.is_empty()
        && off <= block.len()
        && s.len() <= block.len() - off
        && block.len() <= u32::MAX as usize)
        .then_some((off as u32, s.len() as u32))
}

fn unknown_account(src: &Source, rec: &Record<'_>, id: &[u8]) -> Rejection {
    reject(
        &src.name,
        rec,
        "account_id",
        format!(
            "unknown account {:?} (not in the accounts file)",
            String::from_utf8_lossy(id)
        ),
    )
}

/// Fold every engagement event into per-account state on all workers. `floors` (per account,
/// from the store) hides evidence from before each account's last demotion. `clocks`: keep the
/// inactivity clocks (`last_any`, `last_medium_plus`), which only movement rules over a prior
/// cluster read; without them (and without floors) events that cannot change the outcome skip
/// the state entirely.
pub fn fold_engagement(
    input: &crate::source::InputSource,
    accounts: &Accounts,
    rules: &Rules,
    floors: Option<&[Instant]>,
    clocks: bool,
    opts: &LoadOptions<'_>,
    rejects: &mut Rejects,
) -> Result<EngagementFold, IngestError> {
    let mut src = opts.open_input(input, FileKind::Engagement)?;
    let since = rejects.rows.len();
    let mut input = src.take_input();
    let ctx = FoldCtx {
        src: &src,
        cols: EventCols::of(&src.projection),
        rules,
        index: &accounts.index,
        floors,
        lean: floors.is_none() && !clocks,
    };
    let threads = opts.threads.max(1);
    // Zeroed memory is the default state: the pages are zeroed where the fold first touches
    // them, with no initialising pass before it starts.
    let mut all = crate::mem::ZeroedArray::<EngagementState>::new(accounts.table.len());
    // A mapped CSV is first cut at line ends, on trust that it holds no quote (the cutter
    // then reads only each block's last line, not the whole file before the workers do). A
    // worker that meets a quote stops that pass; it is thrown away and run again cut at
    // record ends.
    let quoted = std::sync::atomic::AtomicBool::new(false);
    let csv = src.format == Format::Csv;
    let mut cuts = match (&input, csv) {
        (crate::chunk::Input::Mapped { .. }, true) => Cuts::Trusting(&quoted),
        _ => Cuts::exact(csv),
    };
    let (workers, blocks) = loop {
        let pass = fold_pass(&ctx, &mut input, cuts, &mut all, threads, opts)?;
        if !matches!(cuts, Cuts::Trusting(_)) || !quoted.load(Ordering::Relaxed) {
            break pass;
        }
        all.fill(EngagementState::default());
        cuts = Cuts::Records;
    };
    let rows = absorb_blocks(blocks, src.first_line, rejects);
    rejects.check_strict(opts.strict, since)?;
    let (mut signals, mut after_as_of) = (Vec::new(), 0);
    for mut w in workers {
        signals.append(&mut w.signals);
        signals.append(&mut w.lean.signals);
        after_as_of += w.after_as_of + w.lean.after_as_of;
    }
    signals.sort_by_key(|s| (s.account, s.at, s.code));
    Ok(EngagementFold {
        states: all,
        signals,
        rows,
        after_as_of,
    })
}

/// What one pass over the engagement file leaves: the workers and each block's rows and
/// rejections.
type Pass<'s> = (Vec<FoldWorker<'s>>, Vec<Block<(u64, Vec<Rejection>)>>);

/// One pass of the fold over `input` into `all` (fresh states), on `threads` workers.
fn fold_pass<'s>(
    ctx: &FoldCtx<'_>,
    input: &mut crate::chunk::Input,
    cuts: Cuts<'_>,
    all: &'s mut [EngagementState],
    threads: usize,
    opts: &LoadOptions<'_>,
) -> Result<Pass<'s>, IngestError> {
    let src = ctx.src;
    let label = format!("reading {}", src.name);
    // One state array; worker w owns accounts w·span .. (w+1)·span.
    let span = (all.len().div_ceil(threads).max(1)) as AccountIdx;
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..threads)
        .map(|_| std::sync::mpsc::channel::<Vec<Ready>>())
        .unzip();
    let mut parts = Vec::with_capacity(threads);
    let mut rest: &mut [EngagementState] = all;
    for (w, rx) in receivers.into_iter().enumerate() {
        let take = rest.len().min(span as usize);
        let (mine, tail) = std::mem::take(&mut rest).split_at_mut(take);
        rest = tail;
        let outbox = (0..threads)
            .map(|o| (o != w).then(|| (senders[o].clone(), Vec::with_capacity(SEND_BATCH))))
            .collect();
        parts.push((mine, w as AccountIdx * span, outbox, rx));
    }
    drop(senders);
    let parts = std::sync::Mutex::new(parts);
    let new_worker = || {
        let (states, lo, outbox, inbox) = parts.lock().expect("no poison").remove(0);
        FoldWorker {
            states,
            lo,
            span,
            outbox,
            inbox,
            signals: Vec::new(),
            after_as_of: 0,
            json: (src.format == Format::Jsonl).then(|| JsonRecords::new(&src.header)),
            batch: Vec::with_capacity(BATCH),
            looked: Vec::with_capacity(BATCH),
            ready: Vec::with_capacity(BATCH),
            direct: Vec::with_capacity(BATCH),
            direct_prev: Vec::with_capacity(BATCH),
            lean: LeanSink::default(),
            scanner: Default::default(),
            saw_quote: false,
            timestamps: Default::default(),
        }
    };
    par_blocks_input(
        input,
        threads,
        opts.block_size,
        cuts,
        new_worker,
        |w: &mut FoldWorker, block, _| {
            let out = match src.format {
                Format::Csv => w.csv_block(ctx, block),
                Format::Jsonl => w.jsonl_block(ctx, block),
            };
            if let (Cuts::Trusting(quoted), true) = (cuts, w.saw_quote) {
                quoted.store(true, Ordering::Relaxed);
            }
            out
        },
        |w: &mut FoldWorker| w.finish(ctx),
        &|done| (opts.progress)(&label, done, src.size),
    )
    .map_err(|e| IngestError::Io {
        path: src.name.clone(),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csv::for_each_record;
    use crate::load::load_accounts;
    use abm_core::Config;
    use std::path::Path;

    const LONG: &str = "ACCOUNT-WITH-A-VERY-LONG-IDENTIFIER-0001";

    /// A1..A6 and, with `long`, one long id that keeps the index hashed (without it, the ids
    /// are dense).
    fn accounts_file(dir: &Path, long: bool) -> std::path::PathBuf {
        accounts_file_in(dir, long, &[1, 2, 3, 4, 5, 6])
    }

    /// Accounts `A{i}` for `order` (in file order), and the long one with `long`.
    fn accounts_file_in(dir: &Path, long: bool, order: &[u32]) -> std::path::PathBuf {
        let p = dir.join("accounts.csv");
        let mut s = String::from("account_id,name,icp_tier\n");
        for i in order {
            s.push_str(&format!("A{i},Company {i},B\n"));
        }
        if long {
            s.push_str(&format!("{LONG},Long,A\n"));
        }
        std::fs::write(&p, s).unwrap();
        p
    }

    /// Rows that each exercise one branch of the plain-row fast path or its fallback.
    fn engagement_text() -> String {
        let mut s = String::from("account_id,occurred_at,type,contact_id\n");
        let rows = [
            "A1,2026-10-20T10:00:00,demo,c1",
            "A1,2026-10-21T10:00:00Z,meeting,c2",
            "A1,2026-10-22,email_open,",
            " A2 , 2026-10-20T10:00:00 , website_visit , c9 ",
            "\"A2\",2026-10-25T08:00:00,\"content_download\",\"c,8\"",
            "A2,2026-10-26T08:00:00,webinar_attended,\"multi",
            "line contact\"",
            "",
            "A3,2026-12-01T00:00:00,demo,c1",
            "A3,2026-01-01T00:00:00,demo,c1",
            "A3,2026-06-01T00:00:00,website_visit,c1",
            "A3,2026-10-30T00:00:00,champion_left,c1",
            "A3,2025-10-30T00:00:00,no_priority,",
            "A4,2026-10-20T10:00:00,demo",
            "A4,2026-10-20T10:00:00,demo,c1,extra",
            "A4,2026-13-20T10:00:00,demo,c1",
            "A4,2026-10-20T10:00:00,dance,c1",
            ",2026-10-20T10:00:00,demo,c1",
            "ZZ,2026-10-20T10:00:00,demo,c1",
            &format!("{LONG},2026-10-28T10:00:00,budget_expressed,c5"),
            "NOT-A-KNOWN-ACCOUNT-WITH-A-VERY-LONG-IDENTIFIER,2026-10-28T10:00:00,demo,c5",
            "A5,2026-10-28T10:00:00+02:00,email_reply,c1\r",
            "\r",
            "A6,2026-10-29T10:00:00.5,ad_click,c3",
        ];
        for r in rows {
            s.push_str(r);
            s.push('\n');
        }
        s.push_str("A6,2026-10-30T10:00:00,ad_click,c4"); // no final newline
        s
    }

    /// Rejections as (line, column).
    fn bad_rows(rejects: &Rejects) -> Vec<(u64, String)> {
        rejects
            .rows
            .iter()
            .map(|r| (r.line, r.column.clone()))
            .collect()
    }

    /// States, signals, events after as_of, rejections as (line, column).
    type Folded = (Vec<EngagementState>, Vec<Signal>, u64, Vec<(u64, String)>);

    /// The reference: every record through the generic scanner and the detailed `observe`.
    fn reference(src: &Source, text: &[u8], accounts: &Accounts, rules: &Rules) -> Folded {
        let cols = EventCols::of(&src.projection);
        let mut states = vec![EngagementState::default(); accounts.table.len()];
        let (mut signals, mut after, mut bad) = (Vec::new(), 0, Vec::new());
        let body = &text[src.data_offset as usize..];
        for_each_record(body, src.first_line, |rec| {
            let ev = fields_ok(src, rec)
                .and_then(|_| parse_event(src, rec, &cols, rules, &accounts.index));
            match ev {
                Ok(None) => {}
                Ok(Some(e)) => {
                    let st = &mut states[e.account as usize];
                    match st.observe(rules, e.code, e.at, e.contact, Instant::MIN) {
                        Verdict::Signal { .. } => signals.push(Signal {
                            account: e.account,
                            code: e.code,
                            at: e.at,
                        }),
                        Verdict::AfterAsOf => after += 1,
                        _ => {}
                    }
                }
                Err(r) => bad.push((r.line, r.column)),
            }
        });
        signals.sort_by_key(|s| (s.account, s.at, s.code));
        (states, signals, after, bad)
    }

    /// The separator masks cut lines as a plain split would, across 64-byte windows, long and
    /// short lines, quotes, CRs, blank lines and a missing final newline.
    #[test]
    fn separator_masks_split_lines_like_a_plain_split() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        for ncols in [1usize, 3, 4, 7] {
            let mut text = Vec::new();
            for _ in 0..3000 {
                let fields = 1 + rnd(ncols as u64 + 2) as usize;
                for f in 0..fields {
                    if f > 0 {
                        text.push(b',');
                    }
                    let long = rnd(10) == 0;
                    for _ in 0..rnd(if long { 150 } else { 14 }) {
                        const BYTES: &[u8] = b"abcXYZ019 -_:\"\r";
                        text.push(BYTES[rnd(BYTES.len() as u64) as usize]);
                    }
                }
                text.push(b'\n');
            }
            text.truncate(text.len() - rnd(2) as usize);
            let mut bounds = [(0u32, 0u32); MAX_FAST_COLS];
            let mut pos = 0;
            let mut seps = Seps::at(&text, 0);
            while pos < text.len() {
                let end = memchr::memchr(b'\n', &text[pos..]).map_or(text.len(), |i| pos + i);
                let next = (end + 1).min(text.len()).max(end);
                let line = &text[pos..end];
                let content = line.strip_suffix(b"\r").unwrap_or(line);
                let parts: Vec<&[u8]> = content.split(|&b| b == b',').collect();
                let blank = content.is_empty();
                let plain = !line.contains(&b'"') && parts.len() == ncols;
                match seps.plain_fields(&text, pos, ncols, &mut bounds) {
                    Some((e, n)) => {
                        assert_eq!((e, n), (end, next), "at {pos}");
                        if !blank || plain {
                            assert!(plain, "at {pos}: {:?}", String::from_utf8_lossy(line));
                            for (k, want) in parts.iter().enumerate() {
                                let (a, b) = bounds[k];
                                assert_eq!(&text[a as usize..b as usize], *want, "at {pos}");
                            }
                        }
                    }
                    None => {
                        assert!(
                            !plain && !blank,
                            "at {pos}: {:?}",
                            String::from_utf8_lossy(line)
                        );
                        seps = Seps::at(&text, next);
                    }
                }
                pos = next;
            }
        }
    }

    /// A NUL byte in any field (the contact too, which the fast path never checks) rejects
    /// its row naming the column; its block's other rows are folded as usual.
    #[test]
    fn nul_bytes_reject_their_rows_in_the_fold() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::default();
        let rules = Rules::compile(&cfg, Instant::parse("2026-11-01T00:00:00Z").unwrap()).unwrap();
        let acc_path = accounts_file(dir.path(), false);
        let eng = dir.path().join("engagement.csv");
        std::fs::write(
            &eng,
            "account_id,occurred_at,type,contact_id,detail\n\
             A1,2026-10-20T10:00:00,demo,c1,\n\
             A1,2026-10-21T10:00:00,demo,c\x002,\n\
             A2,2026-10-21T10:00:00,demo,c3,x\x00\n\
             A2,2026-10-22T10:00:00,meeting,c4,\n",
        )
        .unwrap();
        let opts = LoadOptions::new(&cfg);
        let mut rejects = Rejects::default();
        let accounts = load_accounts(
            &crate::source::InputSource::File(acc_path.to_path_buf()),
            &opts,
            &mut rejects,
        )
        .unwrap();
        let f = fold_engagement(
            &crate::source::InputSource::File(eng.to_path_buf()),
            &accounts,
            &rules,
            None,
            true,
            &opts,
            &mut rejects,
        )
        .unwrap();
        assert_eq!(f.rows, 4);
        assert_eq!(
            bad_rows(&rejects),
            [(3, "contact_id".to_string()), (4, "detail".to_string())]
        );
        let idx = |id: &str| accounts.index.get(id.as_bytes()).unwrap() as usize;
        assert_eq!(f.states[idx("A1")].counted, 1);
        assert_eq!(f.states[idx("A2")].counted, 1);
    }

    #[test]
    fn fast_jsonl_fold_matches_serde_json_row_for_row() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::default();
        let rules = Rules::compile(&cfg, Instant::parse("2026-11-01T00:00:00Z").unwrap()).unwrap();
        let acc_path = accounts_file(dir.path(), true);
        let eng = dir.path().join("engagement.jsonl");
        let text = [
            r#"{"account_id":"A1","occurred_at":"2026-10-20T10:00:00","type":"demo","contact_id":"c1"}"#,
            r#"{"account_id":"A1","occurred_at":"2026-10-21T10:00:00Z","type":"meeting","contact_id":null}"#,
            r#"{ "type": "email_open", "account_id": "A2", "occurred_at": "2026-10-22" }"#,
            r#"{"account_id":"A2","occurred_at":"2026-10-25T08:00:00","type":"content_download"}"#,
            r#"{"account_id":"A3","occurred_at":"2026-12-01T00:00:00","type":"demo","contact_id":7}"#,
            r#"{"account_id":"A3","occurred_at":"2026-10-30T00:00:00","type":"champion_left"}"#,
            r#"{"account_id":"A4","occurred_at":"2026-13-20T10:00:00","type":"demo"}"#,
            r#"{"account_id":"A4","occurred_at":"2026-10-20T10:00:00","type":"dance"}"#,
            r#"{"account_id":"ZZ","occurred_at":"2026-10-20T10:00:00","type":"demo"}"#,
            r#"{"account_id":"A5","occurred_at":"2026-10-20T10:00:00","type":"demo""#,
            "",
            r#"{"account_id":"A6","occurred_at":"2026-10-29T10:00:00.5","type":"ad_click","contact_id":"c3","x":{"y":1}}"#,
            r#"{"account_id":"A6","occurred_at":"2026-10-30T10:00:00","type":"ad_click","contact_id":"c4"}"#,
        ]
        .join("\n");
        std::fs::write(&eng, &text).unwrap();
        let mut opts = LoadOptions::new(&cfg);
        opts.threads = 2;
        let mut rejects = Rejects::default();
        let accounts = load_accounts(
            &crate::source::InputSource::File(acc_path.to_path_buf()),
            &opts,
            &mut rejects,
        )
        .unwrap();
        let src = opts.open(&eng, FileKind::Engagement).unwrap();
        // The reference: serde_json for every line, then the detailed `observe`.
        let cols = EventCols::of(&src.projection);
        let mut json = JsonRecords::new(&src.header);
        let mut want = vec![EngagementState::default(); accounts.table.len()];
        let (mut want_bad, mut want_signals) = (Vec::new(), Vec::new());
        for (i, l) in text.split('\n').enumerate() {
            let line = src.first_line + i as u64;
            if l.trim().is_empty() {
                continue;
            }
            let ev = match json.parse(line, l.as_bytes()) {
                Ok(rec) => parse_event(&src, &rec, &cols, &rules, &accounts.index)
                    .map(|e| e.expect("no ignored types here"))
                    .map(|e| (e.account, e.code, e.at, e.contact.to_vec()))
                    .map_err(|r| (r.line, r.column)),
                Err((col, _)) => Err((line, col)),
            };
            match ev {
                Ok((a, code, at, contact)) => {
                    let v = want[a as usize].observe(&rules, code, at, &contact, Instant::MIN);
                    if let Verdict::Signal { .. } = v {
                        want_signals.push(Signal {
                            account: a,
                            code,
                            at,
                        });
                    }
                }
                Err(b) => want_bad.push(b),
            }
        }
        let mut rejects = Rejects::default();
        let f = fold_engagement(
            &crate::source::InputSource::File(eng.to_path_buf()),
            &accounts,
            &rules,
            None,
            true,
            &opts,
            &mut rejects,
        )
        .unwrap();
        let got_bad: Vec<(u64, String)> = rejects
            .rows
            .iter()
            .map(|r| (r.line, r.column.clone()))
            .collect();
        assert_eq!(got_bad, want_bad);
        assert_eq!(want_bad.len(), 4, "{want_bad:?}");
        assert_eq!(f.signals, want_signals);
        assert_eq!(f.after_as_of, 1);
        assert_eq!(f.states.to_vec(), want);
    }

    #[test]
    fn fast_csv_fold_matches_the_generic_path_row_for_row() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::default();
        let rules = Rules::compile(&cfg, Instant::parse("2026-11-01T00:00:00Z").unwrap()).unwrap();
        let eng = dir.path().join("engagement.csv");
        let text = engagement_text();
        std::fs::write(&eng, &text).unwrap();
        // Hashed ids; dense ids in number order (known at once); dense ids in another order.
        let (in_order, shuffled) = (&[1, 2, 3, 4, 5, 6], &[4, 2, 6, 1, 5, 3]);
        for (threads, mmap, long, order) in [
            (1, true, true, in_order),
            (2, true, true, in_order),
            (1, false, true, in_order),
            (1, true, false, in_order),
            (2, false, false, in_order),
            (1, true, false, shuffled),
            (2, true, false, shuffled),
        ] {
            let acc_path = accounts_file_in(dir.path(), long, order);
            // SAFETY-free toggle: the env var only selects mmap vs stream for this process's
            // tests, and both must give the same answer.
            if mmap {
                std::env::remove_var("ABM_NO_MMAP");
            } else {
                std::env::set_var("ABM_NO_MMAP", "1");
            }
            let mut opts = LoadOptions::new(&cfg);
            opts.threads = threads;
            let mut rejects = Rejects::default();
            let accounts = load_accounts(
                &crate::source::InputSource::File(acc_path.to_path_buf()),
                &opts,
                &mut rejects,
            )
            .unwrap();
            assert!(rejects.is_empty());
            assert_eq!(accounts.index.as_dense().is_some(), !long, "index kind");
            let src = opts.open(&eng, FileKind::Engagement).unwrap();
            let (want, want_signals, want_after, want_bad) =
                reference(&src, text.as_bytes(), &accounts, &rules);
            for clocks in [true, false] {
                let mut rejects = Rejects::default();
                let f = fold_engagement(
                    &crate::source::InputSource::File(eng.to_path_buf()),
                    &accounts,
                    &rules,
                    None,
                    clocks,
                    &opts,
                    &mut rejects,
                )
                .unwrap();
                assert_eq!(
                    bad_rows(&rejects),
                    want_bad,
                    "threads {threads} clocks {clocks}"
                );
                assert_eq!(f.signals, want_signals);
                assert_eq!(f.after_as_of, want_after);
                for (i, (g, w)) in f.states.iter().zip(&want).enumerate() {
                    if clocks {
                        assert_eq!(g, w, "account {i}");
                    } else {
                        // The lean fold keeps everything but the inactivity clocks.
                        assert_eq!(g.without_clocks(), w.without_clocks(), "account {i}");
                    }
                }
            }
            // Every kind of row was seen: counted events, a signal, late events, rejections.
            assert!(want.iter().any(|s| s.counted > 0));
            assert_eq!(want_signals.len(), 2);
            assert_eq!(want_after, 1);
            // Without the long account, its event is one more unknown account.
            assert_eq!(want_bad.len(), 7 + !long as usize, "{want_bad:?}");
        }
        std::env::remove_var("ABM_NO_MMAP");
    }

    /// Many small blocks: a quote-free file is cut at line ends on trust; a quoted field whose
    /// line breaks (and event-like lines) span a cut makes the fold start over cut at record
    /// ends, so the lines inside it never count as events. Both match the reference.
    #[test]
    fn trusted_cuts_start_over_at_a_quote() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::default();
        let rules = Rules::compile(&cfg, Instant::parse("2026-11-01T00:00:00Z").unwrap()).unwrap();
        let types = [
            "demo",
            "meeting",
            "email_open",
            "website_visit",
            "champion_left",
        ];
        let line = |i: usize| {
            format!(
                "A{},2026-10-{:02}T10:00:00,{},c{}\n",
                i % 6 + 1,
                1 + i % 28,
                types[i % types.len()],
                // Two contacts per account: fewer than the rules need, so which ones a
                // state holds does not depend on the order events reach it.
                (i / 6) % 2
            )
        };
        let plain: String = std::iter::once("account_id,occurred_at,type,contact_id\n".into())
            .chain((0..3000).map(line))
            .collect();
        // The same, with a quoted contact near the end holding 60 event-like lines (longer
        // than a block) and another one early.
        let mut quoted = plain.clone();
        for at in [quoted.len() * 9 / 10, quoted.len() / 20] {
            let at = at + quoted[at..].find('\n').unwrap() + 1;
            let inner: String = (0..60).map(|i| line(i).replace("c", "evil")).collect();
            quoted.insert_str(at, &format!("A2,2026-10-30T00:00:00,demo,\"x\n{inner}\"\n"));
        }
        for (name, text) in [("plain", &plain), ("quoted", &quoted)] {
            let eng = dir.path().join(format!("{name}.csv"));
            std::fs::write(&eng, text).unwrap();
            for (threads, long) in [(1, false), (2, false), (2, true)] {
                let mut opts = LoadOptions::new(&cfg);
                opts.threads = threads;
                opts.block_size = 1024;
                let acc_path = accounts_file(dir.path(), long);
                let accounts = load_accounts(
                    &crate::source::InputSource::File(acc_path.to_path_buf()),
                    &opts,
                    &mut Rejects::default(),
                )
                .unwrap();
                let src = opts.open(&eng, FileKind::Engagement).unwrap();
                let want = reference(&src, text.as_bytes(), &accounts, &rules);
                let mut rejects = Rejects::default();
                let f = fold_engagement(
                    &crate::source::InputSource::File(eng.to_path_buf()),
                    &accounts,
                    &rules,
                    None,
                    true,
                    &opts,
                    &mut rejects,
                )
                .unwrap();
                let got = (
                    f.states.to_vec(),
                    f.signals,
                    f.after_as_of,
                    bad_rows(&rejects),
                );
                assert_eq!(got, want, "{name}, threads {threads}");
                assert_eq!(f.rows, 3000 + 2 * (name == "quoted") as u64);
            }
        }
    }
}
