//! A model's configuration (provider, URL, key variable, prices, limits) and its rules.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use url::Url;

use super::money::{self, PriceError};

/// The prefix every model's `api_key_env` carries.
pub const KEY_ENV_PREFIX: &str = "BACKFORGE_AI_KEY_";

/// The bootstrap default model's key variable, exempt from the prefix rule.
pub const BOOTSTRAP_KEY_ENV: &str = "BACKFORGE_AI_API_KEY";

/// Whether `name` may name a key variable: `BACKFORGE_AI_API_KEY`, or `BACKFORGE_AI_KEY_`
/// followed by upper-case letters, digits and underscores.
pub fn valid_key_env(name: &str) -> bool {
    if name == BOOTSTRAP_KEY_ENV {
        return true;
    }
    match name.strip_prefix(KEY_ENV_PREFIX) {
        Some(rest) => {
            !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        }
        None => false,
    }
}

/// The wire format a model speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// OpenAI Chat Completions, also spoken by Ollama, vLLM, llama.cpp's server, LM Studio and
    /// OpenRouter: `POST {base_url}/chat/completions`, `Authorization: Bearer`.
    Openai,
    /// Azure OpenAI: `POST {base_url}/openai/deployments/{model}/chat/completions?api-version=…`,
    /// `api-key`.
    AzureOpenai,
    /// Anthropic Messages: `POST {base_url}/v1/messages`, `x-api-key`, `anthropic-version`.
    Anthropic,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::AzureOpenai => "azure_openai",
            Self::Anthropic => "anthropic",
        }
    }
}

/// The `anthropic-version` header every Messages call carries.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// A call's timeout when the model names none.
pub const DEFAULT_TIMEOUT_MS: u64 = 120_000;

/// The longest timeout a model may name (10 minutes).
pub const MAX_TIMEOUT_MS: u64 = 600_000;

/// The most output tokens a model may allow per answer.
pub const MAX_OUTPUT_TOKENS: u32 = 1_000_000;

/// One model: everything a call needs except the key, which is read from `api_key_env` at call
/// time. Serde-friendly (prices are decimal strings when written, numbers or strings when read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub provider: Provider,
    /// `https://api.openai.com/v1`, `http://localhost:11434/v1` (Ollama),
    /// `https://<resource>.openai.azure.com`, `https://api.anthropic.com`.
    pub base_url: String,
    /// The provider's model name (Azure: the deployment name).
    pub model: String,
    /// The environment variable holding the key (`BACKFORGE_AI_KEY_…`, or the bootstrap
    /// `BACKFORGE_AI_API_KEY`); none for a server that takes no key (a local Ollama).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Azure's `api-version` (required there, unused elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(with = "money::price")]
    pub input_usd_per_mtok: Decimal,
    #[serde(with = "money::price")]
    pub output_usd_per_mtok: Decimal,
    pub max_output_tokens: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// Why a model's configuration cannot be used. Messages name fields, never a key's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("base_url is not a URL: {0}")]
    BaseUrl(String),
    #[error("base_url may carry no user, password, query or fragment")]
    BaseUrlParts,
    #[error("model is 1 to 200 bytes of printable characters")]
    Model,
    #[error(
        "api_key_env names an environment variable starting with BACKFORGE_AI_KEY_ (upper-case letters, digits, `_`), or BACKFORGE_AI_API_KEY"
    )]
    KeyEnv,
    #[error("azure_openai needs api_version")]
    ApiVersionMissing,
    #[error("api_version is 1 to 40 letters, digits, `-` or `.`")]
    ApiVersion,
    #[error("{field}: {error}")]
    Price {
        field: &'static str,
        error: PriceError,
    },
    #[error("max_output_tokens is 1 to 1000000")]
    MaxOutputTokens,
    #[error("temperature is between 0 and 2")]
    Temperature,
    #[error("timeout_ms is 1 to 600000")]
    Timeout,
}

