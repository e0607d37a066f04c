//! The application's generated modules: settings, models, schemas, routers and `main`.

use std::fmt::Write as _;

use domain::crud_schema::{FieldDef, FieldKind};
use serde_json::{Number, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use domain::project::configuration::{EntityAccess, Registration};

use super::plan::{Entity, FILES_TABLE, Field, Names, Plan, REFRESH_TABLE, USERS_TABLE};
use super::{Lit, py_str_tuple, py_value};
use crate::escape::{python_str, python_str_formatted};

/// `.env.example`: every setting with its default. It holds no usable secret: its JWT_SECRET is a
/// placeholder that production refuses.
pub fn env_example(plan: &Plan<'_>) -> String {
    let mut out = String::from(
        "# Settings of the generated application. Copy to .env and export them, e.g.\n\
         #   set -a; . ./.env; set +a\n\
         # or pass the file to Docker with --env-file.\n\n\
         # SQLite by default; for PostgreSQL: postgresql://user:password@host:5432/dbname\n\
         DATABASE_URL=sqlite:///./app.db\n\
         # production (the default) refuses unsafe settings; development and test do not\n\
         # (compared ignoring case).\n\
         APP_ENV=production\n\
         # Browser origins allowed to call the API (comma-separated, * for any); empty: no CORS.\n\
         CORS_ORIGINS=\n\
         # DEBUG, INFO, WARNING or ERROR; text, or json for one object per line.\n\
         LOG_LEVEL=INFO\n\
         LOG_FORMAT=text\n\
         # The compose file's PostgreSQL password (it builds DATABASE_URL from it for its services).\n\
         POSTGRES_PASSWORD=\n",
    );
    if !plan.auth.is_empty() {
        let _ = write!(
            out,
            "\n# HS256 signing key: random, at least 32 bytes. Production refuses this placeholder;\n\
             # make one with: python -c \"import secrets; print(secrets.token_urlsafe(48))\"\n\
             JWT_SECRET=replace-with-the-output-of-python-c-import-secrets-print-secrets-token-urlsafe-48\n\
             JWT_EXPIRES_MINUTES=15\n\
             JWT_ISSUER=generated-app\n\
             REFRESH_EXPIRES_DAYS=30\n\
             # Whether anyone may register (the project's auth configuration says {}).\n\
             ALLOW_REGISTRATION={}\n\
             # Login attempts per address and per client in a sliding window; more answer 429.\n\
             LOGIN_MAX_ATTEMPTS=10\n\
             LOGIN_WINDOW_SECONDS=60\n",
            plan.registration.as_str(),
            registration_open(plan),
        );
    }
    if !plan.files.is_empty() {
        let _ = write!(
            out,
            "\n# Uploaded files live here, named by id.\n\
             FILE_STORAGE_DIR=./data/files\n\
             # Larger uploads answer 413.\n\
             FILE_MAX_BYTES={}\n\
             # Other content types answer 415 (comma-separated).\n\
             FILE_ALLOWED_TYPES={}\n",
            plan.file_config.max_size_bytes,
            plan.file_config.allowed_content_types.join(",")
        );
    }
    out
}

fn registration_open(plan: &Plan<'_>) -> bool {
    plan.registration == Registration::Open
}

/// `    key=(items),` of an entity spec, laid out as `ruff format` keeps it: `()`, one item on the
/// line when it fits (its comma is not a magic one), else one item per line.
fn spec_tuple(key: &str, items: &[String]) -> String {
    match items {
        [] => format!("    {key}=(),\n"),
        [one] if 4 + key.len() + one.len() + 5 <= super::LINE_LENGTH => {
            format!("    {key}=({one},),\n")
        }
        _ => {
            let mut out = format!("    {key}=(\n");
            for item in items {
                out.push_str(&format!("        {item},\n"));
            }
            out.push_str("    ),\n");
            out
        }
    }
}

/// `app/config.py`: typed settings read once from the environment.
pub fn config(plan: &Plan<'_>) -> String {
    let types: Vec<String> = plan
        .file_config
        .allowed_content_types
        .iter()
        .map(|t| python_str(t))
        .collect();
    include_str!("templates/config.py")
        .replace(
            "__USES_TOKENS__",
            if plan.auth.is_empty() {
                "False"
            } else {
                "True"
            },
        )
        .replace(
            "__REGISTRATION_OPEN__",
            if registration_open(plan) {
                "True"
            } else {
                "False"
            },
        )
        .replace(
            "__FILE_MAX_BYTES__",
            &plan.file_config.max_size_bytes.to_string(),
        )
        // One per line with a trailing comma: the layout `ruff format` keeps.
        .replace(
            "__FILE_TYPES__",
            &if types.is_empty() {
                "()".to_owned()
            } else {
                format!("(\n    {},\n)", types.join(",\n    "))
            },
        )
}

/// `app/main.py`: `create_app` and the module-level `app` uvicorn serves.
pub fn main(plan: &Plan<'_>) -> String {
    let project = plan.project;
    let mut out = String::from(
        "\"\"\"The application: routes of every entity, health and OpenAPI (/openapi.json).\"\"\"\n\n\
         from fastapi import FastAPI\n\
         from fastapi.middleware.cors import CORSMiddleware\n\
         from sqlalchemy.engine import Engine\n\
         from sqlalchemy.orm import sessionmaker\n\n\
         from app import errors, logs\n",
    );
    // The app's own imports in isort's order (by module), as `ruff check` wants them.
    let mut imports: Vec<(String, String)> = vec![
        ("app.config".into(), "Settings".into()),
        ("app.database".into(), "make_engine".into()),
        ("app.health".into(), "ROUTER as _HEALTH_ROUTER".into()),
    ];
    if !plan.auth.is_empty() {
        imports.push(("app.auth".into(), "ROUTER as _AUTH_ROUTER".into()));
    }
    if !plan.files.is_empty() {
        imports.push(("app.files".into(), "ROUTER as _FILES_ROUTER".into()));
        imports.push(("app.files".into(), "UploadLimit as _UploadLimit".into()));
    }
    if !plan.functions.is_empty() {
        imports.push((
            "app.function_routes".into(),
            "ROUTER as _FUNCTIONS_ROUTER".into(),
        ));
    }
    for entity in &plan.entities {
        imports.push((
            format!("app.routers.{}", entity.name()),
            format!("ROUTER as _ROUTER_{}", entity.class),
        ));
    }
    // Stable: one module's imports keep their order (constants before classes, as isort).
    imports.sort_by(|a, b| a.0.cmp(&b.0));
    for (module, name) in &imports {
        let _ = writeln!(out, "from {module} import {name}");
    }
    let _ = write!(
        out,
        "\nTITLE = {}\nDESCRIPTION = {}\nVERSION = {}\n",
        python_str_formatted(&project.name),
        python_str_formatted(project.description.as_deref().unwrap_or("")),
        python_str(&plan.version.to_string()),
    );
    let tags = plan
        .entities
        .iter()
        .map(|entity| {
            Lit::dict(vec![
                (
                    "\"name\"".into(),
                    Lit::atom(python_str_formatted(entity.table())),
                ),
                (
                    "\"description\"".into(),
                    Lit::atom(python_str_formatted(&entity.feature.name)),
                ),
            ])
        })
        .collect();
    out.push_str(&Lit::list(tags).render(0, "TAGS: list[dict[str, str]] = ", ""));
    out.push_str(
        "\n\n\
         def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:\n    \
         settings = (settings or Settings.from_env()).checked()\n    \
         app = FastAPI(\n        \
         title=TITLE,\n        \
         description=DESCRIPTION,\n        \
         version=VERSION,\n        \
         openapi_tags=TAGS,\n        \
         # Operation ids are the handlers' names (list_orders, get_order), not FastAPI's\n        \
         # name_path_method.\n        \
         generate_unique_id_function=lambda route: route.name,\n    \
         )\n    \
         app.state.settings = settings\n    \
         app.state.engine = engine or make_engine(settings.database_url)\n    \
         app.state.sessionmaker = sessionmaker(bind=app.state.engine, expire_on_commit=False)\n    \
         errors.install(app)\n    \
         if settings.cors_origins:\n        \
         app.add_middleware(\n            \
         CORSMiddleware,\n            \
         allow_origins=list(settings.cors_origins),\n            \
         allow_methods=[\"GET\", \"POST\", \"PUT\", \"PATCH\", \"DELETE\"],\n            \
         allow_headers=[\"Authorization\", \"Content-Type\"],\n        \
         )\n    \
         app.include_router(_HEALTH_ROUTER)\n",
    );
    if !plan.auth.is_empty() {
        out.push_str("    app.include_router(_AUTH_ROUTER)\n");
    }
    if !plan.files.is_empty() {
        out.push_str("    app.add_middleware(_UploadLimit)\n");
        out.push_str("    app.include_router(_FILES_ROUTER)\n");
    }
    for entity in &plan.entities {
        let _ = writeln!(out, "    app.include_router(_ROUTER_{})", entity.class);
    }
    if !plan.functions.is_empty() {
        out.push_str("    app.include_router(_FUNCTIONS_ROUTER)\n");
    }
    out.push_str(
        "    return app\n\n\n\
         def __getattr__(name: str) -> FastAPI:\n    \
         \"\"\"`app`, the application uvicorn serves (`app.main:app`), made on first use from the\n    \
         environment: it refuses to start with unsafe settings, while importing this module to\n    \
         call `create_app` (tests, tools) needs none.\"\"\"\n    \
         if name == \"app\":\n        \
         made = globals().get(\"_APP\")\n        \
         if made is None:\n            \
         settings = Settings.from_env().checked()\n            \
         # Served, not under test: the app owns the process's logging.\n            \
         logs.configure(settings.log_level, settings.log_format)\n            \
         made = globals()[\"_APP\"] = create_app(settings)\n        \
         return made\n    \
         raise AttributeError(name)\n",
    );
    out
}

/// The SQLAlchemy column type of a field; `sa` is the module alias (`_sa` in models, `sa` in
/// the migration).
pub fn column_type(kind: &FieldKind, sa: &str, in_models: bool) -> String {
    match kind {
        FieldKind::String { max_length, .. } => format!("{sa}.String({max_length})"),
        FieldKind::Text { .. } => format!("{sa}.Text()"),
        FieldKind::Integer { .. } => format!("{sa}.BigInteger()"),
        FieldKind::Decimal {
            precision, scale, ..
        } => format!("{sa}.Numeric({precision}, {scale})"),
        FieldKind::Float { .. } => format!("{sa}.Double()"),
        FieldKind::Boolean => format!("{sa}.Boolean()"),
        FieldKind::Date => format!("{sa}.Date()"),
        FieldKind::Datetime if in_models => "_UTCDateTime()".into(),
        FieldKind::Datetime => format!("{sa}.DateTime(timezone=True)"),
        FieldKind::Uuid | FieldKind::Reference { .. } => format!("{sa}.Uuid()"),
        FieldKind::Json => format!("{sa}.JSON(none_as_null=True)"),
        FieldKind::Enum { values } => {
            let longest = values.iter().map(String::len).max().unwrap_or(1);
            format!("{sa}.String({longest})")
        }
    }
}

/// A number as SQL and Python both read it.
fn number_text(n: &Number) -> String {
    n.to_string()
}

fn float_text(f: f64) -> String {
    format!("{f:?}")
}

/// The check constraints of a field: (name suffix, SQL condition). The column is double-quoted
/// (standard SQL, read the same by PostgreSQL and SQLite, and the name is lower-case, so quoting
/// changes nothing but keyword parsing); enum values are identifiers, so they need no escaping
/// inside the SQL quotes.
pub fn checks(field: &FieldDef) -> Vec<(&'static str, String)> {
    let name = format!("\"{}\"", field.name);
    let mut out = Vec::new();
    match &field.kind {
        FieldKind::String {
            min_length,
            max_length,
            ..
        } => {
            if let Some(min) = min_length.filter(|m| *m > 0) {
                out.push(("min_length", format!("length({name}) >= {min}")));
            }
            out.push(("max_length", format!("length({name}) <= {max_length}")));
        }
        FieldKind::Text {
            max_length: Some(max),
        } => out.push(("max_length", format!("length({name}) <= {max}"))),
        FieldKind::Integer { min, max } => {
            if let Some(min) = min {
                out.push(("min", format!("{name} >= {min}")));
            }
            if let Some(max) = max {
                out.push(("max", format!("{name} <= {max}")));
            }
        }
        FieldKind::Decimal { min, max, .. } => {
            if let Some(min) = min {
                out.push(("min", format!("{name} >= {}", number_text(min))));
            }
            if let Some(max) = max {
                out.push(("max", format!("{name} <= {}", number_text(max))));
            }
        }
        FieldKind::Float { min, max } => {
            if let Some(min) = min {
                out.push(("min", format!("{name} >= {}", float_text(*min))));
            }
            if let Some(max) = max {
                out.push(("max", format!("{name} <= {}", float_text(*max))));
            }
        }
        FieldKind::Enum { values } => {
            let quoted: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
            out.push(("values", format!("{name} IN ({})", quoted.join(", "))));
        }
        _ => {}
    }
    out
}

/// A field's default as an SQL literal both databases read as the same value: the column's
/// server default, so a row inserted without the field (by the API or not) takes it.
pub fn server_default(def: &FieldDef, default: &Value) -> String {
    let quoted = |text: &str| format!("'{}'", text.replace('\'', "''"));
    match (&def.kind, default) {
        (FieldKind::Boolean, Value::Bool(b)) => quoted(if *b { "1" } else { "0" }),
        (FieldKind::Integer { .. } | FieldKind::Decimal { .. }, Value::Number(n)) => n.to_string(),
        (FieldKind::Float { .. }, Value::Number(n)) => float_text(n.as_f64().unwrap_or(0.0)),
        // UTC with an explicit offset: PostgreSQL reads the instant, SQLite's reader takes the
        // UTC wall time that precedes the offset.
        (FieldKind::Datetime, Value::String(s)) => match in_utc(s) {
            Some(t) => quoted(&iso_utc(t, ' ', "+00:00")),
            None => quoted(s),
        },
        (FieldKind::Uuid, Value::String(s)) => quoted(&s.replace('-', "").to_lowercase()),
        (FieldKind::Json, value) => quoted(&value.to_string()),
        (_, Value::String(s)) => quoted(s),
        (_, value) => quoted(&value.to_string()),
    }
}

/// The SQL object names of one entity's table, shared by the model and the migration.
pub struct TableNames {
    pub primary_key: String,
    /// One per unique field, then one per composite unique: (fields, name).
    pub uniques: Vec<(Vec<String>, String)>,
    /// (field, suffix, SQL, name)
    pub checks: Vec<(String, String, String)>,
    /// (field index, name) for reference fields.
    pub foreign_keys: Vec<(usize, String)>,
    /// (field, name) for reference fields.
    pub indexes: Vec<(String, String)>,
    /// The owner column's foreign key and index, with an auth feature.
    pub owner: Option<(String, String)>,
}

pub fn table_names(names: &mut Names, entity: &Entity<'_>) -> TableNames {
    let table = entity.table();
    let primary_key = names.constraint("pk", table, &[]);
    let mut uniques = Vec::new();
    for field in entity.fields.iter().filter(|f| f.def.unique) {
        uniques.push((
            vec![field.name().to_owned()],
            names.constraint("uq", table, &[field.name()]),
        ));
    }
    for group in &entity.schema.unique {
        let parts: Vec<&str> = group.iter().map(String::as_str).collect();
        let mut key_parts = vec!["composite"];
        key_parts.extend(&parts);
        let key = format!("uq:{table}:{}", key_parts.join(":"));
        let name = names.get(&key, &format!("uq_{table}_{}", parts.join("_")));
        uniques.push((group.clone(), name));
    }
    let mut check_names = Vec::new();
    for field in &entity.fields {
        for (suffix, sql) in checks(field.def) {
            let name = names.constraint("ck", table, &[field.name(), suffix]);
            check_names.push((sql, name, field.name().to_owned()));
        }
    }
    let mut foreign_keys = Vec::new();
    let mut indexes = Vec::new();
    for (i, field) in entity.fields.iter().enumerate() {
        if field.target.is_some() {
            foreign_keys.push((i, names.constraint("fk", table, &[field.name()])));
            indexes.push((
                field.name().to_owned(),
                names.constraint("ix", table, &[field.name()]),
            ));
        }
    }
    let owner = entity.access.map(|_| {
        (
            names.constraint("fk", table, &["owner_id"]),
            names.constraint("ix", table, &["owner_id"]),
        )
    });
    TableNames {
        owner,
        primary_key,
        uniques,
        checks: check_names
            .into_iter()
            .map(|(sql, name, field)| (field, sql, name))
            .collect(),
        foreign_keys,
        indexes,
    }
}

/// The Python type of a field's values (as stored and read back).
fn python_type(kind: &FieldKind) -> &'static str {
    match kind {
        FieldKind::String { .. } | FieldKind::Text { .. } | FieldKind::Enum { .. } => "str",
        FieldKind::Integer { .. } => "int",
        FieldKind::Decimal { .. } => "_decimal.Decimal",
        FieldKind::Float { .. } => "float",
        FieldKind::Boolean => "bool",
        FieldKind::Date => "_dt.date",
        FieldKind::Datetime => "_dt.datetime",
        FieldKind::Uuid | FieldKind::Reference { .. } => "_uuid.UUID",
        FieldKind::Json => "_Any",
    }
}

