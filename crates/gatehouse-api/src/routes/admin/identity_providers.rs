//! `/identity-providers`: the settings the Hanko console guide has its users fill in, and the credentials.
// The code utoipa generates for `params(...)` spells out paths that are already in scope.
#![allow(unused_qualifications)]

use axum::{Extension, Json, extract::State, http::StatusCode};
use gatehouse_core::{
    clock::Timestamp,
    config::Secret,
    settings::{MicrosoftValues, SettingsValues, present},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use gatehouse_app::{
    admin_keys::AdminActor,
    identity_providers::{CredentialKind, EXPIRY_WARNING_DAYS, NewCertificate, Source},
    settings::VersionedSettings,
};

use crate::{
    ApiError, AppState,
    extract::{AppJson, AppPath, AppQuery, Meta},
};

/// The effective identity-provider settings: the configuration file with the console's changes over it.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityProvidersView {
    /// Grows with every save; send it back in `PUT` to refuse overwriting someone else's change.
    version: i64,
    /// `<api base>/thirdparty/callback`, to register in the app registration and sent to Microsoft as
    /// `redirect_uri`.
    redirect_url: Option<String>,
    /// The configuration file's `third_party.redirect_url` (in development mode, when the file sets none, the
    /// public listener's callback): what applies when the console's value is removed.
    config_redirect_url: Option<String>,
    error_redirect_url: Option<String>,
    allowed_redirect_urls: Vec<String>,
    providers: ProvidersView,
}

#[derive(Debug, Serialize, ToSchema)]
struct ProvidersView {
    microsoft: MicrosoftView,
}

