//! The CRM commands: `abm sync hubspot` and `abm outbox list|retry|drop`. Thin: parse, open
//! the app, call `abm-connect` / the store's outbox, print.

use crate::state_cmds::DbArgs;
use crate::{load_config, parse_as_of};
use abm_connect::backoff::Backoff;
use abm_connect::http::{Client, ClientSettings};
use abm_connect::hubspot::{HubSpot, SyncOptions, SyncReport};
use abm_connect::salesforce::{Salesforce, SfSyncOptions};
use abm_core::Instant;
use abm_store::outbox::OutboxStatus;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::path::Path;
use std::time::Duration;

#[derive(Subcommand)]
pub enum SyncCommand {
    /// Pull Accounts, Opportunities, Tasks and Events from Salesforce (SOQL), import them, run,
    /// and write ABM_Cluster__c, ABM_Tier__c, ABM_ICP_Score__c, ABM_Next_Action__c back through
    /// the outbox. Reads SF_INSTANCE_URL and SF_ACCESS_TOKEN.
    Salesforce {
        /// Pull Accounts modified since this instant (default: since the last sync).
        #[arg(long, value_parser = parse_as_of)]
        since: Option<Instant>,
        /// Pull and validate only: nothing imported, run or written to Salesforce.
        #[arg(long)]
        dry_run: bool,
        /// Send what the outbox holds, without pulling or running.
        #[arg(long, conflicts_with_all = ["since", "dry_run"])]
        deliver_only: bool,
        /// The run's as_of (default: now).
        #[arg(long, value_parser = parse_as_of)]
        as_of: Option<Instant>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        http: HttpArgs,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Pull companies, engagements and deals from HubSpot, import them, run, and write the
    /// results back (company properties, one note per movement) through the outbox. The
    /// token is read from HUBSPOT_TOKEN (a private app's access token).
    Hubspot {
        /// Pull companies modified since this instant (default: since the last sync; the
        /// first sync pulls every company).
        #[arg(long, value_parser = parse_as_of)]
        since: Option<Instant>,
        /// Pull and validate only: nothing imported, run or written to HubSpot.
        #[arg(long)]
        dry_run: bool,
        /// Send what the outbox holds, without pulling or running.
        #[arg(long, conflicts_with_all = ["since", "dry_run"])]
        deliver_only: bool,
        /// The run's as_of (default: now).
        #[arg(long, value_parser = parse_as_of)]
        as_of: Option<Instant>,
        /// Print the sync report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        http: HttpArgs,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Args, Clone)]
pub struct HttpArgs {
    /// The API's address (HubSpot: https://api.hubapi.com; Salesforce: $SF_INSTANCE_URL; a
    /// local fake in tests).
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// One request's time limit, in milliseconds.
    #[arg(long, default_value_t = 30_000, value_name = "MS")]
    timeout_ms: u64,
    /// Attempts of one request within a sync (5xx, timeouts, dropped connections).
    #[arg(long, default_value_t = 8, value_name = "N")]
    max_attempts: u32,
    /// The first retry's wait ceiling, in milliseconds (doubling up to 30 s, with jitter).
    #[arg(long, default_value_t = 250, value_name = "MS")]
    retry_base_ms: u64,
}

#[derive(Subcommand)]
pub enum NewsCommand {
    /// Read RSS/Atom feeds (URLs or files), match items to the stored accounts by domain and
    /// company name, classify them into trigger types, and import them as triggers.
    Fetch {
        /// Feed URLs (http/https) or files.
        #[arg(required = true)]
        feeds: Vec<String>,
        /// Keyword/phrase rules (TOML: [[rules]] type = "funding_round", phrases = [...]);
        /// default: the built-in rules.
        #[arg(long, value_name = "FILE")]
        rules: Option<std::path::PathBuf>,
        /// Match and classify only: nothing imported.
        #[arg(long)]
        dry_run: bool,
        /// One feed's time limit, in milliseconds.
        #[arg(long, default_value_t = 30_000, value_name = "MS")]
        timeout_ms: u64,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
}

/// `abm enrich [FILE]`.
#[derive(Args)]
pub struct EnrichArgs {
    /// A CSV or JSON Lines file keyed by `domain`, with account fields (industry, employees,
    /// annual_revenue, country, …). Without it: the provider `[enrich]` configures in abm.toml
    /// (a file or an HTTP API, behind its cache).
    file: Option<std::path::PathBuf>,
    /// Show what would be filled: nothing imported.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    db: DbArgs,
}

pub fn enrich(args: EnrichArgs, config: Option<&Path>, quiet: bool) -> Result<()> {
    use abm_connect::enrich::{enrich, from_config, FileProvider, Provider};
    let config = load_config(config)?;
    let mut provider: Box<dyn Provider + Send> = match &args.file {
        Some(f) => Box::new(FileProvider::open(f)?),
        None => from_config(
            &config.enrich,
            &crate::serve_cmds::env_var(&config.enrich.token_env).unwrap_or_default(),
        )?,
    };
    let app = crate::state_cmds::open_app(&args.db, false, config)?;
    let r = enrich(&app, provider.as_mut(), args.dry_run)?;
    if !quiet {
        for w in &r.warnings {
            eprintln!("abm: warning: enrichment failed for {w}; the account is left as it is");
        }
    }
    if args.json {
        return crate::state_cmds::print_json(&r);
    }
    outln!(
        "{} accounts with a domain, {} known to the provider ({} from the cache), {} enriched, {} failed{}",
        r.looked_up,
        r.found,
        r.cached,
        r.enriched,
        r.failed,
        if args.dry_run {
            " (dry run: nothing imported)"
        } else {
            ""
        }
    )?;
    for (field, n) in &r.fields_filled {
        outln!("  {field}: {n}")?;
    }
    if let Some(i) = &r.imported {
        print_rejected(i)?;
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum OutboxCommand {
    /// The CRM writes stored for delivery, with their state, attempts and last failure.
    List {
        /// Only items in this state: pending, sending, sent, failed, dead.
        #[arg(long, value_parser = parse_status)]
        status: Option<OutboxStatus>,
        #[arg(long, default_value_t = 50, value_name = "N")]
        limit: usize,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Put failed and dead items back to pending (the next sync sends them).
    Retry {
        /// Item ids (see `abm outbox list`).
        #[arg(required_unless_present = "all")]
        ids: Vec<i64>,
        /// Every failed and dead item.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Delete items that were not delivered (pending, failed, dead): they will not be sent.
    Drop {
        #[arg(required_unless_present = "all")]
        ids: Vec<i64>,
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        #[command(flatten)]
        db: DbArgs,
    },
}

fn parse_status(s: &str) -> Result<OutboxStatus, String> {
    OutboxStatus::parse(s)
        .ok_or_else(|| format!("unknown state {s:?} (pending, sending, sent, failed, dead)"))
}

fn client(
    http: &HttpArgs,
    base_url: &str,
    token: String,
    quiet: bool,
    crm: &'static str,
) -> Client {
    let mut s = ClientSettings::new(base_url);
    s.timeout = Duration::from_millis(http.timeout_ms.max(1));
    s.max_attempts = http.max_attempts.max(1);
    s.backoff = Backoff {
        base: Duration::from_millis(http.retry_base_ms),
        ..Backoff::default()
    };
    let mut c = Client::new(s, token);
    if !quiet {
        c.set_log(Box::new(move |m| eprintln!("abm: {crm}: {m}")));
    }
    c
}

pub fn sync(cmd: SyncCommand, config: Option<&Path>, quiet: bool) -> Result<()> {
    let log = |m: &str| {
        if !quiet {
            eprintln!("abm: {m}");
        }
    };
    match cmd {
        SyncCommand::Salesforce {
            since,
            dry_run,
            deliver_only,
            as_of,
            json,
            http,
            db,
        } => {
            let token = required_env(
                "SF_ACCESS_TOKEN",
                "export an access token of a connected app (see the README's \"CRM sync\")",
            )?;
            let base = match &http.base_url {
                Some(b) => b.clone(),
                None => required_env(
                    "SF_INSTANCE_URL",
                    "e.g. https://yourcompany.my.salesforce.com",
                )?,
            };
            let config = load_config(config)?;
            let app = crate::state_cmds::open_app(&db, true, config)?;
            let mut c = client(&http, &base, token, quiet, "salesforce");
            // Salesforce limits requests per day (REQUEST_LIMIT_EXCEEDED), not per interval.
            c.set_window(1_000, Duration::from_secs(1));
            let mut sf = Salesforce::new(c);
            let opts = SfSyncOptions {
                since,
                dry_run,
                as_of,
                deliver_only,
            };
            let r = sf.sync(&app, &opts, &log).context("abm sync salesforce")?;
            if json {
                return crate::state_cmds::print_json(&r);
            }
            outln!(
                "pulled {} accounts, {} tasks and events, {} opportunities{}",
                r.accounts,
                r.activities,
                r.opportunities,
                if dry_run {
                    " (dry run: nothing stored or sent)"
                } else {
                    ""
                }
            )?;
            if let Some(i) = &r.imported {
                outln!("imported: {} rejected item(s)", i.rejected_items.len())?;
                print_rejected(i)?;
            }
            if !dry_run {
                let d = &r.delivery;
                outln!(
                    "write-back: {} account updates enqueued; {} delivered, {} found already applied, {} refused, {} left; {} requests",
                    r.updates_enqueued, d.sent, d.confirmed, d.dead, d.left, r.requests
                )?;
            }
            Ok(())
        }
        SyncCommand::Hubspot {
            since,
            dry_run,
            deliver_only,
            as_of,
            json,
            http,
            db,
        } => {
            let token = required_env(
                "HUBSPOT_TOKEN",
                "create a HubSpot private app (see the README's \"CRM sync\") and export its access token",
            )?;
            let config = load_config(config)?;
            let app = crate::state_cmds::open_app(&db, true, config)?;
            let base = http
                .base_url
                .clone()
                .unwrap_or_else(|| "https://api.hubapi.com".to_string());
            let mut hs = HubSpot::new(client(&http, &base, token, quiet, "hubspot"));
            let opts = SyncOptions {
                since,
                dry_run,
                as_of,
                deliver_only,
            };
            let report = hs.sync(&app, &opts, &log).context("abm sync hubspot")?;
            if json {
                return crate::state_cmds::print_json(&report);
            }
            print_report(&report, dry_run)?;
            let left = app.store()?.outbox_counts("hubspot")?;
            if left.dead > 0 || left.failed > 0 || left.sending > 0 {
                outln!(
                    "outbox: {} failed, {} dead, {} unconfirmed (see `abm outbox list`)",
                    left.failed,
                    left.dead,
                    left.sending
                )?;
            }
            Ok(())
        }
    }
}

/// A required environment variable, trimmed; else an error naming it and how to set it.
fn required_env(name: &str, how: &str) -> Result<String> {
    match crate::serve_cmds::env_var(name) {
        Some(v) => Ok(v),
        None => bail!("{name} is not set: {how}"),
    }
}

/// The first rejected items of an import (kind, index, field, reason).
fn print_rejected(i: &abm_app::RecordsImported) -> Result<()> {
    const SHOWN: usize = 20;
    for x in i.rejected_items.iter().take(SHOWN) {
        outln!(
            "  rejected {} #{} {}: {}",
            x.kind.as_str(),
            x.index,
            x.field,
            x.reason
        )?;
    }
    if i.rejected_items.len() > SHOWN {
        outln!(
            "  … and {} more (--json lists them all)",
            i.rejected_items.len() - SHOWN
        )?;
    }
    Ok(())
}

fn print_report(r: &SyncReport, dry_run: bool) -> Result<()> {
    outln!(
        "pulled {} companies, {} engagements, {} deals{}",
        r.companies,
        r.engagements,
        r.deals,
        if dry_run {
            " (dry run: nothing stored or sent)"
        } else {
            ""
        }
    )?;
    if let Some(i) = &r.imported {
        outln!(
            "imported: {} rejected item(s){}",
            i.rejected_items.len(),
            r.run_id.map(|id| format!("; run {id}")).unwrap_or_default()
        )?;
        print_rejected(i)?;
    }
    if !dry_run {
        let d = &r.delivery;
        outln!(
            "write-back: {} company updates and {} notes enqueued; {} delivered, {} found already applied, {} refused, {} left",
            r.updates_enqueued,
            r.notes_enqueued,
            d.sent,
            d.confirmed,
            d.dead,
            d.left
        )?;
        outln!("{} requests ({} rate-limited)", r.requests, r.rate_limited)?;
    }
    Ok(())
}

pub fn outbox(cmd: OutboxCommand, quiet: bool) -> Result<()> {
    let config = abm_core::Config::default();
    match cmd {
        OutboxCommand::List {
            status,
            limit,
            json,
            db,
        } => {
            let app = crate::state_cmds::open_app(&db, false, config)?;
            let items = app.store()?.outbox_list(status, limit)?;
            if json {
                return crate::state_cmds::print_json(&items);
            }
            if items.is_empty() {
                outln!("the outbox is empty")?;
            }
            for i in &items {
                outln!(
                    "{:>6}  {:<8} {:<15} {:<12} attempts {:<3} {}{}",
                    i.id,
                    i.status.as_str(),
                    i.kind,
                    i.target,
                    i.attempts,
                    i.key,
                    i.reason
                        .as_deref()
                        .map(|r| format!("\n        {r}"))
                        .unwrap_or_default()
                )?;
            }
            Ok(())
        }
        OutboxCommand::Retry { ids, all, db } => {
            let app = crate::state_cmds::open_app(&db, false, config)?;
            let n = app
                .store()?
                .outbox_retry(if all { None } else { Some(&ids) })?;
            if !quiet {
                outln!("{n} item(s) back to pending: the next `abm sync` sends them")?;
            }
            Ok(())
        }
        OutboxCommand::Drop { ids, all, db } => {
            let app = crate::state_cmds::open_app(&db, false, config)?;
            let n = app
                .store()?
                .outbox_drop(if all { None } else { Some(&ids) })?;
            if !quiet {
                outln!("{n} undelivered item(s) dropped (sent and unconfirmed items are kept)")?;
            }
            Ok(())
        }
    }
}

/// What `abm news fetch` prints with `--json`.
#[derive(serde::Serialize)]
struct NewsOut {
    #[serde(flatten)]
    report: abm_connect::news::NewsReport,
    feeds_failed: Vec<String>,
    imported: Option<abm_app::RecordsImported>,
}

pub fn news(cmd: NewsCommand, config: Option<&Path>, quiet: bool) -> Result<()> {
    use abm_connect::news::{parse_feed, read_feed, triggers, Matcher, Rules};
    let NewsCommand::Fetch {
        feeds,
        rules,
        dry_run,
        timeout_ms,
        json,
        db,
    } = cmd;
    let rules = match &rules {
        Some(p) => Rules::from_toml(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )?,
        None => Rules::default(),
    };
    let config = load_config(config)?;
    let app = crate::state_cmds::open_app(&db, false, config)?;
    let directory = app.store()?.account_directory()?;
    let matcher = Matcher::new(
        directory
            .iter()
            .map(|a| (a.account_id.as_str(), a.name.as_str(), a.domain.as_deref())),
    );
    let mut items = Vec::new();
    let mut failed = Vec::new();
    for f in &feeds {
        match read_feed(f, Duration::from_millis(timeout_ms.max(1))).and_then(|b| parse_feed(&b, f))
        {
            Ok(mut v) => items.append(&mut v),
            Err(e) => {
                if !quiet {
                    eprintln!("abm: warning: {e}");
                }
                failed.push(f.clone());
            }
        }
    }
    if failed.len() == feeds.len() {
        bail!("no feed could be read ({})", failed.join(", "));
    }
    let report = triggers(&items, &matcher, &rules);
    let imported = if dry_run || report.triggers.is_empty() {
        None
    } else {
        let batch = abm_app::records::RecordBatch::new(
            abm_app::records::RecordKind::Triggers,
            "news",
            report.triggers.clone(),
        );
        Some(app.import_records(&[batch])?)
    };
    if json {
        return crate::state_cmds::print_json(&NewsOut {
            report,
            feeds_failed: failed,
            imported,
        });
    }
    outln!(
        "{} items ({} duplicates, {} undated): {} about a stored account, {} classified → {} trigger(s){}",
        report.items,
        report.duplicates,
        report.undated,
        report.matched,
        report.classified,
        report.triggers.len(),
        match &imported {
            Some(i) => format!(", {} new", i.report.triggers_added),
            None if dry_run => " (dry run: nothing imported)".to_string(),
            None => String::new(),
        }
    )?;
    for t in report.triggers.iter().take(20) {
        outln!(
            "  {} {} {}: {}",
            t["account_id"].as_str().unwrap_or(""),
            t["occurred_at"].as_str().unwrap_or(""),
            t["type"].as_str().unwrap_or(""),
            t["headline"].as_str().unwrap_or("")
        )?;
    }
    if let Some(i) = &imported {
        print_rejected(i)?;
    }
    Ok(())
}
