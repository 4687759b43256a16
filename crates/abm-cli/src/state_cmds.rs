//! The stateful commands (docs/rules.md, movement): `import`, `run`, `review`, `summary`, `movements`,
//! `history`, `export`. Thin: parse, open the store, call `abm-store`, print.

use crate::{load_config, now, parse_as_of, InputArgs};
use abm_core::{Instant, Rules};
use abm_io::load::LoadOptions;
use abm_io::output::{self, AssignmentRow, Summary};
use abm_io::outset::{OutputSet, SetKind};
use abm_store::query::{CheckpointView, MovementView};
use abm_store::{ImportInputs, RunOptions, RunOutcome, Store, StoreError, DEFAULT_DATABASE};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Args, Clone)]
pub struct DbArgs {
    /// Database: a SQLite file path, or postgres://user@host/db for PostgreSQL.
    #[arg(long, env = "ABM_DATABASE_URL", default_value = DEFAULT_DATABASE, value_name = "URL")]
    database: String,
    /// How long to wait for another abm process writing to the same database, in seconds.
    #[arg(
        long,
        env = "ABM_LOCK_TIMEOUT",
        default_value_t = 600,
        value_name = "SECS"
    )]
    lock_timeout: u64,
}

#[derive(Subcommand)]
pub enum StateCommand {
    /// Import a directory of inputs into the database: accounts upserted, events and triggers
    /// appended (re-importing the same file adds nothing), deals upserted.
    Import {
        /// Directory holding accounts.csv and optionally engagement/triggers/deals.
        dir: Option<PathBuf>,
        #[command(flatten)]
        input: InputArgs,
        /// Where to write the rejected rows (default: ./rejected_rows.csv).
        #[arg(long, value_name = "FILE", default_value = "rejected_rows.csv")]
        rejected: PathBuf,
        /// Print the import report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// What waits in the database: events, triggers and deals imported for accounts that are
    /// not imported yet (they count from the import that brings their account).
    Status {
        /// Show at most this many waited-for account ids.
        #[arg(long, default_value_t = 20, value_name = "N")]
        limit: usize,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Evaluate every stored account against its previous effective cluster and record the run:
    /// snapshot, movements, review checkpoints. One transaction.
    Run {
        /// Evaluate as of this instant (RFC 3339 or YYYY-MM-DD; default: now).
        #[arg(long, value_parser = parse_as_of)]
        as_of: Option<Instant>,
        /// Worker threads (default: all cores).
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
        /// Print the run report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// The human review queue: list, approve, reject.
    #[command(subcommand)]
    Review(ReviewCommand),
    /// Counts of the latest run, capacity and the review queue.
    Summary {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Promotions and demotions, oldest first.
    Movements {
        /// Only movements as of this instant or later.
        #[arg(long, value_parser = parse_as_of)]
        since: Option<Instant>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Every snapshot, movement, checkpoint and decision of one account, with evidence.
    History {
        account_id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Write the latest run's assignments in the `abm segment` output format.
    Export {
        /// Output directory.
        #[arg(long, default_value = "out")]
        out: PathBuf,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
pub enum ReviewCommand {
    /// Pending checkpoints (all of them with --all).
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Approve a pending checkpoint: a proposed move takes effect as of the run that proposed it.
    Approve {
        id: i64,
        #[command(flatten)]
        decision: DecisionArgs,
    },
    /// Reject a pending checkpoint: the account keeps its cluster; the same evidence will not
    /// re-open it.
    Reject {
        id: i64,
        #[command(flatten)]
        decision: DecisionArgs,
    },
}

#[derive(Args)]
pub struct DecisionArgs {
    #[arg(long)]
    comment: Option<String>,
    /// Reviewer name (default: $USER).
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    db: DbArgs,
}

fn open_with(db: &DbArgs, create: bool) -> Result<Store> {
    let timeout = std::time::Duration::from_secs(db.lock_timeout);
    Store::open_with(&db.database, timeout, create)
        .with_context(|| format!("database {}", abm_store::redact(&db.database)))
}

fn open(db: &DbArgs) -> Result<Store> {
    open_with(db, true)
}

/// For the commands that only read or review: no new empty database by mistake.
/// `abm whatif --config-new` on the database.
pub fn preview(
    db: &DbArgs,
    old_cfg: &abm_core::Config,
    new_cfg: &abm_core::Config,
    as_of: Option<Instant>,
    threads: Option<usize>,
    quiet: bool,
) -> Result<abm_core::whatif::WhatIf> {
    let mut store = open_existing(db)?;
    let as_of = match as_of {
        Some(t) => t,
        None => {
            let latest = store.summary()?;
            Instant::parse(&latest.as_of).map_err(|e| anyhow::anyhow!("{e}"))?
        }
    };
    let old = Rules::compile(old_cfg, as_of)?;
    let new = Rules::compile(new_cfg, as_of)?;
    let pb = crate::progress::Bars::new(quiet);
    let log = |m: &str| {
        if !quiet {
            eprintln!("abm: {m}");
        }
    };
    let opts = RunOptions {
        as_of,
        threads: threads
            .unwrap_or_else(abm_io::chunk::default_threads)
            .max(1),
        log: &log,
        progress: &|l, d, t| pb.update(l, d, t),
    };
    let w = store.preview(&old, &new, &opts)?;
    pb.finish();
    Ok(w)
}

fn open_existing(db: &DbArgs) -> Result<Store> {
    open_with(db, false)
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    // Rendered first: a closed pipe is then an `io::Error` (success), not a serde error.
    let mut text = serde_json::to_vec_pretty(v)?;
    text.push(b'\n');
    std::io::stdout().lock().write_all(&text)?;
    Ok(())
}

pub fn run(cmd: StateCommand, config: Option<&Path>, quiet: bool) -> Result<()> {
    let log = |m: &str| {
        if !quiet {
            eprintln!("abm: {m}");
        }
    };
    match cmd {
        StateCommand::Import {
            dir,
            input,
            rejected,
            json,
            db,
        } => {
            let config = load_config(config)?;
            let pb = crate::progress::Bars::new(quiet);
            let mut opts = LoadOptions {
                preset: input.preset,
                strict: input.strict,
                progress: &|l, d, t| pb.update(l, d, t),
                ..LoadOptions::new(&config)
            };
            if let Some(n) = input.threads {
                opts.threads = n.max(1);
            }
            let paths = input.paths().resolve_some(dir.as_deref())?;
            if let Some(a) = &paths.accounts {
                crate::check_fields(&config, a, &opts, input.allow_missing_fields)?;
            }
            // Neither an input file nor the SQLite database may be overwritten.
            let mut protected: Vec<&Path> = [
                &paths.accounts,
                &paths.engagement,
                &paths.triggers,
                &paths.deals,
            ]
            .into_iter()
            .flatten()
            .chain(&paths.more_engagement)
            .map(PathBuf::as_path)
            .collect();
            let location = abm_store::Location::parse(&db.database);
            if let abm_store::Location::Sqlite(p) = &location {
                protected.push(p);
            }
            crate::refuse_inputs_as_outputs(std::slice::from_ref(&rejected), &protected)?;
            let inputs = ImportInputs {
                accounts: paths.accounts,
                engagement: paths.engagement,
                more_engagement: paths.more_engagement,
                triggers: paths.triggers,
                deals: paths.deals,
            };
            let mut store = open(&db)?;
            // The rejected rows are written before the commit: if they cannot be, nothing is
            // imported (issue 11 #4), rather than committed rows with their rejects lost.
            let rep = store.import_with(&inputs, &opts, &mut |rejects| {
                output::write_rejected(&rejected, &rejects.rows, &[]).map_err(|source| {
                    StoreError::BeforeCommit {
                        what: format!("cannot write the rejected rows to {}", rejected.display()),
                        source,
                    }
                })
            })?;
            pb.finish();
            if json {
                return print_json(&rep);
            }
            outln!(
                "Imported into {} (import {}):",
                store.location().display(),
                rep.import_id
            )?;
            outln!(
                "  accounts  {:>10} read {:>10} new or changed",
                rep.accounts_read,
                rep.accounts_changed
            )?;
            outln!(
                "  events    {:>10} read {:>10} new",
                rep.events_read,
                rep.events_added
            )?;
            outln!(
                "  triggers  {:>10} read {:>10} new",
                rep.triggers_read,
                rep.triggers_added
            )?;
            outln!(
                "  deals     {:>10} read {:>10} new or changed",
                rep.deals_read,
                rep.deals_changed
            )?;
            if rep.waiting_added + rep.waiting_resolved > 0 {
                outln!(
                    "  waiting   {:>10} new rows for accounts not imported yet, {} now in (see `abm status`)",
                    rep.waiting_added,
                    rep.waiting_resolved
                )?;
            }
            outln!(
                "  rejected rows: {} (see {})",
                rep.rejected,
                rejected.display()
            )?;
            for r in rep.rejects.rows.iter().take(5) {
                outln!("    {r}")?;
            }
            if !rep.changed_anything() {
                outln!("  nothing new: the database already held all of it")?;
            }
        }
        StateCommand::Status { limit, json, db } => {
            let mut store = open_existing(&db)?;
            let w = store.waiting(limit)?;
            if json {
                return print_json(&w);
            }
            let total = w.events + w.triggers + w.deals;
            outln!(
                "Waiting in {} for accounts not imported yet: {} events, {} triggers, {} deals ({})",
                store.location().display(),
                w.events,
                w.triggers,
                w.deals,
                crate::count(w.distinct_accounts, "account")
            )?;
            if total == 0 {
                outln!("  nothing waits: every stored row has its account")?;
            }
            for (id, n) in &w.accounts {
                outln!("  {id}: {}", crate::count(*n, "row"))?;
            }
            if w.distinct_accounts > w.accounts.len() as u64 {
                outln!(
                    "  … and {} more (--limit N)",
                    w.distinct_accounts - w.accounts.len() as u64
                )?;
            }
        }
        StateCommand::Run {
            as_of,
            threads,
            json,
            db,
        } => {
            let config = load_config(config)?;
            let rules = Rules::compile(&config, as_of.unwrap_or_else(now))?;
            let pb = crate::progress::Bars::new(quiet);
            let mut store = open_existing(&db)?;
            let opts = RunOptions {
                as_of: rules.as_of,
                threads: threads
                    .unwrap_or_else(abm_io::chunk::default_threads)
                    .max(1),
                log: &log,
                progress: &|l, d, t| pb.update(l, d, t),
            };
            let outcome = store.run(&rules, &opts)?;
            pb.finish();
            match outcome {
                RunOutcome::Unchanged { run, as_of } => {
                    if json {
                        print_json(
                            &serde_json::json!({"unchanged": true, "run": run, "as_of": as_of}),
                        )?;
                    } else {
                        outln!(
                            "Nothing changed since run {run} (same as_of {as_of}, data, config and review decisions): no new snapshot."
                        )?;
                    }
                }
                RunOutcome::Done(r) => {
                    if json {
                        print_json(&r)?;
                    } else {
                        let cap = &config.capacity;
                        outln!(
                            "Run {} as of {} (config {})",
                            r.run_id,
                            r.as_of,
                            r.config_hash
                        )?;
                        let row = |label: &str, n: u64, range: Option<&abm_core::config::CapacityRange>| {
                            let range = range
                                .map(|r| format!("(recommended {}–{})", r.min, r.max))
                                .unwrap_or_default();
                            outln!("  {label:<16} {n:>9}  {range}")
                        };
                        row("Cluster ICP", r.counts.cluster_icp, Some(&cap.cluster_icp))?;
                        row(
                            "Future Pipeline",
                            r.counts.future_pipeline,
                            Some(&cap.future_pipeline),
                        )?;
                        row(
                            "Active Focus",
                            r.counts.active_focus,
                            Some(&cap.active_focus),
                        )?;
                        row("Monitor Only", r.counts.monitor_only, None)?;
                        outln!("  {:<16} {:>9}", "accounts", r.accounts)?;
                        for w in &r.capacity.warnings {
                            outln!("  warning: {w}")?;
                        }
                        outln!(
                            "  movements: {} promotions, {} demotions; proposals opened: {}",
                            r.promotions,
                            r.demotions,
                            r.proposals_opened
                        )?;
                        outln!(
                            "  review queue: {} opened, {} closed (see `abm review list`)",
                            r.checkpoints_opened,
                            r.checkpoints_closed
                        )?;
                        if r.events_unknown_type > 0 {
                            outln!(
                                "  warning: {} stored events have a type the config does not know (ignored)",
                                r.events_unknown_type
                            )?;
                        }
                    }
                }
            }
        }
        StateCommand::Review(rc) => review(rc)?,
        StateCommand::Summary { json, db } => {
            let mut store = open_existing(&db)?;
            let s = store.summary()?;
            if json {
                return print_json(&s);
            }
            outln!(
                "Latest run {} as of {} (config {}, started {})",
                s.run,
                s.as_of,
                s.config_hash,
                s.started_at
            )?;
            for (label, n) in [
                ("Cluster ICP", s.cluster_icp_count),
                ("Future Pipeline", s.future_pipeline_count),
                ("Active Focus", s.active_focus_count),
                ("Monitor Only", s.monitor_only_count),
                ("accounts", s.accounts),
            ] {
                outln!("  {label:<16} {n:>9}")?;
            }
            if let Some(st) = s.capacity.get("active_focus").and_then(|v| v.as_str()) {
                let max = s
                    .capacity
                    .get("active_focus_max")
                    .cloned()
                    .unwrap_or_default();
                outln!("  capacity: Active Focus {st} (max {max})")?;
            }
            if let Some(ws) = s.capacity.get("warnings").and_then(|v| v.as_array()) {
                for w in ws {
                    outln!("  warning: {}", w.as_str().unwrap_or_default())?;
                }
            }
            outln!(
                "  this run: {} promotions, {} demotions, {} proposals opened, {} checkpoints opened, {} closed",
                s.promotions, s.demotions, s.proposals_opened, s.checkpoints_opened, s.checkpoints_closed
            )?;
            let pending: i64 = s.pending.values().sum();
            out!("  review queue: {pending} pending")?;
            for (k, n) in &s.pending {
                out!(", {k} {n}")?;
            }
            outln!()?;
            if s.decisions_since_run > 0 {
                outln!(
                    "  {} review decision(s) since this run: `abm run` to refresh the assignments",
                    s.decisions_since_run
                )?;
            }
            outln!(
                "  stored: {} accounts, {} events, {} triggers, {} deals; {} runs, {} imports, {} rejected rows",
                s.stored.get("accounts").unwrap_or(&0),
                s.stored.get("events").unwrap_or(&0),
                s.stored.get("triggers").unwrap_or(&0),
                s.stored.get("deals").unwrap_or(&0),
                s.runs,
                s.imports,
                s.rejected_rows
            )?;
        }
        StateCommand::Movements { since, json, db } => {
            let mut store = open_existing(&db)?;
            let ms = store.movements(since)?;
            if json {
                return print_json(&ms);
            }
            if ms.is_empty() {
                outln!(
                    "No movements{}.",
                    since.map(|s| format!(" since {s}")).unwrap_or_default()
                )?;
            }
            for m in &ms {
                print_movement(m)?;
            }
        }
        StateCommand::History {
            account_id,
            json,
            db,
        } => {
            let mut store = open_existing(&db)?;
            let h = store.history(&account_id)?;
            if json {
                return print_json(&h);
            }
            outln!("{} — {}", h.account_id, h.name)?;
            match &h.state {
                Some(s) => outln!(
                    "  effective cluster: {} since {}{}",
                    s.cluster,
                    s.entered_at,
                    s.floor
                        .as_ref()
                        .map(|f| format!(" (last demotion {f})"))
                        .unwrap_or_default()
                )?,
                None => outln!("  not evaluated yet (no run since it was imported)")?,
            }
            outln!("\nSnapshots ({}):", h.snapshots.len())?;
            for s in &h.snapshots {
                outln!(
                    "  run {} as of {}: {} (candidate {}, previous {}), movement {}, tier {} score {}, engagement {}{}",
                    s.run,
                    s.as_of,
                    s.cluster,
                    s.candidate,
                    s.previous.as_deref().unwrap_or("-"),
                    s.movement,
                    s.tier,
                    s.icp_score,
                    s.engagement_level,
                    if s.checkpoint.is_empty() { String::new() } else { format!(", checkpoint {}", s.checkpoint) }
                )?;
                outln!("    rule: {}", s.rule)?;
                print_evidence("    ", &s.evidence)?;
            }
            outln!("\nMovements ({}):", h.movements.len())?;
            for m in &h.movements {
                print_movement(m)?;
            }
            outln!("\nCheckpoints ({}):", h.checkpoints.len())?;
            for c in &h.checkpoints {
                print_checkpoint(c)?;
            }
            outln!("\nDecisions ({}):", h.decisions.len())?;
            for d in &h.decisions {
                outln!(
                    "  checkpoint {}: {} by {} at {}{}",
                    d.checkpoint,
                    d.action,
                    d.actor,
                    d.decided_at,
                    d.comment
                        .as_ref()
                        .map(|c| format!(" — {c}"))
                        .unwrap_or_default()
                )?;
            }
        }
        StateCommand::Export { out, db } => export(&out, &db)?,
    }
    Ok(())
}

fn print_evidence(indent: &str, ev: &serde_json::Value) -> Result<()> {
    if let Some(items) = ev.as_array() {
        for e in items {
            let at = e
                .get("at")
                .and_then(|v| v.as_str())
                .map(|a| format!(" @ {a}"))
                .unwrap_or_default();
            outln!(
                "{indent}- {}: {}{at}",
                e.get("kind").and_then(|v| v.as_str()).unwrap_or(""),
                e.get("detail").and_then(|v| v.as_str()).unwrap_or("")
            )?;
        }
    }
    Ok(())
}

fn print_movement(m: &MovementView) -> Result<()> {
    outln!(
        "  {} {:<12} {} → {} ({}){}",
        m.as_of,
        m.account_id,
        m.from,
        m.to,
        m.rule,
        m.approved_by
            .as_ref()
            .map(|b| format!(", approved by {b}"))
            .unwrap_or_default()
    )?;
    print_evidence("      ", &m.evidence)
}

fn print_checkpoint(c: &CheckpointView) -> Result<()> {
    outln!(
        "  #{} {} {} {}{} [{}] run {} as of {}, created {}",
        c.id,
        c.kind,
        c.account_id.as_deref().unwrap_or("-"),
        c.from.as_deref().unwrap_or(""),
        c.to.as_deref()
            .map(|t| format!(" → {t}"))
            .unwrap_or_default(),
        c.status,
        c.run,
        c.as_of,
        c.created_at
    )?;
    if let Some(r) = &c.rule {
        outln!("      rule: {r}")?;
    }
    print_evidence("      ", &c.evidence)?;
    if c.status != "pending" {
        outln!(
            "      {} {}{}{}",
            c.status,
            c.decided_at.as_deref().unwrap_or(""),
            c.reviewer
                .as_ref()
                .map(|r| format!(" by {r}"))
                .unwrap_or_default(),
            c.comment
                .as_ref()
                .or(c.reason.as_ref())
                .map(|t| format!(": {t}"))
                .unwrap_or_default()
        )?;
    }
    Ok(())
}

fn reviewer(by: Option<String>) -> String {
    by.or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("USERNAME").ok())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn review(rc: ReviewCommand) -> Result<()> {
    let (id, d, approve) = match rc {
        ReviewCommand::List { all, json, db } => {
            let mut store = open_existing(&db)?;
            let items = store.review_list(all)?;
            if json {
                return print_json(&items);
            }
            if items.is_empty() {
                outln!(
                    "The review queue is empty{}.",
                    if all { "" } else { " (nothing pending)" }
                )?;
            }
            for c in &items {
                print_checkpoint(c)?;
            }
            return Ok(());
        }
        ReviewCommand::Approve { id, decision } => (id, decision, true),
        ReviewCommand::Reject { id, decision } => (id, decision, false),
    };
    let by = reviewer(d.by);
    let mut store = open_existing(&d.db)?;
    let out = if approve {
        store.approve(id, &by, d.comment.as_deref())?
    } else {
        store.reject(id, &by, d.comment.as_deref())?
    };
    if d.json {
        return print_json(&out);
    }
    let c = &out.checkpoint;
    outln!(
        "Checkpoint {} ({}, {}) {} by {}.",
        c.id,
        c.kind,
        c.account_id.as_deref().unwrap_or("-"),
        c.status,
        by
    )?;
    if let Some(cl) = &out.effective_cluster {
        outln!(
            "  {} is now {} (effective as of run {}, {}). Run `abm run` to refresh the assignments.",
            c.account_id.as_deref().unwrap_or("-"),
            cl,
            c.run,
            c.as_of
        )?;
    }
    Ok(())
}

fn export(out: &Path, db: &DbArgs) -> Result<()> {
    let mut store = open_existing(db)?;
    let mut set = OutputSet::begin(out, SetKind::Assignments, &[], output::recycling_enabled())
        .with_context(|| format!("writing into {}", out.display()))?;
    let mut csv = set
        .create_bulk("cluster_assignments.csv")
        .with_context(|| format!("writing {}", out.display()))?;
    let mut jsonl = set
        .create_bulk("cluster_assignments.jsonl")
        .with_context(|| format!("writing {}", out.display()))?;
    csv.write_all(&output::csv_header())?;
    let mut buf_csv = Vec::with_capacity(1 << 16);
    let mut buf_json = Vec::with_capacity(1 << 16);
    let mut io_err: Option<std::io::Error> = None;
    let info = store.export(&mut |r| {
        let row = AssignmentRow {
            account_id: &r.account_id,
            name: &r.name,
            icp_score: &r.icp_score,
            tier: &r.tier,
            engagement_level: &r.engagement_level,
            has_triggers: r.has_triggers,
            cluster: &r.cluster,
            previous_cluster: &r.previous_cluster,
            movement: &r.movement,
            promotion_triggers: &r.promotion_triggers,
            program_type: &r.program_type,
            micro_segment: &r.micro_segment,
            next_action: &r.next_action,
            checkpoint: &r.checkpoint,
            rationale: &r.rationale,
        };
        row.write_csv(&mut buf_csv);
        row.write_jsonl(&mut buf_json);
        if buf_csv.len() > 1 << 20 && io_err.is_none() {
            if let Err(e) = csv
                .write_all(&buf_csv)
                .and_then(|_| jsonl.write_all(&buf_json))
            {
                io_err = Some(e);
            }
            buf_csv.clear();
            buf_json.clear();
        }
        Ok(())
    })?;
    if let Some(e) = io_err {
        return Err(e).context("writing the assignments");
    }
    csv.write_all(&buf_csv)?;
    jsonl.write_all(&buf_json)?;
    let counts = abm_core::summary::ClusterCounts {
        cluster_icp: info.cluster_icp as u64,
        future_pipeline: info.future_pipeline as u64,
        active_focus: info.active_focus as u64,
        monitor_only: info.monitor_only as u64,
    };
    let summary_store = store.summary()?;
    let capacity: abm_core::summary::CapacityStatus = {
        let warnings = summary_store
            .capacity
            .get("warnings")
            .and_then(|w| w.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        abm_core::summary::CapacityStatus {
            active_focus: if summary_store
                .capacity
                .get("active_focus")
                .and_then(|v| v.as_str())
                == Some("over")
            {
                "over"
            } else {
                "ok"
            },
            active_focus_max: summary_store
                .capacity
                .get("active_focus_max")
                .and_then(|v| v.as_u64())
                .unwrap_or(0),
            warnings,
        }
    };
    let mut checkpoints: BTreeMap<String, u64> = BTreeMap::new();
    checkpoints.insert("conflict".into(), 0);
    for (k, v) in &info.checkpoints {
        checkpoints.insert(k.clone(), *v);
    }
    let summary = Summary {
        as_of: info.as_of.to_string(),
        config_hash: info.config_hash.clone(),
        accounts: counts.total(),
        cluster_icp_count: counts.cluster_icp,
        future_pipeline_count: counts.future_pipeline,
        active_focus_count: counts.active_focus,
        monitor_only_count: counts.monitor_only,
        capacity,
        checkpoints,
        rejected_rows: summary_store.rejected_rows as u64,
        // What the run read from the store, under `segment`'s file-kind names.
        rows_read: summary_store
            .stored
            .iter()
            .map(|(k, v)| {
                let k = if k == "events" {
                    "engagement"
                } else {
                    k.as_str()
                };
                (k.to_string(), *v as u64)
            })
            .collect(),
        events_after_as_of: info.events_after_as_of as u64,
    };
    let mut summary_file = set.create("cluster_summary.json")?;
    output::write_summary_to(&mut summary_file, &summary)?;
    set.commit(vec![csv, jsonl, summary_file])
        .map_err(|(path, e)| anyhow::anyhow!("{}: {e}", path.display()))?;
    outln!(
        "Exported run {} as of {} ({}) to {}",
        info.run,
        info.as_of,
        crate::count(info.accounts as u64, "account"),
        out.display()
    )?;
    if info.decisions_since_run > 0 {
        eprintln!(
            "abm: note: {} review decision(s) since run {}: `abm run` first to include them",
            info.decisions_since_run, info.run
        );
    }
    Ok(())
}
