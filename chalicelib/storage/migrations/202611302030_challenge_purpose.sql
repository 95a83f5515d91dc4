-- Account deletion (issue 22) texts a code exactly as login does, through the same challenges.
-- A challenge says what its code is for, and each use checks it: a deletion code never logs
-- anyone in, and a login code never deletes an account. Challenges from before are logins.
ALTER TABLE otp_challenges ADD COLUMN purpose VARCHAR(8) NOT NULL DEFAULT 'login';

-- Deleting an account takes its id out of the conversations it started (they go on with the
-- others), found by this index rather than a scan.
CREATE INDEX conversations_created_by ON conversations (created_by);
