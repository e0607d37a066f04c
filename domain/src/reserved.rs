//! The one list of words Backforge refuses as entity, field, table and enum-value names, and why.
//!
//! A name typed by a user ends up in generated source and SQL. Each word below is listed with the
//! reason it would break that output, and the reason decides where the word is refused:
//!
//! | origin | entity name | field name (column) | plural (table) | enum value |
//! |---|---|---|---|---|
//! | [`Origin::Sql`] | allowed | refused | refused | allowed |
//! | [`Origin::PythonKeyword`] | refused | refused | allowed | refused |
//! | [`Origin::PythonName`], [`Origin::Pydantic`], [`Origin::SqlAlchemy`] | refused | refused | allowed | allowed |
//! | [`Origin::Implicit`] | allowed | refused | allowed | allowed |
//!
//! Why SQL words do not apply to entity names: `docs/api.md`'s own example schema is the entity `order`,
//! an SQL reserved word, and it must validate. That is sound, because an entity name never becomes
//! an SQL identifier: the table is named by the *plural* (`orders`), and the entity name only
//! becomes a Python class (`Order`), module and variable names. Columns are named by fields and
//! tables by plurals, so those are where SQL words are refused.
//!
//! Why Python words do not apply to plurals: a plural names a table and a URL path segment, never a
//! Python identifier on its own (the generator derives function names such as `list_orders`).
//!
//! Contract for generators: every helper name the generated code binds itself (imports, locals,
//! parameters) must start with `_` or an upper-case letter, or be listed here. User names match
//! `^[a-z][a-z0-9_]*$`, so they can never collide with such names.

/// Why a word is reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Reserved in PostgreSQL or SQLite: it cannot be an unquoted column or table name.
    Sql,
    /// A hard keyword of Python 3: a syntax error as an identifier.
    PythonKeyword,
    /// A builtin the generated code uses unqualified (type annotations, `self`, `cls`).
    PythonName,
    /// An attribute of Pydantic's `BaseModel` (the whole `model_` prefix is Pydantic's too).
    Pydantic,
    /// An attribute of SQLAlchemy's declarative base (or Flask-SQLAlchemy's `query`).
    SqlAlchemy,
    /// A column every entity already has.
    Implicit,
}

impl Origin {
    /// Words for messages: "`select` is a reserved word of SQL".
    pub fn describe(self) -> &'static str {
        match self {
            Origin::Sql => "a reserved word of SQL",
            Origin::PythonKeyword => "a Python keyword",
            Origin::PythonName => "a Python builtin the generated code uses",
            Origin::Pydantic => "reserved by Pydantic",
            Origin::SqlAlchemy => "reserved by SQLAlchemy",
            Origin::Implicit => "an implicit field of every entity",
        }
    }

    fn applies_to(self, usage: NameUse) -> bool {
        use NameUse::*;
        match self {
            Origin::Sql => matches!(usage, Field | Table),
            Origin::PythonKeyword => matches!(usage, Entity | Field | EnumValue),
            Origin::PythonName | Origin::Pydantic | Origin::SqlAlchemy => {
                matches!(usage, Entity | Field)
            }
            Origin::Implicit => matches!(usage, Field),
        }
    }
}

/// Where a user-chosen name is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameUse {
    /// An entity name: a Python class, module and variable name.
    Entity,
    /// A field name: a column, a model attribute, a query parameter and a keyword argument.
    Field,
    /// A plural: a table name and a URL path segment.
    Table,
    /// An enum value: may become an enum member name in generated code.
    EnumValue,
}

/// Every field has these columns already; user fields must not take their names.
pub const IMPLICIT_FIELDS: [&str; 3] = ["id", "created_at", "updated_at"];

/// Pydantic v2 reserves the whole namespace of attributes starting with this prefix.
pub const PYDANTIC_PREFIX: &str = "model_";

