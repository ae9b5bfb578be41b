//! The attribute names AD FS (and LDAP-style IdPs, by OID) send, mapped to OpenID Connect
//! profile claims, so a directory works out of the box; a provider's own mapping overrides.

/// The OIDC claim an IdP attribute maps to by default, if any.
pub fn default_claim(attribute_name: &str) -> Option<&'static str> {
    Some(match attribute_name {
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
        | "urn:oid:0.9.2342.19200300.100.1.3"
        | "email"
        | "mail" => "email",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname"
        | "urn:oid:2.5.4.42"
        | "givenName" => "given_name",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname"
        | "urn:oid:2.5.4.4"
        | "sn" => "family_name",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
        | "http://schemas.microsoft.com/identity/claims/displayname"
        | "urn:oid:2.16.840.1.113730.3.1.241"
        | "displayName" => "name",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
        | "urn:oid:1.3.6.1.4.1.5923.1.1.1.6" => "preferred_username",
        "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups" => "groups",
        "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
        | "http://schemas.microsoft.com/ws/2008/06/identity/claims/roles" => "roles",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/mobilephone"
        | "urn:oid:0.9.2342.19200300.100.1.41" => "phone_number",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::default_claim;

    #[test]
    fn ad_fs_and_oid_names_map_to_profile_claims() {
        let cases = [
            (
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
                "email",
            ),
            (
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
                "given_name",
            ),
            (
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
                "family_name",
            ),
            (
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
                "name",
            ),
            (
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
                "preferred_username",
            ),
            (
                "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
                "groups",
            ),
            (
                "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
                "roles",
            ),
            ("urn:oid:0.9.2342.19200300.100.1.3", "email"),
            ("urn:oid:2.5.4.42", "given_name"),
            ("urn:oid:2.5.4.4", "family_name"),
            ("urn:oid:2.16.840.1.113730.3.1.241", "name"),
        ];
        for (attr, claim) in cases {
            assert_eq!(default_claim(attr), Some(claim), "{attr}");
        }
        assert_eq!(default_claim("urn:example:unknown"), None);
    }
}
