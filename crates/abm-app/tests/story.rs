//! Story tests of the application layer, in-process, on SQLite and on PostgreSQL: records in
//! (an API batch with bad items), files in, runs, the review queue, history and export — what
//! the CLI, the HTTP API and the connectors all go through.

use abm_app::records::{EventRecord, RecordBatch, RecordKind};
use abm_app::{App, RunObserver, StoreSettings};
use abm_core::{Config, Instant};
use abm_io::sample::{write_sample, SampleSpec};
use abm_store::{ImportInputs, RunOutcome};
use serde_json::json;

mod common;
use common::{app, on_postgres, on_sqlite};

/// An API batch: good items stored, bad ones named by index and field, a re-post adds nothing,
/// and the same rows from a file are judged the same way.
fn records_in(url: &str) {
    let app = app(url);
    let accounts = RecordBatch::new(
        RecordKind::Accounts,
        "api:accounts",
        vec![
            json!({"account_id": "A1", "name": "Acme", "industry": "Software", "employees": 600, "country": "US"}),
            json!({"account_id": "A2", "name": "Beta", "industry": "Retail", "employees": "many"}),
            json!(["not", "an", "object"]),
            json!({"account_id": "A3", "name": "Gamma", "employees": 40}),
        ],
    );
    let events = RecordBatch::of(
        RecordKind::Engagement,
        "api:engagement",
        &[
            EventRecord {
                account_id: "A1".into(),
                occurred_at: "2026-11-20T10:00:00Z".into(),
                event_type: "meeting".into(),
                contact_id: Some("c1".into()),
                event_id: Some("e1".into()),
                detail: None,
            },
            EventRecord {
                account_id: "A1".into(),
                occurred_at: "not a date".into(),
                event_type: "meeting".into(),
                contact_id: Some("c2".into()),
                event_id: Some("e2".into()),
                detail: None,
            },
            EventRecord {
                account_id: "A9".into(),
                occurred_at: "2026-11-21T10:00:00Z".into(),
                event_type: "email_reply".into(),
                contact_id: Some("c9".into()),
                event_id: Some("e9".into()),
                detail: None,
            },
        ],
    );
    let r = app
        .import_records(&[accounts.clone(), events.clone()])
        .unwrap();
    assert_eq!(r.report.accounts_read, 3, "{r:?}");
    assert_eq!(r.report.accounts_changed, 2, "{r:?}");
    assert_eq!(r.report.events_added, 1, "{r:?}");
    assert_eq!(
        r.report.events_waiting, 1,
        "the event of A9 waits for its account"
    );
    let got: Vec<(RecordKind, usize, &str)> = r
        .rejected_items
        .iter()
        .map(|x| (x.kind, x.index, x.field.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (RecordKind::Accounts, 1, "employees"),
            (RecordKind::Accounts, 2, ""),
            (RecordKind::Engagement, 1, "occurred_at"),
        ],
        "{:#?}",
        r.rejected_items
    );
    // The same rows from a file are judged the same way (line = index + 1).
    {
        let dir = tempfile::tempdir().unwrap();
        let (abm_io::source::InputSource::Memory { bytes, .. }, _) = accounts.to_input() else {
            unreachable!()
        };
        let file = dir.path().join("accounts.jsonl");
        std::fs::write(&file, &bytes[..]).unwrap();
        let other = App::open(
            &StoreSettings::new(dir.path().join("other.db").display().to_string()),
            Config::default(),
        )
        .unwrap();
        let inputs = ImportInputs {
            accounts: Some(file.into()),
            ..ImportInputs::default()
        };
        let rep = other
            .import(&inputs, &other.load_options(), &mut |_| Ok(()))
            .unwrap();
        let from_file: Vec<(u64, String, String)> = rep
            .rejects
            .rows
            .iter()
            .map(|r| (r.line, r.column.clone(), r.reason.clone()))
            .collect();
        let from_records: Vec<(u64, String, String)> = r
            .rejected_items
            .iter()
            .filter(|x| x.kind == RecordKind::Accounts && !x.field.is_empty())
            .map(|x| (x.index as u64 + 1, x.field.clone(), x.reason.clone()))
            .collect();
        assert_eq!(from_file, from_records);
        assert_eq!(rep.accounts_changed, r.report.accounts_changed);
    }
    // Re-posting the same batches adds nothing.
    let again = app.import_records(&[accounts, events]).unwrap();
    assert!(!again.report.changed_anything(), "{:?}", again.report);
    assert_eq!(again.rejected_items.len(), 3);

    // The stored accounts run like any others.
    match app
        .run(
            Some(Instant::parse("2026-11-30").unwrap()),
            Some(1),
            RunObserver::default(),
        )
        .unwrap()
    {
        RunOutcome::Done(r) => assert_eq!(r.accounts, 2),
        other => panic!("{other:?}"),
    }
    let h = app.history("A1").unwrap();
    assert_eq!(h.snapshots.len(), 1);
    assert_eq!(app.summary().unwrap().accounts, 2);
}

