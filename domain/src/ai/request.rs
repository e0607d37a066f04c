//! The AI request aggregate: one model request about a project, from the request through its
//! attempts (at most 3: the first answer and 2 repairs) to a proposal, and its one apply.
//!
//! Status machine: `requested` → `running` → `succeeded` | `failed`; a succeeded request may be
//! applied once. The first event records everything the worker needs (the model's configuration,
//! prices included, and the prompt template's text), so a job reads no catalog and every cost is
//! computed here, from the usage and the prices recorded in `AiRequested`.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::config::ModelConfig;
use super::money;
use crate::envelope::{DecodeError, DomainEvent, decode_tagged, decode_tagged_json, encode_tagged};
use crate::error::{FieldError, join};
use crate::ids::{AiRequestId, FeatureId, FunctionId, ProjectId, UserId};
use crate::limits::Limits;
use crate::project::{Project, ProjectStatus};
use crate::text;

/// The longest prompt a user may write, in characters (docs/api.md).
pub const PROMPT_MAX_CHARS: usize = 8_000;
/// Attempts a request may make: the first answer and two repairs.
pub const MAX_ATTEMPTS: u32 = 3;
/// A prompt template's system or template text, as recorded.
pub const TEMPLATE_MAX_BYTES: usize = 32 * 1024;
/// An error (an attempt's or the request's), as recorded.
pub const ERROR_MAX_BYTES: usize = 4 * 1024;
/// An attempt's structured answer is recorded whole up to this size, else as cut text.
pub const ANSWER_MAX_BYTES: usize = 64 * 1024;
/// The largest proposal a request may succeed with (its JSON text).
pub const PROPOSAL_MAX_BYTES: usize = 256 * 1024;

/// What a request asks the model for: also its prompt's purpose (`prompt::Purpose`) and its
/// proposal's kind (`proposal::ProposalKind`), which are this type. Stored as its API name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AiRequestKind {
    /// Features for a project, from a prompt.
    GenerateConfig,
    /// Changes to one feature (mixed mode: improve the user's base).
    EnhanceConfig,
    /// The code of one custom function.
    GenerateCode,
}

impl AiRequestKind {
    pub const ALL: [AiRequestKind; 3] = [
        AiRequestKind::GenerateConfig,
        AiRequestKind::EnhanceConfig,
        AiRequestKind::GenerateCode,
    ];

    /// The stored and served spelling (the serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            AiRequestKind::GenerateConfig => "generate_config",
            AiRequestKind::EnhanceConfig => "enhance_config",
            AiRequestKind::GenerateCode => "generate_code",
        }
    }

    /// The kind spelled `raw` (its serde name), if any.
    pub fn parse(raw: &str) -> Option<AiRequestKind> {
        AiRequestKind::ALL.into_iter().find(|k| k.as_str() == raw)
    }

    /// The name its proposal's structured-output schema is sent under (`^[A-Za-z0-9_-]{1,64}$`).
    pub fn schema_name(self) -> &'static str {
        match self {
            AiRequestKind::GenerateConfig => "generate_config_proposal",
            AiRequestKind::EnhanceConfig => "enhance_config_proposal",
            AiRequestKind::GenerateCode => "generate_code_proposal",
        }
    }
}

impl fmt::Display for AiRequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AiRequestStatus {
    #[default]
    Requested,
    Running,
    Succeeded,
    Failed,
}

impl AiRequestStatus {
    /// The stored and served spelling (the serde name): read models and the API use only this.
    pub fn as_str(self) -> &'static str {
        match self {
            AiRequestStatus::Requested => "requested",
            AiRequestStatus::Running => "running",
            AiRequestStatus::Succeeded => "succeeded",
            AiRequestStatus::Failed => "failed",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, AiRequestStatus::Succeeded | AiRequestStatus::Failed)
    }
}

/// The prompt template a request used: its name and version (the catalog's own reference).
pub use super::prompt::PromptRef;

