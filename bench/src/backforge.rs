//! Workload (b): `EventStore::append` of one event per call, each client to its own stream.

use std::sync::Arc;

use event_store::{EventStore, ExpectedVersion, NewEvent, StreamAppend};
use uuid::Uuid;

use crate::payload;
use crate::workload::Worker;

/// One client of the store, appending as a command would: `NoStream` first, then `Exact(n)` with
/// the version the previous append returned.
pub struct StoreAppend {
    store: Arc<dyn EventStore>,
    stream_id: String,
    version: u64,
}

impl StoreAppend {
    pub fn new(store: Arc<dyn EventStore>, stream_id: String) -> Self {
        Self {
            store,
            stream_id,
            version: 0,
        }
    }
}

impl Worker for StoreAppend {
    async fn step(&mut self) -> anyhow::Result<()> {
        let expected = match self.version {
            0 => ExpectedVersion::NoStream,
            n => ExpectedVersion::Exact(n),
        };
        let event = NewEvent {
            event_id: Uuid::new_v4(),
            event_type: payload::EVENT_TYPE.to_owned(),
            schema_version: 1,
            data: payload::data(self.version + 1),
            metadata: payload::metadata(),
        };
        let append = StreamAppend::new(self.stream_id.clone(), expected, vec![event]);
        match self.store.append(vec![append]).await {
            Ok(outcome) => {
                self.version = outcome
                    .version_of(&self.stream_id)
                    .ok_or_else(|| anyhow::anyhow!("the outcome does not name the stream"))?;
                Ok(())
            }
            Err(error) => {
                // Reload the version as a command would before its next attempt.
                if let Ok(current) = self.store.stream_version(&self.stream_id).await {
                    self.version = current;
                }
                Err(error.into())
            }
        }
    }
}
