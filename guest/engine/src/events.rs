//! The event kinds the Infra department produces, and how the engine emits them.
//!
//! Every event is emitted once per real change, after the change was written; an operation
//! that fails or changes nothing emits nothing. Payloads carry the object id, the session and
//! what a subscriber needs without reading the object back.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::ports::{LogLevel, NewEvent, Ports};

/// A deployment became Deployed (including the new deployment a rollback creates).
pub const DEPLOY_COMPLETED: &str = "infra.deploy.completed";
/// A monitoring alert was triggered: a check went Down or Degraded (once per transition).
pub const ALERT_FIRED: &str = "infra.alert.fired";
/// A new incident was opened.
pub const INCIDENT_OPENED: &str = "infra.incident.opened";
/// An incident was resolved.
pub const INCIDENT_RESOLVED: &str = "infra.incident.resolved";
/// A deployment moved to InProgress.
pub const DEPLOY_STARTED: &str = "infra.deploy.started";
/// A deployment moved to Failed.
pub const DEPLOY_FAILED: &str = "infra.deploy.failed";
/// A Deployed deployment was superseded by a rollback.
pub const DEPLOY_ROLLED_BACK: &str = "infra.deploy.rolled_back";
/// An incident changed status other than being opened, resolved or reopened.
pub const INCIDENT_STATUS_CHANGED: &str = "infra.incident.status_changed";
/// An incident's severity changed.
pub const INCIDENT_SEVERITY_CHANGED: &str = "infra.incident.severity_changed";
/// A resolved incident was reopened.
pub const INCIDENT_REOPENED: &str = "infra.incident.reopened";
/// A health check whose alert had fired came back Up.
pub const ALERT_RESOLVED: &str = "infra.alert.resolved";

/// Every kind the department produces: the four original kinds first, then the lifecycle
/// kinds. The manifest's `events_produced` is this list.
pub const PRODUCED: &[&str] = &[
    DEPLOY_COMPLETED,
    ALERT_FIRED,
    INCIDENT_OPENED,
    INCIDENT_RESOLVED,
    DEPLOY_STARTED,
    DEPLOY_FAILED,
    DEPLOY_ROLLED_BACK,
    INCIDENT_STATUS_CHANGED,
    INCIDENT_SEVERITY_CHANGED,
    INCIDENT_REOPENED,
    ALERT_RESOLVED,
];

/// A stored event delivered to the department (mirrors the WIT `event` record).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event id.
    pub id: String,
    /// The session it belongs to.
    pub session_id: Option<String>,
    /// The agent run that caused it.
    pub run_id: Option<String>,
    /// The emitting department's id, stamped by the host.
    pub source: String,
    /// Dotted kind.
    pub kind: String,
    /// The event's content.
    pub payload: Value,
    /// When it was persisted.
    pub created_at: DateTime<Utc>,
    /// Extra context.
    pub metadata: Value,
}

/// Emits one event for `session`.
///
/// The change it reports is already written, so a failing event port cannot undo it: the
/// failure is logged at `warn` for the operator and the call still succeeds. (A transactional
/// outbox would close this gap; the host persists events in the same database, so a failure
/// here means the host itself is failing.)
pub(crate) fn emit(ports: &Ports, session_id: String, kind: &str, payload: Value) {
    let event = NewEvent {
        session_id: Some(session_id),
        run_id: None,
        kind: kind.to_string(),
        payload,
        metadata: Value::Object(Default::default()),
    };
    if let Err(error) = ports.events.emit(event) {
        ports
            .logger
            .log(LogLevel::Warn, &format!("failed to emit `{kind}`: {error}"));
    }
}
