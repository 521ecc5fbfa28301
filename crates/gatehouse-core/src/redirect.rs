//! The redirect allow-list: where a third-party sign-in may send the browser back to.
//!
//! Patterns are Hanko's globs (`*` stays inside one host label or path segment, `**` crosses them, `?`, `[…]`,
//! `[!…]`, `{a,b}`), matched against the whole target string, followed by Hanko v3's host boundary check on the
//! parsed URL, so that `https://*.example.com**` can never reach `https://x.example.com.evil.com`.
//!
//! On top of Hanko we refuse, outright, anything a browser might read differently from us: user information,
//! backslashes, control characters, whitespace, scheme-relative and non-http(s) URLs, percent-encoded or
//! non-canonical hosts, and dot segments (`/a/../b`), which would otherwise let a target pass a path-restricted
//! pattern and then land elsewhere on the same host.

use std::fmt;

use regex::{Regex, RegexBuilder};
use url::Url;

/// Longer patterns are configuration mistakes, and the cap bounds the compiled regex.
const MAX_PATTERN_LEN: usize = 2048;
/// No page a sign-in returns to needs more; the cap bounds matching work and the size of the sealed state.
const MAX_TARGET_LEN: usize = 8192;
/// `{a,{b,{c,…}}}` deeper than this is not a real allow-list entry.
const MAX_BRACE_DEPTH: usize = 8;
/// The characters that make a pattern host a glob rather than a literal host.
const HOST_WILDCARDS: [char; 4] = ['*', '?', '[', '{'];

/// Why an allow-list entry was refused; shown to administrators next to the setting, so it says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("the pattern is empty")]
    Empty,
    #[error("the pattern is longer than {} characters", MAX_PATTERN_LEN)]
    TooLong,
    #[error("the pattern must not end with '/' (a trailing slash on the target is ignored when matching)")]
    TrailingSlash,
    #[error("the pattern must start with http:// or https://")]
    Scheme,
    #[error("the pattern has no host after the scheme")]
    EmptyHost,
    #[error("the pattern must not contain whitespace, control characters or backslashes (found {0:?})")]
    ForbiddenCharacter(char),
    #[error("the pattern must not contain user information ('@' before the host)")]
    UserInfo,
    #[error("the pattern has an unbalanced '{0}'")]
    Unbalanced(char),
    #[error("the pattern has an empty character class ('[]' or '[!]')")]
    EmptyClass,
    #[error("the pattern has a character range that runs backwards ('{0}-{1}')")]
    InvalidRange(char, char),
    #[error("the host must be plain ASCII without percent-encoding (write international names in their xn-- form)")]
    HostEncoding,
    #[error("the host is not a valid host name or IP address")]
    InvalidHost,
    #[error("the host must be written as {canonical:?}, the way browsers send it")]
    NonCanonicalHost { canonical: String },
    #[error("the port must be a number from 1 to 65535, optionally followed by wildcards")]
    InvalidPort,
    #[error("in the host, '**' may only be followed by literal text, as in '**.example.com'")]
    DoubleStarInHost,
    #[error(
        "the host needs at least two labels without wildcards (like *.example.com): a host such as *.* or *.com would allow sites anyone can register"
    )]
    BroadHost,
    #[error("the pattern is too complex (too many nested '{{' or too large once compiled)")]
    TooComplex,
}

/// A glob compiled once into an anchored regex, with gobwas/glob's separator semantics that no crate offers.
#[derive(Clone, Debug)]
struct Glob(Regex);

impl Glob {
    fn new(glob: &str, separators: &[char]) -> Result<Self, PatternError> {
        let mut body = String::new();
        translate(glob, separators, &mut body)?;
        Ok(Self(compile(&format!("^{body}$"))?))
    }

    fn is_match(&self, text: &str) -> bool {
        self.0.is_match(text)
    }
}

fn compile(regex: &str) -> Result<Regex, PatternError> {
    RegexBuilder::new(regex).size_limit(1 << 20).build().map_err(|_| PatternError::TooComplex)
}

/// A regex class item for one character; `\x{…}` needs no escaping rules of its own.
fn class_char(c: char) -> String {
    format!("\\x{{{:X}}}", u32::from(c))
}

/// What `*` and `?` may match: anything but a separator.
fn not_separator(separators: &[char]) -> String {
    let mut class = String::from("[^");
    for &c in separators {
        class.push_str(&class_char(c));
    }
    class.push(']');
    class
}

/// Appends the regex for `glob` (unanchored) to `out`: `*`→`[^seps]*`, `**`→`.*`, `?`→`[^seps]`, `[…]`, `[!…]`,
/// `{a,b}` (alternatives may hold wildcards and further braces) and `\` escapes. Literal runs go through
/// `regex::escape`.
fn translate(glob: &str, separators: &[char], out: &mut String) -> Result<(), PatternError> {
    let chars: Vec<char> = glob.chars().collect();
    let one = not_separator(separators);
    let mut literal = String::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        let token = match c {
            '*' if chars.get(i) == Some(&'*') => {
                while chars.get(i) == Some(&'*') {
                    i += 1;
                }
                "(?s:.*)".to_owned()
            }
            '*' => format!("{one}*"),
            '?' => one.clone(),
            '[' => {
                let (class, next) = translate_class(&chars, i, separators)?;
                i = next;
                class
            }
            '{' => {
                depth += 1;
                if depth > MAX_BRACE_DEPTH {
                    return Err(PatternError::TooComplex);
                }
                "(?:".to_owned()
            }
            ',' if depth > 0 => "|".to_owned(),
            '}' if depth > 0 => {
                depth -= 1;
                ")".to_owned()
            }
            '}' | ']' => return Err(PatternError::Unbalanced(c)),
            '\\' => {
                let escaped = *chars.get(i).ok_or(PatternError::ForbiddenCharacter('\\'))?;
                i += 1;
                literal.push(escaped);
                continue;
            }
            other => {
                literal.push(other);
                continue;
            }
        };
        out.push_str(&regex::escape(&literal));
        literal.clear();
        out.push_str(&token);
    }
    out.push_str(&regex::escape(&literal));
    if depth > 0 { Err(PatternError::Unbalanced('{')) } else { Ok(()) }
}

