//! The job worker: takes due jobs of the kinds the loaded plugins registered, runs each on
//! its owning plugin's `handle-job` and records the outcome.
//!
//! - `Completed(result)` → [`JobPort::complete`](crate::ports::JobPort::complete);
//!   `HoldForApproval(result)` → [`JobPort::hold_for_approval`](crate::ports::JobPort);
//!   a plugin error, a trap or a timeout → [`JobPort::fail`](crate::ports::JobPort::fail)
//!   with the error text, which retries with backoff while retries remain.
//! - Each job is leased for the longest plugin call deadline plus a margin
//!   ([`PluginHost::job_lease`]); a worker that dies mid-job leaves the lease to run out and
//!   another worker takes the job again.
//! - Jobs run one at a time per worker. Several workers (tasks or processes over the same
//!   database) may run side by side: claiming a job is atomic.
//! - When idle, the worker sleeps for [`WorkerOptions::poll_interval`], waking early when
//!   the job port signals an enqueue ([`JobPort::enqueued`](crate::ports::JobPort)); jobs
//!   queued by another process are seen at the next poll.
//! - Shutdown is checked between jobs: a job in progress finishes (its plugin deadline
//!   bounds it) and is recorded before the worker returns.
//!
//! ```no_run
//! # async fn demo(host: std::sync::Arc<rusvel_host::PluginHost>) {
//! use rusvel_host::worker::WorkerOptions;
//!
//! let worker = host.start_worker(WorkerOptions::default());
//! // ... later
//! let report = worker.stop().await;
//! println!("{} jobs ran", report.ran());
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::HostError;
use crate::host::{JobResult, PluginHost};

/// How often an idle worker looks for due jobs by default.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// How a worker runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerOptions {
    /// How long an idle worker waits before looking for due jobs again.
    pub poll_interval: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            poll_interval: DEFAULT_POLL_INTERVAL,
        }
    }
}

/// How one job ended, as the worker recorded it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum JobRun {
    /// The handler completed; the job succeeded.
    Succeeded {
        /// Job id.
        id: String,
        /// Job kind.
        kind: String,
    },
    /// The handler asked for approval; the job awaits it.
    Held {
        /// Job id.
        id: String,
        /// Job kind.
        kind: String,
    },
    /// The handler failed; the job is retried later or failed for good.
    Failed {
        /// Job id.
        id: String,
        /// Job kind.
        kind: String,
        /// Why it failed, as recorded on the job.
        error: String,
    },
}

impl JobRun {
    /// The id of the job.
    pub fn id(&self) -> &str {
        match self {
            JobRun::Succeeded { id, .. } | JobRun::Held { id, .. } | JobRun::Failed { id, .. } => {
                id
            }
        }
    }
}

/// What a worker did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WorkerReport {
    /// Jobs whose handler completed.
    pub succeeded: u64,
    /// Jobs whose handler asked for approval.
    pub held: u64,
    /// Jobs whose handler failed.
    pub failed: u64,
    /// Queue operations that failed (the database was unavailable, or a job changed state
    /// while it ran, for example cancelled).
    pub queue_errors: u64,
}

impl WorkerReport {
    /// Jobs run, whatever their outcome.
    pub fn ran(&self) -> u64 {
        self.succeeded + self.held + self.failed
    }

    /// Counts one finished job.
    pub fn record(&mut self, run: &JobRun) {
        match run {
            JobRun::Succeeded { .. } => self.succeeded += 1,
            JobRun::Held { .. } => self.held += 1,
            JobRun::Failed { .. } => self.failed += 1,
        }
    }
}

