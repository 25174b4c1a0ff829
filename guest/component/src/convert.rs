//! Conversions between the engine's values and the contract's WIT types.
//!
//! Errors map one to one in both directions: every WIT `error` case has an [`EngineError`]
//! case with the same payload, so a `conflict` from the host's store reaches the engine as a
//! conflict (and is retried), and an engine refusal reaches the host as the case it means.

use chrono::{DateTime, SecondsFormat, Utc};
use infra_engine::events::Event;
use infra_engine::manifest as m;
use infra_engine::ports::{Job, JobStatus};
use infra_engine::{EngineError, JobOutcome, Registration, Result, ToolOutput};
use serde_json::Value;

use crate::bindings::exports::rusvel::department::department as export;
use crate::bindings::rusvel::department::types::{Budget, Error, ObjectRef, StateChange};
use crate::bindings::rusvel::department::{events, jobs, manifest as wit};

/// An engine error as the contract's error.
pub fn to_wit_error(error: EngineError) -> Error {
    match error {
        EngineError::NotFound { kind, id } => Error::NotFound(ObjectRef { kind, id }),
        EngineError::AlreadyExists { kind, id } => Error::AlreadyExists(ObjectRef { kind, id }),
        EngineError::Validation(message) => Error::Validation(message),
        EngineError::InvalidState { from, to } => Error::InvalidState(StateChange { from, to }),
        EngineError::Unauthorized(message) => Error::Unauthorized(message),
        EngineError::Conflict { kind, id } => Error::Conflict(ObjectRef { kind, id }),
        EngineError::Llm(message) => Error::Llm(message),
        EngineError::Agent(message) => Error::Agent(message),
        EngineError::Tool(message) => Error::Tool(message),
        EngineError::BudgetExceeded { spent, limit } => {
            Error::BudgetExceeded(Budget { spent, limit })
        }
        EngineError::Storage(message) => Error::Storage(message),
        EngineError::Serialization(message) => Error::Serialization(message),
        EngineError::Config(message) => Error::Config(message),
        EngineError::LimitExceeded(message) => Error::LimitExceeded(message),
        EngineError::Internal(message) => Error::Internal(message),
    }
}

/// A contract error (from an import) as an engine error.
pub fn from_wit_error(error: Error) -> EngineError {
    match error {
        Error::NotFound(ObjectRef { kind, id }) => EngineError::NotFound { kind, id },
        Error::AlreadyExists(ObjectRef { kind, id }) => EngineError::AlreadyExists { kind, id },
        Error::Validation(message) => EngineError::Validation(message),
        Error::InvalidState(StateChange { from, to }) => EngineError::InvalidState { from, to },
        Error::Unauthorized(message) => EngineError::Unauthorized(message),
        Error::Conflict(ObjectRef { kind, id }) => EngineError::Conflict { kind, id },
        Error::Llm(message) => EngineError::Llm(message),
        Error::Agent(message) => EngineError::Agent(message),
        Error::Tool(message) => EngineError::Tool(message),
        Error::BudgetExceeded(Budget { spent, limit }) => {
            EngineError::BudgetExceeded { spent, limit }
        }
        Error::Storage(message) => EngineError::Storage(message),
        Error::Serialization(message) => EngineError::Serialization(message),
        Error::Config(message) => EngineError::Config(message),
        Error::LimitExceeded(message) => EngineError::LimitExceeded(message),
        Error::Internal(message) => EngineError::Internal(message),
    }
}

/// A JSON value as text for the host. `serde_json::to_string` writes into a byte buffer;
/// `Value`'s `Display`, which `to_string()` would use, goes through a formatter adapter token
/// by token and cost a measurable share of a tool call in the component.
pub fn json_text(value: &Value) -> String {
    // Serializing a `Value` cannot fail: its map keys are strings and memory is the sink.
    serde_json::to_string(value).unwrap_or_default()
}

