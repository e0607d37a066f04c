//! Every NATS name of one installation — streams, subjects, subject filters, durable consumers —
//! derived from its prefix, so installations (and parallel tests) sharing a server never overlap.

use uuid::Uuid;

use crate::jobs::JobKind;

/// The project token of the subject of an event that belongs to no project (a user's events).
pub const NO_PROJECT: &str = "_";

/// The names of one installation, derived from `BACKFORGE_NATS_PREFIX` (letters, digits, `_` and
/// `-`, checked by the settings; stream names may not contain `.`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
}

impl Names {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<PREFIX>_EVENTS`: every integration event.
    pub fn events_stream(&self) -> String {
        format!("{}_EVENTS", self.prefix.to_uppercase())
    }

    /// `<PREFIX>_JOBS`: work-queue jobs, one subject per [`JobKind`].
    pub fn jobs_stream(&self) -> String {
        format!("{}_JOBS", self.prefix.to_uppercase())
    }

    /// `<prefix>.events.<project_id or "_">.<aggregate>.<id>.<EventType>`: the project comes first
    /// so `<prefix>.events.<project_id>.>` follows one project (see [`Names::project_events`]).
    pub fn event_subject(
        &self,
        project: Option<Uuid>,
        aggregate: &str,
        id: &str,
        event_type: &str,
    ) -> String {
        let project = project.map_or_else(|| NO_PROJECT.to_owned(), |p| p.to_string());
        format!(
            "{}.events.{project}.{aggregate}.{id}.{event_type}",
            self.prefix
        )
    }

    /// `<prefix>.events.>`: every event of the installation (the events stream's subjects).
    pub fn all_events(&self) -> String {
        format!("{}.events.>", self.prefix)
    }

    /// `<prefix>.events.<project_id>.>`: everything of one project — its own events and those of
    /// its generations and every later project-owned aggregate.
    pub fn project_events(&self, project_id: Uuid) -> String {
        format!("{}.events.{project_id}.>", self.prefix)
    }

    /// `<prefix>.jobs.<kind>`.
    pub fn job_subject(&self, kind: JobKind) -> String {
        format!("{}.jobs.{}", self.prefix, kind.as_str())
    }

    /// `<prefix>.jobs.>`: every job (the jobs stream's subjects).
    pub fn all_jobs(&self) -> String {
        format!("{}.jobs.>", self.prefix)
    }

    /// The durable consumer of `kind`'s jobs on the jobs stream (one per kind, shared by every
    /// worker process, so each job goes to one of them).
    pub fn job_consumer(&self, kind: JobKind) -> String {
        format!("{}-worker", kind.as_str())
    }

    /// The CloudEvents `type` of an event: `<prefix>.<aggregate>.<EventType>`.
    pub fn event_type(&self, aggregate: &str, event_type: &str) -> String {
        format!("{}.{aggregate}.{event_type}", self.prefix)
    }

    /// The CloudEvents `source` of an aggregate: `/<prefix>/<aggregate>/<id>`.
    pub fn event_source(&self, aggregate: &str, id: &str) -> String {
        format!("/{}/{aggregate}/{id}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROJECT: Uuid = Uuid::from_u128(0x01a2_1455_07e1_7397_ac62_1f5c_9f51_7c5f);

    #[test]
    fn streams_are_the_upper_cased_prefix() {
        let names = Names::new("acme-1");
        assert_eq!(names.events_stream(), "ACME-1_EVENTS");
        assert_eq!(names.jobs_stream(), "ACME-1_JOBS");
    }

    #[test]
    fn an_event_subject_names_its_project_first_or_an_underscore() {
        let names = Names::new("backforge");
        assert_eq!(
            names.event_subject(Some(PROJECT), "generation", "g1", "GenerationCompleted"),
            format!("backforge.events.{PROJECT}.generation.g1.GenerationCompleted")
        );
        assert_eq!(
            names.event_subject(None, "user", "u1", "UserRegistered"),
            "backforge.events._.user.u1.UserRegistered"
        );
    }

    #[test]
    fn the_filters_cover_the_subjects_they_are_for() {
        let names = Names::new("backforge");
        let subject = names.event_subject(Some(PROJECT), "project", "p", "ProjectCreated");
        let project = names.project_events(PROJECT);
        assert!(subject.starts_with(project.trim_end_matches('>')));
        assert!(subject.starts_with(names.all_events().trim_end_matches('>')));
        let job = names.job_subject(JobKind::Generation);
        assert_eq!(job, "backforge.jobs.generation");
        assert!(job.starts_with(names.all_jobs().trim_end_matches('>')));
    }

    #[test]
    fn the_generation_consumer_keeps_its_durable_name() {
        // Renaming a durable consumer orphans the old one with its unacknowledged jobs.
        assert_eq!(
            Names::new("x").job_consumer(JobKind::Generation),
            "generation-worker"
        );
    }

    #[test]
    fn cloud_event_type_and_source_carry_the_prefix() {
        let names = Names::new("bf");
        assert_eq!(
            names.event_type("project", "FeatureAdded"),
            "bf.project.FeatureAdded"
        );
        assert_eq!(names.event_source("project", "p1"), "/bf/project/p1");
    }
}
