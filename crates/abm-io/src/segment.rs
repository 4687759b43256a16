//! `abm segment`: the stateless bulk pipeline. Load (streaming, both cores) → assess every
//! account (both cores) → write the outputs in `account_id` order, atomically.

use crate::columns::FileKind;
use crate::load::{
    fold_engagement, load_accounts, load_deals, load_triggers, Accounts, ByAccount, LoadOptions,
    Rejects,
};
use crate::output::{self, AssignmentRow, OutFile, Summary};
use crate::outset::{OutputSet, SetKind};
use crate::source::InputSource;
use crate::IngestError;
use abm_core::assess::{self, assess, Facts};
use abm_core::engagement::{Deal, EngagementState, Signal, Trigger};
use abm_core::scoring::Source;
use abm_core::segments::SegmentSet;
use abm_core::summary::{capacity_status, ClusterCounts};
use abm_core::{AccountIdx, Cluster, Instant, Rules, ScoringModel};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant as Clock};

/// Input files; `None` = not given.
#[derive(Debug, Clone, Default)]
pub struct InputPaths {
    pub accounts: Option<PathBuf>,
    pub engagement: Option<PathBuf>,
    /// More engagement files (`--engagement A --engagement B`), each read with its own
    /// mapping (`[columns.files.STEM]`) and folded into the same accounts.
    pub more_engagement: Vec<PathBuf>,
    pub triggers: Option<PathBuf>,
    pub deals: Option<PathBuf>,
}

/// Input files after looking in the directory.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub accounts: PathBuf,
    pub engagement: Option<PathBuf>,
    pub more_engagement: Vec<PathBuf>,
    pub triggers: Option<PathBuf>,
    pub deals: Option<PathBuf>,
}

fn find_in(dir: &Path, kind: FileKind) -> Option<PathBuf> {
    ["csv", "jsonl", "ndjson"]
        .iter()
        .map(|ext| dir.join(format!("{}.{ext}", kind.default_stem())))
        .find(|p| p.is_file())
}

impl InputPaths {
    /// `DIR/accounts.csv` (or `.jsonl`) and whichever of the others exist; explicit paths win.
    pub fn resolve(&self, dir: Option<&Path>) -> Result<Resolved, IngestError> {
        let pick = |explicit: &Option<PathBuf>, kind| {
            explicit
                .clone()
                .or_else(|| dir.and_then(|d| find_in(d, kind)))
        };
        let accounts = pick(&self.accounts, FileKind::Accounts).ok_or_else(|| {
            IngestError::Config(match dir {
                Some(d) if !d.is_dir() => format!("{}: no such directory", d.display()),
                Some(d) => format!(
                    "{}: no accounts.csv or accounts.jsonl (or pass --accounts FILE)",
                    d.display()
                ),
                None => "no accounts file: give a directory or --accounts FILE".into(),
            })
        })?;
        Ok(Resolved {
            accounts,
            engagement: pick(&self.engagement, FileKind::Engagement),
            more_engagement: self.more_engagement.clone(),
            triggers: pick(&self.triggers, FileKind::Triggers),
            deals: pick(&self.deals, FileKind::Deals),
        })
    }
}

/// Input files of an import, where any subset will do (events only, deals only, …).
#[derive(Debug, Clone)]
pub struct SomeInputs {
    pub accounts: Option<PathBuf>,
    pub engagement: Option<PathBuf>,
    pub more_engagement: Vec<PathBuf>,
    pub triggers: Option<PathBuf>,
    pub deals: Option<PathBuf>,
}

