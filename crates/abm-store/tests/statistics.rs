//! PostgreSQL: an import or a run that writes many rows refreshes the planner's statistics of
//! the tables it wrote, after its commit (`Store::analyze`); a small one leaves them to
//! autovacuum. Without them a filtered account list at 1M accounts scanned every state row.

use abm_core::{Config, Instant, Rules};
use abm_io::load::LoadOptions;
use abm_io::sample::{write_sample, SampleSpec};
use abm_io::source::InputSource;
use abm_store::{ImportInputs, RunOptions, RunOutcome, Store, ANALYZE_FROM_ROWS};

/// How many times each of `tables` was analyzed by hand (not by autovacuum), in the store's
/// schema.
fn analyzed(url: &str, tables: &[&str]) -> Vec<i64> {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    tables
        .iter()
        .map(|t| {
            c.query_one(
                "SELECT analyze_count FROM pg_stat_user_tables
                 WHERE schemaname = current_schema() AND relname = $1",
                &[t],
            )
            .unwrap()
            .get::<_, i64>(0)
        })
        .collect()
}

/// The statistics collector reports with a delay (PostgreSQL 15 flushes at transaction end,
/// older servers through the collector): wait until `want` holds or 10 s pass.
fn wait_for(url: &str, tables: &[&str], want: impl Fn(&[i64]) -> bool) -> Vec<i64> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got = analyzed(url, tables);
        if want(&got) || std::time::Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn story(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let spec = SampleSpec {
        accounts: 12_000,
        events_per_account: 2.0,
        seed: 3,
        ..SampleSpec::default()
    };
    let counts = write_sample(dir.path(), &spec).unwrap();
    assert!(counts.accounts + counts.events >= ANALYZE_FROM_ROWS);
    let config = Config::default();
    let mut store = Store::open(url).unwrap();
    let opts = LoadOptions::new(&config);
    let import = ["accounts", "events"];
    let state = ["account_state", "snapshots"];
    assert_eq!(analyzed(url, &import), [0, 0]);

    // A first load of 12,000 accounts: their tables are analyzed once it commits.
    store
        .import(
            &ImportInputs {
                accounts: Some(dir.path().join("accounts.csv").into()),
                engagement: Some(dir.path().join("engagement.csv").into()),
                ..ImportInputs::default()
            },
            &opts,
        )
        .unwrap();
    assert_eq!(wait_for(url, &import, |a| a == [1, 1]), [1, 1]);
    assert_eq!(
        analyzed(url, &state),
        [0, 0],
        "a run's tables wait for a run"
    );

    // A run that writes a row for each of them: the state tables are analyzed.
    let rules = Rules::compile(&config, spec.as_of).unwrap();
    let run = RunOptions {
        as_of: spec.as_of,
        threads: 2,
        full: false,
        log: &|_| {},
        progress: &|_, _, _| {},
    };
    assert!(matches!(
        store.run(&rules, &run).unwrap(),
        RunOutcome::Done(_)
    ));
    assert_eq!(wait_for(url, &state, |a| a == [1, 1]), [1, 1]);

    // The next day's run writes a row for every account again (their movement goes from
    // `baseline` to `unchanged`): analyzed again.
    let day = 86_400 * 1_000_000;
    let day2 = Instant(spec.as_of.0 + day);
    let run2 = RunOptions { as_of: day2, ..run };
    store
        .run(&Rules::compile(&config, day2).unwrap(), &run2)
        .unwrap();
    assert_eq!(wait_for(url, &state, |a| a == [2, 2]), [2, 2]);

    // A new event for one account and a run that changes a handful of rows: nothing analyzed.
    let accounts = std::fs::read_to_string(dir.path().join("accounts.csv")).unwrap();
    let first = accounts.lines().nth(1).unwrap().split(',').next().unwrap();
    let events = std::fs::read_to_string(dir.path().join("engagement.csv")).unwrap();
    let header = events.lines().next().unwrap();
    let few = format!("{header}\n") + &row_for(header, first, "2026-11-02T10:00:00Z");
    store
        .import(
            &ImportInputs {
                engagement: Some(InputSource::csv("few.csv", few.into_bytes())),
                ..ImportInputs::default()
            },
            &opts,
        )
        .unwrap();
    let day3 = Instant(spec.as_of.0 + 2 * day);
    let run3 = RunOptions { as_of: day3, ..run };
    match store
        .run(&Rules::compile(&config, day3).unwrap(), &run3)
        .unwrap()
    {
        RunOutcome::Done(r) => assert!(r.snapshot_rows < ANALYZE_FROM_ROWS, "{}", r.snapshot_rows),
        RunOutcome::Unchanged { .. } => panic!("the new event changes the data"),
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        analyzed(url, &import),
        [1, 1],
        "a small import analyzes nothing"
    );
    assert_eq!(
        analyzed(url, &state),
        [2, 2],
        "a small run analyzes nothing"
    );
}

/// One engagement row for the sample's first account, in the file's own columns.
fn row_for(header: &str, account: &str, at: &str) -> String {
    header
        .split(',')
        .map(|c| match c {
            "account_id" => account,
            "occurred_at" => at,
            "type" => "meeting",
            "contact_id" => "c-new",
            _ => "",
        })
        .collect::<Vec<_>>()
        .join(",")
        + "\n"
}

#[test]
#[ignore = "needs PostgreSQL: set ABM_TEST_PG_URL (run by .ci/run)"]
fn many_rows_refresh_the_planners_statistics_on_postgres() {
    abm_store::testing::in_pg_schema("stats", story);
}
