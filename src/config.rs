//! The command line. Every setting of `yizhan serve` (and the database URL of
//! every command) has a flag and a `YIZHAN_*` environment variable; the
//! per-call arguments of the other commands (`--phone`, `--role`, `--site`,
//! `--ttl`, `--crs`, …) are flags only. Boolean variables take `1/0`,
//! `true/false`, `yes/no` or `on/off`, in any case.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::domain::coords::Crs;

pub const DEFAULT_DATABASE_URL: &str = "sqlite:./data/yizhan.db";

/// Logging, said once under every command's `--help`.
const LOG_HELP: &str = "Logging: YIZHAN_LOG or, when it is unset, RUST_LOG sets the filter \
(`info`, `debug`, `info,yizhan::sms=debug`; default `info`). \
Boolean variables take 1/0, true/false, yes/no or on/off, in any case.";

#[derive(Debug, Parser)]
#[command(
    name = "yizhan",
    version,
    about = "Service sites of China's trade unions, for workers' phone apps",
    after_help = LOG_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct DbArgs {
    /// Database URL: `sqlite:PATH` (the embedded default) or `postgres://…`.
    #[arg(long, env = "YIZHAN_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// SQLite's `synchronous` setting (see [`crate::store::SqliteSync`]).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SqliteSynchronous {
    Full,
    Normal,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "YIZHAN_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub db: DbArgs,
    /// Start with an empty registry instead of loading the Shandong dataset.
    #[arg(long, env = "YIZHAN_NO_SEED", value_parser = BoolishValueParser::new())]
    pub no_seed: bool,
    /// Seconds between polls of the change feed for writes made by other processes.
    #[arg(long, env = "YIZHAN_FOLLOW_INTERVAL", default_value_t = 2.0)]
    pub follow_interval: f64,
    /// Seconds between the worker's passes: offers lapse and no-shows are marked this soon after their time.
    #[arg(long, env = "YIZHAN_WORKER_INTERVAL", default_value_t = 1.0)]
    pub worker_interval: f64,
    /// An unread seat offer or event cancellation goes by SMS after this long (`90s`, `15m`, `1h`).
    #[arg(long, env = "YIZHAN_SMS_FALLBACK_AFTER", default_value = "15m", value_parser = parse_ttl)]
    pub sms_fallback_after: std::time::Duration,
    /// How long the worker's claim on a notification's delivery lasts (`60s`): the
    /// deliveries a killed process held are taken up again after this. Keep it
    /// above a push's 30 s timeout when several nodes share a database.
    #[arg(long, env = "YIZHAN_DELIVERY_LEASE", default_value = "60s", value_parser = parse_ttl)]
    pub delivery_lease: std::time::Duration,
    /// Log line format.
    #[arg(long, env = "YIZHAN_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// PostgreSQL: send the pooled queries here (PgBouncer in transaction mode); migrations and
    /// the change listener keep using --database-url directly.
    #[arg(long, env = "YIZHAN_DATABASE_POOL_URL")]
    pub database_pool_url: Option<String>,
    /// PostgreSQL: connections in this node's pool.
    #[arg(long, env = "YIZHAN_DB_POOL_SIZE", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_pool_size: u32,
    /// PostgreSQL: seconds a statement may run before it is cancelled (0: no bound).
    #[arg(long, env = "YIZHAN_DB_STATEMENT_TIMEOUT", default_value_t = 30.0)]
    pub db_statement_timeout: f64,
    /// Web Push: the VAPID private key (PKCS#8 or SEC1 PEM, or base64url). Without
    /// it, a key is generated on first start beside the SQLite database (or in
    /// ./data) and reused; several nodes must be given one shared file.
    #[arg(long, env = "YIZHAN_VAPID_PRIVATE_KEY_FILE")]
    pub vapid_private_key_file: Option<PathBuf>,
    /// Web Push: whom push services may contact, a `mailto:` or `https:` URL
    /// (Apple rejects localhost).
    #[arg(long, env = "YIZHAN_VAPID_SUBJECT", default_value = crate::push::DEFAULT_SUBJECT)]
    pub vapid_subject: String,
    /// Web Push: accept `http://127.0.0.1:…` push endpoints. For tests only.
    #[arg(long, env = "YIZHAN_PUSH_ALLOW_INSECURE_LOOPBACK", value_parser = BoolishValueParser::new())]
    pub push_allow_insecure_loopback: bool,
    /// SQLite: `full` fsyncs every commit before answering (a confirmed booking
    /// survives a power cut); `normal` does not (it survives a crash of this
    /// process, but the last commits before a power cut may be lost).
    #[arg(
        long,
        env = "YIZHAN_SQLITE_SYNCHRONOUS",
        value_enum,
        default_value = "full"
    )]
    pub sqlite_synchronous: SqliteSynchronous,
    /// PostgreSQL: seconds a write may wait for a lock (an event's row) before
    /// the request answers 503 with Retry-After (0: no bound).
    #[arg(long, env = "YIZHAN_DB_LOCK_TIMEOUT", default_value_t = 5.0)]
    pub db_lock_timeout: f64,
    /// The managers' console: mark its session cookie `Secure` always (behind
    /// TLS that does not send `X-Forwarded-Proto: https`, which also does).
    #[arg(long, env = "YIZHAN_CONSOLE_SECURE_COOKIE", value_parser = BoolishValueParser::new())]
    pub console_secure_cookie: bool,
    /// Texts (SMS: sign-in codes, and notices that must not be missed): `log`
    /// (development: they go to the log, nothing leaves the machine),
    /// `aliyun` or `tencent` (README: "SMS providers").
    #[arg(long, env = "YIZHAN_SMS_PROVIDER", value_enum, default_value = "log")]
    pub sms_provider: crate::sms::SmsChoice,
    /// The SMS provider's settings: a TOML file with its keys, signature
    /// (签名), templates (模板) and receipt token. Its secret may come from
    /// `YIZHAN_SMS_SECRET` instead.
    #[arg(long, env = "YIZHAN_SMS_CONFIG")]
    pub sms_config: Option<PathBuf>,
    /// Replaces the provider's endpoint (`https://dysmsapi.aliyuncs.com`,
    /// `https://sms.tencentcloudapi.com`): a VPC endpoint; plain `http` only
    /// to a loopback address.
    #[arg(long, env = "YIZHAN_SMS_ENDPOINT")]
    pub sms_endpoint: Option<String>,
    /// WeChat: the union's mini program's AppID. Without it, WeChat is off
    /// (README: "WeChat").
    #[arg(long, env = "YIZHAN_WECHAT_APPID")]
    pub wechat_appid: Option<String>,
    /// WeChat: a file holding the mini program's AppSecret (or give it in
    /// `YIZHAN_WECHAT_SECRET`; the file wins). Never logged.
    #[arg(long, env = "YIZHAN_WECHAT_SECRET_FILE")]
    pub wechat_secret_file: Option<PathBuf>,
    /// Replaces WeChat's API (`https://api.weixin.qq.com`); plain `http`
    /// only to a loopback address.
    #[arg(long, env = "YIZHAN_WECHAT_ENDPOINT")]
    pub wechat_endpoint: Option<String>,
    /// WeChat: which version of the mini program a message opens.
    #[arg(
        long,
        env = "YIZHAN_WECHAT_MINIPROGRAM_STATE",
        value_enum,
        default_value = "formal"
    )]
    pub wechat_miniprogram_state: crate::wechat::MiniprogramState,
    /// WeChat: the subscribe-message templates (TOML: one table per notice
    /// type, with `template_id`, `page` and `fields`).
    #[arg(long, env = "YIZHAN_WECHAT_TEMPLATES")]
    pub wechat_templates: Option<PathBuf>,
    #[command(flatten)]
    pub overload: OverloadArgs,
}

