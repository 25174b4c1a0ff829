//! Deployment rules: the status machine, history, current version and rollback.

use serde_json::json;

use super::*;
use crate::config::InfraConfig;
use crate::events;
use crate::ids::SessionId;
use crate::page::PageRequest;
use crate::ports::Clock;
use crate::records::MAX_WRITE_ATTEMPTS;
use crate::testing::Fixture;
use DeployStatus::*;

pub(crate) fn record(fx: &Fixture, service: &str, version: &str, environment: &str) -> Deployment {
    let new = NewDeployment {
        service: service.into(),
        version: version.into(),
        environment: environment.into(),
    };
    fx.engine
        .deploys()
        .record_deployment(fx.session, new)
        .unwrap()
}

pub(crate) fn move_to(
    fx: &Fixture,
    deployment: &Deployment,
    to: DeployStatus,
) -> Result<Deployment> {
    fx.engine
        .deploys()
        .update_status(fx.session, deployment.id, to, None)
}

/// Records `version` and drives it to Deployed, one clock second per step.
pub(crate) fn deploy(fx: &Fixture, service: &str, version: &str, environment: &str) -> Deployment {
    let deployment = record(fx, service, version, environment);
    fx.tick(1);
    move_to(fx, &deployment, InProgress).unwrap();
    fx.tick(1);
    move_to(fx, &deployment, Deployed).unwrap()
}

/// A deployment that has reached `status` by allowed moves.
pub(crate) fn deployment_in(fx: &Fixture, status: DeployStatus) -> Deployment {
    match status {
        Pending => record(fx, "api", "v1", "prod"),
        InProgress => {
            let deployment = record(fx, "api", "v1", "prod");
            move_to(fx, &deployment, InProgress).unwrap()
        }
        Deployed => deploy(fx, "api", "v1", "prod"),
        Failed => {
            let deployment = record(fx, "api", "v1", "prod");
            move_to(fx, &deployment, Failed).unwrap()
        }
        RolledBack => {
            deploy(fx, "api", "v1", "prod");
            let second = deploy(fx, "api", "v2", "prod");
            fx.engine
                .deploys()
                .rollback(fx.session, "api", "prod", None)
                .unwrap();
            fx.engine
                .deploys()
                .get_deployment(fx.session, second.id)
                .unwrap()
        }
    }
}

#[test]
fn a_recorded_deployment_is_pending_and_emits_nothing() {
    let fx = Fixture::new();
    let deployment = record(&fx, "api", "v1", "prod");
    assert_eq!(deployment.status, Pending);
    assert!(deployment.history.is_empty());
    assert_eq!(fx.stored(KIND, deployment.id).0["status"], "pending");
    assert!(fx.event_kinds().is_empty());
}

#[test]
fn every_allowed_move_is_recorded_and_emits_its_event_once() {
    let cases = [
        (Pending, InProgress, events::DEPLOY_STARTED),
        (InProgress, Deployed, events::DEPLOY_COMPLETED),
        (InProgress, Failed, events::DEPLOY_FAILED),
        (Pending, Failed, events::DEPLOY_FAILED),
    ];
    for (from, to, event) in cases {
        let fx = Fixture::new();
        let deployment = deployment_in(&fx, from);
        fx.ports.events.clear();
        fx.tick(5);
        let moved = move_to(&fx, &deployment, to).unwrap();
        assert_eq!(moved.status, to);
        let last = moved.history.last().unwrap();
        assert_eq!(
            (last.from, last.to, last.at),
            (from, to, fx.ports.clock.now())
        );
        assert_eq!(fx.event_kinds(), [event], "{from:?} -> {to:?}");
        let payload = &fx.event_payloads()[0];
        assert_eq!(payload["deployment_id"], json!(deployment.id));
        assert_eq!(payload["session_id"], json!(fx.session));
        assert_eq!(payload["service"], "api");
        assert_eq!(payload["version"], "v1");
        assert_eq!(payload["environment"], "prod");
        assert_eq!(payload["status"], to.as_str());
    }
}

