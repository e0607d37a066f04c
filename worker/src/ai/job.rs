//! One AI job: start the request, fold the project at the request's version, then attempt — render
//! the prompt, call the model, parse and validate the proposal with the domain's own rules (and a
//! function's code in the sandbox: compiled, then run with the function's examples) — at
//! most [`MAX_ATTEMPTS`] times, feeding each attempt's errors back into the next, and record every
//! attempt as its own event as soon as it ends, then the outcome. A redelivered job continues from
//! the attempts the stream holds.

use std::convert::Infallible;
use std::time::Instant;

use ai::{AiClient, AiError, CompletionRequest, Content, JsonSchema};
use domain::ai::prompt::{self, Prompt, PromptInput};
use domain::ai::proposal::{self, CodeProposal, Origin};
use domain::ai::request::{
    AiRequest, AiRequestCommand, AiRequestError, AttemptAnswer, FailAi, MAX_ATTEMPTS,
    RecordAttempt, StartAi, SucceedAi, TokenUsage,
};
use domain::ids::{AiRequestId, FeatureId, ProjectId};
use domain::project::Project;
use domain::{EventMetadata, FieldError, Limits};
use event_store::application::{Failure, Pin, Source, Step};
use event_store::{PgEventStore, ReadUntil};
use sandbox::{Functions, SandboxError};
use time::OffsetDateTime;
use uuid::Uuid;

pub use messaging::AiJob;

/// The schema language's rules, the `schema_language` variable of every prompt (the domain's,
/// so admission can estimate the prompt the worker will send).
pub use domain::ai::prompt::SCHEMA_LANGUAGE;

/// How a job ended.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// Finished earlier (a redelivery): nothing to do.
    AlreadyFinished,
    Succeeded,
    /// Recorded as `AiRequestFailed` with this error.
    Failed(String),
}

pub struct AiJobContext<'a> {
    pub store: &'a PgEventStore,
    pub client: &'a AiClient,
    pub limits: &'a Limits,
    /// The sandbox's function pool: a `generate_code` proposal is compiled and run with its
    /// function's examples there, under the function limits.
    pub functions: &'a Functions,
    /// When the job is abandoned: every model call ends by then.
    pub deadline: Instant,
}

fn metadata(job: &AiJob) -> EventMetadata {
    EventMetadata {
        correlation_id: Some(job.ai_request_id),
        causation_id: Some(job.event_id),
        request_id: Some("worker".into()),
        // The project id comes from the request's state, written by the application step.
        ..EventMetadata::default()
    }
}

/// The request's state now.
pub async fn load_request(store: &PgEventStore, id: AiRequestId) -> anyhow::Result<AiRequest> {
    let loaded: event_store::Loaded<AiRequest> =
        event_store::load(store, &id.stream(), ReadUntil::End).await?;
    Ok(loaded.state)
}

/// Decides `command` on the request's current state and appends the result, through the
/// application step every writer uses; answers the state after it.
pub async fn decide_and_append(
    store: &PgEventStore,
    job: &AiJob,
    command: AiRequestCommand,
) -> anyhow::Result<Result<(), AiRequestError>> {
    let step = Step::<AiRequest> {
        stream: AiRequestId::from_uuid(job.ai_request_id).stream(),
        source: Source::Fold,
        pin: Pin::Latest,
        limits: &Limits::default(),
        metadata: metadata(job),
    };
    // A terminal event settles the request's budget reservation in its own transaction.
    let settle = super::budget::Settle::new(job.ai_request_id, &command);
    let check = |loaded: &event_store::Loaded<AiRequest>| {
        settle.observe(&loaded.state);
        Ok::<_, Infallible>(command.clone())
    };
    match step.apply(store, || settle.side_writes(), check).await {
        Ok(_) => Ok(Ok(())),
        Err(Failure::Domain(e)) => Ok(Err(e)),
        Err(Failure::Refused(never)) => match never {},
        Err(Failure::Store(e)) => Err(e.into()),
        Err(e @ (Failure::Precondition { .. } | Failure::Conflict { .. })) => {
            anyhow::bail!("AI request {} kept changing: {e:?}", job.ai_request_id)
        }
    }
}

