//! Real monitoring through the built component: checks probe loopback fixture servers over
//! `wasi:http`, granted by the plugin's `allow_outbound` sidecar; verdicts, transitions,
//! alerts, incidents, transport error categories and the `infra.health_scan` job.
//!
//! No assertion depends on how fast anything runs: slow cases use server delays far from the
//! limits they are compared with (the exact-equality rule is an engine unit test).

use std::time::Duration;

use integration_tests::http_fixture::{redirect_chain, redirect_loop, HttpFixture, Route};
use integration_tests::TestHost;
use serde_json::{json, Value};

/// The sidecar granting loopback HTTP on any port.
fn loopback_sidecar() -> Value {
    json!({ "allow_outbound": ["http://127.0.0.1:*"] })
}

async fn host() -> TestHost {
    TestHost::with_sidecar(loopback_sidecar()).await
}

/// Registers a check of `url` with extra settings; returns its id.
async fn add(t: &TestHost, service: &str, url: &str, settings: Value) -> String {
    let mut args = json!({ "service": service, "endpoint": url });
    for (key, value) in settings.as_object().unwrap() {
        args[key] = value.clone();
    }
    let added = t.ok("infra.monitor.add_check", args).await;
    added["check_id"].as_str().unwrap().to_string()
}

/// Probes one check now; returns its probe report.
async fn probe(t: &TestHost, check: &str) -> Value {
    let run = t
        .ok("infra.monitor.run", json!({ "check_id": check }))
        .await;
    assert_eq!(run["results"].as_array().unwrap().len(), 1, "{run}");
    run["results"][0].clone()
}

async fn count_kind(t: &TestHost, kind: &str) -> usize {
    t.event_kinds()
        .await
        .iter()
        .filter(|k| k.as_str() == kind)
        .count()
}

/// A port nothing listens on: bound, then released.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
}

#[tokio::test]
async fn status_codes_are_judged_after_redirects() {
    let server = HttpFixture::start(vec![
        ("/ok", Route::status(200, "fine")),
        ("/created", Route::status(204, "")),
        ("/moved", Route::redirect("/ok")),
        ("/missing", Route::status(404, "no")),
        ("/broken", Route::status(500, "boom")),
        ("/unavailable", Route::status(503, "later")),
        ("/not-modified", Route::status(304, "")),
    ])
    .await
    .unwrap();
    let t = host().await;
    let cases = [
        ("/ok", "pass", 200, 0),
        ("/created", "pass", 204, 0),
        ("/moved", "pass", 200, 1),
        ("/not-modified", "pass", 304, 0),
        ("/missing", "fail", 404, 0),
        ("/broken", "fail", 500, 0),
        ("/unavailable", "fail", 503, 0),
    ];
    for (path, outcome, code, redirects) in cases {
        let check = add(&t, path, &server.url(path), json!({})).await;
        let report = probe(&t, &check).await;
        assert_eq!(report["outcome"], outcome, "{path}: {report}");
        assert_eq!(report["status_code"], code, "{path}: {report}");
        assert_eq!(report["redirects"], redirects, "{path}: {report}");
        assert_eq!(report["error"], Value::Null, "{path}: {report}");
    }
    // A 4xx accepted on purpose passes.
    let check = add(
        &t,
        "teapot",
        &server.url("/missing"),
        json!({"accepted_status": [404]}),
    )
    .await;
    assert_eq!(probe(&t, &check).await["outcome"], "pass");
    assert_eq!(t.count("infra_probe").await, cases.len() as u64 + 1);
}

