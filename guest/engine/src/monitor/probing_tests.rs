//! Probing over a scripted HTTP port and a manual monotonic clock: conditions, strict limits,
//! redirects, transport errors, thresholds, alerts, incidents and the scan job.

use std::time::Duration;

use serde_json::json;

use super::check::{CheckSettings, StatusRange};
use super::probe::{fetch, MAX_REDIRECTS};
use super::*;
use crate::config::InfraConfig;
use crate::engine::{JobOutcome, HEALTH_SCAN_JOB};
use crate::events::{ALERT_FIRED, ALERT_RESOLVED, INCIDENT_OPENED};
use crate::incident::{IncidentStatus, KIND as INCIDENT_KIND};
use crate::memory::HttpReply;
use crate::ports::{ErrorCategory, Job, JobStatus, ObjectStore};
use crate::testing::Fixture;

const URL: &str = "http://svc.test/health";

fn add(fx: &Fixture, settings: CheckSettings) -> HealthCheck {
    let new = NewHealthCheck {
        service: "api".into(),
        endpoint: URL.into(),
        settings,
    };
    fx.engine.monitor().add_check(fx.session, new).unwrap()
}

fn probe(fx: &Fixture, check: &HealthCheck) -> ProbeReport {
    fx.engine
        .monitor()
        .probe_check(fx.session, check.id)
        .unwrap()
}

fn answer(fx: &Fixture, status: u16, latency_ms: u64) {
    fx.ports
        .http
        .set(URL, HttpReply::status(status, "ok", latency_ms));
}

fn limits(limit: u64, degraded: u64) -> CheckSettings {
    CheckSettings {
        response_limit_ms: Some(limit),
        degraded_ms: Some(degraded),
        ..CheckSettings::default()
    }
}

fn alerts(fx: &Fixture) -> Vec<String> {
    fx.event_kinds()
        .into_iter()
        .filter(|kind| kind.starts_with("infra.alert."))
        .collect()
}

#[test]
fn a_limit_fails_at_exactly_the_limit_and_passes_one_millisecond_below() {
    let fx = Fixture::new();
    let check = add(&fx, limits(500, 400));
    answer(&fx, 200, 500);
    let report = probe(&fx, &check);
    assert_eq!(report.verdict.outcome, ProbeOutcome::Fail);
    assert_eq!(report.verdict.response_ms, 500);
    assert_eq!(report.verdict.status_code, Some(200));
    assert!(report.verdict.reason.unwrap().contains("limit of 500 ms"));

    answer(&fx, 200, 499);
    assert_eq!(probe(&fx, &check).verdict.outcome, ProbeOutcome::Degraded);
}

#[test]
fn degraded_starts_at_exactly_the_degraded_threshold() {
    let fx = Fixture::new();
    let check = add(&fx, limits(500, 200));
    answer(&fx, 200, 199);
    let fast = probe(&fx, &check);
    assert_eq!(fast.verdict.outcome, ProbeOutcome::Pass);
    assert_eq!(fast.status, Some(CheckStatus::Up));
    answer(&fx, 200, 200);
    let slow = probe(&fx, &check);
    assert_eq!(slow.verdict.outcome, ProbeOutcome::Degraded);
    assert_eq!(slow.status, Some(CheckStatus::Degraded));
}

#[test]
fn status_codes_default_to_200_through_399_and_can_be_listed() {
    let fx = Fixture::new();
    let check = add(&fx, CheckSettings::default());
    for (status, outcome) in [
        (200, ProbeOutcome::Pass),
        (399, ProbeOutcome::Pass),
        (199, ProbeOutcome::Fail),
        (400, ProbeOutcome::Fail),
        (503, ProbeOutcome::Fail),
    ] {
        answer(&fx, status, 1);
        assert_eq!(probe(&fx, &check).verdict.outcome, outcome, "{status}");
    }
    let settings = CheckSettings {
        accepted_status: Some(vec![
            StatusRange::parse("204").unwrap(),
            StatusRange::parse("400-404").unwrap(),
        ]),
        ..CheckSettings::default()
    };
    let fx = Fixture::new();
    let check = add(&fx, settings);
    for (status, outcome) in [
        (204, ProbeOutcome::Pass),
        (404, ProbeOutcome::Pass),
        (200, ProbeOutcome::Fail),
    ] {
        answer(&fx, status, 1);
        assert_eq!(probe(&fx, &check).verdict.outcome, outcome, "{status}");
    }
}

