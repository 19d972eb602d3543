//! Who is calling: passwords (argon2id), login tokens (EdDSA JWT signed by the
//! key ring's login key) and login throttling.

pub mod callers;
pub mod password;
pub mod throttle;
pub mod token;

use serde::{Deserialize, Serialize};

/// The kind of an organisation, which is the role of each of its users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Operator,
    Funder,
    Issuer,
    Venue,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Operator, Role::Funder, Role::Issuer, Role::Venue];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Funder => "funder",
            Role::Issuer => "issuer",
            Role::Venue => "venue",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
