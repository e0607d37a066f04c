//! Tests of `generate` as a whole: determinism, safe names, refusals and escaping.

use domain::Limits;
use domain::generation::Target;
use domain::project::{
    CreateProject, FeatureType, GenerationMode, NewFeature, Project, ProjectCommand,
};
use domain::testing::{feature_id, project_id, t0, user_id};
use serde_json::{Value, json};

use super::*;
use crate::escape::{python_str, python_str_formatted};

/// The project folded from a `CreateProject` with `features`, through the domain's own rules.
fn project_with(mode: Option<GenerationMode>, features: Vec<NewFeature>) -> Project {
    let command = ProjectCommand::CreateProject(CreateProject {
        project_id: project_id(1),
        owner_id: user_id(1),
        name: "Shop \"\"\" \\ <b>*é*</b>".into(),
        description: Some("Line one\nline two with `code` and \u{202e}".into()),
        generation_mode: mode,
        features,
        at: t0(),
    });
    let events = Project::default()
        .decide(&command, &Limits::default())
        .unwrap_or_else(|e| panic!("the fixture project is invalid: {e:?}"));
    let mut project = Project::default();
    for event in &events {
        project.evolve(event);
    }
    project
}

fn crud(n: u128, name: &str, schema: Value) -> NewFeature {
    NewFeature::new(feature_id(n), name, FeatureType::Crud).with_schema(schema)
}

fn feature(n: u128, name: &str, feature_type: FeatureType) -> NewFeature {
    NewFeature::new(feature_id(n), name, feature_type)
}

fn shop() -> Vec<NewFeature> {
    vec![
        crud(
            1,
            "Customers \"VIP\"",
            json!({"entity": "customer", "fields": [
                {"name": "name", "type": "string", "required": true, "max_length": 80},
                {"name": "email", "type": "string", "unique": true, "required": true,
                 "pattern": "^[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}$"},
                {"name": "tier", "type": "enum", "values": ["bronze", "gold"], "default": "bronze"},
                {"name": "date", "type": "date"},
                {"name": "profile", "type": "json", "default": {"a\"b": [1, "x\ny"]}}
            ]}),
        ),
        crud(
            2,
            "Orders",
            json!({"entity": "order", "plural": "orders", "fields": [
                {"name": "title", "type": "string", "required": true, "max_length": 120},
                {"name": "total", "type": "decimal", "precision": 12, "scale": 2, "min": 0},
                {"name": "status", "type": "enum", "values": ["new", "paid"], "default": "new"},
                {"name": "code", "type": "string", "unique": true, "pattern": "^[A-Z]{3}-[0-9]{4}$"},
                {"name": "customer_id", "type": "reference", "references": "customer", "required": true},
                {"name": "previous_id", "type": "reference", "references": "order"},
                {"name": "placed_at", "type": "datetime", "default": "2025-01-31T12:00:00.5+02:00"}
            ], "unique": [["customer_id", "title"]]}),
        ),
        NewFeature {
            configuration: Some(json!({"entities": {"customer": "shared_read"}})),
            ..feature(3, "Login", FeatureType::Auth)
        },
        feature(4, "Uploads", FeatureType::FileStorage),
    ]
}

#[test]
fn generating_twice_gives_the_same_bytes() {
    let project = project_with(None, shop());
    let first = generate(&project, 7, Target::PythonFastapi).unwrap();
    let second = generate(&project, 7, Target::PythonFastapi).unwrap();
    assert_eq!(first.sha256, second.sha256);
    assert_eq!(first.zip, second.zip);
    assert_eq!(first.sha256, hex::encode(Sha256::digest(&first.zip)));
    assert_eq!(first.size_bytes, first.zip.len() as u64);
    assert_eq!(first.file_count, first.files.len());
    assert_eq!(read_zip(&first.zip).unwrap(), first.files);
    // The version is part of the output.
    let other = generate(&project, 8, Target::PythonFastapi).unwrap();
    assert_ne!(first.sha256, other.sha256);
}

