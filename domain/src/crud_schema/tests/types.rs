//! Each field type with its options, defaults, and composite unique constraints.

use super::*;

// --- string and text ---

#[test]
fn a_string_defaults_to_255_characters() {
    let field = field_ok(json!({"name": "a", "type": "string"}));
    assert_eq!(
        field.kind,
        FieldKind::String {
            min_length: None,
            max_length: 255,
            pattern: None
        }
    );
}

#[test]
fn a_string_max_length_is_from_1_to_10000() {
    assert!(matches!(
        field_ok(json!({"name": "a", "type": "string", "max_length": 10000})).kind,
        FieldKind::String {
            max_length: 10000,
            ..
        }
    ));
    field_problem(
        json!({"name": "a", "type": "string", "max_length": 10001}),
        "max_length",
        "from 1 to 10000",
    );
    field_problem(
        json!({"name": "a", "type": "string", "max_length": 0}),
        "max_length",
        "from 1 to 10000",
    );
    field_problem(
        json!({"name": "a", "type": "string", "max_length": -3}),
        "max_length",
        "whole number",
    );
    field_problem(
        json!({"name": "a", "type": "string", "max_length": 12.5}),
        "max_length",
        "whole number",
    );
    field_problem(
        json!({"name": "a", "type": "string", "max_length": "120"}),
        "max_length",
        "whole number",
    );
}

#[test]
fn a_min_length_above_the_max_length_is_rejected() {
    field_problem(
        json!({"name": "a", "type": "string", "min_length": 10, "max_length": 5}),
        "min_length",
        "must not exceed max_length (5)",
    );
    // Against the default maximum too.
    field_problem(
        json!({"name": "a", "type": "string", "min_length": 300}),
        "min_length",
        "max_length (255)",
    );
    field_ok(json!({"name": "a", "type": "string", "min_length": 5, "max_length": 5}));
}

#[test]
fn a_text_max_length_is_optional_and_positive() {
    assert_eq!(
        field_ok(json!({"name": "a", "type": "text"})).kind,
        FieldKind::Text { max_length: None }
    );
    field_problem(
        json!({"name": "a", "type": "text", "max_length": 0}),
        "max_length",
        "whole number",
    );
}

// --- patterns ---

#[test]
fn samplable_patterns_are_accepted() {
    for pattern in [
        "^[A-Z]{3}-[0-9]{4}$",
        "abc",
        "^(foo|bar)+baz?$",
        "[a-z]*x+",
        "\\d{2,}\\w\\s",
        "(?i)hello",
        "\\Aabc\\z",
        ".{1,5}",
    ] {
        assert!(check_pattern(pattern).is_ok(), "{pattern}");
    }
}

#[test]
fn a_pattern_that_does_not_compile_is_rejected_with_the_reason() {
    field_problem(
        json!({"name": "a", "type": "string", "pattern": "[a-"}),
        "pattern",
        "is not a valid regular expression: unclosed character class",
    );
}

#[test]
fn look_around_and_backreferences_are_rejected() {
    field_problem(
        json!({"name": "a", "type": "string", "pattern": "(?=a)b"}),
        "pattern",
        "look-around",
    );
    field_problem(
        json!({"name": "a", "type": "string", "pattern": "(a)\\1"}),
        "pattern",
        "backreferences",
    );
}

#[test]
fn word_boundaries_are_rejected() {
    for pattern in ["\\bword\\b", "a\\Bb", "\\<a\\>"] {
        field_problem(
            json!({"name": "a", "type": "string", "pattern": pattern}),
            "pattern",
            "word boundaries",
        );
    }
}

#[test]
fn multi_line_anchors_are_rejected() {
    field_problem(
        json!({"name": "a", "type": "string", "pattern": "(?m)^a$"}),
        "pattern",
        "multi-line anchors",
    );
}

#[test]
fn a_class_that_matches_nothing_is_rejected() {
    field_problem(
        json!({"name": "a", "type": "string", "pattern": "a[^\\x00-\\x{10FFFF}]"}),
        "pattern",
        "matches nothing",
    );
}

