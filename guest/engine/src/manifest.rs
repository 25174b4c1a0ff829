//! The department manifest: what a host reads before registration, for dependency ordering,
//! capability indexing and UI rendering. Building it is pure: it reads only constants and the
//! tool registry, and touches no port.
//!
//! The structs mirror the `manifest` interface of the department contract field for field.

use serde_json::Value;

use crate::config::InfraConfig;
use crate::events;
use crate::tools;

/// The department's id; its object kinds start with `infra_` and its events with `infra.`.
pub const DEPARTMENT_ID: &str = "infra";

/// The department's one-line description.
pub const DESCRIPTION: &str =
    "CI/CD pipelines, deployments, monitoring, incident response, performance, cost analysis.";

/// The system prompt of the department's agents.
pub const SYSTEM_PROMPT: &str = "You are the Infrastructure department of RUSVEL.\n\n\
     Focus: CI/CD pipelines, deployments, monitoring, incident response, performance, cost \
     analysis.";

/// A canned prompt offered in the department's chat.
#[derive(Debug, Clone, PartialEq)]
pub struct QuickAction {
    /// The button label.
    pub label: String,
    /// The prompt sent.
    pub prompt: String,
}

/// An HTTP route the department contributes.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteContribution {
    /// HTTP method.
    pub method: String,
    /// Path under the host's API.
    pub path: String,
    /// What it serves.
    pub description: String,
}

/// One argument of a CLI command.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandArg {
    /// Argument name (the tool parameter it fills).
    pub name: String,
    /// What it means.
    pub description: String,
    /// Whether it must be given.
    pub required: bool,
    /// The value used when it is not given.
    pub default: Option<String>,
}

/// A CLI command the department contributes.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandContribution {
    /// `rusvel infra <name>`.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Its arguments.
    pub args: Vec<CommandArg>,
    /// The tool it runs.
    pub tool: Option<String>,
}

/// A tool an agent may call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDefinition {
    /// Namespaced name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its arguments.
    pub parameters_schema: Value,
}

/// An agent persona.
#[derive(Debug, Clone, PartialEq)]
pub struct Persona {
    /// Name.
    pub name: String,
    /// Role description.
    pub role: String,
    /// Preferred model.
    pub default_model: Option<String>,
    /// Tools it may use.
    pub allowed_tools: Vec<String>,
}

/// A reusable prompt with an `{{input}}` slot.
#[derive(Debug, Clone, PartialEq)]
pub struct Skill {
    /// Name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// The template.
    pub prompt_template: String,
}

/// A standing instruction for the department's agents.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Name.
    pub name: String,
    /// The instruction.
    pub content: String,
    /// Whether it applies.
    pub enabled: bool,
}

/// A job kind the department handles.
#[derive(Debug, Clone, PartialEq)]
pub struct JobContribution {
    /// Dotted kind.
    pub kind: String,
    /// What it does.
    pub description: String,
    /// Whether a person must approve its result.
    pub requires_approval: bool,
}

/// A dashboard card.
#[derive(Debug, Clone, PartialEq)]
pub struct DashboardCard {
    /// Title.
    pub title: String,
    /// What it shows.
    pub description: String,
    /// `small`, `medium` or `large`.
    pub size: String,
}

/// What the department adds to the UI.
#[derive(Debug, Clone, PartialEq)]
pub struct UiContribution {
    /// Tabs shown.
    pub tabs: Vec<String>,
    /// Dashboard cards.
    pub dashboard_cards: Vec<DashboardCard>,
    /// Whether it has a settings panel.
    pub has_settings: bool,
    /// Custom UI components.
    pub custom_components: Vec<String>,
}

/// A port the department needs.
#[derive(Debug, Clone, PartialEq)]
pub struct PortRequirement {
    /// `StoragePort`, `EventPort`, `AgentPort` or `JobPort`.
    pub port: String,
    /// Whether the department works without it.
    pub optional: bool,
}

