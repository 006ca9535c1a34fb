//! The notaries' view: what a key notary serves for each scheduled server, against what the server serves
//! directly (DESIGN.md "Next", point 6).
//!
//! One round for one notary: resolve its server name with our discovery and connect over a judged connection,
//! fetch and judge its own `/_matrix/key/v2/server` (the keys its answers must be signed with), then
//! `POST /_matrix/key/v2/query` in batches on that connection, one request at a time. Every answer object must
//! carry the origin's self-signature (verified with the keys in that object, as `checks::keys` judges a key
//! document) and the notary's signature (verified with the notary's own keys). The verdict per server is a
//! closed [`NotaryResult`].
//!
//! The spec decides (Server-Server API, "Querying Keys Through Another Server"): "Servers may query another
//! server's keys through a notary server. The notary server may be another homeserver. The notary server will
//! retrieve keys from the queried servers through use of their own `/_matrix/key/v2/server` API." and
//! "Each returned key will be signed by the notary server in addition to the originating homeserver."
//!
//! Where we differ from Synapse: a Synapse peer (`PerspectivesKeyFetcher`) accepts an answer object when the
//! notary's signature verifies, and then the origin's signature by the key it needs; we require the origin's
//! signature by every ed25519 verify key of the object (as `checks::keys` does for a direct fetch), so an object
//! we call `bad_signature` may still be usable to Synapse for one of its keys.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::config::notary::NotaryConfig;
use crate::probe::checks::keys;
use crate::probe::connect::http_client::{GetError, HttpConn, Response};
use crate::probe::discovery;
use crate::probe::env::ProbeEnv;
use crate::probe::{MAX_KEYS_BODY, connect};
use crate::report::notary::{NotaryReport, NotaryView};
use crate::report::{NotaryResult, Reason, VerifyKey};

/// The query path. The spec: "`POST /_matrix/key/v2/query`: Query for keys from multiple servers in a batch
/// format. The receiving (notary) server must sign the keys returned by the queried servers."
pub const QUERY_PATH: &str = "/_matrix/key/v2/query";
/// The most answer bytes read per server name of a batch (a Synapse key document with a few old keys and two
/// signatures is about 1 KiB; a notary may return several objects per server).
pub const MAX_ANSWER_PER_SERVER: usize = 64 * 1024;
/// Most objects of one answer judged (each costs a few signature checks).
const MAX_OBJECTS_PER_SERVER: usize = 8;

/// One server to ask the notary about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Asked {
    pub server_name: String,
    /// The ed25519 verify keys the server served directly in its latest probe (may be empty: it served none).
    pub direct: Vec<VerifyKey>,
}

/// The keys a probe report found, for [`Asked::direct`]: the first address's valid ed25519 verify keys.
#[must_use]
pub fn direct_keys(report: &crate::report::ServerReport) -> Vec<VerifyKey> {
    report
        .addresses
        .iter()
        .filter_map(|a| a.keys.as_ref())
        .map(|k| {
            k.verify_keys
                .iter()
                .filter(|v| v.valid_ed25519)
                .cloned()
                .collect::<Vec<_>>()
        })
        .find(|keys| !keys.is_empty())
        .unwrap_or_default()
}

/// One round: asks `notary` about every server of `asked` (in batches of its `batch_size`), at `now`.
pub async fn query(
    env: &ProbeEnv,
    notary: &NotaryConfig,
    mut asked: Vec<Asked>,
    now: SystemTime,
) -> NotaryReport {
    let start = Instant::now();
    asked.sort_by(|a, b| a.server_name.cmp(&b.server_name));
    asked.dedup_by(|a, b| a.server_name == b.server_name);
    let mut report = NotaryReport {
        notary: notary.server_name.as_str().to_owned(),
        started_at: now,
        duration: start.elapsed(),
        up: false,
        message: String::new(),
        requests: 0,
        servers: Vec::with_capacity(asked.len()),
    };
    let mut session = match Session::open(env, notary, now).await {
        Ok(session) => Some(session),
        Err(message) => {
            report.message = message;
            None
        }
    };
    report.up = session.is_some();
    for batch in asked.chunks(notary.batch_size) {
        let answer = match session.as_mut() {
            Some(s) => {
                report.requests += 1;
                s.ask(env, batch, now).await
            }
            None => Err(format!("the notary is not usable: {}", report.message)),
        };
        match answer {
            Ok(views) => report.servers.extend(views),
            Err(message) => report.servers.extend(batch.iter().map(|a| NotaryView {
                server_name: a.server_name.clone(),
                result: NotaryResult::RequestFailed,
                valid_until_ts: None,
                keys: Vec::new(),
                message: message.clone(),
            })),
        }
        // A request that broke leaves no connection for the next batch: open a new one (bounded by the batches).
        if session.as_ref().is_some_and(|s| s.conn.is_none()) {
            session = match Session::open(env, notary, now).await {
                Ok(s) => Some(s),
                Err(message) => {
                    report.message = message;
                    None
                }
            };
        }
    }
    report.duration = start.elapsed();
    report
}

