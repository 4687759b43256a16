//! `abm` — the Cluster ABM engine's command line. Thin: parse flags, load the config, call the
//! libraries, print. `anyhow` lives here and nowhere else.

/// mimalloc rather than the system allocator: a run computes on worker threads and frees on the
/// writer thread, and glibc's allocator answered that with arena-lock waits and freshly zeroed
/// pages (a fifth of a full run's samples at 1M accounts: futex, page clearing, malloc/free).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

#[macro_use]
mod term;
mod analyze;
mod config_file;
mod demo;
#[cfg(test)]
mod docs;
mod progress;
mod serve_cmds;
mod state_cmds;
mod sync_cmds;

use abm_core::{Cluster, Config, Instant, Rules};
use abm_io::load::LoadOptions;
use abm_io::sample::{write_sample, SampleSpec, SAMPLE_AS_OF};
use abm_io::segment::{segment, Formats, InputPaths, SegmentReport};
use abm_io::Preset;
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "abm",
    version,
    about = "Cluster ABM engine: score accounts against your ICP, cluster them (Cluster ICP, Future Pipeline, Active Focus, Monitor Only), explain why, and track their moves.",
    after_help = "Start with `abm demo`. Docs: README.md."
)]
struct Cli {
    /// Config file (default: ./abm.toml if present, else the built-in defaults, docs/config.md).
    #[arg(long, global = true, env = "ABM_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// No progress bars.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Write CSV outputs exactly, for machine consumers: by default a cell a spreadsheet would
    /// evaluate (starting with =, +, -, @, tab or CR) gets a leading ' .
    #[arg(long, global = true, env = "ABM_CSV_RAW", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    csv_raw: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone, Default)]
struct InputArgs {
    /// Accounts file (default: DIR/accounts.csv or .jsonl).
    #[arg(long, value_name = "FILE")]
    accounts: Option<PathBuf>,
    /// Engagement events file (default: DIR/engagement.csv or .jsonl, if present). Repeat it
    /// for several files; each is read with its own mapping, [columns.files.STEM] in abm.toml.
    #[arg(long, value_name = "FILE")]
    engagement: Vec<PathBuf>,
    /// Triggers file (default: DIR/triggers.csv or .jsonl, if present).
    #[arg(long, value_name = "FILE")]
    triggers: Option<PathBuf>,
    /// Deals file (default: DIR/deals.csv or .jsonl, if present).
    #[arg(long, value_name = "FILE")]
    deals: Option<PathBuf>,
    /// Column preset for CRM exports: hubspot or salesforce.
    #[arg(long, value_name = "NAME", value_parser = parse_preset)]
    preset: Option<Preset>,
    /// Stop with an error at the first bad row instead of writing it to rejected_rows.csv.
    #[arg(long)]
    strict: bool,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N", env = "ABM_THREADS")]
    threads: Option<usize>,
    /// Only warn when a criterion or value map you wrote names a field that no input has.
    #[arg(long)]
    allow_missing_fields: bool,
}

impl InputArgs {
    /// The load options these flags and the environment's I/O switches give.
    fn load_options<'a>(
        &self,
        config: &'a Config,
        progress: abm_io::load::Progress<'a>,
    ) -> Result<LoadOptions<'a>> {
        let mut opts = LoadOptions {
            preset: self.preset,
            strict: self.strict,
            progress,
            tuning: tuning_from_env()?,
            ..LoadOptions::new(config)
        };
        if let Some(n) = self.threads {
            opts.threads = n.max(1);
        }
        Ok(opts)
    }

    fn paths(&self) -> InputPaths {
        InputPaths {
            accounts: self.accounts.clone(),
            engagement: self.engagement.first().cloned(),
            more_engagement: self.engagement.iter().skip(1).cloned().collect(),
            triggers: self.triggers.clone(),
            deals: self.deals.clone(),
        }
    }
}

/// A boolean switch from the environment: `1/true/yes/on` or `0/false/no/off` (any case);
/// unset or empty is `None`; anything else is an error naming the variable.
fn env_flag(name: &str) -> Result<Option<bool>> {
    match std::env::var(name) {
        Ok(v) => parse_flag(name, &v),
        Err(_) => Ok(None),
    }
}

fn parse_flag(name: &str, v: &str) -> Result<Option<bool>> {
    match v.trim().to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "1" | "true" | "yes" | "on" => Ok(Some(true)),
        "0" | "false" | "no" | "off" => Ok(Some(false)),
        _ => bail!("{name}={v:?}: expected 1, true, yes, on or 0, false, no, off"),
    }
}

/// The I/O switches from the environment (the library reads none itself): `ABM_NO_MMAP`,
/// `ABM_READ_BLOCKS`, `ABM_DIRECT_IO`, `ABM_RECYCLE_OUTPUTS`.
pub(crate) fn tuning_from_env() -> Result<abm_io::Tuning> {
    let d = abm_io::Tuning::default();
    Ok(abm_io::Tuning {
        mmap: !env_flag("ABM_NO_MMAP")?.unwrap_or(!d.mmap),
        read_blocks: env_flag("ABM_READ_BLOCKS")?.unwrap_or(d.read_blocks),
        direct_io: env_flag("ABM_DIRECT_IO")?.unwrap_or(d.direct_io),
        recycle_outputs: env_flag("ABM_RECYCLE_OUTPUTS")?.unwrap_or(d.recycle_outputs),
    })
}

fn parse_preset(s: &str) -> Result<Preset, String> {
    Preset::parse(s).ok_or_else(|| format!("unknown preset {s:?} (hubspot, salesforce)"))
}

fn parse_as_of(s: &str) -> Result<Instant, String> {
    Instant::parse(s).map_err(|e| e.to_string())
}

