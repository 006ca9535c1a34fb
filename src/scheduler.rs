//! Periodic probing: every server once at start, then every `interval ± jitter`, at most `concurrency`
//! probes in flight, each cut at a deadline.
//!
//! One lightweight tokio task per server (no OS thread per server, no unbounded queue: a task waits on a
//! semaphore, not in a channel). The first round runs at once, limited only by the semaphore, which spreads
//! later rounds across the interval by itself; random jitter keeps servers from falling into lockstep.
//! A reload adds and removes loops without disturbing the others. Dropping the [`Scheduler`] stops every task.
//! The probe is a function argument, so the timing logic is tested with paused time and no network.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::report::ServerReport;
use crate::server_name::ServerName;

/// When and how much to probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub interval: Duration,
    pub jitter: Duration,
    pub concurrency: usize,
    /// A probe still running after this is cut and reported as `timeout`.
    pub deadline: Duration,
}

/// Probes one server name once.
pub type Prober = Arc<dyn Fn(ServerName) -> BoxFuture<'static, ServerReport> + Send + Sync>;
/// Receives every finished report.
pub type OnReport = Arc<dyn Fn(ServerReport) + Send + Sync>;

/// What every loop reads at the start of each round, so a reload takes effect from the next round on.
struct Plan {
    schedule: Schedule,
    semaphore: Arc<Semaphore>,
    probe: Prober,
}

/// The running probe loops, one per server. Dropping it stops them.
pub struct Scheduler {
    plan: Arc<RwLock<Arc<Plan>>>,
    on_report: OnReport,
    loops: HashMap<ServerName, AbortOnDrop>,
}

/// Aborts its task when dropped (removed servers stop at once).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Scheduler {
    /// Starts one loop per server; each probes at once, then every `interval ± jitter`. `on_report` receives
    /// every report (the store and the probe counters). `ready` turns true once every one of these servers has
    /// been probed once.
    pub fn start(
        servers: &[ServerName],
        schedule: Schedule,
        probe: Prober,
        on_report: OnReport,
        ready: watch::Sender<bool>,
    ) -> Self {
        let plan = Arc::new(RwLock::new(Arc::new(Plan::new(schedule, probe))));
        let mut scheduler = Self {
            plan,
            on_report,
            loops: HashMap::new(),
        };
        let first_round_left = Arc::new(AtomicUsize::new(servers.len()));
        let ready = Arc::new(ready);
        if servers.is_empty() {
            ready.send_replace(true);
        }
        for name in servers {
            let (left, ready) = (first_round_left.clone(), ready.clone());
            scheduler.spawn(name.clone(), move || {
                if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                    ready.send_replace(true);
                }
            });
        }
        scheduler
    }

    /// Applies a reload: loops of removed servers stop now, new servers are probed now, and the servers that
    /// stay keep their rhythm and use the new schedule and probe from their next round on.
    pub fn update(&mut self, servers: &[ServerName], schedule: Schedule, probe: Prober) {
        let plan = Arc::new(Plan::new(schedule, probe));
        *self.plan.write().unwrap_or_else(PoisonError::into_inner) = plan;
        let keep: HashSet<&ServerName> = servers.iter().collect();
        self.loops.retain(|name, _| keep.contains(name));
        for name in servers {
            if !self.loops.contains_key(name) {
                self.spawn(name.clone(), || {});
            }
        }
    }

    /// How many servers have a probe loop.
    #[must_use]
    pub fn len(&self) -> usize {
        self.loops.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.loops.is_empty()
    }

    fn spawn(&mut self, name: ServerName, after_first: impl FnOnce() + Send + 'static) {
        let (plan, on_report) = (self.plan.clone(), self.on_report.clone());
        let key = name.clone();
        let task = tokio::spawn(async move {
            let mut after_first = Some(after_first);
            loop {
                let round_start = Instant::now();
                let current = plan.read().unwrap_or_else(PoisonError::into_inner).clone();
                let report = {
                    // Invariant: the semaphore is never closed.
                    let _permit = current
                        .semaphore
                        .acquire()
                        .await
                        .expect("the semaphore is never closed");
                    // Boxed: the probe's state lives on the heap only while it runs, so the loop that waits
                    // out the interval (one per server) stays small.
                    Box::pin(run_one(&current.probe, &name, current.schedule.deadline)).await
                };
                on_report(report);
                if let Some(f) = after_first.take() {
                    f();
                }
                tokio::time::sleep_until(round_start + next_delay(current.schedule)).await;
            }
        });
        self.loops.insert(key, AbortOnDrop(task));
    }
}

