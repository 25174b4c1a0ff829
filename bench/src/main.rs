//! `rusvel-bench`: release benchmarks of the Infra department component.
//!
//! ```text
//! cargo run --release -p rusvel-bench -- --component <dept_infra.wasm> [--out <report.json>]
//! ```
//!
//! Measures compilation and cached loading, instantiation with and without the pooling
//! allocator, two tools (`infra.incidents.create`, `infra.incidents.list`) through the
//! component against the same engine linked natively on the same ports (SQLite, then in
//! memory), single-thread throughput, a session-filtered page at 1k/10k/100k objects against
//! the `json_extract` scan RUSVEL's native adapter does, the component size and the peak RSS
//! of a host with the plugin loaded (measured in a child process, so the benchmark's own
//! data does not count). Prints a table with PASS/MISS per target and writes
//! `target/bench/report.json`.
//!
//! Every comparison runs on one thread (a current-thread tokio runtime) and alternates the
//! two sides in short rounds, so drift on a shared machine hits both alike.

mod adapters;
mod loading;
mod paging;
mod report;
mod stats;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use infra_engine::memory::{MemoryEventSink, MemoryJobQueue, MemoryObjectStore};
use infra_engine::{InfraConfig, InfraEngine};
use rusvel_host::cache::load_component_with_outcome;
use rusvel_host::plugin::InstanceModel;
use rusvel_host::ports::{ObjectStore, Ports};
use rusvel_host::sandbox::{build_engine_with, InstanceAllocator};
use rusvel_host::sqlite::{Database, SqliteEventPort, SqliteJobPort, SqliteObjectStore};
use rusvel_host::{HostConfig, PluginHost};
use serde_json::{json, Value};

use report::Report;
use stats::Samples;

const DEPARTMENT: &str = "infra";
const CREATE: &str = "infra.incidents.create";
const LIST: &str = "infra.incidents.list";
const INCIDENT_KIND: &str = "infra_incident";
const SESSION: &str = "0190a6b2-7c1e-7000-8000-00000000b001";

/// Alternating rounds per comparison, and calls per side per round.
const ROUNDS: usize = 10;
const PER_ROUND: usize = 100;
/// Warm-up calls per side before measuring.
const WARMUP: usize = 50;
/// Object counts of the paging comparison.
const PAGE_SIZES: [usize; 3] = [1_000, 10_000, 100_000];
/// Sessions the paging data is spread over (the queried one holds a tenth).
const PAGE_SESSIONS: usize = 10;

/// Targets of the performance issue.
const RATIO_SQLITE: f64 = 1.3;
const RATIO_MEMORY: f64 = 2.0;
const CACHED_LOAD_MS: f64 = 2.0;
const FRESH_INSTANCE_US: f64 = 20.0;
const PAGE_SPEEDUP: f64 = 50.0;
const PAGE_FLATNESS: f64 = 1.5;
const COMPONENT_BYTES: u64 = 1 << 20;
const PEAK_RSS_KIB: u64 = 64 * 1024;

struct Args {
    component: PathBuf,
    /// Profiling aid: repeat one operation (`cache`, `load`, `instances`, `create`, `list`,
    /// `memory-create`, `memory-list`) for this many seconds.
    profile: Option<(String, u64)>,
    out: PathBuf,
    /// Child mode: load the host on this data dir (warm cache) and report VmHWM.
    rss_probe: Option<(PathBuf, PathBuf)>,
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if let Some((plugins, data)) = &args.rss_probe {
        return runtime.block_on(rss_probe(plugins, data));
    }
    if let Some((section, seconds)) = &args.profile {
        return runtime.block_on(profile(&args.component, section, *seconds));
    }
    let started = Instant::now();
    let mut report = Report::default();
    runtime.block_on(run(&args, &mut report))?;
    report.metric("bench_seconds", json!(started.elapsed().as_secs_f64()));
    report.print();
    report.write(&args.out)?;
    println!(
        "  report: {} ({:.0} s)",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn parse_args() -> anyhow::Result<Args> {
    let mut component = None;
    let mut out = PathBuf::from("target/bench/report.json");
    let mut rss_probe = None;
    let mut profile = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--component" => component = args.next().map(PathBuf::from),
            "--out" => {
                out = args
                    .next()
                    .map(PathBuf::from)
                    .context("--out needs a path")?
            }
            "--profile" => {
                let section = args.next().context("--profile needs a section")?;
                let seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
                profile = Some((section, seconds));
            }
            "--rss-probe" => {
                let plugins = args.next().context("--rss-probe needs two paths")?;
                let data = args.next().context("--rss-probe needs two paths")?;
                rss_probe = Some((plugins.into(), data.into()));
            }
            other => bail!("unknown argument `{other}`; usage: --component <file.wasm>"),
        }
    }
    let component = match (&rss_probe, component) {
        (_, Some(component)) => component,
        (Some(_), None) => PathBuf::new(),
        (None, None) => bail!("usage: rusvel-bench --component <dept_infra.wasm>"),
    };
    Ok(Args {
        component,
        profile,
        out,
        rss_probe,
    })
}

