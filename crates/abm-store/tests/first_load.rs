//! A first load of files (events into an empty table) builds every account's pack from the rows
//! as it writes them, on a helper thread; when anything else adds events in the same import (a
//! second engagement file, waiting rows whose account arrived) it reads the table back instead.
//! Either way the packs are exact (`Store::check_packs`): each account's pack holds exactly its
//! `events` rows in id order. On SQLite and PostgreSQL.

use abm_core::Config;
use abm_io::load::LoadOptions;
use abm_io::sample::{write_sample, SampleSpec};
use abm_store::testing::streamed_pack_builds;
use abm_store::{ImportInputs, Store};
use std::path::Path;

/// The sample's engagement file with its rows reversed (no account order, no time order) and
/// two of them repeated (a repeat is a duplicate: the first wins, nothing is added).
fn shuffled_with_repeats(dir: &Path) -> (std::path::PathBuf, usize) {
    let (header, mut rows) = header_and_rows(&dir.join("engagement.csv"));
    rows.reverse();
    let n = rows.len();
    let (a, b) = (rows[3].clone(), rows[n / 2].clone());
    rows.insert(n / 3, a);
    rows.push(b);
    let out = dir.join("events-first.csv");
    std::fs::write(&out, format!("{header}\n{}\n", rows.join("\n"))).unwrap();
    (out, n)
}

/// Every stored event is in a pack (`packs_upto` is the greatest event id), and some packs exist.
fn all_packed(store: &mut Store) {
    let (upto, packs, max) = store.pack_stats().unwrap();
    assert!(
        packs > 0 && max > 0,
        "{packs} packs, greatest event id {max}"
    );
    assert_eq!(upto, max, "packs_upto");
}

/// New events from `rows` of an engagement file: each a minute after its row, under another
/// event id (`ID-suffix`).
fn a_minute_later(header: &str, rows: &[String], suffix: &str) -> Vec<String> {
    let col = |name: &str| header.split(',').position(|h| h == name).unwrap();
    let (at, id) = (col("occurred_at"), col("event_id"));
    rows.iter()
        .map(|l| {
            let mut f: Vec<String> = l.split(',').map(str::to_string).collect();
            let t = abm_core::Instant::parse(&f[at]).unwrap();
            f[at] = abm_core::Instant(t.0 + 60_000_000).to_string();
            f[id] = format!("{}-{suffix}", f[id]);
            f.join(",")
        })
        .collect()
}

/// A store at `url` after a first load of the sample's accounts and engagement files.
fn loaded(url: &str, dir: &Path) -> Store {
    let mut store = Store::open(url).unwrap();
    store
        .import(
            &ImportInputs {
                accounts: Some(dir.join("accounts.csv").into()),
                engagement: Some(dir.join("engagement.csv").into()),
                ..ImportInputs::default()
            },
            &LoadOptions::new(&Config::default()),
        )
        .unwrap();
    store
}

/// Imports new events a minute after the first `rows` rows of the sample's engagement file
/// (their ids suffixed with `suffix`).
fn import_later(
    store: &mut Store,
    dir: &Path,
    rows: usize,
    suffix: &str,
) -> abm_store::ImportReport {
    let (header, body) = header_and_rows(&dir.join("engagement.csv"));
    let later = a_minute_later(&header, &body[..rows], suffix);
    let file = dir.join(format!("events-{suffix}.csv"));
    std::fs::write(&file, format!("{header}\n{}\n", later.join("\n"))).unwrap();
    store
        .import(
            &ImportInputs {
                engagement: Some(file.into()),
                ..ImportInputs::default()
            },
            &LoadOptions::new(&Config::default()),
        )
        .unwrap()
}

/// A CSV file's header and its other lines.
fn header_and_rows(path: &Path) -> (String, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines().map(str::to_string);
    let header = lines.next().unwrap();
    (header, lines.collect())
}

fn journal_mode(path: &str) -> String {
    let c = rusqlite::Connection::open(path).unwrap();
    c.query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap()
}

fn sample(dir: &Path) {
    let spec = SampleSpec {
        accounts: 120,
        seed: 11,
        ..SampleSpec::default()
    };
    write_sample(dir, &spec).unwrap();
}

