//! `GET /metrics`: Prometheus text format. Queue figures come from Redis
//! (shared by every process); HTTP figures are this process's own, so
//! Prometheus scrapes each API instance.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{AppState, HEALTH_TIMEOUT};
use stratbox_queue::metrics::Durations;

/// Request latency bounds in seconds: a Redis round trip on loopback is
/// ~0.1 ms, a large upload or CSV import takes seconds.
const LATENCY_BOUNDS_S: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Latency {
    buckets: [u64; LATENCY_BOUNDS_S.len() + 1],
    count: u64,
    sum_s: f64,
}

/// Request counts and latencies of this process, by method, route
/// template (never the raw path, so ids do not explode the label space)
/// and status.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    series: Mutex<BTreeMap<(String, String, u16), Latency>>,
}

impl HttpMetrics {
    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let bucket = LATENCY_BOUNDS_S
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(LATENCY_BOUNDS_S.len());
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let entry = series
            .entry((method.to_string(), route.to_string(), status))
            .or_default();
        entry.buckets[bucket] += 1;
        entry.count += 1;
        entry.sum_s += seconds;
    }

    fn snapshot(&self) -> BTreeMap<(String, String, u16), Latency> {
        self.series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Times every request; the route is the matched template.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let response = next.run(request).await;
    state.http.observe(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Prometheus exposition of the queue (Redis) and of this process's HTTP
/// traffic. Answers 200 even while Redis is down (`stratbox_redis_up 0`),
/// so a scrape still shows the outage.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format, version 0.0.4",
        content_type = "text/plain", body = String)))]
pub async fn prometheus(State(state): State<AppState>) -> Response {
    let mut out = String::with_capacity(8 << 10);
    let queue = tokio::time::timeout(HEALTH_TIMEOUT, async {
        let counters = state.queue.counters().await?;
        let stats = state.queue.stats().await?;
        let durations = state.queue.durations().await?;
        let backlog = state.queue.backlog().await?;
        let mut conn = state.queue.connection();
        let autoscaler =
            stratbox_service::autoscale::read_stats(&mut conn, state.queue.keys().prefix()).await?;
        Ok::<_, stratbox_queue::QueueError>((counters, stats, durations, backlog, autoscaler))
    })
    .await;
    match queue {
        Ok(Ok((counters, stats, durations, backlog, autoscaler))) => {
            gauge(
                &mut out,
                "stratbox_redis_up",
                "1 when Redis answered this scrape.",
                1,
            );
            family(
                &mut out,
                "stratbox_queue_waiting",
                "gauge",
                "Tasks waiting in a priority class stream, not yet delivered.",
            );
            for (class, n) in &stats.waiting {
                let _ = writeln!(out, "stratbox_queue_waiting{{class=\"{class}\"}} {n}");
            }
            family(
                &mut out,
                "stratbox_queue_pending",
                "gauge",
                "Tasks delivered to a worker and not yet acknowledged, per class.",
            );
            for (class, n) in &stats.pending {
                let _ = writeln!(out, "stratbox_queue_pending{{class=\"{class}\"}} {n}");
            }
            // What the SLA alert of docs/ops/prometheus-alerts.yml reads
            // (the same figure as `oldest_wait_ms` of the queue state).
            gauge(
                &mut out,
                "stratbox_queue_oldest_wait_seconds",
                "How long the oldest waiting task, of any class, has waited (0 when none waits).",
                seconds(backlog.oldest_wait_ms.unwrap_or(0) as f64 / 1000.0),
            );
            gauge(
                &mut out,
                "stratbox_queue_delayed",
                "Retries waiting for their backoff.",
                stats.delayed,
            );
            gauge(
                &mut out,
                "stratbox_queue_dlq_length",
                "Entries in the dead-letter stream.",
                stats.dlq,
            );
            gauge(
                &mut out,
                "stratbox_workers_live",
                "Worker processes with a fresh heartbeat.",
                stats.live_workers,
            );
            gauge(
                &mut out,
                "stratbox_active_tasks",
                "Tasks running now.",
                counters.active_tasks,
            );
            for (name, help) in [
                ("tasks_submitted", "Tasks submitted."),
                ("tasks_completed", "Tasks that completed."),
                ("tasks_failed", "Tasks that failed for good (to the DLQ)."),
                (
                    "tasks_timeout",
                    "Tasks that failed for good on their deadline.",
                ),
                ("tasks_retried", "Runs retried after a transient error."),
                ("tasks_cancelled", "Tasks cancelled."),
                (
                    "tasks_released",
                    "Runs given back by a worker shutting down.",
                ),
                ("tasks_requeued", "Tasks requeued from the DLQ."),
                (
                    "duplicates",
                    "Deliveries of tasks that had already ended (ignored).",
                ),
            ] {
                let value = counters.extra.get(name).copied().unwrap_or(0).max(0);
                let metric = format!("stratbox_{name}_total");
                family(&mut out, &metric, "counter", help);
                let _ = writeln!(out, "{metric} {value}");
            }
            family(
                &mut out,
                "stratbox_task_duration_seconds",
                "histogram",
                "Run time of tasks that ended, by outcome (last attempt).",
            );
            for (outcome, histogram) in &durations {
                task_histogram(&mut out, outcome, histogram);
            }
            autoscaler_families(&mut out, &autoscaler);
        }
        failed => {
            let cause = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => format!("no reply within {HEALTH_TIMEOUT:?}"),
            };
            tracing::warn!(%cause, "metrics: redis unavailable");
            gauge(
                &mut out,
                "stratbox_redis_up",
                "1 when Redis answered this scrape.",
                0,
            );
        }
    }
    http_families(&mut out, &state.http.snapshot());
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    family(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

fn task_histogram(out: &mut String, outcome: &str, histogram: &Durations) {
    let name = "stratbox_task_duration_seconds";
    for (bound_ms, n) in histogram.cumulative() {
        let le = match bound_ms {
            Some(ms) => seconds(ms as f64 / 1000.0),
            None => "+Inf".to_string(),
        };
        let _ = writeln!(
            out,
            "{name}_bucket{{outcome=\"{outcome}\",le=\"{le}\"}} {n}"
        );
    }
    let sum = seconds(histogram.sum_ms as f64 / 1000.0);
    let _ = writeln!(out, "{name}_sum{{outcome=\"{outcome}\"}} {sum}");
    let _ = writeln!(
        out,
        "{name}_count{{outcome=\"{outcome}\"}} {}",
        histogram.count
    );
}

fn autoscaler_families(out: &mut String, stats: &stratbox_service::autoscale::AutoscalerStats) {
    if let Some(workers) = stats.workers {
        gauge(
            out,
            "stratbox_autoscaler_workers",
            "Worker processes the autoscaler runs.",
            workers,
        );
    }
    if let Some(desired) = stats.desired {
        gauge(
            out,
            "stratbox_autoscaler_desired_workers",
            "Worker processes the autoscaler aims for.",
            desired,
        );
    }
    family(
        out,
        "stratbox_autoscaler_decisions_total",
        "counter",
        "Autoscaler decisions by action (up, down, restart) and reason.",
    );
    for ((action, reason), n) in &stats.decisions {
        let _ = writeln!(
            out,
            "stratbox_autoscaler_decisions_total{{action=\"{}\",reason=\"{}\"}} {n}",
            escape(action),
            escape(reason)
        );
    }
}

fn http_families(out: &mut String, series: &BTreeMap<(String, String, u16), Latency>) {
    family(
        out,
        "stratbox_http_requests_total",
        "counter",
        "HTTP requests answered by this process.",
    );
    for ((method, route, status), latency) in series {
        let _ = writeln!(
            out,
            "stratbox_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {}",
            escape(route),
            latency.count
        );
    }
    // Latency by method and route; statuses are merged so the series
    // count stays small.
    let mut by_route: BTreeMap<(&str, &str), Latency> = BTreeMap::new();
    for ((method, route, _), latency) in series {
        let merged = by_route.entry((method, route)).or_default();
        for (into, from) in merged.buckets.iter_mut().zip(latency.buckets) {
            *into += from;
        }
        merged.count += latency.count;
        merged.sum_s += latency.sum_s;
    }
    let name = "stratbox_http_request_duration_seconds";
    family(
        out,
        name,
        "histogram",
        "HTTP request latency in this process, by method and route.",
    );
    for ((method, route), latency) in by_route {
        let labels = format!("method=\"{method}\",route=\"{}\"", escape(route));
        let mut total = 0;
        for (i, n) in latency.buckets.iter().enumerate() {
            total += n;
            let le = LATENCY_BOUNDS_S
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| seconds(*b));
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {total}");
        }
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", seconds(latency.sum_s));
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", latency.count);
    }
}

