//! Runs that scale with change give exactly what a full re-evaluation gives. Two stores live
//! the same random timeline — sample data, then steps of new events, triggers, deals (some
//! moving to another account), account updates, live ingest (re-evaluations between runs),
//! review decisions, and runs moving as_of forward by 0 to 60 days — one running `run` (only
//! the accounts with new data, a decision or a due instant), the other `run_full`. After every
//! run, every account's export row, the movements, the review queue and the counts agree.

use abm_app::records::{RecordBatch, RecordKind};
use abm_app::{App, RunObserver};
use abm_core::Instant;
use abm_io::sample::{write_sample, SampleSpec};
use abm_store::{ImportInputs, RunOutcome};
use proptest::prelude::*;
use serde_json::{json, Value};

mod common;
use common::{app, on_postgres_pair, on_sqlite_pair};

const DAY: i64 = 86_400_000_000;
const ACCOUNTS: u64 = 40;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A whole number of days in `lo..hi`, plus a few hours (never on a day boundary).
    fn days(&mut self, lo: i64, hi: i64) -> i64 {
        (lo + self.below((hi - lo) as u64) as i64) * DAY + self.below(24) as i64 * 3_600_000_000
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const EVENT_TYPES: &[&str] = &[
    "meeting",
    "demo",
    "email_reply",
    "webinar_attended",
    "website_visit",
    "email_open",
    "champion_left",
    "no_priority",
    "budget_expressed",
];
const TRIGGER_TYPES: &[&str] = &[
    "funding_round",
    "leadership_change",
    "layoffs",
    "hiring_surge",
];

fn account(rng: &mut Rng) -> String {
    // Now and then an account not imported (its rows wait for it).
    let n = 1 + rng.below(ACCOUNTS + 2);
    format!("ACC-{n:04}")
}

/// Every account's export row, the movements, the review queue and the summary's counts.
fn state(app: &App) -> Value {
    let mut rows = Vec::new();
    app.export(&mut |r| {
        rows.push(serde_json::to_value(r).unwrap());
        Ok(())
    })
    .unwrap();
    let movements: Vec<Value> = app
        .movements(None)
        .unwrap()
        .iter()
        .map(|m| {
            json!([
                m.account_id,
                m.run,
                m.as_of,
                m.from,
                m.to,
                m.direction,
                m.rule
            ])
        })
        .collect();
    let queue: Vec<Value> = app
        .review_list(true)
        .unwrap()
        .iter()
        .map(|c| json!([c.account_id, c.kind, c.status, c.from, c.to, c.run, c.as_of]))
        .collect();
    let s = app.summary().unwrap();
    json!({"rows": rows, "movements": movements, "queue": queue,
           "counts": [s.accounts, s.cluster_icp_count, s.future_pipeline_count,
                      s.active_focus_count, s.monitor_only_count]})
}

fn both(stores: &[&App], f: &dyn Fn(&App)) {
    for a in stores {
        f(a);
    }
}

/// How as_of moves between runs.
#[derive(Clone, Copy, PartialEq)]
enum Steps {
    /// 16 runs, 0 to 60 days apart.
    Weeks,
    /// 40 runs, 0 to 2 days apart (whole days, as a daily job runs): each due instant is met
    /// on its day, so one that comes too late shows.
    Daily,
}

fn timeline(inc_url: &str, full_url: &str, seed: u64) {
    timeline_with(inc_url, full_url, seed, Steps::Weeks)
}

fn timeline_with(inc_url: &str, full_url: &str, seed: u64, steps: Steps) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let t0 = Instant::parse(abm_io::sample::SAMPLE_AS_OF).unwrap();
    write_sample(
        &data,
        &SampleSpec {
            accounts: ACCOUNTS,
            events_per_account: 10.0,
            seed,
            as_of: t0,
        },
    )
    .unwrap();
    let (inc, full) = (app(inc_url), app(full_url));
    let stores = [&inc, &full];
    let inputs = ImportInputs {
        accounts: Some(data.join("accounts.csv").into()),
        engagement: Some(data.join("engagement.csv").into()),
        triggers: Some(data.join("triggers.csv").into()),
        deals: Some(data.join("deals.csv").into()),
        more_engagement: Vec::new(),
    };
    both(&stores, &|a| {
        a.import(&inputs, &a.load_options(), &mut |_| Ok(()))
            .unwrap();
    });
    let mut rng = Rng(seed);
    // Start well before the sample's as_of: its later events become visible as time passes.
    let mut as_of = Instant(t0.0 - 120 * DAY);
    let mut ran = false;
    let mut event_no = 0;
    // Runs of the incremental store that left some accounts alone.
    let mut partial = 0;
    for step in 0..if steps == Steps::Daily { 40 } else { 16 } {
        for _ in 0..1 + rng.below(3) {
            match rng.below(6) {
                0 | 1 => {
                    let items: Vec<Value> = (0..1 + rng.below(6))
                        .map(|_| {
                            event_no += 1;
                            json!({"account_id": account(&mut rng),
                                   "occurred_at": Instant(as_of.0 + rng.days(-100, 40)).to_string(),
                                   "type": rng.pick(EVENT_TYPES),
                                   "contact_id": format!("c{}", rng.below(4)),
                                   "event_id": format!("e{event_no}")})
                        })
                        .collect();
                    // Live ingest after a run (re-assessed at once), else a plain import.
                    if ran && rng.below(2) == 0 {
                        let at = Instant(as_of.0 + rng.below(3) as i64 * DAY);
                        both(&stores, &|a| {
                            a.ingest(RecordKind::Engagement, items.clone(), Some(at))
                                .unwrap();
                        });
                    } else {
                        let b = RecordBatch::new(RecordKind::Engagement, "events", items);
                        both(&stores, &|a| {
                            a.import_records(std::slice::from_ref(&b)).unwrap();
                        });
                    }
                }
                2 => {
                    let b = RecordBatch::new(
                        RecordKind::Triggers,
                        "triggers",
                        vec![json!({"account_id": account(&mut rng),
                                    "occurred_at": Instant(as_of.0 + rng.days(-100, 30)).to_string(),
                                    "type": rng.pick(TRIGGER_TYPES),
                                    "headline": "news"})],
                    );
                    both(&stores, &|a| {
                        a.import_records(std::slice::from_ref(&b)).unwrap();
                    });
                }
                3 => {
                    // A few deal ids, so later steps update (and move) earlier deals.
                    let created = Instant(as_of.0 + rng.days(-150, 20));
                    let changed = Instant(created.0 + rng.days(0, 60));
                    let outcome = rng.pick(&["open", "open", "won", "lost"]);
                    let mut d = json!({"deal_id": format!("DX-{}", rng.below(5)),
                                       "account_id": account(&mut rng),
                                       "stage": if outcome == "open" { "negotiation" } else { outcome },
                                       "amount": 1000 + rng.below(50_000),
                                       "created_at": created.to_string(),
                                       "last_stage_change_at": changed.to_string(),
                                       "outcome": outcome});
                    if outcome != "open" {
                        d["closed_at"] = json!(Instant(changed.0 + rng.days(0, 30)).to_string());
                    }
                    let b = RecordBatch::new(RecordKind::Deals, "deals", vec![d]);
                    both(&stores, &|a| {
                        a.import_records(std::slice::from_ref(&b)).unwrap();
                    });
                }
                4 => {
                    let b = RecordBatch::new(
                        RecordKind::Accounts,
                        "accounts",
                        vec![
                            json!({"account_id": format!("ACC-{:04}", 1 + rng.below(ACCOUNTS + 2)),
                                    "name": "Renamed", "industry": rng.pick(&["Software", "Retail", "Fintech"]),
                                    "employees": 50 + rng.below(5000), "country": "US"}),
                        ],
                    );
                    both(&stores, &|a| {
                        a.import_records(std::slice::from_ref(&b)).unwrap();
                    });
                }
                _ => {
                    // A review decision on the same item in both stores.
                    let key = |c: &abm_app::views::CheckpointView| {
                        (c.account_id.clone(), c.kind, c.from, c.to)
                    };
                    let pending = inc.review_list(false).unwrap();
                    if pending.is_empty() {
                        continue;
                    }
                    let k = key(&pending[rng.below(pending.len() as u64) as usize]);
                    let approve = rng.below(2) == 0;
                    both(&stores, &|a| {
                        let c = a
                            .review_list(false)
                            .unwrap()
                            .into_iter()
                            .find(|c| key(c) == k)
                            .expect("the same item is pending in both stores");
                        // A stale proposal is refused the same way in both.
                        let _ = a.decide(c.id, approve, "tester", None);
                    });
                }
            }
        }
        as_of = match steps {
            Steps::Weeks => Instant(as_of.0 + rng.below(4).min(1) as i64 * rng.days(0, 60)),
            Steps::Daily => Instant(as_of.0 + rng.below(3) as i64 * DAY),
        };
        let a = inc
            .run(Some(as_of), Some(2), RunObserver::default())
            .unwrap();
        let b = full
            .run_full(Some(as_of), Some(2), RunObserver::default())
            .unwrap();
        match (&a, &b) {
            (RunOutcome::Done(x), RunOutcome::Done(y)) => {
                assert!(y.full && y.assessed == y.accounts, "{y:?}");
                partial += (!x.full && x.assessed < x.accounts) as u32;
                assert_eq!(x.accounts, y.accounts);
                assert_eq!(x.counts, y.counts, "seed {seed} step {step}");
            }
            (RunOutcome::Unchanged { .. }, RunOutcome::Unchanged { .. }) => {}
            _ => panic!("seed {seed} step {step}: {a:?} vs {b:?}"),
        }
        ran = true;
        let (x, y) = (state(&inc), state(&full));
        if x != y {
            for k in ["rows", "movements", "queue", "counts"] {
                if x[k] != y[k] {
                    let (xs, ys) = (
                        x[k].as_array().cloned().unwrap_or_default(),
                        y[k].as_array().cloned().unwrap_or_default(),
                    );
                    let diff: Vec<_> = xs.iter().zip(&ys).filter(|(p, q)| p != q).take(3).collect();
                    panic!("seed {seed} step {step}: {k} differ (as_of {as_of}): {diff:#?}");
                }
            }
        }
    }
    assert!(
        partial >= 3,
        "seed {seed}: only {partial} runs left accounts alone"
    );
}

