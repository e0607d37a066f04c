//! The `configuration` of the feature types that take one (`auth`, `file_storage`): their typed
//! form, their defaults, and the checks that refuse anything else with a JSON Pointer.
//!
//! The generated app and the platform's own files read the same types, so a configuration is
//! checked once, here, whoever uses it.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::FeatureType;
use crate::error::{FieldError, Pointer};

/// The largest `max_size_bytes` a `file_storage` feature may ask for: 100 MiB.
pub const FILE_MAX_SIZE_LIMIT: u64 = 100 * 1024 * 1024;
/// `max_size_bytes` when the configuration leaves it out: 10 MiB.
pub const FILE_MAX_SIZE_DEFAULT: u64 = 10 * 1024 * 1024;
/// `allowed_content_types` when the configuration leaves it out.
pub const FILE_CONTENT_TYPES_DEFAULT: [&str; 8] = [
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "text/csv",
    "application/json",
];
/// At most this many content types in `allowed_content_types`.
pub const FILE_CONTENT_TYPES_MAX: usize = 100;

/// Whether anyone may create an account of the generated app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Registration {
    #[default]
    Open,
    Closed,
}

impl Registration {
    pub fn as_str(self) -> &'static str {
        match self {
            Registration::Open => "open",
            Registration::Closed => "closed",
        }
    }
}

/// Who may read and change an entity's rows in the generated app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EntityAccess {
    /// Users list, read and change only their own rows; admins all.
    #[default]
    OwnerScoped,
    /// Every signed-in user reads all rows and changes their own; admins change all.
    SharedRead,
}

impl EntityAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            EntityAccess::OwnerScoped => "owner_scoped",
            EntityAccess::SharedRead => "shared_read",
        }
    }
}

/// An `auth` feature's configuration, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthConfig {
    pub registration: Registration,
    /// Entities named explicitly; the others are [`EntityAccess::OwnerScoped`].
    pub entities: BTreeMap<String, EntityAccess>,
}

impl AuthConfig {
    /// The access rule of `entity`.
    pub fn access(&self, entity: &str) -> EntityAccess {
        self.entities.get(entity).copied().unwrap_or_default()
    }
}

/// A `file_storage` feature's configuration, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStorageConfig {
    pub max_size_bytes: u64,
    /// Lower-case `type/subtype` media types, in the configuration's order.
    pub allowed_content_types: Vec<String>,
}

impl Default for FileStorageConfig {
    fn default() -> Self {
        Self {
            max_size_bytes: FILE_MAX_SIZE_DEFAULT,
            allowed_content_types: FILE_CONTENT_TYPES_DEFAULT
                .iter()
                .map(|t| (*t).to_owned())
                .collect(),
        }
    }
}

/// Checks the `configuration` of a feature of `feature_type` (at `at`), recording each problem,
/// and returns what is stored: the members as given when valid, `{}` otherwise.
pub(super) fn check(
    feature_type: FeatureType,
    raw: Option<&Value>,
    at: &Pointer,
    errors: &mut Vec<FieldError>,
) -> Map<String, Value> {
    let members = match raw {
        None => return Map::new(),
        Some(Value::Object(members)) => members,
        Some(_) => {
            errors.push(FieldError::at(at, "must be an object"));
            return Map::new();
        }
    };
    let before = errors.len();
    match feature_type {
        FeatureType::Auth => {
            parse_auth(members, at, errors);
        }
        FeatureType::FileStorage => {
            parse_file_storage(members, at, errors);
        }
        _ => {
            for key in members.keys() {
                errors.push(FieldError::at(
                    &at.key(key),
                    format!(
                        "unknown configuration key `{key}`: {feature_type} features take none yet"
                    ),
                ));
            }
        }
    }
    if errors.len() == before {
        members.clone()
    } else {
        Map::new()
    }
}

/// Records a problem for each entity an `auth` configuration names that is not a crud entity of
/// the project (`is_entity` says whether a name is one).
pub(super) fn check_auth_entities(
    configuration: &Map<String, Value>,
    mut is_entity: impl FnMut(&str) -> bool,
    at: &Pointer,
    errors: &mut Vec<FieldError>,
) {
    if let Some(Value::Object(entities)) = configuration.get("entities") {
        for name in entities.keys() {
            if !is_entity(name) {
                errors.push(FieldError::at(
                    &at.key("entities").key(name),
                    format!("`{name}` is not a crud entity of this project"),
                ));
            }
        }
    }
}

/// The typed form of an `auth` configuration; problems are recorded, defaults fill the gaps.
pub fn parse_auth(
    members: &Map<String, Value>,
    at: &Pointer,
    errors: &mut Vec<FieldError>,
) -> AuthConfig {
    let mut config = AuthConfig::default();
    for (key, value) in members {
        let here = at.key(key);
        match key.as_str() {
            "registration" => match value.as_str() {
                Some("open") => config.registration = Registration::Open,
                Some("closed") => config.registration = Registration::Closed,
                _ => errors.push(FieldError::at(&here, "must be \"open\" or \"closed\"")),
            },
            "entities" => match value {
                Value::Object(entities) => {
                    for (entity, access) in entities {
                        let access = match access.as_str() {
                            Some("owner_scoped") => EntityAccess::OwnerScoped,
                            Some("shared_read") => EntityAccess::SharedRead,
                            _ => {
                                errors.push(FieldError::at(
                                    &here.key(entity),
                                    "must be \"owner_scoped\" or \"shared_read\"",
                                ));
                                continue;
                            }
                        };
                        config.entities.insert(entity.clone(), access);
                    }
                }
                _ => errors.push(FieldError::at(
                    &here,
                    "must be an object of entity names to \"owner_scoped\" or \"shared_read\"",
                )),
            },
            other => errors.push(FieldError::at(
                &here,
                format!(
                    "unknown configuration key `{other}`: auth takes `registration` and `entities`"
                ),
            )),
        }
    }
    config
}

