//! The notaries' series (`notaries:`): one family at a time over the latest round of every notary.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, LabelSetEncoder,
};

use super::family::FamilyWriter;
use super::{NOTARY_KEYS_MATCH, NOTARY_RESULT_INFO, NOTARY_UP, NOTARY_VALID_UNTIL};
use crate::report::NotaryResult;
use crate::report::notary::NotaryReport;
use crate::schedule::store::Store;

/// Renders the latest round of every notary in the store at scrape time, after the reports' families.
#[derive(Debug)]
pub struct NotaryCollector {
    pub store: Arc<Store>,
}

impl Collector for NotaryCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        // A notary's view of a server the store no longer has (removed by a reload) vanishes with its series.
        let stored = |name: &str| self.store.get(name).is_some();
        encode(&mut encoder, &self.store.notaries(), &stored)
    }
}

/// `notary_up` per notary, then the per-server families for the servers `stored` says the store has.
fn encode(
    enc: &mut DescriptorEncoder,
    notaries: &[Arc<NotaryReport>],
    stored: &dyn Fn(&str) -> bool,
) -> fmt::Result {
    let mut fam = FamilyWriter::new(enc, &NOTARY_UP);
    for n in notaries {
        fam.gauge(
            &[("notary", n.notary.as_str())],
            if n.up { 1.0 } else { 0.0 },
        )?;
    }
    let rows = || {
        notaries.iter().flat_map(|n| {
            n.servers
                .iter()
                .filter(|v| stored(&v.server_name))
                .map(move |v| {
                    (
                        ServerNotary {
                            server_name: &v.server_name,
                            notary: &n.notary,
                        },
                        v,
                    )
                })
        })
    };
    let mut fam = FamilyWriter::new(enc, &NOTARY_KEYS_MATCH);
    for (labels, v) in rows() {
        let matched = v.result == NotaryResult::Match;
        fam.gauge(&labels, if matched { 1.0 } else { 0.0 })?;
    }
    let mut fam = FamilyWriter::new(enc, &NOTARY_RESULT_INFO);
    for (labels, v) in rows() {
        fam.info(&WithResult(labels, v.result))?;
    }
    let mut fam = FamilyWriter::new(enc, &NOTARY_VALID_UNTIL);
    for (labels, v) in rows() {
        if let Some(ms) = v.valid_until_ts {
            #[allow(clippy::cast_precision_loss)]
            // milliseconds since 1970 fit a double's 53 bits for ages
            fam.gauge(&labels, ms as f64 / 1000.0)?;
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
struct ServerNotary<'a> {
    server_name: &'a str,
    notary: &'a str,
}

impl EncodeLabelSet for ServerNotary<'_> {
    fn encode(&self, enc: &mut LabelSetEncoder) -> fmt::Result {
        ("server_name", self.server_name).encode(enc.encode_label())?;
        ("notary", self.notary).encode(enc.encode_label())
    }
}

struct WithResult<'a>(ServerNotary<'a>, NotaryResult);

impl EncodeLabelSet for WithResult<'_> {
    fn encode(&self, enc: &mut LabelSetEncoder) -> fmt::Result {
        self.0.encode(enc)?;
        ("result", self.1.as_str()).encode(enc.encode_label())
    }
}
