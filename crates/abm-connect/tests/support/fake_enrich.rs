//! A fake enrichment API on 127.0.0.1 for tests, speaking the contract of docs/enrichment.md:
//! `GET /companies?domain=D` with `Authorization: Bearer TOKEN` → 200 with the company's
//! fields (nested under `company`, so that field mappings are exercised), 404 when unknown,
//! 401 for a wrong token; `flaky.example` answers 503 twice before it answers, and
//! `limited.example` 429 (`Retry-After: 0`) once. Every request is counted by domain.
//!
//! Needs `mod fake_hubspot` beside it (its HTTP reader and writer).

#![allow(dead_code)]

use super::fake_hubspot::{read_request, respond};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::BufReader;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

pub struct FakeEnrich {
    pub url: String,
    pub token: String,
    /// Requests per domain (every attempt).
    pub requests: Arc<Mutex<BTreeMap<String, u32>>>,
}

impl FakeEnrich {
    pub fn start(companies: Vec<(&str, Value)>) -> FakeEnrich {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let token = "enrich-secret".to_string();
        let requests: Arc<Mutex<BTreeMap<String, u32>>> = Arc::default();
        let known: Arc<BTreeMap<String, Value>> = Arc::new(
            companies
                .into_iter()
                .map(|(d, v)| (d.to_string(), v))
                .collect(),
        );
        let (tok, reqs) = (token.clone(), requests.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (tok, reqs, known) = (tok.clone(), reqs.clone(), known.clone());
                std::thread::spawn(move || {
                    let Ok(read) = conn.try_clone() else { return };
                    let mut reader = BufReader::new(read);
                    let mut stream = conn;
                    let Some(req) = read_request(&mut reader) else {
                        return;
                    };
                    let domain = req.query.get("domain").cloned().unwrap_or_default();
                    let n = {
                        let mut r = reqs.lock().unwrap();
                        let n = r.entry(domain.clone()).or_default();
                        *n += 1;
                        *n
                    };
                    let auth = req
                        .headers
                        .get("authorization")
                        .cloned()
                        .unwrap_or_default();
                    let (status, headers, body) = if auth != format!("Bearer {tok}") {
                        (401, vec![], json!({"message": "bad token"}))
                    } else if req.method != "GET" || req.path != "/companies" {
                        (404, vec![], json!({"message": "no such route"}))
                    } else if domain == "flaky.example" && n <= 2 {
                        (503, vec![], json!({"message": "try later"}))
                    } else if domain == "limited.example" && n == 1 {
                        (
                            429,
                            vec![("Retry-After".to_string(), "0".to_string())],
                            json!({"message": "slow down"}),
                        )
                    } else {
                        match known.get(&domain) {
                            Some(c) => (200, vec![], json!({"company": c})),
                            None => (404, vec![], json!({"message": "unknown domain"})),
                        }
                    };
                    respond(&mut stream, status, &headers, &body);
                });
            }
        });
        FakeEnrich {
            url,
            token,
            requests,
        }
    }

    pub fn total_requests(&self) -> u32 {
        self.requests.lock().unwrap().values().sum()
    }
}
