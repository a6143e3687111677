//! The accept loop behind both listeners (the API and `--ops-listen`): a
//! bound on how long a client may take to send a request's headers, and a cap
//! on open connections. `axum::serve` has neither: a client that trickles its
//! headers (or opens a connection and says nothing) would hold a file
//! descriptor for ever, and enough of them lock everyone out (slowloris).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// The default `--header-read-timeout`.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The default `--max-connections`, when the open-file limit allows it.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// How connections are bounded on one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// How long a client may take to send a request's headers, counted from
    /// when the connection opens or falls idle after an answer (`None`: no
    /// bound). A slower or idle connection is closed.
    pub header_read_timeout: Option<Duration>,
    /// Connections open at once; past it, new ones wait in the kernel's
    /// accept queue until one closes (`None`: no cap).
    pub max_connections: Option<usize>,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            header_read_timeout: Some(DEFAULT_HEADER_READ_TIMEOUT),
            max_connections: Some(DEFAULT_MAX_CONNECTIONS),
        }
    }
}

/// The default connection cap for an open-file limit of `nofile`: 10,000, or
/// three quarters of the limit when that is lower (the rest for the database,
/// the log, outgoing pushes).
pub fn default_max_connections(nofile: u64) -> usize {
    let three_quarters = usize::try_from(nofile / 4 * 3).unwrap_or(usize::MAX);
    DEFAULT_MAX_CONNECTIONS.min(three_quarters.max(64))
}

/// Raise this process's soft open-file limit to its hard limit (as Go and
/// nginx do), and return the soft limit now in force.
pub fn raise_open_file_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    lim.rlim_cur
}

/// Serve `app` on `listener` within `limits` until `shutdown` resolves; then
/// stop accepting, let each connection finish its request in flight, and
/// return once all are closed. Handlers see the peer as
/// `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let slots = limits.max_connections.map(|n| Arc::new(Semaphore::new(n)));
    // Every connection holds a receiver: when the last is dropped, all are closed.
    let (open_tx, open_rx) = watch::channel(());
    let mut stopping = stop_rx.clone();
    loop {
        let permit = match &slots {
            Some(s) => tokio::select! {
                p = s.clone().acquire_owned() => Some(p.expect("the semaphore is never closed")),
                () = stopped(&mut stopping) => break,
            },
            None => None,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = stopped(&mut stopping) => break,
        };
        // An answer goes out when it is written, not held back by Nagle's
        // algorithm for the client's (delayed) acknowledgement.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let svc = tower::ServiceExt::map_request(
            app.clone(),
            move |mut req: axum::http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            },
        );
        let mut stop = stop_rx.clone();
        let open = open_rx.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let conn = builder
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => log_closed(peer, r),
                () = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    log_closed(peer, conn.await);
                }
            }
            drop((permit, open));
        });
    }
    drop(listener);
    drop(open_rx);
    open_tx.closed().await;
}

/// Resolves once shutdown has begun.
async fn stopped(rx: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which happens only after it said `true`.
    let _ = rx.wait_for(|s| *s).await;
}

fn log_closed(peer: SocketAddr, r: Result<(), hyper::Error>) {
    if let Err(e) = r {
        // A header-read timeout lands here: the client was too slow or idle.
        tracing::debug!(%peer, error = %e, "connection closed");
    }
}

/// Most accept errors concern one connection (it was reset before we took
/// it): go on. Running out of file descriptors is not: wait a moment for some
/// to close rather than spin.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_leaves_room_under_the_open_file_limit() {
        assert_eq!(default_max_connections(1_048_576), 10_000);
        assert_eq!(default_max_connections(1024), 768);
        assert_eq!(default_max_connections(20), 64);
    }
}
