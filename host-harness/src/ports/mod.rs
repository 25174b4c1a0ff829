//! The host ports a department plugin reaches through its WIT imports.
//!
//! Each trait is shaped one-to-one like the RUSVEL port of the same name, so an embedding
//! RUSVEL host can plug in its own adapters; this crate ships SQLite adapters
//! ([`crate::sqlite`]) and a scripted agent ([`crate::agent::ScriptedAgent`]).
//!
//! The traits are async (through `async_trait`, so they stay object-safe and can be held
//! as `Arc<dyn ...>`), because RUSVEL's ports are async and an adapter may do network I/O.
//! JSON documents travel as [`serde_json::Value`], as in RUSVEL.

pub mod agent;
pub mod events;
pub mod jobs;
pub mod objects;

pub use agent::{
    AgentConfig, AgentOutput, AgentPort, AgentStatus, ContentPart, PermissionMode, TokenUsage,
};
pub use events::{Event, EventFilter, EventPort, NewEvent};
pub use jobs::{Job, JobFilter, JobPort, JobStatus, NewJob};
pub use objects::{FieldMatch, ObjectFilter, ObjectStore, VersionedObject};

/// The error kinds of the RUSVEL core, one-to-one with the WIT `error` variant.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PortError {
    /// The named object does not exist.
    #[error("{kind} {id} not found")]
    NotFound {
        /// Object kind.
        kind: String,
        /// Object id.
        id: String,
    },
    /// The named object exists already.
    #[error("{kind} {id} already exists")]
    AlreadyExists {
        /// Object kind.
        kind: String,
        /// Object id.
        id: String,
    },
    /// The input was rejected; the message names the offending field.
    #[error("validation failed: {0}")]
    Validation(String),
    /// The operation is not allowed from the object's current state.
    #[error("invalid state change from {from} to {to}")]
    InvalidState {
        /// Current state.
        from: String,
        /// Requested state.
        to: String,
    },
    /// The caller may not do this.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// A version-checked write lost a race.
    #[error("version conflict on {kind} {id}")]
    Conflict {
        /// Object kind.
        kind: String,
        /// Object id.
        id: String,
    },
    /// The language model failed.
    #[error("llm error: {0}")]
    Llm(String),
    /// The agent runtime failed.
    #[error("agent error: {0}")]
    Agent(String),
    /// A tool failed.
    #[error("tool error: {0}")]
    Tool(String),
    /// A budget limit was reached.
    #[error("budget exceeded: spent {spent} of {limit} USD")]
    BudgetExceeded {
        /// Spent so far, in US dollars.
        spent: f64,
        /// The limit, in US dollars.
        limit: f64,
    },
    /// The storage backend failed.
    #[error("storage error: {0}")]
    Storage(String),
    /// A value could not be serialized or parsed.
    #[error("serialization error: {0}")]
    Serialization(String),
    /// The configuration is invalid.
    #[error("configuration error: {0}")]
    Config(String),
    /// A limit of the host was exceeded.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// Anything else.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<rusqlite::Error> for PortError {
    fn from(error: rusqlite::Error) -> Self {
        PortError::Storage(error.to_string())
    }
}

impl From<serde_json::Error> for PortError {
    fn from(error: serde_json::Error) -> Self {
        PortError::Serialization(error.to_string())
    }
}

/// Result type of every port operation.
pub type PortResult<T> = Result<T, PortError>;

/// The set of port adapters a plugin host hands to its plugins.
#[derive(Clone)]
pub struct Ports {
    /// The object store.
    pub objects: std::sync::Arc<dyn ObjectStore>,
    /// The event log.
    pub events: std::sync::Arc<dyn EventPort>,
    /// The job queue.
    pub jobs: std::sync::Arc<dyn JobPort>,
    /// The agent.
    pub agent: std::sync::Arc<dyn AgentPort>,
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ports").finish_non_exhaustive()
    }
}
