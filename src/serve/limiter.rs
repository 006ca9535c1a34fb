//! A cap on the probes the exporter runs on request (`GET /probe`, the report API): a count in use and a cap that a
//! reload resizes in place. It does not queue: a caller over the cap is refused at once (the routes answer 503).
//!
//! One limiter lives as long as the exporter and every build of the routes shares it. Were a reload to build a new
//! one, the probes the old one let in would still run, uncounted, and the cap would not hold (issue 11: 80 `/probe`
//! probes at once under a cap of 16). That is also why this is not a `tokio::sync::Semaphore`: a semaphore cannot
//! take back permits that are out, whereas shrinking this one only refuses new probes until the count is below the
//! new cap.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Counts probes in use against a cap. Cloning shares it.
#[derive(Clone, Debug)]
pub struct Limiter {
    counts: Arc<Mutex<Counts>>,
}

#[derive(Debug)]
struct Counts {
    in_use: usize,
    cap: usize,
}

/// One probe counted by a [`Limiter`]; dropping it gives the place back.
#[derive(Debug)]
#[must_use = "the place is given back when the permit is dropped"]
pub struct Permit {
    counts: Arc<Mutex<Counts>>,
}

/// [`Limiter::try_acquire`] found `cap` probes (or more, after a shrink) in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full {
    /// The cap in force when the caller was refused.
    pub cap: usize,
}

impl Limiter {
    /// A limiter that lets `cap` probes run at once.
    #[must_use]
    pub fn new(cap: usize) -> Self {
        Self {
            counts: Arc::new(Mutex::new(Counts { in_use: 0, cap })),
        }
    }

    /// A permit when fewer than the cap are in use; otherwise the cap in force, at once.
    pub fn try_acquire(&self) -> Result<Permit, Full> {
        let mut counts = lock(&self.counts);
        if counts.in_use >= counts.cap {
            return Err(Full { cap: counts.cap });
        }
        counts.in_use += 1;
        Ok(Permit {
            counts: self.counts.clone(),
        })
    }

    /// Sets the cap in place. Permits that are out stay valid: after a shrink, new callers are refused until fewer
    /// than the new cap are in use.
    pub fn resize(&self, cap: usize) {
        lock(&self.counts).cap = cap;
    }

    /// The cap in force.
    #[must_use]
    pub fn cap(&self) -> usize {
        lock(&self.counts).cap
    }

    /// How many permits are out.
    #[must_use]
    pub fn in_use(&self) -> usize {
        lock(&self.counts).in_use
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        lock(&self.counts).in_use -= 1;
    }
}

/// The counts are two integers updated without a panic in between, so a poisoned lock still holds sound ones.
fn lock(counts: &Mutex<Counts>) -> MutexGuard<'_, Counts> {
    counts.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_at_the_cap_and_a_dropped_permit_frees_its_place() {
        let limiter = Limiter::new(2);
        let a = limiter.try_acquire().unwrap();
        let _b = limiter.try_acquire().unwrap();
        assert_eq!(limiter.try_acquire().unwrap_err(), Full { cap: 2 });
        assert_eq!(limiter.in_use(), 2);
        drop(a);
        assert_eq!(limiter.in_use(), 1);
        let _c = limiter.try_acquire().unwrap();
        assert!(limiter.try_acquire().is_err());
    }

    #[test]
    fn clones_share_one_count() {
        let limiter = Limiter::new(1);
        let other = limiter.clone();
        let _a = limiter.try_acquire().unwrap();
        assert_eq!(other.try_acquire().unwrap_err(), Full { cap: 1 });
        other.resize(2);
        assert_eq!(limiter.cap(), 2);
        let _b = limiter.try_acquire().unwrap();
        assert_eq!(other.in_use(), 2);
    }

    #[test]
    fn growing_lets_more_in_at_once() {
        let limiter = Limiter::new(1);
        let _a = limiter.try_acquire().unwrap();
        assert!(limiter.try_acquire().is_err());
        limiter.resize(3);
        let _b = limiter.try_acquire().unwrap();
        let _c = limiter.try_acquire().unwrap();
        assert_eq!(limiter.try_acquire().unwrap_err(), Full { cap: 3 });
        assert_eq!(limiter.in_use(), 3);
    }

    #[test]
    fn shrinking_keeps_running_permits_and_refuses_until_below_the_new_cap() {
        let limiter = Limiter::new(4);
        let mut running: Vec<Permit> = (0..4).map(|_| limiter.try_acquire().unwrap()).collect();
        limiter.resize(2);
        // Nothing running is cut.
        assert_eq!(limiter.in_use(), 4);
        assert_eq!(limiter.try_acquire().unwrap_err(), Full { cap: 2 });
        running.pop();
        running.pop();
        // Two in use under a cap of 2: still full.
        assert_eq!(limiter.in_use(), 2);
        assert!(limiter.try_acquire().is_err());
        running.pop();
        let _again = limiter.try_acquire().unwrap();
        assert_eq!(limiter.in_use(), 2);
        assert!(limiter.try_acquire().is_err());
        drop(running);
        assert_eq!(limiter.in_use(), 1);
    }

    #[test]
    fn a_cap_of_zero_refuses_everyone() {
        let limiter = Limiter::new(0);
        assert_eq!(limiter.try_acquire().unwrap_err(), Full { cap: 0 });
        assert_eq!(limiter.in_use(), 0);
    }
}
