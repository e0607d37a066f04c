//! The AI layer's pure rules: a model's configuration and exact money (prices, costs, budgets).

pub mod config;
pub mod money;

pub use config::{ConfigError, ModelConfig, Provider};
