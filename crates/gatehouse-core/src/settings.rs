//! Identity-provider settings saved through the admin API, and how they combine with the configuration file.
//!
//! What an admin saves is an overlay: each value it holds replaces the file's, everything else stays as the file
//! says. Credentials (client secrets, certificates) added through the API come before the file's, newest first,
//! so adding a new one takes over without touching the file. The overlay is validated as a whole, by the same
//! rules as the file, before it is saved: the effective settings are always usable.

use serde::{Deserialize, Deserializer, Serialize};

use crate::{
    clock::Timestamp,
    config::{CertificateConfig, ClientSecretConfig, Config, ConfigIssue, Secret, ThirdPartyConfig},
    microsoft::claims::TenantMode,
    redirect::RedirectPattern,
};

/// `prompt` values Microsoft accepts on the authorize request.
pub const PROMPTS: [&str; 4] = ["login", "none", "consent", "select_account"];

/// The values an admin can set; `None` leaves the file's value. In a change, `Some(None)` (JSON `null`) removes
/// the admin's value, so the file's applies again; saved values never hold it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SettingsValues {
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub redirect_url: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub error_redirect_url: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_redirect_urls: Option<Vec<String>>,
    pub microsoft: MicrosoftValues,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MicrosoftValues {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_tenants: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_linking: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub prompt: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub cloud_instance: Option<Option<String>>,
}

/// Tells a JSON `null` (`Some(None)`: clear the value) from an absent key (`None`: keep it).
pub fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// A client secret added through the admin API. Its value is kept sealed at rest by the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSecret {
    pub id: String,
    pub value: Secret,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
}

/// A certificate credential added through the admin API. Its private key is kept sealed at rest by the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCertificate {
    pub id: String,
    pub private_key: Secret,
    pub certificate: String,
    pub algorithm: String,
    pub created_at: Timestamp,
}

/// Everything saved through the admin API.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProviderSettings {
    pub values: SettingsValues,
    /// Newest first.
    pub microsoft_secrets: Vec<StoredSecret>,
    /// Newest first.
    pub microsoft_certificates: Vec<StoredCertificate>,
}

/// One thing wrong with a change, named by the admin API's field name (`allowed_redirect_urls[1]`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldIssue {
    pub field: String,
    pub message: String,
}

impl FieldIssue {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

impl SettingsValues {
    /// Copies every value `change` holds into `self`; returns the names of the values that changed.
    pub fn merge(&mut self, change: SettingsValues) -> Vec<&'static str> {
        let mut changed = Vec::new();
        fn take<T: PartialEq>(slot: &mut Option<T>, value: Option<T>, name: &'static str, changed: &mut Vec<&str>) {
            if let Some(value) = value
                && slot.as_ref() != Some(&value)
            {
                *slot = Some(value);
                changed.push(name);
            }
        }
        fn take_or_drop(
            slot: &mut Option<Option<String>>,
            value: Option<Option<String>>,
            name: &'static str,
            changed: &mut Vec<&str>,
        ) {
            match value {
                Some(None) if slot.is_some() => {
                    *slot = None;
                    changed.push(name);
                }
                Some(None) => {}
                value => take(slot, value, name, changed),
            }
        }
        take_or_drop(&mut self.redirect_url, change.redirect_url, "redirect_url", &mut changed);
        take_or_drop(&mut self.error_redirect_url, change.error_redirect_url, "error_redirect_url", &mut changed);
        take(&mut self.allowed_redirect_urls, change.allowed_redirect_urls, "allowed_redirect_urls", &mut changed);
        let (ours, theirs) = (&mut self.microsoft, change.microsoft);
        take(&mut ours.enabled, theirs.enabled, "providers.microsoft.enabled", &mut changed);
        take(&mut ours.client_id, theirs.client_id, "providers.microsoft.client_id", &mut changed);
        take(&mut ours.tenant, theirs.tenant, "providers.microsoft.tenant", &mut changed);
        take(&mut ours.allowed_tenants, theirs.allowed_tenants, "providers.microsoft.allowed_tenants", &mut changed);
        take(&mut ours.allow_linking, theirs.allow_linking, "providers.microsoft.allow_linking", &mut changed);
        take_or_drop(&mut ours.prompt, theirs.prompt, "providers.microsoft.prompt", &mut changed);
        take_or_drop(
            &mut ours.cloud_instance,
            theirs.cloud_instance,
            "providers.microsoft.cloud_instance",
            &mut changed,
        );
        changed
    }

