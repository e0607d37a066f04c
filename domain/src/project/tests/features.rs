//! Adding, updating and removing features, and the references between their entities.

use super::*;

// --- adding features ---

#[test]
fn an_added_crud_feature_stores_the_normalised_schema() {
    let project = given([created(), crud_added(1, "Customers", customer_raw())])
        .when(add(crud(2, "Orders", order_raw())))
        .then([crud_added(2, "Orders", order_raw())]);
    let orders = project.feature(feature_id(2)).unwrap();
    let schema = orders.entity().unwrap();
    assert!(matches!(
        schema.field("code").unwrap().kind,
        crate::crud_schema::FieldKind::String {
            max_length: 255,
            ..
        }
    ));
    assert_eq!((orders.created_at, orders.updated_at), (t(1), t(1)));
}

#[test]
fn an_entity_level_unique_on_one_field_is_stored_as_that_fields_own_unique() {
    let customers = json!({"entity": "customer", "fields": [
        {"name": "email", "type": "string", "required": true},
        {"name": "name", "type": "string"}
    ], "unique": [["email"]]});
    let stored = json!({"entity": "customer", "plural": "customers", "fields": [
        {"name": "email", "type": "string", "max_length": 255, "required": true, "unique": true},
        {"name": "name", "type": "string", "max_length": 255, "required": false, "unique": false}
    ], "unique": []});
    let project = given([created()])
        .when(add(crud(1, "Customers", customers)))
        .then([crud_added(1, "Customers", stored.clone())]);
    let event = crud_added(1, "Customers", stored.clone());
    assert_eq!(event.to_data()["schema_definition"], stored);
    assert!(project.entities().next().unwrap().1.unique.is_empty());
}

#[test]
fn an_added_feature_keeps_its_own_generation_mode() {
    let feature = NewFeature {
        generation_mode: Some(GenerationMode::AiAssisted),
        ..NewFeature::new(feature_id(1), "Login", FeatureType::Auth)
    };
    let project = given([created()]).when(add(feature)).then([with_mode(
        added(1, "Login", FeatureType::Auth, None),
        GenerationMode::AiAssisted,
    )]);
    let login = project.feature(feature_id(1)).unwrap();
    assert_eq!(
        login.effective_generation_mode(project.generation_mode),
        GenerationMode::AiAssisted
    );
}

#[test]
fn a_feature_name_taken_in_the_project_is_a_conflict_ignoring_case() {
    given(shop())
        .when(add(NewFeature::new(
            feature_id(3),
            "  orders",
            FeatureType::Auth,
        )))
        .then_err(ProjectError::FeatureNameTaken {
            name: "orders".into(),
        });
}

#[test]
fn an_entity_name_or_plural_taken_in_the_project_is_a_conflict() {
    given(shop())
        .when(add(crud(3, "Clients", customer_raw())))
        .then_err(ProjectError::EntityNameTaken {
            entity: "customer".into(),
        });
    given(shop())
            .when(add(crud(3, "Purchases", json!({"entity": "purchase", "plural": "orders", "fields": [{"name": "a", "type": "text"}]}))))
            .then_err(ProjectError::PluralTaken {
                plural: "orders".into(),
            });
}

#[test]
fn adding_a_feature_with_an_existing_id_is_refused() {
    given(shop())
        .when(add(NewFeature::new(
            feature_id(1),
            "Login",
            FeatureType::Auth,
        )))
        .then_err(ProjectError::FeatureAlreadyExists(feature_id(1)));
}

#[test]
fn a_project_holds_at_most_the_feature_limit() {
    let limits = Limits {
        features_per_project: 2,
        ..Limits::default()
    };
    given(shop())
        .with_limits(limits)
        .when(add(NewFeature::new(
            feature_id(3),
            "Login",
            FeatureType::Auth,
        )))
        .then_err(ProjectError::FeatureLimitReached { limit: 2 });
}

// --- updating features ---

#[test]
fn updating_an_unknown_feature_is_refused() {
    given(shop())
        .when(update(
            9,
            FeatureChanges {
                name: Some("X".into()),
                ..FeatureChanges::default()
            },
        ))
        .then_err(ProjectError::FeatureNotFound(feature_id(9)));
}

