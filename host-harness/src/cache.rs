//! Compiling components, with an on-disk cache of compiled artifacts.
//!
//! # Key
//!
//! An entry's file name is the BLAKE3 hash of the component bytes, the engine's
//! precompile-compatibility hash (which covers settings such as epoch interruption and the
//! allocator) and this crate's version, so a changed component or engine configuration
//! never even looks at an old entry.
//!
//! # Entry format
//!
//! An entry is two files in `<data-dir>/cache/`:
//!
//! - `<key>.cwasm`: exactly the artifact `Component::serialize` produced, so that
//!   `Component::deserialize_file` can map it straight from the page cache (no read into a
//!   buffer, no copy into fresh executable memory);
//! - `<key>.sum`, 24 bytes: magic `RUSVELC3` (bytes 0..8), the artifact length as a
//!   little-endian `u64` (8..16), its CRC-32 (IEEE) as a little-endian `u32` (16..20) and
//!   four zero bytes.
//!
//! Loading maps the artifact read-only, runs it through the checksum (no copy out of the page
//! cache, no 2 MB allocation) and checks the magic, the length and the CRC before the file reaches
//! `Component::deserialize_file`, which trusts its input (it maps the code as executable).
//! A corrupt, truncated or foreign entry is reported, compiled again and overwritten; it is
//! never loaded. Writers put each file in a temporary file with a name unique to the
//! process, the thread and the write, then rename it into place, so concurrent hosts or
//! threads never see half a file and never collide. The artifact is renamed first and its
//! sum last: an artifact without a sum is no entry yet, and a sum that belongs to another
//! write of the artifact fails the check and is rebuilt, never trusted.
//!
//! Two hashes, two jobs. The key must tell components apart even when someone crafts one to
//! look like another, so it is a cryptographic hash: BLAKE3, several times faster than the
//! SHA-256 it replaced (which, even with the CPU's SHA instructions, was a third of a cache
//! hit). The checksum only has to catch damage (a torn write, a flipped bit, a file cut
//! short), the job CRC-32 was designed for.
//!
//! The directory must still not be writable by anyone the host does not trust: the checksum
//! catches damage, not an attacker who can write both the artifact and its checksum, nor
//! one who truncates an artifact while it is mapped.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crc32fast::Hasher as Crc32;
use wasmtime::component::Component;
use wasmtime::Engine;

use crate::error::{describe, HostError};

/// First bytes of every sum file (entries of the older single-file formats, `RUSVELC1` and
/// `RUSVELC2`, have no sum file and are compiled again).
const MAGIC: &[u8; 8] = b"RUSVELC3";

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
        tracing::info!(
            cache = %entry.artifact.display(),
            %error,
            "compiled component not cached"
        );
    }
    Ok((component, outcome))
}

/// The two files of one cache entry.
#[derive(Debug, Clone)]
struct Entry {
    artifact: PathBuf,
    sum: PathBuf,
}

impl Entry {
    fn new(cache_dir: &Path, key: &str) -> Entry {
        Entry {
            artifact: cache_dir.join(format!("{key}.cwasm")),
            sum: cache_dir.join(format!("{key}.sum")),
        }
    }
}

/// Reads and verifies an entry: `Ok(None)` when there is none, `Err` when it is unusable.
fn read_entry(engine: &Engine, entry: &Entry) -> Result<Option<Component>, String> {
    let sum = match std::fs::read(&entry.sum) {
        Ok(sum) => sum,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("unreadable checksum file: {error}")),
    };
    let (length, crc) = parse_sum(&sum)?;
    verify_artifact(&entry.artifact, length, crc)?;
    // SAFETY: the file holds byte for byte what `Component::serialize` of this host wrote
    // (its length and CRC-32 match the ones stored beside it), the entry's name binds it to
    // these component bytes and engine settings, and wasmtime checks the settings again.
    // Entries are only ever replaced by rename, never written in place, so the mapping
    // wasmtime makes keeps the verified contents.
    unsafe { Component::deserialize_file(engine, &entry.artifact) }
        .map(Some)
        .map_err(|error| format!("not loadable: {}", describe(&error)))
}

/// The artifact length and CRC-32 a sum file records.
fn parse_sum(sum: &[u8]) -> Result<(u64, u32), String> {
    if sum.len() != SUM_LEN || &sum[..8] != MAGIC {
        return Err("not a cache entry of this host (bad checksum file)".into());
    }
    let mut length = [0u8; 8];
    length.copy_from_slice(&sum[8..16]);
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&sum[16..20]);
    Ok((u64::from_le_bytes(length), u32::from_le_bytes(crc)))
}

