//! Periodic probing: every server once at start, then every `interval ± jitter`, at most `concurrency`
//! probes in flight, each cut at a deadline.
//!
//! One driver task keeps every idle server in a queue ordered by when it is due, and starts a probe task for
//! the earliest one once it is due and a permit of the semaphore is free; the probe task hands the server back
//! when it ends. So a server costs one queue entry while it waits (a name and an instant), not a task of its
//! own, and the tasks that exist at any time are the probes in flight. No server is probed twice at once; a
//! probe that runs longer than the interval makes its next round start as soon as it ends. The first round
//! runs at once, limited only by the semaphore, which spreads later rounds across the interval by itself;
//! random jitter keeps servers from falling into lockstep. A reload adds and removes servers without
//! disturbing the others. Dropping the [`Scheduler`] stops the driver and every probe in flight. The probe is
//! a function argument, so the timing logic is tested with paused time and no network.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::{AbortHandle, Id, JoinError, JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::config::server_name::ServerName;
use crate::probe::{Prober, run_within};
use crate::report::ServerReport;

/// When and how much to probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub interval: Duration,
    pub jitter: Duration,
    pub concurrency: usize,
    /// A probe still running after this is cut and reported as `timeout`.
    pub deadline: Duration,
}

/// Receives every finished report.
pub type OnReport = Arc<dyn Fn(ServerReport) + Send + Sync>;

/// What a probe starts with, so a reload takes effect from each server's next round on.
struct Plan {
    schedule: Schedule,
    semaphore: Arc<Semaphore>,
    probe: Prober,
}

/// The running schedule. Dropping it stops every probe.
pub struct Scheduler {
    updates: mpsc::UnboundedSender<(Vec<ServerName>, Arc<Plan>)>,
    servers: usize,
    _driver: AbortOnDrop,
}

/// Aborts its task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Scheduler {
    /// Probes every server at once, then every `interval ± jitter`. `on_report` receives every report (the
    /// store and the probe counters). `ready` turns true once every one of these servers has been probed once
    /// (or removed by a reload before it was).
    pub fn start(
        servers: &[ServerName],
        schedule: Schedule,
        probe: Prober,
        on_report: OnReport,
        ready: watch::Sender<bool>,
    ) -> Self {
        let (updates, commands) = mpsc::unbounded_channel();
        let mut driver = Driver {
            plan: Arc::new(Plan::new(schedule, probe)),
            on_report,
            // Every server waits here between its probes: room for all of them at once, not a doubling's spare.
            waiting: BinaryHeap::with_capacity(servers.len()),
            running: JoinSet::new(),
            in_flight: HashMap::new(),
            first_round_left: 0,
            ready,
            sequence: 0,
        };
        let servers = driver.set_servers(servers, true);
        driver.check_ready();
        Self {
            updates,
            servers,
            _driver: AbortOnDrop(tokio::spawn(driver.run(commands))),
        }
    }

    /// Applies a reload: removed servers stop now (a probe in flight is cut), new servers are probed now, and
    /// the servers that stay keep their rhythm and use the new schedule and probe from their next round on.
    pub fn update(&mut self, servers: &[ServerName], schedule: Schedule, probe: Prober) {
        self.servers = servers.iter().collect::<HashSet<_>>().len();
        let plan = Arc::new(Plan::new(schedule, probe));
        // The driver lives as long as `self`, so it is there to receive.
        let _ = self.updates.send((servers.to_vec(), plan));
    }

    /// How many servers are scheduled.
    #[must_use]
    pub fn len(&self) -> usize {
        self.servers
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.servers == 0
    }
}

/// A server waiting for its next round. Ordered by `at`, then by `sequence` (the order it was queued in), so
/// servers due at the same instant go in configuration order.
struct Due {
    at: Instant,
    sequence: u64,
    name: ServerName,
    /// Its first probe since the start counts towards `ready`.
    first: bool,
}

/// A probe in flight.
struct Flight {
    name: ServerName,
    /// When its server is due next.
    next: Instant,
    first: bool,
    /// Cuts the probe (when a reload removes its server).
    abort: AbortHandle,
    /// Set when a reload removed its server: it is not queued again when it ends.
    removed: bool,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.sequence) == (other.at, other.sequence)
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.sequence).cmp(&(other.at, other.sequence))
    }
}

/// The driver task's state. Every configured server is in exactly one place: `waiting`, or `in_flight` (not
/// `removed`). Nothing else is kept per server.
struct Driver {
    plan: Arc<Plan>,
    on_report: OnReport,
    /// Idle servers, earliest due first.
    waiting: BinaryHeap<Reverse<Due>>,
    /// The probe tasks in flight; dropping the set aborts them.
    running: JoinSet<()>,
    in_flight: HashMap<Id, Flight>,
    /// The servers of the first round not yet probed (nor removed); `ready` turns true when none is left.
    first_round_left: usize,
    ready: watch::Sender<bool>,
    sequence: u64,
}

