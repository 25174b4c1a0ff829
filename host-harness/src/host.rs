//! The plugin host: loads every plugin of a directory, registers them in dependency order
//! and dispatches tools, jobs and events to them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::Engine;

use crate::agent::ScriptedAgent;
use crate::bindings::exports::rusvel::department::department::JobOutcome;
use crate::bindings::DepartmentPlugin;
use crate::capability::{MAX_TOOL_ARGS, MAX_TOOL_OUTPUT};
use crate::config::{HostConfig, PluginLimits, PluginSettings};
use crate::convert;
use crate::delivery::{deliver, Delivery, DeliveryQueue, DELIVERY_QUEUE};
use crate::error::{describe, HostError};
use crate::loader::{discover, register_in_order, LoadFailure};
use crate::plugin::{Call, Candidate, Plugin, Reply};
use crate::ports::{Event, Job, NewEvent, ObjectStore, Ports};
use crate::sandbox::{build_engine, EpochTicker, PluginState};
use crate::sqlite::{Database, SqliteEventPort, SqliteJobPort, SqliteObjectStore};

/// A job is leased to the worker for this long beyond the owning plugin's call deadline.
const JOB_LEASE_MARGIN: Duration = Duration::from_secs(30);

/// The result of a tool call, as RUSVEL's `ToolOutput`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolOutput {
    /// What the agent reads, usually JSON text.
    pub content: String,
    /// Whether the tool reports a failure.
    pub is_error: bool,
    /// For the UI (`null` when the plugin sent something that is not JSON).
    pub metadata: Value,
}

/// How a job handler ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "result")]
pub enum JobResult {
    /// Succeeded with this result.
    Completed(Value),
    /// Needs approval; carries the proposed result.
    HoldForApproval(Value),
}

/// Loads and runs department plugins. Every method takes `&self`: share it behind an `Arc`.
pub struct PluginHost {
    inner: Arc<HostInner>,
    dispatcher: tokio::task::JoinHandle<()>,
}

struct HostInner {
    config: HostConfig,
    ports: Ports,
    database: Option<Database>,
    plugins: Vec<Arc<Plugin>>,
    by_id: HashMap<String, usize>,
    subscriptions: HashMap<String, Vec<usize>>,
    job_handlers: HashMap<String, usize>,
    failures: Vec<LoadFailure>,
    pending_deliveries: Arc<AtomicUsize>,
    _ticker: EpochTicker,
    _engine: Engine,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("plugins", &self.inner.by_id.keys().collect::<Vec<_>>())
            .field("failures", &self.inner.failures.len())
            .finish()
    }
}

impl PluginHost {
    /// Opens `<data_dir>/rusvel.db`, builds the SQLite ports and the scripted agent, and
    /// loads every plugin of `plugins_dir`.
    pub async fn load(config: HostConfig) -> Result<PluginHost, HostError> {
        let database = Database::open(&config.data_dir)?;
        let agent = match &config.agent_script {
            Some(path) => ScriptedAgent::from_file(path)?,
            None => ScriptedAgent::unconfigured(),
        };
        let ports = Ports {
            objects: Arc::new(SqliteObjectStore::new(database.clone())),
            events: Arc::new(SqliteEventPort::new(database.clone())),
            jobs: Arc::new(SqliteJobPort::new(database.clone())),
            agent: Arc::new(agent),
        };
        Self::load_with_ports(config, ports, Some(database)).await
    }