/// Shortest exact form of a float, as Prometheus parses it.
fn seconds(value: f64) -> String {
    format!("{value}")
}

/// Label values escape `\`, `"` and newlines.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_land_in_the_first_bucket_that_holds_them() {
        let metrics = HttpMetrics::default();
        metrics.observe("GET", "/a", 200, 0.0005);
        metrics.observe("GET", "/a", 200, 0.0006);
        metrics.observe("GET", "/a", 404, 60.0);
        let snapshot = metrics.snapshot();
        let ok = &snapshot[&("GET".to_string(), "/a".to_string(), 200)];
        assert_eq!(ok.count, 2);
        assert_eq!(ok.buckets[0], 1);
        assert_eq!(ok.buckets[1], 1);
        let missing = &snapshot[&("GET".to_string(), "/a".to_string(), 404)];
        assert_eq!(missing.buckets[LATENCY_BOUNDS_S.len()], 1);

        let mut out = String::new();
        http_families(&mut out, &snapshot);
        assert!(out.contains(
            "stratbox_http_requests_total{method=\"GET\",route=\"/a\",status=\"404\"} 1\n"
        ));
        assert!(out.contains(
            "stratbox_http_request_duration_seconds_bucket{method=\"GET\",route=\"/a\",le=\"0.0005\"} 1\n"
        ));
        assert!(out.contains(
            "stratbox_http_request_duration_seconds_bucket{method=\"GET\",route=\"/a\",le=\"10\"} 2\n"
        ));
        assert!(out.contains(
            "stratbox_http_request_duration_seconds_bucket{method=\"GET\",route=\"/a\",le=\"+Inf\"} 3\n"
        ));
        assert!(out.contains(
            "stratbox_http_request_duration_seconds_count{method=\"GET\",route=\"/a\"} 3\n"
        ));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
