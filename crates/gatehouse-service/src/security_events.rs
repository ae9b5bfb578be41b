//! Security events (SSF/CAEP/RISC): what each revocation appends to its pool's event log, in
//! its own transaction, and the signed Security Event Token (RFC 8417, as SSF 1.0 and the CAEP
//! interoperability profile shape it) that an event becomes on delivery.
//!
//! Every path that ends sessions goes through [`Gatehouse::end_sessions_and_tell`], so no
//! session ends without its `session-revoked` event.

use gatehouse_crypto::jws;
use gatehouse_crypto::secret::random_token;
use gatehouse_domain::ids::{PoolId, UserId};
use gatehouse_domain::pool::Pool;
use gatehouse_domain::security_event::{
    EventKind, EventSubject, InitiatingEntity, SecurityEvent, StoredSecurityEvent,
};
use gatehouse_domain::session::Session;
use gatehouse_domain::txn::{PoolWrite, SessionsToEnd};
use gatehouse_domain::user::User;
use serde_json::{Map, Value, json};

use crate::Gatehouse;
use crate::error::ServiceResult;

/// The media type's `typ` of a Security Event Token (SSF §4.1.1).
pub const TYP_SECEVENT: &str = "secevent+jwt";

/// The most SETs one page of the revocation feed carries.
pub const FEED_PAGE_MAX: u32 = 100;

/// How often a waiter for new events re-reads the log even when the bell stays silent.
pub const WAIT_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// A page of the revocation feed: each event's cursor and SET, and the cursor to ask after
/// next (the last one given, or the one asked after when there is nothing newer).
#[derive(Debug)]
pub struct FeedPage {
    pub items: Vec<(i64, String)>,
    pub next: i64,
}

/// Why sessions end, for their `session-revoked` events.
#[derive(Debug, Clone)]
pub struct Cause<'a> {
    pub initiating_entity: InitiatingEntity,
    /// `reason_admin`: never empty (the CAEP interoperability profile requires it).
    pub reason: &'a str,
    /// The SET `txn` the events of one cause share.
    pub txn: String,
}

impl<'a> Cause<'a> {
    pub fn new(initiating_entity: InitiatingEntity, reason: &'a str) -> Self {
        Self {
            initiating_entity,
            reason,
            txn: new_txn(),
        }
    }

    /// The same cause, in the same SET transaction, with another reason.
    pub fn with_reason<'b>(&self, reason: &'b str) -> Cause<'b> {
        Cause {
            initiating_entity: self.initiating_entity,
            reason,
            txn: self.txn.clone(),
        }
    }
}

/// A new `txn` value.
pub fn new_txn() -> String {
    random_token().expose().to_owned()
}

impl Gatehouse {
    /// An event of `pool` about `subject`, taking effect now.
    pub(crate) fn security_event(
        &self,
        pool: PoolId,
        txn: &str,
        kind: EventKind,
        subject: EventSubject,
    ) -> SecurityEvent {
        SecurityEvent {
            pool,
            id: random_token().expose().to_owned(),
            txn: txn.to_owned(),
            kind,
            subject,
            at: self.now(),
        }
    }

    /// Appends one event about `user` of `w`'s pool (an account event, a credential change),
    /// in the SET transaction `txn` (the sessions the same action ends share it).
    pub(crate) async fn tell_about_user(
        &self,
        w: &mut dyn PoolWrite,
        user: UserId,
        kind: EventKind,
        txn: &str,
    ) -> ServiceResult<()> {
        let event = self.security_event(w.pool(), txn, kind, EventSubject::User { user });
        w.append_security_events(std::slice::from_ref(&event))
            .await?;
        Ok(())
    }

    /// Appends `token-claims-change` for `user`: the roles and groups its tokens would carry
    /// now, read in `w`.
    pub(crate) async fn tell_claims_changed(
        &self,
        w: &mut dyn PoolWrite,
        user: &User,
    ) -> ServiceResult<()> {
        let groups = w
            .groups_of_user(user.id)
            .await?
            .into_iter()
            .map(|g| g.name.to_string())
            .collect();
        let roles = user
            .attributes
            .roles
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect();
        self.tell_about_user(
            w,
            user.id,
            EventKind::TokenClaimsChange { roles, groups },
            &new_txn(),
        )
        .await
    }

