//! The department's configuration, as the host passes it to `register`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{EngineError, Result};

/// Configuration of the Infra department. Every field has a default, so `{}` (or an empty
/// string) is a valid configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InfraConfig {
    /// The environments deployments may target, for example `["staging", "production"]`.
    /// Empty (the default) allows any environment name.
    pub environments: Vec<String>,
    /// Whether a health check going Down opens an incident linked to it (default false).
    pub auto_open_incident: bool,
}

impl InfraConfig {
    /// Parses the configuration JSON; blank text means the defaults.
    pub fn from_json(text: &str) -> Result<Self> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let config: Self = serde_json::from_str(text)
            .map_err(|error| EngineError::Config(format!("infra configuration: {error}")))?;
        if let Some(blank) = config
            .environments
            .iter()
            .find(|name| name.trim().is_empty())
        {
            return Err(EngineError::Config(format!(
                "infra configuration: `environments` holds a blank name ({blank:?})"
            )));
        }
        Ok(config)
    }

    /// Whether deployments may target `environment`.
    pub fn allows_environment(&self, environment: &str) -> bool {
        self.environments.is_empty() || self.environments.iter().any(|name| name == environment)
    }

    /// The JSON Schema of the configuration (the manifest's `config_schema`).
    pub fn schema() -> Value {
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "Infra department configuration",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "environments": {
                    "type": "array",
                    "description": "Environments deployments may target; empty allows any.",
                    "items": { "type": "string", "minLength": 1, "maxLength": 200 },
                    "uniqueItems": true
                },
                "auto_open_incident": {
                    "type": "boolean",
                    "default": false,
                    "description": "Open an incident (P2, linked to the check) when a health \
                                    check goes Down; no second one while it is unresolved."
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_configuration_means_defaults() {
        assert_eq!(InfraConfig::from_json("").unwrap(), InfraConfig::default());
        assert_eq!(
            InfraConfig::from_json("{}").unwrap(),
            InfraConfig::default()
        );
    }

    #[test]
    fn unknown_configuration_fields_are_refused() {
        let error = InfraConfig::from_json(r#"{"environmnets": []}"#).unwrap_err();
        assert!(matches!(error, EngineError::Config(message) if message.contains("environmnets")));
    }

    #[test]
    fn auto_open_incident_defaults_to_off_and_must_be_a_boolean() {
        assert!(!InfraConfig::default().auto_open_incident);
        let config = InfraConfig::from_json(r#"{"auto_open_incident": true}"#).unwrap();
        assert!(config.auto_open_incident);
        let error = InfraConfig::from_json(r#"{"auto_open_incident": "yes"}"#).unwrap_err();
        assert!(matches!(error, EngineError::Config(_)));
        assert_eq!(
            InfraConfig::schema()["properties"]["auto_open_incident"]["type"],
            "boolean"
        );
    }

    #[test]
    fn an_environment_allow_list_restricts_targets() {
        let config = InfraConfig::from_json(r#"{"environments": ["staging"]}"#).unwrap();
        assert!(config.allows_environment("staging"));
        assert!(!config.allows_environment("production"));
        assert!(InfraConfig::default().allows_environment("anything"));
    }
}
