//! Signing-key continuity end to end: fake homeservers whose key document changes between two probes, stored the
//! way the scheduler stores them (`Store::insert`), produce each change kind (`added`, `retired`, `dropped`,
//! `replaced`) with its warning and metric row; a key endpoint that fails on the second probe changes nothing;
//! a reload keeps the key history of the servers that stay and forgets the removed ones.

mod support;

use std::sync::Arc;

use matrix_federation_exporter::config::server_name::ServerName;
use matrix_federation_exporter::config::targets::{Labels, Target};
use matrix_federation_exporter::probe::probe_server;
use matrix_federation_exporter::render::html::{self, Sort};
use matrix_federation_exporter::render::metrics::{self, ExporterMetrics, Format};
use matrix_federation_exporter::render::tester::{self, EXTENSION_KEY};
use matrix_federation_exporter::report::Warning;
use matrix_federation_exporter::schedule::store::Store;
use serde_json::{Map, Value, json};
use support::keys::{KEY_SERVER_PATH, SigningKey, matrix_routes_with_keys, now_ms, sign_json};
use support::{Reply, TIMEOUTS, Validity, World, Zone};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// One server per change kind (and one whose key endpoint breaks): its key document before and after.
struct Case {
    name: &'static str,
    ip: [u8; 4],
    before: Doc,
    after: Option<Doc>,
    /// `(key_id, change)` rows after the second probe.
    rows: &'static [(&'static str, &'static str)],
    warnings: &'static [(Warning, &'static str)],
}

/// `verify_keys` and `old_verify_keys` by index into [`keys`].
struct Doc {
    current: &'static [usize],
    old: &'static [usize],
}

/// `ed25519:a`, `ed25519:b`, and `ed25519:a` again with another key.
fn keys() -> [SigningKey; 3] {
    [
        SigningKey::from_seed("ed25519:a", &[1; 32]),
        SigningKey::from_seed("ed25519:b", &[2; 32]),
        SigningKey::from_seed("ed25519:a", &[3; 32]),
    ]
}

const A: Doc = Doc {
    current: &[0],
    old: &[],
};

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "added.test",
            ip: [127, 0, 0, 2],
            before: A,
            after: Some(Doc {
                current: &[0, 1],
                old: &[],
            }),
            rows: &[("ed25519:b", "added")],
            warnings: &[],
        },
        Case {
            name: "retired.test",
            ip: [127, 0, 0, 3],
            before: A,
            after: Some(Doc {
                current: &[1],
                old: &[0],
            }),
            rows: &[("ed25519:b", "added"), ("ed25519:a", "retired")],
            warnings: &[],
        },
        Case {
            name: "dropped.test",
            ip: [127, 0, 0, 4],
            before: A,
            after: Some(Doc {
                current: &[1],
                old: &[],
            }),
            rows: &[("ed25519:b", "added"), ("ed25519:a", "dropped")],
            warnings: &[(Warning::SigningKeyDropped, "ed25519:a")],
        },
        Case {
            name: "replaced.test",
            ip: [127, 0, 0, 5],
            before: A,
            after: Some(Doc {
                current: &[2],
                old: &[],
            }),
            rows: &[("ed25519:a", "replaced")],
            warnings: &[(Warning::SigningKeyReplaced, "ed25519:a")],
        },
        Case {
            name: "broken.test",
            ip: [127, 0, 0, 6],
            before: A,
            after: None,
            rows: &[],
            warnings: &[],
        },
    ]
}

/// A key document for `server_name` with `doc`'s keys, signed by every current key, valid for a day.
fn document(server_name: &str, doc: &Doc) -> String {
    let keys = keys();
    let verify_keys: Map<String, Value> = doc
        .current
        .iter()
        .map(|&i| {
            (
                keys[i].key_id.clone(),
                json!({ "key": keys[i].public_base64() }),
            )
        })
        .collect();
    let old_verify_keys: Map<String, Value> = doc
        .old
        .iter()
        .map(|&i| {
            let old = json!({ "key": keys[i].public_base64(), "expired_ts": now_ms() - 1000 });
            (keys[i].key_id.clone(), old)
        })
        .collect();
    let mut document = json!({
        "server_name": server_name,
        "verify_keys": verify_keys,
        "old_verify_keys": old_verify_keys,
        "valid_until_ts": now_ms() + DAY_MS,
    });
    for &i in doc.current {
        sign_json(&mut document, server_name, &keys[i]);
    }
    serde_json::to_string(&document).expect("a key document serialises")
}

fn target(name: &str) -> Target {
    Target {
        name: ServerName::parse(name).unwrap(),
        labels: Labels::new(),
    }
}

/// Probes `name` once and stores the report, as the scheduler does.
async fn probe_and_store(world: &World, store: &Store, name: &str) {
    let report = probe_server(&world.env, &ServerName::parse(name).unwrap()).await;
    store.insert(report);
}

fn rows(store: &Store, name: &str) -> Vec<(String, String)> {
    let report = store.get(name).expect("stored");
    report
        .key_history
        .changes()
        .iter()
        .map(|c| (c.key_id.to_string(), c.change.as_str().to_owned()))
        .collect()
}

