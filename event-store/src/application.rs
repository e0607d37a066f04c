//! The one HTTP-free application step every writer uses (command API, `backforge admin`, worker):
//! load → decide → append at the loaded version, re-deciding after a lost race.
//!
//! Inputs are typed (stream, where its state comes from, a version pin, limits, metadata, the
//! caller's check that names the command) and so are outcomes (the events, version and position,
//! or the domain's refusal, a failed precondition or a conflict); only handlers know HTTP.

use std::ops::ControlFlow;

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use domain::ids::ProjectId;
use domain::{Decider, DomainEvent, EventMetadata, Limits, ProjectOwned};
use uuid::Uuid;

use crate::aggregate::{Loaded, StateCache};
use crate::postgres::PgEventStore;
use crate::store::EventStore;
use crate::types::{ExpectedVersion, NewEvent, Position, ReadUntil, StoreError, StreamAppend};

/// Attempts of a write whose version was not pinned: the first decision and two re-decisions.
pub const ATTEMPTS: usize = 3;

/// The version a write was pinned to by its caller (HTTP's `If-Match`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pin {
    /// No pin: decide on the latest state, and re-decide after losing a race.
    #[default]
    Latest,
    /// Whatever version the stream has now (`*`); a lost race is a failed precondition.
    Any,
    /// Exactly this version, else a failed precondition.
    Exact(u64),
    /// A pin no version satisfies (a weak entity tag never matches strongly).
    Unmatchable,
}

impl Pin {
    /// Whether a lost race is decided again (only without a pin).
    pub fn redecides(self) -> bool {
        self == Pin::Latest
    }

    fn admits(self, current: u64) -> bool {
        match self {
            Pin::Latest | Pin::Any => true,
            Pin::Exact(v) => v == current,
            Pin::Unmatchable => false,
        }
    }
}

/// Why a step appended nothing. `D` is the aggregate's error, `E` the caller's own refusals (its
/// check before deciding, its side writes).
#[derive(Debug)]
pub enum Failure<D, E> {
    /// The aggregate refused the command.
    Domain(D),
    /// The caller's check refused it before the aggregate was asked.
    Refused(E),
    /// The pinned version is not the stream's (`current`), or a pinned write lost a race.
    Precondition { current: u64 },
    /// Other writers won every attempt (or a stream that must be new exists already).
    Conflict { stream_id: String, current: u64 },
    /// The store failed.
    Store(StoreError),
}

impl<D, E> From<StoreError> for Failure<D, E> {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::WrongExpectedVersion {
                stream_id, current, ..
            } => Failure::Conflict { stream_id, current },
            other => Failure::Store(other),
        }
    }
}

/// Turns decided domain events into events to store: a fresh id each, the request's metadata, and
/// the project they belong to. The one place this is done.
pub fn stamp<E: DomainEvent>(
    events: &[E],
    metadata: &EventMetadata,
    project: Option<ProjectId>,
) -> Vec<NewEvent> {
    let metadata = EventMetadata {
        project_id: project.map(|p| p.as_uuid()).or(metadata.project_id),
        ..metadata.clone()
    };
    events
        .iter()
        .map(|e| NewEvent::from_domain(e, Uuid::now_v7(), metadata.clone()))
        .collect()
}

/// Where the state a command is decided on comes from.
pub enum Source<'a, A> {
    /// A stream named by a fresh id: nothing to read, and it must not exist yet.
    New,
    /// A full fold of the stream.
    Fold,
    /// The cached fold plus the events after it.
    Cache(&'a StateCache<A>),
    /// The cached fold as it is, read only when nothing is cached: for a caller holding the
    /// stream's queue turn (`StateCache::queue`), whose append's expected version is the check.
    Queued(&'a StateCache<A>),
}

/// One command on one aggregate's stream.
pub struct Step<'a, A> {
    pub stream: String,
    pub source: Source<'a, A>,
    pub pin: Pin,
    pub limits: &'a Limits,
    /// Copied into every event's envelope; its project id is filled from the aggregate.
    pub metadata: EventMetadata,
}

