//! The tool registry and tool calls: schemas, argument checks and end-to-end flows.

use serde_json::{json, Value};

use super::args::{OBJECT_KEYWORDS, PROPERTY_KEYWORDS};
use super::*;
use crate::deploy;
use crate::ids::SessionId;
use crate::incident;
use crate::testing::Fixture;

fn call(fx: &Fixture, tool: &str, args: Value) -> Result<Value> {
    fx.engine.call_tool(tool, &args)?.content_json()
}

fn with_session(fx: &Fixture, mut args: Value) -> Value {
    args["session_id"] = json!(fx.session);
    args
}

fn property_names(tool: &str) -> Vec<String> {
    let schema = find(tool).unwrap().parameters_schema();
    let mut names: Vec<String> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    names.sort();
    names
}

#[test]
fn the_registry_holds_every_tool_once() {
    let names: Vec<&str> = registry().map(|tool| tool.name).collect();
    assert_eq!(
        names,
        [
            "infra.deploy.trigger",
            "infra.deploy.update_status",
            "infra.deploy.rollback",
            "infra.deploy.list",
            "infra.deploy.current",
            "infra.monitor.status",
            "infra.monitor.add_check",
            "infra.monitor.update_check",
            "infra.monitor.remove_check",
            "infra.monitor.run",
            "infra.monitor.schedule",
            "infra.incidents.create",
            "infra.incidents.list",
            "infra.incidents.update",
            "infra.incidents.resolve",
            "infra.incidents.reopen",
            "infra.incidents.timeline",
        ]
    );
}

/// Whether a property schema bounds its values' size.
fn bounded(property: &Value) -> bool {
    property["maxLength"].is_u64()
        || property["enum"].is_array()
        || property["format"] == "uuid"
        || property["type"] == "integer"
        || property["type"] == "boolean"
        || (property["type"] == "array"
            && property["maxItems"].is_u64()
            && bounded(&property["items"]))
}

#[test]
fn the_original_tools_keep_their_parameters() {
    assert_eq!(
        property_names("infra.deploy.trigger"),
        ["environment", "service", "session_id", "version"]
    );
    assert_eq!(property_names("infra.monitor.status"), ["session_id"]);
    assert_eq!(
        property_names("infra.incidents.create"),
        ["description", "session_id", "severity", "title"]
    );
    assert!(property_names("infra.incidents.list").contains(&"session_id".to_string()));
}

#[test]
fn every_schema_is_strict_and_within_the_checked_subset() {
    for tool in registry() {
        let schema = tool.parameters_schema();
        assert_eq!(schema["type"], "object", "{}", tool.name);
        assert_eq!(schema["additionalProperties"], false, "{}", tool.name);
        for key in schema.as_object().unwrap().keys() {
            assert!(
                OBJECT_KEYWORDS.contains(&key.as_str()),
                "{}: {key}",
                tool.name
            );
        }
        let properties = schema["properties"].as_object().unwrap();
        for required in schema["required"].as_array().unwrap() {
            assert!(
                properties.contains_key(required.as_str().unwrap()),
                "{}",
                tool.name
            );
        }
        assert!(schema["required"]
            .as_array()
            .unwrap()
            .contains(&json!("session_id")));
        for (name, property) in properties {
            for key in property.as_object().unwrap().keys() {
                assert!(
                    PROPERTY_KEYWORDS.contains(&key.as_str()),
                    "{}.{name}: {key}",
                    tool.name
                );
            }
            assert!(property["description"].is_string(), "{}.{name}", tool.name);
            assert!(bounded(property), "{}.{name} is unbounded", tool.name);
        }
    }
}

#[test]
fn trigger_records_a_pending_deployment_and_returns_its_id() {
    let fx = Fixture::new();
    let args = with_session(
        &fx,
        json!({"service": "api", "version": "v1", "environment": "prod"}),
    );
    let output = fx.engine.call_tool("infra.deploy.trigger", &args).unwrap();
    assert!(!output.is_error);
    let content = output.content_json().unwrap();
    let id = content["deployment_id"].as_str().unwrap();
    assert_eq!(content["status"], "pending");
    assert_eq!(output.metadata["object_id"], id);
    assert_eq!(fx.stored(deploy::KIND, id).0["service"], "api");
}