/// One file of events: the packs come from the rows as written, and they are exact.
fn streamed(url: &str, dir: &Path) {
    sample(dir);
    let (file, rows) = shuffled_with_repeats(dir);
    let config = Config::default();
    let mut store = Store::open(url).unwrap();
    let before = streamed_pack_builds();
    let journaled = abm_store::testing::journaled_loads();
    let rep = store
        .import(
            &ImportInputs {
                accounts: Some(dir.join("accounts.csv").into()),
                engagement: Some(file.into()),
                ..ImportInputs::default()
            },
            &LoadOptions::new(&config),
        )
        .unwrap();
    let journaled = abm_store::testing::journaled_loads() - journaled;
    assert_eq!(rep.events_read as usize, rows + 2);
    assert_eq!(
        rep.events_added as usize, rows,
        "the two repeats add nothing"
    );
    assert_eq!(
        streamed_pack_builds(),
        before + 1,
        "built from the rows as written"
    );
    if !url.starts_with("postgres") {
        assert_eq!(
            journaled, 1,
            "a first load of files leaves WAL for its transaction"
        );
        assert_eq!(journal_mode(url), "wal", "and goes back to it");
    }
    store.check_packs().unwrap();
    all_packed(&mut store);
}

/// Two engagement files in one first load: the second goes into a table that is no longer
/// empty (some of its rows repeat the first's), so the packs are read back from the table.
fn two_files(url: &str, dir: &Path) {
    sample(dir);
    let (file, rows) = shuffled_with_repeats(dir);
    let (header, body) = header_and_rows(&dir.join("engagement.csv"));
    // Ten rows of the first file again, and ten new ones (another event id, a minute later
    // than a real row).
    let mut second: Vec<String> = body[..10].iter().map(|s| s.to_string()).collect();
    second.extend(a_minute_later(&header, &body[10..20], "again"));
    let more = dir.join("events-more.csv");
    std::fs::write(&more, format!("{header}\n{}\n", second.join("\n"))).unwrap();
    let config = Config::default();
    let mut store = Store::open(url).unwrap();
    let before = streamed_pack_builds();
    let rep = store
        .import(
            &ImportInputs {
                accounts: Some(dir.join("accounts.csv").into()),
                engagement: Some(file.into()),
                more_engagement: vec![more.into()],
                ..ImportInputs::default()
            },
            &LoadOptions::new(&config),
        )
        .unwrap();
    assert_eq!(rep.events_added as usize, rows + 10);
    assert_eq!(streamed_pack_builds(), before, "read back from the table");
    store.check_packs().unwrap();
    all_packed(&mut store);
}

/// Events whose accounts arrive later wait; the import that brings the accounts with the first
/// events into the table also moves the waiting rows in: read back from the table.
fn waiting_rows(url: &str, dir: &Path) {
    sample(dir);
    let (header, body) = header_and_rows(&dir.join("engagement.csv"));
    let half = body.len() / 2;
    let early = dir.join("events-early.csv");
    let late = dir.join("events-late.csv");
    std::fs::write(&early, format!("{header}\n{}\n", body[..half].join("\n"))).unwrap();
    std::fs::write(&late, format!("{header}\n{}\n", body[half..].join("\n"))).unwrap();
    let config = Config::default();
    let mut store = Store::open(url).unwrap();
    let opts = LoadOptions::new(&config);
    let rep = store
        .import(
            &ImportInputs {
                engagement: Some(early.into()),
                ..ImportInputs::default()
            },
            &opts,
        )
        .unwrap();
    assert_eq!(rep.events_added, 0, "no account yet: every row waits");
    let before = streamed_pack_builds();
    let rep = store
        .import(
            &ImportInputs {
                accounts: Some(dir.join("accounts.csv").into()),
                engagement: Some(late.into()),
                ..ImportInputs::default()
            },
            &opts,
        )
        .unwrap();
    assert_eq!(rep.events_added as usize, body.len());
    assert_eq!(streamed_pack_builds(), before, "read back from the table");
    store.check_packs().unwrap();
    all_packed(&mut store);
}

