//! Users and what hangs off them: reading, searching, deleting, unlinking identities, removing secondary
//! emails, and the audit log about them.

use gatehouse_core::ids::{EmailId, IdentityId, UserId};
use gatehouse_store::{AuditLogEntry, AuditLogFilter, StoreError, UserRecord, UserSummary};

use crate::{App, audit::RequestMeta};

/// What [`Users::remove_email`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum EmailRemoval {
    Removed,
    /// The primary address stays: the sessions' `email` claim names it.
    Primary,
    /// The user has no such address.
    NotFound,
}

#[derive(Debug)]
pub struct Users<'a> {
    app: &'a App,
}

impl<'a> Users<'a> {
    pub(crate) fn new(app: &'a App) -> Self {
        Self { app }
    }

    pub async fn find(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        self.app.store().find_user(id).await
    }

    /// A page of users, newest first, optionally those with an email containing `email_part`; and the total.
    pub async fn search(
        &self,
        email_part: Option<&str>,
        limit: u32,
        offset: u64,
    ) -> Result<(Vec<UserSummary>, i64), StoreError> {
        self.app.store().search_users(email_part, limit, offset).await
    }

    /// Deletes the user with everything of theirs; `false` when there was no such user. `user_deleted` is
    /// audited when the user deleted their own account (admin deletions are audited with the admin's key).
    pub async fn delete(&self, id: UserId, by_self: Option<&RequestMeta>) -> Result<bool, StoreError> {
        let deleted = self.app.store().delete_user(id).await?;
        if let (true, Some(meta)) = (deleted, by_self) {
            self.app.audit().record("user_deleted", Some(id), None, meta).await;
        }
        Ok(deleted)
    }

    /// Removes one of the user's identities; `false` when the user has no such identity.
    pub async fn unlink_identity(&self, user_id: UserId, identity_id: IdentityId) -> Result<bool, StoreError> {
        self.app.store().unlink_identity(user_id, identity_id).await
    }

    /// Removes one of the user's addresses, saying why not when it was not removed.
    pub async fn remove_email(&self, user_id: UserId, email_id: EmailId) -> Result<EmailRemoval, StoreError> {
        // Deleting first and explaining afterwards: the store refuses a primary address in the same statement, so
        // no address can become primary between a check and the delete.
        if self.app.store().delete_secondary_email(user_id, email_id).await? {
            return Ok(EmailRemoval::Removed);
        }
        let user = self.find(user_id).await?;
        let email = user.as_ref().and_then(|user| user.emails.iter().find(|email| email.id == email_id));
        Ok(if email.is_some_and(|email| email.is_primary) { EmailRemoval::Primary } else { EmailRemoval::NotFound })
    }

    /// A page of the audit log matching `filter`, and how many rows match in all.
    pub async fn audit_log(&self, filter: &AuditLogFilter) -> Result<(Vec<AuditLogEntry>, i64), StoreError> {
        let store = self.app.store();
        Ok((store.list_audit_logs(filter).await?, store.count_audit_logs(filter).await?))
    }
}
