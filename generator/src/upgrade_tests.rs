//! Tests of the migration chain: `backforge/model.json`, generation on a base, and bases from
//! generators that wrote no model.

use domain::generation::Target;
use domain::ids::GenerationId;
use domain::project::{CreateProject, FeatureType, NewFeature, Project, ProjectCommand};
use domain::testing::{feature_id, project_id, t0, user_id};
use domain::{Decider, Limits};
use serde_json::{Value, json};

use super::*;
use crate::migrations::model::{DbModel, from_initial_migration};

fn project(features: Vec<NewFeature>) -> Project {
    let command = ProjectCommand::CreateProject(CreateProject {
        project_id: project_id(1),
        owner_id: user_id(1),
        name: "Shop".into(),
        description: None,
        generation_mode: None,
        features,
        at: t0(),
    });
    let events = Project::default().decide(&command, &Limits::default());
    Project::fold(&events.expect("the fixture project is valid"))
}

fn crud(n: u128, name: &str, schema: Value) -> NewFeature {
    NewFeature::new(feature_id(n), name, FeatureType::Crud).with_schema(schema)
}

fn auth() -> NewFeature {
    NewFeature::new(feature_id(9), "Login", FeatureType::Auth)
}

/// The first schema: customers with an enum, an optional reference cycle, auth.
fn before() -> Vec<NewFeature> {
    vec![
        crud(
            1,
            "Customers",
            json!({"entity": "customer", "fields": [
                {"name": "name", "type": "string", "required": true, "max_length": 80},
                {"name": "tier", "type": "enum", "values": ["bronze", "gold"], "default": "bronze"},
                {"name": "nickname", "type": "string", "max_length": 20},
                {"name": "best_order_id", "type": "reference", "references": "order"}
            ]}),
        ),
        crud(
            2,
            "Orders",
            json!({"entity": "order", "fields": [
                {"name": "title", "type": "string", "required": true, "max_length": 120},
                {"name": "customer_id", "type": "reference", "references": "customer", "required": true}
            ]}),
        ),
        auth(),
    ]
}

/// The second: a required field with a default, an enum value, a dropped field, a composite
/// unique and a new entity with a reference.
fn after() -> Vec<NewFeature> {
    vec![
        crud(
            1,
            "Customers",
            json!({"entity": "customer", "fields": [
                {"name": "name", "type": "string", "required": true, "max_length": 80},
                {"name": "tier", "type": "enum", "values": ["bronze", "gold", "platinum"], "default": "bronze"},
                {"name": "country", "type": "string", "required": true, "max_length": 2, "default": "NL"},
                {"name": "best_order_id", "type": "reference", "references": "order"}
            ], "unique": [["name", "country"]]}),
        ),
        crud(
            2,
            "Orders",
            json!({"entity": "order", "fields": [
                {"name": "title", "type": "string", "required": true, "max_length": 120},
                {"name": "customer_id", "type": "reference", "references": "customer", "required": true}
            ]}),
        ),
        crud(
            3,
            "Notes",
            json!({"entity": "note", "fields": [
                {"name": "text", "type": "text", "required": true},
                {"name": "customer_id", "type": "reference", "references": "customer", "required": true}
            ]}),
        ),
        auth(),
    ]
}

fn text(artifact: &Artifact, path: &str) -> String {
    String::from_utf8(artifact.files[path].clone()).unwrap()
}

fn model(artifact: &Artifact) -> DbModel {
    serde_json::from_slice(&artifact.files["backforge/model.json"]).unwrap()
}

fn generation(n: u128) -> GenerationId {
    GenerationId::from_uuid(uuid::Uuid::from_u128(
        0x0195_b2a4_1b2c_7d3e_8f40_0000_0000_0000 + n,
    ))
}

#[test]
fn every_zip_carries_the_model_its_initial_migration_creates() {
    let artifact = generate(&project(before()), 1, Target::PythonFastapi).unwrap();
    let model = model(&artifact);
    assert_eq!(model.alembic_head, "0001");
    let names: Vec<&str> = model.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["_auth_users", "_auth_refresh_tokens", "customers", "orders"]
    );
    let customers = model.table("customers").unwrap();
    let tier = customers.column("tier").unwrap();
    assert_eq!(
        (
            tier.sa_type.as_str(),
            tier.nullable,
            tier.server_default.as_deref()
        ),
        ("sa.String(6)", false, Some("'bronze'"))
    );
    assert!(!customers.column("owner_id").unwrap().nullable);
    assert!(
        customers
            .checks
            .iter()
            .any(|c| c.sql.contains("'bronze', 'gold'") || c.sql.contains("'bronze','gold'")),
        "{:?}",
        customers.checks
    );
    // The key of the optional cycle (added late on PostgreSQL) is there once.
    let keys: Vec<&str> = customers
        .foreign_keys
        .iter()
        .map(|k| k.referred_table.as_str())
        .collect();
    assert_eq!(
        keys.iter().filter(|t| **t == "orders").count(),
        1,
        "{keys:?}"
    );
    assert_eq!(
        model,
        from_initial_migration(&text(&artifact, "alembic/versions/0001_initial.py"), "0001")
            .unwrap()
    );
}