impl Driver {
    async fn run(mut self, mut updates: mpsc::UnboundedReceiver<(Vec<ServerName>, Arc<Plan>)>) {
        loop {
            let next = self.waiting.peek().map(|Reverse(due)| due.at);
            tokio::select! {
                biased;
                update = updates.recv() => match update {
                    Some((servers, plan)) => {
                        self.plan = plan;
                        self.set_servers(&servers, false);
                        self.check_ready();
                    }
                    // The `Scheduler` is gone (it aborts this task too).
                    None => return,
                },
                Some(ended) = self.running.join_next_with_id(), if !self.running.is_empty() => {
                    self.ended(ended);
                }
                permit = due_permit(next, self.plan.semaphore.clone()), if next.is_some() => {
                    if let Some(Reverse(due)) = self.waiting.pop() {
                        self.start_probe(due, permit);
                    }
                }
            }
        }
    }

    /// Makes `servers` the configured ones: the removed ones leave the queue and their probes are cut; the new
    /// ones are due now, in the order given (`first`: their probe counts towards `ready`). Returns how many
    /// servers are configured.
    fn set_servers(&mut self, servers: &[ServerName], first: bool) -> usize {
        let keep: HashSet<&ServerName> = servers.iter().collect();
        let mut first_removed = 0;
        self.waiting.retain(|Reverse(due)| {
            let kept = keep.contains(&due.name);
            first_removed += usize::from(!kept && due.first);
            kept
        });
        self.first_round_left -= first_removed;
        for flight in self.in_flight.values_mut() {
            if !flight.removed && !keep.contains(&flight.name) {
                flight.abort.abort();
                flight.removed = true;
            }
        }
        let mut present: HashSet<ServerName> = self
            .waiting
            .iter()
            .map(|Reverse(due)| due.name.clone())
            .chain(
                self.in_flight
                    .values()
                    .filter(|f| !f.removed)
                    .map(|f| f.name.clone()),
            )
            .collect();
        let now = Instant::now();
        for name in servers {
            if present.insert(name.clone()) {
                self.queue(name.clone(), now, first);
                self.first_round_left += usize::from(first);
            }
        }
        keep.len()
    }

    fn queue(&mut self, name: ServerName, at: Instant, first: bool) {
        self.sequence += 1;
        self.waiting.push(Reverse(Due {
            at,
            sequence: self.sequence,
            name,
            first,
        }));
    }

    /// Starts one probe of `due.name` holding `permit`; the server's next round is due `interval ± jitter`
    /// after this one was due.
    fn start_probe(&mut self, due: Due, permit: OwnedSemaphorePermit) {
        let plan = self.plan.clone();
        let on_report = self.on_report.clone();
        let name = due.name.clone();
        let abort = self.running.spawn(async move {
            let report = {
                let _permit = permit;
                run_one(&plan.probe, &name, plan.schedule.deadline).await
            };
            on_report(report);
        });
        let flight = Flight {
            name: due.name,
            next: due.at + next_delay(self.plan.schedule),
            first: due.first,
            abort: abort.clone(),
            removed: false,
        };
        self.in_flight.insert(abort.id(), flight);
    }

    /// A probe task ended (or panicked, or was cut): its server waits for its next round, unless a reload
    /// removed it.
    fn ended(&mut self, ended: Result<(Id, ()), JoinError>) {
        let id = ended.map_or_else(|e| e.id(), |(id, ())| id);
        let Some(flight) = self.in_flight.remove(&id) else {
            return;
        };
        if flight.first {
            self.first_round_left -= 1;
            self.check_ready();
        }
        if !flight.removed {
            self.queue(flight.name, flight.next, false);
        }
    }

    fn check_ready(&mut self) {
        if self.first_round_left == 0 && !*self.ready.borrow() {
            self.ready.send_replace(true);
        }
    }
}

