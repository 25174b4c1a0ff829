//! libFuzzer entry for the tool-argument path: see [`infra_fuzz::check_tool_args`].

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    infra_fuzz::check_tool_args(data);
});
