//! Start-up and shutdown: open the store, seed it, build the index, follow the
//! change feed, serve HTTP until told to stop.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::auth::Clock;
use crate::domain::calendar::CalendarStatus;
use crate::domain::coords::Crs;
use crate::geodata;
use crate::holidays;
use crate::http::{AppState, connections};
use crate::index::{ClusterFilter, IndexBuilder, SiteIndex};
use crate::metrics::Metrics;
use crate::notify::{Channel, SmsChannel};
use crate::push::{PushChannel, PushConfig};
use crate::store::{self, DynStore};
use crate::worker::{PassReport, Worker};

/// The Shandong dataset shipped in `geodata/` (synthetic, see geodata/README.md).
pub const SHANDONG_GEOJSON: &str = include_str!("../geodata/shandong-sites.geojson");

/// Options for starting the service; the CLI fills them from flags and `YIZHAN_*`.
#[derive(Debug, Clone)]
pub struct Options {
    pub database_url: String,
    /// Load the Shandong dataset when the registry is empty.
    pub seed: bool,
    /// How often to pull changes written by other processes (CLI imports, other nodes).
    pub follow_interval: Duration,
    /// How often the worker looks for what time decides (offers lapsing, no-shows).
    pub worker_interval: Duration,
    /// How long an unread notice that must not be missed waits before its SMS.
    pub sms_fallback_after: Duration,
    /// How long the worker's claim on a delivery lasts ([`crate::notify::LEASE`]).
    pub delivery_lease: Duration,
    /// Pool size and bounds of a server database.
    pub db: store::DbOptions,
    /// Web Push: the VAPID key, its subject, and the loopback allowance.
    pub push: PushConfig,
    /// Web Push: the key is the database's (`vapid-private-key`, made once
    /// by the first node to start), replacing `push.key`: a server database
    /// without a key file, so that every node serves the same key.
    pub vapid_key_in_database: bool,
    /// Texts: the SMS provider and its settings (`log` in development).
    pub sms: crate::sms::SmsSettings,
    /// The API listens on a loopback address only: the development `log` SMS
    /// sender prints sign-in codes at INFO (on any other address, at DEBUG).
    pub listen_is_loopback: bool,
    /// WeChat's settings; `None`: WeChat is off.
    pub wechat: Option<crate::wechat::WechatSettings>,
}

/// How often the background tasks run, and the notification delays.
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    pub follow: Duration,
    pub worker: Duration,
    pub sms_fallback_after: Duration,
    /// How long the worker's claim on a delivery lasts.
    pub delivery_lease: Duration,
}

impl Timers {
    /// Both background tasks every `every`; the default SMS fallback (15 minutes).
    pub fn every(every: Duration) -> Timers {
        Timers {
            follow: every,
            worker: every,
            sms_fallback_after: DEFAULT_SMS_FALLBACK_AFTER,
            delivery_lease: crate::notify::LEASE,
        }
    }
}

/// The name of the VAPID private key in the database's secrets (32 bytes).
pub const VAPID_SECRET: &str = "vapid-private-key";

/// An unread `seat_offered` or `event_cancelled` goes by SMS after this.
pub const DEFAULT_SMS_FALLBACK_AFTER: Duration = Duration::from_secs(15 * 60);

/// A started service: its state, the change-feed follower, the worker and
/// the daily check of the holiday calendar.
pub struct Service {
    pub state: AppState,
    follower: Arc<Follower>,
    follow_task: tokio::task::JoinHandle<()>,
    pub worker: Arc<Worker>,
    worker_stop: tokio::sync::watch::Sender<bool>,
    worker_task: Option<tokio::task::JoinHandle<()>>,
    calendar_task: tokio::task::JoinHandle<()>,
    /// The WeChat client the worker's WeChat channel uses, once set.
    wechat: crate::wechat::channel::WechatSlot,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.follow_task.abort();
        if let Some(t) = &self.worker_task {
            t.abort();
        }
        self.calendar_task.abort();
    }
}

