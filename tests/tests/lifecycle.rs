//! Deployment and incident lifecycles through the built component: every allowed and every
//! refused transition, rollback, idempotent resolve, timelines, and the exact events.

use integration_tests::TestHost;
use rusvel_host::{HostError, PortError};
use serde_json::{json, Value};

const DEPLOY_STATES: [&str; 5] = [
    "pending",
    "in_progress",
    "deployed",
    "failed",
    "rolled_back",
];
const DEPLOY_ALLOWED: [(&str, &str); 4] = [
    ("pending", "in_progress"),
    ("pending", "failed"),
    ("in_progress", "deployed"),
    ("in_progress", "failed"),
];

const INCIDENT_STATES: [&str; 4] = ["open", "investigating", "mitigated", "resolved"];
const INCIDENT_ALLOWED: [(&str, &str); 5] = [
    ("open", "investigating"),
    ("investigating", "mitigated"),
    ("investigating", "resolved"),
    ("mitigated", "resolved"),
    ("mitigated", "investigating"),
];

// ---- deployments ----

async fn trigger(t: &TestHost, service: &str, version: &str, env: &str) -> String {
    let out = t
        .ok(
            "infra.deploy.trigger",
            json!({"service": service, "version": version, "environment": env}),
        )
        .await;
    out["deployment_id"].as_str().unwrap().to_string()
}

async fn move_deploy(t: &TestHost, id: &str, status: &str) -> Result<Value, String> {
    match t
        .call(
            "infra.deploy.update_status",
            json!({"deployment_id": id, "status": status}),
        )
        .await
    {
        Ok(out) if !out.is_error => Ok(serde_json::from_str(&out.content).unwrap()),
        Ok(out) => Err(out.content),
        Err(error) => Err(error_text(&error)),
    }
}

async fn deployed(t: &TestHost, service: &str, version: &str, env: &str) -> String {
    let id = trigger(t, service, version, env).await;
    move_deploy(t, &id, "in_progress").await.unwrap();
    move_deploy(t, &id, "deployed").await.unwrap();
    id
}

/// A deployment of `svc` that is in `state`, built through allowed moves only.
async fn deploy_in_state(t: &TestHost, svc: &str, state: &str) -> String {
    match state {
        "pending" => trigger(t, svc, "v1", "prod").await,
        "in_progress" => {
            let id = trigger(t, svc, "v1", "prod").await;
            move_deploy(t, &id, "in_progress").await.unwrap();
            id
        }
        "deployed" => deployed(t, svc, "v1", "prod").await,
        "failed" => {
            let id = trigger(t, svc, "v1", "prod").await;
            move_deploy(t, &id, "failed").await.unwrap();
            id
        }
        "rolled_back" => {
            let first = deployed(t, svc, "v1", "prod").await;
            deployed(t, svc, "v2", "prod").await;
            t.ok(
                "infra.deploy.rollback",
                json!({"service": svc, "environment": "prod"}),
            )
            .await;
            let _ = first;
            let list = t
                .ok(
                    "infra.deploy.list",
                    json!({"service": svc, "status": "rolled_back"}),
                )
                .await;
            list["deployments"][0]["id"].as_str().unwrap().to_string()
        }
        other => panic!("unknown state {other}"),
    }
}

