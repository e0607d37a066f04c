//! Folding an aggregate from its stream: the one way every crate loads decision or read state
//! (command handling, time travel, the worker), so they cannot disagree; and the bounded cache of
//! folded states that lets a command read only the events it has not folded yet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use domain::{Decider, DomainEvent};

use crate::store::EventStore;
use crate::types::{Position, ReadUntil, StoreError};

/// Events read per page while folding.
const PAGE: usize = 1000;

/// Events folded between two yields to the runtime.
const YIELD_EVERY: usize = 250;

/// An aggregate's state with the version and feed position of the last event folded in.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    pub state: A,
    /// 0 when the stream has no events (up to `until`).
    pub version: u64,
    pub position: Position,
}

impl<A: Default> Default for Loaded<A> {
    fn default() -> Self {
        Self {
            state: A::default(),
            version: 0,
            position: Position::START,
        }
    }
}

/// Folds `stream_id` from its first event up to `until` with the aggregate's own `evolve`.
pub async fn load<A, S>(
    store: &S,
    stream_id: &str,
    until: ReadUntil,
) -> Result<Loaded<A>, StoreError>
where
    A: Decider,
    A::Event: DomainEvent,
    S: EventStore + ?Sized,
{
    fold_from(store, stream_id, until, Loaded::default()).await
}

/// Folds the events of `stream_id` after `start.version` (up to `until`) into `start`.
async fn fold_from<A, S>(
    store: &S,
    stream_id: &str,
    until: ReadUntil,
    start: Loaded<A>,
) -> Result<Loaded<A>, StoreError>
where
    A: Decider,
    A::Event: DomainEvent,
    S: EventStore + ?Sized,
{
    let Loaded {
        mut state,
        mut version,
        mut position,
    } = start;
    loop {
        let page = store.read_stream(stream_id, version, until, PAGE).await?;
        let short = page.len() < PAGE;
        for (n, recorded) in page.iter().enumerate() {
            // A long fold is synchronous between pages (about 6 ms per 1,000 events here): it
            // lets the runtime's other tasks — the writer, the projector, on time travel's
            // runtime — run every few hundred events instead.
            if n > 0 && n % YIELD_EVERY == 0 {
                tokio::task::yield_now().await;
            }
            let event: A::Event = recorded.decode().map_err(|source| StoreError::Decode {
                event_id: recorded.event_id,
                source,
            })?;
            state.evolve(&event);
            version = recorded.stream_version;
            position = recorded.position;
        }
        // A full page that reached the version asked for is the last one too.
        if short || matches!(until, ReadUntil::Version(v) if version >= v) {
            return Ok(Loaded {
                state,
                version,
                position,
            });
        }
    }
}

/// A caller's exclusive turn on one stream of a [`StateCache`]; dropping it lets the next in.
pub struct StreamTurn<'a, A> {
    cache: &'a StateCache<A>,
    stream: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl<A> Drop for StreamTurn<'_, A> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut lanes = self.cache.lanes.lock().unwrap_or_else(|e| e.into_inner());
        // Nobody else holds or waits for the lane: forget it, so the map stays as small as the
        // number of streams with commands in flight.
        if lanes
            .get(&self.stream)
            .is_some_and(|lane| Arc::strong_count(lane) == 1)
        {
            lanes.remove(&self.stream);
        }
    }
}

/// Folded states of recently used streams, so loading one for a command reads only the events
/// appended since it was last folded (usually none or one) instead of the whole stream.
///
/// It is always safe: events are immutable and every load still reads the stream's tail, so a
/// state from the cache is brought to the stream's end before anything is decided on it, and
/// writes made by other processes are picked up the same way. It is bounded twice: at most
/// `capacity` streams and at most `max_bytes` of states as weighed by `weigh` (their serialised
/// size); beyond either, arbitrary entries are dropped and those streams are folded in full next
/// time. A state heavier than the whole budget is never kept.
pub struct StateCache<A> {
    entries: Mutex<Entries<A>>,
    /// One lane per stream with a command in flight: this process's commands on a stream are
    /// decided one after another, each on the state the previous one left.
    lanes: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    capacity: usize,
    max_bytes: usize,
    weigh: fn(&A) -> usize,
}

