-- What Microsoft said about the user at the sign-in a one-time token hands over (tenant, app roles, groups, custom
-- claim values), as JSON: the session made from the token carries exactly that sign-in's facts, even when the same
-- user signs in from another tenant meanwhile.
ALTER TABLE tokens ADD COLUMN directory TEXT;
