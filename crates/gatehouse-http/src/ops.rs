//! Operational endpoints: liveness, readiness, Prometheus metrics, and the fallbacks.

use std::any::Any;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gatehouse_crypto::password::{Awaited, HashCounts};

use crate::AppState;
use crate::error::ApiError;

/// Whether the server can serve: its database answers.
#[async_trait]
pub trait Readiness: Send + Sync + 'static {
    async fn ready(&self) -> bool;
}

/// Request counters by status class, and total handling time, rendered in Prometheus format.
#[derive(Debug, Default)]
pub struct Metrics {
    by_class: [AtomicU64; 5],
    duration_micros: AtomicU64,
    started: std::sync::OnceLock<Instant>,
}

impl Metrics {
    pub fn new() -> Self {
        let m = Self::default();
        let _ = m.started.set(Instant::now());
        m
    }

    fn record(&self, status: StatusCode, micros: u64) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        if let Some(c) = self.by_class.get(class) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.duration_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn render(&self, audit_events_lost: u64, hashes: HashCounts) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP gatehouse_password_hashes_total Password hashing requests: computed, skipped \
             because the caller had gone (abandoned), or refused because the queue was full.\n",
        );
        out.push_str("# TYPE gatehouse_password_hashes_total counter\n");
        for (outcome, n) in [
            ("computed", hashes.computed),
            ("abandoned", hashes.abandoned),
            ("refused", hashes.refused),
        ] {
            let _ = writeln!(
                out,
                "gatehouse_password_hashes_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
        out.push_str("# HELP gatehouse_audit_events_lost_total Queued audit events that could not be written.\n");
        out.push_str("# TYPE gatehouse_audit_events_lost_total counter\n");
        let _ = writeln!(out, "gatehouse_audit_events_lost_total {audit_events_lost}");
        out.push_str(
            "# HELP gatehouse_http_requests_total HTTP requests answered, by status class.\n",
        );
        out.push_str("# TYPE gatehouse_http_requests_total counter\n");
        let mut total = 0;
        for (i, c) in self.by_class.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            total += n;
            let _ = writeln!(
                out,
                "gatehouse_http_requests_total{{class=\"{}xx\"}} {n}",
                i + 1
            );
        }
        out.push_str(
            "# HELP gatehouse_http_request_duration_seconds Time spent answering requests.\n",
        );
        out.push_str("# TYPE gatehouse_http_request_duration_seconds summary\n");
        let secs = self.duration_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "gatehouse_http_request_duration_seconds_sum {secs}");
        let _ = writeln!(out, "gatehouse_http_request_duration_seconds_count {total}");
        out.push_str("# HELP gatehouse_uptime_seconds Seconds since the server started.\n");
        out.push_str("# TYPE gatehouse_uptime_seconds gauge\n");
        let up = self
            .started
            .get()
            .map_or(0.0, |s| s.elapsed().as_secs_f64());
        let _ = writeln!(out, "gatehouse_uptime_seconds {up}");
        out
    }
}

pub async fn count(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let res = next.run(req).await;
    let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    state.metrics.record(res.status(), micros);
    res
}

/// Runs each request to completion on its own task. Without this a client that disconnects
/// cancels its handler wherever it is waiting — possibly inside a database transaction,
/// which SQLite would then keep open (and its write lock held) on a pooled connection.
///
/// When the client goes or the request's deadline passes (either drops this future), the
/// request is marked abandoned: password checks it queued are skipped, not hashed.
pub async fn run_to_completion(req: Request, next: Next) -> Response {
    struct AbandonOnDrop(Awaited);
    impl Drop for AbandonOnDrop {
        fn drop(&mut self) {
            self.0.abandon();
        }
    }
    let awaited = Awaited::new();
    let _abandon = AbandonOnDrop(awaited.clone());
    match tokio::spawn(awaited.scope(next.run(req))).await {
        Ok(res) => res,
        Err(e) => {
            tracing::error!(error = %e, "a request task failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the server failed to handle the request",
            )
            .into_response()
        }
    }
}

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.readiness.ready().await {
        "ready".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
    }
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(
            state.gh.audit_events_lost(),
            state.gh.password_hash_counts(),
        ),
    )
        .into_response()
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such resource")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this resource does not support that method",
    )
}

pub fn panic_response(_: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("a handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "the server failed to handle the request",
    )
    .into_response()
}
