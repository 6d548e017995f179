-- Live sessions belong to the instance recording them (instance_id), which
-- refreshes heartbeat_at_ms; a stale heartbeat lets another instance finish
-- the session from its chunks. event_state tracks the RecordingFinalized event:
-- NULL (none wanted), 'pending' (to send) or 'sent'.
ALTER TABLE sessions ADD COLUMN event_state TEXT;
CREATE INDEX sessions_owner ON sessions (instance_id, status);
CREATE INDEX sessions_event_state ON sessions (event_state);
