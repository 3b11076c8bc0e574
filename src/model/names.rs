//! Naming rules for projects, stages and services.
//!
//! Keptn's rule (`ValidateKeptnEntityName`): a lowercase letter first, then lowercase letters, digits and
//! `-`, not ending in `-`. Keelson applies it to services too, so that a service name is always a safe
//! directory name in the project's repository.

use thiserror::Error;

/// Longest project name Keptn accepts (`PROJECT_NAME_MAX_SIZE`).
pub const PROJECT_NAME_MAX_LEN: usize = 200;
/// Longest service name Keptn accepts (`SERVICE_NAME_MAX_SIZE`): helm release names get a
/// `-generated` suffix and must stay within 53 characters.
pub const SERVICE_NAME_MAX_LEN: usize = 43;
/// Longest stage name: each stage is a git branch, and a ref's name must fit a file name (255 bytes)
/// with room to spare. Keptn sets no limit.
pub const STAGE_NAME_MAX_LEN: usize = 200;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NameError {
    #[error("{kind} name must not be empty")]
    Empty { kind: &'static str },
    #[error("{kind} name '{name}' is longer than {max} characters")]
    TooLong { kind: &'static str, name: String, max: usize },
    #[error(
        "{kind} name '{name}' is invalid: it must start with a lowercase letter, contain only lowercase \
         letters, digits and '-', and must not end with '-'"
    )]
    Invalid { kind: &'static str, name: String },
}

/// Whether `name` matches `^[a-z]([a-z0-9-]*[a-z0-9])?$`.
pub fn is_entity_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let Some((&first, rest)) = bytes.split_first() else {
        return false;
    };
    if !first.is_ascii_lowercase() {
        return false;
    }
    if rest.last() == Some(&b'-') {
        return false;
    }
    rest.iter().all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn validate(kind: &'static str, name: &str, max: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if name.chars().count() > max {
        return Err(NameError::TooLong { kind, name: name.to_owned(), max });
    }
    if !is_entity_name(name) {
        return Err(NameError::Invalid { kind, name: name.to_owned() });
    }
    Ok(())
}

pub fn validate_project_name(name: &str) -> Result<(), NameError> {
    validate("project", name, PROJECT_NAME_MAX_LEN)
}

pub fn validate_stage_name(name: &str) -> Result<(), NameError> {
    validate("stage", name, STAGE_NAME_MAX_LEN)
}

pub fn validate_service_name(name: &str) -> Result<(), NameError> {
    validate("service", name, SERVICE_NAME_MAX_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_names_follow_keptn_rule() {
        let cases = [
            ("a", true),
            ("sockshop", true),
            ("my-project-1", true),
            ("a1", true),
            ("", false),
            ("1abc", false),
            ("-abc", false),
            ("abc-", false),
            ("Abc", false),
            ("ab_c", false),
            ("ab.c", false),
            ("ab c", false),
            ("ab/c", false),
            ("über", false),
        ];
        for (name, expected) in cases {
            assert_eq!(is_entity_name(name), expected, "name {name:?}");
        }
    }

    #[test]
    fn length_limits_apply_per_kind() {
        let long_service = "a".repeat(SERVICE_NAME_MAX_LEN + 1);
        assert!(matches!(validate_service_name(&long_service), Err(NameError::TooLong { .. })));
        assert!(validate_service_name(&"a".repeat(SERVICE_NAME_MAX_LEN)).is_ok());
        let long_project = "a".repeat(PROJECT_NAME_MAX_LEN + 1);
        assert!(matches!(validate_project_name(&long_project), Err(NameError::TooLong { .. })));
        assert!(validate_project_name(&"a".repeat(PROJECT_NAME_MAX_LEN)).is_ok());
        assert!(validate_stage_name(&"a".repeat(STAGE_NAME_MAX_LEN)).is_ok());
        assert!(matches!(validate_stage_name(&"a".repeat(300)), Err(NameError::TooLong { max: 200, .. })));
        assert_eq!(validate_stage_name(""), Err(NameError::Empty { kind: "stage" }));
    }
}
