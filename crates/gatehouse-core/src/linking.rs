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
    /// Hanko's code for the browser; `Display` is Hanko's `error_description` for it.
    pub fn hanko_code(&self) -> &'static str {
        self.code().as_str()
    }

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

/// The decision for one provider sign-in, in this order:
///
/// 1. `require_verification` and an unverified provider email: [`LinkingError::UnverifiedEmail`], whatever
///    the path (Hanko only checks this on its legacy path).
/// 2. An identity exists: sign in as its user — unless a signed-in user connecting from the profile is someone
///    else ([`LinkingError::IdentityOwnedByAnother`]). A changed email is claimed, relinked or created
///    ([`EmailChange`]); another user's address is [`LinkingError::MultipleAccounts`], a full address book
///    [`LinkingError::EmailMaxNum`].
/// 3. A signed-in user connects from the profile: link to them, unless the address belongs to another user
///    ([`LinkingError::MultipleAccounts`]: the identity could never sign in).
/// 4. The address belongs to a user: link to them.
/// 5. Otherwise sign up, claiming an unassigned row of the address, if `allow_signup`.
///
/// Linking (3, 4) needs `allow_linking` *and* positive proof that the email is the person's
/// ([`crate::microsoft::claims::EmailEvidence::proves_ownership`]), otherwise [`LinkingError::UserConflict`]:
/// an email a tenant admin could set freely never opens an existing account (nOAuth).
pub fn decide(input: &LinkingInput) -> Result<LinkingDecision, LinkingError> {
    let policy = &input.policy;
    let email = input.provider_user_email.as_ref();
    if policy.require_verification && email.is_some_and(|email| !email.verified) {
        return Err(LinkingError::UnverifiedEmail);
    }
    let owner = input.email_owner.as_ref().map(|owner| owner.user_id);

    if let Some(identity) = &input.existing_identity {
        if input.signed_in_user.is_some_and(|user| user != identity.user_id) {
            return Err(LinkingError::IdentityOwnedByAnother);
        }
        let unchanged = |email: &ProviderEmail| {
            identity.email_address.as_deref().is_some_and(|stored| stored.to_lowercase() == email.address.as_str())
        };
        let email_change = match email {
            None => EmailChange::Unchanged,
            Some(email) if unchanged(email) => EmailChange::Unchanged,
            Some(_) => match owner {
                Some(None) => EmailChange::ClaimUnassigned,
                Some(Some(owner)) if owner == identity.user_id => EmailChange::RelinkOwn,
                Some(Some(_)) => return Err(LinkingError::MultipleAccounts),
                None if input.user_email_count >= policy.email_limit => return Err(LinkingError::EmailMaxNum),
                None => EmailChange::CreateEmail,
            },
        };
        return Ok(LinkingDecision::SignIn { user_id: identity.user_id, email_change });
    }

    let link = |user_id: Uuid| {
        let proven = email.is_some_and(|email| email.evidence.proves_ownership());
        if policy.allow_linking && proven {
            Ok(LinkingDecision::Link { user_id })
        } else {
            Err(LinkingError::UserConflict)
        }
    };
    if let Some(user_id) = input.signed_in_user {
        return match owner {
            Some(Some(owner)) if owner != user_id => Err(LinkingError::MultipleAccounts),
            _ => link(user_id),
        };
    }
    match owner {
        Some(Some(owner)) => link(owner),
        _ if !policy.allow_signup => Err(LinkingError::SignupDisabled),
        unassigned_or_unknown => {
            Ok(LinkingDecision::SignUp { claim_unassigned_email: matches!(unassigned_or_unknown, Some(None)) })
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{
        email::Email,
        microsoft::claims::EmailEvidence::{self, EdovAbsent, EdovFalse, EdovTrue, Upn},
    };

    const ALICE: Uuid = Uuid::from_u128(1);
    const BOB: Uuid = Uuid::from_u128(2);
    const ADDRESS: &str = "megan@contoso.com";

    fn email(evidence: EmailEvidence) -> Option<ProviderEmail> {
        Some(ProviderEmail { address: Email::parse(ADDRESS).unwrap(), verified: evidence != EdovFalse, evidence })
    }

    fn policy() -> LinkingPolicy {
        LinkingPolicy { allow_linking: true, allow_signup: true, require_verification: true, email_limit: 5 }
    }

    /// A first sign-in with a verified UPN; each case changes what it needs.
    fn base() -> LinkingInput {
        LinkingInput {
            provider_user_email: email(Upn),
            existing_identity: None,
            email_owner: None,
            user_email_count: 0,
            signed_in_user: None,
            policy: policy(),
        }
    }

    fn identity(user_id: Uuid, address: Option<&str>) -> Option<ExistingIdentity> {
        Some(ExistingIdentity { user_id, email_address: address.map(str::to_owned) })
    }

    fn owned_by(user_id: Option<Uuid>) -> Option<EmailOwner> {
        Some(EmailOwner { user_id })
    }

    fn sign_in(email_change: EmailChange) -> Result<LinkingDecision, LinkingError> {
        Ok(LinkingDecision::SignIn { user_id: ALICE, email_change })
    }

    fn link(user_id: Uuid) -> Result<LinkingDecision, LinkingError> {
        Ok(LinkingDecision::Link { user_id })
    }

    fn sign_up(claim_unassigned_email: bool) -> Result<LinkingDecision, LinkingError> {
        Ok(LinkingDecision::SignUp { claim_unassigned_email })
    }

    #[test]
    fn every_branch() {
        use LinkingError::*;
        let relaxed = LinkingPolicy { require_verification: false, ..policy() };
        let no_linking = LinkingPolicy { allow_linking: false, ..policy() };
        let closed = LinkingPolicy { allow_signup: false, ..policy() };
        let cases: Vec<(&str, LinkingInput, Result<LinkingDecision, LinkingError>)> = vec![
            // Sign-up.
            ("new user", LinkingInput { provider_user_email: email(EdovAbsent), ..base() }, sign_up(false)),
            (
                "new user claims an unassigned row",
                LinkingInput { email_owner: owned_by(None), ..base() },
                sign_up(true),
            ),
            ("new user without an email", LinkingInput { provider_user_email: None, ..base() }, sign_up(false)),
            ("sign-up disabled", LinkingInput { policy: closed.clone(), ..base() }, Err(SignupDisabled)),
            (
                "sign-up disabled, unassigned row",
                LinkingInput { email_owner: owned_by(None), policy: closed.clone(), ..base() },
                Err(SignupDisabled),
            ),
            // Verification, on every path.
            (
                "unverified sign-up",
                LinkingInput { provider_user_email: email(EdovFalse), ..base() },
                Err(UnverifiedEmail),
            ),
            (
                "unverified sign-in",
                LinkingInput {
                    provider_user_email: email(EdovFalse),
                    existing_identity: identity(ALICE, Some(ADDRESS)),
                    ..base()
                },
                Err(UnverifiedEmail),
            ),
            (
                "unverified link by email",
                LinkingInput { provider_user_email: email(EdovFalse), email_owner: owned_by(Some(ALICE)), ..base() },
                Err(UnverifiedEmail),
            ),
            (
                "unverified connect",
                LinkingInput { provider_user_email: email(EdovFalse), signed_in_user: Some(ALICE), ..base() },
                Err(UnverifiedEmail),
            ),
            (
                "unverified sign-up, verification not required",
                LinkingInput { provider_user_email: email(EdovFalse), policy: relaxed.clone(), ..base() },
                sign_up(false),
            ),
            (
                "unverified sign-in, verification not required",
                LinkingInput {
                    provider_user_email: email(EdovFalse),
                    existing_identity: identity(ALICE, Some(ADDRESS)),
                    policy: relaxed.clone(),
                    ..base()
                },
                sign_in(EmailChange::Unchanged),
            ),
            // Linking by email.
            ("link by UPN", LinkingInput { email_owner: owned_by(Some(ALICE)), ..base() }, link(ALICE)),
            (
                "link by xms_edov true",
                LinkingInput { provider_user_email: email(EdovTrue), email_owner: owned_by(Some(ALICE)), ..base() },
                link(ALICE),
            ),
            (
                "no link without xms_edov",
                LinkingInput { provider_user_email: email(EdovAbsent), email_owner: owned_by(Some(ALICE)), ..base() },
                Err(UserConflict),
            ),
            (
                "no link with xms_edov false, verification not required",
                LinkingInput {
                    provider_user_email: email(EdovFalse),
                    email_owner: owned_by(Some(ALICE)),
                    policy: relaxed.clone(),
                    ..base()
                },
                Err(UserConflict),
            ),
            (
                "no link when linking is off",
                LinkingInput { email_owner: owned_by(Some(ALICE)), policy: no_linking.clone(), ..base() },
                Err(UserConflict),
            ),
            (
                "linking off, sign-up off",
                LinkingInput {
                    email_owner: owned_by(Some(ALICE)),
                    policy: LinkingPolicy { allow_signup: false, ..no_linking.clone() },
                    ..base()
                },
                Err(UserConflict),
            ),
            // Connecting from the profile.
            ("connect", LinkingInput { signed_in_user: Some(ALICE), ..base() }, link(ALICE)),
            (
                "connect, own email",
                LinkingInput { signed_in_user: Some(ALICE), email_owner: owned_by(Some(ALICE)), ..base() },
                link(ALICE),
            ),
            (
                "connect, unassigned email",
                LinkingInput { signed_in_user: Some(ALICE), email_owner: owned_by(None), ..base() },
                link(ALICE),
            ),
            (
                "connect, email of another user",
                LinkingInput { signed_in_user: Some(ALICE), email_owner: owned_by(Some(BOB)), ..base() },
                Err(MultipleAccounts),
            ),
            (
                "connect without proof",
                LinkingInput { signed_in_user: Some(ALICE), provider_user_email: email(EdovAbsent), ..base() },
                Err(UserConflict),
            ),
            (
                "connect without an email",
                LinkingInput { signed_in_user: Some(ALICE), provider_user_email: None, ..base() },
                Err(UserConflict),
            ),
            (
                "connect when linking is off",
                LinkingInput { signed_in_user: Some(ALICE), policy: no_linking.clone(), ..base() },
                Err(UserConflict),
            ),
            (
                "connect an identity of another user",
                LinkingInput { signed_in_user: Some(BOB), existing_identity: identity(ALICE, Some(ADDRESS)), ..base() },
                Err(IdentityOwnedByAnother),
            ),
            (
                "connect an identity already ours",
                LinkingInput {
                    signed_in_user: Some(ALICE),
                    existing_identity: identity(ALICE, Some(ADDRESS)),
                    provider_user_email: email(EdovAbsent),
                    policy: no_linking.clone(),
                    ..base()
                },
                sign_in(EmailChange::Unchanged),
            ),
            // Sign-in.
            (
                "sign in",
                LinkingInput { existing_identity: identity(ALICE, Some(ADDRESS)), ..base() },
                sign_in(EmailChange::Unchanged),
            ),
            (
                "sign in, stored address in another case",
                LinkingInput { existing_identity: identity(ALICE, Some("Megan@Contoso.COM")), ..base() },
                sign_in(EmailChange::Unchanged),
            ),
            (
                "sign in without a provider email",
                LinkingInput { existing_identity: identity(ALICE, Some(ADDRESS)), provider_user_email: None, ..base() },
                sign_in(EmailChange::Unchanged),
            ),
            (
                "sign in needs neither linking nor sign-up",
                LinkingInput {
                    existing_identity: identity(ALICE, Some(ADDRESS)),
                    provider_user_email: email(EdovAbsent),
                    policy: LinkingPolicy { allow_signup: false, ..no_linking.clone() },
                    ..base()
                },
                sign_in(EmailChange::Unchanged),
            ),
            (
                "identity without an email gets one",
                LinkingInput { existing_identity: identity(ALICE, None), user_email_count: 1, ..base() },
                sign_in(EmailChange::CreateEmail),
            ),
            (
                "changed email, new address",
                LinkingInput {
                    existing_identity: identity(ALICE, Some("old@contoso.com")),
                    user_email_count: 4,
                    ..base()
                },
                sign_in(EmailChange::CreateEmail),
            ),
            (
                "changed email, address book full",
                LinkingInput {
                    existing_identity: identity(ALICE, Some("old@contoso.com")),
                    user_email_count: 5,
                    ..base()
                },
                Err(EmailMaxNum),
            ),
            (
                "changed email, unassigned row",
                LinkingInput {
                    existing_identity: identity(ALICE, Some("old@contoso.com")),
                    email_owner: owned_by(None),
                    ..base()
                },
                sign_in(EmailChange::ClaimUnassigned),
            ),
            (
                "changed email, own address",
                LinkingInput {
                    existing_identity: identity(ALICE, Some("old@contoso.com")),
                    email_owner: owned_by(Some(ALICE)),
                    user_email_count: 5,
                    ..base()
                },
                sign_in(EmailChange::RelinkOwn),
            ),
            (
                "changed email, another user's address",
                LinkingInput {
                    existing_identity: identity(ALICE, Some("old@contoso.com")),
                    email_owner: owned_by(Some(BOB)),
                    ..base()
                },
                Err(MultipleAccounts),
            ),
        ];
        for (name, input, expected) in cases {
            assert_eq!(decide(&input), expected, "{name}");
        }
    }

    #[test]
    fn hanko_codes() {
        use LinkingError::*;
        for (error, code) in [
            (UnverifiedEmail, "unverified_email"),
            (UserConflict, "user_conflict"),
            (IdentityOwnedByAnother, "user_conflict"),
            (MultipleAccounts, "multiple_accounts"),
            (EmailMaxNum, "email_maxnum"),
            (SignupDisabled, "signup_disabled"),
        ] {
            assert_eq!(error.hanko_code(), code);
            assert_eq!(error.code().as_str(), code);
        }
        assert_eq!(
            UserConflict.to_string(),
            "third party account linking for existing user with same email disallowed"
        );
    }

    fn evidence() -> impl Strategy<Value = EmailEvidence> {
        prop_oneof![Just(Upn), Just(EdovTrue), Just(EdovAbsent), Just(EdovFalse)]
    }

    fn provider_email() -> impl Strategy<Value = Option<ProviderEmail>> {
        let address = prop_oneof![Just("megan@contoso.com"), Just("old@contoso.com")];
        proptest::option::of((address, any::<bool>(), evidence()).prop_map(|(address, verified, evidence)| {
            ProviderEmail { address: Email::parse(address).unwrap(), verified, evidence }
        }))
    }

    fn user() -> impl Strategy<Value = Uuid> {
        (0u128..3).prop_map(Uuid::from_u128)
    }

    fn linking_input() -> impl Strategy<Value = LinkingInput> {
        let stored = proptest::option::of(prop_oneof![
            Just("megan@contoso.com"),
            Just("MEGAN@contoso.com"),
            Just("old@contoso.com")
        ]);
        let identity =
            proptest::option::of((user(), stored).prop_map(|(user_id, address)| ExistingIdentity {
                user_id,
                email_address: address.map(str::to_owned),
            }));
        let owner = proptest::option::of(proptest::option::of(user()).prop_map(|user_id| EmailOwner { user_id }));
        let policy = (any::<bool>(), any::<bool>(), any::<bool>(), 0usize..7).prop_map(
            |(allow_linking, allow_signup, require_verification, email_limit)| LinkingPolicy {
                allow_linking,
                allow_signup,
                require_verification,
                email_limit,
            },
        );
        (provider_email(), identity, owner, 0usize..8, proptest::option::of(user()), policy).prop_map(
            |(provider_user_email, existing_identity, email_owner, user_email_count, signed_in_user, policy)| {
                LinkingInput {
                    provider_user_email,
                    existing_identity,
                    email_owner,
                    user_email_count,
                    signed_in_user,
                    policy,
                }
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// The nOAuth guarantee, and verification on every path.
        #[test]
        fn no_link_without_permission_and_proof(input in linking_input()) {
            let result = decide(&input);
            let email = input.provider_user_email.as_ref();
            if let Ok(LinkingDecision::Link { .. }) = result {
                prop_assert!(input.policy.allow_linking);
                prop_assert!(email.is_some_and(|email| email.evidence.proves_ownership()));
            }
            if input.policy.require_verification && email.is_some_and(|email| !email.verified) {
                prop_assert_eq!(result, Err(LinkingError::UnverifiedEmail));
            }
        }

        /// Nobody lands in an account that is not theirs: a sign-in is the identity's user, a link the connecting
        /// user or the address's owner, a sign-up only when no one owns the identity or the address.
        #[test]
        fn decisions_target_the_right_user(input in linking_input()) {
            let identity_user = input.existing_identity.as_ref().map(|identity| identity.user_id);
            let owner = input.email_owner.as_ref().and_then(|owner| owner.user_id);
            match decide(&input) {
                Ok(LinkingDecision::SignIn { user_id, .. }) => {
                    prop_assert_eq!(Some(user_id), identity_user);
                    prop_assert!(input.signed_in_user.is_none_or(|user| user == user_id));
                }
                Ok(LinkingDecision::Link { user_id }) => {
                    prop_assert!(identity_user.is_none());
                    prop_assert_eq!(Some(user_id), input.signed_in_user.or(owner));
                    prop_assert!(owner.is_none_or(|owner| owner == user_id));
                }
                Ok(LinkingDecision::SignUp { claim_unassigned_email }) => {
                    prop_assert!(input.policy.allow_signup);
                    prop_assert!(identity_user.is_none() && input.signed_in_user.is_none() && owner.is_none());
                    prop_assert_eq!(claim_unassigned_email, input.email_owner.is_some());
                }
                Err(_) => {}
            }
        }
    }
}
