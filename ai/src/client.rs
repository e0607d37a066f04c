//! The one HTTP client every call goes through: timeouts, retries, and answers read into types.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::Value;
use tokio::time::Instant;

use crate::completion::{Answer, CompletionRequest, Content};
use crate::config::{ANTHROPIC_VERSION, ModelConfig, Provider};
use crate::error::{AiError, TransportFailure};
use crate::foreign::{self, ERROR_BODY_BYTES, RAW_ANSWER_BYTES, TRANSPORT_DETAIL_BYTES};
use crate::key::{ApiKey, KeySource};
use crate::money;
use crate::network::{GuardedResolver, Lookup, NetworkPolicy, Refusal, SystemLookup};
use crate::wire;

/// The most of a success body read (a larger one is unusable, not a reason to run out of memory).
pub const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// The most of an error body read before it is redacted and cut to 1 KiB.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// A text answer (no schema) as returned, at most this long.
pub const MAX_TEXT_ANSWER_BYTES: usize = 256 * 1024;

/// How long establishing a connection may take, within the call's timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How retryable failures (connection errors, 408, 429, 5xx) are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first try (at most 3, within the caller's deadline).
    pub max_retries: u32,
    /// The wait before the first retry when the provider names none; doubled for each next one.
    pub base_backoff: Duration,
    /// The longest computed wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1-based) when no `Retry-After` was given.
    fn backoff(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.base_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Calls models. Cheap to clone (one connection pool); build one per policy.
#[derive(Clone)]
pub struct AiClient {
    http: reqwest::Client,
    policy: NetworkPolicy,
    retry: RetryPolicy,
    keys: KeySource,
}

impl std::fmt::Debug for AiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AiClient")
            .field("policy", &self.policy)
            .field("retry", &self.retry)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl AiClient {
    /// A client on the system's resolver with the default retries.
    pub fn new(policy: NetworkPolicy) -> Result<Self, AiError> {
        Self::with_lookup(policy, Arc::new(SystemLookup), RetryPolicy::default())
    }

    /// A client whose names are looked up by `lookup` (tests map test host names with it) and
    /// whose every resolved address is checked against `policy` before a connection is made.
    pub fn with_lookup(
        policy: NetworkPolicy,
        lookup: Arc<dyn Lookup>,
        retry: RetryPolicy,
    ) -> Result<Self, AiError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { policy, lookup }))
            .https_only(policy.require_https)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("backforge-ai/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AiError::Request(format!("the HTTP client cannot be built: {e}")))?;
        Ok(Self {
            http,
            policy,
            retry,
            keys: KeySource::Environment,
        })
    }

    /// The same client reading keys from `keys` (tests; the product reads the environment).
    pub fn with_keys(mut self, keys: KeySource) -> Self {
        self.keys = keys;
        self
    }

    pub fn policy(&self) -> NetworkPolicy {
        self.policy
    }

    /// One completion from `model`, finished by `deadline` (retries and their waits included).
    /// The key is read from the model's variable now; nothing this returns holds it.
    pub async fn complete(
        &self,
        model: &ModelConfig,
        request: &CompletionRequest,
        deadline: Instant,
    ) -> Result<Answer, AiError> {
        let started = Instant::now();
        model.validate()?;
        let validator = match &request.json_schema {
            Some(schema) => {
                if !schema.valid_name() {
                    return Err(AiError::Request(
                        "the schema's name is 1 to 64 letters, digits, `_` or `-`".into(),
                    ));
                }
                let built = jsonschema::options()
                    .offline()
                    .with_pattern_options(jsonschema::PatternOptions::regex())
                    .build(&schema.schema)
                    .map_err(|e| {
                        AiError::Request(format!("the JSON Schema cannot be used: {}", e.masked()))
                    })?;
                Some(built)
            }
            None => None,
        };
        let url = model.endpoint()?;
        self.policy.check_url(&url)?;
        let key = model
            .api_key_env
            .as_deref()
            .map(|env| self.keys.read(env))
            .transpose()?;
        let headers = headers(model, key.as_ref())?;
        let body = serde_json::to_vec(&wire::body(model, request))
            .map_err(|e| AiError::Request(format!("the request cannot be encoded: {e}")))?;

        let mut tries: u32 = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(AiError::Timeout {
                    after_ms: millis(started.elapsed()),
                    tries,
                });
            }
            let timeout = model.timeout().min(remaining);
            tries += 1;
            let sent = self
                .http
                .post(url.clone())
                .headers(headers.clone())
                .body(body.clone());
            let outcome = match tokio::time::timeout(timeout, send(sent)).await {
                Err(_elapsed) => {
                    tracing::warn!(model = %model.model, tries, "AI call timed out");
                    return Err(AiError::Timeout {
                        after_ms: millis(started.elapsed()),
                        tries,
                    });
                }
                Ok(outcome) => outcome,
            };
            let (failure, wait) = match outcome {
                Sent::Failed(error) => {
                    if let Some(refusal) = refusal_in(&error) {
                        return Err(AiError::Refused(refusal));
                    }
                    let detail =
                        foreign::clean(&describe(&error), key.as_ref(), TRANSPORT_DETAIL_BYTES);
                    (
                        TransportFailure::Connection(detail),
                        self.retry.backoff(tries),
                    )
                }
                Sent::Answered {
                    status,
                    retry_after,
                    body,
                    truncated,
                } => {
                    if status.is_success() {
                        return self.read_answer(
                            model,
                            request,
                            validator.as_ref(),
                            key.as_ref(),
                            &body,
                            truncated,
                            started,
                            tries,
                        );
                    }
                    let text = foreign::clean(
                        &String::from_utf8_lossy(&body),
                        key.as_ref(),
                        ERROR_BODY_BYTES,
                    );
                    if !retryable(status) {
                        tracing::warn!(
                            model = %model.model,
                            status = status.as_u16(),
                            tries,
                            "AI call refused by the provider"
                        );
                        return Err(AiError::Status {
                            code: status.as_u16(),
                            body: text,
                            tries,
                        });
                    }
                    (
                        TransportFailure::Status {
                            code: status.as_u16(),
                            body: text,
                        },
                        retry_after.unwrap_or_else(|| self.retry.backoff(tries)),
                    )
                }
            };
            let retries_done = tries - 1;
            // Compared as durations: `now + wait` overflows (panics) on a huge `Retry-After`.
            let fits = wait < deadline.saturating_duration_since(Instant::now());
            if retries_done >= self.retry.max_retries || !fits {
                tracing::warn!(
                    model = %model.model,
                    tries,
                    failure = %failure_kind(&failure),
                    "AI call failed after retries"
                );
                return Err(AiError::Transport {
                    tries,
                    last: failure,
                });
            }
            tracing::info!(
                model = %model.model,
                tries,
                wait_ms = millis(wait),
                failure = %failure_kind(&failure),
                "AI call retried"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// A success status's body made an [`Answer`], or [`AiError::Malformed`] with its usage and
    /// cost when the content cannot be used.
    #[allow(clippy::too_many_arguments)]
    fn read_answer(
        &self,
        model: &ModelConfig,
        request: &CompletionRequest,
        validator: Option<&jsonschema::Validator>,
        key: Option<&ApiKey>,
        body: &[u8],
        truncated: bool,
        started: Instant,
        tries: u32,
    ) -> Result<Answer, AiError> {
        let latency_ms = millis(started.elapsed());
        let malformed = |detail: String, raw: &str, usage: crate::Usage| {
            let cost_usd = money::cost(
                usage.input_tokens,
                usage.output_tokens,
                model.input_usd_per_mtok,
                model.output_usd_per_mtok,
            );
            AiError::Malformed {
                detail: foreign::clean(&detail, key, ERROR_BODY_BYTES),
                raw: foreign::clean(raw, key, RAW_ANSWER_BYTES),
                usage,
                cost_usd,
                latency_ms,
                tries,
            }
        };
        let text = String::from_utf8_lossy(body);
        if truncated {
            return Err(malformed(
                format!("the answer is over {MAX_ANSWER_BYTES} bytes"),
                &text,
                crate::Usage::default(),
            ));
        }
        let Ok(envelope) = serde_json::from_slice::<Value>(body) else {
            return Err(malformed(
                "the answer's body is not JSON".into(),
                &text,
                crate::Usage::default(),
            ));
        };
        let Some(parsed) = wire::parse(model.provider, request, &envelope) else {
            return Err(malformed(
                format!("the answer is not a {} answer", model.provider.as_str()),
                &text,
                crate::Usage::default(),
            ));
        };
        let usage = parsed.usage;
        let content = match parsed.content {
            Err(unusable) => return Err(malformed(unusable.detail, &unusable.raw, usage)),
            Ok(Content::Json(value)) => {
                if let Some(validator) = validator {
                    let errors: Vec<String> = validator
                        .iter_errors(&value)
                        .take(5)
                        .map(|e| format!("at `{}`: {}", e.instance_path(), e.masked()))
                        .collect();
                    if !errors.is_empty() {
                        return Err(malformed(
                            format!(
                                "the content does not match the schema: {}",
                                errors.join("; ")
                            ),
                            &value.to_string(),
                            usage,
                        ));
                    }
                }
                Content::Json(foreign::clean_value(value, key))
            }
            Ok(Content::Text(text)) => {
                Content::Text(foreign::clean(&text, key, MAX_TEXT_ANSWER_BYTES))
            }
        };
        let cost_usd = money::cost(
            usage.input_tokens,
            usage.output_tokens,
            model.input_usd_per_mtok,
            model.output_usd_per_mtok,
        );
        tracing::debug!(
            model = %model.model,
            tries,
            latency_ms,
            input_tokens = usage.input_tokens,
            output_tokens = usage.output_tokens,
            "AI call answered"
        );
        Ok(Answer {
            content,
            usage,
            cost_usd,
            latency_ms,
            tries,
        })
    }
}

