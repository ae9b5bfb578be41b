//! `spawn_app()`: a server on port 0 with a fresh database, a manual clock and a file outbox.

use std::path::PathBuf;
use std::sync::Arc;

use gatehouse::Config;
use gatehouse::app::Application;
use gatehouse::config::PasswordHashing;
use gatehouse_crypto::secret::Secret;
use gatehouse_domain::ids::PoolSlug;
use gatehouse_domain::permission::{Role, Scope};
use gatehouse_domain::store::Store;
use gatehouse_domain::time::{Clock, ManualClock, SystemClock};
use gatehouse_domain::user::UserAttributes;
use gatehouse_service::Gatehouse;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    /// Where requests go: `http://127.0.0.1:{port}`.
    pub addr: String,
    /// The configured public URL (issuers are built from it).
    pub public_url: String,
    pub http: reqwest::Client,
    pub gh: Arc<Gatehouse>,
    pub clock: Arc<ManualClock>,
    pub outbox: PathBuf,
    pub database_url: String,
    config: Config,
    backend: Backend,
    _dir: tempfile::TempDir,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// A server on the backend `GATEHOUSE_TEST_BACKEND` names (`sqlite`, the default, or
/// `postgres`), so that the whole suite can run on either.
pub async fn spawn_app() -> TestApp {
    spawn_app_on(Backend::from_env()).await
}

impl Backend {
    /// The backend `GATEHOUSE_TEST_BACKEND` names: `sqlite`, the default, or `postgres`.
    pub fn from_env() -> Self {
        match std::env::var("GATEHOUSE_TEST_BACKEND").as_deref() {
            Ok("postgres") => Backend::Postgres,
            _ => Backend::Sqlite,
        }
    }
}

pub async fn spawn_app_on(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// A server whose configuration the test adjusts first.
pub async fn spawn_app_with(backend: Backend, customize: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let database_url = match backend {
        Backend::Sqlite => gatehouse_store::test_support::fresh_sqlite_url(dir.path()),
        Backend::Postgres => gatehouse_store::test_support::fresh_postgres_url().await,
    };
    let mut config = Config {
        database_url: database_url.clone(),
        listen: "127.0.0.1:0".into(),
        public_url: "http://gatehouse.test".into(),
        master_key_file: Some(dir.path().join("master.key")),
        // Cheap hashing keeps the suite fast; production defaults are tested in the crypto crate.
        password_hashing: PasswordHashing {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 4,
            max_waiting: None,
        },
        messages: gatehouse::config::Messages {
            outbox_dir: dir.path().join("outbox"),
            ..Default::default()
        },
        // Deliveries (SSF push, back-channel logout) reach the tests' receivers on loopback.
        outbound: gatehouse::config::Outbound {
            allow: vec!["127.0.0.0/8".into()],
        },
        ..Config::default()
    };
    customize(&mut config);
    if backend == Backend::Postgres {
        std::fs::write(
            dir.path().join("master.key"),
            gatehouse_crypto::keys::MasterKey::generate().to_b64(),
        )
        .unwrap();
    }
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let app = Application::build_with_clock(&config, clock.clone())
        .await
        .unwrap();
    let addr = format!("http://{}", app.local_addr().unwrap());
    let gh = app.gatehouse.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        public_url: config.public_url.clone(),
        http: reqwest::Client::new(),
        gh,
        clock,
        outbox: dir.path().join("outbox").join("outbox.jsonl"),
        database_url,
        config: config.clone(),
        backend,
        _dir: dir,
        _shutdown: tx,
    }
}

impl Drop for TestApp {
    /// Drops a test's PostgreSQL database (on a thread of its own: `Drop` cannot await).
    fn drop(&mut self) {
        if self.backend == Backend::Postgres {
            let url = self.database_url.clone();
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(gatehouse_store::test_support::drop_postgres_database(&url));
                }
            })
            .join();
        }
    }
}

pub struct ClientCreds {
    pub id: String,
    pub secret: String,
}

impl TestApp {
    /// Another instance of the server over the same database and master key (what a
    /// deployment with several instances runs), answering at the address returned until the
    /// sender is dropped.
    pub async fn second_instance(&self) -> (String, tokio::sync::oneshot::Sender<()>) {
        self.instance_on("127.0.0.1:0").await
    }