/// Records `error` as the request's failure; a request already finished is left as it is.
pub async fn record_failure(store: &PgEventStore, job: &AiJob, error: &str) -> anyhow::Result<()> {
    let command = AiRequestCommand::Fail(FailAi {
        error: error.to_owned(),
        at: OffsetDateTime::now_utc(),
    });
    match decide_and_append(store, job, command).await? {
        Ok(()) | Err(AiRequestError::AlreadyFinished) => Ok(()),
        Err(e) => Err(anyhow::anyhow!("cannot record the failure: {e}")),
    }
}

async fn project_at(
    store: &PgEventStore,
    project_id: ProjectId,
    version: u64,
) -> anyhow::Result<Project> {
    let loaded: event_store::Loaded<Project> =
        event_store::load(store, &project_id.stream(), ReadUntil::Version(version)).await?;
    anyhow::ensure!(
        loaded.version == version,
        "project {project_id} has no version {version}"
    );
    Ok(loaded.state)
}

/// Problems as the lines an attempt records and a repair's `errors` variable lists.
fn problem_lines(problems: &[FieldError]) -> Vec<String> {
    problems
        .iter()
        .map(|p| {
            if p.field.is_empty() {
                p.message.clone()
            } else {
                format!("{}: {}", p.field, p.message)
            }
        })
        .collect()
}

/// What one attempt gave.
enum Tried {
    /// A valid proposal, in its stored form.
    Valid(serde_json::Value),
    /// An answer that breaks the rules (a repair may fix it).
    Invalid,
    /// No usable answer will come from trying again (a missing key, a refused address, the
    /// provider down after the client's retries): the request fails.
    Final(String),
}

/// Validates `answer` as the request's proposal: parsed into the kind's shape, then decided
/// with the project's own rules on the project at the request's version, and a function's code
/// checked in the sandbox ([`check_in_sandbox`]). `Err` when the sandbox could not run it:
/// nothing is known of the answer then.
async fn check_answer(
    ctx: &AiJobContext<'_>,
    request: &AiRequest,
    project: &Project,
    answer: &serde_json::Value,
) -> Result<Result<serde_json::Value, Vec<String>>, SandboxError> {
    let kind = request.kind;
    let parsed = match proposal::parse(kind, answer) {
        Ok(parsed) => parsed,
        Err(problems) => return Ok(Err(problem_lines(&problems))),
    };
    let mut targets = Vec::new();
    match (&parsed, request.feature_id, request.function_id) {
        (proposal::Proposal::EnhanceConfig(p), Some(feature), _) if p.feature_id != feature => {
            targets.push(format!(
                "/feature_id: must be {feature}, the feature this request is about"
            ))
        }
        (proposal::Proposal::GenerateCode(p), _, Some(function)) if p.function_id != function => {
            targets.push(format!(
                "/function_id: must be {function}, the function this request is about"
            ))
        }
        _ => {}
    }
    if !targets.is_empty() {
        return Ok(Err(targets));
    }
    let origin = Origin {
        ai_request_id: request.id,
        at: OffsetDateTime::now_utc(),
    };
    if let Err(problems) = proposal::validate(
        project,
        &parsed,
        &origin,
        || FeatureId::from_uuid(Uuid::now_v7()),
        ctx.limits,
    ) {
        return Ok(Err(problem_lines(&problems)));
    }
    if let proposal::Proposal::GenerateCode(code) = &parsed {
        let problems = check_in_sandbox(ctx, project, code).await?;
        if !problems.is_empty() {
            return Ok(Err(problems));
        }
    }
    Ok(Ok(parsed.to_value()))
}

