//! Creating, updating and deleting custom functions, and the routes they share with the generated app.

use super::*;
use crate::testing::function_id;

const CODE: &str = "def handler(input):\n    return input\n";

fn new_function(id: u128, name: &str) -> NewFunction {
    NewFunction::new(function_id(id), name, CODE)
}

fn create_fn(function: NewFunction) -> ProjectCommand {
    ProjectCommand::CreateFunction(CreateFunction { function, at: t(4) })
}

fn update_fn(id: u128, changes: FunctionChanges) -> ProjectCommand {
    ProjectCommand::UpdateFunction(UpdateFunction {
        function_id: function_id(id),
        changes,
        at: t(5),
    })
}

fn function_created(id: u128, name: &str) -> ProjectEvent {
    ProjectEvent::FunctionCreated {
        project_id: pid(),
        function_id: function_id(id),
        name: name.into(),
        description: None,
        language: FunctionLanguage::Python,
        function_code: CODE.into(),
        input_schema: None,
        output_schema: None,
        examples: vec![],
        generation_mode: None,
        endpoint_path: format!("/fn/{name}"),
        http_method: HttpMethod::Post,
        is_active: true,
        created_at: t(4),
    }
}

/// The members a `FunctionUpdated` carries, for building expected events.
#[derive(Default)]
struct FnChanged {
    description: Option<Option<String>>,
    input_schema: Option<Option<Value>>,
    http_method: Option<HttpMethod>,
}

fn updated_fn(id: u128, changed: FnChanged) -> ProjectEvent {
    ProjectEvent::FunctionUpdated {
        project_id: pid(),
        function_id: function_id(id),
        name: None,
        description: changed.description,
        language: None,
        function_code: None,
        input_schema: changed.input_schema,
        output_schema: None,
        examples: None,
        generation_mode: None,
        endpoint_path: None,
        http_method: changed.http_method,
        is_active: None,
        updated_at: t(5),
        ai_request_id: None,
    }
}

fn created_at_path(id: u128, name: &str, path: &str) -> ProjectEvent {
    let mut event = function_created(id, name);
    if let ProjectEvent::FunctionCreated { endpoint_path, .. } = &mut event {
        *endpoint_path = path.into();
    }
    event
}

#[track_caller]
fn conflict(outcome: Result<Vec<ProjectEvent>, ProjectError>) -> String {
    match outcome {
        Err(ProjectError::FunctionConflict(message)) => message,
        other => panic!("expected a function conflict, got {other:?}"),
    }
}

// --- creating functions ---

#[test]
fn a_created_function_gets_the_default_route_and_method() {
    let project = given([created()])
        .when(create_fn(new_function(1, "order_total")))
        .then([function_created(1, "order_total")]);
    let function = project.function(function_id(1)).unwrap();
    assert_eq!(function.endpoint_path, "/fn/order_total");
    assert_eq!(function.http_method, HttpMethod::Post);
    assert!(function.is_active);
}

#[test]
fn every_member_of_a_function_is_stored_as_given() {
    let mut function = new_function(1, "order_total");
    function.description = Some("Sums an order.".into());
    function.input_schema = Some(json!({"type": "object"}));
    function.output_schema = Some(json!(true));
    function.examples = vec![FunctionExample {
        input: json!({"a": 1}),
        output: json!({"a": 1}),
    }];
    function.generation_mode = Some(GenerationMode::Manual);
    function.endpoint_path = Some("/orders/total".into());
    function.http_method = Some("PATCH".into());
    function.is_active = false;
    let events = given([created()])
        .when(create_fn(function))
        .outcome()
        .unwrap();
    let ProjectEvent::FunctionCreated {
        description,
        input_schema,
        output_schema,
        examples,
        generation_mode,
        endpoint_path,
        http_method,
        is_active,
        ..
    } = &events[0]
    else {
        panic!("expected FunctionCreated, got {events:?}");
    };
    assert_eq!(description.as_deref(), Some("Sums an order."));
    assert_eq!(input_schema, &Some(json!({"type": "object"})));
    assert_eq!(output_schema, &Some(json!(true)));
    assert_eq!(examples.len(), 1);
    assert_eq!(*generation_mode, Some(GenerationMode::Manual));
    assert_eq!(endpoint_path, "/orders/total");
    assert_eq!(*http_method, HttpMethod::Patch);
    assert!(!is_active);
}

