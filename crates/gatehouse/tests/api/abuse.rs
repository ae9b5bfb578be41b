//! Abuse resistance: work that is refused or dropped before it costs anything.

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::common::*;

/// Password hashing counts from `/metrics`: (computed, abandoned, refused).
async fn hash_counts(app: &TestApp) -> (u64, u64, u64) {
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |outcome: &str| {
        let prefix = format!("gatehouse_password_hashes_total{{outcome=\"{outcome}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {text}"))
            .parse::<u64>()
            .unwrap()
    };
    (count("computed"), count("abandoned"), count("refused"))
}

/// A server whose hashes take a while (64 MiB, 3 passes) on one worker.
async fn slow_hashing(waiting: usize) -> (TestApp, ClientCreds) {
    let app = spawn_app_with(Backend::from_env(), |c| {
        c.password_hashing.memory_kib = 64 * 1024;
        c.password_hashing.iterations = 3;
        c.password_hashing.max_concurrent = 1;
        c.password_hashing.max_waiting = Some(waiting);
    })
    .await;
    app.create_pool("acme").await;
    app.create_user("acme", "alice", &[], "alice-password-1")
        .await;
    let client = app.create_client("acme", &[]).await;
    (app, client)
}

fn sign_in_body(client: &ClientCreds, password: &str) -> Value {
    json!({
        "flow": "USER_PASSWORD",
        "client_id": client.id,
        "client_secret": client.secret,
        "username": "alice",
        "password": password,
    })
}

