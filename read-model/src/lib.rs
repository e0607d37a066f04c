//! The read-model contract: the tables the projector writes and the query side and the worker
//! read (names, DDL, shape version), typed row readers, the projection's checkpoint, the
//! visibility predicate the domain's rule is proven against, and the Min-Position wait.
//!
//! Architecture invariant: no other crate spells a read-model table or column in SQL; they go
//! through this crate's constants and readers.

pub mod ai_requests;
pub mod ai_usage;
pub mod checkpoint;
pub mod feature_lists;
pub mod fresh;
pub mod records;
pub mod rows;
pub mod tables;
pub mod visibility;

pub use checkpoint::position;
pub use feature_lists::FeatureLists;
pub use fresh::{Announced, Checkpoints, WaitError};
pub use rows::ReadError;
pub use tables::{LIVE, NEXT, PROJECTION, SHAPE_VERSION, ensure};
pub use visibility::{Reader, Visibility};
