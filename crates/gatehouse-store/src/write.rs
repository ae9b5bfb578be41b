//! [`PoolWrite`] for [`SqlStore`]: one database transaction on one pool. Reads lock what they
//! return ([`Lock`]); every statement names the pool.

use async_trait::async_trait;
use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::authorization::{AuthorizationCode, CodeTaken, RefreshTaken, RefreshToken};
use gatehouse_domain::client::AppClient;
use gatehouse_domain::consent::Consent;
use gatehouse_domain::federation::{FederatedSession, IdentityProvider, ProviderName};
use gatehouse_domain::group::Group;
use gatehouse_domain::ids::{ClientId, GroupName, PoolId, SessionId, UserId, Username};
use gatehouse_domain::permission::PermissionSet;
use gatehouse_domain::pool::PoolSettings;
use gatehouse_domain::session::{RevokedToken, Session};
use gatehouse_domain::store::{SigningKeyRecord, StoreError, StoreResult};
use gatehouse_domain::time::Timestamp;
use gatehouse_domain::txn::{PoolWrite, SessionsToEnd};
use gatehouse_domain::user::{FederatedIdentity, User, VerifiableAttribute, VerificationCode};

use crate::connect::WriteTx;
use crate::error::ResultExt;
use crate::{
    Dialect, Lock, SqlStore, audit, authorization, backchannel, clients, consents, federation,
    groups, pools, security_events, sessions, users,
};

pub(crate) struct SqlWrite {
    tx: WriteTx,
    pool: PoolId,
    dialect: Dialect,
    lock: Lock,
    /// Pools whose sessions [`SessionsToEnd::ActedBy`] ended, which may take audit events.
    reached: Vec<PoolId>,
    /// Whether security events were appended: the commit rings the bell.
    appended: bool,
    bell: std::sync::Arc<crate::bell::Bell>,
}

impl SqlStore {
    pub(crate) async fn write_tx(&self, pool: PoolId) -> StoreResult<SqlWrite> {
        Ok(SqlWrite {
            tx: self.begin().await?,
            pool,
            dialect: self.dialect,
            lock: self.dialect.row_lock(),
            reached: Vec::new(),
            appended: false,
            bell: self.bell.clone(),
        })
    }
}

/// A value of another pool given to a pool's transaction: a bug, never the client's doing.
fn other_pool() -> StoreError {
    StoreError::Backend("a write transaction was given a value of another pool".to_owned())
}

impl SqlWrite {
    fn same_pool(&self, pool: PoolId) -> StoreResult<()> {
        if pool == self.pool {
            Ok(())
        } else {
            Err(other_pool())
        }
    }
}

#[async_trait]
impl PoolWrite for SqlWrite {
    fn pool(&self) -> PoolId {
        self.pool
    }

    async fn pool_settings(&mut self) -> StoreResult<PoolSettings> {
        pools::settings_in(&mut self.tx, self.pool, self.lock).await
    }

    async fn user_by_username(&mut self, username: &Username) -> StoreResult<Option<User>> {
        users::by_username(&mut *self.tx, self.pool, username, self.lock).await
    }

    async fn user_by_id(&mut self, id: UserId) -> StoreResult<Option<User>> {
        users::by_id(&mut *self.tx, self.pool, id, self.lock).await
    }

    async fn acting_user(&mut self, pool: PoolId, id: UserId) -> StoreResult<Option<User>> {
        users::by_id(&mut *self.tx, pool, id, self.lock).await
    }

    async fn user_by_identity(
        &mut self,
        provider_name: &str,
        provider_user_id: &str,
    ) -> StoreResult<Option<User>> {
        users::by_identity(
            &mut *self.tx,
            self.pool,
            provider_name,
            provider_user_id,
            self.lock,
        )
        .await
    }

    async fn groups_of_user(&mut self, user: UserId) -> StoreResult<Vec<Group>> {
        groups::of_user(&mut *self.tx, self.pool, user).await
    }

    async fn group(&mut self, name: &GroupName) -> StoreResult<Option<Group>> {
        groups::get_one(&mut *self.tx, self.pool, name, self.lock).await
    }

    async fn session(&mut self, id: SessionId) -> StoreResult<Option<Session>> {
        sessions::get_one(&mut *self.tx, self.pool, id, self.lock).await
    }

    async fn client(&mut self, id: &ClientId) -> StoreResult<Option<AppClient>> {
        clients::get_one(&mut *self.tx, self.pool, id, self.lock).await
    }

    async fn consent(&mut self, user: UserId, client: &ClientId) -> StoreResult<Option<Consent>> {
        consents::get_one(&mut *self.tx, self.pool, user, client, self.lock).await
    }

