//! Incident rules: the status machine, resolve idempotency, reopen, severity and timeline.

use std::sync::Arc;
use std::thread;

use serde_json::json;

use super::*;
use crate::events;
use crate::ids::SessionId;
use crate::page::PageRequest;
use crate::ports::Clock;
use crate::testing::Fixture;
use IncidentStatus::*;

fn open(fx: &Fixture, severity: Severity) -> Incident {
    let new = NewIncident {
        title: "API errors".into(),
        description: "5xx on /login".into(),
        severity,
    };
    fx.engine
        .incidents()
        .open_incident(fx.session, new)
        .unwrap()
}

fn set_status(fx: &Fixture, incident: &Incident, to: IncidentStatus) -> Result<Incident> {
    let update = IncidentUpdate {
        status: Some(to),
        ..IncidentUpdate::default()
    };
    fx.engine
        .incidents()
        .update_incident(fx.session, incident.id, update)
}

/// An incident that reached `status` by allowed moves.
fn incident_in(fx: &Fixture, status: IncidentStatus) -> Incident {
    let incident = open(fx, Severity::P2);
    let path: &[IncidentStatus] = match status {
        Open => &[],
        Investigating => &[Investigating],
        Mitigated => &[Investigating, Mitigated],
        Resolved => &[Investigating, Mitigated, Resolved],
    };
    for step in path {
        fx.tick(1);
        set_status(fx, &incident, *step).unwrap();
    }
    fx.engine
        .incidents()
        .get_incident(fx.session, incident.id)
        .unwrap()
}

#[test]
fn opening_an_incident_emits_opened_once_with_what_subscribers_need() {
    let fx = Fixture::new();
    let incident = open(&fx, Severity::P1);
    assert_eq!(incident.status, Open);
    assert_eq!(fx.event_kinds(), [events::INCIDENT_OPENED]);
    let payload = &fx.event_payloads()[0];
    assert_eq!(payload["incident_id"], json!(incident.id));
    assert_eq!(payload["session_id"], json!(fx.session));
    assert_eq!(payload["title"], "API errors");
    assert_eq!(payload["severity"], "P1");
    assert_eq!(payload["status"], "open");
    assert_eq!(fx.stored(KIND, incident.id).0["severity"], "P1");
}

#[test]
fn every_allowed_move_is_recorded_and_emits_its_event_once() {
    let cases = [
        (Open, Investigating, events::INCIDENT_STATUS_CHANGED),
        (Investigating, Mitigated, events::INCIDENT_STATUS_CHANGED),
        (Investigating, Resolved, events::INCIDENT_RESOLVED),
        (Mitigated, Resolved, events::INCIDENT_RESOLVED),
        (Mitigated, Investigating, events::INCIDENT_STATUS_CHANGED),
    ];
    for (from, to, event) in cases {
        let fx = Fixture::new();
        let incident = incident_in(&fx, from);
        fx.ports.events.clear();
        fx.tick(5);
        let moved = set_status(&fx, &incident, to).unwrap();
        assert_eq!(moved.status, to);
        let entry = moved.timeline.last().unwrap();
        assert_eq!(entry.field, TimelineField::Status);
        assert_eq!(
            (entry.from.as_str(), entry.to.as_str()),
            (from.as_str(), to.as_str())
        );
        assert_eq!(entry.at, fx.ports.clock.now());
        assert_eq!(fx.event_kinds(), [event], "{from:?} -> {to:?}");
        let payload = &fx.event_payloads()[0];
        assert_eq!(
            (payload["from"].as_str(), payload["to"].as_str()),
            (Some(from.as_str()), Some(to.as_str()))
        );
    }
}

#[test]
fn every_other_move_is_refused_and_changes_nothing() {
    for from in IncidentStatus::ALL {
        for to in IncidentStatus::ALL {
            if from.can_move_to(to) || (from, to) == (Resolved, Resolved) {
                continue;
            }
            let fx = Fixture::new();
            let incident = incident_in(&fx, from);
            let before = fx.stored(KIND, incident.id);
            fx.ports.events.clear();
            let error = set_status(&fx, &incident, to).unwrap_err();
            assert_eq!(
                error,
                EngineError::invalid_state(from.as_str(), to.as_str())
            );
            assert_eq!(fx.stored(KIND, incident.id), before, "{from:?} -> {to:?}");
            assert!(fx.event_kinds().is_empty(), "{from:?} -> {to:?}");
        }
    }
}

