//! Moving users from a Hanko database: which of Hanko's rows become Gatehouse's, and why the others do not. The
//! rows come in as the store read them; the plan goes out to be written one user at a time. Ids and times are kept
//! as Hanko recorded them.

use std::{collections::HashMap, fmt};

use uuid::Uuid;

use crate::{
    clock::Timestamp,
    email::{Email, EmailProof},
    ids::{EmailId, IdentityId, UserId},
};

/// Hanko's provider id for Microsoft (`third_party.providers.microsoft`), which is Gatehouse's too.
const MICROSOFT: &str = "microsoft";

/// A row of Hanko's `users`; the profile columns are `None` in Hanko versions without them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HankoUser {
    pub id: UserId,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub picture: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A row of Hanko's `emails`, with whether `primary_emails` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HankoEmail {
    pub id: EmailId,
    /// `None`: an address Hanko keeps for nobody (left from an unfinished sign-up).
    pub user_id: Option<UserId>,
    pub address: String,
    pub verified: bool,
    pub is_primary: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A row of Hanko's `identities`, whichever version wrote it: `provider` is the provider's slug (`provider_name`
/// before Hanko's 2025 rename, `provider_id` after) and `subject` the provider's user id (`provider_id` before,
/// `provider_user_id` after).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HankoIdentity {
    pub id: IdentityId,
    pub provider: String,
    pub subject: String,
    /// `None`: connected from a profile but never confirmed.
    pub user_id: Option<UserId>,
    pub email_id: Option<EmailId>,
    /// The provider's claims as JSON.
    pub data: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Everything read from one Hanko database.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HankoData {
    pub users: Vec<HankoUser>,
    pub emails: Vec<HankoEmail>,
    pub identities: Vec<HankoIdentity>,
    /// Users with a passkey or a password, which do not carry over.
    pub users_with_credentials: usize,
}

/// A user as Gatehouse will store them: Hanko's row as it is (same id, times and profile), with the emails and
/// identities that come along.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedUser {
    pub user: HankoUser,
    pub emails: Vec<ImportedEmail>,
    /// Microsoft identities only, keyed on Microsoft's `sub` as in Hanko; `email_id` only if that email came too.
    pub identities: Vec<HankoIdentity>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedEmail {
    pub id: EmailId,
    pub address: Email,
    pub proof: Option<EmailProof>,
    pub is_primary: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A Hanko row that is not carried over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The Hanko row's id (`emails.id` or `identities.id`): the report names rows of either table.
    pub id: Uuid,
    pub reason: SkipReason,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// An email of no user.
    EmailOfNobody,
    /// Gatehouse's stricter address rules refuse it.
    InvalidAddress,
    /// Gatehouse signs in with Microsoft only.
    OtherProvider(String),
    /// An identity of no user, or of a user not in the database.
    IdentityOfNobody,
    /// An identity without the provider's user id: nothing could ever sign in to it.
    NoSubject,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmailOfNobody => f.write_str("email of no user"),
            Self::InvalidAddress => f.write_str("email address Gatehouse does not accept"),
            Self::OtherProvider(provider) => {
                write!(f, "identity of provider {provider:?} (Gatehouse has Microsoft only)")
            }
            Self::IdentityOfNobody => f.write_str("identity of no user (a profile connection never confirmed)"),
            Self::NoSubject => f.write_str("identity without the provider's user id"),
        }
    }
}

/// What to write, and what is left behind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportPlan {
    pub users: Vec<ImportedUser>,
    pub skipped: Vec<Skipped>,
}

/// Maps Hanko's rows to Gatehouse's. An address Hanko verified keeps a proof that says so ([`EmailProof::Hanko`]);
/// an unverified one stays unproven. Users are kept whatever they signed in with; only Microsoft identities are.
pub fn plan(data: &HankoData) -> ImportPlan {
    let mut users: Vec<ImportedUser> = data
        .users
        .iter()
        .map(|user| ImportedUser { user: user.clone(), emails: Vec::new(), identities: Vec::new() })
        .collect();
    let index: HashMap<UserId, usize> = users.iter().enumerate().map(|(at, imported)| (imported.user.id, at)).collect();
    let mut skipped = Vec::new();
    for email in &data.emails {
        let Some(&at) = email.user_id.as_ref().and_then(|id| index.get(id)) else {
            skipped.push(Skipped { id: email.id.as_uuid(), reason: SkipReason::EmailOfNobody });
            continue;
        };
        let Ok(address) = Email::parse(&email.address) else {
            skipped.push(Skipped { id: email.id.as_uuid(), reason: SkipReason::InvalidAddress });
            continue;
        };
        users[at].emails.push(ImportedEmail {
            id: email.id,
            address,
            proof: email.verified.then_some(EmailProof::Hanko),
            is_primary: email.is_primary,
            created_at: email.created_at,
            updated_at: email.updated_at,
        });
    }
    for identity in &data.identities {
        let found = if !identity.provider.eq_ignore_ascii_case(MICROSOFT) {
            Err(SkipReason::OtherProvider(identity.provider.clone()))
        } else if identity.subject.trim().is_empty() {
            Err(SkipReason::NoSubject)
        } else {
            identity.user_id.and_then(|id| index.get(&id).copied()).ok_or(SkipReason::IdentityOfNobody)
        };
        match found {
            Ok(at) => {
                let user = &mut users[at];
                // An identity keeps its email only if that email came along with the same user.
                let email_id = identity.email_id.filter(|id| user.emails.iter().any(|email| email.id == *id));
                user.identities.push(HankoIdentity { email_id, ..identity.clone() });
            }
            Err(reason) => skipped.push(Skipped { id: identity.id.as_uuid(), reason }),
        }
    }
    ImportPlan { users, skipped }
}

