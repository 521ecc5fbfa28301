//! Reading a Hanko configuration: every key is honoured with Hanko's meaning, accepted as harmless, or refused with
//! one line naming the Hanko feature Gatehouse does not have. All problems are found in one pass, so an operator
//! fixes a migrated `config.yaml` in one round instead of one key per start.
//!
//! [`translate`] takes the merged key tree (file and environment, before it becomes a [`Config`]) and returns the
//! tree in Gatehouse's own keys plus the problems. Gatehouse's keys are known from `Config::default()` serialised, so
//! this table lists only what Hanko has and Gatehouse does not; docs/coming-from-hanko.md is its prose twin.

use serde_json::{Map, Value};

use super::Config;

/// One problem with a key, for one line of the error report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyProblem {
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// What Gatehouse does with a Hanko key it has no key of its own for.
#[derive(Clone, Copy, Debug)]
enum Rule {
    /// Accepted and dropped: it tunes something Gatehouse does not do (sending mail, passkey ceremonies…) or has
    /// fixed, and cannot switch a feature on.
    Ignored,
    /// A section for a feature Gatehouse does not have: accepted while its `enabled` is false or absent.
    OffOnly(&'static str),
    /// A single setting for a feature Gatehouse does not have: accepted while it is off (false, 0, empty, "0m").
    OffLeaf(&'static str),
    /// Accepted only with this value (compared as text); otherwise refused with the reason.
    Only(&'static str, &'static str),
}

/// Hanko's keys that Gatehouse does not have as its own (`*` stands for any one key). The first match wins.
const HANKO_RULES: &[(&str, Rule)] = &[
    ("audit_log.console_output", Rule::Ignored),
    ("audit_log.mask", Rule::Ignored),
    ("audit_log.storage", Rule::Ignored),
    ("database.conn_max_idletime", Rule::Ignored),
    ("database.conn_max_lifetime", Rule::Ignored),
    ("database.idle_pool", Rule::Ignored),
    ("debug", Rule::Ignored),
    ("default_email_delivery", Rule::Ignored),
    ("email.acquire_on_login", Rule::Ignored),
    ("email.acquire_on_registration", Rule::Ignored),
    ("email.enabled", Rule::Only("true", "Gatehouse always keeps the email address the identity provider asserts")),
    ("email.max_length", Rule::Ignored),
    ("email.optional", Rule::Ignored),
    ("email.passcode_charset", Rule::Ignored),
    ("email.passcode_ttl", Rule::Ignored),
    ("email.use_as_login_identifier", Rule::Ignored),
    ("email.use_for_authentication", Rule::OffLeaf("sign-in with an email passcode")),
    ("email_delivery", Rule::Ignored),
    ("flow_locker", Rule::Ignored),
    ("log.log_health_and_metrics", Rule::Ignored),
    ("mfa", Rule::OffOnly("multi-factor authentication")),
    ("multi_tenancy", Rule::OffOnly("multi-tenancy")),
    ("passcode", Rule::Ignored),
    ("passkey", Rule::OffOnly("passkeys")),
    ("password", Rule::OffOnly("password sign-in")),
    ("privacy", Rule::Ignored),
    ("rate_limiter.otp_limits", Rule::Ignored),
    ("rate_limiter.passcode_limits", Rule::Ignored),
    ("rate_limiter.password_limits", Rule::Ignored),
    ("saml", Rule::OffOnly("SAML single sign-on")),
    ("secrets.key_management.type", Rule::Only("local", "Gatehouse keeps its signing keys in its database only")),
    ("secrets.key_management.key_id", Rule::Ignored),
    ("secrets.key_management.region", Rule::Ignored),
    ("security_notifications", Rule::Ignored),
    ("server.ip.extractor", Rule::Only("direct", "to trust a reverse proxy, set server.public.trusted_proxies")),
    ("server.ip.trusted_proxies", Rule::Ignored),
    ("server.management", Rule::Ignored),
    ("server.public.cors.allow_credentials", Rule::Ignored),
    ("server.public.cors.allow_headers", Rule::Ignored),
    ("server.public.cors.allow_methods", Rule::Ignored),
    ("server.public.cors.expose_headers", Rule::Ignored),
    ("server.public.cors.max_age", Rule::Ignored),
    (
        "server.public.cors.unsafe_wildcard_origin_allowed",
        Rule::OffLeaf("allowing every origin (`*`) to call with credentials"),
    ),
    ("service", Rule::Ignored),
    ("session.acquire_ip_address", Rule::Ignored),
    ("session.acquire_user_agent", Rule::Ignored),
    ("session.allow_revocation", Rule::Ignored),
    ("session.idle_timeout", Rule::OffLeaf("idle session timeouts")),
    ("session.show_on_profile", Rule::Ignored),
    ("third_party.custom_providers.*", Rule::OffOnly("custom OpenID Connect providers")),
    ("third_party.providers.apple", Rule::OffOnly("Sign in with Apple")),
    ("third_party.providers.discord", Rule::OffOnly("Sign in with Discord")),
    ("third_party.providers.facebook", Rule::OffOnly("Sign in with Facebook")),
    ("third_party.providers.github", Rule::OffOnly("Sign in with GitHub")),
    ("third_party.providers.google", Rule::OffOnly("Sign in with Google")),
    ("third_party.providers.linkedin", Rule::OffOnly("Sign in with LinkedIn")),
    ("username", Rule::OffOnly("usernames")),
    ("webauthn", Rule::Ignored),
    ("webhooks", Rule::OffOnly("webhooks")),
];

/// Hanko's environment variables (its `envconfig` names) for the keys Gatehouse reads, and for the switches of
/// features it lacks (so that `PASSWORD_ENABLED=true` is refused, not ignored).
pub const HANKO_ENV: &[(&str, &str, EnvKind)] = &[
    ("ACCOUNT_ALLOWDELETION", "account.allow_deletion", EnvKind::Bool),
    ("ACCOUNT_ALLOWSIGNUP", "account.allow_signup", EnvKind::Bool),
    ("AUDIT_LOG_RETENTION", "audit_log.retention", EnvKind::Text),
    ("CORS_ALLOW_ORIGINS", "cors.allow_origins", EnvKind::List),
    ("DATABASE_DATABASE", "database.database", EnvKind::Text),
    ("DATABASE_DIALECT", "database.dialect", EnvKind::Text),
    ("DATABASE_HOST", "database.host", EnvKind::Text),
    ("DATABASE_PASSWORD", "database.password", EnvKind::Text),
    ("DATABASE_POOL", "database.pool", EnvKind::Int),
    ("DATABASE_PORT", "database.port", EnvKind::Text),
    ("DATABASE_URL", "database.url", EnvKind::Text),
    ("DATABASE_USER", "database.user", EnvKind::Text),
    ("EMAIL_ENABLED", "email.enabled", EnvKind::Bool),
    ("EMAIL_LIMIT", "email.limit", EnvKind::Int),
    ("EMAIL_REQUIRE_VERIFICATION", "email.require_verification", EnvKind::Bool),
    ("EMAIL_USEFORAUTHENTICATION", "email.use_for_authentication", EnvKind::Bool),
    ("MFA_ENABLED", "mfa.enabled", EnvKind::Bool),
    ("MULTITENANCY_ENABLED", "multi_tenancy.enabled", EnvKind::Bool),
    ("PASSKEY_ENABLED", "passkey.enabled", EnvKind::Bool),
    ("PASSWORD_ENABLED", "password.enabled", EnvKind::Bool),
    ("RATE_LIMITER_ENABLED", "rate_limiter.enabled", EnvKind::Bool),
    ("RATE_LIMITER_REDIS_ADDRESS", "rate_limiter.redis_config.address", EnvKind::Text),
    ("RATE_LIMITER_REDIS_PASSWORD", "rate_limiter.redis_config.password", EnvKind::Text),
    ("RATE_LIMITER_STORE", "rate_limiter.store", EnvKind::Text),
    ("RATE_LIMITER_TOKEN_LIMITS_INTERVAL", "rate_limiter.token_limits.interval", EnvKind::Text),
    ("RATE_LIMITER_TOKEN_LIMITS_TOKENS", "rate_limiter.token_limits.tokens", EnvKind::Int),
    ("SAML_ENABLED", "saml.enabled", EnvKind::Bool),
    ("SECRET_KEYS", "secret_keys", EnvKind::List),
    ("SECRETS_KEYS", "secrets.keys", EnvKind::List),
    ("SERVER_ADMIN_ADDRESS", "server.admin.address", EnvKind::Text),
    ("SERVER_PUBLIC_ADDRESS", "server.public.address", EnvKind::Text),
    ("SERVER_PUBLIC_CORS_ALLOW_ORIGINS", "server.public.cors.allow_origins", EnvKind::List),
    ("SESSION_AUDIENCE", "session.audience", EnvKind::List),
    ("SESSION_COOKIE_DOMAIN", "session.cookie.domain", EnvKind::Text),
    ("SESSION_COOKIE_HTTP_ONLY", "session.cookie.http_only", EnvKind::Bool),
    ("SESSION_COOKIE_NAME", "session.cookie.name", EnvKind::Text),
    ("SESSION_COOKIE_RETENTION", "session.cookie.retention", EnvKind::Text),
    ("SESSION_COOKIE_SAME_SITE", "session.cookie.same_site", EnvKind::Text),
    ("SESSION_COOKIE_SECURE", "session.cookie.secure", EnvKind::Bool),
    ("SESSION_ENABLE_AUTH_TOKEN_HEADER", "session.enable_auth_token_header", EnvKind::Bool),
    ("SESSION_ISSUER", "session.issuer", EnvKind::Text),
    ("SESSION_LIFESPAN", "session.lifespan", EnvKind::Text),
    ("SESSION_LIMIT", "session.limit", EnvKind::Int),
    ("THIRD_PARTY_ALLOWED_REDIRECT_URLS", "third_party.allowed_redirect_urls", EnvKind::List),
    ("THIRD_PARTY_DEFAULT_REDIRECT_URL", "third_party.default_redirect_url", EnvKind::Text),
    ("THIRD_PARTY_ERROR_REDIRECT_URL", "third_party.error_redirect_url", EnvKind::Text),
    ("THIRD_PARTY_PROVIDERS_APPLE_ENABLED", "third_party.providers.apple.enabled", EnvKind::Bool),
    ("THIRD_PARTY_PROVIDERS_DISCORD_ENABLED", "third_party.providers.discord.enabled", EnvKind::Bool),
    ("THIRD_PARTY_PROVIDERS_FACEBOOK_ENABLED", "third_party.providers.facebook.enabled", EnvKind::Bool),
    ("THIRD_PARTY_PROVIDERS_GITHUB_ENABLED", "third_party.providers.github.enabled", EnvKind::Bool),
    ("THIRD_PARTY_PROVIDERS_GOOGLE_ENABLED", "third_party.providers.google.enabled", EnvKind::Bool),
    ("THIRD_PARTY_PROVIDERS_LINKEDIN_ENABLED", "third_party.providers.linkedin.enabled", EnvKind::Bool),
    ("THIRD_PARTY_PROVIDERS_MICROSOFT_ALLOW_LINKING", "third_party.providers.microsoft.allow_linking", EnvKind::Bool),
    ("THIRD_PARTY_PROVIDERS_MICROSOFT_CLIENT_ID", "third_party.providers.microsoft.client_id", EnvKind::Text),
    ("THIRD_PARTY_PROVIDERS_MICROSOFT_ENABLED", "third_party.providers.microsoft.enabled", EnvKind::Bool),
    ("THIRD_PARTY_PROVIDERS_MICROSOFT_PROMPT", "third_party.providers.microsoft.prompt", EnvKind::Text),
    ("THIRD_PARTY_PROVIDERS_MICROSOFT_SECRET", "third_party.providers.microsoft.secret", EnvKind::Text),
    ("THIRD_PARTY_REDIRECT_URL", "third_party.redirect_url", EnvKind::Text),
    ("USERNAME_ENABLED", "username.enabled", EnvKind::Bool),
    ("WEBAUTHN_RELYING_PARTY_ID", "webauthn.relying_party.id", EnvKind::Text),
    ("WEBHOOKS_ENABLED", "webhooks.enabled", EnvKind::Bool),
];

/// How Hanko's `envconfig` reads a variable's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvKind {
    Text,
    /// Go's `strconv.ParseBool`.
    Bool,
    Int,
    /// Comma-separated.
    List,
}

/// The key tree set by Hanko's environment variables among `vars`, and a problem for each value that does not read.
pub fn env_tree(vars: impl IntoIterator<Item = (String, String)>) -> (Value, Vec<KeyProblem>) {
    let mut tree = Value::Object(Map::new());
    let mut problems = Vec::new();
    for (name, text) in vars {
        let Some((_, key, kind)) = HANKO_ENV.iter().find(|(known, _, _)| *known == name) else { continue };
        let value = match kind {
            EnvKind::Text => Ok(Value::String(text)),
            EnvKind::List => Ok(text.split(',').map(|item| Value::String(item.trim().to_owned())).collect()),
            EnvKind::Bool => match text.as_str() {
                "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(Value::Bool(true)),
                "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(Value::Bool(false)),
                _ => Err(format!("{text:?} is not true or false")),
            },
            EnvKind::Int => {
                text.trim().parse::<i64>().map(Value::from).map_err(|_| format!("{text:?} is not a number"))
            }
        };
        match value {
            Ok(value) => set(&mut tree, key, value),
            Err(message) => problems.push(KeyProblem { key: format!("{name} (environment)"), message }),
        }
    }
    (tree, problems)
}

/// Hanko's defaults for the database parts, used to build a URL when only some parts are given (as Hanko does).
const DATABASE_PART_DEFAULTS: [(&str, &str); 5] =
    [("user", "hanko"), ("password", "hanko"), ("host", "localhost"), ("port", "5432"), ("database", "hanko")];

/// Turns a merged configuration tree (Hanko's keys and Gatehouse's) into Gatehouse's keys, with every problem.
pub fn translate(mut tree: Value) -> (Value, Vec<KeyProblem>) {
    let mut problems = Vec::new();
    if !tree.is_object() {
        problems.push(problem("(top level)", "a configuration is a map of keys"));
        return (Value::Object(Map::new()), problems);
    }
    move_hanko_spellings(&mut tree, &mut problems);
    let known = serde_json::to_value(Config::default()).unwrap_or_default();
    let mut clean = Map::new();
    if let Value::Object(map) = tree {
        walk(map, &known, "", &mut clean, &mut problems);
    }
    problems.sort_by(|a, b| a.key.cmp(&b.key));
    (Value::Object(clean), problems)
}

/// Hanko's keys whose meaning Gatehouse has under another spelling: moved to Gatehouse's key unless that is set.
fn move_hanko_spellings(tree: &mut Value, problems: &mut Vec<KeyProblem>) {
    // Hanko v1's `emails` section.
    for (from, to) in
        [("emails.require_verification", "email.require_verification"), ("emails.max_num_of_addresses", "email.limit")]
    {
        move_key(tree, from, to);
    }
    remove_if_empty(tree, "emails");
    // Hanko v3 keeps CORS at the top level.
    for key in ["allow_origins", "unsafe_wildcard_origin_allowed"] {
        move_key(tree, &format!("cors.{key}"), &format!("server.public.cors.{key}"));
    }
    remove_if_empty(tree, "cors");
    // Go's ":8000" listens on every interface.
    for key in ["server.public.address", "server.admin.address"] {
        if let Some(Value::String(address)) = get_mut(tree, key)
            && address.starts_with(':')
        {
            address.insert_str(0, "0.0.0.0");
        }
    }
    // Hanko's session audience defaults to the WebAuthn relying party ID.
    if get(tree, "session.audience").is_none()
        && let Some(Value::String(id)) = get(tree, "webauthn.relying_party.id")
    {
        let audience = Value::Array(vec![Value::String(id.clone())]);
        set(tree, "session.audience", audience);
    }
    database_url_from_parts(tree, problems);
}

/// Hanko's `database.{user,password,host,port,database,dialect}`: a URL when no `database.url` is given.
fn database_url_from_parts(tree: &mut Value, problems: &mut Vec<KeyProblem>) {
    let Some(Value::Object(database)) = get_mut(tree, "database") else { return };
    let dialect = database.remove("dialect");
    if let Some(dialect) = &dialect
        && !matches!(dialect.as_str(), Some("postgres" | "postgresql"))
    {
        problems.push(problem(
            "database.dialect",
            &format!("{dialect}: Gatehouse stores its data in PostgreSQL or SQLite only"),
        ));
    }
    let parts: Vec<(&str, Option<Value>)> =
        DATABASE_PART_DEFAULTS.iter().map(|(part, _)| (*part, database.remove(*part))).collect();
    if let Some(pool) = database.remove("pool") {
        database.entry("max_connections").or_insert(pool);
    }
    if database.contains_key("url") || (dialect.is_none() && parts.iter().all(|(_, value)| value.is_none())) {
        return;
    }
    let text = |part: &str| {
        let given = parts.iter().find(|(name, _)| *name == part).and_then(|(_, value)| value.as_ref());
        match given {
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
            None => DATABASE_PART_DEFAULTS.iter().find(|(name, _)| *name == part).map_or("", |(_, d)| d).to_owned(),
        }
    };
    let Ok(port) = text("port").parse::<u16>() else {
        problems.push(problem("database.port", &format!("{:?} is not a port number", text("port"))));
        return;
    };
    let mut url = url::Url::parse("postgres://localhost").expect("a constant URL");
    let built = url.set_host(Some(&text("host"))).is_ok()
        && url.set_port(Some(port)).is_ok()
        && url.set_username(&text("user")).is_ok()
        && url.set_password(Some(&text("password"))).is_ok();
    if built {
        url.set_path(&text("database"));
        database.insert("url".into(), Value::String(url.to_string()));
    } else {
        problems.push(problem("database.host", &format!("{:?} is not a host name", text("host"))));
    }
}

fn walk(
    map: Map<String, Value>,
    known: &Value,
    prefix: &str,
    clean: &mut Map<String, Value>,
    problems: &mut Vec<KeyProblem>,
) {
    for (key, value) in map {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        if let Some(rule) = rule_for(&path) {
            if let Err(message) = check(rule, &value) {
                problems.push(KeyProblem { key: path, message });
            }
            continue;
        }
        let hanko_section = HANKO_RULES.iter().any(|(pattern, _)| pattern.starts_with(&format!("{path}.")));
        match (known.get(&key), value) {
            // A section of Hanko's only, with rules for some keys inside: each key is checked, none is kept.
            (None, Value::Object(inner)) if hanko_section => {
                walk(inner, &Value::Null, &path, &mut Map::new(), problems)
            }
            (None, _) => problems.push(KeyProblem { message: unknown_key_message(&key, known), key: path }),
            // A map whose keys the operator names (session.custom_claims) has none by default: it is read below as
            // a leaf, whole.
            (Some(known @ Value::Object(known_keys)), Value::Object(inner)) if !known_keys.is_empty() => {
                let mut kept = Map::new();
                walk(inner, known, &path, &mut kept, problems);
                clean.insert(key, Value::Object(kept));
            }
            // A leaf, or a wrong type (kept, so that reading it into the configuration names what is expected).
            (Some(_), value) => {
                clean.insert(key, value);
            }
        }
    }
}

fn rule_for(path: &str) -> Option<Rule> {
    HANKO_RULES.iter().find(|(pattern, _)| matches_path(pattern, path)).map(|(_, rule)| *rule)
}

/// `pattern` matches `path` itself or any key below it; `*` matches one key.
fn matches_path(pattern: &str, path: &str) -> bool {
    let mut keys = path.split('.');
    pattern.split('.').all(|expected| keys.next().is_some_and(|key| expected == "*" || expected == key))
}

fn check(rule: Rule, value: &Value) -> Result<(), String> {
    match rule {
        Rule::Ignored => Ok(()),
        Rule::OffOnly(feature) => match value.get("enabled") {
            Some(enabled) if !is_off(enabled) => {
                Err(format!("Gatehouse has no {feature}; set enabled: false or remove it"))
            }
            _ => Ok(()),
        },
        Rule::OffLeaf(feature) if !is_off(value) => Err(format!("Gatehouse has no {feature}; set it off or remove it")),
        Rule::OffLeaf(_) => Ok(()),
        Rule::Only(expected, reason) => match value {
            Value::String(text) if text == expected => Ok(()),
            Value::Bool(flag) if flag.to_string() == expected => Ok(()),
            _ => Err(format!("{value} is not supported ({reason}); set {expected} or remove it")),
        },
    }
}

/// Off: false, zero, empty, or a duration of zero such as Hanko's "0m".
fn is_off(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(flag) => !flag,
        Value::Number(number) => number.as_f64() == Some(0.0),
        Value::String(text) => {
            text.is_empty()
                || text
                    .parse::<crate::duration::GoDuration>()
                    .is_ok_and(|d| d.as_secs() == 0 && d.as_duration().is_zero())
        }
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
    }
}

