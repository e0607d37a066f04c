//! Query-string parameters and opaque cursors shared by every read.

use std::collections::HashMap;

use actix_web::HttpRequest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use runtime::ApiError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The parsed query string; a malformed one is a 400.
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn parse(req: &HttpRequest) -> Result<Self, ApiError> {
        Self::of(Self::pairs(req)?)
    }

    /// The parameters `pairs` as one map; a name given twice is a 400.
    pub fn of(pairs: impl IntoIterator<Item = (String, String)>) -> Result<Self, ApiError> {
        let mut map = HashMap::new();
        for (k, v) in pairs {
            if map.contains_key(&k) {
                return Err(ApiError::malformed(format!(
                    "query parameter `{k}` is given twice"
                )));
            }
            map.insert(k, v);
        }
        Ok(Self(map))
    }

    /// Every parameter in order, repeated names kept (a record list's `f__in` may repeat).
    pub fn pairs(req: &HttpRequest) -> Result<Vec<(String, String)>, ApiError> {
        let decode = |s: &str| {
            let s = s.replace('+', " ");
            percent_decode(&s).ok_or_else(|| {
                ApiError::malformed("the query string is not valid percent-encoding")
            })
        };
        req.query_string()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                Ok((decode(k)?, decode(v)?))
            })
            .collect()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A whole number parameter: not a number → 400.
    pub fn number(&self, key: &str) -> Result<Option<u64>, ApiError> {
        self.get(key)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::malformed(format!("query parameter `{key}` must be a whole number"))
                })
            })
            .transpose()
    }

    /// `limit`: 1–200, default 50; out of range → 422.
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(50),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if (1..=200).contains(&n) => Ok(n as usize),
                Ok(_) => Err(ApiError::invalid_field(
                    "limit",
                    "must be between 1 and 200",
                )),
                Err(_) => Err(ApiError::malformed(
                    "query parameter `limit` must be a whole number",
                )),
            },
        }
    }

    /// The decoded `cursor`, if any; anything we did not issue → 400.
    pub fn cursor<T: DeserializeOwned>(&self) -> Result<Option<T>, ApiError> {
        self.get("cursor").map(decode_cursor).transpose()
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The cursor of newest-first lists: the next page holds rows strictly before `(at, id)`.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct NewestFirst {
    /// RFC 3339.
    pub at: String,
    pub id: uuid::Uuid,
}

impl Query {
    /// Where a newest-first page starts: before the cursor's `(at, id)`, or from the newest row.
    pub fn newest_first(&self) -> Result<(time::OffsetDateTime, uuid::Uuid), ApiError> {
        match self.cursor::<NewestFirst>()? {
            Some(c) => Ok((
                time::OffsetDateTime::parse(&c.at, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| ApiError::malformed("the cursor is not one this API issued"))?,
                c.id,
            )),
            None => Ok((
                time::OffsetDateTime::now_utc() + time::Duration::days(36500),
                uuid::Uuid::max(),
            )),
        }
    }
}

pub fn encode_cursor<T: Serialize>(value: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default())
}

pub fn decode_cursor<T: DeserializeOwned>(raw: &str) -> Result<T, ApiError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| ApiError::malformed("the cursor is not one this API issued"))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| ApiError::malformed("the cursor is not one this API issued"))
}

/// Where an offset-paged list (a project's features, its functions) continues.
#[derive(Serialize, Deserialize)]
struct OffsetCursor {
    offset: usize,
}

/// The page of `items` that the request's `limit` and `cursor` ask for, as `{items, next_cursor}`.
pub fn offset_page<T: Serialize>(
    query: &Query,
    items: &[T],
) -> Result<serde_json::Value, ApiError> {
    let limit = query.limit()?;
    let offset = query.cursor::<OffsetCursor>()?.map_or(0, |c| c.offset);
    let page: Vec<&T> = items.iter().skip(offset).take(limit).collect();
    let next_cursor = (offset.saturating_add(limit) < items.len()).then(|| {
        encode_cursor(&OffsetCursor {
            offset: offset + limit,
        })
    });
    Ok(serde_json::json!({"items": page, "next_cursor": next_cursor}))
}
