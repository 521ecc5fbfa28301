//! Microsoft Entra ID rules.

pub mod claims;
