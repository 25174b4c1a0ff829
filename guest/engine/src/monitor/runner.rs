//! Probing checks: one probe per check, judged, written to the check with compare-and-swap,
//! stored as its own `infra_probe` object, and followed by the alert events and (when
//! configured) an incident.
//!
//! Alerts: `infra.alert.fired` on a transition into Down or Degraded, `infra.alert.resolved`
//! when a check whose alert fired is Up again; never on a probe that changes nothing. The
//! event is written into the check's outbox in the same write as the transition, emitted
//! right after, and removed from the outbox once delivered. A failed emit stays in the outbox
//! and is retried on the next probe of that check, so an alert is never lost; and since the
//! alert state is stored, a restarted host does not fire it again.
//!
//! Incidents (configuration `auto_open_incident`): a transition into Down opens an incident
//! (P2, metadata `check_id`) and links it in the check's `metadata.incident_id`; while that
//! incident is not resolved, later transitions into Down open no other one.

use chrono::{DateTime, Duration as WallDuration, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::evaluate::{judge, next_state, CheckState, ProbeOutcome, Verdict};
use super::probe::{fetch, Fetched};
use super::{CheckStatus, HealthCheck, MonitorManager, PendingEvent, ProbeRecord};
use crate::error::{EngineError, Result};
use crate::events;
use crate::ids::{HealthCheckId, IncidentId, ProbeId, SessionId};
use crate::incident::{IncidentStatus, NewIncident, Severity};
use crate::ports::{LogLevel, NewEvent};
use crate::records::{self, session_filter, set_metadata, Updated};

/// A status change of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Transition {
    /// The status before.
    pub from: Option<CheckStatus>,
    /// The status after.
    pub to: Option<CheckStatus>,
}

/// What probing one check did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeReport {
    /// The check.
    pub check_id: HealthCheckId,
    /// Its service.
    pub service: String,
    /// Its endpoint.
    pub endpoint: String,
    /// The stored probe result.
    pub probe_id: ProbeId,
    /// The verdict: outcome, status code or error, response time, reason.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// Redirects followed.
    pub redirects: u32,
    /// The URL of the final response.
    pub final_url: String,
    /// The check's status after the probe.
    pub status: Option<CheckStatus>,
    /// The check's status before the probe.
    pub previous_status: Option<CheckStatus>,
    /// The status change, if any.
    pub transition: Option<Transition>,
    /// Alert events emitted by this probe (kinds).
    pub alerts: Vec<String>,
    /// The incident opened (or already open) for this check going Down.
    pub incident_id: Option<IncidentId>,
    /// Whether this probe opened that incident.
    pub incident_opened: bool,
}

/// A check that could not be probed (its error), in a run over several checks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeFailure {
    /// The check.
    pub check_id: HealthCheckId,
    /// What went wrong (storage, conflict...): not a verdict on the endpoint.
    pub error: String,
}

/// What probing several checks did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunReport {
    /// One report per probed check.
    pub results: Vec<ProbeReport>,
    /// The status changes among them.
    pub transitions: Vec<CheckTransition>,
    /// Checks that could not be probed.
    pub errors: Vec<ProbeFailure>,
}

/// A status change of a named check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckTransition {
    /// The check.
    pub check_id: HealthCheckId,
    /// Its service.
    pub service: String,
    /// The status before.
    pub from: Option<CheckStatus>,
    /// The status after.
    pub to: Option<CheckStatus>,
}

/// What a scheduled scan did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScanReport {
    /// The session scanned.
    pub session_id: SessionId,
    /// The session's checks.
    pub checks: usize,
    /// Checks that were due and probed.
    pub probed: usize,
    /// Checks not due yet.
    pub skipped: usize,
    /// The status changes.
    pub transitions: Vec<CheckTransition>,
    /// Checks that could not be probed.
    pub errors: Vec<ProbeFailure>,
}

impl RunReport {
    fn add(&mut self, check_id: HealthCheckId, result: Result<ProbeReport>) {
        match result {
            Ok(report) => {
                if let Some(transition) = report.transition {
                    self.transitions.push(CheckTransition {
                        check_id,
                        service: report.service.clone(),
                        from: transition.from,
                        to: transition.to,
                    });
                }
                self.results.push(report);
            }
            Err(error) => self.errors.push(ProbeFailure {
                check_id,
                error: error.to_string(),
            }),
        }
    }
}

/// Whether a check is due at `now`: never probed, or its interval has passed.
pub fn is_due(check: &HealthCheck, now: DateTime<Utc>) -> bool {
    let interval = WallDuration::seconds(check.conditions.interval_seconds as i64);
    check.last_checked.is_none_or(|last| last + interval <= now)
}

impl MonitorManager {
    /// Probes one check of `session` now.
    pub fn probe_check(&self, session: SessionId, id: HealthCheckId) -> Result<ProbeReport> {
        let check = self.get_check(session, id)?;
        let timeout = std::time::Duration::from_millis(check.conditions.timeout_ms);
        let fetched = fetch(
            &*self.ports.http,
            &*self.ports.monotonic,
            &check.endpoint,
            timeout,
        );
        let verdict = judge(&check.conditions, &fetched);
        self.record_probe(session, id, verdict, fetched)
    }