#[test]
fn a_feature_update_without_any_field_is_rejected() {
    given(shop())
        .when(update(1, FeatureChanges::default()))
        .then_err(ProjectError::Validation(vec![FieldError::new(
            "",
            "nothing to update: give at least one field",
        )]));
}

#[test]
fn the_feature_type_cannot_change() {
    let outcome = given(shop())
        .when(update(
            1,
            FeatureChanges {
                feature_type: Some(json!("crud")),
                ..FeatureChanges::default()
            },
        ))
        .outcome();
    assert_eq!(invalid_at(outcome), ["/feature_type"]);
}

#[test]
fn a_feature_type_member_is_refused_whatever_it_holds_beside_other_changes() {
    for raw in [json!(null), json!("auth"), json!("no_such_type"), json!(3)] {
        let outcome = given(shop())
            .when(update(
                1,
                FeatureChanges {
                    name: Some("Clients".into()),
                    feature_type: Some(raw.clone()),
                    ..FeatureChanges::default()
                },
            ))
            .outcome();
        assert_eq!(invalid_at(outcome), ["/feature_type"], "{raw}");
    }
}

#[test]
fn a_feature_is_renamed() {
    let project = given(shop())
        .when(update(
            1,
            FeatureChanges {
                name: Some(" Clients ".into()),
                ..FeatureChanges::default()
            },
        ))
        .then([feature_updated(
            1,
            Changed {
                name: Some("Clients".into()),
                ..Changed::default()
            },
        )]);
    let feature = project.feature(feature_id(1)).unwrap();
    assert_eq!(
        (feature.name.as_str(), feature.updated_at),
        ("Clients", t(3))
    );
}

#[test]
fn a_feature_may_change_the_case_of_its_own_name_but_not_take_another() {
    given(shop())
        .when(update(
            1,
            FeatureChanges {
                name: Some("CUSTOMERS".into()),
                ..FeatureChanges::default()
            },
        ))
        .then([feature_updated(
            1,
            Changed {
                name: Some("CUSTOMERS".into()),
                ..Changed::default()
            },
        )]);
    given(shop())
        .when(update(
            1,
            FeatureChanges {
                name: Some("orders".into()),
                ..FeatureChanges::default()
            },
        ))
        .then_err(ProjectError::FeatureNameTaken {
            name: "orders".into(),
        });
}

#[test]
fn a_feature_update_that_changes_nothing_records_nothing() {
    given(shop())
        .when(update(
            2,
            FeatureChanges {
                name: Some("Orders".into()),
                generation_mode: Some(None),
                configuration: Some(json!({})),
                schema_definition: Some(order_raw()),
                is_enabled: Some(true),
                ..FeatureChanges::default()
            },
        ))
        .then_nothing();
}

#[test]
fn a_new_schema_is_stored_normalised() {
    let raw = json!({"entity": "customer", "fields": [
        {"name": "email", "type": "string", "required": true},
        {"name": "vip", "type": "boolean", "default": false}
    ]});
    let project = given(shop())
        .when(update(
            1,
            FeatureChanges {
                schema_definition: Some(raw.clone()),
                ..FeatureChanges::default()
            },
        ))
        .then([feature_updated(
            1,
            Changed {
                schema_definition: Some(schema(raw)),
                ..Changed::default()
            },
        )]);
    assert_eq!(
        project
            .feature(feature_id(1))
            .unwrap()
            .entity()
            .unwrap()
            .fields
            .len(),
        2
    );
}

#[test]
fn a_crud_schema_cannot_be_cleared_and_other_types_take_none() {
    let outcome = given(shop())
        .when(update(
            1,
            FeatureChanges {
                schema_definition: Some(Value::Null),
                ..FeatureChanges::default()
            },
        ))
        .outcome();
    assert_eq!(
        invalid(outcome),
        [(
            "/schema_definition".to_owned(),
            "is required for crud features".to_owned()
        )]
    );
    let outcome = given([created(), added(3, "Login", FeatureType::Auth, None)])
        .when(update(
            3,
            FeatureChanges {
                schema_definition: Some(customer_raw()),
                ..FeatureChanges::default()
            },
        ))
        .outcome();
    assert_eq!(invalid_at(outcome), ["/schema_definition"]);
}

