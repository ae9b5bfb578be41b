//! Managing a pool's identity providers (`identity-provider:Create|Retrieve|Update|Delete`).
//!
//! A provider is trusted for the users linked to it: whoever can change its metadata, issuer
//! or client can sign in as any of them. So creating, changing or deleting a provider
//! requires, besides the permission, every permission those users hold (the dominance rule,
//! read in the transaction that writes). That holds for a provider being created too: links
//! made to its name before it existed are its users from the moment it does.

use std::collections::BTreeMap;

use gatehouse_crypto::secret::Secret;
use gatehouse_domain::ParseError;
use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::federation::{
    AttributeMapping, EndpointOverrides, IdentityProvider, OAuthKind, OAuthSettings, ProviderName,
    ProviderProtocol, SamlSettings,
};
use gatehouse_domain::permission::Permission;
use gatehouse_domain::pool::Pool;
use gatehouse_domain::store::StoreError;

use crate::audit::EventExt;
use crate::error::{ServiceError, ServiceResult};
use crate::principal::Principal;
use crate::{Gatehouse, RequestMeta};

/// The largest SAML metadata document taken (AD FS's own is about 60 KiB).
pub const SAML_METADATA_MAX_BYTES: usize = 256 * 1024;
const CLIENT_ID_MAX_CHARS: usize = 256;
const CLIENT_SECRET_MAX_CHARS: usize = 1024;
const SCOPES_MAX: usize = 20;
const SCOPE_MAX_CHARS: usize = 128;

/// A provider as asked for by the admin API or the CLI, before its checks.
#[derive(Debug, Default)]
pub struct ProviderRequest {
    pub name: String,
    /// `saml`, `oidc`, `google`, `facebook` or `amazon`.
    pub kind: String,
    pub enabled: Option<bool>,
    pub saml_metadata: Option<String>,
    pub saml_metadata_url: Option<String>,
    pub idp_initiated: Option<bool>,
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    pub scopes: Option<Vec<String>>,
    pub endpoints: EndpointOverrides,
    pub attribute_mapping: Option<BTreeMap<String, String>>,
}

/// A change to a provider: what is given replaces what is set; its kind and name stay.
#[derive(Debug, Default)]
pub struct ProviderChange {
    pub enabled: Option<bool>,
    pub saml_metadata: Option<String>,
    pub saml_metadata_url: Option<String>,
    pub idp_initiated: Option<bool>,
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    pub scopes: Option<Vec<String>>,
    pub endpoints: Option<EndpointOverrides>,
    pub attribute_mapping: Option<BTreeMap<String, String>>,
}

fn invalid(field: &'static str, why: impl Into<String>) -> ServiceError {
    ParseError::new(field, why.into()).into()
}

fn not_found(e: StoreError) -> ServiceError {
    match e {
        StoreError::NotFound => ServiceError::NotFound("identity provider"),
        e => e.into(),
    }
}

fn check_scopes(scopes: Vec<String>) -> ServiceResult<Vec<String>> {
    if scopes.len() > SCOPES_MAX {
        return Err(invalid("scopes", format!("at most {SCOPES_MAX}")));
    }
    for s in &scopes {
        // RFC 6749 §3.3 scope-token.
        let ok = !s.is_empty()
            && s.chars().count() <= SCOPE_MAX_CHARS
            && s.bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        if !ok {
            return Err(invalid("scopes", format!("'{s}' is not a scope")));
        }
    }
    Ok(scopes)
}

fn check_client_id(id: String) -> ServiceResult<String> {
    if id.is_empty() || id.chars().count() > CLIENT_ID_MAX_CHARS || id.chars().any(char::is_control)
    {
        return Err(invalid(
            "client_id",
            format!("must be 1 to {CLIENT_ID_MAX_CHARS} printable characters"),
        ));
    }
    Ok(id)
}

fn check_secret(secret: &Secret) -> ServiceResult<()> {
    let s = secret.expose();
    if s.is_empty()
        || s.chars().count() > CLIENT_SECRET_MAX_CHARS
        || s.chars().any(char::is_control)
    {
        return Err(invalid(
            "client_secret",
            format!("must be 1 to {CLIENT_SECRET_MAX_CHARS} printable characters"),
        ));
    }
    Ok(())
}

