//! Health checks: the [`HealthCheck`] record and the [`MonitorManager`], which registers
//! checks and summarises their status.
//!
//! A check is registered without a status: `status`, `last_checked` and `response_ms` stay
//! `null` until a probe has run, because claiming Up (or Down) before anything was measured
//! would mislead an operator. Probing, thresholds and alerting build on this module.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use chrono::{DateTime, Utc};

use crate::error::{EngineError, Result};
use crate::ids::{HealthCheckId, SessionId};
use crate::page::{Page, PageRequest, MAX_LIMIT};
use crate::ports::Ports;
use crate::records::{self, empty_object, push_field, session_filter, Record};

/// The object kind health checks are stored under.
pub const KIND: &str = "infra_healthcheck";

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
    /// The last measured state; `None` until the first probe.
    pub status: Option<CheckStatus>,
    /// When the last probe ran.
    pub last_checked: Option<DateTime<Utc>>,
    /// How long the last probe took, in milliseconds.
    pub response_ms: Option<u64>,
    /// Free-form context.
    #[serde(default = "empty_object")]
    pub metadata: Value,
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
#[derive(Debug, Clone, PartialEq)]
pub struct NewHealthCheck {
    /// The service checked.
    pub service: String,
    /// The URL to probe.
    pub endpoint: String,
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

/// Registers health checks and reports their status.
#[derive(Clone)]
pub struct MonitorManager {
    ports: Ports,
}

impl MonitorManager {
    /// A manager over `ports`.
    pub fn new(ports: Ports) -> Self {
        Self { ports }
    }

    /// Registers a check; refused when the session already checks that endpoint for that
    /// service.
    pub fn add_check(&self, session: SessionId, new: NewHealthCheck) -> Result<HealthCheck> {
        validate_endpoint(&new.endpoint)?;
        let mut filter = session_filter(session);
        push_field(&mut filter, "service", Some(&new.service));
        push_field(&mut filter, "endpoint", Some(&new.endpoint));
        filter.limit = Some(1);
        if let Some(existing) = records::list::<HealthCheck>(&*self.ports.objects, &filter)?.pop() {
            return Err(EngineError::AlreadyExists {
                kind: KIND.to_string(),
                id: existing.id.to_string(),
            });
        }
        let check = HealthCheck {
            id: HealthCheckId::new(),
            session_id: session,
            service: new.service,
            endpoint: new.endpoint,
            status: None,
            last_checked: None,
            response_ms: None,
            metadata: empty_object(),
        };
        records::insert(&*self.ports.objects, &check)?;
        Ok(check)
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
    Ok(())
}

#[cfg(test)]
mod tests;