#[test]
fn redirects_are_followed_up_to_ten_hops_and_the_eleventh_fails() {
    let fx = Fixture::new();
    let http = &fx.ports.http;
    // /r0 -> r1 -> ... (relative) -> /r9 -> /final: ten redirects.
    for hop in 0..MAX_REDIRECTS {
        let next = if hop + 1 == MAX_REDIRECTS {
            "/final".to_string()
        } else {
            format!("r{}", hop + 1)
        };
        http.set(
            &format!("http://svc.test/r{hop}"),
            HttpReply::redirect(&next, 5),
        );
    }
    http.set("http://svc.test/final", HttpReply::status(200, "ok", 5));
    let timer = &*fx.ports.monotonic;
    let fetched = fetch(&**http, timer, "http://svc.test/r0", Duration::from_secs(5));
    assert_eq!(fetched.redirects, 10);
    assert_eq!(fetched.final_url, "http://svc.test/final");
    assert_eq!(fetched.result.unwrap().status, 200);
    assert_eq!(fetched.response_ms, 55, "every hop counts");

    // One hop more: the eleventh redirect fails, with no status code.
    http.set("http://svc.test/r00", HttpReply::redirect("/r0", 5));
    let fetched = fetch(
        &**http,
        timer,
        "http://svc.test/r00",
        Duration::from_secs(5),
    );
    let error = fetched.result.unwrap_err();
    assert_eq!(error.category, ErrorCategory::TooManyRedirects);
    assert!(
        error.message.contains("too many redirects"),
        "{}",
        error.message
    );
    assert_eq!(fetched.redirects, 10);
}

#[test]
fn a_redirect_loop_fails_as_too_many_redirects() {
    let fx = Fixture::new();
    fx.ports.http.set(URL, HttpReply::redirect("/other", 1));
    fx.ports
        .http
        .set("http://svc.test/other", HttpReply::redirect("health", 1));
    let check = add(&fx, CheckSettings::default());
    let report = probe(&fx, &check);
    assert_eq!(report.verdict.outcome, ProbeOutcome::Fail);
    assert_eq!(report.verdict.status_code, None);
    let error = report.verdict.error.unwrap();
    assert_eq!(error.category, ErrorCategory::TooManyRedirects);
    assert_eq!(fx.ports.http.requests().len(), 11);
}

#[test]
fn a_redirect_without_location_is_the_final_response() {
    let fx = Fixture::new();
    answer(&fx, 302, 1);
    let check = add(&fx, CheckSettings::default());
    let report = probe(&fx, &check);
    assert_eq!(report.verdict.status_code, Some(302));
    assert_eq!(report.redirects, 0);
    assert_eq!(report.verdict.outcome, ProbeOutcome::Pass);
}

#[test]
fn the_timeout_covers_every_hop() {
    let fx = Fixture::new();
    fx.ports.http.set(URL, HttpReply::redirect("/next", 300));
    fx.ports
        .http
        .set("http://svc.test/next", HttpReply::status(200, "ok", 300));
    let settings = CheckSettings {
        timeout_ms: Some(500),
        ..CheckSettings::default()
    };
    let check = add(&fx, settings);
    let report = probe(&fx, &check);
    let error = report.verdict.error.clone().unwrap();
    assert_eq!(error.category, ErrorCategory::Timeout);
    assert_eq!(report.verdict.status_code, None);
    assert_eq!(report.verdict.response_ms, 500);
    let timeouts: Vec<u128> = fx
        .ports
        .http
        .requests()
        .iter()
        .map(|(_, timeout)| timeout.as_millis())
        .collect();
    assert_eq!(timeouts, [500, 200], "the second hop gets what is left");
}

