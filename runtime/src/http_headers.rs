//! The small header and timestamp spellings both APIs share: RFC 3339 instants, entity tags and
//! `If-None-Match`, written once so the two sides cannot drift apart.

use actix_web::HttpRequest;
use actix_web::http::header::IF_NONE_MATCH;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An instant as the API writes it (RFC 3339, UTC offset as stored).
pub fn rfc3339(t: OffsetDateTime) -> String {
    // Formatting fails only for years outside 0..=9999, which no stored instant has.
    t.format(&Rfc3339).unwrap_or_default()
}

/// A strong entity tag for a version or a content hash: the value quoted (RFC 9110 §8.8.3).
pub fn etag(value: impl std::fmt::Display) -> String {
    format!("\"{value}\"")
}

/// Whether the request's `If-None-Match` names `tag` (as [`etag`] writes it) or is `*`: the
/// client's copy is current. RFC 9110 compares `If-None-Match` weakly, so `W/"3"` matches `"3"`.
pub fn if_none_match(req: &HttpRequest, tag: &str) -> bool {
    let Some(value) = req
        .headers()
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    value
        .split(',')
        .map(|t| t.trim())
        .map(|t| t.strip_prefix("W/").unwrap_or(t))
        .any(|t| t == "*" || t == tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn an_etag_is_the_value_quoted() {
        assert_eq!(etag(3), "\"3\"");
        assert_eq!(etag("ab12"), "\"ab12\"");
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_a_list_or_a_star() {
        let tag = etag(3);
        let matches = |value: &str| {
            let req = TestRequest::default()
                .insert_header((IF_NONE_MATCH, value))
                .to_http_request();
            if_none_match(&req, &tag)
        };
        assert!(matches("\"3\""));
        assert!(matches("W/\"3\""));
        assert!(matches("\"1\", \"3\""));
        assert!(matches("*"));
        assert!(!matches("\"4\""));
        assert!(!matches("3"));
        assert!(!if_none_match(
            &TestRequest::default().to_http_request(),
            &tag
        ));
    }

    #[test]
    fn rfc3339_writes_utc_with_a_z() {
        let t = OffsetDateTime::from_unix_timestamp(0).expect("epoch");
        assert_eq!(rfc3339(t), "1970-01-01T00:00:00Z");
    }
}
