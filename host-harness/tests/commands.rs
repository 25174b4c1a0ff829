//! Commands the Infra manifest contributes (`rusvel-host infra deploy ...`), and the
//! `worker` and `jobs` commands, run as separate processes over one data directory.
//!
//! Needs the built Infra component: `$INFRA_COMPONENT` (set by `make test`) or the
//! workspace's `guest-release` build.

use std::time::Duration;

use serde_json::Value;

mod common;

use common::{json_stdout, rusvel, setup, succeeded};

#[test]
fn the_deploy_command_stores_a_deployment_with_the_remembered_session() {
    let dir = setup();

    let out = json_stdout(&rusvel(
        dir.path(),
        &[
            "infra",
            "deploy",
            "--service",
            "api",
            "--version",
            "v1",
            "--environment",
            "prod",
        ],
    ));

    let id = out["deployment_id"].as_str().expect("a deployment id");
    let listed = json_stdout(&rusvel(
        dir.path(),
        &["--json", "infra", "list", "--kind", "deploy"],
    ));
    let deployments = listed.as_array().unwrap();
    assert_eq!(deployments.len(), 1);
    assert_eq!(deployments[0]["id"], id);
    assert_eq!(
        (
            &deployments[0]["service"],
            &deployments[0]["version"],
            &deployments[0]["environment"]
        ),
        (
            &Value::from("api"),
            &Value::from("v1"),
            &Value::from("prod")
        )
    );
    let session = std::fs::read_to_string(dir.path().join("data/session")).unwrap();
    assert_eq!(deployments[0]["session_id"], session.trim());
}

#[test]
fn a_missing_required_argument_is_refused_naming_it() {
    let dir = setup();

    let out = rusvel(
        dir.path(),
        &["infra", "deploy", "--service", "api", "--version", "v1"],
    );

    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--environment"), "stderr: {stderr}");
    let listed = json_stdout(&rusvel(
        dir.path(),
        &["--json", "infra", "list", "--kind", "deploy"],
    ));
    assert_eq!(listed, Value::Array(Vec::new()), "nothing was stored");
}

#[test]
fn department_help_lists_built_in_and_contributed_commands_with_their_options() {
    let dir = setup();

    let help = succeeded(&rusvel(dir.path(), &["infra", "help"]));
    for command in [
        "status", "list", "events", "tool", "deploy", "health", "incident",
    ] {
        assert!(help.contains(command), "`{command}` missing from:\n{help}");
    }
    assert!(help.contains("Contributed by the department: deploy, health, incident"));

    let deploy = succeeded(&rusvel(dir.path(), &["infra", "help", "deploy"]));
    for option in [
        "--service",
        "--version",
        "--environment",
        "infra.deploy.trigger",
    ] {
        assert!(
            deploy.contains(option),
            "`{option}` missing from:\n{deploy}"
        );
    }
}

#[test]
fn incident_and_health_commands_call_their_tools() {
    let dir = setup();

    let opened = json_stdout(&rusvel(
        dir.path(),
        &[
            "infra",
            "incident",
            "--title",
            "API down",
            "--severity",
            "P1",
            "--description",
            "5xx everywhere",
        ],
    ));
    let health = json_stdout(&rusvel(dir.path(), &["infra", "health"]));

    let incidents = json_stdout(&rusvel(
        dir.path(),
        &["--json", "infra", "list", "--kind", "incident"],
    ));
    assert_eq!(incidents.as_array().unwrap().len(), 1);
    assert_eq!(incidents[0]["title"], "API down");
    assert_eq!(incidents[0]["severity"], "P1");
    assert!(opened
        .to_string()
        .contains(incidents[0]["id"].as_str().unwrap()));
    assert!(health["summary"].is_object(), "{health}");
}

#[test]
fn a_wrong_value_is_refused_by_the_tool_with_the_reason() {
    let dir = setup();

    let out = rusvel(
        dir.path(),
        &["infra", "incident", "--title", "t", "--severity", "P9"],
    );

    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("severity"), "stderr: {stderr}");
}

#[test]
fn the_worker_runs_a_scheduled_health_scan_and_jobs_lists_it() {
    let dir = setup();
    // Every second (six fields), so the first run is due almost at once.
    let scheduled = json_stdout(&rusvel(
        dir.path(),
        &[
            "infra",
            "tool",
            "infra.monitor.schedule",
            r#"{"cron":"* * * * * *"}"#,
        ],
    ));
    let first = scheduled["job_id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(1100));

    let worker = json_stdout(&rusvel(dir.path(), &["--json", "worker", "--once"]));

    assert_eq!(worker["report"]["succeeded"], 1, "{worker}");
    assert_eq!(worker["jobs"][0]["id"], first.as_str());
    let done = json_stdout(&rusvel(
        dir.path(),
        &["--json", "jobs", "--status", "succeeded"],
    ));
    assert_eq!(done[0]["id"], first.as_str());
    assert_eq!(done[0]["kind"], "infra.health_scan");
    assert!(done[0]["result"]["probed"].is_number(), "{done}");
    let next = json_stdout(&rusvel(
        dir.path(),
        &["--json", "jobs", "--status", "queued"],
    ));
    assert_eq!(next.as_array().unwrap().len(), 1, "the next run is queued");
    assert_ne!(next[0]["id"], first.as_str());

    // Cancelling the schedule by its first id stops it.
    succeeded(&rusvel(dir.path(), &["jobs", "cancel", &first]));
    let queued = json_stdout(&rusvel(
        dir.path(),
        &["--json", "jobs", "--status", "queued"],
    ));
    assert_eq!(queued, Value::Array(Vec::new()));
    let table = succeeded(&rusvel(dir.path(), &["jobs"]));
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains("cancelled") && table.contains("succeeded"),
        "{table}"
    );
}

#[test]
fn a_timed_worker_stops_on_its_own() {
    let dir = setup();

    let out = succeeded(&rusvel(dir.path(), &["worker", "--for-seconds", "1"]));

    assert!(out.contains("0 job(s) ran"), "{out}");
}