/// A judged connection to the notary, and the keys its answers must be signed with.
struct Session {
    conn: Option<HttpConn>,
    host_header: String,
    notary: String,
    keys: Vec<VerifyKey>,
}

impl Session {
    /// Discovery, the judged connection, and the notary's own key document judged like any server's.
    async fn open(env: &ProbeEnv, notary: &NotaryConfig, now: SystemTime) -> Result<Self, String> {
        let name = &notary.server_name;
        let discovery = Box::pin(discovery::discover(env, name)).await;
        if discovery.endpoints.is_empty() {
            let why = discovery
                .failures
                .first()
                .map_or_else(|| "no address".to_owned(), ToString::to_string);
            return Err(format!("cannot resolve {name}: {why}"));
        }
        let addresses: Vec<_> = discovery.endpoints.iter().map(|e| e.address).collect();
        let opened = connect::open(env, addresses, &discovery.report.tls_name).await;
        let judged = opened
            .result
            .map_err(|e| format!("cannot connect to {name}: {}", e.into_failure()))?;
        if let Some(f) = judged.certificate.failures.first() {
            // A peer would refuse this notary; so do we.
            return Err(format!("{name}'s certificate is refused: {f}"));
        }
        let mut conn = HttpConn::handshake(judged.stream, env.timeouts.http)
            .await
            .map_err(|e| format!("{name}: {e}"))?;
        let host_header = discovery.report.host_header.to_string();
        let response = conn
            .get(
                "/_matrix/key/v2/server",
                &host_header,
                MAX_KEYS_BODY,
                env.timeouts.http,
            )
            .await
            .map_err(|e| format!("{name}'s key document: {e}"))?;
        if response.status != 200 {
            return Err(format!("{name}'s key document: HTTP {}", response.status));
        }
        let (document, failures) = keys::check_key_document(&response.body, name.as_str(), now);
        if let Some(f) = failures.iter().find(|f| f.reason != Reason::KeysExpired) {
            return Err(format!("{name}'s own key document is refused: {f}"));
        }
        let keys = document.map(|d| d.verify_keys).unwrap_or_default();
        Ok(Self {
            conn: Some(conn),
            host_header,
            notary: name.as_str().to_owned(),
            keys,
        })
    }

    /// One `POST /_matrix/key/v2/query` for `batch`, judged. `Err` says why the batch has no usable answer.
    async fn ask(
        &mut self,
        env: &ProbeEnv,
        batch: &[Asked],
        now: SystemTime,
    ) -> Result<Vec<NotaryView>, String> {
        let conn = self.conn.as_mut().ok_or("no connection")?;
        let body = Bytes::from(query_body(batch, now).to_string());
        let cap = MAX_ANSWER_PER_SERVER * batch.len();
        let response = conn
            .post_json(QUERY_PATH, &self.host_header, body, cap, env.timeouts.http)
            .await;
        if matches!(
            response,
            Err(GetError::Timeout(_) | GetError::Http(_) | GetError::TooLarge(_))
        ) {
            // The unread rest or the broken stream leaves nothing to send the next request on.
            self.conn = None;
        }
        let response: Response = response.map_err(|e| format!("{QUERY_PATH}: {e}"))?;
        if response.status != 200 {
            return Err(format!("{QUERY_PATH}: HTTP {}", response.status));
        }
        judge_answer(&response.body, &self.notary, &self.keys, batch, now)
    }
}

