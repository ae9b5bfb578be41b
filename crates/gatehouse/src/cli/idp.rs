//! `gatehouse idp …`: a pool's identity providers from the command line.

use std::collections::BTreeMap;

use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use gatehouse_crypto::secret::Secret;
use gatehouse_domain::federation::{EndpointOverrides, IdentityProvider, ProviderProtocol};
use gatehouse_domain::ids::PoolSlug;
use gatehouse_service::Gatehouse;
use gatehouse_service::identity_providers::ProviderRequest;
use serde_json::{Value, json};

use super::operate::say;

#[derive(Debug, Subcommand)]
pub enum IdpCommand {
    /// Add an identity provider to a pool: a SAML 2.0 IdP by its metadata, an OpenID
    /// Connect issuer, or a social preset. Prints where the provider must send users back.
    Create(Box<IdpCreate>),
    /// List a pool's identity providers (never their secrets).
    List {
        #[arg(long)]
        pool: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Preset {
    Google,
    Facebook,
    Amazon,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("kind").required(true).args(["saml_metadata", "oidc_issuer", "preset"])))]
pub struct IdpCreate {
    #[arg(long)]
    pool: String,
    /// The provider's name: the sign-in button says "Sign in with NAME".
    #[arg(long)]
    name: String,
    /// The IdP's SAML metadata: a file, or an https URL to fetch it from.
    #[arg(long, value_name = "FILE|URL")]
    saml_metadata: Option<String>,
    /// Any OpenID Connect issuer (discovery, code with PKCE, nonce).
    #[arg(long, value_name = "URL", requires_all = ["client_id", "client_secret"])]
    oidc_issuer: Option<String>,
    /// Google (OpenID Connect), Facebook or Login with Amazon (OAuth 2.0 and their profile APIs).
    #[arg(long, requires_all = ["client_id", "client_secret"])]
    preset: Option<Preset>,
    #[arg(long)]
    client_id: Option<String>,
    #[arg(long)]
    client_secret: Option<String>,
    /// Scopes asked for beyond `openid` (repeatable).
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// Map an upstream attribute into the profile: CLAIM=ATTRIBUTE, e.g.
    /// email=http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress (repeatable).
    #[arg(long = "map", value_name = "CLAIM=ATTRIBUTE", value_parser = mapping)]
    maps: Vec<(String, String)>,
    /// Endpoints replacing what discovery or the preset gives.
    #[arg(long, value_name = "URL")]
    authorization_endpoint: Option<String>,
    #[arg(long, value_name = "URL")]
    token_endpoint: Option<String>,
    #[arg(long, value_name = "URL")]
    userinfo_endpoint: Option<String>,
    #[arg(long, value_name = "URL")]
    jwks_uri: Option<String>,
    #[arg(long, value_name = "URL")]
    end_session_endpoint: Option<String>,
    /// Refuse responses the IdP sends unasked (SAML IdP-initiated sign-in).
    #[arg(long)]
    no_idp_initiated: bool,
    /// Create it disabled: configured, but not offered on the sign-in page.
    #[arg(long)]
    disabled: bool,
    #[arg(long)]
    json: bool,
}

fn mapping(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .ok_or_else(|| "expected CLAIM=ATTRIBUTE".to_owned())
}

/// A provider as the CLI shows it.
pub fn idp_view(
    gh: &Gatehouse,
    pool: &gatehouse_domain::pool::Pool,
    idp: &IdentityProvider,
) -> Value {
    let base = gh.issuer(pool);
    let mut view = json!({
        "name": idp.name.as_str(),
        "provider_type": idp.protocol.type_name(),
        "enabled": idp.enabled,
        "attribute_mapping": idp.attribute_mapping.entries().collect::<BTreeMap<_, _>>(),
    });
    match &idp.protocol {
        ProviderProtocol::Saml(s) => {
            view["saml_entity_id"] = json!(s.entity_id);
            view["sp_entity_id"] = json!(format!("{base}/saml2/metadata"));
            view["callback_url"] = json!(format!("{base}/saml2/idpresponse"));
        }
        ProviderProtocol::OAuth(o) => {
            view["issuer"] = json!(o.issuer);
            view["client_id"] = json!(o.client_id);
            view["callback_url"] = json!(format!("{base}/oauth2/idpresponse"));
        }
    }
    view
}

