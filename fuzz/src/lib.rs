//! The fuzz invariant of the Infra engine's tool-argument path, shared by the libFuzzer
//! target `tool_args` and the stable replay test below.
//!
//! The engine runs natively over the in-memory ports (no WebAssembly in the loop, so millions
//! of inputs per hour). Each input runs against a fresh world holding one session with an
//! open incident, a deployed deployment, an earlier deployed version (so rollback has a
//! target) and a health check, plus an incident of another session.
//!
//! Input layout:
//! - byte 0 picks the tool, modulo the registry's length (new tools are fuzzed at once);
//! - byte 1 picks the mode: `0` the rest is the argument text as is (lossy UTF-8), with the
//!   placeholders `@session`, `@incident`, `@deploy`, `@check` and `@foreign` replaced by
//!   real ids; `1` the rest is a list of edits (property, kind of value, value bytes) applied
//!   to a valid argument object built from the tool's schema (required properties and the
//!   first `anyOf` alternative); `2` one property's value is replaced by the rest as raw JSON
//!   text.
//!
//! Invariant: the call never panics; a refused call (an error, or an output flagged
//! `is_error`) leaves the store, the events and the jobs exactly as they were; an accepted
//! call's content is JSON.

use infra_engine::memory::MemoryPorts;
use infra_engine::ports::{JobFilter, JobQueue, ObjectFilter, ObjectStore};
use infra_engine::tools::{self, Tool};
use infra_engine::{InfraConfig, InfraEngine};
use serde_json::{json, Map, Value};

/// The session every world's objects belong to.
pub const SESSION: &str = "0193a3c1-7f00-7000-8000-00000000f022";

/// The other session, which owns the foreign incident.
pub const FOREIGN_SESSION: &str = "0193a3c1-7f00-7000-8000-00000000f0ff";

/// Object kinds compared before and after a refused call.
const KINDS: &[&str] = &[
    infra_engine::deploy::KIND,
    infra_engine::incident::KIND,
    infra_engine::monitor::KIND,
    infra_engine::monitor::PROBE_KIND,
];

/// A fresh engine with a few real objects to aim at.
struct World {
    ports: MemoryPorts,
    engine: InfraEngine,
    incident: String,
    deployment: String,
    check: String,
    foreign: String,
}

impl World {
    fn new() -> World {
        let ports = MemoryPorts::new();
        let engine = InfraEngine::new(ports.ports(), InfraConfig::default());
        let call = |tool: &str, args: Value| -> Value {
            let output = engine
                .call_tool(tool, &args)
                .unwrap_or_else(|e| panic!("setup {tool}: {e}"));
            serde_json::from_str(&output.content).unwrap()
        };
        let incident = call(
            "infra.incidents.create",
            json!({"session_id": SESSION, "title": "Disk full", "severity": "P2"}),
        )["incident_id"]
            .as_str()
            .unwrap()
            .to_string();
        let mut deployment = String::new();
        for version in ["v1", "v2"] {
            let id = call(
                "infra.deploy.trigger",
                json!({"session_id": SESSION, "service": "api", "version": version,
                       "environment": "prod"}),
            )["deployment_id"]
                .as_str()
                .unwrap()
                .to_string();
            for status in ["in_progress", "deployed"] {
                call(
                    "infra.deploy.update_status",
                    json!({"session_id": SESSION, "deployment_id": id, "status": status}),
                );
            }
            deployment = id;
        }
        let check = call(
            "infra.monitor.add_check",
            json!({"session_id": SESSION, "service": "api",
                   "endpoint": "http://127.0.0.1:9/health"}),
        )["check_id"]
            .as_str()
            .unwrap()
            .to_string();
        let foreign = call(
            "infra.incidents.create",
            json!({"session_id": FOREIGN_SESSION, "title": "Other", "severity": "P1"}),
        )["incident_id"]
            .as_str()
            .unwrap()
            .to_string();
        World {
            ports,
            engine,
            incident,
            deployment,
            check,
            foreign,
        }
    }

    /// A real id for a UUID property, by its name.
    fn id_for(&self, property: &str) -> String {
        match property {
            "session_id" => SESSION.to_string(),
            p if p.contains("incident") => self.incident.clone(),
            p if p.contains("deploy") => self.deployment.clone(),
            p if p.contains("check") => self.check.clone(),
            _ => self.incident.clone(),
        }
    }

    /// Everything a refused call must leave alone.
    fn snapshot(&self) -> (u64, Vec<Vec<Value>>, usize, usize) {
        let objects = &self.ports.objects;
        let stored = KINDS
            .iter()
            .map(|kind| objects.list(kind, &ObjectFilter::default()).unwrap())
            .collect();
        let jobs = self.ports.jobs.list(&JobFilter::default()).unwrap().len();
        (
            objects.writes(),
            stored,
            self.ports.events.emitted().len(),
            jobs,
        )
    }
}

