// The code utoipa generates for `params(...)` and `body = …` spells out paths that are already in scope.
#![allow(unused_qualifications)]

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use jsonwebtoken::jwk::JwkSet;
use serde::Serialize;
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{ArrayBuilder, ObjectBuilder, RefOr, Schema, Type},
};

use crate::{AppState, dto::provider_display_name};

/// The public session keys as RFC 7517 sends them. jsonwebtoken's `JwkSet` is sent as it is; its schema is written
/// out here because that type cannot derive one.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct JsonWebKeySet(JwkSet);

impl PartialSchema for JsonWebKeySet {
    fn schema() -> RefOr<Schema> {
        let text = |description: &str| ObjectBuilder::new().schema_type(Type::String).description(Some(description));
        let key = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("kty", text("`RSA`, `EC` or `OKP`"))
            .property("kid", text("key id, the `kid` of the tokens it verifies"))
            .property("use", text("`sig`"))
            .property("alg", text("`RS256`, `ES256` or `EdDSA`"))
            .property("n", text("RSA modulus"))
            .property("e", text("RSA exponent"))
            .property("crv", text("EC or OKP curve"))
            .property("x", text("EC or OKP public point"))
            .property("y", text("EC public point"))
            .required("kty")
            .required("kid");
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("keys", ArrayBuilder::new().items(key))
            .required("keys")
            .into()
    }
}

impl ToSchema for JsonWebKeySet {}

/// Every public key that may still verify a live session token. Short cache: a rotated key must reach relying
/// parties quickly (they also refetch on an unknown `kid`).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "well-known", responses((status = 200, body = JsonWebKeySet)))]
pub async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = Json(JsonWebKeySet(state.keys().current().await.jwks())).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
    response
}

/// Hanko's legacy (v2) public configuration, for older SDKs.
#[derive(Debug, Serialize, ToSchema)]
pub struct LegacyConfig {
    password: PasswordSettings,
    emails: EmailSettings,
    /// Display names of the enabled third-party providers.
    providers: Vec<String>,
    account: AccountSettings,
    use_enterprise: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordSettings {
    enabled: bool,
    min_password_length: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmailSettings {
    require_verification: bool,
    max_num_of_addresses: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountSettings {
    allow_deletion: bool,
    allow_signup: bool,
}

#[utoipa::path(get, path = "/.well-known/config", tag = "well-known", responses((status = 200, body = LegacyConfig)))]
pub async fn config(State(state): State<AppState>) -> Json<LegacyConfig> {
    let config = state.config();
    Json(LegacyConfig {
        password: PasswordSettings { enabled: false, min_password_length: 8 },
        emails: EmailSettings {
            require_verification: config.email.require_verification,
            max_num_of_addresses: config.email.limit,
        },
        providers: state
            .third_party()
            .enabled_providers()
            .into_iter()
            .map(|provider| provider_display_name(provider).to_owned())
            .collect(),
        account: AccountSettings {
            allow_deletion: config.account.allow_deletion,
            allow_signup: config.account.allow_signup,
        },
        use_enterprise: false,
    })
}
