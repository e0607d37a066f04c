//! The project aggregate: a project, its features (crud entities with validated schemas), its custom functions and its members.
//!
//! Features live in the project's stream, so every rule that spans features (unique names, unique
//! entities and plurals, references between entities) is decided against one consistent state.

mod ai_content;
mod commands;
pub mod configuration;
mod decide;
mod errors;
mod events;
mod evolve;
mod functions;
mod size;
mod state;
mod validation;

#[cfg(test)]
mod tests;

pub use ai_content::{AiContent, ApplyAiContent};
pub use commands::{
    AddFeature, AddMember, ArchiveProject, CreateFunction, CreateProject, DeleteFunction,
    FeatureChanges, NewFeature, ProjectCommand, RemoveFeature, RemoveMember, UpdateFeature,
    UpdateFunction, UpdateProject,
};
pub use errors::ProjectError;
pub use events::{FeaturesTouched, ProjectEvent};
pub use functions::{
    Function, FunctionChanges, FunctionExample, FunctionLanguage, HttpMethod, NewFunction,
    default_endpoint_path, entity_route_prefix,
};
pub use state::{
    Access, AccessFacts, Feature, FeatureType, GenerationMode, Member, Project, ProjectRole,
    ProjectStatus,
};
