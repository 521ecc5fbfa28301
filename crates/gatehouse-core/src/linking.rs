//! What a provider sign-in does to accounts: sign in, link, or sign up — or which error. Hanko's rules, made
//! safe against nOAuth: an existing account is only ever joined with positive proof that the provider's email
//! belongs to the person signing in, and an unverified email never signs anyone in when verification is required.

use uuid::Uuid;

use crate::{error::ThirdPartyErrorCode, microsoft::claims::ProviderEmail};

/// The identity already stored for this provider user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExistingIdentity {
    pub user_id: Uuid,
    /// The email the identity is attached to, if any.
    pub email_address: Option<String>,
}

/// The stored row of the provider's email address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailOwner {
    /// `None`: the address is stored but belongs to nobody.
    pub user_id: Option<Uuid>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkingPolicy {
    pub allow_linking: bool,
    pub allow_signup: bool,
    pub require_verification: bool,
    pub email_limit: usize,
}

/// Everything the decision depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkingInput {
    pub provider_user_email: Option<ProviderEmail>,
    pub existing_identity: Option<ExistingIdentity>,
    pub email_owner: Option<EmailOwner>,
    /// Emails of the user concerned (the identity's, or the one being connected).
    pub user_email_count: usize,
    /// The signed-in user connecting this provider from their profile.
    pub signed_in_user: Option<Uuid>,
    pub policy: LinkingPolicy,
}

