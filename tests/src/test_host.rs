//! A host with the Infra plugin loaded into fresh temporary directories.
//!
//! The component comes from `$INFRA_COMPONENT` (set by `make test`) or the workspace's
//! `guest-release` build. Compiled artifacts go to one cache shared by every test, so the
//! component is compiled once per test run rather than once per test.

use std::path::{Path, PathBuf};

use rusvel_host::ports::events::{Event, EventFilter};
use rusvel_host::ports::objects::ObjectFilter;
use rusvel_host::{HostConfig, HostError, PluginHost, ToolOutput};
use serde_json::Value;
use tempfile::TempDir;

/// A loaded host plus the directories it owns; both go away when it is dropped.
pub struct TestHost {
    /// The host under test.
    pub host: PluginHost,
    /// Holds `plugins/` and `data/`.
    pub dir: TempDir,
    /// A session id for tool calls.
    pub session: String,
}

/// Path of the built Infra component.
pub fn infra_component() -> PathBuf {
    let path = std::env::var_os("INFRA_COMPONENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            workspace_root().join("target/wasm32-wasip2/guest-release/dept_infra.wasm")
        });
    assert!(
        path.exists(),
        "the Infra component is not built at {}; run `make test` (or `make component`)",
        path.display()
    );
    path
}

/// Path of a fixture component built by `make fixtures` (`tests/fixtures/out/<name>.wasm`).
pub fn fixture_component(name: &str) -> PathBuf {
    let path = workspace_root()
        .join("tests/fixtures/out")
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "fixture {} is not built; run `make fixtures`",
        path.display()
    );
    path
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

impl TestHost {
    /// A host with only the Infra plugin and no sidecar.
    pub async fn start() -> TestHost {
        TestHost::with_plugins(&[("infra", infra_component(), None)]).await
    }

    /// A host with the Infra plugin configured by `sidecar` (the `infra.json` beside it).
    pub async fn with_sidecar(sidecar: Value) -> TestHost {
        TestHost::with_plugins(&[("infra", infra_component(), Some(sidecar))]).await
    }

    /// A host with the given plugins: (file stem, component path, optional sidecar).
    pub async fn with_plugins(plugins: &[(&str, PathBuf, Option<Value>)]) -> TestHost {
        let dir = tempfile::tempdir().expect("temporary directory");
        let plugins_dir = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins_dir).expect("plugins directory");
        for (stem, component, sidecar) in plugins {
            std::fs::copy(component, plugins_dir.join(format!("{stem}.wasm")))
                .expect("copy component");
            if let Some(sidecar) = sidecar {
                std::fs::write(
                    plugins_dir.join(format!("{stem}.json")),
                    sidecar.to_string(),
                )
                .expect("write sidecar");
            }
        }
        let host = TestHost::load(dir.path()).await.expect("host loads");
        TestHost {
            host,
            dir,
            session: new_session(),
        }
    }

    /// Loads a host over an existing directory (as a restarted process would).
    pub async fn load(dir: &Path) -> Result<PluginHost, HostError> {
        let mut config = HostConfig::new(dir.join("plugins"), dir.join("data"));
        config.cache_dir = Some(workspace_root().join("target/test-cache"));
        PluginHost::load(config).await
    }

    /// Shuts this host down and loads a new one over the same directories.
    pub async fn restart(self) -> TestHost {
        let TestHost { host, dir, session } = self;
        host.shutdown_all().await.expect("shutdown");
        drop(host);
        let host = TestHost::load(dir.path()).await.expect("host reloads");
        TestHost { host, dir, session }
    }

    /// Calls an Infra tool with `args` plus this host's session id (unless `args` has one).
    pub async fn call(&self, tool: &str, mut args: Value) -> Result<ToolOutput, HostError> {
        if let Value::Object(map) = &mut args {
            map.entry("session_id")
                .or_insert_with(|| Value::String(self.session.clone()));
        }
        self.host.call_tool("infra", tool, &args.to_string()).await
    }

    /// Calls a tool that must succeed and returns its content parsed as JSON.
    pub async fn ok(&self, tool: &str, args: Value) -> Value {
        let output = self.call(tool, args.clone()).await.unwrap_or_else(|error| {
            panic!("{tool} {args} failed: {error}");
        });
        assert!(
            !output.is_error,
            "{tool} {args} reported an error: {}",
            output.content
        );
        serde_json::from_str(&output.content).expect("tool content is JSON")
    }

    /// Calls a tool that must fail and returns the error's text.
    pub async fn refused(&self, tool: &str, args: Value) -> String {
        match self.call(tool, args.clone()).await {
            Ok(output) if output.is_error => output.content,
            Ok(output) => panic!("{tool} {args} should fail but returned {}", output.content),
            Err(error) => error.to_string(),
        }
    }

    /// Every stored event of the Infra department, oldest first.
    pub async fn events(&self) -> Vec<Event> {
        let filter = EventFilter {
            source: Some("infra".into()),
            ..EventFilter::default()
        };
        self.host
            .ports()
            .events
            .query(&filter)
            .await
            .expect("query events")
    }

    /// The kinds of every stored Infra event, oldest first.
    pub async fn event_kinds(&self) -> Vec<String> {
        self.events()
            .await
            .into_iter()
            .map(|event| event.kind)
            .collect()
    }

    /// How many objects of `kind` are stored, in any session.
    pub async fn count(&self, kind: &str) -> u64 {
        self.host
            .store()
            .count(kind, &ObjectFilter::default())
            .await
            .expect("count objects")
    }
}

/// A fresh UUIDv7 session id.
pub fn new_session() -> String {
    // The host's own generator keeps the ids time-ordered like RUSVEL's.
    rusvel_host::clock::new_id()
}
