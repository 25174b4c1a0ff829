//! Compiling components, with an on-disk cache of compiled artifacts.
//!
//! # Key
//!
//! An entry's file name is the BLAKE3 hash of the component bytes, the engine's
//! precompile-compatibility hash (which covers the settings that change compiled code, such
//! as epoch interruption) and this crate's version, so a changed component or engine
//! configuration never even looks at an old entry.
//!
//! # Entry format
//!
//! An entry is two files in `<data-dir>/cache/`:
//!
//! - `<key>.cwasm`: exactly the artifact `Component::serialize` produced, so that
//!   `Component::deserialize_file` can map it straight from the page cache (no read into a
//!   buffer, no copy into fresh executable memory);
//! - `<key>.sum`, 24 bytes: magic `RUSVELC4` (bytes 0..8), the artifact length as a
//!   little-endian `u64` (8..16), the CRC-32 (IEEE) of the key followed by the artifact as a
//!   little-endian `u32` (16..20) and four zero bytes.
//!
//! Loading opens both files without blocking (a FIFO at an entry's name cannot hang the
//! host) and refuses anything but regular files; a sum file of any size but 24 bytes is
//! refused before it is read. The artifact is mapped read-only and run through the checksum
//! (no copy out of the page cache, no 2 MB allocation); magic, reserved bytes, length and
//! CRC must all match before the file reaches `Component::deserialize_file`, which trusts
//! its input (it maps the code as executable). On Linux wasmtime is handed
//! `/proc/self/fd/N` of the descriptor that was verified, so a different file renamed into
//! place between the check and the load is never loaded. Because the key is in the CRC, a
//! sound entry copied under another component's name fails the check too. A corrupt,
//! truncated, misplaced or foreign entry is reported, compiled again and overwritten; it is
//! never loaded.
//!
//! Writers put each file in a temporary file with a name unique to the process, the thread
//! and the write, then rename it into place, so concurrent hosts or threads never see half
//! a file and never collide. The artifact is renamed first and its sum last: an artifact
//! without a sum is no entry yet, and a sum that belongs to another write of the artifact
//! fails the check and is rebuilt, never trusted. Temporary files of writers that were
//! killed before their rename are removed by the next write of the same entry once they are
//! a minute old.
//!
//! Two hashes, two jobs. The key must tell components apart even when someone crafts one to
//! look like another, so it is a cryptographic hash: BLAKE3, several times faster than the
//! SHA-256 it replaced (which, even with the CPU's SHA instructions, was a third of a cache
//! hit). The checksum only has to catch damage (a torn write, a flipped bit, a file cut
//! short), the job CRC-32 was designed for.
//!
//! The directory must still not be writable by anyone the host does not trust: the checksum
//! catches damage, not an attacker who can write both the artifact and its checksum, nor
//! one who rewrites or truncates an artifact in place while it is mapped.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crc32fast::Hasher as Crc32;
use wasmtime::component::Component;
use wasmtime::Engine;

use crate::error::{describe, HostError};

/// First bytes of every sum file. Entries of the older single-file formats (`RUSVELC1`,
/// `RUSVELC2`) have no sum file and are compiled again; `RUSVELC3` sums did not cover the key
/// and are reported and replaced.
const MAGIC: &[u8; 8] = b"RUSVELC4";

/// Magic, length, checksum and four reserved bytes.
const SUM_LEN: usize = 8 + 8 + 4 + 4;

/// Where a compiled component came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheOutcome {
    /// No cache directory: compiled.
    Uncached,
    /// A verified entry was loaded.
    Hit,
    /// No entry yet: compiled and (if the directory was writable) stored.
    Compiled,
    /// An entry existed but was unusable (the reason says why): compiled and replaced.
    Rebuilt(String),
}

/// Compiles the component at `path`, through the cache when `cache_dir` is given.
pub fn load_component(
    engine: &Engine,
    path: &Path,
    cache_dir: Option<&Path>,
) -> Result<Component, HostError> {
    load_component_with_outcome(engine, path, cache_dir).map(|(component, _)| component)
}

/// Like [`load_component`], also saying whether the cache served the component.
pub fn load_component_with_outcome(
    engine: &Engine,
    path: &Path,
    cache_dir: Option<&Path>,
) -> Result<(Component, CacheOutcome), HostError> {
    let bytes = std::fs::read(path).map_err(|source| HostError::Io {
        path: path.into(),
        source,
    })?;
    let Some(cache_dir) = cache_dir else {
        return Ok((compile(engine, path, &bytes)?, CacheOutcome::Uncached));
    };

    let entry = Entry::new(cache_dir, &cache_key(engine, &bytes));
    let outcome = match read_entry(engine, &entry) {
        Ok(Some(component)) => {
            tracing::debug!(path = %path.display(), "compiled component loaded from cache");
            return Ok((component, CacheOutcome::Hit));
        }
        Ok(None) => CacheOutcome::Compiled,
        Err(reason) => {
            tracing::warn!(
                cache = %entry.artifact.display(),
                %reason,
                "cached component unusable; compiling again"
            );
            CacheOutcome::Rebuilt(reason)
        }
    };

    let component = compile(engine, path, &bytes)?;
    if let Err(error) = write_entry(&component, cache_dir, &entry) {
        tracing::warn!(
            cache = %entry.artifact.display(),
            %error,
            "compiled component not cached; later loads compile it again until an entry \
             can be written"
        );
    }
    Ok((component, outcome))
}

