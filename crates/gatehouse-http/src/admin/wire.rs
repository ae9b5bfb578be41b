//! Wire types of the admin API, shaped as the reference document says, and their conversions
//! to and from domain types. Requests whose shape the reference closes refuse unknown fields.

use gatehouse_domain::group::Group;
use gatehouse_domain::permission::Role;
use gatehouse_domain::session::{Actor, ActorKind};
use gatehouse_domain::user::{Address, User, UserAttributes};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// The OIDC address claim.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AddressWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formatted: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// `UserAttributes` of the reference: `email`, `name` and `roles` are required.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AttributesWire {
    pub email: String,
    pub name: String,
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zoneinfo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<AddressWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthdate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
}

impl AttributesWire {
    /// The domain attributes: roles parsed (repeats dropped); limits are the service's to check.
    pub fn into_domain(self) -> Result<UserAttributes, ApiError> {
        let mut roles: Vec<Role> = Vec::with_capacity(self.roles.len());
        for name in &self.roles {
            let role = Role::parse(name).map_err(|e| ApiError::bad_request(e.to_string()))?;
            if !roles.contains(&role) {
                roles.push(role);
            }
        }
        Ok(UserAttributes {
            email: self.email,
            name: self.name,
            roles,
            given_name: self.given_name,
            family_name: self.family_name,
            middle_name: self.middle_name,
            nickname: self.nickname,
            email_verified: self.email_verified,
            preferred_username: self.preferred_username,
            phone: self.phone,
            phone_verified: self.phone_verified,
            zoneinfo: self.zoneinfo,
            picture: self.picture,
            website: self.website,
            updated_at: self.updated_at,
            locale: self.locale,
            address: self.address.map(|a| Address {
                formatted: a.formatted,
                street_address: a.street_address,
                locality: a.locality,
                region: a.region,
                postal_code: a.postal_code,
                country: a.country,
            }),
            profile: self.profile,
            birthdate: self.birthdate,
            gender: self.gender,
        })
    }
}

impl From<&UserAttributes> for AttributesWire {
    fn from(a: &UserAttributes) -> Self {
        Self {
            email: a.email.clone(),
            name: a.name.clone(),
            roles: a.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            given_name: a.given_name.clone(),
            family_name: a.family_name.clone(),
            middle_name: a.middle_name.clone(),
            nickname: a.nickname.clone(),
            email_verified: a.email_verified,
            preferred_username: a.preferred_username.clone(),
            phone: a.phone.clone(),
            phone_verified: a.phone_verified,
            zoneinfo: a.zoneinfo.clone(),
            picture: a.picture.clone(),
            website: a.website.clone(),
            updated_at: a.updated_at,
            locale: a.locale.clone(),
            address: a.address.as_ref().map(|a| AddressWire {
                formatted: a.formatted.clone(),
                street_address: a.street_address.clone(),
                locality: a.locality.clone(),
                region: a.region.clone(),
                postal_code: a.postal_code.clone(),
                country: a.country.clone(),
            }),
            profile: a.profile.clone(),
            birthdate: a.birthdate.clone(),
            gender: a.gender.clone(),
        }
    }
}

/// `User` of the reference, plus `contact_id` when the user has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserView {
    pub username: String,
    pub enabled: bool,
    pub status: &'static str,
    pub attributes: AttributesWire,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            username: u.username.to_string(),
            enabled: u.enabled.is_enabled(),
            status: u.status.as_str(),
            attributes: AttributesWire::from(&u.attributes),
            contact_id: u.contact_id.clone(),
        }
    }
}

/// `{"users": [...], "next": "<url>"}`; `next` is empty on the last page.
#[derive(Debug, Serialize)]
pub struct UserPage {
    pub users: Vec<UserView>,
    pub next: String,
}

/// `Group` of the reference, with its roles (an extension).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupView {
    pub name: String,
    pub description: String,
    pub roles: Vec<String>,
}

impl From<&Group> for GroupView {
    fn from(g: &Group) -> Self {
        Self {
            name: g.name.to_string(),
            description: g.description.clone(),
            roles: g.roles.iter().map(|r| r.as_str().to_owned()).collect(),
        }
    }
}

