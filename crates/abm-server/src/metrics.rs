//! Prometheus text for `/metrics`: requests and latencies per route and status, the review
//! queue and the latest run (read from the store at scrape time).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0, 30.0,
];

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

/// Request counters, keyed by (method, route, status).
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), Series>>,
}

impl Metrics {
    pub fn record(&self, method: &str, route: &str, status: u16, latency: Duration) {
        let secs = latency.as_secs_f64();
        let mut m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let s = m
            .entry((method.to_string(), route.to_string(), status))
            .or_default();
        s.count += 1;
        s.sum += secs;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                s.buckets[i] += 1;
            }
        }
    }

    /// The exposition text; `queue` is the store's side (absent when the store failed).
    pub fn render(&self, queue: Option<&abm_app::accounts::QueueStatus>) -> String {
        let mut out = String::new();
        let m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        out.push_str("# HELP abm_http_requests_total HTTP requests answered.\n");
        out.push_str("# TYPE abm_http_requests_total counter\n");
        for ((method, route, status), s) in m.iter() {
            let _ = writeln!(
                out,
                "abm_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {}",
                escape(route),
                s.count
            );
        }
        out.push_str("# HELP abm_http_request_duration_seconds Time to answer a request.\n");
        out.push_str("# TYPE abm_http_request_duration_seconds histogram\n");
        let mut per_route: BTreeMap<(&str, &str), Series> = BTreeMap::new();
        for ((method, route, _), s) in m.iter() {
            let t = per_route.entry((method, route)).or_default();
            t.count += s.count;
            t.sum += s.sum;
            for i in 0..BUCKETS.len() {
                t.buckets[i] += s.buckets[i];
            }
        }
        for ((method, route), s) in &per_route {
            let labels = format!("method=\"{method}\",route=\"{}\"", escape(route));
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "abm_http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "abm_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "abm_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "abm_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        drop(m);
        out.push_str(
            "# HELP abm_up Whether the store answered this scrape.\n# TYPE abm_up gauge\n",
        );
        let _ = writeln!(out, "abm_up {}", u8::from(queue.is_some()));
        if let Some(q) = queue {
            out.push_str("# HELP abm_checkpoints_pending Checkpoints waiting for a reviewer.\n");
            out.push_str("# TYPE abm_checkpoints_pending gauge\n");
            let _ = writeln!(out, "abm_checkpoints_pending {}", q.pending_checkpoints);
            if let (Some(run), Some(as_of)) = (q.latest_run, q.latest_run_as_of) {
                out.push_str("# HELP abm_last_run_id The latest recorded run.\n");
                out.push_str("# TYPE abm_last_run_id gauge\n");
                let _ = writeln!(out, "abm_last_run_id {run}");
                out.push_str(
                    "# HELP abm_last_run_as_of_seconds The latest run's as_of (Unix time).\n",
                );
                out.push_str("# TYPE abm_last_run_as_of_seconds gauge\n");
                let _ = writeln!(out, "abm_last_run_as_of_seconds {as_of}");
            }
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_buckets() {
        let m = Metrics::default();
        m.record("GET", "/api/summary", 200, Duration::from_micros(1500));
        m.record("GET", "/api/summary", 404, Duration::from_millis(30));
        let t = m.render(None);
        assert!(t.contains(
            "abm_http_requests_total{method=\"GET\",route=\"/api/summary\",status=\"200\"} 1"
        ));
        assert!(t.contains(
            "abm_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/summary\",le=\"0.002\"} 1"
        ));
        assert!(t.contains(
            "abm_http_request_duration_seconds_count{method=\"GET\",route=\"/api/summary\"} 2"
        ));
        assert!(t.contains("abm_up 0"));
    }
}
