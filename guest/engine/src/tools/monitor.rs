//! Monitoring tools: register a health check and report the status of all checks.

use serde_json::{json, Value};

use super::schema;
use super::{list_metadata, object_metadata, Args, Tool, ToolOutput};
use crate::engine::InfraEngine;
use crate::error::Result;
use crate::monitor::{CheckQuery, NewHealthCheck, KIND, MAX_ENDPOINT_LEN};
use crate::page::{PageRequest, MAX_LIMIT};

/// The monitoring tools, in registry order.
pub(super) static TOOLS: &[Tool] = &[
    Tool {
        name: "infra.monitor.status",
        description: "List the session's health checks with a status summary: counts of up, \
                      down, degraded and not yet probed checks, and the services that are down \
                      or degraded.",
        schema: status_schema,
        handler: status,
    },
    Tool {
        name: "infra.monitor.add_check",
        description: "Register a health check of a service's HTTP(S) endpoint. Its status \
                      stays null until the first probe.",
        schema: add_check_schema,
        handler: add_check,
    },
];

fn status_schema() -> Value {
    schema::object(vec![("session_id", schema::session_id())], &["session_id"])
}

fn status(engine: &InfraEngine, args: &Args) -> Result<ToolOutput> {
    let session = args.session()?;
    let summary = engine.monitor().status_summary(session)?;
    let page = PageRequest::new(Some(MAX_LIMIT), None);
    let checks = engine
        .monitor()
        .list_checks(session, &CheckQuery::default(), page)?;
    let metadata = list_metadata(KIND, checks.items.len(), checks.total);
    let content = json!({
        "summary": summary,
        "checks": checks.items,
        "total": checks.total,
        "truncated": checks.total > checks.items.len() as u64,
    });
    ToolOutput::json(&content, metadata)
}

fn add_check_schema() -> Value {
    schema::object(
        vec![
            ("session_id", schema::session_id()),
            (
                "service",
                schema::name("The service the endpoint belongs to."),
            ),
            (
                "endpoint",
                schema::text(
                    "The http:// or https:// URL to probe.",
                    MAX_ENDPOINT_LEN as u64,
                ),
            ),
        ],
        &["session_id", "service", "endpoint"],
    )
}

fn add_check(engine: &InfraEngine, args: &Args) -> Result<ToolOutput> {
    let new = NewHealthCheck {
        service: args.required_text("service")?.to_string(),
        endpoint: args.required_text("endpoint")?.to_string(),
    };
    let check = engine.monitor().add_check(args.session()?, new)?;
    ToolOutput::json(
        &json!({ "check_id": check.id, "check": check }),
        object_metadata(KIND, check.id),
    )
}
