//! A fake HubSpot on 127.0.0.1 for tests: the documented CRM v3 requests and answers abm uses
//! (company search with `after` paging and a full-text `query`, 200 a page and a 400 beyond 10,000 results; the list
//! endpoints with associations; batch update with 207 Multi-Status; batch read; notes and the
//! note search; properties and property groups), the rate-limit headers and a sliding-window
//! limit that answers 429 `TEN_SECONDLY_ROLLING` when exceeded (and counts it as a violation),
//! and injected faults: 5xx bursts, 429 bodies and headers, the daily limit, 401, slow answers
//! (after applying the write) and dropped connections (before or after applying it).
//!
//! Shared by abm-connect's tests and the `abm` binary's tests (`#[path]`).

#![allow(dead_code)]

use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Injected faults, as probabilities per request.
#[derive(Debug, Clone)]
pub struct Faults {
    pub p5xx: f64,
    /// A 5xx burst: this many 5xx in a row once one is drawn.
    pub burst: u32,
    pub p429: f64,
    /// Dropped connection (half before applying, half after).
    pub pdrop: f64,
    /// Answer slower than this after applying.
    pub pslow: f64,
    pub slow: Duration,
    /// Faults touch only writes (batch update, note create) when set.
    pub writes_only: bool,
    /// The daily limit is spent: every request gets 429 DAILY.
    pub daily_spent: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            p5xx: 0.0,
            burst: 1,
            p429: 0.0,
            pdrop: 0.0,
            pslow: 0.0,
            slow: Duration::from_millis(0),
            writes_only: true,
            daily_spent: false,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Object {
    pub id: u64,
    pub props: BTreeMap<String, String>,
    /// Associated objects by type (`companies`, `contacts`).
    pub assoc: BTreeMap<String, Vec<u64>>,
}

#[derive(Debug, Default)]
pub struct State {
    pub companies: BTreeMap<u64, Object>,
    /// meetings, calls, emails, notes, deals.
    pub objects: BTreeMap<String, BTreeMap<u64, Object>>,
    pub groups: BTreeSet<String>,
    pub properties: BTreeSet<String>,
    /// Batch updates applied per company (each input counts once).
    pub updates_applied: BTreeMap<u64, u32>,
    /// Notes created by the API (id → body), in order.
    pub notes_created: Vec<(u64, String, u64)>,
    pub next_id: u64,
    /// Requests received (timestamps), for the limit.
    recent: VecDeque<Instant>,
    /// Requests beyond the limit (the client broke the window).
    pub violations: u64,
    pub requests: u64,
    /// Injected faults answered.
    pub injected_5xx: u64,
    pub injected_429: u64,
    pub dropped: u64,
    pub slowed: u64,
    /// Largest search `after` asked.
    pub max_after: usize,
    /// Company ids that refuse updates (207 error) — "deleted".
    pub refuse_update: BTreeSet<u64>,
    burst_left: u32,
    /// The search index of note bodies: token → note ids.
    note_index: std::collections::HashMap<String, Vec<u64>>,
    /// Notes created but not searchable yet (HubSpot's search index lags writes): set
    /// `search_lag` to hold this many of the newest notes out of the search.
    pub search_lag: usize,
}

pub struct FakeHubSpot {
    pub url: String,
    pub state: Arc<Mutex<State>>,
    pub faults: Arc<Mutex<Faults>>,
    pub token: String,
    /// The window: at most `limit_max` requests per `limit_interval`.
    pub limit_max: u32,
    pub limit_interval: Duration,
    rng: Arc<Mutex<fastrand::Rng>>,
}

impl FakeHubSpot {
    pub fn start(limit_max: u32, limit_interval: Duration, seed: u64) -> FakeHubSpot {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let fake = FakeHubSpot {
            url,
            state: Arc::new(Mutex::new(State {
                next_id: 900_000_000,
                ..State::default()
            })),
            faults: Arc::new(Mutex::new(Faults::default())),
            token: "pat-test-secret-token".to_string(),
            limit_max,
            limit_interval,
            rng: Arc::new(Mutex::new(fastrand::Rng::with_seed(seed))),
        };
        let ctx = Ctx {
            state: fake.state.clone(),
            faults: fake.faults.clone(),
            token: fake.token.clone(),
            limit_max,
            limit_interval,
            rng: fake.rng.clone(),
        };
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let ctx = ctx.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &ctx);
                });
            }
        });
        fake
    }

    pub fn set_faults(&self, f: Faults) {
        *self.faults.lock().unwrap() = f;
    }

    /// Add `n` companies with ids from `first`, modified one second apart from `t0_ms`.
    pub fn add_companies(&self, first: u64, n: u64, t0_ms: i64) {
        let mut s = self.state.lock().unwrap();
        for i in 0..n {
            let id = first + i;
            let mut props = BTreeMap::new();
            props.insert("name".into(), format!("Company {id}"));
            props.insert("domain".into(), format!("c{id}.example.com"));
            props.insert(
                "industry".into(),
                // Software is the default ICP's core; construction earns none of its
                // industry points (retail now earns 10 of 30).
                if i % 2 == 0 {
                    "COMPUTER_SOFTWARE"
                } else {
                    "CONSTRUCTION"
                }
                .into(),
            );
            props.insert(
                "numberofemployees".into(),
                format!("{}", 50 + (i % 7) * 300),
            );
            props.insert("country".into(), "United States".into());
            props.insert("hs_lastmodifieddate".into(), iso(t0_ms + i as i64 * 1000));
            s.companies.insert(
                id,
                Object {
                    id,
                    props,
                    assoc: BTreeMap::new(),
                },
            );
        }
    }

    /// Add an engagement (`meetings`, `calls`, `emails`, `notes`) or a deal.
    pub fn add_object(
        &self,
        kind: &str,
        props: &[(&str, &str)],
        companies: &[u64],
        contacts: &[u64],
    ) -> u64 {
        let mut s = self.state.lock().unwrap();
        s.next_id += 1;
        let id = s.next_id;
        let mut assoc = BTreeMap::new();
        assoc.insert("companies".to_string(), companies.to_vec());
        assoc.insert("contacts".to_string(), contacts.to_vec());
        s.objects.entry(kind.to_string()).or_default().insert(
            id,
            Object {
                id,
                props: props
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                assoc,
            },
        );
        id
    }

    /// Notes whose body carries `token`, counted.
    pub fn notes_with(&self, token: &str) -> usize {
        let s = self.state.lock().unwrap();
        s.notes_created
            .iter()
            .filter(|(_, b, _)| b.split_whitespace().any(|w| w == token))
            .count()
    }
}

