//! Health checks: the [`HealthCheck`] record, the [`MonitorManager`] which registers, updates
//! and probes checks, and the status summary with its per-service rollup.
//!
//! A check is registered without a status: `status`, `last_checked` and `response_ms` stay
//! `null` until a probe has run, because claiming Up (or Down) before anything was measured
//! would mislead an operator. The rules of probing live in the submodules:
//!
//! - [`check`]: conditions, thresholds, interval and timeout, with defaults and validation;
//! - [`probe`]: one probe over the HTTP port, following redirects and measuring time;
//! - [`evaluate`]: judging a probe and moving the check's status;
//! - `runner`: probing checks, storing results, alerting and opening incidents.

pub mod check;
pub mod evaluate;
pub mod probe;
mod runner;
pub mod url;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use chrono::{DateTime, Utc};

use crate::error::{EngineError, Result};
use crate::ids::{HealthCheckId, ProbeId, SessionId};
use crate::incident::IncidentManager;
use crate::page::{Page, PageRequest, MAX_LIMIT};
use crate::ports::{Ports, TransportError};
use crate::records::{self, empty_object, push_field, session_filter, Record, Updated};

pub use check::{BodyCondition, CheckConditions, CheckSettings, StatusRange};
pub use evaluate::{ProbeOutcome, Verdict};
pub use runner::{ProbeReport, RunReport, ScanReport};

/// The object kind health checks are stored under.
pub const KIND: &str = "infra_healthcheck";

/// The object kind probe results are stored under, one object per probe.
pub const PROBE_KIND: &str = "infra_probe";

/// The longest endpoint URL accepted.
pub const MAX_ENDPOINT_LEN: usize = 2048;

/// The measured state of a check. JSON: `up`, `down`, `degraded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Every condition passes.
    Up,
    /// The check is failing.
    Down,
    /// Passing, but slow.
    Degraded,
}

impl CheckStatus {
    /// Every status.
    pub const ALL: [Self; 3] = [Self::Up, Self::Down, Self::Degraded];

    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::Degraded => "degraded",
        }
    }

    /// Parses the JSON spelling, ignoring ASCII case.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str().eq_ignore_ascii_case(text))
    }
}

/// A health check of one endpoint of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// The check's id.
    pub id: HealthCheckId,
    /// The session that registered it.
    pub session_id: SessionId,
    /// The service checked.
    pub service: String,
    /// The URL probed (`http` or `https`).
    pub endpoint: String,
    /// The last measured state; `None` until it is known (the first passing probe, or
    /// the failure threshold reached).
    pub status: Option<CheckStatus>,
    /// When the last probe ran.
    pub last_checked: Option<DateTime<Utc>>,
    /// How long the last probe took, in milliseconds.
    pub response_ms: Option<u64>,
    /// What the check tests and how often (stored flat).
    #[serde(flatten)]
    pub conditions: CheckConditions,
    /// Consecutive failing probes.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// Consecutive passing (or degraded) probes.
    #[serde(default)]
    pub consecutive_successes: u32,
    /// The verdict on the last probe.
    #[serde(default)]
    pub last_result: Option<Verdict>,
    /// Whether an alert is firing, and alert events not delivered yet.
    #[serde(default)]
    pub alert: AlertState,
    /// Free-form context; `incident_id` links the incident opened for it.
    #[serde(default = "empty_object")]
    pub metadata: Value,
}

/// A check's alert: stored with the check, so a restart neither repeats nor loses it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AlertState {
    /// Whether an alert fired and has not been resolved.
    pub firing: bool,
    /// The status it fired for (`down` or `degraded`).
    pub status: Option<CheckStatus>,
    /// When it last fired.
    pub fired_at: Option<DateTime<Utc>>,
    /// When it was last resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Alert events written with the transition but not delivered yet, oldest first; they
    /// are emitted right after the write and, if the event port failed, on the next probe.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outbox: Vec<PendingEvent>,
}

