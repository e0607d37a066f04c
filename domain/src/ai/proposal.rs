//! What an AI request proposes, per kind: the JSON Schema a model answers in, parsing an answer into a typed [`Proposal`] with pointers, and validating it against a project with the project's own rules.
//!
//! A proposal is made of the bodies users send: `generate_config` proposes features exactly as
//! `POST /projects/{id}/features` takes them (mode `ai_assisted`), `enhance_config` proposes a `PUT
//! /projects/{id}/features/{feature_id}` body (mode `mixed`) with a rationale, and `generate_code`
//! a function's new code. The model answers in a strict form of the same shape ([`json_schema`]):
//! strict structured output requires every member, so a `null` member means an absent one, and an
//! `auth` configuration's `entities` map is a list of `{entity, access}` pairs (a map with free keys
//! has no strict schema). [`parse`] turns either form into the stored one (null-free bodies, the
//! map), so parsing a stored proposal gives it back. Limits of the schema, which [`validate`]
//! enforces instead: a field's `default` cannot be an object or array (a `json` field's default),
//! and the schema language's per-type rules (which options fit which `type`) are the decider's.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::crud_schema::FIELD_TYPES;
use crate::error::{FieldError, Pointer};
use crate::ids::{AiRequestId, FeatureId, FunctionId};
use crate::limits::Limits;
use crate::project::{
    AddFeature, AiContent, ApplyAiContent, FeatureChanges, FeatureType, FunctionChanges,
    GenerationMode, NewFeature, Project, ProjectCommand, ProjectError, ProjectEvent, UpdateFeature,
    UpdateFunction,
};

/// What an AI request asks for; each kind has its own proposal (the request's kind itself).
pub type ProposalKind = super::request::AiRequestKind;

/// A feature exactly as `POST /projects/{id}/features` takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureBody {
    pub name: String,
    pub feature_type: FeatureType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_mode: Option<GenerationMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_definition: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_enabled: Option<bool>,
}

/// Changes exactly as `PUT /projects/{id}/features/{feature_id}` takes them (absent = unchanged;
/// `feature_type` never changes, so it has no member here).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureChangesBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_mode: Option<GenerationMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_definition: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_enabled: Option<bool>,
}

/// `generate_config`: new features, each `ai_assisted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigProposal {
    pub features: Vec<FeatureBody>,
}

/// `enhance_config`: changes to one feature, which becomes `mixed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnhanceProposal {
    pub feature_id: FeatureId,
    pub changes: FeatureChangesBody,
    pub rationale: String,
}

/// `generate_code`: a function's new code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeProposal {
    pub function_id: FunctionId,
    pub function_code: String,
}

/// A proposal of any kind; serialised as its bare body (the kind is stored beside it).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Proposal {
    GenerateConfig(ConfigProposal),
    EnhanceConfig(EnhanceProposal),
    GenerateCode(CodeProposal),
}

impl Proposal {
    pub fn kind(&self) -> ProposalKind {
        match self {
            Proposal::GenerateConfig(_) => ProposalKind::GenerateConfig,
            Proposal::EnhanceConfig(_) => ProposalKind::EnhanceConfig,
            Proposal::GenerateCode(_) => ProposalKind::GenerateCode,
        }
    }

    /// The stored form: the bodies users send, without `null` members.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// How many fresh feature ids [`Proposal::commands`] takes.
    pub fn new_features(&self) -> usize {
        match self {
            Proposal::GenerateConfig(p) => p.features.len(),
            _ => 0,
        }
    }

    /// The project commands that apply this proposal, in the order they are decided, each with
    /// the pointer of the proposal member it comes from. `fresh_feature_id` gives one new id per
    /// proposed feature. A feature is added after the proposed features whose entities it
    /// references (or, for `auth`, names), so a proposal need not order them.
    pub fn commands(
        &self,
        origin: &Origin,
        mut fresh_feature_id: impl FnMut() -> FeatureId,
    ) -> Vec<(Pointer, ProjectCommand)> {
        let apply = |content| {
            ProjectCommand::ApplyAiContent(ApplyAiContent {
                ai_request_id: origin.ai_request_id,
                content,
            })
        };
        match self {
            Proposal::GenerateConfig(p) => {
                let ids: Vec<FeatureId> = p.features.iter().map(|_| fresh_feature_id()).collect();
                dependency_order(&p.features)
                    .into_iter()
                    .map(|i| {
                        let body = &p.features[i];
                        let feature = NewFeature {
                            id: ids[i],
                            name: body.name.clone(),
                            feature_type: body.feature_type,
                            generation_mode: Some(GenerationMode::AiAssisted),
                            configuration: body.configuration.clone(),
                            schema_definition: body.schema_definition.clone(),
                            is_enabled: body.is_enabled.unwrap_or(true),
                        };
                        let at = origin.at;
                        let pointer = Pointer::root().key("features").index(i);
                        (
                            pointer,
                            apply(AiContent::AddFeature(AddFeature { feature, at })),
                        )
                    })
                    .collect()
            }
            Proposal::EnhanceConfig(p) => {
                let changes = FeatureChanges {
                    name: p.changes.name.clone(),
                    feature_type: None,
                    generation_mode: Some(Some(GenerationMode::Mixed)),
                    configuration: p.changes.configuration.clone(),
                    schema_definition: p.changes.schema_definition.clone(),
                    is_enabled: p.changes.is_enabled,
                };
                vec![(
                    Pointer::root().key("changes"),
                    apply(AiContent::UpdateFeature(UpdateFeature {
                        feature_id: p.feature_id,
                        changes,
                        at: origin.at,
                    })),
                )]
            }
            Proposal::GenerateCode(p) => {
                let changes = FunctionChanges {
                    function_code: Some(p.function_code.clone()),
                    ..FunctionChanges::default()
                };
                vec![(
                    Pointer::root(),
                    apply(AiContent::UpdateFunction(UpdateFunction {
                        function_id: p.function_id,
                        changes,
                        at: origin.at,
                    })),
                )]
            }
        }
    }
}

