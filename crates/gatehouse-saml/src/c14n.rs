//! Exclusive XML Canonicalization 1.0 (<https://www.w3.org/TR/xml-exc-c14n/>) of one element's
//! subtree, optionally without one descendant (the enveloped-signature transform).
//!
//! The document has been parsed by roxmltree, which has already normalised line ends and
//! attribute values, resolved character and the five predefined entity references, and folded
//! CDATA sections into text, as the XPath data model that canonicalization starts from does.

use roxmltree::{Node, NodeId};

use crate::error::SamlError;
use crate::xml::NS_XML;

/// Whether comments are part of the output (the `#WithComments` variants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comments {
    Omit,
    Keep,
}

/// The canonical form of `apex` and its descendants, leaving out `exclude` and its subtree.
/// `inclusive` is the InclusiveNamespaces PrefixList (`#default` for the default namespace).
pub(crate) fn canonicalize(
    apex: Node<'_, '_>,
    exclude: Option<NodeId>,
    comments: Comments,
    inclusive: &[String],
) -> Result<Vec<u8>, SamlError> {
    let mut c = Canon {
        out: String::with_capacity(4096),
        rendered: Vec::new(),
        exclude,
        comments,
        inclusive,
    };
    c.element(apex)?;
    Ok(c.out.into_bytes())
}

struct Canon<'s> {
    out: String,
    /// Namespace declarations in force in the output: (prefix, "" for the default; URI).
    rendered: Vec<(String, String)>,
    exclude: Option<NodeId>,
    comments: Comments,
    inclusive: &'s [String],
}

/// The qualified name an element was written with, read from the source text.
fn element_qname<'i>(node: Node<'_, 'i>) -> Result<&'i str, SamlError> {
    let text = node.document().input_text();
    let start = node.range().start + 1;
    let rest = text
        .get(start..)
        .ok_or(SamlError::Structure("element position"))?;
    let end = rest
        .find(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>')
        .ok_or(SamlError::Structure("element name"))?;
    Ok(&rest[..end])
}

fn prefix_of(qname: &str) -> &str {
    match qname.split_once(':') {
        Some((prefix, _)) => prefix,
        None => "",
    }
}

impl Canon<'_> {
    fn lookup_rendered(&self, prefix: &str) -> Option<&str> {
        self.rendered
            .iter()
            .rev()
            .find(|(p, _)| p == prefix)
            .map(|(_, uri)| uri.as_str())
    }

    fn element(&mut self, node: Node<'_, '_>) -> Result<(), SamlError> {
        let qname = element_qname(node)?;
        let doc_text = node.document().input_text();

        // The prefixes this element visibly uses, and those the PrefixList names.
        let mut needed: Vec<&str> = vec![prefix_of(qname)];
        let mut attrs = Vec::new();
        for a in node.attributes() {
            let aq = doc_text
                .get(a.range_qname())
                .ok_or(SamlError::Structure("attribute position"))?;
            let p = prefix_of(aq);
            if !p.is_empty() && p != "xml" {
                needed.push(p);
            }
            attrs.push((a.namespace().unwrap_or(""), a.name(), aq, a.value()));
        }
        for p in self.inclusive {
            let p = if p == "#default" { "" } else { p.as_str() };
            let in_scope = if p.is_empty() {
                node.default_namespace().is_some()
            } else {
                node.lookup_namespace_uri(Some(p)).is_some()
            };
            if in_scope {
                needed.push(p);
            }
        }
        needed.sort_unstable();
        needed.dedup();

        let frame = self.rendered.len();
        self.out.push('<');
        self.out.push_str(qname);
        for p in needed {
            let uri = if p.is_empty() {
                node.default_namespace().unwrap_or("")
            } else {
                node.lookup_namespace_uri(Some(p))
                    .ok_or(SamlError::Structure("undeclared namespace prefix"))?
            };
            if p == "xml" || uri == NS_XML {
                continue;
            }
            let rendered = self.lookup_rendered(p).unwrap_or("");
            if rendered == uri {
                continue;
            }
            if p.is_empty() {
                self.out.push_str(" xmlns=\"");
            } else {
                self.out.push_str(" xmlns:");
                self.out.push_str(p);
                self.out.push_str("=\"");
            }
            escape_attr(&mut self.out, uri);
            self.out.push('"');
            self.rendered.push((p.to_owned(), uri.to_owned()));
        }
        attrs.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        for (_, _, aq, value) in attrs {
            self.out.push(' ');
            self.out.push_str(aq);
            self.out.push_str("=\"");
            escape_attr(&mut self.out, value);
            self.out.push('"');
        }
        self.out.push('>');

        for child in node.children() {
            if Some(child.id()) == self.exclude {
                continue;
            }
            match child.node_type() {
                roxmltree::NodeType::Element => self.element(child)?,
                roxmltree::NodeType::Text => escape_text(&mut self.out, child.text().unwrap_or("")),
                roxmltree::NodeType::Comment => {
                    if self.comments == Comments::Keep {
                        self.out.push_str("<!--");
                        self.out.push_str(child.text().unwrap_or(""));
                        self.out.push_str("-->");
                    }
                }
                roxmltree::NodeType::PI => {
                    if let Some(pi) = child.pi() {
                        self.out.push_str("<?");
                        self.out.push_str(pi.target);
                        if let Some(value) = pi.value.filter(|v| !v.is_empty()) {
                            self.out.push(' ');
                            self.out.push_str(value);
                        }
                        self.out.push_str("?>");
                    }
                }
                roxmltree::NodeType::Root => {}
            }
        }

        self.out.push_str("</");
        self.out.push_str(qname);
        self.out.push('>');
        self.rendered.truncate(frame);
        Ok(())
    }
}

