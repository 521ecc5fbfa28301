//! Microsoft ID-token claims: which tokens to accept (Microsoft's multi-tenant validation rules) and which
//! email they vouch for (`upn` before `email`, `xms_edov`). The signature is checked before this, elsewhere.

use serde::Deserialize;

use crate::{
    clock::Timestamp,
    email::{Email, EmailProof},
    microsoft::directory::{GroupsClaim, roles_from_claim},
};

/// The tenant of personal Microsoft accounts.
pub const CONSUMERS_TENANT_ID: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// The claims of a Microsoft v2.0 ID token that Gatehouse reads.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct MicrosoftClaims {
    #[serde(default)]
    pub iss: String,
    #[serde(default)]
    pub sub: String,
    #[serde(default)]
    pub aud: Audience,
    pub azp: Option<String>,
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
    pub iat: Option<i64>,
    #[serde(default)]
    pub tid: String,
    pub oid: Option<String>,
    pub nonce: Option<String>,
    pub email: Option<String>,
    pub upn: Option<String>,
    pub preferred_username: Option<String>,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    /// "Email domain owner verified": a boolean, or `"1"`/`"true"` and friends, depending on the token.
    pub xms_edov: Option<serde_json::Value>,
    /// Every other claim: `roles`, `groups`, the overage markers, and whatever the operator's custom claims read.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// `aud` may be one string or a list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn values(&self) -> Vec<&str> {
        match self {
            Self::None => Vec::new(),
            Self::One(aud) => vec![aud.as_str()],
            Self::Many(auds) => auds.iter().map(String::as_str).collect(),
        }
    }
}

