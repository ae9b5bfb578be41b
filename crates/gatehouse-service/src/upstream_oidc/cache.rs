//! Discovery documents and key sets of upstream issuers, fetched through the outbound client
//! and kept for a few minutes. Both caches are bounded (entries, and keys per set), and a key
//! set is fetched again for an unknown `kid` at most once per [`REFETCH_INTERVAL`], so tokens
//! naming made-up keys cannot turn Gatehouse into a flood of requests to the provider.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use gatehouse_crypto::upstream::{Jwk, UpstreamKey};
use serde_json::Value;
use url::Url;

use super::{ClientAuth, Step, UpstreamClient, UpstreamError, browser_url, called_url};

/// How long a discovery document or key set is used before it is fetched again.
const TTL: Duration = Duration::from_secs(300);
/// The least time between two fetches of one key set for unknown `kid`s.
const REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// How many issuers' documents, and how many key sets, are kept.
const MAX_ENTRIES: usize = 256;
/// How many usable keys of one set are kept.
const MAX_KEYS: usize = 32;

/// What discovery says of an issuer, its URLs checked.
#[derive(Debug)]
pub(super) struct Discovered {
    pub authorization: Url,
    pub token: Url,
    pub userinfo: Option<Url>,
    pub jwks_uri: Url,
    pub end_session: Option<Url>,
    pub client_auth: ClientAuth,
    pub response_iss: bool,
}

struct KeySet {
    keys: Arc<Vec<UpstreamKey>>,
    fetched: Instant,
}

#[derive(Default)]
pub(super) struct Caches {
    discovery: Mutex<HashMap<String, (Instant, Arc<Discovered>)>>,
    jwks: Mutex<HashMap<String, KeySet>>,
}

/// Keeps `map` under [`MAX_ENTRIES`] before an insert: expired entries go, then the oldest.
fn make_room<V>(map: &mut HashMap<String, V>, fetched: impl Fn(&V) -> Instant) {
    if map.len() < MAX_ENTRIES {
        return;
    }
    map.retain(|_, v| fetched(v).elapsed() < TTL);
    while map.len() >= MAX_ENTRIES {
        let oldest = map
            .iter()
            .min_by_key(|(_, v)| fetched(v))
            .map(|(k, _)| k.clone());
        match oldest {
            Some(key) => map.remove(&key),
            None => break,
        };
    }
}