fn optional(ty: &str, nullable: bool) -> String {
    if nullable {
        format!("{ty} | None")
    } else {
        ty.to_owned()
    }
}

/// `app/models.py`: one SQLAlchemy model per entity, with every constraint the database holds.
pub fn models(plan: &mut Plan<'_>) -> String {
    let mut out = String::new();
    for i in 0..plan.entities.len() {
        let names = table_names(&mut plan.names, &plan.entities[i]);
        let entity = &plan.entities[i];
        let _ = write!(
            out,
            "\n\nclass {}(_Base):\n    \"\"\"The `{}` entity.\"\"\"\n\n    __tablename__ = {}\n",
            entity.class,
            entity.name(),
            python_str(entity.table()),
        );
        let primary_key = format!(
            "_sa.PrimaryKeyConstraint(\"id\", name={})",
            python_str(&names.primary_key)
        );
        let alone = names.uniques.is_empty()
            && names.checks.is_empty()
            && names.indexes.is_empty()
            && names.owner.is_none();
        let one_line = format!("    __table_args__ = ({primary_key},)\n");
        let joined = alone && one_line.chars().count() <= super::LINE_LENGTH + 1;
        if joined {
            // A one-item tuple's comma is not a magic trailing comma: ruff format joins it.
            out.push_str(&one_line);
        } else {
            let _ = writeln!(out, "    __table_args__ = (\n        {primary_key},");
        }
        for (fields, name) in &names.uniques {
            let columns: Vec<String> = fields.iter().map(|f| python_str(f)).collect();
            let _ = writeln!(
                out,
                "        _sa.UniqueConstraint({}, name={}),",
                columns.join(", "),
                python_str(name)
            );
        }
        for (_, sql, name) in &names.checks {
            let args = [
                python_str_formatted(sql),
                format!("name={}", python_str(name)),
            ];
            out.push_str(&super::py_call(8, "_sa.CheckConstraint", &args, ","));
        }
        for (field, name) in &names.indexes {
            let _ = writeln!(
                out,
                "        _sa.Index({}, {}),",
                python_str(name),
                python_str(field)
            );
        }
        if let Some((_, ix)) = &names.owner {
            let _ = writeln!(out, "        _sa.Index({}, \"owner_id\"),", python_str(ix));
        }
        if !joined {
            out.push_str("    )\n");
        }
        out.push('\n');
        out.push_str(
            "    id: _orm.Mapped[_uuid.UUID] = _orm.mapped_column(_sa.Uuid(), default=_uuid.uuid4)\n",
        );
        if let Some((fk, _)) = &names.owner {
            let _ = writeln!(
                out,
                "    owner_id: _orm.Mapped[_uuid.UUID] = _orm.mapped_column(\n        \
                 _sa.Uuid(),\n        \
                 _sa.ForeignKey({}, name={}, ondelete=\"RESTRICT\"),\n        \
                 nullable=False,\n    )",
                python_str(&format!("{USERS_TABLE}.id")),
                python_str(fk)
            );
        }
        for (f, field) in entity.fields.iter().enumerate() {
            let mut args = vec![column_type(&field.def.kind, "_sa", true)];
            if let Some(t) = field.target {
                let target = &plan.entities[t];
                let fk_name = &names
                    .foreign_keys
                    .iter()
                    .find(|(index, _)| *index == f)
                    .expect("every reference has a foreign key name")
                    .1;
                let deferred = plan.deferred_fks.contains(&(i, f));
                args.push(format!(
                    "_sa.ForeignKey({}, name={}, ondelete=\"RESTRICT\"{})",
                    python_str(&format!("{}.id", target.table())),
                    python_str(fk_name),
                    if deferred { ", use_alter=True" } else { "" }
                ));
            }
            args.push(format!(
                "nullable={}",
                if field.nullable() { "True" } else { "False" }
            ));
            if let Some(default) = &field.def.default {
                args.push(format!(
                    "server_default=_sa.text({})",
                    python_str_formatted(&server_default(field.def, default))
                ));
            }
            let target = format!(
                "{}: _orm.Mapped[{}] = _orm.mapped_column",
                field.name(),
                optional(python_type(&field.def.kind), field.nullable()),
            );
            out.push_str(&super::py_call(4, &target, &args, ""));
        }
        out.push_str(
            "    created_at: _orm.Mapped[_dt.datetime] = _orm.mapped_column(\n        \
             _UTCDateTime(), nullable=False, default=_utcnow\n    )\n    \
             updated_at: _orm.Mapped[_dt.datetime] = _orm.mapped_column(\n        \
             _UTCDateTime(), nullable=False, default=_utcnow\n    )\n",
        );
    }
    let header = "\"\"\"SQLAlchemy models: one table per entity, named by its plural, with every constraint\n\
         the database can hold (the migration in alembic/versions creates the same schema).\n\n\
         Generated names bound here start with `_` or a capital letter, so no field can shadow them.\n\
         \"\"\"\n\n";
    let imports = import_block(
        &out,
        &[
            (&["_dt."], "import datetime as _dt"),
            (&["_decimal."], "import decimal as _decimal"),
            (&["_uuid."], "import uuid as _uuid"),
            (&["_Any"], "from typing import Any as _Any"),
            (&[""], ""),
            (&["_sa."], "import sqlalchemy as _sa"),
            (&["_orm."], "from sqlalchemy import orm as _orm"),
            (&[""], ""),
            (&["_Base"], "from app.database import Base as _Base"),
            (
                &["_UTCDateTime"],
                "from app.database import UTCDateTime as _UTCDateTime",
            ),
            (&["_utcnow"], "from app.database import utcnow as _utcnow"),
        ],
    );
    if out.is_empty() {
        // No entity: the docstring alone.
        return format!("{}\n", header.trim_end());
    }
    format!("{header}{imports}{out}")
}

