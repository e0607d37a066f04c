//! Existence, archiving, project updates, members, access and serialisation.

use super::*;

// --- existence and archiving ---

fn every_later_command() -> Vec<ProjectCommand> {
    vec![
        ProjectCommand::UpdateProject(UpdateProject {
            name: Some("New".into()),
            description: None,
            generation_mode: None,
            at: t(5),
        }),
        ProjectCommand::ArchiveProject(ArchiveProject { at: t(5) }),
        ProjectCommand::AddMember(AddMember {
            user_id: viewer(),
            role: ProjectRole::Viewer,
            at: t(5),
        }),
        ProjectCommand::RemoveMember(RemoveMember {
            user_id: viewer(),
            at: t(5),
        }),
        add(NewFeature::new(feature_id(9), "Login", FeatureType::Auth)),
        update(
            1,
            FeatureChanges {
                name: Some("X".into()),
                ..FeatureChanges::default()
            },
        ),
        ProjectCommand::RemoveFeature(RemoveFeature {
            feature_id: feature_id(1),
            at: t(5),
        }),
    ]
}

#[test]
fn commands_on_a_project_never_created_are_refused_as_not_found() {
    for command in every_later_command() {
        given_nothing::<Project>()
            .when(command)
            .then_err(ProjectError::NotFound);
    }
}

#[test]
fn archiving_a_project_records_it() {
    let project = given([created()])
        .when(ProjectCommand::ArchiveProject(ArchiveProject { at: t(9) }))
        .then([archived()]);
    assert_eq!(project.status, ProjectStatus::Archived);
    assert_eq!(project.updated_at, t(9));
}

#[test]
fn nothing_changes_on_an_archived_project() {
    let mut history = shop();
    history.push(archived());
    for command in every_later_command() {
        given(history.clone())
            .when(command)
            .then_err(ProjectError::Archived);
    }
}

// --- project updates ---

fn update_project(
    name: Option<&str>,
    description: Option<Option<&str>>,
    generation_mode: Option<GenerationMode>,
) -> ProjectCommand {
    ProjectCommand::UpdateProject(UpdateProject {
        name: name.map(str::to_owned),
        description: description.map(|d| d.map(str::to_owned)),
        generation_mode,
        at: t(5),
    })
}

#[test]
fn an_update_without_any_field_is_rejected() {
    given([created()])
        .when(update_project(None, None, None))
        .then_err(ProjectError::Validation(vec![FieldError::new(
            "",
            "nothing to update: give at least one field",
        )]));
}

#[test]
fn an_update_records_only_the_changed_fields() {
    let project = given([created()])
        .when(update_project(
            Some(" Shop "),
            Some(Some("Sells things")),
            Some(GenerationMode::Manual),
        ))
        .then([ProjectEvent::ProjectUpdated {
            project_id: pid(),
            name: None,
            description: Some(Some("Sells things".into())),
            generation_mode: None,
            updated_at: t(5),
        }]);
    assert_eq!(project.description.as_deref(), Some("Sells things"));
    assert_eq!(project.updated_at, t(5));
}

#[test]
fn an_update_that_changes_nothing_records_nothing() {
    given([created()])
        .when(update_project(
            Some("Shop"),
            Some(None),
            Some(GenerationMode::Manual),
        ))
        .then_nothing();
}

#[test]
fn a_null_description_clears_it() {
    let described = ProjectEvent::ProjectUpdated {
        project_id: pid(),
        name: None,
        description: Some(Some("Old".into())),
        generation_mode: None,
        updated_at: t(4),
    };
    let cleared = ProjectEvent::ProjectUpdated {
        project_id: pid(),
        name: None,
        description: Some(None),
        generation_mode: None,
        updated_at: t(5),
    };
    let project = given([created(), described])
        .when(update_project(None, Some(None), None))
        .then([cleared.clone()]);
    assert_eq!(project.description, None);
    assert_eq!(cleared.to_data()["description"], Value::Null);
}

#[test]
fn a_project_update_distinguishes_unchanged_from_cleared_in_storage() {
    let renamed = ProjectEvent::ProjectUpdated {
        project_id: pid(),
        name: Some("New".into()),
        description: None,
        generation_mode: Some(GenerationMode::AiAssisted),
        updated_at: t(5),
    };
    let data = renamed.to_data();
    assert!(data.get("description").is_none());
    assert_eq!(data["generation_mode"], "ai_assisted");
    assert_eq!(
        ProjectEvent::from_data("ProjectUpdated", data).unwrap(),
        renamed
    );

    let cleared = ProjectEvent::ProjectUpdated {
        project_id: pid(),
        name: None,
        description: Some(None),
        generation_mode: None,
        updated_at: t(5),
    };
    let data = cleared.to_data();
    assert_eq!(data.get("description"), Some(&Value::Null));
    assert!(data.get("name").is_none());
    assert_eq!(
        ProjectEvent::from_data("ProjectUpdated", data).unwrap(),
        cleared
    );
}

#[test]
fn an_update_with_a_bad_name_and_description_reports_both() {
    let outcome = given([created()])
        .when(update_project(
            Some(""),
            Some(Some(&"x".repeat(2001))),
            None,
        ))
        .outcome();
    assert_eq!(invalid_at(outcome), ["/name", "/description"]);
}

// --- members ---

