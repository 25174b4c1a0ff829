//! Conversions between the WIT types of the bindings and the host's port types.

use serde_json::Value;

use crate::bindings::rusvel::department::{agent, events, jobs, storage, types};
use crate::ports::{self, PortError};

/// Parses a JSON document that crossed the boundary as text.
pub(crate) fn parse_json(what: &str, text: &str) -> Result<Value, PortError> {
    serde_json::from_str(text)
        .map_err(|error| PortError::Serialization(format!("{what} is not valid JSON: {error}")))
}

/// Serializes a JSON value for the guest (into a byte buffer: `Value`'s `Display` is slower).
pub(crate) fn to_json(value: &Value) -> String {
    // Cannot fail: a `Value`'s map keys are strings and memory is the sink.
    serde_json::to_string(value).unwrap_or_default()
}

impl From<PortError> for types::Error {
    fn from(error: PortError) -> Self {
        use types::Error as W;
        let object = |kind: String, id: String| types::ObjectRef { kind, id };
        match error {
            PortError::NotFound { kind, id } => W::NotFound(object(kind, id)),
            PortError::AlreadyExists { kind, id } => W::AlreadyExists(object(kind, id)),
            PortError::Validation(message) => W::Validation(message),
            PortError::InvalidState { from, to } => {
                W::InvalidState(types::StateChange { from, to })
            }
            PortError::Unauthorized(message) => W::Unauthorized(message),
            PortError::Conflict { kind, id } => W::Conflict(object(kind, id)),
            PortError::Llm(message) => W::Llm(message),
            PortError::Agent(message) => W::Agent(message),
            PortError::Tool(message) => W::Tool(message),
            PortError::BudgetExceeded { spent, limit } => {
                W::BudgetExceeded(types::Budget { spent, limit })
            }
            PortError::Storage(message) => W::Storage(message),
            PortError::Serialization(message) => W::Serialization(message),
            PortError::Config(message) => W::Config(message),
            PortError::LimitExceeded(message) => W::LimitExceeded(message),
            PortError::Internal(message) => W::Internal(message),
        }
    }
}

impl From<types::Error> for PortError {
    fn from(error: types::Error) -> Self {
        use types::Error as W;
        match error {
            W::NotFound(o) => PortError::NotFound {
                kind: o.kind,
                id: o.id,
            },
            W::AlreadyExists(o) => PortError::AlreadyExists {
                kind: o.kind,
                id: o.id,
            },
            W::Validation(message) => PortError::Validation(message),
            W::InvalidState(change) => PortError::InvalidState {
                from: change.from,
                to: change.to,
            },
            W::Unauthorized(message) => PortError::Unauthorized(message),
            W::Conflict(o) => PortError::Conflict {
                kind: o.kind,
                id: o.id,
            },
            W::Llm(message) => PortError::Llm(message),
            W::Agent(message) => PortError::Agent(message),
            W::Tool(message) => PortError::Tool(message),
            W::BudgetExceeded(b) => PortError::BudgetExceeded {
                spent: b.spent,
                limit: b.limit,
            },
            W::Storage(message) => PortError::Storage(message),
            W::Serialization(message) => PortError::Serialization(message),
            W::Config(message) => PortError::Config(message),
            W::LimitExceeded(message) => PortError::LimitExceeded(message),
            W::Internal(message) => PortError::Internal(message),
        }
    }
}

pub(crate) fn object_filter(filter: storage::ObjectFilter) -> ports::ObjectFilter {
    ports::ObjectFilter {
        session_id: filter.session_id,
        tags: filter.tags,
        fields: filter
            .fields
            .into_iter()
            .map(|m| ports::FieldMatch {
                field: m.field,
                value: m.value,
            })
            .collect(),
        limit: filter.limit,
        offset: filter.offset,
    }
}

pub(crate) fn versioned_object(object: ports::VersionedObject) -> storage::VersionedObject {
    storage::VersionedObject {
        data: to_json(&object.data),
        version: object.version,
        created_at: object.created_at,
        updated_at: object.updated_at,
    }
}

pub(crate) fn event(event: ports::Event) -> events::Event {
    events::Event {
        id: event.id,
        session_id: event.session_id,
        run_id: event.run_id,
        source: event.source,
        kind: event.kind,
        payload: to_json(&event.payload),
        created_at: event.created_at,
        metadata: to_json(&event.metadata),
    }
}

pub(crate) fn event_filter(filter: events::EventFilter) -> ports::EventFilter {
    ports::EventFilter {
        session_id: filter.session_id,
        run_id: filter.run_id,
        source: filter.source,
        kind: filter.kind,
        since: filter.since,
        limit: filter.limit,
    }
}

