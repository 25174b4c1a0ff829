//! The object store on SQLite: one `objects` table keyed by (kind, id).
//!
//! `session_id` is copied from the document into its own indexed column on every write;
//! tag and field filters run in SQL (`json_each`, `json_extract`), and fields a department
//! declares as filtered get an expression index, so no filter scans a whole kind.

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, OptionalExtension};
use serde_json::Value;

use super::{parse_json, Database};
use crate::clock;
use crate::ports::{ObjectFilter, ObjectStore, PortError, PortResult, VersionedObject};

/// [`ObjectStore`] on the host database.
#[derive(Clone, Debug)]
pub struct SqliteObjectStore {
    db: Database,
}

/// Inserts an object or replaces it, bumping its version.
const UPSERT: &str = "INSERT INTO objects
        (kind, id, data, session_id, version, created_at, updated_at)
     VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5)
     ON CONFLICT (kind, id) DO UPDATE SET
         data = excluded.data,
         session_id = excluded.session_id,
         version = objects.version + 1,
         updated_at = excluded.updated_at";

impl SqliteObjectStore {
    /// An object store on `db`.
    pub fn new(db: Database) -> SqliteObjectStore {
        SqliteObjectStore { db }
    }

    /// Writes many objects of one kind as [`ObjectStore::put`] does, in one transaction:
    /// all of them or, on any error, none. For imports and bulk loads.
    pub fn put_many(&self, kind: &str, objects: &[(String, Value)]) -> PortResult<()> {
        let now = clock::now();
        let mut connection = self.db.lock();
        let transaction = connection.transaction()?;
        {
            let mut statement = transaction.prepare_cached(UPSERT)?;
            for (id, data) in objects {
                let text = serde_json::to_string(data)?;
                statement.execute(params![kind, id, text, session_of(data), now])?;
            }
        }
        transaction.commit()?;
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for SqliteObjectStore {
    async fn put(&self, kind: &str, id: &str, data: &Value) -> PortResult<()> {
        let text = serde_json::to_string(data)?;
        let now = clock::now();
        let connection = self.db.lock();
        let mut statement = connection.prepare_cached(UPSERT)?;
        statement.execute(params![kind, id, text, session_of(data), now])?;
        Ok(())
    }

    async fn get(&self, kind: &str, id: &str) -> PortResult<Option<Value>> {
        let connection = self.db.lock();
        let mut statement =
            connection.prepare_cached("SELECT data FROM objects WHERE kind = ?1 AND id = ?2")?;
        let text: Option<String> = statement
            .query_row(params![kind, id], |row| row.get(0))
            .optional()?;
        text.as_deref().map(parse_json).transpose()
    }

    async fn delete(&self, kind: &str, id: &str) -> PortResult<()> {
        let connection = self.db.lock();
        let mut statement =
            connection.prepare_cached("DELETE FROM objects WHERE kind = ?1 AND id = ?2")?;
        statement.execute(params![kind, id])?;
        Ok(())
    }

    async fn list(&self, kind: &str, filter: &ObjectFilter) -> PortResult<Vec<Value>> {
        self.page(kind, filter, |text| parse_json(&text))
    }

    async fn list_text(&self, kind: &str, filter: &ObjectFilter) -> PortResult<Vec<String>> {
        // `data` is JSON this store serialized itself: no need to parse it again.
        self.page(kind, filter, Ok)
    }

    async fn get_text(&self, kind: &str, id: &str) -> PortResult<Option<String>> {
        let connection = self.db.lock();
        let mut statement =
            connection.prepare_cached("SELECT data FROM objects WHERE kind = ?1 AND id = ?2")?;
        Ok(statement
            .query_row(params![kind, id], |row| row.get(0))
            .optional()?)
    }

    async fn count(&self, kind: &str, filter: &ObjectFilter) -> PortResult<u64> {
        let (clause, values) = where_clause(kind, filter)?;
        let sql = format!("SELECT COUNT(*) FROM objects WHERE {clause}");
        let connection = self.db.lock();
        let mut statement = connection.prepare_cached(&sql)?;
        let count: i64 = statement.query_row(params_from_iter(values), |row| row.get(0))?;
        Ok(count.max(0) as u64)
    }

    async fn get_versioned(&self, kind: &str, id: &str) -> PortResult<Option<VersionedObject>> {
        let connection = self.db.lock();
        let mut statement = connection.prepare_cached(
            "SELECT data, version, created_at, updated_at FROM objects WHERE kind = ?1 AND id = ?2",
        )?;
        let row = statement
            .query_row(params![kind, id], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                ))
            })
            .optional()?;
        row.map(|(data, version, created_at, updated_at)| {
            Ok(VersionedObject {
                data: parse_json(&data)?,
                version: version.max(0) as u64,
                created_at,
                updated_at,
            })
        })
        .transpose()
    }

    async fn put_versioned(
        &self,
        kind: &str,
        id: &str,
        data: &Value,
        expected: Option<u64>,
    ) -> PortResult<u64> {
        let text = serde_json::to_string(data)?;
        let now = clock::now();
        let session = session_of(data);
        let connection = self.db.lock();

        // Each branch is one statement, so the version check and the write are atomic even
        // against other processes sharing the file.
        let (changed, version) = match expected {
            None => {
                let mut statement = connection.prepare_cached(
                    "INSERT INTO objects
                         (kind, id, data, session_id, version, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5)
                     ON CONFLICT (kind, id) DO NOTHING",
                )?;
                (statement.execute(params![kind, id, text, session, now])?, 1)
            }
            Some(expected) => {
                let expected_sql = i64::try_from(expected)
                    .map_err(|_| PortError::Validation("expected version is too large".into()))?;
                let mut statement = connection.prepare_cached(
                    "UPDATE objects
                     SET data = ?3, session_id = ?4, version = version + 1, updated_at = ?5
                     WHERE kind = ?1 AND id = ?2 AND version = ?6",
                )?;
                let changed =
                    statement.execute(params![kind, id, text, session, now, expected_sql])?;
                (changed, expected + 1)
            }
        };

        if changed == 0 {
            return Err(PortError::Conflict {
                kind: kind.to_string(),
                id: id.to_string(),
            });
        }
        Ok(version)
    }

    async fn index_field(&self, kind: &str, field: &str) -> PortResult<()> {
        validate_field_name(field)?;
        // One index per field serves every kind: the kind is its first column.
        let sql = format!(
            "CREATE INDEX IF NOT EXISTS objects_by_field_{field}
             ON objects (kind, json_extract(data, '$.{field}'), id)"
        );
        self.db.lock().execute_batch(&sql)?;
        tracing::debug!(kind, field, "object field indexed");
        Ok(())
    }

    async fn count_by_kind(&self, prefix: &str) -> PortResult<Vec<(String, u64)>> {
        let connection = self.db.lock();
        let mut statement = connection.prepare_cached(
            "SELECT kind, COUNT(*) FROM objects
             WHERE substr(kind, 1, length(?1)) = ?1 GROUP BY kind ORDER BY kind",
        )?;
        let rows = statement.query_map(params![prefix], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?.max(0) as u64,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl SqliteObjectStore {
    /// One page of `kind` matching `filter`, newest first, each `data` text mapped by `each`.
    /// Filters, order, limit and offset all run in SQL.
    fn page<T>(
        &self,
        kind: &str,
        filter: &ObjectFilter,
        each: impl Fn(String) -> PortResult<T>,
    ) -> PortResult<Vec<T>> {
        let (clause, mut values) = where_clause(kind, filter)?;
        // SQLite needs a LIMIT before an OFFSET; -1 means no limit.
        let limit = filter.limit.map(i64::from).unwrap_or(-1);
        values.push(SqlValue::Integer(limit));
        values.push(SqlValue::Integer(i64::from(filter.offset.unwrap_or(0))));
        let sql =
            format!("SELECT data FROM objects WHERE {clause} ORDER BY id DESC LIMIT ? OFFSET ?");

        let connection = self.db.lock();
        let mut statement = connection.prepare_cached(&sql)?;
        let rows = statement.query_map(params_from_iter(values), |row| row.get::<_, String>(0))?;
        let mut objects = Vec::with_capacity(filter.limit.unwrap_or(16).min(500) as usize);
        for text in rows {
            objects.push(each(text?)?);
        }
        Ok(objects)
    }
}

/// The `session_id` of a document, when it has a string one.
fn session_of(data: &Value) -> Option<&str> {
    data.get("session_id").and_then(Value::as_str)
}

/// Checks that a field name is safe to splice into a JSON path and an index name.
pub(crate) fn validate_field_name(field: &str) -> PortResult<()> {
    let mut chars = field.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if first_ok && rest_ok && field.len() <= 64 {
        Ok(())
    } else {
        Err(PortError::Validation(format!(
            "field name `{field}` must match [a-z_][a-z0-9_]* (at most 64 characters)"
        )))
    }
}

/// Builds the WHERE clause and its parameters for a kind and a filter.
fn where_clause(kind: &str, filter: &ObjectFilter) -> PortResult<(String, Vec<SqlValue>)> {
    let mut clause = String::from("kind = ?");
    let mut values = vec![SqlValue::Text(kind.to_string())];

    if let Some(session) = &filter.session_id {
        clause.push_str(" AND session_id = ?");
        values.push(SqlValue::Text(session.clone()));
    }
    for tag in &filter.tags {
        clause.push_str(
            " AND EXISTS (SELECT 1 FROM json_each(objects.data, '$.tags') AS tag
                          WHERE tag.value = ?)",
        );
        values.push(SqlValue::Text(tag.clone()));
    }
    for field in &filter.fields {
        validate_field_name(&field.field)?;
        let candidates = text_candidates(&field.value);
        let marks = vec!["?"; candidates.len()].join(", ");
        // The expression is spelled exactly as in the index so the planner can use it.
        clause.push_str(&format!(
            " AND json_extract(data, '$.{}') IN ({marks})",
            field.field
        ));
        values.extend(candidates);
    }
    Ok((clause, values))
}

/// The SQL values a JSON field may hold when it "equals `text` compared as text".
fn text_candidates(text: &str) -> Vec<SqlValue> {
    let mut candidates = vec![SqlValue::Text(text.to_string())];
    if let Ok(integer) = text.parse::<i64>() {
        candidates.push(SqlValue::Integer(integer));
    } else if let Ok(real) = text.parse::<f64>() {
        candidates.push(SqlValue::Real(real));
    } else if text == "true" {
        candidates.push(SqlValue::Integer(1));
    } else if text == "false" {
        candidates.push(SqlValue::Integer(0));
    }
    candidates
}
#[cfg(test)]
mod tests;
