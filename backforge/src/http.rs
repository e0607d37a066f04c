//! The HTTP shell shared by every Backforge server process: health, readiness, metrics, the merged
//! OpenAPI document, request metrics, and the 404 or 405 for requests no route takes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use deadpool_postgres::Pool;
use projector::supervise::Consumers;
use runtime::metrics::Metrics;
use runtime::{ApiError, ProblemType};
use serde_json::json;
use time::format_description::well_known::Rfc3339;

/// What `/health/ready` checks in this process.
#[derive(Clone)]
pub struct Readiness {
    pub postgres: Pool,
    /// Checked only by processes that use NATS (the projector's relays and the worker).
    pub nats: Option<async_nats::Client>,
    /// The background consumers this process runs (projection, relays, worker, sweeper).
    pub consumers: Option<Consumers>,
    /// An API process stays in rotation while a consumer is stalled (200, `degraded`): one
    /// stalled consumer must not take reads and writes down. A process that runs only consumers
    /// answers 503 for it.
    pub serves_api: bool,
    /// The command API's sandbox: `checks.sandbox` is `down` (and the process `degraded`, still in
    /// rotation) while no code can run.
    pub sandbox: Option<std::sync::Arc<command_api::sandbox_routes::SandboxService>>,
    /// The worker's verify pool: `checks.verify_sandbox` is `down` (and the process `degraded`:
    /// generations still run, a `verify` fails naming the cause) once its self-test failed.
    pub verify_sandbox: Option<std::sync::Arc<worker::verify::Verifier>>,
}

/// Liveness: 200 while the process runs.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "`{\"status\": \"ok\"}` while the process runs")))]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Each consumer as `{status: "ok"}` or `{status: "stalled", reason, since, event_id}`.
fn consumer_checks(consumers: &Consumers) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (name, stall) in consumers.snapshot() {
        let check = match stall {
            None => json!({"status": "ok"}),
            Some(stall) => json!({
                "status": "stalled",
                "reason": stall.reason,
                "since": stall.since.format(&Rfc3339).ok(),
                "event_id": stall.event_id,
            }),
        };
        out.insert(name.to_owned(), check);
    }
    serde_json::Value::Object(out)
}

/// Readiness: 200 when this process's dependencies answer, each reported under `checks`
/// (`checks.consumers` for the background consumers). A stalled consumer makes an API process
/// answer 200 with `status: "degraded"` and a consumer-only process 503; so does NATS being down.
#[utoipa::path(get, path = "/health/ready", tag = "operations",
    responses((status = 200, description = "`{status: \"ready\" | \"degraded\", checks}`; `degraded` when, in a process that serves an API, a consumer is stalled or NATS is down"),
              (status = 503, description = "A dependency does not answer, or (in `projector` and `worker`) a consumer is stalled; `Retry-After`, `checks` in the body")))]