    async fn put_consent(&mut self, consent: &Consent) -> StoreResult<()> {
        self.same_pool(consent.pool)?;
        consents::put_in(&mut self.tx, consent).await
    }

    async fn delete_consent(&mut self, user: UserId, client: &ClientId) -> StoreResult<bool> {
        consents::delete_in(&mut self.tx, self.pool, user, client).await
    }

    async fn signing_keys(&mut self) -> StoreResult<Vec<SigningKeyRecord>> {
        pools::signing_keys_in(&mut self.tx, self.pool).await
    }

    async fn put_authorization_code(&mut self, code: &AuthorizationCode) -> StoreResult<()> {
        self.same_pool(code.pool)?;
        authorization::put_code_in(&mut self.tx, code).await
    }

    async fn take_authorization_code(
        &mut self,
        code_sha256: &[u8; 32],
        at: Timestamp,
    ) -> StoreResult<CodeTaken> {
        authorization::take_code_in(&mut self.tx, self.pool, code_sha256, at).await
    }

    async fn set_code_issued_session(
        &mut self,
        code_sha256: &[u8; 32],
        session: SessionId,
    ) -> StoreResult<()> {
        authorization::set_code_issued_in(&mut self.tx, self.pool, code_sha256, session).await
    }

    async fn put_refresh_token(&mut self, token: &RefreshToken) -> StoreResult<()> {
        self.same_pool(token.pool)?;
        authorization::put_refresh_in(&mut self.tx, token).await
    }

    async fn take_refresh_token(
        &mut self,
        token_sha256: &[u8; 32],
        at: Timestamp,
    ) -> StoreResult<RefreshTaken> {
        authorization::take_refresh_in(&mut self.tx, self.pool, token_sha256, at).await
    }

    async fn replace_signing_keys(&mut self, keys: &[SigningKeyRecord]) -> StoreResult<()> {
        pools::replace_keys_in(&mut self.tx, self.pool, keys).await
    }

    async fn update_pool_settings(&mut self, settings: &PoolSettings) -> StoreResult<()> {
        pools::update_settings_in(&mut self.tx, self.pool, settings).await
    }

    async fn update_user(&mut self, user: &User) -> StoreResult<()> {
        self.same_pool(user.pool)?;
        users::update_in(&mut self.tx, user).await
    }

    async fn delete_user(&mut self, id: UserId) -> StoreResult<()> {
        users::delete_in(&mut self.tx, self.pool, id).await
    }

    async fn update_group(&mut self, group: &Group) -> StoreResult<()> {
        self.same_pool(group.pool)?;
        groups::update_in(&mut self.tx, group).await
    }

    async fn delete_group(&mut self, name: &GroupName) -> StoreResult<()> {
        groups::delete_in(&mut self.tx, self.pool, name).await
    }

    async fn set_user_groups(&mut self, user: UserId, names: &[GroupName]) -> StoreResult<()> {
        groups::set_user_groups_in(&mut self.tx, self.pool, user, names).await
    }

    async fn update_client(&mut self, client: &AppClient) -> StoreResult<()> {
        self.same_pool(client.pool)?;
        clients::update_in(&mut self.tx, client).await
    }

    async fn delete_client(&mut self, id: &ClientId) -> StoreResult<()> {
        clients::delete_in(&mut self.tx, self.pool, id).await
    }

    async fn count_code_sent(
        &mut self,
        key: &str,
        now: Timestamp,
        window_secs: i64,
        max: u32,
    ) -> StoreResult<Result<(), Timestamp>> {
        users::count_code_sent(&mut self.tx, self.pool, key, now, window_secs, max).await
    }

    async fn clear_sign_in_failures(&mut self, username: &Username) -> StoreResult<bool> {
        crate::lockout::clear_in(&mut self.tx, self.pool, username).await
    }

    async fn create_user(&mut self, user: &User) -> StoreResult<()> {
        self.same_pool(user.pool)?;
        users::insert_in(&mut self.tx, user).await
    }

    async fn link_identity(&mut self, link: &FederatedIdentity) -> StoreResult<()> {
        self.same_pool(link.pool)?;
        users::link_in(&mut self.tx, link).await
    }

    async fn identities_of_user(&mut self, user: UserId) -> StoreResult<Vec<FederatedIdentity>> {
        federation::identities_in(&mut self.tx, self.pool, user).await
    }

    async fn put_hook(&mut self, hook: &gatehouse_domain::hooks::Hook) -> StoreResult<()> {
        self.same_pool(hook.pool)?;
        crate::hooks::put_in(&mut self.tx, hook).await
    }

    async fn delete_hook(
        &mut self,
        trigger: gatehouse_domain::hooks::Trigger,
    ) -> StoreResult<bool> {
        crate::hooks::delete_in(&mut self.tx, self.pool, trigger).await
    }

