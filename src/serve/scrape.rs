//! `/metrics` compressed: gzip when the scraper accepts it (Prometheus always asks for it), and one render shared by
//! the gzip scrapes that arrive while it runs (two Prometheus replicas scraping the same exporter).
//!
//! A shared render publishes its compressed chunks into a list that lives only as long as the render and the
//! scrapes reading it: the list is dropped with its last reader, so no rendered body is held between scrapes. A
//! scrape that arrives after a render finished starts a new one. Compressed text is about a tenth of the plain
//! text, so keeping a render's chunks until its slowest reader is done costs little; plain scrapes keep the
//! backpressured stream of `streaming.rs` and are not shared.
//!
//! The level is [`LEVEL`]: measured with `examples/render_metrics.rs`, compressing at it costs well under half
//! the CPU of rendering the text it compresses (BENCHMARKS.md).

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Write as _};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use futures_util::Stream;
use http::HeaderMap;
use http::header::ACCEPT_ENCODING;
use tokio::sync::watch;

use crate::render::metrics::Format;
use crate::serve::streaming::CHUNK;

/// The gzip level of `/metrics` (1 of 9: the fastest; see the module docs).
pub const LEVEL: u32 = 1;

/// Whether `Accept-Encoding` allows gzip: `gzip` (or `x-gzip`, or `*`) listed without `q=0`.
#[must_use]
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or_default();
            let wanted = ["gzip", "x-gzip", "*"]
                .iter()
                .any(|c| coding.eq_ignore_ascii_case(c));
            let refused = parts.any(|p| {
                p.split_once('=').is_some_and(|(k, q)| {
                    k.trim().eq_ignore_ascii_case("q")
                        && q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
                })
            });
            wanted && !refused
        })
}

/// The gzip renders running now, one per format at most; each held weakly, so a finished render's chunks go
/// with its last reader.
#[derive(Default)]
pub struct SharedScrapes {
    running: Mutex<HashMap<FormatKey, Weak<Render>>>,
}

/// `Format` as a map key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum FormatKey {
    OpenMetrics,
    Text004,
}

impl From<Format> for FormatKey {
    fn from(f: Format) -> Self {
        match f {
            Format::OpenMetrics => Self::OpenMetrics,
            Format::Text004 => Self::Text004,
        }
    }
}

/// One gzip render: its compressed chunks so far, and how many there are (and whether it ended) for readers
/// to wait on.
pub struct Render {
    chunks: Mutex<Vec<Bytes>>,
    progress: watch::Sender<Progress>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Progress {
    published: usize,
    /// `Some(true)` when the render ended complete, `Some(false)` when it failed.
    ended: Option<bool>,
}

impl SharedScrapes {
    /// The running gzip render of `format` to join, or a new one; `true` when the caller must run the new
    /// render (with [`Render::writer`] on a blocking thread).
    pub fn join(&self, format: Format) -> (Arc<Render>, bool) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let key = FormatKey::from(format);
        if let Some(render) = running.get(&key).and_then(Weak::upgrade)
            && render.progress.borrow().ended.is_none()
        {
            return (render, false);
        }
        let (progress, _) = watch::channel(Progress {
            published: 0,
            ended: None,
        });
        let render = Arc::new(Render {
            chunks: Mutex::new(Vec::new()),
            progress,
        });
        running.insert(key, Arc::downgrade(&render));
        (render, true)
    }
}

impl Render {
    /// The writing end: an [`fmt::Write`] that compresses as it goes. Call [`GzipWriter::finish`] at the end; a
    /// writer dropped unfinished ends every reader's stream with an error.
    #[must_use]
    pub fn writer(self: &Arc<Self>) -> GzipWriter {
        GzipWriter {
            encoder: Some(GzEncoder::new(
                Publisher {
                    render: self.clone(),
                    buf: Vec::with_capacity(CHUNK),
                },
                Compression::new(LEVEL),
            )),
        }
    }

    /// The whole compressed body from its first chunk, as the render publishes it.
    pub fn stream(self: Arc<Self>) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
        let progress = self.progress.subscribe();
        futures_util::stream::unfold(Some((self, progress, 0usize)), |state| async move {
            let (render, mut progress, next) = state?;
            loop {
                let now = *progress.borrow_and_update();
                if next < now.published {
                    let chunk =
                        render.chunks.lock().unwrap_or_else(PoisonError::into_inner)[next].clone();
                    return Some((Ok(chunk), Some((render, progress, next + 1))));
                }
                match now.ended {
                    Some(true) => return None,
                    Some(false) => {
                        return Some((
                            Err(io::Error::other("the answer stopped before its end")),
                            None,
                        ));
                    }
                    None => {
                        if progress.changed().await.is_err() {
                            return None;
                        }
                    }
                }
            }
        })
    }

    fn publish(&self, chunk: Vec<u8>) {
        let mut chunks = self.chunks.lock().unwrap_or_else(PoisonError::into_inner);
        chunks.push(Bytes::from(chunk));
        let published = chunks.len();
        drop(chunks);
        self.progress.send_modify(|p| p.published = published);
    }

    fn end(&self, complete: bool) {
        self.progress.send_modify(|p| {
            if p.ended.is_none() {
                p.ended = Some(complete);
            }
        });
    }

    /// Whether anyone still reads this render (the writer's own reference aside).
    fn has_readers(self: &Arc<Self>) -> bool {
        self.progress.receiver_count() > 0
    }
}

