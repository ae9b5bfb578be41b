//! Signing in through a pool's identity providers (spec section 7b): what every protocol
//! shares once the provider's answer is checked.
//!
//! 1. The hosted sign-in (or `identity_provider=` on the authorization request) starts a
//!    sign-in at a provider, keeping the sealed authorization request it continues with the
//!    protocol's state: for OAuth (PKCE verifier, nonce, the SHA-256 of `state`) in a cookie
//!    sealed with the master key, so that a start writes nothing and only the browser that
//!    started can finish; for SAML (the request's ID; the answer is a cross-site POST, which
//!    carries no cookie of ours) as a [`PendingFederation`] row under the SHA-256 of the
//!    `RelayState`, taken once.
//! 2. The provider answers at `{base}/oauth2/idpresponse` or `{base}/saml2/idpresponse`;
//!    the protocol module checks the answer and gives an [`UpstreamAssertion`].
//! 3. [`Gatehouse::sign_in_federated`] finds the user linked to the provider's subject, or
//!    creates one just in time (status `EXTERNAL_PROVIDER`, username `{provider}_{subject}`),
//!    writes the mapped attributes into the profile (never roles), and starts a browser
//!    session, all in one transaction that also reads the provider: disabling or deleting it
//!    either waits for the sign-in or is seen.
//!
//! One person is one user: a provider's subject is linked to exactly one user, and an
//! administrator links further identities with `link-to-provider`. A provider's e-mail
//! address never links by itself: a person whose upstream address matches a local user gets
//! a user of their own, so that no provider can take an account over by naming its address.

use std::collections::BTreeMap;

use gatehouse_crypto::secret::{Secret, sha256};
use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::federation::{
    IdentityProvider, MAPPABLE_ATTRIBUTES, MappedProfile, OAuthKind, ProviderName,
    ProviderProtocol, apply_profile,
};
use gatehouse_domain::ids::{UserId, Username};
use gatehouse_domain::pool::Pool;
use gatehouse_domain::store::StoreError;
use gatehouse_domain::time::Timestamp;
use gatehouse_domain::user::{
    Enabled, FederatedIdentity, MfaState, User, UserAttributes, UserStatus,
};
use serde::{Deserialize, Serialize};

use crate::audit::EventExt;
use crate::browser::BrowserSignIn;
use crate::error::ServiceResult;
use crate::{Gatehouse, RequestMeta};

mod oauth;

pub(crate) use oauth::upstream_config;

/// How long a browser may take at a provider.
pub const PENDING_TTL_SECS: i64 = 10 * 60;

/// What a provider asserted about the person signing in, once its answer was checked.
#[derive(Debug, Clone, Default)]
pub struct UpstreamAssertion {
    /// The provider's stable identifier of the person (OIDC `sub`, SAML NameID, the social
    /// profile's id).
    pub subject: String,
    /// Every attribute or claim the provider sent, as text (several values for SAML's
    /// multi-valued attributes).
    pub attributes: BTreeMap<String, Vec<String>>,
    /// What ending the session at the provider will need, kept with the browser session.
    pub session: UpstreamSession,
}

/// What ending a session at its provider needs, from the answer that started it (see
/// `federation_logout`).
#[derive(Debug, Clone, Default)]
pub enum UpstreamSession {
    /// Nothing beyond the subject (an OAuth 2.0 provider without an ID token).
    #[default]
    Plain,
    /// A SAML IdP's session: the NameID's Format and the SessionIndex (the NameID is the
    /// subject).
    Saml {
        name_id_format: Option<String>,
        session_index: Option<String>,
    },
    /// An OpenID provider's session: its ID token, the `id_token_hint` of its logout.
    OpenId { id_token: Option<Secret> },
}

/// A browser session's provider, to be recorded with it (`FederatedSession`).
#[derive(Debug, Clone)]
pub(crate) struct UpstreamOrigin {
    pub provider: ProviderName,
    pub subject: String,
    pub session: UpstreamSession,
}

