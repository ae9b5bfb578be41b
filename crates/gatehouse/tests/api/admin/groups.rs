use reqwest::Method;
use serde_json::json;

use super::*;
use crate::common::assert_api_error;

/// The reference document requires a description of at least one character, so a group
/// without one is refused, not stored with `""` (which its own schema would then violate).
#[tokio::test]
async fn a_group_without_a_description_is_refused() {
    let (app, _, admin) = acme().await;
    for body in [
        json!({"name": "adjusters"}),
        json!({"name": "adjusters", "description": ""}),
    ] {
        let res = call(&app, Method::POST, GROUPS, &admin, Some(body.clone())).await;
        let err = assert_api_error(res, 400).await;
        let detail = err["errors"][0]["detail"].as_str().unwrap();
        assert!(detail.contains("description"), "{body}: {err}");
    }
    let body = json!({"name": "adjusters", "description": null});
    let res = call(&app, Method::POST, GROUPS, &admin, Some(body)).await;
    assert_api_error(res, 400).await;
    let res = call(
        &app,
        Method::GET,
        &format!("{GROUPS}/adjusters"),
        &admin,
        None,
    )
    .await;
    assert_api_error(res, 404).await;
    // Nor can an existing group's description be emptied.
    let res = call(
        &app,
        Method::POST,
        GROUPS,
        &admin,
        Some(json!({"name": "adjusters", "description": "Claims adjusters"})),
    )
    .await;
    assert_eq!(res.status(), 201);
    let res = call(
        &app,
        Method::PUT,
        &format!("{GROUPS}/adjusters"),
        &admin,
        Some(json!({"description": ""})),
    )
    .await;
    assert_api_error(res, 400).await;
    let group = json_of(
        call(
            &app,
            Method::GET,
            &format!("{GROUPS}/adjusters"),
            &admin,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(group["description"], "Claims adjusters");
}

#[tokio::test]
async fn groups_and_memberships() {
    let (app, _, admin) = acme().await;
    for (name, description) in [
        ("adjusters", "Claims adjusters"),
        ("brokers", "Brokers"),
        ("clerks", "Clerks"),
    ] {
        let res = call(
            &app,
            Method::POST,
            GROUPS,
            &admin,
            Some(json!({"name": name, "description": description})),
        )
        .await;
        let group = json_of(res, 201).await;
        assert_eq!(
            group,
            json!({"name": name, "description": description, "roles": []})
        );
    }
    let res = call(
        &app,
        Method::POST,
        GROUPS,
        &admin,
        Some(json!({"name": "adjusters", "description": "Again"})),
    )
    .await;
    assert_api_error(res, 409).await;
    let res = call(
        &app,
        Method::POST,
        GROUPS,
        &admin,
        Some(json!({"description": "no name"})),
    )
    .await;
    assert_api_error(res, 400).await;

    let page = json_of(
        call(
            &app,
            Method::GET,
            &format!("{GROUPS}?limit=2"),
            &admin,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(page["groups"].as_array().unwrap().len(), 2);
    assert_eq!(
        page["next"],
        "http://gatehouse.test/pools/acme/api/user-management/groups?cursor=brokers&limit=2"
    );
    let res = app
        .http
        .get(follow(&app, page["next"].as_str().unwrap()))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let rest = json_of(res, 200).await;
    assert_eq!(rest["groups"][0]["name"], "clerks");
    assert_eq!(rest["next"], "");

    let res = call(
        &app,
        Method::PUT,
        &format!("{GROUPS}/brokers"),
        &admin,
        Some(json!({"description": "Independent brokers", "roles": ["support"]})),
    )
    .await;
    assert_eq!(res.status(), 204);
    let brokers = json_of(
        call(
            &app,
            Method::GET,
            &format!("{GROUPS}/brokers"),
            &admin,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        brokers,
        json!({"name": "brokers", "description": "Independent brokers", "roles": ["support"]})
    );
    let res = call(
        &app,
        Method::PUT,
        &format!("{GROUPS}/brokers"),
        &admin,
        Some(json!({})),
    )
    .await;
    assert_api_error(res, 400).await;
    let res = call(&app, Method::GET, &format!("{GROUPS}/nobody"), &admin, None).await;
    assert_api_error(res, 404).await;

    // Memberships, both ways.
    let res = call(
        &app,
        Method::PUT,
        &format!("{USERS}/alice/groups"),
        &admin,
        Some(json!({"groups": ["brokers", "adjusters"]})),
    )
    .await;
    assert_eq!(res.status(), 204);
    let res = call(
        &app,
        Method::PUT,
        &format!("{USERS}/ada/groups"),
        &admin,
        Some(json!({"groups": ["brokers"]})),
    )
    .await;
    assert_eq!(res.status(), 204);
    let of_alice = json_of(
        call(
            &app,
            Method::GET,
            &format!("{USERS}/alice/groups?limit=1"),
            &admin,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(of_alice["groups"][0]["name"], "adjusters");
    assert_eq!(
        of_alice["next"],
        "http://gatehouse.test/pools/acme/api/user-management/users/alice/groups?cursor=adjusters&limit=1"
    );
    let members = json_of(
        call(
            &app,
            Method::GET,
            &format!("{GROUPS}/brokers/users"),
            &admin,
            None,
        )
        .await,
        200,
    )
    .await;
    let names: Vec<&str> = members["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ada", "alice"]);
    assert_eq!(members["next"], "");
    let res = call(
        &app,
        Method::PUT,
        &format!("{USERS}/alice/groups"),
        &admin,
        Some(json!({"groups": ["nonexistent"]})),
    )
    .await;
    assert_api_error(res, 404).await;
    let res = call(
        &app,
        Method::GET,
        &format!("{GROUPS}/nobody/users"),
        &admin,
        None,
    )
    .await;
    assert_api_error(res, 404).await;

    // Deleting a group ends its memberships.
    assert_eq!(
        call(
            &app,
            Method::DELETE,
            &format!("{GROUPS}/brokers"),
            &admin,
            None
        )
        .await
        .status(),
        204
    );
    let res = call(
        &app,
        Method::DELETE,
        &format!("{GROUPS}/brokers"),
        &admin,
        None,
    )
    .await;
    assert_api_error(res, 404).await;
    let of_alice = json_of(
        call(
            &app,
            Method::GET,
            &format!("{USERS}/alice/groups"),
            &admin,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(of_alice["groups"].as_array().unwrap().len(), 1);
}
