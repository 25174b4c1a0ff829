//! Concurrent calls on one incident and one deployment through one shared host.
//!
//! 32 tasks start together (a barrier) and each makes one change, marked with its own note
//! or reason. No transition may be lost or doubled:
//! - every call that reports a change has its entry exactly once in the final timeline or
//!   history, and no other call does;
//! - the stored version went up by exactly the number of changes (one write each);
//! - each change produced exactly one event, carrying the same note or reason.
//!
//! What guarantees it: the engine never writes an incident or deployment blindly. Its
//! read-modify-write (`records::update` in the engine) reads the object with its version and
//! writes with `put-versioned(kind, id, data, expected)` (wit/storage.wit), which the host's
//! SQLite store applies only if the stored version still equals `expected` (one
//! `UPDATE ... WHERE version = ?` under the database lock) and otherwise answers `conflict`.
//! On a conflict the engine re-reads, re-validates the change against the newer state
//! (a move that stopped being valid is refused) and retries, at most 8 times; a call that
//! still loses answers `conflict` and writes nothing. Events are emitted only after the
//! winning write, once per timeline entry written.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use integration_tests::{infra_component, TestHost};
use rusvel_host::agent::ScriptedAgent;
use rusvel_host::ports::objects::{ObjectFilter, ObjectStore, VersionedObject};
use rusvel_host::ports::PortResult;
use rusvel_host::sqlite::{Database, SqliteEventPort, SqliteJobPort, SqliteObjectStore};
use rusvel_host::{HostConfig, HostError, PluginHost, PortError, Ports};
use serde_json::{json, Value};
use tokio::sync::Barrier;

const TASKS: usize = 32;

/// The SQLite store with a pause after every versioned read, so concurrent
/// read-modify-writes overlap for sure, and a count of the conflicts it answered.
struct RacingStore {
    inner: SqliteObjectStore,
    pause: Duration,
    conflicts: AtomicUsize,
}

#[async_trait]
impl ObjectStore for RacingStore {
    async fn put(&self, kind: &str, id: &str, data: &Value) -> PortResult<()> {
        self.inner.put(kind, id, data).await
    }

    async fn get(&self, kind: &str, id: &str) -> PortResult<Option<Value>> {
        self.inner.get(kind, id).await
    }

    async fn delete(&self, kind: &str, id: &str) -> PortResult<()> {
        self.inner.delete(kind, id).await
    }

    async fn list(&self, kind: &str, filter: &ObjectFilter) -> PortResult<Vec<Value>> {
        self.inner.list(kind, filter).await
    }

    async fn count(&self, kind: &str, filter: &ObjectFilter) -> PortResult<u64> {
        self.inner.count(kind, filter).await
    }

    async fn get_versioned(&self, kind: &str, id: &str) -> PortResult<Option<VersionedObject>> {
        let read = self.inner.get_versioned(kind, id).await;
        // Another call gets to read the same version before this one writes.
        tokio::time::sleep(self.pause).await;
        read
    }

    async fn put_versioned(
        &self,
        kind: &str,
        id: &str,
        data: &Value,
        expected: Option<u64>,
    ) -> PortResult<u64> {
        let written = self.inner.put_versioned(kind, id, data, expected).await;
        if matches!(written, Err(PortError::Conflict { .. })) {
            self.conflicts.fetch_add(1, Ordering::SeqCst);
        }
        written
    }

    async fn index_field(&self, kind: &str, field: &str) -> PortResult<()> {
        self.inner.index_field(kind, field).await
    }

    async fn count_by_kind(&self, prefix: &str) -> PortResult<Vec<(String, u64)>> {
        self.inner.count_by_kind(prefix).await
    }
}

/// A host with the Infra plugin over SQLite ports whose object store is a [`RacingStore`].
async fn racing_host(pause: Duration) -> (Arc<TestHost>, Arc<RacingStore>) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(infra_component(), plugins.join("infra.wasm")).unwrap();
    let data = dir.path().join("data");
    let database = Database::open(&data).unwrap();
    let store = Arc::new(RacingStore {
        inner: SqliteObjectStore::new(database.clone()),
        pause,
        conflicts: AtomicUsize::new(0),
    });
    let ports = Ports {
        objects: store.clone(),
        events: Arc::new(SqliteEventPort::new(database.clone())),
        jobs: Arc::new(SqliteJobPort::new(database.clone())),
        agent: Arc::new(ScriptedAgent::unconfigured()),
    };
    let mut config = HostConfig::new(&plugins, &data);
    config.cache_dir = Some(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .join("target/test-cache"),
    );
    let host = PluginHost::load_with_ports(config, ports, Some(database))
        .await
        .expect("host loads");
    let session = rusvel_host::clock::new_id();
    (Arc::new(TestHost { host, dir, session }), store)
}

/// How one concurrent call ended.
#[derive(Debug)]
enum Outcome {
    /// Succeeded; carries the object the tool returned.
    Ok(Value),
    /// Refused by the rules (invalid state) or by losing every compare-and-swap attempt.
    Refused(String),
}