/// Who applies a proposal's content, and when: the AI request, recorded on every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub ai_request_id: AiRequestId,
    pub at: OffsetDateTime,
}

/// The indexes of `features` so that each comes after the proposed features defining an entity it
/// references or (an `auth` feature) names; otherwise in the proposal's order. A cycle keeps the
/// proposal's order for the features in it, and the decider reports the reference it cannot meet.
fn dependency_order(features: &[FeatureBody]) -> Vec<usize> {
    let entity_of = |f: &FeatureBody| {
        f.schema_definition
            .as_ref()
            .and_then(|s| s.get("entity"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let entities: Vec<Option<String>> = features.iter().map(entity_of).collect();
    let needs: Vec<Vec<usize>> = features
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut names: Vec<&str> = Vec::new();
            if let Some(fields) = f
                .schema_definition
                .as_ref()
                .and_then(|s| s.get("fields"))
                .and_then(Value::as_array)
            {
                names.extend(
                    fields
                        .iter()
                        .filter_map(|field| field.get("references").and_then(Value::as_str)),
                );
            }
            if let Some(Value::Object(listed)) =
                f.configuration.as_ref().and_then(|c| c.get("entities"))
            {
                names.extend(listed.keys().map(String::as_str));
            }
            (0..features.len())
                .filter(|&j| j != i && entities[j].as_deref().is_some_and(|e| names.contains(&e)))
                .collect()
        })
        .collect();
    let mut placed = vec![false; features.len()];
    let mut order = Vec::with_capacity(features.len());
    while order.len() < features.len() {
        let next = (0..features.len())
            .find(|&i| !placed[i] && needs[i].iter().all(|&j| placed[j]))
            .or_else(|| (0..features.len()).find(|&i| !placed[i]));
        let Some(i) = next else { break };
        placed[i] = true;
        order.push(i);
    }
    order
}

// --- the JSON Schemas a model answers in ---

fn nullable(kind: &str) -> Value {
    json!({"type": [kind, "null"]})
}

fn closed(properties: Value) -> Value {
    let required: Vec<String> = properties
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

fn or_null(mut schema: Value) -> Value {
    if let Some(kind) = schema
        .get("type")
        .and_then(Value::as_str)
        .map(str::to_owned)
    {
        schema["type"] = json!([kind, "null"]);
    }
    schema
}

/// A `crud` entity in the schema language (`docs/api.md`); every option is present, `null` when
/// unused.
fn entity_schema() -> Value {
    let field = closed(json!({
        "name": {"type": "string", "description": "lower-case snake_case, unique in the entity"},
        "type": {"type": "string", "enum": FIELD_TYPES},
        "required": nullable("boolean"),
        "unique": nullable("boolean"),
        "default": {"type": ["string", "number", "boolean", "null"]},
        "min_length": nullable("integer"),
        "max_length": nullable("integer"),
        "pattern": nullable("string"),
        "min": nullable("number"),
        "max": nullable("number"),
        "precision": nullable("integer"),
        "scale": nullable("integer"),
        "values": {"type": ["array", "null"], "items": {"type": "string"}},
        "references": {"type": ["string", "null"], "description": "the entity a `reference` field points to"},
    }));
    closed(json!({
        "entity": {"type": "string", "description": "lower-case snake_case entity name"},
        "plural": nullable("string"),
        "fields": {"type": "array", "items": field},
        "unique": {"type": ["array", "null"], "items": {"type": "array", "items": {"type": "string"}}},
    }))
}

/// The `configuration` of every feature type in one object: `auth` takes `registration` and
/// `entities`, `file_storage` the other two, every other type none (all `null`).
fn configuration_schema() -> Value {
    closed(json!({
        "registration": {"type": ["string", "null"], "enum": ["open", "closed", null]},
        "entities": {"type": ["array", "null"], "items": closed(json!({
            "entity": {"type": "string"},
            "access": {"type": "string", "enum": ["owner_scoped", "shared_read"]},
        }))},
        "max_size_bytes": nullable("integer"),
        "allowed_content_types": {"type": ["array", "null"], "items": {"type": "string"}},
    }))
}

fn feature_types() -> Vec<&'static str> {
    FeatureType::ALL
        .iter()
        .filter(|t| **t != FeatureType::CustomFunction)
        .map(|t| t.as_str())
        .collect()
}

/// The JSON Schema of `kind`'s answer, for the provider's structured-output mode: strict-mode
/// compatible (every object closed, every member required, optional ones nullable).
pub fn json_schema(kind: ProposalKind) -> Value {
    match kind {
        ProposalKind::GenerateConfig => closed(json!({
            "features": {"type": "array", "items": closed(json!({
                "name": {"type": "string", "description": "1 to 100 characters, unique in the project ignoring case"},
                "feature_type": {"type": "string", "enum": feature_types()},
                "generation_mode": {"type": "string", "enum": ["ai_assisted"]},
                "configuration": or_null(configuration_schema()),
                "schema_definition": or_null(entity_schema()),
                "is_enabled": nullable("boolean"),
            }))},
        })),
        ProposalKind::EnhanceConfig => closed(json!({
            "feature_id": {"type": "string", "description": "the id of the feature to improve"},
            "changes": closed(json!({
                "name": nullable("string"),
                "generation_mode": {"type": "string", "enum": ["mixed"]},
                "configuration": or_null(configuration_schema()),
                "schema_definition": or_null(entity_schema()),
                "is_enabled": nullable("boolean"),
            })),
            "rationale": {"type": "string", "description": "why these changes improve the feature"},
        })),
        ProposalKind::GenerateCode => closed(json!({
            "function_id": {"type": "string", "description": "the id of the function"},
            "function_code": {"type": "string", "description": "Python 3, standard library only, defining `def handler(input)`"},
        })),
    }
}

// --- parsing an answer ---

/// Reads one object's members, recording a problem per missing, mistyped or unknown member.
struct Members<'a> {
    object: &'a Map<String, Value>,
    at: Pointer,
    known: &'static [&'static str],
}