/// The two files of one cache entry.
#[derive(Debug, Clone)]
struct Entry {
    key: String,
    artifact: PathBuf,
    sum: PathBuf,
}

impl Entry {
    fn new(cache_dir: &Path, key: &str) -> Entry {
        Entry {
            key: key.to_string(),
            artifact: cache_dir.join(format!("{key}.cwasm")),
            sum: cache_dir.join(format!("{key}.sum")),
        }
    }
}

/// Reads and verifies an entry: `Ok(None)` when there is none, `Err` when it is unusable.
fn read_entry(engine: &Engine, entry: &Entry) -> Result<Option<Component>, String> {
    let sum = match open_regular(&entry.sum) {
        Ok((file, size)) => {
            read_sum(file, size).map_err(|error| format!("unreadable checksum file: {error}"))?
        }
        // No entry, or no cache directory at all (a file stands where it should be): the
        // failed write afterwards says why nothing gets cached.
        Err(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(None)
        }
        Err(error) => return Err(format!("unreadable checksum file: {error}")),
    };
    let (length, crc) = parse_sum(&sum)?;
    let (artifact, size) = open_regular(&entry.artifact).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => "artifact missing beside its checksum".to_string(),
        _ => format!("unreadable artifact: {error}"),
    })?;
    if size != length {
        return Err(format!(
            "truncated or extended: {size} artifact bytes, checksum file says {length}"
        ));
    }
    verify_artifact(&artifact, &entry.key, length, crc)?;
    // SAFETY: the file holds byte for byte what `Component::serialize` of this host wrote
    // for this key (its length and key-bound CRC-32 match the ones stored beside it), and
    // wasmtime checks the engine settings again. It is the very file just verified: on
    // Linux wasmtime opens it through this process's descriptor, not by its name again, so
    // a file renamed into place meanwhile is never loaded unchecked. Entries are only ever
    // replaced by rename, never written in place, so the mapping keeps the verified bytes.
    unsafe { Component::deserialize_file(engine, verified_path(&artifact, &entry.artifact)) }
        .map(Some)
        .map_err(|error| format!("not loadable: {}", describe(&error)))
}

/// Opens `path` for reading without blocking on a FIFO, and refuses anything but a regular
/// file (a directory, a FIFO or a device standing at an entry's name). Returns the file and
/// its size.
fn open_regular(path: &Path) -> std::io::Result<(std::fs::File, u64)> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let metadata = file.metadata()?;
    let kind = metadata.file_type();
    if kind.is_file() {
        Ok((file, metadata.len()))
    } else {
        let what = if kind.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        Err(std::io::Error::other(what))
    }
}

/// The sum file's bytes, refusing a file of any other size before reading it.
fn read_sum(mut file: std::fs::File, size: u64) -> std::io::Result<[u8; SUM_LEN]> {
    use std::io::Read;
    if size != SUM_LEN as u64 {
        return Err(std::io::Error::other(format!(
            "{size} bytes, a checksum file has {SUM_LEN}"
        )));
    }
    let mut sum = [0u8; SUM_LEN];
    file.read_exact(&mut sum)?;
    Ok(sum)
}

/// A path that opens exactly `file`: `/proc/self/fd/N` where the kernel provides it, else the
/// entry's own name.
fn verified_path(file: &std::fs::File, name: &Path) -> PathBuf {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let by_descriptor = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        if by_descriptor.exists() {
            return by_descriptor;
        }
    }
    let _ = file;
    name.to_path_buf()
}

/// The artifact length and CRC-32 a sum file records.
fn parse_sum(sum: &[u8]) -> Result<(u64, u32), String> {
    if sum.len() != SUM_LEN || &sum[..8] != MAGIC || sum[20..] != [0; 4] {
        return Err("not a cache entry of this host (bad checksum file)".into());
    }
    let mut length = [0u8; 8];
    length.copy_from_slice(&sum[8..16]);
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&sum[16..20]);
    Ok((u64::from_le_bytes(length), u32::from_le_bytes(crc)))
}

