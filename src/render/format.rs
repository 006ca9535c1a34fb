//! Numbers, durations and timestamps as people read them (`12 ms`, `3 addresses`, `2025-06-01 00:00:00Z`,
//! `62 days left`, `in 5 hours`), shared by the `check` text and the status page.
//!
//! Only the numbers: what a failure means belongs to `render/explain.rs`, and escaping, colour and markup to each
//! renderer. Every function is pure: the clock is always passed in.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds, with one decimal under 10 ms.
#[must_use]
pub fn ms(d: Duration) -> String {
    let millis = d.as_secs_f64() * 1000.0;
    if millis < 10.0 {
        format!("{millis:.1} ms")
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// `1 address`, `3 addresses`.
#[must_use]
pub fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// A cache lifetime in its largest whole unit: `24h`, `5m`, `1h 30m` stays `90m`.
#[must_use]
pub fn coarse(d: Duration) -> String {
    let s = d.as_secs();
    if s > 0 && s.is_multiple_of(3_600) {
        format!("{}h", s / 3_600)
    } else if s > 0 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// Unix seconds (negative before 1970).
#[must_use]
pub fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The time `secs` Unix seconds name (the epoch for anything before it).
#[must_use]
pub fn at(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

/// A Unix timestamp as `2025-01-31 12:00:00Z`, as the `check` text writes it.
#[must_use]
pub fn date(secs: i64) -> String {
    format!("{}Z", date_time(secs))
}

/// A Unix timestamp as `2025-01-31 12:00:00 UTC`, as the status page writes it.
#[must_use]
pub fn date_utc(secs: i64) -> String {
    format!("{} UTC", date_time(secs))
}

/// `2025-01-31 12:00:00`, in UTC (the epoch for anything before it).
fn date_time(secs: i64) -> String {
    let rfc3339 = humantime::format_rfc3339_seconds(at(secs)).to_string();
    rfc3339.trim_end_matches('Z').replacen('T', " ", 1)
}

/// `in 3 days`, `in 5 hours`, `2 minutes ago`: the largest whole unit.
#[must_use]
pub fn relative(delta_secs: i64) -> String {
    let n = delta_secs.unsigned_abs();
    let amount = match n {
        0..60 => count(n as usize, "second", "seconds"),
        60..3_600 => count((n / 60) as usize, "minute", "minutes"),
        3_600..86_400 => count((n / 3_600) as usize, "hour", "hours"),
        _ => count((n / 86_400) as usize, "day", "days"),
    };
    if delta_secs >= 0 {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// `62 days left`, `expires in 5 hours`, `expired 3 days ago`.
#[must_use]
pub fn days_left(not_after: i64, now: SystemTime) -> String {
    let delta = not_after - unix(now);
    let days = delta.abs() / 86_400;
    match (delta >= 0, days) {
        (true, 0) => format!("expires {}", relative(delta)),
        (true, d) => format!("{} left", count(d as usize, "day", "days")),
        (false, 0) => format!("expired {}", relative(delta)),
        (false, d) => format!("expired {} ago", count(d as usize, "day", "days")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2025-06-01 00:00:00Z.
    const NOW: i64 = 1_748_736_000;
    const DAY: i64 = 86_400;

    #[test]
    fn times_read_as_whole_units() {
        assert_eq!(days_left(NOW + 62 * DAY + 5, at(NOW)), "62 days left");
        assert_eq!(days_left(NOW + DAY, at(NOW)), "1 day left");
        assert_eq!(days_left(NOW + 5 * 3_600, at(NOW)), "expires in 5 hours");
        assert_eq!(days_left(NOW - 120, at(NOW)), "expired 2 minutes ago");
        assert_eq!(days_left(NOW - 3 * DAY - 1, at(NOW)), "expired 3 days ago");
        assert_eq!(relative(0), "in 0 seconds");
        assert_eq!(relative(-1), "1 second ago");
        assert_eq!(coarse(Duration::from_secs(300)), "5m");
        assert_eq!(coarse(Duration::from_secs(90)), "90s");
        assert_eq!(date(NOW), "2025-06-01 00:00:00Z");
        assert_eq!(ms(Duration::from_micros(340)), "0.3 ms");
        assert_eq!(ms(Duration::from_millis(1234)), "1234 ms");
    }

    #[test]
    fn dates_in_both_spellings_and_before_the_epoch() {
        assert_eq!(date_utc(1_000_000), "1970-01-12 13:46:40 UTC");
        assert_eq!(date(-5), "1970-01-01 00:00:00Z");
        assert_eq!(date_utc(-5), "1970-01-01 00:00:00 UTC");
        assert_eq!(unix(at(NOW)), NOW);
        assert_eq!(unix(UNIX_EPOCH - Duration::from_secs(7)), -7);
    }
}