impl<'a> Members<'a> {
    fn of(
        raw: &'a Value,
        at: &Pointer,
        known: &'static [&'static str],
        errors: &mut Vec<FieldError>,
    ) -> Option<Self> {
        let Value::Object(object) = raw else {
            errors.push(FieldError::at(at, "must be an object"));
            return None;
        };
        for key in object.keys().filter(|k| !known.contains(&k.as_str())) {
            errors.push(FieldError::at(
                &at.key(key),
                format!("unknown member `{key}`; expected {}", names(known)),
            ));
        }
        Some(Self {
            object,
            at: at.clone(),
            known,
        })
    }

    /// The member, `None` when absent or `null`.
    fn get(&self, key: &str) -> Option<&'a Value> {
        debug_assert!(self.known.contains(&key));
        self.object.get(key).filter(|v| !v.is_null())
    }

    fn required(&self, key: &str, errors: &mut Vec<FieldError>) -> Option<&'a Value> {
        let value = self.get(key);
        if value.is_none() {
            errors.push(FieldError::at(&self.at.key(key), "is required"));
        }
        value
    }

    fn string(&self, key: &str, required: bool, errors: &mut Vec<FieldError>) -> Option<String> {
        let value = if required {
            self.required(key, errors)?
        } else {
            self.get(key)?
        };
        match value.as_str() {
            Some(s) => Some(s.to_owned()),
            None => {
                errors.push(FieldError::at(&self.at.key(key), "must be a string"));
                None
            }
        }
    }

    fn boolean(&self, key: &str, errors: &mut Vec<FieldError>) -> Option<bool> {
        let value = self.get(key)?;
        let found = value.as_bool();
        if found.is_none() {
            errors.push(FieldError::at(
                &self.at.key(key),
                "must be `true`, `false` or `null`",
            ));
        }
        found
    }

    /// The mode a proposal's content is applied with: absent, `null` or exactly `mode`.
    fn mode(&self, mode: GenerationMode, errors: &mut Vec<FieldError>) {
        if let Some(value) = self.get("generation_mode") {
            if value.as_str() != Some(mode.as_str()) {
                errors.push(FieldError::at(
                    &self.at.key("generation_mode"),
                    format!(
                        "must be `{}`: the proposal's content is applied in that mode",
                        mode.as_str()
                    ),
                ));
            }
        }
    }

    fn id<T: std::str::FromStr>(&self, key: &str, errors: &mut Vec<FieldError>) -> Option<T> {
        let raw = self.string(key, true, errors)?;
        let id = raw.parse().ok();
        if id.is_none() {
            errors.push(FieldError::at(
                &self.at.key(key),
                "must be the id (a UUID) you were given",
            ));
        }
        id
    }
}

