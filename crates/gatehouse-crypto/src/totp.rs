//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP): HMAC-SHA-1, six digits,
//! 30-second steps, the shared secret written in base32 (RFC 4648) as authenticator apps
//! expect, and recovery codes.
//!
//! Which step a code was accepted at is returned so that the caller can refuse a second use
//! of it (RFC 6238 §5.2); replay tracking is the store's compare-and-set, not this module's.

use aws_lc_rs::{constant_time, hmac};

use crate::secret::{random_bytes, sha256};

/// The length of a step, in seconds.
pub const STEP_SECS: i64 = 30;
/// The number of digits of a code.
pub const DIGITS: usize = 6;
/// Steps accepted on either side of the current one (network delay, clock drift).
pub const WINDOW: i64 = 1;
/// The length of a new secret: 160 bits (RFC 4226 §4 R6).
pub const SECRET_LEN: usize = 20;
/// The number of recovery codes a confirmed enrollment gets.
pub const RECOVERY_CODES: usize = 10;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A new random secret.
pub fn new_secret() -> [u8; SECRET_LEN] {
    random_bytes::<SECRET_LEN>()
}

/// RFC 4648 base32 without padding, as `otpauth://` URIs carry it.
pub fn base32(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &b in data {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The step that `unix_secs` falls in.
pub fn step_at(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(STEP_SECS)
}

/// The HOTP value (RFC 4226 §5.3) of `secret` at counter `step`, as six digits.
pub fn code_at_step(secret: &[u8], step: i64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &step.to_be_bytes());
    let mac = tag.as_ref();
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let binary = (u32::from(mac[offset] & 0x7f) << 24)
        | (u32::from(mac[offset + 1]) << 16)
        | (u32::from(mac[offset + 2]) << 8)
        | u32::from(mac[offset + 3]);
    format!("{:0width$}", binary % 1_000_000, width = DIGITS)
}

/// The step within ±[`WINDOW`] of `unix_secs` at which `code` is `secret`'s code, latest
/// first; `None` when it is none of them or is not six digits. Every candidate is compared
/// in constant time.
pub fn matching_step(secret: &[u8], code: &str, unix_secs: i64) -> Option<i64> {
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_at(unix_secs);
    let mut found = None;
    for step in (now - WINDOW..=now + WINDOW).rev() {
        let candidate = code_at_step(secret, step);
        if constant_time::verify_slices_are_equal(candidate.as_bytes(), code.as_bytes()).is_ok()
            && found.is_none()
        {
            found = Some(step);
        }
    }
    found
}

/// A new recovery code: 50 random bits as ten base32 characters, shown in two groups of
/// five (`ABCDE-FGHIJ`).
pub fn new_recovery_code() -> String {
    let raw = base32(&random_bytes::<7>());
    format!("{}-{}", &raw[..5], &raw[5..10])
}

/// What is stored of a recovery code: the SHA-256 (hex) of its canonical form (upper case,
/// without separators or spaces), so that `abcde fghij` and `ABCDE-FGHIJ` are one code.
pub fn recovery_code_digest(code: &str) -> Option<String> {
    let canonical: String = code
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if canonical.len() != 10 || !canonical.bytes().all(|b| BASE32.contains(&b)) {
        return None;
    }
    Some(
        sha256(canonical.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc6238_sha1_vectors() {
        // RFC 6238 Appendix B, SHA-1, the last six of the eight digits.
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ] {
            assert_eq!(code_at_step(RFC_SECRET, step_at(time)), code, "at {time}");
        }
    }

    #[test]
    fn rfc4226_hotp_vectors() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (i, code) in expected.iter().enumerate() {
            assert_eq!(code_at_step(RFC_SECRET, i as i64), *code);
        }
    }

    #[test]
    fn window_is_one_step_either_side() {
        let t = 1_111_111_111;
        let now = step_at(t);
        for d in -1..=1 {
            let code = code_at_step(RFC_SECRET, now + d);
            assert_eq!(matching_step(RFC_SECRET, &code, t), Some(now + d));
        }
        for d in [-3, -2, 2, 3] {
            let code = code_at_step(RFC_SECRET, now + d);
            assert_eq!(matching_step(RFC_SECRET, &code, t), None, "{d} steps away");
        }
        assert_eq!(matching_step(RFC_SECRET, "12345", t), None);
        assert_eq!(matching_step(RFC_SECRET, "12345a", t), None);
        assert_eq!(matching_step(RFC_SECRET, "", t), None);
    }

    #[test]
    fn base32_matches_rfc4648() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(RFC_SECRET), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(base32(&new_secret()).len(), 32);
    }

    #[test]
    fn recovery_codes_are_distinct_and_canonical() {
        let a = new_recovery_code();
        assert_eq!(a.len(), 11);
        assert_ne!(a, new_recovery_code());
        let digest = recovery_code_digest(&a).unwrap();
        assert_eq!(
            recovery_code_digest(&a.to_lowercase().replace('-', " ")),
            Some(digest)
        );
        assert_eq!(recovery_code_digest("ABCDE-FGHI1"), None);
        assert_eq!(recovery_code_digest("short"), None);
    }
}
