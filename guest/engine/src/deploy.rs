//! Deployments: the [`Deployment`] record, its status machine and the [`DeployManager`].
//!
//! Status machine (any other move is refused with `invalid-state` and changes nothing):
//!
//! - Pending -> InProgress, Pending -> Failed
//! - InProgress -> Deployed, InProgress -> Failed
//! - Deployed -> RolledBack, only through a rollback
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

mod manager;
mod rollback;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{EngineError, Result};
use crate::ids::{DeploymentId, SessionId};
use crate::records::{empty_object, Record};

pub use manager::{DeployManager, DeploymentQuery, NewDeployment};
pub use rollback::Rollback;
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

#[cfg(test)]
mod tests;
