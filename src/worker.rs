//! The background worker for what time decides: draws are made at their
//! `draw_at`, offers lapse and pass on,
//! no-shows are marked after an event ends, idempotency records past their
//! day are purged, and due notifications are delivered — within a pass interval of their deadline, whether
//! or not anyone reads. GET requests never write; this does.
//!
//! Safe in several processes on one database: a pass only *finds* candidate
//! events with a read; each job then runs as a command
//! ([`crate::store::commands`]) that re-reads the event under the write
//! transaction's lock and decides anew, so what another node has already
//! done is simply not due any more and is never applied twice.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::auth::Clock;
use crate::domain::application::DrawOutcome;
use crate::domain::{idempotency, notify};
use crate::metrics::Metrics;
use crate::notify::{Channel, Deliverer, DeliveryReport};
use crate::store::{Commands, DynStore, Writer};

/// Events handled per job per pass; the next pass takes the rest.
const BATCH: i64 = 500;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassReport {
    /// Draws made (issue 26).
    pub draws: u32,
    /// Draws that failed (rolled back whole, tried again next pass).
    pub draws_failed: u32,
    pub offers_lapsed: u32,
    pub no_shows: u32,
    pub events_settled: u32,
    pub keys_purged: u64,
    /// Seat holders reminded of an event's start.
    pub reminded: u32,
    pub deliveries: DeliveryReport,
}

pub struct Worker {
    store: DynStore,
    /// The jobs' commands join the requests' batches.
    writer: Writer,
    clock: Arc<dyn Clock>,
    deliverer: Deliverer,
    /// How many passes have finished (tests wait on it instead of sleeping).
    passes: watch::Sender<u64>,
}

impl Worker {
    pub fn new(
        store: DynStore,
        writer: Writer,
        clock: Arc<dyn Clock>,
        channels: Vec<Arc<dyn Channel>>,
        metrics: Arc<Metrics>,
        lease: Duration,
    ) -> Worker {
        Worker {
            deliverer: Deliverer {
                store: store.clone(),
                clock: clock.clone(),
                channels,
                metrics,
                lease,
            },
            store,
            writer,
            clock,
            passes: watch::channel(0).0,
        }
    }

    /// Run every job that is due now, once.
    #[tracing::instrument(name = "worker_pass", skip_all, err(level = "warn"))]
    pub async fn run_due(&self) -> anyhow::Result<PassReport> {
        let now = self.clock.now();
        let mut report = PassReport::default();
        // Draws first: their offers are then due like any other.
        // A draw that fails is rolled back whole and tried again next pass;
        // it does not hold up the other jobs.
        for event in self.store.draws_due(now).await? {
            match self.writer.draw(event, now).await {
                Ok(DrawOutcome::Drawn {
                    entrants,
                    offered,
                    not_eligible,
                }) => {
                    tracing::info!(event = %event, entrants, offered, not_eligible, "draw made");
                    report.draws += 1;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(event = %event, error = %e, "the draw failed; nothing of it was written");
                    report.draws_failed += 1;
                }
            }
        }
        for event in self.store.events_with_lapsed_offers(now, BATCH).await? {
            let n = self.writer.lapse_offers(event, now).await?;
            if n > 0 {
                tracing::info!(event = %event, lapsed = n, "offers lapsed and passed on");
            }
            report.offers_lapsed += n;
        }
        for event in self.store.events_to_settle(now, BATCH).await? {
            let n = self.writer.mark_no_shows(event, now).await?;
            if n > 0 {
                tracing::info!(event = %event, no_shows = n, "no-shows marked");
            }
            report.no_shows += n;
            report.events_settled += 1;
        }
        for lead in notify::REMINDER_LEADS {
            for event in self.store.events_to_remind(lead, now, BATCH).await? {
                report.reminded += self.writer.remind(event, lead, now).await?;
            }
        }
        report.keys_purged = self
            .store
            .purge_idempotency(idempotency::expired_before(now))
            .await?;
        report.deliveries = self.deliverer.deliver_due().await?;
        self.passes.send_modify(|n| *n += 1);
        Ok(report)
    }

    /// A receiver of the count of finished passes.
    pub fn passes(&self) -> watch::Receiver<u64> {
        self.passes.subscribe()
    }

    /// Run a pass every `every` until `stop` turns true; a pass under way
    /// finishes first (its commands are transactions either way).
    pub async fn run(self: Arc<Self>, every: Duration, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            // A failed pass is logged (instrument) and retried on the next tick.
            let _ = self.run_due().await;
        }
        tracing::info!("booking worker stopped");
    }
}