/// Takes one due job of a registered kind, runs it on its plugin and records the outcome.
/// Returns `None` when no job is due. An error means the queue itself failed.
pub async fn run_one(host: &PluginHost) -> Result<Option<JobRun>, HostError> {
    let kinds = host.job_kinds();
    let lease_ms = u64::try_from(host.job_lease().as_millis()).unwrap_or(u64::MAX);
    let jobs = &host.ports().jobs;
    let Some(job) = jobs.dequeue(&kinds, lease_ms).await? else {
        return Ok(None);
    };
    tracing::debug!(job = %job.id, kind = %job.kind, "job started");
    let (id, kind) = (job.id.clone(), job.kind.clone());
    let run = match host.handle_job(&job).await {
        Ok(JobResult::Completed(result)) => {
            jobs.complete(&id, &result).await?;
            JobRun::Succeeded { id, kind }
        }
        Ok(JobResult::HoldForApproval(result)) => {
            jobs.hold_for_approval(&id, &result).await?;
            JobRun::Held { id, kind }
        }
        Err(error) => {
            let error = error.to_string();
            tracing::warn!(job = %id, %kind, %error, "job failed");
            jobs.fail(&id, &error).await?;
            JobRun::Failed { id, kind, error }
        }
    };
    tracing::info!(job = %run.id(), outcome = ?run, "job finished");
    Ok(Some(run))
}

/// Runs due jobs until none is due, then returns. Jobs that become due meanwhile (queued by
/// a handler, for example) run too; a failed job waits out its backoff, so it does not.
pub async fn drain(host: &PluginHost) -> Result<WorkerReport, HostError> {
    let mut report = WorkerReport::default();
    while let Some(run) = run_one(host).await? {
        report.record(&run);
    }
    Ok(report)
}

/// Runs jobs until `shutdown` resolves, then returns what it did. Queue errors are logged
/// and retried after the poll interval; they never stop the worker.
pub async fn run_until(
    host: &PluginHost,
    options: &WorkerOptions,
    shutdown: impl Future<Output = ()>,
) -> WorkerReport {
    let mut report = WorkerReport::default();
    let wake = host.ports().jobs.enqueued();
    let kinds = host.job_kinds();
    if kinds.is_empty() {
        tracing::info!("no plugin handles jobs; the worker only waits for shutdown");
    }
    tokio::pin!(shutdown);
    loop {
        // Stop between jobs, never in the middle of one.
        if stopped(shutdown.as_mut()).await {
            break;
        }
        // Register for the enqueue signal before looking, so an enqueue in between counts.
        let enqueued = wake.as_ref().map(|signal| signal.notified());
        tokio::pin!(enqueued);
        if let Some(notified) = enqueued.as_mut().as_pin_mut() {
            notified.enable();
        }
        let idle = match run_one(host).await {
            Ok(Some(run)) => {
                report.record(&run);
                false
            }
            Ok(None) => true,
            Err(error) => {
                report.queue_errors += 1;
                tracing::warn!(%error, "the job queue failed; retrying after the poll interval");
                true
            }
        };
        if !idle {
            continue;
        }
        tokio::select! {
            biased;
            _ = shutdown.as_mut() => break,
            _ = async {
                match enqueued.as_mut().as_pin_mut() {
                    Some(notified) => notified.await,
                    None => std::future::pending().await,
                }
            } => {}
            _ = tokio::time::sleep(options.poll_interval) => {}
        }
    }
    tracing::info!(?report, "worker stopped");
    report
}

/// Whether `shutdown` has resolved, without waiting for it.
async fn stopped<F: Future<Output = ()>>(shutdown: std::pin::Pin<&mut F>) -> bool {
    tokio::select! {
        biased;
        _ = shutdown => true,
        _ = std::future::ready(()) => false,
    }
}

/// A worker running on its own task; [`Worker::stop`] ends it.
#[derive(Debug)]
pub struct Worker {
    stop: watch::Sender<bool>,
    task: JoinHandle<WorkerReport>,
}

impl Worker {
    /// Asks the worker to stop, waits for the job in progress to be recorded, and returns
    /// what the worker did.
    pub async fn stop(self) -> WorkerReport {
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(report) => report,
            Err(error) => {
                tracing::warn!(%error, "the worker task ended abnormally");
                WorkerReport::default()
            }
        }
    }

    /// Whether the worker task has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl PluginHost {
    /// Starts a worker on its own task, running jobs until [`Worker::stop`].
    pub fn start_worker(self: &Arc<Self>, options: WorkerOptions) -> Worker {
        let (stop, mut stopping) = watch::channel(false);
        let host = self.clone();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopping.wait_for(|stop| *stop).await;
            };
            run_until(&host, &options, shutdown).await
        });
        Worker { stop, task }
    }
}