/// The typed form of a `file_storage` configuration; problems are recorded, defaults fill the
/// gaps.
pub fn parse_file_storage(
    members: &Map<String, Value>,
    at: &Pointer,
    errors: &mut Vec<FieldError>,
) -> FileStorageConfig {
    let mut config = FileStorageConfig::default();
    for (key, value) in members {
        let here = at.key(key);
        match key.as_str() {
            "max_size_bytes" => match value.as_u64() {
                Some(n) if (1..=FILE_MAX_SIZE_LIMIT).contains(&n) => config.max_size_bytes = n,
                _ => errors.push(FieldError::at(
                    &here,
                    format!("must be an integer from 1 to {FILE_MAX_SIZE_LIMIT} (100 MiB)"),
                )),
            },
            "allowed_content_types" => match value {
                Value::Array(items) if !items.is_empty() => {
                    if items.len() > FILE_CONTENT_TYPES_MAX {
                        errors.push(FieldError::at(
                            &here,
                            format!("at most {FILE_CONTENT_TYPES_MAX} content types"),
                        ));
                        continue;
                    }
                    let mut types: Vec<String> = Vec::with_capacity(items.len());
                    for (i, item) in items.iter().enumerate() {
                        match item.as_str().filter(|t| is_media_type(t)) {
                            Some(t) if types.contains(&t.to_ascii_lowercase()) => {
                                errors.push(FieldError::at(
                                    &here.index(i),
                                    format!("`{t}` is listed twice (compared ignoring case)"),
                                ))
                            }
                            Some(t) => types.push(t.to_ascii_lowercase()),
                            None => errors.push(FieldError::at(
                                &here.index(i),
                                "must be a media type such as \"image/png\" (type/subtype, no \
                                 parameters or wildcards)",
                            )),
                        }
                    }
                    config.allowed_content_types = types;
                }
                _ => errors.push(FieldError::at(
                    &here,
                    "must be a non-empty array of media types",
                )),
            },
            other => errors.push(FieldError::at(
                &here,
                format!(
                    "unknown configuration key `{other}`: file_storage takes `max_size_bytes` \
                     and `allowed_content_types`"
                ),
            )),
        }
    }
    config
}

/// `type/subtype` with RFC 6838 restricted-name characters, at most 127 each.
fn is_media_type(text: &str) -> bool {
    let name = |part: &str| {
        !part.is_empty()
            && part.len() <= 127
            && part.as_bytes()[0].is_ascii_alphanumeric()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    match text.split_once('/') {
        Some((kind, subtype)) => name(kind) && name(subtype),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn problems(feature_type: FeatureType, raw: Value) -> Vec<String> {
        let mut errors = Vec::new();
        check(
            feature_type,
            Some(&raw),
            &Pointer::root().key("configuration"),
            &mut errors,
        );
        errors
            .into_iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn an_auth_configuration_takes_registration_and_entity_access() {
        assert!(
            problems(
                FeatureType::Auth,
                json!({"registration": "closed", "entities": {"order": "shared_read"}})
            )
            .is_empty()
        );
        let mut errors = Vec::new();
        let config = parse_auth(
            json!({"entities": {"order": "shared_read"}})
                .as_object()
                .expect("an object"),
            &Pointer::root(),
            &mut errors,
        );
        assert_eq!(config.registration, Registration::Open);
        assert_eq!(config.access("order"), EntityAccess::SharedRead);
        assert_eq!(config.access("customer"), EntityAccess::OwnerScoped);
    }

    #[test]
    fn a_bad_auth_configuration_is_refused_with_pointers() {
        let found = problems(
            FeatureType::Auth,
            json!({"registration": "maybe", "entities": {"order": "public"}, "extra": 1}),
        );
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("/configuration/registration:"))
        );
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("/configuration/entities/order:"))
        );
        assert!(found.iter().any(|p| p.starts_with("/configuration/extra:")));
    }

    #[test]
    fn a_file_storage_configuration_is_bounded_and_its_types_well_formed() {
        assert!(
            problems(
                FeatureType::FileStorage,
                json!({"max_size_bytes": 1024, "allowed_content_types": ["image/png", "text/csv"]})
            )
            .is_empty()
        );
        let found = problems(
            FeatureType::FileStorage,
            json!({"max_size_bytes": FILE_MAX_SIZE_LIMIT + 1,
                   "allowed_content_types": ["image/png", "IMAGE/PNG", "image/*", 3]}),
        );
        assert_eq!(
            found,
            vec![
                format!(
                    "/configuration/max_size_bytes: must be an integer from 1 to {FILE_MAX_SIZE_LIMIT} (100 MiB)"
                ),
                "/configuration/allowed_content_types/1: `IMAGE/PNG` is listed twice (compared ignoring case)".to_owned(),
                "/configuration/allowed_content_types/2: must be a media type such as \"image/png\" (type/subtype, no parameters or wildcards)".to_owned(),
                "/configuration/allowed_content_types/3: must be a media type such as \"image/png\" (type/subtype, no parameters or wildcards)".to_owned(),
            ]
        );
        assert_eq!(
            problems(FeatureType::FileStorage, json!({"max_size_bytes": 0})).len(),
            1
        );
    }

    #[test]
    fn other_feature_types_take_no_configuration_key() {
        assert_eq!(
            problems(FeatureType::Analytics, json!({"x": 1})),
            vec![
                "/configuration/x: unknown configuration key `x`: analytics features take none yet"
            ]
        );
        assert!(problems(FeatureType::Crud, json!({})).is_empty());
    }
}
