//! `dept-infra`: the Infra department of RUSVEL as a WebAssembly component.
//!
//! This crate is the thin edge between the department contract (the WIT world
//! `department-plugin` in `wit/`) and the `infra-engine` crate, which holds every rule:
//!
//! - [`ports`](crate) implements the engine's port traits over the contract's imports
//!   (`storage`, `events`, `jobs`, `log`; the clock is the WASI wall clock);
//! - `convert` maps engine values and errors onto WIT types and back;
//! - `component` implements the exports (`manifest`, `register`, `shutdown`, `call-tool`,
//!   `handle-job`, `handle-event`).
//!
//! The bindings exist only for `wasm32`: a native build of this crate is empty, so the
//! workspace builds and tests natively while the component is built with
//! `cargo build -p dept-infra --target wasm32-wasip2 --profile guest-release`.

#[cfg(target_arch = "wasm32")]
mod bindings;
#[cfg(target_arch = "wasm32")]
mod component;
#[cfg(target_arch = "wasm32")]
mod convert;
#[cfg(target_arch = "wasm32")]
mod ports;
