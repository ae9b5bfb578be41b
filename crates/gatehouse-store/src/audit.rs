//! The append-only audit log.

use gatehouse_domain::audit::{AuditAction, AuditEvent, AuditQuery, Outcome, StoredAuditEvent};
use gatehouse_domain::ids::{ClientId, EventId, PoolId};
use gatehouse_domain::session::Actor;
use gatehouse_domain::store::StoreResult;
use gatehouse_domain::time::Timestamp;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::SqlStore;
use crate::error::ResultExt;
use crate::rows::{Param, bind_all, get, json, opt_json, opt_parsed, parsed, to_json};

const COLUMNS: &str = "seq, id, pool_id, at, action, outcome, actor, subject, client_id, ip, \
                       impersonator, details";

/// Appends `event` on `conn`, inside the caller's transaction when there is one.
pub(crate) async fn insert(conn: &mut AnyConnection, event: &AuditEvent) -> StoreResult<()> {
    let params = insert_params(event)?;
    bind_all(sqlx::query(INSERT), &params)
        .execute(&mut *conn)
        .await
        .conflict("an audit event with this id already exists")?;
    Ok(())
}

/// The statement that appends an event, with [`insert_params`].
pub(crate) const INSERT: &str = "INSERT INTO audit_events (id, pool_id, at, action, outcome, actor, actor_id, subject, \
     client_id, ip, impersonator, impersonator_id, details) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

pub(crate) fn insert_params(event: &AuditEvent) -> StoreResult<Vec<Param>> {
    Ok(vec![
        Param::text(event.id.to_string()),
        Param::text(event.pool.to_string()),
        Param::Int(Some(event.at.as_secs())),
        Param::text(event.action.as_str()),
        Param::text(event.outcome.as_str()),
        Param::Text(event.actor.as_ref().map(to_json).transpose()?),
        Param::opt_text(event.actor.as_ref().map(|a| a.id.clone())),
        Param::opt_text(event.subject.as_deref()),
        Param::opt_text(event.client_id.as_ref().map(ClientId::as_str)),
        Param::opt_text(event.ip.as_deref()),
        Param::Text(event.impersonator.as_ref().map(to_json).transpose()?),
        Param::opt_text(event.impersonator.as_ref().map(|a| a.id.clone())),
        Param::text(to_json(&event.details)?),
    ])
}

pub(crate) async fn append(store: &SqlStore, event: &AuditEvent) -> StoreResult<()> {
    let mut conn = store.pool.acquire().await.store()?;
    insert(&mut conn, event).await
}

/// Appends many events in one transaction: all of them or none.
pub(crate) async fn append_many(store: &SqlStore, events: &[AuditEvent]) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    for event in events {
        insert(&mut tx, event).await?;
    }
    tx.commit().await.store()
}

/// A value bound to a query assembled at run time.
enum Arg {
    Text(String),
    Int(i64),
}

/// Builds a statement whose conditions depend on the query, numbering placeholders as it goes.
struct Filtered {
    sql: String,
    args: Vec<Arg>,
}

impl Filtered {
    fn new(sql: &str) -> Self {
        Self {
            sql: sql.to_owned(),
            args: Vec::new(),
        }
    }

    /// Appends `prefix` followed by the placeholder of `arg`.
    fn push(&mut self, prefix: &str, arg: Arg) {
        self.args.push(arg);
        self.sql.push_str(prefix);
        self.sql.push('$');
        self.sql.push_str(&self.args.len().to_string());
    }
}

pub(crate) async fn list(
    store: &SqlStore,
    pool: PoolId,
    query: &AuditQuery,
) -> StoreResult<Vec<StoredAuditEvent>> {
    let mut q = Filtered::new(&format!("SELECT {COLUMNS} FROM audit_events WHERE "));
    q.push("pool_id = ", Arg::Text(pool.to_string()));
    if let Some(action) = query.action {
        q.push(" AND action = ", Arg::Text(action.as_str().to_owned()));
    }
    if let Some(actor) = &query.actor_id {
        q.push(" AND actor_id = ", Arg::Text(actor.clone()));
    }
    if let Some(subject) = &query.subject {
        q.push(" AND subject = ", Arg::Text(subject.clone()));
    }
    if let Some(impersonator) = &query.impersonator_id {
        q.push(" AND impersonator_id = ", Arg::Text(impersonator.clone()));
    }
    if let Some(since) = query.since {
        q.push(" AND at >= ", Arg::Int(since.as_secs()));
    }
    if let Some(until) = query.until {
        q.push(" AND at <= ", Arg::Int(until.as_secs()));
    }
    if let Some(after) = query.after_seq {
        q.push(" AND seq > ", Arg::Int(after));
    }
    q.push(" ORDER BY seq LIMIT ", Arg::Int(i64::from(query.limit)));

    let mut statement = sqlx::query(&q.sql);
    for arg in q.args {
        statement = match arg {
            Arg::Text(text) => statement.bind(text),
            Arg::Int(n) => statement.bind(n),
        };
    }
    let rows = statement.fetch_all(&store.pool).await.store()?;
    rows.iter().map(from_row).collect()
}

fn from_row(row: &AnyRow) -> StoreResult<StoredAuditEvent> {
    let event = AuditEvent {
        id: parsed(row, "id", EventId::parse)?,
        pool: parsed(row, "pool_id", PoolId::parse)?,
        at: Timestamp(get(row, "at")?),
        action: parsed(row, "action", |s| {
            AuditAction::parse(s).ok_or("unknown action")
        })?,
        outcome: parsed(row, "outcome", |s| {
            Outcome::parse(s).ok_or("unknown outcome")
        })?,
        actor: opt_json::<Actor>(row, "actor")?,
        subject: get(row, "subject")?,
        client_id: opt_parsed(row, "client_id", ClientId::parse)?,
        ip: get(row, "ip")?,
        impersonator: opt_json::<Actor>(row, "impersonator")?,
        details: json(row, "details")?,
    };
    Ok(StoredAuditEvent {
        seq: get(row, "seq")?,
        event,
    })
}
