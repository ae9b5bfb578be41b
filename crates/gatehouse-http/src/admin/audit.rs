//! `GET /api/audit/events`: the pool's audit log, oldest first, filtered and paged by `seq`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use gatehouse_domain::audit::{AuditAction, AuditQuery, StoredAuditEvent};
use gatehouse_domain::time::Timestamp;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::wire::ActorView;
use super::{ApiQuery, next_link};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Authenticated, PageQuery, PoolCtx};

/// Filters of the audit listing. Unknown parameters are refused, so that a mistyped filter
/// cannot silently widen the result.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    action: Option<String>,
    actor: Option<String>,
    subject: Option<String>,
    impersonator: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct EventView {
    id: String,
    seq: i64,
    time: String,
    action: &'static str,
    outcome: &'static str,
    actor: Option<ActorView>,
    subject: Option<String>,
    client_id: Option<String>,
    ip: Option<String>,
    impersonator: Option<ActorView>,
    details: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
struct EventPage {
    events: Vec<EventView>,
    next: String,
}

impl From<&StoredAuditEvent> for EventView {
    fn from(s: &StoredAuditEvent) -> Self {
        let e = &s.event;
        Self {
            id: e.id.to_string(),
            seq: s.seq,
            time: e.at.to_rfc3339(),
            action: e.action.as_str(),
            outcome: e.outcome.as_str(),
            actor: e.actor.as_ref().map(ActorView::from),
            subject: e.subject.clone(),
            client_id: e.client_id.as_ref().map(ToString::to_string),
            ip: e.ip.clone(),
            impersonator: e.impersonator.as_ref().map(ActorView::from),
            details: e.details.clone(),
        }
    }
}

/// An instant given as Unix seconds or as an RFC 3339 date-time.
fn parse_instant(field: &str, v: &str) -> Result<Timestamp, ApiError> {
    if let Ok(secs) = v.parse::<i64>() {
        return Ok(Timestamp(secs));
    }
    OffsetDateTime::parse(v, &Rfc3339)
        .map(|t| Timestamp(t.unix_timestamp()))
        .map_err(|_| {
            ApiError::bad_request(format!(
                "{field}: must be Unix seconds or an RFC 3339 date-time"
            ))
        })
}

/// A filter value: present and not empty.
fn non_empty(v: Option<&String>) -> Option<String> {
    v.filter(|s| !s.is_empty()).cloned()
}

impl AuditParams {
    fn to_query(&self, limit: u32) -> Result<AuditQuery, ApiError> {
        let action =
            match self.action.as_deref().filter(|s| !s.is_empty()) {
                None => None,
                Some(a) => Some(AuditAction::parse(a).ok_or_else(|| {
                    ApiError::bad_request(format!("action: unknown action '{a}'"))
                })?),
            };
        let after_seq = match self.cursor.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(c) => Some(
                c.parse::<i64>()
                    .map_err(|_| ApiError::bad_request("cursor: not a valid cursor"))?,
            ),
        };
        Ok(AuditQuery {
            action,
            actor_id: non_empty(self.actor.as_ref()),
            subject: non_empty(self.subject.as_ref()),
            impersonator_id: non_empty(self.impersonator.as_ref()),
            since: self
                .since
                .as_deref()
                .map(|v| parse_instant("since", v))
                .transpose()?,
            until: self
                .until
                .as_deref()
                .map(|v| parse_instant("until", v))
                .transpose()?,
            after_seq,
            // One more than asked for, to learn whether another page follows.
            limit: limit + 1,
        })
    }

    /// The filters as given, to carry into the `next` link.
    fn filters(&self) -> Vec<(&'static str, &str)> {
        [
            ("action", &self.action),
            ("actor", &self.actor),
            ("subject", &self.subject),
            ("impersonator", &self.impersonator),
            ("since", &self.since),
            ("until", &self.until),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
        .collect()
    }
}

pub async fn events(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Response, ApiError> {
    let limit = PageQuery {
        cursor: None,
        limit: params.limit.clone(),
    }
    .limit()?;
    let query = params.to_query(limit)?;
    let mut found = state.gh.audit_events(&pool, &caller, &query).await?;
    let more = found.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let cursor = found.last().filter(|_| more).map(|e| e.seq.to_string());
    let next = next_link(
        &state,
        &pool,
        &["audit", "events"],
        cursor.as_deref(),
        limit,
        &params.filters(),
    )?;
    Ok(Json(EventPage {
        events: found.iter().map(EventView::from).collect(),
        next,
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_seconds_or_rfc3339() {
        assert_eq!(
            parse_instant("since", "1700000000").unwrap(),
            Timestamp(1_700_000_000)
        );
        assert_eq!(
            parse_instant("since", "2023-11-14T22:13:20Z").unwrap(),
            Timestamp(1_700_000_000)
        );
        assert_eq!(
            parse_instant("since", "2023-11-14T23:13:20+01:00").unwrap(),
            Timestamp(1_700_000_000)
        );
        assert!(parse_instant("since", "yesterday").is_err());
    }

    #[test]
    fn params_become_a_query() {
        let p = AuditParams {
            action: Some("user.created".into()),
            actor: Some("abc".into()),
            subject: Some(String::new()),
            cursor: Some("41".into()),
            ..AuditParams::default()
        };
        let q = p.to_query(10).unwrap();
        assert_eq!(q.action, Some(AuditAction::UserCreated));
        assert_eq!(q.actor_id.as_deref(), Some("abc"));
        assert_eq!(q.subject, None);
        assert_eq!(q.after_seq, Some(41));
        assert_eq!(q.limit, 11);
        let bad = AuditParams {
            action: Some("user.exploded".into()),
            ..AuditParams::default()
        };
        assert!(bad.to_query(10).is_err());
    }

    #[test]
    fn times_render_as_rfc3339() {
        assert_eq!(
            Timestamp(1_700_000_000).to_rfc3339(),
            "2023-11-14T22:13:20Z"
        );
    }
}
