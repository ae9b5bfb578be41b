//! `/api/auth/settings/password-policy` and `/api/auth/settings/invitation-messages`, with the
//! reference's (Cognito's) field names. A `PUT` sets the fields it names.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use gatehouse_domain::pool::{InvitationMessages, PasswordPolicy};
use gatehouse_service::settings::{InvitationMessagesUpdate, PasswordPolicyUpdate};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Authenticated, Meta, PoolCtx};

#[derive(Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct PasswordPolicyRequest {
    #[serde(default)]
    minimum_length: Option<i64>,
    #[serde(default)]
    require_lowercase: Option<bool>,
    #[serde(default)]
    require_numbers: Option<bool>,
    #[serde(default)]
    require_symbols: Option<bool>,
    #[serde(default)]
    require_uppercase: Option<bool>,
    #[serde(default)]
    temporary_password_validity_days: Option<i64>,
}

impl From<PasswordPolicyRequest> for PasswordPolicyUpdate {
    fn from(r: PasswordPolicyRequest) -> Self {
        Self {
            minimum_length: r.minimum_length,
            require_lowercase: r.require_lowercase,
            require_uppercase: r.require_uppercase,
            require_numbers: r.require_numbers,
            require_symbols: r.require_symbols,
            temporary_password_validity_days: r.temporary_password_validity_days,
        }
    }
}

#[derive(Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PasswordPolicyView {
    minimum_length: u8,
    require_lowercase: bool,
    require_numbers: bool,
    require_symbols: bool,
    require_uppercase: bool,
    temporary_password_validity_days: u16,
}

impl From<&PasswordPolicy> for PasswordPolicyView {
    fn from(p: &PasswordPolicy) -> Self {
        Self {
            minimum_length: p.minimum_length,
            require_lowercase: p.require_lowercase,
            require_numbers: p.require_numbers,
            require_symbols: p.require_symbols,
            require_uppercase: p.require_uppercase,
            temporary_password_validity_days: p.temporary_password_validity_days,
        }
    }
}

#[derive(Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvitationMessagesRequest {
    #[serde(default, rename = "EmailMessage")]
    email_message: Option<String>,
    #[serde(default, rename = "EmailSubject")]
    email_subject: Option<String>,
    #[serde(default, rename = "SMSMessage")]
    sms_message: Option<String>,
}

#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct InvitationMessagesView {
    #[serde(rename = "EmailMessage")]
    email_message: String,
    #[serde(rename = "EmailSubject")]
    email_subject: String,
    #[serde(rename = "SMSMessage")]
    sms_message: String,
}

impl From<&InvitationMessages> for InvitationMessagesView {
    fn from(m: &InvitationMessages) -> Self {
        Self {
            email_message: m.email_message.clone(),
            email_subject: m.email_subject.clone(),
            sms_message: m.sms_message.clone(),
        }
    }
}

/// Public, as the reference says (`security: []`).
pub async fn get_password_policy(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
) -> Json<PasswordPolicyView> {
    Json(PasswordPolicyView::from(&state.gh.password_policy(&pool)))
}

