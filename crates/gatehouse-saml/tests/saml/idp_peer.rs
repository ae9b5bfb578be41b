//! Against a running identity provider: npm `samlify` (tests/peers/saml-idp.mjs) takes our
//! signed AuthnRequest, signs the user in through its form, and its Response verifies here;
//! IdP-initiated sign-in and single logout both ways, over plain HTTP/1.1 from the test.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use gatehouse_saml::{
    IdpMetadata, InResponseTo, LogoutCheck, ResponseCheck, SpConfig, SpKey, authn_request_redirect,
    default_claim, logout_request_redirect, logout_response_redirect, sp_metadata,
    verify_logout_request_redirect, verify_logout_response_redirect, verify_response,
};

use crate::common::*;

struct Idp {
    child: Child,
    base: String,
}

impl Drop for Idp {
    fn drop(&mut self) {
        // Closing its standard input ends it; wait so no process outlives the test.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn start_idp(sp: &SpConfig, sign: &str) -> Idp {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/saml-idp.mjs");
    let config = format!(
        r#"{{"sp_metadata": {}, "sign": "{sign}", "users": {{"alice": {{"password": "correct horse", "name_id": "alice@example.com", "attributes": {{
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress": "alice@example.com",
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname": "Alice",
            "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups": ["staff", "admins"]}}}}}}}}"#,
        json_string(&sp_metadata(sp))
    );
    let mut child = Command::new("node")
        .arg(&script)
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs tests/peers/saml-idp.mjs (npm ci --prefix tests/peers)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = between(&line, "http://", "\"")
        .trim_end_matches('"')
        .to_owned();
    Idp { child, base }
}

struct Reply {
    status: u16,
    headers: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// One HTTP/1.1 exchange on a fresh connection.
fn http(
    base: &str,
    method: &str,
    path_and_query: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> Reply {
    let host = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).unwrap();
    let mut req =
        format!("{method} {path_and_query} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: {c}\r\n"));
    }
    if let Some(body) = form {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        req.push_str("\r\n");
    }
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (headers, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = headers[9..12].parse().unwrap();
    let chunked = headers
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        status,
        headers: headers.to_owned(),
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

fn form_value(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\""))
        .unwrap_or_else(|| panic!("no {name} in {html}"));
    let rest = &html[at..];
    let v = &rest[rest.find("value=\"").unwrap() + 7..];
    v[..v.find('"').unwrap()]
        .replace("&#43;", "+")
        .replace("&#61;", "=")
        .replace("&#47;", "/")
}

fn path_of(url: &url::Url) -> String {
    format!("{}?{}", url.path(), url.query().unwrap_or(""))
}

#[allow(clippy::disallowed_methods)] // the peer signs with the real clock
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn sp() -> SpConfig {
    SpConfig {
        entity_id: SP_ENTITY.to_owned(),
        acs_url: SP_ACS.to_owned(),
        slo_url: Some(SP_SLO.to_owned()),
        key: SpKey::generate().unwrap(),
    }
}

