//! Upstream's exact shapes: a report of ours decoded as matrix-federation-tester's Go types would write it
//! (`main.go` `ServerReport` and gomatrixserverlib's `KeyChecks`, with Go's names and nil forms), and read the
//! way its consumers read it (fed-tester-ui's `app.js`, a `jq .FederationOK` script). Each assertion names the
//! point of issue 13 it holds.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// Our extension key: the only key upstream does not have.
pub const EXTENSION_KEY: &str = "MatrixFederationExporter";

/// `crypto/tls` names of the suites and versions a rustls client can negotiate.
const GO_CIPHER_SUITES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];
const GO_TLS_VERSIONS: &[&str] = &["TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3"];

/// The `WellKnownResult.result` texts upstream gives (gomatrixserverlib `fclient/well_known.go` and the Go
/// errors it passes on), by our outcome; `None`: our words (a case upstream has no counterpart for).
fn upstream_well_known_texts(outcome: &str) -> Option<&'static [&'static str]> {
    Some(match outcome {
        "skipped" | "not_found" => &["No .well-known found"],
        "http_error" => &["No .well-known found", "net/http: "],
        "invalid_json" => &[
            "No m.server key found in well-known response",
            "unexpected end of JSON input",
            "invalid character",
            "json: cannot unmarshal",
        ],
        "invalid_server_name" => &[
            "No m.server key found in well-known response",
            "Invalid server name '",
        ],
        "redirect_loop" => &["stopped after 10 redirects"],
        "too_large" => &["well-known content length"],
        "timeout" => &["context deadline exceeded"],
        "dns_error" => &["no such host"],
        "connection_failed" => &["connection refused", "i/o timeout"],
        "tls_error" => &["x509: ", "tls: "],
        _ => return None,
    })
}

/// Asserts that `text` is one tester report with upstream's shape, and returns it parsed.
pub fn assert_upstream_shape(text: &str) -> Value {
    let json: Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"));
    check_report(&json).unwrap_or_else(|e| panic!("{e}\n{text}"));
    json
}

/// The same check on a parsed report, as an error.
pub fn check_report(json: &Value) -> Result<(), String> {
    let top = object(json, "the report")?;
    let mut want = set(&[
        "WellKnownResult",
        "DNSResult",
        "ConnectionReports",
        "ConnectionErrors",
        "Version",
        "FederationOK",
    ]);
    // `Error` is omitempty; our extension key is the one addition.
    for optional in ["Error", EXTENSION_KEY] {
        if top.contains_key(optional) {
            want.insert(optional);
        }
    }
    keys(top, &want, "the report")?;
    let federation_ok = bool_of(&json["FederationOK"], "FederationOK")?;
    if let Some(error) = top.get("Error") {
        non_empty_string(error, "Error")?;
        if federation_ok {
            return Err("Error is set but FederationOK is true".into());
        }
    }
    let ours = top.get(EXTENSION_KEY);
    if let Some(ext) = ours {
        object(ext, EXTENSION_KEY)?;
    }
    well_known(&json["WellKnownResult"], ours)?;
    dns_result(&json["DNSResult"])?;
    let ext_failures: Vec<&Value> = ours
        .and_then(|o| o.get("failures"))
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    for (address, conn) in object(&json["ConnectionReports"], "ConnectionReports")? {
        connection_report(address, conn, &ext_failures)
            .map_err(|e| format!("ConnectionReports[{address}]: {e}"))?;
    }
    for (address, error) in object(&json["ConnectionErrors"], "ConnectionErrors")? {
        message(error, &format!("ConnectionErrors[{address}]"))?;
    }
    version(&json["Version"])?;
    // Point 5: upstream fetches the version over verified TLS; when every address was judged and none has a
    // valid certificate, it is an error.
    let reports = object(&json["ConnectionReports"], "ConnectionReports")?;
    let none_valid = !reports.is_empty()
        && json["ConnectionErrors"]
            .as_object()
            .is_some_and(Map::is_empty)
        && reports
            .values()
            .all(|c| c["Checks"]["ValidCertificates"] != true);
    if none_valid && json["Version"].get("error").is_none() {
        return Err(format!(
            "point 5: Version {} although no address has a valid certificate",
            json["Version"]
        ));
    }
    Ok(())
}

