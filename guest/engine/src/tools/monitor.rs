//! Monitoring tools: register, change and remove health checks, probe them now, schedule
//! recurring scans, and report the status of all checks with a per-service rollup.

use serde_json::{json, Value};

use super::schema;
use super::{list_metadata, object_metadata, Args, Tool, ToolOutput};
use crate::engine::{InfraEngine, HEALTH_SCAN_JOB};
use crate::error::{EngineError, Result};
use crate::ids::HealthCheckId;
use crate::monitor::check::{
    MAX_BODY_TEXT, MAX_INTERVAL_SECONDS, MAX_RESPONSE_LIMIT_MS, MAX_STATUS_ENTRIES, MAX_THRESHOLD,
    MAX_TIMEOUT_MS,
};
use crate::monitor::{
    rollup, BodyCondition, CheckQuery, CheckSettings, CheckUpdate, NewHealthCheck, StatusRange,
    KIND, MAX_ENDPOINT_LEN,
};
use crate::page::{PageRequest, MAX_LIMIT};
use crate::ports::{JobFilter, JobStatus, LogLevel, NewJob};

/// The longest cron expression accepted.
const MAX_CRON: u64 = 100;

/// The monitoring tools, in registry order.
pub(super) static TOOLS: &[Tool] = &[
    Tool {
        name: "infra.monitor.status",
        description: "List the session's health checks with a status summary: counts of up, \
                      down, degraded and not yet probed checks, the services that are down \
                      or degraded, and each service's rolled-up status (its worst check: \
                      down, then degraded, then up).",
        schema: status_schema,
        handler: status,
    },
    Tool {
        name: "infra.monitor.add_check",
        description: "Register a health check of a service's HTTP(S) endpoint: accepted status \
                      codes (default 200-399, after up to 10 redirects), a response-time limit \
                      (fails at or above it), a degraded threshold below the limit, an optional \
                      body condition (substring, or JSON pointer equals value), failure and \
                      success thresholds, interval and a timeout shorter than the interval. Its \
                      status stays null until probed.",
        schema: add_check_schema,
        handler: add_check,
    },
    Tool {
        name: "infra.monitor.update_check",
        description: "Change a health check's service, endpoint, conditions, thresholds or \
                      timing. Its measured status and counters are kept; the next probe is \
                      judged by the new settings.",
        schema: update_check_schema,
        handler: update_check,
    },
    Tool {
        name: "infra.monitor.remove_check",
        description: "Remove a health check. Its stored probe results stay as history.",
        schema: remove_check_schema,
        handler: remove_check,
    },
    Tool {
        name: "infra.monitor.run",
        description: "Probe one health check (check_id) or every check of the session now. \
                      Returns each probe's outcome (pass, degraded, fail), status code or \
                      transport error category, response time and reason, and the status \
                      transitions; alerts fire only on transitions.",
        schema: run_schema,
        handler: run,
    },
    Tool {
        name: "infra.monitor.schedule",
        description: "Schedule a recurring infra.health_scan job for the session, which probes \
                      the checks that are due. Give a cron expression (for example \
                      `*/1 * * * *`) or every_minutes (1-59). Replaces the session's earlier \
                      scan schedule. Returns job_id.",
        schema: schedule_schema,
        handler: schedule,
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
        "services": rollup(&checks.items),
        "checks": checks.items,
        "total": checks.total,
        "truncated": checks.total > checks.items.len() as u64,
    });
    ToolOutput::json(&content, metadata)
}

fn integer(description: &str, minimum: u64, maximum: u64) -> Value {
    json!({
        "type": "integer",
        "minimum": minimum,
        "maximum": maximum,
        "description": description,
    })
}

/// The conditions, thresholds and timing, shared by `add_check` and `update_check`.
fn settings_properties() -> Vec<(&'static str, Value)> {
    vec![
        (
            "accepted_status",
            json!({
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_STATUS_ENTRIES,
                "items": {
                    "type": ["integer", "string"],
                    "minimum": 100,
                    "maximum": 599,
                    "maxLength": 7,
                    "description": "A status code (204) or an inclusive range (\"200-299\").",
                },
                "description": "Accepted final status codes, after redirects (default \
                                [\"200-399\"]).",
            }),
        ),
        (
            "response_limit_ms",
            integer(
                "A probe taking this many milliseconds or more fails (default 3000).",
                1,
                MAX_RESPONSE_LIMIT_MS,
            ),
        ),
        (
            "degraded_ms",
            integer(
                "A passing probe taking this many milliseconds or more is degraded; must be \
                 below response_limit_ms (default half of it).",
                1,
                MAX_RESPONSE_LIMIT_MS,
            ),
        ),
        (
            "body_contains",
            schema::text(
                "The response body must contain this text (case-sensitive).",
                MAX_BODY_TEXT as u64,
            ),
        ),
        (
            "body_json_pointer",
            json!({
                "type": "string",
                "maxLength": MAX_BODY_TEXT,
                "description": "A JSON pointer (RFC 6901, e.g. `/status`) into the JSON body; \
                                give body_json_equals too.",
            }),
        ),
        (
            "body_json_equals",
            json!({
                "type": ["string", "number", "boolean", "null"],
                "maxLength": MAX_BODY_TEXT,
                "description": "The value expected at body_json_pointer, compared as JSON.",
            }),
        ),
        (
            "failure_threshold",
            integer(
                "Consecutive failed probes that make the check down (default 3).",
                1,
                MAX_THRESHOLD as u64,
            ),
        ),
        (
            "success_threshold",
            integer(
                "Consecutive passing probes that bring a down check back (default 2).",
                1,
                MAX_THRESHOLD as u64,
            ),
        ),
        (
            "interval_seconds",
            integer(
                "Seconds between scheduled probes (default 60).",
                1,
                MAX_INTERVAL_SECONDS,
            ),
        ),
        (
            "timeout_ms",
            integer(
                "The longest a probe waits, redirects included; must be shorter than the \
                 interval (default 5000, or half the interval when shorter).",
                1,
                MAX_TIMEOUT_MS,
            ),
        ),
    ]
}