#[test]
fn patterns_too_costly_to_match_or_sample_are_rejected() {
    // Issue 10 (H2): a pattern that compiles large, one that repeats nothing a billion
    // times, and one nested deeper than 32 groups.
    field_problem(
        json!({"name": "a", "type": "string", "pattern": "^\\w{100}$"}),
        "pattern",
        "is too costly: it compiles to more than 1024 KiB",
    );
    field_problem(
        json!({"name": "a", "type": "string", "pattern": "(?:(?:(?:a?){1000}){1000}){1000}x"}),
        "pattern",
        "is too costly",
    );
    // The expansion bound is the sampler's own guard (the compiled size catches this first).
    let bomb = regex_syntax::parse("(?:(?:(?:a?){1000}){1000}){1000}x").unwrap();
    assert!(expansion(&bomb) > PATTERN_EXPANSION_MAX);
    let nested = format!("{}a{}", "(".repeat(40), ")".repeat(40));
    field_problem(
        json!({"name": "a", "type": "string", "pattern": nested}),
        "pattern",
        "nest",
    );
    // Counted nesting that stays small is fine: ten thousand `a`s.
    assert!(check_pattern("^(?:(?:(?:a{10}){10}){10}){10}$").is_ok());
    assert!(check_pattern("^[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}$").is_ok());
}

#[test]
fn a_pattern_may_have_500_characters_but_not_501() {
    assert!(check_pattern(&"a".repeat(500)).is_ok());
    field_problem(
        json!({"name": "a", "type": "string", "pattern": "a".repeat(501)}),
        "pattern",
        "at most 500 characters",
    );
}

// --- numbers ---

#[test]
fn integer_bounds_are_64_bit_integers_with_min_not_above_max() {
    let field = field_ok(json!({"name": "a", "type": "integer", "min": i64::MIN, "max": i64::MAX}));
    assert_eq!(
        field.kind,
        FieldKind::Integer {
            min: Some(i64::MIN),
            max: Some(i64::MAX)
        }
    );
    field_problem(
        json!({"name": "a", "type": "integer", "min": 1.5}),
        "min",
        "64-bit integer",
    );
    field_problem(
        json!({"name": "a", "type": "integer", "max": u64::MAX}),
        "max",
        "64-bit integer",
    );
    field_problem(
        json!({"name": "a", "type": "integer", "min": 2, "max": 1}),
        "min",
        "must not exceed max (1)",
    );
    field_ok(json!({"name": "a", "type": "integer", "min": 1, "max": 1}));
}

#[test]
fn a_decimal_defaults_to_precision_18_and_scale_2() {
    assert_eq!(
        field_ok(json!({"name": "a", "type": "decimal"})).kind,
        FieldKind::Decimal {
            precision: 18,
            scale: 2,
            min: None,
            max: None
        }
    );
}

#[test]
fn the_default_scale_shrinks_to_fit_a_precision_of_one() {
    assert!(matches!(
        field_ok(json!({"name": "a", "type": "decimal", "precision": 1})).kind,
        FieldKind::Decimal {
            precision: 1,
            scale: 1,
            ..
        }
    ));
}

#[test]
fn a_decimal_precision_is_from_1_to_38() {
    field_ok(json!({"name": "a", "type": "decimal", "precision": 38}));
    field_problem(
        json!({"name": "a", "type": "decimal", "precision": 0}),
        "precision",
        "from 1 to 38",
    );
    field_problem(
        json!({"name": "a", "type": "decimal", "precision": 39}),
        "precision",
        "from 1 to 38",
    );
}

#[test]
fn a_decimal_scale_is_from_0_to_the_precision() {
    field_ok(json!({"name": "a", "type": "decimal", "precision": 5, "scale": 0}));
    field_ok(json!({"name": "a", "type": "decimal", "precision": 5, "scale": 5}));
    field_problem(
        json!({"name": "a", "type": "decimal", "precision": 5, "scale": 6}),
        "scale",
        "must not exceed precision (5)",
    );
    field_problem(
        json!({"name": "a", "type": "decimal", "scale": -1}),
        "scale",
        "whole number",
    );
}

