//! The HubSpot connector against a fake HubSpot on 127.0.0.1 (tests/support): the client
//! under test is the real one.

#[path = "support/fake_hubspot.rs"]
mod fake_hubspot;

use abm_app::{App, StoreSettings};
use abm_connect::backoff::Backoff;
use abm_connect::http::{Client, ClientSettings};
use abm_connect::hubspot::{note_token, HubSpot, SyncOptions, KIND_NOTE};
use abm_connect::ConnectError;
use abm_core::{Config, Instant};
use abm_store::outbox::{NewOutboxItem, OutboxStatus};
use fake_hubspot::{iso, FakeHubSpot, Faults};
use std::time::Duration;

/// 2026-01-01T00:00:00Z in epoch ms.
const T0: i64 = 1_767_225_600_000;

fn client(fake: &FakeHubSpot, timeout: Duration) -> Client {
    let mut s = ClientSettings::new(&fake.url);
    s.timeout = timeout;
    s.backoff = Backoff {
        base: Duration::from_millis(2),
        cap: Duration::from_millis(40),
    };
    s.max_attempts = 10;
    Client::new(s, fake.token.clone())
}

fn app(dir: &tempfile::TempDir) -> App {
    let path = dir.path().join("abm.db");
    App::open(
        &StoreSettings::new(path.to_str().unwrap()),
        Config::default(),
    )
    .unwrap()
}

fn at(s: &str) -> Option<Instant> {
    Some(Instant::parse(s).unwrap())
}

