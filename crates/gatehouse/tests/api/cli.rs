//! The binary: admin subcommands with `--json`, configuration errors, and `serve` with its
//! operational endpoints and graceful shutdown.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub(crate) fn gatehouse(dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    c.current_dir(dir)
        .env_remove("GATEHOUSE_DATABASE_URL")
        .env("GATEHOUSE_PASSWORD_HASHING__MEMORY_KIB", "1024")
        .env("GATEHOUSE_PASSWORD_HASHING__ITERATIONS", "1");
    c
}

/// Creates a confirmed user with this password, through the CLI.
pub(crate) fn user_with_password(dir: &std::path::Path, pool: &str, name: &str, password: &str) {
    let mut child = gatehouse(dir)
        .args(["user", "create", "--pool", pool, name, "--email"])
        .arg(format!("{name}@{pool}.example"))
        .args(["--name", name, "--password-stdin", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    json_of(child.wait_with_output().unwrap());
}

pub(crate) fn json_of(out: std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn admin_subcommands_print_json() {
    let dir = tempfile::tempdir().unwrap();
    let pool = json_of(
        gatehouse(dir.path())
            .args(["pool", "create", "acme", "--alg", "EdDSA", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(pool["pool"], "acme");
    assert!(pool["issuer"].as_str().unwrap().ends_with("/pools/acme"));

    let client = json_of(
        gatehouse(dir.path())
            .args([
                "client",
                "create",
                "--pool",
                "acme",
                "--name",
                "ops",
                "--scope",
                "user:Impersonate",
                "--json",
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(client["client_secret"].as_str().unwrap().len(), 43);

    let mut child = gatehouse(dir.path())
        .args([
            "user",
            "create",
            "--pool",
            "staff",
            "root",
            "--email",
            "root@example.com",
            "--name",
            "Root",
            "--role",
            "admin",
            "--password-stdin",
            "--json",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a-long-staff-password\n")
        .unwrap();
    let user = json_of(child.wait_with_output().unwrap());
    assert_eq!(user["status"], "CONFIRMED");

    // A duplicate is refused with a message, not a crash.
    let out = gatehouse(dir.path())
        .args(["pool", "create", "acme"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("conflict"));
}

#[test]
fn pool_set_hosts_rebinds_and_says_what_happens_to_the_issuer() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| json_of(gatehouse(dir.path()).args(args).output().unwrap());
    let created = run(&[
        "pool",
        "create",
        "acme",
        "--host",
        "acme.example.test",
        "--json",
    ]);
    assert_eq!(created["issuer"], "http://acme.example.test");

    // A host in front of the first keeps nothing of the old issuer.
    let moved = run(&[
        "pool",
        "set-hosts",
        "acme",
        "--host",
        "login.acme.example.test",
        "--host",
        "acme.example.test",
        "--json",
    ]);
    assert_eq!(moved["issuer"], "http://login.acme.example.test");
    assert_eq!(moved["previous_issuer"], "http://acme.example.test");
    assert_eq!(moved["issuer_changed"], true);
    assert_eq!(
        moved["hosts"],
        serde_json::json!(["login.acme.example.test", "acme.example.test"])
    );
    let kept = run(&[
        "pool",
        "set-hosts",
        "acme",
        "--host",
        "login.acme.example.test",
        "--json",
    ]);
    assert_eq!(kept["issuer_changed"], false);

    // Without --json it says it in words; with no host the pool returns to its path issuer.
    let out = gatehouse(dir.path())
        .args(["pool", "set-hosts", "acme"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("/pools/acme"), "{said}");
    assert!(said.contains("refused"), "{said}");

    let out = gatehouse(dir.path())
        .args(["pool", "set-hosts", "nope", "--host", "x.example.test"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = gatehouse(dir.path())
        .args(["pool", "set-hosts", "acme", "--host", "bad host"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("host"));
}

#[test]
fn unknown_configuration_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = gatehouse(dir.path())
        .env("GATEHOUSE_LISTEN_PORT", "9")
        .args(["pool", "create", "acme"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen_port"));
}

/// `gatehouse serve` on a free port, over the database in `dir`; its standard error is piped.
pub(crate) fn spawn_server(dir: &std::path::Path) -> (std::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = gatehouse(dir)
        .env("GATEHOUSE_LISTEN", format!("127.0.0.1:{port}"))
        .arg("serve")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, format!("http://127.0.0.1:{port}"))
}

/// Waits until the server at `base` answers its health check.
pub(crate) async fn wait_until_up(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await {
            assert_eq!(r.status(), 200);
            return;
        }
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn serve_starts_answers_and_shuts_down_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let (child, base) = spawn_server(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::new();
    rt.block_on(async {
        wait_until_up(&http, &base).await;
        assert_eq!(
            http.get(format!("{base}/readyz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        let jwks: Value = http
            .get(format!("{base}/pools/staff/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // The access-token key (ES256) and the ID-token key (RS256), in no set order.
        let mut kty: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kty"].as_str().unwrap())
            .collect();
        kty.sort_unstable();
        assert_eq!(kty, ["EC", "RSA"]);
        let metrics = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(metrics.contains("gatehouse_http_requests_total{class=\"2xx\"}"));
    });
    // SIGTERM: the server finishes and exits cleanly.
    Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("gatehouse user create --pool staff"), "{log}");
    assert!(dir.path().join("gatehouse.db").exists());
    assert!(dir.path().join("gatehouse.key").exists());
}

pub(crate) fn failure_of(out: std::process::Output) -> String {
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_command_from_another_folder_uses_the_key_beside_the_database() {
    let home = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", home.path().join("gatehouse.db").display());
    json_of(
        gatehouse(home.path())
            .env("GATEHOUSE_DATABASE_URL", &db)
            .args(["pool", "create", "acme", "--json"])
            .output()
            .unwrap(),
    );
    let key = std::fs::read_to_string(home.path().join("gatehouse.key")).unwrap();

    // From another folder the same database is opened with the same key: nothing new is made
    // there, and the new pool's key opens with the database's master key.
    json_of(
        gatehouse(elsewhere.path())
            .env("GATEHOUSE_DATABASE_URL", &db)
            .args(["pool", "create", "beta", "--json"])
            .output()
            .unwrap(),
    );
    assert!(!elsewhere.path().join("gatehouse.key").exists());
    assert_eq!(
        std::fs::read_to_string(home.path().join("gatehouse.key")).unwrap(),
        key
    );

    // Another key is refused, by the CLI and by the server, naming both fingerprints and
    // where the wrong one came from; nothing is written.
    let other = gatehouse_crypto::keys::MasterKey::generate();
    let mine = gatehouse_crypto::keys::MasterKey::from_bytes(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            key.trim(),
        )
        .unwrap(),
    )
    .unwrap();
    for args in [&["pool", "create", "gamma"][..], &["serve"][..]] {
        let err = failure_of(
            gatehouse(elsewhere.path())
                .env("GATEHOUSE_DATABASE_URL", &db)
                .env("GATEHOUSE_MASTER_KEY", other.to_b64())
                .env("GATEHOUSE_LISTEN", "127.0.0.1:0")
                .args(args)
                .output()
                .unwrap(),
        );
        assert!(err.contains(&mine.fingerprint()), "{err}");
        assert!(err.contains(&other.fingerprint()), "{err}");
        assert!(err.contains("GATEHOUSE_MASTER_KEY"), "{err}");
    }
    // A key file named but missing is not created for a database that has keys.
    let missing = elsewhere.path().join("missing.key");
    let err = failure_of(
        gatehouse(elsewhere.path())
            .env("GATEHOUSE_DATABASE_URL", &db)
            .env("GATEHOUSE_MASTER_KEY_FILE", &missing)
            .args(["pool", "create", "gamma"])
            .output()
            .unwrap(),
    );
    assert!(err.contains("missing.key"), "{err}");
    assert!(!missing.exists());
    let slugs: Vec<String> = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            use sqlx::Connection;
            sqlx::any::install_default_drivers();
            let mut conn = sqlx::AnyConnection::connect(&db).await.unwrap();
            sqlx::query_scalar("SELECT slug FROM pools ORDER BY slug")
                .fetch_all(&mut conn)
                .await
                .unwrap()
        });
    assert_eq!(slugs, ["acme", "beta", "staff"]);
}

#[test]
fn a_database_from_before_fingerprints_checks_its_sealed_keys() {
    use sqlx::{Connection, Executor};
    let dir = tempfile::tempdir().unwrap();
    json_of(
        gatehouse(dir.path())
            .args(["pool", "create", "acme", "--json"])
            .output()
            .unwrap(),
    );
    // As a database made before the fingerprint was recorded.
    let url = format!("sqlite://{}", dir.path().join("gatehouse.db").display());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            sqlx::any::install_default_drivers();
            let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
            conn.execute("DELETE FROM gatehouse_meta").await.unwrap();
        });
    let other = gatehouse_crypto::keys::MasterKey::generate();
    let err = failure_of(
        gatehouse(dir.path())
            .env("GATEHOUSE_MASTER_KEY", other.to_b64())
            .args(["pool", "create", "beta"])
            .output()
            .unwrap(),
    );
    assert!(err.contains("does not open"), "{err}");
    // Its own key is accepted, and recorded from then on.
    json_of(
        gatehouse(dir.path())
            .args(["pool", "create", "beta", "--json"])
            .output()
            .unwrap(),
    );
    let err = failure_of(
        gatehouse(dir.path())
            .env("GATEHOUSE_MASTER_KEY", other.to_b64())
            .args(["pool", "create", "gamma"])
            .output()
            .unwrap(),
    );
    assert!(err.contains(&other.fingerprint()), "{err}");
}

#[test]
fn operators_list_pools_users_and_clients() {
    let dir = tempfile::tempdir().unwrap();
    for pool in ["beta", "alpha"] {
        json_of(
            gatehouse(dir.path())
                .args(["pool", "create", pool, "--json"])
                .output()
                .unwrap(),
        );
    }
    for name in ["carol", "bob", "dave"] {
        user_with_password(dir.path(), "alpha", name, "a-long-password-1");
    }
    let client = json_of(
        gatehouse(dir.path())
            .args([
                "client", "create", "--pool", "alpha", "--name", "ops", "--json",
            ])
            .output()
            .unwrap(),
    );

    let pools = json_of(
        gatehouse(dir.path())
            .args(["pool", "list", "--json"])
            .output()
            .unwrap(),
    );
    let names: Vec<&str> = pools["pools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pool"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "beta", "staff"]);
    assert_eq!(pools["next"], "");

    // Two at a time: the first page names where the second starts.
    let first = json_of(
        gatehouse(dir.path())
            .args(["user", "list", "--pool", "alpha", "--limit", "2", "--json"])
            .output()
            .unwrap(),
    );
    let users = |page: &Value| -> Vec<String> {
        page["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(users(&first), ["bob", "carol"]);
    assert_eq!(first["next"], "carol");
    let second = json_of(
        gatehouse(dir.path())
            .args([
                "user", "list", "--pool", "alpha", "--limit", "2", "--cursor", "carol",
            ])
            .arg("--json")
            .output()
            .unwrap(),
    );
    assert_eq!(users(&second), ["dave"]);
    assert_eq!(second["next"], "");
    assert_eq!(second["users"][0]["status"], "CONFIRMED");

    let clients = json_of(
        gatehouse(dir.path())
            .args(["client", "list", "--pool", "alpha", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(clients["clients"][0]["client_id"], client["client_id"]);
    assert!(
        !clients
            .to_string()
            .contains(client["client_secret"].as_str().unwrap())
    );

    // Text for people, and a clear error for a pool that does not exist.
    let out = gatehouse(dir.path())
        .args(["user", "list", "--pool", "alpha", "--limit", "2"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("bob\tbob@alpha.example\tCONFIRMED"), "{text}");
    assert!(text.contains("(more: --cursor carol)"), "{text}");
    let out = gatehouse(dir.path())
        .args(["user", "list", "--pool", "nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}

#[test]
fn clients_register_redirect_uris_grants_and_public_or_third_party() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| gatehouse(dir.path()).args(args).output().unwrap();
    json_of(run(&["pool", "create", "acme", "--json"]));

    let spa = json_of(run(&[
        "client",
        "create",
        "--pool",
        "acme",
        "--name",
        "spa",
        "--public",
        "--third-party",
        "--redirect-uri",
        "https://spa.example.com/cb",
        "--redirect-uri",
        "http://127.0.0.1:8400/cb",
        "--post-logout-redirect-uri",
        "https://spa.example.com/bye",
        "--grant",
        "authorization_code",
        "--grant",
        "refresh_token",
        "--scope",
        "openid",
        "--auth-flows",
        "ALLOW_USER_AUTH, ALLOW_REFRESH_TOKEN_AUTH",
        "--json",
    ]));
    assert!(spa.get("client_secret").is_none(), "{spa}");
    assert_eq!(
        spa["explicit_auth_flows"],
        serde_json::json!(["ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_USER_AUTH"])
    );
    assert_eq!(spa["public"], true);
    assert_eq!(spa["third_party"], true);
    assert_eq!(
        spa["grant_types"],
        serde_json::json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(
        spa["redirect_uris"],
        serde_json::json!(["https://spa.example.com/cb", "http://127.0.0.1:8400/cb"])
    );
    assert_eq!(
        spa["post_logout_redirect_uris"],
        serde_json::json!(["https://spa.example.com/bye"])
    );
    assert_eq!(spa["scopes"], serde_json::json!(["openid"]));
    let spa_id = spa["client_id"].as_str().unwrap();

    // In text too, a public client prints no secret.
    let out = run(&[
        "client",
        "create",
        "--pool",
        "acme",
        "--name",
        "native",
        "--public",
        "--redirect-uri",
        "com.example.native:/callback",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("client_secret: none (public client)"),
        "{text}"
    );
    assert!(!text.contains("shown once"), "{text}");
    assert!(text.contains("grant types: authorization_code\n"), "{text}");

    // A confidential client may hold every grant, and gets its secret.
    let web = json_of(run(&[
        "client",
        "create",
        "--pool",
        "acme",
        "--name",
        "web",
        "--redirect-uri",
        "https://web.example.com/cb",
        "--grant",
        "authorization_code",
        "--grant",
        "client_credentials",
        "--json",
    ]));
    assert_eq!(web["client_secret"].as_str().unwrap().len(), 43);
    assert_eq!(
        web["explicit_auth_flows"],
        serde_json::json!([
            "ALLOW_USER_PASSWORD_AUTH",
            "ALLOW_REFRESH_TOKEN_AUTH",
            "ALLOW_CUSTOM_AUTH"
        ]),
        "the default flows"
    );
    assert_eq!(web["public"], false);
    assert_eq!(web["third_party"], false);

    // Show and list say what was registered, never a secret.
    let shown = json_of(run(&["client", "show", "--pool", "acme", spa_id, "--json"]));
    for key in [
        "public",
        "third_party",
        "grant_types",
        "redirect_uris",
        "post_logout_redirect_uris",
        "explicit_auth_flows",
    ] {
        assert_eq!(shown[key], spa[key], "{key}");
    }
    let out = run(&["client", "show", "--pool", "acme", spa_id]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("type: public\nparty: third\n"), "{text}");
    assert!(
        text.contains("sign-in flows: ALLOW_REFRESH_TOKEN_AUTH ALLOW_USER_AUTH\n"),
        "{text}"
    );
    assert!(
        text.contains("post-logout redirect URIs: https://spa.example.com/bye\n"),
        "{text}"
    );
    let listed = json_of(run(&["client", "list", "--pool", "acme", "--json"]));
    let row = listed["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_id"] == spa_id)
        .unwrap();
    assert_eq!(row["public"], true);
    assert_eq!(row["third_party"], true);
    assert!(
        !listed
            .to_string()
            .contains(web["client_secret"].as_str().unwrap())
    );
    let out = run(&["client", "list", "--pool", "acme"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("{spa_id}\tspa\tpublic\tthird-party")),
        "{text}"
    );

    // Refusals name what is wrong, and create nothing.
    for (args, named) in [
        (
            &["--public", "--grant", "client_credentials"][..],
            "grant_types",
        ),
        (&["--public"][..], "redirect_uris"),
        (
            &["--redirect-uri", "http://web.example.com/cb"][..],
            "redirect_uris",
        ),
        (
            &["--post-logout-redirect-uri", "https://a@evil.com/"][..],
            "post_logout_redirect_uris",
        ),
        (&["--grant", "refresh_token"][..], "grant_types"),
        (&["--grant", "implicit"][..], "--grant"),
        (
            &["--auth-flows", "ALLOW_USER_SRP_AUTH"][..],
            "does not speak SRP",
        ),
    ] {
        let out = gatehouse(dir.path())
            .args([
                "client", "create", "--pool", "acme", "--name", "bad", "--json",
            ])
            .args(args)
            .output()
            .unwrap();
        let err = failure_of(out);
        assert!(err.contains(named), "{args:?}: {err}");
    }
    let listed = json_of(run(&["client", "list", "--pool", "acme", "--json"]));
    assert_eq!(listed["clients"].as_array().unwrap().len(), 3, "{listed}");
}

#[test]
fn identity_providers_are_created_and_listed_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| gatehouse(dir.path()).args(args).output().unwrap();
    json_of(run(&["pool", "create", "acme", "--json"]));
    let google = json_of(run(&[
        "idp",
        "create",
        "--pool",
        "acme",
        "--name",
        "Google",
        "--preset",
        "google",
        "--client-id",
        "g-client",
        "--client-secret",
        "g-secret",
        "--map",
        "nickname=given_name",
        "--json",
    ]));
    assert_eq!(google["provider_type"], "google");
    assert_eq!(google["issuer"], "https://accounts.google.com");
    assert_eq!(
        google["attribute_mapping"],
        serde_json::json!({"nickname": "given_name"})
    );
    assert!(
        google["callback_url"]
            .as_str()
            .unwrap()
            .ends_with("/pools/acme/oauth2/idpresponse")
    );
    assert!(!google.to_string().contains("g-secret"));
    // An issuer needs its client; a mapping names a profile attribute, never roles.
    let err = failure_of(run(&[
        "idp",
        "create",
        "--pool",
        "acme",
        "--name",
        "corp",
        "--oidc-issuer",
        "https://op.example.com",
    ]));
    assert!(err.contains("client"), "{err}");
    let err = failure_of(run(&[
        "idp",
        "create",
        "--pool",
        "acme",
        "--name",
        "corp",
        "--oidc-issuer",
        "https://op.example.com",
        "--client-id",
        "c",
        "--client-secret",
        "s",
        "--map",
        "roles=groups",
    ]));
    assert!(err.contains("attribute_mapping"), "{err}");
    let listed = json_of(run(&["idp", "list", "--pool", "acme", "--json"]));
    assert_eq!(
        listed["identity_providers"].as_array().unwrap().len(),
        1,
        "{listed}"
    );
}
