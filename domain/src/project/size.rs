//! A project's serialised size, kept exact while events are folded, so the size rule and the state cache's weight cost what an event changed rather than the whole project.
//!
//! The serialised project is its other fields (the *shell*: scalars and members) with the feature
//! and function lists spliced in, and each list's length is the sum of its elements' lengths plus
//! brackets and commas. So each list's memo is a running sum and a count: an event's feature or
//! function is measured before it is folded (taken out of the sum) and after (put back), and the
//! shell is measured again (it is small); nothing is kept per element, so the memo adds two words
//! per list to a project held in memory. [`Project::serialized_bytes`] adds them up, and falls back
//! to measuring everything whenever the memo cannot vouch for the state: a deserialised state
//! (whose memo is empty), or one whose lists no longer hold as many elements as were summed. A
//! followed state must therefore change only through `evolve` (the projector, which edits its
//! states in place, only ever edits deserialised ones); debug builds check every sum against a
//! full measurement.

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
    features: Sum,
    functions: Sum,
}

/// The serialised lengths of a list's elements, summed, and how many were summed.
#[derive(Debug, Clone, Copy, Default)]
struct Sum {
    count: usize,
    bytes: usize,
}

impl Sum {
    /// Takes out the length an element had before an event (if it existed) and puts in the one it
    /// has after (if it still exists).
    fn replace(&mut self, before: Option<usize>, after: Option<usize>) {
        if let Some(len) = before {
            self.count = self.count.saturating_sub(1);
            self.bytes = self.bytes.saturating_sub(len);
        }
        if let Some(len) = after {
            self.count += 1;
            self.bytes += len;
        }
    }

    /// `[a,b,c]`: the elements, a comma between each two, and the brackets.
    fn list_len(self) -> usize {
        2 + self.count.saturating_sub(1) + self.bytes
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

/// The serialised lengths of the feature and the function an event is about, as they are before
/// it is folded (`None`: there is none, or the memo is not followed).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Before {
    feature: Option<usize>,
    function: Option<usize>,
}

/// The feature and the function `event` adds, changes or removes.
fn subjects(
    event: &ProjectEvent,
) -> (
    Option<crate::ids::FeatureId>,
    Option<crate::ids::FunctionId>,
) {
    match event {
        ProjectEvent::FeatureAdded { feature_id, .. }
        | ProjectEvent::FeatureUpdated { feature_id, .. }
        | ProjectEvent::FeatureRemoved { feature_id, .. } => (Some(*feature_id), None),
        ProjectEvent::FunctionCreated { function_id, .. }
        | ProjectEvent::FunctionUpdated { function_id, .. }
        | ProjectEvent::FunctionDeleted { function_id, .. } => (None, Some(*function_id)),
        _ => (None, None),
    }
}

impl Project {
    /// The length of `serde_json::to_vec(self)`, in bytes: from the memo when it vouches for this
    /// state (O(1)), otherwise by serialising the whole project.
    pub fn serialized_bytes(&self) -> usize {
        let Some(memo) = &self.sizes.0 else {
            return serialized_len(self);
        };
        let vouched = memo.features.count == self.features.len()
            && memo.functions.count == self.functions.len();
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

    /// Measures what `event` will change, before `evolve` folds it.
    pub(super) fn measure_before(&self, event: &ProjectEvent) -> Before {
        if self.sizes.0.is_none() {
            return Before::default();
        }
        let (feature, function) = subjects(event);
        Before {
            feature: feature.and_then(|id| self.feature(id)).map(serialized_len),
            function: function
                .and_then(|id| self.functions.iter().find(|f| f.id == id))
                .map(serialized_len),
        }
    }

    /// Measures again what `event` changed; called by `evolve` after it folded the event.
    pub(super) fn remeasure(&mut self, event: &ProjectEvent, before: Before) {
        let Some(mut memo) = self.sizes.0.take() else {
            return;
        };
        if let ProjectEvent::ProjectCreated { .. } = event {
            // A new state: whatever was summed before is gone.
            memo.features = Sum::default();
            memo.functions = Sum::default();
            for feature in &self.features {
                memo.features.replace(None, Some(serialized_len(feature)));
            }
            for function in &self.functions {
                memo.functions.replace(None, Some(serialized_len(function)));
            }
        }
        let (feature, function) = subjects(event);
        if let Some(id) = feature {
            let after = match (event, before.feature, self.features.last()) {
                // An added feature is the list's last (a fresh id: no earlier one to find first).
                (ProjectEvent::FeatureAdded { .. }, None, Some(last)) if last.id == id => {
                    Some(serialized_len(last))
                }
                _ => self.feature(id).map(serialized_len),
            };
            memo.features.replace(before.feature, after);
        }
        if let Some(id) = function {
            let after = self
                .functions
                .iter()
                .find(|f| f.id == id)
                .map(serialized_len);
            memo.functions.replace(before.function, after);
        }
        let features = std::mem::take(&mut self.features);
        let functions = std::mem::take(&mut self.functions);
        memo.shell = serialized_len(self);
        self.features = features;
        self.functions = functions;
        self.sizes = SizeMemo(Some(memo));
    }
}
