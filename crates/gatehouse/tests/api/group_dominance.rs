//! The dominance rule (SPEC §9) on groups and memberships, over HTTP: acting on an existing
//! group or on a user's memberships needs every permission the group, or the user, holds, for
//! removals as for additions. Each refusal is checked to have changed nothing.

use reqwest::Method;
use serde_json::{Value, json};

use crate::admin::{GROUPS, USERS, acme, call, json_of};
use crate::common::{TestApp, assert_api_error};

/// The group as an administrator reads it.
async fn group(app: &TestApp, admin: &str, name: &str) -> Value {
    json_of(
        call(app, Method::GET, &format!("{GROUPS}/{name}"), admin, None).await,
        200,
    )
    .await
}

/// The names of the user's groups, as an administrator reads them.
async fn groups_of(app: &TestApp, admin: &str, username: &str) -> Vec<String> {
    let page = json_of(
        call(
            app,
            Method::GET,
            &format!("{USERS}/{username}/groups"),
            admin,
            None,
        )
        .await,
        200,
    )
    .await;
    page["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn create_group(app: &TestApp, admin: &str, name: &str, roles: &[&str]) {
    let res = call(
        app,
        Method::POST,
        GROUPS,
        admin,
        Some(json!({"name": name, "description": format!("The {name}"), "roles": roles})),
    )
    .await;
    assert_eq!(res.status(), 201);
}

async fn set_groups(app: &TestApp, token: &str, username: &str, groups: &[&str]) -> u16 {
    let res = call(
        app,
        Method::PUT,
        &format!("{USERS}/{username}/groups"),
        token,
        Some(json!({ "groups": groups })),
    )
    .await;
    let status = res.status().as_u16();
    if status != 204 {
        assert_api_error(res, status).await;
    }
    status
}

async fn update_group(app: &TestApp, token: &str, name: &str, body: Value) -> u16 {
    let res = call(
        app,
        Method::PUT,
        &format!("{GROUPS}/{name}"),
        token,
        Some(body),
    )
    .await;
    let status = res.status().as_u16();
    if status != 204 {
        assert_api_error(res, status).await;
    }
    status
}

async fn delete_group(app: &TestApp, token: &str, name: &str) -> u16 {
    let res = call(
        app,
        Method::DELETE,
        &format!("{GROUPS}/{name}"),
        token,
        None,
    )
    .await;
    let status = res.status().as_u16();
    if status != 204 {
        assert_api_error(res, status).await;
    }
    status
}

/// Group editors: a user `gus` and an app client acting with the same scopes.
const GROUP_EDITOR: &[&str] = &[
    "group:UpdateGroup",
    "group:DeleteGroup",
    "group:GetGroup",
    "group:RetrieveGroups",
];

#[tokio::test]
async fn group_editors_cannot_strip_or_delete_groups_whose_roles_they_lack() {
    let (app, client, admin) = acme().await;
    create_group(&app, &admin, "admins", &["admin"]).await;
    create_group(
        &app,
        &admin,
        "mixed",
        &["group:GetGroup", "user:DeleteUser"],
    )
    .await;
    create_group(&app, &admin, "readers", &["group:GetGroup"]).await;
    app.create_user("acme", "gus", GROUP_EDITOR, "gus-password-123")
        .await;
    let gus = app
        .sign_in("acme", &client, "gus", "gus-password-123")
        .await;
    let scoped = app.create_client("acme", GROUP_EDITOR).await;
    let scoped = app.client_token("acme", &scoped).await;

    let admins = group(&app, &admin, "admins").await;
    let mixed = group(&app, &admin, "mixed").await;
    for token in [&gus, &scoped] {
        // Stripping every role, removing the one it lacks, even keeping the roles while
        // renaming the description: the group holds what the caller does not.
        for (name, body) in [
            ("admins", json!({"description": "The admins", "roles": []})),
            (
                "admins",
                json!({"description": "The admins", "roles": ["group:GetGroup"]}),
            ),
            ("admins", json!({"description": "Nobody important"})),
            (
                "mixed",
                json!({"description": "The mixed", "roles": ["group:GetGroup"]}),
            ),
        ] {
            assert_eq!(update_group(&app, token, name, body).await, 403);
        }
        assert_eq!(delete_group(&app, token, "admins").await, 403);
        assert_eq!(delete_group(&app, token, "mixed").await, 403);
        assert_eq!(group(&app, &admin, "admins").await, admins);
        assert_eq!(group(&app, &admin, "mixed").await, mixed);
    }
    // Nor may it hand out what it lacks to a group of its own roles.
    let res = update_group(
        &app,
        &gus,
        "readers",
        json!({"description": "The readers", "roles": ["group:GetGroup", "admin"]}),
    )
    .await;
    assert_eq!(res, 403);
    assert_eq!(
        group(&app, &admin, "readers").await["roles"],
        json!(["group:GetGroup"])
    );
    assert_eq!(app.audit_count("acme", "group.updated").await, 0);
    assert_eq!(app.audit_count("acme", "group.deleted").await, 0);

    // A group of roles the caller holds is its to manage, for the user and for the client.
    let res = update_group(
        &app,
        &gus,
        "readers",
        json!({"description": "Readers of groups",
            "roles": ["group:GetGroup", "group:RetrieveGroups"]}),
    )
    .await;
    assert_eq!(res, 204);
    assert_eq!(
        group(&app, &admin, "readers").await,
        json!({"name": "readers", "description": "Readers of groups",
            "roles": ["group:GetGroup", "group:RetrieveGroups"]})
    );
    let res = update_group(
        &app,
        &scoped,
        "readers",
        json!({"description": "Readers", "roles": []}),
    )
    .await;
    assert_eq!(res, 204);
    assert_eq!(group(&app, &admin, "readers").await["roles"], json!([]));
    assert_eq!(delete_group(&app, &gus, "readers").await, 204);
    let res = call(
        &app,
        Method::GET,
        &format!("{GROUPS}/readers"),
        &admin,
        None,
    )
    .await;
    assert_api_error(res, 404).await;

    // An administrator holds everything: it strips and deletes the admin groups.
    let res = update_group(
        &app,
        &admin,
        "admins",
        json!({"description": "Formerly admins", "roles": []}),
    )
    .await;
    assert_eq!(res, 204);
    assert_eq!(group(&app, &admin, "admins").await["roles"], json!([]));
    assert_eq!(delete_group(&app, &admin, "mixed").await, 204);
    // Stripped of its roles, the former admin group is the editor's to delete.
    assert_eq!(delete_group(&app, &gus, "admins").await, 204);
    assert_eq!(app.audit_count("acme", "group.updated").await, 3);
    assert_eq!(app.audit_count("acme", "group.deleted").await, 3);
}

/// Membership editors: a user `mia` and an app client acting with the same scopes.
const MEMBERSHIP_EDITOR: &[&str] = &[
    "user:UpdateUserGroupMembership",
    "user:RetrieveUserGroupMembership",
    "user:GetUser",
    "group:GetGroup",
];

#[tokio::test]
async fn membership_editors_cannot_move_users_or_groups_they_do_not_dominate() {
    let (app, client, admin) = acme().await;
    create_group(&app, &admin, "admins", &["admin"]).await;
    create_group(&app, &admin, "staffers", &[]).await;
    create_group(&app, &admin, "lookers", &["user:GetUser"]).await;
    app.create_user("acme", "adam", &["admin"], "adam-password-12")
        .await;
    app.create_user("acme", "pat", &[], "pat-password-123")
        .await;
    app.create_user("acme", "mia", MEMBERSHIP_EDITOR, "mia-password-123")
        .await;
    // adam, an administrator, is in a group without roles; alice, a plain user, is in the
    // admin group.
    assert_eq!(set_groups(&app, &admin, "adam", &["staffers"]).await, 204);
    assert_eq!(set_groups(&app, &admin, "alice", &["admins"]).await, 204);
    let mia = app
        .sign_in("acme", &client, "mia", "mia-password-123")
        .await;
    let scoped = app.create_client("acme", MEMBERSHIP_EDITOR).await;
    let scoped = app.client_token("acme", &scoped).await;

    for token in [&mia, &scoped] {
        // An administrator out of its group; a plain user out of the admin group, or moved
        // to another group.
        assert_eq!(set_groups(&app, token, "adam", &[]).await, 403);
        assert_eq!(
            set_groups(&app, token, "adam", &["staffers", "lookers"]).await,
            403
        );
        assert_eq!(set_groups(&app, token, "alice", &[]).await, 403);
        assert_eq!(
            set_groups(&app, token, "alice", &["admins", "staffers"]).await,
            403
        );
        // Nobody joins the admin group through it, itself included.
        assert_eq!(set_groups(&app, token, "pat", &["admins"]).await, 403);
    }
    assert_eq!(set_groups(&app, &mia, "mia", &["admins"]).await, 403);
    assert_eq!(groups_of(&app, &admin, "adam").await, ["staffers"]);
    assert_eq!(groups_of(&app, &admin, "alice").await, ["admins"]);
    assert_eq!(groups_of(&app, &admin, "pat").await, Vec::<String>::new());
    assert_eq!(groups_of(&app, &admin, "mia").await, Vec::<String>::new());
    assert_eq!(app.audit_count("acme", "user.groups_updated").await, 2);
    // mia gained nothing: it still cannot act on users.
    let res = call(&app, Method::GET, USERS, &mia, None).await;
    assert_api_error(res, 403).await;

    // A user it dominates, into and out of groups of roles it holds: allowed.
    assert_eq!(
        set_groups(&app, &mia, "pat", &["staffers", "lookers"]).await,
        204
    );
    assert_eq!(
        groups_of(&app, &admin, "pat").await,
        ["lookers", "staffers"]
    );
    assert_eq!(set_groups(&app, &scoped, "pat", &["lookers"]).await, 204);
    assert_eq!(set_groups(&app, &mia, "pat", &[]).await, 204);
    assert_eq!(groups_of(&app, &admin, "pat").await, Vec::<String>::new());
    assert_eq!(set_groups(&app, &mia, "mia", &["lookers"]).await, 204);
    assert_eq!(groups_of(&app, &admin, "mia").await, ["lookers"]);

    // An administrator does all of it.
    assert_eq!(set_groups(&app, &admin, "adam", &[]).await, 204);
    assert_eq!(set_groups(&app, &admin, "alice", &["staffers"]).await, 204);
    assert_eq!(set_groups(&app, &admin, "pat", &["admins"]).await, 204);
    assert_eq!(groups_of(&app, &admin, "adam").await, Vec::<String>::new());
    assert_eq!(groups_of(&app, &admin, "alice").await, ["staffers"]);
    assert_eq!(groups_of(&app, &admin, "pat").await, ["admins"]);
    // alice, no longer in the admin group, is now the editor's to move.
    assert_eq!(set_groups(&app, &mia, "alice", &[]).await, 204);
    assert_eq!(groups_of(&app, &admin, "alice").await, Vec::<String>::new());
}
