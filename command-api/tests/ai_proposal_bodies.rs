//! An AI proposal's bodies are exactly what the feature routes take: each deserialises as the route's own body type, with the proposal's mode.

use command_api::project_routes::{FeatureInput, UpdateFeatureRequest};
use domain::ai::proposal::{ProposalKind, parse};
use domain::project::{FeatureType, GenerationMode};
use serde_json::{Value, json};

fn field(name: &str, kind: &str, references: Value) -> Value {
    json!({"name": name, "type": kind, "required": true, "unique": null, "default": null,
        "min_length": null, "max_length": 80, "pattern": null, "min": null, "max": null,
        "precision": null, "scale": null, "values": null, "references": references})
}

fn entity(name: &str, fields: Vec<Value>) -> Value {
    json!({"entity": name, "plural": null, "fields": fields, "unique": null})
}

#[test]
fn a_generate_config_proposals_features_are_post_feature_bodies() {
    // Given a model's strict answer with a crud, an auth and a file_storage feature
    let answer = json!({"features": [
        {"name": "Customers", "feature_type": "crud", "generation_mode": "ai_assisted",
         "configuration": null, "is_enabled": null,
         "schema_definition": entity("customer", vec![field("email", "string", Value::Null)])},
        {"name": "Login", "feature_type": "auth", "generation_mode": "ai_assisted",
         "schema_definition": null, "is_enabled": true,
         "configuration": {"registration": "open", "max_size_bytes": null,
            "allowed_content_types": null,
            "entities": [{"entity": "customer", "access": "shared_read"}]}},
        {"name": "Uploads", "feature_type": "file_storage", "generation_mode": "ai_assisted",
         "schema_definition": null, "is_enabled": null,
         "configuration": {"registration": null, "entities": null, "max_size_bytes": 1024,
            "allowed_content_types": ["image/png"]}},
    ]});
    // When it is parsed and stored
    let stored = parse(ProposalKind::GenerateConfig, &answer)
        .expect("a valid answer")
        .to_value();
    // Then each proposed feature is a body POST /projects/{id}/features takes, in ai_assisted mode
    let bodies: Vec<FeatureInput> = stored["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| serde_json::from_value(f.clone()).expect("a POST feature body"))
        .collect();
    assert_eq!(bodies.len(), 3);
    for body in &bodies {
        assert_eq!(body.generation_mode, Some(GenerationMode::AiAssisted));
    }
    assert_eq!(bodies[1].feature_type, FeatureType::Auth);
    assert_eq!(
        bodies[1].configuration,
        Some(json!({"registration": "open", "entities": {"customer": "shared_read"}}))
    );
    assert_eq!(bodies[1].is_enabled, Some(true));
    assert_eq!(
        bodies[0].schema_definition,
        Some(json!({"entity": "customer", "fields": [
            {"name": "email", "type": "string", "required": true, "max_length": 80}]}))
    );
}

#[test]
fn an_enhance_config_proposals_changes_are_a_put_feature_body() {
    let answer = json!({"feature_id": "0192f0c1-7a2b-7c3d-8e4f-5a6b7c8d9e0f",
        "rationale": "orders need a customer",
        "changes": {"name": "Clients", "generation_mode": "mixed", "configuration": null,
            "is_enabled": null,
            "schema_definition": entity("customer", vec![field("email", "string", Value::Null)])}});
    let stored = parse(ProposalKind::EnhanceConfig, &answer)
        .expect("a valid answer")
        .to_value();
    let body: UpdateFeatureRequest =
        serde_json::from_value(stored["changes"].clone()).expect("a PUT feature body");
    assert_eq!(body.name, Some(Some("Clients".to_owned())));
    assert_eq!(body.generation_mode, Some(Some(GenerationMode::Mixed)));
    assert_eq!(body.feature_type, None);
    assert_eq!(body.configuration, None);
    assert!(matches!(
        body.schema_definition,
        Some(Some(Value::Object(_)))
    ));
}
