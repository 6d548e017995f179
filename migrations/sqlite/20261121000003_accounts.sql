-- Accounts (issue 6): the people who log in to the page, their cookie login
-- sessions, and the audit log. Times are unix milliseconds.

-- A username is a validated id (storage::keys::validate_id): it is the user id
-- in session rows and object keys. password_hash is an argon2id PHC string.
CREATE TABLE users (
    username       TEXT PRIMARY KEY NOT NULL,
    password_hash  TEXT NOT NULL,
    disabled       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at_ms  INTEGER NOT NULL
);

-- Cookie login sessions (tower-sessions records). The cookie's id is never
-- stored, only its SHA-256, so reading this table does not let anyone log in.
-- user_id repeats the session's user so disabling a user ends its sessions.
CREATE TABLE web_sessions (
    id_hash        TEXT PRIMARY KEY NOT NULL,
    user_id        TEXT,
    data           TEXT NOT NULL,
    expires_at_ms  INTEGER NOT NULL
);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at_ms);
CREATE INDEX web_sessions_user ON web_sessions (user_id);

-- Who did what, from where: login, logout, login_failed (detail: the reason),
-- user_added, user_disabled, session_deleted. Failed logins are counted here
-- for the rate limit, so it holds across instances.
CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms    INTEGER NOT NULL,
    user_id  TEXT,
    action   TEXT NOT NULL,
    ip       TEXT,
    detail   TEXT
);
CREATE INDEX audit_log_user ON audit_log (action, user_id, at_ms);
CREATE INDEX audit_log_ip ON audit_log (action, ip, at_ms);