/// `{"server_keys": {"<server>": {"<key_id>": {"minimum_valid_until_ts": <now ms>}}}}`: the key ids each
/// server served directly, valid at least until now; a server that served none is asked for everything
/// (`{}`). The spec: "`minimum_valid_until_ts`: A millisecond POSIX timestamp in milliseconds indicating when
/// the returned certificates will need to be valid until to be useful to the requesting server."
#[must_use]
pub fn query_body(batch: &[Asked], now: SystemTime) -> Value {
    let now_ms = unix_ms(now);
    let servers: Map<String, Value> = batch
        .iter()
        .map(|a| {
            let ids: Map<String, Value> = a
                .direct
                .iter()
                .map(|k| {
                    (
                        k.key_id.to_string(),
                        json!({ "minimum_valid_until_ts": now_ms }),
                    )
                })
                .collect();
            (a.server_name.clone(), Value::Object(ids))
        })
        .collect();
    json!({ "server_keys": servers })
}

/// What the objects for one server amounted to.
#[derive(Default)]
struct Found {
    /// Verify keys of the correctly signed objects (key id → key).
    keys: BTreeMap<String, String>,
    valid_until_ts: Option<i64>,
    /// Why the first refused object was refused.
    refused: Option<String>,
    objects: usize,
}

/// The answer `{"server_keys": [<server keys object>, ...]}` judged for every server of `batch`.
///
/// The spec: "`server_keys`: The queried server's keys, signed by the notary server." Objects for servers not
/// asked about are ignored.
fn judge_answer(
    body: &[u8],
    notary: &str,
    notary_keys: &[VerifyKey],
    batch: &[Asked],
    now: SystemTime,
) -> Result<Vec<NotaryView>, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let objects = value
        .get("server_keys")
        .and_then(Value::as_array)
        .ok_or("the answer has no server_keys list")?;
    let mut found: BTreeMap<&str, Found> = batch
        .iter()
        .map(|a| (a.server_name.as_str(), Found::default()))
        .collect();
    for object in objects {
        let Some(map) = object.as_object() else {
            continue;
        };
        let Some(server_name) = map.get("server_name").and_then(Value::as_str) else {
            continue;
        };
        let Some(entry) = found.get_mut(server_name) else {
            continue;
        };
        entry.objects += 1;
        if entry.objects > MAX_OBJECTS_PER_SERVER {
            continue;
        }
        match judge_object(map, server_name, notary, notary_keys, now) {
            Ok((keys, valid_until)) => {
                entry.keys.extend(keys);
                entry.valid_until_ts = entry.valid_until_ts.max(valid_until);
            }
            Err(why) => {
                entry.refused.get_or_insert(why);
            }
        }
    }
    Ok(batch
        .iter()
        .map(|a| verdict(a, found.remove(a.server_name.as_str()).unwrap_or_default()))
        .collect())
}

/// A correctly signed object's verify keys (key id, key) and `valid_until_ts`.
type Judged = (Vec<(String, String)>, Option<i64>);

/// One object: the notary's signature, then the origin's self-signature; its verify keys and `valid_until_ts`.
fn judge_object(
    map: &Map<String, Value>,
    server_name: &str,
    notary: &str,
    notary_keys: &[VerifyKey],
    now: SystemTime,
) -> Result<Judged, String> {
    keys::check_signed_by(map, notary, notary_keys)
        .map_err(|why| format!("the notary's signature: {why}"))?;
    let raw = serde_json::to_vec(map).map_err(|e| e.to_string())?;
    let (document, failures) = keys::check_key_document(&raw, server_name, now);
    // A copy that expired is still what the notary serves; `stale` or `match` says whether it is current.
    if let Some(f) = failures.iter().find(|f| f.reason != Reason::KeysExpired) {
        return Err(format!("the origin's signature: {}", f.message));
    }
    let document = document.ok_or("not a key document")?;
    let keys = document
        .verify_keys
        .into_iter()
        .filter(|k| k.valid_ed25519)
        .map(|k| (k.key_id.to_string(), k.key.to_string()))
        .collect();
    Ok((keys, document.valid_until_ts))
}

