//! `abm whatif`: every account assessed under the old and the new config in one pass over the
//! data, compared (`abm_core::whatif`), and written as `whatif.json` + `whatif_accounts.csv`.
//!
//! The inputs are loaded and the engagement folded once when the two configs agree on what
//! loading reads (event and trigger vocabularies, windows, column mappings): scoring criteria,
//! tiers, the decision table, programs and capacity do not change the fold. When they differ
//! (a new event type, a longer window), the new config's fold runs too.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use abm_core::whatif::{because, AccountChange, Tally, WhatIf};
use abm_core::{assess, Instant, Rules, ScoringModel};

use crate::load::LoadOptions;
use crate::output::{self, OutFile};
use crate::outset::{OutputSet, SetKind};
use crate::segment::{id_order, load_all, Resolved};
use crate::IngestError;

/// What [`whatif`] read besides the comparison.
pub struct WhatIfRun {
    pub report: WhatIf,
    /// Whether the data had to be folded twice (the configs differ in what loading reads).
    pub folded_twice: bool,
    pub rejected_rows: u64,
}

/// Whether two configs load and fold the inputs the same way.
pub fn same_loading(old: &Rules, new: &Rules) -> bool {
    old.config.engagement == new.config.engagement
        && old.config.triggers == new.config.triggers
        && old.config.columns == new.config.columns
}

/// Assess every account under `old` and `new` (same `as_of`) and compare.
pub fn whatif(
    paths: &Resolved,
    old: &Rules,
    new: &Rules,
    opts: &LoadOptions<'_>,
) -> Result<WhatIfRun, IngestError> {
    if old.config.columns != new.config.columns {
        return Err(IngestError::Config(
            "the two configs map columns differently ([columns]): a what-if compares rules on \
             the same records; make [columns] the same in both"
                .into(),
        ));
    }
    let first = load_all(paths, old, None, false, opts)?;
    let second = if same_loading(old, new) {
        None
    } else {
        Some(load_all(paths, new, None, false, opts)?)
    };
    let loaded_new = second.as_ref().unwrap_or(&first);
    let table = &first.accounts.table;
    assert_eq!(
        table.len(),
        loaded_new.accounts.table.len(),
        "same accounts"
    );
    let old_model = ScoringModel::new(&old.config.icp, table.schema());
    let new_model = ScoringModel::new(&new.config.icp, table.schema());
    let order = id_order(&first.accounts);

    const BLOCK: usize = 8192;
    let next = AtomicUsize::new(0);
    let threads = opts.threads.max(1);
    let tally = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (next, order, first, old_model, new_model) =
                    (&next, &order, &first, &old_model, &new_model);
                s.spawn(move || {
                    let mut tally = Tally::default();
                    let (mut pa, mut pb) = (Vec::new(), Vec::new());
                    loop {
                        let b = next.fetch_add(1, Ordering::Relaxed);
                        if b * BLOCK >= order.len() {
                            break;
                        }
                        for &idx in &order[b * BLOCK..((b + 1) * BLOCK).min(order.len())] {
                            let account = first.accounts.table.get(idx);
                            let a = assess(
                                old,
                                old_model,
                                &account,
                                &first.facts(idx, Instant::MIN),
                                false,
                            );
                            let b = assess(
                                new,
                                new_model,
                                &account,
                                &loaded_new.facts(idx, Instant::MIN),
                                false,
                            );
                            let pair = (a.cluster, b.cluster);
                            let tiers = (a.score.tier, b.score.tier);
                            tally.add(pair, tiers, || {
                                // Each criterion's points, for the accounts that change.
                                old_model.points_into(&account, &mut pa);
                                new_model.points_into(&account, &mut pb);
                                let (text, reasons) =
                                    because((&old.config, &new.config), (&a, &b), (&pa, &pb));
                                AccountChange::new(
                                    account.id(),
                                    (&a, &b),
                                    pair,
                                    (text, reasons),
                                    None,
                                )
                            });
                        }
                    }
                    tally
                })
            })
            .collect();
        let mut all = Tally::default();
        for w in workers {
            all.merge(w.join().expect("what-if worker panicked"));
        }
        all
    });
    let rejected_rows = first.rejects.len() as u64;
    let report = tally.finish(&old.config, &new.config, old.as_of.to_string());
    // The loaded inputs go with the process (freeing them costs time for nothing).
    std::mem::forget(first);
    std::mem::forget(second);
    Ok(WhatIfRun {
        report,
        folded_twice: !same_loading(old, new),
        rejected_rows,
    })
}

/// Write `whatif.json` and `whatif_accounts.csv` into `out_dir` as one set.
pub fn write_whatif(
    out_dir: &Path,
    w: &WhatIf,
    inputs: &[&Path],
    tuning: &crate::Tuning,
) -> Result<(), IngestError> {
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |e| IngestError::Io { path: p, source: e }
    };
    let mut set =
        OutputSet::begin(out_dir, SetKind::WhatIf, inputs, tuning).map_err(io(out_dir))?;
    let p = out_dir.join("whatif.json");
    let mut json = set.create("whatif.json").map_err(io(&p))?;
    serde_json::to_writer_pretty(&mut json, w)
        .map_err(std::io::Error::other)
        .map_err(io(&p))?;
    json.write_all(b"\n").map_err(io(&p))?;
    let p = out_dir.join("whatif_accounts.csv");
    let mut csv = set.create("whatif_accounts.csv").map_err(io(&p))?;
    let mut buf = Vec::with_capacity(1 << 16);
    output::csv_line(
        &mut buf,
        [
            "account_id",
            "from",
            "to",
            "tier_from",
            "tier_to",
            "score_from",
            "score_to",
            "needs_review",
            "because",
        ],
    );
    for a in &w.accounts {
        let (sf, st) = (
            abm_core::scoring::format_score(a.score_from),
            abm_core::scoring::format_score(a.score_to),
        );
        let review = match a.needs_review {
            Some(true) => "yes",
            Some(false) => "no",
            None => "",
        };
        output::csv_output_line(
            &mut buf,
            [
                a.account_id.as_str(),
                a.from.as_str(),
                a.to.as_str(),
                a.tier_from.as_str(),
                a.tier_to.as_str(),
                sf.as_str(),
                st.as_str(),
                review,
                a.because.as_str(),
            ],
        );
        if buf.len() > 1 << 20 {
            csv.write_all(&buf).map_err(io(&p))?;
            buf.clear();
        }
    }
    csv.write_all(&buf).map_err(io(&p))?;
    let files: Vec<OutFile> = vec![json, csv];
    set.commit(files).map_err(|(path, source)| IngestError::Io {
        path: path.display().to_string(),
        source,
    })
}
