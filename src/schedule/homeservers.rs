//! The state of every configured homeserver (`report::homeserver::HomeserverView`): its last good destination
//! list and whether its last refresh worked, shared between the refresh tasks (writers) and the HTTP side.
//!
//! It keeps lists; it does not read them (`probe/homeserver.rs`) or schedule refreshes (`serve/homeservers.rs`).

use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use crate::report::homeserver::{Destination, HomeserverView};

/// One view per configured homeserver, in config order.
#[derive(Debug, Default)]
pub struct Homeservers {
    views: RwLock<Vec<Arc<HomeserverView>>>,
}

/// What one refresh brought: a complete list, or why there is none.
pub enum Refreshed {
    Good {
        destinations: Vec<Destination>,
        listed: usize,
        skipped_failing: usize,
        skipped_invalid: usize,
        truncated: bool,
    },
    Failed(String),
}

impl From<crate::probe::homeserver::Fetched> for Refreshed {
    /// A refresh that got the whole list (its pages and duration are for logs only).
    fn from(fetched: crate::probe::homeserver::Fetched) -> Self {
        Refreshed::Good {
            destinations: fetched.destinations,
            listed: fetched.listed,
            skipped_failing: fetched.skipped_failing,
            skipped_invalid: fetched.skipped_invalid,
            truncated: fetched.truncated,
        }
    }
}

impl Homeservers {
    /// Makes `names` the configured homeservers, in this order: the views of names that stay keep their last
    /// good list (a reload does not forget it), new ones start down and empty, the others go.
    pub fn configure(&self, names: &[String]) {
        let mut views = self.views.write().unwrap_or_else(PoisonError::into_inner);
        let old = std::mem::take(&mut *views);
        for name in names {
            let view = old
                .iter()
                .find(|v| &*v.name == name.as_str())
                .cloned()
                .unwrap_or_else(|| Arc::new(HomeserverView::new(Arc::from(name.as_str()))));
            views.push(view);
        }
    }

    /// Records a refresh of `name` that ended at `at`. A failed one keeps the last good list and marks the
    /// homeserver down. Ignored when `name` is no longer configured.
    pub fn update(&self, name: &str, refreshed: Refreshed, at: SystemTime) {
        let mut views = self.views.write().unwrap_or_else(PoisonError::into_inner);
        let Some(slot) = views.iter_mut().find(|v| &*v.name == name) else {
            return;
        };
        let mut view = HomeserverView::clone(slot);
        view.refreshed_at = Some(at);
        match refreshed {
            Refreshed::Good {
                destinations,
                listed,
                skipped_failing,
                skipped_invalid,
                truncated,
            } => {
                view.up = true;
                view.error = None;
                view.destinations = Arc::from(destinations);
                view.listed = listed;
                view.skipped_failing = skipped_failing;
                view.skipped_invalid = skipped_invalid;
                view.truncated = truncated;
                view.good_at = Some(at);
            }
            Refreshed::Failed(why) => {
                view.up = false;
                view.error = Some(why);
            }
        }
        *slot = Arc::new(view);
    }

    /// Every configured homeserver's view, in config order.
    #[must_use]
    pub fn snapshot(&self) -> Vec<Arc<HomeserverView>> {
        self.views
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The view of `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<Arc<HomeserverView>> {
        self.snapshot().into_iter().find(|v| &*v.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(name: &str) -> Destination {
        Destination {
            server_name: Arc::from(name),
            retry_last_ts: 0,
            retry_interval: 0,
            failure_ts: None,
        }
    }

    fn good(names: &[&str]) -> Refreshed {
        Refreshed::Good {
            destinations: names.iter().map(|n| dest(n)).collect(),
            listed: names.len(),
            skipped_failing: 0,
            skipped_invalid: 0,
            truncated: false,
        }
    }

    #[test]
    fn a_failed_refresh_keeps_the_last_good_list_and_a_reload_too() {
        let h = Homeservers::default();
        h.configure(&["home".to_owned()]);
        assert!(!h.get("home").unwrap().up);
        h.update("home", good(&["a.example"]), SystemTime::UNIX_EPOCH);
        h.update(
            "home",
            Refreshed::Failed("HTTP 500".into()),
            SystemTime::now(),
        );
        let v = h.get("home").unwrap();
        assert!(!v.up);
        assert_eq!(v.error.as_deref(), Some("HTTP 500"));
        assert_eq!(v.destinations.len(), 1);
        h.configure(&["other".to_owned(), "home".to_owned()]);
        assert_eq!(h.get("home").unwrap().destinations.len(), 1);
        h.configure(&[]);
        assert!(h.get("home").is_none());
        h.update("home", good(&[]), SystemTime::now());
        assert!(h.snapshot().is_empty());
    }
}