#[test]
fn companies_beyond_the_search_cap_are_pulled_in_windows() {
    let fake = FakeHubSpot::start(10_000, Duration::from_secs(1), 1);
    fake.add_companies(1000, 10_450, T0);
    let mut hs = HubSpot::new(client(&fake, Duration::from_secs(5)));
    let (companies, watermark) = hs.pull_companies(None).unwrap();
    assert_eq!(companies.len(), 10_450);
    let ids: std::collections::BTreeSet<&str> = companies
        .iter()
        .map(|c| c["account_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 10_450, "each company once");
    assert_eq!(companies[0]["employees"], "50");
    assert_eq!(watermark.as_deref(), Some(iso(T0 + 10_449 * 1000).as_str()));
    let s = fake.state.lock().unwrap();
    assert!(
        s.max_after < 10_000,
        "never asked beyond the cap: {}",
        s.max_after
    );
    drop(s);
    // The fake does answer 400 beyond the cap (what the windows avoid).
    let mut raw = client(&fake, Duration::from_secs(5));
    let r = raw
        .send(
            abm_connect::http::Method::Post,
            "/crm/v3/objects/companies/search",
            Some(&serde_json::json!({"limit": 200, "after": "9900"})),
        )
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(r.message().contains("10,000"), "{}", r.message());
    // Incremental: from a watermark only what changed since.
    let (recent, _) = hs
        .pull_companies(Instant::parse(&iso(T0 + 10_440 * 1000)).ok())
        .unwrap();
    assert_eq!(recent.len(), 10);
}

fn on_postgres(name: &str, f: fn(&App)) {
    abm_store::testing::in_pg_schema(&format!("connect_{name}"), |url| {
        f(&App::open(&StoreSettings::new(url), Config::default()).unwrap())
    });
}

#[test]
fn sync_imports_runs_and_writes_back_within_the_limits_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    sync_acceptance(&app(&dir));
}

#[test]
#[ignore = "needs PostgreSQL: set ABM_TEST_PG_URL (run by .ci/run)"]
fn sync_imports_runs_and_writes_back_within_the_limits_on_postgres() {
    on_postgres("sync", sync_acceptance);
}

/// The acceptance run: companies, engagements and deals imported; clusters written back;
/// one note per movement; never more than the allowed requests per interval; a second sync
/// sends nothing again.
fn sync_acceptance(app: &App) {
    let fake = FakeHubSpot::start(15, Duration::from_millis(500), 2);
    fake.add_companies(101, 40, T0);
    // Engagement before the first run for a few, deals for two.
    for c in 101..106u64 {
        fake.add_object(
            "calls",
            &[("hs_timestamp", "2026-02-20T10:00:00.000Z")],
            &[c],
            &[c * 10],
        );
    }
    fake.add_object(
        "deals",
        &[
            ("dealname", "Big"),
            ("dealstage", "closedwon"),
            ("amount", "50000"),
            ("createdate", "2026-01-10T00:00:00.000Z"),
            ("closedate", "2026-02-10T00:00:00.000Z"),
            ("hs_is_closed", "true"),
            ("hs_is_closed_won", "true"),
            ("pipeline", "default"),
        ],
        &[120],
        &[],
    );
    fake.add_object(
        "deals",
        &[
            ("dealstage", "appointmentscheduled"),
            ("createdate", "2026-02-01T00:00:00.000Z"),
            ("closedate", "2026-09-01T00:00:00.000Z"),
            ("hs_is_closed", "false"),
        ],
        &[121],
        &[],
    );
    // A note without a company, and an email with a direction.
    fake.add_object(
        "notes",
        &[("hs_timestamp", "2026-02-01T00:00:00Z")],
        &[],
        &[],
    );
    fake.add_object(
        "emails",
        &[
            ("hs_timestamp", "2026-02-21T00:00:00.000Z"),
            ("hs_email_direction", "INCOMING_EMAIL"),
        ],
        &[106],
        &[1060],
    );
    let mut hs = HubSpot::new(client(&fake, Duration::from_secs(5)));
    let opts = SyncOptions {
        as_of: at("2026-03-01"),
        ..SyncOptions::default()
    };
    let r1 = hs.sync(app, &opts, &|_| {}).unwrap();
    assert_eq!((r1.companies, r1.engagements, r1.deals), (40, 6, 2));
    let imported = r1.imported.as_ref().unwrap();
    assert!(
        imported.rejected_items.is_empty(),
        "{:?}",
        imported.rejected_items
    );
    assert_eq!(r1.updates_enqueued, 40);
    assert_eq!(r1.delivery.sent, 40 + r1.notes_enqueued);
    {
        let s = fake.state.lock().unwrap();
        assert_eq!(s.groups.len(), 1);
        assert_eq!(s.properties.len(), 6);
        for c in s.companies.values() {
            assert!(c.props.contains_key("abm_cluster"), "{}", c.id);
            assert!(c.props.contains_key("abm_tier"));
            assert!(c.props.contains_key("abm_icp_score"));
            assert!(c.props.contains_key("abm_next_action"));
            assert_eq!(c.props["abm_updated_at"], "1772323200000");
            // No [[segments]] in the config: no segment written.
            assert!(!c.props.contains_key("abm_segment"), "{}", c.id);
        }
        assert!(s.updates_applied.values().all(|n| *n == 1));
    }
    // New meetings: the next sync promotes, writes the changed companies, one note each move.
    for c in 101..111u64 {
        fake.add_object(
            "meetings",
            &[("hs_timestamp", "2026-03-20T10:00:00.000Z")],
            &[c],
            &[c * 10 + 1],
        );
    }
    let opts = SyncOptions {
        as_of: at("2026-04-01"),
        ..SyncOptions::default()
    };
    let r2 = hs.sync(app, &opts, &|_| {}).unwrap();
    assert_eq!(r2.companies, 1, "incremental: the last company again (GTE)");
    let moves: Vec<_> = app.movements(None).unwrap();
    assert!(!moves.is_empty(), "meetings move accounts");
    let total_notes = (r1.notes_enqueued + r2.notes_enqueued) as usize;
    assert_eq!(total_notes, moves.len());
    for m in &moves {
        assert_eq!(
            fake.notes_with(&note_token(&m.account_id, m.id)),
            1,
            "{m:?}"
        );
    }
    assert!(r2.updates_enqueued > 0 && r2.updates_enqueued < 40);
    // Nothing changed: nothing sent.
    let opts = SyncOptions {
        as_of: at("2026-04-01"),
        ..SyncOptions::default()
    };
    let r3 = hs.sync(app, &opts, &|_| {}).unwrap();
    assert_eq!(
        (r3.updates_enqueued, r3.notes_enqueued, r3.delivery.sent),
        (0, 0, 0)
    );
    let s = fake.state.lock().unwrap();
    assert_eq!(
        s.violations, 0,
        "never more than the allowed requests per interval"
    );
    assert_eq!(s.notes_created.len(), moves.len());
}

/// With `[[segments]]`, each company's segments (under the definitions the run recorded) go
/// back as `abm_segment`; a changed definition re-labels and re-sends only the companies whose
/// label changed.
#[test]
fn the_segment_is_written_back_as_abm_segment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("abm.db");
    let config = |min: u32| {
        Config::from_toml(&format!(
            "[[segments]]\nname = \"big\"\n[[segments.criteria]]\nkind = \"range\"\n\
             field = \"employees\"\nmin = {min}\n\
             [[segments]]\nname = \"software\"\n[[segments.criteria]]\nkind = \"in\"\n\
             field = \"industry\"\nvalues = [\"software\", \"COMPUTER_SOFTWARE\"]\n"
        ))
        .unwrap()
    };
    let fake = FakeHubSpot::start(100, Duration::from_millis(100), 3);
    // Employees 50, 350, 650, … (50 + (i % 7) × 300); even ones software.
    fake.add_companies(301, 14, T0);
    let mut hs = HubSpot::new(client(&fake, Duration::from_secs(5)));
    let opts = SyncOptions {
        as_of: at("2026-03-01"),
        ..SyncOptions::default()
    };
    let app = App::open(&StoreSettings::new(path.to_str().unwrap()), config(600)).unwrap();
    let r1 = hs.sync(&app, &opts, &|_| {}).unwrap();
    assert_eq!(r1.updates_enqueued, 14);
    let expect = |min: u64, i: u64| {
        let big = 50 + (i % 7) * 300 >= min;
        let soft = i.is_multiple_of(2);
        match (big, soft) {
            (true, true) => "big;software",
            (true, false) => "big",
            (false, true) => "software",
            (false, false) => "",
        }
    };
    {
        let s = fake.state.lock().unwrap();
        for i in 0..14u64 {
            let c = &s.companies[&(301 + i)];
            assert_eq!(c.props["abm_segment"], expect(600, i), "company {}", c.id);
        }
    }
    // Version 2 of `big` (≥ 300): the companies of 350 employees change label, and only they
    // are sent again.
    let app = App::open(&StoreSettings::new(path.to_str().unwrap()), config(300)).unwrap();
    let opts = SyncOptions {
        as_of: at("2026-03-02"),
        ..SyncOptions::default()
    };
    let r2 = hs.sync(&app, &opts, &|_| {}).unwrap();
    let changed = (0..14u64)
        .filter(|i| expect(600, *i) != expect(300, *i))
        .count();
    assert_eq!(changed, 2);
    assert_eq!(r2.updates_enqueued as usize, changed);
    let s = fake.state.lock().unwrap();
    for i in 0..14u64 {
        assert_eq!(s.companies[&(301 + i)].props["abm_segment"], expect(300, i));
    }
    let versions = app.segment_versions().unwrap();
    let big: Vec<(i64, i64, i64)> = versions
        .iter()
        .filter(|v| v.name == "big")
        .map(|v| (v.version, v.first_run, v.last_run))
        .collect();
    assert_eq!(big, [(1, 1, 1), (2, 2, 2)]);
}

