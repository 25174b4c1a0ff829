//! The sandbox a plugin runs in: the engine (epoch interruption, pooling allocator), the
//! per-store state (WASI with nothing granted, `wasi:http` behind the outbound policy,
//! memory cap) and the deadline machinery.
//!
//! A plugin gets no preopened directories, no environment, no arguments, no sockets and no
//! stdin/stdout. Its stderr is kept in a small in-memory tail (so a panic message can be
//! attached to the error of the call that trapped) and logged at `debug`.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::AsyncWrite;
use wasmtime::component::ResourceTable;
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter,
    Store, Trap, UpdateDeadline,
};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::delivery::DeliveryQueue;
use crate::error::{describe, HostError};
use crate::http_policy::OutboundPolicy;
use crate::ports::Ports;

/// How often the epoch advances; a running guest checks its deadline at this granularity
/// and yields to the executor so a timed-out call can be dropped.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Past its deadline a call gets this much longer before the epoch check traps it outright;
/// normally the tokio timeout drops it first.
const HARD_DEADLINE_GRACE: Duration = Duration::from_secs(1);

/// Bytes of guest stderr kept per instance.
const STDERR_TAIL: usize = 8 * 1024;

/// Pool sizes of the pooling allocator:
/// - up to 64 live component instances across all plugins (warm pools plus calls running),
/// - a Rust guest needs a handful of core instances and tables per component instance.
const POOL_COMPONENT_INSTANCES: u32 = 64;
const POOL_CORE_INSTANCES: u32 = 512;
const POOL_MEMORIES: u32 = 128;
const POOL_TABLES: u32 = 512;

/// Of a released pooled linear memory (table), this many bytes are reset in place and stay
/// resident instead of being handed back to the kernel, so the next instance in the slot
/// starts without page faults on them. With `PAGEMAP_SCAN` (Linux 6.7+) only the pages the
/// guest dirtied are reset.
const KEEP_RESIDENT_MEMORY: usize = 1 << 20;
const KEEP_RESIDENT_TABLE: usize = 64 << 10;

/// What the imports of a store may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode {
    /// `manifest()` is running: every import refuses.
    Manifest,
    /// Normal calls: imports reach the ports within the plugin's capabilities.
    Active,
}

/// The state behind one plugin store.
pub struct PluginState {
    /// Department id (the file stem until the manifest is read).
    pub(crate) plugin_id: String,
    pub(crate) mode: ImportMode,
    pub(crate) ports: Ports,
    pub(crate) deliveries: Option<DeliveryQueue>,
    /// How deep in an event cascade the current call is (0 outside `handle-event`).
    pub(crate) event_depth: u32,
    pub(crate) hard_deadline: Option<Instant>,
    pub(crate) memory: MemoryCap,
    pub(crate) stderr: GuestStderr,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    policy: OutboundPolicy,
    table: ResourceTable,
}

impl PluginState {
    /// State for a store of `plugin_id` with no grants beyond the policy.
    pub(crate) fn new(
        plugin_id: &str,
        mode: ImportMode,
        ports: Ports,
        policy: OutboundPolicy,
        memory_cap: usize,
        deliveries: Option<DeliveryQueue>,
    ) -> PluginState {
        let stderr = GuestStderr::new(plugin_id);
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .build();
        PluginState {
            plugin_id: plugin_id.to_string(),
            mode,
            ports,
            deliveries,
            event_depth: 0,
            hard_deadline: None,
            memory: MemoryCap {
                cap: memory_cap,
                exceeded: false,
            },
            stderr,
            wasi,
            http: WasiHttpCtx::new(),
            policy,
            table: ResourceTable::new(),
        }
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for PluginState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.policy,
        }
    }
}

/// Creates a store with the memory cap and the deadline callback installed.
pub(crate) fn new_store(engine: &Engine, state: PluginState) -> Store<PluginState> {
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.memory);
    store.epoch_deadline_callback(|context| match context.data().hard_deadline {
        Some(deadline) if Instant::now() >= deadline => Err(Trap::Interrupt.into()),
        _ => Ok(UpdateDeadline::Yield(1)),
    });
    store
}

/// Arms the deadline of the next call on `store`.
pub(crate) fn arm_deadline(store: &mut Store<PluginState>, timeout: Duration) {
    store.data_mut().hard_deadline = Some(Instant::now() + timeout + HARD_DEADLINE_GRACE);
    store.set_epoch_deadline(1);
}

/// The environment variable that can force the instance allocator: `pooling` (the default)
/// or `on-demand`. An unknown value is logged and ignored.
pub const ALLOCATOR_ENV: &str = "RUSVEL_INSTANCE_ALLOCATOR";