/// What one HTTP request came to.
enum Sent {
    Failed(reqwest::Error),
    Answered {
        status: StatusCode,
        retry_after: Option<Duration>,
        body: Vec<u8>,
        truncated: bool,
    },
}

/// Sends and reads the body up to its cap (the cap of an error body is smaller).
async fn send(request: RequestBuilder) -> Sent {
    let mut response = match request.send().await {
        Ok(r) => r,
        Err(e) => return Sent::Failed(e),
    };
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let cap = if status.is_success() {
        MAX_ANSWER_BYTES
    } else {
        MAX_ERROR_BODY_BYTES
    };
    let mut body = Vec::new();
    let mut truncated = false;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = cap - body.len();
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    truncated = true;
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            // A body cut off mid-way: a connection failure for a success (retried), and the part
            // read is enough for an error status.
            Err(e) if status.is_success() => return Sent::Failed(e),
            Err(_) => break,
        }
    }
    Sent::Answered {
        status,
        retry_after,
        body,
        truncated,
    }
}

/// Statuses worth another try: 408, 429 and every 5xx.
fn retryable(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Each provider's headers: the key in its header (marked sensitive, so no debug output of the
/// request shows it) and Anthropic's version.
fn headers(model: &ModelConfig, key: Option<&ApiKey>) -> Result<HeaderMap, AiError> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if model.provider == Provider::Anthropic {
        headers.insert(
            "anthropic-version",
            HeaderValue::from_static(ANTHROPIC_VERSION),
        );
    }
    if let Some(key) = key {
        let (name, value) = match model.provider {
            Provider::Openai => (AUTHORIZATION.as_str(), format!("Bearer {}", key.expose())),
            Provider::AzureOpenai => ("api-key", key.expose().to_owned()),
            Provider::Anthropic => ("x-api-key", key.expose().to_owned()),
        };
        let mut value = HeaderValue::from_str(&value).map_err(|_| {
            AiError::Request(format!(
                "the key in {} cannot be sent in a header",
                model.api_key_env.as_deref().unwrap_or_default()
            ))
        })?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    Ok(headers)
}

/// The SSRF refusal the guarded resolver raised, if that is what failed.
fn refusal_in(error: &reqwest::Error) -> Option<Refusal> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(refusal) = e.downcast_ref::<Refusal>() {
            return Some(refusal.clone());
        }
        current = e.source();
    }
    None
}

