//! Per-pool themes of the hosted pages: the admin API checks every value (and loses nothing
//! on a refusal), the pages of the themed pool show it, and no other pool's pages do.

use base64::Engine;
use gatehouse_domain::client::ClientType;
use gatehouse_domain::ids::PoolSlug;
use gatehouse_service::clients::NewAppClient;
use gatehouse_service::grants::authorization_code::s256;
use gatehouse_service::{Operator, RequestMeta};
use serde_json::{Value, json};

use crate::code_flow::{REDIRECT, VERIFIER, urlencode};
use crate::common::{TestApp, assert_api_error, spawn_app};

/// A 1×1 PNG.
pub(crate) const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

async fn sign_in_page(app: &TestApp, pool: &str) -> reqwest::Response {
    let slug = PoolSlug::parse(pool).unwrap();
    let p = app.gh.pool(&slug).await.unwrap();
    let (client, _) = app
        .gh
        .create_app_client(
            &p,
            &Operator::new("test").in_pool(&slug),
            NewAppClient {
                name: "Web app".to_owned(),
                scopes: None,
                grant_types: Some(vec!["authorization_code".to_owned()]),
                redirect_uris: Some(vec![REDIRECT.to_owned()]),
                post_logout_redirect_uris: None,
                client_type: ClientType::Confidential,
                third_party: false,
                ..NewAppClient::default()
            },
            &RequestMeta::default(),
        )
        .await
        .unwrap();
    app.http
        .get(app.pool_url(
            pool,
            &format!(
                "/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid\
                 &code_challenge={}&code_challenge_method=S256",
                client.client_id,
                urlencode(REDIRECT),
                s256(VERIFIER)
            ),
        ))
        .send()
        .await
        .unwrap()
}

