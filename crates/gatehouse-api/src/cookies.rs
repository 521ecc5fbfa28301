//! Every cookie the server sets or reads, through the `cookie` crate: the session cookie (Hanko's `hanko`, as
//! configured) and the cookie that binds a third-party sign-in to the browser that started it.

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use cookie::{Cookie, CookieBuilder, SameSite as CookieSameSite, time::Duration};
use gatehouse_app::{sessions::IssuedSession, thirdparty::STATE_COOKIE};
use gatehouse_core::config::{CookieRetention, SameSite, SessionConfig};

pub const X_AUTH_TOKEN: HeaderName = HeaderName::from_static("x-auth-token");
pub const X_SESSION_LIFETIME: HeaderName = HeaderName::from_static("x-session-lifetime");
pub const X_SESSION_RETENTION: HeaderName = HeaderName::from_static("x-session-retention");

/// How long the browser keeps the state-binding cookie: as long as a sign-in may take.
const STATE_COOKIE_SECS: i64 = 300;

/// The value of a request cookie, if present and non-empty.
pub fn request_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == name && !cookie.value().is_empty())
        .map(|cookie| cookie.value_raw().unwrap_or_default())
}

/// Headers that hand a new session to the client: lifetime and retention, and the JWT either in `X-Auth-Token`
/// (header mode) or in the session cookie.
pub fn session_delivery(config: &SessionConfig, issued: &IssuedSession) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let lifetime = issued.lifetime_secs();
    headers.insert(X_SESSION_LIFETIME, HeaderValue::from(lifetime));
    headers.insert(X_SESSION_RETENTION, HeaderValue::from_static(config.cookie.retention.as_str()));
    match HeaderValue::from_str(&issued.token) {
        Ok(token) if config.enable_auth_token_header => {
            headers.insert(X_AUTH_TOKEN, token);
        }
        _ => {
            let mut cookie = session_cookie(config, issued.token.clone());
            if config.cookie.retention == CookieRetention::Persistent {
                cookie = cookie.max_age(Duration::seconds(lifetime));
            }
            append(&mut headers, cookie);
        }
    }
    headers
}

/// Headers that remove the session cookie.
pub fn session_removal(config: &SessionConfig) -> HeaderMap {
    let mut headers = HeaderMap::new();
    append(&mut headers, session_cookie(config, String::new()).removal());
    headers
}

fn session_cookie(config: &SessionConfig, value: String) -> CookieBuilder<'static> {
    let cookie = &config.cookie;
    let same_site = match cookie.same_site {
        SameSite::Strict => CookieSameSite::Strict,
        SameSite::Lax => CookieSameSite::Lax,
        SameSite::None => CookieSameSite::None,
    };
    with_domain(Cookie::build((cookie.name.clone(), value)), cookie.domain.as_deref())
        .path("/")
        .secure(cookie.secure)
        .http_only(cookie.http_only)
        .same_site(same_site)
}

/// Headers that set the state-binding cookie of a sign-in that just started.
pub fn state_binding(config: &SessionConfig, binding: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    append(&mut headers, state_cookie(config, binding.to_owned()).max_age(Duration::seconds(STATE_COOKIE_SECS)));
    headers
}

/// Headers that remove the state-binding cookie, once the callback has used it.
pub fn state_binding_removal(config: &SessionConfig) -> HeaderMap {
    let mut headers = HeaderMap::new();
    append(&mut headers, state_cookie(config, String::new()).removal());
    headers
}

/// `SameSite=None` (with `Secure`) so that a `form_post` callback, a cross-site POST, still carries it; without
/// `Secure` browsers drop `None`, so plain-http development falls back to `Lax`.
fn state_cookie(config: &SessionConfig, value: String) -> CookieBuilder<'static> {
    let secure = config.cookie.secure;
    with_domain(Cookie::build((STATE_COOKIE, value)), config.cookie.domain.as_deref())
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(if secure { CookieSameSite::None } else { CookieSameSite::Lax })
}

