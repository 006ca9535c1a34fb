//! Client discovery in plain words: what a user's client ends with, and the fix for each result. Shared by the
//! `check` text, the status page and the failure hints (`explain::hint` sends stage `client` here). Raw text
//! that may repeat what the server sent (its base URL); each renderer makes it safe.

use crate::report::{ClientOutcome, ClientReport, ClientResult};

/// One line: what a client that follows the spec ends with.
#[must_use]
pub fn summary(c: &ClientReport, server_name: &str) -> String {
    let base = c.base_url.as_deref().unwrap_or("");
    let latest = c
        .latest
        .as_deref()
        .map_or_else(String::new, |v| format!(" (spec {v})"));
    match (c.outcome, c.success()) {
        (ClientOutcome::Success, _) => {
            format!("clients find the homeserver at {base}{latest} through the well-known")
        }
        (ClientOutcome::Ignore, true) => format!(
            "no client well-known (404): clients try {base} themselves, and it answers{latest}; users of \
             @…:{server_name} still have to know it"
        ),
        (ClientOutcome::Ignore, false) => {
            format!("no client well-known (404), and {base} is not a homeserver clients can use")
        }
        (ClientOutcome::FailPrompt, _) => {
            "clients stop and ask the user for the homeserver URL (FAIL_PROMPT)".to_owned()
        }
        (ClientOutcome::FailError, _) => {
            "clients stop with an error: the well-known names no usable homeserver (FAIL_ERROR)"
                .to_owned()
        }
    }
}

/// What a result means in words (the status page's outcome column, the `check` line).
#[must_use]
pub fn outcome_words(outcome: ClientOutcome) -> &'static str {
    match outcome {
        ClientOutcome::Success => "works",
        ClientOutcome::Ignore => "no well-known",
        ClientOutcome::FailPrompt => "clients ask the user",
        ClientOutcome::FailError => "clients give up",
    }
}

/// The fix for a client discovery result, in plain words.
#[must_use]
pub fn fix(c: &ClientReport, server_name: &str) -> String {
    // The URL asked first: the spec's `https://<hostname>/.well-known/matrix/client`.
    let wk = c.hops.first().map_or_else(
        || format!("https://{server_name}/.well-known/matrix/client"),
        |(url, _)| url.to_owned(),
    );
    let base = c.base_url.as_deref().unwrap_or("the base URL");
    let serve = format!(
        "serve {wk} as 200 with {{\"m.homeserver\": {{\"base_url\": \"https://<your homeserver>\"}}}} and the \
         header Access-Control-Allow-Origin: *"
    );
    match c.result {
        ClientResult::Ok => "nothing to fix".to_owned(),
        ClientResult::NotFound => format!(
            "optional: {serve}, so that users can log in with their Matrix ID alone when the homeserver is \
             elsewhere"
        ),
        ClientResult::WellKnownUnreachable => format!(
            "make {wk} reachable over HTTPS on port 443 (or answer 404 if you publish none): clients stop at \
             this error"
        ),
        ClientResult::WellKnownTlsError => format!(
            "serve {wk} with a certificate valid for its host from a public CA: clients refuse this one"
        ),
        ClientResult::WellKnownHttpStatus | ClientResult::WellKnownEmpty => format!(
            "{serve}; a status other than 200 or 404, or an empty body, stops clients (answer 404 if you \
             publish none)"
        ),
        ClientResult::WellKnownNotJson | ClientResult::WellKnownTooLarge => format!(
            "{serve}: the body must be one small JSON object (often a proxy sends an HTML page here)"
        ),
        ClientResult::NoBaseUrl => format!("add \"m.homeserver\": {{\"base_url\": ...}} to {wk}"),
        ClientResult::IdentityServerNoBaseUrl => format!(
            "give \"m.identity_server\" a \"base_url\" in {wk}, or remove \"m.identity_server\""
        ),
        ClientResult::InvalidBaseUrl => format!(
            "make m.homeserver's base_url in {wk} a full URL such as https://matrix.example.org"
        ),
        ClientResult::InsecureBaseUrl => format!(
            "make m.homeserver's base_url in {wk} an https:// URL: web clients refuse plain HTTP"
        ),
        ClientResult::InvalidIdentityServerUrl => format!(
            "make m.identity_server's base_url in {wk} a full https:// URL, or remove m.identity_server"
        ),
        ClientResult::VersionsUnreachable | ClientResult::VersionsTlsError => format!(
            "make {base}/_matrix/client/versions reachable over HTTPS with a valid certificate: route \
             /_matrix/client to the homeserver's client listener"
        ),
        ClientResult::VersionsHttpStatus | ClientResult::VersionsInvalid => format!(
            "{base}/_matrix/client/versions must answer 200 with {{\"versions\": [...]}}: point base_url at \
             the homeserver, or route /_matrix/client there in the reverse proxy"
        ),
    }
}
