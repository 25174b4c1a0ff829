//! Host configuration and the per-plugin sidecar file.
//!
//! # Sidecar format
//!
//! Beside `plugins/<stem>.wasm` an optional `plugins/<stem>.json` configures that plugin:
//!
//! ```json
//! {
//!   "config": { "any": "department configuration, passed to register" },
//!   "allow_outbound": ["http://127.0.0.1:*", "https://status.example.com:443"],
//!   "limits": { "call_timeout_ms": 30000, "memory_mib": 128 }
//! }
//! ```
//!
//! Every key is optional. Without the file a plugin gets `config` `{}`, no outbound HTTP
//! at all, a 30 s deadline per call and a 128 MiB memory cap. Unknown keys are refused so a
//! misspelled limit is not silently ignored.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::HostError;
use crate::http_policy::OutboundRule;

/// Where the host finds plugins and keeps its data.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Directory scanned for `*.wasm` plugins (and their `.json` sidecars).
    pub plugins_dir: PathBuf,
    /// Directory holding `rusvel.db`, the compiled-component cache and the CLI session.
    pub data_dir: PathBuf,
    /// Optional agent script for the scripted agent (see [`crate::agent`]).
    pub agent_script: Option<PathBuf>,
    /// Where compiled components are cached (`None`: no cache). Defaults to
    /// `<data_dir>/cache`.
    pub cache_dir: Option<PathBuf>,
}

impl HostConfig {
    /// A configuration with the given directories, no agent script and the compile cache in
    /// `<data_dir>/cache`.
    pub fn new(plugins_dir: impl Into<PathBuf>, data_dir: impl Into<PathBuf>) -> HostConfig {
        let data_dir = data_dir.into();
        HostConfig {
            plugins_dir: plugins_dir.into(),
            cache_dir: Some(data_dir.join("cache")),
            data_dir,
            agent_script: None,
        }
    }
}

/// The longest deadline a sidecar may give one call: an hour.
pub const MAX_CALL_TIMEOUT_MS: u64 = 3_600_000;

/// The largest sidecar file read; settings are a few hundred bytes.
const MAX_SIDECAR_BYTES: u64 = 1024 * 1024;

/// Per-call resource limits of one plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginLimits {
    /// Deadline of one export call, in milliseconds.
    pub call_timeout_ms: u64,
    /// Linear memory cap of one instance, in MiB.
    pub memory_mib: u64,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            call_timeout_ms: 30_000,
            memory_mib: 128,
        }
    }
}

impl PluginLimits {
    /// The memory cap in bytes.
    pub fn memory_bytes(&self) -> usize {
        usize::try_from(self.memory_mib.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX)
    }
}

/// The parsed sidecar of one plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginSettings {
    /// Department configuration passed to `register`.
    pub config: Value,
    /// Outbound HTTP destinations the plugin may reach (`scheme://host:port`, port may be
    /// `*`).
    pub allow_outbound: Vec<String>,
    /// Resource limits.
    pub limits: PluginLimits,
}

impl Default for PluginSettings {
    fn default() -> Self {
        PluginSettings {
            config: Value::Object(Default::default()),
            allow_outbound: Vec::new(),
            limits: PluginLimits::default(),
        }
    }
}

impl PluginSettings {
    /// Reads the sidecar beside `wasm_path`, or the defaults when there is none.
    pub fn for_component(wasm_path: &Path) -> Result<PluginSettings, HostError> {
        let sidecar = wasm_path.with_extension("json");
        // Only a regular file of sane size: a FIFO or `/dev/zero` behind the name must not
        // hang or exhaust the host.
        match std::fs::metadata(&sidecar) {
            Ok(meta) if !meta.is_file() => {
                return Err(HostError::InvalidSettings {
                    path: sidecar,
                    reason: "not a regular file".into(),
                })
            }
            Ok(meta) if meta.len() > MAX_SIDECAR_BYTES => {
                return Err(HostError::InvalidSettings {
                    path: sidecar,
                    reason: format!(
                        "{} bytes, over the {MAX_SIDECAR_BYTES} byte limit",
                        meta.len()
                    ),
                })
            }
            _ => {}
        }
        let text = match std::fs::read_to_string(&sidecar) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(PluginSettings::default())
            }
            Err(error) => {
                return Err(HostError::Io {
                    path: sidecar,
                    source: error,
                })
            }
        };
        let settings: PluginSettings =
            serde_json::from_str(&text).map_err(|error| HostError::InvalidSettings {
                path: sidecar.clone(),
                reason: error.to_string(),
            })?;
        settings
            .validate()
            .map_err(|reason| HostError::InvalidSettings {
                path: sidecar,
                reason,
            })?;
        Ok(settings)
    }

    /// Checks limits and outbound patterns.
    pub fn validate(&self) -> Result<(), String> {
        if self.limits.call_timeout_ms == 0 || self.limits.call_timeout_ms > MAX_CALL_TIMEOUT_MS {
            return Err(format!(
                "limits.call_timeout_ms must be between 1 and {MAX_CALL_TIMEOUT_MS} (one hour)"
            ));
        }
        if self.limits.memory_mib == 0 || self.limits.memory_mib > 4096 {
            return Err("limits.memory_mib must be between 1 and 4096".into());
        }
        for pattern in &self.allow_outbound {
            OutboundRule::parse(pattern)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_sidecar_means_defaults() {
        let dir = std::env::temp_dir().join(format!("rusvel-config-{}", crate::clock::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let settings = PluginSettings::for_component(&dir.join("x.wasm")).unwrap();
        assert_eq!(settings, PluginSettings::default());
        assert_eq!(settings.limits.call_timeout_ms, 30_000);
        assert!(settings.allow_outbound.is_empty());
    }

    #[test]
    fn a_sidecar_with_an_unknown_key_is_refused() {
        let dir = std::env::temp_dir().join(format!("rusvel-config-{}", crate::clock::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("x.json"), r#"{"limits": {"timeout": 5}}"#).unwrap();
        let error = PluginSettings::for_component(&dir.join("x.wasm")).unwrap_err();
        assert!(error.to_string().contains("x.json"), "{error}");
    }

    #[test]
    fn a_sidecar_sets_config_outbound_and_limits() {
        let settings: PluginSettings = serde_json::from_str(
            r#"{"config": {"a": 1}, "allow_outbound": ["http://127.0.0.1:*"],
                "limits": {"memory_mib": 64}}"#,
        )
        .unwrap();
        settings.validate().unwrap();
        assert_eq!(
            settings.limits,
            PluginLimits {
                call_timeout_ms: 30_000,
                memory_mib: 64
            }
        );
        assert_eq!(settings.config["a"], 1);
    }

    #[test]
    fn a_deadline_past_an_hour_is_refused() {
        let mut settings = PluginSettings::default();
        settings.limits.call_timeout_ms = 10_000_000_000_000_000;
        let error = settings.validate().unwrap_err();
        assert!(error.contains("call_timeout_ms"), "{error}");
    }

    #[test]
    fn a_sidecar_that_is_not_a_regular_file_is_refused_without_reading_it() {
        let dir = std::env::temp_dir().join(format!("rusvel-config-{}", crate::clock::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.join("x.json")).unwrap();
        let error = PluginSettings::for_component(&dir.join("x.wasm")).unwrap_err();
        assert!(error.to_string().contains("not a regular file"), "{error}");
    }
}