fn sign_in(sign: &str) {
    let sp = sp();
    let peer = start_idp(&sp, sign);
    let metadata = http(&peer.base, "GET", "/metadata", None, None);
    assert_eq!(metadata.status, 200);
    let idp = IdpMetadata::parse(&metadata.body).unwrap();
    assert_eq!(idp.entity_id, format!("{}/metadata", peer.base));

    // SP-initiated: our signed AuthnRequest, samlify's form, its signed Response.
    let request = authn_request_redirect(&sp, &idp, Some("state 1"), now()).unwrap();
    let page = http(&peer.base, "GET", &path_of(&request.url), None, None);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains("<button type=\"submit\">Sign in</button>")
    );
    let pending = form_value(&page.body, "pending");
    let wrong = http(
        &peer.base,
        "POST",
        "/login",
        None,
        Some(&format!("pending={pending}&username=alice&password=nope")),
    );
    assert_eq!(wrong.status, 400);
    let done = http(
        &peer.base,
        "POST",
        "/login",
        None,
        Some(&format!(
            "pending={pending}&username=alice&password=correct+horse"
        )),
    );
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains(&format!("action=\"{SP_ACS}\"")));
    assert_eq!(form_value(&done.body, "RelayState"), "state 1");
    let cookie = done.header("set-cookie").unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let saml_response = form_value(&done.body, "SAMLResponse");
    let check = ResponseCheck::new(&sp, &idp, InResponseTo::Expected(request.id.clone()), now());
    let assertion = verify_response(&saml_response, &check).unwrap();
    assert_eq!(assertion.name_id, "alice@example.com");
    assert_eq!(
        assertion.in_response_to.as_deref(),
        Some(request.id.as_str())
    );
    let mapped: Vec<(&str, &Vec<String>)> = assertion
        .attributes
        .iter()
        .filter_map(|(k, v)| default_claim(k).map(|c| (c, v)))
        .collect();
    assert!(mapped.contains(&("email", &vec!["alice@example.com".to_owned()])));
    assert!(mapped.contains(&("given_name", &vec!["Alice".to_owned()])));
    assert!(mapped.contains(&("groups", &vec!["staff".to_owned(), "admins".to_owned()])));
    // The same Response for another request, or unsolicited, is refused.
    let other = ResponseCheck::new(&sp, &idp, InResponseTo::Unsolicited, now());
    assert!(verify_response(&saml_response, &other).is_err());

    // IdP-initiated, with the IdP's session: an unsolicited Response.
    let started = http(
        &peer.base,
        "GET",
        "/idp-initiated?user=alice",
        Some(&cookie),
        None,
    );
    assert_eq!(started.status, 200, "{}", started.body);
    let unsolicited = form_value(&started.body, "SAMLResponse");
    let check = ResponseCheck::new(&sp, &idp, InResponseTo::Unsolicited, now());
    let second = verify_response(&unsolicited, &check).unwrap();
    assert_eq!(second.in_response_to, None);
    assert_ne!(second.id, assertion.id);

    // IdP-initiated logout: its signed LogoutRequest, our signed LogoutResponse.
    let started = http(&peer.base, "GET", "/logout?user=alice", None, None);
    assert_eq!(started.status, 302);
    let location = url::Url::parse(&started.header("location").unwrap()).unwrap();
    assert!(location.as_str().starts_with(SP_SLO));
    let logout_check = LogoutCheck::new(&sp, &idp, now()).unwrap();
    let idp_request =
        verify_logout_request_redirect(location.query().unwrap(), &logout_check).unwrap();
    assert_eq!(idp_request.name_id, "alice@example.com");
    assert_eq!(
        idp_request.session_indexes,
        [second.session_index.clone().unwrap()]
    );
    let answer = logout_response_redirect(&sp, &idp, &idp_request.id, None, now()).unwrap();
    let signed_out = http(&peer.base, "GET", &path_of(&answer.url), None, None);
    assert_eq!(signed_out.status, 200, "{}", signed_out.body);

    // SP-initiated logout: our signed LogoutRequest, its signed LogoutResponse.
    let out = logout_request_redirect(
        &sp,
        &idp,
        &assertion.name_id,
        assertion.name_id_format.as_deref(),
        assertion.session_index.as_deref(),
        Some("bye"),
        now(),
    )
    .unwrap();
    let back = http(&peer.base, "GET", &path_of(&out.url), Some(&cookie), None);
    assert_eq!(back.status, 302, "{}", back.body);
    let location = url::Url::parse(&back.header("location").unwrap()).unwrap();
    assert!(location.as_str().starts_with(SP_SLO));
    let response =
        verify_logout_response_redirect(location.query().unwrap(), &logout_check, &out.id).unwrap();
    assert_eq!(response.relay_state.as_deref(), Some("bye"));
}

#[test]
fn samlify_signs_a_user_in_and_out_with_signed_assertions() {
    sign_in("assertion");
}

#[test]
fn samlify_signs_a_user_in_and_out_with_signed_responses() {
    sign_in("response");
}

#[test]
fn samlify_signs_a_user_in_and_out_signing_both() {
    sign_in("both");
}
