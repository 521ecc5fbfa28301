//! Identity-provider settings saved through the admin API: stored as one versioned document in the database,
//! secrets sealed inside it, and applied by every instance within `server.settings_poll_interval`.

use gatehouse_core::{
    clock::Timestamp,
    config::Secret,
    settings::{ProviderSettings, SettingsValues, StoredCertificate, StoredSecret},
};
use gatehouse_crypto::sealing::{Purpose, Sealer};
use gatehouse_store::{Store, StoreError};
use serde::{Deserialize, Serialize};

/// The settings document's name in the `settings` table.
pub const IDENTITY_PROVIDERS: &str = "identity_providers";

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the saved identity-provider settings cannot be read: {0}")]
    Corrupt(String),
    #[error("the saved identity-provider settings cannot be applied: {0}")]
    Invalid(String),
}

/// The document as stored: plain values, and each credential's secret part sealed under `secret_keys`, bound to
/// the credential's id so sealed values cannot be swapped between credentials.
#[derive(Default, Serialize, Deserialize)]
struct StoredDocument {
    values: SettingsValues,
    microsoft_secrets: Vec<SealedSecret>,
    microsoft_certificates: Vec<SealedCertificate>,
}

#[derive(Serialize, Deserialize)]
struct SealedSecret {
    id: String,
    /// Unix milliseconds.
    created_at: i64,
    /// Unix seconds: saved documents already hold them so.
    expires_at: Option<i64>,
    sealed_value: String,
}

#[derive(Serialize, Deserialize)]
struct SealedCertificate {
    id: String,
    /// Unix milliseconds.
    created_at: i64,
    certificate: String,
    algorithm: String,
    sealed_private_key: String,
}

fn seal(sealer: &Sealer, id: &str, secret: &Secret) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(sealer.seal(
        Purpose::ProviderCredential,
        secret.expose().as_bytes(),
        id.as_bytes(),
    ))
}

fn open(sealer: &Sealer, id: &str, sealed: &str) -> Result<Secret, SettingsError> {
    use base64::Engine;
    let corrupt = |what: &str| SettingsError::Corrupt(format!("credential {id}: {what}"));
    let bytes = base64::engine::general_purpose::STANDARD.decode(sealed).map_err(|_| corrupt("not base64"))?;
    let plain = sealer
        .open(Purpose::ProviderCredential, &bytes, id.as_bytes())
        .map_err(|_| corrupt("cannot be decrypted with any of secret_keys"))?;
    String::from_utf8(plain).map(Secret::new).map_err(|_| corrupt("not text"))
}

/// Saved settings and the version they were read at (0: nothing was ever saved).
#[derive(Clone, Debug, Default)]
pub struct VersionedSettings {
    pub version: i64,
    pub settings: ProviderSettings,
}

/// Reads the saved settings.
pub async fn load(store: &Store, sealer: &Sealer) -> Result<VersionedSettings, SettingsError> {
    let Some(stored) = store.load_settings(IDENTITY_PROVIDERS).await? else {
        return Ok(VersionedSettings::default());
    };
    let document: StoredDocument =
        serde_json::from_str(&stored.data).map_err(|e| SettingsError::Corrupt(e.to_string()))?;
    let microsoft_secrets = document
        .microsoft_secrets
        .into_iter()
        .map(|secret| {
            Ok(StoredSecret {
                value: open(sealer, &secret.id, &secret.sealed_value)?,
                id: secret.id,
                created_at: Timestamp::from_millis(secret.created_at),
                expires_at: secret.expires_at.map(Timestamp::from_secs),
            })
        })
        .collect::<Result<_, SettingsError>>()?;
    let microsoft_certificates = document
        .microsoft_certificates
        .into_iter()
        .map(|certificate| {
            Ok(StoredCertificate {
                private_key: open(sealer, &certificate.id, &certificate.sealed_private_key)?,
                id: certificate.id,
                created_at: Timestamp::from_millis(certificate.created_at),
                certificate: certificate.certificate,
                algorithm: certificate.algorithm,
            })
        })
        .collect::<Result<_, SettingsError>>()?;
    Ok(VersionedSettings {
        version: stored.version,
        settings: ProviderSettings { values: document.values, microsoft_secrets, microsoft_certificates },
    })
}

/// Saves `settings` at `now` as the version after `expected_version`; `None` when someone saved since.
pub async fn save(
    store: &Store,
    sealer: &Sealer,
    expected_version: i64,
    settings: &ProviderSettings,
    now: Timestamp,
) -> Result<Option<i64>, SettingsError> {
    let document = StoredDocument {
        values: settings.values.clone(),
        microsoft_secrets: settings
            .microsoft_secrets
            .iter()
            .map(|secret| SealedSecret {
                id: secret.id.clone(),
                created_at: secret.created_at.as_millis(),
                expires_at: secret.expires_at.map(Timestamp::as_secs),
                sealed_value: seal(sealer, &secret.id, &secret.value),
            })
            .collect(),
        microsoft_certificates: settings
            .microsoft_certificates
            .iter()
            .map(|certificate| SealedCertificate {
                id: certificate.id.clone(),
                created_at: certificate.created_at.as_millis(),
                certificate: certificate.certificate.clone(),
                algorithm: certificate.algorithm.clone(),
                sealed_private_key: seal(sealer, &certificate.id, &certificate.private_key),
            })
            .collect(),
    };
    let data = serde_json::to_string(&document).map_err(|e| SettingsError::Corrupt(e.to_string()))?;
    Ok(store.save_settings(IDENTITY_PROVIDERS, expected_version, &data, now).await?)
}
