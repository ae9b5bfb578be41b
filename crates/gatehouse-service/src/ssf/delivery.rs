//! Delivery of a stream's SETs: fan-out from the pool's event log into the stream's queue,
//! poll (RFC 8936, with long polling) and push (RFC 8935).
//!
//! - **Fan-out.** A stream's `position` is the newest event of the pool's log it has taken
//!   in. Whoever delivers (a poll, the push worker) first reads the events after it, keeps
//!   those the stream delivers (its event types, subjects not removed, not disabled), signs
//!   them for the stream's audience and, in one transaction, queues them and moves the
//!   position, if it is still what was read (compare-and-set). The log's numbers are in
//!   commit order, so nothing is skipped.
//! - **Poll.** SETs stay queued until acknowledged (`ack`) or reported (`setErrs`); each poll
//!   returns the oldest ones, so an unacknowledged SET comes again. A poll that finds nothing
//!   and has `returnImmediately: false` waits until an event commits or the long-poll timeout
//!   passes. Long polls are capped per stream and per pool (429 beyond).
//! - **Push.** A worker takes a stream's lease (one instance pushes it at a time), sends its
//!   queue in order, one SET at a time, with no database transaction open during the call:
//!   2xx is delivered; 400 (`{err, description}`) and any other 4xx but 429 are refusals,
//!   recorded and not retried; transport errors, 5xx and 429 are retried after 1, 2, 4, ...
//!   seconds (at most 5 minutes apart), and given up (recorded) once the first attempt is a
//!   day old. Until then the stream's later SETs wait, so order is kept.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use gatehouse_crypto::secret::random_token;
use gatehouse_domain::ids::PoolId;
use gatehouse_domain::pool::Pool;
use gatehouse_domain::security_event::{EventSubject, StoredSecurityEvent};
use gatehouse_domain::ssf::{DeliveryMethod, FanOut, QueuedSet, SsfStream, StreamStatus};
use serde::Deserialize;

use super::{Receiver, events_delivered};
use crate::Gatehouse;
use crate::error::{ServiceError, ServiceResult};

/// The most SETs one poll returns (and the default when `maxEvents` is absent).
pub const POLL_MAX_EVENTS: u32 = 100;
/// Events read from the log per fan-out round.
const FAN_OUT_BATCH: u32 = 100;
/// Push retries: the first after 1 s, doubling, at most this far apart.
const RETRY_MAX_SECS: i64 = 300;
/// A push that has failed transiently since this long ago is given up.
pub const GIVE_UP_AFTER_SECS: i64 = 24 * 3600;
/// Streams pushed at once by one instance.
const PUSHING_MAX: usize = 32;
/// How long a push worker holds a stream's lease before another instance may take it.
const LEASE_SECS: i64 = 120;

/// Limits of the SSF transmitter (configuration `ssf.*`).
#[derive(Debug, Clone, Copy)]
pub struct SsfSettings {
    /// The longest a long poll waits for an event.
    pub long_poll_timeout: Duration,
    /// Long polls waiting at once on one stream.
    pub long_polls_per_stream: usize,
    /// Long polls waiting at once in one pool.
    pub long_polls_per_pool: usize,
}

impl Default for SsfSettings {
    fn default() -> Self {
        Self {
            long_poll_timeout: Duration::from_secs(25),
            long_polls_per_stream: 4,
            long_polls_per_pool: 64,
        }
    }
}

/// This process's SSF state: the settings, a bell rung when a stream or its queue changes
/// here (the push worker and long polls wake on it), and the long polls waiting.
#[derive(Debug)]
pub struct SsfRuntime {
    pub(crate) settings: SsfSettings,
    bell: tokio::sync::watch::Sender<u64>,
    waiting: Mutex<Waiting>,
}

#[derive(Debug, Default)]
struct Waiting {
    per_stream: HashMap<(PoolId, String), usize>,
    per_pool: HashMap<PoolId, usize>,
}

impl Default for SsfRuntime {
    fn default() -> Self {
        Self::new(SsfSettings::default())
    }
}

impl SsfRuntime {
    pub fn new(settings: SsfSettings) -> Self {
        Self {
            settings,
            bell: tokio::sync::watch::channel(0).0,
            waiting: Mutex::default(),
        }
    }