async fn run_together(t: &Arc<TestHost>, calls: Vec<(String, Value)>) -> Vec<(usize, Outcome)> {
    let barrier = Arc::new(Barrier::new(calls.len()));
    let mut handles = Vec::new();
    for (index, (tool, args)) in calls.into_iter().enumerate() {
        let t = t.clone();
        let barrier = barrier.clone();
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            let outcome = match t.call(&tool, args).await {
                Ok(output) if !output.is_error => {
                    Outcome::Ok(serde_json::from_str(&output.content).unwrap())
                }
                Ok(output) => Outcome::Refused(output.content),
                Err(HostError::Plugin { error, .. }) => {
                    assert!(
                        matches!(
                            error,
                            PortError::InvalidState { .. } | PortError::Conflict { .. }
                        ),
                        "task {index} ({tool}) failed unexpectedly: {error}"
                    );
                    Outcome::Refused(error.to_string())
                }
                Err(other) => panic!("task {index} ({tool}) failed: {other}"),
            };
            (index, outcome)
        }));
    }
    let mut outcomes = Vec::new();
    for handle in handles {
        outcomes.push(handle.await.expect("task panicked"));
    }
    outcomes
}

/// Counts of how the calls ended, for the failure messages.
fn summary(outcomes: &[(usize, Outcome)]) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (_, outcome) in outcomes {
        let key = match outcome {
            Outcome::Ok(_) => "ok".to_string(),
            Outcome::Refused(text) if text.contains("conflict") => "conflict".into(),
            Outcome::Refused(_) => "refused".into(),
        };
        *counts.entry(key).or_default() += 1;
    }
    format!("{counts:?}")
}

