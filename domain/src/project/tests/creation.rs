//! Creating a project, alone or with its features in one decision (the wizard).

use super::*;

// --- creation ---

#[test]
fn creating_a_project_records_it_with_the_manual_mode_by_default() {
    let project = given_nothing::<Project>()
        .when(create(vec![]))
        .then([created()]);
    assert!(project.exists());
    assert_eq!(project.name, "Shop");
    assert_eq!(project.status, ProjectStatus::Active);
    assert_eq!(project.generation_mode, GenerationMode::Manual);
}

#[test]
fn the_wizard_creates_the_project_and_its_features_in_one_decision() {
    let project = given_nothing::<Project>()
        .when(create(vec![
            crud(2, "Orders", order_raw()),
            crud(1, "Customers", customer_raw()),
            NewFeature::new(feature_id(3), "Login", FeatureType::Auth),
        ]))
        .then([
            created(),
            added_at_t0(crud_added(2, "Orders", order_raw())),
            added_at_t0(crud_added(1, "Customers", customer_raw())),
            added_at_t0(added(3, "Login", FeatureType::Auth, None)),
        ]);
    let names: Vec<_> = project.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["Orders", "Customers", "Login"]);
}

#[test]
fn creating_a_project_twice_is_refused() {
    given([created()])
        .when(create(vec![]))
        .then_err(ProjectError::AlreadyExists);
}

#[test]
fn a_project_name_must_have_1_to_100_characters() {
    let mut command = create(vec![]);
    if let ProjectCommand::CreateProject(CreateProject { name, .. }) = &mut command {
        *name = "x".repeat(101);
    }
    given_nothing::<Project>()
        .when(command)
        .then_err(ProjectError::Validation(vec![FieldError::new(
            "/name",
            "must be at most 100 characters",
        )]));
}

#[test]
fn a_description_may_be_empty_but_not_over_2000_characters() {
    let with_description = |d: String| {
        ProjectCommand::CreateProject(CreateProject {
            project_id: pid(),
            owner_id: owner(),
            name: "Shop".into(),
            description: Some(d),
            generation_mode: Some(GenerationMode::Mixed),
            features: vec![],
            at: t0(),
        })
    };
    let project = given_nothing::<Project>()
        .when(with_description(String::new()))
        .then([ProjectEvent::ProjectCreated {
            project_id: pid(),
            owner_id: owner(),
            name: "Shop".into(),
            description: Some(String::new()),
            generation_mode: GenerationMode::Mixed,
            created_at: t0(),
        }]);
    assert_eq!(project.description.as_deref(), Some(""));
    let outcome = given_nothing::<Project>()
        .when(with_description("x".repeat(2001)))
        .outcome();
    assert_eq!(invalid_at(outcome), ["/description"]);
}

#[test]
fn a_crud_feature_without_a_schema_is_rejected() {
    let outcome = given_nothing::<Project>()
        .when(create(vec![NewFeature::new(
            feature_id(1),
            "Orders",
            FeatureType::Crud,
        )]))
        .outcome();
    assert_eq!(
        invalid(outcome),
        [(
            "/features/0/schema_definition".to_owned(),
            "is required for crud features".to_owned()
        )]
    );
    let outcome = given([created()])
        .when(add(NewFeature {
            schema_definition: Some(Value::Null),
            ..NewFeature::new(feature_id(1), "Orders", FeatureType::Crud)
        }))
        .outcome();
    assert_eq!(invalid_at(outcome), ["/schema_definition"]);
}

#[test]
fn a_feature_of_another_type_must_not_have_a_schema() {
    let outcome = given_nothing::<Project>()
        .when(create(vec![
            NewFeature::new(feature_id(1), "Login", FeatureType::Auth),
            NewFeature::new(feature_id(2), "Files", FeatureType::FileStorage)
                .with_schema(customer_raw()),
        ]))
        .outcome();
    assert_eq!(
        invalid(outcome),
        [(
            "/features/1/schema_definition".to_owned(),
            "only crud features have a schema_definition, not file_storage features".to_owned()
        )]
    );
}