#[derive(Debug, Serialize, ToSchema)]
struct MicrosoftView {
    enabled: bool,
    /// Enabled and usable: the sign-in button is shown.
    configured: bool,
    /// Why an enabled provider cannot be used, or what needs attention soon.
    problems: Vec<String>,
    client_id: Option<String>,
    tenant: String,
    allowed_tenants: Vec<String>,
    allow_linking: bool,
    prompt: Option<String>,
    /// Where Microsoft's endpoints are: `https://login.microsoftonline.com`, or a national cloud's.
    cloud_instance: String,
    /// The configuration file's `cloud_instance`: what applies when the console's value is removed.
    config_cloud_instance: String,
    secrets: Vec<SecretView>,
    certificates: Vec<CertificateView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SecretView {
    id: String,
    /// `console` (removable here) or `config` (set in the configuration file).
    source: &'static str,
    /// The last four characters.
    hint: String,
    created_at: Option<String>,
    expires_at: Option<String>,
    expires_in_seconds: Option<i64>,
    expired: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateView {
    id: String,
    source: &'static str,
    /// `x5t#S256`: base64url SHA-256 of the certificate, as Azure lists it.
    thumbprint: String,
    algorithm: String,
    not_after: Option<String>,
    expires_in_seconds: Option<i64>,
    expired: bool,
    created_at: Option<String>,
    /// The certificate (PEM) to upload to the app registration.
    certificate: String,
}

fn source_name(source: Source) -> &'static str {
    match source {
        Source::Console => "console",
        Source::Config => "config",
    }
}

fn view(state: &AppState, saved: &VersionedSettings) -> IdentityProvidersView {
    let file = &state.config().third_party;
    let effective = saved.settings.apply(file);
    let microsoft = &effective.providers.microsoft;
    let now = state.clock().now();
    let credentials = state.identity_providers().credentials(&saved.settings);
    let mut problems = Vec::new();
    let usable = credentials.iter().any(|credential| credential.expires_at.is_none_or(|at| at > now));
    if microsoft.enabled && !usable {
        problems.push("every client secret and certificate has expired: add a new one".to_owned());
    }
    let complete = matches!(gatehouse_oidc::microsoft::MicrosoftSettings::from_config(&effective), Ok(Some(_)));
    for credential in credentials.iter().filter(|c| c.expires_at.is_some_and(|at| at > now)) {
        let days = credential.expires_at.unwrap_or(now).millis_after(now).div_euclid(86_400_000);
        if days < EXPIRY_WARNING_DAYS {
            problems.push(format!("{} expires in {days} days", credential.describe()));
        }
    }
    let (mut secrets, mut certificates) = (Vec::new(), Vec::new());
    for credential in credentials {
        let expires_in_seconds = credential.expires_at.map(|at| at.millis_after(now).div_euclid(1000));
        let expired = expires_in_seconds.is_some_and(|seconds| seconds <= 0);
        let source = source_name(credential.source);
        let created_at = credential.created_at.map(Timestamp::rfc3339);
        let expires_at = credential.expires_at.map(Timestamp::rfc3339);
        match credential.kind {
            CredentialKind::Secret { hint } => secrets.push(SecretView {
                id: credential.id,
                source,
                hint,
                created_at,
                expires_at,
                expires_in_seconds,
                expired,
            }),
            CredentialKind::Certificate { thumbprint, algorithm, certificate } => certificates.push(CertificateView {
                id: credential.id,
                source,
                thumbprint,
                algorithm,
                not_after: expires_at,
                expires_in_seconds,
                expired,
                created_at,
                certificate,
            }),
        }
    }
    IdentityProvidersView {
        version: saved.version,
        redirect_url: effective.redirect_url.clone(),
        config_redirect_url: file.redirect_url.clone(),
        error_redirect_url: effective.error_redirect_url.clone(),
        allowed_redirect_urls: effective.allowed_redirect_urls.clone(),
        providers: ProvidersView {
            microsoft: MicrosoftView {
                enabled: microsoft.enabled,
                configured: complete && usable,
                problems,
                client_id: microsoft.client_id.clone(),
                tenant: microsoft.tenant.clone(),
                allowed_tenants: microsoft.allowed_tenants.clone(),
                allow_linking: microsoft.allow_linking,
                prompt: microsoft.prompt.clone(),
                cloud_instance: microsoft.cloud_instance.clone(),
                config_cloud_instance: file.providers.microsoft.cloud_instance.clone(),
                secrets,
                certificates,
            },
        },
    }
}

/// Read the effective settings. Secrets are never returned: only their last four characters and dates.
#[utoipa::path(get, path = "/identity-providers", tag = "identity providers",
    responses((status = 200, body = IdentityProvidersView), (status = 401, description = "no or unknown admin key")))]
pub async fn get(State(state): State<AppState>) -> Result<Json<IdentityProvidersView>, ApiError> {
    let saved = state.identity_providers().current().await?;
    Ok(Json(view(&state, &saved)))
}

/// A change of settings: every field is optional, and only fields present are saved.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateIdentityProviders {
    /// The version read; if someone saved since, the update is refused with 409.
    version: Option<i64>,
    /// `<api base>/thirdparty/callback`, as registered in the app registration; `null` goes back to the
    /// configuration file's value.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    redirect_url: Option<Option<String>>,
    /// `null` drops the console's value: the configuration file's applies again.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    error_redirect_url: Option<Option<String>>,
    /// Glob patterns: `*` matches within one host label or path segment, `**` across them.
    allowed_redirect_urls: Option<Vec<String>>,
    #[serde(default)]
    providers: UpdateProviders,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateProviders {
    #[serde(default)]
    microsoft: UpdateMicrosoft,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateMicrosoft {
    enabled: Option<bool>,
    client_id: Option<String>,
    /// `common`, `organizations`, `consumers`, a tenant GUID or a verified domain.
    tenant: Option<String>,
    /// Tenant GUIDs whose users may sign in; empty allows every tenant the tenant mode admits.
    allowed_tenants: Option<Vec<String>>,
    /// Linking by email to an existing user: how the nOAuth attack takes over accounts; off by default.
    allow_linking: Option<bool>,
    /// `login`, `none`, `consent` or `select_account`; `null` goes back to the configuration file's value.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    prompt: Option<Option<String>>,
    /// `https://login.microsoftonline.com` (global), `https://login.microsoftonline.us` (US Government),
    /// `https://login.partner.microsoftonline.cn` (China); `null` goes back to the configuration file's value.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    cloud_instance: Option<Option<String>>,
}

/// Save settings. They apply on this instance at once and on every other within `server.settings_poll_interval`.
#[utoipa::path(put, path = "/identity-providers", tag = "identity providers", request_body = UpdateIdentityProviders,
    responses((status = 200, body = IdentityProvidersView), (status = 409, description = "stale version"),
        (status = 422, description = "invalid fields, each named in `errors`")))]
