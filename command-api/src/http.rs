//! Request-level helpers of the write API: request metadata for event envelopes, `If-Match`, and
//! the caller's address for rate limits.

use actix_web::dev::Payload;
use actix_web::http::header::IF_MATCH;
use actix_web::{FromRequest, HttpRequest};
use domain::EventMetadata;
use futures::future::{Ready, ready};
use runtime::{ApiError, ProblemType};
use uuid::Uuid;

/// Correlation data of one request, copied into the envelope of every event it causes.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub request_id: Uuid,
    pub correlation_id: Uuid,
    pub traceparent: Option<String>,
    pub client_ip: String,
}

impl RequestMeta {
    pub fn metadata(&self, actor: Option<Uuid>) -> EventMetadata {
        EventMetadata {
            actor,
            correlation_id: Some(self.correlation_id),
            causation_id: Some(self.request_id),
            request_id: Some(self.request_id.to_string()),
            traceparent: self.traceparent.clone(),
            // Filled in by the append of a project-owned event.
            project_id: None,
        }
    }
}

fn header_uuid(req: &HttpRequest, name: &str) -> Option<Uuid> {
    req.headers().get(name)?.to_str().ok()?.trim().parse().ok()
}

impl FromRequest for RequestMeta {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let request_id = header_uuid(req, "X-Request-Id").unwrap_or_else(Uuid::now_v7);
        let correlation_id = header_uuid(req, "X-Correlation-Id").unwrap_or(request_id);
        let traceparent = req
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
            .map(str::to_owned);
        // The peer address, not X-Forwarded-For: a header the client controls must not choose
        // which rate-limit bucket it lands in.
        let client_ip = req
            .peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_else(|| "unknown".into());
        ready(Ok(RequestMeta {
            request_id,
            correlation_id,
            traceparent,
            client_ip,
        }))
    }
}

/// The `If-Match` precondition of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMatch {
    Any,
    Version(u64),
    /// A weak tag: it never matches strongly, so the precondition always fails.
    Weak,
}

impl IfMatch {
    pub fn from_request(req: &HttpRequest) -> Result<Option<IfMatch>, ApiError> {
        let Some(value) = req.headers().get(IF_MATCH) else {
            return Ok(None);
        };
        let malformed =
            || ApiError::malformed("If-Match must be one strong entity tag such as \"3\", or *");
        let value = value.to_str().map_err(|_| malformed())?.trim();
        if value == "*" {
            return Ok(Some(IfMatch::Any));
        }
        if value.starts_with("W/\"") && value.ends_with('"') {
            return Ok(Some(IfMatch::Weak));
        }
        let inner = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or_else(malformed)?;
        inner
            .parse::<u64>()
            .map(|v| Some(IfMatch::Version(v)))
            .map_err(|_| {
                // A well-formed tag that is not one of ours can never match.
                if inner.bytes().all(|b| b.is_ascii_graphic() && b != b'"') {
                    ApiError::new(
                        ProblemType::PreconditionFailed,
                        "If-Match does not match the current version",
                    )
                } else {
                    malformed()
                }
            })
    }

    /// Fails with 412 unless the current version satisfies the precondition.
    pub fn check(this: Option<IfMatch>, current_version: u64) -> Result<(), ApiError> {
        match this {
            None | Some(IfMatch::Any) => Ok(()),
            Some(IfMatch::Version(v)) if v == current_version => Ok(()),
            Some(_) => Err(ApiError::new(
                ProblemType::PreconditionFailed,
                format!("If-Match does not match the current version \"{current_version}\""),
            )),
        }
    }
}
