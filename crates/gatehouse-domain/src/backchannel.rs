//! OpenID Connect Back-Channel Logout 1.0: what a client registers, which ended sessions call
//! for a logout token to which client, and the state of each delivery.
//!
//! A logout token goes to a client when a session it was issued tokens in ends: every session
//! that issues tokens belongs to exactly one client (`Session::client_id`: an authorization of
//! the code flow, an API sign-in, an impersonation), so the ended session's `session-revoked`
//! event names the one client to tell, in the transaction that ended it. Account events
//! (disabled, purged) and whole-user sign-outs end each of the user's sessions in the same
//! transaction, each with its own event, so they reach the clients through those; a token
//! carrying `sub` alone is never sent (it would end sessions the user still holds elsewhere
//! with the same client).

use crate::ids::{ClientId, PoolId};
use crate::session::{Session, SessionKind};
use crate::time::Timestamp;

/// The event type of a logout token's `events` claim.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// How long a logout token is valid: the specification asks for at most two minutes.
pub const LOGOUT_TOKEN_TTL_SECS: i64 = 120;
/// Retries wait 2, 4, 8, ... seconds, at most this long.
pub const RETRY_MAX_WAIT_SECS: i64 = 300;
/// A delivery that has not succeeded this long after it was planned is given up.
pub const GIVE_UP_AFTER_SECS: i64 = 24 * 3600;
/// How long an instance's claim on a delivery lasts: longer than any call may take.
pub const LEASE_SECS: i64 = 60;
/// The most deliveries the admin API lists for a client.
pub const DELIVERIES_LISTED_MAX: u32 = 100;

/// A client's back-channel logout registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackchannelLogout {
    /// Where logout tokens are POSTed, as registered.
    pub uri: String,
    /// `backchannel_logout_session_required`. Gatehouse always sends `sid` (every token it
    /// sends is about one session), so this is recorded and reported only.
    pub session_required: bool,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Planned; not tried yet.
    Pending,
    /// Answered 200 or 204.
    Delivered,
    /// Answered with another 4xx (or refused by the outbound policy): not retried.
    Rejected,
    /// Failed in a way that may pass (transport error, 5xx, 429, other statuses); tried
    /// again at `next_attempt_at`.
    Retrying,
    /// Still failing [`GIVE_UP_AFTER_SECS`] after it was planned.
    GaveUp,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Rejected => "rejected",
            DeliveryState::Retrying => "retrying",
            DeliveryState::GaveUp => "gave_up",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => DeliveryState::Pending,
            "delivered" => DeliveryState::Delivered,
            "rejected" => DeliveryState::Rejected,
            "retrying" => DeliveryState::Retrying,
            "gave_up" => DeliveryState::GaveUp,
            _ => return None,
        })
    }

    /// Whether the delivery is still to be tried.
    pub fn is_open(self) -> bool {
        matches!(self, DeliveryState::Pending | DeliveryState::Retrying)
    }
}

/// One logout token to send to one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub pool: PoolId,
    pub id: String,
    pub client_id: ClientId,
    /// The security event that called for it.
    pub event_seq: i64,
    pub event_id: String,
    /// The token's `sub`: the user's id.
    pub sub: String,
    /// The token's `sid`: the `sid` of the client's ID tokens in the session.
    pub sid: Option<String>,
    pub uri: String,
    pub state: DeliveryState,
    pub attempts: u32,
    /// The last answer's status, if there was one.
    pub status: Option<u16>,
    /// The last failure, in words.
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// When it is due (open deliveries only).
    pub next_attempt_at: Option<Timestamp>,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// An HTTP answer with this status.
    Answered { status: u16, body: String },
    /// Refused by the outbound policy: no call was made.
    Refused(String),
    /// No answer (connection, timeout, TLS).
    Transport(String),
}

