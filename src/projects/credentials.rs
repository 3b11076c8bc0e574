//! Upstream credentials at rest: sealed with the secret key (AES-256-GCM), the record's key bound in as
//! associated data so a sealed value cannot be moved to another project.

use serde::{Deserialize, Serialize};

use crate::model::project::GitCredentials;
use crate::secrets::{Sealed, SecretKey};
use crate::store::versioned;

#[derive(Serialize, Deserialize)]
struct StoredCredentials {
    sealed: Sealed,
}

/// The stored form of `credentials` under `key` (the snapshot key).
pub fn seal(secret_key: &SecretKey, key: &str, credentials: &GitCredentials) -> Vec<u8> {
    let plain = serde_json::to_vec(credentials).expect("credentials always serialise");
    versioned::encode(&StoredCredentials { sealed: secret_key.seal(&plain, key.as_bytes()) })
}

/// What a stored credentials record holds.
pub enum Opened {
    Sealed(GitCredentials),
    /// Written in plain text by an earlier release: to be sealed again.
    Plain(GitCredentials),
}

/// Reads a record written by [`seal`], or a plain one of an earlier release.
pub fn open(secret_key: &SecretKey, key: &str, bytes: &[u8]) -> Result<Opened, String> {
    if let Ok(stored) = versioned::decode::<StoredCredentials>(bytes) {
        let plain = secret_key
            .open(&stored.sealed, key.as_bytes())
            .map_err(|_| "they cannot be decrypted with the configured secret key".to_owned())?;
        return serde_json::from_slice(&plain).map(Opened::Sealed).map_err(|error| error.to_string());
    }
    versioned::decode::<GitCredentials>(bytes).map(Opened::Plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials() -> GitCredentials {
        serde_json::from_value(serde_json::json!({
            "remoteURL": "https://git.example/shop.git", "user": "u", "https": { "token": "tok-123-secret" }
        }))
        .unwrap()
    }

    #[test]
    fn credentials_are_sealed_and_bound_to_their_key() {
        let secret_key = SecretKey::generate();
        let stored = seal(&secret_key, "project-credentials/shop", &credentials());
        assert!(!String::from_utf8_lossy(&stored).contains("tok-123-secret"));
        let Ok(Opened::Sealed(opened)) = open(&secret_key, "project-credentials/shop", &stored) else {
            panic!("sealed credentials open")
        };
        assert_eq!(opened, credentials());
        assert!(open(&secret_key, "project-credentials/other", &stored).is_err(), "bound to the project");
        assert!(open(&SecretKey::generate(), "project-credentials/shop", &stored).is_err(), "needs the key");
    }

    #[test]
    fn plain_records_of_earlier_releases_are_read() {
        let plain = versioned::encode(&credentials());
        let Ok(Opened::Plain(opened)) = open(&SecretKey::generate(), "project-credentials/shop", &plain) else {
            panic!("plain credentials open")
        };
        assert_eq!(opened, credentials());
    }
}