/// Parses JSON text the host handed over; `what` names it in the error.
pub fn parse_json(text: &str, what: &str) -> Result<Value> {
    serde_json::from_str(text)
        .map_err(|error| EngineError::Serialization(format!("{what} is not valid JSON: {error}")))
}

/// Parses an RFC 3339 timestamp from the host.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|error| {
            EngineError::Serialization(format!("`{text}` is not an RFC 3339 time: {error}"))
        })
}

/// Formats a time as RFC 3339 UTC with a `Z` suffix.
pub fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn parse_optional_time(text: Option<String>) -> Result<Option<DateTime<Utc>>> {
    text.as_deref().map(parse_time).transpose()
}

/// A job status as the contract's enum.
pub fn to_wit_job_status(status: JobStatus) -> jobs::JobStatus {
    match status {
        JobStatus::Queued => jobs::JobStatus::Queued,
        JobStatus::Running => jobs::JobStatus::Running,
        JobStatus::Succeeded => jobs::JobStatus::Succeeded,
        JobStatus::Failed => jobs::JobStatus::Failed,
        JobStatus::Cancelled => jobs::JobStatus::Cancelled,
        JobStatus::AwaitingApproval => jobs::JobStatus::AwaitingApproval,
    }
}

fn from_wit_job_status(status: jobs::JobStatus) -> JobStatus {
    match status {
        jobs::JobStatus::Queued => JobStatus::Queued,
        jobs::JobStatus::Running => JobStatus::Running,
        jobs::JobStatus::Succeeded => JobStatus::Succeeded,
        jobs::JobStatus::Failed => JobStatus::Failed,
        jobs::JobStatus::Cancelled => JobStatus::Cancelled,
        jobs::JobStatus::AwaitingApproval => JobStatus::AwaitingApproval,
    }
}

/// A job from the host as the engine's job.
pub fn from_wit_job(job: jobs::Job) -> Result<Job> {
    Ok(Job {
        payload: parse_json(&job.payload, "job payload")?,
        status: from_wit_job_status(job.status),
        scheduled_at: parse_optional_time(job.scheduled_at)?,
        started_at: parse_optional_time(job.started_at)?,
        completed_at: parse_optional_time(job.completed_at)?,
        result: job
            .result
            .as_deref()
            .map(|text| parse_json(text, "job result"))
            .transpose()?,
        created_at: parse_time(&job.created_at)?,
        metadata: parse_json(&job.metadata, "job metadata")?,
        id: job.id,
        session_id: job.session_id,
        kind: job.kind,
        retries: job.retries,
        max_retries: job.max_retries,
        error: job.error,
        cron: job.cron,
    })
}

/// An event from the host as the engine's event.
pub fn from_wit_event(event: events::Event) -> Result<Event> {
    Ok(Event {
        payload: parse_json(&event.payload, "event payload")?,
        created_at: parse_time(&event.created_at)?,
        metadata: parse_json(&event.metadata, "event metadata")?,
        id: event.id,
        session_id: event.session_id,
        run_id: event.run_id,
        source: event.source,
        kind: event.kind,
    })
}

/// A job outcome as the contract's variant.
pub fn to_wit_job_outcome(outcome: JobOutcome) -> export::JobOutcome {
    match outcome {
        JobOutcome::Completed(result) => export::JobOutcome::Completed(json_text(&result)),
        JobOutcome::HoldForApproval(result) => {
            export::JobOutcome::HoldForApproval(json_text(&result))
        }
    }
}

/// A tool output as the contract's record.
pub fn to_wit_tool_output(output: ToolOutput) -> export::ToolOutput {
    export::ToolOutput {
        content: output.content,
        is_error: output.is_error,
        metadata: json_text(&output.metadata),
    }
}

/// The registration as the contract's record.
pub fn to_wit_registration(registration: Registration) -> export::Registration {
    export::Registration {
        tools: registration.tools.into_iter().map(to_wit_tool).collect(),
        event_subscriptions: registration.event_subscriptions,
        job_kinds: registration.job_kinds,
        indexed_fields: registration.indexed_fields,
    }
}

