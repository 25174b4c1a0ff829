//! Port adapters that let the two sides of each comparison share one store.
//!
//! - [`native_sqlite_ports`]: the engine's synchronous port traits over the host's SQLite
//!   adapters, so the engine linked natively writes through exactly the code the component's
//!   imports reach.
//! - [`memory_host_ports`]: the host's async port traits over the engine's in-memory fakes,
//!   so the component and the native engine run on the same kind of in-memory store, doing
//!   the same work per write, and the difference between them is the component boundary
//!   (copies, JSON, instance entry).

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use infra_engine::error::EngineError;
use infra_engine::memory::MemoryObjectStore;
use infra_engine::ports as engine;
use infra_engine::ports::{EventSink, JobQueue, ObjectStore as EngineStore};
use rusvel_host::agent::ScriptedAgent;
use rusvel_host::ports::{self as host, EventPort, JobPort, ObjectStore as HostStore, PortError};
use rusvel_host::sqlite::{Database, SqliteEventPort, SqliteJobPort, SqliteObjectStore};
use serde_json::Value;
use tokio::sync::broadcast;

/// The department id the adapters stamp as event source and job owner.
const DEPARTMENT: &str = "infra";

/// Runs a future that never waits on I/O readiness (the SQLite adapters run their
/// statements inline) to completion on the calling thread.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::yield_now();
    }
}

// ---------------------------------------------------------------------------------------
// The engine's ports over the host's SQLite adapters.

/// Engine ports whose store, event sink and job queue are the host's SQLite adapters on `db`.
pub fn native_sqlite_ports(db: &Database) -> engine::Ports {
    engine::Ports::new(
        Arc::new(NativeStore(SqliteObjectStore::new(db.clone()))),
        Arc::new(NativeEvents(SqliteEventPort::new(db.clone()))),
        Arc::new(NativeJobs(SqliteJobPort::new(db.clone()))),
    )
}

struct NativeStore(SqliteObjectStore);

impl EngineStore for NativeStore {
    fn put(&self, kind: &str, id: &str, data: &Value) -> infra_engine::Result<()> {
        block_on(self.0.put(kind, id, data)).map_err(engine_error)
    }

    fn get(&self, kind: &str, id: &str) -> infra_engine::Result<Option<Value>> {
        block_on(self.0.get(kind, id)).map_err(engine_error)
    }

    fn delete(&self, kind: &str, id: &str) -> infra_engine::Result<()> {
        block_on(self.0.delete(kind, id)).map_err(engine_error)
    }

    fn list(&self, kind: &str, filter: &engine::ObjectFilter) -> infra_engine::Result<Vec<Value>> {
        block_on(self.0.list(kind, &host_filter(filter))).map_err(engine_error)
    }

    fn count(&self, kind: &str, filter: &engine::ObjectFilter) -> infra_engine::Result<u64> {
        block_on(self.0.count(kind, &host_filter(filter))).map_err(engine_error)
    }

    fn get_versioned(
        &self,
        kind: &str,
        id: &str,
    ) -> infra_engine::Result<Option<engine::VersionedObject>> {
        let object = block_on(self.0.get_versioned(kind, id)).map_err(engine_error)?;
        object
            .map(|object| {
                Ok(engine::VersionedObject {
                    data: object.data,
                    version: object.version,
                    created_at: parse_time(&object.created_at)?,
                    updated_at: parse_time(&object.updated_at)?,
                })
            })
            .transpose()
    }

    fn put_versioned(
        &self,
        kind: &str,
        id: &str,
        data: &Value,
        expected: Option<u64>,
    ) -> infra_engine::Result<u64> {
        block_on(self.0.put_versioned(kind, id, data, expected)).map_err(engine_error)
    }
}

struct NativeEvents(SqliteEventPort);

impl EventSink for NativeEvents {
    fn emit(&self, event: engine::NewEvent) -> infra_engine::Result<String> {
        let event = host::NewEvent {
            session_id: event.session_id,
            run_id: event.run_id,
            source: DEPARTMENT.into(),
            kind: event.kind,
            payload: event.payload,
            metadata: event.metadata,
        };
        block_on(self.0.emit(event)).map_err(engine_error)
    }
}