/// Overload and abuse limits, proxies and browsers (docs/overload.md).
#[derive(Debug, Args, Clone)]
pub struct OverloadArgs {
    /// Requests handled at once; more are answered 503 with Retry-After at
    /// once (shed, never queued). /healthz, /readyz and /metrics are outside
    /// it. Default: 64 per CPU core; 0: no limit.
    #[arg(long, env = "YIZHAN_MAX_CONCURRENT_REQUESTS")]
    pub max_concurrent_requests: Option<usize>,
    /// Seconds a request may take before it is dropped and answered 503 with
    /// Retry-After (0: no bound).
    #[arg(long, env = "YIZHAN_REQUEST_TIMEOUT", default_value_t = 30.0)]
    pub request_timeout: f64,
    /// Writes (POST, PUT, PATCH, DELETE) a minute from one client address, in
    /// bursts of as many; past it 429 with Retry-After (0: no limit). High:
    /// a carrier's NAT puts many riders behind one address.
    #[arg(
        long,
        env = "YIZHAN_ADDRESS_WRITES_PER_MINUTE",
        default_value_t = 20_000
    )]
    pub address_writes_per_minute: u32,
    /// Writes a minute by one signed-in user, in bursts of as many; past it
    /// 429 with Retry-After (0: no limit).
    #[arg(long, env = "YIZHAN_USER_WRITES_PER_MINUTE", default_value_t = 60)]
    pub user_writes_per_minute: u32,
    /// Proxies whose X-Forwarded-For is believed: comma-separated addresses or
    /// CIDR blocks (`10.0.0.0/8,::1`). Default none: the client is the peer.
    #[arg(long, env = "YIZHAN_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    /// Origins whose web pages may call the API (CORS), comma-separated
    /// (`https://app.example.cn`). Default none.
    #[arg(long, env = "YIZHAN_CORS_ORIGINS", default_value = "")]
    pub cors_origins: String,
    /// The URL apps reach this yizhan at (`https://yizhan.example.cn`): the
    /// base of problem types (`{url}/problems/not-found`). Default: the
    /// scheme and host each request came to (`X-Forwarded-Proto`/`-Host`
    /// from a trusted proxy, else `Host`).
    #[arg(long, env = "YIZHAN_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Also serve /healthz, /readyz and /metrics on this address, from a
    /// thread of their own: probes answer however loaded the API's runtime is.
    #[arg(long, env = "YIZHAN_OPS_LISTEN")]
    pub ops_listen: Option<SocketAddr>,
    /// Seconds shutdown (SIGTERM, Ctrl-C) waits for in-flight requests before
    /// closing them.
    #[arg(long, env = "YIZHAN_SHUTDOWN_GRACE", default_value_t = 20.0)]
    pub shutdown_grace: f64,
    /// Seconds a client may take to send a request's headers, counted from
    /// when its connection opens or falls idle after an answer; a slower or
    /// idle connection is closed (slowloris). On both listeners. 0: no bound.
    #[arg(long, env = "YIZHAN_HEADER_READ_TIMEOUT", default_value_t = 10.0)]
    pub header_read_timeout: f64,
    /// Connections open at once on each listener; past it new ones wait in
    /// the kernel's queue until one closes. Default: 10,000, or 3/4 of the
    /// open-file limit when lower (the soft limit is first raised to the
    /// hard one); 0: no cap.
    #[arg(long, env = "YIZHAN_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Seconds a booking may wait in the writer's queue: a booking that
    /// would wait longer (as recent batches went) is answered 503 with
    /// Retry-After at once. Bookings queue instead of counting against
    /// --max-concurrent-requests.
    #[arg(long, env = "YIZHAN_WRITE_QUEUE_WAIT", default_value_t = 5.0)]
    pub write_queue_wait: f64,
    /// Commands waiting for the writer at most; past it 503 with Retry-After.
    #[arg(long, env = "YIZHAN_WRITE_QUEUE_DEPTH", default_value_t = 50_000)]
    pub write_queue_depth: usize,
}

