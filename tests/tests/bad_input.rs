//! A bad-input corpus run through every registered Infra tool.
//!
//! The tool list and each tool's properties come from the registration, so a tool added
//! later is covered without touching this file. For every tool the corpus holds malformed
//! and non-object JSON, every declared property with wrong types, over-long and huge
//! strings, unicode edge cases (NUL, lone surrogates, bidi controls, emoji, combining marks,
//! 4-byte characters exactly at and just over the length limit), unknown fields, duplicate
//! keys, deep nesting, out-of-range numbers and malformed or foreign UUIDs.
//!
//! Every call must come back as an error or as a valid output (JSON content); never as a
//! fault. After every refused call the database holds exactly what it held before: the same
//! objects at the same versions, the same number of events and jobs. After every call the
//! host still serves a valid call.

use std::collections::BTreeMap;
use std::path::Path;

use integration_tests::TestHost;
use rusvel_host::{HostError, PortError};
use serde_json::{json, Map, Value};

/// Everything stored: (kind, id) -> version, plus the event and job counts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    objects: BTreeMap<(String, String), i64>,
    events: i64,
    jobs: i64,
}

fn snapshot(db: &Path) -> Snapshot {
    let connection = rusqlite::Connection::open(db).expect("open database");
    let mut statement = connection
        .prepare("SELECT kind, id, version FROM objects")
        .unwrap();
    let objects = statement
        .query_map([], |row| Ok(((row.get(0)?, row.get(1)?), row.get(2)?)))
        .unwrap()
        .collect::<Result<BTreeMap<_, _>, _>>()
        .unwrap();
    let count = |table: &str| -> i64 {
        connection
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
                row.get(0)
            })
            .unwrap()
    };
    Snapshot {
        objects,
        events: count("events"),
        jobs: count("jobs"),
    }
}

/// One entry of the corpus: what it probes and the exact argument text sent.
struct Case {
    label: String,
    args: String,
}

/// Ids of real objects of this session and of another session.
struct Targets {
    session: String,
    foreign_session: String,
    incident: String,
    deployment: String,
    check: String,
    foreign_incident: String,
    foreign_deployment: String,
}

impl Targets {
    /// A real id for a UUID property, chosen by its name.
    fn id_for(&self, property: &str) -> String {
        match property {
            "session_id" => self.session.clone(),
            p if p.contains("incident") => self.incident.clone(),
            p if p.contains("deploy") => self.deployment.clone(),
            p if p.contains("check") => self.check.clone(),
            _ => rusvel_host::clock::new_id(),
        }
    }

    /// An id of the same kind that belongs to the other session.
    fn foreign_id_for(&self, property: &str) -> String {
        match property {
            "session_id" => self.foreign_session.clone(),
            p if p.contains("incident") => self.foreign_incident.clone(),
            p if p.contains("deploy") => self.foreign_deployment.clone(),
            _ => rusvel_host::clock::new_id(),
        }
    }
}

/// A plausible valid value for a property schema.
fn valid_value(name: &str, schema: &Value, targets: &Targets) -> Value {
    if let Some(values) = schema["enum"].as_array() {
        return values[0].clone();
    }
    if schema["format"] == "uuid" {
        return json!(targets.id_for(name));
    }
    match schema["type"].as_str() {
        Some("integer") | Some("number") => {
            let minimum = schema["minimum"].as_i64().unwrap_or(1).max(1);
            let maximum = schema["maximum"].as_i64().unwrap_or(i64::MAX);
            json!(minimum.min(maximum))
        }
        Some("boolean") => json!(false),
        Some("array") => json!([valid_value(name, &schema["items"], targets)]),
        Some("object") => json!({}),
        _ => match name {
            "endpoint" | "url" => json!("http://127.0.0.1:9/health"),
            "cron" => json!("*/5 * * * *"),
            _ => json!("probe-value"),
        },
    }
}

