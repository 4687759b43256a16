//! `abm analyze`, `abm backtest` and `abm icp learn` on files: load with abm-io (the loaders
//! `abm segment` uses), assess every account with abm-core, hand deals, clusters and tiers to
//! abm-analytics, write the outputs as one set. Glue only: the maths is in abm-analytics.

use abm_analytics::analysis::{Analytics, Spend};
use abm_analytics::crosssell::Products;
use abm_analytics::fold::{fold_parallel, Assessed, Fold};
use abm_analytics::perf::{Period, Touch};
use abm_core::assess::{self, assess};
use abm_core::segments::SegmentMatcher;
use abm_core::{AccountIdx, Cluster, Config, Instant, Rules, ScoringModel};
use abm_io::load::{ByAccount, LoadOptions};
use abm_io::outset::{OutputSet, SetKind};
use abm_io::segment::{load_all, Loaded, Resolved};
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Assess every account as of the period's `as_of` and sum it into its groups.
fn fold_groups(
    loaded: &Loaded,
    rules: &Rules,
    period: &Period,
    products: &Products,
    touches: Option<&ByAccount<Touch>>,
    threads: usize,
) -> Fold {
    let cfg = &rules.config;
    let table = &loaded.accounts.table;
    let model = ScoringModel::new(&cfg.icp, table.schema());
    let make = || {
        Fold::new(
            &cfg.segments,
            table.schema(),
            cfg.analytics.buying_window_days,
        )
    };
    let visit = |f: &mut Fold, idx: AccountIdx| {
        let account = table.get(idx);
        let facts = loaded.facts(idx, Instant::MIN);
        let a = assess(rules, &model, &account, &facts, false);
        let mut micro = String::new();
        if a.cluster == Cluster::FuturePipeline {
            assess::write_micro_segment(&mut micro, rules, &account, &a, &facts);
        }
        let view = Assessed {
            idx,
            account,
            cluster: a.cluster,
            tier: a.score.tier,
            score: a.score.score,
            micro: &micro,
            deals: loaded.deals.of(idx),
            touches: touches.map(|t| t.of(idx)),
        };
        f.add(&view, period, products);
    };
    fold_parallel(table.len(), threads, &make, &visit)
}

/// The buying pattern's events: those of the accounts with a win in the period (a second
/// read of the engagement files, on every core; other accounts' rows are skipped unparsed).
fn touches_of(
    paths: &Resolved,
    loaded: &Loaded,
    rules: &Rules,
    period: &Period,
    opts: &LoadOptions<'_>,
) -> Result<Option<ByAccount<Touch>>> {
    use abm_io::load::{parse_event, scan, EventCols, Rejects};
    let files: Vec<&PathBuf> = paths
        .engagement
        .iter()
        .chain(&paths.more_engagement)
        .collect();
    if files.is_empty() {
        return Ok(None);
    }
    let n = loaded.accounts.table.len();
    let wanted: Vec<bool> = (0..n as AccountIdx)
        .map(|i| {
            loaded.deals.of(i).iter().any(|d| {
                d.outcome == abm_core::DealOutcome::Won
                    && d.closed_at.is_some_and(|c| period.contains(c))
            })
        })
        .collect();
    let meeting: Vec<bool> = {
        let types = &rules.config.analytics.meeting_types;
        let v = &rules.events;
        (0..v.len())
            .map(|c| {
                let name = v.name(c as abm_core::rules::Code);
                types.iter().any(|t| t.eq_ignore_ascii_case(name))
            })
            .collect()
    };
    let mut touches = Vec::new();
    if wanted.iter().any(|w| *w) {
        let quiet = LoadOptions {
            strict: false,
            progress: &abm_io::load::no_progress,
            ..*opts
        };
        for p in files {
            let src = quiet.open(p, abm_io::FileKind::Engagement)?;
            let cols = EventCols::of(&src.projection);
            let index = &loaded.accounts.index;
            let mut ignore = Rejects::default();
            let (parts, _) = scan(
                src,
                &quiet,
                opts.threads,
                Vec::new,
                |out: &mut Vec<Touch>, src, rec| {
                    let Some(idx) = index.get_listed(rec.get(cols.account_id).trim_ascii()) else {
                        return Ok(());
                    };
                    if !wanted[idx as usize] {
                        return Ok(());
                    }
                    if let Some(ev) = parse_event(src, rec, &cols, rules, index)? {
                        out.push(Touch {
                            account: idx,
                            at: ev.at,
                            contact: Touch::contact_hash(ev.contact),
                            meeting: meeting[ev.code as usize],
                        });
                    }
                    Ok(())
                },
                &mut ignore,
            )?;
            touches.extend(parts.into_iter().flatten());
        }
    }
    // ByAccount needs them by account (the workers' parts come in block order).
    touches.sort_by_key(|t| (t.account, t.at));
    Ok(Some(ByAccount::new(touches, n, |t| t.account)))
}

