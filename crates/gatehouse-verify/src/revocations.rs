//! What the revocation feed has said, in memory: revoked sessions and token ids, and the
//! not-before times of users, groups and the pool. Checking a token is a few hash lookups
//! under a read lock; the feed takes the write lock only to apply events.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::claims::Claims;
use crate::error::RevokedBy;

/// What one event changes, at its `event_timestamp` `at` (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Tokens of this session are refused.
    Session { sid: String, at: i64 },
    /// The token with this `jti` is refused.
    Token { jti: String, at: i64 },
    /// Tokens of this user issued at or before `at` are refused.
    User { sub: String, at: i64 },
    /// Tokens naming this group issued at or before `at` are refused.
    Group { name: String, at: i64 },
    /// Every token of the pool issued at or before `at` is refused.
    Pool { at: i64 },
    /// An event that refuses nothing (an account enabled, a credential changed, a type this
    /// verifier does not know).
    Nothing,
}

#[derive(Default)]
struct Entries {
    sessions: HashMap<String, i64>,
    tokens: HashMap<String, i64>,
    users: HashMap<String, i64>,
    groups: HashMap<String, i64>,
    pool: Option<i64>,
}

impl Entries {
    fn len(&self) -> usize {
        self.sessions.len()
            + self.tokens.len()
            + self.users.len()
            + self.groups.len()
            + usize::from(self.pool.is_some())
    }
}

/// The revocation state of one pool.
#[derive(Default)]
pub struct Revocations {
    entries: RwLock<Entries>,
}

fn later(slot: &mut i64, at: i64) {
    *slot = (*slot).max(at);
}

impl Revocations {
    /// Applies effects (in feed order).
    pub fn apply(&self, effects: &[Effect]) {
        if effects.iter().all(|e| *e == Effect::Nothing) {
            return;
        }
        let mut e = match self.entries.write() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        };
        for effect in effects {
            match effect {
                Effect::Session { sid, at } => {
                    later(e.sessions.entry(sid.clone()).or_default(), *at)
                }
                Effect::Token { jti, at } => later(e.tokens.entry(jti.clone()).or_default(), *at),
                Effect::User { sub, at } => later(e.users.entry(sub.clone()).or_default(), *at),
                Effect::Group { name, at } => later(e.groups.entry(name.clone()).or_default(), *at),
                Effect::Pool { at } => e.pool = Some(e.pool.map_or(*at, |p| p.max(*at))),
                Effect::Nothing => {}
            }
        }
    }

    /// Why `claims` are refused, if they are.
    pub fn check(&self, claims: &Claims) -> Result<(), RevokedBy> {
        let e = match self.entries.read() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        };
        let iat = claims.iat;
        if e.pool.is_some_and(|t| iat <= t) {
            return Err(RevokedBy::Pool);
        }
        if let Some(sid) = &claims.sid
            && e.sessions.contains_key(sid)
        {
            return Err(RevokedBy::Session);
        }
        if let Some(jti) = &claims.jti
            && e.tokens.contains_key(jti)
        {
            return Err(RevokedBy::Token);
        }
        if e.users.get(&claims.sub).is_some_and(|t| iat <= *t) {
            return Err(RevokedBy::User);
        }
        if !e.groups.is_empty()
            && claims
                .groups
                .iter()
                .any(|g| e.groups.get(g).is_some_and(|t| iat <= *t))
        {
            return Err(RevokedBy::Group);
        }
        Ok(())
    }

    /// Forgets every entry whose time is older than `horizon` (Unix seconds): every token it
    /// could refuse has expired.
    pub fn forget_before(&self, horizon: i64) {
        let mut e = match self.entries.write() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        };
        e.sessions.retain(|_, t| *t >= horizon);
        e.tokens.retain(|_, t| *t >= horizon);
        e.users.retain(|_, t| *t >= horizon);
        e.groups.retain(|_, t| *t >= horizon);
        if e.pool.is_some_and(|t| t < horizon) {
            e.pool = None;
        }
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        match self.entries.read() {
            Ok(e) => e.len(),
            Err(poisoned) => poisoned.into_inner().len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(sub: &str, sid: Option<&str>, jti: &str, iat: i64, groups: &[&str]) -> Claims {
        Claims {
            iss: "i".into(),
            sub: sub.into(),
            aud: vec!["a".into()],
            exp: iat + 3600,
            iat,
            nbf: None,
            jti: Some(jti.into()),
            sid: sid.map(str::to_owned),
            client_id: None,
            scope: None,
            username: None,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            roles: vec![],
            token_use: None,
        }
    }

    #[test]
    fn each_rule_refuses_what_it_names_and_nothing_else() {
        let r = Revocations::default();
        let ada = token("ada", Some("s1"), "j1", 1000, &["staff"]);
        let other_session = token("ada", Some("s2"), "j2", 1001, &[]);
        assert_eq!(r.check(&ada), Ok(()));

        r.apply(&[Effect::Session {
            sid: "s1".into(),
            at: 5,
        }]);
        assert_eq!(
            r.check(&ada),
            Err(RevokedBy::Session),
            "a session, whatever iat"
        );
        assert_eq!(r.check(&other_session), Ok(()));

        r.apply(&[Effect::Token {
            jti: "j2".into(),
            at: 5,
        }]);
        assert_eq!(r.check(&other_session), Err(RevokedBy::Token));
    }

    #[test]
    fn not_before_rules_include_their_own_second() {
        let r = Revocations::default();
        r.apply(&[Effect::User {
            sub: "ada".into(),
            at: 1000,
        }]);
        assert_eq!(
            r.check(&token("ada", None, "a", 1000, &[])),
            Err(RevokedBy::User),
            "iat == T is refused"
        );
        assert_eq!(r.check(&token("ada", None, "b", 1001, &[])), Ok(()));
        assert_eq!(r.check(&token("bob", None, "c", 999, &[])), Ok(()));
        // An older event never moves a not-before back.
        r.apply(&[Effect::User {
            sub: "ada".into(),
            at: 10,
        }]);
        assert_eq!(
            r.check(&token("ada", None, "a", 1000, &[])),
            Err(RevokedBy::User)
        );

        r.apply(&[Effect::Group {
            name: "staff".into(),
            at: 2000,
        }]);
        assert_eq!(
            r.check(&token("bob", None, "d", 2000, &["x", "staff"])),
            Err(RevokedBy::Group)
        );
        assert_eq!(r.check(&token("bob", None, "d", 2001, &["staff"])), Ok(()));
        assert_eq!(r.check(&token("bob", None, "d", 1, &["other"])), Ok(()));

        r.apply(&[Effect::Pool { at: 3000 }]);
        assert_eq!(
            r.check(&token("carol", None, "e", 3000, &[])),
            Err(RevokedBy::Pool)
        );
        assert_eq!(r.check(&token("carol", None, "e", 3001, &[])), Ok(()));
    }

    #[test]
    fn entries_past_retention_are_forgotten() {
        let r = Revocations::default();
        r.apply(&[
            Effect::Session {
                sid: "old".into(),
                at: 10,
            },
            Effect::Session {
                sid: "new".into(),
                at: 100,
            },
            Effect::Pool { at: 10 },
            Effect::Nothing,
        ]);
        assert_eq!(r.len(), 3);
        r.forget_before(50);
        assert_eq!(r.len(), 1);
        assert_eq!(
            r.check(&token("a", Some("new"), "j", 1, &[])),
            Err(RevokedBy::Session)
        );
    }
}