/// Why a federated sign-in did not happen; said on a page, and in the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FederationRefusal {
    /// No enabled provider of that name in the pool.
    NotOffered,
    /// The sign-in expired, was already finished, or started in another browser.
    Expired,
    /// The provider's answer failed a check (why, for the log only).
    Rejected(String),
    /// The provider says the sign-in failed or was cancelled (its error code).
    Denied(String),
    /// The user linked to this identity is disabled.
    Disabled,
    /// The provider gave no e-mail address, which a profile needs.
    NoEmail,
    /// The username the new user would take belongs to another user.
    NameTaken,
}

impl FederationRefusal {
    pub fn message(&self) -> &'static str {
        match self {
            Self::NotOffered => "This sign-in option is not available.",
            Self::Expired => {
                "This sign-in expired, was already used, or was started in another browser. Go back to the application and start again."
            }
            Self::Rejected(_) => {
                "The identity provider's answer could not be accepted. Go back to the application and start again."
            }
            Self::Denied(_) => "The identity provider did not sign you in.",
            Self::Disabled => "Your account is disabled.",
            Self::NoEmail => {
                "The identity provider did not share your e-mail address, which this organisation needs."
            }
            Self::NameTaken => {
                "Another account of this organisation already uses your name. Ask its administrator."
            }
        }
    }

    /// A short reason for the audit log.
    pub fn reason(&self) -> String {
        match self {
            Self::NotOffered => "provider not offered".to_owned(),
            Self::Expired => "expired, reused or another browser".to_owned(),
            Self::Rejected(why) => format!("rejected: {why}"),
            Self::Denied(code) => format!("denied by the provider: {code}"),
            Self::Disabled => "user disabled".to_owned(),
            Self::NoEmail => "no e-mail address".to_owned(),
            Self::NameTaken => "username taken".to_owned(),
        }
    }
}

/// The protocol state a pending sign-in keeps (its payload).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct PendingState {
    /// The sealed authorization request the sign-in continues.
    pub request: String,
    /// OAuth, carried in the browser's cookie: the provider, BASE64URL(SHA-256) of the
    /// `state` sent, and when the sign-in expires (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_verifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The SAML AuthnRequest's ID, which the response must answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saml_request_id: Option<String>,
    /// Set when this is a logout at the provider, not a sign-in (`federation_logout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logout: Option<PendingLogout>,
}

/// A logout sent to a provider: where the browser goes once it is back.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct PendingLogout {
    /// The client's checked post-logout URI with its `state`; none: the signed-out page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub then: Option<String>,
}

/// A sign-in at a provider has started: send the browser to `location`; for OAuth, set the
/// pool's federation cookie to `cookie` first (the sign-in's state, sealed).
#[derive(Debug)]
pub struct FederationStart {
    pub location: String,
    pub cookie: Option<Secret>,
}

pub(crate) fn b64_sha256(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha256(s.as_bytes()))
}

/// The username a provider's person gets: `{provider}_{subject}`, or `{provider}_` and a
/// digest of the subject when that is not a username.
fn federated_username(provider: &ProviderName, subject: &str) -> ServiceResult<Username> {
    Username::parse(&format!("{provider}_{subject}"))
        .or_else(|_| {
            let digest = b64_sha256(subject);
            Username::parse(&format!("{provider}_{}", &digest[..22]))
        })
        .map_err(Into::into)
}

/// The upstream attribute a profile attribute is read from when the mapping does not say:
/// the OIDC claim of the same name (`phone_number` for `phone`), Facebook's and SAML's own
/// names, and the AD FS claim URIs.
fn default_source(
    idp: &IdentityProvider,
    attribute: &str,
    available: &BTreeMap<String, Vec<String>>,
) -> Option<String> {
    match &idp.protocol {
        ProviderProtocol::OAuth(o) => {
            let name = match (o.kind, attribute) {
                (_, "phone") => "phone_number",
                (OAuthKind::Facebook, "given_name") => "first_name",
                (OAuthKind::Facebook, "family_name") => "last_name",
                (_, a) => a,
            };
            available.contains_key(name).then(|| name.to_owned())
        }
        ProviderProtocol::Saml(_) => {
            if available.contains_key(attribute) {
                return Some(attribute.to_owned());
            }
            available
                .keys()
                .find(|k| default_claim(k) == Some(attribute))
                .cloned()
        }
    }
}

