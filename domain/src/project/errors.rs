//! Why a project command is refused.

use crate::error::{FieldError, join};
use crate::ids::{FeatureId, FunctionId, UserId};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProjectError {
    #[error("no such project")]
    NotFound,
    #[error("the project exists already")]
    AlreadyExists,
    /// Writes to an archived project answer 404 like its current-state reads (`docs/api.md`,
    /// reasons in `docs/ARCHITECTURE.md`); the HTTP layer picks the answer per route.
    #[error("the project is archived")]
    Archived,
    #[error("the project has no feature {0}")]
    FeatureNotFound(FeatureId),
    /// A fresh feature id collided: a caller bug or a replayed request, not a client mistake.
    #[error("the project has a feature {0} already")]
    FeatureAlreadyExists(FeatureId),
    #[error("user {0} is not a member of the project")]
    MemberNotFound(UserId),
    #[error("the owner of a project cannot be added as a member")]
    OwnerCannotBeMember,
    #[error("the project has the maximum of {limit} features")]
    FeatureLimitReached { limit: usize },
    #[error("the project has a feature named `{name}` already")]
    FeatureNameTaken { name: String },
    #[error("the project has an entity named `{entity}` already")]
    EntityNameTaken { entity: String },
    #[error("the project has an entity with the plural `{plural}` already")]
    PluralTaken { plural: String },
    /// The change would leave these entities referencing something gone, renamed or disabled.
    #[error("the entity is referenced by {}", .by.join(", "))]
    FeatureReferenced { by: Vec<String> },
    /// Every problem of the request, found at once.
    #[error("invalid request: {}", join(.0))]
    Validation(Vec<FieldError>),
    #[error("the project has no function {0}")]
    FunctionNotFound(FunctionId),
    /// A fresh function id collided: a caller bug or a replayed request, not a client mistake.
    #[error("the project has a function {0} already")]
    FunctionAlreadyExists(FunctionId),
    #[error("the project has the maximum of {limit} functions")]
    FunctionLimitReached { limit: usize },
    /// Another function has the name, or answers the same method and path.
    #[error("{0}")]
    FunctionConflict(String),
    /// The project's state after the change would be larger than the configured limit.
    #[error("the project would be {bytes} bytes, over the limit of {limit}")]
    TooLarge { bytes: usize, limit: usize },
}
