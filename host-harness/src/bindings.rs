//! Host bindings for the `rusvel:department` WIT world `department-plugin`.
#![allow(missing_docs)]
//!
//! Imports and exports are generated as async: imports delegate to the host's port adapters,
//! which may await I/O, and exports run on wasmtime fibers so a deadline can interrupt them.

wasmtime::component::bindgen!({
    world: "department-plugin",
    path: "../wit",
    imports: { default: async },
    exports: { default: async },
    additional_derives: [serde::Serialize],
});

pub use exports::rusvel::department::department::{JobOutcome, Registration, ToolOutput};
pub use rusvel::department::types::Error as WitError;

/// The WIT package this host implements; plugins built against another major/minor are
/// refused before instantiation.
pub const WIT_PACKAGE: &str = "rusvel:department";

/// The version of [`WIT_PACKAGE`] this host implements.
pub const WIT_VERSION: &str = "0.1.0";
