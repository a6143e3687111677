//! The `yizhan` command: start-up only. See `yizhan --help`.

use std::io::{BufWriter, IsTerminal, Read, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use yizhan::config::{
    AdminCommand, AdminHolidaysCommand, AdminUserCommand, Cli, Command, GeodataCommand, LogFormat,
    ServeArgs, VapidCommand,
};
use yizhan::geodata::generate::{GenSpec, generate};
use yizhan::geodata::geojson::{
    draft_to_feature, parse_collection_with_progress, site_to_feature, write_collection,
};
use yizhan::service::{Options, Service, serve};
use yizhan::store;

/// The log filter: `YIZHAN_LOG` when set, else the ecosystem's `RUST_LOG`, else `info`.
fn log_filter() -> EnvFilter {
    ["YIZHAN_LOG", "RUST_LOG"]
        .into_iter()
        .find(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
        .map_or_else(
            || EnvFilter::new("info"),
            |v| {
                EnvFilter::try_from_env(v).unwrap_or_else(|e| {
                    eprintln!("warning: {v}: {e}; logging at info");
                    EnvFilter::new("info")
                })
            },
        )
}

/// Logging to stderr through [`yizhan::logpipe`] (a request never waits for
/// the disk); the guard, dropped as `main` returns, waits for the last lines.
fn init_logging(format: LogFormat) -> yizhan::logpipe::FlushOnDrop {
    let filter = log_filter();
    let (pipe, guard) = yizhan::logpipe::LogPipe::new(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(pipe);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    guard
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    yizhan::push::install_tls_provider();
    let log_format = match &cli.command {
        Command::Serve(a) => a.log_format,
        _ => LogFormat::Text,
    };
    let log = init_logging(log_format);
    let outcome = run(cli.command).await;
    // The log's last lines before an error's own.
    drop(log);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => run_serve(*args).await,
        Command::Import { file, crs, db } => {
            let started = Instant::now();
            // Drawn on a terminal only (indicatif hides it when stderr is not one).
            let bar =
                ProgressBar::new_spinner().with_message(format!("reading {}", file.display()));
            let text = read_input(&file)?;
            bar.set_message("checking features");
            let drafts = parse_collection_with_progress(&text, crs, &|n| {
                bar.set_message(format!("checking features: {n}"));
                bar.tick();
            })
            .map_err(|e| anyhow::anyhow!("{e}; nothing was imported"))?;
            drop(text);
            let parsed = started.elapsed();
            let store = store::connect(&db.database_url).await?;
            // A site may name the union that runs it: that union must exist.
            if let Some((i, u)) = yizhan::geodata::plan::unknown_union(&store, &drafts).await? {
                anyhow::bail!(
                    "feature {i}: properties.union_id: no such union '{u}'; nothing was imported"
                );
            }
            let n = drafts.len();
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:40}] {pos}/{len} sites ({per_sec}, {eta} left)",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.set_length(n as u64);
            bar.set_position(0);
            bar.set_message("writing");
            let out = store
                .import_sites_with_progress(drafts, chrono::Utc::now(), &|done| {
                    bar.set_position(done)
                })
                .await?;
            bar.finish_and_clear();
            let took = started.elapsed();
            let bytes = store.storage_bytes().await?;
            let sites = store.count_sites().await?.max(1);
            println!(
                "imported {}: {} created, {} updated, {} unchanged",
                file.display(),
                out.created,
                out.updated,
                out.unchanged
            );
            println!(
                "{n} features in {:.1} s (checked in {:.1} s, written in {:.1} s: {:.0} sites/s); \
                 database {:.1} MB for {sites} sites, {} bytes per site",
                took.as_secs_f64(),
                parsed.as_secs_f64(),
                (took - parsed).as_secs_f64(),
                n as f64 / took.as_secs_f64().max(1e-9),
                bytes as f64 / 1e6,
                bytes / sites,
            );
            Ok(())
        }
        Command::Export { crs, db } => {
            let store = store::connect(&db.database_url).await?;
            let sites = store.all_sites().await?;
            let meta = serde_json::json!({"generator": "yizhan export", "crs": crs.as_str(), "count": sites.len()});
            let stdout = std::io::stdout().lock();
            let mut w = BufWriter::new(stdout);
            write_collection(&mut w, meta, sites.iter().map(|s| site_to_feature(s, crs)))?;
            w.flush()?;
            Ok(())
        }
        Command::Geodata {
            command:
                GeodataCommand::Generate {
                    sites,
                    seed,
                    adcode_prefix,
                    preset,
                    crs,
                    out,
                },
        } => {
            let spec = match (preset.as_deref(), sites) {
                (Some("shandong"), _) => GenSpec::shandong(),
                (_, Some(n)) => {
                    if yizhan::geodata::districts::county_districts(&adcode_prefix).is_empty() {
                        anyhow::bail!(
                            "--adcode-prefix '{adcode_prefix}' matches no county-level district"
                        );
                    }
                    GenSpec::total(n as usize, seed, &adcode_prefix)
                }
                _ => anyhow::bail!("give --sites N or --preset shandong"),
            };
            let meta = yizhan::geodata::generate::metadata(&spec, crs);
            let sink: Box<dyn Write> = match out {
                Some(path) => Box::new(
                    std::fs::File::create(&path)
                        .with_context(|| format!("creating {}", path.display()))?,
                ),
                None => Box::new(std::io::stdout().lock()),
            };
            let mut w = BufWriter::with_capacity(1 << 20, sink);
            write_collection(
                &mut w,
                meta,
                generate(&spec).map(|d| draft_to_feature(&d, crs)),
            )?;
            w.flush()?;
            Ok(())
        }
        Command::Vapid {
            command: VapidCommand::Generate { out },
        } => {
            let key = yizhan::push::VapidKey::generate();
            key.write_new(&out)?;
            eprintln!("wrote the private key to {}", out.display());
            println!("{}", key.public_key());
            Ok(())
        }
        Command::Openapi => {
            print!("{}", yizhan::http::openapi_yaml());
            Ok(())
        }
        Command::Admin { command } => run_admin(command).await,
    }
}

