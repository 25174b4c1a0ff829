//! The job queue on SQLite: scheduling, retries with backoff, cron recurrence, approval holds
//! and leases.
//!
//! A worker takes a job with [`JobPort::dequeue`], which marks it running and leases it; a
//! running job whose lease ran out (its worker died) is due again.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row, TransactionBehavior};
use serde_json::Value;

use super::{parse_json, Database};
use crate::clock;
use crate::ports::{Job, JobFilter, JobPort, JobStatus, NewJob, PortError, PortResult};

/// The first retry waits this long; each further retry doubles it.
const BACKOFF_BASE_SECS: i64 = 2;

/// No retry waits longer than this.
const BACKOFF_CAP_SECS: i64 = 300;

/// The most jobs one list returns.
const MAX_LIST: u32 = 10_000;

/// [`JobPort`] on the host database.
#[derive(Clone, Debug)]
pub struct SqliteJobPort {
    db: Database,
}

impl SqliteJobPort {
    /// A job port on `db`.
    pub fn new(db: Database) -> SqliteJobPort {
        SqliteJobPort { db }
    }
}

/// Parses a cron expression (five fields, or six with seconds).
pub fn parse_cron(expression: &str) -> PortResult<croner::Cron> {
    croner::Cron::new(expression)
        .with_seconds_optional()
        .parse()
        .map_err(|error| PortError::Validation(format!("cron `{expression}` is invalid: {error}")))
}

/// The next time a cron expression fires strictly after `after`.
fn next_occurrence(expression: &str, after: DateTime<Utc>) -> PortResult<String> {
    let cron = parse_cron(expression)?;
    let next = cron.find_next_occurrence(&after, false).map_err(|error| {
        PortError::Validation(format!("cron `{expression}` has no next time: {error}"))
    })?;
    Ok(clock::format_time(next))
}

#[async_trait]
impl JobPort for SqliteJobPort {
    async fn enqueue(&self, job: NewJob) -> PortResult<String> {
        let scheduled_at = job
            .scheduled_at
            .as_deref()
            .map(normalize_schedule)
            .transpose()?;
        let connection = self.db.lock();
        insert(&connection, &job, scheduled_at, None)
    }

    async fn schedule(&self, job: NewJob, cron: &str) -> PortResult<String> {
        let start = match job
            .scheduled_at
            .as_deref()
            .map(normalize_schedule)
            .transpose()?
        {
            Some(text) => parse_time(&text)?.max(Utc::now()),
            None => Utc::now(),
        };
        let first = next_occurrence(cron, start)?;
        let connection = self.db.lock();
        insert(&connection, &job, Some(first), Some(cron))
    }

    async fn cancel(&self, id: &str) -> PortResult<()> {
        let connection = self.db.lock();
        let changed = connection
            .prepare_cached(
                "UPDATE jobs SET status = 'cancelled', completed_at = ?2, lease_until = NULL
             WHERE id = ?1 AND status IN ('queued', 'awaiting_approval')",
            )?
            .execute(params![id, clock::now()])?;
        ensure_changed(&connection, id, changed, JobStatus::Cancelled)
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
        let now = Utc::now();
        let lease = now + chrono::Duration::milliseconds(lease_ms.min(i64::MAX as u64) as i64);
        let now_text = clock::format_time(now);

        let mut connection = self.db.lock();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let sql = format!(
            "SELECT id FROM jobs
             WHERE kind IN ({}) AND (
                 (status = 'queued' AND (scheduled_at IS NULL OR scheduled_at <= ?))
                 OR (status = 'running' AND lease_until < ?))
             ORDER BY coalesce(scheduled_at, created_at), id LIMIT 1",
            marks(kinds.len())
        );
        let mut values: Vec<SqlValue> = kinds.iter().cloned().map(SqlValue::Text).collect();
        values.push(SqlValue::Text(now_text.clone()));
        values.push(SqlValue::Text(now_text.clone()));
        let id: Option<String> = transaction
            .prepare_cached(&sql)?
            .query_row(params_from_iter(values), |row| row.get(0))
            .optional()?;
        let Some(id) = id else {
            return Ok(None);
        };
        transaction
            .prepare_cached(
                "UPDATE jobs SET status = 'running', started_at = ?2, lease_until = ?3
                 WHERE id = ?1",
            )?
            .execute(params![id, now_text, clock::format_time(lease)])?;
        let job = load(&transaction, &id)?;
        transaction.commit()?;
        Ok(job)
    }

    async fn complete(&self, id: &str, result: &Value) -> PortResult<()> {
        self.finish(id, "running", JobStatus::Succeeded, Some(result))
            .await
    }