struct Entries<A> {
    map: HashMap<String, (Loaded<A>, usize)>,
    bytes: usize,
}

impl<A> StateCache<A>
where
    A: Decider + Clone,
    A::Event: DomainEvent,
{
    pub fn new(capacity: usize, max_bytes: usize, weigh: fn(&A) -> usize) -> Self {
        Self {
            entries: Mutex::new(Entries {
                map: HashMap::new(),
                bytes: 0,
            }),
            lanes: Mutex::new(HashMap::new()),
            capacity,
            max_bytes,
            weigh,
        }
    }

    /// Waits for this process's earlier commands on `stream` to finish; the stream is this
    /// caller's until the returned turn is dropped.
    pub async fn queue(&self, stream: &str) -> StreamTurn<'_, A> {
        let lane = {
            let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
            lanes.entry(stream.to_owned()).or_default().clone()
        };
        let guard = lane.lock_owned().await;
        StreamTurn {
            cache: self,
            stream: stream.to_owned(),
            guard: Some(guard),
        }
    }

    /// The cached state of `stream` as it is, without reading the events after it, taken out of
    /// the cache (the caller gives it back with [`StateCache::remember`]); a full fold when nothing
    /// is cached. Only sound for a caller holding the stream's [`StateCache::queue`] turn whose
    /// append checks the loaded version: a write by another process since is then a conflict, and
    /// the caller decides again on [`StateCache::load`].
    pub async fn load_cached<S>(&self, store: &S, stream_id: &str) -> Result<Loaded<A>, StoreError>
    where
        S: EventStore + ?Sized,
    {
        match self.take(stream_id) {
            Some(loaded) => Ok(loaded),
            // Not kept here: the caller remembers the state its command leaves.
            None => fold_from(store, stream_id, ReadUntil::End, Loaded::default()).await,
        }
    }

    /// A clone of the state cached for `stream_id` if it is at exactly `version`; nothing while a
    /// command has it taken out, or when it is at another version.
    pub fn at_version(&self, stream_id: &str, version: u64) -> Option<A> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .map
            .get(stream_id)
            .filter(|(loaded, _)| loaded.version == version)
            .map(|(loaded, _)| loaded.state.clone())
    }

    /// Keeps `loaded` as `stream_id`'s state: the state a committed command left, or the state a
    /// queued command took ([`StateCache::load_cached`]) and did not change.
    pub fn remember(&self, stream_id: &str, loaded: Loaded<A>) {
        self.put(stream_id, loaded);
    }

    /// The state of `stream_id` at its end: the cached fold plus the events after it.
    pub async fn load<S>(&self, store: &S, stream_id: &str) -> Result<Loaded<A>, StoreError>
    where
        S: EventStore + ?Sized,
    {
        let start = self.get(stream_id).unwrap_or_default();
        let cached = start.version;
        let loaded = fold_from(store, stream_id, ReadUntil::End, start).await?;
        // Nothing appended since: the cache holds this state already.
        if loaded.version != cached {
            self.put(stream_id, loaded.clone());
        }
        Ok(loaded)
    }

    fn get(&self, stream_id: &str) -> Option<Loaded<A>> {
        // A poisoned lock only means another thread panicked mid-insert; the map is still valid.
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.map.get(stream_id).map(|(loaded, _)| loaded.clone())
    }

    /// Removes and returns the cached state of `stream_id`, so its holder can fold events into it
    /// without copying it.
    fn take(&self, stream_id: &str) -> Option<Loaded<A>> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (loaded, weight) = entries.map.remove(stream_id)?;
        entries.bytes -= weight;
        Some(loaded)
    }

    fn put(&self, stream_id: &str, loaded: Loaded<A>) {
        // A stream without events has nothing worth keeping (and a load of it reads nothing).
        if loaded.version == 0 {
            return;
        }
        let newer = |entries: &Entries<A>| {
            entries
                .map
                .get(stream_id)
                .is_none_or(|(current, _)| current.version < loaded.version)
        };
        // Two loads may race; the later fold wins, never an older one. Checked before weighing
        // (a serialisation of the whole state), and again under the lock.
        if !newer(&self.entries.lock().unwrap_or_else(|e| e.into_inner())) {
            return;
        }
        let weight = (self.weigh)(&loaded.state);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if !newer(&entries) {
            return;
        }
        let Entries { map, bytes } = &mut *entries;
        if let Some((_, old)) = map.remove(stream_id) {
            *bytes -= old;
        }
        if weight > self.max_bytes {
            return;
        }
        while map.len() >= self.capacity || *bytes + weight > self.max_bytes {
            let Some(victim) = map.keys().next().cloned() else {
                break;
            };
            if let Some((_, w)) = map.remove(&victim) {
                *bytes -= w;
            }
        }
        map.insert(stream_id.to_owned(), (loaded, weight));
        *bytes += weight;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::project::Project;

    fn at(version: u64) -> Loaded<Project> {
        Loaded {
            state: Project::default(),
            version,
            position: Position::START,
        }
    }

    fn cached_version(cache: &StateCache<Project>, stream: &str) -> Option<u64> {
        cache.get(stream).map(|l| l.version)
    }

    fn cache(capacity: usize, max_bytes: usize) -> StateCache<Project> {
        StateCache::new(capacity, max_bytes, |_| 100)
    }

    #[test]
    fn a_later_fold_wins_and_an_older_one_never_replaces_it() {
        let cache = cache(4, 1 << 20);
        cache.put("project-a", at(5));
        cache.put("project-a", at(3));
        assert_eq!(cached_version(&cache, "project-a"), Some(5));
        cache.put("project-a", at(7));
        assert_eq!(cached_version(&cache, "project-a"), Some(7));
    }

    #[test]
    fn the_cache_never_holds_more_than_its_capacity() {
        let cache = cache(2, 1 << 20);
        for stream in ["project-a", "project-b", "project-c", "project-d"] {
            cache.put(stream, at(1));
        }
        let held = cache
            .entries
            .lock()
            .map(|e| e.map.len())
            .unwrap_or(usize::MAX);
        assert_eq!(held, 2);
        assert_eq!(cached_version(&cache, "project-d"), Some(1));
    }

    #[test]
    fn the_cache_never_holds_more_bytes_than_its_budget() {
        let cache = cache(100, 250);
        for stream in ["project-a", "project-b", "project-c", "project-d"] {
            cache.put(stream, at(1));
        }
        let (held, bytes) = cache
            .entries
            .lock()
            .map(|e| (e.map.len(), e.bytes))
            .unwrap_or((usize::MAX, usize::MAX));
        assert_eq!((held, bytes), (2, 200));
        assert_eq!(cached_version(&cache, "project-d"), Some(1));
        cache.put("project-d", at(2));
        assert_eq!(cache.entries.lock().map(|e| e.bytes).unwrap_or(0), 200);
    }

    #[test]
    fn a_taken_state_leaves_the_cache_and_its_budget_until_it_is_remembered() {
        let cache = cache(4, 1 << 20);
        cache.put("project-a", at(3));
        let taken = cache.take("project-a").map(|l| l.version);
        assert_eq!(taken, Some(3));
        assert_eq!(cached_version(&cache, "project-a"), None);
        assert_eq!(cache.entries.lock().map(|e| e.bytes).unwrap_or(1), 0);
        cache.remember("project-a", at(4));
        assert_eq!(cached_version(&cache, "project-a"), Some(4));
        assert_eq!(cache.entries.lock().map(|e| e.bytes).unwrap_or(0), 100);
    }

    #[test]
    fn a_state_heavier_than_the_whole_budget_is_not_kept() {
        let cache = cache(100, 99);
        cache.put("project-a", at(1));
        assert_eq!(cached_version(&cache, "project-a"), None);
    }
}
