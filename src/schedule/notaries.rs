//! Asking the configured notaries, every `interval`, about every server in the store (so with `--shard i/n`
//! only this replica's servers), and keeping each notary's latest round in the store.
//!
//! One task per notary; a round runs its batches one after the other, and a lock per notary name that outlives
//! reloads keeps it to one request in flight per notary for the exporter's life (a reload's new task waits for
//! the old one's request to end or be cut). A reload keeps each notary's rhythm: the next round comes one
//! `interval` after the last.

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
    tasks: Vec<AbortOnDrop>,
}

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

    /// Runs `notaries` from now on (stopping the tasks of the previous configuration) and drops the rounds of
    /// notaries no longer configured from the store. A notary's first round waits for `ready` (every server
    /// probed once), at most one `interval`.
    pub fn update(
        &mut self,
        notaries: &[NotaryConfig],
        env: &Arc<ProbeEnv>,
        store: &Arc<Store>,
        ready: &watch::Receiver<bool>,
    ) {
        self.tasks.clear();
        let names: Vec<&str> = notaries.iter().map(|n| n.server_name.as_str()).collect();
        store.retain_notaries(&names);
        for notary in notaries {
            let lock = self
                .locks
                .entry(notary.server_name.as_str().to_owned())
                .or_default()
                .clone();
            let task = run(
                notary.clone(),
                env.clone(),
                store.clone(),
                lock,
                ready.clone(),
            );
            self.tasks.push(AbortOnDrop(tokio::spawn(task)));
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
    notary: NotaryConfig,
    env: Arc<ProbeEnv>,
    store: Arc<Store>,
    lock: Arc<Mutex<()>>,
    mut ready: watch::Receiver<bool>,
) {
    let name = notary.server_name.as_str();
    match store.notary(name) {
        Some(last) => {
            let since = SystemTime::now()
                .duration_since(last.started_at)
                .unwrap_or_default();
            tokio::time::sleep(notary.interval.saturating_sub(since)).await;
        }
        None => {
            // Nothing to compare with before the servers are probed.
            let _ = tokio::time::timeout(notary.interval, ready.wait_for(|r| *r)).await;
        }
    }
    let mut was_up = None;
    loop {
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
