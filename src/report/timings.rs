//! How long each timed discovery step or address phase took, summed per label value. That sum is what every
//! view shows: `/metrics` has one series per `step` or `phase` label, and the JSON, `check` and the status page
//! list them in declaration order, which is the order they run. Kept inline as microseconds, so a stored report
//! holds no allocation for them (a `Vec<(Phase, Duration)>` cost about 110 bytes of heap per address).

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use super::{Phase, Step};

/// A closed label whose values are timed ([`Step`], [`Phase`]).
pub trait Timed: Copy + PartialEq + fmt::Debug + 'static {
    /// Every value, in declaration order; at most [`SLOTS`].
    const VALUES: &'static [Self];
}

impl Timed for Step {
    const VALUES: &'static [Self] = Step::ALL;
}

impl Timed for Phase {
    const VALUES: &'static [Self] = Phase::ALL;
}

/// One duration held as microseconds in 4 bytes (capped at about 71 minutes, far past any configured timeout),
/// for the single durations a stored report keeps (client discovery, the support document).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Micros(u32);

impl Micros {
    #[must_use]
    pub fn get(self) -> Duration {
        Duration::from_micros(u64::from(self.0))
    }
}

impl From<Duration> for Micros {
    fn from(took: Duration) -> Self {
        Self(u32::try_from(took.as_micros()).unwrap_or(u32::MAX))
    }
}

impl fmt::Debug for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.get().fmt(f)
    }
}

/// The most values a timed label may have.
const SLOTS: usize = 4;
const _: () = assert!(Step::ALL.len() <= SLOTS && Phase::ALL.len() <= SLOTS);

/// A value that did not run.
const NOT_RUN: u32 = u32::MAX;

/// The summed duration of each value of `T` that ran, in microseconds (at most about 71 minutes each, far past
/// any configured timeout; longer sums are capped there).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Timings<T: Timed> {
    micros: [u32; SLOTS],
    label: PhantomData<T>,
}

impl<T: Timed> Default for Timings<T> {
    fn default() -> Self {
        Self {
            micros: [NOT_RUN; SLOTS],
            label: PhantomData,
        }
    }
}

impl<T: Timed> Timings<T> {
    /// Adds `took` to `value`'s sum (a step that runs twice, like the address lookup of two SRV targets, sums).
    pub fn record(&mut self, value: T, took: Duration) {
        let Some(slot) = T::VALUES.iter().position(|v| *v == value) else {
            return;
        };
        let took = Micros::from(took).0.min(NOT_RUN - 1);
        let sum = &mut self.micros[slot];
        *sum = match *sum {
            NOT_RUN => took.min(NOT_RUN - 1),
            before => before.saturating_add(took).min(NOT_RUN - 1),
        };
    }

    /// The summed duration of `value`, `None` when it did not run.
    #[must_use]
    pub fn get(&self, value: T) -> Option<Duration> {
        let slot = T::VALUES.iter().position(|v| *v == value)?;
        self.at(slot)
    }

    fn at(&self, slot: usize) -> Option<Duration> {
        match self.micros[slot] {
            NOT_RUN => None,
            micros => Some(Micros(micros).get()),
        }
    }

    /// Every value that ran, with its summed duration, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (T, Duration)> + '_ {
        T::VALUES
            .iter()
            .enumerate()
            .filter_map(|(slot, &value)| Some((value, self.at(slot)?)))
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.micros.iter().all(|&m| m == NOT_RUN)
    }
}

impl<T: Timed> Extend<(T, Duration)> for Timings<T> {
    fn extend<I: IntoIterator<Item = (T, Duration)>>(&mut self, items: I) {
        for (value, took) in items {
            self.record(value, took);
        }
    }
}

impl<T: Timed> FromIterator<(T, Duration)> for Timings<T> {
    fn from_iter<I: IntoIterator<Item = (T, Duration)>>(items: I) -> Self {
        let mut timings = Self::default();
        timings.extend(items);
        timings
    }
}

impl<T: Timed> fmt::Debug for Timings<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_values_sum_and_iterate_in_declaration_order() {
        let steps: Timings<Step> = [
            (Step::AddressLookup, Duration::from_millis(10)),
            (Step::WellKnown, Duration::from_millis(5)),
            (Step::AddressLookup, Duration::from_millis(20)),
        ]
        .into_iter()
        .collect();
        let got: Vec<_> = steps.iter().collect();
        assert_eq!(
            got,
            [
                (Step::WellKnown, Duration::from_millis(5)),
                (Step::AddressLookup, Duration::from_millis(30)),
            ]
        );
        assert_eq!(steps.get(Step::Srv), None);
        assert!(!steps.is_empty());
    }

    #[test]
    fn empty_until_recorded_and_a_zero_duration_counts_as_run() {
        let mut phases = Timings::<Phase>::default();
        assert!(phases.is_empty());
        assert_eq!(phases.iter().count(), 0);
        phases.record(Phase::Connect, Duration::ZERO);
        assert_eq!(phases.get(Phase::Connect), Some(Duration::ZERO));
    }

    #[test]
    fn sums_are_kept_in_microseconds_and_capped() {
        let mut phases = Timings::<Phase>::default();
        phases.record(Phase::Keys, Duration::from_nanos(1_999));
        assert_eq!(phases.get(Phase::Keys), Some(Duration::from_micros(1)));
        phases.record(Phase::Version, Duration::from_secs(u64::MAX / 4));
        phases.record(Phase::Version, Duration::from_secs(10));
        let capped = Duration::from_micros(u64::from(NOT_RUN - 1));
        assert_eq!(phases.get(Phase::Version), Some(capped));
    }
}