#[test]
fn invalid_arguments_are_refused_naming_the_field_and_store_nothing() {
    let fx = Fixture::new();
    let valid = with_session(
        &fx,
        json!({"title": "Down", "description": "x", "severity": "P1"}),
    );
    let mut cases: Vec<(Value, &str)> = vec![
        (json!("not an object"), "JSON object"),
        (json!([1, 2]), "JSON object"),
        (json!({"title": "Down", "severity": "P1"}), "session_id"),
        (
            json!({"session_id": "not-a-uuid", "title": "Down", "severity": "P1"}),
            "session_id",
        ),
    ];
    let mut patch = |field: &str, value: Value, expected: &'static str| {
        let mut args = valid.clone();
        if value.is_null() {
            args.as_object_mut().unwrap().remove(field);
        } else {
            args[field] = value;
        }
        cases.push((args, expected));
    };
    patch("title", Value::Null, "title");
    patch("title", json!(7), "title");
    patch("title", json!(""), "title");
    patch("title", json!("   "), "title");
    patch("title", json!("x".repeat(201)), "title");
    patch("description", json!("x".repeat(10_001)), "description");
    patch("severity", json!("P5"), "severity");
    patch("severity", json!("critical"), "severity");
    patch("colour", json!("red"), "colour");

    for (args, field) in cases {
        let error = fx
            .engine
            .call_tool("infra.incidents.create", &args)
            .unwrap_err();
        let EngineError::Validation(message) = &error else {
            panic!("{error:?}")
        };
        assert!(message.contains("infra.incidents.create"), "{message}");
        assert!(message.contains(field), "{message} should name {field}");
    }
    assert_eq!(fx.ports.objects.writes(), 0);
    assert!(fx.event_kinds().is_empty());
}

#[test]
fn severity_is_accepted_in_any_case_and_stored_upper_case() {
    let fx = Fixture::new();
    let args = with_session(&fx, json!({"title": "Slow", "severity": "p2"}));
    let content = call(&fx, "infra.incidents.create", args).unwrap();
    assert_eq!(content["incident"]["severity"], "P2");
    assert_eq!(content["incident"]["description"], "");
}

#[test]
fn an_unknown_tool_is_not_found() {
    let fx = Fixture::new();
    let error = fx
        .engine
        .call_tool("infra.deploy.launch", &json!({}))
        .unwrap_err();
    assert_eq!(error, EngineError::not_found("tool", "infra.deploy.launch"));
}

#[test]
fn arguments_that_are_not_json_are_a_validation_error() {
    let fx = Fixture::new();
    let error = fx
        .engine
        .call_tool_json("infra.incidents.list", "{not json")
        .unwrap_err();
    assert!(matches!(error, EngineError::Validation(m) if m.contains("not valid JSON")));
}

#[test]
fn incident_lists_filter_and_page() {
    let fx = Fixture::new();
    for severity in ["P1", "P2", "P2", "P3"] {
        call(
            &fx,
            "infra.incidents.create",
            with_session(&fx, json!({"title": "t", "severity": severity})),
        )
        .unwrap();
    }
    let all = call(&fx, "infra.incidents.list", with_session(&fx, json!({}))).unwrap();
    assert_eq!(
        (all["total"].as_u64(), all["limit"].as_u64()),
        (Some(4), Some(50))
    );
    let p2 = call(
        &fx,
        "infra.incidents.list",
        with_session(&fx, json!({"severity": "p2", "status": "open"})),
    )
    .unwrap();
    assert_eq!(p2["incidents"].as_array().unwrap().len(), 2);
    let paged = call(
        &fx,
        "infra.incidents.list",
        with_session(&fx, json!({"limit": 1, "offset": 3})),
    )
    .unwrap();
    assert_eq!(paged["incidents"][0]["severity"], "P1");
    for limit in [0, 501] {
        let error = call(
            &fx,
            "infra.incidents.list",
            with_session(&fx, json!({"limit": limit})),
        )
        .unwrap_err();
        assert!(matches!(error, EngineError::Validation(m) if m.contains("limit")));
    }
}