#[test]
fn resolving_from_investigating_sets_mitigated_at_to_resolved_at() {
    let fx = Fixture::new();
    let incident = incident_in(&fx, Investigating);
    fx.tick(30);
    let resolved = set_status(&fx, &incident, Resolved).unwrap();
    assert_eq!(resolved.resolved_at, Some(fx.ports.clock.now()));
    assert_eq!(resolved.mitigated_at, resolved.resolved_at);
}

#[test]
fn mitigation_time_is_kept_when_resolving_and_cleared_when_it_got_worse() {
    let fx = Fixture::new();
    let incident = incident_in(&fx, Mitigated);
    let mitigated_at = incident.mitigated_at.expect("mitigated_at set");
    fx.tick(10);
    let resolved = set_status(&fx, &incident, Resolved).unwrap();
    assert_eq!(resolved.mitigated_at, Some(mitigated_at));

    let fx = Fixture::new();
    let incident = incident_in(&fx, Mitigated);
    let worse = set_status(&fx, &incident, Investigating).unwrap();
    assert_eq!(worse.mitigated_at, None);
    fx.tick(10);
    let again = set_status(&fx, &incident, Mitigated).unwrap();
    assert_eq!(again.mitigated_at, Some(fx.ports.clock.now()));
}

#[test]
fn resolving_a_resolved_incident_changes_nothing_and_emits_nothing() {
    let fx = Fixture::new();
    let incident = incident_in(&fx, Resolved);
    let before = fx.stored(KIND, incident.id);
    fx.ports.events.clear();
    fx.tick(60);
    let again = fx
        .engine
        .incidents()
        .resolve_incident(fx.session, incident.id, None)
        .unwrap();
    assert_eq!(again, incident);
    assert_eq!(fx.stored(KIND, incident.id), before);
    assert!(fx.event_kinds().is_empty());
}

#[test]
fn resolving_an_open_incident_is_refused() {
    let fx = Fixture::new();
    let incident = open(&fx, Severity::P3);
    let error = fx
        .engine
        .incidents()
        .resolve_incident(fx.session, incident.id, None)
        .unwrap_err();
    assert_eq!(error, EngineError::invalid_state("open", "resolved"));
}

#[test]
fn reopening_moves_a_resolved_incident_back_to_open() {
    let fx = Fixture::new();
    let incident = incident_in(&fx, Resolved);
    fx.ports.events.clear();
    fx.tick(5);
    let reopened = fx
        .engine
        .incidents()
        .reopen_incident(fx.session, incident.id, Some("errors are back".into()))
        .unwrap();
    assert_eq!(reopened.status, Open);
    assert_eq!((reopened.mitigated_at, reopened.resolved_at), (None, None));
    let entry = reopened.timeline.last().unwrap();
    assert_eq!(
        (entry.from.as_str(), entry.to.as_str()),
        ("resolved", "open")
    );
    assert_eq!(entry.note.as_deref(), Some("errors are back"));
    assert_eq!(fx.event_kinds(), [events::INCIDENT_REOPENED]);
    assert_eq!(reopened.opened_at, incident.opened_at);
}

#[test]
fn only_a_resolved_incident_can_be_reopened() {
    for status in [Open, Investigating, Mitigated] {
        let fx = Fixture::new();
        let incident = incident_in(&fx, status);
        fx.ports.events.clear();
        let error = fx
            .engine
            .incidents()
            .reopen_incident(fx.session, incident.id, None)
            .unwrap_err();
        assert_eq!(error, EngineError::invalid_state(status.as_str(), "open"));
        assert!(fx.event_kinds().is_empty());
    }
}

