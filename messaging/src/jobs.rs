//! Every job body on `<PREFIX>_JOBS`, one type per kind that the job relay serialises and the worker
//! deserialises. Bodies carry ids only: the worker reads everything else from the event store, so a
//! job can never disagree with the events it stands for.

use domain::ai::request::AiRequestEvent;
use domain::generation::GenerationEvent;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The kinds of job, each with its own subject and durable consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    Generation,
    /// An AI request: ask the model, repair, record the attempts and the outcome.
    Ai,
}

impl JobKind {
    /// The last token of the kind's subject (`<prefix>.jobs.<kind>`).
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Generation => "generation",
            JobKind::Ai => "ai",
        }
    }
}

/// The event types that make a job, one per kind: the job relay filters on these before decoding.
pub const SOURCE_EVENTS: [&str; 2] = [GenerationJob::SOURCE_EVENT, AiJob::SOURCE_EVENT];

/// A job body: its kind, and the one JSON form both sides use.
pub trait Job: Serialize + DeserializeOwned {
    const KIND: JobKind;

    fn to_body(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    fn from_body(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

/// Generate (and, when asked, verify) the project at a version: published once per
/// `GenerationRequested`. Unknown members are ignored, so bodies published by an older relay (which
/// also carried `target`, `verify` and `position`) are still read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationJob {
    pub generation_id: Uuid,
    pub project_id: Uuid,
    pub project_version: u64,
    /// The `GenerationRequested` event the job stands for (its causation).
    pub event_id: Uuid,
}

impl Job for GenerationJob {
    const KIND: JobKind = JobKind::Generation;
}

impl GenerationJob {
    /// The only event type that makes a generation job; the relay filters on it before decoding.
    pub const SOURCE_EVENT: &'static str = "GenerationRequested";

    /// The job of `event`, stored with id `event_id`, or `None` for events that make no job.
    pub fn of(event: &GenerationEvent, event_id: Uuid) -> Option<Self> {
        match event {
            GenerationEvent::GenerationRequested {
                generation_id,
                project_id,
                project_version,
                ..
            } => Some(Self {
                generation_id: generation_id.as_uuid(),
                project_id: project_id.as_uuid(),
                project_version: *project_version,
                event_id,
            }),
            _ => None,
        }
    }
}

/// Run an AI request: published once per `AiRequested`. The worker reads the request (model,
/// prompt template, project version) from its stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AiJob {
    pub ai_request_id: Uuid,
    pub project_id: Uuid,
    /// The `AiRequested` event the job stands for (its causation).
    pub event_id: Uuid,
}

impl Job for AiJob {
    const KIND: JobKind = JobKind::Ai;
}

impl AiJob {
    /// The only event type that makes an AI job.
    pub const SOURCE_EVENT: &'static str = "AiRequested";

    /// The job of `event`, stored with id `event_id`, or `None` for events that make no job.
    pub fn of(event: &AiRequestEvent, event_id: Uuid) -> Option<Self> {
        match event {
            AiRequestEvent::AiRequested {
                request_id,
                project_id,
                ..
            } => Some(Self {
                ai_request_id: request_id.as_uuid(),
                project_id: project_id.as_uuid(),
                event_id,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use domain::generation::Target;
    use domain::ids::{GenerationId, ProjectId, UserId};
    use serde_json::json;
    use time::OffsetDateTime;

    use super::*;

    #[test]
    fn the_source_event_is_a_type_the_domain_writes() {
        assert!(GenerationEvent::TYPES.contains(&GenerationJob::SOURCE_EVENT));
        assert!(AiRequestEvent::TYPES.contains(&AiJob::SOURCE_EVENT));
    }

    #[test]
    fn an_ai_request_makes_an_ai_job_of_ids_only_and_nothing_else_does() {
        use domain::ids::AiRequestId;
        let started = AiRequestEvent::AiRequestStarted {
            request_id: AiRequestId::from_uuid(Uuid::from_u128(1)),
            delivery: 1,
            started_at: OffsetDateTime::UNIX_EPOCH,
        };
        assert_eq!(AiJob::of(&started, Uuid::from_u128(9)), None);
        let job = AiJob {
            ai_request_id: Uuid::from_u128(1),
            project_id: Uuid::from_u128(2),
            event_id: Uuid::from_u128(3),
        };
        let body = job.to_body().expect("serialises");
        assert_eq!(AiJob::from_body(&body).expect("reads"), job);
        let value: serde_json::Value = serde_json::from_slice(&body).expect("json");
        let mut keys: Vec<&str> = value
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["ai_request_id", "event_id", "project_id"],
            "ids only"
        );
        assert_eq!(AiJob::KIND.as_str(), "ai");
    }

    #[test]
    fn a_requested_generation_makes_a_job_and_nothing_else_does() {
        let requested = GenerationEvent::GenerationRequested {
            generation_id: GenerationId::from_uuid(Uuid::from_u128(1)),
            project_id: ProjectId::from_uuid(Uuid::from_u128(2)),
            project_version: 4,
            target: Target::PythonFastapi,
            base_generation_id: None,
            verify: true,
            requested_by: UserId::from_uuid(Uuid::from_u128(5)),
            requested_at: OffsetDateTime::UNIX_EPOCH,
        };
        assert_eq!(
            GenerationJob::of(&requested, Uuid::from_u128(9)),
            Some(GenerationJob {
                generation_id: Uuid::from_u128(1),
                project_id: Uuid::from_u128(2),
                project_version: 4,
                event_id: Uuid::from_u128(9),
            })
        );
        let started = GenerationEvent::GenerationStarted {
            generation_id: GenerationId::from_uuid(Uuid::from_u128(1)),
            attempt: 1,
            started_at: OffsetDateTime::UNIX_EPOCH,
        };
        assert_eq!(GenerationJob::of(&started, Uuid::from_u128(9)), None);
    }

    #[test]
    fn a_job_reads_back_what_it_wrote() {
        let job = GenerationJob {
            generation_id: Uuid::from_u128(1),
            project_id: Uuid::from_u128(2),
            project_version: 7,
            event_id: Uuid::from_u128(3),
        };
        let body = job.to_body().expect("serialises");
        assert_eq!(GenerationJob::from_body(&body).expect("reads"), job);
        let value: serde_json::Value = serde_json::from_slice(&body).expect("json");
        let mut keys: Vec<&str> = value
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["event_id", "generation_id", "project_id", "project_version"],
            "ids only"
        );
    }

    #[test]
    fn a_body_from_an_older_relay_is_still_read() {
        let old = json!({
            "generation_id": Uuid::from_u128(1), "project_id": Uuid::from_u128(2),
            "project_version": 2, "target": "python-fastapi", "verify": true,
            "event_id": Uuid::from_u128(3), "position": "1a.2",
        });
        let job = GenerationJob::from_body(old.to_string().as_bytes()).expect("reads");
        assert_eq!(job.project_version, 2);
        assert_eq!(job.event_id, Uuid::from_u128(3));
    }
}