impl Plan {
    fn new(schedule: Schedule, probe: Prober) -> Self {
        Self {
            schedule,
            semaphore: Arc::new(Semaphore::new(schedule.concurrency.max(1))),
            probe,
        }
    }
}

/// One probe under its deadline; a probe that outlives it becomes a `timeout` report.
async fn run_one(probe: &Prober, name: &ServerName, deadline: Duration) -> ServerReport {
    let started_at = SystemTime::now();
    if let Ok(report) = tokio::time::timeout(deadline, probe(name.clone())).await {
        report
    } else {
        tracing::warn!(server_name = %name, "probe cut at its deadline");
        ServerReport::timed_out(name.as_str(), started_at, deadline)
    }
}

/// `interval ± jitter`, uniformly.
fn next_delay(schedule: Schedule) -> Duration {
    let jitter = schedule.jitter.min(schedule.interval);
    if jitter.is_zero() {
        return schedule.interval;
    }
    let span = jitter.as_secs_f64();
    let offset = rand::random_range(-span..=span);
    Duration::from_secs_f64((schedule.interval.as_secs_f64() + offset).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{DiscoveryReport, Reason};
    use futures_util::FutureExt as _;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    fn report(name: &str) -> ServerReport {
        let now = SystemTime::now();
        ServerReport {
            server_name: name.to_owned(),
            started_at: now,
            finished_at: now,
            duration: Duration::ZERO,
            discovery: DiscoveryReport::empty(name),
            addresses: Vec::new(),
            failures: Vec::new(),
        }
    }

    /// A prober from an async closure.
    fn prober<F, Fut>(f: F) -> Prober
    where
        F: Fn(ServerName) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ServerReport> + Send + 'static,
    {
        Arc::new(move |name| f(name).boxed())
    }

    fn collect(into: &Arc<Mutex<Vec<String>>>) -> OnReport {
        let into = into.clone();
        Arc::new(move |rep: ServerReport| into.lock().unwrap().push(rep.server_name))
    }

    fn names(n: usize) -> Vec<ServerName> {
        (0..n)
            .map(|i| ServerName::parse(&format!("s{i}.example")).unwrap())
            .collect()
    }

    const SCHEDULE: Schedule = Schedule {
        interval: Duration::from_secs(60),
        jitter: Duration::from_secs(6),
        concurrency: 3,
        deadline: Duration::from_secs(30),
    };

    #[tokio::test(start_paused = true)]
    async fn rounds_repeat_with_bounded_concurrency_and_ready_after_first_round() {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let max_seen = Arc::new(AtomicUsize::new(0));
        let reports = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, mut ready) = watch::channel(false);
        let (f, m) = (in_flight.clone(), max_seen.clone());
        let r = reports.clone();
        let _s = Scheduler::start(
            &names(10),
            SCHEDULE,
            prober(move |name| {
                let (f, m) = (f.clone(), m.clone());
                async move {
                    let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                    m.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    f.fetch_sub(1, Ordering::SeqCst);
                    report(name.as_str())
                }
            }),
            collect(&r),
            ready_tx,
        );
        assert!(!*ready.borrow());
        ready.wait_for(|r| *r).await.unwrap();
        assert_eq!(
            reports.lock().unwrap().len(),
            10,
            "ready only after every server was probed once"
        );
        assert_eq!(max_seen.load(Ordering::SeqCst), 3, "concurrency is capped");
        // Three more intervals (plus jitter) give three more rounds.
        tokio::time::sleep(Duration::from_secs(3 * 60 + 10)).await;
        let got = reports.lock().unwrap().len();
        assert!(
            (35..=40).contains(&got),
            "4 rounds of 10, the last one may be partly done: {got}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_probe_is_cut_and_the_next_round_still_runs() {
        let calls = Arc::new(AtomicUsize::new(0));
        let reports = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, mut ready) = watch::channel(false);
        let c = calls.clone();
        let r = reports.clone();
        let _s = Scheduler::start(
            &names(1),
            SCHEDULE,
            prober(move |name| {
                c.fetch_add(1, Ordering::SeqCst);
                async move {
                    std::future::pending::<()>().await;
                    report(name.as_str())
                }
            }),
            Arc::new(move |rep: ServerReport| r.lock().unwrap().push(rep)),
            ready_tx,
        );
        ready.wait_for(|r| *r).await.unwrap();
        // t = 30 s: the first probe was cut. The second starts at 60 s ± 6 s and is cut 30 s later.
        tokio::time::sleep(Duration::from_secs(40)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(
            reports.lock().unwrap().len(),
            1,
            "the second probe is still running"
        );
        tokio::time::sleep(Duration::from_secs(30)).await;
        let reports = reports.lock().unwrap();
        assert_eq!(reports.len(), 2);
        for r in reports.iter() {
            assert_eq!(r.failures[0].reason, Reason::Timeout);
            assert!(!r.success());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn no_servers_is_ready_at_once_and_dropping_stops_probing() {
        let (ready_tx, ready) = watch::channel(false);
        let s = Scheduler::start(
            &[],
            SCHEDULE,
            prober(|n: ServerName| async move { report(n.as_str()) }),
            Arc::new(|_| {}),
            ready_tx,
        );
        assert!(*ready.borrow());
        drop(s);

        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let (ready_tx, mut ready) = watch::channel(false);
        let s = Scheduler::start(
            &names(2),
            SCHEDULE,
            prober(move |n: ServerName| {
                c.fetch_add(1, Ordering::SeqCst);
                async move { report(n.as_str()) }
            }),
            Arc::new(|_| {}),
            ready_tx,
        );
        ready.wait_for(|r| *r).await.unwrap();
        drop(s);
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn update_adds_and_removes_loops_and_keeps_the_others() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, mut ready) = watch::channel(false);
        let prober = || prober(|n: ServerName| async move { report(n.as_str()) });
        let mut s = Scheduler::start(&names(2), SCHEDULE, prober(), collect(&seen), ready_tx);
        ready.wait_for(|r| *r).await.unwrap();
        assert_eq!(*seen.lock().unwrap(), ["s0.example", "s1.example"]);
        seen.lock().unwrap().clear();

        // s1 goes, s2 comes: s2 is probed at once, s0 keeps its rhythm, s1 stops.
        let next = [
            names(1)[0].clone(),
            ServerName::parse("s2.example").unwrap(),
        ];
        s.update(&next, SCHEDULE, prober());
        assert_eq!(s.len(), 2);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            *seen.lock().unwrap(),
            ["s2.example"],
            "only the new server is probed at once"
        );
        // s0's next two rounds come at most 2 × 66 s after its first.
        tokio::time::sleep(Duration::from_secs(140)).await;
        let seen = seen.lock().unwrap();
        assert!(
            seen.iter().all(|n| n != "s1.example"),
            "a removed server is never probed again: {seen:?}"
        );
        assert!(
            seen.iter().filter(|n| *n == "s0.example").count() >= 2,
            "{seen:?}"
        );
    }

    #[test]
    fn delay_stays_within_jitter() {
        for _ in 0..1000 {
            let d = next_delay(SCHEDULE);
            assert!(
                d >= Duration::from_secs(54) && d <= Duration::from_secs(66),
                "{d:?}"
            );
        }
        let no_jitter = Schedule {
            jitter: Duration::ZERO,
            ..SCHEDULE
        };
        assert_eq!(next_delay(no_jitter), Duration::from_secs(60));
    }
}
