//! App clients: the OAuth clients of a pool, and the rules of their registration: which
//! redirect URIs are acceptable, and which grant types go with which kind of client.

use std::fmt;

use crate::ParseError;
use crate::ids::{ClientId, PoolId};
use crate::permission::Scope;
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppClient {
    pub pool: PoolId,
    pub client_id: ClientId,
    pub name: String,
    /// SHA-256 of the secret; `None` for a public client.
    pub secret_sha256: Option<SecretDigest>,
    /// The secret sealed with the master key (bound to the pool and
    /// [`AppClient::secret_label`]), for Cognito's `SECRET_HASH`, an HMAC keyed with the
    /// secret; `None` for a public client or one created before it was kept.
    pub secret_sealed: Option<Vec<u8>>,
    pub scopes: Vec<Scope>,
    pub grant_types: Vec<GrantType>,
    /// Where an authorization response may be sent; matched exactly, as registered.
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may send the browser back to; matched exactly, as registered.
    pub post_logout_redirect_uris: Vec<String>,
    /// A third-party client is not the pool owner's own application: users are asked before it
    /// gets their data. First-party (`false`) is the default.
    pub third_party: bool,
    /// Where logout tokens go when a session this client got tokens in ends (OpenID Connect
    /// Back-Channel Logout), if it registered.
    pub backchannel_logout: Option<crate::backchannel::BackchannelLogout>,
    /// The API sign-in flows the client may start (Cognito's `ExplicitAuthFlows`), in a
    /// fixed order without repeats; [`AuthFlow::DEFAULT`] unless narrowed or widened. Empty:
    /// no API sign-in at all (the OAuth endpoints are governed by `grant_types` alone).
    pub auth_flows: Vec<AuthFlow>,
    pub created_at: Timestamp,
}

impl AppClient {
    /// What a client's sealed secret is bound to besides its pool.
    pub fn secret_label(client_id: &ClientId) -> String {
        format!("client-secret:{}", client_id.as_str())
    }

    /// A public client holds no secret (RFC 6749 §2.1): a browser or native app.
    pub fn is_public(&self) -> bool {
        self.secret_sha256.is_none()
    }

    pub fn client_type(&self) -> ClientType {
        if self.is_public() {
            ClientType::Public
        } else {
            ClientType::Confidential
        }
    }

    /// Whether the client may start (or, for refresh, continue) the API sign-in `flow`.
    pub fn allows(&self, flow: AuthFlow) -> bool {
        self.auth_flows.contains(&flow)
    }

    /// Whether `uri` is one of the client's redirect URIs, compared exactly as a string: no
    /// prefix, case or normalisation leeway (RFC 9700 §4.1.3).
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r == uri)
    }

    /// Whether `uri` is one of the client's post-logout redirect URIs, compared exactly.
    pub fn has_post_logout_redirect_uri(&self, uri: &str) -> bool {
        self.post_logout_redirect_uris.iter().any(|r| r == uri)
    }
}

/// Whether a client can keep a secret (RFC 6749 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientType {
    /// A server-side application, which gets a secret.
    #[default]
    Confidential,
    /// A browser or native app: no secret, so no grant that a secret alone would authorise.
    Public,
}

impl ClientType {
    /// The grant types a client of this type gets when none are asked for: client credentials
    /// and token exchange for a confidential client (as before sign-in existed), the
    /// authorization code for a public one.
    pub fn default_grant_types(self) -> Vec<GrantType> {
        match self {
            ClientType::Confidential => {
                vec![GrantType::ClientCredentials, GrantType::TokenExchange]
            }
            ClientType::Public => vec![GrantType::AuthorizationCode],
        }
    }
}

/// SHA-256 of a client secret.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SecretDigest(pub [u8; 32]);

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretDigest([redacted])")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantType {
    ClientCredentials,
    AuthorizationCode,
    RefreshToken,
    TokenExchange,
}

