//! Secrets: API keys (looked up by SHA-256 digest) and the server key that seals data at rest
//! (API keys, phone adapter credentials) with XChaCha20-Poly1305.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

const SEALED_PREFIX: &str = "v1:";
const NONCE_LEN: usize = 24;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("the server key must be 64 hexadecimal characters (32 bytes)")]
    BadKey,
    #[error("sealed data is damaged or was sealed with another server key")]
    Unseal,
    #[error("the system random generator failed")]
    Random,
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> Result<String, SecretError> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|_| SecretError::Random)?;
    Ok(hex::encode(bytes))
}

/// A new API key: 32 hex characters, the shape RaspiSMS clients expect.
pub fn generate_api_key() -> Result<String, SecretError> {
    random_hex(16)
}

/// The digest an API key is looked up by.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The server key: seals and opens secrets kept at rest.
#[derive(Clone)]
pub struct ServerKey(XChaCha20Poly1305);

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKey(..)")
    }
}

impl ServerKey {
    pub fn generate_hex() -> Result<String, SecretError> {
        random_hex(32)
    }

    pub fn from_hex(text: &str) -> Result<ServerKey, SecretError> {
        let bytes = hex::decode(text.trim()).map_err(|_| SecretError::BadKey)?;
        let key = XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| SecretError::BadKey)?;
        Ok(ServerKey(key))
    }

    /// `v1:` + base64(nonce ‖ ciphertext ‖ tag).
    pub fn seal(&self, plaintext: &str) -> Result<String, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| SecretError::Random)?;
        let sealed = self
            .0
            .encrypt(XNonce::from_slice(&nonce), plaintext.as_bytes())
            .map_err(|_| SecretError::Unseal)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{SEALED_PREFIX}{}", STANDARD_NO_PAD.encode(out)))
    }

    pub fn open(&self, sealed: &str) -> Result<String, SecretError> {
        let body = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or(SecretError::Unseal)?;
        let bytes = STANDARD_NO_PAD
            .decode(body)
            .map_err(|_| SecretError::Unseal)?;
        if bytes.len() < NONCE_LEN {
            return Err(SecretError::Unseal);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plain = self
            .0
            .decrypt(XNonce::from_slice(nonce), ciphertext)
            .map_err(|_| SecretError::Unseal)?;
        String::from_utf8(plain).map_err(|_| SecretError::Unseal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_hides_the_text() {
        let key = ServerKey::from_hex(&ServerKey::generate_hex().expect("key")).expect("parse");
        let sealed = key.seal("app_secret=hunter2").expect("seal");
        assert!(!sealed.contains("hunter2"));
        assert_ne!(sealed, key.seal("app_secret=hunter2").expect("seal"));
        assert_eq!(key.open(&sealed).expect("open"), "app_secret=hunter2");
    }

    #[test]
    fn another_key_or_tampering_cannot_open() {
        let a = ServerKey::from_hex(&"11".repeat(32)).expect("a");
        let b = ServerKey::from_hex(&"22".repeat(32)).expect("b");
        let sealed = a.seal("secret").expect("seal");
        assert_eq!(b.open(&sealed), Err(SecretError::Unseal));
        let mut tampered = sealed.clone();
        tampered.pop();
        assert_eq!(a.open(&tampered), Err(SecretError::Unseal));
        assert_eq!(a.open("plain"), Err(SecretError::Unseal));
    }

    #[test]
    fn bad_keys_are_refused() {
        assert_eq!(ServerKey::from_hex("abcd").err(), Some(SecretError::BadKey));
        assert_eq!(
            ServerKey::from_hex(&"zz".repeat(32)).err(),
            Some(SecretError::BadKey)
        );
    }

    #[test]
    fn api_keys_and_digests() {
        let key = generate_api_key().expect("key");
        assert_eq!(key.len(), 32);
        assert!(key.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
