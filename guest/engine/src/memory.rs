//! In-memory implementations of the ports, for unit tests and native benchmarks (feature
//! `memory-ports`). They follow the host contract (newest-first lists, text field matches,
//! versioned writes) and add hooks to inject races and failures. Not for production use:
//! nothing here is durable.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::error::{EngineError, Result};
use crate::ports::{
    Clock, ErrorCategory, EventSink, HttpProbe, HttpResponse, Job, JobFilter, JobQueue, JobStatus,
    LogLevel, Logger, MonotonicClock, NewEvent, NewJob, ObjectFilter, ObjectStore, Ports,
    TransportError, VersionedObject,
};

/// A hook run once, before the next version-checked update of an existing object.
pub type WriteHook = Box<dyn FnOnce() + Send>;

/// Locks a mutex, recovering the data if a panicking test poisoned it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An object store in a map, keyed by kind and id.
#[derive(Default)]
pub struct MemoryObjectStore {
    objects: Mutex<BTreeMap<(String, String), VersionedObject>>,
    before_update: Mutex<Vec<WriteHook>>,
    fail_next_create: Mutex<Option<EngineError>>,
    writes: Mutex<u64>,
}

impl MemoryObjectStore {
    /// Runs `hook` right before the next version-checked update of an existing object, as if
    /// another writer got there first (the update then sees a `conflict`). Hooks queue up:
    /// each update runs at most one, oldest first.
    pub fn before_next_update(&self, hook: impl FnOnce() + Send + 'static) {
        lock(&self.before_update).push(Box::new(hook));
    }

    /// Makes the next creation (`put_versioned` with no expected version) fail with `error`.
    pub fn fail_next_create(&self, error: EngineError) {
        *lock(&self.fail_next_create) = Some(error);
    }

    /// How many writes (puts and deletes) succeeded so far.
    pub fn writes(&self) -> u64 {
        *lock(&self.writes)
    }

    /// How many objects of `kind` are stored.
    pub fn len(&self, kind: &str) -> usize {
        lock(&self.objects)
            .keys()
            .filter(|(k, _)| k == kind)
            .count()
    }

    /// Whether no object of `kind` is stored.
    pub fn is_empty(&self, kind: &str) -> bool {
        self.len(kind) == 0
    }

    fn matching(&self, kind: &str, filter: &ObjectFilter) -> Vec<Value> {
        let objects = lock(&self.objects);
        let mut found: Vec<(&String, &Value)> = objects
            .iter()
            .filter(|((k, _), stored)| k == kind && matches(&stored.data, filter))
            .map(|((_, id), stored)| (id, &stored.data))
            .collect();
        // Newest first: ids are UUIDv7, so the greatest id is the newest object.
        found.sort_by(|a, b| b.0.cmp(a.0));
        found.into_iter().map(|(_, data)| data.clone()).collect()
    }

    fn count_write(&self) {
        *lock(&self.writes) += 1;
    }
}

