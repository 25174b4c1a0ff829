//! SQLite adapters for the object store, the event log and the job queue.
//!
//! All three live in one database file, `<data-dir>/rusvel.db`, opened in WAL mode with a
//! busy timeout so several processes (a CLI next to a running host) can share it. One
//! connection behind a mutex serves a host; statements are prepared once and cached.
//! Queries are short (indexed lookups), so they run inline on the calling task.

mod events;
mod jobs;
mod objects;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::Connection;

pub use events::SqliteEventPort;
pub use jobs::SqliteJobPort;
pub use objects::SqliteObjectStore;

use crate::ports::{PortError, PortResult};

/// The file name of the database inside the data directory.
pub const DATABASE_FILE: &str = "rusvel.db";

/// How long a writer waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection; list queries vary by filter shape.
const STATEMENT_CACHE: usize = 128;

/// The connection's page cache, in KiB (SQLite's default is 2 MiB, 512 pages of 4 KiB). A
/// page of 50 objects reads about 50 table pages, a page filtered on a field a few hundred;
/// measured with `make bench`, with 2 MiB a page at 100k objects took 1.6x as long as at 1k
/// objects, with 8 MiB 1.0x. The cache fills only as pages are read.
pub const PAGE_CACHE_KIB: u32 = 8 * 1024;

/// A shared handle on the host database.
#[derive(Clone, Debug)]
pub struct Database {
    connection: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl Database {
    /// Opens (creating if needed) `<data_dir>/rusvel.db` and brings its schema up to date.
    pub fn open(data_dir: &Path) -> PortResult<Database> {
        std::fs::create_dir_all(data_dir).map_err(|error| {
            PortError::Storage(format!(
                "cannot create data dir {}: {error}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join(DATABASE_FILE);
        let connection = Connection::open(&path)?;
        Self::prepare(connection, path)
    }

    /// Opens a private in-memory database (for tests).
    pub fn open_in_memory() -> PortResult<Database> {
        Self::prepare(Connection::open_in_memory()?, PathBuf::from(":memory:"))
    }

    fn prepare(connection: Connection, path: PathBuf) -> PortResult<Database> {
        connection.busy_timeout(BUSY_TIMEOUT)?;
        connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        // A negative cache_size is a size in KiB rather than a page count.
        connection.pragma_update(None, "cache_size", -i64::from(PAGE_CACHE_KIB))?;
        schema::migrate(&connection)?;
        // Refreshes planner statistics where they are stale; cheap when nothing changed.
        connection.execute_batch("PRAGMA optimize;")?;
        Ok(Database {
            connection: Arc::new(Mutex::new(connection)),
            path,
        })
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Locks the connection; a poisoned lock is still usable because every statement is
    /// atomic on its own.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Parses a JSON column.
pub(crate) fn parse_json(text: &str) -> PortResult<serde_json::Value> {
    Ok(serde_json::from_str(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_file_opens_in_wal_mode_with_the_larger_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let database = Database::open(dir.path()).unwrap();
        let connection = database.lock();
        let mode: String = connection
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .unwrap();
        let cache: i64 = connection
            .pragma_query_value(None, "cache_size", |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(cache, -i64::from(PAGE_CACHE_KIB));
    }
}