#[test]
fn a_deployment_goes_through_its_lifecycle_by_tool() {
    let fx = Fixture::new();
    let mut ids = Vec::new();
    for version in ["v1", "v2"] {
        let args = json!({"service": "api", "version": version, "environment": "prod"});
        let created = call(&fx, "infra.deploy.trigger", with_session(&fx, args)).unwrap();
        let id = created["deployment_id"].clone();
        for status in ["in_progress", "deployed"] {
            let args = json!({"deployment_id": id, "status": status, "reason": "pipeline"});
            call(&fx, "infra.deploy.update_status", with_session(&fx, args)).unwrap();
        }
        ids.push(id);
    }
    let current = call(&fx, "infra.deploy.current", with_session(&fx, json!({}))).unwrap();
    assert_eq!(current["current"][0]["version"], "v2");

    let args = json!({"service": "api", "environment": "prod", "reason": "errors"});
    let rollback = call(&fx, "infra.deploy.rollback", with_session(&fx, args)).unwrap();
    assert_eq!(rollback["deployment"]["version"], "v1");
    assert_eq!(rollback["rolled_back"]["id"], ids[1]);

    let args = json!({"status": "rolled_back"});
    let listed = call(&fx, "infra.deploy.list", with_session(&fx, args)).unwrap();
    assert_eq!(listed["total"], 1);

    let args = json!({"deployment_id": ids[0], "status": "rolled_back"});
    let error = call(&fx, "infra.deploy.update_status", with_session(&fx, args)).unwrap_err();
    assert_eq!(error, EngineError::invalid_state("deployed", "rolled_back"));
}