struct NativeJobs(SqliteJobPort);

impl JobQueue for NativeJobs {
    fn enqueue(&self, job: engine::NewJob) -> infra_engine::Result<String> {
        block_on(self.0.enqueue(host_job(job))).map_err(engine_error)
    }

    fn schedule(&self, job: engine::NewJob, cron: &str) -> infra_engine::Result<String> {
        block_on(self.0.schedule(host_job(job), cron)).map_err(engine_error)
    }

    fn cancel(&self, id: &str) -> infra_engine::Result<()> {
        block_on(self.0.cancel(id)).map_err(engine_error)
    }

    fn list(&self, filter: &engine::JobFilter) -> infra_engine::Result<Vec<engine::Job>> {
        let filter = host::JobFilter {
            session_id: filter.session_id.clone(),
            kinds: filter.kinds.clone(),
            statuses: filter.statuses.iter().map(|s| host_status(*s)).collect(),
            owner: Some(DEPARTMENT.into()),
            limit: filter.limit,
        };
        let jobs = block_on(self.0.list(&filter)).map_err(engine_error)?;
        jobs.into_iter().map(engine_job).collect()
    }
}

fn host_filter(filter: &engine::ObjectFilter) -> host::ObjectFilter {
    host::ObjectFilter {
        session_id: filter.session_id.clone(),
        tags: filter.tags.clone(),
        fields: filter
            .fields
            .iter()
            .map(|field| host::FieldMatch {
                field: field.field.clone(),
                value: field.value.clone(),
            })
            .collect(),
        limit: filter.limit,
        offset: filter.offset,
    }
}

fn host_job(job: engine::NewJob) -> host::NewJob {
    host::NewJob {
        session_id: job.session_id,
        kind: job.kind,
        payload: job.payload,
        max_retries: job.max_retries,
        metadata: job.metadata,
        scheduled_at: job.scheduled_at.map(|time| time.to_rfc3339()),
        owner: DEPARTMENT.into(),
    }
}

fn host_status(status: engine::JobStatus) -> host::JobStatus {
    match status {
        engine::JobStatus::Queued => host::JobStatus::Queued,
        engine::JobStatus::Running => host::JobStatus::Running,
        engine::JobStatus::Succeeded => host::JobStatus::Succeeded,
        engine::JobStatus::Failed => host::JobStatus::Failed,
        engine::JobStatus::Cancelled => host::JobStatus::Cancelled,
        engine::JobStatus::AwaitingApproval => host::JobStatus::AwaitingApproval,
    }
}

fn engine_job(job: host::Job) -> infra_engine::Result<engine::Job> {
    let time = |text: Option<String>| text.as_deref().map(parse_time).transpose();
    Ok(engine::Job {
        status: match job.status {
            host::JobStatus::Queued => engine::JobStatus::Queued,
            host::JobStatus::Running => engine::JobStatus::Running,
            host::JobStatus::Succeeded => engine::JobStatus::Succeeded,
            host::JobStatus::Failed => engine::JobStatus::Failed,
            host::JobStatus::Cancelled => engine::JobStatus::Cancelled,
            host::JobStatus::AwaitingApproval => engine::JobStatus::AwaitingApproval,
        },
        scheduled_at: time(job.scheduled_at)?,
        started_at: time(job.started_at)?,
        completed_at: time(job.completed_at)?,
        created_at: parse_time(&job.created_at)?,
        id: job.id,
        session_id: job.session_id,
        kind: job.kind,
        payload: job.payload,
        retries: job.retries,
        max_retries: job.max_retries,
        error: job.error,
        result: job.result,
        cron: job.cron,
        metadata: job.metadata,
    })
}

fn parse_time(text: &str) -> infra_engine::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|error| EngineError::Serialization(format!("time `{text}`: {error}")))
}

