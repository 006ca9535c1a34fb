//! A rendered text streamed as it is written: a [`fmt::Write`] on a blocking thread that hands fixed-size
//! chunks to an async response body, so `/metrics` for 10,000 servers (tens of MB of text) never sits in memory
//! whole, and the first bytes leave while the rest is still being rendered.
//!
//! The writer blocks when the reader is [`DEPTH`] chunks behind (backpressure), and fails with [`fmt::Error`]
//! once the reader is gone (the client hung up), which stops the render. A writer dropped before
//! [`ChunkWriter::finish`] (a failed or panicked render) ends the stream with an error, so the client sees a
//! broken answer rather than a complete-looking truncated one.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc;

/// The size of one chunk.
pub const CHUNK: usize = 64 * 1024;
/// Chunks rendered ahead of the client at most.
pub const DEPTH: usize = 4;

/// The writing end: use it on a blocking thread (it blocks on a slow reader). Call [`ChunkWriter::finish`] at
/// the end, or the last partial chunk is lost.
pub struct ChunkWriter {
    buf: String,
    tx: mpsc::Sender<Bytes>,
    finished: Arc<AtomicBool>,
}

/// A writer and the stream of chunks it produces (for `axum::body::Body::from_stream`).
pub fn channel() -> (
    ChunkWriter,
    impl Stream<Item = io::Result<Bytes>> + Send + 'static,
) {
    let (tx, rx) = mpsc::channel(DEPTH);
    let finished = Arc::new(AtomicBool::new(false));
    let done = finished.clone();
    let stream = futures_util::stream::unfold(Some(rx), move |rx| {
        let done = done.clone();
        async move {
            let mut rx = rx?;
            match rx.recv().await {
                Some(chunk) => Some((Ok(chunk), Some(rx))),
                None if done.load(Ordering::Acquire) => None,
                None => Some((
                    Err(io::Error::other("the answer stopped before its end")),
                    None,
                )),
            }
        }
    });
    (
        ChunkWriter {
            buf: String::with_capacity(CHUNK),
            tx,
            finished,
        },
        stream,
    )
}

impl ChunkWriter {
    /// Sends what is buffered and marks the stream complete. Fails when the reader is gone.
    pub fn finish(mut self) -> fmt::Result {
        self.send()?;
        self.finished.store(true, Ordering::Release);
        Ok(())
    }

    fn send(&mut self) -> fmt::Result {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, String::with_capacity(CHUNK));
        self.tx
            .blocking_send(Bytes::from(full))
            .map_err(|_| fmt::Error)
    }
}

impl fmt::Write for ChunkWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.buf.len() + s.len() > CHUNK {
            self.send()?;
        }
        // A piece longer than a chunk goes out as one larger chunk.
        self.buf.push_str(s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use futures_util::StreamExt as _;

    use super::*;

    #[tokio::test]
    async fn chunks_arrive_in_order_and_whole() {
        let (mut writer, stream) = channel();
        let piece = "0123456789abcdef".repeat(1000);
        let writing = tokio::task::spawn_blocking(move || {
            for _ in 0..100 {
                writer.write_str(&piece)?;
            }
            writer.finish()
        });
        let chunks: Vec<Bytes> = stream.map(|c| c.unwrap()).collect().await;
        writing.await.unwrap().unwrap();
        assert!(chunks.iter().all(|c| c.len() <= CHUNK));
        let all: Vec<u8> = chunks.concat();
        assert_eq!(all, "0123456789abcdef".repeat(100_000).as_bytes());
    }

    #[tokio::test]
    async fn a_writer_dropped_unfinished_ends_the_stream_with_an_error() {
        let (mut writer, stream) = channel();
        let writing = tokio::task::spawn_blocking(move || {
            writer.write_str(&"x".repeat(CHUNK))?;
            writer.write_str("y")?;
            drop(writer);
            fmt::Result::Ok(())
        });
        let items: Vec<io::Result<Bytes>> = stream.collect().await;
        writing.await.unwrap().unwrap();
        assert_eq!(items.len(), 2, "one chunk, then the error");
        assert!(items[0].is_ok());
        assert!(items[1].is_err());
    }

    #[tokio::test]
    async fn a_gone_reader_stops_the_writer() {
        let (mut writer, stream) = channel();
        drop(stream);
        let result = tokio::task::spawn_blocking(move || {
            for _ in 0..CHUNK {
                writer.write_str("0123456789")?;
            }
            writer.finish()
        })
        .await
        .unwrap();
        assert_eq!(result, Err(fmt::Error));
    }
}
