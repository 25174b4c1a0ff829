//! Getting a plugin ready: cold compilation, the artifact cache, a whole cached load and
//! fresh instances with and without the pooling allocator.

use std::path::Path;
use std::time::Instant;

use rusvel_host::cache::{load_component_with_outcome, CacheOutcome};
use rusvel_host::sandbox::{build_engine_with, InstanceAllocator, ALLOCATOR_ENV};
use rusvel_host::sqlite::Database;
use rusvel_host::{HostConfig, PluginHost};
use serde_json::json;

use crate::report::Report;
use crate::stats::Samples;
use crate::{
    call_component, require_plugin, sqlite_ports, tool_args, CACHED_LOAD_MS, DEPARTMENT,
    FRESH_INSTANCE_US, LIST, PER_ROUND, ROUNDS, WARMUP,
};

/// Cold compilation, and the cache hit on its own (read, verify, deserialize).
pub(crate) fn compile_and_cache(
    plugins: &Path,
    work: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    let (engine, _) = build_engine_with(128 << 20, InstanceAllocator::Pooling)?;
    let component = plugins.join("infra.wasm");
    let mut compile = Samples::default();
    for _ in 0..3 {
        let started = Instant::now();
        let (_, outcome) = load_component_with_outcome(&engine, &component, None)?;
        compile.since(started);
        assert_eq!(outcome, CacheOutcome::Uncached);
    }
    report.info(
        "cold compile (cranelift, median of 3)",
        format!("{:.1} ms", compile.median_us() / 1e3),
    );
    report.metric("cold_compile_ms", json!(compile.median_us() / 1e3));

    let cache = work.join("cache-only");
    load_component_with_outcome(&engine, &component, Some(&cache))?;
    let mut hit = Samples::default();
    for _ in 0..30 {
        let started = Instant::now();
        let (_, outcome) = load_component_with_outcome(&engine, &component, Some(&cache))?;
        hit.since(started);
        assert_eq!(outcome, CacheOutcome::Hit);
    }
    let artifact: u64 = std::fs::read_dir(&cache)?
        .map(|entry| entry.map(|e| e.metadata().map(|m| m.len()).unwrap_or(0)))
        .sum::<Result<u64, _>>()?;
    report.info(
        "cache hit: hash + read + verify + deserialize",
        format!("{:.2} ms", hit.median_us() / 1e3),
    );
    report.info("cache entry size", format!("{artifact} B"));
    report.metric("cache_hit_ms", json!(hit.median_us() / 1e3));
    report.metric("cache_entry_bytes", json!(artifact));
    Ok(())
}

