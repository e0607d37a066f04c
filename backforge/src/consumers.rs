//! `backforge consumers …`: the operator's tools for a stalled feed consumer — list the parked
//! events, park the event a consumer cannot get past, unpark it again.

use clap::Subcommand;
use runtime::Settings;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use projector::parked::{self, Changed};

#[derive(Subcommand)]
pub enum ConsumersAction {
    /// Every parked event: consumer, event, its stream and type, reason, who and when.
    List,
    /// Make a consumer (`read_models`, `nats_events`, `nats_jobs`, or `all`) skip one event. The
    /// park is recorded with the reason and the operator, and audited in the `operations` stream.
    Park {
        /// `read_models`, `nats_events`, `nats_jobs` or `all`.
        consumer: String,
        /// The id of the event to skip (the stall in /health/ready and the log names it).
        event_id: Uuid,
        /// Why the event is parked (kept with the park and in its audit event).
        #[arg(long)]
        reason: String,
    },
    /// Lift a park. A consumer that has not passed the event yet processes it again; one that has
    /// keeps what it did (a replay includes the event again).
    Unpark { consumer: String, event_id: Uuid },
}

/// Who is acting: the operator at the shell, as honestly as the CLI can tell.
fn operator() -> String {
    let login = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty() && u.len() <= 64 && !u.contains('\0'))
        .unwrap_or_else(|| "cli".to_owned());
    format!("operator:{login}")
}

pub async fn run(settings: Settings, action: ConsumersAction) -> anyhow::Result<()> {
    let store = crate::open_store(&settings).await?;
    match action {
        ConsumersAction::List => {
            let client = store.pool().get().await?;
            let parks = parked::list(&client).await?;
            if parks.is_empty() {
                println!("no parked events");
                return Ok(());
            }
            println!("consumer\tevent_id\tstream\tversion\ttype\tparked_at\tparked_by\treason");
            for p in parks {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    p.consumer,
                    p.event_id,
                    p.stream_id.as_deref().unwrap_or("?"),
                    p.stream_version.map_or("?".to_owned(), |v| v.to_string()),
                    p.event_type.as_deref().unwrap_or("?"),
                    p.parked_at.format(&Rfc3339)?,
                    p.parked_by,
                    p.reason.replace(['\t', '\n'], " "),
                );
            }
            Ok(())
        }
        ConsumersAction::Park {
            consumer,
            event_id,
            reason,
        } => {
            match parked::park(&store, &consumer, event_id, &reason, &operator()).await? {
                Changed::Done => {
                    println!("parked event {event_id} for {consumer}; it is skipped from now on")
                }
                Changed::Already => {
                    println!("event {event_id} was parked for {consumer} already")
                }
            }
            Ok(())
        }
        ConsumersAction::Unpark { consumer, event_id } => {
            match parked::unpark(&store, &consumer, event_id, &operator()).await? {
                Changed::Done => println!("unparked event {event_id} for {consumer}"),
                Changed::Already => println!("event {event_id} was not parked for {consumer}"),
            }
            Ok(())
        }
    }
}
