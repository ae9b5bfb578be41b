//! The fleet feed's stream: `GET {base}/api/auth/revocations/stream`, server-sent events.
//!
//! Each event is `id: <cursor>`, `event: set`, `data: <compact SET>`; a `: heartbeat` comment
//! is the first thing sent and follows every idle [`StreamSettings::heartbeat`]. The stream
//! resumes after `Last-Event-ID`, else `?after=`, else the newest event, and ends when the
//! token that opened it expires, when its reader falls so far behind that the purge overtook
//! it, or when the server shuts down; the reader reconnects with a fresh token and its
//! `Last-Event-ID`.
//!
//! Bounded: each pool has at most [`StreamSettings::max_per_pool`] open streams (more are
//! answered 503 with `Retry-After`), and a stream's producer hands events to the connection
//! through a small channel: a reader that stops reading stalls its producer, which gives up
//! after [`STALL`] and frees its place, so no server memory grows with a slow reader.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use gatehouse_domain::ids::PoolId;
use gatehouse_domain::pool::Pool;
use gatehouse_service::Gatehouse;
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use crate::AppState;
use crate::admin::ApiQuery;
use crate::error::{ApiError, no_store};
use crate::extract::{Authenticated, PoolCtx};

/// Events waiting between a stream's producer and its connection.
const BUFFER: usize = 16;
/// How long a producer waits for its reader to take an event before it ends the stream.
pub const STALL: Duration = Duration::from_secs(30);
/// SETs read from the log at a time.
const BATCH: u32 = 100;

/// How streams behave; from the `feed` section of the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSettings {
    /// Streams open at once per pool.
    pub max_per_pool: usize,
    /// The longest silence of an idle stream (at most 5 seconds, per the feed's contract).
    pub heartbeat: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            max_per_pool: 1000,
            heartbeat: Duration::from_secs(5),
        }
    }
}

/// The open streams: a count per pool, and the signal that ends them all at shutdown.
#[derive(Debug)]
pub struct Streams {
    settings: StreamSettings,
    open: Mutex<HashMap<PoolId, usize>>,
    closing: watch::Sender<bool>,
}

impl Streams {
    pub fn new(settings: StreamSettings) -> Self {
        Self {
            settings,
            open: Mutex::new(HashMap::new()),
            closing: watch::channel(false).0,
        }
    }

    /// Ends every open stream (the server is shutting down); new ones are refused.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// A place for one more stream of `pool`, unless it has its maximum.
    fn take(self: &Arc<Self>, pool: PoolId) -> Option<Slot> {
        let mut open = self.open.lock().ok()?;
        let n = open.entry(pool).or_insert(0);
        if *n >= self.settings.max_per_pool || *self.closing.borrow() {
            return None;
        }
        *n += 1;
        Some(Slot {
            streams: self.clone(),
            pool,
        })
    }

    /// Streams of `pool` open now.
    pub fn open_in(&self, pool: PoolId) -> usize {
        self.open
            .lock()
            .map(|open| open.get(&pool).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

/// One open stream's place, given back when the stream ends.
struct Slot {
    streams: Arc<Streams>,
    pool: PoolId,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.streams.open.lock()
            && let Some(n) = open.get_mut(&self.pool)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.pool);
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamParams {
    after: Option<String>,
}

fn cursor(name: &str, value: &str) -> Result<i64, ApiError> {
    value
        .trim()
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{name}: '{value}' is not a feed cursor")))
}

pub async fn stream(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<StreamParams>,
) -> Result<Response, ApiError> {
    let resume = match headers.get("last-event-id") {
        Some(v) => Some(cursor(
            "Last-Event-ID",
            v.to_str()
                .map_err(|_| ApiError::bad_request("Last-Event-ID: not a feed cursor"))?,
        )?),
        None => params
            .after
            .as_deref()
            .map(|a| cursor("after", a))
            .transpose()?,
    };
    let start = state
        .gh
        .open_revocation_stream(&pool, &caller, resume)
        .await?;
    let slot = state.streams.take(pool.id).ok_or_else(|| ApiError {
        retry_after_secs: Some(5),
        ..ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "this pool has as many revocation streams open as it allows; try again later",
        )
    })?;
    let (tx, rx) = mpsc::channel(BUFFER);
    let producer = Producer {
        gh: state.gh.clone(),
        pool: (*pool).clone(),
        expires_at: caller.token.expires_at,
        heartbeat: state.streams.settings.heartbeat,
        closing: state.streams.closing.subscribe(),
        tx,
        _slot: slot,
    };
    tokio::spawn(producer.run(start));
    let mut res = Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx)).into_response();
    no_store(&mut res);
    // Proxies that buffer responses would hold the events back.
    res.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    Ok(res)
}

/// Produces one stream's events until it ends.
struct Producer {
    gh: Arc<Gatehouse>,
    pool: Pool,
    /// When the opening token expires (seconds, the service's clock).
    expires_at: i64,
    heartbeat: Duration,
    closing: watch::Receiver<bool>,
    tx: mpsc::Sender<Result<Event, Infallible>>,
    _slot: Slot,
}

/// Why a stream ends.
enum End {
    /// The reader left, stalled, or the stream's time is over.
    Quietly,
}

impl Producer {
    async fn run(mut self, start: i64) {
        let _ = self.produce(start).await;
    }

    async fn send(&self, event: Event) -> Result<(), End> {
        match self.tx.send_timeout(Ok(event), STALL).await {
            Ok(()) => Ok(()),
            Err(_) => Err(End::Quietly),
        }
    }

    fn heartbeat() -> Event {
        Event::default().comment("heartbeat")
    }

    async fn produce(&mut self, start: i64) -> Result<(), End> {
        self.send(Self::heartbeat()).await?;
        let mut cursor = start;
        loop {
            if *self.closing.borrow() {
                return Err(End::Quietly);
            }
            let left = self.expires_at - self.gh.now().as_secs();
            if left <= 0 {
                return Err(End::Quietly);
            }
            // Everything after the cursor, a batch at a time.
            loop {
                let items = match self.gh.feed_sets_after(&self.pool, cursor, BATCH).await {
                    Ok(items) => items,
                    Err(e) => {
                        // Overtaken by the purge (the reader reconnects and is told 410), or
                        // the store failed: either way this stream is over.
                        tracing::info!(error = %e.for_operator(), "a revocation stream ends");
                        return Err(End::Quietly);
                    }
                };
                let Some(&(last, _)) = items.last() else {
                    break;
                };
                for (seq, set) in items {
                    let event = Event::default()
                        .id(seq.to_string())
                        .event("set")
                        .data(&*set);
                    self.send(event).await?;
                }
                cursor = last;
            }
            let nap = self
                .heartbeat
                .min(Duration::from_secs(u64::try_from(left).unwrap_or(1)));
            let woke = tokio::select! {
                _ = self.closing.changed() => return Err(End::Quietly),
                // The reader left: its place is free at once.
                () = self.tx.closed() => return Err(End::Quietly),
                w = self.gh.wait_for_security_events(self.pool.id, cursor, nap) => w,
            };
            match woke {
                Ok(true) => {}
                Ok(false) => self.send(Self::heartbeat()).await?,
                Err(e) => {
                    tracing::warn!(error = %e.for_operator(), "a revocation stream failed");
                    return Err(End::Quietly);
                }
            }
        }
    }
}
