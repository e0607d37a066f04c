//! Regeneration upgrades a live database: a base ZIP (one the generator at fd9ea10 wrote, without
//! `backforge/model.json`, and one of this generator) is deployed on SQLite and on a scratch
//! PostgreSQL database and filled with rows; the schema changes (a required field with a
//! default, an enum value, a dropped field, a composite unique, a new entity with a reference);
//! the project is generated again on that base and `alembic upgrade head` runs on the same
//! database. The rows are kept, `alembic check` finds nothing to do, and the new suite passes.

use domain::ids::GenerationId;
use generator::{Base, generate_on};

use super::*;

/// The generator at fd9ea10 wrote this ZIP of the project `FIXTURE_FEATURES` lists, at version 1.
const FD9EA10_ZIP: &[u8] = include_bytes!("../../../generator/tests/fixtures/fd9ea10.zip");
const FIXTURE_FEATURES: &str =
    include_str!("../../../generator/tests/fixtures/fd9ea10.features.json");
/// The user who owns the rows written before the upgrade.
const OWNER: &str = "0195b2a4-0000-7000-8000-000000000001";

/// The fixture project's features, from the JSON list (feature ids numbered from 1 in order).
fn features(spec: &Value) -> Vec<NewFeature> {
    let list = spec.as_array().expect("a list of features");
    list.iter()
        .enumerate()
        .map(|(i, f)| {
            let feature_type = match f["type"].as_str() {
                Some("crud") => FeatureType::Crud,
                Some("auth") => FeatureType::Auth,
                other => panic!("a fixture feature of type {other:?}"),
            };
            let name = f["name"].as_str().expect("a feature name");
            let feature = NewFeature::new(feature_id(i as u128 + 1), name, feature_type);
            match f.get("schema") {
                Some(schema) => feature.with_schema(schema.clone()),
                None => feature,
            }
        })
        .collect()
}

fn before() -> Project {
    let spec: Value = serde_json::from_str(FIXTURE_FEATURES).expect("the fixture's features");
    project_of(features(&spec))
}

/// The schema change: `country` required with a default, `platinum` added to `tier`,
/// `nickname` dropped, a unique (name, country), and notes that reference customers.
fn after() -> Project {
    project_of(features(&json!([
        {"name": "Customers", "type": "crud", "schema": {"entity": "customer", "fields": [
            {"name": "name", "type": "string", "required": true, "max_length": 80},
            {"name": "tier", "type": "enum", "values": ["bronze", "gold", "platinum"], "default": "bronze"},
            {"name": "country", "type": "string", "required": true, "max_length": 2, "default": "NL"},
            {"name": "best_order_id", "type": "reference", "references": "order"}
        ], "unique": [["name", "country"]]}},
        {"name": "Orders", "type": "crud", "schema": {"entity": "order", "fields": [
            {"name": "title", "type": "string", "required": true, "max_length": 120},
            {"name": "customer_id", "type": "reference", "references": "customer", "required": true}
        ]}},
        {"name": "Login", "type": "auth"},
        {"name": "Notes", "type": "crud", "schema": {"entity": "note", "fields": [
            {"name": "text", "type": "text", "required": true},
            {"name": "customer_id", "type": "reference", "references": "customer", "required": true}
        ]}}
    ])))
}

/// Rows written with plain SQL (the base app's models differ by generator version): a user, two
/// customers (one with a null tier where the base allows it), an order. `OWNED` says whether
/// the base's tables have an owner column.
const WRITE: &str = r#"
import datetime as dt, os, uuid
import sqlalchemy as sa
from app.database import make_engine

owned = os.environ["OWNED"] == "1"
owner = uuid.UUID(os.environ["OWNER"])
now = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
T = lambda: sa.DateTime(timezone=True)
extra = lambda: [sa.column("owner_id", sa.Uuid())] if owned else []
by = {"owner_id": owner} if owned else {}
users = sa.table("_auth_users", sa.column("id", sa.Uuid()), sa.column("email"),
                 sa.column("password_hash"), sa.column("created_at", T()))
