//! The writer: commands on events and bookings wait in a queue, and a task
//! takes what is waiting, runs it as one batch ([`super::batch`]: decided one
//! by one in arrival order, committed once) and only then answers each
//! caller. No timer: a lone command on an idle server runs at once, alone; a
//! crowd's commands share a commit.
//!
//! The queue is bounded by how long a command would wait: the writer keeps
//! the recent cost of a command (a batch's time over its size), and a caller
//! is told to come back later (`Err(wait)` from [`Writer::admit`]) when the
//! commands ahead of it would take longer than its bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::commands::{Answer, Command};
use super::{DynStore, StoreError};

/// Commands in one batch at most.
pub const MAX_BATCH: usize = 1024;

/// How long commands may queue, and how many.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueBounds {
    /// A command that would wait longer than this is refused at once.
    pub max_wait: Duration,
    /// Commands waiting at most.
    pub max_depth: usize,
}

impl Default for QueueBounds {
    fn default() -> QueueBounds {
        QueueBounds {
            max_wait: Duration::from_secs(5),
            max_depth: 50_000,
        }
    }
}

struct Job {
    cmd: Command,
    reply: oneshot::Sender<Result<Answer, StoreError>>,
}

/// What the writer knows of itself, shared with callers.
#[derive(Default)]
struct Gauge {
    /// Commands queued or in the batch under way.
    depth: AtomicUsize,
    /// Recent cost of a command, in nanoseconds (0: nothing run yet).
    cost_ns: AtomicU64,
    batches: AtomicU64,
    commands: AtomicU64,
}

/// The queue in front of the one write path (see the module's notes).
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::UnboundedSender<Job>,
    gauge: Arc<Gauge>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("depth", &self.depth())
            .finish()
    }
}

/// A command's cost before any has run: an fsync on a slow disk.
const FIRST_GUESS: Duration = Duration::from_millis(2);

impl Writer {
    /// Start the writer's task on `store` (stops when every handle is dropped).
    pub fn start(store: DynStore) -> Writer {
        let (tx, rx) = mpsc::unbounded_channel();
        let gauge = Arc::new(Gauge::default());
        tokio::spawn(run(store, rx, gauge.clone()));
        Writer { tx, gauge }
    }

    /// Commands queued or under way.
    pub fn depth(&self) -> usize {
        self.gauge.depth.load(Ordering::Relaxed)
    }

    /// Batches and commands run so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.gauge.batches.load(Ordering::Relaxed),
            self.gauge.commands.load(Ordering::Relaxed),
        )
    }

    /// How long a command queued now would wait, as recent batches went.
    pub fn expected_wait(&self) -> Duration {
        let cost = match self.gauge.cost_ns.load(Ordering::Relaxed) {
            0 => FIRST_GUESS,
            ns => Duration::from_nanos(ns),
        };
        cost.saturating_mul(self.depth().min(u32::MAX as usize) as u32)
    }

    /// May a command join the queue? `Err(wait)`: not within `bounds`;
    /// `wait` is how long the queue needs to drain as things go.
    pub fn admit(&self, bounds: &QueueBounds) -> Result<(), Duration> {
        let wait = self.expected_wait();
        if wait > bounds.max_wait || self.depth() >= bounds.max_depth {
            Err(wait.max(Duration::from_secs(1)))
        } else {
            Ok(())
        }
    }

    /// Queue `cmd` and wait for its answer, given after its batch committed.
    pub async fn run(&self, cmd: Command) -> Result<Answer, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.gauge.depth.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(Job { cmd, reply }).is_err() {
            self.gauge.depth.fetch_sub(1, Ordering::Relaxed);
            return Err(StoreError::Busy("the writer has stopped".into()));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::Corrupt("the writer dropped a command".into())))
    }
}

async fn run(store: DynStore, mut rx: mpsc::UnboundedReceiver<Job>, gauge: Arc<Gauge>) {
    let mut buf = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut buf, MAX_BATCH).await > 0 {
        let taken = buf.len();
        // A caller that has gone (its request timed out) never starts.
        let (cmds, replies): (Vec<Command>, Vec<_>) = buf
            .drain(..)
            .filter(|j| !j.reply.is_closed())
            .map(|j| (j.cmd, j.reply))
            .unzip();
        let started = Instant::now();
        let n = cmds.len();
        let answers = if n == 0 {
            Vec::new()
        } else {
            let store = store.clone();
            // Its own task: a panic fails this batch's callers, not the writer.
            tokio::spawn(async move { super::batch::run(&*store, &cmds).await })
                .await
                .unwrap_or_else(|e| {
                    tracing::error!(error = %e, commands = n, "a batch panicked");
                    (0..n)
                        .map(|_| Err(StoreError::Corrupt("the batch failed".into())))
                        .collect()
                })
        };
        if n > 0 {
            let per = (started.elapsed().as_nanos() / n as u128).min(u64::MAX as u128) as u64;
            let old = gauge.cost_ns.load(Ordering::Relaxed);
            // Weighted by the batch's size: a crowd's big batches soon
            // outweigh the idle server's batches of one.
            let w = (n as u64).min(64);
            let new = if old == 0 {
                per
            } else {
                (old * 64 + per * w) / (64 + w)
            };
            gauge.cost_ns.store(new.max(1), Ordering::Relaxed);
            gauge.batches.fetch_add(1, Ordering::Relaxed);
            gauge.commands.fetch_add(n as u64, Ordering::Relaxed);
        }
        gauge.depth.fetch_sub(taken, Ordering::Relaxed);
        for (reply, answer) in replies.into_iter().zip(answers) {
            let _ = reply.send(answer);
        }
    }
}