    /// Another instance over the same database, listening on `listen` (an instance restarted
    /// where it was).
    pub async fn instance_on(&self, listen: &str) -> (String, tokio::sync::oneshot::Sender<()>) {
        let mut config = self.config.clone();
        config.listen = listen.to_owned();
        let app = Application::build_with_clock(&config, self.clock.clone())
            .await
            .unwrap();
        let addr = format!("http://{}", app.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        (addr, tx)
    }

    /// The master key the server seals its signing keys with (from its key file).
    pub fn master_key(&self) -> gatehouse_crypto::keys::MasterKey {
        let path = self.config.master_key_file.as_ref().unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        let bytes = gatehouse_crypto::secret::b64url_decode(text.trim()).unwrap();
        gatehouse_crypto::keys::MasterKey::from_bytes(&bytes).unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.addr, path)
    }

    pub fn pool_url(&self, pool: &str, path: &str) -> String {
        format!("{}/pools/{pool}{path}", self.addr)
    }

    pub fn issuer(&self, pool: &str) -> String {
        format!("{}/pools/{pool}", self.public_url)
    }

    /// Creates a pool directly through the services (the CLI's path).
    pub async fn create_pool(&self, slug: &str) {
        self.gh
            .create_pool(
                PoolSlug::parse(slug).unwrap(),
                Default::default(),
                Vec::new(),
                None,
                &Default::default(),
            )
            .await
            .unwrap();
    }

    /// Creates a pool bound to these host names, the issuer's first (the CLI's path).
    pub async fn create_host_pool(&self, slug: &str, hosts: &[&str]) {
        self.gh
            .create_pool(
                PoolSlug::parse(slug).unwrap(),
                Default::default(),
                hosts
                    .iter()
                    .map(|h| gatehouse_domain::pool::HostName::parse(h).unwrap())
                    .collect(),
                None,
                &Default::default(),
            )
            .await
            .unwrap();
    }

    /// Creates a confirmed user with a permanent password (the CLI's path).
    pub async fn create_user(&self, pool: &str, username: &str, roles: &[&str], password: &str) {
        let pool = self.gh.pool(&PoolSlug::parse(pool).unwrap()).await.unwrap();
        let attributes = UserAttributes {
            email: format!("{username}@example.com"),
            name: username.to_owned(),
            roles: roles.iter().map(|r| Role::parse(r).unwrap()).collect(),
            ..UserAttributes::default()
        };
        self.gh
            .create_user_with_password(
                &pool,
                username,
                attributes,
                Some(Secret::new(password)),
                None,
            )
            .await
            .unwrap();
    }

    /// A member of the staff pool with these roles, signed in through a staff client: its
    /// token. The password is `{name}-staff-password-1`.
    pub async fn staff_member(&self, name: &str, roles: &[&str]) -> String {
        let password = format!("{name}-staff-password-1");
        self.create_user("staff", name, roles, &password).await;
        let client = self.create_client("staff", &[]).await;
        self.sign_in("staff", &client, name, &password).await
    }

    /// The usual client pool: `acme` with an administrator `ada` (`ada-password-123`), a
    /// plain user `alice` (`alice-password-1`) and a sign-in client. Returns the client and
    /// ada's token.
    pub async fn acme_with_ada(&self) -> (ClientCreds, String) {
        self.create_pool("acme").await;
        self.create_user("acme", "ada", &["admin"], "ada-password-123")
            .await;
        self.create_user("acme", "alice", &[], "alice-password-1")
            .await;
        let client = self.create_client("acme", &[]).await;
        let ada = self
            .sign_in("acme", &client, "ada", "ada-password-123")
            .await;
        (client, ada)
    }