#[tokio::test]
#[expect(
    clippy::too_many_lines,
    reason = "one world, two probe rounds and a reload, then every place the changes show"
)]
async fn a_key_document_that_changes_between_two_probes_makes_each_change_kind() {
    let cases = cases();
    let mut zone = Zone::new();
    for case in &cases {
        zone = zone.a(case.name, case.ip.into());
    }
    let mut world = World::new("key-continuity", zone, TIMEOUTS).await;
    for case in &cases {
        let routes = matrix_routes_with_keys(document(case.name, &case.before));
        let behaviour = world.https(case.name, Validity::Valid, routes);
        world.serve_federation(case.ip, behaviour).await;
    }
    let store = Arc::new(Store::new());
    let targets: Vec<Target> = cases.iter().map(|c| target(c.name)).collect();
    store.configure(&targets);

    for case in &cases {
        probe_and_store(&world, &store, case.name).await;
        let report = store.get(case.name).unwrap();
        assert!(report.success(), "{}: {:?}", case.name, report.failures);
        assert_eq!(rows(&store, case.name), [], "{}: the baseline", case.name);
        assert_eq!(report.key_history.seen().len(), 1, "{}", case.name);
    }
    for (case, server) in cases.iter().zip(&world.servers) {
        let reply = match &case.after {
            Some(doc) => Reply::json(200, document(case.name, doc)),
            None => Reply::json(500, r#"{"errcode":"M_UNKNOWN"}"#),
        };
        server.set_route(KEY_SERVER_PATH, reply);
    }
    for case in &cases {
        probe_and_store(&world, &store, case.name).await;
    }

    let exposition = metrics::encode(
        &metrics::registry(Arc::clone(&store), &ExporterMetrics::new()),
        Format::Text004,
    );
    for case in &cases {
        let want: Vec<(String, String)> = case
            .rows
            .iter()
            .map(|&(id, change)| (id.to_owned(), change.to_owned()))
            .collect();
        assert_eq!(rows(&store, case.name), want, "{}", case.name);
        let report = store.get(case.name).unwrap();
        let warnings: Vec<(Warning, String)> = report
            .warnings()
            .into_iter()
            .map(|w| (w.warning, w.host.to_string()))
            .collect();
        let want: Vec<(Warning, String)> = case
            .warnings
            .iter()
            .map(|&(w, id)| (w, id.to_owned()))
            .collect();
        assert_eq!(warnings, want, "{}", case.name);
        for (id, change) in case.rows {
            let series = format!(
                "matrix_federation_signing_key_change_timestamp_seconds{{server_name=\"{}\",key_id=\"{id}\",change=\"{change}\"}}",
                case.name
            );
            assert!(exposition.contains(&series), "{series} in {exposition}");
        }
        for (warning, _) in case.warnings {
            let series = format!(
                "matrix_federation_warning_info{{server_name=\"{}\",address=\"\",warning=\"{warning}\"}} 1",
                case.name
            );
            assert!(exposition.contains(&series), "{series} in {exposition}");
        }
    }
    // Where people look: the detail view's table, the index's line, the report API's extension key.
    let now = std::time::SystemTime::now();
    let dropped = store.get("dropped.test").unwrap();
    let page = html::server_page("dropped.test", Some(&dropped), now);
    assert!(page.contains(r#"<section id="key-changes">"#), "{page}");
    assert!(page.contains(r#"data-change="dropped""#), "{page}");
    assert!(
        page.contains("old_signing_keys"),
        "the fix is on the page: {page}"
    );
    let index = html::index_page(&store.snapshot(), [], Sort::default(), now);
    assert_eq!(index.matches(r#"class="key-fault""#).count(), 2, "{index}");
    let api = tester::tester_report(&dropped);
    assert_eq!(
        api[EXTENSION_KEY]["key_changes"][0],
        json!({"key_id": "ed25519:a", "change": "dropped", "at": dropped.key_history.changes()[1].at}),
        "{api:#}"
    );

    let broken = store.get("broken.test").unwrap();
    assert!(
        !broken.success(),
        "the key endpoint failed on the second probe"
    );
    assert_eq!(
        broken.key_history.seen().len(),
        1,
        "and the key is still remembered"
    );

    // A reload keeps the key history of the servers that stay and forgets the removed ones: replaced.test comes
    // back as a new server, whose next probe is a baseline again.
    let stay = ["dropped.test", "added.test"];
    store.configure(&stay.map(target));
    assert!(store.get("replaced.test").is_none());
    store.configure(&["dropped.test", "added.test", "replaced.test"].map(target));
    for name in ["dropped.test", "replaced.test"] {
        probe_and_store(&world, &store, name).await;
    }
    assert_eq!(
        rows(&store, "dropped.test"),
        [
            ("ed25519:b".to_owned(), "added".to_owned()),
            ("ed25519:a".to_owned(), "dropped".to_owned())
        ],
        "kept across the reload"
    );
    assert_eq!(
        rows(&store, "added.test").len(),
        1,
        "kept across the reload"
    );
    assert_eq!(
        rows(&store, "replaced.test"),
        [],
        "a removed server starts over"
    );
    assert!(
        store.get("replaced.test").unwrap().warnings().is_empty(),
        "and its warning went with it"
    );
}