async fn run(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let plugins = work.path().join("plugins");
    std::fs::create_dir_all(&plugins)?;
    std::fs::copy(&args.component, plugins.join("infra.wasm"))
        .with_context(|| format!("reading {}", args.component.display()))?;

    report.section("component");
    let size = std::fs::metadata(&args.component)?.len();
    report.check(
        "component size (guest-release)",
        format!("{size} B ({:.0} KiB)", size as f64 / 1024.0),
        "<= 1 MiB",
        size <= COMPONENT_BYTES,
    );
    report.metric("component_bytes", json!(size));
    loading::compile_and_cache(&plugins, work.path(), report)?;

    report.section("loading");
    let data = work.path().join("host");
    loading::cached_load(&plugins, &data, report).await?;

    report.section("instances");
    let sqlite_host = PluginHost::load(HostConfig::new(&plugins, &data)).await?;
    require_plugin(&sqlite_host)?;
    loading::instantiation(&sqlite_host, &plugins, work.path(), report).await?;

    report.section("tool calls, SQLite ports (component vs same engine native)");
    let native_db = Database::open(&work.path().join("native"))?;
    index_like_registration(&SqliteObjectStore::new(native_db.clone())).await?;
    let native = InfraEngine::new(
        adapters::native_sqlite_ports(&native_db),
        InfraConfig::default(),
    );
    let sqlite_create = compare(&sqlite_host, &native, CREATE, report, "sqlite").await?;
    compare(&sqlite_host, &native, LIST, report, "sqlite").await?;

    report.section("tool calls, in-memory ports (boundary + serialization only)");
    let (memory_host, memory_native) = memory_pair(&plugins, work.path()).await?;
    // The in-memory fake lists by walking every object, so the list runs first, on 60
    // incidents (one page of 50 plus a few), where that walk does not hide the boundary.
    let create = tool_args(CREATE);
    for _ in 0..60 {
        call_component(&memory_host, CREATE, &create).await?;
        memory_native.call_tool_json(CREATE, &create)?;
    }
    compare(&memory_host, &memory_native, LIST, report, "memory").await?;
    compare(&memory_host, &memory_native, CREATE, report, "memory").await?;
    drop(memory_host);

    report.section("instance model (incidents.create, SQLite)");
    instance_model(&sqlite_host, &sqlite_create, report).await?;

    report.section("single-thread throughput through the component (SQLite)");
    throughput(&sqlite_host, report).await?;
    drop(sqlite_host);

    report.section("session-filtered page of 50 (host adapter vs json_extract scan)");
    paging::page_scaling(work.path(), report).await?;

    report.section("memory");
    peak_rss(&plugins, &data, report)?;
    Ok(())
}

/// Repeats one section's operation for `seconds`, for a profiler to sample.
async fn profile(component: &Path, section: &str, seconds: u64) -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let plugins = work.path().join("plugins");
    std::fs::create_dir_all(&plugins)?;
    std::fs::copy(component, plugins.join("infra.wasm"))?;
    let (engine, _) = build_engine_with(128 << 20, InstanceAllocator::Pooling)?;
    let cache = work.path().join("cache");
    load_component_with_outcome(&engine, &plugins.join("infra.wasm"), Some(&cache))?;
    let host = if section.starts_with("memory-") {
        memory_pair(&plugins, work.path()).await?.0
    } else {
        PluginHost::load(HostConfig::new(&plugins, work.path().join("data"))).await?
    };
    require_plugin(&host)?;
    let plugin = host.plugin(DEPARTMENT).expect("checked");
    let started = Instant::now();
    let mut rounds = 0u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        match section {
            "cache" => drop(load_component_with_outcome(
                &engine,
                &plugins.join("infra.wasm"),
                Some(&cache),
            )?),
            "load" => drop(PluginHost::load(HostConfig::new(&plugins, work.path())).await?),
            "instances" => plugin.instantiate_unregistered().await?,
            "create" | "memory-create" => call_component(&host, CREATE, &tool_args(CREATE)).await?,
            "list" | "memory-list" => call_component(&host, LIST, &tool_args(LIST)).await?,
            other => bail!("unknown section `{other}`"),
        }
        rounds += 1;
    }
    println!("{rounds} rounds of {section} in {seconds} s");
    Ok(())
}

