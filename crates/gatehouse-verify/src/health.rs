//! The verifier's state for health checks: how it follows the feed, how fresh it is, and every
//! HTTP call it has made to Gatehouse, by kind.

use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

/// How the verifier follows the feed right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedState {
    /// It has not read the feed yet.
    Starting,
    /// The event stream is open.
    Streaming,
    /// The stream is not available; it reads the feed page by page.
    Polling,
    /// The last attempt failed; it is trying again.
    Reconnecting,
    /// Nothing (no event, no heartbeat, no page) arrived for longer than the staleness limit.
    Stale,
}

impl FeedState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Streaming,
            2 => Self::Polling,
            3 => Self::Reconnecting,
            _ => Self::Starting,
        }
    }
    fn to_u8(self) -> u8 {
        match self {
            Self::Starting | Self::Stale => 0,
            Self::Streaming => 1,
            Self::Polling => 2,
            Self::Reconnecting => 3,
        }
    }
}

/// The HTTP calls the verifier has made to Gatehouse, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CallCounts {
    pub discovery: u64,
    pub jwks: u64,
    pub token: u64,
    pub snapshot: u64,
    pub stream_connects: u64,
    pub feed_pages: u64,
    pub introspections: u64,
}

impl CallCounts {
    pub fn total(&self) -> u64 {
        self.discovery
            + self.jwks
            + self.token
            + self.snapshot
            + self.stream_connects
            + self.feed_pages
            + self.introspections
    }
}

/// A snapshot of the verifier's state.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub state: FeedState,
    /// The newest feed cursor applied.
    pub cursor: i64,
    /// Milliseconds since the feed last said something (an event, a heartbeat, a page), if ever.
    pub last_contact_ms_ago: Option<u64>,
    /// Milliseconds since the last event was applied, if ever.
    pub last_event_ms_ago: Option<u64>,
    pub events_applied: u64,
    pub sets_rejected: u64,
    /// Entries held in the revocation state.
    pub revocation_entries: usize,
    pub calls: CallCounts,
}

#[derive(Default)]
pub(crate) struct Calls {
    pub discovery: AtomicU64,
    pub jwks: AtomicU64,
    pub token: AtomicU64,
    pub snapshot: AtomicU64,
    pub stream_connects: AtomicU64,
    pub feed_pages: AtomicU64,
    pub introspections: AtomicU64,
}

impl Calls {
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn read(&self) -> CallCounts {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CallCounts {
            discovery: r(&self.discovery),
            jwks: r(&self.jwks),
            token: r(&self.token),
            snapshot: r(&self.snapshot),
            stream_connects: r(&self.stream_connects),
            feed_pages: r(&self.feed_pages),
            introspections: r(&self.introspections),
        }
    }
}

/// The feed's progress, shared between the follower and the hot path (atomics only).
pub(crate) struct Progress {
    started: Instant,
    state: AtomicU8,
    cursor: AtomicI64,
    /// Milliseconds after `started` plus one (0: never).
    last_contact: AtomicU64,
    last_event: AtomicU64,
    pub events_applied: AtomicU64,
    pub sets_rejected: AtomicU64,
}

impl Progress {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            state: AtomicU8::new(FeedState::Starting.to_u8()),
            cursor: AtomicI64::new(0),
            last_contact: AtomicU64::new(0),
            last_event: AtomicU64::new(0),
            events_applied: AtomicU64::new(0),
            sets_rejected: AtomicU64::new(0),
        }
    }

    fn now_mark(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    fn ago(&self, mark: u64) -> Option<u64> {
        (mark != 0).then(|| self.now_mark().saturating_sub(mark))
    }

    pub fn set_state(&self, state: FeedState) {
        self.state.store(state.to_u8(), Ordering::Relaxed);
    }

    pub fn contact(&self) {
        self.last_contact.store(self.now_mark(), Ordering::Relaxed);
    }

    pub fn applied(&self, n: u64) {
        if n > 0 {
            self.events_applied.fetch_add(n, Ordering::Relaxed);
            self.last_event.store(self.now_mark(), Ordering::Relaxed);
        }
    }

    pub fn rejected(&self) {
        self.sets_rejected.fetch_add(1, Ordering::Relaxed);
    }

    pub fn cursor(&self) -> i64 {
        self.cursor.load(Ordering::Relaxed)
    }

    pub fn set_cursor(&self, cursor: i64) {
        self.cursor.store(cursor, Ordering::Relaxed);
    }

    /// Whether the feed has been silent for longer than `limit` (or never spoke).
    pub fn is_stale(&self, limit: Duration) -> bool {
        let limit = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        self.ago(self.last_contact.load(Ordering::Relaxed))
            .is_none_or(|ago| ago > limit)
    }

    pub fn read(&self, limit: Duration, entries: usize, calls: CallCounts) -> Health {
        let state = if self.is_stale(limit)
            && FeedState::from_u8(self.state.load(Ordering::Relaxed)) != FeedState::Starting
        {
            FeedState::Stale
        } else {
            FeedState::from_u8(self.state.load(Ordering::Relaxed))
        };
        Health {
            state,
            cursor: self.cursor(),
            last_contact_ms_ago: self.ago(self.last_contact.load(Ordering::Relaxed)),
            last_event_ms_ago: self.ago(self.last_event.load(Ordering::Relaxed)),
            events_applied: self.events_applied.load(Ordering::Relaxed),
            sets_rejected: self.sets_rejected.load(Ordering::Relaxed),
            revocation_entries: entries,
            calls,
        }
    }
}
