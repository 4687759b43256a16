//! The connector tools: `enrich_company`, `fetch_company_news`, `hubspot_search_companies`,
//! `hubspot_add_note`, over `abm-connect`. A connector that is not set up answers a tool error
//! saying how to set it up.
//!
//! - Enrichment: `[enrich]` of the server's abm.toml (a file or an HTTP provider, behind the
//!   TTL cache).
//! - HubSpot: a private app's token and the API's address (the binary reads them from
//!   `HUBSPOT_TOKEN` and `ABM_HUBSPOT_URL`, default `https://api.hubapi.com`).
//! - News: the feed URLs passed in, fetched by [`abm_connect::safe_fetch`]: http/https only
//!   (the server never reads its own files on a caller's behalf), never a host resolving to an
//!   internal address (loopback, private, link-local, …) unless `[news] allow_hosts` of the
//!   server's abm.toml names it; redirects re-checked, size and time capped (`[news]`).

use crate::{bad, AbmTools};
use abm_app::access::Role;
use abm_connect::enrich::{self, Provider};
use abm_connect::http::{Client, ClientSettings};
use abm_connect::hubspot::HubSpot;
use abm_connect::news::{self, Matcher};
use abm_connect::safe_fetch::{self, FetchPolicy};
use abm_connect::ConnectError;
use abm_core::enrichment::EnrichConfig;
use abm_core::{Config, Instant};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Extensions};
use rmcp::{tool, tool_router, ErrorData};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Mutex;

/// HubSpot's API address.
pub const HUBSPOT_URL: &str = "https://api.hubapi.com";

/// How to reach HubSpot.
pub struct HubSpotAccess {
    /// [`HUBSPOT_URL`], or a local fake in tests.
    pub base_url: String,
    /// A private app's access token (never logged).
    pub token: String,
}

/// The connectors' settings, and the enrichment provider once built (its cache and its rate
/// window are kept between calls).
pub struct Connectors {
    hubspot: Option<HubSpotAccess>,
    enrich: EnrichConfig,
    enrich_token: String,
    provider: Mutex<Option<Box<dyn Provider + Send>>>,
    feeds: FetchPolicy,
}

impl std::fmt::Debug for Connectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connectors")
            .field("hubspot", &self.hubspot.as_ref().map(|h| &h.base_url))
            .field("enrich", &self.enrich.provider)
            .finish()
    }
}

impl Connectors {
    /// `[enrich]` of `config` with the HTTP provider's token (empty: none), and HubSpot when
    /// it is set up.
    pub fn new(
        config: &Config,
        enrich_token: String,
        hubspot: Option<HubSpotAccess>,
    ) -> Connectors {
        Connectors {
            hubspot,
            enrich: config.enrich.clone(),
            enrich_token,
            provider: Mutex::new(None),
            feeds: FetchPolicy::from_config(&config.news),
        }
    }

    /// No connector set up (every connector tool says how to set it up).
    pub fn none() -> Connectors {
        Connectors::new(&Config::default(), String::new(), None)
    }

    fn hubspot(&self) -> Result<HubSpot, ConnectError> {
        let h = self.hubspot.as_ref().ok_or(ConnectError::NotConfigured {
            what: "HubSpot",
            how: "set HUBSPOT_TOKEN to a private app's access token (scopes: crm.objects.companies.read/write, crm.objects.notes.write) before starting the server",
        })?;
        let mut s = ClientSettings::new(&h.base_url);
        s.max_attempts = 4;
        Ok(HubSpot::new(Client::new(s, h.token.clone())))
    }

    fn lookup(&self, domain: &str) -> Result<Option<enrich::Lookup>, ConnectError> {
        let mut p = self
            .provider
            .lock()
            .map_err(|_| ConnectError::Invalid("the enrichment provider failed earlier".into()))?;
        if p.is_none() {
            *p = Some(enrich::from_config(&self.enrich, &self.enrich_token)?);
        }
        let provider = p.as_mut().expect("built above");
        provider.lookup(domain)
    }

