//! `rusvel_host`: the reference loader a RUSVEL host embeds to run department plugins built
//! as WebAssembly components of the WIT world `rusvel:department/department-plugin`.
//!
//! # Using it
//!
//! ```no_run
//! # async fn demo() -> Result<(), rusvel_host::HostError> {
//! use rusvel_host::{HostConfig, PluginHost};
//!
//! let host = PluginHost::load(HostConfig::new("./plugins", "./.rusvel")).await?;
//! for plugin in host.plugins() {
//!     println!("{} ({} tools)", plugin.id(), plugin.registration().tools.len());
//! }
//! for failure in host.failures() {
//!     eprintln!("{}: {}", failure.path.display(), failure.error);
//! }
//! let output = host.call_tool("infra", "infra.deploy.list", r#"{}"#).await?;
//! println!("{}", output.content);
//! host.shutdown_all().await?;
//! # Ok(()) }
//! ```
//!
//! # What it does
//!
//! - [`PluginHost::load`] finds `*.wasm` in the plugin directory (sorted), reads each
//!   optional sidecar `<stem>.json` ([`config`] documents the format), compiles the
//!   component (cached on disk, see [`cache`]), checks it targets `rusvel:department@0.1.x`,
//!   reads `manifest()` with every import refused, rejects duplicate ids, and calls
//!   `register(config)` in `depends_on` order. A file that fails never stops the others;
//!   [`PluginHost::failures`] says why it failed.
//! - Dispatch: [`PluginHost::call_tool`], [`PluginHost::handle_job`],
//!   [`PluginHost::run_next_job`], [`PluginHost::deliver_event`],
//!   [`PluginHost::emit_event`], [`PluginHost::shutdown_all`]. Errors are [`HostError`]s
//!   naming plugin, version and export.
//! - Ports ([`ports`]): async traits shaped like RUSVEL's `ObjectStore`, `EventPort`,
//!   `JobPort` and `AgentPort`. [`PluginHost::load`] uses the SQLite adapters of [`sqlite`]
//!   (one file, `<data-dir>/rusvel.db`) and the [`agent::ScriptedAgent`];
//!   [`PluginHost::load_with_ports`] takes the embedder's own adapters.
//! - Sandbox ([`sandbox`], [`capability`], [`http_policy`]): no files, environment,
//!   arguments or sockets; outbound HTTP only to the sidecar's `allow_outbound`; a deadline
//!   and a memory cap per call; a plugin touches only its own object kinds (`<id>_*`),
//!   event kinds and job kinds (`<id>.*`); size caps on arguments, objects, payloads and
//!   outputs. A trapped or timed-out instance is thrown away, never reused.
//! - Jobs: [`worker`] runs due jobs of the registered kinds on their plugins
//!   ([`PluginHost::start_worker`], [`worker::drain`]); the queue semantics (leases,
//!   backoff, cron, approval) are documented on [`sqlite::SqliteJobPort`].
//! - Events a plugin emits are stored, broadcast to [`PluginHost::subscribe_events`]
//!   subscribers, and delivered asynchronously (after the emitting call returns) to the
//!   plugins subscribed to their kind, at most [`MAX_EVENT_DEPTH`] handlers deep.

#![warn(missing_docs)]

pub mod agent;
pub mod bindings;
pub mod cache;
pub mod capability;
pub mod clock;
pub mod config;
mod contract;
mod convert;
mod delivery;
pub mod error;
pub mod host;
pub mod http_policy;
mod imports;
pub mod loader;
pub mod plugin;
pub mod ports;
pub mod sandbox;
pub mod sqlite;
pub mod worker;

pub use config::{HostConfig, PluginLimits, PluginSettings};
pub use contract::manifest_json;
pub use delivery::MAX_EVENT_DEPTH;
pub use error::{CallSite, Fault, HostError};
pub use host::{JobResult, PluginHost, ToolOutput};
pub use loader::{LoadFailure, LoadTimes};
pub use plugin::Plugin;
pub use ports::{PortError, Ports};
