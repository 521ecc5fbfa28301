//! The `gatehouse` binary: CLI, configuration, telemetry, start-up and graceful shutdown.

mod config;
mod telemetry;

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use anyhow::Context;
use clap::{Parser, Subcommand};
use gatehouse_api::{AppState, Application};
use gatehouse_core::config::Config;
use gatehouse_store::Store;

#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about = "A self-hostable, Hanko-compatible authentication server")]
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
}

#[derive(Debug, Subcommand)]
enum CredentialsCommand {
    /// Make a key pair and a self-signed certificate for `private_key_jwt`: the key goes to a file (mode 0600),
    /// the certificate is printed, to upload to the app registration under "Certificates & secrets".
    NewCertificate {
        /// The provider the certificate is for.
        #[arg(long, default_value = "microsoft", value_parser = ["microsoft"])]
        provider: String,
        /// Days until the certificate expires.
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
        days: u32,
        /// Where to write the private key; an existing file is never overwritten.
        #[arg(long, default_value = "gatehouse-microsoft-key.pem")]
        key_out: PathBuf,
    },
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
            Command::Credentials(CredentialsCommand::NewCertificate { provider, days, key_out }) => {
                new_certificate(&provider, days, &key_out)
            }
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
    let store = open_store(&config).await?;
    let app = Application::build(Arc::new(config.clone()), store).await?;
    let base = format!("http://{}", app.local_addr());
    tracing::info!("Gatehouse is listening on {base}");
    for path in ["/.well-known/jwks.json", "/sessions/validate", "/me", "/logout", "/health/ready"] {
        tracing::info!("  {base}{path}");
    }
    if let Some(redirect_url) = &config.third_party.redirect_url {
        tracing::info!("Redirect URL for the Azure app registration: {redirect_url}");
    }
    tokio::spawn(warn_about_expiring_secrets(config.clone()));
    tokio::spawn(gatehouse_api::services::maintenance::run(app.state().store().clone()));
    app.run_until_stopped(shutdown_signal()).await.context("the server failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// At start-up and then daily: a warning for every Microsoft client secret that expires within 30 days.
async fn warn_about_expiring_secrets(config: Config) {
    const WINDOW_SECS: i64 = 30 * 86_400;
    let secrets = config.third_party.providers.microsoft.client_secrets();
    let mut daily = tokio::time::interval(std::time::Duration::from_secs(86_400));
    loop {
        daily.tick().await;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        for secret in gatehouse_core::config::expiring_secrets(&secrets, now, WINDOW_SECS) {
            let days_left = (secret.expires_at.unwrap_or(now) - now) / 86_400;
            tracing::warn!(
                secret = %secret.hint(),
                days_left,
                "a Microsoft client secret expires soon (or has expired): create a new one in Azure, add it first in \
                 third_party.providers.microsoft.secrets, then remove the old one"
            );
        }
    }
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

fn new_certificate(provider: &str, days: u32, key_out: &std::path::Path) -> anyhow::Result<()> {
    let now = time::OffsetDateTime::now_utc();
    let generated =
        gatehouse_crypto::certificate::generate_self_signed(&format!("Gatehouse {provider} sign-in"), days, now)?;
    config::write_private(key_out, &generated.private_key_pem)
        .with_context(|| format!("cannot create {} (it must not exist yet)", key_out.display()))?;
    println!("Private key written to {} (keep it secret; it is shown nowhere else).", key_out.display());
    println!("SHA-256 thumbprint (x5t#S256): {}", generated.thumbprint_sha256);
    println!("Upload this certificate in the app registration, Certificates & secrets > Certificates:\n");
    print!("{}", generated.certificate_pem);
    println!(
        "\nThen configure it (the key inline, or through GATEHOUSE_THIRD_PARTY__PROVIDERS__MICROSOFT__CERTIFICATE__PRIVATE_KEY):"
    );
    println!("third_party:\n  providers:\n    {provider}:\n      certificate:\n        algorithm: PS256");
    println!("        private_key: |\n          <the contents of {}>", key_out.display());
    println!("        certificate: |\n{}", indent(&generated.certificate_pem, 10));
    Ok(())
}

fn indent(text: &str, spaces: usize) -> String {
    text.lines().map(|line| format!("{}{line}", " ".repeat(spaces))).collect::<Vec<_>>().join("\n")
}

async fn rotate(args: ConfigArg) -> anyhow::Result<()> {
    let (config, dev) = load(&args)?;
    telemetry::init(&config.log);
    warn_dev_secret(&dev);
    let store = open_store(&config).await?;
    let state = AppState::new(Arc::new(config), store).await?;
    let kid = state.keys().rotate().await?;
    println!("new signing key {kid}; older keys keep verifying until the tokens they signed expire");
    Ok(())
}
