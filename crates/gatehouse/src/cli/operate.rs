//! What an operator does on the database without writing curl: show, delete, disable, enable
//! and sign out, and rotate a pool's signing keys. Every change goes through the same service
//! checks as the admin API, as the operator (who holds every permission, and is named in the
//! audit log by the account that ran the command).

use gatehouse_domain::client::AppClient;
use gatehouse_domain::ids::{PoolSlug, Username};
use gatehouse_domain::permission::Scope;
use gatehouse_domain::pool::{HostName, Pool};
use gatehouse_domain::rotation::RotationKind;
use gatehouse_domain::session::{Session, SessionKind};
use gatehouse_domain::store::{KeyPurpose, KeyState, SigningKeyRecord};
use gatehouse_domain::user::{MfaState, User};
use gatehouse_service::settings::ThemeUpdate;
use gatehouse_service::{Gatehouse, Operator, RequestMeta};
use serde_json::{Value, json};

/// The operator, named after the account that runs the command.
pub fn operator() -> Operator {
    let name = ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|n| !n.is_empty()))
        .unwrap_or_else(|| "operator".to_owned());
    Operator::new(&name)
}

pub fn slug(pool: &str) -> Result<PoolSlug, String> {
    PoolSlug::parse(pool).map_err(|e| e.to_string())
}

/// Prints `value` as one JSON line with `--json`, else `text`.
pub fn say(as_json: bool, value: &Value, text: impl FnOnce() -> String) {
    if as_json {
        println!("{value}");
    } else {
        println!("{}", text());
    }
}

pub fn pool_row(gh: &Gatehouse, p: &Pool) -> Value {
    let hosts: Vec<&str> = p.hosts.iter().map(HostName::as_str).collect();
    json!({"pool": p.slug.as_str(), "id": p.id.to_string(), "issuer": gh.issuer(p),
        "hosts": hosts, "alg": p.settings.signing_alg.as_str()})
}

pub fn user_row(u: &User) -> Value {
    json!({"username": u.username.as_str(), "id": u.id.to_string(),
        "email": u.attributes.email, "status": u.status.as_str(),
        "enabled": u.enabled.is_enabled()})
}

pub fn client_row(c: &AppClient) -> Value {
    let scopes: Vec<&str> = c.scopes.iter().map(Scope::as_str).collect();
    json!({"client_id": c.client_id.as_str(), "name": c.name,
        "scopes": scopes, "confidential": !c.is_public(), "public": c.is_public(),
        "third_party": c.third_party})
}

/// Everything registered about a client, never its secret.
pub fn client_view(c: &AppClient) -> Value {
    let mut view = client_row(c);
    let grants: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
    view["grant_types"] = json!(grants);
    view["redirect_uris"] = json!(c.redirect_uris);
    view["post_logout_redirect_uris"] = json!(c.post_logout_redirect_uris);
    let flows: Vec<&str> = c.auth_flows.iter().map(|f| f.as_str()).collect();
    view["explicit_auth_flows"] = json!(flows);
    if let Some(b) = &c.backchannel_logout {
        view["backchannel_logout_uri"] = json!(b.uri);
        view["backchannel_logout_session_required"] = json!(b.session_required);
    }
    view["created_at"] = json!(c.created_at.to_rfc3339());
    view
}

/// The registration of a client, for people: one line per property.
pub fn client_text(c: &AppClient) -> String {
    let list = |items: &[String]| {
        if items.is_empty() {
            "(none)".to_owned()
        } else {
            items.join(" ")
        }
    };
    let scopes: Vec<String> = c.scopes.iter().map(|s| s.as_str().to_owned()).collect();
    let grants: Vec<String> = c
        .grant_types
        .iter()
        .map(|g| g.as_str().to_owned())
        .collect();
    let flows: Vec<String> = c.auth_flows.iter().map(|f| f.as_str().to_owned()).collect();
    format!(
        "type: {}\nparty: {}\nscopes: {}\ngrant types: {}\nredirect URIs: {}\n\
         post-logout redirect URIs: {}\nsign-in flows: {}\ncreated: {}",
        if c.is_public() {
            "public"
        } else {
            "confidential"
        },
        if c.third_party { "third" } else { "first" },
        list(&scopes),
        list(&grants),
        list(&c.redirect_uris),
        list(&c.post_logout_redirect_uris),
        list(&flows),
        c.created_at.to_rfc3339()
    )
}

fn key_row(k: &SigningKeyRecord) -> Value {
    json!({"kid": k.kid, "purpose": k.purpose.as_str(), "alg": k.alg.as_str(),
        "state": k.state.as_str(),
        "created_at": k.created_at.to_rfc3339(), "state_since": k.state_since.to_rfc3339()})
}

