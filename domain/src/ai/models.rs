//! The AI model aggregate: one `aimodel-<name>` stream per model — registered, updated (a partial change merged into a full, checked configuration), retired.
//!
//! Which model is the default is a fact across models: an event that makes its model the default
//! (`is_default: true` at registration, or an update with `is_default: true`) takes the default
//! from whichever model held it; the command side's `ai_model_catalog` table and the read model apply
//! that rule in the order events commit. An update with `is_default: false` leaves no default;
//! retiring the default leaves none either. A retired model keeps its name for good (requests
//! recorded it), cannot be updated (409) and is not offered to new requests.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ai::config::{ConfigError, ModelConfig, Provider};
use crate::envelope::{DecodeError, DomainEvent, decode_tagged, decode_tagged_json, encode_tagged};
use crate::error::{FieldError, join};
use crate::ids::AI_MODEL_STREAM_PREFIX;
use crate::limits::Limits;

crate::ai::catalog_name!(
    /// A model's name in the catalog (`gpt-4o-mini`, `local`): what requests name with `model`.
    ModelName,
    AI_MODEL_STREAM_PREFIX,
    "ai_model"
);

/// The longest `base_url`, in bytes.
pub const BASE_URL_MAX_BYTES: usize = 2048;

/// The longest `api_key_env`, in bytes.
pub const KEY_ENV_MAX_BYTES: usize = 128;

/// A model as its events describe it. `AiModel::default()` is the state before registration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AiModel {
    pub name: Option<ModelName>,
    pub config: Option<ModelConfig>,
    pub retired: bool,
}

impl AiModel {
    pub fn exists(&self) -> bool {
        self.config.is_some()
    }
}

/// A partial change of a model (`PUT /admin/ai/models/{name}`): `None` keeps a field; for the
/// optional fields `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelPatch {
    pub provider: Option<Provider>,
    pub base_url: Option<String>,
    pub model: Option<String>,
    pub api_key_env: Option<Option<String>>,
    pub api_version: Option<Option<String>>,
    pub input_usd_per_mtok: Option<Decimal>,
    pub output_usd_per_mtok: Option<Decimal>,
    pub max_output_tokens: Option<u32>,
    pub temperature: Option<Option<f64>>,
    pub timeout_ms: Option<Option<u64>>,
    /// `Some(true)`: become the default; `Some(false)`: stop being it.
    pub is_default: Option<bool>,
}

