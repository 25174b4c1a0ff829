//! The foundation: the Infra component loads from a plugin directory, its manifest matches the
//! seed, its four seed tools store and read real data through the SQLite ports, and bad input
//! is refused without storing or emitting anything.

use integration_tests::TestHost;
use serde_json::{json, Value};

const SEED_TOOLS: [&str; 4] = [
    "infra.deploy.trigger",
    "infra.monitor.status",
    "infra.incidents.create",
    "infra.incidents.list",
];

const SEED_EVENTS: [&str; 4] = [
    "infra.deploy.completed",
    "infra.alert.fired",
    "infra.incident.opened",
    "infra.incident.resolved",
];

#[tokio::test]
async fn manifest_matches_the_seed_field_by_field() {
    let t = TestHost::start().await;
    let plugin = t.host.plugin("infra").expect("infra is loaded");
    let manifest = plugin.manifest_json();

    assert_eq!(manifest["id"], "infra");
    assert_eq!(manifest["icon"], ">");
    assert_eq!(manifest["color"], "red");
    assert_eq!(
        manifest["system_prompt"],
        "You are the Infrastructure department of RUSVEL.\n\nFocus: CI/CD pipelines, \
         deployments, monitoring, incident response, performance, cost analysis."
    );
    assert_eq!(
        manifest["capabilities"],
        json!(["deploy", "monitor", "incident"])
    );
    assert_eq!(
        manifest["quick_actions"],
        json!([
            {"label": "Deploy status",
             "prompt": "Show current deployment status across all services and environments."},
            {"label": "Health check", "prompt": "Run health checks on all monitored services."},
            {"label": "Incident report",
             "prompt": "Show open incidents with severity, timeline, and resolution status."},
        ])
    );
    assert_eq!(
        manifest["ui"]["tabs"],
        json!(["actions", "agents", "rules", "events"])
    );
    assert_eq!(manifest["ui"]["dashboard_cards"], json!([]));
    assert_eq!(
        manifest["requires_ports"],
        json!([
            {"port": "StoragePort", "optional": false},
            {"port": "EventPort", "optional": false},
            {"port": "AgentPort", "optional": false},
            {"port": "JobPort", "optional": false},
        ])
    );
    let produced: Vec<&str> = manifest["events_produced"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    for kind in SEED_EVENTS {
        assert!(produced.contains(&kind), "events_produced lacks {kind}");
    }
}

#[tokio::test]
async fn manifest_tools_are_exactly_the_registered_tools() {
    let t = TestHost::start().await;
    let plugin = t.host.plugin("infra").unwrap();
    let mut in_manifest: Vec<String> = plugin
        .manifest()
        .tools
        .iter()
        .map(|t| t.name.clone())
        .collect();
    let mut registered: Vec<String> = plugin
        .registration()
        .tools
        .iter()
        .map(|t| t.name.clone())
        .collect();
    in_manifest.sort();
    registered.sort();

    assert_eq!(in_manifest, registered);
    for tool in SEED_TOOLS {
        assert!(
            registered.iter().any(|name| name == tool),
            "{tool} is not registered"
        );
    }
}

#[tokio::test]
async fn seed_tools_declare_the_seed_parameters() {
    let t = TestHost::start().await;
    let manifest = t.host.plugin("infra").unwrap().manifest_json();
    let expected: [(&str, &[&str]); 4] = [
        (
            "infra.deploy.trigger",
            &["session_id", "service", "version", "environment"],
        ),
        ("infra.monitor.status", &["session_id"]),
        (
            "infra.incidents.create",
            &["session_id", "title", "description", "severity"],
        ),
        ("infra.incidents.list", &["session_id"]),
    ];
    for (name, params) in expected {
        let tool = manifest["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap();
        let schema = &tool["parameters_schema"];
        for param in params {
            assert!(
                schema["properties"].get(*param).is_some(),
                "{name} lacks parameter {param}"
            );
            if *param == "description" {
                // A description may be left out: an incident is often opened before it is
                // understood.
                continue;
            }
            assert!(
                schema["required"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r == param),
                "{name} does not require {param}"
            );
        }
    }
}

#[tokio::test]
async fn trigger_records_a_pending_deployment_in_sqlite() {
    let t = TestHost::start().await;

    let out = t
        .ok(
            "infra.deploy.trigger",
            json!({"service": "rusvel-api", "version": "v0.3.0", "environment": "production"}),
        )
        .await;

    let id = out["deployment_id"].as_str().expect("deployment_id");
    assert_eq!(uuid_version(id), 7, "ids are UUIDv7");
    let stored = t
        .host
        .store()
        .get("infra_deploy", id)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(stored["status"], "pending");
    assert_eq!(stored["service"], "rusvel-api");
    assert_eq!(stored["version"], "v0.3.0");
    assert_eq!(stored["environment"], "production");
    assert_eq!(stored["session_id"], t.session.as_str());
    assert!(stored["created_at"].is_string());
}

#[tokio::test]
async fn stored_data_survives_a_host_restart() {
    let t = TestHost::start().await;
    let out = t
        .ok(
            "infra.deploy.trigger",
            json!({"service": "rusvel-api", "version": "v0.3.0", "environment": "production"}),
        )
        .await;
    let id = out["deployment_id"].as_str().unwrap().to_string();

    let t = t.restart().await;

    assert!(t
        .host
        .store()
        .get("infra_deploy", &id)
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn monitor_status_summarises_checks_of_the_session() {
    let t = TestHost::start().await;
    t.ok(
        "infra.monitor.add_check",
        json!({"service": "api", "endpoint": "http://127.0.0.1:9/"}),
    )
    .await;

    let out = t.ok("infra.monitor.status", json!({})).await;

    assert_eq!(out["checks"].as_array().unwrap().len(), 1);
    assert_eq!(out["checks"][0]["service"], "api");
    assert_eq!(out["summary"]["total"], 1);
    assert!(out["summary"]["down_services"].is_array());
    assert!(out["summary"]["degraded_services"].is_array());
}

#[tokio::test]
async fn opening_an_incident_emits_incident_opened_once() {
    let t = TestHost::start().await;

    let out = t
        .ok(
            "infra.incidents.create",
            json!({"title": "API down", "description": "5xx everywhere", "severity": "P1"}),
        )
        .await;

    let id = out["incident_id"].as_str().unwrap();
    let events = t.events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "infra.incident.opened");
    assert_eq!(events[0].source, "infra", "the host stamps the source");
    assert_eq!(events[0].session_id.as_deref(), Some(t.session.as_str()));
    assert_eq!(events[0].payload["incident_id"], id);
    assert_eq!(events[0].payload["severity"], "P1");
    assert_eq!(events[0].payload["title"], "API down");
}

#[tokio::test]
async fn incidents_list_only_shows_the_callers_session() {
    let t = TestHost::start().await;
    t.ok(
        "infra.incidents.create",
        json!({"title": "mine", "description": "d", "severity": "P3"}),
    )
    .await;
    let other = integration_tests::test_host::new_session();
    t.ok(
        "infra.incidents.create",
        json!({"session_id": other, "title": "theirs", "description": "d", "severity": "P3"}),
    )
    .await;

    let out = t.ok("infra.incidents.list", json!({})).await;

    let titles: Vec<&str> = out["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["mine"]);
}

/// Each bad input is refused with an error naming the problem; nothing is stored or emitted.
#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let t = TestHost::start().await;
    let session = t.session.clone();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "infra.deploy.nonexistent",
            json!({"session_id": session}).to_string(),
            "infra.deploy.nonexistent",
        ),
        (
            "infra.deploy.trigger",
            json!({"service": "a", "version": "1", "environment": "p"}).to_string(),
            "session_id",
        ),
        (
            "infra.deploy.trigger",
            json!({"session_id": "not-a-uuid", "service": "a", "version": "1", "environment": "p"})
                .to_string(),
            "session_id",
        ),
        (
            "infra.deploy.trigger",
            json!({"session_id": session, "service": "a", "version": "1"}).to_string(),
            "environment",
        ),
        (
            "infra.deploy.trigger",
            json!({"session_id": session, "service": 7, "version": "1", "environment": "p"})
                .to_string(),
            "service",
        ),
        (
            "infra.incidents.create",
            json!({"session_id": session, "title": "t", "description": "d", "severity": "P9"})
                .to_string(),
            "severity",
        ),
        (
            "infra.incidents.create",
            json!({"session_id": session, "title": "t", "description": "d"}).to_string(),
            "severity",
        ),
        ("infra.incidents.create", "{not json".to_string(), "JSON"),
        ("infra.incidents.list", "[1,2,3]".to_string(), "object"),
    ];

    for (tool, args, named) in cases {
        let result = t.host.call_tool("infra", tool, &args).await;
        let message = match result {
            Ok(output) if output.is_error => output.content,
            Ok(output) => panic!("{tool} {args} should be refused, got {}", output.content),
            Err(error) => error.to_string(),
        };
        assert!(
            message.to_lowercase().contains(&named.to_lowercase()),
            "{tool} {args}: error `{message}` does not name `{named}`"
        );
    }

    for kind in ["infra_deploy", "infra_incident", "infra_healthcheck"] {
        assert_eq!(
            t.count(kind).await,
            0,
            "{kind} objects were stored by bad input"
        );
    }
    assert!(t.events().await.is_empty(), "bad input emitted events");
}

fn uuid_version(id: &str) -> u32 {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    assert_eq!(hex.len(), 32, "{id} is not a UUID");
    hex[12..13].parse::<u32>().unwrap()
}

#[allow(dead_code)]
fn as_strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// The largest page the schema allows, of incidents with the longest descriptions it allows,
/// still fits the host's cap on one tool output.
#[tokio::test]
async fn the_largest_page_of_the_largest_incidents_fits_the_output_cap() {
    let t = TestHost::start().await;
    let schema = t.host.plugin("infra").unwrap().manifest_json()["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|tool| tool["name"] == "infra.incidents.list")
        .unwrap()["parameters_schema"]
        .clone();
    let max_limit = schema["properties"]["limit"]["maximum"].as_u64().unwrap();
    let description = "d".repeat(10_000);
    for n in 0..max_limit {
        t.ok(
            "infra.incidents.create",
            json!({"title": format!("incident {n}"), "description": description, "severity": "P3"}),
        )
        .await;
    }

    let page = t
        .ok("infra.incidents.list", json!({"limit": max_limit}))
        .await;

    assert_eq!(
        page["incidents"].as_array().unwrap().len() as u64,
        max_limit
    );
}