    /// Loads every plugin of `config.plugins_dir` against ports the embedder supplies.
    pub async fn load_with_ports(
        config: HostConfig,
        ports: Ports,
        database: Option<Database>,
    ) -> Result<PluginHost, HostError> {
        let mut failures = Vec::new();

        // 1. Find the components and read their sidecars.
        let mut found = Vec::new();
        for path in discover(&config.plugins_dir)? {
            match PluginSettings::for_component(&path) {
                Ok(settings) => found.push((path, settings)),
                Err(error) => failures.push(LoadFailure::new(&path, None, &error)),
            }
        }

        // 2. One engine for all plugins. Its instance slots hold the largest memory cap and
        //    never less than the default cap: each plugin's own cap is enforced per store,
        //    so a cap too small for a component's initial memory fails its instantiation
        //    with the cap in the message instead of making the component look invalid.
        let max_memory = found
            .iter()
            .map(|(_, s)| s.limits.memory_bytes())
            .fold(PluginLimits::default().memory_bytes(), usize::max);
        let engine = build_engine(max_memory)?;
        let ticker = EpochTicker::start(&engine);
        let linker = build_linker(&engine)?;
        let cache_dir = config.cache_dir.clone();

        // 3. Compile, link and read each manifest; first file wins a department id.
        let mut candidates: Vec<Candidate> = Vec::new();
        for (path, settings) in found {
            let started = std::time::Instant::now();
            let loaded = match crate::cache::load_component(&engine, &path, cache_dir.as_deref()) {
                Ok(component) => {
                    let artifact = started.elapsed();
                    Candidate::inspect(&engine, &linker, &path, component, settings, &ports)
                        .await
                        .map(|mut candidate| {
                            candidate.times.artifact = artifact;
                            candidate
                        })
                }
                Err(error) => Err(error),
            };
            match loaded {
                Ok(candidate) => {
                    let id = &candidate.manifest.id;
                    if let Some(first) = candidates.iter().find(|c| &c.manifest.id == id) {
                        let error = HostError::DuplicateDepartment {
                            id: id.clone(),
                            first: first.path.clone(),
                            second: path.clone(),
                        };
                        failures.push(LoadFailure::new(&path, Some(id), &error));
                    } else {
                        candidates.push(candidate);
                    }
                }
                Err(error) => failures.push(LoadFailure::new(&path, None, &error)),
            }
        }

        // 4. Register in dependency order; a department whose dependency failed fails too.
        let (sender, receiver) = mpsc::channel(DELIVERY_QUEUE);
        let pending = Arc::new(AtomicUsize::new(0));
        let deliveries = DeliveryQueue::new(sender, pending.clone());
        let plugins =
            register_in_order(candidates, &engine, &ports, &deliveries, &mut failures).await;

        // 5. Index what each plugin registered.
        let mut by_id = HashMap::new();
        let mut subscriptions: HashMap<String, Vec<usize>> = HashMap::new();
        let mut job_handlers = HashMap::new();
        for (index, plugin) in plugins.iter().enumerate() {
            by_id.insert(plugin.id().to_string(), index);
            for kind in &plugin.registration().event_subscriptions {
                subscriptions.entry(kind.clone()).or_default().push(index);
            }
            for kind in &plugin.registration().job_kinds {
                // A later registration for the same kind wins, as in RUSVEL.
                job_handlers.insert(kind.clone(), index);
            }
        }

        deliveries.set_subscribed(subscriptions.keys().cloned().collect());

        let inner = Arc::new(HostInner {
            config,
            ports,
            database,
            plugins,
            by_id,
            subscriptions,
            job_handlers,
            failures,
            pending_deliveries: pending,
            _ticker: ticker,
            _engine: engine,
        });
        let dispatcher = tokio::spawn(dispatch_events(Arc::downgrade(&inner), receiver));
        Ok(PluginHost { inner, dispatcher })
    }

    /// The registered plugins, in registration (dependency) order.
    pub fn plugins(&self) -> impl Iterator<Item = &Plugin> {
        self.inner.plugins.iter().map(|plugin| plugin.as_ref())
    }

    /// One registered plugin.
    pub fn plugin(&self, department: &str) -> Option<&Plugin> {
        self.inner
            .by_id
            .get(department)
            .map(|&index| self.inner.plugins[index].as_ref())
    }

    /// The plugins that could not be loaded, and why.
    pub fn failures(&self) -> &[LoadFailure] {
        &self.inner.failures
    }

