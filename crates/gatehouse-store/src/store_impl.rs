//! [`Store`] for [`SqlStore`]: each method hands over to the module of its concern.

use async_trait::async_trait;
use gatehouse_domain::audit::{AuditEvent, AuditQuery, StoredAuditEvent};
use gatehouse_domain::client::AppClient;
use gatehouse_domain::consent::Consent;
use gatehouse_domain::group::Group;
use gatehouse_domain::ids::{ClientId, GroupName, PoolId, PoolSlug, SessionId, UserId, Username};
use gatehouse_domain::lockout::{LockoutPolicy, SignInFailures};
use gatehouse_domain::pool::{HostName, Pool};
use gatehouse_domain::retention::{PurgeCounts, PurgePolicy};
use gatehouse_domain::session::{Revocation, RevokedToken, Session};
use gatehouse_domain::store::{SessionFilter, SigningKeyRecord, Store, StoreError, StoreResult};
use gatehouse_domain::time::Timestamp;
use gatehouse_domain::txn::{
    ImpersonationOutcome, ImpersonationRules, PoolWrite, SessionsToEnd, Standing,
};
use gatehouse_domain::user::{FederatedIdentity, User, VerifiableAttribute, VerificationCode};

use crate::{
    Lock, SqlStore, audit, clients, consents, groups, lockout, pools, purge, security_events,
    sessions, users,
};

/// A single-change write: one transaction with its audit event, through [`PoolWrite`].
macro_rules! write_once {
    ($store:expr, $pool:expr, $audit:expr, |$w:ident| $change:expr) => {{
        let mut $w = $store.write_tx($pool).await?;
        let out = $change;
        $w.audit($audit).await?;
        Box::new($w).commit().await?;
        Ok(out)
    }};
}

#[async_trait]
impl Store for SqlStore {
    async fn write(&self, pool: PoolId) -> StoreResult<Box<dyn PoolWrite>> {
        Ok(Box::new(self.write_tx(pool).await?))
    }

    async fn start_impersonation(
        &self,
        pool: PoolId,
        target: &Username,
        standing: Standing,
        rules: ImpersonationRules,
    ) -> StoreResult<ImpersonationOutcome> {
        self.start_impersonation_in(pool, target, standing, rules)
            .await
    }

    async fn create_pool(
        &self,
        pool: &Pool,
        keys: &[SigningKeyRecord],
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        pools::create(self, pool, keys, audit).await
    }

    async fn pool_by_slug(&self, slug: &PoolSlug) -> StoreResult<Option<Pool>> {
        pools::by_slug(self, slug).await
    }

    async fn pool_by_host(&self, host: &HostName) -> StoreResult<Option<Pool>> {
        pools::by_host(self, host).await
    }

    async fn list_pools(&self) -> StoreResult<Vec<Pool>> {
        pools::list(self, None, None).await
    }

    async fn list_pools_page(
        &self,
        after: Option<&PoolSlug>,
        limit: u32,
    ) -> StoreResult<Vec<Pool>> {
        pools::list(self, after, Some(limit)).await
    }

    async fn set_pool_hosts(
        &self,
        pool: PoolId,
        hosts: &[HostName],
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        pools::set_hosts(self, pool, hosts, audit).await
    }

    async fn signing_keys(&self, pool: PoolId) -> StoreResult<Vec<SigningKeyRecord>> {
        pools::signing_keys(self, pool).await
    }

    async fn delete_pool(&self, pool: PoolId, audit: &AuditEvent) -> StoreResult<()> {
        pools::delete(self, pool, audit).await
    }

    async fn create_user(&self, user: &User, audit: &AuditEvent) -> StoreResult<()> {
        write_once!(self, user.pool, audit, |w| w.create_user(user).await?)
    }

    async fn user_by_username(
        &self,
        pool: PoolId,
        username: &Username,
    ) -> StoreResult<Option<User>> {
        users::by_username(&self.pool, pool, username, Lock::None).await
    }