#[test]
fn the_tree_has_the_app_the_migration_and_the_tests() {
    let artifact = generate(&project_with(None, shop()), 1, Target::PythonFastapi).unwrap();
    for name in [
        "README.md",
        "requirements.txt",
        "requirements-dev.txt",
        "ruff.toml",
        "mypy.ini",
        ".github/workflows/ci.yml",
        "Dockerfile",
        "compose.yaml",
        "app/cli.py",
        "app/logs.py",
        ".env.example",
        "pytest.ini",
        "alembic.ini",
        "alembic/env.py",
        "alembic/versions/0001_initial.py",
        "app/main.py",
        "app/models.py",
        "app/schemas.py",
        "app/crud.py",
        "app/auth.py",
        "app/files.py",
        "app/routers/customer.py",
        "app/routers/order.py",
        "tests/conftest.py",
        "tests/data.py",
        "tests/test_crud_customer.py",
        "tests/test_crud_order.py",
        "tests/test_auth.py",
        "tests/test_files.py",
    ] {
        assert!(artifact.files.contains_key(name), "{name} is missing");
    }
    for name in artifact.files.keys() {
        assert_eq!(archive::unsafe_name(name), None, "{name}");
    }
}

#[test]
fn disabled_features_are_skipped() {
    let mut features = shop();
    let mut jobs = feature(9, "Jobs", FeatureType::BackgroundJobs);
    jobs.is_enabled = false;
    features.push(jobs);
    let mut extra = crud(
        10,
        "Drafts",
        json!({"entity": "draft", "fields": [{"name": "body", "type": "text"}]}),
    );
    extra.is_enabled = false;
    features.push(extra);
    let artifact = generate(&project_with(None, features), 1, Target::PythonFastapi).unwrap();
    assert!(!artifact.files.contains_key("app/routers/draft.py"));
    assert!(!String::from_utf8_lossy(&artifact.files["app/models.py"]).contains("class Draft"));
}

fn refused(project: &Project) -> Vec<String> {
    match generate(project, 1, Target::PythonFastapi) {
        Err(GenerateError::Refused(problems)) => problems,
        other => panic!("expected a refusal, got {:?}", other.map(|a| a.file_count)),
    }
}

#[test]
fn unsupported_feature_types_are_refused() {
    for (feature_type, name) in [
        (FeatureType::BackgroundJobs, "Nightly"),
        (FeatureType::Analytics, "Stats"),
    ] {
        let mut features = shop();
        features.push(feature(20, name, feature_type));
        let problems = refused(&project_with(None, features));
        assert!(
            problems.iter().any(|p| p.contains(name)),
            "{problems:?} does not name {name}"
        );
    }
    // A `custom_function` feature can no longer be created (functions replaced it), but one stored
    // before that stays in its project: generation names it instead of failing on it.
    let mut project = project_with(None, shop());
    let mut legacy = project.features[0].clone();
    legacy.id = feature_id(21);
    legacy.name = "Hook".into();
    legacy.feature_type = FeatureType::CustomFunction;
    legacy.schema_definition = None;
    project.features.push(legacy);
    let problems = refused(&project);
    assert!(
        problems.iter().any(|p| p.contains("Hook")),
        "{problems:?} does not name Hook"
    );
}

fn ai_request(n: u128) -> domain::ids::AiRequestId {
    domain::ids::AiRequestId::from_uuid(uuid::Uuid::from_u128(0xa1_0000 + n))
}

#[test]
fn ai_assisted_features_generate_only_with_applied_ai_content() {
    // The project's mode or a feature's own: without applied AI content, refused naming it
    let problems = refused(&project_with(Some(GenerationMode::AiAssisted), shop()));
    assert!(
        problems
            .iter()
            .any(|p| p.contains("Customers") && p.contains("apply an AI request first")),
        "{problems:?}"
    );
    let mut features = shop();
    features[0].generation_mode = Some(GenerationMode::AiAssisted);
    let mut project = project_with(None, features);
    let problems = refused(&project);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("feature `Customers \"VIP\"`"),
        "{problems:?}"
    );
    // With applied AI content it generates, and which request applied it changes no byte
    project.features[0].ai_request_id = Some(ai_request(1));
    let first = generate(&project, 1, Target::PythonFastapi).unwrap();
    project.features[0].ai_request_id = Some(ai_request(2));
    let second = generate(&project, 1, Target::PythonFastapi).unwrap();
    assert_eq!(first.sha256, second.sha256);
}

