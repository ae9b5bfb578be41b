//! Following the pool's revocation feed: the snapshot first (or, where the pool serves none,
//! the paged feed from the start), then the event stream from the snapshot's cursor, resumed
//! with `Last-Event-ID` after each disconnect (backoff with jitter, capped), the snapshot again
//! on `410 Gone`, and the paged feed polled while the stream cannot be opened.
//!
//! Every SET is verified before it changes anything; a SET that fails is counted and dropped.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, HeaderValue};
use serde::Deserialize;

use crate::health::{Calls, FeedState};
use crate::revocations::Effect;
use crate::set::{self, SetRejection};
use crate::verifier::Inner;

/// Why following stopped.
#[derive(Debug)]
enum Stop {
    /// The cursor is older than the retention horizon (or ahead of the feed): read the
    /// snapshot again.
    Gone,
    /// The pool serves no stream (or no snapshot): poll the paged feed.
    NotServed,
    /// The feed refused the token: fetch a new one.
    Unauthorized,
    /// Anything passing: try again after a backoff.
    Transient(String),
}

#[derive(Deserialize)]
struct Item {
    cursor: i64,
    set: String,
}

#[derive(Deserialize)]
struct Page {
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Snapshot {
    cursor: i64,
    retention_seconds: i64,
    items: Vec<Item>,
}

/// How often entries past retention are forgotten.
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// The follower: runs until the verifier is dropped. `ready` is told once the first read
/// of the feed succeeded or failed.
pub(crate) async fn follow(inner: Arc<Inner>, ready: tokio::sync::oneshot::Sender<()>) {
    let mut ready = Some(ready);
    let mut failures: u32 = 0;
    let mut last_forget = Instant::now();
    'bootstrap: loop {
        match bootstrap(&inner).await {
            Ok(()) => failures = 0,
            Err(stop) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
                handle_failure(&inner, stop, &mut failures).await;
                continue;
            }
        }
        if let Some(r) = ready.take() {
            let _ = r.send(());
        }
        loop {
            if last_forget.elapsed() >= FORGET_EVERY {
                forget_expired(&inner);
                last_forget = Instant::now();
            }
            let result = match stream(&inner, &mut failures).await {
                Err(Stop::NotServed) => poll(&inner, &mut failures).await,
                other => other,
            };
            match result {
                // The stream ended (its token expired, the server restarted): resume at once.
                Ok(()) => {}
                Err(Stop::Gone) => continue 'bootstrap,
                Err(stop) => handle_failure(&inner, stop, &mut failures).await,
            }
        }
    }
}

async fn handle_failure(inner: &Inner, stop: Stop, failures: &mut u32) {
    match stop {
        Stop::Unauthorized => inner.drop_feed_token().await,
        Stop::Transient(e) => tracing::debug!(error = %e, "the revocation feed is unreachable"),
        Stop::Gone | Stop::NotServed => {}
    }
    inner.progress.set_state(FeedState::Reconnecting);
    tokio::time::sleep(backoff(*failures, inner.config.backoff_cap)).await;
    *failures = failures.saturating_add(1);
}

/// 100 ms doubling per failure up to `cap`, then a random point in its upper half.
fn backoff(failures: u32, cap: Duration) -> Duration {
    let base = Duration::from_millis(100)
        .saturating_mul(1u32 << failures.min(10))
        .min(cap);
    // A randomly keyed hash: jitter needs no better randomness.
    let x = std::collections::hash_map::RandomState::new().hash_one(failures);
    let half = base / 2;
    half + Duration::from_nanos(x % u64::try_from(half.as_nanos()).unwrap_or(1).max(1))
}

fn forget_expired(inner: &Inner) {
    let retention = inner.retention_secs.load(Ordering::Relaxed);
    inner
        .revocations
        .forget_before(inner.clock.unix_seconds().saturating_sub(retention));
}

fn status_stop(status: StatusCode) -> Stop {
    match status {
        // 400: a cursor ahead of the feed (the pool's events were reset); read it anew.
        StatusCode::GONE | StatusCode::BAD_REQUEST => Stop::Gone,
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_ACCEPTABLE => {
            Stop::NotServed
        }
        StatusCode::UNAUTHORIZED => Stop::Unauthorized,
        s => Stop::Transient(format!("the feed answered {s}")),
    }
}