/// Reads `json` as fed-tester-ui's `app.js` does after `res.json()`, failing where its JavaScript would throw
/// or show `undefined`; returns the lines it would show first (its "tldr").
pub fn read_like_fed_tester_ui(json: &Value) -> Result<Vec<String>, String> {
    let mut tldr = Vec::new();
    let reports = json["ConnectionReports"]
        .as_object()
        .ok_or("Object.keys(json.ConnectionReports) throws")?;
    for (ip, report) in reports {
        let valid = report["Checks"]["ValidCertificates"]
            .as_bool()
            .ok_or("report.Checks.ValidCertificates is not a bool")?;
        if !valid {
            tldr.push(format!(
                "WARN: Could not find a valid certificate for {ip}."
            ));
        }
        for err in report["Errors"]
            .as_array()
            .ok_or("report.Errors.forEach throws")?
        {
            let msg = err["Message"].as_str().ok_or("err.Message is undefined")?;
            tldr.push(format!("ERROR: on {ip}: {msg}"));
        }
        report["Checks"]["MatchingServerName"]
            .as_bool()
            .ok_or("Checks.MatchingServerName is not a bool")?;
    }
    let version = &json["Version"];
    if let Some(error) = version.get("error") {
        error.as_str().ok_or("Version.error is not a string")?;
    } else {
        for field in ["name", "version"] {
            version[field].as_str().ok_or_else(|| {
                format!("the page shows `Homeserver version: undefined` ({field})")
            })?;
        }
    }
    for (_, info) in json["ConnectionErrors"]
        .as_object()
        .ok_or("Object.keys(json.ConnectionErrors) throws")?
    {
        info["Message"]
            .as_str()
            .ok_or("ConnectionErrors Message is not a string")?;
    }
    let dns = &json["DNSResult"];
    if !dns["SRVSkipped"]
        .as_bool()
        .ok_or("SRVSkipped is not a bool")?
        && !dns["SRVRecords"].is_null()
    {
        dns["SRVRecords"]
            .as_array()
            .ok_or("j.SRVRecords.map throws")?;
    }
    if let Some(hosts) = dns["Hosts"].as_object() {
        for host in hosts.values() {
            if !host["Addrs"].is_null() {
                host["Addrs"]
                    .as_array()
                    .ok_or("Hosts[host].Addrs.map throws")?;
            }
            if !host["Error"].is_null() {
                host["Error"]["Message"]
                    .as_str()
                    .ok_or("Hosts[host].Error.Message is undefined")?;
            }
        }
    }
    Ok(tldr)
}

/// What `jq '.FederationOK'` prints for each JSON text in `out` (one document, or JSON Lines).
pub fn jq_federation_ok(out: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(out)
        .into_iter::<Value>()
        .map(|v| v.expect("jq reads JSON")["FederationOK"].clone())
        .collect()
}

fn well_known(v: &Value, ours: Option<&Value>) -> Result<(), String> {
    let wk = object(v, "WellKnownResult")?;
    let mut want = set(&["m.server", "CacheExpiresAt"]);
    if wk.contains_key("result") {
        want.insert("result");
    }
    keys(wk, &want, "WellKnownResult")?;
    string(&v["m.server"], "m.server")?;
    integer(&v["CacheExpiresAt"], "CacheExpiresAt")?;
    let Some(result) = wk.get("result") else {
        return Ok(());
    };
    let result = non_empty_string(result, "WellKnownResult.result")?;
    // Point 2: upstream's texts for the same outcome.
    let outcome = ours.and_then(|o| o["well_known"]["outcome"].as_str());
    // Our words only where Go has no text for the cause (README lists these): a transport failure that is no
    // HTTP status, refused, or timeout.
    let ours_allowed = matches!(outcome, Some("http_error" | "connection_failed"))
        && ours.is_some_and(|o| o["well_known"]["error"] == result);
    if let Some(texts) = outcome.and_then(upstream_well_known_texts)
        && !texts.iter().any(|t| result.starts_with(t))
        && !ours_allowed
    {
        return Err(format!(
            "point 2: well-known result {result:?} for outcome {outcome:?} is none of upstream's {texts:?}"
        ));
    }
    Ok(())
}