/// Waits until `at`, then for a permit.
async fn due_permit(at: Option<Instant>, semaphore: Arc<Semaphore>) -> OwnedSemaphorePermit {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
    // Invariant: the semaphore is never closed.
    semaphore
        .acquire_owned()
        .await
        .expect("the semaphore is never closed")
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

/// One probe under its deadline (the only one it runs under); a probe that outlives it becomes a `timeout` report.
async fn run_one(probe: &Prober, name: &ServerName, deadline: Duration) -> ServerReport {
    run_within(name, deadline, probe(name.clone()))
        .await
        .unwrap_or_else(|cut| {
            tracing::warn!(server_name = %name, "probe cut at its deadline");
            cut
        })
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
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::SystemTime;

    fn report(name: &str) -> ServerReport {
        let now = SystemTime::now();
        ServerReport {
            history: crate::report::History::default(),
            key_history: crate::report::KeyHistory::default(),
            local_certs: crate::report::LocalCertsReport::default(),
            server_name: name.into(),
            started_at: now,
            finished_at: now,
            duration: Duration::ZERO,
            discovery: DiscoveryReport::empty(name),
            addresses: Vec::new(),
            failures: Vec::new(),
            client: None,
            support: None,
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
        Arc::new(move |rep: ServerReport| into.lock().unwrap().push(rep.server_name.to_string()))
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

    /// Counts probes per server and the most that ran at once for any one server.
    #[derive(Default)]
    struct Calls {
        started: Mutex<HashMap<String, usize>>,
        running: Mutex<HashMap<String, usize>>,
        max_same_server: AtomicUsize,
    }

    /// A prober that takes `took` per probe (forever for names starting with "hang", a panic for names
    /// starting with "panic") and counts into `calls`.
    fn counting(calls: &Arc<Calls>, took: Duration) -> Prober {
        let calls = calls.clone();
        prober(move |name: ServerName| {
            let calls = calls.clone();
            async move {
                let key = name.as_str().to_owned();
                *calls
                    .started
                    .lock()
                    .unwrap()
                    .entry(key.clone())
                    .or_default() += 1;
                let now = {
                    let mut running = calls.running.lock().unwrap();
                    let n = running.entry(key.clone()).or_default();
                    *n += 1;
                    *n
                };
                calls.max_same_server.fetch_max(now, Ordering::SeqCst);
                if key.starts_with("hang") {
                    std::future::pending::<()>().await;
                }
                assert!(!key.starts_with("panic"), "a probe that panics");
                tokio::time::sleep(took).await;
                *calls.running.lock().unwrap().get_mut(&key).unwrap() -= 1;
                report(&key)
            }
        })
    }

    fn started(calls: &Calls, name: &str) -> usize {
        calls
            .started
            .lock()
            .unwrap()
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_probe_is_never_doubled_and_duplicates_are_probed_once() {
        let calls = Arc::new(Calls::default());
        let (ready_tx, mut ready) = watch::channel(false);
        let twice = [names(1)[0].clone(), names(1)[0].clone()];
        let schedule = Schedule {
            deadline: Duration::from_secs(1000),
            ..SCHEDULE
        };
        let s = Scheduler::start(
            &twice,
            schedule,
            // Longer than the interval, within the deadline.
            counting(&calls, Duration::from_secs(100)),
            Arc::new(|_| {}),
            ready_tx,
        );
        assert_eq!(s.len(), 1);
        ready.wait_for(|r| *r).await.unwrap();
        tokio::time::sleep(Duration::from_secs(450)).await;
        assert_eq!(calls.max_same_server.load(Ordering::SeqCst), 1);
        // Back to back from then on: one probe every 100 s.
        let n = started(&calls, "s0.example");
        assert!((4..=6).contains(&n), "{n}");
    }

    #[tokio::test(start_paused = true)]
    async fn removing_a_server_cuts_its_probe_and_bringing_it_back_probes_it_at_once() {
        let calls = Arc::new(Calls::default());
        let reports = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, mut ready) = watch::channel(false);
        let hang = ServerName::parse("hang.example").unwrap();
        let other = names(1);
        let both = [hang.clone(), other[0].clone()];
        let schedule = Schedule {
            deadline: Duration::from_secs(1000),
            ..SCHEDULE
        };
        let mut s = Scheduler::start(
            &both,
            schedule,
            counting(&calls, Duration::from_secs(1)),
            collect(&reports),
            ready_tx,
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!*ready.borrow(), "hang.example has not been probed yet");
        s.update(&other, schedule, counting(&calls, Duration::from_secs(1)));
        // Removed before its first probe ended: the first round is complete without it.
        ready.wait_for(|r| *r).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            calls.running.lock().unwrap()["hang.example"],
            1,
            "it was cut, not ended"
        );
        s.update(&both, schedule, counting(&calls, Duration::from_secs(1)));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(started(&calls, "hang.example"), 2, "probed again at once");
        assert!(
            reports.lock().unwrap().iter().all(|n| n != "hang.example"),
            "a cut probe reports nothing"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_probe_keeps_its_server_scheduled() {
        let calls = Arc::new(Calls::default());
        let (ready_tx, mut ready) = watch::channel(false);
        let _s = Scheduler::start(
            &[ServerName::parse("panic.example").unwrap()],
            SCHEDULE,
            counting(&calls, Duration::from_secs(1)),
            Arc::new(|_| {}),
            ready_tx,
        );
        ready.wait_for(|r| *r).await.unwrap();
        tokio::time::sleep(Duration::from_secs(140)).await;
        assert_eq!(started(&calls, "panic.example"), 3);
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