#[tokio::test]
async fn ten_redirects_are_followed_and_the_eleventh_fails() {
    let mut routes = redirect_chain("ten", 10, "/ok");
    routes.extend(redirect_chain("eleven", 11, "/ok"));
    routes.extend(redirect_loop("loop"));
    routes.push(("/ok".to_string(), Route::status(200, "ok")));
    let server = HttpFixture::start_owned(routes).await.unwrap();
    let t = host().await;

    let ten = add(&t, "ten", &server.url("/ten/0"), json!({})).await;
    let report = probe(&t, &ten).await;
    assert_eq!(report["outcome"], "pass", "{report}");
    assert_eq!(report["redirects"], 10);
    assert_eq!(report["final_url"], server.url("/ok"));

    for (service, path) in [("eleven", "/eleven/0"), ("loop", "/loop/a")] {
        let check = add(&t, service, &server.url(path), json!({})).await;
        let report = probe(&t, &check).await;
        assert_eq!(report["outcome"], "fail", "{report}");
        assert_eq!(
            report["error"]["category"], "too_many_redirects",
            "{report}"
        );
        assert_eq!(report["status_code"], Value::Null);
        assert_eq!(report["redirects"], 10);
    }
}

#[tokio::test]
async fn latency_is_judged_against_the_limit_and_the_degraded_threshold() {
    let server = HttpFixture::start(vec![
        ("/fast", Route::status(200, "ok")),
        ("/slow", Route::slow(Duration::from_millis(400), "ok")),
    ])
    .await
    .unwrap();
    let t = host().await;

    // Far below a generous limit: passes.
    let fast = add(
        &t,
        "fast",
        &server.url("/fast"),
        json!({"response_limit_ms": 20_000}),
    )
    .await;
    assert_eq!(probe(&t, &fast).await["outcome"], "pass");

    // A 400 ms answer against a 100 ms limit: fails with the status code kept.
    let limit = json!({"response_limit_ms": 100, "degraded_ms": 50});
    let over = add(&t, "over", &server.url("/slow"), limit).await;
    let report = probe(&t, &over).await;
    assert_eq!(report["outcome"], "fail", "{report}");
    assert_eq!(report["status_code"], 200);
    assert!(report["response_ms"].as_u64().unwrap() >= 100, "{report}");
    assert!(
        report["reason"].as_str().unwrap().contains("limit"),
        "{report}"
    );

    // Slow but under the limit: Degraded at once, one alert.
    let settings = json!({"response_limit_ms": 20_000, "degraded_ms": 100});
    let slow = add(&t, "slow", &server.url("/slow"), settings).await;
    let report = probe(&t, &slow).await;
    assert_eq!(report["outcome"], "degraded", "{report}");
    assert_eq!(report["status"], "degraded");
    assert_eq!(report["alerts"], json!(["infra.alert.fired"]));
    let status = t.ok("infra.monitor.status", json!({})).await;
    assert_eq!(status["summary"]["degraded_services"], json!(["slow"]));
    let slow_rollup = status["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "slow")
        .unwrap()
        .clone();
    assert_eq!(slow_rollup["status"], "degraded");
}

#[tokio::test]
async fn transport_failures_have_a_category_and_no_status_code() {
    let server = HttpFixture::start(vec![("/hang", Route::slow(Duration::from_secs(5), "late"))])
        .await
        .unwrap();
    let t = host().await;

    let refused = format!("http://127.0.0.1:{}/health", closed_port());
    let check = add(&t, "gone", &refused, json!({"failure_threshold": 1})).await;
    let report = probe(&t, &check).await;
    assert_eq!(report["outcome"], "fail");
    assert_eq!(
        report["error"]["category"], "connection_refused",
        "{report}"
    );
    assert_eq!(report["status_code"], Value::Null);
    assert_eq!(report["status"], "down");

    let settings = json!({"timeout_ms": 300, "interval_seconds": 10});
    let check = add(&t, "hang", &server.url("/hang"), settings).await;
    let report = probe(&t, &check).await;
    assert_eq!(report["error"]["category"], "timeout", "{report}");
    assert_eq!(report["status_code"], Value::Null);

    // The stored probe results carry the same: an error, and no status code.
    let probes = t
        .host
        .store()
        .list("infra_probe", &Default::default())
        .await
        .unwrap();
    assert_eq!(probes.len(), 2);
    for probe in probes {
        assert_eq!(probe["status_code"], Value::Null, "{probe}");
        assert!(probe["error"]["category"].is_string(), "{probe}");
    }
}

#[tokio::test]
async fn a_destination_outside_the_allowlist_is_denied() {
    let server = HttpFixture::start(vec![("/ok", Route::status(200, "ok"))])
        .await
        .unwrap();
    let other_port = closed_port();
    let sidecars = [
        None,
        Some(json!({ "allow_outbound": [format!("http://127.0.0.1:{other_port}")] })),
    ];
    for sidecar in sidecars {
        let t = match sidecar.clone() {
            Some(sidecar) => TestHost::with_sidecar(sidecar).await,
            None => TestHost::start().await,
        };
        let check = add(&t, "api", &server.url("/ok"), json!({})).await;
        let report = probe(&t, &check).await;
        assert_eq!(
            report["error"]["category"], "denied",
            "{sidecar:?}: {report}"
        );
        assert_eq!(report["status_code"], Value::Null);
    }
    assert_eq!(
        server.hits(),
        0,
        "a denied request never reaches the server"
    );
}

#[tokio::test]
async fn body_conditions_check_substrings_and_json_pointers() {
    let server = HttpFixture::start(vec![
        ("/text", Route::status(200, "status: all good")),
        (
            "/json",
            Route::status(200, r#"{"status": "ok", "checks": {"db": true}}"#),
        ),
    ])
    .await
    .unwrap();
    let t = host().await;
    let cases = [
        ("/text", json!({"body_contains": "all good"}), "pass"),
        ("/text", json!({"body_contains": "ALL GOOD"}), "fail"),
        (
            "/json",
            json!({"body_json_pointer": "/status", "body_json_equals": "ok"}),
            "pass",
        ),
        (
            "/json",
            json!({"body_json_pointer": "/checks/db", "body_json_equals": true}),
            "pass",
        ),
        (
            "/json",
            json!({"body_json_pointer": "/status", "body_json_equals": "down"}),
            "fail",
        ),
        (
            "/json",
            json!({"body_json_pointer": "/missing", "body_json_equals": 1}),
            "fail",
        ),
        (
            "/text",
            json!({"body_json_pointer": "/status", "body_json_equals": "ok"}),
            "fail",
        ),
    ];
    for (index, (path, condition, outcome)) in cases.iter().enumerate() {
        let check = add(
            &t,
            &format!("svc{index}"),
            &server.url(path),
            condition.clone(),
        )
        .await;
        let report = probe(&t, &check).await;
        assert_eq!(report["outcome"], *outcome, "{condition}: {report}");
        assert_eq!(report["status_code"], 200);
    }
}

#[tokio::test]
async fn thresholds_move_the_status_and_alerts_fire_once_per_transition_across_a_restart() {
    let server = HttpFixture::start(vec![
        ("/ok", Route::status(200, "ok")),
        ("/fail", Route::status(500, "boom")),
    ])
    .await
    .unwrap();
    let t = host().await;
    let check = add(&t, "api", &server.url("/ok"), json!({})).await;
    let point = |path: &str| json!({"check_id": check, "endpoint": server.url(path)});

    assert_eq!(probe(&t, &check).await["status"], "up");

    // Two failures under the threshold of 3 leave it Up; the third makes it Down.
    t.ok("infra.monitor.update_check", point("/fail")).await;
    for _ in 0..2 {
        assert_eq!(probe(&t, &check).await["status"], "up");
    }
    let report = probe(&t, &check).await;
    assert_eq!(report["status"], "down");
    assert_eq!(report["transition"], json!({"from": "up", "to": "down"}));
    assert_eq!(count_kind(&t, "infra.alert.fired").await, 1);

    // Still failing after a restart: no second alert.
    let t = t.restart().await;
    let report = probe(&t, &check).await;
    assert_eq!(report["status"], "down");
    assert_eq!(report["transition"], Value::Null);
    assert_eq!(count_kind(&t, "infra.alert.fired").await, 1);

    // One success is not enough (success threshold 2); the second brings it back Up.
    t.ok("infra.monitor.update_check", point("/ok")).await;
    assert_eq!(probe(&t, &check).await["status"], "down");
    assert_eq!(count_kind(&t, "infra.alert.resolved").await, 0);
    let t = t.restart().await;
    let report = probe(&t, &check).await;
    assert_eq!(report["status"], "up");
    assert_eq!(report["alerts"], json!(["infra.alert.resolved"]));
    probe(&t, &check).await;
    assert_eq!(count_kind(&t, "infra.alert.fired").await, 1);
    assert_eq!(count_kind(&t, "infra.alert.resolved").await, 1);

    let fired = t
        .events()
        .await
        .into_iter()
        .find(|e| e.kind == "infra.alert.fired")
        .unwrap();
    assert_eq!(fired.payload["check_id"], json!(check));
    assert_eq!(fired.payload["status"], "down");
    assert_eq!(fired.payload["previous_status"], "up");
    assert_eq!(fired.payload["status_code"], 500);
    assert_eq!(fired.payload["service"], "api");
}

#[tokio::test]
async fn a_check_going_down_opens_one_linked_incident_when_configured() {
    let server = HttpFixture::start(vec![("/ok", Route::status(200, "ok"))])
        .await
        .unwrap();
    let mut sidecar = loopback_sidecar();
    sidecar["config"] = json!({"auto_open_incident": true});
    let t = TestHost::with_sidecar(sidecar).await;
    let down = format!("http://127.0.0.1:{}/", closed_port());
    let check = add(
        &t,
        "db",
        &down,
        json!({"failure_threshold": 1, "success_threshold": 1}),
    )
    .await;

    let report = probe(&t, &check).await;
    assert_eq!(report["incident_opened"], true, "{report}");
    let incident = report["incident_id"].clone();
    // Up and Down again while the incident is open: no second incident.
    t.ok(
        "infra.monitor.update_check",
        json!({"check_id": check, "endpoint": server.url("/ok")}),
    )
    .await;
    assert_eq!(probe(&t, &check).await["status"], "up");
    t.ok(
        "infra.monitor.update_check",
        json!({"check_id": check, "endpoint": down}),
    )
    .await;
    let report = probe(&t, &check).await;
    assert_eq!(report["incident_id"], incident);
    assert_eq!(report["incident_opened"], false);
    assert_eq!(t.count("infra_incident").await, 1);
    assert_eq!(count_kind(&t, "infra.incident.opened").await, 1);
    let stored = t
        .host
        .store()
        .get("infra_incident", incident.as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(stored.unwrap()["metadata"]["check_id"], json!(check));
}

#[tokio::test]
async fn the_health_scan_job_probes_due_checks_and_the_schedule_tool_queues_it() {
    let server = HttpFixture::start(vec![("/ok", Route::status(200, "ok"))])
        .await
        .unwrap();
    let t = host().await;
    let plugin = t.host.plugin("infra").unwrap();
    assert!(plugin
        .registration()
        .job_kinds
        .contains(&"infra.health_scan".to_string()));
    let jobs = &plugin.manifest_json()["jobs"];
    assert_eq!(jobs[0]["kind"], "infra.health_scan");
    assert_eq!(jobs[0]["requires_approval"], false);

    add(&t, "a", &server.url("/ok"), json!({})).await;
    add(&t, "b", &server.url("/ok"), json!({})).await;
    let scheduled = t
        .ok("infra.monitor.schedule", json!({"cron": "*/1 * * * *"}))
        .await;
    let job_id = scheduled["job_id"].as_str().unwrap().to_string();
    let job = t
        .host
        .ports()
        .jobs
        .get(&job_id)
        .await
        .unwrap()
        .expect("job stored");
    assert_eq!(job.kind, "infra.health_scan");
    assert_eq!(job.cron.as_deref(), Some("*/1 * * * *"));
    assert_eq!(job.payload["session_id"], json!(t.session));

    let first = t.host.handle_job(&job).await.unwrap();
    let rusvel_host::JobResult::Completed(first) = first else {
        panic!("{first:?}")
    };
    assert_eq!(
        (first["checks"].as_u64(), first["probed"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(first["transitions"].as_array().unwrap().len(), 2, "{first}");
    // Nothing is due again within the 60 s interval.
    let second = t.host.handle_job(&job).await.unwrap();
    let rusvel_host::JobResult::Completed(second) = second else {
        panic!("{second:?}")
    };
    assert_eq!(
        (second["probed"].as_u64(), second["skipped"].as_u64()),
        (Some(0), Some(2))
    );

    // Scheduling again replaces the earlier schedule.
    let again = t
        .ok("infra.monitor.schedule", json!({"every_minutes": 5}))
        .await;
    assert_eq!(again["cron"], "*/5 * * * *");
    assert_eq!(again["replaced_job_ids"], json!([job_id]));
}

#[tokio::test]
async fn a_hundred_sequential_probes_all_succeed() {
    let server = HttpFixture::start(vec![("/ok", Route::status(200, "ok"))])
        .await
        .unwrap();
    let t = host().await;
    let check = add(&t, "api", &server.url("/ok"), json!({})).await;
    let mut failures = Vec::new();
    for attempt in 0..120 {
        let report = probe(&t, &check).await;
        if report["outcome"] != "pass" {
            failures.push((attempt, report));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 120 probes failed: {failures:?}",
        failures.len()
    );
    assert_eq!(server.hits(), 120);
}

#[tokio::test]
async fn invalid_check_settings_are_refused_naming_the_fields() {
    let t = host().await;
    let cases = [
        (
            json!({"timeout_ms": 5000, "interval_seconds": 5}),
            ["timeout_ms", "interval_seconds"],
        ),
        (
            json!({"response_limit_ms": 500, "degraded_ms": 500}),
            ["degraded_ms", "response_limit_ms"],
        ),
    ];
    for (settings, fields) in cases {
        let mut args = json!({"service": "api", "endpoint": "http://127.0.0.1:1/"});
        for (key, value) in settings.as_object().unwrap() {
            args[key] = value.clone();
        }
        let error = t.refused("infra.monitor.add_check", args).await;
        for field in fields {
            assert!(error.contains(field), "{error} should name {field}");
        }
    }
    assert_eq!(t.count("infra_healthcheck").await, 0);
}

/// The periodic scan end to end: the schedule tool queues a recurring job, the host's worker
/// dequeues it when due and runs it on the component, the probe results are stored, and the
/// next run of the schedule is queued.
#[tokio::test]
async fn a_scheduled_scan_runs_through_the_worker_and_stores_its_results() {
    let server = HttpFixture::start(vec![("/ok", Route::status(200, "ok"))])
        .await
        .unwrap();
    let t = host().await;
    let check = add(&t, "api", &server.url("/ok"), json!({})).await;
    // Six fields: every second, so the first run is due almost at once.
    t.ok("infra.monitor.schedule", json!({"cron": "* * * * * *"}))
        .await;

    let mut run = None;
    for _ in 0..50 {
        run = rusvel_host::worker::run_one(&t.host).await.unwrap();
        if run.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let Some(rusvel_host::worker::JobRun::Succeeded { id, kind }) = run else {
        panic!("the scan did not run: {run:?}");
    };
    assert_eq!(kind, "infra.health_scan");
    let done = t.host.ports().jobs.get(&id).await.unwrap().unwrap();
    let result = done.result.expect("the job's result is stored");
    assert_eq!(result["probed"], 1, "{result}");
    assert_eq!(t.count("infra_probe").await, 1);
    let stored = t
        .host
        .store()
        .get("infra_healthcheck", &check)
        .await
        .unwrap()
        .unwrap();
    assert!(stored["last_checked"].is_string());
    let queued = t
        .host
        .ports()
        .jobs
        .list(&rusvel_host::ports::JobFilter {
            kinds: vec!["infra.health_scan".into()],
            statuses: vec![rusvel_host::ports::JobStatus::Queued],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(queued.len(), 1, "the schedule's next run is queued");
    assert_ne!(queued[0].id, id);
    assert_eq!(queued[0].cron.as_deref(), Some("* * * * * *"));
}
