//! Talking to a project's git upstream: credentials, fetch and push, and error classification.

use std::cell::Cell;

use git2::{Cred, CredentialType, FetchOptions, PushOptions, RemoteCallbacks, Repository};

use crate::model::project::GitCredentials;

/// Why the upstream refused or failed. Messages never include credentials.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UpstreamError {
    #[error("invalid git token or credentials for the upstream repository")]
    Auth,
    #[error("upstream repository not found")]
    NotFound,
    #[error("upstream repository is not empty: it is already initialized")]
    NotEmpty,
    #[error("upstream branch '{0}' has history the project does not contain; use an empty repository")]
    Diverged(String),
    #[error("upstream rejected the push: {0}")]
    Rejected(String),
    #[error("upstream repository is unreachable: {0}")]
    Unreachable(String),
}

/// How often a write is retried when another writer pushed first (Keptn retries 5 times).
pub const MAX_PUSH_ATTEMPTS: usize = 5;

/// Callbacks that answer credential requests once; libgit2 asks again after a refusal and would loop.
fn callbacks<'a>(credentials: &'a GitCredentials, asked: &'a Cell<u32>) -> RemoteCallbacks<'a> {
    let mut callbacks = RemoteCallbacks::new();
    callbacks.credentials(move |_url, username_from_url, allowed| {
        asked.set(asked.get() + 1);
        // A username request may precede the real one (ssh without a user in the URL); more than
        // that means the credentials were refused.
        if asked.get() > 2 {
            return Err(git2::Error::from_str("authentication failed"));
        }
        if allowed.contains(CredentialType::USERNAME) {
            let user = credentials.user.as_deref().filter(|u| !u.is_empty()).or(username_from_url).unwrap_or("git");
            return Cred::username(user);
        }
        if let Some(ssh) = &credentials.ssh {
            if allowed.contains(CredentialType::SSH_KEY) {
                use base64::Engine as _;
                let key = base64::engine::general_purpose::STANDARD
                    .decode(ssh.private_key.trim())
                    .map_err(|_| git2::Error::from_str("ssh private key is not base64"))?;
                let key = String::from_utf8(key).map_err(|_| git2::Error::from_str("ssh key is not text"))?;
                let user = credentials.user.as_deref().or(username_from_url).unwrap_or("git");
                return Cred::ssh_key_from_memory(user, None, &key, ssh.private_key_pass.as_deref());
            }
        }
        let token = credentials.https.as_ref().map(|https| https.token.as_str()).unwrap_or_default();
        let user = credentials.user.as_deref().filter(|u| !u.is_empty()).unwrap_or("keelson");
        Cred::userpass_plaintext(user, token)
    });
    let skip_tls = credentials.https.as_ref().is_some_and(|https| https.insecure_skip_tls);
    callbacks.certificate_check(move |_cert, _host| {
        Ok(if skip_tls {
            git2::CertificateCheckStatus::CertificateOk
        } else {
            git2::CertificateCheckStatus::CertificatePassthrough
        })
    });
    callbacks
}

fn proxy_options(credentials: &GitCredentials) -> git2::ProxyOptions<'_> {
    let mut proxy = git2::ProxyOptions::new();
    if let Some(config) = credentials.https.as_ref().and_then(|https| https.proxy.as_ref()) {
        if !config.url.is_empty() {
            let scheme = if config.scheme.is_empty() { "http" } else { config.scheme.as_str() };
            proxy.url(&format!("{scheme}://{}", config.url));
        }
    }
    proxy
}

/// Maps a libgit2 error from a network operation onto what the API reports.
pub fn classify(error: &git2::Error) -> UpstreamError {
    let message = error.message().to_ascii_lowercase();
    if error.code() == git2::ErrorCode::Auth
        || error.class() == git2::ErrorClass::Ssh && message.contains("auth")
        || message.contains("401")
        || message.contains("403")
        || message.contains("authentication")
    {
        UpstreamError::Auth
    } else if message.contains("404")
        || message.contains("not found")
        || message.contains("does not appear to be a git repository")
    {
        UpstreamError::NotFound
    } else {
        UpstreamError::Unreachable(error.message().to_owned())
    }
}

