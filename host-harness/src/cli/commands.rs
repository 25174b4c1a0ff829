//! Commands a department contributes through its manifest (`commands`), offered as
//! `rusvel-host <department> <command> --<arg> <value> ...`.
//!
//! Every contributed argument is a long option named like the argument (`--service api`;
//! an argument `dry_run` also answers to `--dry-run`). A default fills a missing option; a
//! required option without a default must be given. Each option becomes the tool parameter
//! of the same name: as a string, unless the tool's parameter schema declares a number,
//! boolean, array or object, in which case the value is read as JSON (`--replicas 3`). The
//! remembered session id is added when the tool takes `session_id`.
//!
//! Nothing here knows any particular department: a plugin's commands appear as soon as it
//! is loaded. A contributed command named like a built-in department command, or with a name
//! or argument the command line cannot carry, is listed as unavailable in the department's
//! help and logged as a warning.

use clap::{Arg, ArgAction, ArgMatches, Command};
use rusvel_host::bindings::rusvel::department::manifest::CommandContribution;
use rusvel_host::Plugin;
use serde_json::{Map, Value};

/// Option names every department command already uses.
const RESERVED_ARGS: &[&str] = &["help", "json"];

/// A department's contributed commands, split into the usable and the unavailable.
pub struct Contributions<'a> {
    /// Commands offered on the command line, in manifest order.
    pub usable: Vec<&'a CommandContribution>,
    /// Commands that cannot be offered: (name, reason).
    pub unavailable: Vec<(String, String)>,
}

impl<'a> Contributions<'a> {
    /// Sorts the plugin's contributed commands; `builtins` are the department command names
    /// that take precedence.
    pub fn of(plugin: &'a Plugin, builtins: &[String]) -> Contributions<'a> {
        Contributions::sort(plugin.id(), &plugin.manifest().commands, builtins)
    }

    /// Sorts `commands` of department `department`.
    fn sort(
        department: &str,
        commands: &'a [CommandContribution],
        builtins: &[String],
    ) -> Contributions<'a> {
        let mut usable: Vec<&CommandContribution> = Vec::new();
        let mut unavailable = Vec::new();
        for command in commands {
            let reason = if builtins.contains(&command.name) {
                Some("its name is taken by a built-in command".to_string())
            } else if usable.iter().any(|c| c.name == command.name) {
                Some("an earlier command has the same name".to_string())
            } else {
                problem(command)
            };
            match reason {
                Some(reason) => {
                    tracing::warn!(%department, command = %command.name, %reason,
                        "contributed command unavailable");
                    unavailable.push((command.name.clone(), reason));
                }
                None => usable.push(command),
            }
        }
        Contributions {
            usable,
            unavailable,
        }
    }

    /// The contributed command named `name`, if usable.
    pub fn get(&self, name: &str) -> Option<&'a CommandContribution> {
        self.usable.iter().copied().find(|c| c.name == name)
    }

    /// Adds the usable commands to a department's command line, and a note on the rest.
    pub fn extend(&self, mut cli: Command) -> Command {
        let mut notes = Vec::new();
        if !self.usable.is_empty() {
            let names: Vec<&str> = self.usable.iter().map(|c| c.name.as_str()).collect();
            notes.push(format!(
                "Contributed by the department: {}. Give their arguments as `--NAME VALUE`; \
                 `help <command>` lists them.",
                names.join(", ")
            ));
        }
        for contribution in &self.usable {
            cli = cli.subcommand(subcommand(contribution));
        }
        if !self.unavailable.is_empty() {
            let lines: Vec<String> = self
                .unavailable
                .iter()
                .map(|(name, reason)| format!("  {name}: {reason}"))
                .collect();
            notes.push(format!(
                "Unavailable department commands:\n{}",
                lines.join("\n")
            ));
        }
        if notes.is_empty() {
            cli
        } else {
            cli.after_help(notes.join("\n\n"))
        }
    }
}

/// Why a contributed command cannot be offered, if it cannot.
fn problem(command: &CommandContribution) -> Option<String> {
    if !is_word(&command.name) {
        return Some(format!(
            "`{}` is not a command name (letters, digits, `-` and `_`)",
            command.name
        ));
    }
    let mut seen: Vec<&str> = Vec::new();
    for arg in &command.args {
        if !is_word(&arg.name) {
            return Some(format!("argument `{}` is not an option name", arg.name));
        }
        if RESERVED_ARGS.contains(&arg.name.as_str()) {
            return Some(format!(
                "argument `{}` clashes with `--{}`",
                arg.name, arg.name
            ));
        }
        if seen.contains(&arg.name.as_str()) {
            return Some(format!("argument `{}` is declared twice", arg.name));
        }
        seen.push(&arg.name);
    }
    None
}

