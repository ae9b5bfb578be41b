//! `gatehouse hook …`: a pool's hooks from the command line. Setting one compiles it here,
//! with no request timeout, so any module the engine accepts can be set this way.

use clap::{ArgGroup, Args, Subcommand};
use gatehouse_crypto::secret::Secret;
use gatehouse_domain::hooks::{HookSummary, Trigger};
use gatehouse_domain::ids::PoolSlug;
use gatehouse_service::hooks::HookSource;
use gatehouse_service::{Gatehouse, RequestMeta};
use serde_json::{Value, json};

use super::operate::say;

#[derive(Debug, Subcommand)]
pub enum HookCommand {
    /// Set a pool's hook for a trigger: a WebAssembly module or component (compiled now), or
    /// an HTTPS webhook.
    Set(HookSet),
    /// List a pool's hooks.
    List {
        #[arg(long)]
        pool: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove a pool's hook for a trigger.
    Delete {
        #[arg(long)]
        pool: String,
        #[arg(long, value_parser = trigger)]
        trigger: Trigger,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("runtime").required(true).args(["wasm", "url"])))]
pub struct HookSet {
    #[arg(long)]
    pool: String,
    /// define-auth-challenge, create-auth-challenge, verify-auth-challenge or
    /// pre-token-generation.
    #[arg(long, value_parser = trigger)]
    trigger: Trigger,
    /// A WebAssembly component or core module (`.wasm`).
    #[arg(long, value_name = "FILE")]
    wasm: Option<String>,
    /// An HTTPS endpoint the events are POSTed to.
    #[arg(long, value_name = "URL", requires = "secret")]
    url: Option<String>,
    /// The secret the webhook's events are signed with (at least 16 characters).
    #[arg(long)]
    secret: Option<String>,
    #[arg(long)]
    json: bool,
}

fn trigger(s: &str) -> Result<Trigger, String> {
    Trigger::parse(s).map_err(|e| e.to_string())
}

fn view(s: &HookSummary) -> Value {
    json!({
        "trigger": s.trigger.as_str(),
        "runtime": s.runtime,
        "kind": s.kind.map(|k| k.as_str()),
        "sha256": s.sha256,
        "size": s.size,
        "url": s.url,
        "updated_at": s.updated_at.as_secs(),
    })
}

pub async fn run(gh: &Gatehouse, command: HookCommand) -> Result<(), String> {
    let pool_of = |name: &str| PoolSlug::parse(name).map_err(|e| e.to_string());
    match command {
        HookCommand::Set(a) => {
            let pool = gh
                .pool(&pool_of(&a.pool)?)
                .await
                .map_err(|e| e.for_operator())?;
            let source = match (a.wasm, a.url, a.secret) {
                (Some(path), _, _) => HookSource::Wasm(
                    std::fs::read(&path).map_err(|e| format!("cannot read {path}: {e}"))?,
                ),
                (None, Some(url), Some(secret)) => HookSource::Webhook {
                    url,
                    secret: Secret::new(secret),
                },
                _ => return Err("give --wasm FILE, or --url URL with --secret".to_owned()),
            };
            let set = gh
                .set_hook(&pool, None, a.trigger, source, &RequestMeta::default())
                .await
                .map_err(|e| e.for_operator())?;
            let v = view(&set);
            say(a.json, &v, || {
                format!(
                    "{} of pool {} is now {}",
                    set.trigger.as_str(),
                    pool.slug,
                    set.sha256
                        .as_deref()
                        .map(|s| format!(
                            "a wasm {} ({s})",
                            set.kind.map(|k| k.as_str()).unwrap_or("")
                        ))
                        .or(set.url.clone())
                        .unwrap_or_default()
                )
            });
            Ok(())
        }
        HookCommand::List { pool, json } => {
            let pool = gh
                .pool(&pool_of(&pool)?)
                .await
                .map_err(|e| e.for_operator())?;
            let hooks = gh
                .list_hooks(&pool, None)
                .await
                .map_err(|e| e.for_operator())?;
            let rows: Vec<Value> = hooks.iter().map(view).collect();
            if json {
                println!("{}", json!({ "hooks": rows }));
            } else {
                for h in &hooks {
                    println!(
                        "{}\t{}\t{}",
                        h.trigger.as_str(),
                        h.runtime,
                        h.sha256.as_deref().or(h.url.as_deref()).unwrap_or("")
                    );
                }
            }
            Ok(())
        }
        HookCommand::Delete {
            pool,
            trigger,
            json,
        } => {
            let pool = gh
                .pool(&pool_of(&pool)?)
                .await
                .map_err(|e| e.for_operator())?;
            gh.delete_hook(&pool, None, trigger, &RequestMeta::default())
                .await
                .map_err(|e| e.for_operator())?;
            say(json, &json!({"deleted": trigger.as_str()}), || {
                format!("{} of pool {} removed", trigger.as_str(), pool.slug)
            });
            Ok(())
        }
    }
}