#[test]
fn an_event_changes_no_feature_beyond_the_ones_it_says_it_touches() {
    // Given a shop with three features
    let mut project = Project::default();
    let mut history = shop();
    history.push(crud_added(3, "Notes", raw_entity("note", None)));
    let later = vec![
        // When it is renamed, shared, a feature is disabled, one added, one removed
        ProjectEvent::ProjectUpdated {
            project_id: pid(),
            name: Some("Shop 2".into()),
            description: None,
            generation_mode: None,
            updated_at: t(3),
        },
        member_added(),
        disabled(1),
        crud_added(4, "Tags", raw_entity("tag", None)),
        ProjectEvent::FeatureRemoved {
            project_id: pid(),
            feature_id: feature_id(3),
            removed_at: t(5),
        },
        archived(),
    ];
    for event in history.iter().chain(&later) {
        let before = project.features.clone();
        project.evolve(event);
        // Then every feature it does not name keeps its content and its place
        match event.features_touched() {
            FeaturesTouched::None => assert_eq!(project.features, before, "{event:?}"),
            FeaturesTouched::One(id) => {
                let others = |fs: &[crate::Shared<Feature>]| -> Vec<crate::Shared<Feature>> {
                    fs.iter().filter(|f| f.id != id).cloned().collect()
                };
                assert_eq!(others(&project.features), others(&before), "{event:?}");
                assert!(project.features.iter().any(|f| f.id == id));
            }
            FeaturesTouched::All => {}
        }
    }
    assert_eq!(
        later[4].features_touched(),
        FeaturesTouched::All,
        "a removal moves the later features up"
    );
    assert_eq!(project.features.len(), 3);
}

fn member_added() -> ProjectEvent {
    ProjectEvent::ProjectMemberAdded {
        project_id: pid(),
        user_id: viewer(),
        role: ProjectRole::Viewer,
        added_at: t(2),
    }
}

#[test]
fn the_owner_adds_a_viewer() {
    let project = given([created()])
        .when(ProjectCommand::AddMember(AddMember {
            user_id: viewer(),
            role: ProjectRole::Viewer,
            at: t(2),
        }))
        .then([member_added()]);
    assert_eq!(
        project.members,
        [Member {
            user_id: viewer(),
            role: ProjectRole::Viewer,
            added_at: t(2)
        }]
    );
}

#[test]
fn adding_a_member_again_with_the_same_role_changes_nothing() {
    given([created(), member_added()])
        .when(ProjectCommand::AddMember(AddMember {
            user_id: viewer(),
            role: ProjectRole::Viewer,
            at: t(3),
        }))
        .then_nothing();
}

#[test]
fn the_owner_cannot_be_added_as_a_member() {
    given([created()])
        .when(ProjectCommand::AddMember(AddMember {
            user_id: owner(),
            role: ProjectRole::Viewer,
            at: t(2),
        }))
        .then_err(ProjectError::OwnerCannotBeMember);
}

#[test]
fn a_member_is_removed() {
    let project = given([created(), member_added()])
        .when(ProjectCommand::RemoveMember(RemoveMember {
            user_id: viewer(),
            at: t(3),
        }))
        .then([ProjectEvent::ProjectMemberRemoved {
            project_id: pid(),
            user_id: viewer(),
            removed_at: t(3),
        }]);
    assert!(project.members.is_empty());
}

#[test]
fn removing_a_non_member_is_refused() {
    given([created()])
        .when(ProjectCommand::RemoveMember(RemoveMember {
            user_id: viewer(),
            at: t(3),
        }))
        .then_err(ProjectError::MemberNotFound(viewer()));
}

// --- access ---

#[test]
fn access_follows_ownership_membership_and_the_global_role() {
    let project = given([created(), member_added()]).state().clone();
    let stranger = user_id(3);
    assert_eq!(project.access_for(owner(), Role::Member), Access::Owner);
    assert_eq!(project.access_for(viewer(), Role::Member), Access::Viewer);
    assert_eq!(project.access_for(stranger, Role::Member), Access::None);
    assert_eq!(project.access_for(stranger, Role::Admin), Access::Admin);
    assert!(Access::Viewer.can_read() && !Access::Viewer.can_write());
    assert!(Access::Owner.can_write() && Access::Admin.can_write());
    assert!(!Access::None.can_read());
}

#[test]
fn on_an_archived_project_only_the_owner_and_admins_keep_access() {
    let project = given([created(), member_added(), archived()])
        .state()
        .clone();
    assert_eq!(project.access_for(viewer(), Role::Member), Access::None);
    assert_eq!(project.access_for(owner(), Role::Member), Access::Owner);
    assert_eq!(project.access_for(user_id(3), Role::Admin), Access::Admin);
}

#[test]
fn nobody_has_access_to_a_project_never_created() {
    assert_eq!(
        Project::default().access_for(owner(), Role::Admin),
        Access::None
    );
}

// --- serialisation ---

#[test]
fn a_project_serialises_with_the_field_names_of_the_api() {
    let project = given([
        created(),
        member_added(),
        crud_added(1, "Customers", customer_raw()),
    ])
    .state()
    .clone();
    let json = serde_json::to_value(&project).unwrap();
    let keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        [
            "id",
            "name",
            "description",
            "owner_id",
            "status",
            "generation_mode",
            "features",
            "members",
            "created_at",
            "updated_at"
        ]
    );
    let feature_keys: Vec<_> = json["features"][0]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        feature_keys,
        [
            "id",
            "name",
            "feature_type",
            "generation_mode",
            "configuration",
            "schema_definition",
            "is_enabled",
            "created_at",
            "updated_at"
        ]
    );
    assert_eq!(json["members"][0]["role"], "viewer");
    assert_eq!(json["status"], "active");
    let back: Project = serde_json::from_value(json).unwrap();
    assert!(back.exists());
    assert_eq!(back, project);
}