/// Epoch ms → RFC 3339 (UTC, milliseconds), as HubSpot writes dates.
pub fn iso(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// RFC 3339 → epoch ms (the forms `iso` writes).
fn parse_ms(s: &str) -> Option<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let ms = if b.get(19) == Some(&b'.') {
        num(20..23).unwrap_or(0)
    } else {
        0
    };
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = if mo > 2 { mo - 3 } else { mo + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + mi * 60 + se) * 1000) + ms)
}

#[derive(Clone)]
struct Ctx {
    state: Arc<Mutex<State>>,
    faults: Arc<Mutex<Faults>>,
    token: String,
    limit_max: u32,
    limit_interval: Duration,
    rng: Arc<Mutex<fastrand::Rng>>,
}

pub struct Request {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
    pub body: Value,
}

pub fn read_request(stream: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    stream.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        stream.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).ok()?;
    let (path, q) = target.split_once('?').unwrap_or((&target, ""));
    let query = q
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Some(Request {
        method,
        path: path.to_string(),
        query,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    })
}

pub fn respond(stream: &mut TcpStream, status: u16, headers: &[(String, String)], body: &Value) {
    let text = body.to_string();
    let reason = match status {
        200 => "OK",
        201 => "Created",
        207 => "Multi-Status",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        _ => "Error",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json;charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
        text.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&text);
    let _ = stream.write_all(out.as_bytes());
    let _ = stream.flush();
}

fn error_body(message: &str, category: &str) -> Value {
    json!({"status": "error", "message": message, "correlationId": "00000000-0000-0000-0000-000000000000", "category": category})
}

enum Fault {
    None,
    S5xx,
    R429,
    DropBefore,
    DropAfter,
    Slow,
}