/// A whole host load from a warm cache: engine, linker, deserialize, instantiate, manifest,
/// register (index creation included), on an already open database.
pub(crate) async fn cached_load(
    plugins: &Path,
    data: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    let database = Database::open(data)?;
    let ports = sqlite_ports(&database);
    let config = HostConfig::new(plugins, data);
    let first = PluginHost::load_with_ports(config.clone(), ports.clone(), None).await?;
    require_plugin(&first)?;
    drop(first);

    let mut engine = Samples::default();
    for _ in 0..20 {
        let started = Instant::now();
        let built = build_engine_with(128 << 20, InstanceAllocator::Pooling)?;
        engine.since(started);
        drop(built);
    }
    report.info(
        "of which: engine build, pooling",
        format!("{:.2} ms", engine.median_us() / 1e3),
    );
    report.metric("engine_build_ms", json!(engine.median_us() / 1e3));

    // Per plugin (what the target covers): artifact (read, verify, deserialize), link +
    // instantiate + manifest, fresh instance + register. Whole host: plus engine, linker,
    // epoch thread and the delivery task, paid once for all plugins.
    let (mut plugin_load, mut host_load) = (Samples::default(), Samples::default());
    let (mut artifact, mut inspect, mut register) =
        (Samples::default(), Samples::default(), Samples::default());
    // Argument schemas are compiled on a tool's first call, so that call carries the cost
    // registration no longer pays; shown next to the second call of the same tool.
    let (mut first_call, mut second_call) = (Samples::default(), Samples::default());
    let list_args = tool_args(LIST);
    for _ in 0..30 {
        let started = Instant::now();
        let host = PluginHost::load_with_ports(config.clone(), ports.clone(), None).await?;
        host_load.since(started);
        require_plugin(&host)?;
        let times = host.plugin(DEPARTMENT).expect("checked").load_times();
        plugin_load.push(times.total());
        artifact.push(times.artifact);
        inspect.push(times.inspect);
        register.push(times.register);
        for calls in [&mut first_call, &mut second_call] {
            let started = Instant::now();
            call_component(&host, LIST, &list_args).await?;
            calls.since(started);
        }
        drop(host);
    }
    let median_ms = plugin_load.median_us() / 1e3;
    for (label, samples) in [
        (
            "of which: cached artifact (read, verify, deserialize)",
            &artifact,
        ),
        ("of which: link, instantiate, manifest()", &inspect),
        (
            "of which: instantiate, register(), indexes, schemas parsed",
            &register,
        ),
    ] {
        report.info(label, format!("{:.2} ms", samples.median_us() / 1e3));
    }
    report.info(
        "first call of a tool after load (compiles its schema) / second call",
        format!(
            "{:.0} / {:.0} us",
            first_call.median_us(),
            second_call.median_us()
        ),
    );
    report.metric("first_call_us", json!(first_call.median_us()));
    report.metric("second_call_us", json!(second_call.median_us()));
    report.check(
        "cached load of the plugin (deserialize+instantiate+manifest+register)",
        format!("{median_ms:.2} ms"),
        "<= 2 ms",
        median_ms <= CACHED_LOAD_MS,
    );
    report.info(
        "whole host load, one plugin (engine, linker, tasks + the above)",
        format!("{:.2} ms", host_load.median_us() / 1e3),
    );
    report.metric(
        "cached_load_ms",
        json!({
            "median": median_ms,
            "p99": plugin_load.p99_us() / 1e3,
            "artifact": artifact.median_us() / 1e3,
            "inspect": inspect.median_us() / 1e3,
            "register": register.median_us() / 1e3,
            "whole_host": host_load.median_us() / 1e3,
        }),
    );
    Ok(())
}

/// New store + instance from the `InstancePre`, with and without the pooling allocator.
pub(crate) async fn instantiation(
    pooled_host: &PluginHost,
    plugins: &Path,
    work: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    let (_, pooling_available) = build_engine_with(128 << 20, InstanceAllocator::Pooling)?;
    report.info(
        "pooling allocator on this machine",
        format!("{pooling_available:?}"),
    );

    std::env::set_var(ALLOCATOR_ENV, "on-demand");
    let on_demand_host = PluginHost::load(HostConfig::new(plugins, work.join("on-demand"))).await;
    std::env::remove_var(ALLOCATOR_ENV);
    let on_demand_host = on_demand_host?;
    require_plugin(&on_demand_host)?;

    let pooled = pooled_host.plugin(DEPARTMENT).expect("checked");
    let on_demand = on_demand_host.plugin(DEPARTMENT).expect("checked");
    let (mut with_pool, mut without_pool) = (Samples::default(), Samples::default());
    for _ in 0..WARMUP {
        pooled.instantiate_unregistered().await?;
        on_demand.instantiate_unregistered().await?;
    }
    for _ in 0..ROUNDS * 2 {
        for _ in 0..PER_ROUND {
            let started = Instant::now();
            pooled.instantiate_unregistered().await?;
            with_pool.since(started);
        }
        for _ in 0..PER_ROUND {
            let started = Instant::now();
            on_demand.instantiate_unregistered().await?;
            without_pool.since(started);
        }
    }
    let pooled_us = with_pool.median_us();
    report.check(
        "fresh store+instance, pooling (median / p99)",
        format!("{pooled_us:.1} / {:.1} us", with_pool.p99_us()),
        "<= 20 us",
        pooled_us <= FRESH_INSTANCE_US,
    );
    report.info(
        "fresh store+instance, on-demand (median / p99)",
        format!(
            "{:.1} / {:.1} us",
            without_pool.median_us(),
            without_pool.p99_us()
        ),
    );
    report.metric(
        "fresh_instance_us",
        json!({
            "pooling": { "median": pooled_us, "p99": with_pool.p99_us() },
            "on_demand": { "median": without_pool.median_us(), "p99": without_pool.p99_us() },
            "pooling_available": pooling_available == InstanceAllocator::Pooling,
        }),
    );
    Ok(())
}
