//! A service protected by `gatehouse-verify`: it verifies the pool's access tokens itself and
//! follows the pool's revocation feed, so a revoked token is refused without asking Gatehouse.
//!
//! ```text
//! cargo run -p gatehouse-verify --example protected_service -- \
//!     --issuer https://gatehouse.example/pools/acme --client-id ID --client-secret SECRET \
//!     --listen 127.0.0.1:0
//! ```
//!
//! Prints `listening on ADDR` first. `GET /whoami` (a bearer token required) answers
//! `{sub, username, sid}`; `GET /health` answers the verifier's state and call counters.

use std::time::Duration;

use axum::Json;
use axum::routing::get;
use clap::{Parser, ValueEnum};
use gatehouse_verify::{StalenessPolicy, VerifiedToken, Verifier, VerifyLayer};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(about = "An example service that verifies a Gatehouse pool's tokens locally")]
struct Args {
    /// The pool's issuer, e.g. https://gatehouse.example/pools/acme.
    #[arg(long)]
    issuer: String,
    /// An audience tokens must name (repeatable; default: the issuer).
    #[arg(long)]
    audience: Vec<String>,
    /// An app client of the pool holding `auth:RetrieveRevocations`.
    #[arg(long)]
    client_id: String,
    #[arg(long, env = "GATEHOUSE_VERIFY_CLIENT_SECRET")]
    client_secret: String,
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// What to do when the feed falls silent.
    #[arg(long, value_enum, default_value = "fail-closed")]
    staleness: Staleness,
    /// How long the feed may be silent before it is stale, in milliseconds.
    #[arg(long, default_value_t = 15_000)]
    stale_after_ms: u64,
    /// Reach the issuer's host NAME at ADDR instead of resolving it (`NAME=IP:PORT`,
    /// repeatable): an instance of Gatehouse behind the public name, as inside a cluster.
    #[arg(long, value_parser = parse_resolve)]
    resolve: Vec<(String, std::net::SocketAddr)>,
}

fn parse_resolve(s: &str) -> Result<(String, std::net::SocketAddr), String> {
    let (name, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not NAME=IP:PORT"))?;
    let addr = addr
        .parse()
        .map_err(|e| format!("'{addr}' is not IP:PORT: {e}"))?;
    Ok((name.to_owned(), addr))
}

#[derive(Clone, Copy, ValueEnum)]
enum Staleness {
    FailClosed,
    Introspect,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let mut builder = Verifier::builder(&args.issuer)
        .feed_credentials(&args.client_id, &args.client_secret)
        .stale_after(Duration::from_millis(args.stale_after_ms))
        .staleness_policy(match args.staleness {
            Staleness::FailClosed => StalenessPolicy::FailClosed,
            Staleness::Introspect => StalenessPolicy::Introspect,
        });
    for audience in &args.audience {
        builder = builder.audience(audience);
    }
    if !args.resolve.is_empty() {
        let mut client = reqwest::Client::builder();
        for (name, addr) in &args.resolve {
            client = client.resolve(name, *addr);
        }
        builder = builder.http_client(client.build()?);
    }
    let verifier = builder.build().await?;
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", listener.local_addr()?)?;
        out.flush()?;
    }

    let health = verifier.clone();
    let app = axum::Router::new()
        .route("/whoami", get(whoami))
        .layer(VerifyLayer::new(verifier))
        .route(
            "/health",
            get(move || async move { Json(json!(health.health())) }),
        );
    axum::serve(listener, app).await?;
    Ok(())
}

async fn whoami(VerifiedToken(claims): VerifiedToken) -> Json<Value> {
    Json(json!({
        "sub": claims.sub,
        "username": claims.username,
        "sid": claims.sid,
    }))
}