async fn get(
    inner: &Inner,
    url: &str,
    counter: &std::sync::atomic::AtomicU64,
) -> Result<reqwest::Response, Stop> {
    let token = inner.feed_token().await.map_err(Stop::Transient)?;
    Calls::count(counter);
    let res = inner
        .http
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| Stop::Transient(e.to_string()))?;
    if res.status().is_success() {
        Ok(res)
    } else {
        Err(status_stop(res.status()))
    }
}

/// Verifies one SET and applies its effect; a SET whose key is unknown gets one bounded
/// JWKS refetch. Whether it was applied.
async fn apply_set(inner: &Inner, set: &str) -> bool {
    let mut result = set::verify(
        set,
        &inner.keys(),
        &inner.config.issuer,
        &inner.set_audience,
    );
    if result == Err(SetRejection::UnknownKey) {
        inner.refetch_jwks().await;
        result = set::verify(
            set,
            &inner.keys(),
            &inner.config.issuer,
            &inner.set_audience,
        );
    }
    match result {
        Ok(effect) => {
            if effect != Effect::Nothing {
                inner.revocations.apply(std::slice::from_ref(&effect));
            }
            inner.progress.applied(1);
            true
        }
        Err(reason) => {
            tracing::warn!(?reason, "a SET from the revocation feed was refused");
            inner.progress.rejected();
            false
        }
    }
}

async fn apply_items(inner: &Inner, items: &[Item]) {
    for item in items {
        apply_set(inner, &item.set).await;
        if item.cursor > inner.progress.cursor() {
            inner.progress.set_cursor(item.cursor);
        }
    }
}

/// Reads the snapshot (or, where none is served, the paged feed from the cursor held).
async fn bootstrap(inner: &Inner) -> Result<(), Stop> {
    let url = format!("{}/snapshot", inner.endpoints.feed);
    match get(inner, &url, &inner.calls.snapshot).await {
        Ok(res) => {
            let snap: Snapshot = res
                .json()
                .await
                .map_err(|e| Stop::Transient(e.to_string()))?;
            if snap.retention_seconds > 0 {
                inner
                    .retention_secs
                    .store(snap.retention_seconds, Ordering::Relaxed);
            }
            apply_items(inner, &snap.items).await;
            inner.progress.set_cursor(snap.cursor);
            inner.progress.contact();
            forget_expired(inner);
            Ok(())
        }
        Err(Stop::NotServed) => {
            // No snapshot: every event still in the paged feed, from where we are.
            loop {
                if catch_up_page(inner).await? == 0 {
                    return Ok(());
                }
            }
        }
        Err(other) => Err(other),
    }
}

/// Reads one page of the paged feed after the cursor held. How many items it had.
async fn catch_up_page(inner: &Inner) -> Result<usize, Stop> {
    let url = format!(
        "{}?after={}&limit=100",
        inner.endpoints.feed,
        inner.progress.cursor()
    );
    let res = match get(inner, &url, &inner.calls.feed_pages).await {
        // A paged feed never served means the pool has no feed at all; that is not passing.
        Err(Stop::NotServed) => return Err(Stop::Transient("the pool serves no feed".into())),
        other => other?,
    };
    let page: Page = res
        .json()
        .await
        .map_err(|e| Stop::Transient(e.to_string()))?;
    apply_items(inner, &page.items).await;
    inner.progress.contact();
    Ok(page.items.len())
}

/// Polls the paged feed until it is time to try the stream again.
async fn poll(inner: &Inner, failures: &mut u32) -> Result<(), Stop> {
    let until = Instant::now() + inner.config.stream_retry_after;
    while Instant::now() < until {
        let n = catch_up_page(inner).await?;
        *failures = 0;
        inner.progress.set_state(FeedState::Polling);
        if n == 0 {
            tokio::time::sleep(inner.config.poll_interval).await;
        }
    }
    Ok(())
}