/// Tokens an attempt's answer read and wrote, as the provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl TokenUsage {
    fn plus(self, other: TokenUsage) -> TokenUsage {
        TokenUsage {
            input_tokens: self.input_tokens.saturating_add(other.input_tokens),
            output_tokens: self.output_tokens.saturating_add(other.output_tokens),
        }
    }
}

/// What an attempt's answer was, as recorded: the structured answer, or its text cut.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptAnswer {
    Json(Value),
    Text(String),
}

/// One attempt as recorded: one parsed answer, or the final transport failure after the client's
/// retries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub n: u32,
    pub usage: TokenUsage,
    #[serde(with = "money::decimal_string")]
    pub cost_usd: Decimal,
    pub latency_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<AttemptAnswer>,
}

/// An AI request as its events describe it. `AiRequest::default()` is the state before the
/// request. Holds the model's configuration, so it is not what the API serves: see
/// [`AiRequestView`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AiRequest {
    pub id: AiRequestId,
    pub kind: AiRequestKind,
    pub project_id: ProjectId,
    pub project_version: u64,
    pub feature_id: Option<FeatureId>,
    pub function_id: Option<FunctionId>,
    /// The user's text; absent when the kind lets it be left out.
    pub user_prompt: Option<String>,
    /// The model's name in the catalog.
    pub model: String,
    /// The model's configuration when the request was made; its prices cost every attempt.
    pub model_config: ModelConfig,
    pub prompt: PromptRef,
    pub system: String,
    pub template: String,
    pub requested_by: UserId,
    pub status: AiRequestStatus,
    /// The delivery of the latest start; 0 before the first.
    pub delivery: u32,
    pub attempts: Vec<Attempt>,
    pub proposal: Option<Value>,
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
    /// The project version the applied proposal made.
    pub applied_project_version: Option<u64>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub applied_at: Option<OffsetDateTime>,
    pub applied_by: Option<UserId>,
    #[serde(skip, default = "requested")]
    requested: bool,
}

fn requested() -> bool {
    true
}

impl Default for AiRequest {
    fn default() -> Self {
        let nil = uuid::Uuid::nil();
        Self {
            id: AiRequestId::from_uuid(nil),
            kind: AiRequestKind::GenerateConfig,
            project_id: ProjectId::from_uuid(nil),
            project_version: 0,
            feature_id: None,
            function_id: None,
            user_prompt: None,
            model: String::new(),
            model_config: ModelConfig {
                provider: super::Provider::Openai,
                base_url: String::new(),
                model: String::new(),
                api_key_env: None,
                api_version: None,
                input_usd_per_mtok: Decimal::ZERO,
                output_usd_per_mtok: Decimal::ZERO,
                max_output_tokens: 0,
                temperature: None,
                timeout_ms: None,
            },
            prompt: PromptRef {
                name: String::new(),
                version: 0,
            },
            system: String::new(),
            template: String::new(),
            requested_by: UserId::from_uuid(nil),
            status: AiRequestStatus::Requested,
            delivery: 0,
            attempts: Vec::new(),
            proposal: None,
            error: None,
            requested_at: OffsetDateTime::UNIX_EPOCH,
            started_at: None,
            completed_at: None,
            applied_project_version: None,
            applied_at: None,
            applied_by: None,
            requested: false,
        }
    }
}

/// `GET /ai/requests/{id}`: what a project member may see of a request (no URL, no key name,
/// no template text).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AiRequestView {
    pub id: AiRequestId,
    pub kind: AiRequestKind,
    pub project_id: ProjectId,
    pub project_version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature_id: Option<FeatureId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_id: Option<FunctionId>,
    pub status: AiRequestStatus,
    pub model: String,
    pub prompt: PromptRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proposal: Option<Value>,
    pub attempts: Vec<AttemptView>,
    pub usage: TokenUsage,
    #[serde(with = "money::decimal_string")]
    pub cost_usd: Decimal,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub applied_at: Option<OffsetDateTime>,
    pub requested_by: UserId,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
}

