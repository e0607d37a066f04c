//! HTTP hygiene of `backforge serve`: a known path asked with another method is 405 with `Allow`,
//! an unknown path 404, both problem documents; the served OpenAPI document gives every operation
//! its answers (errors as problem documents), its headers and its field constraints, which is what
//! the schemathesis run in `.ci/run` checks the server against.

use reqwest::Method;
use serde_json::Value;
use tests::TestDatabase;
use tests::process::Backforge;

struct Serve {
    app: Backforge,
    _db: TestDatabase,
}

async fn serve() -> Serve {
    let db = TestDatabase::create().await.expect("test database");
    let app = Backforge::start("serve", &db.url, &[]).await;
    Serve { app, _db: db }
}

#[tokio::test]
async fn a_known_path_asked_with_another_method_is_405_with_allow_and_an_unknown_path_is_404() {
    let s = serve().await;
    let app = &s.app;
    let id = uuid::Uuid::new_v4();
    let project = format!("/projects/{id}");
    let feature = format!("/projects/{id}/features/{}", uuid::Uuid::new_v4());
    let cases: Vec<(Method, &str, &str)> = vec![
        // Both APIs serve this path: the query side GET, the command side PUT and DELETE.
        (Method::PATCH, &project, "DELETE, GET, PUT"),
        (Method::POST, &project, "DELETE, GET, PUT"),
        (Method::DELETE, "/projects", "GET, POST"),
        (Method::POST, "/auth/profile", "GET, PUT"),
        (Method::GET, "/auth/login", "POST"),
        (Method::POST, &feature, "DELETE, GET, PUT"),
        (Method::PUT, "/openapi.json", "GET"),
        (Method::POST, "//health", "GET"),
        (Method::DELETE, "//metrics", "GET"),
        // NormalizePath runs first: a trailing slash names the same route.
        (Method::PATCH, "/projects/", "GET, POST"),
    ];
    for (method, path, allow) in cases {
        let answer = app.send(method.clone(), path, None, None, &[]).await;
        assert_eq!(
            answer.status.as_u16(),
            405,
            "{method} {path}: {}",
            answer.body
        );
        assert_eq!(
            answer.header("allow").as_deref(),
            Some(allow),
            "{method} {path}"
        );
        assert_eq!(
            answer.body["type"], "https://backforge.dev/problems/method-not-allowed",
            "{method} {path}: {}",
            answer.body
        );
    }
    for (method, path) in [
        (Method::GET, "/no/such/route"),
        (Method::POST, "/projects/a/b/c/d"),
        (Method::GET, "//nothing"),
        (Method::DELETE, "//api/v2/projects"),
    ] {
        let answer = app.send(method.clone(), path, None, None, &[]).await;
        assert_eq!(answer.status.as_u16(), 404, "{method} {path}");
        assert_eq!(answer.header("allow"), None, "{method} {path}");
        assert_eq!(
            answer.body["type"], "https://backforge.dev/problems/not-found",
            "{method} {path}"
        );
    }
    // A route's own method still reaches its handler.
    app.get(&project, None).await.expect(401);
}

/// The operations of the document: (method, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                out.push((method.clone(), path.clone(), operation.clone()));
            }
        }
    }
    out
}

