//! Delivering notifications. Every notice lands in the inbox in the
//! transaction of its cause, with a row per channel still to deliver (the
//! outbox). The worker claims due rows under a lease, hands each to its
//! [`Channel`], and records the outcome: a delivery is marked sent only once
//! its channel accepted it, and one a dead worker held is taken up again when
//! its lease ends. Channels sit behind one trait, so WeChat subscribe messages
//! or a phone vendor's push can be added without touching the rules.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::auth::Clock;
use crate::domain::event::EventId;
use crate::domain::notify::{self, SmsDecision};
use crate::domain::retry::Retry;
use crate::domain::sms::{self as sms_rules, Message, Step, Values};
use crate::metrics::Metrics;
use crate::sms::{Text, Texter};
use crate::store::{ChannelName, DeliveryJob, DeliveryKey, DeliveryOutcome, DynStore};

pub use crate::domain::retry::{MAX_ATTEMPTS, backoff};
/// How long a claimed delivery is a worker's before others may take it, by
/// default (`--delivery-lease`). It must outlast a delivery (a push waits up
/// to 30 s for its service): a shorter lease lets another node's worker take
/// a delivery still under way and send it twice. It is also how long the
/// deliveries a killed process held wait before they are taken up again.
pub const LEASE: Duration = Duration::from_secs(60);
/// How many deliveries a worker claims at once.
const BATCH: i64 = 200;

/// A way to reach a person besides the inbox.
#[async_trait]
pub trait Channel: Send + Sync + 'static {
    fn name(&self) -> ChannelName;
    /// Try to deliver; say what became of it. Never panics on a refusal.
    async fn deliver(&self, job: &DeliveryJob, now: DateTime<Utc>) -> DeliveryOutcome;
}

/// The SMS fallback for what must not be missed (see
/// [`notify::sms_fallback`] for when it fires), through the [`Texter`].
pub struct SmsChannel {
    pub texter: Arc<Texter>,
    /// Where the event and site a text names are read, and unreachable
    /// numbers kept.
    pub store: DynStore,
    /// How long an unread notice waits before it goes by SMS.
    pub fallback_after: chrono::Duration,
}

#[async_trait]
impl Channel for SmsChannel {
    fn name(&self) -> ChannelName {
        ChannelName::Sms
    }

    async fn deliver(&self, job: &DeliveryJob, now: DateTime<Utc>) -> DeliveryOutcome {
        let n = &job.notification;
        if job.settings.mutes(n.kind) {
            return DeliveryOutcome::Skipped("muted in the person's settings".into());
        }
        // The person's quiet hours hold a text as they hold every channel.
        if let Some(end) = job.settings.quiet_until(n.kind, now) {
            return DeliveryOutcome::Later(end);
        }
        match notify::sms_fallback(
            n.kind,
            n.created_at,
            n.expires_at,
            n.read_at.is_some(),
            job.pushed,
            job.wechat,
            self.fallback_after,
            now,
        ) {
            SmsDecision::Skip => DeliveryOutcome::Skipped(
                "read, pushed, sent by WeChat, or no longer worth an SMS".into(),
            ),
            SmsDecision::WaitUntil(t) => DeliveryOutcome::Later(t),
            SmsDecision::Send => self.text(job, now).await,
        }
    }
}