/// What happened to one planned user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserOutcome {
    Imported,
    /// A user with this id is already in Gatehouse: an earlier import brought them. Nothing is changed.
    AlreadyPresent,
    /// Nothing of the user was written: one of their addresses or identities belongs to another Gatehouse user.
    Conflict(String),
}

/// What an import did, for the operator. Ids only: no addresses, claims or connection strings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub users_imported: usize,
    pub users_already_present: usize,
    pub emails_imported: usize,
    pub verified_emails_imported: usize,
    pub identities_imported: usize,
    /// Imported users who have no Microsoft identity (they signed in to Hanko some other way).
    pub users_without_microsoft: usize,
    pub users_with_credentials: usize,
    pub conflicts: Vec<(UserId, String)>,
    pub skipped: Vec<Skipped>,
}

impl ImportReport {
    /// Starts a report on `plan`; [`Self::record`] adds each user's outcome.
    pub fn new(plan: &ImportPlan, data: &HankoData) -> Self {
        Self { skipped: plan.skipped.clone(), users_with_credentials: data.users_with_credentials, ..Self::default() }
    }

    pub fn record(&mut self, imported: &ImportedUser, outcome: UserOutcome) {
        match outcome {
            UserOutcome::Imported => {
                self.users_imported += 1;
                self.emails_imported += imported.emails.len();
                self.verified_emails_imported += imported.emails.iter().filter(|email| email.proof.is_some()).count();
                self.identities_imported += imported.identities.len();
                self.users_without_microsoft += usize::from(imported.identities.is_empty());
            }
            UserOutcome::AlreadyPresent => self.users_already_present += 1,
            UserOutcome::Conflict(what) => self.conflicts.push((imported.user.id, what)),
        }
    }
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "users imported: {}", self.users_imported)?;
        writeln!(f, "users already in Gatehouse (left as they are): {}", self.users_already_present)?;
        writeln!(f, "users not imported (conflict): {}", self.conflicts.len())?;
        writeln!(f, "emails imported: {} ({} verified)", self.emails_imported, self.verified_emails_imported)?;
        writeln!(f, "Microsoft identities imported: {}", self.identities_imported)?;
        writeln!(f, "imported users without a Microsoft identity: {}", self.users_without_microsoft)?;
        writeln!(f, "users with passkeys or passwords (these do not carry over): {}", self.users_with_credentials)?;
        writeln!(f, "rows skipped: {}", self.skipped.len())?;
        for (user, what) in &self.conflicts {
            writeln!(f, "  user {user}: not imported: {what}")?;
        }
        for skipped in &self.skipped {
            writeln!(f, "  {}: {}", skipped.id, skipped.reason)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id<Id: From<Uuid>>(n: u128) -> Id {
        Uuid::from_u128(n).into()
    }

    fn user(n: u128) -> HankoUser {
        HankoUser {
            id: id(n),
            name: Some("Megan Bowen".into()),
            given_name: None,
            family_name: None,
            picture: None,
            created_at: Timestamp::from_millis(1_000),
            updated_at: Timestamp::from_millis(2_000),
        }
    }

    fn email(n: u128, user: Option<u128>, address: &str, verified: bool, is_primary: bool) -> HankoEmail {
        HankoEmail {
            id: id(n),
            user_id: user.map(id),
            address: address.into(),
            verified,
            is_primary,
            created_at: Timestamp::from_millis(3_000),
            updated_at: Timestamp::from_millis(4_000),
        }
    }

    fn identity(n: u128, provider: &str, subject: &str, user: Option<u128>, email: Option<u128>) -> HankoIdentity {
        HankoIdentity {
            id: id(n),
            provider: provider.into(),
            subject: subject.into(),
            user_id: user.map(id),
            email_id: email.map(id),
            data: Some("{\"sub\":\"s\"}".into()),
            created_at: Timestamp::from_millis(5_000),
            updated_at: Timestamp::from_millis(6_000),
        }
    }

    #[test]
    fn a_verified_email_is_proven_by_hanko_and_an_unverified_one_is_not() {
        let data = HankoData {
            users: vec![user(1)],
            emails: vec![
                email(10, Some(1), "Megan@Contoso.com", true, true),
                email(11, Some(1), "m@b.example", false, false),
            ],
            ..HankoData::default()
        };
        let plan = plan(&data);
        let emails = &plan.users[0].emails;
        assert_eq!(emails[0].address.as_str(), "megan@contoso.com");
        assert_eq!((emails[0].proof, emails[0].is_primary), (Some(EmailProof::Hanko), true));
        assert_eq!((emails[1].proof, emails[1].is_primary), (None, false));
        assert_eq!(
            (emails[0].created_at, emails[0].updated_at),
            (Timestamp::from_millis(3_000), Timestamp::from_millis(4_000))
        );
        assert!(plan.skipped.is_empty());
    }

    #[test]
    fn users_keep_their_ids_times_and_profile() {
        let plan = plan(&HankoData { users: vec![user(1)], ..HankoData::default() });
        assert_eq!(plan.users[0].user, user(1));
    }

    #[test]
    fn only_microsoft_identities_of_known_users_with_a_subject_come_along() {
        let data = HankoData {
            users: vec![user(1)],
            emails: vec![email(10, Some(1), "megan@contoso.com", true, true)],
            identities: vec![
                identity(20, "microsoft", "sub-megan", Some(1), Some(10)),
                identity(21, "google", "g-1", Some(1), Some(10)),
                identity(22, "custom_acme", "a-1", Some(1), None),
                identity(23, "microsoft", "sub-pending", None, None),
                identity(24, "microsoft", "sub-gone", Some(9), None),
                identity(25, "microsoft", " ", Some(1), None),
            ],
            ..HankoData::default()
        };
        let plan = plan(&data);
        let identities = &plan.users[0].identities;
        assert_eq!(identities.len(), 1);
        assert_eq!((identities[0].id, identities[0].subject.as_str()), (id(20), "sub-megan"));
        assert_eq!(identities[0].email_id, Some(id(10)));
        let reasons: Vec<_> = plan.skipped.iter().map(|skipped| (skipped.id, skipped.reason.clone())).collect();
        assert_eq!(
            reasons,
            [
                (id(21), SkipReason::OtherProvider("google".into())),
                (id(22), SkipReason::OtherProvider("custom_acme".into())),
                (id(23), SkipReason::IdentityOfNobody),
                (id(24), SkipReason::IdentityOfNobody),
                (id(25), SkipReason::NoSubject),
            ]
        );
    }

    #[test]
    fn emails_of_nobody_and_invalid_addresses_are_skipped_and_identities_let_go_of_them() {
        let data = HankoData {
            users: vec![user(1)],
            emails: vec![
                email(10, None, "x@contoso.com", true, false),
                email(11, Some(1), "not an address", true, true),
            ],
            identities: vec![identity(20, "Microsoft", "sub", Some(1), Some(11))],
            ..HankoData::default()
        };
        let plan = plan(&data);
        assert!(plan.users[0].emails.is_empty());
        assert_eq!(plan.users[0].identities[0].email_id, None, "the identity's email was not imported");
        let reasons: Vec<_> = plan.skipped.iter().map(|skipped| (skipped.id, skipped.reason.clone())).collect();
        assert_eq!(reasons, [(id(10), SkipReason::EmailOfNobody), (id(11), SkipReason::InvalidAddress)]);
    }

    #[test]
    fn the_report_counts_each_outcome_and_names_ids_only() {
        let data = HankoData {
            users: vec![user(1), user(2), user(3)],
            emails: vec![
                email(10, Some(1), "megan@contoso.com", true, true),
                email(11, Some(1), "m@b.example", false, false),
            ],
            identities: vec![
                identity(20, "microsoft", "secret-looking-sub", Some(1), Some(10)),
                identity(21, "github", "g", Some(2), None),
            ],
            users_with_credentials: 2,
        };
        let plan = plan(&data);
        let mut report = ImportReport::new(&plan, &data);
        report.record(&plan.users[0], UserOutcome::Imported);
        report.record(&plan.users[1], UserOutcome::AlreadyPresent);
        report.record(&plan.users[2], UserOutcome::Conflict("email address".into()));
        assert_eq!(
            (
                report.users_imported,
                report.users_already_present,
                report.emails_imported,
                report.verified_emails_imported
            ),
            (1, 1, 2, 1)
        );
        assert_eq!(
            (report.identities_imported, report.users_without_microsoft, report.users_with_credentials),
            (1, 0, 2)
        );
        let text = report.to_string();
        assert!(text.contains(&format!("user {}: not imported: email address", id::<UserId>(3))), "{text}");
        assert!(text.contains(&format!("{}: identity of provider \"github\"", id::<Uuid>(21))), "{text}");
        assert!(!text.contains("megan@contoso.com") && !text.contains("secret-looking-sub"), "{text}");
    }
}
