//! The signature checks of certificate chains, remembered: a small bounded memo of the checks that verified,
//! each its algorithm, public key, message and signature.
//!
//! A signature check is a pure function of those bytes, so a check that verified once verifies again; what
//! changes between two servers of one CA is the leaf, not the intermediate's signature by the root. An
//! observer sees the same few intermediates (one CA's) on thousands of servers, and checked each one's
//! signature on every connection: a third of the P-256 verifications of a probe. With the memo the
//! intermediate's signature is checked once per entry's life and every later connection compares bytes.
//!
//! Nothing a probe judges changes: every address still gets a full handshake whose handshake signature is
//! verified afresh (that message is new on every connection, and it does not go through here), webpki still
//! builds the whole path on every connection (names, validity windows, key usage, constraints), and only a
//! verification that succeeded is remembered, compared byte for byte, never by a digest. It is bounded:
//! [`SLOTS`] entries of at most [`MAX_BYTES`] each, per TLS client (a reload starts a new one).
//!
//! Eviction: a slot is chosen by a keyed hash of the signature. A new entry replaces an old one only if the
//! old one has not been used since its last chance (its use count is halved instead), so a hot intermediate
//! stays while the leaves (verified once a round each) come and go.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher as _;
use std::sync::{Arc, Mutex};

use rustls::pki_types::{AlgorithmIdentifier, InvalidSignature, SignatureVerificationAlgorithm};

/// How many checks one client remembers.
pub const SLOTS: usize = 64;
/// The largest check remembered (public key, message and signature together); larger ones are checked every
/// time. A certificate's signed part is a few hundred bytes to 2 KiB.
pub const MAX_BYTES: usize = 8 * 1024;

/// The memo one TLS client's chain checks share: [`SLOTS`] places, each empty or holding one check.
#[derive(Debug)]
pub struct Memo {
    slots: Mutex<Vec<Option<Entry>>>,
    hasher: RandomState,
}

impl Default for Memo {
    fn default() -> Self {
        Self {
            slots: Mutex::new(std::iter::repeat_with(|| None).take(SLOTS).collect()),
            hasher: RandomState::new(),
        }
    }
}

/// One check that verified.
#[derive(Debug)]
struct Entry {
    /// Which algorithm of the client's list checked it.
    algorithm: usize,
    /// The public key, the message and the signature, one after the other.
    bytes: Box<[u8]>,
    key_len: usize,
    message_len: usize,
    /// Uses since the entry's last chance, halved when another entry wants its slot.
    uses: u32,
}

impl Entry {
    fn is(&self, algorithm: usize, public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
        let (key, rest) = self.bytes.split_at(self.key_len);
        let (msg, sig) = rest.split_at(self.message_len);
        self.algorithm == algorithm && key == public_key && msg == message && sig == signature
    }
}

impl Memo {
    fn slot(&self, algorithm: usize, signature: &[u8]) -> usize {
        let hash = self.hasher.hash_one((algorithm, signature));
        // Invariant: SLOTS fits in u64 and the remainder is below SLOTS.
        usize::try_from(hash % SLOTS as u64).unwrap_or(0)
    }

    /// True when the same check verified before (and counts the use).
    fn recalls(
        &self,
        algorithm: usize,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> bool {
        let slot = self.slot(algorithm, signature);
        let Ok(mut slots) = self.slots.lock() else {
            return false;
        };
        match slots.get_mut(slot).and_then(Option::as_mut) {
            Some(entry) if entry.is(algorithm, public_key, message, signature) => {
                entry.uses = entry.uses.saturating_add(1);
                true
            }
            _ => false,
        }
    }

    /// Remembers a check that just verified, unless its slot holds an entry used since its last chance.
    fn remember(&self, algorithm: usize, public_key: &[u8], message: &[u8], signature: &[u8]) {
        let len = public_key.len() + message.len() + signature.len();
        if len > MAX_BYTES {
            return;
        }
        let slot = self.slot(algorithm, signature);
        let Ok(mut slots) = self.slots.lock() else {
            return;
        };
        let Some(place) = slots.get_mut(slot) else {
            return;
        };
        if let Some(old) = place.as_mut()
            && old.uses > 0
        {
            old.uses /= 2;
            return;
        }
        let mut bytes = Vec::with_capacity(len);
        bytes.extend_from_slice(public_key);
        bytes.extend_from_slice(message);
        bytes.extend_from_slice(signature);
        *place = Some(Entry {
            algorithm,
            bytes: bytes.into_boxed_slice(),
            key_len: public_key.len(),
            message_len: message.len(),
            uses: 0,
        });
    }

    /// How many checks are remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots
            .lock()
            .map_or(0, |slots| slots.iter().flatten().count())
    }

