//! The OpenID Shared Signals Framework 1.0 transmitter of each pool: receiver authentication,
//! stream management (SSF §8), subjects and verification. Delivery (fan-out from the pool's
//! event log, push, poll) is in [`delivery`].
//!
//! - A receiver is an app client of the pool, authenticated by an access token of the pool
//!   from the client-credentials grant carrying `ssf.manage` (every call) or `ssf.read`
//!   (reads only). It owns at most one stream; another client's stream does not exist for it.
//! - A stream's SETs have `aud` = the receiver's client id.
//! - Default subjects are `ALL`: a stream carries every event of the pool it asked for.
//!   Removing a subject excludes events about it (a user, one session, or the whole pool as
//!   `tenant`); adding it includes them again. Subjects Gatehouse cannot match (an e-mail
//!   address, another issuer's user) are accepted and change nothing, so the answer never
//!   tells whether a subject exists.

pub mod delivery;

use std::sync::Arc;

use gatehouse_crypto::jws;
use gatehouse_crypto::secret::random_token;
use gatehouse_domain::ParseError;
use gatehouse_domain::ids::ClientId;
use gatehouse_domain::permission::Scope;
use gatehouse_domain::pool::Pool;
use gatehouse_domain::security_event::{ChangeType, CredentialType, EventKind, InitiatingEntity};
use gatehouse_domain::ssf::{
    DeliveryMethod, QueuedSet, SsfStream, StreamStatus, VERIFICATION_EVENT,
};
use gatehouse_domain::time::Timestamp;
use serde_json::json;

use crate::Gatehouse;
use crate::error::{ServiceError, ServiceResult};
use crate::principal::Subject;
use crate::security_events::TYP_SECEVENT;

/// The shortest time between two verification requests of a stream (SSF §8.1.4.2).
pub const MIN_VERIFICATION_INTERVAL_SECS: i64 = 10;
/// The longest description a receiver may give its stream.
const DESCRIPTION_MAX: usize = 1024;
/// The most event types a receiver may request.
const EVENTS_REQUESTED_MAX: usize = 64;
/// The longest `state` of a verification request.
const STATE_MAX: usize = 256;
/// The longest `authorization_header` a push receiver may register.
const AUTHORIZATION_HEADER_MAX: usize = 4096;

/// What a call needs of the receiver's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SsfAccess {
    /// `ssf.read` or `ssf.manage`.
    Read,
    /// `ssf.manage`.
    Manage,
}

impl SsfAccess {
    pub fn scope(self) -> &'static str {
        match self {
            SsfAccess::Read => Scope::SSF_READ,
            SsfAccess::Manage => Scope::SSF_MANAGE,
        }
    }
}

/// Why a receiver's token is refused (RFC 6750 §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SsfAuthError {
    /// No token (401, no error code).
    Missing,
    /// Expired, revoked, of another pool, or not a client's own token (401 `invalid_token`).
    InvalidToken(String),
    /// Valid, without the scope the call needs (403 `insufficient_scope`).
    InsufficientScope(SsfAccess),
}

/// An authenticated receiver: the app client whose stream it manages.
#[derive(Debug, Clone)]
pub struct Receiver {
    pub client: ClientId,
}

/// The delivery a receiver asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRequest {
    pub method: String,
    pub endpoint_url: Option<String>,
    pub authorization_header: Option<String>,
}

/// The receiver-set fields of a stream (SSF §8.1.1), as sent.
#[derive(Debug, Clone, Default)]
pub struct StreamRequest {
    pub delivery: Option<DeliveryRequest>,
    pub events_requested: Option<Vec<String>>,
    pub description: Option<String>,
}

/// How an update treats fields left out: PATCH keeps them, PUT removes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateKind {
    Patch,
    Replace,
}

/// A subject of add/remove subject, as the receiver named it (RFC 9493).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectRef {
    /// `iss_sub`, or the `user` member of a complex subject.
    User { iss: String, sub: String },
    /// The `session` member of a complex subject (opaque session id).
    Session(String),
    /// The `tenant` member alone (opaque pool name): the whole pool.
    Tenant(String),
    /// A subject Gatehouse does not match events by (an e-mail address, ...).
    Unmatched,
}

/// Every event type the pool's log holds, as SSF names them.
pub fn events_supported() -> Vec<String> {
    [
        EventKind::SessionRevoked {
            initiating_entity: InitiatingEntity::Admin,
            reason_admin: String::new(),
        },
        EventKind::CredentialChange {
            credential_type: CredentialType::Password,
            change_type: ChangeType::Update,
        },
        EventKind::TokenClaimsChange {
            roles: Vec::new(),
            groups: Vec::new(),
        },
        EventKind::AccountDisabled,
        EventKind::AccountEnabled,
        EventKind::AccountPurged,
        EventKind::TokenRevoked {
            reason_admin: String::new(),
        },
    ]
    .iter()
    .map(EventKind::uri)
    .collect()
}

