-- Up Migration

-- One row per stream message. seq is JetStream's stream sequence: the primary key makes a
-- redelivered message a no-op (INSERT ... ON CONFLICT DO NOTHING). payload is json, not
-- jsonb: it keeps the client's bytes exactly and accepts every valid JSON text, including
-- \u0000 escapes and lone surrogates that jsonb rejects.
CREATE TABLE messages (
  seq          bigint      PRIMARY KEY,
  id           uuid        NOT NULL UNIQUE,
  received_at  timestamptz NOT NULL,
  persisted_at timestamptz NOT NULL DEFAULT now(),
  payload      json        NOT NULL
);

-- Messages the persister could never store, with why; listed by GET /api/dead-letters.
-- envelope is the stream message's text as it arrived, so nothing is lost.
CREATE TABLE dead_letters (
  seq         bigint      PRIMARY KEY,
  id          uuid,
  received_at timestamptz,
  failed_at   timestamptz NOT NULL DEFAULT now(),
  deliveries  integer     NOT NULL,
  reason      text        NOT NULL,
  envelope    text        NOT NULL
);

-- Down Migration
DROP TABLE dead_letters;
DROP TABLE messages;