fn names(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An object without its `null` members.
fn without_nulls(members: &Map<String, Value>) -> Map<String, Value> {
    members
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A feature's `configuration`: `null` members dropped, `entities` as a list of `{entity,
/// access}` pairs made the map the API takes. Its rules are the feature type's, in the decider.
fn configuration(raw: &Value, at: &Pointer, errors: &mut Vec<FieldError>) -> Option<Value> {
    let Value::Object(members) = raw else {
        errors.push(FieldError::at(at, "must be an object or `null`"));
        return None;
    };
    let mut members = without_nulls(members);
    if let Some(Value::Array(pairs)) = members.get("entities") {
        let mut map = Map::new();
        for (i, pair) in pairs.iter().enumerate() {
            let here = at.key("entities").index(i);
            let entity = pair.get("entity").and_then(Value::as_str);
            match (entity, pair.get("access")) {
                (Some(entity), Some(access)) if pair.as_object().is_some_and(|o| o.len() == 2) => {
                    if map.insert(entity.to_owned(), access.clone()).is_some() {
                        errors.push(FieldError::at(
                            &here.key("entity"),
                            format!("`{entity}` is listed twice"),
                        ));
                    }
                }
                _ => errors.push(FieldError::at(
                    &here,
                    "must be `{\"entity\": <entity name>, \"access\": \"owner_scoped\" | \"shared_read\"}`",
                )),
            }
        }
        members.insert("entities".into(), Value::Object(map));
    }
    Some(Value::Object(members))
}

/// A `crud` schema: `null` members dropped from the entity and from each field. Its rules are the
/// schema language's, in the decider.
fn schema_definition(raw: &Value, at: &Pointer, errors: &mut Vec<FieldError>) -> Option<Value> {
    let Value::Object(members) = raw else {
        errors.push(FieldError::at(at, "must be an object or `null`"));
        return None;
    };
    let mut members = without_nulls(members);
    if let Some(Value::Array(fields)) = members.get_mut("fields") {
        for field in fields.iter_mut() {
            if let Value::Object(options) = field {
                *options = without_nulls(options);
            }
        }
    }
    Some(Value::Object(members))
}

const FEATURE_MEMBERS: &[&str] = &[
    "name",
    "feature_type",
    "generation_mode",
    "configuration",
    "schema_definition",
    "is_enabled",
];
const CHANGES_MEMBERS: &[&str] = &[
    "name",
    "generation_mode",
    "configuration",
    "schema_definition",
    "is_enabled",
];

fn feature(raw: &Value, at: &Pointer, errors: &mut Vec<FieldError>) -> Option<FeatureBody> {
    let before = errors.len();
    let m = Members::of(raw, at, FEATURE_MEMBERS, errors)?;
    let name = m.string("name", true, errors);
    let feature_type = m.string("feature_type", true, errors).and_then(|raw| {
        let found = FeatureType::ALL.into_iter().find(|t| t.as_str() == raw);
        if found.is_none() {
            errors.push(FieldError::at(
                &at.key("feature_type"),
                format!("must be one of {}", names(&feature_types())),
            ));
        }
        found
    });
    m.mode(GenerationMode::AiAssisted, errors);
    let configuration = m
        .get("configuration")
        .and_then(|c| configuration(c, &at.key("configuration"), errors));
    let schema_definition = m
        .get("schema_definition")
        .and_then(|s| schema_definition(s, &at.key("schema_definition"), errors));
    let is_enabled = m.boolean("is_enabled", errors);
    if errors.len() > before {
        return None;
    }
    Some(FeatureBody {
        name: name?,
        feature_type: feature_type?,
        generation_mode: Some(GenerationMode::AiAssisted),
        configuration,
        schema_definition,
        is_enabled,
    })
}

fn changes(raw: &Value, at: &Pointer, errors: &mut Vec<FieldError>) -> FeatureChangesBody {
    let Some(m) = Members::of(raw, at, CHANGES_MEMBERS, errors) else {
        return FeatureChangesBody::default();
    };
    m.mode(GenerationMode::Mixed, errors);
    FeatureChangesBody {
        name: m.string("name", false, errors),
        generation_mode: Some(GenerationMode::Mixed),
        configuration: m
            .get("configuration")
            .and_then(|c| configuration(c, &at.key("configuration"), errors)),
        schema_definition: m
            .get("schema_definition")
            .and_then(|s| schema_definition(s, &at.key("schema_definition"), errors)),
        is_enabled: m.boolean("is_enabled", errors),
    }
}

/// A model's answer (or a stored proposal) as `kind`'s proposal, or every problem with its
/// pointer into the answer.
pub fn parse(kind: ProposalKind, answer: &Value) -> Result<Proposal, Vec<FieldError>> {
    let root = Pointer::root();
    let mut errors = Vec::new();
    let proposal = match kind {
        ProposalKind::GenerateConfig => {
            let m = Members::of(answer, &root, &["features"], &mut errors);
            let features = match m.and_then(|m| m.required("features", &mut errors)) {
                Some(Value::Array(items)) if items.is_empty() => {
                    errors.push(FieldError::at(
                        &root.key("features"),
                        "must propose at least one feature",
                    ));
                    Vec::new()
                }
                Some(Value::Array(items)) => items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, f)| feature(f, &root.key("features").index(i), &mut errors))
                    .collect(),
                Some(_) => {
                    errors.push(FieldError::at(&root.key("features"), "must be an array"));
                    Vec::new()
                }
                None => Vec::new(),
            };
            Proposal::GenerateConfig(ConfigProposal { features })
        }
        ProposalKind::EnhanceConfig => {
            let m = Members::of(
                answer,
                &root,
                &["feature_id", "changes", "rationale"],
                &mut errors,
            );
            let Some(m) = m else {
                return Err(errors);
            };
            let feature_id = m.id::<FeatureId>("feature_id", &mut errors);
            let changes = match m.required("changes", &mut errors) {
                Some(raw) => changes(raw, &root.key("changes"), &mut errors),
                None => FeatureChangesBody::default(),
            };
            let rationale = m.string("rationale", true, &mut errors);
            match (feature_id, rationale) {
                (Some(feature_id), Some(rationale)) => Proposal::EnhanceConfig(EnhanceProposal {
                    feature_id,
                    changes,
                    rationale,
                }),
                _ => return Err(errors),
            }
        }
        ProposalKind::GenerateCode => {
            let m = Members::of(
                answer,
                &root,
                &["function_id", "function_code"],
                &mut errors,
            );
            let Some(m) = m else {
                return Err(errors);
            };
            let function_id = m.id::<FunctionId>("function_id", &mut errors);
            let function_code = m.string("function_code", true, &mut errors);
            match (function_id, function_code) {
                (Some(function_id), Some(function_code)) => Proposal::GenerateCode(CodeProposal {
                    function_id,
                    function_code,
                }),
                _ => return Err(errors),
            }
        }
    };
    if errors.is_empty() {
        Ok(proposal)
    } else {
        Err(errors)
    }
}

