//! The AI layer's pure rules: a model's configuration, exact money (prices, costs, budgets), the
//! catalog of models and prompt templates, and prompt rendering.

pub mod budget;
pub mod config;
pub mod models;
pub mod money;
pub mod prompt;
pub mod proposal;
pub mod request;
pub mod templates;

pub use config::{ConfigError, ModelConfig, Provider};

/// The longest catalog name (a model's or a prompt template's), in bytes.
pub const NAME_MAX_BYTES: usize = 64;

/// Why `raw` cannot name a model or a prompt template, if it cannot: 1 to 64 of `a-z`, `0-9`,
/// `_` and `-`. The name is the stream's id (a NATS subject token), so nothing else fits.
pub fn name_problem(raw: &str) -> Option<String> {
    if raw.is_empty() || raw.len() > NAME_MAX_BYTES {
        return Some(format!("must be 1 to {NAME_MAX_BYTES} characters"));
    }
    if !raw
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Some("may hold only a-z, 0-9, `_` and `-`".to_owned());
    }
    None
}

/// A catalog name type: a checked slug whose stream is `<prefix><name>`.
macro_rules! catalog_name {
    ($(#[$doc:meta])* $name:ident, $prefix:path, $aggregate:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The aggregate name used in NATS subjects and CloudEvents types.
            pub const AGGREGATE: &'static str = $aggregate;

            /// `raw` if it is a valid name; the problem points at `/name`.
            pub fn parse(raw: &str) -> Result<Self, crate::error::FieldError> {
                match crate::ai::name_problem(raw) {
                    None => Ok(Self(raw.to_owned())),
                    Some(problem) => Err(crate::error::FieldError::new("/name", problem)),
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The name of this aggregate's event stream.
            pub fn stream(&self) -> String {
                format!("{}{}", $prefix, self.0)
            }

            /// The name in a stream name made by [`Self::stream`]; `None` for any other stream.
            pub fn from_stream(stream: &str) -> Option<Self> {
                stream
                    .strip_prefix($prefix)
                    .and_then(|rest| Self::parse(rest).ok())
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(raw: String) -> Result<Self, String> {
                match crate::ai::name_problem(&raw) {
                    None => Ok(Self(raw)),
                    Some(problem) => Err(format!("name {problem}")),
                }
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> String {
                name.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
pub(crate) use catalog_name;
