//! Admin consent: the URL a tenant administrator opens to approve the app for the whole organisation, and which
//! of Microsoft's refusals mean that approval is missing.

use url::Url;

use super::{
    claims::{InvalidTenant, TenantMode},
    directory::graph_base,
};

/// The `state` sent with every admin-consent URL. Microsoft returns it to the redirect URL with the outcome
/// (`admin_consent=True` or `error=…`), which tells that return apart from a sign-in's. It grants nothing, so it
/// need not be secret or unique.
pub const ADMIN_CONSENT_STATE: &str = "gatehouse_admin_consent";

/// Microsoft's error codes (`AADSTS…`) that mean the tenant has not approved the app and, for the permissions it
/// asks, only an administrator can: 65001 DelegationDoesNotExist (no user or admin has consented), 90008
/// TokenForItselfRequiresGraphPermission (not even sign-in and read profile is consented), 90094 AdminConsentRequired
/// (the grant needs an administrator), 90095 AdminConsentRequiredRequestAccess (the admin-consent workflow's "ask
/// your administrator" interrupt).
pub const ADMIN_CONSENT_CODES: [u32; 4] = [65001, 90008, 90094, 90095];

/// Whose administrator is asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsentTenant {
    /// One organisation, by tenant GUID or verified domain (lower-cased).
    Tenant(String),
    /// Whichever organisation the administrator who opens the URL belongs to (`organizations`).
    AdminsOwn,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConsentTenantError {
    #[error(transparent)]
    Invalid(#[from] InvalidTenant),
    #[error("personal Microsoft accounts (consumers) have no administrator; name an organisation's tenant")]
    Consumers,
}

impl ConsentTenant {
    /// A tenant typed by an admin: a GUID or verified domain; `organizations` or `common` for the admin's own.
    pub fn parse(text: &str) -> Result<Self, ConsentTenantError> {
        Self::for_mode(&TenantMode::parse(text)?).ok_or(ConsentTenantError::Consumers)
    }

    /// The tenant whose administrator a refused user of an app configured with `mode` should ask: that tenant when
    /// the app is for one, else the administrator's own. `None` for personal accounts only, which no admin governs.
    pub fn for_mode(mode: &TenantMode) -> Option<Self> {
        match mode {
            TenantMode::TenantId(tenant) | TenantMode::Domain(tenant) => Some(Self::Tenant(tenant.clone())),
            // Microsoft's admin-consent documentation: "Do not use 'common', as personal accounts cannot provide
            // admin consent except in the context of a tenant"; `organizations` means the signed-in admin's tenant.
            TenantMode::Common | TenantMode::Organizations => Some(Self::AdminsOwn),
            TenantMode::Consumers => None,
        }
    }

    /// The tenant segment of the URL: never a `/`, `?` or space (parsed forms only).
    pub fn segment(&self) -> &str {
        match self {
            Self::Tenant(tenant) => tenant,
            Self::AdminsOwn => "organizations",
        }
    }

    /// Who must open the URL, for people.
    pub fn who_approves(&self) -> String {
        match self {
            Self::Tenant(tenant) => format!("an administrator of the tenant {tenant}"),
            Self::AdminsOwn => "an administrator of the organisation whose users need the app (Microsoft approves \
                                it for the tenant the administrator signs in to)"
                .to_owned(),
        }
    }
}

/// What an admin-consent URL is made of: the app registration as Gatehouse is configured with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppRegistration {
    /// E.g. `https://login.microsoftonline.com`, checked to be an absolute URL.
    cloud_instance: Url,
    client_id: String,
    /// Gatehouse's callback, registered in the app registration: Microsoft only returns to a registered URL.
    redirect_url: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the cloud instance {0:?} is not an absolute URL")]
pub struct InvalidCloudInstance(String);

impl AppRegistration {
    pub fn new(cloud_instance: &str, client_id: &str, redirect_url: &str) -> Result<Self, InvalidCloudInstance> {
        let cloud = Url::parse(cloud_instance.trim_end_matches('/'))
            .ok()
            .filter(|url| url.has_host())
            .ok_or_else(|| InvalidCloudInstance(cloud_instance.to_owned()))?;
        Ok(Self { cloud_instance: cloud, client_id: client_id.to_owned(), redirect_url: redirect_url.to_owned() })
    }

    /// `{cloud}/{tenant}/v2.0/adminconsent?client_id=…&scope={graph}/.default&redirect_uri=…&state=…`.
    ///
    /// The v2.0 endpoint with the static `/.default` scope rather than a list of scopes: Microsoft documents that
    /// `/.default` makes it behave as the v1.0 endpoint, asking consent for every permission configured in the app
    /// registration (API permissions), so one approval covers whatever the operator added there (`User.Read`,
    /// `GroupMember.Read.All`, …) and no Gatehouse release has to know the list. Every permission Gatehouse asks
    /// for is Microsoft Graph's, so the resource is the cloud's Graph.
    pub fn admin_consent_url(&self, tenant: &ConsentTenant) -> Url {
        let mut url = self.cloud_instance.clone();
        url.path_segments_mut().expect("a URL with a host has path segments").pop_if_empty().extend([
            tenant.segment(),
            "v2.0",
            "adminconsent",
        ]);
        url.set_query(None);
        url.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("scope", &format!("{}/.default", graph_base(self.cloud_instance.as_str())))
            .append_pair("redirect_uri", &self.redirect_url)
            .append_pair("state", ADMIN_CONSENT_STATE);
        url
    }
}

/// The first `AADSTS<digits>` code in Microsoft's `error_description` (it starts with one: `AADSTS65001: The user
/// or administrator has not consented…`).
pub fn aadsts_code(description: &str) -> Option<u32> {
    let (_, rest) = description.split_once("AADSTS")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Whether Microsoft refused because the tenant has not approved the app and an administrator must: one of
/// [`ADMIN_CONSENT_CODES`] in the token endpoint's `error_codes` or in the `error_description` (all the authorize
/// redirect carries). The OAuth `error` varies (`consent_required`, `access_denied`, `interaction_required`,
/// `invalid_grant`), so the code decides. A user declining consent (65004) is not this: they can accept next time.
pub fn needs_admin_consent(error_codes: &[u32], description: Option<&str>) -> bool {
    error_codes.iter().copied().chain(description.and_then(aadsts_code)).any(|code| ADMIN_CONSENT_CODES.contains(&code))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &str = "11111111-2222-3333-4444-555555555555";
    const CALLBACK: &str = "https://auth.example.com/thirdparty/callback";
    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

    fn registration(cloud: &str) -> AppRegistration {
        AppRegistration::new(cloud, CLIENT, CALLBACK).unwrap()
    }

    fn query(url: &Url) -> Vec<(String, String)> {
        url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
    }

    #[test]
    fn the_url_is_microsofts_v2_admin_consent_endpoint() {
        let url =
            registration("https://login.microsoftonline.com").admin_consent_url(&ConsentTenant::Tenant(TENANT.into()));
        assert_eq!(
            url.as_str(),
            "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0/adminconsent\
             ?client_id=11111111-2222-3333-4444-555555555555\
             &scope=https%3A%2F%2Fgraph.microsoft.com%2F.default\
             &redirect_uri=https%3A%2F%2Fauth.example.com%2Fthirdparty%2Fcallback\
             &state=gatehouse_admin_consent"
        );
        assert_eq!(
            query(&url),
            [
                ("client_id".into(), CLIENT.into()),
                ("scope".into(), "https://graph.microsoft.com/.default".into()),
                ("redirect_uri".into(), CALLBACK.into()),
                ("state".into(), ADMIN_CONSENT_STATE.into()),
            ]
        );
    }

    #[test]
    fn a_trailing_slash_a_fake_and_a_domain_make_the_same_shape() {
        let url =
            registration("http://127.0.0.1:4455/").admin_consent_url(&ConsentTenant::parse("Contoso.COM").unwrap());
        assert_eq!(url.origin().ascii_serialization(), "http://127.0.0.1:4455");
        assert_eq!(url.path(), "/contoso.com/v2.0/adminconsent");
    }

    #[test]
    fn common_and_organizations_ask_the_admins_own_tenant_and_consumers_has_none() {
        assert_eq!(ConsentTenant::parse("common"), Ok(ConsentTenant::AdminsOwn));
        assert_eq!(ConsentTenant::parse(" Organizations "), Ok(ConsentTenant::AdminsOwn));
        assert_eq!(ConsentTenant::parse("consumers"), Err(ConsentTenantError::Consumers));
        assert!(matches!(ConsentTenant::parse("not a tenant/.."), Err(ConsentTenantError::Invalid(_))));
        assert!(matches!(ConsentTenant::parse(""), Err(ConsentTenantError::Invalid(_))));
        let url = registration("https://login.microsoftonline.com").admin_consent_url(&ConsentTenant::AdminsOwn);
        assert_eq!(url.path(), "/organizations/v2.0/adminconsent");
        assert_eq!(ConsentTenant::for_mode(&TenantMode::Consumers), None);
        assert_eq!(
            ConsentTenant::for_mode(&TenantMode::parse(TENANT).unwrap()),
            Some(ConsentTenant::Tenant(TENANT.into()))
        );
        assert_eq!(ConsentTenant::for_mode(&TenantMode::Common), Some(ConsentTenant::AdminsOwn));
    }

    #[test]
    fn each_cloud_asks_for_its_own_graph() {
        for (cloud, graph) in [
            ("https://login.microsoftonline.us", "https://graph.microsoft.us/.default"),
            ("https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn/.default"),
            ("https://login.partner.microsoftonline.cn", "https://microsoftgraph.chinacloudapi.cn/.default"),
            ("https://login.microsoftonline.com", "https://graph.microsoft.com/.default"),
        ] {
            let url = registration(cloud).admin_consent_url(&ConsentTenant::AdminsOwn);
            assert!(query(&url).contains(&("scope".into(), graph.into())), "{cloud}: {url}");
        }
    }

    #[test]
    fn the_approver_is_named_for_people() {
        assert_eq!(
            ConsentTenant::Tenant("contoso.com".into()).who_approves(),
            "an administrator of the tenant contoso.com"
        );
        assert!(ConsentTenant::AdminsOwn.who_approves().starts_with("an administrator of the organisation"));
    }

    #[test]
    fn a_cloud_that_is_not_a_url_is_refused() {
        assert!(AppRegistration::new("login.microsoftonline.com", CLIENT, CALLBACK).is_err());
        assert!(AppRegistration::new("mailto:a@b.c", CLIENT, CALLBACK).is_err());
    }

    #[test]
    fn admin_consent_codes_are_recognised_wherever_microsoft_puts_them() {
        for code in ADMIN_CONSENT_CODES {
            let description = format!("AADSTS{code}: needs an administrator.\r\nTrace ID: 1");
            assert!(needs_admin_consent(&[], Some(&description)), "{description}");
            assert!(needs_admin_consent(&[code], None), "{code}");
        }
        assert!(needs_admin_consent(&[50011, 65001], Some("AADSTS50011: something else")));
        assert!(!needs_admin_consent(&[], Some("AADSTS65004: User declined to consent.")));
        assert!(!needs_admin_consent(&[65004], None));
        assert!(!needs_admin_consent(&[], Some("The user declined.")));
        assert!(!needs_admin_consent(&[], None));
        assert!(!needs_admin_consent(&[], Some("AADSTS650010: a longer code is another code")));
    }

    #[test]
    fn aadsts_codes_are_read_from_the_first_mention() {
        assert_eq!(aadsts_code("AADSTS90094: The grant requires admin permission."), Some(90094));
        assert_eq!(aadsts_code("error AADSTS65001 and AADSTS90094"), Some(65001));
        assert_eq!(aadsts_code("AADSTS: no digits"), None);
        assert_eq!(aadsts_code("AADSTS99999999999999: too long to be a code"), None);
        assert_eq!(aadsts_code("nothing"), None);
    }
}
