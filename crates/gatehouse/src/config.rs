//! Loading the configuration: defaults, then the YAML file, then environment variables.
//!
//! Environment scheme: `GATEHOUSE_` + the key path in upper case with `__` between levels, e.g.
//! `GATEHOUSE_SESSION__LIFESPAN=1h`, `GATEHOUSE_DATABASE__URL=postgres://…`, lists as `["a","b"]`. Hanko's own
//! variable names for the provider credentials are accepted too (`THIRD_PARTY_PROVIDERS_MICROSOFT_CLIENT_ID`, …).

use std::path::{Path, PathBuf};

use figment::{
    Figment,
    providers::{Data, Env, Format, Yaml},
};
use gatehouse_core::config::{Config, ConfigIssue, Secret};

pub const ENV_PREFIX: &str = "GATEHOUSE_";

/// Hanko's environment variable names that Gatehouse accepts, and the key each one sets.
pub const HANKO_ENV_KEYS: [(&str, &str); 4] = [
    ("THIRD_PARTY_PROVIDERS_MICROSOFT_ENABLED", "third_party.providers.microsoft.enabled"),
    ("THIRD_PARTY_PROVIDERS_MICROSOFT_CLIENT_ID", "third_party.providers.microsoft.client_id"),
    ("THIRD_PARTY_PROVIDERS_MICROSOFT_SECRET", "third_party.providers.microsoft.secret"),
    ("THIRD_PARTY_PROVIDERS_MICROSOFT_ALLOW_LINKING", "third_party.providers.microsoft.allow_linking"),
];

/// Where the development secret key lives when no configuration provides one.
pub const DEV_SECRET_FILE: &str = "gatehouse.secret";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
    #[error("invalid configuration:\n{}", .0.iter().map(|i| format!("  - {i}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigIssue>),
    #[error("cannot read or write the development secret key file {path}: {source}")]
    DevSecret { path: PathBuf, source: std::io::Error },
}

/// The YAML (when given), then the environment over it.
fn figment(yaml: Option<Data<Yaml>>) -> Figment {
    let mut figment = Figment::new();
    if let Some(yaml) = yaml {
        figment = figment.merge(yaml);
    }
    figment.merge(Env::prefixed(ENV_PREFIX).split("__")).merge(Env::raw().filter_map(|key| {
        HANKO_ENV_KEYS.iter().find(|(name, _)| key.as_str().eq_ignore_ascii_case(name)).map(|(_, path)| (*path).into())
    }))
}

/// Reads the configuration without validating it.
pub fn read(path: Option<&Path>) -> Result<Config, LoadError> {
    if let Some(path) = path
        && !path.exists()
    {
        return Err(LoadError::MissingFile(path.to_owned()));
    }
    figment(path.map(Yaml::file_exact)).extract().map_err(|e| LoadError::Parse(Box::new(e)))
}

/// Reads a configuration given as YAML text, as [`read`] reads a file; for the fuzz target.
pub fn read_yaml(text: &str) -> Result<Config, LoadError> {
    figment(Some(Yaml::string(text))).extract().map_err(|e| LoadError::Parse(Box::new(e)))
}

/// What the development fallback did, so the caller can warn about it.
#[derive(Debug, PartialEq, Eq)]
pub enum DevSecret {
    NotNeeded,
    Generated(PathBuf),
    Reused(PathBuf),
}

/// With no configuration file and no secret key anywhere, Gatehouse runs in development mode: it keeps a
/// generated key in `gatehouse.secret` in the working folder, so that restarts can still open what it sealed.
pub fn apply_dev_secret(config: &mut Config, path: Option<&Path>, dir: &Path) -> Result<DevSecret, LoadError> {
    if path.is_some() || !config.all_secret_keys().is_empty() {
        return Ok(DevSecret::NotNeeded);
    }
    let file = dir.join(DEV_SECRET_FILE);
    let io = |source| LoadError::DevSecret { path: file.clone(), source };
    let (key, outcome) = if file.exists() {
        (std::fs::read_to_string(&file).map_err(io)?.trim().to_owned(), DevSecret::Reused(file.clone()))
    } else {
        let key = gatehouse_crypto::random::token();
        write_private(&file, &key).map_err(io)?;
        (key, DevSecret::Generated(file.clone()))
    };
    config.secret_keys = vec![Secret::new(key)];
    Ok(outcome)
}

/// Creates `file` readable by its owner only; never overwrites.
pub fn write_private(file: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(file)?.write_all(contents.as_bytes())
}

