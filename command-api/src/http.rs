//! The write API's extractors: the write request (caller, `If-Match`, `Idempotency-Key` in its
//! route scope, metadata, body), typed path ids, and request metadata for event envelopes.

use actix_web::dev::Payload;
use actix_web::http::header::IF_MATCH;
use actix_web::{FromRequest, HttpRequest};
use domain::EventMetadata;
use domain::ids::{FeatureId, FunctionId, ProjectId, UserId};
use event_store::application::Pin;
use futures::future::{LocalBoxFuture, Ready, ready};
use runtime::{ApiError, Authenticated, Json, ProblemType};
use uuid::Uuid;

use crate::idempotency::{self, Claim};

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
            source: None,
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

impl IfMatch {
    /// The application step's pin for this precondition.
    pub fn pin(this: Option<IfMatch>) -> Pin {
        match this {
            None => Pin::Latest,
            Some(IfMatch::Any) => Pin::Any,
            Some(IfMatch::Version(v)) => Pin::Exact(v),
            Some(IfMatch::Weak) => Pin::Unmatchable,
        }
    }
}

/// A request body a write extractor reads: JSON (with its raw bytes, which an idempotency key is
/// checked against) or none.
pub trait WriteBody: Sized + 'static {
    fn extract(
        req: &HttpRequest,
        payload: &mut Payload,
    ) -> LocalBoxFuture<'static, Result<Self, ApiError>>;
    /// The bytes an idempotency key's fingerprint covers.
    fn raw(&self) -> &[u8];
}

impl<T: serde::de::DeserializeOwned + 'static> WriteBody for Json<T> {
    fn extract(
        req: &HttpRequest,
        payload: &mut Payload,
    ) -> LocalBoxFuture<'static, Result<Self, ApiError>> {
        Box::pin(<Json<T> as FromRequest>::from_request(req, payload))
    }

    fn raw(&self) -> &[u8] {
        &self.raw
    }
}

/// A write without a body (DELETE): whatever was sent is ignored.
pub struct NoBody;

impl WriteBody for NoBody {
    fn extract(
        _: &HttpRequest,
        _: &mut Payload,
    ) -> LocalBoxFuture<'static, Result<Self, ApiError>> {
        Box::pin(ready(Ok(NoBody)))
    }

    fn raw(&self) -> &[u8] {
        &[]
    }
}

/// Everything a write handler needs besides its path ids, so none can forget a rule: the caller,
/// `If-Match`, the `Idempotency-Key` claimed in its scope, the request metadata and the body.
pub struct Write<B = NoBody> {
    pub caller: Authenticated,
    pub if_match: Option<IfMatch>,
    /// The key's claim, scoped to the route pattern and its typed ids.
    pub key: Option<Claim>,
    pub meta: RequestMeta,
    pub body: B,
}

impl<B> Write<B> {
    /// The application step's pin for this request's `If-Match`.
    pub fn pin(&self) -> Pin {
        IfMatch::pin(self.if_match)
    }
}

/// The idempotency scope of a request: its route's pattern and the ids in its path, each
/// normalised (a UUID in its hyphenated lower-case form), whatever the client's spelling.
pub fn scope(req: &HttpRequest) -> String {
    let pattern = req.match_pattern().unwrap_or_else(|| req.path().to_owned());
    let mut scope = pattern;
    for (_, value) in req.match_info().iter() {
        scope.push(' ');
        match value.parse::<Uuid>() {
            Ok(id) => scope.push_str(&id.hyphenated().to_string()),
            Err(_) => scope.push_str(value),
        }
    }
    scope
}

impl<B: WriteBody> FromRequest for Write<B> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let caller = Authenticated::from_request(req, payload);
        let body = B::extract(req, payload);
        let meta = RequestMeta::from_request(req, payload).into_inner();
        let if_match = IfMatch::from_request(req);
        let key = idempotency::key_of(req);
        let (method, scope) = (req.method().as_str().to_owned(), scope(req));
        Box::pin(async move {
            let caller = caller.await?;
            let body = body.await?;
            let key = key?.map(|key| Claim {
                user_id: caller.user_id,
                method,
                path: scope,
                key,
            });
            Ok(Write {
                caller,
                if_match: if_match?,
                key,
                meta: meta?,
                body,
            })
        })
    }
}

/// A write on `/auth/*`: an `Idempotency-Key` is refused (422) before any other work — the answer
/// would store tokens, and the work may be a password hash.
pub struct AuthWrite<B> {
    pub meta: RequestMeta,
    pub body: B,
}

impl<B: WriteBody> FromRequest for AuthWrite<B> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if let Err(refused) = refuse_idempotency_key(req) {
            return Box::pin(ready(Err(refused)));
        }
        let body = B::extract(req, payload);
        let meta = RequestMeta::from_request(req, payload).into_inner();
        Box::pin(async move {
            Ok(AuthWrite {
                meta: meta?,
                body: body.await?,
            })
        })
    }
}

/// 422 for an `Idempotency-Key` on `/auth/*` (a malformed one is a 400 like anywhere).
pub fn refuse_idempotency_key(req: &HttpRequest) -> Result<(), ApiError> {
    if idempotency::key_of(req)?.is_some() {
        return Err(ApiError::invalid_field(
            "",
            "Idempotency-Key is not accepted on /auth routes (the answer would store tokens)",
        ));
    }
    Ok(())
}

/// An id typed by what it names, read from its path segment: not a UUID → 404.
pub trait PathId: Sized {
    /// The segment's name in the route pattern.
    const SEGMENT: &'static str;
    /// What the id names, for the 404's detail.
    const WHAT: &'static str;
    fn from_uuid(id: Uuid) -> Self;

    fn from_path(req: &HttpRequest) -> Result<Self, ApiError> {
        req.match_info()
            .get(Self::SEGMENT)
            .and_then(|raw| raw.parse::<Uuid>().ok())
            .map(Self::from_uuid)
            .ok_or_else(|| ApiError::not_found(format!("no such {}", Self::WHAT)))
    }
}

impl PathId for ProjectId {
    const SEGMENT: &'static str = "id";
    const WHAT: &'static str = "project";
    fn from_uuid(id: Uuid) -> Self {
        ProjectId::from_uuid(id)
    }
}

impl PathId for FeatureId {
    const SEGMENT: &'static str = "feature_id";
    const WHAT: &'static str = "feature";
    fn from_uuid(id: Uuid) -> Self {
        FeatureId::from_uuid(id)
    }
}

impl PathId for FunctionId {
    const SEGMENT: &'static str = "function_id";
    const WHAT: &'static str = "function";
    fn from_uuid(id: Uuid) -> Self {
        FunctionId::from_uuid(id)
    }
}

impl PathId for UserId {
    const SEGMENT: &'static str = "user_id";
    const WHAT: &'static str = "user";
    fn from_uuid(id: Uuid) -> Self {
        UserId::from_uuid(id)
    }
}

/// The typed ids of a write's path: `Ids<ProjectId>`, `Ids<(ProjectId, FeatureId)>`.
pub struct Ids<T>(pub T);

impl<A: PathId> FromRequest for Ids<A> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(A::from_path(req).map(Ids))
    }
}

impl<A: PathId, B: PathId> FromRequest for Ids<(A, B)> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(A::from_path(req).and_then(|a| Ok(Ids((a, B::from_path(req)?)))))
    }
}