impl InputPaths {
    /// [`Self::resolve`] where the accounts file may be absent: at least one file must be
    /// given or found.
    pub fn resolve_some(&self, dir: Option<&Path>) -> Result<SomeInputs, IngestError> {
        if let Some(d) = dir.filter(|d| !d.is_dir()) {
            return Err(IngestError::Config(format!(
                "{}: no such directory",
                d.display()
            )));
        }
        let pick = |explicit: &Option<PathBuf>, kind| {
            explicit
                .clone()
                .or_else(|| dir.and_then(|d| find_in(d, kind)))
        };
        let some = SomeInputs {
            accounts: pick(&self.accounts, FileKind::Accounts),
            engagement: pick(&self.engagement, FileKind::Engagement),
            more_engagement: self.more_engagement.clone(),
            triggers: pick(&self.triggers, FileKind::Triggers),
            deals: pick(&self.deals, FileKind::Deals),
        };
        if some.accounts.is_none()
            && some.engagement.is_none()
            && some.triggers.is_none()
            && some.deals.is_none()
        {
            return Err(IngestError::Config(match dir {
                Some(d) => format!(
                    "{}: no accounts, engagement, triggers or deals file (.csv or .jsonl)",
                    d.display()
                ),
                None => {
                    "no input: give a directory or --accounts/--engagement/--triggers/--deals FILE"
                        .into()
                }
            }));
        }
        Ok(some)
    }
}

/// One stage of a run: how long it took and the memory held at its end.
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    pub elapsed: Duration,
    /// (anonymous resident bytes, peak resident bytes) at the stage's end, where known.
    pub memory: Option<(u64, u64)>,
    /// CPU seconds (user, system) of the whole process at the stage's end.
    pub cpu: (f64, f64),
}

impl Stage {
    /// `name` took from `started` until now.
    pub fn since(name: &str, started: Clock) -> Stage {
        Stage {
            name: name.into(),
            elapsed: started.elapsed(),
            memory: crate::mem::resident(),
            cpu: crate::mem::cpu_seconds(),
        }
    }
}

/// Everything loaded for one `as_of`.
pub struct Loaded {
    pub accounts: Accounts,
    pub states: crate::mem::ZeroedArray<EngagementState>,
    pub signals: ByAccount<Signal>,
    pub triggers: ByAccount<Trigger>,
    pub deals: ByAccount<Deal>,
    /// The product catalog customers' whitespace is measured against.
    pub products: Vec<String>,
    pub rejects: Rejects,
    pub rows_read: BTreeMap<String, u64>,
    pub events_after_as_of: u64,
    pub timings: Vec<Stage>,
}

impl Loaded {
    pub fn facts(&self, a: AccountIdx, floor: Instant) -> Facts<'_> {
        Facts {
            engagement: &self.states[a as usize],
            triggers: self.triggers.of(a),
            deals: self.deals.of(a),
            signals: self.signals.of(a),
            floor,
            products: &self.products,
        }
    }
}

/// The inputs of one load: files or bytes in memory (see [`InputSource`]).
#[derive(Debug, Clone)]
pub struct Inputs {
    pub accounts: InputSource,
    pub engagement: Option<InputSource>,
    pub more_engagement: Vec<InputSource>,
    pub triggers: Option<InputSource>,
    pub deals: Option<InputSource>,
}

impl Resolved {
    /// The files as inputs.
    pub fn inputs(&self) -> Inputs {
        let file = |p: &PathBuf| InputSource::File(p.clone());
        Inputs {
            accounts: file(&self.accounts),
            engagement: self.engagement.as_ref().map(file),
            more_engagement: self.more_engagement.iter().map(file).collect(),
            triggers: self.triggers.as_ref().map(file),
            deals: self.deals.as_ref().map(file),
        }
    }
}

/// Load the input files. Triggers outside the window are dropped early unless `all_triggers`.
pub fn load_all(
    paths: &Resolved,
    rules: &Rules,
    floors: Option<&[Instant]>,
    all_triggers: bool,
    opts: &LoadOptions<'_>,
) -> Result<Loaded, IngestError> {
    load_inputs(&paths.inputs(), rules, floors, all_triggers, opts)
}