pub async fn update(
    State(state): State<AppState>,
    Extension(actor): Extension<AdminActor>,
    Meta(meta): Meta,
    AppJson(body): AppJson<UpdateIdentityProviders>,
) -> Result<Json<IdentityProvidersView>, ApiError> {
    let microsoft = body.providers.microsoft;
    let change = SettingsValues {
        redirect_url: body.redirect_url,
        error_redirect_url: body.error_redirect_url,
        allowed_redirect_urls: body.allowed_redirect_urls,
        microsoft: MicrosoftValues {
            enabled: microsoft.enabled,
            client_id: microsoft.client_id,
            tenant: microsoft.tenant,
            allowed_tenants: microsoft.allowed_tenants,
            allow_linking: microsoft.allow_linking,
            prompt: microsoft.prompt,
            cloud_instance: microsoft.cloud_instance,
        },
    };
    let saved = state.identity_providers().update(&actor, &meta, body.version, change).await?;
    Ok(Json(view(&state, &saved)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSecret {
    /// The secret's value, as Azure shows it once.
    #[schema(value_type = String)]
    value: Secret,
    /// `2027-05-31` (end of that day, UTC) or an RFC 3339 time, as Azure shows it.
    expires_at: Option<String>,
}

/// Add a client secret. It is used from now on; older ones remain as fallbacks until removed.
#[utoipa::path(post, path = "/identity-providers/microsoft/secrets", tag = "identity providers",
    request_body = NewSecret, responses((status = 201, body = SecretView), (status = 422, description = "invalid")))]
pub async fn add_secret(
    State(state): State<AppState>,
    Extension(actor): Extension<AdminActor>,
    Meta(meta): Meta,
    AppJson(body): AppJson<NewSecret>,
) -> Result<(StatusCode, Json<SecretView>), ApiError> {
    let (saved, id) =
        state.identity_providers().add_secret(&actor, &meta, body.value, body.expires_at.as_deref()).await?;
    let secret = view(&state, &saved).providers.microsoft.secrets.into_iter().find(|secret| secret.id == id);
    Ok((StatusCode::CREATED, Json(secret.ok_or_else(|| ApiError::internal("the new secret is not listed"))?)))
}

/// Remove a client secret added here (secrets from the configuration file are removed there).
#[utoipa::path(delete, path = "/identity-providers/microsoft/secrets/{id}", tag = "identity providers",
    params(("id" = String, Path)), responses((status = 204), (status = 404), (status = 409, description = "from the configuration file")))]