/// One attempt as `GET /ai/requests/{id}` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptView {
    pub n: u32,
    pub usage: TokenUsage,
    #[serde(with = "money::decimal_string")]
    pub cost_usd: Decimal,
    pub latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Ask a model for a proposal. `project` is the project's current state at `project_version`;
/// the caller checks access before. `model_config`, `prompt`, `system` and `template` are what
/// the catalog resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestAi {
    pub request_id: AiRequestId,
    pub kind: AiRequestKind,
    pub project: Project,
    pub project_version: u64,
    pub feature_id: Option<FeatureId>,
    pub function_id: Option<FunctionId>,
    pub user_prompt: Option<String>,
    pub model: String,
    pub model_config: ModelConfig,
    pub prompt: PromptRef,
    pub system: String,
    pub template: String,
    pub requested_by: UserId,
    pub at: OffsetDateTime,
}

/// A worker took the job; `delivery` is its delivery count (1 for the first).
#[derive(Debug, Clone, PartialEq)]
pub struct StartAi {
    pub delivery: u32,
    pub at: OffsetDateTime,
}

/// One attempt ended. The cost is computed here from `usage` and the recorded prices. Text is
/// foreign (model output, provider errors): the caller redacts what only it can (a key) and this
/// decider makes it storable and cuts it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordAttempt {
    pub n: u32,
    pub usage: TokenUsage,
    pub latency_ms: u64,
    pub error: Option<String>,
    pub answer: Option<AttemptAnswer>,
    pub at: OffsetDateTime,
}

/// The last attempt's answer is a valid proposal.
#[derive(Debug, Clone, PartialEq)]
pub struct SucceedAi {
    pub proposal: Value,
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FailAi {
    pub error: String,
    pub at: OffsetDateTime,
}

/// The proposal was turned into project events that land in the same append, making the
/// project's `project_version`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyProposal {
    pub project_version: u64,
    pub applied_by: UserId,
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AiRequestCommand {
    Request(Box<RequestAi>),
    Start(StartAi),
    RecordAttempt(RecordAttempt),
    Succeed(SucceedAi),
    Fail(FailAi),
    Apply(ApplyProposal),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AiRequestEvent {
    #[serde(rename = "AiRequested")]
    AiRequested {
        request_id: AiRequestId,
        kind: AiRequestKind,
        project_id: ProjectId,
        project_version: u64,
        feature_id: Option<FeatureId>,
        function_id: Option<FunctionId>,
        user_prompt: Option<String>,
        model: String,
        /// Boxed: the largest member of the largest event, kept off the enum's size.
        model_config: Box<ModelConfig>,
        prompt: PromptRef,
        system: String,
        template: String,
        requested_by: UserId,
        #[serde(with = "time::serde::rfc3339")]
        requested_at: OffsetDateTime,
    },
    #[serde(rename = "AiRequestStarted")]
    AiRequestStarted {
        request_id: AiRequestId,
        delivery: u32,
        #[serde(with = "time::serde::rfc3339")]
        started_at: OffsetDateTime,
    },
    #[serde(rename = "AiAttemptRecorded")]
    AiAttemptRecorded {
        request_id: AiRequestId,
        attempt: Attempt,
        #[serde(with = "time::serde::rfc3339")]
        recorded_at: OffsetDateTime,
    },
    #[serde(rename = "AiRequestSucceeded")]
    AiRequestSucceeded {
        request_id: AiRequestId,
        proposal: Value,
        usage: TokenUsage,
        #[serde(with = "money::decimal_string")]
        cost_usd: Decimal,
        #[serde(with = "time::serde::rfc3339")]
        succeeded_at: OffsetDateTime,
    },
    #[serde(rename = "AiRequestFailed")]
    AiRequestFailed {
        request_id: AiRequestId,
        error: String,
        usage: TokenUsage,
        #[serde(with = "money::decimal_string")]
        cost_usd: Decimal,
        #[serde(with = "time::serde::rfc3339")]
        failed_at: OffsetDateTime,
    },
    #[serde(rename = "AiProposalApplied")]
    AiProposalApplied {
        request_id: AiRequestId,
        project_id: ProjectId,
        project_version: u64,
        applied_by: UserId,
        #[serde(with = "time::serde::rfc3339")]
        applied_at: OffsetDateTime,
    },
}

impl AiRequestEvent {
    pub const TYPES: &'static [&'static str] = &[
        "AiRequested",
        "AiRequestStarted",
        "AiAttemptRecorded",
        "AiRequestSucceeded",
        "AiRequestFailed",
        "AiProposalApplied",
    ];
}

impl DomainEvent for AiRequestEvent {
    fn event_type(&self) -> &'static str {
        match self {
            AiRequestEvent::AiRequested { .. } => "AiRequested",
            AiRequestEvent::AiRequestStarted { .. } => "AiRequestStarted",
            AiRequestEvent::AiAttemptRecorded { .. } => "AiAttemptRecorded",
            AiRequestEvent::AiRequestSucceeded { .. } => "AiRequestSucceeded",
            AiRequestEvent::AiRequestFailed { .. } => "AiRequestFailed",
            AiRequestEvent::AiProposalApplied { .. } => "AiProposalApplied",
        }
    }