/// A file's text, or standard input's for `-`.
fn read_input(file: &std::path::Path) -> anyhow::Result<String> {
    if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        Ok(s)
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))
    }
}

async fn run_holidays(command: AdminHolidaysCommand) -> anyhow::Result<()> {
    use yizhan::auth::SystemClock;
    use yizhan::domain::calendar::{CalendarStatus, parse_calendar_file};
    match command {
        AdminHolidaysCommand::Import { file, db } => {
            let text = read_input(&file)?;
            let years = parse_calendar_file(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}; nothing was imported", file.display()))?;
            let store = store::connect(&db.database_url).await?;
            yizhan::holidays::seed(&*store, &SystemClock).await?;
            let put = store.put_holiday_years(&years, chrono::Utc::now()).await?;
            let done: Vec<String> = put
                .years
                .iter()
                .map(|(y, change)| format!("{y} {}", change.as_str()))
                .collect();
            println!(
                "imported {}: {} (calendar revision {}); running servers pick it up within their follow interval",
                file.display(),
                done.join(", "),
                put.revision
            );
            Ok(())
        }
        AdminHolidaysCommand::List { db } => {
            let store = store::connect(&db.database_url).await?;
            yizhan::holidays::seed(&*store, &SystemClock).await?;
            let years = store.holiday_years().await?;
            println!("year  holidays  make-up workdays  updated (UTC)         source");
            for y in &years {
                println!(
                    "{:<4}  {:>8}  {:>16}  {:<20}  {}",
                    y.year,
                    y.holidays,
                    y.makeup_workdays,
                    y.updated_at.format("%Y-%m-%d %H:%M:%S"),
                    y.source
                );
            }
            let known: Vec<i32> = years.iter().map(|y| y.year).collect();
            let status = CalendarStatus::of(yizhan::holidays::today(&SystemClock), &known);
            if let Some(w) = status.warning {
                eprintln!("warning: {w}");
            }
            Ok(())
        }
    }
}