#[derive(Subcommand)]
enum Command {
    /// Write a commented abm.toml with the default rules.
    Init {
        /// Where to write it.
        #[arg(default_value = "abm.toml")]
        path: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Run the whole job on a bundled, generated sample and print the result.
    Demo {
        /// Where to write the outputs.
        #[arg(long, default_value = "abm-demo")]
        out: PathBuf,
        /// Sample size.
        #[arg(long, default_value_t = 300)]
        accounts: u64,
    },
    /// Stateless bulk segmentation of a directory of inputs.
    Segment {
        /// Directory holding accounts.csv and optionally engagement/triggers/deals.
        dir: Option<PathBuf>,
        /// Evaluate as of this instant (RFC 3339 or YYYY-MM-DD; default: now).
        #[arg(long, value_parser = parse_as_of)]
        as_of: Option<Instant>,
        /// Output directory.
        #[arg(long, default_value = "out")]
        out: PathBuf,
        #[command(flatten)]
        input: InputArgs,
        /// Assignment files to write: csv, jsonl or csv,jsonl.
        #[arg(long, default_value = "csv,jsonl", value_parser = Formats::parse)]
        formats: Formats,
        /// Print per-stage timings (seconds, CPU seconds, memory) on stderr.
        #[arg(long)]
        timings: bool,
        /// Add a last column `segment`: the abm.toml [[segments]] each account is in
        /// (`a;b`, empty for none). Also `[analytics] segment_column = true`.
        #[arg(long)]
        segment_column: bool,
    },
    /// Print the whole reasoning for one account: from the input files with DIR (or
    /// --accounts …), as `abm segment` sees it; without them, from the database, as the next
    /// `abm run` would see it, with the account's stored state and open checkpoints.
    Explain {
        account_id: String,
        /// Directory holding accounts.csv and optionally engagement/triggers/deals (omit to
        /// explain the account stored in the database).
        dir: Option<PathBuf>,
        /// Evaluate as of this instant (default: now on files; the latest run's as_of on the
        /// database).
        #[arg(long, value_parser = parse_as_of)]
        as_of: Option<Instant>,
        /// Print the explanation as JSON (docs/explain.md).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        input: InputArgs,
        #[command(flatten)]
        db: state_cmds::DbArgs,
    },
    /// Preview a rule change: every account under the current config and under NEW, compared
    /// (transition matrices, capacity before/after, each account that moves and why). On files
    /// with DIR (or --accounts …); without them, on the database: from each account's current
    /// cluster to where the next run under NEW would put it, and which moves need review.
    Whatif {
        /// Directory holding accounts.csv and optionally engagement/triggers/deals (omit to
        /// preview against the database).
        dir: Option<PathBuf>,
        /// The changed config to preview (the current one is --config or ./abm.toml).
        #[arg(long, value_name = "FILE")]
        config_new: PathBuf,
        /// Evaluate as of this instant (default: now on files; the latest run's as_of on the
        /// database).
        #[arg(long, value_parser = parse_as_of)]
        as_of: Option<Instant>,
        /// Write whatif.json and whatif_accounts.csv here.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Print whatif.json to stdout instead of the table.
        #[arg(long)]
        json: bool,
        /// Accounts listed in the terminal.
        #[arg(long, default_value_t = 20, value_name = "N")]
        show: usize,
        #[command(flatten)]
        input: InputArgs,
        #[command(flatten)]
        db: state_cmds::DbArgs,
    },
    /// Segment performance for a period: per cluster, tier and segment (abm.toml
    /// [[segments]]) the accounts, customers, won/lost/open deals, win rate with its 95% Wilson
    /// interval, won revenue and share, median sales cycle, open pipeline, buying pattern,
    /// CLV/CAC, a grow / maintain / enter / exit recommendation, whitespace and a forecast with
    /// capacity guidance. On files with DIR (or --accounts …); without them, on the database:
    /// clusters and segments as the recorded runs left them, plus the migration between two
    /// runs and the lifecycle of each segment's cohort. Writes analytics.json, report.md and
    /// report.html.
    Analyze {
        /// Directory holding accounts.csv, deals.csv and optionally engagement, triggers and
        /// spend.csv (period_start, period_end, segment or channel, amount). Omit it to
        /// analyze the database.
        dir: Option<PathBuf>,
        /// First day of the period (YYYY-MM-DD, from 00:00 UTC).
        #[arg(long, value_parser = parse_as_of)]
        from: Instant,
        /// Last day of the period (included, to 24:00 UTC).
        #[arg(long, value_parser = parse_as_of)]
        to: Instant,
        /// Assess clusters and tiers as of this instant (default: the end of --to).
        #[arg(long, value_parser = parse_as_of)]
        as_of: Option<Instant>,
        /// Spend file for CAC (default: DIR/spend.csv if present).
        #[arg(long, value_name = "FILE")]
        spend: Option<PathBuf>,
        /// Output directory.
        #[arg(long, default_value = "analytics")]
        out: PathBuf,
        /// Also backtest the clusters as of these dates (comma-separated) into analytics.json's
        /// `backtest` (as `abm backtest`; null without it).
        #[arg(long, value_delimiter = ',', value_parser = parse_as_of)]
        backtest_at: Vec<Instant>,
        /// Horizons in days for --backtest-at.
        #[arg(long, value_delimiter = ',', default_value = "90,180")]
        horizon: Vec<u32>,
        /// On the database: the two runs to compare for the migration (default: the run
        /// holding at --from, else the first, and the run holding at --as-of).
        #[arg(long, value_delimiter = ',', num_args = 1, value_name = "A,B")]
        runs: Vec<i64>,
        /// Print analytics.json to stdout instead of the summary.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        input: InputArgs,
        #[command(flatten)]
        db: state_cmds::DbArgs,
    },
    /// Does the cluster model tell the truth? Assess the accounts as of each date (deals and
    /// events as of that date) and measure, per cluster and tier, the share that opened a deal
    /// and that won one within each horizon after it: Wilson 95% intervals, lift over the base
    /// rate, and the playbook's claims checked. Writes backtest.json.
    Backtest {
        /// Directory holding accounts.csv and deals.csv (and engagement, triggers).
        dir: Option<PathBuf>,
        /// Dates to assess at, comma-separated (YYYY-MM-DD or RFC 3339).
        #[arg(long, value_delimiter = ',', value_parser = parse_as_of, required = true)]
        at: Vec<Instant>,
        /// Horizons in days, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "90,180")]
        horizon: Vec<u32>,
        /// Output directory.
        #[arg(long, default_value = "backtest")]
        out: PathBuf,
        /// Print backtest.json to stdout instead of the table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        input: InputArgs,
    },
    /// ICP tools.
    #[command(subcommand)]
    Icp(IcpCommand),
    /// The segments `abm analyze` reports: [[segments]] of abm.toml and the built-ins.
    #[command(subcommand)]
    Segments(SegmentsCommand),
    /// Config tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    #[command(flatten)]
    State(state_cmds::StateCommand),
    /// Sync with a CRM: pull, import, run, write the results back (see the README's "CRM sync").
    #[command(subcommand)]
    Sync(sync_cmds::SyncCommand),
    /// The outbox of CRM writes: list, retry, drop.
    #[command(subcommand)]
    Outbox(sync_cmds::OutboxCommand),
    /// News feeds → triggers.
    #[command(subcommand)]
    News(sync_cmds::NewsCommand),
    /// Fill the stored accounts' missing fields from a file keyed by domain, or from the
    /// provider [enrich] configures (a file or an HTTP API, cached); never overwrites.
    Enrich(sync_cmds::EnrichArgs),
    /// Serve the JSON API and the MCP tools at /mcp (bearer tokens with roles; OpenAPI at
    /// /openapi.json).
    Serve(serve_cmds::ServeArgs),
    /// The engine's MCP tools for AI agents, on stdin/stdout.
    Mcp(serve_cmds::McpArgs),
    /// The API's bearer tokens: create, list, revoke.
    #[command(subcommand)]
    Token(serve_cmds::TokenCommand),
    /// Generate a synthetic data set in the canonical formats.
    Sample {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 300)]
        accounts: u64,
        /// Average engagement events per account.
        #[arg(long, default_value_t = 12.0)]
        events_per_account: f64,
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
}

