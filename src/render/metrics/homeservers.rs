//! The scrape-time series of `homeservers:`: each homeserver's admin API state, Synapse's retry state for every
//! destination it lists, and the verdict that joins it with our latest probe. Nothing here does I/O.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::family::FamilyWriter;
use super::{
    DESTINATION_VERDICT, HOMESERVER_DESTINATION_FAILURE_TIMESTAMP,
    HOMESERVER_DESTINATION_RETRY_INTERVAL, HOMESERVER_DESTINATION_RETRY_LAST_TIMESTAMP,
    HOMESERVER_DESTINATIONS, HOMESERVER_UP,
};
use crate::report::ServerReport;
use crate::report::Verdict;
use crate::report::homeserver::{Destination, HomeserverView};
use crate::schedule::store::Store;

/// Renders every configured homeserver and its destinations at scrape time.
#[derive(Debug)]
pub struct HomeserversCollector {
    pub store: Arc<Store>,
}

impl Collector for HomeserversCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let views = self.store.homeservers.snapshot();
        if views.is_empty() {
            return Ok(());
        }
        let reports = self.store.snapshot();
        let scheduled = self.store.configured_names();
        encode_homeservers(&mut encoder, &views, &reports, scheduled.as_deref())
    }
}

/// The verdict on `d`, once we have probed it: `reports` is sorted by server name (as the store gives it).
#[must_use]
pub fn verdict(d: &Destination, reports: &[Arc<ServerReport>]) -> Option<Verdict> {
    reports
        .binary_search_by(|r| r.server_name.as_str().cmp(&d.server_name))
        .ok()
        .map(|i| d.verdict(reports[i].success()))
}

fn ms_to_seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn encode_homeservers(
    enc: &mut DescriptorEncoder,
    views: &[Arc<HomeserverView>],
    reports: &[Arc<ServerReport>],
    scheduled: Option<&[Arc<str>]>,
) -> fmt::Result {
    // With `--shard`, each replica shows the destinations it probes (the store's configured servers).
    let mine = |d: &Destination| {
        scheduled.is_none_or(|names| {
            names
                .binary_search_by(|n| (**n).cmp(&d.server_name))
                .is_ok()
        })
    };
    let mut fam = FamilyWriter::new(enc, &HOMESERVER_UP);
    for v in views {
        fam.gauge(&[("homeserver", &*v.name)], if v.up { 1.0 } else { 0.0 })?;
    }
    let mut fam = FamilyWriter::new(enc, &HOMESERVER_DESTINATIONS);
    for v in views {
        fam.gauge(&[("homeserver", &*v.name)], v.listed as f64)?;
    }
    let rows = || {
        views.iter().flat_map(|v| {
            v.destinations.iter().filter(|d| mine(d)).map(move |d| {
                (
                    [("homeserver", &*v.name), ("server_name", &*d.server_name)],
                    d,
                )
            })
        })
    };
    let mut fam = FamilyWriter::new(enc, &HOMESERVER_DESTINATION_RETRY_INTERVAL);
    for (labels, d) in rows() {
        fam.gauge(&labels, ms_to_seconds(d.retry_interval))?;
    }
    let mut fam = FamilyWriter::new(enc, &HOMESERVER_DESTINATION_FAILURE_TIMESTAMP);
    for (labels, d) in rows() {
        if let Some(ts) = d.failure_ts {
            fam.gauge(&labels, ms_to_seconds(ts))?;
        }
    }
    let mut fam = FamilyWriter::new(enc, &HOMESERVER_DESTINATION_RETRY_LAST_TIMESTAMP);
    for (labels, d) in rows() {
        fam.gauge(&labels, ms_to_seconds(d.retry_last_ts))?;
    }
    let mut fam = FamilyWriter::new(enc, &DESTINATION_VERDICT);
    for (labels, d) in rows() {
        // Before our first probe of a destination, no verdict.
        if let Some(verdict) = verdict(d, reports) {
            let [homeserver, server_name] = labels;
            fam.gauge(
                &[homeserver, server_name, ("verdict", verdict.as_str())],
                1.0,
            )?;
        }
    }
    Ok(())
}
