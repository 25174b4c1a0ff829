//! RUSVEL's AgentPort. The host owns the agent; a department never calls a model directly.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::PortResult;

/// How much the agent may do without asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PermissionMode {
    /// Acts without asking.
    Auto,
    /// Asks before acting.
    Supervised,
    /// Only reads.
    Locked,
}

/// The configuration of a new agent run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentConfig {
    /// Session of the run.
    pub session_id: String,
    /// Agent profile.
    pub profile: Option<String>,
    /// Model override.
    pub model: Option<String>,
    /// Tool names the agent may call.
    pub tools: Vec<String>,
    /// System instructions.
    pub instructions: Option<String>,
    /// Budget limit in US dollars.
    pub budget_limit_usd: Option<f64>,
    /// Iteration cap.
    pub max_iterations: Option<u32>,
    /// Permission mode.
    pub permission_mode: PermissionMode,
    /// Free-form metadata.
    pub metadata: Value,
}

/// One part of a message to or from the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentPart {
    /// Text.
    Text(String),
    /// An image URL or data URI.
    Image(String),
}

/// Tokens used by a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
}

/// What a run produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentOutput {
    /// The run.
    pub run_id: String,
    /// Output parts.
    pub content: Vec<ContentPart>,
    /// Tool calls made.
    pub tool_calls: u32,
    /// Tokens used.
    pub usage: TokenUsage,
    /// Estimated cost in US dollars.
    pub cost_estimate_usd: f64,
    /// Free-form metadata.
    pub metadata: Value,
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Created, not run yet.
    Idle,
    /// Running.
    Running,
    /// Waiting for a tool result.
    AwaitingTool,
    /// Waiting for a person.
    AwaitingApproval,
    /// Finished.
    Completed,
    /// Failed.
    Failed,
    /// Stopped.
    Stopped,
}

/// RUSVEL's AgentPort.
#[async_trait]
pub trait AgentPort: Send + Sync {
    /// Creates a run and returns its id.
    async fn create(&self, config: AgentConfig) -> PortResult<String>;

    /// Sends content to a run and waits for its output.
    async fn run(&self, run_id: &str, content: Vec<ContentPart>) -> PortResult<AgentOutput>;

    /// Stops a run.
    async fn stop(&self, run_id: &str) -> PortResult<()>;

    /// Reports a run's status.
    async fn status(&self, run_id: &str) -> PortResult<AgentStatus>;
}
