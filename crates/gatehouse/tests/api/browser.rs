//! The browser relying party, `tests/peers/rp-browser.mjs`: npm `openid-client` doing the
//! protocol and headless Chromium (through `playwright-core`) going through a provider's
//! hosted pages. A test starts one with [`Rp::start`], registers its
//! [`Rp::redirect_uri`] (and [`Rp::post_logout_redirect_uri`]) with its clients, and sends it
//! commands with [`Rp::call`] (any answer) or [`Rp::ok`] (a success). The commands and their
//! answers are described in the script. One browser context lives for the whole `Rp`, so the
//! provider's SSO cookie carries from one login to the next; `{"op": "new_context"}` starts
//! a fresh one.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::common::{PeerLines, start_talking_peer};

/// How long one command may take: a login with axe and screenshots takes a few seconds, and
/// the script gives up on a page after 15 s on its own.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

pub struct Rp {
    child: tokio::process::Child,
    lines: PeerLines,
    redirect_uri: String,
    post_logout_redirect_uri: String,
}

impl Rp {
    /// Starts the relying party, its callback server on a free loopback port, and Chromium.
    pub async fn start() -> Rp {
        let script = peers_dir().join("rp-browser.mjs");
        let mut cmd = tokio::process::Command::new("node");
        cmd.arg(script);
        let (child, lines, ready) = start_talking_peer(cmd, "browser relying party").await;
        let ready: Value = serde_json::from_str(&ready)
            .unwrap_or_else(|_| panic!("the browser relying party did not start: {ready}"));
        let uri = |key: &str| {
            ready[key]
                .as_str()
                .unwrap_or_else(|| panic!("no {key} in {ready}"))
                .to_owned()
        };
        Rp {
            redirect_uri: uri("redirect_uri"),
            post_logout_redirect_uri: uri("post_logout_redirect_uri"),
            child,
            lines,
        }
    }

    /// `http://127.0.0.1:PORT/cb`, where every login comes back.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// `http://127.0.0.1:PORT/logged-out`, sent with every logout.
    pub fn post_logout_redirect_uri(&self) -> &str {
        &self.post_logout_redirect_uri
    }

    /// Sends one command and returns its answer, `{"ok": true, ...}` or `{"ok": false,
    /// "error": {...}, "url", "text"}`.
    pub async fn call(&mut self, cmd: Value) -> Value {
        let stdin = self.child.stdin.as_mut().unwrap();
        let mut line = serde_json::to_vec(&cmd).unwrap();
        line.push(b'\n');
        stdin.write_all(&line).await.unwrap();
        stdin.flush().await.unwrap();
        let answer = tokio::time::timeout(COMMAND_TIMEOUT, self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no answer within {COMMAND_TIMEOUT:?} to {cmd}"))
            .unwrap()
            .unwrap_or_else(|| panic!("the browser relying party exited on {cmd}"));
        serde_json::from_str(&answer).unwrap_or_else(|_| panic!("not JSON: {answer}"))
    }

    /// [`Rp::call`] for a command that must succeed.
    pub async fn ok(&mut self, cmd: Value) -> Value {
        let answer = self.call(cmd.clone()).await;
        assert_eq!(answer["ok"], true, "{cmd} failed: {answer:#}");
        answer
    }
}

/// `tests/peers`, where the peers and their `node_modules` are.
pub fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers")
}

/// Where screenshots go: `GATEHOUSE_TEST_SCREENSHOTS/<name>` when that is set, kept for
/// review, otherwise a temporary directory removed with the returned guard.
pub fn screenshot_dir(name: &str) -> (PathBuf, Option<tempfile::TempDir>) {
    match std::env::var_os("GATEHOUSE_TEST_SCREENSHOTS") {
        Some(root) => (PathBuf::from(root).join(name), None),
        None => {
            let dir = tempfile::tempdir().unwrap();
            (dir.path().to_owned(), Some(dir))
        }
    }
}
