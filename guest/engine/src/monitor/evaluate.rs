//! Judging a probe against a check's conditions, and moving the check's status.
//!
//! A probe passes only if every condition passes: a response arrived (no transport error), its
//! final status is accepted, the response time is strictly below the limit (a limit of 500 ms
//! fails at exactly 500 ms), and the body condition holds. A passing probe is `degraded` when
//! its response time is at or above the degraded threshold.
//!
//! Status moves (N = failure threshold, M = success threshold):
//! - a failing probe counts a consecutive failure; at N the check is Down. Below N the status
//!   stays where it was (a never-probed check stays unknown);
//! - a passing probe counts a consecutive success. A check that is not Down takes the probe's
//!   verdict at once (Up or Degraded); a Down check comes back only after M consecutive
//!   successes, to Up or Degraded by the last probe's latency.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::check::{BodyCondition, CheckConditions};
use super::probe::Fetched;
use super::CheckStatus;
use crate::ports::TransportError;

/// The verdict on one probe. JSON: `pass`, `degraded`, `fail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeOutcome {
    /// Every condition passed, fast enough.
    Pass,
    /// Every condition passed, but at or above the degraded threshold.
    Degraded,
    /// A condition failed, or there was no response.
    Fail,
}

impl ProbeOutcome {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Degraded => "degraded",
            Self::Fail => "fail",
        }
    }
}

/// A judged probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The outcome.
    pub outcome: ProbeOutcome,
    /// The final status code; `None` when no response arrived.
    pub status_code: Option<u16>,
    /// Why no response arrived.
    pub error: Option<TransportError>,
    /// The whole probe's duration, in milliseconds.
    pub response_ms: u64,
    /// Why it failed or is degraded; `None` when it passed.
    pub reason: Option<String>,
}

/// Judges `fetched` against `conditions`.
pub fn judge(conditions: &CheckConditions, fetched: &Fetched) -> Verdict {
    let ms = fetched.response_ms;
    let verdict = |outcome, status_code, error, reason| Verdict {
        outcome,
        status_code,
        error,
        response_ms: ms,
        reason,
    };
    let response = match &fetched.result {
        Ok(response) => response,
        Err(error) => {
            let reason = format!("{}: {}", error.category.as_str(), error.message);
            return verdict(ProbeOutcome::Fail, None, Some(error.clone()), Some(reason));
        }
    };
    let status = Some(response.status);
    let fail = |reason: String| verdict(ProbeOutcome::Fail, status, None, Some(reason));
    if !conditions.accepts(response.status) {
        return fail(format!(
            "status {} is not accepted ({})",
            response.status,
            conditions.accepted_text()
        ));
    }
    if ms >= conditions.response_limit_ms {
        return fail(format!(
            "response time {ms} ms reached the limit of {} ms",
            conditions.response_limit_ms
        ));
    }
    if let Some(condition) = &conditions.body_condition {
        if let Err(reason) = check_body(condition, &response.body, response.body_truncated) {
            return fail(reason);
        }
    }
    if ms >= conditions.degraded_ms {
        let reason = format!(
            "response time {ms} ms is at or above the degraded threshold of {} ms",
            conditions.degraded_ms
        );
        return verdict(ProbeOutcome::Degraded, status, None, Some(reason));
    }
    verdict(ProbeOutcome::Pass, status, None, None)
}

/// Checks the body condition; the error says why it failed.
fn check_body(condition: &BodyCondition, body: &[u8], truncated: bool) -> Result<(), String> {
    match condition {
        BodyCondition::Contains { text } => {
            if String::from_utf8_lossy(body).contains(text.as_str()) {
                Ok(())
            } else if truncated {
                Err(format!(
                    "the first {} bytes of the body do not contain `{text}`",
                    body.len()
                ))
            } else {
                Err(format!("the body does not contain `{text}`"))
            }
        }
        BodyCondition::JsonPointer { pointer, equals } => {
            if truncated {
                return Err(format!(
                    "the body is larger than {} bytes and was not parsed as JSON",
                    body.len()
                ));
            }
            let document: Value = serde_json::from_slice(body)
                .map_err(|error| format!("the body is not JSON: {error}"))?;
            match document.pointer(pointer) {
                Some(found) if found == equals => Ok(()),
                Some(found) => Err(format!("the body's `{pointer}` is {found}, not {equals}")),
                None => Err(format!("the body has no `{pointer}`")),
            }
        }
    }
}

/// A check's status and consecutive counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckState {
    /// The status; `None` until it is known.
    pub status: Option<CheckStatus>,
    /// Consecutive failing probes.
    pub consecutive_failures: u32,
    /// Consecutive passing (or degraded) probes.
    pub consecutive_successes: u32,
}

/// The state after a probe with `outcome`, under the thresholds of `conditions`.
pub fn next_state(
    state: CheckState,
    outcome: ProbeOutcome,
    conditions: &CheckConditions,
) -> CheckState {
    match outcome {
        ProbeOutcome::Fail => {
            let failures = state.consecutive_failures.saturating_add(1);
            let status = if failures >= conditions.failure_threshold {
                Some(CheckStatus::Down)
            } else {
                state.status
            };
            CheckState {
                status,
                consecutive_failures: failures,
                consecutive_successes: 0,
            }
        }
        ProbeOutcome::Pass | ProbeOutcome::Degraded => {
            let successes = state.consecutive_successes.saturating_add(1);
            let verdict = if outcome == ProbeOutcome::Pass {
                CheckStatus::Up
            } else {
                CheckStatus::Degraded
            };
            let status = match state.status {
                Some(CheckStatus::Down) if successes < conditions.success_threshold => {
                    Some(CheckStatus::Down)
                }
                _ => Some(verdict),
            };
            CheckState {
                status,
                consecutive_failures: 0,
                consecutive_successes: successes,
            }
        }
    }
}
