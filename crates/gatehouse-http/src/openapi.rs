//! The OpenAPI document served at `/api/openapi.json`: the BriteAuth reference document, kept
//! verbatim in `openapi/briteauth-openapi.json` (so it stays diffable against the original),
//! with what Gatehouse adds laid over it from `openapi/gatehouse-extensions.json`:
//!
//! 1. The extensions' `paths` and `components` are a JSON Merge Patch (RFC 7396) over the
//!    reference's: operations of our own are added whole; on a reference operation we add what
//!    it leaves unsaid about our answers (a constraint we enforce, a content type, a link the
//!    reference gets wrong), and `null` removes a member.
//! 2. Every operation is given the error responses it can answer, in the API's error shape
//!    (`#/components/schemas/Errors`, SPEC §5) and in its own media type
//!    ([`ERROR_MEDIA_TYPE`] names the one it uses when that is not `application/json`): 400 and
//!    404 always (any request may be malformed or name a pool that does not exist), 401 and 403
//!    where a token is required, 413 and 415 where the body is JSON, and those its
//!    [`ERROR_STATUSES`] list names (409, 429, 503, ...). A status the operation documents
//!    already keeps its own description (the token endpoint's errors are RFC 6749's).
//! 3. The enumerations the domain owns (scopes, audit actions) are written from it, so the
//!    document cannot fall behind.
//! 4. The one deliberate deviation from the reference ([`allow_empty_next`]).

use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::permission::{Permission, Scope};
use serde_json::{Map, Value, json};

const REFERENCE: &str = include_str!("../openapi/briteauth-openapi.json");
const EXTENSIONS: &str = include_str!("../openapi/gatehouse-extensions.json");

/// An operation's extra error statuses, beyond those its shape implies.
pub const ERROR_STATUSES: &str = "x-error-statuses";
/// The media type of an operation's errors when it is not `application/json`.
pub const ERROR_MEDIA_TYPE: &str = "x-error-media-type";
/// The extensions' descriptions (and headers) of each error status.
const ERROR_RESPONSES: &str = "x-error-responses";

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// The deviation [`allow_empty_next`] makes, as the document states it.
pub const EMPTY_NEXT: &str = "Deliberate deviation from the BriteAuth document: it requires \
    `next` on every page and types it as a URI; on the last page there is no next page, and \
    `next` is the empty string.";

/// The BriteAuth v0.1 reference document, as published.
pub fn reference() -> Value {
    serde_json::from_str(REFERENCE).unwrap_or_default()
}

/// Allows `""` wherever the document types a page's `next` as `format: uri`: Gatehouse's
/// answer on the last page (SPEC §5). Every page schema of the reference has a required
/// `next` of that type; each becomes "a URI, or the empty string", and nothing else changes.
pub fn allow_empty_next(doc: &mut Value) {
    match doc {
        Value::Object(members) => {
            if let Some(next) = members
                .get_mut("properties")
                .and_then(|p| p.get_mut("next"))
                .filter(|n| n.get("format").and_then(Value::as_str) == Some("uri"))
            {
                let uri = next.take();
                *next = json!({
                    "anyOf": [uri, {"type": "string", "maxLength": 0}],
                    "description": EMPTY_NEXT,
                });
            }
            members.values_mut().for_each(allow_empty_next);
        }
        Value::Array(items) => items.iter_mut().for_each(allow_empty_next),
        _ => {}
    }
}

/// The document of everything a pool serves under `/api`.
pub fn document() -> Value {
    let mut doc = reference();
    let mut extensions: Value = serde_json::from_str(EXTENSIONS).unwrap_or_default();
    for section in ["paths", "components"] {
        if let Some(patch) = extensions.get(section) {
            merge_patch(&mut doc[section], patch);
        }
    }
    let errors = extensions[ERROR_RESPONSES].take();
    add_error_responses(&mut doc, &errors);
    add_domain_enums(&mut doc);
    allow_empty_next(&mut doc);
    doc["info"] = json!({
        "title": "Gatehouse pool API",
        "version": env!("CARGO_PKG_VERSION"),
        "description": format!(
            "Every path of the BriteAuth v0.1 document, plus Gatehouse's extensions. Paths are \
             relative to a pool's API base. Errors are answered as `{{\"errors\": [...]}}` \
             (RFC 6749 bodies at the token endpoint). {EMPTY_NEXT}"
        ),
    });
    doc["servers"] = json!([{
        "url": "/pools/{pool}/api",
        "variables": {"pool": {"default": "staff"}}
    }]);
    doc
}

