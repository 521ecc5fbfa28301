//! The redirect allow-list: where a sign-in may send the browser back to.
//!
//! Patterns are Hanko's globs (`*` stays inside one host label or path segment, `**` crosses them, `?`, `[…]`,
//! `{a,b}`), matched against the whole URL, and then Hanko's host boundary check on the parsed URL, so that
//! `https://*.example.com**` can never reach `https://x.example.com.evil.com`. Targets are refused outright for
//! anything a browser might read differently from us: userinfo, backslashes, control characters, whitespace,
//! scheme-relative and non-http(s) URLs.

use std::fmt;

use regex::Regex;
use url::Url;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("the pattern is empty")]
    Empty,
    #[error("the pattern must not end with a slash")]
    TrailingSlash,
    #[error("the pattern must start with http:// or https://")]
    Scheme,
    #[error("the pattern has no host")]
    NoHost,
    #[error("the pattern must not contain whitespace, control characters or backslashes")]
    Character,
    #[error("the pattern must not contain user information ('@' before the host)")]
    UserInfo,
    #[error("the pattern has an unbalanced '[' or '{{'")]
    Unbalanced,
}

/// One compiled allow-list pattern.
#[derive(Clone)]
pub struct RedirectPattern {
    raw: String,
    full: Regex,
    scheme: String,
    host: HostRule,
    /// The port the URL must have, when the pattern names one.
    port: Option<String>,
}

#[derive(Clone, Debug)]
enum HostRule {
    Exact(String),
    Glob(Regex),
}

impl fmt::Debug for RedirectPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedirectPattern({:?})", self.raw)
    }
}

impl fmt::Display for RedirectPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl PartialEq for RedirectPattern {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

fn has_forbidden_character(text: &str) -> bool {
    text.chars().any(|c| c.is_whitespace() || c.is_control() || c == '\\')
}

/// Translates a glob into an anchored regex. `separators` are the characters `*` and `?` do not cross.
fn glob_to_regex(glob: &str, separators: &str) -> Result<Regex, PatternError> {
    let not_separator = format!("[^{}]", regex::escape(separators));
    let mut out = String::from("^");
    translate(&mut glob.chars().peekable(), &mut out, &not_separator, false)?;
    out.push('$');
    Regex::new(&out).map_err(|_| PatternError::Unbalanced)
}

fn translate(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    out: &mut String,
    not_separator: &str,
    in_alternatives: bool,
) -> Result<(), PatternError> {
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                out.push_str(".*");
            }
            '*' => out.push_str(&format!("{not_separator}*")),
            '?' => out.push_str(not_separator),
            '[' => {
                let mut class = String::from("[");
                if chars.peek() == Some(&'!') {
                    chars.next();
                    class.push('^');
                }
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == ']' {
                        closed = true;
                        break;
                    }
                    if c == '-' { class.push('-') } else { class.push_str(&regex::escape(&c.to_string())) }
                }
                if !closed || class.len() <= 2 {
                    return Err(PatternError::Unbalanced);
                }
                class.push(']');
                out.push_str(&class);
            }
            '{' => {
                out.push_str("(?:");
                translate(chars, out, not_separator, true)?;
                out.push(')');
            }
            ',' if in_alternatives => out.push('|'),
            '}' if in_alternatives => return Ok(()),
            '}' | ']' => return Err(PatternError::Unbalanced),
            other => out.push_str(&regex::escape(&other.to_string())),
        }
    }
    if in_alternatives { Err(PatternError::Unbalanced) } else { Ok(()) }
}

/// Splits an authority into host and port text, minding IPv6 brackets.
fn split_authority(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => {
                let (host, rest) = authority.split_at(end + 1);
                (host, rest.strip_prefix(':'))
            }
            None => (authority, None),
        };
    }
    match authority.rfind(':') {
        Some(at) => (&authority[..at], Some(&authority[at + 1..])),
        None => (authority, None),
    }
}

fn is_wildcard(c: char) -> bool {
    matches!(c, '*' | '?' | '[' | '{')
}

/// Hanko's host rules (`matchesHostPatternSafely`).
fn host_rule(pattern: &str) -> Result<HostRule, PatternError> {
    let mut host = pattern.to_ascii_lowercase();
    while let Some(stripped) = host.strip_suffix("**") {
        host = stripped.to_owned();
    }
    let host = host.trim_end_matches('.').to_owned();
    if host.is_empty() {
        return Err(PatternError::NoHost);
    }
    let Some(first_wildcard) = host.find(is_wildcard) else {
        return Ok(HostRule::Exact(host));
    };
    // A `**` followed by more wildcards could span anything; only the literal prefix is trusted.
    if let Some(double) = host.find("**")
        && host[double + 2..].contains(is_wildcard)
    {
        return Ok(HostRule::Exact(host[..first_wildcard].to_owned()));
    }
    Ok(HostRule::Glob(glob_to_regex(&host, ".")?))
}

