//! `/api/user-management/app-clients[/{id}]` in JSON:API (`application/vnd.api+json` both
//! ways; `application/json` requests are accepted too). A confidential client's secret appears
//! once, in the answer to the creation; a public client has none.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_domain::client::{AppClient, ClientType};
use gatehouse_domain::permission::Scope;
use gatehouse_domain::pool::Pool;
use gatehouse_service::clients::{AppClientUpdate, NewAppClient};
use serde::{Deserialize, Serialize};

use super::pool_api_url;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Authenticated, IdPath, Meta, PoolCtx};

pub const JSON_API: &str = "application/vnd.api+json";
const RESOURCE_TYPE: &str = "app-client";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/user-management/app-clients", get(list).post(create))
        .route(
            "/api/user-management/app-clients/{id}",
            get(get_one).patch(update).delete(delete),
        )
        .route(
            "/api/user-management/app-clients/{id}/backchannel-logout/deliveries",
            get(deliveries),
        )
        .route_layer(middleware::from_fn(json_api_content_type))
}

/// Every JSON answer of these routes, errors included, is a JSON:API document.
pub(super) async fn json_api_content_type(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_API));
    }
    res
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateDocument {
    data: CreateResource,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateResource {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    attributes: CreateAttributes,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAttributes {
    name: String,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    grant_types: Option<Vec<String>>,
    #[serde(default)]
    redirect_uris: Option<Vec<String>>,
    #[serde(default)]
    post_logout_redirect_uris: Option<Vec<String>>,
    /// A public client (browser or native app) gets no secret. Chosen at creation only.
    #[serde(default)]
    public: bool,
    #[serde(default)]
    third_party: bool,
    /// Where logout tokens go (OpenID Connect Back-Channel Logout).
    #[serde(default)]
    backchannel_logout_uri: Option<String>,
    #[serde(default)]
    backchannel_logout_session_required: bool,
    /// The API sign-in flows the client may start (Cognito's `ExplicitAuthFlows`);
    /// `ALLOW_USER_PASSWORD_AUTH`, `ALLOW_REFRESH_TOKEN_AUTH` and `ALLOW_CUSTOM_AUTH` if
    /// absent; `[]` allows none.
    #[serde(default)]
    explicit_auth_flows: Option<Vec<String>>,
}

/// `PATCH …/app-clients/{id}`: `data.id`, if sent, must be the id in the path.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateDocument {
    data: UpdateResource,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateResource {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    id: Option<String>,
    attributes: UpdateAttributes,
}

/// What may change after creation: today the sign-in flows only; any other attribute is
/// refused (400), not ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateAttributes {
    #[serde(default)]
    explicit_auth_flows: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
struct ClientResource {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    attributes: ClientAttributes,
    links: SelfLink,
}

#[derive(Debug, Serialize)]
struct ClientAttributes {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    scopes: Vec<String>,
    grant_types: Vec<&'static str>,
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    public: bool,
    third_party: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    backchannel_logout_uri: Option<String>,
    backchannel_logout_session_required: bool,
    explicit_auth_flows: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
struct SelfLink {
    #[serde(rename = "self")]
    self_: String,
}

#[derive(Debug, Serialize)]
struct Document<T> {
    data: T,
}

fn resource(
    state: &AppState,
    pool: &Pool,
    client: &AppClient,
    secret: Option<String>,
) -> Result<ClientResource, ApiError> {
    let url = pool_api_url(
        state,
        pool,
        &["user-management", "app-clients", client.client_id.as_str()],
        &[],
    )?;
    Ok(ClientResource {
        kind: RESOURCE_TYPE,
        id: client.client_id.to_string(),
        attributes: ClientAttributes {
            name: client.name.clone(),
            secret,
            scopes: client
                .scopes
                .iter()
                .map(|s| Scope::as_str(s).to_owned())
                .collect(),
            grant_types: client.grant_types.iter().map(|g| g.as_str()).collect(),
            redirect_uris: client.redirect_uris.clone(),
            post_logout_redirect_uris: client.post_logout_redirect_uris.clone(),
            public: client.is_public(),
            third_party: client.third_party,
            backchannel_logout_uri: client.backchannel_logout.as_ref().map(|b| b.uri.clone()),
            backchannel_logout_session_required: client
                .backchannel_logout
                .as_ref()
                .is_some_and(|b| b.session_required),
            explicit_auth_flows: client.auth_flows.iter().map(|f| f.as_str()).collect(),
        },
        links: SelfLink { self_: url },
    })
}

pub async fn create(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<CreateDocument>,
) -> Result<Response, ApiError> {
    check_type(body.data.kind.as_deref())?;
    let a = body.data.attributes;
    let new = NewAppClient {
        name: a.name,
        scopes: a.scopes,
        grant_types: a.grant_types,
        redirect_uris: a.redirect_uris,
        post_logout_redirect_uris: a.post_logout_redirect_uris,
        client_type: if a.public {
            ClientType::Public
        } else {
            ClientType::Confidential
        },
        third_party: a.third_party,
        backchannel_logout_uri: a.backchannel_logout_uri,
        backchannel_logout_session_required: a.backchannel_logout_session_required,
        auth_flows: a.explicit_auth_flows,
    };
    let (client, secret) = state
        .gh
        .create_app_client(&pool, &caller, new, &meta)
        .await?;
    let secret = secret.map(|s| s.expose().to_owned());
    let data = resource(&state, &pool, &client, secret)?;
    let location = HeaderValue::from_str(&data.links.self_).ok();
    let mut res = (StatusCode::CREATED, Json(Document { data })).into_response();
    if let Some(location) = location {
        res.headers_mut().insert(header::LOCATION, location);
    }
    // A secret is in this answer only; no cache may keep it.
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// A document's `data.type`, if given, must be this resource's (409 otherwise, as JSON:API
/// asks).
fn check_type(kind: Option<&str>) -> Result<(), ApiError> {
    match kind.filter(|k| *k != RESOURCE_TYPE) {
        Some(kind) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("data.type must be '{RESOURCE_TYPE}', not '{kind}'"),
        )),
        None => Ok(()),
    }
}

pub async fn update(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    IdPath(id): IdPath,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<UpdateDocument>,
) -> Result<Response, ApiError> {
    check_type(body.data.kind.as_deref())?;
    if body.data.id.as_deref().is_some_and(|given| given != id) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "data.id must be the client id in the path",
        ));
    }
    let update = AppClientUpdate {
        auth_flows: body.data.attributes.explicit_auth_flows,
    };
    let client = state
        .gh
        .update_app_client(&pool, &caller, &id, update, &meta)
        .await?;
    let data = resource(&state, &pool, &client, None)?;
    Ok(Json(Document { data }).into_response())
}

