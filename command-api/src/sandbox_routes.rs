//! `POST /ai/sandbox-execute`: any signed-in user runs a piece of Python in the sandbox, rate-limited
//! per user; the run changes nothing and is no event. Also the command side's handle on the sandbox's
//! function pool (`sandbox::Functions`) and the per-user allowance of runs.

use std::sync::Arc;

use actix_web::{HttpResponse, post, web};
use runtime::metrics::Metrics;
use runtime::{ApiError, Authenticated, Json};
use sandbox::{ExampleRun, Functions, SandboxError};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::CommandState;
use crate::rate_limit::RateLimiter;

/// The largest piece of code a run takes, in bytes.
pub const MAX_CODE_BYTES: usize = 64 * 1024;

/// The command side's sandbox: the function pool (shared with the worker in one process), and
/// the per-user allowance of runs.
pub struct SandboxService {
    functions: Arc<Functions>,
    per_user: RateLimiter,
    /// Where finished runs are counted (`backforge_sandbox_runs_total`).
    metrics: Metrics,
}

/// Finished runs by route and status.
pub const RUNS_TOTAL: &str = "backforge_sandbox_runs_total";

impl SandboxService {
    /// The command side's handle on `functions`; runs allowed per user and minute:
    /// `executions_per_minute`.
    pub fn new(
        functions: Arc<Functions>,
        executions_per_minute: u32,
        metrics: Metrics,
    ) -> Arc<Self> {
        metrics.describe(RUNS_TOTAL, "Finished sandbox runs by route and status");
        Arc::new(Self {
            functions,
            per_user: RateLimiter::new(executions_per_minute),
            metrics,
        })
    }

    /// Runs the start-up self-test and records its outcome (logged when it fails).
    pub async fn self_test(&self) {
        self.functions.self_test().await
    }

    /// Why nothing can run, or `None` when the sandbox works.
    pub fn cause(&self) -> Option<String> {
        self.functions.cause()
    }

    /// Takes one run from `user`'s allowance (`BACKFORGE_SANDBOX_EXECUTIONS_PER_MINUTE`, shared by
    /// every route that runs code for a caller): 429 `rate-limited` with `Retry-After` when it is
    /// spent.
    pub fn admit(&self, user: &Authenticated) -> Result<(), ApiError> {
        self.per_user
            .check(&user.user_id.to_string())
            .map_err(ApiError::rate_limited)
    }

    /// Logs and counts a finished run the same way for every route: who ran it, from where
    /// (`route`), its status and duration.
    pub fn record(&self, user: &Authenticated, route: &'static str, run: &sandbox::Execution) {
        self.metrics.inc(
            RUNS_TOTAL,
            vec![
                ("route", route.to_owned()),
                ("status", run.status.as_str().to_owned()),
            ],
            1,
        );
        tracing::info!(user = %user.user_id, route, status = ?run.status, ms = run.duration_ms,
            "sandbox run");
    }

    /// Runs `code` with `input` under the function limits.
    pub async fn execute(
        &self,
        code: &str,
        input: Option<&Value>,
    ) -> Result<sandbox::Execution, ApiError> {
        self.functions.execute(code, input).await.map_err(refused)
    }

    /// The compile check of a function's code (see [`Functions::check_code`]).
    pub async fn check_code(&self, code: &str) -> Result<Result<(), String>, ApiError> {
        self.functions.check_code(code).await.map_err(refused)
    }

    /// Runs `code` with each example's input (see [`Functions::run_examples`]).
    pub async fn run_examples(
        &self,
        code: &str,
        examples: &[(&Value, &Value)],
    ) -> Result<Vec<ExampleRun>, ApiError> {
        self.functions
            .run_examples(code, examples)
            .await
            .map_err(refused)
    }
}

/// A run the sandbox could not take: busy (503 with a short `Retry-After`) or unavailable (503
/// `sandbox-unavailable` naming the cause).
fn refused(error: SandboxError) -> ApiError {
    match error {
        SandboxError::Busy { .. } => ApiError::unavailable(format!("{error}; retry shortly"), 1),
        SandboxError::Unavailable(cause) => ApiError::sandbox_unavailable(
            format!("the sandbox cannot run code on this server: {cause}"),
            60,
        ),
        other => ApiError::sandbox_unavailable(other.to_string(), 60),
    }
}

/// A piece of code to run.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxExecuteRequest {
    /// Only `python` (the standard library, no packages).
    pub language: String,
    /// At most 64 KiB. When it defines `handler(input)`, the run's `output` is its return value.
    pub code: String,
    /// Passed to `handler`.
    #[serde(default)]
    pub input: Option<Value>,
}

/// Run a piece of Python in the sandbox: no network, no host files, no server environment, and the
/// function limits (`BACKFORGE_SANDBOX_*`). Changes nothing.
#[utoipa::path(post, path = "/api/v1/ai/sandbox-execute", tag = "sandbox",
    request_body = SandboxExecuteRequest, security(("bearer" = [])),
    responses((status = 200, description = "The run result: status ok, error, timeout, memory_limit or output_limit, output, error, stdout, stderr, truncated, duration_ms", body = Object),
              (status = 401, description = "Not signed in"),
              (status = 422, description = "An unknown language, or code over 64 KiB"),
              (status = 429, description = "Too many runs; Retry-After"),
              (status = 503, description = "Every sandbox slot and the queue are busy (Retry-After), or the sandbox is unavailable on this server (sandbox-unavailable)")))]
#[post("/ai/sandbox-execute")]
pub async fn sandbox_execute(
    state: web::Data<CommandState>,
    caller: Authenticated,
    body: Json<SandboxExecuteRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    if request.language != "python" {
        return Err(ApiError::invalid_field(
            "/language",
            "only `python` runs in the sandbox",
        ));
    }
    if request.code.len() > MAX_CODE_BYTES {
        return Err(ApiError::invalid_field(
            "/code",
            format!("must be at most {MAX_CODE_BYTES} bytes"),
        ));
    }
    state.sandbox.admit(&caller)?;
    let run = state
        .sandbox
        .execute(&request.code, request.input.as_ref())
        .await?;
    state.sandbox.record(&caller, "sandbox-execute", &run);
    Ok(HttpResponse::Ok().json(run))
}
