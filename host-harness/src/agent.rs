//! The scripted agent: an [`AgentPort`] that replays responses from a file, for tests and
//! demos, and answers "no model is configured" when it has no script.
//!
//! # Script format
//!
//! A file holding either a JSON array or JSON lines (one value per non-empty line; lines
//! starting with `#` are comments). Each value is one response, served in order across all
//! runs; once the script is used up, the last response repeats. A response is either
//!
//! - a string: the text the agent answers, or
//! - an object: `{"text": "...", "content": [{"text": "..."}, {"image": "url"}],
//!   "tool_calls": 0, "usage": {"input_tokens": 0, "output_tokens": 0},
//!   "cost_estimate_usd": 0.0, "metadata": {}, "error": "..."}`; every key is optional,
//!   `text` is shorthand for a one-part `content`, and `error` makes the run fail with an
//!   agent error carrying that message.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use crate::clock;
use crate::ports::{
    AgentConfig, AgentOutput, AgentPort, AgentStatus, ContentPart, PortError, PortResult,
    TokenUsage,
};

/// The answer of an agent with no script.
pub const NO_MODEL_REPLY: &str = "no model is configured";

/// One scripted response.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScriptedResponse {
    /// Shorthand for a one-part text content.
    #[serde(default)]
    pub text: Option<String>,
    /// Output parts, as `{"text": ".."}` or `{"image": ".."}`.
    #[serde(default)]
    pub content: Vec<ContentPart>,
    /// Tool calls to report.
    #[serde(default)]
    pub tool_calls: u32,
    /// Token usage to report.
    #[serde(default)]
    pub usage: TokenUsage,
    /// Cost to report.
    #[serde(default)]
    pub cost_estimate_usd: f64,
    /// Metadata to report.
    #[serde(default)]
    pub metadata: Option<Value>,
    /// Makes the run fail with this agent error.
    #[serde(default)]
    pub error: Option<String>,
}

/// An [`AgentPort`] that replays a script; runs are tracked in memory.
#[derive(Debug, Default)]
pub struct ScriptedAgent {
    script: Vec<ScriptedResponse>,
    state: Mutex<AgentState>,
}

#[derive(Debug, Default)]
struct AgentState {
    next: usize,
    runs: HashMap<String, AgentStatus>,
}

impl ScriptedAgent {
    /// An agent with no script: every run answers [`NO_MODEL_REPLY`].
    pub fn unconfigured() -> ScriptedAgent {
        ScriptedAgent::default()
    }

    /// An agent replaying `script`.
    pub fn new(script: Vec<ScriptedResponse>) -> ScriptedAgent {
        ScriptedAgent {
            script,
            state: Mutex::default(),
        }
    }

    /// Reads a script file (a JSON array or JSON lines; see the module docs).
    pub fn from_file(path: &Path) -> PortResult<ScriptedAgent> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            PortError::Config(format!(
                "cannot read agent script {}: {error}",
                path.display()
            ))
        })?;
        let script = parse_script(&text).map_err(|error| {
            PortError::Config(format!("agent script {}: {error}", path.display()))
        })?;
        Ok(ScriptedAgent::new(script))
    }

    fn set_status(&self, run_id: &str, status: AgentStatus) -> PortResult<()> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match state.runs.get_mut(run_id) {
            Some(current) => {
                *current = status;
                Ok(())
            }
            None => Err(PortError::NotFound {
                kind: "agent_run".into(),
                id: run_id.into(),
            }),
        }
    }
}

/// Parses a script: a JSON array, or JSON lines.
pub fn parse_script(text: &str) -> Result<Vec<ScriptedResponse>, String> {
    let values: Vec<Value> = if text.trim_start().starts_with('[') {
        serde_json::from_str(text).map_err(|error| error.to_string())?
    } else {
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
            .map(|(number, line)| {
                serde_json::from_str(line).map_err(|error| format!("line {}: {error}", number + 1))
            })
            .collect::<Result<_, _>>()?
    };
    values
        .into_iter()
        .enumerate()
        .map(|(index, value)| match value {
            Value::String(text) => Ok(ScriptedResponse {
                text: Some(text),
                ..Default::default()
            }),
            other => serde_json::from_value(other)
                .map_err(|error| format!("response {}: {error}", index + 1)),
        })
        .collect()
}

#[async_trait]
impl AgentPort for ScriptedAgent {
    async fn create(&self, _config: AgentConfig) -> PortResult<String> {
        let id = clock::new_id();
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.runs.insert(id.clone(), AgentStatus::Idle);
        Ok(id)
    }

