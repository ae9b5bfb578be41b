//! Signing-key rotation without downtime (SPEC §8): a pool publishes its next key before it
//! signs with it, and its previous key for as long as tokens it signed may still be presented.
//!
//! A rotation moves every key one step: the next key signs, the current one becomes the
//! previous one, the previous one is dropped, and a fresh next key is published. Dropping a
//! previous key whose tokens may still be alive refuses those tokens, so an ordinary rotation
//! waits for them; a forced one does not, and a rotation after a compromise drops the
//! compromised (current) key at once.
//!
//! A pool has a family of keys per [`KeyPurpose`]; each rotates on its own by these rules, and
//! a rotation of one family leaves the other's keys as they are.

use crate::store::{KeyPurpose, KeyState, SigningKeyRecord};
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

/// What a rotation leaves: the keys kept (with their new states; the other families' as they
/// were), the keys dropped, and the fresh keys the caller must add to the rotated family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub kept: Vec<SigningKeyRecord>,
    /// Keys no longer published: tokens they signed are refused.
    pub dropped: Vec<String>,
    /// No next key was published ahead, so a fresh key signs from now on. Verifiers that
    /// cache the key set learn it from the first token that names it.
    pub needs_current: bool,
}

/// Whether `keys` lack a current key of the family `purpose`: a pool created before the
/// family existed, which must be given one before it signs anything with it.
pub fn lacks_current(keys: &[SigningKeyRecord], purpose: KeyPurpose) -> bool {
    !keys
        .iter()
        .any(|k| k.purpose == purpose && k.state == KeyState::Current)
}

/// Whether a rotation of `purpose` now will need a fresh current key (none is published as
/// next): lets the caller make the keys it will need before its transaction opens.
pub fn will_need_current(keys: &[SigningKeyRecord], purpose: KeyPurpose) -> bool {
    !keys
        .iter()
        .any(|k| k.purpose == purpose && k.state == KeyState::Next)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationRefused {
    /// The previous key may still verify tokens until `until`.
    PreviousStillVerifying { kid: String, until: Timestamp },
    /// The pool has no current key: its key set is damaged.
    NoCurrentKey,
}

/// Plans a rotation of the family `purpose` of a pool's `keys` at `now`. `keep_previous_secs`
/// is how long a key that stopped signing must stay published: the longest lifetime of a
/// token it signed, with a margin for other instances that sign with it until they reload
/// the keys. Keys of the other families are kept as they are.
pub fn rotate(
    keys: Vec<SigningKeyRecord>,
    purpose: KeyPurpose,
    now: Timestamp,
    keep_previous_secs: i64,
    kind: RotationKind,
) -> Result<Rotation, RotationRefused> {
    if lacks_current(&keys, purpose) {
        return Err(RotationRefused::NoCurrentKey);
    }
    let still_verifies = |k: &SigningKeyRecord| now < k.state_since.plus_secs(keep_previous_secs);
    if kind == RotationKind::Scheduled
        && let Some(k) = keys
            .iter()
            .find(|k| k.purpose == purpose && k.state == KeyState::Previous && still_verifies(k))
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
        if key.purpose != purpose {
            kept.push(key);
            continue;
        }
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
            purpose: KeyPurpose::Access,
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
            KeyPurpose::Access,
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
        let r = rotate(
            keys,
            KeyPurpose::Access,
            Timestamp(4000),
            3660,
            RotationKind::Scheduled,
        )
        .unwrap();
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
            rotate(
                keys.clone(),
                KeyPurpose::Access,
                Timestamp(4659),
                3660,
                RotationKind::Scheduled
            ),
            Err(RotationRefused::PreviousStillVerifying {
                kid: "old".to_owned(),
                until: Timestamp(4660)
            })
        );
        assert!(
            rotate(
                keys.clone(),
                KeyPurpose::Access,
                Timestamp(4660),
                3660,
                RotationKind::Scheduled
            )
            .is_ok()
        );
        let forced = rotate(
            keys,
            KeyPurpose::Access,
            Timestamp(2000),
            3660,
            RotationKind::Forced,
        )
        .unwrap();
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
        let r = rotate(
            keys,
            KeyPurpose::Access,
            Timestamp(2000),
            3660,
            RotationKind::Compromised,
        )
        .unwrap();
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
                KeyPurpose::Access,
                Timestamp(1),
                10,
                RotationKind::Forced
            ),
            Err(RotationRefused::NoCurrentKey)
        );
    }

    fn id_key(kid: &str, state: KeyState, since: i64) -> SigningKeyRecord {
        SigningKeyRecord {
            alg: SigningAlg::RS256,
            purpose: KeyPurpose::IdToken,
            ..key(kid, state, since)
        }
    }

    #[test]
    fn a_rotation_moves_only_its_own_family() {
        // The access family has a previous key still verifying, which refuses a scheduled
        // rotation of access keys but not one of ID-token keys; its keys stay as they were.
        let keys = vec![
            key("a-old", KeyState::Previous, 1000),
            key("a-cur", KeyState::Current, 0),
            id_key("i-cur", KeyState::Current, 0),
            id_key("i-nxt", KeyState::Next, 0),
        ];
        assert!(matches!(
            rotate(keys.clone(), KeyPurpose::Access, Timestamp(2000), 3660, RotationKind::Scheduled),
            Err(RotationRefused::PreviousStillVerifying { kid, .. }) if kid == "a-old"
        ));
        let r = rotate(
            keys.clone(),
            KeyPurpose::IdToken,
            Timestamp(2000),
            3660,
            RotationKind::Scheduled,
        )
        .unwrap();
        assert_eq!(
            states(&r),
            [
                ("a-old", KeyState::Previous),
                ("a-cur", KeyState::Current),
                ("i-cur", KeyState::Previous),
                ("i-nxt", KeyState::Current),
            ]
        );
        assert_eq!(r.kept[..2], keys[..2]);
        assert!(r.dropped.is_empty());
        assert!(!r.needs_current);

        // A compromised ID-token key goes alone; the access keys all stay.
        let r = rotate(
            keys.clone(),
            KeyPurpose::IdToken,
            Timestamp(2000),
            3660,
            RotationKind::Compromised,
        )
        .unwrap();
        assert_eq!(r.dropped, ["i-cur"]);
        assert_eq!(r.kept[..2], keys[..2]);
    }

    #[test]
    fn a_family_without_a_current_key_is_found_and_cannot_rotate() {
        let keys = vec![
            key("a-cur", KeyState::Current, 0),
            key("a-nxt", KeyState::Next, 0),
        ];
        assert!(!lacks_current(&keys, KeyPurpose::Access));
        assert!(lacks_current(&keys, KeyPurpose::IdToken));
        assert!(!will_need_current(&keys, KeyPurpose::Access));
        assert!(will_need_current(&keys, KeyPurpose::IdToken));
        assert_eq!(
            rotate(
                keys,
                KeyPurpose::IdToken,
                Timestamp(1),
                10,
                RotationKind::Forced
            ),
            Err(RotationRefused::NoCurrentKey)
        );
    }
}
