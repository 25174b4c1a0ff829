//! RUSVEL's EventPort: durable domain events, persisted before they are delivered.

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;

use super::PortResult;

/// An event to emit; the port assigns id and time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewEvent {
    /// Session the event belongs to.
    pub session_id: Option<String>,
    /// Agent run the event belongs to.
    pub run_id: Option<String>,
    /// Emitting department id; the plugin host stamps it, a plugin cannot choose it.
    pub source: String,
    /// Dotted kind, for example `infra.incident.opened`.
    pub kind: String,
    /// Event payload.
    pub payload: Value,
    /// Free-form metadata.
    pub metadata: Value,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// UUIDv7.
    pub id: String,
    /// Session the event belongs to.
    pub session_id: Option<String>,
    /// Agent run the event belongs to.
    pub run_id: Option<String>,
    /// Emitting department id.
    pub source: String,
    /// Dotted kind.
    pub kind: String,
    /// Event payload.
    pub payload: Value,
    /// RFC 3339 UTC time with milliseconds.
    pub created_at: String,
    /// Free-form metadata.
    pub metadata: Value,
}

/// Which events to return; results are oldest first.
///
/// With `since`, the oldest `limit` events at or after it are returned (paging forward);
/// without it, the newest `limit` events (a tail), still oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EventFilter {
    /// Only this session.
    pub session_id: Option<String>,
    /// Only this run.
    pub run_id: Option<String>,
    /// Only this source department.
    pub source: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only events created at or after this RFC 3339 time.
    pub since: Option<String>,
    /// At most this many events.
    pub limit: Option<u32>,
}

/// RUSVEL's EventPort.
#[async_trait]
pub trait EventPort: Send + Sync {
    /// Persists the event, then broadcasts it to live subscribers; returns its id.
    async fn emit(&self, event: NewEvent) -> PortResult<String>;

    /// Reads one event.
    async fn get(&self, id: &str) -> PortResult<Option<Event>>;

    /// Lists events matching the filter.
    async fn query(&self, filter: &EventFilter) -> PortResult<Vec<Event>>;

    /// Subscribes to events emitted from now on.
    fn subscribe(&self) -> broadcast::Receiver<Event>;
}