/// The profile claim a SAML attribute name stands for (the AD FS claim URIs and the `urn:oid`
/// names), when the mapping does not say.
fn default_claim(attribute: &str) -> Option<&'static str> {
    #[cfg(feature = "saml")]
    {
        gatehouse_saml::default_claim(attribute)
    }
    #[cfg(not(feature = "saml"))]
    {
        let _ = attribute;
        None
    }
}

/// The profile a provider's attributes give under its mapping.
pub(crate) fn map_profile(
    idp: &IdentityProvider,
    attributes: &BTreeMap<String, Vec<String>>,
) -> MappedProfile {
    let mut profile = MappedProfile::new();
    for &attribute in MAPPABLE_ATTRIBUTES {
        let source = match idp.attribute_mapping.get(attribute) {
            Some(s) => Some(s.to_owned()),
            None => default_source(idp, attribute, attributes),
        };
        if let Some(value) = source
            .and_then(|s| attributes.get(&s))
            .and_then(|values| values.first())
        {
            profile.insert(attribute, value.clone());
        }
    }
    profile
}

/// A claim's value as the text attributes hold: strings as they are, booleans and numbers
/// written out, each element of an array; objects are left out.
pub(crate) fn claim_texts(value: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Bool(b) => vec![b.to_string()],
        Value::Number(n) => vec![n.to_string()],
        Value::Array(items) => items
            .iter()
            .filter(|v| !v.is_array())
            .flat_map(claim_texts)
            .collect(),
        Value::Null | Value::Object(_) => Vec::new(),
    }
}

/// Creates, in `w`, a user of `pool` for an upstream identity (`(provider, subject)`), just in
/// time: status `EXTERNAL_PROVIDER`, no password, linked to that identity. `None` when the
/// username is taken.
pub(crate) async fn create_linked_user(
    w: &mut dyn gatehouse_domain::txn::PoolWrite,
    pool: &Pool,
    username: Username,
    attributes: UserAttributes,
    (provider, subject): (&str, &str),
    now: Timestamp,
) -> ServiceResult<Option<User>> {
    let user = User {
        id: UserId::new_random(),
        pool: pool.id,
        username,
        enabled: Enabled::Yes,
        status: UserStatus::ExternalProvider,
        attributes,
        contact_id: None,
        password: None,
        tokens_not_before: None,
        mfa: MfaState::NONE,
        previous_email: None,
        created_at: now,
        updated_at: now,
    };
    match w.create_user(&user).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    w.link_identity(&FederatedIdentity {
        pool: pool.id,
        provider_name: provider.to_owned(),
        provider_user_id: subject.to_owned(),
        user_id: user.id,
        created_at: now,
    })
    .await?;
    Ok(Some(user))
}

impl Gatehouse {
    /// The pool's enabled providers, for the sign-in page's buttons.
    pub async fn sign_in_providers(&self, pool: &Pool) -> ServiceResult<Vec<ProviderName>> {
        Ok(self
            .store
            .identity_providers(pool.id)
            .await?
            .into_iter()
            .filter(|p| p.enabled)
            .map(|p| p.name)
            .collect())
    }

    /// The enabled provider of that name.
    pub(crate) async fn offered_provider(
        &self,
        pool: &Pool,
        name: &str,
    ) -> ServiceResult<Option<IdentityProvider>> {
        let Ok(name) = ProviderName::parse(name) else {
            return Ok(None);
        };
        Ok(self
            .store
            .identity_provider(pool.id, &name)
            .await?
            .filter(|p| p.enabled))
    }

