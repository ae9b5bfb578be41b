//! Schemathesis fuzzes every operation of the published OpenAPI document with generated and
//! boundary inputs; no request may get a server error.

use gatehouse_domain::permission::Permission;

use crate::common::{spawn_app, venv_tool};

#[tokio::test]
async fn no_generated_request_gets_a_server_error() {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    app.create_user("acme", "ada", &["admin"], "ada-password-123")
        .await;
    app.create_user("acme", "alice", &[], "alice-password-1")
        .await;
    // A client holding every permission, so that the fuzzer reaches past authorization.
    let all: Vec<&str> = Permission::ALL
        .iter()
        .filter(|p| !p.is_staff_only())
        .map(|p| p.as_str())
        .collect();
    let client = app.create_client("acme", &all).await;
    let token = app.client_token("acme", &client).await;

    let out = tokio::process::Command::new(venv_tool("schemathesis"))
        .arg("run")
        .arg(app.url("/api/openapi.json"))
        .args(["--url", &app.pool_url("acme", "/api")])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "not_a_server_error"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", "25", "--seed", "20261126"])
        .args(["--no-color"])
        .output()
        .await
        .expect("schemathesis runs (pip install -r tests/peers/requirements.txt)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("passed"), "{report}");
}
