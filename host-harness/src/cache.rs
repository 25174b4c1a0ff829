//! Compiling components, with an on-disk cache of compiled artifacts.
//!
//! The cache key is the SHA-256 of the component bytes together with the engine's
//! precompile-compatibility hash (which covers settings such as epoch interruption), so a
//! changed component or engine configuration never loads a stale artifact. Artifacts live
//! in `<data-dir>/cache/`, a directory the host itself writes; loading one skips
//! validation, so that directory must not be writable by anyone the host does not trust.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

use crate::error::{describe, HostError};

/// Compiles the component at `path`, through the cache when `cache_dir` is given.
pub fn load_component(
    engine: &Engine,
    path: &Path,
    cache_dir: Option<&Path>,
) -> Result<Component, HostError> {
    let bytes = std::fs::read(path).map_err(|source| HostError::Io {
        path: path.into(),
        source,
    })?;
    let Some(cache_dir) = cache_dir else {
        return compile(engine, path, &bytes);
    };

    let cached = cache_dir.join(format!("{}.cwasm", cache_key(engine, &bytes)));
    if cached.exists() {
        // SAFETY: the file was written by `Component::serialize` of this host into its own
        // data directory, and its name binds it to these exact bytes and engine settings.
        match unsafe { Component::deserialize_file(engine, &cached) } {
            Ok(component) => {
                tracing::debug!(path = %path.display(), "compiled component loaded from cache");
                return Ok(component);
            }
            Err(error) => tracing::info!(
                cache = %cached.display(),
                reason = %describe(&error),
                "cached component unusable; compiling again"
            ),
        }
    }

    let component = compile(engine, path, &bytes)?;
    if let Err(error) = store(&component, cache_dir, &cached) {
        tracing::info!(cache = %cached.display(), %error, "compiled component not cached");
    }
    Ok(component)
}

fn compile(engine: &Engine, path: &Path, bytes: &[u8]) -> Result<Component, HostError> {
    check_header(bytes).map_err(|reason| HostError::InvalidComponent {
        path: path.into(),
        reason,
    })?;
    let started = std::time::Instant::now();
    let component =
        Component::from_binary(engine, bytes).map_err(|error| HostError::InvalidComponent {
            path: path.into(),
            reason: format!("not a valid WebAssembly component: {}", describe(&error)),
        })?;
    tracing::info!(
        path = %path.display(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "component compiled"
    );
    Ok(component)
}

/// Tells a component from a core module or a file that is not WebAssembly at all, since
/// the parser's own message for these is cryptic.
fn check_header(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err("not a WebAssembly file (no `\\0asm` header)".into());
    }
    // Bytes 6..8 are the layer: 0 for a core module, 1 for a component.
    if bytes[6..8] == [0, 0] {
        return Err(
            "a core WebAssembly module, not a component; build the plugin for \
                    `--target wasm32-wasip2`"
                .into(),
        );
    }
    Ok(())
}

fn store(component: &Component, cache_dir: &Path, cached: &PathBuf) -> Result<(), String> {
    let artifact = component.serialize().map_err(|error| describe(&error))?;
    std::fs::create_dir_all(cache_dir).map_err(|error| error.to_string())?;
    // Write then rename, so a concurrent reader never sees half a file.
    let partial = cached.with_extension(format!("partial-{}", std::process::id()));
    std::fs::write(&partial, artifact).map_err(|error| error.to_string())?;
    std::fs::rename(&partial, cached).map_err(|error| error.to_string())
}

fn cache_key(engine: &Engine, bytes: &[u8]) -> String {
    let mut settings = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut settings);
    let mut digest = Sha256::new();
    digest.update(bytes);
    digest.update(settings.finish().to_le_bytes());
    digest.update(env!("CARGO_PKG_VERSION").as_bytes());
    digest
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
