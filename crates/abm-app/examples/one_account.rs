//! Benchmark of the one-account call (`App::reevaluate`), in-process: re-assess `N` accounts
//! picked evenly over a stored database, one call each, as of the latest run's as_of, and print
//! the latency percentiles as JSON (then the same accounts 100 per call: the time per account). Used by `bench/state.py`; changes the database like the
//! API's ingest does (current rows, states).
//!
//! cargo run --release -p abm-app --example one_account -- DATABASE_URL [N]

mod common;

use abm_app::{App, StoreSettings};
use abm_core::Config;
use std::time::Instant as Clock;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or("usage: one_account DATABASE_URL [N]")?;
    let n: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let mut settings = StoreSettings::new(url);
    settings.create = false;
    let app = App::open(&settings, Config::default())?;
    let as_of = app.latest_as_of()?.ok_or("no run yet")?;
    let ids = common::spread_ids(&app, n)?;
    let mut took = Vec::with_capacity(ids.len());
    for id in &ids {
        let t = Clock::now();
        let r = app.reevaluate(std::slice::from_ref(id), Some(as_of))?;
        took.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(r.accounts.len(), 1, "{id}");
    }
    took.sort_by(f64::total_cmp);
    let q = |p: f64| took[((took.len() as f64 - 1.0) * p).round() as usize];
    // The same accounts again, 100 per call (what a 1,000-event API batch touches): the time
    // per account.
    let t = Clock::now();
    for chunk in ids.chunks(100) {
        app.reevaluate(chunk, Some(as_of))?;
    }
    let batched = t.elapsed().as_secs_f64() * 1e3 / ids.len().max(1) as f64;
    println!(
        "{}",
        serde_json::json!({"calls": took.len(), "p50_ms": q(0.5), "p90_ms": q(0.9),
                           "p99_ms": q(0.99), "max_ms": q(1.0),
                           "batched_100_ms_per_account": batched})
    );
    Ok(())
}
