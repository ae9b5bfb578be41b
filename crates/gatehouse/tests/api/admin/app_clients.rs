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

fn create_body(attributes: Value) -> Value {
    json!({"data": {"type": "app-client", "attributes": attributes}})
}

#[tokio::test]
async fn public_and_third_party_clients_register_for_browser_sign_in() {
    let (app, _, admin) = acme().await;
    let res = call(
        &app,
        Method::POST,
        CLIENTS,
        &admin,
        Some(create_body(json!({
            "name": "spa",
            "public": true,
            "third_party": true,
            "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": ["https://spa.example.com/cb", "http://127.0.0.1:8400/cb"],
            "post_logout_redirect_uris": ["https://spa.example.com/Signed-Out?x=1"],
            "scopes": ["openid", "email"]
        }))),
    )
    .await;
    let created = json_of(res, 201).await;
    let a = &created["data"]["attributes"];
    assert!(a.get("secret").is_none(), "{created}");
    assert_eq!(a["public"], true);
    assert_eq!(a["third_party"], true);
    assert_eq!(
        a["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(
        a["redirect_uris"],
        json!(["https://spa.example.com/cb", "http://127.0.0.1:8400/cb"])
    );
    assert_eq!(
        a["post_logout_redirect_uris"],
        json!(["https://spa.example.com/Signed-Out?x=1"])
    );
    let id = created["data"]["id"].as_str().unwrap().to_owned();

    // Read back as registered, from one and from the listing.
    let one = json_of(
        call(&app, Method::GET, &format!("{CLIENTS}/{id}"), &admin, None).await,
        200,
    )
    .await;
    assert_eq!(one["data"]["attributes"], *a);
    let all = json_of(call(&app, Method::GET, CLIENTS, &admin, None).await, 200).await;
    let listed = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id.as_str())
        .unwrap();
    assert_eq!(listed["attributes"], *a);

    // A public client has no secret, so the client-credentials grant is not for it.
    let res = app
        .http
        .post(app.pool_url("acme", "/oauth2/token"))
        .form(&[("grant_type", "client_credentials"), ("client_id", &id)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // A public client with no grant types named gets the authorization code.
    let res = call(
        &app,
        Method::POST,
        CLIENTS,
        &admin,
        Some(create_body(json!({"name": "native", "public": true,
            "redirect_uris": ["com.example.native:/callback"]}))),
    )
    .await;
    let native = json_of(res, 201).await;
    assert_eq!(
        native["data"]["attributes"]["grant_types"],
        json!(["authorization_code"])
    );
    assert!(native["data"]["attributes"].get("secret").is_none());

    // Confidential and first-party by default, with today's grants and a secret.
    let res = call(
        &app,
        Method::POST,
        CLIENTS,
        &admin,
        Some(create_body(json!({"name": "m2m"}))),
    )
    .await;
    let m2m = json_of(res, 201).await;
    let a = &m2m["data"]["attributes"];
    assert_eq!(a["public"], false);
    assert_eq!(a["third_party"], false);
    assert_eq!(a["post_logout_redirect_uris"], json!([]));
    assert_eq!(a["secret"].as_str().unwrap().len(), 43);
    assert_eq!(
        a["grant_types"],
        json!([
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ])
    );
}

#[tokio::test]
async fn refused_registrations_are_400s_naming_the_field() {
    let (app, _, admin) = acme().await;
    let web = "https://web.example.com/cb";
    let long = format!("https://web.example.com/{}", "a".repeat(2000));
    let many: Vec<String> = (0..101)
        .map(|i| format!("https://web.example.com/{i}"))
        .collect();
    for (attributes, field) in [
        (
            json!({"name": "x", "public": true, "grant_types": ["client_credentials"]}),
            "grant_types",
        ),
        (
            json!({"name": "x", "public": true, "redirect_uris": [web],
                "grant_types": ["authorization_code",
                    "urn:ietf:params:oauth:grant-type:token-exchange"]}),
            "grant_types",
        ),
        (json!({"name": "x", "public": true}), "redirect_uris"),
        (
            json!({"name": "x", "grant_types": ["authorization_code"]}),
            "redirect_uris",
        ),
        (
            json!({"name": "x", "redirect_uris": [web],
                "grant_types": ["refresh_token", "client_credentials"]}),
            "grant_types",
        ),
        (json!({"name": "x", "grant_types": []}), "grant_types"),
        (
            json!({"name": "x", "redirect_uris": ["https://web.example.com/cb#top"]}),
            "redirect_uris",
        ),
        (
            json!({"name": "x", "redirect_uris": ["https://web.example.com@evil.com/cb"]}),
            "redirect_uris",
        ),
        (
            json!({"name": "x", "redirect_uris": ["javascript:alert(1)"]}),
            "redirect_uris",
        ),
        (
            json!({"name": "x", "redirect_uris": ["http://web.example.com/cb"]}),
            "redirect_uris",
        ),
        (
            json!({"name": "x", "redirect_uris": [long]}),
            "redirect_uris",
        ),
        (json!({"name": "x", "redirect_uris": many}), "redirect_uris"),
        (
            json!({"name": "x", "post_logout_redirect_uris": ["https://a@evil.com/"]}),
            "post_logout_redirect_uris",
        ),
        (
            json!({"name": "x", "post_logout_redirect_uris": ["/signed-out"]}),
            "post_logout_redirect_uris",
        ),
        (
            json!({"name": "x", "post_logout_redirect_uris": ["data:text/html,bye"]}),
            "post_logout_redirect_uris",
        ),
    ] {
        let res = call(
            &app,
            Method::POST,
            CLIENTS,
            &admin,
            Some(create_body(attributes.clone())),
        )
        .await;
        let body = assert_api_error(res, 400).await;
        let detail = body["errors"][0]["detail"].as_str().unwrap();
        assert!(
            detail.starts_with(&format!("{field}: ")),
            "{attributes}: {detail}"
        );
    }
    // Wrong JSON types are 400s too, and nothing was created by any of the above.
    for attributes in [
        json!({"name": "x", "public": "yes"}),
        json!({"name": "x", "third_party": 1}),
        json!({"name": "x", "post_logout_redirect_uris": "https://web.example.com/"}),
    ] {
        let res = call(
            &app,
            Method::POST,
            CLIENTS,
            &admin,
            Some(create_body(attributes.clone())),
        )
        .await;
        assert_api_error(res, 400).await;
    }
    let all = json_of(call(&app, Method::GET, CLIENTS, &admin, None).await, 200).await;
    assert!(
        all["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["attributes"]["name"] != "x"),
        "{all}"
    );
}

#[tokio::test]
async fn the_published_document_describes_the_registration_attributes() {
    let app = crate::common::spawn_app().await;
    let doc: Value = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let clients = &doc["paths"]["/user-management/app-clients"];
    let data = |schema: &Value| schema["content"]["application/vnd.api+json"]["schema"].clone();
    let request = data(&clients["post"]["requestBody"])["properties"]["data"]["properties"]
        ["attributes"]["properties"]
        .clone();
    let mut names: Vec<&String> = request.as_object().unwrap().keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "backchannel_logout_session_required",
            "backchannel_logout_uri",
            "explicit_auth_flows",
            "grant_types",
            "name",
            "post_logout_redirect_uris",
            "public",
            "redirect_uris",
            "scopes",
            "third_party"
        ]
    );
    assert_eq!(clients["post"]["operationId"], "createAppClient");
    assert_eq!(clients["post"]["x-briteaccess"]["action"], "Create");
    let created = data(&clients["post"]["responses"]["201"])["properties"]["data"].clone();
    let listed = data(&clients["get"]["responses"]["200"])["properties"]["data"]["items"].clone();
    let one = data(&doc["paths"]["/user-management/app-clients/{id}"]["get"]["responses"]["200"])
        ["properties"]["data"]
        .clone();
    let patch = &doc["paths"]["/user-management/app-clients/{id}"]["patch"];
    assert_eq!(patch["operationId"], "updateAppClient");
    assert_eq!(patch["x-briteaccess"]["action"], "Update");
    let updatable =
        data(&patch["requestBody"])["properties"]["data"]["properties"]["attributes"]["properties"]
            .clone();
    assert_eq!(
        updatable.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["explicit_auth_flows"]
    );
    let updated = data(&patch["responses"]["200"])["properties"]["data"].clone();
    for resource in [&created, &listed, &one, &updated] {
        let attributes = &resource["properties"]["attributes"]["properties"];
        for name in [
            "public",
            "third_party",
            "post_logout_redirect_uris",
            "secret",
            "backchannel_logout_uri",
            "backchannel_logout_session_required",
            "explicit_auth_flows",
        ] {
            assert!(attributes.get(name).is_some(), "{name} in {resource}");
        }
        // Always sent in answers; optional in requests.
        let required = &resource["properties"]["attributes"]["required"];
        assert!(
            required
                .as_array()
                .unwrap()
                .contains(&json!("explicit_auth_flows")),
            "{resource}"
        );
        assert_eq!(
            attributes["explicit_auth_flows"]["items"]["enum"],
            json!([
                "ALLOW_USER_PASSWORD_AUTH",
                "ALLOW_REFRESH_TOKEN_AUTH",
                "ALLOW_CUSTOM_AUTH",
                "ALLOW_USER_AUTH"
            ])
        );
    }
}