#[test]
fn a_generation_on_a_base_keeps_its_migrations_and_adds_one() {
    let first = generate(&project(before()), 1, Target::PythonFastapi).unwrap();
    let base = Base::from_zip(&first.zip).unwrap();
    let on = |base: &Base, id: GenerationId| {
        generate_on(
            &project(after()),
            2,
            Target::PythonFastapi,
            Some((base, id)),
        )
        .unwrap()
    };
    let second = on(&base, generation(1));
    assert_eq!(
        second.files["alembic/versions/0001_initial.py"],
        first.files["alembic/versions/0001_initial.py"]
    );
    let revision = model(&second).alembic_head;
    assert_eq!(revision.len(), 32);
    let path = format!("alembic/versions/0002_{revision}.py");
    let migration = text(&second, &path);
    assert!(
        migration.contains(&format!("revision: str = \"{revision}\"")),
        "{migration}"
    );
    assert!(migration.contains("down_revision: str | None = \"0001\""));
    assert!(
        migration.contains("op.create_table(\n        \"notes\","),
        "{migration}"
    );
    assert!(
        migration.contains("batch.drop_column(\"nickname\")"),
        "{migration}"
    );
    assert!(
        migration.contains(
            "batch.add_column(\n            \
             sa.Column(\"country\", sa.String(2), nullable=False, server_default=sa.text(\"'NL'\"))\n        )"
        ),
        "{migration}"
    );
    assert!(migration.contains("platinum"), "{migration}");
    // Rows that would break the new unique or rule stop the upgrade before any change.
    let refusals = &migration[migration.find("def upgrade()").unwrap()..];
    let first_change = refusals.find("op.create_table(").unwrap();
    let unique = refusals
        .find("WHERE \"name\" IS NOT NULL GROUP BY \"name\" HAVING COUNT(*) > 1")
        .expect(&migration);
    let rule = refusals
        .find("WHERE NOT (\\\"tier\\\" IN")
        .expect(&migration);
    assert!(unique < first_change && rule < first_change, "{migration}");
    assert!(
        migration.contains("batch.create_unique_constraint("),
        "{migration}"
    );
    // Reproducible: the same project version on the same base gives the same bytes; another
    // base (even with the same files) another revision.
    assert_eq!(on(&base, generation(1)).sha256, second.sha256);
    assert_ne!(model(&on(&base, generation(2))).alembic_head, revision);
    // A generation on the second copies both migrations and adds one that changes nothing.
    let third = on(&Base::from_zip(&second.zip).unwrap(), generation(3));
    assert_eq!(third.files[&path], second.files[&path]);
    let third_path = format!("alembic/versions/0003_{}.py", model(&third).alembic_head);
    let unchanged = text(&third, &third_path);
    assert!(
        unchanged.contains("def upgrade() -> None:\n    pass\n"),
        "{unchanged}"
    );
}

#[test]
fn an_owner_column_for_existing_rows_asks_for_a_default_owner() {
    let no_auth: Vec<NewFeature> = before()
        .into_iter()
        .filter(|f| f.feature_type == FeatureType::Crud)
        .collect();
    let mut with_users = no_auth.clone();
    with_users.push(auth());
    // The users table comes with auth, so the owner column is the only change of the entities.
    let first = generate(&project(no_auth), 1, Target::PythonFastapi).unwrap();
    let base = Base::from_zip(&first.zip).unwrap();
    let second = generate_on(
        &project(with_users),
        2,
        Target::PythonFastapi,
        Some((&base, generation(5))),
    )
    .unwrap();
    let path = format!("alembic/versions/0002_{}.py", model(&second).alembic_head);
    let migration = text(&second, &path);
    assert!(
        migration.contains("owner = _default_owner(\"_auth_users\")"),
        "{migration}"
    );
    assert!(
        migration.contains("batch.add_column(sa.Column(\"owner_id\", sa.Uuid(), nullable=True))"),
        "{migration}"
    );
    assert!(
        migration.contains("_fill_owner(\"customers\", owner)"),
        "{migration}"
    );
}

