//! The exports of the `department-plugin` world, delegating to `infra-engine`.
//!
//! The instance keeps one engine, created on first use with the configuration given to the
//! last `register` (or the defaults when a host calls a tool on an instance it did not
//! register: every operation's state lives in the host's store, so a fresh instance behaves
//! the same as an old one).

use std::cell::RefCell;

use infra_engine::{manifest, registration, InfraConfig, InfraEngine};

use crate::bindings::exports::rusvel::department::department::{
    DepartmentManifest, Error, Event, Guest, Job, JobOutcome, Registration, ToolOutput,
};
use crate::convert::{self, to_wit_error};
use crate::ports::host_ports;

/// The Infra department component.
pub(crate) struct InfraDepartment;

thread_local! {
    /// The engine of this instance; a component instance is single-threaded.
    static ENGINE: RefCell<Option<InfraEngine>> = const { RefCell::new(None) };
}

/// Runs `operation` on this instance's engine, creating it with default configuration if
/// `register` was not called on this instance.
fn with_engine<T>(operation: impl FnOnce(&InfraEngine) -> T) -> T {
    ENGINE.with(|cell| {
        let mut engine = cell.borrow_mut();
        let engine =
            engine.get_or_insert_with(|| InfraEngine::new(host_ports(), InfraConfig::default()));
        operation(engine)
    })
}

impl Guest for InfraDepartment {
    fn manifest() -> DepartmentManifest {
        convert::to_wit_manifest(manifest::manifest())
    }

    fn register(config: String) -> Result<Registration, Error> {
        let config = InfraConfig::from_json(&config).map_err(to_wit_error)?;
        let engine = InfraEngine::new(host_ports(), config);
        ENGINE.with(|cell| *cell.borrow_mut() = Some(engine));
        Ok(convert::to_wit_registration(registration()))
    }

    fn shutdown() -> Result<(), Error> {
        let engine = ENGINE.with(|cell| cell.borrow_mut().take());
        match engine {
            Some(engine) => engine.shutdown().map_err(to_wit_error),
            None => Ok(()),
        }
    }

    fn call_tool(name: String, args: String) -> Result<ToolOutput, Error> {
        with_engine(|engine| engine.call_tool_json(&name, &args))
            .map(convert::to_wit_tool_output)
            .map_err(to_wit_error)
    }

    fn handle_job(job: Job) -> Result<JobOutcome, Error> {
        let job = convert::from_wit_job(job).map_err(to_wit_error)?;
        with_engine(|engine| engine.handle_job(&job))
            .map(convert::to_wit_job_outcome)
            .map_err(to_wit_error)
    }

    fn handle_event(event: Event) -> Result<(), Error> {
        let event = convert::from_wit_event(event).map_err(to_wit_error)?;
        with_engine(|engine| engine.handle_event(&event)).map_err(to_wit_error)
    }
}

#[cfg(target_arch = "wasm32")]
crate::bindings::export!(InfraDepartment with_types_in crate::bindings);
