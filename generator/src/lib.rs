//! Project state → file tree → deterministic ZIP, one module per target.
//!
//! [`generate`] is a pure function: no clock, no randomness, no I/O except building the ZIP in
//! memory. The same project, version and generator give a byte-identical archive, whose SHA-256
//! the worker records in `GenerationCompleted`.
//!
//! Every user-supplied string that reaches generated source passes through one escaping function
//! per output language ([`escape`]); identifiers come only from names the domain validated.

mod archive;
pub mod child;
pub mod escape;
mod migrations;
mod python_fastapi;
mod sample;

use std::collections::BTreeMap;

use domain::generation::{Target, generation_problems};
use domain::ids::GenerationId;
use domain::project::Project;
use sha2::{Digest, Sha256};

pub use archive::read_zip;
pub use migrations::Base;

/// The generator's version, written into every artifact's README.
pub const GENERATOR_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A generated backend: its files and their deterministic ZIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// Relative paths (`app/main.py`) to contents, in the order they are zipped.
    pub files: BTreeMap<String, Vec<u8>>,
    pub zip: Vec<u8>,
    /// Lowercase hex SHA-256 of `zip`.
    pub sha256: String,
    pub file_count: usize,
    /// The size of `zip` in bytes.
    pub size_bytes: u64,
}

/// Why a project cannot be generated. Never an empty stub: a refused project yields no artifact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenerateError {
    /// The project asks for something the target cannot build (unsupported feature types, AI
    /// generation modes, nothing enabled, a schema the generator cannot derive test data for…).
    /// Each message names the feature concerned.
    #[error("the project cannot be generated: {}", .0.join("; "))]
    Refused(Vec<String>),
    /// Writing the archive failed; a bug, not bad input.
    #[error("could not write the archive: {0}")]
    Archive(String),
}

/// Generates `project` (at `project_version`) for `target`, with no base: the migrations start
/// at the initial one.
pub fn generate(
    project: &Project,
    project_version: u64,
    target: Target,
) -> Result<Artifact, GenerateError> {
    generate_on(project, project_version, target, None)
}

/// Generates `project` (at `project_version`) for `target`; with a base (its ZIP's migrations and
/// model, and its generation id) the migrations upgrade a database of that base.
pub fn generate_on(
    project: &Project,
    project_version: u64,
    target: Target,
    base: Option<(&Base, GenerationId)>,
) -> Result<Artifact, GenerateError> {
    let problems: Vec<String> = generation_problems(project, target)
        .into_iter()
        .map(|p| p.message)
        .collect();
    if !problems.is_empty() {
        return Err(GenerateError::Refused(problems));
    }
    let mut files = match target {
        Target::PythonFastapi => python_fastapi::files(project, project_version)?,
    };
    migrations::chain(&mut files, base).map_err(|e| {
        GenerateError::Refused(vec![format!("the base generation cannot be upgraded: {e}")])
    })?;
    artifact(files)
}

impl Artifact {
    /// The artifact a ZIP written by [`generate`] holds (as the worker gets it back from the
    /// generator's child process): its files read back, its hash and sizes recomputed.
    pub fn from_zip(zip: Vec<u8>) -> Result<Artifact, String> {
        let files = read_zip(&zip)?;
        let sha256 = hex::encode(Sha256::digest(&zip));
        Ok(Artifact {
            file_count: files.len(),
            size_bytes: zip.len() as u64,
            files,
            zip,
            sha256,
        })
    }
}

fn artifact(files: BTreeMap<String, Vec<u8>>) -> Result<Artifact, GenerateError> {
    for name in files.keys() {
        assert!(
            archive::unsafe_name(name).is_none(),
            "generated file name {name:?} is unsafe"
        );
    }
    let zip = archive::write_zip(&files).map_err(|e| GenerateError::Archive(e.to_string()))?;
    let sha256 = hex::encode(Sha256::digest(&zip));
    Ok(Artifact {
        file_count: files.len(),
        size_bytes: zip.len() as u64,
        files,
        zip,
        sha256,
    })
}

#[cfg(test)]
mod function_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod upgrade_tests;
