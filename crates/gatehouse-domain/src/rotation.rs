//! Signing-key rotation without downtime (SPEC §8): a pool publishes its next key before it
//! signs with it, and its previous key for as long as tokens it signed may still be presented.
//!
//! A rotation moves every key one step: the next key signs, the current one becomes the
//! previous one, the previous one is dropped, and a fresh next key is published. Dropping a
//! previous key whose tokens may still be alive refuses those tokens, so an ordinary rotation
//! waits for them; a forced one does not, and a rotation after a compromise drops the
//! compromised (current) key at once.

use crate::store::{KeyState, SigningKeyRecord};
use crate::time::Timestamp;

/// Why a rotation is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationKind {
    /// Routine: refused while the previous key may still verify live tokens.
    Scheduled,
    /// Routine, now: tokens signed by the previous key are refused from now on.
    Forced,
    /// The current key is compromised: it is dropped at once, with every token it signed.
    Compromised,
}

impl RotationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Forced => "forced",
            Self::Compromised => "compromised",
        }
    }
}

/// What a rotation leaves: the keys kept (with their new states), the keys dropped, and the
/// fresh keys the caller must add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub kept: Vec<SigningKeyRecord>,
    /// Keys no longer published: tokens they signed are refused.
    pub dropped: Vec<String>,
    /// No next key was published ahead, so a fresh key signs from now on. Verifiers that
    /// cache the key set learn it from the first token that names it.
    pub needs_current: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationRefused {
    /// The previous key may still verify tokens until `until`.
    PreviousStillVerifying { kid: String, until: Timestamp },
    /// The pool has no current key: its key set is damaged.
    NoCurrentKey,
}

/// Plans a rotation of `keys` at `now`. `keep_previous_secs` is how long a key that stopped
/// signing must stay published: the longest lifetime of a token it signed, with a margin for
/// other instances that sign with it until they reload the keys.
pub fn rotate(
    keys: Vec<SigningKeyRecord>,
    now: Timestamp,
    keep_previous_secs: i64,
    kind: RotationKind,
) -> Result<Rotation, RotationRefused> {
    if !keys.iter().any(|k| k.state == KeyState::Current) {
        return Err(RotationRefused::NoCurrentKey);
    }
    let still_verifies = |k: &SigningKeyRecord| now < k.state_since.plus_secs(keep_previous_secs);
    if kind == RotationKind::Scheduled
        && let Some(k) = keys
            .iter()
            .find(|k| k.state == KeyState::Previous && still_verifies(k))
    {
        return Err(RotationRefused::PreviousStillVerifying {
            kid: k.kid.clone(),
            until: k.state_since.plus_secs(keep_previous_secs),
        });
    }
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    let mut needs_current = true;
    for mut key in keys {
        let keep = match key.state {
            // A compromised rotation keeps a previous key whose tokens may still be alive:
            // it is not the compromised one.
            KeyState::Previous => kind == RotationKind::Compromised && still_verifies(&key),
            KeyState::Current => {
                if kind == RotationKind::Compromised {
                    false
                } else {
                    key.state = KeyState::Previous;
                    key.state_since = now;
                    true
                }
            }
            KeyState::Next => {
                // Of several next keys (none are made so), the oldest signs.
                if needs_current {
                    needs_current = false;
                    key.state = KeyState::Current;
                } else {
                    key.state = KeyState::Next;
                }
                key.state_since = now;
                true
            }
        };
        if keep {
            kept.push(key);
        } else {
            dropped.push(key.kid);
        }
    }
    Ok(Rotation {
        kept,
        dropped,
        needs_current,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::PoolId;
    use crate::pool::SigningAlg;

    fn key(kid: &str, state: KeyState, since: i64) -> SigningKeyRecord {
        SigningKeyRecord {
            pool: PoolId::new_random(),
            kid: kid.to_owned(),
            alg: SigningAlg::ES256,
            state,
            sealed_private_key: vec![1],
            public_jwk: "{}".to_owned(),
            created_at: Timestamp(since),
            state_since: Timestamp(since),
        }
    }

    fn states(r: &Rotation) -> Vec<(&str, KeyState)> {
        r.kept.iter().map(|k| (k.kid.as_str(), k.state)).collect()
    }

    #[test]
    fn the_first_rotation_keeps_the_current_key_as_previous_and_needs_a_fresh_one() {
        let r = rotate(
            vec![key("a", KeyState::Current, 0)],
            Timestamp(100),
            3660,
            RotationKind::Scheduled,
        )
        .unwrap();
        assert_eq!(states(&r), [("a", KeyState::Previous)]);
        assert_eq!(r.kept[0].state_since, Timestamp(100));
        assert!(r.needs_current);
        assert!(r.dropped.is_empty());
    }

    #[test]
    fn a_published_next_key_signs_and_the_expired_previous_key_goes() {
        let keys = vec![
            key("old", KeyState::Previous, 0),
            key("cur", KeyState::Current, 0),
            key("nxt", KeyState::Next, 0),
        ];
        let r = rotate(keys, Timestamp(4000), 3660, RotationKind::Scheduled).unwrap();
        assert_eq!(
            states(&r),
            [("cur", KeyState::Previous), ("nxt", KeyState::Current)]
        );
        assert_eq!(r.dropped, ["old"]);
        assert!(!r.needs_current);
    }

    #[test]
    fn a_scheduled_rotation_waits_for_the_previous_keys_tokens_and_a_forced_one_does_not() {
        let keys = vec![
            key("old", KeyState::Previous, 1000),
            key("cur", KeyState::Current, 0),
        ];
        assert_eq!(
            rotate(keys.clone(), Timestamp(4659), 3660, RotationKind::Scheduled),
            Err(RotationRefused::PreviousStillVerifying {
                kid: "old".to_owned(),
                until: Timestamp(4660)
            })
        );
        assert!(rotate(keys.clone(), Timestamp(4660), 3660, RotationKind::Scheduled).is_ok());
        let forced = rotate(keys, Timestamp(2000), 3660, RotationKind::Forced).unwrap();
        assert_eq!(forced.dropped, ["old"]);
        assert_eq!(states(&forced), [("cur", KeyState::Previous)]);
    }

    #[test]
    fn a_compromised_key_is_dropped_at_once_and_a_live_previous_key_stays() {
        let keys = vec![
            key("old", KeyState::Previous, 1000),
            key("cur", KeyState::Current, 0),
            key("nxt", KeyState::Next, 0),
        ];
        let r = rotate(keys, Timestamp(2000), 3660, RotationKind::Compromised).unwrap();
        assert_eq!(r.dropped, ["cur"]);
        assert_eq!(
            states(&r),
            [("old", KeyState::Previous), ("nxt", KeyState::Current)]
        );
    }

    #[test]
    fn a_key_set_without_a_current_key_is_refused() {
        assert_eq!(
            rotate(
                vec![key("n", KeyState::Next, 0)],
                Timestamp(1),
                10,
                RotationKind::Forced
            ),
            Err(RotationRefused::NoCurrentKey)
        );
    }
}
