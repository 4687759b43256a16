//! The stateful commands (docs/rules.md, movement): `import`, `run`, `review`, `summary`, `movements`,
//! `history`, `export`. Thin: parse, open the app over the store, call `abm-app`, print.

use crate::{load_config, now, parse_as_of, InputArgs};
use abm_app::{App, RunObserver, StoreSettings};
use abm_core::movement::{CheckpointKind, CheckpointStatus};
use abm_core::Instant;
use abm_io::output::{self, AssignmentRow, Summary};
use abm_io::outset::{OutputSet, SetKind};
use abm_store::query::{CheckpointView, EvidenceItem, MovementView};
use abm_store::{ImportInputs, RunOutcome, Store, StoreError, DEFAULT_DATABASE};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Args, Clone)]
pub struct DbArgs {
    /// Database: a SQLite file path, or postgres://user@host/db for PostgreSQL.
    #[arg(long, visible_alias = "db", env = "ABM_DATABASE_URL", default_value = DEFAULT_DATABASE, value_name = "URL")]
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

impl DbArgs {
    /// The database URL or path given (or the default).
    pub fn url(&self) -> &str {
        &self.database
    }
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
        #[arg(long, value_name = "N", env = "ABM_THREADS")]
        threads: Option<usize>,
        /// Print the run report as JSON.
        #[arg(long)]
        json: bool,
        /// Assess every account, not only those with new data, a decision or a due instant
        /// (the outcome is the same; this is the long way, for checking).
        #[arg(long)]
        full: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Drop snapshot history a team no longer needs: every account keeps the row that held at
    /// the last run before DATE and everything after it; movements, review checkpoints and
    /// decisions are kept.
    Prune {
        /// Keep what holds from this instant on (RFC 3339 or YYYY-MM-DD).
        #[arg(long, value_parser = parse_as_of)]
        before: Instant,
        /// Print the report as JSON.
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
        /// Add a last column `segment`: the [[segments]] each account is in under the
        /// definitions the run recorded (`a;b`). Also `[analytics] segment_column = true`.
        #[arg(long)]
        segment_column: bool,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
pub enum ReviewCommand {
    /// Pending checkpoints (all of them with --all), filtered, sorted and paged.
    List {
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        filter: ReviewFilter,
        /// Order: id (default), age (oldest first), account, kind.
        #[arg(long, default_value = "id")]
        sort: String,
        /// At most this many items (a page).
        #[arg(long)]
        limit: Option<usize>,
        /// Skip this many items first (the next page).
        #[arg(long, default_value_t = 0)]
        offset: usize,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Approve a pending checkpoint: a proposed move takes effect as of the run that proposed it.
    /// With --where FILTER, every pending checkpoint that matches (previewed; --yes decides).
    Approve {
        #[arg(required_unless_present = "filter_text")]
        id: Option<i64>,
        #[command(flatten)]
        bulk: BulkArgs,
        #[command(flatten)]
        decision: DecisionArgs,
    },
    /// Reject a pending checkpoint: the account keeps its cluster; the same evidence will not
    /// re-open it. With --where FILTER, every pending checkpoint that matches.
    Reject {
        #[arg(required_unless_present = "filter_text")]
        id: Option<i64>,
        #[command(flatten)]
        bulk: BulkArgs,
        #[command(flatten)]
        decision: DecisionArgs,
    },
}

/// Which checkpoints: every given condition must hold.
#[derive(Args, Clone, Default, Debug)]
pub struct ReviewFilter {
    /// capacity, conflict, promotion_to_active_focus, demotion_from_active_focus.
    #[arg(long)]
    kind: Option<String>,
    /// The account's current cluster, or the proposal's from/to.
    #[arg(long)]
    cluster: Option<String>,
    /// The account's tier in the latest run (A–E; several as "D,E").
    #[arg(long)]
    tier: Option<String>,
    #[arg(long)]
    account: Option<String>,
    /// Opened at least this many days (of as_of) before the latest run.
    #[arg(long, value_name = "DAYS")]
    older_than: Option<u32>,
}

#[derive(Args)]
pub struct BulkArgs {
    /// Decide every pending checkpoint matching FILTER: `kind=conflict tier=D,E cluster=…
    /// account=… older_than=DAYS` (space- or comma-separated). Previews unless --yes.
    #[arg(
        long = "where",
        value_name = "FILTER",
        id = "filter_text",
        conflicts_with = "id"
    )]
    filter: Option<String>,
    /// Decide the previewed set (with --where).
    #[arg(long, requires = "filter_text")]
    yes: bool,
}

impl ReviewFilter {
    /// `kind=conflict tier=D,E older_than=30`.
    fn parse(text: &str) -> Result<ReviewFilter> {
        let mut f = ReviewFilter::default();
        for part in text.split_whitespace() {
            let Some((k, v)) = part.split_once('=') else {
                anyhow::bail!(
                    "--where: {part:?} is not key=value (kind, cluster, tier, account, older_than)"
                );
            };
            let v = v.trim_matches(',').to_string();
            match k {
                "kind" => f.kind = Some(v),
                "cluster" => f.cluster = Some(v),
                "tier" => f.tier = Some(v),
                "account" | "account_id" => f.account = Some(v),
                "older_than" | "age" => {
                    f.older_than = Some(v.parse().map_err(|_| {
                        anyhow::anyhow!("--where: older_than={v} is not a number of days")
                    })?)
                }
                other => anyhow::bail!(
                    "--where: unknown key {other:?} (kind, cluster, tier, account, older_than)"
                ),
            }
        }
        Ok(f)
    }

