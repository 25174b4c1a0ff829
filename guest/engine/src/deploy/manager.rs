//! [`DeployManager`]: records deployments, moves them through the status machine, and
//! answers which deployment is current.

use std::collections::BTreeMap;

use serde_json::json;

use super::{DeployStatus, DeployStatusChange, Deployment, KIND};
use crate::config::InfraConfig;
use crate::error::{EngineError, Result};
use crate::events;
use crate::ids::{DeploymentId, SessionId};
use crate::page::{Page, PageRequest};
use crate::ports::Ports;
use crate::records::{self, empty_object, push_field, session_filter, Updated};

/// What to record with [`DeployManager::record_deployment`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewDeployment {
    /// The service.
    pub service: String,
    /// The version.
    pub version: String,
    /// The target environment.
    pub environment: String,
}

/// Which deployments to list; `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeploymentQuery {
    /// Only this service.
    pub service: Option<String>,
    /// Only this environment.
    pub environment: Option<String>,
    /// Only this status.
    pub status: Option<DeployStatus>,
}

/// Records deployments and drives their lifecycle.
#[derive(Clone)]
pub struct DeployManager {
    pub(super) ports: Ports,
    config: InfraConfig,
}

impl DeployManager {
    /// A manager over `ports`.
    pub fn new(ports: Ports, config: InfraConfig) -> Self {
        Self { ports, config }
    }

    /// Records a Pending deployment. Emits nothing: events start with the rollout.
    pub fn record_deployment(&self, session: SessionId, new: NewDeployment) -> Result<Deployment> {
        if !self.config.allows_environment(&new.environment) {
            return Err(EngineError::validation(format!(
                "environment: `{}` is not one of the configured environments ({})",
                new.environment,
                self.config.environments.join(", ")
            )));
        }
        let deployment = Deployment {
            id: DeploymentId::new(),
            session_id: session,
            service: new.service,
            version: new.version,
            environment: new.environment,
            status: DeployStatus::Pending,
            deployed_at: None,
            created_at: self.ports.clock.now(),
            history: Vec::new(),
            metadata: empty_object(),
        };
        records::insert(&*self.ports.objects, &deployment)?;
        Ok(deployment)
    }

    /// Reads one deployment of `session`.
    pub fn get_deployment(&self, session: SessionId, id: DeploymentId) -> Result<Deployment> {
        records::load(&*self.ports.objects, session, &id.to_string())
    }

    /// Lists deployments of `session`, newest first, filtered in the store.
    pub fn list_deployments(
        &self,
        session: SessionId,
        query: &DeploymentQuery,
        page: PageRequest,
    ) -> Result<Page<Deployment>> {
        let mut filter = session_filter(session);
        push_field(&mut filter, "service", query.service.as_deref());
        push_field(&mut filter, "environment", query.environment.as_deref());
        push_field(
            &mut filter,
            "status",
            query.status.map(DeployStatus::as_str),
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

    /// Moves a deployment to `to` (InProgress, Deployed or Failed) and emits the matching
    /// event. RolledBack is reached only through [`Self::rollback`].
    pub fn update_status(
        &self,
        session: SessionId,
        id: DeploymentId,
        to: DeployStatus,
        reason: Option<String>,
    ) -> Result<Deployment> {
        let updated = records::update(
            &*self.ports.objects,
            session,
            &id.to_string(),
            |d: &mut Deployment| {
                if to == DeployStatus::RolledBack {
                    return Err(EngineError::invalid_state(d.status.as_str(), to.as_str()));
                }
                d.transition(to, self.ports.clock.now(), reason.clone())
                    .map(Some)
            },
        )?;
        match updated {
            Updated::Changed(deployment, change) => {
                self.emit_change(&deployment, &change);
                Ok(deployment)
            }
            Updated::Unchanged(deployment) => Ok(deployment),
        }
    }

    /// The current deployment of `service` in `environment`: the Deployed one that reached
    /// Deployed last. `None` when nothing is deployed there.
    pub fn current(
        &self,
        session: SessionId,
        service: &str,
        environment: &str,
    ) -> Result<Option<Deployment>> {
        let live = self.deployed(session, Some(service), Some(environment))?;
        Ok(live.into_iter().max_by_key(Deployment::landed))
    }

    /// The current deployment of every service and environment of `session` (optionally one
    /// service or one environment), ordered by service, then environment.
    pub fn current_all(
        &self,
        session: SessionId,
        service: Option<&str>,
        environment: Option<&str>,
    ) -> Result<Vec<Deployment>> {
        let mut current: BTreeMap<(String, String), Deployment> = BTreeMap::new();
        for deployment in self.deployed(session, service, environment)? {
            let key = (deployment.service.clone(), deployment.environment.clone());
            match current.get(&key) {
                Some(known) if known.landed() >= deployment.landed() => {}
                _ => {
                    current.insert(key, deployment);
                }
            }
        }
        Ok(current.into_values().collect())
    }
    /// The Deployed deployments of `session`, filtered in the store.
    pub(super) fn deployed(
        &self,
        session: SessionId,
        service: Option<&str>,
        environment: Option<&str>,
    ) -> Result<Vec<Deployment>> {
        let mut filter = session_filter(session);
        push_field(&mut filter, "status", Some(DeployStatus::Deployed.as_str()));
        push_field(&mut filter, "service", service);
        push_field(&mut filter, "environment", environment);
        records::list_all(&*self.ports.objects, &filter)
    }
    pub(super) fn emit_change(&self, deployment: &Deployment, change: &DeployStatusChange) {
        let kind = match change.to {
            DeployStatus::Pending => return,
            DeployStatus::InProgress => events::DEPLOY_STARTED,
            DeployStatus::Deployed => events::DEPLOY_COMPLETED,
            DeployStatus::Failed => events::DEPLOY_FAILED,
            DeployStatus::RolledBack => events::DEPLOY_ROLLED_BACK,
        };
        let payload = json!({
            "deployment_id": deployment.id,
            "session_id": deployment.session_id,
            "service": deployment.service,
            "version": deployment.version,
            "environment": deployment.environment,
            "from": change.from,
            "status": change.to,
            "at": change.at,
            "reason": change.reason,
            "deployed_at": deployment.deployed_at,
            "metadata": deployment.metadata,
        });
        events::emit(
            &self.ports,
            deployment.session_id.to_string(),
            kind,
            payload,
        );
    }
}
