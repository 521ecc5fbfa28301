//! Email addresses as Gatehouse stores and compares them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A syntactically valid email address, lower-cased so that uniqueness and lookups are case-insensitive.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a valid email address")]
pub struct InvalidEmail;

impl Email {
    /// Parses strictly: one `@`, a local part of at most 64 characters without spaces or control characters,
    /// and a domain of dot-separated DNS labels. Whole address at most 254 characters.
    pub fn parse(input: &str) -> Result<Self, InvalidEmail> {
        let address = input.trim();
        if address.is_empty() || address.len() > 254 {
            return Err(InvalidEmail);
        }
        let (local, domain) = address.split_once('@').ok_or(InvalidEmail)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local.chars().all(|c| !c.is_control() && !c.is_whitespace() && !"@<>()[]\\,;:\"".contains(c));
        let domain_ok = domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        // A character outside ASCII whose lower case is ASCII (the Kelvin sign lowers to `k`) would make two
        // different addresses one.
        let folds_into_ascii = address.chars().any(|c| !c.is_ascii() && c.to_lowercase().any(|l| l.is_ascii()));
        if local_ok && domain_ok && !folds_into_ascii { Ok(Self(address.to_lowercase())) } else { Err(InvalidEmail) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = InvalidEmail;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Email> for String {
    fn from(email: Email) -> Self {
        email.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What proved that an address belongs to the person who holds it, stored with the address. An address without a
/// proof is never reported as verified, never opens an existing account, and gives way to whoever proves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EmailProof {
    /// A personal Microsoft account: Microsoft verified the address when the account was made.
    PersonalAccount,
    /// `xms_edov: true`: the user's tenant verified that it owns the address's domain.
    DomainOwnerVerified,
    /// The `upn`: a UPN's domain must be one the tenant verified.
    Upn,
    /// Imported from Hanko, which had marked the address verified: by a passcode mailed to it, or because an
    /// identity provider said so (Hanko took a Microsoft address without `xms_edov` as verified). Like a personal
    /// account's, a proof of the mailbox at some past time, never of the domain.
    Hanko,
}

/// How much a proof says about who owns an address now. A tenant that verified the address's domain speaks for the
/// domain today; a personal account's address was verified once, when the account was made — possibly long ago, and
/// possibly a work address since given to someone else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProofStrength {
    Unproven,
    Mailbox,
    Domain,
}

impl ProofStrength {
    pub fn of(proof: Option<EmailProof>) -> Self {
        match proof {
            None => Self::Unproven,
            Some(EmailProof::PersonalAccount | EmailProof::Hanko) => Self::Mailbox,
            Some(EmailProof::DomainOwnerVerified | EmailProof::Upn) => Self::Domain,
        }
    }
}

impl EmailProof {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PersonalAccount => "personal_account",
            Self::DomainOwnerVerified => "xms_edov",
            Self::Upn => "upn",
            Self::Hanko => "hanko",
        }
    }

    /// Reads the stored form; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::PersonalAccount, Self::DomainOwnerVerified, Self::Upn, Self::Hanko]
            .into_iter()
            .find(|proof| proof.as_str() == text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_read_back_what_they_store() {
        for proof in [EmailProof::PersonalAccount, EmailProof::DomainOwnerVerified, EmailProof::Upn, EmailProof::Hanko]
        {
            assert_eq!(EmailProof::parse(proof.as_str()), Some(proof));
        }
        for unknown in ["", "UPN", "verified", "legacy"] {
            assert_eq!(EmailProof::parse(unknown), None, "{unknown:?}");
        }
    }

    #[test]
    fn normalises_case() {
        assert_eq!(Email::parse(" Alice@Contoso.COM ").unwrap().as_str(), "alice@contoso.com");
    }

    #[test]
    fn at_most_254_characters() {
        // A 64-character local part, then three labels of at most 63: `last` sets the length.
        let address =
            |last: usize| format!("{}@{}.{}.{}", "l".repeat(64), "d".repeat(63), "d".repeat(63), "d".repeat(last));
        assert_eq!(address(61).len(), 254);
        assert!(Email::parse(&address(61)).is_ok());
        assert_eq!(address(62).len(), 255);
        assert_eq!(Email::parse(&address(62)), Err(InvalidEmail), "valid labels, but too long as a whole");
    }

    #[test]
    fn serialises_as_the_address() {
        let email = Email::parse("Megan@Contoso.com").unwrap();
        assert_eq!(serde_json::to_value(&email).unwrap(), serde_json::json!("megan@contoso.com"));
        assert_eq!(serde_json::from_value::<Email>(serde_json::json!("x@y.z")).unwrap().as_str(), "x@y.z");
    }

    #[test]
    fn accepts_common_forms() {
        for ok in ["a@b.co", "first.last+tag@sub.example.org", "x_y-z@xn--bcher-kva.example", "Jürgen@Bücher.example"]
        {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@b..com",
            ".a@b.com",
            "a.@b.com",
            "a@-b.com",
            "a\u{0}@b.com",
            "a@b.com\nx",
            "\u{212A}im@contoso.com",
            "kim@contoso.co\u{212A}",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
