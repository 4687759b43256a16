//! A store a server can share: 8 readers and a writer at once through one `StorePool`, on
//! SQLite and on PostgreSQL. Readers never wait for the writer, never see a half-written run
//! (every summary adds up), and see runs in order.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use abm_core::{Config, Instant, Rules};
use abm_io::load::LoadOptions;
use abm_io::sample::{write_sample, SampleSpec};
use abm_store::{ImportInputs, RunOptions, StorePool};

fn readers_and_a_writer(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_sample(
        &data,
        &SampleSpec {
            accounts: 2000,
            ..SampleSpec::default()
        },
    )
    .unwrap();
    let config = Config::default();
    let inputs = ImportInputs {
        accounts: Some(data.join("accounts.csv").into()),
        engagement: Some(data.join("engagement.csv").into()),
        triggers: Some(data.join("triggers.csv").into()),
        deals: Some(data.join("deals.csv").into()),
        more_engagement: Vec::new(),
    };
    let pool = StorePool::open(url, 4).unwrap();
    pool.get()
        .unwrap()
        .import(&inputs, &LoadOptions::new(&config))
        .unwrap();
    let run = |as_of: &str| {
        let as_of = Instant::parse(as_of).unwrap();
        let rules = Rules::compile(&config, as_of).unwrap();
        let opts = RunOptions {
            as_of,
            full: false,
            threads: 1,
            log: &|_| {},
            progress: &|_, _, _| {},
        };
        pool.get().unwrap().run(&rules, &opts).unwrap();
    };
    run("2026-10-01");

    let done = AtomicBool::new(false);
    let reads = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            let (pool, done, reads) = (Arc::clone(&pool), &done, &reads);
            s.spawn(move || {
                let mut last_run = 0;
                let mut n = 0u64;
                while !done.load(Ordering::Relaxed) || n < 3 {
                    let mut store = pool.get().unwrap();
                    let sum = store.summary().unwrap();
                    assert_eq!(
                        sum.accounts,
                        sum.cluster_icp_count
                            + sum.future_pipeline_count
                            + sum.active_focus_count
                            + sum.monitor_only_count,
                        "a whole run, never part of one"
                    );
                    assert!(sum.run >= last_run, "runs in order");
                    last_run = sum.run;
                    store.review_list(false).unwrap();
                    n += 1;
                    drop(store);
                    // Leave the writer some CPU on a small machine.
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                reads.fetch_add(n, Ordering::Relaxed);
            });
        }
        // The writer: more runs while the readers read.
        for as_of in ["2026-10-15", "2026-11-01", "2026-11-15"] {
            run(as_of);
        }
        done.store(true, Ordering::Relaxed);
    });
    let mut store = pool.get().unwrap();
    assert_eq!(store.summary().unwrap().run, 4);
    assert!(reads.load(Ordering::Relaxed) >= 24);
    eprintln!(
        "{url}: {} reads by 8 readers during 3 runs",
        reads.load(Ordering::Relaxed)
    );
}

#[test]
fn eight_readers_and_a_writer_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    readers_and_a_writer(&dir.path().join("abm.db").display().to_string());
}

#[test]
#[ignore = "needs PostgreSQL: set ABM_TEST_PG_URL (run by .ci/run)"]
fn eight_readers_and_a_writer_on_postgres() {
    abm_store::testing::in_pg_schema("pool", readers_and_a_writer);
}