#[test]
fn a_207_refuses_items_one_by_one_into_the_outbox() {
    let fake = FakeHubSpot::start(1000, Duration::from_secs(1), 3);
    fake.add_companies(1, 5, T0);
    fake.state.lock().unwrap().refuse_update.insert(3);
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir);
    let mut hs = HubSpot::new(client(&fake, Duration::from_secs(5)));
    let r = hs
        .sync(
            &app,
            &SyncOptions {
                as_of: at("2026-03-01"),
                ..SyncOptions::default()
            },
            &|_| {},
        )
        .unwrap();
    assert_eq!((r.delivery.sent, r.delivery.dead), (4, 1));
    let dead = app
        .store()
        .unwrap()
        .outbox_list(Some(OutboxStatus::Dead), 10)
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].target, "3");
    let reason = dead[0].reason.as_deref().unwrap();
    assert!(
        reason.contains("OBJECT_NOT_FOUND") && reason.contains("[3]"),
        "{reason}"
    );
}

#[test]
fn a_bad_token_stops_at_once_and_the_daily_limit_stops_the_day() {
    let fake = FakeHubSpot::start(1000, Duration::from_secs(1), 4);
    fake.add_companies(1, 3, T0);
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir);
    let mut s = ClientSettings::new(&fake.url);
    s.backoff = Backoff {
        base: Duration::from_millis(1),
        cap: Duration::from_millis(2),
    };
    let mut hs = HubSpot::new(Client::new(s, "pat-wrong".into()));
    let e = hs.sync(&app, &SyncOptions::default(), &|_| {}).unwrap_err();
    assert!(
        matches!(e, ConnectError::Unauthorized { status: 401, .. }),
        "{e}"
    );
    assert!(
        !e.to_string().contains("pat-"),
        "the token is never shown: {e}"
    );
    assert_eq!(fake.state.lock().unwrap().requests, 1, "never retried");
    assert_eq!(hs.client.requests, 1);

    fake.set_faults(Faults {
        daily_spent: true,
        ..Faults::default()
    });
    let mut hs = HubSpot::new(client(&fake, Duration::from_secs(5)));
    let e = hs.sync(&app, &SyncOptions::default(), &|_| {}).unwrap_err();
    assert!(matches!(e, ConnectError::DailyLimit { .. }), "{e}");
    assert!(e.to_string().contains("tomorrow"), "{e}");
}

