//! A whole hermetic world for end-to-end tests of the exporter: a test CA, fake DNS, one port for `.well-known`
//! and one for federation (each held by a [`PortAnchor`]), the fake homeservers on loopback addresses at those
//! ports, and the [`ProbeEnv`] that probes them.

use matrix_federation_exporter::config::{Config, Timeouts};
use matrix_federation_exporter::probe::env::{Ports, ProbeEnv};
use matrix_federation_exporter::serve::daemon::{self, Exporter};

use super::{
    Behaviour, FakeDns, FakeServer, PortAnchor, Routes, TestCa, Validity, Zone, matrix_routes,
};

pub struct World {
    /// Resolves through the world's DNS, trusts only its CA, and maps the spec ports to the world's ports.
    pub env: ProbeEnv,
    pub ca: TestCa,
    /// Every server started so far, in the order they were started.
    pub servers: Vec<FakeServer>,
    pub dns: FakeDns,
    /// The `.well-known` port.
    pub wk: PortAnchor,
    /// The federation port.
    pub fed: PortAnchor,
}

impl World {
    /// A CA labelled `label`, fake DNS answering `zone`, fresh ports, probe `timeouts`, and no servers yet.
    pub async fn new(label: &str, zone: Zone, timeouts: Timeouts) -> Self {
        let (wk, fed) = (PortAnchor::new(), PortAnchor::new());
        let ca = TestCa::new(label);
        let dns = FakeDns::start(zone).await;
        let ports = Ports {
            well_known: wk.port,
            federation: fed.port,
        };
        let env = ProbeEnv::new(&[dns.addr], ca.root_store(), ports, timeouts).unwrap();
        Self {
            env,
            ca,
            servers: Vec::new(),
            dns,
            wk,
            fed,
        }
    }

    /// HTTPS with a certificate for `name` from the world's CA, answering from `routes`.
    pub fn https(&self, name: &str, validity: Validity, routes: Routes) -> Behaviour {
        Behaviour::Https {
            leaf: self.ca.leaf(&[name], validity),
            routes,
        }
    }

    /// Starts a server at `ip` on the `.well-known` port.
    pub async fn serve_well_known(&mut self, ip: [u8; 4], behaviour: Behaviour) {
        let server = FakeServer::start(self.wk.bind(ip), behaviour).await;
        self.servers.push(server);
    }

    /// Starts a server at `ip` on the federation port.
    pub async fn serve_federation(&mut self, ip: [u8; 4], behaviour: Behaviour) {
        let server = FakeServer::start(self.fed.bind(ip), behaviour).await;
        self.servers.push(server);
    }

    /// A homeserver for `name` at `ip` on the federation port: a certificate for `name`, and `name`'s key
    /// document and version.
    pub async fn homeserver(&mut self, ip: [u8; 4], name: &str, validity: Validity) {
        let behaviour = self.https(name, validity, matrix_routes(name));
        self.serve_federation(ip, behaviour).await;
    }

    /// The two servers both end-to-end tests start from: good.test (127.0.0.2) delegates by `.well-known` to
    /// deleg.test (127.0.0.3), which serves good.test's key document (it names the server name, not the
    /// delegated host); bad.test (127.0.0.4) has an expired certificate. The zone must hold
    /// [`delegated_and_expired_zone`].
    pub async fn serve_delegated_and_expired(&mut self) {
        let routes = Routes::new().well_known_json(r#"{"m.server":"deleg.test"}"#);
        let good = self.https("good.test", Validity::Valid, routes);
        self.serve_well_known([127, 0, 0, 2], good).await;
        let deleg = self.https("deleg.test", Validity::Valid, matrix_routes("good.test"));
        self.serve_federation([127, 0, 0, 3], deleg).await;
        self.homeserver([127, 0, 0, 4], "bad.test", Validity::Expired)
            .await;
    }

    /// Lets go of `[::1]` at both ports: nothing listens there, so connections to IPv6 loopback are refused.
    pub fn refuse_ipv6(&mut self) {
        drop((self.wk.take_v6(), self.fed.take_v6()));
    }

    /// `127.0.0.{last_octet}` at the federation port.
    pub fn fed_addr(&self, last_octet: u8) -> String {
        format!("127.0.0.{last_octet}:{}", self.fed.port)
    }

    /// A running exporter for `config` in this world, after its first probe round.
    pub async fn exporter(&self, config: &Config) -> Exporter {
        let mut exporter = daemon::start(config, self.env.clone());
        exporter.ready.wait_for(|r| *r).await.unwrap();
        exporter
    }
}

/// The addresses of [`World::serve_delegated_and_expired`]: good.test 127.0.0.2, deleg.test 127.0.0.3, bad.test
/// 127.0.0.4.
pub fn delegated_and_expired_zone() -> Zone {
    Zone::new()
        .a("good.test", "127.0.0.2".parse().unwrap())
        .a("deleg.test", "127.0.0.3".parse().unwrap())
        .a("bad.test", "127.0.0.4".parse().unwrap())
}
