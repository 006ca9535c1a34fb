//! The real binary's stderr as lines, read on a thread as they come, for tests that wait (bounded) for a log line.

use std::io::{BufRead as _, BufReader};
use std::process::Child;
use std::sync::mpsc;
use std::time::Duration;

/// Every line the child has logged so far, and the ones still to come.
pub struct Log {
    rx: mpsc::Receiver<String>,
    pub lines: Vec<String>,
}

impl Log {
    /// Takes `child`'s stderr (spawned with `Stdio::piped()`) and starts reading it.
    pub fn capture(child: &mut Child) -> Self {
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            rx,
            lines: Vec::new(),
        }
    }

    /// Waits until a line contains `needle`, each line at most `bound` after the one before; panics with `what`
    /// and the log so far when none does.
    pub fn wait_for(&mut self, needle: &str, bound: Duration, what: &str) {
        while !self.lines.iter().any(|l| l.contains(needle)) {
            match self.rx.recv_timeout(bound) {
                Ok(line) => self.lines.push(line),
                Err(e) => panic!("{what} ({e}); log so far:\n{}", self.lines.join("\n")),
            }
        }
    }

    /// Takes in the lines logged by now, without waiting.
    pub fn drain(&mut self) -> &[String] {
        self.lines.extend(self.rx.try_iter());
        &self.lines
    }
}