impl SmsChannel {
    async fn text(&self, job: &DeliveryJob, now: DateTime<Utc>) -> DeliveryOutcome {
        let n = &job.notification;
        let Some(message) = Message::for_notice(n.kind) else {
            return DeliveryOutcome::Skipped(format!("{} is not texted", n.kind.as_str()));
        };
        let retry = |why: String| retry_or_give_up(job, now, why);
        match self.store.sms_unreachable(&job.phone).await {
            Ok(Some(b)) => {
                return DeliveryOutcome::Skipped(format!(
                    "this number cannot be texted: {} ({} said {})",
                    b.reason.as_str(),
                    b.provider,
                    b.code
                ));
            }
            Ok(None) => {}
            Err(e) => return retry(format!("reading whether the number can be texted: {e}")),
        }
        if let Some(until) = self.texter.held_until(&job.phone, now) {
            return DeliveryOutcome::Later(until);
        }
        let values = match self.values(n).await {
            Ok(Some(v)) => v,
            Ok(None) => return DeliveryOutcome::Skipped("its event is gone".into()),
            Err(e) => return retry(format!("reading the event: {e}")),
        };
        let id = n.id.to_string();
        let text = Text {
            phone: &job.phone,
            message,
            values: &values,
            id: &id,
        };
        let out = self.texter.send(&text, now).await;
        match sms_rules::next_step(out.class, &out.reply.answer, job.attempts, now) {
            Step::Sent { reference } => DeliveryOutcome::SentAs(reference),
            Step::RetryAt { at, why } => DeliveryOutcome::Retry { at, why },
            Step::WaitUntil { at, .. } => DeliveryOutcome::Later(at),
            Step::Unreachable { reason, why } => {
                let block = out.block(self.texter.name(), reason, now);
                if let Err(e) = self.store.set_sms_unreachable(&job.phone, &block).await {
                    tracing::warn!(error = %e, "could not record an unreachable number");
                }
                DeliveryOutcome::Failed(format!("this number cannot be texted: {why}"))
            }
            Step::Misconfigured { cause, why } => DeliveryOutcome::Failed(format!(
                "the SMS configuration is wrong ({}): {why}",
                cause.as_str()
            )),
            Step::Failed(why) => DeliveryOutcome::Failed(why),
        }
    }

    /// The values a notice's text shows, read now (the event as it is):
    /// `None` when its event is gone.
    async fn values(
        &self,
        n: &crate::store::NotificationRecord,
    ) -> Result<Option<Values>, crate::store::StoreError> {
        let Some((e, site)) = event_and_site(&self.store, n).await? else {
            return Ok(None);
        };
        Ok(Some(Values {
            event: Some(e.draft.title.clone()),
            site: Some(site),
            time: Some(sms_rules::china_time(e.draft.starts_at)),
            deadline: match n.kind {
                crate::domain::notify::NoticeType::SeatOffered => {
                    n.expires_at.map(sms_rules::china_time)
                }
                _ => None,
            },
            code: None,
        }))
    }
}

/// A failed try: again after the one backoff rule's wait, or given up.
pub(crate) fn retry_or_give_up(
    job: &DeliveryJob,
    now: DateTime<Utc>,
    why: String,
) -> DeliveryOutcome {
    match crate::domain::retry::next_try(job.attempts, chrono::Duration::zero(), now) {
        Retry::At(at) => DeliveryOutcome::Retry { at, why },
        Retry::GiveUp => DeliveryOutcome::Failed(why),
    }
}

/// The event a notice is about and its site's (or venue's) name; `None`
/// when the notice names no event or the event is gone.
pub(crate) async fn event_and_site(
    store: &DynStore,
    n: &crate::store::NotificationRecord,
) -> Result<Option<(crate::domain::event::Event, String)>, crate::store::StoreError> {
    let Some(id) = n.data["event_id"]
        .as_str()
        .and_then(|s| s.parse::<EventId>().ok())
    else {
        return Ok(None);
    };
    let Some(e) = store.get_event(id).await? else {
        return Ok(None);
    };
    let site = match e.draft.site_id {
        Some(s) => store.get_site(s).await?.map(|s| s.draft.name),
        None => None,
    }
    .or_else(|| e.draft.venue_name.clone())
    .unwrap_or_default();
    Ok(Some((e, site)))
}

/// What one round of deliveries did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryReport {
    pub sent: u32,
    pub later: u32,
    pub retried: u32,
    pub failed: u32,
    pub skipped: u32,
    /// Push subscriptions removed (their service said 404 or 410).
    pub removed: u32,
}

