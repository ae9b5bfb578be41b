//! App clients: the OAuth clients of a pool. A client's secret is shown once, when it is
//! created, and kept only as its SHA-256. A caller cannot give a client a permission scope it
//! does not hold itself.

use gatehouse_crypto::secret::{Secret, random_bytes, random_token};
use gatehouse_domain::ParseError;
use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::backchannel::BackchannelLogout;
use gatehouse_domain::client::{
    AppClient, AuthFlow, ClientType, GrantType, REDIRECT_URI_MAX_CHARS, SecretDigest,
    check_grant_types, parse_auth_flows, parse_redirect_uris, validate_client_name,
};
use std::sync::Arc;
use std::time::Duration;

use gatehouse_domain::ids::{ClientId, PoolId};
use gatehouse_domain::permission::{Permission, PermissionSet, Scope};
use gatehouse_domain::pool::Pool;
use gatehouse_domain::store::StoreError;
use gatehouse_domain::txn::SessionsToEnd;

use crate::audit::EventExt;
use crate::cache::TtlCache;
use crate::error::{ServiceError, ServiceResult};
use crate::outbound::Outbound;
use crate::tokens::hash_client_secret;
use crate::{Gatehouse, Principal, RequestMeta};

/// Length of a minted client id.
pub const CLIENT_ID_CHARS: usize = 26;
/// Lowercase base32: 32 symbols, so each random byte masked to 5 bits picks one uniformly.
const CLIENT_ID_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
pub const MAX_SCOPES: usize = 100;

/// An app client to create, as requested.
#[derive(Debug, Clone, Default)]
pub struct NewAppClient {
    pub name: String,
    /// OIDC scopes and permission names; none by default.
    pub scopes: Option<Vec<String>>,
    /// Defaults to [`ClientType::default_grant_types`].
    pub grant_types: Option<Vec<String>>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// Confidential (with a secret) unless asked otherwise.
    pub client_type: ClientType,
    pub third_party: bool,
    /// Where logout tokens go (OpenID Connect Back-Channel Logout), if anywhere.
    pub backchannel_logout_uri: Option<String>,
    /// Whether the client needs `sid` in its logout tokens (it always gets it).
    pub backchannel_logout_session_required: bool,
    /// The API sign-in flows it may start, by their `ExplicitAuthFlows` names; defaults to
    /// [`AuthFlow::DEFAULT`]. An empty list: no API sign-in.
    pub auth_flows: Option<Vec<String>>,
}

/// A change to an app client, as requested: what is `None` stays as it is.
#[derive(Debug, Clone, Default)]
pub struct AppClientUpdate {
    /// The API sign-in flows, by their `ExplicitAuthFlows` names; an empty list allows none.
    pub auth_flows: Option<Vec<String>>,
}

/// A request to create a client, parsed and checked against the registration rules.
struct Registration {
    name: String,
    scopes: Vec<Scope>,
    grant_types: Vec<GrantType>,
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    client_type: ClientType,
    third_party: bool,
    backchannel_logout: Option<BackchannelLogout>,
    auth_flows: Vec<AuthFlow>,
}

impl Registration {
    fn parse(new: NewAppClient, outbound: &Outbound) -> Result<Self, ParseError> {
        validate_client_name(&new.name)?;
        let scopes = parse_scopes(new.scopes.as_deref().unwrap_or_default())?;
        let grant_types = match &new.grant_types {
            Some(names) => parse_grant_types(names)?,
            None => new.client_type.default_grant_types(),
        };
        let redirect_uris = parse_redirect_uris(
            "redirect_uris",
            new.redirect_uris.as_deref().unwrap_or_default(),
        )?;
        let post_logout_redirect_uris = parse_redirect_uris(
            "post_logout_redirect_uris",
            new.post_logout_redirect_uris.as_deref().unwrap_or_default(),
        )?;
        check_grant_types(new.client_type, &grant_types, &redirect_uris)?;
        let auth_flows = match &new.auth_flows {
            Some(names) => parse_auth_flows(names)?,
            None => AuthFlow::DEFAULT.to_vec(),
        };
        let backchannel_logout = parse_backchannel_logout(
            new.backchannel_logout_uri,
            new.backchannel_logout_session_required,
            outbound,
        )?;
        Ok(Self {
            backchannel_logout,
            name: new.name,
            scopes,
            grant_types,
            redirect_uris,
            post_logout_redirect_uris,
            client_type: new.client_type,
            third_party: new.third_party,
            auth_flows,
        })
    }
}

