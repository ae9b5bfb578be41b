use reqwest::Method;
use serde_json::json;

use super::*;
use crate::common::assert_api_error;

#[tokio::test]
async fn the_audit_log_is_filtered_and_paged() {
    let (app, client, admin) = acme().await;
    for name in ["bob", "cy", "dee"] {
        let res = call(
            &app,
            Method::POST,
            USERS,
            &admin,
            Some(user_body(name, &[])),
        )
        .await;
        assert_eq!(res.status(), 201);
    }
    let events = "/api/audit/events";
    let page = json_of(
        call(
            &app,
            Method::GET,
            &format!("{events}?action=user.created&limit=3"),
            &admin,
            None,
        )
        .await,
        200,
    )
    .await;
    let listed = page["events"].as_array().unwrap();
    // ada and alice (created by the operator), then bob by the administrator.
    let subjects: Vec<&str> = listed
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["ada", "alice", "bob"]);
    assert!(listed[0]["actor"].is_null());
    let bob = &listed[2];
    assert_eq!(bob["action"], "user.created");
    assert_eq!(bob["outcome"], "success");
    assert_eq!(bob["actor"]["kind"], "user");
    assert_eq!(bob["actor"]["username"], "ada");
    assert_eq!(bob["actor"]["pool"], "acme");
    assert_eq!(bob["client_id"], client.id.as_str());
    assert!(bob["time"].as_str().unwrap().ends_with('Z'));
    assert!(bob["impersonator"].is_null());
    let next = page["next"].as_str().unwrap();
    assert!(next.contains("action=user.created"), "{next}");
    let res = app
        .http
        .get(follow(&app, next))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let rest = json_of(res, 200).await;
    let subjects: Vec<&str> = rest["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["cy", "dee"]);
    assert_eq!(rest["next"], "");

    // By actor and subject, and by time.
    let actor = bob["actor"]["id"].as_str().unwrap();
    let by_actor = json_of(
        call(
            &app,
            Method::GET,
            &format!("{events}?actor={actor}&subject=cy"),
            &admin,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(by_actor["events"].as_array().unwrap().len(), 1);
    let future = json_of(
        call(
            &app,
            Method::GET,
            &format!("{events}?since=2999-01-01T00:00:00Z"),
            &admin,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(future["events"], json!([]));
    let past = json_of(
        call(
            &app,
            Method::GET,
            &format!("{events}?until=0"),
            &admin,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(past["events"], json!([]));

    for bad in [
        "?action=user.exploded",
        "?since=yesterday",
        "?cursor=abc",
        "?colour=red",
        "?limit=0",
    ] {
        let res = call(&app, Method::GET, &format!("{events}{bad}"), &admin, None).await;
        assert_api_error(res, 400).await;
    }
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let res = call(&app, Method::GET, events, &alice, None).await;
    assert_api_error(res, 403).await;
}
