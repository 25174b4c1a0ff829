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
mod tests {
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;

    /// A port on an in-memory database whose clock the test moves by hand.
    struct Fixture {
        port: SqliteJobPort,
        time: Arc<Mutex<DateTime<Utc>>>,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture::at("2026-01-05T10:02:30Z")
        }

        fn at(start: &str) -> Fixture {
            let time = Arc::new(Mutex::new(time(start)));
            let clock = time.clone();
            let port = SqliteJobPort::with_clock(
                Database::open_in_memory().unwrap(),
                Arc::new(move || *clock.lock().unwrap()),
            );
            Fixture { port, time }
        }

        fn set(&self, text: &str) {
            *self.time.lock().unwrap() = time(text);
        }

        fn advance_ms(&self, ms: i64) {
            *self.time.lock().unwrap() += chrono::Duration::milliseconds(ms);
        }

        async fn take(&self, kind: &str, lease_ms: u64) -> Option<Job> {
            self.port.dequeue(&kinds(kind), lease_ms).await.unwrap()
        }

        async fn job(&self, id: &str) -> Job {
            self.port.get(id).await.unwrap().unwrap()
        }

        async fn with_status(&self, status: JobStatus) -> Vec<Job> {
            let filter = JobFilter {
                statuses: vec![status],
                ..Default::default()
            };
            self.port.list(&filter).await.unwrap()
        }
    }

    fn time(text: &str) -> DateTime<Utc> {
        parse_time(text).unwrap()
    }

    fn new_job(kind: &str, max_retries: u32) -> NewJob {
        NewJob {
            session_id: "s1".into(),
            kind: kind.into(),
            payload: json!({"service": "api"}),
            max_retries,
            metadata: json!({}),
            scheduled_at: None,
            owner: "infra".into(),
        }
    }

    fn kinds(kind: &str) -> Vec<String> {
        vec![kind.to_string()]
    }

    fn invalid_state(from: &str, to: &str) -> PortError {
        PortError::InvalidState {
            from: from.into(),
            to: to.into(),
        }
    }

    #[tokio::test]
    async fn a_dequeued_job_is_leased_and_completes_with_its_result() {
        let fx = Fixture::new();
        let id = fx
            .port
            .enqueue(new_job("infra.health_scan", 0))
            .await
            .unwrap();

        let job = fx.take("infra.health_scan", 60_000).await.unwrap();

        assert_eq!(
            (job.id.as_str(), job.status),
            (id.as_str(), JobStatus::Running)
        );
        assert_eq!(job.started_at.as_deref(), Some("2026-01-05T10:02:30.000Z"));
        assert!(
            fx.take("infra.health_scan", 60_000).await.is_none(),
            "claimed once"
        );
        fx.port.complete(&id, &json!({"ok": true})).await.unwrap();
        let done = fx.job(&id).await;
        assert_eq!(done.status, JobStatus::Succeeded);
        assert_eq!(done.result, Some(json!({"ok": true})));
        assert_eq!(
            done.completed_at.as_deref(),
            Some("2026-01-05T10:02:30.000Z")
        );
    }

    #[tokio::test]
    async fn dequeue_takes_the_oldest_due_job_of_the_given_kinds_only() {
        let fx = Fixture::new();
        let mut later = new_job("k", 0);
        later.scheduled_at = Some("2026-01-05T10:05:00Z".into());
        let later = fx.port.enqueue(later).await.unwrap();
        let first = fx.port.enqueue(new_job("k", 0)).await.unwrap();
        let second = fx.port.enqueue(new_job("k", 0)).await.unwrap();
        fx.port.enqueue(new_job("other", 0)).await.unwrap();

        assert_eq!(fx.take("k", 1000).await.unwrap().id, first);
        assert_eq!(fx.take("k", 1000).await.unwrap().id, second);
        assert!(
            fx.take("k", 1000).await.is_none(),
            "the scheduled one is not due yet"
        );
        fx.set("2026-01-05T10:05:00Z");
        assert_eq!(fx.take("k", 1000).await.unwrap().id, later);
        assert!(fx.port.dequeue(&[], 1000).await.unwrap().is_none());
    }

    #[test]
    fn the_retry_delay_doubles_from_one_second_up_to_the_cap() {
        let delays: Vec<u64> = (0..4).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8]);
        assert_eq!(retry_delay(8), Duration::from_secs(256));
        assert_eq!(retry_delay(9), BACKOFF_CAP);
        assert_eq!(retry_delay(u32::MAX), BACKOFF_CAP);
    }

    #[tokio::test]
    async fn a_failed_job_is_retried_with_backoff_until_its_retries_run_out() {
        let fx = Fixture::new();
        let id = fx.port.enqueue(new_job("k", 2)).await.unwrap();

        fx.take("k", 1000).await.unwrap();
        fx.port.fail(&id, "boom 1").await.unwrap();
        let retried = fx.job(&id).await;
        assert_eq!((retried.status, retried.retries), (JobStatus::Queued, 1));
        assert_eq!(retried.error.as_deref(), Some("boom 1"));
        assert_eq!(
            retried.scheduled_at.as_deref(),
            Some("2026-01-05T10:02:31.000Z")
        );
        fx.advance_ms(999);
        assert!(
            fx.take("k", 1000).await.is_none(),
            "backoff keeps it waiting"
        );
        fx.advance_ms(1);
        fx.take("k", 1000).await.unwrap();

        fx.port.fail(&id, "boom 2").await.unwrap();
        let retried = fx.job(&id).await;
        assert_eq!(retried.retries, 2);
        assert_eq!(
            retried.scheduled_at.as_deref(),
            Some("2026-01-05T10:02:33.000Z")
        );
        fx.advance_ms(2000);
        fx.take("k", 1000).await.unwrap();

        fx.port.fail(&id, "boom 3").await.unwrap();
        let failed = fx.job(&id).await;
        assert_eq!((failed.status, failed.retries), (JobStatus::Failed, 2));
        assert_eq!(failed.error.as_deref(), Some("boom 3"));
        assert!(failed.completed_at.is_some());
        assert_eq!(
            fx.port.fail(&id, "again").await,
            Err(invalid_state("failed", "failed"))
        );
    }

    #[tokio::test]
    async fn an_expired_lease_makes_a_running_job_claimable_again_and_counts_a_retry() {
        let fx = Fixture::new();
        let id = fx.port.enqueue(new_job("k", 1)).await.unwrap();
        fx.take("k", 5_000).await.unwrap();

        fx.advance_ms(5_000);
        assert!(
            fx.take("k", 5_000).await.is_none(),
            "the lease still holds at its deadline"
        );
        fx.advance_ms(1);
        let again = fx.take("k", 5_000).await.unwrap();

        assert_eq!(again.id, id);
        assert_eq!((again.status, again.retries), (JobStatus::Running, 1));
        assert_eq!(again.error.as_deref(), Some(LEASE_EXPIRED));
        assert_eq!(
            again.started_at.as_deref(),
            Some("2026-01-05T10:02:35.001Z")
        );
        fx.port.complete(&id, &json!(1)).await.unwrap();
        assert_eq!(fx.job(&id).await.status, JobStatus::Succeeded);
    }

    #[tokio::test]
    async fn an_expired_lease_with_no_retries_left_fails_the_job() {
        let fx = Fixture::new();
        let id = fx.port.enqueue(new_job("k", 0)).await.unwrap();
        fx.take("k", 1000).await.unwrap();
        fx.advance_ms(1001);

        assert!(fx.take("k", 1000).await.is_none());

        let failed = fx.job(&id).await;
        assert_eq!(failed.status, JobStatus::Failed);
        assert_eq!(failed.error.as_deref(), Some(LEASE_EXPIRED));
    }

    #[tokio::test]
    async fn a_held_job_succeeds_only_after_approval_keeping_its_result() {
        let fx = Fixture::new();
        let id = fx.port.enqueue(new_job("k", 0)).await.unwrap();
        assert_eq!(
            fx.port.approve(&id).await,
            Err(invalid_state("queued", "succeeded"))
        );
        fx.take("k", 1000).await.unwrap();
        assert_eq!(
            fx.port.approve(&id).await,
            Err(invalid_state("running", "succeeded"))
        );

        fx.port
            .hold_for_approval(&id, &json!({"plan": 1}))
            .await
            .unwrap();
        let held = fx.job(&id).await;
        assert_eq!(held.status, JobStatus::AwaitingApproval);
        assert_eq!(held.completed_at, None);
        assert_eq!(
            fx.port.complete(&id, &json!(2)).await,
            Err(invalid_state("awaiting_approval", "succeeded"))
        );

        fx.port.approve(&id).await.unwrap();
        let approved = fx.job(&id).await;
        assert_eq!(approved.status, JobStatus::Succeeded);
        assert_eq!(approved.result, Some(json!({"plan": 1})));
        assert_eq!(
            fx.port.approve(&id).await,
            Err(invalid_state("succeeded", "succeeded"))
        );
    }

    #[tokio::test]
    async fn queued_scheduled_and_held_jobs_cancel_and_others_refuse() {
        let fx = Fixture::new();
        let queued = fx.port.enqueue(new_job("k", 0)).await.unwrap();
        let mut scheduled = new_job("k", 0);
        scheduled.scheduled_at = Some("2027-01-01T00:00:00Z".into());
        let scheduled = fx.port.enqueue(scheduled).await.unwrap();
        fx.port.cancel(&queued).await.unwrap();
        fx.port.cancel(&scheduled).await.unwrap();
        assert_eq!(fx.job(&queued).await.status, JobStatus::Cancelled);
        assert_eq!(fx.job(&scheduled).await.status, JobStatus::Cancelled);
        assert!(
            fx.take("k", 1000).await.is_none(),
            "cancelled jobs never run"
        );

        let held = fx.port.enqueue(new_job("k", 0)).await.unwrap();
        fx.take("k", 1000).await.unwrap();
        assert_eq!(
            fx.port.cancel(&held).await,
            Err(invalid_state("running", "cancelled"))
        );
        fx.port
            .hold_for_approval(&held, &json!(null))
            .await
            .unwrap();
        fx.port.cancel(&held).await.unwrap();
        assert_eq!(fx.job(&held).await.status, JobStatus::Cancelled);

        assert_eq!(
            fx.port.cancel(&queued).await,
            Err(invalid_state("cancelled", "cancelled"))
        );
        assert!(matches!(
            fx.port.cancel("nope").await,
            Err(PortError::NotFound { .. })
        ));
        assert!(matches!(
            fx.port.complete("nope", &json!(1)).await,
            Err(PortError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn schedule_validates_the_cron_expression() {
        let fx = Fixture::new();
        for bad in ["not a cron", "61 * * * *", "* * *", ""] {
            let refused = fx.port.schedule(new_job("k", 0), bad).await;
            assert!(
                matches!(refused, Err(PortError::Validation(_))),
                "{bad}: {refused:?}"
            );
        }
        // Five fields, and six with seconds.
        fx.port
            .schedule(new_job("k", 0), "0 3 * * 1-5")
            .await
            .unwrap();
        let seconds = fx
            .port
            .schedule(new_job("k", 0), "15 * * * * *")
            .await
            .unwrap();
        assert_eq!(
            fx.job(&seconds).await.scheduled_at.as_deref(),
            Some("2026-01-05T10:03:15.000Z")
        );
    }

    #[tokio::test]
    async fn a_recurring_job_runs_at_its_cron_times_one_row_per_run() {
        let fx = Fixture::new();
        let first = fx
            .port
            .schedule(new_job("k", 0), "*/5 * * * *")
            .await
            .unwrap();
        let job = fx.job(&first).await;
        assert_eq!(job.cron.as_deref(), Some("*/5 * * * *"));
        assert_eq!(
            job.scheduled_at.as_deref(),
            Some("2026-01-05T10:05:00.000Z")
        );

        fx.set("2026-01-05T10:04:59.999Z");
        assert!(fx.take("k", 1000).await.is_none());
        fx.set("2026-01-05T10:05:00Z");
        fx.take("k", 60_000).await.unwrap();
        fx.set("2026-01-05T10:05:02Z");
        fx.port.complete(&first, &json!({"run": 1})).await.unwrap();

        assert_eq!(fx.job(&first).await.status, JobStatus::Succeeded);
        let next = fx.with_status(JobStatus::Queued).await;
        assert_eq!(next.len(), 1);
        assert_ne!(next[0].id, first);
        assert_eq!(next[0].cron.as_deref(), Some("*/5 * * * *"));
        assert_eq!(
            next[0].scheduled_at.as_deref(),
            Some("2026-01-05T10:10:00.000Z")
        );
        assert_eq!(next[0].payload, json!({"service": "api"}));

        // A run held for approval or out of retries also queues the next one.
        fx.set("2026-01-05T10:10:00Z");
        let second = fx.take("k", 60_000).await.unwrap();
        fx.port
            .hold_for_approval(&second.id, &json!(2))
            .await
            .unwrap();
        let third = fx.with_status(JobStatus::Queued).await;
        assert_eq!(
            third[0].scheduled_at.as_deref(),
            Some("2026-01-05T10:15:00.000Z")
        );
        fx.set("2026-01-05T10:15:00Z");
        let third = fx.take("k", 60_000).await.unwrap();
        fx.port.fail(&third.id, "down").await.unwrap();
        let fourth = fx.with_status(JobStatus::Queued).await;
        assert_eq!(fourth.len(), 1);
        assert_eq!(
            fourth[0].scheduled_at.as_deref(),
            Some("2026-01-05T10:20:00.000Z")
        );
        // Approving the held run does not queue a second successor.
        fx.port.approve(&second.id).await.unwrap();
        assert_eq!(fx.with_status(JobStatus::Queued).await.len(), 1);
    }

    #[tokio::test]
    async fn a_recurring_job_starts_at_an_explicit_time_that_matches() {
        let fx = Fixture::new();
        let mut job = new_job("k", 0);
        job.scheduled_at = Some("2026-01-06T00:00:00+00:00".into());
        let id = fx.port.schedule(job, "0 0 * * *").await.unwrap();
        assert_eq!(
            fx.job(&id).await.scheduled_at.as_deref(),
            Some("2026-01-06T00:00:00.000Z")
        );
    }

    #[tokio::test]
    async fn cancelling_a_recurring_job_stops_its_future_runs() {
        let fx = Fixture::new();
        let first = fx
            .port
            .schedule(new_job("k", 0), "*/5 * * * *")
            .await
            .unwrap();
        fx.set("2026-01-05T10:05:00Z");
        fx.take("k", 60_000).await.unwrap();
        fx.port.complete(&first, &json!(1)).await.unwrap();
        assert_eq!(fx.with_status(JobStatus::Queued).await.len(), 1);

        // The id `schedule` returned stops the series even after its own run finished.
        fx.port.cancel(&first).await.unwrap();

        assert!(fx.with_status(JobStatus::Queued).await.is_empty());
        assert_eq!(
            fx.job(&first).await.status,
            JobStatus::Succeeded,
            "history stays"
        );
        fx.set("2026-01-05T11:00:00Z");
        assert!(fx.take("k", 60_000).await.is_none());
        assert_eq!(
            fx.port.cancel(&first).await,
            Err(invalid_state("succeeded", "cancelled"))
        );
    }

    #[tokio::test]
    async fn cancelling_a_running_recurring_job_lets_the_run_finish_without_a_successor() {
        let fx = Fixture::new();
        let id = fx
            .port
            .schedule(new_job("k", 0), "*/5 * * * *")
            .await
            .unwrap();
        fx.set("2026-01-05T10:05:00Z");
        fx.take("k", 60_000).await.unwrap();

        fx.port.cancel(&id).await.unwrap();
        fx.port.complete(&id, &json!(1)).await.unwrap();

        assert_eq!(fx.job(&id).await.status, JobStatus::Succeeded);
        assert!(fx.with_status(JobStatus::Queued).await.is_empty());
    }

    #[tokio::test]
    async fn enqueue_wakes_a_waiting_worker() {
        let fx = Fixture::new();
        let signal = fx.port.enqueued().unwrap();
        let waiting = signal.notified();
        tokio::pin!(waiting);
        waiting.as_mut().enable();
        fx.port.enqueue(new_job("k", 0)).await.unwrap();
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_database_from_before_schedule_series_gains_the_column_and_keeps_its_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let old = Connection::open(dir.path().join(super::super::DATABASE_FILE)).unwrap();
        old.execute_batch(
            "CREATE TABLE jobs (id TEXT PRIMARY KEY NOT NULL, owner TEXT NOT NULL,
                 session_id TEXT NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL,
                 status TEXT NOT NULL, scheduled_at TEXT, started_at TEXT, completed_at TEXT,
                 lease_until TEXT, retries INTEGER NOT NULL DEFAULT 0,
                 max_retries INTEGER NOT NULL DEFAULT 0, error TEXT, result TEXT, cron TEXT,
                 metadata TEXT NOT NULL, created_at TEXT NOT NULL) WITHOUT ROWID;
             INSERT INTO jobs VALUES ('old', 'infra', 's', 'k', '{}', 'queued', NULL, NULL,
                 NULL, NULL, 0, 0, NULL, NULL, '* * * * *', '{}', '2026-01-01T00:00:00.000Z');",
        )
        .unwrap();
        drop(old);

        let port = SqliteJobPort::new(Database::open(dir.path()).unwrap());

        let job = port.dequeue(&kinds("k"), 1000).await.unwrap().unwrap();
        assert_eq!(job.id, "old");
        port.complete("old", &json!(1)).await.unwrap();
        let next = port
            .list(&JobFilter {
                statuses: vec![JobStatus::Queued],
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(next.len(), 1, "the old recurring job still recurs");
        port.cancel("old").await.unwrap();
        assert_eq!(
            port.get(&next[0].id).await.unwrap().unwrap().status,
            JobStatus::Cancelled
        );
    }

    #[tokio::test]
    async fn list_filters_by_owner_kind_and_status() {
        let fx = Fixture::new();
        fx.port.enqueue(new_job("a", 0)).await.unwrap();
        fx.port.enqueue(new_job("b", 0)).await.unwrap();
        let mut other = new_job("a", 0);
        other.owner = "code".into();
        fx.port.enqueue(other).await.unwrap();
        let filter = JobFilter {
            owner: Some("infra".into()),
            kinds: vec!["a".into()],
            statuses: vec![JobStatus::Queued],
            ..Default::default()
        };
        assert_eq!(fx.port.list(&filter).await.unwrap().len(), 1);
        assert!(matches!(
            fx.port.enqueue(new_job(" ", 0)).await,
            Err(PortError::Validation(_))
        ));
    }
}
