//! The engine's ports over the contract's imports. Each adapter is a unit struct: the host
//! owns all state, the guest only forwards calls and converts values.

use chrono::{DateTime, Utc};
use infra_engine::ports::{
    EventSink, FieldMatch, Job, JobFilter, JobQueue, LogLevel, Logger, NewEvent, NewJob,
    ObjectFilter, ObjectStore, Ports, SystemClock, VersionedObject,
};
use infra_engine::Result;
use serde_json::Value;
use std::sync::Arc;

use crate::bindings::rusvel::department::{events, jobs, log, storage};
use crate::convert::{self, from_wit_error, json_text, parse_json, parse_time};

/// The ports of a component instance: the host's imports, the WASI clocks, and outbound
/// `wasi:http` for probes.
pub fn host_ports() -> Ports {
    let ports = Ports::new(
        Arc::new(HostObjectStore),
        Arc::new(HostEventSink),
        Arc::new(HostJobQueue),
    )
    .with_clock(Arc::new(SystemClock))
    .with_logger(Arc::new(HostLogger));
    #[cfg(target_arch = "wasm32")]
    let ports = ports.with_http(Arc::new(crate::http::WasiHttp));
    ports
}

/// The object store, through the `storage` import.
pub struct HostObjectStore;

impl ObjectStore for HostObjectStore {
    fn put(&self, kind: &str, id: &str, data: &Value) -> Result<()> {
        storage::put(kind, id, &json_text(data)).map_err(from_wit_error)
    }

    fn get(&self, kind: &str, id: &str) -> Result<Option<Value>> {
        let found = storage::get(kind, id).map_err(from_wit_error)?;
        found
            .map(|text| parse_json(&text, "stored object"))
            .transpose()
    }

    fn delete(&self, kind: &str, id: &str) -> Result<()> {
        storage::delete(kind, id).map_err(from_wit_error)
    }

    fn list(&self, kind: &str, filter: &ObjectFilter) -> Result<Vec<Value>> {
        let found = storage::list(kind, &object_filter(filter)).map_err(from_wit_error)?;
        found
            .iter()
            .map(|text| parse_json(text, "stored object"))
            .collect()
    }

    fn count(&self, kind: &str, filter: &ObjectFilter) -> Result<u64> {
        storage::count(kind, &object_filter(filter)).map_err(from_wit_error)
    }

    fn get_versioned(&self, kind: &str, id: &str) -> Result<Option<VersionedObject>> {
        let Some(stored) = storage::get_versioned(kind, id).map_err(from_wit_error)? else {
            return Ok(None);
        };
        Ok(Some(VersionedObject {
            data: parse_json(&stored.data, "stored object")?,
            version: stored.version,
            created_at: parse_time(&stored.created_at)?,
            updated_at: parse_time(&stored.updated_at)?,
        }))
    }

    fn put_versioned(
        &self,
        kind: &str,
        id: &str,
        data: &Value,
        expected: Option<u64>,
    ) -> Result<u64> {
        storage::put_versioned(kind, id, &json_text(data), expected).map_err(from_wit_error)
    }
}

fn object_filter(filter: &ObjectFilter) -> storage::ObjectFilter {
    storage::ObjectFilter {
        session_id: filter.session_id.clone(),
        tags: filter.tags.clone(),
        fields: filter.fields.iter().map(field_match).collect(),
        limit: filter.limit,
        offset: filter.offset,
    }
}

fn field_match(field: &FieldMatch) -> storage::FieldMatch {
    storage::FieldMatch {
        field: field.field.clone(),
        value: field.value.clone(),
    }
}

/// The event sink, through the `events` import.
pub struct HostEventSink;

impl EventSink for HostEventSink {
    fn emit(&self, event: NewEvent) -> Result<String> {
        let event = events::NewEvent {
            session_id: event.session_id,
            run_id: event.run_id,
            kind: event.kind,
            payload: json_text(&event.payload),
            metadata: json_text(&event.metadata),
        };
        events::emit(&event).map_err(from_wit_error)
    }
}

/// The job queue, through the `jobs` import.
pub struct HostJobQueue;

impl JobQueue for HostJobQueue {
    fn enqueue(&self, job: NewJob) -> Result<String> {
        jobs::enqueue(&new_job(job)).map_err(from_wit_error)
    }

    fn schedule(&self, job: NewJob, cron: &str) -> Result<String> {
        jobs::schedule(&new_job(job), cron).map_err(from_wit_error)
    }

    fn cancel(&self, id: &str) -> Result<()> {
        jobs::cancel(id).map_err(from_wit_error)
    }

    fn list(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let filter = jobs::JobFilter {
            session_id: filter.session_id.clone(),
            kinds: filter.kinds.clone(),
            statuses: filter
                .statuses
                .iter()
                .copied()
                .map(convert::to_wit_job_status)
                .collect(),
            limit: filter.limit,
        };
        let found = jobs::list(&filter).map_err(from_wit_error)?;
        found.into_iter().map(convert::from_wit_job).collect()
    }
}

fn new_job(job: NewJob) -> jobs::NewJob {
    jobs::NewJob {
        session_id: job.session_id,
        kind: job.kind,
        payload: json_text(&job.payload),
        max_retries: job.max_retries,
        metadata: json_text(&job.metadata),
        scheduled_at: job.scheduled_at.as_ref().map(format_time),
    }
}

fn format_time(time: &DateTime<Utc>) -> String {
    convert::format_time(*time)
}

/// The log, through the `log` import; the host tags each line with the plugin id.
pub struct HostLogger;

impl Logger for HostLogger {
    fn log(&self, level: LogLevel, message: &str) {
        let level = match level {
            LogLevel::Trace => log::Level::Trace,
            LogLevel::Debug => log::Level::Debug,
            LogLevel::Info => log::Level::Info,
            LogLevel::Warn => log::Level::Warn,
            LogLevel::Error => log::Level::Error,
        };
        log::log(level, message);
    }
}
