//! `/api/user-management/identity-providers[/{name}]` in JSON:API, like app clients: a
//! pool's SAML 2.0, OpenID Connect and social providers. A provider's id is its name. Its
//! client secret is written, never read back.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_crypto::secret::Secret;
use gatehouse_domain::federation::{EndpointOverrides, IdentityProvider, ProviderProtocol};
use gatehouse_domain::pool::Pool;
use gatehouse_service::identity_providers::{ProviderChange, ProviderRequest};
use serde::{Deserialize, Serialize};

use super::app_clients::json_api_content_type;
use super::pool_api_url;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Authenticated, IdPath, Meta, PoolCtx};

const RESOURCE_TYPE: &str = "identity-provider";
const PATH: &str = "/api/user-management/identity-providers";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PATH, get(list).post(create))
        .route(
            &format!("{PATH}/{{id}}"),
            get(get_one).patch(update).delete(delete),
        )
        .route_layer(middleware::from_fn(json_api_content_type))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document<T> {
    data: T,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrittenResource<A> {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    id: Option<String>,
    attributes: A,
}

/// What both creation and change may set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrittenAttributes {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    provider_type: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    saml_metadata: Option<String>,
    #[serde(default)]
    saml_metadata_url: Option<String>,
    #[serde(default)]
    idp_initiated: Option<bool>,
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    authorization_endpoint: Option<String>,
    #[serde(default)]
    token_endpoint: Option<String>,
    #[serde(default)]
    userinfo_endpoint: Option<String>,
    #[serde(default)]
    jwks_uri: Option<String>,
    #[serde(default)]
    end_session_endpoint: Option<String>,
    #[serde(default)]
    attribute_mapping: Option<BTreeMap<String, String>>,
}

impl WrittenAttributes {
    fn endpoints(&mut self) -> Option<EndpointOverrides> {
        let e = EndpointOverrides {
            authorization: self.authorization_endpoint.take(),
            token: self.token_endpoint.take(),
            userinfo: self.userinfo_endpoint.take(),
            jwks_uri: self.jwks_uri.take(),
            end_session: self.end_session_endpoint.take(),
        };
        (e != EndpointOverrides::default()).then_some(e)
    }
}

#[derive(Debug, Serialize)]
struct ProviderResource {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    attributes: ProviderAttributes,
    links: SelfLink,
}

#[derive(Debug, Serialize)]
struct ProviderAttributes {
    name: String,
    provider_type: &'static str,
    enabled: bool,
    attribute_mapping: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    saml_entity_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    saml_metadata_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idp_initiated: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scopes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    authorization_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    userinfo_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jwks_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_session_endpoint: Option<String>,
    /// Where the provider sends users back: the pool's SAML assertion consumer service or
    /// its OAuth redirect URI, to register at the provider.
    callback_url: String,
    created_at: i64,
    updated_at: i64,
}

#[derive(Debug, Serialize)]
struct SelfLink {
    #[serde(rename = "self")]
    self_: String,
}

#[derive(Debug, Serialize)]
struct Out<T> {
    data: T,
}

fn resource(
    state: &AppState,
    pool: &Pool,
    idp: &IdentityProvider,
) -> Result<ProviderResource, ApiError> {
    let url = pool_api_url(
        state,
        pool,
        &["user-management", "identity-providers", idp.name.as_str()],
        &[],
    )?;
    let base = state.gh.issuer(pool);
    let mut a = ProviderAttributes {
        name: idp.name.to_string(),
        provider_type: idp.protocol.type_name(),
        enabled: idp.enabled,
        attribute_mapping: idp
            .attribute_mapping
            .entries()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        saml_entity_id: None,
        saml_metadata_url: None,
        idp_initiated: None,
        issuer: None,
        client_id: None,
        scopes: None,
        authorization_endpoint: None,
        token_endpoint: None,
        userinfo_endpoint: None,
        jwks_uri: None,
        end_session_endpoint: None,
        callback_url: String::new(),
        created_at: idp.created_at.as_secs(),
        updated_at: idp.updated_at.as_secs(),
    };
    match &idp.protocol {
        ProviderProtocol::Saml(s) => {
            a.saml_entity_id = Some(s.entity_id.clone());
            a.saml_metadata_url = s.metadata_url.clone();
            a.idp_initiated = Some(s.idp_initiated);
            a.callback_url = format!("{base}/saml2/idpresponse");
        }
        ProviderProtocol::OAuth(o) => {
            a.issuer = o.issuer.clone();
            a.client_id = Some(o.client_id.clone());
            a.scopes = Some(o.scopes.clone());
            a.authorization_endpoint = o.endpoints.authorization.clone();
            a.token_endpoint = o.endpoints.token.clone();
            a.userinfo_endpoint = o.endpoints.userinfo.clone();
            a.jwks_uri = o.endpoints.jwks_uri.clone();
            a.end_session_endpoint = o.endpoints.end_session.clone();
            a.callback_url = format!("{base}/oauth2/idpresponse");
        }
    }
    Ok(ProviderResource {
        kind: RESOURCE_TYPE,
        id: idp.name.to_string(),
        attributes: a,
        links: SelfLink { self_: url },
    })
}