fn notes_of(entries: &Value, field: &str) -> Vec<String> {
    entries
        .as_array()
        .expect("an array of entries")
        .iter()
        .filter_map(|entry| entry[field].as_str().map(String::from))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_incident_changes_lose_nothing_and_emit_once_each() {
    let t = Arc::new(TestHost::start().await);
    incident_storm(&t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forced_incident_races_are_retried_or_refused_never_lost() {
    let (t, store) = racing_host(Duration::from_millis(2)).await;
    incident_storm(&t).await;
    let conflicts = store.conflicts.load(Ordering::SeqCst);
    assert!(conflicts > 0, "the race window produced no conflict");
    eprintln!("forced incident races: {conflicts} compare-and-swap conflicts answered");
}

/// 32 concurrent changes of one incident; checks the invariants and returns the outcomes.
async fn incident_storm(t: &Arc<TestHost>) -> Vec<(usize, Outcome)> {
    let created = t
        .ok(
            "infra.incidents.create",
            json!({"title": "Checkout latency", "severity": "P3"}),
        )
        .await;
    let id = created["incident_id"].as_str().unwrap().to_string();
    let severities = ["P1", "P2", "P3", "P4"];

    let calls: Vec<(String, Value)> = (0..TASKS)
        .map(|task| {
            let note = format!("task-{task}");
            match task % 4 {
                0 | 2 => (
                    "infra.incidents.update".to_string(),
                    json!({"incident_id": id, "severity": severities[(task / 2) % 4],
                           "note": note}),
                ),
                1 => (
                    "infra.incidents.update".to_string(),
                    json!({"incident_id": id,
                           "status": if task % 8 == 1 { "investigating" } else { "mitigated" },
                           "note": note}),
                ),
                _ => (
                    "infra.incidents.resolve".to_string(),
                    json!({"incident_id": id, "note": note}),
                ),
            }
        })
        .collect();
    let outcomes = run_together(t, calls).await;

    // A success wrote a change if and only if its own note is in the timeline it returned.
    let mut changed = Vec::new();
    let mut successes = 0;
    for (task, outcome) in &outcomes {
        if let Outcome::Ok(content) = outcome {
            successes += 1;
            let note = format!("task-{task}");
            if notes_of(&content["incident"]["timeline"], "note").contains(&note) {
                changed.push(note);
            }
        }
    }
    let stats = summary(&outcomes);
    assert!(!changed.is_empty(), "no call changed anything: {stats}");

    let stored = t
        .host
        .store()
        .get_versioned("infra_incident", &id)
        .await
        .unwrap()
        .unwrap();
    let mut in_timeline = notes_of(&stored.data["timeline"], "note");
    assert_eq!(
        stored.data["timeline"].as_array().unwrap().len(),
        changed.len(),
        "timeline length vs changes ({stats}, {successes} successes)"
    );
    in_timeline.sort();
    let mut expected = changed.clone();
    expected.sort();
    assert_eq!(
        in_timeline, expected,
        "a transition was lost or doubled ({stats})"
    );
    assert_eq!(
        stored.version,
        1 + changed.len() as u64,
        "one write per change ({stats})"
    );

    // One event per change, with the change's note; nothing for the others.
    let mut event_notes: Vec<String> = t
        .events()
        .await
        .into_iter()
        .filter(|event| event.payload["incident_id"] == id.as_str())
        .filter(|event| event.kind != "infra.incident.opened")
        .map(|event| {
            event.payload["note"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    event_notes.sort();
    assert_eq!(event_notes, expected, "events vs changes ({stats})");

    // The final state is the last entry's target, per field.
    let timeline = stored.data["timeline"].as_array().unwrap();
    for field in ["status", "severity"] {
        if let Some(last) = timeline.iter().rev().find(|entry| entry["field"] == field) {
            assert_eq!(stored.data[field], last["to"], "{field}");
        }
    }
    eprintln!(
        "incident: {TASKS} calls, {successes} succeeded, {} changed it; {stats}",
        changed.len()
    );
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deployment_moves_lose_nothing_and_emit_once_each() {
    let t = Arc::new(TestHost::start().await);
    deployment_storm(&t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forced_deployment_races_are_retried_or_refused_never_lost() {
    let (t, store) = racing_host(Duration::from_millis(2)).await;
    deployment_storm(&t).await;
    let conflicts = store.conflicts.load(Ordering::SeqCst);
    assert!(conflicts > 0, "the race window produced no conflict");
    eprintln!("forced deployment races: {conflicts} compare-and-swap conflicts answered");
}

/// Four rounds of 32 concurrent moves of one fresh deployment each; checks the invariants.
async fn deployment_storm(t: &Arc<TestHost>) {
    let mut rounds_with_contention = 0;
    for round in 0..4 {
        let triggered = t
            .ok(
                "infra.deploy.trigger",
                json!({"service": format!("api-{round}"), "version": "v1",
                       "environment": "prod"}),
            )
            .await;
        let id = triggered["deployment_id"].as_str().unwrap().to_string();
        let history_before = triggered["deployment"]["history"]
            .as_array()
            .map_or(0, Vec::len);
        let targets = ["in_progress", "deployed", "failed", "in_progress"];
        let calls: Vec<(String, Value)> = (0..TASKS)
            .map(|task| {
                (
                    "infra.deploy.update_status".to_string(),
                    json!({"deployment_id": id, "status": targets[task % 4],
                           "reason": format!("task-{task}")}),
                )
            })
            .collect();
        let outcomes = run_together(t, calls).await;
        let stats = summary(&outcomes);

        let mut winners: Vec<String> = outcomes
            .iter()
            .filter_map(|(task, outcome)| match outcome {
                Outcome::Ok(_) => Some(format!("task-{task}")),
                Outcome::Refused(_) => None,
            })
            .collect();
        winners.sort();
        // pending -> failed, or pending -> in_progress -> deployed | failed.
        assert!((1..=2).contains(&winners.len()), "round {round}: {stats}");
        if outcomes
            .iter()
            .any(|(_, o)| matches!(o, Outcome::Refused(_)))
        {
            rounds_with_contention += 1;
        }

        let stored = t
            .host
            .store()
            .get_versioned("infra_deploy", &id)
            .await
            .unwrap()
            .unwrap();
        let history = stored.data["history"].as_array().unwrap();
        assert_eq!(history.len(), history_before + winners.len(), "{stats}");
        let mut reasons = notes_of(&stored.data["history"], "reason");
        reasons.sort();
        assert_eq!(
            reasons, winners,
            "round {round}: history vs successes ({stats})"
        );
        assert_eq!(stored.version, 1 + winners.len() as u64, "{stats}");
        // The history is a chain: each move starts where the previous one ended.
        let mut status = "pending".to_string();
        for entry in history.iter().skip(history_before) {
            assert_eq!(entry["from"], status.as_str(), "broken chain: {history:?}");
            status = entry["to"].as_str().unwrap().to_string();
        }
        assert_eq!(stored.data["status"], status.as_str());

        let mut event_reasons: Vec<String> = t
            .events()
            .await
            .into_iter()
            .filter(|event| event.payload["deployment_id"] == id.as_str())
            .map(|event| {
                event.payload["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        event_reasons.sort();
        assert_eq!(event_reasons, winners, "round {round}: events vs successes");
    }
    assert_eq!(rounds_with_contention, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_all_land_with_one_event_each() {
    let t = Arc::new(TestHost::start().await);
    let calls: Vec<(String, Value)> = (0..TASKS)
        .map(|task| {
            (
                "infra.incidents.create".to_string(),
                json!({"title": format!("burst-{task}"), "severity": "P4"}),
            )
        })
        .collect();
    let outcomes = run_together(&t, calls).await;
    let mut ids: Vec<String> = outcomes
        .iter()
        .map(|(task, outcome)| match outcome {
            Outcome::Ok(content) => content["incident_id"].as_str().unwrap().to_string(),
            Outcome::Refused(error) => panic!("create {task} refused: {error}"),
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), TASKS, "ids are unique");
    assert_eq!(t.count("infra_incident").await, TASKS as u64);
    let opened = t
        .events()
        .await
        .into_iter()
        .filter(|event| event.kind == "infra.incident.opened")
        .count();
    assert_eq!(opened, TASKS);
}