pub async fn run(gh: &Gatehouse, command: IdpCommand) -> Result<(), String> {
    match command {
        IdpCommand::List { pool, json } => {
            let pool = gh
                .pool(&PoolSlug::parse(&pool).map_err(|e| e.to_string())?)
                .await
                .map_err(|e| e.for_operator())?;
            let idps = gh
                .list_identity_providers_as_operator(&pool)
                .await
                .map_err(|e| e.for_operator())?;
            let rows: Vec<Value> = idps.iter().map(|i| idp_view(gh, &pool, i)).collect();
            if json {
                println!("{}", json!({ "identity_providers": rows }));
            } else {
                for r in &rows {
                    println!(
                        "{}\t{}\t{}",
                        r["name"].as_str().unwrap_or(""),
                        r["provider_type"].as_str().unwrap_or(""),
                        if r["enabled"] == true {
                            "enabled"
                        } else {
                            "disabled"
                        }
                    );
                }
            }
            Ok(())
        }
        IdpCommand::Create(a) => {
            let a = *a;
            let pool = gh
                .pool(&PoolSlug::parse(&a.pool).map_err(|e| e.to_string())?)
                .await
                .map_err(|e| e.for_operator())?;
            let (kind, issuer) = match (&a.saml_metadata, &a.oidc_issuer, a.preset) {
                (Some(_), _, _) => ("saml", None),
                (_, Some(issuer), _) => ("oidc", Some(issuer.clone())),
                (_, _, Some(Preset::Google)) => ("google", None),
                (_, _, Some(Preset::Facebook)) => ("facebook", None),
                (_, _, Some(Preset::Amazon)) => ("amazon", None),
                _ => return Err("give --saml-metadata, --oidc-issuer or --preset".to_owned()),
            };
            let (saml_metadata, saml_metadata_url) = match &a.saml_metadata {
                Some(m) if m.starts_with("https://") || m.starts_with("http://") => {
                    (None, Some(m.clone()))
                }
                Some(path) => (
                    Some(
                        std::fs::read_to_string(path)
                            .map_err(|e| format!("cannot read {path}: {e}"))?,
                    ),
                    None,
                ),
                None => (None, None),
            };
            let request = ProviderRequest {
                name: a.name,
                kind: kind.to_owned(),
                enabled: Some(!a.disabled),
                saml_metadata,
                saml_metadata_url,
                idp_initiated: (kind == "saml").then_some(!a.no_idp_initiated),
                issuer,
                client_id: a.client_id,
                client_secret: a.client_secret.map(Secret::new),
                scopes: (!a.scopes.is_empty()).then_some(a.scopes),
                endpoints: EndpointOverrides {
                    authorization: a.authorization_endpoint,
                    token: a.token_endpoint,
                    userinfo: a.userinfo_endpoint,
                    jwks_uri: a.jwks_uri,
                    end_session: a.end_session_endpoint,
                },
                attribute_mapping: (!a.maps.is_empty()).then(|| a.maps.into_iter().collect()),
            };
            let idp = gh
                .create_identity_provider_as_operator(&pool, request)
                .await
                .map_err(|e| e.for_operator())?;
            let view = idp_view(gh, &pool, &idp);
            say(a.json, &view, || {
                format!(
                    "identity provider {} ({}) created\ncallback URL: {}",
                    idp.name,
                    idp.protocol.type_name(),
                    view["callback_url"].as_str().unwrap_or("")
                )
            });
            Ok(())
        }
    }
}