fn unknown_key_message(key: &str, siblings: &Value) -> String {
    let close = siblings
        .as_object()
        .into_iter()
        .flat_map(|map| map.keys())
        .find(|candidate| edit_distance(candidate, key) <= 2);
    match close {
        Some(candidate) => format!("unknown key (did you mean {candidate}?)"),
        None => "unknown key, neither Gatehouse's nor Hanko's".into(),
    }
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let replaced = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = replaced.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

fn problem(key: &str, message: &str) -> KeyProblem {
    KeyProblem { key: key.to_owned(), message: message.to_owned() }
}

fn get<'a>(tree: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(tree, |node, key| node.get(key))
}

fn get_mut<'a>(tree: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    path.split('.').try_fold(tree, |node, key| node.get_mut(key))
}

/// Sets `path`, making the maps on the way (replacing anything that is not a map).
fn set(tree: &mut Value, path: &str, value: Value) {
    let (parents, last) = path.rsplit_once('.').map_or(("", path), |(parents, last)| (parents, last));
    let mut node = tree;
    for key in parents.split('.').filter(|key| !key.is_empty()) {
        if !node.get(key).is_some_and(Value::is_object) {
            node[key] = Value::Object(Map::new());
        }
        node = &mut node[key];
    }
    node[last] = value;
}