impl ModelPatch {
    /// `config` with this patch's fields in place of its own.
    pub fn merge(&self, config: &ModelConfig) -> ModelConfig {
        let mut next = config.clone();
        if let Some(v) = self.provider {
            next.provider = v;
        }
        if let Some(v) = &self.base_url {
            next.base_url.clone_from(v);
        }
        if let Some(v) = &self.model {
            next.model.clone_from(v);
        }
        if let Some(v) = &self.api_key_env {
            next.api_key_env.clone_from(v);
        }
        if let Some(v) = &self.api_version {
            next.api_version.clone_from(v);
        }
        if let Some(v) = self.input_usd_per_mtok {
            next.input_usd_per_mtok = v;
        }
        if let Some(v) = self.output_usd_per_mtok {
            next.output_usd_per_mtok = v;
        }
        if let Some(v) = self.max_output_tokens {
            next.max_output_tokens = v;
        }
        if let Some(v) = self.temperature {
            next.temperature = v;
        }
        if let Some(v) = self.timeout_ms {
            next.timeout_ms = v;
        }
        next
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RegisterModel {
    pub name: ModelName,
    pub config: ModelConfig,
    pub is_default: bool,
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpdateModel {
    pub patch: ModelPatch,
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetireModel {
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AiModelCommand {
    Register(RegisterModel),
    Update(UpdateModel),
    Retire(RetireModel),
}

/// Facts about a model. They carry the whole configuration (never a key: only the name of the
/// variable holding it), so a reader needs no earlier event to know the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AiModelEvent {
    #[serde(rename = "AiModelRegistered")]
    AiModelRegistered {
        name: ModelName,
        config: ModelConfig,
        is_default: bool,
        #[serde(with = "time::serde::rfc3339")]
        registered_at: OffsetDateTime,
    },
    /// `config` is the whole configuration after the change.
    #[serde(rename = "AiModelUpdated")]
    AiModelUpdated {
        name: ModelName,
        config: ModelConfig,
        /// `true`: the model became the default; `false`: it stopped being it; absent: as before.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_default: Option<bool>,
        #[serde(with = "time::serde::rfc3339")]
        updated_at: OffsetDateTime,
    },
    #[serde(rename = "AiModelRetired")]
    AiModelRetired {
        name: ModelName,
        #[serde(with = "time::serde::rfc3339")]
        retired_at: OffsetDateTime,
    },
}

impl AiModelEvent {
    pub const TYPES: &'static [&'static str] =
        &["AiModelRegistered", "AiModelUpdated", "AiModelRetired"];

    /// Whether the model is the default after this event: `Some(true)` takes the default from
    /// any other model, `Some(false)` leaves it with none, `None` changes nothing.
    pub fn default_after(&self) -> Option<bool> {
        match self {
            AiModelEvent::AiModelRegistered { is_default, .. } => Some(*is_default),
            AiModelEvent::AiModelUpdated { is_default, .. } => *is_default,
            AiModelEvent::AiModelRetired { .. } => Some(false),
        }
    }
}

impl DomainEvent for AiModelEvent {
    fn event_type(&self) -> &'static str {
        match self {
            AiModelEvent::AiModelRegistered { .. } => "AiModelRegistered",
            AiModelEvent::AiModelUpdated { .. } => "AiModelUpdated",
            AiModelEvent::AiModelRetired { .. } => "AiModelRetired",
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
pub enum AiModelError {
    #[error("a model with this name exists already (a retired model keeps its name)")]
    AlreadyExists,
    #[error("no such model")]
    NotFound,
    #[error("the model is retired; register a model under a new name")]
    Retired,
    #[error("invalid model: {}", join(.0))]
    Validation(Vec<FieldError>),
}

/// Every problem of `config`, each at the pointer of its field.
pub fn config_problems(config: &ModelConfig) -> Vec<FieldError> {
    let mut problems = Vec::new();
    if config.base_url.len() > BASE_URL_MAX_BYTES {
        problems.push(FieldError::new(
            "/base_url",
            format!("must be at most {BASE_URL_MAX_BYTES} bytes"),
        ));
        return problems;
    }
    if config
        .api_key_env
        .as_ref()
        .is_some_and(|env| env.len() > KEY_ENV_MAX_BYTES)
    {
        problems.push(FieldError::new(
            "/api_key_env",
            format!("must be at most {KEY_ENV_MAX_BYTES} bytes"),
        ));
        return problems;
    }
    match url::Url::parse(&config.base_url) {
        Ok(url) if !matches!(url.scheme(), "http" | "https") => {
            problems.push(FieldError::new("/base_url", "must be an http or https URL"))
        }
        _ => {}
    }
    if !problems.is_empty() {
        return problems;
    }
    if let Err(e) = config.validate() {
        let field = match &e {
            ConfigError::BaseUrl(_) | ConfigError::BaseUrlParts => "/base_url",
            ConfigError::Model => "/model",
            ConfigError::KeyEnv => "/api_key_env",
            ConfigError::ApiVersionMissing | ConfigError::ApiVersion => "/api_version",
            ConfigError::Price { field, .. } => {
                if *field == "input_usd_per_mtok" {
                    "/input_usd_per_mtok"
                } else {
                    "/output_usd_per_mtok"
                }
            }
            ConfigError::MaxOutputTokens => "/max_output_tokens",
            ConfigError::Temperature => "/temperature",
            ConfigError::Timeout => "/timeout_ms",
        };
        problems.push(FieldError::new(field, e.to_string()));
    }
    problems
}

fn checked(config: &ModelConfig) -> Result<(), AiModelError> {
    let problems = config_problems(config);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(AiModelError::Validation(problems))
    }
}

impl crate::Decider for AiModel {
    type Command = AiModelCommand;
    type Event = AiModelEvent;
    type Error = AiModelError;

    fn decide(
        &self,
        command: &AiModelCommand,
        _limits: &Limits,
    ) -> Result<Vec<AiModelEvent>, AiModelError> {
        match command {
            AiModelCommand::Register(RegisterModel {
                name,
                config,
                is_default,
                at,
            }) => {
                if self.exists() {
                    return Err(AiModelError::AlreadyExists);
                }
                checked(config)?;
                Ok(vec![AiModelEvent::AiModelRegistered {
                    name: name.clone(),
                    config: config.clone(),
                    is_default: *is_default,
                    registered_at: *at,
                }])
            }
            AiModelCommand::Update(UpdateModel { patch, at }) => {
                let (Some(name), Some(current)) = (&self.name, &self.config) else {
                    return Err(AiModelError::NotFound);
                };
                if self.retired {
                    return Err(AiModelError::Retired);
                }
                let config = patch.merge(current);
                checked(&config)?;
                if config == *current && patch.is_default.is_none() {
                    return Ok(vec![]);
                }
                Ok(vec![AiModelEvent::AiModelUpdated {
                    name: name.clone(),
                    config,
                    is_default: patch.is_default,
                    updated_at: *at,
                }])
            }
            AiModelCommand::Retire(RetireModel { at }) => {
                let Some(name) = &self.name else {
                    return Err(AiModelError::NotFound);
                };
                if self.retired {
                    return Ok(vec![]);
                }
                Ok(vec![AiModelEvent::AiModelRetired {
                    name: name.clone(),
                    retired_at: *at,
                }])
            }
        }
    }

    fn evolve(&mut self, event: &AiModelEvent) {
        match event {
            AiModelEvent::AiModelRegistered { name, config, .. } => {
                self.name = Some(name.clone());
                self.config = Some(config.clone());
            }
            AiModelEvent::AiModelUpdated { config, .. } => {
                self.config = Some(config.clone());
            }
            AiModelEvent::AiModelRetired { .. } => self.retired = true,
        }
    }
}

impl crate::ProjectOwned for AiModel {
    fn project_id(&self) -> Option<crate::ids::ProjectId> {
        None
    }
}

impl crate::testing::EventOf for AiModelEvent {
    type Decider = AiModel;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{given, given_nothing, t, t0};
    use serde_json::json;

    fn name() -> ModelName {
        ModelName::parse("gpt-mini").unwrap()
    }

    fn config() -> ModelConfig {
        serde_json::from_value(json!({
            "provider": "openai", "base_url": "https://api.openai.com/v1", "model": "gpt-4o-mini",
            "api_key_env": "BACKFORGE_AI_KEY_OPENAI",
            "input_usd_per_mtok": "0.000150", "output_usd_per_mtok": 0.6, "max_output_tokens": 4096
        }))
        .unwrap()
    }

    fn registered() -> AiModelEvent {
        AiModelEvent::AiModelRegistered {
            name: name(),
            config: config(),
            is_default: true,
            registered_at: t0(),
        }
    }

    fn register(config: ModelConfig) -> AiModelCommand {
        AiModelCommand::Register(RegisterModel {
            name: name(),
            config,
            is_default: true,
            at: t0(),
        })
    }

    fn update(patch: ModelPatch) -> AiModelCommand {
        AiModelCommand::Update(UpdateModel { patch, at: t(1) })
    }

    #[test]
    fn registering_a_model_records_its_whole_configuration() {
        let model = given_nothing::<AiModel>()
            .when(register(config()))
            .then([registered()]);
        assert!(model.exists());
        assert_eq!(model.name, Some(name()));
    }

    #[test]
    fn a_name_is_registered_once_even_after_retirement() {
        given([registered()])
            .when(register(config()))
            .then_err(AiModelError::AlreadyExists);
        given([
            registered(),
            AiModelEvent::AiModelRetired {
                name: name(),
                retired_at: t(1),
            },
        ])
        .when(register(config()))
        .then_err(AiModelError::AlreadyExists);
    }

    #[test]
    fn an_invalid_configuration_is_refused_at_its_fields_pointer() {
        let mut bad = config();
        bad.api_key_env = Some("OPENAI_API_KEY".into());
        let Err(AiModelError::Validation(problems)) =
            given_nothing::<AiModel>().when(register(bad)).outcome()
        else {
            panic!("not refused")
        };
        assert_eq!(problems[0].field, "/api_key_env");
        let mut ftp = config();
        ftp.base_url = "ftp://files.example".into();
        let Err(AiModelError::Validation(problems)) =
            given_nothing::<AiModel>().when(register(ftp)).outcome()
        else {
            panic!("not refused")
        };
        assert_eq!(problems[0].field, "/base_url");
    }

    #[test]
    fn an_update_merges_the_given_fields_into_the_whole_configuration() {
        let patch = ModelPatch {
            model: Some("gpt-4o".into()),
            temperature: Some(Some(0.2)),
            api_key_env: Some(None),
            ..ModelPatch::default()
        };
        let mut expected = config();
        expected.model = "gpt-4o".into();
        expected.temperature = Some(0.2);
        expected.api_key_env = None;
        given([registered()])
            .when(update(patch))
            .then([AiModelEvent::AiModelUpdated {
                name: name(),
                config: expected,
                is_default: None,
                updated_at: t(1),
            }]);
    }

    #[test]
    fn an_update_that_breaks_a_rule_is_refused_and_one_that_changes_nothing_records_nothing() {
        let Err(AiModelError::Validation(problems)) = given([registered()])
            .when(update(ModelPatch {
                max_output_tokens: Some(0),
                ..ModelPatch::default()
            }))
            .outcome()
        else {
            panic!("not refused")
        };
        assert_eq!(problems[0].field, "/max_output_tokens");
        given([registered()])
            .when(update(ModelPatch {
                model: Some("gpt-4o-mini".into()),
                ..ModelPatch::default()
            }))
            .then_nothing();
    }

    #[test]
    fn making_a_model_the_default_is_recorded_even_when_nothing_else_changes() {
        let event = given([registered()])
            .when(update(ModelPatch {
                is_default: Some(true),
                ..ModelPatch::default()
            }))
            .outcome()
            .unwrap();
        assert_eq!(event.len(), 1);
        assert_eq!(event[0].default_after(), Some(true));
    }

    #[test]
    fn unknown_and_retired_models_cannot_be_updated_and_retiring_twice_changes_nothing() {
        given_nothing::<AiModel>()
            .when(update(ModelPatch::default()))
            .then_err(AiModelError::NotFound);
        given_nothing::<AiModel>()
            .when(AiModelCommand::Retire(RetireModel { at: t0() }))
            .then_err(AiModelError::NotFound);
        let retired = AiModelEvent::AiModelRetired {
            name: name(),
            retired_at: t(1),
        };
        assert_eq!(retired.default_after(), Some(false));
        let model = given([registered()])
            .when(AiModelCommand::Retire(RetireModel { at: t(1) }))
            .then([retired.clone()]);
        assert!(model.retired);
        given([registered(), retired.clone()])
            .when(update(ModelPatch {
                model: Some("x".into()),
                ..ModelPatch::default()
            }))
            .then_err(AiModelError::Retired);
        given([registered(), retired])
            .when(AiModelCommand::Retire(RetireModel { at: t(2) }))
            .then_nothing();
    }

    #[test]
    fn prices_are_stored_as_exact_decimal_strings() {
        let data = registered().to_data();
        // Exact, in the decimal's shortest spelling (`0.000150` is `0.00015`), never a float.
        assert_eq!(data["config"]["input_usd_per_mtok"], json!("0.00015"));
        assert_eq!(data["config"]["output_usd_per_mtok"], json!("0.6"));
        let text = data.to_string();
        assert_eq!(
            AiModelEvent::from_json("AiModelRegistered", &text).unwrap(),
            registered()
        );
    }

    #[test]
    fn names_are_short_lower_case_slugs_and_streams_are_named_by_them() {
        assert!(ModelName::parse("gpt-4o_mini-2").is_ok());
        for bad in ["", "GPT", "a.b", "a b", "ä", &"a".repeat(65)] {
            assert_eq!(ModelName::parse(bad).unwrap_err().field, "/name", "{bad}");
        }
        assert!(ModelName::parse(&"a".repeat(64)).is_ok());
        assert_eq!(name().stream(), "aimodel-gpt-mini");
        assert_eq!(ModelName::from_stream("aimodel-gpt-mini"), Some(name()));
        assert_eq!(ModelName::from_stream("prompt-gpt-mini"), None);
        assert_eq!(ModelName::from_stream("aimodel-Bad"), None);
        assert!(serde_json::from_value::<ModelName>(json!("Bad")).is_err());
    }
}
