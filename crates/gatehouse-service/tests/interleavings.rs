//! Property: two operations on one user, run at the same time with random interleavings, end
//! as if they had run one after the other, in one order or the other. No lost update: an
//! administrator's disable or reset is never undone by a racing profile edit, and no edit is
//! silently dropped. Runs on SQLite, and on PostgreSQL (`GATEHOUSE_TEST_POSTGRES_URL`, by
//! default the local server).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use gatehouse_crypto::keys::MasterKey;
use gatehouse_crypto::password::{HashCost, PasswordHasher};
use gatehouse_crypto::secret::Secret;
use gatehouse_domain::ids::{PoolSlug, Username};
use gatehouse_domain::permission::{PermissionSet, Role};
use gatehouse_domain::pool::Pool;
use gatehouse_domain::time::{Clock, ManualClock, SystemClock};
use gatehouse_domain::user::{Enabled, User, UserAttributes, UserStatus, permissions_of};
use gatehouse_service::messages::FileOutbox;
use gatehouse_service::principal::{Subject, TokenFacts};
use gatehouse_service::signin::SignInOutcome;
use gatehouse_service::{Gatehouse, GatehouseParts, Principal, RequestMeta};
use gatehouse_store::SqlStore;
use proptest::prelude::*;

const PASSWORD: &str = "a-long-password-1";

/// The user's own principal, from a real sign-in (self-service needs its session).
async fn signed_in(w: &World, user: &User) -> Principal {
    let outcome =
        w.gh.initiate_password_sign_in(
            &w.pool,
            &w.client.0,
            Some(w.client.1.clone()),
            user.username.as_str(),
            &Secret::new(PASSWORD),
            &RequestMeta::default(),
        )
        .await
        .unwrap();
    let SignInOutcome::Tokens { access: issued, .. } = outcome else {
        panic!("a confirmed user signs in with tokens");
    };
    w.gh.authenticate_bearer(&w.pool, issued.token.expose())
        .await
        .unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    /// An administrator replaces the profile (PUT semantics) with the first one and a new name.
    AdminRename(u8),
    /// An administrator replaces the profile with the first one plus a role.
    AdminGrantRole,
    Disable,
    Enable,
    Reset,
    /// The user edits its own profile.
    SelfRename(u8),
}

/// What the property compares: the fields the operations change.
#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    enabled: bool,
    status: UserStatus,
    name: String,
    roles: Vec<String>,
}

impl State {
    fn of(user: &User) -> Self {
        State {
            enabled: user.enabled == Enabled::Yes,
            status: user.status,
            name: user.attributes.name.clone(),
            roles: user
                .attributes
                .roles
                .iter()
                .map(|r| r.as_str().to_owned())
                .collect(),
        }
    }
}

/// The states `op` may leave after `state` when run alone; `first` is the user as created,
/// whose profile the administrator's PUTs carry. Self-service on an account an administrator
/// just locked, or whose roles changed, may be refused or not: both are sound, a lost update
/// is not.
fn after(op: &Op, state: &State, first: &State) -> Vec<State> {
    let mut next = state.clone();
    match op {
        Op::AdminRename(n) => {
            next.name = format!("admin name {n}");
            next.roles = first.roles.clone();
        }
        Op::AdminGrantRole => {
            next.name = first.name.clone();
            next.roles = first.roles.clone();
            next.roles.push("claims-adjuster".to_owned());
        }
        Op::Disable => next.enabled = false,
        Op::Enable => next.enabled = true,
        Op::Reset => next.status = UserStatus::ResetRequired,
        Op::SelfRename(n) => {
            next.name = format!("own name {n}");
            if !state.enabled || state.status != UserStatus::Confirmed || state.roles != first.roles
            {
                return vec![state.clone(), next];
            }
        }
    }
    vec![next]
}

fn serial_outcomes(a: &Op, b: &Op, start: &State) -> Vec<State> {
    let mut out = Vec::new();
    for (one, two) in [(a, b), (b, a)] {
        for mid in after(one, start, start) {
            out.extend(after(two, &mid, start));
        }
    }
    out
}

struct World {
    gh: Arc<Gatehouse>,
    pool: Arc<Pool>,
    admin: Principal,
    /// An app client users sign in through.
    client: (String, Secret),
    _dir: tempfile::TempDir,
}

fn principal_of(user: &User, permissions: PermissionSet, pool: &Pool) -> Principal {
    Principal {
        subject: Subject::User {
            id: user.id,
            username: user.username.clone(),
        },
        home_pool: pool.slug.clone(),
        permissions,
        token: TokenFacts {
            jti: uuid::Uuid::new_v4().to_string(),
            sid: None,
            client_id: None,
            act: None,
            expires_at: i64::MAX,
            scope: None,
        },
    }
}

