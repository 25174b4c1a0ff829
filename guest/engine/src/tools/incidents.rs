//! Incident tools: open, list, update, resolve, reopen, and read the timeline.

use serde_json::{json, Value};

use super::schema::{self, MAX_DESCRIPTION, MAX_NOTE};
use super::{list_metadata, object_metadata, Args, Tool, ToolOutput};
use crate::engine::InfraEngine;
use crate::error::Result;
use crate::incident::{
    Incident, IncidentQuery, IncidentStatus, IncidentUpdate, NewIncident, Severity, KIND,
};

/// The incident tools, in registry order.
pub(super) static TOOLS: &[Tool] = &[
    Tool {
        name: "infra.incidents.create",
        description: "Open an incident with a title, a description and a severity from P1 \
                      (most impact) to P4. Returns incident_id.",
        schema: create_schema,
        handler: create,
    },
    Tool {
        name: "infra.incidents.list",
        description: "List incidents of the session, newest first, optionally filtered by \
                      status and severity.",
        schema: list_schema,
        handler: list,
    },
    Tool {
        name: "infra.incidents.update",
        description: "Change an incident's status and/or severity, with an optional note for the \
                      timeline. Status moves: open -> investigating -> mitigated -> resolved; \
                      investigating -> resolved; mitigated -> investigating. Reopen with \
                      infra.incidents.reopen.",
        schema: update_schema,
        handler: update,
    },
    Tool {
        name: "infra.incidents.resolve",
        description: "Resolve an incident that is investigating or mitigated. Resolving a \
                      resolved incident changes nothing.",
        schema: note_schema,
        handler: resolve,
    },
    Tool {
        name: "infra.incidents.reopen",
        description: "Reopen a resolved incident: it goes back to open.",
        schema: note_schema,
        handler: reopen,
    },
    Tool {
        name: "infra.incidents.timeline",
        description: "Show an incident's timeline: every status and severity change with its \
                      time and note.",
        schema: timeline_schema,
        handler: timeline,
    },
];

fn status_schema(description: &str) -> Value {
    let statuses: Vec<&str> = IncidentStatus::ALL
        .iter()
        .map(|status| status.as_str())
        .collect();
    schema::one_of(description, &statuses)
}

fn create_schema() -> Value {
    schema::object(
        vec![
            ("session_id", schema::session_id()),
            ("title", schema::name("A one-line summary.")),
            (
                "description",
                schema::text("What is known so far.", MAX_DESCRIPTION),
            ),
            ("severity", schema::severity("P1 (most impact) to P4.")),
        ],
        &["session_id", "title", "severity"],
    )
}

fn create(engine: &InfraEngine, args: &Args) -> Result<ToolOutput> {
    let new = NewIncident {
        title: args.required_text("title")?.to_string(),
        description: args.note("description").unwrap_or_default(),
        severity: args
            .choice("severity", Severity::parse)?
            .expect("`severity` is required"),
    };
    let incident = engine.incidents().open_incident(args.session()?, new)?;
    let content = json!({ "incident_id": incident.id, "incident": incident });
    ToolOutput::json(&content, object_metadata(KIND, incident.id))
}

fn list_schema() -> Value {
    schema::object(
        vec![
            ("session_id", schema::session_id()),
            ("status", status_schema("Only incidents in this status.")),
            (
                "severity",
                schema::severity("Only incidents of this severity."),
            ),
            ("limit", schema::limit()),
            ("offset", schema::offset()),
        ],
        &["session_id"],
    )
}

fn list(engine: &InfraEngine, args: &Args) -> Result<ToolOutput> {
    let query = IncidentQuery {
        status: args.choice("status", IncidentStatus::parse)?,
        severity: args.choice("severity", Severity::parse)?,
    };
    let page = engine
        .incidents()
        .list_incidents(args.session()?, &query, args.page())?;
    let metadata = list_metadata(KIND, page.items.len(), page.total);
    let content = json!({
        "incidents": page.items,
        "total": page.total,
        "limit": page.limit,
        "offset": page.offset,
    });
    ToolOutput::json(&content, metadata)
}

fn update_schema() -> Value {
    let mut schema = schema::object(
        vec![
            ("session_id", schema::session_id()),
            ("incident_id", schema::uuid("The incident to change.")),
            ("status", status_schema("The new status.")),
            ("severity", schema::severity("The new severity.")),
            (
                "note",
                schema::text("What happened; recorded in the timeline.", MAX_NOTE),
            ),
        ],
        &["session_id", "incident_id"],
    );
    schema["anyOf"] = json!([{ "required": ["status"] }, { "required": ["severity"] }]);
    schema
}

fn update(engine: &InfraEngine, args: &Args) -> Result<ToolOutput> {
    let update = IncidentUpdate {
        status: args.choice("status", IncidentStatus::parse)?,
        severity: args.choice("severity", Severity::parse)?,
        note: args.note("note"),
    };
    let incident =
        engine
            .incidents()
            .update_incident(args.session()?, args.id("incident_id")?, update)?;
    incident_output(&incident)
}

fn note_schema() -> Value {
    schema::object(
        vec![
            ("session_id", schema::session_id()),
            ("incident_id", schema::uuid("The incident.")),
            (
                "note",
                schema::text("What happened; recorded in the timeline.", MAX_NOTE),
            ),
        ],
        &["session_id", "incident_id"],
    )
}

fn resolve(engine: &InfraEngine, args: &Args) -> Result<ToolOutput> {
    let incident = engine.incidents().resolve_incident(
        args.session()?,
        args.id("incident_id")?,
        args.note("note"),
    )?;
    incident_output(&incident)
}

fn reopen(engine: &InfraEngine, args: &Args) -> Result<ToolOutput> {
    let incident = engine.incidents().reopen_incident(
        args.session()?,
        args.id("incident_id")?,
        args.note("note"),
    )?;
    incident_output(&incident)
}

fn timeline_schema() -> Value {
    schema::object(
        vec![
            ("session_id", schema::session_id()),
            ("incident_id", schema::uuid("The incident.")),
        ],
        &["session_id", "incident_id"],
    )
}

fn timeline(engine: &InfraEngine, args: &Args) -> Result<ToolOutput> {
    let incident = engine
        .incidents()
        .get_incident(args.session()?, args.id("incident_id")?)?;
    let content = json!({
        "incident_id": incident.id,
        "title": incident.title,
        "status": incident.status,
        "severity": incident.severity,
        "opened_at": incident.opened_at,
        "mitigated_at": incident.mitigated_at,
        "resolved_at": incident.resolved_at,
        "timeline": incident.timeline,
    });
    ToolOutput::json(&content, object_metadata(KIND, incident.id))
}

fn incident_output(incident: &Incident) -> Result<ToolOutput> {
    ToolOutput::json(
        &json!({ "incident": incident }),
        object_metadata(KIND, incident.id),
    )
}