/// `app/system_models.py`: the tables of the auth and file_storage features.
pub fn system_models(plan: &mut Plan<'_>) -> String {
    let doc = "\"\"\"Tables of the built-in features. Their names start with `_`, which no entity's\n\
         plural can, so they never collide with an entity's table.\"\"\"\n";
    if plan.auth.is_empty() && plan.files.is_empty() {
        return doc.to_owned();
    }
    let mut out = String::from(doc)
        + "\n\
         import datetime as dt\n\
         import uuid\n\n\
         import sqlalchemy as sa\n\
         from sqlalchemy import orm\n\n\
         from app.database import Base, UTCDateTime, utcnow\n";
    if !plan.auth.is_empty() {
        let pk = plan.names.constraint("pk", USERS_TABLE, &[]);
        let uq = plan.names.constraint("uq", USERS_TABLE, &["email"]);
        let _ = write!(
            out,
            "\n\nclass AuthUser(Base):\n    \"\"\"An account of the auth feature.\"\"\"\n\n    \
             __tablename__ = {}\n    __table_args__ = (\n        \
             sa.PrimaryKeyConstraint(\"id\", name={}),\n        \
             sa.UniqueConstraint(\"email\", name={}),\n    )\n\n    \
             id: orm.Mapped[uuid.UUID] = orm.mapped_column(sa.Uuid(), default=uuid.uuid4)\n    \
             email: orm.Mapped[str] = orm.mapped_column(sa.String(254), nullable=False)\n    \
             password_hash: orm.Mapped[str] = orm.mapped_column(sa.String(255), nullable=False)\n    \
             is_admin: orm.Mapped[bool] = orm.mapped_column(\n        \
             sa.Boolean(), nullable=False, default=False, server_default=sa.text(\"'0'\")\n    )\n    \
             created_at: orm.Mapped[dt.datetime] = orm.mapped_column(\n        \
             UTCDateTime(), nullable=False, default=utcnow\n    )\n",
            python_str(USERS_TABLE),
            python_str(&pk),
            python_str(&uq),
        );
        let pk = plan.names.constraint("pk", REFRESH_TABLE, &[]);
        let uq = plan.names.constraint("uq", REFRESH_TABLE, &["token_hash"]);
        let fk = plan.names.constraint("fk", REFRESH_TABLE, &["user_id"]);
        let ix = plan.names.constraint("ix", REFRESH_TABLE, &["family_id"]);
        let _ = write!(
            out,
            "\n\nclass RefreshToken(Base):\n    \"\"\"A refresh token (its SHA-256): spent once, revoked with its family.\"\"\"\n\n    \
             __tablename__ = {}\n    __table_args__ = (\n        \
             sa.PrimaryKeyConstraint(\"id\", name={}),\n        \
             sa.UniqueConstraint(\"token_hash\", name={}),\n        \
             sa.Index({}, \"family_id\"),\n    )\n\n    \
             id: orm.Mapped[uuid.UUID] = orm.mapped_column(sa.Uuid(), default=uuid.uuid4)\n    \
             user_id: orm.Mapped[uuid.UUID] = orm.mapped_column(\n        \
             sa.Uuid(),\n        \
             sa.ForeignKey({}, name={}, ondelete=\"CASCADE\"),\n        \
             nullable=False,\n    )\n    \
             family_id: orm.Mapped[uuid.UUID] = orm.mapped_column(sa.Uuid(), nullable=False)\n    \
             token_hash: orm.Mapped[str] = orm.mapped_column(sa.String(64), nullable=False)\n    \
             expires_at: orm.Mapped[dt.datetime] = orm.mapped_column(UTCDateTime(), nullable=False)\n    \
             spent_at: orm.Mapped[dt.datetime | None] = orm.mapped_column(UTCDateTime(), nullable=True)\n    \
             revoked_at: orm.Mapped[dt.datetime | None] = orm.mapped_column(UTCDateTime(), nullable=True)\n    \
             created_at: orm.Mapped[dt.datetime] = orm.mapped_column(\n        \
             UTCDateTime(), nullable=False, default=utcnow\n    )\n",
            python_str(REFRESH_TABLE),
            python_str(&pk),
            python_str(&uq),
            python_str(&ix),
            python_str(&format!("{USERS_TABLE}.id")),
            python_str(&fk),
        );
    }
    if !plan.files.is_empty() {
        let pk = plan.names.constraint("pk", FILES_TABLE, &[]);
        let _ = write!(
            out,
            "\n\nclass StoredFile(Base):\n    \"\"\"An uploaded file's metadata; its bytes live in FILE_STORAGE_DIR.\"\"\"\n\n    \
             __tablename__ = {}\n",
            python_str(FILES_TABLE),
        );
        let mut table_args = vec![Lit::atom(format!(
            "sa.PrimaryKeyConstraint(\"id\", name={})",
            python_str(&pk)
        ))];
        if !plan.auth.is_empty() {
            let ix = plan.names.constraint("ix", FILES_TABLE, &["owner_id"]);
            table_args.push(Lit::atom(format!(
                "sa.Index({}, \"owner_id\")",
                python_str(&ix)
            )));
        }
        out.push_str(&Lit::tuple(table_args).render(4, "__table_args__ = ", ""));
        out.push_str(
            "\n    \
             id: orm.Mapped[uuid.UUID] = orm.mapped_column(sa.Uuid(), default=uuid.uuid4)\n    \
             filename: orm.Mapped[str] = orm.mapped_column(sa.String(255), nullable=False)\n    \
             content_type: orm.Mapped[str] = orm.mapped_column(sa.String(255), nullable=False)\n    \
             size_bytes: orm.Mapped[int] = orm.mapped_column(sa.BigInteger(), nullable=False)\n    \
             sha256: orm.Mapped[str] = orm.mapped_column(sa.String(64), nullable=False)\n",
        );
        if plan.auth.is_empty() {
            out.push_str(
                "    owner_id: orm.Mapped[uuid.UUID | None] = orm.mapped_column(sa.Uuid(), nullable=True)\n",
            );
        } else {
            let fk = plan.names.constraint("fk", FILES_TABLE, &["owner_id"]);
            let _ = writeln!(
                out,
                "    owner_id: orm.Mapped[uuid.UUID | None] = orm.mapped_column(\n        \
                 sa.Uuid(),\n        \
                 sa.ForeignKey({}, name={}, ondelete=\"RESTRICT\"),\n        \
                 nullable=True,\n    )",
                python_str(&format!("{USERS_TABLE}.id")),
                python_str(&fk)
            );
        }
        out.push_str(
            "    created_at: orm.Mapped[dt.datetime] = orm.mapped_column(\n        \
             UTCDateTime(), nullable=False, default=utcnow\n    )\n",
        );
    }
    out
}

