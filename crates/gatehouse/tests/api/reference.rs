//! Gatehouse serves every path of the reference document, and its published OpenAPI
//! document lists them.

use serde_json::Value;

use crate::common::spawn_app;

fn concrete(path: &str) -> String {
    path.replace("{username}", "alice")
        .replace("{group}", "support-team")
        .replace("{id}", "00000000-0000-4000-8000-000000000000")
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_never_fails_with_5xx() {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    app.create_user("acme", "ada", &["admin"], "ada-password-123")
        .await;
    app.create_user("acme", "alice", &[], "alice-password-1")
        .await;
    let client = app.create_client("acme", &[]).await;
    let admin = app
        .sign_in("acme", &client, "ada", "ada-password-123")
        .await;

    let doc: Value = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reference: Value = serde_json::from_str(include_str!(
        "../../../gatehouse-http/openapi/briteauth-openapi.json"
    ))
    .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for (path, ops) in reference["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            assert!(
                paths[path].get(method).is_some(),
                "{method} {path} is not published"
            );
        }
    }

    let mut checked = 0;
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let url = app.pool_url("acme", &format!("/api{}", concrete(path)));
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            for token in [None, Some(admin.as_str())] {
                let mut req = app.http.request(method.clone(), &url);
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                let res = req.send().await.unwrap();
                let status = res.status().as_u16();
                // A stream of server-sent events does not end: its answer is its status.
                let streams = res
                    .headers()
                    .get("content-type")
                    .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
                let body = if streams {
                    String::new()
                } else {
                    res.text().await.unwrap()
                };
                assert!(status < 500, "{method} {path}: {status} {body}");
                assert_ne!(status, 405, "{method} {path} is not routed");
                assert!(
                    !(status == 404 && body.contains("no such resource")),
                    "{method} {path} is not routed"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 2 * 38, "only {checked} calls");
}