/// An error and its causes on one line.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut current = std::error::Error::source(error);
    while let Some(e) = current {
        text.push_str(": ");
        text.push_str(&e.to_string());
        current = e.source();
    }
    text
}

fn failure_kind(failure: &TransportFailure) -> String {
    match failure {
        TransportFailure::Connection(_) => "connection".into(),
        TransportFailure::Status { code, .. } => format!("status {code}"),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_as_seconds_or_an_http_date() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        let later = SystemTime::now() + Duration::from_secs(120);
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_str(&httpdate::fmt_http_date(later)).unwrap(),
        );
        let wait = retry_after(&headers).unwrap();
        assert!(
            wait > Duration::from_secs(110) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff(1), Duration::from_millis(500));
        assert_eq!(policy.backoff(2), Duration::from_secs(1));
        assert_eq!(policy.backoff(3), Duration::from_secs(2));
        assert_eq!(policy.backoff(30), Duration::from_secs(8));
    }

    #[test]
    fn only_408_429_and_5xx_are_retried() {
        for (code, want) in [
            (408, true),
            (429, true),
            (500, true),
            (503, true),
            (400, false),
            (401, false),
            (302, false),
        ] {
            assert_eq!(
                retryable(StatusCode::from_u16(code).unwrap()),
                want,
                "{code}"
            );
        }
    }
}
