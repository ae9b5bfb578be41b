//! An impersonation's check-and-write as one store call.
//!
//! On SQLite in a file the whole transaction — `BEGIN IMMEDIATE`, the reads, the rules, the
//! two inserts, `COMMIT` — runs synchronously on a connection of its own, on one blocking
//! thread: one hand-off instead of one per statement through sqlx's connection thread.
//!
//! And impersonations that wait for the writer commit together (group commit): each call
//! queues its work and waits for this process's writer turn. Whoever gets the turn runs every
//! queued impersonation (up to [`MAX_GROUP`]) in one transaction and commits once, sharing the
//! commit's WAL write among them. A refusal writes nothing; a failed statement undoes only its
//! own impersonation (the group runs again with a savepoint each, see [`run_group`]). Every caller is answered only after that commit; a caller
//! whose work an earlier turn already ran finds its answer waiting. Elsewhere (PostgreSQL,
//! SQLite in memory) the same steps run through [`PoolWrite`], one transaction each.

use std::sync::{Arc, Mutex};

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::group::Group;
use gatehouse_domain::ids::{PoolId, Username};
use gatehouse_domain::session::Session;
use gatehouse_domain::store::{StoreError, StoreResult};
use gatehouse_domain::txn::{
    ImpersonationFacts, ImpersonationOutcome, ImpersonationRules, PoolWrite, Standing,
};
use gatehouse_domain::user::User;
use rusqlite::{OptionalExtension, params, params_from_iter};

use crate::{SqlStore, audit, groups, sessions, users};

/// Impersonations committed together at most.
const MAX_GROUP: usize = 64;

/// SQLite's synchronous writer connection, and the impersonations waiting for it.
#[derive(Debug)]
pub(crate) struct SyncWriter {
    conn: Mutex<rusqlite::Connection>,
    queue: Mutex<Vec<Job>>,
}

/// One queued impersonation and where its answer goes.
struct Job {
    pool: PoolId,
    target: Username,
    standing: Standing,
    rules: ImpersonationRules,
    reply: tokio::sync::oneshot::Sender<StoreResult<ImpersonationOutcome>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Opens the synchronous writer on the database file `path`, set up like every connection.
pub(crate) fn open(path: &str) -> StoreResult<Arc<SyncWriter>> {
    let conn = rusqlite::Connection::open(path).map_err(backend)?;
    // Savepoints keep the pages they change in a sub-journal: in memory, not in a temporary
    // file written for every impersonation of a group. Checkpoints every 4,000 pages copy the
    // pages every impersonation rewrites fewer times.
    let pragmas = crate::connect::sqlite_pragmas().join("; ");
    conn.execute_batch(&format!(
        "{pragmas}; PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 4000;"
    ))
    .map_err(backend)?;
    Ok(Arc::new(SyncWriter {
        conn: Mutex::new(conn),
        queue: Mutex::new(Vec::new()),
    }))
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
        let (reply, mut answer) = tokio::sync::oneshot::channel();
        lock(&sync.queue).push(Job {
            pool,
            target: target.clone(),
            standing,
            rules,
            reply,
        });
        let turn = self.writer_turn().await;
        // A turn before this one may have run it: answers are sent before a turn ends.
        if let Ok(done) = answer.try_recv() {
            return done;
        }
        let group = {
            let mut queue = lock(&sync.queue);
            let n = queue.len().min(MAX_GROUP);
            queue.drain(..n).collect::<Vec<_>>()
        };
        tokio::task::spawn_blocking(move || {
            // The turn is held until the group has committed and every answer is sent, even
            // if this caller stops waiting.
            let _turn = turn;
            run_group(&mut lock(&sync.conn), group);
        })
        .await
        .map_err(|e| StoreError::Backend(format!("the SQLite writer stopped: {e}")))?;
        answer
            .await
            .map_err(|_| StoreError::Backend("the SQLite writer dropped an impersonation".into()))?
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
        let (facts, session, event) = match judge(user, groups, caller_stands, &rules) {
            Ok(judged) => judged,
            Err(refused) => return Ok(refused),
        };
        w.create_session(&session).await?;
        w.audit(&event).await?;
        PoolWrite::commit(Box::new(w)).await?;
        Ok(ImpersonationOutcome::Started(Box::new((facts, session))))
    }
}

