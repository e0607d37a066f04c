//! `POST /ai/sandbox-execute`: any signed-in user runs a piece of Python in the sandbox, rate-limited
//! per user; the run changes nothing and is no event. Also the command side's handle on the sandbox:
//! its pool, the function limits and whether the start-up self-test passed.

use std::sync::{Arc, RwLock};

use actix_web::{HttpResponse, post, web};
use runtime::metrics::Metrics;
use runtime::settings::SandboxSettings;
use runtime::{ApiError, Authenticated, Json};
use sandbox::{Limits, Sandbox, SandboxConfig, SandboxError};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::CommandState;
use crate::rate_limit::RateLimiter;

/// The largest piece of code a run takes, in bytes.
pub const MAX_CODE_BYTES: usize = 64 * 1024;

/// The command side's sandbox: the pool (if one could be set up), the limits of a function run,
/// and the outcome of the start-up self-test.
pub struct SandboxService {
    sandbox: Option<Sandbox>,
    limits: Limits,
    /// `Err(cause)` until the self-test passed, or after it failed.
    health: RwLock<Result<(), String>>,
    per_user: RateLimiter,
    /// Where finished runs are counted (`backforge_sandbox_runs_total`).
    metrics: Metrics,
}

/// Finished runs by route and status.
pub const RUNS_TOTAL: &str = "backforge_sandbox_runs_total";

impl SandboxService {
    /// Sets up the pool from the settings; nothing runs until [`SandboxService::self_test`].
    pub fn new(settings: &SandboxSettings, metrics: Metrics) -> Arc<Self> {
        metrics.describe(RUNS_TOTAL, "Finished sandbox runs by route and status");
        let limits = Limits {
            wall: settings.wall,
            cpu_seconds: settings.cpu_seconds,
            address_space_bytes: settings.memory_bytes,
            processes: settings.processes,
            tmp_bytes: settings.tmp_bytes,
            file_bytes: settings.file_bytes,
            output_bytes: settings.output_bytes,
            ..Limits::default()
        };
        let state_dir =
            std::env::temp_dir().join(format!("backforge-sandbox-{}", uuid::Uuid::new_v4()));
        let built = Sandbox::new(SandboxConfig {
            python: settings.python.clone().into(),
            uid_base: settings.uid_base,
            slots: settings.slots,
            queue: settings.queue,
            state_dir,
        });
        let (sandbox, health) = match built {
            Ok(sandbox) => (
                Some(sandbox),
                Err("the self-test has not run yet".to_owned()),
            ),
            Err(error) => (None, Err(error.to_string())),
        };
        Arc::new(Self {
            sandbox,
            limits,
            health: RwLock::new(health),
            per_user: RateLimiter::new(settings.executions_per_minute),
            metrics,
        })
    }

    /// Runs the start-up self-test and records its outcome (logged when it fails).
    pub async fn self_test(&self) {
        let outcome = match &self.sandbox {
            Some(sandbox) => sandbox.self_test().await.map_err(|e| e.to_string()),
            None => Err(self.cause().unwrap_or_default()),
        };
        if let Err(cause) = &outcome {
            tracing::warn!(%cause, "the sandbox is unavailable: functions and sandbox runs answer 503");
        }
        *self.health.write().unwrap_or_else(|e| e.into_inner()) = outcome;
    }

    /// Why nothing can run, or `None` when the sandbox works.
    pub fn cause(&self) -> Option<String> {
        self.health
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .err()
            .cloned()
    }

    /// The pool, once the self-test passed; 503 `sandbox-unavailable` naming the cause otherwise.
    fn ready(&self) -> Result<&Sandbox, ApiError> {
        match (&self.sandbox, self.cause()) {
            (Some(sandbox), None) => Ok(sandbox),
            (_, cause) => Err(ApiError::sandbox_unavailable(
                format!(
                    "the sandbox cannot run code on this server: {}",
                    cause.unwrap_or_default()
                ),
                60,
            )),
        }
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
        self.ready()?
            .execute(code, input, &self.limits)
            .await
            .map_err(refused)
    }

    /// Compiles `code` with the sandbox's interpreter (nothing of it runs) and tells whether it
    /// defines a top-level `def handler(input)`.
    pub async fn compile(&self, code: &str) -> Result<sandbox::Compiled, ApiError> {
        self.ready()?
            .compile(code, &self.limits)
            .await
            .map_err(refused)
    }
}

/// A run the sandbox could not take: busy (503 with a short `Retry-After`) or unavailable.
fn refused(error: SandboxError) -> ApiError {
    match error {
        SandboxError::Busy { .. } => ApiError::unavailable(format!("{error}; retry shortly"), 1),
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