/// Translates the class starting after its `[`; returns the regex class and the index after its `]`.
/// A negated class never matches a separator, so `[!a]` cannot be used to step out of a host label.
fn translate_class(chars: &[char], mut i: usize, separators: &[char]) -> Result<(String, usize), PatternError> {
    let negated = chars.get(i) == Some(&'!');
    if negated {
        i += 1;
    }
    let mut items = String::new();
    let next_char = |i: &mut usize| -> Result<char, PatternError> {
        let c = *chars.get(*i).ok_or(PatternError::Unbalanced('['))?;
        *i += 1;
        if c == '\\' {
            let escaped = *chars.get(*i).ok_or(PatternError::Unbalanced('['))?;
            *i += 1;
            return Ok(escaped);
        }
        Ok(c)
    };
    loop {
        if chars.get(i) == Some(&']') {
            i += 1;
            break;
        }
        let low = next_char(&mut i)?;
        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|&c| c != ']') {
            i += 1;
            let high = next_char(&mut i)?;
            if high < low {
                return Err(PatternError::InvalidRange(low, high));
            }
            items.push_str(&format!("{}-{}", class_char(low), class_char(high)));
        } else {
            items.push_str(&class_char(low));
        }
    }
    if items.is_empty() {
        return Err(PatternError::EmptyClass);
    }
    if negated {
        for &c in separators {
            items.push_str(&class_char(c));
        }
        Ok((format!("[^{items}]"), i))
    } else {
        Ok((format!("[{items}]"), i))
    }
}

fn forbidden_character(text: &str) -> Option<char> {
    text.chars().find(|&c| c.is_whitespace() || c.is_control() || c == '\\')
}

/// Splits `scheme://rest` into the lower-cased scheme and the authority (up to the first `/`, `?` or `#`) and the
/// remainder, as Hanko does textually. Only http and https qualify.
fn split_url_text(text: &str) -> Option<(&'static str, &str, &str)> {
    let (scheme, rest) = text.split_once("://")?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => "http",
        "https" => "https",
        _ => return None,
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some((scheme, &rest[..end], &rest[end..]))
}

/// Splits an authority into host and port text. An IPv6 literal is `[` … `:` … `]`; any other `[` is a glob class.
fn split_authority(authority: &str) -> (&str, Option<&str>) {
    if let Some(end) = ipv6_literal_end(authority) {
        let (host, rest) = authority.split_at(end);
        return (host, rest.strip_prefix(':'));
    }
    match authority.rfind(':') {
        Some(at) => (&authority[..at], Some(&authority[at + 1..])),
        None => (authority, None),
    }
}

/// The length of a leading `[…:…]` IPv6 literal.
fn ipv6_literal_end(authority: &str) -> Option<usize> {
    let inner = authority.strip_prefix('[')?;
    let end = inner.find(']')?;
    inner[..end].contains(':').then_some(end + 2)
}

/// Hanko's host rules (`matchesHostPatternSafely`), decided once when the pattern is parsed.
#[derive(Clone, Debug)]
enum HostRule {
    /// The URL host must be exactly this (lower case, no trailing dot).
    Exact(String),
    /// The URL host must match this glob, with `.` as the only separator.
    Glob(Glob),
}

impl HostRule {
    fn parse(host: &str) -> Result<Self, PatternError> {
        if ipv6_literal_end(host).is_some() {
            return Self::exact(host);
        }
        if !host.is_ascii() || host.contains('%') {
            return Err(PatternError::HostEncoding);
        }
        // (b) A trailing `**` only reaches into the port and path, which the rest of the check governs.
        let mut host = host.to_ascii_lowercase();
        while let Some(stripped) = host.strip_suffix("**") {
            let len = stripped.len();
            host.truncate(len);
        }
        let host = host.trim_end_matches('.');
        if host.is_empty() {
            return Err(PatternError::EmptyHost);
        }
        // (a) No wildcard: a literal host.
        if !host.contains(HOST_WILDCARDS) {
            return Self::exact(host);
        }
        // (c) Hanko trusts only the literal prefix here, so such a host can match nothing useful: refuse it.
        if let Some(at) = host.find("**")
            && host[at + 2..].contains(HOST_WILDCARDS)
        {
            return Err(PatternError::DoubleStarInHost);
        }
        // (d) A glob on the host alone, so that `*` cannot cross a label.
        let glob = Glob::new(host, &['.'])?;
        // (e) Gatehouse's own rule: a wildcard host must still name a domain, or it admits sites an attacker can
        // register (`*.*`, `*.com`, `app.*`).
        if host.split('.').filter(|label| !label.contains(HOST_WILDCARDS)).count() < 2 {
            return Err(PatternError::BroadHost);
        }
        Ok(Self::Glob(glob))
    }

    fn exact(host: &str) -> Result<Self, PatternError> {
        let lower = host.to_ascii_lowercase();
        let canonical = url::Host::parse(&lower).map_err(|_| PatternError::InvalidHost)?.to_string();
        if canonical != lower {
            return Err(PatternError::NonCanonicalHost { canonical });
        }
        Ok(Self::Exact(canonical.trim_end_matches('.').to_owned()))
    }

    fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        match self {
            Self::Exact(expected) => host == expected,
            Self::Glob(glob) => glob.is_match(host),
        }
    }
}

/// One allow-list entry, compiled once at start-up so that a bad entry is reported before any sign-in.
#[derive(Clone)]
pub struct RedirectPattern {
    raw: String,
    /// The whole pattern, separators `.` and `/`; scheme and authority case-insensitive, as URLs are.
    full: Regex,
    scheme: &'static str,
    host: HostRule,
    /// The port the URL must use, when the pattern names one before any wildcard.
    port: Option<u16>,
}

impl RedirectPattern {
    /// Parses an `allowed_redirect_urls` entry, refusing what Hanko refuses (a trailing `/`) and anything whose
    /// meaning a browser could read differently (see [`PatternError`]).
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        if pattern.is_empty() {
            return Err(PatternError::Empty);
        }
        if pattern.chars().count() > MAX_PATTERN_LEN {
            return Err(PatternError::TooLong);
        }
        if let Some(c) = forbidden_character(pattern) {
            return Err(PatternError::ForbiddenCharacter(c));
        }
        if pattern.ends_with('/') {
            return Err(PatternError::TrailingSlash);
        }
        let (scheme, authority, rest) = split_url_text(pattern).ok_or(PatternError::Scheme)?;
        if authority.contains('@') {
            return Err(PatternError::UserInfo);
        }
        let (host_text, port_text) = split_authority(authority);
        if ipv6_literal_end(authority).is_some_and(|end| !authority[end..].is_empty() && port_text.is_none()) {
            return Err(PatternError::InvalidHost);
        }
        if host_text.is_empty() {
            return Err(PatternError::EmptyHost);
        }
        let port = port_text.map(parse_port).transpose()?.flatten();
        let host = HostRule::parse(host_text)?;

        let mut authority_regex = String::new();
        match ipv6_literal_end(authority) {
            Some(end) => {
                authority_regex.push_str(&regex::escape(&authority[..end]));
                translate(&authority[end..], &['.', '/'], &mut authority_regex)?;
            }
            None => translate(authority, &['.', '/'], &mut authority_regex)?,
        }
        let mut rest_regex = String::new();
        translate(rest, &['.', '/'], &mut rest_regex)?;
        let full = compile(&format!("^(?i:{}://{authority_regex}){rest_regex}$", regex::escape(scheme)))?;

        Ok(Self { raw: pattern.to_owned(), full, scheme, host, port })
    }

    /// The pattern as configured, for error messages and for writing the configuration back.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// `raw` is the target minus one trailing slash; `url` is the same target, parsed.
    fn matches(&self, raw: &str, url: &Url) -> bool {
        self.full.is_match(raw)
            && url.scheme() == self.scheme
            && self.port.is_none_or(|port| url.port_or_known_default() == Some(port))
            && url.host_str().is_some_and(|host| self.host.matches(host))
    }
}

/// The static prefix of a port before any wildcard, which the URL's port must equal; `None` when there is none.
fn parse_port(text: &str) -> Result<Option<u16>, PatternError> {
    let prefix = &text[..text.find(HOST_WILDCARDS).unwrap_or(text.len())];
    if text.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PatternError::InvalidPort);
    }
    if prefix.is_empty() {
        return Ok(None);
    }
    match prefix.parse::<u16>() {
        Ok(port) if port > 0 => Ok(Some(port)),
        _ => Err(PatternError::InvalidPort),
    }
}

impl fmt::Debug for RedirectPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RedirectPattern").field(&self.raw).finish()
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

impl Eq for RedirectPattern {}

/// Why a target was refused. Callers answer both with the same 400; the difference is for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectError {
    /// The target is not a plain absolute http(s) URL; no pattern was consulted.
    #[error("the redirect URL is malformed: {0}")]
    Malformed(&'static str),
    /// The target is well-formed but no allow-list entry admits it.
    #[error("the redirect URL is not in the allow-list")]
    NotAllowed,
}

/// A target that passed the allow-list: the only kind of URL a sign-in redirects to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedRedirect(Url);

impl AllowedRedirect {
    /// The parsed target, to append query parameters to or to serialise into the state.
    pub fn as_url(&self) -> &Url {
        &self.0
    }

    /// The parsed target, for building the `Location` header.
    pub fn into_url(self) -> Url {
        self.0
    }
}

impl fmt::Display for AllowedRedirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The configured `allowed_redirect_urls` (plus `error_redirect_url`, which Hanko always allows).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedirectAllowList {
    patterns: Vec<RedirectPattern>,
}

impl RedirectAllowList {
    /// Patterns are parsed by the caller so that each bad entry is reported against its own setting.
    pub fn new(patterns: Vec<RedirectPattern>) -> Self {
        Self { patterns }
    }

    /// The entries, for diagnostics.
    pub fn patterns(&self) -> &[RedirectPattern] {
        &self.patterns
    }

    /// Shorthand for [`Self::check`] when the reason does not matter.
    pub fn is_allowed(&self, url: &str) -> bool {
        self.check(url).is_ok()
    }

    /// Checks a `redirect_to` and returns it parsed, so that nothing unchecked can reach a `Location` header.
    ///
    /// An allowed target stays allowed in its parsed form (`as_url().as_str()`), which is what goes into the
    /// state, unless the pattern itself spells out something parsing normalises away (an explicit default port,
    /// a query right after the host without a `/`).
    pub fn check(&self, url: &str) -> Result<AllowedRedirect, RedirectError> {
        let parsed = well_formed(url)?;
        let raw = url.strip_suffix('/').unwrap_or(url);
        if self.patterns.iter().any(|pattern| pattern.matches(raw, &parsed)) {
            Ok(AllowedRedirect(parsed))
        } else {
            Err(RedirectError::NotAllowed)
        }
    }
}

