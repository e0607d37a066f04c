//! Field-level validation problems and the JSON Pointers (RFC 6901) that locate them.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One problem in a request, located by a JSON Pointer into the request body.
///
/// Serialises as the `{field, message}` items of an API problem document's `errors`. An empty
/// `field` names the request as a whole, for problems that no single member of the body causes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FieldError {
    /// A JSON Pointer such as `/schema_definition/fields/2/name`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn at(pointer: &Pointer, message: impl Into<String>) -> Self {
        Self::new(pointer.as_str(), message)
    }

    /// The same problem at another pointer, for rules shared by several routes (a password is
    /// `/password` at registration and `/new_password` when it is changed).
    pub fn with_field(self, field: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            ..self
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Formats a list of problems on one line, for the `Display` of validation errors.
pub(crate) fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A JSON Pointer built token by token, so keys holding `/` or `~` are always escaped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Pointer(String);

impl Pointer {
    /// The whole document: the empty pointer `""`.
    pub fn root() -> Self {
        Self(String::new())
    }

    /// This pointer followed by an object member.
    pub fn key(&self, key: &str) -> Self {
        Self(format!("{}/{}", self.0, escape_token(key)))
    }

    /// This pointer followed by an array index.
    pub fn index(&self, index: usize) -> Self {
        Self(format!("{}/{}", self.0, index))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Pointer> for String {
    fn from(pointer: Pointer) -> Self {
        pointer.0
    }
}

/// Escapes one reference token as RFC 6901 requires: `~` becomes `~0`, then `/` becomes `~1`.
pub fn escape_token(token: &str) -> Cow<'_, str> {
    if token.contains(['~', '/']) {
        Cow::Owned(token.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tilde_and_slash_are_escaped_in_that_order() {
        assert_eq!(escape_token("a/b"), "a~1b");
        assert_eq!(escape_token("a~b"), "a~0b");
        // `~1` in a key must come out as `~01`, not be mistaken for an escaped slash.
        assert_eq!(escape_token("~1"), "~01");
        assert_eq!(escape_token("plain"), "plain");
    }

    #[test]
    fn pointers_are_built_from_keys_and_indexes() {
        let p = Pointer::root()
            .key("features")
            .index(3)
            .key("schema_definition")
            .key("a/b");
        assert_eq!(p.as_str(), "/features/3/schema_definition/a~1b");
        assert_eq!(Pointer::root().as_str(), "");
    }

    #[test]
    fn a_field_error_serialises_as_field_and_message() {
        let e = FieldError::new("/name", "must not be empty");
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"field": "/name", "message": "must not be empty"})
        );
        assert_eq!(e.to_string(), "/name: must not be empty");
    }
}
