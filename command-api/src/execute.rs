//! The unit of work of every write: a plan (the application step's decision) → the step's commit,
//! which appends the events, runs the command-side writes and stores the idempotent answer in one
//! transaction (or one autocommit statement when there is nothing else) → notify → answer.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, ETAG, LOCATION};
use deadpool_postgres::Pool;
use domain::Decider;
use event_store::application::{self, Decided, Failure, Landed, Pin, SideWrites, retry};
use event_store::{PgEventStore, Position, StoreError, StreamAppend};
use runtime::{ApiError, ProblemType};
use serde_json::Value;
use std::sync::Arc;

use tokio_postgres::types::ToSql;

use crate::idempotency::{self, Begin, Claim, StoredAnswer};

pub const POSITION_HEADER: &str = "Backforge-Position";

/// A command-side statement that commits (or not) with the events.
pub struct SideWrite {
    pub sql: &'static str,
    pub params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl SideWrite {
    pub fn new(sql: &'static str, params: Vec<Box<dyn ToSql + Sync + Send>>) -> Self {
        Self { sql, params }
    }

    /// Runs the statement on `client` (a pooled connection or a transaction).
    pub async fn run<C: deadpool_postgres::GenericClient>(
        &self,
        client: &C,
    ) -> Result<u64, tokio_postgres::Error> {
        let params: Vec<&(dyn ToSql + Sync)> =
            self.params.iter().map(|p| p.as_ref() as _).collect();
        client.execute(self.sql, &params).await
    }
}

/// The answer to a successful write.
#[derive(Debug, Clone)]
pub struct WriteAnswer {
    pub status: StatusCode,
    pub body: Option<Value>,
    pub location: Option<String>,
    pub version: u64,
    pub position: Position,
}

impl WriteAnswer {
    fn stored(&self) -> StoredAnswer {
        StoredAnswer {
            status: self.status.as_u16(),
            body: self.body.clone(),
            version: Some(self.version),
            position: Some(self.position.to_token()),
            location: self.location.clone(),
            problem: false,
        }
    }

    pub fn into_response(self) -> HttpResponse {
        respond(&self.stored())
    }
}

/// Turns a stored (or fresh) answer into an HTTP response with the write headers.
pub fn respond(stored: &StoredAnswer) -> HttpResponse {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = HttpResponse::build(status);
    if let Some(version) = stored.version {
        response.insert_header((ETAG, runtime::http_headers::etag(version)));
    }
    if let Some(position) = &stored.position {
        response.insert_header((POSITION_HEADER, position.as_str()));
    }
    if let Some(location) = &stored.location {
        response.insert_header((LOCATION, location.as_str()));
    }
    match &stored.body {
        Some(body) if stored.problem => response
            .insert_header((header::CONTENT_TYPE, "application/problem+json"))
            .body(body.to_string()),
        Some(body) => response.json(body),
        None => response.finish(),
    }
}

type ReplyFn = Arc<dyn Fn(u64, Position) -> WriteAnswer + Send + Sync>;

/// What a successful commit tells the command's own state (the command side's cache of folded
/// states), before the answer leaves.
type LandedFn = Box<dyn FnOnce(&Landed) + Send>;

/// What a command decided: events to append, side writes, and how to answer.
pub struct Plan {
    pub appends: Vec<StreamAppend>,
    pub side_writes: Vec<SideWrite>,
    /// Side writes with logic of their own (an AI budget admission, a record's constraint
    /// rows), run after `side_writes`; one that fails fails the whole write.
    pub hooks: Vec<Box<dyn SideWrites>>,
    /// The stream whose version the answer reports (ETag, `version`).
    pub stream: String,
    /// The stream's version and last position as loaded, reported when nothing is appended.
    pub current_version: u64,
    pub current_position: Position,
    /// A conflict on one of these streams is a fixed answer (e-mail taken), not a race to retry.
    pub unique_streams: Vec<(String, ProblemType, &'static str)>,
    pub reply: ReplyFn,
    pub on_landed: Option<LandedFn>,
}

impl Plan {
    pub fn new(
        stream: impl Into<String>,
        current_version: u64,
        current_position: Position,
    ) -> Self {
        Self {
            appends: Vec::new(),
            side_writes: Vec::new(),
            hooks: Vec::new(),
            stream: stream.into(),
            current_version,
            current_position,
            unique_streams: Vec::new(),
            on_landed: None,
            reply: Arc::new(|version, position| WriteAnswer {
                status: StatusCode::NO_CONTENT,
                body: None,
                location: None,
                version,
                position,
            }),
        }
    }

