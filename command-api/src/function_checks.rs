//! The checks of a custom function that the pure domain cannot make: its JSON Schemas against the
//! 2020-12 meta-schema (no remote or file `$ref`, patterns on the linear-time `regex` engine), its
//! example inputs and outputs against them, and a test input against its `input_schema`.

use domain::FieldError;
use domain::project::FunctionExample;
use jsonschema::{PatternOptions, Validator};
use serde_json::Value;

/// The only `$schema` a function's schema may declare.
const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// How many problems one instance reports at most.
const MAX_INSTANCE_ERRORS: usize = 20;

/// Bounds of one compiled pattern (bytes), so a schema cannot make the server build a huge automaton.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// Every keyword whose value is a reference to resolve.
const REFERENCE_KEYWORDS: [&str; 3] = ["$ref", "$dynamicRef", "$recursiveRef"];

/// Records a problem (under `at`) for every reference in `schema` that is not a local `#…` pointer.
fn check_references(schema: &Value, at: &str, errors: &mut Vec<FieldError>) {
    match schema {
        Value::Object(members) => {
            for (key, value) in members {
                let here = format!("{at}/{}", domain::error::escape_token(key));
                match value {
                    Value::String(target) if REFERENCE_KEYWORDS.contains(&key.as_str()) => {
                        if !target.starts_with('#') {
                            errors.push(FieldError::new(
                                here,
                                "only local references (`#…`) are allowed: remote and file references are never resolved",
                            ));
                        }
                    }
                    other => check_references(other, &here, errors),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_references(item, &format!("{at}/{i}"), errors);
            }
        }
        _ => {}
    }
}

/// Compiles `schema` (found at pointer `at` of the request) into a validator, or records why not.
pub fn compile(schema: &Value, at: &str, errors: &mut Vec<FieldError>) -> Option<Validator> {
    let before = errors.len();
    if let Some(declared) = schema.get("$schema") {
        if declared.as_str() != Some(DRAFT_2020_12) {
            errors.push(FieldError::new(
                format!("{at}/$schema"),
                format!("must be absent or `{DRAFT_2020_12}`"),
            ));
        }
    }
    check_references(schema, at, errors);
    if errors.len() > before {
        return None;
    }
    if let Err(error) = jsonschema::draft202012::meta::validate(schema) {
        errors.push(FieldError::new(
            format!("{at}{}", error.instance_path()),
            format!("is not a valid JSON Schema (2020-12): {}", error.masked()),
        ));
        return None;
    }
    let built = jsonschema::draft202012::options()
        .offline()
        .with_pattern_options(
            PatternOptions::regex()
                .size_limit(PATTERN_SIZE_LIMIT)
                .dfa_size_limit(PATTERN_SIZE_LIMIT),
        )
        .build(schema);
    match built {
        Ok(validator) => Some(validator),
        Err(error) => {
            errors.push(FieldError::new(
                format!("{at}{}", error.instance_path()),
                format!("cannot be used as a JSON Schema: {}", error.masked()),
            ));
            None
        }
    }
}

/// Records the ways `instance` (at pointer `at` of the request) fails `validator`.
pub fn validate(validator: &Validator, instance: &Value, at: &str, errors: &mut Vec<FieldError>) {
    for error in validator.iter_errors(instance).take(MAX_INSTANCE_ERRORS) {
        errors.push(FieldError::new(
            format!("{at}{}", error.instance_path()),
            error.masked().to_string(),
        ));
    }
}

/// The schemas and examples of a function as they will be stored, checked together: each schema
/// against the meta-schema, each example input against `input_schema` and output against
/// `output_schema`.
pub fn check_function(
    input_schema: Option<&Value>,
    output_schema: Option<&Value>,
    examples: &[FunctionExample],
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let input = input_schema.and_then(|s| compile(s, "/input_schema", &mut errors));
    let output = output_schema.and_then(|s| compile(s, "/output_schema", &mut errors));
    for (i, example) in examples.iter().enumerate() {
        if let Some(input) = &input {
            validate(
                input,
                &example.input,
                &format!("/examples/{i}/input"),
                &mut errors,
            );
        }
        if let Some(output) = &output {
            validate(
                output,
                &example.output,
                &format!("/examples/{i}/output"),
                &mut errors,
            );
        }
    }
    errors
}

/// Runs `check` on a blocking thread: validating a large instance against a schema is CPU work
/// that must not hold an async worker.
pub async fn off_the_runtime<T: Send + 'static>(
    check: impl FnOnce() -> T + Send + 'static,
) -> Result<T, runtime::ApiError> {
    tokio::task::spawn_blocking(check)
        .await
        .map_err(runtime::ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_schema_that_breaks_the_meta_schema_is_refused_where_it_breaks_it() {
        let errors = check_function(Some(&json!({"type": "strin"})), None, &[]);
        assert_eq!(fields(&errors), ["/input_schema/type"], "{errors:?}");
    }

    #[test]
    fn a_reference_that_is_not_local_is_refused_and_a_local_one_is_fine() {
        let remote = json!({"properties": {"a": {"$ref": "http://127.0.0.1:9/x.json"}}});
        let errors = check_function(Some(&remote), None, &[]);
        assert_eq!(
            fields(&errors),
            ["/input_schema/properties/a/$ref"],
            "{errors:?}"
        );
        let file = json!({"$ref": "file:///etc/passwd"});
        assert_eq!(check_function(None, Some(&file), &[]).len(), 1);
        let local = json!({"$defs": {"n": {"type": "number"}}, "$ref": "#/$defs/n"});
        assert!(check_function(Some(&local), None, &[]).is_empty());
        // A property named `$ref` is a name, not a reference.
        let named = json!({"properties": {"$ref": {"type": "string"}}});
        assert!(check_function(Some(&named), None, &[]).is_empty());
    }

    #[test]
    fn another_draft_is_refused() {
        let errors = check_function(
            Some(&json!({"$schema": "http://json-schema.org/draft-04/schema#"})),
            None,
            &[],
        );
        assert_eq!(fields(&errors), ["/input_schema/$schema"]);
    }

    #[test]
    fn examples_are_checked_against_both_schemas() {
        let examples = [
            FunctionExample {
                input: json!({"n": 1}),
                output: json!(2),
            },
            FunctionExample {
                input: json!({"n": "one"}),
                output: json!("two"),
            },
        ];
        let errors = check_function(
            Some(&json!({"type": "object", "properties": {"n": {"type": "number"}}})),
            Some(&json!({"type": "number"})),
            &examples,
        );
        assert_eq!(
            fields(&errors),
            ["/examples/1/input/n", "/examples/1/output"],
            "{errors:?}"
        );
    }

    #[test]
    fn a_catastrophic_pattern_runs_in_linear_time() {
        let validator = compile(
            &json!({"type": "string", "pattern": "^(a+)+$"}),
            "/input_schema",
            &mut Vec::new(),
        )
        .expect("compiles");
        let hostile = Value::String(format!("{}!", "a".repeat(50_000)));
        let started = std::time::Instant::now();
        let mut errors = Vec::new();
        validate(&validator, &hostile, "/input", &mut errors);
        assert_eq!(fields(&errors), ["/input"]);
        assert!(
            started.elapsed().as_secs_f64() < 1.0,
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_lookaround_pattern_is_refused_by_the_linear_time_engine() {
        let errors = check_function(
            Some(&json!({"type": "string", "pattern": "(?=a)a"})),
            None,
            &[],
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].field.starts_with("/input_schema"), "{errors:?}");
    }

    #[test]
    fn reference_cycles_validate_without_overflowing_and_a_dangling_pointer_is_refused() {
        let instance = json!({"x": [1, {"x": 2}]});
        for schema in [
            json!({"$ref": "#"}),
            json!({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}),
            json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}},
                   "properties": {"x": {"$ref": "#/$defs/a"}}}),
        ] {
            let validator = compile(&schema, "/input_schema", &mut Vec::new()).expect("compiles");
            let mut errors = Vec::new();
            validate(&validator, &instance, "/input", &mut errors);
            assert!(errors.is_empty(), "{schema}: {errors:?}");
        }
        let errors = check_function(Some(&json!({"$ref": "#/nowhere"})), None, &[]);
        assert_eq!(fields(&errors), ["/input_schema"], "{errors:?}");
    }
}
