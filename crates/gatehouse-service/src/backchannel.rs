//! OpenID Connect Back-Channel Logout 1.0: logout tokens, and the worker that sends them from
//! the pool's security event log.
//!
//! The worker follows each pool's event log from its place (`backchannel_logout_cursors`).
//! For every `session-revoked` about one session whose client registered a
//! `backchannel_logout_uri`, it records a delivery, in the transaction that moves its place on
//! (so an event is planned once, whichever instance plans it). Then it claims due deliveries
//! under a lease in a short transaction, POSTs each logout token with no transaction open,
//! and records the answer while its lease stands: 200 or 204 delivered; another 4xx rejected,
//! never retried; transport failures, 429, 5xx and anything else retried with a wait that
//! doubles from 2 s to 5 minutes, and given up 24 hours after the delivery was planned
//! (`gatehouse_domain::backchannel`). A round runs as soon as a commit on any instance appends
//! security events (the store's bell), and at least every second.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_crypto::jws;
use gatehouse_crypto::secret::random_token;
use gatehouse_domain::backchannel::{
    Attempt, BACKCHANNEL_LOGOUT_EVENT, DELIVERIES_LISTED_MAX, Delivery, DeliveryState, LEASE_SECS,
    LOGOUT_TOKEN_TTL_SECS, after_attempt, id_token_sid,
};
use gatehouse_domain::ids::ClientId;
use gatehouse_domain::permission::Permission;
use gatehouse_domain::pool::Pool;
use gatehouse_domain::security_event::{EventKind, EventSubject};
use serde_json::json;

use crate::error::{ServiceError, ServiceResult};
use crate::outbound::OutboundError;
use crate::{Gatehouse, Principal};

/// The `typ` of a logout token (Back-Channel Logout §2.4, RFC 8725 §3.11).
pub const TYP_LOGOUT: &str = "logout+jwt";
/// How often the worker looks for new events and due deliveries.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Events planned per transaction.
const PLAN_BATCH: u32 = 200;
/// Deliveries claimed per transaction (and sent at once).
const CLAIM_BATCH: u32 = 20;

impl Gatehouse {
    /// A logout token of `pool` for `client`: `typ: logout+jwt`, signed like the pool's ID
    /// tokens (RS256, the current ID-token key), with `iss`, `aud`, `iat`, `exp` (two
    /// minutes), `jti`, the back-channel logout event, `sub` and `sid`; never `nonce`.
    pub async fn logout_token(
        &self,
        pool: &Pool,
        client: &ClientId,
        sub: &str,
        sid: Option<&str>,
    ) -> ServiceResult<String> {
        let keys = self.pool_keys(pool).await?;
        let now = self.now();
        let mut claims = json!({
            "iss": self.issuer(pool),
            "aud": client.as_str(),
            "iat": now.as_secs(),
            "exp": now.plus_secs(LOGOUT_TOKEN_TTL_SECS).as_secs(),
            "jti": random_token().expose(),
            "sub": sub,
            "events": { BACKCHANNEL_LOGOUT_EVENT: {} },
        });
        if let (Some(sid), Some(map)) = (sid, claims.as_object_mut()) {
            map.insert("sid".into(), json!(sid));
        }
        Ok(jws::sign(&keys.id_token_signing, TYP_LOGOUT, &claims)?)
    }

    /// The newest back-channel logout deliveries to a client (at most
    /// [`DELIVERIES_LISTED_MAX`]), newest first; reading them takes what reading the client
    /// takes.
    pub async fn backchannel_deliveries(
        &self,
        pool: &Pool,
        principal: &Principal,
        client_id: &str,
        limit: u32,
    ) -> ServiceResult<Vec<Delivery>> {
        principal.require(Permission::RetrieveAppClients)?;
        if !(1..=DELIVERIES_LISTED_MAX).contains(&limit) {
            return Err(gatehouse_domain::ParseError::new(
                "limit",
                format!("limit must be 1 to {DELIVERIES_LISTED_MAX}"),
            )
            .into());
        }
        let client = self.get_app_client(pool, principal, client_id).await?;
        Ok(self
            .store
            .backchannel_deliveries(pool.id, &client.client_id, limit)
            .await?)
    }