/// RFC 7396: objects merge member by member, `null` removes, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (name, value) in patch {
            if value.is_null() {
                target.remove(name);
            } else {
                merge_patch(target.entry(name.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// `Scope` (what an app client may hold) and `AuditActionFilter` (the audit log's `action`
/// filter, where `""` means any), listed from the domain's own tables.
fn add_domain_enums(doc: &mut Value) {
    let scopes: Vec<&str> = Scope::OIDC
        .iter()
        .chain(Scope::SSF)
        .copied()
        .chain(Permission::ALL.iter().map(|p| p.as_str()))
        .collect();
    let actions: Vec<&str> = std::iter::once("")
        .chain(AuditAction::ALL.iter().map(|a| a.as_str()))
        .collect();
    let schemas = &mut doc["components"]["schemas"];
    schemas["Scope"] = json!({
        "type": "string",
        "enum": scopes,
        "description": "An OIDC scope, an SSF receiver scope or a permission name.",
    });
    schemas["AuditActionFilter"] = json!({
        "type": "string",
        "enum": actions,
        "description": "An audit action; empty for any.",
    });
}

fn add_error_responses(doc: &mut Value, templates: &Value) {
    let default_security = doc.get("security").cloned();
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for op in paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|ops| ops.iter_mut())
        .filter(|(method, _)| METHODS.contains(&method.as_str()))
        .filter_map(|(_, op)| op.as_object_mut())
    {
        let mut statuses = vec!["400", "404"];
        let security = op.get("security").or(default_security.as_ref());
        if security
            .and_then(Value::as_array)
            .is_some_and(|s| !s.is_empty())
        {
            statuses.extend(["401", "403"]);
        }
        // JSON bodies are read by one extractor, which answers these two; the token
        // endpoint's form answers every error as RFC 6749 does.
        let json_body = op
            .get("requestBody")
            .and_then(|b| b.get("content"))
            .and_then(Value::as_object)
            .is_some_and(|c| c.keys().any(|m| m.ends_with("json")));
        if json_body {
            statuses.extend(["413", "415"]);
        }
        let extra = op.remove(ERROR_STATUSES).unwrap_or_default();
        statuses.extend(
            extra
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str),
        );
        let media_type = op
            .remove(ERROR_MEDIA_TYPE)
            .and_then(|m| m.as_str().map(str::to_owned))
            .unwrap_or_else(|| "application/json".to_owned());
        let responses = op
            .entry("responses")
            .or_insert_with(|| json!({}))
            .as_object_mut();
        let Some(responses) = responses else { continue };
        for status in statuses {
            if responses.contains_key(status) {
                continue;
            }
            let mut response = templates.get(status).cloned().unwrap_or_else(|| json!({}));
            response["content"] = json!({
                media_type.as_str(): {"schema": {"$ref": "#/components/schemas/Errors"}}
            });
            responses.insert(status.to_owned(), response);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_operation_is_served_as_the_reference_names_it() {
        let reference = reference();
        let doc = document();
        let mut operations = 0;
        for (path, ops) in reference["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                let ours = &doc["paths"][path][method];
                assert_eq!(ours["operationId"], op["operationId"], "{method} {path}");
                assert_eq!(ours["summary"], op["summary"], "{method} {path}");
                // Every status the reference documents is still documented.
                for status in op["responses"].as_object().unwrap().keys() {
                    assert!(
                        ours["responses"].get(status).is_some(),
                        "{method} {path} {status}"
                    );
                }
                operations += 1;
            }
        }
        assert_eq!(operations, 27);
    }

    /// A `$ref` with siblings is ambiguous (OpenAPI 3.0 ignores them): a patch that puts a
    /// reference where the reference document had an inline schema must remove the rest.
    #[test]
    fn no_reference_has_siblings() {
        fn check(v: &Value, at: &str) {
            match v {
                Value::Object(m) => {
                    assert!(!(m.contains_key("$ref") && m.len() > 1), "{at}: {v}");
                    m.iter().for_each(|(k, v)| check(v, &format!("{at}/{k}")));
                }
                Value::Array(items) => items.iter().for_each(|v| check(v, at)),
                _ => {}
            }
        }
        check(&document(), "");
    }

    #[test]
    fn merge_patch_adds_replaces_and_removes() {
        let mut doc = json!({"a": {"b": 1, "c": {"d": 2}}, "e": [1]});
        merge_patch(
            &mut doc,
            &json!({"a": {"b": null, "c": {"x": 3}}, "e": [2], "f": "g"}),
        );
        assert_eq!(
            doc,
            json!({"a": {"c": {"d": 2, "x": 3}}, "e": [2], "f": "g"})
        );
    }

    #[test]
    fn every_page_allows_an_empty_next_and_nothing_else_changes() {
        let mut doc = reference();
        allow_empty_next(&mut doc);
        let text = doc.to_string();
        let users = &doc["paths"]["/user-management/users"]["get"]["responses"]["200"]["content"]["application/json"]
            ["schema"];
        assert_eq!(users["required"], json!(["users", "next"]));
        assert_eq!(
            users["properties"]["next"]["anyOf"],
            json!([{"type": "string", "format": "uri"}, {"type": "string", "maxLength": 0}])
        );
        // Four page schemas in the reference, each changed once, and no other URI touched.
        assert_eq!(text.matches(EMPTY_NEXT).count(), 4);
        assert_eq!(
            text.matches(r#""format":"uri""#).count(),
            REFERENCE.matches(r#""format": "uri""#).count()
        );
    }

    #[test]
    fn every_operation_documents_its_errors() {
        let doc = document();
        let mut operations = 0;
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                operations += 1;
                let responses = op["responses"].as_object().unwrap();
                for status in ["400", "404"] {
                    assert!(responses.contains_key(status), "{method} {path}: {status}");
                }
                assert!(op.get(ERROR_STATUSES).is_none() && op.get(ERROR_MEDIA_TYPE).is_none());
                for status in ["429", "503"] {
                    if let Some(r) = responses.get(status) {
                        assert!(r["headers"]["Retry-After"].is_object(), "{method} {path}");
                    }
                }
            }
        }
        assert!(operations >= 42, "{operations}");
        let delete = &doc["paths"]["/user-management/groups/{group}"]["delete"]["responses"];
        assert_eq!(
            delete["403"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Errors"
        );
        let client = &doc["paths"]["/user-management/app-clients/{id}"]["delete"]["responses"];
        assert!(client["404"]["content"]["application/vnd.api+json"].is_object());
    }
}
