//! `rusvel-host <department> ...`: status, objects, events and tool calls of one department,
//! plus the commands its manifest contributes.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use rusvel_host::ports::{EventFilter, ObjectFilter};
use rusvel_host::{Plugin, PluginHost};
use serde_json::{json, Value};

use super::commands::{tool_call, Contributions};
use super::output::{clip, print_json, print_table};
use super::session::session_id;

#[derive(Debug, Parser)]
#[command(no_binary_name = true, name = "rusvel-host <department>")]
struct DepartmentCli {
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: DepartmentCommand,
}

#[derive(Debug, Subcommand)]
enum DepartmentCommand {
    /// Summary: manifest, tools, objects per kind, recent events.
    Status,
    /// Objects of the department, newest first.
    List {
        /// Only kind `<department>_<KIND>` (for example `deploy`).
        #[arg(long)]
        kind: Option<String>,
        /// At most this many objects.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Events the department emitted, oldest first.
    Events {
        /// At most this many (the most recent).
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Calls a tool with JSON arguments.
    Tool {
        /// Tool name, for example `infra.deploy.trigger`.
        name: String,
        /// Arguments as a JSON object.
        #[arg(default_value = "{}")]
        args: String,
    },
}

/// Runs a department command; `args[0]` is the department id. Built-in commands come
/// first; the department's manifest may contribute more ([`super::commands`]).
pub async fn run(
    host: &PluginHost,
    data_dir: &Path,
    json_flag: bool,
    args: &[String],
) -> anyhow::Result<ExitCode> {
    let (department, rest) = args.split_first().context("missing department id")?;
    let Some(plugin) = host.plugin(department) else {
        bail!("{}", unknown_department(host, department));
    };

    let builtin = DepartmentCli::command();
    let mut builtins: Vec<String> = builtin
        .get_subcommands()
        .map(|command| command.get_name().to_string())
        .collect();
    builtins.push("help".into());
    let contributions = Contributions::of(plugin, &builtins);
    let cli = contributions.extend(
        builtin
            .name(format!("rusvel-host {department}"))
            .bin_name(format!("rusvel-host {department}"))
            .about(plugin.manifest().description.clone()),
    );
    let matches = match cli.try_get_matches_from(rest) {
        Ok(matches) => matches,
        Err(error) => {
            let _ = error.print();
            return Ok(ExitCode::from(if error.use_stderr() { 2 } else { 0 }));
        }
    };
    let as_json = json_flag || matches.get_flag("json");

    if let Some((name, sub_matches)) = matches.subcommand() {
        if let Some(contribution) = contributions.get(name) {
            let (tool_name, args) = match tool_call(plugin, contribution, sub_matches) {
                Ok(call) => call,
                Err(error) => {
                    errln!("error: {error:#}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            return tool(host, plugin, data_dir, &tool_name, &args, as_json).await;
        }
    }
    let parsed = DepartmentCli::from_arg_matches(&matches)?;
    match parsed.command {
        DepartmentCommand::Status => status(host, plugin, data_dir, as_json).await,
        DepartmentCommand::List { kind, limit } => list(host, plugin, kind, limit, as_json).await,
        DepartmentCommand::Events { limit } => events(host, plugin, limit, as_json).await,
        DepartmentCommand::Tool { name, args } => {
            tool(host, plugin, data_dir, &name, &args, as_json).await
        }
    }
}

async fn status(
    host: &PluginHost,
    plugin: &Plugin,
    data_dir: &Path,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let id = plugin.id();
    let counts = host.store().count_by_kind(&format!("{id}_")).await?;
    let day_ago = rusvel_host::clock::format_time(chrono::Utc::now() - chrono::Duration::hours(24));
    let filter = EventFilter {
        source: Some(id.to_string()),
        since: Some(day_ago),
        limit: Some(10_000),
        ..Default::default()
    };
    let recent_events = host.ports().events.query(&filter).await?.len();
    let tools: Vec<&str> = plugin
        .registration()
        .tools
        .iter()
        .map(|t| t.name.as_str())
        .collect();

    // A department may offer a status tool; show it when present.
    let monitor_tool = format!("{id}.monitor.status");
    let monitor = if tools.contains(&monitor_tool.as_str()) {
        let args = with_session(plugin, &monitor_tool, "{}", data_dir)?;
        match host.call_tool(id, &monitor_tool, &args).await {
            Ok(output) => Some(parse_or_text(&output.content)),
            Err(error) => Some(json!({ "error": error.to_string() })),
        }
    } else {
        None
    };

    if as_json {
        let objects: serde_json::Map<String, Value> = counts
            .iter()
            .map(|(kind, count)| (kind.clone(), json!(count)))
            .collect();
        print_json(&json!({
            "id": id,
            "name": plugin.manifest().name,
            "version": plugin.version(),
            "tools": tools,
            "objects": objects,
            "recent_events_24h": recent_events,
            "monitor": monitor,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("{} ({}) — {}", plugin.manifest().name, id, plugin.version());
    outln!("{}", plugin.manifest().description);
    outln!();
    outln!("tools ({}): {}", tools.len(), tools.join(", "));
    outln!("events in the last 24 h: {recent_events}");
    outln!();
    if counts.is_empty() {
        outln!("no objects stored yet");
    } else {
        let rows: Vec<Vec<String>> = counts
            .iter()
            .map(|(kind, count)| vec![kind.clone(), count.to_string()])
            .collect();
        print_table(&["KIND", "OBJECTS"], &rows)?;
    }
    if let Some(monitor) = monitor {
        outln!();
        outln!("{monitor_tool}:");
        outln!("{}", serde_json::to_string_pretty(&monitor)?);
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(
    host: &PluginHost,
    plugin: &Plugin,
    kind: Option<String>,
    limit: u32,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let id = plugin.id();
    let kinds: Vec<String> = match kind {
        Some(kind) => {
            let kind = if kind.starts_with(&format!("{id}_")) {
                kind
            } else {
                format!("{id}_{kind}")
            };
            let known = known_kinds(host, plugin).await?;
            if !known.contains(&kind) {
                let short: Vec<&str> = known
                    .iter()
                    .map(|k| k.strip_prefix(&format!("{id}_")).unwrap_or(k))
                    .collect();
                bail!(
                    "department `{id}` has no object kind `{kind}` (kinds: {})",
                    short.join(", ")
                );
            }
            vec![kind]
        }
        None => host
            .store()
            .count_by_kind(&format!("{id}_"))
            .await?
            .into_iter()
            .map(|(kind, _)| kind)
            .collect(),
    };
    let filter = ObjectFilter {
        limit: Some(limit),
        ..Default::default()
    };
    let mut objects: Vec<(String, Value)> = Vec::new();
    for kind in &kinds {
        for object in host.store().list(kind, &filter).await? {
            objects.push((kind.clone(), object));
        }
    }
    // Ids are UUIDv7, so sorting by id across kinds is newest first overall.
    objects.sort_by_key(|(_, object)| std::cmp::Reverse(text(object, "id")));
    objects.truncate(limit as usize);

    if as_json {
        print_json(&Value::Array(
            objects.into_iter().map(|(_, object)| object).collect(),
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    if objects.is_empty() {
        outln!(
            "no objects of kind {}",
            if kinds.is_empty() {
                format!("{id}_*")
            } else {
                kinds.join(", ")
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = objects
        .iter()
        .map(|(kind, object)| {
            vec![
                kind.strip_prefix(&format!("{id}_"))
                    .unwrap_or(kind)
                    .to_string(),
                text(object, "id"),
                text(object, "status"),
                clip(&summary(object), 60),
            ]
        })
        .collect();
    print_table(&["KIND", "ID", "STATUS", "SUMMARY"], &rows)?;
    Ok(ExitCode::SUCCESS)
}

async fn events(
    host: &PluginHost,
    plugin: &Plugin,
    limit: u32,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let filter = EventFilter {
        source: Some(plugin.id().to_string()),
        limit: Some(limit),
        ..Default::default()
    };
    let events = host.ports().events.query(&filter).await?;
    if as_json {
        print_json(&serde_json::to_value(&events)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if events.is_empty() {
        outln!("no events from {}", plugin.id());
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|event| {
            vec![
                event.created_at.clone(),
                event.kind.clone(),
                event.id.clone(),
                clip(&event.payload.to_string(), 60),
            ]
        })
        .collect();
    print_table(&["CREATED_AT", "KIND", "ID", "PAYLOAD"], &rows)?;
    Ok(ExitCode::SUCCESS)
}

async fn tool(
    host: &PluginHost,
    plugin: &Plugin,
    data_dir: &Path,
    name: &str,
    args: &str,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let args = with_session(plugin, name, args, data_dir)?;
    let output = match host.call_tool(plugin.id(), name, &args).await {
        Ok(output) => output,
        Err(error) => {
            errln!("error: {error}");
            if as_json {
                // Scripts reading stdout get the same envelope a failed tool returns.
                let refused =
                    json!({"content": error.to_string(), "is_error": true, "metadata": {}});
                print_json(&refused)?;
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    if as_json {
        print_json(&serde_json::to_value(&output)?)?;
    } else {
        match serde_json::from_str::<Value>(&output.content) {
            Ok(value) => print_json(&value)?,
            Err(_) => outln!("{}", output.content),
        }
    }
    if output.is_error {
        errln!("error: tool {name} reported an error");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Adds the remembered session id when the tool takes `session_id` and none was given.
fn with_session(
    plugin: &Plugin,
    tool: &str,
    args: &str,
    data_dir: &Path,
) -> anyhow::Result<String> {
    let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(args) else {
        // Not a JSON object: the host refuses it with a precise message.
        return Ok(args.to_string());
    };
    let takes_session = plugin
        .registration()
        .tools
        .iter()
        .find(|t| t.name == tool)
        .and_then(|t| serde_json::from_str::<Value>(&t.parameters_schema).ok())
        .is_some_and(|schema| schema["properties"].get("session_id").is_some());
    if takes_session && !object.contains_key("session_id") {
        object.insert("session_id".into(), Value::String(session_id(data_dir)?));
    }
    Ok(Value::Object(object).to_string())
}

fn parse_or_text(content: &str) -> Value {
    serde_json::from_str(content).unwrap_or_else(|_| Value::String(content.to_string()))
}

fn text(object: &Value, field: &str) -> String {
    match object.get(field) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// A short human label for an object: its first descriptive field.
fn summary(object: &Value) -> String {
    ["name", "title", "service", "summary", "description", "url"]
        .iter()
        .map(|field| text(object, field))
        .find(|value| !value.is_empty())
        .unwrap_or_default()
}

/// The object kinds a department declares (through the fields it asks to index) or has stored.
async fn known_kinds(host: &PluginHost, plugin: &Plugin) -> anyhow::Result<Vec<String>> {
    let mut kinds: Vec<String> = plugin
        .registration()
        .indexed_fields
        .iter()
        .map(|(kind, _)| kind.clone())
        .collect();
    let stored = host
        .store()
        .count_by_kind(&format!("{}_", plugin.id()))
        .await?;
    kinds.extend(stored.into_iter().map(|(kind, _)| kind));
    kinds.sort();
    kinds.dedup();
    Ok(kinds)
}

/// Why `department` is not available, with what to do about it: the plugin directory may be
/// missing or empty, or the department's file may have failed to load.
fn unknown_department(host: &PluginHost, department: &str) -> String {
    let dir = &host.config().plugins_dir;
    let loaded: Vec<&str> = host.plugins().map(Plugin::id).collect();
    let mut message = format!("unknown command or department `{department}`");
    if loaded.is_empty() {
        message.push_str(&format!("; no plugins are loaded from {}", dir.display()));
        if !dir.is_dir() {
            message.push_str(" (the directory does not exist: pass --plugins DIR)");
        }
    } else {
        message.push_str(&format!(" (loaded departments: {})", loaded.join(", ")));
    }
    for failure in host.failures() {
        message.push_str(&format!(
            "\n  failed to load {}: {}",
            failure.path.display(),
            failure.error
        ));
    }
    message
}
