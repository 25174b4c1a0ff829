//! What a check tests and how often: accepted status codes, latency limits, an optional body
//! condition, thresholds, interval and timeout; with their defaults and validation.
//!
//! Defaults (each documented choice, see the README):
//! - accepted status codes `200-399`, judged on the response after redirects;
//! - response-time limit 3000 ms; degraded threshold half the limit;
//! - failure threshold 3, success threshold 2;
//! - interval 60 s; timeout 5000 ms, or half the interval when that is shorter.
//!
//! Rules: the degraded threshold must be below the limit, and the timeout strictly shorter
//! than the interval; both are refused otherwise with a validation error naming both fields.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{EngineError, Result};

/// The default response-time limit, in milliseconds.
pub const DEFAULT_RESPONSE_LIMIT_MS: u64 = 3_000;
/// The default number of consecutive failures that make a check Down.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;
/// The default number of consecutive successes that bring a Down check back.
pub const DEFAULT_SUCCESS_THRESHOLD: u32 = 2;
/// The default probe interval, in seconds.
pub const DEFAULT_INTERVAL_SECONDS: u64 = 60;
/// The default probe timeout, in milliseconds (capped at half the interval).
pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;
/// The largest response-time limit, in milliseconds.
pub const MAX_RESPONSE_LIMIT_MS: u64 = 300_000;
/// The longest probe timeout, in milliseconds (the host caps requests at 30 s).
pub const MAX_TIMEOUT_MS: u64 = 30_000;
/// The longest interval, in seconds (one day).
pub const MAX_INTERVAL_SECONDS: u64 = 86_400;
/// The largest failure or success threshold.
pub const MAX_THRESHOLD: u32 = 100;
/// The most status entries a check accepts.
pub const MAX_STATUS_ENTRIES: usize = 20;
/// The longest body substring or JSON pointer.
pub const MAX_BODY_TEXT: usize = 1_000;

/// An inclusive range of accepted status codes; a single code is a range of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRange {
    /// The lowest accepted code.
    pub from: u16,
    /// The highest accepted code.
    pub to: u16,
}

impl StatusRange {
    /// Parses `"204"` or `"200-299"`; codes must be 100 to 599.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = || {
            EngineError::validation(format!(
                "accepted_status: `{text}` is not a status code (100-599) or a range like \
                 `200-299`"
            ))
        };
        let code = |part: &str| {
            part.trim()
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
        };
        let (from, to) = match text.split_once('-') {
            Some((from, to)) => (
                code(from).ok_or_else(invalid)?,
                code(to).ok_or_else(invalid)?,
            ),
            None => {
                let single = code(text).ok_or_else(invalid)?;
                (single, single)
            }
        };
        if from > to {
            return Err(invalid());
        }
        Ok(Self { from, to })
    }

    /// Whether `status` is in the range.
    pub fn contains(&self, status: u16) -> bool {
        (self.from..=self.to).contains(&status)
    }
}

impl std::fmt::Display for StatusRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.from == self.to {
            write!(f, "{}", self.from)
        } else {
            write!(f, "{}-{}", self.from, self.to)
        }
    }
}

/// A condition on the response body. JSON: `{"kind": "contains", "text": ...}` or
/// `{"kind": "json_pointer", "pointer": ..., "equals": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BodyCondition {
    /// The body (read as UTF-8, invalid bytes replaced) contains `text`.
    Contains {
        /// The substring, case-sensitive.
        text: String,
    },
    /// The body is JSON and the value at `pointer` (RFC 6901) equals `equals`.
    JsonPointer {
        /// For example `/status` or `/checks/0/ok`.
        pointer: String,
        /// The value expected there, compared as JSON (`"1"` is not `1`).
        equals: Value,
    },
}

/// What a check tests and how often. Stored flat in the check object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckConditions {
    /// Accepted final status codes.
    pub accepted_status: Vec<StatusRange>,
    /// A probe taking this long or longer fails, in milliseconds.
    pub response_limit_ms: u64,
    /// A passing probe taking this long or longer is Degraded; below the limit.
    pub degraded_ms: u64,
    /// The optional body condition.
    pub body_condition: Option<BodyCondition>,
    /// Consecutive failures that make the check Down.
    pub failure_threshold: u32,
    /// Consecutive successes that bring a Down check back.
    pub success_threshold: u32,
    /// Seconds between scheduled probes.
    pub interval_seconds: u64,
    /// The longest a probe waits, in milliseconds; shorter than the interval.
    pub timeout_ms: u64,
}

impl Default for CheckConditions {
    fn default() -> Self {
        CheckSettings::default()
            .resolve(None)
            .expect("the defaults are valid")
    }
}

/// Settings given when registering or updating a check; `None` keeps the current value (or
/// takes the default when registering).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckSettings {
    /// Accepted status codes.
    pub accepted_status: Option<Vec<StatusRange>>,
    /// Response-time limit.
    pub response_limit_ms: Option<u64>,
    /// Degraded threshold.
    pub degraded_ms: Option<u64>,
    /// `Some(None)` removes the body condition.
    pub body_condition: Option<Option<BodyCondition>>,
    /// Failure threshold.
    pub failure_threshold: Option<u32>,
    /// Success threshold.
    pub success_threshold: Option<u32>,
    /// Interval.
    pub interval_seconds: Option<u64>,
    /// Timeout.
    pub timeout_ms: Option<u64>,
}

