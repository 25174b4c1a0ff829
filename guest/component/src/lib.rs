//! `dept-infra`: the Infra department of RUSVEL as a WebAssembly component.
//!
//! This crate is the thin edge between the department contract (the WIT world
//! `department-plugin` in `wit/`) and the `infra-engine` crate, which holds every rule:
//!
//! - `ports` implements the engine's port traits over the contract's imports
//!   (`storage`, `events`, `jobs`, `log`; the clock is the WASI wall clock);
//! - `convert` maps engine values and errors onto WIT types and back;
//! - `http` implements the engine's HTTP probe over `wasi:http` (only on `wasm32`; natively
//!   the probe refuses every request);
//! - `component` implements the exports (`manifest`, `register`, `shutdown`, `call-tool`,
//!   `handle-job`, `handle-event`).
//!
//! The bindings are generated for every target, but the exports are only emitted for `wasm32`
//! (a native linker rejects the `:` in export names). Natively every import is a stub that
//! panics, so the native unit tests also prove that `manifest`, `register` and argument
//! validation call no import. The component itself is built with
//! `cargo build -p dept-infra --target wasm32-wasip2 --profile guest-release`.

mod bindings;
mod component;
mod convert;
#[cfg(target_arch = "wasm32")]
mod http;
mod ports;
#[cfg(test)]
mod tests;