impl GrantType {
    pub const TOKEN_EXCHANGE_URN: &'static str = "urn:ietf:params:oauth:grant-type:token-exchange";

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::ClientCredentials => "client_credentials",
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::TokenExchange => Self::TOKEN_EXCHANGE_URN,
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s {
            "client_credentials" => Ok(Self::ClientCredentials),
            "authorization_code" => Ok(Self::AuthorizationCode),
            "refresh_token" => Ok(Self::RefreshToken),
            Self::TOKEN_EXCHANGE_URN => Ok(Self::TokenExchange),
            _ => Err(ParseError::new(
                "grant_types",
                format!("unknown grant type '{s}'"),
            )),
        }
    }
}

/// An API sign-in flow a client may be allowed (Cognito's `ExplicitAuthFlows`), under
/// Cognito's names. Gatehouse speaks no SRP and has no admin-initiated flow, so
/// `ALLOW_USER_SRP_AUTH` and `ALLOW_ADMIN_USER_PASSWORD_AUTH` are refused, not ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuthFlow {
    /// `USER_PASSWORD_AUTH` at `/cognito`, `USER_PASSWORD` at `/api/auth/initiate`.
    UserPassword,
    /// `REFRESH_TOKEN_AUTH` (or `REFRESH_TOKEN`) at `/cognito`, `REFRESH_TOKEN` at
    /// `/api/auth/initiate`. The token endpoint's refresh grant is governed by `grant_types`.
    RefreshToken,
    /// `CUSTOM_AUTH`: the challenges the pool's hooks define.
    Custom,
    /// `USER_AUTH`: the user chooses among the pool's factors. Never on by default.
    UserAuth,
}

impl AuthFlow {
    /// The attribute name errors about a client's flows carry, and the field of the error a
    /// flow the client is not allowed answers.
    pub const FIELD: &'static str = "explicit_auth_flows";

    /// Every flow, in the order a client's flows are kept.
    pub const ALL: [AuthFlow; 4] = [
        AuthFlow::UserPassword,
        AuthFlow::RefreshToken,
        AuthFlow::Custom,
        AuthFlow::UserAuth,
    ];

    /// What a client gets unless it asks otherwise (clients created before flows could be
    /// chosen too): password, refresh and custom sign-in. `ALLOW_USER_AUTH`, the
    /// choice-based flow, must be enabled explicitly.
    pub const DEFAULT: [AuthFlow; 3] = [
        AuthFlow::UserPassword,
        AuthFlow::RefreshToken,
        AuthFlow::Custom,
    ];

    /// The name in `ExplicitAuthFlows`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFlow::UserPassword => "ALLOW_USER_PASSWORD_AUTH",
            AuthFlow::RefreshToken => "ALLOW_REFRESH_TOKEN_AUTH",
            AuthFlow::Custom => "ALLOW_CUSTOM_AUTH",
            AuthFlow::UserAuth => "ALLOW_USER_AUTH",
        }
    }

    /// The flow's name at sign-in (`AuthFlow` in Cognito's `InitiateAuth`), for messages.
    pub fn flow_name(self) -> &'static str {
        match self {
            AuthFlow::UserPassword => "USER_PASSWORD_AUTH",
            AuthFlow::RefreshToken => "REFRESH_TOKEN_AUTH",
            AuthFlow::Custom => "CUSTOM_AUTH",
            AuthFlow::UserAuth => "USER_AUTH",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s {
            "ALLOW_USER_PASSWORD_AUTH" => Ok(Self::UserPassword),
            "ALLOW_REFRESH_TOKEN_AUTH" => Ok(Self::RefreshToken),
            "ALLOW_CUSTOM_AUTH" => Ok(Self::Custom),
            "ALLOW_USER_AUTH" => Ok(Self::UserAuth),
            "ALLOW_USER_SRP_AUTH" => Err(ParseError::new(
                Self::FIELD,
                "ALLOW_USER_SRP_AUTH is not supported: Gatehouse does not speak SRP \
                 (use ALLOW_USER_PASSWORD_AUTH)",
            )),
            "ALLOW_ADMIN_USER_PASSWORD_AUTH" => Err(ParseError::new(
                Self::FIELD,
                "ALLOW_ADMIN_USER_PASSWORD_AUTH is not supported: Gatehouse has no \
                 admin-initiated sign-in (use ALLOW_USER_PASSWORD_AUTH)",
            )),
            _ => Err(ParseError::new(
                Self::FIELD,
                format!(
                    "unknown flow '{s}'; the flows are ALLOW_USER_PASSWORD_AUTH, \
                     ALLOW_REFRESH_TOKEN_AUTH, ALLOW_CUSTOM_AUTH and ALLOW_USER_AUTH"
                ),
            )),
        }
    }
}