/// The checks that come before any pattern. Whitespace and control characters are refused on the raw text
/// because `Url::parse` silently strips tabs and newlines.
fn well_formed(target: &str) -> Result<Url, RedirectError> {
    use RedirectError::Malformed;
    if target.is_empty() {
        return Err(Malformed("it is empty"));
    }
    if target.len() > MAX_TARGET_LEN {
        return Err(Malformed("it is too long"));
    }
    if target.contains('\\') {
        return Err(Malformed("it contains a backslash"));
    }
    if forbidden_character(target).is_some() {
        return Err(Malformed("it contains whitespace or control characters"));
    }
    // Also refuses scheme-relative (`//evil`), relative and `javascript:`, `data:` or `file:` URLs.
    let (_, authority, rest) = split_url_text(target).ok_or(Malformed("it is not an absolute http(s) URL"))?;
    if authority.is_empty() {
        return Err(Malformed("it has no host"));
    }
    if authority.contains('@') {
        return Err(Malformed("it contains user information"));
    }
    if !authority.is_ascii() || authority.contains('%') {
        return Err(Malformed("its host is not plain ASCII"));
    }
    let path = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    if path.split('/').any(is_dot_segment) {
        return Err(Malformed("its path contains '.' or '..' segments"));
    }
    let url = Url::parse(target).map_err(|_| Malformed("it is not a valid URL"))?;
    let host = url.host_str().filter(|host| !host.is_empty()).ok_or(Malformed("it has no host"))?;
    if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() || url.password().is_some() {
        return Err(Malformed("it is not an absolute http(s) URL"));
    }
    // So the glob on the raw text and the host check on the parsed URL look at the same host (no `0x7f.1`).
    if split_authority(authority).0.to_ascii_lowercase() != host {
        return Err(Malformed("its host is not written in canonical form"));
    }
    Ok(url)
}

