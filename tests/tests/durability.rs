//! Crash safety: a writer process killed with SIGKILL in the middle of a write storm leaves a
//! database a fresh host opens and trusts.
//!
//! The writer is the `write-storm` binary of this package (four concurrent loops of incident
//! and deployment changes over the real component and SQLite). Each round lets it run past a
//! number of successful calls, kills it by its PID with SIGKILL, and then checks:
//! - `PRAGMA integrity_check` answers `ok`;
//! - every stored object parses as JSON with the fields its kind requires, and a fresh host
//!   reads it back;
//! - no event refers to an incident or deployment that does not exist, and no object has more
//!   change events than recorded changes (an event is only emitted after its write);
//! - the fresh host serves writes, and the next round's storm runs on the same files.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use integration_tests::{infra_component, TestHost};
use serde_json::{json, Value};

const ROUNDS: usize = 4;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Starts the storm over `dir` (`plugins/` and `data/`).
fn start_storm(dir: &Path) -> Child {
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_write-storm"));
    assert!(
        binary.exists(),
        "the write-storm binary is missing at {}; build it with \
         `cargo build -p integration-tests --bin write-storm`",
        binary.display()
    );
    Command::new(binary)
        .arg("--plugins")
        .arg(dir.join("plugins"))
        .arg("--data")
        .arg(dir.join("data"))
        .arg("--cache")
        .arg(workspace_root().join("target/test-cache"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn write-storm")
}

/// Waits until the storm reports `calls` successful calls (or fails after `limit`), then
/// kills it with SIGKILL. Returns the last count it reported.
fn kill_after(mut child: Child, calls: u64, limit: Duration) -> u64 {
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + limit;
    let mut seen = 0;
    while seen < calls {
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(left) {
            Ok(line) => {
                if let Some(count) = line.strip_prefix("calls ") {
                    seen = count.parse().unwrap();
                }
            }
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                panic!("the storm stalled at {seen} calls (exit: {status:?})");
            }
        }
    }
    // `Child::kill` sends SIGKILL on Unix, to this child's PID only.
    child.kill().expect("SIGKILL the storm");
    let status = child.wait().expect("reap the storm");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(9),
        "the storm ended by itself: {status:?}"
    );
    seen
}

/// Reads every object and event straight from the file and checks them.
fn check_database(db: &Path) -> (usize, usize) {
    let connection = rusqlite::Connection::open(db).expect("open database");
    let integrity: String = connection
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");

    let required: HashMap<&str, &[&str]> = HashMap::from([
        (
            "infra_incident",
            &[
                "id",
                "session_id",
                "title",
                "severity",
                "status",
                "timeline",
            ][..],
        ),
        (
            "infra_deploy",
            &[
                "id",
                "session_id",
                "service",
                "version",
                "environment",
                "status",
                "history",
            ][..],
        ),
    ]);
    let mut objects: HashMap<(String, String), Value> = HashMap::new();
    let mut statement = connection
        .prepare("SELECT kind, id, data, version FROM objects")
        .unwrap();
    let rows = statement
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })
        .unwrap();
    for row in rows {
        let (kind, id, data, version) = row.unwrap();
        let value: Value = serde_json::from_str(&data)
            .unwrap_or_else(|e| panic!("{kind} {id} is not JSON ({e}): {data}"));
        for field in required.get(kind.as_str()).copied().unwrap_or_default() {
            assert!(
                value.get(*field).is_some_and(|v| !v.is_null()),
                "{kind} {id} lacks {field}: {value}"
            );
        }
        assert_eq!(value["id"], id.as_str(), "{kind} {id} stores another id");
        let changes = match kind.as_str() {
            "infra_incident" => value["timeline"].as_array().unwrap().len(),
            "infra_deploy" => value["history"].as_array().unwrap().len(),
            _ => 0,
        };
        // One write to create, one per recorded change.
        if changes > 0 || kind == "infra_incident" {
            assert_eq!(version as usize, 1 + changes, "{kind} {id}: {value}");
        }
        objects.insert((kind, id), value);
    }

    let mut events_per_object: HashMap<(String, String), usize> = HashMap::new();
    let mut statement = connection
        .prepare("SELECT id, kind, payload FROM events")
        .unwrap();
    let rows = statement
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })
        .unwrap();
    let mut events = 0;
    for row in rows {
        let (id, kind, payload) = row.unwrap();
        events += 1;
        let payload: Value = serde_json::from_str(&payload)
            .unwrap_or_else(|e| panic!("event {id} payload is not JSON ({e})"));
        for (field, object_kind) in [
            ("incident_id", "infra_incident"),
            ("deployment_id", "infra_deploy"),
        ] {
            if let Some(object_id) = payload[field].as_str() {
                let key = (object_kind.to_string(), object_id.to_string());
                assert!(
                    objects.contains_key(&key),
                    "event {id} ({kind}) refers to a missing {object_kind} {object_id}"
                );
                if kind != "infra.incident.opened" {
                    *events_per_object.entry(key).or_default() += 1;
                }
            }
        }
    }
    for (key, count) in events_per_object {
        let object = &objects[&key];
        let changes = object["timeline"]
            .as_array()
            .or_else(|| object["history"].as_array())
            .map_or(0, Vec::len);
        assert!(
            count <= changes,
            "{key:?} has {count} change events but only {changes} recorded changes"
        );
    }
    (objects.len(), events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_killed_with_sigkill_leaves_a_sound_database() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    std::fs::copy(infra_component(), dir.path().join("plugins/infra.wasm")).unwrap();
    let db = dir.path().join("data/rusvel.db");

    let mut previous_objects = 0;
    for round in 0..ROUNDS {
        let child = start_storm(dir.path());
        // Kill at a different depth each round.
        let target = 150 + 97 * round as u64;
        let reached = kill_after(child, target, Duration::from_secs(120));
        assert!(reached >= target);

        let (objects, events) = check_database(&db);
        assert!(
            objects > previous_objects,
            "round {round}: nothing was written ({objects} objects)"
        );
        previous_objects = objects;

        // A fresh host opens the same files, reads every object and keeps writing.
        let host = TestHost::load(dir.path()).await.expect("host reopens");
        let t = TestHost {
            host,
            dir: tempfile::tempdir().unwrap(),
            session: rusvel_host::clock::new_id(),
        };
        for kind in ["infra_incident", "infra_deploy"] {
            let listed = t
                .host
                .store()
                .list(kind, &Default::default())
                .await
                .unwrap();
            assert!(!listed.is_empty(), "{kind}");
            for object in listed {
                let id = object["id"].as_str().unwrap();
                let read = t.host.store().get(kind, id).await.unwrap();
                assert_eq!(read.as_ref(), Some(&object), "{kind} {id}");
            }
        }
        let opened = t
            .ok(
                "infra.incidents.create",
                json!({"title": format!("after crash {round}"), "severity": "P1"}),
            )
            .await;
        assert!(opened["incident_id"].is_string());
        t.host.shutdown_all().await.unwrap();
        drop(t);
        eprintln!(
            "round {round}: killed after {reached} calls; {objects} objects, {events} events"
        );
    }
    check_database(&db);
}
