//! An impersonation ends when the authority that started it ends: the pool turning staff
//! access off, the impersonating app client deleted. (Disabled and deleted impersonators are
//! in `takeover.rs`.)

use serde_json::{Value, json};

use crate::common::*;

struct Pool {
    app: TestApp,
    ada: String,
    client: ClientCreds,
}

/// `acme` with an administrator `ada`, a plain user `alice`, and a staff support agent `sue`.
async fn acme_with_staff() -> (Pool, String) {
    let app = spawn_app().await;
    let sue = app.staff_member("sue", &["support"]).await;
    let (client, ada) = app.acme_with_ada().await;
    (Pool { app, ada, client }, sue)
}

async fn set_staff_access(p: &Pool, enabled: bool) {
    let res = p
        .app
        .http
        .put(p.app.pool_url("acme", "/api/auth/settings/staff-access"))
        .bearer_auth(&p.ada)
        .json(&json!({ "StaffAccessEnabled": enabled }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
}

#[tokio::test]
async fn turning_staff_access_off_ends_staff_impersonations_for_good() {
    let (p, sue) = acme_with_staff().await;
    let app = &p.app;
    let by_staff = app.impersonate("acme", &sue, "alice").await;
    let by_ada = app.impersonate("acme", &p.ada, "alice").await;
    assert_eq!(app.userinfo_status("acme", &by_staff).await, 200);

    set_staff_access(&p, false).await;
    assert_eq!(app.userinfo_status("acme", &by_staff).await, 401);
    assert_eq!(
        app.introspect("acme", &p.client, &by_staff).await["active"],
        false
    );
    // The pool's own administrator's impersonation is not staff's: it goes on.
    assert_eq!(app.userinfo_status("acme", &by_ada).await, 200);
    assert_eq!(app.audit_count("acme", "impersonation.ended").await, 1);

    // Turning staff access back on does not revive what ended.
    set_staff_access(&p, true).await;
    assert_eq!(app.userinfo_status("acme", &by_staff).await, 401);
    assert_eq!(
        app.introspect("acme", &p.client, &by_staff).await["active"],
        false
    );
    let res = app
        .http
        .get(app.pool_url("acme", "/api/user-management/impersonations"))
        .bearer_auth(&p.ada)
        .send()
        .await
        .unwrap();
    let listed: Value = res.json().await.unwrap();
    assert_eq!(listed.to_string().matches("\"sue\"").count(), 0, "{listed}");
}

#[tokio::test]
async fn deleting_the_impersonating_client_ends_its_impersonations() {
    let (p, _) = acme_with_staff().await;
    let app = &p.app;
    let imp = app.create_client("acme", &["user:Impersonate"]).await;
    let imp_token = app.client_token("acme", &imp).await;
    let by_client = app.impersonate("acme", &imp_token, "alice").await;
    let other = app.create_client("acme", &["user:Impersonate"]).await;
    let other_token = app.client_token("acme", &other).await;
    let by_other = app.impersonate("acme", &other_token, "alice").await;
    assert_eq!(app.userinfo_status("acme", &by_client).await, 200);

    let res = app
        .http
        .delete(app.pool_url(
            "acme",
            &format!("/api/user-management/app-clients/{}", imp.id),
        ))
        .bearer_auth(&p.ada)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(app.userinfo_status("acme", &by_client).await, 401);
    assert_eq!(
        app.introspect("acme", &p.client, &by_client).await["active"],
        false
    );
    assert_eq!(app.userinfo_status("acme", &by_other).await, 200);
}

/// A target holding any permission beyond self-service is privileged: impersonating it needs
/// `user:ImpersonatePrivileged`, so support cannot carry a helpdesk's roles downstream.
#[tokio::test]
async fn users_with_any_administrative_permission_need_impersonate_privileged() {
    let (p, sue) = acme_with_staff().await;
    let app = &p.app;
    app.create_user("acme", "helpdesk", &["user:GetUser"], "helpdesk-password-1")
        .await;
    app.create_user("acme", "sam", &["support"], "sam-password-123")
        .await;
    let sam = app
        .sign_in("acme", &p.client, "sam", "sam-password-123")
        .await;
    for caller in [&sam, &sue] {
        let res = app
            .http
            .post(app.pool_url("acme", "/api/user-management/users/helpdesk/impersonate"))
            .bearer_auth(caller)
            .send()
            .await
            .unwrap();
        let body = assert_api_error(res, 403).await;
        assert!(
            body.to_string().contains("user:ImpersonatePrivileged"),
            "{body}"
        );
        // A user with self-service alone is fair game.
        app.impersonate("acme", caller, "alice").await;
    }
    assert_eq!(app.audit_count("acme", "impersonation.denied").await, 2);
    // An administrator holds user:ImpersonatePrivileged.
    let res = app
        .http
        .post(app.pool_url("acme", "/api/user-management/users/helpdesk/impersonate"))
        .bearer_auth(&p.ada)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// A password reset or a global sign-out answers a compromise: the impersonations the
/// account started end with its own sessions.
#[tokio::test]
async fn reset_and_sign_out_end_the_impersonations_a_user_started() {
    let (p, _) = acme_with_staff().await;
    let app = &p.app;
    for (name, action) in [("eve", "reset-password"), ("oscar", "sign-out")] {
        let password = format!("{name}-password-123");
        app.create_user("acme", name, &["admin"], &password).await;
        let token = app.sign_in("acme", &p.client, name, &password).await;
        let started = app.impersonate("acme", &token, "alice").await;
        let by_ada = app.impersonate("acme", &p.ada, "alice").await;
        assert_eq!(app.userinfo_status("acme", &started).await, 200);
        let res = app
            .http
            .post(app.pool_url(
                "acme",
                &format!("/api/user-management/users/{name}/actions/{action}"),
            ))
            .bearer_auth(&p.ada)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{action}: {}", res.status());
        assert_eq!(app.userinfo_status("acme", &started).await, 401, "{action}");
        assert_eq!(
            app.introspect("acme", &p.client, &started).await["active"],
            false
        );
        assert_eq!(app.userinfo_status("acme", &by_ada).await, 200, "{action}");
    }
}
