//! Start-up and shutdown: open the store, seed it, build the index, follow the
//! change feed, serve HTTP until told to stop.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::domain::coords::Crs;
use crate::geodata;
use crate::http::AppState;
use crate::index::SiteIndex;
use crate::metrics::Metrics;
use crate::store::{self, DynStore};

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
}

/// A started service: its state, plus the feed follower's handle.
pub struct Service {
    pub state: AppState,
    follower: tokio::task::JoinHandle<()>,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

impl Service {
    pub async fn start(opts: &Options) -> anyhow::Result<Service> {
        let store = store::connect(&opts.database_url)
            .await
            .with_context(|| format!("opening {}", opts.database_url))?;
        if opts.seed && store.count_sites().await? == 0 {
            let drafts = geodata::geojson::parse_collection(SHANDONG_GEOJSON, Crs::Wgs84)
                .map_err(|e| anyhow::anyhow!("shipped dataset is invalid: {e}"))?;
            let n = drafts.len();
            let out = store.import_sites(drafts).await?;
            tracing::info!(
                sites = n,
                created = out.created,
                "seeded the empty registry with the Shandong dataset"
            );
        }
        Service::with_store(store, opts.follow_interval).await
    }

    /// Build the index from an already opened store.
    pub async fn with_store(store: DynStore, follow_interval: Duration) -> anyhow::Result<Service> {
        let high_water = store.last_change_seq().await?;
        let sites = store.all_sites().await?;
        let started = std::time::Instant::now();
        let index = tokio::task::spawn_blocking(move || SiteIndex::build(sites)).await?;
        tracing::info!(
            sites = index.snapshot().len(),
            build_ms = started.elapsed().as_millis() as u64,
            "spatial index built"
        );
        let state = AppState {
            store: store.clone(),
            index: Arc::new(index),
            metrics: Arc::new(Metrics::default()),
            ready: Arc::new(AtomicBool::new(true)),
        };
        let follower = tokio::spawn(follow_changes(
            store,
            state.index.clone(),
            high_water,
            follow_interval,
        ));
        state.ready.store(true, Ordering::Release);
        Ok(Service { state, follower })
    }
}

/// Keep the index in step with writes made elsewhere (a CLI import into the same
/// file, later other nodes). Writes made by this node are applied right after
/// their commit as well; applying a change twice is harmless.
async fn follow_changes(store: DynStore, index: Arc<SiteIndex>, mut seq: i64, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        loop {
            match store.changes_since(seq, 10_000).await {
                Ok(changes) if changes.is_empty() => break,
                Ok(changes) => {
                    seq = changes.last().map_or(seq, |c| c.seq);
                    let n = changes.len();
                    let index = index.clone();
                    let apply = tokio::task::spawn_blocking(move || {
                        index.apply(changes.into_iter().map(|c| c.site))
                    });
                    if let Err(e) = apply.await {
                        tracing::error!(error = %e, "applying changes to the index failed");
                    }
                    tracing::debug!(changes = n, seq, "index caught up with the change feed");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading the change feed failed; will retry");
                    break;
                }
            }
        }
    }
}

/// Serve the API on `listener` until `shutdown` resolves, then drain in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = crate::http::app(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP")
}