    /// The configuration the host was loaded with.
    pub fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    /// The object store the plugins use.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.ports.objects
    }

    /// All ports the plugins use.
    pub fn ports(&self) -> &Ports {
        &self.inner.ports
    }

    /// The SQLite database, when the host opened one.
    pub fn database(&self) -> Option<&Database> {
        self.inner.database.as_ref()
    }

    /// Subscribes to every event emitted from now on (by plugins or the embedder).
    pub fn subscribe_events(&self) -> broadcast::Receiver<Event> {
        self.inner.ports.events.subscribe()
    }

    /// Calls a tool. The arguments must be JSON of at most 1 MiB and match the tool's
    /// parameter schema; they are checked before the plugin runs.
    pub async fn call_tool(
        &self,
        department: &str,
        tool: &str,
        args_json: &str,
    ) -> Result<ToolOutput, HostError> {
        let plugin = self.require(department)?;
        if !plugin.registration().tools.iter().any(|t| t.name == tool) {
            return Err(unknown_tool(plugin, tool));
        }
        if args_json.len() > MAX_TOOL_ARGS {
            return Err(HostError::LimitExceeded {
                what: format!("arguments of tool `{tool}`"),
                limit: MAX_TOOL_ARGS,
                actual: args_json.len(),
            });
        }
        let args: Value =
            serde_json::from_str(args_json).map_err(|error| HostError::InvalidArguments {
                tool: tool.into(),
                reason: format!("not JSON: {error}"),
            })?;
        plugin
            .validate_args(tool, &args)
            .map_err(|reason| HostError::InvalidArguments {
                tool: tool.into(),
                reason,
            })?;

        let call = Call::Tool {
            name: tool.into(),
            args: args_json.into(),
        };
        let site = plugin.site(&format!("call-tool `{tool}`"));
        let output = match plugin.invoke(call, 0).await? {
            Reply::Tool(Ok(output)) => output,
            Reply::Tool(Err(error)) => {
                return Err(HostError::Plugin {
                    site,
                    error: error.into(),
                })
            }
            other => return Err(unexpected(&site, other)),
        };
        let size = output.content.len() + output.metadata.len();
        if size > MAX_TOOL_OUTPUT {
            return Err(HostError::LimitExceeded {
                what: format!("output of tool `{tool}`"),
                limit: MAX_TOOL_OUTPUT,
                actual: size,
            });
        }
        Ok(ToolOutput {
            content: output.content,
            is_error: output.is_error,
            metadata: serde_json::from_str(&output.metadata).unwrap_or(Value::Null),
        })
    }

    /// Runs a job on the plugin registered for its kind; does not record the outcome.
    pub async fn handle_job(&self, job: &Job) -> Result<JobResult, HostError> {
        let index =
            *self
                .inner
                .job_handlers
                .get(&job.kind)
                .ok_or_else(|| HostError::UnknownJobKind {
                    kind: job.kind.clone(),
                })?;
        let plugin = &self.inner.plugins[index];
        let call = Call::Job(convert::job(job.clone()));
        let site = plugin.site(&format!("handle-job `{}`", job.kind));
        match plugin.invoke(call, 0).await? {
            Reply::Job(Ok(JobOutcome::Completed(result))) => Ok(JobResult::Completed(
                convert::parse_json("job result", &result).map_err(HostError::Port)?,
            )),
            Reply::Job(Ok(JobOutcome::HoldForApproval(result))) => Ok(JobResult::HoldForApproval(
                convert::parse_json("job result", &result).map_err(HostError::Port)?,
            )),
            Reply::Job(Err(error)) => Err(HostError::Plugin {
                site,
                error: error.into(),
            }),
            other => Err(unexpected(&site, other)),
        }
    }

    /// Takes one due job of any registered kind, runs it and records the outcome (complete,
    /// hold for approval, or fail with retry). Returns the job id, or `None` when idle.
    /// [`crate::worker`] runs this in a loop.
    pub async fn run_next_job(&self) -> Result<Option<String>, HostError> {
        let run = crate::worker::run_one(self).await?;
        Ok(run.map(|run| run.id().to_string()))
    }

    /// The job kinds the loaded plugins registered, sorted.
    pub fn job_kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self.inner.job_handlers.keys().cloned().collect();
        kinds.sort();
        kinds
    }

    /// How long the worker leases a job: the longest plugin call deadline plus a margin.
    pub fn job_lease(&self) -> Duration {
        self.inner
            .plugins
            .iter()
            .map(|p| Duration::from_millis(p.settings().limits.call_timeout_ms))
            .max()
            .unwrap_or_default()
            + JOB_LEASE_MARGIN
    }

    /// Emits an event on behalf of the embedder: persisted, broadcast, then delivered to
    /// the plugins subscribed to its kind.
    pub async fn emit_event(&self, event: NewEvent) -> Result<String, HostError> {
        let kind = event.kind.clone();
        let id = self.inner.ports.events.emit(event).await?;
        let queue = self.delivery_queue();
        queue.send(&Delivery {
            event_id: id.clone(),
            kind,
            depth: 1,
        });
        Ok(id)
    }

    /// Delivers an event to every plugin subscribed to its kind and waits for them; returns
    /// each plugin's result. A failing handler never affects the others.
    pub async fn deliver_event(&self, event: &Event) -> Vec<(String, Result<(), HostError>)> {
        deliver(&self.inner.subscribers(&event.kind), event, 1).await
    }

    /// Waits until every queued event delivery has run (or `timeout` passes); returns
    /// whether the queue drained.
    pub async fn flush_events(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.inner.pending_deliveries.load(Ordering::SeqCst) > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }

    /// Calls `shutdown` on every plugin, last registered first, and stops event delivery.
    /// Every plugin is asked even if an earlier one fails; the first error is returned.
    pub async fn shutdown_all(&self) -> Result<(), HostError> {
        self.flush_events(Duration::from_secs(5)).await;
        let mut first_error = None;
        for plugin in self.inner.plugins.iter().rev() {
            if let Err(error) = plugin.shutdown().await {
                first_error.get_or_insert(error);
            } else {
                tracing::info!(plugin = %plugin.id(), "plugin shut down");
            }
        }
        self.dispatcher.abort();
        first_error.map_or(Ok(()), Err)
    }

    fn require(&self, department: &str) -> Result<&Arc<Plugin>, HostError> {
        self.inner
            .by_id
            .get(department)
            .map(|&i| &self.inner.plugins[i])
            .ok_or_else(|| {
                let mut loaded: Vec<&str> = self.inner.by_id.keys().map(String::as_str).collect();
                loaded.sort();
                HostError::UnknownDepartment {
                    id: department.into(),
                    loaded: if loaded.is_empty() {
                        "none".into()
                    } else {
                        loaded.join(", ")
                    },
                }
            })
    }

    fn delivery_queue(&self) -> DeliveryQueue {
        // Every plugin holds a clone of the same queue; any one will do.
        self.inner
            .plugins
            .first()
            .map(|plugin| plugin.deliveries().clone())
            .unwrap_or_else(|| DeliveryQueue::closed(self.inner.pending_deliveries.clone()))
    }
}