/// Which accounts an app accepts: the `tenant` setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TenantMode {
    /// Work, school and personal accounts.
    Common,
    /// Work and school accounts only.
    Organizations,
    /// Personal accounts only.
    Consumers,
    /// One tenant, by GUID (lower-cased).
    TenantId(String),
    /// One tenant, by a verified domain (lower-cased). Tokens carry only the tenant's GUID, so Gatehouse cannot
    /// match the domain itself: it relies on the authority (`{cloud_instance}/{domain}/…`, where the code is
    /// redeemed over TLS) to restrict sign-ins to that tenant, refuses the personal-account tenant, and checks
    /// the GUID exactly when `allowed_tenants` pins it — which configuration should recommend.
    Domain(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not common, organizations, consumers, a tenant GUID or a domain")]
pub struct InvalidTenant(String);

impl TenantMode {
    pub fn parse(text: &str) -> Result<Self, InvalidTenant> {
        let lower = text.trim().to_ascii_lowercase();
        Ok(match lower.as_str() {
            "common" => Self::Common,
            "organizations" => Self::Organizations,
            "consumers" => Self::Consumers,
            _ if is_guid(&lower) => Self::TenantId(lower),
            _ if is_domain(&lower) => Self::Domain(lower),
            _ => return Err(InvalidTenant(text.to_owned())),
        })
    }

    /// The path segment of the authority: `{cloud_instance}/{segment}/oauth2/v2.0/authorize` (and `/token`,
    /// `/discovery/v2.0/keys`). Always one of the parsed, lower-cased forms, so never a `/` or a space.
    pub fn authority_segment(&self) -> &str {
        match self {
            Self::Common => "common",
            Self::Organizations => "organizations",
            Self::Consumers => "consumers",
            Self::TenantId(segment) | Self::Domain(segment) => segment,
        }
    }
}

/// `8-4-4-4-12` hexadecimal, any case.
pub fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_domain(text: &str) -> bool {
    text.contains('.')
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// What the token must be, from configuration and the sign-in attempt.
#[derive(Clone, Debug)]
pub struct TokenExpectations {
    pub client_id: String,
    /// E.g. `https://login.microsoftonline.com`, without a trailing slash.
    pub cloud_instance: String,
    pub tenant_mode: TenantMode,
    /// When not empty, the only tenants (GUIDs) accepted.
    pub allowed_tenants: Vec<String>,
    pub expected_nonce: Option<String>,
    pub now: Timestamp,
    pub max_skew_secs: i64,
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClaimsError {
    #[error("aud does not name this app")]
    Audience,
    #[error("azp is not this app")]
    AuthorizedParty,
    #[error("the token has expired or has no exp")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token has no iat or was issued in the future")]
    IssuedAt,
    #[error("tid is not a tenant GUID")]
    TenantId,
    #[error("iss is not {{cloud_instance}}/{{tid}}/v2.0")]
    Issuer,
    #[error("the nonce does not match the one sent")]
    Nonce,
    #[error("the tenant is not accepted by this app")]
    TenantNotAllowed,
    #[error("the token has no sub")]
    Subject,
    #[error("the token carries no usable email (neither upn nor email)")]
    NoEmail,
}

/// Microsoft's rules for an ID token whose signature has been verified (OIDC Core §3.1.3.7 and Microsoft's
/// multi-tenant issuer validation): `aud` names this app (and `azp`, when present or when there are several
/// audiences); `exp`, `nbf` and `iat` hold within `max_skew_secs`; `sub` is present; `tid` is a GUID and `iss`
/// is exactly `{cloud_instance}/{tid}/v2.0`; the nonce matches; the tenant is accepted by the tenant mode and
/// the allow-list.
pub fn validate_claims(claims: &MicrosoftClaims, expect: &TokenExpectations) -> Result<(), ClaimsError> {
    let audiences = claims.aud.values();
    if !audiences.contains(&expect.client_id.as_str()) {
        return Err(ClaimsError::Audience);
    }
    if (audiences.len() > 1 || claims.azp.is_some()) && claims.azp.as_deref() != Some(expect.client_id.as_str()) {
        return Err(ClaimsError::AuthorizedParty);
    }
    let skew = expect.max_skew_secs.max(0);
    let now = expect.now.as_secs();
    let (earliest, latest) = (now.saturating_sub(skew), now.saturating_add(skew));
    if claims.exp.is_none_or(|exp| exp <= earliest) {
        return Err(ClaimsError::Expired);
    }
    if claims.nbf.is_some_and(|nbf| nbf > latest) {
        return Err(ClaimsError::NotYetValid);
    }
    if claims.iat.is_none_or(|iat| iat > latest) {
        return Err(ClaimsError::IssuedAt);
    }
    if claims.sub.is_empty() {
        return Err(ClaimsError::Subject);
    }
    if !is_guid(&claims.tid) {
        return Err(ClaimsError::TenantId);
    }
    if claims.iss != format!("{}/{}/v2.0", expect.cloud_instance.trim_end_matches('/'), claims.tid) {
        return Err(ClaimsError::Issuer);
    }
    if let Some(expected) = &expect.expected_nonce
        && claims.nonce.as_deref() != Some(expected.as_str())
    {
        return Err(ClaimsError::Nonce);
    }
    let tid = claims.tid.to_ascii_lowercase();
    let tenant_ok = match &expect.tenant_mode {
        TenantMode::Common => true,
        TenantMode::Organizations | TenantMode::Domain(_) => tid != CONSUMERS_TENANT_ID,
        TenantMode::Consumers => tid == CONSUMERS_TENANT_ID,
        TenantMode::TenantId(only) => tid == *only,
    };
    let listed = expect.allowed_tenants.is_empty()
        || expect.allowed_tenants.iter().any(|allowed| allowed.trim().eq_ignore_ascii_case(&tid));
    if tenant_ok && listed { Ok(()) } else { Err(ClaimsError::TenantNotAllowed) }
}

/// What the token says about the email it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmailEvidence {
    /// From `upn`: UPN suffixes must be verified domains of the tenant.
    Upn,
    /// `email` with `xms_edov` true: the tenant verified the domain owner.
    EdovTrue,
    /// `email` of a personal Microsoft account (the consumer tenant), unless `xms_edov` is false: Microsoft
    /// verified the address when the account was made.
    PersonalAccount,
    /// `email` of a work or school account without `xms_edov`: no proof. The claim is absent whenever the app
    /// registration lacks it, and before mid-2023 Microsoft put unverified addresses in `email`.
    EdovAbsent,
    /// `email` with `xms_edov` false (or anything unrecognised): the tenant did not verify the domain.
    EdovFalse,
}

impl EmailEvidence {
    /// The proof of ownership this gives, if any: the bar for reporting the address as verified and for attaching
    /// a Microsoft account to an existing user.
    pub fn proof(self) -> Option<EmailProof> {
        match self {
            Self::Upn => Some(EmailProof::Upn),
            Self::EdovTrue => Some(EmailProof::DomainOwnerVerified),
            Self::PersonalAccount => Some(EmailProof::PersonalAccount),
            Self::EdovAbsent | Self::EdovFalse => None,
        }
    }

    /// Why an address with this evidence is not proven, and what fixes it: said to the user and the operator.
    pub fn shortfall(self) -> &'static str {
        match self {
            Self::EdovAbsent => {
                "Microsoft sent an email address without proof that it belongs to the user; the app registration \
                 must add the optional ID-token claims upn, email and xms_edov (Token configuration in Entra ID)"
            }
            Self::EdovFalse => "the user's organisation has not verified the domain of this email address (xms_edov)",
            Self::Upn | Self::EdovTrue | Self::PersonalAccount => "the email address is proven",
        }
    }
}

/// The email a token vouches for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderEmail {
    /// Validated and lower-cased.
    pub address: Email,
    pub evidence: EmailEvidence,
}