#[test]
fn five_xx_bursts_slow_answers_and_dropped_reads_are_retried() {
    let fake = FakeHubSpot::start(1000, Duration::from_secs(1), 5);
    fake.add_companies(1, 450, T0);
    fake.set_faults(Faults {
        p5xx: 0.2,
        burst: 3,
        pdrop: 0.1,
        pslow: 0.1,
        slow: Duration::from_millis(400),
        writes_only: false,
        ..Faults::default()
    });
    let mut hs = HubSpot::new(client(&fake, Duration::from_millis(200)));
    let (companies, _) = hs.pull_companies(None).unwrap();
    assert_eq!(companies.len(), 450);
    let s = fake.state.lock().unwrap();
    assert!(s.injected_5xx + s.dropped + s.slowed > 0);
}

/// The agent's calls (the MCP tools `hubspot_search_companies`, `hubspot_add_note`): a search
/// by text; a note posted once per key, however often it is asked for, even when HubSpot fails
/// mid-way; a note HubSpot cannot take now waits in the outbox for the next sync.
#[test]
fn an_agents_note_is_posted_once_and_waits_in_the_outbox_when_hubspot_fails() {
    let fake = FakeHubSpot::start(1000, Duration::from_secs(1), 9);
    fake.add_companies(700, 5, T0);
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir);
    let mut hs = HubSpot::new(client(&fake, Duration::from_secs(5)));
    let found = hs.search_companies("company 702", 10).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["id"], "702");
    assert_eq!(found[0]["domain"], "c702.example.com");
    assert!(hs.search_companies("nobody", 10).unwrap().is_empty());

    let at = Instant::parse("2026-05-01T09:00:00Z").unwrap();
    let first = hs
        .add_note(&app, "702", "Met the CFO.", at, Some("k1"))
        .unwrap();
    assert_eq!(first.status, OutboxStatus::Sent, "{first:?}");
    assert!(first.note_id.is_some() && !first.already_there);
    let again = hs
        .add_note(&app, "702", "Met the CFO.", at, Some("k1"))
        .unwrap();
    assert!(
        again.already_there && again.note_id == first.note_id,
        "{again:?}"
    );
    assert_eq!(fake.state.lock().unwrap().notes_created.len(), 1);
    assert!(
        hs.add_note(&app, "ACC-1", "x", at, None).is_err(),
        "not a company id"
    );

    // Every write fails (5xx after applying, or dropped): the note waits, unconfirmed or
    // failed, and the next sync delivers it exactly once.
    fake.set_faults(Faults {
        p5xx: 1.0,
        ..Faults::default()
    });
    let mut s = ClientSettings::new(&fake.url);
    s.backoff = Backoff {
        base: Duration::from_millis(1),
        cap: Duration::from_millis(2),
    };
    s.max_attempts = 2;
    let mut flaky = HubSpot::new(Client::new(s, fake.token.clone()));
    let waiting = flaky
        .add_note(&app, "703", "Sent the proposal.", at, None)
        .unwrap();
    assert_ne!(waiting.status, OutboxStatus::Sent, "{waiting:?}");
    assert!(waiting.reason.is_some());
    fake.set_faults(Faults::default());
    let r = hs
        .sync(
            &app,
            &SyncOptions {
                deliver_only: true,
                ..SyncOptions::default()
            },
            &|_| {},
        )
        .unwrap();
    assert_eq!(r.delivery.sent + r.delivery.confirmed, 1, "{r:?}");
    let item = app
        .store()
        .unwrap()
        .outbox_get(&waiting.key)
        .unwrap()
        .unwrap();
    assert_eq!(item.status, OutboxStatus::Sent);
    let bodies: Vec<String> = fake
        .state
        .lock()
        .unwrap()
        .notes_created
        .iter()
        .map(|n| n.1.clone())
        .collect();
    assert_eq!(
        bodies
            .iter()
            .filter(|b| b.contains("Sent the proposal."))
            .count(),
        1,
        "{bodies:?}"
    );
}