impl fmt::Display for AuthFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses `ExplicitAuthFlows` names into a client's flows: each must be known, repeats are
/// dropped, and they are kept in [`AuthFlow::ALL`]'s order. An empty list is allowed: the
/// client then has no API sign-in flow.
pub fn parse_auth_flows<S: AsRef<str>>(names: &[S]) -> Result<Vec<AuthFlow>, ParseError> {
    let mut flows = names
        .iter()
        .map(|n| AuthFlow::parse(n.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    flows.sort_unstable();
    flows.dedup();
    Ok(flows)
}

pub fn validate_client_name(name: &str) -> Result<(), ParseError> {
    let n = name.chars().count();
    if n == 0 || n > 128 || name.chars().any(char::is_control) {
        return Err(ParseError::new("name", "must be 1 to 128 characters"));
    }
    Ok(())
}

/// The longest redirect URI accepted, in characters.
pub const REDIRECT_URI_MAX_CHARS: usize = 2000;
/// The most URIs in one list (redirect URIs; post-logout redirect URIs).
pub const MAX_REDIRECT_URIS: usize = 100;

/// Hosts on which `http` is allowed, for native apps listening on the loopback interface
/// (RFC 8252 §7.3) and for development.
const LOOPBACK_HOSTS: [&str; 3] = ["127.0.0.1", "[::1]", "localhost"];

fn bad_uri(reason: impl fmt::Display) -> ParseError {
    ParseError::new("redirect_uris", format!("a redirect URI {reason}"))
}

/// The characters RFC 3986 allows in a URI; anything else must be percent-encoded. Refusing
/// the rest (`\`, spaces, non-ASCII, …) keeps browsers' WHATWG parsing and ours in agreement.
fn is_uri_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&'()*+,;=%".contains(c)
}

fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

fn well_formed_percents(uri: &str) -> bool {
    let bytes = uri.as_bytes();
    bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || (bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

/// Splits an authority without user information into host and port (`None`: no port).
fn host_and_port(authority: &str) -> Result<(&str, Option<&str>), ParseError> {
    let (host, after) = if authority.starts_with('[') {
        let end = authority
            .find(']')
            .ok_or_else(|| bad_uri("has an unclosed IPv6 address"))?;
        authority.split_at(end + 1)
    } else {
        authority.split_at(authority.find(':').unwrap_or(authority.len()))
    };
    match after.strip_prefix(':') {
        None if after.is_empty() => Ok((host, None)),
        None => Err(bad_uri("has an invalid host")),
        Some(port) => Ok((host, Some(port))),
    }
}

/// Checks one redirect URI (or post-logout redirect URI), which is then stored exactly as
/// given and matched exactly:
/// - absolute, of RFC 3986 characters only, at most [`REDIRECT_URI_MAX_CHARS`] long;
/// - no fragment (RFC 6749 §3.1.2) and no user information (`https://app@evil.example`);
/// - `https` with a host; `http` only on a loopback host (`127.0.0.1`, `[::1]`, `localhost`,
///   RFC 8252 §7.3); or a private-use scheme containing a dot, such as
///   `com.example.app:/callback` (RFC 8252 §7.1). `javascript:`, `data:` and other schemes
///   without a dot are refused;
/// - its host written as browsers will read it: no percent-encoding and no shortened or
///   numeric IPv4 forms that the WHATWG parser would rewrite.
pub fn validate_redirect_uri(uri: &str) -> Result<(), ParseError> {
    if uri.is_empty() || uri.chars().count() > REDIRECT_URI_MAX_CHARS {
        return Err(bad_uri(format_args!(
            "must be 1 to {REDIRECT_URI_MAX_CHARS} characters"
        )));
    }
    if let Some(c) = uri.chars().find(|c| !is_uri_char(*c)) {
        return Err(bad_uri(format_args!(
            "must contain only URI characters (RFC 3986); {c:?} must be percent-encoded"
        )));
    }
    if !well_formed_percents(uri) {
        return Err(bad_uri("has a '%' not followed by two hexadecimal digits"));
    }
    if uri.contains('#') {
        return Err(bad_uri("must not contain a fragment"));
    }
    let Some((scheme, rest)) = uri.split_once(':').filter(|(s, _)| is_scheme(s)) else {
        return Err(bad_uri("must be absolute, starting with its scheme"));
    };
    let scheme = scheme.to_ascii_lowercase();
    let web = matches!(scheme.as_str(), "https" | "http");
    if !web && !scheme.contains('.') {
        return Err(bad_uri(
            "must use https, http on a loopback host (127.0.0.1, [::1], localhost), or a \
             private-use scheme containing a dot (com.example.app:/callback)",
        ));
    }
    let authority = rest
        .strip_prefix("//")
        .map(|a| &a[..a.find(['/', '?']).unwrap_or(a.len())]);
    if authority.is_some_and(|a| a.contains('@')) {
        return Err(bad_uri("must not contain user information"));
    }
    let parsed =
        url::Url::parse(uri).map_err(|e| bad_uri(format_args!("is not a valid URI ({e})")))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad_uri("must not contain user information"));
    }
    if !web {
        if rest.is_empty() {
            return Err(bad_uri("must have a path after its scheme"));
        }
        return Ok(());
    }
    let Some(authority) = authority.filter(|a| !a.is_empty()) else {
        return Err(bad_uri("must name a host (scheme://host/path)"));
    };
    let (host, port) = host_and_port(authority)?;
    if port.is_some_and(|p| {
        p.is_empty()
            || p.len() > 5
            || !p.bytes().all(|b| b.is_ascii_digit())
            || !p.parse::<u32>().is_ok_and(|n| (1..=65_535).contains(&n))
    }) {
        return Err(bad_uri("has an invalid port"));
    }
    let host = host.to_ascii_lowercase();
    if parsed.host_str() != Some(host.as_str()) {
        return Err(bad_uri(
            "must write its host as browsers read it (no percent-encoding, no shortened or \
             numeric IPv4 forms)",
        ));
    }
    if scheme == "http" && !LOOPBACK_HOSTS.contains(&host.as_str()) {
        return Err(bad_uri(
            "may use http only on a loopback host (127.0.0.1, [::1], localhost); use https",
        ));
    }
    Ok(())
}

/// Checks a list of redirect URIs for the attribute `field` (`redirect_uris` or
/// `post_logout_redirect_uris`), keeping them as given, in order, without repeats.
pub fn parse_redirect_uris(
    field: &'static str,
    uris: &[String],
) -> Result<Vec<String>, ParseError> {
    if uris.len() > MAX_REDIRECT_URIS {
        return Err(ParseError::new(
            field,
            format!("at most {MAX_REDIRECT_URIS} URIs"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(uris.len());
    for (i, uri) in uris.iter().enumerate() {
        validate_redirect_uri(uri).map_err(|e| {
            let which = if uri.chars().count() <= 100 {
                format!("'{uri}'")
            } else {
                format!("entry {}", i + 1)
            };
            ParseError::new(field, format!("{which}: {}", e.message))
        })?;
        if !out.contains(uri) {
            out.push(uri.clone());
        }
    }
    Ok(out)
}

/// The rules between a client's type, its grant types and its redirect URIs:
/// - a public client cannot hold `client_credentials` or token exchange, which would let
///   anyone who knows its id act as the client;
/// - `authorization_code` needs at least one redirect URI;
/// - `refresh_token` comes only with `authorization_code` (refresh tokens are issued by it).
pub fn check_grant_types(
    client_type: ClientType,
    grant_types: &[GrantType],
    redirect_uris: &[String],
) -> Result<(), ParseError> {
    let needs_secret =
        |g: &&GrantType| matches!(g, GrantType::ClientCredentials | GrantType::TokenExchange);
    if client_type == ClientType::Public
        && let Some(g) = grant_types.iter().find(needs_secret)
    {
        return Err(ParseError::new(
            "grant_types",
            format!(
                "a public client cannot use the {} grant, which needs a client secret",
                g.as_str()
            ),
        ));
    }
    let code = grant_types.contains(&GrantType::AuthorizationCode);
    if grant_types.contains(&GrantType::RefreshToken) && !code {
        return Err(ParseError::new(
            "grant_types",
            "refresh_token is allowed only together with authorization_code",
        ));
    }
    if code && redirect_uris.is_empty() {
        return Err(ParseError::new(
            "redirect_uris",
            "the authorization_code grant needs at least one redirect URI",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn client(redirect_uris: &[&str]) -> AppClient {
        AppClient {
            pool: PoolId::new_random(),
            client_id: ClientId::parse("web").unwrap(),
            name: "web".to_owned(),
            secret_sha256: None,
            secret_sealed: None,
            scopes: Vec::new(),
            grant_types: vec![GrantType::AuthorizationCode],
            redirect_uris: redirect_uris.iter().map(|s| (*s).to_owned()).collect(),
            post_logout_redirect_uris: vec!["https://app.example.com/bye".to_owned()],
            third_party: false,
            backchannel_logout: None,
            auth_flows: AuthFlow::DEFAULT.to_vec(),
            created_at: Timestamp(0),
        }
    }

    #[test]
    fn auth_flows_parse_under_cognitos_names() {
        for flow in AuthFlow::ALL {
            assert_eq!(AuthFlow::parse(flow.as_str()), Ok(flow));
            assert_eq!(flow.to_string(), flow.as_str());
        }
        assert_eq!(
            parse_auth_flows(&[
                "ALLOW_USER_AUTH",
                "ALLOW_CUSTOM_AUTH",
                "ALLOW_USER_AUTH",
                "ALLOW_USER_PASSWORD_AUTH"
            ])
            .unwrap(),
            vec![AuthFlow::UserPassword, AuthFlow::Custom, AuthFlow::UserAuth]
        );
        assert_eq!(parse_auth_flows::<&str>(&[]).unwrap(), vec![]);
        for (bad, because) in [
            ("ALLOW_USER_SRP_AUTH", "does not speak SRP"),
            (
                "ALLOW_ADMIN_USER_PASSWORD_AUTH",
                "no admin-initiated sign-in",
            ),
            ("USER_PASSWORD_AUTH", "unknown flow 'USER_PASSWORD_AUTH'"),
            ("allow_custom_auth", "unknown flow"),
            ("", "unknown flow"),
        ] {
            let err = parse_auth_flows(&["ALLOW_CUSTOM_AUTH", bad]).unwrap_err();
            assert_eq!(err.field, AuthFlow::FIELD, "{bad}");
            assert!(err.message.contains(because), "{bad}: {}", err.message);
        }
    }

    #[test]
    fn a_client_allows_its_flows_and_user_auth_only_when_asked() {
        let mut c = client(&[]);
        assert!(c.allows(AuthFlow::UserPassword));
        assert!(c.allows(AuthFlow::RefreshToken));
        assert!(c.allows(AuthFlow::Custom));
        assert!(!c.allows(AuthFlow::UserAuth));
        c.auth_flows = vec![AuthFlow::Custom];
        assert!(!c.allows(AuthFlow::UserPassword));
        assert!(!c.allows(AuthFlow::RefreshToken));
        assert!(c.allows(AuthFlow::Custom));
        c.auth_flows.clear();
        assert!(AuthFlow::ALL.iter().all(|f| !c.allows(*f)));
    }

    #[test]
    fn redirect_uris_that_are_accepted() {
        for ok in [
            "https://app.example.com/cb",
            "https://app.example.com",
            "https://APP.example.com/cb",
            "https://app.example.com:8443/cb?x=1&y=%2F",
            "https://app.example.com.evil.com/cb",
            "https://203.0.113.7/cb",
            "https://[2001:db8::1]:8443/cb",
            "http://localhost:3000/callback",
            "http://localhost/cb",
            "http://127.0.0.1:9999/",
            "http://[::1]:8080/cb",
            "com.example.app:/callback",
            "com.example.app:/oauth2redirect/example-provider",
            "com.example.app://callback",
        ] {
            assert_eq!(validate_redirect_uri(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn a_bracketed_host_must_be_an_ipv6_address() {
        for bad in [
            "https://[75:d1E75]/cb",
            "https://[]/cb",
            "https://[::1::]/cb",
        ] {
            assert!(validate_redirect_uri(bad).is_err(), "{bad}");
        }
        assert!(validate_redirect_uri("https://[2001:db8::1]/cb").is_ok());
    }

    #[test]
    fn redirect_uris_that_are_refused() {
        for (bad, because) in [
            ("", "characters"),
            ("/relative", "absolute"),
            ("app.example.com/cb", "absolute"),
            ("//app.example.com/cb", "absolute"),
            ("javascript:alert(1)", "private-use scheme"),
            ("JavaScript:alert(1)", "private-use scheme"),
            ("data:text/html,hi", "private-use scheme"),
            ("ftp://files.example.com/", "private-use scheme"),
            ("myapp:/callback", "private-use scheme"),
            ("http://app.example.com/cb", "loopback"),
            ("http://localhost.evil.com/", "loopback"),
            ("http://127.0.0.1.evil.com/", "loopback"),
            ("http://10.0.0.1/cb", "loopback"),
            ("https://app.example.com/cb#frag", "fragment"),
            ("https://app.example.com/cb#", "fragment"),
            ("com.example.app:/cb#x", "fragment"),
            ("https://a@evil.com", "user information"),
            ("https://app.example.com@evil.com/cb", "user information"),
            ("https://user:pw@app.example.com/", "user information"),
            ("http://localhost@evil.com/", "user information"),
            ("com.example.app://me@host/cb", "user information"),
            ("https:///nohost", "host"),
            ("https:app.example.com/cb", "host"),
            ("https://", "host"),
            ("https://app.example.com:99999/", "port"),
            ("https://app.example.com:0/", "port"),
            ("https://app.example.com:/", "port"),
            ("https://app.example.com:44x/", "port"),
            ("https://app example.com/", "URI characters"),
            ("https://app.example.com/\u{e9}", "URI characters"),
            ("https://evil.com\\@app.example.com/", "URI characters"),
            ("https://app.example.com/cb\n", "URI characters"),
            ("https://app.example.com/%zz", "'%'"),
            ("https://%61pp.example.com/", "as browsers read it"),
            ("http://127.1/", "as browsers read it"),
            ("http://0x7f000001/", "as browsers read it"),
            ("https://[0:0::1]/", "as browsers read it"),
            ("com.example.app:", "path"),
        ] {
            let err = validate_redirect_uri(bad).unwrap_err();
            assert_eq!(err.field, "redirect_uris", "{bad}");
            assert!(err.message.contains(because), "{bad}: {}", err.message);
        }
        let long = format!("https://app.example.com/{}", "a".repeat(2000 - 24));
        assert_eq!(long.len(), 2000);
        assert_eq!(validate_redirect_uri(&long), Ok(()));
        assert!(validate_redirect_uri(&format!("{long}a")).is_err());
    }

    #[test]
    fn lists_name_their_field_keep_their_order_and_have_a_limit() {
        let uris = vec![
            "https://b.example.com/cb".to_owned(),
            "https://a.example.com/cb".to_owned(),
            "https://b.example.com/cb".to_owned(),
            "https://B.example.com/cb".to_owned(),
        ];
        assert_eq!(
            parse_redirect_uris("redirect_uris", &uris).unwrap(),
            vec![
                "https://b.example.com/cb",
                "https://a.example.com/cb",
                "https://B.example.com/cb"
            ]
        );
        let err = parse_redirect_uris(
            "post_logout_redirect_uris",
            &[
                "https://a.example.com/".to_owned(),
                "javascript:x".to_owned(),
            ],
        )
        .unwrap_err();
        assert_eq!(err.field, "post_logout_redirect_uris");
        assert!(
            err.message.starts_with("'javascript:x': "),
            "{}",
            err.message
        );
        let hundred: Vec<String> = (0..100)
            .map(|i| format!("https://app.example.com/{i}"))
            .collect();
        assert_eq!(
            parse_redirect_uris("redirect_uris", &hundred)
                .unwrap()
                .len(),
            100
        );
        let mut too_many = hundred;
        too_many.push("https://app.example.com/x".to_owned());
        assert_eq!(
            parse_redirect_uris("redirect_uris", &too_many)
                .unwrap_err()
                .field,
            "redirect_uris"
        );
    }

    #[test]
    fn redirect_uris_match_exactly() {
        let c = client(&["https://app.example.com/cb", "http://127.0.0.1:8080/cb"]);
        assert!(c.has_redirect_uri("https://app.example.com/cb"));
        assert!(c.has_redirect_uri("http://127.0.0.1:8080/cb"));
        for other in [
            "https://app.example.com.evil.com/cb",
            "https://app.example.com/cb/../../evil",
            "https://app.example.com/cb/",
            "https://app.example.com/cb?next=https://evil.com",
            "https://app.example.com/cbx",
            "https://app.example.com/CB",
            "https://APP.example.com/cb",
            "https://app.example.com:443/cb",
            "http://app.example.com/cb",
            "https://app.example.com/c",
            "http://127.0.0.1:8081/cb",
            "",
        ] {
            assert!(!c.has_redirect_uri(other), "{other}");
        }
        assert!(c.has_post_logout_redirect_uri("https://app.example.com/bye"));
        assert!(!c.has_post_logout_redirect_uri("https://app.example.com/cb"));
        assert!(c.is_public());
        assert_eq!(c.client_type(), ClientType::Public);
    }

    #[test]
    fn grant_types_follow_the_client_type_and_redirect_uris() {
        use GrantType::*;
        let uris = ["https://app.example.com/cb".to_owned()];
        let public = ClientType::Public;
        let confidential = ClientType::Confidential;
        for (kind, grants, uris, refused_field) in [
            (public, vec![AuthorizationCode], &uris[..], None),
            (
                public,
                vec![AuthorizationCode, RefreshToken],
                &uris[..],
                None,
            ),
            (
                public,
                vec![ClientCredentials],
                &uris[..],
                Some("grant_types"),
            ),
            (
                public,
                vec![AuthorizationCode, TokenExchange],
                &uris[..],
                Some("grant_types"),
            ),
            (
                public,
                vec![AuthorizationCode],
                &[][..],
                Some("redirect_uris"),
            ),
            (
                confidential,
                vec![ClientCredentials, TokenExchange],
                &[][..],
                None,
            ),
            (
                confidential,
                vec![AuthorizationCode, RefreshToken, ClientCredentials],
                &uris[..],
                None,
            ),
            (
                confidential,
                vec![AuthorizationCode],
                &[][..],
                Some("redirect_uris"),
            ),
            (
                confidential,
                vec![RefreshToken],
                &uris[..],
                Some("grant_types"),
            ),
            (
                confidential,
                vec![ClientCredentials, RefreshToken],
                &uris[..],
                Some("grant_types"),
            ),
        ] {
            let got = check_grant_types(kind, &grants, uris).map_err(|e| e.field);
            assert_eq!(
                got,
                refused_field.map_or(Ok(()), Err),
                "{kind:?} {grants:?}"
            );
        }
        assert_eq!(
            ClientType::Confidential.default_grant_types(),
            vec![ClientCredentials, TokenExchange]
        );
        // A public client's default is allowed once it has a redirect URI.
        assert!(check_grant_types(public, &public.default_grant_types(), &uris).is_ok());
    }
}