    async fn run(&self, run_id: &str, _content: Vec<ContentPart>) -> PortResult<AgentOutput> {
        let response = {
            let mut state = self
                .state
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match state.runs.get(run_id) {
                None => {
                    return Err(PortError::NotFound {
                        kind: "agent_run".into(),
                        id: run_id.into(),
                    })
                }
                Some(AgentStatus::Stopped) => {
                    return Err(PortError::InvalidState {
                        from: "stopped".into(),
                        to: "running".into(),
                    })
                }
                Some(_) => {}
            }
            let index = state.next.min(self.script.len().saturating_sub(1));
            state.next += 1;
            self.script.get(index).cloned()
        };

        let Some(response) = response else {
            self.set_status(run_id, AgentStatus::Completed)?;
            return Ok(output(
                run_id,
                ScriptedResponse {
                    text: Some(NO_MODEL_REPLY.into()),
                    ..Default::default()
                },
            ));
        };
        if let Some(message) = &response.error {
            self.set_status(run_id, AgentStatus::Failed)?;
            return Err(PortError::Agent(message.clone()));
        }
        self.set_status(run_id, AgentStatus::Completed)?;
        Ok(output(run_id, response))
    }

    async fn stop(&self, run_id: &str) -> PortResult<()> {
        self.set_status(run_id, AgentStatus::Stopped)
    }

    async fn status(&self, run_id: &str) -> PortResult<AgentStatus> {
        let state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state
            .runs
            .get(run_id)
            .copied()
            .ok_or_else(|| PortError::NotFound {
                kind: "agent_run".into(),
                id: run_id.into(),
            })
    }
}

fn output(run_id: &str, response: ScriptedResponse) -> AgentOutput {
    let mut content = Vec::new();
    if let Some(text) = response.text {
        content.push(ContentPart::Text(text));
    }
    content.extend(response.content);
    AgentOutput {
        run_id: run_id.to_string(),
        content,
        tool_calls: response.tool_calls,
        usage: response.usage,
        cost_estimate_usd: response.cost_estimate_usd,
        metadata: response
            .metadata
            .unwrap_or_else(|| Value::Object(Default::default())),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ports::PermissionMode;

    fn config() -> AgentConfig {
        AgentConfig {
            session_id: "s".into(),
            profile: None,
            model: None,
            tools: vec![],
            instructions: None,
            budget_limit_usd: None,
            max_iterations: None,
            permission_mode: PermissionMode::Auto,
            metadata: json!({}),
        }
    }

    #[tokio::test]
    async fn without_a_script_the_agent_says_no_model_is_configured() {
        let agent = ScriptedAgent::unconfigured();
        let run = agent.create(config()).await.unwrap();
        let output = agent
            .run(&run, vec![ContentPart::Text("hi".into())])
            .await
            .unwrap();
        assert_eq!(output.content, [ContentPart::Text(NO_MODEL_REPLY.into())]);
        assert_eq!(agent.status(&run).await.unwrap(), AgentStatus::Completed);
    }

    #[tokio::test]
    async fn responses_replay_in_order_and_the_last_repeats() {
        let script =
            parse_script("\"one\"\n# comment\n{\"text\": \"two\", \"tool_calls\": 2}\n").unwrap();
        let agent = ScriptedAgent::new(script);
        let run = agent.create(config()).await.unwrap();
        let texts: Vec<_> = [
            agent.run(&run, vec![]).await.unwrap(),
            agent.run(&run, vec![]).await.unwrap(),
            agent.run(&run, vec![]).await.unwrap(),
        ]
        .into_iter()
        .map(|output| (output.content, output.tool_calls))
        .collect();
        assert_eq!(texts[0], (vec![ContentPart::Text("one".into())], 0));
        assert_eq!(texts[2], (vec![ContentPart::Text("two".into())], 2));
    }

    #[tokio::test]
    async fn a_scripted_error_fails_the_run_and_a_stopped_run_refuses_work() {
        let agent = ScriptedAgent::new(parse_script(r#"[{"error": "model down"}]"#).unwrap());
        let run = agent.create(config()).await.unwrap();
        assert_eq!(
            agent.run(&run, vec![]).await,
            Err(PortError::Agent("model down".into()))
        );
        assert_eq!(agent.status(&run).await.unwrap(), AgentStatus::Failed);
        agent.stop(&run).await.unwrap();
        assert!(matches!(
            agent.run(&run, vec![]).await,
            Err(PortError::InvalidState { .. })
        ));
        assert!(matches!(
            agent.status("nope").await,
            Err(PortError::NotFound { .. })
        ));
    }
}
