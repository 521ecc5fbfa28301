//! The `gatehouse` binary: CLI, configuration, telemetry, start-up and graceful shutdown.

mod telemetry;

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use anyhow::Context;
use clap::{Parser, Subcommand};
use gatehouse::config;
use gatehouse_api::Application;
use gatehouse_app::{App, RequestMeta, admin_keys, hanko_import, identity_providers, keys::KeyRing};
use gatehouse_core::config::Config;
use gatehouse_core::{
    clock::{Clock, SystemClock, Timestamp},
    ids::AdminKeyId,
};
use gatehouse_store::{HankoDatabase, Store};

#[derive(Debug, Parser)]
#[command(
    name = "gatehouse",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("BUILD_GIT_COMMIT"), ")"),
    about = "A self-hostable, Hanko-compatible authentication server"
)]
struct Cli {
    #[command(flatten)]
    options: Options,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Where the configuration comes from; given before or after the subcommand.
#[derive(Debug, clap::Args)]
struct Options {
    /// YAML configuration file (Gatehouse's or Hanko's). Without one, `serve` starts in development mode.
    #[arg(long, short, global = true, env = config::CONFIG_FILE_ENV, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Development mode for commands other than `serve`: no configuration file, the database and generated secret
    /// key in the working folder (`serve` without a configuration is in development mode anyway).
    #[arg(long, global = true, conflicts_with = "config")]
    dev: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
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
    /// Bring users over from another server.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Print the URL where a tenant's administrator approves the Microsoft app for their whole organisation
    /// (admin consent), with the settings in force (the file's, and the console's saved over them).
    ConsentUrl {
        /// The tenant: its GUID or a verified domain; `organizations` for whichever organisation the administrator
        /// signs in to. Default: third_party.providers.microsoft.tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ImportCommand {
    /// Import users, their emails and their Microsoft identities from a Hanko database (only read) into the
    /// configured one, keeping user ids. Users imported before are left as they are, so it can run again.
    Hanko {
        /// Hanko's PostgreSQL database, e.g. postgres://hanko:PASSWORD@localhost:5432/hanko.
        #[arg(long, value_name = "URL", env = "HANKO_DATABASE_URL", hide_env_values = true)]
        from: String,
    },
}

#[derive(Debug, Subcommand)]
enum CredentialsCommand {
    /// Make a key pair and a self-signed certificate for `private_key_jwt`. The key is stored in the database,
    /// encrypted under secret_keys, and used from now on (before any secret); the certificate is printed, to
    /// upload to the app registration under "Certificates & secrets".
    NewCertificate {
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
        /// What the key is for (shown in the audit log), e.g. "ops laptop" or "terraform": one line, at most 64
        /// characters.
        #[arg(long, value_parser = parse_admin_key_name)]
        name: String,
    },
    /// List admin keys in the database (never the keys themselves).
    List,
    /// Revoke an admin key by id; every instance refuses it from the next request on.
    Revoke {
        /// The key's id, as `list` shows it.
        #[arg(value_parser = parse_admin_key_id)]
        id: AdminKeyId,
    },
    /// Print the hash of a key read from standard input, for server.admin.api_keys.
    Hash,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Load and validate the configuration, then print it with secrets redacted.
    Check,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Make a new signing key; older keys keep verifying until the tokens they signed expire.
    Rotate,
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
        let options = cli.options;
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(&options).await,
            Command::Migrate => migrate(&options).await,
            Command::Config(ConfigCommand::Check) => check(&options),
            Command::Keys(KeysCommand::Rotate) => rotate(&options).await,
            Command::Credentials(CredentialsCommand::NewCertificate { provider, days }) => {
                new_certificate(&options, &provider, days).await
            }
            Command::AdminKey(command) => admin_key(&options, command).await,
            Command::Import(ImportCommand::Hanko { from }) => import_hanko(&options, &from).await,
            Command::ConsentUrl { tenant } => consent_url(&options, tenant.as_deref()).await,
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

/// Loads the configuration. Development mode (no file, no secret key) is for `serve` and for `--dev` only: any
/// other command would otherwise quietly work on, and create, a database in whatever folder it was run from.
fn load(options: &Options, command: &str) -> anyhow::Result<(Config, config::DevSecret)> {
    let dir = std::env::current_dir().context("cannot read the working folder")?;
    let development = if options.dev || command == "serve" {
        config::Development::Allowed
    } else {
        config::Development::Refused { command }
    };
    Ok(config::load(options.config.as_deref(), &dir, development)?)
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

/// Opens the database and applies the migrations not applied yet (how many is returned).
async fn open_store(config: &Config) -> anyhow::Result<(Store, usize)> {
    let url = &config.database.url;
    check_postgres_reachable(url.expose()).await?;
    let store = Store::connect(url.expose(), config.database.max_connections)
        .await
        .with_context(|| format!("cannot open the database {}", url.redacted()))?;
    let applied = store.migrate().await.context("cannot migrate the database")?;
    Ok((store, applied))
}

/// How long start-up waits for PostgreSQL's port to answer before saying it cannot be reached.
const POSTGRES_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Fails fast, naming the host and port, when PostgreSQL cannot be reached at all; the pool would wait for its
/// full acquire timeout and then say only "pool timed out".
async fn check_postgres_reachable(url: &str) -> anyhow::Result<()> {
    let Ok(parsed) = url::Url::parse(url) else { return Ok(()) };
    // No host: a Unix socket, which the driver reports clearly itself.
    let Some(host) = parsed.host_str().filter(|_| matches!(parsed.scheme(), "postgres" | "postgresql")) else {
        return Ok(());
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = parsed.port().unwrap_or(5432);
    match tokio::time::timeout(POSTGRES_CONNECT_TIMEOUT, tokio::net::TcpStream::connect((host, port))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => anyhow::bail!("cannot reach PostgreSQL at {host}:{port} (database.url): {error}"),
        Err(_) => anyhow::bail!(
            "cannot reach PostgreSQL at {host}:{port} (database.url): no answer within {}s",
            POSTGRES_CONNECT_TIMEOUT.as_secs()
        ),
    }
}

async fn serve(options: &Options) -> anyhow::Result<()> {
    let (config, dev) = load(options, "serve")?;
    telemetry::init(&config.log);
    warn_dev_secret(&dev);
    raise_open_files_limit();
    let (store, _) = open_store(&config).await?;
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
    let (key, record) = admin_keys::generate("development", SystemClock.now());
    store.insert_admin_key(&record).await?;
    eprintln!("DEVELOPMENT MODE: admin key for the console at http://{} (shown only now): {key}", admin.address);
    eprintln!("  (lost it? in this folder, `gatehouse --dev admin-key new --name console` makes another)");
    Ok(())
}

async fn admin_store(options: &Options, command: &str) -> anyhow::Result<Store> {
    let (config, _) = load(options, command)?;
    Ok(open_store(&config).await?.0)
}

fn parse_admin_key_name(name: &str) -> Result<String, String> {
    gatehouse_core::config::check_admin_key_name(name).map(|()| name.to_owned())
}

fn parse_admin_key_id(id: &str) -> Result<AdminKeyId, String> {
    id.parse::<AdminKeyId>().map_err(|_| {
        "an admin key is revoked by its id, a UUID such as 0193b6c4-5f2e-7a31-9c1d-2b8e4f6a7c90, as \
         gatehouse admin-key list prints it"
            .to_owned()
    })
}

async fn admin_key(options: &Options, command: AdminKeyCommand) -> anyhow::Result<()> {
    let when = |at: Option<Timestamp>| at.map_or_else(|| "-".to_owned(), Timestamp::rfc3339);
    match command {
        AdminKeyCommand::New { name } => {
            let (key, record) = admin_keys::generate(&name, SystemClock.now());
            admin_store(options, "admin-key new").await?.insert_admin_key(&record).await?;
            println!("admin key {} ({name}); it is shown only now:\n{key}", record.id);
        }
        AdminKeyCommand::List => {
            for key in admin_store(options, "admin-key list").await?.list_admin_keys().await? {
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
        AdminKeyCommand::Revoke { id } => {
            let store = admin_store(options, "admin-key revoke").await?;
            let revoked = store.revoke_admin_key(id, SystemClock.now()).await?;
            anyhow::ensure!(revoked, "no active admin key {id}");
            println!("admin key {id} revoked");
        }
        AdminKeyCommand::Hash => {
            let mut key = String::new();
            std::io::stdin().read_line(&mut key).context("cannot read the key from standard input")?;
            anyhow::ensure!(
                !key.trim().is_empty(),
                "no key on standard input; pipe it in: echo -n \"$KEY\" | gatehouse admin-key hash"
            );
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

async fn migrate(options: &Options) -> anyhow::Result<()> {
    let (config, _) = load(options, "migrate")?;
    telemetry::init(&config.log);
    let database = config.database.url.redacted();
    match open_store(&config).await?.1 {
        0 => println!("{database} is already up to date"),
        1 => println!("1 migration applied to {database}"),
        applied => println!("{applied} migrations applied to {database}"),
    }
    Ok(())
}

async fn import_hanko(options: &Options, from: &str) -> anyhow::Result<()> {
    let (config, _) = load(options, "import hanko")?;
    telemetry::init(&config.log);
    let source = gatehouse_core::config::DatabaseUrl::new(from).redacted();
    let mut hanko =
        HankoDatabase::connect(from).await.with_context(|| format!("cannot open the Hanko database {source}"))?;
    let (store, _) = open_store(&config).await?;
    let report = hanko_import::import_from_hanko(&store, &mut hanko, &SystemClock).await?;
    println!("from {source} into {}:", config.database.url.redacted());
    print!("{report}");
    // Skipped rows are expected (other providers); a user left out is not, and a script must notice.
    anyhow::ensure!(report.conflicts.is_empty(), "{} users were not imported (listed above)", report.conflicts.len());
    Ok(())
}

/// Prints the effective configuration when it is valid; when it is not, only what is wrong (on stderr).
fn check(options: &Options) -> anyhow::Result<()> {
    let dir = std::env::current_dir().context("cannot read the working folder")?;
    let mut config = config::read(options.config.as_deref())?;
    if options.config.is_none() && config.all_secret_keys().is_empty() {
        println!(
            "# development mode: a secret key would be generated into {}",
            dir.join(config::DEV_SECRET_FILE).display()
        );
        config.secret_keys = vec![gatehouse_core::config::Secret::new(gatehouse_crypto::random::token())];
    }
    let issues = config.validate();
    if !issues.is_empty() {
        return Err(config::LoadError::Invalid(issues.iter().map(ToString::to_string).collect()).into());
    }
    print!("{}", serde_yaml::to_string(&config).context("cannot render the configuration")?);
    if let Some(redirect_url) = &config.third_party.redirect_url {
        println!("# Redirect URL for the Azure app registration: {redirect_url}");
    }
    println!("# configuration is valid");
    Ok(())
}

async fn new_certificate(options: &Options, provider: &str, days: u32) -> anyhow::Result<()> {
    let (config, dev) = load(options, "credentials new-certificate")?;
    telemetry::init(&config.log);
    warn_dev_secret(&dev);
    let (store, _) = open_store(&config).await?;
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

async fn consent_url(options: &Options, tenant: Option<&str>) -> anyhow::Result<()> {
    let (config, _) = load(options, "consent-url")?;
    telemetry::init(&config.log);
    let (store, _) = open_store(&config).await?;
    let app = App::new(Arc::new(config), store, Arc::new(SystemClock)).await?;
    let consent = app.third_party().admin_consent(tenant)?;
    println!("{}", consent.url);
    println!(
        "# to be opened by {}, who approves the app's permissions for everyone there",
        consent.tenant.who_approves()
    );
    Ok(())
}

async fn rotate(options: &Options) -> anyhow::Result<()> {
    let (config, dev) = load(options, "keys rotate")?;
    telemetry::init(&config.log);
    warn_dev_secret(&dev);
    let (store, _) = open_store(&config).await?;
    let secret_keys = config.all_secret_keys();
    let sealer =
        gatehouse_crypto::sealing::Sealer::new(&secret_keys.iter().map(|key| key.expose()).collect::<Vec<_>>())?;
    let sealer = Arc::new(sealer);
    let kid = KeyRing::new(store, sealer, &config.session, Arc::new(SystemClock)).rotate().await?;
    println!("new signing key {kid}; older keys keep verifying until the tokens they signed expire");
    Ok(())
}
