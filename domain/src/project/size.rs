//! A project's serialised size, kept exact while events are folded, so the size rule and the state cache's weight cost what an event changed rather than the whole project.
//!
//! The serialised project is its other fields (the *shell*: scalars and members) with the feature
//! and function lists spliced in, and each list's length is the sum of its elements' lengths plus
//! brackets and commas. So each list's memo is its elements' lengths in the list's order (one word
//! each) and their running sum: after each event the shell is measured again (it is small), and
//! only the feature or function the event added or changed is measured; where it sits is found
//! before the event is folded, exactly as `evolve` finds it. [`Project::serialized_bytes`] adds
//! them up in O(1), and falls back to measuring everything whenever the memo cannot vouch for the
//! state: a deserialised state (whose memo is empty), or one whose lists no longer hold as many
//! elements as were measured. A
//! followed state must therefore change only through `evolve` (the projector, which edits its
//! states in place, only ever edits deserialised ones); debug builds check every sum against a
//! full measurement.

use super::evolve::push_compact;
use super::{Project, ProjectEvent};
use crate::serialized_len;

/// `,"functions":` — present in the serialised project only while it has functions.
const FUNCTIONS_KEY: usize = r#","functions":"#.len();

/// The measured lengths behind [`Project::serialized_bytes`]. A memo, not state: it never
/// serialises, and every memo is equal to every other, so it never makes two projects differ.
/// `None` (a deserialised state's) vouches for nothing; `Some` only ever follows `evolve` from
/// `Project::default()`. Boxed, so it adds one word to a `Project`.
#[derive(Debug, Clone, Default)]
pub struct SizeMemo(Option<Box<Measured>>);

#[derive(Debug, Clone, Default)]
struct Measured {
    /// The project serialised with no features and no functions (0 before the first event).
    shell: usize,
    features: Lengths,
    functions: Lengths,
}

/// The serialised length of each element of a list, in the list's order, and their sum.
#[derive(Debug, Clone, Default)]
struct Lengths {
    each: Vec<usize>,
    total: usize,
}

impl Lengths {
    fn of<T: serde::Serialize>(list: &[T]) -> Self {
        let each: Vec<usize> = list.iter().map(serialized_len).collect();
        let total = each.iter().sum();
        Self { each, total }
    }

    /// Follows `change`, which `evolve` just made to `list`.
    fn follow<T: serde::Serialize>(&mut self, change: &Change, list: &[T]) {
        match change {
            Change::Nothing => {}
            Change::Added => {
                if let Some(last) = list.last() {
                    let len = serialized_len(last);
                    push_compact(&mut self.each, len);
                    self.total += len;
                }
            }
            Change::Updated(at) => {
                if let (Some(old), Some(element)) = (self.each.get_mut(*at), list.get(*at)) {
                    let len = serialized_len(element);
                    self.total = self.total.saturating_sub(*old) + len;
                    *old = len;
                }
            }
            Change::Removed(at) => {
                for i in at.iter().rev() {
                    if *i < self.each.len() {
                        let old = self.each.remove(*i);
                        self.total = self.total.saturating_sub(old);
                    }
                }
            }
        }
    }

    /// `[a,b,c]`: the elements, a comma between each two, and the brackets.
    fn list_len(&self) -> usize {
        2 + self.each.len().saturating_sub(1) + self.total
    }
}

impl PartialEq for SizeMemo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl SizeMemo {
    /// The memo of `Project::default()`: nothing folded yet, so nothing measured yet.
    pub(super) fn fresh() -> Self {
        Self(Some(Box::default()))
    }
}

/// What an event does to one list, found before `evolve` folds it, as `evolve` will do it: an
/// update changes the first element with the id, a removal drops every element with it.
#[derive(Debug, Clone, Default)]
pub(super) enum Change {
    #[default]
    Nothing,
    Added,
    Updated(usize),
    Removed(Vec<usize>),
}

impl Change {
    fn find<T>(list: &[T], is: impl Fn(&T) -> bool, removal: bool) -> Self {
        if removal {
            Change::Removed((0..list.len()).filter(|i| is(&list[*i])).collect())
        } else {
            list.iter()
                .position(is)
                .map_or(Change::Nothing, Change::Updated)
        }
    }
}

/// The changes `event` makes to the feature list and to the function list.
#[derive(Debug, Clone, Default)]
pub(super) struct Before {
    features: Change,
    functions: Change,
}

impl Project {
    /// The length of `serde_json::to_vec(self)`, in bytes: from the memo when it vouches for this
    /// state (O(1)), otherwise by serialising the whole project.
    pub fn serialized_bytes(&self) -> usize {
        let Some(memo) = &self.sizes.0 else {
            return serialized_len(self);
        };
        let vouched = memo.features.each.len() == self.features.len()
            && memo.functions.each.len() == self.functions.len();
        // The shell holds `"features":[]`; the list replaces its two brackets. (A state before
        // its first event has no measured shell.)
        let Some(shell) = memo.shell.checked_sub(2).filter(|_| vouched) else {
            return serialized_len(self);
        };
        let mut bytes = shell + memo.features.list_len();
        if !self.functions.is_empty() {
            bytes += FUNCTIONS_KEY + memo.functions.list_len();
        }
        debug_assert_eq!(bytes, serialized_len(self), "the size memo drifted");
        bytes
    }

    /// Finds what `event` will change, before `evolve` folds it.
    pub(super) fn measure_before(&self, event: &ProjectEvent) -> Before {
        if self.sizes.0.is_none() {
            return Before::default();
        }
        let feature = |id, removal| Change::find(&self.features, |f| f.id == id, removal);
        let function = |id, removal| Change::find(&self.functions, |f| f.id == id, removal);
        let (features, functions) = match event {
            ProjectEvent::FeatureAdded { .. } => (Change::Added, Change::Nothing),
            ProjectEvent::FeatureUpdated { feature_id, .. } => {
                (feature(*feature_id, false), Change::Nothing)
            }
            ProjectEvent::FeatureRemoved { feature_id, .. } => {
                (feature(*feature_id, true), Change::Nothing)
            }
            ProjectEvent::FunctionCreated { .. } => (Change::Nothing, Change::Added),
            ProjectEvent::FunctionUpdated { function_id, .. } => {
                (Change::Nothing, function(*function_id, false))
            }
            ProjectEvent::FunctionDeleted { function_id, .. } => {
                (Change::Nothing, function(*function_id, true))
            }
            _ => (Change::Nothing, Change::Nothing),
        };
        Before {
            features,
            functions,
        }
    }

    /// Measures again what `event` changed; called by `evolve` after it folded the event.
    pub(super) fn remeasure(&mut self, event: &ProjectEvent, before: Before) {
        let Some(mut memo) = self.sizes.0.take() else {
            return;
        };
        if let ProjectEvent::ProjectCreated { .. } = event {
            // A new state: whatever was measured before is gone.
            memo.features = Lengths::of(&self.features);
            memo.functions = Lengths::of(&self.functions);
        }
        memo.features.follow(&before.features, &self.features);
        memo.functions.follow(&before.functions, &self.functions);
        let features = std::mem::take(&mut self.features);
        let functions = std::mem::take(&mut self.functions);
        memo.shell = serialized_len(self);
        self.features = features;
        self.functions = functions;
        self.sizes = SizeMemo(Some(memo));
    }
}
