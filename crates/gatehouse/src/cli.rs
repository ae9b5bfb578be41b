//! The command line: `serve` and the admin subcommands, which work on the configured database
//! (also while servers run) and print JSON with `--json`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};
use gatehouse_crypto::secret::Secret;
use gatehouse_domain::client::{ClientType, GrantType};
use gatehouse_domain::ids::{PoolSlug, Username};
use gatehouse_domain::permission::Role;
use gatehouse_domain::pool::{HostName, PoolSettings, SigningAlg};
use gatehouse_domain::rotation::RotationKind;
use gatehouse_domain::store::KeyPurpose;
use gatehouse_domain::time::SystemClock;
use gatehouse_domain::user::UserAttributes;
use gatehouse_service::RequestMeta;
use gatehouse_service::clients::NewAppClient;
use serde_json::json;

use crate::app::{self, Application};
use crate::config::{Config, LogFormat};

mod hook;
mod idp;
mod operate;

use operate::UserAction;

#[derive(Debug, Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "Gatehouse: a multi-tenant identity service"
)]
struct Cli {
    /// A TOML configuration file; GATEHOUSE_* environment variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Manage pools.
    #[command(subcommand)]
    Pool(PoolCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage app clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage identity providers (SAML 2.0, OpenID Connect, social).
    #[command(subcommand)]
    Idp(idp::IdpCommand),
    /// Manage a pool's hooks (custom sign-in challenges, token claims): WebAssembly or
    /// HTTPS webhooks.
    #[command(subcommand)]
    Hook(hook::HookCommand),
    /// Measure the argon2id rate at the configured parameters, on every core: the ceiling of
    /// password sign-ins per second.
    HashRate {
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        #[arg(long)]
        json: bool,
    },
}

/// The key families of `pool rotate-key --purpose`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PurposeArg {
    /// Keys that sign access tokens, in the pool's algorithm.
    Access,
    /// Keys that sign ID tokens, RS256.
    IdToken,
}