#[test]
fn mixed_projects_and_features_always_generate() {
    generate(
        &project_with(Some(GenerationMode::Mixed), shop()),
        1,
        Target::PythonFastapi,
    )
    .unwrap();
    let mut features = shop();
    features[0].generation_mode = Some(GenerationMode::Mixed);
    generate(&project_with(None, features), 1, Target::PythonFastapi).unwrap();
}

#[test]
fn a_project_without_enabled_features_is_refused() {
    refused(&project_with(None, vec![]));
    let mut features = shop();
    for f in &mut features {
        f.is_enabled = false;
    }
    refused(&project_with(None, features));
}

#[test]
fn a_pattern_no_value_can_satisfy_is_refused_naming_the_field() {
    let features = vec![crud(
        1,
        "Codes",
        json!({"entity": "code", "fields": [
            {"name": "value", "type": "string", "min_length": 5, "pattern": "^[A-Z]{3}$"}
        ]}),
    )];
    let problems = refused(&project_with(None, features));
    assert!(
        problems
            .iter()
            .any(|p| p.contains("Codes") && p.contains("value") && p.contains("pattern")),
        "{problems:?}"
    );
}

#[test]
fn required_references_in_a_cycle_are_refused() {
    let features = vec![
        crud(
            1,
            "A",
            json!({"entity": "alpha", "fields": [
                {"name": "beta_id", "type": "reference", "references": "beta", "required": true}]}),
        ),
        crud(
            2,
            "B",
            json!({"entity": "beta", "fields": [
                {"name": "alpha_id", "type": "reference", "references": "alpha", "required": true}]}),
        ),
    ];
    let problems = refused(&project_with(None, features));
    assert!(problems[0].contains("cycle"), "{problems:?}");
    let features = vec![crud(
        1,
        "Tree",
        json!({"entity": "node", "fields": [
            {"name": "parent_id", "type": "reference", "references": "node", "required": true}]}),
    )];
    refused(&project_with(None, features));
}

#[test]
fn optional_reference_cycles_are_generated_with_deferred_foreign_keys() {
    let features = vec![
        crud(
            1,
            "A",
            json!({"entity": "alpha", "fields": [
                {"name": "beta_id", "type": "reference", "references": "beta"}]}),
        ),
        crud(
            2,
            "B",
            json!({"entity": "beta", "fields": [
                {"name": "alpha_id", "type": "reference", "references": "alpha", "required": true}]}),
        ),
    ];
    let artifact = generate(&project_with(None, features), 1, Target::PythonFastapi).unwrap();
    let migration = String::from_utf8_lossy(&artifact.files["alembic/versions/0001_initial.py"]);
    assert!(migration.contains("op.create_foreign_key("), "{migration}");
    assert!(migration.contains("if sqlite"), "{migration}");
    assert!(migration.contains("else []"), "{migration}");
    // Betas (required parent alpha) come after alphas.
    assert!(migration.find("\"alphas\",").unwrap() < migration.find("\"betas\",").unwrap());
}

#[test]
fn colliding_routes_are_refused() {
    let mut features = shop();
    features.push(crud(
        30,
        "File records",
        json!({"entity": "file", "fields": [{"name": "label", "type": "text"}]}),
    ));
    let problems = refused(&project_with(None, features));
    assert!(
        problems.iter().any(|p| p.contains("/api/files")),
        "{problems:?}"
    );
}