fn dns_result(v: &Value) -> Result<(), String> {
    let dns = object(v, "DNSResult")?;
    keys(
        dns,
        &set(&[
            "SRVSkipped",
            "SRVCName",
            "SRVRecords",
            "SRVError",
            "Hosts",
            "Addrs",
        ]),
        "DNSResult",
    )?;
    bool_of(&v["SRVSkipped"], "SRVSkipped")?;
    let cname = string(&v["SRVCName"], "SRVCName")?;
    if !cname.is_empty() && !cname.ends_with('.') {
        return Err(format!(
            "point 4: SRVCName {cname:?} is not fully qualified"
        ));
    }
    let mut targets = Vec::new();
    if !v["SRVRecords"].is_null() {
        let records = array(&v["SRVRecords"], "SRVRecords")?;
        if records.is_empty() {
            return Err("SRVRecords is [] (Go gives null for none)".into());
        }
        if cname.is_empty() {
            return Err("point 4: SRV records without SRVCName".into());
        }
        for r in records {
            keys(
                object(r, "SRV record")?,
                &set(&["Target", "Port", "Priority", "Weight"]),
                "SRV record",
            )?;
            let target = string(&r["Target"], "Target")?;
            if !target.ends_with('.') {
                return Err(format!(
                    "point 4: SRV target {target:?} is not fully qualified"
                ));
            }
            targets.push(target);
            for n in ["Port", "Priority", "Weight"] {
                u16_of(&r[n], n)?;
            }
        }
    }
    nullable_message(&v["SRVError"], "SRVError")?;
    if !v["Hosts"].is_null() {
        let hosts = object(&v["Hosts"], "Hosts")?;
        for target in &targets {
            if !hosts.contains_key(*target) {
                return Err(format!(
                    "point 4: Hosts has no key {target:?} (the SRV target as Go gives it)"
                ));
            }
        }
        for (name, host) in hosts {
            keys(
                object(host, "host")?,
                &set(&["CName", "Addrs", "Error"]),
                "host",
            )?;
            let cname = string(&host["CName"], "CName")?;
            if !cname.is_empty() && !cname.ends_with('.') {
                return Err(format!(
                    "point 4: Hosts[{name}].CName {cname:?} is not fully qualified"
                ));
            }
            nullable_strings(&host["Addrs"], "Hosts.Addrs")?;
            nullable_message(&host["Error"], "Hosts.Error")?;
        }
    }
    nullable_strings(&v["Addrs"], "Addrs")
}

fn connection_report(address: &str, v: &Value, ext_failures: &[&Value]) -> Result<(), String> {
    let conn = object(v, "the connection report")?;
    keys(
        conn,
        &set(&[
            "Certificates",
            "Cipher",
            "Checks",
            "Errors",
            "Ed25519VerifyKeys",
            "Info",
            "Keys",
        ]),
        "the connection report",
    )?;
    certificates_and_cipher(v)?;
    key_checks(v)?;
    // Point 3: `Errors` holds the certificate verification error, nothing else.
    for e in array(&v["Errors"], "Errors")? {
        let text = message(e, "Errors[]")?;
        let from_elsewhere = ext_failures.iter().any(|f| {
            f["address"] == address && f["message"] == text && f["stage"] != "certificate"
        });
        if from_elsewhere {
            return Err(format!(
                "point 3: Errors holds {text:?}, which is no certificate error"
            ));
        }
    }
    if !v["Ed25519VerifyKeys"].is_null() {
        for (id, key) in object(&v["Ed25519VerifyKeys"], "Ed25519VerifyKeys")? {
            string(key, id)?;
        }
    }
    if v["Info"] != Value::Object(Map::new()) {
        return Err("Info is not {}".into());
    }
    if !v["Keys"].is_null() {
        object(&v["Keys"], "Keys")?;
    }
    Ok(())
}

fn certificates_and_cipher(v: &Value) -> Result<(), String> {
    let certs = array(&v["Certificates"], "Certificates")?;
    if certs.is_empty() {
        return Err("Certificates is empty (Go has at least the leaf)".into());
    }
    for c in certs {
        keys(
            object(c, "certificate")?,
            &set(&[
                "SubjectCommonName",
                "IssuerCommonName",
                "SHA256Fingerprint",
                "DNSNames",
            ]),
            "certificate",
        )?;
        string(&c["SubjectCommonName"], "SubjectCommonName")?;
        string(&c["IssuerCommonName"], "IssuerCommonName")?;
        if string(&c["SHA256Fingerprint"], "SHA256Fingerprint")?.len() != 43 {
            return Err("SHA256Fingerprint is not unpadded base64 of 32 bytes".into());
        }
        nullable_strings(&c["DNSNames"], "DNSNames")?;
    }
    let cipher = object(&v["Cipher"], "Cipher")?;
    keys(cipher, &set(&["Version", "CipherSuite"]), "Cipher")?;
    let version = string(&v["Cipher"]["Version"], "Cipher.Version")?;
    if !GO_TLS_VERSIONS.contains(&version) {
        return Err(format!(
            "point 4: Cipher.Version {version:?} is not Go's name"
        ));
    }
    let suite = string(&v["Cipher"]["CipherSuite"], "CipherSuite")?;
    if !GO_CIPHER_SUITES.contains(&suite) {
        return Err(format!(
            "point 4: CipherSuite {suite:?} is not a crypto/tls constant name"
        ));
    }
    Ok(())
}

