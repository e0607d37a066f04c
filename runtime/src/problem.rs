//! The one mapping from errors to RFC 9457 problem documents, for every route of both APIs.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use domain::error::FieldError;
use event_store::StoreError;
use serde::Serialize;

/// The documented set of problem types; `https://backforge.dev/problems/<slug>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemType {
    MalformedRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    EmailTaken,
    NameTaken,
    StillReferenced,
    UniqueViolation,
    FunctionConflict,
    ConcurrentModification,
    IdempotencyKeyInFlight,
    GenerationUnfinished,
    PreconditionFailed,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
    ProjectTooLarge,
    EventTooLarge,
    IdempotencyKeyReused,
    RateLimited,
    Unavailable,
    SandboxUnavailable,
    AiNotConfigured,
    AiBudgetExceeded,
    Internal,
}

impl ProblemType {
    pub const ALL: [ProblemType; 27] = [
        ProblemType::MalformedRequest,
        ProblemType::Unauthorized,
        ProblemType::Forbidden,
        ProblemType::NotFound,
        ProblemType::MethodNotAllowed,
        ProblemType::Conflict,
        ProblemType::EmailTaken,
        ProblemType::NameTaken,
        ProblemType::StillReferenced,
        ProblemType::UniqueViolation,
        ProblemType::FunctionConflict,
        ProblemType::ConcurrentModification,
        ProblemType::IdempotencyKeyInFlight,
        ProblemType::GenerationUnfinished,
        ProblemType::PreconditionFailed,
        ProblemType::PayloadTooLarge,
        ProblemType::UnsupportedMediaType,
        ProblemType::ValidationFailed,
        ProblemType::ProjectTooLarge,
        ProblemType::EventTooLarge,
        ProblemType::IdempotencyKeyReused,
        ProblemType::RateLimited,
        ProblemType::Unavailable,
        ProblemType::SandboxUnavailable,
        ProblemType::AiNotConfigured,
        ProblemType::AiBudgetExceeded,
        ProblemType::Internal,
    ];