#[test]
fn a_response_at_exactly_the_timeout_is_a_timeout() {
    let fx = Fixture::new();
    let settings = CheckSettings {
        timeout_ms: Some(400),
        response_limit_ms: Some(1000),
        degraded_ms: Some(900),
        ..CheckSettings::default()
    };
    let check = add(&fx, settings);
    answer(&fx, 200, 400);
    let report = probe(&fx, &check);
    assert_eq!(
        report.verdict.error.unwrap().category,
        ErrorCategory::Timeout
    );
    assert_eq!(report.verdict.status_code, None);
}

#[test]
fn transport_errors_have_a_category_and_never_a_status_code() {
    for category in [
        ErrorCategory::Dns,
        ErrorCategory::ConnectionRefused,
        ErrorCategory::Tls,
        ErrorCategory::Denied,
        ErrorCategory::Protocol,
        ErrorCategory::Other,
    ] {
        let fx = Fixture::new();
        fx.ports
            .http
            .set(URL, HttpReply::error(category, "nope", 3));
        let check = add(&fx, CheckSettings::default());
        let report = probe(&fx, &check);
        assert_eq!(report.verdict.outcome, ProbeOutcome::Fail);
        assert_eq!(report.verdict.status_code, None, "{category:?}");
        assert_eq!(report.verdict.error.as_ref().unwrap().category, category);
        assert!(report
            .verdict
            .reason
            .unwrap()
            .starts_with(category.as_str()));
        let stored = fx
            .ports
            .objects
            .list(PROBE_KIND, &Default::default())
            .unwrap();
        assert_eq!(stored[0]["status_code"], json!(null));
        assert_eq!(stored[0]["error"]["category"], json!(category.as_str()));
    }
}

#[test]
fn body_conditions_check_a_substring_or_a_json_pointer() {
    let body = r#"{"status": "ok", "db": {"up": true, "lag": 3}}"#;
    let contains = |text: &str| BodyCondition::Contains { text: text.into() };
    let pointer = |pointer: &str, equals| BodyCondition::JsonPointer {
        pointer: pointer.into(),
        equals,
    };
    let cases = [
        (contains("\"ok\""), ProbeOutcome::Pass),
        (contains("OK"), ProbeOutcome::Fail),
        (pointer("/status", json!("ok")), ProbeOutcome::Pass),
        (pointer("/db/up", json!(true)), ProbeOutcome::Pass),
        (pointer("/db/lag", json!(3)), ProbeOutcome::Pass),
        (pointer("/db/lag", json!("3")), ProbeOutcome::Fail),
        (pointer("/missing", json!(null)), ProbeOutcome::Fail),
    ];
    for (condition, outcome) in cases {
        let fx = Fixture::new();
        fx.ports.http.set(URL, HttpReply::status(200, body, 1));
        let settings = CheckSettings {
            body_condition: Some(Some(condition.clone())),
            ..CheckSettings::default()
        };
        let check = add(&fx, settings);
        assert_eq!(probe(&fx, &check).verdict.outcome, outcome, "{condition:?}");
    }
    let fx = Fixture::new();
    fx.ports
        .http
        .set(URL, HttpReply::status(200, "not json", 1));
    let settings = CheckSettings {
        body_condition: Some(Some(pointer("/status", json!("ok")))),
        ..CheckSettings::default()
    };
    let check = add(&fx, settings);
    let report = probe(&fx, &check);
    assert!(report.verdict.reason.unwrap().contains("not JSON"));
}

