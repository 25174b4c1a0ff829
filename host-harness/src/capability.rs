//! The capability rules a plugin's imports are held to: its own namespace and size caps.
//!
//! A department may only touch object kinds starting with `<dept id>_`, emit events whose
//! kind starts with `<dept id>.`, and enqueue jobs whose kind starts with `<dept id>.`.

use crate::ports::PortError;

/// Largest tool arguments document accepted, in bytes.
pub const MAX_TOOL_ARGS: usize = 1024 * 1024;

/// Largest stored object, in bytes of JSON text.
pub const MAX_OBJECT: usize = 1024 * 1024;

/// Largest event payload, in bytes of JSON text.
pub const MAX_EVENT_PAYLOAD: usize = 256 * 1024;

/// Largest tool output (content plus metadata), in bytes.
pub const MAX_TOOL_OUTPUT: usize = 4 * 1024 * 1024;

/// Checks that `department` may use object kind `kind`.
pub fn check_object_kind(department: &str, kind: &str) -> Result<(), PortError> {
    check_prefix(department, kind, '_', "object kind")
}

/// Checks that `department` may emit events of kind `kind`.
pub fn check_event_kind(department: &str, kind: &str) -> Result<(), PortError> {
    check_prefix(department, kind, '.', "event kind")
}

/// Checks that `department` may enqueue jobs of kind `kind`.
pub fn check_job_kind(department: &str, kind: &str) -> Result<(), PortError> {
    check_prefix(department, kind, '.', "job kind")
}

/// Checks a size against a cap.
pub fn check_size(what: &str, actual: usize, limit: usize) -> Result<(), PortError> {
    if actual > limit {
        return Err(PortError::LimitExceeded(format!(
            "{what} is {actual} bytes, over the {limit} byte limit"
        )));
    }
    Ok(())
}

fn check_prefix(
    department: &str,
    kind: &str,
    separator: char,
    what: &str,
) -> Result<(), PortError> {
    let allowed = kind
        .strip_prefix(department)
        .and_then(|rest| rest.strip_prefix(separator))
        .is_some_and(|rest| !rest.is_empty());
    if allowed {
        Ok(())
    } else {
        Err(PortError::Unauthorized(format!(
            "department `{department}` may not use {what} `{kind}`: \
             it must start with `{department}{separator}`"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_department_uses_only_its_own_object_kinds() {
        assert!(check_object_kind("infra", "infra_deploy").is_ok());
        assert!(check_object_kind("infra", "code_snippet").is_err());
        assert!(check_object_kind("infra", "infrastructure").is_err());
        assert!(check_object_kind("infra", "infra_").is_err());
        assert!(check_object_kind("infra", "infra").is_err());
    }

    #[test]
    fn a_department_emits_only_its_own_event_kinds() {
        assert!(check_event_kind("infra", "infra.incident.opened").is_ok());
        assert!(check_event_kind("infra", "code.pushed").is_err());
        let error = check_event_kind("infra", "infra_x").unwrap_err();
        assert!(matches!(error, PortError::Unauthorized(message) if message.contains("infra.")));
    }

    #[test]
    fn sizes_over_the_cap_are_limit_exceeded() {
        assert!(check_size("payload", 10, 10).is_ok());
        assert!(matches!(
            check_size("payload", 11, 10),
            Err(PortError::LimitExceeded(_))
        ));
    }
}