fn with_domain(cookie: CookieBuilder<'static>, domain: Option<&str>) -> CookieBuilder<'static> {
    match domain {
        Some(domain) => cookie.domain(domain.to_owned()),
        None => cookie,
    }
}

fn append(headers: &mut HeaderMap, cookie: impl Into<Cookie<'static>>) {
    if let Ok(value) = HeaderValue::from_str(&cookie.into().to_string()) {
        headers.append(header::SET_COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(headers: &HeaderMap) -> Cookie<'static> {
        let text = headers.get(header::SET_COOKIE).unwrap().to_str().unwrap().to_owned();
        Cookie::parse(text).unwrap()
    }

    #[test]
    fn request_cookies_are_found_by_name_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; hanko=token.value; b=2"));
        headers.append(header::COOKIE, HeaderValue::from_static("empty="));
        assert_eq!(request_cookie(&headers, "hanko"), Some("token.value"));
        assert_eq!(request_cookie(&headers, "empty"), None, "an empty cookie is no cookie");
        assert_eq!(request_cookie(&headers, "hank"), None);
    }

    #[test]
    fn the_state_cookie_survives_a_cross_site_form_post_only_over_https() {
        let mut config = SessionConfig::default();
        config.cookie.secure = true;
        let cookie = parsed(&state_binding(&config, "b"));
        assert_eq!(
            (cookie.same_site(), cookie.secure(), cookie.http_only()),
            (Some(CookieSameSite::None), Some(true), Some(true))
        );
        config.cookie.secure = false;
        let cookie = parsed(&state_binding(&config, "b"));
        assert_eq!((cookie.same_site(), cookie.secure()), (Some(CookieSameSite::Lax), None));
    }

    fn issued(lifetime: i64) -> IssuedSession {
        let claims = gatehouse_core::session::SessionClaims {
            sub: gatehouse_core::ids::UserId::generate(),
            session_id: gatehouse_core::ids::SessionId::generate(),
            iat: 1_000,
            exp: 1_000 + lifetime,
            aud: vec!["localhost".into()],
            iss: None,
            email: None,
            amr: Vec::new(),
            tenant: None,
            roles: Vec::new(),
            groups: Vec::new(),
            custom: Default::default(),
        };
        IssuedSession { token: "header.payload.signature".into(), claims, evicted: Vec::new() }
    }

    #[test]
    fn a_session_cookie_follows_the_cookie_config() {
        let mut config = SessionConfig::default();
        config.cookie.domain = Some("example.com".into());
        config.cookie.same_site = SameSite::Lax;
        config.cookie.secure = true;
        let headers = session_delivery(&config, &issued(43_200));
        assert_eq!(headers[X_SESSION_LIFETIME], "43200");
        assert_eq!(headers[X_SESSION_RETENTION], "persistent");
        assert!(headers.get(X_AUTH_TOKEN).is_none());
        let cookie = parsed(&headers);
        assert_eq!((cookie.name(), cookie.value()), ("hanko", "header.payload.signature"));
        assert_eq!((cookie.domain(), cookie.path()), (Some("example.com"), Some("/")));
        assert_eq!(
            (cookie.secure(), cookie.http_only(), cookie.same_site()),
            (Some(true), Some(true), Some(CookieSameSite::Lax))
        );
        assert_eq!(cookie.max_age(), Some(Duration::seconds(43_200)));

        config.cookie.retention = CookieRetention::Session;
        assert_eq!(parsed(&session_delivery(&config, &issued(60))).max_age(), None, "a session cookie has no Max-Age");
    }

    #[test]
    fn header_mode_sets_no_cookie() {
        let config = SessionConfig { enable_auth_token_header: true, ..SessionConfig::default() };
        let headers = session_delivery(&config, &issued(60));
        assert_eq!(headers[X_AUTH_TOKEN], "header.payload.signature");
        assert!(headers.get(header::SET_COOKIE).is_none());
    }

    #[test]
    fn removals_expire_the_cookie_now() {
        let config = SessionConfig::default();
        for headers in [session_removal(&config), state_binding_removal(&config)] {
            let cookie = parsed(&headers);
            assert_eq!((cookie.value(), cookie.max_age()), ("", Some(Duration::ZERO)));
        }
    }
}