    /// Keeps a pending sign-in under `handle` (random, 256 bits): SAML's.
    #[cfg(feature = "saml")]
    pub(crate) async fn put_pending_federation(
        &self,
        pool: &Pool,
        idp: &IdentityProvider,
        handle: &str,
        state: &PendingState,
    ) -> ServiceResult<()> {
        let payload = serde_json::to_string(state)
            .map_err(|e| crate::error::ServiceError::internal(format!("a pending sign-in: {e}")))?;
        self.store
            .put_pending_federation(&gatehouse_domain::federation::PendingFederation {
                pool: pool.id,
                handle_sha256: sha256(handle.as_bytes()),
                provider: idp.name.clone(),
                payload,
                expires_at: self.now().plus_secs(PENDING_TTL_SECS),
            })
            .await?;
        Ok(())
    }

    /// Takes the pending sign-in under `handle`, once: its provider (if still offered) and
    /// its state.
    #[cfg(feature = "saml")]
    pub(crate) async fn take_pending_federation(
        &self,
        pool: &Pool,
        handle: &str,
    ) -> ServiceResult<Option<(IdentityProvider, PendingState)>> {
        let Some(pending) = self
            .store
            .take_pending_federation(pool.id, &sha256(handle.as_bytes()), self.now())
            .await?
        else {
            return Ok(None);
        };
        let Some(idp) = self
            .offered_provider(pool, pending.provider.as_str())
            .await?
        else {
            return Ok(None);
        };
        let state: PendingState = serde_json::from_str(&pending.payload)
            .map_err(|e| crate::error::ServiceError::internal(format!("a pending sign-in: {e}")))?;
        Ok(Some((idp, state)))
    }

    /// Records a refused federated sign-in in the audit log.
    pub(crate) async fn audit_federation_refusal(
        &self,
        pool: &Pool,
        provider: &str,
        refusal: &FederationRefusal,
        meta: &RequestMeta,
    ) {
        let event = self
            .event(pool, AuditAction::FederatedSignInRefused, None, meta)
            .detail("provider", provider)
            .detail("reason", refusal.reason());
        if let Err(e) = self.store.append_audit(&event).await {
            tracing::warn!(error = %e, "a refused federated sign-in was not audited");
        }
    }

    /// Signs in the user linked to what `idp` asserted (see the module's documentation).
    /// `once`, when given, is a single-use value taken in the same transaction (a SAML
    /// assertion's ID, remembered until it expires): a replayed answer signs no one in.
    pub async fn sign_in_federated(
        &self,
        pool: &Pool,
        idp: &IdentityProvider,
        assertion: UpstreamAssertion,
        once: Option<(String, Timestamp)>,
        meta: &RequestMeta,
    ) -> ServiceResult<Result<BrowserSignIn, FederationRefusal>> {
        let subject = assertion.subject.trim();
        if subject.is_empty() || subject.chars().count() > 512 {
            return Ok(Err(FederationRefusal::Rejected(
                "the subject is empty or too long".to_owned(),
            )));
        }
        let profile = map_profile(idp, &assertion.attributes);
        let now = self.now();
        let mut w = self.store.write(pool.id).await?;
        // The provider as it is now, under its row's lock: a provider disabled, deleted or
        // repointed meanwhile signs no one in on an answer checked against what it was.
        match w.identity_provider(&idp.name).await? {
            Some(current) if current.enabled && current.protocol == idp.protocol => {}
            _ => return Ok(Err(FederationRefusal::NotOffered)),
        }
        if let Some((key, until)) = once
            && !w.use_once(&key, now, until).await?
        {
            return Ok(Err(FederationRefusal::Rejected(
                "the answer was already used".to_owned(),
            )));
        }
        let user = match w.user_by_identity(idp.name.as_str(), subject).await? {
            Some(mut user) => {
                if !user.enabled.is_enabled() {
                    return Ok(Err(FederationRefusal::Disabled));
                }
                let mut attributes = user.attributes.clone();
                if apply_profile(&mut attributes, &profile) && attributes.validate().is_ok() {
                    // As for any change of address: the previous one hears of resets for a
                    // while.
                    user.note_email_change(&attributes.email, now);
                    user.attributes = attributes;
                    user.updated_at = now;
                    w.update_user(&user).await?;
                }
                user
            }
            None => {
                let Some(email) = profile.get("email").cloned() else {
                    return Ok(Err(FederationRefusal::NoEmail));
                };
                let mut attributes = UserAttributes {
                    email: email.clone(),
                    name: email,
                    ..UserAttributes::default()
                };
                apply_profile(&mut attributes, &profile);
                if attributes.validate().is_err() {
                    return Ok(Err(FederationRefusal::Rejected(
                        "the mapped profile is not valid".to_owned(),
                    )));
                }
                let username = federated_username(&idp.name, subject)?;
                let link = (idp.name.as_str(), subject);
                let created = self
                    .event(pool, AuditAction::UserCreated, None, meta)
                    .subject(&username)
                    .detail("via", "identity provider")
                    .detail("provider", idp.name.as_str());
                match create_linked_user(w.as_mut(), pool, username, attributes, link, now).await? {
                    Some(user) => {
                        w.audit(&created).await?;
                        user
                    }
                    None => return Ok(Err(FederationRefusal::NameTaken)),
                }
            }
        };
        let origin = UpstreamOrigin {
            provider: idp.name.clone(),
            subject: subject.to_owned(),
            session: assertion.session.clone(),
        };
        Ok(Ok(self
            .start_browser_session_from(pool, w, user, None, Some(origin), meta)
            .await?))
    }
}