#[test]
fn decimal_bounds_must_fit_the_column_and_be_ordered() {
    field_problem(
        json!({"name": "a", "type": "decimal", "precision": 4, "scale": 2, "max": 100}),
        "max",
        "at most 2 digits before the decimal point",
    );
    field_problem(
        json!({"name": "a", "type": "decimal", "scale": 2, "min": 0.125}),
        "min",
        "at most 2 decimal places",
    );
    field_problem(
        json!({"name": "a", "type": "decimal", "min": 10, "max": 9.99}),
        "min",
        "must not exceed max (9.99)",
    );
    field_problem(
        json!({"name": "a", "type": "decimal", "min": "0"}),
        "min",
        "must be a number",
    );
    field_ok(
        json!({"name": "a", "type": "decimal", "precision": 4, "scale": 2, "min": -99.99, "max": 99.99}),
    );
}

#[test]
fn float_bounds_are_numbers_with_min_not_above_max() {
    field_ok(json!({"name": "a", "type": "float", "min": -1e300, "max": 2.5}));
    field_problem(
        json!({"name": "a", "type": "float", "min": "0"}),
        "min",
        "must be a number",
    );
    field_problem(
        json!({"name": "a", "type": "float", "min": 1.5, "max": 1.25}),
        "min",
        "must not exceed max",
    );
}

#[test]
fn decimal_literals_compare_exactly() {
    let d = |s: &str| DecimalLit::parse(s).unwrap();
    assert!(d("0.5") < d("0.51"));
    assert!(d("0.6") > d("0.51"));
    assert!(d("-1") < d("0"));
    assert!(d("-2") < d("-1.5"));
    assert!(d("10") > d("9.99"));
    assert_eq!(d("1e2"), d("100"));
    assert_eq!(d("1.50"), d("1.5"));
    assert_eq!(d("-0"), d("0"));
    assert_eq!(d("1e-7").frac, "0000001");
    assert!(DecimalLit::parse("abc").is_none());
}

// --- enums and references ---

#[test]
fn an_enum_needs_between_1_and_100_values() {
    field_problem(
        json!({"name": "a", "type": "enum"}),
        "values",
        "is required",
    );
    field_problem(
        json!({"name": "a", "type": "enum", "values": []}),
        "values",
        "from 1 to 100 values, not 0",
    );
    let many: Vec<String> = (0..101).map(|i| format!("v{i}")).collect();
    field_problem(
        json!({"name": "a", "type": "enum", "values": many}),
        "values",
        "not 101",
    );
    let hundred: Vec<String> = (0..100).map(|i| format!("v{i}")).collect();
    field_ok(json!({"name": "a", "type": "enum", "values": hundred}));
    field_problem(
        json!({"name": "a", "type": "enum", "values": "a,b"}),
        "values",
        "array of strings",
    );
}

#[test]
fn enum_values_are_distinct_identifiers() {
    field_problem(
        json!({"name": "a", "type": "enum", "values": ["new", "New"]}),
        "values/1",
        "repeats value 0",
    );
    field_problem(
        json!({"name": "a", "type": "enum", "values": ["new", "in progress"]}),
        "values/1",
        "must be an identifier",
    );
    field_problem(
        json!({"name": "a", "type": "enum", "values": ["ok", 3]}),
        "values/1",
        "must be a string",
    );
    field_problem(
        json!({"name": "a", "type": "enum", "values": ["None", "x"]}),
        "values/0",
        "Python keyword",
    );
    assert!(matches!(
        field_ok(json!({"name": "a", "type": "enum", "values": ["USD", "eur", "select"]})).kind,
        FieldKind::Enum { .. }
    ));
}

#[test]
fn a_reference_names_an_entity() {
    field_problem(
        json!({"name": "a_id", "type": "reference"}),
        "references",
        "is required",
    );
    field_problem(
        json!({"name": "a_id", "type": "reference", "references": "Customer"}),
        "references",
        "must name an entity",
    );
    field_problem(
        json!({"name": "a_id", "type": "reference", "references": 7}),
        "references",
        "must be a string",
    );
}

// --- defaults ---

#[test]
fn a_required_field_may_have_a_default() {
    let field = field_ok(json!({"name": "a", "type": "integer", "required": true, "default": 3}));
    assert!(field.required);
    assert_eq!(field.default.as_deref(), Some(&json!(3)));
}

#[test]
fn a_null_default_is_rejected() {
    field_problem(
        json!({"name": "a", "type": "json", "default": null}),
        "default",
        "must not be null",
    );
}