/// The fault run: 10,000 company updates and 10,000 notes under 10% 5xx, 5% 429, 2% dropped
/// connections (and 0.5% slow answers past the client's timeout): every write delivered
/// exactly once.
#[test]
fn fault_run_delivers_every_write_exactly_once() {
    let n = std::env::var("ABM_FAULT_RUN_WRITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000u64);
    let fake = FakeHubSpot::start(5_000, Duration::from_secs(1), 6);
    fake.add_companies(1, n, T0);
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir);
    let started = std::time::Instant::now();
    // Pull and import without faults, then the writes under faults.
    let mut hs = HubSpot::new(client(&fake, Duration::from_millis(250)));
    let r = hs
        .sync(
            &app,
            &SyncOptions {
                as_of: at("2026-03-01"),
                dry_run: false,
                ..SyncOptions::default()
            },
            &|_| {},
        )
        .unwrap();
    assert_eq!(r.updates_enqueued, n);
    // That sync delivered the updates without faults: set them to be sent again under
    // faults by enqueueing a second round of updates and the notes.
    let pulled = started.elapsed();
    let mut keys = Vec::new();
    let mut payloads = Vec::new();
    for i in 0..n {
        let id = 1 + i;
        keys.push((
            format!("test:note:{id}"),
            id.to_string(),
            note_token(&id.to_string(), i as i64 + 1),
        ));
    }
    for (_, _, token) in &keys {
        payloads.push(
            serde_json::json!({"hs_timestamp": "1772323200000", "hs_note_body": format!("[abm] test move\nabm outbox key: {token}"), "token": token})
                .to_string(),
        );
    }
    let mut upd_keys = Vec::new();
    let mut upd_payloads = Vec::new();
    for i in 0..n {
        let id = 1 + i;
        upd_keys.push((format!("test:update:{id}"), id.to_string()));
        upd_payloads.push(
            serde_json::json!({"abm_cluster": format!("Round 2 {id}"), "abm_tier": "B"})
                .to_string(),
        );
    }
    let mut items: Vec<NewOutboxItem<'_>> = keys
        .iter()
        .zip(&payloads)
        .map(|((key, target, _), payload)| NewOutboxItem {
            key,
            crm: "hubspot",
            kind: KIND_NOTE,
            target,
            payload,
        })
        .collect();
    items.extend(
        upd_keys
            .iter()
            .zip(&upd_payloads)
            .map(|((key, target), payload)| NewOutboxItem {
                key,
                crm: "hubspot",
                kind: abm_connect::hubspot::KIND_UPDATE,
                target,
                payload,
            }),
    );
    assert_eq!(app.store().unwrap().outbox_enqueue(&items).unwrap(), 2 * n);
    {
        let mut s = fake.state.lock().unwrap();
        s.updates_applied.clear();
        // The search index lags: the newest notes are not searchable yet.
        s.search_lag = 20;
    }
    fake.set_faults(Faults {
        p5xx: 0.10,
        p429: 0.05,
        pdrop: 0.02,
        pslow: 0.005,
        slow: Duration::from_millis(500),
        writes_only: true,
        ..Faults::default()
    });
    if let Ok(only) = std::env::var("ABM_FAULT_RUN_ONLY") {
        let mut f = fake.faults.lock().unwrap();
        if only != "5xx" {
            f.p5xx = 0.0;
        }
        if only != "429" {
            f.p429 = 0.0;
        }
        if only != "drop" {
            f.pdrop = 0.0;
        }
        if only != "slow" {
            f.pslow = 0.0;
        }
    }
    let t = std::time::Instant::now();
    let mut d = abm_connect::hubspot::Delivery::default();
    hs.deliver(&app, &|_| {}, &mut d).unwrap();
    let took = t.elapsed();
    let s = fake.state.lock().unwrap();
    // Every note once.
    let mut per_token = std::collections::HashMap::new();
    for (_, body, _) in &s.notes_created {
        let token = body.rsplit(' ').next().unwrap().to_string();
        *per_token.entry(token).or_insert(0u32) += 1;
    }
    let lost = keys
        .iter()
        .filter(|(_, _, t)| !per_token.contains_key(t))
        .count();
    let duplicated = per_token.values().filter(|c| **c > 1).count();
    // Every update once.
    let upd_lost = (1..=n)
        .filter(|id| !s.updates_applied.contains_key(id))
        .count();
    let upd_dup = s.updates_applied.values().filter(|c| **c > 1).count();
    eprintln!(
        "fault run: {} writes ({n} notes, {n} updates in batches of 100) in {:.1} s (pull+import+first write-back {:.1} s); \
         injected {} 5xx, {} 429, {} dropped, {} slow; {} requests; confirmed by check {}; \
         lost {lost}+{upd_lost}, duplicated {duplicated}+{upd_dup}, limit violations {}",
        2 * n,
        took.as_secs_f64(),
        pulled.as_secs_f64(),
        s.injected_5xx,
        s.injected_429,
        s.dropped,
        s.slowed,
        s.requests,
        d.confirmed,
        s.violations
    );
    assert_eq!((lost, duplicated, upd_lost, upd_dup), (0, 0, 0, 0));
    assert_eq!(d.sent + d.confirmed, 2 * n);
    assert_eq!(s.violations, 0);
    assert!(s.injected_5xx > 0 && s.injected_429 > 0 && s.dropped > 0);
    let c = app.store().unwrap().outbox_counts("hubspot").unwrap();
    assert_eq!((c.pending, c.sending, c.failed, c.dead), (0, 0, 0, 0));
}
