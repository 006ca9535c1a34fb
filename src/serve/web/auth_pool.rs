//! Where basic-auth password checks (bcrypt) run: at most `workers` at once, each on a blocking thread, with at
//! most `queue` attempts waiting for a worker. This module owns admission only; the caller passes the check.
//!
//! Admission is a bounded LIFO queue (issue 11). A new attempt is always admitted. When the queue is full, the
//! attempt that has waited longest is refused at once ([`Busy`]: the listener answers 429), and a freed worker
//! takes the newest waiter. So after a burst of wrong passwords the freshest attempt, such as a real first login,
//! runs next instead of waiting out the backlog, and what is refused is the oldest part of the burst. The
//! alternatives do worse against a burst: the old unbounded FIFO (one mutex) made a login sent during a flood of
//! 200 wait for all 200 checks (15 s), and a bounded FIFO that refuses newcomers would refuse every attempt made
//! while the queue is full, the real login included. No policy can tell an attacker's attempt from a real one
//! (and must not, by user name: that would reveal which users exist); a client refused under a sustained flood
//! is told to retry (`Retry-After`), and its retry is again the freshest attempt.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

/// The attempt was refused without running: the wait queue was full and newer attempts came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Busy;

/// A bounded pool of blocking password checks with bounded LIFO admission (see the module doc).
pub(crate) struct AuthPool {
    shared: Arc<Shared>,
}

struct Shared {
    workers: usize,
    queue: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Workers taken, by a check running or by a permit on its way to a waiter.
    running: usize,
    /// Attempts waiting for a worker, oldest first. Invariant: non-empty only while every worker is taken.
    waiting: VecDeque<oneshot::Sender<Permit>>,
    stats: Stats,
}

/// Counts since the pool was made.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stats {
    /// Checks started on a worker.
    pub(crate) started: u64,
    /// Attempts refused because the queue was full.
    pub(crate) refused: u64,
}

