//! A fake Salesforce REST API on 127.0.0.1 for tests: SOQL `query` with `nextRecordsUrl`
//! pages (50 records a page), the filters abm sends (`LastModifiedDate >=`, `AccountId !=
//! null`, `Id IN (…)`), sObject Collections `PATCH composite/sobjects` with per-record
//! results (`allOrNone=false`), 401 `INVALID_SESSION_ID`, 403 `REQUEST_LIMIT_EXCEEDED`, and
//! injected 5xx and dropped connections (before or after applying a write).
//! Uses the HTTP plumbing of `fake_hubspot` (a sibling module).

#![allow(dead_code)]

use super::fake_hubspot::{read_request, respond, Request};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

pub const API: &str = "/services/data/v60.0";
const PAGE: usize = 50;

#[derive(Debug, Clone, Default)]
pub struct SfFaults {
    pub p5xx: f64,
    pub pdrop: f64,
    pub limit_exceeded: bool,
}

#[derive(Debug, Default)]
pub struct SfState {
    /// Records by object (`Account`, `Task`, `Event`, `Opportunity`), by id.
    pub objects: BTreeMap<String, BTreeMap<String, Value>>,
    pub updates_applied: BTreeMap<String, u32>,
    /// Accounts that answer ENTITY_IS_DELETED to an update.
    pub deleted: BTreeSet<String>,
    pub requests: u64,
    pub queries: u64,
    pub injected_5xx: u64,
    pub dropped: u64,
    cursors: HashMap<String, (Vec<Value>, usize)>,
    next_cursor: u64,
}

pub struct FakeSalesforce {
    pub url: String,
    pub token: String,
    pub state: Arc<Mutex<SfState>>,
    pub faults: Arc<Mutex<SfFaults>>,
    rng: Arc<Mutex<fastrand::Rng>>,
}

impl FakeSalesforce {
    pub fn start(seed: u64) -> FakeSalesforce {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let fake = FakeSalesforce {
            url: format!("http://{}", listener.local_addr().unwrap()),
            token: "00Dxx0000000001!AQ4AQFake".to_string(),
            state: Arc::new(Mutex::new(SfState::default())),
            faults: Arc::new(Mutex::new(SfFaults::default())),
            rng: Arc::new(Mutex::new(fastrand::Rng::with_seed(seed))),
        };
        let (state, faults, rng, token) = (
            fake.state.clone(),
            fake.faults.clone(),
            fake.rng.clone(),
            fake.token.clone(),
        );
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (state, faults, rng, token) =
                    (state.clone(), faults.clone(), rng.clone(), token.clone());
                std::thread::spawn(move || serve(conn, &state, &faults, &rng, &token));
            }
        });
        fake
    }

    /// Add a record of `object` (its `Id` inside).
    pub fn add(&self, object: &str, record: Value) {
        let id = record["Id"].as_str().unwrap().to_string();
        self.state
            .lock()
            .unwrap()
            .objects
            .entry(object.to_string())
            .or_default()
            .insert(id, record);
    }

    pub fn account(&self, id: &str) -> Value {
        self.state.lock().unwrap().objects["Account"][id].clone()
    }
}

/// An 18-character Account id.
pub fn account_id(n: u64) -> String {
    format!("001{n:012}AAA")
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn serve(
    conn: TcpStream,
    state: &Mutex<SfState>,
    faults: &Mutex<SfFaults>,
    rng: &Mutex<fastrand::Rng>,
    token: &str,
) {
    let Ok(clone) = conn.try_clone() else { return };
    let mut reader = BufReader::new(clone);
    let mut stream = conn;
    let Some(req) = read_request(&mut reader) else {
        return;
    };
    state.lock().unwrap().requests += 1;
    let hdrs = vec![(
        "Sforce-Limit-Info".to_string(),
        "api-usage=10/15000".to_string(),
    )];
    if req.headers.get("authorization") != Some(&format!("Bearer {token}")) {
        respond(
            &mut stream,
            401,
            &hdrs,
            &json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]),
        );
        return;
    }
    let f = faults.lock().unwrap().clone();
    if f.limit_exceeded {
        respond(
            &mut stream,
            403,
            &hdrs,
            &json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]),
        );
        return;
    }
    let x = rng.lock().unwrap().f64();
    if x < f.p5xx {
        state.lock().unwrap().injected_5xx += 1;
        respond(
            &mut stream,
            503,
            &hdrs,
            &json!([{"message": "Service Unavailable", "errorCode": "SERVER_UNAVAILABLE"}]),
        );
        return;
    }
    let drop = x < f.p5xx + f.pdrop;
    let drop_before = drop && rng.lock().unwrap().bool();
    if drop_before {
        state.lock().unwrap().dropped += 1;
        let _ = stream.shutdown(std::net::Shutdown::Both);
        return;
    }
    let (status, body) = route(&req, state);
    if drop {
        state.lock().unwrap().dropped += 1;
        let _ = stream.shutdown(std::net::Shutdown::Both);
        return;
    }
    respond(&mut stream, status, &hdrs, &body);
}