    async fn identity_provider(
        &mut self,
        name: &ProviderName,
    ) -> StoreResult<Option<IdentityProvider>> {
        federation::get_one(&mut *self.tx, self.pool, name, self.lock).await
    }

    async fn standing_of_linked_users(
        &mut self,
        name: &ProviderName,
    ) -> StoreResult<PermissionSet> {
        federation::standing_of_linked_users(&mut self.tx, self.pool, name).await
    }

    async fn create_identity_provider(&mut self, idp: &IdentityProvider) -> StoreResult<()> {
        self.same_pool(idp.pool)?;
        federation::create_in(&mut self.tx, idp).await
    }

    async fn update_identity_provider(&mut self, idp: &IdentityProvider) -> StoreResult<()> {
        self.same_pool(idp.pool)?;
        federation::update_in(&mut self.tx, idp).await
    }

    async fn delete_identity_provider(&mut self, name: &ProviderName) -> StoreResult<bool> {
        federation::delete_in(&mut self.tx, self.pool, name).await
    }

    async fn put_federated_session(&mut self, session: &FederatedSession) -> StoreResult<()> {
        self.same_pool(session.pool)?;
        federation::put_session_in(&mut self.tx, session).await
    }

    async fn federated_sessions_of(
        &mut self,
        provider: &ProviderName,
        subject: &str,
    ) -> StoreResult<Vec<FederatedSession>> {
        federation::sessions_of_in(&mut self.tx, self.pool, provider, subject).await
    }

    async fn put_verification_code(&mut self, code: &VerificationCode) -> StoreResult<()> {
        self.same_pool(code.pool)?;
        users::put_code(&mut *self.tx, code).await
    }

    async fn take_verification_code(
        &mut self,
        user: UserId,
        attribute: VerifiableAttribute,
    ) -> StoreResult<Option<VerificationCode>> {
        users::take_code(&mut *self.tx, self.pool, user, attribute).await
    }

    async fn totp_credential(
        &mut self,
        user: UserId,
    ) -> StoreResult<Option<gatehouse_domain::mfa::TotpCredential>> {
        crate::mfa::totp_in(&mut self.tx, self.pool, user).await
    }

    async fn put_totp_credential(
        &mut self,
        credential: &gatehouse_domain::mfa::TotpCredential,
    ) -> StoreResult<()> {
        self.same_pool(credential.pool)?;
        crate::mfa::put_totp_in(&mut self.tx, credential).await
    }

    async fn accept_totp_step(
        &mut self,
        user: UserId,
        step: i64,
        confirm: Option<Timestamp>,
    ) -> StoreResult<bool> {
        crate::mfa::accept_step_in(&mut self.tx, self.pool, user, step, confirm).await
    }

    async fn replace_recovery_codes(
        &mut self,
        user: UserId,
        digests: &[String],
    ) -> StoreResult<()> {
        crate::mfa::replace_recovery_codes_in(&mut self.tx, self.pool, user, digests).await
    }

    async fn take_recovery_code(&mut self, user: UserId, digest: &str) -> StoreResult<bool> {
        crate::mfa::take_recovery_code_in(&mut self.tx, self.pool, user, digest).await
    }

    async fn remove_mfa_factors(&mut self, user: UserId) -> StoreResult<bool> {
        crate::mfa::remove_factors_in(&mut self.tx, self.pool, user).await
    }

    async fn passkeys_of_user(
        &mut self,
        user: UserId,
    ) -> StoreResult<Vec<gatehouse_domain::passkey::PasskeyCredential>> {
        crate::passkeys::of_user_in(&mut self.tx, self.lock, self.pool, user).await
    }

    async fn passkey(
        &mut self,
        credential_id: &str,
    ) -> StoreResult<Option<gatehouse_domain::passkey::PasskeyCredential>> {
        crate::passkeys::by_id_in(&mut self.tx, self.lock, self.pool, credential_id).await
    }

    async fn add_passkey(
        &mut self,
        passkey: &gatehouse_domain::passkey::PasskeyCredential,
    ) -> StoreResult<()> {
        self.same_pool(passkey.pool)?;
        crate::passkeys::add_in(&mut self.tx, passkey).await
    }

    async fn record_passkey_use(
        &mut self,
        used: &gatehouse_domain::passkey::PasskeyUse,
    ) -> StoreResult<bool> {
        crate::passkeys::record_use_in(&mut self.tx, self.pool, used).await
    }

    async fn delete_passkey(&mut self, user: UserId, credential_id: &str) -> StoreResult<bool> {
        crate::passkeys::delete_in(&mut self.tx, self.pool, user, credential_id).await
    }

