-- Hardening (issue 13).

-- Login rate limits, one row per counted scope: 'ui:<user>|<ip>' (one
-- username from one address), 'u:<user>' (one username from anywhere) and
-- 'i:<ip>' (one address, any username). An attempt is counted (reserved)
-- before its password is hashed, in one transaction over its scopes, so a
-- parallel burst cannot get past the limit; a successful login gives its
-- reservation back and clears its user's scopes. A window starts at the
-- first attempt and ends at resets_at_ms.
CREATE TABLE login_limits (
    scope_key     TEXT PRIMARY KEY NOT NULL,
    attempts      INTEGER NOT NULL,
    resets_at_ms  INTEGER NOT NULL
);
CREATE INDEX login_limits_resets ON login_limits (resets_at_ms);

-- Tombstones of deleted sessions: recovery, retries and takeovers never bring
-- a deleted recording back from a leftover spool or chunks.
CREATE TABLE deleted_sessions (
    id             TEXT PRIMARY KEY NOT NULL,
    user_id        TEXT NOT NULL,
    deleted_at_ms  INTEGER NOT NULL
);