/// Accounts into an empty table (on PostgreSQL copied straight in, the `account_id` constraint
/// built at the end): a repeated id is rejected and the rest stored; loading the same file
/// again changes nothing, and an edited file changes exactly its edited and new rows — so the
/// constraint and the row hashes are there as after any other load.
fn accounts_first(url: &str, dir: &Path) {
    sample(dir);
    let (header, body) = header_and_rows(&dir.join("accounts.csv"));
    let first = dir.join("accounts-first.csv");
    let with_repeat = format!("{header}\n{}\n{}\n", body.join("\n"), body[7]);
    std::fs::write(&first, with_repeat).unwrap();
    let config = Config::default();
    let opts = LoadOptions::new(&config);
    let mut store = Store::open(url).unwrap();
    let load = |store: &mut Store, file: &Path| {
        store
            .import(
                &ImportInputs {
                    accounts: Some(file.to_path_buf().into()),
                    ..ImportInputs::default()
                },
                &opts,
            )
            .unwrap()
    };
    let rep = load(&mut store, &first);
    assert_eq!(rep.accounts_read as usize, body.len() + 1);
    assert_eq!(
        rep.accounts_changed as usize,
        body.len(),
        "every account stored"
    );
    assert_eq!(rep.rejected, 1, "the repeated account_id");
    let rep = load(&mut store, &dir.join("accounts.csv"));
    assert_eq!(
        rep.accounts_changed, 0,
        "the same rows again change nothing"
    );
    // One row edited (its name), one new account.
    let id = |l: &str| l.split(',').next().unwrap().to_string();
    let (edited, new_id) = (id(&body[3]), "A-NEW-1".to_string());
    let mut rows: Vec<String> = body.iter().map(|l| l.to_string()).collect();
    let name = header.split(',').position(|h| h == "name").unwrap();
    let mut f: Vec<String> = rows[3].split(',').map(str::to_string).collect();
    f[name] = format!("{} Renamed", f[name]);
    rows[3] = f.join(",");
    let mut f: Vec<String> = body[5].split(',').map(str::to_string).collect();
    f[0] = new_id.clone();
    rows.push(f.join(","));
    let edited_file = dir.join("accounts-edited.csv");
    std::fs::write(&edited_file, format!("{header}\n{}\n", rows.join("\n"))).unwrap();
    let rep = load(&mut store, &edited_file);
    assert_eq!(
        rep.accounts_changed, 2,
        "{edited} renamed and {new_id} added"
    );
    let h = store.account_now(&edited).unwrap();
    assert!(h.name.ends_with(" Renamed"), "{:?}", h.name);
    store.account_now(&new_id).unwrap();
    // No run yet: the detail has no explanation, and asks for no rules.
    let (now, explanation) = store
        .account_detail(&new_id, |_| -> Result<_, abm_store::StoreError> {
            panic!("no run, no rules")
        })
        .unwrap();
    assert_eq!(now.account_id, new_id);
    assert!(explanation.is_none());
}

/// A first load builds the index by account over the events after its own only (they are all
/// packed), keeps its bound, and the reads by account use it; the events a later import adds go
/// into it, and every account's events still read exactly (`check_packs`).
fn account_index_over_the_tail(url: &str, dir: &Path) {
    sample(dir);
    let mut store = loaded(url, dir);
    let (_, _, max) = store.pack_stats().unwrap();
    let (from, def, plan) = abm_store::testing::events_account_index(&mut store);
    assert_eq!(from, max, "the bound is the load's greatest event id");
    assert!(
        def.contains("WHERE") && def.contains(&max.to_string()),
        "a partial index: {def}"
    );
    if let Some(plan) = plan {
        assert!(plan.contains("events_account"), "plan: {plan}");
    }
    // Later events (new ids, a minute after real rows) go into the index and are read back.
    let rep = import_later(&mut store, dir, 25, "later");
    assert_eq!(rep.events_added, 25);
    let (again, def_again, _) = abm_store::testing::events_account_index(&mut store);
    assert_eq!(
        (again, &def_again),
        (from, &def),
        "a later import keeps the index"
    );
    store.check_packs().unwrap();
}

