//! Support for the end-to-end tests.
//!
//! The tests themselves live in `tests/tests/`; each loads the *built* Infra component through
//! the host harness, exactly as a RUSVEL host would, with SQLite in a temporary data directory
//! and real HTTP over loopback ([`http_fixture`]).

pub mod http_fixture;
pub mod test_host;

pub use test_host::{fixture_component, infra_component, TestHost};
