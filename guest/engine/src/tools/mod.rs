//! The department's agent tools: one registry that both the manifest and registration read,
//! and the dispatcher that checks arguments and runs a tool.
//!
//! A tool returns `Ok(ToolOutput)` with JSON text as `content` when it did its work, and an
//! [`EngineError`] when it did not; the component maps the error onto the contract's error
//! variant. Arguments are checked against the tool's schema first, so a rejected call stores
//! nothing and emits nothing.

mod args;
mod deploy;
mod incidents;
mod monitor;
pub mod schema;

use serde::Serialize;
use serde_json::{json, Value};

pub use args::Args;

use crate::engine::InfraEngine;
use crate::error::{EngineError, Result};
use crate::manifest::ToolDefinition;

/// What a tool call produced, as RUSVEL's `ToolOutput`.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    /// What the agent reads: JSON text.
    pub content: String,
    /// Whether the content reports a failure.
    pub is_error: bool,
    /// For the UI.
    pub metadata: Value,
}

impl ToolOutput {
    /// A successful output with `content` serialized as JSON.
    pub fn json(content: &impl Serialize, metadata: Value) -> Result<Self> {
        Ok(Self {
            content: serde_json::to_string(content)?,
            is_error: false,
            metadata,
        })
    }

    /// The content parsed back as JSON.
    pub fn content_json(&self) -> Result<Value> {
        Ok(serde_json::from_str(&self.content)?)
    }
}

/// One agent tool: its name, what it does, its parameters and its handler.
pub struct Tool {
    /// Namespaced name, for example `infra.deploy.trigger`.
    pub name: &'static str,
    /// What the tool does, for the agent.
    pub description: &'static str,
    schema: fn() -> Value,
    handler: fn(&InfraEngine, &Args) -> Result<ToolOutput>,
}

impl Tool {
    /// The JSON Schema of the tool's arguments.
    pub fn parameters_schema(&self) -> Value {
        (self.schema)()
    }

    /// The tool as the manifest and registration list it.
    pub fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: self.name.to_string(),
            description: self.description.to_string(),
            parameters_schema: self.parameters_schema(),
        }
    }
}

/// Every tool of the department, deployments first, then monitoring, then incidents.
pub fn registry() -> impl Iterator<Item = &'static Tool> {
    deploy::TOOLS
        .iter()
        .chain(monitor::TOOLS)
        .chain(incidents::TOOLS)
}

/// The definitions of every tool, in registry order.
pub fn definitions() -> Vec<ToolDefinition> {
    registry().map(Tool::definition).collect()
}

/// Looks a tool up by name.
pub fn find(name: &str) -> Option<&'static Tool> {
    registry().find(|tool| tool.name == name)
}

/// Checks `args` against the tool's schema and runs it.
pub fn call(engine: &InfraEngine, name: &str, args: &Value) -> Result<ToolOutput> {
    let tool = find(name).ok_or_else(|| EngineError::not_found("tool", name))?;
    let schema = tool.parameters_schema();
    let args = Args::check(tool.name, &schema, args)?;
    (tool.handler)(engine, &args)
}

/// UI metadata naming the object a tool returned.
fn object_metadata(kind: &str, id: impl Serialize) -> Value {
    json!({ "object_kind": kind, "object_id": id })
}

/// UI metadata of a list.
fn list_metadata(kind: &str, count: usize, total: u64) -> Value {
    json!({ "object_kind": kind, "count": count, "total": total })
}

#[cfg(test)]
mod tests;
