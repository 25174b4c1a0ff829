//! The job queue on SQLite: scheduling, leases, retries with backoff, cron recurrence,
//! approval holds and cancellation.
//!
//! # Life of a job
//!
//! - [`JobPort::enqueue`] stores a `queued` job, due at `scheduled_at` (now when absent).
//! - [`JobPort::dequeue`] atomically claims the oldest due `queued` job of the given kinds
//!   (oldest by `scheduled_at`, then id), marks it `running` and leases it to the caller
//!   until `lease_ms` from now. A `running` job whose lease ran out (its worker died) is
//!   claimable again; the lost run counts as a retry. When it has no retries left it fails
//!   with an error saying the lease expired.
//! - [`JobPort::complete`] moves `running` to `succeeded` with the result.
//! - [`JobPort::fail`] puts a `running` job back to `queued` with a backoff while
//!   `retries < max_retries` (see [`retry_delay`]: 1 s, 2 s, 4 s, ... capped at 5 min),
//!   counting the retry and keeping the error; otherwise it becomes `failed`.
//! - [`JobPort::hold_for_approval`] moves `running` to `awaiting_approval` with the result;
//!   [`JobPort::approve`] then moves it to `succeeded`, keeping that result.
//! - [`JobPort::cancel`] moves a `queued` (including scheduled) or `awaiting_approval` job
//!   to `cancelled`. Any other change from a state that does not allow it is refused with
//!   [`PortError::InvalidState`] naming both states.
//!
//! # Recurring jobs
//!
//! [`JobPort::schedule`] validates the cron expression with `croner`: five fields (minute,
//! hour, day of month, month, day of week), or six with a leading seconds field; times are
//! UTC. Each run is its own row, so the history of a schedule stays queryable: when a run
//! ends (completed, held for approval, or failed with no retries left) the next run is
//! queued as a new row at the expression's next time after *now* (missed times are not
//! caught up). All rows of one schedule share a series id, the id `schedule` returned.
//! Cancelling any row of a series stops the series: its queued run is cancelled, and a run
//! in progress finishes but queues no successor.
//!
//! Every time comes from the port's clock ([`SqliteJobPort::with_clock`]), so tests can
//! drive leases, backoff and cron without sleeping.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row, TransactionBehavior};
use serde_json::Value;
use tokio::sync::Notify;

use super::{parse_json, Database};
use crate::clock;
use crate::ports::{Job, JobFilter, JobPort, JobStatus, NewJob, PortError, PortResult};

/// The first retry waits this long; each further retry doubles it.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);

/// No retry waits longer than this.
pub const BACKOFF_CAP: Duration = Duration::from_secs(300);

/// The error recorded on a job whose worker let its lease run out.
pub const LEASE_EXPIRED: &str = "lease expired: the worker stopped before finishing the job";

/// The most jobs one list returns.
const MAX_LIST: u32 = 10_000;

/// Where the port reads the current time.
pub type JobClock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// [`JobPort`] on the host database.
#[derive(Clone)]
pub struct SqliteJobPort {
    db: Database,
    now: JobClock,
    enqueued: Arc<Notify>,
}

impl std::fmt::Debug for SqliteJobPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteJobPort")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl SqliteJobPort {
    /// A job port on `db`, on the system clock.
    pub fn new(db: Database) -> SqliteJobPort {
        SqliteJobPort::with_clock(db, Arc::new(Utc::now))
    }

    /// A job port on `db` that reads the time from `now`.
    pub fn with_clock(db: Database, now: JobClock) -> SqliteJobPort {
        SqliteJobPort {
            db,
            now,
            enqueued: Arc::new(Notify::new()),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        (self.now)()
    }
}

/// How long a failed job waits before its next attempt, given the retries it used so far:
/// 1 s, 2 s, 4 s, ... never more than [`BACKOFF_CAP`].
pub fn retry_delay(retries_so_far: u32) -> Duration {
    let factor = 1u32.checked_shl(retries_so_far.min(31)).unwrap_or(u32::MAX);
    BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_CAP)
}

/// Parses a cron expression: five fields, or six with a leading seconds field.
pub fn parse_cron(expression: &str) -> PortResult<croner::Cron> {
    croner::Cron::new(expression)
        .with_seconds_optional()
        .parse()
        .map_err(|error| PortError::Validation(format!("cron `{expression}` is invalid: {error}")))
}

