//! A pool's signing keys: loading them (giving a pool created before ID tokens its ID-token
//! key), and rotating a family of them (the operator's command line). The rotation rules are
//! in [`gatehouse_domain::rotation`]; here they run inside one write transaction that reads
//! the keys it replaces. Keys are generated before that transaction opens: an RSA key takes
//! tens of milliseconds, and the pool's other writers wait on its lock.

use std::sync::Arc;

use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::ids::PoolSlug;
use gatehouse_domain::pool::{Pool, PoolSettings};
use gatehouse_domain::rotation::{self, RotationKind, RotationRefused};
use gatehouse_domain::store::{KeyPurpose, KeyState, SigningKeyRecord};
use gatehouse_domain::time::Timestamp;

use crate::audit::EventExt;
use crate::error::{ServiceError, ServiceResult};
use crate::keyring::{Found, PoolKeys};
use crate::{Gatehouse, Operator, RequestMeta};

/// How long after a key stopped signing, beyond the longest token lifetime, it stays
/// published: other instances keep signing with it until they reload the keys (seconds), and
/// clocks differ a little.
const KEEP_PREVIOUS_MARGIN_SECS: i64 = 60;

/// The pool's keys after a rotation of one family, and those it dropped.
#[derive(Debug, Clone)]
pub struct RotatedKeys {
    /// The family rotated.
    pub purpose: KeyPurpose,
    /// Every key of the pool, of both families.
    pub keys: Vec<SigningKeyRecord>,
    pub dropped: Vec<String>,
}

impl RotatedKeys {
    /// The key id of the rotated family in `state`, if any.
    pub fn kid(&self, state: KeyState) -> Option<&str> {
        self.keys
            .iter()
            .find(|k| k.purpose == self.purpose && k.state == state)
            .map(|k| k.kid.as_str())
    }
}

impl Gatehouse {
    /// The pool's loaded keys. A pool created before ID tokens is given its ID-token key
    /// first ([`Self::ensure_id_token_key`]).
    pub(crate) async fn pool_keys(&self, pool: &Pool) -> ServiceResult<Arc<PoolKeys>> {
        if let Found::Keys(keys) = self.keyring.keys(self.store.as_ref(), pool.id).await? {
            return Ok(keys);
        }
        let _one_at_a_time = self.keyring.backfill_lock().lock().await;
        // Another request may have done it while this one waited.
        if let Found::Keys(keys) = self.keyring.keys(self.store.as_ref(), pool.id).await? {
            return Ok(keys);
        }
        self.ensure_id_token_key(pool).await?;
        match self.keyring.keys(self.store.as_ref(), pool.id).await? {
            Found::Keys(keys) => Ok(keys),
            Found::NoIdTokenKey => Err(ServiceError::internal(format!(
                "pool {} has no ID-token key after one was made",
                pool.slug
            ))),
        }
    }

    /// Gives a pool created before ID tokens its ID-token key (current, RS256), audited as
    /// `pool.signing_key_created`. The keys are read under the pool's lock in the transaction
    /// that adds it, so instances racing add exactly one between them. True if this call
    /// added it.
    pub async fn ensure_id_token_key(&self, pool: &Pool) -> ServiceResult<bool> {
        let purpose = KeyPurpose::IdToken;
        if !rotation::lacks_current(&self.store.signing_keys(pool.id).await?, purpose) {
            return Ok(false);
        }
        let now = self.now();
        let key = self
            .keyring
            .new_key(
                pool.id,
                purpose,
                purpose.alg(&pool.settings),
                KeyState::Current,
                now,
            )
            .await?;
        let mut w = self.store.write(pool.id).await?;
        let mut keys = w.signing_keys().await?;
        if !rotation::lacks_current(&keys, purpose) {
            // Another instance gave it one first; dropping `w` rolls back.
            return Ok(false);
        }
        let event = self
            .event(
                pool,
                AuditAction::SigningKeyCreated,
                None,
                &RequestMeta::default(),
            )
            .subject(&pool.slug)
            .detail("purpose", purpose.as_str())
            .detail("kid", &key.kid)
            .detail("alg", key.alg.as_str());
        keys.push(key);
        w.replace_signing_keys(&keys).await?;
        w.audit(&event).await?;
        w.commit().await?;
        self.keyring.forget(pool.id);
        Ok(true)
    }

    /// The pool's signing keys as stored (never their private parts), oldest first.
    pub async fn signing_keys_as_operator(
        &self,
        slug: &PoolSlug,
    ) -> ServiceResult<Vec<SigningKeyRecord>> {
        let pool = self.pool(slug).await?;
        Ok(self.store.signing_keys(pool.id).await?)
    }