    pub(crate) fn ring(&self) {
        self.bell.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn listen(&self) -> tokio::sync::watch::Receiver<u64> {
        self.bell.subscribe()
    }

    /// A place among the long polls, or `None` when the stream or the pool has no room.
    fn admit(&self, pool: PoolId, stream: &str) -> Option<LongPollSlot<'_>> {
        let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let key = (pool, stream.to_owned());
        let on_stream = w.per_stream.get(&key).copied().unwrap_or(0);
        let in_pool = w.per_pool.get(&pool).copied().unwrap_or(0);
        if on_stream >= self.settings.long_polls_per_stream
            || in_pool >= self.settings.long_polls_per_pool
        {
            return None;
        }
        *w.per_stream.entry(key.clone()).or_default() += 1;
        *w.per_pool.entry(pool).or_default() += 1;
        Some(LongPollSlot { runtime: self, key })
    }
}

/// A long poll's place, given back when it ends (however it ends).
struct LongPollSlot<'a> {
    runtime: &'a SsfRuntime,
    key: (PoolId, String),
}

impl Drop for LongPollSlot<'_> {
    fn drop(&mut self) {
        let mut w = self
            .runtime
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = w.per_stream.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                w.per_stream.remove(&self.key);
            }
        }
        if let Some(n) = w.per_pool.get_mut(&self.key.0) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                w.per_pool.remove(&self.key.0);
            }
        }
    }
}

/// An RFC 8936 poll request.
#[derive(Debug, Clone, Default)]
pub struct PollRequest {
    pub max_events: Option<u32>,
    pub return_immediately: bool,
    pub ack: Vec<String>,
    /// `jti` → (`err`, `description`).
    pub set_errs: Vec<(String, String, Option<String>)>,
}

/// An RFC 8936 poll answer: `jti` → SET, oldest first.
#[derive(Debug, Clone, Default)]
pub struct PollAnswer {
    pub sets: Vec<(String, String)>,
    pub more_available: bool,
}

/// An RFC 8935 error answer of a push receiver.
#[derive(Debug, Deserialize)]
struct PushError {
    err: Option<String>,
    description: Option<String>,
}

/// The subject keys an event is about (see `ssf_change_subject`).
fn subject_keys(event: &StoredSecurityEvent) -> Vec<String> {
    let mut keys = vec!["tenant".to_owned()];
    match &event.event.subject {
        EventSubject::Session { session, user } => {
            keys.push(format!("session:{session}"));
            keys.push(format!("user:{user}"));
        }
        EventSubject::User { user } => keys.push(format!("user:{user}")),
        EventSubject::Group { .. } | EventSubject::Pool | EventSubject::Token { .. } => {}
    }
    keys
}

impl Gatehouse {
    /// Takes the events committed after the stream's position into its queue (see the
    /// module's documentation); `stream` is brought up to date.
    pub(crate) async fn fan_out(&self, pool: &Pool, stream: &mut SsfStream) -> ServiceResult<()> {
        let audience = stream.client.to_string();
        let mut excluded: Option<Vec<String>> = None;
        loop {
            let events = self
                .store
                .security_events_after(pool.id, stream.position, FAN_OUT_BATCH)
                .await?;
            let Some(last) = events.last().map(|e| e.seq) else {
                return Ok(());
            };
            if excluded.is_none() {
                excluded = Some(
                    self.store
                        .ssf_excluded_subjects(pool.id, &stream.id)
                        .await?,
                );
            }
            let excluded = excluded.as_deref().unwrap_or_default();
            let delivered = events_delivered(stream);
            let now = self.now();
            let mut sets = Vec::new();
            if stream.status != StreamStatus::Disabled {
                for e in &events {
                    if !delivered.contains(&e.event.kind.uri())
                        || subject_keys(e).iter().any(|k| excluded.contains(k))
                    {
                        continue;
                    }
                    let set = self.security_event_token(pool, e, &audience).await?;
                    sets.push(QueuedSet::new(e.event.id.clone(), set, now));
                }
            }
            let fan = FanOut {
                from: stream.position,
                to: last,
                sets: &sets,
            };
            if self.store.ssf_fan_out(pool.id, &stream.id, fan).await? {
                stream.position = last;
            } else {
                // Someone else moved it: start again from where it is now.
                match self.store.ssf_stream(pool.id, &stream.id).await? {
                    Some(s) => *stream = s,
                    None => return Ok(()),
                }
            }
        }
    }

