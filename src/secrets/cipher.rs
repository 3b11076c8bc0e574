//! AES-256-GCM sealing of secret values, with the secret's name as associated data so a sealed value
//! cannot be moved to another secret's record.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

const NONCE_BYTES: usize = 12;

#[derive(Debug, thiserror::Error)]
#[error("invalid secret key: {0}")]
pub struct SecretKeyError(String);

/// The key secrets are encrypted with. Its `Debug` never shows it.
#[derive(Clone)]
pub struct SecretKey(Aes256Gcm);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

/// A sealed value that this key cannot open: another key, another record, or damaged.
#[derive(Debug, thiserror::Error)]
#[error("the value cannot be decrypted with the configured key")]
pub struct Unsealable;

/// A sealed value as stored.
#[derive(Serialize, Deserialize)]
pub struct Sealed {
    nonce: String,
    ciphertext: String,
}

impl SecretKey {
    /// A key from its base64 text (32 bytes).
    pub fn from_base64(text: &str) -> Result<Self, SecretKeyError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| SecretKeyError("expected base64".into()))?;
        if bytes.len() != 32 {
            return Err(SecretKeyError(format!("expected 32 bytes, got {}", bytes.len())));
        }
        Ok(Self(Aes256Gcm::new_from_slice(&bytes).expect("32 bytes is an AES-256 key")))
    }

    /// A new random key and its base64 text (to be stored by the caller).
    pub fn generate_text() -> String {
        use rand::Rng as _;
        let bytes: [u8; 32] = rand::rng().random();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    pub fn generate() -> Self {
        Self::from_base64(&Self::generate_text()).expect("a generated key is valid")
    }

    pub fn seal(&self, plain: &[u8], associated: &[u8]) -> Sealed {
        use rand::Rng as _;
        let nonce: [u8; NONCE_BYTES] = rand::rng().random();
        let ciphertext = self
            .0
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad: associated })
            .expect("AES-GCM encryption does not fail for in-memory buffers");
        let engine = base64::engine::general_purpose::STANDARD;
        Sealed { nonce: engine.encode(nonce), ciphertext: engine.encode(ciphertext) }
    }

    pub fn open(&self, sealed: &Sealed, associated: &[u8]) -> Result<Vec<u8>, Unsealable> {
        let engine = base64::engine::general_purpose::STANDARD;
        let nonce = engine.decode(&sealed.nonce).map_err(|_| Unsealable)?;
        let ciphertext = engine.decode(&sealed.ciphertext).map_err(|_| Unsealable)?;
        if nonce.len() != NONCE_BYTES {
            return Err(Unsealable);
        }
        self.0.decrypt(Nonce::from_slice(&nonce), Payload { msg: &ciphertext, aad: associated }).map_err(|_| Unsealable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_name() {
        let key = SecretKey::generate();
        let sealed = key.seal(b"value", b"name");
        assert_eq!(key.open(&sealed, b"name").unwrap(), b"value");
        assert!(key.open(&sealed, b"other-name").is_err());
        assert!(SecretKey::generate().open(&sealed, b"name").is_err());
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(SecretKey::from_base64("not base64!").is_err());
        assert!(SecretKey::from_base64("AAAA").is_err());
        assert!(SecretKey::from_base64(&SecretKey::generate_text()).is_ok());
        assert_eq!(format!("{:?}", SecretKey::generate()), "SecretKey(***)");
    }
}