impl HostInner {
    /// The plugins subscribed to an event kind, in registration order.
    fn subscribers(&self, kind: &str) -> Vec<&Plugin> {
        let indexes = self
            .subscriptions
            .get(kind)
            .map(Vec::as_slice)
            .unwrap_or_default();
        indexes
            .iter()
            .map(|&index| self.plugins[index].as_ref())
            .collect()
    }
}

impl Drop for PluginHost {
    fn drop(&mut self) {
        self.dispatcher.abort();
    }
}

/// Links WASI p2, `wasi:http` and the department imports.
fn build_linker(engine: &Engine) -> Result<Linker<PluginState>, HostError> {
    let engine_error = |error: wasmtime::Error| HostError::Engine(describe(&error));
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_error)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(engine_error)?;
    DepartmentPlugin::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |state| {
        state
    })
    .map_err(engine_error)?;
    Ok(linker)
}

/// Runs queued deliveries until the host is gone.
async fn dispatch_events(host: Weak<HostInner>, mut receiver: mpsc::Receiver<Delivery>) {
    while let Some(delivery) = receiver.recv().await {
        let Some(inner) = host.upgrade() else { break };
        if inner.subscribers(&delivery.kind).is_empty() {
            // Queued while plugins were still registering; nobody subscribed after all.
            inner.pending_deliveries.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        match inner.ports.events.get(&delivery.event_id).await {
            Ok(Some(event)) => {
                for (plugin, result) in
                    deliver(&inner.subscribers(&event.kind), &event, delivery.depth).await
                {
                    if let Err(error) = result {
                        tracing::warn!(%plugin, event = %event.id, kind = %event.kind, %error,
                            "event handler failed");
                    }
                }
            }
            Ok(None) => tracing::warn!(event = %delivery.event_id, "queued event vanished"),
            Err(error) => tracing::warn!(event = %delivery.event_id, %error, "event unreadable"),
        }
        inner.pending_deliveries.fetch_sub(1, Ordering::SeqCst);
    }
}

fn unknown_tool(plugin: &Plugin, tool: &str) -> HostError {
    let names: Vec<&str> = plugin
        .registration()
        .tools
        .iter()
        .map(|tool| tool.name.as_str())
        .collect();
    // Tools sharing the name up to its last dot, when that is more than the department
    // prefix every tool has (`infra.incidents.creat` suggests `infra.incidents.*`).
    let stem = tool
        .rsplit_once('.')
        .map(|(head, _)| head)
        .filter(|head| head.contains('.'));
    let near: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| stem.is_some_and(|stem| name.starts_with(stem)))
        .take(5)
        .collect();
    let hint = if !near.is_empty() {
        format!("similar: {}", near.join(", "))
    } else if names.len() <= 8 {
        format!("tools: {}", names.join(", "))
    } else {
        format!(
            "{} tools registered; `rusvel-host plugins --json` lists them",
            names.len()
        )
    };
    HostError::UnknownTool {
        department: plugin.id().into(),
        tool: tool.into(),
        hint,
    }
}

fn unexpected(site: &crate::error::CallSite, reply: Reply) -> HostError {
    HostError::Engine(format!("{site}: unexpected reply {reply:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_shareable<T: Send + Sync>() {}

    #[test]
    fn the_host_can_be_shared_across_tasks() {
        assert_shareable::<PluginHost>();
        assert_shareable::<Plugin>();
    }
}
