//! `local_certificates` (DESIGN.md point 7): the certificate files an ACME client leaves on this machine, compared
//! with the certificates the server actually serves.
//!
//! Synapse's certificates FAQ, "How do I tell Synapse to reload my keys/certificates after I replace them?":
//! "Synapse will reload the keys and certificates when it receives a SIGHUP", or restart it. Without a reload hook
//! the renewed files sit on disk while the old certificate expires. This module reads the configured files (only
//! when their size, modification time or inode changed; symlinks followed, as certbot's `live/` links to
//! `archive/`), keeps each file's leaf, and [`judge`] says which served certificate is older than a file's leaf
//! for the same name.
//!
//! Nothing here fails a probe or a load: a file that is missing, unreadable, over [`MAX_FILE`] or without a
//! certificate is a reason string (the warning `local_cert_unreadable`), since the ACME client may create it
//! later. A FIFO or a directory is never opened (opening a FIFO would block the probe thread).

use std::collections::HashMap;
use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

use crate::config::LocalCertificates;
use crate::probe::connect::cert;
use crate::report::{CertFacts, LocalCertFile, NotReloaded, SharedStr};

/// The largest certificate file read (a full chain is a few KiB).
pub const MAX_FILE: u64 = 1024 * 1024;
/// The most files one glob expands to.
pub const MAX_GLOB_MATCHES: usize = 64;
/// The most files whose last read is kept.
const MAX_CACHED: usize = 4096;

/// The configured entries and what was last read from each file. Built with the probe environment, so a reload
/// that adds or removes an entry takes effect at once (and reads the files again once).
#[derive(Debug, Default)]
pub struct LocalCerts {
    entries: Vec<LocalCertificates>,
    cache: Mutex<HashMap<String, Cached>>,
    reads: AtomicU64,
}

/// What a file held when it had this stamp. `stamp` is `None` when the file could not even be looked at (its
/// reason is kept only to log a change once).
#[derive(Clone, Debug)]
struct Cached {
    stamp: Option<Stamp>,
    leaf: Result<Arc<CertFacts>, String>,
}

/// What tells a changed file: size, modification time and inode of the symlink's target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: (u64, u64),
    /// A regular file (not a directory, FIFO or device, which are never opened).
    regular: bool,
}

/// One file of a server, with its entry's grace.
#[derive(Clone, Debug)]
pub struct LocalFile {
    pub file: LocalCertFile,
    pub reload_grace: Duration,
}

/// A certificate a probe was served: where, for which name, and its leaf.
#[derive(Clone, Debug)]
pub struct Served<'a> {
    pub address: SocketAddr,
    pub name: &'a str,
    pub well_known: bool,
    pub leaf: &'a Arc<CertFacts>,
}

impl LocalCerts {
    #[must_use]
    pub fn new(entries: Vec<LocalCertificates>) -> Self {
        Self {
            entries,
            ..Self::default()
        }
    }

    /// How many times a file was opened and read (tests prove that unchanged files are not read again).
    #[must_use]
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Whether `server_name` has an entry.
    #[must_use]
    pub fn covers_server(&self, server_name: &str) -> bool {
        self.entries
            .iter()
            .any(|e| e.server_name.as_str() == server_name)
    }

    /// Every file of `server_name`'s entries, globs expanded, each read again only if it changed.
    pub fn files_of(&self, server_name: &str) -> Vec<LocalFile> {
        let mut out = Vec::new();
        for entry in self
            .entries
            .iter()
            .filter(|e| e.server_name.as_str() == server_name)
        {
            for pattern in &entry.files {
                for path in expand(pattern) {
                    // A file two globs name is one file (and one `cert_file` series).
                    if out.iter().any(|f: &LocalFile| *f.file.cert_file == *path) {
                        continue;
                    }
                    let (leaf, modified) = self.leaf_of(&path);
                    out.push(LocalFile {
                        file: LocalCertFile {
                            cert_file: path.as_str().into(),
                            leaf,
                            modified,
                        },
                        reload_grace: entry.reload_grace,
                    });
                }
            }
        }
        out
    }

    /// The leaf of the file at `path` and its mtime, from the cache while the file's stamp is unchanged.
    fn leaf_of(&self, path: &str) -> (Result<Arc<CertFacts>, String>, Option<i64>) {
        let stamp = match std::fs::metadata(path) {
            Ok(meta) => Ok(stamp_of(&meta)),
            Err(e) => Err(io_reason(&e)),
        };
        let stamp = match stamp {
            Ok(stamp) => stamp,
            Err(reason) => {
                self.remember(path, None, Err(reason.clone()));
                return (Err(reason), None);
            }
        };
        let modified = stamp.modified.and_then(unix_seconds);
        if let Some(known) = self.lock().get(path).filter(|c| c.stamp == Some(stamp)) {
            return (known.leaf.clone(), modified);
        }
        let leaf = self.read(path, stamp);
        self.remember(path, Some(stamp), leaf.clone());
        (leaf, modified)
    }