impl Service {
    pub async fn start(opts: &Options) -> anyhow::Result<Service> {
        let store = store::connect_with(&opts.database_url, &opts.db)
            .await
            .with_context(|| format!("opening {}", opts.database_url))?;
        if opts.seed && store.count_sites().await? == 0 {
            let drafts = geodata::geojson::parse_collection(SHANDONG_GEOJSON, Crs::Wgs84)
                .map_err(|e| anyhow::anyhow!("shipped dataset is invalid: {e}"))?;
            let n = drafts.len();
            // Checked again under the store's lock: of several nodes starting
            // at once on one database, exactly one seeds.
            match store.seed_sites(drafts, chrono::Utc::now()).await? {
                Some(out) => tracing::info!(
                    sites = n,
                    created = out.created,
                    "seeded the empty registry with the Shandong dataset"
                ),
                None => tracing::info!("another process seeded the registry meanwhile"),
            }
        }
        // The `log` provider is the development sender, whose codes are
        // also kept in the clear for `yizhan admin code`.
        let auth = crate::auth::Auth {
            sms: crate::sms::sender(&opts.sms, opts.listen_is_loopback),
            sms_receipt_token: opts.sms.receipt_token.clone(),
            ..crate::auth::Auth::default()
        };
        let timers = Timers {
            follow: opts.follow_interval,
            worker: opts.worker_interval,
            sms_fallback_after: opts.sms_fallback_after,
            delivery_lease: opts.delivery_lease,
        };
        let mut push = opts.push.clone();
        if opts.vapid_key_in_database {
            let key = crate::push::VapidKey::from_raw(&store.secret(VAPID_SECRET).await?)
                .context("the database's VAPID key")?;
            tracing::info!(
                public_key = key.public_key(),
                "using the VAPID key kept in the database"
            );
            push.key = Arc::new(key);
        }
        let mut service = Service::with_parts(store, timers, auth, push).await?;
        // Only the development sender keeps codes in the clear.
        service.state.dev_sign_in = opts.sms.provider().is_none();
        if let Some(settings) = &opts.wechat {
            tracing::info!(appid = %settings.appid, endpoint = %settings.endpoint,
                templates = settings.templates.ids().count(), "WeChat is on");
            service.set_wechat(settings.clone());
        }
        Ok(service)
    }

    /// Build the index from an already opened store.
    pub async fn with_store(store: DynStore, follow_interval: Duration) -> anyhow::Result<Service> {
        Service::with_store_and_auth(store, follow_interval, crate::auth::Auth::default()).await
    }

    /// As [`Service::with_store`], with a given clock and SMS sender (tests,
    /// gateways); the worker runs a pass every `follow_interval` too.
    pub async fn with_store_and_auth(
        store: DynStore,
        follow_interval: Duration,
        auth: crate::auth::Auth,
    ) -> anyhow::Result<Service> {
        Service::with_parts(
            store,
            Timers::every(follow_interval),
            auth,
            PushConfig::ephemeral(false),
        )
        .await
    }

