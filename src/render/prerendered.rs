//! Label sets rendered once per scrape. Every per-address family repeats the same `server_name`, extra labels,
//! `address` and `family` for each address; formatting and escaping them sample by sample was most of the
//! work of a scrape. [`address_head`] renders them once, and [`Prerendered`] writes the result in one piece,
//! byte for byte what the label-by-label encoding writes.

use std::fmt::{self, Write as _};
use std::net::SocketAddr;

use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};

use crate::report::Labels;

/// An address's label set, rendered: `head` is everything up to the value of the last label (`family`).
#[derive(Clone, Copy)]
pub struct Prerendered<'a> {
    head: &'a str,
    family: &'static str,
}

impl<'a> Prerendered<'a> {
    /// `head` from [`address_head`]; `family` is `ipv4` or `ipv6`.
    #[must_use]
    pub fn new(head: &'a str, family: &'static str) -> Self {
        Self { head, family }
    }
}

/// `server_name="…",<extra>="…",address="…",family`: the labels of one address up to the value of `family`,
/// escaped as the text formats require.
#[must_use]
pub fn address_head(server_name: &str, extra: &Labels, address: SocketAddr) -> String {
    let mut head = String::with_capacity(64 + server_name.len());
    head.push_str("server_name=\"");
    escape_into(&mut head, server_name);
    for (name, value) in extra {
        head.push_str("\",");
        head.push_str(name);
        head.push_str("=\"");
        escape_into(&mut head, value);
    }
    // Writing to a String cannot fail.
    let _ = write!(head, "\",address=\"{address}\",family");
    head
}

/// The label-value escaping of both text formats: backslash, double quote and newline.
fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

impl EncodeLabelSet for Prerendered<'_> {
    fn encode(&self, enc: &mut LabelSetEncoder) -> fmt::Result {
        // The encoder writes `key="value"`: the rendered head goes out raw as the "key" of one label (the
        // encoder adds the separator before it), and `family`'s value closes it.
        let mut label = enc.encode_label();
        let mut key = label.encode_label_key()?;
        key.write_str(self.head)?;
        let mut value = key.encode_label_value()?;
        value.write_str(self.family)?;
        value.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_escape_values_and_keep_order() {
        let extra: Labels = [("team".to_owned(), "a\"b\\c\nd".to_owned())].into();
        let head = address_head(
            "ex\"ample.org",
            &extra,
            "[2001:db8::1]:8448".parse().unwrap(),
        );
        assert_eq!(
            head,
            r#"server_name="ex\"ample.org",team="a\"b\\c\nd",address="[2001:db8::1]:8448",family"#
        );
        let plain = address_head(
            "example.org",
            &Labels::new(),
            "192.0.2.1:443".parse().unwrap(),
        );
        assert_eq!(
            plain,
            r#"server_name="example.org",address="192.0.2.1:443",family"#
        );
    }
}