/// Whether `data` passes `filter` (limit and offset aside).
fn matches(data: &Value, filter: &ObjectFilter) -> bool {
    let text = |field: &str| match data.get(field) {
        Some(Value::String(text)) => Some(text.clone()),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    let session_ok = filter
        .session_id
        .as_ref()
        .is_none_or(|s| text("session_id").as_ref() == Some(s));
    let tags = data.get("tags").and_then(Value::as_array);
    let tags_ok = filter
        .tags
        .iter()
        .all(|tag| tags.is_some_and(|tags| tags.iter().any(|t| t.as_str() == Some(tag.as_str()))));
    let fields_ok = filter
        .fields
        .iter()
        .all(|m| text(&m.field).as_deref() == Some(m.value.as_str()));
    session_ok && tags_ok && fields_ok
}

impl ObjectStore for MemoryObjectStore {
    fn put(&self, kind: &str, id: &str, data: &Value) -> Result<()> {
        let now = Utc::now();
        let mut objects = lock(&self.objects);
        let key = (kind.to_string(), id.to_string());
        let (version, created_at) = objects
            .get(&key)
            .map_or((1, now), |old| (old.version + 1, old.created_at));
        let stored = VersionedObject {
            data: data.clone(),
            version,
            created_at,
            updated_at: now,
        };
        objects.insert(key, stored);
        drop(objects);
        self.count_write();
        Ok(())
    }

    fn get(&self, kind: &str, id: &str) -> Result<Option<Value>> {
        Ok(self.get_versioned(kind, id)?.map(|stored| stored.data))
    }

    fn delete(&self, kind: &str, id: &str) -> Result<()> {
        lock(&self.objects).remove(&(kind.to_string(), id.to_string()));
        self.count_write();
        Ok(())
    }

    fn list(&self, kind: &str, filter: &ObjectFilter) -> Result<Vec<Value>> {
        let offset = filter.offset.unwrap_or(0) as usize;
        let limit = filter.limit.map_or(usize::MAX, |limit| limit as usize);
        Ok(self
            .matching(kind, filter)
            .into_iter()
            .skip(offset)
            .take(limit)
            .collect())
    }

    fn count(&self, kind: &str, filter: &ObjectFilter) -> Result<u64> {
        Ok(self.matching(kind, filter).len() as u64)
    }

    fn get_versioned(&self, kind: &str, id: &str) -> Result<Option<VersionedObject>> {
        Ok(lock(&self.objects)
            .get(&(kind.to_string(), id.to_string()))
            .cloned())
    }

    fn put_versioned(
        &self,
        kind: &str,
        id: &str,
        data: &Value,
        expected: Option<u64>,
    ) -> Result<u64> {
        if expected.is_none() {
            if let Some(error) = lock(&self.fail_next_create).take() {
                return Err(error);
            }
        } else {
            let hook = {
                let mut hooks = lock(&self.before_update);
                (!hooks.is_empty()).then(|| hooks.remove(0))
            };
            if let Some(hook) = hook {
                hook();
            }
        }
        let now = Utc::now();
        let mut objects = lock(&self.objects);
        let key = (kind.to_string(), id.to_string());
        let current = objects.get(&key).map(|stored| stored.version);
        if current != expected {
            return Err(EngineError::Conflict {
                kind: kind.to_string(),
                id: id.to_string(),
            });
        }
        let created_at = objects.get(&key).map_or(now, |old| old.created_at);
        let version = current.unwrap_or(0) + 1;
        let stored = VersionedObject {
            data: data.clone(),
            version,
            created_at,
            updated_at: now,
        };
        objects.insert(key, stored);
        drop(objects);
        self.count_write();
        Ok(version)
    }
}

/// An event sink that keeps what was emitted.
#[derive(Default)]
pub struct MemoryEventSink {
    emitted: Mutex<Vec<NewEvent>>,
    failing: Mutex<bool>,
}

impl MemoryEventSink {
    /// Everything emitted so far, oldest first.
    pub fn emitted(&self) -> Vec<NewEvent> {
        lock(&self.emitted).clone()
    }

    /// The kinds emitted so far, oldest first.
    pub fn kinds(&self) -> Vec<String> {
        lock(&self.emitted)
            .iter()
            .map(|event| event.kind.clone())
            .collect()
    }

    /// Forgets what was emitted.
    pub fn clear(&self) {
        lock(&self.emitted).clear();
    }

    /// Makes every later emit fail (or succeed again).
    pub fn set_failing(&self, failing: bool) {
        *lock(&self.failing) = failing;
    }
}

impl EventSink for MemoryEventSink {
    fn emit(&self, event: NewEvent) -> Result<String> {
        if *lock(&self.failing) {
            return Err(EngineError::Storage("event store unavailable".into()));
        }
        lock(&self.emitted).push(event);
        Ok(Uuid::now_v7().to_string())
    }
}

/// A job queue in a list; nothing runs the jobs.
#[derive(Default)]
pub struct MemoryJobQueue {
    jobs: Mutex<Vec<Job>>,
}

impl MemoryJobQueue {
    fn add(&self, job: NewJob, cron: Option<&str>) -> String {
        let id = Uuid::now_v7().to_string();
        lock(&self.jobs).push(Job {
            id: id.clone(),
            session_id: job.session_id,
            kind: job.kind,
            payload: job.payload,
            status: JobStatus::Queued,
            scheduled_at: job.scheduled_at,
            started_at: None,
            completed_at: None,
            retries: 0,
            max_retries: job.max_retries,
            error: None,
            result: None,
            cron: cron.map(str::to_string),
            created_at: Utc::now(),
            metadata: job.metadata,
        });
        id
    }
}

impl JobQueue for MemoryJobQueue {
    fn enqueue(&self, job: NewJob) -> Result<String> {
        Ok(self.add(job, None))
    }

    fn schedule(&self, job: NewJob, cron: &str) -> Result<String> {
        Ok(self.add(job, Some(cron)))
    }

    fn cancel(&self, id: &str) -> Result<()> {
        let mut jobs = lock(&self.jobs);
        let job = jobs
            .iter_mut()
            .find(|job| job.id == id)
            .ok_or_else(|| EngineError::not_found("job", id))?;
        job.status = JobStatus::Cancelled;
        Ok(())
    }

    fn list(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let jobs = lock(&self.jobs);
        let limit = filter.limit.map_or(usize::MAX, |limit| limit as usize);
        Ok(jobs
            .iter()
            .rev()
            .filter(|job| {
                filter
                    .session_id
                    .as_ref()
                    .is_none_or(|s| &job.session_id == s)
            })
            .filter(|job| filter.kinds.is_empty() || filter.kinds.contains(&job.kind))
            .filter(|job| filter.statuses.is_empty() || filter.statuses.contains(&job.status))
            .take(limit)
            .cloned()
            .collect())
    }
}

/// A clock that moves only when told to.
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self {
            now: Mutex::new(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()),
        }
    }
}

