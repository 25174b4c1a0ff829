//! One loaded department plugin: its compiled component, manifest, registration and a small
//! pool of ready instances.
//!
//! A call takes a ready instance (or instantiates a fresh one and calls `register(config)`
//! on it first, which the contract makes idempotent), runs under the plugin's deadline and
//! memory cap, and gives the instance back only if the call returned normally. After a
//! trap, a timeout or any engine error the store is dropped: a trapped store is unusable.
//!
//! # Instance model, chosen by measurement
//!
//! [`InstanceModel::Pooled`] with [`WARM_INSTANCES`] is the default. `make bench` measures
//! both models on `infra.incidents.create` over SQLite (release host, 2 cores; two runs):
//! a warm pooled instance answered in a median of 65-80 us, a fresh instance per call (new
//! store + instantiate from the `InstancePre` + `register` + the call) in 250-290 us.
//! Instantiation alone is cheap with the pooling allocator (11-13 us, 26-28 us on demand);
//! what a fresh instance really pays for is `register`, which builds the department's
//! engine and its tool schemas in the guest on every call. Reuse is safe here because the
//! department keeps no state in its instance beyond that engine (every record lives in the
//! host's store), and an instance that trapped or timed out is never given back.
//! [`Plugin::set_instance_model`] switches a plugin to [`InstanceModel::FreshPerCall`] for
//! departments that must not carry anything from one call to the next.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, Trap};

use crate::bindings::exports::rusvel::department::department::{JobOutcome, Registration};
use crate::bindings::rusvel::department::manifest::DepartmentManifest;
use crate::bindings::rusvel::department::{events, jobs};
use crate::bindings::{DepartmentPlugin, DepartmentPluginPre, ToolOutput, WitError};
use crate::config::PluginSettings;
use crate::contract::{
    argument_checks, check_tool_drift, manifest_json, validate_department_id, wit_version,
    ArgumentCheck,
};
use crate::delivery::DeliveryQueue;
use crate::error::{describe, CallSite, Fault, HostError};
use crate::http_policy::OutboundPolicy;
use crate::loader::LoadTimes;
use crate::ports::{PortError, Ports};
use crate::sandbox::{arm_deadline, new_store, ImportMode, PluginState};

/// Ready instances kept per plugin between calls, by default.
pub const WARM_INSTANCES: usize = 4;

/// How a plugin's calls get their instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceModel {
    /// Keep up to this many registered instances warm and reuse them; an instance whose
    /// call trapped, timed out or failed in the engine is dropped, never reused. The default,
    /// with [`WARM_INSTANCES`].
    Pooled(usize),
    /// Instantiate and register a fresh instance for every call and drop it afterwards: no
    /// guest state survives a call, at the price of instantiation plus `register` per call.
    FreshPerCall,
}

/// A store with its instantiated bindings.
struct Instance {
    store: Store<PluginState>,
    bindings: DepartmentPlugin,
}

/// A call into a plugin's exports.
#[derive(Debug, Clone)]
pub(crate) enum Call {
    Tool { name: String, args: String },
    Job(jobs::Job),
    Event(events::Event),
}

impl Call {
    fn export(&self) -> String {
        match self {
            Call::Tool { name, .. } => format!("call-tool `{name}`"),
            Call::Job(job) => format!("handle-job `{}` ({})", job.kind, job.id),
            Call::Event(event) => format!("handle-event `{}` ({})", event.kind, event.id),
        }
    }
}

/// What a call returned; the inner `Result` is the plugin's own answer.
#[derive(Debug)]
pub(crate) enum Reply {
    Tool(Result<ToolOutput, WitError>),
    Job(Result<JobOutcome, WitError>),
    Unit(Result<(), WitError>),
}

/// A component that passed compilation, the WIT version check and `manifest()`.
pub(crate) struct Candidate {
    pub(crate) path: PathBuf,
    pub(crate) version: String,
    pub(crate) manifest: DepartmentManifest,
    pub(crate) settings: PluginSettings,
    pub(crate) times: LoadTimes,
    pre: DepartmentPluginPre<PluginState>,
}

