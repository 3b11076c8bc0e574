//! Resource URIs: relative paths inside a project, stage or service directory.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid resource uri '{uri}': {reason}")]
pub struct InvalidUri {
    pub uri: String,
    pub reason: &'static str,
}

/// Longest accepted resource URI, in bytes.
const MAX_URI_LEN: usize = 1024;

/// Normalises a client-sent resource URI into path components.
///
/// A single leading `/` is accepted (Keptn clients send `/shipyard.yaml`); absolute paths in any other
/// spelling, `..`, `~` (Keptn refuses it), `.git`, NUL and other control characters, backslashes and empty
/// components are refused so that no URI can step outside its scope.
pub fn parse(uri: &str) -> Result<Vec<&str>, InvalidUri> {
    let invalid = |reason| InvalidUri { uri: uri.escape_default().to_string(), reason };
    if uri.len() > MAX_URI_LEN {
        return Err(invalid("it is too long"));
    }
    if uri.chars().any(|c| c.is_control()) {
        return Err(invalid("it contains a control character"));
    }
    if uri.contains('\\') {
        return Err(invalid("it contains a backslash"));
    }
    if uri.contains('~') {
        return Err(invalid("it contains '~'"));
    }
    let relative = uri.strip_prefix('/').unwrap_or(uri);
    if relative.is_empty() {
        return Err(invalid("it is empty"));
    }
    if relative.starts_with('/') {
        return Err(invalid("it is an absolute path"));
    }
    let components: Vec<&str> = relative.split('/').collect();
    for component in &components {
        match *component {
            "" => return Err(invalid("it contains an empty path segment")),
            "." | ".." => return Err(invalid("it contains '.' or '..'")),
            name if is_git_special(name) => return Err(invalid("it names git's own files (.git, .gitmodules)")),
            _ => {}
        }
    }
    Ok(components)
}

/// Names git treats as its own, in any case and with the trailing dots and spaces that Windows and
/// macOS file systems drop (`.GIT`, `.git.`, `.Gitmodules `).
fn is_git_special(component: &str) -> bool {
    let trimmed = component.trim_end_matches(['.', ' ']);
    trimmed.eq_ignore_ascii_case(".git") || trimmed.eq_ignore_ascii_case(".gitmodules")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_relative_and_leading_slash() {
        assert_eq!(parse("shipyard.yaml").unwrap(), ["shipyard.yaml"]);
        assert_eq!(parse("/shipyard.yaml").unwrap(), ["shipyard.yaml"]);
        assert_eq!(parse("helm/carts/values.yaml").unwrap(), ["helm", "carts", "values.yaml"]);
        assert_eq!(parse("dir/.hidden").unwrap(), ["dir", ".hidden"]);
    }

    #[test]
    fn refuses_escapes() {
        for uri in [
            "",
            "/",
            "../etc/passwd",
            "a/../../b",
            "a/./b",
            "//etc/passwd",
            "a//b",
            "a/",
            "nul\0byte",
            "line\nbreak",
            "~/x",
            "a\\b",
            ".git/config",
            "sub/.git/HEAD",
            ".GIT/config",
            "sub/.Git/hooks/post-checkout",
            ".git./config",
            ".git /config",
            ".gitmodules",
            "sub/.GITMODULES",
        ] {
            assert!(parse(uri).is_err(), "{uri:?} must be refused");
        }
        assert!(parse(&"a".repeat(MAX_URI_LEN + 1)).is_err());
        assert!(parse(".gitignore").is_ok() && parse("git/config").is_ok() && parse("x.git").is_ok());
    }
}