    /// Reads and parses a file whose stamp changed.
    fn read(&self, path: &str, stamp: Stamp) -> Result<Arc<CertFacts>, String> {
        if !stamp.regular {
            return Err("not a regular file (a directory, FIFO or device)".to_owned());
        }
        if stamp.len > MAX_FILE {
            return Err(format!("over 1 MiB ({} bytes)", stamp.len));
        }
        self.reads.fetch_add(1, Ordering::Relaxed);
        // A path swapped for a FIFO between the stat and this open would block here; only whoever can write the
        // certificate directory can do that.
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_FILE + 1).read_to_end(&mut bytes))
            .map_err(|e| io_reason(&e))?;
        if bytes.len() as u64 > MAX_FILE {
            return Err("over 1 MiB".to_owned());
        }
        leaf_of_pem(&bytes)
    }

    /// Keeps what a file held, logging when its state changed.
    fn remember(&self, path: &str, stamp: Option<Stamp>, leaf: Result<Arc<CertFacts>, String>) {
        let mut cache = self.lock();
        let before = cache.get(path).map(|c| c.leaf.clone());
        let changed = match (&before, &leaf) {
            (Some(Err(a)), Err(b)) => a != b,
            (Some(Ok(a)), Ok(b)) => a.fingerprint_sha256 != b.fingerprint_sha256,
            _ => true,
        };
        if changed {
            match &leaf {
                Err(reason) => tracing::warn!(
                    cert_file = path,
                    reason = %reason,
                    "local certificate file unreadable (local_cert_unreadable)"
                ),
                Ok(facts) => tracing::info!(
                    cert_file = path,
                    not_after = facts.not_after,
                    fingerprint_sha256 = %facts.fingerprint_sha256,
                    "local certificate file read"
                ),
            }
        }
        // Globs over certbot's archive/ name a new file at every renewal: forget them all (each is read again
        // once) rather than grow without bound.
        if cache.len() >= MAX_CACHED && !cache.contains_key(path) {
            cache.clear();
        }
        cache.insert(path.to_owned(), Cached { stamp, leaf });
    }

    // The map is valid after any panic (an insert either happened or not), so poisoning is ignored.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The paths a configured pattern names: itself when it holds no glob character (so a missing file is reported
