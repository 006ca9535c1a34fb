//! Sharding: `--shard i/n` splits one server list across `n` exporters with no coordination. Each probes only the
//! names whose stable hash falls in its shard.
//!
//! The hash must never change between versions or platforms: if it did, an upgrade that mixed versions would
//! probe some servers twice and others not at all. It is the first 8 bytes of the SHA-256 of the server name
//! exactly as written (case kept, port included), read as a big-endian integer, modulo `n`. The same number can
//! be computed in a shell:
//!
//! ```text
//! $ printf %s example.org | sha256sum | cut -c1-16      # then that hex number modulo n
//! ```

use std::fmt;
use std::str::FromStr;

use crate::config::server_name::ServerName;

/// Shard `index` of `count` (`0 <= index < count`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// Why a `--shard` value is not `i/n`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("expected I/N, such as 0/3 (shard I of N, counting from 0)")]
    Syntax,
    #[error("{0:?} is not a whole number")]
    NotANumber(String),
    #[error("the shard count must be at least 1")]
    ZeroCount,
    #[error("shard {index} does not exist: shards of {count} are numbered 0 to {}", count - 1)]
    IndexOutOfRange { index: u32, count: u32 },
}

impl Shard {
    /// Shard `index` of `count`, if `index < count`.
    pub fn new(index: u32, count: u32) -> Result<Self, ShardError> {
        if count == 0 {
            return Err(ShardError::ZeroCount);
        }
        if index >= count {
            return Err(ShardError::IndexOutOfRange { index, count });
        }
        Ok(Self { index, count })
    }

    /// Whether this shard probes `name`.
    #[must_use]
    pub fn contains(&self, name: &ServerName) -> bool {
        shard_of(name.as_str(), self.count) == self.index
    }
}

/// The shard (`0..count`) a server name belongs to; `count` must be at least 1.
#[must_use]
pub fn shard_of(name: &str, count: u32) -> u32 {
    let digest = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    // The remainder is below `count`, a u32.
    (u64::from_be_bytes(first) % u64::from(count.max(1))) as u32
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (index, count) = s.split_once('/').ok_or(ShardError::Syntax)?;
        let number = |text: &str| {
            let text = text.trim();
            if text.is_empty() {
                return Err(ShardError::Syntax);
            }
            text.parse::<u32>()
                .map_err(|_| ShardError::NotANumber(text.to_owned()))
        };
        Self::new(number(index)?, number(count)?)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<ServerName> {
        (0..n)
            .map(|i| ServerName::parse(&format!("server{i}.example.org")).unwrap())
            .collect()
    }

    #[test]
    fn two_shards_cover_a_list_exactly_once_and_evenly() {
        let names = names(1000);
        let shards = [Shard::new(0, 2).unwrap(), Shard::new(1, 2).unwrap()];
        let mut sizes = [0usize; 2];
        for name in &names {
            let owners: Vec<_> = shards.iter().filter(|s| s.contains(name)).collect();
            assert_eq!(owners.len(), 1, "{name} is in exactly one shard");
            sizes[owners[0].index as usize] += 1;
        }
        for size in sizes {
            assert!((400..=600).contains(&size), "uneven shards: {sizes:?}");
        }
    }

    #[test]
    fn many_shards_cover_a_list_exactly_once() {
        let names = names(1000);
        let shards: Vec<_> = (0..7).map(|i| Shard::new(i, 7).unwrap()).collect();
        for name in &names {
            assert_eq!(shards.iter().filter(|s| s.contains(name)).count(), 1);
        }
        // One shard of one is everything.
        assert!(names.iter().all(|n| Shard::new(0, 1).unwrap().contains(n)));
    }

    #[test]
    fn assignment_is_stable() {
        // Computed once from the definition (SHA-256, first 8 bytes big-endian, modulo n); these must never
        // change, or mixed-version replicas would split the list differently.
        for (name, count, shard) in [
            ("example.org", 2, 0),
            ("example.org", 3, 0),
            ("matrix.org", 2, 1),
            ("matrix.org", 5, 4),
            ("matrix.org", 7, 6),
            ("mozilla.org", 3, 1),
            // Case is kept: a differently written name may land elsewhere.
            ("Example.org", 2, 1),
            ("example.org:8448", 3, 0),
            ("[2001:db8::1]:8448", 4, 3),
        ] {
            assert_eq!(shard_of(name, count), shard, "{name} in {count} shards");
        }
    }

    #[test]
    fn parses_and_displays() {
        let s: Shard = "1/3".parse().unwrap();
        assert_eq!(s, Shard { index: 1, count: 3 });
        assert_eq!(s.to_string(), "1/3");
        assert_eq!(
            " 0 / 1 ".parse::<Shard>().unwrap(),
            Shard::new(0, 1).unwrap()
        );
    }

    #[test]
    fn bad_values_say_why() {
        for (text, message) in [
            (
                "",
                "expected I/N, such as 0/3 (shard I of N, counting from 0)",
            ),
            (
                "3",
                "expected I/N, such as 0/3 (shard I of N, counting from 0)",
            ),
            (
                "/3",
                "expected I/N, such as 0/3 (shard I of N, counting from 0)",
            ),
            ("a/3", "\"a\" is not a whole number"),
            ("-1/3", "\"-1\" is not a whole number"),
            ("1/3/4", "\"3/4\" is not a whole number"),
            ("0/0", "the shard count must be at least 1"),
            (
                "3/3",
                "shard 3 does not exist: shards of 3 are numbered 0 to 2",
            ),
        ] {
            assert_eq!(
                text.parse::<Shard>().unwrap_err().to_string(),
                message,
                "{text:?}"
            );
        }
    }
}
