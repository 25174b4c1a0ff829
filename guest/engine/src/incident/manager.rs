//! [`IncidentManager`]: opens incidents, applies status and severity changes with
//! compare-and-swap, and emits one event per change written.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{Incident, IncidentStatus, Severity, TimelineEntry, TimelineField, KIND};
use crate::error::{EngineError, Result};
use crate::events;
use crate::ids::{IncidentId, SessionId};
use crate::page::{Page, PageRequest};
use crate::ports::Ports;
use crate::records::{self, empty_object, push_field, session_filter, Updated};

/// What to open with [`IncidentManager::open_incident`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewIncident {
    /// A one-line summary.
    pub title: String,
    /// What is known.
    pub description: String,
    /// How bad it is.
    pub severity: Severity,
}

/// Which incidents to list; `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncidentQuery {
    /// Only this status.
    pub status: Option<IncidentStatus>,
    /// Only this severity.
    pub severity: Option<Severity>,
}

/// A change to apply with [`IncidentManager::update_incident`]; at least one of `status` and
/// `severity` must be given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncidentUpdate {
    /// The new status.
    pub status: Option<IncidentStatus>,
    /// The new severity.
    pub severity: Option<Severity>,
    /// A note for the timeline.
    pub note: Option<String>,
}

/// Opens incidents and drives their lifecycle.
#[derive(Clone)]
pub struct IncidentManager {
    ports: Ports,
}

impl IncidentManager {
    /// A manager over `ports`.
    pub fn new(ports: Ports) -> Self {
        Self { ports }
    }

    /// Opens an incident and emits `infra.incident.opened`.
    pub fn open_incident(&self, session: SessionId, new: NewIncident) -> Result<Incident> {
        self.open_incident_with_metadata(session, new, empty_object())
    }

    /// Opens an incident carrying `metadata` (for example the health check that caused it)
    /// and emits `infra.incident.opened`.
    pub fn open_incident_with_metadata(
        &self,
        session: SessionId,
        new: NewIncident,
        metadata: Value,
    ) -> Result<Incident> {
        let incident = Incident {
            id: IncidentId::new(),
            session_id: session,
            title: new.title,
            description: new.description,
            severity: new.severity,
            status: IncidentStatus::Open,
            opened_at: self.ports.clock.now(),
            mitigated_at: None,
            resolved_at: None,
            timeline: Vec::new(),
            metadata,
        };
        records::insert(&*self.ports.objects, &incident)?;
        let mut payload = summary(&incident);
        payload["description"] = json!(incident.description);
        events::emit(
            &self.ports,
            session.to_string(),
            events::INCIDENT_OPENED,
            payload,
        );
        Ok(incident)
    }

    /// Reads one incident of `session`.
    pub fn get_incident(&self, session: SessionId, id: IncidentId) -> Result<Incident> {
        records::load(&*self.ports.objects, session, &id.to_string())
    }

    /// Lists incidents of `session`, newest first, filtered in the store.
    pub fn list_incidents(
        &self,
        session: SessionId,
        query: &IncidentQuery,
        page: PageRequest,
    ) -> Result<Page<Incident>> {
        let mut filter = session_filter(session);
        push_field(
            &mut filter,
            "status",
            query.status.map(IncidentStatus::as_str),
        );
        push_field(
            &mut filter,
            "severity",
            query.severity.map(Severity::as_str),
        );
        let total = self.ports.objects.count(KIND, &filter)?;
        filter.limit = Some(page.limit);
        filter.offset = Some(page.offset);
        let items = records::list(&*self.ports.objects, &filter)?;
        Ok(Page {
            items,
            total,
            limit: page.limit,
            offset: page.offset,
        })
    }

    /// Changes status and/or severity in one write. Resolving a Resolved incident and
    /// setting the current severity are not changes; reopening goes through
    /// [`Self::reopen_incident`].
    pub fn update_incident(
        &self,
        session: SessionId,
        id: IncidentId,
        update: IncidentUpdate,
    ) -> Result<Incident> {
        if update.status.is_none() && update.severity.is_none() {
            return Err(EngineError::validation(
                "give `status` or `severity` (or both)",
            ));
        }
        self.apply(session, id, |incident, now| {
            let mut entries = Vec::new();
            if let Some(to) = update.status {
                let already_resolved =
                    to == IncidentStatus::Resolved && incident.status == IncidentStatus::Resolved;
                if !already_resolved {
                    entries.push(incident.change_status(to, now, update.note.clone())?);
                }
            }
            if let Some(to) = update.severity {
                entries.extend(incident.change_severity(to, now, update.note.clone()));
            }
            Ok(entries)
        })
    }

    /// Resolves an incident; resolving a Resolved incident returns it unchanged.
    pub fn resolve_incident(
        &self,
        session: SessionId,
        id: IncidentId,
        note: Option<String>,
    ) -> Result<Incident> {
        let update = IncidentUpdate {
            status: Some(IncidentStatus::Resolved),
            severity: None,
            note,
        };
        self.update_incident(session, id, update)
    }

    /// Reopens a Resolved incident (back to Open) and emits `infra.incident.reopened`.
    pub fn reopen_incident(
        &self,
        session: SessionId,
        id: IncidentId,
        note: Option<String>,
    ) -> Result<Incident> {
        self.apply(session, id, |incident, now| {
            Ok(vec![incident.reopen(now, note.clone())?])
        })
    }

    /// Applies `change` with compare-and-swap and emits one event per timeline entry written.
    fn apply<F>(&self, session: SessionId, id: IncidentId, mut change: F) -> Result<Incident>
    where
        F: FnMut(&mut Incident, DateTime<Utc>) -> Result<Vec<TimelineEntry>>,
    {
        let store = &*self.ports.objects;
        let updated = records::update(store, session, &id.to_string(), |incident| {
            let entries = change(incident, self.ports.clock.now())?;
            Ok((!entries.is_empty()).then_some(entries))
        })?;
        match updated {
            Updated::Unchanged(incident) => Ok(incident),
            Updated::Changed(incident, entries) => {
                for entry in &entries {
                    self.emit_change(&incident, entry);
                }
                Ok(incident)
            }
        }
    }

    fn emit_change(&self, incident: &Incident, entry: &TimelineEntry) {
        let kind = match entry.field {
            TimelineField::Severity => events::INCIDENT_SEVERITY_CHANGED,
            TimelineField::Status if entry.to == IncidentStatus::Resolved.as_str() => {
                events::INCIDENT_RESOLVED
            }
            TimelineField::Status if entry.from == IncidentStatus::Resolved.as_str() => {
                events::INCIDENT_REOPENED
            }
            TimelineField::Status => events::INCIDENT_STATUS_CHANGED,
        };
        let mut payload = summary(incident);
        payload["field"] = json!(entry.field);
        payload["from"] = json!(entry.from);
        payload["to"] = json!(entry.to);
        payload["at"] = json!(entry.at);
        payload["note"] = json!(entry.note);
        events::emit(&self.ports, incident.session_id.to_string(), kind, payload);
    }
}

/// The fields every incident event carries.
fn summary(incident: &Incident) -> Value {
    json!({
        "incident_id": incident.id,
        "session_id": incident.session_id,
        "title": incident.title,
        "severity": incident.severity,
        "status": incident.status,
        "opened_at": incident.opened_at,
        "mitigated_at": incident.mitigated_at,
        "resolved_at": incident.resolved_at,
    })
}