    fn provider_name(&self) -> Option<String> {
        self.provider
            .lock()
            .ok()
            .and_then(|p| p.as_ref().map(|p| p.name().to_string()))
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct EnrichParams {
    /// The company's web domain (e.g. acme.com; a URL is reduced to its host).
    pub domain: String,
}

#[derive(Debug, Serialize)]
struct Enriched {
    domain: String,
    found: bool,
    source: Option<String>,
    fetched_at: Option<Instant>,
    /// Served from the cache: no request was made.
    cached: bool,
    fields: Map<String, Value>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct NewsParams {
    /// RSS 2.0 or Atom feed URLs (http or https).
    pub feeds: Vec<String>,
    /// The company's name (matched without case, accents or legal suffixes such as Inc.).
    pub name: Option<String>,
    /// The company's domain (matched where the text names it).
    pub domain: Option<String>,
}

#[derive(Debug, Serialize)]
struct News {
    #[serde(flatten)]
    report: news::NewsReport,
    feeds_failed: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct HubSpotSearchParams {
    /// Text to find in the company's name, domain, phone or website.
    pub query: String,
    /// At most this many companies (1–200, default 10).
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize)]
struct Companies {
    companies: Vec<Value>,
    /// Set when nothing was found (the playbook's "not in the CRM: no engagement data").
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'static str>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct HubSpotNoteParams {
    /// HubSpot's company id (a decimal number, from hubspot_search_companies).
    pub company_id: String,
    /// The note's text (at most 65,536 characters with abm's key line).
    pub body: String,
    /// The note's time (RFC 3339 or YYYY-MM-DD; default now).
    pub timestamp: Option<String>,
    /// Your idempotency key: the same key (or, without one, the same company and text) posts
    /// the note once, however often the call is repeated.
    pub key: Option<String>,
}

#[tool_router(router = connector_router, vis = "pub(crate)")]
impl AbmTools {
    #[tool(
        description = "Firmographics for a company's domain from the enrichment provider configured in abm.toml ([enrich]: a file or an HTTP API), through a cache with a TTL (a cached answer makes no request): {domain, found, source, fetched_at, cached, fields{industry, employees, annual_revenue, country, …}}. Nothing is stored in the accounts (`abm enrich` does that). Role: viewer."
    )]
    async fn enrich_company(
        &self,
        ext: Extensions,
        Parameters(p): Parameters<EnrichParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let domain = abm_connect::news::normalize_domain(&p.domain);
        if domain.is_empty() {
            return Ok(bad("domain is empty"));
        }
        self.call_as(&ext, Role::Viewer, move |_, c, _| {
            let found = c.lookup(&domain)?;
            Ok::<_, ConnectError>(Enriched {
                found: found.is_some(),
                source: c.provider_name(),
                fetched_at: found.as_ref().map(|l| l.fetched_at),
                cached: found.as_ref().is_some_and(|l| l.cached),
                fields: found.map(|l| l.fields).unwrap_or_default(),
                domain,
            })
        })
        .await
    }

    #[tool(
        description = "Recent news about one company from RSS/Atom feeds (http/https URLs; hosts resolving to internal addresses — loopback, private, link-local, … — are refused unless the server's abm.toml allows them in [news] allow_hosts), matched by its name or domain and classified into trigger types (funding_round, leadership_change, merger_acquisition, expansion, hiring_surge, product_launch, layoffs, regulatory_change): {items, duplicates, undated, matched, classified, triggers[{occurred_at, type, source, headline}], feeds_failed}. Nothing is stored (`abm news fetch` imports triggers). No news: engagement alone decides. Role: viewer."
    )]
    async fn fetch_company_news(
        &self,
        ext: Extensions,
        Parameters(p): Parameters<NewsParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let name = p.name.unwrap_or_default();
        if name.trim().is_empty() && p.domain.as_deref().is_none_or(|d| d.trim().is_empty()) {
            return Ok(bad("give the company's name or domain"));
        }
        if p.feeds.is_empty() {
            return Ok(bad("give at least one feed URL"));
        }
        if let Some(f) = p.feeds.iter().find(|f| {
            let f = f.trim().to_ascii_lowercase();
            !(f.starts_with("http://") || f.starts_with("https://"))
        }) {
            return Ok(bad(format!("feed {f:?}: only http:// and https:// URLs")));
        }
        self.call_as(&ext, Role::Viewer, move |_, c, _| {
            let matcher = Matcher::new([("company", name.as_str(), p.domain.as_deref())]);
            let mut items = Vec::new();
            let mut failed = Vec::new();
            for f in &p.feeds {
                match safe_fetch::fetch(f, &c.feeds).and_then(|b| news::parse_feed(&b, f)) {
                    Ok(mut v) => items.append(&mut v),
                    Err(e) => failed.push(e.to_string()),
                }
            }
            if failed.len() == p.feeds.len() {
                return Err(ConnectError::Invalid(format!(
                    "no feed could be read: {}",
                    failed.join("; ")
                )));
            }
            let mut report = news::triggers(&items, &matcher, &news::Rules::default());
            for t in &mut report.triggers {
                if let Some(o) = t.as_object_mut() {
                    o.remove("account_id");
                }
            }
            Ok(News {
                report,
                feeds_failed: failed,
            })
        })
        .await
    }

    #[tool(
        description = "Search HubSpot's companies by text (name, domain, phone, website): {companies[{id, name, domain, industry, numberofemployees, annualrevenue, country, abm_cluster, abm_tier, …}], note}. No company found means no CRM engagement data for it. Needs HUBSPOT_TOKEN on the server. Role: viewer."
    )]
    async fn hubspot_search_companies(
        &self,
        ext: Extensions,
        Parameters(p): Parameters<HubSpotSearchParams>,
    ) -> Result<CallToolResult, ErrorData> {
        if p.query.trim().is_empty() {
            return Ok(bad("query is empty"));
        }
        self.call_as(&ext, Role::Viewer, move |_, c, _| {
            let companies = c
                .hubspot()?
                .search_companies(p.query.trim(), p.limit.unwrap_or(10))?;
            Ok::<_, ConnectError>(Companies {
                note: companies
                    .is_empty()
                    .then_some("no company found in HubSpot: no CRM engagement data for it"),
                companies,
            })
        })
        .await
    }

    #[tool(
        description = "Add a note to a HubSpot company, through abm's durable outbox: posted once per idempotency key (repeat the call safely), and when HubSpot cannot take it now it stays in the outbox for the next `abm sync hubspot` (see `abm outbox list`). Answers {outbox_id, key, status (sent, failed, sending = unconfirmed, dead = refused), note_id, reason, already_there}. Needs HUBSPOT_TOKEN on the server. Role: admin."
    )]
    async fn hubspot_add_note(
        &self,
        ext: Extensions,
        Parameters(p): Parameters<HubSpotNoteParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let at = match p
            .timestamp
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            None => None,
            Some(t) => match Instant::parse(t) {
                Ok(i) => Some(i),
                Err(e) => return Ok(bad(format!("timestamp {t:?}: {e}"))),
            },
        };
        self.call_as(&ext, Role::Admin, move |app, c, _| {
            c.hubspot()?.add_note(
                app,
                p.company_id.trim(),
                &p.body,
                at.unwrap_or_else(abm_store::wall_clock),
                p.key.as_deref(),
            )
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Access;
    use abm_app::{App, StoreSettings};
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    const RSS: &str = "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Wire</title>\
        <item><guid>n1</guid><title>Acme raises $40M Series B</title>\
        <pubDate>Mon, 04 May 2026 10:00:00 GMT</pubDate></item></channel></rss>";

    /// A feed server on 127.0.0.1: `/feed.xml` the feed, `/hop` a redirect to
    /// `http://127.0.0.1:PORT/feed.xml`, `/loop` a redirect to itself. Its port.
    fn serve() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(mut s) = s else { continue };
                let mut first = String::new();
                let mut r = BufReader::new(s.try_clone().unwrap());
                if r.read_line(&mut first).is_err() {
                    continue;
                }
                let mut line = String::new();
                while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
                let answer = match path.as_str() {
                    "/feed.xml" => format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{RSS}",
                        RSS.len()
                    ),
                    "/hop" => format!(
                        "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{port}/feed.xml\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    ),
                    "/loop" => "HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
                    _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
                };
                let _ = s.write_all(answer.as_bytes());
            }
        });
        port
    }

    fn news(allow_hosts: &[&str], feeds: Vec<String>) -> (bool, String) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("abm.db").display().to_string();
        let app = App::open(&StoreSettings::new(&db), Config::default()).unwrap();
        let mut config = Config::default();
        config.news.allow_hosts = allow_hosts.iter().map(|h| h.to_string()).collect();
        let tools = crate::AbmTools::new(
            app,
            Access::Local {
                reviewer: "test".into(),
            },
            Connectors::new(&config, String::new(), None),
        );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let r = rt
            .block_on(tools.fetch_company_news(
                Extensions::default(),
                Parameters(NewsParams {
                    feeds,
                    name: Some("Acme Inc.".into()),
                    domain: None,
                }),
            ))
            .unwrap();
        let v = serde_json::to_value(&r).unwrap();
        let text = v["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        (r.is_error == Some(true), text)
    }

    #[test]
    fn feeds_on_internal_addresses_are_refused_unless_allowed() {
        let port = serve();
        let direct = format!("http://127.0.0.1:{port}/feed.xml");
        // By default: a loopback feed, and a redirect to one, are refused with the reason.
        let (err, text) = news(&[], vec![direct.clone()]);
        assert!(err, "{text}");
        assert!(
            text.contains("refused to fetch") && text.contains("127.0.0.1 (loopback)"),
            "{text}"
        );
        assert!(text.contains("allow_hosts"), "{text}");
        // The redirector allowed by name (localhost), its target (127.0.0.1) not: the
        // redirect is checked like the first URL.
        let (err, text) = news(&["localhost"], vec![format!("http://localhost:{port}/hop")]);
        assert!(err, "{text}");
        assert!(
            text.contains(&format!("http://127.0.0.1:{port}/feed.xml"))
                && text.contains("loopback"),
            "{text}"
        );
        let (err, text) = news(
            &["localhost"],
            vec![format!("http://localhost:{port}/loop")],
        );
        assert!(err && text.contains("more than 5 redirects"), "{text}");
        // Other schemes never.
        let (err, text) = news(&["127.0.0.1"], vec!["file:///etc/passwd".into()]);
        assert!(err && text.contains("only http"), "{text}");
        // Allowed: read, matched and classified.
        for (allow, url) in [
            (vec!["127.0.0.1"], direct.clone()),
            (
                vec!["localhost", "127.0.0.1"],
                format!("http://localhost:{port}/hop"),
            ),
        ] {
            let (err, text) = news(&allow, vec![url]);
            assert!(!err, "{text}");
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["matched"], 1, "{v}");
            assert_eq!(v["triggers"][0]["type"], "funding_round", "{v}");
        }
    }
}
