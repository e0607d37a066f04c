//! The small runtime both APIs and every Backforge process share: settings, telemetry, JWT
//! verification, the one mapping of errors to RFC 9457 problem documents, and the health and
//! supervision of background consumers.

pub mod ai_budget;
pub mod auth;
pub mod http_headers;
pub mod json;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod security_cache;
pub mod settings;
pub mod supervise;
pub mod telemetry;

pub use auth::{AccessClaims, Authenticated, JwtKeys, SecurityLookup, SecurityState};
pub use json::Json;
pub use problem::{ApiError, ProblemType, path_id};
pub use settings::{Environment, Secret, Settings};
