//! What failed, named for an audit log. No variant carries more than a short excerpt of input.

/// Why a SAML message, a metadata document or a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SamlError {
    /// The input is larger than the cap set before any parsing.
    #[error("the document is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The base64 text could not be decoded.
    #[error("the message is not valid base64")]
    Base64,
    /// DEFLATE data of the HTTP-Redirect binding could not be inflated.
    #[error("the message is not valid DEFLATE data")]
    Deflate,
    /// The document is not UTF-8.
    #[error("the document is not UTF-8")]
    Utf8,
    /// A document type declaration: never accepted (entity expansion, external entities).
    #[error("the document has a document type declaration")]
    DtdRefused,
    /// The XML is not well-formed (or exceeds the parser's node limit).
    #[error("the XML is not well-formed: {0}")]
    Xml(String),
    /// The document's root or a required element is not what the protocol requires.
    #[error("unexpected document structure: {0}")]
    Structure(&'static str),
    /// A required element or attribute is missing.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A value (a time, a URL, a certificate) could not be read.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// Two elements carry the same ID: a signature-wrapping attempt or a broken document.
    #[error("duplicate ID attribute in the document")]
    DuplicateId,
    /// There is not exactly one Assertion in the Response.
    #[error("the response must hold exactly one assertion, it holds {0}")]
    AssertionCount(usize),
    /// An EncryptedAssertion (or EncryptedID / EncryptedAttribute): not supported yet.
    #[error("encrypted assertions are not supported")]
    EncryptedUnsupported,
    /// Neither the Response nor the Assertion carries an enveloped signature.
    #[error("neither the response nor the assertion is signed")]
    Unsigned,
    /// A signature's reference does not name the element that encloses it.
    #[error("the signature does not reference its enclosing element")]
    ReferenceMismatch,
    /// SHA-1 in a signature or digest method: refused.
    #[error("SHA-1 is refused")]
    Sha1Refused,
    /// An algorithm or transform Gatehouse does not accept.
    #[error("unsupported algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// The digest of the referenced element does not match: the content was changed.
    #[error("the digest of the signed element does not match")]
    DigestMismatch,
    /// No certificate of the IdP's metadata verifies the signature.
    #[error("the signature does not verify with the identity provider's keys")]
    BadSignature,
    /// The metadata holds no usable signing certificate.
    #[error("the identity provider's metadata has no usable signing certificate")]
    NoSigningKey,
    /// The message is not from the expected identity provider.
    #[error("unexpected issuer")]
    IssuerMismatch,
    /// The Response's Destination is not this SP's assertion consumer service (or logout URL).
    #[error("unexpected destination")]
    DestinationMismatch,
    /// A signed Response must name its Destination.
    #[error("a signed response must carry a Destination")]
    DestinationMissing,
    /// The assertion is not for this SP.
    #[error("the assertion is not for this audience")]
    AudienceMismatch,
    /// No bearer SubjectConfirmation for this SP's assertion consumer service.
    #[error("no bearer subject confirmation for this recipient")]
    RecipientMismatch,
    /// The message answers another request (or answers one when none was expected).
    #[error("unexpected InResponseTo")]
    InResponseToMismatch,
    /// The assertion or confirmation has expired.
    #[error("the assertion has expired")]
    Expired,
    /// The assertion is not valid yet.
    #[error("the assertion is not valid yet")]
    NotYetValid,
    /// The IdP answered with a status other than Success.
    #[error("the identity provider answered {0}")]
    Status(String),
    /// The assertion has no AuthnStatement.
    #[error("the assertion has no authentication statement")]
    NoAuthnStatement,
    /// The identity provider offers no endpoint for this binding.
    #[error("the identity provider has no {0} endpoint")]
    NoEndpoint(&'static str),
    /// A key or certificate could not be made or read.
    #[error("key error: {0}")]
    Key(&'static str),
}

/// Keeps at most a short excerpt of an input-derived value for an error.
pub(crate) fn excerpt(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