/// Repeats and new events against a first load's events, through every way events go in: a
/// file of the load's own rows again adds nothing; new events go in once, the first of a
/// repeated one wins, and a file of them again adds nothing; events waiting for a new account
/// go in when it arrives, except the one repeating a stored event. `tag` makes the new ids.
fn repeats_and_new_events(store: &mut Store, dir: &Path, tag: &str) {
    let config = Config::default();
    let stored = store.pack_stats().unwrap().2;
    let mut import =
        |inputs: ImportInputs| store.import(&inputs, &LoadOptions::new(&config)).unwrap();
    let file = |name: &str, header: &str, rows: &[String]| {
        let path = dir.join(format!("{tag}-{name}.csv"));
        std::fs::write(&path, format!("{header}\n{}\n", rows.join("\n"))).unwrap();
        Some(path.into())
    };
    let again = import(ImportInputs {
        engagement: Some(dir.join("engagement.csv").into()),
        ..ImportInputs::default()
    });
    assert_eq!(
        (again.events_read > 0, again.events_added),
        (true, 0),
        "the load's rows again"
    );

    let (header, body) = header_and_rows(&dir.join("engagement.csv"));
    let mut later = a_minute_later(&header, &body[..25], tag);
    later.push(later[7].clone());
    later.push(body[40].clone());
    let new = import(ImportInputs {
        engagement: file("later", &header, &later),
        ..ImportInputs::default()
    });
    assert_eq!(
        (new.events_read, new.events_added),
        (27, 25),
        "25 new, a repeat, a stored one"
    );
    let again = import(ImportInputs {
        engagement: file("later-again", &header, &later),
        ..ImportInputs::default()
    });
    assert_eq!(again.events_added, 0, "the new events again");

    // Two events for an account not stored yet: one repeating a stored event's id.
    let account = format!("ZZ-{tag}");
    let col = |name: &str| header.split(',').position(|h| h == name).unwrap();
    let for_new = |line: &str, id: Option<&str>| {
        let mut f: Vec<String> = line.split(',').map(str::to_string).collect();
        f[col("account_id")] = account.clone();
        if let Some(id) = id {
            f[col("event_id")] = id.to_string();
        }
        f.join(",")
    };
    let waiting = [
        for_new(&body[50], None),
        for_new(&body[51], Some(&format!("{tag}-waiting"))),
    ];
    let wait = import(ImportInputs {
        engagement: file("waiting", &header, &waiting),
        ..ImportInputs::default()
    });
    assert_eq!((wait.events_added, wait.events_waiting), (0, 2));
    let (acc_header, acc_body) = header_and_rows(&dir.join("accounts.csv"));
    let mut acc: Vec<String> = acc_body[0].split(',').map(str::to_string).collect();
    acc[0] = account.clone();
    let arrived = import(ImportInputs {
        accounts: file("accounts", &acc_header, &[acc.join(",")]),
        ..ImportInputs::default()
    });
    assert_eq!(
        (arrived.waiting_resolved, arrived.events_added),
        (2, 1),
        "the waiting event with a stored id is a repeat"
    );
    assert!(store.pack_stats().unwrap().2 > stored);
    store.check_packs().unwrap();
}

/// The identity index's definitions on SQLite (`events_ident*`), sorted.
fn identity_indexes(path: &str) -> Vec<String> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut st = c
        .prepare(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND name LIKE 'events_ident%'
             ORDER BY name",
        )
        .unwrap();
    let defs = st.query_map([], |r| r.get(0)).unwrap();
    defs.map(Result::unwrap).collect()
}