impl ManualClock {
    /// Sets the time.
    pub fn set(&self, now: DateTime<Utc>) {
        *lock(&self.now) = now;
    }

    /// Moves the time by `by` (which may be negative, to simulate a clock step back).
    pub fn advance(&self, by: Duration) {
        *lock(&self.now) += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *lock(&self.now)
    }
}

/// A logger that keeps its lines.
#[derive(Default)]
pub struct MemoryLogger {
    lines: Mutex<Vec<(LogLevel, String)>>,
}

impl MemoryLogger {
    /// Every line logged so far.
    pub fn lines(&self) -> Vec<(LogLevel, String)> {
        lock(&self.lines).clone()
    }
}

impl Logger for MemoryLogger {
    fn log(&self, level: LogLevel, message: &str) {
        lock(&self.lines).push((level, message.to_string()));
    }
}

/// A monotonic timer that moves only when told to (or when a [`ScriptedHttp`] answers).
#[derive(Default)]
pub struct ManualMonotonic {
    now: Mutex<std::time::Duration>,
}

impl ManualMonotonic {
    /// Moves the timer forward by `by`.
    pub fn advance(&self, by: std::time::Duration) {
        *lock(&self.now) += by;
    }
}

impl MonotonicClock for ManualMonotonic {
    fn elapsed(&self) -> std::time::Duration {
        *lock(&self.now)
    }
}

/// One scripted answer of [`ScriptedHttp`]: a result, and how long it takes.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpReply {
    /// The response, or the transport failure.
    pub result: Result<HttpResponse, TransportError>,
    /// How long the answer takes, in milliseconds (the monotonic timer moves by this).
    pub latency_ms: u64,
}

impl HttpReply {
    /// A response with `status` and `body`, taking `latency_ms`.
    pub fn status(status: u16, body: &str, latency_ms: u64) -> Self {
        Self {
            result: Ok(HttpResponse {
                status,
                location: None,
                body: body.as_bytes().to_vec(),
                body_truncated: false,
            }),
            latency_ms,
        }
    }

    /// A `302` to `location`, taking `latency_ms`.
    pub fn redirect(location: &str, latency_ms: u64) -> Self {
        let mut reply = Self::status(302, "", latency_ms);
        if let Ok(response) = &mut reply.result {
            response.location = Some(location.to_string());
        }
        reply
    }

