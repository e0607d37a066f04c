//! `Project::decide`: every rule of a project command, against one consistent state.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use super::validation::{
    Draft, Targets, check_configuration, check_name, check_references, check_schema,
    nothing_to_update,
};
use super::{
    AddFeature, AddMember, ArchiveProject, CreateFunction, CreateProject, DeleteFunction, Feature,
    FeatureType, Project, ProjectCommand, ProjectError, ProjectEvent, ProjectStatus, RemoveFeature,
    RemoveMember, UpdateFeature, UpdateFunction, UpdateProject, configuration, entity_route_prefix,
};
use crate::crud_schema::EntitySchema;
use crate::error::{FieldError, Pointer};
use crate::ids::FeatureId;
use crate::limits::Limits;

/// Whether `events` can make a project larger (all but archiving and removals).
fn grows(events: &[ProjectEvent]) -> bool {
    events.iter().any(|e| {
        !matches!(
            e,
            ProjectEvent::ProjectArchived { .. }
                | ProjectEvent::ProjectMemberRemoved { .. }
                | ProjectEvent::FeatureRemoved { .. }
                | ProjectEvent::FunctionDeleted { .. }
        )
    })
}

impl Project {
    pub fn decide(
        &self,
        command: &ProjectCommand,
        limits: &Limits,
    ) -> Result<Vec<ProjectEvent>, ProjectError> {
        let events = self.decide_rules(command, limits)?;
        if grows(&events) {
            let mut next = self.clone();
            for event in &events {
                next.evolve(event);
            }
            next.check_size(&events, limits)?;
        }
        Ok(events)
    }

    /// A project's serialised state is bounded (`project_max_bytes`), so a read, a cached fold, a
    /// read-model row and a generation job stay bounded whatever a caller sends. Checked on the
    /// state after `events` (`self`), and only when they can grow it; shrinking changes always
    /// pass, so an oversized project stored under a larger limit can still be cut down.
    pub(super) fn check_size(
        &self,
        events: &[ProjectEvent],
        limits: &Limits,
    ) -> Result<(), ProjectError> {
        if !grows(events) {
            return Ok(());
        }
        let bytes = self.serialized_bytes();
        if bytes > limits.project_max_bytes {
            return Err(ProjectError::TooLarge {
                bytes,
                limit: limits.project_max_bytes,
            });
        }
        Ok(())
    }

    pub(super) fn decide_rules(
        &self,
        command: &ProjectCommand,
        limits: &Limits,
    ) -> Result<Vec<ProjectEvent>, ProjectError> {
        if let ProjectCommand::CreateProject(command) = command {
            return self.create(command, limits);
        }
        if !self.created {
            return Err(ProjectError::NotFound);
        }
        if self.status == ProjectStatus::Archived {
            return Err(ProjectError::Archived);
        }
        let project_id = self.id;
        match command {
            ProjectCommand::CreateProject(_) => Err(ProjectError::AlreadyExists),
            ProjectCommand::UpdateProject(command) => self.update(command, limits),
            ProjectCommand::ArchiveProject(ArchiveProject { at }) => {
                Ok(vec![ProjectEvent::ProjectArchived {
                    project_id,
                    archived_at: *at,
                }])
            }
            ProjectCommand::AddMember(AddMember { user_id, role, at }) => {
                if *user_id == self.owner_id {
                    return Err(ProjectError::OwnerCannotBeMember);
                }
                let unchanged = self
                    .members
                    .iter()
                    .any(|m| m.user_id == *user_id && m.role == *role);
                if unchanged {
                    return Ok(vec![]);
                }
                Ok(vec![ProjectEvent::ProjectMemberAdded {
                    project_id,
                    user_id: *user_id,
                    role: *role,
                    added_at: *at,
                }])
            }
            ProjectCommand::RemoveMember(RemoveMember { user_id, at }) => {
                if !self.is_member(*user_id) {
                    return Err(ProjectError::MemberNotFound(*user_id));
                }
                Ok(vec![ProjectEvent::ProjectMemberRemoved {
                    project_id,
                    user_id: *user_id,
                    removed_at: *at,
                }])
            }
            ProjectCommand::AddFeature(command) => self.add_feature(command, limits),
            ProjectCommand::UpdateFeature(command) => self.update_feature(command, limits),
            ProjectCommand::RemoveFeature(command) => self.remove_feature(command),
            ProjectCommand::CreateFunction(CreateFunction { function, at }) => {
                self.create_function(function, *at, limits)
            }
            ProjectCommand::UpdateFunction(UpdateFunction {
                function_id,
                changes,
                at,
            }) => self.update_function(*function_id, changes, *at, limits),
            ProjectCommand::DeleteFunction(DeleteFunction { function_id, at }) => {
                self.delete_function(*function_id, *at)
            }
            ProjectCommand::ApplyAiContent(command) => self.apply_ai_content(command, limits),
        }
    }