    async fn put_ceremony(
        &mut self,
        ceremony: &gatehouse_domain::passkey::Ceremony,
    ) -> StoreResult<()> {
        self.same_pool(ceremony.pool)?;
        crate::passkeys::put_ceremony_in(&mut self.tx, ceremony).await
    }

    async fn take_ceremony(
        &mut self,
        handle_sha256: &[u8; 32],
        now: Timestamp,
    ) -> StoreResult<Option<gatehouse_domain::passkey::Ceremony>> {
        crate::passkeys::take_ceremony_in(&mut self.tx, self.pool, handle_sha256, now).await
    }

    async fn create_session(&mut self, session: &Session) -> StoreResult<()> {
        self.same_pool(session.pool)?;
        sessions::create_in(&mut self.tx, session).await
    }

    async fn end_sessions(
        &mut self,
        which: &SessionsToEnd,
        at: Timestamp,
    ) -> StoreResult<Vec<Session>> {
        let ended = sessions::end_in(&mut self.tx, self.pool, which, at).await?;
        if matches!(which, SessionsToEnd::ActedBy { .. }) {
            self.reached.extend(ended.iter().map(|s| s.pool));
        }
        Ok(ended)
    }

    async fn use_once(
        &mut self,
        id: &str,
        at: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<bool> {
        let used = RevokedToken {
            pool: self.pool,
            jti: id.to_owned(),
            expires_at,
            revoked_at: at,
        };
        sessions::revoke_token_in(&mut self.tx, self.dialect, &used).await
    }

    async fn revoke_token(&mut self, token: &RevokedToken) -> StoreResult<()> {
        self.same_pool(token.pool)?;
        sessions::revoke_token_in(&mut self.tx, self.dialect, token)
            .await
            .map(|_| ())
    }

    async fn append_security_events(
        &mut self,
        events: &[gatehouse_domain::security_event::SecurityEvent],
    ) -> StoreResult<Vec<i64>> {
        // Like audit events, an event may go to a pool this transaction reached (an actor's
        // sessions ended there); pools are taken in one order, so that two transactions
        // reaching the same pools queue instead of deadlocking.
        let mut order: Vec<usize> = (0..events.len()).collect();
        order.sort_by_key(|&i| (events[i].pool != self.pool, events[i].pool));
        let mut seqs = vec![0; events.len()];
        for i in order {
            let event = &events[i];
            if event.pool != self.pool && !self.reached.contains(&event.pool) {
                return Err(other_pool());
            }
            let seq = security_events::append_in(
                &mut self.tx,
                self.dialect,
                event.pool,
                std::slice::from_ref(event),
            )
            .await?;
            seqs[i] = seq[0];
            self.appended = true;
        }
        Ok(seqs)
    }

    async fn backchannel_cursor(&mut self) -> StoreResult<i64> {
        backchannel::cursor_in(&mut self.tx, self.dialect, self.pool).await
    }

    async fn set_backchannel_cursor(&mut self, seq: i64) -> StoreResult<()> {
        backchannel::set_cursor_in(&mut self.tx, self.pool, seq).await
    }

    async fn security_events_after(
        &mut self,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<gatehouse_domain::security_event::StoredSecurityEvent>> {
        security_events::after_in(&mut *self.tx, self.pool, after, limit).await
    }

    async fn put_backchannel_deliveries(
        &mut self,
        deliveries: &[gatehouse_domain::backchannel::Delivery],
    ) -> StoreResult<()> {
        for d in deliveries {
            self.same_pool(d.pool)?;
        }
        backchannel::put_in(&mut self.tx, deliveries).await
    }

    async fn claim_backchannel_deliveries(
        &mut self,
        now: Timestamp,
        lease_id: &str,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<gatehouse_domain::backchannel::Delivery>> {
        backchannel::claim_in(
            &mut self.tx,
            self.dialect,
            self.pool,
            now,
            lease_id,
            lease_until,
            limit,
        )
        .await
    }

    async fn finish_backchannel_delivery(
        &mut self,
        delivery: &gatehouse_domain::backchannel::Delivery,
        lease_id: &str,
    ) -> StoreResult<bool> {
        self.same_pool(delivery.pool)?;
        backchannel::finish_in(&mut self.tx, delivery, lease_id).await
    }

    async fn audit(&mut self, event: &AuditEvent) -> StoreResult<()> {
        if event.pool != self.pool && !self.reached.contains(&event.pool) {
            return Err(other_pool());
        }
        audit::insert(&mut self.tx, event).await
    }

    async fn commit(self: Box<Self>) -> StoreResult<()> {
        let SqlWrite {
            tx, appended, bell, ..
        } = *self;
        tx.commit().await.store()?;
        if appended {
            bell.ring();
        }
        Ok(())
    }
}