#[test]
fn schema_problems_of_an_update_point_into_the_schema() {
    let outcome = given(shop())
            .when(update(2, FeatureChanges {
                schema_definition: Some(json!({"entity": "order", "fields": [{"name": "buyer_id", "type": "reference", "references": "buyer"}, {"name": "n", "type": "integer", "min": 3, "max": 1}]})),
                ..FeatureChanges::default()
            }))
            .outcome();
    assert_eq!(invalid_at(outcome), ["/schema_definition/fields/1/min"]);
    let outcome = given(shop())
            .when(update(2, FeatureChanges {
                schema_definition: Some(json!({"entity": "order", "fields": [{"name": "buyer_id", "type": "reference", "references": "buyer"}]})),
                ..FeatureChanges::default()
            }))
            .outcome();
    assert_eq!(
        invalid_at(outcome),
        ["/schema_definition/fields/0/references"]
    );
}

#[test]
fn a_configuration_key_in_an_update_is_rejected() {
    let outcome = given(shop())
        .when(update(
            1,
            FeatureChanges {
                configuration: Some(json!({"color": "red"})),
                ..FeatureChanges::default()
            },
        ))
        .outcome();
    assert_eq!(invalid_at(outcome), ["/configuration/color"]);
}

#[test]
fn a_feature_mode_set_and_cleared_is_recorded_with_null_for_cleared() {
    let ai = feature_updated(
        1,
        Changed {
            generation_mode: Some(Some(GenerationMode::AiAssisted)),
            ..Changed::default()
        },
    );
    let mut history = shop();
    given(history.clone())
        .when(update(
            1,
            FeatureChanges {
                generation_mode: Some(Some(GenerationMode::AiAssisted)),
                ..FeatureChanges::default()
            },
        ))
        .then([ai.clone()]);
    history.push(ai);
    let cleared = feature_updated(
        1,
        Changed {
            generation_mode: Some(None),
            ..Changed::default()
        },
    );
    let project = given(history)
        .when(update(
            1,
            FeatureChanges {
                generation_mode: Some(None),
                ..FeatureChanges::default()
            },
        ))
        .then([cleared.clone()]);
    assert_eq!(
        project.feature(feature_id(1)).unwrap().generation_mode,
        None
    );
    let data = cleared.to_data();
    assert_eq!(data.get("generation_mode"), Some(&Value::Null));
    assert!(data.get("name").is_none());
    assert_eq!(
        ProjectEvent::from_data("FeatureUpdated", data).unwrap(),
        cleared
    );
}

#[test]
fn renaming_an_entity_others_reference_is_a_conflict() {
    given(shop())
        .when(update(
            1,
            FeatureChanges {
                schema_definition: Some(raw_entity("client", None)),
                ..FeatureChanges::default()
            },
        ))
        .then_err(ProjectError::FeatureReferenced {
            by: vec!["order".into()],
        });
}

#[test]
fn renaming_an_entity_nobody_references_is_allowed() {
    given(shop())
        .when(update(
            2,
            FeatureChanges {
                schema_definition: Some(raw_entity("purchase", Some("customer"))),
                ..FeatureChanges::default()
            },
        ))
        .then([feature_updated(
            2,
            Changed {
                schema_definition: Some(schema(raw_entity("purchase", Some("customer")))),
                ..Changed::default()
            },
        )]);
}

#[test]
fn a_changed_entity_name_taken_by_another_feature_is_a_conflict() {
    given(shop())
        .when(update(
            2,
            FeatureChanges {
                schema_definition: Some(raw_entity("customer", None)),
                ..FeatureChanges::default()
            },
        ))
        .then_err(ProjectError::EntityNameTaken {
            entity: "customer".into(),
        });
}