#[test]
fn failures_below_the_threshold_leave_the_status_and_the_threshold_makes_it_down() {
    let fx = Fixture::new();
    let check = add(&fx, CheckSettings::default());
    answer(&fx, 500, 1);
    assert_eq!(probe(&fx, &check).status, None, "unknown stays unknown");
    answer(&fx, 200, 1);
    assert_eq!(probe(&fx, &check).status, Some(CheckStatus::Up));
    answer(&fx, 500, 1);
    for _ in 0..2 {
        let report = probe(&fx, &check);
        assert_eq!(report.status, Some(CheckStatus::Up));
        assert_eq!(report.transition, None);
    }
    let down = probe(&fx, &check);
    assert_eq!(down.status, Some(CheckStatus::Down));
    assert_eq!(
        down.transition,
        Some(runner::Transition {
            from: Some(CheckStatus::Up),
            to: Some(CheckStatus::Down)
        })
    );
    let (stored, _) = fx.stored(KIND, check.id);
    assert_eq!(stored["consecutive_failures"], 3);
    assert_eq!(stored["status"], "down");
}

#[test]
fn a_down_check_needs_m_consecutive_successes_to_come_back() {
    let fx = Fixture::new();
    let settings = CheckSettings {
        failure_threshold: Some(1),
        success_threshold: Some(3),
        ..CheckSettings::default()
    };
    let check = add(&fx, settings);
    answer(&fx, 500, 1);
    assert_eq!(probe(&fx, &check).status, Some(CheckStatus::Down));
    answer(&fx, 200, 1);
    for _ in 0..2 {
        assert_eq!(probe(&fx, &check).status, Some(CheckStatus::Down));
    }
    // A failure resets the successes.
    answer(&fx, 500, 1);
    probe(&fx, &check);
    answer(&fx, 200, 1);
    for _ in 0..2 {
        assert_eq!(probe(&fx, &check).status, Some(CheckStatus::Down));
    }
    assert_eq!(probe(&fx, &check).status, Some(CheckStatus::Up));
}

#[test]
fn a_down_check_that_recovers_slowly_comes_back_degraded() {
    let fx = Fixture::new();
    let mut settings = limits(1000, 100);
    settings.failure_threshold = Some(1);
    settings.success_threshold = Some(1);
    let check = add(&fx, settings);
    answer(&fx, 500, 1);
    probe(&fx, &check);
    answer(&fx, 200, 150);
    assert_eq!(probe(&fx, &check).status, Some(CheckStatus::Degraded));
    assert_eq!(alerts(&fx), [ALERT_FIRED, ALERT_FIRED]);
}

#[test]
fn an_alert_fires_once_per_transition_and_resolves_on_the_way_back() {
    let fx = Fixture::new();
    let mut settings = limits(1000, 100);
    settings.success_threshold = Some(2);
    let check = add(&fx, settings);
    answer(&fx, 200, 1);
    probe(&fx, &check);
    assert!(alerts(&fx).is_empty(), "unknown -> up is no alert");

    answer(&fx, 200, 150);
    probe(&fx, &check);
    probe(&fx, &check);
    assert_eq!(alerts(&fx), [ALERT_FIRED], "degraded fires once");

    answer(&fx, 500, 1);
    for _ in 0..6 {
        probe(&fx, &check);
    }
    assert_eq!(alerts(&fx), [ALERT_FIRED, ALERT_FIRED], "down fires once");
    let payload = fx.event_payloads().pop().unwrap();
    assert_eq!(payload["status"], "down");
    assert_eq!(payload["previous_status"], "degraded");
    assert_eq!(payload["status_code"], 500);
    assert_eq!(payload["check_id"], json!(check.id));
    assert_eq!(payload["endpoint"], URL);
    assert!(payload["reason"].as_str().unwrap().contains("status 500"));

    answer(&fx, 200, 1);
    for _ in 0..4 {
        probe(&fx, &check);
    }
    assert_eq!(alerts(&fx), [ALERT_FIRED, ALERT_FIRED, ALERT_RESOLVED]);
    let resolved = fx.event_payloads().pop().unwrap();
    assert_eq!(
        (
            resolved["status"].clone(),
            resolved["previous_status"].clone()
        ),
        (json!("up"), json!("down"))
    );
    let (stored, _) = fx.stored(KIND, check.id);
    assert_eq!(stored["alert"]["firing"], false);
    assert!(stored["alert"].get("outbox").is_none());
}

