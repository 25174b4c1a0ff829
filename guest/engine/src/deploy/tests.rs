//! Deployment rules: the status machine, history, current version and rollback.

use super::*;
use crate::ids::SessionId;
use crate::ports::Clock;
use crate::testing::Fixture;
use DeployStatus::*;

fn record(fx: &Fixture, service: &str, version: &str, environment: &str) -> Deployment {
    let new = NewDeployment {
        service: service.into(),
        version: version.into(),
        environment: environment.into(),
    };
    fx.engine.deploys().record_deployment(fx.session, new).unwrap()
}

fn move_to(fx: &Fixture, deployment: &Deployment, to: DeployStatus) -> Result<Deployment> {
    fx.engine.deploys().update_status(fx.session, deployment.id, to, None)
}

/// Records `version` and drives it to Deployed, one clock second per step.
fn deploy(fx: &Fixture, service: &str, version: &str, environment: &str) -> Deployment {
    let deployment = record(fx, service, version, environment);
    fx.tick(1);
    move_to(fx, &deployment, InProgress).unwrap();
    fx.tick(1);
    move_to(fx, &deployment, Deployed).unwrap()
}

/// A deployment that has reached `status` by allowed moves.
fn deployment_in(fx: &Fixture, status: DeployStatus) -> Deployment {
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
            let first = deploy(fx, "api", "v1", "prod");
            let second = deploy(fx, "api", "v2", "prod");
            fx.engine.deploys().rollback(fx.session, "api", "prod", None).unwrap();
            let _ = first;
            fx.engine.deploys().get_deployment(fx.session, second.id).unwrap()
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
        assert_eq!((last.from, last.to, last.at), (from, to, fx.ports.clock.now()));
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
            assert_eq!(error, EngineError::invalid_state(from.as_str(), to.as_str()));
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
    fx.engine.deploys().update_status(fx.session, deployment.id, InProgress, Some("ci".into()))
        .unwrap();
    fx.tick(10);
    let done = move_to(&fx, &deployment, Deployed).unwrap();
    assert_eq!(done.deployed_at, Some(fx.ports.clock.now()));
    let steps: Vec<_> = done.history.iter().map(|c| (c.from, c.to, c.reason.clone())).collect();
    assert_eq!(steps, [(Pending, InProgress, Some("ci".into())), (InProgress, Deployed, None)]);
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
    let error =
        fx.engine.deploys().update_status(stranger, deployment.id, InProgress, None).unwrap_err();
    assert_eq!(error, EngineError::not_found(KIND, deployment.id.to_string()));
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
    let current = fx.engine.deploys().current(fx.session, "api", "prod").unwrap().unwrap();
    assert_eq!(current.id, early.id);
}

#[test]
fn failed_and_pending_deployments_are_never_current() {
    let fx = Fixture::new();
    assert_eq!(fx.engine.deploys().current(fx.session, "api", "prod").unwrap(), None);
    let live = deploy(&fx, "api", "v1", "prod");
    let failed = record(&fx, "api", "v2", "prod");
    move_to(&fx, &failed, Failed).unwrap();
    record(&fx, "api", "v3", "prod");
    let current = fx.engine.deploys().current(fx.session, "api", "prod").unwrap().unwrap();
    assert_eq!(current.id, live.id);
}

#[test]
fn current_all_lists_one_deployment_per_service_and_environment() {
    let fx = Fixture::new();
    deploy(&fx, "api", "v1", "prod");
    let api_prod = deploy(&fx, "api", "v2", "prod");
    let api_staging = deploy(&fx, "api", "v3", "staging");
    let web_prod = deploy(&fx, "web", "v9", "prod");
    let all = fx.engine.deploys().current_all(fx.session, None, None).unwrap();
    let ids: Vec<_> = all.iter().map(|d| d.id).collect();
    assert_eq!(ids, [api_prod.id, api_staging.id, web_prod.id]);
    let prod = fx.engine.deploys().current_all(fx.session, None, Some("prod")).unwrap();
    assert_eq!(prod.len(), 2);
}

#[test]
fn rollback_restores_the_previous_version_as_a_new_deployment() {
    let fx = Fixture::new();
    let v1 = deploy(&fx, "api", "v1", "prod");
    let v2 = deploy(&fx, "api", "v2", "prod");
    fx.ports.events.clear();
    fx.tick(5);
    let rollback =
        fx.engine.deploys().rollback(fx.session, "api", "prod", Some("errors".into())).unwrap();

    let restored = &rollback.deployment;
    assert_ne!(restored.id, v1.id);
    assert_eq!((restored.version.as_str(), restored.status), ("v1", Deployed));
    assert_eq!(restored.metadata["rollback_of"], json!(v2.id));
    assert_eq!(restored.metadata["restored_from"], json!(v1.id));
    let steps: Vec<_> = restored.history.iter().map(|c| (c.from, c.to)).collect();
    assert_eq!(steps, [(Pending, InProgress), (InProgress, Deployed)]);

    assert_eq!(rollback.rolled_back.id, v2.id);
    assert_eq!(fx.stored(KIND, v2.id).0["status"], "rolled_back");
    assert_eq!(fx.stored(KIND, v2.id).0["metadata"]["rolled_back_by"], json!(restored.id));
    let current = fx.engine.deploys().current(fx.session, "api", "prod").unwrap().unwrap();
    assert_eq!(current.id, restored.id);
    assert_eq!(
        fx.event_kinds(),
        [events::DEPLOY_ROLLED_BACK, events::DEPLOY_STARTED, events::DEPLOY_COMPLETED]
    );
}

