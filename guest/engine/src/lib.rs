//! The Infra department of RUSVEL: deployment tracking, health monitoring and incident
//! management, as plain Rust over small port traits.
//!
//! The engine knows nothing about WebAssembly. It is written against the traits in [`ports`]
//! (object store, event sink, job queue, clock, log), which the `dept-infra` component
//! implements over the department contract's WIT imports, and which the `memory` module
//! (feature `memory-ports`) implements in memory for tests and native benchmarks.
//!
//! - [`deploy`]: deployments, their status machine, current version and rollback.
//! - [`monitor`]: health checks and their status summary.
//! - [`incident`]: incidents, their status machine, severity and timeline.
//! - [`tools`]: the agent tools (schemas and handlers) in one registry.
//! - [`manifest`]: the department manifest, built from the same registry.
//! - [`events`]: the event kinds the department emits.
//!
//! Objects are stored under the kinds `infra_deploy`, `infra_healthcheck` and
//! `infra_incident`, each carrying the `session_id` that scopes it: an object of another
//! session is reported as not found. Ids are UUIDv7; times are UTC.

#![warn(missing_docs)]

pub mod config;
pub mod deploy;
pub mod engine;
pub mod error;
pub mod events;
pub mod ids;
pub mod incident;
pub mod manifest;
#[cfg(any(test, feature = "memory-ports"))]
pub mod memory;
pub mod monitor;
pub mod page;
pub mod ports;
pub mod records;
#[cfg(test)]
mod testing;
pub mod tools;

pub use config::InfraConfig;
pub use engine::{registration, InfraEngine, JobOutcome, Registration};
pub use error::{EngineError, Result};
pub use ports::Ports;
pub use tools::ToolOutput;
