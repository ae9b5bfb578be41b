//! Pool management for staff administrators: `GET/POST {public_url}/api/pools` and
//! `PUT {public_url}/api/pools/{pool}/hosts`.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use gatehouse_domain::ids::PoolSlug;
use gatehouse_domain::pool::{HostName, Pool, PoolSettings, SigningAlg};
use gatehouse_service::Principal;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::admin::ApiQuery;
use crate::error::ApiError;
use crate::extract::{ApiJson, Meta, PageQuery, bearer_token};

/// A principal of the staff pool.
pub struct Staff(pub Principal);

impl FromRequestParts<AppState> for Staff {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let staff = state.gh.pool(&PoolSlug::staff()).await?;
        let token = bearer_token(parts)
            .ok_or_else(|| ApiError::unauthenticated("a bearer token is required"))?
            .to_owned();
        Ok(Staff(state.gh.authenticate_bearer(&staff, &token).await?))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePool {
    name: String,
    #[serde(default)]
    hosts: Vec<String>,
    /// ES256 (default), RS256 or EdDSA.
    #[serde(default)]
    alg: Option<String>,
}

#[derive(Serialize)]
pub struct PoolView {
    name: String,
    id: String,
    issuer: String,
    hosts: Vec<String>,
    alg: &'static str,
}

fn view(state: &AppState, p: &Pool) -> PoolView {
    PoolView {
        name: p.slug.to_string(),
        id: p.id.to_string(),
        issuer: state.gh.issuer(p),
        hosts: p.hosts.iter().map(|h| h.as_str().to_owned()).collect(),
        alg: p.settings.signing_alg.as_str(),
    }
}

/// A page of pools in slug order, like the user list: `cursor` and `limit` (1 to 1000,
/// default 60); `next` is the next page's URL, `""` on the last.
pub async fn list(
    State(state): State<AppState>,
    Staff(p): Staff,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let limit = page.limit()?;
    let found = state
        .gh
        .list_pools(&p, page.cursor.as_deref(), limit)
        .await?;
    let pools: Vec<PoolView> = found.items.iter().map(|x| view(&state, x)).collect();
    let next = found.next.map_or_else(String::new, |cursor| {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("cursor", &cursor)
            .append_pair("limit", &limit.to_string())
            .finish();
        format!("{}/api/pools?{query}", state.gh.public_url())
    });
    Ok(Json(serde_json::json!({ "pools": pools, "next": next })).into_response())
}

pub async fn create(
    State(state): State<AppState>,
    Staff(p): Staff,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<CreatePool>,
) -> Result<Response, ApiError> {
    let slug = PoolSlug::parse(&body.name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let hosts = parse_hosts(&body.hosts)?;
    let mut settings = PoolSettings::default();
    if let Some(alg) = &body.alg {
        settings.signing_alg =
            SigningAlg::parse(alg).map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let pool = state
        .gh
        .create_pool(slug, settings, hosts, Some(&p), &meta)
        .await?;
    Ok((StatusCode::CREATED, Json(view(&state, &pool))).into_response())
}

fn parse_hosts(hosts: &[String]) -> Result<Vec<HostName>, ApiError> {
    hosts
        .iter()
        .map(|h| HostName::parse(h))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetHosts {
    /// In order: the first host names the issuer. Empty unbinds the pool.
    hosts: Vec<String>,
}

#[derive(Serialize)]
pub struct HostsChanged {
    #[serde(flatten)]
    pool: PoolView,
    previous_issuer: String,
    issuer_changed: bool,
    /// What the change did to tokens already issued, in words.
    tokens: String,
}

/// `PUT /api/pools/{pool}/hosts`: replaces the host names bound to a pool.
pub async fn set_hosts(
    State(state): State<AppState>,
    Staff(p): Staff,
    Meta(meta): Meta,
    axum::extract::Path(pool): axum::extract::Path<String>,
    ApiJson(body): ApiJson<SetHosts>,
) -> Result<Response, ApiError> {
    let slug = PoolSlug::parse(&pool).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let hosts = parse_hosts(&body.hosts)?;
    let change = state.gh.set_pool_hosts(&p, &slug, hosts, &meta).await?;
    let tokens = if change.issuer_changed() {
        format!(
            "the issuer changed: tokens issued under {} are refused from now on; clients \
             discover {} and get new tokens",
            change.previous_issuer, change.issuer
        )
    } else {
        "the issuer is unchanged: tokens already issued stay valid".to_owned()
    };
    Ok(Json(HostsChanged {
        pool: view(&state, &change.pool),
        issuer_changed: change.issuer_changed(),
        previous_issuer: change.previous_issuer,
        tokens,
    })
    .into_response())
}