#[test]
fn user_strings_reach_python_only_as_escaped_literals() {
    let project = project_with(None, shop());
    let artifact = generate(&project, 1, Target::PythonFastapi).unwrap();
    let main = String::from_utf8_lossy(&artifact.files["app/main.py"]);
    assert!(main.contains(&python_str_formatted(&project.name)));
    assert!(main.contains(&python_str_formatted(
        project.description.as_deref().unwrap()
    )));
    assert!(main.contains(&python_str_formatted("Customers \"VIP\"")));
    assert!(
        !main.contains("\"Customers \"VIP\"\""),
        "no quote ends a literal early"
    );
    let schemas = String::from_utf8_lossy(&artifact.files["app/schemas.py"]);
    assert!(schemas.contains(&python_str("^[A-Z]{3}-[0-9]{4}$")));
    assert!(schemas.contains(&python_str_formatted(r#"{"a\"b":[1,"x\ny"]}"#)));
    // Every generated file is ASCII apart from the README: no bidi or line-separator tricks.
    for (name, content) in &artifact.files {
        if name.ends_with(".py") {
            assert!(content.is_ascii(), "{name} holds non-ASCII bytes");
        }
    }
    let readme = String::from_utf8_lossy(&artifact.files["README.md"]);
    assert!(readme.starts_with("# Shop \\\"\\\"\\\" \\\\ &lt;b&gt;\\*é\\*&lt;/b&gt;\n"));
    assert!(!readme.contains("<b>"));
}

#[test]
fn defaults_become_python_values() {
    let artifact = generate(&project_with(None, shop()), 1, Target::PythonFastapi).unwrap();
    let schemas = String::from_utf8_lossy(&artifact.files["app/schemas.py"]);
    assert!(
        schemas.contains("= _dt.datetime.fromisoformat(\"2025-01-31T10:00:00.500000+00:00\")"),
        "{schemas}"
    );
    // A default makes the field NOT NULL: null is refused, and the column has a server default.
    assert!(schemas.contains("tier: _Literal[\"bronze\", \"gold\"] = \"bronze\""));
    assert!(schemas.contains("default_factory=lambda: _json.loads("));
    let migration = String::from_utf8_lossy(&artifact.files["alembic/versions/0001_initial.py"]);
    assert!(
        migration.contains(
            "sa.Column(\"tier\", sa.String(6), nullable=False, server_default=sa.text(\"'bronze'\")),"
        ),
        "{migration}"
    );
    assert!(
        migration.contains("server_default=sa.text(\"'2025-01-31 10:00:00.500000+00:00'\")"),
        "{migration}"
    );
}

#[test]
fn no_generated_file_holds_a_usable_secret() {
    let artifact = generate(&project_with(None, shop()), 1, Target::PythonFastapi).unwrap();
    let config = String::from_utf8_lossy(&artifact.files["app/config.py"]);
    assert!(config.contains("app_env: str = \"production\""), "{config}");
    assert!(
        config.contains("jwt_secret: str = dataclasses.field(default=\"\""),
        "{config}"
    );
    let example = String::from_utf8_lossy(&artifact.files[".env.example"]);
    let placeholder = example
        .lines()
        .find_map(|l| l.strip_prefix("JWT_SECRET="))
        .expect("a JWT_SECRET line");
    assert!(
        config.contains(&format!("\"{placeholder}\"")),
        "the example's placeholder is one production refuses"
    );
    for (name, content) in &artifact.files {
        let text = String::from_utf8_lossy(content);
        assert!(!text.contains("development-only-secret"), "{name}");
        if name == "Dockerfile" || name.ends_with(".yml") || name.ends_with(".yaml") {
            assert!(!text.contains("JWT_SECRET="), "{name} sets a secret");
            assert!(
                !text.to_lowercase().contains("app_env=development"),
                "{name}"
            );
        }
    }
}

#[test]
fn the_auth_configuration_reaches_the_app() {
    let artifact = generate(&project_with(None, shop()), 1, Target::PythonFastapi).unwrap();
    let customers = String::from_utf8_lossy(&artifact.files["app/routers/customer.py"]);
    let orders = String::from_utf8_lossy(&artifact.files["app/routers/order.py"]);
    assert!(
        customers.contains("access=_crud.SHARED_READ,"),
        "{customers}"
    );
    assert!(orders.contains("access=_crud.OWNER_SCOPED,"), "{orders}");
    assert!(orders.contains(
        "_crud.Reference(\"customer_id\", _models.Customer, \"customer\", _crud.SHARED_READ),"
    ));
    let models = String::from_utf8_lossy(&artifact.files["app/models.py"]);
    assert_eq!(
        models.matches("owner_id: _orm.Mapped[_uuid.UUID]").count(),
        2
    );
    assert!(artifact.files.contains_key("app/cli.py"));
}

#[test]
fn a_stored_project_with_an_owner_id_field_is_refused_naming_it() {
    let mut project = project_with(None, shop());
    let mut schema = project.features[0]
        .entity()
        .expect("a crud feature")
        .clone();
    let mut field = schema.fields[0].clone();
    field.name = "owner_id".into();
    schema.fields.push(field);
    project.features[0].schema_definition = Some(schema);
    let problems = refused(&project);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("`owner_id`") && problems[0].contains("customer"),
        "{problems:?}"
    );
}

#[test]
fn long_constraint_names_are_cut_to_63_bytes_and_stay_distinct() {
    let long = "a".repeat(60);
    let features = vec![crud(
        1,
        "Long",
        json!({"entity": "thing", "plural": long.clone(), "fields": [
            {"name": format!("{}_one", "b".repeat(55)), "type": "string", "unique": true},
            {"name": format!("{}_two", "b".repeat(55)), "type": "string", "unique": true}
        ]}),
    )];
    let artifact = generate(&project_with(None, features), 1, Target::PythonFastapi).unwrap();
    let migration = String::from_utf8_lossy(&artifact.files["alembic/versions/0001_initial.py"]);
    let names: Vec<&str> = migration
        .split("name=\"")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .collect();
    assert!(names.len() >= 5, "{names:?}");
    for name in &names {
        assert!(name.len() <= 63, "{name}");
    }
    let mut distinct = names.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), names.len(), "{names:?}");
}

