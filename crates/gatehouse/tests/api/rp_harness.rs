//! The browser relying party (`browser::Rp`) proven against a real OpenID provider, npm
//! `oidc-provider` (OpenID certified), dressed by `tests/peers/oidc-provider-op.mjs` with
//! Gatehouse's issuers, endpoint paths and page interface. These tests check the harness the
//! browser sign-in tests rely on: if they pass, a failure there is Gatehouse's.

use std::path::Path;

use serde_json::{Value, json};

use crate::browser::{Rp, peers_dir, screenshot_dir};
use crate::common::start_peer;

const WEB_SECRET: &str = "a-confidential-client-secret-of-32-bytes";
const ADA_PASSWORD: &str = "correct horse battery staple";

/// oidc-provider with two pools, `acme` and `beta`, each with a confidential client
/// (`{pool}-web`) and a public one (`{pool}-spa`) registered for `rp`, and the users `ada` and
/// `bob` (who must choose a new password when he signs in).
struct Op {
    base: String,
    _child: tokio::process::Child,
}

impl Op {
    async fn start(rp: &Rp) -> Op {
        let clients = |pool: &str| {
            let common = json!({
                "redirect_uris": [rp.redirect_uri()],
                "post_logout_redirect_uris": [rp.post_logout_redirect_uri()],
                "grant_types": ["authorization_code", "refresh_token"],
            });
            let mut web = common.clone();
            web["client_id"] = json!(format!("{pool}-web"));
            web["client_secret"] = json!(WEB_SECRET);
            let mut spa = common;
            spa["client_id"] = json!(format!("{pool}-spa"));
            spa["token_endpoint_auth_method"] = json!("none");
            json!([web, spa])
        };
        let users = json!({
            "ada": {"password": ADA_PASSWORD, "email": "ada@acme.example"},
            "bob": {"password": "temporary password", "new_password_required": true},
        });
        let config = json!({"pools": {
            "acme": {"clients": clients("acme"), "users": users},
            "beta": {"clients": clients("beta"), "users": users},
        }});
        let mut cmd = tokio::process::Command::new("node");
        cmd.arg(peers_dir().join("oidc-provider-op.mjs"))
            .arg(config.to_string());
        let (child, line) = start_peer(cmd, "oidc-provider").await;
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("oidc-provider did not start: {line}"));
        Op {
            base: ready["base"].as_str().unwrap().to_owned(),
            _child: child,
        }
    }

    fn issuer(&self, pool: &str) -> String {
        format!("{}/pools/{pool}", self.base)
    }
}

fn login(issuer: &str, client_id: &str, expect_page: bool) -> Value {
    let mut cmd = json!({
        "op": "login", "issuer": issuer, "client_id": client_id,
        "username": "ada", "password": ADA_PASSWORD,
        "scope": "openid email offline_access", "expect_page": expect_page,
    });
    if client_id.ends_with("-web") {
        cmd["client_secret"] = json!(WEB_SECRET);
    }
    cmd
}

/// With axe and screenshots, into `dir`.
fn reviewed(mut cmd: Value, dir: &Path) -> Value {
    cmd["axe"] = json!(true);
    cmd["screenshot_dir"] = json!(dir);
    cmd
}

