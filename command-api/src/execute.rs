//! The unit of work of every write: plan (load → decide) → one transaction that appends the events,
//! runs the command-side writes and stores the idempotent answer → notify → answer.

use std::future::Future;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, ETAG, LOCATION};
use actix_web::{HttpRequest, HttpResponse};
use deadpool_postgres::Pool;
use event_store::{EventStore, PgEventStore, Position, StoreError, StreamAppend};
use runtime::{ApiError, ProblemType};
use serde_json::Value;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::idempotency::{self, Begin, Claim, StoredResponse};

pub const POSITION_HEADER: &str = "Backforge-Position";

/// How many times a write without `If-Match` is re-decided after losing a race to another writer.
const CONFLICT_RETRIES: usize = 3;

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

/// The answer to an `Idempotency-Key` on `/auth/*`: storing the answer would store tokens.
pub fn refuse_idempotency_key(req: &HttpRequest) -> Result<(), ApiError> {
    if idempotency::key_of(req)?.is_some() {
        return Err(ApiError::invalid_field(
            "",
            "Idempotency-Key is not accepted on /auth routes (the answer would store tokens)",
        ));
    }
    Ok(())
}

/// The answer to a successful write.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Option<Value>,
    pub location: Option<String>,
    pub version: u64,
    pub position: Position,
}

