//! The HTTP client of the connectors (blocking, one request at a time).
//!
//! - **Rate limits.** The CRM's `X-HubSpot-RateLimit-Max` / `-Interval-Milliseconds` headers
//!   set a sliding window that is kept on our side (never more than the allowed requests per
//!   interval, with a small margin); `-Remaining: 0` waits for the window to free up.
//! - **429.** `TEN_SECONDLY_ROLLING` (or any 429 that is not the daily one) waits
//!   `Retry-After` when given, else until the window frees, and sends again: a 429 was not
//!   processed. `DAILY` stops the sync ([`Failure::DailyLimit`]).
//! - **401/403** stop at once ([`Failure::Unauthorized`]), never retried.
//! - **5xx, timeouts, dropped connections** are [`Failure::Transient`]: reads are retried here
//!   with [`Backoff`]; writes go back to the caller, which records the unknown outcome in the
//!   outbox and checks the CRM before sending again.
//!
//! The token is sent as `Authorization: Bearer …` and is never part of a message, a log line
//! or `Debug` output.

use crate::backoff::Backoff;
use serde_json::Value;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// An HTTP answer the caller reads (any status but 401/403/429).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    /// The body as text when it is not JSON.
    pub text: String,
}

impl Reply {
    /// The CRM's error message (`message` of the JSON body), else the text.
    pub fn message(&self) -> String {
        // HubSpot: `{"message": …}`; Salesforce: `[{"message": …, "errorCode": …}]`.
        let one = |v: &Value| {
            let m = v.get("message").and_then(Value::as_str)?;
            Some(match v.get("errorCode").and_then(Value::as_str) {
                Some(code) => format!("{code}: {m}"),
                None => m.to_string(),
            })
        };
        one(&self.body)
            .or_else(|| self.body.get(0).and_then(one))
            .unwrap_or_else(|| self.text.chars().take(500).collect())
    }

    /// Salesforce's `errorCode` of the first error.
    pub fn error_code(&self) -> Option<&str> {
        self.body
            .get(0)
            .and_then(|e| e.get("errorCode"))
            .and_then(Value::as_str)
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Why one request did not get an answer to read.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    Unauthorized {
        status: u16,
        message: String,
    },
    DailyLimit {
        message: String,
    },
    /// 5xx, a timeout or a dropped connection. `maybe_applied`: the request may have reached
    /// the CRM and been applied (false only when it never left, e.g. connection refused).
    Transient {
        reason: String,
        maybe_applied: bool,
    },
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// `https://api.hubapi.com`, or a local fake's URL in tests.
    pub base_url: String,
    /// One request's whole time limit.
    pub timeout: Duration,
    /// Attempts of a read (and of a write, by the outbox's delivery) within one sync.
    pub max_attempts: u32,
    pub backoff: Backoff,
    /// Requests per interval until the CRM's headers say otherwise.
    pub default_max: u32,
    pub default_interval: Duration,
    /// Waits for 429s in a row before giving up on one request.
    pub max_rate_limited: u32,
}

impl ClientSettings {
    pub fn new(base_url: impl Into<String>) -> ClientSettings {
        ClientSettings {
            base_url: base_url.into(),
            timeout: Duration::from_secs(30),
            max_attempts: 8,
            backoff: Backoff::default(),
            // HubSpot's documented floor for private apps: 100 requests per 10 seconds.
            default_max: 100,
            default_interval: Duration::from_secs(10),
            max_rate_limited: 50,
        }
    }
}

/// The sliding window of our own sends.
#[derive(Debug)]
struct Window {
    max: u32,
    interval: Duration,
    sent: VecDeque<Instant>,
    /// The CRM said no request is left until then.
    blocked_until: Option<Instant>,
}

/// Room for clock skew between our send and the CRM's receipt.
const WINDOW_MARGIN: Duration = Duration::from_millis(50);

impl Window {
    /// How long to wait before the next send (zero: now).
    fn wait(&mut self, now: Instant) -> Duration {
        let span = self.interval + WINDOW_MARGIN;
        while self
            .sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= span)
        {
            self.sent.pop_front();
        }
        let mut wait = Duration::ZERO;
        if self.sent.len() >= self.max.max(1) as usize {
            let free_at = self.sent[self.sent.len() - self.max.max(1) as usize] + span;
            wait = free_at.saturating_duration_since(now);
        }
        if let Some(b) = self.blocked_until {
            wait = wait.max(b.saturating_duration_since(now));
        }
        wait
    }