#[test]
fn a_name_that_is_not_snake_case_or_a_python_keyword_is_refused() {
    for name in [
        "OrderTotal",
        "order-total",
        "1st",
        "",
        "lambda",
        &"a".repeat(64),
    ] {
        let outcome = given([created()])
            .when(create_fn(new_function(1, name)))
            .outcome();
        assert_eq!(invalid_at(outcome), ["/name"], "{name:?}");
    }
}

#[test]
fn an_unknown_language_or_method_is_refused_at_its_member() {
    let mut function = new_function(1, "f");
    function.language = "javascript".into();
    function.http_method = Some("GET".into());
    let outcome = given([created()]).when(create_fn(function)).outcome();
    assert_eq!(invalid_at(outcome), ["/language", "/http_method"]);
}

#[test]
fn code_over_64_kib_is_refused_at_function_code() {
    let mut function = new_function(1, "f");
    function.function_code = format!("def handler(input):\n    return 1\n#{}", "x".repeat(65536));
    let problems = invalid(given([created()]).when(create_fn(function)).outcome());
    assert_eq!(problems[0].0, "/function_code");
    assert!(problems[0].1.contains("65536"), "{problems:?}");
}

#[test]
fn code_of_exactly_64_kib_is_accepted() {
    let mut function = new_function(1, "f");
    let head = "def handler(input):\n    return 1\n#";
    function.function_code = format!("{head}{}", "x".repeat(65536 - head.len()));
    assert_eq!(function.function_code.len(), 65536);
    given([created()])
        .when(create_fn(function))
        .outcome()
        .unwrap();
}

#[test]
fn empty_code_or_a_nul_in_it_is_refused() {
    for code in ["  \n", "def handler(input):\n    return '\0'\n"] {
        let mut function = new_function(1, "f");
        function.function_code = code.into();
        let outcome = given([created()]).when(create_fn(function)).outcome();
        assert_eq!(invalid_at(outcome), ["/function_code"]);
    }
}

#[test]
fn a_schema_must_be_an_object_or_a_boolean() {
    let mut function = new_function(1, "f");
    function.input_schema = Some(json!("object"));
    function.output_schema = Some(json!([]));
    let outcome = given([created()]).when(create_fn(function)).outcome();
    assert_eq!(invalid_at(outcome), ["/input_schema", "/output_schema"]);
}

#[test]
fn a_malformed_endpoint_path_is_refused() {
    for path in [
        "fn/x",
        "/",
        "/fn/",
        "/fn//x",
        "/fn/{id}",
        "/Fn/x",
        "/fn/x?y=1",
    ] {
        let mut function = new_function(1, "f");
        function.endpoint_path = Some(path.into());
        let outcome = given([created()]).when(create_fn(function)).outcome();
        assert_eq!(invalid_at(outcome), ["/endpoint_path"], "{path}");
    }
}

#[test]
fn a_path_under_a_generated_route_is_refused_at_endpoint_path() {
    for path in [
        "/api/customers",
        "/api/customers/vip",
        "/api/auth/login",
        "/health",
        "/docs",
    ] {
        let mut function = new_function(1, "f");
        function.endpoint_path = Some(path.into());
        let problems = invalid(given(shop()).when(create_fn(function)).outcome());
        assert_eq!(problems.len(), 1, "{path}");
        assert_eq!(problems[0].0, "/endpoint_path", "{path}");
        assert!(problems[0].1.contains("collides"), "{problems:?}");
    }
}

#[test]
fn a_path_beside_an_entitys_routes_is_free() {
    let mut function = new_function(1, "f");
    function.endpoint_path = Some("/api/customers-report".into());
    given(shop()).when(create_fn(function)).outcome().unwrap();
}

#[test]
fn a_duplicate_name_is_a_function_conflict() {
    let mut function = new_function(2, "order_total");
    function.endpoint_path = Some("/other".into());
    let message = conflict(
        given([created(), function_created(1, "order_total")])
            .when(create_fn(function))
            .outcome(),
    );
    assert!(message.contains("order_total"), "{message}");
}

#[test]
fn the_same_method_and_path_is_a_function_conflict_but_another_method_is_not() {
    let mut same = new_function(2, "other");
    same.endpoint_path = Some("/fn/order_total".into());
    let message = conflict(
        given([created(), function_created(1, "order_total")])
            .when(create_fn(same.clone()))
            .outcome(),
    );
    assert!(message.contains("POST /fn/order_total"), "{message}");
    same.http_method = Some("PUT".into());
    given([created(), function_created(1, "order_total")])
        .when(create_fn(same))
        .outcome()
        .unwrap();
}

