//! Cognito's trigger events, as its Lambda functions receive them: the common envelope and
//! the user's attributes (every value a string, booleans as `"true"`).

use gatehouse_domain::pool::Pool;
use gatehouse_domain::user::User;
use serde_json::{Map, Value, json};

/// The `region` of every event: Gatehouse has none, and a function reading it gets a
/// constant.
const REGION: &str = "gatehouse";

/// The event every trigger receives: `version`, `triggerSource`, `region`, `userPoolId` (the
/// pool), `userName`, `callerContext` (with the app client) and its `request`, with an empty
/// `response` for the hook to fill in.
pub(crate) fn envelope(
    version: &str,
    trigger_source: &str,
    pool: &Pool,
    username: Option<&str>,
    client_id: Option<&str>,
    request: Value,
) -> Value {
    let mut event = json!({
        "version": version,
        "triggerSource": trigger_source,
        "region": REGION,
        "userPoolId": pool.slug.as_str(),
        "callerContext": {
            "awsSdkVersion": "aws-sdk-unknown-unknown",
            "clientId": client_id.unwrap_or_default(),
        },
        "request": request,
        "response": {},
    });
    if let Some(name) = username {
        event["userName"] = Value::from(name);
    }
    event
}

/// A user's attributes as Cognito sends them to its triggers.
pub(crate) fn user_attributes(user: &User) -> Map<String, Value> {
    let a = &user.attributes;
    let mut out = Map::new();
    let mut put = |name: &str, value: String| {
        out.insert(name.to_owned(), Value::String(value));
    };
    put("sub", user.id.to_string());
    put("cognito:user_status", user.status.as_str().to_owned());
    if !a.email.is_empty() {
        put("email", a.email.clone());
    }
    if let Some(v) = a.email_verified {
        put("email_verified", v.to_string());
    }
    if !a.name.is_empty() {
        put("name", a.name.clone());
    }
    for (name, value) in [
        ("given_name", &a.given_name),
        ("family_name", &a.family_name),
        ("middle_name", &a.middle_name),
        ("nickname", &a.nickname),
        ("preferred_username", &a.preferred_username),
        ("phone_number", &a.phone),
        ("zoneinfo", &a.zoneinfo),
        ("picture", &a.picture),
        ("website", &a.website),
    ] {
        if let Some(v) = value {
            put(name, v.clone());
        }
    }
    if let Some(v) = a.phone_verified {
        put("phone_number_verified", v.to_string());
    }
    out
}