/// Every field kind, names that shadow Python and SQLAlchemy helpers, tight capacities.
fn torture() -> Vec<NewFeature> {
    vec![
        crud(
            1,
            "Base things",
            json!({"entity": "base", "fields": [
                {"name": "date", "type": "date", "required": true},
                {"name": "type", "type": "string", "max_length": 1},
                {"name": "match", "type": "enum", "values": ["self", "TRUE", "x"]},
                {"name": "decimal", "type": "decimal", "precision": 38, "scale": 10},
                {"name": "uuid", "type": "uuid", "default": "123e4567-e89b-12d3-a456-426614174000"},
                {"name": "ratio", "type": "float", "min": -1e300, "max": 1e300, "default": 0.5},
                {"name": "count", "type": "integer"},
                {"name": "flag", "type": "boolean", "unique": true, "required": true},
                {"name": "blob", "type": "json", "required": true},
                {"name": "note", "type": "text"},
                {"name": "re", "type": "string", "pattern": "(?i)^x+$", "min_length": 2, "max_length": 4},
                {"name": "sa", "type": "string", "min_length": 3, "max_length": 3},
                {"name": "at", "type": "datetime", "unique": true},
                {"name": "mapped_column", "type": "integer", "min": -5, "max": 5, "default": -5},
                {"name": "selected", "type": "string", "pattern": "\\p{Greek}{2}"}
            ]}),
        ),
        crud(
            2,
            "Apps",
            json!({"entity": "app", "fields": [
                {"name": "base_id", "type": "reference", "references": "base", "required": true, "unique": true},
                {"name": "session", "type": "string", "required": true, "default": "s"},
                {"name": "response", "type": "date", "default": "2024-02-29"}
            ]}),
        ),
        crud(
            3,
            "Nones",
            json!({"entity": "none", "fields": [
                {"name": "parent_id", "type": "reference", "references": "none"},
                {"name": "app_id", "type": "reference", "references": "app"}
            ], "unique": [["parent_id", "app_id"]]}),
        ),
    ]
}

#[test]
fn names_that_shadow_helpers_generate() {
    let artifact = generate(&project_with(None, torture()), 1, Target::PythonFastapi).unwrap();
    let models = String::from_utf8_lossy(&artifact.files["app/models.py"]);
    assert!(models.contains("class None_(_Base):"));
    assert!(models.contains("class Base(_Base):"));
}

