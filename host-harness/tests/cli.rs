//! The `rusvel-host` binary, run as separate processes over one data directory, as an
//! operator would: what one process stores, the next one reads.
//!
//! Needs the built Infra component: `$INFRA_COMPONENT` (set by `make test`) or the
//! workspace's `guest-release` build.

use serde_json::Value;

mod common;

use common::{json_stdout, rusvel, setup};

#[test]
fn a_deployment_recorded_by_one_process_is_listed_by_the_next() {
    let dir = setup();

    let trigger = rusvel(
        dir.path(),
        &[
            "--json",
            "infra",
            "tool",
            "infra.deploy.trigger",
            r#"{"service":"rusvel-api","version":"v0.3.0","environment":"production"}"#,
        ],
    );
    let output = json_stdout(&trigger);
    let content: Value = serde_json::from_str(output["content"].as_str().unwrap()).unwrap();
    let id = content["deployment_id"].as_str().unwrap().to_string();

    let listed = json_stdout(&rusvel(
        dir.path(),
        &["--json", "infra", "list", "--kind", "deploy"],
    ));

    let deployments = listed.as_array().expect("a JSON array");
    assert_eq!(deployments.len(), 1);
    assert_eq!(deployments[0]["id"], id.as_str());
    assert_eq!(deployments[0]["service"], "rusvel-api");
}

#[test]
fn the_session_id_is_created_once_and_remembered() {
    let dir = setup();
    let create = |title: &str| {
        let args = format!(r#"{{"title":"{title}","description":"d","severity":"P4"}}"#);
        json_stdout(&rusvel(
            dir.path(),
            &["--json", "infra", "tool", "infra.incidents.create", &args],
        ))
    };
    create("first");
    create("second");

    let listed = json_stdout(&rusvel(
        dir.path(),
        &["--json", "infra", "tool", "infra.incidents.list", "{}"],
    ));

    let content: Value = serde_json::from_str(listed["content"].as_str().unwrap()).unwrap();
    assert_eq!(
        content["incidents"].as_array().unwrap().len(),
        2,
        "both calls used one session"
    );
    let session = std::fs::read_to_string(dir.path().join("data/session")).unwrap();
    assert_eq!(content["incidents"][0]["session_id"], session.trim());
}

#[test]
fn plugins_json_prints_the_full_manifest_in_snake_case() {
    let dir = setup();

    let out = json_stdout(&rusvel(dir.path(), &["--json", "plugins"]));

    let infra = &out["plugins"][0];
    assert_eq!(infra["id"], "infra");
    assert!(infra["quick_actions"].is_array());
    assert!(infra["requires_ports"].is_array());
    assert!(infra["events_produced"].is_array());
    assert!(
        infra["tools"][0]["parameters_schema"].is_object(),
        "schemas are JSON, not text"
    );
}

#[test]
fn a_refused_tool_call_exits_non_zero_with_the_reason_on_stderr() {
    let dir = setup();

    let out = rusvel(
        dir.path(),
        &[
            "infra",
            "tool",
            "infra.incidents.create",
            r#"{"title":"x"}"#,
        ],
    );

    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("severity"),
        "stderr does not name the missing field: {stderr}"
    );
    assert!(out.stdout.is_empty(), "a table run printed on stdout");

    // With --json, stdout also carries the reason, in the tool-output envelope.
    let out = rusvel(
        dir.path(),
        &[
            "--json",
            "infra",
            "tool",
            "infra.incidents.create",
            r#"{"title":"x"}"#,
        ],
    );
    assert!(!out.status.success());
    let envelope: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(envelope["is_error"], true, "{envelope}");
    let content = envelope["content"].as_str().unwrap();
    assert!(content.contains("severity"), "{content}");
}

#[test]
fn events_lists_what_the_department_emitted() {
    let dir = setup();
    rusvel(
        dir.path(),
        &[
            "infra",
            "tool",
            "infra.incidents.create",
            r#"{"title":"t","description":"d","severity":"P2"}"#,
        ],
    );

    let events = json_stdout(&rusvel(dir.path(), &["--json", "infra", "events"]));

    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["infra.incident.opened"]);
}

#[test]
fn a_closed_stderr_does_not_stop_the_command() {
    let dir = setup();
    // Debug logging writes thousands of lines to a stderr whose reader is gone.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rusvel-host"))
        .arg("--plugins")
        .arg(dir.path().join("plugins"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env(
            "RUSVEL_CACHE_DIR",
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-cache"),
        )
        .env("RUST_LOG", "debug")
        .args(["--json", "plugins"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("rusvel-host runs");
    drop(child.stderr.take());
    let output = child.wait_with_output().unwrap();

    assert!(output.status.success(), "{:?}", output.status);
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listed["plugins"][0]["id"], "infra", "{listed}");
}
