//! Configurable size limits of `docs/api.md`, and the name and description rules measured against them.

use serde::{Deserialize, Serialize};

/// Size limits. They are configuration, not state: deciders take them beside the command, so an
/// operator can change a limit without rewriting history (old events stay valid as they were).
///
/// Lengths count Unicode scalar values (`char`s), which is what "characters" means in `docs/api.md`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    pub name_max_chars: usize,
    pub description_max_chars: usize,
    pub features_per_project: usize,
    pub fields_per_entity: usize,
    pub password_min_chars: usize,
    pub password_max_chars: usize,
    pub email_max_chars: usize,
    /// The largest `max_length` a `text` field may declare (characters).
    pub text_max_length: usize,
    /// The largest `default` of a field, as serialised JSON (bytes).
    pub default_max_bytes: usize,
    /// The largest serialised project state (bytes); a write that would pass it is refused.
    pub project_max_bytes: usize,
    /// Custom functions a project may hold.
    pub functions_per_project: usize,
    /// The largest `function_code` (bytes of UTF-8).
    pub function_code_max_bytes: usize,
    /// The most examples one function may carry.
    pub examples_per_function: usize,
    /// The largest live record, its values as serialised JSON (bytes).
    pub record_max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            name_max_chars: 100,
            description_max_chars: 2000,
            features_per_project: 200,
            fields_per_entity: 100,
            password_min_chars: 10,
            password_max_chars: 128,
            email_max_chars: 254,
            text_max_length: 1_000_000,
            default_max_bytes: 10 * 1024,
            project_max_bytes: 2 * 1024 * 1024,
            functions_per_project: 50,
            function_code_max_bytes: 64 * 1024,
            examples_per_function: 20,
            record_max_bytes: 256 * 1024,
        }
    }
}

impl Limits {
    /// A display name (user, project or feature): trimmed, 1 to `name_max_chars` characters, no
    /// control characters. Returns the trimmed name, or the message for the client.
    pub fn check_name(&self, raw: &str) -> Result<String, String> {
        let name = raw.trim();
        if name.is_empty() {
            return Err("must not be empty".into());
        }
        if name.chars().count() > self.name_max_chars {
            return Err(format!(
                "must be at most {} characters",
                self.name_max_chars
            ));
        }
        if name.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(name.to_owned())
    }

    /// A description: at most `description_max_chars` characters. It is free text, so it is kept
    /// as given (line breaks included) and may be empty.
    pub fn check_description(&self, raw: &str) -> Result<(), String> {
        if raw.chars().count() > self.description_max_chars {
            return Err(format!(
                "must be at most {} characters",
                self.description_max_chars
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_those_of_the_api_contract() {
        let l = Limits::default();
        assert_eq!(
            (
                l.name_max_chars,
                l.description_max_chars,
                l.features_per_project,
                l.fields_per_entity,
                l.password_min_chars,
                l.password_max_chars,
                l.email_max_chars
            ),
            (100, 2000, 200, 100, 10, 128, 254)
        );
    }

    #[test]
    fn a_name_is_trimmed_and_counted_in_characters() {
        let l = Limits::default();
        assert_eq!(l.check_name("  Shop  ").unwrap(), "Shop");
        assert!(l.check_name(&"é".repeat(100)).is_ok());
        assert!(l.check_name(&"é".repeat(101)).is_err());
    }

    #[test]
    fn a_blank_name_or_one_with_control_characters_is_refused() {
        let l = Limits::default();
        assert_eq!(l.check_name("   ").unwrap_err(), "must not be empty");
        assert_eq!(
            l.check_name("a\u{7}b").unwrap_err(),
            "must not contain control characters"
        );
    }

    #[test]
    fn a_description_may_be_empty_but_not_too_long() {
        let l = Limits::default();
        assert!(l.check_description("").is_ok());
        assert!(l.check_description("line one\nline two").is_ok());
        assert!(l.check_description(&"x".repeat(2001)).is_err());
    }

    #[test]
    fn limits_deserialise_with_defaults_for_missing_keys() {
        let l: Limits =
            serde_json::from_value(serde_json::json!({"fields_per_entity": 5})).unwrap();
        assert_eq!(l.fields_per_entity, 5);
        assert_eq!(l.name_max_chars, 100);
    }
}