fn escape_text(out: &mut String, s: &str) {
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

fn escape_attr(out: &mut String, s: &str) {
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(xml: &str, comments: Comments) -> String {
        let doc = roxmltree::Document::parse(xml).unwrap();
        String::from_utf8(canonicalize(doc.root_element(), None, comments, &[]).unwrap()).unwrap()
    }

    #[test]
    fn sorts_attributes_and_renders_only_used_namespaces() {
        let xml = r#"<a:r xmlns:a="urn:a" xmlns:b="urn:b" xmlns:unused="urn:u" z="1" b:y="2" a:x="3"><a:c/><d xmlns="urn:d">t &amp; &lt; &gt;</d></a:r>"#;
        assert_eq!(
            canon(xml, Comments::Omit),
            r#"<a:r xmlns:a="urn:a" xmlns:b="urn:b" z="1" a:x="3" b:y="2"><a:c></a:c><d xmlns="urn:d">t &amp; &lt; &gt;</d></a:r>"#
        );
    }

    #[test]
    fn subtree_carries_namespaces_declared_above_it() {
        let xml = r#"<r xmlns="urn:r" xmlns:s="urn:s"><s:k><s:v>1</s:v><w/></s:k></r>"#;
        let doc = roxmltree::Document::parse(xml).unwrap();
        let k = doc.root_element().first_element_child().unwrap();
        let out = String::from_utf8(canonicalize(k, None, Comments::Omit, &[]).unwrap()).unwrap();
        assert_eq!(
            out,
            r#"<s:k xmlns:s="urn:s"><s:v>1</s:v><w xmlns="urn:r"></w></s:k>"#
        );
    }

    #[test]
    fn undeclares_the_default_namespace_when_it_changes_to_none() {
        let xml = r#"<r xmlns="urn:r"><x xmlns=""/></r>"#;
        assert_eq!(
            canon(xml, Comments::Omit),
            r#"<r xmlns="urn:r"><x xmlns=""></x></r>"#
        );
    }

    #[test]
    fn comments_and_attribute_whitespace() {
        let xml = "<r a=\"x&#9;y&#10;z\"><!-- c -->v<?pi data?>\r\n</r>";
        assert_eq!(
            canon(xml, Comments::Omit),
            "<r a=\"x&#x9;y&#xA;z\">v<?pi data?>\n</r>"
        );
        assert_eq!(
            canon(xml, Comments::Keep),
            "<r a=\"x&#x9;y&#xA;z\"><!-- c -->v<?pi data?>\n</r>"
        );
    }

    #[test]
    fn inclusive_prefix_list_renders_an_unused_prefix() {
        let xml = r#"<r xmlns:xs="urn:xs"><v/></r>"#;
        let doc = roxmltree::Document::parse(xml).unwrap();
        let v = doc.root_element().first_element_child().unwrap();
        let out = canonicalize(v, None, Comments::Omit, &["xs".to_owned()]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"<v xmlns:xs="urn:xs"></v>"#
        );
    }
}
