//! `abm demo`'s database: the generated sample imported and run at several dates, with the
//! events that happened between them imported before each run, so the dashboard opens on
//! history (runs, movements, pending checkpoints): `abm serve --db abm-demo/abm.db`.

use abm_app::{App, StoreSettings};
use abm_core::{Config, Instant};
use abm_io::load::LoadOptions;
use abm_io::source::InputSource;
use abm_store::{ImportInputs, RunOutcome};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Days before the sample's as_of of each run (the last is the sample's as_of).
const RUNS_DAYS_BEFORE: [i64; 3] = [60, 30, 0];

/// What the demo database holds.
pub(crate) struct DemoDb {
    pub(crate) path: PathBuf,
    pub(crate) runs: usize,
    pub(crate) movements: usize,
    pub(crate) pending: usize,
}

/// The engagement file's rows split by date: rows up to each cut (and after the previous).
fn split_events(csv: &str, cuts: &[Instant]) -> Result<Vec<Vec<u8>>> {
    let mut lines = csv.lines();
    let header = lines
        .next()
        .context("the sample's engagement file is empty")?;
    let at_col = header
        .split(',')
        .position(|h| h == "occurred_at")
        .context("the sample's engagement file has no occurred_at column")?;
    let mut parts: Vec<Vec<u8>> = cuts
        .iter()
        .map(|_| format!("{header}\n").into_bytes())
        .collect();
    for line in lines {
        // The sample writes no quoted fields in these columns.
        let at = line
            .split(',')
            .nth(at_col)
            .and_then(|t| Instant::parse(t).ok())
            .with_context(|| format!("an engagement row without a date: {line}"))?;
        if let Some(i) = cuts.iter().position(|c| at <= *c) {
            parts[i].extend_from_slice(line.as_bytes());
            parts[i].push(b'\n');
        }
    }
    Ok(parts)
}

/// Build `out/abm.db` from the sample in `data` (a previous demo database is replaced).
pub(crate) fn build(out: &Path, data: &Path, config: &Config, as_of: Instant) -> Result<DemoDb> {
    let path = out.join("abm.db");
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_file() => std::fs::remove_file(&p)
                .with_context(|| format!("removing the previous demo database {}", p.display()))?,
            Ok(_) => anyhow::bail!("{} is not a regular file: not touching it", p.display()),
            Err(_) => {}
        }
    }
    let app = App::open(
        &StoreSettings::new(path.display().to_string()),
        config.clone(),
    )?;
    let cuts: Vec<Instant> = RUNS_DAYS_BEFORE
        .iter()
        .map(|d| Instant(as_of.0 - d * 86_400 * 1_000_000))
        .collect();
    let engagement = std::fs::read_to_string(data.join("engagement.csv"))
        .with_context(|| format!("reading {}", data.join("engagement.csv").display()))?;
    let opts = LoadOptions::new(config);
    let mut movements = 0;
    let mut runs = 0;
    for (i, (events, cut)) in split_events(&engagement, &cuts)?
        .into_iter()
        .zip(&cuts)
        .enumerate()
    {
        let mut inputs = ImportInputs {
            engagement: Some(InputSource::csv("engagement.csv", events)),
            ..ImportInputs::default()
        };
        if i == 0 {
            inputs.accounts = Some(data.join("accounts.csv").into());
            inputs.triggers = Some(data.join("triggers.csv").into());
            inputs.deals = Some(data.join("deals.csv").into());
        }
        app.import(&inputs, &opts, &mut |_| Ok(()))?;
        if let RunOutcome::Done(r) = app.run(Some(*cut), None, abm_app::RunObserver::default())? {
            runs += 1;
            movements += (r.promotions + r.demotions) as usize;
        }
    }
    let pending = app.checkpoints(abm_app::accounts::CheckpointStatus::Pending)?;
    Ok(DemoDb {
        path,
        runs,
        movements,
        pending: pending.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_at_the_cuts() {
        let csv = "account_id,occurred_at,type\nA,2026-01-01T00:00:00Z,x\nB,2026-02-01T00:00:00Z,y\nC,2026-04-01T00:00:00Z,z\n";
        let cuts = [
            Instant::parse("2026-01-15").unwrap(),
            Instant::parse("2026-03-01").unwrap(),
        ];
        let parts = split_events(csv, &cuts).unwrap();
        let text: Vec<String> = parts
            .into_iter()
            .map(|p| String::from_utf8(p).unwrap())
            .collect();
        assert_eq!(
            text,
            vec![
                "account_id,occurred_at,type\nA,2026-01-01T00:00:00Z,x\n",
                "account_id,occurred_at,type\nB,2026-02-01T00:00:00Z,y\n"
            ]
        );
    }
}