pub(crate) fn job_status(status: jobs::JobStatus) -> ports::JobStatus {
    use jobs::JobStatus as W;
    match status {
        W::Queued => ports::JobStatus::Queued,
        W::Running => ports::JobStatus::Running,
        W::Succeeded => ports::JobStatus::Succeeded,
        W::Failed => ports::JobStatus::Failed,
        W::Cancelled => ports::JobStatus::Cancelled,
        W::AwaitingApproval => ports::JobStatus::AwaitingApproval,
    }
}

fn wit_job_status(status: ports::JobStatus) -> jobs::JobStatus {
    use ports::JobStatus as P;
    match status {
        P::Queued => jobs::JobStatus::Queued,
        P::Running => jobs::JobStatus::Running,
        P::Succeeded => jobs::JobStatus::Succeeded,
        P::Failed => jobs::JobStatus::Failed,
        P::Cancelled => jobs::JobStatus::Cancelled,
        P::AwaitingApproval => jobs::JobStatus::AwaitingApproval,
    }
}

pub(crate) fn new_job(job: jobs::NewJob, owner: &str) -> Result<ports::NewJob, PortError> {
    Ok(ports::NewJob {
        session_id: job.session_id,
        kind: job.kind,
        payload: parse_json("job payload", &job.payload)?,
        max_retries: job.max_retries,
        metadata: parse_json("job metadata", &job.metadata)?,
        scheduled_at: job.scheduled_at,
        owner: owner.to_string(),
    })
}

pub(crate) fn job(job: ports::Job) -> jobs::Job {
    jobs::Job {
        id: job.id,
        session_id: job.session_id,
        kind: job.kind,
        payload: to_json(&job.payload),
        status: wit_job_status(job.status),
        scheduled_at: job.scheduled_at,
        started_at: job.started_at,
        completed_at: job.completed_at,
        retries: job.retries,
        max_retries: job.max_retries,
        error: job.error,
        result: job.result.as_ref().map(to_json),
        cron: job.cron,
        created_at: job.created_at,
        metadata: to_json(&job.metadata),
    }
}

pub(crate) fn agent_config(config: agent::AgentConfig) -> Result<ports::AgentConfig, PortError> {
    Ok(ports::AgentConfig {
        session_id: config.session_id,
        profile: config.profile,
        model: config.model,
        tools: config.tools,
        instructions: config.instructions,
        budget_limit_usd: config.budget_limit_usd,
        max_iterations: config.max_iterations,
        permission_mode: match config.permission_mode {
            agent::PermissionMode::Auto => ports::PermissionMode::Auto,
            agent::PermissionMode::Supervised => ports::PermissionMode::Supervised,
            agent::PermissionMode::Locked => ports::PermissionMode::Locked,
        },
        metadata: parse_json("agent metadata", &config.metadata)?,
    })
}

pub(crate) fn content_part(part: agent::ContentPart) -> ports::ContentPart {
    match part {
        agent::ContentPart::Text(text) => ports::ContentPart::Text(text),
        agent::ContentPart::Image(image) => ports::ContentPart::Image(image),
    }
}

pub(crate) fn agent_output(output: ports::AgentOutput) -> agent::AgentOutput {
    agent::AgentOutput {
        run_id: output.run_id,
        content: output
            .content
            .into_iter()
            .map(|part| match part {
                ports::ContentPart::Text(text) => agent::ContentPart::Text(text),
                ports::ContentPart::Image(image) => agent::ContentPart::Image(image),
            })
            .collect(),
        tool_calls: output.tool_calls,
        usage: agent::TokenUsage {
            input_tokens: output.usage.input_tokens,
            output_tokens: output.usage.output_tokens,
        },
        cost_estimate_usd: output.cost_estimate_usd,
        metadata: to_json(&output.metadata),
    }
}

pub(crate) fn agent_status(status: ports::AgentStatus) -> agent::AgentStatus {
    use ports::AgentStatus as P;
    match status {
        P::Idle => agent::AgentStatus::Idle,
        P::Running => agent::AgentStatus::Running,
        P::AwaitingTool => agent::AgentStatus::AwaitingTool,
        P::AwaitingApproval => agent::AgentStatus::AwaitingApproval,
        P::Completed => agent::AgentStatus::Completed,
        P::Failed => agent::AgentStatus::Failed,
        P::Stopped => agent::AgentStatus::Stopped,
    }
}
