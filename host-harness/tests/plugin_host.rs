//! The plugin host against a real component: the `mini` fixture department from
//! `tests/fixtures/minimal`, built once per test run for `wasm32-wasip2`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use rusvel_host::ports::{JobFilter, JobStatus, NewEvent, ObjectFilter, PortError};
use rusvel_host::{Fault, HostConfig, HostError, PluginHost};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Builds the fixture component (once) and returns its path.
fn fixture() -> &'static Path {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        // A target dir of its own, so this nested build never waits on the outer cargo.
        let target = root.join("target").join("fixture-build");
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(root.join("tests/fixtures/minimal/Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target)
            .status()
            .expect("running cargo to build the fixture component");
        assert!(
            status.success(),
            "building the fixture failed (is wasm32-wasip2 installed?)"
        );
        target.join("wasm32-wasip2/release/fixture_minimal.wasm")
    })
}

/// Compiled components shared by every test of this binary.
fn shared_cache() -> PathBuf {
    std::env::temp_dir().join("rusvel-host-test-cache")
}

struct Setup {
    host: PluginHost,
    _dirs: tempfile::TempDir,
}

/// A host over a plugin dir holding the fixture (as `mini.wasm`) plus `extra` files.
async fn setup(sidecar: Option<Value>, extra: &[(&str, &[u8])]) -> Setup {
    let dirs = tempfile::tempdir().unwrap();
    let plugins = dirs.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(fixture(), plugins.join("mini.wasm")).unwrap();
    if let Some(sidecar) = sidecar {
        std::fs::write(plugins.join("mini.json"), sidecar.to_string()).unwrap();
    }
    for (name, bytes) in extra {
        std::fs::write(plugins.join(name), bytes).unwrap();
    }
    let mut config = HostConfig::new(&plugins, dirs.path().join("data"));
    config.cache_dir = Some(shared_cache());
    let host = PluginHost::load(config).await.unwrap();
    Setup { host, _dirs: dirs }
}

fn quick_limits() -> Value {
    json!({ "limits": { "call_timeout_ms": 1000, "memory_mib": 64 } })
}

#[tokio::test]
async fn the_manifest_is_read_with_every_import_refused() {
    let setup = setup(None, &[]).await;
    let plugin = setup.host.plugin("mini").unwrap();
    assert!(
        plugin
            .manifest()
            .description
            .contains("imports are not available"),
        "{}",
        plugin.manifest().description
    );
    assert_eq!(plugin.version(), "rusvel:department@0.1.0");
}

#[tokio::test]
async fn manifest_json_uses_snake_case_and_schema_objects() {
    let setup = setup(None, &[]).await;
    let manifest = setup.host.plugin("mini").unwrap().manifest_json();
    assert_eq!(manifest["id"], "mini");
    assert!(manifest["system_prompt"].is_string());
    assert_eq!(manifest["tools"][0]["parameters_schema"]["type"], "object");
    assert_eq!(manifest["config_schema"]["type"], "object");
    assert!(manifest["default_config"].is_object());
}