/// What a stream delivers: the supported events it requested (all of them when it requested
/// nothing in particular).
pub fn events_delivered(stream: &SsfStream) -> Vec<String> {
    let supported = events_supported();
    if stream.events_requested.is_empty() {
        return supported;
    }
    supported
        .into_iter()
        .filter(|e| stream.events_requested.contains(e))
        .collect()
}

fn invalid(field: &'static str, detail: impl Into<String>) -> ServiceError {
    ParseError::new(field, detail).into()
}

impl Gatehouse {
    /// Authenticates a receiver: an access token of `pool` (never another pool's, never a
    /// staff token) issued to an app client by the client-credentials grant, carrying the
    /// scope `access` needs, which the client still holds.
    pub async fn ssf_receiver(
        &self,
        pool: &Arc<Pool>,
        token: Option<&str>,
        access: SsfAccess,
    ) -> ServiceResult<Result<Receiver, SsfAuthError>> {
        let Some(token) = token else {
            return Ok(Err(SsfAuthError::Missing));
        };
        let principal = match self.authenticate_bearer(pool, token).await {
            Ok(p) => p,
            Err(ServiceError::Unauthenticated(m)) => {
                return Ok(Err(SsfAuthError::InvalidToken(m)));
            }
            Err(e) => return Err(e),
        };
        let Subject::Client { client_id } = &principal.subject else {
            return Ok(Err(SsfAuthError::InvalidToken(
                "a receiver authenticates with its own client-credentials token".into(),
            )));
        };
        if principal.home_pool != pool.slug {
            return Ok(Err(SsfAuthError::InvalidToken(
                "the token is not of this pool".into(),
            )));
        }
        let Some(client) = self.client(pool.id, client_id).await? else {
            return Ok(Err(SsfAuthError::InvalidToken(
                "the client no longer exists".into(),
            )));
        };
        let token_scopes: Vec<&str> = principal
            .token
            .scope
            .as_deref()
            .unwrap_or_default()
            .split_ascii_whitespace()
            .collect();
        // A scope counts while the token carries it and the client still holds it.
        let holds =
            |s: &str| token_scopes.contains(&s) && client.scopes.iter().any(|c| c.as_str() == s);
        let allowed =
            holds(Scope::SSF_MANAGE) || (access == SsfAccess::Read && holds(Scope::SSF_READ));
        if !allowed {
            return Ok(Err(SsfAuthError::InsufficientScope(access)));
        }
        Ok(Ok(Receiver {
            client: client_id.clone(),
        }))
    }

    /// The poll URL of a stream: unique per stream.
    pub fn ssf_poll_url(&self, pool: &Pool, stream: &str) -> String {
        format!("{}/api/ssf/poll/{stream}", self.issuer(pool))
    }

    /// The receiver's stream `id`; another receiver's stream, or none, is not found.
    pub(crate) async fn owned_stream(
        &self,
        pool: &Pool,
        receiver: &Receiver,
        id: &str,
    ) -> ServiceResult<SsfStream> {
        match self.store.ssf_stream(pool.id, id).await? {
            Some(s) if s.client == receiver.client => Ok(s),
            _ => Err(ServiceError::NotFound("stream")),
        }
    }

    /// The receiver's streams: the one named, or all (at most one).
    pub async fn ssf_streams(
        &self,
        pool: &Pool,
        receiver: &Receiver,
        id: Option<&str>,
    ) -> ServiceResult<Vec<SsfStream>> {
        match id {
            Some(id) => Ok(vec![self.owned_stream(pool, receiver, id).await?]),
            None => Ok(self
                .store
                .ssf_streams(pool.id, Some(&receiver.client))
                .await?),
        }
    }

