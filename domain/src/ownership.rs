//! Which events belong to a project: decided once, by aggregate, for every writer and the store.
//!
//! A project's own stream and the streams of the aggregates it owns (generations today; later AI
//! requests, records, files, tasks, specs) carry the project's id in every event's metadata, so an
//! integrator can follow one project. The append path refuses a project-owned event without it.

use crate::ai::request::AiRequest;
use crate::generation::Generation;
use crate::ids::{AiRequestId, GenerationId, ProjectId, RecordId};
use crate::project::Project;
use crate::user::User;

/// The project an aggregate's events belong to, read from its state after the events.
///
/// Every aggregate that goes through the application step implements it, so a new project-owned
/// aggregate states its project by construction.
pub trait ProjectOwned {
    /// `None` for aggregates that belong to no project (users) and for a state before its first event.
    fn project_id(&self) -> Option<ProjectId>;
}

impl ProjectOwned for Project {
    fn project_id(&self) -> Option<ProjectId> {
        self.exists().then_some(self.id)
    }
}

impl ProjectOwned for Generation {
    fn project_id(&self) -> Option<ProjectId> {
        self.exists().then_some(self.project_id)
    }
}

impl ProjectOwned for AiRequest {
    fn project_id(&self) -> Option<ProjectId> {
        self.exists().then_some(self.project_id)
    }
}

impl ProjectOwned for User {
    fn project_id(&self) -> Option<ProjectId> {
        None
    }
}

/// What a stream's name says about the project its events belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamOwner {
    /// Not project-owned (users, e-mail reservations, the operations stream).
    None,
    /// The stream is the project's own: its name holds the id.
    Project(ProjectId),
    /// The stream belongs to a project its name does not hold: the id must come with each event.
    SomeProject,
}

/// The one rule of which streams are project-owned.
pub fn stream_owner(stream_id: &str) -> StreamOwner {
    if let Some(project) = ProjectId::from_stream(stream_id) {
        StreamOwner::Project(project)
    } else if GenerationId::from_stream(stream_id).is_some()
        || AiRequestId::from_stream(stream_id).is_some()
        || RecordId::from_stream(stream_id).is_some()
    {
        StreamOwner::SomeProject
    } else {
        StreamOwner::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;
    use uuid::Uuid;

    #[test]
    fn project_and_generation_streams_are_project_owned_and_user_streams_are_not() {
        let id = Uuid::now_v7();
        let project = ProjectId::from_uuid(id);
        assert_eq!(
            stream_owner(&project.stream()),
            StreamOwner::Project(project)
        );
        assert_eq!(
            stream_owner(&GenerationId::from_uuid(id).stream()),
            StreamOwner::SomeProject
        );
        assert_eq!(
            stream_owner(&AiRequestId::from_uuid(id).stream()),
            StreamOwner::SomeProject
        );
        assert_eq!(
            stream_owner(&UserId::from_uuid(id).stream()),
            StreamOwner::None
        );
        assert_eq!(stream_owner("project-not-a-uuid"), StreamOwner::None);
        assert_eq!(stream_owner("operations"), StreamOwner::None);
    }

    #[test]
    fn a_state_before_its_first_event_belongs_to_no_project() {
        assert_eq!(Project::default().project_id(), None);
        assert_eq!(Generation::default().project_id(), None);
        assert_eq!(AiRequest::default().project_id(), None);
    }
}
