//! What the python-fastapi target builds, resolved and checked before any file is written:
//! class and constraint names, references in both directions, table order, and the test data
//! derived from every field's constraints.
//!
//! Everything a generated file could trip over is refused here with a message naming the
//! feature: a pattern no value can be sampled from, required references that form a cycle (no
//! row could ever be created), names that would collide in generated code or routes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use domain::crud_schema::{EntitySchema, FieldDef, FieldKind};
use domain::project::configuration::{EntityAccess, FileStorageConfig, Registration};
use domain::project::{Feature, FeatureType, Function, Project};
use serde_json::{Number, Value, json};
use sha2::{Digest, Sha256};

use crate::sample::{self, Scaled, StringRules};

/// Distinct valid values sampled per field: enough rows for every generated test.
pub const VARIANTS: usize = 6;
/// The longest `text` `max_length` whose too-long value the generated tests send (a
/// `max_length + 1` string); longer limits, stored before the domain bounded them, are not tested
/// that way rather than making every test run allocate it.
const TEXT_TOO_LONG_TESTED_MAX: usize = 1_000_000;
/// PostgreSQL truncates identifiers beyond 63 bytes; constraint names must stay below.
const IDENTIFIER_MAX: usize = 63;

pub const USERS_TABLE: &str = "_auth_users";
pub const FILES_TABLE: &str = "_stored_files";
pub const REFRESH_TABLE: &str = "_auth_refresh_tokens";

pub struct Plan<'a> {
    pub project: &'a Project,
    pub version: u64,
    /// Enabled crud entities, in feature order.
    pub entities: Vec<Entity<'a>>,
    /// Enabled auth features (their names go into the README).
    pub auth: Vec<&'a Feature>,
    /// Enabled file_storage features.
    pub files: Vec<&'a Feature>,
    /// Active functions, in creation order; inactive ones generate nothing.
    pub functions: Vec<&'a Function>,
    /// Registration of the (first) auth feature's configuration.
    pub registration: Registration,
    /// The (first) file_storage feature's configuration.
    pub file_config: FileStorageConfig,
    /// Entity indexes in an order where every required reference points backwards.
    pub creation_order: Vec<usize>,
    /// Foreign keys that point at a table created later (cycles through optional references),
    /// as (entity, field) indexes; PostgreSQL adds them after every table exists.
    pub deferred_fks: BTreeSet<(usize, usize)>,
    pub names: Names,
}

pub struct Entity<'a> {
    pub feature: &'a Feature,
    pub schema: &'a EntitySchema,
    /// The model class (`OrderItem`).
    pub class: String,
    pub fields: Vec<Field<'a>>,
    /// Fields of other entities (or this one) that reference this entity: (entity, field).
    pub referrers: Vec<(usize, usize)>,
    /// Test rows: valid values of every non-reference field, pairwise distinct on every unique
    /// constraint. Their count is how many rows tests may create in one test.
    pub rows: Vec<BTreeMap<String, Value>>,
    pub capacity: usize,
    /// A field name no field has, for the "unknown field" test.
    pub unknown_field: String,
    /// Who sees and changes its rows; `None` without an auth feature.
    pub access: Option<EntityAccess>,
}

pub struct Field<'a> {
    pub def: &'a FieldDef,
    /// The referenced entity's index, for reference fields.
    pub target: Option<usize>,
    /// Distinct valid values, as the tests send them (decimals as strings).
    pub valid: Vec<Value>,
    /// Values each breaking one rule of the field.
    pub invalid: Vec<Invalid>,
    /// For required references: whether each row needs a parent of its own (the reference is
    /// part of a unique constraint) rather than one shared parent.
    pub fresh_parent: bool,
}

/// A value the app must refuse with 422, naming the field.
pub struct Invalid {
    /// Short id for test reports: `too-long`, `below-min`.
    pub label: &'static str,
    /// A Python expression, or `None` for "leave the field out".
    pub python: Option<String>,
    /// Pydantic error types any one of which is right; empty accepts any type.
    pub types: Vec<&'static str>,
    /// Whether an update (PUT) must refuse it too; a missing field is fine in a partial update.
    pub on_update: bool,
}

impl<'a> Entity<'a> {
    pub fn name(&self) -> &'a str {
        &self.schema.entity
    }

    pub fn table(&self) -> &'a str {
        &self.schema.plural
    }

    pub fn path(&self) -> String {
        format!("/api/{}", self.schema.plural)
    }
}

