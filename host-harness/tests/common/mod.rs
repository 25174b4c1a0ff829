//! Running the `rusvel-host` binary over a temporary plugin and data directory.
//!
//! Needs the built Infra component: `$INFRA_COMPONENT` (set by `make test`) or the
//! workspace's `guest-release` build.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// Path of the built Infra component.
pub fn component() -> PathBuf {
    let path = std::env::var_os("INFRA_COMPONENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target/wasm32-wasip2/guest-release/dept_infra.wasm")
        });
    assert!(
        path.exists(),
        "build the component first (`make test`): {}",
        path.display()
    );
    path
}

/// A plugin directory holding `infra.wasm`, and an empty data directory beside it.
pub fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    std::fs::copy(component(), dir.path().join("plugins/infra.wasm")).unwrap();
    dir
}

/// Runs `rusvel-host` with `args` over `dir`'s plugins and data.
pub fn rusvel(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rusvel-host"))
        .arg("--plugins")
        .arg(dir.join("plugins"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        // One compile cache for every test, so the component is compiled once per run.
        .env(
            "RUSVEL_CACHE_DIR",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-cache"),
        )
        .args(args)
        .output()
        .expect("rusvel-host runs")
}

/// Stdout of a run that must have succeeded.
pub fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}, stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// Stdout of a run that must have succeeded, parsed as JSON.
pub fn json_stdout(output: &Output) -> Value {
    serde_json::from_str(&succeeded(output)).expect("stdout is JSON")
}
