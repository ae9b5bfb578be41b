//! An app client's API sign-in flows (Cognito's `ExplicitAuthFlows`, the admin API's
//! `explicit_auth_flows`): password, refresh and custom sign-in unless narrowed; a flow left
//! out is refused before anything about the user is looked at, at `/cognito` and at
//! `/api/auth/initiate` alike, while the token endpoint's refresh grant is left to
//! `grant_types`.

use gatehouse_hooks::test_support as wasm;
use reqwest::Method;
use serde_json::{Value, json};

use crate::admin::{CLIENTS, acme, call as admin_call, json_of};
use crate::cognito::call;
use crate::common::*;
use crate::hooks::{answer, custom_auth_hooks, initiate};

const DEFAULT_FLOWS: [&str; 3] = [
    "ALLOW_USER_PASSWORD_AUTH",
    "ALLOW_REFRESH_TOKEN_AUTH",
    "ALLOW_CUSTOM_AUTH",
];

/// Creates a public client that holds the refresh grant, with `flows` if given; its answer.
async fn create(app: &TestApp, admin: &str, flows: Option<Value>) -> Value {
    let mut attributes = json!({"name": "flows", "public": true,
        "grant_types": ["authorization_code", "refresh_token"],
        "redirect_uris": ["https://app.example.test/cb"]});
    if let Some(flows) = flows {
        attributes["explicit_auth_flows"] = flows;
    }
    json_of(
        admin_call(
            app,
            Method::POST,
            CLIENTS,
            admin,
            Some(json!({"data": {"type": "app-client", "attributes": attributes}})),
        )
        .await,
        201,
    )
    .await
}

async fn patch(app: &TestApp, admin: &str, id: &str, body: Value) -> reqwest::Response {
    admin_call(
        app,
        Method::PATCH,
        &format!("{CLIENTS}/{id}"),
        admin,
        Some(body),
    )
    .await
}

fn flows_body(flows: Value) -> Value {
    json!({"data": {"type": "app-client", "attributes": {"explicit_auth_flows": flows}}})
}

fn password_auth(client: &str) -> Value {
    json!({"AuthFlow": "USER_PASSWORD_AUTH", "ClientId": client,
           "AuthParameters": {"USERNAME": "alice", "PASSWORD": "alice-password-1"}})
}

fn refresh_auth(flow: &str, client: &str, token: &str) -> Value {
    json!({"AuthFlow": flow, "ClientId": client, "AuthParameters": {"REFRESH_TOKEN": token}})
}

