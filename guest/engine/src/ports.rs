//! The ports the engine is written against: small synchronous traits mirroring the host
//! interfaces of the department contract (`storage`, `events`, `jobs`, `log`), a clock, a
//! monotonic timer, and an HTTP probe (outbound `wasi:http`, where the host grants it).
//!
//! The component adapter implements them over the WIT imports; unit tests and native
//! benchmarks use the in-memory fakes of the `memory` module. Every trait is `Send + Sync` so
//! one engine can be shared by threads natively; on `wasm32` this costs nothing.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::Result;

/// Equality on one top-level field of a stored document, compared as text.
///
/// A string field matches its raw text (`"in_progress"` matches `in_progress`); numbers and
/// booleans match their JSON text; a missing or null field never matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMatch {
    /// Top-level field name, for example `status`.
    pub field: String,
    /// The text the field must equal.
    pub value: String,
}

impl FieldMatch {
    /// A match of `field` against `value`.
    pub fn new(field: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            value: value.into(),
        }
    }
}

/// Which objects of a kind to list or count. Lists come newest first (by UUIDv7 id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectFilter {
    /// Only objects whose `session_id` field equals this.
    pub session_id: Option<String>,
    /// Only objects whose `tags` array holds every one of these.
    pub tags: Vec<String>,
    /// Only objects whose fields equal these values (all must match).
    pub fields: Vec<FieldMatch>,
    /// At most this many objects.
    pub limit: Option<u32>,
    /// Skip this many matching objects first.
    pub offset: Option<u32>,
}

/// A stored object with its version, for compare-and-swap writes.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionedObject {
    /// The document.
    pub data: Value,
    /// Starts at 1 and grows by one on every write.
    pub version: u64,
    /// When the object was first written.
    pub created_at: DateTime<Utc>,
    /// When the object was last written.
    pub updated_at: DateTime<Utc>,
}

/// The object store of RUSVEL's StoragePort: JSON documents addressed by kind and id.
pub trait ObjectStore: Send + Sync {
    /// Inserts or replaces an object.
    fn put(&self, kind: &str, id: &str, data: &Value) -> Result<()>;

    /// Reads an object; `None` when it does not exist.
    fn get(&self, kind: &str, id: &str) -> Result<Option<Value>>;

    /// Deletes an object; deleting a missing object is not an error.
    fn delete(&self, kind: &str, id: &str) -> Result<()>;

    /// Lists the objects of `kind` matching `filter`, newest first.
    fn list(&self, kind: &str, filter: &ObjectFilter) -> Result<Vec<Value>>;

    /// Counts the objects of `kind` matching `filter`, ignoring its limit and offset.
    fn count(&self, kind: &str, filter: &ObjectFilter) -> Result<u64>;

    /// Reads an object together with its version.
    fn get_versioned(&self, kind: &str, id: &str) -> Result<Option<VersionedObject>>;

    /// Writes an object only if its stored version is `expected` (`None`: only if it does not
    /// exist yet). Returns the new version, or a `Conflict` error when another write came
    /// first.
    fn put_versioned(
        &self,
        kind: &str,
        id: &str,
        data: &Value,
        expected: Option<u64>,
    ) -> Result<u64>;
}

/// An event as the engine emits it; the host assigns id and time and stamps `source`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The session the event belongs to.
    pub session_id: Option<String>,
    /// The agent run that caused it, when known.
    pub run_id: Option<String>,
    /// Dotted kind starting with `infra.`, see [`crate::events`].
    pub kind: String,
    /// What a subscriber needs to act on the event.
    pub payload: Value,
    /// Extra context for the UI.
    pub metadata: Value,
}

