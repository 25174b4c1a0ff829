//! Typed access to the object store: session-scoped reads, inserts that never overwrite, and
//! read-modify-write updates that retry on a lost compare-and-swap race.
//!
//! Every change to an existing object goes through [`update`]: it reads the object with its
//! version, re-applies the caller's change to what is stored *now*, and writes with the read
//! version as the expectation. When another writer came first the store answers `conflict`;
//! the change is re-validated against the newer state and tried again, a bounded number of
//! times. Two concurrent calls therefore never lose a transition, and a transition that
//! stopped being valid in between is refused instead of being written over a newer state.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::{EngineError, Result};
use crate::ids::SessionId;
use crate::ports::{FieldMatch, ObjectFilter, ObjectStore};

/// How many times a read-modify-write is attempted before giving up with `conflict`.
///
/// Races on one incident or deployment are rare (a person and an agent at once); eight
/// attempts absorb any realistic burst while still bounding the work of a call.
pub const MAX_WRITE_ATTEMPTS: usize = 8;

/// A domain object stored under one object kind, owned by one session.
pub trait Record: Serialize + DeserializeOwned + Clone {
    /// The object kind, for example `infra_deploy`.
    const KIND: &'static str;

    /// The object's id as stored.
    fn id_text(&self) -> String;

    /// The session the object belongs to.
    fn session_id(&self) -> SessionId;
}

/// What an [`update`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Updated<T, C> {
    /// The object was written; `C` describes the change (for events).
    Changed(T, C),
    /// Nothing needed to change; nothing was written.
    Unchanged(T),
}

/// Stores a new object; fails if an object with its id exists already.
pub fn insert<T: Record>(store: &dyn ObjectStore, record: &T) -> Result<()> {
    let data = serde_json::to_value(record)?;
    store
        .put_versioned(T::KIND, &record.id_text(), &data, None)
        .map(|_| ())
}

/// Reads an object of `session`; an object of another session is reported as not found, so
/// sessions cannot probe each other's ids.
pub fn load<T: Record>(store: &dyn ObjectStore, session: SessionId, id: &str) -> Result<T> {
    load_versioned::<T>(store, session, id).map(|(record, _)| record)
}

/// Lists objects matching `filter`, decoded, in the store's order (newest first).
pub fn list<T: Record>(store: &dyn ObjectStore, filter: &ObjectFilter) -> Result<Vec<T>> {
    store
        .list(T::KIND, filter)?
        .into_iter()
        .map(decode::<T>)
        .collect()
}

/// Reads every object matching `filter` page by page (the filter's own limit and offset are
/// replaced). Used where a rule needs all matches of a narrow, store-side filter, such as the
/// Deployed deployments of one service and environment.
pub fn list_all<T: Record>(store: &dyn ObjectStore, filter: &ObjectFilter) -> Result<Vec<T>> {
    const PAGE: u32 = 200;
    let mut all = Vec::new();
    let mut offset = 0;
    loop {
        let page_filter = ObjectFilter {
            limit: Some(PAGE),
            offset: Some(offset),
            ..filter.clone()
        };
        let page = list::<T>(store, &page_filter)?;
        let full = page.len() == PAGE as usize;
        all.extend(page);
        if !full {
            return Ok(all);
        }
        offset += PAGE;
    }
}

/// Applies `change` to the stored object and writes it back with compare-and-swap.
///
/// `change` receives the freshly read object and returns `Ok(Some(c))` after modifying it,
/// `Ok(None)` when nothing needs to change (nothing is written), or an error to refuse (nothing
/// is written). On a lost race it runs again on the newer state, up to
/// [`MAX_WRITE_ATTEMPTS`] times.
pub fn update<T, C, F>(
    store: &dyn ObjectStore,
    session: SessionId,
    id: &str,
    mut change: F,
) -> Result<Updated<T, C>>
where
    T: Record,
    F: FnMut(&mut T) -> Result<Option<C>>,
{
    for _ in 0..MAX_WRITE_ATTEMPTS {
        let (mut record, version) = load_versioned::<T>(store, session, id)?;
        let Some(description) = change(&mut record)? else {
            return Ok(Updated::Unchanged(record));
        };
        let data = serde_json::to_value(&record)?;
        match store.put_versioned(T::KIND, id, &data, Some(version)) {
            Ok(_) => return Ok(Updated::Changed(record, description)),
            Err(error) if error.is_conflict() => continue,
            Err(error) => return Err(error),
        }
    }
    Err(EngineError::Conflict {
        kind: T::KIND.to_string(),
        id: id.to_string(),
    })
}

/// Writes back a previously read document if the object is still at `version`; used to undo a
/// step of a multi-object operation whose later step failed. Returns whether it was undone.
pub fn restore<T: Record>(store: &dyn ObjectStore, record: &T, version: u64) -> bool {
    serde_json::to_value(record)
        .ok()
        .map(|data| store.put_versioned(T::KIND, &record.id_text(), &data, Some(version)))
        .is_some_and(|written| written.is_ok())
}

/// Reads an object of `session` with its version.
pub fn load_versioned<T: Record>(
    store: &dyn ObjectStore,
    session: SessionId,
    id: &str,
) -> Result<(T, u64)> {
    let not_found = || EngineError::not_found(T::KIND, id);
    let stored = store.get_versioned(T::KIND, id)?.ok_or_else(not_found)?;
    let record = decode::<T>(stored.data)?;
    if record.session_id() != session {
        return Err(not_found());
    }
    Ok((record, stored.version))
}

fn decode<T: Record>(data: Value) -> Result<T> {
    let id = data
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    serde_json::from_value(data).map_err(|error| {
        EngineError::Serialization(format!("stored {} `{id}` is malformed: {error}", T::KIND))
    })
}

/// A filter on the objects of `session`.
pub(crate) fn session_filter(session: SessionId) -> ObjectFilter {
    ObjectFilter {
        session_id: Some(session.to_string()),
        ..ObjectFilter::default()
    }
}

/// Adds an equality on `field` to `filter` when `value` is given.
pub(crate) fn push_field(filter: &mut ObjectFilter, field: &str, value: Option<&str>) {
    if let Some(value) = value {
        filter.fields.push(FieldMatch::new(field, value));
    }
}

/// Sets `key` in an object's `metadata`, turning a non-object metadata into an object.
pub(crate) fn set_metadata(metadata: &mut Value, key: &str, value: Value) {
    if !metadata.is_object() {
        *metadata = empty_object();
    }
    if let Value::Object(map) = metadata {
        map.insert(key.to_string(), value);
    }
}

/// `{}`: the metadata of a new object.
pub(crate) fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}