    fn record(&mut self, at: Instant) {
        self.sent.push_back(at);
        while self.sent.len() > 10_000 {
            self.sent.pop_front();
        }
    }

    /// Learn the limits from an answer's headers.
    fn learn(&mut self, headers: &dyn Fn(&str) -> Option<String>, now: Instant) {
        let num = |h: &str| headers(h).and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(m) = num("x-hubspot-ratelimit-max").filter(|m| *m > 0) {
            self.max = m.min(u32::MAX as u64) as u32;
        }
        if let Some(i) = num("x-hubspot-ratelimit-interval-milliseconds").filter(|i| *i > 0) {
            self.interval = Duration::from_millis(i);
        }
        self.blocked_until = match num("x-hubspot-ratelimit-remaining") {
            Some(0) => Some(now + self.interval.min(Duration::from_secs(10))),
            _ => None,
        };
    }
}

/// A CRM's HTTP API.
pub struct Client {
    settings: ClientSettings,
    token: String,
    agent: ureq::Agent,
    window: Window,
    rng: fastrand::Rng,
    /// Requests sent (every attempt), for reports.
    pub requests: u64,
    /// 429s waited for.
    pub rate_limited: u64,
    log: Box<dyn Fn(&str) + Send + Sync>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.settings.base_url)
            .field("token", &"***")
            .finish()
    }
}

/// Methods the connectors use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Patch,
}

