//! Tables and JSON for the terminal.

use rusvel_host::PluginHost;
use serde_json::{json, Value};

/// Prints rows as left-aligned columns under a header.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> anyhow::Result<()> {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        outln!("{}", padded.join("  ").trim_end());
        Ok(())
    };
    line(header.to_vec())?;
    for row in rows {
        line(row.iter().map(String::as_str).collect())?;
    }
    Ok(())
}

/// Prints a value as pretty JSON.
pub fn print_json(value: &Value) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Cuts text to `max` characters, marking the cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut clipped: String = text.chars().take(max.saturating_sub(1)).collect();
        clipped.push('…');
        clipped
    }
}

/// `rusvel-host plugins`.
pub fn print_plugins(host: &PluginHost, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        let plugins: Vec<Value> = host
            .plugins()
            .map(|plugin| plugin.manifest_json())
            .collect();
        return print_json(&json!({ "plugins": plugins, "failures": host.failures() }));
    }
    let rows: Vec<Vec<String>> = host
        .plugins()
        .map(|plugin| {
            let manifest = plugin.manifest();
            vec![
                plugin.id().to_string(),
                manifest.name.clone(),
                plugin.version().to_string(),
                plugin.registration().tools.len().to_string(),
                format!(
                    "{} produced, {} consumed",
                    manifest.events_produced.len(),
                    manifest.events_consumed.len()
                ),
            ]
        })
        .collect();
    if rows.is_empty() {
        outln!(
            "no plugins loaded from {}",
            host.config().plugins_dir.display()
        );
    } else {
        print_table(&["ID", "NAME", "CONTRACT", "TOOLS", "EVENTS"], &rows)?;
    }
    if !host.failures().is_empty() {
        outln!();
        outln!("failed to load:");
        for failure in host.failures() {
            outln!("  {}: {}", failure.path.display(), failure.error);
        }
    }
    Ok(())
}
