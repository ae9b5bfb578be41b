//! What a hook costs: for each of the tests' custom-authentication hooks (WAT, AssemblyScript,
//! JavaScript), the time to compile it and to load its artifact, then calls per CPU-second and
//! microseconds per call (mean, p99) through `Hook::call` (a fresh instance each, on a blocking
//! thread, as the service calls it), the fuel a call spends, and whole CUSTOM_AUTH sign-ins
//! (Define, Create, Verify, Define: four calls) per CPU-second. Prints one JSON object
//! (bench/run.py reads it).
//!
//! ```text
//! cargo run --release -p gatehouse-hooks --features test-support --example hook_rate -- --seconds 3
//! ```
//!
//! CPU time is this process's (from `/proc/self/stat`), so other load on the machine does not
//! count. `--only wat,assemblyscript` leaves the JavaScript hook out (its first build takes about
//! a minute and its compilation seconds).

use std::time::Instant;

use clap::Parser;
use gatehouse_hooks::{Hook, HookEngine, Limits, test_support};
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// CPU seconds spent on each measurement (calls of one hook; its sign-ins).
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// The hooks to measure, of `wat`, `assemblyscript` and `javascript`.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "wat,assemblyscript,javascript"
    )]
    only: Vec<String>,
    /// Write the WAT custom-auth hook, compiled, to this file and exit (for a server-level
    /// measurement that sets it as a pool's hooks).
    #[arg(long, value_name = "FILE")]
    write_wat_hook: Option<std::path::PathBuf>,
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime (fields 14 and 15 of the whole line), at 100 ticks a second.
    (ticks(11) + ticks(12)) / 100.0
}

fn event(trigger: &str, request: Value) -> String {
    json!({
        "version": "1", "triggerSource": trigger, "region": "eu-west-1",
        "userPoolId": "bench", "userName": "alice",
        "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": "bench-web"},
        "request": request, "response": {}
    })
    .to_string()
}

/// The four events of one CUSTOM_AUTH sign-in answered right the first time.
fn sign_in() -> [String; 4] {
    let attributes = json!({"sub": "0192f1c4-8a3e-7c2d-9b1a-3f5e6d7c8b9a",
                            "email": "alice@bench.example", "cognito:user_status": "CONFIRMED"});
    let passed = json!([{"challengeName": "CUSTOM_CHALLENGE", "challengeResult": true,
                         "challengeMetadata": "QUESTION-1"}]);
    [
        event(
            "DefineAuthChallenge_Authentication",
            json!({"userAttributes": attributes, "session": [], "userNotFound": false}),
        ),
        event(
            "CreateAuthChallenge_Authentication",
            json!({"userAttributes": attributes, "challengeName": "CUSTOM_CHALLENGE",
                   "session": [], "userNotFound": false}),
        ),
        event(
            "VerifyAuthChallengeResponse_Authentication",
            json!({"userAttributes": attributes, "privateChallengeParameters": {"answer": "42"},
                   "challengeAnswer": "42", "userNotFound": false}),
        ),
        event(
            "DefineAuthChallenge_Authentication",
            json!({"userAttributes": attributes, "session": passed, "userNotFound": false}),
        ),
    ]
}

async fn measure(
    engine: &HookEngine,
    name: &str,
    wasm: Vec<u8>,
    seconds: f64,
) -> Result<Value, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let compiled = engine.compile(&wasm)?;
    let compile_ms = started.elapsed().as_secs_f64() * 1e3;
    let started = Instant::now();
    let hook: Hook = engine.load(compiled.kind, &compiled.artifact)?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;

    let events = sign_in();
    let define = events[0].clone();
    let fuel = hook.fuel_spent(&define)?;
    for _ in 0..10 {
        hook.call(define.clone()).await?;
    }
    // One call at a time: latency and CPU of a call, not throughput under contention.
    let mut micros = Vec::new();
    let cpu = cpu_seconds();
    while cpu_seconds() - cpu < seconds {
        for _ in 0..20 {
            let started = Instant::now();
            hook.call(define.clone()).await?;
            micros.push(started.elapsed().as_secs_f64() * 1e6);
        }
    }
    let call_cpu = cpu_seconds() - cpu;
    let calls = micros.len();
    micros.sort_by(f64::total_cmp);
    let mean = micros.iter().sum::<f64>() / calls.max(1) as f64;
    let p99 = micros
        .get((calls * 99 / 100).min(calls.saturating_sub(1)))
        .copied()
        .unwrap_or(0.0);

    // Whole sign-ins: the four calls, each answer checked.
    let mut sign_ins = 0usize;
    let cpu = cpu_seconds();
    while cpu_seconds() - cpu < seconds {
        for _ in 0..5 {
            for e in &events {
                let answer = hook.call(e.clone()).await?;
                if !answer.contains("\"response\"") {
                    return Err(format!("{name}: no response in {answer}").into());
                }
            }
            sign_ins += 1;
        }
    }
    let sign_in_cpu = cpu_seconds() - cpu;
    Ok(json!({
        "hook": name,
        "kind": hook.kind().as_str(),
        "wasm_bytes": wasm.len(),
        "artifact_bytes": compiled.artifact.len(),
        "compile_ms": compile_ms,
        "load_ms": load_ms,
        "fuel_per_call": fuel,
        "calls": calls,
        "calls_per_cpu_s": calls as f64 / call_cpu.max(0.01),
        "mean_us": mean,
        "p99_us": p99,
        "custom_auth_sign_ins": sign_ins,
        "custom_auth_sign_ins_per_cpu_s": sign_ins as f64 / sign_in_cpu.max(0.01),
    }))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if let Some(path) = &args.write_wat_hook {
        std::fs::write(path, test_support::wat_custom_auth())?;
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let engine = HookEngine::new(Limits::default())?;
        let mut hooks = Vec::new();
        for name in &args.only {
            let wasm = match name.as_str() {
                "wat" => test_support::wat_custom_auth(),
                "assemblyscript" => test_support::assemblyscript_custom_auth(),
                "javascript" => test_support::js_custom_auth(),
                other => return Err(format!("unknown hook `{other}`").into()),
            };
            hooks.push(measure(&engine, name, wasm, args.seconds).await?);
        }
        println!(
            "{}",
            json!({
                "default_fuel": engine.limits().fuel,
                "deadline_ms": engine.limits().deadline.as_millis() as u64,
                "hooks": hooks,
            })
        );
        Ok(())
    })
}