#[derive(Debug, Subcommand)]
enum PoolCommand {
    /// Create a pool with its first signing keys (one for access tokens, one for ID tokens).
    Create {
        pool: String,
        /// Host names whose root serves this pool.
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Signature algorithm of the pool's access tokens: ES256, RS256 or EdDSA.
        #[arg(long, default_value = "ES256")]
        alg: String,
        #[arg(long)]
        json: bool,
    },
    /// List pools in name order, a page at a time.
    List(PageArgs),
    /// Show a pool: its issuer, hosts, token lifetimes and signing keys.
    Show {
        pool: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a pool with its users, groups, app clients, signing keys and sessions.
    Delete {
        pool: String,
        /// Confirms the deletion, which cannot be undone.
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        json: bool,
    },
    /// Rotate one family of the pool's signing keys: the next key (published ahead) signs from
    /// now on, the current one stays published until the tokens it signed expire, and a fresh
    /// next key is published. Refused while the previous key may still verify live tokens.
    RotateKey {
        pool: String,
        /// Which keys: those that sign access tokens, or those that sign ID tokens (RS256).
        #[arg(long, value_enum, default_value_t = PurposeArg::Access)]
        purpose: PurposeArg,
        /// Rotate now even if the previous key may still verify live tokens: they are refused.
        #[arg(long, conflicts_with = "compromised")]
        force: bool,
        /// The current key is compromised: drop it at once; every token it signed is refused.
        #[arg(long)]
        compromised: bool,
        #[arg(long)]
        json: bool,
    },
    /// Change a pool's settings: whether sign-in asks for a second factor, and how long its
    /// challenge sessions last.
    Set {
        #[arg(long)]
        pool: String,
        /// off: never; optional: users who enrolled a factor (the default); required: every
        /// user, enrolling one at sign-in if it has none.
        #[arg(long, value_parser = ["off", "optional", "required"])]
        mfa: Option<String>,
        /// Minutes a sign-in's challenge session may be answered in (3 to 15; 3 by default).
        #[arg(long, value_parser = clap::value_parser!(u8).range(3..=15))]
        auth_session_minutes: Option<u8>,
        #[arg(long)]
        json: bool,
    },
    /// Brand the pool's hosted pages. Options given are set (an empty value unsets one);
    /// the others keep their values, or with --clear are unset.
    SetTheme {
        #[arg(long)]
        pool: String,
        /// The name the pages show instead of the pool's slug (at most 64 characters).
        #[arg(long)]
        display_name: Option<String>,
        /// Buttons and links, #rrggbb; white text on it needs a contrast of 4.5:1.
        #[arg(long)]
        accent_color: Option<String>,
        /// The page's background, #rrggbb.
        #[arg(long)]
        background_color: Option<String>,
        /// A PNG, JPEG or WebP file of at most 48 KiB.
        #[arg(long)]
        logo: Option<PathBuf>,
        /// Start from no theme: what is not given is unset.
        #[arg(long)]
        clear: bool,
        #[arg(long)]
        json: bool,
    },
    /// Replace the host names bound to a pool (none unbinds it). The first host names the
    /// pool's issuer: when the issuer changes, tokens issued under the old one are refused.
    SetHosts {
        pool: String,
        /// Host names whose root serves this pool, the issuer's first.
        #[arg(long = "host")]
        hosts: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user. Without --password-stdin a temporary password is delivered to it.
    Create(UserCreate),
    /// List a pool's users in username order, a page at a time.
    List {
        #[arg(long)]
        pool: String,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show a user with its active sessions.
    Show(UserTarget),
    /// Delete a user; its tokens are refused, and every impersonation it started ends.
    Delete(UserTarget),
    /// Disable a user: it cannot sign in, and its sessions and tokens end at once.
    Disable(UserTarget),
    /// Enable a user again; this also clears a lock after failed sign-ins.
    Enable(UserTarget),
    /// Sign a user out everywhere: every session ends and every token issued until now is
    /// refused.
    SignOut(UserTarget),
}

#[derive(Debug, Args)]
struct UserTarget {
    #[arg(long)]
    pool: String,
    username: String,
    #[arg(long)]
    json: bool,
}

/// A page of a listing: where to start and how many (1 to 1000).
#[derive(Debug, Args)]
struct PageArgs {
    /// Start after this name (the `next` of the previous page).
    #[arg(long)]
    cursor: Option<String>,
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: u32,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct UserCreate {
    #[arg(long)]
    pool: String,
    username: String,
    #[arg(long)]
    email: String,
    #[arg(long)]
    name: String,
    #[arg(long = "role")]
    roles: Vec<String>,
    /// Read a permanent password from standard input.
    #[arg(long)]
    password_stdin: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Create an app client; prints its client_id and, unless it is public, its secret
    /// (shown once). With no --grant: client_credentials and token exchange for a confidential
    /// client, authorization_code for a public one.
    Create {
        #[arg(long)]
        pool: String,
        #[arg(long)]
        name: String,
        /// Where authorization responses may go (repeatable); matched exactly.
        #[arg(long = "redirect-uri", value_name = "URI")]
        redirect_uris: Vec<String>,
        /// Where RP-initiated logout may return to (repeatable); matched exactly.
        #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
        post_logout_redirect_uris: Vec<String>,
        /// A browser or native app: no secret, and no grant that a secret alone authorises.
        #[arg(long)]
        public: bool,
        /// Not the pool owner's own application: users consent before it gets their data.
        #[arg(long)]
        third_party: bool,
        /// Where logout tokens go when a session of this client ends (OpenID Connect
        /// Back-Channel Logout).
        #[arg(long = "backchannel-logout-uri", value_name = "URI")]
        backchannel_logout_uri: Option<String>,
        /// The client needs `sid` in its logout tokens (Gatehouse always sends it).
        #[arg(long, requires = "backchannel_logout_uri")]
        backchannel_logout_session_required: bool,
        /// authorization_code, refresh_token or client_credentials (repeatable); token
        /// exchange is urn:ietf:params:oauth:grant-type:token-exchange.
        #[arg(long = "grant", value_name = "GRANT", value_parser = grant_type)]
        grants: Vec<String>,
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// The API sign-in flows it may start, comma-separated (Cognito's ExplicitAuthFlows:
        /// ALLOW_USER_PASSWORD_AUTH, ALLOW_REFRESH_TOKEN_AUTH, ALLOW_CUSTOM_AUTH,
        /// ALLOW_USER_AUTH); "" for none. Without it: all but ALLOW_USER_AUTH.
        #[arg(long = "auth-flows", value_name = "FLOWS")]
        auth_flows: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List a pool's app clients (never their secrets).
    List {
        #[arg(long)]
        pool: String,
        #[arg(long)]
        json: bool,
    },
    /// Show an app client (never its secret).
    Show(ClientTarget),
    /// Delete an app client: its tokens are refused, and every impersonation it started ends.
    Delete(ClientTarget),
}

/// A `--grant` value, checked as it is read.
fn grant_type(s: &str) -> Result<String, String> {
    GrantType::parse(s)
        .map(|g| g.as_str().to_owned())
        .map_err(|e| e.message)
}

#[derive(Debug, Args)]
struct ClientTarget {
    #[arg(long)]
    pool: String,
    client_id: String,
    #[arg(long)]
    json: bool,
}

/// Information and above, except PostgreSQL's notices: applying migrations that are already
/// applied makes it say that their bookkeeping table exists, on every start and every command.
const DEFAULT_LOG_FILTER: &str = "info,sqlx::postgres::notice=warn";

/// A one-shot command's: also without sqlx's per-statement telemetry (a statement slower than
/// a second is a warning with its whole text, such as a migration on a busy database), which
/// is the server's to report, not a command's.
const COMMAND_LOG_FILTER: &str = "info,sqlx::postgres::notice=warn,sqlx::query=error";

fn init_logging(format: LogFormat, serve: bool) {
    let default = if serve {
        DEFAULT_LOG_FILTER
    } else {
        COMMAND_LOG_FILTER
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format, matches!(cli.command, Command::Serve));
    match run(cli.command, &config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_hosts(hosts: &[String]) -> Result<Vec<HostName>, String> {
    hosts
        .iter()
        .map(|h| HostName::parse(h).map_err(|e| e.to_string()))
        .collect()
}

async fn run(command: Command, config: &Config) -> Result<(), String> {
    match command {
        Command::Serve => serve(config).await,
        Command::Pool(PoolCommand::Create {
            pool,
            hosts,
            alg,
            json,
        }) => {
            let gh = services(config).await?;
            let slug = PoolSlug::parse(&pool).map_err(|e| e.to_string())?;
            let hosts = parse_hosts(&hosts)?;
            let settings = PoolSettings {
                signing_alg: SigningAlg::parse(&alg).map_err(|e| e.to_string())?,
                ..PoolSettings::default()
            };
            let created = gh
                .create_pool(slug, settings, hosts, None, &RequestMeta::default())
                .await
                .map_err(|e| e.for_operator())?;
            let issuer = gh.issuer(&created);
            if json {
                println!(
                    "{}",
                    json!({"pool": created.slug.as_str(), "id": created.id.to_string(), "issuer": issuer})
                );
            } else {
                println!("created pool {} (issuer {issuer})", created.slug);
            }
            Ok(())
        }
        Command::Pool(PoolCommand::SetHosts { pool, hosts, json }) => {
            let gh = services(config).await?;
            let slug = PoolSlug::parse(&pool).map_err(|e| e.to_string())?;
            let change = gh
                .set_pool_hosts_as_operator(&operate::operator(), &slug, parse_hosts(&hosts)?)
                .await
                .map_err(|e| e.for_operator())?;
            let hosts: Vec<&str> = change.pool.hosts.iter().map(HostName::as_str).collect();
            if json {
                println!(
                    "{}",
                    json!({
                        "pool": change.pool.slug.as_str(),
                        "hosts": hosts,
                        "issuer": change.issuer,
                        "previous_issuer": change.previous_issuer,
                        "issuer_changed": change.issuer_changed(),
                    })
                );
            } else if change.issuer_changed() {
                println!(
                    "pool {} now answers at [{}]; its issuer changed from {} to {}: tokens \
                     issued under the old issuer are refused from now on",
                    change.pool.slug,
                    hosts.join(", "),
                    change.previous_issuer,
                    change.issuer
                );
            } else {
                println!(
                    "pool {} now answers at [{}]; its issuer {} is unchanged and tokens stay valid",
                    change.pool.slug,
                    hosts.join(", "),
                    change.issuer
                );
            }
            Ok(())
        }
        Command::User(UserCommand::Create(args)) => create_user(config, args).await,
        Command::Pool(PoolCommand::List(page)) => {
            let gh = services(config).await?;
            let found = gh
                .list_pools_as_operator(page.cursor.as_deref(), page.limit)
                .await
                .map_err(|e| e.for_operator())?;
            let rows: Vec<serde_json::Value> = found
                .items
                .iter()
                .map(|p| operate::pool_row(&gh, p))
                .collect();
            print_page(page.json, "pools", &rows, found.next.as_deref(), |r| {
                format!(
                    "{}\t{}",
                    r["pool"].as_str().unwrap_or(""),
                    r["issuer"].as_str().unwrap_or("")
                )
            });
            Ok(())
        }
        Command::User(UserCommand::List { pool, page }) => {
            let gh = services(config).await?;
            let pool = gh
                .pool(&PoolSlug::parse(&pool).map_err(|e| e.to_string())?)
                .await
                .map_err(|e| e.for_operator())?;
            let found = gh
                .list_users_as_operator(&pool, page.cursor.as_deref(), page.limit)
                .await
                .map_err(|e| e.for_operator())?;
            let rows: Vec<serde_json::Value> = found.items.iter().map(operate::user_row).collect();
            print_page(page.json, "users", &rows, found.next.as_deref(), |r| {
                format!(
                    "{}\t{}\t{}{}",
                    r["username"].as_str().unwrap_or(""),
                    r["email"].as_str().unwrap_or(""),
                    r["status"].as_str().unwrap_or(""),
                    if r["enabled"] == true {
                        ""
                    } else {
                        "\tdisabled"
                    }
                )
            });
            Ok(())
        }
        Command::Client(ClientCommand::List { pool, json }) => {
            let gh = services(config).await?;
            let pool = gh
                .pool(&PoolSlug::parse(&pool).map_err(|e| e.to_string())?)
                .await
                .map_err(|e| e.for_operator())?;
            let clients = gh
                .list_app_clients_as_operator(&pool)
                .await
                .map_err(|e| e.for_operator())?;
            let rows: Vec<serde_json::Value> = clients.iter().map(operate::client_row).collect();
            print_page(json, "clients", &rows, None, |r| {
                format!(
                    "{}\t{}\t{}\t{}",
                    r["client_id"].as_str().unwrap_or(""),
                    r["name"].as_str().unwrap_or(""),
                    if r["public"] == true {
                        "public"
                    } else {
                        "confidential"
                    },
                    if r["third_party"] == true {
                        "third-party"
                    } else {
                        "first-party"
                    }
                )
            });
            Ok(())
        }
        Command::HashRate { seconds, json } => hash_rate(config, seconds, json).await,
        Command::Pool(PoolCommand::SetTheme {
            pool,
            display_name,
            accent_color,
            background_color,
            logo,
            clear,
            json,
        }) => {
            let logo = match logo {
                Some(path) => Some(operate::logo_data_uri(&path)?),
                None => None,
            };
            let update = gatehouse_service::settings::ThemeUpdate {
                base: if clear {
                    gatehouse_service::settings::ThemeBase::Empty
                } else {
                    gatehouse_service::settings::ThemeBase::Current
                },
                display_name,
                accent_color,
                background_color,
                logo,
            };
            operate::pool_set_theme(&*services(config).await?, &pool, update, json).await
        }
        Command::Pool(PoolCommand::Set {
            pool,
            mfa,
            auth_session_minutes,
            json,
        }) => {
            operate::pool_set(
                &*services(config).await?,
                &pool,
                mfa.as_deref(),
                auth_session_minutes,
                json,
            )
            .await
        }
        Command::Pool(PoolCommand::Show { pool, json }) => {
            operate::pool_show(&*services(config).await?, &pool, json).await
        }
        Command::Pool(PoolCommand::Delete { pool, yes, json }) => {
            operate::pool_delete(&*services(config).await?, &pool, yes, json).await
        }
        Command::Pool(PoolCommand::RotateKey {
            pool,
            purpose,
            force,
            compromised,
            json,
        }) => {
            let kind = match (force, compromised) {
                (_, true) => RotationKind::Compromised,
                (true, false) => RotationKind::Forced,
                (false, false) => RotationKind::Scheduled,
            };
            let purpose = match purpose {
                PurposeArg::Access => KeyPurpose::Access,
                PurposeArg::IdToken => KeyPurpose::IdToken,
            };
            operate::pool_rotate_key(&*services(config).await?, &pool, purpose, kind, json).await
        }
        Command::User(UserCommand::Show(t)) => user_action(config, t, UserAction::Show).await,
        Command::User(UserCommand::Delete(t)) => user_action(config, t, UserAction::Delete).await,
        Command::User(UserCommand::Disable(t)) => user_action(config, t, UserAction::Disable).await,
        Command::User(UserCommand::Enable(t)) => user_action(config, t, UserAction::Enable).await,
        Command::User(UserCommand::SignOut(t)) => user_action(config, t, UserAction::SignOut).await,
        Command::Idp(command) => idp::run(&*services(config).await?, command).await,
        Command::Hook(command) => hook::run(&*services(config).await?, command).await,
        Command::Client(ClientCommand::Show(t)) => {
            operate::client_show(&*services(config).await?, &t.pool, &t.client_id, t.json).await
        }
        Command::Client(ClientCommand::Delete(t)) => {
            operate::client_delete(&*services(config).await?, &t.pool, &t.client_id, t.json).await
        }
        Command::Client(ClientCommand::Create {
            pool,
            name,
            redirect_uris,
            post_logout_redirect_uris,
            public,
            third_party,
            backchannel_logout_uri,
            backchannel_logout_session_required,
            grants,
            scopes,
            auth_flows,
            json,
        }) => {
            let gh = services(config).await?;
            let pool = gh
                .pool(&PoolSlug::parse(&pool).map_err(|e| e.to_string())?)
                .await
                .map_err(|e| e.for_operator())?;
            let new = NewAppClient {
                name,
                scopes: Some(scopes),
                grant_types: (!grants.is_empty()).then_some(grants),
                redirect_uris: Some(redirect_uris),
                post_logout_redirect_uris: Some(post_logout_redirect_uris),
                client_type: if public {
                    ClientType::Public
                } else {
                    ClientType::Confidential
                },
                third_party,
                backchannel_logout_uri,
                backchannel_logout_session_required,
                auth_flows: auth_flows.map(|list| {
                    list.split(',')
                        .map(str::trim)
                        .filter(|f| !f.is_empty())
                        .map(str::to_owned)
                        .collect()
                }),
            };
            let (client, secret) = gh
                .create_app_client_as_operator(&pool, new)
                .await
                .map_err(|e| e.for_operator())?;
            let mut view = operate::client_view(&client);
            if let Some(secret) = &secret {
                view["client_secret"] = json!(secret.expose());
            }
            operate::say(json, &view, || {
                let secret = match &secret {
                    Some(s) => format!("client_secret: {} (shown once)", s.expose()),
                    None => "client_secret: none (public client)".to_owned(),
                };
                format!(
                    "client_id: {}\n{secret}\n{}",
                    client.client_id,
                    operate::client_text(&client)
                )
            });
            Ok(())
        }
    }
}

/// Prints a listing: one JSON object `{kind: rows, "next": cursor or ""}` with `--json`, else a
/// line per row and, when there is more, how to ask for it.
fn print_page(
    as_json: bool,
    kind: &str,
    rows: &[serde_json::Value],
    next: Option<&str>,
    line: impl Fn(&serde_json::Value) -> String,
) {
    if as_json {
        println!("{}", json!({ kind: rows, "next": next.unwrap_or("") }));
        return;
    }
    for row in rows {
        println!("{}", line(row));
    }
    if let Some(next) = next {
        println!("(more: --cursor {next})");
    }
}

async fn user_action(config: &Config, t: UserTarget, action: UserAction) -> Result<(), String> {
    let gh = services(config).await?;
    operate::user(&gh, &t.pool, &t.username, action, t.json).await
}

async fn services(config: &Config) -> Result<Arc<gatehouse_service::Gatehouse>, String> {
    let (gh, _) = app::services(config, Arc::new(SystemClock))
        .await
        .map_err(|e| e.to_string())?;
    gh.ensure_staff_pool().await.map_err(|e| e.for_operator())?;
    Ok(gh)
}

async fn create_user(config: &Config, args: UserCreate) -> Result<(), String> {
    let gh = services(config).await?;
    let pool = gh
        .pool(&PoolSlug::parse(&args.pool).map_err(|e| e.to_string())?)
        .await
        .map_err(|e| e.for_operator())?;
    let username = Username::parse(&args.username).map_err(|e| e.to_string())?;
    let roles = args
        .roles
        .iter()
        .map(|r| Role::parse(r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let password = if args.password_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| e.to_string())?;
        let s = s.trim_end_matches(['\r', '\n']).to_owned();
        Some(Secret::new(s))
    } else {
        None
    };
    let attributes = UserAttributes {
        email: args.email,
        name: args.name,
        roles,
        ..UserAttributes::default()
    };
    let (user, _) = gh
        .create_user_with_password(&pool, username.as_str(), attributes, password, None)
        .await
        .map_err(|e| e.for_operator())?;
    if args.json {
        println!(
            "{}",
            json!({"id": user.id.to_string(), "username": user.username.as_str(), "status": user.status.as_str()})
        );
    } else {
        println!("created user {} ({})", user.username, user.status.as_str());
    }
    Ok(())
}

/// How long requests in flight may take to finish once the server is told to stop.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

async fn serve(config: &Config) -> Result<(), String> {
    let started = std::time::Instant::now();
    let app = Application::build(config)
        .await
        .map_err(|e| e.to_string())?;
    let addr = app.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(
        %addr,
        public_url = %config.public_url,
        startup_ms = started.elapsed().as_millis() as u64,
        "gatehouse is serving"
    );
    let gh = app.gatehouse.clone();
    // Requests in flight get a grace period after the signal, then the process exits anyway:
    // a client that keeps a request open must not keep the server from stopping.
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = app::shutdown_signal();
    let signal = async move {
        shutdown.await;
        let _ = stopping.send(());
    };
    let grace = async move {
        if stopped.await.is_ok() {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let served = tokio::select! {
        served = app.run_until(signal) => served,
        () = grace => {
            tracing::warn!(
                grace_secs = SHUTDOWN_GRACE.as_secs(),
                "requests still in flight after the grace period; stopping anyway"
            );
            Ok(())
        }
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, gh.flush_audit())
        .await
        .is_err()
    {
        tracing::warn!("queued audit events were not all written before stopping");
    }
    served.map_err(|e| e.to_string())
}

async fn hash_rate(config: &Config, seconds: f64, json: bool) -> Result<(), String> {
    use gatehouse_crypto::password::{HashCost, PasswordHasher};
    let h = &config.password_hashing;
    let cost = HashCost {
        memory_kib: h.memory_kib,
        iterations: h.iterations,
        parallelism: h.parallelism,
    };
    let hasher = PasswordHasher::new(cost, 1).map_err(|e| e.to_string())?;
    let password = Secret::new("correct horse battery staple");
    let phc = hasher.hash(&password).await.map_err(|e| e.to_string())?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(seconds.max(0.1));
    let started = std::time::Instant::now();
    let counts: Vec<u64> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut n = 0u64;
                    while std::time::Instant::now() < deadline {
                        if hasher.verify_blocking(&phc, &password).unwrap_or(false) {
                            n += 1;
                        }
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or(0)).collect()
    });
    let total: u64 = counts.iter().sum();
    let rate = total as f64 / started.elapsed().as_secs_f64();
    if json {
        println!(
            "{}",
            json!({"hashes_per_second": rate, "threads": threads, "memory_kib": h.memory_kib,
                   "iterations": h.iterations, "parallelism": h.parallelism})
        );
    } else {
        println!(
            "argon2id m={} KiB, t={}, p={}: {rate:.1} verifications/s on {threads} threads",
            h.memory_kib, h.iterations, h.parallelism
        );
    }
    Ok(())
}
