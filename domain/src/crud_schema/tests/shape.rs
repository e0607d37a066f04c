//! The schema object, names, plurals, sizes and the field list.

use super::*;

// --- the example of docs/api.md ---

#[test]
fn the_api_example_schema_parses() {
    let raw: Value = serde_json::from_str(API_EXAMPLE).unwrap();
    let schema = ok(raw);
    assert_eq!(schema.entity, "order");
    assert_eq!(schema.plural, "orders");
    assert_eq!(schema.fields.len(), 5);
    assert_eq!(
        schema.unique,
        vec![vec!["customer_id".to_owned(), "title".to_owned()]]
    );
    let refs: Vec<_> = schema
        .references()
        .map(|(i, f, t)| (i, f.name.as_str(), t))
        .collect();
    assert_eq!(refs, vec![(4, "customer_id", "customer")]);
}

#[test]
fn the_api_example_is_normalised_with_every_default_filled_in() {
    let schema = ok(serde_json::from_str(API_EXAMPLE).unwrap());
    let expected = json!({"entity": "order", "plural": "orders", "fields": [
            {"name": "title", "type": "string", "max_length": 120, "required": true, "unique": false},
            {"name": "total", "type": "decimal", "precision": 12, "scale": 2, "min": 0, "required": false, "unique": false},
            {"name": "status", "type": "enum", "values": ["new", "paid"], "required": false, "unique": false, "default": "new"},
            {"name": "code", "type": "string", "max_length": 255, "pattern": "^[A-Z]{3}-[0-9]{4}$", "required": false, "unique": true},
            {"name": "customer_id", "type": "reference", "references": "customer", "required": true, "unique": false}
        ], "unique": [["customer_id", "title"]]});
    // Compared as text so the member order of the API shape is checked too.
    assert_eq!(
        serde_json::to_string(&schema).unwrap(),
        serde_json::to_string(&expected).unwrap()
    );
}

/// A schema using every type and option.
fn every_type() -> Value {
    json!({"entity": "sample", "fields": [
            {"name": "s", "type": "string", "min_length": 2, "max_length": 20, "pattern": "^(ab|cd)+[x-z]?$", "default": "abx"},
            {"name": "t", "type": "text", "max_length": 5000},
            {"name": "t2", "type": "text"},
            {"name": "i", "type": "integer", "min": -5, "max": 5, "default": 0},
            {"name": "d", "type": "decimal", "min": -1.5, "max": 99.99, "default": 12.5},
            {"name": "f", "type": "float", "min": 0, "max": 1.5, "default": 0.25},
            {"name": "b", "type": "boolean", "default": true},
            {"name": "day", "type": "date", "default": "2024-02-29"},
            {"name": "at", "type": "datetime", "default": "2025-01-31T12:00:00+01:00"},
            {"name": "u", "type": "uuid", "default": "123e4567-e89b-12d3-a456-426614174000"},
            {"name": "j", "type": "json", "default": {"a": [1, 2]}},
            {"name": "e", "type": "enum", "values": ["USD", "eur"], "default": "USD"},
            {"name": "parent_id", "type": "reference", "references": "sample"}
        ], "unique": [["s", "i"], ["b", "day", "u"]]})
}

#[test]
fn parsing_the_normalised_output_gives_the_same_schema() {
    for raw in [serde_json::from_str(API_EXAMPLE).unwrap(), every_type()] {
        let schema = ok(raw);
        let again = ok(serde_json::to_value(&schema).unwrap());
        assert_eq!(again, schema);
    }
}

#[test]
fn the_normalised_output_round_trips_through_serde() {
    let schema = ok(every_type());
    let text = serde_json::to_string(&schema).unwrap();
    let back: EntitySchema = serde_json::from_str(&text).unwrap();
    assert_eq!(back, schema);
    assert_eq!(serde_json::to_string(&back).unwrap(), text);
}

#[test]
fn every_type_with_every_option_is_accepted() {
    let schema = ok(every_type());
    let types: Vec<_> = schema.fields.iter().map(|f| f.kind.type_name()).collect();
    assert_eq!(
        types,
        [
            "string",
            "text",
            "text",
            "integer",
            "decimal",
            "float",
            "boolean",
            "date",
            "datetime",
            "uuid",
            "json",
            "enum",
            "reference"
        ]
    );
    assert_eq!(schema.plural, "samples");
}

#[test]
fn the_type_list_names_every_type_in_order() {
    let names: Vec<_> = ALL_TYPES.iter().map(|t| t.name()).collect();
    assert_eq!(names, FIELD_TYPES);
    assert_eq!(FieldType::from_name("decimal"), Some(FieldType::Decimal));
    assert_eq!(FieldType::from_name("Decimal"), None);
}