fn serve(conn: TcpStream, ctx: &Ctx) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut stream = conn;
    let Some(req) = read_request(&mut reader) else {
        return Ok(());
    };
    let now = Instant::now();
    // The window, as HubSpot keeps it.
    let (remaining, over) = {
        let mut s = ctx.state.lock().unwrap();
        s.requests += 1;
        while s
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= ctx.limit_interval)
        {
            s.recent.pop_front();
        }
        s.recent.push_back(now);
        let used = s.recent.len() as u32;
        let over = used > ctx.limit_max;
        if over {
            s.violations += 1;
        }
        (ctx.limit_max.saturating_sub(used), over)
    };
    let mut rl = vec![
        (
            "X-HubSpot-RateLimit-Daily".to_string(),
            "250000".to_string(),
        ),
        (
            "X-HubSpot-RateLimit-Daily-Remaining".to_string(),
            "200000".to_string(),
        ),
        (
            "X-HubSpot-RateLimit-Interval-Milliseconds".to_string(),
            ctx.limit_interval.as_millis().to_string(),
        ),
        (
            "X-HubSpot-RateLimit-Max".to_string(),
            ctx.limit_max.to_string(),
        ),
        (
            "X-HubSpot-RateLimit-Remaining".to_string(),
            remaining.to_string(),
        ),
    ];
    if req.headers.get("authorization") != Some(&format!("Bearer {}", ctx.token)) {
        respond(
            &mut stream,
            401,
            &rl,
            &error_body(
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                "INVALID_AUTHENTICATION",
            ),
        );
        return Ok(());
    }
    let faults = ctx.faults.lock().unwrap().clone();
    if faults.daily_spent {
        respond(
            &mut stream,
            429,
            &rl,
            &json!({"status": "error", "message": "You have reached your daily limit.", "errorType": "RATE_LIMIT", "correlationId": "x", "policyName": "DAILY", "groupName": "api-calls-daily"}),
        );
        return Ok(());
    }
    if over {
        rl.push(("Retry-After".to_string(), "1".to_string()));
        respond(
            &mut stream,
            429,
            &rl,
            &json!({"status": "error", "message": "You have reached your ten_secondly_rolling limit.", "errorType": "RATE_LIMIT", "correlationId": "x", "policyName": "TEN_SECONDLY_ROLLING", "groupName": "api-calls-secondly"}),
        );
        return Ok(());
    }
    let is_write = req.method == "POST"
        && (req.path == "/crm/v3/objects/companies/batch/update"
            || req.path == "/crm/v3/objects/notes");
    let fault = if faults.writes_only && !is_write {
        Fault::None
    } else {
        let mut s = ctx.state.lock().unwrap();
        if s.burst_left > 0 {
            s.burst_left -= 1;
            Fault::S5xx
        } else {
            let x = ctx.rng.lock().unwrap().f64();
            let mut acc = faults.p5xx;
            if x < acc {
                s.burst_left = faults.burst.saturating_sub(1);
                Fault::S5xx
            } else if x < {
                acc += faults.p429;
                acc
            } {
                Fault::R429
            } else if x < {
                acc += faults.pdrop;
                acc
            } {
                if ctx.rng.lock().unwrap().bool() {
                    Fault::DropBefore
                } else {
                    Fault::DropAfter
                }
            } else if x < acc + faults.pslow {
                Fault::Slow
            } else {
                Fault::None
            }
        }
    };
    match fault {
        Fault::S5xx => {
            ctx.state.lock().unwrap().injected_5xx += 1;
            let code = [500u16, 502, 503, 504][ctx.rng.lock().unwrap().usize(0..4)];
            respond(
                &mut stream,
                code,
                &rl,
                &error_body("internal error", "INTERNAL_ERROR"),
            );
            return Ok(());
        }
        Fault::R429 => {
            ctx.state.lock().unwrap().injected_429 += 1;
            respond(
                &mut stream,
                429,
                &rl,
                &json!({"status": "error", "message": "You have reached your ten_secondly_rolling limit.", "errorType": "RATE_LIMIT", "correlationId": "x", "policyName": "TEN_SECONDLY_ROLLING", "groupName": "api-calls-secondly"}),
            );
            return Ok(());
        }
        Fault::DropBefore => {
            ctx.state.lock().unwrap().dropped += 1;
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return Ok(());
        }
        _ => {}
    }
    let (status, body) = route(&req, ctx);
    match fault {
        Fault::DropAfter => {
            ctx.state.lock().unwrap().dropped += 1;
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        Fault::Slow => {
            ctx.state.lock().unwrap().slowed += 1;
            std::thread::sleep(faults.slow);
            respond(&mut stream, status, &rl, &body);
        }
        _ => respond(&mut stream, status, &rl, &body),
    }
    Ok(())
}