impl Gatehouse {
    /// Checks a URL Gatehouse will call for a provider (discovery, token, userinfo, JWKS,
    /// metadata) against the outbound policy now; it is checked again at every call.
    fn check_provider_url(&self, field: &'static str, url: &str) -> ServiceResult<String> {
        self.outbound()
            .check_target(url)
            .map(|u| u.to_string())
            .map_err(|e| invalid(field, e.to_string()))
    }

    /// Checks a URL the browser is sent to (the authorization endpoint): https, or http
    /// while Gatehouse itself is served over http; no user information or fragment.
    fn check_browser_url(&self, field: &'static str, url: &str) -> ServiceResult<String> {
        let parsed = url::Url::parse(url).map_err(|e| invalid(field, e.to_string()))?;
        let plain_ok = self.public_url.scheme() == gatehouse_domain::urls::Scheme::Http;
        let scheme_ok = parsed.scheme() == "https" || (parsed.scheme() == "http" && plain_ok);
        if !scheme_ok
            || parsed.host().is_none()
            || !parsed.username().is_empty()
            || parsed.password().is_some()
            || parsed.fragment().is_some()
        {
            return Err(invalid(
                field,
                "must be an https URL with a host and no user information or fragment",
            ));
        }
        Ok(parsed.to_string())
    }

    fn check_endpoints(&self, e: EndpointOverrides) -> ServiceResult<EndpointOverrides> {
        let server =
            |field, v: Option<String>| v.map(|u| self.check_provider_url(field, &u)).transpose();
        Ok(EndpointOverrides {
            authorization: e
                .authorization
                .map(|u| self.check_browser_url("authorization_endpoint", &u))
                .transpose()?,
            end_session: e
                .end_session
                .map(|u| self.check_browser_url("end_session_endpoint", &u))
                .transpose()?,
            token: server("token_endpoint", e.token)?,
            userinfo: server("userinfo_endpoint", e.userinfo)?,
            jwks_uri: server("jwks_uri", e.jwks_uri)?,
        })
    }

    /// Reads SAML metadata given as a document or fetched from a URL; returns the document
    /// and the IdP's entity ID.
    async fn saml_metadata(
        &self,
        xml: Option<String>,
        url: Option<&str>,
    ) -> ServiceResult<(String, String)> {
        let xml = match (xml, url) {
            (Some(xml), None) => xml,
            (None, Some(url)) => {
                let url = self.check_provider_url("saml_metadata_url", url)?;
                self.fetch_document(&url, SAML_METADATA_MAX_BYTES)
                    .await
                    .map_err(|e| invalid("saml_metadata_url", e))?
            }
            _ => {
                return Err(invalid(
                    "saml_metadata",
                    "give the IdP's metadata document or its URL (one of them)",
                ));
            }
        };
        if xml.len() > SAML_METADATA_MAX_BYTES {
            return Err(invalid(
                "saml_metadata",
                format!("larger than {SAML_METADATA_MAX_BYTES} bytes"),
            ));
        }
        let entity_id = crate::saml::idp_entity_id(&xml)?;
        Ok((xml, entity_id))
    }

    /// Builds a provider from a request, sealing its client secret.
    async fn provider_from_request(
        &self,
        pool: &Pool,
        r: ProviderRequest,
    ) -> ServiceResult<IdentityProvider> {
        let name = ProviderName::parse(&r.name)?;
        let attribute_mapping = AttributeMapping::parse(r.attribute_mapping.unwrap_or_default())?;
        let now = self.now();
        let mut sealed_secret = None;
        let protocol = if r.kind == "saml" {
            if r.client_id.is_some() || r.client_secret.is_some() || r.issuer.is_some() {
                return Err(invalid(
                    "client_id",
                    "a SAML provider has no issuer, client id or secret",
                ));
            }
            let (metadata_xml, entity_id) = self
                .saml_metadata(r.saml_metadata, r.saml_metadata_url.as_deref())
                .await?;
            ProviderProtocol::Saml(SamlSettings {
                metadata_xml,
                metadata_url: r.saml_metadata_url,
                entity_id,
                idp_initiated: r.idp_initiated.unwrap_or(true),
            })
        } else {
            let kind = OAuthKind::parse(&r.kind)?;
            if r.saml_metadata.is_some() || r.saml_metadata_url.is_some() {
                return Err(invalid(
                    "saml_metadata",
                    "only a SAML provider has metadata",
                ));
            }
            let client_id = check_client_id(
                r.client_id
                    .ok_or_else(|| invalid("client_id", "is required"))?,
            )?;
            let secret = r
                .client_secret
                .ok_or_else(|| invalid("client_secret", "is required"))?;
            check_secret(&secret)?;
            sealed_secret = Some(self.keyring.seal_code(
                pool.id,
                &IdentityProvider::secret_label(&name),
                &secret,
            )?);
            let issuer = match (kind, r.issuer) {
                (OAuthKind::Oidc, None) => {
                    return Err(invalid("issuer", "an OpenID Connect provider needs one"));
                }
                (OAuthKind::Google, None) => Some("https://accounts.google.com".to_owned()),
                (_, issuer) => issuer
                    .map(|i| self.check_provider_url("issuer", &i).map(|_| i))
                    .transpose()?,
            };
            ProviderProtocol::OAuth(OAuthSettings {
                kind,
                issuer,
                client_id,
                scopes: check_scopes(r.scopes.unwrap_or_default())?,
                endpoints: self.check_endpoints(r.endpoints)?,
            })
        };
        Ok(IdentityProvider {
            pool: pool.id,
            name,
            enabled: r.enabled.unwrap_or(true),
            protocol,
            attribute_mapping,
            sealed_secret,
            created_at: now,
            updated_at: now,
        })
    }

