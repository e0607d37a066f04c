//! The contract between the worker and `backforge generate`, the child process the generator runs
//! in: the job it reads on stdin, the exit codes, and the refusal it writes on stderr. The ZIP
//! itself is the child's whole stdout; [`Artifact::from_zip`](crate::Artifact::from_zip) turns it
//! back into an artifact.

use domain::generation::Target;
use domain::ids::GenerationId;
use domain::project::Project;
use serde::{Deserialize, Serialize};

/// What the child reads on stdin (one JSON document): the job and, when the generation has a
/// base, that base — everything [`crate::generate_on`] takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildInput {
    #[serde(flatten)]
    pub job: ChildJob,
    /// The base generation's id, when the generation has a base.
    #[serde(default)]
    pub base_generation_id: Option<GenerationId>,
    /// The base generation's migrations and model.
    #[serde(default)]
    pub base: Option<crate::Base>,
}

impl ChildInput {
    /// What [`crate::generate_on`] takes as the base: a base always comes with its id.
    pub fn on_base(&self) -> Result<Option<(&crate::Base, GenerationId)>, String> {
        match (&self.base, self.base_generation_id) {
            (Some(base), Some(id)) => Ok(Some((base, id))),
            (None, None) => Ok(None),
            _ => Err("a base and its generation id come together".into()),
        }
    }
}

/// The generation job: everything [`crate::generate`] takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildJob {
    pub project: Project,
    pub project_version: u64,
    pub target: Target,
}

/// The child wrote the ZIP to stdout.
pub const EXIT_GENERATED: i32 = 0;
/// The project cannot be generated; stderr holds a [`ChildRefusal`] as JSON.
pub const EXIT_REFUSED: i32 = 3;
/// stdin was not a [`ChildInput`]; stderr says why (a bug in the caller, never the user's input).
pub const EXIT_BAD_JOB: i32 = 4;

/// Why the project cannot be generated: [`crate::GenerateError::Refused`]'s messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildRefusal {
    pub problems: Vec<String>,
}