/// RUSVEL's EventPort, as far as the engine needs it.
pub trait EventSink: Send + Sync {
    /// Persists and delivers an event; returns its id.
    fn emit(&self, event: NewEvent) -> Result<String>;
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Waiting to run.
    Queued,
    /// Being run by a worker.
    Running,
    /// Finished with a result.
    Succeeded,
    /// Failed after its retries.
    Failed,
    /// Cancelled before it finished.
    Cancelled,
    /// Parked until a person approves its result.
    AwaitingApproval,
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// The session the job belongs to.
    pub session_id: String,
    /// Dotted kind, for example `infra.health_scan`.
    pub kind: String,
    /// The job's input.
    pub payload: Value,
    /// How often a failed run is retried.
    pub max_retries: u32,
    /// Extra context.
    pub metadata: Value,
    /// Run no earlier than this; `None` means now.
    pub scheduled_at: Option<DateTime<Utc>>,
}

/// A stored job, as the host's queue reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The job id (UUIDv7).
    pub id: String,
    /// The session the job belongs to.
    pub session_id: String,
    /// Dotted kind.
    pub kind: String,
    /// The job's input.
    pub payload: Value,
    /// Where the job stands.
    pub status: JobStatus,
    /// Run no earlier than this.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// When the current or last run started.
    pub started_at: Option<DateTime<Utc>>,
    /// When the job finished.
    pub completed_at: Option<DateTime<Utc>>,
    /// Runs retried so far.
    pub retries: u32,
    /// Retries allowed.
    pub max_retries: u32,
    /// The last failure.
    pub error: Option<String>,
    /// The result of a finished job.
    pub result: Option<Value>,
    /// The cron expression of a recurring job.
    pub cron: Option<String>,
    /// When the job was queued.
    pub created_at: DateTime<Utc>,
    /// Extra context.
    pub metadata: Value,
}

/// Which jobs to list, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobFilter {
    /// Only jobs of this session.
    pub session_id: Option<String>,
    /// Only jobs of these kinds (empty: any).
    pub kinds: Vec<String>,
    /// Only jobs in these statuses (empty: any).
    pub statuses: Vec<JobStatus>,
    /// At most this many jobs.
    pub limit: Option<u32>,
}

/// RUSVEL's JobPort, as far as a department drives it (the worker side belongs to the host).
pub trait JobQueue: Send + Sync {
    /// Queues a job and returns its id.
    fn enqueue(&self, job: NewJob) -> Result<String>;

    /// Queues a recurring job following a cron expression; returns its id.
    fn schedule(&self, job: NewJob, cron: &str) -> Result<String>;

    /// Cancels a queued, scheduled or held job.
    fn cancel(&self, id: &str) -> Result<()>;

    /// Lists jobs.
    fn list(&self, filter: &JobFilter) -> Result<Vec<Job>>;
}

/// The source of the current time. Injected so tests control time.
pub trait Clock: Send + Sync {
    /// The current UTC time.
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A timer that only moves forward, for measuring how long a probe took. Injected so tests
/// control elapsed time exactly.
pub trait MonotonicClock: Send + Sync {
    /// Time since an arbitrary fixed origin; never decreases.
    fn elapsed(&self) -> Duration;
}

/// The system's monotonic clock (`std::time::Instant`; on `wasm32-wasip2` this is WASI's
/// monotonic clock).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemMonotonic;

impl MonotonicClock for SystemMonotonic {
    fn elapsed(&self) -> Duration {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed()
    }
}

/// The most response body a probe reads; the rest is not fetched.
pub const MAX_PROBE_BODY: usize = 64 * 1024;

/// One HTTP response as a probe saw it (redirects are not followed by the port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The `Location` header, when present (needed to follow redirects).
    pub location: Option<String>,
    /// The body, at most [`MAX_PROBE_BODY`] bytes.
    pub body: Vec<u8>,
    /// Whether the body was longer than what was read.
    pub body_truncated: bool,
}

/// Why a request got no response. JSON: `dns`, `connection_refused`, `tls`, `timeout`,
/// `denied`, `protocol`, `too_many_redirects`, `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCategory {
    /// The name did not resolve.
    Dns,
    /// Nothing accepted the connection.
    ConnectionRefused,
    /// The TLS handshake or certificate failed.
    Tls,
    /// No complete response within the probe timeout.
    Timeout,
    /// The host refused the destination (not in the plugin's outbound allowlist).
    Denied,
    /// The peer spoke broken HTTP, or closed the connection mid-response.
    Protocol,
    /// More than the allowed number of redirects.
    TooManyRedirects,
    /// Anything else.
    Other,
}

