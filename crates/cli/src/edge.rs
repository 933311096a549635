//! The HTTP edge as part of a process: `tradeflow edge` (alone) and `tradeflow up` (with
//! the pipeline), plus `tradeflow auth` (hash a password or an API key for the config).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use prometheus::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tradeflow_audit::AuditStore;
use tradeflow_bus::{Bus, Producer};
use tradeflow_core::control::ControlState;
use tradeflow_edge::auth::{Auth, Role, hash_password};
use tradeflow_edge::secret;
use tradeflow_edge::{AppState, EdgeConfig, EdgeMetrics, Pipeline};

use crate::config::Settings;
use crate::{stages, worker};

/// What the edge is given by the process it runs in.
pub struct EdgeParts {
    pub bus: Bus,
    pub registry: Registry,
    pub store: Option<Arc<AuditStore>>,
    pub pipeline: Pipeline,
    pub control: watch::Receiver<ControlState>,
    /// The JWT signing secret (None: required from the environment unless dev mode).
    pub secret: Option<Vec<u8>>,
    /// Users besides the configured ones (the `admin` of `tradeflow up`).
    pub extra_users: Vec<(String, String, Role)>,
}

/// Binds `listen` and serves the edge until `stop`; returns the bound address and the task.
pub async fn start(
    config: EdgeConfig,
    listen: SocketAddr,
    parts: EdgeParts,
    stop: CancellationToken,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<anyhow::Result<()>>)> {
    let mut auth = Auth::new(&config, parts.secret, parts.extra_users)?;
    // A rotation: tokens signed with the previous secret stay valid until they expire.
    if let Some(previous) =
        std::env::var(&config.jwt_previous_secret_env).ok().filter(|s| !s.is_empty()).map(String::into_bytes)
    {
        auth = auth.with_previous_secret(&previous, &config.jwt_previous_secret_env)?;
    }
    let metrics = EdgeMetrics::register(&parts.registry)?;
    let hub = tradeflow_edge::hub::Hub::new(config.ws.clone());
    let state = AppState {
        producer: Producer::new(parts.bus.clone(), "edge"),
        bus: parts.bus,
        store: parts.store,
        auth: Arc::new(auth),
        config: Arc::new(config),
        live: Arc::default(),
        outcomes: Arc::default(),
        hub,
        registry: parts.registry,
        metrics,
        pipeline: Arc::new(parts.pipeline),
        control: parts.control,
        scheduler: Arc::default(),
        ai: Arc::default(),
        monitor: Arc::default(),
        serving: Arc::default(),
        started_at: Instant::now(),
    };
    let listener =
        tokio::net::TcpListener::bind(listen).await.with_context(|| format!("edge: cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let server = tradeflow_edge::start(state, listener, stop).await?;
    let task = tokio::spawn(async move { server.await.context("edge") });
    Ok((addr, task))
}

/// The signing secret from the configured environment variable.
pub fn secret_from_env(config: &EdgeConfig) -> Option<Vec<u8>> {
    std::env::var(&config.jwt_secret_env).ok().filter(|s| !s.is_empty()).map(String::into_bytes)
}

/// `tradeflow up`'s secret: the environment's, else one kept in `<data-dir>/edge.secret`
/// (made on first start, mode 0600), so tokens survive a restart.
pub fn secret_for_up(config: &EdgeConfig, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Some(s) = secret_from_env(config) {
        return Ok(s);
    }
    let path = data_dir.join("edge.secret");
    if let Ok(s) = std::fs::read_to_string(&path)
        && s.trim().len() >= 32
    {
        return Ok(s.trim().as_bytes().to_vec());
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let secret = secret::jwt_secret()?;
    write_private(&path, &secret)?;
    Ok(secret.into_bytes())
}

/// Writes `text` to `path`, readable and writable by the owner only (mode 0600, also when the
/// file was there before with a wider mode).
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    o.mode(0o600);
    let mut f = o.open(path).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", path.display()))?;
    f.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}

/// Where `tradeflow up` puts the admin password it generates.
pub const ADMIN_PASSWORD_FILE: &str = "edge-admin.password";

/// The `admin` user of `tradeflow up`: password from `TRADEFLOW_ADMIN_PASSWORD`; else the
/// hash kept in `<data-dir>/edge-admin.hash`; else a generated password (from the OS
/// generator), written to `<data-dir>/edge-admin.password` (mode 0600) whose path, never the
/// password, is printed: output and logs are collected and kept (journald, CI, docker logs),
/// a file only its owner can read is not.
pub async fn admin_for_up(data_dir: &Path) -> anyhow::Result<(String, String, Role)> {
    let path = data_dir.join("edge-admin.hash");
    let hash = match std::env::var("TRADEFLOW_ADMIN_PASSWORD").ok().filter(|p| !p.is_empty()) {
        Some(password) => blocking_hash(password).await?,
        None => match std::fs::read_to_string(&path).ok().filter(|h| h.starts_with("$argon2")) {
            Some(h) => h.trim().to_string(),
            None => {
                let password = secret::password()?;
                let hash = blocking_hash(password.clone()).await?;
                std::fs::create_dir_all(data_dir)?;
                let password_file = data_dir.join(ADMIN_PASSWORD_FILE);
                write_private(&password_file, &format!("{password}\n"))?;
                write_private(&path, &hash)?;
                println!(
                    "edge: user admin, generated password in {} (mode 0600; delete it once read, or set TRADEFLOW_ADMIN_PASSWORD to choose it)",
                    password_file.display()
                );
                hash
            }
        },
    };
    Ok(("admin".into(), hash, Role::Admin))
}

async fn blocking_hash(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await?
        .map_err(|e| anyhow::anyhow!("cannot hash the admin password: {e}"))
}

#[derive(Args)]
pub struct EdgeArgs {
    /// Listen address (default `[edge] listen`, env TRADEFLOW_EDGE_LISTEN, else 127.0.0.1:8080).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Development mode: a random signing secret when TRADEFLOW_JWT_SECRET is not set.
    #[arg(long)]
    dev: bool,
    /// The audit store to read (`sqlite://...`, `postgres://...`); without it, routes that
    /// need the database answer 503.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Ensemble profiles (as the ensemble worker reads them).
    #[arg(long, value_name = "FILE", env = "TRADEFLOW_PROFILES")]
    profiles: Option<PathBuf>,
    /// Accounts (as the risk and exec workers read them); account routes rewrite this file.
    #[arg(long, value_name = "FILE", env = "TRADEFLOW_ACCOUNTS")]
    accounts: Option<PathBuf>,
    /// Inference models, comma-separated (for on-demand analysis).
    #[arg(long, value_delimiter = ',', default_value = "technical")]
    models: Vec<String>,
    #[arg(long, value_name = "FILE", env = "TRADEFLOW_LLM_CONFIG")]
    llm_config: Option<PathBuf>,
}

/// `tradeflow edge`: the edge alone, against a running pipeline.
pub async fn run(settings: &Settings, args: EdgeArgs) -> anyhow::Result<()> {
    let bus = crate::connect(settings).await?;
    bus.init().await?;
    let mut config = settings.edge.clone();
    config.dev |= args.dev;
    let listen = args.listen.unwrap_or_else(|| config.listen_addr());
    let profiles = worker::load_profiles(args.profiles.as_deref())?;
    let accounts = stages::load_accounts(args.accounts.as_deref(), &profiles)?;
    let store = match &args.database_url {
        Some(url) => Some(stages::audit_store(url).await?),
        None => None,
    };
    let stop = CancellationToken::new();
    worker::spawn_signal_handler(stop.clone())?;
    let control = stages::follow_control(&bus, stop.clone());
    let secret = secret_from_env(&config);
    let registry = Registry::new();
    crate::process_metrics::register(&registry)?;
    let parts = EdgeParts {
        bus,
        registry,
        store,
        pipeline: Pipeline {
            profiles,
            accounts: accounts.into(),
            accounts_path: args.accounts,
            models: args.models,
            llm_config: args.llm_config,
        },
        control,
        secret,
        extra_users: Vec::new(),
    };
    let (addr, task) = start(config, listen, parts, stop).await?;
    println!("edge: http://{addr}/api/v1 (docs http://{addr}/docs)");
    task.await.context("edge task")?
}

#[derive(Subcommand)]
pub enum AuthCommand {
    /// Reads a password on stdin, prints its argon2id hash for `[[edge.user]] password_hash`.
    HashPassword,
    /// Reads an API key on stdin, prints its SHA-256 for `[[edge.api_key]] key_sha256`.
    HashApiKey,
    /// Makes a new API key (from the OS generator): prints the key, then its SHA-256.
    NewApiKey,
}

pub fn run_auth(command: AuthCommand) -> anyhow::Result<()> {
    if let AuthCommand::NewApiKey = command {
        let key = secret::api_key()?;
        println!("key        {key}");
        println!("key_sha256 {}", tradeflow_edge::auth::api_key_digest(&key));
        return Ok(());
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).context("cannot read stdin")?;
    let secret = line.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(!secret.is_empty(), "nothing on stdin");
    match command {
        AuthCommand::HashPassword => println!("{}", hash_password(secret).map_err(|e| anyhow::anyhow!(e))?),
        AuthCommand::HashApiKey => println!("{}", tradeflow_edge::auth::api_key_digest(secret)),
        AuthCommand::NewApiKey => {}
    }
    Ok(())
}