fn endpoint_schema() -> Value {
    schema::text(
        "The http:// or https:// URL to probe.",
        MAX_ENDPOINT_LEN as u64,
    )
}

fn add_check_schema() -> Value {
    let mut properties = vec![
        ("session_id", schema::session_id()),
        (
            "service",
            schema::name("The service the endpoint belongs to."),
        ),
        ("endpoint", endpoint_schema()),
    ];
    properties.extend(settings_properties());
    schema::object(properties, &["session_id", "service", "endpoint"])
}

/// Reads the settings fields; `clearable` allows `clear_body_condition`.
fn settings(args: &Args) -> Result<CheckSettings> {
    let tool = args.tool();
    let accepted_status = args
        .array("accepted_status")
        .map(|items| {
            items
                .iter()
                .map(|item| match item {
                    Value::String(text) => StatusRange::parse(text),
                    other => StatusRange::parse(&other.to_string()),
                })
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?;
    let contains = args.value("body_contains").and_then(Value::as_str);
    let pointer = args.value("body_json_pointer").and_then(Value::as_str);
    let equals = args.value("body_json_equals");
    let clear = args.boolean("clear_body_condition").unwrap_or(false);
    let refuse = |message: &str| Err(EngineError::validation(format!("{tool}: {message}")));
    let body_condition = match (contains, pointer, equals, clear) {
        (None, None, None, false) => None,
        (None, None, None, true) => Some(None),
        (_, _, _, true) => {
            return refuse("clear_body_condition cannot be combined with a body condition")
        }
        (Some(_), Some(_), _, _) | (Some(_), _, Some(_), _) => {
            return refuse("give body_contains or body_json_pointer, not both")
        }
        (Some(text), None, None, _) => Some(Some(BodyCondition::Contains {
            text: text.to_string(),
        })),
        (None, Some(pointer), Some(equals), _) => Some(Some(BodyCondition::JsonPointer {
            pointer: pointer.to_string(),
            equals: equals.clone(),
        })),
        (None, _, _, _) => {
            return refuse("body_json_pointer and body_json_equals must be given together")
        }
    };
    Ok(CheckSettings {
        accepted_status,
        response_limit_ms: args.u64("response_limit_ms"),
        degraded_ms: args.u64("degraded_ms"),
        body_condition,
        failure_threshold: args.integer("failure_threshold"),
        success_threshold: args.integer("success_threshold"),
        interval_seconds: args.u64("interval_seconds"),
        timeout_ms: args.u64("timeout_ms"),
    })
}

fn add_check(engine: &InfraEngine, args: &Args) -> Result<ToolOutput> {
    let new = NewHealthCheck {
        service: args.required_text("service")?.to_string(),
        endpoint: args.required_text("endpoint")?.to_string(),
        settings: settings(args)?,
    };
    let check = engine.monitor().add_check(args.session()?, new)?;
    ToolOutput::json(
        &json!({ "check_id": check.id, "check": check }),
        object_metadata(KIND, check.id),
    )
}

fn update_check_schema() -> Value {
    let mut properties = vec![
        ("session_id", schema::session_id()),
        ("check_id", schema::uuid("The check to change.")),
        ("service", schema::name("A new service name.")),
        ("endpoint", endpoint_schema()),
        (
            "clear_body_condition",
            json!({
                "type": "boolean",
                "description": "Remove the body condition.",
            }),
        ),
    ];
    properties.extend(settings_properties());
    schema::object(properties, &["session_id", "check_id"])
}

fn update_check(engine: &InfraEngine, args: &Args) -> Result<ToolOutput> {
    let update = CheckUpdate {
        service: args.note("service"),
        endpoint: args.note("endpoint"),
        settings: settings(args)?,
    };
    if update.service.is_none() && update.endpoint.is_none() && update.settings.is_empty() {
        return Err(EngineError::validation(format!(
            "{}: give at least one field to change",
            args.tool()
        )));
    }
    let id: HealthCheckId = args.id("check_id")?;
    let check = engine.monitor().update_check(args.session()?, id, update)?;
    ToolOutput::json(&json!({ "check": check }), object_metadata(KIND, check.id))
}

fn remove_check_schema() -> Value {
    schema::object(
        vec![
            ("session_id", schema::session_id()),
            ("check_id", schema::uuid("The check to remove.")),
        ],
        &["session_id", "check_id"],
    )
}

fn remove_check(engine: &InfraEngine, args: &Args) -> Result<ToolOutput> {
    let id: HealthCheckId = args.id("check_id")?;
    let check = engine.monitor().remove_check(args.session()?, id)?;
    ToolOutput::json(
        &json!({ "removed": true, "check_id": check.id, "check": check }),
        object_metadata(KIND, check.id),
    )
}

fn run_schema() -> Value {
    schema::object(
        vec![
            ("session_id", schema::session_id()),
            (
                "check_id",
                schema::uuid("Probe only this check; without it, every check of the session."),
            ),
        ],
        &["session_id"],
    )
}

fn run(engine: &InfraEngine, args: &Args) -> Result<ToolOutput> {
    let only: Option<HealthCheckId> = args.optional_id("check_id")?;
    let report = engine.monitor().run(args.session()?, only)?;
    let metadata = json!({
        "object_kind": KIND,
        "probed": report.results.len(),
        "transitions": report.transitions.len(),
    });
    let mut content = serde_json::to_value(&report)?;
    content["probed"] = json!(report.results.len());
    ToolOutput::json(&content, metadata)
}

fn schedule_schema() -> Value {
    let mut schema = schema::object(
        vec![
            ("session_id", schema::session_id()),
            (
                "cron",
                schema::text(
                    "A cron expression for the scan, for example `*/1 * * * *` (every minute).",
                    MAX_CRON,
                ),
            ),
            (
                "every_minutes",
                integer(
                    "Scan every this many minutes (1-59); the same as cron `*/N * * * *`.",
                    1,
                    59,
                ),
            ),
        ],
        &["session_id"],
    );
    schema["anyOf"] = json!([{ "required": ["cron"] }, { "required": ["every_minutes"] }]);
    schema
}

/// Accepts 5 or 6 space-separated cron fields of digits, names and `* / , - ? #`; the host's
/// scheduler has the final word.
fn validate_cron(tool: &str, cron: &str) -> Result<()> {
    let fields: Vec<&str> = cron.split_whitespace().collect();
    let valid_field = |field: &&str| {
        field
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '*' | '/' | ',' | '-' | '?' | '#'))
    };
    if !(5..=6).contains(&fields.len()) || !fields.iter().all(valid_field) {
        return Err(EngineError::validation(format!(
            "{tool}: field `cron`: `{cron}` is not a cron expression (5 fields, for example \
             `*/1 * * * *`)"
        )));
    }
    Ok(())
}