    /// Creates a provider.
    pub async fn create_identity_provider(
        &self,
        pool: &Pool,
        principal: &Principal,
        request: ProviderRequest,
        meta: &RequestMeta,
    ) -> ServiceResult<IdentityProvider> {
        principal.require(Permission::CreateIdentityProvider)?;
        self.insert_identity_provider(pool, Some(principal), request, meta)
            .await
    }

    /// The operator's way to create a provider (the CLI), with no permission check.
    pub async fn create_identity_provider_as_operator(
        &self,
        pool: &Pool,
        request: ProviderRequest,
    ) -> ServiceResult<IdentityProvider> {
        self.insert_identity_provider(pool, None, request, &RequestMeta::default())
            .await
    }

    async fn insert_identity_provider(
        &self,
        pool: &Pool,
        principal: Option<&Principal>,
        request: ProviderRequest,
        meta: &RequestMeta,
    ) -> ServiceResult<IdentityProvider> {
        // Fetching metadata happens before the transaction opens.
        let idp = self.provider_from_request(pool, request).await?;
        let mut w = self.store.write(pool.id).await?;
        if let Some(principal) = principal {
            let standing = w.standing_of_linked_users(&idp.name).await?;
            principal.ensure_dominates(&standing, "a user already linked to this provider name")?;
        }
        match w.create_identity_provider(&idp).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(ServiceError::Conflict(format!(
                    "the pool has an identity provider named '{}'",
                    idp.name
                )));
            }
            Err(e) => return Err(e.into()),
        }
        let event = self
            .event(pool, AuditAction::IdentityProviderCreated, principal, meta)
            .subject(idp.name.as_str())
            .detail("type", idp.protocol.type_name());
        w.audit(&event).await?;
        w.commit().await?;
        Ok(idp)
    }

    pub async fn list_identity_providers(
        &self,
        pool: &Pool,
        principal: &Principal,
    ) -> ServiceResult<Vec<IdentityProvider>> {
        principal.require(Permission::RetrieveIdentityProviders)?;
        Ok(self.store.identity_providers(pool.id).await?)
    }

    /// The operator's listing (the CLI).
    pub async fn list_identity_providers_as_operator(
        &self,
        pool: &Pool,
    ) -> ServiceResult<Vec<IdentityProvider>> {
        Ok(self.store.identity_providers(pool.id).await?)
    }

    pub async fn get_identity_provider(
        &self,
        pool: &Pool,
        principal: &Principal,
        name: &str,
    ) -> ServiceResult<IdentityProvider> {
        principal.require(Permission::RetrieveIdentityProviders)?;
        let name =
            ProviderName::parse(name).map_err(|_| ServiceError::NotFound("identity provider"))?;
        self.store
            .identity_provider(pool.id, &name)
            .await?
            .ok_or(ServiceError::NotFound("identity provider"))
    }

    /// Changes a provider. The caller must dominate the users linked to it.
    pub async fn update_identity_provider(
        &self,
        pool: &Pool,
        principal: &Principal,
        name: &str,
        change: ProviderChange,
        meta: &RequestMeta,
    ) -> ServiceResult<IdentityProvider> {
        principal.require(Permission::UpdateIdentityProvider)?;
        let name =
            ProviderName::parse(name).map_err(|_| ServiceError::NotFound("identity provider"))?;
        // Metadata by URL is fetched before the transaction opens.
        let fetched = match (&change.saml_metadata, &change.saml_metadata_url) {
            (None, None) => None,
            (xml, url) => Some(self.saml_metadata(xml.clone(), url.as_deref()).await?),
        };
        let mut w = self.store.write(pool.id).await?;
        let mut idp = w
            .identity_provider(&name)
            .await?
            .ok_or(ServiceError::NotFound("identity provider"))?;
        let standing = w.standing_of_linked_users(&name).await?;
        principal.ensure_dominates(&standing, "a user linked to this provider")?;
        let mut changed = Vec::new();
        if let Some(enabled) = change.enabled {
            idp.enabled = enabled;
            changed.push("enabled");
        }
        if let Some(mapping) = change.attribute_mapping {
            idp.attribute_mapping = AttributeMapping::parse(mapping)?;
            changed.push("attribute_mapping");
        }
        match &mut idp.protocol {
            ProviderProtocol::Saml(s) => {
                if change.issuer.is_some()
                    || change.client_id.is_some()
                    || change.client_secret.is_some()
                    || change.scopes.is_some()
                    || change.endpoints.is_some()
                {
                    return Err(invalid(
                        "client_id",
                        "a SAML provider has no issuer, client, scopes or endpoints",
                    ));
                }
                if let Some((xml, entity_id)) = fetched {
                    s.metadata_xml = xml;
                    s.entity_id = entity_id;
                    s.metadata_url = change.saml_metadata_url;
                    changed.push("saml_metadata");
                }
                if let Some(on) = change.idp_initiated {
                    s.idp_initiated = on;
                    changed.push("idp_initiated");
                }
            }
            ProviderProtocol::OAuth(o) => {
                if fetched.is_some() || change.idp_initiated.is_some() {
                    return Err(invalid(
                        "saml_metadata",
                        "only a SAML provider has metadata",
                    ));
                }
                if let Some(issuer) = change.issuer {
                    self.check_provider_url("issuer", &issuer)?;
                    o.issuer = Some(issuer);
                    changed.push("issuer");
                }
                if let Some(id) = change.client_id {
                    o.client_id = check_client_id(id)?;
                    changed.push("client_id");
                }
                if let Some(scopes) = change.scopes {
                    o.scopes = check_scopes(scopes)?;
                    changed.push("scopes");
                }
                if let Some(endpoints) = change.endpoints {
                    o.endpoints = self.check_endpoints(endpoints)?;
                    changed.push("endpoints");
                }
                if let Some(secret) = change.client_secret {
                    check_secret(&secret)?;
                    idp.sealed_secret = Some(self.keyring.seal_code(
                        pool.id,
                        &IdentityProvider::secret_label(&name),
                        &secret,
                    )?);
                    changed.push("client_secret");
                }
            }
        }
        idp.updated_at = self.now();
        w.update_identity_provider(&idp).await.map_err(not_found)?;
        let event = self
            .event(
                pool,
                AuditAction::IdentityProviderUpdated,
                Some(principal),
                meta,
            )
            .subject(name.as_str())
            .detail("changed", changed.join(" "));
        w.audit(&event).await?;
        w.commit().await?;
        Ok(idp)
    }

    /// Deletes a provider and the links made through it (its users stay, and sign in no
    /// more through it). The caller must dominate the users linked to it.
    pub async fn delete_identity_provider(
        &self,
        pool: &Pool,
        principal: &Principal,
        name: &str,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        principal.require(Permission::DeleteIdentityProvider)?;
        let name =
            ProviderName::parse(name).map_err(|_| ServiceError::NotFound("identity provider"))?;
        let mut w = self.store.write(pool.id).await?;
        if w.identity_provider(&name).await?.is_none() {
            return Err(ServiceError::NotFound("identity provider"));
        }
        let standing = w.standing_of_linked_users(&name).await?;
        principal.ensure_dominates(&standing, "a user linked to this provider")?;
        w.delete_identity_provider(&name).await?;
        let event = self
            .event(
                pool,
                AuditAction::IdentityProviderDeleted,
                Some(principal),
                meta,
            )
            .subject(name.as_str());
        w.audit(&event).await?;
        w.commit().await?;
        Ok(())
    }
}
