//! Loading the configuration: defaults, then the YAML file, then environment variables.
//!
//! Environment scheme: `GATEHOUSE_` + the key path in upper case with `__` between levels, e.g.
//! `GATEHOUSE_SESSION__LIFESPAN=1h`, `GATEHOUSE_DATABASE__URL=postgres://…`, lists as `["a","b"]`
//! (`GATEHOUSE_CONFIG` names the file and is not a key). Hanko's own variable names are read too, as Hanko reads
//! them (`DATABASE_URL`, `SECRET_KEYS=a,b`, `SESSION_LIFESPAN`, …; the list is [`hanko::HANKO_ENV`]).
//!
//! A Hanko `config.yaml` works as it is: [`hanko::translate`] maps Hanko's keys to Gatehouse's and names every key
//! that does not fit, and every problem of every kind is reported in one error, one line each.

use std::path::{Path, PathBuf};

use figment::{
    Figment,
    providers::{Data, Env, Format, Serialized, Yaml},
};
use gatehouse_core::config::{Config, Secret, hanko};
use serde_json::Value;

pub const ENV_PREFIX: &str = "GATEHOUSE_";
/// The variable naming the configuration file; read by the CLI, never as a configuration key.
pub const CONFIG_FILE_ENV: &str = "GATEHOUSE_CONFIG";

/// Where the development secret key lives when no configuration provides one.
pub const DEV_SECRET_FILE: &str = "gatehouse.secret";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    /// Every problem found, one line each.
    #[error("invalid configuration ({}):\n{}", plural(.0.len()), .0.iter().map(|line| format!("  - {line}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<String>),
    #[error(
        "gatehouse {0} needs a configuration: give --config FILE (or GATEHOUSE_CONFIG=FILE); to work on the \
         development database in this folder, add --dev"
    )]
    NoConfiguration(String),
    #[error("cannot read or write the development secret key file {path}: {source}")]
    DevSecret { path: PathBuf, source: std::io::Error },
}

fn plural(count: usize) -> String {
    if count == 1 { "1 problem".into() } else { format!("{count} problems") }
}

/// Reads the configuration (file, then the environment) without validating it; every key and value problem is in
/// the error.
pub fn read(path: Option<&Path>) -> Result<Config, LoadError> {
    if let Some(path) = path
        && !path.exists()
    {
        return Err(LoadError::MissingFile(path.to_owned()));
    }
    read_from(path.map(Yaml::file_exact), std::env::vars())
}

/// Reads a configuration given as YAML text, as [`read`] reads a file but without the environment; for the fuzz
/// target.
pub fn read_yaml(text: &str) -> Result<Config, LoadError> {
    read_from(Some(Yaml::string(text)), std::iter::empty())
}

fn read_from(yaml: Option<Data<Yaml>>, vars: impl IntoIterator<Item = (String, String)>) -> Result<Config, LoadError> {
    let (hanko_env, env_problems) = hanko::env_tree(vars);
    let mut figment = Figment::new();
    if let Some(yaml) = yaml {
        figment = figment.merge(yaml);
    }
    let figment =
        figment.merge(Env::prefixed(ENV_PREFIX).ignore(&["config"]).split("__")).merge(Serialized::defaults(hanko_env));
    // Only YAML that does not parse fails here: keys and values are checked below.
    let tree: Value = figment.extract().map_err(|error| LoadError::Invalid(error_lines(error)))?;
    let (tree, key_problems) = hanko::translate(tree);
    let mut lines: Vec<String> = env_problems.iter().chain(&key_problems).map(ToString::to_string).collect();
    // Section by section, so that a wrong value in one section does not hide those in the others.
    let Value::Object(mut sections) = tree else { unreachable!("translate returns a map") };
    let mut refused_sections = Vec::new();
    for (name, value) in &sections {
        let before = lines.len();
        find_value_errors(&[name.as_str()], value, &mut lines);
        if lines.len() > before {
            refused_sections.push(name.clone());
        }
    }
    sections.retain(|name, _| !refused_sections.contains(name));
    let config = extract(Value::Object(sections)).map_err(|error| LoadError::Invalid(error_lines(*error)))?;
    if lines.is_empty() {
        Ok(config)
    } else {
        // What the rest of the configuration would be refused for, so that one round fixes everything.
        // (A refused section was read as its defaults: its rules are left out, they would only mislead.)
        let section_of = |key: &str| key.split('.').next().unwrap_or_default().to_owned();
        let issues = config.validate().into_iter().filter(|issue| !refused_sections.contains(&section_of(issue.key)));
        lines.extend(issues.map(|issue| issue.to_string()));
        lines.sort();
        lines.dedup();
        Err(LoadError::Invalid(lines))
    }
}

fn extract(tree: Value) -> Result<Config, Box<figment::Error>> {
    Figment::from(Serialized::defaults(tree)).extract().map_err(Box::new)
}

/// A tree holding only `value`, at `path`.
fn tree_at(path: &[&str], value: &Value) -> Value {
    path.iter()
        .rev()
        .fold(value.clone(), |inner, key| Value::Object([((*key).to_owned(), inner)].into_iter().collect()))
}

