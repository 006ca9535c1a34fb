//! HTTP basic auth for the listener (`basic_auth_users`): the bcrypt hashes checked at load, each request's
//! `Authorization` header checked against them through the bounded bcrypt pool (`auth_pool.rs`), a cache of
//! successes, and the 401 or 429 answer when a request is refused.
//!
//! It does not decide the order of the checks in front of a route (`serve/web/mod.rs` does: rate limit, then
//! auth, then headers) and knows nothing of TLS.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use axum::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse as _, Response};
use base64::Engine as _;

use crate::config::error::ConfigError;
use crate::serve::web::auth_pool::{AuthPool, Busy};

/// Successful basic-auth verifications remembered, so bcrypt runs once per (user, password) and not per scrape.
pub const AUTH_CACHE_SIZE: usize = 100;
/// bcrypt checks that run at once (each on a blocking thread), so wrong passwords cannot eat every core.
pub const BCRYPT_WORKERS: usize = 1;
/// Uncached login attempts that may wait for a bcrypt worker; past this, the longest-waiting one is refused with
/// 429 (see `auth_pool` for why the oldest).
pub const BCRYPT_QUEUE: usize = 8;
/// bcrypt uses only the first 72 bytes of a password; longer ones are refused, as Go's bcrypt does.
const MAX_PASSWORD_BYTES: usize = 72;

/// `basic_auth_users`, checked with bcrypt. Successful checks are cached under (user, SHA-256 of the password),
/// in a map of at most [`AUTH_CACHE_SIZE`] entries, so a scrape every 15 s does not cost a bcrypt run each time.
/// Failures are not cached. Uncached attempts go through a bounded pool: [`BCRYPT_WORKERS`] bcrypt runs at once,
/// [`BCRYPT_QUEUE`] waiting, and past that the longest-waiting attempt is refused (429), so a flood of wrong
/// passwords neither eats every core nor makes a real login wait behind it (issue 11).
pub(super) struct BasicAuth {
    users: HashMap<String, String>,
    /// The hash compared against for an unknown user, so that timing does not reveal which users exist: the
    /// configured hash with the highest cost (the result is discarded). Unknown users also go through the pool
    /// like anyone else, so they are refused the same way under load.
    decoy: String,
    cache: Mutex<HashSet<(String, [u8; 32])>>,
    pool: AuthPool,
}

impl BasicAuth {
    /// Checks every user name and bcrypt hash (a hash is a secret: errors never quote it).
    pub(super) fn new(users: BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let mut decoy: Option<(u32, String)> = None;
        for (user, hash) in &users {
            let key = || format!("basic_auth_users.{user}");
            if user.contains(':') {
                return Err(ConfigError::at(
                    key(),
                    "a user name cannot contain ':' (basic auth splits user and password at the first ':')",
                ));
            }
            // The hash is a secret: errors never quote it.
            let parts: bcrypt::HashParts = hash.parse().map_err(|e| {
                ConfigError::at(
                    key(),
                    format!(
                        "not a bcrypt hash ({}); generate one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`",
                        bcrypt_reason(&e)
                    ),
                )
            })?;
            let cost = parts.get_cost();
            if !(4..=31).contains(&cost) {
                return Err(ConfigError::at(
                    key(),
                    format!("bcrypt cost {cost} is outside 4 to 31"),
                ));
            }
            if decoy.as_ref().is_none_or(|(c, _)| cost > *c) {
                decoy = Some((cost, hash.clone()));
            }
        }
        Ok(Self {
            decoy: decoy.map(|(_, h)| h).unwrap_or_default(),
            users: users.into_iter().collect(),
            cache: Mutex::new(HashSet::new()),
            pool: AuthPool::new(BCRYPT_WORKERS, BCRYPT_QUEUE),
        })
    }

    /// How many users may log in.
    pub(super) fn users(&self) -> usize {
        self.users.len()
    }