pub async fn ready(readiness: web::Data<Readiness>) -> HttpResponse {
    let postgres = tokio::time::timeout(Duration::from_secs(2), async {
        let client = readiness.postgres.get().await.ok()?;
        client.query_one("SELECT 1", &[]).await.ok().map(|_| ())
    })
    .await
    .ok()
    .flatten()
    .is_some();
    let nats = readiness
        .nats
        .as_ref()
        .map(|c| c.connection_state() == async_nats::connection::State::Connected);
    let mut checks = json!({"postgres": if postgres { "up" } else { "down" }});
    if let Some(up) = nats {
        checks["nats"] = json!(if up { "up" } else { "down" });
    }
    let sandbox_down = match &readiness.sandbox {
        Some(sandbox) => {
            let cause = sandbox.cause();
            checks["sandbox"] = json!(if cause.is_some() { "down" } else { "up" });
            cause.is_some()
        }
        None => false,
    };
    let verify_sandbox_down = match &readiness.verify_sandbox {
        Some(verifier) => {
            let down = verifier.cause().is_some();
            checks["verify_sandbox"] = json!(if down { "down" } else { "up" });
            down
        }
        None => false,
    };
    let stalled = match &readiness.consumers {
        Some(consumers) => {
            checks["consumers"] = consumer_checks(consumers);
            consumers.any_stalled()
        }
        None => false,
    };
    // An API process needs only PostgreSQL to answer reads and writes (the command side never
    // talks to NATS): NATS down or a stalled consumer leaves it in rotation, `degraded`.
    let nats_down = nats == Some(false);
    let down = if !postgres {
        Some("PostgreSQL does not answer")
    } else if nats_down && !readiness.serves_api {
        Some("NATS is not connected")
    } else if stalled && !readiness.serves_api {
        Some("a consumer is stalled; see checks.consumers")
    } else {
        None
    };
    match down {
        None => {
            let status = if stalled || nats_down || sandbox_down || verify_sandbox_down {
                "degraded"
            } else {
                "ready"
            };
            HttpResponse::Ok().json(json!({"status": status, "checks": checks}))
        }
        Some(down) => {
            let error = ApiError::unavailable(down, 2);
            let mut body = serde_json::to_value(error.problem()).unwrap_or_else(|_| json!({}));
            body["checks"] = checks.clone();
            let mut response = error.error_response();
            response.headers_mut().insert(
                actix_web::http::header::HeaderName::from_static("backforge-checks"),
                actix_web::http::header::HeaderValue::from_str(&checks.to_string())
                    .unwrap_or(actix_web::http::header::HeaderValue::from_static("{}")),
            );
            response.set_body(actix_web::body::BoxBody::new(body.to_string()))
        }
    }
}

/// Who may read `/metrics` on one listener (registered as app data; missing means `Hidden`).
#[derive(Clone)]
pub enum MetricsAccess {
    /// Development without a token: anyone who reaches the (loopback by default) port.
    Open,
    /// `Authorization: Bearer <BACKFORGE_METRICS_TOKEN>`.
    Token(runtime::Secret<String>),
    /// Not served here: production without a token, or moved to `BACKFORGE_METRICS_ADDR`.
    Hidden,
}

impl MetricsAccess {
    /// The rule for the process's main port: fail closed in production.
    pub fn main_port(settings: &runtime::Settings) -> Self {
        if settings.metrics_addr.is_some() {
            return Self::Hidden;
        }
        match (&settings.metrics_token, settings.environment) {
            (Some(token), _) => Self::Token(token.clone()),
            (None, runtime::Environment::Production) => Self::Hidden,
            (None, runtime::Environment::Development) => Self::Open,
        }
    }

    /// The rule for the listener of `BACKFORGE_METRICS_ADDR`, which the operator placed on a
    /// private address: the token when one is set, else open.
    pub fn own_listener(settings: &runtime::Settings) -> Self {
        match &settings.metrics_token {
            Some(token) => Self::Token(token.clone()),
            None => Self::Open,
        }
    }
}

/// Compares without stopping at the first differing byte, so timing does not reveal a prefix.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

pub async fn metrics(
    req: actix_web::HttpRequest,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let access = req
        .app_data::<web::Data<MetricsAccess>>()
        .map(|a| a.get_ref().clone())
        .unwrap_or(MetricsAccess::Hidden);
    match access {
        MetricsAccess::Open => {}
        MetricsAccess::Hidden => return Err(ApiError::not_found("no such route")),
        MetricsAccess::Token(expected) => {
            let given = req
                .headers()
                .get(actix_web::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim());
            if !given.is_some_and(|t| same_secret(t.as_bytes(), expected.expose().as_bytes())) {
                return Err(ApiError::unauthorized(
                    "/metrics needs Authorization: Bearer <BACKFORGE_METRICS_TOKEN>",
                ));
            }
        }
    }
    Ok(HttpResponse::Ok()
        .content_type(runtime::metrics::CONTENT_TYPE)
        .body(metrics.render()))
}

