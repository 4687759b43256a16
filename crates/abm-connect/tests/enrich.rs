//! Enrichment over HTTP against a fake provider on 127.0.0.1 (tests/support/fake_enrich.rs):
//! the field mapping, retries on 5xx and 429, the TTL cache (a hit makes no request), the mark
//! in the explanation, and refused credentials stopping at once.

#[path = "support/fake_enrich.rs"]
mod fake_enrich;
#[path = "support/fake_hubspot.rs"]
mod fake_hubspot;

use abm_app::records::{RecordBatch, RecordKind};
use abm_app::{App, StoreSettings};
use abm_connect::enrich::{enrich, from_config};
use abm_connect::ConnectError;
use abm_core::enrichment::{EnrichConfig, ProviderKind};
use abm_core::{Config, Instant};
use fake_enrich::FakeEnrich;
use serde_json::json;

fn app(dir: &tempfile::TempDir) -> App {
    let path = dir.path().join("abm.db");
    App::open(
        &StoreSettings::new(path.to_str().unwrap()),
        Config::default(),
    )
    .unwrap()
}

fn config(fake: &FakeEnrich, dir: &tempfile::TempDir) -> EnrichConfig {
    EnrichConfig {
        provider: ProviderKind::Http,
        base_url: fake.url.clone(),
        fields: [
            ("industry", "/company/industry"),
            ("employees", "/company/size/employees"),
            ("country", "/company/hq/country"),
        ]
        .into_iter()
        .map(|(f, p)| (f.to_string(), p.to_string()))
        .collect(),
        cache: dir.path().join("cache.jsonl").display().to_string(),
        max_per_second: 1000,
        ..EnrichConfig::default()
    }
}

fn fake() -> FakeEnrich {
    let company = |industry: &str, employees: u32| json!({"industry": industry, "size": {"employees": employees}, "hq": {"country": "US"}});
    FakeEnrich::start(vec![
        ("acme.com", company("software", 900)),
        ("flaky.example", company("fintech", 300)),
        ("limited.example", company("banking", 5000)),
    ])
}

#[test]
fn http_enrichment_fills_marks_and_caches() {
    let fake = fake();
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir);
    let accounts = vec![
        json!({"account_id": "A1", "name": "Acme", "domain": "https://www.acme.com/"}),
        json!({"account_id": "A2", "name": "Flaky", "domain": "flaky.example", "industry": "retail"}),
        json!({"account_id": "A3", "name": "Limited", "domain": "limited.example"}),
        json!({"account_id": "A4", "name": "Nobody", "domain": "nobody.example"}),
        json!({"account_id": "A5", "name": "No domain"}),
    ];
    app.import_records(&[RecordBatch::new(RecordKind::Accounts, "t", accounts)])
        .unwrap();
    let cfg = config(&fake, &dir);
    let mut provider = from_config(&cfg, &fake.token).unwrap();
    let r = enrich(&app, provider.as_mut(), false).unwrap();
    assert_eq!(
        (r.looked_up, r.found, r.enriched, r.failed, r.cached),
        (4, 3, 3, 0, 0),
        "{r:?}"
    );
    assert_eq!(r.fields_filled["industry"], 2, "A2's own industry is kept");
    assert_eq!(r.fields_filled["employees"], 3);
    let first = fake.total_requests();
    // 4 domains, 2 retries after 503s, 1 after the 429.
    assert_eq!(first, 7, "{:?}", fake.requests.lock().unwrap());

    // Again, with a new provider (a restart): every answer, known or not, from the cache.
    let mut provider = from_config(&cfg, &fake.token).unwrap();
    let r = enrich(&app, provider.as_mut(), true).unwrap();
    assert_eq!((r.found, r.cached), (3, 3), "{r:?}");
    assert_eq!(fake.total_requests(), first, "a cache hit makes no request");

    // The explanation names what enrichment filled, its source and when it was fetched.
    let as_of = Instant::parse("2026-06-01").unwrap();
    let e = app.explain("A1", as_of).unwrap();
    let mark = e.enrichment.as_ref().expect("A1 is marked");
    assert!(mark.source.starts_with("http 127.0.0.1:"), "{mark:?}");
    assert!(mark.fetched_at.is_some());
    let mut fields = mark.fields.clone();
    fields.sort();
    assert_eq!(fields, ["country", "employees", "industry"]);
    let industry = e
        .score
        .criteria
        .iter()
        .find(|c| c.field == "industry")
        .unwrap();
    assert!(industry.enriched && industry.earned > 0.0, "{industry:?}");
    assert!(e.to_text().contains("[enriched]"), "{}", e.to_text());
    let own = app.explain("A2", as_of).unwrap();
    let kept = own
        .score
        .criteria
        .iter()
        .find(|c| c.field == "industry")
        .unwrap();
    assert!(!kept.enriched && kept.value.as_deref() == Some("retail"));
}

#[test]
fn refused_credentials_stop_the_enrichment_and_nothing_is_cached() {
    let fake = fake();
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir);
    let accounts = vec![json!({"account_id": "A1", "name": "Acme", "domain": "acme.com"})];
    app.import_records(&[RecordBatch::new(RecordKind::Accounts, "t", accounts)])
        .unwrap();
    let cfg = config(&fake, &dir);
    let mut provider = from_config(&cfg, "wrong").unwrap();
    let err = enrich(&app, provider.as_mut(), false).unwrap_err();
    assert!(
        matches!(err, ConnectError::Unauthorized { status: 401, .. }),
        "{err}"
    );
    assert_eq!(fake.total_requests(), 1, "401 is never retried");
    assert!(!dir.path().join("cache.jsonl").exists());
    // Not configured: said so.
    let none = from_config(&EnrichConfig::default(), "").err().unwrap();
    assert!(none.to_string().contains("not configured"), "{none}");
}
