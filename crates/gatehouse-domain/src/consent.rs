//! Consent: what a user allowed a third-party app client to have. A grant is remembered per
//! user and client; a request for scopes it does not cover asks again, and what the user
//! allows then is added to what was allowed before.

use crate::ids::{ClientId, PoolId, UserId};
use crate::time::Timestamp;

/// A user's remembered consent to one app client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub pool: PoolId,
    pub user_id: UserId,
    pub client_id: ClientId,
    /// The scopes allowed so far, in the order first allowed, without repeats.
    pub scopes: Vec<String>,
    /// When the user first allowed this client.
    pub granted_at: Timestamp,
    /// When the user last allowed it (the last time scopes were added).
    pub updated_at: Timestamp,
}

impl Consent {
    /// Whether every scope of `requested` was allowed.
    pub fn covers(&self, requested: &[String]) -> bool {
        requested.iter().all(|s| self.scopes.contains(s))
    }

    /// Adds `scopes` to those allowed, keeping the order and dropping repeats.
    pub fn allow(&mut self, scopes: &[String], at: Timestamp) {
        for s in scopes {
            if !self.scopes.contains(s) {
                self.scopes.push(s.clone());
            }
        }
        self.updated_at = at;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consent(scopes: &[&str]) -> Consent {
        Consent {
            pool: PoolId::new_random(),
            user_id: UserId::new_random(),
            client_id: ClientId::parse("abcdefghijklmnopqrstuvwxyz").unwrap(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            granted_at: Timestamp(10),
            updated_at: Timestamp(10),
        }
    }

    fn owned(scopes: &[&str]) -> Vec<String> {
        scopes.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_consent_covers_only_what_was_allowed() {
        let c = consent(&["openid", "profile"]);
        assert!(c.covers(&owned(&["openid"])));
        assert!(c.covers(&owned(&["profile", "openid"])));
        assert!(c.covers(&[]));
        assert!(!c.covers(&owned(&["openid", "email"])));
    }

    #[test]
    fn allowing_more_keeps_the_union_in_order() {
        let mut c = consent(&["openid", "profile"]);
        c.allow(&owned(&["email", "openid", "email"]), Timestamp(20));
        assert_eq!(c.scopes, owned(&["openid", "profile", "email"]));
        assert_eq!(c.granted_at, Timestamp(10));
        assert_eq!(c.updated_at, Timestamp(20));
    }
}
