//! Single-use values under concurrency (SPEC §9): a `NEW_PASSWORD_REQUIRED` challenge and a
//! password-reset code are each consumed by one atomic compare-and-set, in the transaction
//! that sets the password, so of parallel answers exactly one wins and nothing of the others
//! is written.

use serde_json::{Value, json};

use crate::common::{ClientCreds, TestApp, spawn_app};

const USERS: &str = "/api/user-management/users";

/// A pool `acme` with an administrator `ada` and a sign-in client; returns the administrator's
/// token too.
async fn acme() -> (TestApp, ClientCreds, String) {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    app.create_user("acme", "ada", &["admin"], "ada-password-123")
        .await;
    let client = app.create_client("acme", &[]).await;
    let admin = app
        .sign_in("acme", &client, "ada", "ada-password-123")
        .await;
    (app, client, admin)
}

async fn initiate(app: &TestApp, client: &ClientCreds, username: &str, password: &str) -> Value {
    let res = app
        .http
        .post(app.pool_url("acme", "/api/auth/initiate"))
        .json(&json!({"flow": "USER_PASSWORD", "client_id": client.id,
            "client_secret": client.secret, "username": username, "password": password}))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let mut body: Value = res.json().await.unwrap();
    body["status"] = json!(status);
    body
}

async fn get_user(app: &TestApp, admin: &str, username: &str, path: &str) -> Value {
    let res = app
        .http
        .get(app.pool_url("acme", &format!("{USERS}/{username}{path}")))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// POSTs the same kind of body to `path` once per password, all at once, and returns each
/// password with the status its request got, in the order of the passwords.
async fn in_parallel(
    app: &TestApp,
    path: &str,
    body: impl Fn(&str) -> Value,
    passwords: &[String],
) -> Vec<(String, u16)> {
    let url = app.pool_url("acme", path);
    let requests: Vec<_> = passwords
        .iter()
        .map(|p| {
            let request = app.http.post(&url).json(&body(p));
            let password = p.clone();
            tokio::spawn(async move {
                let status = request.send().await.unwrap().status().as_u16();
                (password, status)
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(requests.len());
    for r in requests {
        answers.push(r.await.unwrap());
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_password_challenge_is_answered_once_under_concurrency() {
    let (app, client, admin) = acme().await;
    let res = app
        .http
        .post(app.pool_url("acme", USERS))
        .bearer_auth(&admin)
        .json(&json!({"username": "bob", "attributes": {
            "email": "bob@acme.example", "name": "Bob", "roles": []}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let invitation = app.outbox().last().unwrap()["body"]
        .as_str()
        .unwrap()
        .to_owned();
    let temporary = invitation
        .strip_prefix("Your username is bob and temporary password is ")
        .and_then(|s| s.strip_suffix('.'))
        .unwrap();
    let challenge = initiate(&app, &client, "bob", temporary).await;
    assert_eq!(challenge["status"], 200);
    assert_eq!(challenge["challenge"], "NEW_PASSWORD_REQUIRED");
    let session = challenge["session"].as_str().unwrap().to_owned();
    let respond = |new_password: &str| {
        json!({"challenge": "NEW_PASSWORD_REQUIRED", "client_id": client.id,
            "client_secret": client.secret, "session": session, "new_password": new_password})
    };

    let passwords: Vec<String> = (0..8).map(|i| format!("bobs-password-{i}")).collect();
    let answers = in_parallel(&app, "/api/auth/respond", respond, &passwords).await;
    let winners: Vec<&String> = answers
        .iter()
        .filter(|(_, s)| *s == 200)
        .map(|(p, _)| p)
        .collect();
    let refused = answers.iter().filter(|(_, s)| *s == 401).count();
    assert_eq!((winners.len(), refused), (1, 7), "{answers:?}");
    let winner = winners[0].clone();

    // Exactly one sign-in session, one password change, and the password is the winner's.
    let sessions = get_user(&app, &admin, "bob", "/sessions").await;
    assert_eq!(
        sessions["sessions"].as_array().unwrap().len(),
        1,
        "{sessions}"
    );
    assert_eq!(app.audit_count("acme", "user.updated").await, 1);
    let bob = get_user(&app, &admin, "bob", "").await;
    assert_eq!(bob["status"], "CONFIRMED");
    // A later replay is refused too, and changes nothing.
    let res = app
        .http
        .post(app.pool_url("acme", "/api/auth/respond"))
        .json(&respond("bobs-late-password-9"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        initiate(&app, &client, "bob", "bobs-late-password-9").await["status"],
        401
    );
    for p in &passwords {
        let expected = if *p == winner { 200 } else { 401 };
        // Past the wait that repeated failures earn (lockout.rs), which is not under test here.
        app.clock.advance(20);
        assert_eq!(initiate(&app, &client, "bob", p).await["status"], expected);
    }
    app.clock.advance(20);
    app.sign_in("acme", &client, "bob", &winner).await;
    assert_eq!(app.audit_count("acme", "user.updated").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reset_code_confirms_one_of_two_parallel_answers() {
    let (app, client, admin) = acme().await;
    app.create_user("acme", "bob", &[], "bobs-old-password")
        .await;
    for round in 0..3 {
        let res = app
            .http
            .post(app.pool_url("acme", &format!("{USERS}/bob/actions/reset-password")))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
        let body = app.outbox().last().unwrap()["body"]
            .as_str()
            .unwrap()
            .to_owned();
        let code = body
            .rsplit(' ')
            .next()
            .unwrap()
            .trim_end_matches('.')
            .to_owned();
        let confirm = |new_password: &str| {
            json!({"client_id": client.id, "client_secret": client.secret,
                "username": "bob", "code": code, "new_password": new_password})
        };
        let passwords: Vec<String> = (0..2)
            .map(|i| format!("bobs-password-{round}-{i}"))
            .collect();
        let answers = in_parallel(
            &app,
            "/api/auth/confirm-password-reset",
            confirm,
            &passwords,
        )
        .await;
        let winners: Vec<&String> = answers
            .iter()
            .filter(|(_, s)| *s == 204)
            .map(|(p, _)| p)
            .collect();
        let refused = answers.iter().filter(|(_, s)| *s == 400).count();
        assert_eq!((winners.len(), refused), (1, 1), "{answers:?}");
        let winner = winners[0].clone();

        // The winner's password, and only it, signs in; the code is spent.
        let bob = get_user(&app, &admin, "bob", "").await;
        assert_eq!(bob["status"], "CONFIRMED");
        for p in &passwords {
            let expected = if *p == winner { 200 } else { 401 };
            assert_eq!(initiate(&app, &client, "bob", p).await["status"], expected);
        }
        let res = app
            .http
            .post(app.pool_url("acme", "/api/auth/confirm-password-reset"))
            .json(&confirm("bobs-late-password-9"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
        assert_eq!(
            app.audit_count("acme", "user.updated").await,
            round + 1,
            "one password change per reset"
        );
    }
}
