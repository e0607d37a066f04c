//! The user aggregate: registration, profile, password changes (as facts, never hashes), role and deactivation.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::envelope::{DecodeError, DomainEvent, decode_tagged, decode_tagged_json, encode_tagged};
use crate::error::{FieldError, join};
use crate::ids::UserId;
use crate::limits::Limits;

/// A user's global role. Admins may do everything; members work on their own projects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    #[default]
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user as its events describe it. Serialises as the profile of `GET /auth/profile` (plus
/// `active`). `User::default()` is the state before registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub active: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    // A serialised user was registered; only `default()` builds the state before registration.
    #[serde(skip, default = "registered")]
    registered: bool,
}

fn registered() -> bool {
    true
}

impl Default for User {
    fn default() -> Self {
        Self {
            id: UserId::from_uuid(uuid::Uuid::nil()),
            email: String::new(),
            name: String::new(),
            role: Role::Member,
            active: false,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
            registered: false,
        }
    }
}

/// `email` and `name` are raw input, judged and normalised here; the caller takes the normalised
/// address from `UserRegistered` to name the reservation stream ([`crate::email::reservation_stream`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterUser {
    pub user_id: UserId,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateProfile {
    pub name: String,
    pub at: OffsetDateTime,
}

/// The new hash is written to the command-side credentials table in the same transaction; the
/// event only records that a change happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangePassword {
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRole {
    pub role: Role,
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeactivateUser {
    pub at: OffsetDateTime,
}

/// An admin sets the user's monthly AI budget (`None`: the default of
/// `BACKFORGE_AI_MONTHLY_BUDGET_USD`, or none). Checked by [`crate::ai::budget::parse_budget`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAiBudget {
    pub ai_monthly_budget_usd: Option<rust_decimal::Decimal>,
    pub at: OffsetDateTime,
}

/// Every command a user decides, each its own struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCommand {
    Register(RegisterUser),
    UpdateProfile(UpdateProfile),
    ChangePassword(ChangePassword),
    ChangeRole(ChangeRole),
    Deactivate(DeactivateUser),
    SetAiBudget(SetAiBudget),
}

/// Facts about a user. No event carries a secret; only `UserRegistered` carries the e-mail address
/// (integration events must drop it, see `docs/integrations.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserEvent {
    #[serde(rename = "UserRegistered")]
    UserRegistered {
        user_id: UserId,
        email: String,
        name: String,
        role: Role,
        #[serde(with = "time::serde::rfc3339")]
        registered_at: OffsetDateTime,
    },
    #[serde(rename = "UserProfileUpdated")]
    UserProfileUpdated {
        user_id: UserId,
        name: String,
        #[serde(with = "time::serde::rfc3339")]
        updated_at: OffsetDateTime,
    },
    #[serde(rename = "PasswordChanged")]
    PasswordChanged {
        user_id: UserId,
        #[serde(with = "time::serde::rfc3339")]
        changed_at: OffsetDateTime,
    },
    #[serde(rename = "UserRoleChanged")]
    UserRoleChanged {
        user_id: UserId,
        role: Role,
        #[serde(with = "time::serde::rfc3339")]
        changed_at: OffsetDateTime,
    },
    #[serde(rename = "UserDeactivated")]
    UserDeactivated {
        user_id: UserId,
        #[serde(with = "time::serde::rfc3339")]
        deactivated_at: OffsetDateTime,
    },
    /// The monthly AI budget, a decimal string, or `null` for the default.
    #[serde(rename = "UserAiBudgetSet")]
    UserAiBudgetSet {
        user_id: UserId,
        #[serde(with = "crate::ai::budget::optional_decimal")]
        ai_monthly_budget_usd: Option<rust_decimal::Decimal>,
        #[serde(with = "time::serde::rfc3339")]
        set_at: OffsetDateTime,
    },
}

impl UserEvent {
    /// Every stored type name of this enum.
    pub const TYPES: &'static [&'static str] = &[
        "UserRegistered",
        "UserProfileUpdated",
        "PasswordChanged",
        "UserRoleChanged",
        "UserDeactivated",
        "UserAiBudgetSet",
    ];
}