impl Gatehouse {
    /// Starts a sign-in at the pool's provider `name`, continuing `sealed_request` when it
    /// comes back.
    pub async fn start_federation(
        &self,
        pool: &Pool,
        name: &str,
        sealed_request: &str,
        meta: &RequestMeta,
    ) -> ServiceResult<Result<FederationStart, FederationRefusal>> {
        let Some(idp) = self.offered_provider(pool, name).await? else {
            return Ok(Err(FederationRefusal::NotOffered));
        };
        let started = match &idp.protocol {
            #[cfg(feature = "saml")]
            ProviderProtocol::Saml(_) => self.start_saml(pool, &idp, sealed_request).await?,
            #[cfg(not(feature = "saml"))]
            ProviderProtocol::Saml(_) => Err(FederationRefusal::NotOffered),
            ProviderProtocol::OAuth(o) => self.start_oauth(pool, &idp, o, sealed_request).await?,
        };
        if let Err(refusal) = &started {
            self.audit_federation_refusal(pool, idp.name.as_str(), refusal, meta)
                .await;
        }
        Ok(started)
    }

    /// Cognito's `identities` for these links of a user: each provider's name and type, the
    /// upstream subject, when it was linked; the issuer of OpenID providers. The staff pool's
    /// link is named by the session's staff actor instead.
    pub(crate) async fn identity_claims(
        &self,
        pool: &Pool,
        links: Vec<FederatedIdentity>,
    ) -> ServiceResult<Vec<crate::tokens::IdentityClaim>> {
        let links: Vec<FederatedIdentity> = links
            .into_iter()
            .filter(|l| l.provider_name != crate::tokens::STAFF_PROVIDER)
            .collect();
        if links.is_empty() {
            return Ok(Vec::new());
        }
        let providers = self.store.identity_providers(pool.id).await?;
        let primary = links.iter().map(|l| l.created_at).min();
        Ok(links
            .into_iter()
            .map(|link| {
                let idp = providers
                    .iter()
                    .find(|p| p.name.as_str() == link.provider_name);
                crate::tokens::IdentityClaim {
                    user_id: link.provider_user_id,
                    provider_type: idp
                        .map_or("OIDC", |p| p.protocol.provider_type())
                        .to_owned(),
                    issuer: idp.and_then(|p| match &p.protocol {
                        ProviderProtocol::OAuth(o) => o.issuer.clone(),
                        ProviderProtocol::Saml(_) => None,
                    }),
                    primary: (Some(link.created_at) == primary).to_string(),
                    date_created: Some((link.created_at.as_secs() * 1000).to_string()),
                    provider_name: link.provider_name,
                }
            })
            .collect())
    }

