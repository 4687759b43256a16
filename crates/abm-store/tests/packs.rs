//! Per-account event packs (`packs.rs`, migration 0012) stay exact — each account's pack and
//! newer rows give exactly its `events` rows, in id order, and every event up to `packs_upto` is
//! packed — through a first load, imports into a non-empty database (events of new and known
//! accounts, waiting rows resolved), full and scoped runs, re-evaluations and `prune`; a run's
//! outcome over packs equals the same run over the rows alone (packs dropped); on SQLite and
//! PostgreSQL.

use abm_core::{Config, Instant, Rules};
use abm_io::load::LoadOptions;
use abm_io::sample::{write_sample, SampleSpec};
use abm_io::source::InputSource;
use abm_store::{ImportInputs, RunOptions, RunOutcome, Store};

const DAY: i64 = 86_400 * 1_000_000;

fn run(store: &mut Store, config: &Config, as_of: Instant, full: bool) -> RunOutcome {
    let rules = Rules::compile(config, as_of).unwrap();
    let opts = RunOptions {
        as_of,
        threads: 2,
        full,
        log: &|_| {},
        progress: &|_, _, _| {},
    };
    store.run(&rules, &opts).unwrap()
}

/// How the story sets the store's pack policy (`abm_store::testing::set_pack_policy`).
#[derive(Clone, Copy, PartialEq)]
enum Policy {
    /// The defaults: on this small database a scoped run reads by account and never folds.
    Default,
    /// Every read by account folds each account's newer events into its pack alone (one event
    /// is enough), `packs_upto` unchanged.
    AccountFolds,
    /// The first two runs leave the tail in `events`; then every scoped run reads the whole tail
    /// by id range and folds all of it, so it folds the events of accounts it does not assess
    /// (those of the earlier steps). One full run, at step 3.
    Mixed,
}

fn story(url: &str, twin: &str, policy: Policy) {
    match policy {
        Policy::AccountFolds => abm_store::testing::set_pack_policy(None, None, Some(1)),
        _ => abm_store::testing::set_pack_policy(None, None, None),
    }
    // The default loads this small database on one thread; the others parse its accounts and
    // decode its packs on helper threads whatever the number of accounts read.
    abm_store::testing::set_load_helpers_from(match policy {
        Policy::Default => None,
        Policy::AccountFolds | Policy::Mixed => Some(0),
    });
    let dir = tempfile::tempdir().unwrap();
    let config = Config::default();
    let spec = SampleSpec {
        accounts: 300,
        seed: 5,
        ..SampleSpec::default()
    };
    write_sample(dir.path(), &spec).unwrap();
    let end = spec.as_of;
    let cuts: Vec<Instant> = [90, 60, 30, 10, 0]
        .iter()
        .map(|d| Instant(end.0 - d * DAY))
        .collect();
    let events = std::fs::read_to_string(dir.path().join("engagement.csv")).unwrap();
    let mut lines = events.lines();
    let header = lines.next().unwrap().to_string();
    let cols: Vec<&str> = header.split(',').collect();
    let at_col = cols.iter().position(|h| *h == "occurred_at").unwrap();
    let id_col = cols.iter().position(|h| *h == "account_id").unwrap();
    let rows: Vec<(Instant, String)> = lines
        .map(|l| {
            let at = Instant::parse(l.split(',').nth(at_col).unwrap()).unwrap();
            (at, l.to_string())
        })
        .collect();
    // The accounts file without its last 20 accounts: their events wait until they arrive.
    let accounts = std::fs::read_to_string(dir.path().join("accounts.csv")).unwrap();
    let acc_lines: Vec<&str> = accounts.lines().collect();
    let first_accounts = acc_lines[..acc_lines.len() - 20].join("\n") + "\n";
    let late: Vec<String> = acc_lines[acc_lines.len() - 20..]
        .iter()
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();

    let mut store = Store::open(url).unwrap();
    let mut plain = Store::open(twin).unwrap();
    let opts = LoadOptions::new(&config);
    for (i, cut) in cuts.iter().enumerate() {
        let lo = if i == 0 { Instant::MIN } else { cuts[i - 1] };
        let slice = abm_store::testing::csv_slice(&header, &rows, lo, *cut);
        let mut inputs = ImportInputs {
            engagement: Some(InputSource::csv("engagement.csv", slice)),
            ..ImportInputs::default()
        };
        if i == 0 {
            inputs.accounts = Some(InputSource::csv(
                "accounts.csv",
                first_accounts.clone().into_bytes(),
            ));
            inputs.triggers = Some(dir.path().join("triggers.csv").into());
            inputs.deals = Some(dir.path().join("deals.csv").into());
        }
        if i == 2 {
            inputs.accounts = Some(dir.path().join("accounts.csv").into());
        }
        for s in [&mut store, &mut plain] {
            s.import(&inputs, &opts).unwrap();
        }
        store.check_packs().unwrap();
        if i == 0 {
            // The first load built every pack.
            let (upto, n, _) = store.pack_stats().unwrap();
            assert!(
                upto > 0 && n > 0,
                "first load: packs_upto {upto}, {n} packs"
            );
        }
        // A scoped run, then (every other step) a full one; the twin runs the same over its
        // rows alone (its packs dropped before each run).
        let full = match policy {
            Policy::Default | Policy::AccountFolds => i % 2 == 1,
            Policy::Mixed => i == 3,
        };
        let fold = policy == Policy::Mixed && i >= 2;
        if fold {
            abm_store::testing::set_pack_policy(Some(0), Some(1), None);
        }
        let before = store.pack_stats().unwrap();
        let a = run(&mut store, &config, *cut, full);
        plain.drop_packs().unwrap();
        let b = run(&mut plain, &config, *cut, full);
        match (&a, &b) {
            (RunOutcome::Done(a), RunOutcome::Done(b)) => {
                assert_eq!(a.events_read, b.events_read, "step {i}");
                assert_eq!(a.events_after_as_of, b.events_after_as_of, "step {i}");
                assert_eq!(a.counts, b.counts, "step {i}");
            }
            _ => panic!("step {i}: a run did nothing"),
        }
        store.check_packs().unwrap();
        let (upto, _, max) = store.pack_stats().unwrap();
        if full {
            assert_eq!(upto, max, "a full run packs every event");
        } else if fold {
            assert_eq!(
                upto, max,
                "step {i}: a folding scoped run packs the whole tail"
            );
        } else {
            assert_eq!(
                upto, before.0,
                "step {i}: a scoped run by account leaves packs_upto"
            );
            let past = abm_store::testing::packs_past_floor(&mut store);
            if policy == Policy::AccountFolds && i > 0 {
                assert!(past > 0, "step {i}: accounts' tails folded one by one");
            }
        }
        assert_eq!(
            abm_store::testing::export_json(&mut store),
            abm_store::testing::export_json(&mut plain),
            "step {i}"
        );
        // Re-evaluate a few accounts (their packs are rewritten in its transaction).
        let rules = Rules::compile(&config, Instant(cut.0 + DAY)).unwrap();
        let mut some: Vec<String> = late.iter().take(3).cloned().collect();
        some.push(rows[i * 11].1.split(',').nth(id_col).unwrap().to_string());
        for s in [&mut store, &mut plain] {
            s.reevaluate(&rules, &some).unwrap();
        }
        store.check_packs().unwrap();
        // Explanations read the packs and newer rows as they read the rows.
        let e1 = store.explain(&some[3], &rules).unwrap();
        let e2 = plain.explain(&some[3], &rules).unwrap();
        assert_eq!(
            serde_json::to_string(&e1).unwrap(),
            serde_json::to_string(&e2).unwrap()
        );
    }
    store.prune(cuts[3]).unwrap();
    store.check_packs().unwrap();
    // A rebuild gives the same packs' contents.
    store.rebuild_packs().unwrap();
    store.check_packs().unwrap();
    let a = run(&mut store, &config, Instant(end.0 + DAY), true);
    plain.drop_packs().unwrap();
    let b = run(&mut plain, &config, Instant(end.0 + DAY), true);
    let (RunOutcome::Done(a), RunOutcome::Done(b)) = (a, b) else {
        panic!("the last runs did nothing");
    };
    assert_eq!(a.counts, b.counts);
    assert_eq!(
        abm_store::testing::export_json(&mut store),
        abm_store::testing::export_json(&mut plain)
    );
}