#[test]
fn every_other_move_is_refused_and_changes_nothing() {
    for from in DeployStatus::ALL {
        for to in DeployStatus::ALL {
            let allowed = from.can_move_to(to) && to != RolledBack;
            if allowed {
                continue;
            }
            let fx = Fixture::new();
            let deployment = deployment_in(&fx, from);
            let before = fx.stored(KIND, deployment.id);
            fx.ports.events.clear();
            let error = move_to(&fx, &deployment, to).unwrap_err();
            assert_eq!(
                error,
                EngineError::invalid_state(from.as_str(), to.as_str())
            );
            assert_eq!(fx.stored(KIND, deployment.id), before, "{from:?} -> {to:?}");
            assert!(fx.event_kinds().is_empty(), "{from:?} -> {to:?}");
        }
    }
}

#[test]
fn the_status_machine_allows_exactly_the_documented_moves() {
    let allowed: Vec<(DeployStatus, DeployStatus)> = DeployStatus::ALL
        .into_iter()
        .flat_map(|from| DeployStatus::ALL.into_iter().map(move |to| (from, to)))
        .filter(|(from, to)| from.can_move_to(*to))
        .collect();
    assert_eq!(
        allowed,
        [
            (Pending, InProgress),
            (Pending, Failed),
            (InProgress, Deployed),
            (InProgress, Failed),
            (Deployed, RolledBack)
        ]
    );
}

#[test]
fn becoming_deployed_sets_deployed_at_and_keeps_the_history() {
    let fx = Fixture::new();
    let deployment = record(&fx, "api", "v1", "prod");
    fx.tick(10);
    fx.engine
        .deploys()
        .update_status(fx.session, deployment.id, InProgress, Some("ci".into()))
        .unwrap();
    fx.tick(10);
    let done = move_to(&fx, &deployment, Deployed).unwrap();
    assert_eq!(done.deployed_at, Some(fx.ports.clock.now()));
    let steps: Vec<_> = done
        .history
        .iter()
        .map(|c| (c.from, c.to, c.reason.clone()))
        .collect();
    assert_eq!(
        steps,
        [
            (Pending, InProgress, Some("ci".into())),
            (InProgress, Deployed, None)
        ]
    );
}

#[test]
fn history_times_never_go_backwards_when_the_clock_does() {
    let fx = Fixture::new();
    let deployment = record(&fx, "api", "v1", "prod");
    fx.tick(60);
    let started = move_to(&fx, &deployment, InProgress).unwrap();
    fx.tick(-30);
    let done = move_to(&fx, &deployment, Deployed).unwrap();
    assert_eq!(done.history[1].at, started.history[0].at);
    assert_eq!(done.deployed_at, Some(started.history[0].at));
}

#[test]
fn another_sessions_deployment_is_not_found() {
    let fx = Fixture::new();
    let deployment = record(&fx, "api", "v1", "prod");
    let stranger = SessionId::new();
    let error = fx
        .engine
        .deploys()
        .update_status(stranger, deployment.id, InProgress, None)
        .unwrap_err();
    assert_eq!(
        error,
        EngineError::not_found(KIND, deployment.id.to_string())
    );
    assert_eq!(fx.stored(KIND, deployment.id).0["status"], "pending");
}

#[test]
fn the_current_version_is_the_deployment_that_finished_last() {
    let fx = Fixture::new();
    let early = record(&fx, "api", "v2", "prod");
    let late = record(&fx, "api", "v3", "prod");
    move_to(&fx, &early, InProgress).unwrap();
    move_to(&fx, &late, InProgress).unwrap();
    fx.tick(1);
    move_to(&fx, &late, Deployed).unwrap();
    fx.tick(1);
    move_to(&fx, &early, Deployed).unwrap();
    let current = fx
        .engine
        .deploys()
        .current(fx.session, "api", "prod")
        .unwrap()
        .unwrap();
    assert_eq!(current.id, early.id);
}

#[test]
fn failed_and_pending_deployments_are_never_current() {
    let fx = Fixture::new();
    assert_eq!(
        fx.engine
            .deploys()
            .current(fx.session, "api", "prod")
            .unwrap(),
        None
    );
    let live = deploy(&fx, "api", "v1", "prod");
    let failed = record(&fx, "api", "v2", "prod");
    move_to(&fx, &failed, Failed).unwrap();
    record(&fx, "api", "v3", "prod");
    let current = fx
        .engine
        .deploys()
        .current(fx.session, "api", "prod")
        .unwrap()
        .unwrap();
    assert_eq!(current.id, live.id);
}

