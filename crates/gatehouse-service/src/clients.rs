//! App clients: the OAuth clients of a pool. A client's secret is shown once, when it is
//! created, and kept only as its SHA-256. A caller cannot give a client a permission scope it
//! does not hold itself.

use gatehouse_crypto::secret::{Secret, random_bytes, random_token};
use gatehouse_domain::ParseError;
use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::client::{AppClient, GrantType, SecretDigest, validate_client_name};
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
use crate::tokens::hash_client_secret;
use crate::{Gatehouse, Principal, RequestMeta};

/// Length of a minted client id.
pub const CLIENT_ID_CHARS: usize = 26;
/// Lowercase base32: 32 symbols, so each random byte masked to 5 bits picks one uniformly.
const CLIENT_ID_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
pub const MAX_SCOPES: usize = 100;
pub const MAX_REDIRECT_URIS: usize = 20;
pub const REDIRECT_URI_MAX_CHARS: usize = 2048;

/// An app client to create, as requested.
#[derive(Debug, Clone, Default)]
pub struct NewAppClient {
    pub name: String,
    /// OIDC scopes and permission names; none by default.
    pub scopes: Option<Vec<String>>,
    /// Defaults to [`default_grant_types`].
    pub grant_types: Option<Vec<String>>,
    pub redirect_uris: Option<Vec<String>>,
}

/// Grant types of a client created without any: client credentials and token exchange.
pub fn default_grant_types() -> Vec<GrantType> {
    vec![GrantType::ClientCredentials, GrantType::TokenExchange]
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

fn bad_uri(reason: &str) -> ParseError {
    ParseError::new("redirect_uris", format!("a redirect URI {reason}"))
}

fn valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[') {
        // An IPv6 literal (RFC 3986 §3.2.2), which must be one: other URL parsers refuse the
        // URI otherwise, and a redirect URI is matched and used by clients as it is.
        return inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok());
    }
    !host.is_empty()
        && host.len() <= 253
        && !host.starts_with(['.', '-'])
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Checks one redirect URI: an absolute `https` URL, or an `http` URL of the loopback host
/// (`localhost`, `127.0.0.1`, `[::1]`) for development and native apps; no user info, no
/// fragment (RFC 6749 §3.1.2). Redirect URIs are later matched exactly.
pub fn parse_redirect_uri(uri: &str) -> Result<String, ParseError> {
    if uri.is_empty() || uri.chars().count() > REDIRECT_URI_MAX_CHARS {
        return Err(bad_uri(&format!(
            "must be 1 to {REDIRECT_URI_MAX_CHARS} characters"
        )));
    }
    if uri.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad_uri("must not contain spaces or control characters"));
    }
    if uri.contains('#') {
        return Err(bad_uri("must not contain a fragment"));
    }
    let (rest, loopback_only) = if let Some(rest) = uri.strip_prefix("https://") {
        (rest, false)
    } else if let Some(rest) = uri.strip_prefix("http://") {
        (rest, true)
    } else {
        return Err(bad_uri("must be an https URL, or http on localhost"));
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if authority.contains('@') {
        return Err(bad_uri("must not contain user information"));
    }
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => (&authority[..i], Some(&authority[i + 1..])),
        _ => (authority, None),
    };
    let port_ok = port.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u32>().is_ok_and(|n| n <= 65_535)
    });
    if !port_ok {
        return Err(bad_uri("has an invalid port"));
    }
    if !valid_host(host) {
        return Err(bad_uri("has an invalid host"));
    }
    let loopback = matches!(
        host.to_ascii_lowercase().as_str(),
        "localhost" | "127.0.0.1" | "[::1]"
    );
    if loopback_only && !loopback {
        return Err(bad_uri("must be an https URL, or http on localhost"));
    }
    Ok(uri.to_owned())
}

