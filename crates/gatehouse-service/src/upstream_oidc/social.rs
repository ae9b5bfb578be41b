//! The OAuth 2.0 social providers, which issue no ID token: their profile APIs, called with
//! the access token the code exchange gave, say who signed in. Facebook's Graph API also gets
//! `appsecret_proof` (HMAC-SHA256 of the access token under the app secret, in hex), so a
//! token issued to another app is of no use here.

use gatehouse_crypto::secret::hmac_sha256;
use serde_json::Value;

use super::{
    Endpoints, Step, UpstreamClient, UpstreamConfig, UpstreamError, UpstreamIdentity, bearer,
};

pub(super) async fn facebook_profile(
    client: &UpstreamClient,
    endpoints: &Endpoints,
    config: &UpstreamConfig,
    access_token: &str,
) -> Result<UpstreamIdentity, UpstreamError> {
    let mut url = endpoints
        .userinfo
        .clone()
        .ok_or_else(|| UpstreamError::Config("Facebook's profile API has no URL".to_owned()))?;
    let proof = appsecret_proof(config.client_secret.expose(), access_token);
    url.query_pairs_mut().append_pair("appsecret_proof", &proof);
    profile(client, url.as_str(), access_token, "id").await
}

pub(super) async fn amazon_profile(
    client: &UpstreamClient,
    endpoints: &Endpoints,
    access_token: &str,
) -> Result<UpstreamIdentity, UpstreamError> {
    let url = endpoints
        .userinfo
        .as_ref()
        .ok_or_else(|| UpstreamError::Config("Amazon's profile API has no URL".to_owned()))?;
    profile(client, url.as_str(), access_token, "user_id").await
}

/// The profile at `url`; its member `subject` names the user.
async fn profile(
    client: &UpstreamClient,
    url: &str,
    access_token: &str,
    subject: &'static str,
) -> Result<UpstreamIdentity, UpstreamError> {
    let authorization = bearer(access_token);
    let claims = client
        .get_json(Step::Profile, url, &[("authorization", &authorization)])
        .await?;
    let subject = match claims.get(subject) {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 255 => s.clone(),
        _ => {
            return Err(UpstreamError::Malformed {
                step: Step::Profile,
                reason: "the profile names no user",
            });
        }
    };
    Ok(UpstreamIdentity {
        subject,
        claims,
        id_token: None,
    })
}

/// Facebook's `appsecret_proof`: HMAC-SHA256(app secret, access token), lowercase hex.
pub(crate) fn appsecret_proof(app_secret: &str, access_token: &str) -> String {
    hmac_sha256(app_secret.as_bytes(), access_token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