/// Serves `/metrics` and `/health` on `BACKFORGE_METRICS_ADDR` when it is set; the caller stops
/// the returned server on shutdown.
pub fn metrics_listener(
    settings: &runtime::Settings,
    metrics: &Metrics,
) -> anyhow::Result<Option<actix_web::dev::ServerHandle>> {
    use anyhow::Context;
    let Some(addr) = settings.metrics_addr.clone() else {
        return Ok(None);
    };
    let access = web::Data::new(MetricsAccess::own_listener(settings));
    let metrics = web::Data::new(metrics.clone());
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(access.clone())
            .app_data(metrics.clone())
            .route("/health", web::get().to(health))
            .route("/metrics", web::get().to(self::metrics))
    })
    .workers(1)
    .bind(&addr)
    .with_context(|| format!("cannot listen on BACKFORGE_METRICS_ADDR {addr}"))?
    .disable_signals()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    tracing::info!(%addr, "metrics listening on their own address");
    Ok(Some(handle))
}

/// The methods each served path pattern answers: the router's own table is not readable, so this
/// is built from the same OpenAPI document the process serves (plus its undocumented routes), and
/// the fallback answers 405 with `Allow` for a known path asked with another method. Paths are
/// matched segment by segment (`{name}` takes one non-empty segment, as in actix's patterns),
/// never by regex: request metrics ask it for every request's route pattern.
#[derive(Clone, Default)]
pub struct Routes(Arc<Vec<Route>>);

struct Route {
    pattern: String,
    /// The pattern's segments after its leading `/`; `None` for a `{name}` segment.
    segments: Vec<Option<String>>,
    methods: Vec<Method>,
}

impl Route {
    fn new(pattern: String, methods: Vec<Method>) -> Self {
        let segments = pattern
            .split('/')
            .skip(1)
            .map(|s| (!(s.starts_with('{') && s.ends_with('}'))).then(|| s.to_owned()))
            .collect();
        Route {
            pattern,
            segments,
            methods,
        }
    }

    fn matches(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        let mut given = rest.split('/');
        for wanted in &self.segments {
            match (wanted, given.next()) {
                (_, None) => return false,
                (Some(literal), Some(segment)) if literal == segment => {}
                (None, Some(segment)) if !segment.is_empty() => {}
                _ => return false,
            }
        }
        given.next().is_none()
    }
}

impl Routes {
    /// Every documented operation of `doc`, plus `extra` routes the document leaves out.
    pub fn new(doc: &utoipa::openapi::OpenApi, extra: &[(&str, Method)]) -> Self {
        let mut table: Vec<(String, Vec<Method>)> = Vec::new();
        let mut add = |path: &str, method: Method| match table.iter_mut().find(|(p, _)| p == path) {
            Some((_, methods)) if methods.contains(&method) => {}
            Some((_, methods)) => methods.push(method),
            None => table.push((path.to_owned(), vec![method])),
        };
        for (path, item) in &doc.paths.paths {
            let operations = [
                (Method::GET, item.get.is_some()),
                (Method::PUT, item.put.is_some()),
                (Method::POST, item.post.is_some()),
                (Method::DELETE, item.delete.is_some()),
                (Method::PATCH, item.patch.is_some()),
                (Method::OPTIONS, item.options.is_some()),
                (Method::HEAD, item.head.is_some()),
                (Method::TRACE, item.trace.is_some()),
            ];
            for (method, present) in operations {
                if present {
                    add(path, method);
                }
            }
        }
        for (path, method) in extra {
            add(path, method.clone());
        }
        Routes(Arc::new(
            table
                .into_iter()
                .map(|(path, methods)| Route::new(path, methods))
                .collect(),
        ))
    }