/// Reads, applies the development fallback, and validates.
pub fn load(path: Option<&Path>, dir: &Path) -> Result<(Config, DevSecret), LoadError> {
    let mut config = read(path)?;
    let dev = apply_dev_secret(&mut config, path, dir)?;
    let issues = config.validate();
    if issues.is_empty() { Ok((config, dev)) } else { Err(LoadError::Invalid(issues)) }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return its (large) error type; not ours to change.
mod tests {
    use figment::Jail;

    use super::*;

    fn error_text(result: Result<(Config, DevSecret), LoadError>) -> String {
        result.expect_err("the configuration should be refused").to_string()
    }

    #[test]
    fn file_then_env_then_hanko_env() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "gatehouse.yaml",
                "secret_keys: [\"0123456789abcdef\"]\nsession:\n  lifespan: 1h\n  cookie:\n    same_site: lax\n",
            )?;
            jail.set_env("GATEHOUSE_SESSION__LIMIT", "2");
            jail.set_env("GATEHOUSE_SERVER__PUBLIC__CORS__ALLOW_ORIGINS", "[\"https://app.example.com\"]");
            jail.set_env("THIRD_PARTY_PROVIDERS_MICROSOFT_CLIENT_ID", "client-from-env");
            let (config, dev) = load(Some(Path::new("gatehouse.yaml")), jail.directory()).unwrap();
            assert_eq!(dev, DevSecret::NotNeeded);
            assert_eq!(config.session.lifespan.as_secs(), 3600);
            assert_eq!(config.session.limit, 2);
            assert_eq!(config.session.cookie.same_site, gatehouse_core::config::SameSite::Lax);
            assert_eq!(config.server.public.cors.allow_origins, vec!["https://app.example.com"]);
            assert_eq!(config.third_party.providers.microsoft.client_id.as_deref(), Some("client-from-env"));
            Ok(())
        });
    }

    #[test]
    fn hanko_v2_secrets_keys_are_accepted() {
        Jail::expect_with(|jail| {
            jail.create_file("c.yaml", "secrets:\n  keys: [\"0123456789abcdef\"]\n")?;
            let (config, _) = load(Some(Path::new("c.yaml")), jail.directory()).unwrap();
            assert_eq!(config.all_secret_keys().len(), 1);
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_errors_that_name_the_key() {
        Jail::expect_with(|jail| {
            jail.create_file("c.yaml", "secret_keys: [\"0123456789abcdef\"]\nsession:\n  lifespn: 1h\n")?;
            let text = error_text(load(Some(Path::new("c.yaml")), jail.directory()));
            assert!(text.contains("lifespn") && text.contains("session"), "{text}");
            Ok(())
        });
    }

    #[test]
    fn unknown_env_keys_are_errors_too() {
        Jail::expect_with(|jail| {
            jail.create_file("c.yaml", "secret_keys: [\"0123456789abcdef\"]\n")?;
            jail.set_env("GATEHOUSE_SESION__LIFESPAN", "1h");
            let text = error_text(load(Some(Path::new("c.yaml")), jail.directory()));
            assert!(text.contains("sesion"), "{text}");
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_the_key() {
        Jail::expect_with(|jail| {
            jail.create_file("c.yaml", "secret_keys: [\"0123456789abcdef\"]\nsession:\n  lifespan: twelve hours\n")?;
            let text = error_text(load(Some(Path::new("c.yaml")), jail.directory()));
            assert!(text.contains("session.lifespan") || text.contains("lifespan"), "{text}");
            jail.create_file("d.yaml", "secret_keys: [\"short\"]\n")?;
            let text = error_text(load(Some(Path::new("d.yaml")), jail.directory()));
            assert!(text.contains("secret_keys"), "{text}");
            Ok(())
        });
    }

    #[test]
    fn a_config_file_without_secret_keys_is_refused() {
        Jail::expect_with(|jail| {
            jail.create_file("c.yaml", "session:\n  limit: 3\n")?;
            let text = error_text(load(Some(Path::new("c.yaml")), jail.directory()));
            assert!(text.contains("secret_keys"), "{text}");
            assert!(!jail.directory().join(DEV_SECRET_FILE).exists());
            Ok(())
        });
    }

    #[test]
    fn no_config_generates_and_then_reuses_a_dev_secret() {
        Jail::expect_with(|jail| {
            let (first, dev) = load(None, jail.directory()).unwrap();
            assert!(matches!(dev, DevSecret::Generated(_)));
            let (second, dev) = load(None, jail.directory()).unwrap();
            assert!(matches!(dev, DevSecret::Reused(_)));
            assert_eq!(first.secret_keys, second.secret_keys);
            assert_eq!(first.database.url.expose(), "sqlite://gatehouse.db");
            assert_eq!(first.server.public.address, "127.0.0.1:8000");
            Ok(())
        });
    }

    #[test]
    fn missing_file_is_an_error() {
        Jail::expect_with(|jail| {
            let text = error_text(load(Some(Path::new("nope.yaml")), jail.directory()));
            assert!(text.contains("nope.yaml"), "{text}");
            Ok(())
        });
    }
}