/// One fixed timeline (seed 7), so that a failure here reproduces without proptest.
#[test]
fn incremental_runs_equal_full_runs_on_sqlite() {
    on_sqlite_pair("eq", &|a, b| timeline(a, b, 7));
}

#[test]
#[ignore = "needs PostgreSQL: set ABM_TEST_PG_URL (run by .ci/run)"]
fn incremental_runs_equal_full_runs_on_postgres() {
    on_postgres_pair("eq", &|a, b| timeline(a, b, 7));
}

/// Daily runs: the due instants (an event leaving its window, an inactivity clock running out
/// from the latest event) are exact to the day.
#[test]
fn daily_incremental_runs_equal_full_runs_on_sqlite() {
    for seed in [7u64, 11, 12] {
        on_sqlite_pair("eqd", &|a, b| timeline_with(a, b, seed, Steps::Daily));
    }
}

#[test]
#[ignore = "needs PostgreSQL: set ABM_TEST_PG_URL (run by .ci/run)"]
fn daily_incremental_runs_equal_full_runs_on_postgres() {
    on_postgres_pair("eqd", &|a, b| timeline_with(a, b, 7, Steps::Daily));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn random_timelines_are_equivalent_on_sqlite(seed in any::<u64>(), daily in any::<bool>()) {
        let steps = if daily { Steps::Daily } else { Steps::Weeks };
        on_sqlite_pair("eqr", &|a, b| timeline_with(a, b, seed, steps));
    }
}

#[test]
#[ignore = "needs PostgreSQL: set ABM_TEST_PG_URL (run by .ci/run)"]
fn random_timelines_are_equivalent_on_postgres() {
    for seed in 1..=4u64 {
        on_postgres_pair("eqr", &|a, b| {
            timeline(a, b, seed.wrapping_mul(0x5851_F42D_4C95_7F2D))
        });
    }
}