// --- the schema object ---

#[test]
fn a_schema_that_is_not_an_object_is_rejected() {
    one_problem(json!([]), "/schema_definition", "must be an object");
    one_problem(json!("order"), "/schema_definition", "must be an object");
}

#[test]
fn unknown_top_level_keys_are_rejected_each_at_its_pointer() {
    let raw = json!({"entity": "thing", "fields": [{"name": "a", "type": "text"}], "table": "x", "a/b~c": 1});
    assert_eq!(
        pointers(raw),
        ["/schema_definition/table", "/schema_definition/a~1b~0c"]
    );
}

#[test]
fn the_pointer_prefix_is_the_callers() {
    let raw = json!({"entity": "thing", "fields": [{"name": "a", "type": "text"}, {"name": "Bad", "type": "text"}]});
    let at = Pointer::root()
        .key("features")
        .index(3)
        .key("schema_definition");
    let errors = EntitySchema::parse(&raw, &at, &Limits::default()).unwrap_err();
    assert_eq!(
        errors[0].field,
        "/features/3/schema_definition/fields/1/name"
    );
}

#[test]
fn a_schema_without_entity_or_fields_reports_both() {
    let found = problems(json!({}));
    assert_eq!(
        found,
        [
            (
                "/schema_definition/entity".to_owned(),
                "is required".to_owned()
            ),
            (
                "/schema_definition/fields".to_owned(),
                "is required".to_owned()
            ),
        ]
    );
}

#[test]
fn members_of_the_wrong_json_type_are_rejected() {
    let raw = json!({"entity": 5, "plural": [], "fields": {}, "unique": "a"});
    assert_eq!(
        pointers(raw),
        [
            "/schema_definition/entity",
            "/schema_definition/plural",
            "/schema_definition/fields",
            "/schema_definition/unique"
        ]
    );
}

#[test]
fn every_problem_of_a_schema_is_reported_at_once() {
    let raw = json!({"entity": "Order", "fields": [
            {"name": "id", "type": "string"},
            {"name": "total", "type": "money"},
            {"name": "n", "type": "integer", "min": 5, "max": 1},
            {"name": "n", "type": "boolean", "default": "yes"}
        ], "unique": [["nope", "n"]], "extra": true});
    assert_eq!(
        pointers(raw),
        [
            "/schema_definition/extra",
            "/schema_definition/entity",
            "/schema_definition/fields/0/name",
            "/schema_definition/fields/1/type",
            "/schema_definition/fields/2/min",
            "/schema_definition/fields/3/default",
            "/schema_definition/fields/3/name",
            "/schema_definition/unique/0/0",
        ]
    );
}

// --- names ---

#[test]
fn entity_names_must_be_lowercase_snake_case() {
    for bad in [
        "Order",
        "1order",
        "order-line",
        "_order",
        "ordér",
        "order line",
    ] {
        one_problem(
            json!({"entity": bad, "fields": [{"name": "a", "type": "text"}]}),
            "/schema_definition/entity",
            "lowercase snake_case",
        );
    }
    one_problem(
        json!({"entity": "", "fields": [{"name": "a", "type": "text"}]}),
        "/schema_definition/entity",
        "must not be empty",
    );
}

#[test]
fn names_may_have_63_characters_but_not_64() {
    let name63 = format!("a{}", "b".repeat(62));
    let field = field_ok(json!({"name": name63, "type": "text"}));
    assert_eq!(field.name.len(), 63);
    field_problem(
        json!({"name": format!("{name63}c"), "type": "text"}),
        "name",
        "at most 63 characters",
    );
}

#[test]
fn trailing_and_double_underscores_and_digits_are_allowed() {
    let schema = ok(
        json!({"entity": "line_item_", "plural": "line__items2", "fields": [{"name": "a__b_", "type": "text"}, {"name": "x1", "type": "text"}]}),
    );
    assert_eq!(schema.plural, "line__items2");
}

#[test]
fn an_sql_reserved_word_is_a_valid_entity_name() {
    for entity in ["order", "user", "group", "table"] {
        assert_eq!(
            ok(json!({"entity": entity, "fields": [{"name": "a", "type": "text"}]})).entity,
            entity
        );
    }
}

#[test]
fn python_words_are_rejected_as_entity_names() {
    one_problem(
        json!({"entity": "class", "fields": [{"name": "a", "type": "text"}]}),
        "/schema_definition/entity",
        "`class` is a Python keyword",
    );
    one_problem(
        json!({"entity": "model_thing", "fields": [{"name": "a", "type": "text"}]}),
        "/schema_definition/entity",
        "reserved by Pydantic",
    );
    one_problem(
        json!({"entity": "registry", "fields": [{"name": "a", "type": "text"}]}),
        "/schema_definition/entity",
        "reserved by SQLAlchemy",
    );
}