fn engine_error(error: PortError) -> EngineError {
    match error {
        PortError::NotFound { kind, id } => EngineError::NotFound { kind, id },
        PortError::AlreadyExists { kind, id } => EngineError::AlreadyExists { kind, id },
        PortError::Validation(text) => EngineError::Validation(text),
        PortError::InvalidState { from, to } => EngineError::InvalidState { from, to },
        PortError::Unauthorized(text) => EngineError::Unauthorized(text),
        PortError::Conflict { kind, id } => EngineError::Conflict { kind, id },
        PortError::Llm(text) => EngineError::Llm(text),
        PortError::Agent(text) => EngineError::Agent(text),
        PortError::Tool(text) => EngineError::Tool(text),
        PortError::BudgetExceeded { spent, limit } => EngineError::BudgetExceeded { spent, limit },
        PortError::Storage(text) => EngineError::Storage(text),
        PortError::Serialization(text) => EngineError::Serialization(text),
        PortError::Config(text) => EngineError::Config(text),
        PortError::LimitExceeded(text) => EngineError::LimitExceeded(text),
        PortError::Internal(text) => EngineError::Internal(text),
    }
}

// ---------------------------------------------------------------------------------------
// The host's ports over the engine's in-memory fakes.

/// Host ports whose object store is the engine's in-memory fake `objects` and whose event log
/// is a list like the engine's in-memory sink. Jobs go to an in-memory SQLite queue (the
/// benchmarked tools enqueue none); the agent is the unconfigured scripted one.
pub fn memory_host_ports(objects: Arc<MemoryObjectStore>) -> anyhow::Result<host::Ports> {
    let jobs = SqliteJobPort::new(Database::open_in_memory()?);
    Ok(host::Ports {
        objects: Arc::new(MemoryHostStore(objects)),
        events: Arc::new(MemoryHostEvents {
            stored: Mutex::default(),
            live: broadcast::channel(64).0,
        }),
        jobs: Arc::new(jobs),
        agent: Arc::new(ScriptedAgent::unconfigured()),
    })
}

struct MemoryHostStore(Arc<MemoryObjectStore>);

#[async_trait]
impl HostStore for MemoryHostStore {
    async fn put(&self, kind: &str, id: &str, data: &Value) -> host::PortResult<()> {
        self.0.put(kind, id, data).map_err(port_error)
    }

    async fn get(&self, kind: &str, id: &str) -> host::PortResult<Option<Value>> {
        self.0.get(kind, id).map_err(port_error)
    }

    async fn delete(&self, kind: &str, id: &str) -> host::PortResult<()> {
        self.0.delete(kind, id).map_err(port_error)
    }

    async fn list(&self, kind: &str, filter: &host::ObjectFilter) -> host::PortResult<Vec<Value>> {
        EngineStore::list(&*self.0, kind, &engine_filter(filter)).map_err(port_error)
    }

    async fn count(&self, kind: &str, filter: &host::ObjectFilter) -> host::PortResult<u64> {
        self.0
            .count(kind, &engine_filter(filter))
            .map_err(port_error)
    }

    async fn get_versioned(
        &self,
        kind: &str,
        id: &str,
    ) -> host::PortResult<Option<host::VersionedObject>> {
        let object = self.0.get_versioned(kind, id).map_err(port_error)?;
        Ok(object.map(|object| host::VersionedObject {
            data: object.data,
            version: object.version,
            created_at: object.created_at.to_rfc3339(),
            updated_at: object.updated_at.to_rfc3339(),
        }))
    }

    async fn put_versioned(
        &self,
        kind: &str,
        id: &str,
        data: &Value,
        expected: Option<u64>,
    ) -> host::PortResult<u64> {
        self.0
            .put_versioned(kind, id, data, expected)
            .map_err(port_error)
    }

    async fn index_field(&self, _kind: &str, _field: &str) -> host::PortResult<()> {
        // The in-memory store filters by walking its map; there is nothing to index.
        Ok(())
    }