/// [`load_all`] over files or bytes in memory.
pub fn load_inputs(
    paths: &Inputs,
    rules: &Rules,
    floors: Option<&[Instant]>,
    all_triggers: bool,
    opts: &LoadOptions<'_>,
) -> Result<Loaded, IngestError> {
    let mut rejects = Rejects::default();
    let mut rows_read = BTreeMap::new();
    let mut timings = Vec::new();
    let t = Clock::now();
    let accounts = load_accounts(&paths.accounts, opts, &mut rejects)?;
    rows_read.insert("accounts".into(), accounts.rows);
    timings.push(Stage::since("load accounts", t));
    let n = accounts.table.len();

    // Triggers and deals load on a thread of their own while the engagement fold keeps the
    // cores busy (they only need the account index); their rejections follow the fold's.
    let t = Clock::now();
    let side_opts = LoadOptions {
        threads: 1,
        progress: &crate::load::no_progress,
        ..*opts
    };
    let accounts_ref = &accounts;
    let (fold, side) = std::thread::scope(|s| {
        let side = s.spawn(|| {
            let mut side_rejects = Rejects::default();
            let mut rows = BTreeMap::new();
            let triggers = match &paths.triggers {
                Some(p) => {
                    let (v, n) = load_triggers(
                        p,
                        accounts_ref,
                        rules,
                        !all_triggers,
                        &side_opts,
                        &mut side_rejects,
                    )?;
                    rows.insert("triggers".to_string(), n);
                    v
                }
                None => Vec::new(),
            };
            let deals = match &paths.deals {
                Some(p) => {
                    let (v, n) = load_deals(p, accounts_ref, &side_opts, &mut side_rejects)?;
                    rows.insert("deals".to_string(), n);
                    v
                }
                None => Vec::new(),
            };
            Ok::<_, IngestError>((triggers, deals, rows, side_rejects))
        });
        let fold = match &paths.engagement {
            // Stateless callers have no prior cluster, so no inactivity rule reads the clocks.
            Some(p) => fold_engagement(
                p,
                accounts_ref,
                rules,
                floors,
                floors.is_some(),
                opts,
                &mut rejects,
            )
            .map(|f| {
                rows_read.insert("engagement".into(), f.rows);
                (f.states, f.signals, f.after_as_of)
            }),
            None => Ok((crate::mem::ZeroedArray::new(n), Vec::new(), 0)),
        };
        // Further engagement files: each folded on its own, then merged account by account
        // (a merge of partial states equals one pass over all the events).
        let fold = paths.more_engagement.iter().fold(fold, |acc, p| {
            let (mut states, mut signals, after) = acc?;
            let f = fold_engagement(
                p,
                accounts_ref,
                rules,
                floors,
                floors.is_some(),
                opts,
                &mut rejects,
            )?;
            *rows_read.entry("engagement".into()).or_insert(0) += f.rows;
            for (a, b) in states.iter_mut().zip(f.states.iter()) {
                a.merge(b, rules);
            }
            signals.extend(f.signals);
            signals.sort_by_key(|s| (s.account, s.at, s.code));
            Ok((states, signals, after + f.after_as_of))
        });
        (fold, side.join().expect("trigger/deal loader panicked"))
    });
    let (states, signals, after) = fold?;
    let (triggers, deals, side_rows, side_rejects) = side?;
    rows_read.extend(side_rows);
    rejects.rows.extend(side_rejects.rows);
    timings.push(Stage::since("fold + triggers, deals", t));
    let products = abm_core::assess::product_catalog(
        &rules.config.customers.products,
        rules.as_of,
        abm_core::assess::deal_products(&deals),
    );
    Ok(Loaded {
        products,
        signals: ByAccount::new(signals, n, |s| s.account),
        triggers: ByAccount::new(triggers, n, |t| t.account),
        deals: ByAccount::new(deals, n, |d| d.account),
        accounts,
        states,
        rejects,
        rows_read,
        events_after_as_of: after,
        timings,
    })
}

/// Account indexes in `account_id` order (bytewise).
pub fn id_order(accounts: &Accounts) -> Vec<AccountIdx> {
    if let Some(order) = accounts.index.as_dense().and_then(|d| d.byte_order()) {
        return order;
    }
    let t = &accounts.table;
    let n = t.len() as AccountIdx;
    let sorted = t.iter().map(|a| a.id()).is_sorted();
    let mut order: Vec<AccountIdx> = (0..n).collect();
    if !sorted {
        order.sort_unstable_by(|&a, &b| t.get(a).id().cmp(t.get(b).id()));
    }
    order
}