    /// The plan of one step's decision: its append (if any) at the version it decided on.
    pub fn decided<A: Decider>(stream: impl Into<String>, decided: Decided<A>) -> Self {
        let plan = Self::new(stream, decided.version, decided.position);
        match decided.append {
            Some(append) => plan.append(append),
            None => plan,
        }
    }

    pub fn append(mut self, append: StreamAppend) -> Self {
        self.appends.push(append);
        self
    }

    pub fn side_write(mut self, write: SideWrite) -> Self {
        self.side_writes.push(write);
        self
    }

    /// A side write with logic of its own, committed with the events (or failing the write).
    pub fn hook(mut self, write: impl SideWrites + 'static) -> Self {
        self.hooks.push(Box::new(write));
        self
    }

    /// How the write answers, given the stream's version and position after it. Called once for
    /// the answer and once more for the idempotency record, so it must not consume what it holds.
    pub fn reply(
        mut self,
        reply: impl Fn(u64, Position) -> WriteAnswer + Send + Sync + 'static,
    ) -> Self {
        self.reply = Arc::new(reply);
        self
    }

    /// Runs `hook` once the plan's events have been committed (not when nothing was appended).
    pub fn on_landed(mut self, hook: impl FnOnce(&Landed) + Send + 'static) -> Self {
        self.on_landed = Some(Box::new(hook));
        self
    }

    pub fn unique(
        mut self,
        stream: impl Into<String>,
        kind: ProblemType,
        detail: &'static str,
    ) -> Self {
        self.unique_streams.push((stream.into(), kind, detail));
        self
    }
}

/// The one mapping of a failed application step to an answer; `domain` maps the aggregate's error.
pub fn failure<D>(failure: Failure<D, ApiError>, domain: impl FnOnce(D) -> ApiError) -> ApiError {
    match failure {
        Failure::Domain(e) => domain(e),
        Failure::Refused(e) => e,
        Failure::Precondition { current } => ApiError::new(
            ProblemType::PreconditionFailed,
            format!("If-Match does not match the current version \"{current}\""),
        ),
        Failure::Conflict { .. } => ApiError::conflict(
            ProblemType::ConcurrentModification,
            "the resource is being changed by other requests; retry",
        ),
        Failure::Store(e) => e.into(),
    }
}

/// A plan's command-side writes and idempotent answer, committed with its events (owned: the
/// group-commit writer runs them in its own task).
struct PlanWrites {
    writes: Vec<SideWrite>,
    hooks: Vec<Box<dyn SideWrites>>,
    claim: Option<Claim>,
    reply: ReplyFn,
}

#[async_trait::async_trait]
impl SideWrites for PlanWrites {
    fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.hooks.iter().all(|h| h.is_empty()) && self.claim.is_none()
    }

