//! RUSVEL's JobPort: a durable queue of work, run by the host's worker.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Notify;

use super::PortResult;

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for a worker (possibly until `scheduled_at`).
    Queued,
    /// Taken by a worker.
    Running,
    /// Done.
    Succeeded,
    /// Failed with no retries left.
    Failed,
    /// Cancelled before it ran.
    Cancelled,
    /// Parked until a person approves its result.
    AwaitingApproval,
}

impl JobStatus {
    /// The status as stored and shown (`awaiting_approval`).
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::AwaitingApproval => "awaiting_approval",
        }
    }

    /// Parses [`JobStatus::as_str`] output.
    pub fn parse(text: &str) -> Option<JobStatus> {
        Some(match text {
            "queued" => JobStatus::Queued,
            "running" => JobStatus::Running,
            "succeeded" => JobStatus::Succeeded,
            "failed" => JobStatus::Failed,
            "cancelled" => JobStatus::Cancelled,
            "awaiting_approval" => JobStatus::AwaitingApproval,
            _ => return None,
        })
    }
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewJob {
    /// Session the job belongs to.
    pub session_id: String,
    /// Dotted kind, for example `infra.health_scan`.
    pub kind: String,
    /// Job input.
    pub payload: Value,
    /// Retries allowed after the first failure.
    pub max_retries: u32,
    /// Free-form metadata.
    pub metadata: Value,
    /// Run no earlier than this RFC 3339 time; `None` means now.
    pub scheduled_at: Option<String>,
    /// Department that owns the job; the plugin host stamps it.
    pub owner: String,
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    /// UUIDv7.
    pub id: String,
    /// Department that owns the job.
    pub owner: String,
    /// Session the job belongs to.
    pub session_id: String,
    /// Dotted kind.
    pub kind: String,
    /// Job input.
    pub payload: Value,
    /// Where the job stands.
    pub status: JobStatus,
    /// Run no earlier than this.
    pub scheduled_at: Option<String>,
    /// When a worker took it.
    pub started_at: Option<String>,
    /// When it reached a final state.
    pub completed_at: Option<String>,
    /// Failures so far.
    pub retries: u32,
    /// Retries allowed.
    pub max_retries: u32,
    /// Last failure message.
    pub error: Option<String>,
    /// Result, once completed or held.
    pub result: Option<Value>,
    /// Cron expression of a recurring job.
    pub cron: Option<String>,
    /// RFC 3339 UTC creation time.
    pub created_at: String,
    /// Free-form metadata.
    pub metadata: Value,
}

/// Which jobs to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JobFilter {
    /// Only this session.
    pub session_id: Option<String>,
    /// Only these kinds (empty: all).
    pub kinds: Vec<String>,
    /// Only these statuses (empty: all).
    pub statuses: Vec<JobStatus>,
    /// Only jobs owned by this department.
    pub owner: Option<String>,
    /// At most this many jobs.
    pub limit: Option<u32>,
}

/// RUSVEL's JobPort, plus `get` and `dequeue` for the host's worker.
#[async_trait]
pub trait JobPort: Send + Sync {
    /// Queues a job and returns its id.
    async fn enqueue(&self, job: NewJob) -> PortResult<String>;

    /// Queues a recurring job at the cron expression's next time; returns its id.
    async fn schedule(&self, job: NewJob, cron: &str) -> PortResult<String>;

    /// Cancels a queued (or scheduled) or held job; for a recurring job, also stops the
    /// future runs of its schedule.
    async fn cancel(&self, id: &str) -> PortResult<()>;

    /// Reads one job.
    async fn get(&self, id: &str) -> PortResult<Option<Job>>;

    /// Lists jobs, newest first.
    async fn list(&self, filter: &JobFilter) -> PortResult<Vec<Job>>;

    /// Takes the oldest due queued job of one of `kinds`, marks it running and leases it to
    /// the caller until `lease_ms` from now.
    async fn dequeue(&self, kinds: &[String], lease_ms: u64) -> PortResult<Option<Job>>;

    /// Marks a running job as succeeded; a recurring job is queued again at its next time.
    async fn complete(&self, id: &str, result: &Value) -> PortResult<()>;

    /// Marks a running job as failed; it is queued again with backoff while retries remain.
    async fn fail(&self, id: &str, error: &str) -> PortResult<()>;

    /// Parks a running job's result until a person approves it.
    async fn hold_for_approval(&self, id: &str, result: &Value) -> PortResult<()>;

    /// Approves a held job, which then succeeds.
    async fn approve(&self, id: &str) -> PortResult<()>;

    /// A signal notified whenever this port queues a job, so an idle worker can wake before
    /// its next poll; `None` when the adapter cannot tell (the worker then only polls).
    fn enqueued(&self) -> Option<Arc<Notify>> {
        None
    }
}