    fn create(
        &self,
        command: &CreateProject,
        limits: &Limits,
    ) -> Result<Vec<ProjectEvent>, ProjectError> {
        let CreateProject {
            project_id,
            owner_id,
            name,
            description,
            generation_mode,
            features,
            at,
        } = command;
        let (project_id, owner_id, at) = (*project_id, *owner_id, *at);
        let description = description.as_deref();
        if self.created {
            return Err(ProjectError::AlreadyExists);
        }
        for (i, feature) in features.iter().enumerate() {
            if features[..i].iter().any(|f| f.id == feature.id) {
                return Err(ProjectError::FeatureAlreadyExists(feature.id));
            }
        }

        let root = Pointer::root();
        let mut errors = Vec::new();
        let name = check_name(name, &root.key("name"), limits, &mut errors);
        if let Some(description) = description {
            if let Err(message) = limits.check_description(description) {
                errors.push(FieldError::at(&root.key("description"), message));
            }
        }
        if features.len() > limits.features_per_project {
            errors.push(FieldError::at(
                &root.key("features"),
                format!(
                    "must hold at most {} features, not {}",
                    limits.features_per_project,
                    features.len()
                ),
            ));
        }
        let drafts: Vec<Draft> = features
            .iter()
            .enumerate()
            .map(|(i, f)| Draft::check(f, root.key("features").index(i), limits, &mut errors))
            .collect();

        // Inside one request every clash is the request's own fault, so all are 422s.
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut entities: HashMap<&str, usize> = HashMap::new();
        let mut plurals: HashMap<&str, usize> = HashMap::new();
        let mut targets: Targets<'_> = HashMap::new();
        for (i, draft) in drafts.iter().enumerate() {
            if let Some(name) = &draft.name {
                match names.entry(name.to_lowercase()) {
                    Entry::Occupied(first) => errors.push(FieldError::at(
                        &draft.at.key("name"),
                        format!(
                            "repeats the name of feature {} (names are compared ignoring case)",
                            first.get()
                        ),
                    )),
                    Entry::Vacant(slot) => {
                        slot.insert(i);
                    }
                }
            }
            let Some(schema) = &draft.schema else {
                if let Some(entity) = &draft.claimed_entity {
                    targets.entry(entity).or_insert(draft.is_enabled);
                }
                continue;
            };
            let schema_at = draft.at.key("schema_definition");
            match entities.entry(&schema.entity) {
                Entry::Occupied(first) => errors.push(FieldError::at(
                    &schema_at.key("entity"),
                    format!(
                        "feature {} defines the entity `{}` already",
                        first.get(),
                        schema.entity
                    ),
                )),
                Entry::Vacant(slot) => {
                    slot.insert(i);
                    targets.insert(&schema.entity, draft.is_enabled);
                }
            }
            match plurals.entry(&schema.plural) {
                Entry::Occupied(first) => errors.push(FieldError::at(
                    &schema_at.key("plural"),
                    format!(
                        "feature {} uses the plural `{}` already",
                        first.get(),
                        schema.plural
                    ),
                )),
                Entry::Vacant(slot) => {
                    slot.insert(i);
                }
            }
        }
        for draft in &drafts {
            if draft.feature_type == FeatureType::Auth {
                configuration::check_auth_entities(
                    &draft.configuration,
                    |name| targets.contains_key(name),
                    &draft.at.key("configuration"),
                    &mut errors,
                );
            }
            if let Some(schema) = &draft.schema {
                check_references(
                    schema,
                    draft.is_enabled,
                    &targets,
                    &draft.at.key("schema_definition"),
                    &mut errors,
                );
            }
        }

        let features: Option<Vec<Feature>> = drafts.into_iter().map(|d| d.finish(at)).collect();
        let (Some(name), Some(features), true) = (name, features, errors.is_empty()) else {
            return Err(ProjectError::Validation(errors));
        };
        let mut events = Vec::with_capacity(features.len() + 1);
        events.push(ProjectEvent::ProjectCreated {
            project_id,
            owner_id,
            name,
            description: description.map(str::to_owned),
            generation_mode: generation_mode.unwrap_or_default(),
            created_at: at,
        });
        events.extend(
            features
                .into_iter()
                .map(|feature| ProjectEvent::feature_added(project_id, feature, at)),
        );
        Ok(events)
    }

