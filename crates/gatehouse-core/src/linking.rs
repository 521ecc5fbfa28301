//! What a provider sign-in does to accounts: sign in, link, or sign up — or which error. Hanko's rules, made
//! safe against nOAuth and account pre-hijacking: an existing account is only ever joined with a domain-level proof
//! that the provider's email belongs to the person signing in *and* a proof stored by the account's owner, an
//! unverified email never signs anyone in when verification is required, an address gives way to a stronger proof
//! of it ([`ProofStrength`]), and a known identity always reaches its own account.

use crate::{
    email::{EmailProof, ProofStrength},
    error::ThirdPartyErrorCode,
    ids::UserId,
    microsoft::claims::{EmailEvidence, ProviderEmail},
};

/// The identity already stored for this provider user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExistingIdentity {
    pub user_id: UserId,
    /// The email the identity is attached to, if any.
    pub email_address: Option<String>,
}

/// The stored row of the provider's email address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailOwner {
    /// `None`: the address is stored but belongs to nobody.
    pub user_id: Option<UserId>,
    /// The proof stored with the address.
    pub proof: Option<EmailProof>,
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
    pub signed_in_user: Option<UserId>,
    pub policy: LinkingPolicy,
}

/// What happens to the stored row of the provider's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressAction {
    /// Nothing to store or move (no address, or the identity already has it).
    Keep,
    /// A new address for the user.
    Create,
    /// The address is stored without an owner: give it to the user.
    ClaimUnassigned,
    /// The user already owns the address: attach the identity to it.
    AttachOwn,
    /// Another user holds the address with a weaker proof than this sign-in's (or none): the address moves to the
    /// user, and the holder keeps their account without it.
    TakeFromWeaker { holder: UserId },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkingDecision {
    SignIn { user_id: UserId, address: AddressAction },
    Link { user_id: UserId, address: AddressAction },
    SignUp { address: AddressAction },
}