#[test]
fn an_incident_goes_through_its_lifecycle_by_tool() {
    let fx = Fixture::new();
    let args = json!({"title": "API down", "description": "502s", "severity": "P2"});
    let created = call(&fx, "infra.incidents.create", with_session(&fx, args)).unwrap();
    let id = created["incident_id"].clone();

    let args = json!({"incident_id": id, "status": "investigating", "severity": "P1"});
    call(&fx, "infra.incidents.update", with_session(&fx, args)).unwrap();
    let args = json!({"incident_id": id, "note": "rolled back"});
    let resolved = call(
        &fx,
        "infra.incidents.resolve",
        with_session(&fx, args.clone()),
    )
    .unwrap();
    assert_eq!(resolved["incident"]["status"], "resolved");
    call(
        &fx,
        "infra.incidents.resolve",
        with_session(&fx, args.clone()),
    )
    .unwrap();
    let reopened = call(&fx, "infra.incidents.reopen", with_session(&fx, args)).unwrap();
    assert_eq!(reopened["incident"]["status"], "open");

    let timeline = call(
        &fx,
        "infra.incidents.timeline",
        with_session(&fx, json!({"incident_id": id})),
    )
    .unwrap();
    let steps: Vec<(String, String)> = timeline["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["from"].as_str().unwrap().into(),
                e["to"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected = [
        ("open", "investigating"),
        ("P2", "P1"),
        ("investigating", "resolved"),
        ("resolved", "open"),
    ];
    assert_eq!(steps, expected.map(|(a, b)| (a.to_string(), b.to_string())));
    use crate::events::*;
    let expected = [
        INCIDENT_OPENED,
        INCIDENT_STATUS_CHANGED,
        INCIDENT_SEVERITY_CHANGED,
        INCIDENT_RESOLVED,
        INCIDENT_REOPENED,
    ];
    assert_eq!(fx.event_kinds(), expected);
}

#[test]
fn an_incident_update_needs_a_status_or_a_severity() {
    let fx = Fixture::new();
    let created = call(
        &fx,
        "infra.incidents.create",
        with_session(&fx, json!({"title": "t", "severity": "P3"})),
    )
    .unwrap();
    let args = json!({"incident_id": created["incident_id"], "note": "hm"});
    let error = call(&fx, "infra.incidents.update", with_session(&fx, args)).unwrap_err();
    let EngineError::Validation(message) = error else {
        panic!("{error:?}")
    };
    assert!(
        message.contains("status") && message.contains("severity"),
        "{message}"
    );
}

#[test]
fn ids_of_another_session_are_not_found() {
    let fx = Fixture::new();
    let created = call(
        &fx,
        "infra.incidents.create",
        with_session(&fx, json!({"title": "t", "severity": "P3"})),
    )
    .unwrap();
    let args = json!({"session_id": SessionId::new(), "incident_id": created["incident_id"]});
    let error = call(&fx, "infra.incidents.timeline", args).unwrap_err();
    assert!(matches!(error, EngineError::NotFound { kind, .. } if kind == incident::KIND));
}

#[test]
fn monitor_status_returns_checks_and_a_summary() {
    let fx = Fixture::new();
    let args = json!({"service": "api", "endpoint": "https://api.test/health"});
    let added = call(&fx, "infra.monitor.add_check", with_session(&fx, args)).unwrap();
    assert!(added["check_id"].is_string());
    let status = call(&fx, "infra.monitor.status", with_session(&fx, json!({}))).unwrap();
    assert_eq!(status["summary"]["total"], 1);
    assert_eq!(status["summary"]["unchecked"], 1);
    assert_eq!(status["checks"][0]["endpoint"], "https://api.test/health");
    assert_eq!(status["truncated"], false);
}

#[test]
fn add_check_takes_conditions_and_refuses_broken_rules() {
    let fx = Fixture::new();
    let args = json!({
        "service": "api",
        "endpoint": "https://api.test/health",
        "accepted_status": ["200-299", 304],
        "response_limit_ms": 800,
        "degraded_ms": 300,
        "body_json_pointer": "/status",
        "body_json_equals": "ok",
        "failure_threshold": 4,
        "success_threshold": 1,
        "interval_seconds": 30,
        "timeout_ms": 2000,
    });
    let added = call(&fx, "infra.monitor.add_check", with_session(&fx, args)).unwrap();
    let check = &added["check"];
    assert_eq!(
        check["accepted_status"],
        json!([{"from": 200, "to": 299}, {"from": 304, "to": 304}])
    );
    assert_eq!(
        check["body_condition"],
        json!({"kind": "json_pointer", "pointer": "/status", "equals": "ok"})
    );
    assert_eq!(check["status"], json!(null));
    assert_eq!(
        (
            check["failure_threshold"].clone(),
            check["timeout_ms"].clone()
        ),
        (json!(4), json!(2000))
    );

    let refused = [
        (json!({"accepted_status": ["2xx"]}), "accepted_status"),
        (json!({"accepted_status": [99]}), "accepted_status"),
        (json!({"accepted_status": []}), "accepted_status"),
        (
            json!({"timeout_ms": 30000, "interval_seconds": 30}),
            "interval_seconds",
        ),
        (json!({"degraded_ms": 4000}), "degraded_ms"),
        (json!({"body_json_pointer": "/a"}), "body_json_equals"),
        (
            json!({"body_contains": "x", "body_json_pointer": "/a", "body_json_equals": 1}),
            "not both",
        ),
        (
            json!({"body_json_pointer": "status", "body_json_equals": 1}),
            "body_json_pointer",
        ),
        (json!({"failure_threshold": 0}), "failure_threshold"),
        (
            json!({"clear_body_condition": true}),
            "clear_body_condition",
        ),
    ];
    for (extra, field) in refused {
        let mut args = json!({"service": "web", "endpoint": "https://web.test/"});
        for (key, value) in extra.as_object().unwrap() {
            args[key] = value.clone();
        }
        let error = call(&fx, "infra.monitor.add_check", with_session(&fx, args)).unwrap_err();
        let EngineError::Validation(message) = &error else {
            panic!("{error:?}")
        };
        assert!(message.contains(field), "{message} should name {field}");
    }
    assert_eq!(fx.ports.objects.len(crate::monitor::KIND), 1);
}

#[test]
fn checks_are_updated_removed_and_run_by_tool() {
    let fx = Fixture::new();
    let args = json!({"service": "api", "endpoint": "http://api.test/", "body_contains": "ok"});
    let added = call(&fx, "infra.monitor.add_check", with_session(&fx, args)).unwrap();
    let id = added["check_id"].clone();
    fx.ports.http.set(
        "http://api.test/",
        crate::memory::HttpReply::status(200, "all ok", 3),
    );

    let args = json!({"check_id": id, "clear_body_condition": true, "timeout_ms": 1000});
    let updated = call(&fx, "infra.monitor.update_check", with_session(&fx, args)).unwrap();
    assert_eq!(updated["check"]["body_condition"], json!(null));
    assert_eq!(updated["check"]["timeout_ms"], 1000);
    let error = call(
        &fx,
        "infra.monitor.update_check",
        with_session(&fx, json!({"check_id": id})),
    )
    .unwrap_err();
    assert!(matches!(error, EngineError::Validation(m) if m.contains("at least one")));

    let run = call(&fx, "infra.monitor.run", with_session(&fx, json!({}))).unwrap();
    assert_eq!(run["probed"], 1);
    assert_eq!(run["results"][0]["outcome"], "pass");
    assert_eq!(run["results"][0]["status_code"], 200);
    assert_eq!(
        run["transitions"],
        json!([{"check_id": id, "service": "api", "from": null, "to": "up"}])
    );
    let status = call(&fx, "infra.monitor.status", with_session(&fx, json!({}))).unwrap();
    assert_eq!(status["services"][0]["status"], "up");

    let removed = call(
        &fx,
        "infra.monitor.remove_check",
        with_session(&fx, json!({"check_id": id})),
    )
    .unwrap();
    assert_eq!(removed["removed"], true);
    let error = call(
        &fx,
        "infra.monitor.run",
        with_session(&fx, json!({"check_id": id})),
    )
    .unwrap_err();
    assert!(matches!(error, EngineError::NotFound { .. }));
}

#[test]
fn schedule_queues_a_recurring_scan_and_replaces_the_earlier_one() {
    use crate::ports::{JobFilter, JobQueue, JobStatus};
    let fx = Fixture::new();
    let first = call(
        &fx,
        "infra.monitor.schedule",
        with_session(&fx, json!({"cron": "*/1  * * * *"})),
    )
    .unwrap();
    assert_eq!(first["cron"], "*/1 * * * *");
    let second = call(
        &fx,
        "infra.monitor.schedule",
        with_session(&fx, json!({"every_minutes": 10})),
    )
    .unwrap();
    assert_eq!(second["cron"], "*/10 * * * *");
    assert_eq!(second["replaced_job_ids"], json!([first["job_id"]]));
    let jobs = fx.ports.jobs.list(&JobFilter::default()).unwrap();
    let newest = &jobs[0];
    assert_eq!(newest.kind, "infra.health_scan");
    assert_eq!(newest.payload, json!({"session_id": fx.session}));
    assert_eq!(newest.cron.as_deref(), Some("*/10 * * * *"));
    assert_eq!(jobs[1].status, JobStatus::Cancelled);

    for (args, expected) in [
        (json!({}), "cron"),
        (json!({"cron": "* * * * *", "every_minutes": 1}), "not both"),
        (json!({"cron": "every minute"}), "cron"),
        (json!({"every_minutes": 60}), "every_minutes"),
    ] {
        let error = call(&fx, "infra.monitor.schedule", with_session(&fx, args)).unwrap_err();
        assert!(
            matches!(&error, EngineError::Validation(m) if m.contains(expected)),
            "{error:?}"
        );
    }
}