impl ProviderEmail {
    pub fn proof(&self) -> Option<EmailProof> {
        self.evidence.proof()
    }
}

/// The user a verified Microsoft token describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderUser {
    pub subject: String,
    pub tenant_id: String,
    pub object_id: Option<String>,
    pub email: Option<ProviderEmail>,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub preferred_username: Option<String>,
    /// App roles assigned to the user (`roles`).
    pub roles: Vec<String>,
    pub groups: GroupsClaim,
    /// The token's claims by name, for the operator's custom claims (the validation claims are left out).
    pub id_token_claims: serde_json::Map<String, serde_json::Value>,
}

/// `xms_edov`: `Some(true)` for verified, `Some(false)` for unverified or unrecognised, `None` when absent.
fn edov(value: Option<&serde_json::Value>) -> Option<bool> {
    use serde_json::Value;
    match value? {
        Value::Null => None,
        Value::Bool(b) => Some(*b),
        Value::Number(n) => Some(n.as_i64() == Some(1)),
        Value::String(s) => Some(s == "1" || s.eq_ignore_ascii_case("true")),
        _ => Some(false),
    }
}

/// Picks the user's email: `upn` when it is an address and not a guest (`#EXT#`) UPN, else `email`, judged by
/// `xms_edov`.
pub fn provider_user(claims: &MicrosoftClaims) -> Result<ProviderUser, ClaimsError> {
    if claims.sub.is_empty() {
        return Err(ClaimsError::Subject);
    }
    let from_upn = claims
        .upn
        .as_deref()
        .filter(|upn| !upn.to_ascii_uppercase().contains("#EXT#"))
        .and_then(|upn| Email::parse(upn).ok())
        .map(|address| ProviderEmail { address, evidence: EmailEvidence::Upn });
    let personal_account = claims.tid.eq_ignore_ascii_case(CONSUMERS_TENANT_ID);
    let email = from_upn.or_else(|| {
        let address = Email::parse(claims.email.as_deref()?).ok()?;
        // A personal account's address is only ever a personal account's proof, whatever `xms_edov` says: it was
        // verified when the account was made, not by a tenant that owns the domain.
        let evidence = match edov(claims.xms_edov.as_ref()) {
            Some(false) => EmailEvidence::EdovFalse,
            _ if personal_account => EmailEvidence::PersonalAccount,
            Some(true) => EmailEvidence::EdovTrue,
            None => EmailEvidence::EdovAbsent,
        };
        Some(ProviderEmail { address, evidence })
    });
    if email.is_none() {
        return Err(ClaimsError::NoEmail);
    }
    let mut id_token_claims = claims.other.clone();
    let named = [
        ("tid", Some(&claims.tid)),
        ("oid", claims.oid.as_ref()),
        ("upn", claims.upn.as_ref()),
        ("email", claims.email.as_ref()),
        ("name", claims.name.as_ref()),
        ("given_name", claims.given_name.as_ref()),
        ("family_name", claims.family_name.as_ref()),
        ("preferred_username", claims.preferred_username.as_ref()),
    ];
    for (name, value) in named {
        if let Some(value) = value {
            id_token_claims.insert(name.to_owned(), value.clone().into());
        }
    }
    Ok(ProviderUser {
        roles: roles_from_claim(claims.other.get("roles")),
        groups: GroupsClaim::from_claims(
            claims.other.get("groups"),
            claims.other.get("_claim_names"),
            claims.other.get("hasgroups"),
        ),
        id_token_claims,
        subject: claims.sub.clone(),
        tenant_id: claims.tid.to_ascii_lowercase(),
        object_id: claims.oid.clone(),
        email,
        name: claims.name.clone(),
        given_name: claims.given_name.clone(),
        family_name: claims.family_name.clone(),
        preferred_username: claims.preferred_username.clone(),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    const CLOUD: &str = "https://login.microsoftonline.com";
    const ORG: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

    fn claims() -> MicrosoftClaims {
        serde_json::from_value(json!({
            "iss": format!("{CLOUD}/{ORG}/v2.0"), "sub": "sub-1", "aud": "client", "exp": 2_000, "nbf": 1_000,
            "iat": 1_000, "tid": ORG, "oid": "oid-1", "nonce": "n-1", "email": "Megan@Contoso.com",
        }))
        .unwrap()
    }

    fn expect(mode: TenantMode) -> TokenExpectations {
        TokenExpectations {
            client_id: "client".into(),
            cloud_instance: CLOUD.into(),
            tenant_mode: mode,
            allowed_tenants: vec![],
            expected_nonce: Some("n-1".into()),
            now: Timestamp::from_secs(1_500),
            max_skew_secs: 60,
        }
    }

    #[test]
    fn a_good_token_passes() {
        assert_eq!(validate_claims(&claims(), &expect(TenantMode::Common)), Ok(()));
    }

    /// The skew is inclusive at the edges: `now` 1 500 with 60 s of skew accepts `nbf` and `iat` up to 1 560 and
    /// `exp` from 1 441 on.
    #[test]
    fn the_skew_edges_hold() {
        let at = |change: fn(&mut MicrosoftClaims)| {
            let mut c = claims();
            change(&mut c);
            validate_claims(&c, &expect(TenantMode::Common))
        };
        assert_eq!(at(|c| c.nbf = Some(1_560)), Ok(()));
        assert_eq!(at(|c| c.nbf = Some(1_561)), Err(ClaimsError::NotYetValid));
        assert_eq!(at(|c| c.iat = Some(1_560)), Ok(()));
        assert_eq!(at(|c| c.iat = Some(1_561)), Err(ClaimsError::IssuedAt));
        assert_eq!(at(|c| c.exp = Some(1_441)), Ok(()));
        assert_eq!(at(|c| c.exp = Some(1_440)), Err(ClaimsError::Expired));
    }

    #[test]
    fn each_rule_refuses() {
        type Change = fn(&mut MicrosoftClaims);
        let cases: Vec<(Change, ClaimsError)> = vec![
            (|c| c.aud = Audience::One("other".into()), ClaimsError::Audience),
            (|c| c.aud = Audience::Many(vec!["client".into(), "other".into()]), ClaimsError::AuthorizedParty),
            (|c| c.azp = Some("other".into()), ClaimsError::AuthorizedParty),
            (|c| c.exp = Some(1_400), ClaimsError::Expired),
            (|c| c.exp = None, ClaimsError::Expired),
            (|c| c.nbf = Some(1_600), ClaimsError::NotYetValid),
            (|c| c.iat = Some(1_600), ClaimsError::IssuedAt),
            (|c| c.iat = None, ClaimsError::IssuedAt),
            (|c| c.sub = String::new(), ClaimsError::Subject),
            (|c| c.tid = "contoso".into(), ClaimsError::TenantId),
            (|c| c.iss = format!("{CLOUD}/{CONSUMERS_TENANT_ID}/v2.0"), ClaimsError::Issuer),
            (|c| c.iss = format!("{CLOUD}/{ORG}/v2.0/"), ClaimsError::Issuer),
            (|c| c.iss = format!("https://login.microsoftonline.com.evil.com/{ORG}/v2.0"), ClaimsError::Issuer),
            (|c| c.iss = format!("{CLOUD}/{ORG}/"), ClaimsError::Issuer),
            (|c| c.nonce = None, ClaimsError::Nonce),
            (|c| c.nonce = Some("n-2".into()), ClaimsError::Nonce),
        ];
        for (change, expected) in cases {
            let mut c = claims();
            change(&mut c);
            assert_eq!(validate_claims(&c, &expect(TenantMode::Common)), Err(expected.clone()), "{expected}");
        }
    }

    #[test]
    fn accepted_variants() {
        type Change = fn(&mut MicrosoftClaims);
        let cases: Vec<(&str, Change)> = vec![
            ("one-element aud list", |c| c.aud = Audience::Many(vec!["client".into()])),
            ("several audiences with azp", |c| {
                c.aud = Audience::Many(vec!["other".into(), "client".into()]);
                c.azp = Some("client".into());
            }),
            ("azp naming this app", |c| c.azp = Some("client".into())),
            ("no nbf", |c| c.nbf = None),
            ("upper-case tid in both tid and iss", |c| {
                c.tid = ORG.to_uppercase();
                c.iss = format!("{CLOUD}/{}/v2.0", ORG.to_uppercase());
            }),
        ];
        for (name, change) in cases {
            let mut c = claims();
            change(&mut c);
            assert_eq!(validate_claims(&c, &expect(TenantMode::Common)), Ok(()), "{name}");
        }
        let mut no_aud = claims();
        no_aud.aud = Audience::None;
        assert_eq!(validate_claims(&no_aud, &expect(TenantMode::Common)), Err(ClaimsError::Audience));
        let missing: MicrosoftClaims = serde_json::from_value(json!({"sub": "s"})).unwrap();
        assert_eq!(missing.aud, Audience::None);
    }

    #[test]
    fn nonce_only_checked_when_sent() {
        let mut unsent = expect(TenantMode::Common);
        unsent.expected_nonce = None;
        assert_eq!(validate_claims(&claims(), &unsent), Ok(()));
        let mut c = claims();
        c.nonce = None;
        assert_eq!(validate_claims(&c, &unsent), Ok(()));
    }

    #[test]
    fn cloud_instance_with_a_trailing_slash() {
        let mut slash = expect(TenantMode::Common);
        slash.cloud_instance = format!("{CLOUD}/");
        assert_eq!(validate_claims(&claims(), &slash), Ok(()));
        let mut other_cloud = expect(TenantMode::Common);
        other_cloud.cloud_instance = "https://login.microsoftonline.us".into();
        assert_eq!(validate_claims(&claims(), &other_cloud), Err(ClaimsError::Issuer));
    }

    #[test]
    fn skew_is_tolerated() {
        let mut c = claims();
        c.exp = Some(1_460);
        c.nbf = Some(1_550);
        assert_eq!(validate_claims(&c, &expect(TenantMode::Common)), Ok(()));
    }

    #[test]
    fn tenant_modes() {
        let mut personal = claims();
        personal.tid = CONSUMERS_TENANT_ID.into();
        personal.iss = format!("{CLOUD}/{CONSUMERS_TENANT_ID}/v2.0");
        let org = claims();
        let check = |c: &MicrosoftClaims, mode: TenantMode| validate_claims(c, &expect(mode)).is_ok();
        assert!(check(&personal, TenantMode::Consumers) && !check(&org, TenantMode::Consumers));
        assert!(!check(&personal, TenantMode::Organizations) && check(&org, TenantMode::Organizations));
        assert!(check(&org, TenantMode::TenantId(ORG.into())) && !check(&personal, TenantMode::TenantId(ORG.into())));
        assert!(check(&personal, TenantMode::TenantId(CONSUMERS_TENANT_ID.into())));
        let domain = || TenantMode::Domain("contoso.com".into());
        assert!(check(&org, domain()) && !check(&personal, domain()), "a domain tenant is never the MSA tenant");
        let mut listed = expect(TenantMode::Common);
        listed.allowed_tenants = vec![format!(" {} ", ORG.to_uppercase())];
        assert_eq!(validate_claims(&org, &listed), Ok(()));
        assert_eq!(validate_claims(&personal, &listed), Err(ClaimsError::TenantNotAllowed));
        let mut pinned_domain = expect(domain());
        pinned_domain.allowed_tenants = vec!["00000000-0000-0000-0000-000000000001".into()];
        assert_eq!(validate_claims(&org, &pinned_domain), Err(ClaimsError::TenantNotAllowed));
        let mut consumers_listed = expect(TenantMode::Organizations);
        consumers_listed.allowed_tenants = vec![CONSUMERS_TENANT_ID.into()];
        assert_eq!(
            validate_claims(&personal, &consumers_listed),
            Err(ClaimsError::TenantNotAllowed),
            "the list narrows the mode, never widens it"
        );
    }

    #[test]
    fn authority_segments() {
        for (setting, segment) in [
            ("common", "common"),
            ("Organizations", "organizations"),
            (" consumers ", "consumers"),
            ("72F988BF-86F1-41AF-91AB-2D7CD011DB47", ORG),
            ("Contoso.onmicrosoft.com", "contoso.onmicrosoft.com"),
        ] {
            assert_eq!(TenantMode::parse(setting).unwrap().authority_segment(), segment, "{setting:?}");
        }
    }

    #[test]
    fn tenant_parsing() {
        assert_eq!(TenantMode::parse("Common"), Ok(TenantMode::Common));
        assert_eq!(TenantMode::parse(&ORG.to_uppercase()), Ok(TenantMode::TenantId(ORG.into())));
        assert_eq!(
            TenantMode::parse("contoso.onmicrosoft.com"),
            Ok(TenantMode::Domain("contoso.onmicrosoft.com".into()))
        );
        for bad in [
            "",
            "contoso",
            "a/b",
            "../common",
            "x y.com",
            "zzzzzzzz-86f1-41af-91ab-2d7cd011db47",
            "72f988bf-86f1-41af-91ab-2d7cd011db4",
            "72f988bf-86f1-41af-91ab-2d7cd011db47-00",
        ] {
            assert!(TenantMode::parse(bad).is_err(), "{bad:?}");
        }
    }

    fn user(f: impl FnOnce(&mut MicrosoftClaims)) -> Result<ProviderUser, ClaimsError> {
        let mut c = claims();
        f(&mut c);
        provider_user(&c)
    }

    fn evidence(f: impl FnOnce(&mut MicrosoftClaims)) -> (String, bool, EmailEvidence) {
        let email = user(f).unwrap().email.unwrap();
        (email.address.to_string(), email.proof().is_some(), email.evidence)
    }

    #[test]
    fn upn_comes_first() {
        let picked = evidence(|c| {
            c.upn = Some("Adele@Contoso.com".into());
            c.xms_edov = Some(json!(false));
        });
        assert_eq!(picked, ("adele@contoso.com".into(), true, EmailEvidence::Upn));
    }

    #[test]
    fn the_user_is_described() {
        let mut c = claims();
        c.tid = ORG.to_uppercase();
        c.upn = Some("Megan@Contoso.com".into());
        c.name = Some("Megan Bowen".into());
        c.given_name = Some("Megan".into());
        c.family_name = Some("Bowen".into());
        c.preferred_username = Some("megan@contoso.com".into());
        c.other.insert("roles".into(), json!(["Writer", "Admin"]));
        c.other.insert("groups".into(), json!(["g-1"]));
        c.other.insert("department".into(), json!("Sales"));
        let described = provider_user(&c).unwrap();
        let id_token_claims = json!({
            "roles": ["Writer", "Admin"], "groups": ["g-1"], "department": "Sales", "tid": ORG.to_uppercase(),
            "oid": "oid-1", "upn": "Megan@Contoso.com", "email": "Megan@Contoso.com", "name": "Megan Bowen",
            "given_name": "Megan", "family_name": "Bowen", "preferred_username": "megan@contoso.com",
        });
        assert_eq!(
            described,
            ProviderUser {
                subject: "sub-1".into(),
                tenant_id: ORG.into(),
                object_id: Some("oid-1".into()),
                email: Some(ProviderEmail {
                    address: Email::parse("megan@contoso.com").unwrap(),
                    evidence: EmailEvidence::Upn,
                }),
                name: Some("Megan Bowen".into()),
                given_name: Some("Megan".into()),
                family_name: Some("Bowen".into()),
                preferred_username: Some("megan@contoso.com".into()),
                roles: vec!["Admin".into(), "Writer".into()],
                groups: GroupsClaim::Listed(vec!["g-1".into()]),
                id_token_claims: id_token_claims.as_object().unwrap().clone(),
            }
        );
        assert_eq!(user(|c| c.sub = String::new()), Err(ClaimsError::Subject));
    }

    #[test]
    fn guest_and_invalid_upns_fall_back_to_email() {
        for upn in [
            "guest_fabrikam.com#EXT#@contoso.onmicrosoft.com",
            "guest_fabrikam.com#ext#@contoso.onmicrosoft.com",
            "not an address",
            "",
        ] {
            let picked = evidence(|c| c.upn = Some(upn.into()));
            assert_eq!(picked, ("megan@contoso.com".into(), false, EmailEvidence::EdovAbsent), "{upn}");
        }
    }

    #[test]
    fn xms_edov_forms() {
        for (value, verified, expected) in [
            (json!(true), true, EmailEvidence::EdovTrue),
            (json!("1"), true, EmailEvidence::EdovTrue),
            (json!("TRUE"), true, EmailEvidence::EdovTrue),
            (json!(1), true, EmailEvidence::EdovTrue),
            (json!(false), false, EmailEvidence::EdovFalse),
            (json!("0"), false, EmailEvidence::EdovFalse),
            (json!("false"), false, EmailEvidence::EdovFalse),
            (json!("maybe"), false, EmailEvidence::EdovFalse),
            (json!({}), false, EmailEvidence::EdovFalse),
            (json!(null), false, EmailEvidence::EdovAbsent),
        ] {
            let picked = evidence(|c| c.xms_edov = Some(value.clone()));
            assert_eq!((picked.1, picked.2), (verified, expected), "{value}");
        }
    }

    /// The pre-hijack: an attacker's own tenant sends `email: victim@…` without `upn` or `xms_edov`. Only a personal
    /// account's address is proven without either.
    #[test]
    fn an_email_without_upn_or_xms_edov_is_proven_only_for_personal_accounts() {
        assert_eq!(evidence(|_| {}), ("megan@contoso.com".into(), false, EmailEvidence::EdovAbsent));
        for tid in [CONSUMERS_TENANT_ID.to_owned(), CONSUMERS_TENANT_ID.to_uppercase()] {
            let picked = evidence(|c| c.tid = tid.clone());
            assert_eq!(picked, ("megan@contoso.com".into(), true, EmailEvidence::PersonalAccount), "{tid}");
        }
        let refused = evidence(|c| {
            c.tid = CONSUMERS_TENANT_ID.into();
            c.xms_edov = Some(json!(false));
        });
        assert_eq!(refused.2, EmailEvidence::EdovFalse, "an explicit false wins, even for a personal account");
        let capped = evidence(|c| {
            c.tid = CONSUMERS_TENANT_ID.into();
            c.xms_edov = Some(json!(true));
        });
        assert_eq!(capped.2, EmailEvidence::PersonalAccount, "never a domain proof for a personal account");
        assert!(EmailEvidence::EdovAbsent.shortfall().contains("upn, email and xms_edov"));
    }

    #[test]
    fn no_email_is_an_error() {
        assert_eq!(user(|c| c.email = None), Err(ClaimsError::NoEmail));
        assert_eq!(user(|c| c.email = Some("nope".into())), Err(ClaimsError::NoEmail));
        assert_eq!(
            user(|c| {
                c.email = None;
                c.upn = Some("guest_fabrikam.com#EXT#@contoso.onmicrosoft.com".into());
            }),
            Err(ClaimsError::NoEmail),
            "a guest UPN is never an email"
        );
        assert_eq!(
            user(|c| {
                c.email = None;
                c.preferred_username = Some("megan@contoso.com".into());
            }),
            Err(ClaimsError::NoEmail),
            "preferred_username is never an email"
        );
    }

    proptest! {
        #[test]
        fn unrecognised_edov_never_verifies(text in "[a-zA-Z0-9 ]{0,8}") {
            let picked = evidence(|c| c.xms_edov = Some(json!(text.clone())));
            let truthy = text == "1" || text.eq_ignore_ascii_case("true");
            prop_assert_eq!(picked.1, truthy);
            prop_assert_eq!(picked.2.proof().is_some(), truthy);
        }

        #[test]
        fn times_never_panic_and_respect_the_skew(
            now: i64, skew: i64, exp in proptest::option::of(any::<i64>()), iat in proptest::option::of(any::<i64>()),
        ) {
            let mut c = claims();
            c.exp = exp;
            c.iat = iat;
            c.nbf = None;
            let mut e = expect(TenantMode::Common);
            e.now = Timestamp::from_millis(now);
            e.max_skew_secs = skew;
            let now = e.now.as_secs();
            if validate_claims(&c, &e).is_ok() {
                let skew = i128::from(skew.max(0));
                prop_assert!(i128::from(exp.unwrap()) > i128::from(now) - skew);
                prop_assert!(i128::from(iat.unwrap()) <= i128::from(now) + skew);
            }
        }

        #[test]
        fn arbitrary_claims_never_panic(json in proptest::collection::hash_map("[a-z_]{1,10}", ".{0,20}", 0..8)) {
            if let Ok(claims) = serde_json::from_value::<MicrosoftClaims>(serde_json::to_value(json).unwrap()) {
                let _ = provider_user(&claims);
                let _ = validate_claims(&claims, &expect(TenantMode::Common));
            }
        }
    }
}
