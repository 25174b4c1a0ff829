//! Deployments: the [`Deployment`] record, its status machine and the [`DeployManager`].
//!
//! Status machine (any other move is refused with `invalid-state` and changes nothing):
//!
//! ```text
//! Pending ──> InProgress ──> Deployed ──(rollback only)──> RolledBack
//!    │             │
//!    └──> Failed <─┘
//! ```
//!
//! A deployment is never rewritten: every status change is appended to its `history`.
//!
//! **Current version.** The current deployment of a service in an environment is the Deployed
//! one that *reached Deployed last* (latest `deployed_at`, ties broken by the later id). When
//! two rollouts overlap and finish out of order, the one that finished last is what the
//! environment runs, because its rollout replaced whatever was there; so it wins, even if it
//! was triggered first.
//!
//! **Rollback** supersedes the current deployment: it is marked RolledBack, and a *new*
//! deployment of the most recent Deployed version that landed before it (and differs from its
//! version) is recorded straight as Deployed, with `metadata.rollback_of` naming the
//! superseded deployment and `metadata.restored_from` the deployment whose version returns.
//! Repeated rollbacks therefore walk back through older versions.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::config::InfraConfig;
use crate::error::{EngineError, Result};
use crate::events;
use crate::ids::{DeploymentId, SessionId};
use crate::page::{Page, PageRequest};
use crate::ports::Ports;
use crate::records::{
    self, empty_object, push_field, session_filter, set_metadata, Record, Updated,
    MAX_WRITE_ATTEMPTS,
};

/// The object kind deployments are stored under.
pub const KIND: &str = "infra_deploy";

/// Where a deployment stands. JSON: `pending`, `in_progress`, `deployed`, `failed`,
/// `rolled_back`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployStatus {
    /// Recorded, not started.
    Pending,
    /// Rolling out.
    InProgress,
    /// Live.
    Deployed,
    /// The rollout failed.
    Failed,
    /// Superseded by a rollback.
    RolledBack,
}

impl DeployStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::InProgress,
        Self::Deployed,
        Self::Failed,
        Self::RolledBack,
    ];

    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InProgress => "in_progress",
            Self::Deployed => "deployed",
            Self::Failed => "failed",
            Self::RolledBack => "rolled_back",
        }
    }

    /// Parses the JSON spelling, ignoring ASCII case.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str().eq_ignore_ascii_case(text))
    }

    /// Whether the status machine allows moving from `self` to `to`.
    pub fn can_move_to(self, to: Self) -> bool {
        use DeployStatus::*;
        matches!(
            (self, to),
            (Pending, InProgress)
                | (InProgress, Deployed)
                | (InProgress, Failed)
                | (Pending, Failed)
                | (Deployed, RolledBack)
        )
    }
}

/// One entry of a deployment's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployStatusChange {
    /// When the change happened; never earlier than the previous entry.
    pub at: DateTime<Utc>,
    /// The status before.
    pub from: DeployStatus,
    /// The status after.
    pub to: DeployStatus,
    /// Why, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A deployment of one version of a service to one environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// The deployment's id.
    pub id: DeploymentId,
    /// The session that recorded it.
    pub session_id: SessionId,
    /// The service deployed, for example `rusvel-api`.
    pub service: String,
    /// The version deployed, for example `v0.3.0`.
    pub version: String,
    /// The target environment, for example `production`.
    pub environment: String,
    /// Where it stands.
    pub status: DeployStatus,
    /// When it became Deployed.
    pub deployed_at: Option<DateTime<Utc>>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// Every status change, oldest first.
    #[serde(default)]
    pub history: Vec<DeployStatusChange>,
    /// Free-form context (`rollback_of`, `restored_from`, `rolled_back_by`, ...).
    #[serde(default = "empty_object")]
    pub metadata: Value,
}

impl Record for Deployment {
    const KIND: &'static str = KIND;

    fn id_text(&self) -> String {
        self.id.to_string()
    }

    fn session_id(&self) -> SessionId {
        self.session_id
    }
}

impl Deployment {
    /// Moves to `to` if the status machine allows it, appending the change to the history.
    /// The change's time is `now`, or the last recorded time if the clock went backwards.
    pub fn transition(
        &mut self,
        to: DeployStatus,
        now: DateTime<Utc>,
        reason: Option<String>,
    ) -> Result<DeployStatusChange> {
        if !self.status.can_move_to(to) {
            return Err(EngineError::invalid_state(
                self.status.as_str(),
                to.as_str(),
            ));
        }
        let last = self
            .history
            .last()
            .map_or(self.created_at, |change| change.at);
        let change = DeployStatusChange {
            at: now.max(last),
            from: self.status,
            to,
            reason,
        };
        self.status = to;
        if to == DeployStatus::Deployed {
            self.deployed_at = Some(change.at);
        }
        self.history.push(change.clone());
        Ok(change)
    }

