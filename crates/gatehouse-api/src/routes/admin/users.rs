//! `/users` and `/audit-logs`: find a user, see their emails, identities and sessions, and act on them.
// The code utoipa generates for `params(...)` spells out paths that are already in scope.
#![allow(unused_qualifications)]

use axum::{
    Extension, Json,
    extract::State,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode},
};
use gatehouse_core::{
    clock::Timestamp,
    ids::{IdentityId, SessionId, UserId},
    microsoft::directory::DirectoryFacts,
};
use gatehouse_store::AuditLogFilter;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use gatehouse_app::admin_keys::AdminActor;

use crate::{
    ApiError, AppState,
    extract::{AppPath, AppQuery, Meta},
};

const X_TOTAL_COUNT: HeaderName = HeaderName::from_static("x-total-count");
const MAX_PER_PAGE: u32 = 100;

/// Paging, as Hanko's admin API pages: `page` from 1, `per_page` up to 100; the total is in `X-Total-Count`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(default)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    #[param(minimum = 1)]
    page: u32,
    #[param(minimum = 1, maximum = 100)]
    per_page: u32,
}

impl Default for Paging {
    fn default() -> Self {
        Self { page: 1, per_page: 20 }
    }
}

impl Paging {
    fn limit(&self) -> Result<u32, ApiError> {
        if self.page == 0 || !(1..=MAX_PER_PAGE).contains(&self.per_page) {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("page ≥ 1 and per_page 1 to {MAX_PER_PAGE}")));
        }
        Ok(self.per_page)
    }

    fn offset(&self) -> u64 {
        u64::from(self.page - 1) * u64::from(self.per_page)
    }
}

fn total_count(total: i64) -> HeaderMap {
    HeaderMap::from_iter([(X_TOTAL_COUNT, HeaderValue::from(total))])
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserSearch {
    /// Part of an email address, case-insensitive.
    email: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserListItem {
    id: Uuid,
    /// The primary email address.
    email: Option<String>,
    created_at: String,
    updated_at: String,
}

/// List users, newest first, optionally by part of an email address.
#[utoipa::path(get, path = "/users", tag = "users", params(UserSearch, Paging),
    responses((status = 200, body = [UserListItem], headers(("X-Total-Count" = i64)))))]