    pub fn slug(self) -> &'static str {
        match self {
            ProblemType::MalformedRequest => "malformed-request",
            ProblemType::Unauthorized => "unauthorized",
            ProblemType::Forbidden => "forbidden",
            ProblemType::NotFound => "not-found",
            ProblemType::MethodNotAllowed => "method-not-allowed",
            ProblemType::Conflict => "conflict",
            ProblemType::EmailTaken => "email-taken",
            ProblemType::NameTaken => "name-taken",
            ProblemType::StillReferenced => "still-referenced",
            ProblemType::UniqueViolation => "unique-violation",
            ProblemType::FunctionConflict => "function-conflict",
            ProblemType::ConcurrentModification => "concurrent-modification",
            ProblemType::IdempotencyKeyInFlight => "idempotency-key-in-flight",
            ProblemType::GenerationUnfinished => "generation-unfinished",
            ProblemType::PreconditionFailed => "precondition-failed",
            ProblemType::PayloadTooLarge => "payload-too-large",
            ProblemType::UnsupportedMediaType => "unsupported-media-type",
            ProblemType::ValidationFailed => "validation-failed",
            ProblemType::ProjectTooLarge => "project-too-large",
            ProblemType::EventTooLarge => "event-too-large",
            ProblemType::IdempotencyKeyReused => "idempotency-key-reused",
            ProblemType::RateLimited => "rate-limited",
            ProblemType::Unavailable => "unavailable",
            ProblemType::SandboxUnavailable => "sandbox-unavailable",
            ProblemType::AiNotConfigured => "ai-not-configured",
            ProblemType::AiBudgetExceeded => "ai-budget-exceeded",
            ProblemType::Internal => "internal",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            ProblemType::MalformedRequest => "Malformed request",
            ProblemType::Unauthorized => "Authentication required",
            ProblemType::Forbidden => "Not allowed",
            ProblemType::NotFound => "Not found",
            ProblemType::MethodNotAllowed => "Method not allowed",
            ProblemType::Conflict => "Conflict with the current state",
            ProblemType::EmailTaken => "E-mail address already registered",
            ProblemType::NameTaken => "Name already taken",
            ProblemType::StillReferenced => "Still referenced",
            ProblemType::UniqueViolation => "Unique value taken",
            ProblemType::FunctionConflict => "Function name or route taken",
            ProblemType::ConcurrentModification => "Modified concurrently",
            ProblemType::IdempotencyKeyInFlight => {
                "Request with this idempotency key still in flight"
            }
            ProblemType::GenerationUnfinished => "Generation not finished",
            ProblemType::PreconditionFailed => "Precondition failed",
            ProblemType::PayloadTooLarge => "Request body too large",
            ProblemType::UnsupportedMediaType => "Unsupported media type",
            ProblemType::ValidationFailed => "Validation failed",
            ProblemType::ProjectTooLarge => "Project too large",
            ProblemType::EventTooLarge => "Event too large",
            ProblemType::IdempotencyKeyReused => "Idempotency key reused with a different request",
            ProblemType::RateLimited => "Too many requests",
            ProblemType::Unavailable => "Service unavailable",
            ProblemType::SandboxUnavailable => "Sandbox unavailable",
            ProblemType::AiNotConfigured => "AI not configured",
            ProblemType::AiBudgetExceeded => "Monthly AI budget exceeded",
            ProblemType::Internal => "Internal error",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ProblemType::MalformedRequest => StatusCode::BAD_REQUEST,
            ProblemType::Unauthorized => StatusCode::UNAUTHORIZED,
            ProblemType::Forbidden => StatusCode::FORBIDDEN,
            ProblemType::NotFound => StatusCode::NOT_FOUND,
            ProblemType::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProblemType::Conflict
            | ProblemType::EmailTaken
            | ProblemType::NameTaken
            | ProblemType::StillReferenced
            | ProblemType::UniqueViolation
            | ProblemType::FunctionConflict
            | ProblemType::ConcurrentModification
            | ProblemType::IdempotencyKeyInFlight
            | ProblemType::GenerationUnfinished => StatusCode::CONFLICT,
            ProblemType::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ProblemType::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProblemType::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ProblemType::ValidationFailed
            | ProblemType::ProjectTooLarge
            | ProblemType::EventTooLarge
            | ProblemType::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ProblemType::RateLimited | ProblemType::AiBudgetExceeded => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ProblemType::Unavailable
            | ProblemType::SandboxUnavailable
            | ProblemType::AiNotConfigured => StatusCode::SERVICE_UNAVAILABLE,
            ProblemType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn uri(self) -> String {
        format!("https://backforge.dev/problems/{}", self.slug())
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

/// Every error an API handler can return. Client errors carry a sentence for the caller; internal
/// ones carry the cause for the log only.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    Problem {
        kind: ProblemType,
        detail: String,
        errors: Vec<FieldError>,
        retry_after: Option<u64>,
    },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Self {
        ApiError::Problem {
            kind,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::MalformedRequest, detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::Unauthorized, detail)
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::Forbidden, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::NotFound, detail)
    }
    pub fn conflict(kind: ProblemType, detail: impl Into<String>) -> Self {
        Self::new(kind, detail)
    }
    pub fn invalid(detail: impl Into<String>, errors: Vec<FieldError>) -> Self {
        ApiError::Problem {
            kind: ProblemType::ValidationFailed,
            detail: detail.into(),
            errors,
            retry_after: None,
        }
    }
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::invalid(
            message.clone(),
            vec![FieldError {
                field: field.to_owned(),
                message,
            }],
        )
    }
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        ApiError::Problem {
            kind: ProblemType::RateLimited,
            detail: format!("too many attempts; retry in {retry_after_secs} s"),
            errors: Vec::new(),
            retry_after: Some(retry_after_secs.max(1)),
        }
    }
    pub fn unavailable(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        ApiError::Problem {
            kind: ProblemType::Unavailable,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: Some(retry_after_secs.max(1)),
        }
    }
    /// 503 `sandbox-unavailable`: no untrusted code can run on this server now (`detail` says why).
    pub fn sandbox_unavailable(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        ApiError::Problem {
            kind: ProblemType::SandboxUnavailable,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: Some(retry_after_secs.max(1)),
        }
    }
    /// 503 `ai-not-configured`: no model can serve an AI request (`detail` says what to set).
    /// No `Retry-After`: waiting does not help until an operator configures a model.
    pub fn ai_not_configured(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::AiNotConfigured, detail)
    }
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(error.into())
    }

    pub fn kind(&self) -> ProblemType {
        match self {
            ApiError::Problem { kind, .. } => *kind,
            ApiError::Internal(_) => ProblemType::Internal,
        }
    }

    pub fn problem(&self) -> Problem {
        let kind = self.kind();
        let (detail, errors) = match self {
            ApiError::Problem { detail, errors, .. } => {
                (detail.clone(), (!errors.is_empty()).then(|| errors.clone()))
            }
            // Never leak internals: the cause goes to the log, the caller gets a sentence.
            ApiError::Internal(_) => ("the server failed to handle this request".to_owned(), None),
        };
        Problem {
            problem_type: kind.uri(),
            title: kind.title().to_owned(),
            status: kind.status().as_u16(),
            detail,
            instance: None,
            errors,
        }
    }
}