/// What to do with the email on a sign-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmailChange {
    Unchanged,
    /// The address is stored without an owner: give it to the user.
    ClaimUnassigned,
    /// The user already owns the address: attach the identity to it.
    RelinkOwn,
    /// A new address for the user.
    CreateEmail,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkingDecision {
    SignIn { user_id: Uuid, email_change: EmailChange },
    Link { user_id: Uuid },
    SignUp { claim_unassigned_email: bool },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkingError {
    #[error("third party provider email must be verified")]
    UnverifiedEmail,
    #[error("third party account linking for existing user with same email disallowed")]
    UserConflict,
    #[error("this account is already connected to another user")]
    IdentityOwnedByAnother,
    #[error("cannot identify associated user: the email is used by another account")]
    MultipleAccounts,
    #[error("max number of email addresses reached")]
    EmailMaxNum,
    #[error("account signup is disabled")]
    SignupDisabled,
}

impl LinkingError {
    pub fn code(&self) -> ThirdPartyErrorCode {
        match self {
            Self::UnverifiedEmail => ThirdPartyErrorCode::UnverifiedEmail,
            Self::UserConflict | Self::IdentityOwnedByAnother => ThirdPartyErrorCode::UserConflict,
            Self::MultipleAccounts => ThirdPartyErrorCode::MultipleAccounts,
            Self::EmailMaxNum => ThirdPartyErrorCode::EmailMaxNum,
            Self::SignupDisabled => ThirdPartyErrorCode::SignupDisabled,
        }
    }
}

/// The decision for one provider sign-in.
pub fn decide(input: &LinkingInput) -> Result<LinkingDecision, LinkingError> {
    let policy = &input.policy;
    let email = input.provider_user_email.as_ref();
    if policy.require_verification && email.is_some_and(|email| !email.verified) {
        return Err(LinkingError::UnverifiedEmail);
    }
    let proven = email.is_some_and(|email| email.evidence.proves_ownership());
    let link = |user_id: Uuid| {
        if policy.allow_linking && proven {
            Ok(LinkingDecision::Link { user_id })
        } else {
            Err(LinkingError::UserConflict)
        }
    };

    if let Some(identity) = &input.existing_identity {
        if input.signed_in_user.is_some_and(|user| user != identity.user_id) {
            return Err(LinkingError::IdentityOwnedByAnother);
        }
        let email_change = match email {
            Some(email) if identity.email_address.as_deref() != Some(email.address.as_str()) => {
                match input.email_owner.as_ref().map(|owner| owner.user_id) {
                    Some(None) => EmailChange::ClaimUnassigned,
                    Some(Some(owner)) if owner != identity.user_id => return Err(LinkingError::MultipleAccounts),
                    Some(Some(_)) => EmailChange::RelinkOwn,
                    None if input.user_email_count >= policy.email_limit => return Err(LinkingError::EmailMaxNum),
                    None => EmailChange::CreateEmail,
                }
            }
            _ => EmailChange::Unchanged,
        };
        return Ok(LinkingDecision::SignIn { user_id: identity.user_id, email_change });
    }

    if let Some(user_id) = input.signed_in_user {
        return link(user_id);
    }
    match input.email_owner.as_ref().map(|owner| owner.user_id) {
        Some(Some(owner)) => link(owner),
        unassigned_or_unknown => {
            if !policy.allow_signup {
                return Err(LinkingError::SignupDisabled);
            }
            Ok(LinkingDecision::SignUp { claim_unassigned_email: matches!(unassigned_or_unknown, Some(None)) })
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{email::Email, microsoft::claims::EmailEvidence};

    fn email(evidence: EmailEvidence) -> ProviderEmail {
        ProviderEmail {
            address: Email::parse("megan@contoso.com").unwrap(),
            verified: evidence != EmailEvidence::EdovFalse,
            evidence,
        }
    }

    fn policy() -> LinkingPolicy {
        LinkingPolicy { allow_linking: true, allow_signup: true, require_verification: true, email_limit: 5 }
    }

    fn input(evidence: EmailEvidence) -> LinkingInput {
        LinkingInput {
            provider_user_email: Some(email(evidence)),
            existing_identity: None,
            email_owner: None,
            user_email_count: 0,
            signed_in_user: None,
            policy: policy(),
        }
    }

    const ALICE: Uuid = Uuid::from_u128(1);
    const BOB: Uuid = Uuid::from_u128(2);

    fn identity(email: Option<&str>) -> Option<ExistingIdentity> {
        Some(ExistingIdentity { user_id: ALICE, email_address: email.map(str::to_owned) })
    }

    #[test]
    fn new_users_sign_up() {
        assert_eq!(
            decide(&input(EmailEvidence::EdovAbsent)),
            Ok(LinkingDecision::SignUp { claim_unassigned_email: false })
        );
        let unassigned = LinkingInput { email_owner: Some(EmailOwner { user_id: None }), ..input(EmailEvidence::Upn) };
        assert_eq!(decide(&unassigned), Ok(LinkingDecision::SignUp { claim_unassigned_email: true }));
        let closed =
            LinkingInput { policy: LinkingPolicy { allow_signup: false, ..policy() }, ..input(EmailEvidence::Upn) };
        assert_eq!(decide(&closed), Err(LinkingError::SignupDisabled));
    }

    #[test]
    fn unverified_emails_are_refused_when_verification_is_required() {
        assert_eq!(decide(&input(EmailEvidence::EdovFalse)), Err(LinkingError::UnverifiedEmail));
        let relaxed = LinkingInput {
            policy: LinkingPolicy { require_verification: false, ..policy() },
            ..input(EmailEvidence::EdovFalse)
        };
        assert_eq!(decide(&relaxed), Ok(LinkingDecision::SignUp { claim_unassigned_email: false }));
    }

    #[test]
    fn linking_needs_permission_and_proof() {
        let owned = |evidence, allow_linking| LinkingInput {
            email_owner: Some(EmailOwner { user_id: Some(ALICE) }),
            policy: LinkingPolicy { allow_linking, ..policy() },
            ..input(evidence)
        };
        assert_eq!(decide(&owned(EmailEvidence::Upn, true)), Ok(LinkingDecision::Link { user_id: ALICE }));
        assert_eq!(decide(&owned(EmailEvidence::EdovTrue, true)), Ok(LinkingDecision::Link { user_id: ALICE }));
        assert_eq!(decide(&owned(EmailEvidence::EdovAbsent, true)), Err(LinkingError::UserConflict));
        assert_eq!(decide(&owned(EmailEvidence::Upn, false)), Err(LinkingError::UserConflict));
    }

    #[test]
    fn connecting_from_the_profile() {
        let connect = LinkingInput { signed_in_user: Some(ALICE), ..input(EmailEvidence::Upn) };
        assert_eq!(decide(&connect), Ok(LinkingDecision::Link { user_id: ALICE }));
        let weak = LinkingInput { signed_in_user: Some(ALICE), ..input(EmailEvidence::EdovAbsent) };
        assert_eq!(decide(&weak), Err(LinkingError::UserConflict));
        let taken =
            LinkingInput { existing_identity: identity(None), signed_in_user: Some(BOB), ..input(EmailEvidence::Upn) };
        assert_eq!(decide(&taken), Err(LinkingError::IdentityOwnedByAnother));
        let own = LinkingInput {
            existing_identity: identity(Some("megan@contoso.com")),
            signed_in_user: Some(ALICE),
            ..input(EmailEvidence::Upn)
        };
        assert_eq!(decide(&own), Ok(LinkingDecision::SignIn { user_id: ALICE, email_change: EmailChange::Unchanged }));
    }

    #[test]
    fn sign_in_handles_a_changed_email() {
        let with = |owner: Option<EmailOwner>, count| LinkingInput {
            existing_identity: identity(Some("old@contoso.com")),
            email_owner: owner,
            user_email_count: count,
            ..input(EmailEvidence::Upn)
        };
        let sign_in = |email_change| Ok(LinkingDecision::SignIn { user_id: ALICE, email_change });
        assert_eq!(decide(&with(None, 1)), sign_in(EmailChange::CreateEmail));
        assert_eq!(decide(&with(None, 5)), Err(LinkingError::EmailMaxNum));
        assert_eq!(decide(&with(Some(EmailOwner { user_id: None }), 1)), sign_in(EmailChange::ClaimUnassigned));
        assert_eq!(decide(&with(Some(EmailOwner { user_id: Some(ALICE) }), 2)), sign_in(EmailChange::RelinkOwn));
        assert_eq!(decide(&with(Some(EmailOwner { user_id: Some(BOB) }), 1)), Err(LinkingError::MultipleAccounts));
        let same = LinkingInput { existing_identity: identity(Some("megan@contoso.com")), ..input(EmailEvidence::Upn) };
        assert_eq!(decide(&same), sign_in(EmailChange::Unchanged));
    }

    fn evidence() -> impl Strategy<Value = EmailEvidence> {
        prop_oneof![
            Just(EmailEvidence::Upn),
            Just(EmailEvidence::EdovTrue),
            Just(EmailEvidence::EdovAbsent),
            Just(EmailEvidence::EdovFalse)
        ]
    }

    proptest! {
        #[test]
        fn no_link_without_permission_and_proof(
            evidence in evidence(),
            allow_linking: bool, allow_signup: bool, require_verification: bool,
            has_identity: bool, owner in proptest::option::of(proptest::option::of(0u128..3)),
            signed_in in proptest::option::of(0u128..3), count in 0usize..7,
        ) {
            let input = LinkingInput {
                provider_user_email: Some(email(evidence)),
                existing_identity: has_identity.then_some(ExistingIdentity { user_id: ALICE, email_address: None }),
                email_owner: owner.map(|user| EmailOwner { user_id: user.map(Uuid::from_u128) }),
                user_email_count: count,
                signed_in_user: signed_in.map(Uuid::from_u128),
                policy: LinkingPolicy { allow_linking, allow_signup, require_verification, email_limit: 5 },
            };
            let result = decide(&input);
            if let Ok(LinkingDecision::Link { .. }) = result {
                prop_assert!(allow_linking && evidence.proves_ownership());
            }
            if require_verification && evidence == EmailEvidence::EdovFalse {
                prop_assert_eq!(result, Err(LinkingError::UnverifiedEmail));
            }
        }
    }
}