fn require_plugin(host: &PluginHost) -> anyhow::Result<()> {
    if host.plugin(DEPARTMENT).is_none() {
        let failures: Vec<String> = host
            .failures()
            .iter()
            .map(|failure| format!("{}: {}", failure.path.display(), failure.error))
            .collect();
        bail!("the infra plugin did not load: {}", failures.join("; "));
    }
    Ok(())
}

fn sqlite_ports(database: &Database) -> Ports {
    Ports {
        objects: Arc::new(SqliteObjectStore::new(database.clone())),
        events: Arc::new(SqliteEventPort::new(database.clone())),
        jobs: Arc::new(SqliteJobPort::new(database.clone())),
        agent: Arc::new(rusvel_host::agent::ScriptedAgent::unconfigured()),
    }
}

/// Creates the indexes the department's registration asks for, as the host does.
async fn index_like_registration(store: &SqliteObjectStore) -> anyhow::Result<()> {
    for (kind, field) in infra_engine::registration().indexed_fields {
        store.index_field(&kind, &field).await?;
    }
    Ok(())
}

/// Arguments of each measured tool call.
fn tool_args(tool: &str) -> String {
    match tool {
        CREATE => json!({
            "session_id": SESSION,
            "title": "Checkout latency above SLO",
            "description": "p99 of POST /checkout over 2 s since 14:02 UTC; error rate normal.",
            "severity": "P2",
        }),
        _ => json!({ "session_id": SESSION, "limit": 50 }),
    }
    .to_string()
}

/// One tool through the component and through the native engine, alternating rounds.
async fn compare(
    host: &PluginHost,
    native: &InfraEngine,
    tool: &str,
    report: &mut Report,
    ports: &str,
) -> anyhow::Result<Samples> {
    let args = tool_args(tool);
    for _ in 0..WARMUP {
        call_component(host, tool, &args).await?;
        native.call_tool_json(tool, &args)?;
    }
    let (mut component, mut direct) = (Samples::default(), Samples::default());
    for _ in 0..ROUNDS {
        for _ in 0..PER_ROUND {
            let started = Instant::now();
            call_component(host, tool, &args).await?;
            component.since(started);
        }
        for _ in 0..PER_ROUND {
            let started = Instant::now();
            native.call_tool_json(tool, &args)?;
            direct.since(started);
        }
    }
    let ratio = component.median_us() / direct.median_us();
    let (limit, target) = match ports {
        "sqlite" => (RATIO_SQLITE, "<= 1.3x native"),
        _ => (RATIO_MEMORY, "<= 2x native"),
    };
    let short = tool.trim_start_matches("infra.");
    report.info(
        &format!("{short}: component median / p99"),
        format!(
            "{:.1} / {:.1} us",
            component.median_us(),
            component.p99_us()
        ),
    );
    report.info(
        &format!("{short}: native engine median / p99"),
        format!("{:.1} / {:.1} us", direct.median_us(), direct.p99_us()),
    );
    report.check(
        &format!("{short}: component / native (medians)"),
        format!("{ratio:.2}x"),
        target,
        ratio <= limit,
    );
    report.metric(
        &format!("{ports}.{tool}"),
        json!({
            "component_us": { "median": component.median_us(), "p99": component.p99_us() },
            "native_us": { "median": direct.median_us(), "p99": direct.p99_us() },
            "ratio": ratio,
            "samples": component.len(),
        }),
    );
    Ok(component)
}

async fn call_component(host: &PluginHost, tool: &str, args: &str) -> anyhow::Result<()> {
    let output = host.call_tool(DEPARTMENT, tool, args).await?;
    if output.is_error {
        bail!("{tool} failed: {}", output.content);
    }
    Ok(())
}

/// A host on in-memory ports and a native engine, each on its own in-memory store.
async fn memory_pair(plugins: &Path, work: &Path) -> anyhow::Result<(PluginHost, InfraEngine)> {
    let ports = adapters::memory_host_ports(Arc::new(MemoryObjectStore::default()))?;
    let config = HostConfig::new(plugins, work.join("memory"));
    let host = PluginHost::load_with_ports(config, ports, None).await?;
    require_plugin(&host)?;
    let native = InfraEngine::new(
        infra_engine::Ports::new(
            Arc::new(MemoryObjectStore::default()),
            Arc::new(MemoryEventSink::default()),
            Arc::new(MemoryJobQueue::default()),
        ),
        InfraConfig::default(),
    );
    Ok((host, native))
}

