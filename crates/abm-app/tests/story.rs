//! Story tests of the application layer, in-process, on SQLite and on PostgreSQL: records in
//! (an API batch with bad items), files in, runs, the review queue, history and export — what
//! the CLI, the HTTP API and the connectors all go through.

use abm_app::records::{EventRecord, RecordBatch, RecordKind};
use abm_app::{App, RunObserver, StoreSettings};
use abm_core::{Config, Instant};
use abm_io::sample::{write_sample, SampleSpec};
use abm_store::{ImportInputs, RunOutcome};
use serde_json::json;

fn on_sqlite(_name: &str, f: fn(&str)) {
    // SQLite always; PostgreSQL in its own schema when the URL is set.
    let dir = tempfile::tempdir().unwrap();
    f(&dir.path().join("abm.db").display().to_string());
}

fn on_postgres(name: &str, f: fn(&str)) {
    let admin = std::env::var("ABM_TEST_PG_URL").expect("ABM_TEST_PG_URL is not set");
    let schema = format!("t_app_{name}_{}", std::process::id());
    let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
    c.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    ))
    .unwrap();
    let sep = if admin.contains('?') { '&' } else { '?' };
    let url = format!("{admin}{sep}options=-csearch_path%3D{schema}");
    let result = std::panic::catch_unwind(|| f(&url));
    let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

fn app(url: &str) -> App {
    App::open(&StoreSettings::new(url), Config::default()).unwrap()
}

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
    let rep = app
        .import(&inputs, &app.load_options(), &mut |r| {
            seen_rejects = Some(r.len());
            Ok(())
        })
        .unwrap();
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
