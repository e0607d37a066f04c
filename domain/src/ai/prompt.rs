//! Prompt templates: purposes, the variables a template may use, the write-time check, rendering with fuel, and the built-in defaults.
//!
//! A prompt is two MiniJinja templates, `system` and `template` (the user message). Both are
//! checked when written: each parses, uses no variable beyond [`VARIABLES`], and is at most
//! [`MAX_PROMPT_CHARS`] characters. The user's text only ever arrives as the `prompt` variable,
//! never as template source. Rendering is bounded by fuel and refuses undefined values (every
//! variable is always passed, `none` when it does not apply), and the environment has no loader,
//! includes or macros, so a template is one self-contained text.

use std::collections::BTreeSet;

use minijinja::{Environment, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};

use crate::error::FieldError;

/// What a prompt is for: the kind of AI request it serves (one type, so the two cannot drift).
pub type Purpose = super::request::AiRequestKind;

/// Every variable a template may use (docs/api.md, "Prompt templates"): the project's state, the
/// specification if one was given, the schema language's rules, the user's text, the feature
/// (enhance) or function (code) worked on, and the previous attempt's errors (a repair).
pub const VARIABLES: [&str; 7] = [
    "project",
    "spec",
    "schema_language",
    "prompt",
    "feature",
    "function",
    "errors",
];

/// The longest `system` or `template`, in characters.
pub const MAX_PROMPT_CHARS: usize = 8_000;

/// The instructions one rendering may run: far above what the built-ins need for a project at
/// its size limit, and a bound on a template that loops.
pub const RENDER_FUEL: u64 = 500_000;

/// The schema language's rules, the `schema_language` variable of every prompt.
pub const SCHEMA_LANGUAGE: &str = include_str!("prompts/schema_language.txt");

/// The longest rendered text, in bytes (a loop that stays under the fuel can still write much).
pub const MAX_RENDERED_BYTES: usize = 4 * 1024 * 1024;

/// The prefix of a built-in prompt's name. Admin names are slugs without a `.`, so none can
/// collide with a built-in.
pub const BUILTIN_PREFIX: &str = "builtin.";

/// Which prompt, at which version, an AI request used (built-ins are `builtin.<purpose>`,
/// version 1 for this build's texts).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PromptRef {
    pub name: String,
    pub version: u32,
}

/// One prompt ready to render: an admin's template at one version, or a built-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    pub name: String,
    pub version: u32,
    pub purpose: Purpose,
    pub system: String,
    pub template: String,
}

impl Prompt {
    pub fn reference(&self) -> PromptRef {
        PromptRef {
            name: self.name.clone(),
            version: self.version,
        }
    }

    pub fn is_builtin(&self) -> bool {
        self.name.starts_with(BUILTIN_PREFIX)
    }
}

/// The built-in prompt of `purpose`, shipped with the binary: used when no admin prompt of that
/// purpose exists.
pub fn builtin(purpose: Purpose) -> Prompt {
    let (system, template) = match purpose {
        Purpose::GenerateConfig => (
            include_str!("prompts/generate_config.system.j2"),
            include_str!("prompts/generate_config.j2"),
        ),
        Purpose::EnhanceConfig => (
            include_str!("prompts/enhance_config.system.j2"),
            include_str!("prompts/enhance_config.j2"),
        ),
        Purpose::GenerateCode => (
            include_str!("prompts/generate_code.system.j2"),
            include_str!("prompts/generate_code.j2"),
        ),
    };
    Prompt {
        name: format!("{BUILTIN_PREFIX}{}", purpose.as_str()),
        version: 1,
        purpose,
        system: system.to_owned(),
        template: template.to_owned(),
    }
}

/// The values a prompt is rendered with. Absent ones render as `none` (`{% if spec %}` is
/// false), so a strict template never meets an undefined variable it was allowed to use.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PromptInput {
    pub project: serde_json::Value,
    pub spec: Option<serde_json::Value>,
    pub schema_language: String,
    pub prompt: Option<String>,
    pub feature: Option<serde_json::Value>,
    pub function: Option<serde_json::Value>,
    pub errors: Option<Vec<String>>,
}

/// A rendered prompt: the system message and the user message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rendered {
    pub system: String,
    pub user: String,
}