#[derive(Subcommand)]
enum SegmentsCommand {
    /// Every segment: the configured ones, then the built-ins by cluster and tier (and, in
    /// Future Pipeline, by micro-segment, named by the data); with a database, the versions
    /// of each definition its runs recorded.
    List {
        #[command(flatten)]
        db: state_cmds::DbArgs,
    },
    /// One segment: its description and criteria; with a database, every stored version and
    /// the runs made with it.
    Show {
        name: String,
        #[command(flatten)]
        db: state_cmds::DbArgs,
    },
}

#[derive(Subcommand)]
enum IcpCommand {
    /// Learn an ICP from outcomes before a date: per attribute value or numeric band its rate,
    /// lift over the base rate (Wilson 95% interval) and support; the values that lift the
    /// outcome become criteria and points, written as an abm.toml fragment; its tier A is
    /// judged on the outcomes after the date.
    Learn {
        /// Directory holding accounts.csv and deals.csv.
        dir: Option<PathBuf>,
        /// Learn from outcomes up to this date; judge on those after it.
        #[arg(long, value_parser = parse_as_of)]
        before: Instant,
        /// What to predict: won (a won deal), opportunity (a deal opened) or revenue.
        #[arg(long, default_value = "won", value_parser = ["won", "opportunity", "revenue"])]
        target: String,
        /// Accounts a value needs before it may become a criterion.
        #[arg(long, default_value_t = 20)]
        min_support: u64,
        /// The lift over the base rate a value needs.
        #[arg(long, default_value_t = 1.2)]
        min_lift: f64,
        /// Where to write the abm.toml fragment.
        #[arg(long, default_value = "icp.toml")]
        out: PathBuf,
        /// Print the attribute table as JSON to stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        input: InputArgs,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the rule changes from OLD to NEW in words.
    Diff { old: PathBuf, new: PathBuf },
}

/// Whether the loaded config's criteria are the built-in ones (no config file, or criteria
/// equal to the defaults): a default criterion over an absent field is left out of the points
/// possible, while one the user wrote must name a field an input has.
static DEFAULT_CRITERIA: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Issue 14: a criterion or value map naming a field that the accounts file does not have
/// scores every account 0 without a word. It is an error naming the key and the closest
/// field (a warning with `--allow-missing-fields`). Reads only the file's header.
pub(crate) fn check_fields(
    config: &Config,
    accounts: &Path,
    opts: &LoadOptions<'_>,
    allow: bool,
) -> Result<()> {
    // A file that cannot be read is the loader's to report, after its own checks.
    let Ok(src) = opts.open(accounts, abm_io::FileKind::Accounts) else {
        return Ok(());
    };
    let fields: Vec<String> = abm_io::load::AccountLayout::of(&src)
        .schema
        .columns()
        .to_vec();
    let has = |f: &str| fields.iter().any(|c| c.eq_ignore_ascii_case(f.trim()));
    let mut named: Vec<(String, String)> = Vec::new();
    if !DEFAULT_CRITERIA.load(std::sync::atomic::Ordering::Relaxed) {
        for (i, c) in config.icp.criteria.iter().enumerate() {
            named.push((format!("icp.criteria[{i}].field"), c.field().to_string()));
        }
    }
    for field in config.values.keys().filter(|k| *k != "event_types") {
        named.push((format!("values.{field}"), field.clone()));
    }
    for (key, field) in named {
        if has(&field) {
            continue;
        }
        let closest = fields
            .iter()
            .min_by_key(|c| edit_distance(&c.to_lowercase(), &field.to_lowercase()))
            .map(|c| format!("; the closest is {c:?}"))
            .unwrap_or_default();
        let msg = format!(
            "config: `{key}` names the field {field:?}, which {} does not have{closest} \
             (fields: {})",
            src.name,
            fields.join(", ")
        );
        if allow {
            eprintln!("abm: warning: {msg}");
        } else {
            bail!("{msg}; pass --allow-missing-fields to go on anyway");
        }
    }
    Ok(())
}

/// Levenshtein distance (characters).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + (ca != *cb) as usize)
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `1 account`, `2 accounts`.
pub(crate) fn count(n: u64, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        _ => format!("{n} {noun}s"),
    }
}

fn load_config(path: Option<&Path>) -> Result<Config> {
    let path = match path {
        Some(p) => Some(p.to_path_buf()),
        None => Some(PathBuf::from("abm.toml")).filter(|p| p.is_file()),
    };
    // Value maps widen the criteria (`abm_io::values::expand_values`): scoring then reads the
    // file's labels as they are.
    match path {
        None => Ok(abm_io::values::expand_values(&Config::default())),
        Some(p) => {
            let text = std::fs::read_to_string(&p)
                .with_context(|| format!("reading config {}", p.display()))?;
            let config =
                Config::from_toml(&text).with_context(|| format!("config {}", p.display()))?;
            for w in config.warnings() {
                eprintln!("abm: warning: config {}: {w}", p.display());
            }
            DEFAULT_CRITERIA.store(
                config.icp.criteria == Config::default().icp.criteria,
                std::sync::atomic::Ordering::Relaxed,
            );
            Ok(abm_io::values::expand_values(&config))
        }
    }
}

/// Refuse, before anything is written, to write an output over one of the inputs (issue 11
/// #7: `--rejected DIR/engagement.csv` replaced the engagement file).
pub(crate) fn refuse_inputs_as_outputs(outputs: &[PathBuf], inputs: &[&Path]) -> Result<()> {
    for o in outputs {
        abm_io::output::refuse_input(o, inputs)?;
    }
    Ok(())
}

fn now() -> Instant {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Instant(d.as_micros() as i64)
}

