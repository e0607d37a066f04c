//! The feature lists of projects read recently, as JSON text per project version: a detail read
//! whose row is still at that version skips aggregating the feature rows, and the in-process
//! projector carries each held list to every version it commits.

use std::collections::HashMap;
use std::sync::Mutex;

use uuid::Uuid;

use crate::rows::JsonText;

/// Bounded in bytes: beyond `max_bytes`, arbitrary entries are dropped (those projects are read
/// from their rows next time); a list heavier than a quarter of the budget is never kept.
///
/// An entry is only ever a list the read model held at the entry's version, and a reader uses it
/// only after reading the project's row at that same version, so a stale or missing entry costs
/// a full read, never a wrong answer. Readers fill it ([`FeatureLists::offer`]); the projector
/// only moves forward entries read since it last moved them ([`FeatureLists::advance`]) and drops
/// the others, so a project written but no longer read costs no memory or rendering here.
pub struct FeatureLists {
    entries: Mutex<Entries>,
    max_bytes: usize,
}

#[derive(Default)]
struct Entries {
    map: HashMap<Uuid, Entry>,
    bytes: usize,
}

impl Entries {
    /// Removes `project`'s list and gives back its bytes.
    fn remove(&mut self, project: &Uuid) {
        if let Some(dropped) = self.map.remove(project) {
            self.bytes -= dropped.features.len();
        }
    }
}

struct Entry {
    version: i64,
    features: JsonText,
    /// How many features the list holds, when the projector rendered it (a reader's list from
    /// the rows does not say).
    count: Option<usize>,
    /// Whether a reader has used or offered this version of the list.
    read: bool,
}

/// A held list the projector may carry forward: its version, its feature count if known, and
/// its text.
pub struct Held {
    pub version: i64,
    pub count: Option<usize>,
    pub features: JsonText,
}

/// Who is putting a list in: a reader may add a project; the projector only replaces one held.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Put {
    Reader,
    Projector,
}

impl FeatureLists {
    /// `max_bytes` 0 keeps nothing.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            entries: Mutex::new(Entries::default()),
            max_bytes,
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The list held for `project` and the version it is the list of (marked read).
    pub fn get(&self, project: Uuid) -> Option<(i64, JsonText)> {
        let mut entries = self.entries();
        let entry = entries.map.get_mut(&project)?;
        entry.read = true;
        Some((entry.version, entry.features.clone()))
    }

    /// The list held for `project` if a reader read it since the projector last moved it: the
    /// projector carries only those forward, and drops the others here.
    pub fn wanted(&self, project: Uuid) -> Option<Held> {
        let mut entries = self.entries();
        let entry = entries.map.get(&project)?;
        if entry.read {
            return Some(Held {
                version: entry.version,
                count: entry.count,
                features: entry.features.clone(),
            });
        }
        entries.remove(&project);
        None
    }

    /// A reader's list of `project` at `version`, as read from the rows: kept unless a later
    /// version is already held (the projector may have moved on while the read ran).
    pub fn offer(&self, project: Uuid, version: i64, features: &JsonText) {
        self.put(project, version, None, features, Put::Reader);
    }

    /// The list of a held `project` at a `version` the projector has committed; a project not
    /// held stays so, and one not read since the last move is dropped.
    pub fn advance(&self, project: Uuid, version: i64, count: usize, features: &JsonText) {
        self.put(project, version, Some(count), features, Put::Projector);
    }

    fn put(
        &self,
        project: Uuid,
        version: i64,
        count: Option<usize>,
        features: &JsonText,
        who: Put,
    ) {
        let size = features.len();
        if size > self.max_bytes / 4 {
            self.forget(project);
            return;
        }
        let mut guard = self.entries();
        let entries = &mut *guard;
        let fresh = Entry {
            version,
            features: features.clone(),
            count,
            read: who == Put::Reader,
        };
        match entries.map.get(&project) {
            Some(held) if held.version >= version => return,
            Some(held) if who == Put::Projector && !held.read => {
                entries.remove(&project);
                return;
            }
            None if who == Put::Projector => return,
            _ => {}
        }
        entries.remove(&project);
        entries.map.insert(project, fresh);
        entries.bytes += size;
        while entries.bytes > self.max_bytes {
            let Some(victim) = entries.map.keys().find(|id| **id != project).copied() else {
                break;
            };
            entries.remove(&victim);
        }
    }

    /// Drops the list of `project` (its row is gone, or the projector no longer holds its state).
    pub fn forget(&self, project: Uuid) {
        self.entries().remove(&project);
    }

    /// Drops every list (the read models were swapped under the projector).
    pub fn clear(&self) {
        *self.entries() = Entries::default();
    }