#[test]
#[ignore]
fn write_an_artifact_for_inspection() {
    let dir = std::env::var("DUMP_DIR").unwrap();
    let features = match std::env::var("DUMP_PROJECT").as_deref() {
        Ok("torture") => torture(),
        Ok("files") => vec![feature(1, "Uploads", FeatureType::FileStorage)],
        Ok("auth") => vec![feature(1, "Login", FeatureType::Auth)],
        _ => shop(),
    };
    let artifact = generate(&project_with(None, features), 1, Target::PythonFastapi).unwrap();
    for (name, content) in read_zip(&artifact.zip).unwrap() {
        let path = std::path::Path::new(&dir).join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
}

#[test]
fn a_job_sent_to_the_child_process_as_json_generates_the_same_bytes() {
    for features in [shop(), torture()] {
        let project = project_with(None, features);
        let direct = generate(&project, 3, Target::PythonFastapi).unwrap();
        let job = child::ChildJob {
            project,
            project_version: 3,
            target: Target::PythonFastapi,
        };
        let sent: child::ChildJob =
            serde_json::from_slice(&serde_json::to_vec(&job).unwrap()).unwrap();
        assert_eq!(sent, job);
        let through_child = generate(&sent.project, sent.project_version, sent.target).unwrap();
        assert_eq!(through_child.sha256, direct.sha256);
        let back = Artifact::from_zip(through_child.zip.clone()).unwrap();
        assert_eq!(back, direct);
    }
}

#[test]
fn a_text_field_stored_with_a_huge_max_length_generates_without_allocating_it() {
    let mut project = project_with(
        None,
        vec![crud(
            1,
            "Notes",
            json!({"entity": "note", "fields": [{"name": "body", "type": "text"}]}),
        )],
    );
    // As stored before text lengths were limited (up to u32::MAX was accepted).
    let schema = project.features[0].schema_definition.as_mut().unwrap();
    schema.fields[0].kind = domain::crud_schema::FieldKind::Text {
        max_length: Some(1_000_000_000),
    };
    let artifact = generate(&project, 1, Target::PythonFastapi).unwrap();
    assert!(artifact.files.values().all(|f| f.len() < 1_000_000));
    for (name, content) in &artifact.files {
        let text = String::from_utf8_lossy(content);
        assert!(
            !text.contains("1000000001"),
            "{name} sends a 1e9-character value"
        );
    }
}

#[test]
fn the_file_storage_and_registration_configuration_become_the_apps_defaults() {
    let features = vec![
        NewFeature {
            configuration: Some(json!({"registration": "closed"})),
            ..feature(1, "Login", FeatureType::Auth)
        },
        NewFeature {
            configuration: Some(
                json!({"max_size_bytes": 2048, "allowed_content_types": ["image/png", "Text/CSV"]}),
            ),
            ..feature(2, "Uploads", FeatureType::FileStorage)
        },
    ];
    let artifact = generate(&project_with(None, features), 1, Target::PythonFastapi).unwrap();
    let config = String::from_utf8_lossy(&artifact.files["app/config.py"]);
    assert!(
        config.contains("allow_registration: bool = False"),
        "{config}"
    );
    assert!(config.contains("file_max_bytes: int = 2048"), "{config}");
    assert!(
        config.contains("_DEFAULT_TYPES = (\n    \"image/png\",\n    \"text/csv\",\n)"),
        "{config}"
    );
    let example = String::from_utf8_lossy(&artifact.files[".env.example"]);
    assert!(example.contains("ALLOW_REGISTRATION=false"), "{example}");
    assert!(example.contains("FILE_MAX_BYTES=2048\n"), "{example}");
    assert!(
        example.contains("FILE_ALLOWED_TYPES=image/png,text/csv\n"),
        "{example}"
    );
}

#[test]
fn a_table_with_only_its_primary_key_has_its_table_args_on_one_line_as_ruff_format_writes_them() {
    // given: no unique, CHECK, index or owner
    let notes = crud(
        1,
        "Notes",
        json!({"entity": "note", "fields": [{"name": "body", "type": "text", "required": true}]}),
    );

    // when
    let artifact = generate(&project_with(None, vec![notes]), 1, Target::PythonFastapi).unwrap();

    // then: a one-item tuple's comma is not a magic trailing comma
    let models = String::from_utf8(artifact.files["app/models.py"].clone()).unwrap();
    assert!(
        models.contains(
            "    __table_args__ = (_sa.PrimaryKeyConstraint(\"id\", name=\"pk_notes\"),)\n\n"
        ),
        "{models}"
    );
}