    /// The order in which deployments landed: the greatest is the current one.
    fn landed(&self) -> (Option<DateTime<Utc>>, DeploymentId) {
        (self.deployed_at, self.id)
    }
}

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

/// The result of a rollback.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollback {
    /// The superseded deployment, now RolledBack.
    pub rolled_back: Deployment,
    /// The new Deployed deployment of the restored version.
    pub deployment: Deployment,
}

/// Records deployments and drives their lifecycle.
#[derive(Clone)]
pub struct DeployManager {
    ports: Ports,
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
        let Updated::Changed(deployment, change) = updated else {
            unreachable!("a deployment transition always changes the deployment");
        };
        self.emit_change(&deployment, &change);
        Ok(deployment)
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

    /// Rolls `service` in `environment` back to the most recent earlier Deployed version, as
    /// described in the module docs. Refused, changing nothing, when nothing is deployed or
    /// no earlier Deployed version differs from the current one.
    pub fn rollback(
        &self,
        session: SessionId,
        service: &str,
        environment: &str,
        reason: Option<String>,
    ) -> Result<Rollback> {
        let store = &*self.ports.objects;
        for _ in 0..MAX_WRITE_ATTEMPTS {
            // Work out what is live and what to restore from the store as it is now.
            let live = self.deployed(session, Some(service), Some(environment))?;
            let current = live.iter().max_by_key(|d| d.landed()).ok_or_else(|| {
                EngineError::validation(format!(
                    "cannot roll back `{service}` in `{environment}`: nothing is deployed there"
                ))
            })?;
            let target = live
                .iter()
                .filter(|d| d.version != current.version && d.landed() < current.landed())
                .max_by_key(|d| d.landed())
                .ok_or_else(|| {
                    EngineError::validation(format!(
                        "cannot roll back `{service}` in `{environment}`: no Deployed version \
                         earlier than `{}`",
                        current.version
                    ))
                })?;

            // Supersede the current deployment first, with compare-and-swap: of two
            // concurrent rollbacks only one can supersede it; the other starts over.
            let (mut superseded, version) =
                records::load_versioned::<Deployment>(store, session, &current.id.to_string())?;
            if superseded.status != DeployStatus::Deployed {
                continue;
            }
            let before = superseded.clone();
            let restored = DeploymentId::new();
            let change = superseded.transition(
                DeployStatus::RolledBack,
                self.ports.clock.now(),
                reason.clone(),
            )?;
            set_metadata(&mut superseded.metadata, "rolled_back_by", json!(restored));
            let data = serde_json::to_value(&superseded)?;
            let new_version =
                match store.put_versioned(KIND, &current.id.to_string(), &data, Some(version)) {
                    Ok(new_version) => new_version,
                    Err(error) if error.is_conflict() => continue,
                    Err(error) => return Err(error),
                };

            // Then record the restored version; if that fails, undo the supersede.
            let deployment =
                self.restored_deployment(restored, &superseded, target, change.at, &reason);
            if let Err(error) = records::insert(store, &deployment) {
                records::restore(store, &before, new_version);
                return Err(error);
            }

            self.emit_change(&superseded, &change);
            for entry in &deployment.history {
                self.emit_change(&deployment, entry);
            }
            return Ok(Rollback {
                rolled_back: superseded,
                deployment,
            });
        }
        Err(EngineError::Conflict {
            kind: KIND.to_string(),
            id: format!("{service}/{environment}"),
        })
    }

    /// The Deployed deployments of `session`, filtered in the store.
    fn deployed(
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

    /// The new deployment a rollback records: the target's version, Deployed at `at` (never
    /// before the deployments it replaces landed), with a history that walks the status
    /// machine.
    fn restored_deployment(
        &self,
        id: DeploymentId,
        superseded: &Deployment,
        target: &Deployment,
        at: DateTime<Utc>,
        reason: &Option<String>,
    ) -> Deployment {
        let at = [Some(at), superseded.deployed_at, target.deployed_at]
            .into_iter()
            .flatten()
            .max();
        let at = at.unwrap_or_else(|| self.ports.clock.now());
        let note = Some(reason.clone().unwrap_or_else(|| {
            format!("rollback of {} from {}", superseded.id, superseded.version)
        }));
        let mut metadata = Map::new();
        metadata.insert("rollback_of".into(), json!(superseded.id));
        metadata.insert("restored_from".into(), json!(target.id));
        let mut deployment = Deployment {
            id,
            session_id: superseded.session_id,
            service: target.service.clone(),
            version: target.version.clone(),
            environment: target.environment.clone(),
            status: DeployStatus::Pending,
            deployed_at: None,
            created_at: at,
            history: Vec::new(),
            metadata: Value::Object(metadata),
        };
        for to in [DeployStatus::InProgress, DeployStatus::Deployed] {
            deployment
                .transition(to, at, note.clone())
                .expect("pending -> in_progress -> deployed is allowed");
        }
        deployment
    }

    fn emit_change(&self, deployment: &Deployment, change: &DeployStatusChange) {
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

#[cfg(test)]
mod tests;