/// Why a prompt could not be rendered (a stored template can still fail on its data: a loop
/// out of fuel, a filter on the wrong type, an attribute the value lacks).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the prompt's {part} cannot be rendered: {reason}")]
pub struct RenderError {
    /// `system` or `template`.
    pub part: &'static str,
    pub reason: String,
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(RENDER_FUEL));
    env.set_recursion_limit(64);
    env
}

/// The names a template may use besides [`VARIABLES`]: the environment's own globals
/// (`range`, `dict`, `namespace`, ...).
fn globals(env: &Environment<'_>) -> BTreeSet<String> {
    env.globals().map(|(name, _)| name.to_owned()).collect()
}

/// Checks one template as written: at most [`MAX_PROMPT_CHARS`], parses, and uses only
/// [`VARIABLES`]. `field` is the JSON Pointer problems are reported at.
pub fn check_template(source: &str, field: &str) -> Vec<FieldError> {
    let chars = source.chars().count();
    if chars > MAX_PROMPT_CHARS {
        return vec![FieldError::new(
            field,
            format!("must be at most {MAX_PROMPT_CHARS} characters (it has {chars})"),
        )];
    }
    let env = environment();
    let template = match env.template_from_str(source) {
        Ok(template) => template,
        Err(e) => {
            return vec![FieldError::new(
                field,
                format!("is not a valid template: {}", describe(&e)),
            )];
        }
    };
    let known = globals(&env);
    let mut unknown: Vec<String> = template
        .undeclared_variables(false)
        .into_iter()
        .filter(|name| !VARIABLES.contains(&name.as_str()) && !known.contains(name))
        .collect();
    unknown.sort();
    unknown
        .into_iter()
        .map(|name| {
            FieldError::new(
                field,
                format!(
                    "uses the variable `{}`, which is not one of {}",
                    name.chars().take(64).collect::<String>(),
                    VARIABLES.join(", ")
                ),
            )
        })
        .collect()
}

/// Checks a prompt's `system` (at `/system`) and `template` (at `/template`); the template may
/// not be blank.
pub fn check(system: &str, template: &str) -> Vec<FieldError> {
    let mut errors = check_template(system, "/system");
    if template.trim().is_empty() {
        errors.push(FieldError::new("/template", "must not be empty"));
    } else {
        errors.extend(check_template(template, "/template"));
    }
    errors
}

/// A MiniJinja error as one line: its kind, detail and line (no template name: there is none).
fn describe(e: &minijinja::Error) -> String {
    let mut text = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    if let Some(line) = e.line() {
        text.push_str(&format!(" (line {line})"));
    }
    text
}

