//! What went wrong with an upstream provider, said for the audit log and for the page the user
//! sees: which step failed and why, never a secret, a token or more than a short error code of
//! what the provider answered.

use std::fmt;

/// The call to the upstream that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Discovery,
    Jwks,
    Token,
    Userinfo,
    Profile,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Discovery => "discovery document",
            Self::Jwks => "key set (JWKS)",
            Self::Token => "token endpoint",
            Self::Userinfo => "userinfo endpoint",
            Self::Profile => "profile API",
        })
    }
}

/// Why an upstream's ID token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    #[error("it is not a well-formed signed JWT")]
    Malformed,
    #[error("its algorithm is not an accepted asymmetric one")]
    AlgorithmNotAllowed,
    #[error("its type is not JWT")]
    WrongType,
    #[error("it names no key of the provider's key set")]
    UnknownKey,
    #[error("its signature does not verify with the provider's key")]
    BadSignature,
    #[error("it lacks the claim '{0}' or the claim is malformed")]
    MissingClaim(&'static str),
    #[error("its issuer is not the provider's")]
    Issuer,
    #[error("its audience does not name this client")]
    Audience,
    #[error("its authorized party is not this client")]
    AuthorizedParty,
    #[error("it has expired")]
    Expired,
    #[error("it was issued in the future or is not valid yet")]
    NotYetValid,
    #[error("its nonce is not the one this sign-in sent")]
    Nonce,
    #[error("its at_hash does not match the access token")]
    AccessTokenHash,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// The provider's configuration cannot be used as it stands (a missing issuer, an
    /// endpoint that is not a URL).
    #[error("the identity provider is not configured correctly: {0}")]
    Config(String),
    /// The outbound policy refuses the call (a loopback, private or link-local address not in
    /// `outbound.allow`, plain http, an answer too large).
    #[error("the call to the identity provider's {step} was refused: {reason}")]
    Refused { step: Step, reason: String },
    /// The call got no answer (connection, TLS, timeout).
    #[error("the identity provider's {step} could not be reached: {reason}")]
    Unreachable { step: Step, reason: String },
    /// The endpoint answered with a redirect, which is never followed.
    #[error(
        "the identity provider's {step} answered with a redirect (HTTP {status}), which is not followed"
    )]
    Redirected { step: Step, status: u16 },
    /// The endpoint answered with an error status; `error` is the OAuth error code it gave,
    /// when it gave a well-formed one.
    #[error("the identity provider's {step} answered HTTP {status}{}", error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default())]
    Status {
        step: Step,
        status: u16,
        error: Option<String>,
    },
    /// The answer is not what the protocol says it is.
    #[error("the identity provider's {step} answered something malformed: {reason}")]
    Malformed { step: Step, reason: &'static str },
    /// Discovery names another issuer than the configured one (a mix-up or a misconfiguration).
    #[error("the discovery document names the issuer '{found}', not the configured '{configured}'")]
    IssuerMismatch { configured: String, found: String },
    /// The provider supports no client authentication Gatehouse uses.
    #[error("the identity provider supports neither client_secret_basic nor client_secret_post")]
    UnsupportedClientAuth,
    /// The provider sent the user back with an error (the user declined, for one).
    #[error("the identity provider refused the sign-in ({0})")]
    Denied(String),
    /// The callback's `state` is not the one this sign-in sent.
    #[error("the sign-in's state does not match")]
    StateMismatch,
    /// The callback names another issuer (RFC 9207) than this provider's.
    #[error("the response comes from another issuer")]
    WrongResponseIssuer,
    /// The callback is not a usable authorization response (no code, a repeated parameter).
    #[error("the identity provider's response is not usable: {0}")]
    Callback(&'static str),
    #[error("the identity provider's ID token was refused: {0}")]
    IdToken(#[from] IdTokenError),
}

/// An OAuth error code fit to repeat: RFC 6749's character set (printable ASCII without `"`
/// and `\`), at most 64 characters.
pub(crate) fn error_code(code: &str) -> Option<String> {
    let ok = !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\');
    ok.then(|| code.to_owned())
}