impl Candidate {
    /// Links `component` and reads its manifest in a store whose imports all refuse.
    pub(crate) async fn inspect(
        engine: &Engine,
        linker: &Linker<PluginState>,
        path: &Path,
        component: Component,
        settings: PluginSettings,
        ports: &Ports,
    ) -> Result<Candidate, HostError> {
        let started = Instant::now();
        let invalid = |reason: String| HostError::InvalidComponent {
            path: path.into(),
            reason,
        };
        let version = wit_version(engine, &component).map_err(invalid)?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|error| invalid(format!("cannot link its imports: {}", describe(&error))))?;
        let pre = DepartmentPluginPre::new(instance_pre)
            .map_err(|error| invalid(format!("wrong exports: {}", describe(&error))))?;

        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let state = PluginState::new(
            &stem,
            ImportMode::Manifest,
            ports.clone(),
            OutboundPolicy::deny_all(&stem),
            settings.limits.memory_bytes(),
            None,
        );
        let mut store = new_store(engine, state);
        let timeout = Duration::from_millis(settings.limits.call_timeout_ms);
        let site = |export: &str| {
            Box::new(CallSite {
                plugin: path.display().to_string(),
                version: version.clone(),
                export: export.to_string(),
            })
        };

        arm_deadline(&mut store, timeout);
        let outcome = tokio::time::timeout(timeout, pre.instantiate_async(&mut store)).await;
        let bindings = classify(&store, outcome, timeout).map_err(|fault| HostError::Fault {
            site: site("instantiate"),
            fault,
        })?;
        arm_deadline(&mut store, timeout);
        let department = bindings.rusvel_department_department();
        let outcome = tokio::time::timeout(timeout, department.call_manifest(&mut store)).await;
        let manifest = classify(&store, outcome, timeout).map_err(|fault| HostError::Fault {
            site: site("manifest"),
            fault,
        })?;

        validate_department_id(&manifest.id).map_err(invalid)?;
        Ok(Candidate {
            path: path.into(),
            version,
            manifest,
            settings,
            times: LoadTimes {
                inspect: started.elapsed(),
                ..LoadTimes::default()
            },
            pre,
        })
    }
}

/// A registered department plugin.
pub struct Plugin {
    id: String,
    path: PathBuf,
    version: String,
    manifest: DepartmentManifest,
    registration: Registration,
    settings: PluginSettings,
    times: LoadTimes,
    engine: Engine,
    ports: Ports,
    deliveries: DeliveryQueue,
    pre: DepartmentPluginPre<PluginState>,
    model: Mutex<InstanceModel>,
    pool: Mutex<Vec<Instance>>,
    argument_checks: HashMap<String, ArgumentCheck>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("id", &self.id)
            .field("path", &self.path)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// Registers a candidate: a fresh instance runs `register(config)`, the result is checked
    /// against the manifest, and the instance becomes the first warm one.
    pub(crate) async fn register(
        candidate: Candidate,
        engine: &Engine,
        ports: &Ports,
        deliveries: DeliveryQueue,
    ) -> Result<Plugin, HostError> {
        let started = Instant::now();
        let Candidate {
            path,
            version,
            manifest,
            settings,
            times,
            pre,
        } = candidate;
        let mut plugin = Plugin {
            id: manifest.id.clone(),
            path,
            version,
            manifest,
            registration: Registration {
                tools: Vec::new(),
                event_subscriptions: Vec::new(),
                job_kinds: Vec::new(),
                indexed_fields: Vec::new(),
            },
            settings,
            times,
            engine: engine.clone(),
            ports: ports.clone(),
            deliveries,
            pre,
            model: Mutex::new(InstanceModel::Pooled(WARM_INSTANCES)),
            pool: Mutex::new(Vec::new()),
            argument_checks: HashMap::new(),
        };

        let (instance, registration) = plugin.fresh_instance().await?;
        check_tool_drift(&plugin.id, &plugin.manifest, &registration)?;
        for (kind, field) in &registration.indexed_fields {
            if let Err(error) = crate::capability::check_object_kind(&plugin.id, kind) {
                tracing::warn!(plugin = %plugin.id, kind, field, %error, "index request ignored");
                continue;
            }
            plugin
                .ports
                .objects
                .index_field(kind, field)
                .await
                .map_err(HostError::Port)?;
        }
        plugin.argument_checks = argument_checks(&plugin.id, &registration);
        plugin.registration = registration;
        plugin.give_back(instance);
        plugin.times.register = started.elapsed();
        tracing::info!(
            plugin = %plugin.id,
            version = %plugin.version,
            tools = plugin.registration.tools.len(),
            load_us = plugin.times.total().as_micros() as u64,
            "plugin registered"
        );
        Ok(plugin)
    }

    /// The department id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The component file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The WIT package version the plugin was built against, e.g. `rusvel:department@0.1.0`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The manifest as the plugin returned it.
    pub fn manifest(&self) -> &DepartmentManifest {
        &self.manifest
    }

    /// What `register` returned.
    pub fn registration(&self) -> &Registration {
        &self.registration
    }