impl DomainEvent for UserEvent {
    fn event_type(&self) -> &'static str {
        match self {
            UserEvent::UserRegistered { .. } => "UserRegistered",
            UserEvent::UserProfileUpdated { .. } => "UserProfileUpdated",
            UserEvent::PasswordChanged { .. } => "PasswordChanged",
            UserEvent::UserRoleChanged { .. } => "UserRoleChanged",
            UserEvent::UserDeactivated { .. } => "UserDeactivated",
            UserEvent::UserAiBudgetSet { .. } => "UserAiBudgetSet",
        }
    }

    fn schema_version(&self) -> u32 {
        1
    }

    fn to_data(&self) -> serde_json::Value {
        encode_tagged(self, self.event_type())
    }

    fn from_data(event_type: &str, data: serde_json::Value) -> Result<Self, DecodeError> {
        decode_tagged(Self::TYPES, event_type, data)
    }

    fn from_json(event_type: &str, json: &str) -> Result<Self, DecodeError> {
        decode_tagged_json(Self::TYPES, event_type, json)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("the user is registered already")]
    AlreadyRegistered,
    #[error("no such user")]
    NotFound,
    #[error("the user is deactivated")]
    Deactivated,
    #[error("invalid request: {}", join(.0))]
    Validation(Vec<FieldError>),
}

/// An e-mail address as stored and compared: trimmed and lower-cased, then checked for a sane
/// shape. The result is also what the reservation stream's SHA-256 is taken of. Problems point at
/// `/email`.
pub fn normalize_email(raw: &str, limits: &Limits) -> Result<String, FieldError> {
    let problem = |message: &str| FieldError::new("/email", message);
    let email = raw.trim().to_lowercase();
    if email.is_empty() {
        return Err(problem("must not be empty"));
    }
    if email.chars().count() > limits.email_max_chars {
        return Err(FieldError::new(
            "/email",
            format!("must be at most {} characters", limits.email_max_chars),
        ));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(problem("must not contain spaces or control characters"));
    }
    let shape_ok = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && domain.split('.').all(|label| !label.is_empty())
        }
        None => false,
    };
    if !shape_ok {
        return Err(problem("must be an e-mail address such as ada@example.com"));
    }
    Ok(email)
}

/// A password's length rule, counted in characters. Problems point at `/password`; the
/// change-password route re-points them with [`FieldError::with_field`].
pub fn validate_password(password: &str, limits: &Limits) -> Result<(), FieldError> {
    let length = password.chars().count();
    if length < limits.password_min_chars {
        return Err(FieldError::new(
            "/password",
            format!("must be at least {} characters", limits.password_min_chars),
        ));
    }
    if length > limits.password_max_chars {
        return Err(FieldError::new(
            "/password",
            format!("must be at most {} characters", limits.password_max_chars),
        ));
    }
    Ok(())
}

/// A user's display name: trimmed, 1–100 characters, no control characters. Problems point at
/// `/name`.
pub fn normalize_name(raw: &str, limits: &Limits) -> Result<String, FieldError> {
    limits
        .check_name(raw)
        .map_err(|message| FieldError::new("/name", message))
}

impl User {
    /// Whether a `UserRegistered` has been folded in.
    pub fn exists(&self) -> bool {
        self.registered
    }

