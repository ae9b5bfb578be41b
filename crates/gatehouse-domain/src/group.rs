//! Groups: named sets of users that may carry roles.

use crate::ParseError;
use crate::ids::{GroupName, PoolId};
use crate::permission::Role;
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub pool: PoolId,
    pub name: GroupName,
    pub description: String,
    pub roles: Vec<Role>,
    pub created_at: Timestamp,
}

pub fn validate_description(d: &str) -> Result<(), ParseError> {
    let n = d.chars().count();
    if n == 0 || n > 2048 || d.chars().any(char::is_control) {
        return Err(ParseError::new(
            "description",
            "must be 1 to 2048 characters without control characters",
        ));
    }
    Ok(())
}