impl UpstreamClient {
    /// The issuer's discovery document (OpenID Connect Discovery 1.0 §4), from the cache while
    /// fresh. Its `issuer` must be `issuer` exactly; its endpoints must be URLs the policy
    /// allows; `token_endpoint_auth_methods_supported` chooses Basic unless it lists only
    /// `client_secret_post`.
    pub(super) async fn discover(&self, issuer: &str) -> Result<Arc<Discovered>, UpstreamError> {
        if let Some((at, found)) = self
            .caches
            .discovery
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(issuer)
            && at.elapsed() < TTL
        {
            return Ok(found.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let doc = self.get_json(Step::Discovery, &url, &[]).await?;
        let found = match doc.get("issuer") {
            Some(Value::String(found)) => found,
            _ => {
                return Err(UpstreamError::Malformed {
                    step: Step::Discovery,
                    reason: "it names no issuer",
                });
            }
        };
        if found != issuer {
            return Err(UpstreamError::IssuerMismatch {
                configured: issuer.to_owned(),
                found: found.chars().take(200).collect(),
            });
        }
        let text = |name: &'static str| match doc.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(UpstreamError::Malformed {
                step: Step::Discovery,
                reason: "an endpoint is not a string",
            }),
        };
        let required = |name: &'static str, reason: &'static str| {
            text(name)?.ok_or(UpstreamError::Malformed {
                step: Step::Discovery,
                reason,
            })
        };
        let authorization = browser_url(
            &self.outbound,
            required(
                "authorization_endpoint",
                "it names no authorization endpoint",
            )?,
        )?;
        let token = called_url(
            &self.outbound,
            Step::Token,
            required("token_endpoint", "it names no token endpoint")?,
        )?;
        let jwks_uri = called_url(
            &self.outbound,
            Step::Jwks,
            required("jwks_uri", "it names no jwks_uri")?,
        )?;
        let userinfo = text("userinfo_endpoint")?
            .map(|u| called_url(&self.outbound, Step::Userinfo, u))
            .transpose()?;
        let end_session = text("end_session_endpoint")?
            .map(|u| browser_url(&self.outbound, u))
            .transpose()?;
        let methods: Option<Vec<&str>> = match doc.get("token_endpoint_auth_methods_supported") {
            None | Some(Value::Null) => None,
            Some(Value::Array(list)) => Some(list.iter().filter_map(Value::as_str).collect()),
            Some(_) => {
                return Err(UpstreamError::Malformed {
                    step: Step::Discovery,
                    reason: "token_endpoint_auth_methods_supported is not a list",
                });
            }
        };
        // Absent, the default is client_secret_basic (Discovery §3).
        let client_auth = match methods {
            None => ClientAuth::ClientSecretBasic,
            Some(m) if m.contains(&"client_secret_basic") => ClientAuth::ClientSecretBasic,
            Some(m) if m.contains(&"client_secret_post") => ClientAuth::ClientSecretPost,
            Some(_) => return Err(UpstreamError::UnsupportedClientAuth),
        };
        let response_iss = doc
            .get("authorization_response_iss_parameter_supported")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let found = Arc::new(Discovered {
            authorization,
            token,
            userinfo,
            jwks_uri,
            end_session,
            client_auth,
            response_iss,
        });
        let mut cache = self
            .caches
            .discovery
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        make_room(&mut cache, |(at, _)| *at);
        cache.insert(issuer.to_owned(), (Instant::now(), found.clone()));
        Ok(found)
    }

    /// Makes every cached key set look `by` older (tests of the refetch interval).
    #[cfg(test)]
    pub(super) fn age_key_sets(&self, by: Duration) {
        let mut cache = self
            .caches
            .jwks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for set in cache.values_mut() {
            if let Some(earlier) = set.fetched.checked_sub(by) {
                set.fetched = earlier;
            }
        }
    }

    /// The usable keys of the set at `uri`: from the cache while fresh, unless `refetch` asks
    /// for a new copy (an unknown `kid`), which is fetched only if the last fetch is older than
    /// [`REFETCH_INTERVAL`]. Returns the keys and whether they were fetched now.
    pub(super) async fn keys(
        &self,
        uri: &Url,
        refetch: bool,
    ) -> Result<(Arc<Vec<UpstreamKey>>, bool), UpstreamError> {
        {
            let mut cache = self
                .caches
                .jwks
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(set) = cache.get_mut(uri.as_str()) {
                let age = set.fetched.elapsed();
                if (!refetch && age < TTL) || (refetch && age < REFETCH_INTERVAL) {
                    return Ok((set.keys.clone(), false));
                }
                // Concurrent misses do not all fetch: the first one marks the set as fetched.
                if refetch {
                    set.fetched = Instant::now();
                }
            }
        }
        let doc = self.get_json(Step::Jwks, uri.as_str(), &[]).await?;
        let Some(Value::Array(list)) = doc.get("keys") else {
            return Err(UpstreamError::Malformed {
                step: Step::Jwks,
                reason: "it has no keys array",
            });
        };
        let keys: Vec<UpstreamKey> = list
            .iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
            .filter_map(|jwk| UpstreamKey::from_jwk(&jwk).ok())
            .take(MAX_KEYS)
            .collect();
        if keys.is_empty() {
            return Err(UpstreamError::Malformed {
                step: Step::Jwks,
                reason: "it has no usable signing key",
            });
        }
        let keys = Arc::new(keys);
        let mut cache = self
            .caches
            .jwks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        make_room(&mut cache, |s| s.fetched);
        cache.insert(
            uri.as_str().to_owned(),
            KeySet {
                keys: keys.clone(),
                fetched: Instant::now(),
            },
        );
        Ok((keys, true))
    }
}