#[test]
fn a_string_default_must_satisfy_lengths_and_pattern() {
    field_problem(
        json!({"name": "a", "type": "string", "max_length": 3, "default": "abcd"}),
        "default",
        "at most 3 characters",
    );
    field_problem(
        json!({"name": "a", "type": "string", "min_length": 2, "default": "a"}),
        "default",
        "at least 2 characters",
    );
    field_problem(
        json!({"name": "a", "type": "string", "pattern": "^[A-Z]{3}$", "default": "abc"}),
        "default",
        "does not match the pattern",
    );
    field_problem(
        json!({"name": "a", "type": "string", "default": 5}),
        "default",
        "must be a string",
    );
    field_ok(json!({"name": "a", "type": "string", "max_length": 3, "default": "ééé"}));
}

#[test]
fn a_text_default_must_fit_its_max_length() {
    field_problem(
        json!({"name": "a", "type": "text", "max_length": 2, "default": "abc"}),
        "default",
        "at most 2 characters",
    );
}

#[test]
fn a_number_default_must_have_the_type_and_range() {
    field_problem(
        json!({"name": "a", "type": "integer", "default": 1.5}),
        "default",
        "64-bit integer",
    );
    field_problem(
        json!({"name": "a", "type": "integer", "min": 0, "default": -1}),
        "default",
        "at least 0",
    );
    field_problem(
        json!({"name": "a", "type": "integer", "max": 10, "default": 11}),
        "default",
        "at most 10",
    );
    field_problem(
        json!({"name": "a", "type": "float", "max": 1, "default": 1.5}),
        "default",
        "at most 1",
    );
    field_problem(
        json!({"name": "a", "type": "float", "default": "1"}),
        "default",
        "must be a number",
    );
}

#[test]
fn a_decimal_default_must_fit_precision_scale_and_range() {
    field_problem(
        json!({"name": "a", "type": "decimal", "scale": 2, "default": 1.005}),
        "default",
        "at most 2 decimal places",
    );
    field_problem(
        json!({"name": "a", "type": "decimal", "precision": 3, "scale": 2, "default": 10}),
        "default",
        "at most 1 digits before",
    );
    field_problem(
        json!({"name": "a", "type": "decimal", "min": 0, "default": -0.5}),
        "default",
        "at least 0",
    );
    field_problem(
        json!({"name": "a", "type": "decimal", "max": 5, "default": 5.01}),
        "default",
        "at most 5",
    );
    field_ok(json!({"name": "a", "type": "decimal", "min": 0, "max": 5, "default": 5}));
}

#[test]
fn boolean_date_datetime_and_uuid_defaults_must_parse() {
    field_problem(
        json!({"name": "a", "type": "boolean", "default": "true"}),
        "default",
        "true or false",
    );
    field_problem(
        json!({"name": "a", "type": "date", "default": "2025-02-30"}),
        "default",
        "YYYY-MM-DD",
    );
    field_problem(
        json!({"name": "a", "type": "date", "default": "2025-2-3"}),
        "default",
        "YYYY-MM-DD",
    );
    field_problem(
        json!({"name": "a", "type": "date", "default": "2025-01-01T00:00:00Z"}),
        "default",
        "YYYY-MM-DD",
    );
    field_problem(
        json!({"name": "a", "type": "datetime", "default": "2025-01-31 12:00"}),
        "default",
        "RFC 3339",
    );
    field_problem(
        json!({"name": "a", "type": "datetime", "default": "2025-01-31T12:00:00"}),
        "default",
        "RFC 3339",
    );
    field_problem(
        json!({"name": "a", "type": "uuid", "default": "nope"}),
        "default",
        "must be a UUID",
    );
    field_problem(
        json!({"name": "a", "type": "uuid", "default": "123e4567e89b12d3a456426614174000"}),
        "default",
        "must be a UUID",
    );
    field_ok(json!({"name": "a", "type": "datetime", "default": "2025-01-31T12:00:00.5Z"}));
}

#[test]
fn an_enum_default_must_be_one_of_its_values() {
    field_problem(
        json!({"name": "a", "type": "enum", "values": ["new", "paid"], "default": "old"}),
        "default",
        "must be one of the values: new, paid",
    );
}