/// Follows the event stream from the cursor held until it ends.
async fn stream(inner: &Inner, failures: &mut u32) -> Result<(), Stop> {
    let token = inner.feed_token().await.map_err(Stop::Transient)?;
    Calls::count(&inner.calls.stream_connects);
    let cursor = inner.progress.cursor();
    let mut res = inner
        .http
        .get(format!("{}/stream", inner.endpoints.feed))
        .bearer_auth(token)
        .header(ACCEPT, HeaderValue::from_static("text/event-stream"))
        .header("last-event-id", cursor.to_string())
        .send()
        .await
        .map_err(|e| Stop::Transient(e.to_string()))?;
    if !res.status().is_success() {
        return Err(status_stop(res.status()));
    }
    let mut parser = SseParser::default();
    let mut received = false;
    loop {
        let chunk = tokio::time::timeout(inner.config.stream_idle_timeout, res.chunk())
            .await
            .map_err(|_| Stop::Transient("the stream fell silent".into()))?
            .map_err(|e| Stop::Transient(e.to_string()))?;
        let Some(chunk) = chunk else {
            // A stream that ended after serving resumes at once; one that never said
            // anything backs off like any failure.
            return if received {
                Ok(())
            } else {
                Err(Stop::Transient(
                    "the stream ended before its first byte".into(),
                ))
            };
        };
        received = true;
        inner.progress.set_state(FeedState::Streaming);
        *failures = 0;
        for event in parser.push(&chunk) {
            match event {
                SseEvent::Comment => inner.progress.contact(),
                SseEvent::Event { id, event, data } => {
                    inner.progress.contact();
                    if event != "set" && event != "message" {
                        continue;
                    }
                    let Some(id) = id.and_then(|i| i.parse::<i64>().ok()) else {
                        inner.progress.rejected();
                        continue;
                    };
                    if id <= inner.progress.cursor() {
                        continue;
                    }
                    apply_set(inner, &data).await;
                    inner.progress.set_cursor(id);
                }
            }
        }
    }
}

/// One thing a server-sent event stream said.
#[derive(Debug, PartialEq, Eq)]
enum SseEvent {
    /// A comment line (the feed's heartbeat).
    Comment,
    Event {
        id: Option<String>,
        event: String,
        data: String,
    },
}

/// The text/event-stream format (WHATWG HTML §9.2), fed in chunks of any size.
#[derive(Default)]
struct SseParser {
    buffer: Vec<u8>,
    id: Option<String>,
    event: Option<String>,
    data: Option<String>,
}

/// The longest line kept (a SET is a few KiB); longer ones are dropped.
const MAX_LINE: usize = 64 * 1024;

impl SseParser {
    fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buffer.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = line.strip_suffix(b"\n").unwrap_or(&line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = String::from_utf8_lossy(line);
            self.line(&line, &mut out);
        }
        if self.buffer.len() > MAX_LINE {
            self.buffer.clear();
        }
        out
    }

    fn line(&mut self, line: &str, out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                out.push(SseEvent::Event {
                    id: self.id.take(),
                    event: self.event.take().unwrap_or_else(|| "message".into()),
                    data,
                });
            }
            self.id = None;
            self.event = None;
            return;
        }
        if line.starts_with(':') {
            out.push(SseEvent::Comment);
            return;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => self.id = Some(value.to_owned()),
            "event" => self.event = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_stream_is_read_across_chunk_boundaries() {
        let mut p = SseParser::default();
        let text = ": heartbeat\n\nid: 7\nevent: set\ndata: a.b.c\n\nid: 8\r\nevent: set\r\ndata: d.e.f\r\n\r\n";
        let mut events = Vec::new();
        for chunk in text.as_bytes().chunks(5) {
            events.extend(p.push(chunk));
        }
        assert_eq!(
            events,
            vec![
                SseEvent::Comment,
                SseEvent::Event {
                    id: Some("7".into()),
                    event: "set".into(),
                    data: "a.b.c".into()
                },
                SseEvent::Event {
                    id: Some("8".into()),
                    event: "set".into(),
                    data: "d.e.f".into()
                },
            ]
        );
    }

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let cap = Duration::from_secs(2);
        for failures in 0..20 {
            let d = backoff(failures, cap);
            assert!(d <= cap);
            assert!(d >= Duration::from_millis(50));
        }
        assert!(backoff(15, cap) >= Duration::from_secs(1));
    }
}