/// The next time (UTC) a cron expression fires after `after` (or at it, when `inclusive`).
pub fn next_run(
    expression: &str,
    after: DateTime<Utc>,
    inclusive: bool,
) -> PortResult<DateTime<Utc>> {
    parse_cron(expression)?
        .find_next_occurrence(&after, inclusive)
        .map_err(|error| {
            PortError::Validation(format!("cron `{expression}` has no next time: {error}"))
        })
}

#[async_trait]
impl JobPort for SqliteJobPort {
    async fn enqueue(&self, job: NewJob) -> PortResult<String> {
        validate(&job)?;
        let scheduled_at = job
            .scheduled_at
            .as_deref()
            .map(normalize_schedule)
            .transpose()?;
        let id = {
            let connection = self.db.lock();
            insert(&connection, &job, scheduled_at, None, None, self.now())?
        };
        self.enqueued.notify_waiters();
        Ok(id)
    }

    async fn schedule(&self, job: NewJob, cron: &str) -> PortResult<String> {
        validate(&job)?;
        let now = self.now();
        // An explicit start may itself be a firing time; otherwise the first run is the
        // next one after now.
        let first = match job.scheduled_at.as_deref() {
            Some(text) => {
                let start = parse_time(&normalize_schedule(text)?)?;
                next_run(cron, start.max(now), start > now)?
            }
            None => next_run(cron, now, false)?,
        };
        let id = {
            let connection = self.db.lock();
            insert(
                &connection,
                &job,
                Some(clock::format_time(first)),
                Some(cron),
                None,
                now,
            )?
        };
        self.enqueued.notify_waiters();
        Ok(id)
    }

    async fn cancel(&self, id: &str) -> PortResult<()> {
        let now = clock::format_time(self.now());
        let mut connection = self.db.lock();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let job = require(&transaction, id)?;
        let series = series_of(&transaction, &job)?;
        let mut stopped = 0;
        if let Some(series) = &series {
            // Every pending run of the schedule goes, and a run in progress queues no successor.
            stopped += transaction
                .prepare_cached(
                    "UPDATE jobs SET status = 'cancelled', completed_at = ?2
                     WHERE series_id = ?1 AND id <> ?3 AND status = 'queued'",
                )?
                .execute(params![series, now, id])?;
            stopped += transaction
                .prepare_cached(
                    "UPDATE jobs SET cron = NULL
                     WHERE (series_id = ?1 OR id = ?1) AND status = 'running'",
                )?
                .execute(params![series])?;
        }
        match job.status {
            JobStatus::Queued | JobStatus::AwaitingApproval => {
                transaction
                    .prepare_cached(
                        "UPDATE jobs SET status = 'cancelled', completed_at = ?2,
                             lease_until = NULL
                         WHERE id = ?1",
                    )?
                    .execute(params![id, now])?;
            }
            // Stopping a schedule through any of its runs is fine; nothing else is.
            _ if series.is_some() && stopped > 0 => {}
            from => return Err(invalid(from, JobStatus::Cancelled)),
        }
        transaction.commit()?;
        Ok(())
    }

    async fn get(&self, id: &str) -> PortResult<Option<Job>> {
        let connection = self.db.lock();
        load(&connection, id)
    }

    async fn list(&self, filter: &JobFilter) -> PortResult<Vec<Job>> {
        let mut clause = String::from("1 = 1");
        let mut values = Vec::new();
        if let Some(session) = &filter.session_id {
            clause.push_str(" AND session_id = ?");
            values.push(SqlValue::Text(session.clone()));
        }
        if let Some(owner) = &filter.owner {
            clause.push_str(" AND owner = ?");
            values.push(SqlValue::Text(owner.clone()));
        }
        if !filter.kinds.is_empty() {
            clause.push_str(&format!(" AND kind IN ({})", marks(filter.kinds.len())));
            values.extend(filter.kinds.iter().cloned().map(SqlValue::Text));
        }
        if !filter.statuses.is_empty() {
            clause.push_str(&format!(
                " AND status IN ({})",
                marks(filter.statuses.len())
            ));
            values.extend(
                filter
                    .statuses
                    .iter()
                    .map(|s| SqlValue::Text(s.as_str().into())),
            );
        }
        values.push(SqlValue::Integer(i64::from(
            filter.limit.unwrap_or(MAX_LIST).min(MAX_LIST),
        )));
        let sql = format!("{SELECT} WHERE {clause} ORDER BY id DESC LIMIT ?");
        let connection = self.db.lock();
        let mut statement = connection.prepare_cached(&sql)?;
        let rows = statement.query_map(params_from_iter(values), read_row)?;
        let mut jobs = Vec::new();
        for row in rows {
            jobs.push(into_job(row?)?);
        }
        Ok(jobs)
    }

