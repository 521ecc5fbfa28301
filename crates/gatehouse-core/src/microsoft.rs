//! Microsoft Entra ID rules.

pub mod claims;
pub mod consent;