/// Maps the artifact and compares its length and CRC-32 with its sum file's.
fn verify_artifact(path: &Path, length: u64, crc: u32) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => "artifact missing beside its checksum".to_string(),
        _ => format!("unreadable: {error}"),
    })?;
    let size = file
        .metadata()
        .map_err(|error| format!("unreadable: {error}"))?
        .len();
    if size != length {
        return Err(format!(
            "truncated or extended: {size} artifact bytes, checksum file says {length}"
        ));
    }
    if size == 0 {
        return Err("empty artifact".into());
    }
    // SAFETY: the mapping is read-only and dropped before this function returns; entries
    // are replaced by rename, never written in place, so no writer of this host changes the
    // mapped file (the module docs say why the directory must not be writable by others).
    let mapped =
        unsafe { memmap2::Mmap::map(&file) }.map_err(|error| format!("unreadable: {error}"))?;
    if checksum(&mapped) != crc {
        return Err("checksum mismatch (corrupt entry)".into());
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
    sum.extend_from_slice(&checksum(&artifact).to_le_bytes());
    sum.extend_from_slice(&[0; 4]);

    std::fs::create_dir_all(cache_dir).map_err(|error| error.to_string())?;
    replace_file(&entry.artifact, &artifact)?;
    replace_file(&entry.sum, &sum)
}

