//! Which browser origins may call the API with credentials: `server.public.cors.allow_origins`.
//!
//! An entry is an exact origin (`https://app.example.com`) or, as in Hanko, a wildcard for subdomains
//! (`https://*.example.com`). The wildcard is deliberately narrower than Hanko's (which turns `*` into "any
//! characters" anywhere): it stands for one or more whole DNS labels at the left of the host, so it can never
//! reach across the scheme, the port or a registrable domain (`https://*.example.com` does not allow
//! `https://evil-example.com`). Any other use of `*` is refused when the configuration is read.

/// One entry of `allow_origins`, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OriginPattern {
    /// Exactly this origin (stored in its serialised, lower-case form).
    Exact(String),
    /// Any subdomain, at any depth, of `parent`, with this scheme and port.
    Subdomains {
        scheme: String,
        /// The host after `*.`, lower case.
        parent: String,
        /// The explicit port, as the browser would send it (`None` for the scheme's default port).
        port: Option<u16>,
    },
}

const WILDCARD_PREFIX: &str = "*.";

impl OriginPattern {
    /// Parses an entry; the error says how to write it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or("must be an http(s) origin such as https://app.example.com or https://*.example.com")?;
        match rest.strip_prefix(WILDCARD_PREFIX) {
            Some(parent) => {
                // Parse the origin with a stand-in label so that the URL parser checks (and normalises) the rest.
                let url = parse_origin(&format!("{scheme}://wildcard.{parent}"), text)?;
                let host = url.host_str().and_then(|host| host.strip_prefix("wildcard.")).unwrap_or_default();
                if host.contains('*')
                    || !(host.contains('.') || host == "localhost")
                    || matches!(url.host(), Some(url::Host::Ipv4(_)))
                {
                    return Err("a wildcard stands for subdomains of a domain, as in https://*.example.com".into());
                }
                Ok(Self::Subdomains { scheme: url.scheme().to_owned(), parent: host.to_owned(), port: url.port() })
            }
            None if text.contains('*') => {
                Err("a wildcard must be the leftmost part of the host, as in https://*.example.com".into())
            }
            None => parse_origin(text, text).map(|url| Self::Exact(url.origin().ascii_serialization())),
        }
    }

    /// Whether a request's `Origin` header value matches.
    pub fn matches(&self, origin: &str) -> bool {
        match self {
            Self::Exact(allowed) => allowed.eq_ignore_ascii_case(origin),
            Self::Subdomains { scheme, parent, port } => {
                let Some(authority) = origin.strip_prefix(scheme.as_str()).and_then(|rest| rest.strip_prefix("://"))
                else {
                    return false;
                };
                let (host, origin_port) = match authority.rsplit_once(':') {
                    Some((host, port)) => (host, Some(port)),
                    None => (authority, None),
                };
                let port_matches = match (origin_port, port) {
                    (None, None) => true,
                    (Some(given), Some(port)) => given.parse::<u16>().ok() == Some(*port) && !given.starts_with('0'),
                    _ => false,
                };
                let Some(labels) = strip_suffix_ignore_case(host, parent).and_then(|rest| rest.strip_suffix('.'))
                else {
                    return false;
                };
                port_matches && !labels.is_empty() && labels.split('.').all(is_dns_label)
            }
        }
    }
}

/// The origins from the configuration, parsed once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedOrigins(Vec<OriginPattern>);

impl AllowedOrigins {
    /// Parses every entry; entries that do not parse are left out (validation has already reported them).
    pub fn new(entries: &[String]) -> Self {
        Self(entries.iter().filter_map(|entry| OriginPattern::parse(entry).ok()).collect())
    }

    pub fn allows(&self, origin: &str) -> bool {
        self.0.iter().any(|pattern| pattern.matches(origin))
    }
}

fn parse_origin(candidate: &str, written: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(candidate).map_err(|_| "not a URL".to_owned())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an http(s) origin".into());
    }
    let serialised = url.origin().ascii_serialization();
    if serialised != candidate {
        let expected = if candidate == written { serialised } else { serialised.replacen("wildcard.", "*.", 1) };
        return Err(format!("write it as an origin: {expected}"));
    }
    Ok(url)
}

fn strip_suffix_ignore_case<'a>(text: &'a str, suffix: &str) -> Option<&'a str> {
    let split = text.len().checked_sub(suffix.len())?;
    (text.is_char_boundary(split) && text[split..].eq_ignore_ascii_case(suffix)).then(|| &text[..split])
}