/// An event waiting in a check's outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingEvent {
    /// Identifies the alert event (also `alert_id` in its payload, for deduplication).
    pub id: String,
    /// `infra.alert.fired` or `infra.alert.resolved`.
    pub kind: String,
    /// The event payload.
    pub payload: Value,
}

/// One stored probe result (kind `infra_probe`), for history, availability and percentiles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeRecord {
    /// The probe's id.
    pub id: ProbeId,
    /// The check probed.
    pub check_id: HealthCheckId,
    /// The check's session.
    pub session_id: SessionId,
    /// When the probe finished.
    pub at: DateTime<Utc>,
    /// The final status code; `None` when no response arrived.
    pub status_code: Option<u16>,
    /// Why no response arrived.
    pub error: Option<TransportError>,
    /// The whole probe's duration, in milliseconds.
    pub response_ms: u64,
    /// `pass`, `degraded` or `fail`.
    pub outcome: ProbeOutcome,
    /// Why it failed or is degraded.
    pub reason: Option<String>,
    /// Redirects followed.
    pub redirects: u32,
    /// The URL of the final response.
    pub final_url: String,
    /// The check's status after this probe.
    pub check_status: Option<CheckStatus>,
}

impl Record for ProbeRecord {
    const KIND: &'static str = PROBE_KIND;

    fn id_text(&self) -> String {
        self.id.to_string()
    }

    fn session_id(&self) -> SessionId {
        self.session_id
    }
}

impl Record for HealthCheck {
    const KIND: &'static str = KIND;

    fn id_text(&self) -> String {
        self.id.to_string()
    }

    fn session_id(&self) -> SessionId {
        self.session_id
    }
}

/// What to register with [`MonitorManager::add_check`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewHealthCheck {
    /// The service checked.
    pub service: String,
    /// The URL to probe.
    pub endpoint: String,
    /// Conditions, thresholds and timing; unset ones take the defaults.
    pub settings: CheckSettings,
}

/// A change to a registered check with [`MonitorManager::update_check`]; `None` keeps a
/// value. The measured state (status, counters, alert) is kept; the next probe is judged by
/// the new settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckUpdate {
    /// A new service name.
    pub service: Option<String>,
    /// A new endpoint.
    pub endpoint: Option<String>,
    /// New conditions, thresholds or timing.
    pub settings: CheckSettings,
}

/// Which checks to list; `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckQuery {
    /// Only this service.
    pub service: Option<String>,
    /// Only this status.
    pub status: Option<CheckStatus>,
}

/// The status of a session's checks at a glance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatusSummary {
    /// All checks.
    pub total: u64,
    /// Checks Up.
    pub up: u64,
    /// Checks Down.
    pub down: u64,
    /// Checks Degraded.
    pub degraded: u64,
    /// Checks not probed yet.
    pub unchecked: u64,
    /// Services with at least one Down check, sorted.
    pub down_services: Vec<String>,
    /// Services with at least one Degraded check, sorted.
    pub degraded_services: Vec<String>,
}

/// The rolled-up status of one service: the worst of its checks (Down, then Degraded, then
/// Up); `None` while none of its checks has a status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceStatus {
    /// The service.
    pub service: String,
    /// The worst status of its checks.
    pub status: Option<CheckStatus>,
    /// Its checks.
    pub checks: u64,
    /// Checks Up.
    pub up: u64,
    /// Checks Down.
    pub down: u64,
    /// Checks Degraded.
    pub degraded: u64,
    /// Checks without a status yet.
    pub unchecked: u64,
}

impl CheckStatus {
    /// How bad a status is, for the rollup: Down is the worst.
    fn severity(self) -> u8 {
        match self {
            Self::Up => 0,
            Self::Degraded => 1,
            Self::Down => 2,
        }
    }
}