    fn is_empty(&self) -> bool {
        self.kind.is_none()
            && self.cluster.is_none()
            && self.tier.is_none()
            && self.account.is_none()
            && self.older_than.is_none()
    }

    /// The items that match, with each one's age in days (of as_of, to the latest run).
    fn apply(
        &self,
        store: &mut Store,
        items: Vec<CheckpointView>,
    ) -> Result<Vec<(CheckpointView, i64)>> {
        let latest = store.summary().ok().map(|s| s.as_of);
        let age = |c: &CheckpointView| -> i64 { latest.map_or(0, |l| l.days_since(c.as_of)) };
        // Current cluster and tier per account, read only when asked for.
        let mut current: HashMap<String, (abm_core::Cluster, abm_core::Tier)> = HashMap::new();
        if self.tier.is_some() || self.cluster.is_some() {
            store.export(&mut |r| {
                current.insert(r.account_id.clone(), (r.cluster, r.tier));
                Ok(())
            })?;
        }
        let tiers: Option<Vec<String>> = self
            .tier
            .as_ref()
            .map(|t| t.split(',').map(|x| x.trim().to_uppercase()).collect());
        let mut out = Vec::new();
        for c in items {
            let acc = c.account_id.clone().unwrap_or_default();
            let cur = current.get(&acc);
            if self.kind.as_ref().is_some_and(|k| k != c.kind.as_str())
                || self.account.as_ref().is_some_and(|a| *a != acc)
            {
                continue;
            }
            if let Some(cl) = &self.cluster {
                let hit = cur.is_some_and(|x| x.0.as_str() == cl)
                    || c.from.is_some_and(|f| f.as_str() == cl)
                    || c.to.is_some_and(|t| t.as_str() == cl);
                if !hit {
                    continue;
                }
            }
            if let Some(ts) = &tiers {
                if !cur.is_some_and(|x| ts.iter().any(|t| t == x.1.as_str())) {
                    continue;
                }
            }
            let a = age(&c);
            if self.older_than.is_some_and(|d| a < d as i64) {
                continue;
            }
            out.push((c, a));
        }
        Ok(out)
    }
}

#[derive(Args)]
pub struct DecisionArgs {
    #[arg(long)]
    comment: Option<String>,
    /// Reviewer name (default: $ABM_REVIEWER, else $USER; refused when none is known).
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    db: DbArgs,
}

pub(crate) fn open_with(db: &DbArgs, create: bool, config: abm_core::Config) -> Result<App> {
    open_pooled(db, create, config, StoreSettings::new("").pool_size)
}

/// [`open_with`] keeping up to `pool_size` idle connections (a server's concurrent requests).
pub(crate) fn open_pooled(
    db: &DbArgs,
    create: bool,
    config: abm_core::Config,
    pool_size: usize,
) -> Result<App> {
    let settings = StoreSettings {
        lock_timeout: std::time::Duration::from_secs(db.lock_timeout),
        create,
        pool_size,
        ..StoreSettings::new(&db.database)
    };
    App::open(&settings, config)
        .with_context(|| format!("database {}", abm_store::redact(&db.database)))
}

/// The app over `db` (`create`: a new SQLite file when there is none).
pub(crate) fn open_app(db: &DbArgs, create: bool, config: abm_core::Config) -> Result<App> {
    open_with(db, create, config)
}

fn open(db: &DbArgs, config: abm_core::Config) -> Result<App> {
    open_with(db, true, config)
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
    let app = open_with(db, false, old_cfg.clone())?;
    let pb = crate::progress::Bars::new(quiet);
    let log = |m: &str| {
        if !quiet {
            eprintln!("abm: {m}");
        }
    };
    let w = app.preview(
        new_cfg,
        as_of,
        threads,
        RunObserver {
            log: &log,
            progress: &|l, d, t| pb.update(l, d, t),
        },
    )?;
    pb.finish();
    Ok(w)
}

/// `abm explain ID` on the database: as of `as_of`, else the latest run's (else now).
pub fn explain(
    db: &DbArgs,
    config: &abm_core::Config,
    account_id: &str,
    as_of: Option<Instant>,
) -> Result<abm_core::explanation::Explained> {
    let app = open_with(db, false, config.clone())?;
    let as_of = match as_of {
        Some(t) => t,
        None => app.latest_as_of()?.unwrap_or_else(now),
    };
    let e = app.explain(account_id, as_of)?;
    Ok(abm_core::explanation::Explained::Assessed(Box::new(e)))
}

/// The stored versions of the segment definitions; `None` when there is no database.
pub fn segment_versions(db: &DbArgs) -> Result<Option<Vec<abm_store::segments::SegmentVersion>>> {
    let app = match App::open(
        &StoreSettings {
            create: false,
            ..StoreSettings::new(&db.database)
        },
        abm_core::Config::default(),
    ) {
        Ok(app) => app,
        Err(abm_app::AppError::Store(StoreError::Missing { .. })) => return Ok(None),
        Err(e) => {
            return Err(e).with_context(|| format!("database {}", abm_store::redact(&db.database)))
        }
    };
    Ok(Some(app.segment_versions()?))
}

/// For the commands that only read or review (no config needed): no new empty database by
/// mistake.
fn open_existing(db: &DbArgs) -> Result<App> {
    open_with(db, false, abm_core::Config::default())
}

pub(crate) fn print_json(v: &impl serde::Serialize) -> Result<()> {
    // Rendered first: a closed pipe is then an `io::Error` (success), not a serde error.
    let mut text = serde_json::to_vec_pretty(v)?;
    text.push(b'\n');
    std::io::stdout().lock().write_all(&text)?;
    Ok(())
}

pub fn run(cmd: StateCommand, config: Option<&Path>, quiet: bool) -> Result<()> {
    match cmd {
        StateCommand::Import {
            dir,
            input,
            rejected,
            json,
            db,
        } => import_cmd(dir, input, rejected, json, db, config, quiet),
        StateCommand::Prune { before, json, db } => prune_cmd(before, json, db),
        StateCommand::Status { limit, json, db } => status_cmd(limit, json, db),
        StateCommand::Run {
            as_of,
            threads,
            json,
            full,
            db,
        } => run_cmd(as_of, threads, json, full, db, config, quiet),
        StateCommand::Review(rc) => review(rc),
        StateCommand::Summary { json, db } => summary_cmd(json, db),
        StateCommand::Movements { since, json, db } => movements_cmd(since, json, db),
        StateCommand::History {
            account_id,
            json,
            db,
        } => history_cmd(account_id, json, db),
        StateCommand::Export {
            out,
            segment_column,
            db,
        } => {
            let column = segment_column || load_config(config)?.analytics.segment_column;
            export(&out, &db, column)
        }
    }
}

fn import_cmd(
    dir: Option<PathBuf>,
    input: InputArgs,
    rejected: PathBuf,
    json: bool,
    db: DbArgs,
    config: Option<&Path>,
    quiet: bool,
) -> Result<()> {
    let config = load_config(config)?;
    if let Ok(v) = std::env::var("ABM_IMPORT_REBUILD_MIN_ROWS") {
        let rows = v.trim().parse().with_context(|| {
            format!("ABM_IMPORT_REBUILD_MIN_ROWS={v:?}: expected a number of rows")
        })?;
        abm_store::import::set_rebuild_min_rows(rows);
    }
    let pb = crate::progress::Bars::new(quiet);
    let bar = |l: &str, d, t| pb.update(l, d, t);
    let opts = input.load_options(&config, &bar)?;
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
        accounts: paths.accounts.map(Into::into),
        engagement: paths.engagement.map(Into::into),
        more_engagement: paths.more_engagement.into_iter().map(Into::into).collect(),
        triggers: paths.triggers.map(Into::into),
        deals: paths.deals.map(Into::into),
    };
    let app = open(&db, config.clone())?;
    // The rejected rows are written before the commit: if they cannot be, nothing is
    // imported (issue 11 #4), rather than committed rows with their rejects lost.
    let rep = app.import(&inputs, &opts, &mut |rejects| {
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
        app.location().display(),
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
    Ok(())
}

fn prune_cmd(before: Instant, json: bool, db: DbArgs) -> Result<()> {
    let r = open_existing(&db)?.store()?.prune(before)?;
    if json {
        return print_json(&r);
    }
    match r.last_run_before {
        None => outln!("No run before {before}: nothing to prune.")?,
        Some(run) => outln!(
            "Pruned {} snapshot rows older than what held at run {run} (the last before {before}); {} kept.",
            r.snapshot_rows_dropped,
            r.snapshot_rows_kept
        )?,
    }
    Ok(())
}

fn status_cmd(limit: usize, json: bool, db: DbArgs) -> Result<()> {
    let app = open_existing(&db)?;
    let w = app.waiting(limit)?;
    if json {
        return print_json(&w);
    }
    let total = w.events + w.triggers + w.deals;
    outln!(
        "Waiting in {} for accounts not imported yet: {} events, {} triggers, {} deals ({})",
        app.location().display(),
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
    Ok(())
}

fn run_cmd(
    as_of: Option<Instant>,
    threads: Option<usize>,
    json: bool,
    full: bool,
    db: DbArgs,
    config: Option<&Path>,
    quiet: bool,
) -> Result<()> {
    let log = |m: &str| {
        if !quiet {
            eprintln!("abm: {m}");
        }
    };
    let config = load_config(config)?;
    let pb = crate::progress::Bars::new(quiet);
    let app = open_with(&db, false, config.clone())?;
    let observer = RunObserver {
        log: &log,
        progress: &|l, d, t| pb.update(l, d, t),
    };
    let as_of = Some(as_of.unwrap_or_else(now));
    let outcome = if full {
        app.run_full(as_of, threads, observer)?
    } else {
        app.run(as_of, threads, observer)?
    };
    pb.finish();
    match outcome {
        RunOutcome::Unchanged { run, as_of } => {
            if json {
                print_json(&serde_json::json!({"unchanged": true, "run": run, "as_of": as_of}))?;
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
                let r_total = r.counts.total();
                let row = |label: &str, n: u64, range: Option<&abm_core::config::CapacityRange>| {
                    let range = range
                        .map(|r| format!("(recommended {})", r.describe(r_total)))
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
                if !r.full {
                    outln!(
                        "  {:<16} {:>9}  (new data, decisions or due; the others unchanged)",
                        "assessed",
                        r.assessed
                    )?;
                }
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
                outln!(
                    "  history: {} snapshot rows (accounts whose assessment changed)",
                    r.snapshot_rows
                )?;
                if r.events_unknown_type > 0 {
                    outln!(
                        "  warning: {} stored events have a type the config does not know (ignored)",
                        r.events_unknown_type
                    )?;
                }
                for line in &r.review_policy {
                    outln!("  review policy: {line}")?;
                }
                for n in &r.notes {
                    outln!("  note: {n}")?;
                }
                if !r.criteria_without_data.is_empty() {
                    outln!(
                        "  criteria without data (left out of the points possible): {}",
                        r.criteria_without_data.join(", ")
                    )?;
                }
            }
        }
    }
    Ok(())
}

fn summary_cmd(json: bool, db: DbArgs) -> Result<()> {
    let s = open_existing(&db)?.summary()?;
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
        ("Customer", s.customer_count),
        ("accounts", s.accounts),
    ] {
        if label == "Customer" && n == 0 {
            continue;
        }
        outln!("  {label:<16} {n:>9}")?;
    }
    outln!(
        "  capacity: Active Focus {} (max {})",
        s.capacity.active_focus,
        s.capacity.active_focus_max
    )?;
    for w in &s.capacity.warnings {
        outln!("  warning: {w}")?;
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
            "  {} review decision(s) since this run: decided proposals are in the counts above, `abm run` refreshes the rest",
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
    Ok(())
}

fn movements_cmd(since: Option<Instant>, json: bool, db: DbArgs) -> Result<()> {
    let ms = open_existing(&db)?.movements(since)?;
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
    Ok(())
}

fn history_cmd(account_id: String, json: bool, db: DbArgs) -> Result<()> {
    let h = open_existing(&db)?.history(&account_id)?;
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
            s.previous.map_or("-", |c| c.as_str()),
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
    Ok(())
}

fn print_evidence(indent: &str, ev: &[EvidenceItem]) -> Result<()> {
    for e in ev {
        // As the JSON has it (the earliest instant reads `never`).
        let at =
            e.at.map(|a| match a {
                Instant::MIN => " @ never".to_string(),
                a => format!(" @ {a}"),
            })
            .unwrap_or_default();
        outln!("{indent}- {}: {}{at}", e.kind, e.detail)?;
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
        c.from.map_or("", |c| c.as_str()),
        c.to.map(|t| format!(" → {t}")).unwrap_or_default(),
        c.status,
        c.run,
        c.as_of,
        c.created_at
    )?;
    if let Some(r) = &c.rule {
        outln!("      rule: {r}")?;
    }
    print_evidence("      ", &c.evidence)?;
    if c.status != CheckpointStatus::Pending {
        outln!(
            "      {} {}{}{}",
            c.status,
            c.decided_at.map(|t| t.to_string()).unwrap_or_default(),
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

/// Who decides: `--by`, else `ABM_REVIEWER`, else `$USER` (`USERNAME` on Windows); a
/// decision without a name is refused (issue 13: decisions were recorded as `unknown`).
fn reviewer(by: Option<String>) -> Result<String> {
    let named = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    named(by)
        .or_else(|| named(std::env::var("ABM_REVIEWER").ok()))
        .or_else(|| named(std::env::var("USER").ok()))
        .or_else(|| named(std::env::var("USERNAME").ok()))
        .map(|s| s.trim().to_string())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "who is deciding? give --by NAME (or set ABM_REVIEWER): a decision is recorded \
                 with its reviewer"
            )
        })
}

fn review(rc: ReviewCommand) -> Result<()> {
    let (id, bulk, d, approve) = match rc {
        ReviewCommand::List {
            all,
            filter,
            sort,
            limit,
            offset,
            json,
            db,
        } => {
            let app = open_existing(&db)?;
            let mut store = app.store()?;
            let items = store.review_list(all)?;
            let total = items.len();
            let mut items = filter.apply(&mut store, items)?;
            match sort.as_str() {
                "id" => {}
                "age" => items.sort_by_key(|(c, a)| (std::cmp::Reverse(*a), c.id)),
                "account" => {
                    items.sort_by(|x, y| (&x.0.account_id, x.0.id).cmp(&(&y.0.account_id, y.0.id)))
                }
                "kind" => items.sort_by(|x, y| (&x.0.kind, x.0.id).cmp(&(&y.0.kind, y.0.id))),
                other => anyhow::bail!("--sort {other:?}: id, age, account or kind"),
            }
            let matched = items.len();
            let page: Vec<(CheckpointView, i64)> = items
                .into_iter()
                .skip(offset)
                .take(limit.unwrap_or(usize::MAX))
                .collect();
            if json {
                let v: Vec<&CheckpointView> = page.iter().map(|(c, _)| c).collect();
                return print_json(&v);
            }
            if matched == 0 {
                outln!(
                    "The review queue is empty{}.",
                    if !filter.is_empty() {
                        " for this filter"
                    } else if all {
                        ""
                    } else {
                        " (nothing pending)"
                    }
                )?;
            }
            for (c, _) in &page {
                print_checkpoint(c)?;
            }
            if page.len() < matched {
                outln!(
                    "{}–{} of {matched} (of {total}{}); --offset {} for the next page",
                    offset + 1,
                    offset + page.len(),
                    if all { "" } else { " pending" },
                    offset + page.len()
                )?;
            }
            return Ok(());
        }
        ReviewCommand::Approve { id, bulk, decision } => (id, bulk, decision, true),
        ReviewCommand::Reject { id, bulk, decision } => (id, bulk, decision, false),
    };
    let by = reviewer(d.by.clone())?;
    let app = open_existing(&d.db)?;
    if let Some(text) = &bulk.filter {
        let mut store = app.store()?;
        let filter = ReviewFilter::parse(text)?;
        if filter.is_empty() {
            anyhow::bail!(
                "--where needs at least one condition (kind, cluster, tier, account, older_than)"
            );
        }
        let items = store.review_list(false)?;
        let items = filter.apply(&mut store, items)?;
        let verb = if approve { "approve" } else { "reject" };
        if !bulk.yes {
            if d.json {
                let v: Vec<&CheckpointView> = items.iter().map(|(c, _)| c).collect();
                return print_json(&serde_json::json!({ "preview": true, "matched": v }));
            }
            outln!("{} pending checkpoint(s) match {text:?}:", items.len())?;
            for (c, _) in items.iter().take(20) {
                print_checkpoint(c)?;
            }
            if items.len() > 20 {
                outln!("  … and {} more", items.len() - 20)?;
            }
            outln!(
                "Nothing decided: add --yes to {verb} them (each is recorded as its own decision)."
            )?;
            return Ok(());
        }
        let mut decided = Vec::new();
        let mut failed = Vec::new();
        for (c, _) in &items {
            let r = app.decide(c.id, approve, &by, d.comment.as_deref());
            match r {
                Ok(o) => decided.push(o),
                Err(e) => failed.push((c.id, e.to_string())),
            }
        }
        if d.json {
            return print_json(&serde_json::json!({
                "decided": decided,
                "failed": failed.iter().map(|(id, e)| serde_json::json!({"id": id, "error": e})).collect::<Vec<_>>(),
            }));
        }
        outln!(
            "{} checkpoint(s) {}d by {by}{}.",
            decided.len(),
            verb,
            if failed.is_empty() {
                String::new()
            } else {
                format!("; {} failed", failed.len())
            }
        )?;
        for (id, e) in &failed {
            outln!("  #{id}: {e}")?;
        }
        if decided
            .iter()
            .any(|o| o.effective_cluster.is_some() && !o.shown_now)
        {
            outln!("Run `abm run` to refresh the assignments.")?;
        }
        return Ok(());
    }
    let id = id.expect("clap: an id or --where");
    let out = app.decide(id, approve, &by, d.comment.as_deref())?;
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
            "  {} is now {} (effective as of run {}, {}). {}",
            c.account_id.as_deref().unwrap_or("-"),
            cl,
            c.run,
            c.as_of,
            if out.shown_now {
                "Export, summary and history show it now."
            } else {
                "Run `abm run` to refresh the assignments."
            }
        )?;
    } else if c.kind == CheckpointKind::Conflict {
        outln!(
            "  {}: the account keeps its cluster; the same disagreement is not asked again (new evidence opens a new item).",
            if approve { "acknowledged" } else { "dismissed" }
        )?;
    } else if c.kind == CheckpointKind::Capacity {
        outln!(
            "  {}: the next run over capacity asks again.",
            if approve { "acknowledged" } else { "dismissed" }
        )?;
    }
    Ok(())
}

fn export(out: &Path, db: &DbArgs, segment_column: bool) -> Result<()> {
    let app = open_existing(db)?;
    let mut store = app.store()?;
    let mut set = OutputSet::begin(out, SetKind::Assignments, &[], &crate::tuning_from_env()?)
        .with_context(|| format!("writing into {}", out.display()))?;
    let mut csv = set
        .create_bulk("cluster_assignments.csv")
        .with_context(|| format!("writing {}", out.display()))?;
    let mut jsonl = set
        .create_bulk("cluster_assignments.jsonl")
        .with_context(|| format!("writing {}", out.display()))?;
    csv.write_all(&output::csv_header(segment_column))?;
    let mut buf_csv = Vec::with_capacity(1 << 16);
    let mut buf_json = Vec::with_capacity(1 << 16);
    let mut io_err: Option<std::io::Error> = None;
    let mut labelled = false;
    let info = store.export(&mut |r| {
        labelled |= r.segment.is_some();
        let checkpoint = r.checkpoint.to_string();
        let row = AssignmentRow {
            account_id: &r.account_id,
            name: &r.name,
            icp_score: &r.icp_score,
            tier: r.tier.as_str(),
            engagement_level: r.engagement_level.as_str(),
            has_triggers: r.has_triggers,
            cluster: r.cluster.as_str(),
            previous_cluster: r.previous_cluster.map_or("", |c| c.as_str()),
            movement: r.movement.as_str(),
            promotion_triggers: &r.promotion_triggers,
            program_type: &r.program_type,
            micro_segment: &r.micro_segment,
            next_action: &r.next_action,
            checkpoint: &checkpoint,
            rationale: &r.rationale,
            segment: segment_column.then(|| r.segment.as_deref().unwrap_or("")),
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
    if segment_column && !labelled {
        eprintln!(
            "abm: warning: the latest run recorded no [[segments]]: the segment column is empty \
             (define them in abm.toml, then `abm run`)"
        );
    }
    csv.write_all(&buf_csv)?;
    jsonl.write_all(&buf_json)?;
    let counts = abm_core::summary::ClusterCounts {
        cluster_icp: info.cluster_icp as u64,
        future_pipeline: info.future_pipeline as u64,
        active_focus: info.active_focus as u64,
        monitor_only: info.monitor_only as u64,
        customer: info.customer as u64,
    };
    // Rows, counts, capacity and what was stored: one read transaction (`Store::export`).
    let capacity = info.capacity.clone();
    let mut checkpoints: BTreeMap<String, u64> = BTreeMap::new();
    checkpoints.insert("conflict".into(), 0);
    for (k, v) in &info.checkpoints {
        checkpoints.insert(k.to_string(), *v);
    }
    let summary = Summary {
        as_of: info.as_of.to_string(),
        config_hash: info.config_hash.clone(),
        accounts: counts.total(),
        cluster_icp_count: counts.cluster_icp,
        future_pipeline_count: counts.future_pipeline,
        active_focus_count: counts.active_focus,
        monitor_only_count: counts.monitor_only,
        customer_count: counts.customer,
        capacity,
        checkpoints,
        rejected_rows: info.rejected_rows as u64,
        // What the run read from the store, under `segment`'s file-kind names.
        rows_read: info
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
        criteria_without_data: info.criteria_without_data.clone(),
        notes: info.notes.clone(),
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
            "abm: note: {} review decision(s) since run {}: decided proposals are included, `abm run` refreshes the rest",
            info.decisions_since_run, info.run
        );
    }
    Ok(())
}
