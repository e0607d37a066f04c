//! Project, feature and member writes end to end.

use serde_json::json;
use tests::TestApp;

#[tokio::test]
async fn a_project_created_with_features_is_one_atomic_append() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let created = app
        .post(
            "/projects",
            Some(&owner.access_token),
            json!({"name": "Shop", "description": "orders and customers", "features": [
                {"name": "Customers", "feature_type": "crud", "schema_definition":
                    {"entity": "customer", "fields": [{"name": "email", "type": "string", "required": true}]}},
                {"name": "Orders", "feature_type": "crud", "schema_definition":
                    {"entity": "order", "plural": "orders", "fields": [
                        {"name": "title", "type": "string", "required": true, "max_length": 120},
                        {"name": "customer_id", "type": "reference", "references": "customer", "required": true}]}},
                {"name": "Login", "feature_type": "auth"}
            ]}),
        )
        .await
        .expect(201);
    assert_eq!(created.body["version"], 4);
    assert_eq!(created.header("etag").as_deref(), Some("\"4\""));
    let id = created.body["id"].as_str().expect("id").to_owned();
    assert_eq!(
        created.header("location"),
        Some(format!("/api/v1/projects/{id}"))
    );
    assert_eq!(app.event_count().await, 2 + 4);
}
