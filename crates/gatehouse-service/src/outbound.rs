//! Calls Gatehouse makes to URLs its tenants configure (SSF push, back-channel logout): one
//! client, one policy. A tenant's URL is an attacker's tool when the server it names sits on
//! the operator's network, so a call never follows a redirect, never reaches a loopback,
//! private, link-local or otherwise non-public address unless the operator lists its range in
//! `outbound.allow`, never goes through a proxy (the check would then apply to the proxy), and
//! gives up after a few seconds. Names are checked where they are resolved, each time a
//! connection is made, so a name that resolves to a public address when registered and to a
//! private one later (DNS rebinding) is refused then.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use ipnet::IpNet;
use url::Url;

/// How long a connection may take to open, and a whole call to finish.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of an answer's body is kept (for the delivery status an administrator reads).
const BODY_KEPT: usize = 2048;

/// What the operator allows beyond public addresses.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    /// Ranges a call may reach although they are not public (`outbound.allow`).
    pub allow: Vec<IpNet>,
    /// Whether plain `http` targets are allowed: only while Gatehouse itself is served over
    /// `http` (a development set-up).
    pub allow_plain_http: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// The policy forbids the target: retrying cannot help.
    #[error("{0}")]
    Refused(String),
    /// The call failed on its way (connection, timeout, TLS): it may succeed later.
    #[error("{0}")]
    Transport(String),
}

/// The answer to a call: its status and the start of its body.
#[derive(Debug, Clone)]
pub struct OutboundAnswer {
    pub status: u16,
    pub body: String,
}

