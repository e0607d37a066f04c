//! The conformance suite every `EventStore` backend must pass, written against the trait alone.
//!
//! A backend provides a [`Harness`]; its test crate calls each `pub async fn` here as one test.
//! Functions panic with a sentence on failure, like assertions.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::{EventMetadata, Upcasters};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::store::EventStore;
use crate::types::{
    ExpectedVersion, NewEvent, Position, ReadUntil, RecordedEvent, StoreError, StreamAppend,
};

/// What a backend supplies to be tested.
#[async_trait]
pub trait Harness: Send + Sync {
    type Store: EventStore;
    /// A fresh, empty store that upcasts with `upcasters`.
    async fn store(&self, upcasters: Upcasters) -> Arc<Self::Store>;
    /// Starts appending `append` and leaves it uncommitted until the handle commits or rolls back.
    async fn hold_append(
        &self,
        store: &Self::Store,
        append: StreamAppend,
    ) -> Result<Box<dyn HeldAppend>, StoreError>;
}

/// An append begun and not yet committed.
#[async_trait]
pub trait HeldAppend: Send {
    async fn commit(self: Box<Self>);
    async fn rollback(self: Box<Self>);
}

pub fn event(event_type: &str, data: Value) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: event_type.to_owned(),
        schema_version: 1,
        data,
        metadata: EventMetadata {
            actor: Some(Uuid::new_v4()),
            correlation_id: Some(Uuid::new_v4()),
            causation_id: None,
            request_id: Some("req-1".into()),
            traceparent: None,
            project_id: None,
            source: None,
        },
    }
}

fn one(stream: &str, expected: ExpectedVersion, e: NewEvent) -> Vec<StreamAppend> {
    vec![StreamAppend::new(stream, expected, vec![e])]
}

/// 32 tasks race to append to 10 streams with expected versions: every version is won exactly once,
/// versions are gapless, and nothing is lost or duplicated.
pub async fn concurrent_appends_win_each_version_exactly_once<H: Harness>(h: &H) {
    const TASKS: usize = 32;
    const STREAMS: usize = 10;
    const PER_TASK_PER_STREAM: usize = 3;
    let store = h.store(Upcasters::new()).await;
    let run = Uuid::new_v4().simple().to_string();
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        let run = run.clone();
        handles.push(tokio::spawn(async move {
            let mut won: Vec<(usize, u64, Uuid)> = Vec::new();
            let mut conflicts = 0usize;
            for round in 0..PER_TASK_PER_STREAM {
                for s in 0..STREAMS {
                    let stream = format!("race{run}-{s}");
                    let e = event("Raced", json!({"task": task, "round": round}));
                    let id = e.event_id;
                    let mut expected = store.stream_version(&stream).await.expect("version");
                    loop {
                        let exp = if expected == 0 {
                            ExpectedVersion::NoStream
                        } else {
                            ExpectedVersion::Exact(expected)
                        };
                        match store.append(one(&stream, exp, e.clone())).await {
                            Ok(outcome) => {
                                won.push((s, outcome.streams[0].last_version, id));
                                break;
                            }
                            Err(StoreError::WrongExpectedVersion { current, .. }) => {
                                assert!(
                                    current > expected,
                                    "a conflict names a newer current version"
                                );
                                conflicts += 1;
                                expected = current;
                            }
                            Err(other) => panic!("unexpected append error: {other}"),
                        }
                    }
                }
            }
            (won, conflicts)
        }));
    }
    let mut per_stream: BTreeMap<usize, Vec<(u64, Uuid)>> = BTreeMap::new();
    let mut total_conflicts = 0;
    for handle in handles {
        let (won, conflicts) = handle.await.expect("task");
        total_conflicts += conflicts;
        for (s, v, id) in won {
            per_stream.entry(s).or_default().push((v, id));
        }
    }
    let expected_len = (TASKS * PER_TASK_PER_STREAM) as u64;
    for s in 0..STREAMS {
        let stream = format!("race{run}-{s}");
        let mut wins = per_stream.remove(&s).unwrap_or_default();
        wins.sort();
        let versions: Vec<u64> = wins.iter().map(|w| w.0).collect();
        assert_eq!(
            versions,
            (1..=expected_len).collect::<Vec<_>>(),
            "each version won exactly once"
        );
        let stored = store
            .read_stream(&stream, 0, ReadUntil::End, 10_000)
            .await
            .expect("read");
        let stored: Vec<(u64, Uuid)> = stored
            .iter()
            .map(|e| (e.stream_version, e.event_id))
            .collect();
        assert_eq!(
            stored, wins,
            "the stream holds exactly the winning appends, gapless"
        );
    }
    assert!(
        total_conflicts > 0,
        "32 racing tasks must have collided at least once"
    );
}