    /// Checks each value on its own, naming fields as the admin API does.
    pub fn validate(&self) -> Vec<FieldIssue> {
        let mut issues = Vec::new();
        for (field, url) in [("redirect_url", &self.redirect_url), ("error_redirect_url", &self.error_redirect_url)] {
            if let Some(Some(url)) = url
                && let Err(message) = crate::config::check_absolute_url(url)
            {
                issues.push(FieldIssue::new(field, message));
            }
        }
        for (index, pattern) in self.allowed_redirect_urls.iter().flatten().enumerate() {
            if let Err(error) = RedirectPattern::parse(pattern) {
                issues.push(FieldIssue::new(format!("allowed_redirect_urls[{index}]"), error.to_string()));
            }
        }
        let microsoft = &self.microsoft;
        if let Some(client_id) = &microsoft.client_id
            && (client_id.trim().is_empty() || client_id.len() > 256 || client_id.contains(char::is_whitespace))
        {
            issues.push(FieldIssue::new("providers.microsoft.client_id", "must be the app's client ID (no spaces)"));
        }
        if let Some(tenant) = &microsoft.tenant
            && let Err(error) = TenantMode::parse(tenant)
        {
            issues.push(FieldIssue::new("providers.microsoft.tenant", error.to_string()));
        }
        for (index, tenant) in microsoft.allowed_tenants.iter().flatten().enumerate() {
            if !matches!(TenantMode::parse(tenant), Ok(TenantMode::TenantId(_))) {
                issues.push(FieldIssue::new(
                    format!("providers.microsoft.allowed_tenants[{index}]"),
                    format!("{tenant:?} is not a tenant ID (a GUID)"),
                ));
            }
        }
        if let Some(Some(prompt)) = &microsoft.prompt
            && !PROMPTS.contains(&prompt.as_str())
        {
            issues
                .push(FieldIssue::new("providers.microsoft.prompt", format!("must be one of {}", PROMPTS.join(", "))));
        }
        if let Some(Some(cloud_instance)) = &microsoft.cloud_instance
            && let Err(message) = crate::config::check_cloud_instance(cloud_instance)
        {
            issues.push(FieldIssue::new("providers.microsoft.cloud_instance", message));
        }
        issues
    }
}

impl ProviderSettings {
    /// The file's third-party configuration with these settings laid over it.
    pub fn apply(&self, file: &ThirdPartyConfig) -> ThirdPartyConfig {
        let mut effective = file.clone();
        let values = &self.values;
        if let Some(Some(url)) = &values.redirect_url {
            effective.redirect_url = Some(url.clone());
        }
        if let Some(Some(url)) = &values.error_redirect_url {
            effective.error_redirect_url = Some(url.clone());
        }
        if let Some(patterns) = &values.allowed_redirect_urls {
            effective.allowed_redirect_urls = patterns.clone();
        }
        let microsoft = &mut effective.providers.microsoft;
        let overlay = &values.microsoft;
        if let Some(enabled) = overlay.enabled {
            microsoft.enabled = enabled;
        }
        if let Some(client_id) = &overlay.client_id {
            microsoft.client_id = Some(client_id.clone());
        }
        if let Some(tenant) = &overlay.tenant {
            microsoft.tenant = tenant.clone();
        }
        if let Some(tenants) = &overlay.allowed_tenants {
            microsoft.allowed_tenants = tenants.clone();
        }
        if let Some(allow_linking) = overlay.allow_linking {
            microsoft.allow_linking = allow_linking;
        }
        if let Some(Some(prompt)) = &overlay.prompt {
            microsoft.prompt = Some(prompt.clone());
        }
        if let Some(Some(cloud_instance)) = &overlay.cloud_instance {
            microsoft.cloud_instance = cloud_instance.clone();
        }
        let file_secrets = microsoft.secret.take().map(|value| ClientSecretConfig { value, expires_at: None });
        microsoft.secrets = self
            .microsoft_secrets
            .iter()
            .map(|secret| ClientSecretConfig {
                value: secret.value.clone(),
                expires_at: secret.expires_at.map(Timestamp::rfc3339),
            })
            .chain(file_secrets)
            .chain(std::mem::take(&mut microsoft.secrets))
            .collect();
        let file_certificates: Vec<CertificateConfig> =
            microsoft.certificate.take().into_iter().chain(std::mem::take(&mut microsoft.certificates)).collect();
        microsoft.certificates = self
            .microsoft_certificates
            .iter()
            .map(|certificate| CertificateConfig {
                private_key: certificate.private_key.clone(),
                certificate: certificate.certificate.clone(),
                algorithm: certificate.algorithm.clone(),
            })
            .chain(file_certificates)
            .collect();
        effective
    }