/// WHATWG's single- and double-dot path segments, which parsing resolves away.
fn is_dot_segment(segment: &str) -> bool {
    matches!(segment.to_ascii_lowercase().as_str(), "." | ".." | "%2e" | ".%2e" | "%2e." | "%2e%2e")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn list(patterns: &[&str]) -> RedirectAllowList {
        RedirectAllowList::new(patterns.iter().map(|p| RedirectPattern::parse(p).unwrap()).collect())
    }

    fn allows(pattern: &str, url: &str) -> bool {
        list(&[pattern]).is_allowed(url)
    }

    /// Braces nest up to a limit, commas only separate alternatives inside them, and a closing brace without its
    /// opening one is refused rather than read as a literal.
    #[test]
    fn braces_nest_to_a_limit_and_commas_are_literal_outside_them() {
        let nested = |depth: usize| format!("https://a.example.com/{}y{}", "{x,".repeat(depth), "}".repeat(depth));
        let deepest = nested(MAX_BRACE_DEPTH);
        assert!(allows(&deepest, "https://a.example.com/y") && allows(&deepest, "https://a.example.com/x"));
        assert_eq!(RedirectPattern::parse(&nested(MAX_BRACE_DEPTH + 1)).err(), Some(PatternError::TooComplex));
        assert_eq!(RedirectPattern::parse("https://a.example.com/a}").err(), Some(PatternError::Unbalanced('}')));
        assert_eq!(RedirectPattern::parse("https://a.example.com/{a").err(), Some(PatternError::Unbalanced('{')));
        assert!(allows("https://a.example.com/a,b", "https://a.example.com/a,b"));
        assert!(!allows("https://a.example.com/a,b", "https://a.example.com/a"), "a comma outside braces is literal");
        assert!(allows("https://a.example.com/{a,b}", "https://a.example.com/b"));
    }

    /// Every row of Hanko's `TestIsValidRedirectTo` table (hanko-backend-contract.md §3.2).
    const HANKO_TABLE: [(&str, &str, &str, bool); 26] = [
        ("star matches one label", "https://*.example.com", "https://foo.example.com", true),
        ("one trailing slash is stripped", "https://*.example.com", "https://foo.example.com/", true),
        ("star does not cross a dot", "https://*.example.com", "https://a.b.example.com", false),
        ("star needs its label", "https://*.example.com", "https://example.com", false),
        ("label boundary", "https://*.example.com", "https://badexample.com", false),
        ("suffix attack", "https://*.example.com", "https://example.com.evil.com", false),
        ("double star crosses dots", "https://**.example.com", "https://a.b.example.com", true),
        ("double star still needs the dot", "https://**.example.com", "https://example.com", false),
        ("trailing double star reaches the path", "http://127.0.0.1**", "http://127.0.0.1/dashboard", true),
        ("trailing double star stops at the host", "http://127.0.0.1**", "http://127.0.0.1.evil.com", false),
        ("port matches", "http://localhost:8888**", "http://localhost:8888/foo", true),
        ("other port", "http://localhost:8888**", "http://localhost:9999/foo", false),
        ("missing port", "http://localhost:8888**", "http://localhost/foo", false),
        ("no port in the pattern allows any", "http://localhost**", "http://localhost/foo", true),
        ("star is one path segment", "https://example.com/*", "https://example.com/page", true),
        ("star does not cross a slash", "https://example.com/*", "https://example.com/page/sub", false),
        ("double star crosses slashes", "https://example.com/**", "https://example.com/deep/path/page", true),
        ("ip wildcards", "http://192.168.*.*/**", "http://192.168.1.55/dashboard", true),
        ("ip wildcards stop at the host", "http://192.168.*.*/**", "http://192.168.1.55.evil.com/dashboard", false),
        ("double star in the middle", "https://foo.**.bar.com", "https://foo.a.b.bar.com", true),
        ("double star in the middle, other domain", "https://foo.**.bar.com", "https://foo.a.b.evil.com", false),
        ("star host with trailing double star", "https://*.gett.co**", "https://app.gett.co/callback", true),
        ("star host, suffix attack", "https://*.gett.co**", "https://app.gett.co.evil.com", false),
        ("scheme must match", "http://example.com", "https://example.com", false),
        ("suffix attack before a path", "https://example.com**/test", "https://example.com.evil.com/test", false),
        ("error_redirect_url with slash", "https://foo.example.com/error", "https://foo.example.com/error/", true),
    ];

    #[test]
    fn hanko_table() {
        for (label, pattern, url, expected) in HANKO_TABLE {
            assert_eq!(allows(pattern, url), expected, "{label}: {pattern} vs {url}");
        }
    }

    #[test]
    fn allowed_targets_stay_allowed_once_parsed() {
        for (label, pattern, url, expected) in HANKO_TABLE {
            if expected {
                let list = list(&[pattern]);
                let parsed = list.check(url).unwrap();
                assert!(list.is_allowed(parsed.as_url().as_str()), "{label}: {parsed}");
            }
        }
    }

    #[test]
    fn refused_targets() {
        let list = list(&["https://app.example.com**", "http://localhost:3000**"]);
        let malformed = [
            ("empty", ""),
            ("userinfo before the real host", "https://app.example.com@evil.com"),
            ("userinfo with a slash", "https://app.example.com@evil.com/"),
            ("user and password", "https://user:pw@app.example.com/"),
            ("empty userinfo", "https://:@app.example.com/"),
            ("backslash as a slash", "https://app.example.com\\@evil.com"),
            ("backslashes only", "https:\\\\evil.com"),
            ("backslash in the path", "https://app.example.com/a\\b"),
            ("scheme-relative", "//evil.com"),
            ("scheme-relative to the allowed host", "//app.example.com/x"),
            ("relative path", "/relative"),
            ("javascript", "javascript:alert(1)//https://app.example.com"),
            ("data", "data:text/html,https://app.example.com"),
            ("file", "file:///etc/passwd"),
            ("no slashes after the scheme", "https:app.example.com"),
            ("one slash after the scheme", "https:/app.example.com"),
            ("three slashes", "https:///app.example.com"),
            ("newline", "https://app.example.com/\n"),
            ("tab inside", "https://app.example.com/\tx"),
            ("tab in the host", "https://app.exa\tmple.com/"),
            ("carriage return", "https://app.example.com/\r"),
            ("leading space", " https://app.example.com/"),
            ("inner space", "https://app.example.com/ x"),
            ("no-break space", "https://app.example.com/\u{a0}x"),
            ("nul", "https://app.example.com/\0"),
            ("percent-encoded dot in the host", "https://app.example.com%2eevil.com/"),
            ("unicode dot in the host", "https://app.example.com\u{3002}evil.com/"),
            ("numeric IPv4", "http://0x7f.1/"),
            ("dot-dot segment", "https://app.example.com/a/../b"),
            ("encoded dot-dot segment", "https://app.example.com/a/%2E%2e/b"),
            ("dot segment", "https://app.example.com/./b"),
            ("broken port", "https://app.example.com:99999/"),
            ("too long", &format!("https://app.example.com/{}", "a".repeat(MAX_TARGET_LEN))),
        ];
        for (label, target) in malformed {
            assert!(matches!(list.check(target), Err(RedirectError::Malformed(_))), "{label}: {target:?}");
        }
        for target in ["https://app.example.com%2eevil.com/", "https://app.example.com\u{3002}evil.com/"] {
            let refused = list.check(target);
            assert_eq!(refused, Err(RedirectError::Malformed("its host is not plain ASCII")), "{target:?}");
        }
        let longest =
            format!("https://app.example.com/{}", "a".repeat(MAX_TARGET_LEN - "https://app.example.com/".len()));
        assert!(list.check(&longest).is_ok(), "a target of exactly the longest length");
        let not_allowed = [
            ("other host", "https://evil.com/"),
            ("other scheme", "http://app.example.com/"),
            ("other port", "http://localhost:3001/"),
            ("suffix", "https://app.example.com.evil.com/"),
        ];
        for (label, target) in not_allowed {
            assert_eq!(list.check(target), Err(RedirectError::NotAllowed), "{label}: {target:?}");
        }
        let allowed = list.check("https://app.example.com/welcome?next=%2e%2e#top").unwrap();
        assert_eq!(allowed.as_url().as_str(), "https://app.example.com/welcome?next=%2e%2e#top");
        assert_eq!(allowed.to_string(), "https://app.example.com/welcome?next=%2e%2e#top");
        assert_eq!(allowed.into_url().host_str(), Some("app.example.com"));
        assert!(list.is_allowed("http://localhost:3000/"));
        assert!(!RedirectAllowList::default().is_allowed("https://app.example.com"));
    }

    #[test]
    fn refused_patterns() {
        let rows = [
            ("empty", String::new(), PatternError::Empty),
            ("too long", format!("https://a.com/{}", "a".repeat(MAX_PATTERN_LEN)), PatternError::TooLong),
            ("trailing slash", "https://app.example.com/".into(), PatternError::TrailingSlash),
            ("bare scheme with slash", "https://".into(), PatternError::TrailingSlash),
            ("no scheme", "app.example.com".into(), PatternError::Scheme),
            ("scheme-relative", "//app.example.com".into(), PatternError::Scheme),
            ("other scheme", "ftp://app.example.com".into(), PatternError::Scheme),
            ("javascript", "javascript:alert(1)".into(), PatternError::Scheme),
            ("no host", "https:///x".into(), PatternError::EmptyHost),
            ("only a port", "https://:443".into(), PatternError::EmptyHost),
            ("wildcard-only host", "https://**".into(), PatternError::EmptyHost),
            ("space", "https://app .example.com".into(), PatternError::ForbiddenCharacter(' ')),
            ("tab", "https://app.example.com\t".into(), PatternError::ForbiddenCharacter('\t')),
            ("newline", "https://app.example.com/\nx".into(), PatternError::ForbiddenCharacter('\n')),
            ("backslash", "https://a\\b.com".into(), PatternError::ForbiddenCharacter('\\')),
            ("userinfo", "https://user@app.example.com".into(), PatternError::UserInfo),
            ("userinfo before a wildcard host", "https://x@*.example.com".into(), PatternError::UserInfo),
            ("unclosed class", "https://app.example.com/[abc".into(), PatternError::Unbalanced('[')),
            ("unclosed braces", "https://app.example.com/{a,b".into(), PatternError::Unbalanced('{')),
            ("stray closing brace", "https://app.example.com/a}".into(), PatternError::Unbalanced('}')),
            ("stray closing bracket", "https://app.example.com/a]".into(), PatternError::Unbalanced(']')),
            ("braces across the host", "https://{a.com/x,b.com}".into(), PatternError::Unbalanced('{')),
            ("empty class", "https://app.example.com/[]".into(), PatternError::EmptyClass),
            ("empty negated class", "https://app.example.com/[!]".into(), PatternError::EmptyClass),
            ("backwards range", "https://app.example.com/[z-a]".into(), PatternError::InvalidRange('z', 'a')),
            ("unicode host", "https://bücher.de".into(), PatternError::HostEncoding),
            ("percent-encoded host", "https://app%2eexample.com".into(), PatternError::HostEncoding),
            ("invalid punycode", "https://xn--zz.com".into(), PatternError::InvalidHost),
            (
                "numeric IPv4",
                "http://0x7f.1**".into(),
                PatternError::NonCanonicalHost { canonical: "127.0.0.1".into() },
            ),
            ("long IPv6", "http://[0:0::1]:80".into(), PatternError::NonCanonicalHost { canonical: "[::1]".into() }),
            ("port text", "http://localhost:http".into(), PatternError::InvalidPort),
            ("port too large", "http://localhost:70000".into(), PatternError::InvalidPort),
            ("empty port", "http://localhost:".into(), PatternError::InvalidPort),
            ("port zero", "http://localhost:0".into(), PatternError::InvalidPort),
            ("text after an IPv6 literal", "http://[::1]x".into(), PatternError::InvalidHost),
            ("double star then star", "https://**.*.example.com".into(), PatternError::DoubleStarInHost),
            ("any two-label host", "https://*.*".into(), PatternError::BroadHost),
            ("any one-label host", "https://*".into(), PatternError::BroadHost),
            ("any .com host", "https://*.com/**".into(), PatternError::BroadHost),
            ("any top-level domain", "https://app.*".into(), PatternError::BroadHost),
            ("double star then class", "https://foo.**.[ab].com".into(), PatternError::DoubleStarInHost),
            ("nested too deep", format!("https://a.com/{}x{}", "{".repeat(9), "}".repeat(9)), PatternError::TooComplex),
        ];
        for (label, pattern, error) in rows {
            assert_eq!(RedirectPattern::parse(&pattern).err(), Some(error), "{label}: {pattern:?}");
        }
        let longest = format!("https://a.com/{}", "a".repeat(MAX_PATTERN_LEN - "https://a.com/".len()));
        assert!(RedirectPattern::parse(&longest).is_ok(), "a pattern of exactly the longest length");
    }

    #[test]
    fn pattern_errors_read_well() {
        assert_eq!(
            PatternError::ForbiddenCharacter('\t').to_string(),
            "the pattern must not contain whitespace, control characters or backslashes (found '\\t')"
        );
        assert_eq!(PatternError::Unbalanced('{').to_string(), "the pattern has an unbalanced '{'");
        assert_eq!(
            PatternError::NonCanonicalHost { canonical: "[::1]".into() }.to_string(),
            "the host must be written as \"[::1]\", the way browsers send it"
        );
        assert_eq!(
            RedirectError::Malformed("it contains a backslash").to_string(),
            "the redirect URL is malformed: it contains a backslash"
        );
    }

    #[test]
    fn pattern_basics() {
        let pattern = RedirectPattern::parse("https://*.example.com/**").unwrap();
        assert_eq!(pattern.as_str(), "https://*.example.com/**");
        assert_eq!(pattern.to_string(), "https://*.example.com/**");
        assert_eq!(pattern.clone(), pattern);
        assert_ne!(pattern, RedirectPattern::parse("https://*.example.com").unwrap());
        let list = RedirectAllowList::new(vec![pattern.clone()]);
        assert_eq!(list.patterns(), &[pattern]);
    }

    #[test]
    fn classes_alternatives_and_question_marks() {
        let rows = [
            ("alternative host", "https://{app,admin}.example.com/**", "https://admin.example.com/x", true),
            ("alternative host, other", "https://{app,admin}.example.com/**", "https://evil.example.com/x", false),
            (
                "alternative cannot add a label",
                "https://{app,admin}.example.com/**",
                "https://a.app.example.com/",
                false,
            ),
            ("wildcards inside alternatives", "https://{*.app,admin}.example.com", "https://x.app.example.com", true),
            (
                "star inside alternative stays in its label",
                "https://{*.app,admin}.example.com",
                "https://x.y.app.example.com",
                false,
            ),
            ("double star inside alternative", "https://example.com/{a/**,b}", "https://example.com/a/b/c", true),
            ("nested alternatives", "https://example.com/{a,{b,c}x}", "https://example.com/cx", true),
            ("nested alternatives, other", "https://example.com/{a,{b,c}x}", "https://example.com/dx", false),
            ("empty alternative", "https://example.com/p{,s}", "https://example.com/p", true),
            ("range", "https://app[0-9].example.com", "https://app7.example.com", true),
            ("range, other", "https://app[0-9].example.com", "https://appx.example.com", false),
            ("range of one character", "https://app[7-7].example.com", "https://app7.example.com", true),
            ("negated range", "https://app[!0-9].example.com", "https://app7.example.com", false),
            ("negated range, other", "https://app[!0-9].example.com", "https://appx.example.com", true),
            (
                "negated class never matches a dot",
                "https://app[!x]example.example.com",
                "https://app.example.example.com",
                false,
            ),
            ("negated class never matches a slash", "https://example.com/a[!x]b", "https://example.com/a/b", false),
            ("list with dash", "https://example.com/[a-]", "https://example.com/-", true),
            ("question mark in the path", "https://app.example.com/p?ge", "https://app.example.com/page", true),
            (
                "question mark does not cross a slash",
                "https://app.example.com/p?ge",
                "https://app.example.com/p/ge",
                false,
            ),
            (
                "question mark matches one character",
                "https://app.example.com/p?ge",
                "https://app.example.com/pge",
                false,
            ),
            ("query glob", "https://app.example.com/?next=*", "https://app.example.com/?next=home", true),
            (
                "query glob stops at a slash",
                "https://app.example.com/?next=*",
                "https://app.example.com/?next=a/b",
                false,
            ),
            ("regex characters are literal", "https://example.com/a+b(c)", "https://example.com/a+b(c)", true),
            ("regex characters are literal, other", "https://example.com/a+b(c)", "https://example.com/aab(c)", false),
            ("dot is literal", "https://example.com/a.b", "https://example.com/axb", false),
            ("case-insensitive scheme and host", "HTTPS://App.Example.com/Path", "https://app.example.com/Path", true),
            ("case-sensitive path", "https://app.example.com/Path", "https://app.example.com/path", false),
            ("ipv6 literal", "http://[::1]:8080**", "http://[::1]:8080/x", true),
            ("ipv6 literal, other port", "http://[::1]:8080**", "http://[::1]:8081/x", false),
            ("ipv6 literal, other host", "http://[::1]:8080**", "http://[::2]:8080/x", false),
            ("explicit default port", "https://example.com:443/**", "https://example.com:443/x", true),
            ("port prefix", "http://localhost:80*/**", "http://localhost:80/x", true),
            ("port prefix is exact", "http://localhost:80*/**", "http://localhost:8080/x", false),
            ("wildcard port", "http://localhost:*/**", "http://localhost:1234/x", true),
            ("trailing dot in the target host", "https://*.example.com**", "https://a.example.com./x", true),
        ];
        for (label, pattern, url, expected) in rows {
            assert_eq!(allows(pattern, url), expected, "{label}: {pattern} vs {url}");
        }
    }

    #[test]
    fn host_boundary_catches_what_the_full_glob_lets_through() {
        // The full glob alone (Hanko v2) would allow each of these.
        let rows = [
            ("https://app.example.com**", "https://app.example.com.evil.com/"),
            ("https://app.example.com**", "https://app.example.com:443.evil.com/"),
            ("https://*.example.com**", "https://a.example.com.evil.com/x"),
            ("http://localhost**", "http://localhost.evil.com/"),
            ("http://localhost:80**", "http://localhost:8080/"),
        ];
        for (pattern, url) in rows {
            let parsed = RedirectPattern::parse(pattern).unwrap();
            assert!(parsed.full.is_match(url.trim_end_matches('/')), "{pattern} vs {url}");
            assert!(!allows(pattern, url), "{pattern} vs {url}");
        }
    }

    #[test]
    fn glob_semantics() {
        let full = |glob: &str, text: &str| Glob::new(glob, &['.', '/']).unwrap().is_match(text);
        assert!(full("a*c", "abbc"));
        assert!(!full("a*c", "a.c"));
        assert!(!full("a*c", "a/c"));
        assert!(full("a**c", "a./c"));
        assert!(full("a***c", "a./c"));
        assert!(full("a?c", "abc"));
        assert!(!full("a?c", "a.c"));
        assert!(full("[a.]", "."), "a class may name a separator explicitly");
        assert!(full("a\\*c", "a*c"), "backslash escapes (unreachable from patterns, which refuse backslashes)");
        assert!(!full("a\\*c", "abc"));
        assert!(full("\\{a,b\\}", "{a,b}"));
        assert!(full("[\\]]", "]"));
        assert!(!full("abc", "xabcx"), "anchored");
        let host = |glob: &str, text: &str| Glob::new(glob, &['.']).unwrap().is_match(text);
        assert!(host("*", "a/b"), "the host glob only separates on dots");
        assert!(!host("*", "a.b"));
        assert_eq!(Glob::new("a\\", &['.']).err(), Some(PatternError::ForbiddenCharacter('\\')));
    }

    /// A host built from labels, some of them copies of the allowed domain's labels to tempt the matcher.
    fn host_strategy() -> impl Strategy<Value = String> {
        let label = prop_oneof![
            4 => "[a-z0-9]{1,10}",
            1 => Just("example".to_owned()),
            1 => Just("com".to_owned()),
            1 => Just("example.com".to_owned()),
        ];
        prop::collection::vec(label, 1..5).prop_map(|labels| labels.join("."))
    }

    fn suffix_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "(/[a-z0-9.]{0,8}){1,3}",
            "[:][0-9]{1,4}(/[a-z]{0,4})?",
            "/[?][a-z]=[a-z0-9./:@]{0,10}",
            "#[a-z0-9./@]{0,10}",
            "[.@:%/?#a-z0-9]{1,12}",
        ]
    }

    proptest! {
        #[test]
        fn star_domain_patterns_never_leave_the_domain(
            host in host_strategy(),
            suffix in suffix_strategy(),
            scheme in prop_oneof![Just("https"), Just("http")],
        ) {
            let target = format!("{scheme}://{host}{suffix}");
            let patterns = [
                "https://*.example.com/**",
                "https://*.example.com**",
                "https://**.example.com**",
                "https://*.example.com",
            ];
            for pattern in patterns {
                if let Ok(allowed) = list(&[pattern]).check(&target) {
                    let host = allowed.as_url().host_str().unwrap().trim_end_matches('.');
                    prop_assert!(host.ends_with(".example.com"), "{} allowed {}", pattern, target);
                    prop_assert_eq!(allowed.as_url().scheme(), "https");
                }
            }
        }

        #[test]
        fn star_domain_patterns_keep_their_label(label in "[a-z0-9]{1,10}", path in "(/[a-z0-9]{1,6}){0,3}") {
            let target = format!("https://{label}.example.com{path}");
            let deeper = format!("{target}/x");
            let elsewhere = format!("https://{label}.evil.com{path}/x");
            prop_assert!(allows("https://*.example.com/**", &deeper));
            prop_assert!(allows("https://*.example.com**", &target));
            prop_assert!(!allows("https://*.example.com/**", &elsewhere));
        }

        #[test]
        fn suffix_attacks_never_pass(
            label in "[a-z0-9]{1,10}",
            evil in "[a-z0-9]{1,10}(\\.[a-z0-9]{1,10}){0,2}",
            path in "(/[a-z0-9]{0,6}){0,2}",
        ) {
            let target = format!("https://{label}.example.com.{evil}");
            let with_path = format!("{target}{path}");
            prop_assert!(!allows("https://*.example.com**", &target));
            prop_assert!(!allows("https://*.example.com**", &with_path));
            prop_assert!(!allows("https://*.example.com/**", &with_path));
        }

        #[test]
        fn literal_patterns_allow_exactly_themselves(
            host in "[a-z]{1,8}(\\.[a-z]{1,8}){0,2}\\.[a-z]{2,4}",
            port in prop::option::of(1024u16..),
            path in "(/[a-z0-9._-]{1,6}){0,3}",
            extra in "[a-z0-9./:@?#]{1,4}",
        ) {
            prop_assume!(!path.split('/').any(is_dot_segment));
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let pattern = format!("https://{host}{port}{path}");
            let with_slash = format!("{pattern}/");
            let with_extra = format!("{pattern}{extra}");
            let with_two_slashes = format!("{pattern}//");
            let plain_http = format!("http://{host}{port}{path}");
            let shorter = &pattern[..pattern.len() - 1];
            prop_assert!(allows(&pattern, &pattern));
            prop_assert!(allows(&pattern, &with_slash));
            prop_assert!(extra == "/" || !allows(&pattern, &with_extra), "{} allowed {}", pattern, with_extra);
            prop_assert!(!allows(&pattern, &with_two_slashes));
            prop_assert!(!allows(&pattern, &plain_http));
            prop_assert!(!allows(&pattern, shorter));
        }

        #[test]
        fn allowed_targets_stay_allowed_when_rechecked(host in host_strategy(), suffix in suffix_strategy()) {
            let list = list(&["https://*.example.com**", "https://example.com/**", "http://localhost:3000**"]);
            for target in [format!("https://{host}{suffix}"), format!("http://localhost:3000{suffix}")] {
                if let Ok(allowed) = list.check(&target) {
                    prop_assert!(list.is_allowed(allowed.as_url().as_str()), "{} -> {}", target, allowed);
                }
            }
        }

        #[test]
        fn never_panics_on_any_text(pattern in ".*", target in ".*") {
            if let Ok(pattern) = RedirectPattern::parse(&pattern) {
                let _ = RedirectAllowList::new(vec![pattern]).is_allowed(&target);
            }
            let _ = list(&["https://*.example.com/**", "http://[::1]:8080**"]).is_allowed(&target);
        }

        #[test]
        fn never_panics_on_any_string(pattern in any::<String>(), target in any::<String>()) {
            if let Ok(pattern) = RedirectPattern::parse(&pattern) {
                let _ = RedirectAllowList::new(vec![pattern]).is_allowed(&target);
            }
            let _ = list(&["https://*.example.com/**"]).is_allowed(&target);
        }

        #[test]
        fn never_panics_on_url_like_text(
            pattern in "https?://[a-z*?.{},!\\[\\]:0-9@%/#-]{0,20}",
            target in "https?://[a-z*?.{},:0-9@%/#\\[\\]-]{0,30}",
        ) {
            if let Ok(pattern) = RedirectPattern::parse(&pattern)
                && let Ok(allowed) = RedirectAllowList::new(vec![pattern]).check(&target)
            {
                prop_assert!(matches!(allowed.as_url().scheme(), "http" | "https"));
                prop_assert!(allowed.as_url().username().is_empty());
            }
        }
    }
}