pub async fn list(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
) -> Result<Response, ApiError> {
    let clients = state.gh.list_app_clients(&pool, &caller).await?;
    let data = clients
        .iter()
        .map(|c| resource(&state, &pool, c, None))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(Document { data }).into_response())
}

pub async fn get_one(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    IdPath(id): IdPath,
) -> Result<Response, ApiError> {
    let client = state.gh.get_app_client(&pool, &caller, &id).await?;
    let data = resource(&state, &pool, &client, None)?;
    Ok(Json(Document { data }).into_response())
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
        .delete_app_client(&pool, &caller, &id, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    #[serde(default)]
    limit: Option<u32>,
}

#[derive(Debug, Serialize)]
struct DeliveryResource {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    attributes: DeliveryAttributes,
}

#[derive(Debug, Serialize)]
struct DeliveryAttributes {
    state: &'static str,
    /// The status of the last answer, if any.
    status: Option<u16>,
    attempts: u32,
    /// When the next attempt is due (while retrying or pending), RFC 3339.
    next_attempt_at: Option<String>,
    /// The last failure, in words.
    error: Option<String>,
    /// The logout token's `sid` and `sub`.
    sid: Option<String>,
    sub: String,
    uri: String,
    /// The security event (its SET `jti` and log cursor) that called for it.
    event_id: String,
    event_cursor: i64,
    created_at: String,
    updated_at: String,
}

/// `GET …/app-clients/{id}/backchannel-logout/deliveries?limit=`: the client's newest
/// back-channel logout deliveries, newest first (20 unless `limit`, at most 100).
pub async fn deliveries(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    IdPath(id): IdPath,
    super::ApiQuery(q): super::ApiQuery<DeliveriesQuery>,
) -> Result<Response, ApiError> {
    let found = state
        .gh
        .backchannel_deliveries(&pool, &caller, &id, q.limit.unwrap_or(20))
        .await?;
    let data: Vec<DeliveryResource> = found
        .into_iter()
        .map(|d| DeliveryResource {
            kind: "backchannel-logout-delivery",
            id: d.id,
            attributes: DeliveryAttributes {
                state: d.state.as_str(),
                status: d.status,
                attempts: d.attempts,
                next_attempt_at: d.next_attempt_at.map(|t| t.to_rfc3339()),
                error: d.error,
                sid: d.sid,
                sub: d.sub,
                uri: d.uri,
                event_id: d.event_id,
                event_cursor: d.event_seq,
                created_at: d.created_at.to_rfc3339(),
                updated_at: d.updated_at.to_rfc3339(),
            },
        })
        .collect();
    Ok(Json(Document { data }).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn create_documents_parse() {
        let doc: CreateDocument = serde_json::from_value(json!({
            "data": {"type": "app-client", "attributes": {"name": "billing", "scopes": ["user:GetUser"]}}
        }))
        .unwrap();
        assert_eq!(doc.data.attributes.name, "billing");
        assert_eq!(doc.data.kind.as_deref(), Some("app-client"));
        assert!(!doc.data.attributes.public && !doc.data.attributes.third_party);
        for bad in [
            json!({"data": {"type": "app-client", "attributes": {}}}),
            json!({"data": {"type": "app-client", "attributes": {"name": 3}}}),
            json!({"data": {"attributes": {"name": "x", "public": "yes"}}}),
            json!({"data": {"attributes": {"name": "x", "post_logout_redirect_uris": "https://a/"}}}),
            json!({"data": {"attributes": {"name": "x", "colour": "red"}}}),
            json!({"data": {"id": "chosen", "attributes": {"name": "x"}}}),
            json!({"name": "x"}),
            json!({"data": {"attributes": {"name": "x", "explicit_auth_flows": "ALLOW_CUSTOM_AUTH"}}}),
        ] {
            assert!(
                serde_json::from_value::<CreateDocument>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn update_documents_take_the_flows_only() {
        let doc: UpdateDocument = serde_json::from_value(json!({
            "data": {"type": "app-client", "id": "abc", "attributes": {"explicit_auth_flows": []}}
        }))
        .unwrap();
        assert_eq!(doc.data.attributes.explicit_auth_flows, Some(vec![]));
        for bad in [
            json!({"data": {"attributes": {"name": "renamed"}}}),
            json!({"data": {"attributes": {"explicit_auth_flows": [1]}}}),
            json!({"data": {}}),
        ] {
            assert!(
                serde_json::from_value::<UpdateDocument>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }
}
