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

#[tokio::test]
async fn put_many_writes_every_object_like_put_does() {
    let store = store();
    store
        .put("k", "b", &json!({"id": "b", "session_id": "s1"}))
        .await
        .unwrap();
    let batch: Vec<(String, Value)> = ["a", "b", "c"]
        .iter()
        .map(|id| (id.to_string(), json!({"id": id, "session_id": "s1"})))
        .collect();
    store.put_many("k", &batch).unwrap();

    let filter = ObjectFilter {
        session_id: Some("s1".into()),
        ..Default::default()
    };
    let mut listed = ids(&store.list("k", &filter).await.unwrap())
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    listed.sort();
    assert_eq!(listed, ["a", "b", "c"]);
    let version = |id: &'static str| {
        let store = store.clone();
        async move { store.get_versioned("k", id).await.unwrap().unwrap().version }
    };
    assert_eq!(version("a").await, 1);
    assert_eq!(
        version("b").await,
        2,
        "the existing object is replaced, not duplicated"
    );
}
