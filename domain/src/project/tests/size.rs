//! The size memo behind `Project::serialized_bytes`: exact after every event, and never trusted
//! for a state it did not follow.

use super::*;
use crate::ids::FeatureId;
use crate::serialized_len;

fn removed(id: u128) -> ProjectEvent {
    ProjectEvent::FeatureRemoved {
        project_id: pid(),
        feature_id: crate::testing::feature_id(id),
        removed_at: t(3),
    }
}

fn member(n: u128) -> ProjectEvent {
    ProjectEvent::ProjectMemberAdded {
        project_id: pid(),
        user_id: user_id(n),
        role: ProjectRole::Viewer,
        added_at: t(4),
    }
}

#[test]
fn the_size_is_the_serialised_length_after_every_event() {
    // Given every kind of change to the feature list, the members and the project itself,
    let history = [
        created(),
        crud_added(1, "Customers", customer_raw()),
        crud_added(2, "Orders", order_raw()),
        added(3, "Sign-in", FeatureType::Auth, None),
        disabled(1),
        member(5),
        removed(2),
        crud_added(4, "Notes", raw_entity("note", Some("customer"))),
        removed(3),
        removed(1),
        removed(4),
        member(6),
        archived(),
    ];
    // when they are folded one by one, then the memo's sum is exactly what serialising the whole
    // state writes, after every event.
    fold_checking_the_size(&history);
}

/// Folds `history` from the default state, checking after every event that the memo's size is
/// what serialising the whole state writes.
fn fold_checking_the_size(history: &[ProjectEvent]) {
    let mut project = Project::default();
    assert_eq!(project.serialized_bytes(), serialized_len(&project));
    for event in history {
        project.evolve(event);
        assert_eq!(
            project.serialized_bytes(),
            serialized_len(&project),
            "after {}",
            event.event_type()
        );
    }
}

#[test]
fn a_state_the_memo_did_not_follow_is_measured_in_full() {
    let mut project = Project::default();
    for event in shop() {
        project.evolve(&event);
    }
    // A deserialised copy (a read model's document) has no memo to trust,
    let copy: Project = serde_json::from_slice(&serde_json::to_vec(&project).unwrap()).unwrap();
    assert_eq!(copy.serialized_bytes(), serialized_len(&project));
    // and a state changed behind `evolve`'s back is not summed from stale lengths.
    let mut changed = project.clone();
    changed.features.push(
        Feature {
            id: FeatureId::from_uuid(uuid::Uuid::from_u128(77)),
            ..(*project.features[0]).clone()
        }
        .into(),
    );
    assert_eq!(changed.serialized_bytes(), serialized_len(&changed));
}

#[test]
fn a_folded_feature_list_keeps_at_most_an_eighth_spare() {
    // Given a project folded from its creation and 70 added features (past 64, where doubling
    // would leave 58 of 128 slots empty),
    let mut project = Project::default();
    project.evolve(&created());
    for n in 0..70u128 {
        project.evolve(&added(
            100 + n,
            &format!("Feature {n}"),
            FeatureType::Auth,
            None,
        ));
        // then after every event the list's spare capacity is at most an eighth of it (four
        // slots while it is short).
        let (len, capacity) = (project.features.len(), project.features.capacity());
        assert!(
            capacity <= len + (len / 8).max(4),
            "{len} features in {capacity} slots"
        );
    }
    assert_eq!(project.features.len(), 70);
}

#[test]
fn a_feature_id_folded_twice_is_never_summed_from_stale_lengths() {
    // Given a history no decider writes — a feature added again under an id it already has —
    let history = [
        created(),
        added(1, "Sign-in", FeatureType::Auth, None),
        added(
            1,
            "A much longer name for the same id",
            FeatureType::Auth,
            None,
        ),
        disabled(1),
        added(2, "Uploads", FeatureType::FileStorage, None),
        removed(1),
    ];
    // when it is folded, then after every event the size is what serialising writes.
    fold_checking_the_size(&history);
}