impl Field<'_> {
    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// Whether the column takes NULL: neither required nor defaulted (a default makes a field
    /// NOT NULL, with the default on the server too).
    pub fn nullable(&self) -> bool {
        self.def.nullable()
    }
}

/// Every SQL object name the schema uses, allocated so none exceeds 63 bytes and none repeats.
#[derive(Default)]
pub struct Names {
    used: BTreeSet<String>,
    by_key: HashMap<String, String>,
}

impl Names {
    /// The name for `key` (a descriptor such as `uq:orders:code`), built from `base`.
    pub fn get(&mut self, key: &str, base: &str) -> String {
        if let Some(name) = self.by_key.get(key) {
            return name.clone();
        }
        let mut name = if base.len() <= IDENTIFIER_MAX {
            base.to_owned()
        } else {
            hashed(base, key)
        };
        if self.used.contains(&name) {
            name = hashed(base, key);
        }
        let mut n = 1;
        while self.used.contains(&name) {
            name = hashed(base, &format!("{key}#{n}"));
            n += 1;
        }
        self.used.insert(name.clone());
        self.by_key.insert(key.to_owned(), name.clone());
        name
    }

    fn reserve(&mut self, name: &str) {
        self.used.insert(name.to_owned());
    }

    /// The name of a constraint or index: `{prefix}_{table}_{parts}`.
    pub fn constraint(&mut self, prefix: &str, table: &str, parts: &[&str]) -> String {
        let key = format!("{prefix}:{table}:{}", parts.join(":"));
        let base = if parts.is_empty() {
            format!("{prefix}_{table}")
        } else {
            format!("{prefix}_{table}_{}", parts.join("_"))
        };
        self.get(&key, &base)
    }
}

/// `base` cut to leave room for `_` and 8 hex digits of the key's SHA-256, on a char boundary.
fn hashed(base: &str, key: &str) -> String {
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    let mut cut = IDENTIFIER_MAX - 9;
    while !base.is_char_boundary(cut.min(base.len())) {
        cut -= 1;
    }
    format!("{}_{}", &base[..cut.min(base.len())], &digest[..8])
}

/// `order_item` → `OrderItem`; Python's capitalised keywords get a trailing underscore.
pub fn class_name(entity: &str) -> String {
    let camel: String = entity
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    if ["None", "True", "False"].contains(&camel.as_str()) {
        format!("{camel}_")
    } else {
        camel
    }
}

