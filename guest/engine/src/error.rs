//! The engine's error type, one case per error kind of the department contract.
//!
//! The cases mirror the WIT `error` variant (and RUSVEL's core error kinds) one to one, so an
//! adapter can translate in both directions without losing information: a `conflict` coming
//! back from the host's store must stay a [`EngineError::Conflict`] for the engine to retry.

use thiserror::Error;

/// Everything that can go wrong in the Infra engine.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EngineError {
    /// The named object does not exist (or belongs to another session).
    #[error("{kind} `{id}` not found")]
    NotFound {
        /// Object kind, for example `infra_deploy`, or `tool` for an unknown tool.
        kind: String,
        /// The id that was looked up.
        id: String,
    },
    /// The named object exists already.
    #[error("{kind} `{id}` already exists")]
    AlreadyExists {
        /// Object kind.
        kind: String,
        /// The id of the existing object.
        id: String,
    },
    /// The input was rejected; the message names the offending field.
    #[error("invalid input: {0}")]
    Validation(String),
    /// The operation is not allowed from the object's current state.
    #[error("cannot move from `{from}` to `{to}`")]
    InvalidState {
        /// The current state.
        from: String,
        /// The refused target state.
        to: String,
    },
    /// The caller may not do this.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// A version-checked write lost a race against another write.
    #[error("{kind} `{id}` was changed concurrently")]
    Conflict {
        /// Object kind.
        kind: String,
        /// Object id.
        id: String,
    },
    /// The language model failed.
    #[error("language model error: {0}")]
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
        /// Money spent, in US dollars.
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

/// The result type of every fallible engine operation.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

impl EngineError {
    /// A not-found error for an object of `kind`.
    pub fn not_found(kind: impl Into<String>, id: impl Into<String>) -> Self {
        Self::NotFound {
            kind: kind.into(),
            id: id.into(),
        }
    }

    /// A refused transition between two states, named by their JSON spelling.
    pub fn invalid_state(from: impl Into<String>, to: impl Into<String>) -> Self {
        Self::InvalidState {
            from: from.into(),
            to: to.into(),
        }
    }

    /// A validation error; the message should name the field.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::Validation(message.into())
    }

    /// Whether this error is a lost compare-and-swap race, which is worth retrying.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }
}

impl From<serde_json::Error> for EngineError {
    fn from(error: serde_json::Error) -> Self {
        Self::Serialization(error.to_string())
    }
}