async fn run_admin(command: AdminCommand) -> anyhow::Result<()> {
    use yizhan::domain::site::SiteId;
    use yizhan::domain::user::{Phone, Role};
    match command {
        AdminCommand::User {
            command:
                AdminUserCommand::Create {
                    phone,
                    role,
                    sites,
                    unions,
                    db,
                },
        } => {
            use yizhan::domain::union::UnionId;
            let phone: Phone = phone.parse().map_err(|e| anyhow::anyhow!("--phone: {e}"))?;
            let role: Role = role
                .parse()
                .map_err(|e: String| anyhow::anyhow!("--role: {e}"))?;
            let sites = sites
                .iter()
                .map(|s| {
                    s.parse::<SiteId>()
                        .map_err(|e| anyhow::anyhow!("--site {s}: {e}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let unions = unions
                .iter()
                .map(|u| {
                    u.parse::<UnionId>()
                        .map_err(|e| anyhow::anyhow!("--union {u}: {e}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            if role != Role::SiteManager && !sites.is_empty() {
                anyhow::bail!("--site is for site managers only");
            }
            if role != Role::UnionAdmin && !unions.is_empty() {
                anyhow::bail!("--union is for union admins only");
            }
            if role == Role::UnionAdmin && unions.is_empty() {
                anyhow::bail!("a union admin needs --union ID (repeat for several)");
            }
            let store = store::connect(&db.database_url).await?;
            for s in &sites {
                if store.get_site(*s).await?.is_none() {
                    anyhow::bail!("--site {s}: no such site");
                }
            }
            for u in &unions {
                if store.get_union(*u).await?.is_none() {
                    anyhow::bail!("--union {u}: no such union");
                }
            }
            let now = chrono::Utc::now();
            let user = if role == Role::UnionAdmin {
                store.put_union_admin(&phone, &unions, now).await?
            } else {
                store.put_user(&phone, role, &sites, now).await?
            };
            if role == Role::UnionAdmin {
                println!(
                    "user {} ({}) is union_admin of {} union(s)",
                    user.id,
                    phone.masked(),
                    user.unions.len()
                );
            } else {
                println!(
                    "user {} ({}) is {} of {} site(s)",
                    user.id,
                    phone.masked(),
                    role.as_str(),
                    user.sites.len()
                );
            }
            Ok(())
        }
        AdminCommand::Holidays { command } => run_holidays(command).await,
        AdminCommand::Code { phone, db } => {
            let phone: Phone = phone.parse().map_err(|e| anyhow::anyhow!("--phone: {e}"))?;
            let store = store::connect(&db.database_url).await?;
            let code = store
                .pending_dev_code(&phone, chrono::Utc::now(), yizhan::auth::OTP_MAX_ATTEMPTS)
                .await?
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "no development sign-in code is pending for {}: request one \
                         (POST /v1/auth/otp) from a server running the development `log` \
                         SMS provider; codes live {} minutes",
                        phone.masked(),
                        yizhan::auth::OTP_TTL.as_secs() / 60
                    )
                })?;
            println!("{code}");
            Ok(())
        }
        AdminCommand::Token { phone, ttl, db } => {
            let phone: Phone = phone.parse().map_err(|e| anyhow::anyhow!("--phone: {e}"))?;
            let store = store::connect(&db.database_url).await?;
            let user = store.user_by_phone(&phone).await?.ok_or_else(|| {
                anyhow::anyhow!(
                    "no user with that phone; create one with `yizhan admin user create`"
                )
            })?;
            let token = yizhan::auth::new_token();
            let expires = chrono::Utc::now() + chrono::Duration::from_std(ttl)?;
            store
                .create_token(user.id, &yizhan::auth::token_hash(&token), expires)
                .await?;
            println!("{token}");
            Ok(())
        }
    }
}

async fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    tracing::info!(
        no_seed = args.no_seed,
        console_secure_cookie = args.console_secure_cookie,
        push_allow_insecure_loopback = args.push_allow_insecure_loopback,
        "switches"
    );
    let guard = args.overload.guard_config()?;
    let opts = Options {
        database_url: args.db.database_url.clone(),
        seed: !args.no_seed,
        follow_interval: Duration::from_secs_f64(args.follow_interval.max(0.05)),
        worker_interval: Duration::from_secs_f64(args.worker_interval.max(0.05)),
        sms_fallback_after: args.sms_fallback_after,
        delivery_lease: args.delivery_lease,
        db: args.db_options(),
        push: push_config(&args)?,
        vapid_key_in_database: args.vapid_private_key_file.is_none()
            && !args.db.database_url.starts_with("sqlite:"),
        sms: yizhan::sms::config::load(
            args.sms_provider,
            args.sms_config.as_deref(),
            std::env::var("YIZHAN_SMS_SECRET").ok().as_deref(),
            args.sms_endpoint.as_deref(),
        )?,
        listen_is_loopback: args.listen.ip().is_loopback(),
        wechat: yizhan::wechat::config::load(&yizhan::wechat::config::WechatArgs {
            appid: args.wechat_appid.as_deref(),
            secret_file: args.wechat_secret_file.as_deref(),
            secret_env: std::env::var("YIZHAN_WECHAT_SECRET").ok().as_deref(),
            endpoint: args.wechat_endpoint.as_deref(),
            state: args.wechat_miniprogram_state,
            templates: args.wechat_templates.as_deref(),
        })
        .map_err(anyhow::Error::msg)?,
    };
    let service = Service::start(&opts).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let mut state = service.state.clone();
    state.console.secure_cookie = args.console_secure_cookie;
    tracing::info!(
        max_concurrent_requests = guard.max_concurrent_requests,
        request_timeout_s = guard.request_timeout.map(|t| t.as_secs_f64()),
        address_writes_per_minute = guard.address_writes_per_minute,
        user_writes_per_minute = guard.user_writes_per_minute,
        trusted_proxies = guard.trusted_proxies.len(),
        cors_origins = guard.cors_origins.len(),
        header_read_timeout_s = guard
            .connections
            .header_read_timeout
            .map(|t| t.as_secs_f64()),
        max_connections = guard.connections.max_connections,
        "overload limits"
    );
    state.guard = std::sync::Arc::new(yizhan::http::guard::Guard::new(guard));
    if let Some(addr) = args.overload.ops_listen {
        let ops = std::net::TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
        tracing::info!(ops_listen = %ops.local_addr()?, "serving /healthz, /readyz and /metrics on their own thread");
        yizhan::service::serve_ops(ops, state.clone())?;
    }
    tracing::info!(listen = %listener.local_addr()?, database = %opts.database_url, "yizhan serving");
    serve(listener, state, shutdown_signal()).await?;
    service.stop().await;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// The VAPID key given, or the one kept beside the database (made on first start).
fn push_config(args: &ServeArgs) -> anyhow::Result<yizhan::push::PushConfig> {
    use yizhan::push::{VapidKey, default_key_path};
    yizhan::domain::push::validate_subject(&args.vapid_subject)
        .map_err(|e| anyhow::anyhow!("--vapid-subject: {e}"))?;
    if args.vapid_subject == yizhan::push::DEFAULT_SUBJECT {
        tracing::warn!(
            subject = args.vapid_subject,
            "no --vapid-subject: push services cannot reach this server's operator"
        );
    }
    let key = match &args.vapid_private_key_file {
        Some(path) => VapidKey::load(path)?,
        // A server database: every node takes the database's key (the
        // service reads it once the store is open); this one is replaced.
        None if !args.db.database_url.starts_with("sqlite:") => {
            let legacy = default_key_path(&args.db.database_url);
            if legacy.exists() {
                tracing::warn!(path = %legacy.display(), "not using this VAPID key file: with a server database the key is kept in the database, the same on every node (give --vapid-private-key-file to use a file)");
            }
            VapidKey::generate()
        }
        None => {
            let path = default_key_path(&args.db.database_url);
            let (key, made) = VapidKey::load_or_create(&path)?;
            if made {
                tracing::info!(path = %path.display(), public_key = key.public_key(), "generated a VAPID key for Web Push; keep this file: browsers' subscriptions are bound to it");
            } else {
                tracing::info!(path = %path.display(), public_key = key.public_key(), "using the VAPID key kept beside the database");
            }
            key
        }
    };
    if args.push_allow_insecure_loopback {
        tracing::warn!(
            "--push-allow-insecure-loopback: http://127.0.0.1 push endpoints are accepted (tests only)"
        );
    }
    Ok(yizhan::push::PushConfig {
        key: std::sync::Arc::new(key),
        subject: args.vapid_subject.clone(),
        allow_insecure_loopback: args.push_allow_insecure_loopback,
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
        () = term => tracing::info!("SIGTERM received, shutting down"),
    }
}