    async fn write(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        landed: &Landed,
    ) -> Result<(), StoreError> {
        for write in &self.writes {
            write.run(tx).await.map_err(event_store::postgres::map_pg)?;
        }
        for hook in &self.hooks {
            hook.write(tx, landed).await?;
        }
        if let Some(claim) = &self.claim {
            let reply = (self.reply)(landed.version, landed.position);
            idempotency::complete(tx, claim, &reply.stored()).await?;
        }
        Ok(())
    }
}

fn transient(kind: ProblemType) -> bool {
    matches!(
        kind,
        ProblemType::ConcurrentModification
            | ProblemType::IdempotencyKeyInFlight
            | ProblemType::RateLimited
            | ProblemType::AiBudgetExceeded
    )
}

/// Runs plans through the application step's commit, with idempotency keys.
#[derive(Clone)]
pub struct Executor {
    pub store: PgEventStore,
    pub pool: Pool,
    pub idempotency_ttl: std::time::Duration,
}

impl Executor {
    /// Runs `make_plan` and commits it; a lost race runs it again unless `pin` pinned the version
    /// (`event_store::application::retry`). With a key, a repeat answers what the first did.
    pub async fn run(
        &self,
        key: Option<Claim>,
        body: &[u8],
        pin: Pin,
        make_plan: impl AsyncFn() -> Result<Plan, ApiError>,
    ) -> Result<HttpResponse, ApiError> {
        let claim = match key {
            None => None,
            Some(claim) => {
                let fingerprint = idempotency::fingerprint(&claim.method, &claim.path, body);
                match idempotency::begin(&self.pool, claim, &fingerprint, self.idempotency_ttl)
                    .await?
                {
                    Begin::Replay(stored) => return Ok(respond(&stored)),
                    Begin::Run(claim) => Some(claim),
                }
            }
        };
        let result = retry(pin, async || {
            let plan = make_plan().await.map_err(Failure::Refused)?;
            self.commit(plan, claim.as_ref()).await
        })
        .await
        .map_err(|f| failure(f, |e: ApiError| e));
        match (result, claim) {
            (Ok(reply), _) => Ok(reply.into_response()),
            // Transient refusals are not answers to store: a retry may well succeed.
            (Err(error), Some(claim))
                if error.kind().status().is_client_error() && !transient(error.kind()) =>
            {
                let problem = error.problem();
                let stored = StoredAnswer {
                    status: problem.status,
                    body: serde_json::to_value(&problem).ok(),
                    version: None,
                    position: None,
                    location: None,
                    problem: true,
                };
                let stored_ok = match self.pool.get().await {
                    Ok(client) => idempotency::complete(&client, &claim, &stored)
                        .await
                        .map_err(ApiError::from),
                    Err(e) => Err(e.into()),
                };
                if let Err(store_error) = stored_ok {
                    // The answer stands; only its record failed. Free the key at once rather
                    // than leaving it in flight until it is deemed abandoned.
                    tracing::warn!(error = ?store_error, "could not record an idempotent answer");
                    idempotency::release(&self.pool, &claim).await;
                }
                Err(error)
            }
            (Err(error), Some(claim)) => {
                idempotency::release(&self.pool, &claim).await;
                Err(error)
            }
            (Err(error), None) => Err(error),
        }
    }

    async fn commit(
        &self,
        plan: Plan,
        claim: Option<&Claim>,
    ) -> Result<WriteAnswer, Failure<ApiError, ApiError>> {
        let Plan {
            appends,
            side_writes,
            hooks,
            stream,
            current_version,
            current_position,
            unique_streams,
            reply,
            on_landed,
        } = plan;
        let writes = PlanWrites {
            writes: side_writes,
            hooks,
            claim: claim.cloned(),
            reply: reply.clone(),
        };
        let landed = application::commit(
            &self.store,
            appends,
            &stream,
            (current_version, current_position),
            Some(Box::new(writes)),
        )
        .await;
        match landed {
            Ok(landed) => {
                if let Some(hook) = on_landed.filter(|_| landed.appended) {
                    hook(&landed);
                }
                Ok(reply(landed.version, landed.position))
            }
            // A lost version check on a stream that reserves a unique value (an e-mail address)
            // is a fixed answer, not a race to retry.
            Err(StoreError::WrongExpectedVersion { stream_id, .. })
                if unique_streams.iter().any(|(s, _, _)| *s == stream_id) =>
            {
                let (_, kind, detail) = unique_streams
                    .iter()
                    .find(|(s, _, _)| *s == stream_id)
                    .cloned()
                    .unwrap_or((stream_id, ProblemType::Conflict, "conflict"));
                Err(Failure::Refused(ApiError::conflict(kind, detail)))
            }
            Err(e) => Err(e.into()),
        }
    }
}
