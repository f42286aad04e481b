//! Prometheus text exposition, by hand: a few counters, gauges and one histogram do not justify
//! a metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hanlin_api::BackendStats;

use crate::AppState;

/// Upper bounds (seconds) of the time-to-first-token buckets.
const TTFT_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; TTFT_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Server-wide counters; shared by every request.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    prompt_tokens: AtomicU64,
    cached_tokens: AtomicU64,
    generated_tokens: AtomicU64,
    in_flight: AtomicU64,
    ttft: Mutex<Histogram>,
}

/// Decrements the in-flight gauge when a generation ends, however it ends.
#[derive(Debug)]
pub struct InFlight(Arc<Metrics>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Counts one finished HTTP request.
    pub fn record_request(&self, route: &str, status: u16) {
        let mut map = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        *map.entry((route.to_string(), status)).or_default() += 1;
    }

    /// Counts one generation's tokens.
    pub fn record_tokens(&self, prompt: usize, cached: usize, generated: usize) {
        self.prompt_tokens
            .fetch_add(prompt as u64, Ordering::Relaxed);
        self.cached_tokens
            .fetch_add(cached as u64, Ordering::Relaxed);
        self.generated_tokens
            .fetch_add(generated as u64, Ordering::Relaxed);
    }

    /// Records the delay from request arrival to the first generated token.
    pub fn observe_ttft(&self, d: Duration) {
        let s = d.as_secs_f64();
        let mut h = self.ttft.lock().unwrap_or_else(PoisonError::into_inner);
        for (i, le) in TTFT_BUCKETS.iter().enumerate() {
            if s <= *le {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += s;
    }

    /// Marks a generation as running until the guard drops.
    pub fn in_flight(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// The exposition text.
    pub fn render(&self, stats: Option<BackendStats>) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP hanlin_requests_total HTTP requests by route and status."
        );
        let _ = writeln!(out, "# TYPE hanlin_requests_total counter");
        let requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        for ((route, status), n) in requests.iter() {
            let _ = writeln!(
                out,
                "hanlin_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        drop(requests);
        let counters = [
            (
                "hanlin_prompt_tokens_total",
                "Prompt tokens processed, cached ones included.",
                &self.prompt_tokens,
            ),
            (
                "hanlin_cached_prompt_tokens_total",
                "Prompt tokens served from the prefix cache.",
                &self.cached_tokens,
            ),
            (
                "hanlin_generated_tokens_total",
                "Tokens generated.",
                &self.generated_tokens,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP hanlin_requests_in_flight Generations in progress.\n# TYPE hanlin_requests_in_flight gauge\nhanlin_requests_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        let h = self.ttft.lock().unwrap_or_else(PoisonError::into_inner);
        let name = "hanlin_time_to_first_token_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Delay from request arrival to the first generated token."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (le, n) in TTFT_BUCKETS.iter().zip(h.counts) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(out, "{name}_sum {}\n{name}_count {}", h.sum, h.count);
        if let Some(s) = stats {
            let gauges = [
                (
                    "hanlin_queue_depth",
                    "Requests waiting for a slot.",
                    s.queued,
                ),
                (
                    "hanlin_sequences_running",
                    "Sequences being prefilled or decoded.",
                    s.running,
                ),
                (
                    "hanlin_kv_cache_cells_used",
                    "KV cache cells in use.",
                    s.kv_cells_used,
                ),
                (
                    "hanlin_kv_cache_cells_total",
                    "KV cache cells in all.",
                    s.kv_cells_total,
                ),
            ];
            for (name, help, v) in gauges {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
            }
        }
        out
    }
}

/// Middleware counting every routed request by its route pattern and final status.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    state
        .metrics()
        .record_request(&route, resp.status().as_u16());
    resp
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics().render(state.backend().stats()),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let m = Metrics::default();
        m.observe_ttft(Duration::from_millis(30));
        m.observe_ttft(Duration::from_secs(100));
        let text = m.render(None);
        assert!(
            text.contains("hanlin_time_to_first_token_seconds_bucket{le=\"0.025\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("hanlin_time_to_first_token_seconds_bucket{le=\"0.05\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("hanlin_time_to_first_token_seconds_bucket{le=\"60\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("hanlin_time_to_first_token_seconds_bucket{le=\"+Inf\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("hanlin_time_to_first_token_seconds_count 2\n"),
            "{text}"
        );
        assert!(!text.contains("hanlin_queue_depth"));
    }

    #[test]
    fn in_flight_guard() {
        let m = Arc::new(Metrics::default());
        let g = m.in_flight();
        assert!(m.render(None).contains("hanlin_requests_in_flight 1\n"));
        drop(g);
        assert!(m.render(None).contains("hanlin_requests_in_flight 0\n"));
        let s = BackendStats {
            queued: 3,
            ..BackendStats::default()
        };
        assert!(m.render(Some(s)).contains("hanlin_queue_depth 3\n"));
    }
}