    fn update(
        &self,
        command: &UpdateProject,
        limits: &Limits,
    ) -> Result<Vec<ProjectEvent>, ProjectError> {
        let UpdateProject {
            name,
            description,
            generation_mode,
            at,
        } = command;
        let (name, description, generation_mode) =
            (name.as_deref(), description.as_ref(), *generation_mode);
        if name.is_none() && description.is_none() && generation_mode.is_none() {
            return Err(nothing_to_update());
        }
        let root = Pointer::root();
        let mut errors = Vec::new();
        let name = name.and_then(|n| check_name(n, &root.key("name"), limits, &mut errors));
        if let Some(Some(description)) = description {
            if let Err(message) = limits.check_description(description) {
                errors.push(FieldError::at(&root.key("description"), message));
            }
        }
        if !errors.is_empty() {
            return Err(ProjectError::Validation(errors));
        }

        let name = name.filter(|n| *n != self.name);
        let description = description.filter(|d| **d != self.description).cloned();
        let generation_mode = generation_mode.filter(|m| *m != self.generation_mode);
        if name.is_none() && description.is_none() && generation_mode.is_none() {
            return Ok(vec![]);
        }
        Ok(vec![ProjectEvent::ProjectUpdated {
            project_id: self.id,
            name,
            description,
            generation_mode,
            updated_at: *at,
        }])
    }