pub async fn remove_secret(
    State(state): State<AppState>,
    Extension(actor): Extension<AdminActor>,
    Meta(meta): Meta,
    AppPath(id): AppPath<String>,
) -> Result<StatusCode, ApiError> {
    state.identity_providers().remove_secret(&actor, &meta, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A certificate credential: paste a key and certificate, or have Gatehouse generate both.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCertificateBody {
    /// PEM, PKCS#8 or PKCS#1 RSA key; stored encrypted.
    #[schema(value_type = Option<String>)]
    private_key: Option<Secret>,
    /// PEM certificate of that key, as uploaded to Azure.
    certificate: Option<String>,
    /// `PS256` (default, Microsoft's recommendation) or `RS256`.
    algorithm: Option<String>,
    /// Generate a key and a self-signed certificate instead.
    generate: Option<GenerateCertificate>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct GenerateCertificate {
    /// Validity in days, 1 to 3650.
    days: u32,
}

/// Add a certificate credential. It is tried before every secret: upload it to Azure first (a certificate
/// Azure does not know yet costs one refused request per sign-in, then the next credential is used).
#[utoipa::path(post, path = "/identity-providers/microsoft/certificates", tag = "identity providers",
    request_body = NewCertificateBody, responses((status = 201, body = CertificateView), (status = 422, description = "invalid")))]
pub async fn add_certificate(
    State(state): State<AppState>,
    Extension(actor): Extension<AdminActor>,
    Meta(meta): Meta,
    AppJson(body): AppJson<NewCertificateBody>,
) -> Result<(StatusCode, Json<CertificateView>), ApiError> {
    let algorithm = body.algorithm.unwrap_or_else(|| "PS256".into());
    let new = match (body.generate, body.private_key, body.certificate) {
        (Some(generate), None, None) => NewCertificate::Generate { days: generate.days, algorithm },
        (None, Some(private_key), Some(certificate)) => NewCertificate::Pem { private_key, certificate, algorithm },
        (None, None, _) => return Err(ApiError::invalid_field("private_key", "required (or use generate)")),
        (None, _, None) => return Err(ApiError::invalid_field("certificate", "required (or use generate)")),
        (Some(_), _, _) => {
            return Err(ApiError::invalid_field("generate", "either generate, or private_key and certificate"));
        }
    };
    let (saved, id) = state.identity_providers().add_certificate(&actor, &meta, new).await?;
    let certificate =
        view(&state, &saved).providers.microsoft.certificates.into_iter().find(|certificate| certificate.id == id);
    Ok((StatusCode::CREATED, Json(certificate.ok_or_else(|| ApiError::internal("the new certificate is not listed"))?)))
}

/// Remove a certificate credential added here.
#[utoipa::path(delete, path = "/identity-providers/microsoft/certificates/{id}", tag = "identity providers",
    params(("id" = String, Path)), responses((status = 204), (status = 404), (status = 409, description = "from the configuration file")))]
pub async fn remove_certificate(
    State(state): State<AppState>,
    Extension(actor): Extension<AdminActor>,
    Meta(meta): Meta,
    AppPath(id): AppPath<String>,
) -> Result<StatusCode, ApiError> {
    state.identity_providers().remove_certificate(&actor, &meta, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AdminConsentQuery {
    /// A tenant GUID or verified domain; `organizations` (or `common`) for whichever organisation the
    /// administrator signs in to. Default: the configured tenant.
    tenant: Option<String>,
}

/// Where a tenant's administrator approves the app for the whole organisation.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminConsentView {
    /// Microsoft's `{cloud}/{tenant}/v2.0/adminconsent?…` for the app's configured permissions (`/.default`).
    url: String,
    /// The tenant in the URL: a GUID, a domain, or `organizations`.
    tenant: String,
    /// Who must open it, in words.
    approver: String,
}

/// The admin-consent URL for a tenant, with the settings in force on this instance.
#[utoipa::path(get, path = "/identity-providers/microsoft/admin-consent", tag = "identity providers",
    params(AdminConsentQuery),
    responses((status = 200, body = AdminConsentView),
        (status = 409, description = "no client ID or redirect URL is set"),
        (status = 422, description = "`tenant` is not a GUID, a domain, `organizations` or `common`")))]
pub async fn admin_consent(
    State(state): State<AppState>,
    AppQuery(query): AppQuery<AdminConsentQuery>,
) -> Result<Json<AdminConsentView>, ApiError> {
    let tenant = query.tenant.as_deref().map(str::trim).filter(|tenant| !tenant.is_empty());
    let consent = state.third_party().admin_consent(tenant)?;
    Ok(Json(AdminConsentView {
        tenant: consent.tenant.segment().to_owned(),
        approver: consent.tenant.who_approves(),
        url: consent.url.into(),
    }))
}