/// `spend.csv`: `period_start, period_end, segment, channel, amount` (segment or channel may be
/// empty or absent).
pub fn read_spend(path: &Path) -> Result<Vec<Spend>> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut rows: Vec<Vec<String>> = Vec::new();
    abm_io::csv::for_each_record(&text, 1, |r| {
        rows.push(
            (0..r.len())
                .map(|i| String::from_utf8_lossy(r.get(i)).trim().to_string())
                .collect(),
        )
    });
    if rows.is_empty() {
        bail!("{}: empty (expected a header)", path.display());
    }
    let header: Vec<String> = rows.remove(0).iter().map(|h| h.to_lowercase()).collect();
    let col = |n: &str| header.iter().position(|h| h == n);
    let (Some(start), Some(end), Some(amount)) =
        (col("period_start"), col("period_end"), col("amount"))
    else {
        bail!(
            "{}: needs the columns period_start, period_end, amount (and segment or channel); has {}",
            path.display(),
            header.join(", ")
        );
    };
    let (segment, channel) = (col("segment"), col("channel"));
    let mut out = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let line = i + 2;
        if r.iter().all(|v| v.is_empty()) {
            continue;
        }
        let get = |c: usize| r.get(c).map(String::as_str).unwrap_or("");
        let opt = |c: Option<usize>| c.map(get).filter(|v| !v.is_empty()).map(String::from);
        let date = |c: usize, name: &str| {
            Instant::parse(get(c))
                .map_err(|e| anyhow::anyhow!("{}:{line}: {name} {:?}: {e}", path.display(), get(c)))
        };
        let amount: f64 = get(amount).replace(',', "").parse().map_err(|_| {
            anyhow::anyhow!(
                "{}:{line}: amount {:?} is not a number",
                path.display(),
                get(amount)
            )
        })?;
        if !(amount.is_finite() && amount >= 0.0) {
            bail!("{}:{line}: amount {amount} is negative", path.display());
        }
        out.push(Spend {
            start: date(start, "period_start")?,
            end: date(end, "period_end")?,
            segment: opt(segment),
            channel: opt(channel),
            amount,
        });
    }
    Ok(out)
}

/// The result of `abm analyze` before it is written.
pub struct AnalyzeRun {
    pub analytics: Analytics,
    pub rejected_rows: usize,
}

/// Load, assess, sum and analyze.
pub fn analyze(
    paths: &Resolved,
    config: &Config,
    period: Period,
    spend: Option<&[Spend]>,
    opts: &LoadOptions<'_>,
) -> Result<AnalyzeRun> {
    let rules = Rules::compile(config, period.as_of)?;
    let loaded = load_all(paths, &rules, None, false, opts)?;
    let n = loaded.accounts.table.len() as AccountIdx;
    let products = Products::of((0..n).flat_map(|i| loaded.deals.of(i)), &period);
    let touches = touches_of(paths, &loaded, &rules, &period, opts)?;
    let mut folded = fold_groups(
        &loaded,
        &rules,
        &period,
        &products,
        touches.as_ref(),
        opts.threads,
    );
    let holders = std::mem::take(&mut folded.holders);
    let groups = folded.groups(&config.segments, None);
    let table = &loaded.accounts.table;
    let id = |i: AccountIdx| table.get(i).id().to_string();
    let mut analytics = abm_analytics::analyze(
        &period,
        groups,
        &config.analytics,
        spend,
        touches.is_some(),
        &id,
    );
    analytics.cross_sell = abm_analytics::crosssell::cross_sell(&products, &holders, 1, &id);
    analytics.forecast.capacity = Some(abm_analytics::capacity::guidance(
        abm_analytics::capacity::cluster_counts(&analytics.by_cluster),
        &config.capacity,
        None,
        config.analytics.capacity_horizon_days,
    ));
    for def in &config.segments {
        let missing = SegmentMatcher::new(def, table.schema()).without_data();
        if !missing.is_empty() {
            let msg = format!(
                "segment {:?} names {} that the accounts do not have: no account is in it",
                def.name,
                missing.join(", ")
            );
            eprintln!("abm: warning: {msg}");
            analytics.notes.push(msg);
        }
    }
    if paths.deals.is_none() {
        analytics
            .notes
            .push("no deals file: every deal figure is 0 or null".into());
    }
    if analytics.cross_sell.is_none() {
        analytics.notes.push(
            "cross_sell is null: no won deal names a product (the deals' product column)".into(),
        );
    }
    if touches.is_none() {
        analytics
            .notes
            .push("no engagement file: the buying pattern's contacts and meetings are null".into());
    }
    analytics.notes.push(
        "migration is null and capacity has no projection: they need recorded runs (`abm \
         analyze` on the database)"
            .into(),
    );
    let run = AnalyzeRun {
        analytics,
        rejected_rows: loaded.rejects.len(),
    };
    // The loaded inputs are dropped by the OS on exit.
    std::mem::forget(loaded);
    Ok(run)
}