#[test]
fn a_new_engine_over_the_same_store_does_not_repeat_an_alert() {
    let fx = Fixture::new();
    let settings = CheckSettings {
        failure_threshold: Some(1),
        ..CheckSettings::default()
    };
    let check = add(&fx, settings);
    answer(&fx, 500, 1);
    probe(&fx, &check);
    let restarted = crate::InfraEngine::new(fx.ports.ports(), InfraConfig::default());
    let report = restarted
        .monitor()
        .probe_check(fx.session, check.id)
        .unwrap();
    assert_eq!(report.status, Some(CheckStatus::Down));
    assert!(report.alerts.is_empty());
    assert_eq!(alerts(&fx), [ALERT_FIRED]);
}

#[test]
fn an_alert_the_event_port_refused_is_delivered_by_the_next_probe_exactly_once() {
    let fx = Fixture::new();
    let settings = CheckSettings {
        failure_threshold: Some(1),
        ..CheckSettings::default()
    };
    let check = add(&fx, settings);
    answer(&fx, 500, 1);
    fx.ports.events.set_failing(true);
    let report = probe(&fx, &check);
    assert_eq!(report.status, Some(CheckStatus::Down));
    assert!(report.alerts.is_empty());
    let (stored, _) = fx.stored(KIND, check.id);
    assert_eq!(stored["alert"]["outbox"][0]["kind"], ALERT_FIRED);

    fx.ports.events.set_failing(false);
    assert_eq!(probe(&fx, &check).alerts, [ALERT_FIRED]);
    probe(&fx, &check);
    assert_eq!(alerts(&fx), [ALERT_FIRED]);
    let (stored, _) = fx.stored(KIND, check.id);
    assert!(stored["alert"].get("outbox").is_none());
}

#[test]
fn every_probe_is_stored_as_its_own_object() {
    let fx = Fixture::new();
    let check = add(&fx, CheckSettings::default());
    answer(&fx, 200, 12);
    let report = probe(&fx, &check);
    answer(&fx, 500, 7);
    probe(&fx, &check);
    assert_eq!(fx.ports.objects.len(PROBE_KIND), 2);
    let (stored, _) = fx.stored(PROBE_KIND, report.probe_id);
    assert_eq!(stored["check_id"], json!(check.id));
    assert_eq!(stored["session_id"], json!(fx.session));
    assert_eq!(stored["status_code"], 200);
    assert_eq!(stored["response_ms"], 12);
    assert_eq!(stored["outcome"], "pass");
    assert_eq!(stored["error"], json!(null));
    assert!(stored["at"].is_string());
    let (check_doc, _) = fx.stored(KIND, check.id);
    assert_eq!(check_doc["response_ms"], 7);
    assert!(check_doc["last_checked"].is_string());
}

fn incident_fixture() -> (Fixture, HealthCheck) {
    let config = InfraConfig {
        auto_open_incident: true,
        ..InfraConfig::default()
    };
    let fx = Fixture::with_config(config);
    let settings = CheckSettings {
        failure_threshold: Some(1),
        success_threshold: Some(1),
        ..CheckSettings::default()
    };
    let check = add(&fx, settings);
    (fx, check)
}

