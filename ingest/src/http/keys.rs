//! The keys of the line systems: each configured token becomes the SHA-256 digest of
//! its secret, and a presented bearer token is found by its digest.
//!
//! The config should hold only `token_sha256` (base64url, no padding): the digest of a
//! random secret of at least 128 bits. A fast hash is right here: the secret is random,
//! so there is nothing to guess word by word, and a slow hash would cost every request
//! and could not be looked up. `token` and `token_env` (the secret itself) still work,
//! hashed at load.
//!
//! The ring is swapped whole on a reload ([`SharedKeys::replace`]): a request sees the
//! old list or the new one, never half of each.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Token;
use crate::Timestamp;

/// The SHA-256 digest of a secret.
type Sha256Digest = [u8; 32];

/// A configured token that cannot be used, and why (the message names the token).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// Neither `token_sha256`, `token` nor `token_env` is set, or the variable is unset.
    #[error("token {0:?} has no key: set token_sha256 (from `mieruka token new`)")]
    NoKey(String),
    /// More than one of `token_sha256`, `token` and `token_env` is set.
    #[error(
        "token {0:?} sets more than one of token_sha256, token and token_env: keep token_sha256"
    )]
    SeveralKeys(String),
    /// `token_env` names a variable that is not set.
    #[error("token {name:?}: the environment variable {var} named by token_env is not set")]
    EnvUnset {
        /// The token.
        name: String,
        /// The variable.
        var: String,
    },
    /// `token_sha256` is not 43 characters of base64url (32 bytes).
    #[error(
        "token {0:?}: token_sha256 is not the base64url (no padding) of a 32-byte SHA-256 digest"
    )]
    BadDigest(String),
    /// `expires` is not an RFC 3339 instant.
    #[error("token {name:?}: expires {value:?} is not an RFC 3339 instant like 2027-03-31T23:59:59+09:00")]
    BadExpiry {
        /// The token.
        name: String,
        /// The value as written.
        value: String,
    },
    /// Two entries have the same key (a rollover is two entries, usually of one name,
    /// with two keys).
    #[error("tokens {0:?} and {1:?} have the same key")]
    DuplicateKey(String, String),
}