/// Write analytics.json, report.md and report.html into `out` as one set.
pub fn write_outputs(out: &Path, run: &AnalyzeRun, inputs: &[&Path]) -> Result<Vec<PathBuf>> {
    let mut set = OutputSet::begin(out, SetKind::Analytics, inputs, &crate::tuning_from_env()?)
        .with_context(|| format!("output directory {}", out.display()))?;
    let mut files = Vec::new();
    let mut written = Vec::new();
    let json = serde_json::to_string_pretty(&run.analytics)? + "\n";
    let md = abm_analytics::report::markdown(&run.analytics);
    let html = abm_analytics::report::html(&run.analytics);
    for (name, body) in [
        ("analytics.json", json.as_bytes()),
        ("report.md", md.as_bytes()),
        ("report.html", html.as_bytes()),
    ] {
        let p = out.join(name);
        let mut f = set
            .create(name)
            .with_context(|| format!("writing {}", p.display()))?;
        f.write_all(body)
            .with_context(|| format!("writing {}", p.display()))?;
        files.push(f);
        written.push(p);
    }
    set.commit(files)
        .map_err(|(p, e)| anyhow::anyhow!("writing {}: {e}", p.display()))?;
    Ok(written)
}

/// `abm backtest`: the accounts assessed as of each date, then what they did within each
/// horizon after it.
pub fn backtest(
    paths: &Resolved,
    config: &Config,
    at: &[Instant],
    horizons: &[u32],
    opts: &LoadOptions<'_>,
) -> Result<Backtest> {
    use abm_analytics::backtest::{outcome, result, BacktestAcc};
    let mut results = Vec::new();
    let mut notes = Vec::new();
    for &date in at {
        let rules = Rules::compile(config, date)?;
        let loaded = load_all(paths, &rules, None, false, opts)?;
        let table = &loaded.accounts.table;
        let model = ScoringModel::new(&config.icp, table.schema());
        let n = table.len();
        let last = (0..n as AccountIdx)
            .flat_map(|i| loaded.deals.of(i))
            .flat_map(|d| [Some(d.created_at), d.closed_at])
            .flatten()
            .max();
        let threads = opts.threads.clamp(1, n.max(1));
        let chunk = n.div_ceil(threads).max(1);
        let parts: Vec<Vec<BacktestAcc>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads)
                .map(|t| {
                    let (model, rules, loaded) = (&model, &rules, &loaded);
                    s.spawn(move || {
                        let mut accs = vec![BacktestAcc::default(); horizons.len()];
                        for idx in (t * chunk).min(n)..((t + 1) * chunk).min(n) {
                            let idx = idx as AccountIdx;
                            let account = loaded.accounts.table.get(idx);
                            let facts = loaded.facts(idx, Instant::MIN);
                            let a = assess(rules, model, &account, &facts, false);
                            for (acc, h) in accs.iter_mut().zip(horizons) {
                                acc.add(
                                    a.cluster,
                                    a.score.tier,
                                    outcome(loaded.deals.of(idx), date, *h),
                                );
                            }
                        }
                        accs
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("backtest worker panicked"))
                .collect()
        });
        let mut total = vec![BacktestAcc::default(); horizons.len()];
        for p in &parts {
            for (a, b) in total.iter_mut().zip(p) {
                a.merge(b);
            }
        }
        for (acc, h) in total.iter().zip(horizons) {
            if last.is_none_or(|l| date.plus_days(*h) > l) {
                notes.push(format!(
                    "{} + {h} days ends after the last deal date in the data ({}): the rates \
                     of this horizon undercount",
                    date.date_string(),
                    last.map_or("none".into(), |l| l.date_string())
                ));
            }
            results.push(result(date, *h, acc));
        }
        std::mem::forget(loaded);
    }
    Ok(Backtest { results, notes })
}