impl From<event_store::AppendRefusal> for ApiError {
    fn from(refusal: event_store::AppendRefusal) -> Self {
        use event_store::AppendRefusal;
        match refusal {
            AppendRefusal::Nul { pointer, .. } => {
                ApiError::invalid_field(&pointer, "must not contain the character U+0000 (NUL)")
            }
            AppendRefusal::TooLarge { bytes, limit, .. } => ApiError::new(
                ProblemType::EventTooLarge,
                format!(
                    "the change would be recorded as an event of {bytes} bytes, over the limit of \
                     {limit} bytes (BACKFORGE_MAX_EVENT_BYTES)"
                ),
            ),
        }
    }
}

/// An id in a path: anything that is not a UUID names nothing, so it is a 404 like an unknown id.
pub fn path_id(raw: &str, what: &str) -> Result<uuid::Uuid, ApiError> {
    raw.parse::<uuid::Uuid>()
        .map_err(|_| ApiError::not_found(format!("no such {what}")))
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => {
                tracing::warn!(error = ?e, "event store unavailable");
                ApiError::unavailable("the database is unavailable; retry shortly", 2)
            }
            StoreError::WrongExpectedVersion { .. } => ApiError::conflict(
                ProblemType::ConcurrentModification,
                "the resource was changed by another request; reload it and retry",
            ),
            StoreError::Refused(refusal) => refusal.into(),
            // A command-side write refused the command inside the append's transaction: an AI
            // budget admission, or any refusal carried as the answer itself.
            StoreError::Backend(cause) => match cause.downcast::<crate::ai_budget::BudgetRefused>()
            {
                Ok(refused) => ApiError::Problem {
                    kind: ProblemType::AiBudgetExceeded,
                    detail: refused.to_string(),
                    errors: Vec::new(),
                    retry_after: Some(refused.retry_after_secs.max(1)),
                },
                Err(cause) => match cause.downcast::<ApiError>() {
                    Ok(refusal) => refusal,
                    Err(cause) => ApiError::Internal(StoreError::Backend(cause).into()),
                },
            },
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        tracing::warn!(error = %e, "database pool unavailable");
        ApiError::unavailable("the database is unavailable; retry shortly", 2)
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        if e.is_closed() || (e.as_db_error().is_none() && e.code().is_none()) {
            tracing::warn!(error = %e, "database connection failed");
            ApiError::unavailable("the database is unavailable; retry shortly", 2)
        } else {
            ApiError::Internal(e.into())
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.kind().status()
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(cause) = self {
            tracing::error!(error = ?cause, "request failed");
        }
        let problem = self.problem();
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if let ApiError::Problem {
            retry_after: Some(secs),
            ..
        } = self
        {
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if self.kind() == ProblemType::Unauthorized {
            response.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"backforge\", error=\"invalid_token\""),
            ));
        }
        let body = serde_json::to_vec(&problem).unwrap_or_else(|_| b"{}".to_vec());
        response.body(body)
    }
}