/// Rolls checks up per service, sorted by service.
pub fn rollup(checks: &[HealthCheck]) -> Vec<ServiceStatus> {
    let mut services: std::collections::BTreeMap<&str, ServiceStatus> = Default::default();
    for check in checks {
        let entry = services
            .entry(check.service.as_str())
            .or_insert_with(|| ServiceStatus {
                service: check.service.clone(),
                status: None,
                checks: 0,
                up: 0,
                down: 0,
                degraded: 0,
                unchecked: 0,
            });
        entry.checks += 1;
        match check.status {
            Some(CheckStatus::Up) => entry.up += 1,
            Some(CheckStatus::Down) => entry.down += 1,
            Some(CheckStatus::Degraded) => entry.degraded += 1,
            None => entry.unchecked += 1,
        }
        if let Some(status) = check.status {
            if entry
                .status
                .is_none_or(|worst| status.severity() > worst.severity())
            {
                entry.status = Some(status);
            }
        }
    }
    services.into_values().collect()
}

/// Registers, updates, removes and probes health checks, and reports their status.
#[derive(Clone)]
pub struct MonitorManager {
    ports: Ports,
    incidents: IncidentManager,
    auto_open_incident: bool,
}

impl MonitorManager {
    /// A manager over `ports`; with `auto_open_incident`, a check going Down opens an
    /// incident through `incidents`.
    pub fn new(ports: Ports, incidents: IncidentManager, auto_open_incident: bool) -> Self {
        Self {
            ports,
            incidents,
            auto_open_incident,
        }
    }

    /// Registers a check; refused when the settings break a rule, or when the session already
    /// checks that endpoint for that service.
    pub fn add_check(&self, session: SessionId, new: NewHealthCheck) -> Result<HealthCheck> {
        validate_endpoint(&new.endpoint)?;
        let conditions = new.settings.resolve(None)?;
        self.refuse_duplicate(session, &new.service, &new.endpoint, None)?;
        let check = HealthCheck {
            id: HealthCheckId::new(),
            session_id: session,
            service: new.service,
            endpoint: new.endpoint,
            status: None,
            last_checked: None,
            response_ms: None,
            conditions,
            consecutive_failures: 0,
            consecutive_successes: 0,
            last_result: None,
            alert: AlertState::default(),
            metadata: empty_object(),
        };
        records::insert(&*self.ports.objects, &check)?;
        Ok(check)
    }

    /// Changes a check's service, endpoint or settings (compare-and-swap); the measured state
    /// is kept. Refused when the result breaks a rule or duplicates another check.
    pub fn update_check(
        &self,
        session: SessionId,
        id: HealthCheckId,
        update: CheckUpdate,
    ) -> Result<HealthCheck> {
        if let Some(endpoint) = &update.endpoint {
            validate_endpoint(endpoint)?;
        }
        let updated = records::update::<HealthCheck, (), _>(
            &*self.ports.objects,
            session,
            &id.to_string(),
            |check| {
                let conditions = update.settings.resolve(Some(&check.conditions))?;
                let service = update
                    .service
                    .clone()
                    .unwrap_or_else(|| check.service.clone());
                let endpoint = update
                    .endpoint
                    .clone()
                    .unwrap_or_else(|| check.endpoint.clone());
                if service == check.service
                    && endpoint == check.endpoint
                    && conditions == check.conditions
                {
                    return Ok(None);
                }
                self.refuse_duplicate(session, &service, &endpoint, Some(id))?;
                check.service = service;
                check.endpoint = endpoint;
                check.conditions = conditions;
                Ok(Some(()))
            },
        )?;
        Ok(match updated {
            Updated::Changed(check, ()) | Updated::Unchanged(check) => check,
        })
    }

    /// Removes a check; its stored probe results stay, as history.
    pub fn remove_check(&self, session: SessionId, id: HealthCheckId) -> Result<HealthCheck> {
        let check = self.get_check(session, id)?;
        self.ports.objects.delete(KIND, &id.to_string())?;
        Ok(check)
    }