/// SQLite: a first load splits the identity index at its bound (the keys up to it, the keys
/// after), and repeats are still told from new events whichever way they come in; a database
/// loaded before the split (one index over every key) gives the same answers. PostgreSQL keeps
/// one unique constraint: the same answers.
fn identity_split_at_the_bound(url: &str, dir: &Path) {
    sample(dir);
    let load = |url: &str| loaded(url, dir);
    let mut store = load(url);
    if url.starts_with("postgres") {
        return repeats_and_new_events(&mut store, dir, "pg");
    }
    let max = store.pack_stats().unwrap().2;
    assert_eq!(
        identity_indexes(url),
        [
            format!("CREATE UNIQUE INDEX events_ident ON events (ident) WHERE id <= {max}"),
            format!("CREATE UNIQUE INDEX events_ident_tail ON events (ident) WHERE id > {max}"),
        ]
    );
    repeats_and_new_events(&mut store, dir, "split");
    assert_eq!(
        identity_indexes(url).len(),
        2,
        "later imports keep the split"
    );

    // A database loaded before: one index over every key, the bound set (migration 0015).
    let before = dir.join("before.db");
    let before = before.to_str().unwrap();
    drop(load(before));
    rusqlite::Connection::open(before)
        .unwrap()
        .execute_batch(
            "DROP INDEX events_ident; DROP INDEX events_ident_tail;
             CREATE UNIQUE INDEX events_ident ON events (ident)",
        )
        .unwrap();
    let mut store = Store::open(before).unwrap();
    repeats_and_new_events(&mut store, dir, "one-index");
    assert_eq!(
        identity_indexes(before),
        ["CREATE UNIQUE INDEX events_ident ON events (ident)"]
    );
}

/// A run that folds the newer events into the packs, once they reach a quarter of the events
/// up to the bound, builds the indexes over newer events again at `packs_upto` (SQLite: the
/// index by account and both halves of the identity index; PostgreSQL keeps its bound); the
/// reads by account and the repeats still come out exact.
fn bound_moves_after_a_fold(url: &str, dir: &Path) {
    sample(dir);
    let mut store = loaded(url, dir);
    let config = Config::default();
    let (first, _, _) = abm_store::testing::events_account_index(&mut store);
    let all = header_and_rows(&dir.join("engagement.csv")).1.len();
    let rep = import_later(&mut store, dir, all, "moved");
    assert_eq!(rep.events_added as usize, all);
    let as_of = abm_core::Instant::parse("2026-11-30T00:00:00Z").unwrap();
    let rules = abm_core::Rules::compile(&config, as_of).unwrap();
    let opts = abm_store::RunOptions {
        as_of,
        threads: 2,
        full: true,
        log: &|_| {},
        progress: &|_, _, _| {},
    };
    store.run(&rules, &opts).unwrap();
    let (upto, _, max) = store.pack_stats().unwrap();
    assert_eq!(upto, max, "the full run folded every event");
    let (bound, def, plan) = abm_store::testing::events_account_index(&mut store);
    if url.starts_with("postgres") {
        assert_eq!(bound, first, "PostgreSQL keeps the first load's bound");
    } else {
        assert_eq!(bound, max, "the bound moved to packs_upto");
        assert!(def.contains(&format!("WHERE id > {max}")), "{def}");
        assert!(plan.unwrap().contains("events_account"));
        assert_eq!(
            identity_indexes(url),
            [
                format!("CREATE UNIQUE INDEX events_ident ON events (ident) WHERE id <= {max}"),
                format!("CREATE UNIQUE INDEX events_ident_tail ON events (ident) WHERE id > {max}"),
            ]
        );
    }
    store.check_packs().unwrap();
    repeats_and_new_events(&mut store, dir, "after-move");
}

const CASES: [fn(&str, &Path); 7] = [
    streamed,
    two_files,
    waiting_rows,
    accounts_first,
    account_index_over_the_tail,
    identity_split_at_the_bound,
    bound_moves_after_a_fold,
];

#[test]
fn first_loads_pack_exactly_on_sqlite() {
    for (i, case) in CASES.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        case(
            dir.path().join(format!("f{i}.db")).to_str().unwrap(),
            dir.path(),
        );
    }
}

#[test]
#[ignore = "needs PostgreSQL: set ABM_TEST_PG_URL (run by .ci/run)"]
fn first_loads_pack_exactly_on_postgres() {
    for (i, case) in CASES.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        abm_store::testing::in_pg_schema(&format!("first_load_{i}"), |url| case(url, dir.path()));
    }
}
