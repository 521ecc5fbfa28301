//! Talking to identity providers. Everything here that touches the network is bounded by timeouts and never
//! follows redirects; everything that decides (claims, tenants, linking) is delegated to `gatehouse-core`.

pub mod graph;
pub mod jwks;
pub mod microsoft;
pub mod pkce;
pub mod state;

/// A failed call to a provider, as the operator reads it in the log: reqwest's own text ("error sending request")
/// does not say why, so each cause follows it ("…: Connection refused", "…: operation timed out"). The URL is left
/// out, and so are the causes of a body that does not decode: they quote the body, which may hold tokens.
pub(crate) fn call_failure(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    if error.is_decode() {
        return text;
    }
    let mut cause = std::error::Error::source(&error);
    while let Some(inner) = cause {
        text = format!("{text}: {inner}");
        cause = inner.source();
    }
    text
}