/// Checks the invariant for one input; panics when it does not hold.
pub fn check_tool_args(data: &[u8]) {
    let registry: Vec<&'static Tool> = tools::registry().collect();
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let tool = registry[selector as usize % registry.len()];
    let (mode, rest) = rest.split_first().map_or((0, rest), |(m, r)| (*m % 3, r));
    // A world survives a refused call unchanged (that is the invariant), so it is reused
    // until a call is accepted; building one costs more than most calls.
    let world = SPARE
        .with(|spare| spare.borrow_mut().take())
        .unwrap_or_else(World::new);
    let args = match mode {
        0 => substitute(&String::from_utf8_lossy(rest), &world),
        1 => Value::Object(edited(tool, rest, &world)).to_string(),
        _ => raw_property(tool, rest, &world),
    };

    let before = world.snapshot();
    let result = world.engine.call_tool_json(tool.name, &args);
    let refused = match &result {
        Ok(output) if !output.is_error => {
            if let Err(error) = serde_json::from_str::<Value>(&output.content) {
                panic!("{}: accepted with non-JSON content ({error})", tool.name);
            }
            false
        }
        _ => true,
    };
    if refused {
        let after = world.snapshot();
        assert!(
            before == after,
            "{} refused ({:?}) but changed the store, events or jobs; args {args}",
            tool.name,
            result.err()
        );
        SPARE.with(|spare| *spare.borrow_mut() = Some(world));
    }
}

thread_local! {
    /// The world of the last refused call, ready for the next input.
    static SPARE: std::cell::RefCell<Option<World>> = const { std::cell::RefCell::new(None) };
}

fn substitute(text: &str, world: &World) -> String {
    text.replace("@session", SESSION)
        .replace("@incident", &world.incident)
        .replace("@deploy", &world.deployment)
        .replace("@check", &world.check)
        .replace("@foreign", &world.foreign)
}

/// A valid-looking value for a property schema.
fn valid_value(name: &str, schema: &Value, world: &World) -> Value {
    if let Some(values) = schema["enum"].as_array() {
        return values[0].clone();
    }
    if schema["format"] == "uuid" {
        return json!(world.id_for(name));
    }
    match schema["type"].as_str() {
        Some("integer") | Some("number") => json!(schema["minimum"].as_i64().unwrap_or(1).max(1)),
        Some("boolean") => json!(false),
        Some("array") => json!([valid_value(name, &schema["items"], world)]),
        Some("object") => json!({}),
        _ => match name {
            "endpoint" | "url" => json!("http://127.0.0.1:9/health"),
            "cron" => json!("*/5 * * * *"),
            _ => json!("fuzz"),
        },
    }
}

/// Every declared property with a valid-looking value, then the edits of `bytes`.
fn edited(tool: &Tool, bytes: &[u8], world: &World) -> Map<String, Value> {
    let schema = tool.parameters_schema();
    let properties = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let names: Vec<String> = properties.keys().cloned().collect();
    // The required properties, plus the first alternative of a top-level `anyOf`.
    let mut required: Vec<&Value> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    if let Some(first) = schema["anyOf"]
        .as_array()
        .and_then(|branches| branches.first())
    {
        required.extend(first["required"].as_array().into_iter().flatten());
    }
    let mut args = Map::new();
    for name in required.iter().filter_map(|name| name.as_str()) {
        let property = properties.get(name).cloned().unwrap_or(Value::Null);
        args.insert(name.to_string(), valid_value(name, &property, world));
    }
    let mut cursor = Cursor(bytes);
    while let (Some(target), Some(kind)) = (cursor.byte(), cursor.byte()) {
        let name = if names.is_empty() {
            "x".to_string()
        } else {
            names[target as usize % names.len()].clone()
        };
        let property = &properties.get(&name).cloned().unwrap_or(Value::Null);
        let value = match kind % 15 {
            0 => json!(cursor.text()),
            1 => json!(i64::from_le_bytes(cursor.array())),
            2 => json!(f64::from_le_bytes(cursor.array())),
            3 => json!(cursor.byte().unwrap_or(0) % 2 == 0),
            4 => Value::Null,
            5 => json!(cursor
                .take(8)
                .iter()
                .map(|b| *b as i64 - 100)
                .collect::<Vec<_>>()),
            6 => {
                let mut object = Map::new();
                object.insert(cursor.text(), json!(cursor.byte().unwrap_or(0)));
                Value::Object(object)
            }
            7 => {
                args.remove(&name);
                continue;
            }
            8 => json!(world.id_for(&names[cursor.byte().unwrap_or(0) as usize % names.len()])),
            9 => json!(uuid_like(cursor.take(16))),
            10 => {
                let unit = cursor.text().chars().next().unwrap_or('\u{1F600}');
                let count = u16::from_le_bytes(cursor.array()) as usize % 12_500;
                json!(unit.to_string().repeat(count))
            }
            11 => match property["enum"].as_array() {
                Some(values) if !values.is_empty() => {
                    values[cursor.byte().unwrap_or(0) as usize % values.len()].clone()
                }
                _ => valid_value(&name, property, world),
            },
            12 => {
                args.insert(cursor.text(), json!(1));
                continue;
            }
            13 => json!(world.foreign),
            _ => json!(FOREIGN_SESSION),
        };
        args.insert(name, value);
    }
    args
}