    /// Checks the delivery a receiver asks for: a method Gatehouse offers; for push an
    /// endpoint the outbound policy allows (https, or http while Gatehouse is served over
    /// http) and an optional `Authorization` value; for poll no endpoint of the receiver's
    /// (the transmitter names it).
    fn parse_delivery(
        &self,
        d: Option<&DeliveryRequest>,
    ) -> ServiceResult<(DeliveryMethod, Option<String>, Option<String>)> {
        let Some(d) = d else {
            return Ok((DeliveryMethod::Poll, None, None));
        };
        let method = DeliveryMethod::parse(&d.method).ok_or_else(|| {
            invalid(
                "delivery.method",
                format!(
                    "'{}' is not a delivery method of this transmitter ({} or {})",
                    d.method,
                    DeliveryMethod::Push.urn(),
                    DeliveryMethod::Poll.urn()
                ),
            )
        })?;
        match method {
            DeliveryMethod::Push => {
                let url = d.endpoint_url.as_deref().ok_or_else(|| {
                    invalid(
                        "delivery.endpoint_url",
                        "push delivery needs an endpoint_url",
                    )
                })?;
                self.outbound()
                    .check_target(url)
                    .map_err(|e| invalid("delivery.endpoint_url", e.to_string()))?;
                if let Some(h) = &d.authorization_header
                    && (h.is_empty()
                        || h.len() > AUTHORIZATION_HEADER_MAX
                        || h.bytes().any(|b| b.is_ascii_control()))
                {
                    return Err(invalid(
                        "delivery.authorization_header",
                        "must be a header value of 1 to 4096 visible characters",
                    ));
                }
                Ok((method, Some(url.to_owned()), d.authorization_header.clone()))
            }
            DeliveryMethod::Poll => {
                if d.authorization_header.is_some() {
                    return Err(invalid(
                        "delivery.authorization_header",
                        "poll delivery takes no authorization_header",
                    ));
                }
                Ok((method, None, None))
            }
        }
    }

    fn check_receiver_fields(req: &StreamRequest) -> ServiceResult<()> {
        if let Some(d) = &req.description
            && d.chars().count() > DESCRIPTION_MAX
        {
            return Err(invalid("description", "at most 1024 characters"));
        }
        if let Some(e) = &req.events_requested
            && (e.len() > EVENTS_REQUESTED_MAX || e.iter().any(|u| u.is_empty() || u.len() > 512))
        {
            return Err(invalid(
                "events_requested",
                "at most 64 event type URIs of 1 to 512 characters",
            ));
        }
        Ok(())
    }

    /// Creates the receiver's stream (SSF §8.1.1.1): one per receiver (a second is a
    /// conflict). It follows the pool's events from those committed after its creation.
    pub async fn ssf_create_stream(
        &self,
        pool: &Pool,
        receiver: &Receiver,
        req: StreamRequest,
    ) -> ServiceResult<SsfStream> {
        Self::check_receiver_fields(&req)?;
        let (method, endpoint_url, authorization_header) =
            self.parse_delivery(req.delivery.as_ref())?;
        let stream = SsfStream {
            pool: pool.id,
            id: random_token().expose().to_owned(),
            client: receiver.client.clone(),
            description: req.description,
            events_requested: req.events_requested.unwrap_or_default(),
            method,
            endpoint_url,
            authorization_header,
            status: StreamStatus::Enabled,
            status_reason: None,
            position: 0,
            version: 0,
            created_at: self.now(),
            last_verification_at: None,
        };
        let stored = self
            .store
            .ssf_create_stream(&stream)
            .await
            .map_err(|e| match e {
                gatehouse_domain::store::StoreError::Conflict(_) => ServiceError::Conflict(
                    "this receiver has a stream already: update, replace or delete it".into(),
                ),
                e => e.into(),
            })?;
        self.ssf_runtime.ring();
        Ok(stored)
    }

    /// Updates (PATCH: fields left out stay) or replaces (PUT: fields left out are removed)
    /// the receiver-set fields of the receiver's stream.
    pub async fn ssf_update_stream(
        &self,
        pool: &Pool,
        receiver: &Receiver,
        id: &str,
        req: StreamRequest,
        kind: UpdateKind,
    ) -> ServiceResult<SsfStream> {
        Self::check_receiver_fields(&req)?;
        loop {
            let mut stream = self.owned_stream(pool, receiver, id).await?;
            match kind {
                UpdateKind::Replace => {
                    let (m, url, auth) = self.parse_delivery(req.delivery.as_ref())?;
                    stream.method = m;
                    stream.endpoint_url = url;
                    stream.authorization_header = auth;
                    stream.events_requested = req.events_requested.clone().unwrap_or_default();
                    stream.description = req.description.clone();
                }
                UpdateKind::Patch => {
                    if let Some(d) = &req.delivery {
                        let (m, url, auth) = self.parse_delivery(Some(d))?;
                        stream.method = m;
                        stream.endpoint_url = url;
                        stream.authorization_header = auth;
                    }
                    if let Some(e) = &req.events_requested {
                        stream.events_requested = e.clone();
                    }
                    if let Some(d) = &req.description {
                        stream.description = Some(d.clone());
                    }
                }
            }
            if self.store.ssf_update_stream(&stream).await? {
                self.ssf_runtime.ring();
                return self.owned_stream(pool, receiver, id).await;
            }
        }
    }

    pub async fn ssf_delete_stream(
        &self,
        pool: &Pool,
        receiver: &Receiver,
        id: &str,
    ) -> ServiceResult<()> {
        let stream = self.owned_stream(pool, receiver, id).await?;
        if !self.store.ssf_delete_stream(pool.id, &stream.id).await? {
            return Err(ServiceError::NotFound("stream"));
        }
        self.ssf_runtime.ring();
        Ok(())
    }