/// The whole answer to a [`Outbound::get`] or [`Outbound::post_form`].
#[derive(Debug, Clone)]
pub struct OutboundReply {
    pub status: u16,
    /// The `Content-Type` header, when it is present and readable.
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

type Connector = hyper_rustls::HttpsConnector<HttpConnector<GuardedResolver>>;

/// The client every outbound call goes through.
#[derive(Clone)]
pub struct Outbound {
    client: Client<Connector, Full<Bytes>>,
    policy: Arc<OutboundPolicy>,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Outbound {
    pub fn new(policy: OutboundPolicy) -> Result<Self, OutboundError> {
        let policy = Arc::new(policy);
        let mut http = HttpConnector::new_with_resolver(GuardedResolver {
            policy: policy.clone(),
        });
        // The scheme is checked by `check_target`; the TLS layer below takes `https`.
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config()?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(https);
        Ok(Self { client, policy })
    }

    /// Checks a URL a tenant registers: absolute `https` (or `http` while allowed), a host,
    /// no user information, no fragment, and, when the host is an address, one the policy
    /// allows. Names are resolved only when called.
    pub fn check_target(&self, target: &str) -> Result<Url, OutboundError> {
        let url = Url::parse(target)
            .map_err(|e| OutboundError::Refused(format!("'{target}' is not a URL: {e}")))?;
        match url.scheme() {
            "https" => {}
            "http" if self.policy.allow_plain_http => {}
            "http" => {
                return Err(OutboundError::Refused(
                    "the URL must be https: Gatehouse is served over https".to_owned(),
                ));
            }
            other => {
                return Err(OutboundError::Refused(format!(
                    "the URL's scheme must be https, not '{other}'"
                )));
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(OutboundError::Refused(
                "the URL may not carry user information".to_owned(),
            ));
        }
        if url.fragment().is_some() {
            return Err(OutboundError::Refused(
                "the URL may not carry a fragment".to_owned(),
            ));
        }
        match url.host() {
            None => {
                return Err(OutboundError::Refused("the URL names no host".to_owned()));
            }
            Some(url::Host::Ipv4(ip)) => self.check_address(IpAddr::V4(ip))?,
            Some(url::Host::Ipv6(ip)) => self.check_address(IpAddr::V6(ip))?,
            Some(url::Host::Domain(_)) => {}
        }
        Ok(url)
    }

    fn check_address(&self, ip: IpAddr) -> Result<(), OutboundError> {
        if allowed(&self.policy, ip) {
            Ok(())
        } else {
            Err(OutboundError::Refused(format!(
                "{ip} is not a public address and outbound.allow does not list it"
            )))
        }
    }

    /// Whether plain `http` targets are allowed (Gatehouse itself is served over `http`).
    pub fn allows_plain_http(&self) -> bool {
        self.policy.allow_plain_http
    }

    /// POSTs `body` to `url` (checked again here: the policy may have changed since it was
    /// registered). Any status is an answer, a redirect too (it is never followed); only a
    /// call that got none is an error. The first 2 KiB of the body are kept.
    pub async fn post(
        &self,
        url: &str,
        content_type: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<OutboundAnswer, OutboundError> {
        let request = self.request(hyper::Method::POST, url, Some(content_type), headers)?;
        let reply = self.send(request, body, Body::Keep(BODY_KEPT)).await?;
        Ok(OutboundAnswer {
            status: reply.status,
            body: String::from_utf8_lossy(&reply.body).into_owned(),
        })
    }

    /// GETs `url` with `headers`. The whole body is read, up to `limit` bytes: a larger one
    /// is refused, never cut. A redirect is an answer like any other (its status is 3xx);
    /// it is never followed.
    pub async fn get(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        limit: usize,
    ) -> Result<OutboundReply, OutboundError> {
        let request = self.request(hyper::Method::GET, url, None, headers)?;
        self.send(request, Vec::new(), Body::Whole(limit)).await
    }

    /// POSTs `body` of `content_type` to `url`, and reads the whole answer, up to `limit`
    /// bytes (a larger one is refused, never cut), within `timeout` (at most the client's
    /// own call timeout). A redirect is an answer; it is never followed.
    pub async fn post_whole(
        &self,
        url: &str,
        content_type: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        limit: usize,
        timeout: Duration,
    ) -> Result<OutboundReply, OutboundError> {
        let request = self.request(hyper::Method::POST, url, Some(content_type), headers)?;
        tokio::time::timeout(timeout, self.send(request, body, Body::Whole(limit)))
            .await
            .map_err(|_| OutboundError::Transport("the call timed out".to_owned()))?
    }

    /// POSTs `form` as `application/x-www-form-urlencoded` to `url`; the answer as [`get`]'s.
    ///
    /// [`get`]: Outbound::get
    pub async fn post_form(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        form: &[(&str, &str)],
        limit: usize,
    ) -> Result<OutboundReply, OutboundError> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let request = self.request(
            hyper::Method::POST,
            url,
            Some("application/x-www-form-urlencoded"),
            headers,
        )?;
        self.send(request, body.into_bytes(), Body::Whole(limit))
            .await
    }

    fn request(
        &self,
        method: hyper::Method,
        url: &str,
        content_type: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<hyper::http::request::Builder, OutboundError> {
        let url = self.check_target(url)?;
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(url.as_str())
            .header(
                hyper::header::USER_AGENT,
                concat!("Gatehouse/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(content_type) = content_type {
            request = request.header(hyper::header::CONTENT_TYPE, content_type);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Ok(request)
    }

    async fn send(
        &self,
        request: hyper::http::request::Builder,
        body: Vec<u8>,
        keep: Body,
    ) -> Result<OutboundReply, OutboundError> {
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| OutboundError::Refused(format!("the request cannot be built: {e}")))?;
        let call = async {
            let response = self.client.request(request).await.map_err(classify)?;
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get(hyper::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let mut body = response.into_body();
            let mut kept = Vec::new();
            loop {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            kept.extend_from_slice(data);
                        }
                    }
                    Some(Err(e)) => match keep {
                        // The status is the answer; a body cut short does not change it.
                        Body::Keep(_) => break,
                        Body::Whole(_) => {
                            return Err(OutboundError::Transport(format!(
                                "the answer's body could not be read: {e}"
                            )));
                        }
                    },
                    None => break,
                }
                match keep {
                    Body::Keep(n) if kept.len() >= n => {
                        kept.truncate(n);
                        break;
                    }
                    Body::Whole(n) if kept.len() > n => {
                        return Err(OutboundError::Refused(format!(
                            "the answer is larger than {n} bytes"
                        )));
                    }
                    _ => {}
                }
            }
            Ok(OutboundReply {
                status,
                content_type,
                body: kept,
            })
        };
        tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| OutboundError::Transport("no answer in time".to_owned()))?
    }
}

/// How much of an answer's body a call reads.
#[derive(Debug, Clone, Copy)]
enum Body {
    /// The first `n` bytes; the rest is not read.
    Keep(usize),
    /// All of it, refused when larger than `n` bytes.
    Whole(usize),
}

fn tls_config() -> Result<rustls::ClientConfig, OutboundError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A certificate of the system's store that rustls cannot use is skipped, as the
        // system's own clients would.
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        .map_err(|e| OutboundError::Transport(format!("TLS configuration: {e}")))
}

/// An error of the resolver that marks a refusal by policy.
#[derive(Debug)]
struct Blocked(String);

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Blocked {}

/// A refusal by policy wherever it sits in the error's chain; anything else is transport.
fn classify(error: hyper_util::client::legacy::Error) -> OutboundError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(e) = source {
        if let Some(blocked) = e.downcast_ref::<Blocked>() {
            return OutboundError::Refused(blocked.0.clone());
        }
        source = e.source();
    }
    if error.is_connect() {
        OutboundError::Transport(match std::error::Error::source(&error) {
            Some(cause) => format!("could not connect: {cause}"),
            None => "could not connect".to_owned(),
        })
    } else {
        OutboundError::Transport(error.to_string())
    }
}