/// The computed texts of one output row, in buffers reused from account to account.
#[derive(Default)]
pub struct RowScratch {
    pub icp_score: String,
    pub promotion_triggers: String,
    pub micro_segment: String,
    pub next_action: String,
    pub checkpoint: String,
    pub rationale: String,
    next_actions: assess::NextActionCache,
}

impl RowScratch {
    /// Render one account's row texts (shared by `segment` and the store's runs).
    pub fn fill(
        &mut self,
        rules: &Rules,
        account: &abm_core::AccountRef<'_>,
        a: &abm_core::Assessment,
        cluster: Cluster,
        facts: &Facts<'_>,
        checkpoint: &str,
    ) {
        self.icp_score.clear();
        abm_core::scoring::write_score(&mut self.icp_score, a.score.score);
        self.promotion_triggers.clear();
        assess::write_promotion_triggers(&mut self.promotion_triggers, rules, a);
        self.micro_segment.clear();
        if cluster == Cluster::FuturePipeline {
            assess::write_micro_segment(&mut self.micro_segment, rules, account, a, facts);
        }
        self.next_action.clear();
        self.next_actions
            .write(&mut self.next_action, rules, a, cluster);
        self.checkpoint.clear();
        self.checkpoint.push_str(checkpoint);
        self.rationale.clear();
        // A stateful run: the effective cluster may differ from the entry rules', and the
        // evidence windows restart after a demotion. Both are said.
        assess::write_effective_rationale(&mut self.rationale, rules, a, facts, cluster);
    }
}

struct BlockOut {
    csv: Vec<u8>,
    jsonl: Vec<u8>,
    counts: ClusterCounts,
    conflicts: u64,
    /// The highest score computed from the criteria (NEG_INFINITY: none).
    max_score: f64,
}

/// Which assignment files to write (both by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Formats {
    pub csv: bool,
    pub jsonl: bool,
    /// A last column `segment`: the `[[segments]]` each account is in (`a;b`).
    pub segment_column: bool,
}

impl Default for Formats {
    fn default() -> Self {
        Formats {
            csv: true,
            jsonl: true,
            segment_column: false,
        }
    }
}

impl Formats {
    /// `csv`, `jsonl` or `csv,jsonl`.
    pub fn parse(s: &str) -> Result<Formats, String> {
        let mut f = Formats {
            csv: false,
            jsonl: false,
            segment_column: false,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "csv" => f.csv = true,
                "jsonl" => f.jsonl = true,
                other => return Err(format!("unknown format {other:?} (csv, jsonl)")),
            }
        }
        if !f.csv && !f.jsonl {
            return Err("at least one format: csv, jsonl".into());
        }
        Ok(f)
    }
}

pub struct SegmentReport {
    pub summary: Summary,
    pub timings: Vec<Stage>,
    pub rejects: Rejects,
    pub out_dir: PathBuf,
    /// The loaded inputs (a million accounts, their states, triggers and deals), kept so that
    /// the caller decides when to free them: freeing takes ~10 ms of small frees and unmaps,
    /// which a process about to exit can skip (`std::mem::forget`).
    pub inputs: Box<dyn std::any::Any + Send>,
}

