//! The HTTP provider: a JSON API that answers firmographics for a domain.
//!
//! The contract (documented in docs/enrichment.md): `GET {base_url}{path}` with `{domain}` in
//! `path` replaced by the normalized domain (URL-encoded), `Accept: application/json`, and
//! `Authorization: Bearer TOKEN` when the environment variable `token_env` names holds one.
//! - 200 with a JSON object: the company. Its top-level keys are account field names, or
//!   `[enrich.fields]` maps each field to a JSON pointer into it. Numbers and booleans are
//!   read as text; null, empty, arrays and objects are left out.
//! - 404: the provider does not know the domain.
//! - 429 waits (`Retry-After` when given) and asks again; 5xx, timeouts and dropped
//!   connections are retried with exponential backoff and jitter ([`crate::http`]); 401/403
//!   stop at once. Requests are kept under `max_per_second`.

use super::{Lookup, Provider};
use crate::http::{Client, ClientSettings, Failure, Method};
use crate::news::normalize_domain;
use crate::ConnectError;
use abm_core::enrichment::EnrichConfig;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// A JSON API keyed by domain.
pub struct HttpProvider {
    name: String,
    client: Client,
    path: String,
    fields: BTreeMap<String, String>,
}

impl std::fmt::Debug for HttpProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProvider")
            .field("name", &self.name)
            .field("path", &self.path)
            .finish()
    }
}

/// Percent-encode everything but unreserved characters (RFC 3986).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A JSON scalar as account field text (`None` for null, empty, arrays and objects).
fn scalar(v: &Value) -> Option<Value> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(Value::String(s.trim().to_string())),
        Value::Number(n) => Some(Value::String(n.to_string())),
        Value::Bool(b) => Some(Value::String(b.to_string())),
        _ => None,
    }
}

impl HttpProvider {
    /// From `[enrich]` (`base_url`, `path`, `fields`, `timeout_ms`, `max_per_second`) and the
    /// token (empty: no `Authorization` header).
    pub fn from_config(cfg: &EnrichConfig, token: &str) -> Result<HttpProvider, ConnectError> {
        let base = cfg.base_url.trim().trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ConnectError::Invalid(format!(
                "[enrich] base_url {:?}: an http:// or https:// address is needed for provider = \"http\"",
                cfg.base_url
            )));
        }
        if !cfg.path.contains("{domain}") {
            return Err(ConnectError::Invalid(format!(
                "[enrich] path {:?} must contain {{domain}}",
                cfg.path
            )));
        }
        for (field, pointer) in &cfg.fields {
            if !(pointer.is_empty() || pointer.starts_with('/')) {
                return Err(ConnectError::Invalid(format!(
                    "[enrich.fields] {field} = {pointer:?}: a JSON pointer starts with /"
                )));
            }
        }
        let mut settings = ClientSettings::new(base);
        settings.timeout = Duration::from_millis(cfg.timeout_ms.max(1));
        settings.max_attempts = 4;
        let mut client = Client::new(settings, token.trim().to_string());
        client.set_window(cfg.max_per_second.max(1), Duration::from_secs(1));
        let host = base
            .split_once("://")
            .map_or(base, |(_, rest)| rest)
            .to_string();
        Ok(HttpProvider {
            name: format!("http {host}"),
            client,
            path: cfg.path.clone(),
            fields: cfg.fields.clone(),
        })
    }

    /// Requests sent (every attempt).
    pub fn requests(&self) -> u64 {
        self.client.requests
    }

    fn fields_of(&self, body: &Value) -> Map<String, Value> {
        if self.fields.is_empty() {
            return body
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter_map(|(k, v)| Some((k.to_ascii_lowercase(), scalar(v)?)))
                        .collect()
                })
                .unwrap_or_default();
        }
        self.fields
            .iter()
            .filter_map(|(field, pointer)| Some((field.clone(), scalar(body.pointer(pointer)?)?)))
            .collect()
    }
}

impl Provider for HttpProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn lookup(&mut self, domain: &str) -> Result<Option<Lookup>, ConnectError> {
        let d = normalize_domain(domain);
        if d.is_empty() {
            return Ok(None);
        }
        let path = self.path.replace("{domain}", &encode(&d));
        let what = format!("the enrichment of {d}");
        let r = match self.client.request(Method::Get, &path, None) {
            Ok(r) => r,
            Err(Failure::Unauthorized { status, message }) => {
                return Err(ConnectError::Unauthorized {
                    crm: "the enrichment provider",
                    status,
                    message,
                })
            }
            Err(Failure::DailyLimit { message }) => {
                return Err(ConnectError::DailyLimit {
                    crm: "the enrichment provider",
                    message,
                })
            }
            Err(Failure::Transient { reason, .. }) => {
                return Err(ConnectError::Unavailable {
                    crm: "the enrichment provider",
                    what,
                    attempts: self.client.settings().max_attempts,
                    reason,
                })
            }
        };
        match r.status {
            200 if r.body.is_object() => Ok(Some(Lookup {
                fields: super::clean(self.fields_of(&r.body)),
                fetched_at: abm_store::wall_clock(),
                cached: false,
            })),
            404 => Ok(None),
            200 => Err(ConnectError::Protocol {
                crm: "the enrichment provider",
                what,
                reason: "the answer is not a JSON object".into(),
            }),
            status => Err(ConnectError::Api {
                crm: "the enrichment provider",
                what,
                status,
                message: r.message(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_come_from_the_top_level_or_from_pointers() {
        let mut cfg = EnrichConfig {
            base_url: "http://127.0.0.1:9".into(),
            ..EnrichConfig::default()
        };
        let body = json!({"Industry": "Software", "employees": 1200, "tags": ["a"],
            "company": {"hq": {"country": "DE"}}, "empty": " "});
        let p = HttpProvider::from_config(&cfg, "").unwrap();
        assert_eq!(p.name(), "http 127.0.0.1:9");
        assert_eq!(
            Value::Object(p.fields_of(&body)),
            json!({"industry": "Software", "employees": "1200"})
        );
        cfg.fields = [("country".to_string(), "/company/hq/country".to_string())].into();
        let p = HttpProvider::from_config(&cfg, "").unwrap();
        assert_eq!(Value::Object(p.fields_of(&body)), json!({"country": "DE"}));
        cfg.fields = [("country".to_string(), "company.hq".to_string())].into();
        assert!(HttpProvider::from_config(&cfg, "").is_err());
        cfg.fields.clear();
        cfg.path = "/companies".into();
        assert!(HttpProvider::from_config(&cfg, "").is_err());
        cfg.base_url = "ftp://x".into();
        assert!(HttpProvider::from_config(&cfg, "").is_err());
        assert_eq!(encode("a b.com/é"), "a%20b.com%2F%C3%A9");
    }
}
