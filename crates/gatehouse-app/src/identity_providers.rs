//! Changing identity-provider settings through the admin API: read, change, validate as a whole, save under
//! optimistic concurrency, put in force on this instance at once (the others follow by polling), audit.

use gatehouse_core::{
    clock::Timestamp,
    config::{Secret, parse_expiry},
    settings::{FieldIssue, ProviderSettings, SettingsValues, StoredCertificate, StoredSecret},
};
use gatehouse_crypto::certificate::{CertificateError, ClientAssertionKey, generate_self_signed};
use serde_json::json;

use crate::{
    App,
    admin_keys::AdminActor,
    audit::RequestMeta,
    settings::{self, SettingsError, VersionedSettings},
    thirdparty::ThirdPartyError,
};

/// Why a change of identity-provider settings was refused.
#[derive(Debug, thiserror::Error)]
pub enum SettingsChangeError {
    #[error("the submitted fields are invalid")]
    Invalid(Vec<FieldIssue>),
    #[error("the settings were changed meanwhile (now version {0}); reload them and try again")]
    Stale(i64),
    #[error("this credential is set in the configuration file; remove it there")]
    InConfigFile,
    #[error("no such credential")]
    NoSuchCredential,
    /// Valid field by field, but the whole cannot be used (a client cannot be built from it).
    #[error("{0}")]
    Unusable(ThirdPartyError),
    #[error("cannot generate a certificate: {0}")]
    Generate(String),
    #[error(transparent)]
    Settings(#[from] SettingsError),
}

impl SettingsChangeError {
    fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldIssue::new(field, message)])
    }
}

/// Credentials expiring within this many days are warned about (log, console badge, metric).
pub const EXPIRY_WARNING_DAYS: i64 = 30;
/// How often expiring credentials are reported.
pub const EXPIRY_WARNING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(86_400);

/// Saves that lost a race with another admin's save are retried this often before giving up with 409.
const SAVE_ATTEMPTS: usize = 3;
/// Generated certificates may live this long at most.
pub const MAX_CERTIFICATE_DAYS: u32 = 3650;

/// Where a credential is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Saved through the admin API: can be removed there.
    Console,
    /// In the configuration file: read-only here.
    Config,
}

/// A client secret or certificate as the admin API shows it: never the secret part.
#[derive(Clone, Debug)]
pub struct CredentialInfo {
    pub id: String,
    pub source: Source,
    pub kind: CredentialKind,
    /// Unknown for credentials from the file.
    pub created_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
}

impl CredentialInfo {
    /// How messages name it: a secret by its hint, a certificate by its thumbprint's start.
    pub fn describe(&self) -> String {
        match &self.kind {
            CredentialKind::Secret { hint } => format!("secret {hint}"),
            CredentialKind::Certificate { thumbprint, .. } => {
                format!("certificate {}", thumbprint.chars().take(8).collect::<String>())
            }
        }
    }
}

#[derive(Clone, Debug)]
pub enum CredentialKind {
    Secret { hint: String },
    Certificate { thumbprint: String, algorithm: String, certificate: String },
}

/// How a certificate credential is added.
#[derive(Debug)]
pub enum NewCertificate {
    Pem { private_key: Secret, certificate: String, algorithm: String },
    Generate { days: u32, algorithm: String },
}

#[derive(Debug)]
pub struct IdentityProviders<'a> {
    app: &'a App,
}

impl<'a> IdentityProviders<'a> {
    pub(crate) fn new(app: &'a App) -> Self {
        Self { app }
    }

    /// The saved settings, read from the database (not from this instance's copy: another may have saved).
    pub async fn current(&self) -> Result<VersionedSettings, SettingsError> {
        settings::load(self.app.store(), self.app.sealer()).await
    }

    /// Saves the values `change` holds. With `expected_version`, refuses (409) if the settings moved on since.
    pub async fn update(
        &self,
        actor: &AdminActor,
        meta: &RequestMeta,
        expected_version: Option<i64>,
        change: SettingsValues,
    ) -> Result<VersionedSettings, SettingsChangeError> {
        let issues = change.validate();
        if !issues.is_empty() {
            return Err(SettingsChangeError::Invalid(issues));
        }
        self.modify(actor, meta, expected_version, "admin_settings_updated", None, |settings| {
            let changed = settings.values.merge(change.clone());
            Ok((!changed.is_empty()).then(|| json!({ "changed": changed })))
        })
        .await
    }

