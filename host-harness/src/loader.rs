//! Finding plugins in a directory and ordering them by their dependencies.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use wasmtime::Engine;

use crate::delivery::DeliveryQueue;
use crate::plugin::{Candidate, Plugin};
use crate::ports::Ports;

use crate::error::HostError;

/// A plugin that could not be loaded, and why; the rest of the directory still loads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadFailure {
    /// The component file.
    pub path: PathBuf,
    /// The department id, when the manifest was read.
    pub department: Option<String>,
    /// What went wrong.
    pub error: String,
}

impl LoadFailure {
    pub(crate) fn new(path: &Path, department: Option<&str>, error: &HostError) -> LoadFailure {
        tracing::warn!(path = %path.display(), %error, "plugin not loaded");
        LoadFailure {
            path: path.to_path_buf(),
            department: department.map(str::to_string),
            error: error.to_string(),
        }
    }
}

/// How long each step of loading a plugin took, for logs and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadTimes {
    /// Reading the component, then compiling it or loading its cached artifact.
    pub artifact: Duration,
    /// Linking its imports (`InstancePre`), a first instance and `manifest()`.
    pub inspect: Duration,
    /// A fresh instance, `register(config)`, the store indexes it asks for and parsing the
    /// tool parameter schemas (each is compiled into a validator on the tool's first call).
    pub register: Duration,
}

impl LoadTimes {
    /// The whole load of this plugin.
    pub fn total(&self) -> Duration {
        self.artifact + self.inspect + self.register
    }
}

/// The `*.wasm` files of `dir`, sorted by name; a missing directory holds none.
pub fn discover(dir: &Path) -> Result<Vec<PathBuf>, HostError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(dir = %dir.display(), "plugin directory does not exist");
            return Ok(Vec::new());
        }
        Err(source) => {
            return Err(HostError::Io {
                path: dir.into(),
                source,
            })
        }
    };
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| HostError::Io {
            path: dir.into(),
            source,
        })?;
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "wasm") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// Orders department ids so each comes after the ids it depends on (ties keep the given
/// order). Returns the order and, separately, the ids that cannot be registered with why.
pub fn dependency_order(
    departments: &[(String, Vec<String>)],
) -> (Vec<String>, Vec<(String, String)>) {
    let known: HashMap<&str, &Vec<String>> = departments
        .iter()
        .map(|(id, deps)| (id.as_str(), deps))
        .collect();
    let position: HashMap<&str, usize> = departments
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (id.as_str(), i))
        .collect();

    // Refuse those missing a dependency, and transitively those depending on them.
    let mut refused: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let before = refused.len();
        for (id, deps) in departments {
            if refused.contains_key(id) {
                continue;
            }
            for dep in deps {
                if !known.contains_key(dep.as_str()) {
                    refused.insert(
                        id.clone(),
                        format!("it depends on `{dep}`, which is not loaded"),
                    );
                    break;
                }
                if refused.contains_key(dep) {
                    refused.insert(
                        id.clone(),
                        format!("its dependency `{dep}` was not registered"),
                    );
                    break;
                }
            }
        }
        if refused.len() == before {
            break;
        }
    }

    // Kahn's algorithm, always taking the earliest ready department.
    let mut order = Vec::new();
    let mut placed: std::collections::HashSet<&str> = Default::default();
    loop {
        let next = departments
            .iter()
            .filter(|(id, _)| !refused.contains_key(id) && !placed.contains(id.as_str()))
            .filter(|(_, deps)| deps.iter().all(|dep| placed.contains(dep.as_str())))
            .min_by_key(|(id, _)| position[id.as_str()]);
        match next {
            Some((id, _)) => {
                placed.insert(id.as_str());
                order.push(id.clone());
            }
            None => break,
        }
    }
    for (id, _) in departments {
        if !refused.contains_key(id) && !placed.contains(id.as_str()) {
            refused.insert(id.clone(), "its dependencies form a cycle".into());
        }
    }
    (order, refused.into_iter().collect())
}

/// Registers candidates so each comes after its dependencies; a candidate whose dependency
/// is missing, cyclic or failed is recorded as a failure, never fatal to the others.
pub(crate) async fn register_in_order(
    candidates: Vec<Candidate>,
    engine: &Engine,
    ports: &Ports,
    deliveries: &DeliveryQueue,
    failures: &mut Vec<LoadFailure>,
) -> Vec<Arc<Plugin>> {
    let graph: Vec<(String, Vec<String>)> = candidates
        .iter()
        .map(|c| (c.manifest.id.clone(), c.manifest.depends_on.clone()))
        .collect();
    let (order, refused) = dependency_order(&graph);
    let mut by_id_candidate: HashMap<String, Candidate> = candidates
        .into_iter()
        .map(|c| (c.manifest.id.clone(), c))
        .collect();
    for (id, reason) in refused {
        if let Some(candidate) = by_id_candidate.remove(&id) {
            let error = HostError::Dependency {
                id: id.clone(),
                reason,
            };
            failures.push(LoadFailure::new(&candidate.path, Some(&id), &error));
        }
    }
    let mut plugins: Vec<Arc<Plugin>> = Vec::new();
    for id in order {
        let Some(candidate) = by_id_candidate.remove(&id) else {
            continue;
        };
        let missing = candidate
            .manifest
            .depends_on
            .iter()
            .find(|dep| !plugins.iter().any(|plugin| plugin.id() == dep.as_str()));
        if let Some(dep) = missing {
            let reason = format!("its dependency `{dep}` was not registered");
            let error = HostError::Dependency {
                id: id.clone(),
                reason,
            };
            failures.push(LoadFailure::new(&candidate.path, Some(&id), &error));
            continue;
        }
        let path = candidate.path.clone();
        match Plugin::register(candidate, engine, ports, deliveries.clone()).await {
            Ok(plugin) => plugins.push(Arc::new(plugin)),
            Err(error) => failures.push(LoadFailure::new(&path, Some(&id), &error)),
        }
    }
    plugins
}

#[cfg(test)]
mod tests {
    use super::*;

    fn departments(spec: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        spec.iter()
            .map(|(id, deps)| (id.to_string(), deps.iter().map(|d| d.to_string()).collect()))
            .collect()
    }

    #[test]
    fn dependencies_register_first_and_ties_keep_file_order() {
        let (order, refused) =
            dependency_order(&departments(&[("a", &["c"]), ("b", &[]), ("c", &[])]));
        assert_eq!(order, ["b", "c", "a"]);
        assert!(refused.is_empty());
    }

    #[test]
    fn a_missing_dependency_refuses_the_department_and_its_dependents() {
        let (order, refused) =
            dependency_order(&departments(&[("a", &["x"]), ("b", &["a"]), ("c", &[])]));
        assert_eq!(order, ["c"]);
        assert_eq!(refused.len(), 2);
        assert!(refused[0].1.contains("`x`"));
    }

    #[test]
    fn a_cycle_refuses_its_members() {
        let (order, refused) =
            dependency_order(&departments(&[("a", &["b"]), ("b", &["a"]), ("c", &[])]));
        assert_eq!(order, ["c"]);
        assert!(refused.iter().all(|(_, why)| why.contains("cycle")));
    }

    #[test]
    fn discovery_lists_only_wasm_files_sorted() {
        let dir = std::env::temp_dir().join(format!("rusvel-discover-{}", crate::clock::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["b.wasm", "a.wasm", "a.json", "notes.txt"] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        let found = discover(&dir).unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|p| p.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["a.wasm", "b.wasm"]);
        assert!(discover(&dir.join("missing")).unwrap().is_empty());
    }
}
