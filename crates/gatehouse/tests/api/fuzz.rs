//! Contract tests: Schemathesis (`tests/peers/requirements.txt`) generates requests from an
//! OpenAPI document, boundary and random values alike, sends them to a pool's API, and checks
//! each answer against the document. Two documents, two contracts:
//!
//! - **The BriteAuth reference document**, which Gatehouse follows where it speaks (SPEC §5),
//!   changed only where Gatehouse deliberately deviates from it: a page's `next` may be `""`
//!   (`gatehouse_http::openapi::allow_empty_next`). No answer may be a server error, and every
//!   answer with a status the reference documents must match its schema.
//! - **Our own document** (`/api/openapi.json`), which claims to describe every status,
//!   content type, header and constraint of every operation: every check Schemathesis has,
//!   the stateful phase included (it follows the links, declared and inferred from `Location`,
//!   from each created resource to the operations on it).
//!
//! Both act through an app client holding every permission a pool's client may hold, so that
//! requests reach past authorization. Each run has a fixed seed and a bounded number of
//! examples, and must end without a single failure.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Instant;

use gatehouse_domain::permission::Permission;

use crate::common::{Backend, TestApp, spawn_app_with, venv_tool};

/// Seed of every run, so a failure can be replayed.
const SEED: &str = "20261126";

struct Fuzzed {
    app: TestApp,
    client_id: String,
    token: String,
}

/// A pool `acme` with an administrator, a plain user, and the client the fuzzer acts as.
async fn fuzzed_app() -> Fuzzed {
    let app = spawn_app_with(Backend::from_env(), |c| {
        // The fuzzer fails on purpose thousands of times from one address; with the usual
        // failure limits the endpoints that check secrets would answer it 429 at once and
        // their logic would go untested. The limits are tested in `abuse`.
        c.limits.address_burst = 1_000_000;
        c.limits.address_per_minute = 1_000_000;
        c.limits.client_burst = 1_000_000;
        c.limits.client_per_minute = 1_000_000;
        // A long poll of an SSF stream with nothing to hand out waits this long.
        c.ssf.long_poll_timeout_secs = 1;
    })
    .await;
    app.create_pool("acme").await;
    app.create_user("acme", "ada", &["admin"], "ada-password-123")
        .await;
    app.create_user("acme", "alice", &[], "alice-password-1")
        .await;
    let all: Vec<&str> = Permission::ALL
        .iter()
        .filter(|p| !p.is_staff_only())
        .map(|p| p.as_str())
        .chain(["ssf.manage"])
        .collect();
    let client = app.create_client("acme", &all).await;
    let token = app.client_token("acme", &client).await;
    Fuzzed {
        app,
        client_id: client.id,
        token,
    }
}

fn peer(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/peers")
        .join(name)
}

/// Runs `schemathesis run` with `args` against the pool's API as the fuzzing client, from a
/// directory of its own (Schemathesis keeps a cache in its working directory).
async fn schemathesis(f: &Fuzzed, dir: &Path, schema: &str, args: &[&str]) -> (Output, String) {
    let started = Instant::now();
    let out = tokio::process::Command::new(venv_tool("schemathesis"))
        .arg("--config-file")
        .arg(peer("schemathesis.toml"))
        .arg("run")
        .arg(schema)
        .args(["--url", &f.app.pool_url("acme", "/api")])
        .args(["-H", &format!("Authorization: Bearer {}", f.token)])
        .args(["--seed", SEED, "--no-color"])
        .args(args)
        .env("SCHEMATHESIS_HOOKS", peer("schemathesis-hooks.py"))
        .env("GATEHOUSE_FUZZ_CLIENT_ID", &f.client_id)
        .current_dir(dir)
        .kill_on_drop(true)
        .output()
        .await
        .expect("schemathesis runs (pip install -r tests/peers/requirements.txt)");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    // Shown with `--nocapture`: the phases and the summary, and how long the run took.
    eprintln!("{report}\nschemathesis took {:.1?}", started.elapsed());
    (out, report)
}

/// Asserts a run succeeded: exit status 0, and a summary in which every generated test case
/// passed, at least `min_cases` of them, and each of `phases` ran and passed.
fn assert_no_failures(out: &Output, report: &str, min_cases: u64, phases: &[&str]) {
    let context = || format!("{report}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis failed:\n{}", context());
    let counts = report
        .lines()
        .map(str::trim)
        .find_map(|l| {
            let (generated, rest) = l.split_once(" generated, ")?;
            let passed = rest.strip_suffix(" passed")?;
            Some((generated.parse::<u64>().ok()?, passed.parse::<u64>().ok()?))
        })
        .unwrap_or_else(|| panic!("no summary of test cases:\n{}", context()));
    assert_eq!(counts.0, counts.1, "{}", context());
    assert!(
        counts.0 >= min_cases,
        "only {} test cases:\n{}",
        counts.0,
        context()
    );
    for phase in phases {
        let passed = report
            .lines()
            .any(|l| l.trim_start().starts_with('✅') && l.contains(&format!(" {phase} (in ")));
        assert!(passed, "the {phase} phase did not pass:\n{}", context());
    }
    for word in ["FAILURES", "ERRORS"] {
        assert!(
            !report.contains(&format!(" {word} ")),
            "{word}:\n{}",
            context()
        );
    }
}

#[tokio::test]
async fn the_briteauth_document_holds_no_server_error_and_every_documented_answer_conforms() {
    let f = fuzzed_app().await;
    let dir = tempfile::tempdir().unwrap();
    let mut reference = gatehouse_http::openapi::reference();
    gatehouse_http::openapi::allow_empty_next(&mut reference);
    let schema = dir.path().join("briteauth-openapi.json");
    std::fs::write(&schema, reference.to_string()).unwrap();
    let (out, report) = schemathesis(
        &f,
        dir.path(),
        schema.to_str().unwrap(),
        &[
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "25",
        ],
    )
    .await;
    assert_no_failures(&out, &report, 800, &["Examples", "Coverage", "Fuzzing"]);
}

#[tokio::test]
async fn our_document_describes_every_answer_with_every_check_on() {
    let f = fuzzed_app().await;
    let dir = tempfile::tempdir().unwrap();
    let (out, report) = schemathesis(
        &f,
        dir.path(),
        &f.app.url("/api/openapi.json"),
        &[
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            "15",
        ],
    )
    .await;
    assert_no_failures(
        &out,
        &report,
        1500,
        &["Examples", "Coverage", "Fuzzing", "Stateful"],
    );
    // The stateful phase followed links from created resources, not nothing.
    let scenarios = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Scenarios:"))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or_else(|| panic!("no stateful scenarios:\n{report}"));
    assert!(scenarios > 0, "{report}");
}
