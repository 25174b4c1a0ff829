//! Identifier newtypes. Every id is a UUIDv7 (time-ordered), serialized as its lowercase
//! hyphenated text, so stores that sort by id list newest first.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::EngineError;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = EngineError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(text).map(Self).map_err(|_| {
                    EngineError::validation(format!(
                        "`{text}` is not a valid {}",
                        stringify!($name)
                    ))
                })
            }
        }
    };
}

uuid_id!(
    /// The RUSVEL session an object belongs to.
    SessionId
);
uuid_id!(
    /// Identifies a [`crate::deploy::Deployment`].
    DeploymentId
);
uuid_id!(
    /// Identifies a [`crate::monitor::HealthCheck`].
    HealthCheckId
);
uuid_id!(
    /// Identifies an [`crate::incident::Incident`].
    IncidentId
);
uuid_id!(
    /// Identifies a stored probe result, [`crate::monitor::ProbeRecord`].
    ProbeId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_7_and_round_trip_through_text() {
        let id = DeploymentId::new();
        assert_eq!(id.as_uuid().get_version_num(), 7);
        assert_eq!(id.to_string().parse::<DeploymentId>().unwrap(), id);
    }

    #[test]
    fn ids_serialize_as_plain_strings() {
        let id = IncidentId::new();
        assert_eq!(
            serde_json::to_value(id).unwrap(),
            serde_json::json!(id.to_string())
        );
    }

    #[test]
    fn later_ids_sort_after_earlier_ones() {
        let first = SessionId::new();
        let second = SessionId::new();
        assert!(first.to_string() < second.to_string());
    }
}