/// Resolves names as the system does and keeps only the addresses the policy allows.
#[derive(Clone)]
struct GuardedResolver {
    policy: Arc<OutboundPolicy>,
}

type Resolved = std::vec::IntoIter<SocketAddr>;
type ResolveError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<Name> for GuardedResolver {
    type Response = Resolved;
    type Error = ResolveError;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Resolved, ResolveError>> + Send>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| allowed(&policy, a.ip()))
                .collect();
            if kept.is_empty() {
                let blocked: ResolveError = Box::new(Blocked(if found.is_empty() {
                    format!("'{host}' resolves to no address")
                } else {
                    format!(
                        "'{host}' resolves only to addresses that are not public, and \
                         outbound.allow does not list them"
                    )
                }));
                return Err(blocked);
            }
            Ok(kept.into_iter())
        })
    }
}

/// Whether a call may reach `ip`: a public address, or one in a range the operator allows.
fn allowed(policy: &OutboundPolicy, ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    policy.allow.iter().any(|net| net.contains(&ip)) || is_public(ip)
}

/// Whether an address is reachable on the public Internet (not loopback, private, shared,
/// link-local, unspecified, multicast, broadcast, documentation, benchmarking or reserved).
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        // Shared address space (carrier-grade NAT), 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments, 192.0.0.0/24.
        || (a == 192 && b == 0 && c == 0)
        // Benchmarking, 198.18.0.0/15.
        || (a == 198 && (b == 18 || b == 19))
        // Reserved, 240.0.0.0/4.
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // Unique local, fc00::/7.
        || (first & 0xfe00) == 0xfc00
        // Link-local, fe80::/10.
        || (first & 0xffc0) == 0xfe80
        // Documentation, 2001:db8::/32.
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        // IPv4-compatible and other addresses under ::/96, NAT64 64:ff9b::/96 (reaches IPv4
        // addresses the check above would have to see).
        || ip.segments()[..6] == [0; 6]
        || (first == 0x0064 && ip.segments()[1] == 0xff9b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbound(allow: &[&str], http: bool) -> Outbound {
        Outbound::new(OutboundPolicy {
            allow: allow.iter().map(|n| n.parse().unwrap()).collect(),
            allow_plain_http: http,
        })
        .unwrap()
    }

    #[test]
    fn non_public_addresses_are_refused_unless_allowed() {
        let strict = outbound(&[], true);
        for target in [
            "http://127.0.0.1/x",
            "http://10.1.2.3/x",
            "http://172.16.0.1/x",
            "http://192.168.1.1/x",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/x",
            "http://0.0.0.0/x",
            "http://[::1]/x",
            "http://[fe80::1]/x",
            "http://[fd00::1]/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://[::ffff:169.254.169.254]/x",
            "http://[64:ff9b::a9fe:a9fe]/x",
        ] {
            assert!(
                matches!(strict.check_target(target), Err(OutboundError::Refused(_))),
                "{target} must be refused"
            );
        }
        assert!(strict.check_target("http://93.184.215.14/x").is_ok());
        assert!(strict.check_target("http://[2606:2800::1]/x").is_ok());

        let loopback = outbound(&["127.0.0.0/8"], true);
        assert!(loopback.check_target("http://127.0.0.1:9/x").is_ok());
        assert!(loopback.check_target("http://[::ffff:127.0.0.1]/x").is_ok());
        assert!(loopback.check_target("http://10.0.0.1/x").is_err());
    }

    #[test]
    fn targets_must_be_plain_urls_of_an_allowed_scheme() {
        let https_only = outbound(&[], false);
        assert!(https_only.check_target("https://rp.example/logout").is_ok());
        for target in [
            "http://rp.example/logout",
            "ftp://rp.example/logout",
            "file:///etc/passwd",
            "https://user:pw@rp.example/logout",
            "https://rp.example/logout#frag",
            "/relative",
            "",
        ] {
            assert!(
                matches!(
                    https_only.check_target(target),
                    Err(OutboundError::Refused(_))
                ),
                "{target} must be refused"
            );
        }
        assert!(
            outbound(&[], true)
                .check_target("http://rp.example/logout")
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_name_resolving_to_a_private_address_is_refused_when_called() {
        let strict = outbound(&[], true);
        let err = strict
            .post("http://localhost:9/x", "text/plain", &[], Vec::new())
            .await
            .unwrap_err();
        assert!(matches!(err, OutboundError::Refused(_)), "{err:?}");
    }

    #[tokio::test]
    async fn redirects_are_answers_never_followed() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            // One connection: answer a redirect; a second request would be the followed one.
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = socket.read(&mut buf).await.unwrap();
            socket
                .write_all(
                    b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:9/next\r\n\
                      Content-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await
                .unwrap();
        });
        let client = outbound(&["127.0.0.0/8"], true);
        let answer = client
            .post(
                &format!("http://{addr}/hook"),
                "application/json",
                &[],
                b"{}".to_vec(),
            )
            .await
            .unwrap();
        assert_eq!(answer.status, 307);
        server.await.unwrap();
    }

    /// A server on loopback that answers each connection with `answer` and hands back what
    /// it was sent.
    async fn one_answer(
        answer: Vec<u8>,
    ) -> (std::net::SocketAddr, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 8192];
            let n = socket.read(&mut buf).await.unwrap();
            let _ = socket.write_all(&answer).await;
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        (addr, server)
    }

    #[tokio::test]
    async fn get_reads_whole_bodies_up_to_its_limit() {
        let client = outbound(&["127.0.0.0/8"], true);
        let body = "x".repeat(1000);
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        let (addr, server) = one_answer(answer.clone().into_bytes()).await;
        let reply = client
            .get(
                &format!("http://{addr}/doc"),
                &[("authorization", "Bearer t")],
                1000,
            )
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.content_type.as_deref(), Some("application/json"));
        assert_eq!(reply.body.len(), 1000);
        let sent = server.await.unwrap();
        assert!(sent.starts_with("GET /doc HTTP/1.1\r\n"), "{sent}");
        assert!(sent.contains("authorization: Bearer t\r\n"), "{sent}");

        // One byte more than the limit: refused, not cut.
        let (addr, _server) = one_answer(answer.into_bytes()).await;
        let err = client
            .get(&format!("http://{addr}/doc"), &[], 999)
            .await
            .unwrap_err();
        assert!(matches!(err, OutboundError::Refused(_)), "{err:?}");
    }

    #[tokio::test]
    async fn post_form_encodes_its_form_and_never_follows_a_redirect() {
        let client = outbound(&["127.0.0.0/8"], true);
        let (addr, server) = one_answer(
            b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/next\r\n\
              Content-Length: 0\r\nConnection: close\r\n\r\n"
                .to_vec(),
        )
        .await;
        let reply = client
            .post_form(
                &format!("http://{addr}/token"),
                &[],
                &[("code", "a b&c"), ("grant_type", "authorization_code")],
                1024,
            )
            .await
            .unwrap();
        assert_eq!(reply.status, 302);
        let sent = server.await.unwrap();
        assert!(
            sent.contains("content-type: application/x-www-form-urlencoded\r\n"),
            "{sent}"
        );
        assert!(
            sent.ends_with("code=a+b%26c&grant_type=authorization_code"),
            "{sent}"
        );
        // The policy holds for these calls too.
        let strict = outbound(&[], true);
        assert!(matches!(
            strict.get(&format!("http://{addr}/x"), &[], 10).await,
            Err(OutboundError::Refused(_))
        ));
    }
}