    async fn count_by_kind(&self, prefix: &str) -> host::PortResult<Vec<(String, u64)>> {
        let kinds = ["infra_deploy", "infra_healthcheck", "infra_incident"];
        Ok(kinds
            .iter()
            .filter(|kind| kind.starts_with(prefix))
            .map(|kind| (kind.to_string(), self.0.len(kind) as u64))
            .collect())
    }
}

/// The event log: a list, as the engine's in-memory sink is, so an emit costs the same on
/// both sides of the comparison (mint an id, keep the event once). The host side also stamps
/// the creation time its event type carries, and clones an event for the live bus only when
/// someone subscribed.
struct MemoryHostEvents {
    stored: Mutex<Vec<host::Event>>,
    live: broadcast::Sender<host::Event>,
}

impl MemoryHostEvents {
    fn stored(&self) -> std::sync::MutexGuard<'_, Vec<host::Event>> {
        self.stored
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl EventPort for MemoryHostEvents {
    async fn emit(&self, event: host::NewEvent) -> host::PortResult<String> {
        let id = uuid::Uuid::now_v7().to_string();
        let stored = host::Event {
            id: id.clone(),
            session_id: event.session_id,
            run_id: event.run_id,
            source: event.source,
            kind: event.kind,
            payload: event.payload,
            created_at: Utc::now().to_rfc3339(),
            metadata: event.metadata,
        };
        if self.live.receiver_count() > 0 {
            let _ = self.live.send(stored.clone());
        }
        self.stored().push(stored);
        Ok(id)
    }

    async fn get(&self, id: &str) -> host::PortResult<Option<host::Event>> {
        Ok(self.stored().iter().find(|event| event.id == id).cloned())
    }

    async fn query(&self, filter: &host::EventFilter) -> host::PortResult<Vec<host::Event>> {
        let mut events: Vec<host::Event> = self
            .stored()
            .iter()
            .filter(|event| {
                filter
                    .session_id
                    .as_ref()
                    .is_none_or(|s| event.session_id.as_ref() == Some(s))
                    && filter.kind.as_ref().is_none_or(|kind| &event.kind == kind)
                    && filter
                        .source
                        .as_ref()
                        .is_none_or(|source| &event.source == source)
            })
            .cloned()
            .collect();
        events.sort_by(|a, b| a.id.cmp(&b.id));
        if let Some(limit) = filter.limit {
            let skip = events.len().saturating_sub(limit as usize);
            events.drain(..skip);
        }
        Ok(events)
    }

    fn subscribe(&self) -> broadcast::Receiver<host::Event> {
        self.live.subscribe()
    }
}

fn engine_filter(filter: &host::ObjectFilter) -> engine::ObjectFilter {
    engine::ObjectFilter {
        session_id: filter.session_id.clone(),
        tags: filter.tags.clone(),
        fields: filter
            .fields
            .iter()
            .map(|field| engine::FieldMatch::new(field.field.clone(), field.value.clone()))
            .collect(),
        limit: filter.limit,
        offset: filter.offset,
    }
}

fn port_error(error: EngineError) -> PortError {
    match error {
        EngineError::NotFound { kind, id } => PortError::NotFound { kind, id },
        EngineError::AlreadyExists { kind, id } => PortError::AlreadyExists { kind, id },
        EngineError::Validation(text) => PortError::Validation(text),
        EngineError::InvalidState { from, to } => PortError::InvalidState { from, to },
        EngineError::Unauthorized(text) => PortError::Unauthorized(text),
        EngineError::Conflict { kind, id } => PortError::Conflict { kind, id },
        EngineError::Llm(text) => PortError::Llm(text),
        EngineError::Agent(text) => PortError::Agent(text),
        EngineError::Tool(text) => PortError::Tool(text),
        EngineError::BudgetExceeded { spent, limit } => PortError::BudgetExceeded { spent, limit },
        EngineError::Storage(text) => PortError::Storage(text),
        EngineError::Serialization(text) => PortError::Serialization(text),
        EngineError::Config(text) => PortError::Config(text),
        EngineError::LimitExceeded(text) => PortError::LimitExceeded(text),
        EngineError::Internal(text) => PortError::Internal(text),
    }
}