    async fn fail(&self, id: &str, error: &str) -> PortResult<()> {
        let mut connection = self.db.lock();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let job = load(&transaction, id)?.ok_or_else(|| PortError::NotFound {
            kind: "job".into(),
            id: id.into(),
        })?;
        if job.status != JobStatus::Running {
            return Err(invalid(job.status, JobStatus::Failed));
        }

        let now = Utc::now();
        if job.retries < job.max_retries {
            let exponent = job.retries.min(16);
            let delay = (BACKOFF_BASE_SECS << exponent).min(BACKOFF_CAP_SECS);
            let retry_at = clock::format_time(now + chrono::Duration::seconds(delay));
            transaction
                .prepare_cached(
                    "UPDATE jobs SET status = 'queued', retries = retries + 1, error = ?2,
                         scheduled_at = ?3, started_at = NULL, lease_until = NULL
                     WHERE id = ?1",
                )?
                .execute(params![id, error, retry_at])?;
        } else {
            transaction
                .prepare_cached(
                    "UPDATE jobs SET status = 'failed', error = ?2, completed_at = ?3,
                         lease_until = NULL
                     WHERE id = ?1",
                )?
                .execute(params![id, error, clock::format_time(now)])?;
            requeue_recurring(&transaction, &job)?;
        }
        transaction.commit()?;
        Ok(())
    }

    async fn hold_for_approval(&self, id: &str, result: &Value) -> PortResult<()> {
        let connection = self.db.lock();
        let changed = connection
            .prepare_cached(
                "UPDATE jobs SET status = 'awaiting_approval', result = ?2, lease_until = NULL
                 WHERE id = ?1 AND status = 'running'",
            )?
            .execute(params![id, serde_json::to_string(result)?])?;
        ensure_changed(&connection, id, changed, JobStatus::AwaitingApproval)
    }

    async fn approve(&self, id: &str) -> PortResult<()> {
        self.finish(id, "awaiting_approval", JobStatus::Succeeded, None)
            .await
    }
}

impl SqliteJobPort {
    /// Moves a job from `from` to a final status, keeping or replacing its result, and
    /// queues the next run of a recurring job.
    async fn finish(
        &self,
        id: &str,
        from: &str,
        to: JobStatus,
        result: Option<&Value>,
    ) -> PortResult<()> {
        let result = result.map(serde_json::to_string).transpose()?;
        let mut connection = self.db.lock();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let changed = transaction
            .prepare_cached(
                "UPDATE jobs SET status = ?2, result = coalesce(?3, result), completed_at = ?4,
                     lease_until = NULL
                 WHERE id = ?1 AND status = ?5",
            )?
            .execute(params![id, to.as_str(), result, clock::now(), from])?;
        ensure_changed(&transaction, id, changed, to)?;
        if let Some(job) = load(&transaction, id)? {
            requeue_recurring(&transaction, &job)?;
        }
        transaction.commit()?;
        Ok(())
    }
}

/// Queues the next run of a recurring job.
fn requeue_recurring(connection: &Connection, job: &Job) -> PortResult<()> {
    let Some(cron) = &job.cron else {
        return Ok(());
    };
    let next = next_occurrence(cron, Utc::now())?;
    let new_job = NewJob {
        session_id: job.session_id.clone(),
        kind: job.kind.clone(),
        payload: job.payload.clone(),
        max_retries: job.max_retries,
        metadata: job.metadata.clone(),
        scheduled_at: None,
        owner: job.owner.clone(),
    };
    insert(connection, &new_job, Some(next), Some(cron))?;
    Ok(())
}

