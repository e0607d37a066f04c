//! Typed identifiers of users, projects, features and generations, and the stream names built from them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

// Stream names are stored data: these prefixes never change, whatever the Rust types are called.
pub const USER_STREAM_PREFIX: &str = "user-";
pub const PROJECT_STREAM_PREFIX: &str = "project-";
pub const GENERATION_STREAM_PREFIX: &str = "generation-";
pub const AI_REQUEST_STREAM_PREFIX: &str = "ai-request-";
/// Followed by an AI model's name, see [`crate::ai::models::ModelName`].
pub const AI_MODEL_STREAM_PREFIX: &str = "aimodel-";
/// Followed by a prompt template's name, see [`crate::ai::templates::PromptName`].
pub const PROMPT_STREAM_PREFIX: &str = "prompt-";
pub const RECORD_STREAM_PREFIX: &str = "record-";
/// Followed by the lowercase hex SHA-256 of a normalised e-mail address, see [`crate::email`].
pub const EMAIL_STREAM_PREFIX: &str = "email-";

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
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
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

macro_rules! stream_of {
    ($name:ident, $prefix:ident, $aggregate:literal) => {
        impl $name {
            /// The aggregate name used in NATS subjects and CloudEvents types.
            pub const AGGREGATE: &'static str = $aggregate;

            /// The name of this aggregate's event stream.
            pub fn stream(&self) -> String {
                format!("{}{}", $prefix, self.0.hyphenated())
            }

            /// The id in a stream name made by [`Self::stream`]; `None` for any other stream.
            pub fn from_stream(stream: &str) -> Option<Self> {
                stream
                    .strip_prefix($prefix)
                    .and_then(|rest| Uuid::parse_str(rest).ok())
                    .map(Self)
            }
        }
    };
}

id_type!(
    /// A user account.
    UserId
);
id_type!(
    /// A project, whose stream holds its features and members too.
    ProjectId
);
id_type!(
    /// A feature inside a project; features have no stream of their own.
    FeatureId
);
id_type!(
    /// One generation run of a project version.
    GenerationId
);
id_type!(
    /// One AI request about a project (`domain::ai::request`).
    AiRequestId
);
id_type!(
    /// One live record of a project's `crud` entity (`domain::record`).
    RecordId
);
id_type!(
    /// A custom function inside a project; like features, functions have no stream of their own.
    FunctionId
);

stream_of!(UserId, USER_STREAM_PREFIX, "user");
stream_of!(ProjectId, PROJECT_STREAM_PREFIX, "project");
stream_of!(GenerationId, GENERATION_STREAM_PREFIX, "generation");
stream_of!(AiRequestId, AI_REQUEST_STREAM_PREFIX, "ai_request");
stream_of!(RecordId, RECORD_STREAM_PREFIX, "record");

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: &str = "0192f0c1-7a2b-7c3d-8e4f-5a6b7c8d9e0f";

    #[test]
    fn stream_names_are_the_prefix_and_the_hyphenated_uuid() {
        let uuid = Uuid::parse_str(RAW).unwrap();
        assert_eq!(UserId::from_uuid(uuid).stream(), format!("user-{RAW}"));
        assert_eq!(
            ProjectId::from_uuid(uuid).stream(),
            format!("project-{RAW}")
        );
        assert_eq!(
            GenerationId::from_uuid(uuid).stream(),
            format!("generation-{RAW}")
        );
    }

    #[test]
    fn a_stream_name_gives_back_its_id_and_other_streams_give_none() {
        let id: ProjectId = RAW.parse().unwrap();
        assert_eq!(ProjectId::from_stream(&id.stream()), Some(id));
        assert_eq!(ProjectId::from_stream(&format!("user-{RAW}")), None);
        assert_eq!(ProjectId::from_stream("project-nope"), None);
    }

    #[test]
    fn ids_serialise_as_plain_uuid_strings() {
        let id: UserId = RAW.parse().unwrap();
        assert_eq!(serde_json::to_value(id).unwrap(), serde_json::json!(RAW));
        let back: UserId = serde_json::from_value(serde_json::json!(RAW)).unwrap();
        assert_eq!(back, id);
        assert_eq!(id.to_string(), RAW);
    }

    #[test]
    fn a_malformed_id_does_not_parse() {
        assert!("not-a-uuid".parse::<FeatureId>().is_err());
    }
}