    /// Adds a client secret (newest first, so it is used from now on).
    pub async fn add_secret(
        &self,
        actor: &AdminActor,
        meta: &RequestMeta,
        value: Secret,
        expires_at: Option<&str>,
    ) -> Result<(VersionedSettings, String), SettingsChangeError> {
        let mut issues = Vec::new();
        let text = value.expose();
        if text.is_empty() || text.len() > 1024 || text.trim() != text || text.chars().any(char::is_control) {
            issues.push(FieldIssue::new("value", "must be the secret's value, as Azure shows it once"));
        }
        let expires_at = match expires_at.map(parse_expiry).transpose() {
            Ok(Some(at)) if at <= self.app.clock().now() => {
                issues.push(FieldIssue::new("expires_at", "must be in the future"));
                None
            }
            Ok(at) => at,
            Err(message) => {
                issues.push(FieldIssue::new("expires_at", message));
                None
            }
        };
        if !issues.is_empty() {
            return Err(SettingsChangeError::Invalid(issues));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let secret = StoredSecret { id: id.clone(), value, created_at: self.app.clock().now(), expires_at };
        let details =
            json!({ "id": id, "hint": secret.value.hint(), "expires_at": expires_at.map(Timestamp::as_secs) });
        let saved = self
            .modify(actor, meta, None, "admin_secret_added", None, |settings| {
                settings.microsoft_secrets.insert(0, secret.clone());
                Ok(Some(details.clone()))
            })
            .await?;
        Ok((saved, id))
    }

    pub async fn remove_secret(
        &self,
        actor: &AdminActor,
        meta: &RequestMeta,
        id: &str,
    ) -> Result<VersionedSettings, SettingsChangeError> {
        self.modify(actor, meta, None, "admin_secret_removed", Some(id), |settings| {
            let index = settings
                .microsoft_secrets
                .iter()
                .position(|secret| secret.id == id)
                .ok_or(SettingsChangeError::NoSuchCredential)?;
            let removed = settings.microsoft_secrets.remove(index);
            Ok(Some(json!({ "id": id, "hint": removed.value.hint() })))
        })
        .await
    }

    /// Adds a certificate credential, pasted or generated; it is tried before every secret from now on.
    pub async fn add_certificate(
        &self,
        actor: &AdminActor,
        meta: &RequestMeta,
        new: NewCertificate,
    ) -> Result<(VersionedSettings, String), SettingsChangeError> {
        let now = self.app.clock().now();
        let (private_key, certificate, algorithm, generated) = match new {
            NewCertificate::Pem { private_key, certificate, algorithm } => (private_key, certificate, algorithm, false),
            NewCertificate::Generate { days, algorithm } => {
                if !(1..=MAX_CERTIFICATE_DAYS).contains(&days) {
                    return Err(SettingsChangeError::field(
                        "generate.days",
                        format!("must be 1 to {MAX_CERTIFICATE_DAYS}"),
                    ));
                }
                let generate = |error: &dyn std::fmt::Display| SettingsChangeError::Generate(error.to_string());
                let at = time::OffsetDateTime::from_unix_timestamp(now.as_secs()).map_err(|e| generate(&e))?;
                let made = generate_self_signed("Gatehouse Microsoft sign-in", days, at).map_err(|e| generate(&e))?;
                (Secret::new(made.private_key_pem), made.certificate_pem, algorithm, true)
            }
        };
        let key = ClientAssertionKey::from_pem(private_key.expose(), &certificate, &algorithm).map_err(|error| {
            // Name the certificate's own problem too, so that both fields can be fixed at once.
            let mut issues = vec![FieldIssue::new(certificate_field(&error), error.to_string())];
            if let (Err(problem), "private_key") =
                (gatehouse_crypto::certificate::certificate_info(&certificate), certificate_field(&error))
            {
                issues.push(FieldIssue::new("certificate", problem.to_string()));
            }
            SettingsChangeError::Invalid(issues)
        })?;
        if key.not_after() <= now {
            return Err(SettingsChangeError::field("certificate", "the certificate has expired"));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let stored = StoredCertificate { id: id.clone(), private_key, certificate, algorithm, created_at: now };
        let details = json!({
            "id": id, "thumbprint": key.thumbprint(), "not_after": key.not_after().as_secs(), "generated": generated,
        });
        let saved = self
            .modify(actor, meta, None, "admin_certificate_added", None, |settings| {
                settings.microsoft_certificates.insert(0, stored.clone());
                Ok(Some(details.clone()))
            })
            .await?;
        Ok((saved, id))
    }

    pub async fn remove_certificate(
        &self,
        actor: &AdminActor,
        meta: &RequestMeta,
        id: &str,
    ) -> Result<VersionedSettings, SettingsChangeError> {
        self.modify(actor, meta, None, "admin_certificate_removed", Some(id), |settings| {
            let certificates = &mut settings.microsoft_certificates;
            let index = certificates
                .iter()
                .position(|certificate| certificate.id == id)
                .ok_or(SettingsChangeError::NoSuchCredential)?;
            let removed = certificates.remove(index);
            let thumbprint = gatehouse_crypto::certificate::thumbprint_sha256(&removed.certificate).ok();
            Ok(Some(json!({ "id": id, "thumbprint": thumbprint })))
        })
        .await
    }

    /// Every credential in force: saved ones first (newest first), then the file's, in the order they are tried
    /// (certificates before secrets).
    pub fn credentials(&self, saved: &ProviderSettings) -> Vec<CredentialInfo> {
        let file = &self.app.config().third_party.providers.microsoft;
        let certificate = |id: String, source, created_at, pem: &str, algorithm: &str| {
            let info = gatehouse_crypto::certificate::certificate_info(pem).ok();
            CredentialInfo {
                id,
                source,
                created_at,
                expires_at: info.map(|info| info.not_after),
                kind: CredentialKind::Certificate {
                    thumbprint: gatehouse_crypto::certificate::thumbprint_sha256(pem).unwrap_or_default(),
                    algorithm: algorithm.to_owned(),
                    certificate: pem.to_owned(),
                },
            }
        };
        let saved_certificates = saved.microsoft_certificates.iter().map(|stored| {
            certificate(
                stored.id.clone(),
                Source::Console,
                Some(stored.created_at),
                &stored.certificate,
                &stored.algorithm,
            )
        });
        let file_certificates = file.client_certificates().into_iter().enumerate().map(|(index, config)| {
            certificate(
                format!("config-certificate-{index}"),
                Source::Config,
                None,
                &config.certificate,
                &config.algorithm,
            )
        });
        let saved_secrets = saved.microsoft_secrets.iter().map(|stored| CredentialInfo {
            id: stored.id.clone(),
            source: Source::Console,
            created_at: Some(stored.created_at),
            expires_at: stored.expires_at,
            kind: CredentialKind::Secret { hint: stored.value.hint() },
        });
        let file_secrets = file.client_secrets().into_iter().enumerate().map(|(index, secret)| CredentialInfo {
            id: format!("config-secret-{index}"),
            source: Source::Config,
            created_at: None,
            expires_at: secret.expires_at,
            kind: CredentialKind::Secret { hint: secret.hint() },
        });
        saved_certificates.chain(file_certificates).chain(saved_secrets).chain(file_secrets).collect()
    }

    /// Load, change, validate, save, apply, audit; retried when another save won the race, unless the caller
    /// named the version it read. A change that changes nothing (`None` from `change`) saves nothing.
    async fn modify(
        &self,
        actor: &AdminActor,
        meta: &RequestMeta,
        expected_version: Option<i64>,
        audit_kind: &str,
        removing: Option<&str>,
        change: impl Fn(&mut ProviderSettings) -> Result<Option<serde_json::Value>, SettingsChangeError>,
    ) -> Result<VersionedSettings, SettingsChangeError> {
        for _ in 0..SAVE_ATTEMPTS {
            let mut current = self.current().await?;
            if let Some(expected) = expected_version
                && expected != current.version
            {
                return Err(SettingsChangeError::Stale(current.version));
            }
            if let Some(id) = removing
                && id.starts_with("config-")
            {
                return Err(SettingsChangeError::InConfigFile);
            }
            let Some(details) = change(&mut current.settings)? else {
                return Ok(current);
            };
            let issues: Vec<FieldIssue> = current.settings.validate(self.app.config());
            if !issues.is_empty() {
                return Err(SettingsChangeError::Invalid(issues));
            }
            let prepared = self.app.prepare_settings(&current.settings).map_err(SettingsChangeError::Unusable)?;
            let now = self.app.clock().now();
            let saved =
                settings::save(self.app.store(), self.app.sealer(), current.version, &current.settings, now).await?;
            match saved {
                Some(version) => {
                    self.app.install_settings(version, prepared);
                    let saved = VersionedSettings { version, settings: current.settings };
                    self.app.audit().record_admin(audit_kind, actor, None, details, meta).await;
                    return Ok(saved);
                }
                None if expected_version.is_some() => return Err(SettingsChangeError::Stale(current.version + 1)),
                None => continue,
            }
        }
        Err(SettingsChangeError::Stale(self.current().await?.version))
    }

    /// Warns in the log about every credential in force that expires within [`EXPIRY_WARNING_DAYS`] or has
    /// expired.
    pub async fn warn_about_expiring_credentials(&self) {
        let Ok(saved) = self.current().await else { return };
        let now = self.app.clock().now();
        for credential in self.credentials(&saved.settings) {
            let Some(days_left) = credential.expires_at.map(|at| at.millis_after(now).div_euclid(86_400_000)) else {
                continue;
            };
            if days_left < EXPIRY_WARNING_DAYS {
                tracing::warn!(
                    credential = %credential.describe(),
                    days_left,
                    "a Microsoft credential expires soon (or has expired): add a new one (admin console, or \
                     third_party.providers.microsoft in the configuration), then remove the old one"
                );
            }
        }
    }
}

fn certificate_field(error: &CertificateError) -> &'static str {
    match error {
        CertificateError::PrivateKey | CertificateError::KeyMismatch => "private_key",
        CertificateError::Algorithm => "algorithm",
        _ => "certificate",
    }
}
