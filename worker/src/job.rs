//! One generation job: start it, fold the project at the requested version, generate, store the
//! artifact, verify when asked, and append the outcome to the generation's own stream.

use std::convert::Infallible;
use std::time::Instant;

use domain::generation::{
    CompleteGeneration, FailGeneration, Generation, GenerationCommand, GenerationError,
    StartGeneration, StepReport, StepStatus, TestReport,
};
use domain::ids::{GenerationId, ProjectId};
use domain::project::Project;
use domain::{EventMetadata, Limits};
use event_store::application::{Failure, Pin, Source, Step};
use event_store::{PgEventStore, ReadUntil};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::generate::{ChildError, GeneratorProcess};

/// The job body the job relay publishes for `GenerationRequested` (the contract is `messaging`'s).
pub use messaging::GenerationJob;

/// How a job ended.
#[derive(Debug)]
pub enum Outcome {
    /// Finished earlier (a redelivery): nothing to do.
    AlreadyFinished,
    Succeeded,
    /// Failed for a reason retrying cannot change (recorded as `GenerationFailed`).
    Failed(String),
}

pub struct JobContext<'a> {
    pub store: &'a PgEventStore,
    /// The generator's child process and its limits.
    pub generator: &'a GeneratorProcess,
    /// The verify pool of the sandbox, its limits and the verification directory.
    pub verifier: &'a crate::verify::Verifier,
    /// When the job is abandoned: a verify run ends a little before it.
    pub deadline: Instant,
}

fn metadata(job: &GenerationJob) -> EventMetadata {
    EventMetadata {
        correlation_id: Some(job.generation_id),
        causation_id: Some(job.event_id),
        request_id: Some("worker".into()),
        // The project id comes from the generation's state, written by the application step.
        ..EventMetadata::default()
    }
}

async fn load_generation(
    store: &PgEventStore,
    id: GenerationId,
) -> anyhow::Result<(Generation, u64)> {
    let loaded: event_store::Loaded<Generation> =
        event_store::load(store, &id.stream(), ReadUntil::End).await?;
    Ok((loaded.state, loaded.version))
}

/// Decides `command` on the generation's current state and appends the result, through the
/// application step every writer uses (a lost race is decided again on the new state).
pub async fn decide_and_append(
    store: &PgEventStore,
    job: &GenerationJob,
    command: GenerationCommand,
) -> anyhow::Result<Result<(), GenerationError>> {
    let step = Step::<Generation> {
        stream: GenerationId::from_uuid(job.generation_id).stream(),
        source: Source::Fold,
        pin: Pin::Latest,
        limits: &Limits::default(),
        metadata: metadata(job),
    };
    match step
        .apply(store, || None, |_| Ok::<_, Infallible>(command.clone()))
        .await
    {
        Ok(_) => Ok(Ok(())),
        Err(Failure::Domain(e)) => Ok(Err(e)),
        Err(Failure::Refused(never)) => match never {},
        Err(Failure::Store(e)) => Err(e.into()),
        Err(e @ (Failure::Precondition { .. } | Failure::Conflict { .. })) => {
            anyhow::bail!("generation {} kept changing: {e:?}", job.generation_id)
        }
    }
}

async fn project_at(
    store: &PgEventStore,
    project_id: Uuid,
    version: u64,
) -> anyhow::Result<Project> {
    let stream = ProjectId::from_uuid(project_id).stream();
    let loaded: event_store::Loaded<Project> =
        event_store::load(store, &stream, ReadUntil::Version(version)).await?;
    anyhow::ensure!(
        loaded.version == version,
        "project {project_id} has no version {version}"
    );
    Ok(loaded.state)
}

fn step(name: &str, started: Instant, status: StepStatus, log: Option<String>) -> StepReport {
    StepReport {
        name: name.into(),
        status,
        duration_ms: started.elapsed().as_millis() as u64,
        log,
    }
}

/// A static check of the generated code as a step: its finding count leads the log, so a client
/// reads it without parsing the tool's output. Findings mark the step failed; the generation's
/// outcome is the test suite's.
fn check_step(check: &crate::verify::CheckReport) -> StepReport {
    let mut log = format!("{} findings", check.findings);
    if check.findings > 0 {
        log.push('\n');
        log.push_str(&check.output);
    }
    StepReport {
        name: check.name.into(),
        status: if check.findings == 0 {
            StepStatus::Succeeded
        } else {
            StepStatus::Failed
        },
        duration_ms: u64::try_from(check.duration.as_millis()).unwrap_or(u64::MAX),
        log: Some(log),
    }
}

/// The migrations and model of generation `base_id`'s ZIP. The outer error is worth a
/// redelivery; the inner one is final (a base whose ZIP is gone or unreadable stays so).
async fn base_of(
    store: &PgEventStore,
    base_id: GenerationId,
) -> anyhow::Result<Result<generator::Base, String>> {
    let (base, _) = load_generation(store, base_id).await?;
    let Some(sha256) = base.sha256 else {
        return Ok(Err(format!(
            "the base generation {base_id} has no artifact"
        )));
    };
    let Some(zip) = crate::artifacts::load(store.pool(), &sha256).await? else {
        return Ok(Err(format!(
            "the artifact of the base generation {base_id} is gone"
        )));
    };
    Ok(generator::Base::from_zip(&zip)
        .map_err(|e| format!("the base generation {base_id}'s ZIP cannot be read: {e}")))
}

