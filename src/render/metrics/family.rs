//! The pieces every collector writes with: [`FamilyWriter`] (one family, its descriptor before its first
//! sample), the per-server label set ([`ServerLabels`]), the identity labels of a certificate ([`CertLabels`]),
//! and label values written straight into the output ([`Shown`]). No I/O, no state.
use std::fmt::{self, Display, Write as _};
use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, EncodeLabelValue, LabelSetEncoder,
    LabelValueEncoder, MetricEncoder,
};

use super::{Desc, family_name};
use crate::render::prerendered::{Prerendered, address_head};
use crate::report::Labels;
use crate::report::{AddressReport, CertFacts, Fingerprint, ServerReport};

pub(super) fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// A report and its server's extra labels (from a target file), which every series of the server carries.
pub(super) type Row = (Arc<ServerReport>, Arc<Labels>);

/// The leaf (first presented) certificate, when the handshake got that far.
pub(super) fn leaf(a: &AddressReport) -> Option<&CertFacts> {
    a.certificate
        .as_ref()
        .and_then(|c| c.chain.first())
        .map(|c| &**c)
}

/// Every address's label set, rendered once per scrape for all the per-address families (see
/// `render/prerendered.rs`), with the report it belongs to.
pub(super) struct AddressHeads<'a>(Vec<(String, &'a ServerReport, &'a AddressReport)>);

impl<'a> AddressHeads<'a> {
    pub(super) fn of(reports: &'a [Row]) -> Self {
        Self(
            reports
                .iter()
                .flat_map(|(r, extra)| {
                    r.addresses
                        .iter()
                        .map(move |a| (address_head(&r.server_name, extra, a.address), &**r, a))
                })
                .collect(),
        )
    }

    /// Each address's labels, its server's report and the address's, in report order.
    pub(super) fn iter(
        &self,
    ) -> impl Iterator<Item = (Prerendered<'_>, &'a ServerReport, &'a AddressReport)> {
        self.0
            .iter()
            .map(|(head, r, a)| (Prerendered::new(head, a.family().as_str()), *r, *a))
    }
}

pub(super) fn server<'a>(r: &'a ServerReport, extra: &'a Labels) -> ServerLabels<'a> {
    ServerLabels {
        server_name: &r.server_name,
        extra,
    }
}

/// `server_name` and the server's extra labels: the start of every per-server label set.
#[derive(Clone, Copy)]
pub(super) struct ServerLabels<'a> {
    pub(super) server_name: &'a str,
    pub(super) extra: &'a Labels,
}

impl EncodeLabelSet for ServerLabels<'_> {
    fn encode(&self, enc: &mut LabelSetEncoder) -> fmt::Result {
        ("server_name", self.server_name).encode(enc.encode_label())?;
        for (name, value) in self.extra {
            (name.as_str(), value.as_str()).encode(enc.encode_label())?;
        }
        Ok(())
    }
}

/// One metric family being written. Its descriptor is written before its first sample, so a family without
/// samples leaves no trace in the output.
pub(super) struct FamilyWriter<'a, 'e> {
    enc: Option<&'a mut DescriptorEncoder<'e>>,
    desc: &'static Desc,
    metric: Option<MetricEncoder<'a>>,
}

impl<'a, 'e> FamilyWriter<'a, 'e> {
    pub(super) fn new(enc: &'a mut DescriptorEncoder<'e>, desc: &'static Desc) -> Self {
        Self {
            enc: Some(enc),
            desc,
            metric: None,
        }
    }

    pub(super) fn gauge(&mut self, labels: &impl EncodeLabelSet, value: f64) -> fmt::Result {
        self.metric()?.encode_family(labels)?.encode_gauge(&value)
    }

    pub(super) fn info(&mut self, labels: &impl EncodeLabelSet) -> fmt::Result {
        self.metric()?.encode_info(labels)
    }

    fn metric(&mut self) -> Result<&mut MetricEncoder<'a>, fmt::Error> {
        if self.metric.is_none() {
            // Invariant: `enc` is taken exactly once, here, when `metric` is first set.
            let enc = self.enc.take().ok_or(fmt::Error)?;
            self.metric = Some(enc.encode_descriptor(
                family_name(self.desc),
                self.desc.help,
                None,
                self.desc.kind,
            )?);
        }
        self.metric.as_mut().ok_or(fmt::Error)
    }
}

/// The identity labels of `cert_info`, from the leaf certificate.
pub(super) struct CertLabels<'a>(pub(super) &'a CertFacts);

impl EncodeLabelSet for CertLabels<'_> {
    fn encode(&self, enc: &mut LabelSetEncoder) -> fmt::Result {
        let c = self.0;
        ("subject", c.subject.as_str()).encode(enc.encode_label())?;
        ("issuer", c.issuer.as_str()).encode(enc.encode_label())?;
        ("dns_names", Shown::Sans(c)).encode(enc.encode_label())?;
        ("serial", c.serial.as_str()).encode(enc.encode_label())?;
        ("fingerprint_sha256", Shown::Hex(&c.fingerprint_sha256)).encode(enc.encode_label())
    }
}

/// Label values written straight into the output (the encoder escapes them), so no per-sample `String`.
pub(super) enum Shown<'a> {
    Str(&'a str),
    Addr(SocketAddr),
    /// SAN DNS names, then SAN IP addresses, joined with `,`.
    Sans(&'a CertFacts),
    Hex(&'a Fingerprint),
}

impl EncodeLabelValue for Shown<'_> {
    fn encode(&self, enc: &mut LabelValueEncoder) -> fmt::Result {
        match self {
            Shown::Str(s) => enc.write_str(s),
            Shown::Addr(address) => write!(enc, "{address}"),
            Shown::Hex(fingerprint) => write!(enc, "{fingerprint}"),
            Shown::Sans(cert) => {
                let names = cert.dns_names.iter().map(|n| n as &dyn Display);
                let ips = cert.ip_addresses.iter().map(|ip| ip as &dyn Display);
                for (i, item) in names.chain(ips).enumerate() {
                    if i > 0 {
                        enc.write_char(',')?;
                    }
                    write!(enc, "{item}")?;
                }
                Ok(())
            }
        }
    }
}
