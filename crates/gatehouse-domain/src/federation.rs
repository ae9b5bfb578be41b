//! Identity providers: the upstream directories a pool takes users from (SAML 2.0 identity
//! providers such as AD FS, OpenID Connect issuers, and the OAuth 2.0 social presets), how
//! their attributes become a user's profile, and the sign-ins started with them and not yet
//! finished.
//!
//! What a provider asserts is trusted for the users linked to it, so the rules here decide
//! what a provider may never do: map into `roles` (a directory cannot grant a pool's
//! permissions), or take a name reserved for the staff pool.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::ParseError;
use crate::error::StoreResult;
use crate::ids::PoolId;
use crate::time::Timestamp;
use crate::user::UserAttributes;

/// A provider's name in its pool: what `identity_provider=` names, what the sign-in button
/// says, and the `providerName` of the identities linked through it. Cognito's limits: 1 to
/// 32 characters; here letters, digits, `.`, `_` and `-`, starting with a letter or digit, so
/// that the name is also the provider's id in URLs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProviderName(String);

impl ProviderName {
    pub const MAX_CHARS: usize = 32;

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let err = |why: &str| ParseError::new("name", why.to_owned());
        if s.is_empty() || s.chars().count() > Self::MAX_CHARS {
            return Err(err("must be 1 to 32 characters"));
        }
        if !s.starts_with(|c: char| c.is_ascii_alphanumeric())
            || !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(err(
                "must be letters, digits, '.', '_' or '-', starting with a letter or digit",
            ));
        }
        // `staff` is the staff pool's own link (spec section 7); `Cognito` is how Cognito
        // names a pool's own users, and clients that came from it read it so.
        if s.eq_ignore_ascii_case("staff") || s.eq_ignore_ascii_case("cognito") {
            return Err(err("is reserved"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ProviderName {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Self::parse(&s)
    }
}

impl From<ProviderName> for String {
    fn from(n: ProviderName) -> String {
        n.0
    }
}

impl std::fmt::Display for ProviderName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The OAuth 2.0 family of providers: any OpenID Connect issuer, or a preset whose
/// endpoints and profile API Gatehouse knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OAuthKind {
    Oidc,
    Google,
    Facebook,
    Amazon,
}

impl OAuthKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Oidc => "oidc",
            Self::Google => "google",
            Self::Facebook => "facebook",
            Self::Amazon => "amazon",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s {
            "oidc" => Ok(Self::Oidc),
            "google" => Ok(Self::Google),
            "facebook" => Ok(Self::Facebook),
            "amazon" => Ok(Self::Amazon),
            _ => Err(ParseError::new(
                "type",
                "must be saml, oidc, google, facebook or amazon",
            )),
        }
    }

    /// Whether the provider speaks OpenID Connect (ID tokens, `nonce`, discovery).
    pub fn is_openid(self) -> bool {
        matches!(self, Self::Oidc | Self::Google)
    }

    /// The scopes asked for when a provider names none (`openid` is always added for OpenID
    /// kinds).
    pub fn default_scopes(self) -> &'static [&'static str] {
        match self {
            Self::Oidc | Self::Google => &["email", "profile"],
            Self::Facebook => &["public_profile", "email"],
            Self::Amazon => &["profile"],
        }
    }

    /// Cognito's `providerType` for identities of this kind.
    pub fn provider_type(self) -> &'static str {
        match self {
            Self::Oidc => "OIDC",
            Self::Google => "Google",
            Self::Facebook => "Facebook",
            Self::Amazon => "LoginWithAmazon",
        }
    }
}

/// Endpoints that replace what discovery or a preset would give (each optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_session: Option<String>,
}

/// An OpenID Connect or OAuth 2.0 provider. Its client secret is kept sealed with the
/// master key, apart from these settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthSettings {
    pub kind: OAuthKind,
    /// The issuer (OIDC kinds): discovery starts there and ID tokens must name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    pub client_id: String,
    /// Scopes asked for beyond `openid` (OIDC kinds) or instead of the preset's.
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub endpoints: EndpointOverrides,
}