async fn stored_deploy(t: &TestHost, id: &str) -> Value {
    t.host
        .store()
        .get("infra_deploy", id)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn every_deployment_move_is_allowed_or_refused_exactly_per_the_rules() {
    let t = TestHost::start().await;
    for (index, from) in DEPLOY_STATES.iter().enumerate() {
        for to in DEPLOY_STATES {
            let service = format!("svc-{index}-{to}");
            let id = deploy_in_state(&t, &service, from).await;
            let before = stored_deploy(&t, &id).await;
            let events_before = t.events().await.len();

            let result = move_deploy(&t, &id, to).await;

            if DEPLOY_ALLOWED.contains(&(*from, to)) {
                let moved = result.unwrap_or_else(|e| panic!("{from} -> {to} refused: {e}"));
                assert_eq!(moved["deployment"]["status"], to);
                let history = moved["deployment"]["history"].as_array().unwrap();
                let last = history.last().unwrap();
                assert_eq!(
                    (last["from"].as_str(), last["to"].as_str()),
                    (Some(*from), Some(to))
                );
            } else {
                let error = result
                    .err()
                    .unwrap_or_else(|| panic!("{from} -> {to} was allowed"));
                assert!(
                    error.contains("invalid state") && error.contains(from) && error.contains(to),
                    "{from} -> {to}: {error}"
                );
                assert_eq!(
                    stored_deploy(&t, &id).await,
                    before,
                    "{from} -> {to} changed data"
                );
                assert_eq!(
                    t.events().await.len(),
                    events_before,
                    "{from} -> {to} emitted"
                );
            }
        }
    }
}

#[tokio::test]
async fn becoming_deployed_emits_deploy_completed_once_with_the_deployment() {
    let t = TestHost::start().await;
    let id = deployed(&t, "rusvel-api", "v0.3.0", "production").await;

    let events = t.events().await;
    let completed: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "infra.deploy.completed")
        .collect();
    assert_eq!(completed.len(), 1);
    let payload = &completed[0].payload;
    assert_eq!(payload["deployment_id"], id.as_str());
    assert_eq!(payload["service"], "rusvel-api");
    assert_eq!(payload["version"], "v0.3.0");
    assert_eq!(payload["environment"], "production");
    assert_eq!(completed[0].session_id.as_deref(), Some(t.session.as_str()));
    assert!(stored_deploy(&t, &id).await["deployed_at"].is_string());
}

#[tokio::test]
async fn rollback_records_a_new_deployment_of_the_previous_version() {
    let t = TestHost::start().await;
    let v1 = deployed(&t, "api", "v1", "prod").await;
    let v2 = deployed(&t, "api", "v2", "prod").await;

    let out = t
        .ok(
            "infra.deploy.rollback",
            json!({"service": "api", "environment": "prod", "reason": "5xx"}),
        )
        .await;

    let text = out.to_string();
    let current = t
        .ok(
            "infra.deploy.current",
            json!({"service": "api", "environment": "prod"}),
        )
        .await;
    assert_eq!(
        current["current"][0]["version"], "v1",
        "rollback output: {text}"
    );
    let new_id = current["current"][0]["id"].as_str().unwrap();
    assert_ne!(new_id, v1, "rollback records a new deployment");
    assert_ne!(new_id, v2);
    assert_eq!(stored_deploy(&t, &v2).await["status"], "rolled_back");
    assert_eq!(
        stored_deploy(&t, &v1).await["status"],
        "deployed",
        "the old record is untouched"
    );
    assert_eq!(
        stored_deploy(&t, new_id).await["metadata"]["rollback_of"],
        v2.as_str()
    );
}

#[tokio::test]
async fn rollback_without_earlier_deploy_is_refused() {
    let t = TestHost::start().await;
    let only = deployed(&t, "api", "v1", "prod").await;
    let before = stored_deploy(&t, &only).await;
    let events_before = t.events().await.len();

    let error = t
        .refused(
            "infra.deploy.rollback",
            json!({"service": "api", "environment": "prod"}),
        )
        .await;

    assert!(
        error.contains("api") && error.contains("prod"),
        "error names the target: {error}"
    );
    assert_eq!(stored_deploy(&t, &only).await, before);
    assert_eq!(t.count("infra_deploy").await, 1);
    assert_eq!(t.events().await.len(), events_before);
}

#[tokio::test]
async fn current_version_is_the_deployment_that_finished_last() {
    let t = TestHost::start().await;
    let early = trigger(&t, "api", "v2", "prod").await;
    let late = trigger(&t, "api", "v3", "prod").await;
    move_deploy(&t, &early, "in_progress").await.unwrap();
    move_deploy(&t, &late, "in_progress").await.unwrap();
    // v3 started later but finishes first; v2 finishes last and is what runs.
    move_deploy(&t, &late, "deployed").await.unwrap();
    move_deploy(&t, &early, "deployed").await.unwrap();

    let current = t
        .ok(
            "infra.deploy.current",
            json!({"service": "api", "environment": "prod"}),
        )
        .await;

    assert_eq!(current["current"][0]["version"], "v2");
}

