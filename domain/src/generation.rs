//! The generation aggregate: one run of a generator over a project version, from request to result.
//!
//! Status machine: `requested` → `running` → `succeeded` | `failed`. `Start` may repeat while
//! running (a job redelivered after a worker died), and `Fail` is also accepted straight from
//! `requested`, so a sweeper can end a job that never started and nothing stays unfinished forever.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::envelope::{DecodeError, DomainEvent, decode_tagged, decode_tagged_json, encode_tagged};
use crate::error::{FieldError, join};
use crate::ids::{GenerationId, ProjectId, UserId};
use crate::limits::Limits;
use crate::project::{FeatureType, GenerationMode, Project, ProjectStatus};
use crate::text;

/// What a generation produces. Stored as its API name (`python-fastapi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Target {
    /// FastAPI + SQLAlchemy 2 + Pydantic v2, SQLite by default.
    #[default]
    #[serde(rename = "python-fastapi")]
    PythonFastapi,
}

impl Target {
    pub const ALL: [Target; 1] = [Target::PythonFastapi];

    pub fn as_str(self) -> &'static str {
        match self {
            Target::PythonFastapi => "python-fastapi",
        }
    }

    /// Whether this target can generate features of `feature_type`.
    pub fn supports(self, feature_type: FeatureType) -> bool {
        match self {
            Target::PythonFastapi => matches!(
                feature_type,
                FeatureType::Crud | FeatureType::Auth | FeatureType::FileStorage
            ),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name is not one of [`Target::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown target `{0}`")]
pub struct UnknownTarget(pub String);

impl FromStr for Target {
    type Err = UnknownTarget;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Target::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownTarget(s.to_owned()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GenerationStatus {
    #[default]
    Requested,
    Running,
    Succeeded,
    Failed,
}

impl GenerationStatus {
    /// The stored and served spelling (the serde name): read models and the API use only this.
    pub fn as_str(self) -> &'static str {
        match self {
            GenerationStatus::Requested => "requested",
            GenerationStatus::Running => "running",
            GenerationStatus::Succeeded => "succeeded",
            GenerationStatus::Failed => "failed",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, GenerationStatus::Succeeded | GenerationStatus::Failed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Succeeded,
    Failed,
    Skipped,
}

/// One step of a run (render, package, verify ...), as `GET /generations/{id}` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReport {
    pub name: String,
    pub status: StepStatus,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

/// The result of the generated app's own test suite, when verification was asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestReport {
    pub passed: u32,
    pub failed: u32,
    pub report: String,
}

/// The most steps a generation records; more are summarised in one last step.
pub const STEPS_MAX: usize = 32;
/// Each step's log, as recorded (the rest is cut with a note).
pub const STEP_LOG_MAX_BYTES: usize = 8 * 1024;
/// The test report, as recorded.
pub const REPORT_MAX_BYTES: usize = 32 * 1024;
/// A failure's reason, as recorded.
pub const REASON_MAX_BYTES: usize = 4 * 1024;

/// Steps, logs and reports come from processes (the generator, pip, pytest): foreign text, made
/// storable and bounded here, in the decider, so every writer records them the same way.
fn foreign_steps(steps: &[StepReport]) -> Vec<StepReport> {
    let sanitize = |step: &StepReport| StepReport {
        name: text::sanitize_foreign(&step.name, 200),
        status: step.status,
        duration_ms: step.duration_ms,
        log: step
            .log
            .as_deref()
            .map(|log| text::sanitize_foreign(log, STEP_LOG_MAX_BYTES)),
    };
    if steps.len() <= STEPS_MAX {
        return steps.iter().map(sanitize).collect();
    }
    let (kept, left_out) = text::cap_list(steps.iter().collect(), STEPS_MAX - 1);
    let mut out: Vec<StepReport> = kept.into_iter().map(sanitize).collect();
    out.push(StepReport {
        name: "more-steps".into(),
        status: steps[steps.len() - 1].status,
        duration_ms: steps[STEPS_MAX - 1..].iter().map(|s| s.duration_ms).sum(),
        log: Some(format!("{left_out} more steps were left out")),
    });
    out
}

fn foreign_tests(tests: &TestReport) -> TestReport {
    TestReport {
        passed: tests.passed,
        failed: tests.failed,
        report: text::sanitize_foreign(&tests.report, REPORT_MAX_BYTES),
    }
}

/// A generation as its events describe it; serialises with the field names of
/// `GET /generations/{id}`. `Generation::default()` is the state before the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generation {
    pub id: GenerationId,
    pub project_id: ProjectId,
    pub project_version: u64,
    pub target: Target,
    /// The generation whose database this one's migrations upgrade; none: they start at the
    /// initial migration.
    pub base_generation_id: Option<GenerationId>,
    pub verify: bool,
    pub requested_by: UserId,
    pub status: GenerationStatus,
    /// The delivery attempt of the latest start; 0 before the first.
    pub attempt: u32,
    pub steps: Vec<StepReport>,
    pub file_count: Option<u64>,
    pub size_bytes: Option<u64>,
    pub sha256: Option<String>,
    pub tests: Option<TestReport>,
    /// Why it failed.
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    /// When it succeeded or failed.
    #[serde(with = "time::serde::rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
    // A serialised generation was requested; only `default()` builds the state before.
    #[serde(skip, default = "requested")]
    requested: bool,
}

fn requested() -> bool {
    true
}

impl Default for Generation {
    fn default() -> Self {
        Self {
            id: GenerationId::from_uuid(uuid::Uuid::nil()),
            project_id: ProjectId::from_uuid(uuid::Uuid::nil()),
            project_version: 0,
            target: Target::default(),
            base_generation_id: None,
            verify: false,
            requested_by: UserId::from_uuid(uuid::Uuid::nil()),
            status: GenerationStatus::Requested,
            attempt: 0,
            steps: Vec::new(),
            file_count: None,
            size_bytes: None,
            sha256: None,
            tests: None,
            error: None,
            requested_at: OffsetDateTime::UNIX_EPOCH,
            started_at: None,
            completed_at: None,
            requested: false,
        }
    }
}

/// `project` is the project folded up to `project_version`; `current_project_version` is the
/// stream's version now. The caller checks access (and the current project's status) on the
/// current state before it loads the snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestGeneration {
    pub generation_id: GenerationId,
    pub project: Project,
    pub project_version: u64,
    pub current_project_version: u64,
    /// Raw, as in the request; the default (`docs/api.md`) is `python-fastapi`.
    pub target: String,
    /// The base generation as the caller loaded it (the one the request names, else the latest
    /// succeeded generation of the project and target); `None`: no base.
    pub base: Option<Box<Generation>>,
    pub verify: bool,
    pub requested_by: UserId,
    pub at: OffsetDateTime,
}

/// A worker took the job; `attempt` is its delivery count (1 for the first delivery).
#[derive(Debug, Clone, PartialEq)]
pub struct StartGeneration {
    pub attempt: u32,
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CompleteGeneration {
    pub file_count: u64,
    pub size_bytes: u64,
    /// Lowercase hex SHA-256 of the ZIP.
    pub sha256: String,
    pub steps: Vec<StepReport>,
    pub tests: Option<TestReport>,
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FailGeneration {
    pub reason: String,
    pub steps: Vec<StepReport>,
    pub tests: Option<TestReport>,
    pub at: OffsetDateTime,
}

/// Every command a generation decides, each its own struct.
#[derive(Debug, Clone, PartialEq)]
pub enum GenerationCommand {
    RequestGeneration(RequestGeneration),
    Start(StartGeneration),
    Complete(CompleteGeneration),
    Fail(FailGeneration),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GenerationEvent {
    #[serde(rename = "GenerationRequested")]
    GenerationRequested {
        generation_id: GenerationId,
        project_id: ProjectId,
        project_version: u64,
        target: Target,
        /// The generation whose database this one's migrations upgrade (schema version 2; the
        /// upcaster gives earlier requests none).
        base_generation_id: Option<GenerationId>,
        verify: bool,
        requested_by: UserId,
        #[serde(with = "time::serde::rfc3339")]
        requested_at: OffsetDateTime,
    },
    #[serde(rename = "GenerationStarted")]
    GenerationStarted {
        generation_id: GenerationId,
        attempt: u32,
        #[serde(with = "time::serde::rfc3339")]
        started_at: OffsetDateTime,
    },
    #[serde(rename = "GenerationCompleted")]
    GenerationCompleted {
        generation_id: GenerationId,
        file_count: u64,
        size_bytes: u64,
        sha256: String,
        steps: Vec<StepReport>,
        tests: Option<TestReport>,
        #[serde(with = "time::serde::rfc3339")]
        completed_at: OffsetDateTime,
    },
    #[serde(rename = "GenerationFailed")]
    GenerationFailed {
        generation_id: GenerationId,
        reason: String,
        steps: Vec<StepReport>,
        tests: Option<TestReport>,
        #[serde(with = "time::serde::rfc3339")]
        failed_at: OffsetDateTime,
    },
}

impl GenerationEvent {
    pub const TYPES: &'static [&'static str] = &[
        "GenerationRequested",
        "GenerationStarted",
        "GenerationCompleted",
        "GenerationFailed",
    ];
}

impl DomainEvent for GenerationEvent {
    fn event_type(&self) -> &'static str {
        match self {
            GenerationEvent::GenerationRequested { .. } => "GenerationRequested",
            GenerationEvent::GenerationStarted { .. } => "GenerationStarted",
            GenerationEvent::GenerationCompleted { .. } => "GenerationCompleted",
            GenerationEvent::GenerationFailed { .. } => "GenerationFailed",
        }
    }

    fn schema_version(&self) -> u32 {
        match self {
            GenerationEvent::GenerationRequested { .. } => 2,
            _ => 1,
        }
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
pub enum GenerationError {
    #[error("the generation was requested already")]
    AlreadyRequested,
    #[error("no such generation")]
    NotFound,
    #[error("no such project")]
    ProjectNotFound,
    #[error("the project is archived")]
    ProjectArchived,
    #[error("the project has no version {version} (its latest is {current})")]
    VersionNotFound { version: u64, current: u64 },
    #[error("the generation has not started")]
    NotStarted,
    /// Callers treat this as an idempotent skip: a redelivered job finished already.
    #[error("the generation has finished already")]
    AlreadyFinished,
    #[error("invalid request: {}", join(.0))]
    Validation(Vec<FieldError>),
}

/// The owner column of every entity of a generated app; a reserved field name.
pub const OWNER_FIELD: &str = "owner_id";

/// Why a feature or function in effective `mode` cannot be generated, if it cannot: `ai_assisted`
/// content generates once an AI request's proposal was applied to it (an owner's edit since keeps
/// it so); `mixed` and `manual` always generate. Generation never calls a model: AI output lives in
/// events, so the same project version still gives the same bytes.
fn unapplied_ai(
    mode: GenerationMode,
    ai_request_id: Option<crate::ids::AiRequestId>,
    requests: &str,
) -> Option<String> {
    match (mode, ai_request_id) {
        (GenerationMode::AiAssisted, None) => Some(format!(
            "is `ai_assisted` (its own mode or the project's) and no AI request's proposal was \
             applied to it; apply an AI request first ({requests}), or make it `manual` or `mixed`"
        )),
        _ => None,
    }
}

/// Why `project` cannot be generated for `target`. These problems are about the project's state,
/// not about any member of the request body, so their pointer is `""` (the request as a whole);
/// messages name the feature concerned.
pub fn generation_problems(project: &Project, target: Target) -> Vec<FieldError> {
    let mut problems = Vec::new();
    let whole = |message: String| FieldError::new("", message);
    let enabled: Vec<_> = project.features.iter().filter(|f| f.is_enabled).collect();
    if enabled.is_empty() {
        problems.push(whole(
            "the project has no enabled feature to generate".into(),
        ));
    }
    for function in project.functions.iter().filter(|f| f.is_active) {
        let mode = function.generation_mode.unwrap_or(project.generation_mode);
        if let Some(why) = unapplied_ai(mode, function.ai_request_id, "/ai/generate-code") {
            problems.push(whole(format!("function `{}` {why}", function.name)));
        }
    }
    for feature in &enabled {
        let mode = feature.effective_generation_mode(project.generation_mode);
        if let Some(why) = unapplied_ai(
            mode,
            feature.ai_request_id,
            "/ai/generate-config or /ai/enhance-config",
        ) {
            problems.push(whole(format!("feature `{}` {why}", feature.name)));
        }
        if let Some(schema) = feature.entity() {
            for field in schema.fields.iter().filter(|f| f.name == OWNER_FIELD) {
                problems.push(whole(format!(
                    "feature `{}`: field `{}` of entity `{}` uses the reserved name `{OWNER_FIELD}` \
                     (every generated entity has this owner column); rename the field",
                    feature.name, field.name, schema.entity
                )));
            }
        }
        if feature.feature_type == FeatureType::Auth {
            for entity in feature.auth_config().entities.keys() {
                if !project
                    .features
                    .iter()
                    .any(|f| f.entity().is_some_and(|s| &s.entity == entity))
                {
                    problems.push(whole(format!(
                        "feature `{}`: its configuration names the entity `{entity}`, which is not \
                         a crud entity of the project",
                        feature.name
                    )));
                }
            }
        }
        if !target.supports(feature.feature_type) {
            problems.push(whole(format!(
                "feature `{}` is of type {}, which target {target} cannot generate yet; disable it",
                feature.name, feature.feature_type
            )));
        }
    }
    problems
}

/// Why `base` cannot be the base of a generation of `project_id` at `project_version` for
/// `target`: the migrations of a generation upgrade the database of an earlier one of the same
/// project and target, whose ZIP exists.
fn base_problem(
    base: &Generation,
    project_id: ProjectId,
    project_version: u64,
    target: Target,
) -> Option<FieldError> {
    let message = if !base.exists() {
        "no such generation".to_owned()
    } else if base.project_id != project_id {
        "the base generation is of another project".to_owned()
    } else if base.target != target {
        format!(
            "the base generation is for the target {}, not {target}",
            base.target
        )
    } else if base.project_version > project_version {
        format!(
            "the base generation is of project version {}, later than {project_version}",
            base.project_version
        )
    } else if base.status != GenerationStatus::Succeeded {
        format!(
            "the base generation has not succeeded (it is {})",
            base.status.as_str()
        )
    } else {
        return None;
    };
    Some(FieldError::new("/base_generation_id", message))
}

/// Schema version 1 → 2 of `GenerationRequested`: requests made before generations had bases
/// had none (their migrations start at the initial one).
pub fn upcast_requested_v1(mut data: serde_json::Value) -> Result<serde_json::Value, String> {
    let members = data.as_object_mut().ok_or("not an object")?;
    let mut out = serde_json::Map::new();
    for (key, value) in std::mem::take(members) {
        let after_target = key == "target";
        out.insert(key, value);
        if after_target {
            out.insert("base_generation_id".into(), serde_json::Value::Null);
        }
    }
    if !out.contains_key("base_generation_id") {
        return Err("no target".into());
    }
    *members = out;
    Ok(data)
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Generation {
    /// Whether a `GenerationRequested` has been folded in.
    pub fn exists(&self) -> bool {
        self.requested
    }

    pub fn decide(
        &self,
        command: &GenerationCommand,
        _limits: &Limits,
    ) -> Result<Vec<GenerationEvent>, GenerationError> {
        if let GenerationCommand::RequestGeneration(RequestGeneration {
            generation_id,
            project,
            project_version,
            current_project_version,
            target,
            base,
            verify,
            requested_by,
            at,
        }) = command
        {
            if self.requested {
                return Err(GenerationError::AlreadyRequested);
            }
            if !project.exists() {
                return Err(GenerationError::ProjectNotFound);
            }
            if *project_version == 0 || project_version > current_project_version {
                return Err(GenerationError::VersionNotFound {
                    version: *project_version,
                    current: *current_project_version,
                });
            }
            if project.status == ProjectStatus::Archived {
                return Err(GenerationError::ProjectArchived);
            }
            let target = match target.parse::<Target>() {
                Ok(target) => target,
                Err(unknown) => {
                    let known: Vec<_> = Target::ALL.iter().map(|t| t.as_str()).collect();
                    return Err(GenerationError::Validation(vec![FieldError::new(
                        "/target",
                        format!("{unknown}; known targets: {}", known.join(", ")),
                    )]));
                }
            };
            let mut problems = generation_problems(project, target);
            if let Some(base) = base {
                problems.extend(base_problem(base, project.id, *project_version, target));
            }
            if !problems.is_empty() {
                return Err(GenerationError::Validation(problems));
            }
            return Ok(vec![GenerationEvent::GenerationRequested {
                generation_id: *generation_id,
                project_id: project.id,
                project_version: *project_version,
                target,
                base_generation_id: base.as_ref().map(|b| b.id),
                verify: *verify,
                requested_by: *requested_by,
                requested_at: *at,
            }]);
        }
        if !self.requested {
            return Err(GenerationError::NotFound);
        }
        if self.status.is_finished() {
            return Err(match command {
                GenerationCommand::RequestGeneration(_) => GenerationError::AlreadyRequested,
                _ => GenerationError::AlreadyFinished,
            });
        }
        let generation_id = self.id;
        match command {
            GenerationCommand::RequestGeneration(_) => Err(GenerationError::AlreadyRequested),
            GenerationCommand::Start(StartGeneration { attempt, at }) => {
                // A duplicate delivery of an attempt already recorded changes nothing.
                if self.status == GenerationStatus::Running && *attempt <= self.attempt {
                    return Ok(vec![]);
                }
                Ok(vec![GenerationEvent::GenerationStarted {
                    generation_id,
                    attempt: *attempt,
                    started_at: *at,
                }])
            }
            GenerationCommand::Complete(CompleteGeneration {
                file_count,
                size_bytes,
                sha256,
                steps,
                tests,
                at,
            }) => {
                if self.status != GenerationStatus::Running {
                    return Err(GenerationError::NotStarted);
                }
                let mut problems = Vec::new();
                if !is_sha256_hex(sha256) {
                    problems.push(FieldError::new(
                        "/sha256",
                        "must be 64 lowercase hex digits",
                    ));
                }
                // "Succeeded" must mean the app was verified when verification was asked for.
                match tests {
                    None if self.verify => problems.push(FieldError::new(
                        "/tests",
                        "verification was requested, so a test report is required",
                    )),
                    Some(report) if report.failed > 0 => problems.push(FieldError::new(
                        "/tests",
                        "a generation whose tests failed must be recorded as failed",
                    )),
                    _ => {}
                }
                if !problems.is_empty() {
                    return Err(GenerationError::Validation(problems));
                }
                Ok(vec![GenerationEvent::GenerationCompleted {
                    generation_id,
                    file_count: *file_count,
                    size_bytes: *size_bytes,
                    sha256: sha256.clone(),
                    steps: foreign_steps(steps),
                    tests: tests.as_ref().map(foreign_tests),
                    completed_at: *at,
                }])
            }
            GenerationCommand::Fail(FailGeneration {
                reason,
                steps,
                tests,
                at,
            }) => Ok(vec![GenerationEvent::GenerationFailed {
                generation_id,
                reason: text::sanitize_foreign(reason, REASON_MAX_BYTES),
                steps: foreign_steps(steps),
                tests: tests.as_ref().map(foreign_tests),
                failed_at: *at,
            }]),
        }
    }

    pub fn evolve(&mut self, event: &GenerationEvent) {
        match event {
            GenerationEvent::GenerationRequested {
                generation_id,
                project_id,
                project_version,
                target,
                base_generation_id,
                verify,
                requested_by,
                requested_at,
            } => {
                *self = Generation {
                    id: *generation_id,
                    project_id: *project_id,
                    project_version: *project_version,
                    target: *target,
                    base_generation_id: *base_generation_id,
                    verify: *verify,
                    requested_by: *requested_by,
                    requested_at: *requested_at,
                    requested: true,
                    ..Generation::default()
                };
            }
            GenerationEvent::GenerationStarted {
                attempt,
                started_at,
                ..
            } => {
                self.status = GenerationStatus::Running;
                self.attempt = *attempt;
                self.started_at = Some(*started_at);
            }
            GenerationEvent::GenerationCompleted {
                file_count,
                size_bytes,
                sha256,
                steps,
                tests,
                completed_at,
                ..
            } => {
                self.status = GenerationStatus::Succeeded;
                self.file_count = Some(*file_count);
                self.size_bytes = Some(*size_bytes);
                self.sha256 = Some(sha256.clone());
                self.steps = steps.clone();
                self.tests = tests.clone();
                self.completed_at = Some(*completed_at);
            }
            GenerationEvent::GenerationFailed {
                reason,
                steps,
                tests,
                failed_at,
                ..
            } => {
                self.status = GenerationStatus::Failed;
                self.error = Some(reason.clone());
                self.steps = steps.clone();
                self.tests = tests.clone();
                self.completed_at = Some(*failed_at);
            }
        }
    }
}

impl crate::Decider for Generation {
    type Command = GenerationCommand;
    type Event = GenerationEvent;
    type Error = GenerationError;

    fn decide(
        &self,
        command: &GenerationCommand,
        limits: &Limits,
    ) -> Result<Vec<GenerationEvent>, GenerationError> {
        Generation::decide(self, command, limits)
    }

    fn evolve(&mut self, event: &GenerationEvent) {
        Generation::evolve(self, event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Decider;
    use crate::crud_schema::EntitySchema;
    use crate::project::{Feature, GenerationMode, ProjectEvent};
    use crate::testing::{
        feature_id, generation_id, given, given_nothing, project_id, t, t0, user_id,
    };
    use crate::{FieldError, Pointer};
    use serde_json::{Map, json};

    const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn created(mode: GenerationMode) -> ProjectEvent {
        ProjectEvent::ProjectCreated {
            project_id: project_id(10),
            owner_id: user_id(1),
            name: "Shop".into(),
            description: None,
            generation_mode: mode,
            created_at: t0(),
        }
    }

    fn feature(id: u128, name: &str, feature_type: FeatureType) -> ProjectEvent {
        let schema_definition = (feature_type == FeatureType::Crud).then(|| {
            EntitySchema::parse(
                &json!({"entity": name.to_lowercase(), "fields": [{"name": "label", "type": "string"}]}),
                &Pointer::root(),
                &Limits::default(),
            )
            .unwrap()
        });
        ProjectEvent::FeatureAdded {
            project_id: project_id(10),
            feature_id: feature_id(id),
            name: name.into(),
            feature_type,
            generation_mode: None,
            configuration: Map::new(),
            schema_definition,
            is_enabled: true,
            added_at: t(1),
            ai_request_id: None,
        }
    }

    fn project(events: &[ProjectEvent]) -> Project {
        Project::fold(events)
    }

    fn shop() -> Project {
        project(&[
            created(GenerationMode::Manual),
            feature(1, "Customer", FeatureType::Crud),
            feature(2, "Login", FeatureType::Auth),
        ])
    }

    fn request_with(project: Project, project_version: u64, target: &str) -> GenerationCommand {
        GenerationCommand::RequestGeneration(RequestGeneration {
            generation_id: generation_id(7),
            project,
            project_version,
            current_project_version: 3,
            target: target.into(),
            base: None,
            verify: false,
            requested_by: user_id(1),
            at: t(10),
        })
    }

    fn request(project: Project) -> GenerationCommand {
        request_with(project, 3, "python-fastapi")
    }

    fn requested(project_version: u64) -> GenerationEvent {
        GenerationEvent::GenerationRequested {
            generation_id: generation_id(7),
            project_id: project_id(10),
            project_version,
            target: Target::PythonFastapi,
            base_generation_id: None,
            verify: false,
            requested_by: user_id(1),
            requested_at: t(10),
        }
    }

    fn started(attempt: u32) -> GenerationEvent {
        GenerationEvent::GenerationStarted {
            generation_id: generation_id(7),
            attempt,
            started_at: t(11),
        }
    }

    fn steps() -> Vec<StepReport> {
        vec![
            StepReport {
                name: "render".into(),
                status: StepStatus::Succeeded,
                duration_ms: 12,
                log: None,
            },
            StepReport {
                name: "package".into(),
                status: StepStatus::Succeeded,
                duration_ms: 3,
                log: Some("31 files".into()),
            },
        ]
    }

    fn complete(tests: Option<TestReport>) -> GenerationCommand {
        GenerationCommand::Complete(CompleteGeneration {
            file_count: 31,
            size_bytes: 20480,
            sha256: SHA.into(),
            steps: steps(),
            tests,
            at: t(12),
        })
    }

    fn completed(tests: Option<TestReport>) -> GenerationEvent {
        GenerationEvent::GenerationCompleted {
            generation_id: generation_id(7),
            file_count: 31,
            size_bytes: 20480,
            sha256: SHA.into(),
            steps: steps(),
            tests,
            completed_at: t(12),
        }
    }

    fn fail() -> GenerationCommand {
        GenerationCommand::Fail(FailGeneration {
            reason: "deadline exceeded".into(),
            steps: vec![],
            tests: None,
            at: t(30),
        })
    }

    fn failed() -> GenerationEvent {
        GenerationEvent::GenerationFailed {
            generation_id: generation_id(7),
            reason: "deadline exceeded".into(),
            steps: vec![],
            tests: None,
            failed_at: t(30),
        }
    }

    fn passing() -> TestReport {
        TestReport {
            passed: 12,
            failed: 0,
            report: "12 passed".into(),
        }
    }

    /// The problems of a refused request, as (pointer, message) pairs.
    #[track_caller]
    fn invalid(outcome: Result<Vec<GenerationEvent>, GenerationError>) -> Vec<(String, String)> {
        match outcome {
            Err(GenerationError::Validation(errors)) => {
                errors.into_iter().map(|e| (e.field, e.message)).collect()
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    // --- requests ---

    #[test]
    fn a_generation_of_the_current_version_is_requested() {
        let generation = given_nothing::<Generation>()
            .when(request(shop()))
            .then([requested(3)]);
        assert!(generation.exists());
        assert_eq!(generation.status, GenerationStatus::Requested);
        assert_eq!(generation.project_version, 3);
    }

    #[test]
    fn an_older_project_version_may_be_generated() {
        given_nothing::<Generation>()
            .when(request_with(shop(), 1, "python-fastapi"))
            .outcome()
            .map(|events| assert_eq!(events, [requested(1)]))
            .unwrap();
    }

    #[test]
    fn version_zero_and_versions_beyond_the_current_one_are_not_found() {
        given_nothing::<Generation>()
            .when(request_with(shop(), 0, "python-fastapi"))
            .then_err(GenerationError::VersionNotFound {
                version: 0,
                current: 3,
            });
        given_nothing::<Generation>()
            .when(request_with(shop(), 4, "python-fastapi"))
            .then_err(GenerationError::VersionNotFound {
                version: 4,
                current: 3,
            });
    }

    #[test]
    fn a_project_never_created_cannot_be_generated() {
        given_nothing::<Generation>()
            .when(request(Project::default()))
            .then_err(GenerationError::ProjectNotFound);
    }

    #[test]
    fn an_archived_project_cannot_be_generated() {
        let archived = project(&[
            created(GenerationMode::Manual),
            feature(1, "Customer", FeatureType::Crud),
            ProjectEvent::ProjectArchived {
                project_id: project_id(10),
                archived_at: t(2),
            },
        ]);
        given_nothing::<Generation>()
            .when(request(archived))
            .then_err(GenerationError::ProjectArchived);
    }

    #[test]
    fn an_unknown_target_is_rejected_at_the_target_pointer() {
        let outcome = given_nothing::<Generation>()
            .when(request_with(shop(), 3, "rust-axum"))
            .outcome();
        assert_eq!(
            invalid(outcome),
            [(
                "/target".to_owned(),
                "unknown target `rust-axum`; known targets: python-fastapi".to_owned()
            )]
        );
    }

    #[test]
    fn a_project_without_an_enabled_feature_cannot_be_generated() {
        let only_disabled = project(&[
            created(GenerationMode::Manual),
            feature(1, "Customer", FeatureType::Crud),
            ProjectEvent::FeatureUpdated {
                project_id: project_id(10),
                feature_id: feature_id(1),
                name: None,
                generation_mode: None,
                configuration: None,
                schema_definition: None,
                is_enabled: Some(false),
                updated_at: t(2),
                ai_request_id: None,
            },
        ]);
        let outcome = given_nothing::<Generation>()
            .when(request(only_disabled))
            .outcome();
        assert_eq!(
            invalid(outcome),
            [(
                "".to_owned(),
                "the project has no enabled feature to generate".to_owned()
            )]
        );
    }

    fn ai_request(n: u128) -> crate::ids::AiRequestId {
        crate::ids::AiRequestId::from_uuid(uuid::Uuid::from_u128(0xa1_0000 + n))
    }

    fn no_applied_ai(kind: &str, name: &str, requests: &str) -> (String, String) {
        (
            "".to_owned(),
            format!(
                "{kind} `{name}` is `ai_assisted` (its own mode or the project's) and no AI \
                 request's proposal was applied to it; apply an AI request first ({requests}), or \
                 make it `manual` or `mixed`"
            ),
        )
    }

    const FEATURE_REQUESTS: &str = "/ai/generate-config or /ai/enhance-config";

    #[test]
    fn an_ai_assisted_feature_without_applied_ai_content_is_refused_by_name() {
        // Given a feature whose own mode is ai_assisted, and no AI request applied to it
        let mut project = shop();
        project.features[1].generation_mode = Some(GenerationMode::AiAssisted);
        // When its generation is requested, then it is refused naming it
        let outcome = given_nothing::<Generation>()
            .when(request(project.clone()))
            .outcome();
        assert_eq!(
            invalid(outcome),
            [no_applied_ai("feature", "Login", FEATURE_REQUESTS)]
        );
        // And once an AI request's proposal was applied to it, it generates
        project.features[1].ai_request_id = Some(ai_request(1));
        given_nothing::<Generation>()
            .when(request(project))
            .then([requested(3)]);
    }

    #[test]
    fn a_feature_follows_the_projects_ai_assisted_mode_unless_it_has_its_own() {
        // Given an ai_assisted project: Customer follows it, Login is manual
        let mut project = project(&[
            created(GenerationMode::AiAssisted),
            feature(1, "Customer", FeatureType::Crud),
            feature(2, "Login", FeatureType::Auth),
        ]);
        project.features[1].generation_mode = Some(GenerationMode::Manual);
        let outcome = given_nothing::<Generation>()
            .when(request(project.clone()))
            .outcome();
        // Then only Customer, whose effective mode is ai_assisted, is refused
        assert_eq!(
            invalid(outcome),
            [no_applied_ai("feature", "Customer", FEATURE_REQUESTS)]
        );
        // And with applied AI content (edited by its owner since: the request stays recorded) it
        // generates
        project.features[0].ai_request_id = Some(ai_request(2));
        project.features[0].name = "Client".into();
        given_nothing::<Generation>()
            .when(request(project))
            .then([requested(3)]);
    }

    #[test]
    fn mixed_and_manual_always_generate() {
        // A mixed project, a mixed feature and a manual one, none with applied AI content
        let mut project = project(&[
            created(GenerationMode::Mixed),
            feature(1, "Customer", FeatureType::Crud),
            feature(2, "Login", FeatureType::Auth),
        ]);
        project.features[1].generation_mode = Some(GenerationMode::Mixed);
        given_nothing::<Generation>()
            .when(request(project.clone()))
            .then([requested(3)]);
        project.features[1].generation_mode = Some(GenerationMode::Manual);
        given_nothing::<Generation>()
            .when(request(project))
            .then([requested(3)]);
    }

    #[test]
    fn an_active_ai_assisted_function_needs_applied_ai_content_and_an_inactive_one_does_not() {
        let function = |name: &str, active: bool| crate::project::Function {
            id: crate::ids::FunctionId::from(uuid::Uuid::from_u128(0xf0 + u128::from(active))),
            name: name.to_owned(),
            description: None,
            language: crate::project::FunctionLanguage::Python,
            function_code: "def handler(input):\n    return input\n".to_owned(),
            input_schema: None,
            output_schema: None,
            examples: Vec::new(),
            generation_mode: Some(GenerationMode::AiAssisted),
            endpoint_path: format!("/fn/{name}"),
            http_method: crate::project::HttpMethod::Post,
            is_active: active,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
            ai_request_id: None,
        };
        let mut project = shop();
        project.functions = vec![function("quote", true), function("draft", false)];
        let outcome = given_nothing::<Generation>()
            .when(request(project))
            .outcome();
        assert_eq!(
            invalid(outcome),
            [no_applied_ai("function", "quote", "/ai/generate-code")]
        );
        let mut project = shop();
        let mut quote = function("quote", true);
        quote.ai_request_id = Some(ai_request(3));
        project.functions = vec![quote, function("draft", false)];
        given_nothing::<Generation>()
            .when(request(project))
            .then([requested(3)]);
        // A function following an ai_assisted project is ai_assisted too
        let mut project = shop();
        project.generation_mode = GenerationMode::AiAssisted;
        for feature in &mut project.features {
            feature.generation_mode = Some(GenerationMode::Manual);
        }
        let mut quote = function("quote", true);
        quote.generation_mode = None;
        project.functions = vec![quote];
        let outcome = given_nothing::<Generation>()
            .when(request(project))
            .outcome();
        assert_eq!(
            invalid(outcome),
            [no_applied_ai("function", "quote", "/ai/generate-code")]
        );

        let mut project = shop();
        project.functions = vec![function("draft", false)];
        given_nothing::<Generation>()
            .when(request(project))
            .then([requested(3)]);
    }

    #[test]
    fn a_disabled_feature_in_an_ai_mode_does_not_block_generation() {
        let mut project = shop();
        project.features[1] = Feature {
            generation_mode: Some(GenerationMode::AiAssisted),
            is_enabled: false,
            ..(*project.features[1]).clone()
        }
        .into();
        given_nothing::<Generation>()
            .when(request(project))
            .then([requested(3)]);
    }

    #[test]
    fn feature_types_the_target_cannot_generate_are_refused_by_name() {
        let events = [
            created(GenerationMode::Manual),
            feature(1, "Customer", FeatureType::Crud),
            feature(2, "Files", FeatureType::FileStorage),
            feature(3, "Nightly", FeatureType::BackgroundJobs),
            feature(4, "Stats", FeatureType::Analytics),
            feature(5, "Hooks", FeatureType::CustomFunction),
        ];
        let outcome = given_nothing::<Generation>()
            .when(request(project(&events)))
            .outcome();
        let messages: Vec<_> = invalid(outcome).into_iter().map(|(_, m)| m).collect();
        assert_eq!(
            messages,
            [
                "feature `Nightly` is of type background_jobs, which target python-fastapi cannot generate yet; disable it",
                "feature `Stats` is of type analytics, which target python-fastapi cannot generate yet; disable it",
                "feature `Hooks` is of type custom_function, which target python-fastapi cannot generate yet; disable it",
            ]
        );
    }

    #[test]
    fn every_problem_of_a_request_is_reported_at_once() {
        let mut project = project(&[
            created(GenerationMode::Mixed),
            feature(1, "Nightly", FeatureType::BackgroundJobs),
        ]);
        project.features[0].generation_mode = Some(GenerationMode::AiAssisted);
        project.features.push(project.features[0].clone());
        project.features[1].id = feature_id(2);
        project.features[1].name = "Weekly".into();
        let outcome = given_nothing::<Generation>()
            .when(request(project))
            .outcome();
        // Each feature's mode without applied AI content, and each one's type
        assert_eq!(invalid(outcome).len(), 4);
    }

    #[test]
    fn requesting_the_same_generation_twice_is_refused() {
        given([requested(3)])
            .when(request(shop()))
            .then_err(GenerationError::AlreadyRequested);
    }

    // --- running ---

    #[test]
    fn a_worker_starts_a_requested_generation() {
        let generation = given([requested(3)])
            .when(GenerationCommand::Start(StartGeneration {
                attempt: 1,
                at: t(11),
            }))
            .then([started(1)]);
        assert_eq!(generation.status, GenerationStatus::Running);
        assert_eq!(
            (generation.attempt, generation.started_at),
            (1, Some(t(11)))
        );
    }

    #[test]
    fn a_redelivered_job_starts_again_with_its_attempt() {
        let generation = given([requested(3), started(1)])
            .when(GenerationCommand::Start(StartGeneration {
                attempt: 2,
                at: t(11),
            }))
            .then([started(2)]);
        assert_eq!(generation.attempt, 2);
    }

    #[test]
    fn a_duplicate_delivery_of_the_same_attempt_changes_nothing() {
        given([requested(3), started(2)])
            .when(GenerationCommand::Start(StartGeneration {
                attempt: 2,
                at: t(11),
            }))
            .then_nothing();
    }

    #[test]
    fn commands_on_a_generation_never_requested_are_refused() {
        for command in [
            GenerationCommand::Start(StartGeneration {
                attempt: 1,
                at: t(11),
            }),
            complete(None),
            fail(),
        ] {
            given_nothing::<Generation>()
                .when(command)
                .then_err(GenerationError::NotFound);
        }
    }

    // --- results ---

    #[test]
    fn a_running_generation_completes_with_its_artifact() {
        let generation = given([requested(3), started(1)])
            .when(complete(None))
            .then([completed(None)]);
        assert_eq!(generation.status, GenerationStatus::Succeeded);
        assert_eq!(generation.sha256.as_deref(), Some(SHA));
        assert_eq!(
            (generation.file_count, generation.size_bytes),
            (Some(31), Some(20480))
        );
        assert_eq!(generation.steps, steps());
        assert_eq!(generation.completed_at, Some(t(12)));
    }

    #[test]
    fn foreign_output_is_recorded_without_nuls_and_within_its_bounds() {
        let noisy = StepReport {
            name: "verify".into(),
            status: StepStatus::Failed,
            duration_ms: 1,
            log: Some(format!("a\u{0}b{}", "x".repeat(2 * 1024 * 1024))),
        };
        let mut generation = given([requested(3), started(1)]).state().clone();
        let fail = GenerationCommand::Fail(FailGeneration {
            reason: format!("pytest said \u{0}{}", "y".repeat(100_000)),
            steps: vec![noisy.clone(); 40],
            tests: Some(TestReport {
                passed: 0,
                failed: 1,
                report: "\u{0}".repeat(1 << 20),
            }),
            at: t(30),
        });
        let events = generation.decide(&fail, &Limits::default()).unwrap();
        for event in &events {
            generation.evolve(event);
        }
        let recorded = serde_json::to_string(&generation).unwrap();
        assert!(!recorded.contains("\\u0000"), "a NUL was recorded");
        assert!(
            recorded.len() < 400 * 1024,
            "{} bytes recorded",
            recorded.len()
        );
        assert_eq!(generation.steps.len(), STEPS_MAX);
        assert_eq!(
            generation.steps[STEPS_MAX - 1].log.as_deref(),
            Some("9 more steps were left out")
        );
        assert!(
            generation.steps[0]
                .log
                .as_deref()
                .unwrap()
                .starts_with("a\u{FFFD}b")
        );
    }

    #[test]
    fn a_generation_cannot_complete_before_it_starts() {
        given([requested(3)])
            .when(complete(None))
            .then_err(GenerationError::NotStarted);
    }

    #[test]
    fn a_completion_needs_a_sha256_in_lowercase_hex() {
        let outcome = given([requested(3), started(1)])
            .when(GenerationCommand::Complete(CompleteGeneration {
                file_count: 1,
                size_bytes: 1,
                sha256: SHA.to_uppercase(),
                steps: vec![],
                tests: None,
                at: t(12),
            }))
            .outcome();
        assert_eq!(
            invalid(outcome),
            [(
                "/sha256".to_owned(),
                "must be 64 lowercase hex digits".to_owned()
            )]
        );
    }

    fn verifying() -> GenerationEvent {
        GenerationEvent::GenerationRequested {
            generation_id: generation_id(7),
            project_id: project_id(10),
            project_version: 3,
            target: Target::PythonFastapi,
            base_generation_id: None,
            verify: true,
            requested_by: user_id(1),
            requested_at: t(10),
        }
    }

    #[test]
    fn a_verified_generation_completes_only_with_passing_tests() {
        given([verifying(), started(1)])
            .when(complete(None))
            .then_err(GenerationError::Validation(vec![FieldError::new(
                "/tests",
                "verification was requested, so a test report is required",
            )]));
        let failing = TestReport {
            passed: 11,
            failed: 1,
            report: "1 failed".into(),
        };
        given([verifying(), started(1)])
            .when(complete(Some(failing)))
            .then_err(GenerationError::Validation(vec![FieldError::new(
                "/tests",
                "a generation whose tests failed must be recorded as failed",
            )]));
        let generation = given([verifying(), started(1)])
            .when(complete(Some(passing())))
            .then([completed(Some(passing()))]);
        assert_eq!(generation.tests, Some(passing()));
    }

    #[test]
    fn a_requested_generation_may_fail_without_starting() {
        let generation = given([requested(3)]).when(fail()).then([failed()]);
        assert_eq!(generation.status, GenerationStatus::Failed);
        assert_eq!(generation.error.as_deref(), Some("deadline exceeded"));
        assert_eq!(generation.completed_at, Some(t(30)));
    }

    #[test]
    fn a_running_generation_fails_with_its_reason_and_steps() {
        let command = GenerationCommand::Fail(FailGeneration {
            reason: "tests failed".into(),
            steps: steps(),
            tests: Some(TestReport {
                passed: 1,
                failed: 2,
                report: "2 failed".into(),
            }),
            at: t(13),
        });
        let generation = given([requested(3), started(1)])
            .when(command)
            .outcome()
            .unwrap();
        assert!(matches!(
            &generation[..],
            [GenerationEvent::GenerationFailed { reason, tests: Some(TestReport { failed: 2, .. }), .. }] if reason == "tests failed"
        ));
    }

    #[test]
    fn a_finished_generation_refuses_every_further_result() {
        for history in [
            vec![requested(3), started(1), completed(None)],
            vec![requested(3), failed()],
        ] {
            for command in [
                GenerationCommand::Start(StartGeneration {
                    attempt: 3,
                    at: t(40),
                }),
                complete(None),
                fail(),
            ] {
                given(history.clone())
                    .when(command)
                    .then_err(GenerationError::AlreadyFinished);
            }
        }
    }

    // --- shapes ---

    #[test]
    fn the_target_is_stored_by_its_api_name() {
        assert_eq!(
            serde_json::to_value(Target::PythonFastapi).unwrap(),
            json!("python-fastapi")
        );
        assert_eq!(
            "python-fastapi".parse::<Target>().unwrap(),
            Target::default()
        );
        assert!("python".parse::<Target>().is_err());
    }

    #[test]
    fn a_generation_serialises_with_the_field_names_of_the_api() {
        let generation = given([requested(3), started(1), completed(Some(passing()))])
            .state()
            .clone();
        let json = serde_json::to_value(&generation).unwrap();
        assert_eq!(json["status"], "succeeded");
        assert_eq!(json["target"], "python-fastapi");
        assert_eq!(
            json["steps"][0],
            json!({"name": "render", "status": "succeeded", "duration_ms": 12})
        );
        assert_eq!(json["tests"]["passed"], 12);
        assert_eq!(json["completed_at"], "2025-01-15T10:12:00Z");
        assert_eq!(json["error"], serde_json::Value::Null);
        let back: Generation = serde_json::from_value(json).unwrap();
        assert!(back.exists());
        assert_eq!(back, generation);
    }

    /// A finished generation of project 10 at `project_version`, as the caller loads a base.
    fn base_at(project_version: u64, finish: GenerationEvent) -> Generation {
        let mut request = requested(project_version);
        if let GenerationEvent::GenerationRequested {
            generation_id: id, ..
        } = &mut request
        {
            *id = generation_id(5);
        }
        let mut base = Generation::default();
        for event in [request, started(1), finish] {
            base.evolve(&event);
        }
        base
    }

    fn request_on(base: Generation) -> GenerationCommand {
        let GenerationCommand::RequestGeneration(request) = request(shop()) else {
            unreachable!()
        };
        GenerationCommand::RequestGeneration(RequestGeneration {
            base: Some(Box::new(base)),
            ..request
        })
    }

    #[test]
    fn a_request_records_its_base() {
        let events = given_nothing::<Generation>()
            .when(request_on(base_at(2, completed(None))))
            .outcome()
            .unwrap();
        let [
            GenerationEvent::GenerationRequested {
                base_generation_id, ..
            },
        ] = events.as_slice()
        else {
            panic!("{events:?}")
        };
        assert_eq!(*base_generation_id, Some(generation_id(5)));
        let mut state = Generation::default();
        state.evolve(&events[0]);
        assert_eq!(state.base_generation_id, Some(generation_id(5)));
        // The same version may be its own base's (a regeneration after a generator change).
        assert!(
            given_nothing::<Generation>()
                .when(request_on(base_at(3, completed(None))))
                .outcome()
                .is_ok()
        );
    }

    #[test]
    fn a_base_of_another_project_target_or_later_version_is_refused_at_its_pointer() {
        let mut other_project = base_at(2, completed(None));
        other_project.project_id = project_id(11);
        let later = base_at(4, completed(None));
        let failed_base = base_at(2, failed());
        for (base, says) in [
            (other_project, "another project"),
            (later, "project version 4, later than 3"),
            (failed_base, "has not succeeded"),
            (Generation::default(), "no such generation"),
        ] {
            let problems = invalid(
                given_nothing::<Generation>()
                    .when(request_on(base))
                    .outcome(),
            );
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(problems[0].0, "/base_generation_id");
            assert!(problems[0].1.contains(says), "{problems:?}");
        }
    }

    #[test]
    fn a_version_one_request_is_upcast_to_no_base() {
        let v1 = json!({"generation_id": generation_id(7), "project_id": project_id(10),
            "project_version": 3, "target": "python-fastapi", "verify": false,
            "requested_by": user_id(1), "requested_at": "2025-01-15T10:10:00Z"});
        let (v2, version) = crate::Upcasters::backforge()
            .upcast("GenerationRequested", 1, v1)
            .unwrap();
        assert_eq!(version, 2);
        let keys: Vec<&str> = v2.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys[3..5], ["target", "base_generation_id"]);
        let event = GenerationEvent::from_data("GenerationRequested", v2).unwrap();
        assert_eq!(event, requested(3));
    }
}
