//! `liftguard`: one binary, every role. See `liftguard --help` and README.md.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use liftguard::{
    admin, analyze, config,
    config::{FileConfig, Settings},
    demo, replay, report,
    serve::{self, Roles},
    simulate,
};
use liftguard_model::Exercise;
use liftguard_runtime::telemetry::{self, LogFormat};

#[derive(Debug, Parser)]
#[command(
    name = "liftguard",
    version,
    about = "Back-safety telemetry for gym sensor fleets"
)]
struct Cli {
    /// Optional TOML configuration file (see README); flags and env vars override it.
    #[arg(long, env = "LIFTGUARD_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(
        long,
        env = "LIFTGUARD_LOG_FORMAT",
        global = true,
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormatArg,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The whole system in one process on a simulated gym; prints the clinician summary.
    Demo(DemoArgs),
    /// All roles in one server (embedded bus + SQLite unless --kafka / --database).
    Run(ServeArgs),
    /// The gRPC ingest role alone.
    Ingest(ServeArgs),
    /// The stream processor role alone.
    Process(ServeArgs),
    /// The sink role alone.
    Sink(ServeArgs),
    /// The Registry and Query gRPC role alone.
    Api(ServeArgs),
    /// Create or upgrade the database schema, then exit.
    Migrate {
        #[arg(long, env = "LIFTGUARD_DATABASE_URL")]
        database: Option<String>,
    },
    /// Stream recordings (CSV `t_s,ax,ay,az,gx,gy,gz`, one per sensor) to an ingest endpoint.
    Replay(ReplayArgs),
    /// Enrollment: gyms, keys, athletes, sensors.
    Admin {
        #[arg(
            long,
            env = "LIFTGUARD_ENDPOINT",
            default_value = "http://127.0.0.1:50051"
        )]
        endpoint: String,
        /// Operator token or gym API key.
        #[arg(long, env = "LIFTGUARD_TOKEN", hide_env_values = true)]
        token: String,
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
    /// Clinician analytics over the store (polars): the summary, or `trends`, `trending`,
    /// `load`, `athlete`, `export`.
    Report(report::ReportArgs),
    /// Run the biomechanics over two recordings offline; writes reps.csv and lumbar.csv.
    Analyze(AnalyzeArgs),
    /// Write a simulated session as recordings plus ground truth.
    Simulate {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 4.0)]
        minutes: f64,
    },
}

#[derive(Debug, Args)]
struct DemoArgs {
    #[arg(long, default_value_t = 6)]
    athletes: u32,
    #[arg(long, default_value_t = 5.0)]
    minutes: f64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Where the SQLite database is kept.
    #[arg(long, default_value = "liftguard-demo")]
    data_dir: PathBuf,
    /// Also export the summary tables (CSV and Parquet) here.
    #[arg(long)]
    export: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Kafka bootstrap servers; absent: the embedded in-process bus.
    #[arg(long = "kafka", env = "LIFTGUARD_KAFKA_BROKERS")]
    kafka_brokers: Option<String>,
    /// postgres://… (TimescaleDB or PostgreSQL) or sqlite://…
    #[arg(long = "database", env = "LIFTGUARD_DATABASE_URL")]
    database_url: Option<String>,
    #[arg(long, env = "LIFTGUARD_GRPC_ADDR")]
    grpc_addr: Option<SocketAddr>,
    /// Metrics (/metrics) and health (/healthz, /readyz).
    #[arg(long, env = "LIFTGUARD_HTTP_ADDR")]
    http_addr: Option<SocketAddr>,
    /// The operator token (may create gyms and see every gym).
    #[arg(long, env = "LIFTGUARD_OPERATOR_TOKEN", hide_env_values = true)]
    operator_token: Option<String>,
    /// The clinicians' dashboard (api role): serve it on this address, e.g. 0.0.0.0:8080.
    #[arg(long, env = "LIFTGUARD_DASHBOARD_ADDR")]
    dashboard_addr: Option<SocketAddr>,
}

#[derive(Debug, Args)]
struct ReplayArgs {
    /// Recordings, one per sensor (CSV `t_s,ax,ay,az,gx,gy,gz`).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The sensor id of each file, in the same order.
    #[arg(long = "sensor", required = true)]
    sensors: Vec<String>,
    #[arg(
        long,
        env = "LIFTGUARD_ENDPOINT",
        default_value = "http://127.0.0.1:50051"
    )]
    endpoint: String,
    #[arg(long, env = "LIFTGUARD_API_KEY", hide_env_values = true)]
    api_key: String,
    #[arg(long)]
    rate_hz: Option<f64>,
    #[arg(long, default_value_t = 1)]
    first_seq: u64,
    #[arg(long, default_value_t = 100)]
    batch_len: usize,
    #[arg(long, default_value_t = 0.0)]
    time_offset_s: f64,
    #[arg(long, value_parser = parse_exercise)]
    exercise: Option<Exercise>,
    #[arg(long)]
    load_kg: Option<f32>,
    #[arg(long)]
    set_id: Option<String>,
}

#[derive(Debug, Args)]
struct AnalyzeArgs {
    #[arg(long)]
    thoracolumbar: PathBuf,
    #[arg(long)]
    sacrum: PathBuf,
    #[arg(long, value_parser = parse_exercise)]
    exercise: Option<Exercise>,
    #[arg(long)]
    load_kg: Option<f64>,
    #[arg(long, default_value_t = 1.75)]
    height_m: f64,
    #[arg(long, default_value_t = 75.0)]
    mass_kg: f64,
    #[arg(long, default_value = "liftguard-analysis")]
    out: PathBuf,
}

