//! Host-bound pools: a request whose `Host` is bound to a pool is served as if it had been
//! made under that pool's base URL (`Host: acme.example.com`, `/api/auth/oauth2/token` →
//! `/pools/acme/api/auth/oauth2/token`).

use axum::extract::{Request, State};
use axum::http::{Uri, header};
use axum::middleware::Next;
use axum::response::Response;
use gatehouse_domain::pool::HostName;

use crate::AppState;

fn host_of(req: &Request) -> Option<HostName> {
    let raw = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().host())?;
    let name = match raw.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => raw,
    };
    HostName::parse(name).ok()
}

pub async fn route_by_host(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    let is_global = path.starts_with("/pools/")
        || path == "/healthz"
        || path == "/readyz"
        || path == "/metrics"
        || path.starts_with("/api/pools")
        || path == "/api/openapi.json"
        || path.starts_with("/.well-known/ssf-configuration/pools/");
    if let Some(host) = host_of(&req).filter(|_| !is_global) {
        match state.gh.pool_for_host(&host).await {
            Ok(Some(pool)) => {
                let pq = req
                    .uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_owned();
                if let Ok(uri) = format!("/pools/{}{}", pool.slug, pq).parse::<Uri>() {
                    *req.uri_mut() = uri;
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "host lookup failed"),
        }
    }
    next.run(req).await
}