#[test]
fn a_base_without_a_model_is_read_from_its_initial_migration() {
    let first = generate(&project(before()), 1, Target::PythonFastapi).unwrap();
    let mut base = Base::from_zip(&first.zip).unwrap();
    let expected = model(&first);
    base.model = None;
    let second = generate_on(
        &project(after()),
        2,
        Target::PythonFastapi,
        Some((&base, generation(4))),
    )
    .unwrap();
    let mut with_model = Base::from_zip(&first.zip).unwrap();
    with_model.model = Some(expected.to_json());
    let same = generate_on(
        &project(after()),
        2,
        Target::PythonFastapi,
        Some((&with_model, generation(4))),
    )
    .unwrap();
    assert_eq!(second.sha256, same.sha256);
    // More than one migration and no model: not a ZIP Backforge knows how to read.
    base.migrations
        .insert("alembic/versions/0002_x.py".into(), String::new());
    let refused = generate_on(
        &project(after()),
        2,
        Target::PythonFastapi,
        Some((&base, generation(4))),
    );
    assert!(
        matches!(refused, Err(GenerateError::Refused(_))),
        "{refused:?}"
    );
}

/// A ZIP the generator at fd9ea10 wrote (before `model.json` existed) of the project
/// `tests/fixtures/fd9ea10.features.json` describes (the features of [`before`]), at version 1.
pub const FD9EA10_ZIP: &[u8] = include_bytes!("../tests/fixtures/fd9ea10.zip");

#[test]
fn a_zip_of_the_generator_at_fd9ea10_is_upgraded() {
    let base = Base::from_zip(FD9EA10_ZIP).unwrap();
    assert!(base.model.is_none());
    let artifact = generate_on(
        &project(after()),
        2,
        Target::PythonFastapi,
        Some((&base, generation(6))),
    )
    .unwrap();
    let path = format!("alembic/versions/0002_{}.py", model(&artifact).alembic_head);
    let migration = text(&artifact, &path);
    // That generator wrote no owner column, no server defaults and no refresh tokens.
    assert!(migration.contains("_fill_owner("), "{migration}");
    assert!(
        migration.contains("op.create_table(\n        \"_auth_refresh_tokens\","),
        "{migration}"
    );
    assert!(migration.contains("server_default=sa.text("), "{migration}");
}

#[test]
fn a_base_reaches_the_child_process_as_json_and_generates_the_same_bytes() {
    let first = generate(&project(before()), 1, Target::PythonFastapi).unwrap();
    let base = Base::from_zip(&first.zip).unwrap();
    let input = child::ChildInput {
        job: child::ChildJob {
            project: project(after()),
            project_version: 2,
            target: Target::PythonFastapi,
        },
        base_generation_id: Some(generation(1)),
        base: Some(base.clone()),
    };
    let sent: child::ChildInput =
        serde_json::from_slice(&serde_json::to_vec(&input).unwrap()).unwrap();
    assert_eq!(sent, input);
    let job = &sent.job;
    let through_child = generate_on(
        &job.project,
        job.project_version,
        job.target,
        sent.on_base().unwrap(),
    )
    .unwrap();
    let direct = generate_on(
        &project(after()),
        2,
        Target::PythonFastapi,
        Some((&base, generation(1))),
    )
    .unwrap();
    assert_eq!(through_child.sha256, direct.sha256);
    // A job without a base reads as before.
    let plain: child::ChildInput =
        serde_json::from_slice(&serde_json::to_vec(&input.job).unwrap()).unwrap();
    assert_eq!(plain.on_base(), Ok(None));
}

/// `DUMP_DIR=… cargo test -p generator write_upgrades_for_inspection -- --ignored` writes the
/// upgrade of [`after`] on a base of [`before`] (`on-this/`) and on the fd9ea10 ZIP
/// (`on-fd9ea10/`), to run the generated checks on them.
#[test]
#[ignore]
fn write_upgrades_for_inspection() {
    let dir = std::path::PathBuf::from(std::env::var("DUMP_DIR").unwrap());
    let first = generate(&project(before()), 1, Target::PythonFastapi).unwrap();
    let bases = [
        ("on-this", Base::from_zip(&first.zip).unwrap()),
        ("on-fd9ea10", Base::from_zip(FD9EA10_ZIP).unwrap()),
    ];
    for (n, (label, base)) in (1..).zip(bases) {
        let artifact = generate_on(
            &project(after()),
            2,
            Target::PythonFastapi,
            Some((&base, generation(n))),
        )
        .unwrap();
        for (name, content) in &artifact.files {
            let path = dir.join(label).join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
    }
}
