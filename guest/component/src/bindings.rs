//! Rust bindings of the department contract, generated from `wit/` at build time.

wit_bindgen::generate!({
    path: "../../wit",
    world: "department-plugin",
});