fn is_word(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The command line of one contributed command.
fn subcommand(contribution: &CommandContribution) -> Command {
    let runs = match &contribution.tool {
        Some(tool) => format!("Runs tool `{tool}`; each option is the parameter of its name."),
        None => "Declares no tool to run.".to_string(),
    };
    let mut command = Command::new(contribution.name.clone())
        .about(contribution.description.clone())
        .after_help(runs);
    let names: Vec<&str> = contribution.args.iter().map(|a| a.name.as_str()).collect();
    for declared in &contribution.args {
        let mut arg = Arg::new(declared.name.clone())
            .long(declared.name.clone())
            .value_name(declared.name.to_uppercase())
            .help(declared.description.clone())
            .action(ArgAction::Set);
        let kebab = declared.name.replace('_', "-");
        if kebab != declared.name && !names.contains(&kebab.as_str()) {
            arg = arg.alias(kebab);
        }
        match &declared.default {
            Some(default) => arg = arg.default_value(default.clone()),
            None if declared.required => arg = arg.required(true),
            None => {}
        }
        command = command.arg(arg);
    }
    command
}

/// The tool a contributed command runs and its JSON arguments, from the parsed options.
pub fn tool_call(
    plugin: &Plugin,
    contribution: &CommandContribution,
    matches: &ArgMatches,
) -> anyhow::Result<(String, String)> {
    let Some(tool) = &contribution.tool else {
        anyhow::bail!(
            "command `{}` of department `{}` declares no tool to run",
            contribution.name,
            plugin.id()
        );
    };
    let Some(definition) = plugin.registration().tools.iter().find(|t| &t.name == tool) else {
        anyhow::bail!(
            "command `{}` runs tool `{tool}`, which department `{}` did not register",
            contribution.name,
            plugin.id()
        );
    };
    let schema: Value = serde_json::from_str(&definition.parameters_schema).unwrap_or_default();
    let mut args = Map::new();
    for declared in &contribution.args {
        if let Some(text) = matches.get_one::<String>(&declared.name) {
            let kind = &schema["properties"][&declared.name]["type"];
            args.insert(declared.name.clone(), typed(text, kind));
        }
    }
    Ok((tool.clone(), Value::Object(args).to_string()))
}

/// An option's text as the JSON value its schema type asks for; text that does not parse
/// stays a string, so the tool's schema check reports it precisely.
fn typed(text: &str, schema_type: &Value) -> Value {
    let accepts = |name: &str| match schema_type {
        Value::String(kind) => kind == name,
        Value::Array(kinds) => kinds.iter().any(|kind| kind == name),
        _ => false,
    };
    let structured = ["integer", "number", "boolean", "array", "object"]
        .iter()
        .any(|kind| accepts(kind));
    if schema_type.is_null() || accepts("string") || !structured {
        return Value::String(text.to_string());
    }
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

#[cfg(test)]
mod tests {
    use rusvel_host::bindings::rusvel::department::manifest::CommandArg;
    use serde_json::json;

    use super::*;

    #[test]
    fn option_text_follows_the_schema_type() {
        assert_eq!(typed("3", &json!("integer")), json!(3));
        assert_eq!(typed("true", &json!("boolean")), json!(true));
        assert_eq!(typed("[1]", &json!(["array", "null"])), json!([1]));
        assert_eq!(typed("3", &json!("string")), json!("3"));
        assert_eq!(typed("3", &Value::Null), json!("3"));
        assert_eq!(typed("many", &json!("integer")), json!("many"));
        assert_eq!(typed("v1", &json!(["string", "null"])), json!("v1"));
    }

    fn command(name: &str, args: &[(&str, bool, Option<&str>)]) -> CommandContribution {
        CommandContribution {
            name: name.into(),
            description: format!("{name} things"),
            args: args
                .iter()
                .map(|(arg, required, default)| CommandArg {
                    name: arg.to_string(),
                    description: format!("the {arg}"),
                    required: *required,
                    default: default.map(str::to_string),
                })
                .collect(),
            tool: Some(format!("dept.{name}")),
        }
    }

    fn builtins() -> Vec<String> {
        ["status", "list", "events", "tool", "help"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn built_in_names_duplicates_and_unusable_names_are_unavailable() {
        let commands = vec![
            command("status", &[]),
            command("scan", &[("target", true, None)]),
            command("scan", &[]),
            command("bad name", &[]),
            command("clash", &[("json", false, None)]),
            command("twice", &[("a", false, None), ("a", false, None)]),
        ];
        let sorted = Contributions::sort("dept", &commands, &builtins());
        let usable: Vec<&str> = sorted.usable.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(usable, ["scan"]);
        let unavailable: Vec<&str> = sorted.unavailable.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            unavailable,
            ["status", "scan", "bad name", "clash", "twice"]
        );
        assert!(sorted.unavailable[0].1.contains("built-in"));
        let help = sorted
            .extend(Command::new("dept").no_binary_name(true))
            .render_long_help()
            .to_string();
        assert!(
            help.contains("status: its name is taken by a built-in command"),
            "{help}"
        );
    }

    #[test]
    fn options_take_defaults_and_required_ones_must_be_given() {
        let commands = vec![command(
            "scan",
            &[
                ("target", true, None),
                ("depth", true, Some("2")),
                ("dry_run", false, None),
            ],
        )];
        let sorted = Contributions::sort("dept", &commands, &builtins());
        let cli = sorted.extend(Command::new("dept").no_binary_name(true));

        let matches = cli
            .clone()
            .try_get_matches_from(["scan", "--target", "db", "--dry-run", "yes"])
            .unwrap();
        let (_, scan) = matches.subcommand().unwrap();
        assert_eq!(scan.get_one::<String>("depth").unwrap(), "2");
        assert_eq!(scan.get_one::<String>("dry_run").unwrap(), "yes");

        let missing = cli.try_get_matches_from(["scan"]).unwrap_err().to_string();
        assert!(missing.contains("--target"), "{missing}");
        assert!(
            !missing.contains("--depth"),
            "a default satisfies a required option"
        );
    }

    #[test]
    fn names_the_command_line_cannot_carry_are_refused() {
        assert!(is_word("deploy"));
        assert!(is_word("dry_run-2"));
        assert!(!is_word(""));
        assert!(!is_word("--x"));
        assert!(!is_word("two words"));
    }
}