/// The annotated Pydantic type of a request field, with every constraint of the schema.
fn request_type(def: &FieldDef) -> String {
    let field = |args: Vec<String>| format!("_Field({})", args.join(", "));
    match &def.kind {
        FieldKind::String {
            min_length,
            max_length,
            pattern,
        } => {
            let mut args = vec!["strict=True".to_owned()];
            if let Some(min) = min_length {
                args.push(format!("min_length={min}"));
            }
            args.push(format!("max_length={max_length}"));
            if let Some(pattern) = pattern {
                args.push(format!("pattern={}", python_str(pattern)));
            }
            format!("_Annotated[str, {}]", field(args))
        }
        FieldKind::Text { max_length } => {
            let mut args = vec!["strict=True".to_owned()];
            if let Some(max) = max_length {
                args.push(format!("max_length={max}"));
            }
            format!("_Annotated[str, {}]", field(args))
        }
        FieldKind::Integer { min, max } => format!(
            "_Annotated[int, {}]",
            field(vec![
                "strict=True".into(),
                format!("ge={}", min.unwrap_or(i64::MIN)),
                format!("le={}", max.unwrap_or(i64::MAX)),
            ])
        ),
        FieldKind::Decimal {
            precision,
            scale,
            min,
            max,
        } => {
            let mut args = vec![
                format!("max_digits={precision}"),
                format!("decimal_places={scale}"),
                "allow_inf_nan=False".into(),
            ];
            if let Some(min) = min {
                args.push(format!(
                    "ge=_decimal.Decimal({})",
                    python_str(&number_text(min))
                ));
            }
            if let Some(max) = max {
                args.push(format!(
                    "le=_decimal.Decimal({})",
                    python_str(&number_text(max))
                ));
            }
            format!("_Annotated[_decimal.Decimal, {}]", field(args))
        }
        FieldKind::Float { min, max } => {
            let mut args = vec!["strict=True".to_owned(), "allow_inf_nan=False".into()];
            if let Some(min) = min {
                args.push(format!("ge={}", float_text(*min)));
            }
            if let Some(max) = max {
                args.push(format!("le={}", float_text(*max)));
            }
            format!("_Annotated[float, {}]", field(args))
        }
        FieldKind::Boolean => "_Annotated[bool, _Field(strict=True)]".into(),
        FieldKind::Date => "_fields.IsoDate".into(),
        FieldKind::Datetime => "_fields.IsoDateTime".into(),
        FieldKind::Uuid | FieldKind::Reference { .. } => "_uuid.UUID".into(),
        FieldKind::Json if def.required || def.default.is_some() => "_fields.JsonNotNull".into(),
        FieldKind::Json => "_fields.Json".into(),
        FieldKind::Enum { values } => literal_type(values),
    }
}