/// A recorded page: the step expected, no serious or critical axe violation, and a PNG
/// screenshot at each of 1280×800 and 390×844 (full page: at least that tall).
fn assert_reviewed(page: &Value, step: &str) {
    assert_eq!(page["step"], step, "{page:#}");
    assert_eq!(page["axe"], json!([]), "axe violations on the {step} page");
    let shots: Vec<&str> = page["screenshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(shots.len(), 2, "{page:#}");
    for (path, (width, height)) in shots.iter().zip([(1280, 800), (390, 844)]) {
        let png = std::fs::read(path).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{path}");
        let size = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
        assert_eq!(size(16), width, "{path}");
        assert!(size(20) >= height, "{path}");
    }
}

/// The sequence the Gatehouse tests will run: login with PKCE for a confidential and a public
/// client, ID token and userinfo, refresh twice with rotation, SSO within a pool and not across
/// pools, logout, and the sign-in page again after it; axe and screenshots on every page.
#[tokio::test]
async fn the_browser_relying_party_runs_the_whole_sign_in_sequence() {
    let mut rp = Rp::start().await;
    let op = Op::start(&rp).await;
    let (shots, _keep) = screenshot_dir("rp_harness");
    let acme = op.issuer("acme");

    // The confidential client: the sign-in page, filled in; the code exchanged with PKCE.
    let web = rp
        .ok(reviewed(login(&acme, "acme-web", true), &shots))
        .await;
    assert_eq!(web["page_shown"], true);
    assert_reviewed(&web["pages"][0], "sign-in");
    assert_eq!(web["claims"]["iss"], acme);
    assert_eq!(web["claims"]["sub"], "ada");
    assert_eq!(web["claims"]["aud"], "acme-web");
    assert!(web["claims"]["nonce"].is_string(), "{web:#}");
    assert_eq!(web["userinfo"]["sub"], "ada");
    assert_eq!(web["userinfo"]["email"], "ada@acme.example");

    // Refresh twice; each answer carries a new refresh token.
    let mut previous = web["tokens"]["refresh_token"].clone();
    for _ in 0..2 {
        let r = rp
            .ok(json!({"op": "refresh", "client_id": "acme-web"}))
            .await;
        assert_eq!(r["rotated"], true, "{r:#}");
        assert_ne!(r["tokens"]["refresh_token"], previous);
        assert_eq!(r["claims"]["sub"], "ada");
        previous = r["tokens"]["refresh_token"].clone();
    }
    let r = rp
        .ok(json!({"op": "userinfo", "client_id": "acme-web"}))
        .await;
    assert_eq!(r["userinfo"]["sub"], "ada");

    // The public client of the same pool, in the same browser: a code without the page.
    let spa = rp.ok(login(&acme, "acme-spa", false)).await;
    assert_eq!(spa["page_shown"], false);
    assert_eq!(spa["pages"], json!([]));
    assert_eq!(spa["claims"]["aud"], "acme-spa");
    assert_eq!(spa["claims"]["sub"], "ada");
    let first = spa["tokens"]["refresh_token"].clone();
    for _ in 0..2 {
        let r = rp
            .ok(json!({"op": "refresh", "client_id": "acme-spa"}))
            .await;
        assert_eq!(r["rotated"], true, "{r:#}");
    }
    // A rotated-away refresh token is refused, and the refusal comes back as an answer.
    let reused = rp
        .call(json!({"op": "refresh", "client_id": "acme-spa", "refresh_token": first}))
        .await;
    assert_eq!(reused["ok"], false, "{reused:#}");
    assert_eq!(reused["error"]["error"], "invalid_grant", "{reused:#}");

    // Another pool never skips its sign-in page.
    let beta = rp.ok(login(&op.issuer("beta"), "beta-web", true)).await;
    assert_eq!(beta["claims"]["iss"], op.issuer("beta"));

    // The acme SSO cookie is there, per pool.
    let cookies = rp.ok(json!({"op": "cookies"})).await;
    let names: Vec<&str> = cookies["cookies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"_s_acme") && names.contains(&"_s_beta"),
        "{names:?}"
    );

    // RP-initiated logout: the confirmation, Sign out, back at the relying party with its state.
    let out = rp
        .ok(reviewed(
            json!({"op": "logout", "client_id": "acme-web"}),
            &shots,
        ))
        .await;
    assert_eq!(out["confirm_shown"], true);
    assert_reviewed(&out["pages"][0], "sign-out");
    assert_eq!(out["at_post_logout_redirect"], true, "{out:#}");
    assert_eq!(out["state_ok"], true, "{out:#}");

    // After logout the sign-in page is shown again: a login expecting SSO says so, and one
    // expecting the page signs in.
    let sso = rp.call(login(&acme, "acme-spa", false)).await;
    assert_eq!(sso["ok"], false, "{sso:#}");
    assert!(
        sso["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sign-in page was shown"),
        "{sso:#}"
    );
    let again = rp.ok(login(&acme, "acme-spa", true)).await;
    assert_eq!(again["page_shown"], true);

    // Signing out of acme left beta's session alone.
    let beta = rp.ok(login(&op.issuer("beta"), "beta-spa", false)).await;
    assert_eq!(beta["page_shown"], false);
}

/// The new-password step, a hand-made authorization request the provider refuses, axe finding
/// real violations, and errors answered rather than crashing the script.
#[tokio::test]
async fn the_browser_relying_party_reports_steps_refusals_and_errors() {
    let mut rp = Rp::start().await;
    let op = Op::start(&rp).await;
    let (shots, _keep) = screenshot_dir("rp_harness_steps");
    let acme = op.issuer("acme");

    // Bob must choose a new password: sign-in, then New password, then back with a code.
    let bob = rp
        .ok(reviewed(
            json!({"op": "login", "issuer": acme, "client_id": "acme-spa",
                   "username": "bob", "password": "temporary password",
                   "new_password": "a new password of his own", "expect_page": true}),
            &shots,
        ))
        .await;
    assert_reviewed(&bob["pages"][0], "sign-in");
    assert_reviewed(&bob["pages"][1], "new-password");
    assert_eq!(bob["claims"]["sub"], "bob");

    // In a fresh browser, the old password is refused: the page comes back, and the answer
    // says so with the page's text.
    rp.ok(json!({"op": "new_context"})).await;
    let refused = rp
        .call(
            json!({"op": "login", "issuer": acme, "client_id": "acme-spa",
                     "username": "bob", "password": "temporary password"}),
        )
        .await;
    assert_eq!(refused["ok"], false, "{refused:#}");
    assert!(
        refused["text"]
            .as_str()
            .unwrap()
            .contains("Incorrect username or password"),
        "{refused:#}"
    );

    // An unregistered redirect URI: the provider answers with its error page and never sends
    // the browser on; oidc-provider's stock error page has no `lang`, which axe reports.
    let url = format!(
        "{acme}/oauth2/authorize?client_id=acme-spa&response_type=code&scope=openid\
         &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256\
         &redirect_uri=http%3A%2F%2F127.0.0.1%3A1%2Fevil"
    );
    let raw = rp
        .ok(json!({"op": "authorize_raw", "url": url, "axe": true}))
        .await;
    assert_eq!(raw["at_redirect_uri"], false);
    assert_eq!(raw["status"], 400, "{raw:#}");
    assert!(
        raw["text"]
            .as_str()
            .unwrap()
            .contains("invalid_redirect_uri"),
        "{raw:#}"
    );
    let axe_ids: Vec<&Value> = raw["pages"][0]["axe"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["id"])
        .collect();
    assert!(axe_ids.contains(&&json!("html-has-lang")), "{raw:#}");

    // Nonsense is answered, and the script carries on.
    let unknown = rp.call(json!({"op": "fly"})).await;
    assert_eq!(unknown["ok"], false);
    let no_session = rp
        .call(json!({"op": "refresh", "client_id": "nobody"}))
        .await;
    assert_eq!(no_session["ok"], false);
    rp.ok(json!({"op": "cookies"})).await;
}
