//! Running a piece of user code through the runner (`runner.py`): the request it reads on stdin,
//! and the run result the API answers with (`status`, `output`, `error`, the captured streams).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::SandboxError;
use crate::pool::Sandbox;
use crate::run::{Limits, Program, RunOutput, RunStatus};

/// The runner, passed to `python3 -I -B -S -c`: no `site` (only the standard library is
/// available to user code, and not importing `site` saves ~4 ms of every run's start).
const RUNNER: &str = include_str!("runner.py");

/// Room on the real stdout for the result line beyond the user's own capped output.
const RESULT_ROOM: usize = 1024 * 1024;

/// How a run of user code ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    Ok,
    Error,
    Timeout,
    MemoryLimit,
    OutputLimit,
    InvalidOutput,
}

impl ExecutionStatus {
    /// Every status, for tests and metrics.
    pub const ALL: [ExecutionStatus; 6] = [
        ExecutionStatus::Ok,
        ExecutionStatus::Error,
        ExecutionStatus::Timeout,
        ExecutionStatus::MemoryLimit,
        ExecutionStatus::OutputLimit,
        ExecutionStatus::InvalidOutput,
    ];

    /// The status as the API spells it (equal to its serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Ok => "ok",
            ExecutionStatus::Error => "error",
            ExecutionStatus::Timeout => "timeout",
            ExecutionStatus::MemoryLimit => "memory_limit",
            ExecutionStatus::OutputLimit => "output_limit",
            ExecutionStatus::InvalidOutput => "invalid_output",
        }
    }
}

/// The exception a run ended with, where the user's code raised it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionError {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    #[serde(default)]
    pub line: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
}

/// The run result of the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Execution {
    pub status: ExecutionStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ExecutionError>,
    pub stdout: String,
    pub stderr: String,
    pub truncated: bool,
    pub duration_ms: u64,
}

/// What the runner writes as its last line.
#[derive(Debug, Deserialize)]
struct RunnerResult {
    ok: bool,
    #[serde(default)]
    output: Option<Value>,
    #[serde(default)]
    error: Option<ExecutionError>,
    #[serde(default)]
    stdout: String,
    #[serde(default)]
    truncated: bool,
    #[serde(default)]
    defines_handler: Option<bool>,
}

/// Whether code compiles, and whether it defines a top-level `def handler(input)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compiled {
    Fine { defines_handler: bool },
    SyntaxError(ExecutionError),
}

impl Sandbox {
    /// Runs `code` with `input`: when it defines `handler`, its output is `handler(input)`.
    pub async fn execute(
        &self,
        code: &str,
        input: Option<&Value>,
        limits: &Limits,
    ) -> Result<Execution, SandboxError> {
        let request = serde_json::json!({
            "code": code,
            "input": input,
            "stdout_cap": limits.output_bytes,
        });
        let run = self.run(&runner_program(&request, limits)).await?;
        Ok(interpret(&run, limits))
    }

    /// Compiles `code` with the real interpreter (nothing of it runs).
    pub async fn compile(&self, code: &str, limits: &Limits) -> Result<Compiled, SandboxError> {
        let request = serde_json::json!({"code": code, "compile_only": true});
        let run = self.run(&runner_program(&request, limits)).await?;
        match result_line(&run) {
            Some((result, _)) if result.ok => Ok(Compiled::Fine {
                defines_handler: result.defines_handler.unwrap_or(false),
            }),
            Some((
                RunnerResult {
                    error: Some(error), ..
                },
                _,
            )) => Ok(Compiled::SyntaxError(error)),
            _ => Err(SandboxError::Unavailable(format!(
                "the interpreter could not check the code ({:?}): {}",
                run.status,
                String::from_utf8_lossy(&run.stderr).trim()
            ))),
        }
    }
}

fn runner_program(request: &Value, limits: &Limits) -> Program {
    Program {
        limits: Limits {
            output_bytes: limits.output_bytes.saturating_add(RESULT_ROOM),
            ..limits.clone()
        },
        ..Program::python(["-S", "-c", RUNNER], request.to_string().into_bytes())
    }
}

/// The runner's result line, and what the program wrote to the real stdout before it.
fn result_line(run: &RunOutput) -> Option<(RunnerResult, String)> {
    let text = String::from_utf8_lossy(&run.stdout);
    let trimmed = text.trim_end_matches('\n');
    let (before, last) = trimmed.rsplit_once('\n').unwrap_or(("", trimmed));
    let result: RunnerResult = serde_json::from_str(last).ok()?;
    Some((result, before.to_owned()))
}

/// Maps a finished run to the API's run result.
fn interpret(run: &RunOutput, limits: &Limits) -> Execution {
    let duration_ms = u64::try_from(run.elapsed.as_millis()).unwrap_or(u64::MAX);
    let mut stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    let stderr_cut = stderr.len() > limits.output_bytes;
    cut(&mut stderr, limits.output_bytes);
    let parsed = result_line(run);
    let (mut stdout, user_truncated) = match &parsed {
        Some((result, before)) => (format!("{before}{}", result.stdout), result.truncated),
        None => (String::new(), false),
    };
    let truncated =
        run.truncated || user_truncated || stderr_cut || stdout.len() > limits.output_bytes;
    cut(&mut stdout, limits.output_bytes);
    // The CPU limit sends SIGXCPU, then SIGKILL; bwrap reports its child's signal as 128 + it.
    let cpu_signal = |s: i32| s == libc::SIGXCPU || s == libc::SIGKILL;
    let stopped = match run.status {
        RunStatus::TimedOut => true,
        RunStatus::Signalled(s) => cpu_signal(s),
        RunStatus::Exited(code) => parsed.is_none() && cpu_signal(code - 128),
    };
    let (status, output, error) = match parsed {
        _ if stopped => (ExecutionStatus::Timeout, None, None),
        _ if truncated => (ExecutionStatus::OutputLimit, None, None),
        Some((result, _)) if result.ok => (ExecutionStatus::Ok, result.output, None),
        Some((
            RunnerResult {
                error: Some(error), ..
            },
            _,
        )) if error.kind == "MemoryError" => (ExecutionStatus::MemoryLimit, None, Some(error)),
        Some((result, _)) => (ExecutionStatus::Error, None, result.error),
        None if stderr.contains("MemoryError") => (ExecutionStatus::MemoryLimit, None, None),
        None => (
            ExecutionStatus::Error,
            None,
            Some(ExecutionError {
                kind: "SandboxExit".into(),
                message: format!("the program ended without a result ({:?})", run.status),
                line: None,
                column: None,
            }),
        ),
    };
    Execution {
        status,
        output,
        error,
        stdout,
        stderr,
        truncated,
        duration_ms,
    }
}

/// Cuts `text` to at most `max` bytes, at a character boundary.
fn cut(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_status_is_spelled_as_its_serde_name() {
        for status in ExecutionStatus::ALL {
            assert_eq!(
                serde_json::to_value(status).ok(),
                Some(serde_json::Value::from(status.as_str()))
            );
        }
    }
}