/// Hands what was read to the rules: the session and audit event to write, or the refusal.
fn judge(
    target: User,
    groups: Vec<Group>,
    caller_stands: bool,
    rules: &ImpersonationRules,
) -> Result<(ImpersonationFacts, Session, AuditEvent), ImpersonationOutcome> {
    let facts = ImpersonationFacts {
        target,
        groups,
        caller_stands,
    };
    match rules(&facts) {
        Ok((session, event)) => Ok((facts, session, event)),
        Err(refusal) => Err(ImpersonationOutcome::Refused(refusal)),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `group` in one transaction, commits once, and answers each.
///
/// The rules run before anything is written, so a refusal needs nothing undone; only a failed
/// statement does. The group first runs without savepoints (each costs a copy of every page it
/// changes); if a statement fails, that transaction is rolled back and the group runs again,
/// each impersonation in a savepoint of its own, so that the failure is its alone.
fn run_group(conn: &mut rusqlite::Connection, group: Vec<Job>) {
    match run_together(conn, &group) {
        Ok(Some(outcomes)) => answer(group, outcomes, None),
        Ok(None) => run_apart(conn, group),
        Err(e) => answer_all(group, &e.to_string()),
    }
}

/// The group in one transaction without savepoints: its outcomes, committed (a commit that
/// fails is answered as such), or `None` when a statement failed and nothing was kept.
fn run_together(
    conn: &mut rusqlite::Connection,
    group: &[Job],
) -> rusqlite::Result<Option<Vec<StoreResult<ImpersonationOutcome>>>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut outcomes = Vec::with_capacity(group.len());
    for job in group {
        match run(&tx, job.pool, &job.target, &job.standing, &job.rules) {
            Ok(outcome) => outcomes.push(Ok(outcome)),
            // Dropping the transaction rolls it back.
            Err(_) => return Ok(None),
        }
    }
    match tx.commit() {
        Ok(()) => Ok(Some(outcomes)),
        Err(e) => Ok(Some(uncommitted(outcomes, &e.to_string()))),
    }
}

/// The group again, each impersonation in a savepoint: a failed statement undoes only its own.
fn run_apart(conn: &mut rusqlite::Connection, group: Vec<Job>) {
    let mut tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return answer_all(group, &e.to_string()),
    };
    let mut outcomes = Vec::with_capacity(group.len());
    for job in &group {
        let outcome = match tx.savepoint() {
            Ok(mut sp) => {
                let outcome = run(&sp, job.pool, &job.target, &job.standing, &job.rules);
                // Only a started session stays; anything else leaves nothing behind.
                let kept = matches!(outcome, Ok(ImpersonationOutcome::Started(_)));
                if kept {
                    sp.commit().map_err(backend).and(outcome)
                } else {
                    let _ = sp.rollback();
                    outcome
                }
            }
            Err(e) => Err(backend(e)),
        };
        outcomes.push(outcome);
    }
    let failed = tx.commit().err().map(|e| e.to_string());
    answer(group, outcomes, failed.as_deref());
}

/// Answers each job with its outcome; if the commit failed (`failed`), nothing was written: a
/// refusal still stands, a start did not happen.
fn answer(group: Vec<Job>, outcomes: Vec<StoreResult<ImpersonationOutcome>>, failed: Option<&str>) {
    let outcomes = match failed {
        Some(text) => uncommitted(outcomes, text),
        None => outcomes,
    };
    for (job, outcome) in group.into_iter().zip(outcomes) {
        let _ = job.reply.send(outcome);
    }
}

fn uncommitted(
    outcomes: Vec<StoreResult<ImpersonationOutcome>>,
    text: &str,
) -> Vec<StoreResult<ImpersonationOutcome>> {
    outcomes
        .into_iter()
        .map(|outcome| match outcome {
            Ok(ImpersonationOutcome::Started(_)) => Err(StoreError::Backend(text.to_owned())),
            other => other,
        })
        .collect()
}

fn answer_all(group: Vec<Job>, text: &str) {
    for job in group {
        let _ = job.reply.send(Err(StoreError::Backend(text.to_owned())));
    }
}

/// One impersonation inside the group's transaction.
fn run(
    conn: &rusqlite::Connection,
    pool: PoolId,
    target: &Username,
    standing: &Standing,
    rules: &ImpersonationRules,
) -> StoreResult<ImpersonationOutcome> {
    let tx = conn;
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
    let (facts, session, event) = match judge(user, groups, caller_stands, rules) {
        Ok(judged) => judged,
        Err(refused) => return Ok(refused),
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
    Ok(ImpersonationOutcome::Started(Box::new((facts, session))))
}