/// The reserved words. Matching is exact: user names are lower-case, so only lower-case words can
/// ever match, except for enum values (see [`NameUse::EnumValue`]).
const WORDS: &[(&str, Origin)] = &[
    // PostgreSQL's reserved key words (Appendix C: "reserved" and "reserved (can be function or
    // type)") and SQLite's key words that cannot fall back to an identifier. Non-reserved key words
    // (`key`, `action`, `name`, `type`, `first`, `data` ...) are valid unquoted identifiers in both
    // engines; refusing them would reject ordinary schemas for nothing. `limit` and `offset` are
    // also the pagination parameters of the generated list endpoints, so they must stay reserved.
    ("add", Origin::Sql),
    ("all", Origin::Sql),
    ("alter", Origin::Sql),
    ("analyse", Origin::Sql),
    ("analyze", Origin::Sql),
    ("and", Origin::Sql),
    ("any", Origin::Sql),
    ("array", Origin::Sql),
    ("as", Origin::Sql),
    ("asc", Origin::Sql),
    ("asymmetric", Origin::Sql),
    ("authorization", Origin::Sql),
    ("autoincrement", Origin::Sql),
    ("between", Origin::Sql),
    ("binary", Origin::Sql),
    ("both", Origin::Sql),
    ("case", Origin::Sql),
    ("cast", Origin::Sql),
    ("check", Origin::Sql),
    ("collate", Origin::Sql),
    ("collation", Origin::Sql),
    ("column", Origin::Sql),
    ("commit", Origin::Sql),
    ("concurrently", Origin::Sql),
    ("constraint", Origin::Sql),
    ("create", Origin::Sql),
    ("cross", Origin::Sql),
    ("current_catalog", Origin::Sql),
    ("current_date", Origin::Sql),
    ("current_role", Origin::Sql),
    ("current_schema", Origin::Sql),
    ("current_time", Origin::Sql),
    ("current_timestamp", Origin::Sql),
    ("current_user", Origin::Sql),
    ("default", Origin::Sql),
    ("deferrable", Origin::Sql),
    ("delete", Origin::Sql),
    ("desc", Origin::Sql),
    ("distinct", Origin::Sql),
    ("do", Origin::Sql),
    ("drop", Origin::Sql),
    ("else", Origin::Sql),
    ("end", Origin::Sql),
    ("escape", Origin::Sql),
    ("except", Origin::Sql),
    ("exists", Origin::Sql),
    ("false", Origin::Sql),
    ("fetch", Origin::Sql),
    ("for", Origin::Sql),
    ("foreign", Origin::Sql),
    ("freeze", Origin::Sql),
    ("from", Origin::Sql),
    ("full", Origin::Sql),
    ("grant", Origin::Sql),
    ("group", Origin::Sql),
    ("having", Origin::Sql),
    ("ilike", Origin::Sql),
    ("in", Origin::Sql),
    ("index", Origin::Sql),
    ("initially", Origin::Sql),
    ("inner", Origin::Sql),
    ("insert", Origin::Sql),
    ("intersect", Origin::Sql),
    ("into", Origin::Sql),
    ("is", Origin::Sql),
    ("isnull", Origin::Sql),
    ("join", Origin::Sql),
    ("lateral", Origin::Sql),
    ("leading", Origin::Sql),
    ("left", Origin::Sql),
    ("like", Origin::Sql),
    ("limit", Origin::Sql),
    ("localtime", Origin::Sql),
    ("localtimestamp", Origin::Sql),
    ("natural", Origin::Sql),
    ("not", Origin::Sql),
    ("nothing", Origin::Sql),
    ("notnull", Origin::Sql),
    ("null", Origin::Sql),
    ("offset", Origin::Sql),
    ("on", Origin::Sql),
    ("only", Origin::Sql),
    ("or", Origin::Sql),
    ("order", Origin::Sql),
    ("outer", Origin::Sql),
    ("overlaps", Origin::Sql),
    ("placing", Origin::Sql),
    ("primary", Origin::Sql),
    ("references", Origin::Sql),
    ("returning", Origin::Sql),
    ("right", Origin::Sql),
    ("select", Origin::Sql),
    ("session_user", Origin::Sql),
    ("set", Origin::Sql),
    ("similar", Origin::Sql),
    ("some", Origin::Sql),
    ("symmetric", Origin::Sql),
    ("system_user", Origin::Sql),
    ("table", Origin::Sql),
    ("tablesample", Origin::Sql),
    ("then", Origin::Sql),
    ("to", Origin::Sql),
    ("trailing", Origin::Sql),
    ("transaction", Origin::Sql),
    ("true", Origin::Sql),
    ("union", Origin::Sql),
    ("unique", Origin::Sql),
    ("update", Origin::Sql),
    ("user", Origin::Sql),
    ("using", Origin::Sql),
    ("values", Origin::Sql),
    ("variadic", Origin::Sql),
    ("verbose", Origin::Sql),
    ("when", Origin::Sql),
    ("where", Origin::Sql),
    ("window", Origin::Sql),
    ("with", Origin::Sql),
    // Python 3 hard keywords. `True`, `False` and `None` are keywords too; they are listed for enum
    // values, the only names that may hold capitals. Soft keywords (`match`, `case`, `type`, `_`)
    // are valid identifiers and stay allowed: `type` in particular is one of the most common field
    // names, and a class attribute named `type` shadows the builtin only inside that class body,
    // where generated code never calls it.
    ("False", Origin::PythonKeyword),
    ("None", Origin::PythonKeyword),
    ("True", Origin::PythonKeyword),
    ("and", Origin::PythonKeyword),
    ("as", Origin::PythonKeyword),
    ("assert", Origin::PythonKeyword),
    ("async", Origin::PythonKeyword),
    ("await", Origin::PythonKeyword),
    ("break", Origin::PythonKeyword),
    ("class", Origin::PythonKeyword),
    ("continue", Origin::PythonKeyword),
    ("def", Origin::PythonKeyword),
    ("del", Origin::PythonKeyword),
    ("elif", Origin::PythonKeyword),
    ("else", Origin::PythonKeyword),
    ("except", Origin::PythonKeyword),
    ("finally", Origin::PythonKeyword),
    ("for", Origin::PythonKeyword),
    ("from", Origin::PythonKeyword),
    ("global", Origin::PythonKeyword),
    ("if", Origin::PythonKeyword),
    ("import", Origin::PythonKeyword),
    ("in", Origin::PythonKeyword),
    ("is", Origin::PythonKeyword),
    ("lambda", Origin::PythonKeyword),
    ("nonlocal", Origin::PythonKeyword),
    ("not", Origin::PythonKeyword),
    ("or", Origin::PythonKeyword),
    ("pass", Origin::PythonKeyword),
    ("raise", Origin::PythonKeyword),
    ("return", Origin::PythonKeyword),
    ("try", Origin::PythonKeyword),
    ("while", Origin::PythonKeyword),
    ("with", Origin::PythonKeyword),
    ("yield", Origin::PythonKeyword),
    // Python's `Enum` refuses `mro` as a member name; it is no keyword, but grouping it here keeps
    // it out of enum values (and, harmlessly, out of entity and field names).
    ("mro", Origin::PythonKeyword),
    // Builtins that generated models use unqualified in annotations. A model field is a class
    // attribute: `str: str = ...` rebinds `str` for every later annotation in the same class body,
    // and Pydantic then resolves those annotations to the field's default. Other builtins (`max`,
    // `format`, `hash`, ...) are never referenced from a class body and stay allowed. `date` and
    // `datetime` are not listed, as refusing a field called `date` would surprise every user: the
    // generator must import those types under aliases (see the contract for generators above).
    ("bool", Origin::PythonName),
    ("bytes", Origin::PythonName),
    ("dict", Origin::PythonName),
    ("float", Origin::PythonName),
    ("int", Origin::PythonName),
    ("list", Origin::PythonName),
    ("object", Origin::PythonName),
    ("set", Origin::PythonName),
    ("str", Origin::PythonName),
    ("tuple", Origin::PythonName),
    // Conventional first parameters of methods; a field of that name becomes a keyword argument.
    ("cls", Origin::PythonName),
    ("self", Origin::PythonName),
    // Pydantic: `BaseModel` methods kept from v1 (shadowing them breaks serialisation and
    // validation); the `model_` prefix is checked separately.
    ("construct", Origin::Pydantic),
    ("copy", Origin::Pydantic),
    ("dict", Origin::Pydantic),
    ("fields", Origin::Pydantic),
    ("from_orm", Origin::Pydantic),
    ("json", Origin::Pydantic),
    ("parse_file", Origin::Pydantic),
    ("parse_obj", Origin::Pydantic),
    ("parse_raw", Origin::Pydantic),
    ("schema", Origin::Pydantic),
    ("schema_json", Origin::Pydantic),
    ("update_forward_refs", Origin::Pydantic),
    ("validate", Origin::Pydantic),
    // SQLAlchemy declarative classes: `metadata` and `registry` are attributes of the base,
    // `type_annotation_map` configures it, and Flask-SQLAlchemy adds `query`.
    ("metadata", Origin::SqlAlchemy),
    ("query", Origin::SqlAlchemy),
    ("registry", Origin::SqlAlchemy),
    ("type_annotation_map", Origin::SqlAlchemy),
    ("id", Origin::Implicit),
    ("created_at", Origin::Implicit),
    ("updated_at", Origin::Implicit),
    // The owner column every entity of a generated app with an auth feature has.
    ("owner_id", Origin::Implicit),
];

