//! `abm analyze` over the store (issue 16): the period's figures from the stored accounts and
//! deals with the clusters and tiers a recorded run gave them (the run holding at the
//! period's `as_of`) and the `[[segments]]` definitions that run recorded; plus what needs
//! history — the migration matrices between two runs by segment, cluster and tier, cohorts
//! followed over the runs between them, and the movement rates behind the forecast's
//! capacity guidance. The maths is abm-analytics'; this reads the store and hands it over.

use crate::{App, AppError, Result};
use abm_analytics::analysis::{Analytics, Spend};
use abm_analytics::crosssell::Products;
use abm_analytics::fold::{fold_parallel, Assessed, Fold};
use abm_analytics::migration::{self, Migration, Place, RunRef, SegmentVersionRef};
use abm_analytics::perf::{Period, Touch};
use abm_core::segments::{SegmentDef, NO_SEGMENT};
use abm_core::{AccountIdx, Rules};
use abm_io::load::ByAccount;
use abm_store::segments::{RunAt, SegmentVersion, StoredAssessment};
use std::collections::HashMap;

/// Runs followed at most by the lifecycle (evenly spaced, both ends kept).
pub const MAX_LIFECYCLE_RUNS: usize = 24;

/// What to analyze on the store.
pub struct StoredAnalysis<'a> {
    pub period: Period,
    pub spend: Option<&'a [Spend]>,
    /// The runs to compare (default: the latest at or before the period's start, else the
    /// first, and the one holding at `as_of`).
    pub runs: Option<(i64, i64)>,
    pub threads: usize,
}

/// The run holding at `t`: the latest with `as_of ≤ t`.
fn run_at(runs: &[RunAt], t: abm_core::Instant) -> Option<&RunAt> {
    runs.iter().rev().find(|r| r.as_of <= t)
}

impl App {
    /// Every stored version of every `[[segments]]` definition.
    pub fn segment_versions(&self) -> Result<Vec<SegmentVersion>> {
        Ok(self.store()?.segment_versions()?)
    }