    /// `None` when `authorization` holds the right `Basic` credentials of a configured user; otherwise the answer:
    /// 401 with `WWW-Authenticate: Basic`, or 429 with `Retry-After: 1` when the attempt needed bcrypt and the
    /// pool refused it.
    pub(super) async fn refusal(&self, authorization: Option<&HeaderValue>) -> Option<Response> {
        match self.check(authorization).await {
            Ok(true) => None,
            Ok(false) => {
                let mut response = (StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response();
                response
                    .headers_mut()
                    .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
                Some(response)
            }
            // Too many uncached attempts at once: this one was not checked (the same for any user name).
            Err(Busy) => {
                let mut response =
                    (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n").into_response();
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                Some(response)
            }
        }
    }

    /// The pool bcrypt checks run on.
    #[cfg(test)]
    pub(super) fn pool(&self) -> &AuthPool {
        &self.pool
    }

    /// Whether `authorization` holds the right `Basic` credentials of a configured user; [`Busy`] when the
    /// attempt needed bcrypt and the pool refused it.
    async fn check(&self, authorization: Option<&HeaderValue>) -> Result<bool, Busy> {
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return Ok(false);
        };
        let digest: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, &password)
            .as_ref()
            .try_into()
            .expect("SHA-256 is 32 bytes");
        let cache_key = (user, digest);
        if self.cache_lock().contains(&cache_key) {
            return Ok(true);
        }
        let (hash, known) = match self.users.get(&cache_key.0) {
            Some(hash) => (hash.clone(), true),
            None => (self.decoy.clone(), false),
        };
        let long = password.len() > MAX_PASSWORD_BYTES;
        let matches = self
            .pool
            .verify(move || {
                // Constant-time comparison of the recomputed hash inside the crate.
                let matches = bcrypt::verify(&password, &hash).unwrap_or(false);
                matches && !long
            })
            .await?;
        let ok = known && matches;
        if ok {
            self.remember(cache_key);
        }
        Ok(ok)
    }

    /// Caches a success, evicting an arbitrary entry when the cache is full.
    fn remember(&self, key: (String, [u8; 32])) {
        let mut cache = self.cache_lock();
        if cache.len() >= AUTH_CACHE_SIZE
            && !cache.contains(&key)
            && let Some(evict) = cache.iter().next().cloned()
        {
            // HashSet order is randomised per process, so this is not always the same victim.
            cache.remove(&evict);
        }
        cache.insert(key);
    }

    fn cache_lock(&self) -> std::sync::MutexGuard<'_, HashSet<(String, [u8; 32])>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn bcrypt_reason(e: &bcrypt::BcryptError) -> String {
    match e {
        bcrypt::BcryptError::InvalidHash(reason) => (*reason).to_owned(),
        other => other.to_string(),
    }
}

/// `Basic base64(user:password)` → (user, password). The scheme is case-insensitive (RFC 7617).
fn parse_basic(value: &HeaderValue) -> Option<(String, Vec<u8>)> {
    let value = value.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_parse() {
        let header = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(
            parse_basic(&header("Basic YWxpY2U6czNjcjN0OndpdGg6Y29sb25z")),
            Some(("alice".to_owned(), b"s3cr3t:with:colons".to_vec()))
        );
        assert_eq!(
            parse_basic(&header("basic YWxpY2U6")),
            Some(("alice".to_owned(), Vec::new()))
        );
        for bad in [
            "Bearer YWxpY2U6eA==",
            "Basic",
            "Basic !!!",
            "Basic YWxpY2U=",
        ] {
            assert_eq!(parse_basic(&header(bad)), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn the_auth_cache_is_bounded() {
        let hash = bcrypt::hash_with_salt("pw", 4, [7; 16])
            .unwrap()
            .to_string();
        let auth = BasicAuth::new(BTreeMap::from([("u".to_owned(), hash)])).unwrap();
        let header = |pw: &str| {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("u:{pw}"));
            HeaderValue::from_str(&format!("Basic {token}")).unwrap()
        };
        assert_eq!(auth.check(Some(&header("pw"))).await, Ok(true));
        assert_eq!(auth.check(Some(&header("wrong"))).await, Ok(false));
        assert_eq!(auth.cache_lock().len(), 1, "only successes are cached");
        assert_eq!(auth.check(Some(&header("pw"))).await, Ok(true));
        assert_eq!(
            auth.pool.stats().started,
            2,
            "a cached success runs no bcrypt"
        );
        for i in 0..(AUTH_CACHE_SIZE * 2) {
            auth.remember((format!("user{i}"), [0; 32]));
            assert!(auth.cache_lock().len() <= AUTH_CACHE_SIZE);
        }
        assert_eq!(auth.cache_lock().len(), AUTH_CACHE_SIZE);
        assert_eq!(auth.check(Some(&header("pw"))).await, Ok(true));
        assert!(auth.cache_lock().len() <= AUTH_CACHE_SIZE);
    }
}
