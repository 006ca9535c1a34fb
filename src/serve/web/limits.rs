//! What the web config adds to every answer and how often it answers: the rate limit (`rate_limit`, a token
//! bucket over all requests) and the extra response headers (`http_server_config.headers`).
//!
//! It does not authenticate (`serve/web/auth.rs`) or decide the order of the checks in front of a route
//! (`serve/web/mod.rs`).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderName, HeaderValue};
use serde::Deserialize;

use crate::config::error::ConfigError;
use crate::serve::web::set;

/// Headers `http_server_config.headers` may set, with their allowed values (empty: any value).
const EXTRA_HEADERS: [(&str, &[&str]); 5] = [
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// `rate_limit` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRateLimit {
    interval: Option<String>,
    burst: Option<u32>,
}

/// A token bucket over all requests: one token every `interval`, at most `burst` saved up.
pub(super) struct RateLimiter {
    interval: Duration,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// The limit `raw` sets: `None` when `interval` is unset or 0.
    pub(super) fn from_raw(raw: RawRateLimit) -> Result<Option<Self>, ConfigError> {
        let interval = match set(raw.interval) {
            None => Duration::ZERO,
            Some(text) => humantime::parse_duration(&text).map_err(|e| {
                ConfigError::at(
                    "rate_limit.interval",
                    format!("invalid duration {text:?}: {e}"),
                )
            })?,
        };
        if interval.is_zero() {
            return Ok(None);
        }
        let burst = raw.burst.unwrap_or(0);
        if burst == 0 {
            return Err(ConfigError::at(
                "rate_limit.burst",
                "must be at least 1 when rate_limit.interval is set (0 would refuse every request)",
            ));
        }
        Ok(Some(Self {
            interval,
            burst: f64::from(burst),
            state: Mutex::new((f64::from(burst), Instant::now())),
        }))
    }

    /// Takes a token when there is one: whether this request may go on.
    pub(super) fn allow(&self) -> bool {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, last) = &mut *state;
        let now = Instant::now();
        let refill = now.duration_since(*last).as_secs_f64() / self.interval.as_secs_f64();
        *tokens = (*tokens + refill).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// `http_server_config.headers`, checked against [`EXTRA_HEADERS`]; an empty value leaves the header out.
pub(super) fn extra_headers(
    raw: BTreeMap<String, String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, ConfigError> {
    let mut headers = Vec::new();
    for (name, value) in raw {
        let key = || format!("http_server_config.headers.{name}");
        let Some((_, allowed)) = EXTRA_HEADERS.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = EXTRA_HEADERS.iter().map(|(n, _)| *n).collect();
            return Err(ConfigError::at(
                key(),
                format!(
                    "this header cannot be configured; expected one of {}",
                    names.join(", ")
                ),
            ));
        };
        if value.is_empty() {
            continue;
        }
        if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
            return Err(ConfigError::at(
                key(),
                format!(
                    "invalid value {value:?}; expected one of {}",
                    allowed.join(", ")
                ),
            ));
        }
        let header_value = HeaderValue::from_str(&value)
            .map_err(|_| ConfigError::at(key(), format!("invalid header value {value:?}")))?;
        headers.push((
            HeaderName::from_bytes(name.as_bytes()).expect("listed header names are valid"),
            header_value,
        ));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_refills() {
        let limiter = RateLimiter::from_raw(RawRateLimit {
            interval: Some("1h".to_owned()),
            burst: Some(2),
        })
        .unwrap()
        .unwrap();
        assert!(limiter.allow());
        assert!(limiter.allow());
        assert!(!limiter.allow());
        let disabled = RateLimiter::from_raw(RawRateLimit {
            interval: Some("0".to_owned()),
            burst: None,
        })
        .unwrap();
        assert!(disabled.is_none());
    }
}
