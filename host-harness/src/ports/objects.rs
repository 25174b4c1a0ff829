//! The object store of RUSVEL's StoragePort: JSON documents addressed by kind and id.

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use super::PortResult;

/// Equality on one top-level field of a stored document, compared as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldMatch {
    /// Top-level field name; must match `[a-z_][a-z0-9_]*`.
    pub field: String,
    /// Expected value, as text (`"5"` also matches the number 5, `"true"` the boolean).
    pub value: String,
}

/// Which objects of a kind to list; results come newest first (ids are UUIDv7).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ObjectFilter {
    /// Only objects whose `session_id` field equals this.
    pub session_id: Option<String>,
    /// Only objects whose `tags` array holds every one of these.
    pub tags: Vec<String>,
    /// Only objects whose fields equal these values.
    pub fields: Vec<FieldMatch>,
    /// At most this many objects.
    pub limit: Option<u32>,
    /// Skip this many objects first.
    pub offset: Option<u32>,
}

/// A stored object with its version, for compare-and-swap writes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionedObject {
    /// The document.
    pub data: Value,
    /// Starts at 1 and grows by one on every write.
    pub version: u64,
    /// RFC 3339 UTC time of the first write.
    pub created_at: String,
    /// RFC 3339 UTC time of the last write.
    pub updated_at: String,
}

/// RUSVEL's object store. Every write bumps the object's version.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Inserts or replaces an object.
    async fn put(&self, kind: &str, id: &str, data: &Value) -> PortResult<()>;

    /// Reads an object; `None` when it does not exist.
    async fn get(&self, kind: &str, id: &str) -> PortResult<Option<Value>>;

    /// Deletes an object; deleting a missing object is not an error.
    async fn delete(&self, kind: &str, id: &str) -> PortResult<()>;

    /// Lists objects of a kind matching the filter, newest first.
    async fn list(&self, kind: &str, filter: &ObjectFilter) -> PortResult<Vec<Value>>;

    /// Counts objects of a kind matching the filter, ignoring limit and offset.
    async fn count(&self, kind: &str, filter: &ObjectFilter) -> PortResult<u64>;

    /// Reads an object together with its version.
    async fn get_versioned(&self, kind: &str, id: &str) -> PortResult<Option<VersionedObject>>;

    /// Writes only if the stored version is `expected` (`None`: only if absent); returns the
    /// new version or [`super::PortError::Conflict`].
    async fn put_versioned(
        &self,
        kind: &str,
        id: &str,
        data: &Value,
        expected: Option<u64>,
    ) -> PortResult<u64>;

    /// Makes equality filters on `field` of `kind` fast (for example by an index). Adapters
    /// without indexes may do nothing.
    async fn index_field(&self, kind: &str, field: &str) -> PortResult<()>;

    /// Counts objects per kind for kinds starting with `prefix`, sorted by kind.
    async fn count_by_kind(&self, prefix: &str) -> PortResult<Vec<(String, u64)>>;

    /// [`ObjectStore::get`] as JSON text, for callers that pass the document on as text (the
    /// plugin imports). An adapter that stores JSON text can return it without parsing.
    async fn get_text(&self, kind: &str, id: &str) -> PortResult<Option<String>> {
        Ok(self.get(kind, id).await?.map(|data| data.to_string()))
    }

    /// [`ObjectStore::list`] as JSON texts; see [`ObjectStore::get_text`].
    async fn list_text(&self, kind: &str, filter: &ObjectFilter) -> PortResult<Vec<String>> {
        let objects = self.list(kind, filter).await?;
        Ok(objects.iter().map(Value::to_string).collect())
    }
}
