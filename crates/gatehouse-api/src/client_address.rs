//! The client's address on the public listener, decided once per request by `server.public.trusted_proxies`
//! (the rule is [`gatehouse_core::client_address`]). Handlers read it as `RequestMeta.source_ip`, so the same
//! address feeds the rate limits, audit rows and sessions' `ip_address`.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderName, header},
    middleware::Next,
    response::Response,
};
use gatehouse_core::client_address::{ForwardingHeaders, TrustedProxies};

/// The address a public request is attributed to.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddress(pub IpAddr);

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Middleware: works out the [`ClientAddress`] of a request and attaches it.
pub async fn resolve_client_address(
    State(proxies): State<Arc<TrustedProxies>>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        let peer = peer.ip();
        let client = if proxies.trusts(peer) {
            let headers = request.headers();
            let forwarded = all_lines(headers, &header::FORWARDED);
            let x_forwarded_for = all_lines(headers, &X_FORWARDED_FOR);
            proxies.client_address(
                peer,
                ForwardingHeaders { forwarded: forwarded.as_deref(), x_forwarded_for: x_forwarded_for.as_deref() },
            )
        } else {
            peer.to_canonical()
        };
        request.extensions_mut().insert(ClientAddress(client));
    }
    next.run(request).await
}

/// Every line of header `name`, joined with `,` in the order received. Bytes that are not UTF-8 are replaced,
/// not fatal, so the addresses proxies appended after them still read.
fn all_lines(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let lines: Vec<_> = headers.get_all(name).iter().map(|line| String::from_utf8_lossy(line.as_bytes())).collect();
    (!lines.is_empty()).then(|| lines.join(","))
}
