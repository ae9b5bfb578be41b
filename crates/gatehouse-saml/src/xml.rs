//! Parsing under caps, namespace constants and the few helpers every reader needs.

use base64::Engine as _;
use roxmltree::{Document, Node, ParsingOptions};

use crate::error::SamlError;

pub(crate) const NS_SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub(crate) const NS_SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub(crate) const NS_MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
pub(crate) const NS_DS: &str = "http://www.w3.org/2000/09/xmldsig#";
pub(crate) const NS_XENC: &str = "http://www.w3.org/2001/04/xmlenc#";
pub(crate) const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";

pub(crate) const BINDING_REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
pub(crate) const BINDING_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
pub(crate) const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";

/// The largest decoded XML document accepted (a message or a metadata document).
pub const MAX_XML_BYTES: usize = 256 * 1024;
/// The most nodes one document may hold; a SAML response has a few hundred.
const MAX_NODES: u32 = 20_000;
/// The deepest element nesting accepted; a SAML response nests about ten deep.
const MAX_DEPTH: usize = 64;

/// Parses a document after the size cap, refusing any document type declaration.
pub(crate) fn parse(xml: &str) -> Result<Document<'_>, SamlError> {
    if xml.len() > MAX_XML_BYTES {
        return Err(SamlError::TooLarge {
            limit: MAX_XML_BYTES,
        });
    }
    // roxmltree refuses DTDs with content; an empty `<!DOCTYPE x>` it would accept. SAML has
    // no use for either, so any declaration is refused before parsing.
    if xml.contains("<!DOCTYPE") {
        return Err(SamlError::DtdRefused);
    }
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
    };
    let doc = Document::parse_with_options(xml, options).map_err(|e| match e {
        roxmltree::Error::DtdDetected => SamlError::DtdRefused,
        other => SamlError::Xml(crate::error::excerpt(&other.to_string())),
    })?;
    // Canonicalization recurses over elements: their depth is bounded.
    if doc
        .descendants()
        .any(|n| n.is_element() && n.ancestors().nth(MAX_DEPTH).is_some())
    {
        return Err(SamlError::Structure("elements nested too deep"));
    }
    Ok(doc)
}

/// Decodes base64 that may hold line breaks (as the HTTP-POST binding often carries it),
/// capping the text and the decoded size before any work.
pub(crate) fn decode_base64_capped(text: &str, cap: usize) -> Result<Vec<u8>, SamlError> {
    // Base64 carries 3 bytes in 4 characters; line breaks and padding get generous room.
    let text_cap = cap / 3 * 4 + cap / 8 + 16;
    if text.len() > text_cap {
        return Err(SamlError::TooLarge { limit: cap });
    }
    let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .map_err(|_| SamlError::Base64)?;
    if bytes.len() > cap {
        return Err(SamlError::TooLarge { limit: cap });
    }
    Ok(bytes)
}

pub(crate) fn is(node: Node<'_, '_>, ns: &str, name: &str) -> bool {
    node.is_element() && node.tag_name().name() == name && node.tag_name().namespace() == Some(ns)
}

/// The element children of `node` with this name.
pub(crate) fn children<'a, 'i>(
    node: Node<'a, 'i>,
    ns: &'static str,
    name: &'static str,
) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(move |c| is(*c, ns, name))
}

/// The one child of this name: none is `Ok(None)`, two are refused.
pub(crate) fn child<'a, 'i>(
    node: Node<'a, 'i>,
    ns: &'static str,
    name: &'static str,
) -> Result<Option<Node<'a, 'i>>, SamlError> {
    let mut it = children(node, ns, name);
    let first = it.next();
    if it.next().is_some() {
        return Err(SamlError::Structure(name));
    }
    Ok(first)
}

pub(crate) fn required_child<'a, 'i>(
    node: Node<'a, 'i>,
    ns: &'static str,
    name: &'static str,
) -> Result<Node<'a, 'i>, SamlError> {
    child(node, ns, name)?.ok_or(SamlError::Missing(name))
}

/// The whole text content of an element with simple content: every text node (CDATA
/// included), comments and processing instructions skipped, so a comment inserted in a value
/// never truncates it. An element child is refused.
pub(crate) fn text(node: Node<'_, '_>) -> Result<String, SamlError> {
    let mut out = String::new();
    for c in node.children() {
        if c.is_element() {
            return Err(SamlError::Structure(
                "element content where text is expected",
            ));
        }
        if c.is_text() {
            out.push_str(c.text().unwrap_or_default());
        }
    }
    Ok(out)
}

/// Trimmed text, for values whose surrounding white space has no meaning (IDs, URIs, base64).
pub(crate) fn trimmed_text(node: Node<'_, '_>) -> Result<String, SamlError> {
    Ok(text(node)?.trim().to_owned())
}

/// An xs:dateTime as Unix seconds (fractions dropped). A time zone is required.
pub(crate) fn parse_time(s: &str) -> Result<i64, SamlError> {
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .map_err(|_| SamlError::Invalid("time"))?;
    Ok(t.unix_timestamp())
}

pub(crate) fn format_time(unix: i64) -> Result<String, SamlError> {
    let t =
        time::OffsetDateTime::from_unix_timestamp(unix).map_err(|_| SamlError::Invalid("time"))?;
    Ok(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

/// Escapes text for an attribute value or element content.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A fresh message ID: `_` and 160 random bits in hex (an xs:ID must not start with a digit).
pub(crate) fn random_id() -> Result<String, SamlError> {
    let mut bytes = [0u8; 20];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| SamlError::Key("randomness unavailable"))?;
    let mut id = String::with_capacity(41);
    id.push('_');
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    Ok(id)
}
