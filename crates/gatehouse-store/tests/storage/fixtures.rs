//! A fresh database per test, and builders for the domain values the tests store.

use std::collections::BTreeMap;

use gatehouse_domain::audit::{AuditAction, AuditEvent, AuditQuery, Outcome, StoredAuditEvent};
use gatehouse_domain::client::{AppClient, AuthFlow, GrantType, SecretDigest};
use gatehouse_domain::group::Group;
use gatehouse_domain::ids::{
    ClientId, EventId, GroupName, PoolId, PoolSlug, SessionId, UserId, Username,
};
use gatehouse_domain::permission::{Role, Scope};
use gatehouse_domain::pool::{HostName, Pool, PoolSettings, SigningAlg};
use gatehouse_domain::session::{Actor, ActorKind, Session, SessionKind};
use gatehouse_domain::store::{KeyPurpose, KeyState, SigningKeyRecord, Store, StoreResult};
use gatehouse_domain::time::Timestamp;
use gatehouse_domain::user::{
    Enabled, MfaState, PasswordCredential, User, UserAttributes, UserStatus,
};
use gatehouse_store::SqlStore;
use gatehouse_store::test_support::{drop_postgres_database, fresh_postgres_url, fresh_sqlite_url};

/// The instant the tests live at.
pub const T0: Timestamp = Timestamp(1_700_000_000);

pub struct Db {
    pub store: SqlStore,
    pub url: String,
    postgres: bool,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_sqlite_url(dir.path());
        let store = SqlStore::connect(&url).await.unwrap();
        Self {
            store,
            url,
            postgres: false,
            _dir: Some(dir),
        }
    }

    pub async fn postgres() -> Self {
        let url = fresh_postgres_url().await;
        let store = SqlStore::connect(&url).await.unwrap();
        Self {
            store,
            url,
            postgres: true,
            _dir: None,
        }
    }

    pub async fn finish(self) {
        self.store.close().await;
        if self.postgres {
            drop_postgres_database(&self.url).await;
        }
    }
}

pub fn slug(s: &str) -> PoolSlug {
    PoolSlug::parse(s).unwrap()
}

pub fn host(s: &str) -> HostName {
    HostName::parse(s).unwrap()
}

pub fn uname(s: &str) -> Username {
    Username::parse(s).unwrap()
}

pub fn gname(s: &str) -> GroupName {
    GroupName::parse(s).unwrap()
}

pub fn role(s: &str) -> Role {
    Role::parse(s).unwrap()
}

pub fn pool_value(slug_text: &str, hosts: &[&str]) -> Pool {
    Pool {
        id: PoolId::new_random(),
        slug: slug(slug_text),
        settings: PoolSettings::default(),
        hosts: hosts.iter().map(|h| host(h)).collect(),
        created_at: T0,
    }
}