fn page(s: &mut SfState, records: Vec<Value>, offset: usize) -> Value {
    let total = records.len();
    let chunk: Vec<Value> = records.iter().skip(offset).take(PAGE).cloned().collect();
    let done = offset + PAGE >= total;
    let mut out = json!({"totalSize": total, "done": done, "records": chunk});
    if !done {
        s.next_cursor += 1;
        let cursor = format!("01g{:015}", s.next_cursor);
        out["nextRecordsUrl"] = json!(format!("{API}/query/{cursor}-{}", offset + PAGE));
        s.cursors.insert(cursor, (records, offset + PAGE));
    }
    out
}

fn route(req: &Request, state: &Mutex<SfState>) -> (u16, Value) {
    let mut s = state.lock().unwrap();
    if req.method == "GET" && req.path == format!("{API}/query") {
        s.queries += 1;
        let q = decode(req.query.get("q").map(String::as_str).unwrap_or(""));
        let Some((_, rest)) = q.split_once(" FROM ") else {
            return (
                400,
                json!([{"message": format!("bad SOQL {q}"), "errorCode": "MALFORMED_QUERY"}]),
            );
        };
        let object = rest.split_whitespace().next().unwrap_or("").to_string();
        let mut recs: Vec<Value> = s
            .objects
            .get(&object)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        if let Some((_, since)) = q.split_once("LastModifiedDate >= ") {
            let since = since.split_whitespace().next().unwrap_or("").to_string();
            // ISO strings of one form compare as text.
            let since = since.trim_end_matches('Z').to_string();
            recs.retain(|r| r["LastModifiedDate"].as_str().unwrap_or("") >= since.as_str());
        }
        if q.contains("AccountId != null") {
            recs.retain(|r| r["AccountId"].is_string());
        }
        if let Some((_, ids)) = q.split_once("Id IN (") {
            let ids: BTreeSet<String> = ids
                .trim_end_matches(')')
                .split(',')
                .map(|i| i.trim().trim_matches('\'').to_string())
                .collect();
            recs.retain(|r| ids.contains(r["Id"].as_str().unwrap_or("")));
        }
        if q.contains("ORDER BY LastModifiedDate") {
            recs.sort_by(|a, b| {
                a["LastModifiedDate"]
                    .as_str()
                    .cmp(&b["LastModifiedDate"].as_str())
            });
        }
        for r in &mut recs {
            r["attributes"] = json!({"type": object, "url": format!("{API}/sobjects/{object}/{}", r["Id"].as_str().unwrap_or(""))});
        }
        return (200, page(&mut s, recs, 0));
    }
    if req.method == "GET" && req.path.starts_with(&format!("{API}/query/")) {
        let cursor = req.path.rsplit('/').next().unwrap_or("");
        let cursor = cursor.split('-').next().unwrap_or("").to_string();
        let Some((recs, offset)) = s.cursors.remove(&cursor) else {
            return (
                400,
                json!([{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}]),
            );
        };
        return (200, page(&mut s, recs, offset));
    }
    if req.method == "PATCH" && req.path == format!("{API}/composite/sobjects") {
        let records = req.body["records"].as_array().cloned().unwrap_or_default();
        if records.len() > 200 {
            return (
                400,
                json!([{"message": "EXCEEDED_ID_LIMIT: record limit is 200", "errorCode": "EXCEEDED_ID_LIMIT"}]),
            );
        }
        if req.body["allOrNone"] != json!(false) {
            return (
                400,
                json!([{"message": "abm sends allOrNone=false", "errorCode": "INVALID_FIELD"}]),
            );
        }
        let mut results = Vec::new();
        for r in records {
            let id = r["id"].as_str().unwrap_or("").to_string();
            if s.deleted.contains(&id)
                || !s
                    .objects
                    .get("Account")
                    .is_some_and(|a| a.contains_key(&id))
            {
                results.push(json!({"id": id, "success": false, "errors": [{"statusCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": []}]}));
                continue;
            }
            let acc = s.objects.get_mut("Account").unwrap().get_mut(&id).unwrap();
            for (k, v) in r.as_object().unwrap() {
                if k != "id" && k != "attributes" {
                    acc[k.as_str()] = v.clone();
                }
            }
            *s.updates_applied.entry(id.clone()).or_default() += 1;
            results.push(json!({"id": id, "success": true, "errors": []}));
        }
        return (200, Value::Array(results));
    }
    (
        404,
        json!([{"message": format!("no route {} {}", req.method, req.path), "errorCode": "NOT_FOUND"}]),
    )
}