/// `/api/auth/initiate`: its status and body.
async fn api_initiate(app: &TestApp, body: Value) -> (u16, Value) {
    let res = app
        .http
        .post(app.pool_url("acme", "/api/auth/initiate"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

/// Asserts a Cognito refusal of `flow` as not enabled for the client.
fn assert_not_enabled(answer: (u16, String, Value), flow: &str) {
    let (status, kind, body) = answer;
    assert_eq!(
        (status, kind.as_str()),
        (400, "InvalidParameterException"),
        "{body}"
    );
    assert_eq!(body["__type"], "InvalidParameterException");
    assert_eq!(
        body["message"],
        format!("{flow} flow not enabled for this client"),
        "{body}"
    );
}

/// Asserts the API's refusal of `flow` as not enabled for the client.
fn assert_api_not_enabled(answer: (u16, Value), flow: &str) {
    let (status, body) = answer;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["code"], "invalid_request", "{body}");
    assert_eq!(
        body["errors"][0]["detail"],
        format!("explicit_auth_flows: {flow} flow not enabled for this client"),
        "{body}"
    );
}

#[tokio::test]
async fn app_client_flows_default_to_password_refresh_and_custom() {
    let (app, _, admin) = acme().await;
    let created = create(&app, &admin, None).await;
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created["data"]["attributes"]["explicit_auth_flows"],
        json!(DEFAULT_FLOWS)
    );
    let one = json_of(
        admin_call(&app, Method::GET, &format!("{CLIENTS}/{id}"), &admin, None).await,
        200,
    )
    .await;
    assert_eq!(
        one["data"]["attributes"]["explicit_auth_flows"],
        json!(DEFAULT_FLOWS),
        "ALLOW_USER_AUTH is never on by default"
    );
    // Every client is listed with its flows, the seed's client (made by the operator) too.
    let all = json_of(
        admin_call(&app, Method::GET, CLIENTS, &admin, None).await,
        200,
    )
    .await;
    let listed = all["data"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    for c in listed {
        assert_eq!(
            c["attributes"]["explicit_auth_flows"],
            json!(DEFAULT_FLOWS),
            "{c}"
        );
    }

    // A default client signs in with its password and refreshes, on both APIs.
    let (status, _, signed_in) = call(&app, "acme", "InitiateAuth", password_auth(&id)).await;
    assert_eq!(status, 200, "{signed_in}");
    let refresh = signed_in["AuthenticationResult"]["RefreshToken"]
        .as_str()
        .unwrap();
    let (status, _, refreshed) = call(
        &app,
        "acme",
        "InitiateAuth",
        refresh_auth("REFRESH_TOKEN_AUTH", &id, refresh),
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    assert!(refreshed["AuthenticationResult"]["AccessToken"].is_string());
    let (status, body) = api_initiate(
        &app,
        json!({"flow": "USER_PASSWORD", "client_id": id, "username": "alice",
               "password": "alice-password-1"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].is_string());
}

#[tokio::test]
async fn a_client_narrowed_to_custom_auth_is_refused_the_other_flows_until_widened() {
    let (app, _, admin) = acme().await;
    custom_auth_hooks(&app, "acme", &admin, wasm::wat_custom_auth()).await;
    let created = create(&app, &admin, Some(json!(["ALLOW_CUSTOM_AUTH"]))).await;
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created["data"]["attributes"]["explicit_auth_flows"],
        json!(["ALLOW_CUSTOM_AUTH"])
    );

    // The custom flow is allowed, and ends in tokens with a refresh token.
    let (status, _, first) = call(&app, "acme", "InitiateAuth", initiate(&id, "alice")).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["ChallengeName"], "CUSTOM_CHALLENGE");
    let (status, _, done) = call(
        &app,
        "acme",
        "RespondToAuthChallenge",
        answer(&id, "alice", &first["Session"], "42"),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    let refresh = done["AuthenticationResult"]["RefreshToken"]
        .as_str()
        .unwrap()
        .to_owned();

    // The right password, and a good refresh token, are refused all the same: the flow is
    // the client's first question.
    assert_not_enabled(
        call(&app, "acme", "InitiateAuth", password_auth(&id)).await,
        "USER_PASSWORD_AUTH",
    );
    for flow in ["REFRESH_TOKEN_AUTH", "REFRESH_TOKEN"] {
        assert_not_enabled(
            call(
                &app,
                "acme",
                "InitiateAuth",
                refresh_auth(flow, &id, &refresh),
            )
            .await,
            "REFRESH_TOKEN_AUTH",
        );
    }
    assert_not_enabled(
        call(
            &app,
            "acme",
            "InitiateAuth",
            refresh_auth("REFRESH_TOKEN_AUTH", &id, "not-a-refresh-token"),
        )
        .await,
        "REFRESH_TOKEN_AUTH",
    );
    assert_api_not_enabled(
        api_initiate(
            &app,
            json!({"flow": "USER_PASSWORD", "client_id": id, "username": "alice",
                   "password": "alice-password-1"}),
        )
        .await,
        "USER_PASSWORD_AUTH",
    );
    assert_api_not_enabled(
        api_initiate(
            &app,
            json!({"flow": "REFRESH_TOKEN", "client_id": id, "refresh_token": refresh}),
        )
        .await,
        "REFRESH_TOKEN_AUTH",
    );
    // A refused flow is no failed sign-in: nothing was counted against alice.
    assert_eq!(app.audit_count("acme", "user.sign_in_failed").await, 0);

    // The token endpoint's refresh grant is governed by grant_types alone.
    let res = app
        .http
        .post(app.pool_url("acme", "/oauth2/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", id.as_str()),
            ("refresh_token", refresh.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let refresh = res.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Widened to password and refresh (and narrowed away from custom): the same calls pass.
    let widened = json_of(
        patch(
            &app,
            &admin,
            &id,
            flows_body(json!([
                "ALLOW_REFRESH_TOKEN_AUTH",
                "ALLOW_USER_PASSWORD_AUTH"
            ])),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        widened["data"]["attributes"]["explicit_auth_flows"],
        json!(["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]),
        "kept in a fixed order"
    );
    assert_eq!(widened["data"]["attributes"]["name"], "flows");
    assert!(widened["data"]["attributes"].get("secret").is_none());
    let (status, _, signed_in) = call(&app, "acme", "InitiateAuth", password_auth(&id)).await;
    assert_eq!(status, 200, "{signed_in}");
    let (status, _, refreshed) = call(
        &app,
        "acme",
        "InitiateAuth",
        refresh_auth("REFRESH_TOKEN_AUTH", &id, &refresh),
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    assert_not_enabled(
        call(&app, "acme", "InitiateAuth", initiate(&id, "alice")).await,
        "CUSTOM_AUTH",
    );
    let details = app
        .audit_details("acme", "app_client.updated")
        .await
        .pop()
        .unwrap();
    assert_eq!(
        details["explicit_auth_flows"],
        "ALLOW_USER_PASSWORD_AUTH ALLOW_REFRESH_TOKEN_AUTH"
    );
    assert_eq!(details["was"], "ALLOW_CUSTOM_AUTH");

    // No flow at all: no API sign-in, and the GET says so.
    let none = json_of(patch(&app, &admin, &id, flows_body(json!([]))).await, 200).await;
    assert_eq!(none["data"]["attributes"]["explicit_auth_flows"], json!([]));
    let one = json_of(
        admin_call(&app, Method::GET, &format!("{CLIENTS}/{id}"), &admin, None).await,
        200,
    )
    .await;
    assert_eq!(one["data"]["attributes"]["explicit_auth_flows"], json!([]));
    assert_not_enabled(
        call(&app, "acme", "InitiateAuth", password_auth(&id)).await,
        "USER_PASSWORD_AUTH",
    );

    // ALLOW_USER_AUTH is taken when asked for.
    let all = json_of(
        patch(
            &app,
            &admin,
            &id,
            flows_body(json!([
                "ALLOW_USER_AUTH",
                "ALLOW_CUSTOM_AUTH",
                "ALLOW_USER_AUTH"
            ])),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        all["data"]["attributes"]["explicit_auth_flows"],
        json!(["ALLOW_CUSTOM_AUTH", "ALLOW_USER_AUTH"])
    );
}

#[tokio::test]
async fn unknown_and_unspoken_flows_are_refused_with_a_reason() {
    let (app, _, admin) = acme().await;
    let created = create(&app, &admin, None).await;
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    for (flows, because) in [
        (
            json!(["ALLOW_USER_SRP_AUTH"]),
            "Gatehouse does not speak SRP",
        ),
        (
            json!(["ALLOW_CUSTOM_AUTH", "ALLOW_ADMIN_USER_PASSWORD_AUTH"]),
            "no admin-initiated sign-in",
        ),
        (
            json!(["USER_PASSWORD_AUTH"]),
            "unknown flow 'USER_PASSWORD_AUTH'",
        ),
        (json!(["allow_custom_auth"]), "unknown flow"),
    ] {
        for res in [
            admin_call(
                &app,
                Method::POST,
                CLIENTS,
                &admin,
                Some(json!({"data": {"type": "app-client", "attributes": {
                    "name": "bad", "explicit_auth_flows": flows}}})),
            )
            .await,
            patch(&app, &admin, &id, flows_body(flows.clone())).await,
        ] {
            let body = assert_api_error(res, 400).await;
            let detail = body["errors"][0]["detail"].as_str().unwrap();
            assert!(
                detail.starts_with("explicit_auth_flows: ") && detail.contains(because),
                "{flows}: {detail}"
            );
        }
    }
    // Nothing changed; no client was made.
    let all = json_of(
        admin_call(&app, Method::GET, CLIENTS, &admin, None).await,
        200,
    )
    .await;
    assert_eq!(all["data"].as_array().unwrap().len(), 2);
    let one = json_of(
        admin_call(&app, Method::GET, &format!("{CLIENTS}/{id}"), &admin, None).await,
        200,
    )
    .await;
    assert_eq!(
        one["data"]["attributes"]["explicit_auth_flows"],
        json!(DEFAULT_FLOWS)
    );

    // What an update cannot do: other attributes, another id, an unknown client, no right.
    let res = patch(
        &app,
        &admin,
        &id,
        json!({"data": {"attributes": {"name": "renamed"}}}),
    )
    .await;
    assert_api_error(res, 400).await;
    let res = patch(
        &app,
        &admin,
        &id,
        json!({"data": {"type": "app-client", "id": "someone-else",
                        "attributes": {"explicit_auth_flows": []}}}),
    )
    .await;
    assert_api_error(res, 409).await;
    let res = patch(&app, &admin, "nosuchclient", flows_body(json!([]))).await;
    assert_api_error(res, 404).await;
    let alice = app
        .sign_in(
            "acme",
            &app.create_client("acme", &[]).await,
            "alice",
            "alice-password-1",
        )
        .await;
    let res = patch(&app, &alice, &id, flows_body(json!([]))).await;
    assert_api_error(res, 403).await;
}