/// One attempt's decision, not yet appended.
pub struct Decided<A: Decider> {
    /// The state after the events (the state decided on, when there are none).
    pub after: A,
    /// The version and feed position of the state decided on.
    pub version: u64,
    pub position: Position,
    pub events: Vec<A::Event>,
    /// The events to append at `version`; `None` when the command changes nothing.
    pub append: Option<StreamAppend>,
}

impl<A: Decider> Decided<A> {
    /// The state after the decided events.
    pub fn after(&self) -> &A {
        &self.after
    }

    /// Takes the decision apart: the state after the events, the version and position decided
    /// on, and the append.
    pub fn into_after(self) -> (A, u64, Position, Option<StreamAppend>) {
        (self.after, self.version, self.position, self.append)
    }
}

/// Where a successful step's events landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied<Ev> {
    pub events: Vec<Ev>,
    /// The stream's version after the step (unchanged when nothing was appended).
    pub version: u64,
    /// The last appended event's position, or the loaded state's when nothing was appended.
    pub position: Position,
}

impl<A> Step<'_, A>
where
    A: Decider + ProjectOwned + Clone,
    A::Event: DomainEvent,
{
    /// The stream's state as this step reads it.
    pub async fn load<S: EventStore + ?Sized>(&self, store: &S) -> Result<Loaded<A>, StoreError> {
        match self.source {
            Source::New => Ok(Loaded::default()),
            Source::Fold => crate::aggregate::load(store, &self.stream, ReadUntil::End).await,
            Source::Cache(cache) => cache.load(store, &self.stream).await,
            Source::Queued(cache) => cache.load_cached(store, &self.stream).await,
        }
    }

    /// One attempt, without the append: load, let `check` look at the state and name the command
    /// (or refuse: access rules), hold the pin, decide, and stamp the events.
    pub async fn decide<S, E>(
        &self,
        store: &S,
        check: impl FnOnce(&Loaded<A>) -> Result<A::Command, E>,
    ) -> Result<Decided<A>, Failure<A::Error, E>>
    where
        S: EventStore + ?Sized,
    {
        let before = self.load(store).await?;
        // A queued load took the cached state out of the cache (so deciding needs no copy of
        // it); a refusal gives it back unchanged.
        let refuse = |before: Loaded<A>, failure| {
            if let Source::Queued(cache) = self.source {
                cache.remember(&self.stream, before);
            }
            Err(failure)
        };
        let command = match check(&before) {
            Ok(command) => command,
            Err(e) => return refuse(before, Failure::Refused(e)),
        };
        if !self.pin.admits(before.version) {
            let current = before.version;
            return refuse(before, Failure::Precondition { current });
        }
        let events = match before.state.decide_before(&command, self.limits) {
            Ok(events) => events,
            Err(e) => return refuse(before, Failure::Domain(e)),
        };
        // The rules on the state after the events run on this attempt's own state, folded in
        // place. (If they refuse, that state is dropped: the next load folds the stream again.)
        let Loaded {
            state: mut after,
            version,
            position,
        } = before;
        for event in &events {
            after.evolve(event);
        }
        after
            .check_after(&events, self.limits)
            .map_err(Failure::Domain)?;
        let append = (!events.is_empty()).then(|| {
            // The state after the events names the project, even when they create it.
            let project = after.project_id();
            let expected = match (&self.source, version) {
                (Source::New, _) | (_, 0) => ExpectedVersion::NoStream,
                (_, version) => ExpectedVersion::Exact(version),
            };
            StreamAppend::new(
                self.stream.clone(),
                expected,
                stamp(&events, &self.metadata, project),
            )
        });
        Ok(Decided {
            after,
            version,
            position,
            events,
            append,
        })
    }

    /// The whole step: decide and append, with `side` committed in the same transaction, until it
    /// lands or fails for good (see [`retry`]).
    pub async fn apply<E>(
        &self,
        store: &PgEventStore,
        side: impl Fn() -> Option<Box<dyn SideWrites>>,
        check: impl Fn(&Loaded<A>) -> Result<A::Command, E>,
    ) -> Result<Applied<A::Event>, Failure<A::Error, E>> {
        // A plain loop rather than `retry` with an async closure: the worker spawns this future,
        // and an async closure's future is not provably `Send` for every lifetime.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let result = async {
                let decided = self.decide(store, &check).await?;
                let landed = commit(
                    store,
                    decided.append.into_iter().collect(),
                    &self.stream,
                    (decided.version, decided.position),
                    side(),
                )
                .await?;
                Ok(Applied {
                    events: decided.events,
                    version: landed.version,
                    position: landed.position,
                })
            }
            .await;
            if let ControlFlow::Break(done) = settle(self.pin, attempts, result) {
                return done;
            }
        }
    }
}