    pub fn decide(
        &self,
        command: &UserCommand,
        limits: &Limits,
    ) -> Result<Vec<UserEvent>, UserError> {
        if let UserCommand::Register(RegisterUser {
            user_id,
            email,
            name,
            role,
            at,
        }) = command
        {
            if self.registered {
                return Err(UserError::AlreadyRegistered);
            }
            let email = normalize_email(email, limits);
            let name = normalize_name(name, limits);
            return match (email, name) {
                (Ok(email), Ok(name)) => Ok(vec![UserEvent::UserRegistered {
                    user_id: *user_id,
                    email,
                    name,
                    role: *role,
                    registered_at: *at,
                }]),
                (email, name) => Err(UserError::Validation(
                    [email.err(), name.err()].into_iter().flatten().collect(),
                )),
            };
        }
        if !self.registered {
            return Err(UserError::NotFound);
        }
        if !self.active {
            return Err(UserError::Deactivated);
        }
        let user_id = self.id;
        match command {
            UserCommand::Register(RegisterUser { .. }) => Err(UserError::AlreadyRegistered),
            UserCommand::UpdateProfile(UpdateProfile { name, at }) => {
                let name = normalize_name(name, limits)
                    .map_err(|error| UserError::Validation(vec![error]))?;
                if name == self.name {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::UserProfileUpdated {
                    user_id,
                    name,
                    updated_at: *at,
                }])
            }
            UserCommand::ChangePassword(ChangePassword { at }) => {
                Ok(vec![UserEvent::PasswordChanged {
                    user_id,
                    changed_at: *at,
                }])
            }
            UserCommand::ChangeRole(ChangeRole { role, at }) => {
                if *role == self.role {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::UserRoleChanged {
                    user_id,
                    role: *role,
                    changed_at: *at,
                }])
            }
            UserCommand::Deactivate(DeactivateUser { at }) => {
                Ok(vec![UserEvent::UserDeactivated {
                    user_id,
                    deactivated_at: *at,
                }])
            }
            // Always recorded, even when unchanged: the fact is the admin's decision.
            UserCommand::SetAiBudget(SetAiBudget {
                ai_monthly_budget_usd,
                at,
            }) => Ok(vec![UserEvent::UserAiBudgetSet {
                user_id,
                ai_monthly_budget_usd: *ai_monthly_budget_usd,
                set_at: *at,
            }]),
        }
    }

    pub fn evolve(&mut self, event: &UserEvent) {
        match event {
            UserEvent::UserRegistered {
                user_id,
                email,
                name,
                role,
                registered_at,
            } => {
                *self = User {
                    id: *user_id,
                    email: email.clone(),
                    name: name.clone(),
                    role: *role,
                    active: true,
                    created_at: *registered_at,
                    updated_at: *registered_at,
                    registered: true,
                };
            }
            UserEvent::UserProfileUpdated {
                name, updated_at, ..
            } => {
                self.name = name.clone();
                self.updated_at = *updated_at;
            }
            UserEvent::PasswordChanged { changed_at, .. } => {
                self.updated_at = *changed_at;
            }
            UserEvent::UserRoleChanged {
                role, changed_at, ..
            } => {
                self.role = *role;
                self.updated_at = *changed_at;
            }
            UserEvent::UserDeactivated { deactivated_at, .. } => {
                self.active = false;
                self.updated_at = *deactivated_at;
            }
            UserEvent::UserAiBudgetSet { set_at, .. } => {
                self.updated_at = *set_at;
            }
        }
    }
}

impl crate::Decider for User {
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;

    fn decide(&self, command: &UserCommand, limits: &Limits) -> Result<Vec<UserEvent>, UserError> {
        User::decide(self, command, limits)
    }

