//! Read-your-writes: waiting until the read models have projected a position a client names
//! (`Backforge-Min-Position`), bounded by a deadline.

use std::time::Duration;

use event_store::Position;
use tokio::sync::watch;

use crate::checkpoint;
use crate::tables::LIVE;

/// Why a wait for a position ended without reaching it.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("the read models did not reach the position in time")]
    TimedOut,
    #[error("no database connection for the checkpoint")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("reading the checkpoint failed")]
    Database(#[from] tokio_postgres::Error),
}

/// What an in-process projector announces: the checkpoint it has committed, and whether it
/// leads the projection. While it leads nothing else moves the checkpoint, so the table is ahead
/// of `at` only between a commit and its announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announced {
    pub at: Position,
    pub leads: bool,
}

impl Announced {
    pub const NONE: Announced = Announced {
        at: Position::START,
        leads: false,
    };
}

/// Where the read models are: read from the checkpoint table unless this process's projector
/// leads, whose announcements then say it (and the table still decides after a quiet interval).
#[derive(Clone)]
pub struct Checkpoints {
    pub pool: deadpool_postgres::Pool,
    pub wake: Option<watch::Receiver<Announced>>,
}

impl Checkpoints {
    /// What this process's own projector has committed, if it leads: enough to answer without a
    /// query when it is already past the wanted position.
    fn announced(&self) -> Option<Position> {
        self.wake.as_ref().map(|rx| rx.borrow().at)
    }

    /// Whether this process's own projector leads the projection.
    fn leads(&self) -> bool {
        self.wake.as_ref().is_some_and(|rx| rx.borrow().leads)
    }

    /// The live projection's checkpoint as committed.
    pub async fn current(&self) -> Result<Position, WaitError> {
        let client = self.pool.get().await?;
        Ok(checkpoint::read(&client, LIVE).await?)
    }

    /// Waits for the in-process projector's next announcement (true) or a poll interval (false).
    async fn changed(&mut self) -> bool {
        match &mut self.wake {
            Some(rx) => matches!(
                tokio::time::timeout(Duration::from_millis(50), rx.changed()).await,
                Ok(Ok(()))
            ),
            None => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                false
            }
        }
    }

    /// Returns once the read models have projected `wanted`, or `TimedOut` after `wait`.
    pub async fn wait_for(&self, wanted: Position, wait: Duration) -> Result<(), WaitError> {
        let mut checkpoints = self.clone();
        // Marked seen: `changed` then waits for an announcement made after this point, instead of
        // returning at once for the first one ever made (a clone starts where the original was).
        if let Some(rx) = &mut checkpoints.wake {
            rx.borrow_and_update();
        }
        let deadline = tokio::time::Instant::now() + wait;
        let mut ask_table = !checkpoints.leads();
        loop {
            // The in-process projector announces a checkpoint only after committing it, so
            // reaching the position there is enough; otherwise (another process may lead) the
            // table decides. It is asked first unless this process's projector leads, and after
            // every quiet interval, not after each announcement: an announcing projector leads,
            // and the table says what it said.
            if checkpoints.announced().is_some_and(|at| at >= wanted)
                || (ask_table && checkpoints.current().await? >= wanted)
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(WaitError::TimedOut);
            }
            ask_table = !checkpoints.changed().await;
        }
    }
}