/// A back-channel logout registration: the URI must be one outbound calls may reach (https,
/// or http while Gatehouse itself is served over http; no user information, no fragment; an
/// address outside `outbound.allow` only if public), and asking for `sid` needs a URI.
fn parse_backchannel_logout(
    uri: Option<String>,
    session_required: bool,
    outbound: &Outbound,
) -> Result<Option<BackchannelLogout>, ParseError> {
    const FIELD: &str = "backchannel_logout_uri";
    let Some(uri) = uri else {
        if session_required {
            return Err(ParseError::new(
                "backchannel_logout_session_required",
                "backchannel_logout_session_required needs a backchannel_logout_uri",
            ));
        }
        return Ok(None);
    };
    if uri.chars().count() > REDIRECT_URI_MAX_CHARS {
        return Err(ParseError::new(
            FIELD,
            format!("at most {REDIRECT_URI_MAX_CHARS} characters"),
        ));
    }
    outbound
        .check_target(&uri)
        .map_err(|e| ParseError::new(FIELD, e.to_string()))?;
    Ok(Some(BackchannelLogout {
        uri,
        session_required,
    }))
}

/// A new random client id: 26 lowercase base32 characters (130 bits).
pub fn new_client_id() -> ServiceResult<ClientId> {
    let id: String = random_bytes::<CLIENT_ID_CHARS>()
        .iter()
        .map(|b| char::from(CLIENT_ID_ALPHABET[usize::from(b & 31)]))
        .collect();
    ClientId::parse(&id).map_err(|e| ServiceError::internal(e.to_string()))
}