fn literal_type(values: &[String]) -> String {
    let values: Vec<String> = values.iter().map(|v| python_str(v)).collect();
    format!("_Literal[{}]", values.join(", "))
}

/// The Python expression of a field's default, or a `_Field(default_factory=…)` for JSON.
fn default_expr(def: &FieldDef, default: &Value) -> String {
    match (&def.kind, default) {
        (FieldKind::Decimal { .. }, Value::Number(n)) => {
            format!("_decimal.Decimal({})", python_str(&n.to_string()))
        }
        (FieldKind::Float { .. }, Value::Number(n)) => float_text(n.as_f64().unwrap_or(0.0)),
        (FieldKind::Date, Value::String(s)) => match domain::crud_schema::parse_date(s) {
            Some(d) => format!(
                "_dt.date({}, {}, {})",
                d.year(),
                u8::from(d.month()),
                d.day()
            ),
            None => "None".into(),
        },
        (FieldKind::Datetime, Value::String(s)) => match in_utc(s) {
            Some(t) => format!(
                "_dt.datetime.fromisoformat({})",
                python_str(&iso_utc(t, 'T', "+00:00"))
            ),
            None => "None".into(),
        },
        (FieldKind::Uuid, Value::String(s)) => format!("_uuid.UUID({})", python_str(s)),
        (FieldKind::Json, value) => format!(
            "_Field(default_factory=lambda: _json.loads({}))",
            python_str_formatted(&value.to_string())
        ),
        (_, value) => py_value(value),
    }
}