pub fn key(pool: PoolId, kid: &str) -> SigningKeyRecord {
    SigningKeyRecord {
        pool,
        kid: kid.to_owned(),
        alg: SigningAlg::ES256,
        purpose: KeyPurpose::Access,
        state: KeyState::Current,
        sealed_private_key: vec![0, 1, 2, 254, 255],
        public_jwk: format!(r#"{{"kty":"EC","kid":"{kid}"}}"#),
        created_at: T0,
        state_since: T0,
    }
}

/// A current ID-token key.
pub fn id_key(pool: PoolId, kid: &str) -> SigningKeyRecord {
    SigningKeyRecord {
        alg: SigningAlg::RS256,
        purpose: KeyPurpose::IdToken,
        public_jwk: format!(r#"{{"kty":"RSA","kid":"{kid}"}}"#),
        ..key(pool, kid)
    }
}

pub fn admin() -> Actor {
    Actor {
        kind: ActorKind::User,
        id: "11111111-1111-4111-8111-111111111111".to_owned(),
        username: Some("root".to_owned()),
        pool: PoolSlug::staff(),
        client_id: None,
    }
}

pub fn event(pool: PoolId, action: AuditAction, subject: &str) -> AuditEvent {
    AuditEvent {
        id: EventId::new_random(),
        pool,
        at: T0,
        action,
        outcome: Outcome::Success,
        actor: Some(admin()),
        subject: Some(subject.to_owned()),
        client_id: None,
        ip: Some("192.0.2.1".to_owned()),
        impersonator: None,
        details: BTreeMap::new(),
    }
}

/// Creates a pool with one signing key, an access key (as pools were made before ID tokens).
pub async fn new_pool(store: &SqlStore, slug_text: &str) -> Pool {
    let pool = pool_value(slug_text, &[]);
    store
        .create_pool(
            &pool,
            &[key(pool.id, "k1")],
            &event(pool.id, AuditAction::PoolCreated, slug_text),
        )
        .await
        .unwrap();
    pool
}

pub fn user_value(pool: PoolId, username: &str) -> User {
    User {
        id: UserId::new_random(),
        pool,
        username: uname(username),
        enabled: Enabled::Yes,
        status: UserStatus::Confirmed,
        attributes: UserAttributes {
            email: format!("{username}@example.com"),
            name: format!("User {username}"),
            roles: vec![role("support")],
            zoneinfo: Some("Europe/Paris".to_owned()),
            ..UserAttributes::default()
        },
        contact_id: None,
        password: Some(PasswordCredential {
            phc: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
            temporary_until: None,
        }),
        tokens_not_before: None,
        mfa: MfaState::NONE,
        previous_email: None,
        created_at: T0,
        updated_at: T0,
    }
}

pub async fn new_user(store: &SqlStore, pool: PoolId, username: &str) -> User {
    let user = user_value(pool, username);
    store
        .create_user(&user, &event(pool, AuditAction::UserCreated, username))
        .await
        .unwrap();
    user
}

pub fn group_value(pool: PoolId, name: &str) -> Group {
    Group {
        pool,
        name: gname(name),
        description: format!("The {name} group"),
        roles: vec![role("claims-adjuster")],
        created_at: T0,
    }
}

pub async fn new_group(store: &SqlStore, pool: PoolId, name: &str) -> Group {
    let group = group_value(pool, name);
    store
        .create_group(&group, &event(pool, AuditAction::GroupCreated, name))
        .await
        .unwrap();
    group
}

pub fn client_value(pool: PoolId, id: &str) -> AppClient {
    AppClient {
        pool,
        client_id: ClientId::parse(id).unwrap(),
        name: format!("App {id}"),
        secret_sha256: Some(SecretDigest([7; 32])),
        secret_sealed: None,
        scopes: vec![
            Scope::parse("openid").unwrap(),
            Scope::parse("user:Impersonate").unwrap(),
        ],
        grant_types: vec![GrantType::ClientCredentials, GrantType::TokenExchange],
        redirect_uris: vec!["https://app.example.com/callback".to_owned()],
        post_logout_redirect_uris: Vec::new(),
        third_party: false,
        backchannel_logout: None,
        auth_flows: AuthFlow::DEFAULT.to_vec(),
        created_at: T0,
    }
}

pub async fn new_client(store: &SqlStore, pool: PoolId, id: &str) -> AppClient {
    let client = client_value(pool, id);
    store
        .create_client(&client, &event(pool, AuditAction::AppClientCreated, id))
        .await
        .unwrap();
    client
}

pub fn sign_in(user: &User, expires_at: Timestamp) -> Session {
    Session {
        id: SessionId::new_random(),
        pool: user.pool,
        user_id: user.id,
        username: user.username.clone(),
        client_id: None,
        kind: SessionKind::SignIn,
        created_at: T0,
        expires_at,
        revoked_at: None,
    }
}

pub fn impersonation(user: &User, expires_at: Timestamp) -> Session {
    Session {
        kind: SessionKind::Impersonation {
            actor: admin(),
            reason: Some("ticket 42".to_owned()),
        },
        client_id: Some(ClientId::parse("console").unwrap()),
        ..sign_in(user, expires_at)
    }
}

/// Every audit event of the pool, oldest first.
pub async fn all_events(store: &SqlStore, pool: PoolId) -> Vec<StoredAuditEvent> {
    store
        .list_audit(
            pool,
            &AuditQuery {
                limit: 10_000,
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap()
}

/// Whether the event with this id was written.
pub async fn was_written(store: &SqlStore, event: &AuditEvent) -> bool {
    all_events(store, event.pool)
        .await
        .iter()
        .any(|e| e.event.id == event.id)
}

/// Asserts that the event was stored exactly as given.
pub async fn assert_written(store: &SqlStore, event: &AuditEvent) {
    let events = all_events(store, event.pool).await;
    let found = events.iter().find(|e| e.event.id == event.id);
    assert_eq!(
        found.map(|e| &e.event),
        Some(event),
        "audit event {:?} missing",
        event.action
    );
}

/// Rewrites a user through a write transaction, with its audit event.
pub async fn save_user(store: &SqlStore, user: &User, audit: &AuditEvent) -> StoreResult<()> {
    let mut w = store.write(user.pool).await?;
    w.update_user(user).await?;
    w.audit(audit).await?;
    w.commit().await
}

/// Rewrites a group through a write transaction, with its audit event.
pub async fn save_group(store: &SqlStore, group: &Group, audit: &AuditEvent) -> StoreResult<()> {
    let mut w = store.write(group.pool).await?;
    w.update_group(group).await?;
    w.audit(audit).await?;
    w.commit().await
}

/// Replaces a pool's settings through a write transaction, with its audit event.
pub async fn save_settings(
    store: &SqlStore,
    pool: PoolId,
    settings: &PoolSettings,
    audit: &AuditEvent,
) -> StoreResult<()> {
    let mut w = store.write(pool).await?;
    w.update_pool_settings(settings).await?;
    w.audit(audit).await?;
    w.commit().await
}
