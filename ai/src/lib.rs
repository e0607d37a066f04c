//! Backforge's AI providers: one client for the OpenAI Chat Completions wire format (OpenAI,
//! Ollama, vLLM, llama.cpp's server, LM Studio, OpenRouter), Azure OpenAI and Anthropic
//! Messages, with structured output through each provider's JSON Schema mode, timeouts, retries
//! honouring `Retry-After`, usage and exact cost per answer, and the SSRF rule checked on every
//! resolved address.
//!
//! What goes in and out is safe to record: keys are read from the environment variable a model
//! names at call time and never appear in an answer, an error or a log line; provider error
//! bodies are redacted of the key (and of every 8+ character piece of it) and cut to 1 KiB;
//! model output has its NULs replaced and is cut ([`foreign`]).
//!
//! The crate calls models and nothing else: no events, no storage, no prompts. The worker
//! renders prompts, calls [`AiClient::complete`] and records what it returns.
//!
//! # Dependencies
//! - `domain`: the one sanitising of foreign text (`domain::text`), shared with every event.
//! - `reqwest` (feature `rustls`, no default features): the HTTP client. rustls rather than the
//!   system's OpenSSL so the binary carries its TLS; no `system-proxy` feature, and
//!   `no_proxy()`, so proxy variables are never read; its `dns_resolver` hook is where the SSRF
//!   rule sees every resolved address.
//! - `rust_decimal`: exact prices and costs (exact decimals, half-even: docs/api.md), never `f64`.
//! - `jsonschema` (the workspace's, offline): an answer is checked against the schema it was
//!   asked for, as not every OpenAI-format server enforces strict mode.
//! - `httpdate`: `Retry-After` given as an HTTP date.
//! - `serde`, `serde_json`: the wire formats and the serde forms of models and answers.
//! - `thiserror`: the typed errors; `tokio`: deadlines, sleeps between retries and the system
//!   resolver; `tracing`: one line per retry and failure (never a body or key).

/// The model configuration, money rules and prompt rendering live in the domain, so events
/// carry them and the command side checks templates when they are written.
pub use domain::ai::{config, money, prompt};

pub mod client;
pub mod completion;
pub mod error;
pub mod foreign;
pub mod key;
pub mod network;
mod wire;

pub use client::{AiClient, RetryPolicy};
pub use completion::{Answer, CompletionRequest, Content, JsonSchema, Usage};
pub use config::{ConfigError, ModelConfig, Provider};
pub use error::{AiError, TransportFailure};
pub use key::{ApiKey, KeySource};
pub use network::{AddressClass, Lookup, NetworkPolicy, Refusal, StaticLookup, SystemLookup};
pub use rust_decimal::Decimal;