fn to_wit_tool(tool: m::ToolDefinition) -> wit::ToolDefinition {
    wit::ToolDefinition {
        name: tool.name,
        description: tool.description,
        parameters_schema: json_text(&tool.parameters_schema),
    }
}

/// The manifest as the contract's record. Pure: calls no import.
pub fn to_wit_manifest(manifest: m::DepartmentManifest) -> wit::DepartmentManifest {
    wit::DepartmentManifest {
        id: manifest.id,
        name: manifest.name,
        description: manifest.description,
        icon: manifest.icon,
        color: manifest.color,
        system_prompt: manifest.system_prompt,
        capabilities: manifest.capabilities,
        quick_actions: manifest
            .quick_actions
            .into_iter()
            .map(|a| wit::QuickAction {
                label: a.label,
                prompt: a.prompt,
            })
            .collect(),
        routes: manifest
            .routes
            .into_iter()
            .map(|r| wit::RouteContribution {
                method: r.method,
                path: r.path,
                description: r.description,
            })
            .collect(),
        commands: manifest.commands.into_iter().map(to_wit_command).collect(),
        tools: manifest.tools.into_iter().map(to_wit_tool).collect(),
        personas: manifest
            .personas
            .into_iter()
            .map(|p| wit::Persona {
                name: p.name,
                role: p.role,
                default_model: p.default_model,
                allowed_tools: p.allowed_tools,
            })
            .collect(),
        skills: manifest
            .skills
            .into_iter()
            .map(|s| wit::Skill {
                name: s.name,
                description: s.description,
                prompt_template: s.prompt_template,
            })
            .collect(),
        rules: manifest
            .rules
            .into_iter()
            .map(|r| wit::Rule {
                name: r.name,
                content: r.content,
                enabled: r.enabled,
            })
            .collect(),
        jobs: manifest
            .jobs
            .into_iter()
            .map(|j| wit::JobContribution {
                kind: j.kind,
                description: j.description,
                requires_approval: j.requires_approval,
            })
            .collect(),
        ui: to_wit_ui(manifest.ui),
        events_produced: manifest.events_produced,
        events_consumed: manifest.events_consumed,
        requires_ports: manifest
            .requires_ports
            .into_iter()
            .map(|p| wit::PortRequirement {
                port: p.port,
                optional: p.optional,
            })
            .collect(),
        depends_on: manifest.depends_on,
        config_schema: json_text(&manifest.config_schema),
        default_config: to_wit_layered_config(manifest.default_config),
    }
}

fn to_wit_command(command: m::CommandContribution) -> wit::CommandContribution {
    wit::CommandContribution {
        name: command.name,
        description: command.description,
        args: command
            .args
            .into_iter()
            .map(|a| wit::CommandArg {
                name: a.name,
                description: a.description,
                required: a.required,
                default: a.default,
            })
            .collect(),
        tool: command.tool,
    }
}

fn to_wit_ui(ui: m::UiContribution) -> wit::UiContribution {
    wit::UiContribution {
        tabs: ui.tabs,
        dashboard_cards: ui
            .dashboard_cards
            .into_iter()
            .map(|c| wit::DashboardCard {
                title: c.title,
                description: c.description,
                size: c.size,
            })
            .collect(),
        has_settings: ui.has_settings,
        custom_components: ui.custom_components,
    }
}

fn to_wit_layered_config(config: m::LayeredConfig) -> wit::LayeredConfig {
    wit::LayeredConfig {
        model: config.model,
        effort: config.effort,
        max_budget_usd: config.max_budget_usd,
        permission_mode: config.permission_mode,
        allowed_tools: config.allowed_tools,
        disallowed_tools: config.disallowed_tools,
        system_prompt: config.system_prompt,
        add_dirs: config.add_dirs,
        max_turns: config.max_turns,
        chat_mode: config.chat_mode,
    }
}