pub fn build<'a>(project: &'a Project, version: u64) -> Result<Plan<'a>, Vec<String>> {
    let mut problems = Vec::new();
    let enabled = project.features.iter().filter(|f| f.is_enabled);
    let mut crud: Vec<(&Feature, &EntitySchema)> = Vec::new();
    let mut auth = Vec::new();
    let mut files = Vec::new();
    for feature in enabled {
        match feature.feature_type {
            FeatureType::Crud => match feature.entity() {
                Some(schema) => crud.push((feature, schema)),
                None => problems.push(format!(
                    "feature `{}` is a crud feature without a schema",
                    feature.name
                )),
            },
            FeatureType::Auth => auth.push(&**feature),
            FeatureType::FileStorage => files.push(&**feature),
            // `generation_problems` refused these already.
            other => problems.push(format!(
                "feature `{}` is of type {other}, which this target cannot generate",
                feature.name
            )),
        }
    }

    let functions = active_functions(project, &mut problems);

    let index: HashMap<&str, usize> = crud
        .iter()
        .enumerate()
        .map(|(i, (_, s))| (s.entity.as_str(), i))
        .collect();

    // Names that would collide in generated code or in the URL space.
    let mut classes: HashMap<String, &str> = HashMap::new();
    for (feature, schema) in &crud {
        let class = class_name(&schema.entity);
        if let Some(other) = classes.insert(class.clone(), &schema.entity) {
            problems.push(format!(
                "feature `{}`: entities `{other}` and `{}` would both become the Python class \
                 `{class}`; rename one",
                feature.name, schema.entity
            ));
        }
        if !auth.is_empty() && schema.plural == "auth" {
            problems.push(format!(
                "feature `{}`: the plural `auth` would share /api/auth with the auth feature; \
                 choose another plural",
                feature.name
            ));
        }
        if !files.is_empty() && schema.plural == "files" {
            problems.push(format!(
                "feature `{}`: the plural `files` would share /api/files with the file_storage \
                 feature; choose another plural",
                feature.name
            ));
        }
    }

    // Resolve references.
    let mut targets: Vec<Vec<Option<usize>>> = Vec::new();
    for (feature, schema) in &crud {
        let mut row = Vec::new();
        for field in &schema.fields {
            match &field.kind {
                FieldKind::Reference { references } => match index.get(references.as_str()) {
                    Some(&t) => row.push(Some(t)),
                    None => {
                        problems.push(format!(
                            "feature `{}`: field `{}` references `{references}`, which is not an \
                             enabled crud entity of the project",
                            feature.name, field.name
                        ));
                        row.push(None);
                    }
                },
                _ => row.push(None),
            }
        }
        targets.push(row);
    }
    if !problems.is_empty() {
        return Err(problems);
    }

    // Required references must not form a cycle, or no row of those entities could be created.
    let required_edges = |i: usize| -> Vec<usize> {
        crud[i]
            .1
            .fields
            .iter()
            .zip(&targets[i])
            .filter(|(f, _)| f.required)
            .filter_map(|(_, t)| *t)
            .collect()
    };
    let creation_order = match topological(crud.len(), required_edges) {
        Ok(order) => order,
        Err(cycle) => {
            let names: Vec<&str> = cycle.iter().map(|&i| crud[i].1.entity.as_str()).collect();
            return Err(vec![format!(
                "feature `{}`: the required references {} form a cycle, so no row of these \
                 entities could ever be created; make one of them optional",
                crud[cycle[0]].0.name,
                names.join(" → ")
            )]);
        }
    };
    let position: HashMap<usize, usize> = creation_order
        .iter()
        .enumerate()
        .map(|(p, &i)| (i, p))
        .collect();
    let mut deferred_fks = BTreeSet::new();
    for (i, row) in targets.iter().enumerate() {
        for (f, target) in row.iter().enumerate() {
            if let Some(t) = target {
                if *t != i && position[t] > position[&i] {
                    deferred_fks.insert((i, f));
                }
            }
        }
    }

    let auth_config = auth.first().map(|f| f.auth_config());
    let mut entities = Vec::with_capacity(crud.len());
    for (i, (feature, schema)) in crud.iter().enumerate() {
        let mut fields = Vec::with_capacity(schema.fields.len());
        for (f, def) in schema.fields.iter().enumerate() {
            let target = targets[i][f];
            match sample_field(def) {
                Ok((valid, invalid)) => fields.push(Field {
                    def,
                    target,
                    valid,
                    invalid,
                    fresh_parent: def.unique || schema.unique.iter().any(|g| g.contains(&def.name)),
                }),
                Err(reason) => problems.push(format!(
                    "feature `{}`, field `{}`: {reason}",
                    feature.name, def.name
                )),
            }
        }
        let mut unknown_field = "unknown_field".to_owned();
        let mut n = 1;
        while schema.field(&unknown_field).is_some() {
            unknown_field = format!("unknown_field_{n}");
            n += 1;
        }
        entities.push(Entity {
            feature,
            schema,
            class: class_name(&schema.entity),
            fields,
            referrers: Vec::new(),
            rows: Vec::new(),
            capacity: 0,
            unknown_field,
            access: auth_config.as_ref().map(|c| c.access(&schema.entity)),
        });
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    for i in 0..entities.len() {
        for f in 0..entities[i].fields.len() {
            if let Some(t) = entities[i].fields[f].target {
                entities[t].referrers.push((i, f));
            }
        }
    }
    // Rows and capacities, parents first so a fresh parent's capacity bounds its children's.
    for &i in &creation_order {
        let rows = distinct_rows(&entities[i]);
        let mut capacity = rows.len();
        for field in &entities[i].fields {
            if let (Some(t), true, true) = (field.target, field.def.required, field.fresh_parent) {
                capacity = capacity.min(entities[t].capacity);
            }
        }
        entities[i].rows = rows;
        entities[i].capacity = capacity;
    }

    let mut names = Names::default();
    for entity in &entities {
        names.reserve(entity.table());
    }
    for table in [USERS_TABLE, FILES_TABLE, REFRESH_TABLE, "_alembic_version"] {
        names.reserve(table);
    }

    Ok(Plan {
        project,
        version,
        entities,
        registration: auth_config.map(|c| c.registration).unwrap_or_default(),
        file_config: files
            .first()
            .map(|f| f.file_storage_config())
            .unwrap_or_default(),
        auth,
        files,
        functions,
        creation_order,
        deferred_fks,
        names,
    })
}

