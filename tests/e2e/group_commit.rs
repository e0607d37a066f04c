//! The group-commit writer's batch: commands committed in one transaction each get their own
//! outcome — a version conflict in one stream, or a failed side write in one command, fails only
//! that command and leaves nothing of it behind.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use domain::EventMetadata;
use event_store::application::{self, Landed, SideWrites};
use event_store::postgres::map_pg;
use event_store::{
    EventStore, ExpectedVersion, NewEvent, PgEventStore, Position, StoreError, StreamAppend,
};
use serde_json::json;
use tests::PgTestStore;
use tokio::sync::{Mutex, oneshot};
use uuid::Uuid;

fn event(kind: &str) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: kind.to_owned(),
        schema_version: 1,
        data: json!({"kind": kind}),
        metadata: EventMetadata::default(),
    }
}

fn append(stream: &str, expected: ExpectedVersion, events: usize) -> Vec<StreamAppend> {
    vec![StreamAppend::new(
        stream,
        expected,
        (0..events).map(|_| event("Noted")).collect(),
    )]
}

/// A side write that holds the writer until the test opens it: everything submitted meanwhile
/// queues up and is taken as the next batch.
struct Gate {
    entered: Mutex<Option<oneshot::Sender<()>>>,
    open: Mutex<Option<oneshot::Receiver<()>>>,
}

#[async_trait]
impl SideWrites for Gate {
    fn is_empty(&self) -> bool {
        false
    }

    async fn write(&self, _: &Transaction<'_>, _: &Landed) -> Result<(), StoreError> {
        if let Some(entered) = self.entered.lock().await.take() {
            let _ = entered.send(());
        }
        if let Some(open) = self.open.lock().await.take() {
            let _ = open.await;
        }
        Ok(())
    }
}

/// Every batch slot of the writer held by a command whose side write waits for the test: what is
/// submitted meanwhile queues up and is taken as one next batch.
struct Held {
    commands: Vec<tokio::task::JoinHandle<Outcome>>,
    open: Vec<oneshot::Sender<()>>,
}

impl Held {
    async fn hold(store: &Arc<PgEventStore>) -> Self {
        let mut held = Held {
            commands: Vec::new(),
            open: Vec::new(),
        };
        for slot in 0..event_store::writer::IN_FLIGHT {
            let (gate, entered, open) = Gate::new();
            held.commands.push(commit(
                store,
                append(&format!("gate-{slot}"), ExpectedVersion::NoStream, 1),
                Some(Box::new(gate)),
            ));
            entered.await.expect("the writer runs the gate");
            held.open.push(open);
        }
        held
    }

    /// Opens the gates; each gate's command commits.
    async fn release(self) {
        for open in self.open {
            let _ = open.send(());
        }
        for command in self.commands {
            command.await.expect("join").expect("the gate commits");
        }
    }
}

impl Gate {
    fn new() -> (Self, oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (entered_tx, entered) = oneshot::channel();
        let (open, open_rx) = oneshot::channel();
        let gate = Gate {
            entered: Mutex::new(Some(entered_tx)),
            open: Mutex::new(Some(open_rx)),
        };
        (gate, entered, open)
    }
}