async fn world(database_url: String) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::connect(&database_url).await.unwrap();
    let gh = Arc::new(Gatehouse::new(GatehouseParts {
        store: Arc::new(store),
        clock: Arc::new(ManualClock::new(SystemClock.now())),
        master_key: MasterKey::generate(),
        hasher: PasswordHasher::new(
            HashCost {
                memory_kib: 1024,
                iterations: 1,
                parallelism: 1,
            },
            2,
        )
        .unwrap(),
        messages: Arc::new(FileOutbox::new(dir.path().join("outbox"))),
        public_url: gatehouse_domain::urls::PublicUrl::parse("http://gatehouse.test").unwrap(),
        outbound: gatehouse_service::outbound::Outbound::new(Default::default()).unwrap(),
    }));
    let slug = PoolSlug::parse("acme").unwrap();
    gh.create_pool(
        slug.clone(),
        Default::default(),
        Vec::new(),
        None,
        &RequestMeta::default(),
    )
    .await
    .unwrap();
    let pool = gh.pool(&slug).await.unwrap();
    let ada = new_user(&gh, &pool, "ada", &["admin"]).await;
    let admin_permissions = permissions_of(&ada, &[]);
    let admin = principal_of(&ada, admin_permissions, &pool);
    let (client, secret) = gh
        .create_client_unchecked(&pool, "app", Vec::new())
        .await
        .unwrap();
    World {
        gh,
        pool,
        admin,
        client: (client.client_id.to_string(), secret),
        _dir: dir,
    }
}

async fn new_user(gh: &Gatehouse, pool: &Pool, name: &str, roles: &[&str]) -> User {
    let attributes = UserAttributes {
        email: format!("{name}@example.com"),
        name: name.to_owned(),
        roles: roles.iter().map(|r| Role::parse(r).unwrap()).collect(),
        ..UserAttributes::default()
    };
    gh.create_user_with_password(pool, name, attributes, Some(Secret::new(PASSWORD)), None)
        .await
        .unwrap();
    gh.user_named(pool, &Username::parse(name).unwrap())
        .await
        .unwrap()
}

async fn run(w: &World, victim: &User, me: &Principal, op: Op, yields: u8) {
    for _ in 0..yields {
        tokio::task::yield_now().await;
    }
    let gh = &w.gh;
    let pool = &w.pool;
    let meta = RequestMeta::default();
    let name = &victim.username;
    // Refusals are part of the property (the model allows them where they are sound); any
    // other failure is a bug.
    let outcome = match op {
        Op::AdminRename(n) => {
            let mut a = victim.attributes.clone();
            a.name = format!("admin name {n}");
            gh.update_user(pool, &w.admin, name, a, &meta).await
        }
        Op::AdminGrantRole => {
            let mut a = victim.attributes.clone();
            a.roles.push(Role::parse("claims-adjuster").unwrap());
            gh.update_user(pool, &w.admin, name, a, &meta).await
        }
        Op::Disable => gh.disable_user(pool, &w.admin, name, &meta).await,
        Op::Enable => gh.enable_user(pool, &w.admin, name, &meta).await,
        Op::Reset => gh.reset_user_password(pool, &w.admin, name, &meta).await,
        Op::SelfRename(n) => {
            let mut a = victim.attributes.clone();
            a.name = format!("own name {n}");
            gh.update_own_user(pool, me, a, &meta).await
        }
    };
    if let Err(e) = outcome {
        assert!(
            matches!(
                e,
                gatehouse_service::ServiceError::Unauthenticated(_)
                    | gatehouse_service::ServiceError::Forbidden(_)
                    | gatehouse_service::ServiceError::Conflict(_)
            ),
            "an operation failed for another reason: {e:?}"
        );
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..4).prop_map(Op::AdminRename),
        Just(Op::AdminGrantRole),
        Just(Op::Disable),
        Just(Op::Enable),
        Just(Op::Reset),
        (0u8..4).prop_map(Op::SelfRename),
    ]
}

fn check_backend(database_url: String, cases: u32) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let w = rt.block_on(world(database_url));
    let counter = std::sync::atomic::AtomicU32::new(0);
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(a in op(), b in op(), ya in 0u8..6, yb in 0u8..6)| {
        let i = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        rt.block_on(async {
            let victim = new_user(&w.gh, &w.pool, &format!("victim-{i}"), &[]).await;
            let start = State::of(&victim);
            let me = signed_in(&w, &victim).await;
            tokio::join!(
                run(&w, &victim, &me, a.clone(), ya),
                run(&w, &victim, &me, b.clone(), yb)
            );
            let end = w.gh.user_named(&w.pool, &victim.username).await.unwrap();
            let end = State::of(&end);
            let allowed = serial_outcomes(&a, &b, &start);
            assert!(
                allowed.contains(&end),
                "{a:?} racing {b:?} left {end:?}; a serial order gives one of {allowed:?}"
            );
        });
    });
}

#[test]
fn two_racing_operations_on_one_user_end_as_one_order_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    check_backend(
        gatehouse_store::test_support::fresh_sqlite_url(dir.path()),
        64,
    );
}

#[test]
fn two_racing_operations_on_one_user_end_as_one_order_on_postgres() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = rt.block_on(gatehouse_store::test_support::fresh_postgres_url());
    check_backend(url.clone(), 64);
    rt.block_on(gatehouse_store::test_support::drop_postgres_database(&url));
}