/// `{"groups": [...], "next": "<url>"}`; `next` is empty on the last page.
#[derive(Debug, Serialize)]
pub struct GroupPage {
    pub groups: Vec<GroupView>,
    pub next: String,
}

/// Who acted, as the audit log and the session list show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActorView {
    pub kind: &'static str,
    pub id: String,
    pub username: Option<String>,
    pub pool: String,
    pub client_id: Option<String>,
}

impl From<&Actor> for ActorView {
    fn from(a: &Actor) -> Self {
        Self {
            kind: match a.kind {
                ActorKind::User => "user",
                ActorKind::Client => "client",
                ActorKind::System => "system",
                ActorKind::Operator => "operator",
            },
            id: a.id.clone(),
            username: a.username.clone(),
            pool: a.pool.to_string(),
            client_id: a.client_id.as_ref().map(ToString::to_string),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_domain::ids::{PoolId, UserId, Username};
    use gatehouse_domain::time::Timestamp;
    use gatehouse_domain::user::{Enabled, MfaState, UserStatus};
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<AttributesWire, serde_json::Error> {
        serde_json::from_value(v)
    }

    #[test]
    fn attributes_round_trip() {
        let body = json!({
            "email": "ann@example.com",
            "name": "Ann",
            "roles": ["admin", "claims", "admin"],
            "zoneinfo": "Europe/Paris",
            "email_verified": true,
            "address": {"locality": "Paris"}
        });
        let attrs = parse(body).unwrap().into_domain().unwrap();
        let roles: Vec<&str> = attrs.roles.iter().map(Role::as_str).collect();
        assert_eq!(roles, ["admin", "claims"]);
        assert_eq!(attrs.zoneinfo.as_deref(), Some("Europe/Paris"));
        let back = serde_json::to_value(AttributesWire::from(&attrs)).unwrap();
        assert_eq!(
            back,
            json!({
                "email": "ann@example.com",
                "name": "Ann",
                "roles": ["admin", "claims"],
                "zoneinfo": "Europe/Paris",
                "email_verified": true,
                "address": {"locality": "Paris"}
            })
        );
    }

    #[test]
    fn attributes_refuse_unknown_missing_and_mistyped_fields() {
        assert!(
            parse(json!({"email": "a@b.c", "name": "A", "roles": [], "shoe_size": 9})).is_err()
        );
        assert!(parse(json!({"email": "a@b.c", "name": "A"})).is_err());
        assert!(parse(json!({"email": "a@b.c", "name": 5, "roles": []})).is_err());
        assert!(parse(json!({"email": "a@b.c", "name": "A", "roles": "admin"})).is_err());
        assert!(
            parse(json!({"email": "a@b.c", "name": "A", "roles": [], "address": {"planet": "x"}}))
                .is_err()
        );
        let bad_role = parse(json!({"email": "a@b.c", "name": "A", "roles": ["two words"]}))
            .unwrap()
            .into_domain();
        assert!(bad_role.is_err());
    }

    #[test]
    fn users_render_as_the_reference_says() {
        let user = User {
            id: UserId::new_random(),
            pool: PoolId::new_random(),
            username: Username::parse("ann").unwrap(),
            enabled: Enabled::Yes,
            status: UserStatus::ForceChangePassword,
            attributes: UserAttributes {
                email: "ann@example.com".into(),
                name: "Ann".into(),
                roles: vec![Role::parse("support").unwrap()],
                ..UserAttributes::default()
            },
            contact_id: None,
            password: None,
            tokens_not_before: None,
            mfa: MfaState::NONE,
            previous_email: None,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        };
        let v = serde_json::to_value(UserView::from(&user)).unwrap();
        assert_eq!(
            v,
            json!({
                "username": "ann",
                "enabled": true,
                "status": "FORCE_CHANGE_PASSWORD",
                "attributes": {"email": "ann@example.com", "name": "Ann", "roles": ["support"]}
            })
        );
        let with_contact = User {
            contact_id: Some("c-9".into()),
            ..user
        };
        let v = serde_json::to_value(UserView::from(&with_contact)).unwrap();
        assert_eq!(v["contact_id"], "c-9");
    }
}