fn object_json(o: &Object, props: &[String], with_assoc: &[&str]) -> Value {
    let mut p = Map::new();
    for name in props {
        p.insert(
            name.clone(),
            o.props.get(name).map(|v| json!(v)).unwrap_or(Value::Null),
        );
    }
    p.insert("hs_object_id".into(), json!(o.id.to_string()));
    let mut v = json!({
        "id": o.id.to_string(),
        "properties": p,
        "createdAt": "2026-01-01T00:00:00.000Z",
        "updatedAt": o.props.get("hs_lastmodifieddate").cloned().unwrap_or_else(|| "2026-01-01T00:00:00.000Z".into()),
        "archived": false,
    });
    let mut assoc = Map::new();
    for kind in with_assoc {
        if let Some(ids) = o.assoc.get(*kind).filter(|ids| !ids.is_empty()) {
            let ty = match *kind {
                "companies" => "company_to_object",
                _ => "contact_to_object",
            };
            assoc.insert(
                kind.to_string(),
                json!({"results": ids.iter().map(|i| json!({"id": i.to_string(), "type": ty})).collect::<Vec<_>>()}),
            );
        }
    }
    if !assoc.is_empty() {
        v["associations"] = Value::Object(assoc);
    }
    v
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn route(req: &Request, ctx: &Ctx) -> (u16, Value) {
    let mut s = ctx.state.lock().unwrap();
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("POST", ["crm", "v3", "objects", "companies", "search"]) => {
            let limit = req.body["limit"].as_u64().unwrap_or(10).min(200) as usize;
            let after: usize = req.body["after"]
                .as_str()
                .and_then(|a| a.parse().ok())
                .or_else(|| req.body["after"].as_u64().map(|n| n as usize))
                .unwrap_or(0);
            s.max_after = s.max_after.max(after);
            if req.body["limit"].as_u64().unwrap_or(10) > 200 {
                return (
                    400,
                    error_body("limit must be at most 200", "VALIDATION_ERROR"),
                );
            }
            if after + limit > 10_000 {
                return (
                    400,
                    error_body(
                        "There was a problem with the request. Search results are limited to 10,000 total results.",
                        "VALIDATION_ERROR",
                    ),
                );
            }
            let from = req
                .body
                .pointer("/filterGroups/0/filters/0/value")
                .and_then(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .or_else(|| v.as_i64().map(|n| n.to_string()))
                })
                .and_then(|v| parse_ms(&v))
                .unwrap_or(i64::MIN);
            // `query`: HubSpot's full-text search (here: a word of the name or the domain).
            let query = req.body["query"].as_str().map(str::to_lowercase);
            let matches = |c: &Object| {
                query.as_deref().is_none_or(|q| {
                    ["name", "domain"].iter().any(|p| {
                        c.props
                            .get(*p)
                            .is_some_and(|v| v.to_lowercase().contains(q))
                    })
                })
            };
            let mut all: Vec<&Object> = s
                .companies
                .values()
                .filter(|c| {
                    c.props
                        .get("hs_lastmodifieddate")
                        .and_then(|d| parse_ms(d))
                        .unwrap_or(0)
                        >= from
                        && matches(c)
                })
                .collect();
            all.sort_by_key(|c| {
                (
                    c.props
                        .get("hs_lastmodifieddate")
                        .and_then(|d| parse_ms(d))
                        .unwrap_or(0),
                    c.id,
                )
            });
            let props = str_list(&req.body["properties"]);
            let page: Vec<Value> = all
                .iter()
                .skip(after)
                .take(limit)
                .map(|c| object_json(c, &props, &[]))
                .collect();
            let mut out = json!({"total": all.len(), "results": page});
            if after + limit < all.len() {
                out["paging"] =
                    json!({"next": {"after": (after + limit).to_string(), "link": "?after="}});
            }
            (200, out)
        }
        ("GET", ["crm", "v3", "objects", kind]) => {
            let limit: usize = req
                .query
                .get("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(10)
                .min(100);
            let after: u64 = req
                .query
                .get("after")
                .and_then(|a| a.parse().ok())
                .unwrap_or(0);
            let props: Vec<String> = req
                .query
                .get("properties")
                .map(|p| p.split(',').map(str::to_string).collect())
                .unwrap_or_default();
            let assoc: Vec<&str> = req
                .query
                .get("associations")
                .map(|a| a.split(',').collect())
                .unwrap_or_default();
            let empty = BTreeMap::new();
            let objs = s.objects.get(*kind).unwrap_or(&empty);
            let page: Vec<&Object> = objs
                .range(after..)
                .take(limit + 1)
                .map(|(_, o)| o)
                .collect();
            let results: Vec<Value> = page
                .iter()
                .take(limit)
                .map(|o| object_json(o, &props, &assoc))
                .collect();
            let mut out = json!({"results": results});
            if page.len() > limit {
                out["paging"] = json!({"next": {"after": page[limit].id.to_string()}});
            }
            (200, out)
        }
        ("POST", ["crm", "v3", "objects", "companies", "batch", "update"]) => {
            let inputs = req.body["inputs"].as_array().cloned().unwrap_or_default();
            if inputs.len() > 100 {
                return (
                    400,
                    error_body("Batch size must be at most 100", "VALIDATION_ERROR"),
                );
            }
            let mut results = Vec::new();
            let mut errors = Vec::new();
            for i in &inputs {
                let id: u64 = i["id"].as_str().and_then(|x| x.parse().ok()).unwrap_or(0);
                if !s.companies.contains_key(&id) || s.refuse_update.contains(&id) {
                    errors.push(json!({"status": "error", "category": "OBJECT_NOT_FOUND", "message": format!("Could not get some COMPANY objects, they may be deleted or not exist. Check that ids are valid: [{id}]"), "context": {"ids": [id.to_string()]}}));
                    continue;
                }
                if let Some(p) = i["properties"].as_object() {
                    for k in p.keys() {
                        if !s.properties.contains(k) {
                            return (400, error_body(&format!("Property values were not valid: Property \"{k}\" does not exist"), "VALIDATION_ERROR"));
                        }
                    }
                    let c = s.companies.get_mut(&id).unwrap();
                    for (k, v) in p {
                        c.props.insert(
                            k.clone(),
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string()),
                        );
                    }
                }
                *s.updates_applied.entry(id).or_default() += 1;
                results.push(json!({"id": id.to_string(), "properties": i["properties"]}));
            }
            if errors.is_empty() {
                (200, json!({"status": "COMPLETE", "results": results}))
            } else {
                (
                    207,
                    json!({"status": "COMPLETE", "results": results, "numErrors": errors.len(), "errors": errors}),
                )
            }
        }
        ("POST", ["crm", "v3", "objects", "companies", "batch", "read"]) => {
            let props = str_list(&req.body["properties"]);
            let results: Vec<Value> = req.body["inputs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["id"].as_str()?.parse::<u64>().ok())
                .filter_map(|id| s.companies.get(&id))
                .map(|c| object_json(c, &props, &[]))
                .collect();
            (200, json!({"status": "COMPLETE", "results": results}))
        }
        ("POST", ["crm", "v3", "objects", "notes"]) => {
            let body = req
                .body
                .pointer("/properties/hs_note_body")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if body.len() > 65_536 {
                return (
                    400,
                    error_body(
                        "hs_note_body is longer than 65536 characters",
                        "VALIDATION_ERROR",
                    ),
                );
            }
            let ts = req
                .body
                .pointer("/properties/hs_timestamp")
                .and_then(Value::as_str)
                .unwrap_or("");
            if ts.is_empty() {
                return (
                    400,
                    error_body(
                        "Property values were not valid: hs_timestamp is required",
                        "VALIDATION_ERROR",
                    ),
                );
            }
            let to: u64 = req
                .body
                .pointer("/associations/0/to/id")
                .and_then(Value::as_str)
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
            let ty = req
                .body
                .pointer("/associations/0/types/0/associationTypeId")
                .and_then(Value::as_u64);
            if ty != Some(190) || !s.companies.contains_key(&to) {
                return (400, error_body(&format!("One or more associations are invalid: note to company {to} (type {ty:?})"), "VALIDATION_ERROR"));
            }
            s.next_id += 1;
            let id = s.next_id;
            s.notes_created.push((id, body.clone(), to));
            for w in body.split_whitespace() {
                s.note_index.entry(w.to_string()).or_default().push(id);
            }
            let mut assoc = BTreeMap::new();
            assoc.insert("companies".to_string(), vec![to]);
            let mut props = BTreeMap::new();
            props.insert("hs_note_body".to_string(), body);
            props.insert("hs_timestamp".to_string(), ts.to_string());
            s.objects
                .entry("notes".into())
                .or_default()
                .insert(id, Object { id, props, assoc });
            (
                201,
                json!({"id": id.to_string(), "properties": {"hs_note_body": req.body.pointer("/properties/hs_note_body")}, "createdAt": "2026-01-01T00:00:00.000Z", "archived": false}),
            )
        }
        ("POST", ["crm", "v3", "objects", "notes", "search"]) => {
            let token = req
                .body
                .pointer("/filterGroups/0/filters/0/value")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let newest_hidden: BTreeSet<u64> = s
                .notes_created
                .iter()
                .rev()
                .take(s.search_lag)
                .map(|n| n.0)
                .collect();
            let ids: Vec<u64> = s
                .note_index
                .get(&token)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|id| !newest_hidden.contains(id))
                .collect();
            let results: Vec<Value> = ids
                .iter()
                .filter_map(|id| s.objects.get("notes")?.get(id))
                .map(|n| object_json(n, &["hs_note_body".to_string()], &[]))
                .collect();
            (200, json!({"total": results.len(), "results": results}))
        }
        ("GET", ["crm", "v4", "objects", "companies", id, "associations", "notes"]) => {
            let id: u64 = id.parse().unwrap_or(0);
            let results: Vec<Value> = s
                .objects
                .get("notes")
                .into_iter()
                .flat_map(|m| m.values())
                .filter(|n| n.assoc.get("companies").is_some_and(|c| c.contains(&id)))
                .map(|n| json!({"toObjectId": n.id, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 190, "label": null}]}))
                .collect();
            (200, json!({"results": results}))
        }
        ("POST", ["crm", "v3", "objects", "notes", "batch", "read"]) => {
            let results: Vec<Value> = req.body["inputs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["id"].as_str()?.parse::<u64>().ok())
                .filter_map(|id| s.objects.get("notes")?.get(&id))
                .map(|n| object_json(n, &["hs_note_body".to_string()], &[]))
                .collect();
            (200, json!({"status": "COMPLETE", "results": results}))
        }
        ("GET", ["crm", "v3", "properties", "companies", "groups", name]) => {
            if s.groups.contains(*name) {
                (
                    200,
                    json!({"name": name, "label": "ABM", "displayOrder": -1, "archived": false}),
                )
            } else {
                (
                    404,
                    error_body(
                        &format!("Unable to find property group {name}"),
                        "OBJECT_NOT_FOUND",
                    ),
                )
            }
        }
        ("POST", ["crm", "v3", "properties", "companies", "groups"]) => {
            let name = req.body["name"].as_str().unwrap_or("").to_string();
            if !s.groups.insert(name.clone()) {
                return (409, error_body("group exists", "OBJECT_ALREADY_EXISTS"));
            }
            (201, json!({"name": name}))
        }
        ("GET", ["crm", "v3", "properties", "companies", name]) => {
            if s.properties.contains(*name) {
                (200, json!({"name": name}))
            } else {
                (
                    404,
                    error_body(
                        &format!("Unable to find property {name}"),
                        "OBJECT_NOT_FOUND",
                    ),
                )
            }
        }
        ("POST", ["crm", "v3", "properties", "companies"]) => {
            let name = req.body["name"].as_str().unwrap_or("").to_string();
            if !s
                .groups
                .contains(req.body["groupName"].as_str().unwrap_or(""))
            {
                return (400, error_body("group does not exist", "VALIDATION_ERROR"));
            }
            if !s.properties.insert(name.clone()) {
                return (409, error_body("property exists", "OBJECT_ALREADY_EXISTS"));
            }
            (201, json!({"name": name}))
        }
        _ => (
            404,
            error_body(
                &format!("no route {} {}", req.method, req.path),
                "OBJECT_NOT_FOUND",
            ),
        ),
    }
}
