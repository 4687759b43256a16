//! The Salesforce connector against a fake Salesforce on 127.0.0.1 (tests/support).

#[path = "support/fake_hubspot.rs"]
mod fake_hubspot;
#[path = "support/fake_salesforce.rs"]
mod fake_salesforce;

use abm_app::{App, StoreSettings};
use abm_connect::backoff::Backoff;
use abm_connect::http::{Client, ClientSettings};
use abm_connect::salesforce::{Salesforce, SfSyncOptions};
use abm_connect::ConnectError;
use abm_core::{Config, Instant};
use abm_store::outbox::OutboxStatus;
use fake_salesforce::{account_id, FakeSalesforce, SfFaults};
use serde_json::json;
use std::time::Duration;

fn client(fake: &FakeSalesforce, token: &str) -> Client {
    let mut s = ClientSettings::new(&fake.url);
    s.timeout = Duration::from_secs(5);
    s.backoff = Backoff {
        base: Duration::from_millis(2),
        cap: Duration::from_millis(20),
    };
    s.max_attempts = 10;
    s.default_max = 10_000;
    s.default_interval = Duration::from_secs(1);
    Client::new(s, token.to_string())
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

fn seed(fake: &FakeSalesforce, n: u64) {
    for i in 1..=n {
        fake.add(
            "Account",
            json!({
                "Id": account_id(i), "Name": format!("Account {i}"),
                "Website": format!("https://www.a{i}.example.com/"),
                "Industry": if i % 2 == 0 { "Technology" } else { "Retail" },
                "NumberOfEmployees": 100 + i * 10, "AnnualRevenue": 1.5e7, "BillingCountry": "Germany",
                "LastModifiedDate": format!("2026-01-01T00:{:02}:{:02}.000+0000", i / 60 % 60, i % 60),
            }),
        );
    }
    for i in 1..=10u64 {
        fake.add(
            "Event",
            json!({"Id": format!("00U{i:015}"), "AccountId": account_id(i), "WhoId": format!("003{i:015}"),
                   "ActivityDateTime": "2026-02-20T10:00:00.000+0000", "Type": "Meeting"}),
        );
        fake.add(
            "Task",
            json!({"Id": format!("00T{i:015}"), "AccountId": account_id(i), "WhoId": format!("003{i:015}"),
                   "ActivityDate": "2026-02-21", "Type": "Call", "TaskSubtype": "Call"}),
        );
    }
    fake.add(
        "Task",
        json!({"Id": "00T999999999999999", "AccountId": null, "ActivityDate": "2026-02-21", "Type": "Call"}),
    );
    fake.add(
        "Opportunity",
        json!({"Id": "006000000000001AAA", "AccountId": account_id(3), "StageName": "Closed Won", "Amount": 25000.0,
               "CreatedDate": "2026-01-05T00:00:00.000+0000", "CloseDate": "2026-02-01", "IsClosed": true, "IsWon": true,
               "LastModifiedDate": "2026-02-01T00:00:00.000+0000"}),
    );
}

#[test]
fn sync_salesforce_pages_imports_and_writes_back_with_per_record_errors() {
    let fake = FakeSalesforce::start(21);
    seed(&fake, 120);
    fake.state.lock().unwrap().deleted.insert(account_id(7));
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir);
    let mut sf = Salesforce::new(client(&fake, &fake.token));
    let opts = SfSyncOptions {
        as_of: at("2026-03-01"),
        ..SfSyncOptions::default()
    };
    let r = sf.sync(&app, &opts, &|_| {}).unwrap();
    assert_eq!((r.accounts, r.activities, r.opportunities), (120, 20, 1));
    let imported = r.imported.as_ref().unwrap();
    assert!(
        imported.rejected_items.is_empty(),
        "{:?}",
        imported.rejected_items
    );
    assert!(fake.state.lock().unwrap().queries >= 4);
    assert_eq!(r.updates_enqueued, 120);
    assert_eq!((r.delivery.sent, r.delivery.dead), (119, 1));
    let a1 = fake.account(&account_id(1));
    assert!(a1["ABM_Cluster__c"].is_string(), "{a1}");
    assert!(a1["ABM_ICP_Score__c"].is_number(), "{a1}");
    // No [[segments]]: ABM_Segment__c is neither written nor read back.
    assert!(a1.get("ABM_Segment__c").is_none(), "{a1}");
    let dead = app
        .store()
        .unwrap()
        .outbox_list(Some(OutboxStatus::Dead), 10)
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].target, account_id(7));
    assert!(dead[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("ENTITY_IS_DELETED"));
    // Incremental, nothing changed: nothing sent again.
    let r2 = sf.sync(&app, &opts, &|_| {}).unwrap();
    assert!(r2.accounts < 120, "from the watermark: {}", r2.accounts);
    assert_eq!((r2.updates_enqueued, r2.delivery.sent), (0, 0));
    assert!(fake
        .state
        .lock()
        .unwrap()
        .updates_applied
        .values()
        .all(|n| *n == 1));
}

