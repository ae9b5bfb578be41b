//! The operator's commands against a running server over the same database: what they change
//! is what the server answers, within the seconds its caches allow.

use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cli::{failure_of, gatehouse, json_of, spawn_server, user_with_password, wait_until_up};
use crate::common::{ClientCreds, introspect_at, jwt_header};

struct Server {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    async fn sign_in(&self, client: &ClientCreds, username: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/pools/acme/api/auth/initiate", self.base))
            .json(&json!({"flow": "USER_PASSWORD", "client_id": client.id,
                "client_secret": client.secret, "username": username,
                "password": "a-long-password-1"}))
            .send()
            .await
            .unwrap()
    }

    async fn token(&self, client: &ClientCreds, username: &str) -> String {
        let res = self.sign_in(client, username).await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn active(&self, client: &ClientCreds, token: &str) -> bool {
        introspect_at(&self.http, &self.base, "acme", client, token).await["active"] == true
    }

    async fn published_kids(&self) -> Option<Vec<String>> {
        let res = self
            .http
            .get(format!("{}/pools/acme/.well-known/jwks.json", self.base))
            .send()
            .await
            .unwrap();
        if res.status() == 404 {
            return None;
        }
        let jwks: Value = res.json().await.unwrap();
        Some(
            jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect(),
        )
    }
}

/// Polls `check` until it holds: what another process changed reaches the server's caches
/// within seconds. Ten seconds is the bound, far above them.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn cli(dir: &std::path::Path, args: &[&str]) -> Value {
    json_of(gatehouse(dir).args(args).arg("--json").output().unwrap())
}