impl OverloadArgs {
    /// The guard's settings these flags give.
    pub fn guard_config(&self) -> anyhow::Result<crate::http::guard::GuardConfig> {
        let secs = |s: f64| std::time::Duration::from_secs_f64(s.clamp(0.0, 86_400.0));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let trusted_proxies = crate::http::client_addr::parse_list(&self.trusted_proxies)
            .map_err(|e| anyhow::anyhow!("--trusted-proxies: {e}"))?;
        let cors_origins = crate::http::guard::parse_origins(&self.cors_origins)
            .map_err(|e| anyhow::anyhow!("--cors-origins: {e}"))?;
        let public_url = self
            .public_url
            .as_deref()
            .map(crate::http::guard::parse_public_url)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--public-url: {e}"))?;
        Ok(crate::http::guard::GuardConfig {
            max_concurrent_requests: match self.max_concurrent_requests {
                None => Some(64 * cores),
                Some(0) => None,
                Some(n) => Some(n),
            },
            request_timeout: (self.request_timeout > 0.0).then(|| secs(self.request_timeout)),
            address_writes_per_minute: self.address_writes_per_minute,
            user_writes_per_minute: self.user_writes_per_minute,
            trusted_proxies,
            cors_origins,
            public_url,
            shutdown_grace: secs(self.shutdown_grace),
            connections: crate::http::connections::ConnLimits {
                header_read_timeout: (self.header_read_timeout > 0.0)
                    .then(|| secs(self.header_read_timeout)),
                max_connections: match self.max_connections {
                    None => Some(crate::http::connections::default_max_connections(
                        crate::http::connections::raise_open_file_limit(),
                    )),
                    Some(0) => None,
                    Some(n) => Some(n),
                },
            },
            write_queue: crate::store::QueueBounds {
                max_wait: secs(self.write_queue_wait),
                max_depth: self.write_queue_depth.max(1),
            },
        })
    }
}

impl ServeArgs {
    /// The database settings these flags give.
    pub fn db_options(&self) -> crate::store::DbOptions {
        let secs = |s: f64| std::time::Duration::from_secs_f64(s.clamp(0.0, 86_400.0));
        crate::store::DbOptions {
            pool_size: self.db_pool_size,
            pool_url: self.database_pool_url.clone(),
            statement_timeout: secs(self.db_statement_timeout),
            lock_timeout: secs(self.db_lock_timeout),
            sqlite_sync: match self.sqlite_synchronous {
                SqliteSynchronous::Full => crate::store::SqliteSync::Full,
                SqliteSynchronous::Normal => crate::store::SqliteSync::Normal,
            },
        }
    }
}