/// Every wrong value at or below `path`: reading stops at the first error, so a map that fails is read again key by
/// key, and only what fails on its own is reported.
fn find_value_errors(path: &[&str], value: &Value, lines: &mut Vec<String>) {
    let Err(error) = extract(tree_at(path, value)) else { return };
    let before = lines.len();
    if let Value::Object(map) = value {
        for (key, inner) in map {
            let inner_path: Vec<&str> = path.iter().copied().chain([key.as_str()]).collect();
            find_value_errors(&inner_path, inner, lines);
        }
    }
    if lines.len() == before {
        lines.extend(error_lines(*error));
    }
}

/// One line per error: the key, then what is wrong, in plain words.
fn error_lines(error: figment::Error) -> Vec<String> {
    use figment::error::Kind;
    error
        .into_iter()
        .map(|error| {
            let message = match &error.kind {
                Kind::Message(message) => message.clone(),
                Kind::InvalidType(found, expected) | Kind::InvalidValue(found, expected) => {
                    format!("expected {}, found {}", plain_expected(expected), plain_actual(found))
                }
                Kind::UnknownVariant(found, expected) => format!("{found:?} is not one of: {}", expected.join(", ")),
                Kind::UnknownField(found, _) => format!("unknown key {found}"),
                Kind::MissingField(field) => format!("{field} is required"),
                other => other.to_string(),
            };
            match (error.path.is_empty(), error.metadata.as_ref().and_then(|metadata| metadata.source.as_ref())) {
                (false, _) => format!("{}: {message}", error.path.join(".")),
                // A file that is not YAML: the error has no key, so name the file.
                (true, Some(source)) => format!("{source}: {message}"),
                (true, None) => message,
            }
        })
        .collect()
}

/// Serde's names for what was expected, in an operator's words.
fn plain_expected(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".into(),
        "a boolean" => "true or false".into(),
        other => other.replace('`', ""),
    }
}

fn plain_actual(actual: &figment::error::Actual) -> String {
    use figment::error::Actual;
    match actual {
        Actual::Bool(value) => value.to_string(),
        Actual::Unsigned(value) => value.to_string(),
        Actual::Signed(value) => value.to_string(),
        Actual::Float(value) => value.to_string(),
        Actual::Str(value) => format!("{value:?}"),
        Actual::Seq => "a list".into(),
        Actual::Map => "a map of keys".into(),
        other => other.to_string().replace('`', ""),
    }
}

/// What the development fallback did, so the caller can warn about it.
#[derive(Debug, PartialEq, Eq)]
pub enum DevSecret {
    NotNeeded,
    Generated(PathBuf),
    Reused(PathBuf),
}

/// Whether a command may fall back to development mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Development<'a> {
    Allowed,
    /// Not for this command (its name, for the message) unless asked for with `--dev`.
    Refused {
        command: &'a str,
    },
}

