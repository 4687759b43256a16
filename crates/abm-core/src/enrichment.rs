//! Enrichment as data: `[enrich]` in `abm.toml` (where `abm enrich` and the `enrich_company`
//! tool get firmographics) and the mark an enriched account carries in its `enriched_by`
//! field (which fields were filled, from which source, fetched when), read back by the
//! explanation.

use crate::Instant;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The account field that carries the mark.
pub const ENRICHED_BY: &str = "enriched_by";

/// Which provider answers.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// Not configured: `enrich_company` says so; `abm enrich FILE` still works.
    #[default]
    None,
    /// A CSV or JSON Lines file keyed by `domain` (`file`).
    File,
    /// An HTTP API (`base_url`, `path`, `token_env`, `fields`).
    Http,
}

/// `[enrich]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EnrichConfig {
    pub provider: ProviderKind,
    /// `file`: a CSV or JSON Lines file with a `domain` column and account fields.
    pub file: String,
    /// `http`: the API's address, e.g. `https://api.example.com`.
    pub base_url: String,
    /// `http`: the request path, `{domain}` replaced by the domain (URL-encoded). The answer
    /// is a JSON object (200), or 404 when the provider does not know the domain.
    pub path: String,
    /// `http`: the environment variable holding the API token, sent as
    /// `Authorization: Bearer TOKEN` (empty or unset: no header).
    pub token_env: String,
    /// `http`: account field → JSON pointer into the answer (e.g. `industry =
    /// "/company/category/industry"`). Empty: the answer's top-level keys are field names.
    pub fields: BTreeMap<String, String>,
    /// Days an answer (found or not found) is reused from the cache without a request;
    /// 0: no cache.
    pub ttl_days: u32,
    /// The cache file (JSON Lines, appended), relative to the working directory.
    pub cache: String,
    /// `http`: one request's time limit.
    pub timeout_ms: u64,
    /// `http`: at most this many requests per second.
    pub max_per_second: u32,
}

impl Default for EnrichConfig {
    fn default() -> Self {
        EnrichConfig {
            provider: ProviderKind::None,
            file: String::new(),
            base_url: String::new(),
            path: "/companies?domain={domain}".into(),
            token_env: "ABM_ENRICH_TOKEN".into(),
            fields: BTreeMap::new(),
            ttl_days: 30,
            cache: ".abm-enrich-cache.jsonl".into(),
            timeout_ms: 10_000,
            max_per_second: 10,
        }
    }
}

impl EnrichConfig {
    pub fn is_default(&self) -> bool {
        *self == EnrichConfig::default()
    }
}

/// What an enriched account's `enriched_by` field says: the fields filled, their source and
/// when the source answered. Stored as JSON text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrichedBy {
    pub source: String,
    /// When the provider answered (a cached answer keeps its first time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched_at: Option<Instant>,
    pub fields: Vec<String>,
}

impl EnrichedBy {
    pub fn to_field(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The mark as stored; also the older text form `SOURCE: field, field`.
    pub fn parse(text: &str) -> Option<EnrichedBy> {
        let t = text.trim();
        if t.is_empty() {
            return None;
        }
        if let Ok(m) = serde_json::from_str::<EnrichedBy>(t) {
            return Some(m);
        }
        let (source, fields) = t.rsplit_once(':')?;
        Some(EnrichedBy {
            source: source.trim().to_string(),
            fetched_at: None,
            fields: fields
                .split(',')
                .map(|f| f.trim().to_string())
                .filter(|f| !f.is_empty())
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_reads_back_in_both_forms() {
        let m = EnrichedBy {
            source: "http api.example.com".into(),
            fetched_at: Some(Instant::parse("2026-05-01T10:00:00Z").unwrap()),
            fields: vec!["industry".into(), "employees".into()],
        };
        assert_eq!(EnrichedBy::parse(&m.to_field()), Some(m));
        let old = EnrichedBy::parse("file firmo.csv: industry, country").unwrap();
        assert_eq!(old.source, "file firmo.csv");
        assert_eq!(old.fields, ["industry", "country"]);
        assert_eq!(EnrichedBy::parse("  "), None);
        let cfg: EnrichConfig = toml::from_str(
            "provider = \"http\"\nbase_url = \"http://x\"\n[fields]\nindustry = \"/a/b\"\n",
        )
        .unwrap();
        assert_eq!(cfg.provider, ProviderKind::Http);
        assert_eq!(cfg.ttl_days, 30);
        assert!(toml::from_str::<EnrichConfig>("provder = \"http\"").is_err());
    }
}
