//! The URLs a pool is known by: its base URL, its OIDC issuer, and the identifiers of its API
//! as a resource server (RFC 8707), all derived from the configured public URL and the pool's
//! host names (SPEC §4).

use std::fmt;

use crate::ParseError;
use crate::pool::Pool;

/// The externally visible base URL of the service: `http(s)://host[:port][/path]`, kept
/// without a trailing slash. Issuers and every link Gatehouse publishes are built from it,
/// never from a request's `Host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    url: String,
    scheme: Scheme,
}

/// The scheme of the public URL; host-bound issuers take it too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

impl PublicUrl {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let invalid = |why: &str| ParseError::new("public_url", why.to_owned());
        let (scheme, rest) = if let Some(rest) = s.strip_prefix("https://") {
            (Scheme::Https, rest)
        } else if let Some(rest) = s.strip_prefix("http://") {
            (Scheme::Http, rest)
        } else {
            return Err(invalid("must be an http:// or https:// URL"));
        };
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() {
            return Err(invalid("must name a host"));
        }
        if rest.contains(['?', '#', ' ']) || authority.contains('@') {
            return Err(invalid(
                "must not carry a query, a fragment, spaces or credentials",
            ));
        }
        Ok(Self {
            url: s.trim_end_matches('/').to_owned(),
            scheme,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// `{public_url}/pools/{pool}`: every pool is served here, host-bound or not.
    pub fn pool_base(&self, pool: &Pool) -> String {
        format!("{}/pools/{}", self.url, pool.slug)
    }

    /// The pool's OIDC issuer: `{scheme}://{first host}` for a pool bound to host names,
    /// otherwise its base URL.
    pub fn issuer(&self, pool: &Pool) -> String {
        match pool.hosts.first() {
            Some(host) => format!("{}://{}", self.scheme.as_str(), host.as_str()),
            None => self.pool_base(pool),
        }
    }

    /// The identifiers of the pool's API as a resource server: `{base}/api`, and for each
    /// bound host `https://{host}/api` and `http://{host}/api` (clients pick the scheme).
    pub fn api_resources(&self, pool: &Pool) -> Vec<String> {
        let mut ids = vec![format!("{}/api", self.pool_base(pool))];
        for host in &pool.hosts {
            ids.push(format!("https://{}/api", host.as_str()));
            ids.push(format!("http://{}/api", host.as_str()));
        }
        ids
    }

    /// The pool API identifier that `requested` names, in its canonical form, if it names one.
    /// Scheme and host compare without regard to case and an explicit default port is the
    /// same as none; the path compares exactly.
    pub fn api_resource(&self, pool: &Pool, requested: &str) -> Option<String> {
        let wanted = canonical(requested)?;
        self.api_resources(pool)
            .into_iter()
            .find(|id| canonical(id).as_deref() == Some(wanted.as_str()))
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

/// `scheme://host[:port]/path` with scheme and host lowercased and a default port dropped;
/// `None` for anything that is not an absolute http(s) URL without query or fragment.
fn canonical(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => ":443",
        "http" => ":80",
        _ => return None,
    };
    if rest.contains(['?', '#']) {
        return None;
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    Some(format!("{scheme}://{authority}{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{PoolId, PoolSlug};
    use crate::pool::HostName;
    use crate::time::Timestamp;

    fn pool(slug: &str, hosts: &[&str]) -> Pool {
        Pool {
            id: PoolId::new_random(),
            slug: PoolSlug::parse(slug).unwrap(),
            settings: Default::default(),
            hosts: hosts.iter().map(|h| HostName::parse(h).unwrap()).collect(),
            created_at: Timestamp(0),
        }
    }

    #[test]
    fn public_urls_are_parsed_and_trimmed() {
        let u = PublicUrl::parse("https://id.example.com/").unwrap();
        assert_eq!(u.as_str(), "https://id.example.com");
        assert_eq!(u.scheme(), Scheme::Https);
        assert_eq!(
            PublicUrl::parse("http://127.0.0.1:8080").unwrap().scheme(),
            Scheme::Http
        );
        for bad in [
            "ftp://x",
            "id.example.com",
            "https://",
            "https://x?y",
            "https://u@x",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_issuer_is_the_first_host_with_the_public_scheme() {
        let public = PublicUrl::parse("https://id.example.com:8443").unwrap();
        assert_eq!(
            public.issuer(&pool("acme", &[])),
            "https://id.example.com:8443/pools/acme"
        );
        let bound = pool("acme", &["login.acme.test", "acme.test"]);
        assert_eq!(public.issuer(&bound), "https://login.acme.test");
        let http = PublicUrl::parse("http://id.example.com").unwrap();
        assert_eq!(http.issuer(&bound), "http://login.acme.test");
    }

    #[test]
    fn api_resources_name_the_base_and_every_host_under_both_schemes() {
        let public = PublicUrl::parse("https://id.example.com").unwrap();
        let p = pool("acme", &["acme.test"]);
        assert_eq!(
            public.api_resources(&p),
            [
                "https://id.example.com/pools/acme/api",
                "https://acme.test/api",
                "http://acme.test/api",
            ]
        );
        assert_eq!(
            public
                .api_resource(&p, "HTTPS://Acme.Test:443/api")
                .as_deref(),
            Some("https://acme.test/api")
        );
        assert_eq!(
            public.api_resource(&p, "http://acme.test/api").as_deref(),
            Some("http://acme.test/api")
        );
        for other in [
            "https://acme.test/api/",
            "https://acme.test/API",
            "https://acme.test:8443/api",
            "https://other.test/api",
            "https://id.example.com/pools/beta/api",
            "https://acme.test/api?x=1",
            "acme.test/api",
            "user:Impersonate",
        ] {
            assert_eq!(public.api_resource(&p, other), None, "{other}");
        }
    }
}