/// An RFC 3339 date-time moved to UTC.
fn in_utc(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(|t| t.to_offset(time::UtcOffset::UTC))
}

/// `t` (in UTC) as `YYYY-MM-DD{separator}HH:MM:SS.ffffff{suffix}`.
fn iso_utc(t: OffsetDateTime, separator: char, suffix: &str) -> String {
    format!(
        "{:04}-{:02}-{:02}{separator}{:02}:{:02}:{:02}.{:06}{suffix}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// The JSON a default comes back as in responses (the tests compare with it).
pub fn default_as_json(def: &FieldDef, default: &Value) -> Value {
    match (&def.kind, default) {
        (FieldKind::Decimal { .. }, Value::Number(n)) => Value::String(n.to_string()),
        (FieldKind::Datetime, Value::String(s)) => match in_utc(s) {
            Some(t) => Value::String(iso_utc(t, 'T', "Z")),
            None => default.clone(),
        },
        _ => default.clone(),
    }
}

/// The Python type of a field in responses (enums as their values, so OpenAPI lists them).
fn response_type(kind: &FieldKind) -> String {
    match kind {
        FieldKind::Json => "_fields.Json".into(),
        FieldKind::Enum { values } => literal_type(values),
        other => python_type(other).into(),
    }
}

/// `app/schemas.py`: the request and response bodies of every entity (POST and PUT share the
/// Create body: PUT replaces the row, so an absent field takes its default or null).
pub fn schemas(plan: &Plan<'_>) -> String {
    let mut out = String::from(
        "\n\nclass _Input(_BaseModel):\n    \
         model_config = _ConfigDict(extra=\"forbid\", regex_engine=\"rust-regex\")\n\n\n\
         class _Output(_BaseModel):\n    \
         model_config = _ConfigDict(from_attributes=True)\n",
    );
    for entity in &plan.entities {
        let class = &entity.class;
        let path = entity.path();
        let _ = write!(
            out,
            "\n\nclass {class}Create(_Input):\n    \"\"\"The body of POST {path}.\"\"\"\n\n"
        );
        for field in &entity.fields {
            out.push_str(&create_line(field));
        }
        let _ = write!(
            out,
            "\n\nclass {class}Patch(_Input):\n    \"\"\"The body of PATCH {path}/{{id}}: a partial update. Absent fields stay as they\n    \
             are, null clears an optional field (a required or defaulted one refuses null).\"\"\"\n\n"
        );
        for field in &entity.fields {
            let ty = request_type(field.def);
            let _ = if field.nullable() {
                writeln!(out, "    {}: {} = None", field.name(), optional(&ty, true))
            } else {
                writeln!(out, "    {}: {ty} = _fields.ABSENT", field.name())
            };
        }
        let _ = write!(
            out,
            "\n\nclass {class}Read(_Output):\n    \"\"\"A `{}` row as the API answers it.\"\"\"\n\n    id: _uuid.UUID\n",
            entity.name()
        );
        if entity.access.is_some() {
            out.push_str("    owner_id: _uuid.UUID\n");
        }
        for field in &entity.fields {
            let ty = response_type(&field.def.kind);
            if field.nullable() {
                let _ = writeln!(out, "    {}: {ty} | None = None", field.name());
            } else {
                let _ = writeln!(out, "    {}: {ty}", field.name());
            }
        }
        out.push_str("    created_at: _dt.datetime\n    updated_at: _dt.datetime\n");
        let _ = write!(
            out,
            "\n\nclass {class}Page(_BaseModel):\n    items: list[{class}Read]\n    total: int\n    limit: int\n    offset: int\n"
        );
    }
    let header = "\"\"\"Request and response bodies: Create, Update, Read and Page models per entity.\n\n\
         Every constraint of the schema is enforced here, before any database work: required\n\
         fields, lengths, patterns (the `rust-regex` engine with search semantics, as Backforge\n\
         validated them: anchor with ^...$ to constrain the whole value), ranges, decimal\n\
         precision and scale, enum values. Unknown fields are refused. Uniqueness and references\n\
         need the database and are checked in app/crud.py.\n\n\
         Generated names bound here start with `_` or a capital letter, so no field can shadow them.\n\
         \"\"\"\n\n";
    let imports = import_block(
        &out,
        &[
            (&["_dt."], "import datetime as _dt"),
            (&["_decimal."], "import decimal as _decimal"),
            (&["_json."], "import json as _json"),
            (&["_uuid."], "import uuid as _uuid"),
            (
                &["_Annotated["],
                "from typing import Annotated as _Annotated",
            ),
            (&["_Literal["], "from typing import Literal as _Literal"),
            (&[""], ""),
            (
                &["_BaseModel"],
                "from pydantic import BaseModel as _BaseModel",
            ),
            (
                &["_ConfigDict"],
                "from pydantic import ConfigDict as _ConfigDict",
            ),
            (&["_Field("], "from pydantic import Field as _Field"),
            (&[""], ""),
            (&["_fields."], "from app import fields as _fields"),
        ],
    );
    let (aliases, out) = alias_long_types(&out);
    format!("{header}{imports}{aliases}{out}")
}

/// `body` with each `_Annotated[...]` type that makes a field's line too long replaced by an
/// alias (named after the first class and field it types), and those aliases' definitions,
/// preceded by a blank line, to go before `body`.
fn alias_long_types(body: &str) -> (String, String) {
    let mut aliases: Vec<(String, String)> = Vec::new();
    let mut class = "";
    let mut out = String::with_capacity(body.len());
    for line in body.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("class ") {
            class = rest.split(['(', ':']).next().unwrap_or("");
        }
        let text = line.trim_end_matches('\n');
        let start = text.find(": _Annotated[").map(|at| at + 2);
        let end = start.and_then(|at| super::matching_close(text, at + "_Annotated".len()));
        let (Some(start), Some(end)) = (start, end) else {
            out.push_str(line);
            continue;
        };
        if text.chars().count() <= super::LINE_LENGTH || !text.starts_with("    ") {
            out.push_str(line);
            continue;
        }
        let ty = &text[start..=end];
        let alias = match aliases.iter().find(|(t, _)| t == ty) {
            Some((_, alias)) => alias.clone(),
            None => {
                let field = text[4..start - 2].trim();
                let alias = format!("_{class}_{field}");
                aliases.push((ty.to_owned(), alias.clone()));
                alias
            }
        };
        out.push_str(&text[..start]);
        out.push_str(&alias);
        out.push_str(&line[end + 1..]);
    }
    let mut defs = String::new();
    for (ty, alias) in &aliases {
        defs.push_str(&Lit::parse(ty).render(0, &format!("{alias} = "), ""));
    }
    if !defs.is_empty() {
        defs.insert(0, '\n');
    }
    (defs, out)
}

/// The import lines whose markers occur in `body`; an empty line keeps a blank separator
/// between groups (collapsed when a group is empty).
fn import_block(body: &str, lines: &[(&[&str], &str)]) -> String {
    let mut groups: Vec<Vec<&str>> = vec![Vec::new()];
    for (markers, line) in lines {
        if line.is_empty() {
            groups.push(Vec::new());
        } else if markers.iter().any(|m| body.contains(m)) {
            groups.last_mut().expect("one group at least").push(line);
        }
    }
    let blocks: Vec<String> = groups
        .into_iter()
        .filter(|g| !g.is_empty())
        .map(|g| g.join("\n") + "\n")
        .collect();
    blocks.join("\n")
}

fn create_line(field: &Field<'_>) -> String {
    let def = field.def;
    let ty = request_type(def);
    let name = field.name();
    match (&def.default, def.required) {
        (None, true) => format!("    {name}: {ty}\n"),
        (None, false) => format!("    {name}: {ty} | None = None\n"),
        // A default makes the field NOT NULL: null is refused, absence takes the default.
        (Some(default), _) => format!("    {name}: {ty} = {}\n", default_expr(def, default)),
    }
}

/// The Python type a list filter parses a field's query values with.
fn filter_type(kind: &FieldKind) -> String {
    match kind {
        FieldKind::Json => "_Any".into(),
        FieldKind::Enum { values } => literal_type(values),
        FieldKind::Datetime => "_AwareDatetime".into(),
        other => python_type(other).to_owned(),
    }
}

/// The OpenAPI error responses of a route: `_errors.responses(401, 404, 422)`.
fn error_responses(auth: bool, statuses: &[u16]) -> String {
    let listed: Vec<String> = statuses
        .iter()
        .filter(|s| auth || !matches!(s, 401 | 403))
        .map(u16::to_string)
        .collect();
    format!("_errors.responses({})", listed.join(", "))
}

/// `app/routers/<entity>.py`: the six routes of one entity.
pub fn router(plan: &Plan<'_>, index: usize) -> String {
    let entity = &plan.entities[index];
    let class = &entity.class;
    let name = entity.name();
    let table = entity.table();
    let auth = entity.access.is_some();
    let mut out = String::new();
    let _ = write!(
        out,
        "_PATH = {}\n\nROUTER = _APIRouter(prefix=_PATH, tags=[{}])\n\n",
        python_str(&entity.path()),
        python_str(table)
    );

    // The entity's checks that need the database.
    let mut unique: Vec<Vec<String>> = entity
        .fields
        .iter()
        .filter(|f| f.def.unique)
        .map(|f| vec![f.name().to_owned()])
        .collect();
    unique.extend(entity.schema.unique.iter().cloned());
    let unique: Vec<String> = unique.iter().map(|g| py_str_tuple(g)).collect();
    let access = match entity.access {
        Some(EntityAccess::OwnerScoped) => "_crud.OWNER_SCOPED",
        Some(EntityAccess::SharedRead) => "_crud.SHARED_READ",
        None => "None",
    };
    let _ = write!(
        out,
        "_SPEC = _crud.EntitySpec(\n    model=_models.{class},\n    label={},\n    access={access},\n    unique=({}),\n",
        python_str(name),
        match unique.len() {
            0 => String::new(),
            1 => format!("{},", unique[0]),
            _ => unique.join(", "),
        }
    );
    let mut references = Vec::new();
    for field in &entity.fields {
        if let Some(t) = field.target {
            let target = &plan.entities[t];
            let target_access = match target.access {
                Some(EntityAccess::OwnerScoped) => "_crud.OWNER_SCOPED",
                Some(EntityAccess::SharedRead) => "_crud.SHARED_READ",
                None => "None",
            };
            references.push(format!(
                "_crud.Reference({}, _models.{}, {}, {target_access})",
                python_str(field.name()),
                target.class,
                python_str(target.name())
            ));
        }
    }
    out.push_str(&spec_tuple("references", &references));
    let referrers: Vec<String> = entity
        .referrers
        .iter()
        .map(|&(e, f)| {
            let referrer = &plan.entities[e];
            format!(
                "_crud.Referrer(_models.{}, {}, {})",
                referrer.class,
                python_str(referrer.fields[f].name()),
                python_str(referrer.name())
            )
        })
        .collect();
    out.push_str(&spec_tuple("referrers", &referrers));
    out.push_str("    columns=(\n        _crud.Column(\"id\", \"uuid\", _uuid.UUID),\n");
    if auth {
        out.push_str("        _crud.Column(\"owner_id\", \"uuid\", _uuid.UUID),\n");
    }
    for field in &entity.fields {
        let _ = writeln!(
            out,
            "        _crud.Column({}, {}, {}),",
            python_str(field.name()),
            python_str(field.def.kind.type_name()),
            filter_type(&field.def.kind)
        );
    }
    out.push_str(
        "        _crud.Column(\"created_at\", \"datetime\", _AwareDatetime),\n        \
         _crud.Column(\"updated_at\", \"datetime\", _AwareDatetime),\n    ),\n)\n",
    );

    let actor = if auth {
        "_Actor = _Depends(_require_actor)"
    } else {
        "_Actor = _Depends(_crud.anyone)"
    };
    let _ = write!(
        out,
        "\n\n@ROUTER.get(\n    \"\",\n    response_model=_schemas.{class}Page,\n    operation_id=\"list_{table}\",\n    \
         responses={list_errors},\n    openapi_extra={{\"parameters\": _crud.list_parameters(_SPEC)}},\n)\n\
         def list_{table}(\n    _request: _Request,\n    _actor: {actor},\n    _session: _Session = _Depends(_get_session),\n) -> dict[str, _Any]:\n    \
         \"\"\"Rows of `{name}` the caller may see: filters `f`,\n    \
         `f__gt|gte|lt|lte|ne|in|contains|is_null`, `sort=f,-g` (then oldest first), `limit` (1-200)\n    \
         and `offset`; an unknown filter is 422.\"\"\"\n    \
         return _crud.list_rows(_session, _SPEC, _request.query_params, _actor)\n\n\n\
         @ROUTER.post(\n    \"\",\n    status_code=201,\n    response_model=_schemas.{class}Read,\n    \
         operation_id=\"create_{name}\",\n    responses={create_errors},\n)\n\
         def create_{name}(\n    _body: _schemas.{class}Create,\n    _response: _Response,\n    _actor: {actor},\n    \
         _session: _Session = _Depends(_get_session),\n) -> _Any:\n    \
         _row = _crud.create_row(_session, _SPEC, _body.model_dump(), _actor)\n    \
         _response.headers[\"Location\"] = f\"{{_PATH}}/{{_row.id}}\"\n    \
         return _row\n\n\n\
         @ROUTER.get(\n    \"/{{id}}\",\n    response_model=_schemas.{class}Read,\n    operation_id=\"get_{name}\",\n    \
         responses={get_errors},\n)\n\
         def get_{name}(\n    id: _uuid.UUID,\n    _actor: {actor},\n    _session: _Session = _Depends(_get_session),\n) -> _Any:\n    \
         return _crud.get_row(_session, _SPEC, id, _actor)\n\n\n\
         @ROUTER.put(\n    \"/{{id}}\",\n    response_model=_schemas.{class}Read,\n    operation_id=\"replace_{name}\",\n    \
         responses={write_errors},\n)\n\
         def replace_{name}(\n    id: _uuid.UUID,\n    _body: _schemas.{class}Create,\n    _actor: {actor},\n    \
         _session: _Session = _Depends(_get_session),\n) -> _Any:\n    \
         \"\"\"Replaces the row: an absent field takes its default, or null.\"\"\"\n    \
         return _crud.update_row(_session, _SPEC, id, _body.model_dump(), _actor, replace=True)\n\n\n\
         @ROUTER.patch(\n    \"/{{id}}\",\n    response_model=_schemas.{class}Read,\n    operation_id=\"update_{name}\",\n    \
         responses={write_errors},\n)\n\
         def update_{name}(\n    id: _uuid.UUID,\n    _body: _schemas.{class}Patch,\n    _actor: {actor},\n    \
         _session: _Session = _Depends(_get_session),\n) -> _Any:\n    \
         \"\"\"Changes the given fields only.\"\"\"\n    \
         return _crud.update_row(\n        _session,\n        _SPEC,\n        id,\n        _body.model_dump(exclude_unset=True),\n        _actor,\n        replace=False,\n    )\n\n\n\
         @ROUTER.delete(\n    \"/{{id}}\",\n    status_code=204,\n    operation_id=\"delete_{name}\",\n    \
         responses={delete_errors},\n)\n\
         def delete_{name}(\n    id: _uuid.UUID,\n    _actor: {actor},\n    _session: _Session = _Depends(_get_session),\n) -> _Response:\n    \
         _crud.delete_row(_session, _SPEC, id, _actor)\n    \
         return _Response(status_code=204)\n",
        list_errors = error_responses(auth, &[401, 422]),
        create_errors = error_responses(auth, &[400, 401, 409, 422]),
        get_errors = error_responses(auth, &[401, 404, 422]),
        write_errors = error_responses(auth, &[400, 401, 403, 404, 409, 422]),
        delete_errors = error_responses(auth, &[401, 403, 404, 409, 422]),
    );
    let header = format!(
        "\"\"\"Routes of the `{name}` entity: GET/POST {path} and\nGET/PUT/PATCH/DELETE {path}/{{id}}.\n\n\
         Generated names bound here start with `_` or a capital letter, so no field can shadow them.\n\
         \"\"\"\n\n",
        path = entity.path()
    );
    let imports = import_block(
        &out,
        &[
            (&["_dt."], "import datetime as _dt"),
            (&["_decimal."], "import decimal as _decimal"),
            (&["_uuid."], "import uuid as _uuid"),
            (&["_Any"], "from typing import Any as _Any"),
            (&["_Literal["], "from typing import Literal as _Literal"),
            (&[""], ""),
            (
                &["_APIRouter"],
                "from fastapi import APIRouter as _APIRouter",
            ),
            (&["_Depends"], "from fastapi import Depends as _Depends"),
            (&["_Request"], "from fastapi import Request as _Request"),
            (&["_Response"], "from fastapi import Response as _Response"),
            (
                &["_AwareDatetime"],
                "from pydantic import AwareDatetime as _AwareDatetime",
            ),
            (
                &["_Session"],
                "from sqlalchemy.orm import Session as _Session",
            ),
            (&[""], ""),
            (&["_crud."], "from app import crud as _crud"),
            (&["_errors."], "from app import errors as _errors"),
            (&["_models."], "from app import models as _models"),
            (&["_schemas."], "from app import schemas as _schemas"),
            (
                &["_require_actor"],
                "from app.auth import require_actor as _require_actor",
            ),
            (&["_Actor"], "from app.crud import Actor as _Actor"),
            (
                &["_get_session"],
                "from app.database import get_session as _get_session",
            ),
        ],
    );
    format!("{header}{imports}\n{out}")
}

/// `app/files.py`, with the owner of a file taken from the token when the auth feature exists.
pub fn files_module(plan: &Plan<'_>) -> String {
    let template = include_str!("templates/files.py");
    let (doc, import, dependency) = if plan.auth.is_empty() {
        (
            "Without an auth feature, every file is visible to every client.",
            "",
            "def owner_id() -> None:\n    \"\"\"Without an auth feature, files have no owner.\"\"\"\n    return None\n",
        )
    } else {
        (
            "Every route needs a bearer token; a file is visible only to the account that uploaded it.",
            "from app.auth import require_user\n",
            "def owner_id(user: AuthUser = Depends(require_user)) -> uuid.UUID:\n    \"\"\"The account a file belongs to: the caller's.\"\"\"\n    return user.id\n",
        )
    };
    template
        .replace(
            "__UNAUTHORIZED__",
            if plan.auth.is_empty() { "()" } else { "(401,)" },
        )
        .replace("__OWNER_DOC__", doc)
        .replace("__OWNER_IMPORT__\n", import)
        .replace(
            "__SYSTEM_MODELS__",
            if plan.auth.is_empty() {
                "StoredFile"
            } else {
                "AuthUser, StoredFile"
            },
        )
        .replace("__OWNER_DEPENDENCY__", &format!("\n{dependency}"))
}
