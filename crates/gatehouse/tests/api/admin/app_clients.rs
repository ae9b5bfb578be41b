use reqwest::Method;
use serde_json::{Value, json};

use super::*;
use crate::common::assert_api_error;

#[tokio::test]
async fn app_clients_speak_json_api() {
    let (app, _, admin) = acme().await;
    let post = |body: Value, content_type: &'static str| {
        app.http
            .post(app.pool_url("acme", CLIENTS))
            .bearer_auth(&admin)
            .header("content-type", content_type)
            .body(body.to_string())
            .send()
    };
    let res = post(
        json!({"data": {"type": "app-client", "attributes": {"name": "billing"}}}),
        "application/vnd.api+json",
    )
    .await
    .unwrap();
    assert_eq!(res.headers()["content-type"], "application/vnd.api+json");
    let created = json_of(res, 201).await;
    let data = &created["data"];
    let id = data["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 26);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );
    assert_eq!(data["type"], "app-client");
    assert_eq!(data["attributes"]["name"], "billing");
    assert_eq!(data["attributes"]["secret"].as_str().unwrap().len(), 43);
    assert_eq!(
        data["attributes"]["grant_types"],
        json!([
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ])
    );
    assert_eq!(
        data["links"]["self"],
        format!("http://gatehouse.test/pools/acme/api/user-management/app-clients/{id}")
    );
    // The secret works, and is never shown again.
    let creds = ClientCreds {
        id: id.clone(),
        secret: data["attributes"]["secret"].as_str().unwrap().to_owned(),
    };
    let client_token = app.client_token("acme", &creds).await;
    let one = json_of(
        call(&app, Method::GET, &format!("{CLIENTS}/{id}"), &admin, None).await,
        200,
    )
    .await;
    assert!(one["data"]["attributes"].get("secret").is_none());
    let all = json_of(call(&app, Method::GET, CLIENTS, &admin, None).await, 200).await;
    assert!(
        all["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == id.as_str())
    );

    // Plain JSON is accepted; bad documents are refused with JSON:API errors.
    let res = post(
        json!({"data": {"type": "app-client", "attributes": {"name": "web",
            "grant_types": ["authorization_code"], "redirect_uris": ["https://web.acme.example/cb"],
            "scopes": ["openid", "email"]}}}),
        "application/json",
    )
    .await
    .unwrap();
    assert_eq!(
        json_of(res, 201).await["data"]["attributes"]["scopes"],
        json!(["openid", "email"])
    );
    for bad in [
        json!({"data": {"type": "app-client", "attributes": {}}}),
        json!({"data": {"type": "app-client", "attributes": {"name": ""}}}),
        json!({"data": {"type": "app-client", "attributes": {"name": "x", "scopes": ["root"]}}}),
        json!({"data": {"type": "app-client", "attributes": {"name": "x", "grant_types": ["implicit"]}}}),
        json!({"data": {"type": "app-client", "attributes": {"name": "x",
            "grant_types": ["authorization_code"]}}}),
        json!({"data": {"type": "app-client", "attributes": {"name": "x",
            "redirect_uris": ["http://evil.example/cb"]}}}),
        json!({"data": {"type": "app-client", "attributes": {"name": "x", "colour": "red"}}}),
    ] {
        let res = post(bad.clone(), "application/vnd.api+json").await.unwrap();
        assert_eq!(
            res.headers()["content-type"],
            "application/vnd.api+json",
            "{bad}"
        );
        assert_api_error(res, 400).await;
    }
    let res = post(
        json!({"data": {"type": "user", "attributes": {"name": "x"}}}),
        "application/vnd.api+json",
    )
    .await
    .unwrap();
    assert_api_error(res, 409).await;

    // Deleting a client ends its own tokens.
    assert_eq!(
        call(
            &app,
            Method::DELETE,
            &format!("{CLIENTS}/{id}"),
            &admin,
            None
        )
        .await
        .status(),
        204
    );
    let res = call(&app, Method::GET, &format!("{CLIENTS}/{id}"), &admin, None).await;
    assert_api_error(res, 404).await;
    let res = call(
        &app,
        Method::DELETE,
        &format!("{CLIENTS}/{id}"),
        &admin,
        None,
    )
    .await;
    assert_api_error(res, 404).await;
    let res = call(&app, Method::GET, USERS, &client_token, None).await;
    assert_api_error(res, 401).await;
}