#[test]
fn a_reference_takes_no_default() {
    field_problem(
        json!({"name": "a_id", "type": "reference", "references": "thing", "default": "123e4567-e89b-12d3-a456-426614174000"}),
        "default",
        "reference fields take no default",
    );
}

#[test]
fn a_json_default_may_be_any_value() {
    for default in [json!({}), json!([1]), json!("x"), json!(false), json!(0)] {
        assert_eq!(
            field_ok(json!({"name": "a", "type": "json", "default": default}))
                .default
                .as_deref(),
            Some(&default)
        );
    }
}

#[test]
fn the_default_is_not_judged_while_the_options_are_wrong() {
    // One problem (the option), not a second one about the default.
    field_problem(
        json!({"name": "a", "type": "string", "max_length": 0, "default": "abc"}),
        "max_length",
        "from 1 to 10000",
    );
}

#[test]
fn a_json_field_cannot_be_unique() {
    field_problem(
        json!({"name": "a", "type": "json", "unique": true}),
        "unique",
        "json fields cannot be unique",
    );
}

// --- composite unique constraints ---

fn two_fields_and(unique: Value) -> Value {
    json!({"entity": "thing", "fields": [
            {"name": "a", "type": "text"}, {"name": "b", "type": "integer"}, {"name": "c", "type": "json"}
        ], "unique": unique})
}

#[test]
fn composite_unique_constraints_are_kept_in_order() {
    let schema = ok(two_fields_and(json!([["b", "a"]])));
    assert_eq!(schema.unique, vec![vec!["b".to_owned(), "a".to_owned()]]);
    assert!(ok(two_fields_and(json!([]))).unique.is_empty());
}

#[test]
fn a_unique_constraint_needs_at_least_one_field() {
    one_problem(
        two_fields_and(json!([[]])),
        "/schema_definition/unique/0",
        "at least one field",
    );
}

#[test]
fn a_one_field_unique_constraint_becomes_that_fields_own_unique() {
    let schema = ok(two_fields_and(json!([["b"], ["a", "b"]])));
    assert!(schema.field("b").unwrap().unique);
    assert!(!schema.field("a").unwrap().unique);
    assert_eq!(schema.unique, vec![vec!["a".to_owned(), "b".to_owned()]]);
    // The normalised form parses to itself.
    assert_eq!(ok(serde_json::to_value(&schema).unwrap()), schema);
    // The rules of a constraint still hold for one field.
    one_problem(
        two_fields_and(json!([["c"]])),
        "/schema_definition/unique/0/0",
        "json fields cannot be part of a unique constraint",
    );
    one_problem(
        two_fields_and(json!([["zz"]])),
        "/schema_definition/unique/0/0",
        "`zz` is not a field of this entity",
    );
    one_problem(
        two_fields_and(json!([["a"], ["a"]])),
        "/schema_definition/unique/1",
        "repeats the constraint at /unique/0",
    );
}

#[test]
fn a_composite_unique_names_existing_distinct_fields() {
    one_problem(
        two_fields_and(json!([["a", "zz"]])),
        "/schema_definition/unique/0/1",
        "`zz` is not a field of this entity",
    );
    one_problem(
        two_fields_and(json!([["a", "id"]])),
        "/schema_definition/unique/0/1",
        "not a field",
    );
    one_problem(
        two_fields_and(json!([["a", "b", "a"]])),
        "/schema_definition/unique/0/2",
        "listed twice",
    );
    one_problem(
        two_fields_and(json!([["a", 1]])),
        "/schema_definition/unique/0/1",
        "must be a field name",
    );
    one_problem(
        two_fields_and(json!([["a", "c"]])),
        "/schema_definition/unique/0/1",
        "json fields cannot be part",
    );
}

#[test]
fn a_repeated_composite_unique_is_rejected_whatever_its_order() {
    one_problem(
        two_fields_and(json!([["a", "b"], ["b", "a"]])),
        "/schema_definition/unique/1",
        "repeats the constraint at /unique/0",
    );
}

#[test]
fn composite_uniques_must_be_arrays_of_names() {
    one_problem(
        two_fields_and(json!(["a"])),
        "/schema_definition/unique/0",
        "must be an array of field names",
    );
    one_problem(
        two_fields_and(json!({"a": "b"})),
        "/schema_definition/unique",
        "arrays of field names",
    );
}
