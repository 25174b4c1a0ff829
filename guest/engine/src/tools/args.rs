//! Tool arguments: checked against the tool's own JSON Schema before any handler runs, then
//! read through typed accessors.
//!
//! The checker understands exactly the subset of JSON Schema the tool schemas use (object
//! with `properties`, `required`, `additionalProperties: false` and `anyOf` of `required`
//! sets; `type` as one name or a list of names; strings with `minLength`, `maxLength`,
//! `enum`, `format: uuid`; integers and numbers with `minimum` and `maximum`; booleans;
//! nulls; arrays with `items`, `minItems` and `maxItems`), so what the schema promises a host
//! and what the engine enforces cannot drift apart. A unit test keeps the schemas inside that
//! subset.

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{EngineError, Result};
use crate::ids::SessionId;
use crate::page::PageRequest;

/// Keywords the checker understands, per schema level.
#[cfg(test)]
pub(crate) const OBJECT_KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "anyOf",
    "description",
];
/// Keywords the checker understands on a property.
#[cfg(test)]
pub(crate) const PROPERTY_KEYWORDS: &[&str] = &[
    "type",
    "description",
    "minLength",
    "maxLength",
    "enum",
    "format",
    "minimum",
    "maximum",
    "default",
    "items",
    "minItems",
    "maxItems",
];

/// Validated arguments of one tool call.
#[derive(Debug)]
pub struct Args<'a> {
    tool: &'a str,
    fields: &'a Map<String, Value>,
}

impl<'a> Args<'a> {
    /// Checks `args` against `schema`; every error names the tool and the field.
    pub fn check(tool: &'a str, schema: &Value, args: &'a Value) -> Result<Self> {
        let invalid = |message: String| EngineError::validation(format!("{tool}: {message}"));
        let fields = args.as_object().ok_or_else(|| {
            invalid(format!(
                "arguments must be a JSON object, got {}",
                type_name(args)
            ))
        })?;
        let properties = schema["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        if let Some(unknown) = fields.keys().find(|key| !properties.contains_key(*key)) {
            let known: Vec<&str> = properties.keys().map(String::as_str).collect();
            return Err(invalid(format!(
                "unknown field `{unknown}` (expected one of: {})",
                known.join(", ")
            )));
        }
        for required in names(&schema["required"]) {
            if !fields.contains_key(required) {
                return Err(invalid(format!("field `{required}` is required")));
            }
        }
        if let Some(alternatives) = schema["anyOf"].as_array() {
            let satisfied = alternatives
                .iter()
                .any(|option| names(&option["required"]).all(|name| fields.contains_key(name)));
            if !satisfied {
                let sets: Vec<String> = alternatives
                    .iter()
                    .map(|option| names(&option["required"]).collect::<Vec<_>>().join(" and "))
                    .collect();
                return Err(invalid(format!(
                    "give at least one of: {}",
                    sets.join(", ")
                )));
            }
        }
        for (name, value) in fields {
            check_property(name, &properties[name], value).map_err(invalid)?;
        }
        Ok(Self { tool, fields })
    }

    /// The tool these arguments are for.
    pub fn tool(&self) -> &str {
        self.tool
    }

    /// A string field, trimmed; `None` when absent.
    pub fn text(&self, field: &str) -> Option<&'a str> {
        self.fields
            .get(field)
            .and_then(Value::as_str)
            .map(str::trim)
    }

    /// A required string field, trimmed.
    pub fn required_text(&self, field: &str) -> Result<&'a str> {
        self.text(field).ok_or_else(|| {
            EngineError::validation(format!("{}: field `{field}` is required", self.tool))
        })
    }

    /// An optional string field as an owned value.
    pub fn note(&self, field: &str) -> Option<String> {
        self.text(field).map(str::to_string)
    }

    /// An integer field; `None` when absent.
    pub fn integer(&self, field: &str) -> Option<u32> {
        self.fields
            .get(field)
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
    }

    /// An unsigned integer field; `None` when absent.
    pub fn u64(&self, field: &str) -> Option<u64> {
        self.fields.get(field).and_then(Value::as_u64)
    }

    /// A boolean field; `None` when absent.
    pub fn boolean(&self, field: &str) -> Option<bool> {
        self.fields.get(field).and_then(Value::as_bool)
    }

    /// A field's raw JSON value; `None` when absent.
    pub fn value(&self, field: &str) -> Option<&'a Value> {
        self.fields.get(field)
    }

    /// An array field's items; `None` when absent.
    pub fn array(&self, field: &str) -> Option<&'a Vec<Value>> {
        self.fields.get(field).and_then(Value::as_array)
    }

    /// An optional UUID field as an id newtype.
    pub fn optional_id<T: From<Uuid>>(&self, field: &str) -> Result<Option<T>> {
        match self.text(field) {
            Some(_) => self.id(field).map(Some),
            None => Ok(None),
        }
    }

    /// The `session_id` field.
    pub fn session(&self) -> Result<SessionId> {
        self.id("session_id")
    }

    /// A required UUID field as an id newtype.
    pub fn id<T: From<Uuid>>(&self, field: &str) -> Result<T> {
        let text = self.required_text(field)?;
        Uuid::parse_str(text).map(T::from).map_err(|_| {
            EngineError::validation(format!("{}: field `{field}` must be a UUID", self.tool))
        })
    }

    /// The `limit` and `offset` fields.
    pub fn page(&self) -> PageRequest {
        PageRequest::new(self.integer("limit"), self.integer("offset"))
    }

    /// An optional enumerated field parsed with `parse`.
    pub fn choice<T>(&self, field: &str, parse: fn(&str) -> Option<T>) -> Result<Option<T>> {
        self.text(field)
            .map(|text| {
                parse(text).ok_or_else(|| {
                    EngineError::validation(format!(
                        "{}: field `{field}` has an unknown value `{text}`",
                        self.tool
                    ))
                })
            })
            .transpose()
    }
}

