//! [`InfraEngine`]: the three managers over one set of ports, and the department's entry
//! points (registration, tool calls, jobs, events) independent of how they are delivered.

use serde_json::Value;

use crate::config::InfraConfig;
use crate::deploy::{self, DeployManager};
use crate::error::{EngineError, Result};
use crate::events::Event;
use crate::ids::SessionId;
use crate::incident::{self, IncidentManager};
use crate::manifest::ToolDefinition;
use crate::monitor::{self, MonitorManager};
use crate::ports::{Job, LogLevel, Ports};
use crate::tools::{self, ToolOutput};

/// Top-level fields the engine filters on, per object kind, for the host to index
/// (`session_id` is always indexed).
pub const INDEXED_FIELDS: &[(&str, &str)] = &[
    (deploy::KIND, "service"),
    (deploy::KIND, "environment"),
    (deploy::KIND, "status"),
    (incident::KIND, "status"),
    (incident::KIND, "severity"),
    (monitor::KIND, "service"),
    (monitor::KIND, "status"),
    (monitor::KIND, "endpoint"),
    (monitor::PROBE_KIND, "check_id"),
];

/// Event kinds the department subscribes to. None yet: it reacts to nothing outside itself.
pub const EVENT_SUBSCRIPTIONS: &[&str] = &[];

/// The job that probes a session's due health checks; payload `{"session_id": ...}`.
pub const HEALTH_SCAN_JOB: &str = "infra.health_scan";

/// Job kinds the department handles.
pub const JOB_KINDS: &[&str] = &[HEALTH_SCAN_JOB];

/// What the `infra.health_scan` job does, for the manifest.
pub const HEALTH_SCAN_DESCRIPTION: &str = "Probe the session's health checks that are due \
     (never probed, or last probed at least their interval ago); payload {\"session_id\": ...}.";

/// What registration hands back to the host: what native registrars would have collected.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    /// The agent tools.
    pub tools: Vec<ToolDefinition>,
    /// Event kinds to deliver to [`InfraEngine::handle_event`].
    pub event_subscriptions: Vec<String>,
    /// Job kinds to deliver to [`InfraEngine::handle_job`].
    pub job_kinds: Vec<String>,
    /// `(kind, field)` pairs to index.
    pub indexed_fields: Vec<(String, String)>,
}

/// The department's registration. Pure, so registering again gives the same answer.
pub fn registration() -> Registration {
    Registration {
        tools: tools::definitions(),
        event_subscriptions: EVENT_SUBSCRIPTIONS
            .iter()
            .map(|kind| kind.to_string())
            .collect(),
        job_kinds: JOB_KINDS.iter().map(|kind| kind.to_string()).collect(),
        indexed_fields: INDEXED_FIELDS
            .iter()
            .map(|(kind, field)| (kind.to_string(), field.to_string()))
            .collect(),
    }
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    /// Succeeded with this result.
    Completed(Value),
    /// Needs a person's approval; carries the proposed result.
    HoldForApproval(Value),
}

/// The Infra engine: deployments, health checks and incidents over the given ports.
#[derive(Clone)]
pub struct InfraEngine {
    ports: Ports,
    config: InfraConfig,
    deploys: DeployManager,
    monitor: MonitorManager,
    incidents: IncidentManager,
}

impl InfraEngine {
    /// An engine over `ports` with `config`. Creating it touches no port.
    pub fn new(ports: Ports, config: InfraConfig) -> Self {
        let incidents = IncidentManager::new(ports.clone());
        Self {
            deploys: DeployManager::new(ports.clone(), config.clone()),
            monitor: MonitorManager::new(
                ports.clone(),
                incidents.clone(),
                config.auto_open_incident,
            ),
            incidents,
            ports,
            config,
        }
    }

    /// The ports the engine runs on.
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// The configuration the engine runs with.
    pub fn config(&self) -> &InfraConfig {
        &self.config
    }

    /// Deployments.
    pub fn deploys(&self) -> &DeployManager {
        &self.deploys
    }

    /// Health checks.
    pub fn monitor(&self) -> &MonitorManager {
        &self.monitor
    }

    /// Incidents.
    pub fn incidents(&self) -> &IncidentManager {
        &self.incidents
    }

    /// Runs the tool `name` with JSON arguments. An unknown tool is `not-found` (kind `tool`).
    ///
    /// A refused call is not logged here: the error goes back to the host, which logs it with
    /// the plugin and call ids it knows.
    pub fn call_tool(&self, name: &str, args: &Value) -> Result<ToolOutput> {
        tools::call(self, name, args)
    }

