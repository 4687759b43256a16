//! Benchmark of an account's detail (`App::account`, what `GET /api/accounts/{id}` answers),
//! in-process and on one thread: read `N` accounts picked evenly over a stored database, then
//! read them again `PASSES` times (the pages cached, as a busy server has them), and print
//! per call the mean and percentiles of the store's part and of the JSON encoding, as JSON.
//! Read-only.
//!
//! cargo run --release -p abm-app --example account_detail -- DATABASE_URL [N] [PASSES]

mod common;

use abm_app::{App, StoreSettings};
use abm_core::Config;
use std::time::Instant as Clock;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: account_detail DATABASE_URL [N] [PASSES]")?;
    let n: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(2000);
    let passes: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(3)
        .max(1);
    let mut settings = StoreSettings::new(url);
    settings.create = false;
    let app = App::open(&settings, Config::default())?;
    let ids = common::spread_ids(&app, n)?;
    if ids.is_empty() {
        return Err("the store has no accounts: abm import first".into());
    }
    // A first pass fills the caches; the others are measured.
    let (mut store, mut json) = (Vec::new(), Vec::new());
    let mut bytes = 0usize;
    for pass in 0..=passes {
        for id in &ids {
            let t = Clock::now();
            let detail = app.account(id)?;
            let read = t.elapsed();
            let t = Clock::now();
            let body = serde_json::to_vec(&detail)?;
            let encoded = t.elapsed();
            if pass > 0 {
                store.push(read.as_secs_f64() * 1e6);
                json.push(encoded.as_secs_f64() * 1e6);
                bytes += body.len();
            }
        }
    }
    let stats = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let q = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
        let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
        serde_json::json!({"mean_us": mean, "p50_us": q(0.5), "p99_us": q(0.99)})
    };
    let calls = store.len();
    println!(
        "{}",
        serde_json::json!({"accounts": ids.len(), "calls": calls,
                           "mean_bytes": bytes / calls.max(1),
                           "store": stats(&mut store), "json": stats(&mut json)})
    );
    Ok(())
}
