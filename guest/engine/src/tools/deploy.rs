//! Deployment tools: record, move through the lifecycle, roll back, list, and show what runs.

use serde_json::{json, Value};

use super::schema::{self, MAX_NOTE};
use super::{list_metadata, object_metadata, Args, Tool, ToolOutput};
use crate::deploy::{DeployStatus, DeploymentQuery, NewDeployment, KIND};
use crate::engine::InfraEngine;
use crate::error::Result;

/// The deployment tools, in registry order.
pub(super) static TOOLS: &[Tool] = &[
    Tool {
        name: "infra.deploy.trigger",
        description: "Record a deployment of a service version to an environment. It starts as \
                      Pending; move it on with infra.deploy.update_status. Returns deployment_id.",
        schema: trigger_schema,
        handler: trigger,
    },
    Tool {
        name: "infra.deploy.update_status",
        description: "Move a deployment through its lifecycle: pending -> in_progress -> \
                      deployed or failed; pending -> failed. Other moves are refused. Use \
                      infra.deploy.rollback to roll a deployed version back.",
        schema: update_status_schema,
        handler: update_status,
    },
    Tool {
        name: "infra.deploy.rollback",
        description: "Roll a service in an environment back to the most recent earlier deployed \
                      version: records a new deployed deployment of that version and marks the \
                      current one rolled_back. Refused when there is no earlier version.",
        schema: rollback_schema,
        handler: rollback,
    },
    Tool {
        name: "infra.deploy.list",
        description: "List deployments of the session, newest first, optionally filtered by \
                      service, environment and status.",
        schema: list_schema,
        handler: list,
    },
    Tool {
        name: "infra.deploy.current",
        description: "Show the version currently deployed for each service and environment (the \
                      deployment that reached deployed last), optionally for one service or \
                      environment.",
        schema: current_schema,
        handler: current,
    },
];

fn status_schema(description: &str) -> Value {
    let statuses: Vec<&str> = DeployStatus::ALL
        .iter()
        .map(|status| status.as_str())
        .collect();
    schema::one_of(description, &statuses)
}

fn trigger_schema() -> Value {
    schema::object(
        vec![
            ("session_id", schema::session_id()),
            (
                "service",
                schema::name("The service deployed, for example `rusvel-api`."),
            ),
            (
                "version",
                schema::name("The version deployed, for example `v0.3.0`."),
            ),
            (
                "environment",
                schema::name("The target environment, for example `production`."),
            ),
        ],
        &["session_id", "service", "version", "environment"],
    )
}

fn trigger(engine: &InfraEngine, args: &Args) -> Result<ToolOutput> {
    let new = NewDeployment {
        service: args.required_text("service")?.to_string(),
        version: args.required_text("version")?.to_string(),
        environment: args.required_text("environment")?.to_string(),
    };
    let deployment = engine.deploys().record_deployment(args.session()?, new)?;
    let content = json!({
        "deployment_id": deployment.id,
        "status": deployment.status,
        "deployment": deployment,
    });
    ToolOutput::json(&content, object_metadata(KIND, deployment.id))
}

fn update_status_schema() -> Value {
    schema::object(
        vec![
            ("session_id", schema::session_id()),
            ("deployment_id", schema::uuid("The deployment to move.")),
            ("status", status_schema("The new status.")),
            (
                "reason",
                schema::text("Why; recorded in the deployment's history.", MAX_NOTE),
            ),
        ],
        &["session_id", "deployment_id", "status"],
    )
}

fn update_status(engine: &InfraEngine, args: &Args) -> Result<ToolOutput> {
    let to = args
        .choice("status", DeployStatus::parse)?
        .expect("`status` is required");
    let deployment = engine.deploys().update_status(
        args.session()?,
        args.id("deployment_id")?,
        to,
        args.note("reason"),
    )?;
    ToolOutput::json(
        &json!({ "deployment": deployment }),
        object_metadata(KIND, deployment.id),
    )
}

fn rollback_schema() -> Value {
    schema::object(
        vec![
            ("session_id", schema::session_id()),
            ("service", schema::name("The service to roll back.")),
            ("environment", schema::name("The environment to roll back.")),
            (
                "reason",
                schema::text("Why; recorded in both deployments' history.", MAX_NOTE),
            ),
        ],
        &["session_id", "service", "environment"],
    )
}

fn rollback(engine: &InfraEngine, args: &Args) -> Result<ToolOutput> {
    let rollback = engine.deploys().rollback(
        args.session()?,
        args.required_text("service")?,
        args.required_text("environment")?,
        args.note("reason"),
    )?;
    let content = json!({
        "deployment_id": rollback.deployment.id,
        "deployment": rollback.deployment,
        "rolled_back": rollback.rolled_back,
    });
    ToolOutput::json(&content, object_metadata(KIND, rollback.deployment.id))
}

fn list_schema() -> Value {
    schema::object(
        vec![
            ("session_id", schema::session_id()),
            ("service", schema::name("Only deployments of this service.")),
            (
                "environment",
                schema::name("Only deployments to this environment."),
            ),
            ("status", status_schema("Only deployments in this status.")),
            ("limit", schema::limit()),
            ("offset", schema::offset()),
        ],
        &["session_id"],
    )
}

fn list(engine: &InfraEngine, args: &Args) -> Result<ToolOutput> {
    let query = DeploymentQuery {
        service: args.note("service"),
        environment: args.note("environment"),
        status: args.choice("status", DeployStatus::parse)?,
    };
    let page = engine
        .deploys()
        .list_deployments(args.session()?, &query, args.page())?;
    let metadata = list_metadata(KIND, page.items.len(), page.total);
    let content = json!({
        "deployments": page.items,
        "total": page.total,
        "limit": page.limit,
        "offset": page.offset,
    });
    ToolOutput::json(&content, metadata)
}

fn current_schema() -> Value {
    schema::object(
        vec![
            ("session_id", schema::session_id()),
            ("service", schema::name("Only this service.")),
            ("environment", schema::name("Only this environment.")),
        ],
        &["session_id"],
    )
}

fn current(engine: &InfraEngine, args: &Args) -> Result<ToolOutput> {
    let current = engine.deploys().current_all(
        args.session()?,
        args.text("service"),
        args.text("environment"),
    )?;
    let metadata = list_metadata(KIND, current.len(), current.len() as u64);
    ToolOutput::json(&json!({ "current": current }), metadata)
}