fn verdict(asked: &Asked, found: Found) -> NotaryView {
    let keys: Vec<(String, String)> = found.keys.into_iter().collect();
    let (result, message) = if !keys.is_empty() {
        let missing: Vec<&str> = asked
            .direct
            .iter()
            .filter(|d| {
                !keys
                    .iter()
                    .any(|(id, key)| **id == *d.key_id && **key == *d.key)
            })
            .map(|d| d.key_id.as_str())
            .collect();
        if asked.direct.is_empty() {
            (
                NotaryResult::Stale,
                "the notary serves keys, but the server served none directly".to_owned(),
            )
        } else if missing.is_empty() {
            (NotaryResult::Match, String::new())
        } else {
            (
                NotaryResult::Stale,
                format!(
                    "the notary does not serve the key the server serves directly for {}",
                    missing.join(", ")
                ),
            )
        }
    } else if let Some(refused) = found.refused {
        (NotaryResult::BadSignature, refused)
    } else {
        (
            NotaryResult::NoKeys,
            "the notary returned no keys for this server".to_owned(),
        )
    };
    NotaryView {
        server_name: asked.server_name.clone(),
        result,
        valid_until_ts: found.valid_until_ts,
        keys,
        message,
    }
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, key: &str) -> VerifyKey {
        VerifyKey {
            key_id: id.into(),
            key: key.into(),
            valid_ed25519: true,
            matching_signature: true,
        }
    }

    #[test]
    fn the_query_asks_for_the_direct_key_ids_valid_until_now() {
        let batch = [
            Asked {
                server_name: "a.example".into(),
                direct: vec![key("ed25519:a", "AAAA")],
            },
            Asked {
                server_name: "b.example".into(),
                direct: Vec::new(),
            },
        ];
        let now = UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        assert_eq!(
            query_body(&batch, now),
            json!({"server_keys": {
                "a.example": {"ed25519:a": {"minimum_valid_until_ts": 1_700_000_000_123_i64}},
                "b.example": {},
            }})
        );
    }

    #[test]
    fn verdicts_compare_with_the_direct_keys() {
        let asked = Asked {
            server_name: "a.example".into(),
            direct: vec![key("ed25519:a", "AAAA")],
        };
        let found = |keys: &[(&str, &str)], refused: Option<&str>| Found {
            keys: keys
                .iter()
                .map(|(i, k)| ((*i).to_owned(), (*k).to_owned()))
                .collect(),
            valid_until_ts: None,
            refused: refused.map(str::to_owned),
            objects: 1,
        };
        let result = |f: Found| verdict(&asked, f).result;
        assert_eq!(
            result(found(&[("ed25519:a", "AAAA")], None)),
            NotaryResult::Match
        );
        assert_eq!(
            result(found(
                &[("ed25519:a", "AAAA"), ("ed25519:old", "BBBB")],
                None
            )),
            NotaryResult::Match
        );
        assert_eq!(
            result(found(&[("ed25519:a", "BBBB")], None)),
            NotaryResult::Stale
        );
        assert_eq!(
            result(found(&[("ed25519:b", "AAAA")], None)),
            NotaryResult::Stale
        );
        assert_eq!(
            result(found(&[], Some("forged"))),
            NotaryResult::BadSignature
        );
        assert_eq!(result(found(&[], None)), NotaryResult::NoKeys);
    }

    #[test]
    fn answers_that_are_not_the_shape_fail_the_batch() {
        let batch = [Asked {
            server_name: "a.example".into(),
            direct: Vec::new(),
        }];
        for body in [&b"<html>"[..], b"[]", b"{\"server_keys\": {}}"] {
            assert!(judge_answer(body, "n.example", &[], &batch, SystemTime::now()).is_err());
        }
        let views = judge_answer(
            b"{\"server_keys\": [1, {\"server_name\": \"other\"}]}",
            "n.example",
            &[],
            &batch,
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(views[0].result, NotaryResult::NoKeys);
    }
}