    async fn dequeue(&self, kinds: &[String], lease_ms: u64) -> PortResult<Option<Job>> {
        if kinds.is_empty() {
            return Ok(None);
        }
        let now = self.now();
        // A lease past the end of the calendar is as good as no expiry: clamp, never overflow.
        let lease = chrono::Duration::try_milliseconds(lease_ms.min(i64::MAX as u64) as i64)
            .and_then(|lease| now.checked_add_signed(lease))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
        let now_text = clock::format_time(now);
        let kind_values = || kinds.iter().cloned().map(SqlValue::Text);

        let mut connection = self.db.lock();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;

        // 1. Runs whose worker vanished with no retries left fail for good.
        let sql = format!(
            "{SELECT} WHERE kind IN ({}) AND status = 'running' AND lease_until < ?
                 AND retries >= max_retries",
            marks(kinds.len())
        );
        let values = kind_values().chain([SqlValue::Text(now_text.clone())]);
        let abandoned = transaction
            .prepare_cached(&sql)?
            .query_map(params_from_iter(values), read_row)?
            .collect::<Result<Vec<_>, _>>()?;
        for row in abandoned {
            let job = into_job(row)?;
            tracing::warn!(job = %job.id, kind = %job.kind, "lease expired, no retries left");
            transaction
                .prepare_cached(
                    "UPDATE jobs SET status = 'failed', error = ?2, completed_at = ?3,
                         lease_until = NULL
                     WHERE id = ?1",
                )?
                .execute(params![job.id, LEASE_EXPIRED, now_text])?;
            requeue_recurring(&transaction, &job, now)?;
        }

        // 2. The oldest due job: queued and due, or running with an expired lease.
        let sql = format!(
            "SELECT id, status FROM jobs
             WHERE kind IN ({}) AND (
                 (status = 'queued' AND (scheduled_at IS NULL OR scheduled_at <= ?))
                 OR (status = 'running' AND lease_until < ?))
             ORDER BY coalesce(scheduled_at, created_at), id LIMIT 1",
            marks(kinds.len())
        );
        let values = kind_values().chain([
            SqlValue::Text(now_text.clone()),
            SqlValue::Text(now_text.clone()),
        ]);
        let found: Option<(String, String)> = transaction
            .prepare_cached(&sql)?
            .query_row(params_from_iter(values), |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?;
        let Some((id, status)) = found else {
            transaction.commit()?;
            return Ok(None);
        };
        let lease_text = clock::format_time(lease);
        if status == JobStatus::Running.as_str() {
            tracing::warn!(job = %id, "lease expired, the job runs again");
            transaction
                .prepare_cached(
                    "UPDATE jobs SET retries = retries + 1, error = ?2, started_at = ?3,
                         lease_until = ?4
                     WHERE id = ?1",
                )?
                .execute(params![id, LEASE_EXPIRED, now_text, lease_text])?;
        } else {
            transaction
                .prepare_cached(
                    "UPDATE jobs SET status = 'running', started_at = ?2, lease_until = ?3
                     WHERE id = ?1",
                )?
                .execute(params![id, now_text, lease_text])?;
        }
        let job = load(&transaction, &id)?;
        transaction.commit()?;
        Ok(job)
    }

    async fn complete(&self, id: &str, result: &Value) -> PortResult<()> {
        self.end_run(id, JobStatus::Succeeded, result)
    }

    async fn fail(&self, id: &str, error: &str) -> PortResult<()> {
        let now = self.now();
        let mut connection = self.db.lock();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let job = require(&transaction, id)?;
        if job.status != JobStatus::Running {
            return Err(invalid(job.status, JobStatus::Failed));
        }
        if job.retries < job.max_retries {
            let delay = chrono::Duration::from_std(retry_delay(job.retries))
                .map_err(|error| PortError::Internal(error.to_string()))?;
            transaction
                .prepare_cached(
                    "UPDATE jobs SET status = 'queued', retries = retries + 1, error = ?2,
                         scheduled_at = ?3, started_at = NULL, lease_until = NULL
                     WHERE id = ?1",
                )?
                .execute(params![id, error, clock::format_time(now + delay)])?;
        } else {
            transaction
                .prepare_cached(
                    "UPDATE jobs SET status = 'failed', error = ?2, completed_at = ?3,
                         lease_until = NULL
                     WHERE id = ?1",
                )?
                .execute(params![id, error, clock::format_time(now)])?;
            requeue_recurring(&transaction, &job, now)?;
        }
        transaction.commit()?;
        Ok(())
    }

    async fn hold_for_approval(&self, id: &str, result: &Value) -> PortResult<()> {
        self.end_run(id, JobStatus::AwaitingApproval, result)
    }

    async fn approve(&self, id: &str) -> PortResult<()> {
        let connection = self.db.lock();
        let changed = connection
            .prepare_cached(
                "UPDATE jobs SET status = 'succeeded', completed_at = ?2
                 WHERE id = ?1 AND status = 'awaiting_approval'",
            )?
            .execute(params![id, clock::format_time(self.now())])?;
        ensure_changed(&connection, id, changed, JobStatus::Succeeded)
    }

    fn enqueued(&self) -> Option<Arc<Notify>> {
        Some(self.enqueued.clone())
    }
}

impl SqliteJobPort {
    /// Ends a running job's run as `succeeded` or `awaiting_approval` with `result`, and
    /// queues the next run of a recurring job.
    fn end_run(&self, id: &str, to: JobStatus, result: &Value) -> PortResult<()> {
        let now = self.now();
        let result = serde_json::to_string(result)?;
        let completed_at = (to == JobStatus::Succeeded).then(|| clock::format_time(now));
        let mut connection = self.db.lock();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let changed = transaction
            .prepare_cached(
                "UPDATE jobs SET status = ?2, result = ?3, completed_at = ?4, lease_until = NULL
                 WHERE id = ?1 AND status = 'running'",
            )?
            .execute(params![id, to.as_str(), result, completed_at])?;
        ensure_changed(&transaction, id, changed, to)?;
        requeue_recurring(&transaction, &require(&transaction, id)?, now)?;
        transaction.commit()?;
        Ok(())
    }
}

/// Queues the next run of a recurring job, unless its series already has one queued.
fn requeue_recurring(connection: &Connection, job: &Job, now: DateTime<Utc>) -> PortResult<()> {
    let Some(cron) = &job.cron else {
        return Ok(());
    };
    let series = series_of(connection, job)?.unwrap_or_else(|| job.id.clone());
    // A recurring job stored before series existed starts its series now.
    connection
        .prepare_cached("UPDATE jobs SET series_id = ?1 WHERE id = ?1 AND series_id IS NULL")?
        .execute(params![job.id])?;
    let pending: bool = connection
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM jobs WHERE series_id = ?1 AND status = 'queued')",
        )?
        .query_row(params![series], |row| row.get(0))?;
    if pending {
        return Ok(());
    }
    let next = next_run(cron, now, false)?;
    let new_job = NewJob {
        session_id: job.session_id.clone(),
        kind: job.kind.clone(),
        payload: job.payload.clone(),
        max_retries: job.max_retries,
        metadata: job.metadata.clone(),
        scheduled_at: None,
        owner: job.owner.clone(),
    };
    let id = insert(
        connection,
        &new_job,
        Some(clock::format_time(next)),
        Some(cron),
        Some(&series),
        now,
    )?;
    tracing::debug!(job = %id, %series, next = %clock::format_time(next), "next run queued");
    Ok(())
}