    /// Probes every check of `session` (or only `only`), one after another.
    pub fn run(&self, session: SessionId, only: Option<HealthCheckId>) -> Result<RunReport> {
        if let Some(id) = only {
            let report = self.probe_check(session, id)?;
            let mut run = RunReport::default();
            run.add(id, Ok(report));
            return Ok(run);
        }
        let checks =
            records::list_all::<HealthCheck>(&*self.ports.objects, &session_filter(session))?;
        let mut run = RunReport::default();
        for check in checks {
            run.add(check.id, self.probe_check(session, check.id));
        }
        Ok(run)
    }

    /// Probes the checks of `session` that are due (never probed, or `last_checked` plus the
    /// interval is not after now); the handler of the `infra.health_scan` job.
    pub fn scan_due(&self, session: SessionId) -> Result<ScanReport> {
        let checks =
            records::list_all::<HealthCheck>(&*self.ports.objects, &session_filter(session))?;
        let now = self.ports.clock.now();
        let total = checks.len();
        let mut run = RunReport::default();
        for check in checks.iter().filter(|check| is_due(check, now)) {
            run.add(check.id, self.probe_check(session, check.id));
        }
        let probed = run.results.len() + run.errors.len();
        Ok(ScanReport {
            session_id: session,
            checks: total,
            probed,
            skipped: total - probed,
            transitions: run.transitions,
            errors: run.errors,
        })
    }

    /// Writes a judged probe into the check, stores it, delivers alerts, opens an incident.
    fn record_probe(
        &self,
        session: SessionId,
        id: HealthCheckId,
        verdict: Verdict,
        fetched: Fetched,
    ) -> Result<ProbeReport> {
        let now = self.ports.clock.now();
        let updated = records::update::<HealthCheck, Option<Transition>, _>(
            &*self.ports.objects,
            session,
            &id.to_string(),
            |check| Ok(Some(apply_probe(check, &verdict, now))),
        )?;
        let (check, transition) = match updated {
            Updated::Changed(check, transition) => (check, transition),
            Updated::Unchanged(check) => (check, None),
        };
        let probe = ProbeRecord {
            id: ProbeId::new(),
            check_id: id,
            session_id: session,
            at: now,
            status_code: verdict.status_code,
            error: verdict.error.clone(),
            response_ms: verdict.response_ms,
            outcome: verdict.outcome,
            reason: verdict.reason.clone(),
            redirects: fetched.redirects,
            final_url: fetched.final_url.clone(),
            check_status: check.status,
        };
        records::insert(&*self.ports.objects, &probe)?;
        let alerts = self.deliver_outbox(session, &check);
        let mut report = ProbeReport {
            check_id: id,
            service: check.service.clone(),
            endpoint: check.endpoint.clone(),
            probe_id: probe.id,
            verdict,
            redirects: fetched.redirects,
            final_url: fetched.final_url,
            status: check.status,
            previous_status: transition.map_or(check.status, |t| t.from),
            transition,
            alerts,
            incident_id: None,
            incident_opened: false,
        };
        let went_down = transition.is_some_and(|t| t.to == Some(CheckStatus::Down));
        if went_down && self.auto_open_incident {
            match self.open_incident_for(session, &check, &report) {
                Ok((incident, opened)) => {
                    report.incident_id = Some(incident);
                    report.incident_opened = opened;
                }
                Err(error) => self.ports.logger.log(
                    LogLevel::Warn,
                    &format!("could not open an incident for check {id}: {error}"),
                ),
            }
        }
        Ok(report)
    }

    /// Emits the check's undelivered alert events in order, then removes the delivered ones
    /// from its outbox. Returns the kinds delivered.
    fn deliver_outbox(&self, session: SessionId, check: &HealthCheck) -> Vec<String> {
        let mut delivered = Vec::new();
        for pending in &check.alert.outbox {
            let event = NewEvent {
                session_id: Some(session.to_string()),
                run_id: None,
                kind: pending.kind.clone(),
                payload: pending.payload.clone(),
                metadata: json!({}),
            };
            if let Err(error) = self.ports.events.emit(event) {
                self.ports.logger.log(
                    LogLevel::Warn,
                    &format!(
                        "failed to emit `{}` for check {}; kept for the next probe: {error}",
                        pending.kind, check.id
                    ),
                );
                break;
            }
            delivered.push(pending.clone());
        }
        if delivered.is_empty() {
            return Vec::new();
        }
        let ids: Vec<&str> = delivered.iter().map(|p| p.id.as_str()).collect();
        let cleared = records::update::<HealthCheck, (), _>(
            &*self.ports.objects,
            session,
            &check.id.to_string(),
            |stored| {
                let before = stored.alert.outbox.len();
                stored
                    .alert
                    .outbox
                    .retain(|p| !ids.contains(&p.id.as_str()));
                Ok((stored.alert.outbox.len() != before).then_some(()))
            },
        );
        if let Err(error) = cleared {
            self.ports.logger.log(
                LogLevel::Warn,
                &format!(
                    "delivered alerts of check {} stay in its outbox: {error}",
                    check.id
                ),
            );
        }
        delivered.into_iter().map(|p| p.kind).collect()
    }

