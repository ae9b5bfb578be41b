//! OpenID Shared Signals Framework 1.0 streams: each pool is a transmitter, each receiver an
//! app client of the pool holding one stream. A stream follows the pool's security event log
//! from the event current when it was created (`position`), takes the events it delivers into
//! a queue of its own (fan-out), and hands them out by push (RFC 8935) or poll (RFC 8936).
//!
//! Every change of a stream is a compare-and-set on its `version`, every fan-out a
//! compare-and-set on its `position`, so two instances (or two requests) never both apply
//! a change decided on the same state.

use async_trait::async_trait;

use crate::error::StoreResult;
use crate::ids::{ClientId, PoolId};
use crate::time::Timestamp;

/// RFC 8935 push delivery.
pub const DELIVERY_PUSH: &str = "urn:ietf:rfc:8935";
/// RFC 8936 poll delivery.
pub const DELIVERY_POLL: &str = "urn:ietf:rfc:8936";
/// The SSF verification event type.
pub const VERIFICATION_EVENT: &str =
    "https://schemas.openid.net/secevent/ssf/event-type/verification";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryMethod {
    Push,
    Poll,
}

impl DeliveryMethod {
    pub fn urn(self) -> &'static str {
        match self {
            DeliveryMethod::Push => DELIVERY_PUSH,
            DeliveryMethod::Poll => DELIVERY_POLL,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            DELIVERY_PUSH => Some(DeliveryMethod::Push),
            DELIVERY_POLL => Some(DeliveryMethod::Poll),
            _ => None,
        }
    }
}

/// SSF §8.1.2 stream status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStatus {
    /// Events are delivered.
    Enabled,
    /// Events are held (up to [`HELD_MAX`]) and delivered in order once enabled again.
    Paused,
    /// Events are dropped, and what was queued is discarded.
    Disabled,
}

/// The most SETs a stream holds undelivered (a paused stream, or a receiver that does not
/// poll or accept); events beyond it are not queued for that stream.
pub const HELD_MAX: i64 = 10_000;

impl StreamStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamStatus::Enabled => "enabled",
            StreamStatus::Paused => "paused",
            StreamStatus::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "enabled" => Some(StreamStatus::Enabled),
            "paused" => Some(StreamStatus::Paused),
            "disabled" => Some(StreamStatus::Disabled),
            _ => None,
        }
    }
}

/// A stream as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct SsfStream {
    pub pool: PoolId,
    /// RFC 3986 unreserved characters only.
    pub id: String,
    /// The receiver: the stream's owner and its `aud`.
    pub client: ClientId,
    pub description: Option<String>,
    /// What the receiver asked for, as sent (unknown URIs included; they are ignored).
    pub events_requested: Vec<String>,
    pub method: DeliveryMethod,
    /// Push: the receiver's endpoint. Poll: none (the poll URL is derived from the stream).
    pub endpoint_url: Option<String>,
    /// Push: the `Authorization` header value sent with each SET. Never read back to clients.
    pub authorization_header: Option<String>,
    pub status: StreamStatus,
    pub status_reason: Option<String>,
    /// The newest event of the pool's log the stream has fanned out.
    pub position: i64,
    pub version: i64,
    pub created_at: Timestamp,
    pub last_verification_at: Option<Timestamp>,
}

impl std::fmt::Debug for SsfStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsfStream")
            .field("pool", &self.pool)
            .field("id", &self.id)
            .field("client", &self.client)
            .field("method", &self.method)
            .field("status", &self.status)
            .field("position", &self.position)
            .field(
                "authorization_header",
                &self.authorization_header.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

/// A SET waiting in a stream's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedSet {
    pub jti: String,
    pub set: String,
    /// Push attempts made so far.
    pub attempts: i64,
    pub first_attempt_at: Option<Timestamp>,
    /// A push waits until then (after a transient failure).
    pub next_attempt_at: Timestamp,
}

impl QueuedSet {
    pub fn new(jti: String, set: String, now: Timestamp) -> Self {
        Self {
            jti,
            set,
            attempts: 0,
            first_attempt_at: None,
            next_attempt_at: now,
        }
    }
}

