//! The job worker against real components: the `echo` fixture (`make -C tests/fixtures`
//! builds `tests/fixtures/out/echo.wasm`; it completes `echo.job` with the job's payload)
//! and the Infra component's `infra.health_scan` (`$INFRA_COMPONENT` or the workspace's
//! `guest-release` build).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusvel_host::ports::{Job, JobFilter, JobStatus, NewJob};
use rusvel_host::worker::{self, JobRun, WorkerOptions};
use rusvel_host::{HostConfig, PluginHost};
use serde_json::{json, Value};

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn echo_component() -> PathBuf {
    let path = workspace().join("tests/fixtures/out/echo.wasm");
    assert!(
        path.exists(),
        "build the fixtures first (`make -C tests/fixtures`): {}",
        path.display()
    );
    path
}

fn infra_component() -> PathBuf {
    let path = std::env::var_os("INFRA_COMPONENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/wasm32-wasip2/guest-release/dept_infra.wasm"));
    assert!(
        path.exists(),
        "build the component first (`make test`): {}",
        path.display()
    );
    path
}

struct Setup {
    host: Arc<PluginHost>,
    _dir: tempfile::TempDir,
}

/// A host over a plugin directory holding `components` as (file name, source path).
async fn setup(components: &[(&str, PathBuf)]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    for (name, source) in components {
        std::fs::copy(source, plugins.join(name)).unwrap();
    }
    let mut config = HostConfig::new(&plugins, dir.path().join("data"));
    config.cache_dir = Some(std::env::temp_dir().join("rusvel-host-test-cache"));
    let host = PluginHost::load(config).await.unwrap();
    assert!(host.failures().is_empty(), "{:?}", host.failures());
    Setup {
        host: Arc::new(host),
        _dir: dir,
    }
}

fn new_job(owner: &str, kind: &str, payload: Value, max_retries: u32) -> NewJob {
    NewJob {
        session_id: rusvel_host::clock::new_id(),
        kind: kind.into(),
        payload,
        max_retries,
        metadata: json!({}),
        scheduled_at: None,
        owner: owner.into(),
    }
}

async fn job(host: &PluginHost, id: &str) -> Job {
    host.ports().jobs.get(id).await.unwrap().unwrap()
}

#[tokio::test]
async fn draining_runs_due_echo_jobs_and_records_their_results() {
    let setup = setup(&[("echo.wasm", echo_component())]).await;
    let jobs = &setup.host.ports().jobs;
    assert_eq!(setup.host.job_kinds(), ["echo.job"]);
    let first = jobs
        .enqueue(new_job("echo", "echo.job", json!({"n": 1}), 0))
        .await
        .unwrap();
    let second = jobs
        .enqueue(new_job("echo", "echo.job", json!({"n": 2}), 0))
        .await
        .unwrap();
    let mut later = new_job("echo", "echo.job", json!({"n": 3}), 0);
    later.scheduled_at = Some("2999-01-01T00:00:00Z".into());
    let later = jobs.enqueue(later).await.unwrap();
    let unhandled = jobs
        .enqueue(new_job("nobody", "nobody.job", json!({}), 0))
        .await
        .unwrap();

    let report = worker::drain(&setup.host).await.unwrap();

    assert_eq!((report.succeeded, report.held, report.failed), (2, 0, 0));
    for (id, n) in [(&first, 1), (&second, 2)] {
        let done = job(&setup.host, id).await;
        assert_eq!(done.status, JobStatus::Succeeded);
        assert_eq!(
            done.result,
            Some(json!({"n": n})),
            "echo returns the payload"
        );
        assert!(done.started_at.is_some() && done.completed_at.is_some());
    }
    assert_eq!(job(&setup.host, &later).await.status, JobStatus::Queued);
    assert_eq!(job(&setup.host, &unhandled).await.status, JobStatus::Queued);
}

#[tokio::test]
async fn a_started_worker_wakes_on_enqueue_and_stops_cleanly() {
    let setup = setup(&[("echo.wasm", echo_component())]).await;
    // A poll interval far longer than the test: only the enqueue signal can wake it.
    let worker = setup.host.start_worker(WorkerOptions {
        poll_interval: Duration::from_secs(3600),
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let id = setup
        .host
        .ports()
        .jobs
        .enqueue(new_job("echo", "echo.job", json!({"woke": true}), 0))
        .await
        .unwrap();

    let started = Instant::now();
    while job(&setup.host, &id).await.status != JobStatus::Succeeded {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the worker did not wake"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!worker.is_finished());
    let report = tokio::time::timeout(Duration::from_secs(10), worker.stop())
        .await
        .expect("the worker stops");

    assert_eq!(report.succeeded, 1);
    assert_eq!(
        job(&setup.host, &id).await.result,
        Some(json!({"woke": true}))
    );
}

#[tokio::test]
async fn run_until_returns_when_its_shutdown_resolves() {
    let setup = setup(&[("echo.wasm", echo_component())]).await;
    let options = WorkerOptions {
        poll_interval: Duration::from_millis(20),
    };
    let started = Instant::now();

    let report = worker::run_until(
        &setup.host,
        &options,
        tokio::time::sleep(Duration::from_millis(200)),
    )
    .await;

    assert_eq!(report.ran(), 0);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn the_infra_health_scan_job_runs_on_the_infra_component() {
    let setup = setup(&[("infra.wasm", infra_component())]).await;
    assert!(
        setup
            .host
            .job_kinds()
            .contains(&"infra.health_scan".to_string()),
        "kinds: {:?}",
        setup.host.job_kinds()
    );
    let session = rusvel_host::clock::new_id();
    let mut scan = new_job(
        "infra",
        "infra.health_scan",
        json!({ "session_id": session }),
        0,
    );
    scan.session_id = session.clone();
    let id = setup.host.ports().jobs.enqueue(scan).await.unwrap();

    let run = worker::run_one(&setup.host).await.unwrap().unwrap();

    assert_eq!(
        run,
        JobRun::Succeeded {
            id: id.clone(),
            kind: "infra.health_scan".into()
        }
    );
    let done = job(&setup.host, &id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    let result = done.result.unwrap();
    assert_eq!(result["session_id"], session.as_str());
    assert_eq!(
        result["probed"], 0,
        "a session without checks probes nothing"
    );
}

#[tokio::test]
async fn a_failing_handler_fails_the_job_with_its_error_and_retries_it_later() {
    let setup = setup(&[("infra.wasm", infra_component())]).await;
    let jobs = &setup.host.ports().jobs;
    let id = jobs
        .enqueue(new_job(
            "infra",
            "infra.health_scan",
            json!({ "session_id": "not-a-session" }),
            1,
        ))
        .await
        .unwrap();

    let report = worker::drain(&setup.host).await.unwrap();

    assert_eq!(report.failed, 1);
    let retried = job(&setup.host, &id).await;
    assert_eq!((retried.status, retried.retries), (JobStatus::Queued, 1));
    let error = retried.error.unwrap();
    assert!(error.contains("session_id"), "{error}");
    assert!(
        retried.scheduled_at.unwrap() > rusvel_host::clock::now(),
        "it waits out its backoff"
    );
    let failed = jobs
        .list(&JobFilter {
            statuses: vec![JobStatus::Failed],
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(failed.is_empty(), "one retry remains");
}
