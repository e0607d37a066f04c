//! Applied AI content: its events record the AI request, the state keeps it per feature and function, and an owner's edit keeps it.

use super::*;
use crate::ids::AiRequestId;
use crate::testing::function_id;
use time::OffsetDateTime;

fn request(n: u128) -> AiRequestId {
    AiRequestId::from_uuid(uuid::Uuid::from_u128(0xa1_0000 + n))
}

fn applied(n: u128, content: AiContent) -> ProjectCommand {
    ProjectCommand::ApplyAiContent(ApplyAiContent {
        ai_request_id: request(n),
        content,
    })
}

fn ai_feature_added(mut event: ProjectEvent, n: u128) -> ProjectEvent {
    if let ProjectEvent::FeatureAdded { ai_request_id, .. } = &mut event {
        *ai_request_id = Some(request(n));
    }
    event
}

fn with_request(mut event: ProjectEvent, n: u128) -> ProjectEvent {
    match &mut event {
        ProjectEvent::FeatureAdded { ai_request_id, .. }
        | ProjectEvent::FeatureUpdated { ai_request_id, .. }
        | ProjectEvent::FunctionUpdated { ai_request_id, .. } => *ai_request_id = Some(request(n)),
        _ => panic!("no content event: {event:?}"),
    }
    event
}

fn quote_created() -> ProjectEvent {
    ProjectEvent::FunctionCreated {
        project_id: pid(),
        function_id: function_id(7),
        name: "quote".into(),
        description: None,
        language: FunctionLanguage::Python,
        function_code: "def handler(input):\n    return input\n".into(),
        input_schema: None,
        output_schema: None,
        examples: vec![],
        generation_mode: Some(GenerationMode::AiAssisted),
        endpoint_path: "/fn/quote".into(),
        http_method: HttpMethod::Post,
        is_active: true,
        created_at: t(4),
    }
}

const AI_CODE: &str = "def handler(input):\n    return {\"total\": 1}\n";

fn new_code(code: &str) -> AiContent {
    AiContent::UpdateFunction(UpdateFunction {
        function_id: function_id(7),
        changes: FunctionChanges {
            function_code: Some(code.into()),
            ..FunctionChanges::default()
        },
        at: t(5),
    })
}

#[test]
fn an_applied_feature_records_its_ai_request() {
    // Given a project with customers
    let given_events = vec![created(), crud_added(1, "Customers", customer_raw())];
    // When an AI request's proposed feature is applied
    let feature = NewFeature {
        generation_mode: Some(GenerationMode::AiAssisted),
        ..crud(2, "Orders", order_raw())
    };
    let state = given(given_events)
        .when(applied(
            1,
            AiContent::AddFeature(AddFeature { feature, at: t(1) }),
        ))
        // Then the FeatureAdded carries the request, and the state keeps it for the feature
        .then([ai_feature_added(
            with_mode(
                crud_added(2, "Orders", order_raw()),
                GenerationMode::AiAssisted,
            ),
            1,
        )]);
    assert_eq!(
        state.feature(feature_id(2)).unwrap().ai_request_id,
        Some(request(1))
    );
    assert_eq!(state.feature(feature_id(1)).unwrap().ai_request_id, None);
}

#[test]
fn an_owners_edit_after_an_apply_keeps_the_ai_request() {
    // Given a feature whose content an AI request set
    let events = vec![
        created(),
        ai_feature_added(crud_added(1, "Customers", customer_raw()), 3),
    ];
    // When its owner renames it
    let state = given(events)
        .when(update(
            1,
            FeatureChanges {
                name: Some("Clients".into()),
                ..FeatureChanges::default()
            },
        ))
        // Then the event carries no request (it is the owner's), and the state keeps the last one
        .then([feature_updated(
            1,
            Changed {
                name: Some("Clients".into()),
                ..Changed::default()
            },
        )]);
    assert_eq!(
        state.feature(feature_id(1)).unwrap().ai_request_id,
        Some(request(3))
    );
}

#[test]
fn a_feature_added_by_its_owner_has_no_ai_request_even_in_ai_assisted_mode() {
    let state = given([created()])
        .when(add(NewFeature {
            generation_mode: Some(GenerationMode::AiAssisted),
            ..crud(1, "Customers", customer_raw())
        }))
        .then([with_mode(
            crud_added(1, "Customers", customer_raw()),
            GenerationMode::AiAssisted,
        )]);
    assert_eq!(state.feature(feature_id(1)).unwrap().ai_request_id, None);
}