fn parse_exercise(s: &str) -> Result<Exercise, String> {
    Exercise::parse(s).ok_or_else(|| {
        format!("unknown exercise {s:?}: use deadlift, squat, kettlebell_swing or carry")
    })
}

fn settings(a: ServeArgs, mut file: FileConfig) -> Settings {
    if let Some(addr) = a.dashboard_addr {
        file.api.dashboard.addr = Some(addr);
    }
    Settings {
        grpc_addr: a
            .grpc_addr
            .or(file.grpc_addr)
            .unwrap_or_else(|| config::DEFAULT_GRPC_ADDR.parse().expect("constant address")),
        http_addr: a
            .http_addr
            .or(file.http_addr)
            .unwrap_or_else(|| config::DEFAULT_HTTP_ADDR.parse().expect("constant address")),
        database_url: a
            .database_url
            .or_else(|| file.database_url.clone())
            .unwrap_or_else(|| config::DEFAULT_DATABASE_URL.to_owned()),
        kafka_brokers: a.kafka_brokers.or_else(|| file.kafka_brokers.clone()),
        operator_token: a.operator_token.or_else(|| file.operator_token.clone()),
        file,
    }
}

async fn serve_roles(a: ServeArgs, file: FileConfig, roles: Roles) -> anyhow::Result<()> {
    let s = settings(a, file);
    let node = serve::start(&s, roles, prometheus::Registry::new()).await?;
    if let Some(addr) = node.grpc_addr {
        // Machine-readable line for supervisors and tests.
        let dashboard = node
            .dashboard_addr
            .map(|d| format!(" dashboard={d}"))
            .unwrap_or_default();
        println!("LISTENING grpc={addr} http={}{dashboard}", node.http_addr);
    } else {
        println!("LISTENING http={}", node.http_addr);
    }
    node.run_until_signal().await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let default_filter = match cli.command {
        Command::Demo(_) => "warn",
        _ => "info",
    };
    telemetry::init(
        match cli.log_format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        },
        default_filter,
    );
    let file = FileConfig::load(cli.config.as_deref())?;
    match cli.command {
        Command::Demo(d) => {
            demo::run(demo::DemoOptions {
                athletes: d.athletes,
                minutes: d.minutes,
                seed: d.seed,
                data_dir: d.data_dir,
                export: d.export,
                file,
            })
            .await
        }
        Command::Run(a) => serve_roles(a, file, Roles::ALL).await,
        Command::Ingest(a) => {
            serve_roles(
                a,
                file,
                Roles {
                    ingest: true,
                    ..Roles::default()
                },
            )
            .await
        }
        Command::Process(a) => {
            serve_roles(
                a,
                file,
                Roles {
                    process: true,
                    ..Roles::default()
                },
            )
            .await
        }
        Command::Sink(a) => {
            serve_roles(
                a,
                file,
                Roles {
                    sink: true,
                    ..Roles::default()
                },
            )
            .await
        }
        Command::Api(a) => {
            serve_roles(
                a,
                file,
                Roles {
                    api: true,
                    ..Roles::default()
                },
            )
            .await
        }
        Command::Migrate { database } => {
            let url = database
                .or_else(|| file.database_url.clone())
                .unwrap_or_else(|| config::DEFAULT_DATABASE_URL.to_owned());
            let store = serve::open_store(&url, file.store.max_connections).await?;
            println!("migrated {} ({:?})", serve::redact(&url), store.backend());
            // Retention, compression and rollup-refresh settings ([store.*] of the file).
            for change in store.apply_policies(&file.store.policies()).await?.changes {
                println!("  {change}");
            }
            store.close().await;
            Ok(())
        }
        Command::Replay(r) => {
            anyhow::ensure!(
                r.files.len() == r.sensors.len(),
                "give one --sensor per file ({} files, {} sensors)",
                r.files.len(),
                r.sensors.len()
            );
            replay::run(replay::ReplayOptions {
                files: r.files.into_iter().zip(r.sensors).collect(),
                endpoint: r.endpoint,
                api_key: r.api_key,
                rate_hz: r.rate_hz,
                first_seq: r.first_seq,
                batch_len: r.batch_len,
                time_offset_s: r.time_offset_s,
                exercise: r.exercise,
                load_kg: r.load_kg,
                set_id: r.set_id,
            })
            .await
        }
        Command::Admin {
            endpoint,
            token,
            command,
        } => admin::run(&endpoint, &token, command).await,
        Command::Report(args) => {
            let url = args
                .database
                .clone()
                .or_else(|| file.database_url.clone())
                .unwrap_or_else(|| config::DEFAULT_DATABASE_URL.to_owned());
            let secret = std::env::var("LIFTGUARD_PSEUDONYM_SECRET")
                .ok()
                .filter(|s| !s.is_empty())
                .or_else(|| file.api.pseudonym_secret.clone());
            report::run(args, &url, file.store.max_connections, secret).await
        }
        Command::Analyze(a) => analyze::run(analyze::AnalyzeOptions {
            thoracolumbar: a.thoracolumbar,
            sacrum: a.sacrum,
            exercise: a.exercise,
            load_kg: a.load_kg,
            height_m: a.height_m,
            mass_kg: a.mass_kg,
            out: a.out,
            config: file.processor.biomech.clone(),
        })
        .context("analyze"),
        Command::Simulate { out, seed, minutes } => simulate::run(out, seed, minutes),
    }
}