#[test]
fn sql_reserved_words_are_rejected_as_field_names() {
    field_problem(
        json!({"name": "order", "type": "text"}),
        "name",
        "`order` is a reserved word of SQL",
    );
    field_problem(json!({"name": "select", "type": "text"}), "name", "SQL");
    field_problem(json!({"name": "limit", "type": "integer"}), "name", "SQL");
}

#[test]
fn python_pydantic_and_sqlalchemy_words_are_rejected_as_field_names() {
    field_problem(
        json!({"name": "import", "type": "text"}),
        "name",
        "Python keyword",
    );
    field_problem(
        json!({"name": "str", "type": "text"}),
        "name",
        "Python builtin",
    );
    field_problem(
        json!({"name": "model_config", "type": "text"}),
        "name",
        "Pydantic",
    );
    field_problem(
        json!({"name": "schema", "type": "text"}),
        "name",
        "Pydantic",
    );
    field_problem(
        json!({"name": "fields", "type": "text"}),
        "name",
        "Pydantic",
    );
    field_problem(
        json!({"name": "metadata", "type": "json"}),
        "name",
        "SQLAlchemy",
    );
    field_problem(
        json!({"name": "query", "type": "text"}),
        "name",
        "SQLAlchemy",
    );
}

#[test]
fn the_implicit_fields_are_reserved() {
    for name in ["id", "created_at", "updated_at"] {
        field_problem(
            json!({"name": name, "type": "text"}),
            "name",
            "implicit field",
        );
    }
}

#[test]
fn common_field_names_like_type_and_date_are_allowed() {
    for name in ["type", "date", "name", "key", "status", "description"] {
        assert_eq!(field_ok(json!({"name": name, "type": "text"})).name, name);
    }
}

// --- plurals ---

#[test]
fn the_default_plural_follows_the_api_rules() {
    let cases = [
        ("order", "orders"),
        ("bus", "buses"),
        ("box", "boxes"),
        ("quiz", "quizes"),
        ("match", "matches"),
        ("dish", "dishes"),
        ("category", "categories"),
        ("day", "days"),
        ("key", "keys"),
        ("boy", "boys"),
        ("y", "ys"),
        ("sub_y", "sub_ys"),
    ];
    for (entity, plural) in cases {
        assert_eq!(default_plural(entity), plural, "{entity}");
    }
    assert_eq!(
        ok(json!({"entity": "category", "fields": [{"name": "a", "type": "text"}]})).plural,
        "categories"
    );
}

#[test]
fn an_explicit_plural_is_kept() {
    let schema = ok(
        json!({"entity": "person", "plural": "people", "fields": [{"name": "a", "type": "text"}]}),
    );
    assert_eq!(schema.plural, "people");
}

#[test]
fn an_explicit_plural_follows_the_identifier_rules_and_avoids_sql_words() {
    one_problem(
        json!({"entity": "person", "plural": "People", "fields": [{"name": "a", "type": "text"}]}),
        "/schema_definition/plural",
        "lowercase snake_case",
    );
    one_problem(
        json!({"entity": "person", "plural": "select", "fields": [{"name": "a", "type": "text"}]}),
        "/schema_definition/plural",
        "SQL",
    );
}

#[test]
fn a_plural_may_be_a_python_word_because_it_names_only_a_table() {
    assert_eq!(
        ok(
            json!({"entity": "thing", "plural": "class", "fields": [{"name": "a", "type": "text"}]})
        )
        .plural,
        "class"
    );
}

#[test]
fn a_default_plural_that_is_an_sql_word_asks_for_an_explicit_plural() {
    one_problem(
        json!({"entity": "value", "fields": [{"name": "a", "type": "text"}]}),
        "/schema_definition/plural",
        "the default plural `values` cannot be used",
    );
}

#[test]
fn a_default_plural_longer_than_63_characters_asks_for_an_explicit_plural() {
    let entity = format!("a{}", "b".repeat(61)); // 62 + "s" = 63: fine
    assert_eq!(
        ok(json!({"entity": entity, "fields": [{"name": "a", "type": "text"}]}))
            .plural
            .len(),
        63
    );
    let entity = format!("a{}s", "b".repeat(61)); // 63 + "es" = 65
    one_problem(
        json!({"entity": entity, "fields": [{"name": "a", "type": "text"}]}),
        "/schema_definition/plural",
        "at most 63 characters",
    );
}

// --- sizes every consumer can carry ---