#[test]
fn rollback_without_earlier_deploy_is_refused() {
    let fx = Fixture::new();
    let only = deploy(&fx, "api", "v1", "prod");
    let before = fx.stored(KIND, only.id);
    fx.ports.events.clear();
    let writes = fx.ports.objects.writes();

    let error = fx.engine.deploys().rollback(fx.session, "api", "prod", None).unwrap_err();
    assert!(
        matches!(&error, EngineError::Validation(m) if m.contains("`api`") && m.contains("`prod`")),
        "{error}"
    );
    assert_eq!(fx.stored(KIND, only.id), before);
    assert_eq!(fx.ports.objects.writes(), writes);
    assert!(fx.event_kinds().is_empty());
}

#[test]
fn rollback_with_nothing_deployed_is_refused() {
    let fx = Fixture::new();
    record(&fx, "api", "v1", "prod");
    let error = fx.engine.deploys().rollback(fx.session, "api", "prod", None).unwrap_err();
    assert!(matches!(error, EngineError::Validation(m) if m.contains("nothing is deployed")));
}

#[test]
fn rollback_skips_earlier_deployments_of_the_same_version() {
    let fx = Fixture::new();
    deploy(&fx, "api", "v1", "prod");
    deploy(&fx, "api", "v2", "prod");
    deploy(&fx, "api", "v2", "prod");
    let rollback = fx.engine.deploys().rollback(fx.session, "api", "prod", None).unwrap();
    assert_eq!(rollback.deployment.version, "v1");
}

#[test]
fn repeated_rollbacks_walk_back_through_older_versions() {
    let fx = Fixture::new();
    for version in ["v1", "v2", "v3"] {
        deploy(&fx, "api", version, "prod");
    }
    let first = fx.engine.deploys().rollback(fx.session, "api", "prod", None).unwrap();
    fx.tick(1);
    let second = fx.engine.deploys().rollback(fx.session, "api", "prod", None).unwrap();
    assert_eq!(first.deployment.version, "v2");
    assert_eq!(second.deployment.version, "v1");
    assert_eq!(second.rolled_back.id, first.deployment.id);
}

#[test]
fn rollback_only_considers_the_same_service_and_environment() {
    let fx = Fixture::new();
    deploy(&fx, "api", "v1", "staging");
    deploy(&fx, "web", "v1", "prod");
    deploy(&fx, "api", "v2", "prod");
    let error = fx.engine.deploys().rollback(fx.session, "api", "prod", None).unwrap_err();
    assert!(matches!(error, EngineError::Validation(_)));
}

#[test]
fn a_failed_rollback_write_leaves_the_current_deployment_live() {
    let fx = Fixture::new();
    deploy(&fx, "api", "v1", "prod");
    let v2 = deploy(&fx, "api", "v2", "prod");
    let before = fx.stored(KIND, v2.id).0;
    fx.ports.events.clear();
    fx.ports.objects.fail_next_create(EngineError::Storage("disk full".into()));

    let error = fx.engine.deploys().rollback(fx.session, "api", "prod", None).unwrap_err();
    assert_eq!(error, EngineError::Storage("disk full".into()));
    assert_eq!(fx.stored(KIND, v2.id).0, before);
    assert_eq!(fx.ports.objects.len(KIND), 2);
    assert!(fx.event_kinds().is_empty());
}

#[test]
fn a_move_that_lost_a_race_is_revalidated_against_the_newer_state() {
    let fx = Fixture::new();
    let deployment = deployment_in(&fx, InProgress);
    fx.ports.events.clear();
    let (other, session, id) = (fx.engine.clone(), fx.session, deployment.id);
    fx.ports.objects.before_next_update(move || {
        other.deploys().update_status(session, id, Failed, Some("probe".into())).unwrap();
    });

    let error = move_to(&fx, &deployment, Deployed).unwrap_err();
    assert_eq!(error, EngineError::invalid_state("failed", "deployed"));
    assert_eq!(fx.stored(KIND, deployment.id).0["status"], "failed");
    assert_eq!(fx.event_kinds(), [events::DEPLOY_FAILED]);
}

#[test]
fn concurrent_rollbacks_both_take_effect() {
    let fx = Fixture::new();
    for version in ["v1", "v2", "v3"] {
        deploy(&fx, "api", version, "prod");
    }
    let (other, session) = (fx.engine.clone(), fx.session);
    fx.ports.objects.before_next_update(move || {
        other.deploys().rollback(session, "api", "prod", None).unwrap();
    });

    let rollback = fx.engine.deploys().rollback(fx.session, "api", "prod", None).unwrap();
    assert_eq!(rollback.deployment.version, "v1");
    assert_eq!(rollback.rolled_back.version, "v2");
    let current = fx.engine.deploys().current(fx.session, "api", "prod").unwrap().unwrap();
    assert_eq!(current.version, "v1");
    let rolled_back = fx.event_kinds().iter().filter(|k| *k == events::DEPLOY_ROLLED_BACK).count();
    assert_eq!(rolled_back, 2);
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
    assert_eq!(error, EngineError::Conflict { kind: KIND.into(), id: deployment.id.to_string() });
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
        .list_deployments(SessionId::new(), &DeploymentQuery::default(), PageRequest::default())
        .unwrap();
    assert_eq!(other.total, 0);
}

#[test]
fn a_configured_environment_list_refuses_other_targets() {
    let config = InfraConfig { environments: vec!["staging".into()] };
    let fx = Fixture::with_config(config);
    let new = NewDeployment { service: "api".into(), version: "v1".into(), environment: "prod".into() };
    let error = fx.engine.deploys().record_deployment(fx.session, new).unwrap_err();
    assert!(matches!(error, EngineError::Validation(m) if m.starts_with("environment")));
    assert!(fx.ports.objects.is_empty(KIND));
}
