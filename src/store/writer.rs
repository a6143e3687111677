//! The writer: commands on events and bookings wait in a queue, and a task
//! takes what is waiting, runs it as one batch ([`super::batch`]: decided one
//! by one in arrival order, committed once) and only then answers each
//! caller. No timer: a lone command on an idle server runs at once, alone; a
//! crowd's commands share a commit.
//!
//! The queue is bounded by how long a command would wait: the writer keeps
//! what a batch costs (a commit, mostly) and what each command in it adds
//! (recent big batches' time over their size), and a caller is told to come
//! back later (`Err(wait)` from [`Writer::admit`]) when the commands ahead of
//! it would take longer than its bound.

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
    /// Recent time of a small batch (its commit, mostly), in nanoseconds
    /// (0: none run yet).
    batch_ns: AtomicU64,
    /// Recent time a command adds to a big batch, in nanoseconds (0: none
    /// run yet).
    command_ns: AtomicU64,
    batches: AtomicU64,
    commands: AtomicU64,
    /// Time spent running batches, in nanoseconds: its rate is how busy the
    /// writer is (1: always).
    busy_ns: AtomicU64,
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

/// A batch's and a command's cost before any has run.
const FIRST_GUESS: (Duration, Duration) = (Duration::from_millis(2), Duration::from_micros(100));

/// Batches of at least this many commands tell what a command costs.
const BIG: usize = 16;

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

    /// Batches and commands run so far, and the time spent running them.
    pub fn counts(&self) -> (u64, u64, Duration) {
        (
            self.gauge.batches.load(Ordering::Relaxed),
            self.gauge.commands.load(Ordering::Relaxed),
            Duration::from_nanos(self.gauge.busy_ns.load(Ordering::Relaxed)),
        )
    }

    /// How long a command queued now would wait, as recent batches went.
    pub fn expected_wait(&self) -> Duration {
        let known = |a: &AtomicU64, guess| match a.load(Ordering::Relaxed) {
            0 => guess,
            ns => Duration::from_nanos(ns),
        };
        let (batch, command) = (
            known(&self.gauge.batch_ns, FIRST_GUESS.0),
            known(&self.gauge.command_ns, FIRST_GUESS.1),
        );
        let depth = self.depth();
        let batches = depth.div_ceil(MAX_BATCH).min(u32::MAX as usize) as u32;
        batch.saturating_mul(batches) + command.saturating_mul(depth.min(u32::MAX as usize) as u32)
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
            let took = started.elapsed().as_nanos().min(u64::MAX as u128) as u64;
            let (gauge_ns, sample) = if n >= BIG {
                (&gauge.command_ns, took / n as u64)
            } else {
                (&gauge.batch_ns, took)
            };
            let old = gauge_ns.load(Ordering::Relaxed);
            let new = if old == 0 {
                sample
            } else {
                (old * 3 + sample) / 4
            };
            gauge_ns.store(new.max(1), Ordering::Relaxed);
            gauge.batches.fetch_add(1, Ordering::Relaxed);
            gauge.commands.fetch_add(n as u64, Ordering::Relaxed);
            gauge.busy_ns.fetch_add(took, Ordering::Relaxed);
        }
        gauge.depth.fetch_sub(taken, Ordering::Relaxed);
        for (reply, answer) in replies.into_iter().zip(answers) {
            let _ = reply.send(answer);
        }
    }
}