#[test]
fn configuration_must_be_absent_or_empty() {
    let with_configuration = |c: Value| NewFeature {
        configuration: Some(c),
        ..NewFeature::new(feature_id(1), "Login", FeatureType::Auth)
    };
    given([created()])
        .when(add(with_configuration(json!({}))))
        .then([added(1, "Login", FeatureType::Auth, None)]);
    let outcome = given_nothing::<Project>()
        .when(create(vec![with_configuration(
            json!({"provider": "x", "a/b": 1}),
        )]))
        .outcome();
    assert_eq!(
        invalid_at(outcome),
        [
            "/features/0/configuration/provider",
            "/features/0/configuration/a~1b"
        ]
    );
    let outcome = given([created()])
        .when(add(with_configuration(json!([]))))
        .outcome();
    assert_eq!(
        invalid(outcome),
        [("/configuration".to_owned(), "must be an object".to_owned())]
    );
}

#[test]
fn schema_problems_in_the_wizard_point_into_the_feature() {
    let outcome = given_nothing::<Project>()
        .when(create(vec![
            crud(1, "Customers", customer_raw()),
            crud(
                2,
                "Orders",
                json!({"entity": "order", "fields": [{"name": "select", "type": "text"}]}),
            ),
        ]))
        .outcome();
    assert_eq!(
        invalid_at(outcome),
        ["/features/1/schema_definition/fields/0/name"]
    );
}

#[test]
fn duplicate_feature_names_in_one_request_are_rejected_ignoring_case() {
    let outcome = given_nothing::<Project>()
        .when(create(vec![
            NewFeature::new(feature_id(1), "Login", FeatureType::Auth),
            NewFeature::new(feature_id(2), " LOGIN ", FeatureType::Auth),
        ]))
        .outcome();
    assert_eq!(
        invalid(outcome),
        [(
            "/features/1/name".to_owned(),
            "repeats the name of feature 0 (names are compared ignoring case)".to_owned()
        )]
    );
}

#[test]
fn duplicate_entities_and_plurals_in_one_request_are_rejected() {
    let outcome = given_nothing::<Project>()
            .when(create(vec![
                crud(1, "A", raw_entity("thing", None)),
                crud(2, "B", raw_entity("thing", None)),
                crud(3, "C", json!({"entity": "other", "plural": "things", "fields": [{"name": "a", "type": "text"}]})),
            ]))
            .outcome();
    assert_eq!(
        invalid_at(outcome),
        [
            "/features/1/schema_definition/entity",
            "/features/1/schema_definition/plural",
            "/features/2/schema_definition/plural"
        ]
    );
}

#[test]
fn a_reference_to_an_entity_missing_from_the_project_is_rejected() {
    let outcome = given_nothing::<Project>()
        .when(create(vec![crud(1, "Orders", order_raw())]))
        .outcome();
    assert_eq!(
        invalid(outcome),
        [(
            "/features/0/schema_definition/fields/4/references".to_owned(),
            "`customer` is not a crud entity of this project".to_owned()
        )]
    );
    let outcome = given([created()])
        .when(add(crud(2, "Orders", order_raw())))
        .outcome();
    assert_eq!(
        invalid_at(outcome),
        ["/schema_definition/fields/4/references"]
    );
}

#[test]
fn a_reference_to_a_non_crud_feature_name_is_rejected() {
    let outcome = given([created(), added(1, "auth", FeatureType::Auth, None)])
        .when(add(crud(2, "Notes", raw_entity("note", Some("auth")))))
        .outcome();
    assert_eq!(
        invalid_at(outcome),
        ["/schema_definition/fields/1/references"]
    );
}

#[test]
fn a_broken_entity_does_not_also_make_its_references_fail() {
    let broken_customer = json!({"entity": "customer", "fields": []});
    let outcome = given_nothing::<Project>()
        .when(create(vec![
            crud(1, "Customers", broken_customer),
            crud(2, "Orders", order_raw()),
        ]))
        .outcome();
    assert_eq!(
        invalid_at(outcome),
        ["/features/0/schema_definition/fields"]
    );
}

