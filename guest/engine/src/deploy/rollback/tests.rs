//! Rollback rules: what is restored, when rollback is refused, and races between rollbacks.

use serde_json::json;

use crate::deploy::tests::{deploy, record};
use crate::deploy::{DeployStatus::*, KIND};
use crate::error::EngineError;
use crate::events;
use crate::testing::Fixture;

#[test]
fn rollback_restores_the_previous_version_as_a_new_deployment() {
    let fx = Fixture::new();
    let v1 = deploy(&fx, "api", "v1", "prod");
    let v2 = deploy(&fx, "api", "v2", "prod");
    fx.ports.events.clear();
    fx.tick(5);
    let rollback = fx
        .engine
        .deploys()
        .rollback(fx.session, "api", "prod", Some("errors".into()))
        .unwrap();

    let restored = &rollback.deployment;
    assert_ne!(restored.id, v1.id);
    assert_eq!(
        (restored.version.as_str(), restored.status),
        ("v1", Deployed)
    );
    assert_eq!(restored.metadata["rollback_of"], json!(v2.id));
    assert_eq!(restored.metadata["restored_from"], json!(v1.id));
    let steps: Vec<_> = restored.history.iter().map(|c| (c.from, c.to)).collect();
    assert_eq!(steps, [(Pending, InProgress), (InProgress, Deployed)]);

    assert_eq!(rollback.rolled_back.id, v2.id);
    assert_eq!(fx.stored(KIND, v2.id).0["status"], "rolled_back");
    assert_eq!(
        fx.stored(KIND, v2.id).0["metadata"]["rolled_back_by"],
        json!(restored.id)
    );
    let current = fx
        .engine
        .deploys()
        .current(fx.session, "api", "prod")
        .unwrap()
        .unwrap();
    assert_eq!(current.id, restored.id);
    assert_eq!(
        fx.event_kinds(),
        [
            events::DEPLOY_ROLLED_BACK,
            events::DEPLOY_STARTED,
            events::DEPLOY_COMPLETED
        ]
    );
}

#[test]
fn rollback_without_earlier_deploy_is_refused() {
    let fx = Fixture::new();
    let only = deploy(&fx, "api", "v1", "prod");
    let before = fx.stored(KIND, only.id);
    fx.ports.events.clear();
    let writes = fx.ports.objects.writes();

    let error = fx
        .engine
        .deploys()
        .rollback(fx.session, "api", "prod", None)
        .unwrap_err();
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
    let error = fx
        .engine
        .deploys()
        .rollback(fx.session, "api", "prod", None)
        .unwrap_err();
    assert!(matches!(error, EngineError::Validation(m) if m.contains("nothing is deployed")));
}

#[test]
fn rollback_skips_earlier_deployments_of_the_same_version() {
    let fx = Fixture::new();
    deploy(&fx, "api", "v1", "prod");
    deploy(&fx, "api", "v2", "prod");
    deploy(&fx, "api", "v2", "prod");
    let rollback = fx
        .engine
        .deploys()
        .rollback(fx.session, "api", "prod", None)
        .unwrap();
    assert_eq!(rollback.deployment.version, "v1");
}

#[test]
fn repeated_rollbacks_walk_back_through_older_versions() {
    let fx = Fixture::new();
    for version in ["v1", "v2", "v3"] {
        deploy(&fx, "api", version, "prod");
    }
    let first = fx
        .engine
        .deploys()
        .rollback(fx.session, "api", "prod", None)
        .unwrap();
    fx.tick(1);
    let second = fx
        .engine
        .deploys()
        .rollback(fx.session, "api", "prod", None)
        .unwrap();
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
    let error = fx
        .engine
        .deploys()
        .rollback(fx.session, "api", "prod", None)
        .unwrap_err();
    assert!(matches!(error, EngineError::Validation(_)));
}

#[test]
fn a_failed_rollback_write_leaves_the_current_deployment_live() {
    let fx = Fixture::new();
    deploy(&fx, "api", "v1", "prod");
    let v2 = deploy(&fx, "api", "v2", "prod");
    let before = fx.stored(KIND, v2.id).0;
    fx.ports.events.clear();
    fx.ports
        .objects
        .fail_next_create(EngineError::Storage("disk full".into()));

    let error = fx
        .engine
        .deploys()
        .rollback(fx.session, "api", "prod", None)
        .unwrap_err();
    assert_eq!(error, EngineError::Storage("disk full".into()));
    assert_eq!(fx.stored(KIND, v2.id).0, before);
    assert_eq!(fx.ports.objects.len(KIND), 2);
    assert!(fx.event_kinds().is_empty());
}

#[test]
fn concurrent_rollbacks_both_take_effect() {
    let fx = Fixture::new();
    for version in ["v1", "v2", "v3"] {
        deploy(&fx, "api", version, "prod");
    }
    let (other, session) = (fx.engine.clone(), fx.session);
    fx.ports.objects.before_next_update(move || {
        other
            .deploys()
            .rollback(session, "api", "prod", None)
            .unwrap();
    });

    let rollback = fx
        .engine
        .deploys()
        .rollback(fx.session, "api", "prod", None)
        .unwrap();
    assert_eq!(rollback.deployment.version, "v1");
    assert_eq!(rollback.rolled_back.version, "v2");
    let current = fx
        .engine
        .deploys()
        .current(fx.session, "api", "prod")
        .unwrap()
        .unwrap();
    assert_eq!(current.version, "v1");
    let rolled_back = fx
        .event_kinds()
        .iter()
        .filter(|k| *k == events::DEPLOY_ROLLED_BACK)
        .count();
    assert_eq!(rolled_back, 2);
}