    /// Appends `token-claims-change` for a group whose roles changed (or which is gone): the
    /// tokens naming it carried its old roles; `roles` are its roles now (none once deleted).
    pub(crate) async fn tell_group_changed(
        &self,
        w: &mut dyn PoolWrite,
        group: &str,
        roles: Vec<String>,
    ) -> ServiceResult<()> {
        let event = self.security_event(
            w.pool(),
            &new_txn(),
            EventKind::TokenClaimsChange {
                roles,
                groups: Vec::new(),
            },
            EventSubject::Group {
                name: group.to_owned(),
            },
        );
        w.append_security_events(std::slice::from_ref(&event))
            .await?;
        Ok(())
    }

    /// Ends the sessions `which` names in `w` and appends, in the same transaction, a
    /// `session-revoked` event for each, in the session's own pool. Returns what ended.
    pub(crate) async fn end_sessions_and_tell(
        &self,
        w: &mut dyn PoolWrite,
        which: &SessionsToEnd,
        cause: &Cause<'_>,
    ) -> ServiceResult<Vec<Session>> {
        let ended = w.end_sessions(which, self.now()).await?;
        let events: Vec<SecurityEvent> = ended
            .iter()
            .map(|s| {
                self.security_event(
                    s.pool,
                    &cause.txn,
                    EventKind::SessionRevoked {
                        initiating_entity: cause.initiating_entity,
                        reason_admin: cause.reason.to_owned(),
                    },
                    EventSubject::Session {
                        session: s.id,
                        user: s.user_id,
                    },
                )
            })
            .collect();
        w.append_security_events(&events).await?;
        Ok(ended)
    }

    /// Up to `limit` events of `pool` committed after the cursor `after`, in commit order.
    pub async fn security_events(
        &self,
        pool: &Pool,
        after: i64,
        limit: u32,
    ) -> ServiceResult<Vec<StoredSecurityEvent>> {
        Ok(self
            .store
            .security_events_after(pool.id, after, limit)
            .await?)
    }

