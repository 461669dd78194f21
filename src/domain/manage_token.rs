//! A site's manage token: what lets its customer change the site (SPEC §7). berth keeps only
//! its sha256, so a copy of the database cannot act as a customer.
//!
//! A token is an HMAC, under berth's manage key, of the site's id and a random nonce kept on the
//! site's row. So berth can put the same token in the readiness email that it showed once in
//! the signup's `201`, without ever storing it; a new nonce (an operator's rotation) makes a new
//! token, and the old one stops matching the stored hash.

use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::Secret;

/// What every manage token starts with, so a leaked one is recognisable (and greppable).
pub const PREFIX: &str = "bmt_";

/// The key manage tokens are derived with (`server.manage_key`, or one berth keeps in its
/// database when that is not set).
pub struct ManageKey(Secret);

/// A freshly issued token, with what the site's row stores: the nonce it is derived from and
/// its hash.
pub struct Issued {
    pub token: Secret,
    pub nonce: String,
    pub hash: String,
}

impl ManageKey {
    pub fn new(key: Secret) -> Self {
        Self(key)
    }

    /// A new random key, as text (64 hex characters).
    pub fn generate_text() -> String {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        hex::encode(bytes)
    }

    /// A new token for `site_id`.
    pub fn issue(&self, site_id: &str) -> Issued {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let nonce = hex::encode(bytes);
        let token = self.token(site_id, &nonce);
        let hash = hash(token.expose());
        Issued { token, nonce, hash }
    }

    /// The token of `site_id` issued with `nonce`.
    pub fn token(&self, site_id: &str, nonce: &str) -> Secret {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.expose().as_bytes())
            .expect("HMAC takes a key of any length");
        for part in ["berth manage token", site_id, nonce] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        Secret::new(format!(
            "{PREFIX}{}",
            hex::encode(mac.finalize().into_bytes())
        ))
    }
}

/// The stored form of a token: hex sha256 of its text.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `candidate` is the token whose hash is `stored`, compared in constant time.
pub fn matches(stored: &str, candidate: &str) -> bool {
    Secret::new(stored).matches(&hash(candidate))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> ManageKey {
        ManageKey::new(Secret::new(text))
    }

    #[test]
    fn a_token_matches_its_own_hash_only_and_is_derived_again_from_its_nonce() {
        let key = key("k".repeat(32).as_str());
        let a = key.issue("site_a");
        let b = key.issue("site_a");
        assert!(a.token.expose().starts_with(PREFIX));
        assert_eq!(a.token.expose().len(), PREFIX.len() + 64);
        assert_ne!(a.token, b.token, "each issue is new");
        assert!(matches(&a.hash, a.token.expose()));
        assert!(!matches(&a.hash, b.token.expose()));
        assert!(!matches(&a.hash, ""));
        assert!(!matches("", a.token.expose()));
        assert_ne!(a.hash, a.token.expose(), "the stored form is not the token");
        assert_eq!(key.token("site_a", &a.nonce), a.token);
        assert_ne!(key.token("site_b", &a.nonce), a.token, "bound to its site");
    }

    #[test]
    fn another_key_derives_other_tokens() {
        let issued = key("one key, long enough for the test").issue("site_a");
        let other = key("another key, long enough for it").token("site_a", &issued.nonce);
        assert!(!matches(&issued.hash, other.expose()));
    }
}
