//! A custom function's code as every caller runs it (the command API's routes, the worker's check of generated code): one pool under the function limits with its start-up self-test, the compile check, the examples run in turn, and how an output is compared with an example's.

use std::sync::{Arc, RwLock};

use serde_json::Value;

use crate::SandboxError;
use crate::execute::{Compiled, Execution, ExecutionError, ExecutionStatus};
use crate::pool::{Sandbox, SandboxConfig};
use crate::run::Limits;

/// What the compile check says of code that compiles but defines no handler.
pub const NO_HANDLER: &str = "must define a top-level `def handler(input)` taking one argument";

/// Bytes of an example's input, expected or actual output quoted in a problem line.
const QUOTED_BYTES: usize = 300;

/// Where the self-test stands.
#[derive(Debug, Clone)]
enum Health {
    Untested,
    Passed,
    Failed(String),
}

/// The pool that runs functions, the function limits (`BACKFORGE_SANDBOX_*`), and the outcome of
/// its self-test: nothing runs until the self-test passed.
pub struct Functions {
    sandbox: Result<Sandbox, String>,
    limits: Limits,
    health: RwLock<Health>,
}

/// One example run: what it was given, what it should return, the run, and whether it passed.
#[derive(Debug, Clone)]
pub struct ExampleRun {
    pub input: Value,
    pub expected: Value,
    pub run: Execution,
    pub passed: bool,
}

impl Functions {
    /// Sets up the pool (nothing runs until [`Functions::self_test`]).
    pub fn new(config: SandboxConfig, limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            sandbox: Sandbox::new(config).map_err(|e| e.to_string()),
            limits,
            health: RwLock::new(Health::Untested),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Runs the self-test and records its outcome (logged when it fails).
    pub async fn self_test(&self) {
        let outcome = match &self.sandbox {
            Ok(sandbox) => match sandbox.self_test().await {
                Ok(()) => Health::Passed,
                Err(e) => Health::Failed(e.to_string()),
            },
            Err(cause) => Health::Failed(cause.clone()),
        };
        if let Health::Failed(cause) = &outcome {
            tracing::warn!(%cause, "the sandbox is unavailable: functions cannot run");
        }
        *self.health.write().unwrap_or_else(|e| e.into_inner()) = outcome;
    }

    /// Runs the self-test unless it ran (a caller that cannot answer "try later" waits for it).
    pub async fn settle(&self) {
        let untested = matches!(
            *self.health.read().unwrap_or_else(|e| e.into_inner()),
            Health::Untested
        );
        if untested {
            self.self_test().await;
        }
    }

    /// Why nothing can run, or `None` once the self-test passed.
    pub fn cause(&self) -> Option<String> {
        match &*self.health.read().unwrap_or_else(|e| e.into_inner()) {
            Health::Passed => None,
            Health::Untested => Some("the self-test has not run yet".to_owned()),
            Health::Failed(cause) => Some(cause.clone()),
        }
    }

    fn ready(&self) -> Result<&Sandbox, SandboxError> {
        match (&self.sandbox, self.cause()) {
            (Ok(sandbox), None) => Ok(sandbox),
            (Err(cause), _) => Err(SandboxError::Unavailable(cause.clone())),
            (Ok(_), Some(cause)) => Err(SandboxError::Unavailable(cause)),
        }
    }

    /// Runs `code` with `input` under the function limits.
    pub async fn execute(
        &self,
        code: &str,
        input: Option<&Value>,
    ) -> Result<Execution, SandboxError> {
        self.ready()?.execute(code, input, &self.limits).await
    }

    /// Compiles `code` with the sandbox's interpreter (nothing of it runs).
    pub async fn compile(&self, code: &str) -> Result<Compiled, SandboxError> {
        self.ready()?.compile(code, &self.limits).await
    }

    /// The compile check of a function's code: `Ok(Err(why))` when it does not compile or defines
    /// no top-level `def handler(input)`, worded for `/function_code`.
    pub async fn check_code(&self, code: &str) -> Result<Result<(), String>, SandboxError> {
        Ok(match self.compile(code).await? {
            Compiled::Fine {
                defines_handler: true,
            } => Ok(()),
            Compiled::Fine {
                defines_handler: false,
            } => Err(NO_HANDLER.to_owned()),
            Compiled::SyntaxError(error) => Err(syntax_message(&error)),
        })
    }

    /// Runs `code` with each example's input, one after another; an example passes when its run
    /// is `ok` and returns the expected output ([`same_json`]).
    pub async fn run_examples(
        &self,
        code: &str,
        examples: &[(&Value, &Value)],
    ) -> Result<Vec<ExampleRun>, SandboxError> {
        let mut runs = Vec::with_capacity(examples.len());
        for &(input, expected) in examples {
            let run = self.execute(code, Some(input)).await?;
            let passed = run.status == ExecutionStatus::Ok
                && run.output.as_ref().is_some_and(|o| same_json(o, expected));
            runs.push(ExampleRun {
                input: input.clone(),
                expected: expected.clone(),
                run,
                passed,
            });
        }
        Ok(runs)
    }
}

impl ExampleRun {
    /// Why the example failed, in one line for whoever must fix the code (`None` when it passed);
    /// `n` counts from 1.
    pub fn problem(&self, n: usize, limits: &Limits) -> Option<String> {
        if self.passed {
            return None;
        }
        let run = &self.run;
        let what = match (run.status, &run.output, &run.error) {
            (ExecutionStatus::Ok, output, _) => format!(
                "returned {}, expected {}",
                quoted(output.as_ref().unwrap_or(&Value::Null)),
                quoted(&self.expected)
            ),
            (ExecutionStatus::Timeout, _, _) => format!(
                "did not finish within the limits ({} s of wall clock, {} s of CPU)",
                limits.wall.as_secs_f64(),
                limits.cpu_seconds
            ),
            (ExecutionStatus::MemoryLimit, _, _) => format!(
                "ran out of memory (the limit is {} MiB)",
                limits.address_space_bytes / (1024 * 1024)
            ),
            (ExecutionStatus::OutputLimit, _, _) => format!(
                "wrote more than the {} bytes of output a run keeps",
                limits.output_bytes
            ),
            (status, _, Some(error)) => format!("raised {}", error_message(status, error)),
            (status, _, None) => format!("ended with status {}", status.as_str()),
        };
        Some(format!(
            "example {n} (input {}) {what}",
            quoted(&self.input)
        ))
    }
}

/// "ZeroDivisionError: division by zero (line 2)".
fn error_message(status: ExecutionStatus, error: &ExecutionError) -> String {
    let line = error
        .line
        .map(|l| format!(" (line {l})"))
        .unwrap_or_default();
    // One line: a repair reads the error line by line.
    let message = cut(&error.message.replace(['\n', '\r'], " "), QUOTED_BYTES);
    match status {
        ExecutionStatus::InvalidOutput => format!("an output its schema refuses: {message}"),
        _ => format!(
            "{}: {message}{line}",
            cut(&error.kind.replace(['\n', '\r'], " "), 80)
        ),
    }
}

/// A JSON value as compact text, cut to [`QUOTED_BYTES`].
fn quoted(value: &Value) -> String {
    cut(&value.to_string(), QUOTED_BYTES)
}

/// `text` cut to at most `max` bytes at a character boundary, with `…` when cut.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// "line 2, column 5: invalid syntax (SyntaxError)".
pub fn syntax_message(error: &ExecutionError) -> String {
    let place = match (error.line, error.column) {
        (Some(line), Some(column)) => format!("line {line}, column {column}: "),
        (Some(line), None) => format!("line {line}: "),
        _ => String::new(),
    };
    format!("{place}{} ({})", error.message, error.kind)
}

/// Whether two JSON values are equal, numbers by value (`5` and `5.0` are one number).
pub fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || matches!((x.as_f64(), y.as_f64()), (Some(x), Some(y)) if x == y)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_compare_by_value_and_everything_else_exactly() {
        assert!(same_json(&json!({"t": 5}), &json!({"t": 5.0})));
        assert!(same_json(&json!([1, "a"]), &json!([1.0, "a"])));
        assert!(!same_json(&json!({"t": 5}), &json!({"t": 5, "u": 1})));
        assert!(!same_json(&json!("5"), &json!(5)));
    }

