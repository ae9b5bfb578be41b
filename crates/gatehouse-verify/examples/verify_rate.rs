//! How many access tokens `gatehouse-verify` validates per CPU-second, next to the raw ES256
//! signature verification rate of aws-lc-rs measured in the same run, with 100,000 entries in
//! the revocation state. Prints one JSON object (bench/run.py reads it).
//!
//! ```text
//! cargo run --release -p gatehouse-verify --example verify_rate -- --seconds 3
//! ```
//!
//! Both loops run on one thread, interleaved in rounds; CPU time is this process's (from
//! `/proc/self/stat`), so other load on the machine does not count.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use axum::Json;
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Parser;
use gatehouse_crypto::jws;
use gatehouse_crypto::keys::{SigningKey, generate};
use gatehouse_domain::pool::SigningAlg;
use gatehouse_verify::{Effect, Verifier};
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// CPU seconds per side, split over the rounds.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Entries in the revocation state.
    #[arg(long, default_value_t = 100_000)]
    entries: usize,
    #[arg(long, default_value_t = 5)]
    rounds: u32,
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime (fields 14 and 15 of the whole line), at 100 ticks a second.
    (ticks(11) + ticks(12)) / 100.0
}

fn now() -> i64 {
    use gatehouse_verify::Clock;
    gatehouse_verify::SystemClock.unix_seconds()
}

/// The pool as a verifier sees it, in this process: discovery, JWKS, token, an empty feed.
async fn serve_pool(jwks: Value) -> Result<String, std::io::Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let issuer = format!("http://{}/pools/bench", listener.local_addr()?);
    let i = issuer.clone();
    let app = axum::Router::new()
        .route(
            "/pools/bench/.well-known/openid-configuration",
            get(move || async move {
                Json(json!({"issuer": i, "jwks_uri": format!("{i}/jwks"),
                            "token_endpoint": format!("{i}/token")}))
            }),
        )
        .route("/pools/bench/jwks", get(move || async move { Json(jwks) }))
        .route(
            "/pools/bench/token",
            post(|| async { Json(json!({"access_token": "t", "expires_in": 3600})) }),
        )
        .route(
            "/pools/bench/api/auth/revocations",
            get(|| async { Json(json!({"items": [], "next": 0})) }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(issuer)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let generated = generate(SigningAlg::ES256)?;
    let key = Arc::new(SigningKey::from_pkcs8_with_kid(
        SigningAlg::ES256,
        &generated.pkcs8,
        Some("bench-1"),
    )?);
    let issuer = serve_pool(json!({ "keys": [key.public_jwk()] })).await?;
    let verifier = Verifier::builder(&issuer)
        .feed_credentials("bench", "bench")
        .stale_after(Duration::from_secs(3600))
        .poll_interval(Duration::from_secs(60))
        .build()
        .await?;

    // 100,000 entries, a quarter of each kind; no token below is among them.
    let at = now();
    let effects: Vec<Effect> = (0..args.entries)
        .map(|i| match i % 4 {
            0 => Effect::Session {
                sid: format!("revoked-session-{i}"),
                at,
            },
            1 => Effect::Token {
                jti: format!("revoked-jti-{i}"),
                at,
            },
            2 => Effect::User {
                sub: format!("revoked-user-{i}"),
                at,
            },
            _ => Effect::Group {
                name: format!("revoked-group-{i}"),
                at,
            },
        })
        .collect();
    verifier.apply_effects_for_testing(&effects);
    let entries = verifier.health().revocation_entries;

    // Tokens shaped as Gatehouse's user tokens.
    let tokens: Vec<String> = (0..64)
        .map(|i| {
            jws::sign(
                &key,
                "at+jwt",
                &json!({"iss": issuer, "sub": format!("user-{i}"), "aud": issuer,
                    "exp": at + 3600, "iat": at, "jti": format!("jti-{i}"),
                    "client_id": "web", "scope": "openid profile", "sid": format!("session-{i}"),
                    "username": format!("user{i}"), "groups": ["staff", "ops"],
                    "roles": ["support"], "token_use": "access"}),
            )
        })
        .collect::<Result<_, _>>()?;
    for t in &tokens {
        verifier.verify(t).await?;
    }
    // The raw rate: the same signatures over the same signing inputs, straight to aws-lc-rs.
    let point = {
        let jwk = key.public_jwk();
        let mut p = vec![4u8];
        p.extend(URL_SAFE_NO_PAD.decode(jwk.x.as_deref().unwrap_or_default())?);
        p.extend(URL_SAFE_NO_PAD.decode(jwk.y.as_deref().unwrap_or_default())?);
        p
    };
    let raw_inputs: Vec<(Vec<u8>, Vec<u8>)> = tokens
        .iter()
        .map(|t| {
            let (input, sig) = t.rsplit_once('.').unwrap_or_default();
            (
                input.as_bytes().to_vec(),
                URL_SAFE_NO_PAD.decode(sig).unwrap_or_default(),
            )
        })
        .collect();

    let per_round = args.seconds / f64::from(args.rounds);
    let (mut raw_n, mut raw_cpu, mut verify_n, mut verify_cpu) = (0u64, 0.0, 0u64, 0.0);
    for _ in 0..args.rounds {
        let start = cpu_seconds();
        while cpu_seconds() - start < per_round {
            for (input, sig) in &raw_inputs {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
                    .verify(input, sig)
                    .map_err(|_| "raw verification failed")?;
            }
            raw_n += raw_inputs.len() as u64;
        }
        raw_cpu += cpu_seconds() - start;

        let start = cpu_seconds();
        while cpu_seconds() - start < per_round {
            for t in &tokens {
                verifier.verify(t).await?;
            }
            verify_n += tokens.len() as u64;
        }
        verify_cpu += cpu_seconds() - start;
    }
    let raw_rate = raw_n as f64 / raw_cpu.max(1e-9);
    let verify_rate = verify_n as f64 / verify_cpu.max(1e-9);
    let calls = verifier.health().calls;
    println!(
        "{}",
        json!({
            "raw_es256_per_cpu_s": raw_rate,
            "verify_per_cpu_s": verify_rate,
            "ratio": verify_rate / raw_rate,
            "revocation_entries": entries,
            "raw_verifications": raw_n,
            "validations": verify_n,
            "calls_to_gatehouse": calls,
        })
    );
    Ok(())
}
