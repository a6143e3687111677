//! The client of `bench/crowd` (issue 24), compiled so that it takes little
//! of the two cores it shares with the server: the Python client took half a
//! core to send 10,000 bookings in a second, and the server had that much
//! less. Not part of the service; `bench/crowd.py` builds and runs it.
//!
//! It reads a plan (JSON) on stdin and writes what happened (JSON) on stdout.
//! One thread, `inflight` keep-alive HTTP/1.1 connections to 127.0.0.1:
//! - `"mode": "crowd"`: worker i arrives at `i × window_s / N` and sends
//!   `POST path` with its token, its own `Idempotency-Key` and its own
//!   `X-Forwarded-For`, waiting for a free connection; on 503 or 429 it
//!   waits `Retry-After` seconds (1 s on a broken connection) and sends the
//!   same request again, until a final answer or `give_up_s`.
//! - `"mode": "ceiling"`: `total` × `GET /healthz`, every connection busy.
//!
//! Latency runs from a worker's arrival to its final answer, as in the
//! Python client (`bench/crowd --client python`) it replaces.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

#[derive(Deserialize)]
struct Plan {
    port: u16,
    mode: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    window_s: f64,
    inflight: usize,
    #[serde(default)]
    give_up_s: f64,
    #[serde(default)]
    server_pid: Option<u32>,
    #[serde(default)]
    workers: Vec<Worker>,
    #[serde(default)]
    total: usize,
}

#[derive(Deserialize)]
struct Worker {
    token: String,
    key: String,
    addr: String,
}

/// One worker's story, as the Python client records it.
#[derive(Serialize)]
struct Outcome {
    first: u16,
    #[serde(rename = "final")]
    last: u16,
    retries: u32,
    latency: f64,
    /// Seconds from the first arrival to this final answer.
    done: f64,
    replayed: bool,
    booking: Option<String>,
    status: Option<String>,
    position: Option<u64>,
}

struct Answer {
    status: u16,
    retry_after: Option<f64>,
    replayed: bool,
    body: Vec<u8>,
}

/// One keep-alive connection, opened when first used and again after the
/// server closed it.
struct Conn {
    port: u16,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn broken(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

impl Conn {
    fn new(port: u16) -> Conn {
        Conn {
            port,
            stream: None,
            buf: Vec::with_capacity(4096),
        }
    }

    async fn request(&mut self, req: &[u8]) -> io::Result<Answer> {
        let answer = self.exchange(req).await;
        if answer.is_err() {
            self.stream = None;
        }
        answer
    }

    async fn fill(&mut self) -> io::Result<()> {
        let stream = self.stream.as_mut().expect("connected");
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    async fn exchange(&mut self, req: &[u8]) -> io::Result<Answer> {
        if self.stream.is_none() {
            let s = TcpStream::connect(("127.0.0.1", self.port)).await?;
            s.set_nodelay(true)?;
            self.stream = Some(s);
        }
        self.buf.clear();
        self.stream
            .as_mut()
            .expect("connected")
            .write_all(req)
            .await?;
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).map_err(|_| broken("head"))?;
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| broken("status line"))?;
        let (mut length, mut chunked, mut close) = (None, false, false);
        let (mut retry_after, mut replayed) = (None, false);
        for line in lines {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = v.parse::<usize>().ok(),
                "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
                "connection" => close = v.eq_ignore_ascii_case("close"),
                "retry-after" => retry_after = v.parse::<f64>().ok(),
                "idempotent-replayed" => replayed = v == "true",
                _ => {}
            }
        }
        let body = if let Some(n) = length {
            while self.buf.len() < head_end + n {
                self.fill().await?;
            }
            self.buf[head_end..head_end + n].to_vec()
        } else if chunked {
            let mut body = Vec::new();
            let mut at = head_end;
            loop {
                let line_end = loop {
                    if let Some(i) = find(&self.buf[at..], b"\r\n") {
                        break at + i;
                    }
                    self.fill().await?;
                };
                let size_text = std::str::from_utf8(&self.buf[at..line_end])
                    .map_err(|_| broken("chunk size"))?;
                let size =
                    usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                        .map_err(|_| broken("chunk size"))?;
                let data = line_end + 2;
                while self.buf.len() < data + size + 2 {
                    self.fill().await?;
                }
                if size == 0 {
                    break body;
                }
                body.extend_from_slice(&self.buf[data..data + size]);
                at = data + size + 2;
            }
        } else {
            Vec::new()
        };
        if close {
            self.stream = None;
        }
        Ok(Answer {
            status,
            retry_after,
            replayed,
            body,
        })
    }
}

/// The connections, and how many may be in use.
struct Pool {
    free: Mutex<Vec<Conn>>,
    permits: Semaphore,
}

impl Pool {
    async fn request(&self, req: &[u8]) -> io::Result<Answer> {
        let _permit = self.permits.acquire().await.expect("never closed");
        let mut conn = self
            .free
            .lock()
            .expect("pool")
            .pop()
            .expect("a permit has a connection");
        let answer = conn.request(req).await;
        self.free.lock().expect("pool").push(conn);
        answer
    }
}

/// CPU seconds this process has used.
fn own_cpu() -> f64 {
    // SAFETY: getrusage writes into the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    s(ru.ru_utime) + s(ru.ru_stime)
}

/// CPU seconds another process has used (`/proc/PID/stat`).
fn cpu_of(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / hz)
}