/// A SAML 2.0 identity provider: its metadata as given (checked and read when set), and what
/// was read from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamlSettings {
    pub metadata_xml: String,
    /// Where the metadata was fetched from, when it was given by URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_url: Option<String>,
    /// The IdP's entity ID, read from the metadata: responses must be issued by it.
    pub entity_id: String,
    /// Whether assertions the IdP sends unasked (IdP-initiated sign-in) are taken.
    #[serde(default = "yes")]
    pub idp_initiated: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "protocol", rename_all = "lowercase")]
pub enum ProviderProtocol {
    Saml(SamlSettings),
    #[serde(rename = "oauth")]
    OAuth(OAuthSettings),
}

impl ProviderProtocol {
    /// The provider's type as the API names it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Saml(_) => "saml",
            Self::OAuth(o) => o.kind.as_str(),
        }
    }

    /// Cognito's `providerType`.
    pub fn provider_type(&self) -> &'static str {
        match self {
            Self::Saml(_) => "SAML",
            Self::OAuth(o) => o.kind.provider_type(),
        }
    }
}

/// The profile attributes a provider may set. `roles` is not among them: a pool grants its
/// own permissions, a directory never does.
pub const MAPPABLE_ATTRIBUTES: &[&str] = &[
    "email",
    "email_verified",
    "name",
    "given_name",
    "family_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "phone",
    "phone_verified",
    "zoneinfo",
    "picture",
    "website",
    "locale",
    "profile",
    "birthdate",
    "gender",
];

/// Which upstream attribute fills which profile attribute: `profile attribute → upstream
/// attribute` (Cognito's `AttributeMapping`). What is not listed falls back to the
/// provider type's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<String, String>",
    into = "BTreeMap<String, String>"
)]
pub struct AttributeMapping(BTreeMap<String, String>);

impl AttributeMapping {
    pub const MAX_ENTRIES: usize = 32;
    pub const MAX_UPSTREAM_CHARS: usize = 256;

    pub fn parse(map: BTreeMap<String, String>) -> Result<Self, ParseError> {
        if map.len() > Self::MAX_ENTRIES {
            return Err(ParseError::new(
                "attribute_mapping",
                format!("at most {} entries", Self::MAX_ENTRIES),
            ));
        }
        for (attribute, upstream) in &map {
            if !MAPPABLE_ATTRIBUTES.contains(&attribute.as_str()) {
                return Err(ParseError::new(
                    "attribute_mapping",
                    format!("'{attribute}' is not a profile attribute a provider may set"),
                ));
            }
            if upstream.is_empty() || upstream.chars().count() > Self::MAX_UPSTREAM_CHARS {
                return Err(ParseError::new(
                    "attribute_mapping",
                    format!(
                        "the upstream attribute for '{attribute}' must be 1 to {} characters",
                        Self::MAX_UPSTREAM_CHARS
                    ),
                ));
            }
        }
        Ok(Self(map))
    }

