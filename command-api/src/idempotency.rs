//! Idempotency keys: a retried write returns the first answer and appends nothing.
//!
//! The record is claimed (`in_flight`) before the command runs, completed in the same transaction
//! as the append, stored for 4xx answers (except a 409 in flight or concurrent modification and a
//! 429, which a retry may change), and deleted after a 5xx so the client may retry.

use std::time::Duration;

use actix_web::HttpRequest;
use deadpool_postgres::{GenericClient, Pool};
use event_store::StoreError;
use event_store::postgres::map_pg;
use runtime::{ApiError, ProblemType};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub const HEADER: &str = "Idempotency-Key";

/// A claim still `in_flight` after this long belongs to a request that died; a retry may take it.
const ABANDONED_AFTER: Duration = Duration::from_secs(60);

/// The stored answer of a completed request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredAnswer {
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// `true` when the body is a problem document.
    #[serde(default)]
    pub problem: bool,
}

/// A key this request owns, scoped to (caller, method, route): `path` is the route's pattern and
/// its typed ids (`/api/v1/projects/{id}/features 0192…`), never the path as the client spelt it,
/// so `/projects/ABC…` and `/projects/abc…` are one scope.
#[derive(Debug, Clone)]
pub struct Claim {
    pub user_id: Uuid,
    pub method: String,
    pub path: String,
    pub key: String,
}

/// What the key says about this request.
pub enum Begin {
    /// Run the command; complete or release the claim afterwards.
    Run(Claim),
    /// A completed earlier request with the same key and body: answer with this.
    Replay(StoredAnswer),
}

/// Reads and checks the header: ≤ 255 printable ASCII characters. `None` when absent.
pub fn key_of(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get(HEADER) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| {
            !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| (0x21..=0x7e).contains(&b))
        })
        .ok_or_else(|| {
            ApiError::malformed("Idempotency-Key must be 1-255 printable ASCII characters")
        })?;
    Ok(Some(key.to_owned()))
}

pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update([0]);
    h.update(path.as_bytes());
    h.update([0]);
    h.update(body);
    h.finalize().to_vec()
}

/// Claims `key` for this request, or explains why it cannot run.
pub async fn begin(
    pool: &Pool,
    claim: Claim,
    fingerprint: &[u8],
    ttl: Duration,
) -> Result<Begin, ApiError> {
    let client = pool.get().await?;
    let ttl_secs = ttl.as_secs_f64();
    let abandoned_secs = ABANDONED_AFTER.as_secs_f64();
    let stmt = client
        .prepare_cached(
            "INSERT INTO idempotency_keys (user_id, method, path, key, fingerprint, state)
             VALUES ($1, $2, $3, $4, $5, 'in_flight')
             ON CONFLICT (user_id, method, path, key) DO UPDATE
                SET fingerprint = EXCLUDED.fingerprint, state = 'in_flight', response = NULL,
                    created_at = now(), completed_at = NULL
              WHERE idempotency_keys.created_at < now() - make_interval(secs => $6)
                 OR (idempotency_keys.state = 'in_flight'
                     AND idempotency_keys.created_at < now() - make_interval(secs => $7))
             RETURNING 1",
        )
        .await?;
    let claimed = client
        .query_opt(
            &stmt,
            &[
                &claim.user_id,
                &claim.method,
                &claim.path,
                &claim.key,
                &fingerprint,
                &ttl_secs,
                &abandoned_secs,
            ],
        )
        .await?;
    if claimed.is_some() {
        return Ok(Begin::Run(claim));
    }
    let stmt = client
        .prepare_cached(
            "SELECT fingerprint, state, response FROM idempotency_keys
             WHERE user_id = $1 AND method = $2 AND path = $3 AND key = $4",
        )
        .await?;
    let row = client
        .query_opt(
            &stmt,
            &[&claim.user_id, &claim.method, &claim.path, &claim.key],
        )
        .await?
        .ok_or_else(|| {
            // Deleted between our insert and select (a 5xx released it): the client may retry.
            ApiError::conflict(
                ProblemType::IdempotencyKeyInFlight,
                "a request with this Idempotency-Key is in flight; retry shortly",
            )
        })?;
    let stored_fingerprint: Vec<u8> = row.try_get(0)?;
    if stored_fingerprint != fingerprint {
        return Err(ApiError::new(
            ProblemType::IdempotencyKeyReused,
            "this Idempotency-Key was used with a different request body",
        ));
    }
    let state: String = row.try_get(1)?;
    let response: Option<serde_json::Value> = row.try_get(2)?;
    match (state.as_str(), response) {
        ("done", Some(response)) => {
            let stored = serde_json::from_value(response).map_err(ApiError::internal)?;
            Ok(Begin::Replay(stored))
        }
        _ => Err(ApiError::conflict(
            ProblemType::IdempotencyKeyInFlight,
            "a request with this Idempotency-Key is still in flight",
        )),
    }
}

/// Stores the answer; called inside the append transaction when the request appended events.
pub async fn complete<C: GenericClient>(
    client: &C,
    claim: &Claim,
    response: &StoredAnswer,
) -> Result<(), StoreError> {
    let mut value = serde_json::to_value(response).map_err(|e| StoreError::Backend(e.into()))?;
    // `jsonb` refuses U+0000; an answer may echo one from the request (a problem's detail or a
    // pointer), so the stored copy shows it as U+FFFD rather than failing the request.
    replace_nuls(&mut value);
    let stmt = client
        .prepare_cached(
            "UPDATE idempotency_keys SET state = 'done', response = $5, completed_at = now()
             WHERE user_id = $1 AND method = $2 AND path = $3 AND key = $4",
        )
        .await
        .map_err(map_pg)?;
    client
        .execute(
            &stmt,
            &[
                &claim.user_id,
                &claim.method,
                &claim.path,
                &claim.key,
                &value,
            ],
        )
        .await
        .map_err(map_pg)?;
    Ok(())
}

fn replace_nuls(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) if s.contains('\0') => {
            *s = s.replace('\0', &domain::text::NUL_REPLACEMENT.to_string());
        }
        Value::Array(items) => items.iter_mut().for_each(replace_nuls),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let entries = std::mem::take(map);
                for (k, v) in entries {
                    map.insert(
                        k.replace('\0', &domain::text::NUL_REPLACEMENT.to_string()),
                        v,
                    );
                }
            }
            map.values_mut().for_each(replace_nuls);
        }
        _ => {}
    }
}

/// Forgets the claim after a 5xx, so a retry runs the command again.
pub async fn release(pool: &Pool, claim: &Claim) {
    let result = async {
        let client = pool.get().await?;
        client
            .execute(
                "DELETE FROM idempotency_keys WHERE user_id = $1 AND method = $2 AND path = $3 AND key = $4",
                &[&claim.user_id, &claim.method, &claim.path, &claim.key],
            )
            .await?;
        Ok::<_, ApiError>(())
    }
    .await;
    if let Err(error) = result {
        tracing::warn!(
            ?error,
            "could not release an idempotency key; it frees itself after a minute"
        );
    }
}

/// Deletes records older than the retention period.
pub async fn purge_expired(pool: &Pool, ttl: Duration) -> Result<u64, ApiError> {
    let client = pool.get().await?;
    Ok(client
        .execute(
            "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)",
            &[&ttl.as_secs_f64()],
        )
        .await?)
}
