//! Authorization codes and refresh tokens: each is used once, by one compare-and-set, also
//! when writers race; a second presentation says what the first one started; the purge
//! deletes them once expired.

use gatehouse_domain::authorization::{AuthorizationCode, CodeTaken, RefreshTaken, RefreshToken};
use gatehouse_domain::ids::{ClientId, PoolId, SessionId, UserId};
use gatehouse_domain::retention::{PurgeCounts, PurgePolicy};
use gatehouse_domain::store::Store;
use gatehouse_domain::time::Timestamp;

use crate::fixtures::*;

fn code(pool: PoolId, user: UserId, n: u8, expires_at: Timestamp) -> AuthorizationCode {
    AuthorizationCode {
        pool,
        code_sha256: [n; 32],
        client_id: ClientId::parse("web").unwrap(),
        redirect_uri: "https://app.example.com/cb".to_owned(),
        user_id: user,
        browser_session: SessionId::new_ordered(),
        scopes: vec!["openid".to_owned(), "email".to_owned()],
        nonce: Some("n-1".to_owned()),
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned()),
        auth_time: T0,
        created_at: T0,
        expires_at,
    }
}

fn refresh(pool: PoolId, user: UserId, n: u8, expires_at: Timestamp) -> RefreshToken {
    RefreshToken {
        pool,
        token_sha256: [n; 32],
        session: SessionId::new_ordered(),
        client_id: ClientId::parse("web").unwrap(),
        user_id: user,
        scopes: vec!["openid".to_owned()],
        auth_time: T0,
        created_at: T0,
        expires_at,
    }
}

pub async fn codes_and_refresh_tokens_are_used_once(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let other = new_pool(store, "other").await;
    let ada = new_user(store, pool.id, "ada").await;
    let c = code(pool.id, ada.id, 1, T0.plus_secs(60));
    let r = refresh(pool.id, ada.id, 2, T0.plus_secs(3600));
    let mut w = store.write(pool.id).await.unwrap();
    w.put_authorization_code(&c).await.unwrap();
    w.put_refresh_token(&r).await.unwrap();
    w.commit().await.unwrap();

    // Another pool's transaction knows neither.
    let mut w = store.write(other.id).await.unwrap();
    assert_eq!(
        w.take_authorization_code(&[1; 32], T0).await.unwrap(),
        CodeTaken::Unknown
    );
    assert_eq!(
        w.take_refresh_token(&[2; 32], T0).await.unwrap(),
        RefreshTaken::Unknown
    );
    drop(w);

    // Racing takes: exactly one finds the code fresh, the others a replay.
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let store = store.clone();
        let id = pool.id;
        tasks.push(tokio::spawn(async move {
            let mut w = store.write(id).await.unwrap();
            let taken = w.take_authorization_code(&[1; 32], T0).await.unwrap();
            if let CodeTaken::Fresh(_) = &taken {
                w.set_code_issued_session(&[1; 32], SessionId::new_ordered())
                    .await
                    .unwrap();
            }
            w.commit().await.unwrap();
            taken
        }));
    }
    let mut fresh = 0;
    for t in tasks {
        match t.await.unwrap() {
            CodeTaken::Fresh(got) => {
                assert_eq!(*got, c);
                fresh += 1;
            }
            CodeTaken::Replayed { .. } => {}
            CodeTaken::Unknown => panic!("a stored code was not found"),
        }
    }
    assert_eq!(fresh, 1);
    // The replay names what the first exchange started.
    let mut w = store.write(pool.id).await.unwrap();
    assert!(matches!(
        w.take_authorization_code(&[1; 32], T0).await.unwrap(),
        CodeTaken::Replayed { issued: Some(_) }
    ));
    // A refresh token: fresh once, then reused (with its family named).
    assert_eq!(
        w.take_refresh_token(&[2; 32], T0).await.unwrap(),
        RefreshTaken::Fresh(Box::new(r.clone()))
    );
    assert_eq!(
        w.take_refresh_token(&[2; 32], T0).await.unwrap(),
        RefreshTaken::Reused(Box::new(r.clone()))
    );
    // Not committed: the token is as it was.
    drop(w);
    let mut w = store.write(pool.id).await.unwrap();
    assert!(matches!(
        w.take_refresh_token(&[2; 32], T0).await.unwrap(),
        RefreshTaken::Fresh(_)
    ));
}

pub async fn expired_codes_and_refresh_tokens_are_purged(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let ada = new_user(store, pool.id, "ada").await;
    let policy = PurgePolicy::default();
    let now = T0.plus_secs(30 * 86_400);
    let limit = now.plus_secs(-policy.session_grace_secs);
    let mut w = store.write(pool.id).await.unwrap();
    w.put_authorization_code(&code(pool.id, ada.id, 1, limit.plus_secs(-1)))
        .await
        .unwrap();
    w.put_authorization_code(&code(pool.id, ada.id, 2, limit))
        .await
        .unwrap();
    w.put_refresh_token(&refresh(pool.id, ada.id, 3, limit.plus_secs(-1)))
        .await
        .unwrap();
    w.put_refresh_token(&refresh(pool.id, ada.id, 4, now.plus_secs(3600)))
        .await
        .unwrap();
    w.commit().await.unwrap();
    let counts = store.purge_expired(now, &policy).await.unwrap();
    assert_eq!(
        counts,
        PurgeCounts {
            authorization_codes: 1,
            refresh_tokens: 1,
            ..PurgeCounts::default()
        }
    );
    let mut w = store.write(pool.id).await.unwrap();
    assert_eq!(
        w.take_authorization_code(&[1; 32], now).await.unwrap(),
        CodeTaken::Unknown
    );
    assert!(matches!(
        w.take_authorization_code(&[2; 32], now).await.unwrap(),
        CodeTaken::Fresh(_)
    ));
    assert!(matches!(
        w.take_refresh_token(&[4; 32], now).await.unwrap(),
        RefreshTaken::Fresh(_)
    ));
}