/// The smallest valid-looking argument object: required properties, plus the first
/// alternative of a top-level `anyOf` of `required` lists.
fn base_args(schema: &Value, targets: &Targets) -> Map<String, Value> {
    let properties = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut required: Vec<String> = schema["required"]
        .as_array()
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if let Some(first) = schema["anyOf"]
        .as_array()
        .and_then(|branches| branches.first())
    {
        for name in first["required"].as_array().into_iter().flatten() {
            required.push(name.as_str().unwrap().to_string());
        }
    }
    let mut args = Map::new();
    for name in required {
        let property = properties.get(&name).cloned().unwrap_or(json!({}));
        args.insert(name.clone(), valid_value(&name, &property, targets));
    }
    args
}

/// Text of `base` with `property` set to the raw JSON text `raw` (which may be invalid).
fn with_raw(base: &Map<String, Value>, property: &str, raw: &str) -> String {
    let mut object = base.clone();
    object.remove(property);
    let mut text = Value::Object(object).to_string();
    text.pop(); // the closing brace
    if text.len() > 1 {
        text.push(',');
    }
    text.push_str(&format!("{}:{raw}}}", json!(property)));
    text
}

fn with_value(base: &Map<String, Value>, property: &str, value: Value) -> String {
    let mut object = base.clone();
    object.insert(property.to_string(), value);
    Value::Object(object).to_string()
}

