//! The `gatehouse` binary: CLI, configuration, telemetry, start-up and graceful shutdown.

mod telemetry;

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use anyhow::Context;
use clap::{Parser, Subcommand};
use gatehouse::config;
use gatehouse_api::Application;
use gatehouse_app::{App, RequestMeta, admin_keys, identity_providers, keys::KeyRing};
use gatehouse_core::clock::{Clock, SystemClock};
use gatehouse_core::config::Config;
use gatehouse_store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "gatehouse",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("BUILD_GIT_COMMIT"), ")"),
    about = "A self-hostable, Hanko-compatible authentication server"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Args)]
struct ConfigArg {
    /// YAML configuration file. Without one, Gatehouse starts in development mode.
    #[arg(long, short, env = "GATEHOUSE_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve(ConfigArg),
    /// Apply database migrations and exit.
    Migrate(ConfigArg),
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Session signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Credentials for identity providers.
    #[command(subcommand)]
    Credentials(CredentialsCommand),
    /// Keys for the admin API and console.
    #[command(subcommand)]
    AdminKey(AdminKeyCommand),
}

#[derive(Debug, Subcommand)]
enum CredentialsCommand {
    /// Make a key pair and a self-signed certificate for `private_key_jwt`. The key is stored in the database,
    /// encrypted under secret_keys, and used from now on (before any secret); the certificate is printed, to
    /// upload to the app registration under "Certificates & secrets".
    NewCertificate {
        #[command(flatten)]
        config: ConfigArg,
        /// The provider the certificate is for.
        #[arg(long, default_value = "microsoft", value_parser = ["microsoft"])]
        provider: String,
        /// Days until the certificate expires.
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
        days: u32,
    },
}

#[derive(Debug, Subcommand)]
enum AdminKeyCommand {
    /// Create an admin key. It is printed once; only its hash is stored.
    New {
        #[command(flatten)]
        config: ConfigArg,
        /// What the key is for (shown in the audit log), e.g. "ops laptop" or "terraform": one line, at most 64
        /// characters.
        #[arg(long, value_parser = parse_admin_key_name)]
        name: String,
    },
    /// List admin keys in the database (never the keys themselves).
    List(ConfigArg),
    /// Revoke an admin key by id; every instance refuses it from the next request on.
    Revoke {
        #[command(flatten)]
        config: ConfigArg,
        /// The key's id, as `list` shows it.
        id: uuid::Uuid,
    },
    /// Print the hash of a key read from standard input, for server.admin.api_keys.
    Hash,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Load and validate the configuration, then print it with secrets redacted.
    Check(ConfigArg),
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Make a new signing key; older keys keep verifying until the tokens they signed expire.
    Rotate(ConfigArg),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Serve(ConfigArg { config: None })) {
            Command::Serve(args) => serve(args).await,
            Command::Migrate(args) => migrate(args).await,
            Command::Config(ConfigCommand::Check(args)) => check(args),
            Command::Keys(KeysCommand::Rotate(args)) => rotate(args).await,
            Command::Credentials(CredentialsCommand::NewCertificate { config, provider, days }) => {
                new_certificate(config, &provider, days).await
            }
            Command::AdminKey(command) => admin_key(command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(args: &ConfigArg) -> anyhow::Result<(Config, config::DevSecret)> {
    let dir = std::env::current_dir().context("cannot read the working folder")?;
    Ok(config::load(args.config.as_deref(), &dir)?)
}

fn warn_dev_secret(dev: &config::DevSecret) {
    match dev {
        config::DevSecret::NotNeeded => {}
        config::DevSecret::Generated(path) | config::DevSecret::Reused(path) => tracing::warn!(
            file = %path.display(),
            "DEVELOPMENT MODE: no secret_keys configured, using a generated key kept in this file. \
             Production must set its own secret_keys (GATEHOUSE_SECRET_KEYS or a config file)."
        ),
    }
}

async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(config.database.url.expose(), config.database.max_connections)
        .await
        .with_context(|| format!("cannot open the database {}", config.database.url.redacted()))?;
    store.migrate().await.context("cannot migrate the database")?;
    Ok(store)
}

async fn serve(args: ConfigArg) -> anyhow::Result<()> {
    let (config, dev) = load(&args)?;
    telemetry::init(&config.log);
    warn_dev_secret(&dev);
    raise_open_files_limit();
    let store = open_store(&config).await?;
    if !matches!(dev, config::DevSecret::NotNeeded) {
        create_development_admin_key(&config, &store).await?;
    }
    let app = Application::build(Arc::new(config.clone()), store).await?;
    let base = format!("http://{}", app.local_addr());
    tracing::info!("Gatehouse is listening on {base}");
    if let Some(admin) = app.admin_addr() {
        tracing::info!("Admin API and console on http://{admin}");
    }
    for path in ["/.well-known/jwks.json", "/sessions/validate", "/me", "/logout", "/health/ready"] {
        tracing::info!("  {base}{path}");
    }
    if let Some(redirect_url) = &config.third_party.redirect_url {
        tracing::info!("Redirect URL for the Azure app registration: {redirect_url}");
    }
    app.run_until_stopped(shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(())
}

/// Raises the soft open-file limit to the hard one: every connection is a file, and the default soft limit
/// (often 1,024) would cap the connections far below what the machine can serve. Each listener's connection cap
/// is then sized from the raised limit.
#[cfg(unix)]
fn raise_open_files_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return;
    }
    let raised = rustix::process::Rlimit { current: limit.maximum, maximum: limit.maximum };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::debug!(limit = ?limit.maximum, "open-file limit raised"),
        Err(error) => tracing::warn!(%error, current = ?limit.current, "cannot raise the open-file limit"),
    }
}

