//! Talking to identity providers. Everything here that touches the network is bounded by timeouts and never
//! follows redirects; everything that decides (claims, tenants, linking) is delegated to `gatehouse-core`.

pub mod jwks;
pub mod microsoft;
pub mod pkce;
pub mod state;
