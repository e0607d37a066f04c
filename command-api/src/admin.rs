//! Operator actions outside HTTP (`backforge admin …`): they decide and append like any command,
//! with no actor in the envelope.

use domain::ids::UserId;
use domain::user::{ChangeRole, Role, User, UserCommand, normalize_email};
use domain::{EventMetadata, Limits};
use event_store::{ExpectedVersion, NewEvent, PgEventStore, StreamAppend};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::load::{Loaded, load};

/// Makes the user with `email` a global admin. Returns `false` when they already were.
pub async fn grant_admin(store: &PgEventStore, email: &str) -> anyhow::Result<bool> {
    let email =
        normalize_email(email, &Limits::default()).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let mut client = store.pool().get().await?;
    let row = client
        .query_opt(
            "SELECT user_id FROM credentials WHERE email = $1",
            &[&email],
        )
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user is registered with {email}"))?;
    let user_id: Uuid = row.get(0);
    let stream = UserId::from_uuid(user_id).stream();
    let loaded: Loaded<User> = load(store, &stream)
        .await
        .map_err(|e| anyhow::anyhow!("cannot load the user: {e}"))?;
    let command = UserCommand::ChangeRole(ChangeRole {
        role: Role::Admin,
        at: OffsetDateTime::now_utc(),
    });
    let events = loaded
        .state
        .decide(&command, &Limits::default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if events.is_empty() {
        return Ok(false);
    }
    let metadata = EventMetadata {
        correlation_id: Some(Uuid::now_v7()),
        request_id: Some("backforge admin grant".into()),
        ..EventMetadata::default()
    };
    let new: Vec<NewEvent> = events
        .iter()
        .map(|e| NewEvent::from_domain(e, Uuid::now_v7(), metadata.clone()))
        .collect();
    let tx = client.transaction().await?;
    store
        .append_in_tx(
            &tx,
            &[StreamAppend::new(
                stream,
                ExpectedVersion::Exact(loaded.version),
                new,
            )],
        )
        .await?;
    // A role change bumps the security version: tokens issued under the old role stop working.
    tx.execute(
        "UPDATE credentials SET role = 'admin', security_version = security_version + 1, updated_at = now()
         WHERE user_id = $1",
        &[&user_id],
    )
    .await?;
    tx.commit().await?;
    store.committed();
    Ok(true)
}