/// A label as it appears in a serialised origin: letters, digits and inner hyphens, at most 63 characters.
fn is_dns_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn allows(patterns: &[&str], origin: &str) -> bool {
        AllowedOrigins::new(&patterns.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>()).allows(origin)
    }

    #[test]
    fn exact_origins_match_only_themselves() {
        assert!(allows(&["https://app.example.com"], "https://app.example.com"));
        assert!(allows(&["https://app.example.com"], "https://APP.example.com"), "hosts are case-insensitive");
        for other in ["http://app.example.com", "https://app.example.com:8443", "https://x.app.example.com", ""] {
            assert!(!allows(&["https://app.example.com"], other), "{other}");
        }
    }

    #[test]
    fn a_wildcard_allows_subdomains_at_any_depth_and_nothing_else() {
        let pattern = ["https://*.example.com"];
        for good in ["https://app.example.com", "https://a.b.example.com", "https://App-1.Example.com"] {
            assert!(allows(&pattern, good), "{good}");
        }
        for bad in [
            "https://example.com",
            "https://evil-example.com",
            "https://evilexample.com",
            "https://example.com.evil.net",
            "http://app.example.com",
            "https://app.example.com:8443",
            "https://.example.com",
            "https://a..example.com",
            "https://-a.example.com",
            "https://a_b.example.com",
            "https://app.example.com/",
            "https://user@app.example.com",
            "null",
        ] {
            assert!(!allows(&pattern, bad), "{bad}");
        }
        assert!(allows(&["http://*.localhost:3000"], "http://app.localhost:3000"));
        assert!(!allows(&["http://*.localhost:3000"], "http://app.localhost:3001"));
        assert!(!allows(&["http://*.localhost:3000"], "http://app.localhost:03000"));
        assert!(!allows(&["http://*.localhost:3000"], "http://app.localhost"));
    }

    #[test]
    fn a_wildcard_anywhere_else_is_refused_with_the_form_to_use() {
        for bad in ["*", "https://*", "https://app-*.example.com", "https://*example.com", "https://a.*.example.com"] {
            let error = OriginPattern::parse(bad).expect_err(bad);
            assert!(error.contains("https://*.example.com"), "{bad}: {error}");
        }
        assert!(OriginPattern::parse("https://*.com").is_err(), "a whole top-level domain is refused");
        assert!(OriginPattern::parse("https://*.10.0.0.1").is_err());
        assert_eq!(
            OriginPattern::parse("https://*.example.com/").unwrap_err(),
            "write it as an origin: https://*.example.com"
        );
        assert_eq!(
            OriginPattern::parse("https://*.Example.com:443").unwrap_err(),
            "write it as an origin: https://*.example.com"
        );
        assert_eq!(
            OriginPattern::parse("http://*.localhost:3000"),
            Ok(OriginPattern::Subdomains { scheme: "http".into(), parent: "localhost".into(), port: Some(3000) })
        );
        assert_eq!(
            OriginPattern::parse("https://app.example.com/path").unwrap_err(),
            "write it as an origin: https://app.example.com"
        );
    }

    proptest! {
        /// Whatever the labels, a subdomain of the parent is allowed and the same text glued to another host is not.
        #[test]
        fn subdomains_match_and_lookalikes_do_not(labels in proptest::collection::vec("[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", 1..4), glue in "[a-z0-9-]{1,8}") {
            let sub = labels.join(".");
            let pattern = ["https://*.example.com"];
            let subdomain = format!("https://{sub}.example.com");
            let glued = format!("https://{sub}{glue}example.com");
            let suffixed = format!("https://{sub}.example.com.{glue}");
            let other_scheme = format!("http://{sub}.example.com");
            prop_assert!(allows(&pattern, &subdomain));
            prop_assert!(!allows(&pattern, &glued));
            prop_assert!(!allows(&pattern, &suffixed));
            prop_assert!(!allows(&pattern, &other_scheme));
        }

        /// An exact entry matches itself only; never panics on any header text.
        #[test]
        fn any_origin_text_is_safe(origin in "\\PC{0,40}") {
            let exact = allows(&["https://app.example.com"], &origin);
            prop_assert_eq!(exact, origin.eq_ignore_ascii_case("https://app.example.com"));
            let _ = allows(&["https://*.example.com", "http://*.localhost:3000"], &origin);
        }
    }
}