/// Cases that do not depend on the tool's properties.
fn shape_cases(base: &Map<String, Value>) -> Vec<Case> {
    let base_text = Value::Object(base.clone()).to_string();
    let nested_deep = format!("{}{}", "[".repeat(300), "]".repeat(300));
    let mut raw: Vec<(&str, String)> = vec![
        ("empty text", String::new()),
        ("whitespace", "   \n\t".into()),
        ("open brace", "{".into()),
        ("missing value", r#"{"session_id":}"#.into()),
        (
            "trailing comma",
            format!("{},}}", &base_text[..base_text.len() - 1]),
        ),
        ("single quotes", "{'session_id': 'x'}".into()),
        ("bare word", "nul".into()),
        ("trailing garbage", format!("{base_text} extra")),
        ("two documents", format!("{base_text}{base_text}")),
        ("nul byte", "\u{0}".into()),
        ("byte order mark", format!("\u{feff}{base_text}")),
        ("array", "[]".into()),
        ("array of base", format!("[{base_text}]")),
        ("number", "42".into()),
        ("negative float", "-1.5e300".into()),
        ("huge exponent", "1e400".into()),
        ("string", r#""infra""#.into()),
        ("null", "null".into()),
        ("true", "true".into()),
        ("deep nesting", nested_deep.clone()),
        ("empty object", "{}".into()),
        ("unknown field", with_value(base, "zz_unknown", json!(1))),
        (
            "proto field",
            with_value(base, "__proto__", json!({"admin": true})),
        ),
        ("empty key", with_value(base, "", json!("x"))),
        (
            "deeply nested field",
            with_raw(base, "zz_nested", &nested_deep),
        ),
        (
            "2 MiB document",
            with_value(base, "zz_pad", json!("p".repeat(2 << 20))),
        ),
    ];
    // Duplicate keys: the host validates one parse, the plugin parses the text again.
    if let Some((key, value)) = base.iter().next() {
        let mut bad_then_good = format!("{{{}:42,", json!(key));
        bad_then_good.push_str(&base_text[1..]);
        raw.push(("duplicate key, bad first", bad_then_good));
        let good_then_bad = format!("{},{}:42}}", &base_text[..base_text.len() - 1], json!(key));
        raw.push(("duplicate key, bad last", good_then_bad));
        let _ = value;
    }
    raw.into_iter()
        .map(|(label, args)| Case {
            label: label.to_string(),
            args,
        })
        .collect()
}

/// Cases for one declared property.
fn property_cases(
    base: &Map<String, Value>,
    name: &str,
    schema: &Value,
    targets: &Targets,
) -> Vec<Case> {
    let mut cases: Vec<(String, String)> = Vec::new();
    let mut raws: Vec<(String, String)> = Vec::new();
    let mut value = |label: &str, v: Value| {
        cases.push((label.to_string(), with_value(base, name, v)));
    };
    // Wrong types, for every property.
    value("null", Value::Null);
    value("boolean", json!(true));
    value("object", json!({"nested": "x"}));
    value("array of strings", json!(["x", "y"]));
    match schema["type"].as_str() {
        Some("string") => {
            value("integer", json!(7));
            value("float", json!(1.5));
        }
        Some("integer") | Some("number") => {
            value("numeric string", json!("10"));
            value("float", json!(1.5));
            value("negative", json!(-1));
            value("zero", json!(0));
            value("i64 min", json!(i64::MIN));
            value("u64 max", json!(u64::MAX));
            value("2^53 + 1", json!(9_007_199_254_740_993u64));
            value("1e308", json!(1e308));
            value("huge limit", json!(1_000_000_000u64));
        }
        Some("boolean") => {
            value("string", json!("true"));
            value("integer", json!(1));
        }
        Some("array") => {
            value("string", json!("x"));
            value("array of nulls", json!([null, null]));
            value("10k items", json!(vec![200; 10_000]));
        }
        _ => value("string", json!("x")),
    }

    let is_text = schema["type"] == "string";
    if is_text {
        let max = schema["maxLength"].as_u64().unwrap_or(200) as usize;
        value("empty", json!(""));
        value("blank", json!("   "));
        value("over maxLength", json!("x".repeat(max + 1)));
        value("4-byte chars at maxLength", json!("😀".repeat(max)));
        value("4-byte chars over maxLength", json!("😀".repeat(max + 1)));
        value(
            "combining marks at maxLength",
            json!("e\u{301}".repeat(max / 2)),
        );
        value("~2 MiB", json!("h".repeat(2 << 20)));
        value("almost 1 MiB", json!("k".repeat((1 << 20) - 200)));
        value("NUL inside", json!("a\u{0}b"));
        value("only NUL", json!("\u{0}"));
        value("control chars", json!("\u{1}\u{7}\u{1b}[31m\r\n"));
        value("RTL override", json!("\u{202e}gnp.exe\u{202c}"));
        value("bidi marks", json!("\u{200f}\u{200e}\u{2066}x\u{2069}"));
        value("emoji ZWJ sequence", json!("👩‍👩‍👧‍👦🏳️‍🌈"));
        value(
            "combining marks",
            json!("Z\u{351}\u{34b}\u{30a}\u{33f}a\u{35b}l\u{30c}g\u{30f}o"),
        );
        value("noncharacters", json!("\u{fffe}\u{ffff}\u{10ffff}"));
        value("zero width", json!("\u{200b}\u{feff}"));
        value("sql text", json!("'; DROP TABLE objects; --"));
        value("json in text", json!("{\"status\":\"resolved\"}"));
        value("path text", json!("../../../../etc/passwd"));
        raws.push((
            ("lone high surrogate").into(),
            with_raw(base, name, r#""\ud800""#),
        ));
        raws.push((
            ("lone low surrogate").into(),
            with_raw(base, name, r#""x\udc00y""#),
        ));
        raws.push((
            ("reversed surrogate pair").into(),
            with_raw(base, name, r#""\ude00\ud83d""#),
        ));
        raws.push((
            ("escaped surrogate pair").into(),
            with_raw(base, name, r#""\ud83d\ude00""#),
        ));
        raws.push(("escaped NUL".into(), with_raw(base, name, r#""\u0000""#)));
        raws.push(("bad escape".into(), with_raw(base, name, r#""\x41""#)));
        raws.push(("raw newline".into(), with_raw(base, name, "\"a\nb\"")));
        raws.push(("unterminated".into(), with_raw(base, name, "\"abc")));
    }
    if schema["format"] == "uuid" {
        let real = targets.id_for(name);
        value("not a uuid", json!("not-a-uuid"));
        value("nil uuid", json!("00000000-0000-0000-0000-000000000000"));
        value("max uuid", json!("ffffffff-ffff-ffff-ffff-ffffffffffff"));
        value("v4 uuid", json!("9b2d6c1e-4f5a-4b7c-8d9e-0a1b2c3d4e5f"));
        value("uppercase", json!(real.to_uppercase()));
        value("braced", json!(format!("{{{real}}}")));
        value("urn", json!(format!("urn:uuid:{real}")));
        value("no hyphens", json!(real.replace('-', "")));
        value("padded", json!(format!(" {real} ")));
        value("truncated", json!(&real[..35]));
        value("one char more", json!(format!("{real}0")));
        value("non-hex", json!("gggggggg-gggg-gggg-gggg-gggggggggggg"));
        value(
            "fullwidth digits",
            json!("０１９３a3c1-7f00-7000-8000-000000000001"),
        );
        value("foreign object", json!(targets.foreign_id_for(name)));
    }
    if let Some(values) = schema["enum"].as_array() {
        let first = values[0].as_str().unwrap_or("x");
        value("not in enum", json!("definitely_not_a_value"));
        value("enum with space", json!(format!(" {first}")));
        value("enum uppercased", json!(first.to_uppercase()));
        value("enum with NUL", json!(format!("{first}\u{0}")));
    }
    if name == "limit" || name == "offset" {
        value("negative paging", json!(-5));
        value("u32 max paging", json!(u32::MAX));
        value("u32 max + 1 paging", json!(u32::MAX as u64 + 1));
    }
    if schema.get("type").is_none() && schema.get("enum").is_none() {
        value("huge string", json!("v".repeat(2 << 20)));
    }
    cases
        .into_iter()
        .chain(raws)
        .map(|(label, args)| Case {
            label: format!("{name}: {label}"),
            args,
        })
        .collect()
}

async fn setup_targets(t: &TestHost) -> Targets {
    let foreign_session = rusvel_host::clock::new_id();
    let incident = t
        .ok(
            "infra.incidents.create",
            json!({"title": "Disk full", "severity": "P2"}),
        )
        .await["incident_id"]
        .as_str()
        .unwrap()
        .to_string();
    let deployment = t
        .ok(
            "infra.deploy.trigger",
            json!({"service": "api", "version": "v1", "environment": "prod"}),
        )
        .await["deployment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let check = t
        .ok(
            "infra.monitor.add_check",
            json!({"service": "api", "endpoint": "http://127.0.0.1:9/health"}),
        )
        .await["check_id"]
        .as_str()
        .unwrap()
        .to_string();
    let foreign_incident = t
        .ok(
            "infra.incidents.create",
            json!({"session_id": foreign_session, "title": "Other", "severity": "P1"}),
        )
        .await["incident_id"]
        .as_str()
        .unwrap()
        .to_string();
    let foreign_deployment = t
        .ok(
            "infra.deploy.trigger",
            json!({"session_id": foreign_session, "service": "api", "version": "v9",
                   "environment": "prod"}),
        )
        .await["deployment_id"]
        .as_str()
        .unwrap()
        .to_string();
    Targets {
        session: t.session.clone(),
        foreign_session,
        incident,
        deployment,
        check,
        foreign_incident,
        foreign_deployment,
    }
}

/// How the corpus went.
#[derive(Debug, Default)]
struct Tally {
    calls: usize,
    refused_by_host: usize,
    refused_by_plugin: usize,
    accepted: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tool_refuses_bad_input_without_crashing_or_writing() {
    let t = TestHost::start().await;
    let db = t
        .host
        .database()
        .expect("the host opened a database")
        .path()
        .to_path_buf();
    let targets = setup_targets(&t).await;
    let tools = t.host.plugin("infra").unwrap().registration().tools.clone();
    assert!(
        tools.len() >= 4,
        "too few tools registered: {}",
        tools.len()
    );

    let mut tally = Tally::default();
    let mut before = snapshot(&db);
    for tool in &tools {
        let schema: Value = serde_json::from_str(&tool.parameters_schema)
            .unwrap_or_else(|e| panic!("{}: schema is not JSON: {e}", tool.name));
        let base = base_args(&schema, &targets);
        let mut cases = shape_cases(&base);
        for (name, property) in schema["properties"].as_object().into_iter().flatten() {
            cases.extend(property_cases(&base, name, property, &targets));
        }
        for case in cases {
            tally.calls += 1;
            let result = t.host.call_tool("infra", &tool.name, &case.args).await;
            let context = || {
                let mut shown = case.args.clone();
                shown.truncate(300);
                format!("{} [{}] args {shown}", tool.name, case.label)
            };
            let refused = match result {
                Ok(output) if output.is_error => {
                    tally.refused_by_plugin += 1;
                    true
                }
                Ok(output) => {
                    serde_json::from_str::<Value>(&output.content).unwrap_or_else(|e| {
                        panic!("{}: accepted with non-JSON content ({e})", context())
                    });
                    tally.accepted += 1;
                    false
                }
                Err(HostError::InvalidArguments { .. } | HostError::LimitExceeded { .. }) => {
                    tally.refused_by_host += 1;
                    true
                }
                Err(HostError::Plugin { error, .. }) => {
                    assert!(
                        !matches!(error, PortError::Internal(_) | PortError::Storage(_)),
                        "{}: the plugin failed internally: {error}",
                        context()
                    );
                    tally.refused_by_plugin += 1;
                    true
                }
                Err(other) => panic!(
                    "{}: crashed or failed outside the rules: {other}",
                    context()
                ),
            };
            let after = snapshot(&db);
            if refused {
                assert_eq!(
                    after,
                    before,
                    "{}: a refused call changed the store",
                    context()
                );
            }
            before = after;
            // The host keeps serving: a valid call right after succeeds.
            let listed = t.ok("infra.incidents.list", json!({"limit": 1})).await;
            assert!(listed["incidents"].is_array(), "{}: {listed}", context());
        }
    }
    eprintln!("bad-input corpus over {} tools: {tally:?}", tools.len());
    assert!(tally.refused_by_host + tally.refused_by_plugin > tally.accepted);

    // The foreign session's objects are untouched by every call made from this session.
    let foreign = t
        .host
        .store()
        .get_versioned("infra_incident", &targets.foreign_incident)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(foreign.version, 1, "a foreign incident was changed");
    let foreign = t
        .host
        .store()
        .get_versioned("infra_deploy", &targets.foreign_deployment)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(foreign.version, 1, "a foreign deployment was changed");
}

#[tokio::test]
async fn text_at_the_length_limit_in_four_byte_characters_round_trips() {
    let t = TestHost::start().await;
    let tool = t
        .host
        .plugin("infra")
        .unwrap()
        .registration()
        .tools
        .iter()
        .find(|tool| tool.name == "infra.incidents.create")
        .cloned()
        .unwrap();
    let schema: Value = serde_json::from_str(&tool.parameters_schema).unwrap();
    let max = schema["properties"]["title"]["maxLength"].as_u64().unwrap() as usize;

    for title in [
        "😀".repeat(max),
        "e\u{301}".repeat(max / 2),
        "\u{202e}evil\u{202c} 👩‍👩‍👧‍👦".to_string(),
        "a\u{0}b".to_string(),
    ] {
        let created = t
            .ok(
                "infra.incidents.create",
                json!({"title": title, "severity": "P3"}),
            )
            .await;
        let id = created["incident_id"].as_str().unwrap();
        let stored = t
            .host
            .store()
            .get("infra_incident", id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored["title"].as_str(), Some(title.as_str()));
        let event = t.events().await.pop().unwrap();
        assert_eq!(event.payload["title"].as_str(), Some(title.as_str()));
    }
    let over = "😀".repeat(max + 1);
    let error = t
        .refused(
            "infra.incidents.create",
            json!({"title": over, "severity": "P3"}),
        )
        .await;
    assert!(error.contains("title"), "{error}");
}