/// as missing), else its matches in order (at most [`MAX_GLOB_MATCHES`]); a glob that matches nothing is itself,
/// reported missing.
fn expand(pattern: &str) -> Vec<String> {
    if !pattern.contains(['*', '?', '[']) {
        return vec![pattern.to_owned()];
    }
    let found: Vec<String> = glob::glob(pattern)
        .map(|paths| {
            paths
                .filter_map(Result::ok)
                .take(MAX_GLOB_MATCHES)
                .map(|p| p.to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    if found.is_empty() {
        vec![pattern.to_owned()]
    } else {
        found
    }
}

fn stamp_of(meta: &std::fs::Metadata) -> Stamp {
    #[cfg(unix)]
    let inode = {
        use std::os::unix::fs::MetadataExt as _;
        (meta.dev(), meta.ino())
    };
    #[cfg(not(unix))]
    let inode = (0, 0);
    Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        inode,
        regular: meta.is_file(),
    }
}

fn unix_seconds(t: SystemTime) -> Option<i64> {
    let secs = t.duration_since(UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

/// Why a file could not be looked at or read, in the words an operator searches for.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "missing (no such file)".to_owned(),
        std::io::ErrorKind::PermissionDenied => {
            "permission denied (certbot's live/ and archive/ are root-only: see the README)"
                .to_owned()
        }
        _ => format!("cannot read: {e}"),
    }
}

/// The first certificate of a PEM file (the leaf: certbot's `fullchain.pem` and `cert.pem` start with it), its
/// facts read by the probe's own X.509 code.
fn leaf_of_pem(bytes: &[u8]) -> Result<Arc<CertFacts>, String> {
    let first = CertificateDer::pem_slice_iter(bytes)
        .next()
        .ok_or_else(|| "holds no PEM certificate".to_owned())?
        .map_err(|e| format!("invalid PEM: {e}"))?;
    cert::facts(&first).map(Arc::new)
}

/// Whether `facts` is valid for `name`: a DNS subjectAltName equal to it (ASCII case ignored) or a wildcard
/// `*.parent` covering one label, or an IP subjectAltName for an IP literal (RFC 6125, as webpki judges).
#[must_use]
pub fn valid_for(facts: &CertFacts, name: &str) -> bool {
    let name = name.trim_end_matches('.');
    if let Ok(ip) = name.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        return facts.ip_addresses.contains(&ip);
    }
    facts.dns_names.iter().any(|san| {
        let san = san.trim_end_matches('.');
        match san.strip_prefix("*.") {
            Some(parent) => name.split_once('.').is_some_and(|(label, rest)| {
                !label.is_empty() && rest.eq_ignore_ascii_case(parent)
            }),
            None => san.eq_ignore_ascii_case(name),
        }
    })
}

/// Every served certificate that a file's leaf renews: valid for the same name, a different certificate, a later
/// `notBefore`, in a file that changed more than its `reload_grace` before `now`. One finding per address, the
/// newest leaf on disk.
#[must_use]
pub fn judge(files: &[LocalFile], served: &[Served<'_>], now: SystemTime) -> Vec<NotReloaded> {
    let now = unix_seconds(now).unwrap_or(0);
    let mut out = Vec::new();
    for s in served {
        let newer = files
            .iter()
            .filter_map(|f| Some((f, f.file.leaf.as_ref().ok()?)))
            .filter(|(f, leaf)| {
                let grace = i64::try_from(f.reload_grace.as_secs()).unwrap_or(i64::MAX);
                valid_for(leaf, s.name)
                    && leaf.fingerprint_sha256 != s.leaf.fingerprint_sha256
                    && leaf.not_before > s.leaf.not_before
                    && f.file
                        .modified
                        .is_some_and(|m| m.saturating_add(grace) < now)
            })
            .max_by_key(|(_, leaf)| leaf.not_before);
        if let Some((f, leaf)) = newer {
            out.push(NotReloaded {
                address: s.address,
                name: SharedStr::from(s.name),
                well_known: s.well_known,
                cert_file: f.file.cert_file.clone(),
                served: s.leaf.clone(),
                on_disk: leaf.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Fingerprint;

    fn facts(names: &[&str], not_before: i64, id: u8) -> Arc<CertFacts> {
        Arc::new(CertFacts {
            subject: SharedStr::default(),
            issuer: SharedStr::default(),
            dns_names: names.iter().map(|n| (*n).to_owned()).collect(),
            ip_addresses: Vec::new(),
            serial: String::new(),
            fingerprint_sha256: Fingerprint([id; 32]),
            not_before,
            not_after: not_before + 90 * 86400,
        })
    }

    #[test]
    fn names_and_wildcards() {
        let f = facts(&["example.org", "*.example.org"], 0, 1);
        assert!(valid_for(&f, "example.org"));
        assert!(valid_for(&f, "Matrix.Example.org"));
        assert!(!valid_for(&f, "a.b.example.org"));
        assert!(!valid_for(&f, "example.com"));
    }

    #[test]
    fn only_a_newer_leaf_past_the_grace_counts() {
        let served = facts(&["example.org"], 1000, 1);
        let file = |leaf: Arc<CertFacts>, modified: i64| LocalFile {
            file: LocalCertFile {
                cert_file: "f".into(),
                leaf: Ok(leaf),
                modified: Some(modified),
            },
            reload_grace: Duration::from_secs(3600),
        };
        let now = UNIX_EPOCH + Duration::from_secs(100_000);
        let at = "192.0.2.1:8448".parse().unwrap();
        let s = [Served {
            address: at,
            name: "example.org",
            well_known: false,
            leaf: &served,
        }];
        let cases = [
            (file(facts(&["example.org"], 2000, 2), 50_000), true),
            (file(facts(&["example.org"], 2000, 2), 99_000), false),
            (file(facts(&["example.org"], 500, 2), 50_000), false),
            (file(served.clone(), 50_000), false),
            (file(facts(&["other.org"], 2000, 2), 50_000), false),
        ];
        for (i, (f, want)) in cases.into_iter().enumerate() {
            let found = judge(&[f], &s, now);
            assert_eq!(found.len() == 1, want, "case {i}");
        }
    }

    #[test]
    fn reasons_are_plain_words() {
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(io_reason(&denied).starts_with("permission denied"));
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert!(io_reason(&missing).starts_with("missing"));
        assert_eq!(
            leaf_of_pem(b"garbage").unwrap_err(),
            "holds no PEM certificate"
        );
    }
}