    fn schema_version(&self) -> u32 {
        1
    }

    fn to_data(&self) -> Value {
        encode_tagged(self, self.event_type())
    }

    fn from_data(event_type: &str, data: Value) -> Result<Self, DecodeError> {
        decode_tagged(Self::TYPES, event_type, data)
    }

    fn from_json(event_type: &str, json: &str) -> Result<Self, DecodeError> {
        decode_tagged_json(Self::TYPES, event_type, json)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AiRequestError {
    #[error("the AI request was made already")]
    AlreadyRequested,
    #[error("no such AI request")]
    NotFound,
    #[error("no such project")]
    ProjectNotFound,
    #[error("the project is archived")]
    ProjectArchived,
    #[error("the AI request has not started")]
    NotStarted,
    /// Callers treat this as an idempotent skip: a redelivered job finished already.
    #[error("the AI request has finished already")]
    AlreadyFinished,
    #[error("attempt {got} is not the next one (expected {expected})")]
    AttemptOutOfOrder { expected: u32, got: u32 },
    #[error("the AI request has made its {MAX_ATTEMPTS} attempts")]
    TooManyAttempts,
    #[error("the last attempt did not give a usable answer")]
    NoUsableAttempt,
    #[error("the AI request has not succeeded (it is {0})")]
    NotSucceeded(&'static str),
    #[error("the AI request's proposal was applied already")]
    AlreadyApplied,
    #[error("invalid request: {}", join(.0))]
    Validation(Vec<FieldError>),
}

fn foreign_error(error: &str) -> String {
    text::sanitize_foreign(error, ERROR_MAX_BYTES)
}

/// An attempt's answer made storable and bounded: a structured answer over
/// [`ANSWER_MAX_BYTES`] is kept as its cut text.
fn foreign_answer(answer: &AttemptAnswer) -> AttemptAnswer {
    match answer {
        AttemptAnswer::Json(value) => {
            let body = value.to_string();
            if body.len() <= ANSWER_MAX_BYTES && text::nul_pointer(value).is_none() {
                AttemptAnswer::Json(value.clone())
            } else {
                AttemptAnswer::Text(text::sanitize_foreign(&body, ANSWER_MAX_BYTES))
            }
        }
        AttemptAnswer::Text(t) => AttemptAnswer::Text(text::sanitize_foreign(t, ANSWER_MAX_BYTES)),
    }
}

/// Why a request's inputs are refused (the pointers are the routes' body members).
fn request_problems(command: &RequestAi) -> Vec<FieldError> {
    let mut problems = Vec::new();
    match &command.user_prompt {
        Some(p) if p.chars().count() > PROMPT_MAX_CHARS => problems.push(FieldError::new(
            "/prompt",
            format!("a prompt is at most {PROMPT_MAX_CHARS} characters"),
        )),
        Some(p) if p.contains('\0') => {
            problems.push(FieldError::new("/prompt", "a prompt holds no U+0000"))
        }
        None if command.kind == AiRequestKind::GenerateConfig => {
            problems.push(FieldError::new("/prompt", "generate_config needs a prompt"))
        }
        Some(p) if command.kind == AiRequestKind::GenerateConfig && p.trim().is_empty() => {
            problems.push(FieldError::new("/prompt", "generate_config needs a prompt"))
        }
        _ => {}
    }
    let project = &command.project;
    match (command.kind, command.feature_id, command.function_id) {
        (AiRequestKind::GenerateConfig, None, None) => {}
        (AiRequestKind::EnhanceConfig, Some(feature), None) => {
            if project.feature(feature).is_none() {
                problems.push(FieldError::new("/feature_id", "no such feature"));
            }
        }
        (AiRequestKind::GenerateCode, None, Some(function)) => {
            if project.function(function).is_none() {
                problems.push(FieldError::new("/function_id", "no such function"));
            }
        }
        (kind, _, _) => problems.push(FieldError::new(
            "",
            format!(
                "{kind} takes {}",
                match kind {
                    AiRequestKind::GenerateConfig => "neither a feature nor a function",
                    AiRequestKind::EnhanceConfig => "a feature_id and no function_id",
                    AiRequestKind::GenerateCode => "a function_id and no feature_id",
                }
            ),
        )),
    }
    if let Err(e) = command.model_config.validate() {
        problems.push(FieldError::new("/model", e.to_string()));
    }
    for (pointer, body) in [
        ("/system", &command.system),
        ("/template", &command.template),
    ] {
        if body.len() > TEMPLATE_MAX_BYTES {
            problems.push(FieldError::new(
                pointer,
                format!("a prompt template's text is at most {TEMPLATE_MAX_BYTES} bytes"),
            ));
        }
    }
    problems
}

impl AiRequest {
    /// Whether an `AiRequested` has been folded in.
    pub fn exists(&self) -> bool {
        self.requested
    }

    /// The sum of the attempts' usage.
    pub fn usage(&self) -> TokenUsage {
        self.attempts
            .iter()
            .fold(TokenUsage::default(), |sum, a| sum.plus(a.usage))
    }

    /// The sum of the attempts' costs, failed attempts included.
    pub fn cost_usd(&self) -> Decimal {
        let mut sum = self
            .attempts
            .iter()
            .fold(Decimal::ZERO, |sum, a| sum.saturating_add(a.cost_usd));
        sum.rescale(money::PRICE_SCALE);
        sum
    }

    /// The number the next attempt gets.
    pub fn next_attempt(&self) -> u32 {
        self.attempts.len() as u32 + 1
    }

    pub fn view(&self) -> AiRequestView {
        AiRequestView {
            id: self.id,
            kind: self.kind,
            project_id: self.project_id,
            project_version: self.project_version,
            feature_id: self.feature_id,
            function_id: self.function_id,
            status: self.status,
            model: self.model.clone(),
            prompt: self.prompt.clone(),
            proposal: self.proposal.clone(),
            attempts: self
                .attempts
                .iter()
                .map(|a| AttemptView {
                    n: a.n,
                    usage: a.usage,
                    cost_usd: a.cost_usd,
                    latency_ms: a.latency_ms,
                    error: a.error.clone(),
                })
                .collect(),
            usage: self.usage(),
            cost_usd: self.cost_usd(),
            error: self.error.clone(),
            applied_at: self.applied_at,
            requested_by: self.requested_by,
            requested_at: self.requested_at,
            completed_at: self.completed_at,
        }
    }

    pub fn decide(
        &self,
        command: &AiRequestCommand,
        _limits: &Limits,
    ) -> Result<Vec<AiRequestEvent>, AiRequestError> {
        if let AiRequestCommand::Request(request) = command {
            if self.requested {
                return Err(AiRequestError::AlreadyRequested);
            }
            let project = &request.project;
            if !project.exists() {
                return Err(AiRequestError::ProjectNotFound);
            }
            if project.status == ProjectStatus::Archived {
                return Err(AiRequestError::ProjectArchived);
            }
            let problems = request_problems(request);
            if !problems.is_empty() {
                return Err(AiRequestError::Validation(problems));
            }
            return Ok(vec![AiRequestEvent::AiRequested {
                request_id: request.request_id,
                kind: request.kind,
                project_id: project.id,
                project_version: request.project_version,
                feature_id: request.feature_id,
                function_id: request.function_id,
                user_prompt: request.user_prompt.clone(),
                model: request.model.clone(),
                model_config: Box::new(request.model_config.clone()),
                prompt: request.prompt.clone(),
                system: request.system.clone(),
                template: request.template.clone(),
                requested_by: request.requested_by,
                requested_at: request.at,
            }]);
        }
        if !self.requested {
            return Err(AiRequestError::NotFound);
        }
        let request_id = self.id;
        if let AiRequestCommand::Apply(ApplyProposal {
            project_version,
            applied_by,
            at,
        }) = command
        {
            if self.status != AiRequestStatus::Succeeded {
                return Err(AiRequestError::NotSucceeded(self.status.as_str()));
            }
            if self.applied_at.is_some() {
                return Err(AiRequestError::AlreadyApplied);
            }
            return Ok(vec![AiRequestEvent::AiProposalApplied {
                request_id,
                project_id: self.project_id,
                project_version: *project_version,
                applied_by: *applied_by,
                applied_at: *at,
            }]);
        }
        if self.status.is_finished() {
            return Err(AiRequestError::AlreadyFinished);
        }
        match command {
            AiRequestCommand::Request(_) => Err(AiRequestError::AlreadyRequested),
            AiRequestCommand::Apply(_) => Err(AiRequestError::NotSucceeded(self.status.as_str())),
            AiRequestCommand::Start(StartAi { delivery, at }) => {
                // A duplicate delivery already recorded changes nothing.
                if self.status == AiRequestStatus::Running && *delivery <= self.delivery {
                    return Ok(vec![]);
                }
                Ok(vec![AiRequestEvent::AiRequestStarted {
                    request_id,
                    delivery: *delivery,
                    started_at: *at,
                }])
            }
            AiRequestCommand::RecordAttempt(RecordAttempt {
                n,
                usage,
                latency_ms,
                error,
                answer,
                at,
            }) => {
                if self.status != AiRequestStatus::Running {
                    return Err(AiRequestError::NotStarted);
                }
                let expected = self.next_attempt();
                if expected > MAX_ATTEMPTS {
                    return Err(AiRequestError::TooManyAttempts);
                }
                if *n != expected {
                    return Err(AiRequestError::AttemptOutOfOrder { expected, got: *n });
                }
                let config = &self.model_config;
                Ok(vec![AiRequestEvent::AiAttemptRecorded {
                    request_id,
                    attempt: Attempt {
                        n: *n,
                        usage: *usage,
                        cost_usd: money::cost(
                            usage.input_tokens,
                            usage.output_tokens,
                            config.input_usd_per_mtok,
                            config.output_usd_per_mtok,
                        ),
                        latency_ms: *latency_ms,
                        error: error.as_deref().map(foreign_error),
                        answer: answer.as_ref().map(foreign_answer),
                    },
                    recorded_at: *at,
                }])
            }
            AiRequestCommand::Succeed(SucceedAi { proposal, at }) => {
                if self.status != AiRequestStatus::Running {
                    return Err(AiRequestError::NotStarted);
                }
                match self.attempts.last() {
                    Some(last) if last.error.is_none() => {}
                    _ => return Err(AiRequestError::NoUsableAttempt),
                }
                let mut problems = Vec::new();
                if !proposal.is_object() {
                    problems.push(FieldError::new("/proposal", "a proposal is a JSON object"));
                }
                if let Some(pointer) = text::nul_pointer(proposal) {
                    problems.push(FieldError::new(
                        "/proposal",
                        format!("holds U+0000 at {pointer}"),
                    ));
                }
                if proposal.to_string().len() > PROPOSAL_MAX_BYTES {
                    problems.push(FieldError::new(
                        "/proposal",
                        format!("a proposal is at most {PROPOSAL_MAX_BYTES} bytes"),
                    ));
                }
                if !problems.is_empty() {
                    return Err(AiRequestError::Validation(problems));
                }
                Ok(vec![AiRequestEvent::AiRequestSucceeded {
                    request_id,
                    proposal: proposal.clone(),
                    usage: self.usage(),
                    cost_usd: self.cost_usd(),
                    succeeded_at: *at,
                }])
            }
            AiRequestCommand::Fail(FailAi { error, at }) => {
                Ok(vec![AiRequestEvent::AiRequestFailed {
                    request_id,
                    error: foreign_error(error),
                    usage: self.usage(),
                    cost_usd: self.cost_usd(),
                    failed_at: *at,
                }])
            }
        }
    }

    pub fn evolve(&mut self, event: &AiRequestEvent) {
        match event {
            AiRequestEvent::AiRequested {
                request_id,
                kind,
                project_id,
                project_version,
                feature_id,
                function_id,
                user_prompt,
                model,
                model_config,
                prompt,
                system,
                template,
                requested_by,
                requested_at,
            } => {
                *self = AiRequest {
                    id: *request_id,
                    kind: *kind,
                    project_id: *project_id,
                    project_version: *project_version,
                    feature_id: *feature_id,
                    function_id: *function_id,
                    user_prompt: user_prompt.clone(),
                    model: model.clone(),
                    model_config: (**model_config).clone(),
                    prompt: prompt.clone(),
                    system: system.clone(),
                    template: template.clone(),
                    requested_by: *requested_by,
                    requested_at: *requested_at,
                    requested: true,
                    ..AiRequest::default()
                };
            }
            AiRequestEvent::AiRequestStarted {
                delivery,
                started_at,
                ..
            } => {
                self.status = AiRequestStatus::Running;
                self.delivery = *delivery;
                self.started_at.get_or_insert(*started_at);
            }
            AiRequestEvent::AiAttemptRecorded { attempt, .. } => {
                self.attempts.push(attempt.clone());
            }
            AiRequestEvent::AiRequestSucceeded {
                proposal,
                succeeded_at,
                ..
            } => {
                self.status = AiRequestStatus::Succeeded;
                self.proposal = Some(proposal.clone());
                self.completed_at = Some(*succeeded_at);
            }
            AiRequestEvent::AiRequestFailed {
                error, failed_at, ..
            } => {
                self.status = AiRequestStatus::Failed;
                self.error = Some(error.clone());
                self.completed_at = Some(*failed_at);
            }
            AiRequestEvent::AiProposalApplied {
                project_version,
                applied_by,
                applied_at,
                ..
            } => {
                self.applied_project_version = Some(*project_version);
                self.applied_by = Some(*applied_by);
                self.applied_at = Some(*applied_at);
            }
        }
    }
}

impl crate::Decider for AiRequest {
    type Command = AiRequestCommand;
    type Event = AiRequestEvent;
    type Error = AiRequestError;

    fn decide(
        &self,
        command: &AiRequestCommand,
        limits: &Limits,
    ) -> Result<Vec<AiRequestEvent>, AiRequestError> {
        AiRequest::decide(self, command, limits)
    }

    fn evolve(&mut self, event: &AiRequestEvent) {
        AiRequest::evolve(self, event);
    }
}

impl crate::testing::EventOf for AiRequestEvent {
    type Decider = AiRequest;
}

#[cfg(test)]
mod tests;
