//! Secrets: a redacting newtype, API key minting and checking, and the cipher that keeps
//! upstream provider keys encrypted at rest.

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A secret string: `Debug` and `Display` print `***`, so it cannot leak through a log line or
/// an error message by accident. Read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself, for the one place that must send or show it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl serde::Serialize for Secret {
    // Serialized only into the one response that shows a new key once.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Length of the public id part of a key (`hl` + hex).
const ID_HEX: usize = 10;
/// Length of the secret part: 24 random bytes, hex — 192 bits, so a plain SHA-256 is an
/// adequate password hash (nothing to brute-force).
const SECRET_HEX: usize = 48;

/// A freshly minted key: shown once, stored only as `hash`.
#[derive(Debug)]
pub struct MintedKey {
    /// Public id (`hl…`), also the visible prefix.
    pub id: String,
    /// The full key to hand to the client: `sk-<id>-<secret>`.
    pub key: Secret,
    /// Hex SHA-256 of the secret part.
    pub hash: String,
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Hex SHA-256 of `s`.
pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Mints a new API key.
pub fn mint_key() -> MintedKey {
    let id = format!("hl{}", random_hex(ID_HEX / 2));
    let secret = random_hex(SECRET_HEX / 2);
    MintedKey {
        key: Secret::new(format!("sk-{id}-{secret}")),
        hash: sha256_hex(&secret),
        id,
    }
}

/// Splits `sk-<id>-<secret>` into id and secret, refusing anything of the wrong shape before
/// it reaches the database.
pub fn parse_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("sk-")?;
    let (id, secret) = rest.split_once('-')?;
    let hexish = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let id_ok = id.len() == ID_HEX + 2 && id.starts_with("hl") && hexish(&id[2..]);
    (id_ok && secret.len() == SECRET_HEX && hexish(secret)).then_some((id, secret))
}

/// Whether `secret` hashes to `stored_hash`, compared in constant time.
pub fn verify_secret(secret: &str, stored_hash: &str) -> bool {
    let given = sha256_hex(secret);
    given.as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

/// A random single-use redemption code (`HL-XXXX-…`), and its hash for storage.
pub fn mint_code() -> (Secret, String) {
    let raw = random_hex(12).to_ascii_uppercase();
    let code = format!("HL-{}-{}-{}", &raw[0..8], &raw[8..16], &raw[16..24]);
    let hash = sha256_hex(&code);
    (Secret::new(code), hash)
}

/// Encrypts upstream provider keys at rest (ChaCha20-Poly1305, random nonce per value).
#[derive(Clone)]
pub struct Cipher(Key);

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher(***)")
    }
}

impl Cipher {
    /// A cipher from a 32-byte master key.
    pub fn new(master: [u8; 32]) -> Self {
        Cipher(Key::from(master))
    }

    /// A cipher from 64 hex characters.
    pub fn from_hex(hex_key: &str) -> Option<Self> {
        let bytes = hex::decode(hex_key.trim()).ok()?;
        let arr: [u8; 32] = bytes.try_into().ok()?;
        Some(Self::new(arr))
    }

    /// A new random master key, hex.
    pub fn generate_hex() -> String {
        random_hex(32)
    }

    /// `nonce ‖ ciphertext`, hex.
    pub fn encrypt(&self, plain: &Secret) -> Option<String> {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = ChaCha20Poly1305::new(&self.0)
            .encrypt(Nonce::from_slice(&nonce), plain.expose().as_bytes())
            .ok()?;
        let mut out = nonce.to_vec();
        out.extend(ct);
        Some(hex::encode(out))
    }

    /// Decrypts what [`Cipher::encrypt`] produced; `None` for a wrong key or tampered value.
    pub fn decrypt(&self, enc: &str) -> Option<Secret> {
        let bytes = hex::decode(enc).ok()?;
        if bytes.len() < 12 {
            return None;
        }
        let (nonce, ct) = bytes.split_at(12);
        let plain = ChaCha20Poly1305::new(&self.0)
            .decrypt(Nonce::from_slice(nonce), ct)
            .ok()?;
        String::from_utf8(plain).ok().map(Secret::new)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_round_trip_and_reject_tampering() {
        let k = mint_key();
        let (id, secret) = parse_key(k.key.expose()).unwrap();
        assert_eq!(id, k.id);
        assert!(verify_secret(secret, &k.hash));
        let mut wrong = secret.to_string();
        wrong.replace_range(0..1, if wrong.starts_with('0') { "1" } else { "0" });
        assert!(!verify_secret(&wrong, &k.hash));
        assert!(parse_key("sk-hl00-abc").is_none());
        assert!(parse_key(&format!("sk-{id}-{secret}x")).is_none());
        assert!(parse_key("' OR 1=1 --").is_none());
        assert_eq!(format!("{:?} {}", k.key, k.key), "*** ***");
    }

    #[test]
    fn cipher_round_trip_and_wrong_key() {
        let c = Cipher::from_hex(&Cipher::generate_hex()).unwrap();
        let enc = c.encrypt(&Secret::new("sk-upstream")).unwrap();
        assert!(!enc.contains("upstream"));
        assert_eq!(c.decrypt(&enc).unwrap().expose(), "sk-upstream");
        let other = Cipher::from_hex(&Cipher::generate_hex()).unwrap();
        assert!(other.decrypt(&enc).is_none());
        assert!(c.decrypt("zz").is_none());
    }
}