/// Stores a new queued job. A recurring job without `series` starts its own series.
fn insert(
    connection: &Connection,
    job: &NewJob,
    scheduled_at: Option<String>,
    cron: Option<&str>,
    series: Option<&str>,
    now: DateTime<Utc>,
) -> PortResult<String> {
    let id = clock::new_id();
    let series = cron.map(|_| series.unwrap_or(&id).to_string());
    connection
        .prepare_cached(
            "INSERT INTO jobs (id, owner, session_id, kind, payload, status, scheduled_at,
                 retries, max_retries, cron, metadata, created_at, series_id)
             VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, 0, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(params![
            id,
            job.owner,
            job.session_id,
            job.kind,
            serde_json::to_string(&job.payload)?,
            scheduled_at,
            job.max_retries,
            cron,
            serde_json::to_string(&job.metadata)?,
            clock::format_time(now),
            series,
        ])?;
    Ok(id)
}

fn validate(job: &NewJob) -> PortResult<()> {
    if job.kind.trim().is_empty() {
        return Err(PortError::Validation("job kind must not be empty".into()));
    }
    Ok(())
}

/// The series id of a recurring job's row; a recurring row stored before series existed
/// is the first of its own series.
fn series_of(connection: &Connection, job: &Job) -> PortResult<Option<String>> {
    let stored = connection
        .prepare_cached("SELECT series_id FROM jobs WHERE id = ?1")?
        .query_row(params![job.id], |row| row.get::<_, Option<String>>(0))
        .optional()?
        .flatten();
    Ok(stored.or_else(|| job.cron.as_ref().map(|_| job.id.clone())))
}