/// Parses scope names, dropping repeats.
pub fn parse_scopes(names: &[String]) -> Result<Vec<Scope>, ParseError> {
    if names.len() > MAX_SCOPES {
        return Err(ParseError::new(
            "scopes",
            format!("at most {MAX_SCOPES} scopes"),
        ));
    }
    let mut scopes: Vec<Scope> = Vec::new();
    for name in names {
        let scope = Scope::parse(name)?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    Ok(scopes)
}

/// Parses grant type names, dropping repeats; at least one is needed.
pub fn parse_grant_types(names: &[String]) -> Result<Vec<GrantType>, ParseError> {
    let mut grants: Vec<GrantType> = Vec::new();
    for name in names {
        let grant = GrantType::parse(name)?;
        if !grants.contains(&grant) {
            grants.push(grant);
        }
    }
    if grants.is_empty() {
        return Err(ParseError::new(
            "grant_types",
            "at least one grant type is needed",
        ));
    }
    Ok(grants)
}

/// Flows as the audit log records them: their names, space-separated.
fn flow_names(flows: &[AuthFlow]) -> String {
    flows
        .iter()
        .map(|f| f.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn client_write_error(e: StoreError) -> ServiceError {
    match e {
        StoreError::NotFound => ServiceError::NotFound("app client"),
        e => e.into(),
    }
}

impl Gatehouse {
    /// Creates an app client and returns it with its secret, which is never shown again; a
    /// public client has none.
    pub async fn create_app_client(
        &self,
        pool: &Pool,
        principal: &Principal,
        new: NewAppClient,
        meta: &RequestMeta,
    ) -> ServiceResult<(AppClient, Option<Secret>)> {
        principal.require(Permission::CreateAppClient)?;
        let registration = Registration::parse(new, self.outbound())?;
        let withheld: Vec<&str> = registration
            .scopes
            .iter()
            .filter(|s| s.permission().is_some_and(|p| !principal.holds(p)))
            .map(Scope::as_str)
            .collect();
        if !withheld.is_empty() {
            return Err(ServiceError::Forbidden(format!(
                "cannot give a client permissions the caller does not hold: {}",
                withheld.join(", ")
            )));
        }
        self.insert_client(pool, registration, Some(principal), meta)
            .await
    }

    /// The operator's listing of a pool's clients (the CLI), with no permission check.
    pub async fn list_app_clients_as_operator(&self, pool: &Pool) -> ServiceResult<Vec<AppClient>> {
        Ok(self.store.list_clients(pool.id).await?)
    }

    /// The operator's way to create a client (the CLI), with no permission check and the
    /// same registration rules as [`Gatehouse::create_app_client`].
    pub async fn create_app_client_as_operator(
        &self,
        pool: &Pool,
        new: NewAppClient,
    ) -> ServiceResult<(AppClient, Option<Secret>)> {
        let registration = Registration::parse(new, self.outbound())?;
        self.insert_client(pool, registration, None, &RequestMeta::default())
            .await
    }

    /// The operator's way to create a confidential client with the default grant types and
    /// these scopes, with no permission check.
    pub async fn create_client_unchecked(
        &self,
        pool: &Pool,
        name: &str,
        scopes: Vec<Scope>,
    ) -> ServiceResult<(AppClient, Secret)> {
        let new = NewAppClient {
            name: name.to_owned(),
            scopes: Some(scopes.iter().map(|s| s.as_str().to_owned()).collect()),
            ..NewAppClient::default()
        };
        let (client, secret) = self.create_app_client_as_operator(pool, new).await?;
        let secret =
            secret.ok_or_else(|| ServiceError::internal("a confidential client has no secret"))?;
        Ok((client, secret))
    }

    async fn insert_client(
        &self,
        pool: &Pool,
        r: Registration,
        principal: Option<&Principal>,
        meta: &RequestMeta,
    ) -> ServiceResult<(AppClient, Option<Secret>)> {
        let secret = match r.client_type {
            ClientType::Confidential => Some(random_token()),
            ClientType::Public => None,
        };
        let client_id = new_client_id()?;
        let secret_sealed = match &secret {
            Some(s) => Some(self.keyring.seal_code(
                pool.id,
                &AppClient::secret_label(&client_id),
                s,
            )?),
            None => None,
        };
        let client = AppClient {
            pool: pool.id,
            client_id,
            name: r.name,
            secret_sha256: secret.as_ref().map(|s| SecretDigest(hash_client_secret(s))),
            secret_sealed,
            scopes: r.scopes,
            grant_types: r.grant_types,
            redirect_uris: r.redirect_uris,
            post_logout_redirect_uris: r.post_logout_redirect_uris,
            third_party: r.third_party,
            backchannel_logout: r.backchannel_logout,
            auth_flows: r.auth_flows,
            created_at: self.now(),
        };
        let scope_names: Vec<&str> = client.scopes.iter().map(Scope::as_str).collect();
        let grant_names: Vec<&str> = client.grant_types.iter().map(|g| g.as_str()).collect();
        let kind = if client.is_public() {
            "public"
        } else {
            "confidential"
        };
        let party = if client.third_party { "third" } else { "first" };
        let event = self
            .event(pool, AuditAction::AppClientCreated, principal, meta)
            .subject(&client.client_id)
            .detail("name", &client.name)
            .detail("scopes", scope_names.join(" "))
            .detail("grant_types", grant_names.join(" "))
            .detail("client_type", kind)
            .detail("party", party)
            .detail("explicit_auth_flows", flow_names(&client.auth_flows));
        let event = match &client.backchannel_logout {
            Some(b) => event.detail("backchannel_logout_uri", &b.uri),
            None => event,
        };
        self.store.create_client(&client, &event).await?;
        Ok((client, secret))
    }

    /// The pool's app clients, oldest first.
    pub async fn list_app_clients(
        &self,
        pool: &Pool,
        principal: &Principal,
    ) -> ServiceResult<Vec<AppClient>> {
        principal.require(Permission::RetrieveAppClients)?;
        Ok(self.store.list_clients(pool.id).await?)
    }

    pub async fn get_app_client(
        &self,
        pool: &Pool,
        principal: &Principal,
        client_id: &str,
    ) -> ServiceResult<AppClient> {
        principal.require(Permission::RetrieveAppClients)?;
        let id = ClientId::parse(client_id).map_err(|_| ServiceError::NotFound("app client"))?;
        self.store
            .client(pool.id, &id)
            .await?
            .ok_or(ServiceError::NotFound("app client"))
    }

    /// Changes an app client (today: its API sign-in flows). Like deleting it, changing a
    /// client needs the permissions its scopes grant (the dominance rule). The change holds
    /// at once on this instance, and within the client cache's second on others.
    pub async fn update_app_client(
        &self,
        pool: &Pool,
        principal: &Principal,
        client_id: &str,
        update: AppClientUpdate,
        meta: &RequestMeta,
    ) -> ServiceResult<AppClient> {
        principal.require(Permission::UpdateAppClient)?;
        let id = ClientId::parse(client_id).map_err(|_| ServiceError::NotFound("app client"))?;
        let auth_flows = update
            .auth_flows
            .as_deref()
            .map(parse_auth_flows)
            .transpose()?;
        let mut w = self.store.write(pool.id).await?;
        let mut client = w
            .client(&id)
            .await?
            .ok_or(ServiceError::NotFound("app client"))?;
        let grants =
            PermissionSet::from_permissions(client.scopes.iter().filter_map(Scope::permission));
        principal.ensure_dominates(&grants, "the app client")?;
        let mut event = self
            .event(pool, AuditAction::AppClientUpdated, Some(principal), meta)
            .subject(&id);
        if let Some(flows) = auth_flows {
            event = event
                .detail("explicit_auth_flows", flow_names(&flows))
                .detail("was", flow_names(&client.auth_flows));
            client.auth_flows = flows;
        }
        w.update_client(&client).await.map_err(client_write_error)?;
        w.audit(&event).await?;
        w.commit().await?;
        self.clients.forget(pool.id, &id);
        Ok(client)
    }

    /// Refuses an API sign-in flow the client was not allowed (Cognito's
    /// `ExplicitAuthFlows`), in Cognito's words: "USER_PASSWORD_AUTH flow not enabled for
    /// this client". Every API entry point of a flow calls it once the client is
    /// authenticated, before anything about the user is looked at; the answer is an
    /// [`ServiceError::Invalid`] whose field is [`AuthFlow::FIELD`] (400; Cognito's
    /// `InvalidParameterException`).
    pub fn require_auth_flow(&self, client: &AppClient, flow: AuthFlow) -> ServiceResult<()> {
        if client.allows(flow) {
            return Ok(());
        }
        Err(ServiceError::Invalid(ParseError::new(
            AuthFlow::FIELD,
            format!("{} flow not enabled for this client", flow.flow_name()),
        )))
    }

    /// Deletes an app client: tokens it obtained for itself stop working, and so does every
    /// impersonation it started, ended in the same transaction. Deleting a client needs the
    /// permissions its scopes grant (the dominance rule).
    pub async fn delete_app_client(
        &self,
        pool: &Pool,
        principal: &Principal,
        client_id: &str,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        principal.require(Permission::DeleteAppClient)?;
        let id = ClientId::parse(client_id).map_err(|_| ServiceError::NotFound("app client"))?;
        let mut w = self.store.write(pool.id).await?;
        let client = w
            .client(&id)
            .await?
            .ok_or(ServiceError::NotFound("app client"))?;
        let grants =
            PermissionSet::from_permissions(client.scopes.iter().filter_map(Scope::permission));
        principal.ensure_dominates(&grants, "the app client")?;
        w.delete_client(&id).await.map_err(client_write_error)?;
        let event = self
            .event(pool, AuditAction::AppClientDeleted, Some(principal), meta)
            .subject(&id);
        w.audit(&event).await?;
        let acted = SessionsToEnd::ActedBy {
            pool: pool.slug.clone(),
            actor_id: id.to_string(),
        };
        let cause = crate::security_events::Cause::new(
            gatehouse_domain::security_event::InitiatingEntity::Admin,
            "impersonating client deleted",
        );
        for ended in self
            .end_sessions_and_tell(w.as_mut(), &acted, &cause)
            .await?
        {
            let mut event = self
                .event(pool, AuditAction::ImpersonationEnded, Some(principal), meta)
                .subject(&ended.username)
                .detail("impersonation_id", ended.id)
                .detail("via", "impersonating client deleted");
            event.pool = ended.pool;
            w.audit(&event).await?;
        }
        w.commit().await?;
        self.clients.forget(pool.id, &id);
        Ok(())
    }

    /// An app client of the pool, from the cache when it was read in the last second.
    pub async fn client(
        &self,
        pool: PoolId,
        id: &ClientId,
    ) -> ServiceResult<Option<Arc<AppClient>>> {
        let key = (pool, id.clone());
        if let Some(c) = self.clients.0.get(&key) {
            return Ok(Some(c));
        }
        let Some(client) = self.store.client(pool, id).await?.map(Arc::new) else {
            return Ok(None);
        };
        self.clients.0.put(key, client.clone());
        Ok(Some(client))
    }
}

/// How long an app client read from the store is trusted. A client deleted through another
/// instance can obtain tokens here for at most this long; tokens it holds are checked against
/// the store.
const CLIENT_CACHE_TTL: Duration = Duration::from_secs(1);

/// App clients by pool and id, for the token endpoint.
pub struct ClientCache(TtlCache<(PoolId, ClientId), Arc<AppClient>>);

impl Default for ClientCache {
    fn default() -> Self {
        Self(TtlCache::new(CLIENT_CACHE_TTL, 100_000))
    }
}

impl ClientCache {
    fn forget(&self, pool: PoolId, id: &ClientId) {
        self.0.retain(|(p, c), _| !(*p == pool && c == id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_26_lowercase_alphanumerics() {
        let a = new_client_id().unwrap();
        let b = new_client_id().unwrap();
        assert_eq!(a.as_str().len(), CLIENT_ID_CHARS);
        assert!(
            a.as_str()
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
        assert_ne!(a, b);
    }

    #[test]
    fn grant_types_and_scopes_parse() {
        assert_eq!(
            parse_grant_types(&["client_credentials".into(), "client_credentials".into()]).unwrap(),
            vec![GrantType::ClientCredentials]
        );
        assert!(parse_grant_types(&[]).is_err());
        assert!(parse_grant_types(&["implicit".into()]).is_err());
        let scopes =
            parse_scopes(&["openid".into(), "user:Impersonate".into(), "openid".into()]).unwrap();
        assert_eq!(scopes.len(), 2);
        assert!(parse_scopes(&["root".into()]).is_err());
    }
}
