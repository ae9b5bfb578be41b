//! Building audit events, and reading the log.

use std::collections::BTreeMap;

use gatehouse_domain::audit::{AuditAction, AuditEvent, AuditQuery, Outcome, StoredAuditEvent};
use gatehouse_domain::ids::EventId;
use gatehouse_domain::permission::Permission;
use gatehouse_domain::pool::Pool;
use gatehouse_domain::session::Actor;

use crate::{Gatehouse, Principal, RequestMeta, ServiceResult};

impl Gatehouse {
    /// An event made by `principal` (or by Gatehouse itself when `None`).
    pub fn event(
        &self,
        pool: &Pool,
        action: AuditAction,
        principal: Option<&Principal>,
        meta: &RequestMeta,
    ) -> AuditEvent {
        AuditEvent {
            id: EventId::new_ordered(),
            pool: pool.id,
            at: self.now(),
            action,
            outcome: Outcome::Success,
            actor: principal.map(Principal::actor),
            subject: None,
            client_id: principal.and_then(|p| p.token.client_id.clone()),
            ip: meta.ip.clone(),
            impersonator: principal.and_then(Principal::impersonator),
            details: BTreeMap::new(),
        }
    }

    /// Reads the pool's audit log.
    pub async fn audit_events(
        &self,
        pool: &Pool,
        principal: &Principal,
        query: &AuditQuery,
    ) -> ServiceResult<Vec<StoredAuditEvent>> {
        principal.require(Permission::RetrieveAuditEvents)?;
        self.flush_audit().await;
        Ok(self.store.list_audit(pool.id, query).await?)
    }
}

/// Fluent additions to an event.
pub trait EventExt: Sized {
    fn subject(self, s: impl ToString) -> Self;
    fn detail(self, k: &str, v: impl ToString) -> Self;
    fn denied(self) -> Self;
    fn actor(self, a: Actor) -> Self;
}

impl EventExt for AuditEvent {
    fn subject(mut self, s: impl ToString) -> Self {
        self.subject = Some(s.to_string());
        self
    }
    fn detail(mut self, k: &str, v: impl ToString) -> Self {
        self.details.insert(k.to_owned(), v.to_string());
        self
    }
    fn denied(mut self) -> Self {
        self.outcome = Outcome::Denied;
        self
    }
    fn actor(mut self, a: Actor) -> Self {
        self.actor = Some(a);
        self
    }
}
