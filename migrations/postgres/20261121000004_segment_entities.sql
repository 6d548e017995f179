-- PHI/PII entities of a final (JSON array: category, start, end, content,
-- confidence), so a session finished from the database (a takeover) stores
-- the same entities and redacted text as one closed by its own instance.
-- NULL when the final has none.
ALTER TABLE segments ADD COLUMN entities_json TEXT;