async fn put_theme(app: &TestApp, token: &str, body: &Value) -> reqwest::Response {
    app.http
        .put(app.pool_url("acme", "/api/auth/settings/theme"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn get_theme(app: &TestApp, token: &str) -> reqwest::Response {
    app.http
        .get(app.pool_url("acme", "/api/auth/settings/theme"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn data_uri(media: &str, bytes: &[u8]) -> String {
    format!(
        "data:{media};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

#[tokio::test]
async fn bad_themes_are_refused_by_field_and_change_nothing() {
    let app = spawn_app().await;
    let (_, ada) = app.acme_with_ada().await;
    let good = json!({"DisplayName": "Acme", "AccentColor": "#0b6e4f"});
    assert_eq!(put_theme(&app, &ada, &good).await.status(), 200);
    let png = base64::engine::general_purpose::STANDARD
        .decode(PNG_1X1)
        .unwrap();
    let mut oversize = png.clone();
    oversize.resize(48 * 1024 + 1, 0);
    for (body, field) in [
        (json!({"AccentColor": "#ffff00"}), "AccentColor"),
        (json!({"AccentColor": "#777777"}), "AccentColor"),
        (json!({"AccentColor": "0b6e4f"}), "AccentColor"),
        (json!({"BackgroundColor": "blue"}), "BackgroundColor"),
        (json!({"BackgroundColor": "#fff"}), "BackgroundColor"),
        (json!({"DisplayName": "x".repeat(65)}), "DisplayName"),
        (json!({"DisplayName": "Acme\u{1b}[31m"}), "DisplayName"),
        (json!({"DisplayName": "  "}), "DisplayName"),
        (
            json!({"Logo": data_uri("image/svg+xml", b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>")}),
            "Logo",
        ),
        (json!({"Logo": data_uri("image/png", b"<svg/>")}), "Logo"),
        (json!({"Logo": data_uri("image/png", &oversize)}), "Logo"),
        (json!({"Logo": "data:image/png;base64,not base64!"}), "Logo"),
        (json!({"Logo": "https://cdn.example.com/logo.png"}), "Logo"),
        // A valid field beside a bad one changes nothing either.
        (
            json!({"DisplayName": "Other", "AccentColor": "#eeeeee"}),
            "AccentColor",
        ),
    ] {
        let res = put_theme(&app, &ada, &body).await;
        let err = assert_api_error(res, 400).await;
        let detail = err["errors"][0]["detail"].as_str().unwrap();
        assert!(detail.contains(field), "{field}: {detail}");
    }
    let kept: Value = get_theme(&app, &ada).await.json().await.unwrap();
    assert_eq!(kept, good);
    // Unknown fields and nulls are refused too.
    assert_api_error(
        put_theme(&app, &ada, &json!({"Colour": "#000000"})).await,
        400,
    )
    .await;
    assert_api_error(put_theme(&app, &ada, &json!({"Logo": null})).await, 400).await;
    assert_eq!(app.audit_count("acme", "pool.settings_updated").await, 1);
}

#[tokio::test]
async fn only_those_allowed_read_and_change_the_theme() {
    let app = spawn_app().await;
    let (client, ada) = app.acme_with_ada().await;
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    assert_api_error(get_theme(&app, &alice).await, 403).await;
    assert_api_error(
        put_theme(&app, &alice, &json!({"DisplayName": "Mine"})).await,
        403,
    )
    .await;
    let anonymous = app
        .http
        .get(app.pool_url("acme", "/api/auth/settings/theme"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        get_theme(&app, &ada).await.json::<Value>().await.unwrap(),
        json!({})
    );
}

#[tokio::test]
async fn the_themed_pool_s_pages_show_it_and_no_other_pool_s_do() {
    let app = spawn_app().await;
    let (_, ada) = app.acme_with_ada().await;
    app.create_pool("beta").await;
    let logo = format!("data:image/png;base64,{PNG_1X1}");
    let theme = json!({
        "DisplayName": "Acme <Insurance> & Co",
        "AccentColor": "#0B6E4F",
        "BackgroundColor": "#f4efe6",
        "Logo": logo,
    });
    let res = put_theme(&app, &ada, &theme).await;
    assert_eq!(res.status(), 200);
    let stored: Value = res.json().await.unwrap();
    assert_eq!(stored["AccentColor"], "#0b6e4f");
    assert_eq!(stored["Logo"], logo.as_str());

    let page = sign_in_page(&app, "acme").await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("img-src data:"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = page.text().await.unwrap();
    // The name, escaped, in the title and as the logo's text.
    assert!(
        html.contains("<title>Sign in · Acme &lt;Insurance&gt; &amp; Co</title>"),
        "{html}"
    );
    assert!(
        html.contains(r#"alt="Acme &lt;Insurance&gt; &amp; Co""#),
        "{html}"
    );
    assert!(
        html.contains("<img src=\"data:image&#x2f;png;base64,"),
        "{html}"
    );
    assert!(html.contains("--accent: #0b6e4f;"));
    assert!(html.contains("body { background: #f4efe6; }"));
    assert!(!html.contains("<Insurance>"));

    // Another pool keeps Gatehouse's own look, and its policy allows no images.
    let other = sign_in_page(&app, "beta").await;
    let csp = other.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!csp.contains("img-src"), "{csp}");
    let html = other.text().await.unwrap();
    assert!(html.contains("<title>Sign in · beta</title>"), "{html}");
    assert!(!html.contains("Insurance") && !html.contains("<img") && !html.contains("#0b6e4f"));

    // Without the logo and the name, the slug is back and images are refused again.
    let res = put_theme(&app, &ada, &json!({"Logo": "", "DisplayName": ""})).await;
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"AccentColor": "#0b6e4f", "BackgroundColor": "#f4efe6"})
    );
    let page = sign_in_page(&app, "acme").await;
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!csp.contains("img-src"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains("<title>Sign in · acme</title>"), "{html}");
    assert!(html.contains("--accent: #0b6e4f;") && !html.contains("<img"));
}