fn check_type(kind: Option<&str>) -> Result<(), ApiError> {
    match kind {
        Some(kind) if kind != RESOURCE_TYPE => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("data.type must be '{RESOURCE_TYPE}', not '{kind}'"),
        )),
        _ => Ok(()),
    }
}

fn required(value: Option<String>, field: &str) -> Result<String, ApiError> {
    value.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("data.attributes.{field} is required"),
        )
    })
}

pub async fn create(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<Document<WrittenResource<WrittenAttributes>>>,
) -> Result<Response, ApiError> {
    check_type(body.data.kind.as_deref())?;
    let mut a = body.data.attributes;
    let endpoints = a.endpoints().unwrap_or_default();
    let request = ProviderRequest {
        name: required(a.name.take(), "name")?,
        kind: required(a.provider_type.take(), "provider_type")?,
        enabled: a.enabled,
        saml_metadata: a.saml_metadata,
        saml_metadata_url: a.saml_metadata_url,
        idp_initiated: a.idp_initiated,
        issuer: a.issuer,
        client_id: a.client_id,
        client_secret: a.client_secret.map(Secret::new),
        scopes: a.scopes,
        endpoints,
        attribute_mapping: a.attribute_mapping,
    };
    let idp = state
        .gh
        .create_identity_provider(&pool, &caller, request, &meta)
        .await?;
    let data = resource(&state, &pool, &idp)?;
    let location = HeaderValue::from_str(&data.links.self_).ok();
    let mut res = (StatusCode::CREATED, Json(Out { data })).into_response();
    if let Some(location) = location {
        res.headers_mut().insert(header::LOCATION, location);
    }
    Ok(res)
}

pub async fn list(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
) -> Result<Response, ApiError> {
    let idps = state.gh.list_identity_providers(&pool, &caller).await?;
    let data = idps
        .iter()
        .map(|i| resource(&state, &pool, i))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(Out { data }).into_response())
}

pub async fn get_one(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    IdPath(id): IdPath,
) -> Result<Response, ApiError> {
    let idp = state.gh.get_identity_provider(&pool, &caller, &id).await?;
    Ok(Json(Out {
        data: resource(&state, &pool, &idp)?,
    })
    .into_response())
}

pub async fn update(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    IdPath(id): IdPath,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<Document<WrittenResource<WrittenAttributes>>>,
) -> Result<Response, ApiError> {
    check_type(body.data.kind.as_deref())?;
    if body.data.id.as_deref().is_some_and(|given| given != id) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "data.id must be the provider's name in the path",
        ));
    }
    let mut a = body.data.attributes;
    if a.name.as_deref().is_some_and(|n| n != id) || a.provider_type.is_some() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "a provider's name and type are set when it is created",
        ));
    }
    let change = ProviderChange {
        endpoints: a.endpoints(),
        enabled: a.enabled,
        saml_metadata: a.saml_metadata,
        saml_metadata_url: a.saml_metadata_url,
        idp_initiated: a.idp_initiated,
        issuer: a.issuer,
        client_id: a.client_id,
        client_secret: a.client_secret.map(Secret::new),
        scopes: a.scopes,
        attribute_mapping: a.attribute_mapping,
    };
    let idp = state
        .gh
        .update_identity_provider(&pool, &caller, &id, change, &meta)
        .await?;
    Ok(Json(Out {
        data: resource(&state, &pool, &idp)?,
    })
    .into_response())
}

pub async fn delete(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    IdPath(id): IdPath,
    Meta(meta): Meta,
) -> Result<StatusCode, ApiError> {
    state
        .gh
        .delete_identity_provider(&pool, &caller, &id, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
