//! Microsoft Entra ID rules.

pub mod claims;
pub mod consent;
pub mod directory;
