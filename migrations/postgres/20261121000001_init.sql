-- Sessions and their final transcript segments. Times are unix milliseconds.
-- The same schema as migrations/sqlite, in Postgres types: BIGINT for
-- millisecond times and byte counts, DOUBLE PRECISION for seconds.
CREATE TABLE sessions (
    id              TEXT PRIMARY KEY NOT NULL,
    user_id         TEXT NOT NULL,
    engine          TEXT NOT NULL,
    language        TEXT NOT NULL,
    encoding        TEXT NOT NULL,
    channels        INTEGER NOT NULL,
    input_rate      INTEGER NOT NULL,
    engine_rate     INTEGER NOT NULL,
    status          TEXT NOT NULL,          -- live | stored | recovered | pending_upload | failed
    close_reason    TEXT,
    started_at_ms   BIGINT NOT NULL,
    ended_at_ms     BIGINT,
    received_bytes  BIGINT NOT NULL DEFAULT 0,
    duration_s      DOUBLE PRECISION,
    audio_key       TEXT,
    transcript_key  TEXT,
    manifest_key    TEXT,
    instance_id     TEXT,
    heartbeat_at_ms BIGINT
);
CREATE INDEX sessions_user_started ON sessions (user_id, started_at_ms DESC);
CREATE INDEX sessions_status ON sessions (status);

CREATE TABLE segments (
    session_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    result_id   TEXT NOT NULL,
    start_s     DOUBLE PRECISION NOT NULL,
    end_s       DOUBLE PRECISION NOT NULL,
    text        TEXT NOT NULL,
    words_json  TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (session_id, seq)
);