pub async fn list(
    State(state): State<AppState>,
    AppQuery(search): AppQuery<UserSearch>,
    AppQuery(paging): AppQuery<Paging>,
) -> Result<(HeaderMap, Json<Vec<UserListItem>>), ApiError> {
    let email = search.email.as_deref().map(str::trim).filter(|part| !part.is_empty());
    let (users, total) = state.users().search(email, paging.limit()?, paging.offset()).await?;
    let items = users
        .into_iter()
        .map(|user| UserListItem {
            id: user.id.into(),
            email: user.primary_email,
            created_at: user.created_at.rfc3339(),
            updated_at: user.updated_at.rfc3339(),
        })
        .collect();
    Ok((total_count(total), Json(items)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserDetails {
    id: Uuid,
    created_at: String,
    updated_at: String,
    emails: Vec<EmailView>,
    identities: Vec<IdentityView>,
    sessions: Vec<SessionView>,
}

#[derive(Debug, Serialize, ToSchema)]
struct EmailView {
    id: Uuid,
    address: String,
    is_verified: bool,
    is_primary: bool,
    created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct IdentityView {
    id: Uuid,
    provider: String,
    /// The provider's subject (`sub`) for this app.
    provider_user_id: String,
    /// The Entra tenant (`tid`) the user signed in from.
    tenant_id: Option<String>,
    /// The tenant's display name, when it was read (`read_tenant_name`).
    tenant_name: Option<String>,
    /// App roles assigned to the user, as of the last sign-in with this identity.
    roles: Vec<String>,
    /// Groups kept for sessions, as of the last sign-in with this identity.
    groups: Vec<String>,
    /// When Microsoft last told the roles and groups (the last sign-in); unknown for identities from before.
    directory_read_at: Option<String>,
    email: Option<String>,
    linked_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct SessionView {
    id: Uuid,
    user_agent: Option<String>,
    ip_address: Option<String>,
    created_at: String,
    expires_at: String,
    last_used: String,
}

/// One user with emails, identities and live sessions.
#[utoipa::path(get, path = "/users/{id}", tag = "users", params(("id" = Uuid, Path)),
    responses((status = 200, body = UserDetails), (status = 404)))]
pub async fn show(State(state): State<AppState>, AppPath(id): AppPath<UserId>) -> Result<Json<UserDetails>, ApiError> {
    let user = state.users().find(id).await?.ok_or_else(ApiError::not_found)?;
    let sessions = state.sessions().list(id).await?;
    let identities = user
        .identities
        .iter()
        .map(|identity| {
            let data: serde_json::Value =
                identity.data.as_deref().and_then(|data| serde_json::from_str(data).ok()).unwrap_or_default();
            let text = |key: &str| data.get(key).and_then(|value| value.as_str()).map(str::to_owned);
            let directory: Option<DirectoryFacts> =
                data.get("directory").and_then(|facts| serde_json::from_value(facts.clone()).ok());
            IdentityView {
                id: identity.id.into(),
                provider: identity.provider_id.clone(),
                provider_user_id: identity.provider_user_id.clone(),
                tenant_id: text("tid"),
                tenant_name: directory.as_ref().and_then(|facts| facts.tenant.name.clone()),
                roles: directory.as_ref().map(|facts| facts.roles.clone()).unwrap_or_default(),
                groups: directory.as_ref().map(|facts| facts.groups.clone()).unwrap_or_default(),
                directory_read_at: directory.as_ref().map(|facts| facts.read_at.rfc3339()),
                email: text("email"),
                linked_at: identity.created_at.rfc3339(),
            }
        })
        .collect();
    Ok(Json(UserDetails {
        id: id.into(),
        created_at: user.created_at.rfc3339(),
        updated_at: user.updated_at.rfc3339(),
        emails: user
            .emails
            .iter()
            .map(|email| EmailView {
                id: email.id.into(),
                address: email.address.clone(),
                is_verified: email.is_verified(),
                is_primary: email.is_primary,
                created_at: email.created_at.rfc3339(),
            })
            .collect(),
        identities,
        sessions: sessions
            .into_iter()
            .map(|session| SessionView {
                id: session.id.into(),
                user_agent: session.user_agent,
                ip_address: session.ip_address,
                created_at: session.created_at.rfc3339(),
                expires_at: session.expires_at.rfc3339(),
                last_used: session.last_used.rfc3339(),
            })
            .collect(),
    }))
}

/// Delete a user with their emails, identities and sessions.
#[utoipa::path(delete, path = "/users/{id}", tag = "users", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404)))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(actor): Extension<AdminActor>,
    Meta(meta): Meta,
    AppPath(id): AppPath<UserId>,
) -> Result<StatusCode, ApiError> {
    if !state.users().delete(id, None).await? {
        return Err(ApiError::not_found());
    }
    state.audit().record_admin("admin_user_deleted", &actor, Some(id), json!({}), &meta).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Revoke every session of a user: their tokens stop validating at once, on every instance.
#[utoipa::path(delete, path = "/users/{id}/sessions", tag = "users", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404)))]
pub async fn revoke_sessions(
    State(state): State<AppState>,
    Extension(actor): Extension<AdminActor>,
    Meta(meta): Meta,
    AppPath(id): AppPath<UserId>,
) -> Result<StatusCode, ApiError> {
    state.users().find(id).await?.ok_or_else(ApiError::not_found)?;
    let revoked = state.sessions().end_all_for_user(id).await?;
    state.audit().record_admin("admin_sessions_revoked", &actor, Some(id), json!({ "count": revoked }), &meta).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Revoke one session.
#[utoipa::path(delete, path = "/users/{id}/sessions/{session_id}", tag = "users",
    params(("id" = Uuid, Path), ("session_id" = Uuid, Path)), responses((status = 204), (status = 404)))]
pub async fn revoke_session(
    State(state): State<AppState>,
    Extension(actor): Extension<AdminActor>,
    Meta(meta): Meta,
    AppPath((id, session_id)): AppPath<(UserId, SessionId)>,
) -> Result<StatusCode, ApiError> {
    if !state.sessions().end_for_user(id, session_id).await? {
        return Err(ApiError::not_found());
    }
    let details = json!({ "session_id": session_id });
    state.audit().record_admin("admin_sessions_revoked", &actor, Some(id), details, &meta).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Unlink an identity: that provider account no longer signs in as this user.
#[utoipa::path(delete, path = "/users/{id}/identities/{identity_id}", tag = "users",
    params(("id" = Uuid, Path), ("identity_id" = Uuid, Path)), responses((status = 204), (status = 404)))]
pub async fn unlink_identity(
    State(state): State<AppState>,
    Extension(actor): Extension<AdminActor>,
    Meta(meta): Meta,
    AppPath((id, identity_id)): AppPath<(UserId, IdentityId)>,
) -> Result<StatusCode, ApiError> {
    if !state.users().unlink_identity(id, identity_id).await? {
        return Err(ApiError::not_found());
    }
    let details = json!({ "identity_id": identity_id });
    state.audit().record_admin("admin_identity_unlinked", &actor, Some(id), details, &meta).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditSearch {
    /// An audit log type, e.g. `thirdparty_signin_succeeded` or `admin_settings_updated`.
    r#type: Option<String>,
    /// The user the entry is about.
    #[param(value_type = Option<Uuid>)]
    user_id: Option<UserId>,
    /// RFC 3339; entries at or after.
    from: Option<String>,
    /// RFC 3339; entries before.
    to: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditLogView {
    id: Uuid,
    r#type: String,
    error: Option<String>,
    actor_user_id: Option<Uuid>,
    actor_email: Option<String>,
    /// For admin changes: `admin_key` (which key) and what changed; never a secret.
    details: Option<serde_json::Value>,
    meta: AuditMeta,
    created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct AuditMeta {
    http_request_id: Option<String>,
    source_ip: Option<String>,
    user_agent: Option<String>,
}

fn parse_time(field: &str, text: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    text.map(|text| {
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .map(|at| Timestamp::from_millis((at.unix_timestamp_nanos() / 1_000_000) as i64))
            .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, format!("{field} must be an RFC 3339 time")))
    })
    .transpose()
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/audit-logs", tag = "audit log", params(AuditSearch, Paging),
    responses((status = 200, body = [AuditLogView], headers(("X-Total-Count" = i64)))))]
pub async fn audit_logs(
    State(state): State<AppState>,
    AppQuery(search): AppQuery<AuditSearch>,
    AppQuery(paging): AppQuery<Paging>,
) -> Result<(HeaderMap, Json<Vec<AuditLogView>>), ApiError> {
    let filter = AuditLogFilter {
        kind: search.r#type.filter(|kind| !kind.is_empty()),
        actor_user_id: search.user_id,
        since: parse_time("from", search.from.as_deref())?,
        until: parse_time("to", search.to.as_deref())?,
        limit: paging.limit()?,
        offset: paging.offset(),
    };
    let (entries, total) = state.users().audit_log(&filter).await?;
    let views = entries
        .into_iter()
        .map(|entry| AuditLogView {
            id: entry.id.into(),
            r#type: entry.kind,
            error: entry.error,
            actor_user_id: entry.actor_user_id.map(Uuid::from),
            actor_email: entry.actor_email,
            details: entry.details.as_deref().and_then(|details| serde_json::from_str(details).ok()),
            meta: AuditMeta {
                http_request_id: entry.http_request_id,
                source_ip: entry.source_ip,
                user_agent: entry.user_agent,
            },
            created_at: entry.created_at.rfc3339(),
        })
        .collect();
    Ok((total_count(total), Json(views)))
}