#[tokio::test]
async fn sign_ins_whose_clients_left_are_not_hashed() {
    let (app, client) = slow_hashing(64).await;
    let before = hash_counts(&app).await;
    // Forty sign-ins sent whole and abandoned at once, as a flood would.
    let host = app.addr.trim_start_matches("http://").to_owned();
    let body = sign_in_body(&client, "a-wrong-guess").to_string();
    let request = format!(
        "POST /pools/acme/api/auth/initiate HTTP/1.1\r\nHost: {host}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut gone = Vec::new();
    for _ in 0..40 {
        let mut s = tokio::net::TcpStream::connect(&host).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        gone.push(s);
    }
    drop(gone);
    // A real sign-in queues behind whatever of the flood reached the workers, and is answered
    // once that is done: skipped, not hashed.
    app.sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let after = hash_counts(&app).await;
    let computed = after.0 - before.0;
    // The real sign-in, and at most the one or two a worker took before their clients'
    // departure was seen; hashing all forty would take seconds.
    assert!(
        computed <= 3,
        "{computed} hashes computed for 40 abandoned sign-ins and one real one \
         (abandoned {}, refused {})",
        after.1 - before.1,
        after.2 - before.2
    );
}

#[tokio::test]
async fn a_full_hashing_queue_answers_503_with_retry_after_at_once() {
    // One hashing, one waiting: of six at once, at least four are refused.
    let (app, client) = slow_hashing(1).await;
    let body = sign_in_body(&client, "alice-password-1");
    let sends: Vec<_> = (0..6)
        .map(|_| {
            let send = app
                .http
                .post(app.pool_url("acme", "/api/auth/initiate"))
                .json(&body)
                .send();
            tokio::spawn(send)
        })
        .collect();
    let (mut ok, mut busy) = (0, 0);
    for send in sends {
        let res = send.await.unwrap().unwrap();
        match res.status().as_u16() {
            200 => ok += 1,
            503 => {
                busy += 1;
                assert_eq!(res.headers()["retry-after"], "1");
                let body = assert_api_error(res, 503).await;
                assert_eq!(body["errors"][0]["code"], "temporarily_unavailable");
            }
            other => panic!("unexpected {other}: {}", res.text().await.unwrap()),
        }
    }
    assert!(ok >= 1 && busy >= 4, "{ok} signed in, {busy} refused");
    let (_, _, refused) = hash_counts(&app).await;
    assert_eq!(refused, busy);
    // The places come back: a sign-in after the burst goes through.
    app.sign_in("acme", &client, "alice", "alice-password-1")
        .await;
}

#[tokio::test]
async fn files_with_secrets_are_readable_by_the_servers_user_alone() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app().await;
    let (_, ada) = app.acme_with_ada().await;
    // An invitation puts a live temporary password in the outbox.
    let res = app
        .http
        .post(app.pool_url("acme", "/api/user-management/users"))
        .bearer_auth(&ada)
        .json(&json!({"username": "bob", "attributes": {
            "email": "bob@acme.example", "name": "Bob", "roles": []}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let outbox_dir = app.outbox.parent().unwrap();
    assert_eq!(mode(&app.outbox), 0o600);
    assert_eq!(mode(outbox_dir), 0o700);
    // On SQLite the server made the key file too (on PostgreSQL the suite writes it).
    if let Some(path) = app.database_url.strip_prefix("sqlite://") {
        assert_eq!(
            mode(&outbox_dir.parent().unwrap().join("master.key")),
            0o600
        );
        let db = std::path::PathBuf::from(path.split('?').next().unwrap());
        for file in [
            db.clone(),
            db.with_extension("db-wal"),
            db.with_extension("db-shm"),
        ] {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
    }
}

/// One password sign-in at the server at `base`: its status and `Retry-After`.
async fn attempt(
    app: &TestApp,
    base: &str,
    client: &ClientCreds,
    username: &str,
    password: &str,
) -> (u16, Option<u64>) {
    let res = app
        .http
        .post(format!("{base}/pools/acme/api/auth/initiate"))
        .json(&json!({
            "flow": "USER_PASSWORD",
            "client_id": client.id,
            "client_secret": client.secret,
            "username": username,
            "password": password,
        }))
        .send()
        .await
        .unwrap();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let status = res.status().as_u16();
    if status == 429 {
        let body = assert_api_error(res, 429).await;
        assert_eq!(body["errors"][0]["code"], "too_many_requests");
    }
    (status, retry)
}

#[tokio::test]
async fn failed_sign_ins_back_off_then_lock_across_instances() {
    let app = spawn_app().await;
    let (client, ada) = app.acme_with_ada().await;
    let (second, _stop) = app.second_instance().await;
    let first = app.addr.clone();
    let wrong = "not-alices-password";
    // Five free failures, alternating between the two instances.
    for i in 0..5 {
        let base = if i % 2 == 0 { &first } else { &second };
        assert_eq!(attempt(&app, base, &client, "alice", wrong).await.0, 401);
    }
    // The sixth attempt at once, on either instance, is told to wait a second, and its
    // password is not even checked: the right one is refused too.
    assert_eq!(
        attempt(&app, &second, &client, "alice", "alice-password-1").await,
        (429, Some(1))
    );
    // A username nobody has is treated the same: the answers do not tell them apart.
    for _ in 0..5 {
        assert_eq!(attempt(&app, &first, &client, "nobody", wrong).await.0, 401);
    }
    assert_eq!(
        attempt(&app, &second, &client, "nobody", wrong).await,
        (429, Some(1))
    );
    // The waits double (1, 2, 4, 8, 16 s); the tenth failure locks the username.
    for n in 6..=10 {
        app.clock.advance(1 << (n - 6));
        let base = if n % 2 == 0 { &first } else { &second };
        assert_eq!(
            attempt(&app, base, &client, "alice", wrong).await.0,
            401,
            "failure {n}"
        );
    }
    assert_eq!(
        attempt(&app, &second, &client, "alice", "alice-password-1").await,
        (429, Some(900))
    );
    app.clock.advance(600);
    assert_eq!(
        attempt(&app, &first, &client, "alice", "alice-password-1").await,
        (429, Some(300))
    );
    // The audit log records each run at its turns, not every failure: alice's first failure,
    // its back-off and its lock; nobody's first failure and back-off.
    assert_eq!(app.audit_count("acme", "user.sign_in_failed").await, 4);
    assert_eq!(app.audit_count("acme", "user.locked_out").await, 1);

    // An administrator clears the lock by enabling the user.
    let res = app
        .http
        .post(app.pool_url("acme", "/api/user-management/users/alice/actions/enable"))
        .bearer_auth(&ada)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        attempt(&app, &second, &client, "alice", "alice-password-1")
            .await
            .0,
        200
    );
    // A success starts the count over: four failures later the right password still works,
    // and clears them again.
    for _ in 0..4 {
        assert_eq!(attempt(&app, &first, &client, "alice", wrong).await.0, 401);
    }
    assert_eq!(
        attempt(&app, &second, &client, "alice", "alice-password-1")
            .await
            .0,
        200
    );
    for _ in 0..4 {
        assert_eq!(attempt(&app, &first, &client, "alice", wrong).await.0, 401);
    }
    assert_eq!(
        attempt(&app, &first, &client, "alice", "alice-password-1")
            .await
            .0,
        200
    );
}

/// A client-credentials request from `from` (as the trusted proxy forwards it).
async fn token_from(
    app: &TestApp,
    from: &str,
    client: &ClientCreds,
    secret: &str,
) -> (u16, Option<String>) {
    let res = app
        .http
        .post(app.pool_url("acme", "/oauth2/token"))
        .basic_auth(&client.id, Some(secret))
        .header("x-forwarded-for", from)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let status = res.status().as_u16();
    if status == 429 {
        // An OAuth endpoint answers even this in RFC 6749's shape, never cached.
        assert_oauth_error(res, 429, "temporarily_unavailable").await;
    }
    (status, retry)
}

#[tokio::test]
async fn failed_attempts_are_limited_per_source_address_and_per_client() {
    let app = spawn_app_with(Backend::from_env(), |c| {
        c.limits.address_burst = 5;
        c.limits.address_per_minute = 60;
        c.limits.client_burst = 8;
        c.limits.client_per_minute = 1;
        // The suite's requests come through "a proxy" on loopback that names the client.
        c.limits.trusted_proxies = vec!["127.0.0.1/32".to_owned()];
    })
    .await;
    app.create_pool("acme").await;
    let client = app.create_client("acme", &[]).await;
    let other = app.create_client("acme", &[]).await;
    let (attacker, bystander) = ("203.0.113.7", "198.51.100.20");

    // Successes cost nothing: many in a row are all answered.
    for _ in 0..20 {
        assert_eq!(
            token_from(&app, attacker, &client, &client.secret).await.0,
            200
        );
    }
    // Five wrong secrets from one address empty its bucket: the sixth request is refused
    // before it is looked at, even with the right secret.
    for _ in 0..5 {
        assert_eq!(token_from(&app, attacker, &other, "wrong").await.0, 401);
    }
    assert_eq!(
        token_from(&app, attacker, &client, &client.secret).await,
        (429, Some("1".to_owned()))
    );
    // Another address is not affected, and the attacker's address earns a try back in time.
    assert_eq!(
        token_from(&app, bystander, &client, &client.secret).await.0,
        200
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        token_from(&app, attacker, &client, &client.secret).await.0,
        200
    );

    // Per client: `other` has failed five times; three more wrong secrets from fresh
    // addresses empty its bucket (it earns one back a minute), and then even its right
    // secret waits.
    for i in 0..3 {
        let from = format!("192.0.2.{i}");
        assert_eq!(token_from(&app, &from, &other, "wrong").await.0, 401);
    }
    let (status, retry) = token_from(&app, "192.0.2.100", &other, &other.secret).await;
    assert_eq!((status, retry.is_some()), (429, true));
    // The other client, from the same address, is served.
    assert_eq!(
        token_from(&app, "192.0.2.100", &client, &client.secret)
            .await
            .0,
        200
    );
    // Without a trusted proxy in between, X-Forwarded-For would count for nothing: see the
    // unit tests of `limits::FailureLimits::source`.
}

/// `PUT /users/me` for `token` with a new e-mail address: the status.
async fn change_email(app: &TestApp, token: &str, name: &str, email: &str) -> reqwest::Response {
    app.http
        .put(app.pool_url("acme", "/api/user-management/users/me"))
        .bearer_auth(token)
        .json(&json!({"attributes": {"email": email, "name": name, "roles": []}}))
        .send()
        .await
        .unwrap()
}

fn codes_sent_to(app: &TestApp, email: &str) -> usize {
    app.outbox()
        .iter()
        .filter(|m| m["kind"] == "attribute_verification" && m["to_email"] == email)
        .count()
}

#[tokio::test]
async fn verification_codes_are_sent_a_limited_number_of_times_per_user_and_per_address() {
    let app = spawn_app().await;
    let (client, _) = app.acme_with_ada().await;
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    // Alice's address flips back and forth: five codes in the hour, then the change that
    // would send a sixth is refused, and not made.
    for i in 0..5 {
        let res = change_email(&app, &alice, "Alice", &format!("alice{}@a.example", i % 2)).await;
        assert_eq!(res.status(), 204, "change {i}");
    }
    let res = change_email(&app, &alice, "Alice", "alice9@a.example").await;
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    let body = assert_api_error(res, 429).await;
    assert_eq!(body["errors"][0]["code"], "too_many_requests");
    assert_eq!(codes_sent_to(&app, "alice9@a.example"), 0);
    let me: Value = app
        .http
        .get(app.pool_url("acme", "/api/user-management/users/me"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["attributes"]["email"], "alice0@a.example");
    // An hour later she may again.
    app.clock.advance(3601);
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    assert_eq!(
        change_email(&app, &alice, "Alice", "alice9@a.example")
            .await
            .status(),
        204
    );

    // One address receives at most five codes in an hour, whoever asks for them.
    let victim = "victim@b.example";
    for i in 0..6 {
        let name = format!("user{i}");
        app.create_user("acme", &name, &[], "a-password-123").await;
        let token = app.sign_in("acme", &client, &name, "a-password-123").await;
        let expected = if i < 5 { 204 } else { 429 };
        assert_eq!(
            change_email(&app, &token, &name, victim).await.status(),
            expected,
            "user {i}"
        );
    }
    assert_eq!(codes_sent_to(&app, victim), 5);
}

#[tokio::test]
async fn invitation_templates_cannot_send_the_password_to_another_site() {
    let app = spawn_app().await;
    let (_, ada) = app.acme_with_ada().await;
    let put = |message: String| {
        app.http
            .put(app.pool_url("acme", "/api/auth/settings/invitation-messages"))
            .bearer_auth(&ada)
            .json(&json!({"EmailMessage": message}))
            .send()
    };
    let evil =
        "Hello {username}: <a href=\"https://evil.example/?u={username}\">sign in</a> {####}";
    let res = put(evil.to_owned()).await.unwrap();
    let body = assert_api_error(res, 400).await;
    assert!(
        body["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("evil.example"),
        "{body}"
    );
    let res = put(format!("{}/?p={{####}} {{username}}", app.issuer("acme")))
        .await
        .unwrap();
    assert_api_error(res, 400).await;
    // A link to the pool itself is fine.
    let own = format!(
        "Hello {{username}}, sign in at {}/ with {{####}}.",
        app.issuer("acme")
    );
    assert_eq!(put(own).await.unwrap().status(), 204);
}