#[tokio::test]
async fn a_tool_call_reaches_the_sqlite_object_store() {
    let setup = setup(None, &[]).await;
    let output = setup
        .host
        .call_tool(
            "mini",
            "mini.put",
            r#"{"id":"a1","session_id":"s1","status":"new"}"#,
        )
        .await
        .unwrap();
    assert!(!output.is_error);
    let stored = setup
        .host
        .store()
        .get("mini_item", "a1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored["status"], "new");
    let filter = ObjectFilter {
        session_id: Some("s1".into()),
        ..Default::default()
    };
    assert_eq!(
        setup
            .host
            .store()
            .count("mini_item", &filter)
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn files_that_are_not_components_fail_alone() {
    let core_module = b"\0asm\x01\0\0\0";
    let setup = setup(None, &[("junk.wasm", b"hello"), ("core.wasm", core_module)]).await;
    assert!(setup.host.plugin("mini").is_some());
    let failures = setup.host.failures();
    assert_eq!(failures.len(), 2);
    let core = failures
        .iter()
        .find(|f| f.path.ends_with("core.wasm"))
        .unwrap();
    assert!(
        core.error
            .contains("core WebAssembly module, not a component"),
        "{}",
        core.error
    );
    let junk = failures
        .iter()
        .find(|f| f.path.ends_with("junk.wasm"))
        .unwrap();
    assert!(junk.error.contains("junk.wasm") && junk.error.contains("not a WebAssembly file"));
}

#[tokio::test]
async fn a_second_plugin_with_the_same_id_is_rejected() {
    let bytes = std::fs::read(fixture()).unwrap();
    let setup = setup(None, &[("mini-copy.wasm", &bytes)]).await;
    assert_eq!(setup.host.plugins().count(), 1);
    let failure = &setup.host.failures()[0];
    assert!(
        failure.error.contains("declared by both"),
        "{}",
        failure.error
    );
}

#[tokio::test]
async fn unknown_tools_and_bad_arguments_are_refused_before_the_plugin_runs() {
    let setup = setup(None, &[]).await;
    let unknown = setup
        .host
        .call_tool("mini", "mini.nope", "{}")
        .await
        .unwrap_err();
    assert!(
        matches!(unknown, HostError::UnknownTool { .. }),
        "{unknown}"
    );
    let not_json = setup
        .host
        .call_tool("mini", "mini.echo", "{oops")
        .await
        .unwrap_err();
    assert!(matches!(not_json, HostError::InvalidArguments { .. }));
    let schema = setup
        .host
        .call_tool("mini", "mini.put", "{}")
        .await
        .unwrap_err();
    assert!(
        schema.to_string().contains("\"id\" is a required property"),
        "{schema}"
    );
    let department = setup.host.call_tool("nope", "x", "{}").await.unwrap_err();
    assert!(
        department.to_string().contains("loaded: mini"),
        "{department}"
    );
}

#[tokio::test]
async fn an_endless_loop_times_out_and_the_next_call_gets_a_fresh_instance() {
    let setup = setup(Some(quick_limits()), &[]).await;
    let error = setup
        .host
        .call_tool("mini", "mini.spin", "{}")
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            HostError::Fault {
                fault: Fault::Timeout(_),
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("plugin `mini`") && error.to_string().contains("mini.spin"));
    let echo = setup
        .host
        .call_tool("mini", "mini.echo", r#"{"ok":true}"#)
        .await
        .unwrap();
    assert_eq!(echo.content, r#"{"ok":true}"#);
}

#[tokio::test]
async fn a_panic_fails_the_call_with_the_panic_message() {
    let setup = setup(None, &[]).await;
    let error = setup
        .host
        .call_tool("mini", "mini.panic", "{}")
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(
            &error,
            HostError::Fault {
                fault: Fault::Trap(_),
                ..
            }
        ),
        "{text}"
    );
    assert!(text.contains("mini was asked to panic"), "{text}");
    assert!(setup
        .host
        .call_tool("mini", "mini.echo", "{}")
        .await
        .is_ok());
}

#[tokio::test]
async fn growing_past_the_memory_cap_fails_the_call() {
    let setup = setup(Some(quick_limits()), &[]).await;
    let error = setup
        .host
        .call_tool("mini", "mini.alloc", r#"{"mib":100}"#)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            HostError::Fault {
                fault: Fault::OutOfMemory(_),
                ..
            }
        ),
        "{error}"
    );
    let small = setup
        .host
        .call_tool("mini", "mini.alloc", r#"{"mib":8}"#)
        .await
        .unwrap();
    assert!(small.content.contains("allocated_mib"));
}

#[tokio::test]
async fn a_plugin_cannot_touch_another_departments_kinds() {
    let setup = setup(None, &[]).await;
    let put = setup
        .host
        .call_tool("mini", "mini.put", r#"{"id":"x","kind":"infra_deploy"}"#)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &put,
            HostError::Plugin {
                error: PortError::Unauthorized(_),
                ..
            }
        ),
        "{put}"
    );
    let emit = setup
        .host
        .call_tool("mini", "mini.emit", r#"{"kind":"infra.x"}"#)
        .await;
    assert!(matches!(
        emit,
        Err(HostError::Plugin {
            error: PortError::Unauthorized(_),
            ..
        })
    ));
}

#[tokio::test]
async fn tool_output_over_four_mib_is_refused() {
    let setup = setup(None, &[]).await;
    let error = setup
        .host
        .call_tool("mini", "mini.big", r#"{"mib":5}"#)
        .await
        .unwrap_err();
    assert!(matches!(error, HostError::LimitExceeded { .. }), "{error}");
}

#[tokio::test]
async fn emitted_events_are_stamped_and_delivered_to_subscribers() {
    let setup = setup(None, &[]).await;
    let output = setup
        .host
        .call_tool("mini", "mini.emit", r#"{"kind":"mini.ping","payload":1}"#)
        .await;
    let event_id = serde_json::from_str::<Value>(&output.unwrap().content).unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(setup.host.flush_events(Duration::from_secs(10)).await);

    let stored = setup
        .host
        .ports()
        .events
        .get(&event_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.source, "mini");
    // The subscriber's handler stored what it saw and emitted a follow-up event.
    assert!(setup
        .host
        .store()
        .get("mini_seen", &event_id)
        .await
        .unwrap()
        .is_some());
    let follow_up = setup
        .host
        .ports()
        .events
        .query(&rusvel_host::ports::EventFilter {
            kind: Some("mini.pinged".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(follow_up[0].payload["cause"], event_id.as_str());
}

#[tokio::test]
async fn an_endless_event_cascade_stops_at_the_depth_limit() {
    let setup = setup(None, &[]).await;
    setup
        .host
        .call_tool("mini", "mini.emit", r#"{"kind":"mini.loop"}"#)
        .await
        .unwrap();
    assert!(setup.host.flush_events(Duration::from_secs(20)).await);
    let filter = rusvel_host::ports::EventFilter {
        kind: Some("mini.loop".into()),
        ..Default::default()
    };
    let loops = setup.host.ports().events.query(&filter).await.unwrap();
    // Depths 1..=8 are delivered and each emits one more; the ninth is stored, not delivered.
    assert_eq!(loops.len() as u32, rusvel_host::MAX_EVENT_DEPTH + 1);
}

#[tokio::test]
async fn events_emitted_by_the_embedder_reach_subscribed_plugins() {
    let setup = setup(None, &[]).await;
    let id = setup
        .host
        .emit_event(NewEvent {
            session_id: None,
            run_id: None,
            source: "host".into(),
            kind: "mini.ping".into(),
            payload: json!({}),
            metadata: json!({}),
        })
        .await
        .unwrap();
    assert!(setup.host.flush_events(Duration::from_secs(10)).await);
    assert!(setup
        .host
        .store()
        .get("mini_seen", &id)
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn a_queued_job_runs_on_its_plugin_and_succeeds() {
    let setup = setup(None, &[]).await;
    let output = setup
        .host
        .call_tool("mini", "mini.enqueue", "{}")
        .await
        .unwrap();
    let job_id = serde_json::from_str::<Value>(&output.content).unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        setup.host.run_next_job().await.unwrap(),
        Some(job_id.clone())
    );
    assert_eq!(setup.host.run_next_job().await.unwrap(), None);
    let jobs = setup
        .host
        .ports()
        .jobs
        .list(&JobFilter::default())
        .await
        .unwrap();
    assert_eq!(jobs[0].status, JobStatus::Succeeded);
    assert_eq!(jobs[0].owner, "mini");
    assert_eq!(jobs[0].result, Some(json!({ "done": job_id })));
}

#[tokio::test]
async fn the_agent_without_a_script_says_no_model_is_configured() {
    let setup = setup(None, &[]).await;
    let output = setup
        .host
        .call_tool("mini", "mini.ask", "{}")
        .await
        .unwrap();
    assert_eq!(output.content, r#"{"answer":"no model is configured"}"#);
}

/// Serves one HTTP 200 response on a loopback port; returns the port.
async fn one_shot_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buffer = [0u8; 4096];
            let _ = socket.read(&mut buffer).await;
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await;
        }
    });
    port
}

#[tokio::test]
async fn outbound_http_is_denied_unless_the_sidecar_allows_it() {
    let port = one_shot_server().await;
    let url = format!(r#"{{"url":"http://127.0.0.1:{port}/health"}}"#);

    let denied = setup(None, &[]).await;
    let output = denied
        .host
        .call_tool("mini", "mini.fetch", &url)
        .await
        .unwrap();
    assert!(output.is_error);
    assert!(
        output.content.contains("HttpRequestDenied"),
        "{}",
        output.content
    );

    let allowed = setup(
        Some(json!({ "allow_outbound": ["http://127.0.0.1:*"] })),
        &[],
    )
    .await;
    let output = allowed
        .host
        .call_tool("mini", "mini.fetch", &url)
        .await
        .unwrap();
    assert_eq!(output.content, r#"{"status":200}"#);
}

#[tokio::test]
async fn shutdown_reaches_every_plugin() {
    let setup = setup(None, &[]).await;
    setup
        .host
        .call_tool("mini", "mini.echo", "{}")
        .await
        .unwrap();
    setup.host.shutdown_all().await.unwrap();
}
