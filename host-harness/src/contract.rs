//! The contract checks a plugin must pass: the WIT package version it targets, its
//! department id, tools that agree between manifest and registration, usable parameter
//! schemas; and the manifest as RUSVEL's snake_case JSON.

use std::collections::HashMap;
use std::sync::OnceLock;

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

/// A tool's parameter schema and the validator compiled from it on the tool's first call.
///
/// Compiling every schema of a department at registration was most of the register step of
/// a cached load (each schema is also checked against its meta-schema), and a host pays it
/// for tools that may never be called; the schema is only parsed at registration, so a
/// schema that is not JSON is still reported when the plugin loads.
pub(crate) struct ArgumentCheck {
    schema: Option<Value>,
    validator: OnceLock<Option<jsonschema::Validator>>,
}

impl ArgumentCheck {
    /// The validator, compiled now if this is the first call; `None` when the schema is not
    /// a usable JSON Schema (logged once), in which case arguments are only checked for
    /// being JSON.
    pub(crate) fn validator(&self, plugin: &str, tool: &str) -> Option<&jsonschema::Validator> {
        self.validator
            .get_or_init(|| {
                let schema = self.schema.as_ref()?;
                jsonschema::validator_for(schema)
                    .map_err(|error| unusable_schema(plugin, tool, &error.to_string()))
                    .ok()
            })
            .as_ref()
    }
}

/// Parses each tool's parameter schema; one that is not JSON is logged at once, and the
/// tool's arguments are then only checked for being JSON.
pub(crate) fn argument_checks(
    id: &str,
    registration: &Registration,
) -> HashMap<String, ArgumentCheck> {
    registration
        .tools
        .iter()
        .map(|tool| {
            let schema = serde_json::from_str::<Value>(&tool.parameters_schema)
                .map_err(|error| unusable_schema(id, &tool.name, &error.to_string()))
                .ok();
            let check = ArgumentCheck {
                schema,
                validator: OnceLock::new(),
            };
            (tool.name.clone(), check)
        })
        .collect()
}

fn unusable_schema(plugin: &str, tool: &str, error: &str) {
    tracing::warn!(
        plugin,
        tool,
        error,
        "tool parameter schema is not a usable JSON Schema; arguments are not checked"
    );
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
