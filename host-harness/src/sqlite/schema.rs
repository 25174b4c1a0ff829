//! The database schema. Every statement is idempotent, so opening an existing file is safe.

use rusqlite::Connection;

use crate::ports::PortResult;

// `objects` keeps its rowid: with WITHOUT ROWID the planner prefers the (kind, id) primary
// key over the (kind, field, id) expression indexes, so indexed field filters would scan.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    data TEXT NOT NULL,
    session_id TEXT,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX IF NOT EXISTS objects_by_session ON objects (kind, session_id, id);

CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY NOT NULL,
    session_id TEXT,
    run_id TEXT,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_source ON events (source, id);
CREATE INDEX IF NOT EXISTS events_by_kind ON events (kind, id);
CREATE INDEX IF NOT EXISTS events_by_session ON events (session_id, id);
CREATE INDEX IF NOT EXISTS events_by_run ON events (run_id, id);
CREATE INDEX IF NOT EXISTS events_by_time ON events (created_at);

CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY NOT NULL,
    owner TEXT NOT NULL,
    session_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    scheduled_at TEXT,
    started_at TEXT,
    completed_at TEXT,
    lease_until TEXT,
    retries INTEGER NOT NULL DEFAULT 0,
    max_retries INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    result TEXT,
    cron TEXT,
    metadata TEXT NOT NULL,
    created_at TEXT NOT NULL,
    series_id TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (status, kind, scheduled_at);
CREATE INDEX IF NOT EXISTS jobs_by_owner ON jobs (owner, id);
CREATE INDEX IF NOT EXISTS jobs_by_session ON jobs (session_id, id);
CREATE INDEX IF NOT EXISTS jobs_leases ON jobs (status, lease_until);
";

/// Columns added after the first release: (table, column, definition).
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    // The runs of one cron schedule share the id of its first run.
    ("jobs", "series_id", "TEXT"),
];

/// Indexes on added columns, created once the columns exist.
const LATE_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS jobs_by_series ON jobs (series_id, status);
";

/// Creates missing tables, columns and indexes.
pub(crate) fn migrate(connection: &Connection) -> PortResult<()> {
    connection.execute_batch(SCHEMA)?;
    for (table, column, definition) in ADDED_COLUMNS {
        let present: bool = connection.query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2)",
            [table, column],
            |row| row.get(0),
        )?;
        if !present {
            connection.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} {definition};"
            ))?;
        }
    }
    connection.execute_batch(LATE_INDEXES)?;
    Ok(())
}