/// Why `name` may not be used as `usage`, or `None` when it may.
pub fn reserved(name: &str, usage: NameUse) -> Option<Origin> {
    if matches!(usage, NameUse::Entity | NameUse::Field) && name.starts_with(PYDANTIC_PREFIX) {
        return Some(Origin::Pydantic);
    }
    WORDS
        .iter()
        .find(|(word, origin)| *word == name && origin.applies_to(usage))
        .map(|(_, origin)| *origin)
}

/// Every listed word with its origin, for documentation and for generators that want to check
/// their own names.
pub fn words() -> impl Iterator<Item = (&'static str, Origin)> {
    WORDS.iter().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_words_are_refused_for_fields_and_tables_but_not_entities() {
        assert_eq!(reserved("order", NameUse::Entity), None);
        assert_eq!(reserved("user", NameUse::Entity), None);
        assert_eq!(reserved("order", NameUse::Field), Some(Origin::Sql));
        assert_eq!(reserved("select", NameUse::Table), Some(Origin::Sql));
        assert_eq!(reserved("orders", NameUse::Table), None);
    }

    #[test]
    fn python_words_are_refused_for_entities_and_fields_but_not_tables() {
        assert_eq!(
            reserved("class", NameUse::Entity),
            Some(Origin::PythonKeyword)
        );
        assert_eq!(
            reserved("lambda", NameUse::Field),
            Some(Origin::PythonKeyword)
        );
        assert_eq!(reserved("lambda", NameUse::Table), None);
        assert_eq!(reserved("str", NameUse::Field), Some(Origin::PythonName));
        assert_eq!(
            reserved("metadata", NameUse::Entity),
            Some(Origin::SqlAlchemy)
        );
        assert_eq!(reserved("json", NameUse::Field), Some(Origin::Pydantic));
    }

    #[test]
    fn the_pydantic_prefix_is_refused_for_entities_and_fields() {
        assert_eq!(
            reserved("model_name", NameUse::Field),
            Some(Origin::Pydantic)
        );
        assert_eq!(reserved("model_x", NameUse::Entity), Some(Origin::Pydantic));
        assert_eq!(reserved("model", NameUse::Field), None);
        assert_eq!(reserved("model_things", NameUse::Table), None);
    }

    #[test]
    fn implicit_columns_are_reserved_for_fields_only() {
        for name in IMPLICIT_FIELDS {
            assert_eq!(reserved(name, NameUse::Field), Some(Origin::Implicit));
            assert_eq!(reserved(name, NameUse::Entity), None);
        }
    }

    #[test]
    fn enum_values_only_avoid_python_keywords() {
        assert_eq!(
            reserved("None", NameUse::EnumValue),
            Some(Origin::PythonKeyword)
        );
        assert_eq!(
            reserved("class", NameUse::EnumValue),
            Some(Origin::PythonKeyword)
        );
        assert_eq!(
            reserved("mro", NameUse::EnumValue),
            Some(Origin::PythonKeyword)
        );
        assert_eq!(reserved("select", NameUse::EnumValue), None);
        assert_eq!(reserved("model_a", NameUse::EnumValue), None);
    }

    #[test]
    fn common_field_names_stay_allowed() {
        for name in [
            "type", "name", "key", "action", "data", "status", "date", "first", "max",
        ] {
            assert_eq!(reserved(name, NameUse::Field), None, "{name}");
        }
    }

    #[test]
    fn the_list_has_no_word_twice_for_the_same_origin() {
        let mut seen = std::collections::HashSet::new();
        for (word, origin) in words() {
            assert!(
                seen.insert((word, origin)),
                "{word} listed twice as {origin:?}"
            );
        }
    }
}