    /// Reads one check of `session`.
    pub fn get_check(&self, session: SessionId, id: HealthCheckId) -> Result<HealthCheck> {
        records::load(&*self.ports.objects, session, &id.to_string())
    }

    /// Refuses a second check of the same service and endpoint in a session.
    fn refuse_duplicate(
        &self,
        session: SessionId,
        service: &str,
        endpoint: &str,
        except: Option<HealthCheckId>,
    ) -> Result<()> {
        let mut filter = session_filter(session);
        push_field(&mut filter, "service", Some(service));
        push_field(&mut filter, "endpoint", Some(endpoint));
        filter.limit = Some(2);
        let existing = records::list::<HealthCheck>(&*self.ports.objects, &filter)?;
        match existing.into_iter().find(|check| Some(check.id) != except) {
            Some(existing) => Err(EngineError::AlreadyExists {
                kind: KIND.to_string(),
                id: existing.id.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// Lists checks of `session`, newest first, filtered in the store.
    pub fn list_checks(
        &self,
        session: SessionId,
        query: &CheckQuery,
        page: PageRequest,
    ) -> Result<Page<HealthCheck>> {
        let mut filter = session_filter(session);
        push_field(&mut filter, "service", query.service.as_deref());
        push_field(&mut filter, "status", query.status.map(CheckStatus::as_str));
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

    /// Counts the session's checks by status (in the store) and names the services with a
    /// Down or Degraded check.
    pub fn status_summary(&self, session: SessionId) -> Result<StatusSummary> {
        let store = &*self.ports.objects;
        let count = |status: Option<CheckStatus>| {
            let mut filter = session_filter(session);
            push_field(&mut filter, "status", status.map(CheckStatus::as_str));
            store.count(KIND, &filter)
        };
        let total = count(None)?;
        let up = count(Some(CheckStatus::Up))?;
        let down = count(Some(CheckStatus::Down))?;
        let degraded = count(Some(CheckStatus::Degraded))?;
        Ok(StatusSummary {
            total,
            up,
            down,
            degraded,
            unchecked: total.saturating_sub(up + down + degraded),
            down_services: self.services_with(session, CheckStatus::Down)?,
            degraded_services: self.services_with(session, CheckStatus::Degraded)?,
        })
    }

    /// The distinct services having a check in `status` (at most [`MAX_LIMIT`] checks read).
    fn services_with(&self, session: SessionId, status: CheckStatus) -> Result<Vec<String>> {
        let mut filter = session_filter(session);
        push_field(&mut filter, "status", Some(status.as_str()));
        filter.limit = Some(MAX_LIMIT);
        let mut services: Vec<String> =
            records::list::<HealthCheck>(&*self.ports.objects, &filter)?
                .into_iter()
                .map(|check| check.service)
                .collect();
        services.sort();
        services.dedup();
        Ok(services)
    }
}

/// Accepts an absolute `http://` or `https://` URL with a host and no whitespace.
pub fn validate_endpoint(endpoint: &str) -> Result<()> {
    let invalid = |why: &str| {
        EngineError::validation(format!("endpoint: `{endpoint}` is not a valid URL ({why})"))
    };
    if endpoint.len() > MAX_ENDPOINT_LEN {
        return Err(invalid("longer than 2048 bytes"));
    }
    if endpoint.chars().any(char::is_whitespace) {
        return Err(invalid("contains whitespace"));
    }
    let lower = endpoint.to_ascii_lowercase();
    let rest = ["http://", "https://"]
        .iter()
        .find_map(|scheme| lower.strip_prefix(scheme))
        .ok_or_else(|| invalid("the scheme must be http or https"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err(invalid("no host"));
    }
    if url::HttpUrl::parse(endpoint).is_none() {
        return Err(invalid("no host"));
    }
    Ok(())
}

#[cfg(test)]
mod probing_tests;
#[cfg(test)]
mod tests;
