//! Identifiers, each built by `parse` so that an invalid one cannot exist.

use std::fmt;

use uuid::Uuid;

use crate::ParseError;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }
            pub fn parse(s: &str) -> Result<Self, ParseError> {
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|_| ParseError::new(stringify!($name), "not a UUID"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// Internal, immutable id of a pool.
    PoolId
);
uuid_id!(
    /// Immutable id of a user; the `sub` of its tokens.
    UserId
);
uuid_id!(
    /// One sign-in or one impersonation; the `sid` of its tokens.
    SessionId
);
uuid_id!(
    /// Id of one audit event.
    EventId
);

/// Sessions and audit events are written far more often than anything else: their ids are
/// UUID version 7 (milliseconds since 1970, then 74 random bits), so that each new one sorts
/// after the last and the indexes on them grow at their right edge instead of rewriting a
/// random page per insert. They name things; they are not secrets (tokens carry their
/// creation time anyway).
macro_rules! time_ordered {
    ($($name:ident),*) => {$(
        impl $name {
            pub fn new_ordered() -> Self {
                Self(Uuid::now_v7())
            }
        }
    )*};
}
time_ordered!(SessionId, EventId);

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A pool's slug: `[a-z0-9-]{1,63}`, not starting or ending with `-`.
    PoolSlug
);
string_id!(
    /// A username, unique in its pool: 1 to 128 printable characters, no whitespace.
    Username
);
string_id!(
    /// An app client's public id.
    ClientId
);
string_id!(
    /// A group's name, unique in its pool: 1 to 128 printable characters.
    GroupName
);

/// The slug of the central staff pool, created on first start.
pub const STAFF_POOL: &str = "staff";

impl PoolSlug {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseError::new(
                "pool",
                "must be 1 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-'",
            ))
        }
    }
    pub fn staff() -> Self {
        Self(STAFF_POOL.to_owned())
    }
    pub fn is_staff(&self) -> bool {
        self.0 == STAFF_POOL
    }
}

fn printable_name(
    field: &'static str,
    s: &str,
    max_chars: usize,
    allow_space: bool,
) -> Result<(), ParseError> {
    let count = s.chars().count();
    if count == 0 || count > max_chars {
        return Err(ParseError::new(
            field,
            format!("must be 1 to {max_chars} characters"),
        ));
    }
    let bad = s
        .chars()
        .any(|c| c.is_control() || (!allow_space && c.is_whitespace()) || c == '/');
    if bad {
        return Err(ParseError::new(
            field,
            "must not contain control characters, whitespace or '/'",
        ));
    }
    if allow_space && s.trim() != s {
        return Err(ParseError::new(
            field,
            "must not start or end with whitespace",
        ));
    }
    Ok(())
}

impl Username {
    pub const MAX_CHARS: usize = 128;
    /// `me` names the caller in the API's paths, so no user can be called that.
    pub const RESERVED: &'static [&'static str] = &["me"];

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        printable_name("username", s, Self::MAX_CHARS, false)?;
        if Self::RESERVED.contains(&s) {
            return Err(ParseError::new("username", format!("'{s}' is reserved")));
        }
        Ok(Self(s.to_owned()))
    }
}

impl GroupName {
    pub const MAX_CHARS: usize = 128;
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        printable_name("name", s, Self::MAX_CHARS, true)?;
        Ok(Self(s.to_owned()))
    }
}

impl ClientId {
    /// Client ids are minted by Gatehouse: 26 lowercase base32 characters.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseError::new("client_id", "not a valid client id"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_ids_sort_in_the_order_they_were_made() {
        // Many within the same millisecond, too: they must still be distinct and ascending.
        let ids: Vec<SessionId> = (0..10_000).map(|_| SessionId::new_ordered()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let events: Vec<EventId> = (0..10_000).map(|_| EventId::new_ordered()).collect();
        assert!(events.windows(2).all(|w| w[0] < w[1]));
        // Still random enough to be distinct across processes: the version is 7 and the
        // random part varies.
        assert_eq!(ids[0].0.get_version_num(), 7);
        assert_ne!(ids[0].0.as_bytes()[10..], ids[1].0.as_bytes()[10..]);
    }
}
