//! The result table (printed) and `report.json` (written).

use std::path::Path;

use serde_json::{json, Map, Value};

/// One printed line.
struct Row {
    what: String,
    value: String,
    target: String,
    verdict: Option<bool>,
}

/// Everything measured, for the table and the JSON file.
#[derive(Default)]
pub struct Report {
    rows: Vec<Row>,
    metrics: Map<String, Value>,
}

impl Report {
    /// Starts a section of the table.
    pub fn section(&mut self, title: &str) {
        self.rows.push(Row {
            what: format!("== {title}"),
            value: String::new(),
            target: String::new(),
            verdict: None,
        });
    }

    /// A measured line with no target.
    pub fn info(&mut self, what: &str, value: String) {
        self.rows.push(Row {
            what: what.into(),
            value,
            target: String::new(),
            verdict: None,
        });
    }

    /// A measured line checked against a target.
    pub fn check(&mut self, what: &str, value: String, target: &str, pass: bool) {
        self.rows.push(Row {
            what: what.into(),
            value,
            target: target.into(),
            verdict: Some(pass),
        });
        let targets = self
            .metrics
            .entry("targets")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(targets) = targets {
            targets.push(json!({ "what": what, "target": target, "pass": pass }));
        }
    }

    /// Records a metric in the JSON report under `key`.
    pub fn metric(&mut self, key: &str, value: Value) {
        self.metrics.insert(key.into(), value);
    }

    /// Prints the table to stdout.
    pub fn print(&self) {
        let width = self
            .rows
            .iter()
            .map(|row| row.what.len())
            .max()
            .unwrap_or(0);
        let value_width = self
            .rows
            .iter()
            .map(|row| row.value.len())
            .max()
            .unwrap_or(0);
        println!();
        for row in &self.rows {
            if row.what.starts_with("==") {
                println!("\n{}", row.what);
                continue;
            }
            let verdict = match row.verdict {
                Some(true) => "PASS",
                Some(false) => "MISS",
                None => "",
            };
            println!(
                "  {:width$}  {:>value_width$}  {:4}  {}",
                row.what, row.value, verdict, row.target
            );
        }
        let checked: Vec<bool> = self.rows.iter().filter_map(|row| row.verdict).collect();
        let passed = checked.iter().filter(|pass| **pass).count();
        println!("\n  targets met: {passed} of {}", checked.len());
    }

    /// Writes the JSON report.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&self.metrics)? + "\n")?;
        Ok(())
    }
}