    /// Plans and sends the back-channel logouts of every pool until `stop` completes: a
    /// round at once, then another whenever a commit appends security events (the store's
    /// bell, rung on every instance) and at least every [`POLL_INTERVAL`] (for retries that
    /// fall due, and a notification lost). Failures are logged; the next round comes all
    /// the same.
    pub async fn run_backchannel_logout(
        self: Arc<Self>,
        mut stop: impl std::future::Future<Output = ()> + Unpin + Send,
    ) {
        loop {
            // The mark is taken before the round reads the logs, so a commit during the
            // round wakes the next one.
            let mark = self.store.security_event_mark();
            // A round cut short by the stop loses nothing: a planning transaction rolls back,
            // and a delivery claimed but not recorded is claimed again when its lease ends.
            tokio::select! {
                () = &mut stop => return,
                result = self.backchannel_round() => {
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "back-channel logout round failed");
                    }
                }
            }
            tokio::select! {
                () = &mut stop => return,
                () = self.wait_for_events(mark) => {}
            }
        }
    }

    /// Waits until a commit appended security events since `mark`, or [`POLL_INTERVAL`].
    async fn wait_for_events(&self, mark: u64) {
        let _ =
            tokio::time::timeout(POLL_INTERVAL, self.store.security_events_committed(mark)).await;
    }

    /// One round over every pool: plan what new events call for, send what is due. A pool
    /// that fails is logged and the round goes on with the next.
    pub async fn backchannel_round(self: &Arc<Self>) -> ServiceResult<()> {
        for pool in self.store.list_pools().await? {
            if let Err(e) = self.backchannel_round_of(&pool).await {
                tracing::warn!(pool = %pool.slug, error = %e, "back-channel logout failed");
            }
        }
        Ok(())
    }

    async fn backchannel_round_of(self: &Arc<Self>, pool: &Pool) -> ServiceResult<()> {
        let planned = self.store.backchannel_cursor(pool.id).await?;
        if self.store.latest_security_event(pool.id).await? > planned {
            self.plan_backchannel_logouts(pool).await?;
        }
        while self.store.backchannel_due(pool.id, self.now()).await? {
            if self.send_due_backchannel_logouts(pool).await? == 0 {
                break;
            }
        }
        Ok(())
    }

    /// Records the deliveries the pool's new events call for, and moves the pool's place on,
    /// in one transaction that holds the place's lock: one session-revoked event of a session
    /// whose client registered a URI is one delivery to that client.
    async fn plan_backchannel_logouts(&self, pool: &Pool) -> ServiceResult<()> {
        loop {
            let now = self.now();
            let mut w = self.store.write(pool.id).await?;
            let cursor = w.backchannel_cursor().await?;
            let events = w.security_events_after(cursor, PLAN_BATCH).await?;
            let Some(last) = events.last().map(|e| e.seq) else {
                return Ok(());
            };
            let mut deliveries = Vec::new();
            for stored in &events {
                let event = &stored.event;
                let (EventKind::SessionRevoked { .. }, EventSubject::Session { session, user }) =
                    (&event.kind, &event.subject)
                else {
                    continue;
                };
                let Some(session) = w.session(*session).await? else {
                    continue;
                };
                let Some(client_id) = session.client_id.clone() else {
                    continue;
                };
                let Some(registration) = w
                    .client(&client_id)
                    .await?
                    .and_then(|c| c.backchannel_logout)
                else {
                    continue;
                };
                deliveries.push(Delivery {
                    pool: pool.id,
                    id: random_token().expose().to_owned(),
                    client_id,
                    event_seq: stored.seq,
                    event_id: event.id.clone(),
                    sub: user.to_string(),
                    sid: id_token_sid(&session),
                    uri: registration.uri,
                    state: DeliveryState::Pending,
                    attempts: 0,
                    status: None,
                    error: None,
                    created_at: now,
                    updated_at: now,
                    next_attempt_at: Some(now),
                });
            }
            w.put_backchannel_deliveries(&deliveries).await?;
            w.set_backchannel_cursor(last).await?;
            w.commit().await?;
            if events.len() < PLAN_BATCH as usize {
                return Ok(());
            }
        }
    }

    /// Claims a batch of due deliveries, sends them at once, records each answer. Returns
    /// how many were claimed.
    async fn send_due_backchannel_logouts(self: &Arc<Self>, pool: &Pool) -> ServiceResult<usize> {
        let lease = random_token().expose().to_owned();
        let now = self.now();
        let mut w = self.store.write(pool.id).await?;
        let claimed = w
            .claim_backchannel_deliveries(now, &lease, now.plus_secs(LEASE_SECS), CLAIM_BATCH)
            .await?;
        w.commit().await?;
        let count = claimed.len();
        let mut sends = tokio::task::JoinSet::new();
        for d in claimed {
            let gh = self.clone();
            let pool = pool.clone();
            let lease = lease.clone();
            sends.spawn(async move {
                let attempt = gh.attempt_backchannel_logout(&pool, &d).await;
                let next = after_attempt(&d, &attempt, gh.now());
                let mut w = gh.store.write(pool.id).await?;
                if !w.finish_backchannel_delivery(&next, &lease).await? {
                    tracing::warn!(delivery = %d.id, "back-channel logout lease lost");
                }
                w.commit().await?;
                Ok::<(), ServiceError>(())
            });
        }
        while let Some(joined) = sends.join_next().await {
            joined
                .map_err(|e| ServiceError::internal(format!("a logout delivery task: {e}")))??;
        }
        Ok(count)
    }

    async fn attempt_backchannel_logout(&self, pool: &Pool, d: &Delivery) -> Attempt {
        let token = match self
            .logout_token(pool, &d.client_id, &d.sub, d.sid.as_deref())
            .await
        {
            Ok(t) => t,
            Err(e) => return Attempt::Transport(format!("signing the logout token: {e}")),
        };
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("logout_token", &token)
            .finish();
        match self
            .outbound()
            .post(
                &d.uri,
                "application/x-www-form-urlencoded",
                &[],
                body.into_bytes(),
            )
            .await
        {
            Ok(answer) => Attempt::Answered {
                status: answer.status,
                body: answer.body,
            },
            Err(OutboundError::Refused(why)) => Attempt::Refused(why),
            Err(OutboundError::Transport(why)) => Attempt::Transport(why),
        }
    }
}