#[test]
fn a_project_holds_at_most_50_functions() {
    let mut history = vec![created()];
    history.extend((0..50).map(|i| function_created(100 + i, &format!("f{i}"))));
    given(history.clone())
        .when(create_fn(new_function(1, "one_more")))
        .then_err(ProjectError::FunctionLimitReached { limit: 50 });
    history.push(ProjectEvent::FunctionDeleted {
        project_id: pid(),
        function_id: function_id(100),
        deleted_at: t(6),
    });
    given(history)
        .when(create_fn(new_function(1, "one_more")))
        .outcome()
        .unwrap();
}

#[test]
fn function_code_counts_in_the_project_size_limit() {
    let limits = Limits {
        project_max_bytes: 4096,
        ..Limits::default()
    };
    let mut function = new_function(1, "f");
    function.function_code = format!("def handler(input):\n    return 1\n#{}", "x".repeat(5000));
    let outcome = given([created()])
        .with_limits(limits)
        .when(create_fn(function))
        .outcome();
    assert!(
        matches!(outcome, Err(ProjectError::TooLarge { .. })),
        "{outcome:?}"
    );
}

#[test]
fn an_archived_project_takes_no_function() {
    given([created(), archived()])
        .when(create_fn(new_function(1, "f")))
        .then_err(ProjectError::Archived);
}

#[test]
fn too_many_examples_are_refused() {
    let mut function = new_function(1, "f");
    function.examples = vec![
        FunctionExample {
            input: json!(1),
            output: json!(1)
        };
        21
    ];
    let outcome = given([created()]).when(create_fn(function)).outcome();
    assert_eq!(invalid_at(outcome), ["/examples"]);
}

// --- updating and deleting ---

#[test]
fn an_update_carries_only_what_changed() {
    let changes = FunctionChanges {
        name: Some("order_total".into()),
        description: Some(Some("Sums.".into())),
        http_method: Some("PUT".into()),
        ..FunctionChanges::default()
    };
    let project = given([created(), function_created(1, "order_total")])
        .when(update_fn(1, changes))
        .then([updated_fn(
            1,
            FnChanged {
                description: Some(Some("Sums.".into())),
                http_method: Some(HttpMethod::Put),
                ..FnChanged::default()
            },
        )]);
    let function = project.function(function_id(1)).unwrap();
    assert_eq!(function.http_method, HttpMethod::Put);
    assert_eq!(function.updated_at, t(5));
    // The path stays where it was stored.
    assert_eq!(function.endpoint_path, "/fn/order_total");
}

#[test]
fn an_update_that_changes_nothing_appends_nothing() {
    given([created(), function_created(1, "f")])
        .when(update_fn(
            1,
            FunctionChanges {
                is_active: Some(true),
                ..FunctionChanges::default()
            },
        ))
        .then_nothing();
}

#[test]
fn an_empty_update_is_refused() {
    let outcome = given([created(), function_created(1, "f")])
        .when(update_fn(1, FunctionChanges::default()))
        .outcome();
    assert_eq!(invalid_at(outcome), [""]);
}

#[test]
fn a_rename_onto_another_function_or_its_route_is_a_function_conflict() {
    let history = [
        created(),
        function_created(1, "a"),
        function_created(2, "b"),
    ];
    conflict(
        given(history.clone())
            .when(update_fn(
                2,
                FunctionChanges {
                    name: Some("a".into()),
                    ..FunctionChanges::default()
                },
            ))
            .outcome(),
    );
    conflict(
        given(history)
            .when(update_fn(
                2,
                FunctionChanges {
                    endpoint_path: Some("/fn/a".into()),
                    ..FunctionChanges::default()
                },
            ))
            .outcome(),
    );
}

#[test]
fn moving_a_function_onto_a_generated_route_is_refused() {
    let mut history = shop();
    history.push(function_created(1, "f"));
    let outcome = given(history)
        .when(update_fn(
            1,
            FunctionChanges {
                endpoint_path: Some("/api/orders/summary".into()),
                ..FunctionChanges::default()
            },
        ))
        .outcome();
    assert_eq!(invalid_at(outcome), ["/endpoint_path"]);
}