/// Moves the value at `from` to `to`, unless `to` is set already (Gatehouse's own key wins).
fn move_key(tree: &mut Value, from: &str, to: &str) {
    let (parent, last) = from.rsplit_once('.').unwrap_or(("", from));
    let Some(Value::Object(map)) = (if parent.is_empty() { Some(&mut *tree) } else { get_mut(tree, parent) }) else {
        return;
    };
    if let Some(value) = map.remove(last)
        && get(tree, to).is_none()
    {
        set(tree, to, value);
    }
}

fn remove_if_empty(tree: &mut Value, key: &str) {
    if let Value::Object(map) = tree
        && map.get(key).and_then(Value::as_object).is_some_and(Map::is_empty)
    {
        map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn problems(tree: Value) -> Vec<String> {
        translate(tree).1.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn every_problem_is_listed_at_once_one_line_each() {
        let found = problems(json!({
            "password": {"enabled": true, "min_length": 8},
            "passkey": {"enabled": true},
            "third_party": {"providers": {
                "google": {"enabled": true, "client_id": "x"},
                "github": {"enabled": false},
                "microsoft": {"enabled": true, "clientid": "typo"}
            }},
            "session": {"lifespn": "1h", "idle_timeout": "30m", "allow_revocation": true},
            "log": {"level": "info", "log_health_and_metrics": true},
            "nonsense": 1,
            "database": {"dialect": "mysql"},
        }));
        assert_eq!(
            found,
            vec![
                "database.dialect: \"mysql\": Gatehouse stores its data in PostgreSQL or SQLite only",
                "nonsense: unknown key, neither Gatehouse's nor Hanko's",
                "passkey: Gatehouse has no passkeys; set enabled: false or remove it",
                "password: Gatehouse has no password sign-in; set enabled: false or remove it",
                "session.idle_timeout: Gatehouse has no idle session timeouts; set it off or remove it",
                "session.lifespn: unknown key (did you mean lifespan?)",
                "third_party.providers.google: Gatehouse has no Sign in with Google; set enabled: false or remove it",
                "third_party.providers.microsoft.clientid: unknown key (did you mean client_id?)",
            ]
        );
        for line in &found {
            assert!(!line.contains('`') && !line.contains("default.") && !line.contains('\n'), "{line}");
        }
    }

    #[test]
    fn hankos_sample_with_everything_off_is_accepted_and_dropped() {
        let (clean, found) = translate(json!({
            "service": {"name": "Hanko Authentication Service"},
            "password": {"enabled": false, "min_length": 8},
            "passcode": {"ttl": 300, "email": {"from_address": "noreply@example.com"}},
            "email_delivery": {"enabled": true, "smtp": {"host": "localhost"}},
            "webauthn": {"relying_party": {"id": "example.com", "origins": ["https://example.com"]}},
            "audit_log": {"storage": {"enabled": true}, "retention": "720h"},
            "rate_limiter": {"store": "in_memory", "password_limits": {"tokens": 3, "interval": "1m"}},
            "session": {"idle_timeout": "0m", "acquire_ip_address": true, "show_on_profile": true},
            "server": {"public": {"address": ":8000", "cors": {"allow_origins": ["https://*.example.com"]}}},
            "third_party": {"providers": {"apple": {"enabled": false}, "microsoft": {"enabled": true}}},
            "log": {"log_health_and_metrics": true},
        }));
        assert_eq!(found, vec![]);
        assert_eq!(
            clean,
            json!({
                "session": {"audience": ["example.com"]},
                "audit_log": {"retention": "720h"},
                "rate_limiter": {"store": "in_memory"},
                "server": {"public": {"address": "0.0.0.0:8000", "cors": {"allow_origins": ["https://*.example.com"]}}},
                "third_party": {"providers": {"microsoft": {"enabled": true}}},
                "log": {},
            })
        );
    }

    #[test]
    fn an_explicit_audience_wins_over_the_relying_party() {
        let tree = json!({"session": {"audience": ["api"]}, "webauthn": {"relying_party": {"id": "example.com"}}});
        assert_eq!(translate(tree).0, json!({"session": {"audience": ["api"]}}));
    }

    #[test]
    fn database_parts_make_a_url_with_hankos_defaults() {
        let tree = json!({"database": {"host": "db.internal", "port": "6432", "user": "gate", "password": "p@ss:w/rd", "dialect": "postgres"}});
        let (clean, found) = translate(tree);
        assert_eq!(found, vec![]);
        assert_eq!(clean, json!({"database": {"url": "postgres://gate:p%40ss%3Aw%2Frd@db.internal:6432/hanko"}}));
        let tree = json!({"database": {"url": "postgres://a@b/c", "host": "ignored", "pool": 7}});
        assert_eq!(translate(tree).0, json!({"database": {"url": "postgres://a@b/c", "max_connections": 7}}));
    }

    #[test]
    fn hanko_v1_and_v3_spellings_move_to_gatehouses_keys() {
        let tree = json!({
            "emails": {"require_verification": false, "max_num_of_addresses": 3},
            "cors": {"allow_origins": ["https://app.example.com"], "unsafe_wildcard_origin_allowed": true},
        });
        let (clean, found) = translate(tree);
        assert_eq!(
            found.iter().map(|p| p.key.as_str()).collect::<Vec<_>>(),
            vec!["server.public.cors.unsafe_wildcard_origin_allowed"]
        );
        assert_eq!(
            clean,
            json!({
                "email": {"require_verification": false, "limit": 3},
                "server": {"public": {"cors": {"allow_origins": ["https://app.example.com"]}}},
            })
        );
    }

    #[test]
    fn only_values_and_off_leaves() {
        let found = problems(json!({
            "secrets": {"key_management": {"type": "aws_kms", "key_id": "k"}},
            "server": {"ip": {"extractor": "x_forwarded_for"}},
            "email": {"use_for_authentication": true, "enabled": false},
        }));
        assert_eq!(found.len(), 4, "{found:#?}");
        assert!(found[3].starts_with("server.ip.extractor: \"x_forwarded_for\" is not supported (to trust a reverse proxy, set server.public.trusted_proxies)"), "{}", found[3]);
        assert!(problems(json!({"email": {"use_for_authentication": false, "enabled": true}})).is_empty());
    }

    #[test]
    fn the_jwt_template_and_custom_claims_are_kept_whole() {
        let session = json!({"session": {
            "jwt_template": {"claims": {"role": "user", "mail": "{{.User.Email.Address}}", "meta": {"a": [1]}}},
            "custom_claims": {"department": {"type": "string", "id_token": "department"}},
        }});
        let (clean, found) = translate(session.clone());
        assert_eq!(found, vec![]);
        assert_eq!(clean, session);
    }

    #[test]
    fn no_rule_shadows_a_gatehouse_key() {
        let known = serde_json::to_value(Config::default()).unwrap();
        for (pattern, _) in HANKO_RULES {
            assert!(get(&known, pattern).is_none(), "{pattern} is Gatehouse's own key");
        }
    }

    #[test]
    fn hanko_environment_variables_read_as_hanko_reads_them() {
        let vars = [
            ("DATABASE_URL", "postgres://db/gatehouse"),
            ("SECRET_KEYS", "first-key-0123456789,second-key-0123456789"),
            ("SESSION_LIFESPAN", "1h"),
            ("SESSION_COOKIE_SECURE", "F"),
            ("EMAIL_LIMIT", "3"),
            ("PASSWORD_ENABLED", "yes"),
            ("HOME", "/root"),
        ];
        let (tree, found) = env_tree(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        assert_eq!(
            tree,
            json!({
                "database": {"url": "postgres://db/gatehouse"},
                "secret_keys": ["first-key-0123456789", "second-key-0123456789"],
                "session": {"lifespan": "1h", "cookie": {"secure": false}},
                "email": {"limit": 3},
            })
        );
        assert_eq!(found, vec![problem("PASSWORD_ENABLED (environment)", "\"yes\" is not true or false")]);
    }

    #[test]
    fn every_hanko_env_variable_lands_on_a_key_that_translates_cleanly_when_off() {
        for (name, key, kind) in HANKO_ENV {
            let text = match kind {
                EnvKind::Bool => "false",
                EnvKind::Int => "1",
                EnvKind::Text | EnvKind::List => "0",
            };
            let (tree, found) = env_tree([((*name).to_owned(), text.to_owned())]);
            assert_eq!(found, vec![], "{name}");
            let unknown: Vec<_> = translate(tree).1.into_iter().filter(|p| p.message.starts_with("unknown")).collect();
            assert_eq!(unknown, vec![], "{name} → {key}");
        }
    }
}
