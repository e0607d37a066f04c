//! `Shared<T>`: a part of a state that clones of the state hold once, copied on its first write.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A value behind an `Arc` that reads as the value itself and is copied when written through a
/// clone (`Arc::make_mut`). `serve` holds every busy project twice, in the command side's state
/// cache and in the projector's warm rows; with its features `Shared`, the two copies hold each
/// unchanged feature once. Serialises, compares and prints as the value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Shared<T>(Arc<T>);

impl<T> Shared<T> {
    pub fn new(value: T) -> Self {
        Self(Arc::new(value))
    }

    /// Whether both hold the very same value (not only equal ones).
    pub fn same(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl<T> From<T> for Shared<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Clone> DerefMut for Shared<T> {
    /// The value to change: copied first if another clone still holds it.
    fn deref_mut(&mut self) -> &mut T {
        Arc::make_mut(&mut self.0)
    }
}

impl<T: fmt::Debug> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_through_one_clone_leaves_the_other_as_it_was() {
        // Given a value held by two clones
        let mut a = Shared::new(vec![1, 2]);
        let b = a.clone();
        assert!(Shared::same(&a, &b));
        // When one is written
        a.push(3);
        // Then only it changed, and the two no longer share
        assert_eq!(*a, [1, 2, 3]);
        assert_eq!(*b, [1, 2]);
        assert!(!Shared::same(&a, &b));
    }

    #[test]
    fn it_serialises_and_compares_as_its_value() {
        let a = Shared::new(String::from("x"));
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"x\"");
        assert_eq!(serde_json::from_str::<Shared<String>>("\"x\"").unwrap(), a);
        assert_eq!(format!("{a:?}"), "\"x\"");
    }
}