/// Puts `contents` at `path` through a temporary file and a rename.
fn replace_file(path: &Path, contents: &[u8]) -> Result<(), String> {
    let partial = partial_name(path);
    let written = std::fs::write(&partial, contents)
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(|error| error.to_string());
    if written.is_err() {
        // Best effort: a leftover temporary file is harmless but wastes space.
        let _ = std::fs::remove_file(&partial);
    }
    written
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

/// The damage check of an artifact.
fn checksum(artifact: &[u8]) -> u32 {
    let mut crc = Crc32::new();
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
mod tests {
    use super::*;

    /// The smallest valid component: the preamble alone (magic, version 0x0d, layer 1).
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";

    struct Fixture {
        _dir: tempfile::TempDir,
        component: PathBuf,
        cache: PathBuf,
        engine: Engine,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let component = dir.path().join("empty.wasm");
        std::fs::write(&component, EMPTY_COMPONENT).unwrap();
        let cache = dir.path().join("cache");
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        Fixture {
            component,
            cache,
            engine: Engine::new(&config).unwrap(),
            _dir: dir,
        }
    }

    impl Fixture {
        fn load(&self) -> CacheOutcome {
            load_component_with_outcome(&self.engine, &self.component, Some(&self.cache))
                .unwrap()
                .1
        }

        /// The one entry in the cache: its artifact and sum files, and nothing else.
        fn entry(&self) -> Entry {
            let mut names: Vec<String> = std::fs::read_dir(&self.cache)
                .unwrap()
                .map(|entry| entry.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            assert_eq!(names.len(), 2, "{names:?}");
            let key = names[0].strip_suffix(".cwasm").expect("artifact file");
            assert_eq!(names[1], format!("{key}.sum"));
            Entry::new(&self.cache, key)
        }
    }

    #[test]
    fn a_second_load_is_served_from_the_cache() {
        let fixture = fixture();
        assert_eq!(fixture.load(), CacheOutcome::Compiled);
        assert_eq!(fixture.load(), CacheOutcome::Hit);
        let entry = fixture.entry();
        let sum = std::fs::read(&entry.sum).unwrap();
        assert_eq!(&sum[..8], MAGIC);
        let (length, crc) = parse_sum(&sum).unwrap();
        let artifact = std::fs::read(&entry.artifact).unwrap();
        assert_eq!(length, artifact.len() as u64);
        assert_eq!(crc, checksum(&artifact));
        // The artifact file is the serialized component itself, ready to be mapped.
        assert!(artifact.starts_with(b"\x7fELF"));
    }

    #[test]
    fn a_corrupt_entry_is_detected_recompiled_and_replaced() {
        let fixture = fixture();
        fixture.load();
        let entry = fixture.entry();
        let mut contents = std::fs::read(&entry.artifact).unwrap();
        let middle = contents.len() / 2;
        contents[middle] ^= 0x5a;
        std::fs::write(&entry.artifact, &contents).unwrap();

        match fixture.load() {
            CacheOutcome::Rebuilt(reason) => assert!(reason.contains("checksum"), "{reason}"),
            other => panic!("corrupt entry not detected: {other:?}"),
        }
        // The replacement is sound: the next load is a hit.
        assert_eq!(fixture.load(), CacheOutcome::Hit);
    }

    #[test]
    fn a_truncated_entry_is_detected_and_rebuilt() {
        let fixture = fixture();
        fixture.load();
        let entry = fixture.entry();
        let contents = std::fs::read(&entry.artifact).unwrap();
        std::fs::write(&entry.artifact, &contents[..contents.len() - 7]).unwrap();
        match fixture.load() {
            CacheOutcome::Rebuilt(reason) => assert!(reason.contains("truncated"), "{reason}"),
            other => panic!("truncated entry not detected: {other:?}"),
        }
        assert_eq!(fixture.load(), CacheOutcome::Hit);

        // A sum file cut short, or not ours at all.
        std::fs::write(&entry.sum, b"RUSV").unwrap();
        assert!(matches!(fixture.load(), CacheOutcome::Rebuilt(_)));
        assert_eq!(fixture.load(), CacheOutcome::Hit);
    }

    #[test]
    fn an_artifact_without_its_sum_is_no_entry_and_a_sum_without_artifact_is_rebuilt() {
        let fixture = fixture();
        fixture.load();
        let entry = fixture.entry();
        // An entry of the older single-file format, or a writer that stopped between its
        // two renames: there is no sum, so the artifact is never trusted.
        std::fs::write(&entry.artifact, b"RUSVELC2 and an old artifact").unwrap();
        std::fs::remove_file(&entry.sum).unwrap();
        assert_eq!(fixture.load(), CacheOutcome::Compiled);
        assert_eq!(fixture.load(), CacheOutcome::Hit);

        std::fs::remove_file(&entry.artifact).unwrap();
        match fixture.load() {
            CacheOutcome::Rebuilt(reason) => assert!(reason.contains("missing"), "{reason}"),
            other => panic!("missing artifact not detected: {other:?}"),
        }
        assert_eq!(fixture.load(), CacheOutcome::Hit);
    }

    #[test]
    fn a_verified_entry_from_other_engine_settings_is_refused_by_wasmtime() {
        let fixture = fixture();
        fixture.load();
        let entry = fixture.entry();
        // A well-formed entry whose artifact was built with other settings, placed under
        // this engine's key (as a stale file from an older host could be).
        let mut other_config = wasmtime::Config::new();
        other_config
            .wasm_component_model(true)
            .epoch_interruption(true);
        let other_engine = Engine::new(&other_config).unwrap();
        let other = Component::from_binary(&other_engine, EMPTY_COMPONENT).unwrap();
        write_entry(&other, &fixture.cache, &entry).unwrap();

        match fixture.load() {
            CacheOutcome::Rebuilt(reason) => assert!(reason.contains("not loadable"), "{reason}"),
            other => panic!("stale entry not detected: {other:?}"),
        }
        assert_eq!(fixture.load(), CacheOutcome::Hit);
    }

    #[test]
    fn concurrent_writers_never_collide_or_leave_partial_files() {
        let fixture = fixture();
        let component = Component::from_binary(&fixture.engine, EMPTY_COMPONENT).unwrap();
        let entry = Entry::new(&fixture.cache, "shared");
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..10 {
                        write_entry(&component, &fixture.cache, &entry).unwrap();
                        let (length, crc) = parse_sum(&std::fs::read(&entry.sum).unwrap()).unwrap();
                        verify_artifact(&entry.artifact, length, crc).unwrap();
                    }
                });
            }
        });
        let left = fixture.entry();
        assert_eq!(
            left.artifact, entry.artifact,
            "temporary files were left behind"
        );
        assert!(read_entry(&fixture.engine, &entry).unwrap().is_some());
    }

    #[test]
    fn temporary_names_differ_per_write_and_thread() {
        let entry = Path::new("/cache/x.cwasm");
        let here = (partial_name(entry), partial_name(entry));
        let there = std::thread::spawn(move || partial_name(entry))
            .join()
            .unwrap();
        assert_ne!(here.0, here.1);
        assert_ne!(here.0, there);
        assert_ne!(here.1, there);
    }

    #[test]
    fn without_a_cache_directory_nothing_is_written() {
        let fixture = fixture();
        let (_, outcome) =
            load_component_with_outcome(&fixture.engine, &fixture.component, None).unwrap();
        assert_eq!(outcome, CacheOutcome::Uncached);
        assert!(!fixture.cache.exists());
    }
}