#[test]
fn a_severity_change_is_timelined_and_emitted() {
    let fx = Fixture::new();
    let incident = open(&fx, Severity::P3);
    fx.ports.events.clear();
    fx.tick(2);
    let update = IncidentUpdate {
        severity: Some(Severity::P1),
        note: Some("all regions".into()),
        ..IncidentUpdate::default()
    };
    let changed = fx
        .engine
        .incidents()
        .update_incident(fx.session, incident.id, update)
        .unwrap();
    assert_eq!(changed.severity, Severity::P1);
    let entry = changed.timeline.last().unwrap();
    assert_eq!(entry.field, TimelineField::Severity);
    assert_eq!((entry.from.as_str(), entry.to.as_str()), ("P3", "P1"));
    assert_eq!(fx.event_kinds(), [events::INCIDENT_SEVERITY_CHANGED]);
    assert_eq!(fx.event_payloads()[0]["severity"], "P1");
}

#[test]
fn setting_the_current_severity_writes_nothing() {
    let fx = Fixture::new();
    let incident = open(&fx, Severity::P2);
    let writes = fx.ports.objects.writes();
    fx.ports.events.clear();
    let update = IncidentUpdate {
        severity: Some(Severity::P2),
        ..IncidentUpdate::default()
    };
    let same = fx
        .engine
        .incidents()
        .update_incident(fx.session, incident.id, update)
        .unwrap();
    assert_eq!(same, incident);
    assert_eq!(fx.ports.objects.writes(), writes);
    assert!(fx.event_kinds().is_empty());
}

#[test]
fn status_and_severity_change_together_in_one_write() {
    let fx = Fixture::new();
    let incident = open(&fx, Severity::P3);
    let (_, version) = fx.stored(KIND, incident.id);
    fx.ports.events.clear();
    let update = IncidentUpdate {
        status: Some(Investigating),
        severity: Some(Severity::P2),
        note: None,
    };
    let changed = fx
        .engine
        .incidents()
        .update_incident(fx.session, incident.id, update)
        .unwrap();
    assert_eq!(changed.timeline.len(), 2);
    assert_eq!(fx.stored(KIND, incident.id).1, version + 1);
    assert_eq!(
        fx.event_kinds(),
        [
            events::INCIDENT_STATUS_CHANGED,
            events::INCIDENT_SEVERITY_CHANGED
        ]
    );
}

#[test]
fn a_refused_status_also_drops_the_severity_change() {
    let fx = Fixture::new();
    let incident = open(&fx, Severity::P3);
    let update = IncidentUpdate {
        status: Some(Mitigated),
        severity: Some(Severity::P1),
        note: None,
    };
    let error = fx
        .engine
        .incidents()
        .update_incident(fx.session, incident.id, update)
        .unwrap_err();
    assert_eq!(error, EngineError::invalid_state("open", "mitigated"));
    assert_eq!(fx.stored(KIND, incident.id).0["severity"], "P3");
}

#[test]
fn an_update_must_change_status_or_severity() {
    let fx = Fixture::new();
    let incident = open(&fx, Severity::P3);
    let update = IncidentUpdate {
        note: Some("just a note".into()),
        ..IncidentUpdate::default()
    };
    let error = fx
        .engine
        .incidents()
        .update_incident(fx.session, incident.id, update)
        .unwrap_err();
    assert!(matches!(error, EngineError::Validation(_)));
}

#[test]
fn timeline_times_never_go_backwards_when_the_clock_does() {
    let fx = Fixture::new();
    let incident = open(&fx, Severity::P3);
    fx.tick(100);
    let investigating = set_status(&fx, &incident, Investigating).unwrap();
    fx.tick(-500);
    let mitigated = set_status(&fx, &incident, Mitigated).unwrap();
    let first = investigating.timeline[0].at;
    assert_eq!(mitigated.timeline[1].at, first);
    assert_eq!(mitigated.mitigated_at, Some(first));
    assert!(mitigated
        .timeline
        .windows(2)
        .all(|pair| pair[0].at <= pair[1].at));
}

#[test]
fn another_sessions_incident_is_not_found() {
    let fx = Fixture::new();
    let incident = open(&fx, Severity::P3);
    let error = fx
        .engine
        .incidents()
        .resolve_incident(SessionId::new(), incident.id, None)
        .unwrap_err();
    assert_eq!(error, EngineError::not_found(KIND, incident.id.to_string()));
}