impl ModelConfig {
    /// Every rule a stored model must meet (prices are checked again, as written values may come
    /// from code rather than from JSON).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = Url::parse(&self.base_url).map_err(|e| ConfigError::BaseUrl(e.to_string()))?;
        if !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(ConfigError::BaseUrlParts);
        }
        if self.model.is_empty()
            || self.model.len() > 200
            || self.model.chars().any(char::is_control)
        {
            return Err(ConfigError::Model);
        }
        if let Some(env) = &self.api_key_env
            && !valid_key_env(env)
        {
            return Err(ConfigError::KeyEnv);
        }
        match (&self.api_version, self.provider) {
            (None, Provider::AzureOpenai) => return Err(ConfigError::ApiVersionMissing),
            (Some(v), _)
                if v.is_empty()
                    || v.len() > 40
                    || !v
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') =>
            {
                return Err(ConfigError::ApiVersion);
            }
            _ => {}
        }
        for (field, price) in [
            ("input_usd_per_mtok", self.input_usd_per_mtok),
            ("output_usd_per_mtok", self.output_usd_per_mtok),
        ] {
            money::parse_price(&price.to_string())
                .map_err(|error| ConfigError::Price { field, error })?;
        }
        if self.max_output_tokens == 0 || self.max_output_tokens > MAX_OUTPUT_TOKENS {
            return Err(ConfigError::MaxOutputTokens);
        }
        if let Some(t) = self.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(ConfigError::Temperature);
        }
        if let Some(ms) = self.timeout_ms
            && (ms == 0 || ms > MAX_TIMEOUT_MS)
        {
            return Err(ConfigError::Timeout);
        }
        Ok(())
    }

    /// The call's timeout.
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS))
    }

    /// The URL this model's calls are posted to.
    pub fn endpoint(&self) -> Result<Url, ConfigError> {
        let base = self.base_url.trim_end_matches('/');
        let text = match self.provider {
            Provider::Openai => format!("{base}/chat/completions"),
            Provider::Anthropic => format!("{base}/v1/messages"),
            Provider::AzureOpenai => {
                let version = self
                    .api_version
                    .as_deref()
                    .ok_or(ConfigError::ApiVersionMissing)?;
                let mut url = Url::parse(&format!("{base}/openai/deployments/"))
                    .map_err(|e| ConfigError::BaseUrl(e.to_string()))?;
                url.path_segments_mut()
                    .map_err(|()| ConfigError::BaseUrlParts)?
                    .pop_if_empty()
                    .push(&self.model)
                    .push("chat")
                    .push("completions");
                url.query_pairs_mut().append_pair("api-version", version);
                return Ok(url);
            }
        };
        Url::parse(&text).map_err(|e| ConfigError::BaseUrl(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(provider: Provider, base: &str) -> ModelConfig {
        ModelConfig {
            provider,
            base_url: base.into(),
            model: "m-1".into(),
            api_key_env: Some("BACKFORGE_AI_KEY_T".into()),
            api_version: Some("2024-10-21".into()),
            input_usd_per_mtok: Decimal::new(25, 1),
            output_usd_per_mtok: Decimal::TEN,
            max_output_tokens: 1000,
            temperature: None,
            timeout_ms: None,
        }
    }

    #[test]
    fn key_variables_carry_the_prefix_or_are_the_bootstrap_one() {
        assert!(valid_key_env("BACKFORGE_AI_KEY_OPENAI"));
        assert!(valid_key_env("BACKFORGE_AI_API_KEY"));
        assert!(!valid_key_env("BACKFORGE_AI_KEY_"));
        assert!(!valid_key_env("OPENAI_API_KEY"));
        assert!(!valid_key_env("BACKFORGE_AI_KEY_lower"));
        assert!(!valid_key_env("DATABASE_URL"));
    }

    #[test]
    fn each_provider_posts_to_its_own_path() {
        assert_eq!(
            model(Provider::Openai, "https://api.openai.com/v1/")
                .endpoint()
                .unwrap()
                .as_str(),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            model(Provider::Anthropic, "https://api.anthropic.com")
                .endpoint()
                .unwrap()
                .as_str(),
            "https://api.anthropic.com/v1/messages"
        );
        assert_eq!(
            model(Provider::AzureOpenai, "https://r.openai.azure.com")
                .endpoint()
                .unwrap()
                .as_str(),
            "https://r.openai.azure.com/openai/deployments/m-1/chat/completions?api-version=2024-10-21"
        );
    }

    #[test]
    fn prices_are_read_from_numbers_and_strings_by_their_text() {
        let json = r#"{"provider":"openai","base_url":"https://x.example","model":"m",
            "input_usd_per_mtok":0.1,"output_usd_per_mtok":"0.300001","max_output_tokens":5}"#;
        let m: ModelConfig = serde_json::from_str(json).unwrap();
        assert_eq!(m.input_usd_per_mtok.to_string(), "0.1");
        assert_eq!(m.output_usd_per_mtok.to_string(), "0.300001");
        let back = serde_json::to_value(&m).unwrap();
        assert_eq!(back["input_usd_per_mtok"], "0.1");
        let too_fine = json.replace("0.300001", "0.0000001");
        assert!(serde_json::from_str::<ModelConfig>(&too_fine).is_err());
        // From an already parsed value too (its numbers' text is their shortest form).
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        let again: ModelConfig = serde_json::from_value(value).unwrap();
        assert_eq!(again, m);
    }

    #[test]
    fn a_key_variable_without_the_prefix_is_refused() {
        let mut m = model(Provider::Openai, "https://x.example");
        m.api_key_env = Some("HOME".into());
        assert_eq!(m.validate(), Err(ConfigError::KeyEnv));
        m.api_key_env = Some("BACKFORGE_AI_API_KEY".into());
        assert_eq!(m.validate(), Ok(()));
        m.base_url = "https://user:pw@x.example".into();
        assert_eq!(m.validate(), Err(ConfigError::BaseUrlParts));
    }
}
