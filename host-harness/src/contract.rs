//! The contract checks a plugin must pass: the WIT package version it targets, its
//! department id, tools that agree between manifest and registration, usable parameter
//! schemas; and the manifest as RUSVEL's snake_case JSON.

use std::collections::HashMap;

use serde_json::Value;
use wasmtime::component::Component;
use wasmtime::Engine;

use crate::bindings::exports::rusvel::department::department::Registration;
use crate::bindings::rusvel::department::manifest::DepartmentManifest;
use crate::error::HostError;

/// Finds the `rusvel:department` version a component was built against and checks this
/// host supports it (same major, and same minor while the major is 0).
pub(crate) fn wit_version(engine: &Engine, component: &Component) -> Result<String, String> {
    let component_type = component.component_type();
    let export = component_type
        .exports(engine)
        .map(|(name, _)| name)
        .find(|name| name.starts_with("rusvel:department/department"))
        .ok_or("it does not export rusvel:department/department; is it a department plugin?")?
        .to_string();
    let version = export
        .split_once('@')
        .map(|(_, v)| v.to_string())
        .ok_or_else(|| format!("its export `{export}` carries no package version"))?;
    let ours: Vec<&str> = crate::bindings::WIT_VERSION.split('.').collect();
    let theirs: Vec<&str> = version.split('.').collect();
    let compatible =
        theirs.len() >= 2 && theirs[0] == ours[0] && (ours[0] != "0" || theirs[1] == ours[1]);
    if !compatible {
        return Err(format!(
            "it was built against rusvel:department@{version}, but this host implements \
             rusvel:department@{}",
            crate::bindings::WIT_VERSION
        ));
    }
    Ok(format!("{}@{version}", crate::bindings::WIT_PACKAGE))
}

/// A department id becomes a prefix of object, event and job kinds: keep it simple.
pub(crate) fn validate_department_id(id: &str) -> Result<(), String> {
    let mut chars = id.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && id.len() <= 64;
    if valid {
        Ok(())
    } else {
        Err(format!(
            "its manifest id `{id}` must match [a-z][a-z0-9-]* (at most 64 characters)"
        ))
    }
}

/// Refuses a plugin whose registered tools differ from its manifest's tools.
pub(crate) fn check_tool_drift(
    id: &str,
    manifest: &DepartmentManifest,
    registration: &Registration,
) -> Result<(), HostError> {
    let listed: Vec<&String> = manifest.tools.iter().map(|tool| &tool.name).collect();
    let registered: Vec<&String> = registration.tools.iter().map(|tool| &tool.name).collect();
    let manifest_only: Vec<String> = listed
        .iter()
        .filter(|n| !registered.contains(n))
        .map(|n| n.to_string())
        .collect();
    let registered_only: Vec<String> = registered
        .iter()
        .filter(|n| !listed.contains(n))
        .map(|n| n.to_string())
        .collect();
    if manifest_only.is_empty() && registered_only.is_empty() {
        Ok(())
    } else {
        Err(HostError::ToolDrift {
            id: id.to_string(),
            manifest_only,
            registered_only,
        })
    }
}

/// Compiles each tool's parameter schema; a schema that does not compile is logged and the
/// tool's arguments are then only checked for being JSON.
pub(crate) fn tool_validators(
    id: &str,
    registration: &Registration,
) -> HashMap<String, jsonschema::Validator> {
    let mut validators = HashMap::new();
    for tool in &registration.tools {
        let compiled = serde_json::from_str::<Value>(&tool.parameters_schema)
            .map_err(|error| error.to_string())
            .and_then(|schema| jsonschema::validator_for(&schema).map_err(|e| e.to_string()));
        match compiled {
            Ok(validator) => {
                validators.insert(tool.name.clone(), validator);
            }
            Err(error) => tracing::warn!(
                plugin = id,
                tool = %tool.name,
                %error,
                "tool parameter schema is not a usable JSON Schema; arguments are not checked"
            ),
        }
    }
    validators
}

/// The manifest as JSON with snake_case names and the schemas as JSON objects.
pub fn manifest_json(manifest: &DepartmentManifest) -> Value {
    let mut json = serde_json::to_value(manifest).unwrap_or(Value::Null);
    let parse = |value: &mut Value| {
        if let Value::String(text) = value {
            if let Ok(parsed) = serde_json::from_str::<Value>(text) {
                *value = parsed;
            }
        }
    };
    if let Some(tools) = json.get_mut("tools").and_then(Value::as_array_mut) {
        for tool in tools {
            if let Some(schema) = tool.get_mut("parameters_schema") {
                parse(schema);
            }
        }
    }
    if let Some(schema) = json.get_mut("config_schema") {
        parse(schema);
    }
    json
}