/// Files in, two runs, a decision, history and export — the CLI's story, without the binary.
fn files_in(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_sample(
        &data,
        &SampleSpec {
            accounts: 400,
            ..SampleSpec::default()
        },
    )
    .unwrap();
    let app = app(url);
    let inputs = ImportInputs {
        accounts: Some(data.join("accounts.csv").into()),
        engagement: Some(data.join("engagement.csv").into()),
        triggers: Some(data.join("triggers.csv").into()),
        deals: Some(data.join("deals.csv").into()),
        more_engagement: Vec::new(),
    };
    let mut seen_rejects = None;
    let journaled = abm_store::testing::journaled_loads();
    let rep = app
        .import(&inputs, &app.load_options(), &mut |r| {
            seen_rejects = Some(r.len());
            Ok(())
        })
        .unwrap();
    if !url.starts_with("postgres") {
        // The pool's checkpointer closed its connection meanwhile: the first load could
        // leave WAL mode for its transaction (`abm_store::import`).
        assert_eq!(abm_store::testing::journaled_loads(), journaled + 1);
    }
    assert_eq!(rep.accounts_read, 400);
    assert_eq!(seen_rejects, Some(rep.rejected as usize));
    let rep2 = app
        .import(&inputs, &app.load_options(), &mut |_| Ok(()))
        .unwrap();
    assert!(!rep2.changed_anything(), "re-import adds nothing");

    let sample_as_of = Instant::parse(abm_io::sample::SAMPLE_AS_OF).unwrap();
    let first = app
        .run(Some(sample_as_of), Some(2), RunObserver::default())
        .unwrap();
    let RunOutcome::Done(first) = first else {
        panic!("first run")
    };
    assert_eq!(first.accounts, 400);
    // The same run again records nothing new.
    assert!(matches!(
        app.run(Some(sample_as_of), Some(2), RunObserver::default())
            .unwrap(),
        RunOutcome::Unchanged { .. }
    ));
    let mut rows = 0;
    let info = app
        .export(&mut |_| {
            rows += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(rows, 400);
    assert_eq!(info.accounts, 400);

    let later = Instant(sample_as_of.0 + 120 * 86_400_000_000);
    app.run(Some(later), Some(2), RunObserver::default())
        .unwrap();
    let pending = app.review_list(false).unwrap();
    let s = app.summary().unwrap();
    assert_eq!(
        s.pending.values().sum::<i64>() as usize,
        pending.len(),
        "summary and queue agree"
    );
    {
        let c = pending
            .iter()
            .find(|c| c.account_id.is_some())
            .expect("120 days on, some account has a pending checkpoint");
        let out = app.decide(c.id, false, "tester", Some("not now")).unwrap();
        assert_eq!(out.checkpoint.reviewer.as_deref(), Some("tester"));
        let account = c.account_id.clone().unwrap();
        let h = app.history(&account).unwrap();
        assert!(h.decisions.iter().any(|d| d.checkpoint == c.id));
        assert!(
            app.decide(c.id, true, "tester", None).is_err(),
            "decided once"
        );
    }
}

/// Every account's export row by id, as JSON.
fn export_rows(app: &App) -> std::collections::BTreeMap<String, serde_json::Value> {
    let mut rows = std::collections::BTreeMap::new();
    app.export(&mut |r| {
        rows.insert(r.account_id.clone(), serde_json::to_value(r).unwrap());
        Ok(())
    })
    .unwrap();
    rows
}

/// A store at `url` with `accounts` sample accounts imported (the directory holds the files).
fn imported_sample(url: &str, accounts: u64) -> (tempfile::TempDir, App) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_sample(
        &data,
        &SampleSpec {
            accounts,
            ..SampleSpec::default()
        },
    )
    .unwrap();
    let app = app(url);
    let inputs = ImportInputs {
        accounts: Some(data.join("accounts.csv").into()),
        engagement: Some(data.join("engagement.csv").into()),
        triggers: Some(data.join("triggers.csv").into()),
        deals: Some(data.join("deals.csv").into()),
        more_engagement: Vec::new(),
    };
    app.import(&inputs, &app.load_options(), &mut |_| Ok(()))
        .unwrap();
    (dir, app)
}

/// Live ingest: events posted between runs re-assess their accounts at once, recorded under
/// the latest run as current state; the next run at the same as_of computes the same rows
/// for them and records no movement of its own for them. A re-post changes nothing.
fn live_ingest(url: &str) {
    let (_dir, app) = imported_sample(url, 300);
    let t0 = Instant::parse(abm_io::sample::SAMPLE_AS_OF).unwrap();
    let event = |account: &str, contact: &str, at: Instant| {
        json!({"account_id": account, "occurred_at": at.to_string(), "type": "meeting",
               "contact_id": contact, "event_id": format!("live-{account}-{contact}")})
    };
    // Before the first run: stored, nothing to re-assess against.
    let early = app
        .ingest(
            RecordKind::Engagement,
            vec![event("ACC-0001", "x", t0)],
            Some(t0),
        )
        .unwrap();
    assert!(early.reevaluated.is_none(), "{early:?}");
    app.run(Some(t0), Some(2), RunObserver::default()).unwrap();
    let before = export_rows(&app);
    // Three contacts meeting each of the Cluster ICP accounts (engagement goes High): their
    // accounts move up, or a move waits for a reviewer.
    let t1 = Instant(t0.0 + 3 * 86_400_000_000);
    let touched: Vec<String> = before
        .iter()
        .filter(|(_, r)| r["cluster"] == "cluster_icp")
        .map(|(id, _)| id.clone())
        .take(20)
        .collect();
    assert!(touched.len() >= 5, "{touched:?}");
    let mut items: Vec<serde_json::Value> = Vec::new();
    for a in &touched {
        for c in ["c1", "c2", "c3"] {
            items.push(event(a, c, Instant(t1.0 - 86_400_000_000)));
        }
    }
    items.push(json!({"account_id": "NOPE", "occurred_at": "yesterday", "type": "meeting"}));
    let done = app
        .ingest(RecordKind::Engagement, items.clone(), Some(t1))
        .unwrap();
    assert_eq!(done.rejected, 1, "{done:?}");
    let re = done.reevaluated.expect("re-assessed");
    let got: Vec<&str> = re.accounts.iter().map(|a| a.account_id.as_str()).collect();
    let mut want: Vec<&str> = touched.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(got, want);
    assert!(
        re.accounts
            .iter()
            .any(|a| a.cluster != abm_core::Cluster::ClusterIcp || !a.checkpoints.is_empty()),
        "some account moved or waits for a reviewer: {re:?}"
    );
    // Shown at once: the export's rows of the touched accounts are their new rows.
    let now = export_rows(&app);
    for a in &re.accounts {
        assert_eq!(
            now[&a.account_id]["cluster"],
            serde_json::to_value(a.cluster).unwrap()
        );
    }
    for (id, row) in &before {
        if !touched.contains(id) {
            assert_eq!(&now[id], row, "untouched {id}");
        }
    }
    let movements = app.movements(None).unwrap().len();
    // A re-post adds nothing and re-assesses nothing.
    let again = app.ingest(RecordKind::Engagement, items, Some(t1)).unwrap();
    assert_eq!((again.accepted, again.duplicate), (0, 60), "{again:?}");
    assert!(again.reevaluated.is_none());
    assert_eq!(app.movements(None).unwrap().len(), movements);
    // The next run at the same as_of agrees for the touched accounts, with no movement of
    // its own for them.
    let RunOutcome::Done(run) = app.run(Some(t1), Some(2), RunObserver::default()).unwrap() else {
        panic!("a re-evaluation is a change of state: the run is recorded");
    };
    let after = export_rows(&app);
    for id in &touched {
        assert_eq!(after[id], now[id], "{id}");
    }
    let moved_again: Vec<String> = app
        .movements(None)
        .unwrap()
        .into_iter()
        .filter(|m| m.run == run.run_id && touched.contains(&m.account_id))
        .map(|m| m.account_id)
        .collect();
    assert!(moved_again.is_empty(), "{moved_again:?}");
    // As of before the latest run: refused.
    assert!(app.reevaluate(&touched, Some(t0)).is_err());
}

#[test]
fn live_ingest_on_sqlite() {
    on_sqlite("live", live_ingest);
}

#[test]
#[ignore = "needs PostgreSQL: set ABM_TEST_PG_URL (run by .ci/run)"]
fn live_ingest_on_postgres() {
    on_postgres("live", live_ingest);
}

#[test]
fn records_in_on_sqlite() {
    on_sqlite("records", records_in);
}

#[test]
#[ignore = "needs PostgreSQL: set ABM_TEST_PG_URL (run by .ci/run)"]
fn records_in_on_postgres() {
    on_postgres("records", records_in);
}

#[test]
fn files_in_on_sqlite() {
    on_sqlite("files", files_in);
}

#[test]
#[ignore = "needs PostgreSQL: set ABM_TEST_PG_URL (run by .ci/run)"]
fn files_in_on_postgres() {
    on_postgres("files", files_in);
}

/// The product catalog a re-evaluation measures customers' whitespace against is kept between
/// calls and read again when a deal changes: after a deal with a new product, re-evaluated
/// customers show it as not yet bought, exactly as a full run at the same as_of computes them.
fn catalog_follows_deals(url: &str) {
    let (_dir, app) = imported_sample(url, 300);
    let t0 = Instant::parse(abm_io::sample::SAMPLE_AS_OF).unwrap();
    app.run(Some(t0), Some(2), RunObserver::default()).unwrap();
    let customers: Vec<String> = export_rows(&app)
        .into_keys()
        .filter(|id| {
            let ex = serde_json::to_value(app.explain(id, t0).unwrap()).unwrap();
            !ex["customer"].is_null()
        })
        .take(6)
        .collect();
    assert!(customers.len() >= 2, "the sample has customers");
    // Twice on every pooled connection the calls may get: the catalog is kept.
    for _ in 0..2 {
        app.reevaluate(&customers, Some(t0)).unwrap();
    }
    let before = export_rows(&app);
    let deal = json!({"deal_id": "D-NEW-PRODUCT", "account_id": customers[0], "stage": "discovery",
                      "amount": 1000, "created_at": Instant(t0.0 - 86_400_000_000).to_string(),
                      "outcome": "open", "product": "Zeta Widgets"});
    let done = app.ingest(RecordKind::Deals, vec![deal], Some(t0)).unwrap();
    assert_eq!(done.accepted, 1, "{done:?}");
    app.reevaluate(&customers, Some(t0)).unwrap();
    let now = export_rows(&app);
    for id in &customers {
        assert_ne!(
            now[id], before[id],
            "{id}: the new product changes its whitespace"
        );
        let ex = app.explain(id, t0).unwrap();
        let ws = serde_json::to_value(&ex).unwrap()["customer"]["not_yet_bought"].to_string();
        assert!(ws.contains("Zeta Widgets"), "{id}: {ws}");
    }
    // A full run at the same as_of computes the same rows for them.
    app.run_full(Some(t0), Some(2), RunObserver::default())
        .unwrap();
    let after = export_rows(&app);
    for id in &customers {
        assert_eq!(after[id], now[id], "{id}");
    }
}

#[test]
fn catalog_follows_deals_on_sqlite() {
    on_sqlite("catalog", catalog_follows_deals);
}

#[test]
#[ignore = "needs PostgreSQL: set ABM_TEST_PG_URL (run by .ci/run)"]
fn catalog_follows_deals_on_postgres() {
    on_postgres("catalog", catalog_follows_deals);
}