fn require(connection: &Connection, id: &str) -> PortResult<Job> {
    load(connection, id)?.ok_or_else(|| PortError::NotFound {
        kind: "job".into(),
        id: id.into(),
    })
}

/// Turns "no row changed" into not-found or an invalid state change.
fn ensure_changed(
    connection: &Connection,
    id: &str,
    changed: usize,
    to: JobStatus,
) -> PortResult<()> {
    if changed > 0 {
        return Ok(());
    }
    Err(invalid(require(connection, id)?.status, to))
}

fn invalid(from: JobStatus, to: JobStatus) -> PortError {
    PortError::InvalidState {
        from: from.as_str().into(),
        to: to.as_str().into(),
    }
}

fn normalize_schedule(text: &str) -> PortResult<String> {
    clock::normalize_time(text).ok_or_else(|| {
        PortError::Validation(format!("scheduled_at `{text}` is not an RFC 3339 time"))
    })
}

fn parse_time(text: &str) -> PortResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|error| PortError::Validation(format!("time `{text}`: {error}")))
}

fn marks(count: usize) -> String {
    vec!["?"; count].join(", ")
}

const SELECT: &str = "SELECT id, owner, session_id, kind, payload, status, scheduled_at,
    started_at, completed_at, retries, max_retries, error, result, cron, created_at, metadata
    FROM jobs";

fn load(connection: &Connection, id: &str) -> PortResult<Option<Job>> {
    let row = connection
        .prepare_cached(&format!("{SELECT} WHERE id = ?1"))?
        .query_row(params![id], read_row)
        .optional()?;
    row.map(into_job).transpose()
}

/// A job row with JSON columns still as text.
struct JobRow {
    job: Job,
    payload: String,
    status: String,
    result: Option<String>,
    metadata: String,
}

fn read_row(row: &Row<'_>) -> rusqlite::Result<JobRow> {
    Ok(JobRow {
        job: Job {
            id: row.get(0)?,
            owner: row.get(1)?,
            session_id: row.get(2)?,
            kind: row.get(3)?,
            payload: Value::Null,
            status: JobStatus::Queued,
            scheduled_at: row.get(6)?,
            started_at: row.get(7)?,
            completed_at: row.get(8)?,
            retries: row.get(9)?,
            max_retries: row.get(10)?,
            error: row.get(11)?,
            result: None,
            cron: row.get(13)?,
            created_at: row.get(14)?,
            metadata: Value::Null,
        },
        payload: row.get(4)?,
        status: row.get(5)?,
        result: row.get(12)?,
        metadata: row.get(15)?,
    })
}

fn into_job(row: JobRow) -> PortResult<Job> {
    let mut job = row.job;
    job.payload = parse_json(&row.payload)?;
    job.metadata = parse_json(&row.metadata)?;
    job.result = row.result.as_deref().map(parse_json).transpose()?;
    job.status = JobStatus::parse(&row.status)
        .ok_or_else(|| PortError::Storage(format!("job {} has unknown status", job.id)))?;
    Ok(job)
}
#[cfg(test)]
mod tests;