/// How the engine allocates instances (memories, tables, fiber stacks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceAllocator {
    /// Slots reserved once when the engine is built and reused by every instance: the
    /// cheapest instantiation, at the cost of reserving virtual address space up front.
    Pooling,
    /// Every instance maps and unmaps its own memory.
    OnDemand,
}

impl InstanceAllocator {
    /// The allocator [`ALLOCATOR_ENV`] asks for, [`InstanceAllocator::Pooling`] by default.
    pub fn from_env() -> InstanceAllocator {
        match std::env::var(ALLOCATOR_ENV).as_deref() {
            Err(_) | Ok("") | Ok("pooling") => InstanceAllocator::Pooling,
            Ok("on-demand") => InstanceAllocator::OnDemand,
            Ok(other) => {
                tracing::warn!(
                    variable = ALLOCATOR_ENV,
                    value = other,
                    "unknown instance allocator (expected `pooling` or `on-demand`); pooling"
                );
                InstanceAllocator::Pooling
            }
        }
    }
}

/// Builds the engine: component model, epoch interruption, and the allocator
/// [`InstanceAllocator::from_env`] picks (pooling unless told otherwise).
pub fn build_engine(max_memory: usize) -> Result<Engine, HostError> {
    build_engine_with(max_memory, InstanceAllocator::from_env()).map(|(engine, _)| engine)
}

/// Builds the engine with the `preferred` allocator. Pooling falls back to on-demand
/// allocation, with the reason logged, when the machine cannot reserve the pool (for
/// example under a virtual memory `ulimit`). Returns the allocator actually in use.
pub fn build_engine_with(
    max_memory: usize,
    preferred: InstanceAllocator,
) -> Result<(Engine, InstanceAllocator), HostError> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);

    if preferred == InstanceAllocator::Pooling {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(POOL_COMPONENT_INSTANCES)
            .total_core_instances(POOL_CORE_INSTANCES)
            .total_memories(POOL_MEMORIES)
            .total_tables(POOL_TABLES)
            .total_stacks(POOL_COMPONENT_INSTANCES)
            .max_memory_size(max_memory)
            .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
            .table_keep_resident(KEEP_RESIDENT_TABLE)
            .pagemap_scan(Enabled::Auto);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        match Engine::new(&config) {
            Ok(engine) => {
                tracing::debug!("engine uses the pooling allocator");
                return Ok((engine, InstanceAllocator::Pooling));
            }
            Err(error) => tracing::warn!(
                reason = %describe(&error),
                "pooling allocator unavailable; instances are allocated on demand"
            ),
        }
    } else {
        tracing::info!("instances are allocated on demand, as configured");
    }
    config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
    let engine = Engine::new(&config).map_err(|error| HostError::Engine(describe(&error)))?;
    Ok((engine, InstanceAllocator::OnDemand))
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
#[derive(Debug)]
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    /// Starts the ticker thread for `engine`.
    pub fn start(engine: &Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let engine = engine.clone();
        std::thread::Builder::new()
            .name("rusvel-epoch".into())
            .spawn(move || {
                while !thread_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        EpochTicker { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The memory cap of one store; records when the guest hit it.
#[derive(Debug)]
pub(crate) struct MemoryCap {
    pub(crate) cap: usize,
    pub(crate) exceeded: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.exceeded = true;
            // An error (not `false`) traps the guest, so growth failure fails the call.
            return Err(wasmtime::Error::msg(format!(
                "memory growth to {desired} bytes exceeds the cap of {} bytes",
                self.cap
            )));
        }
        Ok(maximum.is_none_or(|maximum| desired <= maximum))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000 && maximum.is_none_or(|maximum| desired <= maximum))
    }
}

/// A guest's stderr: the last few KiB kept in memory, each write logged at `debug`.
#[derive(Clone, Debug)]
pub(crate) struct GuestStderr {
    plugin_id: Arc<str>,
    tail: Arc<Mutex<VecDeque<u8>>>,
}

impl GuestStderr {
    fn new(plugin_id: &str) -> GuestStderr {
        GuestStderr {
            plugin_id: plugin_id.into(),
            tail: Arc::default(),
        }
    }

    /// The kept tail as text, trimmed.
    pub(crate) fn tail(&self) -> String {
        let tail = self
            .tail
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let bytes: Vec<u8> = tail.iter().copied().collect();
        String::from_utf8_lossy(&bytes).trim().to_string()
    }
}

impl IsTerminal for GuestStderr {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStderr {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for GuestStderr {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        tracing::debug!(
            plugin = %self.plugin_id,
            stderr = %String::from_utf8_lossy(bytes).trim_end(),
            "guest stderr"
        );
        let mut tail = self
            .tail
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        tail.extend(bytes.iter().copied());
        let excess = tail.len().saturating_sub(STDERR_TAIL);
        tail.drain(..excess);
        Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