    /// The route pattern `path` matches (the one with the most literal segments if several do).
    pub fn pattern(&self, path: &str) -> Option<&str> {
        self.0
            .iter()
            .filter(|r| r.matches(path))
            .max_by_key(|r| r.segments.iter().filter(|s| s.is_some()).count())
            .map(|r| r.pattern.as_str())
    }

    /// The methods served at `path`, in a stable order; empty when no route has this path.
    pub fn allowed(&self, path: &str) -> Vec<Method> {
        let mut methods: Vec<Method> = Vec::new();
        for route in self.0.iter() {
            if route.matches(path) {
                for m in &route.methods {
                    if !methods.contains(m) {
                        methods.push(m.clone());
                    }
                }
            }
        }
        methods.sort_by_key(|m| m.as_str().to_owned());
        methods
    }
}

/// The fallback of every server: 405 with `Allow` when the path is served with other methods,
/// else 404. Both are problem documents.
pub async fn unknown_route(req: HttpRequest, routes: Option<web::Data<Routes>>) -> HttpResponse {
    let allowed = routes.map(|r| r.allowed(req.path())).unwrap_or_default();
    if allowed.is_empty() || allowed.contains(req.method()) {
        return ApiError::not_found("no such route").error_response();
    }
    let list = allowed
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let mut response = ApiError::new(
        ProblemType::MethodNotAllowed,
        format!(
            "{} is not served here; this path answers {list}",
            req.method()
        ),
    )
    .error_response();
    if let Ok(value) = HeaderValue::from_str(&list) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

/// The routes outside `/api/v1` that `docs/api.md` lists (every server process serves them).
#[derive(utoipa::OpenApi)]
#[openapi(paths(health, ready))]
struct ShellDoc;

/// The routes of a process that serves no API (the projector or worker alone).
pub fn shell_routes() -> Routes {
    use utoipa::OpenApi;
    Routes::new(&ShellDoc::openapi(), &[("/metrics", Method::GET)])
}

/// The routes of an API process: its OpenAPI document, the document itself and `/metrics`.
pub fn api_routes(doc: &utoipa::openapi::OpenApi) -> Routes {
    Routes::new(
        doc,
        &[
            ("/api/v1/openapi.json", Method::GET),
            ("/metrics", Method::GET),
        ],
    )
}

/// The OpenAPI document of the routes this process serves.
pub fn openapi(command: bool, query: bool) -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    let mut doc = command_api::openapi::document();
    if !command {
        doc.paths = Default::default();
    }
    if query {
        doc.merge(query_api::document());
    }
    doc.merge(ShellDoc::openapi());
    doc.info.description =
        Some("Backforge: an event-sourced backend generator. See docs/api.md.".into());
    doc
}

/// Trims trailing slashes and merges repeated ones, as actix's `NormalizePath::trim` does, but
/// rewrites only a path that needs it: `NormalizePath` ran a regex over every path (`//+`, which
/// `regex-lite` searches with its PikeVM), a visible share of a read's CPU in W3's profile.
pub async fn normalize_path(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(path) = normalized(req.path()) {
        let head = req.head_mut();
        let mut parts = head.uri.clone().into_parts();
        let path_and_query = match parts.path_and_query.as_ref().and_then(|pq| pq.query()) {
            Some(query) => format!("{path}?{query}"),
            None => path,
        };
        // Built from a valid URI's path and query with slashes removed: always valid.
        parts.path_and_query = actix_web::http::uri::PathAndQuery::try_from(path_and_query).ok();
        if parts.path_and_query.is_some()
            && let Ok(uri) = actix_web::http::Uri::from_parts(parts)
        {
            req.match_info_mut().get_mut().update(&uri);
            req.head_mut().uri = uri;
        }
    }
    next.call(req).await
}

/// The trimmed, slash-merged form of `path`, or `None` when it is already in that form.
fn normalized(path: &str) -> Option<String> {
    let needs = path.len() > 1 && (path.ends_with('/') || path.contains("//"));
    if !needs {
        return None;
    }
    let mut out = String::with_capacity(path.len());
    for c in path.trim_end_matches('/').chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    (out != path).then_some(out)
}