    async fn user_by_id(&self, pool: PoolId, id: UserId) -> StoreResult<Option<User>> {
        users::by_id(&self.pool, pool, id, Lock::None).await
    }

    async fn list_users(
        &self,
        pool: PoolId,
        after: Option<&Username>,
        limit: u32,
    ) -> StoreResult<Vec<User>> {
        users::list(self, pool, after, limit).await
    }

    async fn delete_user(&self, pool: PoolId, id: UserId, audit: &AuditEvent) -> StoreResult<()> {
        write_once!(self, pool, audit, |w| w.delete_user(id).await?)
    }

    async fn link_identity(&self, link: &FederatedIdentity, audit: &AuditEvent) -> StoreResult<()> {
        write_once!(self, link.pool, audit, |w| w.link_identity(link).await?)
    }

    async fn identities_of_user(
        &self,
        pool: PoolId,
        id: UserId,
    ) -> StoreResult<Vec<FederatedIdentity>> {
        users::identities(self, pool, id).await
    }

    async fn put_verification_code(&self, code: &VerificationCode) -> StoreResult<()> {
        users::put_code(&self.pool, code).await
    }

    async fn sign_in_failures(
        &self,
        pool: PoolId,
        username: &Username,
    ) -> StoreResult<Option<SignInFailures>> {
        lockout::get(self, pool, username).await
    }

    async fn record_sign_in_failure(
        &self,
        pool: PoolId,
        username: &Username,
        now: Timestamp,
        policy: &LockoutPolicy,
    ) -> StoreResult<SignInFailures> {
        lockout::record(self, pool, username, now, policy).await
    }

    async fn clear_sign_in_failures(&self, pool: PoolId, username: &Username) -> StoreResult<()> {
        lockout::clear(self, pool, username).await
    }

    async fn take_verification_code(
        &self,
        pool: PoolId,
        user: UserId,
        attribute: VerifiableAttribute,
    ) -> StoreResult<Option<VerificationCode>> {
        users::take_code(&self.pool, pool, user, attribute).await
    }

    async fn create_group(&self, group: &Group, audit: &AuditEvent) -> StoreResult<()> {
        groups::create(self, group, audit).await
    }

    async fn group(&self, pool: PoolId, name: &GroupName) -> StoreResult<Option<Group>> {
        groups::get_one(&self.pool, pool, name, Lock::None).await
    }

    async fn list_groups(
        &self,
        pool: PoolId,
        after: Option<&GroupName>,
        limit: u32,
    ) -> StoreResult<Vec<Group>> {
        groups::list(self, pool, after, limit).await
    }

    async fn delete_group(
        &self,
        pool: PoolId,
        name: &GroupName,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        write_once!(self, pool, audit, |w| w.delete_group(name).await?)
    }

    async fn groups_of_user(&self, pool: PoolId, user: UserId) -> StoreResult<Vec<Group>> {
        groups::of_user(&self.pool, pool, user).await
    }

    async fn set_user_groups(
        &self,
        pool: PoolId,
        user: UserId,
        groups: &[GroupName],
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        write_once!(self, pool, audit, |w| w
            .set_user_groups(user, groups)
            .await?)
    }

    async fn users_in_group(
        &self,
        pool: PoolId,
        group: &GroupName,
        after: Option<&Username>,
        limit: u32,
    ) -> StoreResult<Vec<User>> {
        groups::members(self, pool, group, after, limit).await
    }

    async fn create_client(&self, client: &AppClient, audit: &AuditEvent) -> StoreResult<()> {
        clients::create(self, client, audit).await
    }

    async fn client(&self, pool: PoolId, id: &ClientId) -> StoreResult<Option<AppClient>> {
        clients::get_one(&self.pool, pool, id, Lock::None).await
    }

    async fn list_clients(&self, pool: PoolId) -> StoreResult<Vec<AppClient>> {
        clients::list(self, pool).await
    }