#[cfg(not(unix))]
fn raise_open_files_limit() {}

/// In development mode only (no secret_keys configured): an admin key, so the console can be tried at once.
/// Printed once; later starts find it in the database and print nothing.
async fn create_development_admin_key(config: &Config, store: &Store) -> anyhow::Result<()> {
    let admin = &config.server.admin;
    if !admin.enabled || !admin.api_keys.is_empty() || !store.active_admin_keys().await?.is_empty() {
        return Ok(());
    }
    let (key, record) = admin_keys::generate("development", SystemClock.now_ms());
    store.insert_admin_key(&record).await?;
    eprintln!("DEVELOPMENT MODE: admin key for the console at http://{} (shown only now): {key}", admin.address);
    Ok(())
}

async fn admin_store(args: &ConfigArg) -> anyhow::Result<Store> {
    let (config, _) = load(args)?;
    open_store(&config).await
}

fn parse_admin_key_name(name: &str) -> Result<String, String> {
    gatehouse_core::config::check_admin_key_name(name).map(|()| name.to_owned())
}

async fn admin_key(command: AdminKeyCommand) -> anyhow::Result<()> {
    let when = |at: Option<i64>| at.map_or_else(|| "-".to_owned(), gatehouse_core::clock::rfc3339_ms);
    match command {
        AdminKeyCommand::New { config, name } => {
            let (key, record) = admin_keys::generate(&name, SystemClock.now_ms());
            admin_store(&config).await?.insert_admin_key(&record).await?;
            println!("admin key {} ({name}); it is shown only now:\n{key}", record.id);
        }
        AdminKeyCommand::List(config) => {
            for key in admin_store(&config).await?.list_admin_keys().await? {
                println!(
                    "{}  {:<24}  created {}  last used {}  revoked {}",
                    key.id,
                    key.name,
                    when(Some(key.created_at)),
                    when(key.last_used_at),
                    when(key.revoked_at)
                );
            }
        }
        AdminKeyCommand::Revoke { config, id } => {
            let revoked = admin_store(&config).await?.revoke_admin_key(id, SystemClock.now_ms()).await?;
            anyhow::ensure!(revoked, "no active admin key {id}");
            println!("admin key {id} revoked");
        }
        AdminKeyCommand::Hash => {
            let mut key = String::new();
            std::io::stdin().read_line(&mut key).context("cannot read the key from standard input")?;
            println!("{}", admin_keys::hash(key.trim()));
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

async fn migrate(args: ConfigArg) -> anyhow::Result<()> {
    let (config, _) = load(&args)?;
    telemetry::init(&config.log);
    open_store(&config).await?;
    println!("migrations applied to {}", config.database.url.redacted());
    Ok(())
}

fn check(args: ConfigArg) -> anyhow::Result<()> {
    let dir = std::env::current_dir().context("cannot read the working folder")?;
    let mut config = config::read(args.config.as_deref())?;
    if args.config.is_none() && config.all_secret_keys().is_empty() {
        println!(
            "# development mode: a secret key would be generated into {}",
            dir.join(config::DEV_SECRET_FILE).display()
        );
        config.secret_keys = vec![gatehouse_core::config::Secret::new(gatehouse_crypto::random::token())];
    }
    let issues = config.validate();
    print!("{}", serde_yaml::to_string(&config).context("cannot render the configuration")?);
    if let Some(redirect_url) = &config.third_party.redirect_url {
        println!("# Redirect URL for the Azure app registration: {redirect_url}");
    }
    if issues.is_empty() {
        println!("# configuration is valid");
        Ok(())
    } else {
        Err(config::LoadError::Invalid(issues).into())
    }
}

async fn new_certificate(args: ConfigArg, provider: &str, days: u32) -> anyhow::Result<()> {
    let (config, dev) = load(&args)?;
    telemetry::init(&config.log);
    warn_dev_secret(&dev);
    let store = open_store(&config).await?;
    let app = App::new(Arc::new(config), store, Arc::new(SystemClock)).await?;
    let actor = admin_keys::AdminActor { key_id: "cli".into(), name: "gatehouse credentials new-certificate".into() };
    let new = identity_providers::NewCertificate::Generate { days, algorithm: "PS256".into() };
    let (saved, id) = app
        .identity_providers()
        .add_certificate(&actor, &RequestMeta::default(), new)
        .await
        .map_err(|error| anyhow::anyhow!("cannot add the certificate: {error}"))?;
    let certificate = saved.settings.microsoft_certificates.iter().find(|certificate| certificate.id == id);
    let pem = certificate.map(|certificate| certificate.certificate.as_str()).unwrap_or_default();
    println!("New {provider} certificate {id}: its private key is stored in the database, encrypted, and is used");
    println!("from now on (a running Gatehouse picks it up within seconds). Upload this certificate to the app");
    println!("registration now (Certificates & secrets > Certificates > Upload certificate):\n");
    print!("{pem}");
    println!("\nSHA-256 thumbprint (x5t#S256): {}", gatehouse_crypto::certificate::thumbprint_sha256(pem)?);
    Ok(())
}

async fn rotate(args: ConfigArg) -> anyhow::Result<()> {
    let (config, dev) = load(&args)?;
    telemetry::init(&config.log);
    warn_dev_secret(&dev);
    let store = open_store(&config).await?;
    let secret_keys = config.all_secret_keys();
    let sealer =
        gatehouse_crypto::sealing::Sealer::new(&secret_keys.iter().map(|key| key.expose()).collect::<Vec<_>>())?;
    let sealer = Arc::new(sealer);
    let kid = KeyRing::new(store, sealer, &config.session, Arc::new(SystemClock)).rotate().await?;
    println!("new signing key {kid}; older keys keep verifying until the tokens they signed expire");
    Ok(())
}