/// With no configuration file and no secret key anywhere, Gatehouse runs in development mode: it keeps a
/// generated key in `gatehouse.secret` in the working folder, so that restarts can still open what it sealed.
pub fn apply_dev_secret(
    config: &mut Config,
    path: Option<&Path>,
    dir: &Path,
    development: Development<'_>,
) -> Result<DevSecret, LoadError> {
    if path.is_some() || !config.all_secret_keys().is_empty() {
        return Ok(DevSecret::NotNeeded);
    }
    if let Development::Refused { command } = development {
        return Err(LoadError::NoConfiguration(command.to_owned()));
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
pub fn load(path: Option<&Path>, dir: &Path, development: Development<'_>) -> Result<(Config, DevSecret), LoadError> {
    let mut config = read(path)?;
    let dev = apply_dev_secret(&mut config, path, dir, development)?;
    // Development mode has no file to name its public URL in; the browser reaches it on its own listener, so that
    // listener's callback is the one to register, and enabling Microsoft in the console needs no file. Anywhere
    // else the public URL (behind a proxy, TLS) cannot be guessed.
    if dev != DevSecret::NotNeeded && config.third_party.redirect_url.is_none() {
        config.third_party.redirect_url = config.server.public.direct_redirect_url();
    }
    let issues = config.validate();
    if issues.is_empty() {
        Ok((config, dev))
    } else {
        Err(LoadError::Invalid(issues.iter().map(ToString::to_string).collect()))
    }
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
            let (config, dev) =
                load(Some(Path::new("gatehouse.yaml")), jail.directory(), Development::Allowed).unwrap();
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
    fn hankos_variable_names_are_read_and_gatehouse_config_names_only_the_file() {
        Jail::expect_with(|jail| {
            jail.create_file("c.yaml", "session:\n  limit: 2\n")?;
            jail.set_env("GATEHOUSE_CONFIG", "c.yaml");
            jail.set_env("DATABASE_URL", "postgres://gate@db.internal/gatehouse");
            jail.set_env("SECRET_KEYS", "first-key-0123456789,second-key-0123456789");
            jail.set_env("SESSION_LIFESPAN", "1h");
            let (config, _) =
                load(Some(Path::new("c.yaml")), jail.directory(), Development::Refused { command: "test" }).unwrap();
            assert_eq!(config.database.url.expose(), "postgres://gate@db.internal/gatehouse");
            assert_eq!(config.all_secret_keys().len(), 2);
            assert_eq!((config.session.lifespan.as_secs(), config.session.limit), (3600, 2));
            jail.set_env("PASSWORD_ENABLED", "true");
            let text = error_text(load(Some(Path::new("c.yaml")), jail.directory(), Development::Allowed));
            assert!(text.contains("password: Gatehouse has no password sign-in"), "{text}");
            Ok(())
        });
    }

    #[test]
    fn hanko_v2_secrets_keys_are_accepted() {
        Jail::expect_with(|jail| {
            jail.create_file("c.yaml", "secrets:\n  keys: [\"0123456789abcdef\"]\n")?;
            let (config, _) = load(Some(Path::new("c.yaml")), jail.directory(), Development::Allowed).unwrap();
            assert_eq!(config.all_secret_keys().len(), 1);
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_errors_that_name_the_key() {
        Jail::expect_with(|jail| {
            jail.create_file("c.yaml", "secret_keys: [\"0123456789abcdef\"]\nsession:\n  lifespn: 1h\n")?;
            let text = error_text(load(Some(Path::new("c.yaml")), jail.directory(), Development::Allowed));
            assert!(text.contains("lifespn") && text.contains("session"), "{text}");
            Ok(())
        });
    }

    #[test]
    fn unknown_env_keys_are_errors_too() {
        Jail::expect_with(|jail| {
            jail.create_file("c.yaml", "secret_keys: [\"0123456789abcdef\"]\n")?;
            jail.set_env("GATEHOUSE_SESION__LIFESPAN", "1h");
            let text = error_text(load(Some(Path::new("c.yaml")), jail.directory(), Development::Allowed));
            assert!(text.contains("sesion"), "{text}");
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_the_key() {
        Jail::expect_with(|jail| {
            jail.create_file("c.yaml", "secret_keys: [\"0123456789abcdef\"]\nsession:\n  lifespan: twelve hours\n")?;
            let text = error_text(load(Some(Path::new("c.yaml")), jail.directory(), Development::Allowed));
            assert!(text.contains("session.lifespan") || text.contains("lifespan"), "{text}");
            jail.create_file("d.yaml", "secret_keys: [\"short\"]\n")?;
            let text = error_text(load(Some(Path::new("d.yaml")), jail.directory(), Development::Allowed));
            assert!(text.contains("secret_keys"), "{text}");
            Ok(())
        });
    }

    #[test]
    fn a_config_file_without_secret_keys_is_refused() {
        Jail::expect_with(|jail| {
            jail.create_file("c.yaml", "session:\n  limit: 3\n")?;
            let text = error_text(load(Some(Path::new("c.yaml")), jail.directory(), Development::Allowed));
            assert!(text.contains("secret_keys"), "{text}");
            assert!(!jail.directory().join(DEV_SECRET_FILE).exists());
            Ok(())
        });
    }

    #[test]
    fn no_config_generates_and_then_reuses_a_dev_secret() {
        Jail::expect_with(|jail| {
            let (first, dev) = load(None, jail.directory(), Development::Allowed).unwrap();
            assert!(matches!(dev, DevSecret::Generated(_)));
            let (second, dev) = load(None, jail.directory(), Development::Allowed).unwrap();
            assert!(matches!(dev, DevSecret::Reused(_)));
            assert_eq!(first.secret_keys, second.secret_keys);
            assert_eq!(first.database.url.expose(), "sqlite://gatehouse.db");
            assert_eq!(first.server.public.address, "127.0.0.1:8000");
            Ok(())
        });
    }

    #[test]
    fn only_development_mode_derives_the_redirect_url_from_the_listener() {
        Jail::expect_with(|jail| {
            let (config, _) = load(None, jail.directory(), Development::Allowed).unwrap();
            let derived = config.third_party.redirect_url.as_deref();
            assert_eq!(derived, Some("http://127.0.0.1:8000/thirdparty/callback"));
            jail.set_env("GATEHOUSE_THIRD_PARTY__REDIRECT_URL", "http://localhost:8000/thirdparty/callback");
            let (config, _) = load(None, jail.directory(), Development::Allowed).unwrap();
            let configured = config.third_party.redirect_url.as_deref();
            assert_eq!(configured, Some("http://localhost:8000/thirdparty/callback"), "a configured one wins");
            jail.clear_env();
            jail.create_file("c.yaml", "secret_keys: [\"0123456789abcdef\"]\n")?;
            let (config, _) = load(Some(Path::new("c.yaml")), jail.directory(), Development::Allowed).unwrap();
            assert_eq!(config.third_party.redirect_url, None, "with a configuration file nothing is guessed");
            Ok(())
        });
    }

    #[test]
    fn missing_file_is_an_error() {
        Jail::expect_with(|jail| {
            let text = error_text(load(Some(Path::new("nope.yaml")), jail.directory(), Development::Allowed));
            assert!(text.contains("nope.yaml"), "{text}");
            Ok(())
        });
    }
}
