//! Fuzzes the redirect allow-list: the input is `pattern\ntarget`. Nothing may panic, and an allowed target must
//! be an http(s) URL without user information whose scheme is the pattern's, and a pattern without wildcards
//! allows only itself (one trailing slash aside; scheme and host compare case-insensitively).
#![no_main]

use gatehouse_core::redirect::{RedirectAllowList, RedirectPattern};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (pattern, target) = text.split_once('\n').unwrap_or((&text, ""));
    let fallback = RedirectAllowList::new(vec![RedirectPattern::parse("https://*.example.com/**").unwrap()]);
    if let Ok(allowed) = fallback.check(target) {
        let host = allowed.as_url().host_str().unwrap().trim_end_matches('.');
        assert!(host.ends_with(".example.com"), "{target:?} left *.example.com");
    }
    let Ok(parsed) = RedirectPattern::parse(pattern) else { return };
    let list = RedirectAllowList::new(vec![parsed]);
    let Ok(allowed) = list.check(target) else { return };
    let url = allowed.as_url();
    assert!(matches!(url.scheme(), "http" | "https"));
    assert!(url.username().is_empty() && url.password().is_none());
    assert!(url.host_str().is_some_and(|host| !host.is_empty()));
    assert!(
        pattern.get(..url.scheme().len() + 3).is_some_and(|p| p.eq_ignore_ascii_case(&format!("{}://", url.scheme())))
    );
    if !pattern.contains(['*', '?', '[', '{']) {
        let raw = target.strip_suffix('/').unwrap_or(target);
        assert!(raw.eq_ignore_ascii_case(pattern), "{pattern:?} allowed {target:?}");
    }
    // Re-checking what we would redirect to must not panic either.
    let _ = list.check(url.as_str());
});
