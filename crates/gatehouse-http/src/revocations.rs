//! The revocation feed: `GET {base}/api/auth/revocations?after=&limit=`, the pool's security
//! events as signed SETs, each with its cursor, for services that verify tokens themselves,
//! and its snapshot (`…/revocations/snapshot`). The stream is in `revocation_stream.rs`.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use gatehouse_service::security_events::FEED_PAGE_MAX;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::admin::ApiQuery;
use crate::error::{ApiError, no_store};
use crate::extract::{Authenticated, PoolCtx};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedParams {
    after: Option<String>,
    limit: Option<String>,
}

#[derive(Serialize)]
struct FeedItem {
    cursor: i64,
    set: String,
}

#[derive(Serialize)]
struct Feed {
    items: Vec<FeedItem>,
    next: i64,
}

fn number<T: std::str::FromStr>(
    name: &str,
    value: Option<&str>,
    default: T,
) -> Result<T, ApiError> {
    match value {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| ApiError::bad_request(format!("{name}: '{v}' is not a whole number"))),
    }
}

pub async fn feed(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    ApiQuery(params): ApiQuery<FeedParams>,
) -> Result<Response, ApiError> {
    let after = number("after", params.after.as_deref(), 0i64)?;
    let limit = number("limit", params.limit.as_deref(), FEED_PAGE_MAX)?;
    let page = state
        .gh
        .revocation_feed(&pool, &caller, after, limit)
        .await?;
    Ok(fresh(Feed {
        items: feed_items(page.items),
        next: page.next,
    }))
}

/// The feed's items as the API shows them.
fn feed_items<S: ToString>(items: Vec<(i64, S)>) -> Vec<FeedItem> {
    items
        .into_iter()
        .map(|(cursor, set)| FeedItem {
            cursor,
            set: set.to_string(),
        })
        .collect()
}

/// A JSON answer no cache may keep.
fn fresh(body: impl Serialize) -> Response {
    let mut res = Json(body).into_response();
    no_store(&mut res);
    res
}

#[derive(Serialize)]
struct Snapshot {
    cursor: i64,
    retention_seconds: i64,
    items: Vec<FeedItem>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotParams {}

/// `GET {base}/api/auth/revocations/snapshot`: every event still in effect, compacted, with
/// the cursor to follow the feed from.
pub async fn snapshot(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    ApiQuery(_): ApiQuery<SnapshotParams>,
) -> Result<Response, ApiError> {
    let snapshot = state.gh.revocation_snapshot(&pool, &caller).await?;
    Ok(fresh(Snapshot {
        cursor: snapshot.cursor,
        retention_seconds: snapshot.retention_seconds,
        items: feed_items(snapshot.items),
    }))
}
