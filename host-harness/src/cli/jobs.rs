//! `rusvel-host worker` runs queued jobs; `rusvel-host jobs` lists, cancels and approves
//! them.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use rusvel_host::ports::{JobFilter, JobStatus, PortError};
use rusvel_host::worker::{self, JobRun, WorkerOptions, WorkerReport};
use rusvel_host::PluginHost;
use serde_json::json;

use super::output::{clip, print_json, print_table};

/// `rusvel-host worker` options.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Run the jobs that are due, then exit.
    #[arg(long, conflicts_with = "for_seconds")]
    once: bool,
    /// Stop after this many seconds (default: run until Ctrl-C or SIGTERM).
    #[arg(long, value_name = "N")]
    for_seconds: Option<u64>,
    /// How often an idle worker looks for due jobs, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    poll_ms: u64,
}

/// `rusvel-host jobs` options.
#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Only jobs in this status: queued, running, succeeded, failed, cancelled,
    /// awaiting_approval.
    #[arg(long, value_parser = parse_status)]
    status: Option<JobStatus>,
    /// Only jobs of this kind, for example `infra.health_scan`.
    #[arg(long)]
    kind: Option<String>,
    /// Only jobs owned by this department.
    #[arg(long)]
    department: Option<String>,
    /// At most this many jobs (newest first).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    #[command(subcommand)]
    action: Option<JobAction>,
}

#[derive(Debug, Subcommand)]
enum JobAction {
    /// Cancel a queued, scheduled or held job (stops a recurring job's schedule).
    Cancel {
        /// Job id.
        id: String,
    },
    /// Approve a job awaiting approval; it succeeds with its held result.
    Approve {
        /// Job id.
        id: String,
    },
}

fn parse_status(text: &str) -> Result<JobStatus, String> {
    JobStatus::parse(&text.replace('-', "_")).ok_or_else(|| {
        format!(
            "unknown status `{text}` (queued, running, succeeded, failed, cancelled, \
             awaiting_approval)"
        )
    })
}

/// `rusvel-host worker`.
pub async fn worker(
    host: Arc<PluginHost>,
    args: &WorkerArgs,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let kinds = host.job_kinds();
    if kinds.is_empty() {
        errln!("note: no loaded plugin handles jobs");
    } else {
        tracing::info!(kinds = %kinds.join(", "), "worker started");
    }
    let (report, runs) = if args.once {
        let mut report = WorkerReport::default();
        let mut runs = Vec::new();
        while let Some(run) = worker::run_one(&host).await? {
            report.record(&run);
            if !as_json {
                print_run(&run)?;
            }
            runs.push(run);
        }
        (report, runs)
    } else {
        let options = WorkerOptions {
            poll_interval: Duration::from_millis(args.poll_ms.max(1)),
        };
        let limit = args.for_seconds.map(Duration::from_secs);
        let report = worker::run_until(&host, &options, shutdown_signal(limit)).await;
        (report, Vec::new())
    };
    if as_json {
        print_json(&json!({ "report": report, "jobs": runs }))?;
    } else {
        outln!(
            "worker: {} job(s) ran: {} succeeded, {} held for approval, {} failed{}",
            report.ran(),
            report.succeeded,
            report.held,
            report.failed,
            if report.queue_errors > 0 {
                format!(", {} queue error(s)", report.queue_errors)
            } else {
                String::new()
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_run(run: &JobRun) -> anyhow::Result<()> {
    match run {
        JobRun::Succeeded { id, kind } => outln!("{id}  {kind}  succeeded"),
        JobRun::Held { id, kind } => outln!("{id}  {kind}  awaiting_approval"),
        JobRun::Failed { id, kind, error } => {
            outln!("{id}  {kind}  failed: {}", clip(error, 120))
        }
    }
    Ok(())
}

/// Resolves on Ctrl-C, on SIGTERM (Unix), or after `limit`.
async fn shutdown_signal(limit: Option<Duration>) {
    let deadline = async {
        match limit {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping the worker"),
        _ = terminate => tracing::info!("terminated; stopping the worker"),
        _ = deadline => {}
    }
}

/// `rusvel-host jobs`.
pub async fn jobs(host: &PluginHost, args: &JobsArgs, as_json: bool) -> anyhow::Result<ExitCode> {
    let port = &host.ports().jobs;
    if let Some(action) = &args.action {
        let (id, done, result) = match action {
            JobAction::Cancel { id } => (id, "cancelled", port.cancel(id).await),
            JobAction::Approve { id } => (id, "approved", port.approve(id).await),
        };
        return match result {
            Ok(()) => {
                if as_json {
                    print_json(&json!({ "id": id, "done": done }))?;
                } else {
                    outln!("job {id} {done}");
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(PortError::InvalidState { from, .. }) => {
                let allowed = match action {
                    JobAction::Approve { .. } => "only a job awaiting_approval can be approved",
                    JobAction::Cancel { .. } => {
                        "only a queued job, one awaiting_approval or a run of a live schedule \
                         can be cancelled"
                    }
                };
                errln!("error: job {id} is {from}; {allowed}");
                Ok(ExitCode::FAILURE)
            }
            Err(error) => {
                errln!("error: {error}");
                Ok(ExitCode::FAILURE)
            }
        };
    }

    let filter = JobFilter {
        kinds: args.kind.iter().cloned().collect(),
        statuses: args.status.iter().copied().collect(),
        owner: args.department.clone(),
        limit: Some(args.limit),
        ..Default::default()
    };
    let jobs = port.list(&filter).await?;
    if as_json {
        print_json(&serde_json::to_value(&jobs)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if jobs.is_empty() {
        outln!("no jobs");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|job| {
            vec![
                job.id.clone(),
                job.kind.clone(),
                job.status.as_str().to_string(),
                job.scheduled_at.clone().unwrap_or_default(),
                format!("{}/{}", job.retries, job.max_retries),
                job.cron.clone().unwrap_or_default(),
                clip(job.error.as_deref().unwrap_or_default(), 50),
            ]
        })
        .collect();
    print_table(
        &[
            "ID",
            "KIND",
            "STATUS",
            "SCHEDULED_AT",
            "RETRIES",
            "CRON",
            "ERROR",
        ],
        &rows,
    )?;
    Ok(ExitCode::SUCCESS)
}
