-- A code request remembers the network it came from, as an HMAC of its /24 (IPv4) or /64
-- (IPv6), never the address: a new request supersedes only the open codes asked for from the
-- same network, so somebody else asking for your number's code no longer cancels yours.
-- Challenges from before this have none (NULL); they expire within minutes.
ALTER TABLE otp_challenges ADD COLUMN network_key CHAR(64) NULL;