    /// Start from an opened store with every part given.
    pub async fn with_parts(
        store: DynStore,
        timers: Timers,
        auth: crate::auth::Auth,
        push: PushConfig,
    ) -> anyhow::Result<Service> {
        let (follow_interval, worker_interval) = (timers.follow, timers.worker);
        // The shipped holiday years on first start, then the calendar as stored: a
        // year written after this read reaches the index through the follower.
        holidays::seed(&*store, &*auth.clock).await?;
        let calendar = store.holiday_calendar().await?;
        tracing::info!(
            years = %holidays::year_list(calendar.years()),
            revision = calendar.revision(),
            "holiday calendar loaded"
        );
        // Read the feed's high-water mark before the sites: a change committed in
        // between is then applied twice (harmless), never missed.
        let high_water = store.last_change_seq().await?;
        let started = std::time::Instant::now();
        let mut builder = IndexBuilder::new(calendar);
        store
            .each_site_record(&mut |r| builder.push_record(r))
            .await?;
        let read_ms = started.elapsed().as_millis() as u64;
        let index = tokio::task::spawn_blocking(move || {
            let index = builder.finish();
            crate::index::release_freed_memory();
            index
        })
        .await?;
        tracing::info!(
            sites = index.snapshot().len(),
            read_ms,
            build_ms = started.elapsed().as_millis() as u64 - read_ms,
            "spatial index built"
        );
        let metrics = Arc::new(Metrics::default());
        let sms = Arc::new(crate::sms::Texter::new(
            auth.sms.clone(),
            metrics.clone(),
            auth.sms_receipt_token.clone(),
        ));
        let state = AppState {
            writer: crate::store::Writer::start(store.clone()),
            tokens: crate::store::reader::TokenReader::start(store.clone()),
            store: store.clone(),
            index: Arc::new(index),
            metrics,
            ready: Arc::new(AtomicBool::new(false)),
            auth,
            checkin_key: store.secret("checkin-hmac").await?.into(),
            push,
            join_key: store.secret("union-join-hmac").await?.into(),
            console: Default::default(),
            guard: Default::default(),
            sms,
            dev_sign_in: false,
            wechat: None,
        };
        let follower = Arc::new(Follower {
            store,
            index: state.index.clone(),
            seq: tokio::sync::Mutex::new(high_water),
        });
        let follow_task = tokio::spawn(follower.clone().run(follow_interval));
        let sms: Arc<dyn Channel> = Arc::new(SmsChannel {
            texter: state.sms.clone(),
            store: state.store.clone(),
            fallback_after: chrono::Duration::from_std(timers.sms_fallback_after)?,
        });
        let web_push: Arc<dyn Channel> = Arc::new(PushChannel::new(state.push.clone())?);
        let wechat_slot = crate::wechat::channel::WechatSlot::default();
        let wechat: Arc<dyn Channel> = Arc::new(crate::wechat::channel::WechatChannel::new(
            wechat_slot.clone(),
            state.store.clone(),
            state.metrics.clone(),
        ));
        let worker = Arc::new(Worker::new(
            state.store.clone(),
            state.writer.clone(),
            state.auth.clock.clone(),
            vec![wechat, web_push, sms],
            state.metrics.clone(),
            timers.delivery_lease,
        ));
        let (worker_stop, stop) = tokio::sync::watch::channel(false);
        let worker_task = tokio::spawn(worker.clone().run(worker_interval, stop));
        let calendar_task = tokio::spawn(watch_calendar(
            state.index.clone(),
            state.auth.clock.clone(),
            holidays::CHECK_EVERY,
        ));
        state.ready.store(true, Ordering::Release);
        // The unfiltered cluster hierarchy (about 1.3 s per million sites) is built
        // behind readiness: nearby search serves meanwhile, and a map request that
        // comes first waits for this build rather than starting its own.
        let index = state.index.clone();
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            index.with_clusters(ClusterFilter::ALL, |_| ());
            crate::index::release_freed_memory();
            tracing::info!(
                build_ms = started.elapsed().as_millis() as u64,
                "cluster hierarchy built"
            );
        });
        Ok(Service {
            state,
            follower,
            follow_task,
            worker,
            worker_stop,
            worker_task: Some(worker_task),
            calendar_task,
            wechat: wechat_slot,
        })
    }

    /// Turn WeChat on: sign-in, and subscribe messages through the worker.
    pub fn set_wechat(&mut self, settings: crate::wechat::WechatSettings) {
        let wx = crate::wechat::Wechat::new(
            settings,
            self.state.store.clone(),
            self.state.metrics.clone(),
        );
        self.wechat.store(Some(wx.clone()));
        self.state.wechat = Some(wx);
    }

    /// Run the worker's due jobs now (its background task does this every
    /// `worker_interval`): tests drain it instead of waiting.
    pub async fn run_jobs(&self) -> anyhow::Result<PassReport> {
        self.worker.run_due().await
    }

    /// Stop the background tasks, letting a worker pass under way finish.
    pub async fn stop(mut self) {
        let _ = self.worker_stop.send(true);
        if let Some(t) = self.worker_task.take() {
            let _ = t.await;
        }
        self.follow_task.abort();
    }

    /// Bring the index up to date with the change feed and the holiday calendar
    /// now (the background task does this every `follow_interval`). Returns how
    /// many site changes were applied.
    pub async fn catch_up(&self) -> anyhow::Result<usize> {
        self.follower.catch_up().await
    }

    /// The daily check of the holiday calendar (the background task runs it at
    /// start and then once a day): logs a warning from 1 November while next
    /// year is unknown, or when even this year is.
    pub fn check_holiday_calendar(&self) -> CalendarStatus {
        holidays::check(&self.state.index, &*self.state.auth.clock)
    }
}