#[test]
fn current_all_lists_one_deployment_per_service_and_environment() {
    let fx = Fixture::new();
    deploy(&fx, "api", "v1", "prod");
    let api_prod = deploy(&fx, "api", "v2", "prod");
    let api_staging = deploy(&fx, "api", "v3", "staging");
    let web_prod = deploy(&fx, "web", "v9", "prod");
    let all = fx
        .engine
        .deploys()
        .current_all(fx.session, None, None)
        .unwrap();
    let ids: Vec<_> = all.iter().map(|d| d.id).collect();
    assert_eq!(ids, [api_prod.id, api_staging.id, web_prod.id]);
    let prod = fx
        .engine
        .deploys()
        .current_all(fx.session, None, Some("prod"))
        .unwrap();
    assert_eq!(prod.len(), 2);
}

#[test]
fn a_move_that_lost_a_race_is_revalidated_against_the_newer_state() {
    let fx = Fixture::new();
    let deployment = deployment_in(&fx, InProgress);
    fx.ports.events.clear();
    let (other, session, id) = (fx.engine.clone(), fx.session, deployment.id);
    fx.ports.objects.before_next_update(move || {
        other
            .deploys()
            .update_status(session, id, Failed, Some("probe".into()))
            .unwrap();
    });

    let error = move_to(&fx, &deployment, Deployed).unwrap_err();
    assert_eq!(error, EngineError::invalid_state("failed", "deployed"));
    assert_eq!(fx.stored(KIND, deployment.id).0["status"], "failed");
    assert_eq!(fx.event_kinds(), [events::DEPLOY_FAILED]);
}

#[test]
fn exhausted_retries_report_a_conflict_and_write_nothing() {
    let fx = Fixture::new();
    let deployment = record(&fx, "api", "v1", "prod");
    for _ in 0..MAX_WRITE_ATTEMPTS {
        let store = fx.ports.objects.clone();
        let id = deployment.id.to_string();
        fx.ports.objects.before_next_update(move || {
            use crate::ports::ObjectStore;
            let data = store.get(KIND, &id).unwrap().unwrap();
            store.put(KIND, &id, &data).unwrap();
        });
    }
    let error = move_to(&fx, &deployment, InProgress).unwrap_err();
    assert_eq!(
        error,
        EngineError::Conflict {
            kind: KIND.into(),
            id: deployment.id.to_string()
        }
    );
    assert_eq!(fx.stored(KIND, deployment.id).0["status"], "pending");
    assert!(fx.event_kinds().is_empty());
}

#[test]
fn listing_filters_in_the_store_and_pages() {
    let fx = Fixture::new();
    for version in ["v1", "v2", "v3"] {
        record(&fx, "api", version, "prod");
    }
    record(&fx, "web", "v1", "prod");
    record(&fx, "api", "v1", "staging");
    let query = DeploymentQuery {
        service: Some("api".into()),
        environment: Some("prod".into()),
        status: Some(Pending),
    };
    let page = fx
        .engine
        .deploys()
        .list_deployments(fx.session, &query, PageRequest::new(Some(2), Some(0)))
        .unwrap();
    assert_eq!(page.total, 3);
    let versions: Vec<_> = page.items.iter().map(|d| d.version.as_str()).collect();
    assert_eq!(versions, ["v3", "v2"]);
    let other = fx
        .engine
        .deploys()
        .list_deployments(
            SessionId::new(),
            &DeploymentQuery::default(),
            PageRequest::default(),
        )
        .unwrap();
    assert_eq!(other.total, 0);
}

#[test]
fn a_configured_environment_list_refuses_other_targets() {
    let config = InfraConfig {
        environments: vec!["staging".into()],
        ..InfraConfig::default()
    };
    let fx = Fixture::with_config(config);
    let new = NewDeployment {
        service: "api".into(),
        version: "v1".into(),
        environment: "prod".into(),
    };
    let error = fx
        .engine
        .deploys()
        .record_deployment(fx.session, new)
        .unwrap_err();
    assert!(matches!(error, EngineError::Validation(m) if m.starts_with("environment")));
    assert!(fx.ports.objects.is_empty(KIND));
}