/// The project's active functions. A function's generation mode other than `manual` was refused
/// before the plan (`generation_problems`); a route the generated app owns is refused here, which
/// the domain already prevents when a function or an entity is written.
fn active_functions<'a>(project: &'a Project, problems: &mut Vec<String>) -> Vec<&'a Function> {
    let active: Vec<&Function> = project.functions.iter().filter(|f| f.is_active).collect();
    for function in &active {
        if let Some(why) = project.generated_route_owning(&function.endpoint_path) {
            problems.push(format!(
                "function `{}`: its endpoint `{}` {why}; choose another `endpoint_path`",
                function.name, function.endpoint_path
            ));
        }
    }
    active
}

/// Nodes ordered so each comes after the nodes its edges point to; or a cycle.
fn topological(n: usize, edges: impl Fn(usize) -> Vec<usize>) -> Result<Vec<usize>, Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        node: usize,
        edges: &dyn Fn(usize) -> Vec<usize>,
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
        order: &mut Vec<usize>,
    ) -> Result<(), Vec<usize>> {
        match marks[node] {
            Mark::Done => return Ok(()),
            Mark::Open => {
                let start = stack.iter().position(|&s| s == node).unwrap_or(0);
                let mut cycle = stack[start..].to_vec();
                cycle.push(node);
                return Err(cycle);
            }
            Mark::New => {}
        }
        marks[node] = Mark::Open;
        stack.push(node);
        for next in edges(node) {
            visit(next, edges, marks, stack, order)?;
        }
        stack.pop();
        marks[node] = Mark::Done;
        order.push(node);
        Ok(())
    }
    let mut marks = vec![Mark::New; n];
    let mut order = Vec::with_capacity(n);
    for node in 0..n {
        visit(node, &edges, &mut marks, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}

/// Up to [`VARIANTS`] rows, each taking variant `v` of every non-reference field, kept while
/// they stay pairwise distinct on every unique constraint (a null never conflicts, and fresh
/// parents make a reference distinct).
fn distinct_rows(entity: &Entity<'_>) -> Vec<BTreeMap<String, Value>> {
    let value = |field: &Field<'_>, v: usize| -> Option<Value> {
        if field.target.is_some() {
            return None;
        }
        Some(field.valid[v % field.valid.len()].clone())
    };
    let key_of = |fields: &[&str], v: usize| -> Option<Vec<String>> {
        let mut key = Vec::new();
        for name in fields {
            let field = entity.fields.iter().find(|f| f.name() == *name)?;
            match (field.target, field.def.required) {
                // A fresh parent per row: always distinct.
                (Some(_), true) => key.push(format!("parent#{v}")),
                // Optional references stay null in generated rows.
                (Some(_), false) => return None,
                (None, _) => key.push(value(field, v)?.to_string()),
            }
        }
        Some(key)
    };
    let mut groups: Vec<Vec<&str>> = entity
        .fields
        .iter()
        .filter(|f| f.def.unique)
        .map(|f| vec![f.name()])
        .collect();
    groups.extend(
        entity
            .schema
            .unique
            .iter()
            .map(|g| g.iter().map(String::as_str).collect()),
    );
    let mut rows = Vec::new();
    let mut seen: Vec<BTreeSet<Vec<String>>> = vec![BTreeSet::new(); groups.len()];
    'rows: for v in 0..VARIANTS {
        let keys: Vec<Option<Vec<String>>> = groups.iter().map(|g| key_of(g, v)).collect();
        for (key, seen) in keys.iter().zip(&seen) {
            if key.as_ref().is_some_and(|k| seen.contains(k)) {
                break 'rows;
            }
        }
        for (key, seen) in keys.into_iter().zip(&mut seen) {
            if let Some(key) = key {
                seen.insert(key);
            }
        }
        let row: BTreeMap<String, Value> = entity
            .fields
            .iter()
            .filter_map(|f| value(f, v).map(|value| (f.name().to_owned(), value)))
            .collect();
        rows.push(row);
    }
    rows
}

