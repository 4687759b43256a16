//! A run's transition matrix (`Store::transitions`) against the per-account truth
//! (`Store::assessment_at` at the run and at the one before), and the listing's transition
//! filter against the same, over a sample imported a slice of events at a time with a run
//! after each slice and review decisions and re-evaluations between runs (one run full, the
//! others scaled with change) — on SQLite and PostgreSQL. The matrix each run stored equals the
//! one counted afresh from the history (`transitions_recomputed`, the oracle), and so does the
//! one migration 0011 counts for runs recorded before it.

use abm_core::{Cluster, Config, EngagementLevel, Instant, Rules, Tier};
use abm_io::load::LoadOptions;
use abm_io::sample::{write_sample, SampleSpec};
use abm_io::source::InputSource;
use abm_store::listing::{AccountFilter, AccountListItem, Cursor, Moved};
use abm_store::{ImportInputs, RunOptions, Store};
use std::collections::{BTreeMap, BTreeSet};

const DAY: i64 = 86_400 * 1_000_000;

fn run(store: &mut Store, config: &Config, as_of: Instant, full: bool) {
    let rules = Rules::compile(config, as_of).unwrap();
    let opts = RunOptions {
        as_of,
        threads: 2,
        full,
        log: &|_| {},
        progress: &|_, _, _| {},
    };
    store.run(&rules, &opts).unwrap();
}

type Cell = (Option<Cluster>, Cluster);

/// Every account's (cluster at the previous run, cluster at `run`), from `assessment_at`.
fn truth(store: &mut Store, ids: &[String], run: i64) -> BTreeMap<Cell, BTreeSet<String>> {
    let mut out: BTreeMap<Cell, BTreeSet<String>> = BTreeMap::new();
    for id in ids {
        let now = store.assessment_at(id, run).unwrap();
        let before = if run > 1 {
            store.assessment_at(id, run - 1).unwrap()
        } else {
            None
        };
        if let Some(now) = now {
            let from = before.map(|b| Cluster::parse(&b.cluster).unwrap());
            let to = Cluster::parse(&now.cluster).unwrap();
            out.entry((from, to)).or_default().insert(id.clone());
        }
    }
    out
}

/// The accounts the listing gives for one cell, paged 7 at a time.
fn listed(store: &mut Store, run: i64, (from, to): Cell) -> BTreeSet<String> {
    let mut got = BTreeSet::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = store
            .list_accounts(&AccountFilter {
                limit: 7,
                cursor,
                moved: Some(Moved { run, from, to }),
                ..AccountFilter::default()
            })
            .unwrap();
        for i in page.items {
            assert!(got.insert(i.account_id), "an account listed twice");
        }
        match page.next_cursor {
            Some(c) => cursor = Some(Cursor::parse(&c).unwrap()),
            None => return got,
        }
    }
}