/// A fresh instance per call (instantiate + register + call) against the warm pool.
async fn instance_model(
    host: &PluginHost,
    pooled_create: &Samples,
    report: &mut Report,
) -> anyhow::Result<()> {
    let plugin = host.plugin(DEPARTMENT).expect("checked");
    let args = tool_args(CREATE);
    plugin.set_instance_model(InstanceModel::FreshPerCall);
    let mut fresh = Samples::default();
    for index in 0..WARMUP + 300 {
        let started = Instant::now();
        call_component(host, CREATE, &args).await?;
        if index >= WARMUP {
            fresh.since(started);
        }
    }
    plugin.set_instance_model(InstanceModel::Pooled(rusvel_host::plugin::WARM_INSTANCES));
    report.info(
        "fresh instance per call (median / p99)",
        format!("{:.1} / {:.1} us", fresh.median_us(), fresh.p99_us()),
    );
    report.info(
        "pooled warm instances (median / p99)",
        format!(
            "{:.1} / {:.1} us",
            pooled_create.median_us(),
            pooled_create.p99_us()
        ),
    );
    let chosen = if pooled_create.median_us() <= fresh.median_us() {
        "pooled"
    } else {
        "fresh"
    };
    report.info("faster model (the default is pooled)", chosen.into());
    report.metric(
        "instance_model_create_us",
        json!({
            "fresh_per_call": { "median": fresh.median_us(), "p99": fresh.p99_us() },
            "pooled": { "median": pooled_create.median_us(), "p99": pooled_create.p99_us() },
            "faster": chosen,
        }),
    );
    Ok(())
}

/// Calls per second, one after another on one thread, for about a second per tool.
async fn throughput(host: &PluginHost, report: &mut Report) -> anyhow::Result<()> {
    let mut rates = serde_json::Map::new();
    for tool in [CREATE, LIST] {
        let args = tool_args(tool);
        let started = Instant::now();
        let mut calls = 0u64;
        while started.elapsed() < Duration::from_secs(1) {
            call_component(host, tool, &args).await?;
            calls += 1;
        }
        let rate = calls as f64 / started.elapsed().as_secs_f64();
        report.info(
            &format!("{}: calls/s", tool.trim_start_matches("infra.")),
            format!("{rate:.0}"),
        );
        rates.insert(tool.into(), json!(rate));
    }
    report.metric("throughput_calls_per_s", Value::Object(rates));
    Ok(())
}

/// Peak RSS of a separate process that loads the host with the plugin from the warm cache
/// and serves a few hundred calls.
fn peak_rss(plugins: &Path, data: &Path, report: &mut Report) -> anyhow::Result<()> {
    let output = std::process::Command::new(std::env::current_exe()?)
        .arg("--rss-probe")
        .arg(plugins)
        .arg(data)
        .output()?;
    if !output.status.success() {
        bail!(
            "rss probe failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let peak_kib: u64 = text
        .trim()
        .parse()
        .with_context(|| format!("rss probe said `{text}`"))?;
    report.check(
        "peak RSS, host with one plugin (VmHWM)",
        format!("{:.1} MiB", peak_kib as f64 / 1024.0),
        "<= 64 MiB",
        peak_kib <= PEAK_RSS_KIB,
    );
    report.metric("peak_rss_kib", json!(peak_kib));
    let own = vm_hwm_kib().unwrap_or(0);
    report.info(
        "peak RSS of this benchmark process (not a target)",
        format!("{:.1} MiB", own as f64 / 1024.0),
    );
    report.metric("bench_process_peak_rss_kib", json!(own));
    Ok(())
}

/// Child mode of [`peak_rss`]: prints VmHWM in KiB.
async fn rss_probe(plugins: &Path, data: &Path) -> anyhow::Result<()> {
    let host = PluginHost::load(HostConfig::new(plugins, data)).await?;
    require_plugin(&host)?;
    for tool in [CREATE, LIST] {
        let args = tool_args(tool);
        for _ in 0..200 {
            call_component(&host, tool, &args).await?;
        }
    }
    println!("{}", vm_hwm_kib().context("no VmHWM in /proc/self/status")?);
    Ok(())
}

fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