/// The delivery's state after an attempt made at `now`: 200/204 delivered; another 4xx
/// but 429 rejected; a refusal by policy rejected; anything else retried after a wait that
/// doubles from two seconds up to [`RETRY_MAX_WAIT_SECS`], and given up once
/// [`GIVE_UP_AFTER_SECS`] have passed since the delivery was planned.
pub fn after_attempt(delivery: &Delivery, attempt: &Attempt, now: Timestamp) -> Delivery {
    let mut d = delivery.clone();
    d.attempts = d.attempts.saturating_add(1);
    d.updated_at = now;
    d.next_attempt_at = None;
    match attempt {
        Attempt::Answered { status, body } => {
            d.status = Some(*status);
            match status {
                200 | 204 => {
                    d.state = DeliveryState::Delivered;
                    d.error = None;
                    return d;
                }
                400..=499 if *status != 429 => {
                    d.state = DeliveryState::Rejected;
                    d.error = (!body.is_empty()).then(|| body.chars().take(500).collect());
                    return d;
                }
                _ => d.error = (!body.is_empty()).then(|| body.chars().take(500).collect()),
            }
        }
        Attempt::Refused(why) => {
            d.state = DeliveryState::Rejected;
            d.status = None;
            d.error = Some(why.clone());
            return d;
        }
        Attempt::Transport(why) => {
            d.status = None;
            d.error = Some(why.clone());
        }
    }
    if now.as_secs() - d.created_at.as_secs() >= GIVE_UP_AFTER_SECS {
        d.state = DeliveryState::GaveUp;
    } else {
        d.state = DeliveryState::Retrying;
        d.next_attempt_at = Some(now.plus_secs(retry_wait_secs(d.attempts)));
    }
    d
}

/// The wait after the `attempts`-th failed attempt: 2, 4, 8, ... seconds, capped.
pub fn retry_wait_secs(attempts: u32) -> i64 {
    let exp = attempts.clamp(1, 20);
    (1_i64 << exp).min(RETRY_MAX_WAIT_SECS)
}

/// The `sid` of the ID tokens a client got in `session`: an authorization of the code flow
/// carries its browser session's; an API sign-in and an impersonation their own.
pub fn id_token_sid(session: &Session) -> Option<String> {
    match &session.kind {
        SessionKind::Authorized { browser, .. } => Some(browser.to_string()),
        SessionKind::SignIn | SessionKind::Impersonation { .. } => Some(session.id.to_string()),
        SessionKind::Browser { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery() -> Delivery {
        Delivery {
            pool: PoolId::new_random(),
            id: "d".into(),
            client_id: ClientId::parse("client").unwrap(),
            event_seq: 1,
            event_id: "e".into(),
            sub: "u".into(),
            sid: Some("s".into()),
            uri: "https://rp.example/bcl".into(),
            state: DeliveryState::Pending,
            attempts: 0,
            status: None,
            error: None,
            created_at: Timestamp(1_000),
            updated_at: Timestamp(1_000),
            next_attempt_at: Some(Timestamp(1_000)),
        }
    }

    fn answered(status: u16) -> Attempt {
        Attempt::Answered {
            status,
            body: String::new(),
        }
    }

    #[test]
    fn answers_decide_the_state() {
        let d = delivery();
        for (status, state) in [
            (200, DeliveryState::Delivered),
            (204, DeliveryState::Delivered),
            (400, DeliveryState::Rejected),
            (404, DeliveryState::Rejected),
            (429, DeliveryState::Retrying),
            (500, DeliveryState::Retrying),
            (503, DeliveryState::Retrying),
            (302, DeliveryState::Retrying),
        ] {
            let next = after_attempt(&d, &answered(status), Timestamp(1_001));
            assert_eq!(next.state, state, "{status}");
            assert_eq!(next.status, Some(status));
            assert_eq!(next.attempts, 1);
            assert_eq!(next.next_attempt_at.is_some(), state.is_open());
        }
        let refused = after_attempt(&d, &Attempt::Refused("no".into()), Timestamp(1_001));
        assert_eq!(refused.state, DeliveryState::Rejected);
        let lost = after_attempt(&d, &Attempt::Transport("x".into()), Timestamp(1_001));
        assert_eq!(lost.state, DeliveryState::Retrying);
        assert_eq!(lost.next_attempt_at, Some(Timestamp(1_003)));
    }

    #[test]
    fn retries_back_off_and_give_up() {
        assert_eq!(retry_wait_secs(1), 2);
        assert_eq!(retry_wait_secs(2), 4);
        assert_eq!(retry_wait_secs(8), 256);
        assert_eq!(retry_wait_secs(9), RETRY_MAX_WAIT_SECS);
        assert_eq!(retry_wait_secs(u32::MAX), RETRY_MAX_WAIT_SECS);
        let late = Timestamp(1_000 + GIVE_UP_AFTER_SECS);
        let d = after_attempt(&delivery(), &answered(503), late);
        assert_eq!(d.state, DeliveryState::GaveUp);
        assert_eq!(d.next_attempt_at, None);
    }
}