fn main() -> ExitCode {
    // Freed memory goes back to the system at once rather than 10 ms later: an import frees
    // and allocates hundreds of MB in bursts, and the delay held them twice (peak RSS at 1M
    // accounts 1,039 -> 965 MB, and faster). `mi_option_purge_delay` is option 15 of
    // mimalloc's `mi_option_e` (mimalloc.h of the bundled v3).
    // SAFETY: sets a process-wide option; no memory is touched.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // `abm … | head` must not fail loudly.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            let mut msg = format!("error: {e}");
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    msg.push_str(&format!("\n  caused by: {c}"));
                }
            }
            // Errors may quote data (a value, a path): no terminal escapes from it.
            eprintln!("{}", term::escape_controls(&msg));
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let quiet = cli.quiet;
    abm_io::output::set_csv_raw(cli.csv_raw);
    match cli.command {
        Command::State(cmd) => state_cmds::run(cmd, cli.config.as_deref(), quiet)?,
        Command::Sync(cmd) => sync_cmds::sync(cmd, cli.config.as_deref(), quiet)?,
        Command::Outbox(cmd) => sync_cmds::outbox(cmd, quiet)?,
        Command::News(cmd) => sync_cmds::news(cmd, cli.config.as_deref(), quiet)?,
        Command::Enrich(args) => sync_cmds::enrich(args, cli.config.as_deref(), quiet)?,
        Command::Serve(args) => serve_cmds::serve(args, cli.config.as_deref())?,
        Command::Mcp(args) => serve_cmds::mcp(args, cli.config.as_deref())?,
        Command::Token(cmd) => serve_cmds::token(cmd, cli.config.as_deref())?,
        Command::Init { path, force } => {
            if path.exists() && !force {
                bail!("{} exists (use --force to overwrite)", path.display());
            }
            std::fs::write(&path, config_file::commented_default())
                .with_context(|| format!("writing {}", path.display()))?;
            outln!(
                "wrote {} (the default rules, with comments; see docs/config.md)",
                path.display()
            )?;
        }
        Command::Demo { out, accounts } => {
            let config = load_config(cli.config.as_deref())?;
            let data = out.join("data");
            let spec = SampleSpec {
                accounts,
                ..SampleSpec::default()
            };
            let counts = write_sample(&data, &spec)
                .with_context(|| format!("writing the sample to {}", data.display()))?;
            outln!(
                "Sample: {} accounts, {} engagement events, {} triggers, {} deals in {}",
                counts.accounts,
                counts.events,
                counts.triggers,
                counts.deals,
                data.display()
            )?;
            let as_of = Instant::parse(SAMPLE_AS_OF).expect("valid");
            let rules = Rules::compile(&config, as_of)?;
            let pb = progress::Bars::new(quiet);
            let bar = |l: &str, d, t| pb.update(l, d, t);
            let opts = InputArgs::default().load_options(&config, &bar)?;
            let paths = InputPaths::default().resolve(Some(&data))?;
            let report = segment(
                &paths,
                &rules,
                &opts,
                &out,
                Formats::default(),
                &|l, d, t| pb.update(l, d, t),
            )?;
            pb.finish();
            print_summary(&report, &config.capacity)?;
            print_cluster_tables(&report.out_dir.join("cluster_assignments.csv"))?;
            outln!(
                "\nNext: `abm explain {} {} --as-of {}` shows the whole reasoning for one account.",
                first_active_focus(&report.out_dir).unwrap_or_else(|| "ACC-0001".into()),
                data.display(),
                SAMPLE_AS_OF
            )?;
            let db =
                demo::build(&out, &data, &config, as_of).context("building the demo database")?;
            outln!(
                "\nDemo database: {} ({} runs, {} movements, {} checkpoints pending review).",
                db.path.display(),
                db.runs,
                db.movements,
                db.pending
            )?;
            outln!(
                "Open the dashboard: `abm serve --db {}` prints its URL and a first admin token.",
                db.path.display()
            )?;
        }
        Command::Segment {
            dir,
            as_of,
            out,
            input,
            mut formats,
            timings,
            segment_column,
        } => {
            let config = load_config(cli.config.as_deref())?;
            formats.segment_column = segment_column || config.analytics.segment_column;
            if formats.segment_column && config.segments.is_empty() {
                eprintln!("abm: warning: --segment-column without [[segments]] in the config: the column is empty");
            }
            let rules = Rules::compile(&config, as_of.unwrap_or_else(now))?;
            let pb = progress::Bars::new(quiet);
            let bar = |l: &str, d, t| pb.update(l, d, t);
            let opts = input.load_options(&config, &bar)?;
            let paths = input.paths().resolve(dir.as_deref())?;
            check_fields(&config, &paths.accounts, &opts, input.allow_missing_fields)?;
            let report = segment(&paths, &rules, &opts, &out, formats, &|l, d, t| {
                pb.update(l, d, t)
            })?;
            pb.finish();
            print_summary(&report, &config.capacity)?;
            if timings {
                let mut cpu = (0.0, 0.0);
                for stage in &report.timings {
                    let (user, sys) = (stage.cpu.0 - cpu.0, stage.cpu.1 - cpu.1);
                    cpu = stage.cpu;
                    let memory = stage
                        .memory
                        .map(|(anon, peak)| {
                            format!(
                                "   anon {:>6.1} MiB, peak RSS {:>6.1} MiB",
                                anon as f64 / 1048576.0,
                                peak as f64 / 1048576.0
                            )
                        })
                        .unwrap_or_default();
                    eprintln!(
                        "  {:<22} {:>6.3} s   cpu {user:>5.2} user {sys:>5.2} sys{memory}",
                        stage.name,
                        stage.elapsed.as_secs_f64()
                    );
                }
            }
            // The big in-memory state is dropped by the OS on exit.
            std::mem::forget(report);
        }
        Command::Explain {
            account_id,
            dir,
            as_of,
            json,
            input,
            db,
        } => {
            let config = load_config(cli.config.as_deref())?;
            let explained = if dir.is_some() || input.accounts.is_some() {
                let rules = Rules::compile(&config, as_of.unwrap_or_else(now))?;
                let opts = input.load_options(&config, &abm_io::load::no_progress)?;
                let paths = input.paths().resolve(dir.as_deref())?;
                check_fields(&config, &paths.accounts, &opts, input.allow_missing_fields)?;
                abm_io::explain::explain(&account_id, &paths, &rules, &opts)?
            } else {
                state_cmds::explain(&db, &config, &account_id, as_of)?
            };
            if json {
                let text = serde_json::to_string_pretty(&explained)? + "\n";
                std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())?;
            } else {
                term::print_str(&explained.to_text())?;
            }
        }
        Command::Whatif {
            dir,
            config_new,
            as_of,
            out,
            json,
            show,
            input,
            db,
        } => {
            let old_cfg = load_config(cli.config.as_deref())?;
            let new_cfg = load_config(Some(&config_new))?;
            let on_files = dir.is_some() || input.accounts.is_some();
            let report = if on_files {
                let as_of = as_of.unwrap_or_else(now);
                let (old, new) = (
                    Rules::compile(&old_cfg, as_of)?,
                    Rules::compile(&new_cfg, as_of)?,
                );
                let pb = progress::Bars::new(quiet);
                let bar = |l: &str, d, t| pb.update(l, d, t);
                let opts = input.load_options(&old_cfg, &bar)?;
                let paths = input.paths().resolve(dir.as_deref())?;
                let run = abm_io::whatif::whatif(&paths, &old, &new, &opts)?;
                pb.finish();
                if run.rejected_rows > 0 && !json {
                    eprintln!(
                        "abm: {} input rows rejected (`abm segment` writes them to rejected_rows.csv)",
                        run.rejected_rows
                    );
                }
                run.report
            } else {
                state_cmds::preview(&db, &old_cfg, &new_cfg, as_of, input.threads, quiet)?
            };
            if let Some(out) = &out {
                let inputs = [config_new.as_path()];
                abm_io::whatif::write_whatif(out, &report, &inputs, &tuning_from_env()?)?;
            }
            if json {
                let text = serde_json::to_string_pretty(&report)? + "\n";
                std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())?;
            } else {
                print_whatif(&report, show, out.as_deref())?;
            }
        }
        Command::Analyze {
            dir,
            from,
            to,
            as_of,
            spend,
            out,
            backtest_at,
            horizon,
            runs,
            json,
            input,
            db,
        } => {
            if horizon.is_empty() || horizon.contains(&0) {
                bail!("--horizon: give one or more horizons in days, each above 0");
            }
            if from > to {
                bail!(
                    "--from {} is after --to {}",
                    from.date_string(),
                    to.date_string()
                );
            }
            let config = load_config(cli.config.as_deref())?;
            let period = abm_analytics::Period::of_days(from, to, as_of);
            let on_files = dir.is_some() || input.accounts.is_some();
            let spend = spend.or_else(|| {
                dir.as_ref()
                    .map(|d| d.join("spend.csv"))
                    .filter(|p| p.is_file())
            });
            let spend_rows = spend.as_deref().map(analyze::read_spend).transpose()?;
            let runs = match runs[..] {
                [] => None,
                [a, b] => Some((a, b)),
                _ => bail!("--runs: give two run ids, A,B (see `abm summary`)"),
            };
            let (mut run, paths) = if on_files {
                if runs.is_some() {
                    bail!("--runs compares recorded runs: leave out DIR to analyze the database");
                }
                let opts = input.load_options(&config, &abm_io::load::no_progress)?;
                let paths = input.paths().resolve(dir.as_deref())?;
                check_fields(&config, &paths.accounts, &opts, input.allow_missing_fields)?;
                let mut run =
                    analyze::analyze(&paths, &config, period, spend_rows.as_deref(), &opts)?;
                if !backtest_at.is_empty() {
                    if paths.deals.is_none() {
                        bail!("--backtest-at needs a deals file (DIR/deals.csv or --deals FILE)");
                    }
                    let b = analyze::backtest(&paths, &config, &backtest_at, &horizon, &opts)?;
                    run.analytics.backtest = Some(serde_json::to_value(&b)?);
                }
                (run, Some(paths))
            } else {
                if !backtest_at.is_empty() {
                    bail!("--backtest-at reads files: give DIR (or use `abm backtest DIR`)");
                }
                let app = state_cmds::open_app(&db, false, config.clone())?;
                let req = abm_app::analytics::StoredAnalysis {
                    period,
                    spend: spend_rows.as_deref(),
                    runs,
                    threads: input.threads.unwrap_or_else(abm_io::default_threads),
                };
                let analytics = app.analyze(&req)?;
                (
                    analyze::AnalyzeRun {
                        analytics,
                        rejected_rows: 0,
                    },
                    None,
                )
            };
            if run.analytics.backtest.is_none() {
                run.analytics.notes.push(
                    "backtest is null: with --backtest-at on files (or `abm backtest`)".into(),
                );
            }
            run.analytics
                .notes
                .push("icp_discovery is null: see `abm icp learn`".into());
            let inputs: Vec<&Path> = paths
                .iter()
                .flat_map(|paths| {
                    std::iter::once(paths.accounts.as_path())
                        .chain(paths.engagement.as_deref())
                        .chain(paths.more_engagement.iter().map(PathBuf::as_path))
                        .chain(paths.triggers.as_deref())
                        .chain(paths.deals.as_deref())
                })
                .chain(spend.as_deref())
                .collect();
            let written = analyze::write_outputs(&out, &run, &inputs)?;
            if json {
                let text = serde_json::to_string_pretty(&run.analytics)? + "\n";
                std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())?;
            } else {
                print_analytics(&run, &written)?;
            }
        }
        Command::Backtest {
            dir,
            at,
            horizon,
            out,
            json,
            input,
        } => {
            if horizon.is_empty() || horizon.contains(&0) {
                bail!("--horizon: give one or more horizons in days, each above 0");
            }
            let config = load_config(cli.config.as_deref())?;
            let opts = input.load_options(&config, &abm_io::load::no_progress)?;
            let paths = input.paths().resolve(dir.as_deref())?;
            if paths.deals.is_none() {
                bail!("abm backtest needs a deals file (DIR/deals.csv or --deals FILE)");
            }
            check_fields(&config, &paths.accounts, &opts, input.allow_missing_fields)?;
            let b = analyze::backtest(&paths, &config, &at, &horizon, &opts)?;
            let inputs: Vec<&Path> = std::iter::once(paths.accounts.as_path())
                .chain(paths.deals.as_deref())
                .collect();
            let p = analyze::write_json_set(&out, "backtest.json", &b, &inputs)?;
            if json {
                let text = serde_json::to_string_pretty(&b)? + "\n";
                std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())?;
            } else {
                print_backtest(&b)?;
                outln!("  wrote {}", p.display())?;
            }
        }
        Command::Icp(IcpCommand::Learn {
            dir,
            before,
            target,
            min_support,
            min_lift,
            out,
            json,
            input,
        }) => {
            let config = load_config(cli.config.as_deref())?;
            let opts = input.load_options(&config, &abm_io::load::no_progress)?;
            let paths = input.paths().resolve(dir.as_deref())?;
            check_fields(&config, &paths.accounts, &opts, input.allow_missing_fields)?;
            let lo = abm_analytics::learn::LearnOptions {
                target: abm_analytics::learn::Target::parse(&target).expect("clap checked"),
                before,
                min_support,
                min_lift,
            };
            let learned = analyze::icp_learn(&paths, &config, &lo, &opts)?;
            if json {
                let text = serde_json::to_string_pretty(&learned)? + "\n";
                std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())?;
            } else {
                print_learned(&learned)?;
            }
            if learned.icp.criteria.is_empty() {
                bail!(
                    "nothing learned ({}); {} not written",
                    learned.notes.join("; "),
                    out.display()
                );
            }
            let text = analyze::icp_fragment(&learned, &config)?;
            let inputs: Vec<&Path> = std::iter::once(paths.accounts.as_path())
                .chain(paths.deals.as_deref())
                .chain(cli.config.as_deref())
                .collect();
            let mut f = abm_io::output::AtomicFile::create_checked(&out, &inputs)
                .with_context(|| format!("writing {}", out.display()))?;
            std::io::Write::write_all(&mut f.out, text.as_bytes())?;
            f.commit()
                .with_context(|| format!("writing {}", out.display()))?;
            if !json {
                outln!(
                    "  wrote {} (use it with `abm --config {} …`)",
                    out.display(),
                    out.display()
                )?;
            }
        }
        Command::Segments(cmd) => {
            let config = load_config(cli.config.as_deref())?;
            match cmd {
                SegmentsCommand::List { db } => {
                    let versions = state_cmds::segment_versions(&db)?;
                    print_segments(&config, versions.as_deref())?;
                }
                SegmentsCommand::Show { name, db } => {
                    let versions = state_cmds::segment_versions(&db)?.unwrap_or_default();
                    let stored: Vec<_> = versions.iter().filter(|v| v.name == name).collect();
                    let configured = config.segments.iter().find(|s| s.name == name);
                    if configured.is_none() && stored.is_empty() {
                        let names: Vec<&str> =
                            config.segments.iter().map(|s| s.name.as_str()).collect();
                        bail!(
                            "no segment {name:?} in the config or the database (segments: {})",
                            if names.is_empty() {
                                "none".to_string()
                            } else {
                                names.join(", ")
                            }
                        );
                    }
                    if let Some(s) = configured {
                        outln!("{}: {}", s.name, s.description)?;
                        let current = stored
                            .iter()
                            .find(|v| v.fingerprint == s.fingerprint())
                            .map_or("not recorded by a run yet".to_string(), |v| {
                                format!("version {}", v.version)
                            });
                        outln!("In the config ({current}); an account is in it when every criterion holds:")?;
                        for c in s.describe() {
                            outln!("  {c}")?;
                        }
                    }
                    for v in stored.iter().rev() {
                        outln!(
                            "\nversion {} ({}): runs {}–{} ({} run{})",
                            v.version,
                            v.fingerprint,
                            v.first_run,
                            v.last_run,
                            v.runs,
                            if v.runs == 1 { "" } else { "s" }
                        )?;
                        if !v.definition.description.is_empty() {
                            outln!("  {}", v.definition.description)?;
                        }
                        for c in v.definition.describe() {
                            outln!("  {c}")?;
                        }
                    }
                }
            }
        }
        Command::Config(ConfigCommand::Diff { old, new }) => {
            let read = |p: &Path| -> Result<(Config, String)> {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading config {}", p.display()))?;
                let cfg =
                    Config::from_toml(&text).with_context(|| format!("config {}", p.display()))?;
                Ok((cfg, text))
            };
            let (a, _) = read(&old)?;
            let (b, _) = read(&new)?;
            let lines = abm_core::config_diff::diff(&a, &b);
            if lines.is_empty() {
                outln!("No rule changes: both configs give the same rules.")?;
            }
            for l in lines {
                outln!("{l}")?;
            }
        }
        Command::Sample {
            out,
            accounts,
            events_per_account,
            seed,
        } => {
            let spec = SampleSpec {
                accounts,
                events_per_account,
                seed,
                ..SampleSpec::default()
            };
            let c = write_sample(&out, &spec)?;
            outln!(
                "wrote {} accounts, {} events, {} triggers, {} deals to {} (as_of {SAMPLE_AS_OF})",
                c.accounts,
                c.events,
                c.triggers,
                c.deals,
                out.display()
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn fmt_rate(v: Option<f64>) -> String {
    v.map_or("–".to_string(), |v| format!("{:.1}%", v * 100.0))
}

fn fmt_lift(v: Option<f64>, ci: Option<[f64; 2]>) -> String {
    match (v, ci) {
        (Some(l), Some([a, b])) => format!("{l:.2}× ({a:.2}–{b:.2})"),
        (Some(l), None) => format!("{l:.2}×"),
        _ => "–".into(),
    }
}

fn print_backtest(b: &analyze::Backtest) -> Result<()> {
    for r in &b.results {
        outln!(
            "\nAssessed as of {}, outcomes within {} days: {} accounts, {} opened a deal ({}), {} won ({})",
            r.at,
            r.horizon_days,
            r.base.accounts,
            r.base.opened.count,
            fmt_rate(r.base.opened.rate),
            r.base.won.count,
            fmt_rate(r.base.won.rate)
        )?;
        outln!(
            "  {:<16} {:>9} {:>8} {:>22} {:>8} {:>22}",
            "group",
            "accounts",
            "opened",
            "lift (95% interval)",
            "won",
            "lift (95% interval)"
        )?;
        for row in r.by_cluster.iter().chain(&r.by_tier) {
            outln!(
                "  {:<16} {:>9} {:>8} {:>22} {:>8} {:>22}",
                row.key,
                row.accounts,
                fmt_rate(row.opened.rate),
                fmt_lift(row.opened.lift, row.opened.lift_ci),
                fmt_rate(row.won.rate),
                fmt_lift(row.won.lift, row.won.lift_ci)
            )?;
        }
        for c in &r.checks {
            let verdict = match c.holds {
                Some(true) => "holds",
                Some(false) => "does NOT hold",
                None => "cannot tell",
            };
            outln!("  claim: {} — {verdict}: {}", c.claim, c.evidence)?;
        }
    }
    for n in &b.notes {
        outln!("  note: {n}")?;
    }
    Ok(())
}

fn print_learned(l: &abm_analytics::learn::Learned) -> Result<()> {
    outln!(
        "ICP discovery: {} accounts, target {}, learned from outcomes up to {}",
        l.accounts,
        l.target.as_str(),
        l.before
    )?;
    outln!(
        "  base rate before: {}; after: {}",
        l.base_rate_before.map_or("–".into(), |v| format!("{v:.4}")),
        l.base_rate_after.map_or("–".into(), |v| format!("{v:.4}"))
    )?;
    outln!(
        "  {:<18} {:<24} {:>8} {:>10} {:>22} {:>7}",
        "field",
        "value",
        "support",
        "rate",
        "lift (95% interval)",
        "points"
    )?;
    for r in l.attributes.iter().take(25) {
        outln!(
            "  {:<18} {:<24} {:>8} {:>10.4} {:>22} {:>7}",
            r.field,
            r.value,
            r.support,
            r.rate,
            fmt_lift(r.lift, r.lift_ci),
            r.points
        )?;
    }
    outln!("  After the date (a time split), by tier: learned | current config")?;
    for (a, b) in l.after_learned.iter().zip(&l.after_current) {
        outln!(
            "  tier {}: {:>6} accounts, lift {:<20} | {:>6} accounts, lift {}",
            a.tier,
            a.accounts,
            fmt_lift(a.lift, a.lift_ci),
            b.accounts,
            fmt_lift(b.lift, b.lift_ci)
        )?;
    }
    for n in &l.notes {
        outln!("  note: {n}")?;
    }
    Ok(())
}

/// `abm segments list`: the configured segments (with the version a run recorded them as),
/// the stored versions no longer configured, then the built-ins.
fn print_segments(
    config: &Config,
    versions: Option<&[abm_store::segments::SegmentVersion]>,
) -> Result<()> {
    if config.segments.is_empty() {
        outln!("No [[segments]] in the config (see docs/config.md); the built-ins:")?;
    }
    let stored = versions.unwrap_or_default();
    for s in &config.segments {
        let fp = s.fingerprint();
        let of_name: Vec<_> = stored.iter().filter(|v| v.name == s.name).collect();
        let version = match of_name.iter().find(|v| v.fingerprint == fp) {
            Some(v) => format!(" [version {} of {}]", v.version, of_name.len()),
            None if versions.is_some() => " [not recorded by a run yet]".to_string(),
            None => String::new(),
        };
        outln!("{:<28} {}{version}", s.name, s.description)?;
        let d = s.describe();
        if d.is_empty() {
            outln!("{:<28}   every account", "")?;
        }
        for c in d {
            outln!("{:<28}   {c}", "")?;
        }
    }
    let gone: std::collections::BTreeSet<&str> = stored
        .iter()
        .map(|v| v.name.as_str())
        .filter(|n| !config.segments.iter().any(|s| s.name == *n))
        .collect();
    for name in gone {
        let last = stored.iter().rfind(|v| v.name == name).expect("listed");
        outln!(
            "{name:<28} not in the config any more (version {}, last run {}; `abm segments show {name}`)",
            last.version,
            last.last_run
        )?;
    }
    let track = config.customers.mode == abm_core::config::CustomerMode::Track;
    for c in Cluster::listed(track as u64) {
        outln!("cluster:{:<20} cluster {}", c.as_str(), c.label())?;
    }
    for t in abm_core::Tier::ALL {
        outln!("tier:{:<23} ICP tier {}", t.as_str(), t.as_str())?;
    }
    outln!(
        "{:<28} Future Pipeline micro-segments, as the data names them",
        "micro:CHALLENGE/VERTICAL/STAGE"
    )?;
    Ok(())
}

fn print_analytics(run: &analyze::AnalyzeRun, written: &[PathBuf]) -> Result<()> {
    let a = &run.analytics;
    let t = &a.total.row;
    let pct = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{:.1}%", v * 100.0));
    outln!(
        "Segment analytics {} to {} (clusters as of {})",
        a.period.from,
        a.period.to,
        a.period.as_of
    )?;
    outln!(
        "  {} accounts, {} customers; won {}, lost {}, open {}; win rate {}",
        t.accounts,
        t.customers,
        t.won,
        t.lost,
        t.open,
        pct(t.win_rate)
    )?;
    outln!(
        "  {:<28} {:>9} {:>5} {:>5} {:>9} {:>15}  recommendation",
        "segment",
        "accounts",
        "won",
        "lost",
        "win rate",
        "won revenue"
    )?;
    for s in a
        .segments
        .iter()
        .filter(|s| s.kind != abm_analytics::GroupKind::MicroSegment)
    {
        let r = &s.row;
        outln!(
            "  {:<28} {:>9} {:>5} {:>5} {:>9} {:>15}  {}",
            r.key,
            r.accounts,
            r.won,
            r.lost,
            pct(r.win_rate),
            r.won_revenue.map_or("–".to_string(), |v| format!("{v:.0}")),
            s.recommendation.as_str()
        )?;
    }
    if let Some(m) = &a.migration {
        outln!(
            "  migration run {} → run {}: {} of {} accounts changed segment, {} changed cluster",
            m.from.run,
            m.to.run,
            m.by_segment.moved,
            m.by_segment.accounts,
            m.by_cluster.moved
        )?;
    }
    if let Some(c) = &a.forecast.capacity {
        for k in &c.clusters {
            outln!("  capacity: {}", k.advice)?;
        }
    }
    if run.rejected_rows > 0 {
        outln!(
            "  rejected rows: {} (`abm segment` lists them in rejected_rows.csv)",
            run.rejected_rows
        )?;
    }
    for p in written {
        outln!("  wrote {}", p.display())?;
    }
    Ok(())
}

fn print_summary(r: &SegmentReport, cap: &abm_core::config::CapacityConfig) -> Result<()> {
    let s = &r.summary;
    outln!(
        "\nCluster summary as of {} (config {})",
        s.as_of,
        s.config_hash
    )?;
    let row = |label: &str, n: u64, range: Option<&abm_core::config::CapacityRange>| {
        let range = range
            .map(|r| format!("(recommended {})", r.describe(s.accounts)))
            .unwrap_or_default();
        outln!("  {label:<16} {n:>9}  {range}")
    };
    row("Cluster ICP", s.cluster_icp_count, Some(&cap.cluster_icp))?;
    row(
        "Future Pipeline",
        s.future_pipeline_count,
        Some(&cap.future_pipeline),
    )?;
    row(
        "Active Focus",
        s.active_focus_count,
        Some(&cap.active_focus),
    )?;
    row("Monitor Only", s.monitor_only_count, None)?;
    if s.customer_count > 0 {
        row("Customer", s.customer_count, cap.customer.as_ref())?;
    }
    outln!("  {:<16} {:>9}", "accounts", s.accounts)?;
    for n in &s.notes {
        outln!("  note: {n}")?;
    }
    if !s.criteria_without_data.is_empty() {
        outln!(
            "  criteria without data (left out of the points possible): {}",
            s.criteria_without_data.join(", ")
        )?;
    }
    for w in &s.capacity.warnings {
        outln!("  warning: {w}")?;
    }
    for (k, v) in &s.checkpoints {
        if *v > 0 {
            outln!("  checkpoint {k}: {v}")?;
        }
    }
    if s.rejected_rows > 0 {
        outln!(
            "  rejected rows: {} (see {})",
            s.rejected_rows,
            r.out_dir.join("rejected_rows.csv").display()
        )?;
        for rj in r.rejects.rows.iter().take(5) {
            outln!("    {rj}")?;
        }
    } else {
        outln!("  rejected rows: 0")?;
    }
    outln!("  outputs: {}", r.out_dir.display())?;
    Ok(())
}

fn print_cluster_tables(path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path)?;
    let mut rows: Vec<Vec<String>> = Vec::new();
    abm_io::csv::for_each_record(text.as_bytes(), 1, |r| {
        rows.push(
            (0..r.len())
                .map(|i| String::from_utf8_lossy(r.get(i)).into_owned())
                .collect(),
        )
    });
    let header = rows.remove(0);
    let col = |n: &str| header.iter().position(|h| h == n).expect("column");
    let (id, name, score, tier, eng, cl, next) = (
        col("account_id"),
        col("name"),
        col("icp_score"),
        col("tier"),
        col("engagement_level"),
        col("cluster"),
        col("next_action"),
    );
    let customers = rows.iter().any(|r| r[cl] == Cluster::Customer.as_str());
    for c in [
        Cluster::ActiveFocus,
        Cluster::FuturePipeline,
        Cluster::ClusterIcp,
        Cluster::MonitorOnly,
        Cluster::Customer,
    ] {
        if c == Cluster::Customer && !customers {
            continue;
        }
        let mut of: Vec<&Vec<String>> = rows.iter().filter(|r| r[cl] == c.as_str()).collect();
        of.sort_by(|a, b| {
            let s = |r: &Vec<String>| r[score].parse::<f64>().unwrap_or(0.0);
            s(b).total_cmp(&s(a)).then(a[id].cmp(&b[id]))
        });
        outln!(
            "\n{} — {} (top 5 by ICP score)",
            c.label(),
            count(of.len() as u64, "account")
        )?;
        for r in of.iter().take(5) {
            let mut na = r[next].clone();
            if na.chars().count() > 90 {
                na = na.chars().take(89).collect::<String>() + "…";
            }
            outln!(
                "  {:<10} {:<26} {:>5} {} {:<7} {}",
                r[id],
                r[name],
                r[score],
                r[tier],
                r[eng],
                na
            )?;
        }
    }
    Ok(())
}

fn print_whatif(w: &abm_core::whatif::WhatIf, show: usize, out: Option<&Path>) -> Result<()> {
    use std::fmt::Write;
    let mut o = String::new();
    writeln!(
        o,
        "What-if as of {}: {} compared, {} change cluster, {} change tier",
        w.as_of,
        count(w.accounts_compared, "account"),
        w.changed,
        w.tier_changed
    )?;
    writeln!(o, "\nClusters (rows: now, columns: with the new config)")?;
    let listed = Cluster::listed(w.matrix.contains_key(Cluster::Customer.as_str()) as u64);
    let labels: Vec<&str> = listed.iter().map(|c| c.label()).collect();
    write!(o, "  {:<16}", "")?;
    for l in &labels {
        write!(o, " {l:>16}")?;
    }
    writeln!(o)?;
    for &from in listed {
        write!(o, "  {:<16}", from.label())?;
        for &to in listed {
            let n = w.matrix[from.as_str()][to.as_str()];
            write!(o, " {n:>16}")?;
        }
        writeln!(o)?;
    }
    writeln!(o, "\nTiers (rows: now, columns: with the new config)")?;
    write!(o, "  {:<3}", "")?;
    for t in abm_core::Tier::ALL {
        write!(o, " {:>9}", t.as_str())?;
    }
    writeln!(o)?;
    for from in abm_core::Tier::ALL {
        write!(o, "  {:<3}", from.as_str())?;
        for to in abm_core::Tier::ALL {
            write!(o, " {:>9}", w.tier_matrix[from.as_str()][to.as_str()])?;
        }
        writeln!(o)?;
    }
    let cap = &w.capacity;
    writeln!(o, "\nCapacity")?;
    for (when, status) in [("now", &cap.before), ("new", &cap.after)] {
        if status.warnings.is_empty() {
            writeln!(o, "  {when}: every cluster within its range")?;
        }
        for warn in &status.warnings {
            writeln!(o, "  {when}: {warn}")?;
        }
    }
    writeln!(o, "\nIn words")?;
    for l in &w.summary {
        writeln!(o, "  {l}")?;
    }
    if !w.accounts.is_empty() {
        writeln!(
            o,
            "\nAccounts that change ({} of {}; all in whatif_accounts.csv with --out)",
            show.min(w.accounts.len()),
            w.accounts.len()
        )?;
        for a in w.accounts.iter().take(show) {
            let review = if a.needs_review == Some(true) {
                " [needs review]"
            } else {
                ""
            };
            writeln!(
                o,
                "  {:<12} {} → {}  tier {} → {}{review}: {}",
                a.account_id,
                a.from.label(),
                a.to.label(),
                a.tier_from.as_str(),
                a.tier_to.as_str(),
                a.because
            )?;
        }
    }
    if let Some(out) = out {
        writeln!(
            o,
            "\nWrote {} and {}",
            out.join("whatif.json").display(),
            out.join("whatif_accounts.csv").display()
        )?;
    }
    term::print_str(&o)?;
    Ok(())
}

fn first_active_focus(out: &Path) -> Option<String> {
    let text = std::fs::read_to_string(out.join("cluster_assignments.csv")).ok()?;
    text.lines()
        .find(|l| l.contains(",active_focus,"))
        .and_then(|l| l.split(',').next())
        .map(|s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::parse_flag;

    /// Every switch is read the same way: `ABM_NO_MMAP=false` means "do map".
    #[test]
    fn switches_parse_alike() {
        for (v, want) in [
            ("1", Some(true)),
            ("TRUE", Some(true)),
            ("yes", Some(true)),
            ("on", Some(true)),
            ("0", Some(false)),
            ("false", Some(false)),
            ("No", Some(false)),
            ("off", Some(false)),
            ("", None),
        ] {
            assert_eq!(parse_flag("X", v).unwrap(), want, "{v:?}");
        }
        let e = parse_flag("ABM_NO_MMAP", "maybe").unwrap_err().to_string();
        assert!(e.contains("ABM_NO_MMAP") && e.contains("maybe"), "{e}");
    }
}