    /// The bytes of list text held.
    pub fn bytes(&self) -> usize {
        self.entries().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> JsonText {
        JsonText::array(items).expect("serialisable")
    }

    #[test]
    fn a_reader_adds_a_list_and_never_replaces_a_later_one() {
        // given a list the projector carried to version 3
        let lists = FeatureLists::new(1 << 20);
        let p = Uuid::new_v4();
        lists.offer(p, 2, &list(&["a"]));
        lists.advance(p, 3, 2, &list(&["a", "b"]));
        // when a reader that read version 2 offers its list late
        lists.offer(p, 2, &list(&["a"]));
        // then version 3's list is still held
        let (version, text) = lists.get(p).expect("held");
        assert_eq!(version, 3);
        assert_eq!(text.as_bytes(), br#"["a","b"]"#);
    }

    #[test]
    fn the_projector_only_moves_lists_that_readers_asked_for() {
        // given no reader has read the project
        let lists = FeatureLists::new(1 << 20);
        let p = Uuid::new_v4();
        // when the projector commits a version of it
        lists.advance(p, 1, 1, &list(&["a"]));
        // then nothing is held for it
        assert!(lists.get(p).is_none());
        assert_eq!(lists.bytes(), 0);
    }

    #[test]
    fn a_list_nobody_read_since_the_projector_moved_it_is_dropped_at_the_next_move() {
        // given a list a reader offered at version 1, moved by the projector to version 2
        let lists = FeatureLists::new(1 << 20);
        let p = Uuid::new_v4();
        lists.offer(p, 1, &list(&["a"]));
        assert_eq!(
            lists.wanted(p).map(|h| (h.version, h.count)),
            Some((1, None))
        );
        lists.advance(p, 2, 2, &list(&["a", "b"]));
        // when nobody reads version 2 and the projector asks for it after committing version 3
        let wanted = lists.wanted(p);
        // then the list is dropped with its bytes
        assert!(wanted.is_none());
        assert!(lists.get(p).is_none());
        assert_eq!(lists.bytes(), 0);
        // while a list read at version 2 would have been moved to version 3
        lists.offer(p, 1, &list(&["a"]));
        lists.advance(p, 2, 2, &list(&["a", "b"]));
        assert_eq!(lists.get(p).map(|(v, _)| v), Some(2));
        lists.advance(p, 3, 3, &list(&["a", "b", "c"]));
        assert_eq!(lists.get(p).map(|(v, _)| v), Some(3));
    }

    #[test]
    fn the_budget_bounds_the_bytes_held_and_refuses_a_list_heavier_than_a_quarter() {
        // given a budget of 64 bytes
        let lists = FeatureLists::new(64);
        // when ten 12-byte lists are offered
        for v in 0..10 {
            lists.offer(Uuid::new_v4(), v, &list(&["abcdefgh"]));
        }
        // then at most 64 bytes are held
        assert!(lists.bytes() <= 64, "{} bytes held", lists.bytes());
        // and a 17-byte list is never kept
        let p = Uuid::new_v4();
        lists.offer(p, 1, &list(&["abcdefghijklm"]));
        assert!(lists.get(p).is_none());
    }

    #[test]
    fn forgetting_and_clearing_give_back_the_bytes() {
        // given two held lists
        let lists = FeatureLists::new(1 << 20);
        let (p, q) = (Uuid::new_v4(), Uuid::new_v4());
        lists.offer(p, 1, &list(&["a"]));
        lists.offer(q, 1, &list(&["b"]));
        // when one is forgotten, then the other cleared
        lists.forget(p);
        assert_eq!(lists.bytes(), list(&["b"]).len());
        lists.clear();
        // then nothing is held
        assert_eq!(lists.bytes(), 0);
        assert!(lists.get(q).is_none());
    }

    #[test]
    fn a_list_is_rendered_as_the_rows_aggregate_it() {
        // given no items and two, then the text the SQL aggregate forms from the same rows
        assert_eq!(list(&[]).as_bytes(), b"[]");
        assert_eq!(list(&["x", "y\""]).as_bytes(), br#"["x","y\""]"#);
        // and an array extended by items is the array of all of them
        let extended = |head: &[&str], tail: &[&str]| {
            list(head)
                .extended(tail)
                .expect("serialisable")
                .as_bytes()
                .to_vec()
        };
        assert_eq!(extended(&[], &["a"]), list(&["a"]).as_bytes());
        assert_eq!(
            extended(&["a"], &["b", "c"]),
            list(&["a", "b", "c"]).as_bytes()
        );
        assert_eq!(extended(&["a"], &[]), list(&["a"]).as_bytes());
    }
}
