//! Failure isolation: misbehaving plugins loaded beside the real Infra component.
//!
//! Each fixture shares the plugin directory (and so the engine, the database and the event
//! log) with Infra. A call that loops, eats memory or panics must fail with a fault naming
//! the plugin, its version, the tool and the cause; Infra must answer correctly right after;
//! and the misbehaving plugin must serve its next call on a fresh instance. Plugins that
//! cannot be loaded are listed in `failures()` with the reason, and Infra loads anyway.
//! Imports that reach into Infra's namespace are refused, and nothing lands there.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use integration_tests::{fixture_component, infra_component, TestHost};
use rusvel_host::capability::MAX_TOOL_ARGS;
use rusvel_host::ports::events::EventFilter;
use rusvel_host::ports::objects::ObjectFilter;
use rusvel_host::{Fault, HostError};
use serde_json::{json, Value};

/// The WIT package version every fixture and Infra are built against.
const VERSION: &str = "rusvel:department@0.1.0";

/// A short deadline and a small memory cap, so the runaway fixtures fail fast.
fn tight_limits() -> Value {
    json!({"limits": {"call_timeout_ms": 1000, "memory_mib": 32}})
}

/// Infra plus the named fixtures (file stem = fixture name), each with [`tight_limits`].
async fn beside_infra(fixtures: &[&str]) -> TestHost {
    let mut plugins: Vec<(&str, PathBuf, Option<Value>)> = vec![("infra", infra_component(), None)];
    for name in fixtures {
        plugins.push((name, fixture_component(name), Some(tight_limits())));
    }
    TestHost::with_plugins(&plugins).await
}

/// Opens an incident through Infra and checks it reads back from the store and the list.
async fn infra_still_serves(t: &TestHost, title: &str) {
    let created = t
        .ok(
            "infra.incidents.create",
            json!({"title": title, "severity": "P2"}),
        )
        .await;
    let id = created["incident_id"].as_str().expect("incident_id");
    let stored = t
        .host
        .store()
        .get("infra_incident", id)
        .await
        .unwrap()
        .expect("the incident is stored");
    assert_eq!(stored["title"], title);
    assert_eq!(stored["status"], "open");
    let listed = t.ok("infra.incidents.list", json!({})).await;
    let titles: Vec<&str> = listed["incidents"]
        .as_array()
        .expect("incidents array")
        .iter()
        .filter_map(|incident| incident["title"].as_str())
        .collect();
    assert!(titles.contains(&title), "{title} not listed: {listed}");
}

/// Calls a fixture tool with `{}`.
async fn call_fixture(t: &TestHost, plugin: &str, tool: &str) -> Result<Value, HostError> {
    t.host
        .call_tool(plugin, tool, "{}")
        .await
        .map(|output| json!({"content": output.content, "is_error": output.is_error}))
}