impl Reply {
    fn stored(&self) -> StoredResponse {
        StoredResponse {
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
pub fn respond(stored: &StoredResponse) -> HttpResponse {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = HttpResponse::build(status);
    if let Some(version) = stored.version {
        response.insert_header((ETAG, format!("\"{version}\"")));
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

type ReplyFn = Box<dyn FnOnce(u64, Position) -> Reply>;

/// What a command decided: events to append, side writes, and how to answer.
pub struct Plan {
    pub appends: Vec<StreamAppend>,
    pub side_writes: Vec<SideWrite>,
    /// The stream whose version the answer reports (ETag, `version`).
    pub stream: String,
    /// The stream's version and last position as loaded, reported when nothing is appended.
    pub current_version: u64,
    pub current_position: Position,
    /// A conflict on one of these streams is a fixed answer (e-mail taken), not a race to retry.
    pub unique_streams: Vec<(String, ProblemType, &'static str)>,
    pub reply: ReplyFn,
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
            stream: stream.into(),
            current_version,
            current_position,
            unique_streams: Vec::new(),
            reply: Box::new(|version, position| Reply {
                status: StatusCode::NO_CONTENT,
                body: None,
                location: None,
                version,
                position,
            }),
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

    pub fn reply(mut self, reply: impl FnOnce(u64, Position) -> Reply + 'static) -> Self {
        self.reply = Box::new(reply);
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

enum CommitError {
    Raced,
    Api(ApiError),
}

impl From<ApiError> for CommitError {
    fn from(e: ApiError) -> Self {
        CommitError::Api(e)
    }
}

impl From<tokio_postgres::Error> for CommitError {
    fn from(e: tokio_postgres::Error) -> Self {
        CommitError::Api(e.into())
    }
}

/// A lost version check is a race to retry, or a fixed answer on a stream that reserves a unique
/// value (an e-mail address); anything else is the store's own error.
fn conflict_or(
    error: StoreError,
    unique_streams: &[(String, ProblemType, &'static str)],
) -> CommitError {
    match error {
        StoreError::WrongExpectedVersion { stream_id, .. } => {
            match unique_streams.iter().find(|(s, _, _)| *s == stream_id) {
                Some((_, kind, detail)) => CommitError::Api(ApiError::conflict(*kind, *detail)),
                None => CommitError::Raced,
            }
        }
        other => CommitError::Api(other.into()),
    }
}

fn transient(kind: ProblemType) -> bool {
    matches!(
        kind,
        ProblemType::ConcurrentModification
            | ProblemType::IdempotencyKeyInFlight
            | ProblemType::RateLimited
    )
}

/// Runs plans in transactions, with idempotency keys.
#[derive(Clone)]
pub struct Executor {
    pub store: PgEventStore,
    pub pool: Pool,
    pub idempotency_ttl: std::time::Duration,
}

/// How a request takes part in idempotency.
pub enum Idempotency<'a> {
    /// Routes that refuse keys (`/auth/*`: the answer would store tokens).
    Refused,
    /// The caller and the raw body the key is checked against.
    Caller { user_id: Uuid, body: &'a [u8] },
}

impl Executor {
    /// Runs `make_plan` (re-run after a lost race unless `if_match` pinned the version) and commits it.
    pub async fn run<F, Fut>(
        &self,
        req: &HttpRequest,
        idempotency: Idempotency<'_>,
        if_match: bool,
        make_plan: F,
    ) -> Result<HttpResponse, ApiError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Plan, ApiError>>,
    {
        let key = idempotency::key_of(req)?;
        let claim = match (key, idempotency) {
            (None, _) => None,
            (Some(_), Idempotency::Refused) => {
                refuse_idempotency_key(req)?;
                None
            }
            (Some(key), Idempotency::Caller { user_id, body }) => {
                let claim = Claim {
                    user_id,
                    method: req.method().as_str().to_owned(),
                    path: req.path().to_owned(),
                    key,
                };
                let fingerprint = idempotency::fingerprint(&claim.method, &claim.path, body);
                match idempotency::begin(&self.pool, claim, &fingerprint, self.idempotency_ttl)
                    .await?
                {
                    Begin::Replay(stored) => return Ok(respond(&stored)),
                    Begin::Run(claim) => Some(claim),
                }
            }
        };
        let result = self
            .commit_with_retries(&make_plan, if_match, claim.as_ref())
            .await;
        match (result, claim) {
            (Ok(reply), _) => Ok(reply.into_response()),
            // Transient refusals are not answers to store: a retry may well succeed.
            (Err(error), Some(claim))
                if error.kind().status().is_client_error() && !transient(error.kind()) =>
            {
                let problem = error.problem();
                let stored = StoredResponse {
                    status: problem.status,
                    body: serde_json::to_value(&problem).ok(),
                    version: None,
                    position: None,
                    location: None,
                    problem: true,
                };
                let stored_ok = match self.pool.get().await {
                    Ok(client) => idempotency::complete(&client, &claim, &stored).await,
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

    async fn commit_with_retries<F, Fut>(
        &self,
        make_plan: &F,
        if_match: bool,
        claim: Option<&Claim>,
    ) -> Result<Reply, ApiError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Plan, ApiError>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let plan = make_plan().await?;
            match self.commit(plan, claim).await {
                Ok(reply) => return Ok(reply),
                Err(CommitError::Api(e)) => return Err(e),
                Err(CommitError::Raced) if if_match => {
                    return Err(ApiError::new(
                        ProblemType::PreconditionFailed,
                        "the resource changed since the version named in If-Match",
                    ));
                }
                Err(CommitError::Raced) if attempt < CONFLICT_RETRIES => continue,
                Err(CommitError::Raced) => {
                    return Err(ApiError::conflict(
                        ProblemType::ConcurrentModification,
                        "the resource is being changed by other requests; retry",
                    ));
                }
            }
        }
    }

    async fn commit(&self, plan: Plan, claim: Option<&Claim>) -> Result<Reply, CommitError> {
        let Plan {
            appends,
            side_writes,
            stream,
            current_version,
            current_position,
            unique_streams,
            reply,
        } = plan;
        if appends.len() == 1 && side_writes.is_empty() && claim.is_none() {
            // The common write: one stream, nothing else to commit with it. The store's single
            // statement in autocommit is atomic on its own; a transaction around it would only add
            // four round trips (BEGIN, SAVEPOINT, RELEASE, COMMIT).
            let outcome = match self.store.append(appends).await {
                Ok(outcome) => outcome,
                Err(error) => return Err(conflict_or(error, &unique_streams)),
            };
            let version = outcome.version_of(&stream).unwrap_or(current_version);
            return Ok(reply(version, outcome.position));
        }
        let mut client = self.pool.get().await.map_err(ApiError::from)?;
        if appends.is_empty() && side_writes.is_empty() {
            let reply = reply(current_version, current_position);
            if let Some(claim) = claim {
                idempotency::complete(&client, claim, &reply.stored()).await?;
            }
            return Ok(reply);
        }
        let tx = client.transaction().await?;
        let outcome = if appends.is_empty() {
            None
        } else {
            match self.store.append_in_tx(&tx, &appends).await {
                Ok(outcome) => Some(outcome),
                Err(error) => return Err(conflict_or(error, &unique_streams)),
            }
        };
        for write in &side_writes {
            write.run(&tx).await?;
        }
        let (version, position) = match &outcome {
            Some(o) => (o.version_of(&stream).unwrap_or(current_version), o.position),
            None => (current_version, current_position),
        };
        let reply = reply(version, position);
        if let Some(claim) = claim {
            idempotency::complete(&tx, claim, &reply.stored()).await?;
        }
        tx.commit().await?;
        if outcome.is_some() {
            self.store.committed();
        }
        Ok(reply)
    }
}
