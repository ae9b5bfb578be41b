//! An impersonation's check-and-write as one store call.
//!
//! On SQLite in a file the whole transaction — `BEGIN IMMEDIATE`, the reads, the rules, the
//! two inserts, `COMMIT` — runs synchronously on a connection of its own, on one blocking
//! thread: one hand-off instead of one per statement through sqlx's connection thread. It
//! takes this process's writer turn first, like every write transaction. Elsewhere
//! (PostgreSQL, SQLite in memory) the same steps run through [`PoolWrite`].

use std::sync::{Arc, Mutex};

use gatehouse_domain::ids::{PoolId, Username};
use gatehouse_domain::store::{StoreError, StoreResult};
use gatehouse_domain::txn::{
    ImpersonationFacts, ImpersonationOutcome, ImpersonationRules, PoolWrite, Standing,
};
use rusqlite::{OptionalExtension, params, params_from_iter};

use crate::{SqlStore, audit, groups, sessions, users};

/// SQLite's synchronous writer connection.
pub(crate) type SyncWriter = Arc<Mutex<rusqlite::Connection>>;

/// Opens the synchronous writer on the database file `path`, set up like every connection.
pub(crate) fn open(path: &str, busy_timeout_ms: u64) -> StoreResult<SyncWriter> {
    let conn = rusqlite::Connection::open(path).map_err(backend)?;
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {busy_timeout_ms}; \
         PRAGMA synchronous = NORMAL;"
    ))
    .map_err(backend)?;
    Ok(Arc::new(Mutex::new(conn)))
}

fn backend(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict("already exists".to_owned())
        }
        other => StoreError::Backend(other.to_string()),
    }
}

impl SqlStore {
    pub(crate) async fn start_impersonation_in(
        &self,
        pool: PoolId,
        target: &Username,
        standing: Standing,
        rules: ImpersonationRules,
    ) -> StoreResult<ImpersonationOutcome> {
        let Some(sync) = self.sync_writer.clone() else {
            return self
                .through_transaction(pool, target, standing, rules)
                .await;
        };
        let turn = self.writer_turn().await;
        let target = target.clone();
        tokio::task::spawn_blocking(move || {
            // The turn is held until the transaction has ended, even if the caller stops
            // waiting.
            let _turn = turn;
            let mut conn = sync.lock().unwrap_or_else(|e| e.into_inner());
            run(&mut conn, pool, &target, &standing, rules)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("the SQLite writer stopped: {e}")))?
    }

    async fn through_transaction(
        &self,
        pool: PoolId,
        target: &Username,
        standing: Standing,
        rules: ImpersonationRules,
    ) -> StoreResult<ImpersonationOutcome> {
        let mut w = self.write_tx(pool).await?;
        let Some(user) = w.user_by_username(target).await? else {
            return Ok(ImpersonationOutcome::NoSuchUser);
        };
        let groups = w.groups_of_user(user.id).await?;
        let caller_stands = match &standing {
            Standing::NotAsked => true,
            Standing::User(id) => w
                .user_by_id(*id)
                .await?
                .is_some_and(|u| u.enabled.is_enabled()),
            Standing::Client(id) => w.client(id).await?.is_some(),
        };
        let facts = ImpersonationFacts {
            target: user,
            groups,
            caller_stands,
        };
        let (session, event) = match rules(&facts) {
            Ok(v) => v,
            Err(refusal) => return Ok(ImpersonationOutcome::Refused(refusal)),
        };
        w.create_session(&session).await?;
        w.audit(&event).await?;
        PoolWrite::commit(Box::new(w)).await?;
        Ok(ImpersonationOutcome::Started(Box::new((facts, session))))
    }
}

fn run(
    conn: &mut rusqlite::Connection,
    pool: PoolId,
    target: &Username,
    standing: &Standing,
    rules: ImpersonationRules,
) -> StoreResult<ImpersonationOutcome> {
    // Rolled back when dropped without its commit.
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(backend)?;
    let pool_id = pool.to_string();
    let user = tx
        .prepare_cached(&format!(
            "SELECT {} FROM users WHERE pool_id = $1 AND username = $2",
            users::COLUMNS
        ))
        .map_err(backend)?
        .query_row(params![pool_id, target.as_str()], |row| {
            Ok(users::from_row(row))
        })
        .optional()
        .map_err(backend)?
        .transpose()?;
    let Some(user) = user else {
        return Ok(ImpersonationOutcome::NoSuchUser);
    };
    let groups = tx
        .prepare_cached(groups::OF_USER)
        .map_err(backend)?
        .query_map(params![pool_id, user.id.to_string()], |row| {
            Ok(groups::from_row(row))
        })
        .map_err(backend)?
        .map(|r| r.map_err(backend).and_then(std::convert::identity))
        .collect::<StoreResult<Vec<_>>>()?;
    let caller_stands = match standing {
        Standing::NotAsked => true,
        Standing::User(id) => tx
            .prepare_cached("SELECT enabled FROM users WHERE pool_id = $1 AND id = $2")
            .map_err(backend)?
            .query_row(params![pool_id, id.to_string()], |row| row.get::<_, i64>(0))
            .optional()
            .map_err(backend)?
            .is_some_and(|enabled| enabled != 0),
        Standing::Client(id) => tx
            .prepare_cached("SELECT 1 FROM app_clients WHERE pool_id = $1 AND client_id = $2")
            .map_err(backend)?
            .exists(params![pool_id, id.as_str()])
            .map_err(backend)?,
    };
    let facts = ImpersonationFacts {
        target: user,
        groups,
        caller_stands,
    };
    let (session, event) = match rules(&facts) {
        Ok(v) => v,
        Err(refusal) => return Ok(ImpersonationOutcome::Refused(refusal)),
    };
    if session.pool != pool || event.pool != pool {
        return Err(StoreError::Backend(
            "an impersonation was given a value of another pool".to_owned(),
        ));
    }
    let (sql, values) = sessions::insert(&session)?;
    tx.prepare_cached(&sql)
        .map_err(backend)?
        .execute(params_from_iter(values.iter()))
        .map_err(backend)?;
    tx.prepare_cached(audit::INSERT)
        .map_err(backend)?
        .execute(params_from_iter(audit::insert_params(&event)?.iter()))
        .map_err(backend)?;
    tx.commit().map_err(backend)?;
    Ok(ImpersonationOutcome::Started(Box::new((facts, session))))
}