    /// The upstream attribute mapped to `attribute`.
    pub fn get(&self, attribute: &str) -> Option<&str> {
        self.0.get(attribute).map(String::as_str)
    }

    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl TryFrom<BTreeMap<String, String>> for AttributeMapping {
    type Error = ParseError;
    fn try_from(map: BTreeMap<String, String>) -> Result<Self, ParseError> {
        Self::parse(map)
    }
}

impl From<AttributeMapping> for BTreeMap<String, String> {
    fn from(m: AttributeMapping) -> Self {
        m.0
    }
}

/// An identity provider of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityProvider {
    pub pool: PoolId,
    pub name: ProviderName,
    /// A disabled provider is configured but offers no sign-in.
    pub enabled: bool,
    pub protocol: ProviderProtocol,
    pub attribute_mapping: AttributeMapping,
    /// The OAuth client secret sealed with the master key (additional data: the pool and
    /// [`IdentityProvider::secret_label`]); `None` for SAML.
    pub sealed_secret: Option<Vec<u8>>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl IdentityProvider {
    /// The label a provider's sealed secret is bound to.
    pub fn secret_label(name: &ProviderName) -> String {
        format!("identity-provider:{name}")
    }
}

/// The profile a provider's attributes give: each mapped profile attribute and its value as
/// the provider sent it (booleans as `true`/`false`).
pub type MappedProfile = BTreeMap<&'static str, String>;

/// Applies a mapped profile to `attributes`, leaving `roles` and unmapped attributes alone.
/// Values that do not fit a profile attribute (too long, a boolean that is not one) are
/// skipped. Returns whether anything changed.
pub fn apply_profile(attributes: &mut UserAttributes, profile: &MappedProfile) -> bool {
    const MAX: usize = 2048;
    let before = attributes.clone();
    for (&attribute, value) in profile {
        if value.is_empty() || value.chars().count() > MAX {
            continue;
        }
        let text = Some(value.clone());
        let flag = match value.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        };
        match attribute {
            "email" => attributes.email = value.clone(),
            "name" => attributes.name = value.clone(),
            "email_verified" => attributes.email_verified = flag.or(attributes.email_verified),
            "phone_verified" => attributes.phone_verified = flag.or(attributes.phone_verified),
            "given_name" => attributes.given_name = text,
            "family_name" => attributes.family_name = text,
            "middle_name" => attributes.middle_name = text,
            "nickname" => attributes.nickname = text,
            "preferred_username" => attributes.preferred_username = text,
            "phone" => attributes.phone = text,
            "zoneinfo" => attributes.zoneinfo = text,
            "picture" => attributes.picture = text,
            "website" => attributes.website = text,
            "locale" => attributes.locale = text,
            "profile" => attributes.profile = text,
            "birthdate" => attributes.birthdate = text,
            "gender" => attributes.gender = text,
            _ => {}
        }
    }
    // An address the provider changed is proven only if the provider says so: the proof of
    // the old one does not carry over (as for an administrator's change).
    if attributes.email != before.email && !profile.contains_key("email_verified") {
        attributes.email_verified = Some(false);
    }
    if attributes.phone != before.phone && !profile.contains_key("phone_verified") {
        attributes.phone_verified = Some(false);
    }
    *attributes != before
}

/// A sign-in sent to a provider and not yet back: what the callback needs to finish it.
/// Kept under the SHA-256 of its handle (the OAuth `state`, or the SAML request's ID), taken
/// once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingFederation {
    pub pool: PoolId,
    pub handle_sha256: [u8; 32],
    pub provider: ProviderName,
    /// Protocol state, opaque here (the service's JSON: nonce, PKCE verifier, the sealed
    /// authorization request it continues, the browser binding).
    pub payload: String,
    pub expires_at: Timestamp,
}

/// A browser session that a provider's sign-in started, and what ending it at that provider
/// needs (spec section 7b): written with the session, gone with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatedSession {
    pub pool: PoolId,
    pub session_id: crate::ids::SessionId,
    pub provider: ProviderName,
    /// The SAML NameID exactly as asserted, or the provider's subject.
    pub subject: String,
    /// The SAML NameID's Format.
    pub name_id_format: Option<String>,
    /// The SAML IdP's session (`SessionIndex`).
    pub session_index: Option<String>,
    /// The upstream OpenID provider's ID token (the `id_token_hint` of its logout), sealed
    /// with the master key under [`FederatedSession::id_token_label`].
    pub sealed_id_token: Option<Vec<u8>>,
    pub created_at: Timestamp,
}

impl FederatedSession {
    /// The label a session's sealed upstream ID token is bound to.
    pub fn id_token_label(session: crate::ids::SessionId) -> String {
        format!("federated-session:{session}")
    }
}

/// A pool's SAML service-provider key: RSA, PKCS#8 sealed with the master key (additional
/// data: the pool and [`SamlSpKey::LABEL`]), and the self-signed certificate its metadata
/// publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamlSpKey {
    pub pool: PoolId,
    pub sealed_key: Vec<u8>,
    pub certificate: Vec<u8>,
    pub created_at: Timestamp,
}

impl SamlSpKey {
    pub const LABEL: &'static str = "saml-sp";
}