#[derive(serde::Serialize)]
pub struct Backtest {
    pub results: Vec<abm_analytics::backtest::BacktestResult>,
    pub notes: Vec<String>,
}

/// Write `name` (one JSON file) into `out` as a set.
pub fn write_json_set(
    out: &Path,
    name: &str,
    value: &impl serde::Serialize,
    inputs: &[&Path],
) -> Result<PathBuf> {
    let mut set = OutputSet::begin(out, SetKind::Analytics, inputs, &crate::tuning_from_env()?)
        .with_context(|| format!("output directory {}", out.display()))?;
    let p = out.join(name);
    let mut f = set
        .create(name)
        .with_context(|| format!("writing {}", p.display()))?;
    let text = serde_json::to_string_pretty(value)? + "\n";
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", p.display()))?;
    set.commit(vec![f])
        .map_err(|(p, e)| anyhow::anyhow!("writing {}: {e}", p.display()))?;
    Ok(p)
}

/// `abm icp learn`: learn from the outcomes before `before`, judge on those after.
pub fn icp_learn(
    paths: &Resolved,
    config: &Config,
    opts_learn: &abm_analytics::learn::LearnOptions,
    opts: &LoadOptions<'_>,
) -> Result<abm_analytics::learn::Learned> {
    let rules = Rules::compile(config, opts_learn.before)?;
    // Only the accounts and their deals matter here.
    let paths = Resolved {
        engagement: None,
        more_engagement: Vec::new(),
        triggers: None,
        ..paths.clone()
    };
    if paths.deals.is_none() {
        bail!("abm icp learn needs a deals file (DIR/deals.csv or --deals FILE): outcomes come from deals");
    }
    let loaded = load_all(&paths, &rules, None, false, opts)?;
    let learned = abm_analytics::learn::learn(
        &loaded.accounts.table,
        &|i| loaded.deals.of(i),
        &config.icp,
        opts_learn,
    );
    std::mem::forget(loaded);
    Ok(learned)
}

/// The abm.toml fragment of a learned ICP: `[icp]` and, when the config has them, the column
/// mappings, input formats and value maps the accounts were read with.
pub fn icp_fragment(l: &abm_analytics::learn::Learned, config: &Config) -> Result<String> {
    #[derive(serde::Serialize)]
    struct Fragment<'a> {
        icp: &'a abm_core::config::IcpConfig,
        #[serde(skip_serializing_if = "Option::is_none")]
        inputs: Option<&'a abm_core::inputs::InputsConfig>,
        #[serde(skip_serializing_if = "Option::is_none")]
        columns: Option<&'a abm_core::config::ColumnMappings>,
        #[serde(skip_serializing_if = "Option::is_none")]
        values: Option<&'a abm_core::inputs::ValueMaps>,
    }
    let d = Config::default();
    let frag = Fragment {
        icp: &l.icp,
        inputs: (config.inputs != d.inputs).then_some(&config.inputs),
        columns: (config.columns != d.columns).then_some(&config.columns),
        values: (!config.values.is_empty()).then_some(&config.values),
    };
    let pct = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.4}"));
    let lift = |t: &abm_analytics::learn::TierOutcome| {
        t.lift.map_or("–".to_string(), |v| format!("{v:.2}×"))
    };
    let mut s = format!(
        "# ICP learned by `abm icp learn` from outcomes ({}) up to {} over {} accounts.\n\
         # Base rate before: {}; after: {}.\n\
         # Tier A on the outcomes after the date: {} accounts, lift {} (the current config's tier A: {} accounts, lift {}).\n\
         # Use it with `abm --config THIS_FILE …`.\n\n",
        l.target.as_str(),
        l.before,
        l.accounts,
        pct(l.base_rate_before),
        pct(l.base_rate_after),
        l.after_learned[0].accounts,
        lift(&l.after_learned[0]),
        l.after_current[0].accounts,
        lift(&l.after_current[0]),
    );
    s.push_str(&toml::to_string(&frag)?);
    // The fragment must be a config `--config` accepts.
    Config::from_toml(&s).context("the learned fragment does not parse as a config")?;
    Ok(s)
}