    /// Impersonates `username` in `pool` with `token` through the seed's endpoint, which must
    /// answer 200; returns the impersonated token.
    pub async fn impersonate(&self, pool: &str, token: &str, username: &str) -> String {
        let res = self
            .http
            .post(self.pool_url(
                pool,
                &format!("/api/user-management/users/{username}/impersonate"),
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json::<Value>().await.unwrap()["attributes"]["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The status of OIDC userinfo for `token` at `pool`: 200 while the token stands.
    pub async fn userinfo_status(&self, pool: &str, token: &str) -> u16 {
        self.http
            .get(self.pool_url(pool, "/oauth2/userinfo"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Creates an app client directly through the services (the CLI's path).
    pub async fn create_client(&self, pool: &str, scopes: &[&str]) -> ClientCreds {
        let pool = self.gh.pool(&PoolSlug::parse(pool).unwrap()).await.unwrap();
        let scopes = scopes.iter().map(|s| Scope::parse(s).unwrap()).collect();
        let (client, secret) = self
            .gh
            .create_client_unchecked(&pool, "test client", scopes)
            .await
            .unwrap();
        ClientCreds {
            id: client.client_id.to_string(),
            secret: secret.expose().to_owned(),
        }
    }

    /// Adds an OpenID Connect identity provider `name` to `pool` as the operator, pointing at
    /// `issuer` (which nothing calls until someone signs in with it).
    pub async fn create_oidc_provider(&self, pool: &str, name: &str, issuer: &str) {
        let pool = self.gh.pool(&PoolSlug::parse(pool).unwrap()).await.unwrap();
        let request = gatehouse_service::identity_providers::ProviderRequest {
            name: name.to_owned(),
            kind: "oidc".to_owned(),
            issuer: Some(issuer.to_owned()),
            client_id: Some("gatehouse".to_owned()),
            client_secret: Some(gatehouse_crypto::secret::Secret::new(
                "upstream-secret".to_owned(),
            )),
            ..Default::default()
        };
        self.gh
            .create_identity_provider_as_operator(&pool, request)
            .await
            .unwrap();
    }

    /// The client-credentials grant with HTTP Basic authentication.
    pub async fn client_token(&self, pool: &str, c: &ClientCreds) -> String {
        let res = self
            .http
            .post(self.pool_url(pool, "/oauth2/token"))
            .basic_auth(&c.id, Some(&c.secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Password sign-in through `/api/auth/initiate`.
    pub async fn sign_in(
        &self,
        pool: &str,
        c: &ClientCreds,
        username: &str,
        password: &str,
    ) -> String {
        let res = self
            .http
            .post(self.pool_url(pool, "/api/auth/initiate"))
            .json(&json!({
                "flow": "USER_PASSWORD",
                "client_id": c.id,
                "client_secret": c.secret,
                "username": username,
                "password": password,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn introspect(&self, pool: &str, c: &ClientCreds, token: &str) -> Value {
        introspect_at(&self.http, &self.addr, pool, c, token).await
    }

    /// RFC 7009 revocation of `token` by client `c`.
    pub async fn revoke(&self, pool: &str, c: &ClientCreds, token: &str) -> reqwest::Response {
        self.http
            .post(self.pool_url(pool, "/oauth2/revoke"))
            .basic_auth(&c.id, Some(&c.secret))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
    }

    /// Messages delivered through the file outbox so far.
    pub fn outbox(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.outbox)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The details of the pool's audit events with this action, oldest first.
    pub async fn audit_details(
        &self,
        pool: &str,
        action: &str,
    ) -> Vec<std::collections::BTreeMap<String, String>> {
        self.gh.flush_audit().await;
        let pool = self.gh.pool(&PoolSlug::parse(pool).unwrap()).await.unwrap();
        let q = gatehouse_domain::audit::AuditQuery {
            action: gatehouse_domain::audit::AuditAction::parse(action),
            limit: 10_000,
            ..Default::default()
        };
        let store = gatehouse_store::SqlStore::connect(&self.database_url)
            .await
            .unwrap();
        let events = store.list_audit(pool.id, &q).await.unwrap();
        store.close().await;
        let mut details: Vec<_> = events.into_iter().map(|e| e.event.details).collect();
        details.reverse();
        details
    }

    /// Number of audit events with this action in the pool (read through the store).
    pub async fn audit_count(&self, pool: &str, action: &str) -> usize {
        self.gh.flush_audit().await;
        let pool = self.gh.pool(&PoolSlug::parse(pool).unwrap()).await.unwrap();
        let q = gatehouse_domain::audit::AuditQuery {
            action: gatehouse_domain::audit::AuditAction::parse(action),
            limit: 10_000,
            ..Default::default()
        };
        // A connection of the test's own, as an operator's query would be.
        let store = gatehouse_store::SqlStore::connect(&self.database_url)
            .await
            .unwrap();
        let n = store.list_audit(pool.id, &q).await.unwrap().len();
        store.close().await;
        n
    }
}

/// The claims of a JWT, read without verifying it (tests verify signatures elsewhere).
pub fn jwt_claims(token: &str) -> Value {
    jwt_part(token, 1)
}

/// The protected header of a JWT (its `kid`, `alg`, `typ`), read without verifying it.
pub fn jwt_header(token: &str) -> Value {
    jwt_part(token, 0)
}

fn jwt_part(token: &str, n: usize) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(n).expect("a compact JWS");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}

/// Asserts a response is a 4xx with the API's error body (`{"errors": [{status, code, …}]}`).
pub async fn assert_api_error(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status().as_u16(), status, "unexpected status");
    let body: Value = res.json().await.expect("error body is JSON");
    let err = &body["errors"][0];
    assert_eq!(err["status"], status.to_string(), "{body}");
    assert!(
        err["code"].is_string() && err["detail"].is_string(),
        "{body}"
    );
    body
}

/// Asserts an RFC 6749 §5.2 error with `Cache-Control: no-store`.
pub async fn assert_oauth_error(res: reqwest::Response, status: u16, error: &str) {
    assert_eq!(res.status().as_u16(), status);
    assert_eq!(
        res.headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap()),
        Some("no-store")
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
}

/// Verifies a JWT with the npm `jose` library against the pool's published JWKS.
pub async fn verify_with_jose(app: &TestApp, pool: &str, token: &str) -> Result<Value, String> {
    verify_with_jose_for(app, pool, &app.issuer(pool), token).await
}

/// [`verify_with_jose`] for a pool whose issuer is not its path (a host-bound pool).
pub async fn verify_with_jose_for(
    app: &TestApp,
    pool: &str,
    issuer: &str,
    token: &str,
) -> Result<Value, String> {
    jose_verify(app, pool, issuer, token, "at+jwt").await
}

/// Verifies an ID token (`typ: JWT`) the way an OpenID relying party would: npm `jose` over
/// the pool's published JWKS.
pub async fn verify_id_token_with_jose(
    app: &TestApp,
    pool: &str,
    token: &str,
) -> Result<Value, String> {
    jose_verify(app, pool, &app.issuer(pool), token, "JWT").await
}

/// Verifies a Security Event Token (`typ: secevent+jwt`) with npm `jose` against the pool's
/// published JWKS.
pub async fn verify_set_with_jose(app: &TestApp, pool: &str, token: &str) -> Result<Value, String> {
    jose_verify(app, pool, &app.issuer(pool), token, "secevent+jwt").await
}

/// Verifies an OpenID Connect logout token (`typ: logout+jwt`) with npm `jose` against the
/// pool's published JWKS.
pub async fn verify_logout_token_with_jose(
    app: &TestApp,
    pool: &str,
    token: &str,
) -> Result<Value, String> {
    jose_verify(app, pool, &app.issuer(pool), token, "logout+jwt").await
}

async fn jose_verify(
    app: &TestApp,
    pool: &str,
    issuer: &str,
    token: &str,
    typ: &str,
) -> Result<Value, String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/verify-jwt.mjs");
    let out = tokio::process::Command::new("node")
        .arg(script)
        .arg(app.pool_url(pool, "/.well-known/jwks.json"))
        .arg(issuer)
        .arg(token)
        .arg(typ)
        .output()
        .await
        .expect("node runs (install the peers with `npm ci --prefix tests/peers`)");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A test peer installed by `scripts/test` in `target/peers-venv` (or found on the PATH).
pub fn venv_tool(name: &str) -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/peers-venv/bin")
        .join(name);
    if venv.exists() {
        venv
    } else {
        PathBuf::from(name)
    }
}

/// Introspection at the server answering at `base` (`http://host:port`), which must answer 200.
pub async fn introspect_at(
    http: &reqwest::Client,
    base: &str,
    pool: &str,
    c: &ClientCreds,
    token: &str,
) -> Value {
    let res = http
        .post(format!("{base}/pools/{pool}/oauth2/introspect"))
        .basic_auth(&c.id, Some(&c.secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Starts a peer that prints one line when it is ready and exits when its standard input
/// closes (when the returned child is dropped, that is when the test ends). Returns the child
/// and that line.
pub async fn start_peer(
    cmd: tokio::process::Command,
    what: &str,
) -> (tokio::process::Child, String) {
    let (child, _rest, line) = start_talking_peer(cmd, what).await;
    (child, line)
}

/// The rest of a peer's standard output, line by line.
pub type PeerLines = tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>;

/// [`start_peer`] for a peer that goes on talking on its standard output: also returns the
/// lines after the ready line.
pub async fn start_talking_peer(
    mut cmd: tokio::process::Command,
    what: &str,
) -> (tokio::process::Child, PeerLines, String) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("the {what} starts (scripts/test installs the peers): {e}"));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("the {what} starts within 30 s"))
        .unwrap()
        .unwrap_or_else(|| panic!("the {what} exited before it was ready"));
    (child, lines, line.trim().to_owned())
}