// --- validating against a project ---

/// The commands that apply `proposal` to `project`, decided with the project's own rules on a copy
/// of it, each command's events folded in before the next (so two proposed features with one name
/// clash); or every problem, located in the proposal and worded for a model to repair it.
pub fn validate(
    project: &Project,
    proposal: &Proposal,
    origin: &Origin,
    fresh_feature_id: impl FnMut() -> FeatureId,
    limits: &Limits,
) -> Result<Vec<ProjectCommand>, Vec<FieldError>> {
    let mut state = project.clone();
    let mut errors = Vec::new();
    let mut commands = Vec::new();
    for (at, command) in proposal.commands(origin, fresh_feature_id) {
        match state.decide(&command, limits) {
            Ok(events) => {
                for event in &events {
                    state.evolve(event);
                }
                commands.push(command);
            }
            Err(error) => errors.extend(problems(&state, origin, &at, error)),
        }
    }
    if errors.is_empty() {
        Ok(commands)
    } else {
        Err(errors)
    }
}

/// The events of `commands` decided in turn on `project`, each folded in before the next: what
/// one append of an applied proposal holds. The first refusal ends it, with the command's index.
pub fn decide_in_turn(
    project: &Project,
    commands: &[ProjectCommand],
    limits: &Limits,
) -> Result<Vec<ProjectEvent>, (usize, ProjectError)> {
    let mut state = project.clone();
    let mut all = Vec::new();
    for (i, command) in commands.iter().enumerate() {
        let events = state.decide(command, limits).map_err(|e| (i, e))?;
        for event in &events {
            state.evolve(event);
        }
        all.extend(events);
    }
    Ok(all)
}