    /// Entity names of the project with whether their feature is enabled, leaving one feature out.
    fn targets(&self, except: Option<FeatureId>) -> Targets<'_> {
        self.entities()
            .filter(|(f, _)| Some(f.id) != except)
            .map(|(f, schema)| (schema.entity.as_str(), f.is_enabled))
            .collect()
    }

    /// The entities, other than `except`'s own, that reference `entity` (only enabled ones when
    /// `enabled_only`), sorted.
    fn referencing(&self, entity: &str, except: FeatureId, enabled_only: bool) -> Vec<String> {
        let mut by: Vec<String> = self
            .entities()
            .filter(|(f, schema)| {
                f.id != except
                    && (!enabled_only || f.is_enabled)
                    && schema.references_entity(entity)
            })
            .map(|(_, schema)| schema.entity.clone())
            .collect();
        by.sort();
        by.dedup();
        by
    }

    /// An entity's generated routes (`/api/<plural>` and below) must not take a function's path.
    fn check_routes_free(&self, plural: &str, schema_at: &Pointer, errors: &mut Vec<FieldError>) {
        let prefix = entity_route_prefix(plural);
        if let Some(function) = self.function_under(&prefix) {
            errors.push(FieldError::at(
                &schema_at.key("plural"),
                format!(
                    "the entity's routes under `{prefix}` would collide with function `{}` at `{}`",
                    function.name, function.endpoint_path
                ),
            ));
        }
    }

    /// The 409s of adding or changing `feature`: its name, entity or plural used by another feature.
    fn check_taken(
        &self,
        feature_id: FeatureId,
        name: Option<&str>,
        schema: Option<&EntitySchema>,
    ) -> Result<(), ProjectError> {
        let others = || self.features.iter().filter(|f| f.id != feature_id);
        if let Some(name) = name {
            let lower = name.to_lowercase();
            if others().any(|f| f.name.to_lowercase() == lower) {
                return Err(ProjectError::FeatureNameTaken {
                    name: name.to_owned(),
                });
            }
        }
        if let Some(schema) = schema {
            let other_entities = || others().filter_map(|f| f.entity());
            if other_entities().any(|s| s.entity == schema.entity) {
                return Err(ProjectError::EntityNameTaken {
                    entity: schema.entity.clone(),
                });
            }
            if other_entities().any(|s| s.plural == schema.plural) {
                return Err(ProjectError::PluralTaken {
                    plural: schema.plural.clone(),
                });
            }
        }
        Ok(())
    }

    fn add_feature(
        &self,
        AddFeature { feature, at }: &AddFeature,
        limits: &Limits,
    ) -> Result<Vec<ProjectEvent>, ProjectError> {
        let at = *at;
        if self.feature(feature.id).is_some() {
            return Err(ProjectError::FeatureAlreadyExists(feature.id));
        }
        if self.features.len() >= limits.features_per_project {
            return Err(ProjectError::FeatureLimitReached {
                limit: limits.features_per_project,
            });
        }
        let mut errors = Vec::new();
        let draft = Draft::check(feature, Pointer::root(), limits, &mut errors);
        if draft.feature_type == FeatureType::Auth {
            let targets = self.targets(None);
            configuration::check_auth_entities(
                &draft.configuration,
                |name| targets.contains_key(name),
                &Pointer::root().key("configuration"),
                &mut errors,
            );
        }
        if let Some(schema) = &draft.schema {
            let mut targets = self.targets(None);
            // A self-reference is allowed; an entity clash is reported below as a conflict.
            targets.entry(&schema.entity).or_insert(draft.is_enabled);
            check_references(
                schema,
                draft.is_enabled,
                &targets,
                &Pointer::root().key("schema_definition"),
                &mut errors,
            );
            self.check_routes_free(
                &schema.plural,
                &Pointer::root().key("schema_definition"),
                &mut errors,
            );
        }
        let (Some(feature), true) = (draft.finish(at), errors.is_empty()) else {
            return Err(ProjectError::Validation(errors));
        };
        self.check_taken(feature.id, Some(&feature.name), feature.entity())?;
        Ok(vec![ProjectEvent::feature_added(self.id, feature, at)])
    }

    fn update_feature(
        &self,
        UpdateFeature {
            feature_id,
            changes,
            at,
        }: &UpdateFeature,
        limits: &Limits,
    ) -> Result<Vec<ProjectEvent>, ProjectError> {
        let (feature_id, at) = (*feature_id, *at);
        let current = self
            .feature(feature_id)
            .ok_or(ProjectError::FeatureNotFound(feature_id))?;
        if changes.is_empty() {
            return Err(nothing_to_update());
        }
        let root = Pointer::root();
        let mut errors = Vec::new();
        if changes.feature_type.is_some() {
            errors.push(FieldError::at(
                &root.key("feature_type"),
                "cannot change; remove the feature and add a new one",
            ));
        }
        let name = changes
            .name
            .as_deref()
            .and_then(|n| check_name(n, &root.key("name"), limits, &mut errors));
        let configuration = changes.configuration.as_ref().map(|c| {
            check_configuration(
                current.feature_type,
                Some(c),
                &root.key("configuration"),
                &mut errors,
            )
        });
        let schema_at = root.key("schema_definition");
        let new_schema = changes
            .schema_definition
            .as_ref()
            .and_then(|raw| {
                check_schema(
                    current.feature_type,
                    Some(raw),
                    &schema_at,
                    limits,
                    &mut errors,
                )
            })
            .flatten();
        let enabled = changes.is_enabled.unwrap_or(current.is_enabled);

        let mut targets = self.targets(Some(feature_id));
        if let (Some(configuration), FeatureType::Auth) = (&configuration, current.feature_type) {
            configuration::check_auth_entities(
                configuration,
                |name| targets.contains_key(name),
                &root.key("configuration"),
                &mut errors,
            );
        }
        if let Some(schema) = &new_schema {
            targets.entry(&schema.entity).or_insert(enabled);
            check_references(schema, enabled, &targets, &schema_at, &mut errors);
            self.check_routes_free(&schema.plural, &schema_at, &mut errors);
        } else if let (Some(schema), true) = (current.entity(), enabled && !current.is_enabled) {
            // Enabling an entity whose targets are disabled would break the generated app.
            targets.entry(&schema.entity).or_insert(enabled);
            for (_, field, target) in schema.references() {
                if targets.get(target) == Some(&false) {
                    errors.push(FieldError::at(
                        &root.key("is_enabled"),
                        format!(
                            "field `{}` references `{target}`, which is disabled; enable it first",
                            field.name
                        ),
                    ));
                }
            }
        }
        if !errors.is_empty() {
            return Err(ProjectError::Validation(errors));
        }

        let name = name.filter(|n| *n != current.name);
        let generation_mode = changes
            .generation_mode
            .filter(|m| *m != current.generation_mode);
        let configuration = configuration.filter(|c| *c != current.configuration);
        let new_schema = new_schema.filter(|s| Some(s) != current.schema_definition.as_ref());
        let is_enabled = changes.is_enabled.filter(|e| *e != current.is_enabled);
        if name.is_none()
            && generation_mode.is_none()
            && configuration.is_none()
            && new_schema.is_none()
            && is_enabled.is_none()
        {
            return Ok(vec![]);
        }

        self.check_taken(feature_id, name.as_deref(), new_schema.as_ref())?;
        if let Some(old) = current.entity() {
            let renamed = new_schema.as_ref().is_some_and(|s| s.entity != old.entity);
            if renamed {
                let by = self.referencing(&old.entity, feature_id, false);
                if !by.is_empty() {
                    return Err(ProjectError::FeatureReferenced { by });
                }
            }
            if is_enabled == Some(false) {
                let by = self.referencing(&old.entity, feature_id, true);
                if !by.is_empty() {
                    return Err(ProjectError::FeatureReferenced { by });
                }
            }
        }
        Ok(vec![ProjectEvent::FeatureUpdated {
            project_id: self.id,
            feature_id,
            name,
            generation_mode,
            configuration,
            schema_definition: new_schema,
            is_enabled,
            updated_at: at,
            ai_request_id: None,
        }])
    }

    fn remove_feature(
        &self,
        RemoveFeature { feature_id, at }: &RemoveFeature,
    ) -> Result<Vec<ProjectEvent>, ProjectError> {
        let (feature_id, at) = (*feature_id, *at);
        let current = self
            .feature(feature_id)
            .ok_or(ProjectError::FeatureNotFound(feature_id))?;
        if let Some(schema) = current.entity() {
            let by = self.referencing(&schema.entity, feature_id, false);
            if !by.is_empty() {
                return Err(ProjectError::FeatureReferenced { by });
            }
        }
        Ok(vec![ProjectEvent::FeatureRemoved {
            project_id: self.id,
            feature_id,
            removed_at: at,
        }])
    }
}
