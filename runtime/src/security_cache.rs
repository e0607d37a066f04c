//! The security-version cache: the extractor's per-request credentials lookup served from memory,
//! evicted by `NOTIFY backforge_security`, bypassed while that LISTEN is down, at most `max_age` old.
//!
//! A command or a read checks the caller's token against their current security version; without
//! this cache every request pays a `credentials` round trip. The rules that keep revocation sound
//! (an entry is only ever a value read from `credentials`, never a notification's payload; a
//! notification or a local change evicts; a read that raced an eviction is not kept; nothing is
//! cached while the listener is down, and everything is dropped when it comes back) all live here.
//! Login, refresh and change-password never use it (they read `credentials` themselves, or use
//! [`crate::auth::FreshlyAuthenticated`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use event_store::notify::{Heard, listen_forever};
use uuid::Uuid;

use crate::auth::{SecurityLookup, SecurityState};
use crate::problem::ApiError;

/// The NOTIFY channel the `credentials` trigger (command-side migration V3) sends on.
pub const SECURITY_CHANNEL: &str = "backforge_security";

/// The most users kept; beyond it the cache starts over (entries are cheap to re-read).
const CAPACITY: usize = 100_000;

/// A [`SecurityLookup`] that keeps what `source` answered for at most `max_age`.
pub struct SecurityCache {
    source: Arc<dyn SecurityLookup>,
    max_age: Duration,
    /// Whether LISTEN is in place now; until it is, every lookup goes to `source`.
    listening: AtomicBool,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    map: HashMap<Uuid, (SecurityState, Instant)>,
    /// Bumped by every eviction: a lookup that started before one does not keep its answer.
    epoch: u64,
}

impl SecurityCache {
    /// A cache in front of `source` that serves nothing until [`SecurityCache::listen`] (or, in
    /// tests, [`SecurityCache::heard`]) reports LISTEN in place. `max_age` zero disables it.
    pub fn new(source: Arc<dyn SecurityLookup>, max_age: Duration) -> Arc<Self> {
        Arc::new(Self {
            source,
            max_age,
            listening: AtomicBool::new(false),
            entries: Mutex::new(Entries::default()),
        })
    }

    /// Listens on [`SECURITY_CHANNEL`] of `database_url` for the life of the process.
    pub fn listen(self: &Arc<Self>, database_url: &str) {
        if self.max_age.is_zero() {
            return;
        }
        let cache = Arc::clone(self);
        listen_forever(database_url.to_owned(), SECURITY_CHANNEL, move |heard| {
            cache.heard(heard)
        });
    }

    /// What the listener heard.
    pub fn heard(&self, heard: Heard) {
        match heard {
            Heard::Listening => {
                // Changes made while nobody listened are unknown: start empty.
                self.clear();
                self.listening.store(true, Ordering::Release);
            }
            Heard::Lost => {
                self.listening.store(false, Ordering::Release);
                self.clear();
            }
            Heard::Notification(payload) => match Uuid::parse_str(payload.trim()) {
                Ok(user_id) => self.evict(user_id),
                // Anyone may NOTIFY this channel; what is not a user id drops everything.
                Err(_) => self.clear(),
            },
        }
    }

    /// Drops `user_id`'s entry: called by the process that changed their credentials, right after
    /// the commit, so revocation is immediate there.
    pub fn evict(&self, user_id: Uuid) {
        let mut entries = self.lock();
        entries.map.remove(&user_id);
        entries.epoch = entries.epoch.wrapping_add(1);
    }