/// With `[[segments]]`, each Account's segments go back as `ABM_Segment__c`.
#[test]
fn the_segment_is_written_back_as_abm_segment() {
    let fake = FakeSalesforce::start(23);
    seed(&fake, 20);
    let dir = tempfile::tempdir().unwrap();
    let config = Config::from_toml(
        "[[segments]]\nname = \"large\"\n[[segments.criteria]]\nkind = \"range\"\n\
         field = \"employees\"\nmin = 200\n",
    )
    .unwrap();
    let path = dir.path().join("abm.db");
    let app = App::open(&StoreSettings::new(path.to_str().unwrap()), config).unwrap();
    let mut sf = Salesforce::new(client(&fake, &fake.token));
    let opts = SfSyncOptions {
        as_of: at("2026-03-01"),
        ..SfSyncOptions::default()
    };
    let r = sf.sync(&app, &opts, &|_| {}).unwrap();
    assert_eq!(r.updates_enqueued, 20);
    // NumberOfEmployees = 100 + 10 i: large from i = 10 on.
    for i in 1..=20u64 {
        let a = fake.account(&account_id(i));
        let want = if i >= 10 { "large" } else { "" };
        assert_eq!(a["ABM_Segment__c"], want, "account {i}: {a}");
    }
    let items = app
        .store()
        .unwrap()
        .outbox_list(Some(OutboxStatus::Sent), 100)
        .unwrap();
    assert_eq!(items.len(), 20);
    assert!(items
        .iter()
        .all(|i| i.payload.contains("\"ABM_Segment__c\"")));
    // Nothing changed: nothing sent again.
    let r2 = sf.sync(&app, &opts, &|_| {}).unwrap();
    assert_eq!((r2.updates_enqueued, r2.delivery.sent), (0, 0));
}

#[test]
fn faults_never_apply_an_update_twice() {
    let fake = FakeSalesforce::start(22);
    seed(&fake, 1000);
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir);
    // Pull without faults, the writes under 10% 5xx and 5% dropped connections.
    let mut sf = Salesforce::new(client(&fake, &fake.token));
    let opts = SfSyncOptions {
        as_of: at("2026-03-01"),
        dry_run: true,
        ..SfSyncOptions::default()
    };
    sf.sync(&app, &opts, &|_| {}).unwrap();
    *fake.faults.lock().unwrap() = SfFaults {
        p5xx: 0.10,
        pdrop: 0.05,
        ..SfFaults::default()
    };
    let opts = SfSyncOptions {
        as_of: at("2026-03-01"),
        ..SfSyncOptions::default()
    };
    let r = sf.sync(&app, &opts, &|_| {}).unwrap();
    let s = fake.state.lock().unwrap();
    assert_eq!(s.updates_applied.len(), 1000);
    assert!(s.updates_applied.values().all(|n| *n == 1));
    assert!(s.injected_5xx > 0 && s.dropped > 0);
    assert_eq!(r.delivery.sent + r.delivery.confirmed, 1000);
}

#[test]
fn an_expired_session_and_the_request_limit_stop_the_sync() {
    let fake = FakeSalesforce::start(23);
    seed(&fake, 3);
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir);
    let mut sf = Salesforce::new(client(&fake, "00Dwrong"));
    let e = sf
        .sync(&app, &SfSyncOptions::default(), &|_| {})
        .unwrap_err();
    assert!(
        matches!(e, ConnectError::Unauthorized { status: 401, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("INVALID_SESSION_ID"), "{e}");
    assert_eq!(fake.state.lock().unwrap().requests, 1);
    fake.faults.lock().unwrap().limit_exceeded = true;
    let mut sf = Salesforce::new(client(&fake, &fake.token));
    let e = sf
        .sync(&app, &SfSyncOptions::default(), &|_| {})
        .unwrap_err();
    assert!(matches!(e, ConnectError::DailyLimit { .. }), "{e}");
    assert!(e.to_string().contains("REQUEST_LIMIT_EXCEEDED"), "{e}");
}
