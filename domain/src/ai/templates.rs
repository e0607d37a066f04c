//! The prompt template aggregate: one `prompt-<name>` stream per template — created at version 1 with its purpose, each revision the next version.
//!
//! Both texts are checked when written ([`crate::ai::prompt::check`]). A template's purpose is
//! fixed at creation. Which prompt a request of a purpose uses is decided across templates: the
//! one of that purpose whose latest version was written last, else the built-in
//! ([`crate::ai::prompt::builtin`]); the command side keeps the versions to decide it.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ai::prompt::{self, Prompt, Purpose};
use crate::envelope::{DecodeError, DomainEvent, decode_tagged, decode_tagged_json, encode_tagged};
use crate::error::{FieldError, join};
use crate::ids::PROMPT_STREAM_PREFIX;
use crate::limits::Limits;

crate::ai::catalog_name!(
    /// A prompt template's name in the catalog.
    PromptName,
    PROMPT_STREAM_PREFIX,
    "prompt_template"
);

/// A template as its events describe it, at its latest version. `default()` is the state
/// before creation (version 0).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptTemplate {
    pub name: Option<PromptName>,
    pub purpose: Option<Purpose>,
    pub version: u32,
    pub system: String,
    pub template: String,
}

impl PromptTemplate {
    pub fn exists(&self) -> bool {
        self.version > 0
    }