impl ErrorCategory {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dns => "dns",
            Self::ConnectionRefused => "connection_refused",
            Self::Tls => "tls",
            Self::Timeout => "timeout",
            Self::Denied => "denied",
            Self::Protocol => "protocol",
            Self::TooManyRedirects => "too_many_redirects",
            Self::Other => "other",
        }
    }
}

/// A request that got no HTTP response. It has no status code, by design.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TransportError {
    /// What kind of failure.
    pub category: ErrorCategory,
    /// What the transport said.
    pub message: String,
}

impl TransportError {
    /// A failure of `category`.
    pub fn new(category: ErrorCategory, message: impl Into<String>) -> Self {
        Self {
            category,
            message: message.into(),
        }
    }
}

/// Outbound HTTP for health probes: one `GET`, no redirects followed (the engine follows
/// them, so the rules are the same on every transport).
pub trait HttpProbe: Send + Sync {
    /// Sends `GET url` and waits at most `timeout` for the whole response.
    fn get(&self, url: &str, timeout: Duration) -> Result<HttpResponse, TransportError>;
}

/// A probe for an engine without outbound HTTP: every request is refused as `denied`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHttp;

impl HttpProbe for NoHttp {
    fn get(&self, url: &str, _timeout: Duration) -> Result<HttpResponse, TransportError> {
        Err(TransportError::new(
            ErrorCategory::Denied,
            format!("no outbound HTTP available for {url}"),
        ))
    }
}

/// How important a log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Very detailed tracing.
    Trace,
    /// Per-call detail.
    Debug,
    /// Lifecycle.
    Info,
    /// Something an operator should look at.
    Warn,
    /// Something an operator must act on.
    Error,
}

/// Structured logging into the host's log.
pub trait Logger: Send + Sync {
    /// Writes one line.
    fn log(&self, level: LogLevel, message: &str);
}

/// A logger that drops every line.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopLogger;

impl Logger for NoopLogger {
    fn log(&self, _level: LogLevel, _message: &str) {}
}

/// The ports handed to [`crate::InfraEngine`]. Cloning shares the same port instances.
#[derive(Clone)]
pub struct Ports {
    /// The object store.
    pub objects: Arc<dyn ObjectStore>,
    /// The event sink.
    pub events: Arc<dyn EventSink>,
    /// The job queue.
    pub jobs: Arc<dyn JobQueue>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The log.
    pub logger: Arc<dyn Logger>,
    /// The monotonic timer probes are measured with.
    pub monotonic: Arc<dyn MonotonicClock>,
    /// Outbound HTTP for health probes.
    pub http: Arc<dyn HttpProbe>,
}

impl Ports {
    /// Ports over the given store, sink and queue, with the wall clock, the system monotonic
    /// clock, no logging and no outbound HTTP.
    pub fn new(
        objects: Arc<dyn ObjectStore>,
        events: Arc<dyn EventSink>,
        jobs: Arc<dyn JobQueue>,
    ) -> Self {
        Self {
            objects,
            events,
            jobs,
            clock: Arc::new(SystemClock),
            logger: Arc::new(NoopLogger),
            monotonic: Arc::new(SystemMonotonic),
            http: Arc::new(NoHttp),
        }
    }

    /// The same ports with another monotonic timer.
    pub fn with_monotonic(mut self, monotonic: Arc<dyn MonotonicClock>) -> Self {
        self.monotonic = monotonic;
        self
    }

    /// The same ports with an HTTP probe.
    pub fn with_http(mut self, http: Arc<dyn HttpProbe>) -> Self {
        self.http = http;
        self
    }

    /// The same ports with another clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The same ports with another logger.
    pub fn with_logger(mut self, logger: Arc<dyn Logger>) -> Self {
        self.logger = logger;
        self
    }
}