#[test]
fn an_enhancement_records_the_request_and_a_later_one_replaces_it() {
    // Given a feature an AI request enhanced once
    let enhance = |n: u128, name: &str| {
        applied(
            n,
            AiContent::UpdateFeature(UpdateFeature {
                feature_id: feature_id(1),
                changes: FeatureChanges {
                    name: Some(name.into()),
                    generation_mode: Some(Some(GenerationMode::Mixed)),
                    ..FeatureChanges::default()
                },
                at: t(3),
            }),
        )
    };
    let first = with_request(
        feature_updated(
            1,
            Changed {
                name: Some("Clients".into()),
                generation_mode: Some(Some(GenerationMode::Mixed)),
                ..Changed::default()
            },
        ),
        1,
    );
    let state = given([created(), crud_added(1, "Customers", customer_raw())])
        .when(enhance(1, "Clients"))
        .then([first.clone()]);
    assert_eq!(
        state.feature(feature_id(1)).unwrap().ai_request_id,
        Some(request(1))
    );
    // When a second request's enhancement lands, it is the last applied one
    let state = given([created(), crud_added(1, "Customers", customer_raw()), first])
        .when(enhance(2, "Buyers"))
        .then([with_request(
            feature_updated(
                1,
                Changed {
                    name: Some("Buyers".into()),
                    ..Changed::default()
                },
            ),
            2,
        )]);
    assert_eq!(
        state.feature(feature_id(1)).unwrap().ai_request_id,
        Some(request(2))
    );
}

#[test]
fn ai_content_equal_to_the_stored_one_still_records_the_request_once() {
    // Given a function whose code is what the AI proposes
    let events = vec![
        created(),
        crud_added(1, "Customers", customer_raw()),
        quote_created(),
    ];
    // When the proposal is applied, only the request is recorded
    let marker = ProjectEvent::FunctionUpdated {
        project_id: pid(),
        function_id: function_id(7),
        name: None,
        description: None,
        language: None,
        function_code: None,
        input_schema: None,
        output_schema: None,
        examples: None,
        generation_mode: None,
        endpoint_path: None,
        http_method: None,
        is_active: None,
        updated_at: t(5),
        ai_request_id: Some(request(4)),
    };
    let code = "def handler(input):\n    return input\n";
    let state = given(events.clone())
        .when(applied(4, new_code(code)))
        .then([marker.clone()]);
    assert_eq!(
        state.function(function_id(7)).unwrap().ai_request_id,
        Some(request(4))
    );
    // And applying it again records nothing more
    let mut after = events;
    after.push(marker);
    given(after).when(applied(4, new_code(code))).then_nothing();
}

#[test]
fn applied_code_records_the_request_and_an_owners_edit_keeps_it() {
    let events = vec![
        created(),
        crud_added(1, "Customers", customer_raw()),
        quote_created(),
    ];
    let code_updated = |code: &str, at: OffsetDateTime| ProjectEvent::FunctionUpdated {
        project_id: pid(),
        function_id: function_id(7),
        name: None,
        description: None,
        language: None,
        function_code: Some(code.into()),
        input_schema: None,
        output_schema: None,
        examples: None,
        generation_mode: None,
        endpoint_path: None,
        http_method: None,
        is_active: None,
        updated_at: at,
        ai_request_id: None,
    };
    let applied_event = with_request(code_updated(AI_CODE, t(5)), 5);
    given(events.clone())
        .when(applied(5, new_code(AI_CODE)))
        .then([applied_event.clone()]);

    let mut after = events;
    after.push(applied_event);
    let edited = "def handler(input):\n    return {\"total\": 2}\n";
    let state = given(after)
        .when(ProjectCommand::UpdateFunction(UpdateFunction {
            function_id: function_id(7),
            changes: FunctionChanges {
                function_code: Some(edited.into()),
                ..FunctionChanges::default()
            },
            at: t(6),
        }))
        .then([code_updated(edited, t(6))]);
    assert_eq!(
        state.function(function_id(7)).unwrap().ai_request_id,
        Some(request(5))
    );
}

#[test]
fn ai_content_follows_the_owners_rules() {
    // An applied feature is refused exactly as the owner's own command would be
    given([created(), crud_added(1, "Customers", customer_raw())])
        .when(applied(
            1,
            AiContent::AddFeature(AddFeature {
                feature: crud(2, "customers", raw_entity("client", None)),
                at: t(1),
            }),
        ))
        .then_err(ProjectError::FeatureNameTaken {
            name: "customers".into(),
        });
    let refused = given([created(), quote_created()])
        .when(applied(1, new_code("   ")))
        .outcome();
    assert_eq!(invalid_at(refused), ["/function_code"]);
}

#[test]
fn old_events_without_an_ai_request_still_read_and_new_ones_round_trip() {
    // A FeatureAdded stored before AI requests existed has no member, and reads as none
    let mut data = added(1, "Login", FeatureType::Auth, None).to_data();
    assert!(data.get("ai_request_id").is_none());
    let old = ProjectEvent::from_data("FeatureAdded", data.clone()).unwrap();
    assert_eq!(old, added(1, "Login", FeatureType::Auth, None));
    // One with the member reads it back
    data["ai_request_id"] = json!(request(9).to_string());
    let new = ProjectEvent::from_data("FeatureAdded", data.clone()).unwrap();
    assert_eq!(
        new,
        ai_feature_added(added(1, "Login", FeatureType::Auth, None), 9)
    );
    assert_eq!(new.to_data(), data);
}
