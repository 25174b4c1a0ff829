//! Listing one page of objects as the object count grows: the host's indexed session page
//! against RUSVEL's native adapter query (a `json_extract` scan of the whole kind).

use std::path::Path;
use std::time::{Duration, Instant};

use rusvel_host::ports::{FieldMatch, ObjectFilter, ObjectStore};
use rusvel_host::sqlite::{Database, SqliteObjectStore};
use serde_json::{json, Value};

use crate::report::Report;
use crate::stats::Samples;
use crate::{
    index_like_registration, INCIDENT_KIND, PAGE_FLATNESS, PAGE_SESSIONS, PAGE_SIZES, PAGE_SPEEDUP,
};

/// The session page through the host adapter (session column + index, pagination in SQL)
/// against RUSVEL's native adapter query on its own table shape, at growing sizes.
pub(crate) async fn page_scaling(work: &Path, report: &mut Report) -> anyhow::Result<()> {
    let ours = SqliteObjectStore::new(Database::open(&work.join("page-ours"))?);
    index_like_registration(&ours).await?;
    let rusvel = rusqlite::Connection::open(work.join("page-rusvel.db"))?;
    rusvel.pragma_update(None, "journal_mode", "WAL")?;
    rusvel.pragma_update(None, "synchronous", "NORMAL")?;
    rusvel.execute_batch(
        "CREATE TABLE objects (
             kind TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL,
             created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
             PRIMARY KEY (kind, id)
         );",
    )?;
    let sessions: Vec<String> = (0..PAGE_SESSIONS)
        .map(|index| format!("0190a6b2-7c1e-7000-8000-{index:012x}"))
        .collect();
    let session = &sessions[3];
    let session_page = ObjectFilter {
        session_id: Some(session.clone()),
        limit: Some(50),
        ..Default::default()
    };
    let field_page = ObjectFilter {
        fields: vec![FieldMatch {
            field: "status".into(),
            value: "investigating".into(),
        }],
        ..session_page.clone()
    };

    let mut stored = 0;
    let mut first_median = None;
    let mut rows = Vec::new();
    for size in PAGE_SIZES {
        let started = Instant::now();
        let transaction = rusvel.unchecked_transaction()?;
        {
            let mut insert = transaction.prepare(
                "INSERT INTO objects (kind, id, data, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?4)",
            )?;
            let batch: Vec<(String, Value)> = (stored..size)
                .map(|index| paging_document(index, &sessions))
                .collect();
            ours.put_many(INCIDENT_KIND, &batch)?;
            for (id, document) in batch {
                let created = document["created_at"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                insert.execute(rusqlite::params![
                    INCIDENT_KIND,
                    id,
                    document.to_string(),
                    created
                ])?;
            }
        }
        transaction.commit()?;
        stored = size;
        let fill_s = started.elapsed().as_secs_f64();

        let (mut by_session, mut by_field) = (Samples::default(), Samples::default());
        for _ in 0..300 {
            let started = Instant::now();
            let page = ours.list(INCIDENT_KIND, &session_page).await?;
            by_session.since(started);
            assert_eq!(page.len(), 50);
            let started = Instant::now();
            let page = ours.list(INCIDENT_KIND, &field_page).await?;
            by_field.since(started);
            assert!(!page.is_empty());
        }
        let mut scan = Samples::default();
        let mut statement = rusvel.prepare_cached(
            "SELECT data FROM objects
             WHERE kind = ?1 AND json_extract(data, '$.session_id') = ?2
             ORDER BY created_at DESC LIMIT 50",
        )?;
        let scan_started = Instant::now();
        while scan.len() < 200
            && (scan.len() < 5 || scan_started.elapsed() < Duration::from_millis(1500))
        {
            let started = Instant::now();
            let page: Vec<Value> = statement
                .query_map(rusqlite::params![INCIDENT_KIND, session], |row| {
                    row.get::<_, String>(0)
                })?
                .map(|text| Ok(serde_json::from_str(&text?)?))
                .collect::<anyhow::Result<_>>()?;
            scan.since(started);
            assert_eq!(page.len(), 50);
        }

        let ours_us = by_session.median_us();
        let speedup = scan.median_us() / ours_us;
        let first = *first_median.get_or_insert(ours_us);
        let label = format!("{}k", size / 1000);
        report.info(
            &format!("{label}: indexed session page (median / p99)"),
            format!("{ours_us:.1} / {:.1} us", by_session.p99_us()),
        );
        report.info(
            &format!("{label}: indexed session+status page (median)"),
            format!("{:.1} us", by_field.median_us()),
        );
        report.info(
            &format!("{label}: json_extract scan, RUSVEL shape (median)"),
            format!("{:.1} us", scan.median_us()),
        );
        if size == *PAGE_SIZES.last().expect("sizes") {
            report.check(
                &format!("{label}: speedup over the scan"),
                format!("{speedup:.0}x"),
                ">= 50x",
                speedup >= PAGE_SPEEDUP,
            );
            let flatness = ours_us / first;
            report.check(
                "indexed page at 100k / at 1k",
                format!("{flatness:.2}x"),
                "flat (<= 1.5x)",
                flatness <= PAGE_FLATNESS,
            );
        } else {
            report.info(
                &format!("{label}: speedup over the scan"),
                format!("{speedup:.0}x"),
            );
        }
        rows.push(json!({
            "objects": size,
            "session_objects": size / PAGE_SESSIONS,
            "indexed_session_page_us": { "median": ours_us, "p99": by_session.p99_us() },
            "indexed_field_page_us": { "median": by_field.median_us(), "p99": by_field.p99_us() },
            "json_extract_scan_us": { "median": scan.median_us(), "p99": scan.p99_us(),
                                      "samples": scan.len() },
            "speedup": speedup,
            "fill_seconds": fill_s,
        }));
    }
    report.metric("session_page", Value::Array(rows));
    Ok(())
}

/// Incident `index` of the paging data set, about 600 bytes of JSON like the engine's.
fn paging_document(index: usize, sessions: &[String]) -> (String, Value) {
    let id = format!("0190a6b2-0000-7000-8000-{index:012}");
    let created = chrono::DateTime::from_timestamp(1_750_000_000 + index as i64, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let status = ["open", "investigating", "mitigated", "resolved"][index % 4];
    let severity = ["P1", "P2", "P3", "P4"][index % 4];
    let document = json!({
        "id": id,
        "session_id": sessions[index % sessions.len()],
        "title": format!("Checkout latency above SLO #{index}"),
        "description": "p99 of POST /checkout over 2 s since 14:02 UTC; error rate normal.",
        "severity": severity,
        "status": status,
        "created_at": created,
        "updated_at": created,
        "resolved_at": null,
        "timeline": [
            { "at": created, "kind": "opened", "status": "open", "note": "opened by the agent" }
        ],
    });
    (id, document)
}
