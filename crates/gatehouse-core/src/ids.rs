//! Typed identifiers: a user id cannot be passed where a session id is expected. Each is a UUID on the wire and in
//! the database; the API's DTOs keep plain UUIDs, converted at the edge.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! typed_id {
    ($($(#[$doc:meta])* $name:ident;)+) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new id: a version 7 UUID, ordered by creation time so that new rows append to indexes.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(text).map(Self)
            }
        }
    )+};
}

typed_id! {
    /// A user account.
    UserId;
    /// One of a user's email addresses.
    EmailId;
    /// A user's account at an identity provider (Microsoft), linked to a user.
    IdentityId;
    /// A signed-in session; the `session_id` claim of a session JWT.
    SessionId;
    /// A Hanko-style flow (login, registration, profile).
    FlowId;
    /// A one-time token handed to the browser after a sign-in.
    TokenId;
    /// The state of one sign-in at a provider, sealed into the `state` parameter.
    StateId;
    /// An admin API key.
    AdminKeyId;
    /// An audit log entry.
    AuditEntryId;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_reads_and_writes_as_its_uuid() {
        let uuid = Uuid::new_v4();
        let id = UserId::from(uuid);
        assert_eq!(id.to_string(), uuid.to_string());
        assert_eq!(id.to_string().parse::<UserId>().unwrap(), id);
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{uuid}\""));
        assert_eq!(serde_json::from_str::<UserId>(&format!("\"{uuid}\"")).unwrap().as_uuid(), uuid);
        assert!("not-a-uuid".parse::<SessionId>().is_err());
        assert_ne!(SessionId::generate(), SessionId::generate());
    }
}