/// Heads (`refs/heads/*`) the upstream currently has.
pub fn remote_heads(repo: &Repository, credentials: &GitCredentials) -> Result<Vec<String>, UpstreamError> {
    let asked = Cell::new(0);
    // A connection reads this from the repository's configuration (fetch and push set it themselves).
    repo.config().and_then(|mut config| config.set_bool("http.followRedirects", false)).map_err(|e| classify(&e))?;
    let mut remote = repo.remote_anonymous(&credentials.remote_url).map_err(|e| classify(&e))?;
    let connection = remote
        .connect_auth(git2::Direction::Fetch, Some(callbacks(credentials, &asked)), Some(proxy_options(credentials)))
        .map_err(|e| classify(&e))?;
    let heads = connection
        .list()
        .map_err(|e| classify(&e))?
        .iter()
        .filter_map(|head| head.name().strip_prefix("refs/heads/").map(str::to_owned))
        .collect();
    Ok(heads)
}

/// Fetches every upstream branch into `refs/remotes/upstream/*`, leaving local branches alone.
pub fn fetch(repo: &Repository, credentials: &GitCredentials) -> Result<(), UpstreamError> {
    let asked = Cell::new(0);
    let mut remote = repo.remote_anonymous(&credentials.remote_url).map_err(|e| classify(&e))?;
    let mut options = FetchOptions::new();
    options
        .remote_callbacks(callbacks(credentials, &asked))
        .proxy_options(proxy_options(credentials))
        // A redirect could lead past the destination policy checked for the URL.
        .follow_redirects(git2::RemoteRedirect::None);
    remote.fetch(&["+refs/heads/*:refs/remotes/upstream/*"], Some(&mut options), None).map_err(|e| classify(&e))
}

/// Fetches every upstream branch and moves the local branches onto them.
///
/// Local branches never hold unpushed commits (a write that fails to push is rolled back), so moving
/// them is a fast-forward in practice and loses nothing.
pub fn pull(repo: &Repository, credentials: &GitCredentials) -> Result<(), UpstreamError> {
    fetch(repo, credentials)?;
    let references = repo.references_glob("refs/remotes/upstream/*").map_err(|e| classify(&e))?;
    for reference in references {
        let reference = reference.map_err(|e| classify(&e))?;
        let (Some(name), Some(target)) = (reference.name(), reference.target()) else { continue };
        let branch = name.trim_start_matches("refs/remotes/upstream/");
        repo.reference(&format!("refs/heads/{branch}"), target, true, "pull from upstream")
            .map_err(|e| classify(&e))?;
    }
    Ok(())
}

/// Pushes `branches` to the upstream without forcing.
pub fn push(repo: &Repository, credentials: &GitCredentials, branches: &[&str]) -> Result<(), UpstreamError> {
    let asked = Cell::new(0);
    let mut remote = repo.remote_anonymous(&credentials.remote_url).map_err(|e| classify(&e))?;
    let rejection = std::cell::RefCell::new(None);
    let mut remote_callbacks = callbacks(credentials, &asked);
    remote_callbacks.push_update_reference(|reference, status| {
        if let Some(status) = status {
            *rejection.borrow_mut() = Some(format!("{reference}: {status}"));
        }
        Ok(())
    });
    let mut options = PushOptions::new();
    options
        .remote_callbacks(remote_callbacks)
        .proxy_options(proxy_options(credentials))
        .follow_redirects(git2::RemoteRedirect::None);
    let refspecs: Vec<String> = branches.iter().map(|b| format!("refs/heads/{b}:refs/heads/{b}")).collect();
    let result = remote.push(&refspecs, Some(&mut options));
    drop(options);
    if let Some(message) = rejection.into_inner() {
        return Err(UpstreamError::Rejected(message));
    }
    result.map_err(|error| match error.code() {
        git2::ErrorCode::NotFastForward => UpstreamError::Rejected(error.message().to_owned()),
        _ => classify(&error),
    })
}