/// Runs the job; errors are infrastructure failures worth a redelivery.
pub async fn run(
    ctx: &JobContext<'_>,
    job: &GenerationJob,
    attempt: u32,
) -> anyhow::Result<Outcome> {
    let id = GenerationId::from_uuid(job.generation_id);
    let (state, _) = load_generation(ctx.store, id).await?;
    if !state.exists() {
        anyhow::bail!("generation {} is not in the store yet", job.generation_id);
    }
    if state.status.is_finished() {
        return Ok(Outcome::AlreadyFinished);
    }
    let start = GenerationCommand::Start(StartGeneration {
        attempt,
        at: OffsetDateTime::now_utc(),
    });
    match decide_and_append(ctx.store, job, start).await? {
        Ok(()) => {}
        Err(GenerationError::AlreadyFinished) => return Ok(Outcome::AlreadyFinished),
        Err(e) => anyhow::bail!("cannot start generation {}: {e}", job.generation_id),
    }
    let mut steps = Vec::new();
    let t = Instant::now();
    let project = project_at(ctx.store, job.project_id, job.project_version).await?;
    steps.push(step("load_project", t, StepStatus::Succeeded, None));

    // The base the request recorded, so a redelivered job builds on the same one.
    let base = match state.base_generation_id {
        None => None,
        Some(base_id) => {
            let t = Instant::now();
            match base_of(ctx.store, base_id).await? {
                Ok(base) => {
                    steps.push(step("load_base", t, StepStatus::Succeeded, None));
                    Some((base, base_id))
                }
                Err(reason) => {
                    steps.push(step(
                        "load_base",
                        t,
                        StepStatus::Failed,
                        Some(reason.clone()),
                    ));
                    return fail(ctx, job, reason, steps, None).await;
                }
            }
        }
    };

    let t = Instant::now();
    let generated = ctx
        .generator
        .generate_on(&project, job.project_version, state.target, base)
        .await;
    drop(project);
    let artifact = match generated {
        Ok(a) => a,
        Err(ChildError::Refused(e)) => {
            let reason = format!("generation refused: {e}");
            steps.push(step("generate", t, StepStatus::Failed, Some(e.to_string())));
            return fail(ctx, job, reason, steps, None).await;
        }
        // A limit or a crash: final, since the same input would do the same again.
        Err(ChildError::Failed(reason)) => {
            steps.push(step(
                "generate",
                t,
                StepStatus::Failed,
                Some(reason.clone()),
            ));
            return fail(ctx, job, reason, steps, None).await;
        }
        Err(ChildError::Unavailable(e)) => return Err(e),
    };
    steps.push(step(
        "generate",
        t,
        StepStatus::Succeeded,
        Some(format!(
            "{} files, {} bytes",
            artifact.file_count, artifact.size_bytes
        )),
    ));

    let t = Instant::now();
    crate::artifacts::store(ctx.store.pool(), &artifact.sha256, &artifact.zip).await?;
    steps.push(step("store", t, StepStatus::Succeeded, None));

    let mut tests: Option<TestReport> = None;
    if state.verify {
        let t = Instant::now();
        let verified = ctx.verifier.verify(&artifact.files, ctx.deadline).await;
        if let Ok(verification) = &verified {
            steps.extend(verification.checks.iter().map(check_step));
        }
        match verified.map(|verification| verification.tests) {
            Ok(report) if report.failed == 0 && report.passed > 0 => {
                steps.push(step("verify", t, StepStatus::Succeeded, None));
                tests = Some(report);
            }
            Ok(report) => {
                let reason = format!(
                    "the generated test suite failed: {} passed, {} failed",
                    report.passed, report.failed
                );
                steps.push(step("verify", t, StepStatus::Failed, None));
                return fail(ctx, job, reason, steps, Some(report)).await;
            }
            Err(e) => {
                steps.push(step(
                    "verify",
                    t,
                    StepStatus::Failed,
                    Some(format!("{e:#}")),
                ));
                return fail(
                    ctx,
                    job,
                    format!("verification could not run: {e:#}"),
                    steps,
                    None,
                )
                .await;
            }
        }
    } else {
        steps.push(StepReport {
            name: "verify".into(),
            status: StepStatus::Skipped,
            duration_ms: 0,
            log: None,
        });
    }
    let complete = GenerationCommand::Complete(CompleteGeneration {
        file_count: artifact.file_count as u64,
        size_bytes: artifact.size_bytes as u64,
        sha256: artifact.sha256.clone(),
        steps,
        tests,
        at: OffsetDateTime::now_utc(),
    });
    match decide_and_append(ctx.store, job, complete).await? {
        Ok(()) => Ok(Outcome::Succeeded),
        Err(GenerationError::AlreadyFinished) => Ok(Outcome::AlreadyFinished),
        Err(e) => anyhow::bail!("cannot complete generation {}: {e}", job.generation_id),
    }
}

async fn fail(
    ctx: &JobContext<'_>,
    job: &GenerationJob,
    reason: String,
    steps: Vec<StepReport>,
    tests: Option<TestReport>,
) -> anyhow::Result<Outcome> {
    record_failure(ctx.store, job, &reason, steps, tests).await?;
    Ok(Outcome::Failed(reason))
}

/// Appends `GenerationFailed` unless the generation has finished already.
pub async fn record_failure(
    store: &PgEventStore,
    job: &GenerationJob,
    reason: &str,
    steps: Vec<StepReport>,
    tests: Option<TestReport>,
) -> anyhow::Result<()> {
    let command = GenerationCommand::Fail(FailGeneration {
        reason: reason.to_owned(),
        steps,
        tests,
        at: OffsetDateTime::now_utc(),
    });
    match decide_and_append(store, job, command).await? {
        Ok(()) | Err(GenerationError::AlreadyFinished) => Ok(()),
        Err(e) => anyhow::bail!("cannot record the failure of {}: {e}", job.generation_id),
    }
}
