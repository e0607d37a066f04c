//! The artifact store: generated ZIPs in PostgreSQL, keyed by SHA-256, readable by every query API.

use deadpool_postgres::Pool;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Creates the artifact table.
pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    event_store::setup::migrate_with(
        database_url,
        embedded::migrations::runner(),
        "worker_migrations",
    )
    .await
}

/// Stores `content` under its hash; storing the same artifact again is a no-op.
pub async fn store(pool: &Pool, sha256: &str, content: &[u8]) -> anyhow::Result<()> {
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO artifacts (sha256, content, size_bytes) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO NOTHING",
            &[&sha256, &content, &(content.len() as i64)],
        )
        .await?;
    Ok(())
}

/// The artifact stored under `sha256`, if any.
pub async fn load(pool: &Pool, sha256: &str) -> anyhow::Result<Option<Vec<u8>>> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT content FROM artifacts WHERE sha256 = $1",
            &[&sha256],
        )
        .await?;
    Ok(row.map(|row| row.try_get(0)).transpose()?)
}