fn session_row(s: &Session) -> Value {
    let mut row = json!({"id": s.id.to_string(),
        "client_id": s.client_id.as_ref().map(|c| c.as_str()),
        "created_at": s.created_at.to_rfc3339(), "expires_at": s.expires_at.to_rfc3339()});
    row["kind"] = json!(s.kind_name());
    match &s.kind {
        SessionKind::SignIn | SessionKind::Browser { .. } | SessionKind::Authorized { .. } => {}
        SessionKind::Impersonation { actor, reason } => {
            row["actor"] = json!({"pool": actor.pool.as_str(), "id": actor.id,
                "name": actor.display_name()});
            row["reason"] = json!(reason);
        }
    }
    row
}

pub async fn pool_show(gh: &Gatehouse, pool: &str, as_json: bool) -> Result<(), String> {
    let slug = slug(pool)?;
    let pool = gh.pool(&slug).await.map_err(|e| e.for_operator())?;
    let mut keys = gh
        .signing_keys_as_operator(&slug)
        .await
        .map_err(|e| e.for_operator())?;
    // By family, each in the order its keys serve: previous, current, next.
    keys.sort_by_key(|k| {
        let order = match k.state {
            KeyState::Previous => 0,
            KeyState::Current => 1,
            KeyState::Next => 2,
        };
        (k.purpose, order)
    });
    let mut view = pool_row(gh, &pool);
    view["created_at"] = json!(pool.created_at.to_rfc3339());
    view["access_token_ttl_secs"] = json!(pool.settings.access_token_ttl_secs);
    view["max_impersonation_ttl_secs"] = json!(pool.settings.max_impersonation_ttl_secs);
    view["keys"] = keys.iter().map(key_row).collect();
    say(as_json, &view, || {
        let mut text = format!(
            "pool {} ({})\nissuer: {}\nhosts: {}\ncreated: {}\nsigning keys:",
            pool.slug,
            pool.id,
            gh.issuer(&pool),
            view["hosts"]
                .as_array()
                .map(|h| h.iter().filter_map(Value::as_str).collect::<Vec<_>>())
                .unwrap_or_default()
                .join(", "),
            pool.created_at.to_rfc3339()
        );
        for k in &keys {
            text.push_str(&format!(
                "\n  {}\t{}\t{}\t{} since {}",
                k.kid,
                k.purpose.as_str(),
                k.alg.as_str(),
                k.state.as_str(),
                k.state_since.to_rfc3339()
            ));
        }
        text
    });
    Ok(())
}

