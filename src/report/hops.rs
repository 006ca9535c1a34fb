//! [`Hops`]: the URLs one fetch asked, in order, each with the HTTP status it answered.

use std::fmt;

/// The URLs one fetch (a well-known, client discovery, the support document) asked, in order, with the HTTP
/// status each answered (0 when no answer came). Kept as one string, `<status>:<length>:<url>` per hop, so a
/// stored report holds one allocation for the whole list instead of a `Vec` and a `String` per URL (three such
/// lists per server). Any text may be a URL here; the length prefix keeps it exact.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Hops(String);

impl Hops {
    pub fn push(&mut self, url: &str, status: u16) {
        use fmt::Write as _;
        // Writing to a `String` cannot fail.
        let _ = write!(self.0, "{status}:{}:{url}", url.len());
    }

    /// Every hop, first asked first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u16)> + '_ {
        let mut rest = self.0.as_str();
        std::iter::from_fn(move || {
            let (status, after) = rest.split_once(':')?;
            let (len, after) = after.split_once(':')?;
            let len: usize = len.parse().ok()?;
            let url = after.get(..len)?;
            rest = &after[len..];
            Some((url, status.parse().ok()?))
        })
    }

    #[must_use]
    pub fn first(&self) -> Option<(&str, u16)> {
        self.iter().next()
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Returns the spare capacity (see `schedule/compact.rs`).
    pub fn shrink_to_fit(&mut self) {
        self.0.shrink_to_fit();
    }
}

impl<S: AsRef<str>> FromIterator<(S, u16)> for Hops {
    fn from_iter<I: IntoIterator<Item = (S, u16)>>(hops: I) -> Self {
        let mut all = Self::default();
        for (url, status) in hops {
            all.push(url.as_ref(), status);
        }
        all
    }
}

impl fmt::Debug for Hops {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops_read_back_exactly_in_order_whatever_the_url_holds() {
        let urls = [
            ("https://example.org/.well-known/matrix/server", 301),
            ("https://www.example.org/a:b:12:c", 0),
            ("weird\n3:2:xy ✔", 200),
            ("", 404),
        ];
        let hops: Hops = urls.into_iter().collect();
        let got: Vec<_> = hops.iter().collect();
        assert_eq!(got, urls);
        assert_eq!(hops.len(), 4);
        assert_eq!(hops.first(), Some(urls[0]));
        assert!(Hops::default().is_empty());
        assert_eq!(Hops::default().first(), None);
    }
}