/// Layered agent configuration defaults; every field optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LayeredConfig {
    /// Model.
    pub model: Option<String>,
    /// Effort level.
    pub effort: Option<String>,
    /// Budget per run, in US dollars.
    pub max_budget_usd: Option<f64>,
    /// Permission mode.
    pub permission_mode: Option<String>,
    /// Tools allowed.
    pub allowed_tools: Option<Vec<String>>,
    /// Tools refused.
    pub disallowed_tools: Option<Vec<String>>,
    /// System prompt override.
    pub system_prompt: Option<String>,
    /// Extra directories.
    pub add_dirs: Option<Vec<String>>,
    /// Turn limit.
    pub max_turns: Option<u32>,
    /// Chat mode.
    pub chat_mode: Option<String>,
}

/// The department manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct DepartmentManifest {
    /// `infra`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// One-line description.
    pub description: String,
    /// Icon glyph.
    pub icon: String,
    /// Theme color.
    pub color: String,
    /// System prompt of the department's agents.
    pub system_prompt: String,
    /// Capability tags.
    pub capabilities: Vec<String>,
    /// Chat quick actions.
    pub quick_actions: Vec<QuickAction>,
    /// HTTP routes.
    pub routes: Vec<RouteContribution>,
    /// CLI commands.
    pub commands: Vec<CommandContribution>,
    /// Agent tools (the same list registration returns).
    pub tools: Vec<ToolDefinition>,
    /// Personas.
    pub personas: Vec<Persona>,
    /// Skills.
    pub skills: Vec<Skill>,
    /// Rules.
    pub rules: Vec<Rule>,
    /// Job kinds.
    pub jobs: Vec<JobContribution>,
    /// UI contribution.
    pub ui: UiContribution,
    /// Event kinds emitted.
    pub events_produced: Vec<String>,
    /// Event kinds consumed.
    pub events_consumed: Vec<String>,
    /// Ports needed.
    pub requires_ports: Vec<PortRequirement>,
    /// Departments this one depends on.
    pub depends_on: Vec<String>,
    /// JSON Schema of the configuration.
    pub config_schema: Value,
    /// Agent configuration defaults.
    pub default_config: LayeredConfig,
}

/// The Infra department's manifest.
pub fn manifest() -> DepartmentManifest {
    DepartmentManifest {
        id: DEPARTMENT_ID.into(),
        name: "Infra Department".into(),
        description: DESCRIPTION.into(),
        icon: ">".into(),
        color: "red".into(),
        system_prompt: SYSTEM_PROMPT.into(),
        capabilities: strings(&["deploy", "monitor", "incident"]),
        quick_actions: vec![
            quick_action(
                "Deploy status",
                "Show current deployment status across all services and environments.",
            ),
            quick_action(
                "Health check",
                "Run health checks on all monitored services.",
            ),
            quick_action(
                "Incident report",
                "Show open incidents with severity, timeline, and resolution status.",
            ),
        ],
        routes: vec![
            route(
                "GET",
                "/api/dept/infra/deploys",
                "List deployments, newest first.",
            ),
            route(
                "POST",
                "/api/dept/infra/deploys",
                "Record a deployment (starts as Pending).",
            ),
            route(
                "GET",
                "/api/dept/infra/incidents",
                "List incidents, newest first.",
            ),
            route("POST", "/api/dept/infra/incidents", "Open an incident."),
            route(
                "GET",
                "/api/dept/infra/checks",
                "List health checks with a status summary.",
            ),
        ],
        commands: commands(),
        tools: tools::definitions(),
        personas: Vec::new(),
        skills: Vec::new(),
        rules: Vec::new(),
        jobs: vec![JobContribution {
            kind: crate::engine::HEALTH_SCAN_JOB.into(),
            description: crate::engine::HEALTH_SCAN_DESCRIPTION.into(),
            requires_approval: false,
        }],
        ui: UiContribution {
            tabs: strings(&["actions", "agents", "rules", "events"]),
            dashboard_cards: Vec::new(),
            has_settings: false,
            custom_components: Vec::new(),
        },
        events_produced: strings(events::PRODUCED),
        events_consumed: Vec::new(),
        requires_ports: ["StoragePort", "EventPort", "AgentPort", "JobPort"]
            .iter()
            .map(|port| PortRequirement {
                port: port.to_string(),
                optional: false,
            })
            .collect(),
        depends_on: Vec::new(),
        config_schema: InfraConfig::schema(),
        default_config: LayeredConfig::default(),
    }
}