    /// Rotates one family of the pool's signing keys one step: its next key (published
    /// ahead) signs, its current one stays published as the previous one until tokens it
    /// signed have expired, and a fresh next key is published. See [`RotationKind`] for forced
    /// rotations and compromised keys. The other family is left as it is. New keys use the
    /// family's algorithm: the pool's configured one for access tokens, RS256 for ID tokens.
    pub async fn rotate_signing_key_as_operator(
        &self,
        operator: &Operator,
        slug: &PoolSlug,
        purpose: KeyPurpose,
        kind: RotationKind,
        meta: &RequestMeta,
    ) -> ServiceResult<RotatedKeys> {
        let pool = self.pool(slug).await?;
        if purpose == KeyPurpose::IdToken {
            self.ensure_id_token_key(&pool).await?;
        }
        let now = self.now();
        // The keys this rotation will add, made before its transaction opens, as the keys
        // and settings read now say. A change in between is met inside (rarely).
        let alg = purpose.alg(&pool.settings);
        let ahead = self.store.signing_keys(pool.id).await?;
        let mut fresh_current = if rotation::will_need_current(&ahead, purpose) {
            Some(
                self.keyring
                    .new_key(pool.id, purpose, alg, KeyState::Current, now)
                    .await?,
            )
        } else {
            None
        };
        let mut fresh_next = Some(
            self.keyring
                .new_key(pool.id, purpose, alg, KeyState::Next, now)
                .await?,
        );

        let mut w = self.store.write(pool.id).await?;
        let settings = w.pool_settings().await?;
        let keys = w.signing_keys().await?;
        // The longest token either family signs lives this long: ID tokens are issued for no
        // longer than access tokens (if they get a lifetime setting of their own, it belongs
        // in this maximum too).
        let keep_previous_secs = i64::from(
            settings
                .access_token_ttl_secs
                .max(settings.max_impersonation_ttl_secs),
        ) + KEEP_PREVIOUS_MARGIN_SECS;
        let plan = rotation::rotate(keys, purpose, now, keep_previous_secs, kind).map_err(|e| {
            match e {
                RotationRefused::PreviousStillVerifying { kid, until } => {
                    ServiceError::Conflict(format!(
                        "the previous key {kid} still verifies tokens it signed for another {} s; \
                         rotate after that, or force the rotation, which refuses those tokens now",
                        until.as_secs() - now.as_secs()
                    ))
                }
                RotationRefused::NoCurrentKey => ServiceError::internal(format!(
                    "pool {slug} has no current {} signing key",
                    purpose.as_str()
                )),
            }
        })?;
        let mut keys = plan.kept;
        if plan.needs_current {
            keys.push(
                self.made_or_new(
                    &mut fresh_current,
                    &settings,
                    purpose,
                    KeyState::Current,
                    &pool,
                    now,
                )
                .await?,
            );
        }
        keys.push(
            self.made_or_new(
                &mut fresh_next,
                &settings,
                purpose,
                KeyState::Next,
                &pool,
                now,
            )
            .await?,
        );
        w.replace_signing_keys(&keys).await?;
        let rotated = RotatedKeys {
            purpose,
            keys,
            dropped: plan.dropped,
        };
        let principal = operator.in_pool(slug);
        let event = self
            .event(
                &pool,
                AuditAction::SigningKeyRotated,
                Some(&principal),
                meta,
            )
            .subject(slug)
            .detail("purpose", purpose.as_str())
            .detail("kind", kind.as_str())
            .detail("current", rotated.kid(KeyState::Current).unwrap_or(""))
            .detail("next", rotated.kid(KeyState::Next).unwrap_or(""))
            .detail("dropped", rotated.dropped.join(" "));
        w.audit(&event).await?;
        if kind == RotationKind::Compromised && purpose == KeyPurpose::Access {
            // Every token the compromised key signed is refused here at once; a service
            // verifying locally may still hold the key, so it is told that every token of
            // the pool issued until now is void: the pool-wide kill switch.
            let void = self.security_event(
                pool.id,
                &crate::security_events::new_txn(),
                gatehouse_domain::security_event::EventKind::SessionRevoked {
                    initiating_entity: gatehouse_domain::security_event::InitiatingEntity::Admin,
                    reason_admin: format!("signing key rotation ({})", kind.as_str()),
                },
                gatehouse_domain::security_event::EventSubject::Pool,
            );
            w.append_security_events(std::slice::from_ref(&void))
                .await?;
        }
        w.commit().await?;
        self.keyring.forget(pool.id);
        Ok(rotated)
    }

    /// The key made ahead of the transaction if it still fits the settings read inside it,
    /// else a new one (the pool's algorithm changed in between).
    async fn made_or_new(
        &self,
        made: &mut Option<SigningKeyRecord>,
        settings: &PoolSettings,
        purpose: KeyPurpose,
        state: KeyState,
        pool: &Pool,
        now: Timestamp,
    ) -> ServiceResult<SigningKeyRecord> {
        let alg = purpose.alg(settings);
        match made.take() {
            Some(key) if key.alg == alg => Ok(key),
            _ => {
                self.keyring
                    .new_key(pool.id, purpose, alg, state, now)
                    .await
            }
        }
    }
}