/// The conflict policy: a lost race is decided again, [`ATTEMPTS`] in all, unless the write was
/// pinned, when it is a failed precondition at once.
fn settle<T, D, E>(
    pin: Pin,
    attempts: usize,
    result: Result<T, Failure<D, E>>,
) -> ControlFlow<Result<T, Failure<D, E>>> {
    match result {
        Err(Failure::Conflict { current, .. }) if !pin.redecides() => {
            ControlFlow::Break(Err(Failure::Precondition { current }))
        }
        Err(Failure::Conflict { .. }) if attempts < ATTEMPTS => ControlFlow::Continue(()),
        other => ControlFlow::Break(other),
    }
}

/// Runs `attempt` until it lands or fails for good (the policy of [`settle`]).
pub async fn retry<T, D, E>(
    pin: Pin,
    mut attempt: impl AsyncFnMut() -> Result<T, Failure<D, E>>,
) -> Result<T, Failure<D, E>> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        if let ControlFlow::Break(done) = settle(pin, attempts, attempt().await) {
            return done;
        }
    }
}

/// Where an attempt's events landed, for the side writes and the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Landed {
    /// The reported stream's version after the append (its loaded version if nothing was appended).
    pub version: u64,
    pub position: Position,
    pub appended: bool,
}

impl Landed {
    /// Where `outcome` left the `report` stream, loaded at `current` (version, position).
    pub fn of(outcome: &crate::AppendOutcome, report: &str, current: (u64, Position)) -> Self {
        if outcome.streams.is_empty() {
            return Landed {
                version: current.0,
                position: current.1,
                appended: false,
            };
        }
        Landed {
            version: outcome.version_of(report).unwrap_or(current.0),
            position: outcome.position,
            appended: true,
        }
    }
}

/// Writes that commit in the append's transaction: command-side rows, the idempotent answer. They
/// own what they write, since the group-commit writer runs them in its own task.
#[async_trait]
pub trait SideWrites: Send + Sync {
    /// Whether this attempt has nothing to write besides its events.
    fn is_empty(&self) -> bool;

    /// Runs after the events are appended, in their transaction.
    async fn write(&self, tx: &Transaction<'_>, landed: &Landed) -> Result<(), StoreError>;
}

/// Appends `appends` and runs `side` in one transaction — in the group-commit writer's batch when
/// the store has one — or, for appends with nothing else to commit, through the store's `append`
/// (one autocommit statement for one stream). `report` names the stream whose version the answer
/// gives, `current` its loaded version and position.
pub async fn commit(
    store: &PgEventStore,
    appends: Vec<StreamAppend>,
    report: &str,
    current: (u64, Position),
    side: Option<Box<dyn SideWrites>>,
) -> Result<Landed, StoreError> {
    let outcome = match side.filter(|s| !s.is_empty()) {
        None if appends.is_empty() => crate::AppendOutcome::nothing(),
        None => store.append(appends).await?,
        Some(writes) => {
            let side = crate::writer::Side {
                writes,
                report: report.to_owned(),
                current,
            };
            store.commit_with_side(appends, side).await?
        }
    };
    Ok(Landed::of(&outcome, report, current))
}