/// The compressed output, cut into chunks of [`CHUNK`] bytes for the readers.
struct Publisher {
    render: Arc<Render>,
    buf: Vec<u8>,
}

impl io::Write for Publisher {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        // Every reader hung up: stop compressing (and so rendering) for nobody.
        if !self.render.has_readers() {
            return Err(io::Error::other("every reader is gone"));
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
            self.render.publish(full);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The rendering end of a shared gzip render.
pub struct GzipWriter {
    encoder: Option<GzEncoder<Publisher>>,
}

impl GzipWriter {
    /// Ends the gzip stream, publishes what is left and marks the render complete.
    pub fn finish(mut self) -> fmt::Result {
        let encoder = self.encoder.take().ok_or(fmt::Error)?;
        let mut publisher = encoder.finish().map_err(|_| fmt::Error)?;
        let rest = std::mem::take(&mut publisher.buf);
        if !rest.is_empty() {
            publisher.render.publish(rest);
        }
        publisher.render.end(true);
        Ok(())
    }
}

impl fmt::Write for GzipWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.encoder
            .as_mut()
            .ok_or(fmt::Error)?
            .write_all(s.as_bytes())
            .map_err(|_| fmt::Error)
    }
}

impl Drop for GzipWriter {
    fn drop(&mut self) {
        if let Some(encoder) = self.encoder.take() {
            encoder.get_ref().render.end(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;
    use std::io::Read as _;

    use flate2::read::GzDecoder;
    use futures_util::StreamExt as _;
    use http::HeaderValue;

    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn accept_encoding_is_read_as_rfc_9110_says() {
        for yes in [
            "gzip",
            "deflate, gzip",
            "GZIP;q=0.5",
            "x-gzip",
            "*",
            "br;q=1.0, gzip;q=0.8",
        ] {
            assert!(accepts_gzip(&headers(yes)), "{yes}");
        }
        for no in [
            "",
            "identity",
            "deflate, br",
            "gzip;q=0",
            "gzip; q=0.0",
            "gzipx",
        ] {
            assert!(!accepts_gzip(&headers(no)), "{no}");
        }
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    fn gunzip(chunks: &[Bytes]) -> String {
        let mut text = String::new();
        GzDecoder::new(chunks.concat().as_slice())
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    #[tokio::test]
    async fn two_scrapes_during_one_render_share_it_and_both_get_the_whole_body() {
        let shared = SharedScrapes::default();
        let (render, start) = shared.join(Format::Text004);
        assert!(start);
        let first = render.clone().stream();
        let mut writer = render.writer();
        let line = |i: usize| {
            format!(
                "matrix_federation_probe_duration_seconds{{server_name=\"s{i}.example\"}} {}\n",
                i * 7919 % 10007
            )
        };
        for i in 0..20_000 {
            writer.write_str(&line(i)).unwrap();
        }
        // A second scrape while the render runs joins it and still reads from the first chunk.
        let (joined, start_again) = shared.join(Format::Text004);
        assert!(!start_again);
        assert!(Arc::ptr_eq(&render, &joined));
        let second = joined.stream();
        // Another format is another render.
        assert!(shared.join(Format::OpenMetrics).1);
        for i in 20_000..40_000 {
            writer.write_str(&line(i)).unwrap();
        }
        let writing = tokio::task::spawn_blocking(move || writer.finish());
        let a: Vec<Bytes> = first.map(Result::unwrap).collect().await;
        let b: Vec<Bytes> = second.map(Result::unwrap).collect().await;
        writing.await.unwrap().unwrap();
        assert_eq!(a, b);
        assert!(a.len() > 1, "more than one chunk");
        assert_eq!(gunzip(&a), (0..40_000).map(line).collect::<String>());
        // After the end, a new scrape starts a new render, and the old chunks go with their last reader.
        let weak = Arc::downgrade(&render);
        drop(render);
        assert!(weak.upgrade().is_none(), "no body is kept between scrapes");
        assert!(shared.join(Format::Text004).1);
    }

    #[tokio::test]
    async fn a_render_that_fails_ends_its_readers_with_an_error() {
        let shared = SharedScrapes::default();
        let (render, _) = shared.join(Format::Text004);
        let stream = render.clone().stream();
        let mut writer = render.writer();
        writer.write_str("partial").unwrap();
        drop(writer);
        let items: Vec<io::Result<Bytes>> = stream.collect().await;
        assert!(items.last().unwrap().is_err());
    }

    #[tokio::test]
    async fn a_render_nobody_reads_stops() {
        let shared = SharedScrapes::default();
        let (render, _) = shared.join(Format::Text004);
        let mut writer = render.writer();
        let big = "x".repeat(CHUNK);
        // No stream was ever taken: the first compressed bytes that reach the publisher fail the write.
        let result = (0..1000).try_for_each(|i| writer.write_str(&format!("{big}{i}")));
        assert!(result.is_err());
    }
}