customers = sa.table("customers", sa.column("id", sa.Uuid()), sa.column("name"), sa.column("tier"),
                     sa.column("nickname"), sa.column("created_at", T()), sa.column("updated_at", T()), *extra())
orders = sa.table("orders", sa.column("id", sa.Uuid()), sa.column("title"), sa.column("customer_id", sa.Uuid()),
                  sa.column("created_at", T()), sa.column("updated_at", T()), *extra())
engine = make_engine(os.environ["DATABASE_URL"])
with engine.begin() as c:
    c.execute(users.insert().values(id=owner, email="owner@example.com", password_hash="x", created_at=now))
    c.execute(customers.insert().values(id=uuid.UUID(int=1), name="Ada", tier="gold", nickname="ada",
                                        created_at=now, updated_at=now, **by))
    c.execute(customers.insert().values(id=uuid.UUID(int=2), name="Bob", tier=None if not owned else "bronze",
                                        nickname=None, created_at=now, updated_at=now, **by))
    c.execute(orders.insert().values(id=uuid.UUID(int=3), title="first", customer_id=uuid.UUID(int=1),
                                     created_at=now, updated_at=now, **by))
engine.dispose()
print("written")
"#;

/// The rows read back through the new app's models, then changed the new schema's way.
const CHECK: &str = r#"
import os, uuid
from sqlalchemy.orm import Session
from app import models, system_models  # noqa: F401 (registers the users table)
from app.database import make_engine

owner = uuid.UUID(os.environ["OWNER"])
engine = make_engine(os.environ["DATABASE_URL"])
with Session(engine) as s:
    rows = {c.name: c for c in s.query(models.Customer)}
    assert sorted(rows) == ["Ada", "Bob"], rows
    assert (rows["Ada"].tier, rows["Ada"].country) == ("gold", "NL"), vars(rows["Ada"])
    assert (rows["Bob"].tier, rows["Bob"].country) == ("bronze", "NL"), vars(rows["Bob"])
    assert all(c.owner_id == owner for c in rows.values())
    order = s.query(models.Order).one()
    assert (order.title, order.customer_id, order.owner_id) == ("first", uuid.UUID(int=1), owner)
    rows["Bob"].tier = "platinum"
    s.commit()
    assert s.query(models.Customer).filter_by(tier="platinum").one().name == "Bob"
engine.dispose()
print("checked")
"#;

fn python_script(dir: &Path, url: &str, owned: bool, script: &str) -> Output {
    run(
        python(dir)
            .args(["-c", script])
            .env("DATABASE_URL", url)
            .env("OWNED", if owned { "1" } else { "0" })
            .env("OWNER", OWNER),
        START_TIMEOUT,
    )
}

fn alembic(dir: &Path, url: &str, args: &[&str]) -> Output {
    run(
        python(dir)
            .args(["-m", "alembic"])
            .args(args)
            .env("DATABASE_URL", url),
        START_TIMEOUT,
    )
}

fn assert_ok(output: &Output, what: &str) {
    assert!(output.success, "{what} failed:\n{}", output.text);
}