#[test]
fn going_down_opens_one_incident_linked_to_the_check() {
    let (fx, check) = incident_fixture();
    answer(&fx, 503, 1);
    let report = probe(&fx, &check);
    assert!(report.incident_opened);
    let incident = report.incident_id.unwrap();
    let (stored, _) = fx.stored(INCIDENT_KIND, incident);
    assert_eq!(stored["metadata"]["check_id"], json!(check.id));
    assert_eq!(stored["severity"], "P2");
    let (check_doc, _) = fx.stored(KIND, check.id);
    assert_eq!(check_doc["metadata"]["incident_id"], json!(incident));

    // Still down, then up and down again: the open incident is reused.
    probe(&fx, &check);
    answer(&fx, 200, 1);
    probe(&fx, &check);
    answer(&fx, 503, 1);
    let again = probe(&fx, &check);
    assert_eq!(again.incident_id, Some(incident));
    assert!(!again.incident_opened);
    assert_eq!(fx.ports.objects.len(INCIDENT_KIND), 1);
    let opened = fx
        .event_kinds()
        .iter()
        .filter(|k| *k == INCIDENT_OPENED)
        .count();
    assert_eq!(opened, 1);

    // Once resolved, the next outage opens a new incident.
    let incidents = fx.engine.incidents();
    let update = crate::incident::IncidentUpdate {
        status: Some(IncidentStatus::Investigating),
        ..Default::default()
    };
    incidents
        .update_incident(fx.session, incident, update)
        .unwrap();
    incidents
        .resolve_incident(fx.session, incident, None)
        .unwrap();
    answer(&fx, 200, 1);
    probe(&fx, &check);
    answer(&fx, 503, 1);
    let third = probe(&fx, &check);
    assert!(third.incident_opened);
    assert_ne!(third.incident_id, Some(incident));
}

#[test]
fn without_the_setting_no_incident_is_opened() {
    let fx = Fixture::new();
    let settings = CheckSettings {
        failure_threshold: Some(1),
        ..CheckSettings::default()
    };
    let check = add(&fx, settings);
    answer(&fx, 503, 1);
    let report = probe(&fx, &check);
    assert_eq!(report.incident_id, None);
    assert!(fx.ports.objects.is_empty(INCIDENT_KIND));
}

#[test]
fn a_timeout_not_shorter_than_the_interval_is_refused_naming_both() {
    let fx = Fixture::new();
    for (timeout, interval) in [(5_000, 5), (6_000, 5)] {
        let settings = CheckSettings {
            timeout_ms: Some(timeout),
            interval_seconds: Some(interval),
            ..CheckSettings::default()
        };
        let new = NewHealthCheck {
            service: "api".into(),
            endpoint: URL.into(),
            settings,
        };
        let error = fx.engine.monitor().add_check(fx.session, new).unwrap_err();
        let EngineError::Validation(message) = error else {
            panic!("{error:?}")
        };
        assert!(message.contains("timeout_ms") && message.contains("interval_seconds"));
    }
    assert!(fx.ports.objects.is_empty(KIND));
}

#[test]
fn a_degraded_threshold_not_below_the_limit_is_refused_naming_both() {
    let error = limits(500, 500).resolve(None).unwrap_err();
    let EngineError::Validation(message) = error else {
        panic!("{error:?}")
    };
    assert!(message.contains("degraded_ms") && message.contains("response_limit_ms"));
    // Updating the limit under the stored degraded threshold is refused too.
    let current = limits(1000, 600).resolve(None).unwrap();
    let lower = CheckSettings {
        response_limit_ms: Some(500),
        ..CheckSettings::default()
    };
    assert!(lower.resolve(Some(&current)).is_err());
}

#[test]
fn defaults_follow_the_documented_choices() {
    let defaults = CheckSettings::default().resolve(None).unwrap();
    assert_eq!(defaults.accepted_text(), "200-399");
    assert_eq!(
        (defaults.response_limit_ms, defaults.degraded_ms),
        (3000, 1500)
    );
    assert_eq!(
        (defaults.failure_threshold, defaults.success_threshold),
        (3, 2)
    );
    assert_eq!((defaults.interval_seconds, defaults.timeout_ms), (60, 5000));
    let short = CheckSettings {
        interval_seconds: Some(4),
        ..CheckSettings::default()
    };
    assert_eq!(short.resolve(None).unwrap().timeout_ms, 2000);
}