/// A logo file as the `data:` URI a theme holds; its type is read from its bytes.
pub fn logo_data_uri(path: &std::path::Path) -> Result<String, String> {
    use base64::Engine;
    use gatehouse_domain::theme::{LOGO_MAX_BYTES, LogoType};
    let shown = path.display();
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot read the logo {shown}: {e}"))?
        .len();
    if size > LOGO_MAX_BYTES as u64 {
        return Err(format!(
            "the logo {shown} is {size} bytes; at most {} KiB is allowed",
            LOGO_MAX_BYTES / 1024
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read the logo {shown}: {e}"))?;
    let kind = LogoType::sniff(&bytes)
        .ok_or_else(|| format!("the logo {shown} is not a PNG, JPEG or WebP image"))?;
    Ok(format!(
        "data:{};base64,{}",
        kind.media_type(),
        base64::engine::general_purpose::STANDARD.encode(&bytes)
    ))
}

/// Changes a pool's settings (its MFA setting), through the same operations as the admin
/// API; without options, shows them.
pub async fn pool_set(
    gh: &Gatehouse,
    pool: &str,
    mfa: Option<&str>,
    auth_session_minutes: Option<u8>,
    as_json: bool,
) -> Result<(), String> {
    let slug = slug(pool)?;
    let mut current = gh.pool(&slug).await.map_err(|e| e.for_operator())?;
    if mfa.is_some() || auth_session_minutes.is_some() {
        let mode = mfa
            .map(gatehouse_domain::mfa::MfaMode::parse)
            .transpose()
            .map_err(|e| e.to_string())?;
        gh.update_mfa_setting(
            &current,
            &operator().in_pool(&slug),
            mode,
            auth_session_minutes,
            &RequestMeta::default(),
        )
        .await
        .map_err(|e| e.for_operator())?;
        current = gh.pool(&slug).await.map_err(|e| e.for_operator())?;
    }
    let minutes = current.settings.challenge_session_secs() / 60;
    let view = json!({
        "pool": slug.as_str(),
        "mfa": current.settings.mfa.as_str(),
        "auth_session_minutes": minutes,
    });
    say(as_json, &view, || {
        format!(
            "pool {slug}\nmfa: {}\nauth session: {minutes} minutes",
            current.settings.mfa.as_str()
        )
    });
    Ok(())
}

/// Changes the theme of a pool's hosted pages, through the same operation as the admin API.
pub async fn pool_set_theme(
    gh: &Gatehouse,
    pool: &str,
    update: ThemeUpdate,
    as_json: bool,
) -> Result<(), String> {
    let slug = slug(pool)?;
    let pool = gh.pool(&slug).await.map_err(|e| e.for_operator())?;
    let theme = gh
        .update_theme(
            &pool,
            &operator().in_pool(&slug),
            update,
            &RequestMeta::default(),
        )
        .await
        .map_err(|e| e.for_operator())?;
    let logo = theme
        .logo
        .as_ref()
        .map(|l| json!({"type": l.kind().media_type(), "data_uri_chars": l.as_str().len()}));
    let view = json!({
        "pool": slug.as_str(),
        "display_name": theme.display_name.as_ref().map(|n| n.as_str()),
        "accent_color": theme.accent_color.map(|c| c.to_string()),
        "background_color": theme.background_color.map(|c| c.to_string()),
        "logo": logo,
    });
    say(as_json, &view, || {
        if theme.is_empty() {
            return format!("pool {slug} has no theme: its pages use Gatehouse's own look");
        }
        let or_none = |v: Option<String>| v.unwrap_or_else(|| "(none)".to_owned());
        format!(
            "pool {slug} theme\ndisplay name: {}\naccent colour: {}\nbackground colour: {}\nlogo: {}",
            or_none(theme.display_name.as_ref().map(|n| n.as_str().to_owned())),
            or_none(theme.accent_color.map(|c| c.to_string())),
            or_none(theme.background_color.map(|c| c.to_string())),
            or_none(
                theme
                    .logo
                    .as_ref()
                    .map(|l| l.kind().media_type().to_owned())
            ),
        )
    });
    Ok(())
}

pub async fn pool_delete(
    gh: &Gatehouse,
    pool: &str,
    yes: bool,
    as_json: bool,
) -> Result<(), String> {
    let slug = slug(pool)?;
    if !yes {
        return Err(format!(
            "deleting pool {slug} deletes its users, groups, app clients, signing keys and \
             sessions for good; pass --yes to do it"
        ));
    }
    let deleted = gh
        .delete_pool_as_operator(&operator(), &slug, &RequestMeta::default())
        .await
        .map_err(|e| e.for_operator())?;
    say(
        as_json,
        &json!({"pool": deleted.slug.as_str(), "id": deleted.id.to_string(), "deleted": true}),
        || format!("deleted pool {} ({})", deleted.slug, deleted.id),
    );
    Ok(())
}

pub async fn pool_rotate_key(
    gh: &Gatehouse,
    pool: &str,
    purpose: KeyPurpose,
    kind: RotationKind,
    as_json: bool,
) -> Result<(), String> {
    let slug = slug(pool)?;
    let rotated = gh
        .rotate_signing_key_as_operator(&operator(), &slug, purpose, kind, &RequestMeta::default())
        .await
        .map_err(|e| e.for_operator())?;
    let current = rotated.kid(KeyState::Current).unwrap_or_default();
    let next = rotated.kid(KeyState::Next).unwrap_or_default();
    let view = json!({"pool": slug.as_str(), "purpose": purpose.as_str(), "kind": kind.as_str(),
        "current": current, "next": next, "previous": rotated.kid(KeyState::Previous),
        "dropped": rotated.dropped, "keys": rotated.keys.iter().map(key_row).collect::<Vec<_>>()});
    let tokens = match purpose {
        KeyPurpose::Access => "access tokens",
        KeyPurpose::IdToken => "ID tokens",
    };
    say(as_json, &view, || {
        let mut text = format!(
            "pool {slug} signs {tokens} with key {current} from now on (other instances within \
             seconds); key {next} is published as the next one"
        );
        if let Some(previous) = rotated.kid(KeyState::Previous) {
            text.push_str(&format!(
                "\nkey {previous} stays published until the tokens it signed expire"
            ));
        }
        if !rotated.dropped.is_empty() {
            text.push_str(&format!(
                "\ndropped {}: tokens signed with it are refused",
                rotated.dropped.join(", ")
            ));
        }
        text
    });
    Ok(())
}

/// What to do to a user.
#[derive(Debug, Clone, Copy)]
pub enum UserAction {
    Show,
    Delete,
    Disable,
    Enable,
    SignOut,
}

pub async fn user(
    gh: &Gatehouse,
    pool: &str,
    username: &str,
    action: UserAction,
    as_json: bool,
) -> Result<(), String> {
    let slug = slug(pool)?;
    let pool = gh.pool(&slug).await.map_err(|e| e.for_operator())?;
    let username = Username::parse(username).map_err(|e| e.to_string())?;
    let principal = operator().in_pool(&slug);
    let meta = RequestMeta::default();
    let row =
        |done: &str| json!({"pool": slug.as_str(), "username": username.as_str(), done: true});
    match action {
        UserAction::Show => {
            let user = gh
                .get_user(&pool, &principal, &username)
                .await
                .map_err(|e| e.for_operator())?;
            let sessions = gh
                .user_sessions(&pool, &principal, &username)
                .await
                .map_err(|e| e.for_operator())?;
            let mut view = user_row(&user);
            let a = &user.attributes;
            view["pool"] = json!(slug.as_str());
            view["name"] = json!(a.name);
            view["email_verified"] = json!(a.email_verified.unwrap_or(false));
            view["phone"] = json!(a.phone);
            view["roles"] = a.roles.iter().map(|r| json!(r.as_str())).collect();
            view["mfa"] = json!(user.mfa != MfaState::NONE);
            view["created_at"] = json!(user.created_at.to_rfc3339());
            view["updated_at"] = json!(user.updated_at.to_rfc3339());
            view["tokens_not_before"] = json!(user.tokens_not_before.map(|t| t.to_rfc3339()));
            view["sessions"] = sessions.iter().map(session_row).collect();
            say(as_json, &view, || {
                let mut text = format!(
                    "user {} ({}) in pool {slug}\nemail: {}\nstatus: {}{}\nroles: {}\nactive sessions: {}",
                    user.username,
                    user.id,
                    a.email,
                    user.status.as_str(),
                    if user.enabled.is_enabled() {
                        ""
                    } else {
                        ", disabled"
                    },
                    a.roles
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                    sessions.len()
                );
                for s in &sessions {
                    text.push_str(&format!(
                        "\n  {}\t{}\tuntil {}",
                        s.id,
                        session_row(s)["kind"].as_str().unwrap_or(""),
                        s.expires_at.to_rfc3339()
                    ));
                }
                text
            });
        }
        UserAction::Delete => {
            gh.delete_user(&pool, &principal, &username, &meta)
                .await
                .map_err(|e| e.for_operator())?;
            say(as_json, &row("deleted"), || {
                format!("deleted user {username} of pool {slug}; its tokens are refused")
            });
        }
        UserAction::Disable => {
            gh.disable_user(&pool, &principal, &username, &meta)
                .await
                .map_err(|e| e.for_operator())?;
            say(as_json, &row("disabled"), || {
                format!("disabled user {username} of pool {slug}; its sessions ended")
            });
        }
        UserAction::Enable => {
            gh.enable_user(&pool, &principal, &username, &meta)
                .await
                .map_err(|e| e.for_operator())?;
            say(as_json, &row("enabled"), || {
                format!(
                    "enabled user {username} of pool {slug}; a lock after failed sign-ins is cleared"
                )
            });
        }
        UserAction::SignOut => {
            let ended = gh
                .sign_out_user(&pool, &principal, &username, &meta)
                .await
                .map_err(|e| e.for_operator())?;
            let mut view = row("signed_out");
            view["sessions_ended"] = json!(ended);
            say(as_json, &view, || {
                format!(
                    "signed out user {username} of pool {slug}: {ended} sessions ended, every \
                     token issued until now is refused"
                )
            });
        }
    }
    Ok(())
}

pub async fn client_show(
    gh: &Gatehouse,
    pool: &str,
    client_id: &str,
    as_json: bool,
) -> Result<(), String> {
    let slug = slug(pool)?;
    let pool = gh.pool(&slug).await.map_err(|e| e.for_operator())?;
    let client = gh
        .get_app_client(&pool, &operator().in_pool(&slug), client_id)
        .await
        .map_err(|e| e.for_operator())?;
    let mut view = client_view(&client);
    view["pool"] = json!(slug.as_str());
    say(as_json, &view, || {
        format!(
            "client {} ({}) in pool {slug}\n{}",
            client.client_id,
            client.name,
            client_text(&client)
        )
    });
    Ok(())
}

pub async fn client_delete(
    gh: &Gatehouse,
    pool: &str,
    client_id: &str,
    as_json: bool,
) -> Result<(), String> {
    let slug = slug(pool)?;
    let pool = gh.pool(&slug).await.map_err(|e| e.for_operator())?;
    gh.delete_app_client(
        &pool,
        &operator().in_pool(&slug),
        client_id,
        &RequestMeta::default(),
    )
    .await
    .map_err(|e| e.for_operator())?;
    say(
        as_json,
        &json!({"pool": slug.as_str(), "client_id": client_id, "deleted": true}),
        || format!("deleted app client {client_id} of pool {slug}; its tokens are refused"),
    );
    Ok(())
}