/// Counts requests and their latency by method, route pattern and status.
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let routes = req.app_data::<web::Data<Routes>>().cloned();
    let method = req.method().to_string();
    let response = next.call(req).await?;
    if let Some(metrics) = metrics {
        // The pattern, not the path: ids in paths would make a series per resource. From the
        // segment table: actix's `match_pattern` runs each pattern's regex again.
        let path = response.request().path();
        let route = match &routes {
            Some(routes) => routes.pattern(path).map(str::to_owned),
            None => response.request().match_pattern(),
        }
        .unwrap_or_else(|| "unmatched".into());
        let status = response.status().as_u16().to_string();
        let labels = vec![("method", method), ("route", route), ("status", status)];
        metrics.inc("backforge_http_requests_total", labels.clone(), 1);
        metrics.observe(
            "backforge_http_request_duration_seconds",
            labels[..2].to_vec(),
            started.elapsed().as_secs_f64(),
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::{Route, Routes, normalized};
    use actix_web::http::Method;
    use std::sync::Arc;

    #[test]
    fn routes_match_by_segment_as_actix_patterns_do() {
        let routes = Routes(Arc::new(vec![
            Route::new("/api/v1/projects".into(), vec![Method::GET, Method::POST]),
            Route::new(
                "/api/v1/projects/{id}".into(),
                vec![Method::GET, Method::PUT],
            ),
            Route::new(
                "/api/v1/projects/{id}/features/{feature_id}".into(),
                vec![Method::GET],
            ),
            Route::new("/api/v1/auth/profile".into(), vec![Method::PUT]),
            Route::new("/api/v1/{section}/profile".into(), vec![Method::GET]),
            Route::new("/health".into(), vec![Method::GET]),
        ]));
        assert_eq!(routes.pattern("/api/v1/projects"), Some("/api/v1/projects"));
        assert_eq!(
            routes.pattern("/api/v1/projects/abc"),
            Some("/api/v1/projects/{id}")
        );
        assert_eq!(
            routes.pattern("/api/v1/projects/a/features/b"),
            Some("/api/v1/projects/{id}/features/{feature_id}")
        );
        assert_eq!(routes.pattern("/api/v1/projects/a/features"), None);
        assert_eq!(routes.pattern("/api/v1/projects/a/b/c/d"), None);
        assert_eq!(routes.pattern("/api/v1/projects//"), None);
        assert_eq!(routes.pattern("/health"), Some("/health"));
        assert_eq!(routes.pattern("/health/x"), None);
        assert_eq!(routes.pattern("health"), None);
        // The most literal pattern names the route; methods are the union of all that match.
        assert_eq!(
            routes.pattern("/api/v1/auth/profile"),
            Some("/api/v1/auth/profile")
        );
        assert_eq!(
            routes.allowed("/api/v1/auth/profile"),
            vec![Method::GET, Method::PUT]
        );
        assert_eq!(
            routes.allowed("/api/v1/projects/x"),
            vec![Method::GET, Method::PUT]
        );
        assert!(routes.allowed("/nowhere").is_empty());
    }

    #[test]
    fn paths_are_normalised_as_normalize_path_trim_does() {
        assert_eq!(normalized("/"), None);
        assert_eq!(normalized(""), None);
        assert_eq!(normalized("/api/v1/projects/x"), None);
        assert_eq!(
            normalized("/api/v1/projects/x/").as_deref(),
            Some("/api/v1/projects/x")
        );
        assert_eq!(
            normalized("/api//v1///projects/x//").as_deref(),
            Some("/api/v1/projects/x")
        );
        assert_eq!(normalized("//").as_deref(), Some("/"));
        assert_eq!(normalized("///a").as_deref(), Some("/a"));
    }
}