impl AuthPool {
    /// A pool of `workers` concurrent checks and `queue` waiting attempts (both at least 1).
    pub(crate) fn new(workers: usize, queue: usize) -> Self {
        assert!(
            workers > 0 && queue > 0,
            "an auth pool needs a worker and a queue"
        );
        Self {
            shared: Arc::new(Shared {
                workers,
                queue,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Runs `check` on a blocking thread once a worker is free, or refuses it with [`Busy`] if newer attempts push
    /// it out of the queue first. The worker stays taken until `check` returns, even if the caller stops waiting
    /// (a client that hangs up mid-check does not make room for another bcrypt run). A check that panics counts as
    /// a failed one.
    pub(crate) async fn verify<F>(&self, check: F) -> Result<bool, Busy>
    where
        F: FnOnce() -> bool + Send + 'static,
    {
        let permit = match self.enqueue() {
            Admission::Now(permit) => permit,
            Admission::Waiting(turn) => turn.await.map_err(|_| Busy)?,
        };
        self.shared.lock().stats.started += 1;
        tokio::task::spawn_blocking(move || {
            let _worker = permit;
            check()
        })
        .await
        .or(Ok(false))
    }

    /// Takes a worker if one is free, else queues the attempt, refusing the longest-waiting one if the queue is
    /// full. Synchronous, so the order of attempts is the order of calls.
    fn enqueue(&self) -> Admission {
        let mut state = self.shared.lock();
        if state.running < self.shared.workers {
            state.running += 1;
            return Admission::Now(Permit::new(&self.shared));
        }
        // Attempts given up by their callers hold no place in the queue.
        state.waiting.retain(|waiter| !waiter.is_closed());
        if state.waiting.len() >= self.shared.queue {
            // Dropping its sender wakes the oldest waiter with an error: refused.
            state.waiting.pop_front();
            state.stats.refused += 1;
            let stats = state.stats;
            tracing::debug!(
                checks = stats.started,
                refused = stats.refused,
                "password check queue full: refused the longest-waiting attempt (429)"
            );
        }
        let (turn, wait) = oneshot::channel();
        state.waiting.push_back(turn);
        Admission::Waiting(wait)
    }
}

/// For tests of the callers.
#[cfg(test)]
impl AuthPool {
    /// The counts so far.
    pub(crate) fn stats(&self) -> Stats {
        self.shared.lock().stats
    }

    /// Attempts in the queue.
    pub(crate) fn waiting(&self) -> usize {
        self.shared.lock().waiting.len()
    }

    /// Takes a worker, or a place in the queue, as an attempt does, until the returned value is dropped.
    pub(crate) fn occupy(&self) -> impl Sized + use<> {
        self.enqueue()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A worker is free: hand it to the newest live waiter, or give it back.
    fn release(self: &Arc<Self>) {
        let mut state = self.lock();
        while let Some(waiter) = state.waiting.pop_back() {
            match waiter.send(Permit::new(self)) {
                Ok(()) => return,
                // That attempt was given up; the permit goes back unused.
                Err(mut unsent) => unsent.defuse(),
            }
        }
        state.running -= 1;
    }
}

enum Admission {
    Now(Permit),
    /// Resolves with a permit when a worker is handed over, or with an error when refused.
    Waiting(oneshot::Receiver<Permit>),
}

/// One worker, taken until dropped. A permit sent to a waiter that never receives it is dropped with the channel,
/// so the worker is released either way.
struct Permit {
    shared: Option<Arc<Shared>>,
}

impl Permit {
    fn new(shared: &Arc<Shared>) -> Self {
        Self {
            shared: Some(shared.clone()),
        }
    }

    /// Makes dropping this permit release nothing (its worker was accounted for elsewhere).
    fn defuse(&mut self) {
        self.shared = None;
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            shared.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now(pool: &AuthPool) -> Permit {
        match pool.enqueue() {
            Admission::Now(permit) => permit,
            Admission::Waiting(_) => panic!("expected a free worker"),
        }
    }

    fn wait(pool: &AuthPool) -> oneshot::Receiver<Permit> {
        match pool.enqueue() {
            Admission::Now(_) => panic!("expected to wait"),
            Admission::Waiting(wait) => wait,
        }
    }

    fn running(pool: &AuthPool) -> usize {
        pool.shared.lock().running
    }

    #[test]
    fn workers_are_taken_first_then_attempts_wait() {
        let pool = AuthPool::new(2, 3);
        let first = now(&pool);
        let _second = now(&pool);
        let mut third = wait(&pool);
        assert_eq!(running(&pool), 2);
        assert!(third.try_recv().is_err(), "no worker yet");
        drop(first);
        let _third = third
            .try_recv()
            .expect("the freed worker goes to the waiter");
        assert_eq!(running(&pool), 2);
    }

    #[test]
    fn a_full_queue_refuses_the_oldest_and_a_freed_worker_takes_the_newest() {
        let pool = AuthPool::new(1, 2);
        let worker = now(&pool);
        let mut oldest = wait(&pool);
        let mut middle = wait(&pool);
        assert_eq!(pool.stats().refused, 0);

        let mut newest = wait(&pool);
        assert!(
            matches!(oldest.try_recv(), Err(oneshot::error::TryRecvError::Closed)),
            "refused at once"
        );
        assert_eq!(pool.stats().refused, 1);

        drop(worker);
        let worker = newest.try_recv().expect("the newest waiter runs next");
        assert!(middle.try_recv().is_err(), "the older one still waits");
        drop(worker);
        let worker = middle.try_recv().expect("then the older one");
        drop(worker);
        assert_eq!(running(&pool), 0);
        drop(now(&pool));
        assert_eq!(pool.stats().refused, 1);
    }

    #[test]
    fn given_up_attempts_take_no_worker_and_push_no_one_out() {
        let pool = AuthPool::new(1, 2);
        let worker = now(&pool);
        drop(wait(&pool));
        drop(wait(&pool));
        // Both given up: two new attempts fit without refusing anyone.
        let mut older = wait(&pool);
        let newer = wait(&pool);
        assert_eq!(pool.stats().refused, 0);

        // The newest gives up before its turn: the worker goes to the next one.
        drop(newer);
        drop(worker);
        let worker = older.try_recv().expect("the live waiter runs");

        // A waiter that gives up with its permit sent but not received releases the worker.
        let unreceived = wait(&pool);
        drop(worker);
        assert_eq!(running(&pool), 1, "handed over");
        drop(unreceived);
        assert_eq!(running(&pool), 0);
    }

    #[tokio::test]
    async fn a_check_keeps_its_worker_until_it_ends_even_when_its_caller_gives_up() {
        let pool = Arc::new(AuthPool::new(1, 1));
        let (started_tx, started) = oneshot::channel();
        let (finish, finish_rx) = std::sync::mpsc::channel::<()>();
        let caller = tokio::spawn({
            let pool = pool.clone();
            async move {
                pool.verify(move || {
                    started_tx.send(()).unwrap();
                    finish_rx.recv().is_ok()
                })
                .await
            }
        });
        started.await.unwrap();
        caller.abort();
        assert!(caller.await.unwrap_err().is_cancelled());
        assert_eq!(running(&pool), 1, "the check still runs");

        let queued = tokio::spawn({
            let pool = pool.clone();
            async move { pool.verify(|| true).await }
        });
        finish.send(()).unwrap();
        assert_eq!(queued.await.unwrap(), Ok(true));
        assert_eq!(
            pool.stats(),
            Stats {
                started: 2,
                refused: 0
            }
        );
        assert_eq!(running(&pool), 0);
    }

    #[tokio::test]
    async fn a_check_that_panics_fails() {
        let pool = AuthPool::new(1, 1);
        assert_eq!(pool.verify(|| panic!("in the check")).await, Ok(false));
        assert_eq!(pool.verify(|| true).await, Ok(true));
    }
}