#[test]
fn packs_stay_exact_on_sqlite() {
    for policy in [Policy::Default, Policy::AccountFolds, Policy::Mixed] {
        let dir = tempfile::tempdir().unwrap();
        story(
            dir.path().join("p.db").to_str().unwrap(),
            dir.path().join("q.db").to_str().unwrap(),
            policy,
        );
    }
}

#[test]
#[ignore = "needs PostgreSQL: set ABM_TEST_PG_URL (run by .ci/run)"]
fn packs_stay_exact_on_postgres() {
    for policy in [Policy::Default, Policy::AccountFolds, Policy::Mixed] {
        abm_store::testing::in_pg_schema("packs", |url| {
            abm_store::testing::in_pg_schema("packs_twin", |twin| story(url, twin, policy))
        });
    }
}

/// A pack that does not decode is a typed error naming the table, never a panic: decoded in
/// turn, or on a helper thread.
#[test]
fn a_corrupt_pack_is_an_error() {
    for beside in [None, Some(0)] {
        abm_store::testing::set_load_helpers_from(beside);
        corrupt_pack_fails_the_run();
    }
}

fn corrupt_pack_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let config = Config::default();
    let spec = SampleSpec {
        accounts: 50,
        seed: 2,
        ..SampleSpec::default()
    };
    write_sample(dir.path(), &spec).unwrap();
    let mut store = Store::open(path.to_str().unwrap()).unwrap();
    store
        .import(
            &ImportInputs {
                accounts: Some(dir.path().join("accounts.csv").into()),
                engagement: Some(dir.path().join("engagement.csv").into()),
                ..ImportInputs::default()
            },
            &LoadOptions::new(&config),
        )
        .unwrap();
    drop(store);
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute(
        "UPDATE event_packs SET data = X'0105' WHERE account = (SELECT MIN(account) FROM event_packs)",
        [],
    )
    .unwrap();
    drop(c);
    let mut store = Store::open(path.to_str().unwrap()).unwrap();
    let rules = Rules::compile(&config, spec.as_of).unwrap();
    let opts = RunOptions {
        as_of: spec.as_of,
        threads: 1,
        full: true,
        log: &|_| {},
        progress: &|_, _, _| {},
    };
    let Err(err) = store.run(&rules, &opts) else {
        panic!("a corrupt pack fails the run");
    };
    assert!(err.to_string().contains("event_packs"), "{err}");
}