/// Proposed code as a function write and a test run check it, in the sandbox's function pool
/// under the function limits: it must compile and define a top-level `def handler(input)`, then
/// return each of the function's examples' output for its input (the function as it stood at
/// the request's version). A function without examples is only compiled. One problem line per
/// failed example, at `/function_code`. (An output equal to an example's meets `output_schema`:
/// every example is checked against it when it is written.) A pool whose queue is full is waited
/// for, within the job's deadline.
async fn check_in_sandbox(
    ctx: &AiJobContext<'_>,
    project: &Project,
    code: &CodeProposal,
) -> Result<Vec<String>, SandboxError> {
    let functions = ctx.functions;
    functions.settle().await;
    let at_code = |why: String| format!("/function_code: {why}");
    let mut pause = std::time::Duration::from_millis(100);
    loop {
        let checked = async {
            if let Err(why) = functions.check_code(&code.function_code).await? {
                return Ok(vec![at_code(why)]);
            }
            let examples: Vec<_> = project
                .function(code.function_id)
                .map(|f| f.examples.as_slice())
                .unwrap_or_default()
                .iter()
                .map(|e| (&e.input, &e.output))
                .collect();
            let runs = functions
                .run_examples(&code.function_code, &examples)
                .await?;
            let problems: Vec<String> = runs
                .iter()
                .enumerate()
                .filter_map(|(i, run)| run.problem(i + 1, functions.limits()))
                .map(at_code)
                .collect();
            tracing::info!(
                function = %code.function_id,
                examples = runs.len(),
                failed = problems.len(),
                "generated code ran its function's examples in the sandbox"
            );
            Ok(problems)
        }
        .await;
        match checked {
            Err(SandboxError::Busy { .. }) if Instant::now() + pause < ctx.deadline => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

/// The prompt's variables for the next attempt.
fn prompt_input(
    request: &AiRequest,
    project: &Project,
    errors: Option<Vec<String>>,
) -> PromptInput {
    let feature = request
        .feature_id
        .and_then(|id| project.feature(id))
        .and_then(|f| serde_json::to_value(f).ok());
    let function = request
        .function_id
        .and_then(|id| project.function(id))
        .and_then(|f| serde_json::to_value(f).ok());
    PromptInput {
        project: serde_json::to_value(project).unwrap_or(serde_json::Value::Null),
        spec: None,
        schema_language: SCHEMA_LANGUAGE.to_owned(),
        prompt: request.user_prompt.clone(),
        feature,
        function,
        errors,
    }
}

/// One attempt: render, call, check. Records it (and answers what it gave).
async fn attempt(
    ctx: &AiJobContext<'_>,
    job: &AiJob,
    request: &AiRequest,
    project: &Project,
    errors: Option<Vec<String>>,
) -> anyhow::Result<Tried> {
    let n = request.next_attempt();
    let template = Prompt {
        name: request.prompt.name.clone(),
        version: request.prompt.version,
        purpose: request.kind,
        system: request.system.clone(),
        template: request.template.clone(),
    };
    let started = Instant::now();
    let rendered = match prompt::render(&template, &prompt_input(request, project, errors)) {
        Ok(rendered) => rendered,
        // Nothing was sent, so nothing is recorded as an attempt: the request fails.
        Err(e) => return Ok(Tried::Final(e.to_string())),
    };
    let kind = request.kind;
    let completion = CompletionRequest {
        system: rendered.system,
        user: rendered.user,
        json_schema: Some(JsonSchema {
            name: kind.schema_name().to_owned(),
            description: None,
            schema: proposal::json_schema(kind),
        }),
        max_tokens: None,
    };
    let result = ctx
        .client
        .complete(&request.model_config, &completion, ctx.deadline.into())
        .await;
    let latency = |ms: u64| {
        if ms > 0 {
            ms
        } else {
            u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
        }
    };
    let (record, tried) = match result {
        Ok(answer) => {
            let usage = TokenUsage {
                input_tokens: answer.usage.input_tokens,
                output_tokens: answer.usage.output_tokens,
            };
            let (error, tried, recorded) = match &answer.content {
                Content::Json(value) => match check_answer(ctx, request, project, value).await {
                    Ok(Ok(proposal)) => (None, Tried::Valid(proposal), value.clone()),
                    Ok(Err(lines)) => (Some(lines.join("\n")), Tried::Invalid, value.clone()),
                    // The answer is recorded with its cost; the request fails, saying why.
                    Err(e) => {
                        let error = format!("the proposal could not be checked: {e}");
                        (Some(error.clone()), Tried::Final(error), value.clone())
                    }
                },
                Content::Text(text) => (
                    Some("the answer is not a JSON object".to_owned()),
                    Tried::Invalid,
                    serde_json::Value::String(text.clone()),
                ),
            };
            let answer_kept = match recorded {
                serde_json::Value::String(text) => AttemptAnswer::Text(text),
                value => AttemptAnswer::Json(value),
            };
            (
                RecordAttempt {
                    n,
                    usage,
                    latency_ms: latency(answer.latency_ms),
                    error,
                    answer: Some(answer_kept),
                    at: OffsetDateTime::now_utc(),
                },
                tried,
            )
        }
        Err(AiError::Malformed {
            detail,
            raw,
            usage,
            latency_ms,
            ..
        }) => (
            RecordAttempt {
                n,
                usage: TokenUsage {
                    input_tokens: usage.input_tokens,
                    output_tokens: usage.output_tokens,
                },
                latency_ms: latency(latency_ms),
                error: Some(format!("the answer is unusable: {detail}")),
                answer: Some(AttemptAnswer::Text(raw)),
                at: OffsetDateTime::now_utc(),
            },
            Tried::Invalid,
        ),
        Err(other) => {
            let message = other.to_string();
            (
                RecordAttempt {
                    n,
                    usage: TokenUsage::default(),
                    latency_ms: latency(0),
                    error: Some(message.clone()),
                    answer: None,
                    at: OffsetDateTime::now_utc(),
                },
                Tried::Final(message),
            )
        }
    };
    match decide_and_append(ctx.store, job, AiRequestCommand::RecordAttempt(record)).await? {
        Ok(()) => Ok(tried),
        Err(e) => anyhow::bail!("cannot record attempt {n}: {e}"),
    }
}

/// Runs `job`, delivery `delivery` (1 for the first).
pub async fn run(ctx: &AiJobContext<'_>, job: &AiJob, delivery: u32) -> anyhow::Result<Outcome> {
    let id = AiRequestId::from_uuid(job.ai_request_id);
    let start = AiRequestCommand::Start(StartAi {
        delivery,
        at: OffsetDateTime::now_utc(),
    });
    match decide_and_append(ctx.store, job, start).await? {
        Ok(()) => {}
        Err(AiRequestError::AlreadyFinished) => return Ok(Outcome::AlreadyFinished),
        Err(e) => anyhow::bail!("cannot start AI request {id}: {e}"),
    }
    let mut request = load_request(ctx.store, id).await?;
    let project = project_at(ctx.store, request.project_id, request.project_version).await?;
    // A redelivery whose last recorded answer was valid (the worker died before the outcome)
    // succeeds with it, checked again.
    // (A sandbox that cannot check it now fails this delivery: a later one checks it again.)
    if let Some(last) = request.attempts.last()
        && last.error.is_none()
        && let Some(AttemptAnswer::Json(value)) = &last.answer
        && let Ok(proposal) = check_answer(ctx, &request, &project, value).await?
    {
        return succeed(ctx, job, proposal).await;
    }
    loop {
        if request.next_attempt() > MAX_ATTEMPTS {
            let last = request
                .attempts
                .last()
                .and_then(|a| a.error.clone())
                .unwrap_or_default();
            let error =
                format!("no valid proposal after {MAX_ATTEMPTS} attempts; the last one: {last}");
            record_failure(ctx.store, job, &error).await?;
            return Ok(Outcome::Failed(error));
        }
        let errors = request
            .attempts
            .last()
            .and_then(|a| a.error.as_deref())
            .map(|e| e.lines().map(str::to_owned).collect());
        match attempt(ctx, job, &request, &project, errors).await? {
            Tried::Valid(proposal) => return succeed(ctx, job, proposal).await,
            Tried::Invalid => {}
            Tried::Final(error) => {
                record_failure(ctx.store, job, &error).await?;
                return Ok(Outcome::Failed(error));
            }
        }
        request = load_request(ctx.store, id).await?;
    }
}

async fn succeed(
    ctx: &AiJobContext<'_>,
    job: &AiJob,
    proposal: serde_json::Value,
) -> anyhow::Result<Outcome> {
    let command = AiRequestCommand::Succeed(SucceedAi {
        proposal,
        at: OffsetDateTime::now_utc(),
    });
    match decide_and_append(ctx.store, job, command).await? {
        Ok(()) => Ok(Outcome::Succeeded),
        Err(AiRequestError::AlreadyFinished) => Ok(Outcome::AlreadyFinished),
        Err(AiRequestError::Validation(problems)) => {
            let error = format!(
                "the proposal cannot be recorded: {}",
                problem_lines(&problems).join("; ")
            );
            record_failure(ctx.store, job, &error).await?;
            Ok(Outcome::Failed(error))
        }
        Err(e) => anyhow::bail!("cannot record the success: {e}"),
    }
}