    /// The latest version, ready to render.
    pub fn prompt(&self) -> Option<Prompt> {
        Some(Prompt {
            name: self.name.as_ref()?.to_string(),
            version: self.version,
            purpose: self.purpose?,
            system: self.system.clone(),
            template: self.template.clone(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatePrompt {
    pub name: PromptName,
    pub purpose: Purpose,
    pub system: String,
    pub template: String,
    pub at: OffsetDateTime,
}

/// A new version: both texts, whole. `purpose`, when given, must be the template's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisePrompt {
    pub purpose: Option<Purpose>,
    pub system: String,
    pub template: String,
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptCommand {
    Create(CreatePrompt),
    Revise(RevisePrompt),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PromptEvent {
    #[serde(rename = "PromptTemplateCreated")]
    PromptTemplateCreated {
        name: PromptName,
        purpose: Purpose,
        /// Always 1.
        version: u32,
        system: String,
        template: String,
        #[serde(with = "time::serde::rfc3339")]
        created_at: OffsetDateTime,
    },
    #[serde(rename = "PromptTemplateRevised")]
    PromptTemplateRevised {
        name: PromptName,
        version: u32,
        system: String,
        template: String,
        #[serde(with = "time::serde::rfc3339")]
        revised_at: OffsetDateTime,
    },
}

impl PromptEvent {
    pub const TYPES: &'static [&'static str] = &["PromptTemplateCreated", "PromptTemplateRevised"];
}

impl DomainEvent for PromptEvent {
    fn event_type(&self) -> &'static str {
        match self {
            PromptEvent::PromptTemplateCreated { .. } => "PromptTemplateCreated",
            PromptEvent::PromptTemplateRevised { .. } => "PromptTemplateRevised",
        }
    }

    fn schema_version(&self) -> u32 {
        1
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
pub enum PromptError {
    #[error("a prompt template with this name exists already")]
    AlreadyExists,
    #[error("no such prompt template")]
    NotFound,
    #[error("invalid prompt template: {}", join(.0))]
    Validation(Vec<FieldError>),
}

fn checked(system: &str, template: &str) -> Result<(), PromptError> {
    let problems = prompt::check(system, template);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(PromptError::Validation(problems))
    }
}

impl crate::Decider for PromptTemplate {
    type Command = PromptCommand;
    type Event = PromptEvent;
    type Error = PromptError;

    fn decide(
        &self,
        command: &PromptCommand,
        _limits: &Limits,
    ) -> Result<Vec<PromptEvent>, PromptError> {
        match command {
            PromptCommand::Create(CreatePrompt {
                name,
                purpose,
                system,
                template,
                at,
            }) => {
                if self.exists() {
                    return Err(PromptError::AlreadyExists);
                }
                checked(system, template)?;
                Ok(vec![PromptEvent::PromptTemplateCreated {
                    name: name.clone(),
                    purpose: *purpose,
                    version: 1,
                    system: system.clone(),
                    template: template.clone(),
                    created_at: *at,
                }])
            }
            PromptCommand::Revise(RevisePrompt {
                purpose,
                system,
                template,
                at,
            }) => {
                let Some(name) = &self.name else {
                    return Err(PromptError::NotFound);
                };
                let mut problems = Vec::new();
                if let Some(purpose) = purpose
                    && Some(*purpose) != self.purpose
                {
                    problems.push(FieldError::new(
                        "/purpose",
                        "a template keeps the purpose it was created with; create another template",
                    ));
                }
                problems.extend(prompt::check(system, template));
                if !problems.is_empty() {
                    return Err(PromptError::Validation(problems));
                }
                if *system == self.system && *template == self.template {
                    return Ok(vec![]);
                }
                Ok(vec![PromptEvent::PromptTemplateRevised {
                    name: name.clone(),
                    version: self.version + 1,
                    system: system.clone(),
                    template: template.clone(),
                    revised_at: *at,
                }])
            }
        }
    }

    fn evolve(&mut self, event: &PromptEvent) {
        match event {
            PromptEvent::PromptTemplateCreated {
                name,
                purpose,
                version,
                system,
                template,
                ..
            } => {
                self.name = Some(name.clone());
                self.purpose = Some(*purpose);
                self.version = *version;
                self.system.clone_from(system);
                self.template.clone_from(template);
            }
            PromptEvent::PromptTemplateRevised {
                version,
                system,
                template,
                ..
            } => {
                self.version = *version;
                self.system.clone_from(system);
                self.template.clone_from(template);
            }
        }
    }
}

impl crate::ProjectOwned for PromptTemplate {
    fn project_id(&self) -> Option<crate::ids::ProjectId> {
        None
    }
}

impl crate::testing::EventOf for PromptEvent {
    type Decider = PromptTemplate;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{given, given_nothing, t, t0};

    fn name() -> PromptName {
        PromptName::parse("shop-config").unwrap()
    }

    fn create(template: &str) -> PromptCommand {
        PromptCommand::Create(CreatePrompt {
            name: name(),
            purpose: Purpose::GenerateConfig,
            system: "You design backends. {{ schema_language }}".into(),
            template: template.into(),
            at: t0(),
        })
    }

    fn created() -> PromptEvent {
        PromptEvent::PromptTemplateCreated {
            name: name(),
            purpose: Purpose::GenerateConfig,
            version: 1,
            system: "You design backends. {{ schema_language }}".into(),
            template: "{{ prompt }}".into(),
            created_at: t0(),
        }
    }

    fn revise(purpose: Option<Purpose>, template: &str) -> PromptCommand {
        PromptCommand::Revise(RevisePrompt {
            purpose,
            system: "You design backends. {{ schema_language }}".into(),
            template: template.into(),
            at: t(1),
        })
    }

    #[test]
    fn creating_a_template_records_version_one() {
        let state = given_nothing::<PromptTemplate>()
            .when(create("{{ prompt }}"))
            .then([created()]);
        let prompt = state.prompt().unwrap();
        assert_eq!((prompt.name.as_str(), prompt.version), ("shop-config", 1));
    }

    #[test]
    fn a_second_creation_of_the_name_is_refused() {
        given([created()])
            .when(create("{{ prompt }}"))
            .then_err(PromptError::AlreadyExists);
    }

    #[test]
    fn a_revision_is_the_next_version_and_an_identical_one_records_nothing() {
        let state = given([created()])
            .when(revise(None, "{{ prompt }} for {{ project.name }}"))
            .then([PromptEvent::PromptTemplateRevised {
                name: name(),
                version: 2,
                system: "You design backends. {{ schema_language }}".into(),
                template: "{{ prompt }} for {{ project.name }}".into(),
                revised_at: t(1),
            }]);
        assert_eq!(state.version, 2);
        given([created()])
            .when(revise(Some(Purpose::GenerateConfig), "{{ prompt }}"))
            .then_nothing();
    }

    #[test]
    fn a_revision_cannot_change_the_purpose_or_name_an_unknown_template() {
        given([created()])
            .when(revise(Some(Purpose::GenerateCode), "{{ prompt }}"))
            .then_err(PromptError::Validation(vec![FieldError::new(
                "/purpose",
                "a template keeps the purpose it was created with; create another template",
            )]));
        given_nothing::<PromptTemplate>()
            .when(revise(None, "{{ prompt }}"))
            .then_err(PromptError::NotFound);
    }

    #[test]
    fn a_template_that_does_not_parse_or_uses_another_variable_is_refused() {
        for bad in ["{% if prompt %}", "{{ password }}"] {
            let outcome = given_nothing::<PromptTemplate>()
                .when(create(bad))
                .outcome();
            let Err(PromptError::Validation(problems)) = outcome else {
                panic!("{bad}: not refused")
            };
            assert_eq!(problems[0].field, "/template", "{bad}");
        }
        let outcome = given([created()])
            .when(revise(None, &"x".repeat(8001)))
            .outcome();
        assert!(matches!(outcome, Err(PromptError::Validation(_))));
    }

    #[test]
    fn template_events_round_trip_under_stable_names() {
        let data = created().to_data();
        assert_eq!(data["purpose"], "generate_config");
        assert_eq!(
            PromptEvent::from_json("PromptTemplateCreated", &data.to_string()).unwrap(),
            created()
        );
        assert_eq!(name().stream(), "prompt-shop-config");
    }
}