/// A refusal of the command from the proposal member at `at`, as problems in the proposal.
fn problems(
    state: &Project,
    origin: &Origin,
    at: &Pointer,
    error: ProjectError,
) -> Vec<FieldError> {
    let within = |inner: &str| format!("{}{inner}", at.as_str());
    let one = |field: String, message: String| vec![FieldError::new(field, message)];
    match error {
        ProjectError::Validation(found) => found
            .into_iter()
            .map(|e| FieldError::new(within(&e.field), e.message))
            .collect(),
        ProjectError::FeatureNameTaken { name } => {
            let lower = name.to_lowercase();
            let from_this_proposal = state.features.iter().any(|f| {
                f.name.to_lowercase() == lower && f.ai_request_id == Some(origin.ai_request_id)
            });
            let message = if from_this_proposal {
                format!(
                    "repeats the name `{name}` of another feature of this proposal (names are compared ignoring case); choose another"
                )
            } else {
                format!(
                    "the project has a feature named `{name}` already (names are compared ignoring case); choose another"
                )
            };
            one(within("/name"), message)
        }
        ProjectError::EntityNameTaken { entity } => one(
            within("/schema_definition/entity"),
            format!(
                "the project (or this proposal) defines the entity `{entity}` already; choose another name"
            ),
        ),
        ProjectError::PluralTaken { plural } => one(
            within("/schema_definition/plural"),
            format!(
                "the project (or this proposal) uses the plural `{plural}` already; choose another"
            ),
        ),
        ProjectError::FeatureReferenced { by } => one(
            at.as_str().to_owned(),
            format!(
                "the feature's entity is referenced by {}: keep its name and keep it enabled",
                by.join(", ")
            ),
        ),
        ProjectError::FeatureNotFound(id) => one(
            "/feature_id".into(),
            format!(
                "the project has no feature {id}; propose changes to the feature you were given"
            ),
        ),
        ProjectError::FunctionNotFound(id) => one(
            "/function_id".into(),
            format!(
                "the project has no function {id}; propose code for the function you were given"
            ),
        ),
        ProjectError::FeatureLimitReached { limit } => one(
            at.as_str().to_owned(),
            format!(
                "the project may hold at most {limit} features and has {}; propose fewer",
                state.features.len()
            ),
        ),
        ProjectError::FunctionConflict(why) => one("/function_id".into(), why),
        ProjectError::TooLarge { bytes, limit } => one(
            String::new(),
            format!("the project would be {bytes} bytes, over its limit of {limit}; propose less"),
        ),
        other => one(String::new(), other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Decider;
    use crate::project::{FunctionLanguage, HttpMethod};
    use crate::testing::{feature_id, function_id, project_id, t, t0, user_id};

    fn origin() -> Origin {
        Origin {
            ai_request_id: AiRequestId::from_uuid(uuid::Uuid::from_u128(0xa1)),
            at: t(5),
        }
    }

    /// Fresh feature ids 100, 101, …
    fn fresh() -> impl FnMut() -> FeatureId {
        let mut next = 100;
        move || {
            next += 1;
            feature_id(next - 1)
        }
    }

    fn field(name: &str, kind: &str) -> Value {
        let mut f = json!({"name": name, "type": kind, "required": null, "unique": null,
            "default": null, "min_length": null, "max_length": null, "pattern": null, "min": null,
            "max": null, "precision": null, "scale": null, "values": null, "references": null});
        if kind == "reference" {
            f["references"] = json!("customer");
        }
        f
    }

    fn no_configuration() -> Value {
        Value::Null
    }

    /// A feature in the strict form a model answers in.
    fn strict_feature(
        name: &str,
        feature_type: &str,
        schema: Value,
        configuration: Value,
    ) -> Value {
        json!({"name": name, "feature_type": feature_type, "generation_mode": "ai_assisted",
            "configuration": configuration, "schema_definition": schema, "is_enabled": null})
    }

    fn strict_entity(entity: &str, fields: Vec<Value>) -> Value {
        json!({"entity": entity, "plural": null, "fields": fields, "unique": null})
    }

    fn shop_answer() -> Value {
        json!({"features": [
            strict_feature("Orders", "crud",
                strict_entity("order", vec![field("title", "string"), field("customer_id", "reference")]),
                no_configuration()),
            strict_feature("Customers", "crud", strict_entity("customer", vec![field("email", "string")]), no_configuration()),
            strict_feature("Login", "auth", Value::Null, json!({"registration": "closed",
                "entities": [{"entity": "order", "access": "shared_read"}],
                "max_size_bytes": null, "allowed_content_types": null})),
        ]})
    }

    /// A project with one manual feature (`Notes`) and one function (`quote`).
    fn project() -> Project {
        use crate::project::ProjectEvent as E;
        let notes = crate::crud_schema::EntitySchema::parse(
            &json!({"entity": "note", "fields": [{"name": "body", "type": "text"}]}),
            &Pointer::root(),
            &Limits::default(),
        )
        .unwrap();
        Project::fold(&[
            E::ProjectCreated {
                project_id: project_id(10),
                owner_id: user_id(1),
                name: "Shop".into(),
                description: None,
                generation_mode: GenerationMode::Manual,
                created_at: t0(),
            },
            E::FeatureAdded {
                project_id: project_id(10),
                feature_id: feature_id(1),
                name: "Notes".into(),
                feature_type: FeatureType::Crud,
                generation_mode: None,
                configuration: Map::new(),
                schema_definition: Some(notes),
                is_enabled: true,
                added_at: t(1),
                ai_request_id: None,
            },
            E::FunctionCreated {
                project_id: project_id(10),
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
                created_at: t(2),
            },
        ])
    }

    fn errors(result: Result<impl std::fmt::Debug, Vec<FieldError>>) -> Vec<(String, String)> {
        match result {
            Err(errors) => errors.into_iter().map(|e| (e.field, e.message)).collect(),
            Ok(ok) => panic!("expected problems, got {ok:?}"),
        }
    }

    fn fields(result: Result<impl std::fmt::Debug, Vec<FieldError>>) -> Vec<String> {
        errors(result).into_iter().map(|(f, _)| f).collect()
    }

    fn valid(kind: ProposalKind, answer: Value) -> Proposal {
        parse(kind, &answer).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn check(proposal: &Proposal) -> Result<Vec<ProjectCommand>, Vec<FieldError>> {
        validate(&project(), proposal, &origin(), fresh(), &Limits::default())
    }

    // --- parsing ---

    #[test]
    fn a_strict_answer_becomes_the_bodies_users_send() {
        // Given a generate_config answer in the strict form (every member, nulls for absent ones)
        // When it is parsed
        let proposal = valid(ProposalKind::GenerateConfig, shop_answer());
        // Then it is the POST bodies: no nulls, `ai_assisted`, the entities as the API's map
        let stored = proposal.to_value();
        assert_eq!(
            stored["features"][0],
            json!({"name": "Orders", "feature_type": "crud", "generation_mode": "ai_assisted",
                "schema_definition": {"entity": "order", "fields": [
                    {"name": "title", "type": "string"},
                    {"name": "customer_id", "type": "reference", "references": "customer"}]}})
        );
        assert_eq!(
            stored["features"][2]["configuration"],
            json!({"registration": "closed", "entities": {"order": "shared_read"}})
        );
        // And parsing the stored form gives the same proposal back
        assert_eq!(parse(ProposalKind::GenerateConfig, &stored), Ok(proposal));
    }

    #[test]
    fn a_generate_config_answer_without_a_mode_is_ai_assisted_and_another_mode_is_refused() {
        let answer = json!({"features": [{"name": "Login", "feature_type": "auth"}]});
        let Proposal::GenerateConfig(p) = valid(ProposalKind::GenerateConfig, answer) else {
            panic!("another kind")
        };
        assert_eq!(
            p.features[0].generation_mode,
            Some(GenerationMode::AiAssisted)
        );
        let manual = json!({"features": [{"name": "Login", "feature_type": "auth", "generation_mode": "manual"}]});
        assert_eq!(
            errors(parse(ProposalKind::GenerateConfig, &manual)),
            [(
                "/features/0/generation_mode".to_owned(),
                "must be `ai_assisted`: the proposal's content is applied in that mode".to_owned()
            )]
        );
    }

    #[test]
    fn every_problem_of_an_answer_is_located_by_a_pointer() {
        let answer = json!({"features": [
            {"name": 3, "feature_type": "crud", "colour": "red"},
            {"feature_type": "teleport", "configuration": [], "is_enabled": "yes"},
            "Login",
        ], "notes": "x"});
        assert_eq!(
            fields(parse(ProposalKind::GenerateConfig, &answer)),
            [
                "/notes",
                "/features/0/colour",
                "/features/0/name",
                "/features/1/name",
                "/features/1/feature_type",
                "/features/1/configuration",
                "/features/1/is_enabled",
                "/features/2",
            ]
        );
        assert_eq!(
            errors(parse(
                ProposalKind::GenerateConfig,
                &json!({"features": []})
            )),
            [(
                "/features".to_owned(),
                "must propose at least one feature".to_owned()
            )]
        );
        assert_eq!(
            fields(parse(ProposalKind::GenerateConfig, &json!([]))),
            [""]
        );
    }

    #[test]
    fn an_enhancement_is_a_put_body_in_mixed_mode_and_cannot_change_the_type() {
        let answer = json!({"feature_id": feature_id(1).to_string(), "rationale": "clearer",
            "changes": {"name": "Journal", "generation_mode": "mixed", "configuration": null,
                "schema_definition": null, "is_enabled": null}});
        let proposal = valid(ProposalKind::EnhanceConfig, answer);
        assert_eq!(
            proposal.to_value(),
            json!({"feature_id": feature_id(1).to_string(), "rationale": "clearer",
                "changes": {"name": "Journal", "generation_mode": "mixed"}})
        );
        assert_eq!(
            parse(ProposalKind::EnhanceConfig, &proposal.to_value()),
            Ok(proposal)
        );
        let bad = json!({"feature_id": "feature one", "rationale": "x",
            "changes": {"feature_type": "auth", "generation_mode": "ai_assisted"}});
        assert_eq!(
            fields(parse(ProposalKind::EnhanceConfig, &bad)),
            [
                "/feature_id",
                "/changes/feature_type",
                "/changes/generation_mode"
            ]
        );
    }

    #[test]
    fn a_code_answer_needs_the_function_id_and_the_code() {
        let answer = json!({"function_id": function_id(7).to_string(), "function_code": "def handler(input):\n    return 1\n"});
        let proposal = valid(ProposalKind::GenerateCode, answer.clone());
        assert_eq!(proposal.to_value(), answer);
        assert_eq!(proposal.kind(), ProposalKind::GenerateCode);
        assert_eq!(
            fields(parse(
                ProposalKind::GenerateCode,
                &json!({"function_id": function_id(7).to_string(), "function_code": null})
            )),
            ["/function_code"]
        );
    }

    // --- the schemas ---

    /// Every object schema under `schema` (at `at`) is closed and requires all its members.
    fn assert_strict(schema: &Value, at: &str) {
        match schema {
            Value::Object(members) => {
                let is_object = match members.get("type") {
                    Some(Value::String(t)) => t == "object",
                    Some(Value::Array(ts)) => ts.contains(&json!("object")),
                    _ => false,
                };
                if is_object {
                    assert_eq!(
                        members.get("additionalProperties"),
                        Some(&json!(false)),
                        "{at}"
                    );
                    let properties: Vec<&String> =
                        members["properties"].as_object().unwrap().keys().collect();
                    let required: Vec<&str> = members["required"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r.as_str().unwrap())
                        .collect();
                    assert_eq!(properties, required, "{at}");
                }
                for (key, value) in members {
                    assert_strict(value, &format!("{at}/{key}"));
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    assert_strict(item, &format!("{at}/{i}"));
                }
            }
            _ => {}
        }
    }

    #[test]
    fn every_kinds_schema_is_strict_mode_compatible() {
        for kind in ProposalKind::ALL {
            let schema = json_schema(kind);
            assert_eq!(schema["type"], "object", "{kind:?}: the root is an object");
            assert_strict(&schema, kind.as_str());
            assert!(kind.schema_name().len() <= 64);
        }
        let config = json_schema(ProposalKind::GenerateConfig);
        let feature = &config["properties"]["features"]["items"]["properties"];
        assert_eq!(
            feature["schema_definition"]["properties"]["fields"]["items"]["properties"]["type"]["enum"],
            json!(FIELD_TYPES)
        );
        assert!(
            !feature["feature_type"]["enum"]
                .as_array()
                .unwrap()
                .contains(&json!("custom_function"))
        );
    }

    // --- validation ---

    #[test]
    fn a_valid_config_proposal_becomes_ai_assisted_features_in_dependency_order() {
        // Given a proposal whose orders reference customers proposed after them
        let proposal = valid(ProposalKind::GenerateConfig, shop_answer());
        // When it is validated against the project
        let commands = check(&proposal).unwrap();
        // Then customers are added first, then orders, then the login naming orders
        let added: Vec<(String, Option<GenerationMode>, FeatureId, AiRequestId)> = commands
            .iter()
            .map(|c| match c {
                ProjectCommand::ApplyAiContent(ApplyAiContent {
                    ai_request_id,
                    content: AiContent::AddFeature(AddFeature { feature, at }),
                }) => {
                    assert_eq!(*at, t(5));
                    (
                        feature.name.clone(),
                        feature.generation_mode,
                        feature.id,
                        *ai_request_id,
                    )
                }
                other => panic!("not an applied feature: {other:?}"),
            })
            .collect();
        let ai = origin().ai_request_id;
        let mode = Some(GenerationMode::AiAssisted);
        assert_eq!(
            added,
            [
                ("Customers".to_owned(), mode, feature_id(101), ai),
                ("Orders".to_owned(), mode, feature_id(100), ai),
                ("Login".to_owned(), mode, feature_id(102), ai),
            ]
        );
        // And deciding them in turn gives the events one append holds, each with the request
        let events = decide_in_turn(&project(), &commands, &Limits::default()).unwrap();
        assert_eq!(events.len(), 3);
        let after = Project::fold(&[]);
        drop(after);
        let mut state = project();
        for event in &events {
            state.evolve(event);
        }
        assert!(
            state.features[1..]
                .iter()
                .all(|f| f.ai_request_id == Some(ai))
        );
    }

    #[test]
    fn two_proposed_features_with_one_name_are_refused_at_the_second() {
        let answer = json!({"features": [
            strict_feature("Tags", "crud", strict_entity("tag", vec![field("label", "string")]), Value::Null),
            strict_feature("tags", "crud", strict_entity("label", vec![field("text", "string")]), Value::Null),
            strict_feature("Notes", "crud", strict_entity("memo", vec![field("text", "string")]), Value::Null),
        ]});
        let proposal = valid(ProposalKind::GenerateConfig, answer);
        assert_eq!(
            errors(check(&proposal)),
            [
                (
                    "/features/1/name".to_owned(),
                    "repeats the name `tags` of another feature of this proposal (names are compared ignoring case); choose another".to_owned()
                ),
                (
                    "/features/2/name".to_owned(),
                    "the project has a feature named `Notes` already (names are compared ignoring case); choose another".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn a_bad_configuration_or_schema_is_refused_inside_its_feature() {
        let answer = json!({"features": [
            strict_feature("Login", "auth", Value::Null, json!({"registration": "maybe",
                "entities": [{"entity": "ghost", "access": "owner_scoped"}],
                "max_size_bytes": null, "allowed_content_types": null})),
            strict_feature("Tags", "crud", strict_entity("tag", vec![field("label", "colour")]), Value::Null),
            strict_feature("Stats", "analytics", Value::Null, json!({"registration": null,
                "entities": null, "max_size_bytes": 10, "allowed_content_types": null})),
        ]});
        let proposal = valid(ProposalKind::GenerateConfig, answer);
        assert_eq!(
            fields(check(&proposal)),
            [
                "/features/0/configuration/registration",
                "/features/1/schema_definition/fields/0/type",
                "/features/2/configuration/max_size_bytes",
            ]
        );
    }

    #[test]
    fn an_enhancement_of_an_unknown_feature_is_refused_at_its_id() {
        let proposal = Proposal::EnhanceConfig(EnhanceProposal {
            feature_id: feature_id(9),
            changes: FeatureChangesBody {
                name: Some("Journal".into()),
                ..FeatureChangesBody::default()
            },
            rationale: "clearer".into(),
        });
        let found = errors(check(&proposal));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "/feature_id");
        assert!(
            found[0]
                .1
                .starts_with(&format!("the project has no feature {}", feature_id(9)))
        );
    }

    #[test]
    fn a_valid_enhancement_makes_the_feature_mixed_and_a_bad_schema_points_into_changes() {
        let answer = json!({"feature_id": feature_id(1).to_string(), "rationale": "dates",
            "changes": {"name": null, "generation_mode": "mixed", "configuration": null,
                "schema_definition": strict_entity("note", vec![field("body", "text"), field("day", "date")]),
                "is_enabled": null}});
        let commands = check(&valid(ProposalKind::EnhanceConfig, answer)).unwrap();
        let [
            ProjectCommand::ApplyAiContent(ApplyAiContent {
                content: AiContent::UpdateFeature(update),
                ..
            }),
        ] = commands.as_slice()
        else {
            panic!("{commands:?}")
        };
        assert_eq!(
            update.changes.generation_mode,
            Some(Some(GenerationMode::Mixed))
        );
        let bad = json!({"feature_id": feature_id(1).to_string(), "rationale": "x",
            "changes": {"schema_definition": strict_entity("note", vec![field("class", "text")])}});
        assert_eq!(
            fields(check(&valid(ProposalKind::EnhanceConfig, bad))),
            ["/changes/schema_definition/fields/0/name"]
        );
    }

    #[test]
    fn code_for_an_unknown_function_or_that_breaks_the_code_rules_is_refused() {
        let code = |id: u128, code: &str| {
            Proposal::GenerateCode(CodeProposal {
                function_id: function_id(id),
                function_code: code.into(),
            })
        };
        let unknown = errors(check(&code(8, "def handler(input):\n    return 1\n")));
        assert_eq!(unknown[0].0, "/function_id");
        assert_eq!(fields(check(&code(7, "  \n"))), ["/function_code"]);
        assert_eq!(
            fields(check(&code(7, "def handler(input):\0"))),
            ["/function_code"]
        );
        let commands = check(&code(7, "def handler(input):\n    return 1\n")).unwrap();
        assert_eq!(commands.len(), 1);
    }
}
