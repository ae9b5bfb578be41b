//! How many SAML Responses `verify_response` checks per CPU-second (the assertion check alone:
//! base64, parsing, canonicalization, digest, RSA-2048 signature, conditions), next to the raw
//! RSA-2048 PKCS#1 verification rate of aws-lc-rs in the same run. The Response is samlify's
//! assertion-signed fixture (about 5 KB). Prints one JSON object (bench/run.py reads it).
//!
//! ```text
//! cargo run --release -p gatehouse-saml --example saml_verify_rate -- --seconds 3 --rounds 5
//! ```
//!
//! Both loops run on one thread, interleaved in rounds; CPU time is this process's (from
//! `/proc/self/stat`), so other load on the machine does not count.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    KeyPair as _, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair, UnparsedPublicKey,
};
use base64::Engine as _;
use gatehouse_saml::{IdpMetadata, InResponseTo, ResponseCheck, verify_response};

const RESPONSE: &str = include_str!("../tests/fixtures/response-assertion-signed.xml");
const METADATA: &str = include_str!("../tests/fixtures/idp-metadata.xml");
/// A minute into the fixture's window (2026-01-01T00:00:00Z to 00:05:00Z).
const NOW: i64 = 1_767_225_660;

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

fn arg(name: &str, default: f64) -> Result<f64, String> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name} takes a number")),
        None => Ok(default),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds = arg("--seconds", 3.0)?;
    let rounds = arg("--rounds", 5.0)?.max(1.0);
    let idp = IdpMetadata::parse(METADATA)?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(RESPONSE);
    let check = ResponseCheck {
        sp_entity_id: "https://gatehouse.test/pools/acme/saml2/metadata",
        acs_url: "https://gatehouse.test/pools/acme/saml2/idpresponse",
        idp: &idp,
        in_response_to: InResponseTo::Expected("_gatehouse-request-0001".to_owned()),
        now: NOW,
        skew: 60,
    };
    verify_response(&encoded, &check)?;

    let key = RsaKeyPair::generate(KeySize::Rsa2048)?;
    let message = vec![7u8; 600]; // about a canonical SignedInfo
    let mut sig = vec![0u8; key.public_modulus_len()];
    key.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), &message, &mut sig)?;
    let public = UnparsedPublicKey::new(
        &RSA_PKCS1_2048_8192_SHA256,
        key.public_key().as_ref().to_vec(),
    );

    let per_round = seconds / rounds;
    let (mut raw_n, mut raw_cpu, mut verify_n, mut verify_cpu) = (0u64, 0.0, 0u64, 0.0);
    for _ in 0..rounds as u32 {
        let start = cpu_seconds();
        while cpu_seconds() - start < per_round {
            for _ in 0..50 {
                public
                    .verify(&message, &sig)
                    .map_err(|_| "raw verification failed")?;
            }
            raw_n += 50;
        }
        raw_cpu += cpu_seconds() - start;

        let start = cpu_seconds();
        while cpu_seconds() - start < per_round {
            for _ in 0..20 {
                verify_response(&encoded, &check)?;
            }
            verify_n += 20;
        }
        verify_cpu += cpu_seconds() - start;
    }
    let raw_rate = raw_n as f64 / raw_cpu.max(1e-9);
    let verify_rate = verify_n as f64 / verify_cpu.max(1e-9);
    println!(
        "{{\"saml_verify_per_cpu_s\": {verify_rate:.1}, \"raw_rsa2048_per_cpu_s\": {raw_rate:.1}, \"ratio\": {:.4}, \"response_bytes\": {}, \"verifications\": {verify_n}, \"raw_verifications\": {raw_n}}}",
        verify_rate / raw_rate,
        RESPONSE.len()
    );
    Ok(())
}