/// What a presented bearer token is.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// The token of a line system, in force.
    Valid(&'a Token),
    /// The token of a line system, past its `expires`.
    Expired(&'a Token),
    /// No configured token.
    Unknown,
}

/// One configured token, ready to be matched.
#[derive(Debug)]
struct Key {
    digest: Sha256Digest,
    expires: Option<Timestamp>,
    token: Token,
}

/// The configured tokens by the digest of their secret.
#[derive(Debug, Default)]
pub struct KeyRing {
    by_digest: HashMap<Sha256Digest, Key>,
}

impl KeyRing {
    /// The ring of `tokens`, or the first one that cannot be used (secrets named by
    /// `token_env` are read now).
    pub fn new(tokens: &[Token]) -> Result<KeyRing, KeyError> {
        let mut by_digest: HashMap<Sha256Digest, Key> = HashMap::new();
        for token in tokens {
            let key = Key {
                digest: token.digest()?,
                expires: token.expiry()?,
                token: token.clone(),
            };
            if let Some(other) = by_digest.get(&key.digest) {
                let (a, b) = (other.token.name.clone(), token.name.clone());
                return Err(KeyError::DuplicateKey(a, b));
            }
            by_digest.insert(key.digest, key);
        }
        Ok(KeyRing { by_digest })
    }

    /// What `presented` is at `now`: found by its digest, the digest compared again in
    /// constant time (the map's own comparison may stop at the first differing byte).
    pub fn find(&self, presented: &str, now: Timestamp) -> Lookup<'_> {
        let digest = sha256(presented);
        let Some(key) = self.by_digest.get(&digest) else {
            return Lookup::Unknown;
        };
        if !bool::from(key.digest.ct_eq(&digest)) {
            return Lookup::Unknown;
        }
        match key.expires {
            Some(at) if now >= at => Lookup::Expired(&key.token),
            _ => Lookup::Valid(&key.token),
        }
    }

    /// The configured tokens' names, sorted, without repeats (the entries of a
    /// rollover usually share one).
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .by_digest
            .values()
            .map(|k| k.token.name.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The configured tokens, sorted by name.
    pub fn tokens(&self) -> Vec<&Token> {
        let mut v: Vec<&Token> = self.by_digest.values().map(|k| &k.token).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }
}

/// The key ring a receiver matches against, swapped whole on a reload.
#[derive(Clone, Debug, Default)]
pub struct SharedKeys(Arc<RwLock<Arc<KeyRing>>>);

impl SharedKeys {
    /// Shares `ring`.
    pub fn new(ring: KeyRing) -> Self {
        SharedKeys(Arc::new(RwLock::new(Arc::new(ring))))
    }

    /// The ring in force. (A std lock, held only to clone an `Arc`: nothing awaits
    /// while it is held.)
    pub fn current(&self) -> Arc<KeyRing> {
        match self.0.read() {
            Ok(ring) => ring.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts `ring` in force for every request from now on.
    pub fn replace(&self, ring: KeyRing) {
        let ring = Arc::new(ring);
        match self.0.write() {
            Ok(mut current) => *current = ring,
            Err(poisoned) => *poisoned.into_inner() = ring,
        }
    }
}

impl Token {
    /// The digest of this token's secret: `token_sha256` decoded, else the hash of
    /// `token` or of the variable `token_env` names.
    fn digest(&self) -> Result<Sha256Digest, KeyError> {
        let name = || self.name.clone();
        match (&self.token_sha256, &self.token, &self.token_env) {
            (Some(text), None, None) => URL_SAFE_NO_PAD
                .decode(text.trim())
                .ok()
                .and_then(|bytes| Sha256Digest::try_from(bytes).ok())
                .ok_or_else(|| KeyError::BadDigest(name())),
            (None, Some(secret), None) => Ok(sha256(secret)),
            (None, None, Some(var)) => {
                std::env::var(var)
                    .map(|secret| sha256(&secret))
                    .map_err(|_| KeyError::EnvUnset {
                        name: name(),
                        var: var.clone(),
                    })
            }
            (None, None, None) => Err(KeyError::NoKey(name())),
            _ => Err(KeyError::SeveralKeys(name())),
        }
    }

    /// `expires`, parsed.
    fn expiry(&self) -> Result<Option<Timestamp>, KeyError> {
        self.expires
            .as_deref()
            .map(|value| {
                Timestamp::parse_rfc3339(value.trim()).map_err(|_| KeyError::BadExpiry {
                    name: self.name.clone(),
                    value: value.to_owned(),
                })
            })
            .transpose()
    }

    /// Whether the secret itself is in the config or the environment (`token`,
    /// `token_env`): deprecated in favour of `token_sha256`.
    pub fn holds_secret(&self) -> bool {
        self.token.is_some() || self.token_env.is_some()
    }
}

/// The SHA-256 digest of `secret`.
fn sha256(secret: &str) -> Sha256Digest {
    Sha256::digest(secret.as_bytes()).into()
}

/// What goes in `token_sha256` for `secret`: its SHA-256 digest in base64url without
/// padding.
pub fn token_sha256(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha256(secret))
}

/// A secret from `bytes` of randomness: base64url without padding (32 bytes, 256 bits,
/// give 43 characters, safe in a header, a URL and a TOML string).
pub fn secret_text(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn token(name: &str, key: (&str, &str), expires: Option<&str>) -> Token {
        let mut t = Token {
            name: name.to_owned(),
            sources: vec![name.to_owned()],
            expires: expires.map(str::to_owned),
            ..Token::default()
        };
        match key.0 {
            "token_sha256" => t.token_sha256 = Some(key.1.to_owned()),
            _ => t.token = Some(key.1.to_owned()),
        }
        t
    }

    fn at(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn a_token_is_found_by_the_digest_of_its_secret_and_judged_by_its_expiry() {
        let secret = "tok-2026";
        let ring = KeyRing::new(&[
            token(
                "konbini",
                ("token_sha256", &token_sha256(secret)),
                Some("2027-03-31T23:59:59+09:00"),
            ),
            token("card", ("token", "plain"), None),
        ])
        .unwrap();
        let before = at("2027-03-31T23:59:58+09:00");
        let after = at("2027-04-01T00:00:00+09:00");
        assert!(matches!(ring.find(secret, before), Lookup::Valid(t) if t.name == "konbini"));
        assert!(matches!(ring.find(secret, after), Lookup::Expired(t) if t.name == "konbini"));
        assert!(matches!(ring.find("plain", after), Lookup::Valid(t) if t.name == "card"));
        assert!(matches!(ring.find("tok-2027", before), Lookup::Unknown));
        // The digest itself is no key.
        assert!(matches!(
            ring.find(&token_sha256(secret), before),
            Lookup::Unknown
        ));
        assert_eq!(ring.names(), ["card", "konbini"]);
    }

    #[test]
    fn a_token_that_cannot_be_used_is_an_error_naming_it() {
        let bad = |t: Token| KeyRing::new(&[t]).unwrap_err().to_string();
        assert!(bad(token("k", ("token_sha256", "abc"), None)).contains("\"k\": token_sha256"));
        let mut both = token("k", ("token", "x"), None);
        both.token_sha256 = Some(token_sha256("x"));
        assert!(bad(both).contains("more than one"));
        let mut none = token("k", ("token", "x"), None);
        none.token = None;
        assert!(bad(none).contains("has no key"));
        assert!(bad(token("k", ("token", "x"), Some("next spring"))).contains("\"next spring\""));
        let twice = KeyRing::new(&[
            token("a", ("token", "x"), None),
            token("b", ("token_sha256", &token_sha256("x")), None),
        ]);
        assert_eq!(
            twice.unwrap_err(),
            KeyError::DuplicateKey("a".into(), "b".into())
        );
    }

    #[test]
    fn a_replaced_ring_is_in_force_for_the_next_lookup() {
        let shared = SharedKeys::new(KeyRing::new(&[token("a", ("token", "x"), None)]).unwrap());
        let now = at("2026-10-01T00:00:00+09:00");
        let old = shared.current();
        shared.replace(KeyRing::new(&[token("b", ("token", "y"), None)]).unwrap());
        assert!(matches!(old.find("x", now), Lookup::Valid(_)));
        assert!(matches!(shared.current().find("x", now), Lookup::Unknown));
        assert!(matches!(shared.current().find("y", now), Lookup::Valid(_)));
    }
}
