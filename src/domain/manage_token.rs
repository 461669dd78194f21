//! A site's manage token: what lets its customer change the site (SPEC §7). 256 random bits,
//! shown once; berth keeps only its sha256, so a copy of the database cannot act as a customer.

use rand::RngCore;
use sha2::{Digest, Sha256};

use super::Secret;

/// What every manage token starts with, so a leaked one is recognisable (and greppable).
pub const PREFIX: &str = "bmt_";

/// A freshly made token, with the hash to store.
pub struct ManageToken {
    pub token: Secret,
    pub hash: String,
}

impl ManageToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token = format!("{PREFIX}{}", hex::encode(bytes));
        let hash = hash(&token);
        Self {
            token: Secret::new(token),
            hash,
        }
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

    #[test]
    fn a_token_matches_its_own_hash_only() {
        let a = ManageToken::generate();
        let b = ManageToken::generate();
        assert!(a.token.expose().starts_with(PREFIX));
        assert_eq!(a.token.expose().len(), PREFIX.len() + 64);
        assert!(matches(&a.hash, a.token.expose()));
        assert!(!matches(&a.hash, b.token.expose()));
        assert!(!matches(&a.hash, ""));
        assert!(!matches("", a.token.expose()));
        assert_ne!(a.hash, a.token.expose(), "the stored form is not the token");
    }
}