#[test]
fn an_enabled_entity_cannot_reference_a_disabled_one() {
    let outcome = given_nothing::<Project>()
        .when(create(vec![
            NewFeature {
                is_enabled: false,
                ..crud(1, "Customers", customer_raw())
            },
            crud(2, "Orders", order_raw()),
        ]))
        .outcome();
    assert_eq!(
        invalid(outcome),
        [(
            "/features/1/schema_definition/fields/4/references".to_owned(),
            "`customer` is disabled; an enabled entity cannot reference it".to_owned()
        )]
    );
    // A disabled entity may.
    given([
        created(),
        crud_added(1, "Customers", customer_raw()),
        disabled(1),
    ])
    .when(add(NewFeature {
        is_enabled: false,
        ..crud(2, "Orders", order_raw())
    }))
    .then([disabled_added(crud_added(2, "Orders", order_raw()))]);
}

#[test]
fn a_change_that_would_make_the_project_larger_than_its_limit_is_refused() {
    let limits = Limits {
        project_max_bytes: 4096,
        ..Limits::default()
    };
    let outcome = given([created()])
        .with_limits(limits.clone())
        .when(add(crud(1, "Customers", customer_raw())))
        .outcome();
    assert!(outcome.is_ok(), "{outcome:?}");
    let big = given([created(), crud_added(1, "Customers", customer_raw())])
        .with_limits(Limits {
            project_max_bytes: 1200,
            ..limits
        })
        .when(add(crud(2, "Orders", order_raw())))
        .outcome();
    assert!(
        matches!(big, Err(ProjectError::TooLarge { limit: 1200, .. })),
        "{big:?}"
    );
    // Removing a feature shrinks a project, so it passes whatever its size.
    given([created(), crud_added(1, "Customers", customer_raw())])
        .with_limits(Limits {
            project_max_bytes: 10,
            ..Limits::default()
        })
        .when(ProjectCommand::RemoveFeature(RemoveFeature {
            feature_id: feature_id(1),
            at: t(5),
        }))
        .outcome()
        .expect("a removal is never too large");
}

#[test]
fn an_entity_may_reference_itself() {
    let raw = raw_entity("category", Some("category"));
    given([created()])
        .when(add(crud(1, "Categories", raw.clone())))
        .then([crud_added(1, "Categories", raw)]);
}

#[test]
fn too_many_features_in_the_wizard_are_rejected() {
    let limits = Limits {
        features_per_project: 1,
        ..Limits::default()
    };
    let outcome = given_nothing::<Project>()
        .with_limits(limits)
        .when(create(vec![
            NewFeature::new(feature_id(1), "A", FeatureType::Auth),
            NewFeature::new(feature_id(2), "B", FeatureType::Analytics),
        ]))
        .outcome();
    assert_eq!(
        invalid(outcome),
        [(
            "/features".to_owned(),
            "must hold at most 1 features, not 2".to_owned()
        )]
    );
}

#[test]
fn every_problem_of_the_wizard_is_reported_at_once() {
    let mut command = create(vec![
        NewFeature::new(feature_id(1), "", FeatureType::Auth),
        crud(2, "Orders", order_raw()),
        NewFeature::new(feature_id(3), "Jobs", FeatureType::BackgroundJobs).with_schema(json!({})),
    ]);
    if let ProjectCommand::CreateProject(CreateProject { name, .. }) = &mut command {
        *name = " ".into();
    }
    let outcome = given_nothing::<Project>().when(command).outcome();
    assert_eq!(
        invalid_at(outcome),
        [
            "/name",
            "/features/0/name",
            "/features/2/schema_definition",
            "/features/1/schema_definition/fields/4/references"
        ]
    );
}

#[test]
fn repeated_feature_ids_in_the_wizard_are_a_caller_bug() {
    given_nothing::<Project>()
        .when(create(vec![
            NewFeature::new(feature_id(1), "A", FeatureType::Auth),
            NewFeature::new(feature_id(1), "B", FeatureType::Auth),
        ]))
        .then_err(ProjectError::FeatureAlreadyExists(feature_id(1)));
}