/// Maps the artifact, whose size already matched the sum file's `length`, and compares its
/// key-bound CRC-32 with the sum file's.
fn verify_artifact(file: &std::fs::File, key: &str, length: u64, crc: u32) -> Result<(), String> {
    if length == 0 {
        return Err("empty artifact".into());
    }
    // SAFETY: the mapping is read-only and dropped before this function returns; entries
    // are replaced by rename, never written in place, so no writer of this host changes the
    // mapped file (the module docs say why the directory must not be writable by others).
    let mapped = unsafe { memmap2::Mmap::map(file) }
        .map_err(|error| format!("unreadable artifact: {error}"))?;
    if checksum(key, &mapped) != crc {
        return Err("checksum mismatch (corrupt entry, or an entry of another key)".into());
    }
    Ok(())
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

/// Writes an entry: the artifact, then its sum, each through a uniquely named temporary
/// file and an atomic rename.
fn write_entry(component: &Component, cache_dir: &Path, entry: &Entry) -> Result<(), String> {
    let artifact = component.serialize().map_err(|error| describe(&error))?;
    let mut sum = Vec::with_capacity(SUM_LEN);
    sum.extend_from_slice(MAGIC);
    sum.extend_from_slice(&(artifact.len() as u64).to_le_bytes());
    sum.extend_from_slice(&checksum(&entry.key, &artifact).to_le_bytes());
    sum.extend_from_slice(&[0; 4]);

    std::fs::create_dir_all(cache_dir).map_err(|error| error.to_string())?;
    remove_abandoned_partials(cache_dir, &entry.key);
    replace_file(&entry.artifact, &artifact)?;
    replace_file(&entry.sum, &sum)
}

/// Puts `contents` at `path` through a temporary file and a rename. An empty directory at
/// `path` (nothing this host writes) is removed first; anything else there is replaced.
fn replace_file(path: &Path, contents: &[u8]) -> Result<(), String> {
    if std::fs::symlink_metadata(path).is_ok_and(|found| found.is_dir()) {
        std::fs::remove_dir(path).map_err(|error| {
            format!(
                "a directory stands at {} and cannot be removed: {error}",
                path.display()
            )
        })?;
    }
    let partial = partial_name(path);
    let written = std::fs::write(&partial, contents)
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(|error| format!("{}: {error}", path.display()));
    if written.is_err() {
        // Best effort: a leftover temporary file is harmless but wastes space.
        let _ = std::fs::remove_file(&partial);
    }
    written
}

/// How old a temporary file must be before it can count as abandoned. A writer renames its
/// file milliseconds after creating it; the age matters when hosts in other PID namespaces
/// (containers) share the cache, where a live writer's process id looks unused.
const PARTIAL_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes the temporary files of `key` that a writer killed between write and rename left
/// behind: those older than [`PARTIAL_GRACE`] whose process no longer exists (where that
/// can be told; elsewhere they stay, harmless but for their size).
fn remove_abandoned_partials(cache_dir: &Path, key: &str) {
    let Ok(listing) = std::fs::read_dir(cache_dir) else {
        return;
    };
    for found in listing.flatten() {
        let name = found.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(key) else {
            continue;
        };
        let Some((_, writer)) = rest.split_once(".partial-") else {
            continue;
        };
        let old = found
            .metadata()
            .and_then(|meta| meta.modified())
            .is_ok_and(|at| at.elapsed().is_ok_and(|age| age > PARTIAL_GRACE));
        let pid = writer
            .split('-')
            .next()
            .and_then(|pid| pid.parse::<u32>().ok());
        if old && pid.is_some_and(|pid| pid != std::process::id() && process_gone(pid)) {
            let _ = std::fs::remove_file(found.path());
        }
    }
}

/// Whether no process `pid` exists (false when that cannot be told).
fn process_gone(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: signal 0 only checks that the process exists; nothing is sent.
        let status = unsafe { libc::kill(pid, 0) };
        status == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        false
    }
}

/// A temporary name next to `path`, unique to this process, thread and write.
fn partial_name(path: &Path) -> PathBuf {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let mut thread = std::collections::hash_map::DefaultHasher::new();
    std::thread::current().id().hash(&mut thread);
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("entry");
    path.with_extension(format!(
        "{extension}.partial-{}-{:x}-{}",
        std::process::id(),
        thread.finish(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ))
}

/// The damage check of an artifact, bound to its key so that a sound entry copied under
/// another component's name fails it too.
fn checksum(key: &str, artifact: &[u8]) -> u32 {
    let mut crc = Crc32::new();
    crc.update(key.as_bytes());
    crc.update(artifact);
    crc.finalize()
}

fn cache_key(engine: &Engine, bytes: &[u8]) -> String {
    let mut settings = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut settings);
    let mut digest = blake3::Hasher::new();
    digest.update(bytes);
    digest.update(&settings.finish().to_le_bytes());
    digest.update(env!("CARGO_PKG_VERSION").as_bytes());
    digest.finalize().to_hex().to_string()
}

#[cfg(test)]
mod tests;