/// Expected versions are enforced, conflicts name the current version, and a multi-stream append
/// is all or nothing.
pub async fn expected_versions_are_enforced_atomically<H: Harness>(h: &H) {
    let store = h.store(Upcasters::new()).await;
    let s = format!("ev-{}", Uuid::new_v4());
    let t = format!("ev-{}", Uuid::new_v4());
    let first = store
        .append(vec![StreamAppend::new(
            &s,
            ExpectedVersion::NoStream,
            vec![event("A", json!({})), event("B", json!({}))],
        )])
        .await
        .expect("first append");
    assert_eq!(
        (
            first.streams[0].first_version,
            first.streams[0].last_version
        ),
        (1, 2)
    );
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(1),
        ExpectedVersion::Exact(5),
    ] {
        match store.append(one(&s, expected, event("C", json!({})))).await {
            Err(StoreError::WrongExpectedVersion { current, .. }) => assert_eq!(current, 2),
            other => panic!("{expected:?} on a version-2 stream must conflict, got {other:?}"),
        }
    }
    let any = store
        .append(one(&s, ExpectedVersion::Any, event("C", json!({}))))
        .await;
    assert_eq!(any.expect("any").streams[0].last_version, 3);
    // `t` is new, `s` is not: neither may change.
    let both = store
        .append(vec![
            StreamAppend::new(&t, ExpectedVersion::NoStream, vec![event("T", json!({}))]),
            StreamAppend::new(&s, ExpectedVersion::NoStream, vec![event("S", json!({}))]),
        ])
        .await;
    assert!(matches!(both, Err(StoreError::WrongExpectedVersion { .. })));
    assert_eq!(
        store.stream_version(&t).await.expect("t"),
        0,
        "the failed append left nothing"
    );
    assert_eq!(store.stream_version(&s).await.expect("s"), 3);
    let ok = store
        .append(vec![
            StreamAppend::new(&t, ExpectedVersion::NoStream, vec![event("T", json!({}))]),
            StreamAppend::new(&s, ExpectedVersion::Exact(3), vec![event("S", json!({}))]),
        ])
        .await
        .expect("multi-stream append");
    assert_eq!(ok.version_of(&t), Some(1));
    assert_eq!(ok.version_of(&s), Some(4));
    let empty = store
        .append(vec![StreamAppend::new(&t, ExpectedVersion::Any, vec![])])
        .await;
    assert!(matches!(empty, Err(StoreError::InvalidAppend)));
}

/// Retrying an append whose answer was lost writes nothing and returns the first outcome; reusing
/// an event id for something else is refused.
pub async fn retried_appends_are_idempotent<H: Harness>(h: &H) {
    let store = h.store(Upcasters::new()).await;
    let s = format!("idem-{}", Uuid::new_v4());
    let events = vec![event("A", json!({"n": 1})), event("B", json!({"n": 2}))];
    let append = vec![StreamAppend::new(
        &s,
        ExpectedVersion::NoStream,
        events.clone(),
    )];
    let first = store.append(append.clone()).await.expect("first");
    let again = store
        .append(append.clone())
        .await
        .expect("retry with NoStream");
    assert_eq!(first, again, "a retry returns the original outcome");
    let any = vec![StreamAppend::new(&s, ExpectedVersion::Any, events.clone())];
    assert_eq!(store.append(any).await.expect("retry with Any"), first);
    assert_eq!(
        store.stream_version(&s).await.expect("v"),
        2,
        "nothing was written twice"
    );
    let elsewhere = vec![StreamAppend::new(
        format!("idem-{}", Uuid::new_v4()),
        ExpectedVersion::Any,
        vec![events[0].clone()],
    )];
    assert!(matches!(
        store.append(elsewhere).await,
        Err(StoreError::DuplicateEventId { .. })
    ));
}