#[test]
fn disabling_an_entity_an_enabled_entity_references_is_a_conflict() {
    given(shop())
        .when(update(
            1,
            FeatureChanges {
                is_enabled: Some(false),
                ..FeatureChanges::default()
            },
        ))
        .then_err(ProjectError::FeatureReferenced {
            by: vec!["order".into()],
        });
}

#[test]
fn disabling_an_entity_only_disabled_entities_reference_is_allowed() {
    let mut history = shop();
    history.push(disabled(2));
    let project = given(history)
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
    assert!(!project.feature(feature_id(1)).unwrap().is_enabled);
}

#[test]
fn enabling_an_entity_whose_target_is_disabled_is_rejected() {
    let history = vec![
        created(),
        crud_added(1, "Customers", customer_raw()),
        disabled_added(crud_added(2, "Orders", order_raw())),
        disabled(1),
    ];
    let outcome = given(history)
        .when(update(
            2,
            FeatureChanges {
                is_enabled: Some(true),
                ..FeatureChanges::default()
            },
        ))
        .outcome();
    assert_eq!(
        invalid(outcome),
        [(
            "/is_enabled".to_owned(),
            "field `customer_id` references `customer`, which is disabled; enable it first"
                .to_owned()
        )]
    );
}

#[test]
fn a_self_referencing_entity_may_be_disabled_and_removed() {
    let raw = raw_entity("category", Some("category"));
    given([created(), crud_added(1, "Categories", raw.clone())])
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
    given([created(), crud_added(1, "Categories", raw)])
        .when(ProjectCommand::RemoveFeature(RemoveFeature {
            feature_id: feature_id(1),
            at: t(4),
        }))
        .then([ProjectEvent::FeatureRemoved {
            project_id: pid(),
            feature_id: feature_id(1),
            removed_at: t(4),
        }]);
}

// --- removing features ---

#[test]
fn a_feature_is_removed() {
    let project = given(shop())
        .when(ProjectCommand::RemoveFeature(RemoveFeature {
            feature_id: feature_id(2),
            at: t(4),
        }))
        .then([ProjectEvent::FeatureRemoved {
            project_id: pid(),
            feature_id: feature_id(2),
            removed_at: t(4),
        }]);
    assert_eq!(project.features.len(), 1);
}

#[test]
fn removing_a_referenced_entity_is_a_conflict_naming_the_referencers() {
    let mut history = shop();
    history.push(crud_added(
        3,
        "Invoices",
        raw_entity("invoice", Some("customer")),
    ));
    history.push(disabled(3));
    given(history)
        .when(ProjectCommand::RemoveFeature(RemoveFeature {
            feature_id: feature_id(1),
            at: t(4),
        }))
        .then_err(ProjectError::FeatureReferenced {
            by: vec!["invoice".into(), "order".into()],
        });
}

#[test]
fn removing_an_unknown_feature_is_refused() {
    given(shop())
        .when(ProjectCommand::RemoveFeature(RemoveFeature {
            feature_id: feature_id(9),
            at: t(4),
        }))
        .then_err(ProjectError::FeatureNotFound(feature_id(9)));
}

#[test]
fn an_auth_configuration_may_name_only_the_projects_entities() {
    let auth = |c: Value| NewFeature {
        configuration: Some(c),
        ..NewFeature::new(feature_id(7), "Login", FeatureType::Auth)
    };
    let outcome = given(shop())
        .when(add(auth(
            json!({"entities": {"customer": "shared_read", "ghost": "owner_scoped"}}),
        )))
        .outcome();
    assert_eq!(invalid_at(outcome), ["/configuration/entities/ghost"]);
    let outcome = given(shop())
        .when(add(auth(
            json!({"registration": "closed", "entities": {"customer": "shared_read"}}),
        )))
        .outcome();
    assert!(outcome.is_ok(), "{outcome:?}");
}

#[test]
fn owner_id_is_a_reserved_field_name() {
    let outcome = given(shop())
        .when(add(crud(
            9,
            "Notes",
            json!({"entity": "note", "fields": [{"name": "owner_id", "type": "uuid"}]}),
        )))
        .outcome();
    assert_eq!(invalid_at(outcome), ["/schema_definition/fields/0/name"]);
}