    /// True when nothing is remembered.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One of the provider's algorithms, checking through the memo.
#[derive(Debug)]
pub struct Remembered {
    inner: &'static dyn SignatureVerificationAlgorithm,
    index: usize,
    memo: Arc<Memo>,
}

impl SignatureVerificationAlgorithm for Remembered {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        if self
            .memo
            .recalls(self.index, public_key, message, signature)
        {
            return Ok(());
        }
        self.inner
            .verify_signature(public_key, message, signature)?;
        self.memo
            .remember(self.index, public_key, message, signature);
        Ok(())
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        self.inner.public_key_alg_id()
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        self.inner.signature_alg_id()
    }

    fn fips(&self) -> bool {
        self.inner.fips()
    }
}

/// `algorithms`, each checking through one new memo they share.
#[must_use]
pub fn remembered(algorithms: &[&'static dyn SignatureVerificationAlgorithm]) -> Vec<Remembered> {
    let memo = Arc::new(Memo::default());
    algorithms
        .iter()
        .enumerate()
        .map(|(index, inner)| Remembered {
            inner: *inner,
            index,
            memo: Arc::clone(&memo),
        })
        .collect()
}

/// The memo `algorithms` share.
#[cfg(test)]
pub(crate) fn memo_of(algorithms: &[Remembered]) -> Option<&Memo> {
    algorithms.first().map(|a| a.memo.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Verifies a signature that equals the message reversed, counting every check it does.
    #[derive(Debug)]
    struct Reversed(&'static AtomicUsize);

    impl SignatureVerificationAlgorithm for Reversed {
        fn verify_signature(
            &self,
            _public_key: &[u8],
            message: &[u8],
            signature: &[u8],
        ) -> Result<(), InvalidSignature> {
            self.0.fetch_add(1, Ordering::SeqCst);
            if message.iter().rev().eq(signature.iter()) {
                Ok(())
            } else {
                Err(InvalidSignature)
            }
        }
        fn public_key_alg_id(&self) -> AlgorithmIdentifier {
            AlgorithmIdentifier::from_slice(&[])
        }
        fn signature_alg_id(&self) -> AlgorithmIdentifier {
            AlgorithmIdentifier::from_slice(&[])
        }
    }

    #[test]
    fn a_verified_check_is_done_once_and_a_refused_one_every_time() {
        static CHECKS: AtomicUsize = AtomicUsize::new(0);
        static ALG: Reversed = Reversed(&CHECKS);
        let algorithms = remembered(&[&ALG]);
        let alg = &algorithms[0];
        for _ in 0..3 {
            assert!(alg.verify_signature(b"key", b"abc", b"cba").is_ok());
        }
        assert_eq!(CHECKS.load(Ordering::SeqCst), 1);
        // The same signature with another key, or over another message, is no match: checked again.
        assert!(alg.verify_signature(b"other", b"abc", b"cba").is_ok());
        assert!(alg.verify_signature(b"key", b"abd", b"cba").is_err());
        assert!(alg.verify_signature(b"key", b"abd", b"cba").is_err());
        assert_eq!(CHECKS.load(Ordering::SeqCst), 4);
        // A refused signature is never remembered; the first check (used since) kept its slot.
        assert_eq!(memo_of(&algorithms).map(Memo::len), Some(1));
        assert!(alg.verify_signature(b"key", b"abc", b"cba").is_ok());
        assert_eq!(CHECKS.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn the_memo_is_bounded_and_keeps_what_is_used() {
        static CHECKS: AtomicUsize = AtomicUsize::new(0);
        static ALG: Reversed = Reversed(&CHECKS);
        let algorithms = remembered(&[&ALG]);
        let alg = &algorithms[0];
        let hot: (&[u8], &[u8]) = (b"intermediate", b"etaidemretni");
        for _ in 0..2 {
            assert!(alg.verify_signature(b"root", hot.0, hot.1).is_ok());
        }
        assert_eq!(CHECKS.load(Ordering::SeqCst), 1);
        for i in 0..2_000u32 {
            let message = format!("leaf {i}");
            let signature: String = message.chars().rev().collect();
            assert!(
                alg.verify_signature(
                    b"intermediate key",
                    message.as_bytes(),
                    signature.as_bytes()
                )
                .is_ok()
            );
            assert!(alg.verify_signature(b"root", hot.0, hot.1).is_ok());
        }
        // 2,000 leaves checked, the intermediate not once more.
        assert_eq!(CHECKS.load(Ordering::SeqCst), 2_001);
        let memo = memo_of(&algorithms).expect("one memo");
        assert!(memo.len() <= SLOTS, "{}", memo.len());
        // Too large to remember: checked every time.
        let big = vec![b'x'; MAX_BYTES];
        assert!(alg.verify_signature(b"k", &big, &big).is_ok());
        assert!(alg.verify_signature(b"k", &big, &big).is_ok());
        assert_eq!(CHECKS.load(Ordering::SeqCst), 2_003);
    }
}