    /// The sidecar settings.
    pub fn settings(&self) -> &PluginSettings {
        &self.settings
    }

    /// How long loading this plugin took, step by step.
    pub fn load_times(&self) -> LoadTimes {
        self.times
    }

    /// How calls get their instances.
    pub fn instance_model(&self) -> InstanceModel {
        *self
            .model
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Changes how calls get their instances; warm instances beyond the new pool size are
    /// dropped.
    pub fn set_instance_model(&self, model: InstanceModel) {
        *self
            .model
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = model;
        let keep = match model {
            InstanceModel::Pooled(size) => size,
            InstanceModel::FreshPerCall => 0,
        };
        self.lock_pool().truncate(keep);
    }

    /// Creates a store and an instance from the pre-linked component and drops both, calling
    /// no export: the fixed cost every fresh instance pays before `register`.
    pub async fn instantiate_unregistered(&self) -> Result<(), HostError> {
        let state = PluginState::new(
            &self.id,
            ImportMode::Active,
            self.ports.clone(),
            OutboundPolicy::deny_all(&self.id),
            self.settings.limits.memory_bytes(),
            None,
        );
        let mut store = new_store(&self.engine, state);
        let timeout = self.timeout();
        arm_deadline(&mut store, timeout);
        let outcome = tokio::time::timeout(timeout, self.pre.instantiate_async(&mut store)).await;
        classify(&store, outcome, timeout)
            .map(drop)
            .map_err(|fault| HostError::Fault {
                site: self.site("instantiate"),
                fault,
            })
    }

    pub(crate) fn deliveries(&self) -> &DeliveryQueue {
        &self.deliveries
    }

    /// The manifest as JSON with RUSVEL's snake_case field names; JSON Schemas appear as
    /// objects, not strings.
    pub fn manifest_json(&self) -> Value {
        manifest_json(&self.manifest)
    }

    /// Checks tool arguments against the tool's registered parameter schema.
    pub(crate) fn validate_args(&self, tool: &str, args: &Value) -> Result<(), String> {
        let Some(validator) = self
            .argument_checks
            .get(tool)
            .and_then(|check| check.validator(&self.id, tool))
        else {
            return Ok(());
        };
        // The common case answers without collecting errors.
        if validator.is_valid(args) {
            return Ok(());
        }
        let problems: Vec<String> = validator
            .iter_errors(args)
            .take(5)
            .map(|error| {
                let path = error.instance_path.to_string();
                if path.is_empty() {
                    error.to_string()
                } else {
                    format!("{path}: {error}")
                }
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// Runs one call on a ready or fresh instance, at event-cascade `depth`.
    pub(crate) async fn invoke(&self, call: Call, depth: u32) -> Result<Reply, HostError> {
        let mut instance = match self.take_ready() {
            Some(instance) => instance,
            None => self.fresh_instance().await?.0,
        };
        let started = std::time::Instant::now();
        instance.store.data_mut().event_depth = depth;
        let timeout = self.timeout();
        arm_deadline(&mut instance.store, timeout);

        let department = instance.bindings.rusvel_department_department();
        let store = &mut instance.store;
        let outcome = match &call {
            Call::Tool { name, args } => {
                let future = department.call_call_tool(&mut *store, name, args);
                wrap(tokio::time::timeout(timeout, future).await, Reply::Tool)
            }
            Call::Job(job) => {
                let future = department.call_handle_job(&mut *store, job);
                wrap(tokio::time::timeout(timeout, future).await, Reply::Job)
            }
            Call::Event(event) => {
                let future = department.call_handle_event(&mut *store, event);
                wrap(tokio::time::timeout(timeout, future).await, Reply::Unit)
            }
        };

        match classify(&instance.store, outcome, timeout) {
            Ok(reply) => {
                tracing::debug!(
                    plugin = %self.id,
                    export = %call.export(),
                    elapsed_us = started.elapsed().as_micros() as u64,
                    "call returned"
                );
                self.give_back(instance);
                Ok(reply)
            }
            Err(fault) => {
                tracing::warn!(plugin = %self.id, export = %call.export(), %fault, "call failed");
                Err(HostError::Fault {
                    site: self.site(&call.export()),
                    fault,
                })
            }
        }
    }

    /// Calls `shutdown` on every warm instance and drops them.
    pub(crate) async fn shutdown(&self) -> Result<(), HostError> {
        let warm: Vec<Instance> = std::mem::take(&mut *self.lock_pool());
        let mut first_error = None;
        for mut instance in warm {
            let timeout = self.timeout();
            arm_deadline(&mut instance.store, timeout);
            let department = instance.bindings.rusvel_department_department();
            let future = department.call_shutdown(&mut instance.store);
            let outcome = tokio::time::timeout(timeout, future).await;
            let error = match classify(&instance.store, outcome, timeout) {
                Ok(Ok(())) => None,
                Ok(Err(error)) => Some(HostError::Plugin {
                    site: self.site("shutdown"),
                    error: error.into(),
                }),
                Err(fault) => Some(HostError::Fault {
                    site: self.site("shutdown"),
                    fault,
                }),
            };
            if let Some(error) = error {
                tracing::warn!(plugin = %self.id, %error, "shutdown failed");
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Names a call of this plugin in errors.
    pub(crate) fn site(&self, export: &str) -> Box<CallSite> {
        Box::new(CallSite {
            plugin: self.id.clone(),
            version: self.version.clone(),
            export: export.into(),
        })
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.settings.limits.call_timeout_ms)
    }

    /// Instantiates from the pre-linked component and registers the new instance.
    async fn fresh_instance(&self) -> Result<(Instance, Registration), HostError> {
        let policy =
            OutboundPolicy::new(&self.id, &self.settings.allow_outbound).map_err(|reason| {
                HostError::InvalidSettings {
                    path: self.path.clone(),
                    reason,
                }
            })?;
        let state = PluginState::new(
            &self.id,
            ImportMode::Active,
            self.ports.clone(),
            policy,
            self.settings.limits.memory_bytes(),
            Some(self.deliveries.clone()),
        );
        let mut store = new_store(&self.engine, state);
        let timeout = self.timeout();

        arm_deadline(&mut store, timeout);
        let outcome = tokio::time::timeout(timeout, self.pre.instantiate_async(&mut store)).await;
        let bindings = classify(&store, outcome, timeout).map_err(|fault| HostError::Fault {
            site: self.site("instantiate"),
            fault,
        })?;

        arm_deadline(&mut store, timeout);
        let config = self.settings.config.to_string();
        let department = bindings.rusvel_department_department();
        let outcome =
            tokio::time::timeout(timeout, department.call_register(&mut store, &config)).await;
        let registration = classify(&store, outcome, timeout)
            .map_err(|fault| HostError::Fault {
                site: self.site("register"),
                fault,
            })?
            .map_err(|error| HostError::Plugin {
                site: self.site("register"),
                error: PortError::from(error),
            })?;
        Ok((Instance { store, bindings }, registration))
    }

    fn take_ready(&self) -> Option<Instance> {
        self.lock_pool().pop()
    }

    fn give_back(&self, instance: Instance) {
        let InstanceModel::Pooled(size) = self.instance_model() else {
            return;
        };
        let mut pool = self.lock_pool();
        if pool.len() < size {
            pool.push(instance);
        }
    }

    fn lock_pool(&self) -> std::sync::MutexGuard<'_, Vec<Instance>> {
        self.pool
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

type Outcome<T> = Result<wasmtime::Result<T>, tokio::time::error::Elapsed>;

fn wrap<T>(outcome: Outcome<T>, into: impl FnOnce(T) -> Reply) -> Outcome<Reply> {
    outcome.map(|result| result.map(into))
}

/// Turns the outcome of a guarded call into its value or the fault that stopped it.
fn classify<T>(
    store: &Store<PluginState>,
    outcome: Outcome<T>,
    timeout: Duration,
) -> Result<T, Fault> {
    let error = match outcome {
        Ok(Ok(value)) => return Ok(value),
        Err(_elapsed) => return Err(Fault::Timeout(timeout)),
        Ok(Err(error)) => error,
    };
    let state = store.data();
    if state.memory.exceeded {
        return Err(Fault::OutOfMemory(state.memory.cap));
    }
    let trap = error.downcast_ref::<Trap>();
    if trap == Some(&Trap::Interrupt) {
        return Err(Fault::Timeout(timeout));
    }
    tracing::debug!(plugin = %state.plugin_id, error = ?error, "guest call failed");
    // The trap code says what happened; the wasm backtrace only helps with debug symbols,
    // so it goes to the debug log above rather than into the error.
    let mut message = match trap {
        Some(trap) => trap.to_string(),
        None => describe(&error),
    };
    let stderr = state.stderr.tail();
    if !stderr.is_empty() {
        let last_lines: Vec<&str> = stderr.lines().rev().take(3).collect();
        let last_lines: Vec<&str> = last_lines.into_iter().rev().collect();
        message.push_str(&format!(" (guest stderr: {})", last_lines.join(" | ")));
    }
    Err(Fault::Trap(message))
}