fn parse_redirect_uris(uris: &[String]) -> Result<Vec<String>, ParseError> {
    if uris.len() > MAX_REDIRECT_URIS {
        return Err(ParseError::new(
            "redirect_uris",
            format!("at most {MAX_REDIRECT_URIS} redirect URIs"),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for uri in uris {
        let uri = parse_redirect_uri(uri)?;
        if !out.contains(&uri) {
            out.push(uri);
        }
    }
    Ok(out)
}

fn client_write_error(e: StoreError) -> ServiceError {
    match e {
        StoreError::NotFound => ServiceError::NotFound("app client"),
        e => e.into(),
    }
}

impl Gatehouse {
    /// Creates an app client and returns it with its secret, which is never shown again.
    pub async fn create_app_client(
        &self,
        pool: &Pool,
        principal: &Principal,
        new: NewAppClient,
        meta: &RequestMeta,
    ) -> ServiceResult<(AppClient, Secret)> {
        principal.require(Permission::CreateAppClient)?;
        validate_client_name(&new.name)?;
        let scopes = parse_scopes(new.scopes.as_deref().unwrap_or_default())?;
        let grant_types = match &new.grant_types {
            Some(names) => parse_grant_types(names)?,
            None => default_grant_types(),
        };
        let redirect_uris = parse_redirect_uris(new.redirect_uris.as_deref().unwrap_or_default())?;
        if grant_types.contains(&GrantType::AuthorizationCode) && redirect_uris.is_empty() {
            return Err(ParseError::new(
                "redirect_uris",
                "the authorization_code grant needs at least one redirect URI",
            )
            .into());
        }
        let withheld: Vec<&str> = scopes
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
        self.insert_client(
            pool,
            new.name,
            scopes,
            grant_types,
            redirect_uris,
            Some(principal),
            meta,
        )
        .await
    }

    /// The operator's listing of a pool's clients (the CLI), with no permission check.
    pub async fn list_app_clients_as_operator(&self, pool: &Pool) -> ServiceResult<Vec<AppClient>> {
        Ok(self.store.list_clients(pool.id).await?)
    }

    /// The operator's way to create a client (the CLI), with no permission check and the
    /// default grant types.
    pub async fn create_client_unchecked(
        &self,
        pool: &Pool,
        name: &str,
        scopes: Vec<Scope>,
    ) -> ServiceResult<(AppClient, Secret)> {
        validate_client_name(name)?;
        let mut unique: Vec<Scope> = Vec::with_capacity(scopes.len());
        for s in scopes {
            if !unique.contains(&s) {
                unique.push(s);
            }
        }
        self.insert_client(
            pool,
            name.to_owned(),
            unique,
            default_grant_types(),
            Vec::new(),
            None,
            &RequestMeta::default(),
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert_client(
        &self,
        pool: &Pool,
        name: String,
        scopes: Vec<Scope>,
        grant_types: Vec<GrantType>,
        redirect_uris: Vec<String>,
        principal: Option<&Principal>,
        meta: &RequestMeta,
    ) -> ServiceResult<(AppClient, Secret)> {
        let secret = random_token();
        let client = AppClient {
            pool: pool.id,
            client_id: new_client_id()?,
            name,
            secret_sha256: Some(SecretDigest(hash_client_secret(&secret))),
            scopes,
            grant_types,
            redirect_uris,
            created_at: self.now(),
        };
        let scope_names: Vec<&str> = client.scopes.iter().map(Scope::as_str).collect();
        let event = self
            .event(pool, AuditAction::AppClientCreated, principal, meta)
            .subject(&client.client_id)
            .detail("name", &client.name)
            .detail("scopes", scope_names.join(" "));
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
        for ended in w.end_sessions(&acted, self.now()).await? {
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
    fn redirect_uris_are_https_or_loopback() {
        for ok in [
            "https://app.example.com/cb",
            "https://app.example.com",
            "https://app.example.com:8443/cb?x=1",
            "http://localhost:3000/callback",
            "http://localhost/cb",
            "http://127.0.0.1:9999/",
            "http://[::1]:8080/cb",
            "https://[2001:db8::1]/cb",
        ] {
            assert!(parse_redirect_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "http://app.example.com/cb",
            "ftp://x/",
            "https:///nohost",
            "https://app.example.com/cb#frag",
            "https://user@app.example.com/",
            "https://app.example.com:99999/",
            "https://app.example.com:/",
            "https://app example.com/",
            "/relative",
            "http://localhost.evil.com/",
            "javascript:alert(1)",
            "https://[75:d1E75]/cb",
            "https://[]/cb",
            "https://[::1::]/cb",
        ] {
            assert!(parse_redirect_uri(bad).is_err(), "{bad}");
        }
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
