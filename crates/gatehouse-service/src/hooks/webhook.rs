//! Hooks as HTTPS webhooks: the event is POSTed as JSON, signed with the hook's secret in
//! `X-Gatehouse-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` (the
//! receiver checks it and the time), through the outbound policy; each attempt has five
//! seconds and there are three, as Cognito gives its triggers. A 2xx answer's body is the
//! event with `response` filled in; a 4xx is final; no answer, a 429 or a 5xx is tried again.

use std::time::Duration;

use gatehouse_crypto::secret::{Secret, hmac_sha256};
use gatehouse_domain::hooks::Trigger;

use super::{MAX_ANSWER_BYTES, hex};
use crate::Gatehouse;

const ATTEMPTS: u32 = 3;
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-gatehouse-signature";

/// The signature header's value for `body` sent at `t`.
pub fn signature(secret: &Secret, t: i64, body: &[u8]) -> String {
    let mut message = format!("{t}.").into_bytes();
    message.extend_from_slice(body);
    format!(
        "t={t},v1={}",
        hex(&hmac_sha256(secret.expose().as_bytes(), &message))
    )
}

impl Gatehouse {
    pub(super) async fn call_webhook(
        &self,
        url: &str,
        secret: &Secret,
        trigger: Trigger,
        body: String,
    ) -> Result<String, String> {
        let body = body.into_bytes();
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            let t = self.now().as_secs();
            let signed = signature(secret, t, &body);
            let answer = self
                .outbound
                .post_whole(
                    url,
                    "application/json",
                    &[
                        (SIGNATURE_HEADER, signed.as_str()),
                        ("x-gatehouse-trigger", trigger.as_str()),
                    ],
                    body.clone(),
                    MAX_ANSWER_BYTES,
                    ATTEMPT_TIMEOUT,
                )
                .await;
            match answer {
                Ok(reply) if (200..300).contains(&reply.status) => {
                    return String::from_utf8(reply.body)
                        .map_err(|_| "the webhook answered what is not UTF-8".to_owned());
                }
                Ok(reply) if reply.status == 429 || reply.status >= 500 => {
                    last = format!("the webhook answered {}", reply.status);
                }
                Ok(reply) => return Err(format!("the webhook answered {}", reply.status)),
                Err(crate::outbound::OutboundError::Refused(e)) => {
                    return Err(format!("the outbound policy refuses the webhook: {e}"));
                }
                Err(crate::outbound::OutboundError::Transport(e)) => last = e,
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
        }
        Err(format!("no answer after {ATTEMPTS} attempts: {last}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_of_time_dot_body() {
        // HMAC-SHA256("key", "1700000000.{}") computed independently (Python's hmac module).
        let s = signature(&Secret::new("key"), 1_700_000_000, b"{}");
        assert_eq!(
            s,
            "t=1700000000,v1=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
        assert_ne!(s, signature(&Secret::new("key"), 1_700_000_001, b"{}"));
        assert_ne!(s, signature(&Secret::new("kez"), 1_700_000_000, b"{}"));
    }
}
