//! Refresh tokens: random, stored only as SHA-256, rotated on every use; a spent token used again
//! revokes its whole family (someone else holds a copy).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use deadpool_postgres::Pool;
use runtime::ApiError;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::execute::SideWrite;

/// A fresh refresh token: the string the client keeps, and the hash the server keeps.
pub struct RefreshToken {
    pub plain: String,
    pub hash: Vec<u8>,
}

impl RefreshToken {
    pub fn generate() -> Self {
        let bytes: [u8; 32] = rand::random();
        let plain = format!("bfr_{}", URL_SAFE_NO_PAD.encode(bytes));
        let hash = hash(&plain);
        Self { plain, hash }
    }

    /// The insert of this token into `family`, to commit with whatever issued it.
    pub fn insert(
        &self,
        family: Uuid,
        user_id: Uuid,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> SideWrite {
        SideWrite::new(
            "INSERT INTO refresh_tokens (token_hash, family_id, user_id, issued_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
            vec![
                Box::new(self.hash.clone()),
                Box::new(family),
                Box::new(user_id),
                Box::new(now),
                Box::new(now + ttl),
            ],
        )
    }
}

pub fn hash(plain: &str) -> Vec<u8> {
    Sha256::digest(plain.as_bytes()).to_vec()
}

/// The outcome of presenting a refresh token.
pub enum Rotation {
    /// The token was valid and is now spent; a successor was stored in the same family.
    Rotated {
        user_id: Uuid,
        security_version: i64,
        successor: RefreshToken,
    },
    /// Unknown, expired, revoked, reused (its family is now revoked), or the user is inactive.
    Refused,
}

/// Spends `plain` and issues its successor in one transaction. The row lock serialises concurrent
/// uses of one token, so exactly one wins and the other is treated as reuse.
///
/// The owner's `credentials` row is held `FOR SHARE` first, in the same order a password change
/// takes its locks (credentials, then tokens): a change that commits first has revoked this token
/// by the time it is read, and one that commits later revokes the successor stored here.
pub async fn rotate(pool: &Pool, plain: &str, ttl: Duration) -> Result<Rotation, ApiError> {
    let token_hash = hash(plain);
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let owner = tx
        .query_opt(
            "SELECT security_version, active FROM credentials
             WHERE user_id = (SELECT user_id FROM refresh_tokens WHERE token_hash = $1)
             FOR SHARE",
            &[&token_hash],
        )
        .await?;
    let Some(owner) = owner else {
        return Ok(Rotation::Refused);
    };
    let security_version: i64 = owner.try_get(0)?;
    let active: bool = owner.try_get(1)?;
    let row = tx
        .query_opt(
            "SELECT family_id, user_id, expires_at, spent_at IS NOT NULL, revoked_at IS NOT NULL
             FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
            &[&token_hash],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Rotation::Refused);
    };
    let family: Uuid = row.try_get(0)?;
    let user_id: Uuid = row.try_get(1)?;
    let expires_at: OffsetDateTime = row.try_get(2)?;
    let spent: bool = row.try_get(3)?;
    let revoked: bool = row.try_get(4)?;
    let now = OffsetDateTime::now_utc();
    if spent {
        tracing::warn!(%user_id, %family, "refresh token reused; revoking its family");
        revoke_family_in(&tx, family).await?;
        tx.commit().await?;
        return Ok(Rotation::Refused);
    }
    if revoked || !active || expires_at <= now {
        return Ok(Rotation::Refused);
    }
    tx.execute(
        "UPDATE refresh_tokens SET spent_at = now() WHERE token_hash = $1",
        &[&token_hash],
    )
    .await?;
    let successor = RefreshToken::generate();
    successor.insert(family, user_id, now, ttl).run(&tx).await?;
    tx.commit().await?;
    Ok(Rotation::Rotated {
        user_id,
        security_version,
        successor,
    })
}

async fn revoke_family_in(
    tx: &deadpool_postgres::Transaction<'_>,
    family: Uuid,
) -> Result<(), ApiError> {
    tx.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
        &[&family],
    )
    .await?;
    Ok(())
}

/// Revokes the family of `plain` (logout). Unknown tokens are ignored: the outcome is the same.
pub async fn revoke_family_of(pool: &Pool, plain: &str) -> Result<(), ApiError> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE refresh_tokens SET revoked_at = now()
             WHERE revoked_at IS NULL
               AND family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)",
            &[&hash(plain)],
        )
        .await?;
    Ok(())
}

/// Revokes every refresh family of a user, to commit with a password change or deactivation.
pub fn revoke_all_of(user_id: Uuid) -> SideWrite {
    SideWrite::new(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
        vec![Box::new(user_id)],
    )
}