    /// An RFC 8936 poll of the receiver's stream `id`: acknowledges, records the errors the
    /// receiver reports, and returns the oldest queued SETs, waiting for one when asked to.
    pub async fn ssf_poll(
        &self,
        pool: &Pool,
        receiver: &Receiver,
        id: &str,
        req: PollRequest,
    ) -> ServiceResult<PollAnswer> {
        let mut stream = self.owned_stream(pool, receiver, id).await?;
        if stream.method != DeliveryMethod::Poll {
            return Err(ServiceError::Invalid(gatehouse_domain::ParseError::new(
                "stream_id",
                "this stream is delivered by push, not poll",
            )));
        }
        let max = req
            .max_events
            .unwrap_or(POLL_MAX_EVENTS)
            .min(POLL_MAX_EVENTS);
        let now = self.now();
        for (jti, err, description) in &req.set_errs {
            self.store
                .ssf_record_error(pool.id, &stream.id, jti, err, description.as_deref(), now)
                .await?;
        }
        let mut done = req.ack.clone();
        done.extend(req.set_errs.iter().map(|(jti, _, _)| jti.clone()));
        self.store.ssf_dequeue(pool.id, &stream.id, &done).await?;
        if max == 0 || stream.status != StreamStatus::Enabled {
            return Ok(PollAnswer::default());
        }
        let _slot = if req.return_immediately {
            None
        } else {
            Some(self.ssf_runtime.admit(pool.id, &stream.id).ok_or_else(|| {
                ServiceError::Throttled {
                    detail: "too many long polls are waiting on this stream or pool".into(),
                    retry_after_secs: 1,
                }
            })?)
        };
        let deadline = tokio::time::Instant::now() + self.ssf_runtime.settings.long_poll_timeout;
        let mut bell = self.ssf_runtime.listen();
        loop {
            self.fan_out(pool, &mut stream).await?;
            let sets = self.store.ssf_queued(pool.id, &stream.id, max).await?;
            let now = tokio::time::Instant::now();
            if !sets.is_empty() || req.return_immediately || now >= deadline {
                let more_available = !sets.is_empty()
                    && self
                        .store
                        .ssf_queued_more_than(pool.id, &stream.id, max)
                        .await?;
                return Ok(PollAnswer {
                    sets: sets.into_iter().map(|q| (q.jti, q.set)).collect(),
                    more_available,
                });
            }
            let nap = (deadline - now).min(Duration::from_secs(1));
            bell.mark_unchanged();
            tokio::select! {
                woke = self.wait_for_security_events(pool.id, stream.position, nap) => { woke?; }
                _ = bell.changed() => {}
            }
            // The stream may have changed (paused, disabled, deleted) meanwhile.
            stream = self.owned_stream(pool, receiver, id).await?;
            if stream.status != StreamStatus::Enabled {
                return Ok(PollAnswer::default());
            }
        }
    }