    /// Fetches a document (SAML metadata) through the outbound client: at most `max` bytes,
    /// answered 200 with text.
    pub(crate) async fn fetch_document(&self, url: &str, max: usize) -> Result<String, String> {
        let reply = self
            .outbound()
            .get(url, &[], max)
            .await
            .map_err(|e| e.to_string())?;
        if reply.status != 200 {
            return Err(format!("the metadata URL answered HTTP {}", reply.status));
        }
        String::from_utf8(reply.body).map_err(|_| "the metadata is not UTF-8".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_domain::federation::{AttributeMapping, OAuthSettings, SamlSettings};
    use gatehouse_domain::ids::PoolId;

    fn idp(protocol: ProviderProtocol, mapping: &[(&str, &str)]) -> IdentityProvider {
        IdentityProvider {
            pool: PoolId::new_random(),
            name: ProviderName::parse("corp").unwrap(),
            enabled: true,
            protocol,
            attribute_mapping: AttributeMapping::parse(
                mapping
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            )
            .unwrap(),
            sealed_secret: None,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
            .collect()
    }

    #[test]
    fn oidc_claims_map_by_name_and_the_mapping_wins() {
        let oidc = ProviderProtocol::OAuth(OAuthSettings {
            kind: OAuthKind::Oidc,
            issuer: Some("https://op".into()),
            client_id: "c".into(),
            scopes: vec![],
            endpoints: Default::default(),
        });
        let got = map_profile(
            &idp(oidc, &[("name", "display")]),
            &attrs(&[
                ("email", "a@x.test"),
                ("name", "ignored"),
                ("display", "Ada L"),
                ("phone_number", "+1"),
                ("roles", "admin"),
            ]),
        );
        assert_eq!(got.get("email").map(String::as_str), Some("a@x.test"));
        assert_eq!(got.get("name").map(String::as_str), Some("Ada L"));
        assert_eq!(got.get("phone").map(String::as_str), Some("+1"));
        assert!(!got.contains_key("roles"));
    }

    #[test]
    fn saml_attributes_map_by_their_claim_uris() {
        let saml = ProviderProtocol::Saml(SamlSettings {
            metadata_xml: String::new(),
            metadata_url: None,
            entity_id: "e".into(),
            idp_initiated: true,
        });
        let got = map_profile(
            &idp(saml, &[]),
            &attrs(&[
                (
                    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
                    "ada@corp.test",
                ),
                (
                    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
                    "Ada",
                ),
            ]),
        );
        if cfg!(feature = "saml") {
            assert_eq!(got.get("email").map(String::as_str), Some("ada@corp.test"));
            assert_eq!(got.get("given_name").map(String::as_str), Some("Ada"));
        }
    }

    #[test]
    fn usernames_take_the_provider_and_the_subject_or_its_digest() {
        let p = ProviderName::parse("Google").unwrap();
        assert_eq!(
            federated_username(&p, "1234").unwrap().as_str(),
            "Google_1234"
        );
        let long = "x".repeat(300);
        let name = federated_username(&p, &long).unwrap();
        assert!(name.as_str().starts_with("Google_") && name.as_str().len() < 40);
    }

    #[test]
    fn claims_become_texts() {
        use serde_json::json;
        assert_eq!(claim_texts(&json!("a")), vec!["a"]);
        assert_eq!(claim_texts(&json!(true)), vec!["true"]);
        assert_eq!(claim_texts(&json!(["a", 1, {"x": 1}])), vec!["a", "1"]);
        assert!(claim_texts(&json!({"x": 1})).is_empty());
    }
}