fn parse_crs(s: &str) -> Result<Crs, String> {
    s.parse::<Crs>().map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service.
    #[command(after_help = LOG_HELP)]
    Serve(Box<ServeArgs>),
    /// Upsert sites from a GeoJSON FeatureCollection by their `ref`, all or nothing.
    Import {
        /// GeoJSON file (`-` for standard input).
        file: PathBuf,
        /// Coordinate system of the file's coordinates.
        #[arg(long, default_value = "wgs84", value_parser = parse_crs)]
        crs: Crs,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Write every site as a GeoJSON FeatureCollection to standard output.
    Export {
        /// Coordinate system of the written coordinates.
        #[arg(long, default_value = "wgs84", value_parser = parse_crs)]
        crs: Crs,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Synthetic datasets.
    Geodata {
        #[command(subcommand)]
        command: GeodataCommand,
    },
    /// Print the OpenAPI document (YAML).
    Openapi,
    /// Web Push keys.
    Vapid {
        #[command(subcommand)]
        command: VapidCommand,
    },
    /// Operators' tools: users, tokens, the holiday calendar.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum VapidCommand {
    /// Write a new VAPID key pair: the private key (PKCS#8 PEM, owner-only) to
    /// FILE, the public key (base64url, for `applicationServerKey`) to standard output.
    Generate {
        /// Where to write the private key; an existing file is never overwritten.
        #[arg(long, default_value = "data/vapid-private-key.pem")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Users.
    User {
        #[command(subcommand)]
        command: AdminUserCommand,
    },
    /// Issue a bearer token for an existing user; prints only the token.
    Token {
        /// The user's mobile number.
        #[arg(long)]
        phone: String,
        /// Lifetime: a number with s, m, h or d (`90s`, `30m`, `1h`, `7d`).
        #[arg(long, default_value = "1h", value_parser = parse_ttl)]
        ttl: std::time::Duration,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Print the pending sign-in code of a phone, for scripts. Only with the
    /// development `log` SMS provider, which keeps the code in the clear
    /// until it is used or expires; fails when no such code is pending.
    Code {
        /// The mobile number the code was requested for.
        #[arg(long)]
        phone: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// China's holiday calendar that opening hours are evaluated with.
    Holidays {
        #[command(subcommand)]
        command: AdminHolidaysCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminHolidaysCommand {
    /// Add or replace years from a calendar file (the `geodata/cn-holidays-*.json`
    /// format), all or nothing. Running servers pick it up within their follow interval.
    Import {
        /// Calendar file (`-` for standard input).
        file: PathBuf,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Show which years are known.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminUserCommand {
    /// Create a user, or set an existing user's role and sites (or unions).
    Create {
        /// Mainland mobile number (`+86` accepted).
        #[arg(long)]
        phone: String,
        #[arg(long, value_parser = ["worker", "site_manager", "union_admin", "admin"])]
        role: String,
        /// A site a site manager manages (repeat for several).
        #[arg(long = "site")]
        sites: Vec<String>,
        /// A union a union admin runs, with the unions below it (repeat for several).
        #[arg(long = "union")]
        unions: Vec<String>,
        #[command(flatten)]
        db: DbArgs,
    },
}

/// `90s`, `30m`, `1h`, `7d`.
pub fn parse_ttl(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("'{s}': expected a number then s, m, h or d"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("'{s}': expected a number then s, m, h or d")),
    };
    if n == 0 || n > 366 * 86_400 / secs {
        return Err(format!("'{s}': between 1 s and a year"));
    }
    Ok(std::time::Duration::from_secs(n * secs))
}

#[derive(Debug, Subcommand)]
pub enum GeodataCommand {
    /// Generate a deterministic synthetic dataset as GeoJSON on standard output.
    Generate {
        /// Number of sites (up to 2,000,000), split across kinds in Shandong's proportions.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=2_000_000), required_unless_present = "preset")]
        sites: Option<u64>,
        /// Random seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Only districts whose adcode starts with this (`37` = Shandong; empty = all China).
        #[arg(long, default_value = "")]
        adcode_prefix: String,
        /// A named dataset instead of `--sites`: `shandong` is the one shipped in geodata/.
        #[arg(long, value_parser = ["shandong"], conflicts_with_all = ["sites", "adcode_prefix"])]
        preset: Option<String>,
        /// Coordinate system of the written coordinates.
        #[arg(long, default_value = "wgs84", value_parser = parse_crs)]
        crs: Crs,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}
