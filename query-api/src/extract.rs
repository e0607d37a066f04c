//! The rules every read handler needs, as extractors a handler takes as arguments and so cannot
//! forget: the read-your-writes wait ([`Fresh`]) and ids parsed from the path (a malformed id
//! names nothing: 404).

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use event_store::Position;
use futures::future::LocalBoxFuture;
use read_model::WaitError;
use runtime::{ApiError, path_id};
use uuid::Uuid;

use crate::QueryState;

pub const MIN_POSITION_HEADER: &str = "Backforge-Min-Position";

/// Proof that the read models have projected the position the request named in
/// `Backforge-Min-Position` (or that it named none): waits up to `BACKFORGE_MIN_POSITION_WAIT_MS`,
/// then 503 with `Retry-After`; a malformed token is a 400.
#[derive(Debug, Clone, Copy)]
pub struct Fresh {
    /// The position the request asked for, if any.
    pub min_position: Option<Position>,
}

impl Fresh {
    fn wanted(req: &HttpRequest) -> Result<Option<Position>, ApiError> {
        let Some(raw) = req.headers().get(MIN_POSITION_HEADER) else {
            return Ok(None);
        };
        raw.to_str()
            .ok()
            .and_then(|s| Position::parse_token(s.trim()).ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::malformed("Backforge-Min-Position is not a position this API issued")
            })
    }
}

impl FromRequest for Fresh {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let wanted = match Self::wanted(req) {
            Ok(Some(wanted)) => wanted,
            Ok(None) => return Box::pin(ready(Ok(Fresh { min_position: None }))),
            Err(error) => return Box::pin(ready(Err(error))),
        };
        let state = req.app_data::<web::Data<QueryState>>().cloned();
        Box::pin(async move {
            let state = state
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no QueryState registered")))?;
            state
                .checkpoints
                .wait_for(wanted, state.settings.min_position_wait)
                .await
                .map_err(|error| match error {
                    WaitError::TimedOut => ApiError::unavailable(
                        "the read models have not reached the requested position yet; retry shortly",
                        1,
                    ),
                    WaitError::Pool(e) => e.into(),
                    WaitError::Database(e) => e.into(),
                })?;
            Ok(Fresh {
                min_position: Some(wanted),
            })
        })
    }
}

pub(crate) fn segment(req: &HttpRequest, name: &str, what: &str) -> Result<Uuid, ApiError> {
    path_id(req.match_info().get(name).unwrap_or_default(), what)
}

/// The project id of a `/projects/{id}…` route.
#[derive(Debug, Clone, Copy)]
pub struct ProjectPath(pub Uuid);

impl FromRequest for ProjectPath {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(segment(req, "id", "project").map(ProjectPath))
    }
}

/// The ids of a `/projects/{id}/features/{feature_id}` route.
#[derive(Debug, Clone, Copy)]
pub struct FeaturePath {
    pub project: Uuid,
    pub feature: Uuid,
}

impl FromRequest for FeaturePath {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(segment(req, "id", "project").and_then(|project| {
            Ok(FeaturePath {
                project,
                feature: segment(req, "feature_id", "feature")?,
            })
        }))
    }
}

/// The ids of a `/projects/{id}/functions/{function_id}` route.
#[derive(Debug, Clone, Copy)]
pub struct FunctionPath {
    pub project: Uuid,
    pub function: Uuid,
}

impl FromRequest for FunctionPath {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(segment(req, "id", "project").and_then(|project| {
            Ok(FunctionPath {
                project,
                function: segment(req, "function_id", "function")?,
            })
        }))
    }
}

/// The generation id of a `/generations/{id}…` route.
#[derive(Debug, Clone, Copy)]
pub struct GenerationPath(pub Uuid);

impl FromRequest for GenerationPath {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(segment(req, "id", "generation").map(GenerationPath))
    }
}
