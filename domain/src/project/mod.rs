//! The project aggregate: a project, its features (crud entities with validated schemas) and its members.
//!
//! Features live in the project's stream, so every rule that spans features (unique names, unique
//! entities and plurals, references between entities) is decided against one consistent state.

mod commands;
pub mod configuration;
mod decide;
mod errors;
mod events;
mod evolve;
mod state;
mod validation;

#[cfg(test)]
mod tests;

pub use commands::{
    AddFeature, AddMember, ArchiveProject, CreateProject, FeatureChanges, NewFeature,
    ProjectCommand, RemoveFeature, RemoveMember, UpdateFeature, UpdateProject,
};
pub use errors::ProjectError;
pub use events::{FeaturesTouched, ProjectEvent};
pub use state::{
    Access, AccessFacts, Feature, FeatureType, GenerationMode, Member, Project, ProjectRole,
    ProjectStatus,
};
