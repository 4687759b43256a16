//! Dashboard sessions: a token signs a browser in once; the browser then holds a random
//! session id in an `HttpOnly`, `SameSite=Strict` cookie (`Secure` behind TLS). The server
//! keeps only the id's SHA-256 with the session's token (re-checked on every request, so a
//! revoked token ends its sessions at once) and its CSRF token, which every form carries and
//! every POST must echo.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The session cookie's name.
pub(crate) const COOKIE: &str = "abm_session";
/// The cookie that carries the sign-in form's CSRF token before there is a session.
pub(crate) const SIGNIN_COOKIE: &str = "abm_signin";
/// A session unused this long ends.
const IDLE: Duration = Duration::from_secs(8 * 3600);
/// At most this many live sessions (the oldest go first).
const MAX_SESSIONS: usize = 10_000;

struct Session {
    /// The token that signed in (kept in memory only, to re-check it on every request).
    token: String,
    csrf: String,
    last_seen: Instant,
}

/// What a live session gives a request.
#[derive(Clone)]
pub(crate) struct Live {
    pub(crate) token: String,
    pub(crate) csrf: String,
}

/// The live sessions, keyed by the SHA-256 of their id.
#[derive(Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<[u8; 32], Session>>,
}

/// 32 random bytes as hex.
pub(crate) fn random_token() -> String {
    let mut b = [0u8; 32];
    // The OS's randomness failing is not something a web page can recover from.
    getrandom::getrandom(&mut b).expect("the OS provides randomness");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// Equal without an early exit (a CSRF token is compared in constant time).
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    /// A new session for `token`: its id (for the cookie).
    pub(crate) fn create(&self, token: String) -> String {
        let id = random_token();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        map.retain(|_, s| now.duration_since(s.last_seen) < IDLE);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| *k) {
                map.remove(&oldest);
            }
        }
        map.insert(
            key(&id),
            Session {
                token,
                csrf: random_token(),
                last_seen: now,
            },
        );
        id
    }

    /// The live session with this id (touched), if any.
    pub(crate) fn get(&self, id: &str) -> Option<Live> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let k = key(id);
        let now = Instant::now();
        let s = map.get_mut(&k)?;
        if now.duration_since(s.last_seen) >= IDLE {
            map.remove(&k);
            return None;
        }
        s.last_seen = now;
        Some(Live {
            token: s.token.clone(),
            csrf: s.csrf.clone(),
        })
    }

    pub(crate) fn remove(&self, id: &str) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&key(id));
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'h>(headers: &'h axum::http::HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the browser reached us over TLS (a proxy in front says so).
pub(crate) fn behind_tls(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, path `/`, `Secure` behind TLS;
/// `max_age` 0 deletes it.
pub(crate) fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_found_by_id_only_and_end() {
        let s = Sessions::default();
        let id = s.create("tok".into());
        let live = s.get(&id).expect("live");
        assert_eq!(live.token, "tok");
        assert_eq!(live.csrf.len(), 64);
        assert!(s.get("nope").is_none());
        assert!(s.get(&id[..63]).is_none());
        s.remove(&id);
        assert!(s.get(&id).is_none());
    }

    #[test]
    fn csrf_compare_and_cookies() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        let mut h = axum::http::HeaderMap::new();
        h.append("cookie", "a=1; abm_session=xyz".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "b"), None);
        assert!(!behind_tls(&h));
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        assert!(behind_tls(&h));
        let c = set_cookie(COOKIE, "v", true, None);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.ends_with("Secure"));
        assert!(!set_cookie(COOKIE, "v", false, Some(0)).contains("Secure"));
    }
}