#[tokio::test]
async fn operators_act_on_users_clients_keys_and_pools_of_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli(d, &["pool", "create", "acme"]);
    user_with_password(d, "acme", "bob", "a-long-password-1");
    let created = cli(d, &["client", "create", "--pool", "acme", "--name", "app"]);
    let client = ClientCreds {
        id: created["client_id"].as_str().unwrap().to_owned(),
        secret: created["client_secret"].as_str().unwrap().to_owned(),
    };
    let (child, base) = spawn_server(d);
    let server = Server {
        child,
        base,
        http: reqwest::Client::new(),
    };
    wait_until_up(&server.http, &server.base).await;

    // Sign-out: every session ends, every token issued until now is refused.
    let first = server.token(&client, "bob").await;
    let shown = cli(d, &["user", "show", "--pool", "acme", "bob"]);
    assert_eq!(shown["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(shown["sessions"][0]["kind"], "sign_in");
    let out = cli(d, &["user", "sign-out", "--pool", "acme", "bob"]);
    assert_eq!(out["sessions_ended"], 1);
    assert!(!server.active(&client, &first).await);

    // Disable: refused at sign-in, its token too; enable: back.
    let second = server.token(&client, "bob").await;
    assert_eq!(
        cli(d, &["user", "disable", "--pool", "acme", "bob"])["disabled"],
        true
    );
    assert!(!server.active(&client, &second).await);
    assert!(
        server
            .sign_in(&client, "bob")
            .await
            .status()
            .is_client_error()
    );
    let shown = cli(d, &["user", "show", "--pool", "acme", "bob"]);
    assert_eq!(shown["enabled"], false);
    assert_eq!(shown["sessions"], json!([]));
    cli(d, &["user", "enable", "--pool", "acme", "bob"]);
    let third = server.token(&client, "bob").await;

    // The pool shows one current key of each family.
    let shown = cli(d, &["pool", "show", "acme"]);
    let families: Vec<(&str, &str, &str)> = shown["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let field = |n: &str| k[n].as_str().unwrap();
            (field("purpose"), field("alg"), field("state"))
        })
        .collect();
    assert_eq!(
        families,
        [
            ("access", "ES256", "current"),
            ("id_token", "RS256", "current")
        ]
    );
    let id_key = shown["keys"][1]["kid"].as_str().unwrap().to_owned();

    // Key rotation: the server publishes the new keys and signs with the new current one
    // within seconds; the token signed before stays valid. The ID-token key stays as it is.
    let before = jwt_header(&third)["kid"].as_str().unwrap().to_owned();
    let rotated = cli(d, &["pool", "rotate-key", "acme"]);
    assert_eq!(rotated["purpose"], "access");
    let current = rotated["current"].as_str().unwrap().to_owned();
    assert_eq!(rotated["previous"], before.as_str());
    eventually("the server publishes the rotated keys", || async {
        server.published_kids().await.is_some_and(|k| {
            k.contains(&current) && k.contains(&before) && k.contains(&id_key) && k.len() == 4
        })
    })
    .await;
    eventually("the server signs with the new key", || async {
        let t = server.token(&client, "bob").await;
        jwt_header(&t)["kid"] == current.as_str()
    })
    .await;
    assert!(server.active(&client, &third).await);
    // A second rotation right away would refuse live tokens: it needs --force.
    let refused = failure_of(
        gatehouse(d)
            .args(["pool", "rotate-key", "acme"])
            .output()
            .unwrap(),
    );
    assert!(refused.contains(&before), "{refused}");

    // The ID-token keys rotate on their own: the old one stays published beside the new ones.
    let rotated = cli(d, &["pool", "rotate-key", "acme", "--purpose", "id-token"]);
    assert_eq!(rotated["purpose"], "id_token");
    assert_eq!(rotated["previous"], id_key.as_str());
    let id_current = rotated["current"].as_str().unwrap().to_owned();
    let id_next = rotated["next"].as_str().unwrap().to_owned();
    eventually("the server publishes the rotated ID-token keys", || async {
        server.published_kids().await.is_some_and(|k| {
            [&id_key, &id_current, &id_next, &current]
                .iter()
                .all(|kid| k.contains(kid))
                && k.len() == 6
        })
    })
    .await;
    assert!(server.active(&client, &third).await);

    // Client: shown without its secret; deleted, it gets no tokens.
    let shown = cli(d, &["client", "show", "--pool", "acme", &client.id]);
    assert_eq!(shown["client_id"], client.id.as_str());
    assert_eq!(shown["confidential"], true);
    assert!(!shown.to_string().contains(&client.secret));

    // Delete the user: its token is refused.
    cli(d, &["user", "delete", "--pool", "acme", "bob"]);
    assert!(!server.active(&client, &third).await);
    let missing = failure_of(
        gatehouse(d)
            .args(["user", "show", "--pool", "acme", "bob"])
            .output()
            .unwrap(),
    );
    assert!(missing.contains("not found"), "{missing}");

    cli(d, &["client", "delete", "--pool", "acme", &client.id]);
    eventually("the deleted client is refused", || async {
        server
            .http
            .post(format!("{}/pools/acme/oauth2/token", server.base))
            .basic_auth(&client.id, Some(&client.secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .status()
            == 401
    })
    .await;

    // The pool: not without --yes; then gone from the server too.
    let unconfirmed = failure_of(
        gatehouse(d)
            .args(["pool", "delete", "acme"])
            .output()
            .unwrap(),
    );
    assert!(unconfirmed.contains("--yes"), "{unconfirmed}");
    assert_eq!(
        cli(d, &["pool", "delete", "acme", "--yes"])["deleted"],
        true
    );
    eventually("the deleted pool is gone", || async {
        server.published_kids().await.is_none()
    })
    .await;
    let pools = cli(d, &["pool", "list"]);
    assert_eq!(pools["pools"].as_array().unwrap().len(), 1);
    let staff = failure_of(
        gatehouse(d)
            .args(["pool", "delete", "staff", "--yes"])
            .output()
            .unwrap(),
    );
    assert!(staff.contains("cannot be deleted"), "{staff}");
}

/// On PostgreSQL, the commands print what they were asked for and nothing else: no notices
/// about migrations that are already applied.
#[tokio::test]
async fn commands_on_postgresql_print_no_notices() {
    let url = gatehouse_store::test_support::fresh_postgres_url().await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("master.key");
    std::fs::write(&key, gatehouse_crypto::keys::MasterKey::generate().to_b64()).unwrap();
    for args in [
        &["pool", "create", "acme", "--json"][..],
        &["pool", "list", "--json"][..],
        &["pool", "show", "acme", "--json"][..],
    ] {
        let out = gatehouse(dir.path())
            .env("GATEHOUSE_DATABASE_URL", &url)
            .env("GATEHOUSE_MASTER_KEY_FILE", &key)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{args:?}");
        serde_json::from_slice::<Value>(&out.stdout).unwrap();
    }
    gatehouse_store::test_support::drop_postgres_database(&url).await;
}

/// The sign-in page of `pool` for `client_id`, as a browser gets it.
async fn sign_in_page(server: &Server, pool: &str, client_id: &str) -> String {
    let url = format!(
        "{}/pools/{pool}/oauth2/authorize?response_type=code&client_id={client_id}\
         &redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb&scope=openid\
         &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
        server.base
    );
    let res = server.http.get(url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

#[tokio::test]
async fn operators_theme_a_pool_s_pages_through_the_same_checks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let web_client = |pool: &str| {
        cli(
            d,
            &[
                "client",
                "create",
                "--pool",
                pool,
                "--name",
                "web",
                "--redirect-uri",
                "https://app.example.com/cb",
                "--grant",
                "authorization_code",
            ],
        )["client_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    cli(d, &["pool", "create", "acme"]);
    cli(d, &["pool", "create", "beta"]);
    let acme_client = web_client("acme");
    let beta_client = web_client("beta");

    use base64::Engine;
    let logo = d.join("logo.png");
    std::fs::write(
        &logo,
        base64::engine::general_purpose::STANDARD
            .decode(crate::theme::PNG_1X1)
            .unwrap(),
    )
    .unwrap();
    let themed = cli(
        d,
        &[
            "pool",
            "set-theme",
            "--pool",
            "acme",
            "--display-name",
            "Acme Insurance",
            "--accent-color",
            "#0b6e4f",
            "--logo",
            logo.to_str().unwrap(),
        ],
    );
    assert_eq!(themed["display_name"], "Acme Insurance");
    assert_eq!(themed["accent_color"], "#0b6e4f");
    assert_eq!(themed["logo"]["type"], "image/png");
    assert!(themed["background_color"].is_null());

    // The service's checks hold for the operator too; nothing changes on a refusal.
    let refused = failure_of(
        gatehouse(d)
            .args([
                "pool",
                "set-theme",
                "--pool",
                "acme",
                "--accent-color",
                "#ffff00",
            ])
            .output()
            .unwrap(),
    );
    assert!(refused.contains("AccentColor"), "{refused}");
    let svg = d.join("logo.svg");
    std::fs::write(&svg, "<svg xmlns='http://www.w3.org/2000/svg'/>").unwrap();
    let refused = failure_of(
        gatehouse(d)
            .args(["pool", "set-theme", "--pool", "acme", "--logo"])
            .arg(&svg)
            .output()
            .unwrap(),
    );
    assert!(refused.contains("not a PNG, JPEG or WebP"), "{refused}");
    let big = d.join("big.png");
    let mut bytes = std::fs::read(&logo).unwrap();
    bytes.resize(48 * 1024 + 1, 0);
    std::fs::write(&big, bytes).unwrap();
    let refused = failure_of(
        gatehouse(d)
            .args(["pool", "set-theme", "--pool", "acme", "--logo"])
            .arg(&big)
            .output()
            .unwrap(),
    );
    assert!(refused.contains("48 KiB"), "{refused}");

    // A running server shows it on acme's pages, not on beta's.
    let (child, base) = spawn_server(d);
    let server = Server {
        child,
        base,
        http: reqwest::Client::new(),
    };
    wait_until_up(&server.http, &server.base).await;
    let html = sign_in_page(&server, "acme", &acme_client).await;
    assert!(
        html.contains("<title>Sign in · Acme Insurance</title>"),
        "{html}"
    );
    assert!(html.contains("--accent: #0b6e4f;") && html.contains(r#"alt="Acme Insurance""#));
    let html = sign_in_page(&server, "beta", &beta_client).await;
    assert!(html.contains("<title>Sign in · beta</title>") && !html.contains("<img"));

    // --clear unsets what it does not set; the server follows within its cache's seconds.
    let cleared = cli(
        d,
        &[
            "pool",
            "set-theme",
            "--pool",
            "acme",
            "--clear",
            "--background-color",
            "#f4efe6",
        ],
    );
    assert!(cleared["display_name"].is_null() && cleared["logo"].is_null());
    assert_eq!(cleared["background_color"], "#f4efe6");
    eventually("the server shows the cleared theme", || async {
        let html = sign_in_page(&server, "acme", &acme_client).await;
        html.contains("<title>Sign in · acme</title>")
            && html.contains("body { background: #f4efe6; }")
            && !html.contains("<img")
    })
    .await;
}