    async fn delete_client(
        &self,
        pool: PoolId,
        id: &ClientId,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        write_once!(self, pool, audit, |w| w.delete_client(id).await?)
    }

    async fn consents_of_user(&self, pool: PoolId, user: UserId) -> StoreResult<Vec<Consent>> {
        consents::of_user(&self.pool, pool, user).await
    }

    async fn create_session(&self, session: &Session, audit: &AuditEvent) -> StoreResult<()> {
        write_once!(self, session.pool, audit, |w| w
            .create_session(session)
            .await?)
    }

    async fn session(&self, pool: PoolId, id: SessionId) -> StoreResult<Option<Session>> {
        sessions::get_one(&self.pool, pool, id, Lock::None).await
    }

    async fn list_sessions(
        &self,
        pool: PoolId,
        filter: SessionFilter,
    ) -> StoreResult<Vec<Session>> {
        sessions::list(self, pool, filter).await
    }

    async fn revoke_session(
        &self,
        pool: PoolId,
        id: SessionId,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        write_once!(self, pool, audit, |w| {
            let ended = w.end_sessions(&SessionsToEnd::One(id), at).await?;
            if ended.is_empty() {
                return Err(StoreError::NotFound);
            }
        })
    }

    async fn revoke_token(&self, token: &RevokedToken, audit: &AuditEvent) -> StoreResult<()> {
        write_once!(self, token.pool, audit, |w| w.revoke_token(token).await?)
    }

    async fn is_token_revoked(&self, pool: PoolId, jti: &str) -> StoreResult<bool> {
        sessions::is_token_revoked(self, pool, jti).await
    }

    async fn revocations_after(
        &self,
        pool: PoolId,
        after: i64,
        now: Timestamp,
    ) -> StoreResult<Vec<Revocation>> {
        sessions::revocations_after(self, pool, after, now).await
    }

    async fn security_events_after(
        &self,
        pool: PoolId,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<gatehouse_domain::security_event::StoredSecurityEvent>> {
        security_events::after(self, pool, after, limit).await
    }

    async fn latest_security_event(&self, pool: PoolId) -> StoreResult<i64> {
        security_events::latest(self, pool).await
    }

    async fn security_event_horizon(&self, pool: PoolId) -> StoreResult<i64> {
        security_events::horizon(self, pool).await
    }

    async fn security_events_in_effect(
        &self,
        pool: PoolId,
        since: Timestamp,
        up_to: i64,
    ) -> StoreResult<Vec<gatehouse_domain::security_event::StoredSecurityEvent>> {
        security_events::in_effect(self, pool, since, up_to).await
    }

    async fn backchannel_cursor(&self, pool: PoolId) -> StoreResult<i64> {
        crate::backchannel::cursor(self, pool).await
    }

    async fn backchannel_due(&self, pool: PoolId, now: Timestamp) -> StoreResult<bool> {
        crate::backchannel::due(self, pool, now).await
    }

    async fn backchannel_deliveries(
        &self,
        pool: PoolId,
        client: &ClientId,
        limit: u32,
    ) -> StoreResult<Vec<gatehouse_domain::backchannel::Delivery>> {
        crate::backchannel::of_client(self, pool, client, limit).await
    }

    fn security_event_mark(&self) -> u64 {
        self.bell.mark()
    }

    async fn security_events_committed(&self, mark: u64) -> u64 {
        self.bell.rung_since(mark).await
    }

    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        audit::append(self, event).await
    }

    async fn append_audit_batch(&self, events: &[AuditEvent]) -> StoreResult<()> {
        audit::append_many(self, events).await
    }

    async fn list_audit(
        &self,
        pool: PoolId,
        query: &AuditQuery,
    ) -> StoreResult<Vec<StoredAuditEvent>> {
        audit::list(self, pool, query).await
    }

    async fn purge_expired(
        &self,
        now: Timestamp,
        policy: &PurgePolicy,
    ) -> StoreResult<PurgeCounts> {
        purge::purge_expired(self, now, policy).await
    }
}