    /// Waits until `pool` has an event numbered above `after`: true as soon as it has one,
    /// false once `timeout` passed without. Wakes on the store's bell (a commit that appended
    /// events, through any instance on a PostgreSQL database), and re-reads the log at least
    /// every [`WAIT_RECHECK`] besides, for what the bell cannot hear (a lost notification, a
    /// writer in another process on SQLite). The bell's mark is taken before each read, so a
    /// commit between the read and the wait is never slept through.
    pub async fn wait_for_security_events(
        &self,
        pool: PoolId,
        after: i64,
        timeout: std::time::Duration,
    ) -> ServiceResult<bool> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mark = self.store.security_event_mark();
            if self.store.latest_security_event(pool).await? > after {
                return Ok(true);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            let nap = (deadline - now).min(WAIT_RECHECK);
            // Woken or not, the log is read again.
            let _ = tokio::time::timeout(nap, self.store.security_events_committed(mark)).await;
        }
    }

    /// The revocation feed for services that verify the pool's tokens themselves: the
    /// pool's security events committed after the cursor `after`, oldest first, each as a
    /// SET for the feed's audience (`{issuer}/api/auth/revocations`). A cursor past the
    /// newest event is refused: it was never handed out, and a reader holding it would miss
    /// what comes next.
    pub async fn revocation_feed(
        &self,
        pool: &Pool,
        principal: &crate::Principal,
        after: i64,
        limit: u32,
    ) -> ServiceResult<FeedPage> {
        principal.require(gatehouse_domain::permission::Permission::RetrieveRevocations)?;
        if after < 0 || !(1..=FEED_PAGE_MAX).contains(&limit) {
            return Err(gatehouse_domain::ParseError::new(
                if after < 0 { "after" } else { "limit" },
                format!(
                    "after must be a cursor of this feed (0 or more), limit 1 to {FEED_PAGE_MAX}"
                ),
            )
            .into());
        }
        let newest = self.store.latest_security_event(pool.id).await?;
        if after > newest {
            return Err(gatehouse_domain::ParseError::new(
                "after",
                format!("the cursor {after} is ahead of this feed, whose newest is {newest}"),
            )
            .into());
        }
        let audience = format!("{}/api/auth/revocations", self.issuer(pool));
        let mut items = Vec::new();
        for stored in self
            .store
            .security_events_after(pool.id, after, limit)
            .await?
        {
            let set = self.security_event_token(pool, &stored, &audience).await?;
            items.push((stored.seq, set));
        }
        let next = items.last().map_or(after, |(seq, _)| *seq);
        Ok(FeedPage { items, next })
    }

    /// The Security Event Token of a stored event, for `audience`: `typ: secevent+jwt`,
    /// RS256 with the pool's ID-token key, `iss`, `jti`, `iat`, `aud`, `txn`, the subject as
    /// `sub_id` (RFC 9493: a complex subject of `session`, `user` and `tenant`, or a `jwt_id`
    /// for one token) and exactly one event; neither `sub` nor `exp` (SSF §4.1).
    pub async fn security_event_token(
        &self,
        pool: &Pool,
        stored: &StoredSecurityEvent,
        audience: &str,
    ) -> ServiceResult<String> {
        let keys = self.pool_keys(pool).await?;
        let issuer = self.issuer(pool);
        let event = &stored.event;
        let claims = json!({
            "iss": issuer,
            "jti": event.id,
            "iat": event.at.as_secs(),
            "aud": audience,
            "txn": event.txn,
            "sub_id": subject_id(&issuer, pool, &event.subject),
            "events": { event.kind.uri(): payload(event) },
        });
        Ok(jws::sign(&keys.id_token_signing, TYP_SECEVENT, &claims)?)
    }
}

/// RFC 9493 subject identifiers as the pool's issuer names them.
fn subject_id(issuer: &str, pool: &Pool, subject: &EventSubject) -> Value {
    let user = |id: &dyn std::fmt::Display| json!({"format": "iss_sub", "iss": issuer, "sub": id.to_string()});
    let tenant = json!({"format": "opaque", "id": pool.slug.as_str()});
    match subject {
        EventSubject::Session { session, user: u } => json!({
            "format": "complex",
            "session": {"format": "opaque", "id": session.to_string()},
            "user": user(u),
            "tenant": tenant,
        }),
        EventSubject::User { user: u } => json!({
            "format": "complex",
            "user": user(u),
            "tenant": tenant,
        }),
        EventSubject::Group { name } => json!({
            "format": "complex",
            "group": {"format": "opaque", "id": name},
            "tenant": tenant,
        }),
        EventSubject::Pool => json!({"format": "complex", "tenant": tenant}),
        EventSubject::Token { jti } => json!({"format": "jwt_id", "iss": issuer, "jti": jti}),
    }
}

/// The event's own claims, with `event_timestamp`.
fn payload(event: &SecurityEvent) -> Value {
    let mut p = Map::new();
    p.insert("event_timestamp".into(), json!(event.at.as_secs()));
    match &event.kind {
        EventKind::SessionRevoked {
            initiating_entity,
            reason_admin,
        } => {
            p.insert("initiating_entity".into(), json!(initiating_entity));
            p.insert("reason_admin".into(), json!({ "en": reason_admin }));
        }
        EventKind::CredentialChange {
            credential_type,
            change_type,
        } => {
            p.insert("credential_type".into(), json!(credential_type));
            p.insert("change_type".into(), json!(change_type));
        }
        EventKind::TokenClaimsChange { roles, groups } => {
            p.insert("claims".into(), json!({ "roles": roles, "groups": groups }));
        }
        EventKind::TokenRevoked { reason_admin } => {
            p.insert("reason_admin".into(), json!({ "en": reason_admin }));
        }
        EventKind::AccountDisabled | EventKind::AccountEnabled | EventKind::AccountPurged => {}
    }
    Value::Object(p)
}
