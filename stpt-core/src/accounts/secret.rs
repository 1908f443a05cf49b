//! Secrets (session cookies, runner tokens, reset links) and password hashes.
//!
//! Secrets are 256 random bits from the operating system, so storing their SHA-256 is enough:
//! a leaked table reveals no usable secret, and lookups stay one indexed read. Passwords are
//! low-entropy, so they get argon2id with a random salt.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use std::fmt;

use crate::{Error, Result};

/// The SHA-256 of a secret, in lowercase hex: what stores keep instead of the secret.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SecretHash(String);

impl SecretHash {
    /// The hash of `secret`.
    pub fn of(secret: &str) -> SecretHash {
        let digest = Sha256::digest(secret.as_bytes());
        let mut hex = String::with_capacity(64);
        for byte in digest {
            hex.push_str(&format!("{byte:02x}"));
        }
        SecretHash(hex)
    }

    /// A hash read back from storage (64 lowercase hex digits).
    pub fn from_stored(hex: impl Into<String>) -> SecretHash {
        SecretHash(hex.into())
    }

    /// The hex text, for storage.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretHash {
    // Hashes are not secrets, but a short form keeps logs readable.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretHash({}…)", &self.0[..self.0.len().min(8)])
    }
}

/// A fresh random secret: 32 bytes from the operating system, base64url without padding,
/// after `prefix` (so a leaked runner token is recognisable, e.g. by secret scanners).
pub(crate) fn new_secret(prefix: &str) -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| Error::backend(error.to_string()))?;
    Ok(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// Whether two secrets are equal, in time that does not depend on where they differ.
pub fn secrets_match(a: &str, b: &str) -> bool {
    // Comparing fixed-length digests leaks nothing about the secrets themselves.
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The argon2id hash of `password` with a fresh salt, as a PHC string.
pub(crate) fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|error| Error::backend(error.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|error| Error::backend(error.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| Error::backend(error.to_string()))
}

/// Whether `password` matches the PHC string `hash`. A malformed hash matches nothing.
pub(crate) fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A valid hash of a password no one knows, verified when a username does not exist so that
/// a failed sign-in takes the same time either way.
pub(crate) fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        hash_password("stpt decoy password").unwrap_or_else(|_| {
            // A fixed, well-formed hash keeps the timing close even without randomness.
            "$argon2id$v=19$m=19456,t=2,p=1$c3RwdGRlY295c2FsdA$3n2m2j8eYzVbJ3r7tUuRkVt5xq4xZ8o9v1m0c2b3a4E"
                .to_string()
        })
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn secrets_are_random_and_prefixed() {
        let a = new_secret("stpt_").unwrap();
        let b = new_secret("stpt_").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("stpt_"));
        assert_eq!(a.len(), 5 + 43);
    }

    #[test]
    fn hashes_are_hex_sha256() {
        assert_eq!(
            SecretHash::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn passwords_verify_only_themselves() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct horsE", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
        assert!(!verify_password("x", decoy_hash()));
    }

    #[test]
    fn secret_comparison() {
        assert!(secrets_match("abc", "abc"));
        assert!(!secrets_match("abc", "abd"));
        assert!(!secrets_match("abc", "abcd"));
    }
}