impl RedirectPattern {
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        if pattern.is_empty() {
            return Err(PatternError::Empty);
        }
        if has_forbidden_character(pattern) {
            return Err(PatternError::Character);
        }
        if pattern.ends_with('/') {
            return Err(PatternError::TrailingSlash);
        }
        let (scheme, rest) = pattern.split_once("://").ok_or(PatternError::Scheme)?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(PatternError::Scheme);
        }
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        if authority.contains('@') {
            return Err(PatternError::UserInfo);
        }
        let (host, port) = split_authority(authority);
        let port =
            port.map(|port| port[..port.find(is_wildcard).unwrap_or(port.len())].to_owned()).filter(|p| !p.is_empty());
        Ok(Self { raw: pattern.to_owned(), full: glob_to_regex(pattern, "./")?, scheme, host: host_rule(host)?, port })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    fn matches(&self, raw: &str, url: &Url) -> bool {
        if !self.full.is_match(raw) || url.scheme() != self.scheme {
            return false;
        }
        if let Some(port) = &self.port
            && url.port_or_known_default().map(|p| p.to_string()).as_deref() != Some(port.as_str())
        {
            return false;
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let host = host.trim_end_matches('.');
        match &self.host {
            HostRule::Exact(expected) => host == expected,
            HostRule::Glob(glob) => glob.is_match(host),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectError {
    #[error("not an absolute http(s) URL without user information")]
    Malformed,
    #[error("not in the allow-list")]
    NotAllowed,
}

/// A URL that passed the allow-list: the only kind of URL a sign-in redirects to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedRedirect(Url);

impl AllowedRedirect {
    pub fn as_url(&self) -> &Url {
        &self.0
    }

    pub fn into_url(self) -> Url {
        self.0
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RedirectAllowList {
    patterns: Vec<RedirectPattern>,
}

impl RedirectAllowList {
    pub fn new(patterns: Vec<RedirectPattern>) -> Self {
        Self { patterns }
    }

    pub fn patterns(&self) -> &[RedirectPattern] {
        &self.patterns
    }

    pub fn is_allowed(&self, url: &str) -> bool {
        self.check(url).is_ok()
    }

    /// The target, parsed, if it is safe and matches a pattern.
    pub fn check(&self, target: &str) -> Result<AllowedRedirect, RedirectError> {
        if target.is_empty() || target.len() > 4096 || has_forbidden_character(target) {
            return Err(RedirectError::Malformed);
        }
        let raw = target.strip_suffix('/').unwrap_or(target);
        let url = Url::parse(target).map_err(|_| RedirectError::Malformed)?;
        let lower = target.to_ascii_lowercase();
        let well_formed = matches!(url.scheme(), "http" | "https")
            && url.host_str().is_some_and(|host| !host.is_empty())
            && url.username().is_empty()
            && url.password().is_none()
            && (lower.starts_with("http://") || lower.starts_with("https://"))
            && !lower.starts_with("http:///")
            && !lower.starts_with("https:///");
        if !well_formed {
            return Err(RedirectError::Malformed);
        }
        if self.patterns.iter().any(|pattern| pattern.matches(raw, &url)) {
            Ok(AllowedRedirect(url))
        } else {
            Err(RedirectError::NotAllowed)
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn allows(pattern: &str, url: &str) -> bool {
        RedirectAllowList::new(vec![RedirectPattern::parse(pattern).unwrap()]).is_allowed(url)
    }

    /// Every row of Hanko's `TestIsValidRedirectTo` table (hanko-backend-contract.md §3.2).
    #[test]
    fn hankos_table() {
        let rows = [
            ("https://*.example.com", "https://foo.example.com", true),
            ("https://*.example.com", "https://foo.example.com/", true),
            ("https://*.example.com", "https://a.b.example.com", false),
            ("https://*.example.com", "https://example.com", false),
            ("https://*.example.com", "https://badexample.com", false),
            ("https://*.example.com", "https://example.com.evil.com", false),
            ("https://**.example.com", "https://a.b.example.com", true),
            ("https://**.example.com", "https://example.com", false),
            ("http://127.0.0.1**", "http://127.0.0.1/dashboard", true),
            ("http://127.0.0.1**", "http://127.0.0.1.evil.com", false),
            ("http://localhost:8888**", "http://localhost:8888/foo", true),
            ("http://localhost:8888**", "http://localhost:9999/foo", false),
            ("http://localhost:8888**", "http://localhost/foo", false),
            ("http://localhost**", "http://localhost/foo", true),
            ("https://example.com/*", "https://example.com/page", true),
            ("https://example.com/*", "https://example.com/page/sub", false),
            ("https://example.com/**", "https://example.com/deep/path/page", true),
            ("http://192.168.*.*/**", "http://192.168.1.55/dashboard", true),
            ("http://192.168.*.*/**", "http://192.168.1.55.evil.com/dashboard", false),
            ("https://foo.**.bar.com", "https://foo.a.b.bar.com", true),
            ("https://foo.**.bar.com", "https://foo.a.b.evil.com", false),
            ("https://*.gett.co**", "https://app.gett.co/callback", true),
            ("https://*.gett.co**", "https://app.gett.co.evil.com", false),
            ("http://example.com", "https://example.com", false),
            ("https://example.com**/test", "https://example.com.evil.com/test", false),
            ("https://foo.example.com/error", "https://foo.example.com/error/", true),
        ];
        for (pattern, url, expected) in rows {
            assert_eq!(allows(pattern, url), expected, "{pattern} vs {url}");
        }
    }

    #[test]
    fn dangerous_targets_are_refused() {
        let list = RedirectAllowList::new(vec![RedirectPattern::parse("https://app.example.com**").unwrap()]);
        for target in [
            "",
            "https://app.example.com@evil.com",
            "https://app.example.com@evil.com/",
            "https://user:pw@app.example.com/",
            "https://app.example.com\\@evil.com",
            "https:\\\\evil.com",
            "//evil.com",
            "//app.example.com/x",
            "/relative",
            "javascript:alert(1)//https://app.example.com",
            "data:text/html,https://app.example.com",
            "file:///etc/passwd",
            "https://app.example.com/\n",
            "https://app.example.com/\tx",
            " https://app.example.com/",
            "https://app.example.com/ x",
            "https://app.example.com%2eevil.com/",
            "https:///app.example.com",
        ] {
            assert!(list.check(target).is_err(), "{target:?} must be refused");
        }
        assert!(list.check("https://app.example.com/welcome?x=1#top").is_ok());
    }

    #[test]
    fn bad_patterns_say_why() {
        for (pattern, error) in [
            ("", PatternError::Empty),
            ("https://app.example.com/", PatternError::TrailingSlash),
            ("app.example.com", PatternError::Scheme),
            ("ftp://app.example.com", PatternError::Scheme),
            ("https:///x", PatternError::NoHost),
            ("https://app .example.com", PatternError::Character),
            ("https://a\\b.com", PatternError::Character),
            ("https://user@app.example.com", PatternError::UserInfo),
            ("https://app.example.com/[abc", PatternError::Unbalanced),
            ("https://app.example.com/{a,b", PatternError::Unbalanced),
        ] {
            assert_eq!(RedirectPattern::parse(pattern).err(), Some(error.clone()), "{pattern:?}");
            assert!(!error.to_string().is_empty());
        }
    }

    #[test]
    fn classes_and_alternatives() {
        assert!(allows("https://{app,admin}.example.com/**", "https://admin.example.com/x"));
        assert!(!allows("https://{app,admin}.example.com/**", "https://evil.example.com/x"));
        assert!(allows("https://app[0-9].example.com", "https://app7.example.com"));
        assert!(!allows("https://app[!0-9].example.com", "https://app7.example.com"));
        assert!(allows("https://app.example.com/p?ge", "https://app.example.com/page"));
        assert!(!allows("https://app.example.com/p?ge", "https://app.example.com/p/ge"));
    }

    proptest! {
        #[test]
        fn star_labels_never_leave_the_domain(label in "[a-z0-9]{1,10}", evil in "[a-z0-9]{1,10}", path in "(/[a-z0-9]{0,6}){0,3}") {
            assert!(allows("https://*.example.com/**", &format!("https://{label}.example.com{path}/x")));
            assert!(!allows("https://*.example.com/**", &format!("https://{label}.{evil}.com{path}/x")));
            assert!(!allows("https://*.example.com**", &format!("https://{label}.example.com.{evil}")));
            assert!(!allows("https://*.example.com**", &format!("https://{label}.example.com.{evil}.com/x")));
        }

        #[test]
        fn literal_patterns_allow_exactly_themselves(host in "[a-z]{1,8}\\.[a-z]{2,4}", path in "(/[a-z0-9]{1,6}){0,3}", other in "[a-z]{1,3}") {
            let pattern = format!("https://{host}{path}");
            let path_suffixed = format!("{pattern}/{other}");
            assert!(allows(&pattern, &pattern));
            assert!(allows(&pattern, &format!("{pattern}/")));
            assert!(!allows(&pattern, &path_suffixed));
            assert!(!allows(&pattern, &format!("http://{host}{path}")));
        }

        #[test]
        fn never_panics(pattern in ".{0,40}", target in ".{0,60}") {
            if let Ok(pattern) = RedirectPattern::parse(&pattern) {
                let list = RedirectAllowList::new(vec![pattern]);
                if let Ok(allowed) = list.check(&target) {
                    assert!(matches!(allowed.as_url().scheme(), "http" | "https"));
                }
            }
        }

        #[test]
        fn arbitrary_strings_never_panic(target in any::<String>()) {
            let list = RedirectAllowList::new(vec![RedirectPattern::parse("https://*.example.com/**").unwrap()]);
            let _ = list.check(&target);
        }
    }
}
