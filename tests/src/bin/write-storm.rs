//! Writes through the Infra department as fast as it can, for crash tests.
//!
//! ```text
//! write-storm --plugins <dir> --data <dir> [--cache <dir>] [--workers N] [--max-calls N]
//! ```
//!
//! Loads the plugins of `--plugins` over `<data>/rusvel.db`, then runs `--workers` loops
//! (default 4), each in its own session: open an incident, change its severity, investigate,
//! resolve; record a deployment, start it, finish it. After every successful call it prints
//! `calls <total>` on stdout (flushed), so a test can kill it mid-storm at a known point.
//! It stops after `--max-calls` calls (default: never).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use rusvel_host::{HostConfig, PluginHost};
use serde_json::{json, Value};

struct Options {
    plugins: PathBuf,
    data: PathBuf,
    cache: Option<PathBuf>,
    workers: usize,
    max_calls: u64,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        plugins: PathBuf::new(),
        data: PathBuf::new(),
        cache: None,
        workers: 4,
        max_calls: u64::MAX,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--plugins" => options.plugins = value.into(),
            "--data" => options.data = value.into(),
            "--cache" => options.cache = Some(value.into()),
            "--workers" => options.workers = value.parse()?,
            "--max-calls" => options.max_calls = value.parse()?,
            other => bail!("unknown flag {other}"),
        }
    }
    if options.plugins.as_os_str().is_empty() || options.data.as_os_str().is_empty() {
        bail!("usage: write-storm --plugins <dir> --data <dir> [--cache <dir>] [--workers N]");
    }
    Ok(options)
}

/// Counts successful calls and reports each on stdout.
struct Progress {
    calls: AtomicU64,
    max: u64,
}

impl Progress {
    /// Records one call; returns whether the storm should go on.
    fn record(&self) -> bool {
        let total = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "calls {total}");
        let _ = out.flush();
        total < self.max
    }
}

/// Calls a tool and returns its content as JSON, or `None` (reported on stderr) on error.
async fn call(host: &PluginHost, tool: &str, args: Value) -> Option<Value> {
    match host.call_tool("infra", tool, &args.to_string()).await {
        Ok(output) if !output.is_error => serde_json::from_str(&output.content).ok(),
        Ok(output) => {
            eprintln!("{tool}: {}", output.content);
            None
        }
        Err(error) => {
            eprintln!("{tool}: {error}");
            None
        }
    }
}

async fn worker(host: Arc<PluginHost>, progress: Arc<Progress>, worker: usize) {
    let session = rusvel_host::clock::new_id();
    let mut round: u64 = 0;
    loop {
        round += 1;
        let Some(opened) = call(
            &host,
            "infra.incidents.create",
            json!({"session_id": session, "title": format!("storm {worker}/{round}"),
                   "description": "written by the write storm", "severity": "P3"}),
        )
        .await
        else {
            continue;
        };
        if !progress.record() {
            return;
        }
        let incident = opened["incident_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        for update in [
            json!({"severity": "P2"}),
            json!({"status": "investigating"}),
            json!({"status": "mitigated", "note": "rolled the config back"}),
        ] {
            let mut args = json!({"session_id": session, "incident_id": incident});
            args.as_object_mut()
                .unwrap()
                .extend(update.as_object().unwrap().clone());
            if call(&host, "infra.incidents.update", args).await.is_some() && !progress.record() {
                return;
            }
        }
        let resolve = json!({"session_id": session, "incident_id": incident, "note": "done"});
        if call(&host, "infra.incidents.resolve", resolve)
            .await
            .is_some()
            && !progress.record()
        {
            return;
        }

        let Some(triggered) = call(
            &host,
            "infra.deploy.trigger",
            json!({"session_id": session, "service": format!("svc-{worker}"),
                   "version": format!("v{round}"), "environment": "prod"}),
        )
        .await
        else {
            continue;
        };
        if !progress.record() {
            return;
        }
        let deployment = triggered["deployment_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        for status in ["in_progress", "deployed"] {
            let args = json!({"session_id": session, "deployment_id": deployment,
                              "status": status});
            if call(&host, "infra.deploy.update_status", args)
                .await
                .is_some()
                && !progress.record()
            {
                return;
            }
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let mut config = HostConfig::new(&options.plugins, &options.data);
    if options.cache.is_some() {
        config.cache_dir = options.cache.clone();
    }
    let host = Arc::new(PluginHost::load(config).await?);
    if host.plugin("infra").is_none() {
        bail!("the infra plugin did not load: {:?}", host.failures());
    }
    println!("ready");
    let progress = Arc::new(Progress {
        calls: AtomicU64::new(0),
        max: options.max_calls,
    });
    let workers: Vec<_> = (0..options.workers)
        .map(|index| tokio::spawn(worker(host.clone(), progress.clone(), index)))
        .collect();
    for handle in workers {
        handle.await?;
    }
    host.shutdown_all().await?;
    Ok(())
}
