//! A project's serialised size, kept exact while events are folded, so the size rule and the state cache's weight cost what an event changed rather than the whole project.
//!
//! The serialised project is its other fields (the *shell*: scalars and members) with the feature
//! and function lists spliced in, and each list's length is the sum of its elements' lengths plus
//! brackets and commas. So after each event the shell is measured again (it is small), and only the
//! features and functions the event changed are measured; the rest keep their measured lengths.
//! [`Project::serialized_bytes`] adds them up, and falls back to measuring everything whenever the
//! memo cannot vouch for the state: a deserialised state (whose memo is empty), or one whose lists
//! no longer hold what was measured. A followed state must therefore change only through `evolve`
//! (the projector, which edits its states in place, only ever edits deserialised ones); debug
//! builds check every sum against a full measurement.

use std::collections::HashMap;

use super::{FeaturesTouched, Project, ProjectEvent};
use crate::ids::{FeatureId, FunctionId};
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
    features: HashMap<FeatureId, usize>,
    functions: HashMap<FunctionId, usize>,
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

/// `[a,b,c]`: the elements, a comma between each two, and the brackets.
fn list_len<'a>(lengths: impl ExactSizeIterator<Item = &'a usize>) -> usize {
    let n = lengths.len();
    2 + n.saturating_sub(1) + lengths.sum::<usize>()
}

impl Project {
    /// The length of `serde_json::to_vec(self)`, in bytes: from the memo when it vouches for this
    /// state (O(number of features and functions)), otherwise by serialising the whole project.
    pub fn serialized_bytes(&self) -> usize {
        let Some(memo) = &self.sizes.0 else {
            return serialized_len(self);
        };
        let vouched = memo.features.len() == self.features.len()
            && memo.functions.len() == self.functions.len();
        if !vouched {
            return serialized_len(self);
        }
        let features: Option<Vec<&usize>> = self
            .features
            .iter()
            .map(|f| memo.features.get(&f.id))
            .collect();
        let functions: Option<Vec<&usize>> = self
            .functions
            .iter()
            .map(|f| memo.functions.get(&f.id))
            .collect();
        // The shell holds `"features":[]`; the list replaces its two brackets. (A state before
        // its first event has no measured shell.)
        let (Some(features), Some(functions), Some(shell)) =
            (features, functions, memo.shell.checked_sub(2))
        else {
            return serialized_len(self);
        };
        let mut bytes = shell + list_len(features.into_iter());
        if !functions.is_empty() {
            bytes += FUNCTIONS_KEY + list_len(functions.into_iter());
        }
        debug_assert_eq!(bytes, serialized_len(self), "the size memo drifted");
        bytes
    }

    /// Measures again what `event` changed; called by `evolve` after it folded the event.
    pub(super) fn remeasure(&mut self, event: &ProjectEvent) {
        let Some(mut memo) = self.sizes.0.take() else {
            return;
        };
        match event.features_touched() {
            FeaturesTouched::None => {}
            FeaturesTouched::One(id) => match self.feature(id) {
                Some(feature) => {
                    memo.features.insert(id, serialized_len(feature));
                }
                None => {
                    memo.features.remove(&id);
                }
            },
            FeaturesTouched::All => {
                let mut kept: HashMap<FeatureId, usize> = HashMap::new();
                for feature in &self.features {
                    // Removing a feature changes no other feature, so the rest keep their lengths.
                    let len = memo
                        .features
                        .get(&feature.id)
                        .copied()
                        .filter(|_| !matches!(event, ProjectEvent::ProjectCreated { .. }))
                        .unwrap_or_else(|| serialized_len(feature));
                    kept.insert(feature.id, len);
                }
                memo.features = kept;
            }
        }
        match event {
            ProjectEvent::FunctionCreated { function_id, .. }
            | ProjectEvent::FunctionUpdated { function_id, .. } => {
                match self.functions.iter().find(|f| f.id == *function_id) {
                    Some(function) => {
                        memo.functions
                            .insert(*function_id, serialized_len(function));
                    }
                    None => {
                        memo.functions.remove(function_id);
                    }
                }
            }
            ProjectEvent::FunctionDeleted { function_id, .. } => {
                memo.functions.remove(function_id);
            }
            ProjectEvent::ProjectCreated { .. } => memo.functions.clear(),
            _ => {}
        }
        let features = std::mem::take(&mut self.features);
        let functions = std::mem::take(&mut self.functions);
        memo.shell = serialized_len(self);
        self.features = features;
        self.functions = functions;
        self.sizes = SizeMemo(Some(memo));
    }
}
