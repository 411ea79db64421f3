-- Up Migration

-- Who posted each message: the sub of the bearer token ingest accepted it with. NULL for
-- messages accepted without authentication (and every message stored before this column).
-- Adding a nullable column without a default rewrites nothing, so it is instant on any size.
ALTER TABLE messages ADD COLUMN publisher text;

-- Down Migration
ALTER TABLE messages DROP COLUMN publisher;