    fn evolve(&mut self, event: &UserEvent) {
        User::evolve(self, event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{given, given_nothing, t, t0, user_id};

    fn register() -> UserCommand {
        UserCommand::Register(RegisterUser {
            user_id: user_id(1),
            email: "  Ada.Lovelace@Example.COM ".into(),
            name: "  Ada Lovelace ".into(),
            role: Role::Member,
            at: t0(),
        })
    }

    fn registered() -> UserEvent {
        UserEvent::UserRegistered {
            user_id: user_id(1),
            email: "ada.lovelace@example.com".into(),
            name: "Ada Lovelace".into(),
            role: Role::Member,
            registered_at: t0(),
        }
    }

    fn deactivated() -> UserEvent {
        UserEvent::UserDeactivated {
            user_id: user_id(1),
            deactivated_at: t(1),
        }
    }

    fn limits() -> Limits {
        Limits::default()
    }

    #[test]
    fn registering_normalises_the_email_and_trims_the_name() {
        let user = given_nothing::<User>()
            .when(register())
            .then([registered()]);
        assert!(user.exists() && user.active);
        assert_eq!(user.email, "ada.lovelace@example.com");
        assert_eq!((user.created_at, user.updated_at), (t0(), t0()));
    }

    #[test]
    fn an_ai_budget_is_set_and_cleared_as_a_fact_on_the_users_stream() {
        let budget = Some(rust_decimal::Decimal::new(12_500_000, 6));
        let user = given([registered()])
            .when(UserCommand::SetAiBudget(SetAiBudget {
                ai_monthly_budget_usd: budget,
                at: t(2),
            }))
            .then([UserEvent::UserAiBudgetSet {
                user_id: user_id(1),
                ai_monthly_budget_usd: budget,
                set_at: t(2),
            }]);
        assert_eq!(user.updated_at, t(2));
        given([registered()])
            .when(UserCommand::SetAiBudget(SetAiBudget {
                ai_monthly_budget_usd: None,
                at: t(3),
            }))
            .then([UserEvent::UserAiBudgetSet {
                user_id: user_id(1),
                ai_monthly_budget_usd: None,
                set_at: t(3),
            }]);
        given_nothing::<User>()
            .when(UserCommand::SetAiBudget(SetAiBudget {
                ai_monthly_budget_usd: None,
                at: t(3),
            }))
            .then_err(UserError::NotFound);
    }

    #[test]
    fn registering_twice_is_refused() {
        given([registered()])
            .when(register())
            .then_err(UserError::AlreadyRegistered);
    }

    #[test]
    fn registering_with_a_bad_email_and_a_bad_name_reports_both() {
        given_nothing::<User>()
            .when(UserCommand::Register(RegisterUser {
                user_id: user_id(1),
                email: "not-an-email".into(),
                name: " ".into(),
                role: Role::Member,
                at: t0(),
            }))
            .then_err(UserError::Validation(vec![
                FieldError::new(
                    "/email",
                    "must be an e-mail address such as ada@example.com",
                ),
                FieldError::new("/name", "must not be empty"),
            ]));
    }

    #[test]
    fn commands_on_an_unregistered_user_are_refused() {
        given_nothing::<User>()
            .when(UserCommand::ChangePassword(ChangePassword { at: t0() }))
            .then_err(UserError::NotFound);
    }

    #[test]
    fn a_profile_update_records_the_trimmed_name() {
        let user = given([registered()])
            .when(UserCommand::UpdateProfile(UpdateProfile {
                name: " Ada King ".into(),
                at: t(5),
            }))
            .then([UserEvent::UserProfileUpdated {
                user_id: user_id(1),
                name: "Ada King".into(),
                updated_at: t(5),
            }]);
        assert_eq!((user.name.as_str(), user.updated_at), ("Ada King", t(5)));
    }

    #[test]
    fn a_profile_update_with_the_same_name_changes_nothing() {
        given([registered()])
            .when(UserCommand::UpdateProfile(UpdateProfile {
                name: "Ada Lovelace  ".into(),
                at: t(5),
            }))
            .then_nothing();
    }

    #[test]
    fn a_profile_name_over_100_characters_is_refused() {
        given([registered()])
            .when(UserCommand::UpdateProfile(UpdateProfile {
                name: "x".repeat(101),
                at: t(5),
            }))
            .then_err(UserError::Validation(vec![FieldError::new(
                "/name",
                "must be at most 100 characters",
            )]));
    }

    #[test]
    fn a_password_change_is_a_fact_without_any_secret() {
        given([registered()])
            .when(UserCommand::ChangePassword(ChangePassword { at: t(2) }))
            .then([UserEvent::PasswordChanged {
                user_id: user_id(1),
                changed_at: t(2),
            }]);
        let data = UserEvent::PasswordChanged {
            user_id: user_id(1),
            changed_at: t(2),
        }
        .to_data();
        let keys: Vec<_> = data.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["user_id", "changed_at"]);
    }

    #[test]
    fn a_role_change_is_recorded_and_the_same_role_changes_nothing() {
        let user = given([registered()])
            .when(UserCommand::ChangeRole(ChangeRole {
                role: Role::Admin,
                at: t(3),
            }))
            .then([UserEvent::UserRoleChanged {
                user_id: user_id(1),
                role: Role::Admin,
                changed_at: t(3),
            }]);
        assert_eq!(user.role, Role::Admin);
        given([registered()])
            .when(UserCommand::ChangeRole(ChangeRole {
                role: Role::Member,
                at: t(3),
            }))
            .then_nothing();
    }

    #[test]
    fn a_user_can_be_deactivated() {
        let user = given([registered()])
            .when(UserCommand::Deactivate(DeactivateUser { at: t(1) }))
            .then([deactivated()]);
        assert!(!user.active);
    }

    #[test]
    fn a_deactivated_user_cannot_be_changed() {
        for command in [
            UserCommand::UpdateProfile(UpdateProfile {
                name: "New".into(),
                at: t(2),
            }),
            UserCommand::ChangePassword(ChangePassword { at: t(2) }),
            UserCommand::ChangeRole(ChangeRole {
                role: Role::Admin,
                at: t(2),
            }),
            UserCommand::Deactivate(DeactivateUser { at: t(2) }),
        ] {
            given([registered(), deactivated()])
                .when(command)
                .then_err(UserError::Deactivated);
        }
    }

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            normalize_email(" Bob@Mail.Example.ORG\t", &limits()).unwrap(),
            "bob@mail.example.org"
        );
    }

    #[test]
    fn malformed_emails_are_refused_at_the_email_pointer() {
        for bad in [
            "",
            "bob",
            "@example.com",
            "bob@",
            "bob@example",
            "bob@@example.com",
            "a@b@example.com",
            "bob smith@example.com",
            "bob@.example.com",
            "bob@example..com",
            "bob@example.com.",
            "bob\u{0}@example.com",
        ] {
            let error = normalize_email(bad, &limits()).unwrap_err();
            assert_eq!(error.field, "/email", "{bad:?}");
        }
    }

    #[test]
    fn an_email_may_have_254_characters_but_not_255() {
        let at_254 = format!("{}@example.com", "a".repeat(242));
        assert_eq!(at_254.len(), 254);
        assert!(normalize_email(&at_254, &limits()).is_ok());
        let error = normalize_email(&format!("a{at_254}"), &limits()).unwrap_err();
        assert_eq!(error.message, "must be at most 254 characters");
    }

    #[test]
    fn passwords_have_10_to_128_characters_counted_as_characters() {
        assert!(validate_password(&"é".repeat(10), &limits()).is_ok());
        assert!(validate_password(&"x".repeat(128), &limits()).is_ok());
        assert_eq!(
            validate_password("short", &limits()).unwrap_err(),
            FieldError::new("/password", "must be at least 10 characters")
        );
        assert_eq!(
            validate_password(&"x".repeat(129), &limits()).unwrap_err(),
            FieldError::new("/password", "must be at most 128 characters")
        );
        // Nine two-byte characters are 18 bytes but still too short.
        assert!(validate_password(&"é".repeat(9), &limits()).is_err());
    }

    #[test]
    fn names_are_trimmed_and_refuse_control_characters() {
        assert_eq!(normalize_name(" Ada ", &limits()).unwrap(), "Ada");
        assert_eq!(
            normalize_name("Ada\nLovelace", &limits()).unwrap_err(),
            FieldError::new("/name", "must not contain control characters")
        );
    }

    #[test]
    fn a_serialised_user_reads_back_as_registered() {
        let user = given([registered()]).state().clone();
        let json = serde_json::to_value(&user).unwrap();
        assert_eq!(json["role"], "member");
        assert_eq!(json["created_at"], "2025-01-15T10:00:00Z");
        assert!(json.get("registered").is_none());
        let back: User = serde_json::from_value(json).unwrap();
        assert!(back.exists());
        assert_eq!(back, user);
        assert!(!User::default().exists());
    }
}
