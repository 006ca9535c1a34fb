//! Periodic probing: every server once at start, then every `interval ± jitter`, at most `concurrency`
//! probes in flight, each cut at a deadline.
//!
//! One lightweight tokio task per server (no OS thread per server, no unbounded queue: a task waits on a
//! semaphore, not in a channel). The first round runs at once, limited only by the semaphore, which spreads
//! later rounds across the interval by itself; random jitter keeps servers from falling into lockstep.
//! Dropping the [`Scheduler`] stops every task. The probe is a function argument, so the timing logic is
//! tested with paused time and no network.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::report::ServerReport;
use crate::server_name::ServerName;

/// When and how much to probe.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    pub interval: Duration,
    pub jitter: Duration,
    pub concurrency: usize,
    /// A probe still running after this is cut and reported as `timeout`.
    pub deadline: Duration,
}

/// The running probe loops. Dropping it stops them.
pub struct Scheduler {
    _tasks: JoinSet<()>,
}

impl Scheduler {
    /// Starts one loop per server. `probe` runs one probe; `on_report` receives every report (the store and
    /// the probe counters). `ready` turns true once every server has been probed once.
    pub fn start<P, F, R>(
        servers: Vec<ServerName>,
        schedule: Schedule,
        probe: P,
        on_report: R,
        ready: watch::Sender<bool>,
    ) -> Self
    where
        P: Fn(ServerName) -> F + Send + Sync + 'static,
        F: Future<Output = ServerReport> + Send + 'static,
        R: Fn(ServerReport) + Send + Sync + 'static,
    {
        let semaphore = Arc::new(Semaphore::new(schedule.concurrency.max(1)));
        let probe = Arc::new(probe);
        let on_report = Arc::new(on_report);
        let first_round_left = Arc::new(AtomicUsize::new(servers.len()));
        let ready = Arc::new(ready);
        if servers.is_empty() {
            ready.send_replace(true);
        }
        let mut tasks = JoinSet::new();
        for name in servers {
            let (semaphore, probe, on_report) =
                (semaphore.clone(), probe.clone(), on_report.clone());
            let (first_round_left, ready) = (first_round_left.clone(), ready.clone());
            tasks.spawn(async move {
                let mut first = true;
                loop {
                    let round_start = Instant::now();
                    let report = {
                        // Invariant: the semaphore is never closed.
                        let _permit = semaphore
                            .acquire()
                            .await
                            .expect("the semaphore is never closed");
                        run_one(&*probe, &name, schedule.deadline).await
                    };
                    on_report(report);
                    if first {
                        first = false;
                        if first_round_left.fetch_sub(1, Ordering::AcqRel) == 1 {
                            ready.send_replace(true);
                        }
                    }
                    tokio::time::sleep_until(round_start + next_delay(schedule)).await;
                }
            });
        }
        Self { _tasks: tasks }
    }
}

/// One probe under its deadline; a probe that outlives it becomes a `timeout` report.
async fn run_one<P, F>(probe: &P, name: &ServerName, deadline: Duration) -> ServerReport
where
    P: Fn(ServerName) -> F,
    F: Future<Output = ServerReport>,
{
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
            names(10),
            SCHEDULE,
            move |name| {
                let (f, m) = (f.clone(), m.clone());
                async move {
                    let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                    m.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    f.fetch_sub(1, Ordering::SeqCst);
                    report(name.as_str())
                }
            },
            move |rep| r.lock().unwrap().push(rep.server_name),
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
            names(1),
            SCHEDULE,
            move |name| {
                c.fetch_add(1, Ordering::SeqCst);
                async move {
                    std::future::pending::<()>().await;
                    report(name.as_str())
                }
            },
            move |rep| r.lock().unwrap().push(rep),
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
            Vec::new(),
            SCHEDULE,
            |n: ServerName| async move { report(n.as_str()) },
            |_| {},
            ready_tx,
        );
        assert!(*ready.borrow());
        drop(s);

        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let (ready_tx, mut ready) = watch::channel(false);
        let s = Scheduler::start(
            names(2),
            SCHEDULE,
            move |n: ServerName| {
                c.fetch_add(1, Ordering::SeqCst);
                async move { report(n.as_str()) }
            },
            |_| {},
            ready_tx,
        );
        ready.wait_for(|r| *r).await.unwrap();
        drop(s);
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
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
