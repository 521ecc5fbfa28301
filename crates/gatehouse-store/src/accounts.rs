//! Signing in with a provider: read what is known about the provider user, let the caller's policy decide, apply
//! the decision, and write the one-time token and audit row that record it — all in one transaction, so that no
//! failure or race leaves a half-made user or an unrecorded sign-in.

use gatehouse_core::{
    clock::Timestamp,
    email::{EmailProof, ProofStrength},
    ids::{EmailId, IdentityId, UserId},
    linking::{AddressAction, EmailOwner, ExistingIdentity, LinkingDecision},
};
use sqlx::{Any, Row, Transaction};

use crate::{
    AccountOutcome, AccountSnapshot, ProviderAccount, ProviderProfile, Result, SignInRecords, Store, StoreError,
    audit::insert_audit_log, conflict, parse_uuid, proof, tokens::insert_token,
};

/// Concurrent first sign-ins of one provider user race to create it; the losers retry and find it.
const ATTEMPTS: usize = 4;

#[derive(PartialEq, Eq)]
struct Found {
    identity: Option<(IdentityId, ExistingIdentity)>,
    email: Option<(EmailId, EmailOwner)>,
}

impl Store {
    /// Signs a provider user in, links them, or signs them up, as `decide` says given what the store knows.
    /// `connect_user` is the signed-in user when the provider is being connected from a profile. `records` gives
    /// the rows that record the outcome, written in the same transaction.
    /// The outer `Result` is the store's; the inner one carries the policy's refusal.
    pub async fn sign_in_with_provider<E>(
        &self,
        profile: &ProviderProfile,
        connect_user: Option<UserId>,
        now: Timestamp,
        decide: impl Fn(&AccountSnapshot) -> std::result::Result<LinkingDecision, E>,
        records: impl Fn(&ProviderAccount) -> SignInRecords,
    ) -> Result<std::result::Result<ProviderAccount, E>> {
        let mut attempt = 1;
        loop {
            match self.try_sign_in_with_provider(profile, connect_user, now, &decide, &records).await {
                Err(StoreError::Conflict(what)) if attempt < ATTEMPTS => {
                    tracing::debug!(what, attempt, "concurrent sign-in of the same provider user; retrying");
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn try_sign_in_with_provider<E>(
        &self,
        profile: &ProviderProfile,
        connect_user: Option<UserId>,
        now: Timestamp,
        decide: &impl Fn(&AccountSnapshot) -> std::result::Result<LinkingDecision, E>,
        records: &impl Fn(&ProviderAccount) -> SignInRecords,
    ) -> Result<std::result::Result<ProviderAccount, E>> {
        writing!(self, |connection| {
            let mut tx = sqlx::Connection::begin(connection).await?;
            let found = find(&mut tx, profile).await?;
            let subject_user = found
                .identity
                .as_ref()
                .map(|(_, identity)| identity.user_id)
                .or(connect_user)
                .or_else(|| found.email.as_ref().and_then(|(_, owner)| owner.user_id));
            let user_email_count = match subject_user {
                Some(user_id) => {
                    self.lock_user(&mut tx, user_id).await?;
                    // Under PostgreSQL's read committed, a concurrent sign-in may have moved the address or the
                    // identity between the read and the lock: act only on what holds once the user is locked.
                    if self.backend() == crate::Backend::Postgres && find(&mut tx, profile).await? != found {
                        return Err(StoreError::Conflict("provider account"));
                    }
                    let row = sqlx::query("SELECT COUNT(*) AS n FROM emails WHERE user_id = $1")
                        .bind(user_id.to_string())
                        .fetch_one(&mut *tx)
                        .await?;
                    usize::try_from(row.try_get::<i64, _>("n")?).unwrap_or(usize::MAX)
                }
                None => 0,
            };
            let snapshot = AccountSnapshot {
                existing_identity: found.identity.as_ref().map(|(_, identity)| identity.clone()),
                email_owner: found.email.as_ref().map(|(_, owner)| owner.clone()),
                user_email_count,
            };
            let decision = match decide(&snapshot) {
                Ok(decision) => decision,
                Err(refusal) => return Ok(Err(refusal)),
            };
            let account = apply(&mut tx, profile, &found, decision, now).await?;
            let SignInRecords { token, audit } = records(&account);
            insert_token(&mut *tx, &token).await?;
            for entry in &audit {
                insert_audit_log(&mut *tx, entry).await?;
            }
            tx.commit().await.map_err(conflict("provider account"))?;
            Ok(Ok(account))
        })
    }
}

/// Reads the identity and the email owner in one statement: under PostgreSQL's read committed, two statements
/// could straddle a concurrent sign-up's commit and see its email without its identity (a false `user_conflict`).
async fn find(tx: &mut Transaction<'_, Any>, profile: &ProviderProfile) -> Result<Found> {
    let row = sqlx::query(
        "SELECT i.id AS identity_id, i.user_id AS identity_user_id, ie.address AS identity_address,
                e.id AS email_id, e.user_id AS email_user_id, e.evidence AS email_evidence
         FROM (SELECT 1 AS one) AS anchor
         LEFT JOIN identities i
                ON i.provider_id = $1 AND i.provider_user_id = $2 AND i.user_id IS NOT NULL
         LEFT JOIN emails ie ON ie.id = i.email_id
         LEFT JOIN emails e ON lower(e.address) = $3",
    )
    .bind(&profile.provider_id)
    .bind(&profile.provider_user_id)
    .bind(profile.email.as_ref().map(|email| email.address.as_str().to_owned()))
    .fetch_one(&mut **tx)
    .await?;
    let column = |name: &str| -> Result<Option<String>> { Ok(row.try_get::<Option<String>, _>(name)?) };
    let identity = match (column("identity_id")?, column("identity_user_id")?) {
        (Some(id), Some(user_id)) => Some((
            parse_uuid(&id)?,
            ExistingIdentity { user_id: parse_uuid(&user_id)?, email_address: row.try_get("identity_address")? },
        )),
        _ => None,
    };
    let email = column("email_id")?.map(|id| {
        let user_id = column("email_user_id")?.as_deref().map(parse_uuid).transpose()?;
        Ok::<_, StoreError>((parse_uuid(&id)?, EmailOwner { user_id, proof: proof(&row, "email_evidence")? }))
    });
    Ok(Found { identity, email: email.transpose()? })
}

async fn apply(
    tx: &mut Transaction<'_, Any>,
    profile: &ProviderProfile,
    found: &Found,
    decision: LinkingDecision,
    now: Timestamp,
) -> Result<ProviderAccount> {
    let account = match decision {
        LinkingDecision::SignIn { user_id, address } => {
            let (identity_id, _) =
                found.identity.as_ref().ok_or(StoreError::Corrupt("sign-in without identity".into()))?;
            let email_id = settle_address(tx, profile, found, address, user_id, now).await?;
            sqlx::query(
                "UPDATE identities SET data = $2, updated_at = $3, email_id = COALESCE($4, email_id) WHERE id = $1",
            )
            .bind(identity_id.to_string())
            .bind(&profile.claims_json)
            .bind(now.as_millis())
            .bind(email_id.map(|id| id.to_string()))
            .execute(&mut **tx)
            .await?;
            sync_profile(tx, profile, user_id, now).await?;
            ProviderAccount {
                user_id,
                identity_id: *identity_id,
                outcome: AccountOutcome::SignedIn,
                displaced_holder: None,
            }
        }
        LinkingDecision::Link { user_id, address } => {
            let email_id = settle_address(tx, profile, found, address, user_id, now).await?;
            let identity_id = insert_identity(tx, profile, user_id, email_id, now).await?;
            sync_profile(tx, profile, user_id, now).await?;
            ProviderAccount { user_id, identity_id, outcome: AccountOutcome::Linked, displaced_holder: None }
        }
        LinkingDecision::SignUp { address } => {
            let user_id = UserId::generate();
            write_profile(
                tx,
                "INSERT INTO users (id, name, given_name, family_name, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $5)",
                profile,
                user_id,
                now,
            )
            .await
            .map_err(conflict("user"))?;
            let email_id = settle_address(tx, profile, found, address, user_id, now).await?;
            if let Some(email_id) = email_id {
                sqlx::query(
                    "INSERT INTO primary_emails (id, email_id, user_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
                )
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(email_id.to_string())
                .bind(user_id.to_string())
                .bind(now.as_millis())
                .execute(&mut **tx)
                .await
                .map_err(conflict("primary email"))?;
            }
            let identity_id = insert_identity(tx, profile, user_id, email_id, now).await?;
            ProviderAccount { user_id, identity_id, outcome: AccountOutcome::SignedUp, displaced_holder: None }
        }
    };
    let displaced_holder = match decision.address() {
        AddressAction::TakeFromWeaker { holder } => Some(holder),
        _ => None,
    };
    Ok(ProviderAccount { displaced_holder, ..account })
}

/// Does what `action` says with the stored row of the provider's address for `user_id`; the row the identity is to
/// be attached to, if any. A proof the provider gives for an address the user already holds is recorded too.
async fn settle_address(
    tx: &mut Transaction<'_, Any>,
    profile: &ProviderProfile,
    found: &Found,
    action: AddressAction,
    user_id: UserId,
    now: Timestamp,
) -> Result<Option<EmailId>> {
    let proof = profile.email.as_ref().and_then(|email| email.proof);
    let found_row = || found.email.as_ref().map(|(id, _)| *id).ok_or(StoreError::Corrupt("no email row".into()));
    // The user already holds the provider's address, and the provider proves it more strongly now.
    let proves_own_row = |(_, owner): &(EmailId, EmailOwner)| {
        owner.user_id == Some(user_id) && ProofStrength::of(owner.proof) < ProofStrength::of(proof)
    };
    if let (Some(proof), Some((email_id, _))) = (proof, found.email.as_ref().filter(|row| proves_own_row(row))) {
        record_proof(tx, *email_id, proof, now).await?;
    }
    match action {
        AddressAction::Keep => Ok(None),
        AddressAction::AttachOwn => Ok(Some(found_row()?)),
        AddressAction::Create => Ok(Some(insert_email(tx, profile, user_id, now).await?)),
        AddressAction::ClaimUnassigned => {
            let email_id = found_row()?;
            move_email(tx, email_id, None, user_id, proof, now).await?;
            Ok(Some(email_id))
        }
        AddressAction::TakeFromWeaker { holder } => {
            let email_id = found_row()?;
            let held_with = found.email.as_ref().and_then(|(_, owner)| owner.proof);
            move_email(tx, email_id, Some((holder, held_with)), user_id, proof, now).await?;
            // The holder keeps their account, without the address: not as primary, not under their identities.
            sqlx::query("DELETE FROM primary_emails WHERE email_id = $1")
                .bind(email_id.to_string())
                .execute(&mut **tx)
                .await?;
            sqlx::query("UPDATE identities SET email_id = NULL, updated_at = $2 WHERE email_id = $1")
                .bind(email_id.to_string())
                .bind(now.as_millis())
                .execute(&mut **tx)
                .await?;
            Ok(Some(email_id))
        }
    }
}

async fn record_proof(
    tx: &mut Transaction<'_, Any>,
    email_id: EmailId,
    proof: EmailProof,
    now: Timestamp,
) -> Result<()> {
    sqlx::query("UPDATE emails SET evidence = $2, updated_at = $3 WHERE id = $1")
        .bind(email_id.to_string())
        .bind(proof.as_str())
        .bind(now.as_millis())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Gives the address row to `user_id` with `proof`, from nobody (`from: None`) or from a holder and the proof they
/// held it with. The row must still be as the decision saw it: otherwise someone changed it since, and the retry
/// will see how.
async fn move_email(
    tx: &mut Transaction<'_, Any>,
    email_id: EmailId,
    from: Option<(UserId, Option<EmailProof>)>,
    user_id: UserId,
    proof: Option<EmailProof>,
    now: Timestamp,
) -> Result<()> {
    let sql = match from {
        None => "UPDATE emails SET user_id = $2, evidence = $3, updated_at = $4 WHERE id = $1 AND user_id IS NULL",
        Some(_) => {
            "UPDATE emails SET user_id = $2, evidence = $3, updated_at = $4
             WHERE id = $1 AND user_id = $5 AND COALESCE(evidence, '') = $6"
        }
    };
    let mut query = sqlx::query(sql)
        .bind(email_id.to_string())
        .bind(user_id.to_string())
        .bind(proof.map(EmailProof::as_str))
        .bind(now.as_millis());
    if let Some((holder, held_with)) = from {
        query = query.bind(holder.to_string()).bind(held_with.map_or("", EmailProof::as_str));
    }
    let moved = query.execute(&mut **tx).await?;
    if moved.rows_affected() == 0 { Err(StoreError::Conflict("email address")) } else { Ok(()) }
}

async fn insert_email(
    tx: &mut Transaction<'_, Any>,
    profile: &ProviderProfile,
    user_id: UserId,
    now: Timestamp,
) -> Result<EmailId> {
    let email = profile.email.as_ref().ok_or(StoreError::Corrupt("no provider email to store".into()))?;
    let id = EmailId::generate();
    sqlx::query(
        "INSERT INTO emails (id, user_id, address, evidence, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(id.to_string())
    .bind(user_id.to_string())
    .bind(email.address.as_str())
    .bind(email.proof.map(EmailProof::as_str))
    .bind(now.as_millis())
    .execute(&mut **tx)
    .await
    .map_err(conflict("email address"))?;
    Ok(id)
}

async fn insert_identity(
    tx: &mut Transaction<'_, Any>,
    profile: &ProviderProfile,
    user_id: UserId,
    email_id: Option<EmailId>,
    now: Timestamp,
) -> Result<IdentityId> {
    let id = IdentityId::generate();
    sqlx::query(
        "INSERT INTO identities (id, provider_id, provider_user_id, data, email_id, user_id, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(id.to_string())
    .bind(&profile.provider_id)
    .bind(&profile.provider_user_id)
    .bind(&profile.claims_json)
    .bind(email_id.map(|id| id.to_string()))
    .bind(user_id.to_string())
    .bind(now.as_millis())
    .execute(&mut **tx)
    .await
    .map_err(conflict("identity"))?;
    Ok(id)
}

/// Provider profile fields overwrite the user's only when the provider sent a non-empty value (Hanko's rule).
async fn sync_profile(
    tx: &mut Transaction<'_, Any>,
    profile: &ProviderProfile,
    user_id: UserId,
    now: Timestamp,
) -> Result<()> {
    write_profile(
        tx,
        "UPDATE users SET name = COALESCE($2, name), given_name = COALESCE($3, given_name),
                          family_name = COALESCE($4, family_name), updated_at = $5 WHERE id = $1",
        profile,
        user_id,
        now,
    )
    .await?;
    Ok(())
}

/// Runs `sql` with the user's id as `$1`, the profile fields the provider actually sent (blank counts as absent)
/// as `$2`–`$4` (name, given name, family name), and `now` as `$5`.
async fn write_profile(
    tx: &mut Transaction<'_, Any>,
    sql: &'static str,
    profile: &ProviderProfile,
    user_id: UserId,
    now: Timestamp,
) -> std::result::Result<(), sqlx::Error> {
    let non_empty =
        |value: &Option<String>| value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
    sqlx::query(sql)
        .bind(user_id.to_string())
        .bind(non_empty(&profile.name))
        .bind(non_empty(&profile.given_name))
        .bind(non_empty(&profile.family_name))
        .bind(now.as_millis())
        .execute(&mut **tx)
        .await?;
    Ok(())
}