fn story(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::default();
    let spec = SampleSpec {
        accounts: 400,
        seed: 11,
        ..SampleSpec::default()
    };
    write_sample(dir.path(), &spec).unwrap();
    let end = spec.as_of;
    let cuts: Vec<Instant> = [120, 75, 60, 30, 10, 0]
        .iter()
        .map(|d| Instant(end.0 - d * DAY))
        .collect();
    // The events a slice at a time.
    let events = std::fs::read_to_string(dir.path().join("engagement.csv")).unwrap();
    let mut lines = events.lines();
    let header = lines.next().unwrap().to_string();
    let at_col = header.split(',').position(|h| h == "occurred_at").unwrap();
    let rows: Vec<(Instant, String)> = lines
        .map(|l| {
            let at = Instant::parse(l.split(',').nth(at_col).unwrap()).unwrap();
            (at, l.to_string())
        })
        .collect();
    let mut store = Store::open(url).unwrap();
    let opts = LoadOptions::new(&config);
    let mut ids: Vec<String> = Vec::new();
    for (i, cut) in cuts.iter().enumerate() {
        let lo = if i == 0 { Instant::MIN } else { cuts[i - 1] };
        let slice = abm_store::testing::csv_slice(&header, &rows, lo, *cut);
        let mut inputs = ImportInputs {
            engagement: Some(InputSource::csv("engagement.csv", slice)),
            ..ImportInputs::default()
        };
        if i == 0 {
            inputs.accounts = Some(dir.path().join("accounts.csv").into());
            inputs.triggers = Some(dir.path().join("triggers.csv").into());
            inputs.deals = Some(dir.path().join("deals.csv").into());
        }
        store.import(&inputs, &opts).unwrap();
        run(&mut store, &config, *cut, i == 3);
        if i == 0 {
            store
                .export(&mut |r| {
                    ids.push(r.account_id.clone());
                    Ok(())
                })
                .unwrap();
        }
        // Decide some of what waits: approve the first, reject the second.
        let pending = store.review_list(false).unwrap();
        let mut accounts = pending.iter().filter(|c| c.account_id.is_some());
        if let Some(c) = accounts.next() {
            store.approve(c.id, "ana", Some("ok")).unwrap();
        }
        if let Some(c) = accounts.next() {
            store.reject(c.id, "ben", Some("not yet")).unwrap();
        }
        // Re-evaluate a few accounts a little later (their state may change without a
        // snapshot row: the next run's matrix reads their row, not their state).
        let later = Instant(cut.0 + 3 * DAY);
        let rules = Rules::compile(&config, later).unwrap();
        let some: Vec<String> = ids.iter().skip(i * 7).step_by(37).cloned().collect();
        store.reevaluate(&rules, &some).unwrap();
    }
    let runs = store.list_runs(100).unwrap().len() as i64;
    assert_eq!(runs, cuts.len() as i64, "one run per slice");
    let mut off_diagonal = 0;
    let mut stored = Vec::new();
    for r in 1..=runs {
        let t = store.transitions(r).unwrap();
        assert_eq!(
            t,
            store.transitions_recomputed(r).unwrap(),
            "run {r}: the stored matrix equals the one counted from the history"
        );
        stored.push(t.clone());
        assert_eq!(t.previous, (r > 1).then_some(r - 1));
        let expected = truth(&mut store, &ids, r);
        let got: BTreeMap<Cell, i64> = t
            .cells
            .iter()
            .map(|c| ((c.from, c.to), c.accounts))
            .collect();
        let want: BTreeMap<Cell, i64> =
            expected.iter().map(|(k, v)| (*k, v.len() as i64)).collect();
        assert_eq!(
            got, want,
            "run {r}: the matrix equals the per-account truth"
        );
        for (cell, accounts) in &expected {
            if cell.0 != Some(cell.1) {
                off_diagonal += 1;
            }
            assert_eq!(
                &listed(&mut store, r, *cell),
                accounts,
                "run {r} cell {cell:?}: the listing gives the cell's accounts"
            );
        }
    }
    assert!(
        off_diagonal >= 3,
        "the story moves accounts ({off_diagonal} cells off the diagonal)"
    );
    assert!(matches!(
        store.transitions(runs + 1),
        Err(abm_store::StoreError::UnknownRun(_))
    ));
    // The filters as the runs, decisions and re-evaluations left the state rows' copies.
    check_filters(&mut store, ids.len());
    // Runs recorded before migration 0011: the migration counts their matrices.
    drop(store);
    forget_stored_matrices(url);
    let mut store = Store::open(url).unwrap();
    for t in &stored {
        let r = t.run;
        assert_eq!(
            &store.transitions(r).unwrap(),
            t,
            "run {r} after migration 0011"
        );
    }
    check_filters(&mut store, ids.len());

    // One account now (a by-id read) is its history cut to the latest row and the pending
    // checkpoints, for every account of a story with approvals, rejections and re-evaluations.
    fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
        serde_json::to_value(v).unwrap()
    }
    let mut with_pending = 0;
    let as_of = store.latest_as_of().unwrap().unwrap();
    let rules = std::sync::Arc::new(Rules::compile(&config, as_of).unwrap());
    for id in &ids {
        let h = store.history(id).unwrap();
        let now = store.account_now(id).unwrap();
        // The detail (one transaction) is the account now and its explanation as of the
        // latest run, as read one after the other.
        let (d_now, d_ex) = store
            .account_detail(id, |a| {
                assert_eq!(a, as_of, "the rules asked for the latest run's as_of");
                Ok::<_, abm_store::StoreError>(rules.clone())
            })
            .unwrap();
        assert_eq!(json(&d_now), json(&now), "{id}");
        let ex = store.explain(id, &rules).unwrap();
        assert_eq!(d_ex.as_ref(), Some(&ex), "{id}");
        assert_eq!(
            (&now.account_id, &now.name, &now.fields),
            (&h.account_id, &h.name, &h.fields)
        );
        assert_eq!(json(&now.state), json(&h.state), "{id}");
        let latest: Vec<_> = h
            .snapshots
            .iter()
            .max_by_key(|s| s.run)
            .into_iter()
            .collect();
        assert_eq!(now.snapshots.len(), latest.len(), "{id}");
        assert_eq!(
            json(&now.snapshots.first()),
            json(&latest.first().copied()),
            "{id}"
        );
        let pending: Vec<_> = h
            .checkpoints
            .iter()
            .filter(|c| c.status == abm_core::movement::CheckpointStatus::Pending)
            .collect();
        with_pending += usize::from(!pending.is_empty());
        assert_eq!(json(&now.checkpoints), json(&pending), "{id}");
        assert!(now.movements.is_empty() && now.decisions.is_empty());
    }
    assert!(with_pending > 0, "the story leaves checkpoints pending");
}

