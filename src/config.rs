//! The command line. Every setting has a flag and a `YIZHAN_*` environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::domain::coords::Crs;

pub const DEFAULT_DATABASE_URL: &str = "sqlite:./data/yizhan.db";

#[derive(Debug, Parser)]
#[command(
    name = "yizhan",
    version,
    about = "Service sites of China's trade unions, for workers' phone apps"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct DbArgs {
    /// Database URL; `sqlite:PATH` is the embedded default.
    #[arg(long, env = "YIZHAN_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "YIZHAN_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub db: DbArgs,
    /// Start with an empty registry instead of loading the Shandong dataset.
    #[arg(long, env = "YIZHAN_NO_SEED")]
    pub no_seed: bool,
    /// Seconds between polls of the change feed for writes made by other processes.
    #[arg(long, env = "YIZHAN_FOLLOW_INTERVAL", default_value_t = 2.0)]
    pub follow_interval: f64,
    /// Log line format.
    #[arg(long, env = "YIZHAN_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

fn parse_crs(s: &str) -> Result<Crs, String> {
    s.parse::<Crs>().map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service.
    Serve(ServeArgs),
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
