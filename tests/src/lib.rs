//! Support for the end-to-end tests: a loopback HTTP server with scripted routes.
//!
//! The tests themselves live in `tests/tests/`; each loads the built Infra component through
//! the host harness, exactly as a RUSVEL host would.

pub mod http_fixture;
