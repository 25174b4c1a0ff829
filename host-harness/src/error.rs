//! The errors the host reports to its embedder.
//!
//! Every error that involves a plugin names the plugin, its version (the WIT package version
//! it was built against) and the export or tool that failed, so an operator knows whose
//! fault it is.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::ports::PortError;

/// Which call into a plugin failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSite {
    /// Department id (or the file name before the manifest is known).
    pub plugin: String,
    /// Plugin version, for example `rusvel:department@0.1.0`.
    pub version: String,
    /// Export name, with the tool, job kind or event kind when there is one.
    pub export: String,
}

impl fmt::Display for CallSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "plugin `{}` ({}), {}",
            self.plugin, self.version, self.export
        )
    }
}

/// Why a call into a plugin did not return normally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The call ran past its deadline and was stopped.
    Timeout(Duration),
    /// The instance tried to grow its memory past the cap (bytes).
    OutOfMemory(usize),
    /// The guest trapped (a panic shows as a trap; its message is included when known).
    Trap(String),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Timeout(after) => write!(f, "timed out after {} ms", after.as_millis()),
            Fault::OutOfMemory(cap) => {
                write!(
                    f,
                    "out of memory: the {} MiB cap was reached (`limits.memory_mib`)",
                    cap / (1024 * 1024)
                )
            }
            Fault::Trap(message) => write!(f, "trapped: {message}"),
        }
    }
}

/// An error of the plugin host.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A plugin sidecar file is invalid.
    #[error("invalid plugin settings in {}: {reason}", path.display())]
    InvalidSettings {
        /// The sidecar.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file is not a loadable department component.
    #[error("cannot load {}: {reason}", path.display())]
    InvalidComponent {
        /// The `.wasm` file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Two plugins declare the same department id.
    #[error("department `{id}` is declared by both {} and {}", first.display(), second.display())]
    DuplicateDepartment {
        /// The department id.
        id: String,
        /// The plugin loaded first.
        first: PathBuf,
        /// The plugin refused.
        second: PathBuf,
    },
    /// A plugin depends on a department that is not loaded, or dependencies form a cycle.
    #[error("department `{id}` cannot be registered: {reason}")]
    Dependency {
        /// The department id.
        id: String,
        /// The missing dependency or the cycle.
        reason: String,
    },
    /// The manifest and the registration disagree about the tools.
    #[error(
        "department `{id}`: manifest and registration list different tools \
         (only in manifest: {manifest_only:?}; only registered: {registered_only:?})"
    )]
    ToolDrift {
        /// The department id.
        id: String,
        /// Tools the manifest lists but `register` did not return.
        manifest_only: Vec<String>,
        /// Tools `register` returned that the manifest does not list.
        registered_only: Vec<String>,
    },
    /// No loaded plugin has this department id.
    #[error("no department `{id}` is loaded (loaded: {loaded})")]
    UnknownDepartment {
        /// The id asked for.
        id: String,
        /// The loaded ids, comma separated.
        loaded: String,
    },
    /// The department registered no tool of this name.
    #[error("department `{department}` has no tool `{tool}` ({hint})")]
    UnknownTool {
        /// The department id.
        department: String,
        /// The tool asked for.
        tool: String,
        /// Near names or how to list tools.
        hint: String,
    },
    /// No loaded department handles this job kind.
    #[error("no loaded department handles job kind `{kind}`")]
    UnknownJobKind {
        /// The job kind.
        kind: String,
    },
    /// Tool arguments were rejected before reaching the plugin.
    #[error("invalid arguments for tool `{tool}`: {reason}")]
    InvalidArguments {
        /// The tool.
        tool: String,
        /// What is wrong.
        reason: String,
    },
    /// A size limit of the host was exceeded.
    #[error("{what} is {actual} bytes, over the {limit} byte limit")]
    LimitExceeded {
        /// What was too large.
        what: String,
        /// The limit in bytes.
        limit: usize,
        /// The actual size in bytes.
        actual: usize,
    },
    /// A call into a plugin was stopped: timeout, memory cap or trap.
    #[error("{site} {fault}")]
    Fault {
        /// Which call.
        site: Box<CallSite>,
        /// What happened.
        fault: Fault,
    },
    /// A plugin returned an error from its export.
    #[error("{site} returned an error: {error}")]
    Plugin {
        /// Which call.
        site: Box<CallSite>,
        /// The error the plugin returned.
        error: PortError,
    },
    /// A host port (storage, events, jobs) failed.
    #[error(transparent)]
    Port(#[from] PortError),
    /// The WebAssembly engine failed outside a plugin call.
    #[error("wasm engine: {0}")]
    Engine(String),
}

impl HostError {
    /// Whether the error was a timeout, memory cap or trap inside a plugin.
    pub fn is_fault(&self) -> bool {
        matches!(self, HostError::Fault { .. })
    }
}

/// Formats a wasmtime error with its whole cause chain on one line.
pub(crate) fn describe(error: &wasmtime::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    // Some causes pretty-print byte arrays over many lines; keep one line per error.
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