    fn clear(&self) {
        let mut entries = self.lock();
        entries.map.clear();
        entries.epoch = entries.epoch.wrapping_add(1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A poisoned lock only means a thread panicked mid-update; the map is still valid.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn serving(&self) -> bool {
        !self.max_age.is_zero() && self.listening.load(Ordering::Acquire)
    }
}

#[async_trait]
impl SecurityLookup for SecurityCache {
    async fn security_state(&self, user_id: Uuid) -> Result<Option<SecurityState>, ApiError> {
        if !self.serving() {
            return self.source.security_state(user_id).await;
        }
        let epoch = {
            let entries = self.lock();
            if let Some((state, at)) = entries.map.get(&user_id)
                && at.elapsed() < self.max_age
            {
                return Ok(Some(state.clone()));
            }
            entries.epoch
        };
        let read_at = Instant::now();
        let state = self.source.security_state(user_id).await?;
        if let Some(state) = &state {
            let mut entries = self.lock();
            // An eviction (or a lost listener) since the read began may mean the value is old.
            if entries.epoch == epoch && self.serving() {
                if entries.map.len() >= CAPACITY {
                    entries.map.clear();
                }
                entries.map.insert(user_id, (state.clone(), read_at));
            }
        }
        Ok(state)
    }

    async fn current_security_state(
        &self,
        user_id: Uuid,
    ) -> Result<Option<SecurityState>, ApiError> {
        self.source.current_security_state(user_id).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use domain::user::Role;

    use super::*;

    /// A `credentials` table of one user whose security version tests change.
    struct Table {
        version: AtomicU64,
        reads: AtomicU64,
    }

    #[async_trait]
    impl SecurityLookup for Table {
        async fn security_state(&self, _: Uuid) -> Result<Option<SecurityState>, ApiError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            Ok(Some(SecurityState {
                security_version: self.version.load(Ordering::SeqCst) as i64,
                role: Role::Member,
                active: true,
            }))
        }
    }

    fn given(max_age: Duration) -> (Arc<Table>, Arc<SecurityCache>) {
        let table = Arc::new(Table {
            version: AtomicU64::new(1),
            reads: AtomicU64::new(0),
        });
        let cache = SecurityCache::new(table.clone(), max_age);
        (table, cache)
    }

    async fn version(cache: &SecurityCache, user: Uuid) -> i64 {
        match cache.security_state(user).await {
            Ok(Some(state)) => state.security_version,
            other => panic!("no state: {other:?}"),
        }
    }

    #[tokio::test]
    async fn given_a_listening_cache_when_a_user_is_looked_up_twice_then_credentials_are_read_once()
    {
        let (table, cache) = given(Duration::from_secs(60));
        cache.heard(Heard::Listening);
        let user = Uuid::now_v7();
        version(&cache, user).await;
        version(&cache, user).await;
        assert_eq!(table.reads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn given_no_listener_when_looking_up_then_every_lookup_reads_credentials() {
        let (table, cache) = given(Duration::from_secs(60));
        let user = Uuid::now_v7();
        version(&cache, user).await;
        version(&cache, user).await;
        assert_eq!(table.reads.load(Ordering::SeqCst), 2);
        cache.heard(Heard::Listening);
        version(&cache, user).await;
        cache.heard(Heard::Lost);
        table.version.store(2, Ordering::SeqCst);
        assert_eq!(
            version(&cache, user).await,
            2,
            "bypassed while LISTEN is down"
        );
    }

    #[tokio::test]
    async fn given_a_cached_user_when_notified_then_the_new_value_is_read_not_the_payload() {
        let (table, cache) = given(Duration::from_secs(60));
        cache.heard(Heard::Listening);
        let user = Uuid::now_v7();
        assert_eq!(version(&cache, user).await, 1);
        table.version.store(2, Ordering::SeqCst);
        assert_eq!(version(&cache, user).await, 1, "cached until told");
        cache.heard(Heard::Notification(user.to_string()));
        assert_eq!(version(&cache, user).await, 2);
        table.version.store(3, Ordering::SeqCst);
        cache.heard(Heard::Notification("not a user id".into()));
        assert_eq!(version(&cache, user).await, 3, "garbage clears everything");
    }

    #[tokio::test]
    async fn given_a_local_change_when_evicted_then_the_next_lookup_sees_it_at_once() {
        let (table, cache) = given(Duration::from_secs(60));
        cache.heard(Heard::Listening);
        let user = Uuid::now_v7();
        version(&cache, user).await;
        table.version.store(2, Ordering::SeqCst);
        cache.evict(user);
        assert_eq!(version(&cache, user).await, 2);
    }

    #[tokio::test]
    async fn given_an_entry_older_than_the_max_age_when_looked_up_then_it_is_read_again() {
        let (table, cache) = given(Duration::from_millis(30));
        cache.heard(Heard::Listening);
        let user = Uuid::now_v7();
        version(&cache, user).await;
        table.version.store(2, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(version(&cache, user).await, 2);
    }

    #[tokio::test]
    async fn given_a_fresh_lookup_when_asked_then_it_never_uses_the_cache() {
        let (table, cache) = given(Duration::from_secs(60));
        cache.heard(Heard::Listening);
        let user = Uuid::now_v7();
        version(&cache, user).await;
        table.version.store(2, Ordering::SeqCst);
        let fresh = cache.current_security_state(user).await;
        assert!(matches!(fresh, Ok(Some(s)) if s.security_version == 2));
    }

    #[test]
    fn the_trigger_notifies_on_the_channel_the_cache_listens_to() {
        let migration = include_str!("../../command-api/migrations/V3__security_notify.sql");
        assert!(migration.contains(&format!("pg_notify('{SECURITY_CHANNEL}'")));
    }
}