/// Checks one property value against its schema; the message names the field.
fn check_property(name: &str, schema: &Value, value: &Value) -> Result<(), String> {
    let types: Vec<&str> = match &schema["type"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        other => {
            return Err(format!(
                "field `{name}` has an unsupported schema type {other}"
            ))
        }
    };
    let matched = types.iter().find(|kind| match **kind {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "array" => value.is_array(),
        _ => false,
    });
    match matched.copied() {
        Some("string") => check_string(name, schema, value),
        Some("integer") | Some("number") => check_number(name, schema, value),
        Some("array") => check_array(name, schema, value),
        Some(_) => Ok(()),
        None if types.len() == 1 && types[0] == "string" => check_string(name, schema, value),
        None if types.len() == 1 && types[0] == "integer" => check_number(name, schema, value),
        None => Err(format!(
            "field `{name}` must be {}, got {}",
            types.join(" or "),
            type_name(value)
        )),
    }
}

fn check_array(name: &str, schema: &Value, value: &Value) -> Result<(), String> {
    let items = value.as_array().expect("checked to be an array");
    if let Some(min) = schema["minItems"].as_u64() {
        if (items.len() as u64) < min {
            return Err(format!("field `{name}` needs at least {min} items"));
        }
    }
    if let Some(max) = schema["maxItems"].as_u64() {
        if items.len() as u64 > max {
            return Err(format!("field `{name}` takes at most {max} items"));
        }
    }
    for (index, item) in items.iter().enumerate() {
        check_property(&format!("{name}[{index}]"), &schema["items"], item)?;
    }
    Ok(())
}

fn check_string(name: &str, schema: &Value, value: &Value) -> Result<(), String> {
    let text = value
        .as_str()
        .ok_or_else(|| format!("field `{name}` must be a string, got {}", type_name(value)))?;
    let length = text.chars().count() as u64;
    if let Some(min) = schema["minLength"].as_u64() {
        if length < min || (min > 0 && text.trim().is_empty()) {
            return Err(format!("field `{name}` must not be empty or blank"));
        }
    }
    if let Some(max) = schema["maxLength"].as_u64() {
        if length > max {
            return Err(format!("field `{name}` is longer than {max} characters"));
        }
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.iter().any(|option| option.as_str() == Some(text)) {
            let options: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
            return Err(format!(
                "field `{name}` must be one of: {}",
                options.join(", ")
            ));
        }
    }
    if schema["format"] == "uuid" && Uuid::parse_str(text).is_err() {
        return Err(format!("field `{name}` must be a UUID, got `{text}`"));
    }
    Ok(())
}

fn check_number(name: &str, schema: &Value, value: &Value) -> Result<(), String> {
    let integer_only = schema["type"] == "integer";
    let number = match value.as_f64() {
        Some(number) if !integer_only || value.is_i64() || value.is_u64() => number,
        _ => {
            return Err(format!(
                "field `{name}` must be an integer, got {}",
                type_name(value)
            ))
        }
    };
    if let Some(min) = schema["minimum"].as_f64() {
        if number < min {
            return Err(format!(
                "field `{name}` must be at least {}",
                schema["minimum"]
            ));
        }
    }
    if let Some(max) = schema["maximum"].as_f64() {
        if number > max {
            return Err(format!(
                "field `{name}` must be at most {}",
                schema["maximum"]
            ));
        }
    }
    Ok(())
}

fn names(list: &Value) -> impl Iterator<Item = &str> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