pub async fn put_password_policy(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<PasswordPolicyRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .gh
        .update_password_policy(&pool, &caller, body.into(), &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn get_invitation_messages(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
) -> Result<Json<InvitationMessagesView>, ApiError> {
    let messages = state.gh.invitation_messages(&pool, &caller).await?;
    Ok(Json(InvitationMessagesView::from(&messages)))
}

pub async fn put_invitation_messages(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<InvitationMessagesRequest>,
) -> Result<StatusCode, ApiError> {
    let update = InvitationMessagesUpdate {
        email_subject: body.email_subject,
        email_message: body.email_message,
        sms_message: body.sms_message,
    };
    state
        .gh
        .update_invitation_messages(&pool, &caller, update, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_policy_uses_cognito_names() {
        let v = serde_json::to_value(PasswordPolicyView::from(&PasswordPolicy::default())).unwrap();
        assert_eq!(
            v,
            json!({
                "MinimumLength": 8,
                "RequireLowercase": false,
                "RequireNumbers": false,
                "RequireSymbols": false,
                "RequireUppercase": false,
                "TemporaryPasswordValidityDays": 7
            })
        );
        let req: PasswordPolicyRequest =
            serde_json::from_value(json!({"MinimumLength": 10, "RequireSymbols": true})).unwrap();
        assert_eq!(req.minimum_length, Some(10));
        assert_eq!(req.require_symbols, Some(true));
        assert!(
            serde_json::from_value::<PasswordPolicyRequest>(json!({"minimum_length": 10})).is_err()
        );
        assert!(
            serde_json::from_value::<PasswordPolicyRequest>(json!({"MinimumLength": "10"}))
                .is_err()
        );
    }

    #[test]
    fn templates_use_the_reference_names() {
        let v = serde_json::to_value(InvitationMessagesView::from(&InvitationMessages::default()))
            .unwrap();
        assert!(v.get("EmailMessage").is_some());
        assert!(v.get("EmailSubject").is_some());
        assert!(v.get("SMSMessage").is_some());
        let req: InvitationMessagesRequest =
            serde_json::from_value(json!({"SMSMessage": "{username} {####}"})).unwrap();
        assert_eq!(req.sms_message.as_deref(), Some("{username} {####}"));
        assert!(
            serde_json::from_value::<InvitationMessagesRequest>(json!({"SmsMessage": "x"}))
                .is_err()
        );
    }
}

/// `/api/auth/settings/mfa` (an extension): whether sign-in asks for a second factor,
/// `off`, `optional` or `required`.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct MfaBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mfa_configuration: Option<String>,
    /// Minutes a challenge session may be answered in (Cognito's `AuthSessionValidity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth_session_validity: Option<u8>,
}

pub async fn get_mfa(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
) -> Result<Json<MfaBody>, ApiError> {
    let mode = state.gh.mfa_setting(&pool, &caller)?;
    Ok(Json(MfaBody {
        mfa_configuration: Some(mode.as_str().to_owned()),
        auth_session_validity: Some((pool.settings.challenge_session_secs() / 60) as u8),
    }))
}

pub async fn put_mfa(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<MfaBody>,
) -> Result<StatusCode, ApiError> {
    let mode = body
        .mfa_configuration
        .as_deref()
        .map(gatehouse_domain::mfa::MfaMode::parse)
        .transpose()
        .map_err(gatehouse_service::ServiceError::from)?;
    if mode.is_none() && body.auth_session_validity.is_none() {
        return Err(ApiError::bad_request(
            "give MfaConfiguration, AuthSessionValidity or both",
        ));
    }
    state
        .gh
        .update_mfa_setting(&pool, &caller, mode, body.auth_session_validity, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `/api/auth/settings/staff-access` (an extension): whether staff tokens are accepted here.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct StaffAccessBody {
    staff_access_enabled: bool,
}

pub async fn get_staff_access(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
) -> Result<Json<StaffAccessBody>, ApiError> {
    let access = state.gh.staff_access(&pool, &caller)?;
    Ok(Json(StaffAccessBody {
        staff_access_enabled: access == gatehouse_domain::pool::StaffAccess::Allowed,
    }))
}

pub async fn put_staff_access(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<StaffAccessBody>,
) -> Result<StatusCode, ApiError> {
    let access = if body.staff_access_enabled {
        gatehouse_domain::pool::StaffAccess::Allowed
    } else {
        gatehouse_domain::pool::StaffAccess::Denied
    };
    state
        .gh
        .update_staff_access(&pool, &caller, access, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `/api/auth/settings/theme` (an extension): how the pool's hosted pages are branded. A
/// `PUT` sets the fields it names; an empty string unsets one.
#[derive(Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct ThemeRequest {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    accent_color: Option<String>,
    #[serde(default)]
    background_color: Option<String>,
    #[serde(default)]
    logo: Option<String>,
}

#[derive(Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ThemeView {
    #[serde(skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    accent_color: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    background_color: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logo: Option<String>,
}

impl From<&gatehouse_domain::theme::Theme> for ThemeView {
    fn from(t: &gatehouse_domain::theme::Theme) -> Self {
        Self {
            display_name: t.display_name.as_ref().map(|n| n.as_str().to_owned()),
            accent_color: t.accent_color.map(|c| c.to_string()),
            background_color: t.background_color.map(|c| c.to_string()),
            logo: t.logo.as_ref().map(|l| l.as_str().to_owned()),
        }
    }
}

pub async fn get_theme(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
) -> Result<Json<ThemeView>, ApiError> {
    let theme = state.gh.theme(&pool, &caller)?;
    Ok(Json(ThemeView::from(&theme)))
}

pub async fn put_theme(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<ThemeRequest>,
) -> Result<Json<ThemeView>, ApiError> {
    let update = gatehouse_service::settings::ThemeUpdate {
        base: gatehouse_service::settings::ThemeBase::Current,
        display_name: body.display_name,
        accent_color: body.accent_color,
        background_color: body.background_color,
        logo: body.logo,
    };
    let theme = state.gh.update_theme(&pool, &caller, update, &meta).await?;
    Ok(Json(ThemeView::from(&theme)))
}