/// Unpacks a fault, checking the call site names plugin, version and tool.
fn fault_of(error: HostError, plugin: &str, tool: &str) -> (Fault, String) {
    let text = error.to_string();
    match error {
        HostError::Fault { site, fault } => {
            assert_eq!(site.plugin, plugin, "{text}");
            assert_eq!(site.version, VERSION, "{text}");
            assert_eq!(site.export, format!("call-tool `{tool}`"), "{text}");
            for part in [
                format!("`{plugin}`"),
                VERSION.to_string(),
                format!("`{tool}`"),
            ] {
                assert!(text.contains(&part), "`{text}` does not name {part}");
            }
            (fault, text)
        }
        other => panic!("expected a fault from {plugin} {tool}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_times_out_and_the_next_call_gets_a_fresh_instance() {
    let t = beside_infra(&["spin"]).await;

    for round in 0..2 {
        let started = Instant::now();
        let error = call_fixture(&t, "spin", "spin.forever").await.unwrap_err();
        let elapsed = started.elapsed();
        let (fault, text) = fault_of(error, "spin", "spin.forever");
        assert_eq!(fault, Fault::Timeout(Duration::from_millis(1000)), "{text}");
        assert!(text.contains("timed out after 1000 ms"), "{text}");
        assert!(
            elapsed >= Duration::from_millis(1000) && elapsed < Duration::from_secs(5),
            "round {round}: the call took {elapsed:?}"
        );
        // Round 2 proves the instance was replaced: a reused trapped store would fail at
        // once with an engine error instead of running to the deadline again.
        infra_still_serves(&t, &format!("after spin round {round}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infra_answers_while_another_plugin_spins() {
    let t = beside_infra(&["spin"]).await;
    let host = std::sync::Arc::new(t);
    let spinning = {
        let host = host.clone();
        tokio::spawn(async move { call_fixture(&host, "spin", "spin.forever").await })
    };
    // Let the spin call start, then serve Infra while it runs.
    tokio::time::sleep(Duration::from_millis(100)).await;
    infra_still_serves(&host, "served during spin").await;
    // Ordering, not speed: had Infra waited for the spinning plugin, that call would be over.
    assert!(
        !spinning.is_finished(),
        "Infra was served only after the spin call ended"
    );
    let error = spinning.await.unwrap().unwrap_err();
    let (fault, _) = fault_of(error, "spin", "spin.forever");
    assert!(matches!(fault, Fault::Timeout(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_allocation_hits_the_memory_cap_and_the_next_call_starts_clean() {
    let t = beside_infra(&["hungry"]).await;

    for round in 0..2 {
        let error = call_fixture(&t, "hungry", "hungry.eat").await.unwrap_err();
        let (fault, text) = fault_of(error, "hungry", "hungry.eat");
        assert_eq!(fault, Fault::OutOfMemory(32 * 1024 * 1024), "{text}");
        assert!(
            text.contains("out of memory: the 32 MiB cap was reached"),
            "{text}"
        );
        infra_still_serves(&t, &format!("after hungry round {round}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_a_trap_carrying_the_panic_message() {
    let t = beside_infra(&["panicky"]).await;

    for round in 0..2 {
        let error = call_fixture(&t, "panicky", "panicky.boom")
            .await
            .unwrap_err();
        let (fault, text) = fault_of(error, "panicky", "panicky.boom");
        let Fault::Trap(message) = fault else {
            panic!("expected a trap, got {text}");
        };
        assert!(
            message.contains("boom: the panicky fixture always panics"),
            "round {round}: the panic message is missing: {text}"
        );
        assert!(
            !message.contains("unusable"),
            "a dead store was reused: {text}"
        );
        infra_still_serves(&t, &format!("after panicky round {round}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_fails_in_turn_and_infra_keeps_serving() {
    let t = beside_infra(&["hungry", "panicky", "spin"]).await;
    let calls = [
        ("spin", "spin.forever"),
        ("hungry", "hungry.eat"),
        ("panicky", "panicky.boom"),
        ("spin", "spin.forever"),
    ];
    for (index, (plugin, tool)) in calls.into_iter().enumerate() {
        let error = call_fixture(&t, plugin, tool).await.unwrap_err();
        fault_of(error, plugin, tool);
        infra_still_serves(&t, &format!("after {plugin} #{index}")).await;
    }
    assert_eq!(t.count("infra_incident").await, 4);
}

#[tokio::test]
async fn components_that_cannot_load_are_listed_with_their_reason_and_infra_loads() {
    let t = TestHost::with_plugins(&[
        ("infra", infra_component(), None),
        (
            "sneaky-manifest",
            fixture_component("sneaky-manifest"),
            None,
        ),
        ("future", fixture_component("future"), None),
        (
            "not-a-component",
            fixture_component("not-a-component"),
            None,
        ),
        ("core-module", fixture_component("core-module"), None),
    ])
    .await;

    let loaded: Vec<&str> = t.host.plugins().map(|plugin| plugin.id()).collect();
    assert_eq!(loaded, ["infra"]);
    let failures = t.host.failures();
    let reason = |stem: &str| -> String {
        let found: Vec<_> = failures
            .iter()
            .filter(|f| f.path.file_stem().and_then(|s| s.to_str()) == Some(stem))
            .collect();
        assert_eq!(found.len(), 1, "{stem} failures: {failures:?}");
        found[0].error.clone()
    };
    assert_eq!(failures.len(), 4, "{failures:?}");

    let sneaky = reason("sneaky-manifest");
    assert!(
        sneaky.contains("(rusvel:department@0.1.0), manifest trapped"),
        "{sneaky}"
    );
    assert!(
        sneaky.contains("imports are not available while the manifest is read"),
        "{sneaky}"
    );
    let future = reason("future");
    assert!(
        future.contains("rusvel:department@1.0.0") && future.contains("rusvel:department@0.1."),
        "{future}"
    );
    let text = reason("not-a-component");
    assert!(
        text.contains("not-a-component.wasm") && text.contains("not a WebAssembly file"),
        "{text}"
    );
    let core = reason("core-module");
    assert!(core.contains("core-module.wasm"), "{core}");
    assert!(
        core.contains("core WebAssembly module, not a component"),
        "{core}"
    );

    // The manifest's write was refused, not stored.
    let sneaky_objects = t
        .host
        .store()
        .count("sneaky_x", &ObjectFilter::default())
        .await
        .unwrap();
    assert_eq!(sneaky_objects, 0);
    infra_still_serves(&t, "beside broken files").await;
}

#[tokio::test]
async fn a_memory_cap_below_the_components_initial_memory_is_named_as_the_cause() {
    // Infra starts with a little over 1 MiB of linear memory, so a 1 MiB cap cannot hold it.
    let t = TestHost::with_plugins(&[(
        "tiny",
        infra_component(),
        Some(json!({"limits": {"memory_mib": 1}})),
    )])
    .await;

    assert_eq!(t.host.plugins().count(), 0);
    let failures = t.host.failures();
    assert_eq!(failures.len(), 1, "{failures:?}");
    let reason = &failures[0].error;
    assert!(
        reason.contains("instantiate")
            && reason.contains("out of memory: the 1 MiB cap was reached (`limits.memory_mib`)"),
        "{reason}"
    );
    assert!(
        !reason.contains("not a valid WebAssembly component"),
        "{reason}"
    );
}

#[tokio::test]
async fn foreign_storage_is_refused_and_own_storage_works() {
    let t = beside_infra(&["trespasser"]).await;
    let object_id = "0193a3c1-7f00-7000-8000-000000000001";
    // A deployment Infra owns under the id the trespasser tries to read.
    let secret = json!({"service": "vault", "session_id": t.session, "status": "deployed"});
    t.host
        .store()
        .put("infra_deploy", object_id, &secret)
        .await
        .unwrap();

    let write = call_fixture(&t, "trespasser", "trespasser.write_foreign")
        .await
        .unwrap();
    assert_eq!(write["is_error"], true, "{write}");
    let message = write["content"].as_str().unwrap();
    assert!(
        message.starts_with("Error::Unauthorized") || message.starts_with("Unauthorized"),
        "{message}"
    );
    assert!(
        message.contains("trespasser") && message.contains("infra_incident"),
        "{message}"
    );
    assert_eq!(t.count("infra_incident").await, 0, "a foreign write landed");

    let read = call_fixture(&t, "trespasser", "trespasser.read_foreign")
        .await
        .unwrap();
    assert_eq!(read["is_error"], true, "{read}");
    let message = read["content"].as_str().unwrap();
    assert!(
        message.contains("Unauthorized") && message.contains("infra_deploy"),
        "{message}"
    );
    assert!(!message.contains("vault"), "foreign data leaked: {message}");

    let own = call_fixture(&t, "trespasser", "trespasser.write_own")
        .await
        .unwrap();
    assert_eq!(own["is_error"], false, "{own}");
    let stored = t
        .host
        .store()
        .get("trespasser_note", object_id)
        .await
        .unwrap()
        .expect("own write stored");
    assert_eq!(stored["note"], "my own kind");
    infra_still_serves(&t, "after trespasser").await;
}

#[tokio::test]
async fn foreign_events_are_refused_and_own_events_are_stamped_by_the_host() {
    let t = beside_infra(&["impostor"]).await;
    let mut live = t.host.subscribe_events();

    let forged = call_fixture(&t, "impostor", "impostor.emit_foreign")
        .await
        .unwrap();
    assert_eq!(forged["is_error"], true, "{forged}");
    let message = forged["content"].as_str().unwrap();
    assert!(
        message.contains("Unauthorized") && message.contains("infra.incident.opened"),
        "{message}"
    );
    let infra_kind = EventFilter {
        kind: Some("infra.incident.opened".into()),
        ..EventFilter::default()
    };
    let opened = t.host.ports().events.query(&infra_kind).await.unwrap();
    assert!(
        opened.is_empty(),
        "a forged Infra event was stored: {opened:?}"
    );

    let own = call_fixture(&t, "impostor", "impostor.emit_own")
        .await
        .unwrap();
    assert_eq!(own["is_error"], false, "{own}");
    let content: Value = serde_json::from_str(own["content"].as_str().unwrap()).unwrap();
    let id = content["event_id"].as_str().expect("event_id");
    let event = t
        .host
        .ports()
        .events
        .get(id)
        .await
        .unwrap()
        .expect("event stored");
    assert_eq!(event.source, "impostor");
    assert_eq!(event.kind, "impostor.said_hello");
    assert_eq!(event.payload, json!({"greeting": "hello"}));
    // The live broadcast saw exactly the own event, never the forged one.
    let seen = tokio::time::timeout(Duration::from_secs(2), live.recv())
        .await
        .expect("broadcast")
        .unwrap();
    assert_eq!(seen.id, id);
    assert!(live.try_recv().is_err(), "an extra event was broadcast");

    let all = t
        .host
        .ports()
        .events
        .query(&EventFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    infra_still_serves(&t, "after impostor").await;
}

#[tokio::test]
async fn tool_arguments_over_one_mib_are_refused_before_the_plugin_runs() {
    let t = beside_infra(&["panicky"]).await;
    // Just over the cap, in an otherwise valid document.
    let title = "x".repeat(MAX_TOOL_ARGS);
    let args = json!({"session_id": t.session, "title": title, "severity": "P2"}).to_string();
    assert!(args.len() > MAX_TOOL_ARGS);
    let error = t
        .host
        .call_tool("infra", "infra.incidents.create", &args)
        .await
        .unwrap_err();
    match &error {
        HostError::LimitExceeded {
            what,
            limit,
            actual,
        } => {
            assert!(what.contains("infra.incidents.create"), "{error}");
            assert_eq!(*limit, MAX_TOOL_ARGS);
            assert_eq!(*actual, args.len());
        }
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
    assert_eq!(t.count("infra_incident").await, 0);

    // The panicking plugin is never entered: a trap would be the answer if it were.
    let padding = "y".repeat(MAX_TOOL_ARGS);
    let args = json!({ "padding": padding }).to_string();
    let error = t
        .host
        .call_tool("panicky", "panicky.boom", &args)
        .await
        .unwrap_err();
    assert!(
        matches!(error, HostError::LimitExceeded { .. }),
        "the plugin ran: {error}"
    );
    // Exactly at the cap is not refused for size (it reaches the plugin, which panics).
    let exact = format!(
        "{{\"p\":\"{}\"}}",
        "z".repeat(MAX_TOOL_ARGS - "{\"p\":\"\"}".len())
    );
    assert_eq!(exact.len(), MAX_TOOL_ARGS);
    let error = t
        .host
        .call_tool("panicky", "panicky.boom", &exact)
        .await
        .unwrap_err();
    assert!(error.is_fault(), "{error}");
    infra_still_serves(&t, "after oversized arguments").await;
}
