//! Incidents: the [`Incident`] record, its status machine and timeline, and the
//! [`IncidentManager`].
//!
//! Status machine (any other move is refused with `invalid-state` and changes nothing):
//!
//! - Open -> Investigating
//! - Investigating -> Mitigated, Investigating -> Resolved
//! - Mitigated -> Resolved, Mitigated -> Investigating (it got worse)
//! - Resolved -> Open, only through an explicit reopen
//!
//! Rules beyond the arrows:
//! - `mitigated_at` is set when the incident becomes Mitigated, and set to `resolved_at` when
//!   it is resolved straight from Investigating. It is cleared when a Mitigated incident goes
//!   back to Investigating (the earlier mitigation stays in the timeline), so it is set exactly
//!   while the incident is Mitigated or Resolved.
//! - Resolving a Resolved incident changes nothing and emits nothing.
//! - Resolved is final except for an explicit reopen, which moves the incident back to
//!   **Open** (it needs triage again) and clears `mitigated_at` and `resolved_at`; the
//!   timeline keeps the earlier times. Any other way into Open is refused.
//! - Setting the severity to its current value is not a change: nothing is written.
//! - Every status or severity change is appended to the timeline. Times only move forward:
//!   an entry is stamped with the clock, or with the last recorded time if the clock is
//!   behind it.

mod manager;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{EngineError, Result};
use crate::ids::{IncidentId, SessionId};
use crate::records::{empty_object, Record};

pub use manager::{IncidentManager, IncidentQuery, IncidentUpdate, NewIncident};

/// The object kind incidents are stored under.
pub const KIND: &str = "infra_incident";

/// How bad an incident is; P1 is the most impact. JSON: `"P1"` to `"P4"`; input is accepted
/// in any case (`"p2"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    /// Critical: a core service is down for many users.
    P1,
    /// High: a major function is impaired.
    P2,
    /// Moderate: limited impact, a workaround exists.
    P3,
    /// Low: cosmetic or minor.
    P4,
}

impl Severity {
    /// Every severity, most severe first.
    pub const ALL: [Self; 4] = [Self::P1, Self::P2, Self::P3, Self::P4];

    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::P1 => "P1",
            Self::P2 => "P2",
            Self::P3 => "P3",
            Self::P4 => "P4",
        }
    }

    /// Parses `P1`..`P4`, ignoring ASCII case.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|severity| severity.as_str().eq_ignore_ascii_case(text))
    }
}

/// Where an incident stands. JSON: `open`, `investigating`, `mitigated`, `resolved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// Reported, nobody on it yet.
    Open,
    /// Someone is working on it.
    Investigating,
    /// The impact is contained; the cause may remain.
    Mitigated,
    /// Over.
    Resolved,
}

impl IncidentStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [Self; 4] = [
        Self::Open,
        Self::Investigating,
        Self::Mitigated,
        Self::Resolved,
    ];

    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Investigating => "investigating",
            Self::Mitigated => "mitigated",
            Self::Resolved => "resolved",
        }
    }

    /// Parses the JSON spelling, ignoring ASCII case.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str().eq_ignore_ascii_case(text))
    }

    /// Whether a status update may move from `self` to `to` (reopening is separate).
    pub fn can_move_to(self, to: Self) -> bool {
        use IncidentStatus::*;
        matches!(
            (self, to),
            (Open, Investigating)
                | (Investigating, Mitigated)
                | (Investigating, Resolved)
                | (Mitigated, Resolved)
                | (Mitigated, Investigating)
        )
    }
}

/// What a timeline entry changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimelineField {
    /// The status changed.
    Status,
    /// The severity changed.
    Severity,
}

/// One entry of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// When; never earlier than the previous entry or the opening.
    pub at: DateTime<Utc>,
    /// What changed.
    pub field: TimelineField,
    /// The value before (JSON spelling).
    pub from: String,
    /// The value after (JSON spelling).
    pub to: String,
    /// Why, or what was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// An incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// The incident's id.
    pub id: IncidentId,
    /// The session that opened it.
    pub session_id: SessionId,
    /// A one-line summary.
    pub title: String,
    /// What is known.
    pub description: String,
    /// How bad it is.
    pub severity: Severity,
    /// Where it stands.
    pub status: IncidentStatus,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
    /// When the impact was contained; set while Mitigated or Resolved.
    #[serde(default)]
    pub mitigated_at: Option<DateTime<Utc>>,
    /// When it was resolved; set while Resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Every status and severity change, oldest first.
    #[serde(default)]
    pub timeline: Vec<TimelineEntry>,
    /// Free-form context.
    #[serde(default = "empty_object")]
    pub metadata: Value,
}

impl Record for Incident {
    const KIND: &'static str = KIND;

    fn id_text(&self) -> String {
        self.id.to_string()
    }

    fn session_id(&self) -> SessionId {
        self.session_id
    }
}

impl Incident {
    /// Moves to `to` if the status machine allows it, keeping the timestamps and the timeline.
    pub fn change_status(
        &mut self,
        to: IncidentStatus,
        now: DateTime<Utc>,
        note: Option<String>,
    ) -> Result<TimelineEntry> {
        if !self.status.can_move_to(to) {
            return Err(EngineError::invalid_state(
                self.status.as_str(),
                to.as_str(),
            ));
        }
        let at = self.next_at(now);
        match to {
            IncidentStatus::Mitigated => self.mitigated_at = Some(at),
            IncidentStatus::Resolved => {
                self.resolved_at = Some(at);
                self.mitigated_at.get_or_insert(at);
            }
            IncidentStatus::Investigating => self.mitigated_at = None,
            IncidentStatus::Open => {}
        }
        Ok(self.record_status(to, at, note))
    }

    /// Moves a Resolved incident back to Open; refused from any other status.
    pub fn reopen(&mut self, now: DateTime<Utc>, note: Option<String>) -> Result<TimelineEntry> {
        if self.status != IncidentStatus::Resolved {
            return Err(EngineError::invalid_state(
                self.status.as_str(),
                IncidentStatus::Open.as_str(),
            ));
        }
        let at = self.next_at(now);
        self.mitigated_at = None;
        self.resolved_at = None;
        Ok(self.record_status(IncidentStatus::Open, at, note))
    }

    /// Sets the severity; `None` when it already was `to`.
    pub fn change_severity(
        &mut self,
        to: Severity,
        now: DateTime<Utc>,
        note: Option<String>,
    ) -> Option<TimelineEntry> {
        if self.severity == to {
            return None;
        }
        let entry = TimelineEntry {
            at: self.next_at(now),
            field: TimelineField::Severity,
            from: self.severity.as_str().to_string(),
            to: to.as_str().to_string(),
            note,
        };
        self.severity = to;
        self.timeline.push(entry.clone());
        Some(entry)
    }

    fn record_status(
        &mut self,
        to: IncidentStatus,
        at: DateTime<Utc>,
        note: Option<String>,
    ) -> TimelineEntry {
        let entry = TimelineEntry {
            at,
            field: TimelineField::Status,
            from: self.status.as_str().to_string(),
            to: to.as_str().to_string(),
            note,
        };
        self.status = to;
        self.timeline.push(entry.clone());
        entry
    }

    /// The time of the next entry: `now`, unless that is before the last recorded time.
    fn next_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let last = self
            .timeline
            .last()
            .map_or(self.opened_at, |entry| entry.at);
        now.max(last)
    }
}

#[cfg(test)]
mod tests;
