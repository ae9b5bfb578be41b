//! Real clients, unmodified, through a TLS-terminating edge on the host's default port:
//! BriteCore's Python SDK impersonates a user through a host-bound pool, and npm
//! `openid-client` runs discovery and client credentials at a host-bound pool's root and at
//! a path pool. The edge (`tests/peers/tls-edge.py`) stands in for the load balancer in front
//! of Gatehouse; it is part of the test set-up, not of Gatehouse.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};

use crate::common::*;

const PUBLIC_HOST: &str = "gatehouse.example.test";

fn peer(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/peers")
        .join(name)
}

/// A TLS listener on port 443 of a loopback address of its own, relaying to the test server.
/// The host names resolve to that address inside the peers only (they stand in for DNS).
struct Edge {
    address: String,
    ca: PathBuf,
    _child: Child,
    _dir: tempfile::TempDir,
}

impl Edge {
    async fn start(app: &TestApp, hosts: &[&str]) -> Edge {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        // A loopback address of its own, so edges of parallel tests never meet.
        let r = uuid::Uuid::new_v4().into_bytes();
        let address = format!("127.{}.{}.{}", 100 + r[0] % 100, r[1], 1 + r[2] % 250);
        let upstream = app.addr.trim_start_matches("http://");
        let mut cmd = Command::new(venv_tool("python3"));
        cmd.arg(peer("tls-edge.py"))
            .args(["--listen", &address, "--upstream", upstream, "--ca-out"])
            .arg(&ca);
        for h in hosts {
            cmd.args(["--host", h]);
        }
        let (child, line) = start_peer(cmd, "edge").await;
        assert_eq!(line, "ready", "the edge did not start");
        Edge {
            address,
            ca,
            _child: child,
            _dir: dir,
        }
    }
}

async fn app_behind_edge() -> TestApp {
    spawn_app_with(Backend::from_env(), |c| {
        c.public_url = format!("https://{PUBLIC_HOST}");
    })
    .await
}

async fn run_json(mut cmd: Command) -> Value {
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the peer finishes within 60 s")
        .unwrap();
    assert!(
        out.status.success(),
        "peer failed: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn britecore_sdk_gets_a_token_and_impersonates_through_a_host_bound_pool() {
    let app = app_behind_edge().await;
    app.create_host_pool("acme", &["acme.example.test"]).await;
    app.create_user("acme", "alice", &[], "alice-password-1")
        .await;
    let client = app.create_client("acme", &["user:Impersonate"]).await;
    let edge = Edge::start(&app, &["acme.example.test"]).await;

    let mut sdk = Command::new(venv_tool("python3"));
    sdk.arg(peer("britecore-sdk-impersonate.py"))
        .args(["--address", &edge.address, "--host", "acme.example.test"])
        // `=` form: a secret may begin with `-`.
        .arg(format!("--client-id={}", client.id))
        .arg(format!("--client-secret={}", client.secret))
        .args(["--username", "alice"])
        .env("SSL_CERT_FILE", &edge.ca);
    let out = run_json(sdk).await;

    // The SDK asked for its scope at the host's default port, and got a token for that API.
    let asked = &out["token_request"];
    assert_eq!(asked["scope"], "https://acme.example.test/api");
    assert_eq!(
        asked["url"],
        "https://acme.example.test/api/auth/oauth2/token"
    );
    let sdk_token = jwt_claims(asked["access_token"].as_str().unwrap());
    assert_eq!(sdk_token["aud"], "https://acme.example.test/api");
    assert_eq!(sdk_token["scope"], "user:Impersonate");
    assert_eq!(sdk_token["iss"], "https://acme.example.test");

    // The seed's answer shape, and a token that acts as alice, marked with the client.
    let result = &out["result"];
    assert_eq!(result["id"], "alice");
    assert_eq!(result["type"], "access-token");
    assert_eq!(result["attributes"]["impersonator"], client.id.as_str());
    let token = result["attributes"]["token"].as_str().unwrap();
    let verified = verify_with_jose_for(&app, "acme", "https://acme.example.test", token)
        .await
        .unwrap();
    let claims = &verified["payload"];
    assert_eq!(claims["username"], "alice");
    assert_eq!(claims["act"]["client_id"], client.id.as_str());
    assert_eq!(app.audit_count("acme", "impersonation.started").await, 1);
}

async fn openid_client(edge: &Edge, issuer: &str, c: &ClientCreds, extra: &[&str]) -> Value {
    let mut node = Command::new("node");
    node.arg(peer("openid-client-cc.mjs"))
        .args(["--address", &edge.address, "--issuer", issuer])
        .args(extra)
        // After `--`: a secret may begin with `-`.
        .arg("--")
        .args([&c.id, &c.secret])
        .env("NODE_EXTRA_CA_CERTS", &edge.ca);
    run_json(node).await
}

#[tokio::test]
async fn openid_client_discovers_a_host_bound_pool_at_its_root_and_a_path_pool() {
    let app = app_behind_edge().await;
    app.create_host_pool("acme", &["acme.example.test"]).await;
    app.create_pool("beta").await;
    let acme = app
        .create_client("acme", &["user:GetUser", "user:Impersonate", "openid"])
        .await;
    let beta = app.create_client("beta", &["user:GetUser"]).await;
    let edge = Edge::start(&app, &["acme.example.test", PUBLIC_HOST]).await;

    // At the host's root: the issuer is the host, and the API identifier is a scope.
    let api = "https://acme.example.test/api";
    let out = openid_client(&edge, "https://acme.example.test", &acme, &["--scope", api]).await;
    assert_eq!(out["issuer"], "https://acme.example.test");
    assert_eq!(
        out["metadata"]["token_endpoint"],
        "https://acme.example.test/oauth2/token"
    );
    assert_eq!(out["token"]["scope"], "user:GetUser user:Impersonate");
    let claims = jwt_claims(out["token"]["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], api);

    // The same through RFC 8707 `resource`; and with neither, every scope for the issuer.
    let out = openid_client(
        &edge,
        "https://acme.example.test",
        &acme,
        &["--resource", api],
    )
    .await;
    assert_eq!(out["token"]["scope"], "user:GetUser user:Impersonate");
    assert_eq!(
        jwt_claims(out["token"]["access_token"].as_str().unwrap())["aud"],
        api
    );
    let out = openid_client(&edge, "https://acme.example.test", &acme, &[]).await;
    assert_eq!(
        out["token"]["scope"],
        "user:GetUser user:Impersonate openid"
    );

    // A path pool, under the public URL.
    let issuer = format!("https://{PUBLIC_HOST}/pools/beta");
    let out = openid_client(&edge, &issuer, &beta, &["--scope", "user:GetUser"]).await;
    assert_eq!(out["issuer"], issuer.as_str());
    assert_eq!(out["token"]["scope"], "user:GetUser");
    let claims = jwt_claims(out["token"]["access_token"].as_str().unwrap());
    assert_eq!(claims["iss"], issuer.as_str());
}