#[test]
fn a_text_field_may_declare_up_to_a_million_characters() {
    let text = |n: u64| json!({"entity": "thing", "fields": [{"name": "body", "type": "text", "max_length": n}]});
    assert!(EntitySchema::parse(&text(1_000_000), &at(), &Limits::default()).is_ok());
    one_problem(
        text(4_294_967_295),
        "/schema_definition/fields/0/max_length",
        "from 1 to 1000000",
    );
}

#[test]
fn a_default_is_at_most_ten_kibibytes_whatever_its_type() {
    let with_default = |default: Value| json!({"entity": "thing", "fields": [{"name": "blob", "type": "json", "default": default}]});
    assert!(
        EntitySchema::parse(
            &with_default(json!("x".repeat(10_000))),
            &at(),
            &Limits::default()
        )
        .is_ok()
    );
    one_problem(
        with_default(json!("x".repeat(10_240))),
        "/schema_definition/fields/0/default",
        "at most 10240 bytes",
    );
    one_problem(
        json!({"entity": "thing", "fields": [{"name": "t", "type": "text", "default": "x".repeat(20_000)}]}),
        "/schema_definition/fields/0/default",
        "at most 10240 bytes",
    );
}

// --- the field list ---

#[test]
fn a_schema_needs_at_least_one_field() {
    one_problem(
        json!({"entity": "thing", "fields": []}),
        "/schema_definition/fields",
        "at least one field",
    );
}

#[test]
fn a_schema_may_hold_as_many_fields_as_the_limit_and_no_more() {
    let limits = Limits {
        fields_per_entity: 3,
        ..Limits::default()
    };
    let fields = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"name": format!("f{i}"), "type": "text"}))
            .collect()
    };
    let three = json!({"entity": "thing", "fields": fields(3)});
    assert!(EntitySchema::parse(&three, &at(), &limits).is_ok());
    let four = json!({"entity": "thing", "fields": fields(4)});
    let errors = EntitySchema::parse(&four, &at(), &limits).unwrap_err();
    assert_eq!(
        errors,
        [FieldError::new(
            "/schema_definition/fields",
            "must hold at most 3 fields, not 4"
        )]
    );
}

#[test]
fn the_default_field_limit_is_one_hundred() {
    let fields: Vec<Value> = (0..101)
        .map(|i| json!({"name": format!("f{i}"), "type": "text"}))
        .collect();
    one_problem(
        json!({"entity": "thing", "fields": fields}),
        "/schema_definition/fields",
        "at most 100 fields",
    );
}

#[test]
fn a_duplicate_field_name_is_reported_at_the_later_field() {
    let raw = json!({"entity": "thing", "fields": [
        {"name": "a", "type": "text"}, {"name": "b", "type": "text"}, {"name": "a", "type": "integer"}
    ]});
    assert_eq!(
        problems(raw),
        [(
            "/schema_definition/fields/2/name".to_owned(),
            "duplicate field name `a`: field 0 has it already".to_owned()
        )]
    );
}

#[test]
fn a_field_that_is_not_an_object_is_rejected() {
    field_problem(json!("title"), "", "must be an object");
}

#[test]
fn a_field_needs_a_name_and_a_type() {
    let found = problems(with_field(json!({})));
    assert_eq!(
        found,
        [
            (
                "/schema_definition/fields/0/name".to_owned(),
                "is required".to_owned()
            ),
            (
                "/schema_definition/fields/0/type".to_owned(),
                "is required".to_owned()
            ),
        ]
    );
}

#[test]
fn an_unknown_type_is_rejected_naming_the_known_ones() {
    field_problem(
        json!({"name": "a", "type": "money"}),
        "type",
        "unknown type `money`; expected one of string, text",
    );
}

#[test]
fn required_and_unique_default_to_false_and_must_be_booleans() {
    let field = field_ok(json!({"name": "a", "type": "text"}));
    assert!(!field.required && !field.unique);
    field_problem(
        json!({"name": "a", "type": "text", "required": "yes"}),
        "required",
        "true or false",
    );
    field_problem(
        json!({"name": "a", "type": "text", "unique": 1}),
        "unique",
        "true or false",
    );
}

#[test]
fn an_option_of_another_type_is_rejected_naming_the_type() {
    field_problem(
        json!({"name": "a", "type": "string", "precision": 5}),
        "precision",
        "`precision` is not an option of string fields",
    );
    field_problem(
        json!({"name": "a", "type": "boolean", "max_length": 5}),
        "max_length",
        "not an option of boolean fields",
    );
    field_problem(
        json!({"name": "a", "type": "text", "min_length": 5}),
        "min_length",
        "not an option of text fields",
    );
}

#[test]
fn an_unknown_field_key_is_rejected() {
    field_problem(
        json!({"name": "a", "type": "string", "nullable": true}),
        "nullable",
        "unknown key `nullable`",
    );
}