/// Reads of identity providers, and the pending federated sign-ins and SAML keys, which are
/// single statements. Changes to providers go through [`crate::txn::PoolWrite`], because
/// who may change one depends on the users linked to it.
#[async_trait]
pub trait FederationStore: Send + Sync {
    async fn identity_providers(&self, pool: PoolId) -> StoreResult<Vec<IdentityProvider>>;
    async fn identity_provider(
        &self,
        pool: PoolId,
        name: &ProviderName,
    ) -> StoreResult<Option<IdentityProvider>>;
    async fn saml_sp_key(&self, pool: PoolId) -> StoreResult<Option<SamlSpKey>>;
    /// Stores `key` unless the pool has one already; returns the pool's key either way (two
    /// instances making one at once agree on the first).
    async fn put_saml_sp_key(&self, key: &SamlSpKey) -> StoreResult<SamlSpKey>;
    async fn put_pending_federation(&self, pending: &PendingFederation) -> StoreResult<()>;
    /// Takes (deletes and returns) the pending sign-in under `handle_sha256` if it has not
    /// expired at `now`: at most one caller ever gets it.
    async fn take_pending_federation(
        &self,
        pool: PoolId,
        handle_sha256: &[u8; 32],
        now: Timestamp,
    ) -> StoreResult<Option<PendingFederation>>;
    /// What ending the browser session `session` at its provider needs, if a provider's
    /// sign-in started it.
    async fn federated_session(
        &self,
        pool: PoolId,
        session: crate::ids::SessionId,
    ) -> StoreResult<Option<FederatedSession>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names_are_url_safe_and_not_reserved() {
        for ok in ["Google", "adfs", "acme-ad.fs_2", "a", &"x".repeat(32)] {
            assert!(ProviderName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-x",
            ".x",
            "a b",
            "a/b",
            "é",
            "staff",
            "STAFF",
            "Cognito",
            &"x".repeat(33),
        ] {
            assert!(ProviderName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_mapping_cannot_reach_roles_or_unknown_attributes() {
        let map = |k: &str| BTreeMap::from([(k.to_owned(), "upstream".to_owned())]);
        assert!(AttributeMapping::parse(map("email")).is_ok());
        assert!(AttributeMapping::parse(map("roles")).is_err());
        assert!(AttributeMapping::parse(map("password")).is_err());
        let empty = BTreeMap::from([("email".to_owned(), String::new())]);
        assert!(AttributeMapping::parse(empty).is_err());
        let many = (0..33).map(|i| (format!("a{i}"), "x".to_owned())).collect();
        assert!(AttributeMapping::parse(many).is_err());
    }

    #[test]
    fn a_profile_sets_mapped_attributes_and_never_roles() {
        let mut attributes = UserAttributes {
            email: "old@example.com".into(),
            name: "Old".into(),
            roles: vec![crate::permission::Role::parse("admin").unwrap()],
            ..Default::default()
        };
        let profile: MappedProfile = BTreeMap::from([
            ("email", "new@example.com".to_owned()),
            ("email_verified", "true".to_owned()),
            ("given_name", "Ada".to_owned()),
            ("gender", "x".repeat(3000)),
        ]);
        assert!(apply_profile(&mut attributes, &profile));
        assert_eq!(attributes.email, "new@example.com");
        assert_eq!(attributes.email_verified, Some(true));
        assert_eq!(attributes.given_name.as_deref(), Some("Ada"));
        assert_eq!(attributes.gender, None);
        assert_eq!(attributes.roles.len(), 1);
        assert!(!apply_profile(&mut attributes, &profile));

        // A changed address without the provider's word on it is not proven.
        let moved: MappedProfile = BTreeMap::from([("email", "moved@example.com".to_owned())]);
        assert!(apply_profile(&mut attributes, &moved));
        assert_eq!(attributes.email_verified, Some(false));
    }

    #[test]
    fn protocols_serialize_with_their_tag() {
        let p = ProviderProtocol::OAuth(OAuthSettings {
            kind: OAuthKind::Google,
            issuer: Some("https://accounts.google.com".into()),
            client_id: "c".into(),
            scopes: vec![],
            endpoints: EndpointOverrides::default(),
        });
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains(r#""protocol":"oauth""#), "{json}");
        assert_eq!(serde_json::from_str::<ProviderProtocol>(&json).unwrap(), p);
        assert_eq!(p.type_name(), "google");
        assert_eq!(p.provider_type(), "Google");
    }
}
