//! Health check registration and the status summary.

use serde_json::json;

use super::*;
use crate::ports::ObjectStore;
use crate::testing::Fixture;

fn add(fx: &Fixture, service: &str, endpoint: &str) -> Result<HealthCheck> {
    let new = NewHealthCheck {
        service: service.into(),
        endpoint: endpoint.into(),
        ..NewHealthCheck::default()
    };
    fx.engine.monitor().add_check(fx.session, new)
}

/// Stores a probe result directly, as the probing side would.
fn set_status(fx: &Fixture, check: &HealthCheck, status: CheckStatus) {
    let mut probed = check.clone();
    probed.status = Some(status);
    probed.last_checked = Some(Utc::now());
    probed.response_ms = Some(42);
    let data = serde_json::to_value(&probed).unwrap();
    fx.ports
        .objects
        .put(KIND, &check.id.to_string(), &data)
        .unwrap();
}

#[test]
fn a_new_check_has_no_status_until_probed() {
    let fx = Fixture::new();
    let check = add(&fx, "api", "https://api.example.test/health").unwrap();
    let (stored, _) = fx.stored(KIND, check.id);
    assert_eq!(stored["status"], json!(null));
    assert_eq!(stored["last_checked"], json!(null));
    assert_eq!(stored["session_id"], json!(fx.session));
    assert!(fx.event_kinds().is_empty());
}

#[test]
fn the_same_endpoint_cannot_be_checked_twice_for_a_service() {
    let fx = Fixture::new();
    let first = add(&fx, "api", "https://api.example.test/health").unwrap();
    let error = add(&fx, "api", "https://api.example.test/health").unwrap_err();
    assert_eq!(
        error,
        EngineError::AlreadyExists {
            kind: KIND.into(),
            id: first.id.to_string()
        }
    );
    assert_eq!(fx.ports.objects.len(KIND), 1);
}

#[test]
fn an_invalid_endpoint_is_refused_and_nothing_is_stored() {
    let fx = Fixture::new();
    for endpoint in [
        "ftp://x",
        "api.example.test",
        "https://",
        "http://a b",
        "https://:80/",
    ] {
        let error = add(&fx, "api", endpoint).unwrap_err();
        assert!(
            matches!(&error, EngineError::Validation(m) if m.starts_with("endpoint")),
            "{endpoint}"
        );
    }
    assert!(fx.ports.objects.is_empty(KIND));
}

#[test]
fn valid_endpoints_are_accepted() {
    for endpoint in [
        "http://127.0.0.1:8080/health",
        "HTTPS://api.example.test",
        "https://u@h/p?q#f",
    ] {
        validate_endpoint(endpoint).unwrap();
    }
}

#[test]
fn the_summary_counts_checks_by_status_and_names_failing_services() {
    let fx = Fixture::new();
    let api = add(&fx, "api", "https://api.test/health").unwrap();
    let api_db = add(&fx, "api", "https://api.test/db").unwrap();
    let web = add(&fx, "web", "https://web.test/").unwrap();
    let worker = add(&fx, "worker", "https://worker.test/").unwrap();
    add(&fx, "jobs", "https://jobs.test/").unwrap();
    set_status(&fx, &api, CheckStatus::Down);
    set_status(&fx, &api_db, CheckStatus::Down);
    set_status(&fx, &web, CheckStatus::Degraded);
    set_status(&fx, &worker, CheckStatus::Up);

    let summary = fx.engine.monitor().status_summary(fx.session).unwrap();
    assert_eq!(
        summary,
        StatusSummary {
            total: 5,
            up: 1,
            down: 2,
            degraded: 1,
            unchecked: 1,
            down_services: vec!["api".into()],
            degraded_services: vec!["web".into()],
        }
    );
}

#[test]
fn checks_are_listed_per_session_and_filtered_in_the_store() {
    let fx = Fixture::new();
    add(&fx, "api", "https://api.test/health").unwrap();
    let web = add(&fx, "web", "https://web.test/").unwrap();
    set_status(&fx, &web, CheckStatus::Up);
    let query = CheckQuery {
        service: Some("web".into()),
        status: Some(CheckStatus::Up),
    };
    let page = fx
        .engine
        .monitor()
        .list_checks(fx.session, &query, PageRequest::default())
        .unwrap();
    assert_eq!(page.total, 1);
    assert_eq!(page.items[0].id, web.id);

    let other = Fixture::new();
    let none = other
        .engine
        .monitor()
        .list_checks(
            other.session,
            &CheckQuery::default(),
            PageRequest::default(),
        )
        .unwrap();
    assert_eq!(none.total, 0);
}