#[tokio::test]
async fn deploy_list_filters_and_pages_in_the_store() {
    let t = TestHost::start().await;
    for n in 0..5 {
        trigger(&t, "api", &format!("v{n}"), "prod").await;
    }
    trigger(&t, "web", "v1", "prod").await;
    trigger(&t, "api", "v9", "staging").await;

    let page = t
        .ok(
            "infra.deploy.list",
            json!({"service": "api", "environment": "prod", "limit": 2, "offset": 1}),
        )
        .await;

    assert_eq!(page["total"], 5);
    let versions: Vec<&str> = page["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["version"].as_str().unwrap())
        .collect();
    assert_eq!(
        versions,
        ["v3", "v2"],
        "newest first, one skipped, two returned"
    );
}

// ---- incidents ----

async fn open(t: &TestHost, title: &str) -> String {
    let out = t
        .ok(
            "infra.incidents.create",
            json!({"title": title, "description": "d", "severity": "P2"}),
        )
        .await;
    out["incident_id"].as_str().unwrap().to_string()
}

async fn set_status(t: &TestHost, id: &str, status: &str) -> Result<Value, String> {
    match t
        .call(
            "infra.incidents.update",
            json!({"incident_id": id, "status": status}),
        )
        .await
    {
        Ok(out) if !out.is_error => Ok(serde_json::from_str(&out.content).unwrap()),
        Ok(out) => Err(out.content),
        Err(error) => Err(error_text(&error)),
    }
}

async fn incident_in_state(t: &TestHost, state: &str) -> String {
    let id = open(t, state).await;
    let path: &[&str] = match state {
        "open" => &[],
        "investigating" => &["investigating"],
        "mitigated" => &["investigating", "mitigated"],
        "resolved" => &["investigating", "mitigated", "resolved"],
        other => panic!("unknown state {other}"),
    };
    for step in path {
        set_status(t, &id, step).await.unwrap();
    }
    id
}

async fn stored_incident(t: &TestHost, id: &str) -> Value {
    t.host
        .store()
        .get("infra_incident", id)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn every_incident_move_is_allowed_or_refused_exactly_per_the_rules() {
    let t = TestHost::start().await;
    for from in INCIDENT_STATES {
        for to in INCIDENT_STATES {
            let id = incident_in_state(&t, from).await;
            let before = stored_incident(&t, &id).await;
            let events_before = t.events().await.len();

            let result = set_status(&t, &id, to).await;

            if INCIDENT_ALLOWED.contains(&(from, to)) {
                let moved = result.unwrap_or_else(|e| panic!("{from} -> {to} refused: {e}"));
                assert_eq!(moved["incident"]["status"], to, "{from} -> {to}");
                assert_eq!(
                    t.events().await.len(),
                    events_before + 1,
                    "{from} -> {to}: one event"
                );
            } else if (from, to) == ("resolved", "resolved") {
                // Resolving a resolved incident is the idempotent case, tested on its own.
                continue;
            } else {
                let error = result
                    .err()
                    .unwrap_or_else(|| panic!("{from} -> {to} was allowed"));
                assert!(error.contains("invalid state"), "{from} -> {to}: {error}");
                assert_eq!(
                    stored_incident(&t, &id).await,
                    before,
                    "{from} -> {to} changed data"
                );
                assert_eq!(
                    t.events().await.len(),
                    events_before,
                    "{from} -> {to} emitted"
                );
            }
        }
    }
}

#[tokio::test]
async fn resolving_a_resolved_incident_changes_nothing_and_emits_nothing() {
    let t = TestHost::start().await;
    let id = incident_in_state(&t, "resolved").await;
    let before = stored_incident(&t, &id).await;
    let events_before = t.events().await.len();

    let out = t
        .ok(
            "infra.incidents.resolve",
            json!({"incident_id": id, "note": "again"}),
        )
        .await;

    assert_eq!(out["incident"]["status"], "resolved");
    assert_eq!(stored_incident(&t, &id).await, before);
    assert_eq!(t.events().await.len(), events_before);
}

#[tokio::test]
async fn resolving_from_investigating_sets_mitigated_at_to_resolved_at() {
    let t = TestHost::start().await;
    let id = incident_in_state(&t, "investigating").await;

    t.ok("infra.incidents.resolve", json!({"incident_id": id}))
        .await;

    let stored = stored_incident(&t, &id).await;
    assert!(stored["resolved_at"].is_string());
    assert_eq!(stored["mitigated_at"], stored["resolved_at"]);
}

#[tokio::test]
async fn reopen_is_the_only_way_out_of_resolved() {
    let t = TestHost::start().await;
    let id = incident_in_state(&t, "resolved").await;

    let out = t
        .ok(
            "infra.incidents.reopen",
            json!({"incident_id": id, "note": "it came back"}),
        )
        .await;

    assert_eq!(out["incident"]["status"], "open");
    assert!(stored_incident(&t, &id).await["resolved_at"].is_null());
    let open_id = open(&t, "never resolved").await;
    let error = t
        .refused("infra.incidents.reopen", json!({"incident_id": open_id}))
        .await;
    assert!(error.contains("invalid state"), "{error}");
}

#[tokio::test]
async fn the_timeline_records_every_change_in_order_with_notes() {
    let t = TestHost::start().await;
    let id = open(&t, "db down").await;
    t.ok(
        "infra.incidents.update",
        json!({"incident_id": id, "status": "investigating", "note": "paged"}),
    )
    .await;
    t.ok(
        "infra.incidents.update",
        json!({"incident_id": id, "severity": "P1", "note": "all users"}),
    )
    .await;
    t.ok(
        "infra.incidents.update",
        json!({"incident_id": id, "status": "mitigated", "note": "failover"}),
    )
    .await;
    t.ok(
        "infra.incidents.resolve",
        json!({"incident_id": id, "note": "fixed"}),
    )
    .await;

    let out = t
        .ok("infra.incidents.timeline", json!({"incident_id": id}))
        .await;

    let entries = out["timeline"].as_array().expect("timeline array");
    let summary: Vec<(String, String, String, String)> = entries
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("field"), s("from"), s("to"), s("note"))
        })
        .collect();
    let expected = [
        ("status", "open", "investigating", "paged"),
        ("severity", "P2", "P1", "all users"),
        ("status", "investigating", "mitigated", "failover"),
        ("status", "mitigated", "resolved", "fixed"),
    ];
    let expected: Vec<(String, String, String, String)> = expected
        .iter()
        .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
        .collect();
    assert_eq!(summary, expected);
    let times: Vec<&str> = entries.iter().map(|e| e["at"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "timeline times never go backwards");
}

