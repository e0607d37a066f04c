//! The naming rules of entities, fields, plurals and enum values.

use super::NAME_MAX_CHARS;
use crate::reserved::{self, NameUse};

/// The default plural (`docs/api.md`): `s`, `es` after s, x, z, ch and sh, `ies` for a `y` after a consonant.
pub fn default_plural(entity: &str) -> String {
    if ["s", "x", "z", "ch", "sh"]
        .iter()
        .any(|end| entity.ends_with(end))
    {
        return format!("{entity}es");
    }
    if let Some(stem) = entity.strip_suffix('y') {
        let after_consonant = stem
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_lowercase() && !"aeiou".contains(c));
        if after_consonant {
            return format!("{stem}ies");
        }
    }
    format!("{entity}s")
}

/// Why `name` is not a valid entity, field or plural name used as `usage`.
pub fn name_problem(name: &str, usage: NameUse) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    let mut chars = name.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    if !starts_with_letter
        || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Some(
            "must be lowercase snake_case: a letter a-z, then letters, digits or underscores"
                .into(),
        );
    }
    if name.len() > NAME_MAX_CHARS {
        return Some(format!("must be at most {NAME_MAX_CHARS} characters"));
    }
    reserved::reserved(name, usage).map(|origin| format!("`{name}` is {}", origin.describe()))
}

/// Enum values may hold capitals (`USD`), so they have their own rule; they must still be valid
/// identifiers because generated code may turn them into enum members.
pub(super) fn enum_value_problem(value: &str) -> Option<String> {
    let mut chars = value.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !starts_with_letter || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Some("must be an identifier: a letter, then letters, digits or underscores".into());
    }
    if value.len() > NAME_MAX_CHARS {
        return Some(format!("must be at most {NAME_MAX_CHARS} characters"));
    }
    reserved::reserved(value, NameUse::EnumValue)
        .map(|origin| format!("`{value}` is {}", origin.describe()))
}