/// Renders `prompt` with `input`: both templates, with fuel, strict about undefined values.
pub fn render(prompt: &Prompt, input: &PromptInput) -> Result<Rendered, RenderError> {
    let env = environment();
    let context = Value::from(minijinja::value::Serde(input));
    let one = |part: &'static str, source: &str| -> Result<String, RenderError> {
        let fail = |reason: String| RenderError { part, reason };
        let template = env
            .template_from_str(source)
            .map_err(|e| fail(describe(&e)))?;
        let text = template
            .render(context.clone())
            .map_err(|e| fail(describe(&e)))?;
        if text.len() > MAX_RENDERED_BYTES {
            return Err(fail(format!(
                "it renders to {} bytes, over the limit of {MAX_RENDERED_BYTES}",
                text.len()
            )));
        }
        Ok(text)
    };
    Ok(Rendered {
        system: one("system", &prompt.system)?,
        user: one("template", &prompt.template)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input() -> PromptInput {
        PromptInput {
            project: json!({"name": "Shop", "features": []}),
            schema_language: "entities have fields".into(),
            prompt: Some("orders and {{ customers }}".into()),
            ..PromptInput::default()
        }
    }

    #[test]
    fn every_builtin_passes_the_write_time_check_and_renders() {
        for purpose in Purpose::ALL {
            // Given the built-in of a purpose
            let prompt = builtin(purpose);
            // Then it is what an admin could have written
            assert_eq!(check(&prompt.system, &prompt.template), vec![]);
            assert_eq!(prompt.name, format!("builtin.{purpose}"));
            assert_eq!(prompt.version, 1);
            // And it renders with every optional variable absent and present
            let bare = render(&prompt, &input()).unwrap();
            let full = render(
                &prompt,
                &PromptInput {
                    spec: Some(json!({"goal": "x"})),
                    feature: Some(json!({"name": "F"})),
                    function: Some(json!({"name": "f"})),
                    errors: Some(vec!["/features/0/name: taken".into()]),
                    ..input()
                },
            )
            .unwrap();
            assert!(full.user.contains("/features/0/name: taken"), "{purpose}");
            assert!(!bare.user.contains("previous answer"), "{purpose}");
        }
    }

    #[test]
    fn the_users_text_is_a_value_never_template_source() {
        // Given a user's text that looks like a template
        let rendered = render(&builtin(Purpose::GenerateConfig), &input()).unwrap();
        // Then it arrives as written, quoted, not evaluated
        assert!(rendered.user.contains(r#""orders and {{ customers }}""#));
        assert!(rendered.system.contains("entities have fields"));
    }

    #[test]
    fn a_template_that_does_not_parse_is_refused_at_its_pointer() {
        let errors = check("fine", "{% for x in project %}no end");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "/template");
        assert!(
            errors[0].message.contains("not a valid template"),
            "{errors:?}"
        );
    }

    #[test]
    fn a_template_using_another_variable_is_refused_naming_it() {
        let errors = check("{{ secrets }}", "{{ prompt }} {{ env.HOME }}");
        let found: Vec<(&str, bool)> = errors
            .iter()
            .map(|e| {
                (
                    e.field.as_str(),
                    e.message.contains("`secrets`") || e.message.contains("`env`"),
                )
            })
            .collect();
        assert_eq!(found, vec![("/system", true), ("/template", true)]);
    }

    #[test]
    fn variables_set_in_the_template_loops_and_globals_are_not_unknown() {
        let source = "{% set n = namespace(c=0) %}{% for f in project.features %}{{ loop.index }}{{ f.name }}{% endfor %}{% for i in range(3) %}{{ i }}{% endfor %}{{ n.c }}";
        assert_eq!(check("", source), vec![]);
    }

    #[test]
    fn includes_imports_and_macros_are_not_available() {
        for source in [
            "{% include 'x' %}",
            "{% extends 'x' %}",
            "{% import 'x' as y %}",
            "{% macro m() %}x{% endmacro %}",
        ] {
            assert!(!check("", source).is_empty(), "{source}");
        }
    }

    #[test]
    fn a_template_over_8000_characters_is_refused_and_8000_is_accepted() {
        let at_limit = "é".repeat(MAX_PROMPT_CHARS);
        assert_eq!(check(&at_limit, &at_limit), vec![]);
        let over = "é".repeat(MAX_PROMPT_CHARS + 1);
        let errors = check(&over, "{{ prompt }}");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "/system");
        assert!(errors[0].message.contains("8000"));
    }

    #[test]
    fn an_empty_template_is_refused_but_an_empty_system_is_not() {
        assert_eq!(check("", "{{ prompt }}"), vec![]);
        assert_eq!(check("", "  ")[0].field, "/template");
    }

    #[test]
    fn a_runaway_loop_runs_out_of_fuel_instead_of_hanging() {
        let prompt = Prompt {
            name: "loop".into(),
            version: 1,
            purpose: Purpose::GenerateConfig,
            system: String::new(),
            template:
                "{% for a in range(10000) %}{% for b in range(10000) %}x{% endfor %}{% endfor %}"
                    .into(),
        };
        assert_eq!(check(&prompt.system, &prompt.template), vec![]);
        let error = render(&prompt, &input()).unwrap_err();
        assert_eq!(error.part, "template");
    }

    #[test]
    fn an_attribute_a_value_lacks_is_a_render_error_not_an_empty_string() {
        let prompt = Prompt {
            template: "{{ project.no_such_member }}".into(),
            ..builtin(Purpose::GenerateConfig)
        };
        let error = render(&prompt, &input()).unwrap_err();
        assert_eq!(error.part, "template");
    }

    #[test]
    fn purposes_have_stable_names() {
        for purpose in Purpose::ALL {
            assert_eq!(Purpose::parse(purpose.as_str()), Some(purpose));
            assert_eq!(
                serde_json::to_value(purpose).unwrap(),
                json!(purpose.as_str())
            );
        }
        assert_eq!(Purpose::parse("other"), None);
    }
}