fn insert(
    connection: &Connection,
    job: &NewJob,
    scheduled_at: Option<String>,
    cron: Option<&str>,
) -> PortResult<String> {
    let id = clock::new_id();
    connection
        .prepare_cached(
            "INSERT INTO jobs (id, owner, session_id, kind, payload, status, scheduled_at,
                 retries, max_retries, cron, metadata, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, 0, ?7, ?8, ?9, ?10)",
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
            clock::now(),
        ])?;
    Ok(id)
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
    match load(connection, id)? {
        None => Err(PortError::NotFound {
            kind: "job".into(),
            id: id.into(),
        }),
        Some(job) => Err(invalid(job.status, to)),
    }
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
    use serde_json::json;

    use super::*;

    fn port() -> SqliteJobPort {
        SqliteJobPort::new(Database::open_in_memory().unwrap())
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

    #[tokio::test]
    async fn a_dequeued_job_completes_with_its_result() {
        let port = port();
        let id = port.enqueue(new_job("infra.health_scan", 0)).await.unwrap();
        let job = port
            .dequeue(&kinds("infra.health_scan"), 60_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (job.id.as_str(), job.status),
            (id.as_str(), JobStatus::Running)
        );
        assert!(port
            .dequeue(&kinds("infra.health_scan"), 60_000)
            .await
            .unwrap()
            .is_none());
        port.complete(&id, &json!({"ok": true})).await.unwrap();
        let done = port.get(&id).await.unwrap().unwrap();
        assert_eq!(done.status, JobStatus::Succeeded);
        assert_eq!(done.result, Some(json!({"ok": true})));
    }

    #[tokio::test]
    async fn a_failed_job_is_retried_later_until_retries_run_out() {
        let port = port();
        let id = port.enqueue(new_job("k", 1)).await.unwrap();
        port.dequeue(&kinds("k"), 1000).await.unwrap().unwrap();
        port.fail(&id, "boom").await.unwrap();
        let retried = port.get(&id).await.unwrap().unwrap();
        assert_eq!((retried.status, retried.retries), (JobStatus::Queued, 1));
        assert!(retried.scheduled_at.unwrap() > clock::now());
        // Backoff keeps it from being due right away.
        assert!(port.dequeue(&kinds("k"), 1000).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_job_out_of_retries_fails() {
        let port = port();
        let id = port.enqueue(new_job("k", 0)).await.unwrap();
        port.dequeue(&kinds("k"), 1000).await.unwrap();
        port.fail(&id, "boom").await.unwrap();
        let failed = port.get(&id).await.unwrap().unwrap();
        assert_eq!(failed.status, JobStatus::Failed);
        assert_eq!(failed.error.as_deref(), Some("boom"));
    }

    #[tokio::test]
    async fn a_held_job_succeeds_only_after_approval() {
        let port = port();
        let id = port.enqueue(new_job("k", 0)).await.unwrap();
        port.dequeue(&kinds("k"), 1000).await.unwrap();
        port.hold_for_approval(&id, &json!({"plan": 1}))
            .await
            .unwrap();
        assert_eq!(
            port.get(&id).await.unwrap().unwrap().status,
            JobStatus::AwaitingApproval
        );
        port.approve(&id).await.unwrap();
        let approved = port.get(&id).await.unwrap().unwrap();
        assert_eq!(approved.status, JobStatus::Succeeded);
        assert_eq!(approved.result, Some(json!({"plan": 1})));
    }

    #[tokio::test]
    async fn cancelling_a_finished_job_is_an_invalid_state() {
        let port = port();
        let id = port.enqueue(new_job("k", 0)).await.unwrap();
        port.cancel(&id).await.unwrap();
        let again = port.cancel(&id).await;
        assert_eq!(
            again,
            Err(PortError::InvalidState {
                from: "cancelled".into(),
                to: "cancelled".into()
            })
        );
        assert!(matches!(
            port.cancel("nope").await,
            Err(PortError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn schedule_validates_cron_and_queues_the_next_run_after_completion() {
        let port = port();
        let bad = port.schedule(new_job("k", 0), "not a cron").await;
        assert!(matches!(bad, Err(PortError::Validation(_))));

        let id = port.schedule(new_job("k", 0), "* * * * * *").await.unwrap();
        let job = port.get(&id).await.unwrap().unwrap();
        assert_eq!(job.cron.as_deref(), Some("* * * * * *"));
        assert!(job.scheduled_at.is_some());

        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        port.dequeue(&kinds("k"), 1000).await.unwrap().unwrap();
        port.complete(&id, &json!(null)).await.unwrap();
        let queued = port
            .list(&JobFilter {
                statuses: vec![JobStatus::Queued],
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(queued.len(), 1);
        assert_ne!(queued[0].id, id);
    }

    #[tokio::test]
    async fn an_expired_lease_makes_a_running_job_due_again() {
        let port = port();
        let id = port.enqueue(new_job("k", 0)).await.unwrap();
        port.dequeue(&kinds("k"), 0).await.unwrap().unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let again = port.dequeue(&kinds("k"), 60_000).await.unwrap().unwrap();
        assert_eq!(again.id, id);
    }

    #[tokio::test]
    async fn list_filters_by_owner_kind_and_status() {
        let port = port();
        port.enqueue(new_job("a", 0)).await.unwrap();
        port.enqueue(new_job("b", 0)).await.unwrap();
        let mut other = new_job("a", 0);
        other.owner = "code".into();
        port.enqueue(other).await.unwrap();
        let filter = JobFilter {
            owner: Some("infra".into()),
            kinds: vec!["a".into()],
            statuses: vec![JobStatus::Queued],
            ..Default::default()
        };
        assert_eq!(port.list(&filter).await.unwrap().len(), 1);
    }
}