#[test]
fn a_concurrent_severity_change_is_not_lost() {
    let fx = Fixture::new();
    let incident = open(&fx, Severity::P3);
    let (other, session, id) = (fx.engine.clone(), fx.session, incident.id);
    fx.ports.objects.before_next_update(move || {
        let update = IncidentUpdate {
            severity: Some(Severity::P1),
            ..IncidentUpdate::default()
        };
        other
            .incidents()
            .update_incident(session, id, update)
            .unwrap();
    });

    let moved = set_status(&fx, &incident, Investigating).unwrap();
    assert_eq!(
        (moved.status, moved.severity),
        (Investigating, Severity::P1)
    );
    assert_eq!(moved.timeline.len(), 2);
    assert_eq!(
        fx.event_kinds(),
        [
            events::INCIDENT_OPENED,
            events::INCIDENT_SEVERITY_CHANGED,
            events::INCIDENT_STATUS_CHANGED
        ]
    );
}

#[test]
fn concurrent_resolves_emit_resolved_exactly_once() {
    let fx = Fixture::new();
    let incident = incident_in(&fx, Mitigated);
    fx.ports.events.clear();
    let (other, session, id) = (fx.engine.clone(), fx.session, incident.id);
    fx.ports.objects.before_next_update(move || {
        other
            .incidents()
            .resolve_incident(session, id, None)
            .unwrap();
    });

    let resolved = fx
        .engine
        .incidents()
        .resolve_incident(fx.session, incident.id, None)
        .unwrap();
    assert_eq!(resolved.status, Resolved);
    assert_eq!(fx.event_kinds(), [events::INCIDENT_RESOLVED]);
}

#[test]
fn changes_from_many_threads_all_land() {
    let fx = Fixture::new();
    let incident = open(&fx, Severity::P4);
    let engine = Arc::new(fx.engine.clone());
    let workers: Vec<_> = [Severity::P3, Severity::P2, Severity::P1]
        .into_iter()
        .map(|severity| {
            let (engine, session, id) = (engine.clone(), fx.session, incident.id);
            thread::spawn(move || {
                let update = IncidentUpdate {
                    severity: Some(severity),
                    ..Default::default()
                };
                engine
                    .incidents()
                    .update_incident(session, id, update)
                    .unwrap();
            })
        })
        .collect();
    set_status(&fx, &incident, Investigating).unwrap();
    workers
        .into_iter()
        .for_each(|worker| worker.join().unwrap());

    let last = fx
        .engine
        .incidents()
        .get_incident(fx.session, incident.id)
        .unwrap();
    let severity_changes = last
        .timeline
        .iter()
        .filter(|e| e.field == TimelineField::Severity)
        .count();
    let emitted = fx
        .event_kinds()
        .iter()
        .filter(|k| *k == events::INCIDENT_SEVERITY_CHANGED)
        .count();
    assert_eq!(last.status, Investigating);
    assert_eq!(severity_changes, emitted);
    assert_eq!(severity_changes, 3);
    let last_severity = last
        .timeline
        .iter()
        .rev()
        .find(|e| e.field == TimelineField::Severity);
    assert_eq!(last_severity.unwrap().to, last.severity.as_str());
}

#[test]
fn listing_filters_by_status_and_severity_in_the_store() {
    let fx = Fixture::new();
    open(&fx, Severity::P1);
    let p2 = open(&fx, Severity::P2);
    open(&fx, Severity::P2);
    set_status(&fx, &p2, Investigating).unwrap();
    let query = IncidentQuery {
        status: Some(Open),
        severity: Some(Severity::P2),
    };
    let page = fx
        .engine
        .incidents()
        .list_incidents(fx.session, &query, PageRequest::default())
        .unwrap();
    assert_eq!(page.total, 1);
    assert_eq!(page.items[0].severity, Severity::P2);
    assert_eq!(page.items[0].status, Open);
}

#[test]
fn severity_is_parsed_in_any_case() {
    assert_eq!(Severity::parse("p2"), Some(Severity::P2));
    assert_eq!(Severity::parse("P4"), Some(Severity::P4));
    assert_eq!(Severity::parse("P5"), None);
    assert_eq!(serde_json::to_value(Severity::P1).unwrap(), json!("P1"));
}