    /// Sets the stream's status (SSF §8.1.2.2). Disabling discards what it had queued.
    pub async fn ssf_set_status(
        &self,
        pool: &Pool,
        receiver: &Receiver,
        id: &str,
        status: StreamStatus,
        reason: Option<String>,
    ) -> ServiceResult<SsfStream> {
        if let Some(r) = &reason
            && r.chars().count() > DESCRIPTION_MAX
        {
            return Err(invalid("reason", "at most 1024 characters"));
        }
        loop {
            let mut stream = self.owned_stream(pool, receiver, id).await?;
            // What committed before the change is treated as the old status says: held while
            // paused, dropped while disabled (and dropped with the queue when disabling).
            self.fan_out(pool, &mut stream).await?;
            stream.status = status;
            stream.status_reason = reason.clone();
            if self.store.ssf_update_stream(&stream).await? {
                self.ssf_runtime.ring();
                return Ok(stream);
            }
        }
    }

    /// Adds (includes again) or removes (excludes) a subject of the receiver's stream (SSF
    /// §8.1.3). The answer is the same whether the subject exists or not.
    pub async fn ssf_change_subject(
        &self,
        pool: &Pool,
        receiver: &Receiver,
        id: &str,
        subject: SubjectRef,
        add: bool,
    ) -> ServiceResult<()> {
        let stream = self.owned_stream(pool, receiver, id).await?;
        let issuer = self.issuer(pool);
        let key = match subject {
            SubjectRef::User { iss, sub } if iss == issuer => format!("user:{sub}"),
            SubjectRef::Session(sid) => format!("session:{sid}"),
            SubjectRef::Tenant(t) if t == pool.slug.as_str() => "tenant".to_owned(),
            _ => return Ok(()),
        };
        Ok(self
            .store
            .ssf_exclude_subject(pool.id, &stream.id, &key, !add)
            .await?)
    }

    /// Asks for a verification event (SSF §8.1.4.2): queued at once on the stream, then
    /// delivered like any event. At most one per [`MIN_VERIFICATION_INTERVAL_SECS`].
    pub async fn ssf_verify(
        &self,
        pool: &Pool,
        receiver: &Receiver,
        id: &str,
        state: Option<String>,
    ) -> ServiceResult<()> {
        if let Some(s) = &state
            && s.len() > STATE_MAX
        {
            return Err(invalid("state", "at most 256 characters"));
        }
        let stream = self.owned_stream(pool, receiver, id).await?;
        let now = self.now();
        if let Some(last) = stream.last_verification_at {
            let next = last.plus_secs(MIN_VERIFICATION_INTERVAL_SECS);
            if now < next {
                return Err(ServiceError::Throttled {
                    detail: format!(
                        "verification may be asked at most every {MIN_VERIFICATION_INTERVAL_SECS} seconds"
                    ),
                    retry_after_secs: u32::try_from(next.as_secs() - now.as_secs()).unwrap_or(1),
                });
            }
        }
        if !self
            .store
            .ssf_mark_verification(pool.id, &stream.id, stream.last_verification_at, now)
            .await?
        {
            return Err(ServiceError::Throttled {
                detail: "a verification of this stream was just asked".into(),
                retry_after_secs: 1,
            });
        }
        // A paused stream holds it like any event; a disabled one drops it.
        if stream.status == StreamStatus::Disabled {
            return Ok(());
        }
        let jti = random_token().expose().to_owned();
        let set = self
            .verification_set(pool, &stream, &jti, state.as_deref(), now)
            .await?;
        self.store
            .ssf_enqueue(pool.id, &stream.id, &[QueuedSet::new(jti, set, now)])
            .await?;
        self.ssf_runtime.ring();
        Ok(())
    }

    /// The SSF verification SET of a stream: `sub_id` the stream id (opaque), `state` echoed.
    async fn verification_set(
        &self,
        pool: &Pool,
        stream: &SsfStream,
        jti: &str,
        state: Option<&str>,
        now: Timestamp,
    ) -> ServiceResult<String> {
        let keys = self.pool_keys(pool).await?;
        let mut payload = serde_json::Map::new();
        if let Some(s) = state {
            payload.insert("state".into(), json!(s));
        }
        let claims = json!({
            "iss": self.issuer(pool),
            "jti": jti,
            "iat": now.as_secs(),
            "aud": stream.client.to_string(),
            "txn": jti,
            "sub_id": {"format": "opaque", "id": stream.id},
            "events": { VERIFICATION_EVENT: payload },
        });
        Ok(jws::sign(&keys.id_token_signing, TYP_SECEVENT, &claims)?)
    }
}