impl CheckSettings {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The conditions these settings give over `current` (a registered check's conditions),
    /// or over the defaults when `current` is `None`; validated.
    pub fn resolve(&self, current: Option<&CheckConditions>) -> Result<CheckConditions> {
        let conditions = match current {
            Some(current) => CheckConditions {
                accepted_status: self
                    .accepted_status
                    .clone()
                    .unwrap_or_else(|| current.accepted_status.clone()),
                response_limit_ms: self.response_limit_ms.unwrap_or(current.response_limit_ms),
                degraded_ms: self.degraded_ms.unwrap_or(current.degraded_ms),
                body_condition: self
                    .body_condition
                    .clone()
                    .unwrap_or_else(|| current.body_condition.clone()),
                failure_threshold: self.failure_threshold.unwrap_or(current.failure_threshold),
                success_threshold: self.success_threshold.unwrap_or(current.success_threshold),
                interval_seconds: self.interval_seconds.unwrap_or(current.interval_seconds),
                timeout_ms: self.timeout_ms.unwrap_or(current.timeout_ms),
            },
            None => {
                let limit = self.response_limit_ms.unwrap_or(DEFAULT_RESPONSE_LIMIT_MS);
                let interval = self.interval_seconds.unwrap_or(DEFAULT_INTERVAL_SECONDS);
                CheckConditions {
                    accepted_status: self
                        .accepted_status
                        .clone()
                        .unwrap_or_else(|| vec![StatusRange { from: 200, to: 399 }]),
                    response_limit_ms: limit,
                    degraded_ms: self.degraded_ms.unwrap_or(limit / 2),
                    body_condition: self.body_condition.clone().flatten(),
                    failure_threshold: self.failure_threshold.unwrap_or(DEFAULT_FAILURE_THRESHOLD),
                    success_threshold: self.success_threshold.unwrap_or(DEFAULT_SUCCESS_THRESHOLD),
                    interval_seconds: interval,
                    timeout_ms: self
                        .timeout_ms
                        .unwrap_or(DEFAULT_TIMEOUT_MS.min(interval.saturating_mul(500))),
                }
            }
        };
        conditions.validate()?;
        Ok(conditions)
    }
}

impl CheckConditions {
    /// Checks every rule; the message names the fields involved.
    pub fn validate(&self) -> Result<()> {
        let invalid = |message: String| Err(EngineError::validation(message));
        if self.accepted_status.is_empty() || self.accepted_status.len() > MAX_STATUS_ENTRIES {
            return invalid(format!(
                "accepted_status: give 1 to {MAX_STATUS_ENTRIES} codes or ranges"
            ));
        }
        if !(1..=MAX_RESPONSE_LIMIT_MS).contains(&self.response_limit_ms) {
            return invalid(format!(
                "response_limit_ms: must be 1 to {MAX_RESPONSE_LIMIT_MS}, got {}",
                self.response_limit_ms
            ));
        }
        if self.degraded_ms == 0 || self.degraded_ms >= self.response_limit_ms {
            return invalid(format!(
                "degraded_ms ({}) must be at least 1 and below response_limit_ms ({})",
                self.degraded_ms, self.response_limit_ms
            ));
        }
        for (name, value) in [
            ("failure_threshold", self.failure_threshold),
            ("success_threshold", self.success_threshold),
        ] {
            if !(1..=MAX_THRESHOLD).contains(&value) {
                return invalid(format!("{name}: must be 1 to {MAX_THRESHOLD}, got {value}"));
            }
        }
        if !(1..=MAX_INTERVAL_SECONDS).contains(&self.interval_seconds) {
            return invalid(format!(
                "interval_seconds: must be 1 to {MAX_INTERVAL_SECONDS}, got {}",
                self.interval_seconds
            ));
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&self.timeout_ms) {
            return invalid(format!(
                "timeout_ms: must be 1 to {MAX_TIMEOUT_MS}, got {}",
                self.timeout_ms
            ));
        }
        if self.timeout_ms >= self.interval_seconds.saturating_mul(1000) {
            return invalid(format!(
                "timeout_ms ({}) must be shorter than interval_seconds ({} s)",
                self.timeout_ms, self.interval_seconds
            ));
        }
        match &self.body_condition {
            Some(BodyCondition::Contains { text }) if text.is_empty() => {
                invalid("body_contains: must not be empty".into())
            }
            Some(BodyCondition::JsonPointer { pointer, .. })
                if !pointer.is_empty() && !pointer.starts_with('/') =>
            {
                invalid(format!(
                    "body_json_pointer: `{pointer}` is not a JSON pointer (it must be empty or \
                     start with `/`)"
                ))
            }
            _ => Ok(()),
        }
    }

    /// Whether the final status code is accepted.
    pub fn accepts(&self, status: u16) -> bool {
        self.accepted_status
            .iter()
            .any(|range| range.contains(status))
    }

    /// The accepted codes as text, for messages: `200-399, 418`.
    pub fn accepted_text(&self) -> String {
        let parts: Vec<String> = self.accepted_status.iter().map(|r| r.to_string()).collect();
        parts.join(", ")
    }
}