/// The valid values and the refused values of one field.
fn sample_field(def: &FieldDef) -> Result<(Vec<Value>, Vec<Invalid>), String> {
    let mut invalid = Vec::new();
    let case = |label, python: &str, types: &[&'static str]| Invalid {
        label,
        python: Some(python.to_owned()),
        types: types.to_vec(),
        on_update: true,
    };
    let py = crate::escape::python_str;
    if def.required || def.default.is_some() {
        if def.default.is_none() {
            invalid.push(Invalid {
                label: "missing",
                python: None,
                types: vec!["missing"],
                on_update: false,
            });
        }
        invalid.push(case("null", "None", &[]));
    }
    let valid: Vec<Value> = match &def.kind {
        FieldKind::String {
            min_length,
            max_length,
            pattern,
        } => {
            let rules = StringRules {
                min_len: min_length.unwrap_or(0) as usize,
                max_len: *max_length as usize,
                pattern: pattern.as_deref(),
            };
            let samples = sample::string_samples(rules, VARIANTS)?;
            invalid.push(case("wrong-type", "12345", &["string_type"]));
            let mut types = vec!["string_too_long"];
            if samples.too_long_mismatches {
                types.push("string_pattern_mismatch");
            }
            invalid.push(case(
                "too-long",
                &python_string_expr(&samples.too_long),
                &types,
            ));
            if let Some((short, mismatches)) = &samples.too_short {
                let mut types = vec!["string_too_short"];
                if *mismatches {
                    types.push("string_pattern_mismatch");
                }
                invalid.push(case("too-short", &python_string_expr(short), &types));
            }
            if let Some(bad) = &samples.mismatch {
                invalid.push(case(
                    "pattern-mismatch",
                    &python_string_expr(bad),
                    &["string_pattern_mismatch"],
                ));
            }
            let values = samples.valid;
            values.into_iter().map(Value::String).collect()
        }
        FieldKind::Text { max_length } => {
            let max = max_length.unwrap_or(domain::crud_schema::STRING_MAX_LENGTH_LIMIT) as usize;
            let rules = StringRules {
                min_len: 0,
                // Stored before text lengths were limited, a length may be far beyond what a
                // test should send; the valid values do not depend on it.
                max_len: max.min(TEXT_TOO_LONG_TESTED_MAX),
                pattern: None,
            };
            let samples = sample::string_samples(rules, VARIANTS)?;
            invalid.push(case("wrong-type", "12345", &["string_type"]));
            if max_length.is_some() && max <= TEXT_TOO_LONG_TESTED_MAX {
                invalid.push(case(
                    "too-long",
                    &python_string_expr(&samples.too_long),
                    &["string_too_long"],
                ));
            }
            samples.valid.into_iter().map(Value::String).collect()
        }
        FieldKind::Integer { min, max } => {
            invalid.push(case("wrong-type", &py("12"), &["int_type"]));
            invalid.push(case("fraction", "1.5", &["int_type"]));
            let below = min.map_or(i128::from(i64::MIN) - 1, |m| i128::from(m) - 1);
            let above = max.map_or(i128::from(i64::MAX) + 1, |m| i128::from(m) + 1);
            invalid.push(case(
                "below-min",
                &below.to_string(),
                &["greater_than_equal"],
            ));
            invalid.push(case("above-max", &above.to_string(), &["less_than_equal"]));
            sample::valid_integers(*min, *max, VARIANTS)
                .into_iter()
                .map(|n| json!(n))
                .collect()
        }
        FieldKind::Decimal {
            precision,
            scale,
            min,
            max,
        } => {
            let (p, s) = (*precision, *scale);
            let min_text = min.as_ref().map(Number::to_string);
            let max_text = max.as_ref().map(Number::to_string);
            let (lo, hi) = sample::decimal_range(p, s, min_text.as_deref(), max_text.as_deref());
            if lo > hi {
                return Err("its decimal range is empty".into());
            }
            let values = sample::valid_decimals(p, s, lo, hi, VARIANTS);
            let limit = sample::pow10(p) - 1;
            let text = |v: Scaled, scale: u8| py(&sample::format_scaled(v, scale));
            invalid.push(case("not-a-number", &py("abc"), &["decimal_parsing"]));
            if min.is_some() && lo.0 > -limit {
                invalid.push(case(
                    "below-min",
                    &text(Scaled(lo.0 - 1), s),
                    &["greater_than_equal"],
                ));
            }
            if max.is_some() && hi.0 < limit {
                invalid.push(case(
                    "above-max",
                    &text(Scaled(hi.0 + 1), s),
                    &["less_than_equal"],
                ));
            }
            // One more decimal place than the scale allows, next to a valid value.
            let base = values[0];
            let step = if base == hi { -1 } else { 1 };
            let finer = base.0.checked_mul(10).and_then(|v| v.checked_add(step));
            if let (Some(finer), true) = (finer, s < domain::crud_schema::DECIMAL_PRECISION_MAX) {
                invalid.push(case(
                    "too-many-places",
                    &text(Scaled(finer), s + 1),
                    &[
                        "decimal_max_places",
                        "decimal_max_digits",
                        "greater_than_equal",
                        "less_than_equal",
                    ],
                ));
            }
            let whole = p - s;
            if whole < domain::crud_schema::DECIMAL_PRECISION_MAX {
                let too_big = format!("1{}", "0".repeat(usize::from(whole)));
                invalid.push(case(
                    "too-many-digits",
                    &py(&too_big),
                    &[
                        "decimal_whole_digits",
                        "decimal_max_digits",
                        "less_than_equal",
                    ],
                ));
            }
            values
                .into_iter()
                .map(|v| Value::String(sample::format_scaled(v, s)))
                .collect()
        }
        FieldKind::Float { min, max } => {
            invalid.push(case("wrong-type", &py("abc"), &["float_type"]));
            if let Some(m) = min {
                let below = m - m.abs() * 0.5 - 1.0;
                if below.is_finite() && below < *m {
                    invalid.push(case(
                        "below-min",
                        &format!("{below:?}"),
                        &["greater_than_equal"],
                    ));
                }
            }
            if let Some(m) = max {
                let above = m + m.abs() * 0.5 + 1.0;
                if above.is_finite() && above > *m {
                    invalid.push(case(
                        "above-max",
                        &format!("{above:?}"),
                        &["less_than_equal"],
                    ));
                }
            }
            sample::valid_floats(*min, *max, VARIANTS)
                .into_iter()
                .filter_map(|f| Number::from_f64(f).map(Value::Number))
                .collect()
        }
        FieldKind::Boolean => {
            invalid.push(case("wrong-type", &py("yes"), &["bool_type"]));
            vec![json!(true), json!(false)]
        }
        FieldKind::Date => {
            invalid.push(case("impossible-date", &py("2025-02-30"), &[]));
            invalid.push(case("not-text", "20250101", &[]));
            (1..=VARIANTS)
                .map(|m| json!(format!("2024-{m:02}-{:02}", 14 + m)))
                .collect()
        }
        FieldKind::Datetime => {
            invalid.push(case(
                "naive",
                &py("2025-01-31T12:00:00"),
                &["timezone_aware"],
            ));
            invalid.push(case("not-a-datetime", &py("yesterday"), &[]));
            (1..=VARIANTS)
                .map(|m| json!(format!("2024-{m:02}-{:02}T{:02}:30:00Z", 14 + m, 8 + m)))
                .collect()
        }
        FieldKind::Uuid => {
            invalid.push(case("malformed", &py("not-a-uuid"), &["uuid_parsing"]));
            (1..=VARIANTS)
                .map(|v| json!(format!("00000000-0000-4000-8000-{v:012x}")))
                .collect()
        }
        FieldKind::Json => vec![
            json!({"sample": 1}),
            json!([1, "two", null]),
            json!("text"),
            json!(42),
            json!(true),
            json!({"nested": {"list": [1.5]}}),
        ],
        FieldKind::Enum { values } => {
            let mut wrong = format!("not_{}", values[0]);
            while values.contains(&wrong) {
                wrong.push('x');
            }
            invalid.push(case("not-a-value", &py(&wrong), &["literal_error"]));
            values.iter().take(VARIANTS).map(|v| json!(v)).collect()
        }
        FieldKind::Reference { .. } => {
            invalid.push(case("malformed", &py("not-a-uuid"), &["uuid_parsing"]));
            invalid.push(case(
                "dangling",
                &py("ffffffff-ffff-4fff-bfff-ffffffffffff"),
                &["missing_reference"],
            ));
            Vec::new()
        }
    };
    Ok((valid, invalid))
}

/// A Python expression for `s`: a literal, or `"c" * n` for a long run of one character.
pub fn python_string_expr(s: &str) -> String {
    let mut chars = s.chars();
    if let Some(first) = chars.next() {
        let n = s.chars().count();
        if n > 40 && chars.all(|c| c == first) {
            return format!("{} * {n}", crate::escape::python_str(&first.to_string()));
        }
    }
    crate::escape::python_str(s)
}