    /// Opens an incident for a check that went Down, unless its linked incident is still
    /// unresolved. Returns the incident and whether it was opened now.
    fn open_incident_for(
        &self,
        session: SessionId,
        check: &HealthCheck,
        report: &ProbeReport,
    ) -> Result<(IncidentId, bool)> {
        let linked = check
            .metadata
            .get("incident_id")
            .and_then(Value::as_str)
            .and_then(|text| text.parse::<IncidentId>().ok());
        if let Some(linked) = linked {
            match self.incidents.get_incident(session, linked) {
                Ok(incident) if incident.status != IncidentStatus::Resolved => {
                    return Ok((incident.id, false));
                }
                Ok(_) | Err(EngineError::NotFound { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        let reason = report.verdict.reason.clone().unwrap_or_default();
        let new = NewIncident {
            title: format!("{} is down", check.service),
            description: format!(
                "Health check {} of {} is down after {} consecutive failed probes: {reason}",
                check.endpoint, check.service, check.conditions.failure_threshold
            ),
            severity: Severity::P2,
        };
        let metadata = json!({
            "check_id": check.id,
            "service": check.service,
            "endpoint": check.endpoint,
            "opened_by": "monitor",
        });
        let incident = self
            .incidents
            .open_incident_with_metadata(session, new, metadata)?;
        records::update::<HealthCheck, (), _>(
            &*self.ports.objects,
            session,
            &check.id.to_string(),
            |stored| {
                set_metadata(&mut stored.metadata, "incident_id", json!(incident.id));
                Ok(Some(()))
            },
        )?;
        Ok((incident.id, true))
    }
}

/// Applies a judged probe to a check: counters, status, last result, alert state and outbox.
/// Returns the status change, if any.
fn apply_probe(
    check: &mut HealthCheck,
    verdict: &Verdict,
    now: DateTime<Utc>,
) -> Option<Transition> {
    let before = CheckState {
        status: check.status,
        consecutive_failures: check.consecutive_failures,
        consecutive_successes: check.consecutive_successes,
    };
    let after = next_state(before, verdict.outcome, &check.conditions);
    check.status = after.status;
    check.consecutive_failures = after.consecutive_failures;
    check.consecutive_successes = after.consecutive_successes;
    check.last_checked = Some(now);
    check.response_ms = Some(verdict.response_ms);
    check.last_result = Some(verdict.clone());

    let transition = (before.status != after.status).then_some(Transition {
        from: before.status,
        to: after.status,
    });
    match after.status {
        Some(status @ (CheckStatus::Down | CheckStatus::Degraded))
            if !check.alert.firing || check.alert.status != Some(status) =>
        {
            let previous = before.status;
            push_alert(check, events::ALERT_FIRED, previous, verdict, now);
            check.alert.firing = true;
            check.alert.status = Some(status);
            check.alert.fired_at = Some(now);
        }
        Some(CheckStatus::Up) if check.alert.firing => {
            let previous = before.status;
            push_alert(check, events::ALERT_RESOLVED, previous, verdict, now);
            check.alert.firing = false;
            check.alert.resolved_at = Some(now);
        }
        _ => {}
    }
    transition
}

/// Queues an alert event in the check's outbox.
fn push_alert(
    check: &mut HealthCheck,
    kind: &str,
    previous: Option<CheckStatus>,
    verdict: &Verdict,
    now: DateTime<Utc>,
) {
    let id = Uuid::now_v7().to_string();
    let payload = json!({
        "alert_id": id,
        "check_id": check.id,
        "session_id": check.session_id,
        "service": check.service,
        "endpoint": check.endpoint,
        "status": check.status,
        "previous_status": previous,
        "reason": alert_reason(verdict),
        "outcome": verdict.outcome,
        "status_code": verdict.status_code,
        "error_category": verdict.error.as_ref().map(|e| e.category),
        "response_ms": verdict.response_ms,
        "consecutive_failures": check.consecutive_failures,
        "at": now,
    });
    check.alert.outbox.push(PendingEvent {
        id,
        kind: kind.to_string(),
        payload,
    });
}

/// The alert's reason: the failure's reason, or what the recovering probe measured.
fn alert_reason(verdict: &Verdict) -> String {
    match (&verdict.reason, verdict.outcome) {
        (Some(reason), _) => reason.clone(),
        (None, ProbeOutcome::Pass) => format!(
            "probe passed (status {}, {} ms)",
            verdict.status_code.map_or("none".into(), |s| s.to_string()),
            verdict.response_ms
        ),
        (None, _) => String::new(),
    }
}