    #[test]
    fn a_syntax_error_names_its_line_and_column() {
        let error = ExecutionError {
            kind: "SyntaxError".into(),
            message: "invalid syntax".into(),
            line: Some(2),
            column: Some(5),
        };
        assert_eq!(
            syntax_message(&error),
            "line 2, column 5: invalid syntax (SyntaxError)"
        );
    }

    fn example(
        status: ExecutionStatus,
        output: Option<Value>,
        error: Option<ExecutionError>,
    ) -> ExampleRun {
        ExampleRun {
            input: json!({"n": 2}),
            expected: json!({"n": 4}),
            run: Execution {
                status,
                output,
                error,
                stdout: String::new(),
                stderr: String::new(),
                truncated: false,
                duration_ms: 3,
            },
            passed: false,
        }
    }

    #[test]
    fn a_failed_example_says_what_it_was_given_and_what_went_wrong() {
        let limits = Limits::default();
        let wrong = example(ExecutionStatus::Ok, Some(json!({"n": 3})), None);
        assert_eq!(
            wrong.problem(1, &limits).as_deref(),
            Some(r#"example 1 (input {"n":2}) returned {"n":3}, expected {"n":4}"#)
        );
        let raised = example(
            ExecutionStatus::Error,
            None,
            Some(ExecutionError {
                kind: "ZeroDivisionError".into(),
                message: "division by zero".into(),
                line: Some(2),
                column: None,
            }),
        );
        let multiline = example(
            ExecutionStatus::Error,
            None,
            Some(ExecutionError {
                kind: "ValueError".into(),
                message: "one\ntwo".into(),
                line: None,
                column: None,
            }),
        );
        assert_eq!(
            multiline.problem(1, &limits).as_deref(),
            Some(r#"example 1 (input {"n":2}) raised ValueError: one two"#)
        );
        assert_eq!(
            raised.problem(2, &limits).as_deref(),
            Some(
                r#"example 2 (input {"n":2}) raised ZeroDivisionError: division by zero (line 2)"#
            )
        );
        let slow = example(ExecutionStatus::Timeout, None, None);
        assert_eq!(
            slow.problem(3, &limits).as_deref(),
            Some(
                r#"example 3 (input {"n":2}) did not finish within the limits (5 s of wall clock, 2 s of CPU)"#
            )
        );
        let fine = ExampleRun {
            passed: true,
            ..example(ExecutionStatus::Ok, Some(json!({"n": 4})), None)
        };
        assert_eq!(fine.problem(1, &limits), None);
    }

    #[test]
    fn a_long_value_is_cut_in_a_problem_line() {
        let mut long = example(ExecutionStatus::Ok, Some(json!("x".repeat(5000))), None);
        long.input = json!("é".repeat(1000));
        let line = long.problem(1, &Limits::default()).expect("a problem");
        assert!(line.len() < 3 * QUOTED_BYTES, "{}", line.len());
        assert_eq!(line.matches('…').count(), 2, "{line}");
    }
}
