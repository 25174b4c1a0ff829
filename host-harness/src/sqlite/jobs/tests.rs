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
