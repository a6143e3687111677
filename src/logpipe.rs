//! Log lines leave through a thread of their own, so that no request waits
//! for the disk to take its log line.
//!
//! With the log on a file beside the database (`yizhan serve 2> log`), a
//! commit's fsync held up writes to the log file (ext4 orders them behind
//! its journal), and each request's access-log line held up the worker
//! thread that wrote it: a booking crowd then ran in small, slow batches.
//! Here a line is handed over in memory; the thread writes whatever has
//! gathered in one go. When more than [`CAPACITY`] lines wait, new ones are
//! dropped and counted (a line says how many), never waited for.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

/// Lines waiting at most.
pub const CAPACITY: usize = 65_536;

enum Msg {
    Line(Vec<u8>),
    /// Answer once every line before it is written.
    Flush(SyncSender<()>),
}

/// Where log lines go (`tracing_subscriber`'s `MakeWriter`): cheap to clone.
#[derive(Clone)]
pub struct LogPipe {
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
}

/// Waits, when dropped, for the lines logged before (at most a second): the
/// last lines of a process that exits are not lost.
pub struct FlushOnDrop(LogPipe);

impl LogPipe {
    /// A pipe to `out`, written by a thread of its own.
    pub fn new(out: impl Write + Send + 'static) -> (LogPipe, FlushOnDrop) {
        let (tx, rx) = sync_channel(CAPACITY);
        let dropped = Arc::new(AtomicU64::new(0));
        let pipe = LogPipe {
            tx,
            dropped: dropped.clone(),
        };
        std::thread::Builder::new()
            .name("yizhan-log".into())
            .spawn(move || pump(rx, out, &dropped))
            .expect("the log's thread starts");
        (pipe.clone(), FlushOnDrop(pipe))
    }

    /// Wait until every line logged before is written (at most `timeout`).
    pub fn flush(&self, timeout: Duration) {
        let (ack, done) = sync_channel(1);
        if self.tx.send(Msg::Flush(ack)).is_ok() {
            let _ = done.recv_timeout(timeout);
        }
    }
}

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        self.0.flush(Duration::from_secs(1));
    }
}

fn pump(rx: Receiver<Msg>, out: impl Write, dropped: &AtomicU64) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let mut acks = Vec::new();
    while let Ok(first) = rx.recv() {
        // Everything that gathered meanwhile, in one write.
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Msg::Line(line) => {
                    let _ = out.write_all(&line);
                }
                Msg::Flush(ack) => acks.push(ack),
            }
            next = rx.try_recv().ok();
        }
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let _ = writeln!(
                out,
                "(the log fell behind: {lost} lines were dropped, not waited for)"
            );
        }
        let _ = out.flush();
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
    }
}

impl Write for LogPipe {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.tx.try_send(Msg::Line(buf.to_vec())) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogPipe {
    type Writer = LogPipe;

    fn make_writer(&'a self) -> LogPipe {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A `Write` whose bytes the test can read.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_whole_and_in_order_by_the_time_flush_returns() {
        let sink = Shared::default();
        let (pipe, _guard) = LogPipe::new(sink.clone());
        let want: String = (0..10_000).map(|i| format!("line {i}\n")).collect();
        for i in 0..10_000 {
            pipe.clone()
                .write_all(format!("line {i}\n").as_bytes())
                .unwrap();
        }
        pipe.flush(Duration::from_secs(30));
        assert_eq!(
            String::from_utf8(sink.0.lock().unwrap().clone()).unwrap(),
            want
        );
    }

    #[test]
    fn a_guard_dropped_waits_for_the_lines_before_it() {
        let sink = Shared::default();
        let (pipe, guard) = LogPipe::new(sink.clone());
        pipe.clone().write_all(b"last words\n").unwrap();
        drop(guard);
        assert_eq!(&sink.0.lock().unwrap()[..], b"last words\n");
    }

    /// A writer that says when it is entered and blocks until let go.
    struct Gate {
        entered: std::sync::mpsc::Sender<()>,
        open: Arc<(Mutex<bool>, std::sync::Condvar)>,
        sink: Shared,
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.entered.send(());
            let (open, cv) = &*self.open;
            let mut g = open.lock().unwrap();
            while !*g {
                g = cv.wait(g).unwrap();
            }
            self.sink.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_disk_drops_and_counts_lines_instead_of_blocking_the_logger() {
        let open = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let (entered, stuck) = std::sync::mpsc::channel();
        let sink = Shared::default();
        let gate = Gate {
            entered,
            open: open.clone(),
            sink: sink.clone(),
        };
        let (pipe, _guard) = LogPipe::new(gate);
        // The pump takes the first line and sticks writing it out.
        pipe.clone().write_all(b"first\n").unwrap();
        stuck.recv().unwrap();
        // CAPACITY lines fill the channel; the rest are dropped at once.
        let extra = 100;
        for _ in 0..(CAPACITY + extra) {
            pipe.clone().write_all(b"x\n").unwrap();
        }
        assert_eq!(pipe.dropped.load(Ordering::Relaxed), extra as u64);
        {
            let (flag, cv) = &*open;
            *flag.lock().unwrap() = true;
            cv.notify_all();
        }
        pipe.flush(Duration::from_secs(30));
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert!(text.starts_with("first\n"));
        assert_eq!(text.matches("x\n").count(), CAPACITY);
        assert!(
            text.ends_with("(the log fell behind: 100 lines were dropped, not waited for)\n"),
            "{}",
            &text[text.len().saturating_sub(200)..]
        );
    }
}