fn key_checks(v: &Value) -> Result<(), String> {
    let checks = object(&v["Checks"], "Checks")?;
    keys(
        checks,
        &set(&[
            "AllChecksOK",
            "MatchingServerName",
            "FutureValidUntilTS",
            "HasEd25519Key",
            "AllEd25519ChecksOK",
            "Ed25519Checks",
            "ValidCertificates",
        ]),
        "Checks",
    )?;
    for b in [
        "AllChecksOK",
        "MatchingServerName",
        "FutureValidUntilTS",
        "HasEd25519Key",
        "ValidCertificates",
    ] {
        bool_of(&v["Checks"][b], b)?;
    }
    if !v["Checks"]["AllEd25519ChecksOK"].is_null() {
        bool_of(&v["Checks"]["AllEd25519ChecksOK"], "AllEd25519ChecksOK")?;
    }
    for (id, check) in object(&v["Checks"]["Ed25519Checks"], "Ed25519Checks")? {
        keys(
            object(check, id)?,
            &set(&["ValidEd25519", "MatchingSignature"]),
            id,
        )?;
        bool_of(&check["ValidEd25519"], "ValidEd25519")?;
        bool_of(&check["MatchingSignature"], "MatchingSignature")?;
    }
    Ok(())
}

fn version(v: &Value) -> Result<(), String> {
    let version = object(v, "Version")?;
    // Point 5: `{name, version}` or `{error}`, never `{}`.
    if version.contains_key("error") {
        keys(version, &set(&["error"]), "Version")?;
        non_empty_string(&v["error"], "Version.error")?;
    } else {
        keys(version, &set(&["name", "version"]), "point 5: Version")?;
        string(&v["name"], "Version.name")?;
        string(&v["version"], "Version.version")?;
    }
    Ok(())
}

// ---- the JSON types Go writes ----

fn set<'a>(keys: &[&'a str]) -> BTreeSet<&'a str> {
    keys.iter().copied().collect()
}

fn keys(o: &Map<String, Value>, want: &BTreeSet<&str>, what: &str) -> Result<(), String> {
    let got: BTreeSet<&str> = o.keys().map(String::as_str).collect();
    if &got == want {
        Ok(())
    } else {
        Err(format!("{what}: keys {got:?}, upstream has {want:?}"))
    }
}

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{what} is not an object: {v}"))
}

fn array<'a>(v: &'a Value, what: &str) -> Result<&'a Vec<Value>, String> {
    v.as_array()
        .ok_or_else(|| format!("{what} is not an array: {v}"))
}

fn string<'a>(v: &'a Value, what: &str) -> Result<&'a str, String> {
    v.as_str()
        .ok_or_else(|| format!("{what} is not a string: {v}"))
}

fn non_empty_string<'a>(v: &'a Value, what: &str) -> Result<&'a str, String> {
    let s = string(v, what)?;
    if s.is_empty() {
        return Err(format!("{what} is \"\" (omitempty would leave it out)"));
    }
    Ok(s)
}

fn bool_of(v: &Value, what: &str) -> Result<bool, String> {
    v.as_bool()
        .ok_or_else(|| format!("{what} is not a bool: {v}"))
}

fn integer(v: &Value, what: &str) -> Result<i64, String> {
    v.as_i64()
        .ok_or_else(|| format!("{what} is not an integer: {v}"))
}

fn u16_of(v: &Value, what: &str) -> Result<(), String> {
    v.as_u64()
        .filter(|n| u16::try_from(*n).is_ok())
        .map(|_| ())
        .ok_or_else(|| format!("{what} is not a uint16: {v}"))
}

/// A Go `error` made readable by the tester (`ReportError`): `{"Message": "..."}`.
fn message<'a>(v: &'a Value, what: &str) -> Result<&'a str, String> {
    keys(object(v, what)?, &set(&["Message"]), what)?;
    string(&v["Message"], what)
}

fn nullable_message(v: &Value, what: &str) -> Result<(), String> {
    if v.is_null() {
        Ok(())
    } else {
        message(v, what).map(|_| ())
    }
}

/// A Go `[]string`: `null` when nil, never `[]` (every slice here is nil when empty).
fn nullable_strings(v: &Value, what: &str) -> Result<(), String> {
    if v.is_null() {
        return Ok(());
    }
    let items = array(v, what)?;
    if items.is_empty() {
        return Err(format!("{what} is [] (Go gives null for none)"));
    }
    for item in items {
        string(item, what)?;
    }
    Ok(())
}
