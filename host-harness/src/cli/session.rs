//! The CLI's remembered session id: created once as a UUIDv7, kept in `<data-dir>/session`.

use std::path::Path;

use anyhow::Context;

/// Reads the session id, creating and storing one on first use.
pub fn session_id(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("session");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let id = text.trim();
        if uuid::Uuid::parse_str(id).is_ok() {
            return Ok(id.to_string());
        }
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let id = rusvel_host::clock::new_id();
    std::fs::write(&path, format!("{id}\n"))
        .with_context(|| format!("writing session file {}", path.display()))?;
    Ok(id)
}