/// One delivery under way (boxed: a set of borrowed async blocks is
/// otherwise not provably `Send`).
type Attempt<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = (DeliveryKey, DeliveryOutcome)> + Send + 'a>,
>;

/// Claims due deliveries and hands them to their channels.
pub struct Deliverer {
    pub store: DynStore,
    pub clock: Arc<dyn Clock>,
    pub channels: Vec<Arc<dyn Channel>>,
    pub metrics: Arc<Metrics>,
    /// How long a claim lasts ([`LEASE`] by default).
    pub lease: Duration,
}

impl Deliverer {
    /// Deliver everything due now, batch by batch. Deliveries of a batch go
    /// out concurrently; answers are recorded as they come, those that came
    /// together in one transaction (a group commit), and counted once
    /// recorded. A worker that dies loses at most the answers not yet
    /// recorded: those deliveries are tried again after their lease (at
    /// least once).
    pub async fn deliver_due(&self) -> anyhow::Result<DeliveryReport> {
        use futures_util::{FutureExt as _, StreamExt as _};
        let mut report = DeliveryReport::default();
        loop {
            let now = self.clock.now();
            let lease = now + chrono::Duration::from_std(self.lease).expect("a short lease");
            let jobs = self.store.claim_deliveries(now, lease, BATCH).await?;
            if jobs.is_empty() {
                return Ok(report);
            }
            // At most CONCURRENCY under way; the next start as answers come.
            let mut queue = jobs.iter();
            let mut running = futures_util::stream::FuturesUnordered::new();
            for job in queue.by_ref().take(crate::push::CONCURRENCY) {
                running.push(self.attempt(job, now));
            }
            while let Some(first) = running.next().await {
                let mut group = vec![first];
                while let Some(Some(more)) = running.next().now_or_never() {
                    group.push(more);
                }
                for job in queue.by_ref().take(group.len()) {
                    running.push(self.attempt(job, now));
                }
                self.store.finish_deliveries(&group, now).await?;
                for (key, outcome) in &group {
                    self.count(key.channel, outcome, &mut report);
                }
            }
            // What was put off is due later, not in this round.
            if jobs.len() < BATCH as usize {
                return Ok(report);
            }
        }
    }

    /// Hand one delivery to its channel: what became of it.
    fn attempt<'a>(&'a self, job: &'a DeliveryJob, now: DateTime<Utc>) -> Attempt<'a> {
        Box::pin(async move {
            let outcome = match self.channels.iter().find(|c| c.name() == job.channel) {
                Some(c) => c.deliver(job, now).await,
                None => DeliveryOutcome::Skipped(format!(
                    "no {} channel is configured",
                    job.channel.as_str()
                )),
            };
            let (id, ch) = (job.notification.id, job.channel.as_str());
            match &outcome {
                DeliveryOutcome::Retry { why, .. } => {
                    tracing::warn!(notification = %id, channel = ch, why, "delivery failed; will retry")
                }
                DeliveryOutcome::Failed(why) => {
                    tracing::warn!(notification = %id, channel = ch, why, "delivery given up")
                }
                DeliveryOutcome::Gone(why) => {
                    tracing::info!(notification = %id, channel = ch, why, "subscription gone; removed")
                }
                _ => {}
            }
            (job.key(), outcome)
        })
    }

    /// Count a recorded outcome.
    fn count(&self, channel: ChannelName, outcome: &DeliveryOutcome, report: &mut DeliveryReport) {
        self.metrics.delivery(channel.as_str(), outcome.name());
        match outcome {
            DeliveryOutcome::Sent | DeliveryOutcome::SentAs(_) => report.sent += 1,
            DeliveryOutcome::Later(_) => report.later += 1,
            DeliveryOutcome::Retry { .. } => report.retried += 1,
            DeliveryOutcome::Failed(_) => report.failed += 1,
            DeliveryOutcome::Gone(_) => {
                self.metrics.subscription_removed();
                report.failed += 1;
                report.removed += 1
            }
            DeliveryOutcome::Skipped(_) => report.skipped += 1,
        }
    }
}