async fn watch_calendar(index: Arc<SiteIndex>, clock: Arc<dyn Clock>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        holidays::check(&index, &*clock);
    }
}

/// Keeps the index in step with writes made elsewhere (a CLI import into the
/// same file, other nodes), the holiday calendar included. Writes made by
/// this node are applied right after their commit as well; applying a change
/// twice is harmless. It catches up from the last applied position every
/// interval, and at once when the store says another process may have written
/// (PostgreSQL's `NOTIFY`, or a reconnect): the wake-up only makes it quick,
/// the catch-up makes it right.
struct Follower {
    store: DynStore,
    index: Arc<SiteIndex>,
    /// The last feed entry applied; the lock also keeps two catch-ups from interleaving.
    seq: tokio::sync::Mutex<i64>,
}

impl Follower {
    async fn catch_up(&self) -> anyhow::Result<usize> {
        // The holiday calendar follows the same tick: one revision read.
        holidays::refresh(&*self.store, &self.index).await?;
        let mut seq = self.seq.lock().await;
        let mut applied = 0;
        loop {
            let changes = self.store.changes_since(*seq, 10_000).await?;
            let Some(last) = changes.last() else {
                return Ok(applied);
            };
            let next_seq = last.seq;
            applied += changes.len();
            let index = self.index.clone();
            tokio::task::spawn_blocking(move || index.apply(changes.into_iter().map(|c| c.site)))
                .await?;
            *seq = next_seq;
        }
    }

    async fn run(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.store.wait_for_change() => {}
            }
            match self.catch_up().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(changes = n, "index caught up with the change feed"),
                Err(e) => {
                    tracing::warn!(error = %e, "following the change feed failed; will retry")
                }
            }
        }
    }
}

/// Serve `/healthz`, `/readyz` and `/metrics` on `listener` from a thread and
/// runtime of their own (`--ops-listen`): however many connections the API's
/// runtime is working through under overload, a probe here waits only for
/// the kernel to schedule this thread. It runs until the process exits.
pub fn serve_ops(listener: std::net::TcpListener, state: AppState) -> anyhow::Result<()> {
    listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("yizhan-ops".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "the operators' listener has no runtime");
                    return;
                }
            };
            runtime.block_on(async move {
                let limits = state.guard.config.connections;
                let app = crate::http::ops::router()
                    .fallback(|| async {
                        crate::error::status_problem(
                            axum::http::StatusCode::NOT_FOUND,
                            "only /healthz, /readyz and /metrics are served here",
                        )
                    })
                    .with_state(state);
                match TcpListener::from_std(listener) {
                    Ok(l) => connections::serve(l, app, limits, std::future::pending()).await,
                    Err(e) => tracing::error!(error = %e, "the operators' listener failed"),
                }
            });
        })?;
    Ok(())
}

/// Serve the API on `listener` until `shutdown` resolves, then drain in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let grace = state.guard.config.shutdown_grace;
    let limits = state.guard.config.connections;
    let app = crate::http::app(state);
    let (told, mut draining) = tokio::sync::watch::channel(false);
    let server = connections::serve(listener, app, limits, async move {
        shutdown.await;
        tracing::info!(
            grace_s = grace.as_secs_f64(),
            "no longer accepting connections; draining in-flight requests"
        );
        let _ = told.send(true);
    });
    // Draining is bounded: a request still running `grace` after the signal
    // (a stalled upload, a client that never reads) is cut off.
    let bound = async move {
        if draining.wait_for(|d| *d).await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        () = server => Ok(()),
        () = bound => {
            tracing::warn!(
                grace_s = grace.as_secs_f64(),
                "requests still in flight after the shutdown grace; closing them"
            );
            Ok(())
        }
    }
}
