//! Builders for the tools' parameter schemas, so every tool spells shared fields the same way.

use serde_json::{json, Map, Value};

use crate::page::{DEFAULT_LIMIT, MAX_LIMIT};

/// The longest name accepted (service, version, environment, title).
pub const MAX_NAME: u64 = 200;
/// The longest free text accepted (incident description).
pub const MAX_DESCRIPTION: u64 = 10_000;
/// The longest note or reason accepted.
pub const MAX_NOTE: u64 = 2_000;

/// An object schema with these properties, of which `required` must be present, and no
/// others.
pub fn object(properties: Vec<(&str, Value)>, required: &[&str]) -> Value {
    let properties: Map<String, Value> = properties
        .into_iter()
        .map(|(name, schema)| (name.to_string(), schema))
        .collect();
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// The session every call is scoped to.
pub fn session_id() -> Value {
    uuid("The RUSVEL session (UUID) the objects belong to.")
}

/// A UUID string.
pub fn uuid(description: &str) -> Value {
    json!({ "type": "string", "format": "uuid", "description": description })
}

/// A non-blank name of at most [`MAX_NAME`] characters.
pub fn name(description: &str) -> Value {
    text(description, MAX_NAME)
}

/// A non-blank string of at most `max` characters.
pub fn text(description: &str, max: u64) -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": max, "description": description })
}

/// One of `values`.
pub fn one_of(description: &str, values: &[&str]) -> Value {
    json!({ "type": "string", "enum": values, "description": description })
}

/// An incident severity, `P1` to `P4` in either case.
pub fn severity(description: &str) -> Value {
    one_of(
        description,
        &["P1", "P2", "P3", "P4", "p1", "p2", "p3", "p4"],
    )
}

/// The page size of a list.
pub fn limit() -> Value {
    json!({
        "type": "integer",
        "minimum": 1,
        "maximum": MAX_LIMIT,
        "default": DEFAULT_LIMIT,
        "description": "At most this many items (default 50, at most 200).",
    })
}

/// How many matching items to skip.
pub fn offset() -> Value {
    json!({
        "type": "integer",
        "minimum": 0,
        "maximum": u32::MAX,
        "default": 0,
        "description": "Skip this many matching items first (for paging).",
    })
}
