//! Shared set-up for the engine's unit tests.

use chrono::Duration;
use serde_json::Value;

use crate::config::InfraConfig;
use crate::engine::InfraEngine;
use crate::ids::SessionId;
use crate::memory::MemoryPorts;

/// An engine over fresh in-memory ports, and one session to work in.
pub(crate) struct Fixture {
    pub ports: MemoryPorts,
    pub engine: InfraEngine,
    pub session: SessionId,
}

impl Fixture {
    pub fn new() -> Self {
        Self::with_config(InfraConfig::default())
    }

    pub fn with_config(config: InfraConfig) -> Self {
        let ports = MemoryPorts::new();
        let engine = InfraEngine::new(ports.ports(), config);
        Self {
            ports,
            engine,
            session: SessionId::new(),
        }
    }

    /// The kinds of the events emitted so far.
    pub fn event_kinds(&self) -> Vec<String> {
        self.ports.events.kinds()
    }

    /// The payloads of the events emitted so far.
    pub fn event_payloads(&self) -> Vec<Value> {
        self.ports
            .events
            .emitted()
            .into_iter()
            .map(|event| event.payload)
            .collect()
    }

    /// Moves the clock forward by `seconds` (backwards when negative).
    pub fn tick(&self, seconds: i64) {
        self.ports.clock.advance(Duration::seconds(seconds));
    }

    /// The stored document of an object, with its version.
    pub fn stored(&self, kind: &str, id: impl ToString) -> (Value, u64) {
        use crate::ports::ObjectStore;
        let stored = self
            .ports
            .objects
            .get_versioned(kind, &id.to_string())
            .unwrap()
            .unwrap();
        (stored.data, stored.version)
    }
}