/// What a fan-out found: the stream's position moved from `from` to `to` and these SETs
/// joined its queue.
#[derive(Debug)]
pub struct FanOut<'a> {
    pub from: i64,
    pub to: i64,
    pub sets: &'a [QueuedSet],
}

/// Storage of SSF streams. Each call is one statement or one transaction, scoped to a pool;
/// changes are compare-and-sets, so a decision made on a stale read is refused rather than
/// applied.
#[async_trait]
pub trait SsfStore: Send + Sync {
    /// The pool's streams, or those of one receiver.
    async fn ssf_streams(
        &self,
        pool: PoolId,
        client: Option<&ClientId>,
    ) -> StoreResult<Vec<SsfStream>>;
    async fn ssf_stream(&self, pool: PoolId, id: &str) -> StoreResult<Option<SsfStream>>;
    /// Creates a stream whose position is the pool's newest event when it commits (`Conflict`
    /// when the receiver has one already). Returns it as stored.
    async fn ssf_create_stream(&self, stream: &SsfStream) -> StoreResult<SsfStream>;
    /// Replaces the stream's receiver-set fields and status if its version is still
    /// `stream.version` (and bumps it); when it becomes disabled its queue is discarded.
    /// `false` when the stream changed or went meanwhile.
    async fn ssf_update_stream(&self, stream: &SsfStream) -> StoreResult<bool>;
    /// Deletes a stream with its queue and subjects; `false` when there was none.
    async fn ssf_delete_stream(&self, pool: PoolId, id: &str) -> StoreResult<bool>;
    /// Records a verification request at `at` if the last one was at `last` (compare-and-set).
    async fn ssf_mark_verification(
        &self,
        pool: PoolId,
        id: &str,
        last: Option<Timestamp>,
        at: Timestamp,
    ) -> StoreResult<bool>;
    async fn ssf_excluded_subjects(&self, pool: PoolId, stream: &str) -> StoreResult<Vec<String>>;
    /// Excludes (`true`) or includes again (`false`) a subject key.
    async fn ssf_exclude_subject(
        &self,
        pool: PoolId,
        stream: &str,
        key: &str,
        excluded: bool,
    ) -> StoreResult<()>;
    /// Moves the stream's position from `fan.from` to `fan.to` and queues `fan.sets` after
    /// what is queued, in one transaction; `false` (nothing written) when the position was
    /// no longer `fan.from`. SETs beyond [`HELD_MAX`] queued are left out.
    async fn ssf_fan_out(&self, pool: PoolId, stream: &str, fan: FanOut<'_>) -> StoreResult<bool>;
    /// Queues SETs after what is queued (the verification event).
    async fn ssf_enqueue(&self, pool: PoolId, stream: &str, sets: &[QueuedSet]) -> StoreResult<()>;
    /// The first `limit` queued SETs, in order.
    async fn ssf_queued(
        &self,
        pool: PoolId,
        stream: &str,
        limit: u32,
    ) -> StoreResult<Vec<QueuedSet>>;
    /// Whether more than `n` SETs are queued.
    async fn ssf_queued_more_than(&self, pool: PoolId, stream: &str, n: u32) -> StoreResult<bool>;
    /// Removes SETs from the queue (acknowledged, accepted or refused); returns how many.
    async fn ssf_dequeue(&self, pool: PoolId, stream: &str, jtis: &[String]) -> StoreResult<u64>;
    /// Records a transient push failure of `jti`: the attempts so far and when to try again.
    async fn ssf_retry_later(
        &self,
        pool: PoolId,
        stream: &str,
        queued: &QueuedSet,
    ) -> StoreResult<()>;
    /// Records a delivery error (a receiver's refusal, a `setErrs` entry, or giving up).
    async fn ssf_record_error(
        &self,
        pool: PoolId,
        stream: &str,
        jti: &str,
        err: &str,
        description: Option<&str>,
        at: Timestamp,
    ) -> StoreResult<()>;
    /// Takes the stream's push lease for `owner` until `until` if nobody holds one at `now`
    /// (compare-and-set): one instance pushes a stream at a time, in order.
    async fn ssf_take_lease(
        &self,
        pool: PoolId,
        stream: &str,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<bool>;
    async fn ssf_release_lease(&self, pool: PoolId, stream: &str, owner: &str) -> StoreResult<()>;
}