impl Client {
    pub fn new(settings: ClientSettings, token: String) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(settings.timeout))
            .build()
            .into();
        Client {
            window: Window {
                max: settings.default_max,
                interval: settings.default_interval,
                sent: VecDeque::new(),
                blocked_until: None,
            },
            settings,
            token,
            agent,
            rng: fastrand::Rng::new(),
            requests: 0,
            rate_limited: 0,
            log: Box::new(|_| {}),
        }
    }

    /// The request window until the CRM's headers say otherwise.
    pub fn set_window(&mut self, max: u32, interval: Duration) {
        self.window.max = max.max(1);
        self.window.interval = interval;
    }

    /// Where status messages (waits, retries) go.
    pub fn set_log(&mut self, log: Box<dyn Fn(&str) + Send + Sync>) {
        self.log = log;
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// A wait before retry `attempt` (for the outbox's own retries).
    pub fn backoff_wait(&mut self, attempt: u32) -> Duration {
        self.settings.backoff.wait(attempt, &mut self.rng)
    }

    /// One request: waits for the rate window, and on a 429 other than the daily one waits
    /// and sends again (a 429 is never processed). Every other answer is returned, except
    /// 401/403 and the daily 429, which are failures, and 5xx/transport errors, which are
    /// [`Failure::Transient`].
    pub fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, Failure> {
        let mut limited = 0u32;
        loop {
            let wait = self.window.wait(Instant::now());
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
            let now = Instant::now();
            self.window.record(now);
            self.requests += 1;
            let url = format!("{}{}", self.settings.base_url.trim_end_matches('/'), path);
            let (status, headers, text) = self.exchange(method, &url, body)?;
            let get = |name: &str| {
                headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            };
            self.window.learn(&get, Instant::now());
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let reply = Reply { status, body, text };
            match status {
                // Salesforce says its daily allowance is spent with a 403.
                403 if reply.error_code() == Some("REQUEST_LIMIT_EXCEEDED") => {
                    return Err(Failure::DailyLimit {
                        message: reply.message(),
                    })
                }
                401 | 403 => {
                    return Err(Failure::Unauthorized {
                        status,
                        message: reply.message(),
                    })
                }
                429 => {
                    let policy = reply
                        .body
                        .get("policyName")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    if policy.eq_ignore_ascii_case("DAILY") {
                        return Err(Failure::DailyLimit {
                            message: reply.message(),
                        });
                    }
                    limited += 1;
                    self.rate_limited += 1;
                    if limited > self.settings.max_rate_limited {
                        return Err(Failure::Transient {
                            reason: format!("rate limited {limited} times in a row"),
                            maybe_applied: false,
                        });
                    }
                    let retry_after = get("retry-after")
                        .and_then(|v| v.trim().parse::<f64>().ok())
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        .map(|s| Duration::from_secs_f64(s.min(3600.0)));
                    let wait = match retry_after {
                        Some(d) => d,
                        // Our window is full: until its oldest send leaves it. Else (the
                        // limit is shared with another client of the same app, or the
                        // CRM counts differently): back off, longer with each 429 in a row.
                        // `X-HubSpot-RateLimit-Remaining: 0` already blocks the window.
                        None => {
                            let max = self.window.max.max(1) as usize;
                            let n = self.window.sent.len();
                            let free = if n >= max {
                                (self.window.sent[n - max] + self.window.interval + WINDOW_MARGIN)
                                    .saturating_duration_since(Instant::now())
                            } else {
                                Duration::ZERO
                            };
                            free.max(self.settings.backoff.wait(limited - 1, &mut self.rng))
                        }
                    };
                    (self.log)(&format!(
                        "rate limited ({}): waiting {} ms",
                        if policy.is_empty() { "429" } else { policy },
                        wait.as_millis()
                    ));
                    std::thread::sleep(wait);
                    continue;
                }
                500..=599 => {
                    return Err(Failure::Transient {
                        reason: format!("{status}: {}", reply.message()),
                        maybe_applied: true,
                    })
                }
                _ => return Ok(reply),
            }
        }
    }

    /// A read (or a write that may safely be repeated): [`Client::send`] retried with backoff
    /// on transient failures.
    pub fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, Failure> {
        let mut attempt = 0;
        loop {
            match self.send(method, path, body) {
                Err(Failure::Transient {
                    reason,
                    maybe_applied,
                }) => {
                    attempt += 1;
                    if attempt >= self.settings.max_attempts {
                        return Err(Failure::Transient {
                            reason,
                            maybe_applied,
                        });
                    }
                    let wait = self.backoff_wait(attempt - 1);
                    (self.log)(&format!(
                        "{reason}; retry {attempt} in {} ms",
                        wait.as_millis()
                    ));
                    std::thread::sleep(wait);
                }
                other => return other,
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn exchange(
        &mut self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Vec<(String, String)>, String), Failure> {
        let m = match method {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
        };
        let req = ureq::http::Request::builder()
            .method(m)
            .uri(url)
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Accept", "application/json");
        let result = match body {
            Some(b) => {
                let text = b.to_string();
                self.agent.run(
                    req.header("Content-Type", "application/json")
                        .body(text)
                        .map_err(|e| transient(format!("request: {e}"), false))?,
                )
            }
            None => self.agent.run(
                req.body(())
                    .map_err(|e| transient(format!("request: {e}"), false))?,
            ),
        };
        match result {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let headers = resp
                    .headers()
                    .iter()
                    .filter_map(|(k, v)| {
                        Some((k.as_str().to_string(), v.to_str().ok()?.to_string()))
                    })
                    .collect();
                let text = resp
                    .body_mut()
                    .with_config()
                    .limit(64 * 1024 * 1024)
                    .read_to_string()
                    .map_err(|e| transient(describe(&e), true))?;
                Ok((status, headers, text))
            }
            Err(e) => {
                let never_left = matches!(
                    e,
                    ureq::Error::ConnectionFailed
                        | ureq::Error::HostNotFound
                        | ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve)
                ) || matches!(&e, ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused);
                Err(transient(describe(&e), !never_left))
            }
        }
    }
}

fn transient(reason: String, maybe_applied: bool) -> Failure {
    Failure::Transient {
        reason,
        maybe_applied,
    }
}

/// An error's text without the URL's query (nothing secret is in a URL, but keep it short).
fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(t) => format!("timeout ({t:?})"),
        ureq::Error::Io(io) => format!("connection: {io}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_never_lets_more_than_max_requests_through_per_interval() {
        let mut w = Window {
            max: 3,
            interval: Duration::from_millis(1000),
            sent: VecDeque::new(),
            blocked_until: None,
        };
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(w.wait(t0 + Duration::from_millis(i)), Duration::ZERO);
            w.record(t0 + Duration::from_millis(i));
        }
        // The 4th waits until the 1st has left the window (interval + margin).
        let wait = w.wait(t0 + Duration::from_millis(10));
        assert_eq!(
            wait,
            Duration::from_millis(1000) + WINDOW_MARGIN - Duration::from_millis(10)
        );
        // Headers teach the window; Remaining 0 blocks for the interval.
        let headers = |h: &str| match h {
            "x-hubspot-ratelimit-max" => Some("10".to_string()),
            "x-hubspot-ratelimit-interval-milliseconds" => Some("2000".to_string()),
            "x-hubspot-ratelimit-remaining" => Some("0".to_string()),
            _ => None,
        };
        w.learn(&headers, t0);
        assert_eq!((w.max, w.interval), (10, Duration::from_millis(2000)));
        assert_eq!(w.wait(t0), Duration::from_millis(2000));
    }
}