    /// A transport failure of `category`, taking `latency_ms`.
    pub fn error(category: ErrorCategory, message: &str, latency_ms: u64) -> Self {
        Self {
            result: Err(TransportError::new(category, message)),
            latency_ms,
        }
    }
}

/// An HTTP probe answering from a script, per URL: queued one-off replies first, then the
/// URL's standing reply; unknown URLs fail as `connection_refused`. A reply slower than the
/// request's timeout becomes a `timeout` failure after exactly the timeout, as a real
/// transport would. Every request is recorded.
#[derive(Default)]
pub struct ScriptedHttp {
    monotonic: Arc<ManualMonotonic>,
    standing: Mutex<HashMap<String, HttpReply>>,
    queued: Mutex<HashMap<String, VecDeque<HttpReply>>>,
    requests: Mutex<Vec<(String, std::time::Duration)>>,
}

impl ScriptedHttp {
    /// A probe moving `monotonic` by each reply's latency.
    pub fn new(monotonic: Arc<ManualMonotonic>) -> Self {
        Self {
            monotonic,
            ..Self::default()
        }
    }

    /// Answers every request for `url` with `reply` (after any queued replies).
    pub fn set(&self, url: &str, reply: HttpReply) {
        lock(&self.standing).insert(url.to_string(), reply);
    }

    /// Answers the next request for `url` with `reply`.
    pub fn push(&self, url: &str, reply: HttpReply) {
        lock(&self.queued)
            .entry(url.to_string())
            .or_default()
            .push_back(reply);
    }

    /// Every request so far: URL and timeout.
    pub fn requests(&self) -> Vec<(String, std::time::Duration)> {
        lock(&self.requests).clone()
    }
}

impl HttpProbe for ScriptedHttp {
    fn get(&self, url: &str, timeout: std::time::Duration) -> Result<HttpResponse, TransportError> {
        lock(&self.requests).push((url.to_string(), timeout));
        let queued = lock(&self.queued)
            .get_mut(url)
            .and_then(VecDeque::pop_front);
        let reply = queued.or_else(|| lock(&self.standing).get(url).cloned());
        let Some(reply) = reply else {
            return Err(TransportError::new(
                ErrorCategory::ConnectionRefused,
                format!("nothing listens at {url}"),
            ));
        };
        let latency = std::time::Duration::from_millis(reply.latency_ms);
        if latency > timeout {
            self.monotonic.advance(timeout);
            return Err(TransportError::new(
                ErrorCategory::Timeout,
                "no response within the timeout",
            ));
        }
        self.monotonic.advance(latency);
        reply.result
    }
}

/// A full set of in-memory ports, with typed handles for inspection.
#[derive(Clone)]
pub struct MemoryPorts {
    /// The store.
    pub objects: Arc<MemoryObjectStore>,
    /// The event sink.
    pub events: Arc<MemoryEventSink>,
    /// The job queue.
    pub jobs: Arc<MemoryJobQueue>,
    /// The clock.
    pub clock: Arc<ManualClock>,
    /// The log.
    pub logger: Arc<MemoryLogger>,
    /// The monotonic timer.
    pub monotonic: Arc<ManualMonotonic>,
    /// The scripted HTTP probe, moving `monotonic`.
    pub http: Arc<ScriptedHttp>,
}

impl Default for MemoryPorts {
    fn default() -> Self {
        let monotonic = Arc::new(ManualMonotonic::default());
        Self {
            objects: Arc::default(),
            events: Arc::default(),
            jobs: Arc::default(),
            clock: Arc::default(),
            logger: Arc::default(),
            http: Arc::new(ScriptedHttp::new(monotonic.clone())),
            monotonic,
        }
    }
}

impl MemoryPorts {
    /// Fresh, empty ports.
    pub fn new() -> Self {
        Self::default()
    }

    /// The ports as the engine takes them, sharing these instances.
    pub fn ports(&self) -> Ports {
        Ports::new(self.objects.clone(), self.events.clone(), self.jobs.clone())
            .with_clock(self.clock.clone())
            .with_logger(self.logger.clone())
            .with_monotonic(self.monotonic.clone())
            .with_http(self.http.clone())
    }
}