fn commands() -> Vec<CommandContribution> {
    vec![
        CommandContribution {
            name: "deploy".into(),
            description: "Record a deployment of a service version to an environment.".into(),
            args: vec![
                arg("service", "The service to deploy.", true),
                arg("version", "The version to deploy.", true),
                arg("environment", "The target environment.", true),
            ],
            tool: Some("infra.deploy.trigger".into()),
        },
        CommandContribution {
            name: "health".into(),
            description: "Show health checks with a status summary.".into(),
            args: Vec::new(),
            tool: Some("infra.monitor.status".into()),
        },
        CommandContribution {
            name: "incident".into(),
            description: "Open an incident.".into(),
            args: vec![
                arg("title", "A one-line summary.", true),
                arg("severity", "P1 (most impact) to P4.", true),
                arg("description", "What is known so far.", false),
            ],
            tool: Some("infra.incidents.create".into()),
        },
    ]
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| item.to_string()).collect()
}

fn quick_action(label: &str, prompt: &str) -> QuickAction {
    QuickAction {
        label: label.into(),
        prompt: prompt.into(),
    }
}

fn route(method: &str, path: &str, description: &str) -> RouteContribution {
    RouteContribution {
        method: method.into(),
        path: path.into(),
        description: description.into(),
    }
}

fn arg(name: &str, description: &str, required: bool) -> CommandArg {
    CommandArg {
        name: name.into(),
        description: description.into(),
        required,
        default: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryPorts;

    #[test]
    fn manifest_tools_are_the_registry_tools() {
        let manifest_names: Vec<String> = manifest().tools.into_iter().map(|t| t.name).collect();
        let registry_names: Vec<String> = tools::registry()
            .map(|tool| tool.name.to_string())
            .collect();
        assert_eq!(manifest_names, registry_names);
    }

    #[test]
    fn manifest_is_pure_and_repeatable() {
        let ports = MemoryPorts::new();
        let _engine = crate::InfraEngine::new(ports.ports(), InfraConfig::default());
        assert_eq!(manifest(), manifest());
        assert_eq!(ports.objects.writes(), 0);
        assert!(ports.events.emitted().is_empty());
    }

    #[test]
    fn manifest_matches_the_department_specification() {
        let manifest = manifest();
        assert_eq!(manifest.id, "infra");
        assert_eq!(
            (manifest.icon.as_str(), manifest.color.as_str()),
            (">", "red")
        );
        assert_eq!(
            manifest.system_prompt,
            "You are the Infrastructure department of RUSVEL.\n\nFocus: CI/CD pipelines, \
             deployments, monitoring, incident response, performance, cost analysis."
        );
        assert_eq!(manifest.capabilities, ["deploy", "monitor", "incident"]);
        let labels: Vec<&str> = manifest
            .quick_actions
            .iter()
            .map(|a| a.label.as_str())
            .collect();
        assert_eq!(labels, ["Deploy status", "Health check", "Incident report"]);
        assert_eq!(manifest.ui.tabs, ["actions", "agents", "rules", "events"]);
        assert_eq!(
            &manifest.events_produced[..4],
            [
                "infra.deploy.completed",
                "infra.alert.fired",
                "infra.incident.opened",
                "infra.incident.resolved"
            ]
        );
        assert!(manifest.requires_ports.iter().all(|port| !port.optional));
        for tool in ["infra.deploy.trigger", "infra.monitor.status"] {
            assert!(
                manifest.tools.iter().any(|t| t.name == tool),
                "missing {tool}"
            );
        }
    }

    #[test]
    fn every_command_runs_a_registered_tool_with_matching_arguments() {
        for command in manifest().commands {
            let tool = tools::find(command.tool.as_deref().unwrap()).expect("registered tool");
            let schema = tool.parameters_schema();
            for arg in &command.args {
                assert!(
                    schema["properties"].get(&arg.name).is_some(),
                    "{}",
                    arg.name
                );
            }
        }
    }
}