/// The whole upgrade on the database at `url`; `suite_url` is what the new suite gets as
/// DATABASE_URL (none: its own SQLite file).
fn upgrade_on(base_zip: &[u8], owned: bool, url: &str, suite_url: Option<&str>, label: &str) {
    let base_artifact = Artifact::from_zip(base_zip.to_vec()).expect("the base ZIP");
    let base_dir = unpack_artifact(&base_artifact, &format!("{label}-base"));
    assert_ok(
        &alembic(&base_dir, url, &["upgrade", "head"]),
        "the base's migrations",
    );
    assert_ok(&python_script(&base_dir, url, owned, WRITE), "writing rows");

    let base = Base::from_zip(base_zip).expect("a base");
    let id = GenerationId::from_uuid(Uuid::now_v7());
    let new = generate_on(&after(), 2, Target::PythonFastapi, Some((&base, id)))
        .expect("the new project generates on its base");
    let again = generate_on(&after(), 2, Target::PythonFastapi, Some((&base, id))).expect("again");
    assert_eq!(
        new.sha256, again.sha256,
        "the same base and version give the same ZIP"
    );
    for (path, bytes) in &base.migrations {
        assert_eq!(
            new.files[path],
            bytes.as_bytes(),
            "{path} is copied byte for byte"
        );
    }
    let dir = unpack_artifact(&new, &format!("{label}-new"));

    if !owned {
        // Owners for the existing rows must be named; nothing changes until they are.
        let refused = alembic(&dir, url, &["upgrade", "head"]);
        assert!(!refused.success, "{}", refused.text);
        assert!(refused.text.contains("default_owner"), "{}", refused.text);
        let current = alembic(&dir, url, &["current"]);
        assert!(current.text.contains("0001"), "{}", current.text);
    }
    let x = format!("default_owner={OWNER}");
    assert_ok(
        &alembic(&dir, url, &["-x", &x, "upgrade", "head"]),
        "alembic upgrade head",
    );
    let check = alembic(&dir, url, &["check"]);
    assert_ok(&check, "alembic check");
    assert!(
        check.text.contains("No new upgrade operations detected"),
        "{}",
        check.text
    );
    assert_ok(
        &python_script(&dir, url, owned, CHECK),
        "the rows after the upgrade",
    );
    assert_passed(&pytest(&dir, suite_url), 0);
    let _ = fs::remove_dir_all(&base_dir);
    let _ = fs::remove_dir_all(&dir);
}

fn round_zip() -> Vec<u8> {
    generator::generate(&before(), 1, Target::PythonFastapi)
        .expect("the base project generates")
        .zip
}

fn on_sqlite(base_zip: &[u8], owned: bool, label: &str) {
    let db = std::env::temp_dir().join(format!("bf-upgrade-{}.db", Uuid::new_v4().simple()));
    let url = format!("sqlite:///{}", db.display());
    upgrade_on(base_zip, owned, &url, None, label);
    let _ = fs::remove_file(&db);
}

/// The same on a scratch database `bft_<uuid>`, dropped afterwards whatever happened.
async fn on_postgresql(base_zip: Vec<u8>, owned: bool, label: &'static str) {
    let server = "postgres://postgres@127.0.0.1:5432";
    let name = format!("bft_{}", Uuid::new_v4().simple());
    let (admin, connection) =
        tokio_postgres::connect(&format!("{server}/postgres"), tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL at 127.0.0.1:5432");
    tokio::spawn(connection);
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create the scratch database");
    let url = format!("{server}/{name}");
    let ran =
        tokio::task::spawn_blocking(move || upgrade_on(&base_zip, owned, &url, Some(&url), label))
            .await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .expect("drop the scratch database");
    ran.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

#[test]
fn a_database_of_the_fd9ea10_generator_is_upgraded_on_sqlite() {
    assert!(Base::from_zip(FD9EA10_ZIP).expect("a base").model.is_none());
    on_sqlite(FD9EA10_ZIP, false, "fd9ea10-sqlite");
}

#[tokio::test]
async fn a_database_of_the_fd9ea10_generator_is_upgraded_on_postgresql() {
    on_postgresql(FD9EA10_ZIP.to_vec(), false, "fd9ea10-postgresql").await;
}

#[test]
fn a_database_of_this_generator_is_upgraded_on_sqlite() {
    on_sqlite(&round_zip(), true, "round-sqlite");
}

#[tokio::test]
async fn a_database_of_this_generator_is_upgraded_on_postgresql() {
    on_postgresql(round_zip(), true, "round-postgresql").await;
}
