//! Rotating a pool's signing keys (the operator's command line). The rules are in
//! [`gatehouse_domain::rotation`]; here they run inside one write transaction that reads the
//! keys it replaces.

use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::ids::PoolSlug;
use gatehouse_domain::rotation::{self, RotationKind, RotationRefused};
use gatehouse_domain::store::{KeyState, SigningKeyRecord};

use crate::audit::EventExt;
use crate::error::{ServiceError, ServiceResult};
use crate::{Gatehouse, Operator, RequestMeta};

/// How long after a key stopped signing, beyond the longest token lifetime, it stays
/// published: other instances keep signing with it until they reload the keys (seconds), and
/// clocks differ a little.
const KEEP_PREVIOUS_MARGIN_SECS: i64 = 60;

/// The pool's keys after a rotation, and those it dropped.
#[derive(Debug, Clone)]
pub struct RotatedKeys {
    pub keys: Vec<SigningKeyRecord>,
    pub dropped: Vec<String>,
}

impl RotatedKeys {
    /// The key id in `state`, if any.
    pub fn kid(&self, state: KeyState) -> Option<&str> {
        self.keys
            .iter()
            .find(|k| k.state == state)
            .map(|k| k.kid.as_str())
    }
}

impl Gatehouse {
    /// The pool's signing keys as stored (never their private parts), oldest first.
    pub async fn signing_keys_as_operator(
        &self,
        slug: &PoolSlug,
    ) -> ServiceResult<Vec<SigningKeyRecord>> {
        let pool = self.pool(slug).await?;
        Ok(self.store.signing_keys(pool.id).await?)
    }

    /// Rotates the pool's signing keys one step: the next key (published ahead) signs, the
    /// current one stays published as the previous one until tokens it signed have expired,
    /// and a fresh next key is published. See [`RotationKind`] for forced rotations and
    /// compromised keys. New keys use the pool's configured algorithm.
    pub async fn rotate_signing_key_as_operator(
        &self,
        operator: &Operator,
        slug: &PoolSlug,
        kind: RotationKind,
        meta: &RequestMeta,
    ) -> ServiceResult<RotatedKeys> {
        let pool = self.pool(slug).await?;
        let mut w = self.store.write(pool.id).await?;
        let settings = w.pool_settings().await?;
        let keys = w.signing_keys().await?;
        let now = self.now();
        let keep_previous_secs = i64::from(
            settings
                .access_token_ttl_secs
                .max(settings.max_impersonation_ttl_secs),
        ) + KEEP_PREVIOUS_MARGIN_SECS;
        let plan = rotation::rotate(keys, now, keep_previous_secs, kind).map_err(|e| match e {
            RotationRefused::PreviousStillVerifying { kid, until } => {
                ServiceError::Conflict(format!(
                    "the previous key {kid} still verifies tokens it signed for another {} s; \
                     rotate after that, or force the rotation, which refuses those tokens now",
                    until.as_secs() - now.as_secs()
                ))
            }
            RotationRefused::NoCurrentKey => {
                ServiceError::internal(format!("pool {slug} has no current signing key"))
            }
        })?;
        let mut keys = plan.kept;
        if plan.needs_current {
            keys.push(self.keyring.new_key(
                pool.id,
                settings.signing_alg,
                KeyState::Current,
                now,
            )?);
        }
        keys.push(
            self.keyring
                .new_key(pool.id, settings.signing_alg, KeyState::Next, now)?,
        );
        w.replace_signing_keys(&keys).await?;
        let rotated = RotatedKeys {
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
            .detail("kind", kind.as_str())
            .detail("current", rotated.kid(KeyState::Current).unwrap_or(""))
            .detail("next", rotated.kid(KeyState::Next).unwrap_or(""))
            .detail("dropped", rotated.dropped.join(" "));
        w.audit(&event).await?;
        w.commit().await?;
        self.keyring.forget(pool.id);
        Ok(rotated)
    }
}
