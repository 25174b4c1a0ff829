//! The event log on SQLite: events are persisted first, then broadcast in process.

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, OptionalExtension, Row};
use tokio::sync::broadcast;

use super::{parse_json, Database};
use crate::clock;
use crate::ports::{Event, EventFilter, EventPort, NewEvent, PortError, PortResult};

/// Events kept for a slow in-process subscriber before it starts missing some.
const BROADCAST_CAPACITY: usize = 1024;

/// The most events one query returns.
const MAX_QUERY: u32 = 10_000;

/// [`EventPort`] on the host database with a tokio broadcast channel for live subscribers.
#[derive(Clone, Debug)]
pub struct SqliteEventPort {
    db: Database,
    live: broadcast::Sender<Event>,
}

impl SqliteEventPort {
    /// An event port on `db`.
    pub fn new(db: Database) -> SqliteEventPort {
        let (live, _) = broadcast::channel(BROADCAST_CAPACITY);
        SqliteEventPort { db, live }
    }
}

#[async_trait]
impl EventPort for SqliteEventPort {
    async fn emit(&self, event: NewEvent) -> PortResult<String> {
        let stored = Event {
            id: clock::new_id(),
            session_id: event.session_id,
            run_id: event.run_id,
            source: event.source,
            kind: event.kind,
            payload: event.payload,
            created_at: clock::now(),
            metadata: event.metadata,
        };
        {
            let connection = self.db.lock();
            let mut statement = connection.prepare_cached(
                "INSERT INTO events
                     (id, session_id, run_id, source, kind, payload, metadata, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            statement.execute(params![
                stored.id,
                stored.session_id,
                stored.run_id,
                stored.source,
                stored.kind,
                serde_json::to_string(&stored.payload)?,
                serde_json::to_string(&stored.metadata)?,
                stored.created_at,
            ])?;
        }
        let id = stored.id.clone();
        // No live subscriber is not an error: the event is already durable.
        let _ = self.live.send(stored);
        Ok(id)
    }

    async fn get(&self, id: &str) -> PortResult<Option<Event>> {
        let connection = self.db.lock();
        let mut statement = connection.prepare_cached(&format!("{SELECT} WHERE id = ?1"))?;
        let row = statement.query_row(params![id], read_row).optional()?;
        row.map(into_event).transpose()
    }

    async fn query(&self, filter: &EventFilter) -> PortResult<Vec<Event>> {
        let mut clause = String::from("1 = 1");
        let mut values = Vec::new();
        let columns = [
            ("session_id", &filter.session_id),
            ("run_id", &filter.run_id),
            ("source", &filter.source),
            ("kind", &filter.kind),
        ];
        for (column, value) in columns {
            if let Some(value) = value {
                clause.push_str(&format!(" AND {column} = ?"));
                values.push(SqlValue::Text(value.clone()));
            }
        }
        if let Some(since) = &filter.since {
            let since = clock::normalize_time(since).ok_or_else(|| {
                PortError::Validation(format!("since `{since}` is not an RFC 3339 time"))
            })?;
            clause.push_str(" AND created_at >= ?");
            values.push(SqlValue::Text(since));
        }
        values.push(SqlValue::Integer(i64::from(
            filter.limit.unwrap_or(MAX_QUERY).min(MAX_QUERY),
        )));

        // With `since` the caller pages forward from a point; without, it wants the tail.
        let sql = if filter.since.is_some() {
            format!("{SELECT} WHERE {clause} ORDER BY id ASC LIMIT ?")
        } else {
            format!(
                "SELECT * FROM ({SELECT} WHERE {clause} ORDER BY id DESC LIMIT ?) ORDER BY id ASC"
            )
        };
        let connection = self.db.lock();
        let mut statement = connection.prepare_cached(&sql)?;
        let rows = statement.query_map(params_from_iter(values), read_row)?;
        let mut events = Vec::new();
        for row in rows {
            events.push(into_event(row?)?);
        }
        Ok(events)
    }

    fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.live.subscribe()
    }
}

const SELECT: &str =
    "SELECT id, session_id, run_id, source, kind, payload, metadata, created_at FROM events";

type EventRow = (
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
    String,
    String,
);

fn read_row(row: &Row<'_>) -> rusqlite::Result<EventRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
    ))
}

fn into_event(row: EventRow) -> PortResult<Event> {
    let (id, session_id, run_id, source, kind, payload, metadata, created_at) = row;
    Ok(Event {
        id,
        session_id,
        run_id,
        source,
        kind,
        payload: parse_json(&payload)?,
        created_at,
        metadata: parse_json(&metadata)?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(source: &str, kind: &str, n: u32) -> NewEvent {
        NewEvent {
            session_id: Some("s1".into()),
            run_id: None,
            source: source.into(),
            kind: kind.into(),
            payload: json!({ "n": n }),
            metadata: json!({}),
        }
    }

    #[tokio::test]
    async fn emitted_events_are_stored_and_broadcast() {
        let port = SqliteEventPort::new(Database::open_in_memory().unwrap());
        let mut live = port.subscribe();
        let id = port
            .emit(event("infra", "infra.deploy.started", 1))
            .await
            .unwrap();
        let stored = port.get(&id).await.unwrap().unwrap();
        assert_eq!(stored.payload, json!({"n": 1}));
        assert_eq!(live.recv().await.unwrap(), stored);
    }

    #[tokio::test]
    async fn query_without_since_returns_the_newest_oldest_first() {
        let port = SqliteEventPort::new(Database::open_in_memory().unwrap());
        for n in 0..5 {
            port.emit(event("infra", "infra.x", n)).await.unwrap();
        }
        port.emit(event("code", "code.x", 9)).await.unwrap();
        let filter = EventFilter {
            source: Some("infra".into()),
            limit: Some(2),
            ..Default::default()
        };
        let events = port.query(&filter).await.unwrap();
        let numbers: Vec<_> = events
            .iter()
            .map(|event| event.payload["n"].clone())
            .collect();
        assert_eq!(numbers, [json!(3), json!(4)]);
    }

    #[tokio::test]
    async fn query_with_since_pages_forward() {
        let port = SqliteEventPort::new(Database::open_in_memory().unwrap());
        for n in 0..3 {
            port.emit(event("infra", "infra.x", n)).await.unwrap();
        }
        let filter = EventFilter {
            since: Some("2000-01-01T00:00:00Z".into()),
            limit: Some(2),
            ..Default::default()
        };
        let events = port.query(&filter).await.unwrap();
        assert_eq!(events[0].payload["n"], 0);
        assert_eq!(events.len(), 2);
        let bad = EventFilter {
            since: Some("soon".into()),
            ..Default::default()
        };
        assert!(matches!(
            port.query(&bad).await,
            Err(PortError::Validation(_))
        ));
    }
}