/// Run the stateless segmentation and write the outputs into `out_dir`.
pub fn segment(
    paths: &Resolved,
    rules: &Rules,
    opts: &LoadOptions<'_>,
    out_dir: &Path,
    formats: Formats,
    progress: &(dyn Fn(&str, u64, u64) + Sync),
) -> Result<SegmentReport, IngestError> {
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |e| IngestError::Io { path: p, source: e }
    };
    let inputs: Vec<&Path> = std::iter::once(paths.accounts.as_path())
        .chain(paths.engagement.as_deref())
        .chain(paths.more_engagement.iter().map(PathBuf::as_path))
        .chain(paths.triggers.as_deref())
        .chain(paths.deals.as_deref())
        .collect();
    // The run's outputs: written into a set of their own, made visible all at once at the end.
    let mut set = OutputSet::begin(out_dir, SetKind::Assignments, &inputs, &opts.tuning)
        .map_err(io(out_dir))?;
    let loaded = load_all(paths, rules, None, false, opts)?;
    let mut timings = loaded.timings.clone();
    let t = Clock::now();
    let table = &loaded.accounts.table;
    let model = ScoringModel::new(&rules.config.icp, table.schema());
    let order = id_order(&loaded.accounts);

    let csv_path = out_dir.join("cluster_assignments.csv");
    let jsonl_path = out_dir.join("cluster_assignments.jsonl");
    let mut csv = match formats.csv {
        true => Some(
            set.create_bulk("cluster_assignments.csv")
                .map_err(io(&csv_path))?,
        ),
        false => None,
    };
    let mut jsonl = match formats.jsonl {
        true => Some(
            set.create_bulk("cluster_assignments.jsonl")
                .map_err(io(&jsonl_path))?,
        ),
        false => None,
    };
    if let Some(f) = csv.as_mut() {
        f.write_all(&output::csv_header(formats.segment_column))
            .map_err(io(&csv_path))?;
    }

    // Accounts per output block: enough bytes in the channel that the workers keep rendering
    // while the writer waits on the device (2,048 stalled them).
    const BLOCK: usize = 8192;
    let n_blocks = order.len().div_ceil(BLOCK);
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::sync_channel::<(usize, BlockOut)>(opts.threads * 2);
    // Written blocks come back for reuse: fresh buffers cost page faults and zeroing.
    let (ret_tx, ret_rx) = mpsc::channel::<BlockOut>();
    let ret_rx = std::sync::Mutex::new(ret_rx);
    let mut counts = ClusterCounts::default();
    let mut conflicts = 0u64;
    let mut max_score = f64::NEG_INFINITY;
    let write_result: Result<(), IngestError> = std::thread::scope(|s| {
        for _ in 0..opts.threads.max(1) {
            let tx = tx.clone();
            let (next, order, loaded, model, ret_rx) = (&next, &order, &loaded, &model, &ret_rx);
            s.spawn(move || {
                // Row texts and the next-action cache live as long as the worker.
                let mut text = RowScratch::default();
                let mut segments = formats.segment_column.then(|| {
                    SegmentSet::new(&rules.config.segments, loaded.accounts.table.schema())
                });
                let mut label = String::new();
                loop {
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    if b >= n_blocks {
                        break;
                    }
                    let recycled = ret_rx.lock().expect("no poison").try_recv().ok();
                    let mut out = match recycled {
                        Some(mut o) => {
                            o.csv.clear();
                            o.jsonl.clear();
                            o.counts = ClusterCounts::default();
                            o.conflicts = 0;
                            o.max_score = f64::NEG_INFINITY;
                            o
                        }
                        None => BlockOut {
                            csv: Vec::with_capacity(BLOCK * 400),
                            jsonl: Vec::with_capacity(BLOCK * 600),
                            counts: ClusterCounts::default(),
                            conflicts: 0,
                            max_score: f64::NEG_INFINITY,
                        },
                    };
                    for &idx in &order[b * BLOCK..((b + 1) * BLOCK).min(order.len())] {
                        let account = loaded.accounts.table.get(idx);
                        let facts = loaded.facts(idx, Instant::MIN);
                        let a = assess(rules, model, &account, &facts, false);
                        let cluster = a.cluster;
                        out.counts.add(cluster);
                        if a.score.score_source == Source::Computed {
                            out.max_score = out.max_score.max(a.score.score);
                        }
                        let checkpoint = if a.blocking_conflicts(rules, cluster).next().is_none() {
                            ""
                        } else {
                            out.conflicts += 1;
                            "conflict"
                        };
                        text.fill(rules, &account, &a, cluster, &facts, checkpoint);
                        let row = AssignmentRow {
                            account_id: account.id(),
                            name: account.name(),
                            icp_score: &text.icp_score,
                            tier: a.score.tier.as_str(),
                            engagement_level: a.level.as_str(),
                            has_triggers: a.has_triggers(),
                            cluster: cluster.as_str(),
                            previous_cluster: "",
                            movement: "",
                            promotion_triggers: &text.promotion_triggers,
                            program_type: a.program(rules, cluster),
                            micro_segment: &text.micro_segment,
                            next_action: &text.next_action,
                            checkpoint: &text.checkpoint,
                            rationale: &text.rationale,
                            segment: match segments.as_mut() {
                                Some(set) => {
                                    set.label_into(&account, &mut label);
                                    Some(&label)
                                }
                                None => None,
                            },
                        };
                        match (formats.csv, formats.jsonl) {
                            (true, true) => row.write_both(&mut out.csv, &mut out.jsonl),
                            (true, false) => row.write_csv(&mut out.csv),
                            (false, _) => row.write_jsonl(&mut out.jsonl),
                        }
                    }
                    if tx.send((b, out)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut pending: HashMap<usize, BlockOut> = HashMap::new();
        let mut want = 0;
        for (b, out) in rx {
            pending.insert(b, out);
            while let Some(out) = pending.remove(&want) {
                if let Some(f) = csv.as_mut() {
                    f.write_all(&out.csv).map_err(io(&csv_path))?;
                }
                if let Some(f) = jsonl.as_mut() {
                    f.write_all(&out.jsonl).map_err(io(&jsonl_path))?;
                }
                counts.merge(&out.counts);
                conflicts += out.conflicts;
                max_score = max_score.max(out.max_score);
                let _ = ret_tx.send(out);
                want += 1;
                progress(
                    "assessing accounts",
                    (want * BLOCK).min(order.len()) as u64,
                    order.len() as u64,
                );
            }
        }
        Ok(())
    });
    write_result?;
    timings.push(Stage::since("assess + write", t));

    let capacity = capacity_status(&counts, &rules.config.capacity);
    let mut checkpoints = BTreeMap::new();
    checkpoints.insert(
        "capacity".to_string(),
        (capacity.active_focus == abm_core::summary::CapacityLevel::Over) as u64,
    );
    checkpoints.insert("conflict".to_string(), conflicts);
    let summary = Summary {
        as_of: rules.as_of.to_string(),
        config_hash: rules.config_hash().to_string(),
        accounts: counts.total(),
        cluster_icp_count: counts.cluster_icp,
        future_pipeline_count: counts.future_pipeline,
        active_focus_count: counts.active_focus,
        monitor_only_count: counts.monitor_only,
        customer_count: counts.customer,
        capacity,
        checkpoints,
        rejected_rows: loaded.rejects.len() as u64,
        rows_read: loaded.rows_read.clone(),
        events_after_as_of: loaded.events_after_as_of,
        criteria_without_data: model.without_data(),
        notes: abm_core::summary::outcome_notes(
            &counts,
            max_score.is_finite().then_some(max_score),
            &model.without_data(),
        ),
    };
    let t = Clock::now();
    // Every file of the set is complete before any becomes visible.
    let mut files: Vec<OutFile> = csv.into_iter().chain(jsonl).collect();
    let p = out_dir.join("rejected_rows.csv");
    let mut f = set.create("rejected_rows.csv").map_err(io(&p))?;
    output::write_rejected_to(&mut f, &loaded.rejects.rows).map_err(io(&p))?;
    files.push(f);
    let p = out_dir.join("cluster_summary.json");
    let mut f = set.create("cluster_summary.json").map_err(io(&p))?;
    output::write_summary_to(&mut f, &summary).map_err(io(&p))?;
    files.push(f);
    set.commit(files)
        .map_err(|(path, source)| IngestError::Io {
            path: path.display().to_string(),
            source,
        })?;
    timings.push(Stage::since("commit outputs", t));
    let mut loaded = loaded;
    let rejects = std::mem::take(&mut loaded.rejects);
    Ok(SegmentReport {
        summary,
        timings,
        rejects,
        out_dir: out_dir.to_path_buf(),
        inputs: Box::new((loaded, order)),
    })
}