#[tokio::test]
async fn scripted_scenario_emits_each_event_exactly_once_in_order() {
    let t = TestHost::start().await;

    // Deploy v1 and v2, then roll back.
    let v1 = deployed(&t, "api", "v1", "prod").await;
    let v2 = deployed(&t, "api", "v2", "prod").await;
    t.ok(
        "infra.deploy.rollback",
        json!({"service": "api", "environment": "prod"}),
    )
    .await;
    // Open -> investigate -> mitigate -> resolve -> resolve again.
    let incident = open(&t, "api errors").await;
    set_status(&t, &incident, "investigating").await.unwrap();
    set_status(&t, &incident, "mitigated").await.unwrap();
    t.ok("infra.incidents.resolve", json!({"incident_id": incident}))
        .await;
    t.ok("infra.incidents.resolve", json!({"incident_id": incident}))
        .await;

    let kinds = t.event_kinds().await;
    assert_eq!(
        kinds,
        [
            "infra.deploy.started",
            "infra.deploy.completed",
            "infra.deploy.started",
            "infra.deploy.completed",
            "infra.deploy.rolled_back",
            "infra.deploy.started",
            "infra.deploy.completed",
            "infra.incident.opened",
            "infra.incident.status_changed",
            "infra.incident.status_changed",
            "infra.incident.resolved",
        ]
    );
    let events = t.events().await;
    let completed_ids: Vec<&Value> = events
        .iter()
        .filter(|e| e.kind == "infra.deploy.completed")
        .map(|e| &e.payload["deployment_id"])
        .collect();
    assert_eq!(completed_ids[0], &json!(v1));
    assert_eq!(completed_ids[1], &json!(v2));
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == "infra.incident.resolved")
            .count(),
        1
    );
    let resolved = events
        .iter()
        .find(|e| e.kind == "infra.incident.resolved")
        .unwrap();
    assert_eq!(resolved.payload["incident_id"], incident.as_str());
}

fn error_text(error: &HostError) -> String {
    match error {
        HostError::Plugin {
            error: PortError::InvalidState { from, to },
            ..
        } => {
            format!("invalid state change from {from} to {to}")
        }
        other => other.to_string(),
    }
}
