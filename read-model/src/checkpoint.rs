//! The read-model projection's checkpoint: the one way a feed position is read from a row, the
//! read, and the compare-and-set that moves it in the projection's own transaction.

use deadpool_postgres::GenericClient;
use event_store::Position;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::tables::{CHECKPOINTS, PROJECTION};

/// A feed position stored as two `bigint` columns (`tx`, `seq`) at `tx` and `tx + 1` of `row`.
/// Stored values are never negative; one that is reads as the start rather than wrapping.
pub fn position(row: &Row, tx: usize) -> Result<Position, tokio_postgres::Error> {
    let t: i64 = row.try_get(tx)?;
    let s: i64 = row.try_get(tx + 1)?;
    Ok(Position {
        tx: u64::try_from(t).unwrap_or(0),
        seq: u64::try_from(s).unwrap_or(0),
    })
}

/// A position component as stored (`bigint`); positions never come near `i64::MAX`.
pub fn stored(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The checkpoint of the read-model projection in `schema` (the start when there is no row).
pub async fn read<C: GenericClient>(
    client: &C,
    schema: &str,
) -> Result<Position, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT tx, seq FROM {schema}.{CHECKPOINTS} WHERE name = $1"
        ))
        .await?;
    match client.query_opt(&stmt, &[&PROJECTION]).await? {
        Some(row) => position(&row, 0),
        None => Ok(Position::START),
    }
}

/// Moves the checkpoint in `schema` from `from` to `to`, inside the caller's transaction, only if
/// it is still at `from`: false means another writer (an instance, or a replay's swap) moved it,
/// and the caller must roll back.
pub async fn advance<C: GenericClient>(
    client: &C,
    schema: &str,
    from: Position,
    to: Position,
    instance: Option<Uuid>,
) -> Result<bool, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "UPDATE {schema}.{CHECKPOINTS} SET tx = $1, seq = $2, instance = $3, updated_at = now()
             WHERE name = $4 AND tx = $5 AND seq = $6"
        ))
        .await?;
    let moved = client
        .execute(
            &stmt,
            &[
                &stored(to.tx),
                &stored(to.seq),
                &instance,
                &PROJECTION,
                &stored(from.tx),
                &stored(from.seq),
            ],
        )
        .await?;
    Ok(moved == 1)
}
