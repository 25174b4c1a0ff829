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

impl SqliteObjectStore {
    /// An object store on `db`.
    pub fn new(db: Database) -> SqliteObjectStore {
        SqliteObjectStore { db }
    }
}

#[async_trait]
impl ObjectStore for SqliteObjectStore {
    async fn put(&self, kind: &str, id: &str, data: &Value) -> PortResult<()> {
        let text = serde_json::to_string(data)?;
        let now = clock::now();
        let connection = self.db.lock();
        let mut statement = connection.prepare_cached(
            "INSERT INTO objects (kind, id, data, session_id, version, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5)
             ON CONFLICT (kind, id) DO UPDATE SET
                 data = excluded.data,
                 session_id = excluded.session_id,
                 version = objects.version + 1,
                 updated_at = excluded.updated_at",
        )?;
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
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ports::FieldMatch;

    fn store() -> SqliteObjectStore {
        SqliteObjectStore::new(Database::open_in_memory().unwrap())
    }

    fn ids(objects: &[Value]) -> Vec<&str> {
        objects
            .iter()
            .map(|object| object["id"].as_str().unwrap())
            .collect()
    }

    async fn seed(store: &SqliteObjectStore) {
        let rows = [
            ("a1", "s1", json!(["prod"]), "deployed", 1),
            ("a2", "s1", json!(["prod", "eu"]), "failed", 2),
            ("a3", "s2", json!(["eu"]), "deployed", 3),
            ("a4", "s1", json!([]), "deployed", 4),
        ];
        for (id, session, tags, status, replicas) in rows {
            let data = json!({
                "id": id, "session_id": session, "tags": tags,
                "status": status, "replicas": replicas,
            });
            store.put("infra_deploy", id, &data).await.unwrap();
        }
        store
            .put("infra_incident", "x1", &json!({"id": "x1"}))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn put_then_get_returns_the_document_and_missing_is_none() {
        let store = store();
        store.put("k", "1", &json!({"a": 1})).await.unwrap();
        assert_eq!(store.get("k", "1").await.unwrap(), Some(json!({"a": 1})));
        assert_eq!(store.get("k", "2").await.unwrap(), None);
        store.delete("k", "1").await.unwrap();
        store.delete("k", "1").await.unwrap();
        assert_eq!(store.get("k", "1").await.unwrap(), None);
    }

    #[tokio::test]
    async fn every_put_bumps_the_version() {
        let store = store();
        store.put("k", "1", &json!({"a": 1})).await.unwrap();
        store.put("k", "1", &json!({"a": 2})).await.unwrap();
        let versioned = store.get_versioned("k", "1").await.unwrap().unwrap();
        assert_eq!(versioned.version, 2);
        assert_eq!(versioned.data, json!({"a": 2}));
    }

    #[tokio::test]
    async fn list_is_newest_first_within_the_kind() {
        let store = store();
        seed(&store).await;
        let all = store
            .list("infra_deploy", &ObjectFilter::default())
            .await
            .unwrap();
        assert_eq!(ids(&all), ["a4", "a3", "a2", "a1"]);
    }

    #[tokio::test]
    async fn list_filters_by_session_tags_and_fields_in_sql() {
        let store = store();
        seed(&store).await;
        let by_session = ObjectFilter {
            session_id: Some("s1".into()),
            ..Default::default()
        };
        assert_eq!(
            ids(&store.list("infra_deploy", &by_session).await.unwrap()),
            ["a4", "a2", "a1"]
        );

        let by_tags = ObjectFilter {
            tags: vec!["prod".into(), "eu".into()],
            ..Default::default()
        };
        assert_eq!(
            ids(&store.list("infra_deploy", &by_tags).await.unwrap()),
            ["a2"]
        );

        let by_field = ObjectFilter {
            session_id: Some("s1".into()),
            fields: vec![FieldMatch {
                field: "status".into(),
                value: "deployed".into(),
            }],
            ..Default::default()
        };
        assert_eq!(
            ids(&store.list("infra_deploy", &by_field).await.unwrap()),
            ["a4", "a1"]
        );

        let by_number = ObjectFilter {
            fields: vec![FieldMatch {
                field: "replicas".into(),
                value: "3".into(),
            }],
            ..Default::default()
        };
        assert_eq!(
            ids(&store.list("infra_deploy", &by_number).await.unwrap()),
            ["a3"]
        );
    }

    #[tokio::test]
    async fn limit_and_offset_page_and_count_ignores_them() {
        let store = store();
        seed(&store).await;
        let page = ObjectFilter {
            limit: Some(2),
            offset: Some(1),
            ..Default::default()
        };
        assert_eq!(
            ids(&store.list("infra_deploy", &page).await.unwrap()),
            ["a3", "a2"]
        );
        assert_eq!(store.count("infra_deploy", &page).await.unwrap(), 4);
        let offset_only = ObjectFilter {
            offset: Some(3),
            ..Default::default()
        };
        assert_eq!(
            ids(&store.list("infra_deploy", &offset_only).await.unwrap()),
            ["a1"]
        );
    }

    #[tokio::test]
    async fn put_versioned_inserts_only_when_absent() {
        let store = store();
        assert_eq!(
            store
                .put_versioned("k", "1", &json!({}), None)
                .await
                .unwrap(),
            1
        );
        let again = store.put_versioned("k", "1", &json!({}), None).await;
        assert_eq!(
            again,
            Err(PortError::Conflict {
                kind: "k".into(),
                id: "1".into()
            })
        );
    }

    #[tokio::test]
    async fn put_versioned_with_a_stale_version_is_a_conflict() {
        let store = store();
        store
            .put_versioned("k", "1", &json!({"v": 1}), None)
            .await
            .unwrap();
        assert_eq!(
            store
                .put_versioned("k", "1", &json!({"v": 2}), Some(1))
                .await
                .unwrap(),
            2
        );
        let stale = store
            .put_versioned("k", "1", &json!({"v": 3}), Some(1))
            .await;
        assert!(matches!(stale, Err(PortError::Conflict { .. })));
        assert_eq!(store.get("k", "1").await.unwrap(), Some(json!({"v": 2})));
        let missing = store.put_versioned("k", "2", &json!({}), Some(1)).await;
        assert!(matches!(missing, Err(PortError::Conflict { .. })));
    }

    #[tokio::test]
    async fn field_names_outside_the_safe_alphabet_are_refused() {
        let store = store();
        let filter = ObjectFilter {
            fields: vec![FieldMatch {
                field: "a') OR 1=1 --".into(),
                value: "x".into(),
            }],
            ..Default::default()
        };
        assert!(matches!(
            store.list("k", &filter).await,
            Err(PortError::Validation(_))
        ));
        assert!(matches!(
            store.index_field("k", "Status").await,
            Err(PortError::Validation(_))
        ));
    }

    /// The query plan of the page `list` runs for `filter`, one line per step.
    fn page_plan(store: &SqliteObjectStore, kind: &str, filter: &ObjectFilter) -> Vec<String> {
        let (clause, mut values) = where_clause(kind, filter).unwrap();
        values.push(SqlValue::Integer(50));
        values.push(SqlValue::Integer(0));
        let sql = format!(
            "EXPLAIN QUERY PLAN SELECT data FROM objects WHERE {clause} \
             ORDER BY id DESC LIMIT ? OFFSET ?"
        );
        let connection = store.db.lock();
        let mut statement = connection.prepare(&sql).unwrap();
        statement
            .query_map(params_from_iter(values), |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Seeds enough rows over several sessions that a scan would be a real choice.
    async fn seed_many(store: &SqliteObjectStore) {
        for index in 0..300 {
            let id = format!("{index:08}");
            let status = ["open", "resolved", "investigating"][index % 3];
            let severity = ["P1", "P2", "P3", "P4"][index % 4];
            let data = json!({
                "id": id, "session_id": format!("s{}", index % 7),
                "status": status, "severity": severity,
            });
            store.put("infra_incident", &id, &data).await.unwrap();
            store.put("infra_deploy", &id, &data).await.unwrap();
        }
        for field in ["status", "severity"] {
            store.index_field("infra_incident", field).await.unwrap();
        }
    }

    /// Whether `plan` searches one of the store's own indexes (`index`, when named) and
    /// scans nothing. A search of the primary key by kind alone reads the whole kind, so it
    /// does not count.
    fn is_indexed(plan: &[String], index: Option<&str>) -> bool {
        let no_scan = plan.iter().all(|step| !step.starts_with("SCAN"));
        let searched = plan.iter().any(|step| {
            step.starts_with("SEARCH objects USING INDEX objects_by_")
                && index.is_none_or(|index| step.contains(index))
        });
        no_scan && searched
    }

    fn assert_indexed(plan: &[String], index: Option<&str>) {
        assert!(is_indexed(plan, index), "{index:?} not used: {plan:?}");
    }

    #[tokio::test]
    async fn a_session_page_searches_the_session_index_in_order() {
        let store = store();
        seed_many(&store).await;
        let filter = ObjectFilter {
            session_id: Some("s3".into()),
            limit: Some(50),
            ..Default::default()
        };
        let plan = page_plan(&store, "infra_incident", &filter);
        assert_indexed(&plan, Some("objects_by_session"));
        // The index yields rows newest first: no sort, so the page stops after 50 rows.
        assert!(
            plan.iter().all(|step| !step.contains("TEMP B-TREE")),
            "{plan:?}"
        );
    }

    #[tokio::test]
    async fn a_field_filtered_page_uses_an_index() {
        let store = store();
        seed_many(&store).await;
        let status = FieldMatch {
            field: "status".into(),
            value: "open".into(),
        };
        let by_status = ObjectFilter {
            fields: vec![status.clone()],
            ..Default::default()
        };
        assert_indexed(
            &page_plan(&store, "infra_incident", &by_status),
            Some("objects_by_field_status"),
        );

        // What the incident list tool sends: session plus status and severity.
        let by_session_and_fields = ObjectFilter {
            session_id: Some("s3".into()),
            fields: vec![
                status,
                FieldMatch {
                    field: "severity".into(),
                    value: "P2".into(),
                },
            ],
            ..Default::default()
        };
        assert_indexed(
            &page_plan(&store, "infra_incident", &by_session_and_fields),
            None,
        );
    }

    #[tokio::test]
    async fn without_its_expression_index_a_field_page_reads_the_whole_kind() {
        // Guards the checks above: the same filter without its index is caught.
        let store = store();
        seed_many(&store).await;
        let filter = ObjectFilter {
            fields: vec![FieldMatch {
                field: "status".into(),
                value: "open".into(),
            }],
            ..Default::default()
        };
        assert!(is_indexed(
            &page_plan(&store, "infra_incident", &filter),
            None
        ));
        store
            .db
            .lock()
            .execute_batch("DROP INDEX objects_by_field_status")
            .unwrap();
        let plan = page_plan(&store, "infra_incident", &filter);
        assert!(!is_indexed(&plan, None), "{plan:?}");
    }

    #[tokio::test]
    async fn counts_per_kind_cover_only_the_prefix() {
        let store = store();
        seed(&store).await;
        store.put("other_thing", "1", &json!({})).await.unwrap();
        let counts = store.count_by_kind("infra_").await.unwrap();
        assert_eq!(
            counts,
            [
                ("infra_deploy".to_string(), 4),
                ("infra_incident".to_string(), 1)
            ]
        );
    }
}