/// The valid object with one property's value replaced by raw text.
fn raw_property(tool: &Tool, bytes: &[u8], world: &World) -> String {
    let mut args = edited(tool, &[], world);
    let Some((&pick, raw)) = bytes.split_first() else {
        return Value::Object(args).to_string();
    };
    let names: Vec<String> = args.keys().cloned().collect();
    let name = names
        .get(pick as usize % names.len().max(1))
        .cloned()
        .unwrap_or_else(|| "x".into());
    args.remove(&name);
    let mut text = Value::Object(args).to_string();
    text.pop();
    if text.len() > 1 {
        text.push(',');
    }
    format!("{text}{}:{}}}", json!(name), String::from_utf8_lossy(raw))
}

fn uuid_like(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let hex = format!("{hex:0<32}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Reads edits from the input bytes.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn take(&mut self, count: usize) -> &'a [u8] {
        let count = count.min(self.0.len());
        let (taken, rest) = self.0.split_at(count);
        self.0 = rest;
        taken
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let taken = self.take(N);
        out[..taken.len()].copy_from_slice(taken);
        out
    }

    /// A length byte, then that many bytes as lossy UTF-8.
    fn text(&mut self) -> String {
        let length = self.byte().unwrap_or(0) as usize;
        String::from_utf8_lossy(self.take(length)).into_owned()
    }
}

#[cfg(test)]
mod tests {
    //! Stable replay: the seed corpus, any saved corpus and crash artifacts, then a fixed-seed
    //! stream of pseudo-random inputs (`FUZZ_CASES`, default 5000; `FUZZ_SEED` to vary).

    use std::path::Path;

    use super::*;

    /// xorshift64*: small, deterministic, good enough to spread bytes.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    fn files_in(dir: &Path) -> Vec<Vec<u8>> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut paths: Vec<_> = entries.flatten().map(|entry| entry.path()).collect();
        paths.sort();
        paths
            .iter()
            .filter_map(|path| std::fs::read(path).ok())
            .collect()
    }

    #[test]
    fn replays_the_seeds_and_saved_inputs() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut inputs = files_in(&root.join("seeds/tool_args"));
        assert!(inputs.len() >= 10, "the seed corpus is missing");
        inputs.extend(files_in(&root.join("corpus/tool_args")));
        inputs.extend(files_in(&root.join("artifacts/tool_args")));
        for input in inputs {
            check_tool_args(&input);
        }
    }

    #[test]
    fn survives_fixed_seed_random_inputs() {
        let cases: usize = std::env::var("FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5000);
        let seed: u64 = std::env::var("FUZZ_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0x5eed_1f2a_7c3b_9d41);
        let seeds = files_in(&Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/tool_args"));
        let mut rng = Rng(seed | 1);
        for case in 0..cases {
            let length = (rng.next() % 96) as usize;
            let mut input: Vec<u8> = (0..length).map(|_| rng.next() as u8).collect();
            // Half the cases mutate a seed, so valid-looking text reaches the handlers.
            if case % 2 == 1 && !seeds.is_empty() {
                let mut seed_input = seeds[rng.next() as usize % seeds.len()].clone();
                for _ in 0..1 + rng.next() % 4 {
                    if seed_input.is_empty() {
                        break;
                    }
                    let at = rng.next() as usize % seed_input.len();
                    seed_input[at] = rng.next() as u8;
                }
                input = seed_input;
            }
            let result = std::panic::catch_unwind(|| check_tool_args(&input));
            if result.is_err() {
                panic!("case {case} (seed {seed}) failed on input {input:?}");
            }
        }
    }

    /// Rewrites `seeds/tool_args/` from the registry: run with `--ignored` after adding tools.
    #[test]
    #[ignore]
    fn regenerate_seeds() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/tool_args");
        std::fs::create_dir_all(&dir).unwrap();
        for (index, tool) in tools::registry().enumerate() {
            let name = tool.name.replace('.', "_");
            let world = World::new();
            let valid = Value::Object(edited(tool, &[], &world)).to_string();
            let placeholders = valid
                .replace(SESSION, "@session")
                .replace(&world.incident, "@incident")
                .replace(&world.deployment, "@deploy")
                .replace(&world.check, "@check");
            let mut raw = vec![index as u8, 0];
            raw.extend(placeholders.as_bytes());
            std::fs::write(dir.join(format!("{name}-raw")), raw).unwrap();
            std::fs::write(
                dir.join(format!("{name}-edits")),
                [index as u8, 1, 0, 11, 0],
            )
            .unwrap();
            std::fs::write(
                dir.join(format!("{name}-rawprop")),
                [&[index as u8, 2, 0][..], br#""\ud800""#].concat(),
            )
            .unwrap();
        }
    }
}