/// A side write of one SQL statement.
struct Sql(&'static str);

#[async_trait]
impl SideWrites for Sql {
    fn is_empty(&self) -> bool {
        false
    }

    async fn write(&self, tx: &Transaction<'_>, _: &Landed) -> Result<(), StoreError> {
        tx.batch_execute(self.0).await.map_err(map_pg)
    }
}

type Outcome = Result<Landed, StoreError>;

fn commit(
    store: &Arc<PgEventStore>,
    appends: Vec<StreamAppend>,
    side: Option<Box<dyn SideWrites>>,
) -> tokio::task::JoinHandle<Outcome> {
    let store = store.clone();
    tokio::spawn(async move {
        let report = appends[0].stream_id.clone();
        application::commit(&store, appends, &report, (0, Position::START), side).await
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_commands_conflict_or_failed_side_write_fails_only_that_command_in_its_batch() {
    let made = PgTestStore::create(domain::Upcasters::backforge())
        .await
        .expect("store");
    let store = Arc::new((*made.store).clone().with_group_commit());
    for stream in ["fine", "stale", "failing", "sided"] {
        store
            .append(append(stream, ExpectedVersion::NoStream, 1))
            .await
            .expect("seed");
    }
    // Given every batch slot of the writer held inside a command of its own
    let held = Held::hold(&store).await;
    // When four commands queue up behind it, one at a stale version and one whose side write fails
    let fine = commit(&store, append("fine", ExpectedVersion::Exact(1), 2), None);
    let stale = commit(&store, append("stale", ExpectedVersion::Exact(0), 1), None);
    let failing = commit(
        &store,
        append("failing", ExpectedVersion::Exact(1), 2),
        Some(Box::new(Sql("SELECT 1 / 0"))),
    );
    let sided = commit(
        &store,
        append("sided", ExpectedVersion::Exact(1), 1),
        Some(Box::new(Sql("SELECT 1"))),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    held.release().await;
    let fine = fine.await.expect("join").expect("fine commits");
    let sided = sided.await.expect("join").expect("sided commits");
    // Then only their own commands fail
    match stale.await.expect("join") {
        Err(StoreError::WrongExpectedVersion {
            stream_id, current, ..
        }) => assert_eq!((stream_id.as_str(), current), ("stale", 1)),
        other => panic!("a stale command must conflict: {other:?}"),
    }
    assert!(
        failing.await.expect("join").is_err(),
        "a failed side write fails its command"
    );
    // And the others were committed together, in one transaction
    assert_eq!(
        fine.position.tx, sided.position.tx,
        "one batch, one transaction"
    );
    assert_eq!((fine.version, sided.version), (3, 2));
    // And nothing of the failed commands is left behind
    for (stream, version) in [("stale", 1), ("failing", 1), ("fine", 3), ("sided", 2)] {
        assert_eq!(
            store.stream_version(stream).await.expect("version"),
            version,
            "{stream}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_duplicate_event_id_in_a_batch_reaches_only_its_own_command() {
    let made = PgTestStore::create(domain::Upcasters::backforge())
        .await
        .expect("store");
    let store = Arc::new((*made.store).clone().with_group_commit());
    let stored = event("Noted");
    store
        .append(vec![StreamAppend::new(
            "first",
            ExpectedVersion::NoStream,
            vec![stored.clone()],
        )])
        .await
        .expect("seed");
    let held = Held::hold(&store).await;
    // The same event id again, in another stream: the batch statement is refused as a whole.
    let duplicate = commit(
        &store,
        vec![StreamAppend::new(
            "second",
            ExpectedVersion::NoStream,
            vec![stored],
        )],
        Some(Box::new(Sql("SELECT 1"))),
    );
    let fine = commit(&store, append("third", ExpectedVersion::NoStream, 1), None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    held.release().await;
    assert!(duplicate.await.expect("join").is_err());
    let fine = fine
        .await
        .expect("join")
        .expect("the other command commits");
    assert_eq!(fine.version, 1);
    assert_eq!(store.stream_version("second").await.expect("version"), 0);
}

/// A side write with a bug in it.
struct Panics;

#[async_trait]
impl SideWrites for Panics {
    fn is_empty(&self) -> bool {
        false
    }

    async fn write(&self, _: &Transaction<'_>, _: &Landed) -> Result<(), StoreError> {
        panic!("a side write's bug")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panicking_side_write_fails_its_command_and_the_writer_goes_on() {
    let made = PgTestStore::create(domain::Upcasters::backforge())
        .await
        .expect("store");
    let store = Arc::new((*made.store).clone().with_group_commit());
    let failed = commit(
        &store,
        append("buggy", ExpectedVersion::NoStream, 1),
        Some(Box::new(Panics)),
    )
    .await
    .expect("join");
    assert!(
        matches!(failed, Err(StoreError::Unavailable(_))),
        "{failed:?}"
    );
    assert_eq!(store.stream_version("buggy").await.expect("version"), 0);
    let next = commit(&store, append("next", ExpectedVersion::NoStream, 1), None)
        .await
        .expect("join")
        .expect("the writer still commits");
    assert_eq!(next.version, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_written_by_a_batch_in_flight_waits_for_it_while_other_streams_commit() {
    let made = PgTestStore::create(domain::Upcasters::backforge())
        .await
        .expect("store");
    let store = Arc::new((*made.store).clone().with_group_commit());
    // Given a batch in flight that writes stream `s`, held before its commit
    let (gate, entered, open) = Gate::new();
    let first = commit(
        &store,
        append("s", ExpectedVersion::NoStream, 1),
        Some(Box::new(gate)),
    );
    entered.await.expect("the writer runs the gate");
    // When the next command on `s` (deciding on the version the first one makes) and a command
    // on another stream are submitted
    let next = commit(&store, append("s", ExpectedVersion::Exact(1), 1), None);
    let other = commit(&store, append("other", ExpectedVersion::NoStream, 1), None);
    // Then the other stream commits while the first batch is still held
    let other = tokio::time::timeout(Duration::from_secs(10), other)
        .await
        .expect("another stream is not held up by a batch in flight")
        .expect("join")
        .expect("other commits");
    assert_eq!(other.version, 1);
    assert!(
        !next.is_finished(),
        "the command on `s` waits for the batch that writes `s`"
    );
    // And once the first commits, the next command on `s` lands after it, without a conflict
    let _ = open.send(());
    first.await.expect("join").expect("the first commits");
    let next = next
        .await
        .expect("join")
        .expect("the next command on `s` commits");
    assert_eq!(next.version, 2);
}
