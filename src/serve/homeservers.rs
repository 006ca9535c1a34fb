//! The refresh loops of `homeservers:`: one task per configured homeserver reads its destination list every
//! `refresh` (`probe::homeserver::fetch`), records it in the store (`schedule::homeservers`), and tells the
//! daemon, which makes the destinations probed servers ([`with_destinations`]).
//!
//! A failing admin API keeps the last good list, marks the homeserver down and logs one line per failed refresh.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::homeservers::{Homeserver, SynapseAdmin};
use crate::config::server_name::ServerName;
use crate::config::targets::{Labels, Target};
use crate::probe::env::ProbeEnv;
use crate::probe::homeserver::{self, PAGE_SIZE};
use crate::schedule::homeservers::Refreshed;
use crate::schedule::store::Store;

/// The running refresh tasks; dropping it stops them.
#[derive(Default)]
pub struct Refreshers {
    _tasks: JoinSet<()>,
}

/// Starts one refresh loop per homeserver of `homeservers` (after making them the store's configured ones). Each
/// refresh that ends bumps `changed`.
pub fn start(
    homeservers: &[Homeserver],
    env: &Arc<ProbeEnv>,
    store: &Arc<Store>,
    changed: &watch::Sender<u64>,
) -> Refreshers {
    let names: Vec<String> = homeservers.iter().map(|h| h.name.clone()).collect();
    store.homeservers.configure(&names);
    let mut tasks = JoinSet::new();
    for h in homeservers {
        tasks.spawn(refresh_loop(
            h.name.clone(),
            h.synapse_admin.clone(),
            env.clone(),
            store.clone(),
            changed.clone(),
        ));
    }
    Refreshers { _tasks: tasks }
}

/// `configured` (their labels win), then every destination of every homeserver not already there, each once.
#[must_use]
pub fn with_destinations(configured: &[Target], store: &Store) -> Vec<Target> {
    let mut seen: HashSet<&str> = configured.iter().map(|t| t.name.as_str()).collect();
    let views = store.homeservers.snapshot();
    let mut out = configured.to_vec();
    for view in &views {
        for d in view.destinations.iter() {
            if seen.insert(&d.server_name) {
                // Invariant: destinations are parsed as server names when the list is read.
                if let Ok(name) = ServerName::parse(&d.server_name) {
                    out.push(Target {
                        name,
                        labels: Labels::new(),
                    });
                }
            }
        }
    }
    out
}

/// The longest one refresh may take: name resolution, connect, handshake, and the HTTP timeout for each page it
/// may read. Every step has its own timeout; this cuts anything that somehow outlives them.
fn refresh_deadline(env: &ProbeEnv, admin: &SynapseAdmin) -> Duration {
    let t = &env.timeouts;
    let pages = u32::try_from(admin.max_destinations.div_ceil(PAGE_SIZE) + 2).unwrap_or(u32::MAX);
    t.dns * 2 + t.connect + t.tls_handshake + t.http.saturating_mul(pages)
}

async fn refresh_loop(
    name: String,
    admin: SynapseAdmin,
    env: Arc<ProbeEnv>,
    store: Arc<Store>,
    changed: watch::Sender<u64>,
) {
    let deadline = refresh_deadline(&env, &admin);
    loop {
        let result =
            tokio::time::timeout(deadline, homeserver::fetch(&env, &admin, SystemTime::now()))
                .await
                .map_err(|_| {
                    format!(
                        "no complete list within {}",
                        humantime::format_duration(deadline)
                    )
                })
                .and_then(|r| r.map_err(|e| e.to_string()));
        let was_up = store.homeservers.get(&name).is_some_and(|v| v.up);
        let refreshed = match result {
            Ok(fetched) => {
                let level_info = !was_up;
                if level_info {
                    tracing::info!(homeserver = %name, destinations = fetched.destinations.len(), listed = fetched.listed, skipped_failing = fetched.skipped_failing, skipped_invalid = fetched.skipped_invalid, truncated = fetched.truncated, pages = fetched.pages, duration = ?fetched.duration, "homeserver admin API ok");
                } else {
                    tracing::debug!(homeserver = %name, destinations = fetched.destinations.len(), pages = fetched.pages, duration = ?fetched.duration, "homeserver destinations refreshed");
                }
                Refreshed::from(fetched)
            }
            Err(why) => {
                tracing::warn!(homeserver = %name, url = %admin.url, "homeserver admin API failed, keeping the last good destination list: {why}");
                Refreshed::Failed(why)
            }
        };
        store
            .homeservers
            .update(&name, refreshed, SystemTime::now());
        changed.send_modify(|n| *n = n.wrapping_add(1));
        tokio::time::sleep(admin.refresh).await;
    }
}