    /// Runs the push worker until `stop` completes: pushes every enabled push stream of
    /// every pool when woken (security events committed, through any instance on
    /// PostgreSQL; a stream or its queue changed here) and at least every second besides
    /// (retries due, what the bells cannot hear).
    pub async fn ssf_push_worker(
        self: std::sync::Arc<Self>,
        mut stop: tokio::sync::oneshot::Receiver<()>,
    ) {
        let mut bell = self.ssf_runtime.listen();
        let pushing = std::sync::Arc::new(Mutex::new(HashSet::new()));
        loop {
            // The marks are taken before the round reads, so nothing committed during it is
            // slept through.
            bell.mark_unchanged();
            let mark = self.store.security_event_mark();
            if let Err(e) = self.ssf_push_round(&pushing).await {
                tracing::warn!(error = %e.for_operator(), "SSF push round failed; trying again");
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = bell.changed() => {}
                _ = self.store.security_events_committed(mark) => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// One pass over every enabled push stream: each is pushed by a task of its own (so a
    /// slow receiver delays only its own stream), at most [`PUSHING_MAX`] at once, and a
    /// stream whose task still runs is left to it.
    async fn ssf_push_round(
        self: &std::sync::Arc<Self>,
        pushing: &std::sync::Arc<Mutex<HashSet<(PoolId, String)>>>,
    ) -> ServiceResult<()> {
        for pool in self.store.list_pools().await? {
            for stream in self.store.ssf_streams(pool.id, None).await? {
                if stream.method != DeliveryMethod::Push || stream.status != StreamStatus::Enabled {
                    continue;
                }
                let key = (pool.id, stream.id.clone());
                {
                    let mut p = pushing.lock().unwrap_or_else(|e| e.into_inner());
                    if p.len() >= PUSHING_MAX || !p.insert(key.clone()) {
                        continue;
                    }
                }
                let (gh, pushing, pool) = (self.clone(), pushing.clone(), pool.clone());
                tokio::spawn(async move {
                    if let Err(e) = gh.push_stream(&pool, stream).await {
                        tracing::warn!(error = %e.for_operator(), "SSF push failed; trying again");
                    }
                    pushing
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&key);
                });
            }
        }
        Ok(())
    }

    /// Pushes one stream's due SETs in order, under its lease.
    async fn push_stream(&self, pool: &Pool, mut stream: SsfStream) -> ServiceResult<()> {
        let now = self.now();
        // Nothing new in the log and nothing due in the queue: no lease (no write) needed.
        if self.store.latest_security_event(pool.id).await? <= stream.position {
            let first = self.store.ssf_queued(pool.id, &stream.id, 1).await?;
            if first.first().is_none_or(|q| q.next_attempt_at > now) {
                return Ok(());
            }
        }
        let owner = random_token().expose().to_owned();
        if !self
            .store
            .ssf_take_lease(pool.id, &stream.id, &owner, now, now.plus_secs(LEASE_SECS))
            .await?
        {
            return Ok(());
        }
        let pushed = self.push_queue(pool, &mut stream, &owner).await;
        self.store
            .ssf_release_lease(pool.id, &stream.id, &owner)
            .await?;
        pushed
    }

    async fn push_queue(
        &self,
        pool: &Pool,
        stream: &mut SsfStream,
        owner: &str,
    ) -> ServiceResult<()> {
        self.fan_out(pool, stream).await?;
        let Some(url) = stream.endpoint_url.clone() else {
            return Ok(());
        };
        loop {
            let Some(mut next) = self
                .store
                .ssf_queued(pool.id, &stream.id, 1)
                .await?
                .into_iter()
                .next()
            else {
                return Ok(());
            };
            let now = self.now();
            if next.next_attempt_at > now {
                return Ok(());
            }
            // The lease is renewed before each call; lost (expired and taken), the stream is
            // another instance's now.
            if !self
                .store
                .ssf_take_lease(pool.id, &stream.id, owner, now, now.plus_secs(LEASE_SECS))
                .await?
            {
                return Ok(());
            }
            let mut headers = vec![("Accept", "application/json")];
            if let Some(h) = stream.authorization_header.as_deref() {
                headers.push(("Authorization", h));
            }
            let answer = self
                .outbound()
                .post(
                    &url,
                    "application/secevent+jwt",
                    &headers,
                    next.set.clone().into_bytes(),
                )
                .await;
            let refused = |err: String, description: Option<String>| (err, description);
            let outcome = match answer {
                Ok(a) if (200..300).contains(&a.status) => None,
                Ok(a) if a.status == 429 || a.status >= 500 => Some(None),
                Ok(a) if a.status == 400 => {
                    let e: Option<PushError> = serde_json::from_str(&a.body).ok();
                    let (err, description) =
                        e.map(|e| (e.err, e.description)).unwrap_or((None, None));
                    Some(Some(refused(
                        err.unwrap_or_else(|| "invalid_request".into()),
                        description,
                    )))
                }
                Ok(a) => Some(Some(refused(
                    format!("http_{}", a.status),
                    Some(a.body.chars().take(256).collect()),
                ))),
                Err(crate::outbound::OutboundError::Refused(m)) => {
                    Some(Some(refused("refused_by_policy".into(), Some(m))))
                }
                Err(crate::outbound::OutboundError::Transport(_)) => Some(None),
            };
            match outcome {
                None => {
                    self.store
                        .ssf_dequeue(pool.id, &stream.id, std::slice::from_ref(&next.jti))
                        .await?;
                }
                Some(Some((err, description))) => {
                    self.store
                        .ssf_record_error(
                            pool.id,
                            &stream.id,
                            &next.jti,
                            &err,
                            description.as_deref(),
                            now,
                        )
                        .await?;
                    self.store
                        .ssf_dequeue(pool.id, &stream.id, std::slice::from_ref(&next.jti))
                        .await?;
                }
                Some(None) => {
                    let first = *next.first_attempt_at.get_or_insert(now);
                    if now.as_secs() - first.as_secs() >= GIVE_UP_AFTER_SECS {
                        self.store
                            .ssf_record_error(
                                pool.id,
                                &stream.id,
                                &next.jti,
                                "gave_up",
                                Some("the receiver failed to accept it for a day"),
                                now,
                            )
                            .await?;
                        self.store
                            .ssf_dequeue(pool.id, &stream.id, std::slice::from_ref(&next.jti))
                            .await?;
                        continue;
                    }
                    let wait = 1i64
                        .checked_shl(u32::try_from(next.attempts.clamp(0, 16)).unwrap_or(16))
                        .unwrap_or(RETRY_MAX_SECS)
                        .min(RETRY_MAX_SECS);
                    next.attempts += 1;
                    next.next_attempt_at = now.plus_secs(wait);
                    self.store
                        .ssf_retry_later(pool.id, &stream.id, &next)
                        .await?;
                    return Ok(());
                }
            }
        }
    }
}
