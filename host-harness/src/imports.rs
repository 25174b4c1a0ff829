//! The WIT imports of a plugin, implemented by delegating to the host's ports.
//!
//! Every import first checks the store's mode (all refuse while `manifest()` runs), then
//! the plugin's capabilities (its own kinds only, size caps), then calls the port. Refusals
//! are logged at `warn` with the plugin id, because they mean a plugin overstepped.

use crate::bindings::rusvel::department::{agent, events, jobs, log, manifest, storage, types};
use crate::capability::{self, MAX_EVENT_PAYLOAD, MAX_OBJECT};
use crate::convert::{self, parse_json};
use crate::delivery::Delivery;
use crate::ports::{self, PortError};
use crate::sandbox::{ImportMode, PluginState};

type WitResult<T> = Result<T, types::Error>;

/// The message of every import refused while the manifest is read.
pub const MANIFEST_REFUSAL: &str = "imports are not available while the manifest is read";

impl PluginState {
    /// Refuses imports while the manifest is read.
    fn check_active(&self, import: &str) -> Result<(), PortError> {
        match self.mode {
            ImportMode::Active => Ok(()),
            ImportMode::Manifest => {
                tracing::warn!(plugin = %self.plugin_id, import, "import called from manifest()");
                Err(PortError::Unauthorized(MANIFEST_REFUSAL.into()))
            }
        }
    }

    /// Logs a refusal at `warn`; the caller still returns the error to the guest.
    fn refused(&self, import: &str, error: PortError) -> PortError {
        if matches!(
            error,
            PortError::Unauthorized(_) | PortError::LimitExceeded(_)
        ) {
            tracing::warn!(plugin = %self.plugin_id, import, %error, "plugin import refused");
        }
        error
    }

    fn object_access(&self, import: &str, kind: &str) -> Result<(), PortError> {
        self.check_active(import)?;
        capability::check_object_kind(&self.plugin_id, kind).map_err(|e| self.refused(import, e))
    }

    fn object_document(&self, import: &str, data: &str) -> Result<serde_json::Value, PortError> {
        capability::check_size("stored object", data.len(), MAX_OBJECT)
            .map_err(|e| self.refused(import, e))?;
        parse_json("object data", data)
    }

    /// Checks a job id belongs to this plugin.
    async fn own_job(&mut self, import: &str, id: &str) -> Result<(), PortError> {
        self.check_active(import)?;
        match self.ports.jobs.get(id).await? {
            None => Err(PortError::NotFound {
                kind: "job".into(),
                id: id.into(),
            }),
            Some(job) if job.owner == self.plugin_id => Ok(()),
            Some(job) => Err(self.refused(
                import,
                PortError::Unauthorized(format!(
                    "job {id} belongs to department `{}`, not `{}`",
                    job.owner, self.plugin_id
                )),
            )),
        }
    }

    /// Queues the delivery of a freshly emitted event to subscribed plugins.
    fn queue_delivery(&self, event_id: &str, kind: &str) {
        let Some(deliveries) = &self.deliveries else {
            return;
        };
        let delivery = Delivery {
            event_id: event_id.to_string(),
            kind: kind.to_string(),
            depth: self.event_depth + 1,
        };
        if !deliveries.send(&delivery) {
            tracing::warn!(
                plugin = %self.plugin_id,
                event = event_id,
                "event delivery queue full or closed; the event is stored but not delivered"
            );
        }
    }
}

impl types::Host for PluginState {}

impl manifest::Host for PluginState {}

impl storage::Host for PluginState {
    async fn put(&mut self, kind: String, id: String, data: String) -> WitResult<()> {
        self.object_access("storage.put", &kind)?;
        let data = self.object_document("storage.put", &data)?;
        Ok(self.ports.objects.put(&kind, &id, &data).await?)
    }

    async fn get(&mut self, kind: String, id: String) -> WitResult<Option<String>> {
        self.object_access("storage.get", &kind)?;
        Ok(self.ports.objects.get_text(&kind, &id).await?)
    }

    async fn delete(&mut self, kind: String, id: String) -> WitResult<()> {
        self.object_access("storage.delete", &kind)?;
        Ok(self.ports.objects.delete(&kind, &id).await?)
    }

    async fn list(
        &mut self,
        kind: String,
        filter: storage::ObjectFilter,
    ) -> WitResult<Vec<String>> {
        self.object_access("storage.list", &kind)?;
        Ok(self
            .ports
            .objects
            .list_text(&kind, &convert::object_filter(filter))
            .await?)
    }

    async fn count(&mut self, kind: String, filter: storage::ObjectFilter) -> WitResult<u64> {
        self.object_access("storage.count", &kind)?;
        Ok(self
            .ports
            .objects
            .count(&kind, &convert::object_filter(filter))
            .await?)
    }

    async fn get_versioned(
        &mut self,
        kind: String,
        id: String,
    ) -> WitResult<Option<storage::VersionedObject>> {
        self.object_access("storage.get-versioned", &kind)?;
        let object = self.ports.objects.get_versioned(&kind, &id).await?;
        Ok(object.map(convert::versioned_object))
    }

    async fn put_versioned(
        &mut self,
        kind: String,
        id: String,
        data: String,
        expected: Option<u64>,
    ) -> WitResult<u64> {
        self.object_access("storage.put-versioned", &kind)?;
        let data = self.object_document("storage.put-versioned", &data)?;
        Ok(self
            .ports
            .objects
            .put_versioned(&kind, &id, &data, expected)
            .await?)
    }
}

