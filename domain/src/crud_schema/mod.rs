//! The `crud` schema definition language: raw JSON in, a normalised [`EntitySchema`] or every problem out.
//!
//! [`EntitySchema::parse`] checks everything a schema can get wrong on its own and reports each
//! problem as a [`FieldError`] whose pointer sits under the prefix the caller passes. Rules that
//! need the rest of the project (reference targets, entity names and plurals unique in the
//! project) belong to the project decider.
//!
//! The output is normalised: defaults are filled in (`plural`, `required`, `unique`, string
//! `max_length`, decimal `precision` and `scale`), so events store what the generator will build,
//! and parsing the serialised output again gives the same schema.

mod model;
mod names;
mod parse;
mod pattern;
mod query;
mod record;
mod unique;
mod values;

#[cfg(test)]
mod tests;

pub use model::{EntitySchema, FIELD_TYPES, FieldDef, FieldKind};
pub use names::{default_plural, name_problem};
pub use pattern::check_pattern;
pub use query::{
    FILTERS_MAX, Filter, FilterOp, IN_VALUES_MAX, Operand, RESERVED_PARAMETERS, RecordQuery,
    SORT_KEYS_MAX, SortKey,
};
pub use record::{RECORD_CASES, RecordValues, RecordWrite, normalize, utc_text};
pub use unique::UniqueConstraint;
pub use values::parse_date;

/// Entity, field and plural names: 1 to 63 characters (PostgreSQL's identifier limit).
pub const NAME_MAX_CHARS: usize = 63;
pub const STRING_MAX_LENGTH_DEFAULT: u32 = 255;
pub const STRING_MAX_LENGTH_LIMIT: u32 = 10_000;
pub const DECIMAL_PRECISION_DEFAULT: u8 = 18;
pub const DECIMAL_PRECISION_MAX: u8 = 38;
pub const DECIMAL_SCALE_DEFAULT: u8 = 2;
pub const ENUM_VALUES_MAX: usize = 100;
/// Longer patterns are refused: the generator has to sample them, and a reader has to review them.
pub const PATTERN_MAX_CHARS: usize = 500;
/// The most heap a pattern's compiled program may take (the `regex` crate's `size_limit`): a bound
/// on the cost of every match, in the generator's sampler and in the generated app.
pub const PATTERN_COMPILED_MAX_BYTES: usize = 1 << 20;
/// How deep groups and repetitions may nest (the `regex` crate's `nest_limit`).
pub const PATTERN_NEST_MAX: u32 = 32;
/// The most HIR nodes one sample of a pattern visits with every repetition at its minimum count
/// (see `expansion`): repetitions of nothing compile small but would still be walked.
pub const PATTERN_EXPANSION_MAX: u64 = 100_000;
