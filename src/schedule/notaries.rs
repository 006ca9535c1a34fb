//! Asking the configured notaries, every `interval`, about every server in the store (so with `--shard i/n`
//! only this replica's servers), and keeping each notary's latest round in the store.
//!
//! One task per notary name for as long as it is configured; a round runs its batches one after the other, so
//! there is one request in flight per notary. A reload does not cut a round: the task takes the new config and
//! environment for its next round, one `interval` after the last (a lock per notary name also keeps a removed
//! and re-added notary's old and new task from overlapping).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use crate::config::notary::NotaryConfig;
use crate::probe::env::ProbeEnv;
use crate::probe::notary::{self, Asked};
use crate::report::NotaryResult;
use crate::report::notary::{NotaryReport, NotaryView};
use crate::schedule::store::Store;

/// The notary tasks of the configuration in force. Dropping it stops them.
#[derive(Default)]
pub struct Notaries {
    /// One lock per notary name, for the exporter's life: held while a round runs.
    locks: HashMap<String, Arc<Mutex<()>>>,
    /// The task of each configured notary, and where a reload sends it its new config and environment.
    tasks: HashMap<String, (watch::Sender<Setup>, AbortOnDrop)>,
}

/// What a notary's task runs its next round with.
type Setup = (NotaryConfig, Arc<ProbeEnv>);

/// Aborts its task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Notaries {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `notaries` from now on: a notary that stays keeps its task (a round in progress finishes; the next
    /// one uses the new config and environment), a removed one stops and its round leaves the store, a new one
    /// starts. A new notary's first round waits for `ready` (every server probed once), at most one `interval`.
    pub fn update(
        &mut self,
        notaries: &[NotaryConfig],
        env: &Arc<ProbeEnv>,
        store: &Arc<Store>,
        ready: &watch::Receiver<bool>,
    ) {
        let names: Vec<&str> = notaries.iter().map(|n| n.server_name.as_str()).collect();
        self.tasks.retain(|name, _| names.contains(&name.as_str()));
        store.retain_notaries(&names);
        for notary in notaries {
            let name = notary.server_name.as_str();
            let setup = (notary.clone(), env.clone());
            if let Some((sender, _)) = self.tasks.get(name) {
                sender.send_replace(setup);
                continue;
            }
            let lock = self.locks.entry(name.to_owned()).or_default().clone();
            let (sender, setup) = watch::channel(setup);
            let task = run(setup, store.clone(), lock, ready.clone());
            self.tasks
                .insert(name.to_owned(), (sender, AbortOnDrop(tokio::spawn(task))));
        }
    }
}

/// Every server of the store with a report, and the keys it served directly.
#[must_use]
pub fn asked(store: &Store) -> Vec<Asked> {
    store
        .snapshot()
        .iter()
        .map(|report| Asked {
            server_name: report.server_name.as_str().to_owned(),
            direct: notary::direct_keys(report),
        })
        .collect()
}

/// The longest one round may take: opening the notary (a probe's deadline) once per batch and once more.
#[must_use]
pub fn round_deadline(env: &ProbeEnv, notary: &NotaryConfig, servers: usize) -> Duration {
    let batches = servers.div_ceil(notary.batch_size);
    let per_batch = env.probe_deadline() + env.timeouts.http;
    let rounds = u32::try_from(batches + 1).unwrap_or(u32::MAX);
    per_batch.saturating_mul(rounds)
}

/// One round about every server of the store, cut at [`round_deadline`]: the notary's report either way.
pub async fn round(env: &ProbeEnv, notary: &NotaryConfig, store: &Store) -> NotaryReport {
    round_for(env, notary, asked(store)).await
}

/// One round about `asked`, cut at [`round_deadline`] (`check NAME` asks about its names this way).
pub async fn round_for(env: &ProbeEnv, notary: &NotaryConfig, asked: Vec<Asked>) -> NotaryReport {
    let deadline = round_deadline(env, notary, asked.len());
    let started = SystemTime::now();
    let names: Vec<String> = asked.iter().map(|a| a.server_name.clone()).collect();
    let round = tokio::time::timeout(deadline, notary::query(env, notary, asked, started)).await;
    if let Ok(report) = round {
        report
    } else {
        let message = format!(
            "the round did not finish within {}",
            humantime::format_duration(deadline)
        );
        let mut servers: Vec<NotaryView> = names
            .into_iter()
            .map(|server_name| NotaryView {
                server_name,
                result: NotaryResult::RequestFailed,
                valid_until_ts: None,
                keys: Vec::new(),
                message: message.clone(),
            })
            .collect();
        servers.sort_by(|a, b| a.server_name.cmp(&b.server_name));
        NotaryReport {
            notary: notary.server_name.as_str().to_owned(),
            started_at: started,
            duration: deadline,
            up: false,
            message,
            requests: 0,
            servers,
        }
    }
}

async fn run(
    setup: watch::Receiver<Setup>,
    store: Arc<Store>,
    lock: Arc<Mutex<()>>,
    mut ready: watch::Receiver<bool>,
) {
    let first = setup.borrow().0.clone();
    let name = first.server_name.as_str().to_owned();
    // Nothing to compare with before the servers are probed.
    let _ = tokio::time::timeout(first.interval, ready.wait_for(|r| *r)).await;
    let mut was_up = None;
    loop {
        let (notary, env) = setup.borrow().clone();
        let report = {
            let _one_in_flight = lock.lock().await;
            round(&env, &notary, &store).await
        };
        if was_up != Some(report.up) {
            if report.up {
                tracing::info!(notary = name, servers = report.servers.len(), "notary up");
            } else {
                tracing::warn!(notary = name, message = %report.message, "notary down");
            }
            was_up = Some(report.up);
        }
        store.set_notary(report);
        tokio::time::sleep(notary.interval).await;
    }
}
