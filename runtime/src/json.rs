//! The JSON body extractor: 415 for non-JSON, 413 over the limit, 400 for malformed JSON, and 422
//! with a JSON Pointer for unknown fields and wrong types.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{FromRequest, HttpRequest};
use domain::error::FieldError;
use futures::StreamExt;
use futures::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use crate::problem::{ApiError, ProblemType};

/// The largest accepted JSON body; put it in app data to change the 1 MiB default.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

impl Default for BodyLimit {
    fn default() -> Self {
        BodyLimit(1024 * 1024)
    }
}

/// A deserialised JSON body together with its raw bytes (idempotency keys fingerprint them).
#[derive(Debug)]
pub struct Json<T> {
    pub value: T,
    pub raw: Bytes,
}

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.value
    }
}

fn is_json(req: &HttpRequest) -> bool {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req.app_data::<BodyLimit>().copied().unwrap_or_default().0;
        let json = is_json(req);
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if !json {
                return Err(ApiError::new(
                    ProblemType::UnsupportedMediaType,
                    "the body must be JSON, sent with Content-Type: application/json",
                ));
            }
            let too_large = || {
                ApiError::new(
                    ProblemType::PayloadTooLarge,
                    format!("the body must not exceed {limit} bytes"),
                )
            };
            if declared.is_some_and(|n| n > limit) {
                return Err(too_large());
            }
            let mut body = BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|_| ApiError::malformed("the body could not be read"))?;
                if body.len() + chunk.len() > limit {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            let raw = body.freeze();
            let value = parse::<T>(&raw)?;
            Ok(Json { value, raw })
        })
    }
}

/// Deserialises `bytes`, telling malformed JSON (400) from well-formed but invalid content (422).
///
/// Whether the bytes are JSON at all is decided first, on its own: serde reports some shape
/// mismatches (a number where an enum's string belongs) as syntax errors, and a wrong shape before a
/// syntax error as a data error, so its error category alone cannot tell the two apart.
///
/// A body holding U+0000 anywhere (a value or a key) is refused with a 422 at its pointer: no event
/// may carry one (PostgreSQL's `jsonb` refuses it), and answering here is clearer than refusing the
/// event the command would append.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Err(ApiError::malformed("the body is not valid UTF-8"));
    };
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        return Err(ApiError::malformed(format!(
            "the body is not valid JSON: {e}"
        )));
    }
    if domain::text::holds_nul_escape(text) {
        let pointer = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| domain::text::nul_pointer(&v))
            .unwrap_or_default();
        return Err(ApiError::invalid_field(
            &pointer,
            "must not contain the character U+0000 (NUL)",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    match result {
        Ok(value) => Ok(value),
        Err(err) => {
            let pointer = pointer_of(err.path());
            let inner = err.into_inner();
            let message = strip_position(&inner.to_string());
            // serde_path_to_error already ends the path with an unknown key; older versions stop
            // at its parent, so add it only when missing.
            let field = match unknown_field(&message) {
                Some(name) if !pointer.ends_with(&format!("/{}", escape(&name))) => {
                    format!("{pointer}/{}", escape(&name))
                }
                _ => pointer,
            };
            Err(ApiError::invalid(
                "the body does not match the expected shape",
                vec![FieldError { field, message }],
            ))
        }
    }
}

fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("/{index}")),
            Segment::Map { key } => out.push_str(&format!("/{}", escape(key))),
            Segment::Enum { variant } => out.push_str(&format!("/{}", escape(variant))),
            Segment::Unknown => {}
        }
    }
    out
}

/// RFC 6901 escaping of one reference token.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        name: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        items: Vec<Inner>,
        count: Option<u32>,
    }

    fn field_of(err: ApiError) -> (ProblemType, Option<String>) {
        let p = err.problem();
        (
            err.kind(),
            p.errors.and_then(|e| e.first().map(|f| f.field.clone())),
        )
    }

    #[test]
    fn an_unknown_field_is_a_422_pointing_at_it() {
        let err = parse::<Outer>(br#"{"items":[{"name":"a","role":"admin"}]}"#).unwrap_err();
        assert_eq!(
            field_of(err),
            (ProblemType::ValidationFailed, Some("/items/0/role".into()))
        );
    }

    #[test]
    fn a_wrong_type_is_a_422_pointing_at_the_value() {
        let err = parse::<Outer>(br#"{"items":[],"count":"three"}"#).unwrap_err();
        assert_eq!(
            field_of(err),
            (ProblemType::ValidationFailed, Some("/count".into()))
        );
    }

    #[test]
    fn malformed_json_is_a_400() {
        for body in [
            &b"{"[..],
            b"{\"items\": [,]}",
            b"",
            b"{\"items\":[]} trailing",
        ] {
            let err = parse::<Outer>(body).unwrap_err();
            assert_eq!(
                err.kind(),
                ProblemType::MalformedRequest,
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn a_wrong_type_for_an_enum_is_a_422_and_a_wrong_prefix_before_bad_syntax_is_a_400() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        enum Colour {
            Red,
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Paint {
            colour: Colour,
        }
        let err = parse::<Paint>(br#"{"colour": 1}"#).unwrap_err();
        assert_eq!(
            field_of(err),
            (ProblemType::ValidationFailed, Some("/colour".into()))
        );
        let err = parse::<Paint>(br#"{"colour": 1} trailing"#).unwrap_err();
        assert_eq!(err.kind(), ProblemType::MalformedRequest);
        let err = parse::<Paint>(br#"{"colour":"#).unwrap_err();
        assert_eq!(err.kind(), ProblemType::MalformedRequest);
    }

    #[test]
    fn a_nul_anywhere_is_a_422_at_its_pointer() {
        let err = parse::<Outer>(br#"{"items":[{"name":"a\u0000b"}]}"#).unwrap_err();
        assert_eq!(
            field_of(err),
            (ProblemType::ValidationFailed, Some("/items/0/name".into()))
        );
        // In a key, even one the target type does not know.
        let err = parse::<Outer>(br#"{"it\u0000ems":[]}"#).unwrap_err();
        assert_eq!(err.kind(), ProblemType::ValidationFailed);
        // Six characters that only look like the escape are text.
        assert!(parse::<Outer>(br#"{"items":[{"name":"a\\u0000b"}]}"#).is_ok());
    }

    #[test]
    fn bytes_that_are_not_utf8_are_a_400() {
        let err = parse::<Outer>(b"{\"items\":[{\"name\":\"\xff\"}]}").unwrap_err();
        assert_eq!(err.kind(), ProblemType::MalformedRequest);
    }

    #[test]
    fn a_missing_required_field_is_a_422() {
        let err = parse::<Outer>(b"{}").unwrap_err();
        assert_eq!(err.kind(), ProblemType::ValidationFailed);
    }
}
