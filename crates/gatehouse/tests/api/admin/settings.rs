use reqwest::Method;
use serde_json::json;

use super::*;
use crate::common::assert_api_error;

#[tokio::test]
async fn settings_follow_the_reference() {
    let (app, client, admin) = acme().await;
    let policy = "/api/auth/settings/password-policy";
    let templates = "/api/auth/settings/invitation-messages";

    // The policy is public.
    let res = app
        .http
        .get(app.pool_url("acme", policy))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(res, 200).await,
        json!({"MinimumLength": 8, "RequireLowercase": false, "RequireNumbers": false,
            "RequireSymbols": false, "RequireUppercase": false, "TemporaryPasswordValidityDays": 7})
    );
    let res = call(
        &app,
        Method::PUT,
        policy,
        &admin,
        Some(json!({"MinimumLength": 14, "RequireSymbols": true})),
    )
    .await;
    assert_eq!(res.status(), 204);
    let got = json_of(
        app.http
            .get(app.pool_url("acme", policy))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(got["MinimumLength"], 14);
    assert_eq!(got["RequireSymbols"], true);
    assert_eq!(got["TemporaryPasswordValidityDays"], 7);
    for bad in [
        json!({"MinimumLength": 3}),
        json!({"MinimumLength": 300}),
        json!({"MinimumLength": "8"}),
        json!({"TemporaryPasswordValidityDays": 0}),
        json!({"minimumLength": 8}),
    ] {
        let res = call(&app, Method::PUT, policy, &admin, Some(bad)).await;
        assert_api_error(res, 400).await;
    }

    // A temporary password meets the new policy.
    let res = call(
        &app,
        Method::POST,
        USERS,
        &admin,
        Some(user_body("bob", &[])),
    )
    .await;
    assert_eq!(res.status(), 201);
    let body = app.outbox().pop().unwrap()["body"]
        .as_str()
        .unwrap()
        .to_owned();
    let temporary = body
        .strip_prefix("Your username is bob and temporary password is ")
        .and_then(|s| s.strip_suffix('.'))
        .unwrap();
    assert!(temporary.chars().count() >= 14);
    assert!(
        temporary
            .chars()
            .any(|c| "^$*.[]{}()?\"!@#%&/\\,><':;|_~`=+-".contains(c))
    );

    // Templates need authentication and both placeholders.
    let res = app
        .http
        .get(app.pool_url("acme", templates))
        .send()
        .await
        .unwrap();
    assert_api_error(res, 401).await;
    let got = json_of(call(&app, Method::GET, templates, &admin, None).await, 200).await;
    assert_eq!(got["EmailSubject"], "Your temporary password");
    let res = call(
        &app,
        Method::PUT,
        templates,
        &admin,
        Some(json!({"EmailMessage": "Hi {username}, no password here"})),
    )
    .await;
    assert_api_error(res, 400).await;
    let res = call(
        &app,
        Method::PUT,
        templates,
        &admin,
        Some(json!({"SMSMessage": "{username}: {####}"})),
    )
    .await;
    assert_eq!(res.status(), 204);
    let got = json_of(call(&app, Method::GET, templates, &admin, None).await, 200).await;
    assert_eq!(got["SMSMessage"], "{username}: {####}");

    // Changing settings needs the permission.
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let res = call(
        &app,
        Method::PUT,
        policy,
        &alice,
        Some(json!({"MinimumLength": 6})),
    )
    .await;
    assert_api_error(res, 403).await;
    assert_eq!(app.audit_count("acme", "pool.settings_updated").await, 2);
}