    /// Every problem with these settings over the configuration `file`: each value on its own, then the effective
    /// configuration by the file's rules (an enabled provider needs a client ID, a credential, redirect URLs; a
    /// plain-http provider needs a loopback listener…). Only `third_party` changes, so only its rules can fail.
    pub fn validate(&self, file: &Config) -> Vec<FieldIssue> {
        let issues = self.values.validate();
        if !issues.is_empty() {
            return issues;
        }
        let effective = Config { third_party: self.apply(&file.third_party), ..file.clone() };
        effective
            .validate()
            .into_iter()
            .filter(|issue| issue.key.starts_with("third_party."))
            .map(field_issue)
            .collect()
    }
}

/// Names a configuration issue by the admin API's field, and says where a file-only value must be fixed.
fn field_issue(issue: ConfigIssue) -> FieldIssue {
    let field = match issue.key {
        "third_party.providers.microsoft.secret" | "third_party.providers.microsoft.secrets" => {
            "providers.microsoft.secrets"
        }
        key if key.starts_with("third_party.providers.microsoft.certificate") => "providers.microsoft.certificates",
        key => key.strip_prefix("third_party.").unwrap_or(key),
    };
    let message = match issue.key {
        "third_party.default_redirect_url" => {
            format!("{} (set {} in the configuration file)", issue.message, issue.key)
        }
        "third_party.providers.microsoft.secret" => {
            "Microsoft is enabled, so it needs a client secret or a certificate".to_owned()
        }
        _ => issue.message,
    };
    FieldIssue::new(field, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MicrosoftProviderConfig;

    fn file() -> ThirdPartyConfig {
        ThirdPartyConfig {
            redirect_url: Some("https://auth.example.com/thirdparty/callback".into()),
            error_redirect_url: Some("https://app.example.com/error".into()),
            allowed_redirect_urls: vec!["https://app.example.com/**".into()],
            providers: crate::config::ProvidersConfig {
                microsoft: MicrosoftProviderConfig {
                    client_id: Some("file-client".into()),
                    secret: Some(Secret::new("file-secret")),
                    ..MicrosoftProviderConfig::default()
                },
            },
            ..ThirdPartyConfig::default()
        }
    }

    fn config(third_party: ThirdPartyConfig) -> Config {
        Config { third_party, ..Config::default() }
    }

    fn secret(id: &str, value: &str) -> StoredSecret {
        StoredSecret { id: id.into(), value: Secret::new(value), created_at: Timestamp::UNIX_EPOCH, expires_at: None }
    }

    #[test]
    fn values_override_the_file_and_absent_ones_keep_it() {
        let settings = ProviderSettings {
            values: SettingsValues {
                allowed_redirect_urls: Some(vec!["https://*.example.com/**".into()]),
                microsoft: MicrosoftValues {
                    enabled: Some(true),
                    prompt: Some(Some("login".into())),
                    ..Default::default()
                },
                ..Default::default()
            },
            ..Default::default()
        };
        let effective = settings.apply(&file());
        assert_eq!(effective.allowed_redirect_urls, vec!["https://*.example.com/**".to_owned()]);
        assert_eq!(effective.error_redirect_url.as_deref(), Some("https://app.example.com/error"));
        assert!(effective.providers.microsoft.enabled);
        assert_eq!(effective.providers.microsoft.client_id.as_deref(), Some("file-client"));
        assert_eq!(effective.providers.microsoft.prompt.as_deref(), Some("login"));
        assert_eq!(settings.validate(&config(file())), vec![]);
    }

    #[test]
    fn saved_credentials_come_before_the_files() {
        let settings = ProviderSettings {
            microsoft_secrets: vec![secret("b", "newest"), secret("a", "newer")],
            ..Default::default()
        };
        let mut file = file();
        file.providers.microsoft.secrets =
            vec![ClientSecretConfig { value: Secret::new("file-older"), expires_at: Some("2030-01-01".into()) }];
        let order: Vec<String> = settings
            .apply(&file)
            .providers
            .microsoft
            .client_secrets()
            .iter()
            .map(|secret| secret.value.expose().to_owned())
            .collect();
        assert_eq!(order, ["newest", "newer", "file-secret", "file-older"]);
    }

    #[test]
    fn null_goes_back_to_the_file_and_absent_keeps() {
        let set: SettingsValues = serde_json::from_str(
            r#"{"error_redirect_url": "https://app.example.com/oops", "microsoft": {"client_id": "x"}}"#,
        )
        .unwrap();
        let mut values = SettingsValues::default();
        assert_eq!(values.merge(set.clone()), ["error_redirect_url", "providers.microsoft.client_id"]);
        assert_eq!(values.merge(set), Vec::<&str>::new(), "saving the same values changes nothing");
        let round_trip: SettingsValues = serde_json::from_str(&serde_json::to_string(&values).unwrap()).unwrap();
        assert_eq!(round_trip, values);
        let saved = ProviderSettings { values: values.clone(), ..Default::default() };
        assert_eq!(saved.apply(&file()).error_redirect_url.as_deref(), Some("https://app.example.com/oops"));

        let unset: SettingsValues = serde_json::from_str(r#"{"error_redirect_url": null}"#).unwrap();
        assert_eq!((unset.error_redirect_url.clone(), unset.allowed_redirect_urls.clone()), (Some(None), None));
        assert_eq!(values.merge(unset.clone()), ["error_redirect_url"]);
        assert_eq!(values.error_redirect_url, None, "nothing of it is saved");
        assert_eq!(values.microsoft.client_id.as_deref(), Some("x"), "absent values are kept");
        let saved = ProviderSettings { values: values.clone(), ..Default::default() };
        assert_eq!(saved.apply(&file()).error_redirect_url.as_deref(), Some("https://app.example.com/error"));
        assert_eq!(values.merge(unset), Vec::<&str>::new());
    }

    #[test]
    fn each_bad_value_is_named_by_its_field() {
        let values = SettingsValues {
            redirect_url: Some(Some("/thirdparty/callback".into())),
            error_redirect_url: Some(Some("not a url".into())),
            allowed_redirect_urls: Some(vec!["https://ok.example.com".into(), "not a url".into()]),
            microsoft: MicrosoftValues {
                client_id: Some("has space".into()),
                tenant: Some("not a tenant!".into()),
                allowed_tenants: Some(vec!["common".into()]),
                prompt: Some(Some("always".into())),
                cloud_instance: Some(Some("http://login.example.com".into())),
                ..Default::default()
            },
        };
        let fields: Vec<String> = values.validate().into_iter().map(|issue| issue.field).collect();
        assert_eq!(
            fields,
            [
                "redirect_url",
                "error_redirect_url",
                "allowed_redirect_urls[1]",
                "providers.microsoft.client_id",
                "providers.microsoft.tenant",
                "providers.microsoft.allowed_tenants[0]",
                "providers.microsoft.prompt",
                "providers.microsoft.cloud_instance",
            ]
        );
    }

    #[test]
    fn enabling_needs_a_credential_and_a_redirect_url_from_the_file_or_the_console() {
        let mut file = file();
        file.providers.microsoft.secret = None;
        file.redirect_url = None;
        let settings = ProviderSettings {
            values: SettingsValues {
                microsoft: MicrosoftValues { enabled: Some(true), ..Default::default() },
                ..Default::default()
            },
            ..Default::default()
        };
        let file = config(file);
        let issues = settings.validate(&file);
        let fields: Vec<&str> = issues.iter().map(|issue| issue.field.as_str()).collect();
        assert_eq!(fields, ["redirect_url", "providers.microsoft.secrets"]);
        let mut with_secret = ProviderSettings { microsoft_secrets: vec![secret("a", "s")], ..settings };
        assert_eq!(with_secret.validate(&file).len(), 1, "only the redirect URL is left");
        with_secret.values.redirect_url = Some(Some("https://auth.example.com/thirdparty/callback".into()));
        assert_eq!(with_secret.validate(&file), vec![]);
        assert_eq!(
            with_secret.apply(&file.third_party).redirect_url.as_deref(),
            Some("https://auth.example.com/thirdparty/callback")
        );
    }

    #[test]
    fn a_plain_http_cloud_instance_needs_a_loopback_listener_as_in_the_file() {
        let settings = ProviderSettings {
            values: SettingsValues {
                microsoft: MicrosoftValues {
                    cloud_instance: Some(Some("http://127.0.0.1:9999".into())),
                    ..Default::default()
                },
                ..Default::default()
            },
            ..Default::default()
        };
        let mut file = config(file());
        assert_eq!(settings.validate(&file), vec![], "the default listener is on loopback");
        assert_eq!(settings.apply(&file.third_party).providers.microsoft.cloud_instance, "http://127.0.0.1:9999");
        file.server.public.address = "0.0.0.0:8000".into();
        let fields: Vec<String> = settings.validate(&file).into_iter().map(|issue| issue.field).collect();
        assert_eq!(fields, ["providers.microsoft.cloud_instance"]);
    }
}
