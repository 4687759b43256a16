//! Enrichment (`abm enrich`, the `enrich_company` tool): a [`Provider`] answers firmographics
//! for a domain; the accounts that lack a field get the provider's value (a value already
//! there is never overwritten), the fields filled are marked in the account's `enriched_by`
//! field ([`abm_core::enrichment::EnrichedBy`]: source, fetched_at, fields; the explanation
//! shows it), and the accounts are re-imported through [`abm_app::App::import_records`]. A
//! provider failure for one domain leaves that account as it is, with a warning; refused
//! credentials or a spent daily allowance stop the enrichment.
//!
//! Providers: [`FileProvider`] (CSV or JSON Lines keyed by `domain`), [`HttpProvider`] (a JSON
//! API, see [`http`]); either behind a [`Cached`] TTL cache ([`cache`]). [`from_config`]
//! builds the one `[enrich]` names.

pub mod cache;
pub mod file;
pub mod http;

pub use cache::{Cache, Cached};
pub use file::FileProvider;
pub use http::HttpProvider;

use crate::ConnectError;
use abm_app::records::{RecordBatch, RecordKind};
use abm_app::App;
use abm_core::enrichment::{EnrichConfig, EnrichedBy, ProviderKind, ENRICHED_BY};
use abm_core::Instant;
use serde::Serialize;
use serde_json::{Map, Value};

/// A provider's answer for a domain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lookup {
    /// Account fields (canonical names) → values.
    pub fields: Map<String, Value>,
    /// When the provider answered.
    pub fetched_at: Instant,
    /// Served from the cache, without a request.
    pub cached: bool,
}

/// Answers firmographics (canonical account field names → values) for a domain.
pub trait Provider {
    /// The source the `enriched_by` mark names.
    fn name(&self) -> &str;
    /// `None`: the provider does not know the domain.
    fn lookup(&mut self, domain: &str) -> Result<Option<Lookup>, ConnectError>;
}

/// The provider `[enrich]` configures, behind its cache (`ttl_days` > 0). `token`: the HTTP
/// provider's (the caller reads it from the variable `token_env` names; empty: none).
pub fn from_config(
    cfg: &EnrichConfig,
    token: &str,
) -> Result<Box<dyn Provider + Send>, ConnectError> {
    let inner: Box<dyn Provider + Send> = match cfg.provider {
        ProviderKind::None => {
            return Err(ConnectError::NotConfigured {
                what: "enrichment",
                how: "set [enrich] provider = \"file\" (with file = PATH) or \"http\" (with base_url) in abm.toml",
            })
        }
        ProviderKind::File => {
            if cfg.file.trim().is_empty() {
                return Err(ConnectError::Invalid(
                    "[enrich] provider = \"file\" needs file = PATH".into(),
                ));
            }
            Box::new(FileProvider::open(std::path::Path::new(cfg.file.trim()))?)
        }
        ProviderKind::Http => Box::new(HttpProvider::from_config(cfg, token)?),
    };
    if cfg.ttl_days == 0 {
        return Ok(inner);
    }
    let ttl = std::time::Duration::from_secs(u64::from(cfg.ttl_days) * 86_400);
    Ok(Box::new(Cached::new(
        inner,
        Cache::open(std::path::Path::new(&cfg.cache))?,
        ttl,
    )))
}

/// Keep the values a provider may fill: non-empty, without the account's own keys.
pub(crate) fn clean(mut m: Map<String, Value>) -> Map<String, Value> {
    m.retain(|k, v| {
        let own = matches!(k.as_str(), "account_id" | "name" | "domain" | ENRICHED_BY);
        !own && match v {
            Value::String(s) => !s.trim().is_empty(),
            Value::Null => false,
            _ => true,
        }
    });
    m
}

/// What an enrichment did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EnrichReport {
    /// Accounts with a domain.
    pub looked_up: usize,
    /// Accounts the provider knew.
    pub found: usize,
    /// Answers served from the cache (no request).
    pub cached: usize,
    /// Accounts that got at least one field.
    pub enriched: usize,
    /// Domains the provider failed on (the accounts stay as they are).
    pub failed: usize,
    /// The first failures' messages.
    pub warnings: Vec<String>,
    /// Fields filled, by name.
    pub fields_filled: std::collections::BTreeMap<String, usize>,
    pub imported: Option<abm_app::RecordsImported>,
}

/// The most warnings a report lists.
const MAX_WARNINGS: usize = 20;

/// Fill the stored accounts' missing fields from `provider` and re-import them (nothing
/// imported with `dry_run`).
pub fn enrich(
    app: &App,
    provider: &mut dyn Provider,
    dry_run: bool,
) -> Result<EnrichReport, ConnectError> {
    let mut rep = EnrichReport::default();
    let mut out = Vec::new();
    for a in app.store()?.account_directory()? {
        let Some(domain) = &a.domain else { continue };
        rep.looked_up += 1;
        let found = match provider.lookup(domain) {
            Ok(Some(f)) => f,
            Ok(None) => continue,
            Err(e @ (ConnectError::Unauthorized { .. } | ConnectError::DailyLimit { .. })) => {
                return Err(e)
            }
            Err(e) => {
                rep.failed += 1;
                if rep.warnings.len() < MAX_WARNINGS {
                    rep.warnings.push(format!("{}: {e}", a.account_id));
                }
                continue;
            }
        };
        rep.found += 1;
        rep.cached += usize::from(found.cached);
        let mut fields = a.fields.clone();
        let mut filled = Vec::new();
        for (k, v) in clean(found.fields) {
            let k = k.to_ascii_lowercase();
            let empty = match fields.get(&k) {
                None | Some(Value::Null) => true,
                Some(Value::String(s)) => s.trim().is_empty(),
                _ => false,
            };
            if empty {
                let v = match v {
                    Value::String(s) => Value::String(s),
                    other => Value::String(other.to_string()),
                };
                fields.insert(k.clone(), v);
                *rep.fields_filled.entry(k.clone()).or_default() += 1;
                filled.push(k);
            }
        }
        if filled.is_empty() {
            continue;
        }
        rep.enriched += 1;
        // Fields filled by an earlier enrichment stay marked.
        if let Some(old) = fields
            .get(ENRICHED_BY)
            .and_then(Value::as_str)
            .and_then(EnrichedBy::parse)
        {
            for f in old.fields {
                if !filled.contains(&f) {
                    filled.push(f);
                }
            }
        }
        let mark = EnrichedBy {
            source: provider.name().to_string(),
            fetched_at: Some(found.fetched_at),
            fields: filled,
        };
        fields.insert(ENRICHED_BY.into(), Value::String(mark.to_field()));
        fields.insert("account_id".into(), Value::String(a.account_id.clone()));
        out.push(Value::Object(fields));
    }
    if !dry_run && !out.is_empty() {
        let batch = RecordBatch::new(RecordKind::Accounts, "enrich", out);
        rep.imported = Some(app.import_records(&[batch])?);
    }
    Ok(rep)
}
