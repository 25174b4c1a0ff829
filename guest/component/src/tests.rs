//! Native tests of the adapter. On a native target every import of the contract is a stub that
//! panics, so these tests also prove that `manifest`, `register` and argument validation call
//! no import.

use infra_engine::{manifest, registration, tools, EngineError};

use crate::bindings::exports::rusvel::department::department::{Error, Guest};
use crate::component::InfraDepartment;
use crate::convert::{from_wit_error, to_wit_error};

fn every_engine_error() -> Vec<EngineError> {
    vec![
        EngineError::not_found("infra_deploy", "d1"),
        EngineError::AlreadyExists {
            kind: "infra_healthcheck".into(),
            id: "c1".into(),
        },
        EngineError::validation("title: required"),
        EngineError::invalid_state("open", "resolved"),
        EngineError::Unauthorized("kind `code_x`".into()),
        EngineError::Conflict {
            kind: "infra_incident".into(),
            id: "i1".into(),
        },
        EngineError::Llm("llm".into()),
        EngineError::Agent("agent".into()),
        EngineError::Tool("tool".into()),
        EngineError::BudgetExceeded {
            spent: 2.5,
            limit: 2.0,
        },
        EngineError::Storage("disk".into()),
        EngineError::Serialization("json".into()),
        EngineError::Config("config".into()),
        EngineError::LimitExceeded("deadline".into()),
        EngineError::Internal("bug".into()),
    ]
}

#[test]
fn every_error_survives_the_round_trip_through_the_contract() {
    for error in every_engine_error() {
        assert_eq!(from_wit_error(to_wit_error(error.clone())), error);
    }
}

#[test]
fn a_conflict_from_the_host_stays_a_conflict_for_the_engine() {
    let wit = Error::Conflict(crate::bindings::rusvel::department::types::ObjectRef {
        kind: "infra_deploy".into(),
        id: "d1".into(),
    });
    assert!(from_wit_error(wit).is_conflict());
}

#[test]
fn the_manifest_export_is_pure_and_mirrors_the_engine_manifest() {
    let exported = InfraDepartment::manifest();
    let engine = manifest::manifest();
    assert_eq!(exported.id, "infra");
    assert_eq!(exported.description, engine.description);
    assert_eq!(exported.system_prompt, engine.system_prompt);
    assert_eq!(exported.events_produced, engine.events_produced);
    let names: Vec<&str> = exported.tools.iter().map(|t| t.name.as_str()).collect();
    let registered: Vec<&str> = tools::registry().map(|t| t.name).collect();
    assert_eq!(names, registered);
    for tool in &exported.tools {
        let schema: serde_json::Value = serde_json::from_str(&tool.parameters_schema).unwrap();
        assert_eq!(schema["type"], "object", "{}", tool.name);
    }
    let config: serde_json::Value = serde_json::from_str(&exported.config_schema).unwrap();
    assert_eq!(config["type"], "object");
    assert_eq!(exported.commands.len(), 3);
    assert_eq!(exported.default_config.model, None);
}

#[test]
fn register_is_idempotent_and_calls_no_import() {
    let first = InfraDepartment::register("{}".into()).unwrap();
    let second = InfraDepartment::register("{}".into()).unwrap();
    assert_eq!(first.tools.len(), second.tools.len());
    assert_eq!(first.indexed_fields, second.indexed_fields);
    assert_eq!(first.indexed_fields, registration().indexed_fields);
    assert!(first.event_subscriptions.is_empty());
    assert_eq!(first.job_kinds, ["infra.health_scan"]);
}

#[test]
fn an_invalid_configuration_is_a_config_error() {
    let error = InfraDepartment::register(r#"{"environments": "prod"}"#.into()).unwrap_err();
    assert!(matches!(error, Error::Config(_)), "{error:?}");
}

#[test]
fn rejected_arguments_touch_no_import() {
    let error = InfraDepartment::call_tool("infra.incidents.create".into(), "[]".into());
    assert!(matches!(error, Err(Error::Validation(m)) if m.contains("JSON object")));
    let error = InfraDepartment::call_tool("infra.unknown".into(), "{}".into());
    assert!(matches!(error, Err(Error::NotFound(r)) if r.kind == "tool"));
}

#[test]
fn shutting_down_an_unregistered_instance_succeeds() {
    assert!(InfraDepartment::shutdown().is_ok());
}