/// A stream reads forward from a version, up to a version or an instant, with metadata intact.
pub async fn streams_read_forward_up_to_a_version_or_time<H: Harness>(h: &H) {
    let store = h.store(Upcasters::new()).await;
    let s = format!("read-{}", Uuid::new_v4());
    let mut written = Vec::new();
    for i in 1..=5u64 {
        let e = event("N", json!({"i": i}));
        written.push(e.clone());
        store
            .append(one(&s, ExpectedVersion::Exact(i - 1), e))
            .await
            .expect("append");
        if i == 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let all = store
        .read_stream(&s, 0, ReadUntil::End, 100)
        .await
        .expect("all");
    assert_eq!(all.len(), 5);
    for (i, (r, w)) in all.iter().zip(&written).enumerate() {
        assert_eq!(r.stream_version, i as u64 + 1);
        assert_eq!(
            (
                r.event_id,
                &r.event_type,
                &r.data_value().expect("stored JSON"),
                &r.metadata
            ),
            (w.event_id, &w.event_type, &w.data, &w.metadata)
        );
    }
    let up_to_3 = store
        .read_stream(&s, 0, ReadUntil::Version(3), 100)
        .await
        .expect("v3");
    assert_eq!(
        up_to_3.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let after_2 = store
        .read_stream(&s, 2, ReadUntil::End, 2)
        .await
        .expect("page");
    assert_eq!(
        after_2.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        vec![3, 4]
    );
    let at = all[2].recorded_at;
    let by_time = store
        .read_stream(&s, 0, ReadUntil::Time(at), 100)
        .await
        .expect("time");
    assert_eq!(
        by_time.len(),
        3,
        "events recorded at or before the third one's instant"
    );
    let before_all = store
        .read_stream(
            &s,
            0,
            ReadUntil::Time(all[0].recorded_at - Duration::from_secs(1)),
            100,
        )
        .await
        .expect("before");
    assert!(before_all.is_empty());
    let none = store
        .read_stream("no-such-stream", 0, ReadUntil::End, 10)
        .await
        .expect("none");
    assert!(none.is_empty());
    assert!(all.windows(2).all(|w| w[0].recorded_at <= w[1].recorded_at));
    assert!(
        all.iter()
            .all(|e| e.recorded_at <= OffsetDateTime::now_utc() + Duration::from_secs(60))
    );
}

fn rename_title(mut data: Value) -> Result<Value, String> {
    let obj = data.as_object_mut().ok_or("not an object")?;
    let title = obj.remove("title").ok_or("no title")?;
    obj.insert("name".into(), title);
    Ok(data)
}

/// An event stored at an old schema version is read at the latest one, on the stream and feed paths.
pub async fn old_schema_versions_are_upcast_on_every_read<H: Harness>(h: &H) {
    let store = h
        .store(Upcasters::new().register("Renamed", 1, rename_title))
        .await;
    let s = format!("up-{}", Uuid::new_v4());
    let old = event("Renamed", json!({"title": "first"}));
    let outcome = store
        .append(one(&s, ExpectedVersion::NoStream, old))
        .await
        .expect("append");
    let read = store
        .read_stream(&s, 0, ReadUntil::End, 10)
        .await
        .expect("read");
    assert_eq!(
        read[0].data_value().expect("stored JSON"),
        json!({"name": "first"})
    );
    assert_eq!(read[0].schema_version, 2);
    let feed = read_until(
        store.as_ref(),
        Position::START,
        outcome.position,
        reader_of(store.clone()),
    )
    .await;
    let from_feed = feed.iter().find(|e| e.stream_id == s).expect("on the feed");
    assert_eq!(
        (
            from_feed.data_value().expect("stored JSON"),
            from_feed.schema_version
        ),
        (json!({"name": "first"}), 2)
    );
}

/// The feed signal ticks after an append.
pub async fn appends_tick_the_feed_signal<H: Harness>(h: &H) {
    let store = h.store(Upcasters::new()).await;
    let mut signal = store.feed_signal();
    signal.borrow_and_update();
    store
        .append(one(
            &format!("sig-{}", Uuid::new_v4()),
            ExpectedVersion::Any,
            event("S", json!({})),
        ))
        .await
        .expect("append");
    tokio::time::timeout(Duration::from_secs(2), signal.changed())
        .await
        .expect("signal within 2 s")
        .expect("sender alive");
}

/// A way of reading the feed; the suite runs its commit-order scenarios against any reader so the
/// same scenario can show a naive `position > $1` reader failing.
pub type Reader = Arc<
    dyn Fn(
            Position,
            usize,
        ) -> futures::future::BoxFuture<'static, Result<Vec<RecordedEvent>, StoreError>>
        + Send
        + Sync,
>;

pub fn reader_of<S: EventStore>(store: Arc<S>) -> Reader {
    Arc::new(move |after, limit| {
        let store = store.clone();
        Box::pin(async move { store.read_feed(after, limit).await })
    })
}

/// Reads with `reader` from `from` until `target` has been seen (or 5 s pass), checkpointing the last
/// position returned, as a projector does.
async fn read_until<S: EventStore>(
    _store: &S,
    from: Position,
    target: Position,
    reader: Reader,
) -> Vec<RecordedEvent> {
    let mut seen = Vec::new();
    let mut checkpoint = from;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        let page = reader(checkpoint, 100).await.expect("feed read");
        if let Some(last) = page.last() {
            checkpoint = last.position;
        }
        let done = page.iter().any(|e| e.position == target) || checkpoint >= target;
        seen.extend(page);
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    seen
}

/// The commit-order scenario: an append that began earlier (so holds an earlier position) commits
/// after a later one was read, and another rolls back. Returns what the reader missed or got wrong,
/// or `Ok` when it saw every committed event exactly once, in increasing feed order.
pub async fn commit_order_scenario<H: Harness>(
    h: &H,
    store: Arc<H::Store>,
    reader: Reader,
) -> Result<(), String> {
    let tag = Uuid::new_v4().simple().to_string();
    let committed_first = event("Early", json!({}));
    store
        .append(one(
            &format!("co{tag}-0"),
            ExpectedVersion::Any,
            committed_first.clone(),
        ))
        .await
        .map_err(|e| e.to_string())?;
    let late = event("Late", json!({}));
    let held = h
        .hold_append(
            &store,
            StreamAppend::new(
                format!("co{tag}-late"),
                ExpectedVersion::Any,
                vec![late.clone()],
            ),
        )
        .await
        .map_err(|e| e.to_string())?;
    let doomed = event("Doomed", json!({}));
    let rolled_back = h
        .hold_append(
            &store,
            StreamAppend::new(
                format!("co{tag}-doomed"),
                ExpectedVersion::Any,
                vec![doomed.clone()],
            ),
        )
        .await
        .map_err(|e| e.to_string())?;
    let middle = event("Middle", json!({}));
    store
        .append(one(
            &format!("co{tag}-mid"),
            ExpectedVersion::Any,
            middle.clone(),
        ))
        .await
        .map_err(|e| e.to_string())?;

    // A reader polls while the early transaction is still open.
    let mut seen: Vec<RecordedEvent> = Vec::new();
    let mut checkpoint = Position::START;
    for _ in 0..3 {
        let page = reader(checkpoint, 1000).await.map_err(|e| e.to_string())?;
        if let Some(last) = page.last() {
            checkpoint = last.position;
        }
        seen.extend(page);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rolled_back.rollback().await;
    held.commit().await;
    let last = event("Last", json!({}));
    let last_outcome = store
        .append(one(
            &format!("co{tag}-last"),
            ExpectedVersion::Any,
            last.clone(),
        ))
        .await
        .map_err(|e| e.to_string())?;
    let rest = read_until(store.as_ref(), checkpoint, last_outcome.position, reader).await;
    seen.extend(rest);

    let mine: Vec<&RecordedEvent> = seen
        .iter()
        .filter(|e| e.stream_id.starts_with(&format!("co{tag}")))
        .collect();
    let ids: Vec<Uuid> = mine.iter().map(|e| e.event_id).collect();
    let unique: HashSet<Uuid> = ids.iter().copied().collect();
    if unique.len() != ids.len() {
        return Err("the reader saw an event twice".into());
    }
    if unique.contains(&doomed.event_id) {
        return Err("the reader saw a rolled-back event".into());
    }
    for (name, e) in [
        ("first", &committed_first),
        ("late-committing", &late),
        ("middle", &middle),
        ("last", &last),
    ] {
        if !unique.contains(&e.event_id) {
            return Err(format!("the reader skipped the {name} event"));
        }
    }
    if !seen.windows(2).all(|w| w[0].position < w[1].position) {
        return Err("the reader saw events out of feed order".into());
    }
    Ok(())
}

/// The feed skips nothing while transactions commit out of order and some roll back.
pub async fn the_feed_skips_nothing_when_transactions_commit_out_of_order<H: Harness>(h: &H) {
    let store = h.store(Upcasters::new()).await;
    let reader = reader_of(store.clone());
    commit_order_scenario(h, store, reader)
        .await
        .expect("the commit-ordered feed skips nothing");
}

/// Writers that hold their transactions open for random short times race a reader that
/// checkpoints as it goes; the reader ends with every committed event exactly once, in order.
pub async fn a_checkpointing_reader_sees_every_commit_under_racing_writers<H: Harness>(h: &H)
where
    H::Store: 'static,
{
    let store = h.store(Upcasters::new()).await;
    let tag = Uuid::new_v4().simple().to_string();
    let mut expected: HashSet<Uuid> = HashSet::new();
    let mut doomed: HashSet<Uuid> = HashSet::new();
    let reading = Arc::new(std::sync::atomic::AtomicBool::new(true));
    // Set before `reading` turns false: how many of this test's events the reader must end with.
    let wanted = Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX));
    let reader = {
        let store = store.clone();
        let reading = reading.clone();
        let wanted = wanted.clone();
        let tag = tag.clone();
        tokio::spawn(async move {
            let mut seen: Vec<RecordedEvent> = Vec::new();
            let mut mine = 0usize;
            let mut checkpoint = Position::START;
            let mut deadline = None;
            loop {
                let stop = !reading.load(std::sync::atomic::Ordering::SeqCst);
                let page = store.read_feed(checkpoint, 500).await.expect("feed");
                if let Some(last) = page.last() {
                    checkpoint = last.position;
                }
                let empty = page.is_empty();
                mine += page
                    .iter()
                    .filter(|e| e.stream_id.starts_with(&format!("rw{tag}")))
                    .count();
                seen.extend(page);
                if stop {
                    // Any transaction open anywhere on the server holds the feed back (the xmin
                    // horizon is cluster-wide), so wait for the committed events, with a deadline,
                    // rather than stopping at the first empty page.
                    let deadline = *deadline.get_or_insert_with(|| {
                        tokio::time::Instant::now() + Duration::from_secs(10)
                    });
                    let done = mine >= wanted.load(std::sync::atomic::Ordering::SeqCst);
                    if (empty && done) || tokio::time::Instant::now() > deadline {
                        return seen;
                    }
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };
    for round in 0..8u64 {
        let mut holds = Vec::new();
        for k in 0..3u64 {
            let e = event("Held", json!({"round": round, "k": k}));
            let held = h
                .hold_append(
                    &store,
                    StreamAppend::new(
                        format!("rw{tag}-h{k}"),
                        ExpectedVersion::Any,
                        vec![e.clone()],
                    ),
                )
                .await
                .expect("hold");
            holds.push((held, e, (round + k) % 4 == 0));
        }
        let mut quick = Vec::new();
        for k in 0..5u64 {
            let store = store.clone();
            let tag = tag.clone();
            quick.push(tokio::spawn(async move {
                let e = event("Quick", json!({"round": round, "k": k}));
                store
                    .append(one(
                        &format!("rw{tag}-q{k}"),
                        ExpectedVersion::Any,
                        e.clone(),
                    ))
                    .await
                    .expect("quick append");
                e.event_id
            }));
        }
        for q in quick {
            expected.insert(q.await.expect("task"));
        }
        tokio::time::sleep(Duration::from_millis(5 + round * 3)).await;
        // Commit in reverse order of starting, so later positions become visible first.
        while let Some((held, e, roll_back)) = holds.pop() {
            if roll_back {
                doomed.insert(e.event_id);
                held.rollback().await;
            } else {
                expected.insert(e.event_id);
                held.commit().await;
            }
        }
    }
    wanted.store(expected.len(), std::sync::atomic::Ordering::SeqCst);
    reading.store(false, std::sync::atomic::Ordering::SeqCst);
    let seen = tokio::time::timeout(Duration::from_secs(20), reader)
        .await
        .expect("reader finishes")
        .expect("reader task");
    let mine: Vec<&RecordedEvent> = seen
        .iter()
        .filter(|e| e.stream_id.starts_with(&format!("rw{tag}")))
        .collect();
    let ids: Vec<Uuid> = mine.iter().map(|e| e.event_id).collect();
    let unique: HashSet<Uuid> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no event is delivered twice");
    assert!(
        unique.is_disjoint(&doomed),
        "no rolled-back event is delivered"
    );
    let missing: Vec<&Uuid> = expected.difference(&unique).collect();
    assert!(
        missing.is_empty(),
        "the reader skipped {} committed events",
        missing.len()
    );
    assert!(
        seen.windows(2).all(|w| w[0].position < w[1].position),
        "the feed never reorders"
    );
}

/// Runs `f` once per test in the serial group: tests that hold transactions open must not overlap,
/// because the xmin horizon they hold back is cluster-wide.
pub async fn serially<F: Future<Output = ()>>(f: F) {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _guard = SERIAL.lock().await;
    f.await;
}
