//! Operator actions outside HTTP (`backforge admin …`): they go through the same application step
//! as any command, with no actor in the envelope.

use domain::ids::UserId;
use domain::user::{ChangeRole, Role, User, UserCommand, normalize_email};
use std::convert::Infallible;

use deadpool_postgres::Transaction;
use domain::{EventMetadata, Limits};
use event_store::application::{Failure, Landed, Pin, SideWrites, Source, Step};
use event_store::postgres::map_pg;
use event_store::{PgEventStore, StoreError};
use time::OffsetDateTime;
use uuid::Uuid;

/// Makes the user with `email` a global admin. Returns `false` when they already were.
pub async fn grant_admin(store: &PgEventStore, email: &str) -> anyhow::Result<bool> {
    let email =
        normalize_email(email, &Limits::default()).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let client = store.pool().get().await?;
    let row = client
        .query_opt(
            "SELECT user_id FROM credentials WHERE email = $1",
            &[&email],
        )
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user is registered with {email}"))?;
    let user_id: Uuid = row.get(0);
    drop(client);
    let limits = Limits::default();
    let step = Step::<User> {
        stream: UserId::from_uuid(user_id).stream(),
        source: Source::Fold,
        pin: Pin::Latest,
        limits: &limits,
        metadata: EventMetadata {
            correlation_id: Some(Uuid::now_v7()),
            request_id: Some("backforge admin grant".into()),
            ..EventMetadata::default()
        },
    };
    let command = UserCommand::ChangeRole(ChangeRole {
        role: Role::Admin,
        at: OffsetDateTime::now_utc(),
    });
    // A role change bumps the security version: tokens issued under the old role stop working.
    let applied = step
        .apply(
            store,
            || Some(Box::new(RoleBump { user_id }) as Box<dyn SideWrites>),
            |_| Ok::<_, Infallible>(command.clone()),
        )
        .await
        .map_err(|f| match f {
            Failure::Domain(e) => anyhow::anyhow!("{e}"),
            Failure::Refused(never) => match never {},
            Failure::Store(e) => anyhow::anyhow!("cannot change the role: {e}"),
            other => anyhow::anyhow!("the user kept changing: {other:?}"),
        })?;
    Ok(!applied.events.is_empty())
}

/// The credentials row of a role change, committed with its event.
struct RoleBump {
    user_id: Uuid,
}

#[async_trait::async_trait]
impl SideWrites for RoleBump {
    fn is_empty(&self) -> bool {
        false
    }

    async fn write(&self, tx: &Transaction<'_>, landed: &Landed) -> Result<(), StoreError> {
        if landed.appended {
            tx.execute(
                "UPDATE credentials SET role = 'admin', security_version = security_version + 1,
                        updated_at = now()
                 WHERE user_id = $1",
                &[&self.user_id],
            )
            .await
            .map_err(map_pg)?;
        }
        Ok(())
    }
}