    /// The period's analytics from the store, with `migration` and the capacity projection.
    pub fn analyze(&self, req: &StoredAnalysis<'_>) -> Result<Analytics> {
        let cfg = self.config();
        let p = &req.period;
        let mut store = self.store()?;
        let runs = store.runs_at()?;
        let first = runs.first().ok_or(abm_store::StoreError::NoRuns)?;
        let run = run_at(&runs, p.as_of).ok_or_else(|| {
            AppError::Invalid(format!(
                "no run at or before as_of {} (the first run is as of {}): analyze a later period, \
                 or pass --as-of",
                p.as_of, first.as_of
            ))
        })?;
        let (accounts, deals) = store.accounts_and_deals()?;
        let assessed = store.assessments_at(run.run, &accounts)?;
        let (defs, versions): (Vec<SegmentDef>, Vec<i64>) =
            store.run_segments(run.run)?.into_iter().unzip();
        let rules = Rules::compile(cfg, p.as_of)?;
        let touches = store
            .touches_of_winners(p.from, p.to, &accounts)?
            .map(|t| as_touches(t, &rules, accounts.table.len()));
        let n = accounts.table.len();
        let products = Products::of((0..n as AccountIdx).flat_map(|i| deals.of(i)), p);
        let table = &accounts.table;
        let make = || Fold::new(&defs, table.schema(), cfg.analytics.buying_window_days);
        let visit = |f: &mut Fold, idx: AccountIdx| {
            let Some(a) = &assessed[idx as usize] else {
                return;
            };
            f.add(
                &Assessed {
                    idx,
                    account: table.get(idx),
                    cluster: a.cluster,
                    tier: a.tier,
                    score: a.score,
                    micro: &a.micro_segment,
                    deals: deals.of(idx),
                    touches: touches.as_ref().map(|t| t.of(idx)),
                },
                p,
                &products,
            );
        };
        let mut folded = fold_parallel(n, req.threads, &make, &visit);
        let holders = std::mem::take(&mut folded.holders);
        let groups = folded.groups(&defs, Some(&versions));
        let id = |i: AccountIdx| table.get(i).id().to_string();
        let mut a =
            abm_analytics::analyze(p, groups, &cfg.analytics, req.spend, touches.is_some(), &id);
        a.cross_sell = abm_analytics::crosssell::cross_sell(&products, &holders, 1, &id);
        let unassessed = assessed.iter().filter(|a| a.is_none()).count();
        a.notes.push(format!(
            "clusters and tiers as run {} (as of {}) recorded them; segments by the definitions it \
             recorded{}",
            run.run,
            run.as_of,
            if defs.is_empty() { " (none)" } else { "" }
        ));
        if unassessed > 0 {
            a.notes.push(format!(
                "{unassessed} stored accounts had no assessment at run {} (imported later): left out",
                run.run
            ));
        }
        if touches.is_none() {
            a.notes.push(
                "no stored engagement events: the buying pattern's contacts and meetings are null"
                    .into(),
            );
        }
        if a.cross_sell.is_none() {
            a.notes.push(
                "cross_sell is null: no won deal names a product (the deals' product column)"
                    .into(),
            );
        }

        // Capacity: the movements between the first run in the period and this one.
        let since = runs.iter().find(|r| r.as_of >= p.from && r.run <= run.run);
        let flows = match since {
            Some(s) if s.run != run.run => {
                let mut f = abm_analytics::capacity::Flows::new(s.as_of, run.as_of);
                let after = abm_core::Instant(s.as_of.0 + 1);
                for (from, to, count) in store.movement_counts(after, run.as_of)? {
                    f.add(from, to, count);
                }
                Some(f)
            }
            _ => {
                a.notes.push(
                    "capacity has no projection: fewer than two runs in the period, so no \
                     movement rates"
                        .into(),
                );
                None
            }
        };
        a.forecast.capacity = Some(abm_analytics::capacity::guidance(
            abm_analytics::capacity::cluster_counts(&a.by_cluster),
            &cfg.capacity,
            flows,
            cfg.analytics.capacity_horizon_days,
        ));

        // Migration between two runs.
        let (from, to) = match req.runs {
            Some((x, y)) => {
                let find = |id: i64| {
                    runs.iter().find(|r| r.run == id).ok_or_else(|| {
                        AppError::Invalid(format!("no run {id} (see `abm summary`)"))
                    })
                };
                let (x, y) = (find(x)?, find(y)?);
                if x.run > y.run {
                    (y, x)
                } else {
                    (x, y)
                }
            }
            None => (run_at(&runs, p.from).unwrap_or(first), run),
        };
        if from.run == to.run {
            a.notes.push(format!(
                "migration is null: one run (run {}) covers the period; it needs two",
                from.run
            ));
        } else {
            let mut between: Vec<&RunAt> = runs
                .iter()
                .filter(|r| from.run <= r.run && r.run <= to.run)
                .collect();
            let mut notes = Vec::new();
            if between.len() > MAX_LIFECYCLE_RUNS {
                notes.push(format!(
                    "{} runs from run {} to run {}: the lifecycle follows {MAX_LIFECYCLE_RUNS} of \
                     them, evenly spaced",
                    between.len(),
                    from.run,
                    to.run
                ));
                let k = between.len() - 1;
                between = (0..MAX_LIFECYCLE_RUNS)
                    .map(|j| between[j * k / (MAX_LIFECYCLE_RUNS - 1)])
                    .collect();
            }
            notes.push(
                "segments at each run: that run's recorded definitions over the accounts' \
                 stored fields (as last imported)"
                    .into(),
            );
            let mut at_run = Vec::new();
            let mut places = Vec::new();
            // Runs made with the same definitions label the accounts alike.
            let mut label_cache: HashMap<Vec<(String, i64)>, std::sync::Arc<Vec<String>>> =
                HashMap::new();
            for r in &between {
                let segs = store.run_segments(r.run)?;
                let key: Vec<(String, i64)> =
                    segs.iter().map(|(d, v)| (d.name.clone(), *v)).collect();
                let labels = match label_cache.get(&key) {
                    Some(l) => l.clone(),
                    None => {
                        let d: Vec<SegmentDef> = segs.iter().map(|(d, _)| d.clone()).collect();
                        let l = std::sync::Arc::new(abm_store::segments::labels(&accounts, &d));
                        label_cache.insert(key, l.clone());
                        l
                    }
                };
                let assessed_r = if r.run == run.run {
                    assessed.clone()
                } else {
                    store.assessments_at(r.run, &accounts)?
                };
                places.push(places_of(&assessed_r, &labels, &deals, r.as_of));
                at_run.push(RunRef {
                    run: r.run,
                    as_of: r.as_of.to_rfc3339(),
                    segments: segs
                        .iter()
                        .map(|(d, v)| SegmentVersionRef {
                            name: d.name.clone(),
                            version: *v,
                        })
                        .collect(),
                });
            }
            let m: Migration = migration::migration(&at_run, &places, notes);
            a.migration = Some(m);
        }
        Ok(a)
    }
}

/// Where each account stood at one run.
fn places_of(
    assessed: &[Option<StoredAssessment>],
    labels: &[String],
    deals: &ByAccount<abm_core::Deal>,
    as_of: abm_core::Instant,
) -> Vec<Option<Place>> {
    assessed
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let a = a.as_ref()?;
            let label = &labels[i];
            Some(Place {
                cluster: a.cluster.as_str().to_string(),
                tier: a.tier.as_str().to_string(),
                segment: if label.is_empty() {
                    NO_SEGMENT.to_string()
                } else {
                    label.clone()
                },
                customer: deals.of(i as AccountIdx).iter().any(|d| d.won_by(as_of)),
            })
        })
        .collect()
}

/// The stored events as the buying pattern reads them (types the config knows).
fn as_touches(
    stored: Vec<abm_store::segments::StoredTouch>,
    rules: &Rules,
    n: usize,
) -> ByAccount<Touch> {
    let meeting = &rules.config.analytics.meeting_types;
    let mut t: Vec<Touch> = stored
        .into_iter()
        .filter(|e| rules.events.lookup(e.kind.as_bytes()).is_some())
        .map(|e| Touch {
            account: e.account,
            at: e.at,
            contact: Touch::contact_hash(e.contact.as_bytes()),
            meeting: meeting.iter().any(|m| m.eq_ignore_ascii_case(&e.kind)),
        })
        .collect();
    // ByAccount needs them by account.
    t.sort_by_key(|t| (t.account, t.at));
    ByAccount::new(t, n, |t| t.account)
}