#[test]
fn clearing_a_schema_is_recorded_as_null() {
    let mut with_schema = function_created(1, "f");
    if let ProjectEvent::FunctionCreated { input_schema, .. } = &mut with_schema {
        *input_schema = Some(json!({"type": "object"}));
    }
    let project = given([created(), with_schema])
        .when(update_fn(
            1,
            FunctionChanges {
                input_schema: Some(None),
                ..FunctionChanges::default()
            },
        ))
        .then([updated_fn(
            1,
            FnChanged {
                input_schema: Some(None),
                ..FnChanged::default()
            },
        )]);
    assert_eq!(project.function(function_id(1)).unwrap().input_schema, None);
    assert_eq!(
        updated_fn(1, FnChanged::default()).to_data(),
        json!({"project_id": pid(), "function_id": function_id(1), "updated_at": "2025-01-15T10:05:00Z"})
    );
}

#[test]
fn an_unknown_function_is_not_found() {
    given([created()])
        .when(update_fn(
            9,
            FunctionChanges {
                is_active: Some(false),
                ..FunctionChanges::default()
            },
        ))
        .then_err(ProjectError::FunctionNotFound(function_id(9)));
    given([created()])
        .when(ProjectCommand::DeleteFunction(DeleteFunction {
            function_id: function_id(9),
            at: t(6),
        }))
        .then_err(ProjectError::FunctionNotFound(function_id(9)));
}

#[test]
fn a_deleted_function_frees_its_name_and_route() {
    let deleted = ProjectEvent::FunctionDeleted {
        project_id: pid(),
        function_id: function_id(1),
        deleted_at: t(6),
    };
    given([created(), function_created(1, "f")])
        .when(ProjectCommand::DeleteFunction(DeleteFunction {
            function_id: function_id(1),
            at: t(6),
        }))
        .then([deleted.clone()]);
    given([created(), function_created(1, "f"), deleted])
        .when(create_fn(new_function(2, "f")))
        .outcome()
        .unwrap();
}

// --- entities and functions, the other direction ---

#[test]
fn an_entity_whose_routes_would_take_a_functions_path_is_refused() {
    let mut function = new_function(1, "f");
    function.endpoint_path = Some("/api/invoices/export".into());
    given([created()])
        .when(create_fn(function))
        .outcome()
        .unwrap();
    let history = [created(), created_at_path(1, "f", "/api/invoices/export")];
    let problems = invalid(
        given(history.clone())
            .when(add(crud(2, "Invoices", raw_entity("invoice", None))))
            .outcome(),
    );
    assert_eq!(problems[0].0, "/schema_definition/plural");
    assert!(problems[0].1.contains("function `f`"), "{problems:?}");
    // A plural that keeps clear of the function is fine, and so is renaming onto it refused.
    let mut clear = history.to_vec();
    clear.push(crud_added(2, "Bills", raw_entity("bill", None)));
    let outcome = given(clear)
        .when(update(
            2,
            FeatureChanges {
                schema_definition: Some(json!({"entity": "bill", "plural": "invoices", "fields": [{"name": "label", "type": "string"}]})),
                ..FeatureChanges::default()
            },
        ))
        .outcome();
    assert_eq!(invalid_at(outcome), ["/schema_definition/plural"]);
}

#[test]
fn new_custom_function_features_are_refused_with_a_pointer_to_functions() {
    let problems = invalid(
        given([created()])
            .when(add(NewFeature::new(
                feature_id(1),
                "Hooks",
                FeatureType::CustomFunction,
            )))
            .outcome(),
    );
    assert_eq!(problems[0].0, "/feature_type");
    assert!(problems[0].1.contains("/functions"), "{problems:?}");
    let outcome = given_nothing::<Project>()
        .when(create(vec![NewFeature::new(
            feature_id(1),
            "Hooks",
            FeatureType::CustomFunction,
        )]))
        .outcome();
    assert_eq!(invalid_at(outcome), ["/features/0/feature_type"]);
}

#[test]
fn a_stored_custom_function_feature_stays_readable_and_editable() {
    given([
        created(),
        added(1, "Hooks", FeatureType::CustomFunction, None),
    ])
    .when(update(
        1,
        FeatureChanges {
            is_enabled: Some(false),
            ..FeatureChanges::default()
        },
    ))
    .then([feature_updated(
        1,
        Changed {
            is_enabled: Some(false),
            ..Changed::default()
        },
    )]);
}

#[test]
fn function_events_touch_no_feature_rows() {
    assert_eq!(
        function_created(1, "f").features_touched(),
        FeaturesTouched::None
    );
}
