//! Rollback: supersede the current deployment of a service in an environment and restore the
//! most recent earlier Deployed version as a new deployment.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::{DeployManager, DeployStatus, Deployment, KIND};
use crate::error::{EngineError, Result};
use crate::ids::{DeploymentId, SessionId};
use crate::records::{self, set_metadata, MAX_WRITE_ATTEMPTS};

/// The result of a rollback.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollback {
    /// The superseded deployment, now RolledBack.
    pub rolled_back: Deployment,
    /// The new Deployed deployment of the restored version.
    pub deployment: Deployment,
}

impl DeployManager {
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
            let note = reason.clone().unwrap_or_else(|| {
                format!("rolled back to {} by deployment {restored}", target.version)
            });
            let now = self.ports.clock.now();
            let change = superseded.transition(DeployStatus::RolledBack, now, Some(note))?;
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
                self.restored_deployment(restored, &superseded, target, change.at, &reason)?;
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
    ) -> Result<Deployment> {
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
            deployment.transition(to, at, note.clone())?;
        }
        Ok(deployment)
    }
}

#[cfg(test)]
mod tests;