/// Whether a listed account matches a filter.
type Holds = Box<dyn Fn(&AccountListItem) -> bool>;

/// The listing reads each account's latest row, however old: every account has a tier, and
/// each filter on the latest row (read from the state row's copy, migration 0014) gives exactly
/// the accounts whose row says so.
fn check_filters(store: &mut Store, accounts: usize) {
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_accounts(&AccountFilter {
                limit: 1000,
                cursor,
                ..AccountFilter::default()
            })
            .unwrap();
        all.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(Cursor::parse(&c).unwrap()),
            None => break,
        }
    }
    assert_eq!(all.len(), accounts);
    assert!(
        all.iter().all(|i| i.tier.is_some()),
        "every account has its latest row"
    );
    let mut filters: Vec<(AccountFilter, Holds)> = Vec::new();
    for t in [Tier::A, Tier::B, Tier::C, Tier::D, Tier::E] {
        filters.push((
            AccountFilter {
                tier: Some(t),
                ..AccountFilter::default()
            },
            Box::new(move |i| i.tier.as_deref() == Some(t.as_str())),
        ));
    }
    for e in [
        EngagementLevel::None,
        EngagementLevel::Low,
        EngagementLevel::Medium,
        EngagementLevel::High,
    ] {
        filters.push((
            AccountFilter {
                engagement: Some(e),
                ..AccountFilter::default()
            },
            Box::new(move |i| i.engagement_level.as_deref() == Some(e.as_str())),
        ));
    }
    let segments: BTreeSet<String> = all.iter().filter_map(|i| i.micro_segment.clone()).collect();
    assert!(segments.len() >= 2, "{segments:?}");
    for m in segments {
        let f = AccountFilter {
            micro_segment: Some(m.clone()),
            ..AccountFilter::default()
        };
        filters.push((
            f,
            Box::new(move |i| i.micro_segment.as_deref() == Some(m.as_str())),
        ));
    }
    filters.push((
        AccountFilter {
            tier: Some(Tier::B),
            engagement: Some(EngagementLevel::Medium),
            ..AccountFilter::default()
        },
        Box::new(|i| {
            i.tier.as_deref() == Some("B") && i.engagement_level.as_deref() == Some("medium")
        }),
    ));
    let mut nonempty = 0;
    for (f, holds) in &filters {
        let want: BTreeSet<_> = all
            .iter()
            .filter(|i| holds(i))
            .map(|i| i.account_id.clone())
            .collect();
        let got: BTreeSet<_> = store
            .list_accounts(&AccountFilter {
                limit: 1000,
                ..f.clone()
            })
            .unwrap()
            .items
            .into_iter()
            .map(|i| i.account_id)
            .collect();
        nonempty += usize::from(!want.is_empty());
        assert_eq!(got, want, "{f:?}");
    }
    assert!(nonempty >= 8, "the story fills most filters ({nonempty})");
}

/// The store as it was before migrations 0011 (no stored matrix) and 0014 (no list columns on
/// the state rows), its runs kept.
fn forget_stored_matrices(url: &str) {
    let sql = "DROP TABLE run_transitions; DELETE FROM schema_migrations WHERE version = 11;
        ALTER TABLE account_state DROP COLUMN tier;
        ALTER TABLE account_state DROP COLUMN engagement;
        ALTER TABLE account_state DROP COLUMN candidate;
        ALTER TABLE account_state DROP COLUMN micro_segment;
        DELETE FROM schema_migrations WHERE version = 14";
    if url.starts_with("postgres") {
        let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
        c.batch_execute(sql).unwrap();
    } else {
        let c = rusqlite::Connection::open(url).unwrap();
        c.execute_batch(sql).unwrap();
    }
}

#[test]
fn transitions_match_every_account_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    story(&dir.path().join("abm.db").display().to_string());
}

#[test]
#[ignore = "needs PostgreSQL: set ABM_TEST_PG_URL (run by .ci/run)"]
fn transitions_match_every_account_on_postgres() {
    abm_store::testing::in_pg_schema("trans", story);
}