impl events::Host for PluginState {
    async fn emit(&mut self, event: events::NewEvent) -> WitResult<String> {
        self.check_active("events.emit")?;
        capability::check_event_kind(&self.plugin_id, &event.kind)
            .map_err(|e| self.refused("events.emit", e))?;
        capability::check_size("event payload", event.payload.len(), MAX_EVENT_PAYLOAD)
            .map_err(|e| self.refused("events.emit", e))?;
        let new_event = ports::NewEvent {
            session_id: event.session_id,
            run_id: event.run_id,
            // The host, not the plugin, says where an event came from.
            source: self.plugin_id.clone(),
            kind: event.kind.clone(),
            payload: parse_json("event payload", &event.payload)?,
            metadata: parse_json("event metadata", &event.metadata)?,
        };
        let id = self.ports.events.emit(new_event).await?;
        self.queue_delivery(&id, &event.kind);
        Ok(id)
    }

    async fn get(&mut self, id: String) -> WitResult<Option<events::Event>> {
        self.check_active("events.get")?;
        Ok(self.ports.events.get(&id).await?.map(convert::event))
    }

    async fn query(&mut self, filter: events::EventFilter) -> WitResult<Vec<events::Event>> {
        self.check_active("events.query")?;
        let events = self
            .ports
            .events
            .query(&convert::event_filter(filter))
            .await?;
        Ok(events.into_iter().map(convert::event).collect())
    }
}

impl agent::Host for PluginState {
    async fn create(&mut self, config: agent::AgentConfig) -> WitResult<String> {
        self.check_active("agent.create")?;
        Ok(self
            .ports
            .agent
            .create(convert::agent_config(config)?)
            .await?)
    }

    async fn run(
        &mut self,
        run_id: String,
        content: Vec<agent::ContentPart>,
    ) -> WitResult<agent::AgentOutput> {
        self.check_active("agent.run")?;
        let content = content.into_iter().map(convert::content_part).collect();
        Ok(convert::agent_output(
            self.ports.agent.run(&run_id, content).await?,
        ))
    }

    async fn stop(&mut self, run_id: String) -> WitResult<()> {
        self.check_active("agent.stop")?;
        Ok(self.ports.agent.stop(&run_id).await?)
    }

    async fn status(&mut self, run_id: String) -> WitResult<agent::AgentStatus> {
        self.check_active("agent.status")?;
        Ok(convert::agent_status(
            self.ports.agent.status(&run_id).await?,
        ))
    }
}

impl jobs::Host for PluginState {
    async fn enqueue(&mut self, job: jobs::NewJob) -> WitResult<String> {
        self.check_active("jobs.enqueue")?;
        capability::check_job_kind(&self.plugin_id, &job.kind)
            .map_err(|e| self.refused("jobs.enqueue", e))?;
        Ok(self
            .ports
            .jobs
            .enqueue(convert::new_job(job, &self.plugin_id)?)
            .await?)
    }

    async fn schedule(&mut self, job: jobs::NewJob, cron: String) -> WitResult<String> {
        self.check_active("jobs.schedule")?;
        capability::check_job_kind(&self.plugin_id, &job.kind)
            .map_err(|e| self.refused("jobs.schedule", e))?;
        Ok(self
            .ports
            .jobs
            .schedule(convert::new_job(job, &self.plugin_id)?, &cron)
            .await?)
    }

    async fn cancel(&mut self, id: String) -> WitResult<()> {
        self.own_job("jobs.cancel", &id).await?;
        Ok(self.ports.jobs.cancel(&id).await?)
    }

    async fn list(&mut self, filter: jobs::JobFilter) -> WitResult<Vec<jobs::Job>> {
        self.check_active("jobs.list")?;
        let filter = ports::JobFilter {
            session_id: filter.session_id,
            kinds: filter.kinds,
            statuses: filter
                .statuses
                .into_iter()
                .map(convert::job_status)
                .collect(),
            owner: Some(self.plugin_id.clone()),
            limit: filter.limit,
        };
        let jobs = self.ports.jobs.list(&filter).await?;
        Ok(jobs.into_iter().map(convert::job).collect())
    }

    async fn complete(&mut self, id: String, result: String) -> WitResult<()> {
        self.own_job("jobs.complete", &id).await?;
        let result = parse_json("job result", &result)?;
        Ok(self.ports.jobs.complete(&id, &result).await?)
    }

    async fn fail(&mut self, id: String, error: String) -> WitResult<()> {
        self.own_job("jobs.fail", &id).await?;
        Ok(self.ports.jobs.fail(&id, &error).await?)
    }

    async fn hold_for_approval(&mut self, id: String, result: String) -> WitResult<()> {
        self.own_job("jobs.hold-for-approval", &id).await?;
        let result = parse_json("job result", &result)?;
        Ok(self.ports.jobs.hold_for_approval(&id, &result).await?)
    }

    async fn approve(&mut self, id: String) -> WitResult<()> {
        self.own_job("jobs.approve", &id).await?;
        Ok(self.ports.jobs.approve(&id).await?)
    }
}

impl log::Host for PluginState {
    async fn log(&mut self, level: log::Level, message: String) {
        let plugin = self.plugin_id.as_str();
        match level {
            log::Level::Trace => tracing::trace!(plugin, "{message}"),
            log::Level::Debug => tracing::debug!(plugin, "{message}"),
            log::Level::Info => tracing::info!(plugin, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, "{message}"),
            log::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}
