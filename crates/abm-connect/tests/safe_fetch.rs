//! `safe_fetch` against a real HTTP server on 127.0.0.1: refused by default (the server is
//! internal), fetched when allowed, redirects re-checked and capped, bodies capped.

use abm_connect::safe_fetch::{fetch, FetchPolicy};
use abm_connect::ConnectError;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::Duration;

/// `/feed` 200 "hello", `/big` 200 with 64 KiB, `/to-feed` 302 to `/feed` (relative),
/// `/to-other` 302 to `http://127.0.0.2:PORT/feed`, `/loop` 302 to itself. The port.
fn serve() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut first = String::new();
            if r.read_line(&mut first).is_err() {
                continue;
            }
            let mut line = String::new();
            while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
            let ok = |body: &str| {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            };
            let to = |loc: &str| {
                format!(
                    "HTTP/1.1 302 Found\r\nLocation: {loc}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
            };
            let answer = match path.as_str() {
                "/feed" => ok("hello"),
                "/big" => ok(&"x".repeat(64 * 1024)),
                "/to-feed" => to("/feed"),
                "/to-other" => to(&format!("http://127.0.0.2:{port}/feed")),
                "/loop" => to("/loop"),
                _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string(),
            };
            let _ = s.write_all(answer.as_bytes());
        }
    });
    port
}

fn policy(allow: &[&str]) -> FetchPolicy {
    FetchPolicy {
        allow_hosts: allow.iter().map(|h| h.to_string()).collect(),
        max_redirects: 3,
        max_bytes: 16 * 1024,
        timeout: Duration::from_secs(10),
    }
}

fn refused(r: Result<Vec<u8>, ConnectError>, says: &str) {
    match r {
        Err(e @ ConnectError::Refused { .. }) => {
            assert!(e.to_string().contains(says), "{e}")
        }
        other => panic!("expected a refusal saying {says:?}, got {other:?}"),
    }
}

#[test]
fn internal_hosts_are_refused_unless_allowed_and_redirects_are_checked_again() {
    let port = serve();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    // Default policy: the loopback server is refused before any connection.
    refused(fetch(&url("/feed"), &FetchPolicy::default()), "(loopback)");
    // Allowed by address: fetched, redirects followed (a relative Location too).
    let allowed = policy(&["127.0.0.1"]);
    assert_eq!(fetch(&url("/feed"), &allowed).unwrap(), b"hello");
    assert_eq!(fetch(&url("/to-feed"), &allowed).unwrap(), b"hello");
    // A redirect to another internal address that is not allowed: refused, naming it.
    refused(fetch(&url("/to-other"), &allowed), "127.0.0.2");
    // Redirects are capped; bodies are capped.
    refused(fetch(&url("/loop"), &allowed), "more than 3 redirects");
    refused(fetch(&url("/big"), &allowed), "larger than 16384 bytes");
    // An HTTP error is an error, not a body.
    let e = fetch(&url("/nothing"), &allowed).unwrap_err();
    assert!(e.to_string().contains("404"), "{e}");
}