fn header_parameters(operation: &Value) -> Vec<String> {
    operation["parameters"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter(|p| p["in"] == "header")
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn the_openapi_document_gives_every_operation_its_errors_headers_and_constraints() {
    let s = serve().await;
    let doc = s.app.get("/openapi.json", None).await.expect(200).body;
    let text = doc.to_string();
    let outside = ["sha", "red/"].concat();
    assert!(!text.contains(&outside), "the document points outside");
    assert!(
        !text.replace("docs/api.md", "").contains("API.md"),
        "the document names a reference that is not in the repository"
    );

    // The problem document: `type` is the enum of every documented problem type.
    let problem = &doc["components"]["schemas"]["Problem"];
    let types: Vec<&str> = problem["properties"]["type"]["enum"]
        .as_array()
        .expect("the problem type is an enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for slug in [
        "malformed-request",
        "not-found",
        "method-not-allowed",
        "validation-failed",
        "precondition-failed",
        "rate-limited",
        "internal",
    ] {
        assert!(
            types.contains(&format!("https://backforge.dev/problems/{slug}").as_str()),
            "{slug} is not in {types:?}"
        );
    }

    let api_operations: Vec<_> = operations(&doc)
        .into_iter()
        .filter(|(_, path, _)| path.starts_with("/api/v1/"))
        .collect();
    assert!(api_operations.len() >= 25, "{}", api_operations.len());
    for (method, path, operation) in &api_operations {
        let responses = operation["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|code| code.starts_with('2')),
            "{method} {path} has no success answer"
        );
        for code in ["500", "503"] {
            assert!(responses.contains_key(code), "{method} {path} lacks {code}");
        }
        if operation["security"].is_array() {
            assert!(responses.contains_key("401"), "{method} {path} lacks 401");
        }
        if operation["requestBody"].is_object() {
            for code in ["400", "413", "415", "422"] {
                assert!(responses.contains_key(code), "{method} {path} lacks {code}");
            }
        }
        for (code, response) in responses {
            let status: u16 = code.parse().expect("numeric status");
            if status >= 400 {
                assert!(
                    response["content"]["application/problem+json"]["schema"].is_object(),
                    "{method} {path} {code} is not a problem document: {response}"
                );
            }
            if status == 503 {
                assert!(
                    response["headers"]["Retry-After"].is_object(),
                    "{method} {path} 503 lacks Retry-After"
                );
            }
            if (200..300).contains(&status) && status != 204 {
                assert!(
                    response["content"].is_object(),
                    "{method} {path} {code} has no schema"
                );
            }
        }
        if *method == "get" && path.as_str() != "/api/v1/openapi.json" {
            assert!(
                header_parameters(operation).contains(&"Backforge-Min-Position".to_owned()),
                "{method} {path} lacks Backforge-Min-Position"
            );
        }
    }

    let op = |method: &str, path: &str| doc["paths"][path][method].clone();
    let get_project = op("get", "/api/v1/projects/{id}");
    assert!(header_parameters(&get_project).contains(&"If-None-Match".to_owned()));
    assert!(get_project["responses"]["304"].is_object());
    assert!(get_project["responses"]["200"]["headers"]["ETag"].is_object());
    let put_project = op("put", "/api/v1/projects/{id}");
    for header in ["If-Match", "Idempotency-Key"] {
        assert!(
            header_parameters(&put_project).contains(&header.to_owned()),
            "PUT /projects/{{id}} lacks {header}"
        );
    }
    let create = op("post", "/api/v1/projects");
    assert!(header_parameters(&create).contains(&"Idempotency-Key".to_owned()));
    for header in ["Location", "ETag", "Backforge-Position"] {
        assert!(
            create["responses"]["201"]["headers"][header].is_object(),
            "POST /projects 201 lacks {header}"
        );
    }
    assert!(
        op("post", "/api/v1/auth/login")["responses"]["429"]["headers"]["Retry-After"].is_object()
    );

    // `limit` is 1–200, as the server enforces.
    let limit = op("get", "/api/v1/projects")["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "limit")
        .cloned()
        .expect("limit");
    assert_eq!(limit["schema"]["minimum"], 1, "{limit}");
    assert_eq!(limit["schema"]["maximum"], 200, "{limit}");

    // Field constraints and enums come from the domain.
    let schemas = &doc["components"]["schemas"];
    let register = &schemas["RegisterRequest"]["properties"];
    assert_eq!(register["password"]["minLength"], 10, "{register}");
    assert_eq!(register["password"]["maxLength"], 128, "{register}");
    assert_eq!(register["email"]["maxLength"], 254, "{register}");
    assert_eq!(register["name"]["maxLength"], 100, "{register}");
    let feature = &schemas["FeatureInput"]["properties"];
    let feature_types = feature["feature_type"]["enum"]
        .as_array()
        .expect("feature_type is an enum");
    assert_eq!(feature_types.len(), 6, "{feature_types:?}");
    assert!(feature_types.contains(&Value::from("crud")));
    assert_eq!(
        feature["schema_definition"]["$ref"],
        "#/components/schemas/SchemaDefinition"
    );
    // One named GenerationMode, so a generated client has one type for it.
    assert_eq!(
        schemas["CreateProjectRequest"]["properties"]["generation_mode"]["$ref"],
        "#/components/schemas/GenerationMode"
    );
    assert_eq!(
        schemas["GenerationMode"]["enum"],
        serde_json::json!(["manual", "ai_assisted", "mixed"])
    );
    assert_eq!(
        schemas["MemberRequest"]["properties"]["role"]["enum"],
        serde_json::json!(["viewer"])
    );
    assert_eq!(
        schemas["GenerationRequest"]["properties"]["target"]["enum"],
        serde_json::json!(["python-fastapi"])
    );
    // The schema language is a schema: an entity with typed fields, one variant per type.
    let definition = &schemas["SchemaDefinition"];
    assert_eq!(definition["additionalProperties"], false, "{definition}");
    for key in ["entity", "plural", "fields", "unique"] {
        assert!(
            definition["properties"][key].is_object(),
            "{key}: {definition}"
        );
    }
    let variants = schemas["FieldDefinition"]["oneOf"]
        .as_array()
        .expect("a field is one of its types");
    assert_eq!(variants.len(), 12);
    let string_field = variants
        .iter()
        .find(|v| v["properties"]["type"]["enum"] == serde_json::json!(["string"]))
        .expect("the string variant");
    for option in [
        "min_length",
        "max_length",
        "pattern",
        "required",
        "unique",
        "default",
    ] {
        assert!(
            string_field["properties"][option].is_object(),
            "string fields take {option}"
        );
    }
}