#[test]
fn an_update_keeps_the_measured_state_and_a_removal_deletes_the_check() {
    let fx = Fixture::new();
    let check = add(&fx, CheckSettings::default());
    answer(&fx, 200, 1);
    probe(&fx, &check);
    let update = CheckUpdate {
        endpoint: Some("http://svc.test/v2".into()),
        settings: CheckSettings {
            failure_threshold: Some(5),
            ..CheckSettings::default()
        },
        ..CheckUpdate::default()
    };
    let updated = fx
        .engine
        .monitor()
        .update_check(fx.session, check.id, update)
        .unwrap();
    assert_eq!(updated.status, Some(CheckStatus::Up));
    assert_eq!(updated.conditions.failure_threshold, 5);
    assert_eq!(updated.endpoint, "http://svc.test/v2");
    fx.engine
        .monitor()
        .remove_check(fx.session, check.id)
        .unwrap();
    assert!(fx.ports.objects.is_empty(KIND));
    assert_eq!(fx.ports.objects.len(PROBE_KIND), 1, "history stays");
}

fn scan_job(fx: &Fixture) -> Job {
    Job {
        id: "job-1".into(),
        session_id: fx.session.to_string(),
        kind: HEALTH_SCAN_JOB.into(),
        payload: json!({ "session_id": fx.session }),
        status: JobStatus::Running,
        scheduled_at: None,
        started_at: None,
        completed_at: None,
        retries: 0,
        max_retries: 0,
        error: None,
        result: None,
        cron: Some("*/1 * * * *".into()),
        created_at: chrono::Utc::now(),
        metadata: json!({}),
    }
}

#[test]
fn the_scan_job_probes_only_the_checks_that_are_due() {
    let fx = Fixture::new();
    let settings = CheckSettings {
        interval_seconds: Some(30),
        ..CheckSettings::default()
    };
    add(&fx, settings);
    let other = NewHealthCheck {
        service: "web".into(),
        endpoint: "http://web.test/".into(),
        settings: CheckSettings::default(),
    };
    fx.engine.monitor().add_check(fx.session, other).unwrap();
    answer(&fx, 200, 1);
    fx.ports
        .http
        .set("http://web.test/", HttpReply::status(200, "", 1));

    let run = |fx: &Fixture| {
        let JobOutcome::Completed(result) = fx.engine.handle_job(&scan_job(fx)).unwrap() else {
            panic!("not completed")
        };
        result
    };
    let first = run(&fx);
    assert_eq!(
        (first["probed"].clone(), first["skipped"].clone()),
        (json!(2), json!(0))
    );
    assert_eq!(first["transitions"].as_array().unwrap().len(), 2);
    fx.tick(29);
    assert_eq!(run(&fx)["probed"], 0);
    fx.tick(1);
    assert_eq!(
        run(&fx)["probed"],
        1,
        "the 30 s check is due at exactly its interval"
    );
    fx.tick(30);
    assert_eq!(run(&fx)["probed"], 2);
}

#[test]
fn a_scan_job_without_a_valid_session_is_refused() {
    let fx = Fixture::new();
    let mut job = scan_job(&fx);
    job.payload = json!({ "session_id": "nope" });
    let error = fx.engine.handle_job(&job).unwrap_err();
    assert!(matches!(error, EngineError::Validation(m) if m.contains("session_id")));
}

#[test]
fn the_rollup_takes_the_worst_check_of_each_service() {
    let fx = Fixture::new();
    let mut checks = Vec::new();
    for (service, status) in [
        ("api", Some(CheckStatus::Up)),
        ("api", Some(CheckStatus::Down)),
        ("api", Some(CheckStatus::Degraded)),
        ("web", Some(CheckStatus::Up)),
        ("web", Some(CheckStatus::Degraded)),
        ("db", None),
        ("db", Some(CheckStatus::Up)),
        ("new", None),
    ] {
        let mut check = add(&Fixture::new(), CheckSettings::default());
        check.service = service.into();
        check.status = status;
        checks.push(check);
    }
    let rolled = rollup(&checks);
    let statuses: Vec<(&str, Option<CheckStatus>)> = rolled
        .iter()
        .map(|s| (s.service.as_str(), s.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("api", Some(CheckStatus::Down)),
            ("db", Some(CheckStatus::Up)),
            ("new", None),
            ("web", Some(CheckStatus::Degraded)),
        ]
    );
    assert_eq!((rolled[1].checks, rolled[1].unchecked), (2, 1));
    drop(fx);
}
