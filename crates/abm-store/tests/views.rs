//! JSON snapshots of the typed read models (docs/json.md describes them field by field): the
//! checkpoint, movement, summary, history and export-row views of one small story, on SQLite and
//! on PostgreSQL, compared with the files in tests/snapshots/ (the same files for both
//! backends). Wall-clock times (`created_at`, `decided_at`, `started_at`) are the only volatile
//! values; they are replaced by `<wall clock>` after checking they are RFC 3339 instants.
//! `ABM_UPDATE_SNAPSHOTS=1` rewrites the files (review the diff: the shapes are a contract).

use abm_core::{Config, Instant, Rules};
use abm_io::load::LoadOptions;
use abm_store::{ImportInputs, RunOptions, Store};
use std::path::Path;

const VOLATILE: [&str; 3] = ["created_at", "decided_at", "started_at"];

/// The JSON as the view serializes it (fields in declaration order), with each wall-clock time
/// replaced by `<wall clock>` once checked to be an instant.
fn normalized(view: &impl serde::Serialize) -> String {
    let text = serde_json::to_string_pretty(view).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let key = line.trim_start();
        match VOLATILE
            .iter()
            .find(|k| key.starts_with(&format!("\"{k}\": \"")))
        {
            Some(k) => {
                let value = key[k.len() + 4..].trim_end_matches(',');
                let t: String = serde_json::from_str(value).unwrap();
                assert!(Instant::parse(&t).is_ok(), "{k} = {t:?} is not an instant");
                let indent = &line[..line.len() - key.len()];
                let comma = if key.ends_with(',') { "," } else { "" };
                out.push_str(&format!("{indent}\"{k}\": \"<wall clock>\"{comma}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

fn check(name: &str, view: &impl serde::Serialize) {
    let text = normalized(view);
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.json"));
    if std::env::var("ABM_UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &text).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (ABM_UPDATE_SNAPSHOTS=1 writes it)", path.display()));
    assert_eq!(text, expected, "{name}: the view's JSON changed");
}

fn write(dir: &Path, name: &str, text: &str) -> abm_io::source::InputSource {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.into()
}

fn run(store: &mut Store, config: &Config, as_of: &str) {
    let as_of = Instant::parse(as_of).unwrap();
    let rules = Rules::compile(config, as_of).unwrap();
    let opts = RunOptions {
        as_of,
        full: false,
        threads: 1,
        log: &|_| {},
        progress: &|_, _, _| {},
    };
    store.run(&rules, &opts).unwrap();
}

/// Baseline; then a meeting proposes A1 for Active Focus (approved), a trigger promotes C3 to
/// Future Pipeline at once, D4 (tier D) stays in Monitor Only despite a demo, and a demo
/// proposes E5 for Active Focus (rejected).
fn story(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::default();
    let accounts = "account_id,name,industry,employees,icp_score,icp_tier\n\
        A1,A1 Corp,software,500,90,A\nB2,B2 Corp,software,500,70,B\n\
        C3,C3 Corp,software,500,55,C\nD4,D4 Corp,software,500,40,D\n\
        E5,E5 Corp,software,500,90,A\n";
    let mut store = Store::open(url).unwrap();
    let t0 = dir.path().join("t0");
    let inputs = ImportInputs {
        accounts: Some(write(&t0, "accounts.csv", accounts)),
        engagement: Some(write(
            &t0,
            "engagement.csv",
            "account_id,occurred_at,type,contact_id\nB2,2025-12-20,email_reply,c1\n",
        )),
        more_engagement: Vec::new(),
        triggers: None,
        deals: None,
    };
    store.import(&inputs, &LoadOptions::new(&config)).unwrap();
    run(&mut store, &config, "2026-01-01");
    let t1 = dir.path().join("t1");
    let inputs = ImportInputs {
        accounts: Some(write(
            &t1,
            "accounts.csv",
            accounts,
        )),
        engagement: Some(write(
            &t1,
            "engagement.csv",
            "account_id,occurred_at,type,contact_id\nA1,2026-01-20T10:00:00Z,meeting,c7\n\
             D4,2026-01-25,demo,c9\nE5,2026-01-26,demo,c4\n",
        )),
        more_engagement: Vec::new(),
        triggers: Some(write(
            &t1,
            "triggers.csv",
            "account_id,occurred_at,type,source,headline\nC3,2026-01-15,funding_round,news,Series B\n",
        )),
        deals: None,
    };
    store.import(&inputs, &LoadOptions::new(&config)).unwrap();
    run(&mut store, &config, "2026-02-01");
    for c in store.review_list(false).unwrap() {
        if c.account_id.as_deref() == Some("A1") {
            let out = store
                .approve(c.id, "reviewer", Some("looks right"))
                .unwrap();
            check("decision", &out);
        } else {
            store.reject(c.id, "reviewer", Some("known")).unwrap();
        }
    }
    check("checkpoints", &store.review_list(true).unwrap());
    check("movements", &store.movements(None).unwrap());
    check("summary", &store.summary().unwrap());
    check("history", &store.history("A1").unwrap());
    let mut rows = Vec::new();
    let info = store
        .export(&mut |r| {
            rows.push(r.clone());
            Ok(())
        })
        .unwrap();
    check("export_rows", &rows);
    check("export_run", &info);
}

#[test]
fn views_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    story(&dir.path().join("abm.db").display().to_string());
}

#[test]
#[ignore = "needs PostgreSQL: set ABM_TEST_PG_URL (run by .ci/run)"]
fn views_on_postgres() {
    abm_store::testing::in_pg_schema("views", story);
}

/// A stored value that is not a code this abm knows is an error naming table, column and value,
/// never a guess.
#[test]
fn an_unknown_stored_code_is_corrupt_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("abm.db");
    let config = Config::default();
    let mut store = Store::open(&db.display().to_string()).unwrap();
    let inputs = ImportInputs {
        accounts: Some(write(
            dir.path(),
            "accounts.csv",
            "account_id,name,industry,employees,icp_score,icp_tier\nA1,A1 Corp,software,500,90,A\n",
        )),
        engagement: None,
        more_engagement: Vec::new(),
        triggers: None,
        deals: None,
    };
    store.import(&inputs, &LoadOptions::new(&config)).unwrap();
    run(&mut store, &config, "2026-01-01");
    assert!(store.history("A1").is_ok());
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("UPDATE snapshots SET movement = 'sideways'", [])
        .unwrap();
    let err = store.history("A1").unwrap_err().to_string();
    assert!(
        err.contains("snapshots.movement") && err.contains("\"sideways\""),
        "{err}"
    );
    assert!(store.export(&mut |_| Ok(())).is_err());
}