    /// Runs the tool `name` with arguments given as JSON text.
    pub fn call_tool_json(&self, name: &str, args: &str) -> Result<ToolOutput> {
        let args: Value = serde_json::from_str(args).map_err(|error| {
            EngineError::validation(format!("{name}: arguments are not valid JSON: {error}"))
        })?;
        self.call_tool(name, &args)
    }

    /// Runs a job. `infra.health_scan` probes the due checks of the payload's `session_id`
    /// and completes with a summary; any other kind is refused with a validation error
    /// naming it.
    pub fn handle_job(&self, job: &Job) -> Result<JobOutcome> {
        if job.kind != HEALTH_SCAN_JOB {
            return Err(EngineError::validation(format!(
                "job kind `{}` is not handled by the infra department (job {})",
                job.kind, job.id
            )));
        }
        let session = job
            .payload
            .get("session_id")
            .and_then(Value::as_str)
            .unwrap_or(job.session_id.as_str());
        let session: SessionId = session.parse().map_err(|_| {
            EngineError::validation(format!(
                "job {}: payload field `session_id` must be a session UUID, got `{session}`",
                job.id
            ))
        })?;
        let report = self.monitor.scan_due(session)?;
        self.ports.logger.log(
            LogLevel::Info,
            &format!(
                "health scan {}: probed {} of {} checks, {} transitions",
                job.id,
                report.probed,
                report.checks,
                report.transitions.len()
            ),
        );
        Ok(JobOutcome::Completed(serde_json::to_value(report)?))
    }

    /// Receives an event. The department subscribes to nothing yet; an event of a kind it did
    /// not subscribe to is accepted and ignored, so a host delivering broadly (or replaying)
    /// cannot fail the department.
    pub fn handle_event(&self, event: &Event) -> Result<()> {
        self.ports.logger.log(
            LogLevel::Debug,
            &format!(
                "ignored event `{}` ({}): not subscribed",
                event.kind, event.id
            ),
        );
        Ok(())
    }

    /// Graceful shutdown: the engine holds no state outside the ports, so nothing to flush.
    pub fn shutdown(&self) -> Result<()> {
        self.ports
            .logger
            .log(LogLevel::Info, "infra engine shut down");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;
    use crate::memory::MemoryPorts;
    use crate::ports::JobStatus;

    fn engine() -> (MemoryPorts, InfraEngine) {
        let ports = MemoryPorts::new();
        let engine = InfraEngine::new(ports.ports(), InfraConfig::default());
        (ports, engine)
    }

    #[test]
    fn registration_is_repeatable_and_lists_the_registry() {
        let first = registration();
        assert_eq!(first, registration());
        assert_eq!(first.tools, tools::definitions());
        assert!(first.event_subscriptions.is_empty());
        assert_eq!(first.job_kinds, ["infra.health_scan"]);
        let pair = ("infra_deploy".to_string(), "status".to_string());
        assert!(first.indexed_fields.contains(&pair));
    }

    #[test]
    fn an_unknown_job_kind_is_refused_by_name() {
        let (ports, engine) = engine();
        let job = Job {
            id: "job-1".into(),
            session_id: "s".into(),
            kind: "infra.mystery".into(),
            payload: json!({}),
            status: JobStatus::Running,
            scheduled_at: None,
            started_at: None,
            completed_at: None,
            retries: 0,
            max_retries: 3,
            error: None,
            result: None,
            cron: None,
            created_at: Utc::now(),
            metadata: json!({}),
        };
        let error = engine.handle_job(&job).unwrap_err();
        assert!(matches!(error, EngineError::Validation(m) if m.contains("`infra.mystery`")));
        assert_eq!(ports.objects.writes(), 0);
    }

    #[test]
    fn an_unsubscribed_event_is_accepted_and_ignored() {
        let (ports, engine) = engine();
        let event = Event {
            id: "e".into(),
            session_id: None,
            run_id: None,
            source: "code".into(),
            kind: "code.pushed".into(),
            payload: json!({}),
            created_at: Utc::now(),
            metadata: json!({}),
        };
        engine.handle_event(&event).unwrap();
        assert_eq!(ports.objects.writes(), 0);
        assert!(ports.events.emitted().is_empty());
    }

    #[test]
    fn a_failing_event_port_does_not_fail_a_written_change() {
        let (ports, engine) = engine();
        ports.events.set_failing(true);
        let args = json!({
            "session_id": crate::ids::SessionId::new(),
            "title": "Disk full",
            "severity": "P2",
        });
        engine.call_tool("infra.incidents.create", &args).unwrap();
        assert_eq!(ports.objects.len(crate::incident::KIND), 1);
        let warned = ports
            .logger
            .lines()
            .iter()
            .any(|(level, _)| *level == LogLevel::Warn);
        assert!(warned);
    }
}
