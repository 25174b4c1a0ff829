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

/// A fixture whose component has been loaded once, and the entry that load wrote.
fn loaded() -> (Fixture, Entry) {
    let fixture = fixture();
    assert_eq!(fixture.load(), CacheOutcome::Compiled);
    let entry = fixture.entry();
    (fixture, entry)
}

impl Fixture {
    fn load(&self) -> CacheOutcome {
        load_component_with_outcome(&self.engine, &self.component, Some(&self.cache))
            .unwrap()
            .1
    }

    /// Loads, expecting the entry to be found unusable for a reason containing `expected`,
    /// then loads again, expecting the replacement to be a sound entry (a hit).
    fn assert_rebuilt(&self, expected: &str) {
        match self.load() {
            CacheOutcome::Rebuilt(reason) => assert!(reason.contains(expected), "{reason}"),
            other => panic!("expected a rebuild ({expected}), got {other:?}"),
        }
        assert_eq!(
            self.load(),
            CacheOutcome::Hit,
            "after the rebuild ({expected})"
        );
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
    assert_eq!(crc, checksum(&entry.key, &artifact));
    // The artifact file is the serialized component itself, ready to be mapped.
    assert!(artifact.starts_with(b"\x7fELF"));
}

#[test]
fn a_file_where_the_cache_directory_should_be_means_compiling_without_a_cache() {
    let fixture = fixture();
    std::fs::write(&fixture.cache, b"not a directory").unwrap();
    // Not reported as a damaged entry: there is no entry, and the write cannot happen.
    assert_eq!(fixture.load(), CacheOutcome::Compiled);
    assert_eq!(fixture.load(), CacheOutcome::Compiled);
    assert_eq!(std::fs::read(&fixture.cache).unwrap(), b"not a directory");
}

#[test]
fn a_corrupt_entry_is_detected_recompiled_and_replaced() {
    let (fixture, entry) = loaded();
    let mut contents = std::fs::read(&entry.artifact).unwrap();
    let middle = contents.len() / 2;
    contents[middle] ^= 0x5a;
    std::fs::write(&entry.artifact, &contents).unwrap();

    fixture.assert_rebuilt("checksum");
}

#[test]
fn a_truncated_entry_is_detected_and_rebuilt() {
    let (fixture, entry) = loaded();
    let contents = std::fs::read(&entry.artifact).unwrap();
    std::fs::write(&entry.artifact, &contents[..contents.len() - 7]).unwrap();
    fixture.assert_rebuilt("truncated");

    // A sum file cut short, or not ours at all.
    std::fs::write(&entry.sum, b"RUSV").unwrap();
    assert!(matches!(fixture.load(), CacheOutcome::Rebuilt(_)));
    assert_eq!(fixture.load(), CacheOutcome::Hit);
}

#[test]
fn an_artifact_without_its_sum_is_no_entry_and_a_sum_without_artifact_is_rebuilt() {
    let (fixture, entry) = loaded();
    // An entry of the older single-file format, or a writer that stopped between its
    // two renames: there is no sum, so the artifact is never trusted.
    std::fs::write(&entry.artifact, b"RUSVELC2 and an old artifact").unwrap();
    std::fs::remove_file(&entry.sum).unwrap();
    assert_eq!(fixture.load(), CacheOutcome::Compiled);
    assert_eq!(fixture.load(), CacheOutcome::Hit);

    std::fs::remove_file(&entry.artifact).unwrap();
    fixture.assert_rebuilt("missing");
}

#[test]
fn a_verified_entry_from_other_engine_settings_is_refused_by_wasmtime() {
    let (fixture, entry) = loaded();
    // A well-formed entry whose artifact was built with other settings, placed under
    // this engine's key (as a stale file from an older host could be).
    let mut other_config = wasmtime::Config::new();
    other_config
        .wasm_component_model(true)
        .epoch_interruption(true);
    let other_engine = Engine::new(&other_config).unwrap();
    let other = Component::from_binary(&other_engine, EMPTY_COMPONENT).unwrap();
    write_entry(&other, &fixture.cache, &entry).unwrap();

    fixture.assert_rebuilt("not loadable");
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
                    let artifact = std::fs::File::open(&entry.artifact).unwrap();
                    verify_artifact(&artifact, &entry.key, length, crc).unwrap();
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

/// The empty component with a custom section: another component, so another key.
const OTHER_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00\x00\x02\x01a";

#[test]
fn a_sound_entry_under_another_components_key_fails_the_check() {
    let (fixture, entry) = loaded();
    let other = fixture.component.with_file_name("other.wasm");
    std::fs::write(&other, OTHER_COMPONENT).unwrap();
    load_component_with_outcome(&fixture.engine, &other, Some(&fixture.cache)).unwrap();
    let other_key = cache_key(&fixture.engine, OTHER_COMPONENT);
    assert_ne!(other_key, entry.key);
    // Both files of the first entry copied over the second: length and CRC are sound, the
    // key is not.
    let misplaced = Entry::new(&fixture.cache, &other_key);
    std::fs::copy(&entry.artifact, &misplaced.artifact).unwrap();
    std::fs::copy(&entry.sum, &misplaced.sum).unwrap();
    let (_, outcome) =
        load_component_with_outcome(&fixture.engine, &other, Some(&fixture.cache)).unwrap();
    match outcome {
        CacheOutcome::Rebuilt(reason) => assert!(reason.contains("checksum"), "{reason}"),
        other => panic!("misplaced entry not detected: {other:?}"),
    }
}

#[cfg(unix)]
#[test]
fn a_fifo_or_a_directory_at_an_entry_name_is_refused_without_blocking_and_replaced() {
    let (fixture, entry) = loaded();
    for path in [&entry.sum, &entry.artifact] {
        std::fs::remove_file(path).unwrap();
        let name = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        fixture.assert_rebuilt("not a regular file");
    }

    std::fs::remove_file(&entry.artifact).unwrap();
    std::fs::create_dir(&entry.artifact).unwrap();
    fixture.assert_rebuilt("a directory");
}

#[test]
fn a_sum_file_of_the_wrong_size_is_refused_before_it_is_read() {
    let (fixture, entry) = loaded();
    std::fs::write(&entry.sum, vec![0u8; 1 << 20]).unwrap();
    fixture.assert_rebuilt("1048576 bytes");
    // Non-zero reserved bytes make a sum file foreign, too.
    let mut sum = std::fs::read(&entry.sum).unwrap();
    sum[23] = 1;
    std::fs::write(&entry.sum, &sum).unwrap();
    assert!(matches!(fixture.load(), CacheOutcome::Rebuilt(_)));
    assert_eq!(fixture.load(), CacheOutcome::Hit);
}

#[test]
fn old_temporary_files_of_dead_writers_are_removed_by_the_next_write() {
    let (fixture, entry) = loaded();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let abandoned = fixture
        .cache
        .join(format!("{}.cwasm.partial-{dead}-0-0", entry.key));
    let live = fixture.cache.join(format!(
        "{}.sum.partial-{}-0-0",
        entry.key,
        std::process::id()
    ));
    let recent = fixture
        .cache
        .join(format!("{}.sum.partial-{dead}-0-1", entry.key));
    for (path, age) in [(&abandoned, 600), (&live, 600), (&recent, 1)] {
        let file = std::fs::File::create(path).unwrap();
        let written = std::time::SystemTime::now() - std::time::Duration::from_secs(age);
        file.set_modified(written).unwrap();
    }

    std::fs::remove_file(&entry.sum).unwrap();
    assert_eq!(fixture.load(), CacheOutcome::Compiled);
    assert!(!abandoned.exists(), "the dead writer's file stayed");
    assert!(live.exists(), "a live writer's file was removed");
    // Too young to tell from a live writer in another PID namespace.
    assert!(recent.exists(), "a file of a second ago was removed");
}

#[cfg(target_os = "linux")]
#[test]
fn the_path_handed_to_wasmtime_opens_the_verified_file_even_after_a_rename() {
    let dir = tempfile::tempdir().unwrap();
    let name = dir.path().join("entry.cwasm");
    std::fs::write(&name, b"verified").unwrap();
    let verified = std::fs::File::open(&name).unwrap();
    let replacement = dir.path().join("other");
    std::fs::write(&replacement, b"swapped in").unwrap();
    std::fs::rename(&replacement, &name).unwrap();

    let path = verified_path(&verified, &name);
    assert_ne!(path, name);
    assert_eq!(std::fs::read(&path).unwrap(), b"verified");
}
