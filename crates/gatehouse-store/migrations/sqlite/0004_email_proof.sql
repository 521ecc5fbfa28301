-- What proved each address belongs to its holder ('upn', 'xms_edov', 'personal_account'), or NULL: nothing did.
-- It replaces the verified flag, which counted a Microsoft email without xms_edov as verified (the pre-hijack hole).
-- Only personal Microsoft accounts can be proven from what earlier versions stored (the identity's tenant); every
-- other address is unproven until its owner's next sign-in records the proof the ID token carries.
ALTER TABLE emails ADD COLUMN evidence TEXT;
UPDATE emails SET evidence = 'personal_account'
 WHERE verified = 1
   AND EXISTS (SELECT 1 FROM identities i
                WHERE i.email_id = emails.id
                  AND i.data LIKE '%"tid":"9188040d-6c67-4c5b-b112-36a304b66dad"%');
ALTER TABLE emails DROP COLUMN verified;