fn schedule(engine: &InfraEngine, args: &Args) -> Result<ToolOutput> {
    let tool = args.tool();
    let session = args.session()?;
    let cron = match (args.text("cron"), args.integer("every_minutes")) {
        (Some(_), Some(_)) => {
            return Err(EngineError::validation(format!(
                "{tool}: give cron or every_minutes, not both"
            )))
        }
        (Some(cron), None) => cron.split_whitespace().collect::<Vec<_>>().join(" "),
        (None, Some(minutes)) => format!("*/{minutes} * * * *"),
        (None, None) => {
            return Err(EngineError::validation(format!(
                "{tool}: give at least one of: cron, every_minutes"
            )))
        }
    };
    validate_cron(tool, &cron)?;
    let ports = engine.ports();
    let filter = JobFilter {
        session_id: Some(session.to_string()),
        kinds: vec![HEALTH_SCAN_JOB.to_string()],
        statuses: vec![JobStatus::Queued],
        limit: Some(100),
    };
    let earlier: Vec<String> = ports
        .jobs
        .list(&filter)?
        .into_iter()
        .filter(|job| job.cron.is_some())
        .map(|job| job.id)
        .collect();
    let job = NewJob {
        session_id: session.to_string(),
        kind: HEALTH_SCAN_JOB.to_string(),
        payload: json!({ "session_id": session }),
        max_retries: 0,
        metadata: json!({ "scheduled_by": tool }),
        scheduled_at: None,
    };
    let job_id = ports.jobs.schedule(job, &cron)?;
    let mut replaced = Vec::new();
    for id in earlier {
        match ports.jobs.cancel(&id) {
            Ok(()) => replaced.push(id),
            Err(error) => ports.logger.log(
                LogLevel::Warn,
                &format!("could not cancel the earlier health scan schedule {id}: {error}"),
            ),
        }
    }
    let content = json!({
        "job_id": job_id,
        "kind": HEALTH_SCAN_JOB,
        "cron": cron,
        "replaced_job_ids": replaced,
    });
    ToolOutput::json(
        &content,
        json!({ "object_kind": "job", "object_id": job_id }),
    )
}