impl LinkingDecision {
    /// What happens to the stored row of the provider's address, whichever the decision.
    pub fn address(&self) -> AddressAction {
        match self {
            Self::SignIn { address, .. } | Self::Link { address, .. } | Self::SignUp { address } => *address,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkingError {
    /// Hanko's text, then why the address is not proven.
    #[error("third party provider email must be verified: {}", .0.shortfall())]
    UnverifiedEmail(EmailEvidence),
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
    /// Hanko's code for the browser; `Display` is the `error_description` for it.
    pub fn code(&self) -> ThirdPartyErrorCode {
        match self {
            Self::UnverifiedEmail(_) => ThirdPartyErrorCode::UnverifiedEmail,
            Self::UserConflict | Self::IdentityOwnedByAnother => ThirdPartyErrorCode::UserConflict,
            Self::MultipleAccounts => ThirdPartyErrorCode::MultipleAccounts,
            Self::EmailMaxNum => ThirdPartyErrorCode::EmailMaxNum,
            Self::SignupDisabled => ThirdPartyErrorCode::SignupDisabled,
        }
    }
}

/// The decision for one provider sign-in, in this order:
///
/// 1. `require_verification` and an unproven provider email: [`LinkingError::UnverifiedEmail`], whatever the path
///    (Hanko only checks this on its legacy path).
/// 2. An identity exists: sign in as its user — unless a signed-in user connecting from the profile is someone
///    else ([`LinkingError::IdentityOwnedByAnother`]). A changed email is claimed, attached, taken from a weaker
///    holder or created ([`AddressAction`]), or left alone when another user holds it as strongly: the identity
///    still reaches its own account (Hanko refuses with `multiple_accounts`, which would lock the user out of their
///    account over an address). A full address book is [`LinkingError::EmailMaxNum`].
/// 3. A signed-in user connects from the profile: link to them, unless the address belongs to another user who
///    proved it as strongly ([`LinkingError::MultipleAccounts`]).
/// 4. The address belongs to a user who proved it: link to them.
/// 5. Otherwise, if the address is held with a weaker proof than this sign-in's (or none), sign up with it (the
///    holder loses it); if it is held as strongly, [`LinkingError::UserConflict`].
/// 6. Otherwise sign up, claiming an unassigned row of the address, if `allow_signup`.
///
/// Linking (3, 4) needs `allow_linking` *and* a domain-level proof by this sign-in ([`ProofStrength::Domain`]),
/// otherwise [`LinkingError::UserConflict`]: an email a tenant admin could set freely never opens an existing
/// account (nOAuth), and an account whose address nobody proved is never a link target (pre-hijacking).
pub fn decide(input: &LinkingInput) -> Result<LinkingDecision, LinkingError> {
    let policy = &input.policy;
    let email = input.provider_user_email.as_ref();
    if policy.require_verification
        && let Some(email) = email.filter(|email| email.proof().is_none())
    {
        return Err(LinkingError::UnverifiedEmail(email.evidence));
    }
    let strength = ProofStrength::of(email.and_then(ProviderEmail::proof));
    let owner = input.email_owner.as_ref();
    // The address is held by someone whose proof is weaker than this sign-in's.
    let weaker_holder = owner.filter(|owner| ProofStrength::of(owner.proof) < strength).and_then(|owner| owner.user_id);
    let add_address = |action: AddressAction| {
        if input.user_email_count >= policy.email_limit { Err(LinkingError::EmailMaxNum) } else { Ok(action) }
    };

    if let Some(identity) = &input.existing_identity {
        if input.signed_in_user.is_some_and(|user| user != identity.user_id) {
            return Err(LinkingError::IdentityOwnedByAnother);
        }
        let unchanged = |email: &ProviderEmail| {
            identity.email_address.as_deref().is_some_and(|stored| stored.to_lowercase() == email.address.as_str())
        };
        let address = match email {
            None => AddressAction::Keep,
            Some(email) if unchanged(email) => AddressAction::Keep,
            Some(_) => match owner.map(|owner| owner.user_id) {
                Some(None) => AddressAction::ClaimUnassigned,
                Some(Some(owner)) if owner == identity.user_id => AddressAction::AttachOwn,
                Some(Some(holder)) if weaker_holder == Some(holder) => {
                    add_address(AddressAction::TakeFromWeaker { holder })?
                }
                Some(Some(_)) => AddressAction::Keep,
                None => add_address(AddressAction::Create)?,
            },
        };
        return Ok(LinkingDecision::SignIn { user_id: identity.user_id, address });
    }

    let may_link = policy.allow_linking && strength == ProofStrength::Domain;
    let link = |user_id: UserId, address: AddressAction| {
        if may_link { Ok(LinkingDecision::Link { user_id, address }) } else { Err(LinkingError::UserConflict) }
    };
    if let Some(user_id) = input.signed_in_user {
        return match owner.and_then(|owner| owner.user_id) {
            Some(owner) if owner == user_id => link(user_id, AddressAction::AttachOwn),
            Some(holder) if weaker_holder == Some(holder) => {
                link(user_id, add_address(AddressAction::TakeFromWeaker { holder })?)
            }
            Some(_) => Err(LinkingError::MultipleAccounts),
            None => link(user_id, AddressAction::Keep),
        };
    }
    let sign_up = |address: AddressAction| {
        if policy.allow_signup { Ok(LinkingDecision::SignUp { address }) } else { Err(LinkingError::SignupDisabled) }
    };
    match owner {
        Some(EmailOwner { user_id: Some(owner), proof: Some(_) }) if may_link => link(*owner, AddressAction::AttachOwn),
        Some(EmailOwner { user_id: Some(holder), .. }) if weaker_holder == Some(*holder) => {
            sign_up(AddressAction::TakeFromWeaker { holder: *holder })
        }
        Some(EmailOwner { user_id: Some(_), .. }) => Err(LinkingError::UserConflict),
        Some(EmailOwner { user_id: None, .. }) => sign_up(AddressAction::ClaimUnassigned),
        None if email.is_some() => sign_up(AddressAction::Create),
        None => sign_up(AddressAction::Keep),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{
        email::{Email, EmailProof},
        microsoft::claims::EmailEvidence::{self, EdovAbsent, EdovFalse, EdovTrue, PersonalAccount, Upn},
    };

    const ALICE: UserId = UserId::from_uuid(uuid::Uuid::from_u128(1));
    const BOB: UserId = UserId::from_uuid(uuid::Uuid::from_u128(2));
    const ADDRESS: &str = "megan@contoso.com";

    fn email(evidence: EmailEvidence) -> Option<ProviderEmail> {
        Some(ProviderEmail { address: Email::parse(ADDRESS).unwrap(), evidence })
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

    fn identity(user_id: UserId, address: Option<&str>) -> Option<ExistingIdentity> {
        Some(ExistingIdentity { user_id, email_address: address.map(str::to_owned) })
    }

    /// The address is stored with a UPN's proof, owned by `user_id` (or nobody).
    fn owned_by(user_id: Option<UserId>) -> Option<EmailOwner> {
        Some(EmailOwner { user_id, proof: Some(EmailProof::Upn) })
    }

    /// The address is stored without a proof, held by `user_id`.
    fn held_unproven_by(user_id: UserId) -> Option<EmailOwner> {
        Some(EmailOwner { user_id: Some(user_id), proof: None })
    }

    /// The address is stored with a personal account's proof, held by `user_id`.
    fn held_by_personal_account(user_id: UserId) -> Option<EmailOwner> {
        Some(EmailOwner { user_id: Some(user_id), proof: Some(EmailProof::PersonalAccount) })
    }

    fn sign_in(address: AddressAction) -> Result<LinkingDecision, LinkingError> {
        Ok(LinkingDecision::SignIn { user_id: ALICE, address })
    }

    fn link(user_id: UserId, address: AddressAction) -> Result<LinkingDecision, LinkingError> {
        Ok(LinkingDecision::Link { user_id, address })
    }

    fn sign_up(address: AddressAction) -> Result<LinkingDecision, LinkingError> {
        Ok(LinkingDecision::SignUp { address })
    }

    #[test]
    fn every_branch() {
        use AddressAction::*;
        use LinkingError::*;
        let relaxed = LinkingPolicy { require_verification: false, ..policy() };
        let no_linking = LinkingPolicy { allow_linking: false, ..policy() };
        let closed = LinkingPolicy { allow_signup: false, ..policy() };
        let cases: Vec<(&str, LinkingInput, Result<LinkingDecision, LinkingError>)> = vec![
            // Sign-up.
            ("new user", base(), sign_up(Create)),
            (
                "new personal account",
                LinkingInput { provider_user_email: email(PersonalAccount), ..base() },
                sign_up(Create),
            ),
            (
                "new user, xms_edov true",
                LinkingInput { provider_user_email: email(EdovTrue), ..base() },
                sign_up(Create),
            ),
            (
                "new user claims an unassigned row",
                LinkingInput { email_owner: owned_by(None), ..base() },
                sign_up(ClaimUnassigned),
            ),
            ("new user without an email", LinkingInput { provider_user_email: None, ..base() }, sign_up(Keep)),
            ("sign-up disabled", LinkingInput { policy: closed.clone(), ..base() }, Err(SignupDisabled)),
            (
                "sign-up disabled, unassigned row",
                LinkingInput { email_owner: owned_by(None), policy: closed.clone(), ..base() },
                Err(SignupDisabled),
            ),
            // Verification, on every path.
            (
                "unproven sign-up (no xms_edov)",
                LinkingInput { provider_user_email: email(EdovAbsent), ..base() },
                Err(UnverifiedEmail(EdovAbsent)),
            ),
            (
                "unverified sign-up",
                LinkingInput { provider_user_email: email(EdovFalse), ..base() },
                Err(UnverifiedEmail(EdovFalse)),
            ),
            (
                "unverified sign-in",
                LinkingInput {
                    provider_user_email: email(EdovFalse),
                    existing_identity: identity(ALICE, Some(ADDRESS)),
                    ..base()
                },
                Err(UnverifiedEmail(EdovFalse)),
            ),
            (
                "unverified link by email",
                LinkingInput { provider_user_email: email(EdovFalse), email_owner: owned_by(Some(ALICE)), ..base() },
                Err(UnverifiedEmail(EdovFalse)),
            ),
            (
                "unverified connect",
                LinkingInput { provider_user_email: email(EdovAbsent), signed_in_user: Some(ALICE), ..base() },
                Err(UnverifiedEmail(EdovAbsent)),
            ),
            (
                "unverified sign-up, verification not required",
                LinkingInput { provider_user_email: email(EdovFalse), policy: relaxed.clone(), ..base() },
                sign_up(Create),
            ),
            (
                "unproven sign-up, verification not required",
                LinkingInput { provider_user_email: email(EdovAbsent), policy: relaxed.clone(), ..base() },
                sign_up(Create),
            ),
            (
                "unverified sign-in, verification not required",
                LinkingInput {
                    provider_user_email: email(EdovFalse),
                    existing_identity: identity(ALICE, Some(ADDRESS)),
                    policy: relaxed.clone(),
                    ..base()
                },
                sign_in(Keep),
            ),
            // Linking by email.
            ("link by UPN", LinkingInput { email_owner: owned_by(Some(ALICE)), ..base() }, link(ALICE, AttachOwn)),
            (
                "link by xms_edov true",
                LinkingInput { provider_user_email: email(EdovTrue), email_owner: owned_by(Some(ALICE)), ..base() },
                link(ALICE, AttachOwn),
            ),
            (
                "no link by a personal account: its address was verified once, maybe long ago",
                LinkingInput {
                    provider_user_email: email(PersonalAccount),
                    email_owner: owned_by(Some(ALICE)),
                    ..base()
                },
                Err(UserConflict),
            ),
            (
                "a domain proof links into an account a personal account proved",
                LinkingInput { email_owner: held_by_personal_account(BOB), ..base() },
                link(BOB, AttachOwn),
            ),
            (
                "no link without xms_edov, verification not required",
                LinkingInput {
                    provider_user_email: email(EdovAbsent),
                    email_owner: owned_by(Some(ALICE)),
                    policy: relaxed.clone(),
                    ..base()
                },
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
            // Pre-hijacking: an address someone holds without proof.
            (
                "a proven newcomer takes the address from its unproven holder",
                LinkingInput { email_owner: held_unproven_by(BOB), policy: no_linking.clone(), ..base() },
                sign_up(TakeFromWeaker { holder: BOB }),
            ),
            (
                "an unproven holder is never a link target",
                LinkingInput { email_owner: held_unproven_by(BOB), ..base() },
                sign_up(TakeFromWeaker { holder: BOB }),
            ),
            (
                "taking the address still needs sign-up",
                LinkingInput { email_owner: held_unproven_by(BOB), policy: closed.clone(), ..base() },
                Err(SignupDisabled),
            ),
            (
                "an unproven newcomer takes nothing from an unproven holder",
                LinkingInput {
                    provider_user_email: email(EdovAbsent),
                    email_owner: held_unproven_by(BOB),
                    policy: relaxed.clone(),
                    ..base()
                },
                Err(UserConflict),
            ),
            (
                "changed email held without proof by another user",
                LinkingInput {
                    existing_identity: identity(ALICE, Some("old@contoso.com")),
                    email_owner: held_unproven_by(BOB),
                    user_email_count: 1,
                    ..base()
                },
                sign_in(TakeFromWeaker { holder: BOB }),
            ),
            (
                "a domain proof takes the address from a personal account's holder, linking off",
                LinkingInput { email_owner: held_by_personal_account(BOB), policy: no_linking.clone(), ..base() },
                sign_up(TakeFromWeaker { holder: BOB }),
            ),
            (
                "a personal account takes the address from an unproven holder",
                LinkingInput {
                    provider_user_email: email(PersonalAccount),
                    email_owner: held_unproven_by(BOB),
                    ..base()
                },
                sign_up(TakeFromWeaker { holder: BOB }),
            ),
            (
                "a personal account never takes from a domain-proven holder",
                LinkingInput {
                    provider_user_email: email(PersonalAccount),
                    email_owner: owned_by(Some(BOB)),
                    ..base()
                },
                Err(UserConflict),
            ),
            (
                "a known identity takes its address back from a personal account",
                LinkingInput {
                    existing_identity: identity(ALICE, None),
                    email_owner: held_by_personal_account(BOB),
                    user_email_count: 0,
                    ..base()
                },
                sign_in(TakeFromWeaker { holder: BOB }),
            ),
            (
                "changed email held without proof, address book full",
                LinkingInput {
                    existing_identity: identity(ALICE, Some("old@contoso.com")),
                    email_owner: held_unproven_by(BOB),
                    user_email_count: 5,
                    ..base()
                },
                Err(EmailMaxNum),
            ),
            (
                "connect, address held without proof by another user",
                LinkingInput { signed_in_user: Some(ALICE), email_owner: held_unproven_by(BOB), ..base() },
                link(ALICE, TakeFromWeaker { holder: BOB }),
            ),
            (
                "own unproven address is still the user's own",
                LinkingInput { signed_in_user: Some(ALICE), email_owner: held_unproven_by(ALICE), ..base() },
                link(ALICE, AttachOwn),
            ),
            // Connecting from the profile.
            ("connect", LinkingInput { signed_in_user: Some(ALICE), ..base() }, link(ALICE, Keep)),
            (
                "connect, own email",
                LinkingInput { signed_in_user: Some(ALICE), email_owner: owned_by(Some(ALICE)), ..base() },
                link(ALICE, AttachOwn),
            ),
            (
                "connect, unassigned email",
                LinkingInput { signed_in_user: Some(ALICE), email_owner: owned_by(None), ..base() },
                link(ALICE, Keep),
            ),
            (
                "connect, email of another user",
                LinkingInput { signed_in_user: Some(ALICE), email_owner: owned_by(Some(BOB)), ..base() },
                Err(MultipleAccounts),
            ),
            (
                "connect without proof",
                LinkingInput {
                    signed_in_user: Some(ALICE),
                    provider_user_email: email(EdovAbsent),
                    policy: relaxed.clone(),
                    ..base()
                },
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
                    policy: LinkingPolicy { require_verification: false, ..no_linking.clone() },
                    ..base()
                },
                sign_in(Keep),
            ),
            // Sign-in.
            ("sign in", LinkingInput { existing_identity: identity(ALICE, Some(ADDRESS)), ..base() }, sign_in(Keep)),
            (
                "sign in, stored address in another case",
                LinkingInput { existing_identity: identity(ALICE, Some("Megan@Contoso.COM")), ..base() },
                sign_in(Keep),
            ),
            (
                "sign in without a provider email",
                LinkingInput { existing_identity: identity(ALICE, Some(ADDRESS)), provider_user_email: None, ..base() },
                sign_in(Keep),
            ),
            (
                "sign in needs neither linking nor sign-up",
                LinkingInput {
                    existing_identity: identity(ALICE, Some(ADDRESS)),
                    policy: LinkingPolicy { allow_signup: false, ..no_linking.clone() },
                    ..base()
                },
                sign_in(Keep),
            ),
            (
                "identity without an email gets one",
                LinkingInput { existing_identity: identity(ALICE, None), user_email_count: 1, ..base() },
                sign_in(Create),
            ),
            (
                "changed email, new address",
                LinkingInput {
                    existing_identity: identity(ALICE, Some("old@contoso.com")),
                    user_email_count: 4,
                    ..base()
                },
                sign_in(Create),
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
                sign_in(ClaimUnassigned),
            ),
            (
                "changed email, own address",
                LinkingInput {
                    existing_identity: identity(ALICE, Some("old@contoso.com")),
                    email_owner: owned_by(Some(ALICE)),
                    user_email_count: 5,
                    ..base()
                },
                sign_in(AttachOwn),
            ),
            (
                "changed email, another user's address proven as strongly: signed in, address left alone",
                LinkingInput {
                    existing_identity: identity(ALICE, Some("old@contoso.com")),
                    email_owner: owned_by(Some(BOB)),
                    ..base()
                },
                sign_in(Keep),
            ),
            (
                "a personal account's changed email held by a domain-proven user",
                LinkingInput {
                    provider_user_email: email(PersonalAccount),
                    existing_identity: identity(ALICE, None),
                    email_owner: owned_by(Some(BOB)),
                    ..base()
                },
                sign_in(Keep),
            ),
        ];
        for (name, input, expected) in cases {
            assert_eq!(decide(&input), expected, "{name}");
        }
    }

    #[test]
    fn an_unproven_refusal_names_the_claims_to_add() {
        let refusal = decide(&LinkingInput { provider_user_email: email(EdovAbsent), ..base() }).unwrap_err();
        assert_eq!(refusal.code().as_str(), "unverified_email");
        assert!(refusal.to_string().starts_with("third party provider email must be verified"), "Hanko's text first");
        assert!(refusal.to_string().contains("upn, email and xms_edov"), "{refusal}");
    }

    fn evidence() -> impl Strategy<Value = EmailEvidence> {
        prop_oneof![Just(Upn), Just(EdovTrue), Just(PersonalAccount), Just(EdovAbsent), Just(EdovFalse)]
    }

    fn provider_email() -> impl Strategy<Value = Option<ProviderEmail>> {
        let address = prop_oneof![Just("megan@contoso.com"), Just("old@contoso.com")];
        proptest::option::of(
            (address, evidence())
                .prop_map(|(address, evidence)| ProviderEmail { address: Email::parse(address).unwrap(), evidence }),
        )
    }

    fn user() -> impl Strategy<Value = UserId> {
        (0u128..3).prop_map(|n| UserId::from_uuid(uuid::Uuid::from_u128(n)))
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
        let proof = proptest::option::of(prop_oneof![
            Just(EmailProof::Upn),
            Just(EmailProof::DomainOwnerVerified),
            Just(EmailProof::PersonalAccount),
            Just(EmailProof::Hanko)
        ]);
        let owner = proptest::option::of(
            (proptest::option::of(user()), proof).prop_map(|(user_id, proof)| EmailOwner { user_id, proof }),
        );
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

        /// The nOAuth and pre-hijacking guarantees, and verification on every path.
        #[test]
        fn no_link_without_permission_and_proof(input in linking_input()) {
            let result = decide(&input);
            let email = input.provider_user_email.as_ref();
            let strength = ProofStrength::of(email.and_then(ProviderEmail::proof));
            if let Ok(LinkingDecision::Link { user_id, .. }) = result {
                prop_assert!(input.policy.allow_linking);
                prop_assert_eq!(strength, ProofStrength::Domain);
                // Without a signed-in user, only an owner who proved the address is joined.
                if input.signed_in_user.is_none() {
                    let owner = input.email_owner.as_ref();
                    prop_assert!(owner.is_some_and(|o| o.proof.is_some() && o.user_id == Some(user_id)));
                }
            }
            if let Ok(decision) = &result
                && let AddressAction::TakeFromWeaker { holder } = decision.address()
            {
                let owner = input.email_owner.as_ref();
                prop_assert!(owner.is_some_and(|o| ProofStrength::of(o.proof) < strength && o.user_id == Some(holder)));
            }
            if input.policy.require_verification && let Some(email) = email.filter(|e| e.proof().is_none()) {
                prop_assert_eq!(result, Err(LinkingError::UnverifiedEmail(email.evidence)));
            }
        }

        /// An address never keeps out the person who proves it more strongly than its holder.
        #[test]
        fn a_weaker_holder_never_blocks_a_stronger_proof(input in linking_input()) {
            let strength = ProofStrength::of(input.provider_user_email.as_ref().and_then(ProviderEmail::proof));
            let owner = input.email_owner.as_ref();
            let weaker = owner.is_some_and(|o| o.user_id.is_some() && ProofStrength::of(o.proof) < strength);
            let newcomer = input.existing_identity.is_none() && input.signed_in_user.is_none();
            if weaker && newcomer && input.policy.allow_signup {
                let result = decide(&input);
                let proceeds = matches!(result, Ok(LinkingDecision::SignUp { .. } | LinkingDecision::Link { .. }));
                prop_assert!(proceeds, "{:?} gave {:?}", input, result);
            }
        }

        /// A known identity always reaches its own account: an address is never a reason to lock a user out.
        #[test]
        fn a_known_identity_is_never_locked_out_over_an_address(input in linking_input()) {
            if input.existing_identity.is_some() {
                let result = decide(&input);
                let allowed = matches!(
                    result,
                    Ok(LinkingDecision::SignIn { .. })
                        | Err(
                            LinkingError::IdentityOwnedByAnother
                                | LinkingError::UnverifiedEmail(_)
                                | LinkingError::EmailMaxNum
                        )
                );
                prop_assert!(allowed, "{:?}", result);
            }
        }

        /// Nobody lands in an account that is not theirs: a sign-in is the identity's user, a link the connecting
        /// user or the address's owner, a sign-up only when no one owns the identity and no one proved the address
        /// as strongly.
        #[test]
        fn decisions_target_the_right_user(input in linking_input()) {
            let identity_user = input.existing_identity.as_ref().map(|identity| identity.user_id);
            let owner = input.email_owner.as_ref().and_then(|owner| owner.user_id);
            let strength = ProofStrength::of(input.provider_user_email.as_ref().and_then(ProviderEmail::proof));
            let owner_weaker = input.email_owner.as_ref().is_some_and(|o| ProofStrength::of(o.proof) < strength);
            match decide(&input) {
                Ok(LinkingDecision::SignIn { user_id, .. }) => {
                    prop_assert_eq!(Some(user_id), identity_user);
                    prop_assert!(input.signed_in_user.is_none_or(|user| user == user_id));
                }
                Ok(LinkingDecision::Link { user_id, address }) => {
                    prop_assert!(identity_user.is_none());
                    prop_assert_eq!(Some(user_id), input.signed_in_user.or(owner));
                    let taken = matches!(address, AddressAction::TakeFromWeaker { .. });
                    prop_assert!(owner.is_none_or(|owner| owner == user_id || (taken && owner_weaker)));
                }
                Ok(LinkingDecision::SignUp { address }) => {
                    prop_assert!(input.policy.allow_signup);
                    prop_assert!(identity_user.is_none() && input.signed_in_user.is_none());
                    prop_assert!(owner.is_none() || owner_weaker);
                    let expected = match (&input.email_owner, &input.provider_user_email) {
                        (Some(EmailOwner { user_id: None, .. }), _) => AddressAction::ClaimUnassigned,
                        (Some(EmailOwner { user_id: Some(holder), .. }), _) => {
                            AddressAction::TakeFromWeaker { holder: *holder }
                        }
                        (None, Some(_)) => AddressAction::Create,
                        (None, None) => AddressAction::Keep,
                    };
                    prop_assert_eq!(address, expected);
                }
                Err(_) => {}
            }
        }
    }
}