async fn warm_pool(port: u16, inflight: usize) -> io::Result<Arc<Pool>> {
    let mut conns = Vec::with_capacity(inflight);
    let health = format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    for _ in 0..inflight {
        let mut c = Conn::new(port);
        c.request(health.as_bytes()).await?;
        conns.push(c);
    }
    Ok(Arc::new(Pool {
        free: Mutex::new(conns),
        permits: Semaphore::new(inflight),
    }))
}

async fn crowd(plan: Plan) -> io::Result<serde_json::Value> {
    let pool = warm_pool(plan.port, plan.inflight).await?;
    let n = plan.workers.len().max(1);
    let t0 = Instant::now() + Duration::from_millis(200);
    let give_up = Duration::from_secs_f64(plan.give_up_s);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, w) in plan.workers.into_iter().enumerate() {
        let arrive = t0 + Duration::from_secs_f64(i as f64 * plan.window_s / n as f64);
        let req = format!(
            "POST {} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\n\
             Idempotency-Key: {}\r\nX-Forwarded-For: {}\r\nContent-Type: application/json\r\n\
             Content-Length: 2\r\n\r\n{{}}",
            plan.path, plan.port, w.token, w.key, w.addr
        );
        let pool = pool.clone();
        tasks.spawn(async move {
            tokio::time::sleep_until(arrive.into()).await;
            let (mut first, mut retries) = (None, 0);
            loop {
                let answer = pool.request(req.as_bytes()).await.ok();
                let status = answer.as_ref().map_or(0, |a| a.status);
                first.get_or_insert(status);
                let now = Instant::now();
                if matches!(status, 0 | 429 | 503) && now - arrive < give_up {
                    retries += 1;
                    let wait = answer.as_ref().and_then(|a| a.retry_after).unwrap_or(1.0);
                    tokio::time::sleep(Duration::from_secs_f64(wait.max(0.0))).await;
                    continue;
                }
                let doc: Option<serde_json::Value> = answer
                    .as_ref()
                    .filter(|a| a.status == 201)
                    .and_then(|a| serde_json::from_slice(&a.body).ok());
                let field = |k: &str| doc.as_ref().and_then(|d| d.get(k));
                return (
                    i,
                    Outcome {
                        first: first.unwrap_or(status),
                        last: status,
                        retries,
                        latency: (now - arrive).as_secs_f64(),
                        done: now.saturating_duration_since(t0).as_secs_f64(),
                        replayed: answer.as_ref().is_some_and(|a| a.replayed),
                        booking: field("id").and_then(|v| v.as_str()).map(str::to_owned),
                        status: field("status").and_then(|v| v.as_str()).map(str::to_owned),
                        position: field("waitlist_position").and_then(|v| v.as_u64()),
                    },
                );
            }
        });
    }
    tokio::time::sleep_until(t0.into()).await;
    let (cpu0, srv0) = (own_cpu(), plan.server_pid.and_then(cpu_of));
    let mut results: Vec<Option<Outcome>> = (0..n).map(|_| None).collect();
    while let Some(done) = tasks.join_next().await {
        let (i, outcome) = done.map_err(io::Error::other)?;
        results[i] = Some(outcome);
    }
    let (cpu1, srv1) = (own_cpu(), plan.server_pid.and_then(cpu_of));
    let span = results.iter().flatten().map(|o| o.done).fold(0.0, f64::max);
    let share = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if span > 0.0 => Some(((b - a) / span * 100.0).round() / 100.0),
        _ => None,
    };
    Ok(serde_json::json!({
        "results": results,
        "span_s": span,
        "client_cpu_share": share(Some(cpu0), Some(cpu1)),
        "server_cpu_share": share(srv0, srv1),
    }))
}

async fn ceiling(plan: Plan) -> io::Result<serde_json::Value> {
    let pool = warm_pool(plan.port, plan.inflight).await?;
    let left = Arc::new(std::sync::atomic::AtomicUsize::new(plan.total));
    let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let req = Arc::new(format!(
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
        plan.port
    ));
    let (cpu0, started) = (own_cpu(), Instant::now());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..plan.inflight {
        let (pool, left, errors, req) = (pool.clone(), left.clone(), errors.clone(), req.clone());
        tasks.spawn(async move {
            use std::sync::atomic::Ordering::Relaxed;
            while left
                .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                if !matches!(pool.request(req.as_bytes()).await, Ok(a) if a.status == 200) {
                    errors.fetch_add(1, Relaxed);
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(io::Error::other)?;
    }
    let dt = started.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "requests": plan.total,
        "seconds": (dt * 1000.0).round() / 1000.0,
        "req_per_s": (plan.total as f64 / dt * 10.0).round() / 10.0,
        "errors": errors.load(std::sync::atomic::Ordering::Relaxed),
        "client_cpu_share": ((own_cpu() - cpu0) / dt * 100.0).round() / 100.0,
    }))
}

fn main() -> io::Result<()> {
    let mut input = String::new();
    io::stdin().read_to_string(&mut input)?;
    let plan: Plan = serde_json::from_str(&input).map_err(io::Error::other)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let out = rt.block_on(async {
        match plan.mode.as_str() {
            "crowd" => crowd(plan).await,
            "ceiling" => ceiling(plan).await,
            other => Err(io::Error::other(format!("unknown mode {other:?}"))),
        }
    })?;
    println!("{out}");
    Ok(())
}
